//! `NFCSCacheManager`: the tiers composed into one cache.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;
use futures_util::future::join_all;
use nfcs_cache_core::{
    CacheEntry, CacheError, CacheTier, Codec, MemoryCache, MemoryConfig, Pattern, TierResult,
    TierStats, check_key, check_ttl, key_preview,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::config::CacheConfig;
use crate::error::{BuildError, LoadError};

/// Whether a configured tier (or feature) is running.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TierState {
    /// Serving requests.
    Running,
    /// Turned off in the configuration.
    Disabled,
    /// Configured (and its configuration valid) but not running; the manager serves without it.
    NotRunning {
        /// Why, in words.
        reason: String,
    },
}

/// A configured tier or feature and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierStatus {
    /// "memory", "disk", "redis", "semantic", "cache_warming", or a custom tier's name.
    pub name: String,
    /// Its state.
    pub state: TierState,
}

impl TierStatus {
    fn new(name: &str, state: TierState) -> TierStatus {
        TierStatus {
            name: name.to_owned(),
            state,
        }
    }
}

/// A snapshot of the manager: per-tier statistics, tier states, and the manager's own counters.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ManagerStats {
    /// Each running tier's name and statistics, fastest tier first.
    pub tiers: Vec<(String, TierStats)>,
    /// Each configured tier's state.
    pub status: Vec<TierStatus>,
    /// Loader runs by `get_or_insert_with`.
    pub loads: u64,
    /// Callers of `get_or_insert_with` that waited for another caller's load instead of
    /// running their own.
    pub coalesced: u64,
    /// Lower-tier operations that failed and were served around (a read became a miss).
    pub tier_errors: u64,
    /// Entries copied from a lower tier into faster ones.
    pub promotions: u64,
}

impl ManagerStats {
    /// Hits over reads across the whole cache: a read counts as a hit when any tier had it.
    pub fn hit_ratio(&self) -> f64 {
        let hits: u64 = self.tiers.iter().map(|(_, stats)| stats.hits).sum();
        // Every read ends in the first tier's hit, or in a miss of the last tier it reached.
        let first_tier_reads = self
            .tiers
            .first()
            .map_or(0, |(_, stats)| stats.hits + stats.misses);
        if first_tier_reads == 0 {
            0.0
        } else {
            hits as f64 / first_tier_reads as f64
        }
    }
}

#[derive(Default)]
struct Counters {
    loads: AtomicU64,
    coalesced: AtomicU64,
    tier_errors: AtomicU64,
    promotions: AtomicU64,
}

/// A load in progress, as the other callers see it.
struct Flight {
    id: u64,
    outcome: watch::Receiver<Outcome>,
}

#[derive(Clone)]
enum Outcome {
    Pending,
    /// The loaded value, encoded.
    Ready(Bytes),
    /// The loader's error, an `Arc<E>` behind `Any`.
    Failed(Arc<dyn Any + Send + Sync>),
}

struct Inner {
    memory: Option<MemoryCache>,
    lower: Vec<Arc<dyn CacheTier>>,
    codec: Codec,
    in_flight: DashMap<String, Flight>,
    next_flight: AtomicU64,
    status: Vec<TierStatus>,
    counters: Counters,
}

/// The multi-tier cache: an in-memory tier in front of slower tiers (disk, Redis, your own),
/// with typed values, TTLs, pattern invalidation and single-flight loading.
///
/// - **Reads** go memory (synchronous, no allocation on a hit) then each lower tier in order;
///   a hit below is promoted into the tiers above it with its remaining TTL. A lower tier that
///   fails is counted and skipped: a read never fails because a tier is down.
/// - **Writes** encode once ([`Codec`]: postcard, zstd above 1 KiB, checksummed), store into
///   memory synchronously and into the lower tiers concurrently. A value too large for memory
///   goes only to the tiers that take it.
/// - **Invalidation** (`delete`, `invalidate_pattern`, `clear`) reaches every tier and fails
///   (after trying them all) if a tier could not be reached, since a stale copy could
///   otherwise come back.
/// - **Single flight**: concurrent [`get_or_insert_with`](NFCSCacheManager::get_or_insert_with)
///   calls on one cold key run the loader once.
///
/// Cloning is cheap; clones share the same cache.
///
/// ```
/// use std::time::Duration;
/// use nfcs_performance::prelude::*;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cache = NFCSCacheManager::builder()
///     .memory(MemoryCache::new(64 << 20)?)
///     .build();
///
/// cache.set("key_1", &"value_1", None).await?;
/// let hit: Option<String> = cache.get("key_1").await?;
/// assert_eq!(hit.as_deref(), Some("value_1"));
///
/// let field: Vec<f64> = cache
///     .get_or_insert_with("cgl_64_ab12", Some(Duration::from_secs(3600)), || async {
///         Ok::<_, std::io::Error>(vec![0.0; 64]) // the expensive computation
///     })
///     .await?;
/// assert_eq!(field.len(), 64);
/// assert_eq!(cache.invalidate_pattern("cgl_*").await?, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct NFCSCacheManager {
    inner: Arc<Inner>,
}

