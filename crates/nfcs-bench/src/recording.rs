//! The recording API of continuous monitoring: what the NFCS records as it runs, under the
//! spec's Prometheus metric names, through the [`metrics`] facade (whichever recorder the
//! process installed: the served node's Prometheus exporter, a test's debugging recorder).
//!
//! # The metrics
//!
//! | name | type | labels | recorded by |
//! |---|---|---|---|
//! | [`CGL_COMPUTATION_TIME`] | histogram ([`CGL_BUCKETS`]) | | [`record_computation`](PerformanceRecorder::record_computation) |
//! | [`CGL_PERFORMANCE_FPS`] | gauge | `grid_size` | [`record_computation`](PerformanceRecorder::record_computation) |
//! | [`KURAMOTO_SYNC_TIME`] | histogram | | [`record_kuramoto`](PerformanceRecorder::record_kuramoto) |
//! | [`KURAMOTO_OSCILLATOR_PERFORMANCE`] | gauge | `oscillator_count` | [`record_kuramoto`](PerformanceRecorder::record_kuramoto) |
//! | [`COORDINATION_FREQUENCY`] | gauge | | [`record_coordination`](PerformanceRecorder::record_coordination) |
//! | [`COORDINATION_LATENCY`] | histogram | | [`record_coordination`](PerformanceRecorder::record_coordination) |
//! | [`MODULE_RESPONSE_TIME`] | histogram | `module_name` | [`record_module_response`](PerformanceRecorder::record_module_response), [`record_esc_performance`](PerformanceRecorder::record_esc_performance) (`esc`), [`record_constitutional_performance`](PerformanceRecorder::record_constitutional_performance) (`constitutional`) |
//! | [`MEMORY_EFFICIENCY`] | gauge | | [`record_memory`](PerformanceRecorder::record_memory) |
//! | [`MEMORY_FRAGMENTATION`] | gauge | | [`record_memory`](PerformanceRecorder::record_memory) |
//! | [`GC_COLLECTION_TIME`] | histogram | | [`record_gc`](PerformanceRecorder::record_gc) |
//!
//! Four more, not in the spec, carry what the spec's functions take and its ten metrics have
//! no place for: [`ESC_TOKENS_PER_SECOND`], [`ESC_CONTEXT_SIZE`],
//! [`CONSTITUTIONAL_EVALUATIONS`] and [`CONSTITUTIONAL_CACHE_HITS`] (their ratio is the
//! policy cache's hit ratio among sampled evaluations), [`CONSTITUTIONAL_COMPLEXITY`], and
//! [`GC_COLLECTIONS`] (reclamations by `kind`, which the spec's unlabelled
//! [`GC_COLLECTION_TIME`] has no label for).
//!
//! # Sampling
//!
//! The per-operation records (computation, ESC, constitutional, Kuramoto, coordination,
//! module response) keep `sample_rate` of their calls, deterministically: each function has
//! its own counter (and [`record_module_response`](PerformanceRecorder::record_module_response)
//! one per module name, so modules called in a fixed order are each sampled), and call `n` (from 0) is kept when `floor((n + 1) * rate) >
//! floor(n * rate)`, so at 0.1 exactly one call in every ten is, and any run of `k`
//! consecutive calls keeps `k * rate` rounded down or up. The rate is held as a 32-bit
//! binary fraction (an error below 2^-32). A call that is not kept costs one atomic
//! increment; at rate 0 not even that. The state records ([`record_memory`], [`record_gc`],
//! [`record_coordination_frequency`]) are rare and always kept.
//!
//! [`record_memory`]: PerformanceRecorder::record_memory
//! [`record_gc`]: PerformanceRecorder::record_gc
//! [`record_coordination_frequency`]: PerformanceRecorder::record_coordination_frequency
//!
//! # Handles
//!
//! Metric handles are resolved against the recorder in effect when the
//! [`PerformanceRecorder`] is built (build it after installing the recorder, or inside
//! [`metrics::with_local_recorder`]); labelled handles (per grid size, oscillator count,
//! module name) are resolved on first use and kept in a bounded table of
//! [`LABEL_SLOTS`] per metric, read without locks. Label values beyond it are still
//! recorded, resolving their handle on each call (slower, still correct).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Unit};

use crate::alloc::AllocatorStats;

