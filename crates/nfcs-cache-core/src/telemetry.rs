//! Metrics a service can scrape: every tier's counters, gauges and operation latencies,
//! through the [`metrics`] facade, under `nfcs_cache_*` names with `cache` and `tier` labels.
//!
//! The model is foyer's `metrics/model.rs`: a tier resolves its metric handles once, when it is
//! built ([`TierMetrics::new`]), and updates them as things happen, so a scrape reads current
//! values at any time without anyone calling `stats()` first. No crate of ours installs a
//! recorder; the application does (nfcs-bench serves `/metrics`), and **it must do so before
//! it builds its caches**: handles resolved without a recorder do nothing for the life of the
//! cache (that is what makes them free when metrics are off).
//!
//! # Names
//!
//! Every series carries `cache` (the instance: a manager's name, "default" for a tier built on
//! its own) and `tier` ("memory", "disk", "redis", "policy", ...):
//!
//! | name | type | meaning |
//! |---|---|---|
//! | `nfcs_cache_hits_total` | counter | reads that found a live entry |
//! | `nfcs_cache_misses_total` | counter | reads that found nothing (or an expired entry) |
//! | `nfcs_cache_inserts_total` | counter | successful writes |
//! | `nfcs_cache_evictions_total` | counter | entries removed to stay within capacity |
//! | `nfcs_cache_expirations_total` | counter | entries removed because their TTL passed |
//! | `nfcs_cache_errors_total` | counter | operations that failed inside the tier |
//! | `nfcs_cache_entries` | gauge | entries held |
//! | `nfcs_cache_bytes` | gauge | bytes held, as the tier accounts them |
//! | `nfcs_cache_capacity_bytes` | gauge | the byte budget |
//! | `nfcs_cache_operation_seconds` | histogram | one tier operation (label `operation`) |
//!
//! Latency is *sampled* where an operation is too fast to time every time: the memory tier
//! times one read and one write in [`MEMORY_SAMPLE_EVERY`] of each shard, decided from counters
//! it keeps anyway (a clock read costs about as much as a hit); a manager times one request in
//! as many per thread. A sampled histogram's count is the number of samples, not of operations; rates
//! come from the counters.
//!
//! The memory tier also *batches* what it publishes: a shard hands its counts to the shared
//! counters every 64 reads and every 16 writes (a shared counter updated on every hit costs a
//! contended cache line per hit), so a scrape may lag the exact figures by that much per shard;
//! `MemoryCache::flush_metrics` publishes the rest. Slower tiers publish every event.
//!
//! # Instance names
//!
//! Two caches that report under the same `cache` and `tier` labels would add into one series.
//! [`TierMetrics::new`] keeps a process-wide table of the label pairs in use: a pair that is
//! already taken gets `-2`, `-3`, ... appended to its `cache` label, and a warning is logged,
//! so no two live caches ever share a series. A pair is free again when its cache is dropped.

use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, Unit};

/// The `cache` label of a cache built without a name.
pub const DEFAULT_INSTANCE: &str = "default";

/// Counter: reads that found a live entry.
pub const HITS: &str = "nfcs_cache_hits_total";
/// Counter: reads that found nothing, or only an expired entry.
pub const MISSES: &str = "nfcs_cache_misses_total";
/// Counter: successful writes (new keys and overwrites).
pub const INSERTS: &str = "nfcs_cache_inserts_total";
/// Counter: entries removed to stay within capacity.
pub const EVICTIONS: &str = "nfcs_cache_evictions_total";
/// Counter: entries removed because their TTL passed.
pub const EXPIRATIONS: &str = "nfcs_cache_expirations_total";
/// Counter: operations that failed inside the tier (I/O, network, corruption).
pub const ERRORS: &str = "nfcs_cache_errors_total";
/// Gauge: entries held now.
pub const ENTRIES: &str = "nfcs_cache_entries";
/// Gauge: bytes held now, as the tier accounts them.
pub const BYTES: &str = "nfcs_cache_bytes";
/// Gauge: the tier's byte budget.
pub const CAPACITY_BYTES: &str = "nfcs_cache_capacity_bytes";
/// Histogram: the duration of one tier operation, labelled `operation`.
pub const OPERATION_SECONDS: &str = "nfcs_cache_operation_seconds";

/// The memory tier times one read and one write in this many (per shard); a manager, one
/// request in this many (per thread).
pub const MEMORY_SAMPLE_EVERY: u32 = 128;

