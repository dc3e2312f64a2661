//! Opens the HTML report in headless Chromium (Debian's `chromium`) and checks that the
//! plots render.
//!
//! 1. `--dump-dom` of the report as written: every plot's `<svg>` is in the parsed DOM, with
//!    its `<polyline>`s and `<rect class="bar">`s, and their coordinates are finite numbers
//!    inside the chart.
//! 2. `--dump-dom` of a copy with a checking script appended (the report itself has none):
//!    the script measures what the browser laid out (the size of each chart, the length of
//!    each line, the bars and markers with a non-empty box, the colour of a FAIL cell) and
//!    writes it into attributes the dumped DOM shows.
//! 3. `--screenshot`: a PNG of the window's size, not trivially small.
//!
//! `NFCS_KEEP_DIR=<dir>` keeps the report and its screenshot there.
//!
//! Without Chromium (no `/usr/bin/chromium`, or `NFCS_CHROMIUM` naming another binary) the
//! test prints a notice and passes, unless `NFCS_REQUIRE_CHROMIUM=1`. Each Chromium process
//! runs with a temporary `--user-data-dir` and is killed if it takes more than a minute.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nfcs_bench::report::{ComponentReport, MachineInfo, Plot, PlotKind, SCHEMA_VERSION, Series};
use nfcs_bench::{
    BenchmarkConfig, BenchmarkReport, Component, Measurement, Profile, Target, render,
};

const TIMEOUT: Duration = Duration::from_secs(60);
const WINDOW: (u32, u32) = (1200, 2400);

fn plot(id: &str, kind: PlotKind, secondary: Option<&str>, series: Vec<Series>) -> Plot {
    Plot {
        id: id.into(),
        title: format!("{id} <i>title</i>"),
        kind,
        x_label: "x <unit>".into(),
        y_label: "y".into(),
        secondary_y_label: secondary.map(str::to_owned),
        series,
    }
}

fn sample_report() -> BenchmarkReport {
    let wave = |scale: f64, offset: f64| -> Vec<(f64, f64)> {
        (0..200)
            .map(|i| {
                let t = f64::from(i) * 0.25;
                (t, offset + scale * (t * 0.4).sin())
            })
            .collect()
    };
    let mut mathematical = ComponentReport::new(Component::Mathematical);
    mathematical.push(
        Measurement::with_target("cgl_fps", 120.0, "steps/s", Target::at_least(30.0))
            .label("grid_size", 64),
    );
    mathematical.push(
        Measurement::with_target("cgl_fps", 12.0, "steps/s", Target::at_least(30.0))
            .label("grid_size", "<script>alert(1)</script>"),
    );
    mathematical.plots.push(plot(
        "cgl_fps_by_grid",
        PlotKind::Bar,
        None,
        vec![
            Series::new("steps/s", vec![(64.0, 120.0), (128.0, 48.0), (256.0, 12.0)]),
            Series::new("target", vec![(64.0, 30.0), (128.0, 30.0), (256.0, 30.0)]),
        ],
    ));
    mathematical.plots.push(plot(
        "kuramoto_sync_time",
        PlotKind::Histogram,
        None,
        vec![Series::new(
            "N=20",
            vec![
                (0.0, 2.0),
                (0.5, 8.0),
                (1.0, 13.0),
                (1.5, 6.0),
                (2.0, f64::NAN),
                (2.5, 1.0),
            ],
        )],
    ));
    let mut coordination = ComponentReport::new(Component::Coordination);
    coordination.plots.push(plot(
        "coordination_over_time",
        PlotKind::Line,
        Some("jitter (s)"),
        vec![
            Series::new("latency", wave(0.001, 0.004)),
            Series::new("jitter", wave(0.0002, 0.0005)).on_secondary_axis(),
        ],
    ));
    let mut load = ComponentReport::new(Component::Load);
    load.plots.push(plot(
        "load_over_time",
        PlotKind::Line,
        Some("users"),
        vec![
            Series::new("p95 latency", vec![(0.0, 0.01), (10.0, 0.02), (20.0, 0.05)]),
            Series::new("throughput", vec![(0.0, 0.03), (10.0, 0.035), (20.0, 0.04)]),
            Series::new("users", vec![(0.0, 0.0), (10.0, 50.0), (20.0, 100.0)]).on_secondary_axis(),
            Series::new("one point", vec![(5.0, 0.015)]),
        ],
    ));
    load.plots.push(plot(
        "breaking_point",
        PlotKind::Line,
        None,
        vec![Series::new("errors", Vec::new())],
    ));
    let mut memory = ComponentReport::new(Component::Memory);
    memory.plots.push(plot(
        "memory_over_time",
        PlotKind::Line,
        None,
        vec![Series::new(
            "resident",
            vec![(0.0, 1.0e8), (5.0, 1.8e8), (10.0, 2.5e8)],
        )],
    ));
    BenchmarkReport {
        schema_version: SCHEMA_VERSION,
        tool_version: "0.1.0".into(),
        profile: Profile::Quick,
        started_unix_ms: 1_796_131_264_000,
        duration_s: 42.0,
        machine: MachineInfo {
            cpu: "Test CPU".into(),
            cores: 2,
            memory_bytes: 8 << 30,
            os: "linux x86_64".into(),
            hostname: "bench-host".into(),
        },
        commit: None,
        config: BenchmarkConfig::default(),
        system: None,
        components: vec![
            mathematical,
            coordination,
            ComponentReport::skipped(Component::Esc, "no model <here>"),
            load,
            memory,
        ],
    }
}

