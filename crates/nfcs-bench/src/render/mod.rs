//! Renderings of a report: a terminal table, Markdown, and one self-contained HTML file with
//! SVG plots.
//!
//! - [`terminal_table`]: every measurement that has a target (component, measurement,
//!   measured, target, margin, PASS/FAIL), then the components that were skipped or failed
//!   with their reasons, then an overall line. What the binary prints at the end of a run.
//! - [`markdown`]: a header (profile, machine, commit, start time in UTC, duration), the same
//!   target table, a section per component with every measurement, its notes and, for a
//!   skipped or failed component, why; and the [baseline comparison](crate::baseline) when
//!   there is one.
//! - [`html`]: the same content in one HTML file with inline CSS and inline SVG charts, one
//!   per [`Plot`](crate::report::Plot), drawn by its [`PlotKind`](crate::report::PlotKind).
//!   It has no script, font, stylesheet or image of its own to fetch, so it opens offline.
//!   Each chart is an `<svg>` whose `id` is the plot's id, with `data-kind`, `data-series`
//!   and `data-points` (the number of finite points drawn) attributes; a plot without finite
//!   points says "no data".
//!
//! Every text that comes from a report (labels, notes, reasons, names) is escaped for the
//! format it goes into. Non-finite values are written `NaN`/`inf` in tables and left out of
//! charts (the chart says how many were left out).
//!
//! [`write_reports`] writes the JSON report and both renderings into a directory.

use std::path::{Path, PathBuf};

use crate::baseline::BaselineComparison;
use crate::error::BenchError;
use crate::report::{BenchmarkReport, ComponentStatus, Measurement, Verdict};

mod html;
mod markdown;
mod svg;
mod terminal;

pub use html::html;
pub use markdown::markdown;
pub use svg::{nice_ticks, plot_svg};
pub use terminal::terminal_table;

/// The file names [`write_reports`] uses.
pub const JSON_FILE: &str = "report.json";
/// The Markdown summary's file name.
pub const MARKDOWN_FILE: &str = "report.md";
/// The HTML report's file name.
pub const HTML_FILE: &str = "report.html";

/// Where [`write_reports`] wrote the three files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenReports {
    /// `report.json`.
    pub json: PathBuf,
    /// `report.md`.
    pub markdown: PathBuf,
    /// `report.html`.
    pub html: PathBuf,
}

/// Writes `report.json`, `report.md` and `report.html` into `directory` (created when
/// missing), the renderings including `comparison` when given.
pub fn write_reports(
    directory: &Path,
    report: &BenchmarkReport,
    comparison: Option<&BaselineComparison>,
) -> Result<WrittenReports, BenchError> {
    std::fs::create_dir_all(directory).map_err(|source| BenchError::Io {
        action: "could not create",
        path: directory.to_owned(),
        source,
    })?;
    let written = WrittenReports {
        json: directory.join(JSON_FILE),
        markdown: directory.join(MARKDOWN_FILE),
        html: directory.join(HTML_FILE),
    };
    for (path, contents) in [
        (&written.json, report.to_json()),
        (&written.markdown, markdown(report, comparison)),
        (&written.html, html(report, comparison)),
    ] {
        std::fs::write(path, contents).map_err(|source| BenchError::Io {
            action: "could not write",
            path: path.clone(),
            source,
        })?;
    }
    Ok(written)
}

/// A value with its unit for the summary tables, in a readable scale: seconds below one as
/// `ms`, `us` (micro) or `ns`, bytes from 1 KiB as `KiB`, `MiB`, `GiB`; other units as they
/// are. Numbers by [`format_number`](crate::report::format_number).
pub(crate) fn value_with_unit(value: f64, unit: &str) -> String {
    let (scaled, unit) = scaled(value, unit);
    let number = if unit.ends_with("iB") {
        format!("{scaled:.1}")
    } else {
        crate::report::format_number(scaled)
    };
    if unit.is_empty() {
        number
    } else {
        format!("{number} {unit}")
    }
}

fn scaled(value: f64, unit: &str) -> (f64, &str) {
    let magnitude = value.abs();
    match unit {
        "s" if value.is_finite() && magnitude > 0.0 && magnitude < 1.0 => {
            if magnitude >= 1e-3 {
                (value * 1e3, "ms")
            } else if magnitude >= 1e-6 {
                (value * 1e6, "\u{b5}s")
            } else {
                (value * 1e9, "ns")
            }
        }
        "bytes" if value.is_finite() && magnitude >= 1024.0 => {
            let units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
            let mut scaled = value / 1024.0;
            let mut index = 0;
            while scaled.abs() >= 1024.0 && index + 1 < units.len() {
                scaled /= 1024.0;
                index += 1;
            }
            (scaled, units[index])
        }
        _ => (value, unit),
    }
}

