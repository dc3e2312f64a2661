//! The peer comparisons of `docs/benchmarks.md`: typed readers of what the workspace's
//! criterion benches and reference scripts leave behind, and the Markdown of each section.
//!
//! `cargo xtask compare` runs the benches (`cargo bench` with `CRITERION_HOME` and
//! `NFCS_BENCH_OUT`) and the NumPy and sentence-transformers references, then asks
//! `nfcs-bench peer-table` for each section's text; this module is what that command does.
//! Nothing here runs a benchmark: [`render`] reads files and formats them.
//!
//! What each [`PeerSection`] reads, under [`PeerInputs::criterion_home`] (criterion's
//! `<group>/<subject>/new/estimates.json`, the slashes of a group name turned into
//! underscores) and [`PeerInputs::bench_out`]:
//!
//! | section | criterion groups | reports in `bench_out` |
//! |---|---|---|
//! | `memory-tier` | | `memory_tier.json` (interleaved rounds) |
//! | `hot-path` | | `hot_path.json` |
//! | `disk-tier` | `disk_tier/{write,read}_4k_{random,text}` | `disk_tier_report.json` |
//! | `redis-tier` | | `redis_tier_report.json` |
//! | `math` | | `math_floor.json`, `math_compare.json` |
//! | `semantic` | | `semantic_1t.json`, `semantic_2t.json`, `st_reference.json` |
//! | `policy` | | `policy.json` |
//!
//! A report that is missing or is not what its bench writes is an error naming the file
//! ([`BenchError::Io`], [`BenchError::Report`]). A single criterion estimate that is missing
//! is a cell (or row) shown as `n/a`, as criterion may have been filtered; a section none of
//! whose estimates exist is an error naming the criterion directory, and an estimate that is
//! not criterion's JSON is an error naming it.
//!
//! [`PeerInputs::skipped`] says what the orchestrator skipped: for `math` the Python peers
//! and for `semantic` the sentence-transformers reference (their files are then not read and
//! the reason is printed under the table); for the other sections the whole benchmark (the
//! section's text is then the reason alone, as for the Redis tier on a machine without
//! `redis-server`).

use std::cell::Cell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::BenchError;

mod disk_tier;
mod hot_path;
mod math;
mod memory_tier;
mod policy;
mod redis_tier;
mod semantic;

/// A section of `docs/benchmarks.md`, named ([`PeerSection::name`], `FromStr`, clap) as
/// between its `<!-- name:begin -->` and `<!-- name:end -->` markers: `memory-tier`,
/// `hot-path`, `disk-tier`, `redis-tier`, `math`, `semantic`, `policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum PeerSection {
    /// The memory tier against moka, quick_cache and a sharded LRU.
    MemoryTier,
    /// The manager's memory-hit path, with and without metrics, beside quick_cache.
    HotPath,
    /// The disk tier against cacache and plain files.
    DiskTier,
    /// The Redis tier against the bare redis crate and redis-benchmark.
    RedisTier,
    /// The math kernels against NumPy and the machine's floors.
    Math,
    /// The semantic cache's embeddings beside sentence-transformers, and its lookups.
    Semantic,
    /// The policy cache: a full Cedar evaluation against a cached hit.
    Policy,
}

impl PeerSection {
    /// Every section, in the order of `docs/benchmarks.md`.
    pub const ALL: [PeerSection; 7] = [
        PeerSection::MemoryTier,
        PeerSection::HotPath,
        PeerSection::DiskTier,
        PeerSection::RedisTier,
        PeerSection::Math,
        PeerSection::Semantic,
        PeerSection::Policy,
    ];

    /// The section's name: `memory-tier`, `hot-path`, `disk-tier`, `redis-tier`, `math`,
    /// `semantic`, `policy`.
    pub fn name(self) -> &'static str {
        match self {
            PeerSection::MemoryTier => "memory-tier",
            PeerSection::HotPath => "hot-path",
            PeerSection::DiskTier => "disk-tier",
            PeerSection::RedisTier => "redis-tier",
            PeerSection::Math => "math",
            PeerSection::Semantic => "semantic",
            PeerSection::Policy => "policy",
        }
    }
}

impl fmt::Display for PeerSection {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// A name that is no [`PeerSection`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPeerSection {
    /// What was given.
    pub name: String,
}

impl fmt::Display for UnknownPeerSection {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let expected: Vec<&str> = PeerSection::ALL
            .iter()
            .map(|section| section.name())
            .collect();
        write!(
            formatter,
            "unknown section {:?} (expected one of: {})",
            self.name,
            expected.join(", ")
        )
    }
}

impl std::error::Error for UnknownPeerSection {}

impl FromStr for PeerSection {
    type Err = UnknownPeerSection;

    fn from_str(name: &str) -> Result<PeerSection, UnknownPeerSection> {
        PeerSection::ALL
            .into_iter()
            .find(|section| section.name() == name)
            .ok_or_else(|| UnknownPeerSection {
                name: name.to_owned(),
            })
    }
}