/// Chromium, or `None` with a notice (a failure when `NFCS_REQUIRE_CHROMIUM=1`).
fn chromium() -> Option<PathBuf> {
    let candidate = std::env::var_os("NFCS_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if candidate.is_file() {
        return Some(candidate);
    }
    let required = std::env::var("NFCS_REQUIRE_CHROMIUM").is_ok_and(|value| value == "1");
    assert!(
        !required,
        "NFCS_REQUIRE_CHROMIUM=1 but there is no Chromium at {}",
        candidate.display()
    );
    eprintln!(
        "notice: no Chromium at {} (apt-get install chromium): the HTML report was not \
         opened in a browser",
        candidate.display()
    );
    None
}

/// Runs Chromium headless on `page` with `extra` arguments; its stdout. Killed after
/// [`TIMEOUT`].
fn run_chromium(chromium: &Path, work: &Path, page: &Path, extra: &[String]) -> String {
    let profile = tempfile::tempdir_in(work).expect("a temporary profile directory");
    let stdout_path = work.join(format!("stdout-{}.txt", std::process::id()));
    let stderr_path = work.join(format!("stderr-{}.txt", std::process::id()));
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("a file for chromium's stdout"))
        .stderr(std::fs::File::create(&stderr_path).expect("a file for chromium's stderr"))
        .spawn()
        .expect("chromium starts");
    // Chromium's exit is waited for on a thread of its own; this one waits for its word, at
    // most TIMEOUT.
    let pid = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait());
    });
    let status = match receiver.recv_timeout(TIMEOUT) {
        Ok(status) => status.expect("chromium's status"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            panic!("chromium did not finish within {TIMEOUT:?}; stderr:\n{stderr}");
        }
    };
    let stdout = std::fs::read_to_string(&stdout_path).expect("chromium's stdout");
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        status.success(),
        "chromium failed ({status}); stderr:\n{stderr}"
    );
    stdout
}

/// The `<svg>` element with `id` in a dumped DOM.
fn svg_element<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("<svg id=\"{id}\""))
        .unwrap_or_else(|| panic!("the dumped DOM has no <svg id=\"{id}\">"));
    let end = start + dom[start..].find("</svg>").expect("the <svg> is closed");
    &dom[start..end + "</svg>".len()]
}

fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = start + tag[start..].find('"')?;
    Some(&tag[start..end])
}

fn number(tag: &str, name: &str) -> f64 {
    let text = attribute(tag, name).unwrap_or_else(|| panic!("no {name} in {tag}"));
    let value: f64 = text
        .parse()
        .unwrap_or_else(|_| panic!("{name}={text:?} is not a number in {tag}"));
    assert!(value.is_finite(), "{name}={text:?} in {tag}");
    value
}

/// The opening tags of the `<element ...>`s in `svg`.
fn tags<'a>(svg: &'a str, element: &str) -> Vec<&'a str> {
    let needle = format!("<{element} ");
    let mut found = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find(&needle) {
        let end = start + rest[start..].find('>').expect("the tag is closed");
        found.push(&rest[start..=end]);
        rest = &rest[end..];
    }
    found
}

