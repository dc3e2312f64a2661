//! Cache warming, `popular_queries`: which keys are read most (tracked in bounded memory from
//! a sample of the reads), saved as the hot set (periodically, and by `flush` at shutdown) in
//! the disk tier's directory and in Redis, and reloaded from the lower tiers into memory when
//! a manager starts, in the background.
//!
//! Popularity is a count-min sketch (4 rows of 32-bit counters, conservative update) over the
//! sampled reads, and a table of candidate keys (at most twice `max_keys`, pruned to the
//! `max_keys` with the highest estimates when full). Every `16 * max_keys` sampled reads all
//! counts are halved, so the hot set follows a workload that changes.
//!
//! Warming reads each hot key from the lower tiers exactly as a read that missed memory does,
//! under the same guard against racing writes and deletions: what it loads is what a read would
//! have returned, so a key deleted, invalidated or expired while the node was down (on this
//! node's tiers) never comes back, and one deleted while warming runs is not overwritten.

use std::cell::Cell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use foldhash::fast::RandomState;
use futures_util::future::join_all;
use nfcs_cache_core::mrc::key_hash;
use nfcs_cache_core::{CacheError, Ttl};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{Inner, NFCSCacheManager};

/// The Redis key the hot set of a manager named `name` is shared under.
pub fn hot_set_redis_key(name: &str) -> String {
    format!("nfcs:hot_set:{name}")
}

/// The file the hot set of a manager named `name` is saved to, in the disk tier's directory.
pub fn hot_set_file_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("hot-set.{safe}.nfcs")
}

/// How warming runs; built from `[cache_warming]` by `from_config`, or given to
/// [`ManagerBuilder::warming`](super::ManagerBuilder::warming).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WarmingConfig {
    /// How many of the most read keys are tracked and saved.
    pub max_keys: usize,
    /// One read in this many feeds the tracker.
    pub sample_every: u32,
    /// How often the hot set is saved (`None`: only when asked, and by `flush`).
    pub persist_interval: Option<Duration>,
    /// Whether building the manager starts warming from the saved hot set.
    pub warm_on_startup: bool,
    /// Warming stops after this long.
    pub max_time: Duration,
    /// Warming stops after loading this many bytes (`None`: 90 % of the memory budget).
    pub max_bytes: Option<u64>,
    /// Keys read from the lower tiers at once.
    pub concurrency: usize,
}

impl Default for WarmingConfig {
    fn default() -> WarmingConfig {
        WarmingConfig {
            max_keys: 16_384,
            sample_every: 64,
            persist_interval: Some(Duration::from_secs(60)),
            warm_on_startup: true,
            max_time: Duration::from_secs(30),
            max_bytes: None,
            concurrency: 16,
        }
    }
}

impl WarmingConfig {
    /// Sets how many keys are tracked and saved.
    #[must_use]
    pub fn max_keys(mut self, keys: usize) -> WarmingConfig {
        self.max_keys = keys.max(1);
        self
    }

    /// Sets the sampling of reads (1: every read).
    #[must_use]
    pub fn sample_every(mut self, every: u32) -> WarmingConfig {
        self.sample_every = every.max(1);
        self
    }

    /// Sets how often the hot set is saved.
    #[must_use]
    pub fn persist_interval(mut self, interval: Option<Duration>) -> WarmingConfig {
        self.persist_interval = interval;
        self
    }

    /// Sets whether the manager warms when built.
    #[must_use]
    pub fn warm_on_startup(mut self, warm: bool) -> WarmingConfig {
        self.warm_on_startup = warm;
        self
    }

    /// Sets the time bound of warming.
    #[must_use]
    pub fn max_time(mut self, time: Duration) -> WarmingConfig {
        self.max_time = time;
        self
    }

    /// Sets the byte bound of warming.
    #[must_use]
    pub fn max_bytes(mut self, bytes: Option<u64>) -> WarmingConfig {
        self.max_bytes = bytes;
        self
    }

