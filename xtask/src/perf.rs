//! `cargo xtask perf-check [--update] [--runs N] [--only PROBE]`: instruction counts of the hot
//! paths under `valgrind --tool=callgrind`, compared with the baselines in
//! `perf/baselines.json`; a probe more than [`THRESHOLD_PERCENT`] above its baseline fails it.
//!
//! # Why instruction counts
//!
//! Criterion's wall-clock figures drift by 10-30 % on a shared two-core machine; the number of
//! instructions a path executes does not depend on the load. It is not the time (cache misses,
//! branch mispredictions and the instruction mix do not show), so it guards against code that
//! does more work, not against code that stalls more: the wall-clock figures stay criterion's.
//!
//! # How a probe is measured
//!
//! Each probe is a mode of an example binary beside the code it measures
//! (`nfcs-performance`'s `perf_probe_cache`, `nfcs-math-kernels`' `perf_probe_math`,
//! `nfcs-semantic`'s `perf_probe_semantic`), built in release. The binary builds fixed, seeded
//! inputs, runs a warm-up, then runs `ITERATIONS` operations inside one `#[inline(never)]`
//! function, `measured_region`. Callgrind runs it with `--collect-atstart=no
//! --toggle-collect=*measured_region*`, so only the instructions executed inside that function
//! (and what it calls) are counted: setup, warm-up, model loading and process start-up are
//! not. The count divided by `ITERATIONS` is the figure. The probes are single-threaded (the
//! solvers and the encoder run inside a rayon pool of one thread, `RAYON_NUM_THREADS=1` is
//! set as well; the cache probes use no threads), the memory tier's hash seed and shard count
//! are fixed, the disk tier hashes its index with a per-process seed (its counts move a
//! little: see the spread with `--runs 3`).
//!
//! One crate's example per crate rather than one binary in `nfcs-bench`: the check then builds
//! only the crates it measures (not the served node's HTTP stack), and the probes of the solvers
//! and the encoder can fix rayon's pool, which `nfcs-bench` does not depend on. No
//! iai-callgrind/gungraun: its runner must be installed at the library's exact version
//! (`cargo install`) wherever the check runs, for the same callgrind toggle this harness sets
//! itself.
//!
//! # Comparability
//!
//! Counts depend on the valgrind version (which CPU features it emulates: 3.19 has AVX2 but not
//! AVX-512, so the kernels take their AVX2 paths), on the CPU (runtime feature detection) and
//! on the compiler. The baseline file records all three; when they differ from this machine's,
//! the check refuses to compare (exit code 3) and says how to re-record, instead of failing on
//! a difference that is not a regression.
//!
//! # Exit codes
//!
//! 0: no probe regressed; 1: a probe regressed by more than [`THRESHOLD_PERCENT`] (or a probe
//! failed to run); 2: valgrind is not installed; 3: the baselines come from another valgrind,
//! CPU or compiler.
//!
//! `--update` (or `--bless`) measures and rewrites the baseline file (the probes that were
//! skipped keep their earlier baselines); `--runs N` runs each probe N times and reports the
//! median and the spread ((max - min) / median), which `--update` records; `--only PROBE` runs
//! one probe. The embedding probe runs only where the model is present (`cargo xtask
//! fetch-model`); otherwise it is skipped with a notice.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};

use crate::{Error, cargo, model, root, step, target_dir};

/// A probe that is this much (in percent) above its baseline fails the check.
pub(crate) const THRESHOLD_PERCENT: f64 = 3.0;

/// The baseline file, relative to the workspace root.
const BASELINES: &str = "perf/baselines.json";

/// The callgrind options: count only inside `measured_region`, write no per-line data.
const CALLGRIND: [&str; 5] = [
    "--tool=callgrind",
    "--collect-atstart=no",
    "--toggle-collect=*measured_region*",
    "--dump-line=no",
    "--dump-instr=no",
];

