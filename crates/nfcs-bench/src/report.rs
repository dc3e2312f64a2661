//! The typed results of a run: every measurement with its target and verdict, the series the
//! plots are drawn from, and what the run ran on.
//!
//! A [`BenchmarkReport`] is what the suite returns and what the binary writes as JSON
//! (`report.json`); the Markdown and HTML reports are renderings of it
//! ([`crate::render`]). Its [`schema_version`](BenchmarkReport::schema_version) changes
//! whenever a field changes meaning, and [`crate::baseline`] refuses to compare reports of
//! different versions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::components::Component;
use crate::config::BenchmarkConfig;

/// The version of the report's JSON shape. Bumped when a field is renamed, removed or changes
/// meaning; a baseline of another version is refused.
pub const SCHEMA_VERSION: u32 = 1;

/// How long the run's durations were: the configured ones, or the quick profile's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// The durations of the configuration (the spec's `BENCHMARK_CONFIG` by default).
    Full,
    /// Every duration shrunk so the whole suite takes under a minute
    /// ([`BenchmarkConfig::quick`]).
    Quick,
}

impl std::fmt::Display for Profile {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Profile::Full => "full",
            Profile::Quick => "quick",
        })
    }
}

/// Which way a target points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// The measured value must be at least the target (frequencies, FPS, hit ratios).
    AtLeast,
    /// The measured value must be at most the target (latencies, memory).
    AtMost,
}

/// A budget a measurement is held to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// At least or at most.
    pub comparison: Comparison,
    /// The budget, in the measurement's unit.
    pub value: f64,
}

impl Target {
    /// `measured >= value`.
    pub fn at_least(value: f64) -> Target {
        Target {
            comparison: Comparison::AtLeast,
            value,
        }
    }

    /// `measured <= value`.
    pub fn at_most(value: f64) -> Target {
        Target {
            comparison: Comparison::AtMost,
            value,
        }
    }

    /// Whether `measured` meets the target (a NaN never does).
    pub fn holds(&self, measured: f64) -> bool {
        match self.comparison {
            Comparison::AtLeast => measured >= self.value,
            Comparison::AtMost => measured <= self.value,
        }
    }

    /// How far `measured` is on the good side of the target, relative to the target:
    /// `+0.5` is 50 % better than needed, `-0.1` 10 % short. `None` for a zero target.
    pub fn margin(&self, measured: f64) -> Option<f64> {
        if self.value == 0.0 || !measured.is_finite() {
            return None;
        }
        Some(match self.comparison {
            Comparison::AtLeast => measured / self.value - 1.0,
            Comparison::AtMost => 1.0 - measured / self.value,
        })
    }

    /// `">= 30"` or `"<= 0.1"`.
    pub fn describe(&self) -> String {
        let sign = match self.comparison {
            Comparison::AtLeast => ">=",
            Comparison::AtMost => "<=",
        };
        format!("{sign} {}", format_number(self.value))
    }
}

/// Whether a measurement met its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The target holds.
    Pass,
    /// The target does not hold.
    Fail,
    /// No target: the figure is reported for information.
    Info,
}

/// Which way is better for a measurement without a target, for baseline comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Larger values are better (throughput).
    Higher,
    /// Smaller values are better (latency, memory).
    Lower,
    /// Neither: a count or a setting, never a regression.
    #[default]
    Neither,
}

/// One measured figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// A stable identifier, `snake_case` (`cgl_fps`, `coordination_latency_p95`).
    pub name: String,
    /// What distinguishes measurements of one name (`grid_size = "64"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The value, in `unit` (NaN when it could not be measured; written as `null` in JSON and
    /// read back as NaN).
    #[serde(deserialize_with = "f64_or_nan")]
    pub value: f64,
    /// `"steps/s"`, `"s"`, `"Hz"`, `"ratio"`, `"bytes"`, `"count"`, ...
    pub unit: String,
    /// The budget, when the spec or the configuration sets one.
    #[serde(default)]
    pub target: Option<Target>,
    /// Pass, fail or information.
    pub verdict: Verdict,
    /// Which way is better (used by baseline comparisons).
    #[serde(default)]
    pub better: Better,
    /// The relative spread of this figure measured within the run (for example the
    /// interquartile range of repeated samples over their median), when the component
    /// measured it; baseline comparisons treat changes within it as noise.
    #[serde(default)]
    pub noise: Option<f64>,
}

impl Measurement {
    /// A measurement without a target.
    pub fn info(name: impl Into<String>, value: f64, unit: impl Into<String>) -> Measurement {
        Measurement {
            name: name.into(),
            labels: BTreeMap::new(),
            value,
            unit: unit.into(),
            target: None,
            verdict: Verdict::Info,
            better: Better::Neither,
            noise: None,
        }
    }

