use super::*;

mod lru_conformance {
    crate::cache_tier_conformance!(|clock: crate::Clock| async move {
        crate::MemoryCache::with_config(crate::MemoryConfig::new(64 << 20).clock(clock))
            .expect("a valid budget")
    });
}

mod s3fifo_conformance {
    crate::cache_tier_conformance!(|clock: crate::Clock| async move {
        crate::MemoryCache::with_config(
            crate::MemoryConfig::new(64 << 20)
                .eviction_policy(crate::EvictionPolicy::S3Fifo)
                .clock(clock),
        )
        .expect("a valid budget")
    });
}

const POLICIES: [EvictionPolicy; 2] = [EvictionPolicy::Lru, EvictionPolicy::S3Fifo];

fn one_shard(max_bytes: u64, policy: EvictionPolicy) -> MemoryCache {
    MemoryCache::with_config(
        MemoryConfig::new(max_bytes)
            .shards(1)
            .eviction_policy(policy),
    )
    .unwrap()
}

fn one_shard_on(max_bytes: u64, policy: EvictionPolicy, clock: &crate::ManualClock) -> MemoryCache {
    MemoryCache::with_config(
        MemoryConfig::new(max_bytes)
            .shards(1)
            .eviction_policy(policy)
            .clock(clock.clock()),
    )
    .unwrap()
}

/// The charge of a key like "k0001" with a 100-byte value and no TTL.
fn small_entry(policy: EvictionPolicy) -> u64 {
    policy.entry_charge(5, 100, false)
}

#[test]
fn the_budget_is_never_exceeded() {
    for policy in POLICIES {
        let cache = MemoryCache::with_config(
            MemoryConfig::new(200 * small_entry(policy))
                .shards(4)
                .eviction_policy(policy),
        )
        .unwrap();
        for index in 0..5_000_u32 {
            let value = vec![7_u8; (index % 200) as usize];
            cache.insert(&format!("k{index:04}"), value, None).unwrap();
            assert!(cache.weighted_size() <= cache.capacity(), "{policy}");
            if index % 3 == 0 {
                let _ = cache.get(&format!("k{:04}", index / 2)).unwrap();
            }
        }
        let stats = cache.stats();
        assert!(stats.evictions > 0);
        assert_eq!(stats.bytes, cache.weighted_size());
        assert_eq!(stats.entries, cache.len());
        assert_eq!(stats.inserts, 5_000);
    }
}

#[test]
fn lru_evicts_the_least_recently_used() {
    let policy = EvictionPolicy::Lru;
    let cache = one_shard(3 * small_entry(policy), policy);
    let value = vec![0_u8; 100];
    for key in ["k0001", "k0002", "k0003"] {
        cache.insert(key, value.clone(), None).unwrap();
    }
    assert!(
        cache.get("k0001").unwrap().is_some(),
        "k0001 is now the most recent"
    );
    cache.insert("k0004", value.clone(), None).unwrap();
    assert!(
        cache.get("k0002").unwrap().is_none(),
        "k0002 was least recently used"
    );
    for key in ["k0001", "k0003", "k0004"] {
        assert!(cache.get(key).unwrap().is_some(), "{key}");
    }
    assert_eq!(cache.stats().evictions, 1);
}

/// A hot set read often, then a scan of twice the cache's size of keys read once: S3-FIFO keeps
/// the hot set, LRU loses it.
#[test]
fn s3fifo_resists_scans_and_lru_does_not() {
    let hot_keys = 50;
    let retained = |policy: EvictionPolicy| {
        let cache = one_shard(200 * small_entry(policy), policy);
        let value = vec![1_u8; 100];
        for _round in 0..4 {
            for hot in 0..hot_keys {
                let key = format!("h{hot:04}");
                if cache.get(&key).unwrap().is_none() {
                    cache.insert(&key, value.clone(), None).unwrap();
                }
            }
        }
        for scan in 0..400 {
            cache
                .insert(&format!("s{scan:04}"), value.clone(), None)
                .unwrap();
        }
        (0..hot_keys)
            .filter(|hot| cache.contains_key(&format!("h{hot:04}")))
            .count()
    };
    assert_eq!(retained(EvictionPolicy::S3Fifo), hot_keys);
    assert_eq!(retained(EvictionPolicy::Lru), 0);
}

