//! The served node (`nfcs-bench serve`) as a process: its metrics (names, types, labels,
//! buckets, help, `promtool check metrics`), its service API and its errors, the bearer token
//! off loopback, and SIGTERM under load.

// The helpers outside `#[test]` functions unwrap too: a failure there is the test's failure.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use nfcs_bench::recording::{CGL_BUCKETS, SPEC_METRICS};
use serde_json::{Value, json};
use support::node::{NodeProcess, binary_or_skip, eventually, node_config};

/// A parsed scrape: per metric family its type, help and samples (name, labels, value).
#[derive(Debug, Default)]
struct Scrape {
    types: BTreeMap<String, String>,
    help: BTreeSet<String>,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

fn parse(text: &str) -> Scrape {
    let mut scrape = Scrape::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
            scrape.types.insert(name.to_owned(), kind.to_owned());
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("# HELP name text");
            assert!(!help.trim().is_empty(), "{name} has an empty help text");
            scrape.help.insert(name.to_owned());
        } else if !line.is_empty() && !line.starts_with('#') {
            let (series, value) = line.rsplit_once(' ').expect("series value");
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => {
                    let labels = labels.trim_end_matches('}');
                    let map = labels
                        .split("\",")
                        .filter(|pair| !pair.is_empty())
                        .map(|pair| {
                            let (key, value) = pair.split_once('=').expect("label=value");
                            (key.to_owned(), value.trim_matches('"').to_owned())
                        })
                        .collect();
                    (name.to_owned(), map)
                }
                None => (series.to_owned(), BTreeMap::new()),
            };
            let value = match value {
                "+Inf" => f64::INFINITY,
                other => other.parse().expect("a number"),
            };
            scrape.samples.push((name, labels, value));
        }
    }
    scrape
}

impl Scrape {
    fn samples_of<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a (String, BTreeMap<String, String>, f64)> + 'a {
        self.samples
            .iter()
            .filter(move |(sample, ..)| sample == name)
    }

    /// Whether every spec metric has at least one sample with a value.
    fn has_every_spec_metric(&self) -> bool {
        SPEC_METRICS.iter().all(|name| {
            self.samples_of(name).next().is_some()
                || self
                    .samples_of(&format!("{name}_count"))
                    .any(|(.., value)| *value > 0.0)
        })
    }
}

