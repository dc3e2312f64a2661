//! `predicted_access`: on user sessions that read keys in repeating orders, prefetching raises
//! the memory hit ratio with a measured precision; on a Zipf trace with no order, it costs no
//! hit ratio and under 5 % extra lower-tier reads. Each read waits for the prefetches it
//! started (`Prediction::settle`), so the replay is deterministic.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use nfcs_performance::PredictionConfig;
use nfcs_performance::cache_core::{
    Bytes, CacheEntry, CacheTier, MemoryCache, MemoryConfig, Pattern, TierResult, TierStats, Ttl,
};
use nfcs_performance::prelude::*;

/// A lower tier that counts its reads.
struct Counted {
    store: MemoryCache,
    reads: Arc<AtomicU64>,
}

impl CacheTier for Counted {
    fn name(&self) -> &str {
        "store"
    }
    fn get(&self, key: &str) -> TierResult<Option<CacheEntry>> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        CacheTier::get(&self.store, key)
    }
    fn set(&self, key: &str, value: Bytes, ttl: Ttl) -> TierResult<()> {
        CacheTier::set(&self.store, key, value, ttl)
    }
    fn delete(&self, key: &str) -> TierResult<bool> {
        CacheTier::delete(&self.store, key)
    }
    fn invalidate_pattern(&self, pattern: &Pattern) -> TierResult<u64> {
        CacheTier::invalidate_pattern(&self.store, pattern)
    }
    fn clear(&self) -> TierResult<u64> {
        CacheTier::clear(&self.store)
    }
    fn stats(&self) -> TierStats {
        CacheTier::stats(&self.store)
    }
}

struct Outcome {
    hit_ratio: f64,
    lower_reads: u64,
    precision: f64,
    prefetches: u64,
}

const KEYS: usize = 20_000;

fn key(index: usize) -> String {
    format!("item:{index:06}")
}

async fn replay(trace: &[usize], predict: bool) -> Outcome {
    let store = MemoryCache::with_config(MemoryConfig::new(64 << 20).name("store")).unwrap();
    for index in 0..KEYS {
        store.insert(&key(index), vec![3_u8; 100], None).unwrap();
    }
    let reads = Arc::new(AtomicU64::new(0));
    // Memory for about 1,000 of the 20,000 entries.
    let memory = MemoryCache::with_config(MemoryConfig::new(300_000).shards(1)).unwrap();
    let builder = NFCSCacheManager::builder()
        .memory(memory.clone())
        .tier(Arc::new(Counted {
            store,
            reads: Arc::clone(&reads),
        }) as Arc<dyn CacheTier>);
    let cache = if predict {
        builder.prediction(PredictionConfig::default())
    } else {
        builder
    }
    .build();
    for &index in trace {
        assert!(cache.get_bytes(&key(index)).await.unwrap().is_some());
        if let Some(prediction) = cache.prediction() {
            prediction.settle().await;
        }
    }
    let stats = memory.stats();
    let (precision, prefetches) = cache.prediction().map_or((0.0, 0), |prediction| {
        let stats = prediction.stats();
        (stats.precision, stats.prefetches)
    });
    Outcome {
        hit_ratio: stats.hits as f64 / (stats.hits + stats.misses) as f64,
        lower_reads: reads.load(Ordering::Relaxed),
        precision,
        prefetches,
    }
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        // The high bits, scaled: xorshift's low bits are weak.
        (((self.0 >> 11) as u128 * n as u128) >> 53) as usize
    }
}

/// 4 users at a time, each walking one of 500 fixed journeys of 8 keys (chosen at random),
/// their reads interleaved.
fn sessions(reads: usize) -> Vec<usize> {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let journeys: Vec<Vec<usize>> = (0..500)
        .map(|_| (0..8).map(|_| rng.below(KEYS)).collect())
        .collect();
    let mut users: Vec<(usize, usize)> = (0..4).map(|_| (rng.below(500), 0)).collect();
    let mut trace = Vec::with_capacity(reads);
    while trace.len() < reads {
        let user = rng.below(users.len());
        let (journey, step) = users[user];
        trace.push(journeys[journey][step]);
        users[user] = if step + 1 == 8 {
            (rng.below(500), 0)
        } else {
            (journey, step + 1)
        };
    }
    trace
}

/// Zipf(0.9) over the keys, no order.
fn zipf(reads: usize) -> Vec<usize> {
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    let weights: Vec<f64> = (1..=KEYS)
        .map(|rank| 1.0 / (rank as f64).powf(0.9))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut cumulative = Vec::with_capacity(KEYS);
    let mut sum = 0.0;
    for weight in weights {
        sum += weight / total;
        cumulative.push(sum);
    }
    (0..reads)
        .map(|_| {
            let u = rng.below(1 << 30) as f64 / f64::from(1 << 30);
            let rank = cumulative.partition_point(|&c| c < u).min(KEYS - 1);
            (rank * 7_919) % KEYS
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_in_repeating_orders_are_prefetched() {
    let trace = sessions(60_000);
    let plain = replay(&trace, false).await;
    let predicted = replay(&trace, true).await;
    println!(
        "sessions: hit ratio {:.3} -> {:.3}, precision {:.3}, {} prefetches, lower-tier reads {} -> {}",
        plain.hit_ratio,
        predicted.hit_ratio,
        predicted.precision,
        predicted.prefetches,
        plain.lower_reads,
        predicted.lower_reads
    );
    assert!(
        predicted.hit_ratio > plain.hit_ratio + 0.2,
        "{:.3} -> {:.3}",
        plain.hit_ratio,
        predicted.hit_ratio
    );
    assert!(
        predicted.precision > 0.5,
        "precision {:.3}",
        predicted.precision
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_with_no_order_costs_nothing() {
    let trace = zipf(60_000);
    let plain = replay(&trace, false).await;
    let predicted = replay(&trace, true).await;
    let extra = predicted.lower_reads as f64 / plain.lower_reads as f64 - 1.0;
    println!(
        "zipf: hit ratio {:.4} -> {:.4}, precision {:.3}, {} prefetches, lower-tier reads {} -> {} ({:+.2} %)",
        plain.hit_ratio,
        predicted.hit_ratio,
        predicted.precision,
        predicted.prefetches,
        plain.lower_reads,
        predicted.lower_reads,
        extra * 100.0
    );
    assert!(
        predicted.hit_ratio >= plain.hit_ratio - 0.005,
        "{:.4} -> {:.4}",
        plain.hit_ratio,
        predicted.hit_ratio
    );
    assert!(
        extra < 0.05,
        "{:+.2} % extra lower-tier reads",
        extra * 100.0
    );
}