/// `nfcs_cgl_computation_time_seconds` (histogram): seconds per CGL operation.
pub const CGL_COMPUTATION_TIME: &str = "nfcs_cgl_computation_time_seconds";
/// `nfcs_cgl_performance_fps{grid_size}` (gauge): CGL steps per second, last sampled.
pub const CGL_PERFORMANCE_FPS: &str = "nfcs_cgl_performance_fps";
/// `nfcs_kuramoto_sync_time_seconds` (histogram): compute seconds to synchrony.
pub const KURAMOTO_SYNC_TIME: &str = "nfcs_kuramoto_sync_time_seconds";
/// `nfcs_kuramoto_oscillator_performance{oscillator_count}` (gauge): runs to synchrony per
/// second of compute (`1 / sync time`), last sampled.
pub const KURAMOTO_OSCILLATOR_PERFORMANCE: &str = "nfcs_kuramoto_oscillator_performance";
/// `nfcs_coordination_frequency_hz` (gauge): the coordination loop's achieved frequency.
pub const COORDINATION_FREQUENCY: &str = "nfcs_coordination_frequency_hz";
/// `nfcs_coordination_latency_seconds` (histogram): seconds per coordination cycle.
pub const COORDINATION_LATENCY: &str = "nfcs_coordination_latency_seconds";
/// `nfcs_module_response_time_seconds{module_name}` (histogram): seconds per module call.
pub const MODULE_RESPONSE_TIME: &str = "nfcs_module_response_time_seconds";
/// `nfcs_memory_efficiency_ratio` (gauge): allocated / resident bytes.
pub const MEMORY_EFFICIENCY: &str = "nfcs_memory_efficiency_ratio";
/// `nfcs_memory_fragmentation_percent` (gauge): 100 x (1 - allocated / active).
pub const MEMORY_FRAGMENTATION: &str = "nfcs_memory_fragmentation_percent";
/// `nfcs_gc_collection_time_seconds` (histogram): seconds per reclamation of what plays the
/// part of garbage collection (every [`GcKind`]; [`GC_COLLECTIONS`] counts them by kind).
pub const GC_COLLECTION_TIME: &str = "nfcs_gc_collection_time_seconds";

/// The spec's ten metric names.
pub const SPEC_METRICS: [&str; 10] = [
    CGL_COMPUTATION_TIME,
    CGL_PERFORMANCE_FPS,
    KURAMOTO_SYNC_TIME,
    KURAMOTO_OSCILLATOR_PERFORMANCE,
    COORDINATION_FREQUENCY,
    COORDINATION_LATENCY,
    MODULE_RESPONSE_TIME,
    MEMORY_EFFICIENCY,
    MEMORY_FRAGMENTATION,
    GC_COLLECTION_TIME,
];

/// `nfcs_esc_tokens_per_second` (gauge, not in the spec): tokens per second of the last
/// sampled ESC operation.
pub const ESC_TOKENS_PER_SECOND: &str = "nfcs_esc_tokens_per_second";
/// `nfcs_esc_context_size` (gauge, not in the spec): the context size of the last sampled
/// ESC operation.
pub const ESC_CONTEXT_SIZE: &str = "nfcs_esc_context_size";
/// `nfcs_constitutional_evaluations_total` (counter, not in the spec): sampled
/// constitutional evaluations.
pub const CONSTITUTIONAL_EVALUATIONS: &str = "nfcs_constitutional_evaluations_total";
/// `nfcs_constitutional_cache_hits_total` (counter, not in the spec): sampled constitutional
/// evaluations answered by the policy cache.
pub const CONSTITUTIONAL_CACHE_HITS: &str = "nfcs_constitutional_cache_hits_total";
/// `nfcs_constitutional_complexity_score` (gauge, not in the spec): the complexity score of
/// the last sampled constitutional evaluation.
pub const CONSTITUTIONAL_COMPLEXITY: &str = "nfcs_constitutional_complexity_score";

/// `nfcs_gc_collections_total{kind}` (counter, not in the spec): reclamations by [`GcKind`].
pub const GC_COLLECTIONS: &str = "nfcs_gc_collections_total";

/// The metrics this module adds to the spec's.
pub const EXTRA_METRICS: [&str; 6] = [
    ESC_TOKENS_PER_SECOND,
    ESC_CONTEXT_SIZE,
    CONSTITUTIONAL_EVALUATIONS,
    CONSTITUTIONAL_CACHE_HITS,
    CONSTITUTIONAL_COMPLEXITY,
    GC_COLLECTIONS,
];

