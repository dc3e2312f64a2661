//! Metrics a service can scrape: handles resolved when the caches are built, current without
//! anyone calling `stats()`, labelled by cache instance and tier, described, never colliding.

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use nfcs_performance::prelude::*;

/// Every series of a snapshot: (name, labels, description, value).
type Series = Vec<(String, Vec<(String, String)>, Option<String>, DebugValue)>;

fn series(snapshotter: &Snapshotter) -> Series {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _unit, description, value)| {
            let labels = key
                .key()
                .labels()
                .map(|label| (label.key().to_owned(), label.value().to_owned()))
                .collect();
            (
                key.key().name().to_owned(),
                labels,
                description.map(|text| text.to_string()),
                value,
            )
        })
        .collect()
}

/// The value of `name` whose labels include every pair of `labels`.
fn value<'a>(series: &'a Series, name: &str, labels: &[(&str, &str)]) -> &'a DebugValue {
    series
        .iter()
        .find(|(found, found_labels, _, _)| {
            found == name
                && labels.iter().all(|(key, value)| {
                    found_labels
                        .iter()
                        .any(|(found_key, found_value)| found_key == key && found_value == value)
                })
        })
        .map(|(_, _, _, value)| value)
        .unwrap_or_else(|| panic!("{name}{labels:?} was not published"))
}

fn counter(series: &Series, name: &str, labels: &[(&str, &str)]) -> u64 {
    match value(series, name, labels) {
        DebugValue::Counter(count) => *count,
        other => panic!("{name} is not a counter: {other:?}"),
    }
}

fn gauge(series: &Series, name: &str, labels: &[(&str, &str)]) -> f64 {
    match value(series, name, labels) {
        DebugValue::Gauge(gauge) => gauge.into_inner(),
        other => panic!("{name} is not a gauge: {other:?}"),
    }
}

fn samples(series: &Series, name: &str, labels: &[(&str, &str)]) -> usize {
    match value(series, name, labels) {
        DebugValue::Histogram(samples) => samples.len(),
        other => panic!("{name} is not a histogram: {other:?}"),
    }
}

#[test]
fn a_scrape_sees_current_values_per_instance_without_stats() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let directory = tempfile::tempdir().unwrap();
    let (node_a, node_b) = metrics::with_local_recorder(&recorder, || {
        let memory = |name: &str| {
            MemoryCache::with_config(MemoryConfig::new(16 << 20).instance(name)).unwrap()
        };
        let disk = DiskCache::open(
            directory.path(),
            DiskConfig::new(64 << 20).instance("node-a"),
        )
        .unwrap();
        (
            NFCSCacheManager::builder()
                .name("node-a")
                .memory(memory("node-a"))
                .disk(disk)
                .build(),
            NFCSCacheManager::builder()
                .name("node-b")
                .memory(memory("node-b"))
                .build(),
        )
    });
    runtime.block_on(async {
        node_a.set("a", &1_u8, None).await.unwrap();
        node_b.set("b", &2_u8, None).await.unwrap();
        // (A debugging snapshot hands out what changed since the last one, and zeroes it.)
        let a_memory = [("cache", "node-a"), ("tier", "memory")];
        let b_memory = [("cache", "node-b"), ("tier", "memory")];
        // The memory tier publishes in batches (16 writes, 64 reads per shard) and a flush
        // publishes the rest; the disk tier and the manager publish every event at once.
        let now = series(&snapshotter);
        assert_eq!(
            counter(
                &now,
                "nfcs_cache_inserts_total",
                &[("cache", "node-a"), ("tier", "disk")]
            ),
            1,
            "the disk tier's insert, without a flush"
        );
        assert_eq!(
            gauge(&now, "nfcs_cache_capacity_bytes", &a_memory),
            f64::from(16 << 20),
            "set when the tier was built"
        );
        node_a.flush_metrics();
        node_b.flush_metrics();
        let now = series(&snapshotter);
        assert_eq!(counter(&now, "nfcs_cache_inserts_total", &a_memory), 1);
        assert_eq!(counter(&now, "nfcs_cache_inserts_total", &b_memory), 1);
        assert_eq!(gauge(&now, "nfcs_cache_entries", &a_memory), 1.0);
        // 128 requests on this thread: exactly one is timed (memory hits are sampled).
        for _ in 0..128 {
            assert_eq!(node_a.get::<u8>("a").await.unwrap(), Some(1));
        }
        assert_eq!(node_a.get::<u8>("missing").await.unwrap(), None);
        node_a.memory().unwrap().clear();
        assert_eq!(node_a.get::<u8>("a").await.unwrap(), Some(1), "from disk");
        node_a.flush_metrics();
        node_b.flush_metrics();
        let now = series(&snapshotter);
        assert_eq!(counter(&now, "nfcs_cache_hits_total", &a_memory), 128);
        assert_eq!(counter(&now, "nfcs_cache_misses_total", &a_memory), 2);
        assert_eq!(counter(&now, "nfcs_cache_hits_total", &b_memory), 0);
        assert_eq!(
            counter(&now, "nfcs_cache_promotions_total", &[("cache", "node-a")]),
            1
        );
        assert_eq!(
            samples(
                &now,
                "nfcs_cache_get_seconds",
                &[("cache", "node-a"), ("outcome", "hit"), ("tier", "memory")]
            ),
            1
        );
        assert_eq!(
            samples(
                &now,
                "nfcs_cache_get_seconds",
                &[("cache", "node-a"), ("outcome", "hit"), ("tier", "disk")]
            ),
            1,
            "every lower-tier hit is timed"
        );
        assert_eq!(
            samples(
                &now,
                "nfcs_cache_get_seconds",
                &[("cache", "node-a"), ("outcome", "miss")]
            ),
            1
        );
        // Every series has help text.
        for (name, labels, description, _) in &now {
            assert!(
                description.as_deref().is_some_and(|text| !text.is_empty()),
                "{name}{labels:?} has no description"
            );
        }
    });
    // The snapshot API is exact whatever the metrics say.
    let stats = node_a.stats();
    assert_eq!(stats.tiers[0].1.hits, 128);
    assert_eq!(stats.promotions, 1);
}