/// A tier operation, the `operation` label of [`OPERATION_SECONDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// A read.
    Get,
    /// A write.
    Set,
    /// A removal of one key.
    Delete,
    /// A removal by pattern.
    Invalidate,
    /// A removal of everything.
    Clear,
}

impl Operation {
    const ALL: [Operation; 5] = [
        Operation::Get,
        Operation::Set,
        Operation::Delete,
        Operation::Invalidate,
        Operation::Clear,
    ];

    /// The label value: "get", "set", "delete", "invalidate", "clear".
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Get => "get",
            Operation::Set => "set",
            Operation::Delete => "delete",
            Operation::Invalidate => "invalidate",
            Operation::Clear => "clear",
        }
    }

    const fn index(self) -> usize {
        match self {
            Operation::Get => 0,
            Operation::Set => 1,
            Operation::Delete => 2,
            Operation::Invalidate => 3,
            Operation::Clear => 4,
        }
    }
}

/// The labels that name a cache instance and one of its tiers in metrics, logs and stats.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InstanceLabels {
    /// The `cache` label: which cache (a manager's name).
    pub cache: String,
    /// The `tier` label: which tier of it.
    pub tier: String,
}

impl InstanceLabels {
    /// `cache` and `tier` labels.
    pub fn new(cache: impl Into<String>, tier: impl Into<String>) -> InstanceLabels {
        InstanceLabels {
            cache: cache.into(),
            tier: tier.into(),
        }
    }

    /// The labels as `metrics` takes them.
    pub fn pairs(&self) -> [(&'static str, String); 2] {
        [("cache", self.cache.clone()), ("tier", self.tier.clone())]
    }
}

impl fmt::Display for InstanceLabels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cache=\"{}\", tier=\"{}\"", self.cache, self.tier)
    }
}

/// The label pairs of live caches.
fn registry() -> &'static Mutex<HashSet<InstanceLabels>> {
    static REGISTRY: OnceLock<Mutex<HashSet<InstanceLabels>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A claim on a label pair in the process-wide table, released when dropped: what keeps two
/// live caches from reporting under the same labels. [`TierMetrics`] holds one; a cache that
/// reports under labels of its own (a manager's request metrics, a policy cache's) claims one
/// with [`InstanceClaim::new`].
pub struct InstanceClaim {
    labels: InstanceLabels,
}

impl InstanceClaim {
    /// Claims `wanted`, or, when a live cache holds it, the first free `{cache}-N` variant
    /// (logging a warning).
    pub fn new(wanted: InstanceLabels) -> InstanceClaim {
        let mut table = registry()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut labels = wanted.clone();
        let mut suffix = 2_u32;
        while table.contains(&labels) {
            labels.cache = format!("{}-{suffix}", wanted.cache);
            suffix += 1;
        }
        if labels != wanted {
            tracing::warn!(
                wanted = %wanted,
                using = %labels,
                "another live cache reports under these metric labels; give each cache its own name"
            );
        }
        table.insert(labels.clone());
        InstanceClaim { labels }
    }

    /// The labels claimed (after any renaming).
    pub fn labels(&self) -> &InstanceLabels {
        &self.labels
    }
}

impl fmt::Debug for InstanceClaim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("InstanceClaim").field(&self.labels).finish()
    }
}

impl Drop for InstanceClaim {
    fn drop(&mut self) {
        let mut table = registry()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        table.remove(&self.labels);
    }
}

/// Describes every `nfcs_cache_*` tier metric to the recorder in effect (help texts and
/// units), once per recorder call. Called by [`TierMetrics::new`].
fn describe() {
    metrics::describe_counter!(HITS, Unit::Count, "Reads that found a live entry.");
    metrics::describe_counter!(
        MISSES,
        Unit::Count,
        "Reads that found nothing, or only an expired entry."
    );
    metrics::describe_counter!(
        INSERTS,
        Unit::Count,
        "Successful writes (new keys and overwrites)."
    );
    metrics::describe_counter!(
        EVICTIONS,
        Unit::Count,
        "Entries removed to stay within capacity."
    );
    metrics::describe_counter!(
        EXPIRATIONS,
        Unit::Count,
        "Entries removed because their TTL passed."
    );
    metrics::describe_counter!(
        ERRORS,
        Unit::Count,
        "Operations that failed inside the tier (I/O, network, corruption)."
    );
    metrics::describe_gauge!(ENTRIES, Unit::Count, "Entries held now.");
    metrics::describe_gauge!(
        BYTES,
        Unit::Bytes,
        "Bytes held now, as the tier accounts them."
    );
    metrics::describe_gauge!(CAPACITY_BYTES, Unit::Bytes, "The tier's byte budget.");
    metrics::describe_histogram!(
        OPERATION_SECONDS,
        Unit::Seconds,
        "Duration of one tier operation (sampled for the memory tier)."
    );
}

