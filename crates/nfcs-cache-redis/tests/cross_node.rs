//! Two caches on one server: each hears the other's changes, never its own.
//!
//! How fast a change reaches the other node is a benchmark figure (benches/redis_tier.rs,
//! "propagation"), not something a test on a loaded machine can assert.

use nfcs_cache_core::Pattern;
use nfcs_cache_redis::test_server::RedisServer;
use nfcs_cache_redis::{Invalidation, RedisCache, RedisConfig};
use tokio::sync::broadcast::Receiver;

use crate::support::{DEADLINE, wait_until};

/// The next invalidation; panics if none arrives before the (generous) deadline.
async fn next(receiver: &mut Receiver<Invalidation>) -> Invalidation {
    tokio::time::timeout(DEADLINE, receiver.recv())
        .await
        .expect("an invalidation arrives")
        .expect("the channel is open")
}

/// Two caches whose subscriptions are both established, so that every change either makes
/// from now on reaches the other.
async fn connected_pair(server: &RedisServer) -> (RedisCache, RedisCache) {
    let a = RedisCache::connect(RedisConfig::new(server.url()))
        .await
        .unwrap();
    let b = RedisCache::connect(RedisConfig::new(server.url()))
        .await
        .unwrap();
    // The subscriptions are made in the background after connecting.
    wait_until("both nodes are subscribed", || {
        a.is_subscribed() && b.is_subscribed()
    })
    .await;
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
    // B's own write reaches A. A's subscription delivers messages in the order the server
    // published them, and A's own were published before B's write started, so by the time
    // B's arrives A has already seen (and skipped) all of its own.
    b.set("from_b", b"x", None).await.unwrap();
    assert_eq!(
        next(&mut heard_by_a).await,
        Invalidation::Keys(vec!["from_b".into()])
    );
    assert!(heard_by_a.try_recv().is_err(), "A heard one of its own");
}

/// Every one of many writes in a row reaches the other node (announcements are batched, so a
/// message may carry several keys).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_reaches_the_other_node() {
    let Some(server) = RedisServer::start_or_skip("invalidation delivery") else {
        return;
    };
    let (a, b) = connected_pair(&server).await;
    let mut heard_by_b = b.invalidations();
    for round in 0..200 {
        let key = format!("key{round}");
        a.set(&key, b"v", None).await.unwrap();
        loop {
            if let Invalidation::Keys(keys) = next(&mut heard_by_b).await
                && keys.contains(&key)
            {
                break;
            }
        }
    }
}