fn viewbox(svg: &str) -> (f64, f64) {
    let text = attribute(svg, "viewBox").expect("a viewBox");
    let values: Vec<f64> = text
        .split(' ')
        .map(|value| value.parse().expect("viewBox numbers"))
        .collect();
    (values[2], values[3])
}

const CHECK_SCRIPT: &str = r#"<script>
for (const svg of document.querySelectorAll('svg.plot')) {
  const box = svg.getBoundingClientRect();
  svg.setAttribute('data-rendered-width', box.width);
  svg.setAttribute('data-rendered-height', box.height);
  let length = 0;
  for (const line of svg.querySelectorAll('polyline')) length += line.getTotalLength();
  svg.setAttribute('data-line-length', length);
  let bars = 0;
  for (const bar of svg.querySelectorAll('rect.bar')) {
    const b = bar.getBoundingClientRect();
    if (b.width > 0 && b.height > 0) bars++;
  }
  svg.setAttribute('data-visible-bars', bars);
  let markers = 0;
  for (const marker of svg.querySelectorAll('circle.marker')) {
    if (marker.getBoundingClientRect().width > 0) markers++;
  }
  svg.setAttribute('data-visible-markers', markers);
  let text = 0;
  for (const label of svg.querySelectorAll('text')) {
    if (label.getBBox().width > 0) text++;
  }
  svg.setAttribute('data-visible-text', text);
}
const fail = document.querySelector('tr.fail .verdict');
document.body.setAttribute('data-fail-colour', fail ? getComputedStyle(fail).color : 'none');
document.body.setAttribute('data-checked', 'yes');
</script>"#;

#[test]
fn the_html_report_renders_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        return;
    };
    let report = sample_report();
    let work = tempfile::tempdir().unwrap();
    let html = render::html(&report, None);
    let page = work.path().join("report.html");
    std::fs::write(&page, &html).unwrap();
    let plots: Vec<&Plot> = report.components.iter().flat_map(|c| &c.plots).collect();

    // 1. The DOM as parsed: every chart with its elements and numeric coordinates.
    let dom = run_chromium(&chromium, work.path(), &page, &["--dump-dom".to_owned()]);
    assert!(
        dom.contains("NFCS benchmark report"),
        "no report in:\n{dom}"
    );
    assert!(dom.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!dom.contains("<i>title</i>"), "a title was not escaped");
    for plot in &plots {
        let svg = svg_element(&dom, &plot.id);
        let (width, height) = viewbox(svg);
        let points: usize = attribute(svg, "data-points").unwrap().parse().unwrap();
        let polylines = tags(svg, "polyline");
        let bars: Vec<&str> = tags(svg, "rect")
            .into_iter()
            .filter(|tag| attribute(tag, "class") == Some("bar"))
            .collect();
        match plot.kind {
            PlotKind::Line if points > 0 => {
                let drawn = plot.series.iter().filter(|s| !s.points.is_empty()).count();
                assert_eq!(polylines.len(), drawn, "{}", plot.id);
                let mut vertices = 0;
                for polyline in polylines {
                    for pair in attribute(polyline, "points").unwrap().split(' ') {
                        let (x, y) = pair.split_once(',').unwrap();
                        let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
                        assert!((0.0..=width).contains(&x) && (0.0..=height).contains(&y));
                        vertices += 1;
                    }
                }
                assert_eq!(vertices, points, "{}", plot.id);
            }
            PlotKind::Line => assert!(svg.contains("no data"), "{}", plot.id),
            PlotKind::Bar | PlotKind::Histogram => {
                assert_eq!(bars.len(), points, "{}", plot.id);
                for bar in bars {
                    let (x, y) = (number(bar, "x"), number(bar, "y"));
                    let (w, h) = (number(bar, "width"), number(bar, "height"));
                    assert!(
                        x >= 0.0 && y >= 0.0 && x + w <= width && y + h <= height,
                        "{bar}"
                    );
                    assert!(w > 0.0, "{bar}");
                }
            }
        }
    }

    // 2. What the browser laid out.
    let checked = work.path().join("checked.html");
    std::fs::write(
        &checked,
        html.replace("</body>", &format!("{CHECK_SCRIPT}</body>")),
    )
    .unwrap();
    let dom = run_chromium(&chromium, work.path(), &checked, &["--dump-dom".to_owned()]);
    assert!(
        dom.contains("data-checked=\"yes\""),
        "the checking script did not run"
    );
    assert!(
        dom.contains("data-fail-colour=\"rgb(207, 34, 46)\""),
        "FAIL is not coloured by the inline CSS"
    );
    for plot in &plots {
        let svg = svg_element(&dom, &plot.id);
        let tag = &svg[..svg.find('>').unwrap()];
        assert!(
            number(tag, "data-rendered-width") > 300.0,
            "{}: {tag}",
            plot.id
        );
        assert!(
            number(tag, "data-rendered-height") > 150.0,
            "{}: {tag}",
            plot.id
        );
        assert!(
            number(tag, "data-visible-text") >= 2.0,
            "{}: {tag}",
            plot.id
        );
        let points = number(tag, "data-points");
        match plot.kind {
            PlotKind::Line if points > 0.0 => {
                assert!(
                    number(tag, "data-line-length") > 100.0,
                    "{}: {tag}",
                    plot.id
                );
            }
            PlotKind::Line => {}
            PlotKind::Bar | PlotKind::Histogram => {
                assert_eq!(
                    number(tag, "data-visible-bars"),
                    points,
                    "{}: {tag}",
                    plot.id
                );
            }
        }
    }
    // The load plot's single-point series shows as a marker; the others' markers too.
    let load = svg_element(&dom, "load_over_time");
    assert_eq!(attribute(load, "data-visible-markers"), Some("10"));

    // 3. A screenshot of the report.
    let screenshot = work.path().join("report.png");
    run_chromium(
        &chromium,
        work.path(),
        &page,
        &[
            format!("--screenshot={}", screenshot.display()),
            format!("--window-size={},{}", WINDOW.0, WINDOW.1),
        ],
    );
    let png = std::fs::read(&screenshot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), WINDOW);
    assert!(
        png.len() > 30_000,
        "the screenshot is only {} bytes",
        png.len()
    );
    // For a look by eye (or a CI artifact): NFCS_KEEP_DIR=/some/dir keeps both files.
    if let Some(keep) = std::env::var_os("NFCS_KEEP_DIR") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(&page, keep.join("report.html")).unwrap();
        std::fs::copy(&screenshot, keep.join("report.png")).unwrap();
    }
}

