//! Metrics a scrape can read: the tier's handles, resolved at construction with the recorder
//! in effect then, are current after every operation, without anyone calling `stats()`.

use std::collections::HashMap;
use std::time::Duration;

use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use nfcs_cache_core::ManualClock;
use nfcs_cache_core::telemetry::{ERRORS, EXPIRATIONS, HITS, INSERTS, MISSES, OPERATION_SECONDS};
use nfcs_cache_redis::test_server::RedisServer;
use nfcs_cache_redis::{RedisCache, RedisConfig};

use crate::support::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_latencies_are_current_without_stats() {
    let Some(server) = RedisServer::start_or_skip("metrics") else {
        return;
    };
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let manual = ManualClock::new();
    // The handles are resolved while the cache is built, so only the construction needs the
    // recorder; every later update reaches it through the handles.
    let cache = metrics::with_local_recorder(&recorder, || {
        RedisCache::connect_lazy(
            RedisConfig::new(server.url())
                .instance("redis-telemetry-test")
                .clock(manual.clock()),
        )
    })
    .unwrap();
    assert_eq!(cache.labels().cache, "redis-telemetry-test");
    assert_eq!(cache.labels().tier, "redis");
    wait_until("the lazy tier connected", || cache.is_connected()).await;

    cache.set("a", b"1", None).await.unwrap(); // insert
    assert!(cache.get("a").await.unwrap().is_some()); // hit
    assert!(cache.get("missing").await.unwrap().is_none()); // miss
    cache
        .set("short", b"2", Duration::from_secs(1))
        .await
        .unwrap(); // insert
    manual.advance(Duration::from_secs(1));
    assert!(cache.get("short").await.unwrap().is_none()); // expiration and miss
    cache
        .set_many(&[("b0", b"x"), ("b1", b"y"), ("b2", b"z")], None)
        .await
        .unwrap(); // three inserts
    let values = cache.get_many(&["a", "b0", "nope"]).await.unwrap(); // two hits, one miss
    assert_eq!(values.iter().filter(|value| value.is_some()).count(), 2);
    // A value under the prefix that is not ours: an error and a miss.
    let client = redis::Client::open(server.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("SET")
        .arg("nfcs:foreign")
        .arg("not framed")
        .query_async::<()>(&mut connection)
        .await
        .unwrap();
    assert!(cache.get("foreign").await.unwrap().is_none());
    assert!(cache.delete("a").await.unwrap());

    // Read the recorder first: nothing has called stats().
    let mut counters = HashMap::new();
    let mut timed = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let labels: HashMap<&str, &str> = key
            .key()
            .labels()
            .map(|label| (label.key(), label.value()))
            .collect();
        assert_eq!(
            labels.get("cache"),
            Some(&"redis-telemetry-test"),
            "{key:?}"
        );
        assert_eq!(labels.get("tier"), Some(&"redis"), "{key:?}");
        match (key.kind(), value) {
            (MetricKind::Counter, DebugValue::Counter(count)) => {
                counters.insert(key.key().name().to_owned(), count);
            }
            (MetricKind::Histogram, DebugValue::Histogram(samples))
                if key.key().name() == OPERATION_SECONDS =>
            {
                let operation = labels.get("operation").copied().unwrap_or("?").to_owned();
                timed.insert(operation, samples.len());
            }
            _ => {}
        }
    }
    let counter = |name: &str| counters.get(name).copied().unwrap_or(0);
    assert_eq!(counter(HITS), 3, "{counters:?}");
    assert_eq!(counter(MISSES), 4, "{counters:?}");
    assert_eq!(counter(INSERTS), 5, "{counters:?}");
    assert_eq!(counter(EXPIRATIONS), 1, "{counters:?}");
    assert_eq!(counter(ERRORS), 1, "{counters:?}");
    // Every call is timed once: five reads (get_many counts as one), three writes, a delete.
    assert_eq!(timed.get("get"), Some(&5), "{timed:?}");
    assert_eq!(timed.get("set"), Some(&3), "{timed:?}");
    assert_eq!(timed.get("delete"), Some(&1), "{timed:?}");

    // stats() is the same counts, exactly.
    let stats = cache.stats();
    assert_eq!(
        (
            stats.hits,
            stats.misses,
            stats.inserts,
            stats.expirations,
            stats.errors
        ),
        (3, 4, 5, 1, 1)
    );
}
