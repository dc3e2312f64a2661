//! The memory tier against its peers, in one process and one run, interleaved.
//!
//! Workload (issue 2): Zipf-distributed keys over 1,000,000 distinct keys (exponents 0.99 and
//! 1.2), every cache sized to hold 100,000 entries (10 % of the key space) of 64-byte values,
//! 90 % reads, a read miss inserts the key, 10 % writes; 1 and 2 threads.
//!
//! Subjects:
//! - `nfcs_lru`, `nfcs_s3fifo`: `MemoryCache` with each policy; the byte budget is 100,000 of
//!   its own (allocator-measured) entry charges.
//! - `moka`: `moka::sync::Cache` (W-TinyLFU) with a weigher.
//! - `quick_cache`: `quick_cache::sync::Cache` (S3-FIFO-like "CLOCK-PRO") with a weighter.
//!   Both peers weigh an entry as key + value + `LRU_ENTRY_OVERHEAD` bytes and get the budget
//!   of 100,000 such entries, so every cache holds the same number of entries and hit ratios
//!   compare policies, not budgets.
//! - `sharded_lru`: the plain baseline, 16 `parking_lot::Mutex<lru::LruCache>` shards of
//!   6,250 entries.
//! - `hashmap_read_only`: a prefilled `HashMap` read with the same keys (every read a hit, no
//!   writes): the cost of a hash lookup and a value clone, the floor the others build on.
//!
//! Interleaved rounds (issue 16): every subject of a configuration (exponent, threads) is built
//! and warmed first; then each of `ROUNDS` rounds runs every subject for one slice of about
//! `SLICE` (after a short untimed lead-in), in an order rotated each round, so a change in the
//! machine's load during the run falls on all subjects alike instead of on whichever criterion
//! measured last. Each round gives every subject an ops/s figure and a ratio to quick_cache
//! measured moments apart; the table shows the medians and the spread (lowest to highest
//! round) of the ratios. The 1-minute load average is read before and after each
//! configuration. Hit ratios are counted on a deterministic single-threaded replay of the same
//! stretch of the trace for every cache (after the same warm-up). With `NFCS_BENCH_OUT=<dir>`
//! everything is written to `<dir>/memory_tier.json`, which `cargo xtask compare` renders into
//! the table in docs/benchmarks.md. `NFCS_MEMORY_TIER_ROUNDS` overrides the number of rounds.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nfcs_cache_core::{Bytes, EvictionPolicy, LRU_ENTRY_OVERHEAD, MemoryCache, MemoryConfig};
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Zipf};

const DISTINCT_KEYS: usize = 1_000_000;
const CAPACITY_ENTRIES: u64 = 100_000;
const VALUE_LEN: usize = 64;
const WRITE_PERCENT: u32 = 10;
/// Operations in one pre-generated trace; threads start at different offsets in it.
const TRACE_LEN: usize = 1 << 23;
/// Operations run before measuring, so every cache starts measured runs full and warm.
const WARM_UP_OPERATIONS: usize = 2_000_000;
/// Operations replayed on one thread after the warm-up to count the hit ratio: the same
/// stretch of the same trace for every cache, so the ratios compare policies exactly.
const HIT_RATIO_OPERATIONS: usize = 4_000_000;
const WRITE_FLAG: u32 = 1 << 31;
/// Interleaved rounds per configuration (`NFCS_MEMORY_TIER_ROUNDS` overrides it).
const ROUNDS: usize = 11;
/// The timed part of one subject's slice in a round.
const SLICE: Duration = Duration::from_millis(250);
/// Operations run untimed before each slice, so a slice does not start on another subject's
/// CPU-cache contents.
const LEAD_IN_OPERATIONS: u64 = 20_000;

/// What the workload needs of a cache.
trait Subject: Send + Sync {
    /// Reads `key`; whether it was a hit.
    fn read(&self, key: &str) -> bool;
    /// Writes `value` under `key`.
    fn write(&self, key: &str, value: Bytes);
}

impl Subject for MemoryCache {
    #[inline]
    fn read(&self, key: &str) -> bool {
        black_box(self.get(key).ok().flatten()).is_some()
    }
    #[inline]
    fn write(&self, key: &str, value: Bytes) {
        let _ = black_box(self.insert(key, value, None));
    }
}

impl<S: BuildHasher + Clone + Send + Sync + 'static> Subject
    for moka::sync::Cache<String, Bytes, S>
{
    #[inline]
    fn read(&self, key: &str) -> bool {
        black_box(self.get(key)).is_some()
    }
    #[inline]
    fn write(&self, key: &str, value: Bytes) {
        self.insert(key.to_owned(), value);
    }
}

