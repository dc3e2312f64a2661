//! Instruction-count probes of the cache hot paths, for `cargo xtask perf-check` (which runs
//! this under `valgrind --tool=callgrind`; see `xtask/src/perf.rs`).
//!
//! `cargo run --release -p nfcs-performance --example perf_probe_cache -- <PROBE> <ITERATIONS>`
//! builds the probe's fixed inputs, runs a warm-up outside the measured region, then runs
//! `ITERATIONS` operations inside [`measured_region`], the one function whose instructions
//! callgrind collects (`--collect-atstart=no --toggle-collect=*measured_region*`). Everything is
//! single-threaded and seeded: the memory tier's hash seed and shard count are fixed, the keys
//! are read in a fixed pseudo-random order; the disk tier's index hashes with a per-process
//! seed, which moves its counts by a little (perf-check measures the spread).
//!
//! Probes:
//! - `memory-hit`: `MemoryCache::get` of a resident key (10,000 keys of 48-byte values);
//! - `manager-hit`: `NFCSCacheManager::get::<String>` of a key resident in the memory tier
//!   (the path of `examples/hit_loop.rs`: lookup, then decoding the typed value);
//! - `disk-read`: `DiskCache::get` of a resident 1 KiB value (1,000 keys in a temporary
//!   directory, the files in the page cache after the warm-up);
//! - `codec-small`: `Codec::encode` then `Codec::decode` of a small record (under the
//!   compression threshold, so no zstd);
//! - `codec-zstd`: the same of an 8 KiB text, which is compressed.
//!
//! Prints the probe, the iterations and a checksum of the results (so nothing is optimised
//! away and a broken probe shows).

use std::error::Error;
use std::hint::black_box;
use std::task::{Context, Poll, Waker};

use nfcs_cache_core::{Codec, MemoryConfig, Ttl};
use nfcs_performance::prelude::*;
use serde::{Deserialize, Serialize};

/// Runs `operation` `iterations` times: the only instructions callgrind collects.
#[inline(never)]
fn measured_region(iterations: usize, mut operation: impl FnMut(usize) -> usize) -> usize {
    let mut checksum = 0_usize;
    for index in 0..iterations {
        checksum = checksum.wrapping_add(operation(black_box(index)));
    }
    checksum
}

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

/// A fixed pseudo-random order of `len` indices (xorshift, fixed seed).
fn order(len: usize) -> Vec<usize> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..1 << 16)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 20) % len as u64) as usize
        })
        .collect()
}

/// A record of the size a typical cached value has.
#[derive(Serialize, Deserialize)]
struct Record {
    id: u64,
    name: String,
    score: f64,
    tags: Vec<String>,
    counts: [u32; 4],
}

/// A fixed memory tier: 8 shards, hash seed 1.
fn memory() -> Result<MemoryCache, Box<dyn Error>> {
    Ok(MemoryCache::with_config(
        MemoryConfig::new(64 << 20).shards(8).hash_seed(Some(1)),
    )?)
}

const VALUE: &str = "a 48-byte value for the hit path measurements..";

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let probe = args
        .next()
        .ok_or("usage: perf_probe_cache <PROBE> <ITERATIONS>")?;
    let iterations: usize = args
        .next()
        .ok_or("usage: perf_probe_cache <PROBE> <ITERATIONS>")?
        .parse()?;
    let keys: Vec<String> = (0..10_000).map(|index| format!("key:{index:07}")).collect();
    let order = order(keys.len());
    let key = |index: usize| keys[order[index % order.len()]].as_str();
    let checksum = match probe.as_str() {
        "memory-hit" => {
            let memory = memory()?;
            for key in &keys {
                memory.insert(key, VALUE.as_bytes(), Ttl::Never)?;
            }
            let mut get = |index: usize| {
                memory
                    .get(key(index))
                    .ok()
                    .flatten()
                    .map_or(0, |value| value.len())
            };
            measured_region_warm(iterations, &mut get)
        }
        "manager-hit" => {
            let memory = memory()?;
            let manager = NFCSCacheManager::builder().memory(memory).build();
            let runtime = tokio::runtime::Builder::new_current_thread().build()?;
            for key in &keys {
                runtime.block_on(manager.set(key, &VALUE, None))?;
            }
            // Checked once outside the region, so that the region can ignore errors.
            ready(manager.get::<String>(key(0)))??.ok_or("the value is not resident")?;
            let mut get = |index: usize| match ready(manager.get::<String>(key(index))) {
                Ok(Ok(Some(value))) => value.len(),
                _ => 0,
            };
            measured_region_warm(iterations, &mut get)
        }
        "disk-read" => {
            let directory = tempfile::tempdir()?;
            let disk = DiskCache::open(directory.path(), DiskConfig::new(64 << 20))?;
            let value = vec![0x5a_u8; 1024];
            let keys = &keys[..1000];
            for key in keys {
                disk.insert(key, &value, Ttl::Never)?;
            }
            let mut get = |index: usize| {
                disk.get(&keys[order[index % order.len()] % keys.len()])
                    .ok()
                    .flatten()
                    .map_or(0, |value| value.len())
            };
            measured_region_warm(iterations, &mut get)
        }
        "codec-small" | "codec-zstd" => {
            let codec = Codec::default();
            let record = Record {
                id: 42,
                name: "control-loop/phase-estimate".to_owned(),
                score: 0.8125,
                tags: vec!["kuramoto".to_owned(), "mean-field".to_owned()],
                counts: [1, 2, 3, 5],
            };
            let text: String = (0..8192 / 16)
                .map(|index| format!("token{:03} eleven ", index % 97))
                .collect();
            let mut round_trip = |_: usize| {
                if probe == "codec-small" {
                    codec
                        .encode(&record)
                        .ok()
                        .and_then(|frame| codec.decode::<Record>(&frame).ok())
                        .map_or(0, |record| record.name.len())
                } else {
                    codec
                        .encode(&text)
                        .ok()
                        .and_then(|frame| codec.decode::<String>(&frame).ok())
                        .map_or(0, |text| text.len())
                }
            };
            measured_region_warm(iterations, &mut round_trip)
        }
        other => {
            return Err(format!(
                "unknown probe {other:?}: memory-hit, manager-hit, disk-read, codec-small or \
                 codec-zstd"
            )
            .into());
        }
    };
    if checksum == 0 {
        return Err(format!("{probe}: every operation failed").into());
    }
    println!("{probe}: {iterations} iterations, checksum {checksum}");
    Ok(())
}

/// A warm-up of `iterations` operations outside the region (first-touch allocations, lazily
/// built state), then the measured run.
fn measured_region_warm(iterations: usize, operation: &mut impl FnMut(usize) -> usize) -> usize {
    for index in 0..iterations {
        black_box(operation(index));
    }
    measured_region(iterations, operation)
}
