//! `nfcs-bench serve`: an NFCS node. An HTTP server (axum on tokio) around the system under
//! test (an `NFCSCacheManager` from `[cache]`, the policy cache with the constitution, the
//! semantic cache where the model is present), with the coordination loop running
//! continuously, the memory profiler, the metrics upkeep and a live dashboard.
//!
//! # Routes
//!
//! | route | what | token |
//! |---|---|---|
//! | `GET /v1/cache/{key}`, `PUT`, `DELETE` | the cache ([`api`]) | yes |
//! | `POST /v1/cache/invalidate` | pattern invalidation | yes |
//! | `POST /v1/semantic/store`, `/v1/semantic/find_similar` | the semantic cache | yes |
//! | `POST /v1/policy/evaluate` | a constitutional check | yes |
//! | `POST /v1/cgl/solve` | the memoized CGL solve | yes |
//! | `POST /api/check` | [`Node::run_performance_check`]: the quick suite on this node's system, its report | yes |
//! | `POST /api/optimize[?dry_run=true]` | the `AutoPerformanceOptimizer` ([`crate::optimizer`]) on this node's system: quick mathematical, cache and memory components, the rules' plan, what was applied and kept | yes |
//! | `GET /metrics` | Prometheus text exposition | no |
//! | `GET /api/summary` | [`PerformanceDashboard::get_performance_summary`] | no |
//! | `GET /api/history` | the dashboard's samples | no |
//! | `GET /api/stream` | server-sent events: a [`LiveSample`] per sample | no |
//! | `GET /dashboard` | the live page (its assets under `/assets/`) | no |
//! | `GET /openapi.json` | the OpenAPI document of the routes above, from the Rust types | no |
//! | `GET /healthz` | `{"status": "ok"}` | no |
//!
//! "Token" routes need `Authorization: Bearer <token>` when a token is configured
//! (`NFCS_BENCH_TOKEN` or `serve.token_file`); a node listening on anything but a loopback
//! address refuses to start without one. The read-only routes stay open so that Prometheus and
//! a browser can reach them.
//!
//! # Limits
//!
//! Bodies above `serve.max_body` get 413, `/v1` requests running longer than
//! `serve.request_timeout` get 503, a check while another runs gets 409; every error is a JSON
//! [`api::ErrorBody`]. A handler that panics is answered 500 and the node keeps serving.
//!
//! # Shutdown
//!
//! On SIGTERM or SIGINT the node stops accepting connections, ends the event streams, lets the
//! requests in flight finish (at most `serve.shutdown_timeout`), stops the coordination loop
//! and the background tasks, and flushes the disk tier ([`NFCSCacheManager::flush`]): every
//! write it acknowledged is on the device when the process exits.
//!
//! [`NFCSCacheManager::flush`]: nfcs_performance::NFCSCacheManager::flush
//!
//! # Example
//!
//! A node in process, on a free port, stopped by a channel instead of a signal:
//!
//! ```
//! use nfcs_bench::BenchmarkConfig;
//! use nfcs_bench::serve::Node;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let work = tempfile::tempdir()?;
//! let config = BenchmarkConfig::from_toml_str(r#"
//!     [cache.redis]
//!     enabled = false      # memory and disk tiers only
//!     [cache.semantic]
//!     enabled = false
//! "#)?;
//! let node = Node::start(config, work.path()).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let address = listener.local_addr()?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(node.serve(listener, async {
//!     let _ = stopped.await;
//! }));
//!
//! let health = reqwest::get(format!("http://{address}/healthz")).await?.text().await?;
//! assert_eq!(health, r#"{"status":"ok"}"#);
//!
//! let _ = stop.send(());
//! server.await??; // requests drained, the loop stopped, the disk tier flushed
//! # Ok(())
//! # }
//! ```

pub mod api;
pub mod dashboard;
pub mod metrics;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use dashboard::{LiveSample, PerformanceDashboard, PerformanceSummary};

use crate::components::coordination::default_modules;
use crate::config::{BenchmarkConfig, TOKEN_ENV};
use crate::error::BenchError;
use crate::orchestrator::Orchestrator;
use crate::recording::{GcKind, PerformanceRecorder};
use crate::report::BenchmarkReport;
use crate::system::System;
use api::ApiError;

/// The bearer token, compared in constant time; never printed.
#[derive(Clone)]
struct Token(Arc<[u8]>);

