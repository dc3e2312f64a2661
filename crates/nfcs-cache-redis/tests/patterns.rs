//! Pattern invalidation and clear touch exactly our prefix's matching keys.

use nfcs_cache_core::Pattern;
use nfcs_cache_redis::test_server::RedisServer;
use nfcs_cache_redis::{RedisCache, RedisConfig};

/// Counts the distinct keys matching `pattern`. SCAN may return a key more than once while the
/// server rehashes its keyspace (which mass deletions trigger), so the keys go through a set.
async fn count_keys(url: &str, pattern: &str) -> usize {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let mut cursor = 0_u64;
    let mut seen = std::collections::HashSet::new();
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .cursor_arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut connection)
            .await
            .unwrap();
        seen.extend(keys);
        if next == 0 {
            return seen.len();
        }
        cursor = next;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidating_100_000_keys_removes_exactly_ours() {
    let Some(server) = RedisServer::start_or_skip("pattern invalidation") else {
        return;
    };
    let ours = RedisCache::connect(RedisConfig::new(server.url()).key_prefix("nfcs:"))
        .await
        .unwrap();
    let theirs = RedisCache::connect(RedisConfig::new(server.url()).key_prefix("other:"))
        .await
        .unwrap();
    // 100,000 keys under our prefix, half matching "cgl_*"; the same names under another prefix.
    let keys: Vec<String> = (0..100_000)
        .map(|index| {
            if index % 2 == 0 {
                format!("cgl_{index}")
            } else {
                format!("kuramoto_{index}")
            }
        })
        .collect();
    for chunk in keys.chunks(1000) {
        let entries: Vec<(&str, &[u8])> =
            chunk.iter().map(|key| (key.as_str(), &b"v"[..])).collect();
        ours.set_many(&entries, None).await.unwrap();
        theirs.set_many(&entries[..100], None).await.unwrap();
    }
    let removed = ours
        .invalidate_pattern(&Pattern::new("cgl_*").unwrap())
        .await
        .unwrap();
    assert_eq!(removed, 50_000);
    assert_eq!(count_keys(&server.url(), "nfcs:cgl_*").await, 0);
    assert_eq!(count_keys(&server.url(), "nfcs:kuramoto_*").await, 50_000);
    assert_eq!(
        count_keys(&server.url(), "other:*").await,
        10_000,
        "another prefix is untouched"
    );
    assert_eq!(ours.clear().await.unwrap(), 50_000);
    assert_eq!(count_keys(&server.url(), "nfcs:*").await, 0);
    assert_eq!(count_keys(&server.url(), "other:*").await, 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_with_glob_characters_are_escaped() {
    let Some(server) = RedisServer::start_or_skip("glob prefix") else {
        return;
    };
    let odd = RedisCache::connect(RedisConfig::new(server.url()).key_prefix("a*[b]?:"))
        .await
        .unwrap();
    let plain = RedisCache::connect(RedisConfig::new(server.url()).key_prefix("aXbY:"))
        .await
        .unwrap();
    odd.set("k1", b"v", None).await.unwrap();
    plain.set("k1", b"v", None).await.unwrap();
    assert_eq!(odd.clear().await.unwrap(), 1);
    assert_eq!(plain.get("k1").await.unwrap().as_deref(), Some(&b"v"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_calls_round_trip() {
    let Some(server) = RedisServer::start_or_skip("batch calls") else {
        return;
    };
    let cache = RedisCache::connect(RedisConfig::new(server.url()))
        .await
        .unwrap();
    let entries: Vec<(String, Vec<u8>)> = (0..16)
        .map(|index| (format!("k{index}"), vec![index as u8; 1024]))
        .collect();
    let borrowed: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_slice()))
        .collect();
    cache.set_many(&borrowed, None).await.unwrap();
    let keys: Vec<&str> = entries
        .iter()
        .map(|(key, _)| key.as_str())
        .chain(["missing"])
        .collect();
    let values = cache.get_many(&keys).await.unwrap();
    assert_eq!(values.len(), 17);
    for (index, value) in values.iter().take(16).enumerate() {
        assert_eq!(value.as_deref(), Some(&vec![index as u8; 1024][..]));
    }
    assert_eq!(values[16], None);
    assert_eq!(cache.stats().inserts, 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_value_under_the_prefix_is_a_counted_miss() {
    let Some(server) = RedisServer::start_or_skip("foreign value") else {
        return;
    };
    let cache = RedisCache::connect(RedisConfig::new(server.url()))
        .await
        .unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("SET")
        .arg("nfcs:foreign")
        .arg("written by another program")
        .query_async::<()>(&mut connection)
        .await
        .unwrap();
    assert_eq!(cache.get("foreign").await.unwrap(), None);
    assert_eq!(cache.stats().errors, 1);
}