/// One probe: a mode of an example binary.
#[derive(Debug, Clone, Copy)]
struct Probe {
    /// The probe's name, the binary's first argument.
    name: &'static str,
    /// The package whose example it is.
    package: &'static str,
    /// The example.
    example: &'static str,
    /// Operations in the measured region.
    iterations: u64,
    /// Whether it needs the embedding model (skipped without it).
    needs_model: bool,
}

const fn probe(
    name: &'static str,
    package: &'static str,
    example: &'static str,
    iterations: u64,
) -> Probe {
    Probe {
        name,
        package,
        example,
        iterations,
        needs_model: false,
    }
}

/// The probes, in the table's order. Iterations are chosen so that a probe takes a few seconds
/// under valgrind (about 50 times slower than native) on the two-core machine.
const PROBES: [Probe; 9] = [
    probe("memory-hit", "nfcs-performance", "perf_probe_cache", 20_000),
    probe(
        "manager-hit",
        "nfcs-performance",
        "perf_probe_cache",
        20_000,
    ),
    probe("disk-read", "nfcs-performance", "perf_probe_cache", 5_000),
    probe("codec-small", "nfcs-performance", "perf_probe_cache", 5_000),
    probe("codec-zstd", "nfcs-performance", "perf_probe_cache", 200),
    probe("cgl-64", "nfcs-math-kernels", "perf_probe_math", 5),
    probe(
        "kuramoto-mean-field-1000",
        "nfcs-math-kernels",
        "perf_probe_math",
        20,
    ),
    probe(
        "kuramoto-dense-200",
        "nfcs-math-kernels",
        "perf_probe_math",
        5,
    ),
    Probe {
        needs_model: true,
        ..probe("embed-short", "nfcs-semantic", "perf_probe_semantic", 2)
    },
];

/// What makes counts comparable: the valgrind version, the CPU and the compiler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Environment {
    /// `valgrind --version`.
    pub(crate) valgrind: String,
    /// The CPU's model name and the vector extensions it reports.
    pub(crate) cpu: String,
    /// `rustc -V`.
    pub(crate) rustc: String,
}

impl Environment {
    /// What differs between the baselines' environment (`self`) and `here`, one line each.
    pub(crate) fn mismatches(&self, here: &Environment) -> Vec<String> {
        [
            ("valgrind", &self.valgrind, &here.valgrind),
            ("CPU", &self.cpu, &here.cpu),
            ("compiler", &self.rustc, &here.rustc),
        ]
        .into_iter()
        .filter(|(_, then, now)| then != now)
        .map(|(what, then, now)| format!("{what}: baselines {then:?}, here {now:?}"))
        .collect()
    }

    fn to_json(&self) -> Value {
        json!({ "valgrind": self.valgrind, "cpu": self.cpu, "rustc": self.rustc })
    }

    fn from_json(value: &Value) -> Result<Environment, Error> {
        let field = |name: &str| {
            value[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("{BASELINES}: environment.{name} is missing"))
        };
        Ok(Environment {
            valgrind: field("valgrind")?,
            cpu: field("cpu")?,
            rustc: field("rustc")?,
        })
    }
}

/// One probe's recorded figure.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Baseline {
    /// Instructions per operation.
    pub(crate) per_op: f64,
    /// The spread of the runs it was recorded from, in percent (0 for one run).
    pub(crate) spread_percent: f64,
}

/// The baseline file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Baselines {
    /// Where the figures were measured.
    pub(crate) environment: Environment,
    /// The commit they were recorded on.
    pub(crate) commit: String,
    /// Per probe.
    pub(crate) probes: BTreeMap<String, Baseline>,
}

