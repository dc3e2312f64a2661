//! The renderings (terminal table, Markdown, HTML) and the baseline comparison, on a report
//! made by hand: every plot kind, a skipped and a failed component, a failing target, NaN
//! values, single-point and empty series, and labels and notes with markup in them.

use std::path::Path;

use nfcs_bench::baseline::{self, RowVerdict};
use nfcs_bench::report::{
    Better, ComponentReport, MachineInfo, Plot, PlotKind, SCHEMA_VERSION, Series,
};
use nfcs_bench::{BenchError, BenchmarkConfig, BenchmarkReport, Component, Measurement, Profile};
use nfcs_bench::{Target, render};

const INJECTION: &str = "<script>alert(1)</script>";

fn line(name: &str, points: &[(f64, f64)]) -> Series {
    Series::new(name, points.to_vec())
}

fn sample_report() -> BenchmarkReport {
    let mut mathematical = ComponentReport::new(Component::Mathematical);
    mathematical.duration_s = 12.5;
    mathematical.push(
        Measurement::with_target("cgl_fps", 120.0, "steps/s", Target::at_least(30.0))
            .label("grid_size", 64)
            .noise(0.02),
    );
    mathematical.push(
        Measurement::with_target("cgl_fps", 12.0, "steps/s", Target::at_least(30.0))
            .label("grid_size", 256),
    );
    mathematical.push(
        Measurement::with_target("kuramoto_sync_time", f64::NAN, "s", Target::at_most(5.0))
            .label("oscillators", 50),
    );
    mathematical
        .push(Measurement::info("solver_memory", 1_048_576.0, "bytes").label("tag", INJECTION));
    mathematical.plots.push(Plot {
        id: "cgl_fps_by_grid".into(),
        title: "CGL steps per second by grid size".into(),
        kind: PlotKind::Bar,
        x_label: "grid size".into(),
        y_label: "steps/s".into(),
        secondary_y_label: None,
        series: vec![line("cgl", &[(64.0, 120.0), (128.0, 48.0), (256.0, 12.0)])],
    });
    mathematical.plots.push(Plot {
        id: "kuramoto_sync_time".into(),
        title: format!("Kuramoto time to synchrony {INJECTION}"),
        kind: PlotKind::Histogram,
        x_label: "time to synchrony (s)".into(),
        y_label: "runs".into(),
        secondary_y_label: None,
        series: vec![
            line("N=10", &[(0.0, 3.0), (0.5, 9.0), (1.0, 4.0), (1.5, 1.0)]),
            line(
                "N=50",
                &[(0.5, 2.0), (1.0, 6.0), (1.5, 5.0), (2.0, f64::NAN)],
            ),
        ],
    });
    mathematical.note("CGL measured over 30 s per grid | with <b>bold</b> & more");

    let mut coordination = ComponentReport::new(Component::Coordination);
    coordination.duration_s = 15.0;
    coordination.push(
        Measurement::with_target(
            "coordination_latency_p95",
            0.004,
            "s",
            Target::at_most(0.01),
        )
        .noise(0.05),
    );
    coordination.push(Measurement::with_target(
        "coordination_frequency",
        9.9,
        "Hz",
        Target::at_least(10.0),
    ));
    let latency: Vec<(f64, f64)> = (0..120)
        .map(|i| {
            (
                f64::from(i) * 0.5,
                0.003 + 0.001 * (f64::from(i) * 0.3).sin(),
            )
        })
        .collect();
    let jitter: Vec<(f64, f64)> = (0..120)
        .map(|i| {
            (
                f64::from(i) * 0.5,
                0.0004 + 0.0002 * (f64::from(i) * 0.7).cos(),
            )
        })
        .collect();
    coordination.plots.push(Plot {
        id: "coordination_over_time".into(),
        title: "Coordination latency and jitter over time".into(),
        kind: PlotKind::Line,
        x_label: "time (s)".into(),
        y_label: "latency (s)".into(),
        secondary_y_label: Some("jitter (s)".into()),
        series: vec![
            Series::new("latency", latency),
            Series::new("jitter", jitter).on_secondary_axis(),
        ],
    });

    let mut load = ComponentReport::new(Component::Load);
    load.duration_s = 60.0;
    load.push(
        Measurement::info("throughput", 850.0, "ops/s")
            .better(Better::Higher)
            .label("scenario", "normal_load"),
    );
    load.plots.push(Plot {
        id: "load_over_time".into(),
        title: "Load: latency and throughput against the user ramp".into(),
        kind: PlotKind::Line,
        x_label: "time (s)".into(),
        y_label: "latency p95 (s)".into(),
        secondary_y_label: Some("users, ops/s".into()),
        series: vec![
            line(
                "p95 latency",
                &[(0.0, 0.01), (10.0, f64::NAN), (20.0, 0.02), (30.0, 0.05)],
            ),
            line(
                "users",
                &[(0.0, 0.0), (10.0, 50.0), (20.0, 100.0), (30.0, 100.0)],
            )
            .on_secondary_axis(),
            line("single", &[(15.0, 0.015)]),
        ],
    });
    load.plots.push(Plot {
        id: "load_empty".into(),
        title: "Breaking point (not reached)".into(),
        kind: PlotKind::Line,
        x_label: "users".into(),
        y_label: "errors".into(),
        secondary_y_label: None,
        series: vec![
            line("errors", &[]),
            line("nan only", &[(f64::NAN, 1.0), (2.0, f64::INFINITY)]),
        ],
    });

    let mut memory = ComponentReport::new(Component::Memory);
    memory.push(Measurement::with_target(
        "resident_peak",
        2.5e8,
        "bytes",
        Target::at_most(1e9),
    ));
    memory.plots.push(Plot {
        id: "memory_over_time".into(),
        title: "Memory over time".into(),
        kind: PlotKind::Line,
        x_label: "time (s)".into(),
        y_label: "bytes".into(),
        secondary_y_label: None,
        series: vec![
            line("resident", &[(0.0, 1.0e8), (5.0, 1.8e8), (10.0, 2.5e8)]),
            line("allocated", &[(0.0, 0.6e8), (5.0, 1.1e8), (10.0, 1.4e8)]),
        ],
    });
    memory.plots.push(Plot {
        id: "single_bar".into(),
        title: "One bar".into(),
        kind: PlotKind::Bar,
        x_label: "x".into(),
        y_label: "y".into(),
        secondary_y_label: None,
        series: vec![line("only", &[(1.0, 0.0)])],
    });

    BenchmarkReport {
        schema_version: SCHEMA_VERSION,
        tool_version: "0.1.0".into(),
        profile: Profile::Quick,
        started_unix_ms: 1_796_131_264_000,
        duration_s: 95.0,
        machine: MachineInfo {
            cpu: "Test CPU".into(),
            cores: 2,
            memory_bytes: 8 << 30,
            os: "linux x86_64".into(),
            hostname: "bench-host".into(),
        },
        commit: Some("0123abcd".into()),
        config: BenchmarkConfig::default(),
        system: None,
        components: vec![
            mathematical,
            coordination,
            ComponentReport::skipped(Component::Esc, format!("no model here {INJECTION}")),
            ComponentReport::failed(Component::Cache, "redis | down\nsecond line"),
            load,
            memory,
        ],
    }
}

