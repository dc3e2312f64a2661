//! Miss-ratio curves of the memory tier, estimated online from a spatial sample of keys.
//!
//! A miss-ratio curve says which fraction of reads would miss a memory tier of each size: what
//! an operator (or [`NFCSCacheManager`]'s sizing controller) needs to choose a budget. Building
//! it exactly means simulating every size; [`MrcEstimator`] instead follows a sample of the
//! keys, chosen by their hash (SHARDS, Waldspurger et al., FAST 2015): a key is sampled when
//! `hash mod 2^24 < rate * 2^24`, so every read of a sampled key is seen and the reads of the
//! others cost one hash and one comparison.
//!
//! - **Simulations** (both policies, by default): at each size of the grid, a one-shard memory
//!   tier of the real LRU or S3-FIFO code, scaled down by the sampling rate, runs on the
//!   sampled reads ("miniature simulation", Waldspurger et al., USENIX ATC 2017). Small sizes
//!   sample more keys (a nested, denser sample, at most four times the rate), so that their
//!   simulations hold enough entries: S3-FIFO is not scale free (its small queue is 3 % of the
//!   budget). Misses are divided by the *expected* number of sampled reads (`reads * rate`)
//!   rather than the actual one, which corrects for a hot key falling in or out of the sample
//!   (SHARDS-adj, Waldspurger et al., FAST 2015).
//! - **Reuse distances** (LRU, a stack algorithm: one pass gives every size): each read's
//!   distance (the bytes of distinct keys read since the key's last read, plus its own) from a
//!   Fenwick tree over the sampled keys' last reads, scaled by `1 / rate`, in a histogram with
//!   16 buckets per doubling ([`MrcEstimator::lru_miss_ratio_at`]; the LRU curve itself when
//!   LRU is not simulated).
//!
//! Sizes are bytes as the memory tier charges them ([`EvictionPolicy::entry_charge`]). A read
//! that misses is assumed to be followed by a write of the value (as a multi-tier read promotes
//! it, or a cache-aside caller stores it); its size is the key's last known size, else the mean.
//! [`decay`](MrcEstimator::decay) ages what was seen, so the curve follows a workload that
//! changes.
//!
//! ```
//! use nfcs_cache_core::EvictionPolicy;
//! use nfcs_cache_core::mrc::{MrcConfig, MrcEstimator, key_hash};
//!
//! // Sample every key (rate 1.0) of a cyclic scan over 100 keys of 100-byte values.
//! let mut estimator = MrcEstimator::new(MrcConfig::new(4 << 10, 1 << 20).rate(1.0))?;
//! for round in 0..20 {
//!     for key in 0..100 {
//!         let key = format!("key{key}");
//!         estimator.record(key_hash(&key), key.len(), Some(100));
//!     }
//!     estimator.note_reads(100);
//! }
//! let lru = estimator.curve(EvictionPolicy::Lru);
//! // A scan larger than the cache misses every time under LRU; one that fits only misses cold.
//! let all = 100 * EvictionPolicy::Lru.entry_charge(5, 100, false);
//! assert!(lru.miss_ratio_at(all / 2) > 0.99);
//! assert!(lru.miss_ratio_at(all * 2) < 0.06);
//! # Ok::<(), nfcs_cache_core::CacheError>(())
//! ```
//!
//! [`NFCSCacheManager`]: https://docs.rs/nfcs-performance

use std::hash::BuildHasher;

use bytes::Bytes;
use std::collections::HashMap;

use foldhash::fast::RandomState;

use crate::error::CacheError;
use crate::memory::{EvictionPolicy, MemoryCache, MemoryConfig};

/// The spatial sampling rate used unless another is configured: one key in a hundred.
pub const DEFAULT_SAMPLING_RATE: f64 = 0.01;
/// Sampling decisions are taken on the hash modulo this.
const MODULUS: u64 = 1 << 24;
/// Histogram buckets per doubling of the reuse distance.
const BUCKETS_PER_OCTAVE: f64 = 16.0;
/// Histogram buckets: distances up to 2^64 bytes.
const BUCKETS: usize = 64 * 16;
/// Mini-simulation values are slices of this (so that simulated entries allocate no value).
static ZEROS: [u8; 1 << 16] = [0; 1 << 16];
/// Length of a mini-simulation key (the hash in hex).
const SIM_KEY_LEN: usize = 16;

