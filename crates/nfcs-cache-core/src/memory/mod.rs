//! The in-memory tier: a sharded, byte-budgeted cache with LRU or S3-FIFO eviction and TTLs.

mod arena;
mod lru_store;
mod s3fifo_store;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use foldhash::SharedSeed;
use foldhash::fast::SeedableRandomState;
use parking_lot::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::Clock;
use crate::error::{CacheError, check_key, check_ttl};
use crate::expiry::Ttl;
use crate::expiry::monotonic::{self, NEVER};
use crate::pattern::Pattern;
use crate::stats::TierStats;
use crate::telemetry::{self, InstanceLabels, Operation, TierMetrics};
use crate::tier::{CacheEntry, CacheTier, TierResult, ready};

use lru_store::LruStore;
use s3fifo_store::S3FifoStore;

/// Bytes of bookkeeping charged per entry under LRU, on top of its key and value.
///
/// It covers what an entry costs the allocator besides its key and value bytes: the entry's
/// slot in its shard's arena (the intrusive list links, the hash, the inline or boxed key), the
/// hash table slot and the shared header of the value. The
/// figures here were measured with a counting allocator (the `budget_matches_the_allocator`
/// test checks them), so a budget of 1 GB means about 1 GB of heap.
pub const LRU_ENTRY_OVERHEAD: u64 = 176;
/// Bytes of bookkeeping charged per entry under S3-FIFO (arena slot, table slot, queue slot,
/// ghost share, key and value headers), on top of its key and value.
pub const S3FIFO_ENTRY_OVERHEAD: u64 = 184;
/// Extra bytes charged for an entry that has a TTL: its place in the expiry queue.
pub const TTL_ENTRY_OVERHEAD: u64 = 24;

/// The bytes charged against the budget for an entry under `overhead` (a policy's per-entry
/// overhead) with `deadline` ([`NEVER`] for none).
#[inline]
const fn charge(overhead: u64, key_len: usize, value_len: usize, deadline: u64) -> u64 {
    let ttl = if deadline == NEVER {
        0
    } else {
        TTL_ENTRY_OVERHEAD
    };
    key_len as u64 + value_len as u64 + overhead + ttl
}

/// A shard never has a smaller budget than this (unless the whole cache is smaller), so that a
/// shard can hold entries of a useful size.
const MIN_SHARD_BYTES: u64 = 1 << 20;
/// A shard never has a larger budget than this (256 GiB), which keeps its entry count below
/// 2^32.
const MAX_SHARD_BYTES: u64 = 1 << 38;
/// The most shards a cache is split into.
const MAX_SHARDS: usize = 256;
/// Expired entries reclaimed, at most, by one write.
const RECLAIM_PER_WRITE: usize = 8;

/// Which entry the memory tier evicts when it is over budget.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EvictionPolicy {
    /// Least recently used: the spec's policy, and the default. A hit moves the entry to the
    /// front of its shard's list when it has left the most recent quarter of the list (lazy
    /// promotion), and only if the shard's write lock is free at that moment.
    #[default]
    Lru,
    /// S3-FIFO (Yang et al., SOSP 2023): scan resistant, with a higher hit ratio than LRU on
    /// skewed workloads, and hits that only bump a counter.
    #[serde(alias = "s3-fifo", alias = "s3fifo")]
    S3Fifo,
}

impl EvictionPolicy {
    /// Bytes of bookkeeping charged per entry under this policy, on top of key and value
    /// ([`LRU_ENTRY_OVERHEAD`], [`S3FIFO_ENTRY_OVERHEAD`]).
    pub const fn entry_overhead(self) -> u64 {
        match self {
            EvictionPolicy::Lru => LRU_ENTRY_OVERHEAD,
            EvictionPolicy::S3Fifo => S3FIFO_ENTRY_OVERHEAD,
        }
    }

    /// The bytes an entry is charged against the budget under this policy:
    /// `key_len + value_len + entry_overhead()`, plus [`TTL_ENTRY_OVERHEAD`] when it has a TTL.
    ///
    /// ```
    /// use nfcs_cache_core::{EvictionPolicy, LRU_ENTRY_OVERHEAD};
    /// assert_eq!(EvictionPolicy::Lru.entry_charge(11, 64, false), 75 + LRU_ENTRY_OVERHEAD);
    /// ```
    pub const fn entry_charge(self, key_len: usize, value_len: usize, with_ttl: bool) -> u64 {
        let deadline = if with_ttl { 0 } else { NEVER };
        charge(self.entry_overhead(), key_len, value_len, deadline)
    }
}

impl fmt::Display for EvictionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EvictionPolicy::Lru => "lru",
            EvictionPolicy::S3Fifo => "s3_fifo",
        })
    }
}

impl std::str::FromStr for EvictionPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<EvictionPolicy, String> {
        match text.to_ascii_lowercase().as_str() {
            "lru" => Ok(EvictionPolicy::Lru),
            "s3_fifo" | "s3-fifo" | "s3fifo" => Ok(EvictionPolicy::S3Fifo),
            _ => Err(format!(
                "unknown eviction policy {text:?} (expected \"lru\" or \"s3_fifo\")"
            )),
        }
    }
}