/// The buckets of [`CGL_COMPUTATION_TIME`], in seconds (the spec's): give them to the
/// exporter (`PrometheusBuilder::set_buckets_for_metric(Matcher::Full(..), &CGL_BUCKETS)`).
pub const CGL_BUCKETS: [f64; 6] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5];

/// The label of [`CGL_PERFORMANCE_FPS`].
pub const LABEL_GRID_SIZE: &str = "grid_size";
/// The label of [`KURAMOTO_OSCILLATOR_PERFORMANCE`].
pub const LABEL_OSCILLATOR_COUNT: &str = "oscillator_count";
/// The label of [`MODULE_RESPONSE_TIME`].
pub const LABEL_MODULE_NAME: &str = "module_name";
/// The label of [`GC_COLLECTIONS`].
pub const LABEL_KIND: &str = "kind";
/// `module_name` of the ESC's responses.
pub const MODULE_ESC: &str = "esc";
/// `module_name` of the constitutional module's responses.
pub const MODULE_CONSTITUTIONAL: &str = "constitutional";

/// Labelled handles kept per metric; further label values are recorded unkept.
pub const LABEL_SLOTS: usize = 16;

/// What plays the part of garbage collection in Rust, which has none: memory is freed when
/// its owner goes, and what is left to reclaim later is what a cache holds past its expiry
/// and what the allocator holds after a free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GcKind {
    /// A cache reclaiming its expired entries ([`nfcs_performance::cache_core::MemoryCache::purge_expired`]).
    ExpiryReclamation,
    /// The allocator returning freed pages to the OS ([`crate::alloc::timed_purge`]).
    AllocatorPurge,
}

impl GcKind {
    /// Both kinds.
    pub const ALL: [GcKind; 2] = [GcKind::ExpiryReclamation, GcKind::AllocatorPurge];

    /// The `kind` label: `expiry_reclamation`, `allocator_purge`.
    pub const fn as_str(self) -> &'static str {
        match self {
            GcKind::ExpiryReclamation => "expiry_reclamation",
            GcKind::AllocatorPurge => "allocator_purge",
        }
    }
}

impl std::fmt::Display for GcKind {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A sample rate that is not a number from 0 to 1.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("the sample rate must be a number from 0 to 1, not {0}")]
pub struct InvalidSampleRate(pub f64);

/// Describes every metric (help text and unit) to the recorder in effect: call once after
/// installing it.
pub fn describe_metrics() {
    metrics::describe_histogram!(
        CGL_COMPUTATION_TIME,
        Unit::Seconds,
        "Seconds per CGL solver operation (one step unless the operation says otherwise)."
    );
    metrics::describe_gauge!(
        CGL_PERFORMANCE_FPS,
        Unit::CountPerSecond,
        "CGL steps per second at a grid size (1 / the last sampled step time)."
    );
    metrics::describe_histogram!(
        KURAMOTO_SYNC_TIME,
        Unit::Seconds,
        "Compute seconds of a Kuramoto network to reach synchrony."
    );
    metrics::describe_gauge!(
        KURAMOTO_OSCILLATOR_PERFORMANCE,
        Unit::CountPerSecond,
        "Kuramoto runs to synchrony per second of compute at an oscillator count (1 / the last sampled sync time)."
    );
    metrics::describe_gauge!(
        COORDINATION_FREQUENCY,
        Unit::CountPerSecond,
        "Achieved frequency of the NFCS coordination loop, in Hz."
    );
    metrics::describe_histogram!(
        COORDINATION_LATENCY,
        Unit::Seconds,
        "Seconds per NFCS coordination cycle."
    );
    metrics::describe_histogram!(
        MODULE_RESPONSE_TIME,
        Unit::Seconds,
        "Seconds per call of an NFCS module (esc, constitutional, ...)."
    );
    metrics::describe_gauge!(
        MEMORY_EFFICIENCY,
        "Allocator bytes allocated over bytes resident (jemalloc): the share of resident heap memory holding live data."
    );
    metrics::describe_gauge!(
        MEMORY_FRAGMENTATION,
        Unit::Percent,
        "100 x (1 - allocated / active) of the allocator (jemalloc): active pages not holding live data."
    );
    metrics::describe_histogram!(
        GC_COLLECTION_TIME,
        Unit::Seconds,
        "Seconds per reclamation: Rust has no garbage collector; a reclamation is a cache reclaiming expired entries or the allocator returning freed pages to the OS (nfcs_gc_collections_total counts them by kind)."
    );
    metrics::describe_counter!(
        GC_COLLECTIONS,
        Unit::Count,
        "Reclamations by kind: expiry_reclamation (a cache reclaiming expired entries), allocator_purge (the allocator returning freed pages to the OS)."
    );
    metrics::describe_gauge!(
        ESC_TOKENS_PER_SECOND,
        Unit::CountPerSecond,
        "Tokens per second of the last sampled ESC operation."
    );
    metrics::describe_gauge!(
        ESC_CONTEXT_SIZE,
        Unit::Count,
        "Context size of the last sampled ESC operation."
    );
    metrics::describe_counter!(
        CONSTITUTIONAL_EVALUATIONS,
        Unit::Count,
        "Sampled constitutional evaluations."
    );
    metrics::describe_counter!(
        CONSTITUTIONAL_CACHE_HITS,
        Unit::Count,
        "Sampled constitutional evaluations answered by the policy cache."
    );
    metrics::describe_gauge!(
        CONSTITUTIONAL_COMPLEXITY,
        "Complexity score of the last sampled constitutional evaluation."
    );
}