/// The hash keys are sampled by: the same on every node and in every run (a fixed seed), so
/// that a sample is stable.
#[inline]
pub fn key_hash(key: &str) -> u64 {
    foldhash::quality::FixedState::with_seed(0x6e66_6373_5f6d_7263).hash_one(key)
}

/// Which keys are sampled: `hash mod 2^24 < threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampling {
    threshold: u64,
}

impl Sampling {
    /// Sampling at `rate` (0 < rate <= 1), rounded to a multiple of 2^-24.
    fn new(rate: f64) -> Sampling {
        let threshold = ((rate * MODULUS as f64).round() as u64).clamp(1, MODULUS);
        Sampling { threshold }
    }

    /// Whether reads of the key with this [`key_hash`] are sampled.
    #[inline]
    pub fn is_sampled(self, hash: u64) -> bool {
        hash % MODULUS < self.threshold
    }

    /// The rate actually used.
    pub fn rate(self) -> f64 {
        self.threshold as f64 / MODULUS as f64
    }
}

/// How an [`MrcEstimator`] samples and which sizes it reports.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MrcConfig {
    /// The fraction of keys sampled, in (0, 1]. Default [`DEFAULT_SAMPLING_RATE`].
    pub rate: f64,
    /// The smallest size on the curve, in bytes.
    pub min_bytes: u64,
    /// The largest size on the curve, in bytes.
    pub max_bytes: u64,
    /// Points on the curve, spaced geometrically from `min_bytes` to `max_bytes` (at least 2).
    /// Each point is one S3-FIFO simulation. Default 24.
    pub points: usize,
    /// The most sampled keys whose last read is remembered (bounding memory at about 64 bytes
    /// each); the least recently read is forgotten first. Default 262,144.
    pub max_tracked_keys: usize,
    /// Whether to simulate S3-FIFO (the LRU curve costs one tree update per sampled read; the
    /// S3-FIFO one a simulated read per point). Default true.
    pub simulate_s3fifo: bool,
    /// Whether the LRU curve comes from simulations of the tier's LRU code too (as S3-FIFO's
    /// does, with the denser samples for small sizes; more accurate at small sizes than the
    /// reuse distances, at a simulated read per point) rather than from the reuse distances.
    /// Default true.
    pub simulate_lru: bool,
    /// The smallest budget an S3-FIFO simulation runs with, in bytes. S3-FIFO is not scale
    /// free: its small queue (3 % of the budget) must hold enough entries to behave as it does
    /// at full size, so a point whose size times `rate` is below this samples more keys (a
    /// nested sample: every key of a sparser sample is in the denser ones), at most all of
    /// them, and at most four times `rate` (so that a small lower bound does not make every
    /// read a sampled one). [`MrcEstimator::sampling`] is the densest sample. Default 1 MiB.
    pub min_simulation_bytes: u64,
}

impl MrcConfig {
    /// Sizes from `min_bytes` to `max_bytes`, the default rate and 24 points.
    pub fn new(min_bytes: u64, max_bytes: u64) -> MrcConfig {
        MrcConfig {
            rate: DEFAULT_SAMPLING_RATE,
            min_bytes,
            max_bytes,
            points: 24,
            max_tracked_keys: 1 << 18,
            simulate_s3fifo: true,
            simulate_lru: true,
            min_simulation_bytes: 1 << 20,
        }
    }

    /// Sets the sampling rate.
    pub fn rate(mut self, rate: f64) -> MrcConfig {
        self.rate = rate;
        self
    }

    /// Sets the number of points.
    pub fn points(mut self, points: usize) -> MrcConfig {
        self.points = points;
        self
    }

    /// Sets how many sampled keys are remembered.
    pub fn max_tracked_keys(mut self, keys: usize) -> MrcConfig {
        self.max_tracked_keys = keys;
        self
    }

    /// Sets the smallest simulated budget.
    pub fn min_simulation_bytes(mut self, bytes: u64) -> MrcConfig {
        self.min_simulation_bytes = bytes;
        self
    }

