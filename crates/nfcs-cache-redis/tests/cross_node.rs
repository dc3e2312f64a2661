//! Two caches on one server: each hears the other's changes, never its own.

use std::time::{Duration, Instant};

use nfcs_cache_core::Pattern;
use nfcs_cache_redis::test_server::RedisServer;
use nfcs_cache_redis::{Invalidation, RedisCache, RedisConfig};
use tokio::sync::broadcast::Receiver;

async fn next(receiver: &mut Receiver<Invalidation>) -> Invalidation {
    tokio::time::timeout(Duration::from_secs(2), receiver.recv())
        .await
        .expect("an invalidation arrives")
        .expect("the channel is open")
}

async fn connected_pair(server: &RedisServer) -> (RedisCache, RedisCache) {
    let a = RedisCache::connect(RedisConfig::new(server.url()))
        .await
        .unwrap();
    let b = RedisCache::connect(RedisConfig::new(server.url()))
        .await
        .unwrap();
    // Subscriptions are set up in the background; give them a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_deletes_patterns_and_clears_reach_the_other_node() {
    let Some(server) = RedisServer::start_or_skip("cross-node invalidation") else {
        return;
    };
    let (a, b) = connected_pair(&server).await;
    let mut heard_by_b = b.invalidations();
    let mut heard_by_a = a.invalidations();
    a.set("cgl_64", b"v1", None).await.unwrap();
    assert_eq!(
        next(&mut heard_by_b).await,
        Invalidation::Keys(vec!["cgl_64".into()])
    );
    a.delete("cgl_64").await.unwrap();
    assert_eq!(
        next(&mut heard_by_b).await,
        Invalidation::Keys(vec!["cgl_64".into()])
    );
    a.invalidate_pattern(&Pattern::new("policy_*").unwrap())
        .await
        .unwrap();
    assert_eq!(
        next(&mut heard_by_b).await,
        Invalidation::Pattern("policy_*".into())
    );
    a.clear().await.unwrap();
    assert_eq!(next(&mut heard_by_b).await, Invalidation::Clear);
    // B's own write reaches A, and A heard none of its own.
    b.set("from_b", b"x", None).await.unwrap();
    assert_eq!(
        next(&mut heard_by_a).await,
        Invalidation::Keys(vec!["from_b".into()])
    );
    assert!(heard_by_a.try_recv().is_err());
}

/// The delay from one node's write returning to the other node hearing of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidations_arrive_within_milliseconds() {
    let Some(server) = RedisServer::start_or_skip("invalidation latency") else {
        return;
    };
    let (a, b) = connected_pair(&server).await;
    let mut heard_by_b = b.invalidations();
    let mut delays = Vec::new();
    for round in 0..200 {
        let key = format!("key{round}");
        a.set(&key, b"v", None).await.unwrap();
        let written = Instant::now();
        loop {
            if let Invalidation::Keys(keys) = next(&mut heard_by_b).await
                && keys.contains(&key)
            {
                break;
            }
        }
        delays.push(written.elapsed());
    }
    delays.sort();
    let p50 = delays[delays.len() / 2];
    let p99 = delays[delays.len() * 99 / 100];
    println!(
        "invalidation delay over 200 writes: p50 {p50:?}, p99 {p99:?}, max {:?}",
        delays[delays.len() - 1]
    );
    assert!(p99 < Duration::from_millis(100), "p99 {p99:?}");
}
