//! The HTTP target: the load engine's operations sent to one or several served nodes
//! (`nfcs-bench serve`) over their service API, and the cross-node freshness probe.
//!
//! Requests go to the nodes in turn (request `n` to node `n mod nodes`), on keep-alive
//! connections (one pool per node). A response that is not 2xx is a failed request, with its
//! status and the node's JSON error in the message.
//!
//! # Cross-node freshness
//!
//! With two or more nodes sharing one Redis, [`FreshnessProbe`] checks what the
//! architecture promises: a node's local copy of a key another node changed is dropped when
//! that node's announcement arrives. Each probe writes `old` through node A, reads it through
//! node B (so B holds it in memory), writes `new` through A and then reads through B until it
//! answers `new`. The time from A's acknowledgement to B's first `new` is the propagation
//! delay; a read issued after the bound that still answers `old` is a **stale read**.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde::Deserialize;

use super::target::{
    CACHE_KEYS, CGL_GRID, CGL_SEEDS, Operation, SEMANTIC_THRESHOLD, Target, TargetError, VALUE_SIZE,
};
use crate::system::{ESC_CONTEXT, PARAPHRASES, System};

/// One node of an [`HttpTarget`]: its base URL (`http://127.0.0.1:9464`).
#[derive(Debug, Clone)]
struct NodeUrl {
    base: String,
}

/// The service API of one or several nodes as a load [`Target`].
#[derive(Debug, Clone)]
pub struct HttpTarget {
    client: reqwest::Client,
    nodes: Arc<[NodeUrl]>,
    token: Option<Arc<str>>,
    name: String,
    value: Arc<str>,
}

/// Why an [`HttpTarget`] cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HttpTargetError(pub String);

