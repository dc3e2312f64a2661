//! `hot-path`: the memory-hit path through the manager, with and without metrics, beside
//! quick_cache, from the bench's interleaved rounds.

use std::fmt::Write as _;

use serde::Deserialize;

use super::{PeerInputs, heading, read_json};
use crate::BenchError;

/// A row of `hot_path.json`.
#[derive(Debug, Deserialize)]
struct Row {
    threads: u64,
    subject: String,
    /// The median over the rounds; `null` when it was not a number.
    ns_per_read: Option<f64>,
    /// quick_cache's median over this one's.
    vs_quick_cache: Option<f64>,
}

pub(super) fn section(inputs: &PeerInputs) -> Result<String, BenchError> {
    if let Some(reason) = &inputs.skipped {
        return Ok(reason.clone());
    }
    let rows: Vec<Row> = read_json(&inputs.bench_out.join("hot_path.json"))?;
    let median = |threads: u64, subject: &str| {
        rows.iter()
            .find(|row| row.threads == threads && row.subject == subject)
            .and_then(|row| row.ns_per_read)
    };
    let mut table = String::from(
        "| threads | subject | ns per read (median) | vs quick_cache |\n|---|---|---|---|\n",
    );
    for row in &rows {
        let (Some(nanos), Some(ratio)) = (row.ns_per_read, row.vs_quick_cache) else {
            continue;
        };
        let _ = writeln!(
            table,
            "| {} | {} | {nanos:.1} | {ratio:.2}x |",
            row.threads, row.subject
        );
    }
    table.push('\n');
    for threads in [1, 2] {
        let change =
            |with: &str, without: &str| match (median(threads, with), median(threads, without)) {
                (Some(with), Some(without)) => format!("{:+.1} %", (with / without - 1.0) * 100.0),
                _ => "n/a".to_owned(),
            };
        let _ = writeln!(
            table,
            "- {threads} thread(s): metrics cost {} on the memory tier and {} on the manager's typed get; \
             the manager adds {} to a memory hit and decode.",
            change("memory_tier+metrics", "memory_tier"),
            change("manager_get+metrics", "manager_get"),
            change("manager_get", "memory_tier_then_decode"),
        );
    }
    Ok(heading(
        "`cargo xtask compare --only hot-path` (release; each figure the median of 40 interleaved \
         rounds of 100,000 reads, every subject once per round)",
        &inputs.machine,
    ) + &table)
}