impl std::fmt::Debug for Token {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Token(<redacted>)")
    }
}

impl Token {
    fn matches(&self, offered: &[u8]) -> bool {
        let expected = &self.0;
        // Length first (it is not secret), then every byte, without an early exit.
        if offered.len() != expected.len() {
            return false;
        }
        offered
            .iter()
            .zip(expected.iter())
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
    }
}

/// Reads the token: the environment variable [`TOKEN_ENV`] or the first line of
/// `serve.token_file`.
fn load_token(config: &BenchmarkConfig) -> Result<Option<Token>, BenchError> {
    let text = match std::env::var(TOKEN_ENV) {
        Ok(value) => Some(value),
        Err(std::env::VarError::NotPresent) => match &config.serve.token_file {
            None => None,
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|source| BenchError::Io {
                        action: "could not read the token file",
                        path: path.clone(),
                        source,
                    })?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            ),
        },
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(BenchError::Server(format!("{TOKEN_ENV} is not UTF-8")));
        }
    };
    match text.map(|text| text.trim().to_owned()) {
        None => Ok(None),
        Some(token) if token.len() < 16 || token.chars().any(char::is_control) => {
            Err(BenchError::config(
                "serve.token_file",
                "the bearer token must be at least 16 characters without control characters",
            ))
        }
        Some(token) => Ok(Some(Token(Arc::from(token.into_bytes())))),
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    system: Arc<System>,
    dashboard: Arc<PerformanceDashboard>,
    prometheus: PrometheusHandle,
    token: Option<Token>,
    live: watch::Receiver<Option<Arc<LiveSample>>>,
    shutdown: watch::Receiver<bool>,
    check: Arc<tokio::sync::Mutex<()>>,
    config: Arc<BenchmarkConfig>,
    work_dir: PathBuf,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AppState")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// A running NFCS node: the system, the dashboard and the background tasks; serve it with
/// [`Node::serve`].
pub struct Node {
    state: AppState,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    coordination: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Node")
            .field("system", &self.state.system)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Starts a node: installs the Prometheus recorder (once per process), builds the system
    /// of `config.cache` (relative disk paths under `work_dir`) and starts the coordination
    /// loop, the memory profiler, the metrics upkeep, the background Kuramoto runs and the
    /// dashboard's sampler.
    ///
    /// # Errors
    /// [`BenchError::Config`] for an invalid configuration or token, [`BenchError::Server`]
    /// when another metrics recorder is installed, [`BenchError::Build`] when the system
    /// cannot be built.
    pub async fn start(config: BenchmarkConfig, work_dir: &Path) -> Result<Node, BenchError> {
        config.validate()?;
        let token = load_token(&config)?;
        let listen: SocketAddr = config
            .serve
            .listen
            .parse()
            .map_err(|_| BenchError::config("serve.listen", "not an address"))?;
        if !listen.ip().is_loopback() && token.is_none() {
            return Err(BenchError::Server(format!(
                "listening on {listen} (not a loopback address) requires a bearer token, since \
                 the API can write and invalidate the cache: set {TOKEN_ENV} or serve.token_file"
            )));
        }
        let prometheus = metrics::prometheus()?;
        let system = Arc::new(
            System::build_with_sample_rate(&config.cache, work_dir, config.sample_rate).await?,
        );
        let dashboard = Arc::new(PerformanceDashboard::new(Arc::clone(&system), &config));
        let (stop, stop_receiver) = watch::channel(false);
        let (live_sender, live) = watch::channel(None);
        let config = Arc::new(config);
        // The background jobs' own records are rare: keep them all.
        let background = Arc::new(
            PerformanceRecorder::new(1.0)
                .map_err(|error| BenchError::config("sample_rate", error.to_string()))?,
        );

        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(sampler(
            Arc::clone(&dashboard),
            live_sender,
            stop_receiver.clone(),
        )));
        tasks.push(tokio::spawn(upkeep(
            prometheus.clone(),
            Arc::clone(&system),
            Arc::clone(&background),
            Duration::from_secs_f64(config.serve.upkeep_interval),
            stop_receiver.clone(),
        )));
        tasks.push(tokio::spawn(memory_profiler(
            Arc::clone(&background),
            Duration::from_secs_f64(config.memory_profiling.profile_interval),
            stop_receiver.clone(),
        )));
        if config.serve.kuramoto_interval > 0.0 {
            tasks.push(tokio::spawn(kuramoto_runs(
                Arc::clone(&config),
                Arc::clone(&dashboard),
                Arc::clone(&background),
                stop_receiver.clone(),
            )));
        }

        let (modules, notes) = default_modules(&system, config.coordination.grid_size).await?;
        for note in notes {
            tracing::info!("{note}");
        }
        let mut orchestrator = Orchestrator::new(config.coordination.frequency_hz)
            .map_err(|error| BenchError::config("coordination.frequency_hz", error.to_string()))?
            .keep_ticks(0);
        for module in modules {
            orchestrator = orchestrator.module(module);
        }
        let observed = Arc::clone(&dashboard);
        let recorder = Arc::clone(system.recorder());
        let frequency = config.coordination.frequency_hz;
        orchestrator = orchestrator.observer(move |record| {
            observed.observe_tick(record);
            recorder.record_coordination(record.latency, frequency);
            for answer in &record.modules {
                // The esc and constitutional modules record their own responses (the
                // lookup's and the evaluation's time) through the system's operations.
                if answer.name != crate::recording::MODULE_ESC
                    && answer.name != crate::recording::MODULE_CONSTITUTIONAL
                {
                    recorder.record_module_response(&answer.name, answer.response);
                }
            }
        });
        dashboard.loop_started();
        let mut stopped = stop_receiver.clone();
        let coordination = tokio::spawn(async move {
            let result = orchestrator
                .run_until(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await;
            if let Err(error) = result {
                tracing::error!("the coordination loop stopped: {error}");
            }
        });

        Ok(Node {
            state: AppState {
                system,
                dashboard,
                prometheus,
                token,
                live,
                shutdown: stop_receiver,
                check: Arc::new(tokio::sync::Mutex::new(())),
                config,
                work_dir: work_dir.to_owned(),
            },
            stop,
            tasks,
            coordination: Some(coordination),
        })
    }

    /// The system under test.
    pub fn system(&self) -> &Arc<System> {
        &self.state.system
    }

    /// The dashboard.
    pub fn dashboard(&self) -> &Arc<PerformanceDashboard> {
        &self.state.dashboard
    }

    /// The node's routes (see the [module](self) documentation).
    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    /// Serves on `listener` until `shutdown` resolves, then shuts down as the
    /// [module](self) documentation says.
    ///
    /// # Errors
    /// [`BenchError::Server`] when the server fails; [`BenchError::Cache`] when the disk
    /// tier cannot be flushed.
    pub async fn serve(
        mut self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), BenchError> {
        let router = self.router();
        let stop = self.stop.clone();
        let (drain_started, mut drain_signal) = watch::channel(false);
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: draining requests in flight");
            // Ends the event streams, so their connections close too.
            let _ = stop.send(true);
            let _ = drain_started.send(true);
        };
        let server = axum::serve(listener, router).with_graceful_shutdown(signal);
        let grace = Duration::from_secs_f64(self.state.config.serve.shutdown_timeout);
        let mut server = std::pin::pin!(server.into_future());
        let outcome = tokio::select! {
            outcome = &mut server => Some(outcome),
            _ = async {
                let _ = drain_signal.wait_for(|started| *started).await;
                tokio::time::sleep(grace).await;
            } => None,
        };
        match outcome {
            Some(Ok(())) => {}
            Some(Err(error)) => return Err(BenchError::Server(error.to_string())),
            None => tracing::warn!(
                "requests still in flight after {} s; closing anyway",
                grace.as_secs_f64()
            ),
        }
        self.close().await
    }

    /// Stops the coordination loop and the background tasks and flushes the tiers.
    ///
    /// # Errors
    /// [`BenchError::Cache`] when the disk tier cannot be flushed.
    pub async fn close(&mut self) -> Result<(), BenchError> {
        let _ = self.stop.send(true);
        if let Some(coordination) = self.coordination.take() {
            let _ = coordination.await;
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        self.state.system.manager().flush_metrics();
        self.state.system.manager().flush().await?;
        tracing::info!("the tiers are flushed");
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Waits for `stop` to turn true.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn sampler(
    dashboard: Arc<PerformanceDashboard>,
    live: watch::Sender<Option<Arc<LiveSample>>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut interval = tokio::time::interval(dashboard.sample_interval());
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = stopped(&mut stop) => return,
        }
        let board = Arc::clone(&dashboard);
        // The sample reads the allocator and sorts the window: off the runtime's workers.
        match tokio::task::spawn_blocking(move || board.sample()).await {
            Ok(sample) => {
                let _ = live.send(Some(Arc::new(sample)));
            }
            Err(error) => tracing::error!("a dashboard sample failed: {error}"),
        }
    }
}

async fn upkeep(
    prometheus: PrometheusHandle,
    system: Arc<System>,
    recorder: Arc<PerformanceRecorder>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = stopped(&mut stop) => return,
        }
        prometheus.run_upkeep();
        system.manager().flush_metrics();
        if let Some(memory) = system.manager().memory() {
            let started = Instant::now();
            memory.purge_expired();
            recorder.record_gc(GcKind::ExpiryReclamation, started.elapsed());
        }
    }
}

