//! Stats, metrics and expiry on a driven clock. These tests use a stand-in embedder, so they
//! run without the model files.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use nfcs_cache_core::ManualClock;
use nfcs_semantic::{
    Embedder, METRIC_EMBED_SECONDS, METRIC_ENTRIES, METRIC_EVICTIONS, METRIC_LOOKUP_SECONDS,
    METRIC_LOOKUPS, METRIC_STORES, SemanticCache, SemanticConfig, SemanticError,
};

/// Every text embeds to the same unit vector: within a context, a lookup by meaning finds the
/// best (here: the only) live entry at similarity 1, so what a test sees depends only on the
/// cache's own rules (exact text, contexts, expiry, eviction, the contradiction guard).
struct SameVector;

impl Embedder for SameVector {
    fn dimension(&self) -> usize {
        4
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, SemanticError> {
        Ok(texts.iter().map(|_| vec![1.0, 0.0, 0.0, 0.0]).collect())
    }
}

#[test]
fn entries_expire_on_the_configured_clock() {
    let manual = ManualClock::new();
    let cache = SemanticCache::new(
        SameVector,
        SemanticConfig::default()
            .with_ttl(Duration::from_secs(60))
            .with_clock(manual.clock()),
    )
    .unwrap();
    cache
        .store("What is the capital of France?", 1, "a")
        .unwrap();
    manual.advance(Duration::from_millis(59_999));
    assert!(
        cache
            .find("What is the capital of France?", "a")
            .unwrap()
            .is_some()
    );
    assert!(
        cache
            .find("Capital city of France?", "a")
            .unwrap()
            .is_some()
    );
    manual.advance(Duration::from_millis(1));
    assert!(
        cache
            .find("Capital city of France?", "a")
            .unwrap()
            .is_none(),
        "expired, by meaning"
    );
    assert_eq!(cache.len(), 1, "found by meaning, not yet reclaimed");
    assert!(
        cache
            .find("What is the capital of France?", "a")
            .unwrap()
            .is_none(),
        "expired, by exact text"
    );
    assert!(cache.is_empty(), "reclaimed by the exact-text lookup");
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.exact_hits, stats.misses), (2, 1, 2));
    assert_eq!((stats.expirations, stats.entries), (1, 0));
}

#[test]
fn stats_count_every_outcome() {
    let manual = ManualClock::new();
    let cache = SemanticCache::new(
        SameVector,
        SemanticConfig::default()
            .with_max_entries(2)
            .with_ttl(Duration::from_secs(60))
            .with_clock(manual.clock()),
    )
    .unwrap();
    cache.store("How do I reset my password?", 1, "a").unwrap();
    assert!(
        cache
            .find("How do I reset my password?", "a")
            .unwrap()
            .is_some()
    );
    assert!(cache.find("Password reset steps", "a").unwrap().is_some());
    cache.store("Turn the lights on", 2, "b").unwrap();
    // The same vector, but the opposite request: refused by the guard, a miss.
    assert!(cache.find("Turn the lights off", "b").unwrap().is_none());
    // A context with nothing in it.
    assert!(cache.find("Anything at all", "c").unwrap().is_none());
    // Full (two entries): the least recently used, the password entry, is evicted.
    cache.store("Hello world", 3, "a").unwrap();
    assert!(!cache.remove("How do I reset my password?", "a"), "evicted");
    // Once both remaining entries have expired, the next store reclaims them instead of
    // evicting anything.
    manual.advance(Duration::from_secs(60));
    cache.store("Hi there", 4, "a").unwrap();
    cache.store("Good morning", 5, "a").unwrap();

    let stats = cache.stats();
    assert_eq!(stats.hits, 2);
    assert_eq!(stats.exact_hits, 1);
    assert_eq!(stats.misses, 2);
    assert_eq!(stats.contradictions, 1);
    assert_eq!(stats.stores, 5);
    assert_eq!(stats.evictions, 1);
    assert_eq!(stats.expirations, 2);
    assert_eq!((stats.entries, stats.max_entries), (2, 2));
    // Every store and every lookup by meaning ran the model once (one caller at a time):
    // five stores, three lookups not found by exact text.
    assert_eq!((stats.forward_passes, stats.embedded_texts), (8, 8));
    assert!((stats.hit_ratio() - 0.5).abs() < 1e-12);
}