#[test]
fn s3fifo_gives_keys_evicted_young_a_second_chance() {
    // Fill the small queue past its share so "ghost" is evicted unread, then bring it back:
    // it goes to the main queue and survives the next wave of one-time keys.
    let policy = EvictionPolicy::S3Fifo;
    let cache = one_shard(100 * small_entry(policy), policy);
    let value = vec![2_u8; 100];
    cache.insert("ghost", value.clone(), None).unwrap();
    // 150 more than fit pushes 51 entries out: few enough that "ghost" is still remembered.
    for index in 0..150 {
        cache
            .insert(&format!("a{index:04}"), value.clone(), None)
            .unwrap();
    }
    assert!(!cache.contains_key("ghost"));
    cache.insert("ghost", value.clone(), None).unwrap();
    for index in 0..50 {
        cache
            .insert(&format!("b{index:04}"), value.clone(), None)
            .unwrap();
    }
    assert!(cache.contains_key("ghost"));
}

#[test]
fn an_oversized_entry_is_refused_and_the_old_value_kept() {
    for policy in POLICIES {
        let cache = one_shard(10_000, policy);
        cache.insert("key", "old", None).unwrap();
        let error = cache.insert("key", vec![0_u8; 10_000], None).unwrap_err();
        match &error {
            CacheError::ValueTooLarge {
                key,
                size,
                limit,
                tier,
            } => {
                assert_eq!(key, "key");
                assert_eq!(*size, policy.entry_charge(3, 10_000, false));
                assert_eq!(*limit, 10_000);
                assert_eq!(tier, "memory");
            }
            other => panic!("unexpected {other}"),
        }
        assert!(error.to_string().contains("10000 bytes"), "{error}");
        assert_eq!(cache.get("key").unwrap().as_deref(), Some(&b"old"[..]));
        assert_eq!(cache.max_entry_bytes(), 10_000);
    }
}

#[test]
fn resize_shrinks_by_evicting_and_grows() {
    for policy in POLICIES {
        let cache = MemoryCache::with_config(
            MemoryConfig::new(1000 * small_entry(policy))
                .shards(4)
                .eviction_policy(policy),
        )
        .unwrap();
        for index in 0..1000 {
            cache
                .insert(&format!("k{index:04}"), vec![0_u8; 100], None)
                .unwrap();
        }
        assert!(cache.len() > 900);
        cache.resize(100 * small_entry(policy)).unwrap();
        assert!(cache.weighted_size() <= 100 * small_entry(policy));
        assert!(cache.len() <= 100);
        assert_eq!(cache.capacity(), 100 * small_entry(policy));
        cache.resize(2000 * small_entry(policy)).unwrap();
        for index in 0..1500 {
            cache
                .insert(&format!("n{index:04}"), vec![0_u8; 100], None)
                .unwrap();
        }
        assert!(cache.len() >= 1500, "{policy}: the grown budget is used");
        assert!(matches!(
            cache.resize(0),
            Err(CacheError::InvalidCapacity { .. })
        ));
        assert_eq!(
            cache.capacity(),
            2000 * small_entry(policy),
            "a failed resize changes nothing"
        );
    }
}

#[test]
fn bad_configuration_is_refused() {
    assert!(matches!(
        MemoryCache::new(0),
        Err(CacheError::InvalidCapacity { .. })
    ));
    assert!(matches!(
        MemoryCache::with_config(MemoryConfig::new(1 << 20).shards(0)),
        Err(CacheError::InvalidCapacity { .. })
    ));
    assert!(matches!(
        MemoryCache::with_config(MemoryConfig::new(1 << 20).default_ttl(Some(Duration::ZERO))),
        Err(CacheError::InvalidTtl { .. })
    ));
    let error = MemoryCache::with_config(MemoryConfig::new(u64::MAX).shards(1)).unwrap_err();
    assert!(error.to_string().contains("exceeds"), "{error}");
}

#[test]
fn shard_counts_follow_the_budget() {
    assert_eq!(MemoryCache::new(1 << 20).unwrap().shard_count(), 1);
    assert_eq!(MemoryCache::new(1000).unwrap().shard_count(), 1);
    let big = MemoryCache::new(1 << 30).unwrap();
    assert!(big.shard_count() >= 8 && big.shard_count().is_power_of_two());
    assert_eq!(big.capacity(), 1 << 30);
    let odd = MemoryCache::with_config(MemoryConfig::new(1001).shards(3)).unwrap();
    assert_eq!(odd.shard_count(), 4);
    assert_eq!(
        odd.capacity(),
        1001,
        "no byte of the budget is lost to rounding"
    );
}

#[test]
fn default_ttl_applies_to_entries_set_without_one() {
    let cache = MemoryCache::with_config(
        MemoryConfig::new(1 << 20).default_ttl(Some(Duration::from_secs(5))),
    )
    .unwrap();
    cache.insert("a", "v", None).unwrap();
    let ttl = cache.get_entry("a").unwrap().unwrap().ttl.unwrap();
    assert!(ttl <= Duration::from_secs(5) && ttl > Duration::from_secs(4));
    cache
        .insert("b", "v", Some(Duration::from_secs(60)))
        .unwrap();
    assert!(cache.get_entry("b").unwrap().unwrap().ttl.unwrap() > Duration::from_secs(55));
}