/// Builds an [`NFCSCacheManager`] from tiers you construct yourself.
#[must_use]
pub struct ManagerBuilder {
    memory: Option<MemoryCache>,
    lower: Vec<Arc<dyn CacheTier>>,
    codec: Codec,
    status: Vec<TierStatus>,
}

impl ManagerBuilder {
    /// Uses `cache` as the in-memory tier.
    pub fn memory(mut self, cache: MemoryCache) -> ManagerBuilder {
        self.memory = Some(cache);
        self
    }

    /// Adds a tier below the memory tier and below the tiers added before it (so add them
    /// fastest first).
    pub fn tier(mut self, tier: Arc<dyn CacheTier>) -> ManagerBuilder {
        self.lower.push(tier);
        self
    }

    /// Uses `codec` for typed values.
    pub fn codec(mut self, codec: Codec) -> ManagerBuilder {
        self.codec = codec;
        self
    }

    /// Records the state of a configured tier that is not among the running ones (so that
    /// [`NFCSCacheManager::tier_status`] reports it).
    pub fn status(mut self, name: &str, state: TierState) -> ManagerBuilder {
        self.status.push(TierStatus::new(name, state));
        self
    }

    /// Builds the manager.
    pub fn build(self) -> NFCSCacheManager {
        let mut status = Vec::new();
        if let Some(memory) = &self.memory {
            status.push(TierStatus::new(CacheTier::name(memory), TierState::Running));
        }
        for tier in &self.lower {
            status.push(TierStatus::new(tier.name(), TierState::Running));
        }
        status.extend(self.status);
        NFCSCacheManager {
            inner: Arc::new(Inner {
                memory: self.memory,
                lower: self.lower,
                codec: self.codec,
                in_flight: DashMap::new(),
                next_flight: AtomicU64::new(0),
                status,
                counters: Counters::default(),
            }),
        }
    }
}

/// Which crate brings each configurable tier that this build does not run yet.
const NOT_YET_BUILT: [(&str, &str); 3] = [
    ("redis", "the nfcs-cache-redis crate"),
    ("semantic", "the nfcs-semantic crate"),
    ("cache_warming", "the cache-warming work"),
];

impl NFCSCacheManager {
    /// A builder for a manager over tiers you construct.
    pub fn builder() -> ManagerBuilder {
        ManagerBuilder {
            memory: None,
            lower: Vec::new(),
            codec: Codec::default(),
            status: Vec::new(),
        }
    }

    /// Builds the tiers `config` enables.
    ///
    /// The whole configuration is validated, including sections of tiers this build does not
    /// run yet; such tiers are reported by [`tier_status`](NFCSCacheManager::tier_status) (and
    /// logged) as not running, and the manager serves without them.
    ///
    /// # Errors
    /// [`BuildError::Config`] for an invalid configuration, [`BuildError::Tier`] when a tier
    /// refuses its settings.
    pub async fn from_config(config: CacheConfig) -> Result<NFCSCacheManager, BuildError> {
        config.validate()?;
        let mut builder = NFCSCacheManager::builder();
        if config.memory.enabled {
            let memory = MemoryCache::with_config(
                MemoryConfig::new(config.memory.max_size.bytes())
                    .eviction_policy(config.memory.eviction_policy)
                    .default_ttl(config.memory.ttl_default.as_duration()),
            )?;
            builder = builder.memory(memory);
        } else {
            builder = builder.status("memory", TierState::Disabled);
        }
        builder = NFCSCacheManager::attach_disk(builder, &config).await;
        let enabled = [
            config.redis.enabled,
            config.semantic.enabled,
            config.cache_warming.enabled,
        ];
        for ((name, arrives_with), enabled) in NOT_YET_BUILT.into_iter().zip(enabled) {
            let state = if enabled {
                let reason = format!(
                    "configured, but not available in this build (it arrives with {arrives_with})"
                );
                tracing::warn!(tier = name, "{reason}; serving without it");
                TierState::NotRunning { reason }
            } else {
                TierState::Disabled
            };
            builder = builder.status(name, state);
        }
        Ok(builder.build())
    }

