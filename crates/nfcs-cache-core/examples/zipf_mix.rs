//! The memory tier under the benchmark's mixed Zipf workload (90 % reads, a miss inserts the
//! key, 10 % writes; 100,000 entries of 64 bytes over 1,000,000 keys), in one thread, for
//! before/after comparisons of two commits (the source builds against both APIs; run it under
//! `valgrind --tool=callgrind` for instruction counts independent of the machine's load).
//!
//! `cargo run --release -p nfcs-cache-core --example zipf_mix -- [operations] [exponent]`
use std::error::Error;
use std::hint::black_box;

use nfcs_cache_core::{Bytes, EvictionPolicy, MemoryCache, MemoryConfig};
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Zipf};

/// The `index`th argument, or `default`.
fn argument<T: std::str::FromStr>(index: usize, default: T) -> Result<T, Box<dyn Error>>
where
    T::Err: std::fmt::Display,
{
    match std::env::args().nth(index) {
        Some(text) => Ok(text.parse().map_err(|error| format!("{text:?}: {error}"))?),
        None => Ok(default),
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let operations: usize = argument(1, 4_000_000)?;
    let exponent: f64 = argument(2, 0.99)?;
    let keys: Vec<String> = (0..1_000_000)
        .map(|index| format!("key:{index:07}"))
        .collect();
    let budget = 100_000 * EvictionPolicy::Lru.entry_charge(11, 64, false);
    let cache = MemoryCache::with_config(MemoryConfig::new(budget))?;
    let zipf = Zipf::new(keys.len() as f64, exponent)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let trace: Vec<(u32, bool)> = (0..operations)
        .map(|_| {
            let rank = zipf.sample(&mut rng) as usize - 1;
            (rank as u32, rng.random_range(0..100) < 10)
        })
        .collect();
    let value = vec![0_u8; 64];
    let started = std::time::Instant::now();
    let mut hits = 0_u64;
    for &(rank, write) in &trace {
        let key = &keys[rank as usize];
        if write {
            cache.insert(key, Bytes::from(value.clone()), None)?;
        } else if cache.get(key)?.is_some() {
            hits += 1;
        } else {
            cache.insert(key, Bytes::from(value.clone()), None)?;
        }
    }
    black_box(hits);
    println!(
        "{:.1} ns per operation, hit ratio {:.2} %",
        started.elapsed().as_nanos() as f64 / operations.max(1) as f64,
        hits as f64 * 100.0 / operations.max(1) as f64
    );
    Ok(())
}
