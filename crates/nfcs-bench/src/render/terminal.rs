//! The plain-text summary table printed at the end of a run.

use crate::report::{BenchmarkReport, ComponentStatus};

use super::{Totals, one_line, percent, target_text, value_with_unit, verdict_text};

/// A plain-text table of every measurement that has a target: component, measurement key,
/// measured value with its unit, target, margin (how far on the good side of the target, in
/// percent of it) and PASS/FAIL; then the components that were skipped or failed, with the
/// reason; then an overall line (`Overall: PASS (...)` or `Overall: FAIL (...)`).
///
/// Columns are padded to align in a fixed-width font; control characters in report text
/// are replaced by spaces so a row stays on one line.
pub fn terminal_table(report: &BenchmarkReport) -> String {
    let header = [
        "Component",
        "Measurement",
        "Measured",
        "Target",
        "Margin",
        "Result",
    ];
    let rows: Vec<[String; 6]> = report
        .targets()
        .map(|(component, measurement)| {
            [
                component.to_string(),
                one_line(&measurement.key()),
                one_line(&value_with_unit(measurement.value, &measurement.unit)),
                one_line(&target_text(measurement)),
                percent(measurement.margin()),
                verdict_text(measurement.verdict).to_owned(),
            ]
        })
        .collect();

    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("No measurement with a target.\n");
    } else {
        let mut widths = header.map(|title| title.chars().count());
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        // Measured and margin are numbers: right-aligned.
        let right = [false, false, true, false, true, false];
        let line = |cells: &[String]| {
            let mut text = String::new();
            for (index, cell) in cells.iter().enumerate() {
                if index > 0 {
                    text.push_str("  ");
                }
                let pad = widths[index].saturating_sub(cell.chars().count());
                if right[index] {
                    text.push_str(&" ".repeat(pad));
                    text.push_str(cell);
                } else {
                    text.push_str(cell);
                    if index + 1 < cells.len() {
                        text.push_str(&" ".repeat(pad));
                    }
                }
            }
            text.push('\n');
            text
        };
        out.push_str(&line(&header.map(str::to_owned)));
        let rule: Vec<String> = widths.iter().map(|width| "-".repeat(*width)).collect();
        out.push_str(&line(&rule));
        for row in &rows {
            out.push_str(&line(row));
        }
    }

    let mut first = true;
    for component in &report.components {
        let (what, why) = match &component.status {
            ComponentStatus::Ran => continue,
            ComponentStatus::Skipped { reason } => ("Skipped", reason),
            ComponentStatus::Failed { error } => ("FAILED", error),
        };
        if first {
            out.push('\n');
            first = false;
        }
        out.push_str(&format!(
            "{what}: {}: {}\n",
            component.component,
            one_line(why)
        ));
    }

    out.push('\n');
    out.push_str(&format!(
        "Overall: {} ({})\n",
        if report.passed() { "PASS" } else { "FAIL" },
        Totals::of(report).describe()
    ));
    out
}
