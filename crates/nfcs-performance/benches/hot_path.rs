//! The memory-hit path, measured side by side in one process: what the manager adds to a
//! memory-tier hit, and what metrics cost, with quick_cache as the anchor.
//!
//! Subjects, each reading 10,000 resident keys of 48-byte values (each value its own
//! allocation, as in a real cache) in one fixed Zipf-distributed order (exponent 1.0, a hot set
//! as caches see; a cyclic scan would make LRU move every entry on every hit):
//! - `quick_cache`: `quick_cache::sync::Cache::get` (the peer, with its own copy of the data);
//! - `memory_tier`: `MemoryCache::get_entry` on the manager's own memory tier;
//! - `memory_tier_then_decode`: the same lookup and `Codec::decode::<String>`: the manager's hit
//!   path with nothing the manager adds (the path before this issue, less its async wrapper);
//! - `manager_get_bytes`: `NFCSCacheManager::get_bytes` (the manager, no decoding);
//! - `manager_get`: `NFCSCacheManager::get::<String>` (the typed path users call);
//! - each `memory_tier` / `manager` subject again with `+metrics`: a second manager built under
//!   a real recorder (metrics-exporter-prometheus), so every counter increment and sampled
//!   histogram record lands in it. Without the suffix no recorder is installed and the handles
//!   do nothing.
//!
//! The `memory_tier` and `manager` subjects read the same tier, so their difference is what
//! the manager's code adds, not a difference in where the data lies.
//!
//! A manager over memory and a disk tier is used, so that the hit path is the multi-tier one
//! (the write-ordering machinery exists; a memory hit must not touch it).
//!
//! Criterion measures each subject on one thread. Because the figures compared differ by a
//! few per cent, which is the size of this machine's drift between two criterion groups, the
//! report phase then measures the same subjects in interleaved rounds (every subject once per
//! round, 40 rounds, medians), on one thread and on two threads reading the same cache, and
//! prints the ratios; with `NFCS_BENCH_OUT=<dir>` it also writes them to
//! `<dir>/hot_path.json`, which `cargo xtask bench` turns into the table in
//! `docs/benchmarks.md`.

use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use nfcs_performance::prelude::*;

const KEYS: usize = 10_000;
const VALUE: &str = "a 48-byte value for the hit path measurements..";

/// Polls a future once: a memory hit through the manager completes without waiting.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a memory hit did not complete at once"),
    }
}

struct Subjects {
    keys: Vec<String>,
    /// Positions in `keys`, Zipf-distributed.
    trace: Vec<u32>,
    quick: quick_cache::sync::Cache<String, Bytes>,
    memory: MemoryCache,
    memory_metrics: MemoryCache,
    manager: NFCSCacheManager,
    manager_metrics: NFCSCacheManager,
    codec: Codec,
    _directories: Vec<tempfile::TempDir>,
}

/// A fixed Zipf(1.0) trace over `keys` positions (inverse transform on the exact CDF, from a
/// seeded xorshift), the same for every subject.
fn zipf_trace(keys: usize, length: usize) -> Vec<u32> {
    let weights: Vec<f64> = (1..=keys).map(|rank| 1.0 / rank as f64).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(keys);
    let mut sum = 0.0;
    for weight in weights {
        sum += weight / total;
        cdf.push(sum);
    }
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let uniform = (state >> 11) as f64 / (1_u64 << 53) as f64;
            cdf.partition_point(|&bound| bound < uniform).min(keys - 1) as u32
        })
        .collect()
}

fn manager(name: &str, directories: &mut Vec<tempfile::TempDir>) -> NFCSCacheManager {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let disk = DiskCache::open(directory.path(), DiskConfig::new(64 << 20)).expect("a disk tier");
    directories.push(directory);
    NFCSCacheManager::builder()
        .name(name)
        .memory(
            MemoryCache::with_config(MemoryConfig::new(256 << 20).instance(name))
                .expect("a memory tier"),
        )
        .disk(disk)
        .build()
}

fn subjects() -> Subjects {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let mut directories = Vec::new();
    let manager_plain = manager("bench", &mut directories);
    let manager_metrics =
        metrics::with_local_recorder(&recorder, || manager("bench-metrics", &mut directories));
    let memory = manager_plain.memory().expect("a memory tier").clone();
    let memory_metrics = manager_metrics.memory().expect("a memory tier").clone();
    // The handles keep the recorder's storage alive; the recorder itself is kept for the run.
    std::mem::forget(recorder);
    let codec = Codec::default();
    // Every entry of every subject gets a value of its own, as in a real cache: values that
    // shared one allocation would share one reference count, and every read would find it in
    // the first-level cache where a real read misses on the value's header.
    let frame = || codec.encode(&VALUE).expect("encodes");
    let quick = quick_cache::sync::Cache::new(KEYS * 2);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let keys: Vec<String> = (0..KEYS).map(|index| format!("key:{index:07}")).collect();
    for key in &keys {
        quick.insert(key.clone(), frame());
        runtime.block_on(async {
            manager_plain.set(key, &VALUE, None).await.expect("stored");
            manager_metrics
                .set(key, &VALUE, None)
                .await
                .expect("stored");
        });
    }
    Subjects {
        keys,
        trace: zipf_trace(KEYS, 1 << 20),
        quick,
        memory,
        memory_metrics,
        manager: manager_plain,
        manager_metrics,
        codec,
        _directories: directories,
    }
}