async fn memory_profiler(
    recorder: Arc<PerformanceRecorder>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    if let Err(reason) = crate::alloc::available() {
        tracing::info!("memory profiling is off: {reason}");
        return;
    }
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = stopped(&mut stop) => return,
        }
        match crate::alloc::read() {
            Ok(stats) => recorder.record_memory(&stats),
            Err(reason) => tracing::warn!("an allocator sample failed: {reason}"),
        }
    }
}

async fn kuramoto_runs(
    config: Arc<BenchmarkConfig>,
    dashboard: Arc<PerformanceDashboard>,
    recorder: Arc<PerformanceRecorder>,
    mut stop: watch::Receiver<bool>,
) {
    let kuramoto = &config.mathematical_benchmarks.kuramoto;
    let counts = kuramoto.oscillator_counts.clone();
    let (threshold, max_time) = (kuramoto.sync_threshold, kuramoto.max_simulated_time);
    let mut interval =
        tokio::time::interval(Duration::from_secs_f64(config.serve.kuramoto_interval));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for count in counts.iter().copied().cycle() {
        tokio::select! {
            _ = interval.tick() => {}
            () = stopped(&mut stop) => return,
        }
        let recorder = Arc::clone(&recorder);
        let run = tokio::task::spawn_blocking(move || {
            crate::components::mathematical::kuramoto_sync_recorded(
                count,
                Duration::ZERO,
                threshold,
                max_time,
                Some(&recorder),
            )
        })
        .await;
        match run {
            Ok(Ok(figures)) => {
                if let Some(last) = figures.compute_s.last() {
                    dashboard.observe_kuramoto(count, *last);
                }
            }
            Ok(Err(error)) => tracing::warn!("a Kuramoto run failed: {error}"),
            Err(error) => tracing::warn!("a Kuramoto run did not finish: {error}"),
        }
    }
}

