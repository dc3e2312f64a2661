//! Comparison with an earlier report (`--baseline`): regressions beyond the measured noise.
//!
//! [`load_report`] reads an earlier `report.json`. It refuses, with a
//! [`BenchError::Report`] naming the file, a file it cannot read, a file that is not JSON, a
//! report of another [`schema_version`](crate::report::SCHEMA_VERSION) (read from the raw JSON
//! before the rest is parsed, so the message names both versions even when the shapes
//! differ), and a report whose shape does not parse (the message names the offending field).
//!
//! [`compare`] refuses a baseline of another [`Profile`](crate::report::Profile): quick and
//! full runs measure over different durations and are not comparable.
//!
//! # Which measurements are compared
//!
//! Every measurement present in both reports, matched by component and
//! [`Measurement::key`] (its name and labels), whose [`Better`] is `Higher` or `Lower`
//! (every measurement with a target is one or the other). Measurements of one report only
//! are listed apart ([`BaselineComparison::only_in_baseline`],
//! [`BaselineComparison::only_in_current`]) and are never regressions.
//!
//! # The noise rule
//!
//! The change is relative to the baseline: `change = (current - baseline) / |baseline|`.
//! It is *worse* when it goes the wrong way for the measurement (up for `Lower`, down for
//! `Higher`). A change counts only beyond a threshold:
//!
//! - when either run recorded the measurement's noise ([`Measurement::noise`], the relative
//!   spread the component measured within its run, for example the interquartile range of
//!   repeated samples over their median): `threshold = max(3 x the larger of the two
//!   noises, 5 %)`;
//! - when neither did: `threshold = 10 %`.
//!
//! A measurement is [`Regressed`](RowVerdict::Regressed) when it is worse by more than its
//! threshold, [`Improved`](RowVerdict::Improved) when it is better by more than it, and
//! [`Unchanged`](RowVerdict::Unchanged) otherwise. Independently of the noise, a
//! measurement whose target passed in the baseline and fails now is a regression (a
//! target that was met and no longer is, even by a hair, is news). A value that is not
//! finite in either run, or a baseline of zero, has no relative change: only the target
//! rule applies to it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::components::Component;
use crate::error::BenchError;
use crate::report::{BenchmarkReport, Better, Measurement, SCHEMA_VERSION, Verdict};

/// The threshold when either run measured the noise: this many times the larger noise...
pub const NOISE_MULTIPLIER: f64 = 3.0;
/// ...but never less than this (5 %).
pub const NOISE_FLOOR: f64 = 0.05;
/// The threshold when neither run measured the noise (10 %).
pub const UNMEASURED_NOISE_THRESHOLD: f64 = 0.10;

/// How a measurement compares with the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowVerdict {
    /// Better by more than the threshold.
    Improved,
    /// Within the threshold.
    Unchanged,
    /// Worse by more than the threshold, or a target that passed and now fails.
    Regressed,
}

impl std::fmt::Display for RowVerdict {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            RowVerdict::Improved => "improved",
            RowVerdict::Unchanged => "unchanged",
            RowVerdict::Regressed => "REGRESSED",
        })
    }
}

/// One measurement of both reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRow {
    /// The component.
    pub component: Component,
    /// [`Measurement::key`].
    pub key: String,
    /// The unit of both values.
    pub unit: String,
    /// Which way is better.
    pub better: Better,
    /// The baseline's value (a NaN is written `null` and read back as NaN).
    #[serde(deserialize_with = "nan_from_null")]
    pub baseline: f64,
    /// This run's value (a NaN is written `null` and read back as NaN).
    #[serde(deserialize_with = "nan_from_null")]
    pub current: f64,
    /// `(current - baseline) / |baseline|`; `None` when not finite (a zero or non-finite
    /// value).
    pub change: Option<f64>,
    /// The relative change beyond which it counts (the noise rule of the module docs).
    pub threshold: f64,
    /// The baseline's verdict against its target.
    pub baseline_verdict: Verdict,
    /// This run's verdict against its target.
    pub current_verdict: Verdict,
    /// Improved, unchanged or regressed.
    pub verdict: RowVerdict,
    /// Why, in words (`worse by 12.0 %, beyond the 5.0 % noise threshold`).
    pub reason: String,
}

