//! Killing redis-server under load: no panic, no hang, counted errors, and recovery.
//!
//! Each step waits for the state it needs (calls succeeding, the breaker open, the tier back)
//! instead of sleeping for a guessed time, and the breaker's cool-down runs on a driven clock:
//! while it is open, a call is refused without touching the network, which the test checks
//! directly rather than through a wall-clock bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use nfcs_cache_core::{CacheError, CacheTier, ManualClock, TierHealth};
use nfcs_cache_redis::test_server::RedisServer;
use nfcs_cache_redis::{RedisCache, RedisConfig};

use crate::support::{DEADLINE, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_fails_fast_and_the_tier_comes_back_by_itself() {
    let Some(mut server) = RedisServer::start_or_skip("outage") else {
        return;
    };
    let manual = ManualClock::new();
    let cooldown = Duration::from_millis(300);
    let config = RedisConfig::new(server.url())
        .command_timeout(Duration::from_millis(200))
        .breaker(5, cooldown)
        .clock(manual.clock());
    let cache = RedisCache::connect(config).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
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
    let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    wait_until("1000 calls succeeded before the outage", || {
        count(&successes) >= 1000
    })
    .await;
    assert_eq!(count(&failures), 0, "no failures before the outage");

    server.kill();
    // The calls in flight fail (each within its command timeout, enforced by redis-rs), and
    // after five consecutive failures the breaker opens.
    wait_until("the breaker opened and the failures were counted", || {
        cache.breaker_openings() >= 1 && count(&failures) > 0
    })
    .await;
    assert!(
        matches!(cache.health(), TierHealth::Unavailable { .. }),
        "{:?}",
        cache.health()
    );
    // The clock has not moved, so the cool-down has not passed: a call is refused on its
    // first poll, without waiting on the network at all.
    let refused = cache
        .get("k1")
        .now_or_never()
        .expect("a call while the breaker is open does not wait")
        .unwrap_err();
    assert!(
        matches!(refused, CacheError::Unavailable { .. }),
        "{refused}"
    );

    let before_restart = count(&successes);
    server.restart();
    // Each look moves the clock past the cool-down, so the breaker lets one probe through; a
    // probe that comes before the connection is re-made fails and reopens the breaker, and the
    // next look lets another through. The wait is for the real reconnection.
    wait_until("the tier came back and served 1000 calls", || {
        manual.advance(cooldown);
        count(&successes) >= before_restart + 1000
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        tokio::time::timeout(DEADLINE, task)
            .await
            .expect("no call hangs")
            .expect("no task panicked");
    }
    assert_eq!(cache.health(), TierHealth::Healthy);
    assert!(cache.stats().errors > 0, "errors are counted");
    println!(
        "outage: {} calls failed, slowest call {:?}, breaker opened {} times",
        count(&failures),
        Duration::from_micros(count(&slowest)),
        cache.breaker_openings()
    );
}