/// The routes over `state`.
fn router(state: AppState) -> Router {
    let timeout = Duration::from_secs_f64(state.config.serve.request_timeout);
    let max_body = usize::try_from(state.config.serve.max_body.bytes()).unwrap_or(usize::MAX);
    let v1 = Router::new()
        .route(
            "/v1/cache/{key}",
            get(api::cache_get)
                .put(api::cache_set)
                .delete(api::cache_delete),
        )
        .route("/v1/cache/invalidate", post(api::cache_invalidate))
        .route("/v1/semantic/store", post(api::semantic_store))
        .route("/v1/semantic/find_similar", post(api::semantic_find))
        .route("/v1/policy/evaluate", post(api::policy_evaluate))
        .route("/v1/cgl/solve", post(api::cgl_solve))
        .layer(axum::middleware::from_fn_with_state(
            timeout,
            request_timeout,
        ))
        .route("/api/check", post(check))
        .route("/api/optimize", post(optimize));
    let protected = v1.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        require_token,
    ));
    Router::new()
        .merge(protected)
        .route("/metrics", get(render_metrics))
        .route("/api/summary", get(api::summary))
        .route("/api/history", get(api::history))
        .route("/api/stream", get(stream))
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(api::healthz))
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/dashboard") }),
        )
        .route("/dashboard", get(page))
        .route("/assets/{file}", get(asset))
        // Browsers ask for it; an empty answer keeps their consoles clean.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe_request,
        ))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .with_state(state)
}

fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the request's handler failed; the node keeps serving",
    )
    .into_response()
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route {} {}",
        request.method(),
        request.uri().path()
    ))
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let offered = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "));
        if !offered.is_some_and(|offered| token.matches(offered)) {
            let mut response = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this route needs Authorization: Bearer <the node's token>",
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    next.run(request).await
}

