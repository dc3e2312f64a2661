//! Cache warming (`popular_queries`): the hot set saved at shutdown, loaded back into memory
//! by the next start, and never bringing back what was deleted, invalidated or has expired.

use std::path::Path;
use std::time::Duration;

use nfcs_performance::cache_core::ManualClock;
use nfcs_performance::prelude::*;
use nfcs_performance::{WarmStop, WarmingState, hot_set_file_name};

async fn node(
    name: &str,
    directory: &Path,
    clock: &ManualClock,
    warm_on_startup: bool,
) -> NFCSCacheManager {
    let config = CacheConfig::from_toml_str(&format!(
        "name = \"{name}\"\n[memory]\nmax_size = \"16MiB\"\n[disk]\ndirectory = \"{}\"\nmax_size = \"64MiB\"\n\
         [redis]\nenabled = false\n[semantic]\nenabled = false\n\
         [cache_warming]\nstrategies = [\"popular_queries\"]\nsample_every = 1\nmax_keys = 50\n\
         warm_on_startup = {warm_on_startup}",
        directory.display()
    ))
    .unwrap();
    NFCSCacheManager::from_config_with_clock(config, clock.clock())
        .await
        .unwrap()
}

fn in_memory(cache: &NFCSCacheManager, key: &str) -> bool {
    cache.memory().unwrap().contains_key(key)
}

