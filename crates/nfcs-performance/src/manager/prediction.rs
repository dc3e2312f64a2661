//! Cache warming, `predicted_access`: which keys follow which, learned from the reads that
//! missed memory (and the first hits on prefetched entries), and the likely successors of a
//! read key prefetched from the lower tiers into memory in the background.
//!
//! - **Learning.** Each learning read `b` counts as a successor of the `window` learning reads
//!   before it. A source keeps at most eight successors (space-saving: a new one replaces the
//!   least counted, starting above it, and only the count it surely earned is trusted); at most `max_sources` sources are kept, and every
//!   `max_sources` learning reads all counts are halved and the emptied sources dropped, so the
//!   model follows a workload that changes. Only reads that missed memory teach it: what is in
//!   memory needs no prefetch, and a hit costs one atomic load.
//! - **Prefetch.** After a learning read of `a`, each successor `b` seen after `a` in at least
//!   `min_confidence` of `a`'s appearances (and `a` seen at least three times) that is not in
//!   memory is read from the lower tiers and promoted, under the same guard as a read's
//!   promotion (a deleted or newer key is never overwritten), at most `max_prefetch` per read.
//! - **Precision and back-off.** A prefetched entry that is read before 4,096 more prefetches
//!   were issued was useful; otherwise wasted. Over the last 64 outcomes, a precision under
//!   0.25 pauses prefetching (learning goes on) for 256 learning reads, doubling up to 65,536
//!   while it stays low, and resetting when it recovers.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use foldhash::fast::RandomState;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::Notify;

use super::Inner;

/// Successors kept per source.
const SUCCESSORS: usize = 8;
/// A source must have been seen this often before its successors are prefetched, and a
/// successor must have followed it this often.
const MIN_SUPPORT: u32 = 3;
/// Prefetched entries remembered for precision; older ones count as wasted.
const PREFETCHED_MEMORY: usize = 4_096;
/// Outcomes the precision is computed over.
const OUTCOMES: usize = 64;
/// Precision under this pauses prefetching.
const MIN_PRECISION: f64 = 0.25;
/// The first pause, in learning reads.
const FIRST_PAUSE: u64 = 256;
/// The longest pause.
const MAX_PAUSE: u64 = 65_536;

/// How `predicted_access` runs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PredictionConfig {
    /// How many preceding learning reads a read counts as the successor of.
    pub window: usize,
    /// The share of a source's appearances a successor must follow it in to be prefetched.
    pub min_confidence: f64,
    /// Prefetches at most per read.
    pub max_prefetch: usize,
    /// Sources kept at most.
    pub max_sources: usize,
}

impl Default for PredictionConfig {
    fn default() -> PredictionConfig {
        PredictionConfig {
            window: 4,
            min_confidence: 0.3,
            max_prefetch: 2,
            max_sources: 65_536,
        }
    }
}

/// What prediction has done so far ([`Prediction::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PredictionStats {
    /// Reads it learned from.
    pub learned: u64,
    /// Prefetches issued (lower-tier reads made on its behalf).
    pub prefetches: u64,
    /// Prefetched entries read before being forgotten.
    pub useful: u64,
    /// Prefetched entries forgotten unread (or not found below).
    pub wasted: u64,
    /// Prefetches skipped because prefetching was paused for low precision.
    pub paused_skips: u64,
    /// `useful / (useful + wasted)`, 0 before any outcome.
    pub precision: f64,
    /// Sources in the model.
    pub sources: usize,
}

struct Successor {
    key: Box<str>,
    hash: u64,
    count: u32,
    /// What `count` may overstate by: the count of the successor it replaced (space-saving).
    error: u32,
}

impl Successor {
    /// Times it surely followed its source.
    fn sure(&self) -> u32 {
        self.count - self.error
    }
}

struct Source {
    seen: u32,
    next: Vec<Successor>,
}

struct Model {
    sources: HashMap<u64, Source, RandomState>,
    /// The last `window` learning reads' hashes.
    recent: VecDeque<u64>,
    /// Prefetched, not yet read: hash -> order issued.
    prefetched: HashMap<u64, u64, RandomState>,
    issued: VecDeque<u64>,
    outcomes: VecDeque<bool>,
    paused_until: u64,
    pause: u64,
    stats: PredictionStats,
}

/// The manager's `predicted_access` ([`NFCSCacheManager::prediction`](super::NFCSCacheManager::prediction)).
pub struct Prediction {
    config: PredictionConfig,
    model: Mutex<Model>,
    /// Entries prefetched and not yet read (a hit checks the model only when this is above 0).
    outstanding: AtomicUsize,
    /// Prefetches in flight, and a notification when one ends.
    in_flight: AtomicU64,
    settled: Notify,
}

