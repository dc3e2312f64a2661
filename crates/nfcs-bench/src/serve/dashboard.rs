//! `PerformanceDashboard`: the served node's live view of itself: the spec's performance
//! summary, a history of samples for the charts, and alerts.
//!
//! # What is sampled
//!
//! Every `serve.sample_interval` (1 s) the dashboard takes a [`HistoryPoint`] and evaluates
//! the alerts. Rates, ratios and percentiles are taken over the last `alerts.window` (60 s):
//!
//! - the **cache hit ratio**: hits in any tier over reads of the first tier, from the
//!   difference of the manager's counters across the window;
//! - the **coordination frequency**: ticks completed in the window over the window's span
//!   (the time the loop has run, when shorter); the **coordination latency p95** over those
//!   ticks (last module answer minus the intended tick);
//! - the **response time p95**: of the service API's requests (`/v1/...`) answered in the
//!   window (no value when there were none);
//! - **memory**: the process's resident set, and the allocator's efficiency (allocated over
//!   resident bytes) and fragmentation (jemalloc, feature `jemalloc`).
//!
//! # The overall score
//!
//! `overall_score` is 100 times the mean of the scores of the indicators that have a value,
//! each between 0 and 1:
//!
//! | indicator | score |
//! |---|---|
//! | coordination frequency | `min(1, hz / targets.coordination_hz)` |
//! | coordination latency p95 | `min(1, targets.coordination_p95_ms / p95)` |
//! | response time p95 | `min(1, targets.load_p95_s / p95)` |
//! | resident memory | `min(1, targets.memory_mb / resident)` |
//! | cache hit ratio | `min(1, ratio / targets.cache_hit_ratio)` (once the window holds `alerts.hit_ratio_min_reads` reads) |
//! | tiers | running tiers over configured tiers that should run |
//!
//! So a node meeting every target scores 100, and a node at half its target frequency with
//! everything else met scores 100 - 50/6 = 91.7. Alerts do not change the score; they say
//! which threshold is crossed.
//!
//! # Alerts
//!
//! | name | raised when |
//! |---|---|
//! | `hit_ratio_low` | hit ratio below `alerts.hit_ratio_below` (0.8) with at least `alerts.hit_ratio_min_reads` reads in the window |
//! | `coordination_frequency_low` | coordination frequency below `alerts.coordination_hz_below` (9 Hz) |
//! | `coordination_latency_high` | coordination p95 above `alerts.coordination_p95_ms_above` (50 ms) |
//! | `memory_high` | resident memory above `alerts.memory_mb_above` (`memory_profiling.memory_threshold_mb`) |
//! | `fragmentation_high` | allocator fragmentation above `alerts.fragmentation_percent_above` (30 %) |
//! | `tier_down` | a configured tier is unavailable (one alert per tier, its name in `subject`) |
//!
//! An alert carries its start time, the current value and the threshold, and is cleared at the
//! first sample where its condition no longer holds; the last [`CLEARED_KEPT`] cleared alerts
//! are listed after the active ones.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::{AlertConfig, BenchmarkConfig, Targets};
use crate::orchestrator::TickRecord;
use crate::system::System;

/// Cleared alerts kept in the summary after the active ones.
pub const CLEARED_KEPT: usize = 20;

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

/// One sample of the charts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HistoryPoint {
    /// When, in seconds since the Unix epoch.
    pub t: f64,
    /// The cache hit ratio over the window (`null` before any read).
    pub hit_ratio: Option<f64>,
    /// The coordination frequency over the window, in Hz.
    pub coordination_hz: Option<f64>,
    /// The coordination latency p95 over the window, in seconds.
    pub coordination_p95_s: Option<f64>,
    /// The service API's response time p95 over the window, in seconds.
    pub response_p95_s: Option<f64>,
    /// The process's resident set, in bytes.
    pub memory_resident_bytes: Option<f64>,
    /// The allocator's live bytes.
    pub memory_allocated_bytes: Option<f64>,
}

/// `/api/history`: the samples of the last `serve.history` seconds, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct History {
    /// Seconds between samples.
    pub interval_s: f64,
    /// The samples.
    pub points: Vec<HistoryPoint>,
}

/// How serious an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// A target is at risk.
    Warning,
    /// Part of the node does not work.
    Critical,
}