/// How to build a [`MemoryCache`].
///
/// ```
/// use std::time::Duration;
/// use nfcs_cache_core::{EvictionPolicy, MemoryCache, MemoryConfig};
///
/// let cache = MemoryCache::with_config(
///     MemoryConfig::new(64 << 20)
///         .eviction_policy(EvictionPolicy::S3Fifo)
///         .default_ttl(Some(Duration::from_secs(3600))),
/// )?;
/// assert_eq!(cache.capacity(), 64 << 20);
/// # Ok::<(), nfcs_cache_core::CacheError>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MemoryConfig {
    /// The byte budget: keys, values and per-entry bookkeeping
    /// ([`EvictionPolicy::entry_charge`]).
    pub max_bytes: u64,
    /// Which entry to evict when over budget.
    pub eviction_policy: EvictionPolicy,
    /// The TTL of entries set without one; `None` means they never expire.
    pub default_ttl: Option<Duration>,
    /// How many shards (rounded to a power of two); `None` picks one from the CPU count and
    /// the budget.
    pub shards: Option<usize>,
    /// The tier's name in stats, errors and the `tier` metric label.
    pub name: String,
    /// The cache instance this tier belongs to: the `cache` metric label
    /// ([`telemetry::DEFAULT_INSTANCE`] unless set).
    pub instance: String,
    /// The clock TTLs are measured on (the system's unless a test drives one).
    pub clock: Clock,
    /// The seed of the hash that places keys in shards (and that samplers of keys, such as
    /// adaptive sizing, sample by): `None`, the default, draws one at random for each cache,
    /// so that clients cannot choose keys that collide. Set one only where runs must be
    /// reproducible (benchmarks, tests) and keys are not chosen by an adversary.
    pub hash_seed: Option<u64>,
}

impl MemoryConfig {
    /// A configuration with a budget of `max_bytes`, LRU eviction, no default TTL.
    pub fn new(max_bytes: u64) -> MemoryConfig {
        MemoryConfig {
            max_bytes,
            eviction_policy: EvictionPolicy::Lru,
            default_ttl: None,
            shards: None,
            name: "memory".to_owned(),
            instance: telemetry::DEFAULT_INSTANCE.to_owned(),
            clock: Clock::system(),
            hash_seed: None,
        }
    }

    /// Sets the eviction policy.
    #[must_use]
    pub fn eviction_policy(mut self, policy: EvictionPolicy) -> MemoryConfig {
        self.eviction_policy = policy;
        self
    }

    /// Sets the TTL of entries set without one.
    #[must_use]
    pub fn default_ttl(mut self, ttl: Option<Duration>) -> MemoryConfig {
        self.default_ttl = ttl;
        self
    }

    /// Sets the shard count (rounded up to a power of two, at most 256).
    #[must_use]
    pub fn shards(mut self, shards: usize) -> MemoryConfig {
        self.shards = Some(shards);
        self
    }

    /// Sets the tier's name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> MemoryConfig {
        self.name = name.into();
        self
    }

    /// Sets the cache instance this tier belongs to (the `cache` metric label).
    #[must_use]
    pub fn instance(mut self, instance: impl Into<String>) -> MemoryConfig {
        self.instance = instance.into();
        self
    }

    /// Sets the seed of the key hash (see [`hash_seed`](MemoryConfig::hash_seed)).
    pub fn hash_seed(mut self, seed: Option<u64>) -> MemoryConfig {
        self.hash_seed = seed;
        self
    }

    /// Sets the clock TTLs are measured on (a [`ManualClock`](crate::ManualClock)'s in tests).
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> MemoryConfig {
        self.clock = clock;
        self
    }
}

/// A stored value and its monotonic deadline ([`NEVER`] for no expiry).
pub(crate) struct Slot {
    value: Bytes,
    deadline: u64,
}

/// What a read under the shard's read lock found.
enum Lookup {
    Miss,
    Hit {
        value: Bytes,
        deadline: u64,
        /// The policy wants the entry at this arena index moved, which needs the write lock.
        promote: Option<u32>,
    },
}

/// One shard's entries in eviction order. The shard around it keeps the byte count, the
/// budget, the counters and the expiry queue; the store only keeps order.
///
/// Reads run under the shard's read lock (`lookup` takes `&self`), so concurrent hits on one
/// shard do not wait for each other; a policy that must reorder on a hit asks for `promote`.
trait Store: Send + Sync {
    /// Looks `key` up, records the use where that needs no reordering.
    fn lookup(&self, key: &str, hash: u64) -> Lookup;
    /// Records a use that reorders (LRU's move to the front) of the entry `lookup` found at
    /// `index`, if that slot still holds an entry with this hash.
    fn promote(&mut self, index: u32, hash: u64);
    /// Looks `key` up without recording a use.
    fn peek(&self, key: &str, hash: u64) -> Option<&Slot>;
    /// Inserts or overwrites; returns the old entry's charge.
    fn insert(&mut self, key: &str, hash: u64, value: Bytes, deadline: u64) -> Option<u64>;
    /// Removes `key`; returns its charge.
    fn remove(&mut self, key: &str, hash: u64) -> Option<u64>;
    /// Removes the entry with this hash and deadline (an expired one); returns its charge.
    fn remove_expired(&mut self, hash: u64, deadline: u64) -> Option<u64>;
    /// Whether an entry with this hash and deadline is held.
    fn holds_deadline(&self, hash: u64, deadline: u64) -> bool;
    /// Evicts one entry chosen by the policy; returns its charge.
    fn evict_one(&mut self, budget: u64) -> Option<u64>;
    /// Removes entries for which `keep` is false; returns (entries removed, bytes freed).
    fn retain(&mut self, keep: &mut dyn FnMut(&str, &Slot) -> bool) -> (u64, u64);
    /// Entries held.
    fn len(&self) -> usize;
}

enum AnyStore {
    Lru(LruStore),
    S3Fifo(S3FifoStore),
}

macro_rules! dispatch {
    ($store:expr, $inner:ident => $call:expr) => {
        match $store {
            AnyStore::Lru($inner) => $call,
            AnyStore::S3Fifo($inner) => $call,
        }
    };
}

