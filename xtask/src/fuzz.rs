//! `cargo xtask fuzz`: runs the `cargo fuzz` targets of `fuzz/` (a crate of its own, built with
//! nightly) for a bounded time each, on their checked-in corpora, and prints a table of what
//! each run did. Not part of `cargo xtask test`.
//!
//! Each target runs as
//! `cargo +nightly fuzz run TARGET fuzz/corpus/TARGET -- -max_total_time=N -print_final_stats=1
//! -timeout=30 [LIBFUZZER_ARGS...]`; the executions and their rate come from libFuzzer's final
//! statistics (`stat::number_of_executed_units`, `stat::average_exec_per_sec`), the new corpus
//! entries from counting the corpus directory before and after (libFuzzer adds what found new
//! coverage there; `cargo +nightly fuzz cmin TARGET` shrinks it again before a commit). A
//! crash, a timeout or running out of memory fails the command, naming the file libFuzzer
//! wrote under `fuzz/artifacts/TARGET/` (reproduce with `cargo +nightly fuzz run TARGET FILE`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{Error, root};

/// The targets, in the order they run by default.
pub(crate) const TARGETS: [&str; 6] = [
    "codec_decode",
    "disk_segment",
    "pattern",
    "cache_config",
    "benchmark_config",
    "server_request",
];

/// Seconds per target unless `--seconds` says otherwise.
const DEFAULT_SECONDS: u64 = 60;

pub(crate) const HELP: &str = "\
usage: cargo xtask fuzz [--seconds N] [TARGET...] [-- LIBFUZZER_ARGS...]

Runs each cargo-fuzz target of fuzz/ for N seconds (default 60) on its corpus in
fuzz/corpus/TARGET (libFuzzer adds the inputs that find new coverage there), with
cargo +nightly fuzz (install it with `cargo install cargo-fuzz --locked`), and prints
target / executions / exec/s / new corpus entries / crashes. Exits non-zero when a target
crashes, hangs (30 s per input) or runs out of memory, naming the input libFuzzer saved
under fuzz/artifacts/TARGET/. Arguments after `--` go to libFuzzer.

targets: codec_decode disk_segment pattern cache_config benchmark_config server_request
";

/// What one target's run did.
struct Outcome {
    target: String,
    executions: Option<u64>,
    per_second: Option<u64>,
    new_entries: i64,
    /// Files libFuzzer wrote for crashes, timeouts and out-of-memory inputs.
    findings: Vec<String>,
    succeeded: bool,
    seconds: f64,
}

/// `cargo xtask fuzz ARGS`.
pub(crate) fn fuzz(args: &[String]) -> Result<(), Error> {
    let mut seconds = DEFAULT_SECONDS;
    let mut targets: Vec<String> = Vec::new();
    let mut passthrough: Vec<String> = Vec::new();
    let mut arguments = args.iter();
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--help" | "-h" => {
                print!("{HELP}");
                return Ok(());
            }
            "--seconds" => {
                let value = arguments.next().ok_or("--seconds needs a number")?;
                seconds = value
                    .parse()
                    .ok()
                    .filter(|&seconds| seconds > 0)
                    .ok_or_else(|| format!("--seconds {value:?}: not a positive number"))?;
            }
            "--" => {
                passthrough.extend(arguments.by_ref().cloned());
            }
            target if TARGETS.contains(&target) => targets.push(target.to_owned()),
            other => {
                return Err(format!("unknown fuzz target or option {other:?}\n\n{HELP}").into());
            }
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|&target| target.to_owned()).collect();
    }
    let installed = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !installed {
        return Err(
            "`cargo +nightly fuzz` is not available: install a nightly toolchain \
             (rustup toolchain install nightly) and cargo-fuzz (cargo install cargo-fuzz --locked)"
                .into(),
        );
    }

    let mut outcomes = Vec::new();
    for target in &targets {
        outcomes.push(run_target(target, seconds, &passthrough)?);
    }

    println!();
    println!(
        "{:<18} {:>12} {:>8} {:>12} {:>8} {:>8}",
        "target", "executions", "exec/s", "new entries", "crashes", "wall s"
    );
    for outcome in &outcomes {
        let show = |value: Option<u64>| value.map_or_else(|| "?".to_owned(), |v| v.to_string());
        println!(
            "{:<18} {:>12} {:>8} {:>12} {:>8} {:>8.0}",
            outcome.target,
            show(outcome.executions),
            show(outcome.per_second),
            outcome.new_entries,
            outcome.findings.len(),
            outcome.seconds
        );
    }
    let failed: Vec<&Outcome> = outcomes
        .iter()
        .filter(|outcome| !outcome.succeeded || !outcome.findings.is_empty())
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    let mut message = String::from("fuzzing found problems:");
    for outcome in failed {
        if outcome.findings.is_empty() {
            message.push_str(&format!(
                "\n  {}: the run failed without saving an input (see its output above)",
                outcome.target
            ));
        }
        for finding in &outcome.findings {
            message.push_str(&format!(
                "\n  {}: {finding} (reproduce: cargo +nightly fuzz run {} {finding})",
                outcome.target, outcome.target
            ));
        }
    }
    Err(message.into())
}