/// An alert, raised or cleared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Alert {
    /// `hit_ratio_low`, `coordination_frequency_low`, `coordination_latency_high`,
    /// `memory_high`, `fragmentation_high`, `tier_down`.
    pub name: String,
    /// What it is about, when the name alone does not say (the tier of `tier_down`).
    pub subject: Option<String>,
    /// Warning or critical.
    pub severity: Severity,
    /// In words, with the value and the threshold.
    pub message: String,
    /// When it was raised, in seconds since the Unix epoch.
    pub started_at: f64,
    /// The value at the last sample (while raised) or when it cleared.
    pub value: f64,
    /// The threshold it is compared with.
    pub threshold: f64,
    /// Whether it is raised now.
    pub active: bool,
    /// When it cleared, in seconds since the Unix epoch.
    pub cleared_at: Option<f64>,
}

/// The node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeInfo {
    /// `serve.node_name`.
    pub name: String,
    /// The crate's version.
    pub version: String,
    /// Seconds since the node started.
    pub uptime_s: f64,
}

/// The spec's `system_performance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SystemPerformance {
    /// 0 to 100 (see the [module](self) documentation).
    pub overall_score: f64,
    /// The coordination frequency over the window, in Hz.
    pub coordination_frequency: Option<f64>,
    /// The service API's response time p95 over the window, in seconds.
    pub response_time_p95: Option<f64>,
    /// Allocated over resident allocator bytes.
    pub memory_efficiency: Option<f64>,
}

/// The state of a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ComponentStatus {
    /// Meeting its targets.
    Ok,
    /// Running, a target missed or answers failing.
    Degraded,
    /// Every recent answer failed.
    Failing,
    /// Not part of this node (the semantic cache without its model).
    NotRunning,
}

/// The constitutional module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConstitutionalPerformance {
    /// Its state.
    pub status: ComponentStatus,
    /// The policy cache's hit ratio since the start.
    pub hit_ratio: Option<f64>,
    /// The module's response p95 over the window, in seconds.
    pub p95_s: Option<f64>,
    /// Full evaluations (cache misses) since the start.
    pub evaluations: u64,
}

/// The mathematical core.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MathematicalPerformance {
    /// Its state.
    pub status: ComponentStatus,
    /// CGL steps per second of the coordination loop's solver (1 / its last step's compute
    /// time).
    pub cgl_fps: Option<f64>,
    /// Its grid.
    pub grid_size: usize,
    /// Compute seconds to synchrony of the last background Kuramoto run.
    pub kuramoto_sync_s: Option<f64>,
    /// Its oscillators.
    pub kuramoto_oscillators: Option<usize>,
}

/// The ESC (the semantic cache).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EscPerformance {
    /// Its state.
    pub status: ComponentStatus,
    /// The `esc` module's response p95 over the window, in seconds.
    pub p95_s: Option<f64>,
    /// Lookups of the `esc` module in the window.
    pub lookups: u64,
    /// Why it does not run, when it does not.
    pub reason: Option<String>,
}

/// The orchestrator (the coordination loop).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrchestratorPerformance {
    /// Its state.
    pub status: ComponentStatus,
    /// Achieved frequency over the window, in Hz.
    pub frequency_hz: Option<f64>,
    /// The configured frequency.
    pub target_hz: f64,
    /// Coordination latency p95 over the window, in seconds.
    pub latency_p95_s: Option<f64>,
    /// Intended ticks not dispatched since the start.
    pub missed_ticks: u64,
    /// Module answers that were errors or panics since the start.
    pub module_failures: u64,
}

/// The spec's `component_performance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ComponentPerformance {
    /// The constitutional module.
    pub constitutional: ConstitutionalPerformance,
    /// The mathematical core.
    pub mathematical: MathematicalPerformance,
    /// The ESC.
    pub esc_system: EscPerformance,
    /// The orchestrator.
    pub orchestrator: OrchestratorPerformance,
}

/// The spec's `cache_performance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CachePerformance {
    /// Hits over reads over the window (`null` before any read).
    pub hit_ratio: Option<f64>,
    /// Bytes held by the memory tier.
    pub memory_usage: u64,
    /// The memory tier's byte budget.
    pub memory_capacity: u64,
    /// Memory-tier evictions per second over the window.
    pub eviction_rate: f64,
    /// Reads in the window.
    pub reads: u64,
}

/// A configured tier and its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TierHealth {
    /// `memory`, `disk`, `redis`, `semantic`, ...
    pub name: String,
    /// `running`, `disabled`, `not_running`, `unavailable`.
    pub state: String,
    /// Why it is not running, when it is not.
    pub reason: Option<String>,
}

/// One indicator of the overall score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScorePart {
    /// `coordination_frequency`, `coordination_latency`, `response_time`, `memory`,
    /// `hit_ratio`, `tiers`.
    pub name: String,
    /// 0 to 1.
    pub score: f64,
}