impl Store for AnyStore {
    #[inline]
    fn lookup(&self, key: &str, hash: u64) -> Lookup {
        dispatch!(self, store => store.lookup(key, hash))
    }
    #[inline]
    fn promote(&mut self, index: u32, hash: u64) {
        dispatch!(self, store => store.promote(index, hash))
    }
    #[inline]
    fn peek(&self, key: &str, hash: u64) -> Option<&Slot> {
        dispatch!(self, store => store.peek(key, hash))
    }
    #[inline]
    fn insert(&mut self, key: &str, hash: u64, value: Bytes, deadline: u64) -> Option<u64> {
        dispatch!(self, store => store.insert(key, hash, value, deadline))
    }
    #[inline]
    fn remove(&mut self, key: &str, hash: u64) -> Option<u64> {
        dispatch!(self, store => store.remove(key, hash))
    }
    fn remove_expired(&mut self, hash: u64, deadline: u64) -> Option<u64> {
        dispatch!(self, store => store.remove_expired(hash, deadline))
    }
    fn holds_deadline(&self, hash: u64, deadline: u64) -> bool {
        dispatch!(self, store => store.holds_deadline(hash, deadline))
    }
    #[inline]
    fn evict_one(&mut self, budget: u64) -> Option<u64> {
        dispatch!(self, store => store.evict_one(budget))
    }
    fn retain(&mut self, keep: &mut dyn FnMut(&str, &Slot) -> bool) -> (u64, u64) {
        dispatch!(self, store => store.retain(keep))
    }
    fn len(&self) -> usize {
        dispatch!(self, store => store.len())
    }
}

/// Counters kept under the write lock (hits and misses are atomics beside the lock).
#[derive(Default, Clone, Copy)]
struct Counters {
    inserts: u64,
    evictions: u64,
    expirations: u64,
}

/// A shard's counters and gauges at one moment, to publish what changed since another.
#[derive(Clone, Copy, Default)]
struct Tally {
    counters: Counters,
    entries: u64,
    bytes: u64,
}

impl Tally {
    /// Publishes the difference from `self` to `after` (both taken under one write lock).
    fn publish(self, after: Tally, metrics: &TierMetrics) {
        let (before, now) = (self.counters, after.counters);
        if now.inserts > before.inserts {
            metrics.inserts(now.inserts - before.inserts);
        }
        if now.evictions > before.evictions {
            metrics.evictions(now.evictions - before.evictions);
        }
        if now.expirations > before.expirations {
            metrics.expirations(now.expirations - before.expirations);
        }
        metrics.resident(
            after.entries as i64 - self.entries as i64,
            after.bytes as i64 - self.bytes as i64,
        );
    }
}

/// (deadline, key hash) of the entries that have a deadline, soonest first. Items are not
/// removed when their entry is overwritten, deleted or evicted; such stale items are
/// recognised (no entry has that hash and deadline) and dropped when they surface, and the
/// heap is compacted when stale items outnumber live entries.
#[derive(Default)]
struct ExpiryQueue {
    heap: BinaryHeap<Reverse<(u64, u64)>>,
}

struct Shard {
    store: AnyStore,
    /// The policy's per-entry overhead.
    overhead: u64,
    bytes: u64,
    budget: u64,
    expiry: ExpiryQueue,
    counters: Counters,
    /// What the metric counters and gauges have been given of this shard's changes.
    published: Tally,
    /// Changes since `published`; they are published every [`WRITE_METRICS_BATCH`] writes.
    unpublished_writes: u32,
    /// Writes so far, to sample their latency.
    writes: u64,
}

impl Shard {
    /// Removes `key` if it is still there and expired (the caller saw it expired under a
    /// read lock and has since taken the write lock).
    fn remove_if_expired(&mut self, key: &str, hash: u64, now: u64) {
        let expired = self
            .store
            .peek(key, hash)
            .is_some_and(|slot| slot.deadline <= now);
        if expired && self.remove(key, hash) {
            self.counters.expirations += 1;
        }
    }

    /// Inserts; `Err(limit)` when the entry is larger than the shard's budget.
    #[inline]
    fn insert(
        &mut self,
        key: &str,
        hash: u64,
        value: Bytes,
        deadline: u64,
        clock: &Clock,
    ) -> Result<(), u64> {
        let charge = charge(self.overhead, key.len(), value.len(), deadline);
        if charge > self.budget {
            return Err(self.budget);
        }
        if let Some(old) = self.store.insert(key, hash, value, deadline) {
            self.bytes -= old;
        }
        self.bytes += charge;
        self.counters.inserts += 1;
        if deadline != NEVER {
            self.expiry.heap.push(Reverse((deadline, hash)));
        }
        self.evict_to_budget();
        if !self.expiry.heap.is_empty() {
            // The clock is read only when some entry of the shard can expire: a clock read
            // costs about as much as the rest of an insert.
            self.reclaim_expired(clock.monotonic_nanos(), RECLAIM_PER_WRITE);
        }
        Ok(())
    }

    fn remove(&mut self, key: &str, hash: u64) -> bool {
        match self.store.remove(key, hash) {
            Some(charge) => {
                self.bytes -= charge;
                true
            }
            None => false,
        }
    }

    fn evict_to_budget(&mut self) {
        while self.bytes > self.budget {
            match self.store.evict_one(self.budget) {
                Some(charge) => {
                    self.bytes -= charge;
                    self.counters.evictions += 1;
                }
                None => break,
            }
        }
    }

    /// Removes up to `limit` entries whose deadline passed, soonest first; returns how many.
    fn reclaim_expired(&mut self, now: u64, limit: usize) -> u64 {
        let mut reclaimed = 0;
        for _ in 0..limit {
            match self.expiry.heap.peek() {
                Some(Reverse((deadline, _))) if *deadline <= now => {}
                _ => break,
            }
            let Some(Reverse((deadline, hash))) = self.expiry.heap.pop() else {
                break;
            };
            if let Some(charge) = self.store.remove_expired(hash, deadline) {
                self.bytes -= charge;
                self.counters.expirations += 1;
                reclaimed += 1;
            }
        }
        self.compact_expiry_if_needed();
        reclaimed
    }

    fn compact_expiry_if_needed(&mut self) {
        if self.expiry.heap.len() <= 2 * self.store.len() + 1024 {
            return;
        }
        let store = &self.store;
        self.expiry
            .heap
            .retain(|Reverse((deadline, hash))| store.holds_deadline(*hash, *deadline));
    }