/// The report of a real (quick) run, not a hand-made one: every plot the components draw is
/// in the page Chromium parses, with marks to see.
#[test]
fn a_real_runs_report_renders_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = runtime.block_on(async {
        let config = nfcs_bench::BenchmarkConfig::from_toml_str(
            "[mathematical_benchmarks.cgl_solver]\ngrid_sizes = [64, 128]\n\
             [mathematical_benchmarks.kuramoto]\noscillator_counts = [5, 10]\n\
             [load_testing]\nscenarios = [\"normal_load\"]\n\
             [cache.redis]\nenabled = false\n[cache.semantic]\nenabled = false\n",
        )
        .unwrap();
        let suite = nfcs_bench::NFCSBenchmarkSuite::new(
            config,
            nfcs_bench::suite::SuiteOptions::quick(work.path()),
        )
        .await
        .unwrap();
        suite
            .run_components(&[
                nfcs_bench::Component::Mathematical,
                nfcs_bench::Component::Coordination,
                nfcs_bench::Component::Load,
                nfcs_bench::Component::Memory,
            ])
            .await
            .unwrap()
    });
    let written = render::write_reports(&work.path().join("out"), &report, None).unwrap();
    let dom = run_chromium(
        &chromium,
        work.path(),
        &written.html,
        &["--dump-dom".to_owned()],
    );
    let ids: Vec<&str> = report
        .components
        .iter()
        .flat_map(|c| c.plots.iter().map(|p| p.id.as_str()))
        .collect();
    for id in [
        "cgl_fps_by_grid",
        "kuramoto_sync_time_distribution",
        "coordination_latency_jitter",
    ] {
        assert!(ids.contains(&id), "{id} not among {ids:?}");
    }
    assert!(ids.len() >= 6, "{ids:?}");
    for id in ids {
        let svg = svg_element(&dom, id);
        let marks = tags(svg, "polyline").len() + tags(svg, "rect").len();
        let points: usize = attribute(svg, "data-points").unwrap().parse().unwrap();
        assert!(
            points > 0 && marks > 0,
            "{id}: {points} points, {marks} marks"
        );
    }
}