/// The deterministic sampler: `rate` as a 32-bit binary fraction and a call counter, on a
/// cache line of its own.
#[repr(align(64))]
#[derive(Debug)]
struct Sampler {
    calls: AtomicU64,
}

/// `rate` as a fraction of 2^32.
const ONE: u64 = 1 << 32;

impl Sampler {
    fn new() -> Sampler {
        Sampler {
            calls: AtomicU64::new(0),
        }
    }

    /// Whether this call is kept: call `n` is when `floor((n + 1) r) > floor(n r)`.
    #[inline]
    fn keep(&self, scaled: u64) -> bool {
        if scaled == 0 {
            return false;
        }
        if scaled >= ONE {
            return true;
        }
        let n = u128::from(self.calls.fetch_add(1, Ordering::Relaxed));
        let scaled = u128::from(scaled);
        ((n + 1) * scaled) >> 32 != (n * scaled) >> 32
    }
}

/// A bounded, lock-free table of labelled handles.
struct LabelCache<K, H> {
    slots: [OnceLock<(K, H)>; LABEL_SLOTS],
}

impl<K, H> LabelCache<K, H> {
    fn new() -> LabelCache<K, H> {
        LabelCache {
            slots: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Calls `apply` with the handle of the key `matches` selects, resolving it with `make`
    /// (and keeping it, while there is room) on first use; `apply`'s flag says whether the
    /// handle is a kept one (false for a key beyond the table, resolved for this call alone).
    #[inline]
    fn with(
        &self,
        matches: impl Fn(&K) -> bool,
        make: impl Fn() -> (K, H),
        apply: impl FnOnce(&H, bool),
    ) {
        for slot in &self.slots {
            let (key, handle) = match slot.get() {
                Some(entry) => entry,
                None => {
                    // A free slot: ours, unless another thread fills it first (then ours is
                    // dropped and the scan goes on).
                    let _ = slot.set(make());
                    match slot.get() {
                        Some(entry) => entry,
                        None => continue,
                    }
                }
            };
            if matches(key) {
                return apply(handle, true);
            }
        }
        apply(&make().1, false);
    }
}

impl<K, H> std::fmt::Debug for LabelCache<K, H> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let used = self
            .slots
            .iter()
            .filter(|slot| slot.get().is_some())
            .count();
        write!(formatter, "LabelCache({used}/{LABEL_SLOTS})")
    }
}