    /// Counts a write (or any change) for the metrics, publishing the shard's changes (and,
    /// through `cell`, its reads) once every [`WRITE_METRICS_BATCH`] writes: one shared
    /// counter update per write would cost the hot path as much as it costs reads.
    #[inline]
    fn wrote(&mut self, cell_reads: &ReadCounts<'_>, metrics: &TierMetrics) {
        self.writes += 1;
        self.unpublished_writes += 1;
        if self.unpublished_writes >= WRITE_METRICS_BATCH {
            self.publish(cell_reads, metrics);
        }
    }

    /// Starts timing one write in [`telemetry::MEMORY_SAMPLE_EVERY`] of this shard, decided
    /// from its write count (cheaper than the thread-local countdown). Writes are timed from
    /// when the shard's lock is held: the work of the write, not the wait for the lock.
    #[inline]
    fn sample_write<'a>(
        &self,
        metrics: &'a TierMetrics,
        operation: Operation,
    ) -> Option<telemetry::OperationTimer<'a>> {
        metrics.start_when(
            self.writes
                .is_multiple_of(u64::from(telemetry::MEMORY_SAMPLE_EVERY)),
            operation,
        )
    }

    /// Publishes every change (and read) not published yet.
    fn publish(&mut self, cell_reads: &ReadCounts<'_>, metrics: &TierMetrics) {
        let now = self.tally();
        self.published.publish(now, metrics);
        self.published = now;
        self.unpublished_writes = 0;
        cell_reads.flush(metrics);
    }

    /// What the metric gauges and counters are computed from.
    fn tally(&self) -> Tally {
        Tally {
            counters: self.counters,
            entries: self.store.len() as u64,
            bytes: self.bytes,
        }
    }

    fn stats(&self) -> TierStats {
        TierStats {
            inserts: self.counters.inserts,
            evictions: self.counters.evictions,
            expirations: self.counters.expirations,
            entries: self.store.len() as u64,
            bytes: self.bytes,
            capacity_bytes: self.budget,
            ..TierStats::default()
        }
    }
}

/// One shard with its read counters, a cache line apart from its neighbours so that two
/// shards' locks never share a line. The counters sit beside the lock word: a reader has just
/// taken that line for the lock, so counting costs it no further cache miss.
#[repr(C, align(128))]
struct ShardCell {
    hits: AtomicU64,
    misses: AtomicU64,
    /// How many of `hits` and `misses` the metric counters have been given. Reads publish in
    /// batches of [`READ_METRICS_BATCH`] (one shared counter increment per read would put a
    /// contended cache line on every hit: measured at +35 % per hit with two threads); writes
    /// and [`MemoryCache::flush_metrics`] publish the rest.
    published_hits: AtomicU64,
    published_misses: AtomicU64,
    shard: RwLock<Shard>,
}

/// Reads counted per shard before they are published to the metric counters.
const READ_METRICS_BATCH: u64 = 64;
/// Writes to a shard before its changes are published to the metric counters and gauges.
const WRITE_METRICS_BATCH: u32 = 16;

/// A shard cell's read counters, handed to the shard (which sits inside the cell's lock) so
/// that publishing its writes publishes its reads too.
struct ReadCounts<'a> {
    cell: &'a ShardCell,
}

impl ReadCounts<'_> {
    fn flush(&self, metrics: &TierMetrics) {
        self.cell.flush_reads(metrics);
    }
}

/// Gives `metrics` the reads counted in `total` beyond what `published` says it has, exactly
/// once even when several threads publish at the same moment: each publisher raises
/// `published` to the total it saw and publishes only the part it raised.
#[inline]
fn publish_reads(total: &AtomicU64, published: &AtomicU64, publish: impl FnOnce(u64)) {
    let total = total.load(Ordering::Relaxed);
    // Two plain loads decide: the read-modify-write is paid only when there is something to
    // publish (a write publishing its shard's reads usually finds them published already).
    if total <= published.load(Ordering::Relaxed) {
        return;
    }
    let previous = published.fetch_max(total, Ordering::Relaxed);
    if total > previous {
        publish(total - previous);
    }
}

impl ShardCell {
    #[inline]
    fn count_hit(&self, metrics: &TierMetrics) {
        let total = self.hits.fetch_add(1, Ordering::Relaxed) + 1;
        if total.is_multiple_of(READ_METRICS_BATCH) {
            publish_reads(&self.hits, &self.published_hits, |count| {
                metrics.hits(count)
            });
        }
    }

    #[inline]
    fn count_miss(&self, metrics: &TierMetrics) {
        let total = self.misses.fetch_add(1, Ordering::Relaxed) + 1;
        if total.is_multiple_of(READ_METRICS_BATCH) {
            publish_reads(&self.misses, &self.published_misses, |count| {
                metrics.misses(count)
            });
        }
    }

    fn reads(&self) -> ReadCounts<'_> {
        ReadCounts { cell: self }
    }

    /// Publishes every read counted so far.
    fn flush_reads(&self, metrics: &TierMetrics) {
        publish_reads(&self.hits, &self.published_hits, |count| {
            metrics.hits(count)
        });
        publish_reads(&self.misses, &self.published_misses, |count| {
            metrics.misses(count)
        });
    }

    fn stats(&self) -> TierStats {
        let mut stats = self.shard.read().stats();
        stats.hits = self.hits.load(Ordering::Relaxed);
        stats.misses = self.misses.load(Ordering::Relaxed);
        stats
    }
}

struct Inner {
    shards: Box<[ShardCell]>,
    shard_mask: u64,
    hasher: SeedableRandomState,
    default_ttl: Option<Duration>,
    /// The eviction policy: 0 LRU, 1 S3-FIFO (it can change at run time).
    policy: std::sync::atomic::AtomicU8,
    name: String,
    clock: Clock,
    metrics: TierMetrics,
}