async fn request_timeout(
    State(timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request took longer than serve.request_timeout ({} s)",
                timeout.as_secs_f64()
            ),
        )
        .into_response(),
    }
}

async fn observe_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let in_flight = ::metrics::gauge!(metrics::HTTP_IN_FLIGHT);
    in_flight.increment(1.0);
    // Decremented when the request ends, answered or dropped.
    let _answered = InFlight(in_flight);
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    if route.starts_with("/v1/") {
        state.dashboard.observe_response(elapsed);
    }
    ::metrics::counter!(
        metrics::HTTP_REQUESTS,
        "route" => route.clone(),
        "method" => method.clone(),
        "status" => response.status().as_str().to_owned()
    )
    .increment(1);
    ::metrics::histogram!(
        metrics::HTTP_REQUEST_DURATION,
        "route" => route,
        "method" => method
    )
    .record(elapsed.as_secs_f64());
    response
}

/// Decrements the in-flight gauge when dropped.
struct InFlight(::metrics::Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

async fn render_metrics(State(state): State<AppState>) -> Response {
    state.system.manager().flush_metrics();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.prometheus.render(),
    )
        .into_response()
}

async fn openapi(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        api::openapi_json(state.token.is_some(), state.system.known_actions()),
    )
        .into_response()
}

async fn stream(
    State(state): State<AppState>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let mut live = state.live.clone();
    live.mark_changed();
    let shutdown = state.shutdown.clone();
    let events =
        futures_util::stream::unfold((live, shutdown), |(mut live, mut shutdown)| async move {
            loop {
                if *shutdown.borrow() {
                    return None;
                }
                tokio::select! {
                    changed = live.changed() => changed.ok()?,
                    () = stopped(&mut shutdown) => return None,
                }
                let sample = live.borrow_and_update().clone();
                if let Some(sample) = sample {
                    let event = Event::default()
                        .event("sample")
                        .json_data(&*sample)
                        .unwrap_or_else(|_| Event::default().comment("unserialisable sample"));
                    return Some((Ok(event), (live, shutdown)));
                }
            }
        });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// Why a performance check did not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// Another check is running on this node.
    #[error("a performance check is already running on this node")]
    Busy,
    /// The suite failed.
    #[error(transparent)]
    Suite(#[from] BenchError),
    /// The check's thread did not finish (the runtime is shutting down).
    #[error("the check did not finish: {0}")]
    Lost(String),
}

impl AppState {
    /// The spec's `run_performance_check()`: the quick suite on this node's own system (its
    /// tiers, its policy cache, beside the requests it serves), one at a time.
    async fn run_performance_check(&self) -> Result<BenchmarkReport, CheckError> {
        let Ok(_running) = self.check.try_lock() else {
            return Err(CheckError::Busy);
        };
        let suite = self.quick_suite();
        on_blocking_thread(move || async move { suite.run_full_benchmark().await }).await
    }

    /// The quick suite over this node's own system.
    fn quick_suite(&self) -> crate::suite::NFCSBenchmarkSuite {
        crate::suite::NFCSBenchmarkSuite::with_system(
            (*self.config).clone(),
            crate::suite::SuiteOptions::quick(self.work_dir.join("check")),
            Arc::clone(&self.system),
        )
    }

    /// The `AutoPerformanceOptimizer` on this node's own system: the quick mathematical,
    /// cache and memory components, the rules, and (unless `dry_run`) the changes applied,
    /// re-measured and kept where they helped. Shares the one-at-a-time lock of the check.
    async fn optimize(
        &self,
        dry_run: bool,
    ) -> Result<crate::optimizer::OptimizationReport, CheckError> {
        let Ok(_running) = self.check.try_lock() else {
            return Err(CheckError::Busy);
        };
        let suite = self.quick_suite();
        let limit = self.config.cache.memory.max_size.bytes().saturating_mul(4);
        let mut optimizer = crate::optimizer::AutoPerformanceOptimizer::new(suite, limit)
            .components(&[
                crate::components::Component::Mathematical,
                crate::components::Component::Cache,
                crate::components::Component::Memory,
            ]);
        on_blocking_thread(
            move || async move { optimizer.optimize_system_performance(dry_run).await },
        )
        .await
    }
}

/// Runs a suite's future on a blocking thread, driven by this runtime's handle: it is not
/// `Send` (the components hold their progress bars across awaits).
async fn on_blocking_thread<T: Send + 'static, F: Future<Output = Result<T, BenchError>>>(
    work: impl FnOnce() -> F + Send + 'static,
) -> Result<T, CheckError> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(work()))
        .await
        .map_err(|error| CheckError::Lost(error.to_string()))?
        .map_err(CheckError::Suite)
}

