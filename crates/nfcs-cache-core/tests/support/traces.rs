//! Synthetic read traces for the miss-ratio-curve checks (shared by the test and the
//! `mrc_accuracy` example), and the exact curve of a trace: the memory tier itself, run at
//! every size of the grid.

#![allow(dead_code)]

use nfcs_cache_core::mrc::{CurvePoint, MissRatioCurve, MrcConfig, MrcEstimator, key_hash};
use nfcs_cache_core::{EvictionPolicy, MemoryCache, MemoryConfig};
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Zipf};

/// A read trace: key ids, and each key's value size.
pub(crate) struct Trace {
    pub(crate) name: String,
    pub(crate) reads: Vec<u32>,
    pub(crate) keys: Vec<String>,
    pub(crate) sizes: Vec<u32>,
}

impl Trace {
    fn new(name: &str, key_count: usize, reads: Vec<u32>, sized: bool) -> Trace {
        let prefix = std::env::var("MRC_PREFIX").unwrap_or_else(|_| "object".to_owned());
        let keys: Vec<String> = (0..key_count)
            .map(|id| format!("{prefix}:{id:08}"))
            .collect();
        let sizes = (0..key_count)
            .map(|id| {
                if sized {
                    // 50 B .. 4 KiB, skewed small, fixed per key.
                    let hash = key_hash(&keys[id]);
                    50 + ((hash % 4_000) * (hash % 4_000) / 4_000) as u32
                } else {
                    100
                }
            })
            .collect();
        Trace {
            name: name.to_owned(),
            reads,
            keys,
            sizes,
        }
    }

    /// Bytes the memory tier would charge to hold every key of the trace.
    pub(crate) fn footprint(&self, policy: EvictionPolicy) -> u64 {
        let mut seen = vec![false; self.keys.len()];
        let mut total = 0;
        for &id in &self.reads {
            if !std::mem::replace(&mut seen[id as usize], true) {
                total += policy.entry_charge(
                    self.keys[id as usize].len(),
                    self.sizes[id as usize] as usize,
                    false,
                );
            }
        }
        total
    }
}

fn zipf_reads(rng: &mut rand::rngs::StdRng, keys: usize, exponent: f64, reads: usize) -> Vec<u32> {
    let zipf = Zipf::new(keys as f64, exponent).expect("a valid Zipf distribution");
    // Ranks are scattered over the ids, so that hot keys are not neighbours.
    (0..reads)
        .map(|_| {
            let rank = zipf.sample(rng) as u64 - 1;
            ((rank * 2_654_435_761) % keys as u64) as u32
        })
        .collect()
}

/// Zipf(`exponent`) reads over `keys` keys of 100 bytes.
pub(crate) fn zipf(keys: usize, exponent: f64, reads: usize, seed: u64) -> Trace {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let trace = zipf_reads(&mut rng, keys, exponent, reads);
    Trace::new(&format!("zipf-{exponent}"), keys, trace, false)
}

/// Zipf(`exponent`) reads over `keys` keys whose values are 50 B to 4 KiB.
pub(crate) fn zipf_sized(keys: usize, exponent: f64, reads: usize, seed: u64) -> Trace {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let trace = zipf_reads(&mut rng, keys, exponent, reads);
    Trace::new(&format!("zipf-{exponent}-sized"), keys, trace, true)
}

/// 70 % Zipf(0.9) reads over the first `keys / 3` keys, 30 % a cyclic scan over the others:
/// a mix on which LRU and S3-FIFO differ.
pub(crate) fn scan_mix(keys: usize, reads: usize, seed: u64) -> Trace {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let hot = keys / 3;
    let zipf = Zipf::new(hot as f64, 0.9).expect("a valid Zipf distribution");
    let mut scan = 0;
    let trace = (0..reads)
        .map(|_| {
            if rng.random_range(0..100) < 70 {
                (zipf.sample(&mut rng) as u64 - 1) as u32
            } else {
                scan = (scan + 1) % (keys - hot);
                (hot + scan) as u32
            }
        })
        .collect();
    Trace::new("scan-mix", keys, trace, false)
}

/// The exact curve of `trace` under `policy`: a one-shard memory tier run at each of `sizes`
/// on every read (a miss inserts the value, as a promotion would).
pub(crate) fn exact_curve(trace: &Trace, policy: EvictionPolicy, sizes: &[u64]) -> MissRatioCurve {
    let points = sizes
        .iter()
        .map(|&bytes| {
            let cache = MemoryCache::with_config(
                MemoryConfig::new(bytes).shards(1).eviction_policy(policy),
            )
            .expect("a valid budget");
            let value = vec![0_u8; 4_096];
            let mut misses = 0_u64;
            for &id in &trace.reads {
                let key = &trace.keys[id as usize];
                if cache.get(key).expect("a valid key").is_none() {
                    misses += 1;
                    let size = trace.sizes[id as usize] as usize;
                    let _ = cache.insert(
                        key,
                        nfcs_cache_core::Bytes::copy_from_slice(&value[..size]),
                        None,
                    );
                }
            }
            CurvePoint {
                bytes,
                miss_ratio: misses as f64 / trace.reads.len() as f64,
            }
        })
        .collect();
    MissRatioCurve {
        policy,
        points,
        sampled_reads: trace.reads.len() as f64,
    }
}

/// The estimator's curves of `trace` at sampling `rate` over `sizes`' range.
pub(crate) fn estimate(trace: &Trace, rate: f64, sizes: &[u64]) -> MrcEstimator {
    let (min, max) = (sizes[0], sizes[sizes.len() - 1]);
    // `MRC_MIN_SIMULATION_BYTES=1`: every simulation at the plain rate (no denser samples).
    let min_simulation = std::env::var("MRC_MIN_SIMULATION_BYTES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(MrcConfig::new(1, 2).min_simulation_bytes);
    let mut estimator = MrcEstimator::new(
        MrcConfig::new(min, max)
            .rate(rate)
            .points(sizes.len())
            .min_simulation_bytes(min_simulation),
    )
    .expect("a valid configuration");
    let sampling = estimator.sampling();
    for &id in &trace.reads {
        let key = &trace.keys[id as usize];
        let hash = key_hash(key);
        if sampling.is_sampled(hash) {
            estimator.record(hash, key.len(), Some(trace.sizes[id as usize] as usize));
        }
    }
    estimator.note_reads(trace.reads.len() as u64);
    estimator
}
