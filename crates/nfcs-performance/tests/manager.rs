use std::sync::Arc;
use std::time::Duration;

use nfcs_performance::cache_core::{BoxFuture, DecodeError, TierResult};
use nfcs_performance::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Decision {
    allowed: bool,
    reasons: Vec<String>,
    risk: f64,
}

/// Bytes that do not compress, so that encoded sizes are what the test means them to be.
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn memory_only(max_bytes: u64) -> NFCSCacheManager {
    NFCSCacheManager::builder()
        .memory(MemoryCache::new(max_bytes).unwrap())
        .build()
}

/// A manager over a small memory tier and a larger second memory tier standing in for a lower
/// tier (a real tier, with the real contract), plus direct handles on both.
fn two_tiers() -> (NFCSCacheManager, MemoryCache, MemoryCache) {
    let upper = MemoryCache::with_config(MemoryConfig::new(1 << 20).shards(1)).unwrap();
    let lower = MemoryCache::with_config(MemoryConfig::new(64 << 20).name("lower")).unwrap();
    let manager = NFCSCacheManager::builder()
        .memory(upper.clone())
        .tier(Arc::new(lower.clone()))
        .build();
    (manager, upper, lower)
}

#[tokio::test]
async fn typed_values_round_trip_and_misses_are_none() {
    let cache = memory_only(16 << 20);
    let decision = Decision {
        allowed: false,
        reasons: vec!["risk above 0.8".into()],
        risk: 0.93,
    };
    cache
        .set("policy_deploy_1f", &decision, None)
        .await
        .unwrap();
    assert_eq!(
        cache.get::<Decision>("policy_deploy_1f").await.unwrap(),
        Some(decision)
    );
    cache
        .set("field", &vec![0.25_f64; 10_000], None)
        .await
        .unwrap();
    assert_eq!(
        cache.get::<Vec<f64>>("field").await.unwrap(),
        Some(vec![0.25; 10_000])
    );
    assert_eq!(cache.get::<Decision>("absent").await.unwrap(), None);
    cache
        .set_bytes("raw", &b"\x00\x01raw"[..], None)
        .await
        .unwrap();
    assert_eq!(
        cache.get_bytes("raw").await.unwrap().as_deref(),
        Some(&b"\x00\x01raw"[..])
    );
}