impl Baselines {
    pub(crate) fn from_json(value: &Value) -> Result<Baselines, Error> {
        let environment = Environment::from_json(&value["environment"])?;
        let mut probes = BTreeMap::new();
        let entries = value["probes"]
            .as_object()
            .ok_or_else(|| format!("{BASELINES}: no probes object"))?;
        for (name, entry) in entries {
            let per_op = entry["instructions_per_op"]
                .as_f64()
                .filter(|count| *count > 0.0)
                .ok_or_else(|| {
                    format!("{BASELINES}: {name}: instructions_per_op missing or not positive")
                })?;
            let spread_percent = entry["spread_percent"].as_f64().unwrap_or(0.0);
            probes.insert(
                name.clone(),
                Baseline {
                    per_op,
                    spread_percent,
                },
            );
        }
        Ok(Baselines {
            environment,
            commit: value["commit"].as_str().unwrap_or("unknown").to_owned(),
            probes,
        })
    }

    fn to_json(&self) -> Value {
        let probes: serde_json::Map<String, Value> = self
            .probes
            .iter()
            .map(|(name, baseline)| {
                (
                    name.clone(),
                    json!({
                        "instructions_per_op": (baseline.per_op * 10.0).round() / 10.0,
                        "spread_percent": (baseline.spread_percent * 1000.0).round() / 1000.0,
                    }),
                )
            })
            .collect();
        json!({
            "about": "Instructions per operation of each probe under callgrind, counted inside \
                      measured_region only. Written by `cargo xtask perf-check --update`, \
                      compared by `cargo xtask perf-check` (xtask/src/perf.rs).",
            "threshold_percent": THRESHOLD_PERCENT,
            "commit": self.commit,
            "environment": self.environment.to_json(),
            "probes": probes,
        })
    }
}

/// The total instructions (`Ir`) of a callgrind output file: its `totals:` line (or, in older
/// files, `summary:`), the field that `events:` names `Ir`.
pub(crate) fn parse_callgrind(text: &str) -> Result<u64, Error> {
    let events: Vec<&str> = text
        .lines()
        .find_map(|line| line.strip_prefix("events:"))
        .ok_or("callgrind output without an events: line")?
        .split_whitespace()
        .collect();
    let index = events
        .iter()
        .position(|event| *event == "Ir")
        .ok_or("callgrind output does not count Ir")?;
    let totals = text
        .lines()
        .find_map(|line| line.strip_prefix("totals:"))
        .or_else(|| text.lines().find_map(|line| line.strip_prefix("summary:")))
        .ok_or("callgrind output without a totals: or summary: line")?;
    let field = totals
        .split_whitespace()
        .nth(index)
        .ok_or("callgrind totals: line shorter than its events: line")?;
    Ok(field
        .parse()
        .map_err(|error| format!("callgrind totals {field:?}: {error}"))?)
}

/// The median of `values` per `iterations`, and the spread ((max - min) / median, in percent).
pub(crate) fn summarize(values: &[u64], iterations: u64) -> Option<(f64, f64)> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let (first, last) = (*sorted.first()?, *sorted.last()?);
    let middle = sorted.len() / 2;
    let median = if sorted.len().is_multiple_of(2) {
        (sorted[middle - 1] as f64 + sorted[middle] as f64) / 2.0
    } else {
        sorted[middle] as f64
    };
    let iterations = iterations.max(1) as f64;
    let spread = if median > 0.0 {
        (last - first) as f64 / median * 100.0
    } else {
        0.0
    };
    Some((median / iterations, spread))
}

/// A probe's verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Verdict {
    /// Within the threshold of its baseline.
    Ok,
    /// More than the threshold above.
    Regression,
    /// More than the threshold below: record a new baseline.
    Improved,
    /// Measured, with no baseline to compare.
    NoBaseline,
    /// Not measured (the embedding model is missing).
    Skipped,
}

impl Verdict {
    fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Regression => "REGRESSION",
            Verdict::Improved => "improved (re-record)",
            Verdict::NoBaseline => "no baseline",
            Verdict::Skipped => "skipped",
        }
    }
}

