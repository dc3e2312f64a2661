//! Load over HTTP (`nfcs-bench load --target URL,...`) against served nodes: 100 users
//! against one node, against two nodes sharing one Redis (with the cross-node freshness
//! probe), and with that Redis killed and restarted under the load.

// The helpers outside `#[test]` functions unwrap too: a failure there is the test's failure.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use nfcs_cache_redis::test_server::RedisServer;
use serde_json::Value;
use support::node::{NodeProcess, eventually, node_config};

/// Runs `nfcs-bench load` against `targets` and returns its output and report.
fn load(work: &Path, targets: &[&str], users: u32, seconds: f64) -> (Output, Value) {
    let out = work.join(format!("report-{}", targets.len()));
    let config = work.join("load.toml");
    // The freshness bound is 1 s here, not the default 100 ms: the nodes are debug builds
    // sharing two cores with this test's other load run (p95 latency near 150 ms in CI), so a
    // 100 ms bound measures the machine's load, not the invalidation. A lost or late
    // invalidation still fails: B would answer the old value for the probe's whole 5 s.
    // The release figure (p99 3.7 ms) is in docs/benchmarks.md.
    std::fs::write(
        &config,
        "[load_testing]\nthink_time_ms = 100\nramp_up_time = 1\nfreshness_bound_ms = 1000\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_nfcs-bench"))
        .args(["load", "--no-progress", "--model", "closed"])
        .args([
            "--users",
            &users.to_string(),
            "--duration",
            &seconds.to_string(),
        ])
        .args(["--target", &targets.join(",")])
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .arg("--work-dir")
        .arg(work)
        .output()
        .expect("nfcs-bench load runs");
    let report = std::fs::read_to_string(out.join("report.json")).unwrap_or_else(|_| {
        panic!(
            "no report: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, serde_json::from_str(&report).unwrap())
}

/// The value of measurement `name` in the load component.
fn measurement(report: &Value, name: &str) -> Option<f64> {
    report["components"]
        .as_array()?
        .iter()
        .flat_map(|component| component["measurements"].as_array().into_iter().flatten())
        .find(|measurement| measurement["name"] == name)
        .and_then(|measurement| measurement["value"].as_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_users_over_http_against_one_node_and_two_nodes_sharing_redis() {
    let Some(redis) = RedisServer::start_or_skip("HTTP load against nodes sharing Redis") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (work.path().join("a"), work.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let config = node_config(Some(&redis.url()), false, "", "");
    let a = NodeProcess::start(&a_dir, &config, &[]);
    let b = NodeProcess::start(&b_dir, &config, &[]);

    // One node, with a misbehaving client beside the load: malformed JSON, oversized
    // bodies, invalid keys, unknown routes and methods, each answered with a 4xx.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let garbage = tokio::spawn({
        let (url, stop) = (a.url.clone(), std::sync::Arc::clone(&stop));
        async move {
            let client = reqwest::Client::new();
            let mut answered = std::collections::BTreeMap::<u16, u64>::new();
            let huge = "x".repeat(2 << 20);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let requests = [
                    client
                        .put(format!("{url}/v1/cache/k"))
                        .header("content-type", "application/json")
                        .body("{\"value\":"),
                    client
                        .put(format!("{url}/v1/cache/k"))
                        .header("content-type", "application/json")
                        .body(huge.clone()),
                    client.get(format!("{url}/v1/cache/{}", "k".repeat(5000))),
                    client.get(format!("{url}/no/such/route")),
                    client.delete(format!("{url}/v1/cache/invalidate")),
                    client
                        .post(format!("{url}/v1/cgl/solve"))
                        .header("content-type", "application/json")
                        .body("{\"grid_size\": 1e9}"),
                ];
                for request in requests {
                    if let Ok(response) = request.send().await {
                        *answered.entry(response.status().as_u16()).or_default() += 1;
                    }
                }
            }
            answered
        }
    });
    let (output, report) = load(work.path(), &[&a.url], 100, 6.0);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answered = garbage.await.unwrap();
    assert!(answered.values().sum::<u64>() >= 6, "{answered:?}");
    assert!(
        answered.keys().all(|status| (400..500).contains(status)),
        "{answered:?}"
    );
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let success = measurement(&report, "load_success_rate").expect("a success rate");
    assert!(success >= 0.99, "success {success}");
    assert!(measurement(&report, "cross_node_stale_reads").is_none());

    // Two nodes sharing Redis: the freshness probe runs beside the load.
    let (output, report) = load(work.path(), &[&a.url, &b.url], 100, 6.0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let success = measurement(&report, "load_success_rate").expect("a success rate");
    assert!(success >= 0.99, "success {success}");
    assert!(
        measurement(&report, "cross_node_probes").unwrap() >= 5.0,
        "{stdout}"
    );
    assert_eq!(
        measurement(&report, "cross_node_stale_reads"),
        Some(0.0),
        "{stdout}"
    );
    assert!(measurement(&report, "cross_node_propagation_p99").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_http_load_degrades_alerts_and_recovers() {
    let Some(mut redis) = RedisServer::start_or_skip("Redis outage under HTTP load") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let config = node_config(Some(&redis.url()), false, "", "");
    let node = NodeProcess::start(work.path(), &config, &[]);
    let client = reqwest::Client::new();
    let summary_url = format!("{}/api/summary", node.url);
    let summary = |client: reqwest::Client, url: String| async move {
        let value: Value = client.get(url).send().await.ok()?.json().await.ok()?;
        Some(value)
    };
    let redis_state = |summary: &Value| -> Option<String> {
        summary["tiers"]
            .as_array()?
            .iter()
            .find(|tier| tier["name"] == "redis")
            .and_then(|tier| tier["state"].as_str().map(str::to_owned))
    };
    let tier_alert = |summary: &Value| -> Option<bool> {
        summary["alerts"].as_array()?.iter().find_map(|alert| {
            (alert["name"] == "tier_down" && alert["subject"] == "redis")
                .then(|| alert["active"].as_bool().unwrap_or(false))
        })
    };

    // The load runs in its own process while Redis goes down and comes back.
    let work_path = work.path().to_owned();
    let url = node.url.clone();
    let load_run = std::thread::spawn(move || load(&work_path, &[&url], 50, 14.0));
    // Once the load is under way (the node has answered requests), kill Redis.
    eventually("the load to start", Duration::from_secs(30), || {
        let (client, url) = (client.clone(), format!("{}/metrics", node.url));
        async move {
            let text = client.get(url).send().await.ok()?.text().await.ok()?;
            text.lines()
                .filter(|line| {
                    line.starts_with("nfcs_http_requests_total{") && line.contains("/v1/")
                })
                .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
                .any(|count| count > 100.0)
                .then_some(())
        }
    })
    .await;
    redis.kill();
    // The summary shows the degraded tier and the alert.
    eventually(
        "redis unavailable with a tier_down alert",
        Duration::from_secs(30),
        || {
            let (client, url) = (client.clone(), summary_url.clone());
            async move {
                let value = summary(client, url).await?;
                (redis_state(&value).as_deref() == Some("unavailable")
                    && tier_alert(&value) == Some(true))
                .then_some(())
            }
        },
    )
    .await;
    redis.restart();
    // It comes back by itself: running again, the alert cleared.
    eventually(
        "redis running again, the alert cleared",
        Duration::from_secs(60),
        || {
            let (client, url) = (client.clone(), summary_url.clone());
            async move {
                let value = summary(client, url).await?;
                (redis_state(&value).as_deref() == Some("running")
                    && tier_alert(&value) == Some(false))
                .then_some(())
            }
        },
    )
    .await;
    let (output, report) = load_run.join().unwrap();
    let success = measurement(&report, "load_success_rate").expect("a success rate");
    assert!(
        success >= 0.99,
        "success {success} across the outage\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let health: Value = client
        .get(format!("{}/healthz", node.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
}