#[test]
fn terminal_table_lists_every_target_with_its_verdict() {
    let table = render::terminal_table(&sample_report());
    println!("{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("Component"));
    assert!(lines[1].starts_with("---------"));
    let row = |key: &str| {
        lines
            .iter()
            .find(|line| line.contains(key))
            .copied()
            .unwrap_or_else(|| panic!("no row for {key} in\n{table}"))
    };
    let fast = row("cgl_fps{grid_size=64}");
    assert!(fast.starts_with("mathematical"));
    assert!(fast.contains("120 steps/s") && fast.contains(">= 30 steps/s"));
    assert!(fast.contains("+300.0 %") && fast.trim_end().ends_with("PASS"));
    let slow = row("cgl_fps{grid_size=256}");
    assert!(slow.contains("-60.0 %") && slow.trim_end().ends_with("FAIL"));
    let nan = row("kuramoto_sync_time{oscillators=50}");
    assert!(nan.contains("NaN s") && nan.contains("n/a") && nan.trim_end().ends_with("FAIL"));
    assert!(row("coordination_latency_p95").trim_end().ends_with("PASS"));
    assert!(row("coordination_frequency").trim_end().ends_with("FAIL"));
    assert!(row("resident_peak").contains("+75.0 %"));
    // Only measurements with a target.
    assert!(!table.contains("solver_memory") && !table.contains("throughput"));
    // Aligned: every table row has its result in the same column.
    let result_column = lines[0].find("Result").unwrap();
    for line in &lines[2..8] {
        assert!(
            line[result_column..].starts_with("PASS") || line[result_column..].starts_with("FAIL"),
            "misaligned: {line:?}"
        );
    }
    assert!(table.contains("Skipped: esc: no model here"));
    assert!(table.contains("FAILED: cache: redis | down second line"));
    let overall = lines.last().unwrap();
    assert!(overall.starts_with("Overall: FAIL"), "{overall}");
    assert!(
        overall.contains("6 targets: 3 passed, 3 failed"),
        "{overall}"
    );
}

#[test]
fn terminal_table_of_a_passing_report() {
    let mut report = sample_report();
    report
        .components
        .retain(|c| c.component == Component::Memory);
    let table = render::terminal_table(&report);
    assert!(
        table.ends_with("Overall: PASS (1 target: 1 passed, 0 failed)\n"),
        "{table}"
    );
    report.components.clear();
    let table = render::terminal_table(&report);
    assert!(table.contains("No measurement with a target."));
}

#[test]
fn markdown_has_header_targets_components_and_escapes() {
    let markdown = render::markdown(&sample_report(), None);
    println!("{markdown}");
    assert!(markdown.starts_with("# NFCS benchmark report\n"));
    for header in [
        "- **Overall: FAIL**",
        "- Profile: quick",
        "- Machine: Test CPU, 2 cores, 8.0 GiB, linux x86_64",
        "- Commit: 0123abcd",
        "- Started: 2026-12-01 13:21:04 UTC",
        "- Duration: 1 min 35 s",
    ] {
        assert!(markdown.contains(header), "missing {header:?}");
    }
    assert!(markdown.contains("| Component | Measurement | Measured | Target | Margin | Result |"));
    assert!(markdown.contains(
        "| mathematical | cgl_fps{grid_size=64} | 120 steps/s | >= 30 steps/s | +300.0 % | PASS |"
    ));
    assert!(markdown.contains(
        "| mathematical | cgl_fps{grid_size=256} | 12 steps/s | >= 30 steps/s | -60.0 % | **FAIL** |"
    ));
    assert!(markdown.contains(
        "| mathematical | kuramoto_sync_time{oscillators=50} | NaN s | \\<= 5 s | n/a | **FAIL** |"
    ));
    assert!(markdown.contains(
        "| coordination | coordination_latency_p95 | 4 ms | \\<= 10 ms | +60.0 % | PASS |"
    ));
    // Per component: status, every measurement (with noise), notes, skip reasons.
    assert!(markdown.contains("### mathematical (ran, 12.5 s)"));
    assert!(markdown.contains("| cgl_fps{grid_size=64} | 120 | steps/s | >= 30 | PASS | 2.0 % |"));
    assert!(markdown.contains(
        "| solver_memory{tag=\\<script>alert(1)\\</script>} | 1048576 | bytes | - | INFO | - |"
    ));
    assert!(markdown.contains("### esc (skipped, 0.0 s)"));
    assert!(markdown.contains("Skipped: no model here \\<script>"));
    assert!(markdown.contains("### cache (FAILED, 0.0 s)"));
    assert!(markdown.contains("**Failed**: redis \\| down second line"));
    assert!(
        markdown.contains("- CGL measured over 30 s per grid \\| with \\<b>bold\\</b> &amp; more")
    );
    // No raw markup from the report gets through.
    let bytes = markdown.as_bytes();
    for (at, _) in markdown.match_indices('<') {
        assert!(at > 0 && bytes[at - 1] == b'\\', "an unescaped < at {at}");
    }
    assert!(!markdown.contains("## Baseline comparison"));
}

fn plot_ids(report: &BenchmarkReport) -> Vec<String> {
    report
        .components
        .iter()
        .flat_map(|c| c.plots.iter().map(|p| p.id.clone()))
        .collect()
}

/// The opening tag of the `<svg>` with `id`.
fn svg_tag<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<svg id=\"{id}\""))
        .unwrap_or_else(|| panic!("no svg {id}"));
    let end = start + html[start..].find('>').expect("the tag is closed");
    &html[start..=end]
}