/// Where a section's figures are, and what the text says beside them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInputs {
    /// Criterion's output directory (`CRITERION_HOME` of the bench run).
    pub criterion_home: PathBuf,
    /// Where the benches and the reference scripts wrote their JSON reports
    /// (`NFCS_BENCH_OUT` of the bench run).
    pub bench_out: PathBuf,
    /// The `Machine:` line: CPU, cores, compiler ([`machine_description`]).
    pub machine: String,
    /// What was skipped, and why (`skipped: no NumPy (...)`); see the [module](self) for what
    /// it means in each section.
    pub skipped: Option<String>,
    /// The version of the `redis-server` the Redis tier ran against, for its `Command:` line
    /// ([`redis_server_version`]); empty when `None`.
    pub redis_server: Option<String>,
}

impl PeerInputs {
    /// Inputs with nothing skipped and no Redis version.
    pub fn new(
        criterion_home: impl Into<PathBuf>,
        bench_out: impl Into<PathBuf>,
        machine: impl Into<String>,
    ) -> PeerInputs {
        PeerInputs {
            criterion_home: criterion_home.into(),
            bench_out: bench_out.into(),
            machine: machine.into(),
            skipped: None,
            redis_server: None,
        }
    }
}

/// The Markdown of `section`, as it goes between the section's markers in
/// `docs/benchmarks.md`: the `Command:` and `Machine:` lines, then the tables and notes.
///
/// # Errors
///
/// [`BenchError::Io`] when a report the section needs cannot be read, [`BenchError::Report`]
/// when one is not what its bench writes, or when none of the section's criterion estimates
/// exist (see the [module](self)).
pub fn render(section: PeerSection, inputs: &PeerInputs) -> Result<String, BenchError> {
    match section {
        PeerSection::MemoryTier => memory_tier::section(inputs),
        PeerSection::HotPath => hot_path::section(inputs),
        PeerSection::DiskTier => disk_tier::section(inputs),
        PeerSection::RedisTier => redis_tier::section(inputs),
        PeerSection::Math => math::section(inputs),
        PeerSection::Semantic => semantic::section(inputs),
        PeerSection::Policy => policy::section(inputs),
    }
}

/// Replaces the text between `<!-- {name}:begin -->` and `<!-- {name}:end -->` in the file at
/// `path` with `body` (the markers stay, each on its own line around `body`).
///
/// # Errors
///
/// [`BenchError::Io`] when the file cannot be read or written; [`BenchError::Report`] when it
/// has no such pair of markers, in that order.
pub fn replace_section(path: &Path, name: &str, body: &str) -> Result<(), BenchError> {
    let text = std::fs::read_to_string(path).map_err(|source| BenchError::Io {
        action: "could not read",
        path: path.to_path_buf(),
        source,
    })?;
    let begin = format!("<!-- {name}:begin -->");
    let end = format!("<!-- {name}:end -->");
    let start = text.find(&begin);
    let stop = start.and_then(|start| text[start..].find(&end).map(|stop| start + stop));
    let (Some(start), Some(stop)) = (start, stop) else {
        return Err(BenchError::Report {
            path: path.to_path_buf(),
            message: format!("it has no {begin} ... {end} section"),
        });
    };
    let updated = format!("{}{begin}\n{body}\n{}", &text[..start], &text[stop..]);
    std::fs::write(path, updated).map_err(|source| BenchError::Io {
        action: "could not write",
        path: path.to_path_buf(),
        source,
    })
}

/// `CPU model, N cores available; rustc version`: the CPU from `/proc/cpuinfo` (`unknown
/// CPU` elsewhere), the parallelism this process may use, and `rustc --version` (empty when
/// `rustc` cannot be run).
pub fn machine_description() -> String {
    let machine = crate::report::MachineInfo::current();
    let (cpu, cores) = (machine.cpu, machine.cores);
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("{cpu}, {cores} cores available; {rustc}")
}

/// The version `redis-server --version` reports (`7.0.15`), or `None` without a
/// `redis-server` on the `PATH`.
pub fn redis_server_version() -> Option<String> {
    let output = Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .find(|word| word.starts_with("v="))
        .map(|version| version.trim_start_matches("v=").to_owned())
}

/// The arguments of `nfcs-bench peer-table`: one section's Markdown to standard output.
#[derive(Debug, Clone, clap::Args)]
pub struct PeerTableArgs {
    /// The section to render.
    #[arg(long, value_enum)]
    pub section: PeerSection,
    /// Criterion's output directory (CRITERION_HOME of the bench run).
    #[arg(long = "criterion", value_name = "DIR")]
    pub criterion_home: PathBuf,
    /// Where the benches and the reference scripts wrote their JSON (NFCS_BENCH_OUT).
    #[arg(long, value_name = "DIR")]
    pub bench_out: PathBuf,
    /// The Machine: line [default: this machine's CPU, cores and rustc --version].
    #[arg(long, value_name = "TEXT")]
    pub machine: Option<String>,
    /// What was skipped and why: for math the NumPy reference, for semantic the
    /// sentence-transformers reference, for any other section the whole benchmark.
    #[arg(long, value_name = "REASON")]
    pub skipped: Option<String>,
    /// The redis-server version for the redis-tier section [default: redis-server --version].
    #[arg(long, value_name = "VERSION")]
    pub redis_version: Option<String>,
    /// Also replace the section between its markers in this file (docs/benchmarks.md).
    #[arg(long, value_name = "FILE")]
    pub write_docs: Option<PathBuf>,
    /// The machine's load while the section ran (`cargo xtask compare` passes the 1-minute
    /// load average read before and after it), written as a `Load:` line under `Machine:`,
    /// so a run contaminated by other work shows in the table.
    #[arg(long, value_name = "TEXT")]
    pub load: Option<String>,
}