/// Records the NFCS's performance under the spec's metric names (see the [module](self)
/// documentation for the metrics, the sampling and the handles).
///
/// ```
/// use std::time::Duration;
/// use metrics_util::debugging::DebuggingRecorder;
/// use nfcs_bench::recording::{PerformanceRecorder, CGL_COMPUTATION_TIME};
///
/// let debugging = DebuggingRecorder::new();
/// let snapshotter = debugging.snapshotter();
/// metrics::with_local_recorder(&debugging, || {
///     let recorder = PerformanceRecorder::new(1.0)?;
///     recorder.record_computation("cgl_step", Duration::from_millis(4), 128);
///     Ok::<(), nfcs_bench::recording::InvalidSampleRate>(())
/// })?;
/// let names: Vec<String> = snapshotter
///     .snapshot()
///     .into_vec()
///     .into_iter()
///     .map(|(key, ..)| key.key().name().to_owned())
///     .collect();
/// assert!(names.iter().any(|name| name == CGL_COMPUTATION_TIME));
/// # Ok::<(), nfcs_bench::recording::InvalidSampleRate>(())
/// ```
#[derive(Debug)]
pub struct PerformanceRecorder {
    /// The sample rate as a fraction of 2^32.
    scaled: u64,
    rate: f64,
    computation: Sampler,
    esc: Sampler,
    constitutional: Sampler,
    kuramoto: Sampler,
    coordination: Sampler,
    module: Sampler,
    cgl_time: Histogram,
    cgl_fps: LabelCache<usize, Gauge>,
    kuramoto_time: Histogram,
    kuramoto_performance: LabelCache<usize, Gauge>,
    coordination_frequency: Gauge,
    coordination_latency: Histogram,
    /// Per module name: its histogram and its own sampler (one sampler shared by every
    /// module would keep the same module's calls when the modules are called in a fixed
    /// order, as the orchestrator does).
    module_response: LabelCache<Box<str>, (Histogram, Sampler)>,
    esc_response: Histogram,
    esc_tokens: Gauge,
    esc_context: Gauge,
    constitutional_response: Histogram,
    constitutional_evaluations: Counter,
    constitutional_hits: Counter,
    constitutional_complexity: Gauge,
    memory_efficiency: Gauge,
    memory_fragmentation: Gauge,
    gc_time: Histogram,
    gc_expiry: Counter,
    gc_purge: Counter,
}

impl PerformanceRecorder {
    /// A recorder keeping `sample_rate` (0 to 1) of the per-operation calls, its handles
    /// resolved against the recorder in effect now.
    ///
    /// # Errors
    /// [`InvalidSampleRate`] for NaN or a rate outside 0 to 1.
    pub fn new(sample_rate: f64) -> Result<PerformanceRecorder, InvalidSampleRate> {
        if !(0.0..=1.0).contains(&sample_rate) {
            return Err(InvalidSampleRate(sample_rate));
        }
        // Exact for 0 and 1; otherwise within 2^-33 of the rate.
        let scaled = (sample_rate * ONE as f64).round() as u64;
        Ok(PerformanceRecorder {
            scaled,
            rate: sample_rate,
            computation: Sampler::new(),
            esc: Sampler::new(),
            constitutional: Sampler::new(),
            kuramoto: Sampler::new(),
            coordination: Sampler::new(),
            module: Sampler::new(),
            cgl_time: metrics::histogram!(CGL_COMPUTATION_TIME),
            cgl_fps: LabelCache::new(),
            kuramoto_time: metrics::histogram!(KURAMOTO_SYNC_TIME),
            kuramoto_performance: LabelCache::new(),
            coordination_frequency: metrics::gauge!(COORDINATION_FREQUENCY),
            coordination_latency: metrics::histogram!(COORDINATION_LATENCY),
            module_response: LabelCache::new(),
            esc_response: metrics::histogram!(MODULE_RESPONSE_TIME, LABEL_MODULE_NAME => MODULE_ESC),
            esc_tokens: metrics::gauge!(ESC_TOKENS_PER_SECOND),
            esc_context: metrics::gauge!(ESC_CONTEXT_SIZE),
            constitutional_response: metrics::histogram!(
                MODULE_RESPONSE_TIME,
                LABEL_MODULE_NAME => MODULE_CONSTITUTIONAL
            ),
            constitutional_evaluations: metrics::counter!(CONSTITUTIONAL_EVALUATIONS),
            constitutional_hits: metrics::counter!(CONSTITUTIONAL_CACHE_HITS),
            constitutional_complexity: metrics::gauge!(CONSTITUTIONAL_COMPLEXITY),
            memory_efficiency: metrics::gauge!(MEMORY_EFFICIENCY),
            memory_fragmentation: metrics::gauge!(MEMORY_FRAGMENTATION),
            gc_time: metrics::histogram!(GC_COLLECTION_TIME),
            gc_expiry: metrics::counter!(
                GC_COLLECTIONS,
                LABEL_KIND => GcKind::ExpiryReclamation.as_str()
            ),
            gc_purge: metrics::counter!(
                GC_COLLECTIONS,
                LABEL_KIND => GcKind::AllocatorPurge.as_str()
            ),
        })
    }

