//! `policy`: a full Cedar evaluation against a cached hit, with 10 and 1,000 policies.

use std::fmt::Write as _;

use serde::Deserialize;

use super::{PeerInputs, heading, read_json};
use crate::BenchError;

/// `policy.json`.
#[derive(Debug, Deserialize)]
struct Report {
    results: Vec<Row>,
}

/// One policy-set size.
#[derive(Debug, Deserialize)]
struct Row {
    policies: u64,
    full_us: Option<Quantiles>,
    cedar_only_us: Option<Quantiles>,
    cached_us: Option<Quantiles>,
    speed_up_p50: Option<f64>,
    speed_up_p99: Option<f64>,
}

/// Microseconds.
#[derive(Debug, Deserialize)]
struct Quantiles {
    p50: Option<f64>,
    p99: Option<f64>,
}

pub(super) fn section(inputs: &PeerInputs) -> Result<String, BenchError> {
    if let Some(reason) = &inputs.skipped {
        return Ok(reason.clone());
    }
    let report: Report = read_json(&inputs.bench_out.join("policy.json"))?;
    let mut text = heading(
        "`cargo xtask compare --only policy` (release; 20,000 full evaluations at 10 policies, \
         2,000 at 1,000, 200,000 hits; after 500 warm-up calls)",
        &inputs.machine,
    );
    text.push_str(
        "| policies | full p50 | full p99 | Cedar only p50 | Cedar only p99 | cached p50 | cached p99 | speed-up p50 | speed-up p99 |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    let micros = |value: Option<f64>| value.map_or("-".to_owned(), |us| format!("{us:.2} us"));
    let p50 = |quantiles: &Option<Quantiles>| micros(quantiles.as_ref().and_then(|q| q.p50));
    let p99 = |quantiles: &Option<Quantiles>| micros(quantiles.as_ref().and_then(|q| q.p99));
    let ratio = |value: Option<f64>| value.map_or("-".to_owned(), |ratio| format!("{ratio:.0}x"));
    for row in &report.results {
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.policies,
            p50(&row.full_us),
            p99(&row.full_us),
            p50(&row.cedar_only_us),
            p99(&row.cedar_only_us),
            p50(&row.cached_us),
            p99(&row.cached_us),
            ratio(row.speed_up_p50),
            ratio(row.speed_up_p99),
        );
    }
    Ok(text)
}