/// Two caches built with different instance names report separate series through handles
/// resolved at construction (the recorder is in effect only while they are built), and every
/// metric is described.
#[test]
fn each_semantic_cache_reports_under_its_own_instance() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (first, second) = metrics::with_local_recorder(&recorder, || {
        let build = |instance: &str| {
            SemanticCache::new(
                SameVector,
                SemanticConfig::default()
                    .with_max_entries(1)
                    .with_instance(instance),
            )
            .unwrap()
        };
        (build("semantic-metrics-a"), build("semantic-metrics-b"))
    });
    assert_eq!(first.instance(), "semantic-metrics-a");
    first.store("Hello world", 1, "a").unwrap();
    assert!(first.find("Hello world", "a").unwrap().is_some());
    assert!(first.find("Hi world", "a").unwrap().is_some());
    first.store("Good morning", 2, "a").unwrap();
    second.store("Hello world", 1, "a").unwrap();
    assert!(second.find("Nothing here", "b").unwrap().is_none());

    let mut counters = BTreeMap::new();
    let mut gauges = BTreeMap::new();
    let mut histograms = BTreeMap::new();
    let mut described = BTreeSet::new();
    for (key, unit, description, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let label = |name: &str| {
            key.labels()
                .find(|label| label.key() == name)
                .map(|label| label.value().to_owned())
                .unwrap_or_default()
        };
        if unit.is_some() && description.is_some() {
            described.insert(key.name().to_owned());
        }
        let series = (key.name().to_owned(), label("cache"), label("outcome"));
        match value {
            DebugValue::Counter(count) => {
                counters.insert(series, count);
            }
            DebugValue::Gauge(value) => {
                gauges.insert(series, value.into_inner());
            }
            DebugValue::Histogram(samples) => {
                histograms.insert(series, samples.len());
            }
        }
    }
    let series = |name: &str, cache: &str, outcome: &str| {
        (
            name.to_owned(),
            format!("semantic-metrics-{cache}"),
            outcome.to_owned(),
        )
    };
    assert_eq!(counters[&series(METRIC_LOOKUPS, "a", "exact")], 1);
    assert_eq!(counters[&series(METRIC_LOOKUPS, "a", "similar")], 1);
    assert_eq!(counters[&series(METRIC_LOOKUPS, "a", "miss")], 0);
    assert_eq!(counters[&series(METRIC_LOOKUPS, "b", "exact")], 0);
    assert_eq!(counters[&series(METRIC_LOOKUPS, "b", "miss")], 1);
    assert_eq!(counters[&series(METRIC_STORES, "a", "")], 2);
    assert_eq!(counters[&series(METRIC_STORES, "b", "")], 1);
    assert_eq!(counters[&series(METRIC_EVICTIONS, "a", "")], 1);
    assert_eq!(counters[&series(METRIC_EVICTIONS, "b", "")], 0);
    assert_eq!(gauges[&series(METRIC_ENTRIES, "a", "")], 1.0);
    assert_eq!(gauges[&series(METRIC_ENTRIES, "b", "")], 1.0);
    // Lookup calls: two on the first cache, one on the second; forward passes: two stores
    // and one lookup by meaning on the first, one store and one lookup on the second.
    assert_eq!(histograms[&series(METRIC_LOOKUP_SECONDS, "a", "")], 2);
    assert_eq!(histograms[&series(METRIC_LOOKUP_SECONDS, "b", "")], 1);
    assert_eq!(histograms[&series(METRIC_EMBED_SECONDS, "a", "")], 3);
    assert_eq!(histograms[&series(METRIC_EMBED_SECONDS, "b", "")], 2);
    for name in [
        METRIC_LOOKUPS,
        METRIC_STORES,
        METRIC_EVICTIONS,
        METRIC_ENTRIES,
        METRIC_LOOKUP_SECONDS,
        METRIC_EMBED_SECONDS,
        nfcs_semantic::METRIC_EXPIRATIONS,
        nfcs_semantic::METRIC_CONTRADICTIONS,
    ] {
        assert!(described.contains(name), "{name} has no help text or unit");
    }
}

#[test]
fn an_empty_instance_name_is_refused() {
    assert!(matches!(
        SemanticCache::<u8, _>::new(SameVector, SemanticConfig::default().with_instance("")),
        Err(SemanticError::InvalidConfig {
            field: "instance",
            ..
        })
    ));
}
