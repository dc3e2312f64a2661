//! The manager across memory, disk and a real redis-server.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nfcs_performance::cache_redis::test_server::{RedisServer, free_port, redis_or_skip};
use nfcs_performance::prelude::*;

async fn manager(redis_url: &str, disk: Option<&Path>) -> NFCSCacheManager {
    manager_with(redis_url, disk, "").await
}

/// [`manager`] with more `[redis]` settings (TOML lines).
async fn manager_with(redis_url: &str, disk: Option<&Path>, redis: &str) -> NFCSCacheManager {
    let disk = match disk {
        Some(directory) => format!(
            "[disk]\ndirectory = \"{}\"\nmax_size = \"64MiB\"",
            directory.display()
        ),
        None => "[disk]\nenabled = false".to_owned(),
    };
    let config = CacheConfig::from_toml_str(&format!(
        "[memory]\nmax_size = \"16MiB\"\n{disk}\n[redis]\nurl = \"{redis_url}\"\nmax_connections = 4\n\
         command_timeout_ms = 200\n{redis}\n[semantic]\nenabled = false\n[cache_warming]\nenabled = false"
    ))
    .unwrap();
    NFCSCacheManager::from_config(config).await.unwrap()
}

async fn until(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn redis_state(cache: &NFCSCacheManager) -> TierState {
    cache
        .tier_status()
        .into_iter()
        .find(|status| status.name == "redis")
        .map(|status| status.state)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_flow_through_three_tiers_and_are_promoted() {
    let Some(server) = RedisServer::start_or_skip("three tiers") else {
        return;
    };
    let disk = tempfile::tempdir().unwrap();
    let cache = manager(&server.url(), Some(disk.path())).await;
    until("redis to connect", async || {
        redis_state(&cache) == TierState::Running
    })
    .await;
    cache
        .set("cgl_64", &vec![1.0_f64; 64], Some(Duration::from_secs(120)))
        .await
        .unwrap();
    // Another node (a fresh manager with its own memory and disk) finds it in Redis.
    let other_disk = tempfile::tempdir().unwrap();
    let other = manager(&server.url(), Some(other_disk.path())).await;
    until("redis to connect", async || {
        redis_state(&other) == TierState::Running
    })
    .await;
    let field: Vec<f64> = other.get("cgl_64").await.unwrap().unwrap();
    assert_eq!(field.len(), 64);
    let promoted = other
        .memory()
        .unwrap()
        .get_entry("cgl_64")
        .unwrap()
        .expect("promoted into memory");
    assert!(promoted.ttl.unwrap() <= Duration::from_secs(120));
    assert!(
        other
            .get_entry_in("cgl_64", CacheType::Disk)
            .await
            .unwrap()
            .is_some(),
        "and into disk"
    );
    let stats = other.stats();
    assert_eq!(
        stats
            .tiers
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>(),
        ["memory", "disk", "redis"]
    );
    assert_eq!(stats.tiers[2].1.hits, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_type_reads_and_writes_one_tier() {
    let Some(server) = RedisServer::start_or_skip("cache_type") else {
        return;
    };
    let disk = tempfile::tempdir().unwrap();
    let cache = manager(&server.url(), Some(disk.path())).await;
    until("redis to connect", async || {
        redis_state(&cache) == TierState::Running
    })
    .await;
    cache
        .set_in("only_redis", &1_u8, None, CacheType::Redis)
        .await
        .unwrap();
    cache
        .set_in("only_memory", &2_u8, None, CacheType::Memory)
        .await
        .unwrap();
    cache
        .set_in("only_disk", &3_u8, None, CacheType::Disk)
        .await
        .unwrap();
    assert_eq!(
        cache
            .get_in::<u8>("only_redis", CacheType::Memory)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        cache
            .get_in::<u8>("only_redis", CacheType::Redis)
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        cache
            .get_in::<u8>("only_memory", CacheType::Redis)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        cache
            .get_in::<u8>("only_disk", CacheType::Disk)
            .await
            .unwrap(),
        Some(3)
    );
    assert_eq!(
        cache
            .get_in::<u8>("only_disk", CacheType::Memory)
            .await
            .unwrap(),
        None
    );
    // A single-tier read does not promote; an automatic one does.
    assert!(!cache.memory().unwrap().contains_key("only_redis"));
    assert_eq!(cache.get::<u8>("only_redis").await.unwrap(), Some(1));
    assert!(cache.memory().unwrap().contains_key("only_redis"));
}

/// One node writes, the other node's local copy goes; the delay is measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_nodes_write_drops_the_local_copy_within_milliseconds() {
    let Some(server) = RedisServer::start_or_skip("cross-node coherence") else {
        return;
    };
    let (disk_a, disk_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = manager(&server.url(), Some(disk_a.path())).await;
    let b = manager(&server.url(), Some(disk_b.path())).await;
    until("both to connect", async || {
        redis_state(&a) == TierState::Running && redis_state(&b) == TierState::Running
    })
    .await;
    until("both to subscribe to announcements", async || {
        a.redis().unwrap().is_subscribed() && b.redis().unwrap().is_subscribed()
    })
    .await;
    let mut delays = Vec::new();
    for round in 0..100_u32 {
        let key = format!("policy_{round}");
        let heard = b.stats().remote_invalidations;
        a.set(&key, &round, None).await.unwrap();
        // B first hears of the write (a read racing with the announcement is not promoted:
        // it could predate the write), then reads it through Redis and keeps a copy.
        until("B to hear of the write", async || {
            b.stats().remote_invalidations > heard
        })
        .await;
        assert_eq!(
            b.get::<u32>(&key).await.unwrap(),
            Some(round),
            "read through Redis"
        );
        assert!(
            b.memory().unwrap().contains_key(&key),
            "promoted into B's memory"
        );
        a.set(&key, &(round + 1000), None).await.unwrap();
        let written = Instant::now();
        // Polled without sleeping (tokio's timers tick in milliseconds): the delay is the point.
        while b.memory().unwrap().contains_key(&key) {
            assert!(
                written.elapsed() < Duration::from_secs(5),
                "B kept its stale copy"
            );
            tokio::task::yield_now().await;
        }
        delays.push(written.elapsed());
        assert_eq!(
            b.get_in::<u32>(&key, CacheType::Disk).await.unwrap(),
            None,
            "dropped from B's disk before its memory"
        );
        assert_eq!(
            b.get::<u32>(&key).await.unwrap(),
            Some(round + 1000),
            "B sees the new value"
        );
    }
    // Writes in quick succession are announced together, and B drops them from its disk
    // tier as one batch.
    for index in 0..200_u32 {
        a.set(&format!("batch_{index}"), &index, None)
            .await
            .unwrap();
    }
    for index in 0..200_u32 {
        assert_eq!(
            b.get::<u32>(&format!("batch_{index}")).await.unwrap(),
            Some(index)
        );
    }
    for index in 0..200_u32 {
        a.set(&format!("batch_{index}"), &(index + 1), None)
            .await
            .unwrap();
    }
    until("B to drop the 200 keys from memory", async || {
        (0..200_u32).all(|index| !b.memory().unwrap().contains_key(&format!("batch_{index}")))
    })
    .await;
    for index in 0..200_u32 {
        assert_eq!(
            b.get_in::<u32>(&format!("batch_{index}"), CacheType::Disk)
                .await
                .unwrap(),
            None,
            "batch_{index} dropped from B's disk"
        );
    }
    // Deletions and pattern invalidations travel too, to memory and disk.
    a.set("cgl_1", &1_u8, None).await.unwrap();
    assert_eq!(b.get::<u8>("cgl_1").await.unwrap(), Some(1));
    a.invalidate_pattern("cgl_*").await.unwrap();
    until("B to drop cgl_1", async || {
        b.get::<u8>("cgl_1").await.unwrap().is_none()
    })
    .await;
    assert_eq!(
        b.get_in::<u8>("cgl_1", CacheType::Disk).await.unwrap(),
        None
    );
    delays.sort();
    println!(
        "coherence delay over 100 writes: p50 {:?}, p99 {:?}, max {:?}",
        delays[50], delays[98], delays[99]
    );
    assert!(b.stats().remote_invalidations >= 100);
}

/// A node whose queue of announcements overflows drops nothing silently: the write whose
/// announcement did not fit is followed by a resync, and the other node drops its local copies
/// (memory and disk), so it reads the new value from Redis rather than its stale copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overflowing_announcement_queue_makes_the_other_node_drop_its_copies() {
    let Some(server) = RedisServer::start_or_skip("announcement overflow") else {
        return;
    };
    let (disk_a, disk_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = manager_with(&server.url(), Some(disk_a.path()), "announce_capacity = 2").await;
    let b = manager(&server.url(), Some(disk_b.path())).await;
    until("both to subscribe to announcements", async || {
        redis_state(&a) == TierState::Running
            && redis_state(&b) == TierState::Running
            && a.redis().unwrap().is_subscribed()
            && b.redis().unwrap().is_subscribed()
    })
    .await;
    let heard = b.stats().remote_invalidations;
    a.set("policy_7", &1_u32, None).await.unwrap();
    until("B to hear of the first write", async || {
        b.stats().remote_invalidations > heard
    })
    .await;
    assert_eq!(b.get::<u32>("policy_7").await.unwrap(), Some(1));
    assert!(
        b.memory().unwrap().contains_key("policy_7"),
        "B keeps a copy"
    );
    assert_eq!(
        b.get_in::<u32>("policy_7", CacheType::Disk).await.unwrap(),
        Some(1),
        "on its disk too"
    );

    // A's announcer stops: two writes fill its queue, and the third, the one that matters,
    // finds it full.
    let hold = a.redis().unwrap().hold_announcements().await;
    a.set("filler_0", &0_u32, None).await.unwrap();
    a.set("filler_1", &0_u32, None).await.unwrap();
    a.set("policy_7", &2_u32, None).await.unwrap();
    assert_eq!(a.redis().unwrap().announcements_dropped(), 1);
    assert_eq!(
        b.get::<u32>("policy_7").await.unwrap(),
        Some(1),
        "B has heard nothing yet: its copy is stale"
    );
    drop(hold);
    until("B to drop its copy", async || {
        !b.memory().unwrap().contains_key("policy_7")
    })
    .await;
    assert_eq!(
        b.get_in::<u32>("policy_7", CacheType::Disk).await.unwrap(),
        None,
        "the disk copy went too"
    );
    assert_eq!(
        b.get::<u32>("policy_7").await.unwrap(),
        Some(2),
        "B reads the new value"
    );
}

/// Redis killed under a mixed load: every call returns in time, memory and disk keep serving,
/// errors are counted, and Redis comes back by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_under_load_is_served_around() {
    let Some(mut server) = RedisServer::start_or_skip("manager outage") else {
        return;
    };
    let disk = tempfile::tempdir().unwrap();
    let cache = manager(&server.url(), Some(disk.path())).await;
    until("redis to connect", async || {
        redis_state(&cache) == TierState::Running
    })
    .await;
    for index in 0..200 {
        cache
            .set(&format!("warm{index}"), &index, None)
            .await
            .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    // Misses of warm entries are counted only while Redis is down: once it is back, the node
    // re-subscribes and, having possibly missed invalidations, clears its local tiers.
    let outage = Arc::new(AtomicBool::new(false));
    let slowest = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let warm_misses = Arc::new(AtomicU64::new(0));
    // Calls made so far: the test moves on after a number of calls, not after a duration.
    let calls = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for task in 0..48_u64 {
        let cache = cache.clone();
        let (stop, outage, slowest, failures, warm_misses, calls) = (
            Arc::clone(&stop),
            Arc::clone(&outage),
            Arc::clone(&slowest),
            Arc::clone(&failures),
            Arc::clone(&warm_misses),
            Arc::clone(&calls),
        );
        tasks.push(tokio::spawn(async move {
            let mut round = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let started = Instant::now();
                if round.is_multiple_of(4) {
                    if cache
                        .set(&format!("new{task}_{round}"), &round, None)
                        .await
                        .is_err()
                    {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    match cache
                        .get::<i32>(&format!("warm{}", (task * 7 + round) % 200))
                        .await
                    {
                        Ok(Some(_)) => {}
                        Ok(None) if outage.load(Ordering::Relaxed) => {
                            warm_misses.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(None) => {}
                        Err(_) => {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                slowest.fetch_max(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                calls.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        }));
    }
    let more_calls = async |what: &str| {
        let target = calls.load(Ordering::Relaxed) + 2_000;
        until(what, async || calls.load(Ordering::Relaxed) >= target).await;
    };
    more_calls("load before the outage").await;
    outage.store(true, Ordering::Relaxed);
    server.kill();
    until("the tier to report the outage", async || {
        matches!(redis_state(&cache), TierState::Unavailable { .. })
    })
    .await;
    more_calls("load during the outage").await;
    outage.store(false, Ordering::Relaxed);
    server.restart();
    until("redis to come back", async || {
        redis_state(&cache) == TierState::Running
    })
    .await;
    more_calls("load after the outage").await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("no task panicked");
    }
    let slowest = Duration::from_micros(slowest.load(Ordering::Relaxed));
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "no call failed: memory and disk served"
    );
    assert_eq!(
        warm_misses.load(Ordering::Relaxed),
        0,
        "warm entries were served locally throughout the outage"
    );
    // Not a latency figure (those are in the benchmarks): a bound far above the 200 ms
    // command timeout that only a hung call would reach.
    assert!(
        slowest < Duration::from_secs(10),
        "a call hung for {slowest:?}"
    );
    let stats = cache.stats();
    assert!(
        stats.tier_errors > 0,
        "Redis errors were counted: {stats:?}"
    );
    // Redis is back and takes writes again.
    cache.set("after", &1_u8, None).await.unwrap();
    assert_eq!(
        cache.get_in::<u8>("after", CacheType::Redis).await.unwrap(),
        Some(1)
    );
    println!(
        "outage: slowest call {slowest:?}, {} tier errors counted",
        stats.tier_errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_down_at_start_up_is_attached_when_it_comes_up() {
    if !redis_or_skip("late redis") {
        return;
    }
    let port = free_port();
    let cache = manager(&format!("redis://127.0.0.1:{port}"), None).await;
    match redis_state(&cache) {
        TierState::Unavailable { reason } => assert!(
            reason.contains("not connected") || reason.contains("connecting"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    cache.set("k", &1_u8, None).await.unwrap();
    assert_eq!(
        cache.get::<u8>("k").await.unwrap(),
        Some(1),
        "memory serves meanwhile"
    );
    let _server = RedisServer::start_on(port);
    until("redis to attach", async || {
        redis_state(&cache) == TierState::Running
    })
    .await;
    cache.set("k2", &2_u8, None).await.unwrap();
    assert_eq!(
        cache.get_in::<u8>("k2", CacheType::Redis).await.unwrap(),
        Some(2)
    );
}

/// The Redis database named in the URL is the one written (the facade used to write to 0),
/// and one the server does not have is not reported as running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_in_the_url_is_the_one_written() {
    let Some(server) = RedisServer::start_with_or_skip("url database", &["--databases", "4"])
    else {
        return;
    };
    let cache = manager(&server.url_with_db(3), None).await;
    until("redis to connect", async || {
        redis_state(&cache) == TierState::Running
    })
    .await;
    cache.set("in_three", &3_u8, None).await.unwrap();
    let reader = |db: u32| {
        let url = server.url_with_db(db);
        async move {
            RedisCache::connect(RedisConfig::new(url).max_connections(1))
                .await
                .unwrap()
        }
    };
    let (three, zero) = (reader(3).await, reader(0).await);
    assert!(
        three.get("in_three").await.unwrap().is_some(),
        "database 3 holds it"
    );
    assert_eq!(
        zero.get("in_three").await.unwrap(),
        None,
        "database 0 does not"
    );

    let missing = manager(&server.url_with_db(7), None).await;
    until("the tier to say why it is not running", async || {
        matches!(redis_state(&missing), TierState::Unavailable { reason } if reason.contains('7'))
    })
    .await;
    missing.set("k", &1_u8, None).await.unwrap();
    assert_eq!(
        missing.get::<u8>("k").await.unwrap(),
        Some(1),
        "memory serves meanwhile"
    );
}