    /// Turns the LRU simulations on or off (off: the LRU curve from reuse distances).
    pub fn simulate_lru(mut self, simulate: bool) -> MrcConfig {
        self.simulate_lru = simulate;
        self
    }

    /// Turns the S3-FIFO simulations on or off.
    pub fn simulate_s3fifo(mut self, simulate: bool) -> MrcConfig {
        self.simulate_s3fifo = simulate;
        self
    }

    fn validate(&self) -> Result<(), CacheError> {
        let invalid = |reason: String| {
            Err(CacheError::InvalidCapacity {
                tier: "miss-ratio curve".to_owned(),
                reason,
            })
        };
        if !(self.rate > 0.0 && self.rate <= 1.0) {
            return invalid(format!(
                "the sampling rate must be in (0, 1], not {}",
                self.rate
            ));
        }
        if self.min_bytes == 0 || self.min_bytes >= self.max_bytes {
            return invalid(format!(
                "the sizes must satisfy 0 < min_bytes < max_bytes, not {}..{}",
                self.min_bytes, self.max_bytes
            ));
        }
        if self.points < 2 || self.points > 1024 {
            return invalid(format!("a curve has 2 to 1024 points, not {}", self.points));
        }
        if self.max_tracked_keys == 0 {
            return invalid("max_tracked_keys must be at least 1".to_owned());
        }
        Ok(())
    }
}

/// One point of a [`MissRatioCurve`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CurvePoint {
    /// The memory tier's budget in bytes.
    pub bytes: u64,
    /// The fraction of reads that would miss at that budget.
    pub miss_ratio: f64,
}

/// Miss ratio against memory budget, for one eviction policy.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MissRatioCurve {
    /// The policy the curve is for.
    pub policy: EvictionPolicy,
    /// Points by increasing size; the miss ratio never rises with size (LRU's by construction,
    /// S3-FIFO's made monotone, since a larger budget can always be run as the smaller one).
    pub points: Vec<CurvePoint>,
    /// The sampled reads behind the curve (after decay): a curve on a few hundred is noisy.
    pub sampled_reads: f64,
}

impl MissRatioCurve {
    /// The miss ratio at `bytes`, interpolated linearly in log size between points (held flat
    /// beyond the ends); 1.0 for an empty curve.
    pub fn miss_ratio_at(&self, bytes: u64) -> f64 {
        let Some(first) = self.points.first() else {
            return 1.0;
        };
        if bytes <= first.bytes {
            return first.miss_ratio;
        }
        for pair in self.points.windows(2) {
            let (low, high) = (pair[0], pair[1]);
            if bytes <= high.bytes {
                let span = (high.bytes as f64).ln() - (low.bytes as f64).ln();
                let at =
                    ((bytes as f64).ln() - (low.bytes as f64).ln()) / span.max(f64::MIN_POSITIVE);
                return low.miss_ratio + (high.miss_ratio - low.miss_ratio) * at;
            }
        }
        self.points.last().map_or(1.0, |last| last.miss_ratio)
    }

    /// `1 - miss_ratio_at(bytes)`.
    pub fn hit_ratio_at(&self, bytes: u64) -> f64 {
        1.0 - self.miss_ratio_at(bytes)
    }

    /// The smallest size on the curve (interpolated between points) whose hit ratio reaches
    /// `hit_ratio`; `None` when even the largest does not.
    pub fn smallest_size_reaching(&self, hit_ratio: f64) -> Option<u64> {
        let target = 1.0 - hit_ratio;
        let first = self.points.first()?;
        if first.miss_ratio <= target {
            return Some(first.bytes);
        }
        for pair in self.points.windows(2) {
            let (low, high) = (pair[0], pair[1]);
            if high.miss_ratio <= target {
                let drop = low.miss_ratio - high.miss_ratio;
                let at = if drop > 0.0 {
                    (low.miss_ratio - target) / drop
                } else {
                    1.0
                };
                let log = (low.bytes as f64).ln()
                    + ((high.bytes as f64).ln() - (low.bytes as f64).ln()) * at;
                return Some((log.exp().ceil() as u64).clamp(low.bytes, high.bytes));
            }
        }
        None
    }