/// What `nfcs-bench peer-table` does: renders the section (the text to print, unchanged, to
/// standard output) and, with [`PeerTableArgs::write_docs`], replaces it in that file.
///
/// # Errors
///
/// Those of [`render`] and [`replace_section`].
pub fn peer_table(args: &PeerTableArgs) -> Result<String, BenchError> {
    let redis_server = args.redis_version.clone().or_else(|| {
        (args.section == PeerSection::RedisTier && args.skipped.is_none())
            .then(redis_server_version)
            .flatten()
    });
    let inputs = PeerInputs {
        criterion_home: args.criterion_home.clone(),
        bench_out: args.bench_out.clone(),
        machine: args.machine.clone().unwrap_or_else(machine_description),
        skipped: args.skipped.clone(),
        redis_server,
    };
    let mut text = render(args.section, &inputs)?;
    if let Some(load) = &args.load {
        text = with_load_line(&text, load);
    }
    if let Some(docs) = &args.write_docs {
        replace_section(docs, args.section.name(), &text)?;
    }
    Ok(text)
}

/// `text` with a `Load: LOAD` line after its `Machine:` line (at the top when it has none).
fn with_load_line(text: &str, load: &str) -> String {
    let line = format!("Load: {load}\n");
    match text.find("\nMachine: ") {
        Some(start) => {
            let end = text[start + 1..]
                .find('\n')
                .map_or(text.len(), |offset| start + 1 + offset + 1);
            format!("{}{line}{}", &text[..end], &text[end..])
        }
        None => line + text,
    }
}

/// The `Command:` and `Machine:` lines and a blank line.
fn heading(command: &str, machine: &str) -> String {
    format!("Command: {command}\nMachine: {machine}\n\n")
}

/// A JSON report of a bench, read into `T`.
fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|source| BenchError::Io {
        action: "could not read",
        path: path.to_path_buf(),
        source,
    })?;
    parse_json(path, &text)
}

fn parse_json<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, BenchError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let at = error.path().to_string();
        let inner = error.into_inner();
        BenchError::Report {
            path: path.to_path_buf(),
            message: if at == "." {
                inner.to_string()
            } else {
                format!("at {at}: {inner}")
            },
        }
    })
}

/// The part of criterion's `estimates.json` read here.
#[derive(Debug, Deserialize)]
struct Estimates {
    median: Estimate,
}

#[derive(Debug, Deserialize)]
struct Estimate {
    point_estimate: f64,
}

/// Criterion's medians under one directory, counting how many were found.
struct Criterion<'a> {
    home: &'a Path,
    found: Cell<usize>,
    first_missing: std::cell::RefCell<Option<PathBuf>>,
}

impl<'a> Criterion<'a> {
    fn new(home: &'a Path) -> Criterion<'a> {
        Criterion {
            home,
            found: Cell::new(0),
            first_missing: std::cell::RefCell::new(None),
        }
    }

    /// The median time per iteration of `group`/`subject` in nanoseconds; `None` when
    /// criterion has no estimate of it.
    fn median(&self, group: &str, subject: &str) -> Result<Option<f64>, BenchError> {
        // Criterion turns the slashes of a group name into underscores on disk.
        let path = self
            .home
            .join(group.replace('/', "_"))
            .join(subject)
            .join("new/estimates.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                self.first_missing.borrow_mut().get_or_insert(path);
                return Ok(None);
            }
            Err(source) => {
                return Err(BenchError::Io {
                    action: "could not read",
                    path,
                    source,
                });
            }
        };
        let estimates: Estimates = parse_json(&path, &text)?;
        self.found.set(self.found.get() + 1);
        Ok(Some(estimates.median.point_estimate))
    }

    /// An error unless at least one estimate was found.
    fn require_any(&self) -> Result<(), BenchError> {
        if self.found.get() > 0 {
            return Ok(());
        }
        let expected = self
            .first_missing
            .borrow()
            .as_ref()
            .map_or(String::new(), |path| format!(" (no {})", path.display()));
        Err(BenchError::Report {
            path: self.home.to_path_buf(),
            message: format!(
                "none of the section's criterion estimates is there{expected}: did the bench run \
                 with CRITERION_HOME set to this directory?"
            ),
        })
    }
}

/// `n/a` for a missing figure.
fn or_na(value: Option<String>) -> String {
    value.unwrap_or_else(|| "n/a".to_owned())
}
