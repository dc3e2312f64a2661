//! The semantic cache's metrics and counters: handles resolved once, when a
//! [`SemanticCache`](crate::SemanticCache) is built, updated as lookups and stores happen, so
//! that a scrape reads current values at any time; and the same events counted for
//! [`SemanticStats`].
//!
//! Every series carries the `cache` label ([`SemanticConfig::instance`]); lookups carry
//! `outcome` too. The names are the `METRIC_*` constants of the crate root.
//!
//! [`SemanticConfig::instance`]: crate::SemanticConfig::instance

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{Counter, Gauge, Histogram, Unit};

/// Counter: texts looked up, labelled `outcome="exact"` (found by its exact text, no model
/// run), `"similar"` (found by meaning) or `"miss"`.
pub const METRIC_LOOKUPS: &str = "nfcs_semantic_lookups_total";
/// Counter: matches by meaning refused because the texts look like opposites (each also
/// counts as a miss).
pub const METRIC_CONTRADICTIONS: &str = "nfcs_semantic_contradictions_total";
/// Counter: texts stored (new entries and replacements).
pub const METRIC_STORES: &str = "nfcs_semantic_stores_total";
/// Counter: entries removed to stay within `max_entries` (least recently used first).
pub const METRIC_EVICTIONS: &str = "nfcs_semantic_evictions_total";
/// Counter: entries removed because their TTL had passed.
pub const METRIC_EXPIRATIONS: &str = "nfcs_semantic_expirations_total";
/// Counter: forward passes of the model that failed.
pub const METRIC_EMBED_ERRORS: &str = "nfcs_semantic_embed_errors_total";
/// Gauge: entries held now (expired ones included until they are reclaimed).
pub const METRIC_ENTRIES: &str = "nfcs_semantic_entries";
/// Histogram: one lookup call (one text, or a batch of texts), from its start to its answer,
/// waiting for a shared forward pass included.
pub const METRIC_LOOKUP_SECONDS: &str = "nfcs_semantic_lookup_seconds";
/// Histogram: one forward pass of the model (a batch of texts).
pub const METRIC_EMBED_SECONDS: &str = "nfcs_semantic_embed_seconds";

/// What one [`SemanticCache`](crate::SemanticCache) has done since it was built, and what it
/// holds now ([`SemanticCache::stats`](crate::SemanticCache::stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SemanticStats {
    /// Texts found (by exact text or by meaning).
    pub hits: u64,
    /// Of [`hits`](SemanticStats::hits), those found by their exact text, without the model.
    pub exact_hits: u64,
    /// Texts not found.
    pub misses: u64,
    /// Of [`misses`](SemanticStats::misses), those whose best match was refused by the
    /// contradiction guard.
    pub contradictions: u64,
    /// Texts stored (new entries and replacements).
    pub stores: u64,
    /// Entries removed to stay within `max_entries`.
    pub evictions: u64,
    /// Entries removed because their TTL had passed.
    pub expirations: u64,
    /// Entries held now (expired ones included until they are reclaimed).
    pub entries: u64,
    /// The entry limit (`max_entries`).
    pub max_entries: u64,
    /// Forward passes of the model run (batches; a text retried alone after its batch failed
    /// is a pass of its own).
    pub forward_passes: u64,
    /// Texts embedded by those passes: over `forward_passes`, the batch size achieved.
    pub embedded_texts: u64,
    /// Forward passes that failed.
    pub embed_errors: u64,
}

impl SemanticStats {
    /// Hits over hits plus misses; 0 before the first lookup.
    pub fn hit_ratio(&self) -> f64 {
        nfcs_cache_core::hit_ratio(self.hits, self.misses)
    }
}

/// Describes every semantic metric to the recorder in effect (help texts and units). Called
/// at construction, inside whatever recorder scope the caller built the cache in.
fn describe() {
    metrics::describe_counter!(
        METRIC_LOOKUPS,
        Unit::Count,
        "Texts looked up in the semantic cache, by outcome: exact (found by its exact text, no \
         model run), similar (found by meaning) or miss."
    );
    metrics::describe_counter!(
        METRIC_CONTRADICTIONS,
        Unit::Count,
        "Matches by meaning refused because the two texts look like opposites (counted as \
         misses too)."
    );
    metrics::describe_counter!(
        METRIC_STORES,
        Unit::Count,
        "Texts stored in the semantic cache (new entries and replacements)."
    );
    metrics::describe_counter!(
        METRIC_EVICTIONS,
        Unit::Count,
        "Semantic cache entries removed to stay within max_entries (least recently used first)."
    );
    metrics::describe_counter!(
        METRIC_EXPIRATIONS,
        Unit::Count,
        "Semantic cache entries removed because their TTL had passed."
    );
    metrics::describe_counter!(
        METRIC_EMBED_ERRORS,
        Unit::Count,
        "Forward passes of the embedding model that failed."
    );
    metrics::describe_gauge!(
        METRIC_ENTRIES,
        Unit::Count,
        "Entries held by the semantic cache now (expired ones until they are reclaimed)."
    );
    metrics::describe_histogram!(
        METRIC_LOOKUP_SECONDS,
        Unit::Seconds,
        "Duration of one semantic lookup call, waiting for a shared forward pass included."
    );
    metrics::describe_histogram!(
        METRIC_EMBED_SECONDS,
        Unit::Seconds,
        "Duration of one forward pass of the embedding model (a batch of texts)."
    );
}