    /// The sample rate.
    pub fn sample_rate(&self) -> f64 {
        self.rate
    }

    /// The spec's `record_computation`: one CGL operation of `duration` on a `grid_size`
    /// grid. Observes [`CGL_COMPUTATION_TIME`] and sets [`CGL_PERFORMANCE_FPS`]`{grid_size}`
    /// to `1 / duration` (steps per second when the operation is one step). `operation`
    /// (`"cgl_step"`, ...) names the call site; the spec's metrics carry no label for it.
    /// Sampled.
    #[inline]
    pub fn record_computation(&self, operation: &str, duration: Duration, grid_size: usize) {
        let _ = operation;
        if !self.computation.keep(self.scaled) {
            return;
        }
        let seconds = duration.as_secs_f64();
        self.cgl_time.record(seconds);
        let fps = per_second(seconds);
        self.cgl_fps.with(
            |size| *size == grid_size,
            || {
                (
                    grid_size,
                    metrics::gauge!(CGL_PERFORMANCE_FPS, LABEL_GRID_SIZE => grid_size.to_string()),
                )
            },
            |gauge, _| gauge.set(fps),
        );
    }

    /// The spec's `record_esc_performance`: an ESC operation on `token_count` tokens that
    /// took `processing_time` with a context of `context_size`. Observes
    /// [`MODULE_RESPONSE_TIME`]`{module_name="esc"}`, sets [`ESC_TOKENS_PER_SECOND`] and
    /// [`ESC_CONTEXT_SIZE`]. Sampled.
    #[inline]
    pub fn record_esc_performance(
        &self,
        token_count: u64,
        processing_time: Duration,
        context_size: u64,
    ) {
        if !self.esc.keep(self.scaled) {
            return;
        }
        let seconds = processing_time.as_secs_f64();
        self.esc_response.record(seconds);
        self.esc_tokens
            .set(token_count as f64 * per_second(seconds));
        self.esc_context.set(context_size as f64);
    }

    /// The spec's `record_constitutional_performance`: a constitutional evaluation that took
    /// `evaluation_time`, answered by the policy cache or not, of `complexity_score`.
    /// Observes [`MODULE_RESPONSE_TIME`]`{module_name="constitutional"}`, counts
    /// [`CONSTITUTIONAL_EVALUATIONS`] and [`CONSTITUTIONAL_CACHE_HITS`], sets
    /// [`CONSTITUTIONAL_COMPLEXITY`]. Sampled.
    #[inline]
    pub fn record_constitutional_performance(
        &self,
        evaluation_time: Duration,
        cache_hit: bool,
        complexity_score: f64,
    ) {
        if !self.constitutional.keep(self.scaled) {
            return;
        }
        self.constitutional_response
            .record(evaluation_time.as_secs_f64());
        self.constitutional_evaluations.increment(1);
        if cache_hit {
            self.constitutional_hits.increment(1);
        }
        self.constitutional_complexity.set(complexity_score);
    }

    /// A Kuramoto network of `oscillator_count` that reached synchrony in `sync_time` of
    /// compute: observes [`KURAMOTO_SYNC_TIME`] and sets
    /// [`KURAMOTO_OSCILLATOR_PERFORMANCE`]`{oscillator_count}` to `1 / sync_time`. Sampled.
    #[inline]
    pub fn record_kuramoto(&self, oscillator_count: usize, sync_time: Duration) {
        if !self.kuramoto.keep(self.scaled) {
            return;
        }
        let seconds = sync_time.as_secs_f64();
        self.kuramoto_time.record(seconds);
        let performance = per_second(seconds);
        self.kuramoto_performance.with(
            |count| *count == oscillator_count,
            || {
                (
                    oscillator_count,
                    metrics::gauge!(
                        KURAMOTO_OSCILLATOR_PERFORMANCE,
                        LABEL_OSCILLATOR_COUNT => oscillator_count.to_string()
                    ),
                )
            },
            |gauge, _| gauge.set(performance),
        );
    }

    /// A coordination cycle of `latency` with the loop at `frequency_hz`: observes
    /// [`COORDINATION_LATENCY`] and sets [`COORDINATION_FREQUENCY`]. Sampled.
    #[inline]
    pub fn record_coordination(&self, latency: Duration, frequency_hz: f64) {
        if !self.coordination.keep(self.scaled) {
            return;
        }
        self.coordination_latency.record(latency.as_secs_f64());
        self.coordination_frequency.set(frequency_hz);
    }

