//! The Markdown summary.

use std::fmt::Write as _;

use crate::baseline::BaselineComparison;
use crate::report::{BenchmarkReport, ComponentStatus, format_number};

use super::{
    Totals, duration_text, percent, status_text, target_text, utc_time, value_with_unit,
    verdict_text,
};

/// Escapes text for Markdown (a table cell or a paragraph): characters that would make
/// markup (`|`, `<`, `*`, `` ` ``, `[`, `]`, `\`, and `_` outside a word) are
/// backslash-escaped, so a label or a note cannot inject HTML or break a table; line breaks
/// become spaces.
pub(crate) fn escape_markdown(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    for (index, c) in chars.iter().enumerate() {
        match c {
            '\\' | '|' | '<' | '*' | '`' | '[' | ']' | '#' | '~' => {
                out.push('\\');
                out.push(*c);
            }
            '_' => {
                let before = index
                    .checked_sub(1)
                    .and_then(|i| chars.get(i))
                    .is_some_and(|c| c.is_alphanumeric());
                let after = chars.get(index + 1).is_some_and(|c| c.is_alphanumeric());
                if !(before && after) {
                    out.push('\\');
                }
                out.push('_');
            }
            '&' => out.push_str("&amp;"),
            c if c.is_control() => out.push(' '),
            c => out.push(*c),
        }
    }
    out
}

/// The Markdown summary of `report`: a header (profile, tool and schema version, machine,
/// commit, start time in UTC, duration, overall verdict), the table of every target
/// (measured, target, margin, PASS/FAIL), the baseline comparison when `comparison` is
/// given, and a section per component with its status, every measurement (value, unit,
/// target, verdict, noise), its notes and, for a component that was skipped or failed, why.
pub fn markdown(report: &BenchmarkReport, comparison: Option<&BaselineComparison>) -> String {
    let mut out = String::new();
    let totals = Totals::of(report);
    let overall = if report.passed() { "PASS" } else { "FAIL" };
    let _ = writeln!(out, "# NFCS benchmark report\n");
    let _ = writeln!(out, "- **Overall: {overall}** ({})", totals.describe());
    let _ = writeln!(out, "- Profile: {}", report.profile);
    let _ = writeln!(
        out,
        "- Tool: nfcs-bench {} (report schema {})",
        escape_markdown(&report.tool_version),
        report.schema_version
    );
    let _ = writeln!(
        out,
        "- Machine: {}",
        escape_markdown(&report.machine.describe())
    );
    if !report.machine.hostname.is_empty() {
        let _ = writeln!(out, "- Host: {}", escape_markdown(&report.machine.hostname));
    }
    let _ = writeln!(
        out,
        "- Commit: {}",
        report
            .commit
            .as_deref()
            .map_or_else(|| "unknown".to_owned(), escape_markdown)
    );
    let _ = writeln!(out, "- Started: {}", utc_time(report.started_unix_ms));
    let _ = writeln!(out, "- Duration: {}", duration_text(report.duration_s));
    if let Some(system) = &report.system {
        let _ = writeln!(
            out,
            "- System under test: {}; constitution: {}",
            escape_markdown(&system.tiers.join(", ")),
            escape_markdown(&system.constitution)
        );
        for note in &system.notes {
            let _ = writeln!(out, "- Note: {}", escape_markdown(note));
        }
    }

    let _ = writeln!(out, "\n## Targets\n");
    let targets: Vec<_> = report.targets().collect();
    if targets.is_empty() {
        let _ = writeln!(out, "No measurement with a target.");
    } else {
        let _ = writeln!(
            out,
            "| Component | Measurement | Measured | Target | Margin | Result |"
        );
        let _ = writeln!(out, "|---|---|---:|---|---:|---|");
        for (component, measurement) in targets {
            let verdict = verdict_text(measurement.verdict);
            let _ = writeln!(
                out,
                "| {component} | {} | {} | {} | {} | {} |",
                escape_markdown(&measurement.key()),
                escape_markdown(&value_with_unit(measurement.value, &measurement.unit)),
                escape_markdown(&target_text(measurement)),
                percent(measurement.margin()),
                if verdict == "FAIL" {
                    "**FAIL**"
                } else {
                    verdict
                }
            );
        }
    }
    let not_run: Vec<_> = report
        .components
        .iter()
        .filter(|component| component.status != ComponentStatus::Ran)
        .collect();
    if !not_run.is_empty() {
        out.push('\n');
        for component in not_run {
            let (what, why) = match &component.status {
                ComponentStatus::Skipped { reason } => ("skipped", reason),
                ComponentStatus::Failed { error } => ("**FAILED**", error),
                ComponentStatus::Ran => continue,
            };
            let _ = writeln!(
                out,
                "- {} {what}: {}",
                component.component,
                escape_markdown(why)
            );
        }
    }

    if let Some(comparison) = comparison {
        out.push_str(&comparison_markdown(comparison));
    }

    let _ = writeln!(out, "\n## Components");
    for component in &report.components {
        let _ = writeln!(
            out,
            "\n### {} ({}, {})\n",
            component.component,
            status_text(&component.status),
            duration_text(component.duration_s)
        );
        match &component.status {
            ComponentStatus::Ran => {}
            ComponentStatus::Skipped { reason } => {
                let _ = writeln!(out, "Skipped: {}\n", escape_markdown(reason));
            }
            ComponentStatus::Failed { error } => {
                let _ = writeln!(out, "**Failed**: {}\n", escape_markdown(error));
            }
        }
        if !component.measurements.is_empty() {
            let _ = writeln!(
                out,
                "| Measurement | Value | Unit | Target | Verdict | Noise |"
            );
            let _ = writeln!(out, "|---|---:|---|---|---|---:|");
            for measurement in &component.measurements {
                let verdict = verdict_text(measurement.verdict);
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} |",
                    escape_markdown(&measurement.key()),
                    format_number(measurement.value),
                    escape_markdown(&measurement.unit),
                    escape_markdown(
                        &measurement
                            .target
                            .map_or_else(|| "-".to_owned(), |target| target.describe())
                    ),
                    if verdict == "FAIL" {
                        "**FAIL**"
                    } else {
                        verdict
                    },
                    measurement
                        .noise
                        .map_or_else(|| "-".to_owned(), |noise| format!("{:.1} %", noise * 100.0))
                );
            }
            out.push('\n');
        }
        if !component.plots.is_empty() {
            let titles: Vec<String> = component
                .plots
                .iter()
                .map(|plot| escape_markdown(&plot.title))
                .collect();
            let _ = writeln!(out, "Plots (in the HTML report): {}.\n", titles.join("; "));
        }
        if !component.notes.is_empty() {
            let _ = writeln!(out, "Notes:\n");
            for note in &component.notes {
                let _ = writeln!(out, "- {}", escape_markdown(note));
            }
        }
    }
    // One blank line between blocks.
    while out.contains("\n\n\n") {
        out = out.replace("\n\n\n", "\n\n");
    }
    out
}