/// The whole `<svg>` element with `id`.
fn svg_element<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<svg id=\"{id}\""))
        .expect("the svg is there");
    let end = start + html[start..].find("</svg>").expect("the svg is closed");
    &html[start..end + 6]
}

fn attribute<'a>(tag: &'a str, name: &str) -> &'a str {
    let needle = format!(" {name}=\"");
    let start = tag
        .find(&needle)
        .unwrap_or_else(|| panic!("no {name} in {tag}"))
        + needle.len();
    let end = start + tag[start..].find('"').expect("the attribute is closed");
    &tag[start..end]
}

#[test]
fn html_is_self_contained_escaped_and_draws_every_plot() {
    let report = sample_report();
    let html = render::html(&report, None);
    assert!(html.starts_with("<!DOCTYPE html>"));
    // Offline: nothing to fetch, no script.
    for forbidden in [
        "<script", "<link", " src=", "@import", "url(", "https://", "<iframe",
    ] {
        assert!(
            !html.contains(forbidden),
            "the report contains {forbidden:?}"
        );
    }
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("&lt;b&gt;bold&lt;/b&gt; &amp; more"));
    assert_eq!(html.matches("<svg ").count(), plot_ids(&report).len());
    assert_eq!(
        html.matches("<svg ").count(),
        html.matches("</svg>").count()
    );

    // Every plot is drawn by its kind, with its count of finite points.
    let expect = [
        ("cgl_fps_by_grid", "bar", "3", "0"),
        ("kuramoto_sync_time", "histogram", "7", "1"),
        ("coordination_over_time", "line", "240", "0"),
        ("load_over_time", "line", "8", "1"),
        ("load_empty", "line", "0", "2"),
        ("memory_over_time", "line", "6", "0"),
        ("single_bar", "bar", "1", "0"),
    ];
    for (id, kind, points, skipped) in expect {
        let tag = svg_tag(&html, id);
        assert_eq!(attribute(tag, "data-kind"), kind, "{id}");
        assert_eq!(attribute(tag, "data-points"), points, "{id}");
        assert_eq!(attribute(tag, "data-skipped"), skipped, "{id}");
        let element = svg_element(&html, id);
        assert!(
            !element.contains("NaN") && !element.contains("inf"),
            "{id}: {element}"
        );
        match kind {
            "line" if points != "0" => assert!(element.contains("<polyline")),
            "bar" | "histogram" => {
                assert_eq!(
                    element.matches("<rect class=\"bar\"").count().to_string(),
                    points
                )
            }
            _ => {}
        }
    }
    assert!(svg_element(&html, "load_empty").contains(">no data</text>"));
    assert!(svg_element(&html, "load_over_time").contains("1 non-finite point not drawn"));
    // The second y axis and its label, the legend.
    let load = svg_element(&html, "load_over_time");
    assert!(load.contains("users, ops/s") && load.contains("users (right axis)"));
    assert!(load.contains("stroke-dasharray"));
    // Nice ticks with SI suffixes on the memory axis.
    let memory = svg_element(&html, "memory_over_time");
    assert!(
        memory.contains(">250M</text>") || memory.contains(">300M</text>"),
        "{memory}"
    );
    // Pass/fail coloured tables.
    assert!(html.contains(
        "<tr class=\"fail\"><td>mathematical</td><td class=\"key\">cgl_fps{grid_size=256}</td>"
    ));
    assert!(html.contains("<span id=\"overall\" class=\"overall fail\">FAIL</span>"));
    assert!(html.contains("no model here &lt;script&gt;"));
}