    /// The mean absolute difference of the miss ratios of `self` and `other` at `self`'s
    /// points (`other` interpolated).
    pub fn mean_absolute_error(&self, other: &MissRatioCurve) -> f64 {
        if self.points.is_empty() {
            return 0.0;
        }
        self.points
            .iter()
            .map(|point| (point.miss_ratio - other.miss_ratio_at(point.bytes)).abs())
            .sum::<f64>()
            / self.points.len() as f64
    }
}

/// The sizes of a curve: `points` sizes spaced geometrically from `min` to `max`.
pub fn size_grid(min: u64, max: u64, points: usize) -> Vec<u64> {
    let (low, high) = ((min.max(1)) as f64, (max.max(2)) as f64);
    let steps = points.max(2) - 1;
    let mut sizes: Vec<u64> = (0..=steps)
        .map(|step| (low * (high / low).powf(step as f64 / steps as f64)).round() as u64)
        .collect();
    sizes.dedup();
    sizes
}

/// A sampled key's last read: its place in the tree and its charge.
#[derive(Clone, Copy)]
struct LastRead {
    time: u32,
    charge: u64,
}

/// LRU reuse distances of the sampled reads (SHARDS).
struct ShardsLru {
    last: HashMap<u64, LastRead, RandomState>,
    /// Per time slot, the hash of the key last read then (0: none).
    by_time: Vec<u64>,
    /// Fenwick tree over time slots, holding each live slot's charge.
    tree: Vec<i64>,
    /// The next time slot (1-based: the tree's index 0 is unused).
    now: usize,
    /// The oldest slot that may still be live (for forgetting the least recently read).
    oldest: usize,
    /// Sampled reads by scaled reuse distance, bucketed geometrically.
    histogram: Vec<f64>,
    /// Sampled reads of keys not seen before (or forgotten).
    cold: f64,
    max_keys: usize,
}

impl ShardsLru {
    fn new(max_keys: usize) -> ShardsLru {
        let slots = (max_keys * 2).clamp(1024, 1 << 31);
        ShardsLru {
            last: HashMap::default(),
            by_time: vec![0; slots + 1],
            tree: vec![0; slots + 1],
            now: 1,
            oldest: 1,
            histogram: vec![0.0; BUCKETS],
            cold: 0.0,
            max_keys,
        }
    }

    fn add(&mut self, mut index: usize, delta: i64) {
        while index < self.tree.len() {
            self.tree[index] += delta;
            index += index & index.wrapping_neg();
        }
    }

    /// The sum of slots `1..=index`.
    fn prefix(&self, mut index: usize) -> i64 {
        let mut sum = 0;
        while index > 0 {
            sum += self.tree[index];
            index -= index & index.wrapping_neg();
        }
        sum
    }