#[test]
fn expired_entries_are_reclaimed_by_writes_without_reads() {
    for policy in POLICIES {
        let clock = crate::ManualClock::new();
        let cache = MemoryCache::with_config(
            MemoryConfig::new(64 << 20)
                .shards(2)
                .eviction_policy(policy)
                .clock(clock.clock()),
        )
        .unwrap();
        for index in 0..400 {
            cache
                .insert(
                    &format!("t{index:04}"),
                    "v",
                    Some(Duration::from_millis(20)),
                )
                .unwrap();
        }
        clock.advance(Duration::from_millis(20));
        // 30 writes, each reclaiming up to 8 expired entries of its shard.
        for index in 0..30 {
            cache.insert(&format!("p{index:04}"), "v", None).unwrap();
        }
        let stats = cache.stats();
        assert!(stats.expirations >= 200, "{policy}: {stats:?}");
        assert!(cache.len() <= 230, "{policy}: {}", cache.len());
        let rest = cache.purge_expired();
        assert_eq!(stats.expirations + rest, 400, "{policy}");
        assert_eq!(cache.len(), 30);
        assert_eq!(cache.weighted_size(), 30 * policy.entry_charge(5, 1, false));
    }
}

#[test]
fn overwrites_keep_accounting_exact() {
    for policy in POLICIES {
        let clock = crate::ManualClock::new();
        let cache = one_shard_on(1 << 20, policy, &clock);
        cache
            .insert("key", vec![0_u8; 10], Some(Duration::from_secs(60)))
            .unwrap();
        cache.insert("key", vec![0_u8; 1000], None).unwrap();
        cache
            .insert("key", vec![0_u8; 10], Some(Duration::from_millis(1)))
            .unwrap();
        assert_eq!(cache.weighted_size(), policy.entry_charge(3, 10, true));
        clock.advance(Duration::from_millis(1));
        assert_eq!(cache.get("key").unwrap(), None);
        assert_eq!(cache.weighted_size(), 0);
        assert_eq!(cache.len(), 0);
        assert_eq!(
            cache.purge_expired(),
            0,
            "the stale deadlines are not counted twice"
        );
        let stats = cache.stats();
        assert_eq!(stats.expirations, 1);
        assert_eq!((stats.inserts, stats.misses), (3, 1));
    }
}

#[test]
fn delete_and_reinsert_churn_keeps_queues_bounded() {
    // Many delete/insert cycles below the budget never evict, so S3-FIFO's queues would only
    // shrink through compaction; the accounting must stay exact throughout.
    for policy in POLICIES {
        let cache = one_shard(1 << 20, policy);
        for round in 0..20_000 {
            let key = format!("k{}", round % 7);
            cache
                .insert(&key, "v", Some(Duration::from_secs(60)))
                .unwrap();
            cache.remove(&key).unwrap();
        }
        assert_eq!(cache.len(), 0);
        assert_eq!(cache.weighted_size(), 0);
        cache.insert("alive", "v", None).unwrap();
        assert_eq!(cache.get("alive").unwrap().as_deref(), Some(&b"v"[..]));
    }
}

#[test]
fn remove_matching_and_clear_count_live_entries_only() {
    for policy in POLICIES {
        let clock = crate::ManualClock::new();
        let cache = one_shard_on(1 << 20, policy, &clock);
        cache.insert("policy_a", "v", None).unwrap();
        cache
            .insert("policy_b", "v", Some(Duration::from_millis(1)))
            .unwrap();
        cache.insert("cgl_1", "v", None).unwrap();
        clock.advance(Duration::from_millis(1));
        assert_eq!(cache.remove_matching(&Pattern::new("policy_*").unwrap()), 1);
        assert_eq!(cache.stats().expirations, 1);
        assert_eq!(MemoryCache::clear(&cache), 1);
        assert!(cache.is_empty());
        assert_eq!(cache.weighted_size(), 0);
    }
}

#[test]
fn threads_hammering_one_cache_keep_it_consistent() {
    for policy in POLICIES {
        let cache = MemoryCache::with_config(
            MemoryConfig::new(500 * small_entry(policy))
                .shards(4)
                .eviction_policy(policy),
        )
        .unwrap();
        std::thread::scope(|scope| {
            for thread in 0..4_u32 {
                let cache = cache.clone();
                scope.spawn(move || {
                    for index in 0..20_000_u32 {
                        let key = format!("k{:04}", (index * 31 + thread * 7) % 2000);
                        match index % 4 {
                            0 => cache.insert(&key, key.clone(), None).unwrap(),
                            1 => {
                                cache.remove(&key).unwrap();
                            }
                            _ => {
                                if let Some(value) = cache.get(&key).unwrap() {
                                    assert_eq!(&value[..], key.as_bytes());
                                }
                            }
                        }
                    }
                });
            }
        });
        assert!(cache.weighted_size() <= cache.capacity());
        let stats = cache.stats();
        assert_eq!(stats.bytes, cache.weighted_size());
        assert_eq!(stats.hits + stats.misses, 4 * 10_000);
    }
}