#[tokio::test]
async fn undecodable_values_are_typed_errors_and_leave_the_cache_usable() {
    let cache = memory_only(16 << 20);
    cache.set("text", &"hello", None).await.unwrap();
    match cache.get::<Decision>("text").await {
        Err(CacheError::Decode { key, source }) => {
            assert_eq!(key, "text");
            assert!(
                !source.is_corruption(),
                "a type mismatch, not corruption: {source}"
            );
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    // Raw bytes are not a frame: truncated or arbitrary bytes are reported as corruption.
    cache
        .set_bytes("raw", &b"not a frame"[..], None)
        .await
        .unwrap();
    match cache.get::<String>("raw").await {
        Err(CacheError::Decode { source, .. }) => assert!(source.is_corruption(), "{source}"),
        other => panic!("expected a decode error, got {other:?}"),
    }
    let frame = cache.codec().encode(&"a longer string value").unwrap();
    cache
        .set_bytes("truncated", frame.slice(..frame.len() - 3), None)
        .await
        .unwrap();
    assert!(matches!(
        cache.get::<String>("truncated").await,
        Err(CacheError::Decode { .. })
    ));
    assert_eq!(
        cache.get::<String>("text").await.unwrap().as_deref(),
        Some("hello")
    );
}

/// The two reads found from outside that returned wrong values (postcard carries no types):
/// now a typed error from every tier, while types that encode alike still read each other.
#[tokio::test]
async fn reading_a_value_as_another_type_is_an_error_never_a_wrong_value() {
    let (cache, memory, lower) = two_tiers();
    cache.set("greeting", &"greeting", None).await.unwrap();
    cache.set("seven", &7_u32, None).await.unwrap();
    for round in ["memory", "lower tier"] {
        if round == "lower tier" {
            memory.clear();
        }
        match cache.get::<Vec<u64>>("greeting").await {
            Err(CacheError::Decode {
                source: DecodeError::WrongType { .. },
                ..
            }) => {}
            other => panic!("{round}: a string read as Vec<u64> gave {other:?}"),
        }
        match cache.get::<i64>("seven").await {
            Err(CacheError::Decode {
                source: source @ DecodeError::WrongType { .. },
                ..
            }) => assert!(source.to_string().contains("another type"), "{source}"),
            other => panic!("{round}: a u32 read as i64 gave {other:?}"),
        }
    }
    assert_eq!(cache.get::<u32>("seven").await.unwrap(), Some(7));
    assert_eq!(
        cache.get::<String>("greeting").await.unwrap().as_deref(),
        Some("greeting"),
        "&str and String encode alike"
    );
    assert!(lower.contains_key("greeting"));
}

#[tokio::test]
async fn bad_input_is_a_typed_error_naming_the_problem() {
    let cache = memory_only(16 << 20);
    cache.set("kept", &1_u8, None).await.unwrap();
    let too_long = "k".repeat(4097);
    for key in ["", too_long.as_str()] {
        assert!(matches!(
            cache.get::<u8>(key).await,
            Err(CacheError::InvalidKey { .. })
        ));
        assert!(matches!(
            cache.set(key, &1_u8, None).await,
            Err(CacheError::InvalidKey { .. })
        ));
        assert!(matches!(
            cache.delete(key).await,
            Err(CacheError::InvalidKey { .. })
        ));
    }
    let error = cache
        .set("kept", &2_u8, Some(Duration::ZERO))
        .await
        .unwrap_err();
    assert!(matches!(error, CacheError::InvalidTtl { .. }), "{error}");
    let error = cache.invalidate_pattern("policy_[abc").await.unwrap_err();
    assert!(error.to_string().contains("never closed"), "{error}");
    let error = cache.set("huge", &noise(20 << 20), None).await.unwrap_err();
    assert!(matches!(error, CacheError::ValueTooLarge { .. }), "{error}");
    assert!(error.to_string().contains("huge"), "{error}");
    // Nothing was lost and the cache still serves.
    assert_eq!(cache.get::<u8>("kept").await.unwrap(), Some(1));
    cache.set("after", &3_u8, None).await.unwrap();
    assert_eq!(cache.get::<u8>("after").await.unwrap(), Some(3));
}

#[tokio::test]
async fn an_oversized_overwrite_keeps_the_old_value() {
    let cache = memory_only(2 << 20);
    cache.set("key", &"old", None).await.unwrap();
    assert!(cache.set("key", &noise(4 << 20), None).await.is_err());
    assert_eq!(
        cache.get::<String>("key").await.unwrap().as_deref(),
        Some("old")
    );
}

#[tokio::test]
async fn delete_invalidate_and_clear() {
    let cache = memory_only(16 << 20);
    for key in ["cgl_64", "cgl_128", "kuramoto_50", "policy_a"] {
        cache.set(key, &key, None).await.unwrap();
    }
    assert!(cache.delete("policy_a").await.unwrap());
    assert!(!cache.delete("policy_a").await.unwrap());
    assert_eq!(cache.invalidate_pattern("cgl_*").await.unwrap(), 2);
    assert_eq!(cache.get::<String>("cgl_64").await.unwrap(), None);
    assert_eq!(cache.clear().await.unwrap(), 1);
    assert_eq!(cache.get::<String>("kuramoto_50").await.unwrap(), None);
}

#[tokio::test]
async fn writes_go_through_and_lower_hits_are_promoted_with_their_remaining_ttl() {
    let (manager, upper, lower) = two_tiers();
    manager.set("both", &7_u32, None).await.unwrap();
    assert!(upper.contains_key("both") && lower.contains_key("both"));

    lower
        .insert(
            "only_below",
            manager.codec().encode(&9_u32).unwrap(),
            Some(Duration::from_secs(60)),
        )
        .unwrap();
    assert!(!upper.contains_key("only_below"));
    assert_eq!(manager.get::<u32>("only_below").await.unwrap(), Some(9));
    let promoted = upper
        .get_entry("only_below")
        .unwrap()
        .expect("promoted into memory");
    let ttl = promoted.ttl.expect("with the lower tier's TTL");
    assert!(
        ttl <= Duration::from_secs(60) && ttl > Duration::from_secs(50),
        "{ttl:?}"
    );
    assert_eq!(manager.stats().promotions, 1);

    // Deletion and invalidation reach both tiers.
    assert!(manager.delete("both").await.unwrap());
    assert!(!upper.contains_key("both") && !lower.contains_key("both"));
    assert_eq!(manager.invalidate_pattern("only_*").await.unwrap(), 2);
    assert!(lower.is_empty());
}

#[tokio::test]
async fn values_too_large_for_memory_go_to_the_tier_that_takes_them() {
    let (manager, upper, lower) = two_tiers();
    manager.set("big", &"small first", None).await.unwrap();
    let big = noise(2 << 20);
    manager.set("big", &big, None).await.unwrap();
    assert!(
        !upper.contains_key("big"),
        "the old small value must not shadow the new one"
    );
    assert!(lower.contains_key("big"));
    assert_eq!(manager.get::<Vec<u8>>("big").await.unwrap(), Some(big));
}

#[tokio::test]
async fn stats_count_per_tier_and_overall() {
    let (manager, _, _) = two_tiers();
    manager.set("a", &1_u8, None).await.unwrap();
    let _ = manager.get::<u8>("a").await.unwrap();
    let _ = manager.get::<u8>("b").await.unwrap();
    let stats = manager.stats();
    let names: Vec<&str> = stats.tiers.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["memory", "lower"]);
    let memory = &stats.tiers[0].1;
    assert_eq!((memory.hits, memory.misses, memory.inserts), (1, 1, 1));
    assert_eq!(stats.hit_ratio(), 0.5);
}

/// A tier whose backend is down: every operation fails as a real unreachable server would.
/// (A fake, to test the manager's logic above the trait; the Redis tier's own tests kill a
/// real server.)
struct DownTier;

impl DownTier {
    fn fail<T: Send + 'static>() -> BoxFuture<Result<T, CacheError>> {
        Box::pin(async {
            Err(CacheError::backend(
                "down",
                "connect",
                std::io::Error::other("connection refused"),
            ))
        })
    }
}