/// The in-memory tier: sharded, byte-budgeted, with LRU (default) or S3-FIFO eviction and TTLs.
///
/// - **Budget.** Every entry is charged its key and value bytes plus the bookkeeping it costs
///   ([`EvictionPolicy::entry_charge`], measured against the allocator); the total stays
///   within the budget. The budget is split evenly across
///   shards, and one entry may take at most one shard's share ([`max_entry_bytes`]); a larger
///   one is refused with [`CacheError::ValueTooLarge`] and the cache is left unchanged.
/// - **Expiry.** An expired entry is never returned. Expired entries are reclaimed when read,
///   and a few at a time (soonest deadline first) by each write, so no request ever scans the
///   cache; [`purge_expired`](MemoryCache::purge_expired) reclaims all of them at once.
/// - **Hot path.** [`get`](MemoryCache::get) and [`insert`](MemoryCache::insert) are
///   synchronous: a hit costs one hash, a shard *read* lock (hits on one shard do not wait for
///   each other) and one reference-count increment (values are [`Bytes`]), with no allocation
///   and no `await`. LRU moves an entry to the front only when it has left the most recent
///   quarter of its shard's list, and skips the move when another thread holds the shard. The same cache is also a
///   [`CacheTier`] for composition.
/// - **Cloning** is cheap: clones share the same cache.
///
/// [`max_entry_bytes`]: MemoryCache::max_entry_bytes
///
/// ```
/// use std::time::Duration;
/// use nfcs_cache_core::{MemoryCache, Pattern};
///
/// let cache = MemoryCache::new(16 << 20)?; // 16 MiB, LRU
/// cache.insert("policy_read", "allow", None)?;
/// cache.insert("policy_write", "deny", Some(Duration::from_secs(30)))?;
/// cache.insert("cgl_64", vec![0_u8; 1024], None)?;
///
/// assert_eq!(cache.get("policy_read")?.as_deref(), Some(&b"allow"[..]));
/// assert_eq!(cache.get("missing")?, None);
/// assert_eq!(cache.remove_matching(&Pattern::new("policy_*")?), 2);
/// assert_eq!(cache.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct MemoryCache {
    inner: Arc<Inner>,
}

impl MemoryCache {
    /// A cache with a budget of `max_bytes`, LRU eviction and no default TTL.
    ///
    /// # Errors
    /// [`CacheError::InvalidCapacity`] for a budget of zero or one beyond 64 TiB.
    pub fn new(max_bytes: u64) -> Result<MemoryCache, CacheError> {
        MemoryCache::with_config(MemoryConfig::new(max_bytes))
    }

    /// A cache built from `config`.
    ///
    /// # Errors
    /// [`CacheError::InvalidCapacity`] for a budget of zero or one beyond 64 TiB, and
    /// [`CacheError::InvalidTtl`] for a zero or too-long default TTL.
    pub fn with_config(config: MemoryConfig) -> Result<MemoryCache, CacheError> {
        let invalid = |reason: String| CacheError::InvalidCapacity {
            tier: config.name.clone(),
            reason,
        };
        if config.max_bytes == 0 {
            return Err(invalid("the byte budget must be larger than zero".into()));
        }
        let shard_count = match config.shards {
            Some(0) => return Err(invalid("the shard count must be at least 1".into())),
            Some(shards) => shards.next_power_of_two().min(MAX_SHARDS),
            None => default_shard_count(config.max_bytes),
        };
        if config.max_bytes > shard_count as u64 * MAX_SHARD_BYTES {
            return Err(invalid(format!(
                "a budget of {} bytes exceeds the {} bytes that {shard_count} shards can hold",
                config.max_bytes,
                shard_count as u64 * MAX_SHARD_BYTES
            )));
        }
        check_ttl(config.default_ttl)?;
        let hasher = match config.hash_seed {
            Some(seed) => SeedableRandomState::with_seed(seed, SharedSeed::global_fixed()),
            None => SeedableRandomState::random(),
        };
        let shards = split_budget(config.max_bytes, shard_count)
            .map(|budget| {
                let store = match config.eviction_policy {
                    EvictionPolicy::Lru => AnyStore::Lru(LruStore::new()),
                    EvictionPolicy::S3Fifo => AnyStore::S3Fifo(S3FifoStore::new()),
                };
                ShardCell {
                    hits: AtomicU64::new(0),
                    misses: AtomicU64::new(0),
                    published_hits: AtomicU64::new(0),
                    published_misses: AtomicU64::new(0),
                    shard: RwLock::new(Shard {
                        store,
                        overhead: config.eviction_policy.entry_overhead(),
                        bytes: 0,
                        budget,
                        expiry: ExpiryQueue::default(),
                        counters: Counters::default(),
                        published: Tally::default(),
                        unpublished_writes: 0,
                        writes: 0,
                    }),
                }
            })
            .collect();
        let metrics = TierMetrics::sampled(
            InstanceLabels::new(config.instance, config.name.clone()),
            telemetry::MEMORY_SAMPLE_EVERY,
        );
        metrics.capacity(config.max_bytes);
        Ok(MemoryCache {
            inner: Arc::new(Inner {
                shards,
                shard_mask: shard_count as u64 - 1,
                hasher,
                default_ttl: config.default_ttl,
                policy: std::sync::atomic::AtomicU8::new(policy_code(config.eviction_policy)),
                name: config.name,
                clock: config.clock,
                metrics,
            }),
        })
    }

    /// The clock's monotonic reading in nanoseconds.
    #[inline]
    fn now(&self) -> u64 {
        self.inner.clock.monotonic_nanos()
    }

    #[inline]
    fn locate(&self, key: &str) -> (&ShardCell, u64) {
        let hash = self.inner.hasher.hash_one(key);
        // Bits 32.. pick the shard: hashbrown uses the low bits for the bucket and the top
        // seven for its control bytes, so the shard choice does not thin out either.
        let index = ((hash >> 32) & self.inner.shard_mask) as usize;
        (&self.inner.shards[index], hash)
    }

