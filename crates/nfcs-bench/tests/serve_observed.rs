//! The served node watched as a team would: scraped by a real Prometheus server (Debian's
//! `prometheus`) and opened in headless Chromium (Debian's `chromium`, driven over the
//! DevTools protocol by `support/dashboard_cdp.mjs` with Node).
//!
//! Without the binaries the tests print a notice and pass, unless `NFCS_REQUIRE_PROMETHEUS=1`
//! or `NFCS_REQUIRE_CHROMIUM=1` (as `cargo xtask test` sets).

// The helpers outside `#[test]` functions unwrap too: a failure there is the test's failure.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::node::{NodeProcess, binary_or_skip, eventually, node_config};

/// A child process killed when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_server_scrapes_the_node_and_answers_queries_on_its_metrics() {
    let Some(prometheus) = binary_or_skip(
        "prometheus",
        "NFCS_PROMETHEUS",
        "NFCS_REQUIRE_PROMETHEUS",
        "the Prometheus scrape test",
    ) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(work.path(), &node_config(None, false, "", ""), &[]);
    let target = node.url.trim_start_matches("http://").to_owned();
    let config = work.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: nfcs\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let _server = Killed(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                work.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts"),
    );
    let client = reqwest::Client::new();
    let query = |expression: &'static str| {
        let client = client.clone();
        async move {
            let answer: Value = client
                .get(format!(
                    "http://127.0.0.1:{port}/api/v1/query?query={}",
                    encode(expression)
                ))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let value = answer.pointer("/data/result/0/value/1")?.as_str()?;
            value.parse::<f64>().ok().filter(|value| value.is_finite())
        }
    };
    // The loop's frequency, as Prometheus stored it.
    let hz = eventually(
        "nfcs_coordination_frequency_hz in Prometheus",
        Duration::from_secs(90),
        || query("nfcs_coordination_frequency_hz{job=\"nfcs\"}"),
    )
    .await;
    assert!((9.0..=11.0).contains(&hz), "{hz} Hz");
    // A latency quantile from the histogram's buckets (needs two scrapes for the rate).
    let p95 = eventually(
        "histogram_quantile of nfcs_coordination_latency_seconds",
        Duration::from_secs(90),
        || {
            query(
                "histogram_quantile(0.95, sum by (le) (rate(nfcs_coordination_latency_seconds_bucket{job=\"nfcs\"}[10s])))",
            )
        },
    )
    .await;
    assert!(p95 > 0.0 && p95 < 0.05, "coordination p95 {p95} s");
    // And the target is up.
    let up = eventually("up", Duration::from_secs(30), || query("up{job=\"nfcs\"}")).await;
    assert_eq!(up, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_loads_in_chromium_without_errors_and_updates_live() {
    let Some(chromium) = binary_or_skip(
        "chromium",
        "NFCS_CHROMIUM",
        "NFCS_REQUIRE_CHROMIUM",
        "the dashboard test",
    ) else {
        return;
    };
    let Some(node_js) = binary_or_skip(
        "node",
        "NFCS_NODE",
        "NFCS_REQUIRE_CHROMIUM",
        "the dashboard test",
    ) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(work.path(), &node_config(None, false, "", ""), &[]);
    // Some traffic, so the hit ratio and the response time have values.
    let client = reqwest::Client::new();
    for n in 0..50 {
        let key = format!("k{}", n % 5);
        client
            .put(format!("{}/v1/cache/{key}", node.url))
            .json(&serde_json::json!({ "value": "v" }))
            .send()
            .await
            .unwrap();
        client
            .get(format!("{}/v1/cache/{key}", node.url))
            .send()
            .await
            .unwrap();
    }
    // And traffic while the browser looks: the hit ratio covers the alert window (5 s), and
    // Chromium's start can take longer than that, which would leave the window empty.
    let stop_traffic = std::sync::Arc::new(tokio::sync::Notify::new());
    let traffic = tokio::spawn({
        let stop = stop_traffic.clone();
        let client = client.clone();
        let url = node.url.clone();
        async move {
            let mut pace = tokio::time::interval(std::time::Duration::from_millis(50));
            loop {
                tokio::select! {
                    () = stop.notified() => break,
                    _ = pace.tick() => {
                        let _ = client.get(format!("{url}/v1/cache/k1")).send().await;
                    }
                }
            }
        }
    });
    let screenshots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&screenshots).unwrap();
    let screenshot = screenshots.join("dashboard.png");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/dashboard_cdp.mjs");
    let output = tokio::task::spawn_blocking({
        let url = format!("{}/dashboard", node.url);
        let screenshot = screenshot.clone();
        move || {
            Command::new(node_js)
                .arg("--experimental-websocket")
                .arg(script)
                .args(["--url", &url, "--chromium"])
                .arg(chromium)
                .args(["--gap-ms", "3000", "--timeout-ms", "90000", "--screenshot"])
                .arg(&screenshot)
                .output()
                .expect("node runs")
        }
    })
    .await
    .unwrap();
    stop_traffic.notify_one();
    traffic.await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "dashboard_cdp.mjs failed ({:?}): {stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(
        seen["problems"],
        serde_json::json!([]),
        "console errors: {seen}"
    );
    let (first, second) = (&seen["first"], &seen["second"]);
    // Live over server-sent events.
    assert_eq!(second["transport"], "sse", "{second}");
    // The summary's values are on the page.
    for card in [
        "overall-score",
        "coordination-frequency",
        "memory-efficiency",
        "hit-ratio",
    ] {
        let raw = second["cards"][card]["raw"].as_str().unwrap_or_default();
        assert!(
            raw.parse::<f64>().is_ok(),
            "{card} shows {:?}",
            second["cards"][card]
        );
    }
    let hz: f64 = second["cards"]["coordination-frequency"]["raw"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((8.0..=12.0).contains(&hz), "{hz}");
    let tiers: Vec<&str> = second["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|tier| tier["tier"].as_str())
        .collect();
    assert!(
        tiers.contains(&"memory") && tiers.contains(&"disk"),
        "{tiers:?}"
    );
    // It changed between the snapshots: more updates, more chart points, a newer uptime.
    assert!(
        second["updates"].as_u64() > first["updates"].as_u64(),
        "{first}\n{second}"
    );
    let points = |snapshot: &Value| snapshot["charts"]["chart-coordination"]["points"].as_u64();
    assert!(points(second) > points(first), "{first}\n{second}");
    assert_ne!(first["uptime"], second["uptime"]);
    for chart in [
        "chart-hit-ratio",
        "chart-coordination",
        "chart-response",
        "chart-memory",
    ] {
        assert_eq!(second["charts"][chart]["canvases"], 1, "{chart}");
    }
    let size = std::fs::metadata(&screenshot).expect("a screenshot").len();
    assert!(size > 20_000, "a {size}-byte screenshot");
    eprintln!("screenshot: {}", screenshot.display());
}
