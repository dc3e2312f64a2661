//! Against a real three-master Redis Cluster started on loopback.

use nfcs_cache_core::Pattern;
use nfcs_cache_redis::test_server::RedisCluster;
use nfcs_cache_redis::{RedisCache, RedisConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tier_works_across_three_masters() {
    let Some(cluster) = RedisCluster::start_or_skip("cluster") else {
        return;
    };
    let cache = RedisCache::connect(RedisConfig::cluster(cluster.urls()))
        .await
        .unwrap();
    // Keys spread over every slot range.
    for index in 0..3000_u32 {
        let key = if index.is_multiple_of(3) {
            format!("cgl_{index}")
        } else {
            format!("other_{index}")
        };
        cache
            .set(&key, format!("v{index}").as_bytes(), None)
            .await
            .unwrap();
    }
    for index in (0..3000_u32).step_by(97) {
        let key = if index.is_multiple_of(3) {
            format!("cgl_{index}")
        } else {
            format!("other_{index}")
        };
        assert_eq!(
            cache.get(&key).await.unwrap().as_deref(),
            Some(format!("v{index}").as_bytes())
        );
    }
    // Batches across slots.
    let entries: Vec<(String, Vec<u8>)> = (0..16)
        .map(|index| (format!("batch{index}"), vec![index as u8; 8]))
        .collect();
    let borrowed: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_slice()))
        .collect();
    cache.set_many(&borrowed, None).await.unwrap();
    let keys: Vec<&str> = entries.iter().map(|(key, _)| key.as_str()).collect();
    assert!(
        cache
            .get_many(&keys)
            .await
            .unwrap()
            .iter()
            .all(Option::is_some)
    );
    // SCAN reaches every master.
    assert_eq!(
        cache
            .invalidate_pattern(&Pattern::new("cgl_*").unwrap())
            .await
            .unwrap(),
        1000
    );
    assert_eq!(cache.get("cgl_0").await.unwrap(), None);
    assert!(cache.get("other_1").await.unwrap().is_some());
    assert!(cache.delete("other_1").await.unwrap());
    assert_eq!(cache.clear().await.unwrap(), 2000 - 1 + 16);
}

mod conformance {
    nfcs_cache_core::cache_tier_conformance!(
        optional
            |clock: nfcs_cache_core::Clock| async move {
                let cluster = nfcs_cache_redis::test_server::RedisCluster::start_or_skip(
                    "cluster conformance",
                )?;
                // The suite's driven clock: the tier reads expiry from it.
                let cache = nfcs_cache_redis::RedisCache::connect(
                    nfcs_cache_redis::RedisConfig::cluster(cluster.urls()).clock(clock),
                )
                .await
                .expect("connects");
                Some(nfcs_cache_core::conformance::Guarded::new(cache, cluster))
            }
    );
}