fn comparison_markdown(comparison: &BaselineComparison) -> String {
    let mut out = String::new();
    let regressions = comparison.regressions().len();
    let _ = writeln!(out, "\n## Baseline comparison\n");
    let _ = writeln!(
        out,
        "Compared with {} (started {}{}): **{regressions} regression{}**, {} improvement{}, \
         {} measurements compared.\n",
        escape_markdown(&comparison.baseline_path.display().to_string()),
        utc_time(comparison.baseline_started),
        comparison
            .baseline_commit
            .as_deref()
            .map(|commit| format!(", commit {}", escape_markdown(commit)))
            .unwrap_or_default(),
        if regressions == 1 { "" } else { "s" },
        comparison.improvements().len(),
        if comparison.improvements().len() == 1 {
            ""
        } else {
            "s"
        },
        comparison.rows.len(),
    );
    let _ = writeln!(
        out,
        "A change counts beyond max(3 x the larger noise measured in the two runs, 5 %), or \
         10 % for a measurement without measured noise; a target that passed in the baseline \
         and fails now is a regression regardless.\n"
    );
    if !comparison.rows.is_empty() {
        let _ = writeln!(
            out,
            "| Component | Measurement | Baseline | Current | Change | Threshold | Verdict |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---|");
        for row in &comparison.rows {
            let verdict = row.verdict.to_string();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {:.1} % | {} |",
                row.component,
                escape_markdown(&row.key),
                escape_markdown(&value_with_unit(row.baseline, &row.unit)),
                escape_markdown(&value_with_unit(row.current, &row.unit)),
                percent(row.change),
                row.threshold * 100.0,
                if row.verdict == crate::baseline::RowVerdict::Regressed {
                    format!("**{verdict}**: {}", escape_markdown(&row.reason))
                } else {
                    verdict
                }
            );
        }
    }
    for (what, list) in [
        ("Only in the baseline", &comparison.only_in_baseline),
        ("Only in this run", &comparison.only_in_current),
    ] {
        if !list.is_empty() {
            let keys: Vec<String> = list
                .iter()
                .map(|unmatched| {
                    format!(
                        "{} {}",
                        unmatched.component,
                        escape_markdown(&unmatched.key)
                    )
                })
                .collect();
            let _ = writeln!(out, "\n{what}: {}.", keys.join(", "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_escaping() {
        assert_eq!(escape_markdown("cgl_fps"), "cgl_fps");
        assert_eq!(escape_markdown("_x_"), "\\_x\\_");
        assert_eq!(escape_markdown("a|b<script>"), "a\\|b\\<script>");
        assert_eq!(escape_markdown("line\nbreak"), "line break");
    }
}
