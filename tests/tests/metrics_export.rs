//! The manager's statistics reach a `metrics` recorder under the `nfcs_cache_*` names.

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use nfcs_performance::prelude::*;

#[test]
fn stats_are_published_under_the_nfcs_cache_names() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let cache = NFCSCacheManager::builder()
                .memory(MemoryCache::new(16 << 20).unwrap())
                .build();
            cache.set("a", &1_u8, None).await.unwrap();
            let _ = cache.get::<u8>("a").await.unwrap();
            let _ = cache.get::<u8>("b").await.unwrap();
            let _ = cache.stats();
        });
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let value = |name: &str| {
        snapshot
            .iter()
            .find(|(key, _, _, _)| {
                key.key().name() == name
                    && key
                        .key()
                        .labels()
                        .any(|label| label.key() == "tier" && label.value() == "memory")
            })
            .map(|(_, _, _, value)| value)
            .unwrap_or_else(|| panic!("{name}{{tier=\"memory\"}} was not published"))
    };
    for name in [
        "nfcs_cache_hits_total",
        "nfcs_cache_misses_total",
        "nfcs_cache_inserts_total",
    ] {
        assert!(
            matches!(value(name), DebugValue::Counter(1)),
            "{name}: {:?}",
            value(name)
        );
    }
    match value("nfcs_cache_hit_ratio") {
        DebugValue::Gauge(ratio) => assert_eq!(ratio.into_inner(), 0.5),
        other => panic!("{other:?}"),
    }
    match value("nfcs_cache_capacity_bytes") {
        DebugValue::Gauge(bytes) => assert_eq!(bytes.into_inner(), f64::from(16 << 20)),
        other => panic!("{other:?}"),
    }
}