/// The change from `baseline` to `now` in percent.
pub(crate) fn change_percent(baseline: f64, now: f64) -> f64 {
    (now - baseline) / baseline * 100.0
}

/// The verdict on `now` against `baseline` with the threshold in percent.
pub(crate) fn verdict(baseline: Option<f64>, now: Option<f64>, threshold: f64) -> Verdict {
    match (baseline, now) {
        (_, None) => Verdict::Skipped,
        (None, Some(_)) => Verdict::NoBaseline,
        (Some(baseline), Some(now)) => {
            let change = change_percent(baseline, now);
            if change > threshold {
                Verdict::Regression
            } else if change < -threshold {
                Verdict::Improved
            } else {
                Verdict::Ok
            }
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) probe: String,
    pub(crate) baseline: Option<f64>,
    pub(crate) now: Option<f64>,
    /// The spread of this check's runs, in percent (with `--runs` above 1).
    pub(crate) spread: Option<f64>,
}

impl Row {
    fn verdict(&self) -> Verdict {
        verdict(self.baseline, self.now, THRESHOLD_PERCENT)
    }
}

/// The table: probe, baseline, now, change, verdict (and the spread when measured).
pub(crate) fn render(rows: &[Row]) -> String {
    let with_spread = rows.iter().any(|row| row.spread.is_some());
    let count = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    let mut lines = vec![{
        let mut header = vec![
            "probe".to_owned(),
            "baseline Ir/op".to_owned(),
            "now Ir/op".to_owned(),
            "change".to_owned(),
        ];
        if with_spread {
            header.push("spread".to_owned());
        }
        header.push("verdict".to_owned());
        header
    }];
    for row in rows {
        let change = match (row.baseline, row.now) {
            (Some(baseline), Some(now)) => format!("{:+.2} %", change_percent(baseline, now)),
            _ => "-".to_owned(),
        };
        let mut line = vec![
            row.probe.clone(),
            count(row.baseline),
            count(row.now),
            change,
        ];
        if with_spread {
            line.push(
                row.spread
                    .map_or_else(|| "-".to_owned(), |s| format!("{s:.3} %")),
            );
        }
        line.push(row.verdict().label().to_owned());
        lines.push(line);
    }
    let columns = lines[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            lines
                .iter()
                .map(|line| line[column].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(column, (cell, width))| {
                if column == 0 || column == columns - 1 {
                    format!("{cell:<width$}")
                } else {
                    format!("{cell:>width$}")
                }
            })
            .collect();
        let _ = writeln!(text, "{}", cells.join("  ").trim_end());
    }
    text
}

/// The options of `perf-check`.
#[derive(Debug, PartialEq)]
pub(crate) struct Options {
    pub(crate) update: bool,
    pub(crate) runs: usize,
    pub(crate) only: Option<String>,
}

pub(crate) fn parse_options(args: &[String]) -> Result<Options, Error> {
    let mut options = Options {
        update: false,
        runs: 1,
        only: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--update" | "--bless" => options.update = true,
            "--runs" => {
                options.runs = args
                    .next()
                    .and_then(|runs| runs.parse().ok())
                    .filter(|runs| *runs > 0)
                    .ok_or("--runs needs a positive number")?;
            }
            "--only" => {
                let name = args.next().ok_or("--only needs a probe name")?;
                if !PROBES.iter().any(|probe| probe.name == name) {
                    let names: Vec<&str> = PROBES.iter().map(|probe| probe.name).collect();
                    return Err(
                        format!("unknown probe {name:?} (expected one of {names:?})").into(),
                    );
                }
                options.only = Some(name.clone());
            }
            other => {
                return Err(format!(
                    "perf-check: unknown argument {other:?} (--update, --runs N, --only PROBE)"
                )
                .into());
            }
        }
    }
    Ok(options)
}

/// The first line a command prints, or `None` when it cannot be run.
fn first_line(command: &mut Command) -> Option<String> {
    let output = command.output().ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .map(|line| line.trim().to_owned())
}