/// A counter published through `metrics` and kept for [`SemanticStats`].
struct Count {
    metric: Counter,
    total: AtomicU64,
}

impl Count {
    fn new(metric: Counter) -> Count {
        Count {
            metric,
            total: AtomicU64::new(0),
        }
    }

    fn add(&self, count: u64) {
        if count > 0 {
            self.metric.increment(count);
            self.total.fetch_add(count, Ordering::Relaxed);
        }
    }

    fn get(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

/// The cache's handles and counts (the model's are in [`EmbedMetrics`]).
pub(crate) struct CacheMetrics {
    exact_hits: Count,
    similar_hits: Count,
    misses: Count,
    contradictions: Count,
    stores: Count,
    evictions: Count,
    expirations: Count,
    entries: Gauge,
    pub(crate) lookup_seconds: Histogram,
}

impl CacheMetrics {
    /// Resolves the handles for the cache instance `instance` with the recorder in effect.
    pub(crate) fn new(instance: &str) -> CacheMetrics {
        describe();
        let labels = [("cache", instance.to_owned())];
        let lookups = |outcome: &'static str| {
            let labels = [
                ("cache", instance.to_owned()),
                ("outcome", outcome.to_owned()),
            ];
            Count::new(metrics::counter!(METRIC_LOOKUPS, &labels))
        };
        CacheMetrics {
            exact_hits: lookups("exact"),
            similar_hits: lookups("similar"),
            misses: lookups("miss"),
            contradictions: Count::new(metrics::counter!(METRIC_CONTRADICTIONS, &labels)),
            stores: Count::new(metrics::counter!(METRIC_STORES, &labels)),
            evictions: Count::new(metrics::counter!(METRIC_EVICTIONS, &labels)),
            expirations: Count::new(metrics::counter!(METRIC_EXPIRATIONS, &labels)),
            entries: metrics::gauge!(METRIC_ENTRIES, &labels),
            lookup_seconds: metrics::histogram!(METRIC_LOOKUP_SECONDS, &labels),
        }
    }

    pub(crate) fn exact_hits(&self, count: u64) {
        self.exact_hits.add(count);
    }

    pub(crate) fn similar_hits(&self, count: u64) {
        self.similar_hits.add(count);
    }

    pub(crate) fn misses(&self, count: u64) {
        self.misses.add(count);
    }

    pub(crate) fn contradictions(&self, count: u64) {
        self.contradictions.add(count);
    }

    pub(crate) fn stores(&self, count: u64) {
        self.stores.add(count);
    }

    pub(crate) fn evictions(&self, count: u64) {
        self.evictions.add(count);
    }

    pub(crate) fn expirations(&self, count: u64) {
        self.expirations.add(count);
    }

    /// Sets the entries gauge (called with the state's lock held, after a change).
    pub(crate) fn entries(&self, entries: usize) {
        self.entries.set(entries as f64);
    }

    /// The counts, with `entries` and `max_entries` filled in by the caller and the model's
    /// counts by [`EmbedMetrics::fill`].
    pub(crate) fn stats(&self) -> SemanticStats {
        let exact_hits = self.exact_hits.get();
        SemanticStats {
            hits: exact_hits + self.similar_hits.get(),
            exact_hits,
            misses: self.misses.get(),
            contradictions: self.contradictions.get(),
            stores: self.stores.get(),
            evictions: self.evictions.get(),
            expirations: self.expirations.get(),
            ..SemanticStats::default()
        }
    }
}

/// The model's handles and counts, kept by the coalescing embedder that runs the passes.
pub(crate) struct EmbedMetrics {
    pub(crate) seconds: Histogram,
    errors: Count,
    passes: AtomicU64,
    texts: AtomicU64,
}

impl EmbedMetrics {
    /// Resolves the handles for the cache instance `instance` with the recorder in effect.
    /// (The descriptions come with [`CacheMetrics::new`], which every cache calls too.)
    pub(crate) fn new(instance: &str) -> EmbedMetrics {
        let labels = [("cache", instance.to_owned())];
        EmbedMetrics {
            seconds: metrics::histogram!(METRIC_EMBED_SECONDS, &labels),
            errors: Count::new(metrics::counter!(METRIC_EMBED_ERRORS, &labels)),
            passes: AtomicU64::new(0),
            texts: AtomicU64::new(0),
        }
    }

    /// Records one forward pass over `texts` texts that took `seconds` and `failed` or not.
    pub(crate) fn pass(&self, texts: usize, seconds: f64, failed: bool) {
        self.seconds.record(seconds);
        self.passes.fetch_add(1, Ordering::Relaxed);
        self.texts.fetch_add(texts as u64, Ordering::Relaxed);
        if failed {
            self.errors.add(1);
        }
    }

    /// Fills in the model's counts.
    pub(crate) fn fill(&self, stats: &mut SemanticStats) {
        stats.forward_passes = self.passes.load(Ordering::Relaxed);
        stats.embedded_texts = self.texts.load(Ordering::Relaxed);
        stats.embed_errors = self.errors.get();
    }
}