/// How the overall score was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Score {
    /// The indicators that had a value.
    pub parts: Vec<ScorePart>,
}

/// `get_performance_summary()`: the spec's summary, with the node, the tiers and how the score
/// was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PerformanceSummary {
    /// When, in seconds since the Unix epoch.
    pub generated_at: f64,
    /// The node.
    pub node: NodeInfo,
    /// The spec's `system_performance`.
    pub system_performance: SystemPerformance,
    /// The spec's `component_performance`.
    pub component_performance: ComponentPerformance,
    /// The spec's `cache_performance`.
    pub cache_performance: CachePerformance,
    /// Every configured tier and its state.
    pub tiers: Vec<TierHealth>,
    /// Active alerts, then the most recently cleared ones.
    pub alerts: Vec<Alert>,
    /// The parts of `overall_score`.
    pub score: Score,
}

/// What a sample publishes to the live page: the newest point and the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LiveSample {
    /// The newest history point.
    pub point: HistoryPoint,
    /// The summary at that point.
    pub summary: PerformanceSummary,
}

/// A module's figures over the window: name, answers, failed answers, response p50 and p95.
type ModuleFigures = (String, u64, u64, Option<f64>, Option<f64>);

/// One completed tick as the dashboard keeps it.
#[derive(Debug, Clone)]
struct TickSample {
    at: Instant,
    latency_s: f64,
    /// (module index, response seconds, succeeded)
    modules: Vec<(usize, f64, bool)>,
}

/// What the coordination loop's observer feeds.
#[derive(Debug, Default)]
struct TickWindow {
    started: Option<Instant>,
    ticks: VecDeque<TickSample>,
    module_names: Vec<String>,
    missed: u64,
    failures: u64,
}

impl TickWindow {
    fn module_index(&mut self, name: &str) -> usize {
        match self.module_names.iter().position(|known| known == name) {
            Some(index) => index,
            None => {
                self.module_names.push(name.to_owned());
                self.module_names.len() - 1
            }
        }
    }

    fn prune(&mut self, now: Instant, window: Duration) {
        while self
            .ticks
            .front()
            .is_some_and(|tick| now.saturating_duration_since(tick.at) > window)
        {
            self.ticks.pop_front();
        }
    }
}

/// Per-second latency histograms (microseconds) of the service API's requests.
#[derive(Debug)]
struct LatencyWindow {
    origin: Instant,
    slots: VecDeque<(u64, Histogram<u64>)>,
}

impl LatencyWindow {
    fn new(origin: Instant) -> LatencyWindow {
        LatencyWindow {
            origin,
            slots: VecDeque::new(),
        }
    }

    fn record(&mut self, at: Instant, duration: Duration, keep: u64) {
        let second = at.saturating_duration_since(self.origin).as_secs();
        if self.slots.back().is_none_or(|(slot, _)| *slot != second) {
            // Valid constant bounds: 1 us to 1 h at 2 significant figures.
            let Ok(histogram) = Histogram::new_with_bounds(1, 3_600_000_000, 2) else {
                return;
            };
            self.slots.push_back((second, histogram));
            while self.slots.len() as u64 > keep.max(1) + 1 {
                self.slots.pop_front();
            }
        }
        if let Some((_, histogram)) = self.slots.back_mut() {
            let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
            histogram.saturating_record(micros.max(1));
        }
    }

    /// The p95 (seconds) and count of the requests of the last `window`.
    fn p95(&self, now: Instant, window: Duration) -> (Option<f64>, u64) {
        let now_second = now.saturating_duration_since(self.origin).as_secs();
        let first = now_second.saturating_sub(window.as_secs().max(1));
        let mut merged: Option<Histogram<u64>> = None;
        for (slot, histogram) in &self.slots {
            if *slot < first {
                continue;
            }
            match &mut merged {
                None => merged = Some(histogram.clone()),
                Some(total) => {
                    let _ = total.add(histogram);
                }
            }
        }
        match merged {
            Some(histogram) if !histogram.is_empty() => (
                Some(histogram.value_at_quantile(0.95) as f64 / 1e6),
                histogram.len(),
            ),
            _ => (None, 0),
        }
    }
}

/// The manager's counters at a sample.
#[derive(Debug, Clone, Copy)]
struct CounterSample {
    at: Instant,
    hits: u64,
    reads: u64,
    evictions: u64,
}

#[derive(Debug, Default)]
struct AlertBook {
    active: Vec<Alert>,
    cleared: VecDeque<Alert>,
}

/// A condition of an alert at a sample.
struct Condition {
    name: &'static str,
    subject: Option<String>,
    severity: Severity,
    firing: bool,
    value: f64,
    threshold: f64,
    message: String,
}

