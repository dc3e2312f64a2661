//! The workspace's tasks: `cargo xtask <command>`.
//!
//! - `test`: everything CI runs: format check, clippy with warnings denied, every test and
//!   doctest, and the docs with warnings denied.
//! - `bench [--write-docs]`: the benchmark suite in release mode (for now the memory tier
//!   against moka, quick_cache and a plain sharded LRU), printed as a table; `--write-docs`
//!   also replaces the table in `docs/benchmarks.md`.
//!
//! Plain Rust rather than shell scripts, so it runs the same everywhere cargo does.

use std::collections::BTreeMap;
use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

type Error = Box<dyn std::error::Error>;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test                  format check, clippy (-D warnings), all tests and doctests, docs (-D warnings)
  bench [--write-docs]  the benchmark suite in release mode; --write-docs updates docs/benchmarks.md
";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("bench") => bench(args.iter().any(|arg| arg == "--write-docs")),
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
    step(
        "tests and doctests",
        cargo().args(["test", "--workspace", "--all-features"]),
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

fn bench(write_docs: bool) -> Result<(), Error> {
    let target = target_dir()?;
    let criterion_home = target.join("criterion");
    let out = target.join("nfcs-bench");
    std::fs::create_dir_all(&out)?;
    step(
        "memory tier against moka, quick_cache and a sharded lru (release)",
        cargo()
            .args([
                "bench",
                "-p",
                "nfcs-cache-core",
                "--bench",
                "memory_tier",
                "--",
                "--noplot",
            ])
            .env("CRITERION_HOME", &criterion_home)
            .env("NFCS_BENCH_OUT", &out),
    )?;
    let table = memory_tier_table(&criterion_home, &out.join("memory_tier_hit_ratios.json"))?;
    let report = format!(
        "Command: `cargo xtask bench` (criterion, release; medians of 10 samples of 3 s)\n\
         Machine: {}\n\n{table}",
        machine_description()
    );
    println!("\n{report}");
    std::fs::write(out.join("memory_tier.md"), &report)?;
    if write_docs {
        replace_section(&root().join("docs/benchmarks.md"), "memory-tier", &report)?;
        eprintln!("updated docs/benchmarks.md");
    }
    Ok(())
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
            // Criterion turns the slashes of a group name into underscores on disk.
            let directory = criterion_home.join(group.replace('/', "_"));
            let median = |subject: &str| -> Option<f64> {
                let path = directory.join(subject).join("new/estimates.json");
                let text = std::fs::read_to_string(path).ok()?;
                let estimates: serde_json::Value = serde_json::from_str(&text).ok()?;
                estimates["median"]["point_estimate"].as_f64()
            };
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