/// Writes 300 keys, reads `key_0` .. `key_49` ten times each (the hot ones), then deletes,
/// invalidates and expires some of the hot ones, and shuts down (which saves the hot set).
async fn first_run(name: &str, directory: &Path, clock: &ManualClock) {
    let cache = node(name, directory, clock, true).await;
    assert_eq!(cache.name(), name);
    assert_eq!(
        cache.warming().unwrap().finished().await.unwrap().stopped,
        WarmStop::NoHotSet,
        "nothing saved yet"
    );
    for index in 0..300 {
        let ttl = (index == 5).then(|| Duration::from_secs(10));
        cache
            .set(&format!("key_{index}"), &format!("value {index}"), ttl)
            .await
            .unwrap();
    }
    for _ in 0..10 {
        for index in 0..50 {
            let _: Option<String> = cache.get(&format!("key_{index}")).await.unwrap();
        }
    }
    let hot: Vec<String> = cache
        .warming()
        .unwrap()
        .hot_keys(50)
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    for index in 0..50 {
        assert!(
            hot.contains(&format!("key_{index}")),
            "key_{index} is hot: {hot:?}"
        );
    }
    assert!(cache.delete("key_3").await.unwrap());
    assert_eq!(
        cache.invalidate_pattern("key_4?").await.unwrap(),
        20,
        "memory and disk"
    );
    clock.advance(Duration::from_secs(11)); // key_5 expires
    cache.flush().await.unwrap();
    assert!(directory.join(hot_set_file_name(name)).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_warms_the_hot_keys_and_never_brings_back_the_dead() {
    let directory = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    first_run("a_restart_warms_the_", directory.path(), &clock).await;

    let cache = node("a_restart_warms_the_", directory.path(), &clock, true).await;
    let report = cache.warming().unwrap().finished().await.unwrap();
    assert_eq!(report.source, "disk");
    assert_eq!(report.stopped, WarmStop::Completed);
    assert_eq!(report.listed, 50);
    // key_3 deleted, key_40 .. key_49 invalidated, key_5 expired: 12 the tiers no longer hold.
    assert_eq!(report.missing, 12, "{report:?}");
    assert_eq!(report.loaded, 38, "{report:?}");
    for index in 0..50 {
        let dead = index == 3 || index == 5 || (40..50).contains(&index);
        assert_eq!(
            in_memory(&cache, &format!("key_{index}")),
            !dead,
            "key_{index}"
        );
    }
    assert!(!in_memory(&cache, "key_100"), "cold keys are not warmed");
    let value: Option<String> = cache.get("key_7").await.unwrap();
    assert_eq!(value.as_deref(), Some("value 7"));
    assert_eq!(cache.get::<String>("key_3").await.unwrap(), None);
    assert_eq!(cache.get::<String>("key_5").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_warm_on_startup_memory_starts_cold() {
    let directory = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    first_run("without_warm_on_star", directory.path(), &clock).await;
    let cache = node("without_warm_on_star", directory.path(), &clock, false).await;
    assert_eq!(cache.warming().unwrap().state(), WarmingState::Idle);
    assert_eq!(cache.warming().unwrap().finished().await, None);
    assert!(cache.memory().unwrap().is_empty());
    // Asked explicitly, it warms the same way.
    let report = cache.warm_from_hot_set().await;
    assert_eq!(report.loaded, 38);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warming_is_bounded_by_bytes_and_leaves_newer_writes_alone() {
    let directory = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    first_run("warming_is_bounded_b", directory.path(), &clock).await;
    let cache = node("warming_is_bounded_b", directory.path(), &clock, false).await;
    // A write since start-up is newer than what the disk holds: warming must not replace it.
    cache
        .set("key_8", &"written after the restart", None)
        .await
        .unwrap();
    let keys: Vec<String> = (0..50).map(|index| format!("key_{index}")).collect();
    let warmed = cache.warm_keys(keys).await;
    assert_eq!(warmed.already_in_memory, 1);
    assert_eq!(
        cache.get::<String>("key_8").await.unwrap().as_deref(),
        Some("written after the restart")
    );

    let directory = tempfile::tempdir().unwrap();
    let config = CacheConfig::from_toml_str(&format!(
        "[memory]\nmax_size = \"16MiB\"\n[disk]\ndirectory = \"{}\"\n[redis]\nenabled = false\n\
         [semantic]\nenabled = false\n[cache_warming]\nstrategies = [\"popular_queries\"]\n\
         warm_on_startup = false\nwarm_max_bytes = \"10KiB\"\nwarm_concurrency = 1",
        directory.path().display()
    ))
    .unwrap();
    let cache = NFCSCacheManager::from_config(config).await.unwrap();
    let keys: Vec<String> = (0..20).map(|index| format!("big_{index}")).collect();
    // Values that do not compress (the codec compresses what does).
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for key in &keys {
        let value: Vec<u8> = (0..2_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        cache.set(key, &value, None).await.unwrap();
    }
    cache.memory().unwrap().clear();
    let report = cache.warm_keys(keys).await;
    assert_eq!(report.stopped, WarmStop::ByteLimit);
    assert!(report.loaded < 20 && report.bytes >= 10 << 10, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_hot_set_is_ignored_and_the_node_serves() {
    let directory = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    first_run("a_damaged_hot_set_is", directory.path(), &clock).await;
    std::fs::write(
        directory
            .path()
            .join(hot_set_file_name("a_damaged_hot_set_is")),
        b"not a hot set",
    )
    .unwrap();
    let cache = node("a_damaged_hot_set_is", directory.path(), &clock, true).await;
    let report = cache.warming().unwrap().finished().await.unwrap();
    assert_eq!(report.stopped, WarmStop::NoHotSet);
    assert_eq!(
        cache.get::<String>("key_7").await.unwrap().as_deref(),
        Some("value 7")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_warming_settings_are_refused_by_field() {
    for (setting, field) in [
        ("max_keys = 0", "cache_warming.max_keys"),
        ("sample_every = 0", "cache_warming.sample_every"),
        ("warm_max_bytes = 0", "cache_warming.warm_max_bytes"),
        ("warm_concurrency = 5000", "cache_warming.warm_concurrency"),
    ] {
        let error = CacheConfig::from_toml_str(&format!("[cache_warming]\n{setting}")).unwrap_err();
        assert!(error.to_string().contains(field), "{setting}: {error}");
    }
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_sharing_redis_share_the_hot_set() {
    use nfcs_performance::cache_redis::test_server::RedisServer;
    let Some(server) = RedisServer::start_or_skip("the shared hot set") else {
        return;
    };
    // Memory and Redis only: the hot set has no disk directory to go to. Connected before
    // the manager is built, so that warming on start-up finds Redis answering.
    let node = async |warm: bool| {
        let redis = nfcs_performance::cache_redis::RedisCache::connect(
            nfcs_performance::cache_redis::RedisConfig::new(server.url()),
        )
        .await
        .unwrap();
        NFCSCacheManager::builder()
            .name("shared-hot")
            .memory(MemoryCache::new(16 << 20).unwrap())
            .redis(redis)
            .warming(
                nfcs_performance::WarmingConfig::default()
                    .sample_every(1)
                    .max_keys(20)
                    .persist_interval(None)
                    .warm_on_startup(warm),
            )
            .build()
    };
    {
        let first = node(false).await;
        for index in 0_u32..20 {
            first
                .set(&format!("shared_{index}"), &index, None)
                .await
                .unwrap();
            for _ in 0..3 {
                let _: Option<u32> = first.get(&format!("shared_{index}")).await.unwrap();
            }
        }
        assert_eq!(first.save_hot_set().await.unwrap(), 20);
    }
    let second = node(true).await;
    let report = second.warming().unwrap().finished().await.unwrap();
    assert_eq!(report.source, "redis");
    assert_eq!(report.loaded, 20, "{report:?}");
    assert!(second.memory().unwrap().contains_key("shared_7"));
}
