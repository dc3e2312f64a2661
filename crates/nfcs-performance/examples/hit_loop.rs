//! The memory-hit path through the manager in a loop, for before/after comparisons of two
//! commits: the same source builds against this release's API and the previous one's, so it can
//! be copied into a worktree of an older commit and both binaries run in turn (timed, or under
//! `valgrind --tool=callgrind` for instruction counts that do not depend on the machine's load).
//!
//! `cargo run --release -p nfcs-performance --example hit_loop -- <memory|bytes|get|set>
//! [rounds] [operations]`: 10,000 resident keys of 48-byte values read in a fixed random order
//! through `MemoryCache::get_entry`, `NFCSCacheManager::get_bytes` or `get::<String>`, or
//! written through `NFCSCacheManager::set` (memory and the disk tier, on a current-thread
//! runtime); prints the best round's nanoseconds per operation. With `HIT_LOOP_WARMING=N` the
//! manager tracks popularity (feature `warming`), one read in `N` sampled; with
//! `HIT_LOOP_ADAPTIVE=RATE` it samples keys at `RATE` for the miss-ratio curves (feature
//! `adaptive`).

use std::error::Error;
use std::hint::black_box;
use std::task::{Context, Poll, Waker};

use nfcs_performance::prelude::*;

/// Polls a future once: a memory hit completes without waiting.
fn ready<F: Future>(future: F) -> Result<F::Output, Box<dyn Error>> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => Ok(output),
        Poll::Pending => Err("a memory hit did not complete at once".into()),
    }
}

/// The `index`th argument as a number, or `default`.
fn argument(index: usize, default: usize) -> Result<usize, Box<dyn Error>> {
    match std::env::args().nth(index) {
        Some(text) => Ok(text.parse().map_err(|error| format!("{text:?}: {error}"))?),
        None => Ok(default),
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "get".to_owned());
    let rounds = argument(2, 3)?;
    let reads = argument(3, 10_000_000)?;
    let directory = tempfile::tempdir()?;
    let disk = DiskCache::open(directory.path(), DiskConfig::new(64 << 20))?;
    let memory = MemoryCache::new(256 << 20)?;
    let builder = NFCSCacheManager::builder()
        .memory(memory.clone())
        .disk(disk);
    // `HIT_LOOP_WARMING=N`: with popularity tracking, one read in N sampled.
    #[cfg(feature = "warming")]
    let builder = match std::env::var("HIT_LOOP_WARMING") {
        Ok(every) => builder.warming(
            nfcs_performance::WarmingConfig::default()
                .sample_every(every.parse()?)
                .warm_on_startup(false)
                .persist_interval(None),
        ),
        Err(_) => builder,
    };
    // `HIT_LOOP_ADAPTIVE=rate`: with adaptive sizing, keys sampled at that rate.
    #[cfg(feature = "adaptive")]
    let builder = match std::env::var("HIT_LOOP_ADAPTIVE") {
        Ok(rate) => builder.adaptive(
            nfcs_performance::AdaptiveConfig::new(16 << 20, 256 << 20)
                .sampling_rate(rate.parse()?)
                .interval(Some(std::time::Duration::from_secs(3600))),
        ),
        Err(_) => builder,
    };
    let manager = builder.build();
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let keys: Vec<String> = (0..10_000).map(|index| format!("key:{index:07}")).collect();
    for key in &keys {
        runtime.block_on(manager.set(
            key,
            &"a 48-byte value for the hit path measurements..",
            None,
        ))?;
    }
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let order: Vec<usize> = (0..1 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 20) % keys.len() as u64) as usize
        })
        .collect();
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let started = std::time::Instant::now();
        for read in 0..reads {
            let key = &keys[order[read % order.len()]];
            let hit = match path.as_str() {
                "memory" => memory.get_entry(key)?.is_some(),
                "bytes" => ready(manager.get_bytes(key))??.is_some(),
                "set" => runtime
                    .block_on(manager.set(
                        key,
                        &"a new 48-byte value, written through the tiers",
                        None,
                    ))
                    .is_ok(),
                _ => ready(manager.get::<String>(key))??.is_some(),
            };
            black_box(hit);
        }
        best = best.min(started.elapsed().as_nanos() as f64 / reads.max(1) as f64);
    }
    println!("{path}: {best:.1} ns per operation (best of {rounds})");
    Ok(())
}