impl HttpTarget {
    /// A target over `urls` (each `http://host:port`, a trailing slash allowed), with the
    /// bearer token `token` on every request when given.
    ///
    /// # Errors
    /// [`HttpTargetError`] for no URL, a URL that is not `http://host[:port]`, or a client
    /// that cannot be built.
    pub fn new(urls: &[String], token: Option<String>) -> Result<HttpTarget, HttpTargetError> {
        if urls.is_empty() {
            return Err(HttpTargetError("no target URL".to_owned()));
        }
        let mut nodes = Vec::new();
        for url in urls {
            let base = url.trim().trim_end_matches('/').to_owned();
            let Some(authority) = base.strip_prefix("http://") else {
                return Err(HttpTargetError(format!(
                    "{url:?}: a target must be http://host:port (the node speaks plain HTTP/1)"
                )));
            };
            if authority.is_empty() || authority.contains('/') {
                return Err(HttpTargetError(format!(
                    "{url:?}: a target must be http://host:port without a path"
                )));
            }
            nodes.push(NodeUrl { base });
        }
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|error| HttpTargetError(format!("the HTTP client: {error}")))?;
        let name = format!(
            "http({})",
            nodes
                .iter()
                .map(|node| node.base.as_str())
                .collect::<Vec<_>>()
                .join(",")
        );
        Ok(HttpTarget {
            client,
            nodes: nodes.into(),
            token: token.map(Arc::from),
            name,
            value: Arc::from("Z".repeat(VALUE_SIZE)),
        })
    }

    /// The nodes' base URLs.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|node| node.base.clone()).collect()
    }

    fn node(&self, request: u64) -> &NodeUrl {
        &self.nodes[(request % self.nodes.len() as u64) as usize]
    }

    fn request(&self, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
        let builder = self.client.request(method, url);
        match &self.token {
            Some(token) => builder.bearer_auth(&**token),
            None => builder,
        }
    }

    /// Whether every node's semantic cache runs (from its `/api/summary`).
    ///
    /// # Errors
    /// [`TargetError`] when a node does not answer.
    pub async fn semantic_everywhere(&self) -> Result<bool, TargetError> {
        for node in self.nodes.iter() {
            let summary: serde_json::Value =
                send_json(self.request(reqwest::Method::GET, format!("{}/api/summary", node.base)))
                    .await?;
            let status = summary
                .pointer("/component_performance/esc_system/status")
                .and_then(serde_json::Value::as_str);
            if status == Some("not_running") {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Each node's tiers and their states, as `URL: tier: state` lines (for the report).
    pub async fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for node in self.nodes.iter() {
            let answer: Result<serde_json::Value, _> =
                send_json(self.request(reqwest::Method::GET, format!("{}/api/summary", node.base)))
                    .await;
            match answer {
                Ok(summary) => {
                    for tier in summary
                        .get("tiers")
                        .and_then(serde_json::Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let name = tier.get("name").and_then(serde_json::Value::as_str);
                        let state = tier.get("state").and_then(serde_json::Value::as_str);
                        lines.push(format!(
                            "{}: {}: {}",
                            node.base,
                            name.unwrap_or("?"),
                            state.unwrap_or("?")
                        ));
                    }
                }
                Err(error) => lines.push(format!("{}: unreachable: {error}", node.base)),
            }
        }
        lines
    }

    /// Stores what the operations read before a run: the semantic cache's sentences, through
    /// every node (when `semantic`).
    ///
    /// # Errors
    /// [`TargetError`] when a node refuses.
    pub async fn prepare(&self, semantic: bool) -> Result<(), TargetError> {
        if !semantic {
            return Ok(());
        }
        for node in self.nodes.iter() {
            for (index, (stored, _)) in PARAPHRASES.iter().enumerate() {
                let body = serde_json::json!({
                    "text": stored,
                    "response": format!("response_{index}"),
                    "context": ESC_CONTEXT,
                });
                send(
                    self.request(
                        reqwest::Method::POST,
                        format!("{}/v1/semantic/store", node.base),
                    )
                    .json(&body),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Reads `key` through node `node`: its value, `None` on a miss.
    ///
    /// # Errors
    /// [`TargetError`] for a failed request.
    pub async fn get_value(&self, node: usize, key: &str) -> Result<Option<String>, TargetError> {
        #[derive(Deserialize)]
        struct Got {
            value: Option<String>,
        }
        let node = &self.nodes[node % self.nodes.len()];
        let got: Got = send_json(self.request(
            reqwest::Method::GET,
            format!("{}/v1/cache/{}", node.base, encode_segment(key)),
        ))
        .await?;
        Ok(got.value)
    }

    /// Writes `value` under `key` through node `node`.
    ///
    /// # Errors
    /// [`TargetError`] for a failed request.
    pub async fn set_value(&self, node: usize, key: &str, value: &str) -> Result<(), TargetError> {
        let node = &self.nodes[node % self.nodes.len()];
        send(
            self.request(
                reqwest::Method::PUT,
                format!("{}/v1/cache/{}", node.base, encode_segment(key)),
            )
            .json(&serde_json::json!({ "value": value })),
        )
        .await
    }
}

/// Percent-encodes a path segment (everything but unreserved characters).
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Sends a request; a response that is not 2xx is an error with its status and body.
async fn send(request: reqwest::RequestBuilder) -> Result<(), TargetError> {
    let response = request.send().await.map_err(TargetError::new)?;
    let status = response.status();
    if status.is_success() {
        // Read the body, so the connection goes back to the pool.
        response.bytes().await.map_err(TargetError::new)?;
        Ok(())
    } else {
        let body = response.text().await.unwrap_or_default();
        Err(TargetError::new(format!(
            "HTTP {}: {}",
            status.as_u16(),
            body.chars().take(300).collect::<String>()
        )))
    }
}

/// Sends a request and decodes its JSON answer.
async fn send_json<T: serde::de::DeserializeOwned>(
    request: reqwest::RequestBuilder,
) -> Result<T, TargetError> {
    let response = request.send().await.map_err(TargetError::new)?;
    let status = response.status();
    let body = response.bytes().await.map_err(TargetError::new)?;
    if !status.is_success() {
        return Err(TargetError::new(format!(
            "HTTP {}: {}",
            status.as_u16(),
            String::from_utf8_lossy(&body)
                .chars()
                .take(300)
                .collect::<String>()
        )));
    }
    serde_json::from_slice(&body).map_err(|error| TargetError::new(format!("bad JSON: {error}")))
}

impl Target for HttpTarget {
    fn execute(
        &self,
        operation: &Operation,
        request: u64,
    ) -> BoxFuture<'static, Result<(), TargetError>> {
        let base = self.node(request).base.clone();
        let builder = match operation {
            Operation::CacheGet => self.request(
                reqwest::Method::GET,
                format!("{base}/v1/cache/load_{}", request % CACHE_KEYS),
            ),
            Operation::CacheSet => self
                .request(
                    reqwest::Method::PUT,
                    format!("{base}/v1/cache/load_{}", request % CACHE_KEYS),
                )
                .json(&serde_json::json!({ "value": &*self.value })),
            Operation::SemanticLookup => {
                let (_, query) = PARAPHRASES[(request % PARAPHRASES.len() as u64) as usize];
                self.request(
                    reqwest::Method::POST,
                    format!("{base}/v1/semantic/find_similar"),
                )
                .json(&serde_json::json!({
                    "text": query,
                    "threshold": SEMANTIC_THRESHOLD,
                    "context": ESC_CONTEXT,
                }))
            }
            Operation::PolicyCheck => {
                let (action, context) = System::policy_request(request);
                self.request(reqwest::Method::POST, format!("{base}/v1/policy/evaluate"))
                    .json(&serde_json::json!({
                        "action": action,
                        "context": context.to_json(),
                    }))
            }
            Operation::CglSolve => self
                .request(reqwest::Method::POST, format!("{base}/v1/cgl/solve"))
                .json(&serde_json::json!({
                    "grid_size": CGL_GRID,
                    "seed": request % CGL_SEEDS,
                })),
            Operation::NoOp => self.request(reqwest::Method::GET, format!("{base}/healthz")),
            Operation::Custom(name) => {
                let error = TargetError::new(format!("the HTTP target has no operation {name:?}"));
                return Box::pin(std::future::ready(Err(error)));
            }
        };
        Box::pin(send(builder))
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// What the freshness probe found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FreshnessReport {
    /// Probes completed (write old, read old, write new, read until new).
    pub probes: u64,
    /// Reads issued after the bound that still answered the old value.
    pub stale_reads: u64,
    /// Probes whose new value never arrived within the probe's timeout.
    pub never_fresh: u64,
    /// Propagation delays (A's acknowledgement to B's first new answer), in seconds.
    pub delays_s: Vec<f64>,
    /// Probes that failed on a request error (a node down).
    pub errors: u64,
    /// The bound the stale reads are counted against, in seconds.
    pub bound_s: f64,
}

/// The cross-node freshness probe (see the [module](self) documentation).
#[derive(Debug)]
pub struct FreshnessProbe {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<FreshnessReport>,
}

/// How long a probe waits for the new value before counting it never fresh.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

impl FreshnessProbe {
    /// Starts probing `target` (which has at least two nodes) every `pause`, counting reads
    /// after `bound` that answer the old value.
    pub fn start(target: HttpTarget, bound: Duration, pause: Duration) -> FreshnessProbe {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut report = FreshnessReport {
                bound_s: bound.as_secs_f64(),
                ..FreshnessReport::default()
            };
            let nodes = target.nodes.len();
            let mut probe = 0u64;
            while !stopping.load(Ordering::Relaxed) {
                let writer = (probe as usize) % nodes;
                let reader = (writer + 1) % nodes;
                let key = format!("freshness_probe_{}", probe % 16);
                match probe_once(&target, writer, reader, &key, probe, bound).await {
                    Ok(outcome) => {
                        report.probes += 1;
                        report.stale_reads += outcome.stale_reads;
                        match outcome.delay {
                            Some(delay) => report.delays_s.push(delay.as_secs_f64()),
                            None => report.never_fresh += 1,
                        }
                    }
                    Err(_) => report.errors += 1,
                }
                probe += 1;
                tokio::time::sleep(pause).await;
            }
            report
        });
        FreshnessProbe { stop, task }
    }

    /// Stops probing and returns what was found.
    pub async fn finish(self) -> FreshnessReport {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

struct ProbeOutcome {
    delay: Option<Duration>,
    stale_reads: u64,
}

async fn probe_once(
    target: &HttpTarget,
    writer: usize,
    reader: usize,
    key: &str,
    probe: u64,
    bound: Duration,
) -> Result<ProbeOutcome, TargetError> {
    let old = format!("{probe}:old");
    let new = format!("{probe}:new");
    target.set_value(writer, key, &old).await?;
    // The reader takes the old value into its memory tier (it may first see an even older
    // probe's value while the write's announcement is on its way).
    let deadline = Instant::now() + PROBE_TIMEOUT;
    while target.get_value(reader, key).await?.as_deref() != Some(old.as_str()) {
        if Instant::now() > deadline {
            return Ok(ProbeOutcome {
                delay: None,
                stale_reads: 0,
            });
        }
    }
    target.set_value(writer, key, &new).await?;
    let written = Instant::now();
    let mut stale_reads = 0;
    loop {
        let issued = written.elapsed();
        let value = target.get_value(reader, key).await?;
        if value.as_deref() == Some(new.as_str()) {
            return Ok(ProbeOutcome {
                delay: Some(written.elapsed()),
                stale_reads,
            });
        }
        if issued >= bound {
            stale_reads += 1;
        }
        if issued > PROBE_TIMEOUT {
            return Ok(ProbeOutcome {
                delay: None,
                stale_reads,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(HttpTarget::new(&[], None).is_err());
        assert!(HttpTarget::new(&["https://a:1".to_owned()], None).is_err());
        assert!(HttpTarget::new(&["http://a:1/x".to_owned()], None).is_err());
        let target = HttpTarget::new(&["http://127.0.0.1:1/".to_owned()], None).expect("valid");
        assert_eq!(target.urls(), ["http://127.0.0.1:1"]);
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("load_1"), "load_1");
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(encode_segment("é"), "%C3%A9");
    }
}