impl AlertBook {
    fn apply(&mut self, conditions: Vec<Condition>, now: f64) {
        for condition in conditions {
            let position = self.active.iter().position(|alert| {
                alert.name == condition.name && alert.subject == condition.subject
            });
            match (position, condition.firing) {
                (Some(index), true) => {
                    let alert = &mut self.active[index];
                    alert.value = condition.value;
                    alert.message = condition.message;
                }
                (Some(index), false) => {
                    let mut alert = self.active.remove(index);
                    alert.active = false;
                    alert.value = condition.value;
                    alert.cleared_at = Some(now);
                    tracing::info!(alert = %alert.name, subject = ?alert.subject, "alert cleared");
                    self.cleared.push_front(alert);
                    self.cleared.truncate(CLEARED_KEPT);
                }
                (None, true) => {
                    tracing::warn!(alert = condition.name, message = %condition.message, "alert raised");
                    self.active.push(Alert {
                        name: condition.name.to_owned(),
                        subject: condition.subject,
                        severity: condition.severity,
                        message: condition.message,
                        started_at: now,
                        value: condition.value,
                        threshold: condition.threshold,
                        active: true,
                        cleared_at: None,
                    });
                }
                (None, false) => {}
            }
        }
    }

    fn list(&self) -> Vec<Alert> {
        self.active
            .iter()
            .chain(self.cleared.iter())
            .cloned()
            .collect()
    }
}

#[derive(Debug)]
struct State {
    history: VecDeque<HistoryPoint>,
    counters: VecDeque<CounterSample>,
    alerts: AlertBook,
    last: Option<PerformanceSummary>,
}

/// What the dashboard is configured with.
#[derive(Debug, Clone)]
struct Settings {
    node_name: String,
    alerts: AlertConfig,
    targets: Targets,
    memory_threshold_mb: f64,
    sample_interval: Duration,
    history_points: usize,
    window: Duration,
    target_hz: f64,
    grid_size: usize,
}

/// The spec's `PerformanceDashboard` for a running node (see the [module](self)
/// documentation): fed by the coordination loop's observer and the HTTP layer, sampled by
/// [`sample`](PerformanceDashboard::sample).
pub struct PerformanceDashboard {
    settings: Settings,
    system: Arc<System>,
    started: Instant,
    state: parking_lot::Mutex<State>,
    ticks: parking_lot::Mutex<TickWindow>,
    responses: parking_lot::Mutex<LatencyWindow>,
    kuramoto: parking_lot::Mutex<Option<(usize, f64)>>,
}

impl std::fmt::Debug for PerformanceDashboard {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PerformanceDashboard")
            .field("node", &self.settings.node_name)
            .finish_non_exhaustive()
    }
}

impl PerformanceDashboard {
    /// A dashboard of `system` with the thresholds, targets and intervals of `config`.
    pub fn new(system: Arc<System>, config: &BenchmarkConfig) -> PerformanceDashboard {
        let started = Instant::now();
        let sample_interval = Duration::from_secs_f64(config.serve.sample_interval);
        let history_points = (config.serve.history / config.serve.sample_interval)
            .ceil()
            .max(1.0) as usize;
        PerformanceDashboard {
            settings: Settings {
                node_name: config.serve.node_name.clone(),
                alerts: config.alerts.clone(),
                targets: config.targets.clone(),
                memory_threshold_mb: config
                    .alerts
                    .memory_mb_above
                    .unwrap_or(config.memory_profiling.memory_threshold_mb as f64),
                sample_interval,
                history_points,
                window: Duration::from_secs_f64(config.alerts.window),
                target_hz: config.coordination.frequency_hz,
                grid_size: config.coordination.grid_size,
            },
            system,
            started,
            state: parking_lot::Mutex::new(State {
                history: VecDeque::new(),
                counters: VecDeque::new(),
                alerts: AlertBook::default(),
                last: None,
            }),
            ticks: parking_lot::Mutex::new(TickWindow::default()),
            responses: parking_lot::Mutex::new(LatencyWindow::new(started)),
            kuramoto: parking_lot::Mutex::new(None),
        }
    }

    /// Seconds between samples.
    pub fn sample_interval(&self) -> Duration {
        self.settings.sample_interval
    }

    /// Marks the start of the coordination loop (the frequency's span begins here).
    pub fn loop_started(&self) {
        self.ticks.lock().started = Some(Instant::now());
    }

