//! A driven clock governs what the tier returns, even while the server (whose `PX` expiry runs
//! in real time) still holds the entry: reads miss, removals do not count it, and the entry is
//! removed all the same.

use std::time::Duration;

use nfcs_cache_core::{ManualClock, Pattern, Ttl};
use nfcs_cache_redis::test_server::RedisServer;
use nfcs_cache_redis::{RedisCache, RedisConfig};

/// Whether the server holds `nfcs:<key>`, asked over a plain connection of our own.
async fn on_server(server: &RedisServer, key: &str) -> bool {
    let client = redis::Client::open(server.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("EXISTS")
        .arg(format!("nfcs:{key}"))
        .query_async::<u64>(&mut connection)
        .await
        .unwrap()
        == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_follows_the_clock_the_tier_was_given() {
    let Some(server) = RedisServer::start_or_skip("driven clock") else {
        return;
    };
    let manual = ManualClock::new();
    let cache = RedisCache::connect(RedisConfig::new(server.url()).clock(manual.clock()))
        .await
        .unwrap();
    let hour = Duration::from_secs(3600);
    cache.set("read_late", b"v", hour).await.unwrap();
    cache.set("deleted_late", b"v", hour).await.unwrap();
    cache.set("p_expired", b"v", hour).await.unwrap();
    cache.set("p_kept", b"v", Ttl::Never).await.unwrap();

    // The remaining TTL is measured on the clock: exactly half is left after half an hour.
    manual.advance(hour / 2);
    let entry = cache.get_entry("read_late").await.unwrap().unwrap();
    assert_eq!(entry.ttl, Some(hour / 2));

    manual.advance(hour / 2);
    // Expired by the clock, still on the server in real time.
    assert_eq!(cache.get("read_late").await.unwrap(), None);
    assert!(on_server(&server, "read_late").await);
    assert_eq!(cache.stats().expirations, 1);
    // Removing an expired entry removes it, and reports that there was nothing live.
    assert!(!cache.delete("deleted_late").await.unwrap());
    assert!(!on_server(&server, "deleted_late").await);
    // A pattern invalidation counts only the live match, and removes both.
    let removed = cache
        .invalidate_pattern(&Pattern::new("p_*").unwrap())
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert!(!on_server(&server, "p_expired").await && !on_server(&server, "p_kept").await);
    // A clear counts the same way: only "read_late" is left on the server, and it has expired.
    assert_eq!(cache.clear().await.unwrap(), 0);
    assert!(!on_server(&server, "read_late").await);
}