#[test]
fn plots_survive_degenerate_data() {
    let cases: Vec<Vec<(f64, f64)>> = vec![
        vec![],
        vec![(1.0, 1.0)],
        vec![(1.0, 1.0), (1.0, 1.0), (1.0, 1.0)],
        vec![(0.0, 5.0), (1.0, 5.0), (2.0, 5.0)],
        vec![(0.0, -3.0), (1.0, -1.0), (2.0, -7.5)],
        vec![(0.0, 1e300), (1.0, -1e300), (2.0, 1.0)],
        vec![(f64::NEG_INFINITY, 0.0), (0.0, f64::NAN), (1.0, 2.0)],
        vec![(0.0, 0.0), (0.0, 3.0), (0.0, 1.0)],
        vec![(1e-12, 1e-15), (2e-12, 3e-15)],
        vec![(1.7e9, 1.0), (1.7e9 + 1.0, 2.0)],
        (0..5000)
            .map(|i| (f64::from(i), f64::from(i % 13)))
            .collect(),
    ];
    for kind in [PlotKind::Line, PlotKind::Bar, PlotKind::Histogram] {
        for (index, points) in cases.iter().enumerate() {
            let plot = Plot {
                id: format!("case-{index}"),
                title: "degenerate".into(),
                kind,
                x_label: String::new(),
                y_label: String::new(),
                secondary_y_label: None,
                series: vec![
                    Series::new("a", points.clone()),
                    Series::new("b", points.clone()).on_secondary_axis(),
                ],
            };
            let svg = render::plot_svg(&plot, &plot.id);
            assert!(svg.starts_with("<svg id=\"case-") && svg.ends_with("</svg>"));
            for bad in ["NaN", "inf"] {
                assert!(!svg.contains(bad), "{kind:?} case {index}: {bad} in {svg}");
            }
        }
    }
}