/// JSON writes a NaN as `null`: reads it back as NaN.
fn nan_from_null<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

/// A measurement in one report only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmatchedMeasurement {
    /// The component.
    pub component: Component,
    /// [`Measurement::key`].
    pub key: String,
}

/// The comparison of a run with a baseline report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineComparison {
    /// The baseline's file.
    pub baseline_path: PathBuf,
    /// When the baseline run started, in milliseconds since the Unix epoch.
    pub baseline_started: u64,
    /// The baseline's commit, when it recorded one.
    pub baseline_commit: Option<String>,
    /// Every compared measurement, in the current report's order.
    pub rows: Vec<ComparisonRow>,
    /// Compared measurements (`Higher`/`Lower`) of the baseline that this run does not have.
    pub only_in_baseline: Vec<UnmatchedMeasurement>,
    /// Compared measurements (`Higher`/`Lower`) of this run that the baseline does not have.
    pub only_in_current: Vec<UnmatchedMeasurement>,
}

impl BaselineComparison {
    /// The rows that regressed.
    pub fn regressions(&self) -> Vec<&ComparisonRow> {
        self.rows
            .iter()
            .filter(|row| row.verdict == RowVerdict::Regressed)
            .collect()
    }

    /// The rows that improved.
    pub fn improvements(&self) -> Vec<&ComparisonRow> {
        self.rows
            .iter()
            .filter(|row| row.verdict == RowVerdict::Improved)
            .collect()
    }

    /// Whether any measurement regressed.
    pub fn has_regressions(&self) -> bool {
        self.rows
            .iter()
            .any(|row| row.verdict == RowVerdict::Regressed)
    }
}

fn report_error(path: &Path, message: impl Into<String>) -> BenchError {
    BenchError::Report {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Reads a report written by [`BenchmarkReport::to_json`].
///
/// Values a run could not measure (`NaN`, written `null` in JSON) are read back: a
/// measurement without a value is dropped from the loaded report (with a note in its
/// component), a plot point without coordinates is dropped, a duration without a value
/// reads as zero.
///
/// # Errors
///
/// [`BenchError::Report`] when the file cannot be read, is not JSON, has another
/// `schema_version` than [`SCHEMA_VERSION`], or does not have a report's shape.
pub fn load_report(path: &Path) -> Result<BenchmarkReport, BenchError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| report_error(path, format!("it could not be read: {error}")))?;
    let mut value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|error| report_error(path, format!("it is not JSON: {error}")))?;
    let Some(object) = value.as_object() else {
        return Err(report_error(
            path,
            "it is not a benchmark report: the JSON is not an object",
        ));
    };
    let version = match object.get("schema_version") {
        None => {
            return Err(report_error(
                path,
                "it is not a benchmark report: it has no `schema_version`",
            ));
        }
        Some(version) => version.as_u64().ok_or_else(|| {
            report_error(
                path,
                format!(
                    "its `schema_version` is {version}, not a version number \
                     (this nfcs-bench reads schema version {SCHEMA_VERSION})"
                ),
            )
        })?,
    };
    if version != u64::from(SCHEMA_VERSION) {
        let tool = object
            .get("tool_version")
            .and_then(serde_json::Value::as_str)
            .map(|tool| format!(", written by nfcs-bench {tool}"))
            .unwrap_or_default();
        return Err(report_error(
            path,
            format!(
                "it has report schema version {version}{tool}, but this nfcs-bench \
                 (version {}) reads schema version {SCHEMA_VERSION}; record a new baseline \
                 with this version",
                env!("CARGO_PKG_VERSION")
            ),
        ));
    }
    restore_unmeasured(&mut value);
    serde_path_to_error::deserialize(value).map_err(|error| {
        let at = error.path().to_string();
        report_error(
            path,
            format!(
                "it is not a benchmark report of schema version {SCHEMA_VERSION}: at `{at}`: {}",
                error.inner()
            ),
        )
    })
}