    /// Sets how many keys are read at once.
    #[must_use]
    pub fn concurrency(mut self, concurrency: usize) -> WarmingConfig {
        self.concurrency = concurrency.max(1);
        self
    }
}

/// Why a warming run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WarmStop {
    /// Every key of the hot set was tried.
    Completed,
    /// The time bound was reached.
    TimeLimit,
    /// The byte bound was reached.
    ByteLimit,
    /// There was no hot set to warm from (none saved, or it could not be read).
    NoHotSet,
    /// The manager has no memory tier, or no tier below it to warm from.
    NothingToWarm,
}

/// What a warming run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct WarmReport {
    /// Keys in the hot set.
    pub listed: usize,
    /// Keys loaded into memory.
    pub loaded: usize,
    /// Keys already in memory (written or read since start-up).
    pub already_in_memory: usize,
    /// Keys no lower tier held (deleted, invalidated, expired or evicted since they were saved).
    pub missing: usize,
    /// Keys found but not loaded: a write or deletion of the key raced the load.
    pub skipped: usize,
    /// Bytes of values loaded.
    pub bytes: u64,
    /// How long the run took.
    pub elapsed: Duration,
    /// Why it stopped.
    pub stopped: WarmStop,
    /// Where the hot set came from: `"disk"`, `"redis"`, `"given"`, or `"none"`.
    pub source: &'static str,
}

impl WarmReport {
    fn empty(stopped: WarmStop, source: &'static str) -> WarmReport {
        WarmReport {
            listed: 0,
            loaded: 0,
            already_in_memory: 0,
            missing: 0,
            skipped: 0,
            bytes: 0,
            elapsed: Duration::ZERO,
            stopped,
            source,
        }
    }
}

/// The state of warming, as [`Warming::state`] reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
#[non_exhaustive]
pub enum WarmingState {
    /// No warming run was started.
    Idle,
    /// A run is in progress.
    Running,
    /// The last run finished.
    Finished(WarmReport),
}

/// The hot set as saved.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct HotSet {
    version: u32,
    manager: String,
    saved_unix_ms: u64,
    keys: Vec<String>,
}

const HOT_SET_VERSION: u32 = 1;

thread_local! {
    /// Reads until this thread's next sampled read.
    static COUNTDOWN: Cell<u32> = const { Cell::new(1) };
}

/// Whether this read is one of the sampled one-in-`every`.
#[inline]
fn sampled(every: u32) -> bool {
    COUNTDOWN.with(|countdown| {
        let left = countdown.get();
        if left <= 1 {
            countdown.set(every);
            true
        } else {
            countdown.set(left - 1);
            false
        }
    })
}

const SKETCH_ROWS: usize = 4;

/// Count-min sketch and candidate table (see the module documentation).
struct TopKeys {
    sketch: Vec<u32>,
    width_mask: usize,
    candidates: HashMap<Box<str>, u32, RandomState>,
    capacity: usize,
    /// A key enters the table when its estimate reaches this (the lowest count kept at the
    /// last pruning).
    admit: u32,
    sampled: u64,
    decay_every: u64,
}

impl TopKeys {
    fn new(capacity: usize) -> TopKeys {
        let width = (capacity * 8).next_power_of_two().clamp(1024, 1 << 24);
        TopKeys {
            sketch: vec![0; width * SKETCH_ROWS],
            width_mask: width - 1,
            candidates: HashMap::default(),
            capacity,
            admit: 0,
            sampled: 0,
            decay_every: (capacity as u64 * 16).max(4096),
        }
    }