#[derive(Clone)]
struct EntryWeighter;

impl quick_cache::Weighter<String, Bytes> for EntryWeighter {
    fn weight(&self, key: &String, value: &Bytes) -> u64 {
        (key.len() + value.len()) as u64 + LRU_ENTRY_OVERHEAD
    }
}

type QuickCache = quick_cache::sync::Cache<String, Bytes, EntryWeighter>;

impl Subject for QuickCache {
    #[inline]
    fn read(&self, key: &str) -> bool {
        black_box(self.get(key)).is_some()
    }
    #[inline]
    fn write(&self, key: &str, value: Bytes) {
        self.insert(key.to_owned(), value);
    }
}

/// The plain baseline: 16 mutex-guarded `lru::LruCache` shards.
struct ShardedLru {
    hasher: foldhash::fast::RandomState,
    shards: Vec<parking_lot::Mutex<lru::LruCache<String, Bytes>>>,
}

impl ShardedLru {
    fn new(capacity: usize, shards: usize) -> ShardedLru {
        let per_shard = NonZeroUsize::new(capacity / shards).expect("non-zero shard capacity");
        ShardedLru {
            hasher: foldhash::fast::RandomState::default(),
            shards: (0..shards)
                .map(|_| parking_lot::Mutex::new(lru::LruCache::new(per_shard)))
                .collect(),
        }
    }

    fn shard(&self, key: &str) -> &parking_lot::Mutex<lru::LruCache<String, Bytes>> {
        let hash = self.hasher.hash_one(key);
        &self.shards[(hash >> 32) as usize % self.shards.len()]
    }
}

impl Subject for ShardedLru {
    #[inline]
    fn read(&self, key: &str) -> bool {
        black_box(self.shard(key).lock().get(key).cloned()).is_some()
    }
    #[inline]
    fn write(&self, key: &str, value: Bytes) {
        self.shard(key).lock().put(key.to_owned(), value);
    }
}

/// Every key present, never written: the lookup-and-clone floor.
struct ReadOnlyMap(HashMap<String, Bytes, foldhash::fast::RandomState>);

impl Subject for ReadOnlyMap {
    #[inline]
    fn read(&self, key: &str) -> bool {
        black_box(self.0.get(key).cloned()).is_some()
    }
    #[inline]
    fn write(&self, _key: &str, _value: Bytes) {}
}

/// A Zipf trace: key indices, with `WRITE_FLAG` set on writes.
fn trace(exponent: f64, seed: u64) -> Vec<u32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let zipf = Zipf::new(DISTINCT_KEYS as f64, exponent).expect("valid Zipf parameters");
    (0..TRACE_LEN)
        .map(|_| {
            // Ranks are 1-based; rank 1 is the most popular key.
            let key = zipf.sample(&mut rng) as u32 - 1;
            let write = rng.random_range(0..100) < WRITE_PERCENT;
            key | if write { WRITE_FLAG } else { 0 }
        })
        .collect()
}

struct Workload {
    keys: Vec<String>,
    trace: Vec<u32>,
}

/// Runs `operations` operations of the trace from `start`, returns (reads, hits).
fn drive(
    subject: &dyn Subject,
    workload: &Workload,
    start: usize,
    operations: usize,
) -> (u64, u64) {
    let mut reads = 0;
    let mut hits = 0;
    let mut position = start % TRACE_LEN;
    for _ in 0..operations {
        let op = workload.trace[position];
        position += 1;
        if position == TRACE_LEN {
            position = 0;
        }
        let key = &workload.keys[(op & !WRITE_FLAG) as usize];
        if op & WRITE_FLAG != 0 {
            subject.write(key, Bytes::from(vec![(op & 0xff) as u8; VALUE_LEN]));
        } else {
            reads += 1;
            if subject.read(key) {
                hits += 1;
            } else {
                subject.write(key, Bytes::from(vec![(op & 0xff) as u8; VALUE_LEN]));
            }
        }
    }
    (reads, hits)
}