#[test]
fn duplicate_plot_ids_are_made_unique() {
    let mut report = sample_report();
    let copy = report.components[0].plots[0].clone();
    report.components[0].plots.push(copy);
    let html = render::html(&report, None);
    assert!(html.contains("<svg id=\"cgl_fps_by_grid\""));
    assert!(html.contains("<svg id=\"cgl_fps_by_grid-2\""));
}

#[test]
fn write_reports_writes_three_files() {
    let directory = tempfile::tempdir().unwrap();
    let written =
        render::write_reports(&directory.path().join("out"), &sample_report(), None).unwrap();
    for path in [&written.json, &written.markdown, &written.html] {
        assert!(
            std::fs::metadata(path).unwrap().len() > 100,
            "{}",
            path.display()
        );
    }
}

// Baseline comparison.

fn write(directory: &Path, name: &str, contents: &str) -> std::path::PathBuf {
    let path = directory.join(name);
    std::fs::write(&path, contents).expect("a writable temporary directory");
    path
}

fn report_error(error: BenchError) -> String {
    match &error {
        BenchError::Report { .. } => error.to_string(),
        other => panic!("expected a report error, got {other:?}"),
    }
}

#[test]
fn load_report_reads_back_a_written_report_with_nan_values() {
    let directory = tempfile::tempdir().unwrap();
    let report = sample_report();
    let path = write(directory.path(), "report.json", &report.to_json());
    let loaded = baseline::load_report(&path).unwrap();
    assert_eq!(loaded.components.len(), report.components.len());
    let mathematical = loaded.component(Component::Mathematical).unwrap();
    // The NaN measurement (null in JSON) is dropped, with a note.
    assert!(mathematical.measurement("kuramoto_sync_time").is_none());
    assert!(
        mathematical
            .notes
            .iter()
            .any(|note| note.contains("kuramoto_sync_time"))
    );
    assert_eq!(mathematical.measurements.len(), 3);
    // A report compared with itself: no regression.
    let comparison = baseline::compare(&report, &loaded, &path).unwrap();
    assert!(!comparison.has_regressions(), "{comparison:#?}");
    assert!(
        comparison
            .rows
            .iter()
            .all(|row| row.verdict == RowVerdict::Unchanged)
    );
    assert!(
        comparison
            .only_in_current
            .iter()
            .any(|m| m.key.starts_with("kuramoto_sync_time"))
    );
}