#[test]
fn two_live_caches_never_share_a_series() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (first, second) = metrics::with_local_recorder(&recorder, || {
        let build = || {
            NFCSCacheManager::builder()
                .name("twin")
                .memory(
                    MemoryCache::with_config(MemoryConfig::new(1 << 20).instance("twin")).unwrap(),
                )
                .build()
        };
        (build(), build())
    });
    assert_eq!(first.name(), "twin");
    assert_eq!(second.name(), "twin-2", "renamed, with a warning");
    assert_eq!(first.memory().unwrap().labels().cache, "twin");
    assert_eq!(second.memory().unwrap().labels().cache, "twin-2");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        first.set("k", &1_u8, None).await.unwrap();
    });
    first.flush_metrics();
    second.flush_metrics();
    let now = series(&snapshotter);
    assert_eq!(
        counter(
            &now,
            "nfcs_cache_inserts_total",
            &[("cache", "twin"), ("tier", "memory")]
        ),
        1
    );
    assert_eq!(
        counter(
            &now,
            "nfcs_cache_inserts_total",
            &[("cache", "twin-2"), ("tier", "memory")]
        ),
        0
    );
}

#[test]
fn a_configured_name_labels_every_tier() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let directory = tempfile::tempdir().unwrap();
    let config = CacheConfig::from_toml_str(&format!(
        "name = \"configured\"\n[disk]\ndirectory = \"{}\"\nmax_size = \"64MiB\"\n[redis]\nenabled = false\n[semantic]\nenabled = false\n[cache_warming]\nenabled = false",
        directory.path().display()
    ))
    .unwrap();
    let cache = metrics::with_local_recorder(&recorder, || {
        runtime.block_on(NFCSCacheManager::from_config(config))
    })
    .unwrap();
    assert_eq!(cache.name(), "configured");
    runtime.block_on(async {
        cache.set("k", &1_u8, None).await.unwrap();
    });
    cache.flush_metrics();
    let now = series(&snapshotter);
    for tier in ["memory", "disk"] {
        assert_eq!(
            counter(
                &now,
                "nfcs_cache_inserts_total",
                &[("cache", "configured"), ("tier", tier)]
            ),
            1,
            "{tier}"
        );
    }
}