/// Runs `operations` spread over `threads` threads; returns the wall time of the parallel part.
fn run_parallel(
    subject: &dyn Subject,
    workload: &Workload,
    cursor: &AtomicUsize,
    operations: u64,
    threads: usize,
) -> Duration {
    let per_thread = (operations as usize).div_ceil(threads);
    let start = cursor.fetch_add(per_thread * threads, Ordering::Relaxed);
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    // Threads walk disjoint stretches of the trace.
                    drive(
                        subject,
                        workload,
                        start + thread * (TRACE_LEN / threads),
                        per_thread,
                    )
                })
            })
            .collect();
        barrier.wait();
        let began = Instant::now();
        for handle in handles {
            handle.join().expect("a benchmark thread panicked");
        }
        began.elapsed()
    })
}

/// Builds a fresh subject for a workload.
type Factory = Box<dyn Fn(&Workload) -> Box<dyn Subject>>;

fn subjects() -> Vec<(&'static str, Factory)> {
    let key_len = "key:0000000".len();
    let lru_budget = CAPACITY_ENTRIES * EvictionPolicy::Lru.entry_charge(key_len, VALUE_LEN, false);
    let s3_budget =
        CAPACITY_ENTRIES * EvictionPolicy::S3Fifo.entry_charge(key_len, VALUE_LEN, false);
    vec![
        (
            "nfcs_lru",
            Box::new(move |_: &Workload| {
                Box::new(MemoryCache::new(lru_budget).expect("valid budget")) as Box<dyn Subject>
            }),
        ),
        (
            "nfcs_s3fifo",
            Box::new(move |_: &Workload| {
                Box::new(
                    MemoryCache::with_config(
                        MemoryConfig::new(s3_budget).eviction_policy(EvictionPolicy::S3Fifo),
                    )
                    .expect("valid budget"),
                ) as Box<dyn Subject>
            }),
        ),
        (
            "quick_cache",
            Box::new(move |_: &Workload| {
                Box::new(QuickCache::with_weighter(
                    CAPACITY_ENTRIES as usize,
                    lru_budget,
                    EntryWeighter,
                )) as Box<dyn Subject>
            }),
        ),
        (
            "moka",
            Box::new(move |_: &Workload| {
                Box::new(
                    moka::sync::Cache::builder()
                        .max_capacity(lru_budget)
                        .weigher(|key: &String, value: &Bytes| {
                            (key.len() + value.len()) as u32 + LRU_ENTRY_OVERHEAD as u32
                        })
                        .build(),
                ) as Box<dyn Subject>
            }),
        ),
        (
            "sharded_lru",
            Box::new(|_: &Workload| {
                Box::new(ShardedLru::new(CAPACITY_ENTRIES as usize, 16)) as Box<dyn Subject>
            }),
        ),
        (
            "hashmap_read_only",
            Box::new(|workload: &Workload| {
                let map = workload
                    .keys
                    .iter()
                    .map(|key| (key.clone(), Bytes::from(vec![1_u8; VALUE_LEN])))
                    .collect();
                Box::new(ReadOnlyMap(map)) as Box<dyn Subject>
            }),
        ),
    ]
}

/// A subject built, warmed and calibrated: its name, the cache, its replayed hit ratio, its
/// position in the trace and the operations of one slice.
type Prepared = (&'static str, Box<dyn Subject>, f64, AtomicUsize, u64);

/// One configuration's results for one subject.
struct Measured {
    name: &'static str,
    exponent: f64,
    threads: usize,
    hit_ratio: f64,
    /// Ops/s of each round.
    rates: Vec<f64>,
    /// The ratio to quick_cache of each round (empty for quick_cache itself).
    ratios: Vec<f64>,
    /// 1-minute load average before and after the configuration.
    load: (Option<f64>, Option<f64>),
}

/// The 1-minute load average, where `/proc/loadavg` exists.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        len if len % 2 == 1 => sorted[len / 2],
        len => (sorted[len / 2 - 1] + sorted[len / 2]) / 2.0,
    }
}