impl std::fmt::Debug for Prediction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prediction")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Prediction {
    pub(super) fn new(config: PredictionConfig) -> Prediction {
        Prediction {
            model: Mutex::new(Model {
                sources: HashMap::default(),
                recent: VecDeque::new(),
                prefetched: HashMap::default(),
                issued: VecDeque::new(),
                outcomes: VecDeque::new(),
                paused_until: 0,
                pause: FIRST_PAUSE,
                stats: PredictionStats::default(),
            }),
            config,
            outstanding: AtomicUsize::new(0),
            in_flight: AtomicU64::new(0),
            settled: Notify::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PredictionConfig {
        &self.config
    }

    /// What prediction has done so far.
    pub fn stats(&self) -> PredictionStats {
        let model = self.model.lock();
        let mut stats = model.stats;
        stats.sources = model.sources.len();
        let outcomes = stats.useful + stats.wasted;
        stats.precision = if outcomes > 0 {
            stats.useful as f64 / outcomes as f64
        } else {
            0.0
        };
        stats
    }

    /// Waits until no prefetch is in flight (tests and benchmarks use it to replay a trace
    /// deterministically).
    pub async fn settle(&self) {
        loop {
            let notified = self.settled.notified();
            if self.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// A memory hit on the key with this (memory-tier) hash: if it was prefetched, a useful
    /// prefetch and a learning read (the keys to prefetch after it are returned).
    #[inline]
    pub(super) fn on_hit(&self, key: &str, hash: u64) -> Vec<Box<str>> {
        if self.outstanding.load(Ordering::Relaxed) == 0 {
            return Vec::new();
        }
        self.on_hit_slow(key, hash)
    }

    #[cold]
    fn on_hit_slow(&self, key: &str, hash: u64) -> Vec<Box<str>> {
        let mut model = self.model.lock();
        if model.prefetched.remove(&hash).is_none() {
            return Vec::new();
        }
        self.outstanding.fetch_sub(1, Ordering::Relaxed);
        model.stats.useful += 1;
        record_outcome(&mut model, true);
        self.learn(&mut model, key, hash)
    }

    /// A read that missed memory: a learning read; returns the keys to prefetch after it.
    pub(super) fn on_miss(&self, key: &str, hash: u64) -> Vec<Box<str>> {
        let mut model = self.model.lock();
        self.learn(&mut model, key, hash)
    }

    fn learn(&self, model: &mut Model, key: &str, hash: u64) -> Vec<Box<str>> {
        model.stats.learned += 1;

        let recent: Vec<u64> = model.recent.iter().copied().collect();
        for source in recent {
            if source == hash {
                continue;
            }
            if let Some(source) = model.sources.get_mut(&source) {
                bump(source, key, hash);
            }
        }
        model.recent.push_back(hash);
        while model.recent.len() > self.config.window {
            model.recent.pop_front();
        }
        if !model.sources.contains_key(&hash) && model.sources.len() >= self.config.max_sources {
            // Full: this source waits for the next halving to make room.
        } else {
            let source = model.sources.entry(hash).or_insert_with(|| Source {
                seen: 0,
                next: Vec::new(),
            });
            source.seen = source.seen.saturating_add(1);
        }
        if model
            .stats
            .learned
            .is_multiple_of(self.config.max_sources.max(1024) as u64)
        {
            halve(model);
        }
        // What to prefetch after this read.
        let Some(source) = model.sources.get(&hash) else {
            return Vec::new();
        };
        if source.seen < MIN_SUPPORT {
            return Vec::new();
        }
        let threshold =
            (f64::from(source.seen) * self.config.min_confidence).max(f64::from(MIN_SUPPORT));
        let mut picks: Vec<(u32, Box<str>, u64)> = source
            .next
            .iter()
            .filter(|next| {
                f64::from(next.sure()) >= threshold && !model.prefetched.contains_key(&next.hash)
            })
            .map(|next| (next.sure(), next.key.clone(), next.hash))
            .collect();
        picks.sort_unstable_by_key(|pick| std::cmp::Reverse(pick.0));
        picks.truncate(self.config.max_prefetch);
        if picks.is_empty() {
            return Vec::new();
        }
        if model.stats.learned < model.paused_until {
            model.stats.paused_skips += picks.len() as u64;
            return Vec::new();
        }
        picks.into_iter().map(|(_, key, _)| key).collect()
    }

    /// Records that `key` (with this hash) is being prefetched.
    fn issued(&self, hash: u64) {
        let mut model = self.model.lock();
        model.stats.prefetches += 1;
        let order = model.stats.prefetches;
        if model.prefetched.insert(hash, order).is_none() {
            self.outstanding.fetch_add(1, Ordering::Relaxed);
        }
        model.issued.push_back(hash);
        while model.issued.len() > PREFETCHED_MEMORY {
            if let Some(old) = model.issued.pop_front()
                && model
                    .prefetched
                    .get(&old)
                    .is_some_and(|&at| order - at >= PREFETCHED_MEMORY as u64)
            {
                model.prefetched.remove(&old);
                self.outstanding.fetch_sub(1, Ordering::Relaxed);
                model.stats.wasted += 1;
                record_outcome(&mut model, false);
            }
        }
    }

    /// A prefetch that found nothing to load: wasted at once.
    fn found_nothing(&self, hash: u64) {
        let mut model = self.model.lock();
        if model.prefetched.remove(&hash).is_some() {
            self.outstanding.fetch_sub(1, Ordering::Relaxed);
            model.stats.wasted += 1;
            record_outcome(&mut model, false);
        }
    }
}

fn bump(source: &mut Source, key: &str, hash: u64) {
    if let Some(next) = source.next.iter_mut().find(|next| next.hash == hash) {
        next.count = next.count.saturating_add(1);
        return;
    }
    if source.next.len() < SUCCESSORS {
        source.next.push(Successor {
            key: key.into(),
            hash,
            count: 1,
            error: 0,
        });
        return;
    }
    if let Some(least) = source.next.iter_mut().min_by_key(|next| next.count) {
        *least = Successor {
            key: key.into(),
            hash,
            count: least.count.saturating_add(1),
            error: least.count,
        };
    }
}

fn halve(model: &mut Model) {
    model.sources.retain(|_, source| {
        source.seen /= 2;
        source.next.iter_mut().for_each(|next| {
            next.count /= 2;
            next.error /= 2;
        });
        source.next.retain(|next| next.count > 0);
        source.seen > 0
    });
}

fn record_outcome(model: &mut Model, useful: bool) {
    model.outcomes.push_back(useful);
    while model.outcomes.len() > OUTCOMES {
        model.outcomes.pop_front();
    }
    if model.outcomes.len() < OUTCOMES / 2 {
        return;
    }
    let good = model.outcomes.iter().filter(|&&useful| useful).count();
    let precision = good as f64 / model.outcomes.len() as f64;
    if precision < MIN_PRECISION {
        if model.stats.learned >= model.paused_until {
            model.paused_until = model.stats.learned + model.pause;
            model.pause = (model.pause * 2).min(MAX_PAUSE);
            model.outcomes.clear();
        }
    } else {
        model.pause = FIRST_PAUSE;
    }
}

/// Starts prefetching `keys` (in the background, on the current runtime; without one,
/// nothing is prefetched).
pub(super) fn prefetch(inner: &Arc<Inner>, keys: Vec<Box<str>>) {
    let (Some(prediction), Some(memory)) = (&inner.prediction, &inner.memory) else {
        return;
    };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    for key in keys {
        if memory.contains_key(&key) {
            continue;
        }
        let hash = memory.key_hash(&key);
        prediction.issued(hash);
        prediction.in_flight.fetch_add(1, Ordering::AcqRel);
        let inner = Arc::clone(inner);
        runtime.spawn(async move {
            let loaded = matches!(
                super::warming::warm_one(&inner, &key).await,
                super::warming::WarmOne::Loaded(_)
            );
            if let Some(prediction) = &inner.prediction {
                if !loaded {
                    prediction.found_nothing(hash);
                }
                if prediction.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
                    prediction.settled.notify_waiters();
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(key: &str) -> u64 {
        nfcs_cache_core::mrc::key_hash(key)
    }

    #[test]
    fn a_repeated_order_is_learned_and_noise_is_not() {
        let prediction = Prediction::new(PredictionConfig::default());
        let mut predicted = Vec::new();
        for round in 0..10 {
            for key in ["a", "b", "c"] {
                predicted = prediction.on_miss(key, hash(key));
                if key == "a" && round >= 3 {
                    assert_eq!(
                        predicted.first().map(|key| &**key),
                        Some("b"),
                        "round {round}"
                    );
                }
            }
            // A different key each round between sequences: never confident.
            let noise = format!("noise{round}");
            assert!(prediction.on_miss(&noise, hash(&noise)).is_empty());
        }
        let _ = predicted;
    }

    #[test]
    fn low_precision_pauses_prefetching() {
        let prediction = Prediction::new(PredictionConfig::default());
        for _ in 0..10 {
            prediction.on_miss("a", hash("a"));
            prediction.on_miss("b", hash("b"));
        }
        // 40 prefetches of "b" after "a" that are never read: wasted.
        for _ in 0..40 {
            assert!(
                !prediction.on_miss("a", hash("a")).is_empty()
                    || prediction.stats().paused_skips > 0
            );
            prediction.issued(hash("b"));
            prediction.found_nothing(hash("b"));
            prediction.on_miss("b", hash("b"));
        }
        let stats = prediction.stats();
        assert!(stats.paused_skips > 0, "{stats:?}");
        assert!(prediction.on_miss("a", hash("a")).is_empty(), "paused");
    }
}