    fn record(&mut self, key: &str) {
        let hash = key_hash(key);
        let width = self.width_mask + 1;
        let slots: [usize; SKETCH_ROWS] = std::array::from_fn(|row| {
            let bits = hash.rotate_left(16 * row as u32)
                ^ (row as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            row * width + (bits as usize & self.width_mask)
        });
        let minimum = slots
            .iter()
            .map(|&slot| self.sketch[slot])
            .min()
            .unwrap_or(0);
        let estimate = minimum.saturating_add(1);
        // Conservative update: only the counters at the minimum grow.
        for slot in slots {
            if self.sketch[slot] < estimate {
                self.sketch[slot] = estimate;
            }
        }
        if let Some(count) = self.candidates.get_mut(key) {
            *count = estimate;
        } else if estimate >= self.admit {
            self.candidates.insert(key.into(), estimate);
            if self.candidates.len() > self.capacity * 2 {
                self.prune();
            }
        }
        self.sampled += 1;
        if self.sampled.is_multiple_of(self.decay_every) {
            self.sketch.iter_mut().for_each(|count| *count /= 2);
            self.candidates.values_mut().for_each(|count| *count /= 2);
            self.candidates.retain(|_, count| *count > 0);
            self.admit /= 2;
        }
    }

    fn prune(&mut self) {
        let mut counts: Vec<u32> = self.candidates.values().copied().collect();
        let keep = self.capacity.min(counts.len());
        if keep == 0 {
            return;
        }
        let (_, &mut threshold, _) = counts.select_nth_unstable_by(keep - 1, |a, b| b.cmp(a));
        self.admit = threshold.saturating_add(1);
        let mut kept = 0;
        self.candidates.retain(|_, count| {
            let stays = *count > threshold || (*count == threshold && kept < keep);
            if stays {
                kept += 1;
            }
            stays
        });
    }

    fn hottest(&self, limit: usize) -> Vec<(String, u32)> {
        let mut keys: Vec<(String, u32)> = self
            .candidates
            .iter()
            .map(|(key, &count)| (key.to_string(), count))
            .collect();
        keys.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        keys.truncate(limit.min(self.capacity));
        keys
    }
}

/// The manager's warming: popularity tracking, the hot set, warming runs
/// ([`NFCSCacheManager::warming`]).
pub struct Warming {
    config: WarmingConfig,
    top: Mutex<TopKeys>,
    state: watch::Sender<WarmingState>,
    /// The disk tier's directory, where the hot set file goes.
    directory: Option<PathBuf>,
    /// Tracked reads (sampled ones), for the status.
    tracked: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Warming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warming")
            .field("config", &self.config)
            .field("state", &*self.state.borrow())
            .finish()
    }
}