/// JSON writes a non-finite `f64` as `null`, which does not read back as an `f64`: drops
/// measurements and points without values, and reads absent durations as zero.
fn restore_unmeasured(report: &mut serde_json::Value) {
    use serde_json::Value;
    let zero = || Value::from(0.0);
    if let Some(duration) = report.get_mut("duration_s").filter(|value| value.is_null()) {
        *duration = zero();
    }
    let Some(components) = report.get_mut("components").and_then(Value::as_array_mut) else {
        return;
    };
    for component in components {
        if let Some(duration) = component
            .get_mut("duration_s")
            .filter(|value| value.is_null())
        {
            *duration = zero();
        }
        let mut dropped = Vec::new();
        if let Some(measurements) = component
            .get_mut("measurements")
            .and_then(Value::as_array_mut)
        {
            measurements.retain(|measurement| {
                let unmeasured = measurement.get("value").is_some_and(Value::is_null);
                if unmeasured {
                    let name = measurement
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("?");
                    dropped.push(name.to_owned());
                }
                !unmeasured
            });
        }
        if !dropped.is_empty()
            && let Some(notes) = component.get_mut("notes").and_then(Value::as_array_mut)
        {
            notes.push(Value::from(format!(
                "read back without a value (not measured): {}",
                dropped.join(", ")
            )));
        }
        let Some(plots) = component.get_mut("plots").and_then(Value::as_array_mut) else {
            continue;
        };
        for plot in plots {
            let Some(series) = plot.get_mut("series").and_then(Value::as_array_mut) else {
                continue;
            };
            for one in series {
                if let Some(points) = one.get_mut("points").and_then(Value::as_array_mut) {
                    points.retain(|point| {
                        point
                            .as_array()
                            .is_none_or(|pair| pair.iter().all(|value| !value.is_null()))
                    });
                }
            }
        }
    }
}

/// The noise rule of the module docs: the relative change beyond which a difference counts.
pub fn noise_threshold(baseline_noise: Option<f64>, current_noise: Option<f64>) -> f64 {
    let noises = [baseline_noise, current_noise];
    let measured = noises
        .iter()
        .flatten()
        .copied()
        .filter(|noise| noise.is_finite())
        .map(f64::abs)
        .reduce(f64::max);
    match measured {
        Some(noise) => (NOISE_MULTIPLIER * noise).max(NOISE_FLOOR),
        None => UNMEASURED_NOISE_THRESHOLD,
    }
}

/// Compares `current` with `baseline` (read from `baseline_path`), by the rules of the
/// module docs.
///
/// # Errors
///
/// [`BenchError::Report`] when the baseline is of another profile (quick against full) or
/// another schema version.
pub fn compare(
    current: &BenchmarkReport,
    baseline: &BenchmarkReport,
    baseline_path: &Path,
) -> Result<BaselineComparison, BenchError> {
    if baseline.schema_version != current.schema_version {
        return Err(report_error(
            baseline_path,
            format!(
                "it has report schema version {}, this run schema version {}",
                baseline.schema_version, current.schema_version
            ),
        ));
    }
    if baseline.profile != current.profile {
        return Err(report_error(
            baseline_path,
            format!(
                "it is a report of the {} profile and this run is of the {} profile: their \
                 durations differ, so their figures are not comparable; compare with a \
                 baseline of the {} profile",
                baseline.profile, current.profile, current.profile
            ),
        ));
    }

    let compared = |measurement: &Measurement| {
        matches!(measurement.better, Better::Higher | Better::Lower) || measurement.target.is_some()
    };
    let mut in_baseline: BTreeMap<(Component, String), &Measurement> = BTreeMap::new();
    for component in &baseline.components {
        for measurement in component.measurements.iter().filter(|m| compared(m)) {
            in_baseline
                .entry((component.component, measurement.key()))
                .or_insert(measurement);
        }
    }

    let mut rows = Vec::new();
    let mut only_in_current = Vec::new();
    let mut matched = std::collections::BTreeSet::new();
    for component in &current.components {
        for measurement in component.measurements.iter().filter(|m| compared(m)) {
            let key = measurement.key();
            let lookup = (component.component, key);
            match in_baseline.get(&lookup) {
                Some(before) => {
                    rows.push(compare_one(component.component, before, measurement));
                    matched.insert(lookup);
                }
                None => only_in_current.push(UnmatchedMeasurement {
                    component: component.component,
                    key: lookup.1,
                }),
            }
        }
    }
    let only_in_baseline = in_baseline
        .keys()
        .filter(|lookup| !matched.contains(*lookup))
        .map(|(component, key)| UnmatchedMeasurement {
            component: *component,
            key: key.clone(),
        })
        .collect();

    Ok(BaselineComparison {
        baseline_path: baseline_path.to_owned(),
        baseline_started: baseline.started_unix_ms,
        baseline_commit: baseline.commit.clone(),
        rows,
        only_in_baseline,
        only_in_current,
    })
}

