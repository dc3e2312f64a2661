//! The self-contained HTML report.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::baseline::{BaselineComparison, RowVerdict};
use crate::report::{BenchmarkReport, ComponentStatus, Verdict, format_number};

use super::svg::{escape, plot_svg};
use super::{
    Totals, duration_text, percent, status_text, target_text, utc_time, value_with_unit,
    verdict_text,
};

const STYLE: &str = r#"
:root { color-scheme: light; --pass: #1a7f37; --fail: #cf222e; --info: #57606a; --skip: #9a6700;
  --border: #d0d7de; --muted: #57606a; --stripe: #f6f8fa; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  margin: 0 auto; padding: 1.5rem 2rem 3rem; max-width: 1100px; color: #1f2328; line-height: 1.45; }
h1 { margin: 0 0 .5rem; font-size: 1.7rem; }
h2 { margin-top: 2.2rem; border-bottom: 1px solid var(--border); padding-bottom: .3rem; }
h3 { margin-top: 1.6rem; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: .8rem 0; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; }
.overall { display: inline-block; padding: .25rem .8rem; border-radius: 999px; color: #fff; font-weight: 700; }
.overall.pass { background: var(--pass); }
.overall.fail { background: var(--fail); }
table { border-collapse: collapse; width: 100%; margin: .6rem 0 1rem; font-size: .92rem; }
th, td { border: 1px solid var(--border); padding: .3rem .55rem; text-align: left; vertical-align: top; }
th { background: var(--stripe); }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.key { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .85rem; word-break: break-word; }
.verdict { font-weight: 700; }
.pass .verdict, .verdict.pass, .improved .verdict { color: var(--pass); }
.fail .verdict, .verdict.fail, .regressed .verdict { color: var(--fail); }
.info .verdict, .unchanged .verdict { color: var(--info); }
tr.fail td, tr.regressed td { background: #ffebe9; }
.status { font-weight: 600; }
.status.ran { color: var(--pass); }
.status.skipped { color: var(--skip); }
.status.failed { color: var(--fail); }
.reason { border-left: 4px solid var(--skip); background: #fff8c5; padding: .4rem .7rem; }
.reason.failed { border-color: var(--fail); background: #ffebe9; }
nav ul { columns: 2; padding-left: 1.2rem; }
figure.chart { margin: 1rem 0 1.6rem; }
figure.chart figcaption { font-weight: 600; margin-bottom: .3rem; }
svg.plot { width: 100%; height: auto; max-width: 760px; display: block; font-size: 12px;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
svg.plot .area { fill: #fff; stroke: var(--border); }
svg.plot .grid { stroke: #eaeef2; }
svg.plot .axis, svg.plot .tick-mark { stroke: #57606a; }
svg.plot .tick, svg.plot .value { fill: #424a53; font-size: 11px; }
svg.plot .axis-title { fill: #1f2328; font-size: 12px; }
svg.plot .no-data { fill: var(--muted); font-size: 18px; }
svg.plot .skipped { fill: var(--fail); font-size: 11px; }
svg.plot .legend-text { fill: #1f2328; font-size: 12px; }
svg.plot .bar { stroke: #fff; stroke-width: .5; }
footer { margin-top: 3rem; color: var(--muted); font-size: .85rem; }
@media print { body { max-width: none; } nav { display: none; } }
"#;

/// An id for an element: the text with whitespace replaced, unique in the document.
fn unique_id(wanted: &str, used: &mut BTreeSet<String>) -> String {
    let base: String = wanted
        .chars()
        .map(|c| if c.is_whitespace() { '-' } else { c })
        .collect();
    let base = if base.is_empty() {
        "plot".to_owned()
    } else {
        base
    };
    let mut id = base.clone();
    let mut suffix = 2;
    while used.contains(&id) {
        id = format!("{base}-{suffix}");
        suffix += 1;
    }
    used.insert(id.clone());
    id
}

fn verdict_class(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Info => "info",
    }
}

/// The HTML report of `report`: one self-contained file (inline CSS, inline SVG, no script,
/// nothing fetched) with the header, the table of every target (pass/fail coloured), the
/// baseline comparison when `comparison` is given, and a section per component with its
/// status, its charts ([`plot_svg`](super::plot_svg): each `<svg>`'s `id` is the plot's id,
/// made unique in the document by a `-2`, `-3` suffix when two plots share one), its
/// measurements and its notes.
pub fn html(report: &BenchmarkReport, comparison: Option<&BaselineComparison>) -> String {
    let mut out = String::new();
    let totals = Totals::of(report);
    let passed = report.passed();
    let overall = if passed { "PASS" } else { "FAIL" };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>NFCS benchmark report: {overall}, {profile} profile, {started}</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n",
        profile = report.profile,
        started = utc_time(report.started_unix_ms),
    );

    // Header.
    let _ = write!(
        out,
        "<header>\n<h1>NFCS benchmark report</h1>\n<p><span id=\"overall\" class=\"overall {}\">\
         {overall}</span> {}</p>\n<dl class=\"meta\">",
        if passed { "pass" } else { "fail" },
        escape(&totals.describe())
    );
    let commit = report.commit.as_deref().unwrap_or("unknown");
    for (term, description) in [
        ("Profile", report.profile.to_string()),
        (
            "Tool",
            format!(
                "nfcs-bench {} (report schema {})",
                report.tool_version, report.schema_version
            ),
        ),
        ("Machine", report.machine.describe()),
        ("Host", report.machine.hostname.clone()),
        ("Commit", commit.to_owned()),
        ("Started", utc_time(report.started_unix_ms)),
        ("Duration", duration_text(report.duration_s)),
    ] {
        let _ = write!(out, "<dt>{term}</dt><dd>{}</dd>", escape(&description));
    }
    if let Some(system) = &report.system {
        let _ = write!(
            out,
            "<dt>System</dt><dd>{}; constitution: {}</dd>",
            escape(&system.tiers.join(", ")),
            escape(&system.constitution)
        );
        for note in &system.notes {
            let _ = write!(out, "<dt>Note</dt><dd>{}</dd>", escape(note));
        }
    }
    out.push_str("</dl>\n</header>\n");

    // Contents.
    out.push_str("<nav><h2>Contents</h2><ul><li><a href=\"#targets\">Targets</a></li>");
    if comparison.is_some() {
        out.push_str("<li><a href=\"#baseline\">Baseline comparison</a></li>");
    }
    for component in &report.components {
        let _ = write!(
            out,
            "<li><a href=\"#component-{name}\">{name}</a> <span class=\"status {class}\">{status}</span></li>",
            name = component.component,
            class = status_class(&component.status),
            status = status_text(&component.status),
        );
    }
    out.push_str("</ul></nav>\n");

    // Targets.
    out.push_str("<section id=\"targets\">\n<h2>Targets</h2>\n");
    let targets: Vec<_> = report.targets().collect();
    if targets.is_empty() {
        out.push_str("<p>No measurement with a target.</p>\n");
    } else {
        out.push_str(
            "<table class=\"targets\"><thead><tr><th>Component</th><th>Measurement</th>\
             <th>Measured</th><th>Target</th><th>Margin</th><th>Result</th></tr></thead><tbody>\n",
        );
        for (component, measurement) in targets {
            let class = verdict_class(measurement.verdict);
            let _ = writeln!(
                out,
                "<tr class=\"{class}\"><td>{component}</td><td class=\"key\">{}</td>\
                 <td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td>\
                 <td class=\"verdict\">{}</td></tr>",
                escape(&measurement.key()),
                escape(&value_with_unit(measurement.value, &measurement.unit)),
                escape(&target_text(measurement)),
                escape(&percent(measurement.margin())),
                verdict_text(measurement.verdict)
            );
        }
        out.push_str("</tbody></table>\n");
    }
    for component in &report.components {
        if let Some((class, what, why)) = reason(&component.status) {
            let _ = writeln!(
                out,
                "<p class=\"reason {class}\"><strong>{} {what}</strong>: {}</p>",
                component.component,
                escape(why)
            );
        }
    }
    out.push_str("</section>\n");

    if let Some(comparison) = comparison {
        out.push_str(&comparison_html(comparison));
    }

    // Components.
    let mut ids = BTreeSet::new();
    for component in &report.components {
        let _ = write!(
            out,
            "<section id=\"component-{name}\" class=\"component\">\n<h2>{name}</h2>\n\
             <p>Status: <span class=\"status {class}\">{status}</span>, {duration}</p>\n",
            name = component.component,
            class = status_class(&component.status),
            status = status_text(&component.status),
            duration = escape(&duration_text(component.duration_s)),
        );
        if let Some((class, what, why)) = reason(&component.status) {
            let _ = writeln!(
                out,
                "<p class=\"reason {class}\"><strong>{what}</strong>: {}</p>",
                escape(why)
            );
        }
        for plot in &component.plots {
            let id = unique_id(&plot.id, &mut ids);
            let _ = writeln!(
                out,
                "<figure class=\"chart\"><figcaption>{}</figcaption>\n{}\n</figure>",
                escape(&plot.title),
                plot_svg(plot, &id)
            );
        }
        if !component.measurements.is_empty() {
            out.push_str(
                "<table class=\"measurements\"><thead><tr><th>Measurement</th><th>Value</th>\
                 <th>Unit</th><th>Target</th><th>Verdict</th><th>Noise</th></tr></thead><tbody>\n",
            );
            for measurement in &component.measurements {
                let _ = writeln!(
                    out,
                    "<tr class=\"{}\"><td class=\"key\">{}</td><td class=\"num\">{}</td>\
                     <td>{}</td><td>{}</td><td class=\"verdict\">{}</td><td class=\"num\">{}</td></tr>",
                    verdict_class(measurement.verdict),
                    escape(&measurement.key()),
                    escape(&format_number(measurement.value)),
                    escape(&measurement.unit),
                    escape(
                        &measurement
                            .target
                            .map_or_else(|| "-".to_owned(), |target| target.describe())
                    ),
                    verdict_text(measurement.verdict),
                    measurement
                        .noise
                        .map_or_else(|| "-".to_owned(), |noise| format!("{:.1} %", noise * 100.0))
                );
            }
            out.push_str("</tbody></table>\n");
        }
        if !component.notes.is_empty() {
            out.push_str("<h3>Notes</h3>\n<ul class=\"notes\">\n");
            for note in &component.notes {
                let _ = writeln!(out, "<li>{}</li>", escape(note));
            }
            out.push_str("</ul>\n");
        }
        out.push_str("</section>\n");
    }

    let _ = write!(
        out,
        "<footer>Written by nfcs-bench {}; the same figures are in the JSON report (schema {}).\
         </footer>\n</body>\n</html>\n",
        escape(&report.tool_version),
        report.schema_version
    );
    out
}

fn status_class(status: &ComponentStatus) -> &'static str {
    match status {
        ComponentStatus::Ran => "ran",
        ComponentStatus::Skipped { .. } => "skipped",
        ComponentStatus::Failed { .. } => "failed",
    }
}

fn reason(status: &ComponentStatus) -> Option<(&'static str, &'static str, &str)> {
    match status {
        ComponentStatus::Ran => None,
        ComponentStatus::Skipped { reason } => Some(("skipped", "skipped", reason)),
        ComponentStatus::Failed { error } => Some(("failed", "failed", error)),
    }
}

fn comparison_html(comparison: &BaselineComparison) -> String {
    let mut out = String::new();
    let regressions = comparison.regressions().len();
    let _ = write!(
        out,
        "<section id=\"baseline\">\n<h2>Baseline comparison</h2>\n<p>Compared with \
         <code>{}</code> (started {}{}): <span class=\"verdict {}\">{regressions} regression{}</span>, \
         {} improvement(s), {} measurements compared.</p>\n\
         <p>A change counts beyond max(3 &times; the larger noise measured in the two runs, 5 %), \
         or 10 % for a measurement without measured noise; a target that passed in the baseline \
         and fails now is a regression regardless.</p>\n",
        escape(&comparison.baseline_path.display().to_string()),
        utc_time(comparison.baseline_started),
        comparison
            .baseline_commit
            .as_deref()
            .map(|commit| format!(", commit {}", escape(commit)))
            .unwrap_or_default(),
        if regressions == 0 { "pass" } else { "fail" },
        if regressions == 1 { "" } else { "s" },
        comparison.improvements().len(),
        comparison.rows.len()
    );
    if !comparison.rows.is_empty() {
        out.push_str(
            "<table class=\"comparison\"><thead><tr><th>Component</th><th>Measurement</th>\
             <th>Baseline</th><th>Current</th><th>Change</th><th>Threshold</th><th>Verdict</th>\
             <th>Why</th></tr></thead><tbody>\n",
        );
        for row in &comparison.rows {
            let class = match row.verdict {
                RowVerdict::Improved => "improved",
                RowVerdict::Unchanged => "unchanged",
                RowVerdict::Regressed => "regressed",
            };
            let _ = writeln!(
                out,
                "<tr class=\"{class}\"><td>{}</td><td class=\"key\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.1} %</td>\
                 <td class=\"verdict\">{}</td><td>{}</td></tr>",
                row.component,
                escape(&row.key),
                escape(&value_with_unit(row.baseline, &row.unit)),
                escape(&value_with_unit(row.current, &row.unit)),
                escape(&percent(row.change)),
                row.threshold * 100.0,
                row.verdict,
                escape(&row.reason)
            );
        }
        out.push_str("</tbody></table>\n");
    }
    for (what, list) in [
        ("Only in the baseline", &comparison.only_in_baseline),
        ("Only in this run", &comparison.only_in_current),
    ] {
        if !list.is_empty() {
            let keys: Vec<String> = list
                .iter()
                .map(|unmatched| format!("{} {}", unmatched.component, escape(&unmatched.key)))
                .collect();
            let _ = writeln!(out, "<p>{what}: {}.</p>", keys.join(", "));
        }
    }
    out.push_str("</section>\n");
    out
}