impl Warming {
    pub(super) fn new(config: WarmingConfig, directory: Option<PathBuf>) -> Warming {
        Warming {
            top: Mutex::new(TopKeys::new(config.max_keys)),
            config,
            state: watch::channel(WarmingState::Idle).0,
            directory,
            tracked: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Counts a read of `key` (a valid key) if it is among the sampled ones.
    #[inline]
    pub(super) fn record_read(&self, key: &str) {
        if sampled(self.config.sample_every) {
            self.record_sampled(key);
        }
    }

    #[cold]
    fn record_sampled(&self, key: &str) {
        // A read that finds the tracker busy is not counted: it is a sample anyway.
        if let Some(mut top) = self.top.try_lock() {
            top.record(key);
            self.tracked
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The configuration.
    pub fn config(&self) -> &WarmingConfig {
        &self.config
    }

    /// The most read keys now, hottest first, with their estimated sampled read counts.
    pub fn hot_keys(&self, limit: usize) -> Vec<(String, u32)> {
        self.top.lock().hottest(limit)
    }

    /// Sampled reads the tracker has counted.
    pub fn tracked_reads(&self) -> u64 {
        self.tracked.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The state of warming now.
    pub fn state(&self) -> WarmingState {
        self.state.borrow().clone()
    }

    /// Waits until no warming run is in progress and returns the last run's report (`None`
    /// when none was started).
    pub async fn finished(&self) -> Option<WarmReport> {
        let mut receiver = self.state.subscribe();
        loop {
            match &*receiver.borrow_and_update() {
                WarmingState::Idle => return None,
                WarmingState::Finished(report) => return Some(report.clone()),
                WarmingState::Running => {}
            }
            if receiver.changed().await.is_err() {
                return None;
            }
        }
    }

    fn file(&self, name: &str) -> Option<PathBuf> {
        self.directory
            .as_ref()
            .map(|directory| directory.join(hot_set_file_name(name)))
    }
}

impl NFCSCacheManager {
    /// Cache warming (`[cache_warming]`, strategy `popular_queries`): the tracked hot keys,
    /// the saved hot set, warming runs. `None` when warming is not configured.
    pub fn warming(&self) -> Option<&Warming> {
        self.inner.warming.as_ref()
    }

    /// Saves the hot set now: the most read keys as tracked, then the keys the memory tier
    /// holds, `max_keys` in all, into the disk tier's directory
    /// (written to a temporary file, synced and renamed into place) and into the Redis tier
    /// (shared by nodes of the same name). Returns how many keys were saved. `flush` calls
    /// this.
    ///
    /// # Errors
    /// [`CacheError::Backend`] when neither place could take it (one failing is logged).
    pub async fn save_hot_set(&self) -> Result<usize, CacheError> {
        let Some(warming) = &self.inner.warming else {
            return Ok(0);
        };
        // The tracked hottest keys first, then what the memory tier holds (the keys that earned
        // their place there), up to `max_keys`.
        let limit = warming.config.max_keys;
        let mut keys: Vec<String> = warming
            .hot_keys(limit)
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        if let Some(memory) = &self.inner.memory
            && keys.len() < limit
        {
            let mut seen: std::collections::HashSet<String> = keys.iter().cloned().collect();
            for key in memory.keys(limit) {
                if keys.len() >= limit {
                    break;
                }
                if seen.insert(key.clone()) {
                    keys.push(key);
                }
            }
        }
        let count = keys.len();
        let hot_set = HotSet {
            version: HOT_SET_VERSION,
            manager: self.name().to_owned(),
            saved_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_millis() as u64),
            keys,
        };
        let frame = self.encode("hot set", &hot_set)?;
        let mut saved = false;
        let mut last_error = None;
        if let Some(file) = warming.file(self.name()) {
            let frame = frame.clone();
            let written = tokio::task::spawn_blocking(move || write_atomically(&file, &frame))
                .await
                .map_err(|error| CacheError::backend("disk", "save the hot set", error))
                .and_then(|result| result);
            match written {
                Ok(()) => saved = true,
                Err(error) => {
                    tracing::warn!(%error, "the hot set could not be saved to the disk directory");
                    last_error = Some(error);
                }
            }
        }
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.inner.redis {
            let key = hot_set_redis_key(self.name());
            match nfcs_cache_core::CacheTier::set(redis, &key, frame, Ttl::Never).await {
                Ok(()) => saved = true,
                Err(error) => {
                    tracing::debug!(%error, "the hot set could not be saved to Redis");
                    last_error = Some(error);
                }
            }
        }
        #[cfg(not(feature = "redis"))]
        let _ = (frame, Ttl::Never);
        match (saved, last_error) {
            (false, Some(error)) => Err(error),
            _ => Ok(count),
        }
    }

    /// Reads the saved hot set: the disk directory's file, else Redis's copy. `None` when
    /// neither holds one that decodes (a damaged file is logged and ignored).
    async fn load_hot_set(&self) -> Option<(Vec<String>, &'static str)> {
        let warming = self.inner.warming.as_ref()?;
        if let Some(file) = warming.file(self.name()) {
            let read = tokio::task::spawn_blocking(move || std::fs::read(file)).await;
            match read {
                Ok(Ok(bytes)) => match self.decode::<HotSet>("hot set", &bytes) {
                    Ok(hot_set) if hot_set.version == HOT_SET_VERSION => {
                        return Some((hot_set.keys, "disk"));
                    }
                    Ok(_) => tracing::warn!("the saved hot set is of another version; ignored"),
                    Err(error) => tracing::warn!(%error, "the saved hot set is damaged; ignored"),
                },
                Ok(Err(error)) if error.kind() == std::io::ErrorKind::NotFound => {}
                Ok(Err(error)) => tracing::warn!(%error, "the saved hot set could not be read"),
                Err(error) => tracing::warn!(%error, "reading the hot set was cancelled"),
            }
        }
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.inner.redis {
            // A Redis tier built by `from_config` connects in the background: give it a
            // moment (within the warming time bound, at most 5 s) before reading from it.
            let deadline = Instant::now() + warming.config.max_time.min(Duration::from_secs(5));
            while !redis.is_connected() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let key = hot_set_redis_key(self.name());
            if let Ok(Some(entry)) = nfcs_cache_core::CacheTier::get(redis, &key).await {
                match self.decode::<HotSet>("hot set", &entry.value) {
                    Ok(hot_set) if hot_set.version == HOT_SET_VERSION => {
                        return Some((hot_set.keys, "redis"));
                    }
                    _ => tracing::warn!("the hot set in Redis does not decode; ignored"),
                }
            }
        }
        None
    }

    /// Warms memory from the saved hot set now (what `warm_on_startup` does in the
    /// background), bounded by the configured time and bytes.
    pub async fn warm_from_hot_set(&self) -> WarmReport {
        let Some(warming) = &self.inner.warming else {
            return WarmReport::empty(WarmStop::NothingToWarm, "none");
        };
        warming.state.send_replace(WarmingState::Running);
        let report = match self.load_hot_set().await {
            Some((keys, source)) => self.warm_keys_inner(keys, source).await,
            None => WarmReport::empty(WarmStop::NoHotSet, "none"),
        };
        warming
            .state
            .send_replace(WarmingState::Finished(report.clone()));
        report
    }

    /// Loads `keys` (hottest first) from the lower tiers into memory, as warming does, within
    /// the configured bounds.
    pub async fn warm_keys(&self, keys: Vec<String>) -> WarmReport {
        self.warm_keys_inner(keys, "given").await
    }

    async fn warm_keys_inner(&self, keys: Vec<String>, source: &'static str) -> WarmReport {
        let started = Instant::now();
        let inner = &self.inner;
        let (Some(memory), false) = (&inner.memory, inner.lower.is_empty()) else {
            return WarmReport::empty(WarmStop::NothingToWarm, source);
        };
        let config = inner
            .warming
            .as_ref()
            .map_or_else(WarmingConfig::default, |warming| warming.config.clone());
        let max_bytes = config
            .max_bytes
            .unwrap_or_else(|| memory.capacity() / 10 * 9);
        let mut report = WarmReport::empty(WarmStop::Completed, source);
        report.listed = keys.len();
        // The disk tier's reads are batched (one blocking task reads a chunk); other tiers are
        // read `concurrency` keys at a time.
        for chunk in keys.chunks(DISK_BATCH.max(config.concurrency)) {
            if started.elapsed() >= config.max_time {
                report.stopped = WarmStop::TimeLimit;
                break;
            }
            if report.bytes >= max_bytes {
                report.stopped = WarmStop::ByteLimit;
                break;
            }
            let bytes_left = max_bytes.saturating_sub(report.bytes);
            let outcomes = warm_chunk(inner, chunk, config.concurrency.max(1), bytes_left).await;
            let cut_short = outcomes.len() < chunk.len();
            for outcome in outcomes {
                match outcome {
                    WarmOne::Loaded(bytes) => {
                        report.loaded += 1;
                        report.bytes += bytes;
                    }
                    WarmOne::InMemory => report.already_in_memory += 1,
                    WarmOne::Missing => report.missing += 1,
                    WarmOne::Skipped => report.skipped += 1,
                }
            }
            if cut_short {
                report.stopped = WarmStop::ByteLimit;
                break;
            }
        }
        report.elapsed = started.elapsed();
        tracing::info!(
            loaded = report.loaded,
            bytes = report.bytes,
            missing = report.missing,
            elapsed_ms = report.elapsed.as_millis() as u64,
            stopped = ?report.stopped,
            "cache warming finished"
        );
        report
    }
}

/// Keys the disk tier reads in one blocking task while warming.
const DISK_BATCH: usize = 256;

/// Warms `chunk`: from the disk tier in one blocking task when it is the first lower tier,
/// otherwise `concurrency` keys at a time through the tiers.
/// Stops (returning fewer outcomes than keys) once `bytes_left` bytes are loaded.
async fn warm_chunk(
    inner: &Arc<Inner>,
    chunk: &[String],
    concurrency: usize,
    mut bytes_left: u64,
) -> Vec<WarmOne> {
    #[cfg(feature = "disk")]
    if let (Some(disk), Some(first)) = (&inner.disk, inner.lower.first())
        && first.role == super::Role::Disk
    {
        return warm_chunk_from_disk(inner, disk, chunk, bytes_left).await;
    }
    let mut outcomes = Vec::with_capacity(chunk.len());
    for part in chunk.chunks(concurrency) {
        if bytes_left == 0 {
            break;
        }
        for outcome in join_all(part.iter().map(|key| warm_one(inner, key))).await {
            if let WarmOne::Loaded(bytes) = outcome {
                bytes_left = bytes_left.saturating_sub(bytes);
            }
            outcomes.push(outcome);
        }
    }
    outcomes
}

/// Warms `chunk` from the disk tier: marks taken for every key first, then one blocking task
/// reads them all, then each found entry is promoted under its mark (so the guarantee is a
/// read's). Keys the disk lacks are looked up in the tiers below it, one by one.
#[cfg(feature = "disk")]
async fn warm_chunk_from_disk(
    inner: &Arc<Inner>,
    disk: &nfcs_cache_disk::DiskCache,
    chunk: &[String],
    mut bytes_left: u64,
) -> Vec<WarmOne> {
    let Some(memory) = &inner.memory else {
        return Vec::new();
    };
    let mut outcomes = Vec::with_capacity(chunk.len());
    let mut wanted = Vec::new();
    for key in chunk {
        if nfcs_cache_core::check_key(key).is_err() {
            outcomes.push(WarmOne::Missing);
        } else if memory.contains_key(key) {
            outcomes.push(WarmOne::InMemory);
        } else {
            wanted.push((key.clone(), inner.consistency.mark(key)));
        }
    }
    let keys: Vec<String> = wanted.iter().map(|(key, _)| key.clone()).collect();
    let reader = disk.clone();
    let read = tokio::task::spawn_blocking(move || {
        keys.iter()
            .map(|key| reader.get_entry(key))
            .collect::<Vec<_>>()
    })
    .await;
    let Ok(results) = read else {
        for (key, _) in &wanted {
            outcomes.push(warm_one(inner, key).await);
        }
        return outcomes;
    };
    for ((key, mark), result) in wanted.into_iter().zip(results) {
        if bytes_left == 0 {
            break;
        }
        match result {
            Ok(Some(entry)) => {
                let bytes = entry.value.len() as u64;
                bytes_left = bytes_left.saturating_sub(bytes);
                outcomes.push(
                    if super::read::promote(inner, &key, &entry, 0, mark).await {
                        WarmOne::Loaded(bytes)
                    } else {
                        WarmOne::Skipped
                    },
                );
            }
            Ok(None) if inner.lower.len() > 1 => outcomes.push(warm_one(inner, &key).await),
            Ok(None) => outcomes.push(WarmOne::Missing),
            Err(error) => {
                inner.tier_failed(0, "warm from", &error);
                outcomes.push(WarmOne::Missing);
            }
        }
    }
    outcomes
}

pub(super) enum WarmOne {
    Loaded(u64),
    InMemory,
    Missing,
    Skipped,
}

/// Loads one key into memory from the first lower tier that has it, guarded as a read's
/// promotion is.
pub(super) async fn warm_one(inner: &Arc<Inner>, key: &str) -> WarmOne {
    let Some(memory) = &inner.memory else {
        return WarmOne::Missing;
    };
    if nfcs_cache_core::check_key(key).is_err() {
        return WarmOne::Missing;
    }
    if memory.contains_key(key) {
        return WarmOne::InMemory;
    }
    let mark = inner.consistency.mark(key);
    for (depth, lower) in inner.lower.iter().enumerate() {
        match lower.tier.get(key).await {
            Ok(Some(entry)) => {
                let bytes = entry.value.len() as u64;
                return if super::read::promote(inner, key, &entry, depth, mark).await {
                    WarmOne::Loaded(bytes)
                } else {
                    WarmOne::Skipped
                };
            }
            Ok(None) => {}
            Err(error) => inner.tier_failed(depth, "warm from", &error),
        }
    }
    WarmOne::Missing
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new one, never a torn
/// one: a temporary file beside it, synced, renamed over it.
fn write_atomically(path: &Path, bytes: &Bytes) -> Result<(), CacheError> {
    use std::io::Write;
    let temporary = path.with_extension("tmp");
    let fail = |error: std::io::Error| CacheError::backend("disk", "save the hot set", error);
    let mut file = std::fs::File::create(&temporary).map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    file.sync_data().map_err(fail)?;
    drop(file);
    std::fs::rename(&temporary, path).map_err(fail)?;
    Ok(())
}

/// Starts what a manager with warming runs in the background: warming from the saved hot set
/// (if configured) and the periodic save. Needs a tokio runtime (without one, a warning is
/// logged and neither runs).
pub(super) fn start(manager: &NFCSCacheManager) {
    let Some(warming) = &manager.inner.warming else {
        return;
    };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no tokio runtime: cache warming and hot-set saving do not run");
        return;
    };
    if warming.config.warm_on_startup {
        warming.state.send_replace(WarmingState::Running);
        let manager = manager.clone();
        runtime.spawn(async move {
            manager.warm_from_hot_set().await;
        });
    }
    if let Some(interval) = warming.config.persist_interval {
        let weak: Weak<Inner> = Arc::downgrade(&manager.inner);
        runtime.spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                let manager = NFCSCacheManager { inner };
                if let Err(error) = manager.save_hot_set().await {
                    tracing::debug!(%error, "the periodic hot-set save failed");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tracker_finds_the_heavy_keys_in_bounded_memory() {
        let mut top = TopKeys::new(10);
        // Keys hot0..hot9 are read 100, 95, ... times; 10,000 cold keys once each, interleaved.
        for round in 0..100 {
            for hot in 0..10 {
                if round < 100 - hot * 5 {
                    top.record(&format!("hot{hot}"));
                }
            }
            for cold in 0..100 {
                top.record(&format!("cold{}", round * 100 + cold));
            }
        }
        assert!(
            top.candidates.len() <= 20,
            "bounded: {}",
            top.candidates.len()
        );
        let hottest: Vec<String> = top.hottest(10).into_iter().map(|(key, _)| key).collect();
        let expected: Vec<String> = (0..10).map(|hot| format!("hot{hot}")).collect();
        assert_eq!(hottest, expected);
    }

    #[test]
    fn counts_decay_so_the_hot_set_follows_the_workload() {
        let mut top = TopKeys::new(4);
        top.decay_every = 1_000;
        for _ in 0..2_000 {
            top.record("old");
        }
        // A new favourite: after a few halvings it leads.
        for index in 0..6_000 {
            top.record("new");
            if index % 2 == 0 {
                top.record("other");
            }
        }
        assert_eq!(top.hottest(1)[0].0, "new");
        let old = top.hottest(4).iter().position(|(key, _)| key == "old");
        assert!(old.is_none_or(|place| place > 0), "{:?}", top.hottest(4));
    }

    #[test]
    fn hot_set_file_names_are_safe() {
        assert_eq!(hot_set_file_name("node-1"), "hot-set.node-1.nfcs");
        assert_eq!(hot_set_file_name("../x y"), "hot-set.___x_y.nfcs");
    }
}