    /// A use of `hash`: a read (`count`: its reuse distance is counted) or a write (it only
    /// moves the key to the top of the stack, as a write does in an LRU cache).
    fn record(&mut self, hash: u64, charge: u64, scale: f64, count: bool) {
        match self.last.get(&hash).copied() {
            Some(last) => {
                let time = last.time as usize;
                if count {
                    let between = self.prefix(self.now - 1) - self.prefix(time);
                    // The bytes between are sampled (scaled up); the key's own are not.
                    let distance = between.max(0) as f64 * scale + charge as f64;
                    self.histogram[bucket_of(distance)] += 1.0;
                }
                self.add(time, -(last.charge as i64));
                self.by_time[time] = 0;
            }
            None if count => self.cold += 1.0,
            None => {}
        }
        if self.now >= self.tree.len() {
            self.compact();
        }
        let time = self.now;
        self.now += 1;
        self.add(time, charge as i64);
        self.by_time[time] = hash;
        self.last.insert(
            hash,
            LastRead {
                time: time as u32,
                charge,
            },
        );
        while self.last.len() > self.max_keys {
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        while self.oldest < self.now {
            let time = self.oldest;
            self.oldest += 1;
            let hash = self.by_time[time];
            if hash != 0 {
                if let Some(last) = self.last.remove(&hash) {
                    self.add(time, -(last.charge as i64));
                }
                self.by_time[time] = 0;
                return;
            }
        }
    }

    /// Renumbers the live slots `1..`, keeping their order.
    fn compact(&mut self) {
        let live: Vec<(u64, u64)> = (self.oldest..self.now)
            .filter_map(|time| {
                let hash = self.by_time[time];
                (hash != 0).then(|| (hash, self.last.get(&hash).map_or(0, |last| last.charge)))
            })
            .collect();
        self.by_time.iter_mut().for_each(|slot| *slot = 0);
        self.tree.iter_mut().for_each(|slot| *slot = 0);
        self.now = 1;
        self.oldest = 1;
        for (hash, charge) in live {
            let time = self.now;
            self.now += 1;
            self.add(time, charge as i64);
            self.by_time[time] = hash;
            if let Some(last) = self.last.get_mut(&hash) {
                last.time = time as u32;
            }
        }
    }

    fn charge_of(&self, hash: u64) -> Option<u64> {
        self.last.get(&hash).map(|last| last.charge)
    }

    /// Misses (cold plus reuse distances beyond `bytes`).
    fn misses_at(&self, bytes: u64) -> f64 {
        let limit = bytes as f64;
        let mut misses = self.cold;
        for (index, count) in self.histogram.iter().enumerate() {
            if *count == 0.0 {
                continue;
            }
            let (low, high) = bucket_bounds(index);
            if low >= limit {
                misses += count;
            } else if high > limit {
                // Spread evenly (in log size) within the bucket.
                misses += count * ((high.ln() - limit.ln()) / (high.ln() - low.ln()));
            }
        }
        misses
    }

    fn decay(&mut self, keep: f64) {
        self.histogram.iter_mut().for_each(|count| *count *= keep);
        self.cold *= keep;
    }
}

fn bucket_of(distance: f64) -> usize {
    if distance < 1.0 {
        return 0;
    }
    ((distance.log2() * BUCKETS_PER_OCTAVE) as usize).min(BUCKETS - 1)
}

fn bucket_bounds(index: usize) -> (f64, f64) {
    let low = 2f64.powf(index as f64 / BUCKETS_PER_OCTAVE);
    let high = 2f64.powf((index + 1) as f64 / BUCKETS_PER_OCTAVE);
    (if index == 0 { 0.0 } else { low }, high)
}

/// One scaled-down memory tier at one size of the grid.
struct MiniSim {
    policy: EvictionPolicy,
    bytes: u64,
    /// The keys this simulation sees (at least as many as the LRU sample).
    sampling: Sampling,
    cache: MemoryCache,
    hits: f64,
    misses: f64,
}

/// Online miss-ratio curves of LRU and S3-FIFO from a spatial sample of keys (see the module
/// documentation).
pub struct MrcEstimator {
    config: MrcConfig,
    /// The LRU sample (the configured rate).
    lru_sampling: Sampling,
    /// The densest sample any part needs.
    sampling: Sampling,
    lru: ShardsLru,
    sims: Vec<MiniSim>,
    sizes: Vec<u64>,
    /// All reads, sampled or not (for SHARDS-adj).
    reads: f64,
    /// Sampled reads.
    sampled: f64,
    /// Sum and count of known value sizes, for reads of keys of unknown size.
    size_sum: f64,
    size_count: f64,
}

impl std::fmt::Debug for MrcEstimator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MrcEstimator")
            .field("config", &self.config)
            .field("reads", &self.reads)
            .field("sampled", &self.sampled)
            .field("tracked_keys", &self.lru.last.len())
            .finish()
    }
}

