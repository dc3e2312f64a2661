//! The served node's request handling: the axum `Router` of an embedded node
//! (`nfcs_bench::serve::Node::start`, then `Node::router`; memory tier only, no Redis, no
//! model, no disk, a bearer token), driven with `tower::ServiceExt::oneshot`, no socket.
//!
//! An input reads like an HTTP/1 request, so that the corpus is readable and seeds come
//! straight from the tests:
//!
//! ```text
//! PUT /v1/cache/key?query          <- method (GET, PUT, POST, DELETE, HEAD, OPTIONS, PATCH;
//! Authorization: Bearer <token>       anything else is GET) and request target
//! Content-Type: application/json   <- headers, one a line (malformed ones are left out)
//!                                  <- an empty line
//! {"value": "v"}                   <- the body, bytes
//! ```
//!
//! Checked: nothing panics (a handler's panic is answered 500 by the node's guard, and 500 is a
//! finding); no answer is a 5xx except 503 with one of the codes the API documents for it
//! (`timeout`, `not_running`, `unavailable`: the semantic cache is not running here); every
//! 4xx and 5xx answer carries the JSON `ErrorBody` the module docs promise.
//!
//! Not driven: `POST /api/check` and `POST /api/optimize` (each runs the quick benchmark suite,
//! seconds per request), and CGL solves of grids above 32 (`MAX_API_GRID` is 512: one solve of
//! a large grid takes longer than a fuzz run should spend on one input). `GET /api/stream`
//! is answered but its endless event stream is not read.

#![no_main]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri, header};
use libfuzzer_sys::fuzz_target;
use nfcs_bench::BenchmarkConfig;
use nfcs_bench::serve::Node;
use tower::ServiceExt;

/// The node's bearer token (seeds carry it in their `Authorization` headers).
pub const TOKEN: &str = "nfcs-fuzz-token-0123456789abcdef";

/// The embedded node the requests go to, started once per process and never stopped.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: Router,
    /// Kept so that the node's background tasks keep running.
    _node: Node,
}

fn start() -> Fixture {
    let work = tempfile::tempdir().expect("a work directory").keep();
    let token_file = work.join("token");
    std::fs::write(&token_file, TOKEN).expect("the token file");
    let config = BenchmarkConfig::from_toml_str(&format!(
        r#"
        [serve]
        token_file = {token_file:?}
        max_body = "64KiB"
        request_timeout = 2.0
        kuramoto_interval = 0.0
        [coordination]
        frequency_hz = 1.0
        grid_size = 16
        [cache.memory]
        max_size = "16MiB"
        [cache.disk]
        enabled = false
        [cache.redis]
        enabled = false
        [cache.semantic]
        enabled = false
        "#
    ))
    .expect("the fixture's configuration is valid");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let node = runtime
        .block_on(Node::start(config, &work))
        .expect("the embedded node starts");
    Fixture {
        runtime,
        router: node.router(),
        _node: node,
    }
}

thread_local! {
    static FIXTURE: &'static Fixture = Box::leak(Box::new(start()));
}

/// The request an input describes, or `None` for one the harness does not send.
fn parse(data: &[u8]) -> Option<Request<Body>> {
    let (head, body) = match data.windows(2).position(|pair| pair == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split('\n').map(|line| line.trim_end_matches('\r'));
    let first = lines.next()?;
    let (method, target) = first.split_once(' ').unwrap_or(("GET", first));
    let method = match method {
        "GET" | "PUT" | "POST" | "DELETE" | "HEAD" | "OPTIONS" | "PATCH" => {
            Method::from_bytes(method.as_bytes()).ok()?
        }
        _ => Method::GET,
    };
    let uri: Uri = target.parse().ok()?;
    // What a server receives: a path (origin form), never an absolute URI or `*`.
    if !uri.path().starts_with('/') || uri.scheme().is_some() {
        return None;
    }
    if matches!(uri.path(), "/api/check" | "/api/optimize") {
        return None;
    }
    if uri.path() == "/v1/cgl/solve" && large_grid(body) {
        return None;
    }
    let mut request = Request::builder().method(method).uri(uri);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) else {
            continue;
        };
        request = request.header(name, value);
    }
    request.body(Body::from(body.to_vec())).ok()
}

/// Whether a CGL request names a grid above 32 (by any reading of its body).
fn large_grid(body: &[u8]) -> bool {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => value
            .get("grid_size")
            .and_then(serde_json::Value::as_u64)
            .is_some_and(|grid| grid > 32),
        // Not JSON: refused before any solve.
        Err(_) => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(request) = parse(data) else {
        return;
    };
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    FIXTURE.with(|fixture| {
        let response = fixture
            .runtime
            .block_on(fixture.router.clone().oneshot(request))
            .unwrap_or_else(|never| match never {});
        let status = response.status();
        let streaming = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|kind| kind.as_bytes().starts_with(b"text/event-stream"));
        if streaming {
            assert_eq!(status, StatusCode::OK);
            return;
        }
        let body = fixture
            .runtime
            .block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(20),
                    axum::body::to_bytes(response.into_body(), 64 << 20),
                )
                .await
            })
            .expect("the body ends")
            .expect("the body reads");
        if status.as_u16() < 400 || method == Method::HEAD {
            assert!(status.as_u16() < 500);
            return;
        }
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
            panic!(
                "{method} {path}: {status} without a JSON body: {:?}",
                String::from_utf8_lossy(&body)
            )
        });
        let code = error
            .get("error")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_else(|| panic!("{method} {path}: {status} without an error code: {error}"));
        assert!(
            error
                .get("message")
                .is_some_and(serde_json::Value::is_string),
            "{method} {path}: {status} without a message: {error}"
        );
        if status.is_server_error() {
            assert!(
                status == StatusCode::SERVICE_UNAVAILABLE
                    && matches!(code, "timeout" | "not_running" | "unavailable"),
                "{method} {path}: {status} ({error})"
            );
        }
    });
});