    /// A measurement held to `target`; the verdict follows.
    pub fn with_target(
        name: impl Into<String>,
        value: f64,
        unit: impl Into<String>,
        target: Target,
    ) -> Measurement {
        let better = match target.comparison {
            Comparison::AtLeast => Better::Higher,
            Comparison::AtMost => Better::Lower,
        };
        Measurement {
            verdict: if target.holds(value) {
                Verdict::Pass
            } else {
                Verdict::Fail
            },
            target: Some(target),
            better,
            ..Measurement::info(name, value, unit)
        }
    }

    /// Adds a label.
    pub fn label(mut self, name: impl Into<String>, value: impl ToString) -> Measurement {
        self.labels.insert(name.into(), value.to_string());
        self
    }

    /// Says which way is better (for a measurement without a target).
    pub fn better(mut self, better: Better) -> Measurement {
        self.better = better;
        self
    }

    /// Records the relative noise measured within the run.
    pub fn noise(mut self, relative: f64) -> Measurement {
        self.noise = relative.is_finite().then_some(relative.abs());
        self
    }

    /// `name{label=value,...}`: unique within a component.
    pub fn key(&self) -> String {
        if self.labels.is_empty() {
            return self.name.clone();
        }
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        format!("{}{{{}}}", self.name, labels.join(","))
    }

    /// The margin to the target ([`Target::margin`]).
    pub fn margin(&self) -> Option<f64> {
        self.target.and_then(|target| target.margin(self.value))
    }
}

/// How a plot draws its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlotKind {
    /// Lines through the points, in x order (values over time).
    Line,
    /// One bar per point, labelled by x (a figure per grid size).
    Bar,
    /// A histogram: each point is (bucket's lower edge, count).
    Histogram,
}

/// A named sequence of points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// The legend.
    pub name: String,
    /// `(x, y)` pairs (a NaN, written as `null`, reads back as NaN).
    #[serde(deserialize_with = "points_or_nan")]
    pub points: Vec<(f64, f64)>,
    /// Drawn against the plot's second y axis (the user ramp beside latency, say).
    #[serde(default)]
    pub secondary_axis: bool,
}

impl Series {
    /// A series on the main axis.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points,
            secondary_axis: false,
        }
    }

    /// The same series, drawn against the second y axis.
    pub fn on_secondary_axis(mut self) -> Series {
        self.secondary_axis = true;
        self
    }
}

/// A chart of the HTML report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plot {
    /// A stable identifier (`cgl_fps_by_grid`), the element's id in the HTML report.
    pub id: String,
    /// The heading.
    pub title: String,
    /// How to draw.
    pub kind: PlotKind,
    /// The x axis label, with its unit.
    pub x_label: String,
    /// The y axis label, with its unit.
    pub y_label: String,
    /// The second y axis label, when a series uses it.
    #[serde(default)]
    pub secondary_y_label: Option<String>,
    /// The data.
    pub series: Vec<Series>,
}

/// Whether a component ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ComponentStatus {
    /// It ran; its measurements are in the report.
    Ran,
    /// It could not run here (no model, no Redis, no jemalloc), with the reason.
    Skipped {
        /// Why, and what to do about it.
        reason: String,
    },
    /// It failed with an error.
    Failed {
        /// The error.
        error: String,
    },
}

/// The results of one component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentReport {
    /// Which component.
    pub component: Component,
    /// Ran, skipped or failed.
    pub status: ComponentStatus,
    /// Wall-clock seconds the component took.
    #[serde(deserialize_with = "f64_or_nan")]
    pub duration_s: f64,
    /// The figures.
    pub measurements: Vec<Measurement>,
    /// The charts.
    #[serde(default)]
    pub plots: Vec<Plot>,
    /// What a reader needs to read the figures right (how a figure was measured, what was
    /// skipped within the component).
    #[serde(default)]
    pub notes: Vec<String>,
}