impl MrcEstimator {
    /// An estimator as `config` says.
    ///
    /// # Errors
    /// [`CacheError::InvalidCapacity`] for a rate outside (0, 1], sizes that are not
    /// `0 < min < max`, fewer than 2 or more than 1024 points, or no tracked keys.
    pub fn new(config: MrcConfig) -> Result<MrcEstimator, CacheError> {
        config.validate()?;
        let lru_sampling = Sampling::new(config.rate);
        let mut sampling = lru_sampling;
        let sizes = size_grid(config.min_bytes, config.max_bytes, config.points);
        let mut sims = Vec::new();
        let simulated = [
            (EvictionPolicy::S3Fifo, config.simulate_s3fifo),
            (EvictionPolicy::Lru, config.simulate_lru),
        ];
        for policy in simulated
            .into_iter()
            .filter_map(|(policy, on)| on.then_some(policy))
        {
            for &bytes in &sizes {
                let rate = config
                    .rate
                    .max(config.min_simulation_bytes as f64 / bytes as f64)
                    .min(config.rate * 4.0)
                    .min(1.0);
                let sim_sampling = Sampling::new(rate);
                if sim_sampling.threshold > sampling.threshold {
                    sampling = sim_sampling;
                }
                let scaled = ((bytes as f64 * sim_sampling.rate()).round() as u64).max(1);
                let cache = MemoryCache::with_config(
                    MemoryConfig::new(scaled)
                        .shards(1)
                        .eviction_policy(policy)
                        .name("mrc-simulation")
                        .instance("mrc-simulation"),
                )?;
                sims.push(MiniSim {
                    policy,
                    bytes,
                    sampling: sim_sampling,
                    cache,
                    hits: 0.0,
                    misses: 0.0,
                });
            }
        }
        Ok(MrcEstimator {
            lru: ShardsLru::new(config.max_tracked_keys),
            config,
            lru_sampling,
            sampling,
            sims,
            sizes,
            reads: 0.0,
            sampled: 0.0,
            size_sum: 0.0,
            size_count: 0.0,
        })
    }

    /// Which keys this estimator samples: the densest sample of its parts (the configured
    /// rate, or more for small S3-FIFO simulations).
    pub fn sampling(&self) -> Sampling {
        self.sampling
    }

    /// The configuration.
    pub fn config(&self) -> &MrcConfig {
        &self.config
    }

    /// Counts `reads` reads of any key, sampled or not: the denominator of the miss ratio.
    pub fn note_reads(&mut self, reads: u64) {
        self.reads += reads as f64;
    }

    /// Records a read of the key with hash `hash` (from [`key_hash`]), `key_len` bytes long,
    /// whose value is `value_len` bytes (`None` when the read found nothing to size it by).
    /// Reads of keys outside the sample are ignored (returns `false`); the caller usually
    /// checks [`Sampling::is_sampled`] first, to avoid the call.
    pub fn record(&mut self, hash: u64, key_len: usize, value_len: Option<usize>) -> bool {
        if !self.sampling.is_sampled(hash) {
            return false;
        }
        let value_len = match value_len {
            Some(len) => {
                self.size_sum += len as f64;
                self.size_count += 1.0;
                len
            }
            None => match self.lru.charge_of(hash) {
                Some(charge) => charge
                    .saturating_sub(EvictionPolicy::Lru.entry_charge(key_len, 0, false))
                    as usize,
                None if self.size_count > 0.0 => (self.size_sum / self.size_count) as usize,
                None => 0,
            },
        };
        if self.lru_sampling.is_sampled(hash) {
            self.sampled += 1.0;
            let charge = EvictionPolicy::Lru.entry_charge(key_len, value_len, false);
            self.lru
                .record(hash, charge, 1.0 / self.lru_sampling.rate(), true);
        }
        self.simulate(hash, key_len, value_len, true);
        true
    }

    /// Records a write of the key with hash `hash` (`key_len` and `value_len` bytes): it
    /// counts as no read, but takes its place in the caches (at the top of LRU's stack, in the
    /// S3-FIFO simulations), as a write does in the tier. Ignored (`false`) outside the sample.
    pub fn record_write(&mut self, hash: u64, key_len: usize, value_len: usize) -> bool {
        if !self.sampling.is_sampled(hash) {
            return false;
        }
        self.size_sum += value_len as f64;
        self.size_count += 1.0;
        if self.lru_sampling.is_sampled(hash) {
            let charge = EvictionPolicy::Lru.entry_charge(key_len, value_len, false);
            self.lru
                .record(hash, charge, 1.0 / self.lru_sampling.rate(), false);
        }
        self.simulate(hash, key_len, value_len, false);
        true
    }

