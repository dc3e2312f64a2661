//! `redis-tier`: the interleaved medians of the bench's report phase (criterion's own runs
//! are for regressions) and redis-benchmark against the same server.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{PeerInputs, heading, read_json};
use crate::BenchError;

/// `redis_tier_report.json`: `<workload>/<subject>`, `redis_benchmark/<test>/P<pipeline>`
/// and `propagation/<quantile>_us` → a number (`null` when it was not one).
type Report = BTreeMap<String, Option<f64>>;

pub(super) fn section(inputs: &PeerInputs) -> Result<String, BenchError> {
    if let Some(reason) = &inputs.skipped {
        return Ok(reason.clone());
    }
    let report: Report = read_json(&inputs.bench_out.join("redis_tier_report.json"))?;
    let figure = |key: String| report.get(&key).copied().flatten();
    let rate = |group: &str, subject: &str| figure(format!("{group}/{subject}"));
    let cell =
        |value: Option<f64>| value.map_or("n/a".to_owned(), |ops| format!("{:.0} k", ops / 1e3));
    let ratio = |ours: Option<f64>, peer: Option<f64>| match (ours, peer) {
        (Some(ours), Some(peer)) => format!("{:.2}x", ours / peer),
        _ => "n/a".to_owned(),
    };
    let mut table = String::from(
        "| 1 KiB values, 50 tasks | nfcs_redis | nfcs_redis_quiet | redis_crate | nfcs_redis vs crate | quiet vs crate |\n\
         |---|---|---|---|---|---|\n",
    );
    for (label, group, unit) in [
        ("GET", "get", "ops/s"),
        ("SET", "set", "ops/s"),
        ("90 % GET / 10 % SET", "mix_90_10", "ops/s"),
        ("get_many, 16 keys a call (MGET)", "get_many_16", "keys/s"),
        (
            "set_many, 16 keys a call (pipeline)",
            "set_many_16",
            "keys/s",
        ),
    ] {
        let (ours, quiet, bare) = (
            rate(group, "nfcs_redis"),
            rate(group, "nfcs_redis_quiet"),
            rate(group, "redis_crate"),
        );
        let _ = writeln!(
            table,
            "| {label} ({unit}) | {} | {} | {} | {} | {} |",
            cell(ours),
            cell(quiet),
            cell(bare),
            ratio(ours, bare),
            ratio(quiet, bare)
        );
    }
    let benchmark =
        |test: &str, pipeline: u32| figure(format!("redis_benchmark/{test}/P{pipeline}"));
    let _ = writeln!(
        table,
        "\n| redis-benchmark -d 1024 -c 50 | GET | SET |\n|---|---|---|\n| without pipelining | {} | {} |\n| -P 16 | {} | {} |",
        cell(benchmark("get", 1)),
        cell(benchmark("set", 1)),
        cell(benchmark("get", 16)),
        cell(benchmark("set", 16)),
    );
    let _ = writeln!(
        table,
        "\nBatch calls against redis-benchmark -P 16: get_many {} of its GET rate, set_many {} (quiet {}) of its SET rate.",
        ratio(rate("get_many_16", "nfcs_redis"), benchmark("get", 16)),
        ratio(rate("set_many_16", "nfcs_redis"), benchmark("set", 16)),
        ratio(
            rate("set_many_16", "nfcs_redis_quiet"),
            benchmark("set", 16)
        ),
    );
    Ok(heading(
        &format!(
            "`cargo xtask compare` (release; each figure the median of five 0.5 s runs, the \
             subjects taking turns; one throwaway redis-server {} on loopback for every row)",
            inputs.redis_server.as_deref().unwrap_or_default()
        ),
        &inputs.machine,
    ) + &table)
}