    /// The read path: a read lock for the lookup; the write lock only to reorder (and then
    /// only if it is free: a contended move to the front is skipped, not waited for) or to
    /// reclaim an expired entry.
    #[inline]
    fn lookup(&self, key: &str) -> Option<(Bytes, u64)> {
        let (cell, hash) = self.locate(key);
        // One read of a shard in MEMORY_SAMPLE_EVERY is timed, decided from the shard's read
        // counters (on the line this read takes for the lock anyway): cheaper than the
        // thread-local countdown, which cost a hit about as much as the counting itself.
        let reads = cell.hits.load(Ordering::Relaxed) + cell.misses.load(Ordering::Relaxed);
        let sampled = reads.is_multiple_of(u64::from(telemetry::MEMORY_SAMPLE_EVERY));
        let timer = self.inner.metrics.start_when(sampled, Operation::Get);
        let found = self.lookup_in(cell, key, hash);
        telemetry::finish(timer);
        found
    }

    #[inline]
    fn lookup_in(&self, cell: &ShardCell, key: &str, hash: u64) -> Option<(Bytes, u64)> {
        let found = cell.shard.read().store.lookup(key, hash);
        match found {
            Lookup::Miss => {
                cell.count_miss(&self.inner.metrics);
                None
            }
            Lookup::Hit {
                value,
                deadline,
                promote,
            } => {
                if deadline != NEVER {
                    let now = self.now();
                    if deadline <= now {
                        let mut shard = cell.shard.write();
                        shard.remove_if_expired(key, hash, now);
                        shard.wrote(&cell.reads(), &self.inner.metrics);
                        drop(shard);
                        cell.count_miss(&self.inner.metrics);
                        return None;
                    }
                }
                if let Some(index) = promote
                    && let Some(mut shard) = cell.shard.try_write()
                {
                    shard.store.promote(index, hash);
                }
                cell.count_hit(&self.inner.metrics);
                Some((value, deadline))
            }
        }
    }