/// The number of files directly in `directory` (0 when it does not exist).
fn count_files(directory: &Path) -> i64 {
    std::fs::read_dir(directory).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().is_file())
            .count() as i64
    })
}

/// The number after `name` on a line of libFuzzer's final statistics.
fn stat(output: &str, name: &str) -> Option<u64> {
    output.lines().find_map(|line| {
        line.trim()
            .strip_prefix(name)
            .and_then(|rest| rest.trim_start_matches(':').trim().parse().ok())
    })
}

fn run_target(target: &str, seconds: u64, passthrough: &[String]) -> Result<Outcome, Error> {
    let root = root();
    let corpus = root.join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&corpus)?;
    let before = count_files(&corpus);
    eprintln!("\n==> fuzz {target} for {seconds} s");
    let started = Instant::now();
    let mut child = Command::new("cargo")
        .current_dir(&root)
        .args(["+nightly", "fuzz", "run", target])
        .arg(Path::new("fuzz/corpus").join(target))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        .arg("-timeout=30")
        .args(passthrough)
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("fuzz {target}: could not start cargo: {error}"))?;
    let mut output = String::new();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let line = line?;
            eprintln!("{line}");
            output.push_str(&line);
            output.push('\n');
        }
    }
    let status = child.wait()?;
    let elapsed = started.elapsed().as_secs_f64();
    // "artifact_prefix='...'; Test unit written to fuzz/artifacts/TARGET/crash-..."
    let findings: Vec<String> = output
        .lines()
        .filter_map(|line| line.split_once("Test unit written to "))
        .map(|(_, path)| path.trim().to_owned())
        .collect();
    let outcome = Outcome {
        target: target.to_owned(),
        executions: stat(&output, "stat::number_of_executed_units"),
        per_second: stat(&output, "stat::average_exec_per_sec"),
        new_entries: count_files(&corpus) - before,
        findings,
        succeeded: status.success(),
        seconds: elapsed,
    };
    eprintln!(
        "==> fuzz {target}: {} in {elapsed:.0} s",
        if outcome.succeeded && outcome.findings.is_empty() {
            "ok"
        } else {
            "FAILED"
        }
    );
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzers_final_statistics() {
        let output = "\
#65536\tpulse  cov: 900 ft: 2000 corp: 80/3kb exec/s: 21845 rss: 60Mb
Done 120000 runs in 6 second(s)
stat::number_of_executed_units: 120000
stat::average_exec_per_sec:     20000
stat::new_units_added:          17
";
        assert_eq!(
            stat(output, "stat::number_of_executed_units"),
            Some(120_000)
        );
        assert_eq!(stat(output, "stat::average_exec_per_sec"), Some(20_000));
        assert_eq!(stat(output, "stat::peak_rss_mb"), None);
    }
}