#[test]
fn load_report_refuses_what_is_not_a_report_of_this_schema() {
    let directory = tempfile::tempdir().unwrap();
    let missing =
        report_error(baseline::load_report(&directory.path().join("absent.json")).unwrap_err());
    assert!(
        missing.contains("absent.json") && missing.contains("could not be read"),
        "{missing}"
    );

    let not_json = write(directory.path(), "notes.json", "this is not { json");
    let message = report_error(baseline::load_report(&not_json).unwrap_err());
    assert!(
        message.contains("notes.json") && message.contains("not JSON"),
        "{message}"
    );

    let mut value: serde_json::Value = serde_json::from_str(&sample_report().to_json()).unwrap();
    value["schema_version"] = serde_json::json!(SCHEMA_VERSION + 98);
    // Another version may have another shape: the version is checked first.
    value["components"] = serde_json::json!("something else");
    let other = write(directory.path(), "v99.json", &value.to_string());
    let message = report_error(baseline::load_report(&other).unwrap_err());
    assert!(
        message.contains(&format!("schema version {}", SCHEMA_VERSION + 98))
            && message.contains(&format!("reads schema version {SCHEMA_VERSION}")),
        "{message}"
    );

    let no_version = write(directory.path(), "plain.json", "{\"hello\": 1}");
    let message = report_error(baseline::load_report(&no_version).unwrap_err());
    assert!(message.contains("no `schema_version`"), "{message}");

    value["schema_version"] = serde_json::json!(SCHEMA_VERSION);
    let bad_shape = write(directory.path(), "shape.json", &value.to_string());
    let message = report_error(baseline::load_report(&bad_shape).unwrap_err());
    assert!(message.contains("at `components`"), "{message}");
}

#[test]
fn compare_refuses_another_profile() {
    let current = sample_report();
    let mut full = sample_report();
    full.profile = Profile::Full;
    let message =
        report_error(baseline::compare(&current, &full, Path::new("full.json")).unwrap_err());
    assert!(
        message.contains("full.json")
            && message.contains("full profile")
            && message.contains("quick profile"),
        "{message}"
    );
}

fn with_value(report: &mut BenchmarkReport, component: Component, key: &str, value: f64) {
    let measurement = report
        .components
        .iter_mut()
        .find(|c| c.component == component)
        .and_then(|c| c.measurements.iter_mut().find(|m| m.key() == key))
        .expect("the measurement is in the report");
    let noise = measurement.noise;
    *measurement = match measurement.target {
        Some(target) => Measurement {
            labels: measurement.labels.clone(),
            noise,
            ..Measurement::with_target(
                measurement.name.clone(),
                value,
                measurement.unit.clone(),
                target,
            )
        },
        None => Measurement {
            value,
            ..measurement.clone()
        },
    };
}