    /// Opens the disk tier `config` asks for. A disk tier that cannot be opened (a directory
    /// that cannot be written, one in use by another process) does not stop the manager: it
    /// starts without it, logs why, and reports it in `tier_status`.
    async fn attach_disk(builder: ManagerBuilder, config: &CacheConfig) -> ManagerBuilder {
        let disk = &config.disk;
        if !disk.enabled {
            return builder.status("disk", TierState::Disabled);
        }
        #[cfg(feature = "disk")]
        {
            let settings = nfcs_cache_disk::DiskConfig::new(disk.max_size.bytes())
                .compression(disk.compression);
            match nfcs_cache_disk::DiskCache::open_async(&disk.directory, settings).await {
                Ok(cache) => builder.tier(Arc::new(cache)),
                Err(error) => {
                    let reason = format!("could not be opened: {error}");
                    tracing::warn!(tier = "disk", %error, "the disk tier could not be opened; serving without it");
                    builder.status("disk", TierState::NotRunning { reason })
                }
            }
        }
        #[cfg(not(feature = "disk"))]
        {
            let reason = "configured, but this build lacks the `disk` feature of nfcs-performance"
                .to_owned();
            tracing::warn!(tier = "disk", "{reason}; serving without it");
            builder.status("disk", TierState::NotRunning { reason })
        }
    }

    /// The in-memory tier, for synchronous access on the hot path.
    pub fn memory(&self) -> Option<&MemoryCache> {
        self.inner.memory.as_ref()
    }

    /// The codec typed values go through.
    pub fn codec(&self) -> &Codec {
        &self.inner.codec
    }

    /// Each configured tier's state: running, disabled, or configured but not running (and why).
    pub fn tier_status(&self) -> &[TierStatus] {
        &self.inner.status
    }