/// This machine's CPU: the model name and which of the vector extensions that decide the
/// kernels' paths it reports.
fn cpu() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_once(':'))
            .map(|(_, value)| value.trim().to_owned())
    };
    let model = field("model name").unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    let flags = field("flags").unwrap_or_default();
    let flags: Vec<&str> = flags.split_whitespace().collect();
    let features: Vec<&str> = ["sse4_2", "avx", "avx2", "fma", "bmi2", "avx512f"]
        .into_iter()
        .filter(|feature| flags.contains(feature))
        .collect();
    format!("{model} ({})", features.join(" "))
}

/// The commit checked out, with `-dirty` when tracked files differ from it.
fn commit() -> String {
    let head = first_line(
        Command::new("git")
            .current_dir(root())
            .args(["rev-parse", "HEAD"]),
    )
    .unwrap_or_else(|| "unknown".to_owned());
    let clean = Command::new("git")
        .current_dir(root())
        .args(["diff", "--quiet", "HEAD", "--"])
        .status()
        .is_ok_and(|status| status.success());
    if clean { head } else { format!("{head}-dirty") }
}

/// Runs one probe once under callgrind: the instructions in its measured region.
fn measure(binary: &Path, probe: &Probe, out: &Path) -> Result<u64, Error> {
    let _ = std::fs::remove_file(out);
    let mut command = Command::new("valgrind");
    command
        .args(CALLGRIND)
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(binary)
        .arg(probe.name)
        .arg(probe.iterations.to_string())
        .env("RAYON_NUM_THREADS", "1");
    if probe.needs_model {
        command.arg(model::model_dir());
    }
    let output = command
        .output()
        .map_err(|error| format!("{}: could not start valgrind: {error}", probe.name))?;
    if !output.status.success() {
        return Err(format!(
            "{}: the probe failed ({}):\n{}{}",
            probe.name,
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let text = std::fs::read_to_string(out).map_err(|error| {
        format!(
            "{}: no callgrind output {}: {error}",
            probe.name,
            out.display()
        )
    })?;
    let total = parse_callgrind(&text).map_err(|error| format!("{}: {error}", probe.name))?;
    if total == 0 {
        return Err(format!(
            "{}: callgrind counted nothing in measured_region (was the symbol inlined or \
             renamed?)",
            probe.name
        )
        .into());
    }
    Ok(total)
}

/// `cargo xtask perf-check`.
pub(crate) fn perf_check(args: &[String]) -> Result<(), Error> {
    let options = parse_options(args)?;
    let started = Instant::now();
    let Some(valgrind) = first_line(Command::new("valgrind").arg("--version")) else {
        eprintln!(
            "xtask perf-check: valgrind is not installed (or does not run): the instruction \
             counts need `valgrind --tool=callgrind` (apt-get install valgrind)"
        );
        std::process::exit(2);
    };
    let rustc = first_line(
        Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
            .current_dir(root())
            .arg("-V"),
    )
    .ok_or("rustc -V failed")?;
    let here = Environment {
        valgrind,
        cpu: cpu(),
        rustc,
    };
    let file = root().join(BASELINES);
    let baselines = match std::fs::read_to_string(&file) {
        Ok(text) => Some(Baselines::from_json(&serde_json::from_str(&text)?)?),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(format!("{}: {error}", file.display()).into()),
    };
    if !options.update {
        let Some(baselines) = &baselines else {
            return Err(format!(
                "no baselines in {BASELINES}: record them with `cargo xtask perf-check --update`"
            )
            .into());
        };
        let mismatches = baselines.environment.mismatches(&here);
        if !mismatches.is_empty() {
            eprintln!(
                "xtask perf-check: the baselines in {BASELINES} were recorded elsewhere, so the \
                 counts are not comparable (this is not a regression):"
            );
            for mismatch in &mismatches {
                eprintln!("  {mismatch}");
            }
            eprintln!(
                "run the check where they were recorded, or record new ones here on the \
                 commit to compare against: `cargo xtask perf-check --update --runs 3`"
            );
            std::process::exit(3);
        }
    }
    let selected: Vec<&Probe> = PROBES
        .iter()
        .filter(|probe| {
            options
                .only
                .as_deref()
                .is_none_or(|only| only == probe.name)
        })
        .collect();
    let mut build = cargo();
    build.args(["build", "--release", "--quiet"]);
    let mut examples: Vec<(&str, &str)> = selected
        .iter()
        .map(|probe| (probe.package, probe.example))
        .collect();
    examples.dedup();
    for (package, example) in &examples {
        build.args(["-p", package, "--example", example]);
    }
    step("build the probes (release)", &mut build)?;
    let target = target_dir()?;
    let out = target.join("perf-check");
    std::fs::create_dir_all(&out)?;
    let model_present = model::model_complete(&model::model_dir());
    let mut rows = Vec::new();
    for probe in selected {
        let baseline = baselines
            .as_ref()
            .and_then(|baselines| baselines.probes.get(probe.name))
            .map(|baseline| baseline.per_op);
        if probe.needs_model && !model_present {
            eprintln!(
                "notice: {} skipped: no embedding model in {} (`cargo xtask fetch-model`)",
                probe.name,
                model::model_dir().display()
            );
            rows.push(Row {
                probe: probe.name.to_owned(),
                baseline,
                now: None,
                spread: None,
            });
            continue;
        }
        let binary = target.join("release/examples").join(probe.example);
        let probe_started = Instant::now();
        let counts = (0..options.runs)
            .map(|run| {
                measure(
                    &binary,
                    probe,
                    &out.join(format!("{}.{run}.out", probe.name)),
                )
            })
            .collect::<Result<Vec<u64>, Error>>()?;
        let (per_op, spread) = summarize(&counts, probe.iterations).ok_or("no runs")?;
        eprintln!(
            "{}: {per_op:.1} instructions per operation ({} runs of {} iterations: {counts:?}) \
             in {:.1?}",
            probe.name,
            options.runs,
            probe.iterations,
            probe_started.elapsed()
        );
        rows.push(Row {
            probe: probe.name.to_owned(),
            baseline,
            now: Some(per_op),
            spread: (options.runs > 1).then_some(spread),
        });
    }
    println!("\n{}", render(&rows));
    if options.update {
        let mut probes = match &baselines {
            Some(old) if old.environment == here => old.probes.clone(),
            _ => BTreeMap::new(),
        };
        for row in &rows {
            if let Some(per_op) = row.now {
                probes.insert(
                    row.probe.clone(),
                    Baseline {
                        per_op,
                        spread_percent: row.spread.unwrap_or(0.0),
                    },
                );
            } else if probes.contains_key(&row.probe) {
                eprintln!("notice: {} keeps its earlier baseline", row.probe);
            }
        }
        let updated = Baselines {
            environment: here,
            commit: commit(),
            probes,
        };
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(
            &file,
            serde_json::to_string_pretty(&updated.to_json())? + "\n",
        )?;
        eprintln!("wrote {BASELINES} in {:.0?}", started.elapsed());
        return Ok(());
    }
    let regressed: Vec<&str> = rows
        .iter()
        .filter(|row| row.verdict() == Verdict::Regression)
        .map(|row| row.probe.as_str())
        .collect();
    eprintln!("perf-check took {:.0?}", started.elapsed());
    if regressed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} regressed by more than {THRESHOLD_PERCENT} % in instructions per operation: {} \
             (`callgrind_annotate {}/<probe>.0.out` shows where; an intended change: `cargo \
             xtask perf-check --update --runs 3`)",
            regressed.len(),
            regressed.join(", "),
            out.display()
        )
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALLGRIND_OUT: &str = "\
# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 4242
cmd:  ./perf_probe_cache memory-hit 20000
part: 1

desc: I1 cache: 
positions: line
events: Ir
summary: 5230000

fn=(1) perf_probe_cache::measured_region
0 5230000
totals: 5230000
";

    #[test]
    fn parses_the_totals_of_a_callgrind_file() {
        assert_eq!(parse_callgrind(CALLGRIND_OUT).unwrap(), 5_230_000);
        // Without totals:, the summary: line; Ir found among other events.
        let other = "events: Dr Ir Dw\nsummary: 7 123 9\n";
        assert_eq!(parse_callgrind(other).unwrap(), 123);
        let totals_first = "events: Ir Bc\ntotals: 55 3\nsummary: 1 1\n";
        assert_eq!(parse_callgrind(totals_first).unwrap(), 55);
    }

    #[test]
    fn rejects_callgrind_files_it_cannot_read() {
        assert!(parse_callgrind("").is_err());
        assert!(parse_callgrind("events: Dr\ntotals: 4\n").is_err());
        assert!(parse_callgrind("events: Ir\n").is_err());
        assert!(parse_callgrind("events: Dr Ir\ntotals: 4\n").is_err());
        assert!(parse_callgrind("events: Ir\ntotals: many\n").is_err());
    }

    #[test]
    fn summarizes_runs_as_median_per_operation_and_spread() {
        let (per_op, spread) = summarize(&[1_010, 1_000, 990], 10).unwrap();
        assert_eq!(per_op, 100.0);
        assert!((spread - 2.0).abs() < 1e-12);
        let (per_op, spread) = summarize(&[400, 600], 2).unwrap();
        assert_eq!(per_op, 250.0);
        assert!((spread - 40.0).abs() < 1e-12);
        assert_eq!(summarize(&[777], 7).unwrap(), (111.0, 0.0));
        assert!(summarize(&[], 7).is_none());
    }

    #[test]
    fn verdicts_follow_the_threshold() {
        assert_eq!(verdict(Some(100.0), Some(103.0), 3.0), Verdict::Ok);
        assert_eq!(verdict(Some(100.0), Some(103.01), 3.0), Verdict::Regression);
        assert_eq!(verdict(Some(100.0), Some(97.0), 3.0), Verdict::Ok);
        assert_eq!(verdict(Some(100.0), Some(96.9), 3.0), Verdict::Improved);
        assert_eq!(verdict(None, Some(50.0), 3.0), Verdict::NoBaseline);
        assert_eq!(verdict(Some(100.0), None, 3.0), Verdict::Skipped);
        assert_eq!(verdict(None, None, 3.0), Verdict::Skipped);
        assert!((change_percent(200.0, 210.0) - 5.0).abs() < 1e-12);
    }

    #[test]
    fn the_table_shows_each_probe_with_its_verdict() {
        let rows = [
            Row {
                probe: "memory-hit".into(),
                baseline: Some(100.0),
                now: Some(110.0),
                spread: None,
            },
            Row {
                probe: "embed-short".into(),
                baseline: Some(1e6),
                now: None,
                spread: None,
            },
            Row {
                probe: "codec-small".into(),
                baseline: None,
                now: Some(42.0),
                spread: None,
            },
        ];
        let table = render(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("probe"));
        assert!(lines[0].ends_with("verdict"));
        assert!(!lines[0].contains("spread"));
        assert!(lines[1].contains("100.0") && lines[1].contains("110.0"));
        assert!(lines[1].contains("+10.00 %") && lines[1].ends_with("REGRESSION"));
        assert!(lines[2].contains("1000000.0") && lines[2].ends_with("skipped"));
        assert!(lines[3].contains("42.0") && lines[3].ends_with("no baseline"));
        let with_spread = render(&[Row {
            spread: Some(0.25),
            ..rows[0].clone()
        }]);
        assert!(with_spread.lines().next().unwrap().contains("spread"));
        assert!(with_spread.contains("0.250 %"));
    }

    fn environment() -> Environment {
        Environment {
            valgrind: "valgrind-3.19.0".into(),
            cpu: "AMD EPYC (sse4_2 avx avx2 fma bmi2)".into(),
            rustc: "rustc 1.95.0".into(),
        }
    }

    #[test]
    fn a_different_valgrind_cpu_or_compiler_is_a_mismatch() {
        let recorded = environment();
        assert!(recorded.mismatches(&environment()).is_empty());
        let here = Environment {
            valgrind: "valgrind-3.22.0".into(),
            ..environment()
        };
        let mismatches = recorded.mismatches(&here);
        assert_eq!(mismatches.len(), 1);
        assert!(mismatches[0].contains("valgrind") && mismatches[0].contains("3.22.0"));
        let here = Environment {
            cpu: "Intel Xeon (sse4_2 avx avx2 fma bmi2 avx512f)".into(),
            rustc: "rustc 1.96.0".into(),
            ..environment()
        };
        let mismatches = recorded.mismatches(&here);
        assert_eq!(mismatches.len(), 2);
        assert!(mismatches[0].starts_with("CPU"));
        assert!(mismatches[1].starts_with("compiler"));
    }

    #[test]
    fn baselines_survive_a_round_trip_through_json() {
        let mut probes = BTreeMap::new();
        probes.insert(
            "cgl-64".to_owned(),
            Baseline {
                per_op: 1_234_567.5,
                spread_percent: 0.0,
            },
        );
        probes.insert(
            "disk-read".to_owned(),
            Baseline {
                per_op: 812.3,
                spread_percent: 0.125,
            },
        );
        let baselines = Baselines {
            environment: environment(),
            commit: "c2887a2".into(),
            probes,
        };
        let json = baselines.to_json();
        assert_eq!(json["threshold_percent"], THRESHOLD_PERCENT);
        assert_eq!(Baselines::from_json(&json).unwrap(), baselines);
    }

    #[test]
    fn malformed_baselines_are_errors() {
        let mut json = json!({
            "environment": {"valgrind": "v", "cpu": "c", "rustc": "r"},
            "probes": {"memory-hit": {"instructions_per_op": 0.0}},
        });
        assert!(Baselines::from_json(&json).is_err());
        json["probes"]["memory-hit"]["instructions_per_op"] = json!(12.5);
        assert!(Baselines::from_json(&json).is_ok());
        json["environment"] = json!({"valgrind": "v"});
        assert!(Baselines::from_json(&json).is_err());
    }

    #[test]
    fn the_checked_in_baselines_parse_and_name_known_probes() {
        let Ok(text) = std::fs::read_to_string(root().join(BASELINES)) else {
            return;
        };
        let baselines = Baselines::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
        for name in baselines.probes.keys() {
            assert!(
                PROBES.iter().any(|probe| probe.name == name),
                "{name} in {BASELINES} is no probe"
            );
        }
    }

    #[test]
    fn options_parse() {
        let args = |list: &[&str]| list.iter().map(|arg| (*arg).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            parse_options(&args(&[])).unwrap(),
            Options {
                update: false,
                runs: 1,
                only: None
            }
        );
        let options =
            parse_options(&args(&["--bless", "--runs", "3", "--only", "cgl-64"])).unwrap();
        assert!(options.update);
        assert_eq!(options.runs, 3);
        assert_eq!(options.only.as_deref(), Some("cgl-64"));
        assert!(parse_options(&args(&["--runs", "0"])).is_err());
        assert!(parse_options(&args(&["--only", "nothing"])).is_err());
        assert!(parse_options(&args(&["--fast"])).is_err());
    }

    #[test]
    fn probe_names_are_unique() {
        for (index, probe) in PROBES.iter().enumerate() {
            assert!(
                PROBES[index + 1..]
                    .iter()
                    .all(|other| other.name != probe.name)
            );
        }
    }
}
