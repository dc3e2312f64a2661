//! `memory-tier`: from the interleaved rounds of the bench (`memory_tier.json`), each
//! subject's median ops/s, the median of its per-round ratios to quick_cache with their spread
//! (lowest to highest round), the hit ratio of the single-threaded replay, and the machine's
//! load during each configuration.

use std::fmt::Write as _;

use serde::Deserialize;

use super::{PeerInputs, heading, read_json};
use crate::BenchError;

/// A row of `memory_tier.json`: one subject in one configuration.
#[derive(Debug, Deserialize)]
struct Row {
    subject: String,
    exponent: f64,
    threads: usize,
    /// `null` when the bench's figure was not a number.
    hit_ratio: Option<f64>,
    /// Ops/s of each interleaved round.
    ops_per_second: Vec<f64>,
    /// The ratio to quick_cache of each round; empty for quick_cache itself.
    #[serde(default)]
    ratio_to_quick_cache: Vec<f64>,
    load_before: Option<f64>,
    load_after: Option<f64>,
}

/// The median of `values` (`None` when empty).
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let len = sorted.len();
    match len {
        0 => None,
        _ if len % 2 == 1 => Some(sorted[len / 2]),
        _ => Some((sorted[len / 2 - 1] + sorted[len / 2]) / 2.0),
    }
}

fn load(value: Option<f64>) -> String {
    value.map_or("n/a".to_owned(), |load| format!("{load:.2}"))
}

pub(super) fn section(inputs: &PeerInputs) -> Result<String, BenchError> {
    if let Some(reason) = &inputs.skipped {
        return Ok(reason.clone());
    }
    let rows: Vec<Row> = read_json(&inputs.bench_out.join("memory_tier.json"))?;
    let rounds = rows
        .iter()
        .map(|row| row.ops_per_second.len())
        .max()
        .unwrap_or(0);
    let mut table = String::from(
        "| workload | threads | cache | ops/s (median) | vs quick_cache (median) | spread over rounds | hit ratio |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let mut loads = Vec::new();
    let mut last_configuration = None;
    for row in &rows {
        let configuration = (row.exponent.to_bits(), row.threads);
        if last_configuration != Some(configuration) {
            last_configuration = Some(configuration);
            loads.push(format!(
                "Zipf {} / {} thread{}: {} -> {}",
                row.exponent,
                row.threads,
                if row.threads == 1 { "" } else { "s" },
                load(row.load_before),
                load(row.load_after)
            ));
        }
        let Some(rate) = median(&row.ops_per_second) else {
            continue;
        };
        let (ratio, spread) = if row.subject == "quick_cache" {
            ("1.00x".to_owned(), String::new())
        } else {
            match median(&row.ratio_to_quick_cache) {
                Some(ratio) => {
                    let low = row
                        .ratio_to_quick_cache
                        .iter()
                        .copied()
                        .fold(f64::INFINITY, f64::min);
                    let high = row
                        .ratio_to_quick_cache
                        .iter()
                        .copied()
                        .fold(f64::NEG_INFINITY, f64::max);
                    (format!("{ratio:.2}x"), format!("{low:.2}-{high:.2}x"))
                }
                None => ("n/a".to_owned(), String::new()),
            }
        };
        let hit_ratio = row
            .hit_ratio
            .map_or("n/a".to_owned(), |ratio| format!("{:.2} %", ratio * 100.0));
        let _ = writeln!(
            table,
            "| Zipf {} | {} | {} | {:.2} M | {ratio} | {spread} | {hit_ratio} |",
            row.exponent,
            row.threads,
            row.subject,
            rate / 1e6,
        );
    }
    if rows.is_empty() {
        return Err(BenchError::Report {
            path: inputs.bench_out.join("memory_tier.json"),
            message: "it holds no rows".to_owned(),
        });
    }
    let command = format!(
        "`cargo xtask compare` (release; {rounds} interleaved rounds of every subject, a slice of 0.25 s each, order rotated each round)"
    );
    Ok(heading(&command, &inputs.machine)
        + &table
        + &format!(
            "\nLoad (1-minute average, before -> after each configuration): {}.\n",
            loads.join("; ")
        ))
}