/// The target of a measurement in the scale of [`value_with_unit`] (`<= 10 ms`), or `-`.
pub(crate) fn target_text(measurement: &Measurement) -> String {
    match measurement.target {
        Some(target) => {
            let sign = match target.comparison {
                crate::report::Comparison::AtLeast => ">=",
                crate::report::Comparison::AtMost => "<=",
            };
            format!(
                "{sign} {}",
                value_with_unit(target.value, &measurement.unit)
            )
        }
        None => "-".to_owned(),
    }
}

/// A relative figure as a signed percentage (`+12.3 %`), or `n/a`.
pub(crate) fn percent(relative: Option<f64>) -> String {
    match relative {
        Some(value) if value.is_finite() => format!("{:+.1} %", value * 100.0),
        _ => "n/a".to_owned(),
    }
}

/// `PASS`, `FAIL` or `INFO`.
pub(crate) fn verdict_text(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::Info => "INFO",
    }
}

/// `ran`, `skipped` or `FAILED`.
pub(crate) fn status_text(status: &ComponentStatus) -> &'static str {
    match status {
        ComponentStatus::Ran => "ran",
        ComponentStatus::Skipped { .. } => "skipped",
        ComponentStatus::Failed { .. } => "FAILED",
    }
}

/// Counts for the overall line.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Totals {
    pub(crate) targets: usize,
    pub(crate) passed: usize,
    pub(crate) failed: usize,
    pub(crate) skipped: usize,
    pub(crate) failed_components: usize,
}

impl Totals {
    pub(crate) fn of(report: &BenchmarkReport) -> Totals {
        let mut totals = Totals::default();
        for (_, measurement) in report.targets() {
            totals.targets += 1;
            match measurement.verdict {
                Verdict::Pass => totals.passed += 1,
                Verdict::Fail => totals.failed += 1,
                Verdict::Info => {}
            }
        }
        for component in &report.components {
            match component.status {
                ComponentStatus::Ran => {}
                ComponentStatus::Skipped { .. } => totals.skipped += 1,
                ComponentStatus::Failed { .. } => totals.failed_components += 1,
            }
        }
        totals
    }

    /// `12 targets: 11 passed, 1 failed; 1 component skipped, 0 failed`.
    pub(crate) fn describe(&self) -> String {
        let plural = |count: usize, one: &str, many: &str| {
            if count == 1 {
                format!("{count} {one}")
            } else {
                format!("{count} {many}")
            }
        };
        let mut text = format!(
            "{}: {} passed, {} failed",
            plural(self.targets, "target", "targets"),
            self.passed,
            self.failed
        );
        if self.skipped > 0 {
            text.push_str(&format!(
                "; {} skipped",
                plural(self.skipped, "component", "components")
            ));
        }
        if self.failed_components > 0 {
            text.push_str(&format!(
                "; {} failed",
                plural(self.failed_components, "component", "components")
            ));
        }
        text
    }
}

/// `2026-12-01 13:21:04 UTC` from milliseconds since the Unix epoch (proleptic Gregorian).
pub(crate) fn utc_time(unix_ms: u64) -> String {
    let seconds = unix_ms / 1000;
    let days = i64::try_from(seconds / 86_400).unwrap_or(i64::MAX / 2);
    let second_of_day = seconds % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// Seconds as `45.2 s`, `12 min 3 s` or `1 h 2 min`.
pub(crate) fn duration_text(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return format!("{seconds} s");
    }
    if seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let whole = seconds.round() as u64;
    if whole < 3600 {
        format!("{} min {} s", whole / 60, whole % 60)
    } else {
        format!("{} h {} min", whole / 3600, whole / 60 % 60)
    }
}

/// Text on one line: control characters (newlines included) become spaces.
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_time_of_known_instants() {
        assert_eq!(utc_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_time(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_time(1_796_131_264_000), "2026-12-01 13:21:04 UTC");
    }

    #[test]
    fn durations() {
        assert_eq!(duration_text(45.24), "45.2 s");
        assert_eq!(duration_text(723.0), "12 min 3 s");
        assert_eq!(duration_text(3720.0), "1 h 2 min");
    }

    #[test]
    fn scaled_units() {
        assert_eq!(value_with_unit(0.004, "s"), "4 ms");
        assert_eq!(value_with_unit(2.5e-6, "s"), "2.500 \u{b5}s");
        assert_eq!(value_with_unit(3.0, "s"), "3 s");
        assert_eq!(value_with_unit(f64::NAN, "s"), "NaN s");
        assert_eq!(value_with_unit(2.5e8, "bytes"), "238.4 MiB");
        assert_eq!(value_with_unit(512.0, "bytes"), "512 bytes");
        assert_eq!(value_with_unit(120.0, "steps/s"), "120 steps/s");
    }

    #[test]
    fn percentages() {
        assert_eq!(percent(Some(0.123)), "+12.3 %");
        assert_eq!(percent(Some(-0.05)), "-5.0 %");
        assert_eq!(percent(None), "n/a");
        assert_eq!(percent(Some(f64::NAN)), "n/a");
    }
}
