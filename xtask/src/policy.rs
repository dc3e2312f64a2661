//! The policy-cache section of `cargo xtask bench`: a full Cedar evaluation against a cached
//! hit, with 10 and 1,000 policies.

use std::fmt::Write as _;
use std::path::Path;

use crate::{Error, cargo, step};

/// Runs the benchmark and returns the section's text.
pub(crate) fn section(out: &Path, machine: &str) -> Result<String, Error> {
    let report_path = out.join("policy.json");
    let _ = std::fs::remove_file(&report_path);
    step(
        "policy cache: full Cedar evaluation against a cached hit (release)",
        cargo()
            .args([
                "bench",
                "-p",
                "nfcs-policy-cache",
                "--features",
                "cedar",
                "--bench",
                "policy",
            ])
            .env("NFCS_BENCH_OUT", out),
    )?;
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report_path)?)?;
    let mut text = format!(
        "Command: `cargo xtask bench --only policy` (release; 20,000 full evaluations at 10 policies, \
         2,000 at 1,000, 200,000 hits; after 500 warm-up calls)\nMachine: {machine}\n\n\
         | policies | full p50 | full p99 | Cedar only p50 | Cedar only p99 | cached p50 | cached p99 | speed-up p50 | speed-up p99 |\n\
         |---|---|---|---|---|---|---|---|---|\n"
    );
    let empty = Vec::new();
    for row in report["results"].as_array().unwrap_or(&empty) {
        let figure = |group: &str, quantile: &str| {
            row[group][quantile]
                .as_f64()
                .map_or("-".to_owned(), |micros| format!("{micros:.2} us"))
        };
        let ratio = |name: &str| {
            row[name]
                .as_f64()
                .map_or("-".to_owned(), |ratio| format!("{ratio:.0}x"))
        };
        writeln!(
            text,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row["policies"],
            figure("full_us", "p50"),
            figure("full_us", "p99"),
            figure("cedar_only_us", "p50"),
            figure("cedar_only_us", "p99"),
            figure("cached_us", "p50"),
            figure("cached_us", "p99"),
            ratio("speed_up_p50"),
            ratio("speed_up_p99"),
        )?;
    }
    Ok(text)
}
