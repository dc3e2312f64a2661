//! Adaptive sizing on a workload whose working set grows, then shrinks: the controller reaches
//! the target hit ratio, gives memory back, and does not oscillate. Evaluations are driven by
//! the test (no background thread), so the run is deterministic.

use std::sync::Arc;

use nfcs_performance::cache_core::{CacheTier, MemoryCache, MemoryConfig};
use nfcs_performance::prelude::*;
use nfcs_performance::{AdaptiveConfig, SizingAction};

const MIB: u64 = 1 << 20;

struct Rig {
    cache: NFCSCacheManager,
    memory: MemoryCache,
    state: u64,
}

impl Rig {
    fn new(keys: usize, policy: EvictionPolicy, switch: bool) -> Rig {
        // The lower tier holds every key, so a memory miss is promoted as from a disk tier.
        let store = MemoryCache::with_config(MemoryConfig::new(256 * MIB).name("store")).unwrap();
        for index in 0..keys {
            store
                .insert(&format!("key:{index:06}"), vec![1_u8; 200], None)
                .unwrap();
        }
        let memory =
            MemoryCache::with_config(MemoryConfig::new(16 * MIB).eviction_policy(policy)).unwrap();
        let cache = NFCSCacheManager::builder()
            .memory(memory.clone())
            .tier(Arc::new(store) as Arc<dyn CacheTier>)
            .adaptive(
                AdaptiveConfig::new(256 << 10, 16 * MIB)
                    .sampling_rate(0.1)
                    .interval(None)
                    .switch_policy(switch),
            )
            .build();
        Rig {
            cache,
            memory,
            state: 0x9e37_79b9_7f4a_7c15,
        }
    }

    fn next(&mut self, below: usize) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state % below as u64) as usize
    }

    /// `reads` uniform reads over the first `keys` keys; the memory tier's hit ratio.
    async fn round(&mut self, keys: usize, reads: usize) -> f64 {
        let before = self.memory.stats();
        for _ in 0..reads {
            let key = format!("key:{:06}", self.next(keys));
            assert!(self.cache.get_bytes(&key).await.unwrap().is_some());
        }
        let after = self.memory.stats();
        let hits = after.hits - before.hits;
        hits as f64 / (hits + after.misses - before.misses) as f64
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_follows_a_working_set_that_grows_then_shrinks() {
    let mut rig = Rig::new(20_000, EvictionPolicy::Lru, false);
    let adaptive = rig.cache.adaptive().unwrap().clone();
    let charge = EvictionPolicy::Lru.entry_charge(10, 200, false) as f64;
    let mut phases = Vec::new();
    for (keys, rounds, reads) in [(4_000, 8, 16_000), (16_000, 8, 48_000), (4_000, 8, 16_000)] {
        let mut last_hit_ratio = 0.0;
        for _ in 0..rounds {
            last_hit_ratio = rig.round(keys, reads).await;
            adaptive.evaluate_now();
        }
        // Uniform reads over n keys: a budget of 0.9 n entries gives 0.9.
        let needed = 0.9 * keys as f64 * charge;
        let budget = rig.memory.capacity() as f64;
        phases.push((keys, budget / needed, last_hit_ratio));
    }
    for (keys, ratio, hit_ratio) in &phases {
        assert!(
            (0.95..1.25).contains(ratio),
            "{keys} keys: budget {ratio:.2} x what 0.9 needs; {phases:?}"
        );
        assert!(
            *hit_ratio > 0.86,
            "{keys} keys: hit ratio {hit_ratio:.3}; {phases:?}"
        );
    }
    // No oscillation: shrink (from the initial 16 MiB), grow, shrink: two changes of direction.
    let resizes: Vec<(u64, u64)> = adaptive
        .history()
        .into_iter()
        .filter_map(|action| match action {
            SizingAction::Resize { from, to, .. } => Some((from, to)),
            _ => None,
        })
        .collect();
    let directions: Vec<bool> = resizes.iter().map(|(from, to)| to > from).collect();
    let changes = directions
        .windows(2)
        .filter(|pair| pair[0] != pair[1])
        .count();
    println!("phases (keys, budget / needed, hit ratio): {phases:?}\nresizes: {resizes:?}");
    assert!(changes <= 2 && resizes.len() <= 6, "{resizes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_switches_when_the_curves_say_the_other_wins() {
    // 70 % reads of a small hot set, 30 % a scan through many keys: LRU lets the scan push
    // the hot keys out, S3-FIFO keeps them.
    let mut rig = Rig::new(20_000, EvictionPolicy::Lru, true);
    let adaptive = rig.cache.adaptive().unwrap().clone();
    let mut scan = 2_000;
    let mut switched = None;
    for round in 0..12 {
        for _ in 0..20_000 {
            let key = if rig.next(10) < 7 {
                rig.next(2_000)
            } else {
                scan = if scan + 1 >= 20_000 { 2_000 } else { scan + 1 };
                scan
            };
            let _ = rig.cache.get_bytes(&format!("key:{key:06}")).await.unwrap();
        }
        if let SizingAction::SwitchPolicy { to, predicted, .. } = adaptive.evaluate_now() {
            switched = Some((round, to, predicted));
            break;
        }
    }
    let (_, to, (before, after)) = switched.expect("a switch to S3-FIFO");
    assert_eq!(to, EvictionPolicy::S3Fifo);
    assert!(after > before, "{before} -> {after}");
    assert_eq!(rig.memory.eviction_policy(), EvictionPolicy::S3Fifo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_settings_are_checked_by_field() {
    for (setting, field) in [
        ("min_size = \"2GB\"", "memory.min_size"),
        ("target_hit_ratio = 1.0", "memory.target_hit_ratio"),
        ("sampling_rate = 0.0", "memory.sampling_rate"),
        (
            "adaptive_interval_secs = 0",
            "memory.adaptive_interval_secs",
        ),
    ] {
        let error = CacheConfig::from_toml_str(&format!("[memory]\nadaptive = true\n{setting}"))
            .unwrap_err();
        assert!(error.to_string().contains(field), "{setting}: {error}");
    }
    let config = CacheConfig::from_toml_str(
        "[memory]\nmax_size = \"64MiB\"\nadaptive = true\nmin_size = \"4MiB\"\n[disk]\nenabled = false\n\
         [redis]\nenabled = false\n[semantic]\nenabled = false\n[cache_warming]\nenabled = false",
    )
    .unwrap();
    let cache = NFCSCacheManager::from_config(config).await.unwrap();
    let adaptive = cache.adaptive().expect("adaptive sizing runs");
    assert_eq!(adaptive.config().min_bytes, 4 * MIB);
    assert_eq!(adaptive.config().max_bytes, 64 * MIB);
}