fn compare_one(component: Component, before: &Measurement, now: &Measurement) -> ComparisonRow {
    let better = match (now.better, now.target) {
        (Better::Neither, Some(target)) => match target.comparison {
            crate::report::Comparison::AtLeast => Better::Higher,
            crate::report::Comparison::AtMost => Better::Lower,
        },
        (better, _) => better,
    };
    let threshold = noise_threshold(before.noise, now.noise);
    let change = if before.value == now.value && before.value.is_finite() {
        Some(0.0)
    } else {
        Some((now.value - before.value) / before.value.abs()).filter(|change| change.is_finite())
    };
    // Positive when worse.
    let worse = change.map(|change| match better {
        Better::Higher => -change,
        Better::Lower => change,
        Better::Neither => 0.0,
    });
    let pct = |value: f64| format!("{:.1} %", value * 100.0);
    let (mut verdict, mut reason) = match worse {
        Some(worse) if worse > threshold => (
            RowVerdict::Regressed,
            format!(
                "worse by {}, beyond the {} noise threshold",
                pct(worse),
                pct(threshold)
            ),
        ),
        Some(worse) if -worse > threshold => (
            RowVerdict::Improved,
            format!(
                "better by {}, beyond the {} noise threshold",
                pct(-worse),
                pct(threshold)
            ),
        ),
        Some(_) => (
            RowVerdict::Unchanged,
            format!("within the {} noise threshold", pct(threshold)),
        ),
        None => (
            RowVerdict::Unchanged,
            "no relative change (a zero or non-finite value)".to_owned(),
        ),
    };
    if before.verdict == Verdict::Pass && now.verdict == Verdict::Fail {
        verdict = RowVerdict::Regressed;
        reason = format!("its target passed in the baseline and fails now; {reason}");
    }
    ComparisonRow {
        component,
        key: now.key(),
        unit: now.unit.clone(),
        better,
        baseline: before.value,
        current: now.value,
        change,
        threshold,
        baseline_verdict: before.verdict,
        current_verdict: now.verdict,
        verdict,
        reason,
    }
}

/// Reads the baseline at `path` and compares `current` with it ([`load_report`], then
/// [`compare`]).
///
/// # Errors
///
/// Those of [`load_report`] and [`compare`].
pub fn compare_with_file(
    current: &BenchmarkReport,
    path: &Path,
) -> Result<BaselineComparison, BenchError> {
    let baseline = load_report(path)?;
    compare(current, &baseline, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        assert_eq!(noise_threshold(None, None), UNMEASURED_NOISE_THRESHOLD);
        assert_eq!(noise_threshold(Some(0.001), None), NOISE_FLOOR);
        assert!((noise_threshold(Some(0.02), Some(0.04)) - 0.12).abs() < 1e-12);
        assert!((noise_threshold(None, Some(0.1)) - 0.3).abs() < 1e-12);
    }
}