    /// Reads and decodes `key`; `Ok(None)` on a miss.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`]; [`CacheError::Decode`] when the stored bytes are not a `T`
    /// (stored as another type, or with [`set_bytes`](NFCSCacheManager::set_bytes)). A tier
    /// that is down is never an error here: it is counted and read around.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, CacheError> {
        match self.get_bytes(key).await? {
            Some(frame) => self.decode(key, &frame).map(Some),
            None => Ok(None),
        }
    }

    /// Reads the raw bytes under `key`; `Ok(None)` on a miss.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`].
    pub async fn get_bytes(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        Ok(self.get_entry(key).await?.map(|entry| entry.value))
    }

    /// Reads `key` with its remaining TTL.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`].
    pub async fn get_entry(&self, key: &str) -> Result<Option<CacheEntry>, CacheError> {
        match &self.inner.memory {
            Some(memory) => {
                if let Some(entry) = memory.get_entry(key)? {
                    return Ok(Some(entry));
                }
            }
            None => check_key(key)?,
        }
        for (depth, tier) in self.inner.lower.iter().enumerate() {
            match tier.get(key).await {
                Ok(Some(entry)) => {
                    self.promote(key, &entry, depth).await;
                    return Ok(Some(entry));
                }
                Ok(None) => {}
                Err(error) if error.is_input_error() => return Err(error),
                Err(error) => self.tier_failed(tier.name(), "read", &error),
            }
        }
        Ok(None)
    }

    /// Copies an entry found in lower tier `depth` into the memory tier and the lower tiers
    /// above it, with its remaining TTL. Failures are counted, never returned: the read
    /// already succeeded.
    async fn promote(&self, key: &str, entry: &CacheEntry, depth: usize) {
        // A TTL that ran out between the read and now is not worth promoting.
        if entry.ttl.is_some_and(|ttl| ttl.is_zero()) {
            return;
        }
        self.inner
            .counters
            .promotions
            .fetch_add(1, Ordering::Relaxed);
        if let Some(memory) = &self.inner.memory
            && let Err(error) = memory.insert(key, entry.value.clone(), entry.ttl)
        {
            tracing::debug!(key = %key_preview(key), %error, "not promoted into memory");
        }
        let upper = &self.inner.lower[..depth];
        let writes = upper
            .iter()
            .map(|tier| tier.set(key, entry.value.clone(), entry.ttl));
        for (tier, result) in upper.iter().zip(join_all(writes).await) {
            if let Err(error) = result {
                self.tier_failed(tier.name(), "promote into", &error);
            }
        }
    }

    fn tier_failed(&self, tier: &str, operation: &str, error: &CacheError) {
        self.inner
            .counters
            .tier_errors
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(tier, operation, %error, "tier failed; served around it");
    }

    fn decode<T: DeserializeOwned>(&self, key: &str, frame: &[u8]) -> Result<T, CacheError> {
        self.inner
            .codec
            .decode(frame)
            .map_err(|source| CacheError::Decode {
                key: key_preview(key),
                source,
            })
    }

    /// Encodes `value` and stores it under `key`; `ttl: None` gives each tier its default TTL.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`], [`CacheError::InvalidTtl`], [`CacheError::Encode`], or the
    /// last tier's error when no tier stored the value (for example
    /// [`CacheError::ValueTooLarge`] everywhere).
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        check_key(key)?;
        let frame = self
            .inner
            .codec
            .encode(value)
            .map_err(|source| CacheError::Encode {
                key: key_preview(key),
                source,
            })?;
        self.set_bytes(key, frame, ttl).await
    }

    /// Stores raw bytes under `key` (no encoding; read them back with
    /// [`get_bytes`](NFCSCacheManager::get_bytes)).
    ///
    /// # Errors
    /// As [`set`](NFCSCacheManager::set), minus encoding.
    pub async fn set_bytes(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        check_key(key)?;
        check_ttl(ttl)?;
        let value = value.into();
        let mut stored = false;
        let mut refusal = None;
        let mut memory_refused = false;
        if let Some(memory) = &self.inner.memory {
            match memory.insert(key, value.clone(), ttl) {
                Ok(()) => stored = true,
                Err(error @ CacheError::ValueTooLarge { .. }) => {
                    memory_refused = true;
                    refusal = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        let lower = &self.inner.lower;
        let writes = lower.iter().map(|tier| tier.set(key, value.clone(), ttl));
        let mut failure = None;
        for (tier, result) in lower.iter().zip(join_all(writes).await) {
            match result {
                Ok(()) => stored = true,
                Err(error @ CacheError::ValueTooLarge { .. }) => refusal = Some(error),
                Err(error) if error.is_input_error() => return Err(error),
                Err(error) => {
                    self.tier_failed(tier.name(), "write", &error);
                    failure = Some(error);
                }
            }
        }
        if stored
            && memory_refused
            && let Some(memory) = &self.inner.memory
        {
            // A lower tier took a value too large for memory: an older value in memory must
            // not shadow it. (When no tier took it, the older value stays, as the error says.)
            memory.remove(key)?;
        }
        match (stored, refusal.or(failure)) {
            (true, _) => Ok(()),
            (false, Some(error)) => Err(error),
            (false, None) => Err(CacheError::Unavailable {
                tier: "manager".to_owned(),
                reason: "no tier is running".to_owned(),
            }),
        }
    }

    /// Removes `key` from every tier; `true` when any tier held it.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`], or a tier's error when a tier could not be reached (the
    /// other tiers have still been cleaned).
    pub async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let removed = match &self.inner.memory {
            Some(memory) => memory.remove(key)?,
            None => {
                check_key(key)?;
                false
            }
        };
        let below = self
            .on_lower_tiers("delete from", |tier| tier.delete(key))
            .await?;
        Ok(below.into_iter().fold(removed, |any, found| any | found))
    }

    /// Removes every key matching the glob `pattern` (Redis syntax, see [`Pattern`]) from every
    /// tier; returns how many entries were removed, summed over tiers.
    ///
    /// # Errors
    /// [`CacheError::InvalidPattern`] for a malformed pattern, or a tier's error when a tier
    /// could not be reached (the other tiers have still been cleaned).
    pub async fn invalidate_pattern(&self, pattern: &str) -> Result<u64, CacheError> {
        let pattern = Pattern::new(pattern)?;
        let removed = self
            .inner
            .memory
            .as_ref()
            .map_or(0, |memory| memory.remove_matching(&pattern));
        let below = self
            .on_lower_tiers("invalidate in", |tier| tier.invalidate_pattern(&pattern))
            .await?;
        Ok(removed + below.into_iter().sum::<u64>())
    }

    /// Removes every entry from every tier; returns how many, summed over tiers.
    ///
    /// # Errors
    /// A tier's error when a tier could not be reached (the others have still been cleared).
    pub async fn clear(&self) -> Result<u64, CacheError> {
        let removed = self.inner.memory.as_ref().map_or(0, MemoryCache::clear);
        let below = self.on_lower_tiers("clear", |tier| tier.clear()).await?;
        Ok(removed + below.into_iter().sum::<u64>())
    }

    /// Runs `call` on every lower tier concurrently. Returns the results, or, once every tier
    /// has answered, the error of one that failed (each failure is counted).
    async fn on_lower_tiers<T>(
        &self,
        operation: &str,
        call: impl Fn(&dyn CacheTier) -> TierResult<T>,
    ) -> Result<Vec<T>, CacheError> {
        let lower = &self.inner.lower;
        let results = join_all(lower.iter().map(|tier| call(tier.as_ref()))).await;
        let mut values = Vec::with_capacity(results.len());
        let mut failure = None;
        for (tier, result) in lower.iter().zip(results) {
            match result {
                Ok(value) => values.push(value),
                Err(error) => {
                    self.tier_failed(tier.name(), operation, &error);
                    failure = Some(error);
                }
            }
        }
        match failure {
            None => Ok(values),
            Some(error) => Err(error),
        }
    }

    /// Returns the cached value of `key`, or runs `loader`, caches its value with `ttl` and
    /// returns it.
    ///
    /// Concurrent calls for one key run one loader (single flight): the first caller runs
    /// it, the others wait and receive its value, or its error (as the same `Arc<E>`; nothing
    /// is cached then). A waiting caller that is dropped or times out affects no one. If the
    /// caller running the loader is dropped or times out, the waiting callers notice at once
    /// and one of them runs its own loader in its place.
    ///
    /// # Errors
    /// [`LoadError::Loader`] with the loader's error; [`LoadError::Cache`] for an invalid key
    /// or TTL, a value that cannot be encoded, or a cached value that is not a `T`.
    pub async fn get_or_insert_with<T, F, Fut, E>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        loader: F,
    ) -> Result<T, LoadError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Send + Sync + 'static,
    {
        check_ttl(ttl)?;
        let mut loader = Some(loader);
        loop {
            if let Some(value) = self.get::<T>(key).await? {
                return Ok(value);
            }
            let (leader, mut outcome) = match self.inner.in_flight.entry(key.to_owned()) {
                MapEntry::Occupied(flight) => (None, flight.get().outcome.clone()),
                MapEntry::Vacant(vacant) => {
                    let (sender, receiver) = watch::channel(Outcome::Pending);
                    let id = self.inner.next_flight.fetch_add(1, Ordering::Relaxed);
                    vacant.insert(Flight {
                        id,
                        outcome: receiver.clone(),
                    });
                    let guard = FlightGuard {
                        inner: &self.inner,
                        key,
                        id,
                        sender,
                    };
                    (Some(guard), receiver)
                }
            };
            if let Some(guard) = leader {
                // A leader always has its loader: it is taken only here, and a leader returns.
                let Some(loader) = loader.take() else {
                    continue;
                };
                return self.lead(key, ttl, loader, guard).await;
            }
            let settled = outcome
                .wait_for(|outcome| !matches!(outcome, Outcome::Pending))
                .await
                .map(|outcome| outcome.clone());
            match settled {
                Ok(Outcome::Ready(frame)) => {
                    self.inner
                        .counters
                        .coalesced
                        .fetch_add(1, Ordering::Relaxed);
                    return self.decode(key, &frame).map_err(LoadError::Cache);
                }
                Ok(Outcome::Failed(error)) => {
                    if let Ok(error) = error.downcast::<E>() {
                        self.inner
                            .counters
                            .coalesced
                            .fetch_add(1, Ordering::Relaxed);
                        return Err(LoadError::Loader(error));
                    }
                    // The leader's error has another type (another call site); load ourselves.
                }
                // The leader was dropped: try again, perhaps as the leader.
                Ok(Outcome::Pending) | Err(_) => {}
            }
        }
    }

    /// Runs the loader as the flight's leader and publishes the outcome.
    async fn lead<T, F, Fut, E>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        loader: F,
        guard: FlightGuard<'_>,
    ) -> Result<T, LoadError<E>>
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Send + Sync + 'static,
    {
        self.inner.counters.loads.fetch_add(1, Ordering::Relaxed);
        match loader().await {
            Ok(value) => {
                let frame =
                    self.inner
                        .codec
                        .encode(&value)
                        .map_err(|source| CacheError::Encode {
                            key: key_preview(key),
                            source,
                        })?;
                if let Err(error) = self.set_bytes(key, frame.clone(), ttl).await {
                    // The value is still good; it is only not cached.
                    tracing::debug!(key = %key_preview(key), %error, "loaded value not cached");
                }
                guard.sender.send_replace(Outcome::Ready(frame));
                Ok(value)
            }
            Err(error) => {
                let error = Arc::new(error);
                let shared: Arc<dyn Any + Send + Sync> = Arc::clone(&error) as _;
                guard.sender.send_replace(Outcome::Failed(shared));
                Err(LoadError::Loader(error))
            }
        }
    }

    /// A snapshot of every tier's statistics and the manager's counters. Also publishes them
    /// through the `metrics` facade (`nfcs_cache_*{tier=...}`, see
    /// [`TierStats::publish`]), so calling this from a scrape handler keeps them current.
    pub fn stats(&self) -> ManagerStats {
        let mut tiers = Vec::new();
        if let Some(memory) = &self.inner.memory {
            tiers.push((CacheTier::name(memory).to_owned(), memory.stats()));
        }
        for tier in &self.inner.lower {
            tiers.push((tier.name().to_owned(), tier.stats()));
        }
        for (name, stats) in &tiers {
            stats.publish(name);
        }
        let counters = &self.inner.counters;
        let stats = ManagerStats {
            tiers,
            status: self.inner.status.clone(),
            loads: counters.loads.load(Ordering::Relaxed),
            coalesced: counters.coalesced.load(Ordering::Relaxed),
            tier_errors: counters.tier_errors.load(Ordering::Relaxed),
            promotions: counters.promotions.load(Ordering::Relaxed),
        };
        metrics::counter!("nfcs_cache_loads_total").absolute(stats.loads);
        metrics::counter!("nfcs_cache_coalesced_loads_total").absolute(stats.coalesced);
        metrics::counter!("nfcs_cache_tier_errors_total").absolute(stats.tier_errors);
        metrics::counter!("nfcs_cache_promotions_total").absolute(stats.promotions);
        stats
    }
}

impl fmt::Debug for NFCSCacheManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NFCSCacheManager")
            .field("memory", &self.inner.memory)
            .field(
                "lower",
                &self
                    .inner
                    .lower
                    .iter()
                    .map(|tier| tier.name())
                    .collect::<Vec<_>>(),
            )
            .field("status", &self.inner.status)
            .finish()
    }
}

/// The leader's hold on a flight. Dropping it (after publishing, or because the leader was
/// cancelled) removes the flight; a cancelled leader's waiters see the channel close and retry.
struct FlightGuard<'a> {
    inner: &'a Inner,
    key: &'a str,
    id: u64,
    sender: watch::Sender<Outcome>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let id = self.id;
        self.inner
            .in_flight
            .remove_if(self.key, |_, flight| flight.id == id);
    }
}