/// One tier's metric handles, resolved once with the recorder in effect when it is built.
///
/// Cloning is cheap: clones update the same series, and the label pair stays claimed until
/// the last clone is dropped.
#[derive(Clone)]
pub struct TierMetrics {
    handles: Arc<Handles>,
}

struct Handles {
    registration: InstanceClaim,
    hits: Counter,
    misses: Counter,
    inserts: Counter,
    evictions: Counter,
    expirations: Counter,
    errors: Counter,
    entries: Gauge,
    bytes: Gauge,
    capacity: Gauge,
    operations: [Histogram; 5],
    sample_every: u32,
}

impl TierMetrics {
    /// Handles for the tier `labels` names, every operation timed. A label pair already used by
    /// a live cache is made unique (see the [module docs](self)).
    pub fn new(labels: InstanceLabels) -> TierMetrics {
        TierMetrics::sampled(labels, 1)
    }

    /// Handles whose latency histogram times one operation in `every` (per thread); `1` times
    /// every operation.
    pub fn sampled(labels: InstanceLabels, every: u32) -> TierMetrics {
        describe();
        let registration = InstanceClaim::new(labels);
        let pairs = registration.labels.pairs();
        let operations = Operation::ALL.map(|operation| {
            let [cache, tier] = pairs.clone();
            let labels = [cache, tier, ("operation", operation.as_str().to_owned())];
            metrics::histogram!(OPERATION_SECONDS, &labels)
        });
        TierMetrics {
            handles: Arc::new(Handles {
                hits: metrics::counter!(HITS, &pairs),
                misses: metrics::counter!(MISSES, &pairs),
                inserts: metrics::counter!(INSERTS, &pairs),
                evictions: metrics::counter!(EVICTIONS, &pairs),
                expirations: metrics::counter!(EXPIRATIONS, &pairs),
                errors: metrics::counter!(ERRORS, &pairs),
                entries: metrics::gauge!(ENTRIES, &pairs),
                bytes: metrics::gauge!(BYTES, &pairs),
                capacity: metrics::gauge!(CAPACITY_BYTES, &pairs),
                operations,
                sample_every: every.max(1),
                registration,
            }),
        }
    }

    /// The labels this tier reports under (after any renaming to keep them unique).
    pub fn labels(&self) -> &InstanceLabels {
        &self.handles.registration.labels
    }

    /// Counts `count` hits.
    #[inline]
    pub fn hits(&self, count: u64) {
        self.handles.hits.increment(count);
    }

    /// Counts `count` misses.
    #[inline]
    pub fn misses(&self, count: u64) {
        self.handles.misses.increment(count);
    }

    /// Counts `count` inserts.
    #[inline]
    pub fn inserts(&self, count: u64) {
        self.handles.inserts.increment(count);
    }

    /// Counts `count` evictions.
    #[inline]
    pub fn evictions(&self, count: u64) {
        self.handles.evictions.increment(count);
    }

    /// Counts `count` expirations.
    #[inline]
    pub fn expirations(&self, count: u64) {
        self.handles.expirations.increment(count);
    }

    /// Counts `count` errors.
    #[inline]
    pub fn errors(&self, count: u64) {
        self.handles.errors.increment(count);
    }

    /// Moves the entry and byte gauges by the given deltas.
    #[inline]
    pub fn resident(&self, entries: i64, bytes: i64) {
        if entries != 0 {
            self.handles.entries.increment(entries as f64);
        }
        if bytes != 0 {
            self.handles.bytes.increment(bytes as f64);
        }
    }

    /// Sets the entry and byte gauges (for tiers that know their totals, after recovery).
    pub fn set_resident(&self, entries: u64, bytes: u64) {
        self.handles.entries.set(entries as f64);
        self.handles.bytes.set(bytes as f64);
    }

    /// Sets the capacity gauge.
    pub fn capacity(&self, bytes: u64) {
        self.handles.capacity.set(bytes as f64);
    }