impl ComponentReport {
    /// An empty report of a component that ran.
    pub fn new(component: Component) -> ComponentReport {
        ComponentReport {
            component,
            status: ComponentStatus::Ran,
            duration_s: 0.0,
            measurements: Vec::new(),
            plots: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// The report of a component that could not run here.
    pub fn skipped(component: Component, reason: impl Into<String>) -> ComponentReport {
        ComponentReport {
            status: ComponentStatus::Skipped {
                reason: reason.into(),
            },
            ..ComponentReport::new(component)
        }
    }

    /// The report of a component that failed.
    pub fn failed(component: Component, error: impl Into<String>) -> ComponentReport {
        ComponentReport {
            status: ComponentStatus::Failed {
                error: error.into(),
            },
            ..ComponentReport::new(component)
        }
    }

    /// Adds a measurement.
    pub fn push(&mut self, measurement: Measurement) {
        self.measurements.push(measurement);
    }

    /// Adds a note.
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// The first measurement called `name` (with any labels).
    pub fn measurement(&self, name: &str) -> Option<&Measurement> {
        self.measurements.iter().find(|m| m.name == name)
    }

    /// The measurement called `name` whose labels include `label = value`.
    pub fn measurement_with(&self, name: &str, label: &str, value: &str) -> Option<&Measurement> {
        self.measurements
            .iter()
            .find(|m| m.name == name && m.labels.get(label).map(String::as_str) == Some(value))
    }

    /// Whether every measurement with a target passed (and the component did not fail).
    pub fn passed(&self) -> bool {
        !matches!(self.status, ComponentStatus::Failed { .. })
            && self.measurements.iter().all(|m| m.verdict != Verdict::Fail)
    }
}

/// What the run ran on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineInfo {
    /// The CPU model.
    pub cpu: String,
    /// Cores available to the process.
    pub cores: usize,
    /// Physical memory, in bytes (0 when unknown).
    pub memory_bytes: u64,
    /// `linux x86_64`, ...
    pub os: String,
    /// The host name.
    pub hostname: String,
}

impl MachineInfo {
    /// The machine this process runs on.
    pub fn current() -> MachineInfo {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|line| line.starts_with("model name"))
                    .and_then(|line| line.split(':').nth(1))
                    .map(|model| model.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".to_owned());
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|line| line.starts_with("MemTotal:"))
                    .and_then(|line| line.split_whitespace().nth(1))
                    .and_then(|kib| kib.parse::<u64>().ok())
            })
            .map_or(0, |kib| kib * 1024);
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_owned())
            .unwrap_or_default();
        MachineInfo {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes,
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            hostname,
        }
    }

    /// `AMD EPYC ..., 2 cores, 24.0 GiB, linux x86_64`.
    pub fn describe(&self) -> String {
        format!(
            "{}, {} cores, {:.1} GiB, {}",
            self.cpu,
            self.cores,
            self.memory_bytes as f64 / f64::from(1u32 << 30),
            self.os
        )
    }
}

/// The result of a run of the suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkReport {
    /// [`SCHEMA_VERSION`] when written.
    pub schema_version: u32,
    /// The crate version that wrote it.
    pub tool_version: String,
    /// Full or quick durations.
    pub profile: Profile,
    /// When the run started, in milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// Wall-clock seconds of the whole run.
    #[serde(deserialize_with = "f64_or_nan")]
    pub duration_s: f64,
    /// What it ran on.
    pub machine: MachineInfo,
    /// The git commit of the code under test, when known (`NFCS_BENCH_COMMIT`, or
    /// `git rev-parse HEAD` in the working directory).
    pub commit: Option<String>,
    /// The configuration, as run.
    pub config: BenchmarkConfig,
    /// The system under test as the suite found it (tiers running, what was skipped).
    #[serde(default)]
    pub system: Option<crate::system::SystemDescription>,
    /// One report per component, in the order they ran.
    pub components: Vec<ComponentReport>,
}

impl BenchmarkReport {
    /// Whether every target held and no component failed.
    pub fn passed(&self) -> bool {
        self.components.iter().all(ComponentReport::passed)
    }

    /// The report of `component`, when it ran.
    pub fn component(&self, component: Component) -> Option<&ComponentReport> {
        self.components.iter().find(|c| c.component == component)
    }

    /// Every measurement that has a target, with its component.
    pub fn targets(&self) -> impl Iterator<Item = (Component, &Measurement)> {
        self.components.iter().flat_map(|component| {
            component
                .measurements
                .iter()
                .filter(|m| m.target.is_some())
                .map(move |m| (component.component, m))
        })
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        // Every field is a plain value (f64 NaN becomes null), so this cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// A number for tables: integers without decimals, small values with enough digits.
pub fn format_number(value: f64) -> String {
    if !value.is_finite() {
        return format!("{value}");
    }
    let magnitude = value.abs();
    if magnitude == 0.0 {
        "0".to_owned()
    } else if magnitude >= 1000.0 || (value.fract() == 0.0 && magnitude < 1e15) {
        format!("{value:.0}")
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else if magnitude >= 0.1 {
        format!("{value:.3}")
    } else {
        format!("{value:.3e}")
    }
}

/// Reads a number, or `null` (how JSON writes a NaN) as NaN.
fn f64_or_nan<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

/// Reads plot points whose coordinates may be `null` (NaN).
fn points_or_nan<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<(f64, f64)>, D::Error> {
    let points = Vec::<(Option<f64>, Option<f64>)>::deserialize(deserializer)?;
    Ok(points
        .into_iter()
        .map(|(x, y)| (x.unwrap_or(f64::NAN), y.unwrap_or(f64::NAN)))
        .collect())
}