/// The query of `POST /api/optimize`.
#[derive(Debug, serde::Deserialize)]
struct OptimizeQuery {
    /// Plan only.
    #[serde(default)]
    dry_run: bool,
}

/// `POST /api/optimize[?dry_run=true]`.
async fn optimize(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<OptimizeQuery>,
) -> Response {
    match state.optimize(query.dry_run).await {
        Ok(report) => axum::Json(report).into_response(),
        Err(error) => check_error(error),
    }
}

/// The answer to a check or an optimization that did not run: 409 while another runs, the
/// suite's error, 500 otherwise.
fn check_error(error: CheckError) -> Response {
    match error {
        CheckError::Busy => ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            CheckError::Busy.to_string(),
        )
        .into_response(),
        CheckError::Suite(error) => ApiError::from(error).into_response(),
        error => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            error.to_string(),
        )
        .into_response(),
    }
}

impl Node {
    /// The spec's `PerformanceDashboard.run_performance_check()` (`POST /api/check`): the
    /// quick suite on this node's own system, beside what it serves; one check at a time.
    ///
    /// # Errors
    /// [`CheckError::Busy`] while another check runs; [`CheckError::Suite`] when the suite
    /// fails.
    pub async fn run_performance_check(&self) -> Result<BenchmarkReport, CheckError> {
        self.state.run_performance_check().await
    }
}

/// `POST /api/check`.
async fn check(State(state): State<AppState>) -> Response {
    match state.run_performance_check().await {
        Ok(report) => axum::Json(report).into_response(),
        Err(error) => check_error(error),
    }
}

const INDEX_HTML: &str = include_str!("../../assets/dashboard/index.html");
const DASHBOARD_JS: &str = include_str!("../../assets/dashboard/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("../../assets/dashboard/dashboard.css");
const UPLOT_JS: &str = include_str!("../../assets/vendor/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../../assets/vendor/uplot/uPlot.min.css");

/// The content security policy of the page: everything from the node itself.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'";

async fn page() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
        ],
        INDEX_HTML,
    )
        .into_response()
}

async fn asset(api::ApiPath(file): api::ApiPath<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "dashboard.js" => (DASHBOARD_JS, "text/javascript; charset=utf-8"),
        "dashboard.css" => (DASHBOARD_CSS, "text/css; charset=utf-8"),
        "uPlot.iife.min.js" => (UPLOT_JS, "text/javascript; charset=utf-8"),
        "uPlot.min.css" => (UPLOT_CSS, "text/css; charset=utf-8"),
        _ => return ApiError::not_found(format!("no asset {file:?}")).into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}

/// `nfcs-bench serve`: starts a node on `config.serve.listen` (or `listen`), prints the
/// address it listens on, and serves until SIGTERM or SIGINT.
///
/// # Errors
/// As [`Node::start`] and [`Node::serve`]; [`BenchError::Server`] when the address cannot
/// be bound.
pub async fn run(
    mut config: BenchmarkConfig,
    listen: Option<String>,
    work_dir: &Path,
) -> Result<(), BenchError> {
    if let Some(listen) = listen {
        config.serve.listen = listen;
    }
    let node = Node::start(config.clone(), work_dir).await?;
    let listener = tokio::net::TcpListener::bind(&config.serve.listen)
        .await
        .map_err(|error| {
            BenchError::Server(format!(
                "could not listen on {}: {error}",
                config.serve.listen
            ))
        })?;
    let address = listener
        .local_addr()
        .map_err(|error| BenchError::Server(error.to_string()))?;
    for line in node.system().describe().tiers {
        eprintln!("  {line}");
    }
    for note in node.system().describe().notes {
        eprintln!("  note: {note}");
    }
    // The one line a supervisor (or a test) waits for.
    println!("nfcs-bench: listening on http://{address}");
    node.serve(listener, termination()).await?;
    eprintln!("nfcs-bench: stopped; the tiers are flushed");
    Ok(())
}

/// Resolves at SIGTERM or SIGINT (Ctrl-C).
async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(error) => {
                tracing::warn!("cannot listen for SIGTERM ({error}); Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