    /// Starts timing `operation`: returns a timer when this call is sampled (always, unless
    /// built with [`sampled`](TierMetrics::sampled)). Record it with
    /// [`finish`](OperationTimer::finish).
    #[inline]
    pub fn start(&self, operation: Operation) -> Option<OperationTimer<'_>> {
        sample(self.handles.sample_every).then(|| OperationTimer {
            histogram: &self.handles.operations[operation.index()],
            started: Instant::now(),
        })
    }

    /// Starts timing `operation` when `sampled` (the caller's own sampling decision, for a tier
    /// that can decide more cheaply than the thread-local countdown of
    /// [`start`](TierMetrics::start), from counters it updates anyway).
    #[inline]
    pub fn start_when(&self, sampled: bool, operation: Operation) -> Option<OperationTimer<'_>> {
        sampled.then(|| OperationTimer {
            histogram: &self.handles.operations[operation.index()],
            started: Instant::now(),
        })
    }

    /// Records that one `operation` took `duration` (unsampled: for callers that measured it).
    pub fn record(&self, operation: Operation, duration: Duration) {
        self.handles.operations[operation.index()].record(duration.as_secs_f64());
    }
}

impl fmt::Debug for TierMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TierMetrics")
            .field("labels", self.labels())
            .field("sample_every", &self.handles.sample_every)
            .finish()
    }
}

/// A started measurement of one operation (see [`TierMetrics::start`]).
#[must_use = "a timer records nothing until finished"]
pub struct OperationTimer<'a> {
    histogram: &'a Histogram,
    started: Instant,
}

impl OperationTimer<'_> {
    /// Records the time since the timer started.
    #[inline]
    pub fn finish(self) {
        self.histogram.record(self.started.elapsed().as_secs_f64());
    }
}

/// Records `timer` if there is one.
#[inline]
pub fn finish(timer: Option<OperationTimer<'_>>) {
    if let Some(timer) = timer {
        timer.finish();
    }
}

thread_local! {
    /// Tier operations left on this thread before the next sampled one.
    static COUNTDOWN: Cell<u32> = const { Cell::new(0) };
    /// Requests (through a multi-tier cache) left on this thread before the next sampled one.
    static REQUEST_COUNTDOWN: Cell<u32> = const { Cell::new(0) };
}

/// Whether this tier operation is one of the `every` that are sampled (per thread: one
/// countdown shared by every tier's histograms, so the cost is one thread-local access).
#[inline]
pub fn sample(every: u32) -> bool {
    sample_on(&COUNTDOWN, every)
}

/// Whether this request through a multi-tier cache is one of the `every` that are sampled.
/// Requests count on a countdown of their own: a request that also runs a sampled tier
/// operation would otherwise take two steps of one countdown per request, and with an even
/// period one of the two would never be sampled.
#[inline]
pub fn sample_request(every: u32) -> bool {
    sample_on(&REQUEST_COUNTDOWN, every)
}

#[inline]
fn sample_on(countdown: &'static std::thread::LocalKey<Cell<u32>>, every: u32) -> bool {
    if every <= 1 {
        return true;
    }
    countdown.with(|countdown| {
        let left = countdown.get();
        if left == 0 {
            countdown.set(every - 1);
            true
        } else {
            countdown.set(left - 1);
            false
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_pairs_stay_unique_while_in_use() {
        let labels = InstanceLabels::new("telemetry-test", "memory");
        let first = TierMetrics::new(labels.clone());
        let second = TierMetrics::new(labels.clone());
        assert_eq!(first.labels(), &labels);
        assert_eq!(second.labels().cache, "telemetry-test-2");
        let clone = first.clone();
        drop(first);
        let third = TierMetrics::new(labels.clone());
        assert_eq!(
            third.labels().cache,
            "telemetry-test-3",
            "a clone keeps the claim"
        );
        drop(clone);
        let fourth = TierMetrics::new(labels.clone());
        assert_eq!(
            fourth.labels(),
            &labels,
            "free again once every clone is gone"
        );
    }

    #[test]
    fn sampling_takes_one_in_every() {
        let taken = (0..640).filter(|_| sample(64)).count();
        assert_eq!(taken, 10);
        let taken = (0..1280).filter(|_| sample(MEMORY_SAMPLE_EVERY)).count();
        assert_eq!(taken, 10);
        // Interleaved with tier samples, requests keep their own period.
        let taken = (0..1280)
            .filter(|_| {
                let _ = sample(MEMORY_SAMPLE_EVERY);
                sample_request(MEMORY_SAMPLE_EVERY)
            })
            .count();
        assert_eq!(taken, 10);
        assert!((0..10).all(|_| sample(1)));
    }
}