fn main() {
    // `cargo bench` passes `--bench` (and xtask `--noplot`, for criterion); a name filter
    // selects the configurations whose group name contains it.
    let filter = std::env::args()
        .skip(1)
        .find(|argument| !argument.starts_with("--"));
    let rounds = std::env::var("NFCS_MEMORY_TIER_ROUNDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .filter(|&rounds: &usize| rounds > 0)
        .unwrap_or(ROUNDS);
    let keys: Vec<String> = (0..DISTINCT_KEYS)
        .map(|index| format!("key:{index:07}"))
        .collect();
    let mut measured = Vec::new();
    for exponent in [0.99, 1.2] {
        let workload = Workload {
            keys: keys.clone(),
            trace: trace(exponent, 0x5eed_0000 + (exponent * 100.0) as u64),
        };
        for threads in [1_usize, 2] {
            let group = format!("memory_tier/zipf_{exponent}/{threads}t");
            if filter
                .as_ref()
                .is_some_and(|filter| !group.contains(filter.as_str()))
            {
                continue;
            }
            measured.extend(configuration(&workload, exponent, threads, rounds));
        }
    }
    report(&measured);
}

/// Builds, warms and replays every subject, then measures them in interleaved rounds.
fn configuration(
    workload: &Workload,
    exponent: f64,
    threads: usize,
    rounds: usize,
) -> Vec<Measured> {
    let load_before = load_average();
    let mut subjects: Vec<Prepared> = subjects()
        .into_iter()
        .map(|(name, make)| {
            let subject = make(workload);
            drive(&*subject, workload, 0, WARM_UP_OPERATIONS);
            let (reads, hits) = drive(
                &*subject,
                workload,
                WARM_UP_OPERATIONS,
                HIT_RATIO_OPERATIONS,
            );
            let cursor = AtomicUsize::new(WARM_UP_OPERATIONS + HIT_RATIO_OPERATIONS);
            // Calibration: operations that take about one slice.
            let probe = 200_000;
            let elapsed = run_parallel(&*subject, workload, &cursor, probe, threads);
            let per_slice = (probe as f64 * SLICE.as_secs_f64() / elapsed.as_secs_f64().max(1e-9))
                .clamp(10_000.0, 50_000_000.0) as u64;
            (
                name,
                subject,
                hits as f64 / reads.max(1) as f64,
                cursor,
                per_slice,
            )
        })
        .collect();
    let count = subjects.len();
    let mut rates = vec![Vec::with_capacity(rounds); count];
    for round in 0..rounds {
        for offset in 0..count {
            let index = (round + offset) % count;
            let (_, subject, _, cursor, per_slice) = &mut subjects[index];
            run_parallel(&**subject, workload, cursor, LEAD_IN_OPERATIONS, threads);
            let elapsed = run_parallel(&**subject, workload, cursor, *per_slice, threads);
            rates[index].push(*per_slice as f64 / elapsed.as_secs_f64().max(1e-9));
        }
    }
    let load = (load_before, load_average());
    let reference = subjects
        .iter()
        .position(|(name, ..)| *name == "quick_cache");
    let group = format!("zipf {exponent} {threads}t");
    println!(
        "\n{group} ({rounds} interleaved rounds, load {load_before:?} -> {:?}):",
        load.1
    );
    subjects
        .iter()
        .enumerate()
        .map(|(index, (name, _, hit_ratio, ..))| {
            let ratios: Vec<f64> = match reference {
                Some(reference) if reference != index => rates[index]
                    .iter()
                    .zip(&rates[reference])
                    .map(|(ours, theirs)| ours / theirs)
                    .collect(),
                _ => Vec::new(),
            };
            println!(
                "  {name:<18} {:>6.2} M ops/s  vs quick_cache {:>5.2}x  hit ratio {:.2} %",
                median(&rates[index]) / 1e6,
                if ratios.is_empty() {
                    1.0
                } else {
                    median(&ratios)
                },
                hit_ratio * 100.0
            );
            Measured {
                name,
                exponent,
                threads,
                hit_ratio: *hit_ratio,
                rates: rates[index].clone(),
                ratios,
                load,
            }
        })
        .collect()
}

fn report(measured: &[Measured]) {
    let Some(directory) = std::env::var_os("NFCS_BENCH_OUT") else {
        return;
    };
    let rows: Vec<serde_json::Value> = measured
        .iter()
        .map(|row| {
            serde_json::json!({
                "subject": row.name,
                "group": format!("memory_tier/zipf_{}/{}t", row.exponent, row.threads),
                "exponent": row.exponent,
                "threads": row.threads,
                "hit_ratio": row.hit_ratio,
                "ops_per_second": row.rates,
                "ratio_to_quick_cache": row.ratios,
                "load_before": row.load.0,
                "load_after": row.load.1,
                "slice_seconds": SLICE.as_secs_f64(),
            })
        })
        .collect();
    let path = std::path::Path::new(&directory).join("memory_tier.json");
    let written = std::fs::create_dir_all(&directory)
        .and_then(|()| std::fs::write(&path, serde_json::to_vec_pretty(&rows).unwrap_or_default()));
    if let Err(error) = written {
        eprintln!("could not write {}: {error}", path.display());
    }
}