    /// Feeds a read (`read`: a hit or a miss is counted, a miss inserts) or a write (inserts)
    /// to every simulation whose sample holds `hash`.
    fn simulate(&mut self, hash: u64, key_len: usize, value_len: usize, read: bool) {
        if self.sims.is_empty() {
            return;
        }
        let key = hex_key(hash);
        let key = std::str::from_utf8(&key).unwrap_or("0000000000000000");
        // The simulated key is 16 bytes: the value makes up the difference, so that the
        // simulated entry is charged what the real one is.
        let sim_len = (key_len + value_len).saturating_sub(SIM_KEY_LEN);
        for sim in &mut self.sims {
            if !sim.sampling.is_sampled(hash) {
                continue;
            }
            if read && matches!(sim.cache.get(key), Ok(Some(_))) {
                sim.hits += 1.0;
                continue;
            }
            if read {
                sim.misses += 1.0;
            }
            let _ = sim.cache.insert(key, zero_value(sim_len), None);
        }
    }

    /// Ages everything seen: counts are multiplied by `keep` (in 0..=1), so that reads from
    /// `n` decays ago weigh `keep^n`. The simulated caches keep their contents.
    pub fn decay(&mut self, keep: f64) {
        let keep = keep.clamp(0.0, 1.0);
        self.lru.decay(keep);
        for sim in &mut self.sims {
            sim.hits *= keep;
            sim.misses *= keep;
        }
        self.reads *= keep;
        self.sampled *= keep;
        self.size_sum *= keep;
        self.size_count *= keep;
    }

    /// Sampled reads so far (after decay).
    pub fn sampled_reads(&self) -> f64 {
        self.sampled
    }

    /// The LRU miss ratio at any size, from the reuse-distance histogram (resolution: 16
    /// buckets per doubling), without the interpolation between the curve's points.
    pub fn lru_miss_ratio_at(&self, bytes: u64) -> f64 {
        ratio(self.lru.misses_at(bytes), self.expected_sampled())
    }

    /// SHARDS-adj: the sampled reads the sample should have had, given all reads.
    fn expected_sampled(&self) -> f64 {
        if self.reads > 0.0 {
            self.reads * self.lru_sampling.rate()
        } else {
            self.sampled
        }
    }

    /// The curve for `policy` at the configured sizes; S3-FIFO's is empty when it is not
    /// simulated.
    pub fn curve(&self, policy: EvictionPolicy) -> MissRatioCurve {
        let simulated = self.sims.iter().any(|sim| sim.policy == policy);
        let mut points: Vec<CurvePoint> = match policy {
            _ if simulated || policy == EvictionPolicy::S3Fifo => self
                .sims
                .iter()
                .filter(|sim| sim.policy == policy)
                .map(|sim| {
                    // SHARDS-adj here too: the misses over the reads this simulation's sample
                    // should have had.
                    let expected = if self.reads > 0.0 {
                        self.reads * sim.sampling.rate()
                    } else {
                        sim.hits + sim.misses
                    };
                    CurvePoint {
                        bytes: sim.bytes,
                        miss_ratio: ratio(sim.misses, expected),
                    }
                })
                .collect(),
            _ => {
                // SHARDS-adj: the misses over the reads the sample should have had.
                let expected = self.expected_sampled();
                self.sizes
                    .iter()
                    .map(|&bytes| CurvePoint {
                        bytes,
                        miss_ratio: ratio(self.lru.misses_at(bytes), expected),
                    })
                    .collect()
            }
        };
        // Monotone: the miss ratio at a size is at most that of any smaller size.
        for index in 1..points.len() {
            points[index].miss_ratio = points[index].miss_ratio.min(points[index - 1].miss_ratio);
        }
        MissRatioCurve {
            policy,
            points,
            sampled_reads: self.sampled,
        }
    }
}

fn ratio(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        (part / whole).clamp(0.0, 1.0)
    } else {
        1.0
    }
}

fn hex_key(hash: u64) -> [u8; SIM_KEY_LEN] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut key = [0_u8; SIM_KEY_LEN];
    for (index, byte) in key.iter_mut().enumerate() {
        *byte = DIGITS[((hash >> (60 - 4 * index)) & 0xf) as usize];
    }
    key
}