type Read = fn(&Subjects, &str) -> bool;

const READS: [(&str, Read); 8] = [
    ("quick_cache", |s, key| {
        black_box(s.quick.get(key)).is_some()
    }),
    ("memory_tier", |s, key| {
        black_box(s.memory.get_entry(key).ok().flatten()).is_some()
    }),
    ("memory_tier+metrics", |s, key| {
        black_box(s.memory_metrics.get_entry(key).ok().flatten()).is_some()
    }),
    ("memory_tier_then_decode", |s, key| {
        let entry = s.memory.get_entry(key).ok().flatten();
        black_box(entry.and_then(|entry| s.codec.decode::<String>(&entry.value).ok())).is_some()
    }),
    ("manager_get_bytes", |s, key| {
        black_box(ready(s.manager.get_bytes(key)).ok().flatten()).is_some()
    }),
    ("manager_get_bytes+metrics", |s, key| {
        black_box(ready(s.manager_metrics.get_bytes(key)).ok().flatten()).is_some()
    }),
    ("manager_get", |s, key| {
        black_box(ready(s.manager.get::<String>(key)).ok().flatten()).is_some()
    }),
    ("manager_get+metrics", |s, key| {
        black_box(ready(s.manager_metrics.get::<String>(key)).ok().flatten()).is_some()
    }),
];

fn criterion_runs(criterion: &mut Criterion, subjects: &Subjects) {
    let mut group = criterion.benchmark_group("hot_path/memory_hit/1t");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (name, read) in READS {
        let mut cursor = 0;
        group.bench_function(name, |bencher| {
            bencher.iter(|| {
                cursor = (cursor + 1) % subjects.trace.len();
                let key = &subjects.keys[subjects.trace[cursor] as usize];
                assert!(read(subjects, key));
            })
        });
    }
    group.finish();
}

/// Nanoseconds per read of `read` over `reads` reads, on `threads` threads reading the same
/// cache from different places of the key order.
fn time_reads(subjects: &Subjects, read: Read, reads: usize, threads: usize) -> f64 {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..threads {
            scope.spawn(move || {
                let trace = &subjects.trace;
                let mut cursor = thread * trace.len() / threads;
                for _ in 0..reads {
                    cursor = (cursor + 1) % trace.len();
                    black_box(read(subjects, &subjects.keys[trace[cursor] as usize]));
                }
            });
        }
    });
    started.elapsed().as_nanos() as f64 / reads as f64
}

fn interleaved(subjects: &Subjects) {
    const ROUNDS: usize = 40;
    const READS_PER_ROUND: usize = 100_000;
    let mut rows = Vec::new();
    for threads in [1_usize, 2] {
        let mut samples = vec![Vec::with_capacity(ROUNDS); READS.len()];
        for _ in 0..ROUNDS {
            for (index, (_, read)) in READS.iter().enumerate() {
                samples[index].push(time_reads(subjects, *read, READS_PER_ROUND, threads));
            }
        }
        let medians: Vec<f64> = samples
            .iter_mut()
            .map(|samples| {
                samples.sort_by(f64::total_cmp);
                samples[samples.len() / 2]
            })
            .collect();
        let by_name = |name: &str| {
            READS
                .iter()
                .position(|(subject, _)| *subject == name)
                .map_or(f64::NAN, |index| medians[index])
        };
        println!("\nmemory-hit path, {threads} thread(s), median of {ROUNDS} interleaved rounds:");
        for ((name, _), median) in READS.iter().zip(&medians) {
            let baseline = by_name("quick_cache");
            println!(
                "  {name:<28} {median:>7.1} ns/read  {:>5.2}x quick_cache's throughput",
                baseline / median
            );
            rows.push(serde_json::json!({
                "threads": threads,
                "subject": name,
                "ns_per_read": median,
                "vs_quick_cache": baseline / median,
            }));
        }
        let overhead = |with: &str, without: &str| (by_name(with) / by_name(without) - 1.0) * 100.0;
        println!(
            "  metrics cost: memory tier {:+.1} %, manager get {:+.1} %; the manager adds {:+.1} % to a memory hit and decode",
            overhead("memory_tier+metrics", "memory_tier"),
            overhead("manager_get+metrics", "manager_get"),
            overhead("manager_get", "memory_tier_then_decode"),
        );
    }
    if let Some(directory) = std::env::var_os("NFCS_BENCH_OUT") {
        let path = std::path::Path::new(&directory).join("hot_path.json");
        let written = std::fs::create_dir_all(&directory).and_then(|()| {
            std::fs::write(&path, serde_json::to_vec_pretty(&rows).unwrap_or_default())
        });
        if let Err(error) = written {
            eprintln!("could not write {}: {error}", path.display());
        }
    }
}

fn main() {
    let subjects = Arc::new(subjects());
    let mut criterion = Criterion::default().configure_from_args();
    criterion_runs(&mut criterion, &subjects);
    criterion.final_summary();
    interleaved(&subjects);
}