    /// Sets [`COORDINATION_FREQUENCY`] (not sampled: a state, set once a period).
    pub fn record_coordination_frequency(&self, frequency_hz: f64) {
        self.coordination_frequency.set(frequency_hz);
    }

    /// A call of module `module_name` that took `duration`: observes
    /// [`MODULE_RESPONSE_TIME`]`{module_name}`. Sampled.
    #[inline]
    pub fn record_module_response(&self, module_name: &str, duration: Duration) {
        if self.scaled == 0 {
            return;
        }
        let seconds = duration.as_secs_f64();
        match module_name {
            MODULE_ESC | MODULE_CONSTITUTIONAL => {
                if !self.module.keep(self.scaled) {
                    return;
                }
                if module_name == MODULE_ESC {
                    self.esc_response.record(seconds);
                } else {
                    self.constitutional_response.record(seconds);
                }
            }
            _ => self.module_response.with(
                |name| &**name == module_name,
                || {
                    (
                        module_name.into(),
                        (
                            metrics::histogram!(
                                MODULE_RESPONSE_TIME,
                                LABEL_MODULE_NAME => module_name.to_owned()
                            ),
                            Sampler::new(),
                        ),
                    )
                },
                |(histogram, sampler), kept| {
                    // A name beyond the table has no counter of its own: the shared one.
                    let sampler = if kept { sampler } else { &self.module };
                    if sampler.keep(self.scaled) {
                        histogram.record(seconds);
                    }
                },
            ),
        }
    }

    /// The allocator's state: sets [`MEMORY_EFFICIENCY`] and [`MEMORY_FRAGMENTATION`] (not
    /// sampled; the memory profiler calls it at each sample).
    pub fn record_memory(&self, stats: &AllocatorStats) {
        self.memory_efficiency.set(stats.efficiency());
        self.memory_fragmentation.set(stats.fragmentation() * 100.0);
    }

    /// A reclamation of `kind` that took `duration`: observes [`GC_COLLECTION_TIME`] and
    /// counts [`GC_COLLECTIONS`]`{kind}` (not sampled).
    pub fn record_gc(&self, kind: GcKind, duration: Duration) {
        self.gc_time.record(duration.as_secs_f64());
        match kind {
            GcKind::ExpiryReclamation => self.gc_expiry.increment(1),
            GcKind::AllocatorPurge => self.gc_purge.increment(1),
        }
    }
}

/// `1 / seconds`, 0 for a zero duration (a gauge cannot hold infinity usefully).
#[inline]
fn per_second(seconds: f64) -> f64 {
    if seconds > 0.0 { 1.0 / seconds } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(rate: f64, calls: u64) -> u64 {
        let recorder = PerformanceRecorder::new(rate).expect("valid rate");
        let sampler = Sampler::new();
        (0..calls).filter(|_| sampler.keep(recorder.scaled)).count() as u64
    }

    #[test]
    fn the_sampler_keeps_the_rate_exactly() {
        assert_eq!(kept(0.1, 100_000), 10_000);
        assert_eq!(kept(0.0, 1000), 0);
        assert_eq!(kept(1.0, 1000), 1000);
        assert_eq!(kept(0.5, 1001), 500);
        assert_eq!(kept(0.25, 8), 2);
        // One in ten, evenly: calls 9, 19, 29, ...
        let recorder = PerformanceRecorder::new(0.1).expect("valid rate");
        let sampler = Sampler::new();
        let picks: Vec<u64> = (0..40).filter(|_| sampler.keep(recorder.scaled)).collect();
        assert_eq!(picks, [9, 19, 29, 39]);
    }

    #[test]
    fn invalid_rates_are_refused() {
        for rate in [f64::NAN, -0.01, 1.01, f64::INFINITY] {
            let error = PerformanceRecorder::new(rate).expect_err("refused");
            assert!(error.to_string().contains("from 0 to 1"));
        }
    }

    #[test]
    fn gc_kinds_are_labelled() {
        assert_eq!(GcKind::ExpiryReclamation.to_string(), "expiry_reclamation");
        assert_eq!(GcKind::AllocatorPurge.as_str(), "allocator_purge");
    }
}