#[test]
fn eviction_policy_names_parse() {
    assert_eq!("LRU".parse::<EvictionPolicy>(), Ok(EvictionPolicy::Lru));
    assert_eq!(
        "s3-fifo".parse::<EvictionPolicy>(),
        Ok(EvictionPolicy::S3Fifo)
    );
    assert!(
        "lfu"
            .parse::<EvictionPolicy>()
            .unwrap_err()
            .contains("\"lfu\"")
    );
    assert_eq!(EvictionPolicy::S3Fifo.to_string(), "s3_fifo");
}

#[test]
fn switching_the_eviction_policy_keeps_entries_and_deadlines() {
    let clock = crate::ManualClock::new();
    for from in POLICIES {
        let to = if from == EvictionPolicy::Lru {
            EvictionPolicy::S3Fifo
        } else {
            EvictionPolicy::Lru
        };
        let cache = MemoryCache::with_config(
            MemoryConfig::new(8 << 20)
                .shards(4)
                .eviction_policy(from)
                .clock(clock.clock()),
        )
        .unwrap();
        for index in 0_u32..1000 {
            let ttl = (index.is_multiple_of(2)).then(|| Duration::from_secs(10));
            cache
                .insert(&format!("k{index}"), format!("v{index}"), ttl)
                .unwrap();
        }
        assert_eq!(
            cache.set_eviction_policy(from),
            0,
            "no change, nothing moved"
        );
        assert_eq!(cache.set_eviction_policy(to), 0, "everything fits");
        assert_eq!(cache.eviction_policy(), to);
        assert_eq!(cache.len(), 1000);
        let expected: u64 = (0..1000)
            .map(|index: u32| {
                let key = format!("k{index}");
                let value = format!("v{index}");
                to.entry_charge(key.len(), value.len(), index.is_multiple_of(2))
            })
            .sum();
        assert_eq!(
            cache.weighted_size(),
            expected,
            "re-charged at the new overhead"
        );
        for index in 0_u32..1000 {
            let value = cache.get(&format!("k{index}")).unwrap();
            assert_eq!(value.as_deref(), Some(format!("v{index}").as_bytes()));
        }
        clock.advance(Duration::from_secs(11));
        for index in 0_u32..1000 {
            let found = cache.get(&format!("k{index}")).unwrap();
            assert_eq!(
                found.is_some(),
                !index.is_multiple_of(2),
                "k{index}: deadlines kept"
            );
        }
        // Writes after the switch follow the new policy's budget.
        cache.resize(1 << 20).unwrap();
        for index in 0..20_000 {
            cache
                .insert(&format!("n{index}"), vec![0_u8; 64], None)
                .unwrap();
        }
        assert!(cache.weighted_size() <= cache.capacity());
    }
}

#[test]
fn switching_to_a_costlier_policy_evicts_to_stay_within_budget() {
    let cache = one_shard(1 << 20, EvictionPolicy::Lru);
    let mut inserted = 0;
    while cache.weighted_size() + EvictionPolicy::Lru.entry_charge(8, 100, false)
        <= cache.capacity()
    {
        cache
            .insert(&format!("k{inserted:07}"), vec![1_u8; 100], None)
            .unwrap();
        inserted += 1;
    }
    let evicted = cache.set_eviction_policy(EvictionPolicy::S3Fifo);
    assert!(
        evicted > 0,
        "184-byte entries do not all fit where 176-byte ones did"
    );
    assert_eq!(cache.len() + evicted, inserted);
    assert!(cache.weighted_size() <= cache.capacity());
}

#[test]
fn keys_lists_live_entries_up_to_a_limit() {
    let clock = crate::ManualClock::new();
    let cache = MemoryCache::with_config(MemoryConfig::new(8 << 20).shards(4).clock(clock.clock()))
        .unwrap();
    for index in 0..100 {
        let ttl = (index < 10).then(|| Duration::from_secs(1));
        cache.insert(&format!("k{index}"), "v", ttl).unwrap();
    }
    clock.advance(Duration::from_secs(2));
    let mut keys = cache.keys(1_000);
    keys.sort();
    let mut expected: Vec<String> = (10..100).map(|index| format!("k{index}")).collect();
    expected.sort();
    assert_eq!(keys, expected, "expired entries are not listed");
    assert_eq!(cache.keys(7).len(), 7);
}