    /// Reads `key`: `Ok(None)` on a miss or when the entry has expired.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`] for an empty or too-long key.
    #[inline]
    pub fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        check_key(key)?;
        Ok(self.lookup(key).map(|(value, _)| value))
    }

    /// Reads `key` with its remaining TTL.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`] for an empty or too-long key.
    #[inline]
    pub fn get_entry(&self, key: &str) -> Result<Option<CacheEntry>, CacheError> {
        check_key(key)?;
        Ok(self.lookup(key).map(|(value, deadline)| {
            // Reading the clock costs about as much as the rest of a hit: only entries that
            // expire need it.
            let left = (deadline != NEVER)
                .then(|| monotonic::remaining(deadline, self.now()))
                .flatten();
            CacheEntry::new(value, left)
        }))
    }

    /// [`get_entry`](MemoryCache::get_entry), also returning the hash the tier located the key
    /// by (the same for a key for the life of this cache, different between caches): callers
    /// that sample or count keys (adaptive sizing, popularity) use it instead of hashing again.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`] for an empty or too-long key.
    #[inline]
    pub fn get_entry_hashed(&self, key: &str) -> Result<(Option<CacheEntry>, u64), CacheError> {
        // The body repeats `lookup` and `get_entry` rather than sharing them: routing
        // `get_entry` through this (or both through one helper returning the hash) cost the
        // manager's memory hit 9.5 instructions more (556.8 against 547.3, callgrind).
        check_key(key)?;
        let (cell, hash) = self.locate(key);
        let reads = cell.hits.load(Ordering::Relaxed) + cell.misses.load(Ordering::Relaxed);
        let sampled = reads.is_multiple_of(u64::from(telemetry::MEMORY_SAMPLE_EVERY));
        let timer = self.inner.metrics.start_when(sampled, Operation::Get);
        let found = self.lookup_in(cell, key, hash);
        telemetry::finish(timer);
        let entry = found.map(|(value, deadline)| {
            let left = (deadline != NEVER)
                .then(|| monotonic::remaining(deadline, self.now()))
                .flatten();
            CacheEntry::new(value, left)
        });
        Ok((entry, hash))
    }

    /// The hash [`get_entry_hashed`](MemoryCache::get_entry_hashed) returns for `key`.
    pub fn key_hash(&self, key: &str) -> u64 {
        self.inner.hasher.hash_one(key)
    }

    /// Reads `key` with its remaining TTL without counting a read or recording a use: for a
    /// second look that must not skew the statistics or the eviction order (a multi-tier
    /// cache's single-flight re-check).
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`] for an empty or too-long key.
    pub fn peek_entry(&self, key: &str) -> Result<Option<CacheEntry>, CacheError> {
        check_key(key)?;
        let (cell, hash) = self.locate(key);
        let shard = cell.shard.read();
        let now = self.now();
        Ok(shard
            .store
            .peek(key, hash)
            .filter(|slot| slot.deadline == NEVER || now < slot.deadline)
            .map(|slot| {
                CacheEntry::new(slot.value.clone(), monotonic::remaining(slot.deadline, now))
            }))
    }

    /// Whether a live entry exists for `key`, without counting a read or recording a use.
    pub fn contains_key(&self, key: &str) -> bool {
        if check_key(key).is_err() {
            return false;
        }
        let (cell, hash) = self.locate(key);
        let shard = cell.shard.read();
        shard
            .store
            .peek(key, hash)
            .is_some_and(|slot| slot.deadline == NEVER || self.now() < slot.deadline)
    }

    /// Writes `value` under `key`, replacing any earlier value, to live as `ttl` says: a
    /// [`Duration`], `None` or [`Ttl::Default`] for the default TTL, [`Ttl::Never`]. Entries are
    /// evicted as needed to stay within budget.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`], [`CacheError::InvalidTtl`], or
    /// [`CacheError::ValueTooLarge`] when the entry exceeds
    /// [`max_entry_bytes`](MemoryCache::max_entry_bytes). On error the cache is unchanged.
    #[inline]
    pub fn insert(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        ttl: impl Into<Ttl>,
    ) -> Result<(), CacheError> {
        check_key(key)?;
        let ttl = check_ttl(ttl)?.resolve(self.inner.default_ttl);
        let value = value.into();
        let deadline = match ttl {
            Some(ttl) => monotonic::deadline(self.now(), ttl),
            None => NEVER,
        };
        let size = charge(
            self.eviction_policy().entry_overhead(),
            key.len(),
            value.len(),
            deadline,
        );
        let (cell, hash) = self.locate(key);
        let mut shard = cell.shard.write();
        let timer = shard.sample_write(&self.inner.metrics, Operation::Set);
        let result = shard.insert(key, hash, value, deadline, &self.inner.clock);
        if result.is_ok() {
            shard.wrote(&cell.reads(), &self.inner.metrics);
        }
        drop(shard);
        telemetry::finish(timer);
        result.map_err(|limit| CacheError::value_too_large(&self.inner.name, key, size, limit))
    }

    /// Removes `key`; `true` when a live entry was there.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`] for an empty or too-long key.
    pub fn remove(&self, key: &str) -> Result<bool, CacheError> {
        check_key(key)?;
        let (cell, hash) = self.locate(key);
        let mut shard = cell.shard.write();
        let timer = shard.sample_write(&self.inner.metrics, Operation::Delete);
        let live = shard
            .store
            .peek(key, hash)
            .is_some_and(|slot| slot.deadline == NEVER || self.now() < slot.deadline);
        let removed = shard.remove(key, hash);
        if removed && !live {
            shard.counters.expirations += 1;
        }
        if removed {
            shard.wrote(&cell.reads(), &self.inner.metrics);
        }
        drop(shard);
        telemetry::finish(timer);
        Ok(live)
    }

    /// Removes every entry whose key matches `pattern`; returns how many live entries were
    /// removed. This visits every entry, one shard at a time.
    pub fn remove_matching(&self, pattern: &Pattern) -> u64 {
        let started = std::time::Instant::now();
        let removed = self.remove_where(|key, _| pattern.matches(key));
        self.inner
            .metrics
            .record(Operation::Invalidate, started.elapsed());
        removed
    }

    /// Removes every entry; returns how many live entries were removed.
    pub fn clear(&self) -> u64 {
        let started = std::time::Instant::now();
        let removed = self.remove_where(|_, _| true);
        self.inner
            .metrics
            .record(Operation::Clear, started.elapsed());
        removed
    }

    /// Removes the entries for which `doomed(key, deadline)` is true, counting live ones.
    fn remove_where(&self, mut doomed: impl FnMut(&str, u64) -> bool) -> u64 {
        let mut removed_live = 0;
        for cell in self.inner.shards.iter() {
            let mut shard = cell.shard.write();
            let now = self.now();
            let mut expired = 0;
            let (removed, freed) = shard.store.retain(&mut |key, slot| {
                let remove = doomed(key, slot.deadline);
                if remove && slot.deadline <= now {
                    expired += 1;
                }
                !remove
            });
            shard.bytes -= freed;
            shard.counters.expirations += expired;
            removed_live += removed - expired;
            if shard.store.len() == 0 {
                shard.expiry.heap.clear();
            } else {
                shard.compact_expiry_if_needed();
            }
            // Bulk changes are rare and large: published at once.
            shard.publish(&cell.reads(), &self.inner.metrics);
        }
        removed_live
    }

    /// Up to `limit` keys of live entries, visiting the shards in turn (each under its write
    /// lock for the time it takes to copy its keys): for saving what the tier holds, such as a
    /// warm-restart hot set. No order is promised.
    pub fn keys(&self, limit: usize) -> Vec<String> {
        let mut keys = Vec::new();
        for cell in self.inner.shards.iter() {
            if keys.len() >= limit {
                break;
            }
            let now = self.now();
            let mut shard = cell.shard.write();
            shard.store.retain(&mut |key, slot| {
                if keys.len() < limit && (slot.deadline == NEVER || now < slot.deadline) {
                    keys.push(key.to_owned());
                }
                true
            });
        }
        keys
    }

    /// Reclaims every expired entry now; returns how many. Writes already reclaim a few each,
    /// so calling this is only needed to release memory promptly in a read-only phase.
    pub fn purge_expired(&self) -> u64 {
        let mut reclaimed = 0;
        for cell in self.inner.shards.iter() {
            let mut shard = cell.shard.write();
            reclaimed += shard.reclaim_expired(self.now(), usize::MAX);
            shard.publish(&cell.reads(), &self.inner.metrics);
        }
        reclaimed
    }

    /// Changes the byte budget at run time. Shrinking evicts (by the eviction policy) until
    /// every shard is within its new share.
    ///
    /// # Errors
    /// [`CacheError::InvalidCapacity`] for zero or a budget the shards cannot hold.
    pub fn resize(&self, max_bytes: u64) -> Result<(), CacheError> {
        let shard_count = self.inner.shards.len();
        if max_bytes == 0 || max_bytes > shard_count as u64 * MAX_SHARD_BYTES {
            return Err(CacheError::InvalidCapacity {
                tier: self.inner.name.clone(),
                reason: format!(
                    "a budget must be between 1 and {} bytes, not {max_bytes}",
                    shard_count as u64 * MAX_SHARD_BYTES
                ),
            });
        }
        for (cell, budget) in self
            .inner
            .shards
            .iter()
            .zip(split_budget(max_bytes, shard_count))
        {
            let mut shard = cell.shard.write();
            shard.budget = budget;
            shard.evict_to_budget();
            shard.publish(&cell.reads(), &self.inner.metrics);
        }
        self.inner.metrics.capacity(max_bytes);
        Ok(())
    }

    /// The byte budget.
    pub fn capacity(&self) -> u64 {
        self.inner
            .shards
            .iter()
            .map(|cell| cell.shard.read().budget)
            .sum()
    }

    /// The largest entry (as charged by [`EvictionPolicy::entry_charge`]) the cache accepts: one shard's share
    /// of the budget.
    pub fn max_entry_bytes(&self) -> u64 {
        self.inner
            .shards
            .iter()
            .map(|cell| cell.shard.read().budget)
            .min()
            .unwrap_or(0)
    }

    /// Bytes charged for the entries held now.
    pub fn weighted_size(&self) -> u64 {
        self.inner
            .shards
            .iter()
            .map(|cell| cell.shard.read().bytes)
            .sum()
    }

    /// Entries held now (entries that expired but are not reclaimed yet included).
    pub fn len(&self) -> u64 {
        self.inner
            .shards
            .iter()
            .map(|cell| cell.shard.read().store.len() as u64)
            .sum()
    }

    /// Whether the cache holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Publishes to the metric counters and gauges what has not been published yet. Reads are
    /// published in batches of 64 per shard and writes (with their shard's reads) in batches
    /// of 16, so a scrape lags the exact figures by at most 63 reads and 15 writes per shard;
    /// call this before a scrape that must be exact (tests, a final report).
    /// [`stats`](MemoryCache::stats) is always exact.
    pub fn flush_metrics(&self) {
        for cell in self.inner.shards.iter() {
            cell.shard
                .write()
                .publish(&cell.reads(), &self.inner.metrics);
        }
    }

    /// The clock TTLs are measured on.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// The labels this tier reports its metrics under (`cache`, `tier`).
    pub fn labels(&self) -> &InstanceLabels {
        self.inner.metrics.labels()
    }

    /// The eviction policy.
    pub fn eviction_policy(&self) -> EvictionPolicy {
        policy_from_code(self.inner.policy.load(Ordering::Relaxed))
    }

    /// Switches the eviction policy at run time, one shard at a time. Every entry is kept with
    /// its value and deadline, re-charged at the new policy's per-entry overhead (entries are
    /// evicted, by the new policy, if that puts a shard over its budget); what the old policy
    /// knew of their use (recency, read counts) is not carried over, so the new policy starts
    /// learning afresh. Reads and writes of other shards go on meanwhile; those of the shard
    /// being switched wait for it (about 100 ns per entry). Returns the entries evicted.
    pub fn set_eviction_policy(&self, policy: EvictionPolicy) -> u64 {
        let code = policy_code(policy);
        if self.inner.policy.swap(code, Ordering::Relaxed) == code {
            return 0;
        }
        let mut evicted = 0;
        for cell in self.inner.shards.iter() {
            let mut shard = cell.shard.write();
            let mut entries = Vec::with_capacity(shard.store.len());
            shard.store.retain(&mut |key, slot| {
                entries.push((key.to_owned(), slot.value.clone(), slot.deadline));
                false
            });
            shard.store = match policy {
                EvictionPolicy::Lru => AnyStore::Lru(LruStore::new()),
                EvictionPolicy::S3Fifo => AnyStore::S3Fifo(S3FifoStore::new()),
            };
            shard.overhead = policy.entry_overhead();
            shard.bytes = 0;
            let before = shard.counters.evictions;
            for (key, value, deadline) in entries {
                let hash = self.inner.hasher.hash_one(key.as_str());
                let size = charge(shard.overhead, key.len(), value.len(), deadline);
                if size > shard.budget {
                    shard.counters.evictions += 1;
                    continue;
                }
                shard.store.insert(&key, hash, value, deadline);
                shard.bytes += size;
                shard.evict_to_budget();
            }
            evicted += shard.counters.evictions - before;
            shard.publish(&cell.reads(), &self.inner.metrics);
        }
        evicted
    }

    /// The TTL of entries inserted without one.
    pub fn default_ttl(&self) -> Option<Duration> {
        self.inner.default_ttl
    }

    /// The number of shards.
    pub fn shard_count(&self) -> usize {
        self.inner.shards.len()
    }

    /// Counters and gauges summed over all shards.
    pub fn stats(&self) -> TierStats {
        self.inner.shards.iter().map(ShardCell::stats).sum()
    }
}

