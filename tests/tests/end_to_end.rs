//! The spec's example flow, through the facade, with the memory tier that this build runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nfcs_performance::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CglParams {
    grid_size: usize,
    b: f64,
    c: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CglResult {
    mean_intensity: f64,
    field: Vec<(f64, f64)>,
}

fn solve(params: &CglParams) -> CglResult {
    CglResult {
        mean_intensity: 1.0 - params.b * 0.01,
        field: vec![(1.0, 0.0); params.grid_size * params.grid_size],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn solve_cgl_optimized_computes_once_and_invalidates_by_pattern() {
    let directory = tempfile::tempdir().unwrap();
    let config = CacheConfig::from_toml_str(&format!(
        "[memory]\nmax_size = \"128MiB\"\n[disk]\ndirectory = \"{}\"\n[redis]\nenabled = false",
        directory.path().display()
    ))
    .unwrap();
    let cache = NFCSCacheManager::from_config(config).await.unwrap();
    let solves = Arc::new(AtomicUsize::new(0));
    let params = CglParams {
        grid_size: 64,
        b: 1.5,
        c: -1.2,
    };
    let key = format!("cgl_{}_{}", params.grid_size, "b1.5_c-1.2");
    for _ in 0..3 {
        let solves = Arc::clone(&solves);
        let params = params.clone();
        let result: CglResult = cache
            .get_or_insert_with(&key, Some(Duration::from_secs(3600)), || async move {
                solves.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::convert::Infallible>(solve(&params))
            })
            .await
            .unwrap();
        assert_eq!(result.field.len(), 64 * 64);
    }
    assert_eq!(
        solves.load(Ordering::SeqCst),
        1,
        "computed once, then served from cache"
    );
    let entry = cache.get_entry(&key).await.unwrap().unwrap();
    assert!(entry.ttl.unwrap() <= Duration::from_secs(3600));
    assert!(
        entry.value.len() < 64 * 64 * 16,
        "the repetitive field was compressed"
    );

    cache.set("cgl_128_x", &solve(&params), None).await.unwrap();
    cache.set("kuramoto_50", &0.97_f64, None).await.unwrap();
    assert_eq!(
        cache.invalidate_pattern("cgl_*").await.unwrap(),
        4,
        "two entries, memory and disk"
    );
    assert_eq!(cache.get::<f64>("kuramoto_50").await.unwrap(), Some(0.97));
    let stats = cache.stats();
    assert_eq!(stats.loads, 1);
    assert!(stats.hit_ratio() > 0.0);
}

mod manager_as_a_tier_backend {
    // The conformance suite, run against a memory tier built the way the facade builds it
    // from the spec's configuration (1 GB, LRU, a default TTL of an hour), on the suite's
    // clock. The disk tier is off here: it would open ./cache; its own suite runs in
    // nfcs-cache-disk.
    nfcs_cache_core::cache_tier_conformance!(|clock: nfcs_cache_core::Clock| async move {
        let mut config = nfcs_performance::CacheConfig::default();
        config.disk.enabled = false;
        config.redis.enabled = false;
        let manager = nfcs_performance::NFCSCacheManager::from_config_with_clock(config, clock)
            .await
            .expect("the default configuration builds");
        manager.memory().expect("memory runs by default").clone()
    });
}