impl CacheTier for DownTier {
    fn name(&self) -> &str {
        "down"
    }
    fn get(&self, _key: &str) -> TierResult<Option<CacheEntry>> {
        DownTier::fail()
    }
    fn set(&self, _key: &str, _value: Bytes, _ttl: Ttl) -> TierResult<()> {
        DownTier::fail()
    }
    fn delete(&self, _key: &str) -> TierResult<bool> {
        DownTier::fail()
    }
    fn invalidate_pattern(&self, _pattern: &Pattern) -> TierResult<u64> {
        DownTier::fail()
    }
    fn clear(&self) -> TierResult<u64> {
        DownTier::fail()
    }
    fn stats(&self) -> TierStats {
        TierStats::default()
    }
}

#[tokio::test]
async fn a_tier_that_is_down_is_served_around() {
    let memory = MemoryCache::new(16 << 20).unwrap();
    let manager = NFCSCacheManager::builder()
        .memory(memory.clone())
        .tier(Arc::new(DownTier))
        .build();
    // Reads: a counted miss, never an error.
    assert_eq!(manager.get::<u8>("k").await.unwrap(), None);
    // Writes: stored where possible.
    manager.set("k", &5_u8, None).await.unwrap();
    assert_eq!(manager.get::<u8>("k").await.unwrap(), Some(5));
    // Invalidation cannot be complete, so it says so, after cleaning what it can.
    assert!(manager.delete("k").await.is_err());
    assert!(!memory.contains_key("k"));
    assert!(manager.invalidate_pattern("*").await.is_err());
    let stats = manager.stats();
    assert_eq!(stats.tier_errors, 4, "{stats:?}");

    // With nothing else to store into, a write reports the tier's error.
    let lonely = NFCSCacheManager::builder().tier(Arc::new(DownTier)).build();
    let error = lonely.set("k", &1_u8, None).await.unwrap_err();
    assert!(error.to_string().contains("connection refused"), "{error}");
    assert_eq!(lonely.get::<u8>("k").await.unwrap(), None);
}