#[test]
fn regressions_beyond_noise_are_flagged_and_changes_within_it_are_not() {
    let baseline_report = sample_report();
    let mut current = sample_report();
    // cgl 64: noise 2 % -> threshold max(6 %, 5 %) = 6 %. -10 % (still passing) regresses.
    with_value(
        &mut current,
        Component::Mathematical,
        "cgl_fps{grid_size=64}",
        108.0,
    );
    // latency p95: noise 5 % -> threshold 15 %: +10 % (0.004 -> 0.0044) is noise.
    with_value(
        &mut current,
        Component::Coordination,
        "coordination_latency_p95",
        0.0044,
    );
    // throughput, no noise measured -> 10 %: -8 % is noise; memory +20 % regresses.
    with_value(
        &mut current,
        Component::Load,
        "throughput{scenario=normal_load}",
        782.0,
    );
    with_value(&mut current, Component::Memory, "resident_peak", 3.0e8);
    // cgl 256 improves by 50 % (still failing).
    with_value(
        &mut current,
        Component::Mathematical,
        "cgl_fps{grid_size=256}",
        18.0,
    );

    let comparison = baseline::compare(&current, &baseline_report, Path::new("base.json")).unwrap();
    let row = |key: &str| comparison.rows.iter().find(|row| row.key == key).unwrap();

    let cgl = row("cgl_fps{grid_size=64}");
    assert_eq!(cgl.verdict, RowVerdict::Regressed, "{cgl:?}");
    assert!((cgl.threshold - 0.06).abs() < 1e-9);
    assert!((cgl.change.unwrap() + 0.10).abs() < 1e-9);
    let latency = row("coordination_latency_p95");
    assert_eq!(latency.verdict, RowVerdict::Unchanged, "{latency:?}");
    assert!((latency.threshold - 0.15).abs() < 1e-9);
    let throughput = row("throughput{scenario=normal_load}");
    assert_eq!(throughput.verdict, RowVerdict::Unchanged, "{throughput:?}");
    assert!((throughput.threshold - 0.10).abs() < 1e-9);
    assert_eq!(row("resident_peak").verdict, RowVerdict::Regressed);
    assert_eq!(row("cgl_fps{grid_size=256}").verdict, RowVerdict::Improved);
    // Info measurements without a direction are not compared.
    assert!(
        comparison
            .rows
            .iter()
            .all(|row| !row.key.starts_with("solver_memory"))
    );

    let regressed: Vec<&str> = comparison
        .regressions()
        .iter()
        .map(|row| row.key.as_str())
        .collect();
    assert_eq!(regressed, ["cgl_fps{grid_size=64}", "resident_peak"]);

    // Rendered.
    let markdown = render::markdown(&current, Some(&comparison));
    assert!(markdown.contains("## Baseline comparison"));
    assert!(markdown.contains("**2 regressions**"));
    assert!(markdown.contains("| mathematical | cgl_fps{grid_size=64} | 120 steps/s | 108 steps/s | -10.0 % | 6.0 % | **REGRESSED**"));
    assert!(markdown.contains("| coordination | coordination_latency_p95 | 4 ms | 4.400 ms | +10.0 % | 15.0 % | unchanged |"));
    let html = render::html(&current, Some(&comparison));
    assert!(html.contains("<section id=\"baseline\">"));
    assert!(html.contains(
        "<tr class=\"regressed\"><td>mathematical</td><td class=\"key\">cgl_fps{grid_size=64}</td>"
    ));
    let json = serde_json::to_string(&comparison).unwrap();
    let back: baseline::BaselineComparison = serde_json::from_str(&json).unwrap();
    assert_eq!(back.rows.len(), comparison.rows.len());
}

#[test]
fn a_target_that_passed_and_now_fails_is_a_regression_within_noise() {
    let mut baseline_report = sample_report();
    let mut current = sample_report();
    // 10.1 Hz (pass) -> 9.95 Hz (fail): -1.5 %, well within the 10 % threshold.
    with_value(
        &mut baseline_report,
        Component::Coordination,
        "coordination_frequency",
        10.1,
    );
    with_value(
        &mut current,
        Component::Coordination,
        "coordination_frequency",
        9.95,
    );
    let comparison = baseline::compare(&current, &baseline_report, Path::new("base.json")).unwrap();
    let row = comparison
        .rows
        .iter()
        .find(|row| row.key == "coordination_frequency")
        .unwrap();
    assert_eq!(row.verdict, RowVerdict::Regressed, "{row:?}");
    assert!(
        row.reason.contains("passed in the baseline and fails now"),
        "{}",
        row.reason
    );
    assert_eq!(comparison.regressions().len(), 1);
}

#[test]
fn compare_with_file_loads_then_compares() {
    let directory = tempfile::tempdir().unwrap();
    let mut full = sample_report();
    full.profile = Profile::Full;
    let path = write(directory.path(), "full.json", &full.to_json());
    let message = report_error(baseline::compare_with_file(&sample_report(), &path).unwrap_err());
    assert!(message.contains("profile"), "{message}");
}