async fn get_text(client: &reqwest::Client, url: &str) -> String {
    let response = client.get(url).send().await.expect("the node answers");
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.text().await.expect("a body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_the_spec_metrics_exactly_and_promtool_accepts_them() {
    let work = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(work.path(), &node_config(None, false, "", ""), &[]);
    let client = reqwest::Client::new();
    // Some cache traffic, so the cache series have every label.
    for key in ["a", "b"] {
        let response = client
            .put(format!("{}/v1/cache/{key}", node.url))
            .json(&json!({ "value": "v" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        client
            .get(format!("{}/v1/cache/{key}", node.url))
            .send()
            .await
            .unwrap();
    }
    let metrics_url = format!("{}/metrics", node.url);
    let text = eventually(
        "every spec metric to have samples",
        Duration::from_secs(60),
        || {
            let client = client.clone();
            let url = metrics_url.clone();
            async move {
                let text = get_text(&client, &url).await;
                let ready = parse(&text).has_every_spec_metric()
                    && text.contains("module_name=\"mathematical_core\"")
                    && text.contains("module_name=\"cache\"");
                ready.then_some(text)
            }
        },
    )
    .await;
    let scrape = parse(&text);

    // Names and types, exactly the spec's.
    let expected_types = [
        ("nfcs_cgl_computation_time_seconds", "histogram"),
        ("nfcs_cgl_performance_fps", "gauge"),
        ("nfcs_kuramoto_sync_time_seconds", "histogram"),
        ("nfcs_kuramoto_oscillator_performance", "gauge"),
        ("nfcs_coordination_frequency_hz", "gauge"),
        ("nfcs_coordination_latency_seconds", "histogram"),
        ("nfcs_module_response_time_seconds", "histogram"),
        ("nfcs_memory_efficiency_ratio", "gauge"),
        ("nfcs_memory_fragmentation_percent", "gauge"),
        ("nfcs_gc_collection_time_seconds", "histogram"),
    ];
    assert_eq!(expected_types.map(|(name, _)| name), SPEC_METRICS);
    for (name, kind) in expected_types {
        assert_eq!(
            scrape.types.get(name).map(String::as_str),
            Some(kind),
            "{name}"
        );
    }
    // Labels: exactly the spec's (histograms add `le` to their buckets).
    let label_names = |name: &str| -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for suffix in ["", "_bucket", "_sum", "_count"] {
            for (_, labels, _) in scrape.samples_of(&format!("{name}{suffix}")) {
                names.extend(labels.keys().filter(|key| *key != "le").cloned());
            }
        }
        names
    };
    let set = |names: &[&str]| {
        names
            .iter()
            .map(|name| (*name).to_owned())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(label_names("nfcs_cgl_performance_fps"), set(&["grid_size"]));
    assert_eq!(
        label_names("nfcs_kuramoto_oscillator_performance"),
        set(&["oscillator_count"])
    );
    assert_eq!(
        label_names("nfcs_module_response_time_seconds"),
        set(&["module_name"])
    );
    for name in [
        "nfcs_cgl_computation_time_seconds",
        "nfcs_kuramoto_sync_time_seconds",
        "nfcs_coordination_frequency_hz",
        "nfcs_coordination_latency_seconds",
        "nfcs_memory_efficiency_ratio",
        "nfcs_memory_fragmentation_percent",
        "nfcs_gc_collection_time_seconds",
    ] {
        assert_eq!(label_names(name), BTreeSet::new(), "{name} has labels");
    }
    // The grid size of the loop's solver and the configured oscillator counts.
    assert!(
        scrape
            .samples_of("nfcs_cgl_performance_fps")
            .any(|(_, labels, value)| labels["grid_size"] == "64" && *value > 0.0)
    );
    let modules: BTreeSet<String> = scrape
        .samples_of("nfcs_module_response_time_seconds_count")
        .map(|(_, labels, _)| labels["module_name"].clone())
        .collect();
    for module in ["mathematical_core", "constitutional", "cache"] {
        assert!(
            modules.contains(module),
            "{module} missing from {modules:?}"
        );
    }
    // The spec's CGL buckets, exactly.
    let buckets: Vec<f64> = scrape
        .samples_of("nfcs_cgl_computation_time_seconds_bucket")
        .map(|(_, labels, _)| match labels["le"].as_str() {
            "+Inf" => f64::INFINITY,
            other => other.parse().unwrap(),
        })
        .collect();
    let mut expected: Vec<f64> = CGL_BUCKETS.to_vec();
    expected.push(f64::INFINITY);
    assert_eq!(buckets, expected);
    // The frequency is the loop's (10 Hz by default).
    let (_, _, hz) = scrape
        .samples_of("nfcs_coordination_frequency_hz")
        .next()
        .unwrap();
    assert!((8.0..=12.0).contains(hz), "{hz} Hz");

    // Every family has help text.
    for name in scrape.types.keys() {
        assert!(scrape.help.contains(name), "{name} has no # HELP");
    }
    // The caches' series, per tier and instance.
    for name in [
        "nfcs_cache_hits_total",
        "nfcs_cache_misses_total",
        "nfcs_cache_evictions_total",
        "nfcs_cache_bytes",
        "nfcs_cache_operation_seconds_count",
    ] {
        let tiers: BTreeSet<String> = scrape
            .samples_of(name)
            .filter_map(|(_, labels, _)| {
                assert!(labels.contains_key("cache"), "{name} without a cache label");
                labels.get("tier").cloned()
            })
            .collect();
        assert!(
            tiers.contains("memory") && tiers.contains("disk"),
            "{name}: tiers {tiers:?}"
        );
    }
    for name in [
        "nfcs_cache_get_seconds",
        "nfcs_http_request_duration_seconds",
    ] {
        assert_eq!(
            scrape.types.get(name).map(String::as_str),
            Some("histogram")
        );
    }

    // promtool's linter accepts the exposition.
    if let Some(promtool) = binary_or_skip(
        "promtool",
        "NFCS_PROMTOOL",
        "NFCS_REQUIRE_PROMETHEUS",
        "promtool check metrics",
    ) {
        let mut child = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the node answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_api_answers_and_every_bad_request_gets_a_json_4xx() {
    use reqwest::Method;
    let work = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(
        work.path(),
        &node_config(None, false, "max_body = \"4KiB\"", ""),
        &[],
    );
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", node.url);

    // The cache: set, get, miss, delete, invalidate.
    let (status, body) = call(
        &client,
        Method::PUT,
        url("/v1/cache/greeting"),
        Some(json!({ "value": "hello", "ttl_s": 60 })),
    )
    .await;
    assert_eq!((status, &body["stored"]), (200, &json!(true)));
    let (status, body) = call(&client, Method::GET, url("/v1/cache/greeting"), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({ "key": "greeting", "found": true, "value": "hello" })
    );
    let (status, body) = call(&client, Method::GET, url("/v1/cache/nothing%20here"), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({ "key": "nothing here", "found": false, "value": null })
    );
    for key in ["cgl_a", "cgl_b", "other"] {
        let (status, _) = call(
            &client,
            Method::PUT,
            url(&format!("/v1/cache/{key}")),
            Some(json!({ "value": "x" })),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, body) = call(
        &client,
        Method::POST,
        url("/v1/cache/invalidate"),
        Some(json!({ "pattern": "cgl_*" })),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body["removed"].as_u64().unwrap() >= 2, "{body}");
    let (_, body) = call(&client, Method::GET, url("/v1/cache/cgl_a"), None).await;
    assert_eq!(body["found"], json!(false));
    let (_, body) = call(&client, Method::GET, url("/v1/cache/other"), None).await;
    assert_eq!(body["found"], json!(true));
    let (status, body) = call(&client, Method::DELETE, url("/v1/cache/other"), None).await;
    assert_eq!((status, &body["deleted"]), (200, &json!(true)));

    // The memoized CGL solve: computed once, then a hit with the same result.
    let solve = json!({ "grid_size": 32, "seed": 1234567 });
    let (status, first) = call(
        &client,
        Method::POST,
        url("/v1/cgl/solve"),
        Some(solve.clone()),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["cache_hit"], json!(false));
    let (_, second) = call(&client, Method::POST, url("/v1/cgl/solve"), Some(solve)).await;
    assert_eq!(second["cache_hit"], json!(true));
    assert_eq!(first["mean_intensity"], second["mean_intensity"]);

    // A constitutional check, then the same one from the policy cache.
    let check =
        json!({ "action": "query", "context": { "risk": 2, "agent": "planner", "tokens": 10 } });
    let (status, first) = call(
        &client,
        Method::POST,
        url("/v1/policy/evaluate"),
        Some(check.clone()),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert!(first["verdict"] == json!("allow") || first["verdict"] == json!("deny"));
    let (_, second) = call(
        &client,
        Method::POST,
        url("/v1/policy/evaluate"),
        Some(check),
    )
    .await;
    assert_eq!(second["cache_hit"], json!(true));
    assert_eq!(first["verdict"], second["verdict"]);

    // Bad requests: each a 4xx with a JSON error naming what is wrong.
    let expect = |status: u16, body: &Value, code: &str, wanted: u16| {
        assert_eq!(status, wanted, "{body}");
        assert_eq!(body["error"], json!(code), "{body}");
        assert!(!body["message"].as_str().unwrap().is_empty());
    };
    let raw = |method: Method, path: &str, content_type: Option<&str>, body: Vec<u8>| {
        let mut request = client.request(method, url(path)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
            (status, body)
        }
    };
    let (status, body) = raw(
        Method::PUT,
        "/v1/cache/k",
        Some("application/json"),
        b"{\"value\":".to_vec(),
    )
    .await;
    expect(status, &body, "invalid_json", 400);
    let (status, body) = raw(
        Method::PUT,
        "/v1/cache/k",
        Some("application/json"),
        b"[1,2]".to_vec(),
    )
    .await;
    expect(status, &body, "invalid_json", 422);
    let (status, body) = raw(
        Method::PUT,
        "/v1/cache/k",
        Some("application/json"),
        b"{\"value\":\"v\",\"extra\":1}".to_vec(),
    )
    .await;
    expect(status, &body, "invalid_json", 422);
    let (status, body) = raw(
        Method::PUT,
        "/v1/cache/k",
        Some("text/plain"),
        b"{\"value\":\"v\"}".to_vec(),
    )
    .await;
    expect(status, &body, "unsupported_media_type", 415);
    let big = format!("{{\"value\":\"{}\"}}", "x".repeat(8 * 1024));
    let (status, body) = raw(
        Method::PUT,
        "/v1/cache/k",
        Some("application/json"),
        big.into_bytes(),
    )
    .await;
    expect(status, &body, "payload_too_large", 413);
    let (status, body) = raw(
        Method::PUT,
        "/v1/cache/k",
        Some("application/json"),
        vec![0xff, 0xfe, 0x00],
    )
    .await;
    assert!(status == 400 || status == 422, "{status} {body}");
    let long_key = "k".repeat(5000);
    let (status, body) = call(
        &client,
        Method::GET,
        url(&format!("/v1/cache/{long_key}")),
        None,
    )
    .await;
    expect(status, &body, "invalid_key", 400);
    assert_eq!(body["field"], json!("key"));
    let (status, body) = call(
        &client,
        Method::PUT,
        url("/v1/cache/k"),
        Some(json!({ "value": "v", "ttl_s": -1 })),
    )
    .await;
    expect(status, &body, "invalid_ttl", 400);
    let (status, body) = call(
        &client,
        Method::PUT,
        url("/v1/cache/k"),
        Some(json!({ "value": "v", "ttl_s": 1e300 })),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = call(
        &client,
        Method::POST,
        url("/v1/cache/invalidate"),
        Some(json!({ "pattern": "[" })),
    )
    .await;
    expect(status, &body, "invalid_pattern", 400);
    let (status, body) = call(
        &client,
        Method::POST,
        url("/v1/cgl/solve"),
        Some(json!({ "grid_size": 100000 })),
    )
    .await;
    expect(status, &body, "invalid_request", 400);
    assert_eq!(body["field"], json!("grid_size"));
    let (status, body) = call(
        &client,
        Method::POST,
        url("/v1/cgl/solve"),
        Some(json!({ "grid_size": -3 })),
    )
    .await;
    expect(status, &body, "invalid_json", 422);
    let (status, body) = call(
        &client,
        Method::POST,
        url("/v1/policy/evaluate"),
        Some(json!({ "action": "", "context": {} })),
    )
    .await;
    expect(status, &body, "invalid_request", 400);
    let (status, body) = call(
        &client,
        Method::POST,
        url("/v1/policy/evaluate"),
        Some(json!({ "action": "query", "context": [1] })),
    )
    .await;
    expect(status, &body, "invalid_request", 400);
    let (status, body) = call(&client, Method::GET, url("/no/such/route"), None).await;
    expect(status, &body, "not_found", 404);
    let (status, body) = call(&client, Method::PATCH, url("/v1/cache/k"), None).await;
    expect(status, &body, "method_not_allowed", 405);
    let (status, body) = call(&client, Method::GET, url("/api/history?seconds=abc"), None).await;
    expect(status, &body, "invalid_request", 400);
    // The semantic cache does not run here: a 503 that says so.
    let (status, body) = call(
        &client,
        Method::POST,
        url("/v1/semantic/find_similar"),
        Some(json!({ "text": "hi", "threshold": 0.8 })),
    )
    .await;
    expect(status, &body, "not_running", 503);

    // The node still serves, its documents are there, and its summary counted the requests.
    let (status, body) = call(&client, Method::GET, url("/healthz"), None).await;
    assert_eq!((status, body), (200, json!({ "status": "ok" })));
    let (status, openapi) = call(&client, Method::GET, url("/openapi.json"), None).await;
    assert_eq!(status, 200);
    for path in [
        "/v1/cache/{key}",
        "/v1/cache/invalidate",
        "/v1/semantic/store",
        "/v1/semantic/find_similar",
        "/v1/policy/evaluate",
        "/v1/cgl/solve",
        "/api/summary",
    ] {
        assert!(
            openapi["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(
        openapi["components"]["schemas"]
            .get("CacheSetRequest")
            .is_some()
    );
    let summary = eventually(
        "a summary with the API's response time",
        Duration::from_secs(30),
        || {
            let client = client.clone();
            let url = url("/api/summary");
            async move {
                let summary: Value = client.get(url).send().await.ok()?.json().await.ok()?;
                summary["system_performance"]["response_time_p95"]
                    .as_f64()
                    .map(|_| summary)
            }
        },
    )
    .await;
    for field in [
        "overall_score",
        "coordination_frequency",
        "response_time_p95",
        "memory_efficiency",
    ] {
        assert!(
            summary["system_performance"].get(field).is_some(),
            "{field}"
        );
    }
    for field in [
        "constitutional",
        "mathematical",
        "esc_system",
        "orchestrator",
    ] {
        assert!(
            summary["component_performance"].get(field).is_some(),
            "{field}"
        );
    }
    for field in ["hit_ratio", "memory_usage", "eviction_rate"] {
        assert!(summary["cache_performance"].get(field).is_some(), "{field}");
    }
    assert!(summary["alerts"].is_array());
    assert_eq!(
        summary["component_performance"]["esc_system"]["status"],
        json!("not_running")
    );
    let score = summary["system_performance"]["overall_score"]
        .as_f64()
        .unwrap();
    assert!((0.0..=100.0).contains(&score), "{score}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_the_node_needs_a_token_and_never_prints_it() {
    let work = tempfile::tempdir().unwrap();
    let config = node_config(None, false, "", "");
    // No token: it refuses to start, and says why.
    let Err((status, stderr)) = NodeProcess::start_on(work.path(), &config, &[], "0.0.0.0:0")
    else {
        panic!("a node listening on 0.0.0.0 without a token started");
    };
    assert_eq!(status.and_then(|status| status.code()), Some(1), "{stderr}");
    assert!(stderr.contains("requires a bearer token"), "{stderr}");

    // With a token: the write routes need it, the read-only routes do not.
    let token = "a-long-enough-secret-token-7f3a";
    let node = NodeProcess::start_on(
        work.path(),
        &config,
        &[("NFCS_BENCH_TOKEN", token)],
        "0.0.0.0:0",
    )
    .expect("the node starts with a token");
    let url = node.url.replace("0.0.0.0", "127.0.0.1");
    let client = reqwest::Client::new();
    let put = |token: Option<&str>| {
        let mut request = client
            .put(format!("{url}/v1/cache/k"))
            .json(&json!({ "value": "v" }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let response = put(None).await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], json!("unauthorized"));
    assert_eq!(
        put(Some("wrong-token-of-the-same-size-xxx"))
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(put(Some(token)).await.unwrap().status(), 200);
    let check = client
        .post(format!("{url}/api/check"))
        .send()
        .await
        .unwrap();
    assert_eq!(check.status(), 401);
    let optimize = client
        .post(format!("{url}/api/optimize?dry_run=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(optimize.status(), 401);
    for path in [
        "/metrics",
        "/api/summary",
        "/healthz",
        "/openapi.json",
        "/dashboard",
    ] {
        let response = client.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    node.terminate();
    let mut node = node;
    assert!(node.wait(Duration::from_secs(60)).success());
    assert!(!node.stderr().contains(token), "the token was logged");
    assert!(!node.stdout().contains(token), "the token was printed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_the_requests_in_flight_and_keeps_every_acknowledged_write() {
    let work = tempfile::tempdir().unwrap();
    let config = node_config(None, false, "", "");
    let mut node = NodeProcess::start(work.path(), &config, &[]);
    let client = reqwest::Client::new();
    let base = node.url.clone();

    // Writers: each writes its own keys until the node stops answering; what was answered
    // 200 is acknowledged.
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut writers = Vec::new();
    for writer in 0..8 {
        let client = client.clone();
        let base = base.clone();
        let written = std::sync::Arc::clone(&written);
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for n in 0u64.. {
                let key = format!("w{writer}_{n}");
                let value = format!("value of {key}");
                match client
                    .put(format!("{base}/v1/cache/{key}"))
                    .json(&json!({ "value": value }))
                    .send()
                    .await
                {
                    Ok(response) if response.status() == 200 => {
                        acknowledged.push((key, value));
                        written.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(response) => panic!("a write answered {}", response.status()),
                    Err(_) => break, // the node closed
                }
            }
            acknowledged
        }));
    }
    // Slow requests: solves of a large grid, each computed (distinct seeds).
    let mut solves = Vec::new();
    for seed in 0..4u64 {
        let client = client.clone();
        let base = base.clone();
        solves.push(tokio::spawn(async move {
            client
                .post(format!("{base}/v1/cgl/solve"))
                .json(&json!({ "grid_size": 512, "seed": 900_000 + seed }))
                .send()
                .await
                .map(|response| response.status().as_u16())
        }));
    }
    // SIGTERM once 100 writes are acknowledged and the node holds requests in flight besides
    // the scrape itself.
    let metrics_url = format!("{base}/metrics");
    eventually("requests in flight", Duration::from_secs(30), || {
        let client = client.clone();
        let url = metrics_url.clone();
        let enough = written.load(std::sync::atomic::Ordering::Relaxed) >= 100;
        async move {
            if !enough {
                return None;
            }
            let text = client.get(url).send().await.ok()?.text().await.ok()?;
            let in_flight = text
                .lines()
                .find_map(|line| line.strip_prefix("nfcs_http_requests_in_flight "))?
                .parse::<f64>()
                .ok()?;
            (in_flight >= 3.0).then_some(())
        }
    })
    .await;
    node.terminate();

    // Every request the node had taken is answered.
    for solve in solves {
        match solve.await.unwrap() {
            Ok(status) => assert_eq!(status, 200, "a solve in flight was not finished"),
            // Sent after the listener closed: never taken, not lost.
            Err(error) => assert!(error.is_connect() || error.is_request(), "{error}"),
        }
    }
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    let status = node.wait(Duration::from_secs(60));
    assert!(status.success(), "exit {status:?}: {}", node.stderr());
    assert!(
        node.stderr().contains("the tiers are flushed"),
        "{}",
        node.stderr()
    );
    assert!(
        acknowledged.len() >= 100,
        "only {} writes",
        acknowledged.len()
    );

    // A new node on the same disk tier has every acknowledged write.
    let node = NodeProcess::start(work.path(), &config, &[]);
    for (key, value) in &acknowledged {
        let (status, body) = call(
            &client,
            reqwest::Method::GET,
            format!("{}/v1/cache/{key}", node.url),
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            body["value"],
            json!(value),
            "{key} was acknowledged but is lost"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_check_runs_the_quick_suite_on_the_node_one_at_a_time() {
    let work = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(work.path(), &node_config(None, false, "", ""), &[]);
    let client = reqwest::Client::new();
    let check_url = format!("{}/api/check", node.url);
    let first = tokio::spawn({
        let (client, url) = (client.clone(), check_url.clone());
        async move {
            let response = client.post(url).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    });
    // While it runs, a second check is refused.
    let metrics_url = format!("{}/metrics", node.url);
    eventually("the check in flight", Duration::from_secs(30), || {
        let (client, url) = (client.clone(), metrics_url.clone());
        async move {
            let text = client.get(url).send().await.ok()?.text().await.ok()?;
            let in_flight: f64 = text
                .lines()
                .find_map(|line| line.strip_prefix("nfcs_http_requests_in_flight "))?
                .parse()
                .ok()?;
            (in_flight >= 2.0).then_some(())
        }
    })
    .await;
    let (status, body) = call(&client, reqwest::Method::POST, check_url, None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], json!("conflict"));
    // The first one's report: the quick profile, every component, the node's own system.
    let (status, report) = first.await.unwrap();
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["profile"], json!("quick"));
    let components: Vec<&str> = report["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|component| component["component"].as_str())
        .collect();
    for component in [
        "mathematical",
        "constitutional",
        "cache",
        "coordination",
        "memory",
        "load",
    ] {
        assert!(
            components.contains(&component),
            "{component} missing: {components:?}"
        );
    }
    assert!(
        report["system"]["tiers"]
            .to_string()
            .contains("disk: running"),
        "{}",
        report["system"]
    );
    // The optimizer on the same node, planning only: every rule proposes or says why not.
    let (status, optimized) = call(
        &client,
        reqwest::Method::POST,
        format!("{}/api/optimize?dry_run=true", node.url),
        None,
    )
    .await;
    assert_eq!(status, 200, "{optimized}");
    assert_eq!(optimized["dry_run"], json!(true));
    assert_eq!(optimized["outcomes"], json!([]));
    let rules = optimized["plan"]["proposals"].as_array().unwrap().len()
        + optimized["plan"]["unchanged"].as_array().unwrap().len();
    assert_eq!(rules, 3, "{optimized}");
    // The node kept its loop running meanwhile.
    let summary: Value = client
        .get(format!("{}/api/summary", node.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        summary["system_performance"]["coordination_frequency"]
            .as_f64()
            .unwrap()
            > 5.0
    );
}
