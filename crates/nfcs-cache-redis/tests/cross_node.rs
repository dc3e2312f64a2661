//! Two caches on one server: each hears the other's changes, never its own, and is told to
//! resynchronise when the other could not announce some of them.
//!
//! How fast a change reaches the other node is a benchmark figure (benches/redis_tier.rs,
//! "propagation"), not something a test on a loaded machine can assert.

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use nfcs_cache_core::Pattern;
use nfcs_cache_redis::test_server::RedisServer;
use nfcs_cache_redis::{ANNOUNCEMENTS_DROPPED, Invalidation, RedisCache, RedisConfig};
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

/// The counter of dropped announcements as the recorder sees it.
fn dropped_in(snapshotter: &Snapshotter, cache: &str) -> Option<u64> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find_map(|(key, _, _, value)| {
            let labelled = key
                .key()
                .labels()
                .any(|label| label.key() == "cache" && label.value() == cache);
            match value {
                DebugValue::Counter(count)
                    if key.key().name() == ANNOUNCEMENTS_DROPPED && labelled =>
                {
                    Some(count)
                }
                _ => None,
            }
        })
}

/// A node whose announcements do not fit in its queue neither waits nor stays silent: the
/// writes complete, what was dropped is counted, and the other node is told to resynchronise
/// (after which it hears the writes that follow, as before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_announcement_queue_drops_counts_and_resyncs_the_other_nodes() {
    let Some(server) = RedisServer::start_or_skip("announcement overflow") else {
        return;
    };
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let a = metrics::with_local_recorder(&recorder, || {
        RedisCache::connect_lazy(
            RedisConfig::new(server.url())
                .announce_capacity(4)
                .instance("announce-overflow"),
        )
    })
    .unwrap();
    let b = RedisCache::connect(RedisConfig::new(server.url()))
        .await
        .unwrap();
    wait_until("both nodes are subscribed", || {
        a.is_subscribed() && b.is_subscribed()
    })
    .await;
    let mut heard_by_b = b.invalidations();

    // A's announcer stops with nothing in hand: its queue of four fills with the first four
    // writes, and the six after them find it full.
    let hold = a.hold_announcements().await;
    for round in 0..10 {
        tokio::time::timeout(DEADLINE, a.set(&format!("k{round}"), b"v", None))
            .await
            .expect("a write never waits for room in the queue")
            .unwrap();
    }
    assert_eq!(a.announcements_dropped(), 6);
    assert_eq!(dropped_in(&snapshotter, "announce-overflow"), Some(6));
    assert!(heard_by_b.try_recv().is_err(), "nothing was published");

    drop(hold);
    // One resync covers the six dropped keys and the four queued ones (all written before it).
    assert_eq!(next(&mut heard_by_b).await, Invalidation::Resync);
    a.set("after", b"v", None).await.unwrap();
    assert_eq!(
        next(&mut heard_by_b).await,
        Invalidation::Keys(vec!["after".into()]),
        "the next message B hears is A's next write"
    );
    assert_eq!(a.announcements_dropped(), 6);
}

/// A publication Redis refuses (here: the ACL forbids PUBLISH, while writes still succeed) is
/// counted as dropped and retried as a resync until Redis takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_publication_is_counted_and_followed_by_a_resync() {
    let Some(server) = RedisServer::start_or_skip("refused publication") else {
        return;
    };
    let (a, b) = connected_pair(&server).await;
    let mut heard_by_b = b.invalidations();
    let client = redis::Client::open(server.url()).unwrap();
    let admin = client.get_multiplexed_async_connection().await.unwrap();
    let acl = |rule: &'static str| {
        let mut admin = admin.clone();
        async move {
            redis::cmd("ACL")
                .arg("SETUSER")
                .arg("default")
                .arg(rule)
                .query_async::<()>(&mut admin)
                .await
                .unwrap();
        }
    };
    acl("-publish").await;
    a.set("cgl_64", b"v1", None).await.unwrap();
    wait_until("the refused publication is counted", || {
        a.announcements_dropped() == 1
    })
    .await;
    a.invalidate_pattern(&Pattern::new("policy_*").unwrap())
        .await
        .unwrap();
    assert_eq!(
        a.announcements_dropped(),
        2,
        "a pattern whose publication fails counts too"
    );
    assert!(heard_by_b.try_recv().is_err(), "nothing was published");
    acl("+publish").await;
    assert_eq!(next(&mut heard_by_b).await, Invalidation::Resync);
    // Failed resyncs are retried, not counted again.
    assert_eq!(a.announcements_dropped(), 2);
}