fn zero_value(len: usize) -> Bytes {
    match ZEROS.get(..len) {
        Some(slice) => Bytes::from_static(slice),
        None => Bytes::from(vec![0_u8; len]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_refused() {
        for config in [
            MrcConfig::new(1, 100).rate(0.0),
            MrcConfig::new(1, 100).rate(f64::NAN),
            MrcConfig::new(1, 100).rate(1.5),
            MrcConfig::new(100, 100),
            MrcConfig::new(0, 100),
            MrcConfig::new(1, 100).points(1),
            MrcConfig::new(1, 100).max_tracked_keys(0),
        ] {
            assert!(MrcEstimator::new(config).is_err());
        }
    }

    #[test]
    fn the_sampling_rate_is_kept() {
        let sampling = Sampling::new(0.01);
        let sampled = (0..200_000)
            .filter(|index| sampling.is_sampled(key_hash(&format!("key_{index}"))))
            .count();
        assert!((1_800..2_200).contains(&sampled), "{sampled} of 200,000");
    }

    #[test]
    fn lru_distances_are_exact_at_full_sampling() {
        // Keys a b c a: the second read of a has a, b and c between (3 entries).
        let mut estimator = MrcEstimator::new(
            MrcConfig::new(100, 10_000)
                .rate(1.0)
                .points(64)
                .simulate_s3fifo(false),
        )
        .unwrap();
        let charge = EvictionPolicy::Lru.entry_charge(1, 10, false);
        for key in ["a", "b", "c", "a"] {
            estimator.record(key_hash(key), 1, Some(10));
        }
        estimator.note_reads(4);
        // Three cold misses of four, and the fourth hits from 3 entries' worth of bytes on.
        assert!((estimator.lru_miss_ratio_at(2 * charge) - 1.0).abs() < 1e-9);
        assert!((estimator.lru_miss_ratio_at(3 * charge * 105 / 100) - 0.75).abs() < 1e-9);
    }

    #[test]
    fn writes_take_space_without_counting_as_reads() {
        let mut estimator = MrcEstimator::new(
            MrcConfig::new(100, 10_000)
                .rate(1.0)
                .points(64)
                .simulate_s3fifo(false),
        )
        .unwrap();
        let charge = EvictionPolicy::Lru.entry_charge(1, 10, false);
        estimator.record(key_hash("a"), 1, Some(10));
        estimator.record_write(key_hash("b"), 1, 10);
        estimator.record_write(key_hash("c"), 1, 10);
        estimator.record(key_hash("a"), 1, Some(10));
        estimator.note_reads(2);
        // Two reads: a cold miss, and a hit once a, b and c fit.
        assert!((estimator.lru_miss_ratio_at(2 * charge) - 1.0).abs() < 1e-9);
        assert!((estimator.lru_miss_ratio_at(3 * charge * 105 / 100) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn compaction_and_forgetting_keep_distances() {
        let mut estimator = MrcEstimator::new(
            MrcConfig::new(100, 1 << 30)
                .rate(1.0)
                .max_tracked_keys(600)
                .simulate_s3fifo(false),
        )
        .unwrap();
        // A cyclic scan of 500 keys, many times: the tree is compacted repeatedly, and every
        // read after the first round has the same distance (500 entries).
        for _ in 0..20 {
            for key in 0..500 {
                estimator.record(key_hash(&key.to_string()), 3, Some(10));
            }
        }
        estimator.note_reads(10_000);
        let charge = EvictionPolicy::Lru.entry_charge(3, 10, false);
        assert!((estimator.lru_miss_ratio_at(480 * charge) - 1.0).abs() < 1e-9);
        assert!((estimator.lru_miss_ratio_at(530 * charge) - 0.05).abs() < 1e-9);
    }

    #[test]
    fn curves_interpolate_and_invert() {
        let curve = MissRatioCurve {
            policy: EvictionPolicy::Lru,
            points: vec![
                CurvePoint {
                    bytes: 100,
                    miss_ratio: 0.8,
                },
                CurvePoint {
                    bytes: 10_000,
                    miss_ratio: 0.2,
                },
            ],
            sampled_reads: 1.0,
        };
        assert!((curve.miss_ratio_at(1_000) - 0.5).abs() < 1e-9);
        assert_eq!(curve.miss_ratio_at(1), 0.8);
        assert_eq!(curve.miss_ratio_at(1 << 40), 0.2);
        let size = curve.smallest_size_reaching(0.5).unwrap();
        assert!((999..=1_001).contains(&size), "{size}");
        assert_eq!(curve.smallest_size_reaching(0.9), None);
        assert_eq!(curve.smallest_size_reaching(0.1), Some(100));
    }
}