impl fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCache")
            .field("name", &self.inner.name)
            .field("eviction_policy", &self.eviction_policy())
            .field("shards", &self.inner.shards.len())
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

impl CacheTier for MemoryCache {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn get(&self, key: &str) -> TierResult<Option<CacheEntry>> {
        ready(self.get_entry(key))
    }

    fn set(&self, key: &str, value: Bytes, ttl: Ttl) -> TierResult<()> {
        ready(self.insert(key, value, ttl))
    }

    fn delete(&self, key: &str) -> TierResult<bool> {
        ready(self.remove(key))
    }

    fn invalidate_pattern(&self, pattern: &Pattern) -> TierResult<u64> {
        ready(Ok(self.remove_matching(pattern)))
    }

    fn clear(&self) -> TierResult<u64> {
        ready(Ok(MemoryCache::clear(self)))
    }

    fn stats(&self) -> TierStats {
        MemoryCache::stats(self)
    }
}

/// Eight shards per CPU (as a power of two, at most 256), fewer when that would leave a shard
/// under 1 MiB, more when needed to keep each under 256 GiB.
fn default_shard_count(max_bytes: u64) -> usize {
    let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
    let mut shards = (cpus * 8).next_power_of_two().min(MAX_SHARDS);
    while shards > 1 && max_bytes / (shards as u64) < MIN_SHARD_BYTES {
        shards /= 2;
    }
    while shards < MAX_SHARDS && max_bytes / (shards as u64) > MAX_SHARD_BYTES {
        shards *= 2;
    }
    shards
}

const fn policy_code(policy: EvictionPolicy) -> u8 {
    match policy {
        EvictionPolicy::Lru => 0,
        EvictionPolicy::S3Fifo => 1,
    }
}

const fn policy_from_code(code: u8) -> EvictionPolicy {
    match code {
        1 => EvictionPolicy::S3Fifo,
        _ => EvictionPolicy::Lru,
    }
}

/// `total` split into `parts` budgets that differ by at most one byte.
fn split_budget(total: u64, parts: usize) -> impl Iterator<Item = u64> {
    let parts = parts as u64;
    (0..parts).map(move |index| total / parts + u64::from(index < total % parts))
}

#[cfg(test)]
mod tests;
