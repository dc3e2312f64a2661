//! `memory-tier`: ops/s (criterion's median), the ratio to quick_cache in the same run, and
//! the hit ratio of the single-threaded replay.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

use super::{Criterion, PeerInputs, heading, read_json};
use crate::BenchError;

/// A row of `memory_tier_hit_ratios.json`.
#[derive(Debug, Deserialize)]
struct HitRatio {
    group: String,
    subject: String,
    /// `null` when the bench's figure was not a number.
    hit_ratio: Option<f64>,
}

const SUBJECTS: [&str; 6] = [
    "nfcs_lru",
    "nfcs_s3fifo",
    "quick_cache",
    "moka",
    "sharded_lru",
    "hashmap_read_only",
];

pub(super) fn section(inputs: &PeerInputs) -> Result<String, BenchError> {
    if let Some(reason) = &inputs.skipped {
        return Ok(reason.clone());
    }
    let rows: Vec<HitRatio> = read_json(&inputs.bench_out.join("memory_tier_hit_ratios.json"))?;
    let hit_ratio: BTreeMap<(&str, &str), f64> = rows
        .iter()
        .filter_map(|row| {
            row.hit_ratio
                .map(|ratio| ((row.group.as_str(), row.subject.as_str()), ratio))
        })
        .collect();
    let criterion = Criterion::new(&inputs.criterion_home);
    let mut table = String::from(
        "| workload | threads | cache | ops/s (median) | vs quick_cache | hit ratio |\n\
         |---|---|---|---|---|---|\n",
    );
    for exponent in ["0.99", "1.2"] {
        for threads in ["1t", "2t"] {
            let group = format!("memory_tier/zipf_{exponent}/{threads}");
            let Some(reference) = criterion.median(&group, "quick_cache")? else {
                continue;
            };
            for subject in SUBJECTS {
                let Some(nanos) = criterion.median(&group, subject)? else {
                    continue;
                };
                let ratio = hit_ratio
                    .get(&(group.as_str(), subject))
                    .map_or("n/a".to_owned(), |ratio| format!("{:.2} %", ratio * 100.0));
                let _ = writeln!(
                    table,
                    "| Zipf {exponent} | {} | {subject} | {:.2} M | {:.2}x | {ratio} |",
                    &threads[..1],
                    1e3 / nanos,
                    reference / nanos,
                );
            }
        }
    }
    criterion.require_any()?;
    Ok(heading(
        "`cargo xtask compare` (criterion, release; medians of 10 samples of 3 s)",
        &inputs.machine,
    ) + &table)
}
