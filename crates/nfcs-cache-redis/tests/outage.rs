//! Killing redis-server under load: no panic, no hang, counted errors, and recovery.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nfcs_cache_core::{CacheTier, TierHealth};
use nfcs_cache_redis::test_server::RedisServer;
use nfcs_cache_redis::{RedisCache, RedisConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_fails_fast_and_the_tier_comes_back_by_itself() {
    let Some(mut server) = RedisServer::start_or_skip("outage") else {
        return;
    };
    let timeout = Duration::from_millis(200);
    let config = RedisConfig::new(server.url())
        .command_timeout(timeout)
        .breaker(5, Duration::from_millis(300));
    let cache = RedisCache::connect(config).await.unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slowest = Arc::new(AtomicU64::new(0));
    let (successes, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tasks = Vec::new();
    for task in 0..64 {
        let (cache, stop, slowest) = (cache.clone(), Arc::clone(&stop), Arc::clone(&slowest));
        let (successes, failures) = (Arc::clone(&successes), Arc::clone(&failures));
        tasks.push(tokio::spawn(async move {
            let mut round = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let key = format!("k{}", (task * 31 + round) % 500);
                let started = Instant::now();
                let result = if round.is_multiple_of(10) {
                    cache.set(&key, b"value", None).await.map(|_| ())
                } else {
                    cache.get(&key).await.map(|_| ())
                };
                slowest.fetch_max(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                match result {
                    Ok(()) => successes.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failures.fetch_add(1, Ordering::Relaxed),
                };
                tokio::task::yield_now().await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "no failures before the outage"
    );
    server.kill();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let failed_during_outage = failures.load(Ordering::Relaxed);
    assert!(failed_during_outage > 0);
    assert!(
        matches!(cache.health(), TierHealth::Unavailable { .. }),
        "{:?}",
        cache.health()
    );
    assert!(cache.breaker_openings() >= 1);
    let before_restart = successes.load(Ordering::Relaxed);
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while successes.load(Ordering::Relaxed) < before_restart + 1000 {
        assert!(Instant::now() < deadline, "the tier did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("no task panicked");
    }
    let slowest = Duration::from_micros(slowest.load(Ordering::Relaxed));
    // Every call returned within its timeout (plus scheduling slack on a loaded machine).
    assert!(
        slowest < timeout + Duration::from_millis(300),
        "slowest call {slowest:?}"
    );
    assert_eq!(cache.health(), TierHealth::Healthy);
    assert!(cache.stats().errors > 0, "errors are counted");
    println!(
        "outage: {failed_during_outage} calls failed fast, slowest call {slowest:?}, breaker opened {} times",
        cache.breaker_openings()
    );
}