    /// Takes a completed tick of the coordination loop (its observer calls this).
    pub fn observe_tick(&self, record: &TickRecord) {
        let now = Instant::now();
        let mut window = self.ticks.lock();
        if window.started.is_none() {
            window.started = Some(now);
        }
        window.missed += record.skipped_before;
        let mut modules = Vec::with_capacity(record.modules.len());
        for answer in &record.modules {
            let index = window.module_index(&answer.name);
            let ok = matches!(answer.outcome, crate::orchestrator::Outcome::Ok);
            if !ok {
                window.failures += 1;
            }
            modules.push((index, answer.response.as_secs_f64(), ok));
        }
        window.ticks.push_back(TickSample {
            at: now,
            latency_s: record.latency.as_secs_f64(),
            modules,
        });
        let keep = self.settings.window;
        window.prune(now, keep);
    }

    /// Takes a service API request that took `duration`.
    pub fn observe_response(&self, duration: Duration) {
        let keep = self.settings.window.as_secs() + 1;
        self.responses.lock().record(Instant::now(), duration, keep);
    }

    /// Takes a background Kuramoto run: `oscillators` synchronised in `compute_s` seconds.
    pub fn observe_kuramoto(&self, oscillators: usize, compute_s: f64) {
        *self.kuramoto.lock() = Some((oscillators, compute_s));
    }

