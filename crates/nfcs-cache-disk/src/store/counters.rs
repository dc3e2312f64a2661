//! The tier's counters: exact totals for `stats()`, and the same events on the metric handles.

use std::sync::atomic::{AtomicU64, Ordering};

use nfcs_cache_core::TierStats;
use nfcs_cache_core::telemetry::TierMetrics;

/// Counts what happens to the tier, twice: in atomics that [`Counters::fill`] copies into an
/// exact [`TierStats`] snapshot, and on the `metrics` handles resolved at open, so that a
/// scrape reads current values without anyone calling `stats()`. Every count goes through one
/// method here, so the two never disagree.
pub(super) struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    inserts: AtomicU64,
    evictions: AtomicU64,
    expirations: AtomicU64,
    errors: AtomicU64,
    /// Entries carried forward by eviction; in stats only (there is no metric for it).
    reinserted: AtomicU64,
    /// Segments freed by compaction, and the entries it moved; in stats only.
    compacted_segments: AtomicU64,
    compacted_entries: AtomicU64,
    metrics: TierMetrics,
}

fn add(counter: &AtomicU64, count: u64) {
    counter.fetch_add(count, Ordering::Relaxed);
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Counters {
    /// Zeroed counters that also count on `metrics`.
    pub(super) fn new(metrics: TierMetrics) -> Counters {
        Counters {
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            inserts: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            expirations: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            reinserted: AtomicU64::new(0),
            compacted_segments: AtomicU64::new(0),
            compacted_entries: AtomicU64::new(0),
            metrics,
        }
    }

    /// The metric handles (for the gauges and the latency histograms).
    pub(super) fn metrics(&self) -> &TierMetrics {
        &self.metrics
    }

    /// A read found a live entry.
    pub(super) fn hit(&self) {
        add(&self.hits, 1);
        self.metrics.hits(1);
    }

    /// A read found nothing, or an expired or damaged entry.
    pub(super) fn miss(&self) {
        add(&self.misses, 1);
        self.metrics.misses(1);
    }

    /// A write succeeded.
    pub(super) fn insert(&self) {
        add(&self.inserts, 1);
        self.metrics.inserts(1);
    }

    /// `count` entries left the index because their segment was evicted.
    pub(super) fn evicted(&self, count: u64) {
        if count > 0 {
            add(&self.evictions, count);
            self.metrics.evictions(count);
        }
    }

    /// `count` entries left the index because their TTL had passed.
    pub(super) fn expired(&self, count: u64) {
        if count > 0 {
            add(&self.expirations, count);
            self.metrics.expirations(count);
        }
    }

    /// An operation failed inside the tier (I/O, a damaged record).
    pub(super) fn error(&self) {
        add(&self.errors, 1);
        self.metrics.errors(1);
    }

    /// An entry was carried into a newer segment by eviction.
    pub(super) fn reinsert(&self) {
        add(&self.reinserted, 1);
    }

    /// Entries carried forward by eviction so far.
    pub(super) fn reinserted(&self) -> u64 {
        load(&self.reinserted)
    }

    /// A segment was freed by compaction.
    pub(super) fn compacted_segment(&self) {
        add(&self.compacted_segments, 1);
    }

    /// An entry was moved by compaction.
    pub(super) fn compacted_entry(&self) {
        add(&self.compacted_entries, 1);
    }

    /// Segments freed by compaction and entries it moved, so far.
    pub(super) fn compacted(&self) -> (u64, u64) {
        (
            load(&self.compacted_segments),
            load(&self.compacted_entries),
        )
    }

    /// Copies the counters into `stats`.
    pub(super) fn fill(&self, stats: &mut TierStats) {
        stats.hits = load(&self.hits);
        stats.misses = load(&self.misses);
        stats.inserts = load(&self.inserts);
        stats.evictions = load(&self.evictions);
        stats.expirations = load(&self.expirations);
        stats.errors = load(&self.errors);
    }
}