    /// Takes a sample: a history point, the alerts evaluated, the summary refreshed. The node
    /// calls it every `serve.sample_interval`.
    pub fn sample(&self) -> LiveSample {
        let now = Instant::now();
        let unix = unix_now();
        let window = self.settings.window;
        let stats = self.system.manager().stats();

        // The cache's counters over the window.
        let (hits, reads, evictions) = {
            let hits: u64 = stats.tiers.iter().map(|(_, tier)| tier.hits).sum();
            let first = stats.tiers.first().map(|(_, tier)| tier);
            (
                hits,
                first.map_or(0, |tier| tier.hits + tier.misses),
                first.map_or(0, |tier| tier.evictions),
            )
        };
        let memory_tier = stats.tiers.first().map(|(_, tier)| *tier);

        // The loop over the window.
        let (coordination_hz, coordination_p95, module_figures, missed, failures) = {
            let mut ticks = self.ticks.lock();
            ticks.prune(now, window);
            let span = ticks
                .started
                .map(|started| now.saturating_duration_since(started).min(window));
            let hz = match span {
                Some(span) if span >= Duration::from_millis(500) => {
                    Some(ticks.ticks.len() as f64 / span.as_secs_f64())
                }
                _ => None,
            };
            let mut latencies: Vec<f64> = ticks.ticks.iter().map(|tick| tick.latency_s).collect();
            let p95 = quantile(&mut latencies, 0.95);
            let mut figures = Vec::new();
            for (index, name) in ticks.module_names.iter().enumerate() {
                let mut responses = Vec::new();
                let mut failed = 0u64;
                for tick in &ticks.ticks {
                    for (module, response, ok) in &tick.modules {
                        if *module == index {
                            responses.push(*response);
                            if !ok {
                                failed += 1;
                            }
                        }
                    }
                }
                let count = responses.len() as u64;
                let p50 = quantile(&mut responses.clone(), 0.5);
                let p95 = quantile(&mut responses, 0.95);
                figures.push((name.clone(), count, failed, p50, p95));
            }
            (hz, p95, figures, ticks.missed, ticks.failures)
        };
        let module = |name: &str| {
            module_figures
                .iter()
                .find(|(module, ..)| module == name)
                .cloned()
        };

        let (response_p95, _) = self.responses.lock().p95(now, window);
        let allocator = crate::alloc::read().ok();
        let resident = crate::alloc::process_resident_bytes();

        let mut state = self.state.lock();
        state.counters.push_back(CounterSample {
            at: now,
            hits,
            reads,
            evictions,
        });
        while state
            .counters
            .front()
            .is_some_and(|sample| now.saturating_duration_since(sample.at) > window)
        {
            state.counters.pop_front();
        }
        let (window_hits, window_reads, window_evictions, window_span) =
            match (state.counters.front(), state.counters.back()) {
                (Some(first), Some(last)) if state.counters.len() >= 2 => (
                    last.hits.saturating_sub(first.hits),
                    last.reads.saturating_sub(first.reads),
                    last.evictions.saturating_sub(first.evictions),
                    last.at.saturating_duration_since(first.at).as_secs_f64(),
                ),
                _ => (0, 0, 0, 0.0),
            };
        let hit_ratio = (window_reads > 0).then(|| window_hits as f64 / window_reads as f64);
        let eviction_rate = if window_span > 0.0 {
            window_evictions as f64 / window_span
        } else {
            0.0
        };

        let point = HistoryPoint {
            t: unix,
            hit_ratio,
            coordination_hz,
            coordination_p95_s: coordination_p95,
            response_p95_s: response_p95,
            memory_resident_bytes: resident.map(|bytes| bytes as f64),
            memory_allocated_bytes: allocator.map(|stats| stats.allocated as f64),
        };
        state.history.push_back(point);
        while state.history.len() > self.settings.history_points {
            state.history.pop_front();
        }

        // Tiers.
        let tiers: Vec<TierHealth> = stats
            .status
            .iter()
            .map(|status| {
                let (state, reason) = match &status.state {
                    nfcs_performance::TierState::Running => ("running", None),
                    nfcs_performance::TierState::Disabled => ("disabled", None),
                    nfcs_performance::TierState::NotRunning { reason } => {
                        ("not_running", Some(reason.clone()))
                    }
                    nfcs_performance::TierState::Unavailable { reason } => {
                        ("unavailable", Some(reason.clone()))
                    }
                    _ => ("unknown", None),
                };
                TierHealth {
                    name: status.name.clone(),
                    state: state.to_owned(),
                    reason,
                }
            })
            .collect();
        for tier in &tiers {
            if tier.state == "running" || tier.state == "unavailable" {
                metrics::gauge!(super::metrics::TIER_UP, "tier" => tier.name.clone())
                    .set(if tier.state == "running" { 1.0 } else { 0.0 });
            }
        }

        // Alerts.
        let settings = &self.settings;
        let alerts = &settings.alerts;
        let mut conditions = Vec::new();
        let hit_value = hit_ratio.unwrap_or(1.0);
        conditions.push(Condition {
            name: "hit_ratio_low",
            subject: None,
            severity: Severity::Warning,
            firing: window_reads >= alerts.hit_ratio_min_reads
                && hit_value < alerts.hit_ratio_below,
            value: hit_value,
            threshold: alerts.hit_ratio_below,
            message: format!(
                "cache hit ratio {:.3} over the last {:.0} s ({window_reads} reads) is below {}",
                hit_value,
                window.as_secs_f64(),
                alerts.hit_ratio_below
            ),
        });
        let hz_value = coordination_hz.unwrap_or(settings.target_hz);
        conditions.push(Condition {
            name: "coordination_frequency_low",
            subject: None,
            severity: Severity::Warning,
            firing: coordination_hz.is_some() && hz_value < alerts.coordination_hz_below,
            value: hz_value,
            threshold: alerts.coordination_hz_below,
            message: format!(
                "coordination frequency {hz_value:.2} Hz is below {} Hz",
                alerts.coordination_hz_below
            ),
        });
        let p95_ms = coordination_p95.map_or(0.0, |p95| p95 * 1e3);
        conditions.push(Condition {
            name: "coordination_latency_high",
            subject: None,
            severity: Severity::Warning,
            firing: p95_ms > alerts.coordination_p95_ms_above,
            value: p95_ms,
            threshold: alerts.coordination_p95_ms_above,
            message: format!(
                "coordination latency p95 {p95_ms:.1} ms is above {} ms",
                alerts.coordination_p95_ms_above
            ),
        });
        let resident_mb = resident.map_or(0.0, |bytes| bytes as f64 / 1e6);
        conditions.push(Condition {
            name: "memory_high",
            subject: None,
            severity: Severity::Warning,
            firing: resident_mb > settings.memory_threshold_mb,
            value: resident_mb,
            threshold: settings.memory_threshold_mb,
            message: format!(
                "resident memory {resident_mb:.0} MB is above {} MB",
                settings.memory_threshold_mb
            ),
        });
        let fragmentation = allocator.map_or(0.0, |stats| stats.fragmentation() * 100.0);
        conditions.push(Condition {
            name: "fragmentation_high",
            subject: None,
            severity: Severity::Warning,
            firing: fragmentation > alerts.fragmentation_percent_above,
            value: fragmentation,
            threshold: alerts.fragmentation_percent_above,
            message: format!(
                "allocator fragmentation {fragmentation:.1} % is above {} %",
                alerts.fragmentation_percent_above
            ),
        });
        for tier in &tiers {
            if tier.state == "running" || tier.state == "unavailable" {
                let down = tier.state == "unavailable";
                conditions.push(Condition {
                    name: "tier_down",
                    subject: Some(tier.name.clone()),
                    severity: Severity::Critical,
                    firing: alerts.tier_down && down,
                    value: if down { 0.0 } else { 1.0 },
                    threshold: 1.0,
                    message: match &tier.reason {
                        Some(reason) => format!("{} is unavailable: {reason}", tier.name),
                        None => format!("{} is unavailable", tier.name),
                    },
                });
            }
        }
        state.alerts.apply(conditions, unix);
        for alert in &state.alerts.active {
            metrics::gauge!(super::metrics::ALERTS_ACTIVE, "alert" => alert_label(alert)).set(1.0);
        }
        for alert in &state.alerts.cleared {
            if !state
                .alerts
                .active
                .iter()
                .any(|active| alert_label(active) == alert_label(alert))
            {
                metrics::gauge!(super::metrics::ALERTS_ACTIVE, "alert" => alert_label(alert))
                    .set(0.0);
            }
        }

        // Score.
        let targets = &settings.targets;
        let mut parts = Vec::new();
        if let Some(hz) = coordination_hz {
            parts.push(part("coordination_frequency", hz / targets.coordination_hz));
        }
        if let Some(p95) = coordination_p95 {
            parts.push(part(
                "coordination_latency",
                targets.coordination_p95_ms / (p95 * 1e3).max(1e-9),
            ));
        }
        if let Some(p95) = response_p95 {
            parts.push(part("response_time", targets.load_p95_s / p95.max(1e-9)));
        }
        if let Some(bytes) = resident {
            parts.push(part(
                "memory",
                targets.memory_mb / (bytes as f64 / 1e6).max(1e-9),
            ));
        }
        if let Some(ratio) = hit_ratio.filter(|_| window_reads >= alerts.hit_ratio_min_reads) {
            parts.push(part("hit_ratio", ratio / targets.cache_hit_ratio));
        }
        let serving = tiers
            .iter()
            .filter(|tier| tier.state == "running" || tier.state == "unavailable")
            .count();
        if serving > 0 {
            let running = tiers.iter().filter(|tier| tier.state == "running").count();
            parts.push(part("tiers", running as f64 / serving as f64));
        }
        let overall_score = if parts.is_empty() {
            100.0
        } else {
            100.0 * parts.iter().map(|part| part.score).sum::<f64>() / parts.len() as f64
        };

        // Components.
        let policy = self.system.policy().stats();
        let policy_reads = policy.hits + policy.misses;
        let constitutional = module("constitutional");
        let status_of = |figures: &Option<ModuleFigures>| match figures {
            // A module that has not answered yet (the node just started) is taken as well.
            None => ComponentStatus::Ok,
            Some((_, count, failed, ..)) if *count > 0 && failed == count => {
                ComponentStatus::Failing
            }
            Some((_, _, failed, ..)) if *failed > 0 => ComponentStatus::Degraded,
            Some(_) => ComponentStatus::Ok,
        };
        let mathematical = module("mathematical_core");
        let esc = module("esc");
        let kuramoto = *self.kuramoto.lock();
        let orchestrator_status = match (coordination_hz, coordination_p95) {
            (None, _) => ComponentStatus::NotRunning,
            (Some(hz), p95)
                if hz < targets.coordination_hz
                    || p95.is_some_and(|p95| p95 * 1e3 > targets.coordination_p95_ms) =>
            {
                ComponentStatus::Degraded
            }
            _ => ComponentStatus::Ok,
        };
        let cgl_fps = mathematical
            .as_ref()
            .and(self.system.last_cgl_step())
            .map(|step| 1.0 / step.as_secs_f64().max(1e-9));
        let summary = PerformanceSummary {
            generated_at: unix,
            node: NodeInfo {
                name: settings.node_name.clone(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                uptime_s: self.started.elapsed().as_secs_f64(),
            },
            system_performance: SystemPerformance {
                overall_score,
                coordination_frequency: coordination_hz,
                response_time_p95: response_p95,
                memory_efficiency: allocator.map(|stats| stats.efficiency()),
            },
            component_performance: ComponentPerformance {
                constitutional: ConstitutionalPerformance {
                    status: status_of(&constitutional),
                    hit_ratio: (policy_reads > 0).then(|| policy.hits as f64 / policy_reads as f64),
                    p95_s: constitutional.as_ref().and_then(|figures| figures.4),
                    evaluations: policy.evaluations,
                },
                mathematical: MathematicalPerformance {
                    status: match status_of(&mathematical) {
                        ComponentStatus::Ok if cgl_fps.is_some_and(|fps| fps < targets.cgl_fps) => {
                            ComponentStatus::Degraded
                        }
                        other => other,
                    },
                    cgl_fps,
                    grid_size: settings.grid_size,
                    kuramoto_sync_s: kuramoto.map(|(_, seconds)| seconds),
                    kuramoto_oscillators: kuramoto.map(|(count, _)| count),
                },
                esc_system: EscPerformance {
                    status: match self.system.semantic_unavailable() {
                        Some(_) => ComponentStatus::NotRunning,
                        None => status_of(&esc),
                    },
                    p95_s: esc.as_ref().and_then(|figures| figures.4),
                    lookups: esc.as_ref().map_or(0, |figures| figures.1),
                    reason: self.system.semantic_unavailable().map(str::to_owned),
                },
                orchestrator: OrchestratorPerformance {
                    status: orchestrator_status,
                    frequency_hz: coordination_hz,
                    target_hz: settings.target_hz,
                    latency_p95_s: coordination_p95,
                    missed_ticks: missed,
                    module_failures: failures,
                },
            },
            cache_performance: CachePerformance {
                hit_ratio,
                memory_usage: memory_tier.as_ref().map_or(0, |tier| tier.bytes),
                memory_capacity: memory_tier.as_ref().map_or(0, |tier| tier.capacity_bytes),
                eviction_rate,
                reads: window_reads,
            },
            tiers,
            alerts: state.alerts.list(),
            score: Score { parts },
        };
        state.last = Some(summary.clone());
        LiveSample { point, summary }
    }

    /// The spec's `get_performance_summary()`: the summary of the last sample (a fresh sample
    /// when none was taken yet).
    pub fn get_performance_summary(&self) -> PerformanceSummary {
        if let Some(summary) = self.state.lock().last.clone() {
            return summary;
        }
        self.sample().summary
    }

    /// The history, oldest first.
    pub fn history(&self) -> History {
        History {
            interval_s: self.settings.sample_interval.as_secs_f64(),
            points: self.state.lock().history.iter().copied().collect(),
        }
    }

    /// The active alerts.
    pub fn active_alerts(&self) -> Vec<Alert> {
        self.state.lock().alerts.active.clone()
    }
}

/// The `alert` label of an alert: its name, and its subject after a colon.
fn alert_label(alert: &Alert) -> String {
    match &alert.subject {
        Some(subject) => format!("{}:{subject}", alert.name),
        None => alert.name.clone(),
    }
}

fn part(name: &str, ratio: f64) -> ScorePart {
    ScorePart {
        name: name.to_owned(),
        score: if ratio.is_finite() {
            ratio.clamp(0.0, 1.0)
        } else {
            0.0
        },
    }
}

/// The `q` quantile of `values` (nearest rank), `None` when empty.
fn quantile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let mut values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&mut values, 0.95), Some(95.0));
        assert_eq!(quantile(&mut values, 0.5), Some(50.0));
        assert_eq!(quantile(&mut [], 0.5), None);
    }

    #[test]
    fn an_alert_is_raised_updated_and_cleared() {
        let mut book = AlertBook::default();
        let condition = |firing: bool, value: f64| Condition {
            name: "hit_ratio_low",
            subject: None,
            severity: Severity::Warning,
            firing,
            value,
            threshold: 0.8,
            message: format!("{value}"),
        };
        book.apply(vec![condition(true, 0.5)], 10.0);
        book.apply(vec![condition(true, 0.6)], 11.0);
        assert_eq!(book.active.len(), 1);
        assert_eq!(book.active[0].started_at, 10.0);
        assert_eq!(book.active[0].value, 0.6);
        book.apply(vec![condition(false, 0.9)], 12.0);
        assert!(book.active.is_empty());
        let listed = book.list();
        assert_eq!(listed.len(), 1);
        assert!(!listed[0].active);
        assert_eq!(listed[0].cleared_at, Some(12.0));
        assert_eq!(listed[0].started_at, 10.0);
        assert_eq!(listed[0].value, 0.9);
    }

    #[test]
    fn the_score_part_is_clamped() {
        assert_eq!(part("x", 2.0).score, 1.0);
        assert_eq!(part("x", 0.5).score, 0.5);
        assert_eq!(part("x", f64::NAN).score, 0.0);
    }

    #[test]
    fn latency_window_keeps_the_last_seconds() {
        let origin = Instant::now();
        let mut window = LatencyWindow::new(origin);
        for millis in 1..=100 {
            window.record(origin, Duration::from_millis(millis), 60);
        }
        let (p95, count) = window.p95(origin, Duration::from_secs(60));
        assert_eq!(count, 100);
        let p95 = p95.expect("requests were recorded");
        assert!((p95 - 0.095).abs() < 0.002, "{p95}");
        // 120 s later nothing is left in the window.
        let later = origin + Duration::from_secs(120);
        assert_eq!(window.p95(later, Duration::from_secs(60)), (None, 0));
    }
}
