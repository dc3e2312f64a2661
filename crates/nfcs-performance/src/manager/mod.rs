//! `NFCSCacheManager`: the tiers composed into one cache.

mod coherence;
mod flight;
mod status;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use futures_util::future::join_all;
use nfcs_cache_core::{
    CacheEntry, CacheError, CacheTier, Codec, MemoryCache, MemoryConfig, Pattern, TierHealth,
    TierResult, check_key, check_ttl, key_preview,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::CacheConfig;
use crate::error::BuildError;

pub use status::{ManagerStats, TierState, TierStatus};

/// Which tier a call addresses, as the spec's `cache_type` argument.
///
/// `Auto` is the normal multi-tier behaviour; the others read or write exactly one tier (a read
/// of one tier does not promote).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheType {
    /// Every tier: reads fall through and promote, writes go through.
    #[default]
    Auto,
    /// The memory tier only.
    Memory,
    /// The disk tier only.
    Disk,
    /// The Redis tier only.
    Redis,
}

/// What a lower tier is, for `cache_type` and for cross-node coherence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Disk,
    Redis,
    Other,
}

struct Lower {
    tier: Arc<dyn CacheTier>,
    role: Role,
}

#[derive(Default)]
struct Counters {
    loads: AtomicU64,
    coalesced: AtomicU64,
    tier_errors: AtomicU64,
    promotions: AtomicU64,
    remote_invalidations: AtomicU64,
}

struct Inner {
    memory: Option<MemoryCache>,
    lower: Vec<Lower>,
    codec: Codec,
    in_flight: DashMap<String, flight::Flight>,
    next_flight: AtomicU64,
    /// States of configured tiers that are not among the running ones.
    not_running: Vec<TierStatus>,
    counters: Counters,
    /// Bumped by every invalidation from another node: a read from a shared tier that saw it
    /// change does not promote what it read (it may predate the other node's write).
    invalidation_epoch: AtomicU64,
    #[cfg(feature = "semantic")]
    semantic: crate::semantic::SemanticStore,
    #[cfg(feature = "policy")]
    policy: crate::policy::PolicyStore,
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
/// - **Coherence** (feature `redis`): what other nodes write, delete or invalidate through
///   the shared Redis is dropped from this node's memory and disk tiers.
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
    lower: Vec<Lower>,
    codec: Codec,
    not_running: Vec<TierStatus>,
    #[cfg(feature = "redis")]
    redis: Option<nfcs_cache_redis::RedisCache>,
    #[cfg(feature = "semantic")]
    semantic: Option<nfcs_semantic::SemanticCache<bytes::Bytes, nfcs_semantic::MiniLmEmbedder>>,
    #[cfg(feature = "policy")]
    policy: Option<nfcs_policy_cache::PolicyCache>,
}

impl ManagerBuilder {
    /// Runs `cache` as the manager's policy cache ([`NFCSCacheManager::policy`]).
    #[cfg(feature = "policy")]
    #[cfg_attr(docsrs, doc(cfg(feature = "policy")))]
    pub fn policy(mut self, cache: nfcs_policy_cache::PolicyCache) -> ManagerBuilder {
        self.policy = Some(cache);
        self
    }

    /// Runs `cache` as the manager's semantic cache ([`NFCSCacheManager::semantic`]).
    #[cfg(feature = "semantic")]
    #[cfg_attr(docsrs, doc(cfg(feature = "semantic")))]
    pub fn semantic(
        mut self,
        cache: nfcs_semantic::SemanticCache<bytes::Bytes, nfcs_semantic::MiniLmEmbedder>,
    ) -> ManagerBuilder {
        self.semantic = Some(cache);
        self
    }

    /// Uses `cache` as the in-memory tier.
    pub fn memory(mut self, cache: MemoryCache) -> ManagerBuilder {
        self.memory = Some(cache);
        self
    }

    /// Adds a tier below the memory tier and below the tiers added before it (so add them
    /// fastest first).
    pub fn tier(mut self, tier: Arc<dyn CacheTier>) -> ManagerBuilder {
        self.lower.push(Lower {
            tier,
            role: Role::Other,
        });
        self
    }

    /// Adds the disk tier (below the tiers added before it).
    #[cfg(feature = "disk")]
    #[cfg_attr(docsrs, doc(cfg(feature = "disk")))]
    pub fn disk(mut self, cache: nfcs_cache_disk::DiskCache) -> ManagerBuilder {
        self.lower.push(Lower {
            tier: Arc::new(cache),
            role: Role::Disk,
        });
        self
    }

    /// Adds the shared Redis tier (below the tiers added before it) and keeps this node's
    /// memory and disk tiers coherent with what other nodes write through it.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis(mut self, cache: nfcs_cache_redis::RedisCache) -> ManagerBuilder {
        self.lower.push(Lower {
            tier: Arc::new(cache.clone()),
            role: Role::Redis,
        });
        self.redis = Some(cache);
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
        self.not_running.push(TierStatus::new(name, state));
        self
    }

    /// Builds the manager. With a Redis tier, call it inside a tokio runtime: it starts the
    /// task that applies other nodes' invalidations (without a runtime, that task does not
    /// run and a warning is logged).
    pub fn build(self) -> NFCSCacheManager {
        #[cfg(feature = "semantic")]
        let semantic = match self.semantic {
            Some(cache) => crate::semantic::SemanticStore::running(cache, self.codec.clone()),
            None => {
                let reason =
                    self.not_running
                        .iter()
                        .find(|status| status.name == "semantic")
                        .map_or("no semantic cache was configured".to_owned(), |status| {
                            match &status.state {
                                TierState::NotRunning { reason }
                                | TierState::Unavailable { reason } => reason.clone(),
                                TierState::Disabled => "disabled in the configuration".to_owned(),
                                TierState::Running => "running".to_owned(),
                            }
                        });
                crate::semantic::SemanticStore::not_running(reason, self.codec.clone())
            }
        };
        #[cfg(feature = "policy")]
        let policy = match self.policy {
            Some(cache) => crate::policy::PolicyStore::running(cache),
            None => crate::policy::PolicyStore::not_running(
                self.not_running
                    .iter()
                    .find(|status| status.name == "policy")
                    .map_or(
                        "no policy cache was configured".to_owned(),
                        |status| match &status.state {
                            TierState::NotRunning { reason }
                            | TierState::Unavailable { reason } => reason.clone(),
                            TierState::Disabled => "disabled in the configuration".to_owned(),
                            TierState::Running => "running".to_owned(),
                        },
                    ),
            ),
        };
        let manager = NFCSCacheManager {
            inner: Arc::new(Inner {
                memory: self.memory,
                lower: self.lower,
                codec: self.codec,
                in_flight: DashMap::new(),
                next_flight: AtomicU64::new(0),
                not_running: self.not_running,
                counters: Counters::default(),
                invalidation_epoch: AtomicU64::new(0),
                #[cfg(feature = "semantic")]
                semantic,
                #[cfg(feature = "policy")]
                policy,
            }),
        };
        #[cfg(feature = "redis")]
        if let Some(redis) = self.redis {
            coherence::start(&manager, &redis);
        }
        manager
    }
}

/// Which crate brings each configurable feature that this build does not run yet.
const NOT_YET_BUILT: [(&str, &str); 1] = [("cache_warming", "the cache-warming work")];

impl NFCSCacheManager {
    /// A builder for a manager over tiers you construct.
    pub fn builder() -> ManagerBuilder {
        ManagerBuilder {
            memory: None,
            lower: Vec::new(),
            codec: Codec::default(),
            not_running: Vec::new(),
            #[cfg(feature = "redis")]
            redis: None,
            #[cfg(feature = "semantic")]
            semantic: None,
            #[cfg(feature = "policy")]
            policy: None,
        }
    }

    /// Builds the tiers `config` enables: memory, disk (feature `disk`), Redis (feature
    /// `redis`).
    ///
    /// The whole configuration is validated, including sections of tiers this build does not
    /// run. A disk tier that cannot be opened, and tiers this build lacks, are reported by
    /// [`tier_status`](NFCSCacheManager::tier_status) (and logged) as not running; a Redis
    /// that cannot be reached yet is part of the manager, reported as unavailable, and
    /// attached by itself when it answers. In every case the manager starts and serves.
    ///
    /// # Errors
    /// [`BuildError::Config`] for an invalid configuration, [`BuildError::Tier`] when the memory
    /// tier refuses its settings.
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
        builder = NFCSCacheManager::attach_redis(builder, &config);
        builder = NFCSCacheManager::attach_semantic(builder, &config).await;
        builder = NFCSCacheManager::attach_policy(builder, &config).await;
        let enabled = [config.cache_warming.enabled];
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
                Ok(cache) => builder.disk(cache),
                Err(error) => {
                    let reason = format!("could not be opened: {error}");
                    tracing::warn!(tier = "disk", %error, "the disk tier could not be opened; serving without it");
                    builder.status("disk", TierState::NotRunning { reason })
                }
            }
        }
        #[cfg(not(feature = "disk"))]
        {
            not_compiled(builder, "disk")
        }
    }

    /// Starts the semantic cache `config` asks for: loads the embedding model (on the blocking
    /// pool) from `$NFCS_MODEL_DIR` or the default model directory. A model that cannot be
    /// loaded does not stop the manager: it starts without the semantic cache, logs why, and
    /// reports it in `tier_status`.
    async fn attach_semantic(builder: ManagerBuilder, config: &CacheConfig) -> ManagerBuilder {
        let semantic = &config.semantic;
        if !semantic.enabled {
            return builder.status("semantic", TierState::Disabled);
        }
        #[cfg(feature = "semantic")]
        {
            let loaded = tokio::task::spawn_blocking(nfcs_semantic::MiniLmEmbedder::load_default)
                .await
                .map_err(|error| error.to_string())
                .and_then(|loaded| loaded.map_err(|error| error.to_string()));
            let settings = nfcs_semantic::SemanticConfig::default()
                .with_threshold(semantic.similarity_threshold as f32)
                .with_max_entries(usize::try_from(semantic.max_entries).unwrap_or(usize::MAX))
                .with_contradiction_guard(semantic.contradiction_guard)
                .with_index(match semantic.index {
                    crate::config::SemanticIndex::Hnsw => {
                        nfcs_semantic::IndexKind::Hnsw(nfcs_semantic::HnswConfig::default())
                    }
                    _ => nfcs_semantic::IndexKind::Flat,
                });
            match loaded.and_then(|model| {
                nfcs_semantic::SemanticCache::new(model, settings)
                    .map_err(|error| error.to_string())
            }) {
                Ok(cache) => builder.semantic(cache),
                Err(error) => {
                    let reason = format!("could not be started: {error}");
                    tracing::warn!(tier = "semantic", %error, "the semantic cache could not be started; serving without it");
                    builder.status("semantic", TierState::NotRunning { reason })
                }
            }
        }
        #[cfg(not(feature = "semantic"))]
        {
            not_compiled(builder, "semantic")
        }
    }

    /// Starts the policy cache `config` asks for: loads the Cedar policies (on the blocking
    /// pool) from `policy_path` and keeps decisions in a memory tier of its own or in the
    /// Redis tier. Policies that cannot be loaded, or a Redis tier that is not there, do not
    /// stop the manager: it starts without the policy cache, logs why, and reports it in
    /// `tier_status`; every compliance check then fails with that reason.
    async fn attach_policy(builder: ManagerBuilder, config: &CacheConfig) -> ManagerBuilder {
        let policy = &config.policy;
        if !policy.enabled {
            return builder.status("policy", TierState::Disabled);
        }
        #[cfg(feature = "policy")]
        {
            let not_running = |builder: ManagerBuilder, reason: String| {
                tracing::warn!(tier = "policy", %reason, "the policy cache could not be started; serving without it");
                builder.status("policy", TierState::NotRunning { reason })
            };
            let tier: Arc<dyn CacheTier> = match policy.tier {
                crate::config::PolicyTier::Memory => {
                    match MemoryCache::new(policy.max_size.bytes()) {
                        Ok(memory) => Arc::new(memory),
                        Err(error) => {
                            return not_running(builder, format!("its memory tier: {error}"));
                        }
                    }
                }
                crate::config::PolicyTier::Redis => {
                    #[cfg(feature = "redis")]
                    let redis = builder
                        .redis
                        .clone()
                        .map(|redis| Arc::new(redis) as Arc<dyn CacheTier>);
                    #[cfg(not(feature = "redis"))]
                    let redis: Option<Arc<dyn CacheTier>> = None;
                    match redis {
                        Some(redis) => redis,
                        None => {
                            return not_running(
                                builder,
                                "tier = \"redis\", but the Redis tier is not running".to_owned(),
                            );
                        }
                    }
                }
            };
            let path = policy.policy_path.clone();
            let loaded = tokio::task::spawn_blocking(move || {
                nfcs_policy_cache::cedar::CedarEvaluator::from_path(path)
            })
            .await;
            let evaluator = match loaded {
                Ok(Ok(evaluator)) => evaluator,
                Ok(Err(error)) => {
                    return not_running(
                        builder,
                        format!("its policies could not be loaded: {error}"),
                    );
                }
                Err(error) => {
                    return not_running(builder, format!("loading was cancelled: {error}"));
                }
            };
            let settings = nfcs_policy_cache::PolicyCacheConfig::default()
                .ttl(
                    policy
                        .ttl
                        .as_duration()
                        .unwrap_or(nfcs_policy_cache::DEFAULT_TTL),
                )
                .version_refresh(Duration::from_millis(policy.version_refresh_ms));
            match nfcs_policy_cache::PolicyCache::with_tier(Arc::new(evaluator), tier, settings) {
                Ok(cache) => builder.policy(cache),
                Err(error) => not_running(builder, error.to_string()),
            }
        }
        #[cfg(not(feature = "policy"))]
        {
            not_compiled(builder, "policy")
        }
    }

    /// Starts the Redis tier `config` asks for, connecting in the background.
    fn attach_redis(builder: ManagerBuilder, config: &CacheConfig) -> ManagerBuilder {
        let redis = &config.redis;
        if !redis.enabled {
            return builder.status("redis", TierState::Disabled);
        }
        #[cfg(feature = "redis")]
        {
            let settings = if redis.cluster_nodes.is_empty() {
                nfcs_cache_redis::RedisConfig::new(redis.url.clone()).db(redis.db)
            } else {
                nfcs_cache_redis::RedisConfig::cluster(redis.cluster_nodes.clone())
            }
            .max_connections(redis.max_connections as usize)
            .default_ttl(redis.ttl_default.as_duration())
            .key_prefix(redis.key_prefix.clone())
            .command_timeout(Duration::from_millis(redis.command_timeout_ms));
            match nfcs_cache_redis::RedisCache::connect_lazy(settings) {
                Ok(cache) => builder.redis(cache),
                Err(error) => {
                    let reason = format!("could not be started: {error}");
                    tracing::warn!(tier = "redis", %error, "the Redis tier could not be started; serving without it");
                    builder.status("redis", TierState::NotRunning { reason })
                }
            }
        }
        #[cfg(not(feature = "redis"))]
        {
            not_compiled(builder, "redis")
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

    /// Each configured tier's state now: running, unavailable (and why: a Redis that is down or
    /// not yet reached), disabled, or configured but not running (and why).
    pub fn tier_status(&self) -> Vec<TierStatus> {
        let mut status = Vec::new();
        if let Some(memory) = &self.inner.memory {
            status.push(TierStatus::new(CacheTier::name(memory), TierState::Running));
        }
        for lower in &self.inner.lower {
            let state = match lower.tier.health() {
                TierHealth::Unavailable { reason } => TierState::Unavailable { reason },
                _ => TierState::Running,
            };
            status.push(TierStatus::new(lower.tier.name(), state));
        }
        #[cfg(feature = "semantic")]
        if self.inner.semantic.cache().is_some() {
            status.push(TierStatus::new("semantic", TierState::Running));
        }
        #[cfg(feature = "policy")]
        if self.inner.policy.cache().is_some() {
            status.push(TierStatus::new("policy", TierState::Running));
        }
        status.extend(self.inner.not_running.iter().cloned());
        status
    }

    /// The semantic cache (feature `semantic`): values found by the meaning of a text.
    ///
    /// ```no_run
    /// # async fn example(cache: nfcs_performance::NFCSCacheManager) -> Result<(), Box<dyn std::error::Error>> {
    /// cache.semantic().store("Hello world", &"greeting_response", "tenant-a").await?;
    /// let similar = cache.semantic().find_similar::<String>("Hi world", 0.8, "tenant-a").await?;
    /// assert!(similar.is_some_and(|hit| hit.similarity > 0.8)); // 0.839
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "semantic")]
    #[cfg_attr(docsrs, doc(cfg(feature = "semantic")))]
    pub fn semantic(&self) -> &crate::semantic::SemanticStore {
        &self.inner.semantic
    }

    /// The policy cache (feature `policy`): cached constitutional decisions.
    ///
    /// ```no_run
    /// # async fn example(cache: nfcs_performance::NFCSCacheManager) -> Result<(), Box<dyn std::error::Error>> {
    /// use nfcs_performance::prelude::*;
    ///
    /// let context = PolicyContext::new().with("risk", 3).with("approved", true);
    /// let decision = cache.policy().evaluate_compliance("deploy_model", &context).await?;
    /// println!("{:?} by {:?} in {:?} (cached: {})", decision.verdict(), decision.reasons(),
    ///     decision.evaluation_time, decision.cache_hit);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "policy")]
    #[cfg_attr(docsrs, doc(cfg(feature = "policy")))]
    pub fn policy(&self) -> &crate::policy::PolicyStore {
        &self.inner.policy
    }

    /// The lower tier with `role`, if running.
    fn lower_with(&self, role: Role) -> Option<&Arc<dyn CacheTier>> {
        self.inner
            .lower
            .iter()
            .find(|lower| lower.role == role)
            .map(|lower| &lower.tier)
    }

    /// Reads and decodes `key`; `Ok(None)` on a miss.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`]; [`CacheError::Decode`] when the stored bytes are not a `T`
    /// (stored as another type, or with [`set_bytes`](NFCSCacheManager::set_bytes)). A tier
    /// that is down is never an error here: it is counted and read around.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, CacheError> {
        self.get_in(key, CacheType::Auto).await
    }

    /// [`get`](NFCSCacheManager::get) from the tiers `cache_type` names.
    ///
    /// # Errors
    /// As [`get`](NFCSCacheManager::get).
    pub async fn get_in<T: DeserializeOwned>(
        &self,
        key: &str,
        cache_type: CacheType,
    ) -> Result<Option<T>, CacheError> {
        match self.get_entry_in(key, cache_type).await? {
            Some(entry) => self.decode(key, &entry.value).map(Some),
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
        self.get_entry_in(key, CacheType::Auto).await
    }

    /// Reads `key` with its remaining TTL from the tiers `cache_type` names.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`].
    pub async fn get_entry_in(
        &self,
        key: &str,
        cache_type: CacheType,
    ) -> Result<Option<CacheEntry>, CacheError> {
        let single = match cache_type {
            CacheType::Auto => None,
            CacheType::Memory => {
                check_key(key)?;
                return match &self.inner.memory {
                    Some(memory) => memory.get_entry(key),
                    None => Ok(None),
                };
            }
            CacheType::Disk => Some(Role::Disk),
            CacheType::Redis => Some(Role::Redis),
        };
        if let Some(role) = single {
            check_key(key)?;
            let Some(tier) = self.lower_with(role) else {
                return Ok(None);
            };
            return match tier.get(key).await {
                Ok(found) => Ok(found),
                Err(error) if error.is_input_error() => Err(error),
                Err(error) => {
                    self.tier_failed(tier.name(), "read", &error);
                    Ok(None)
                }
            };
        }
        match &self.inner.memory {
            Some(memory) => {
                if let Some(entry) = memory.get_entry(key)? {
                    return Ok(Some(entry));
                }
            }
            None => check_key(key)?,
        }
        let epoch = self.inner.invalidation_epoch.load(Ordering::Acquire);
        for (depth, lower) in self.inner.lower.iter().enumerate() {
            match lower.tier.get(key).await {
                Ok(Some(entry)) => {
                    if self.inner.invalidation_epoch.load(Ordering::Acquire) == epoch {
                        self.promote(key, &entry, depth).await;
                    }
                    return Ok(Some(entry));
                }
                Ok(None) => {}
                Err(error) if error.is_input_error() => return Err(error),
                Err(error) => self.tier_failed(lower.tier.name(), "read", &error),
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
            && let Err(error) = memory.insert(key, entry.value.clone(), entry.remaining_ttl())
        {
            tracing::debug!(key = %key_preview(key), %error, "not promoted into memory");
        }
        let upper = &self.inner.lower[..depth];
        let writes = upper.iter().map(|lower| {
            lower
                .tier
                .set(key, entry.value.clone(), entry.remaining_ttl())
        });
        for (lower, result) in upper.iter().zip(join_all(writes).await) {
            if let Err(error) = result {
                self.tier_failed(lower.tier.name(), "promote into", &error);
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

    fn encode<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<Bytes, CacheError> {
        self.inner
            .codec
            .encode(value)
            .map_err(|source| CacheError::Encode {
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
        self.set_in(key, value, ttl, CacheType::Auto).await
    }

    /// [`set`](NFCSCacheManager::set) into the tiers `cache_type` names.
    ///
    /// # Errors
    /// As [`set`](NFCSCacheManager::set); [`CacheError::Unavailable`] when the named tier is
    /// not running.
    pub async fn set_in<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
        cache_type: CacheType,
    ) -> Result<(), CacheError> {
        check_key(key)?;
        let frame = self.encode(key, value)?;
        self.set_bytes_in(key, frame, ttl, cache_type).await
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
        self.set_bytes_in(key, value, ttl, CacheType::Auto).await
    }

    /// [`set_bytes`](NFCSCacheManager::set_bytes) into the tiers `cache_type` names.
    ///
    /// # Errors
    /// As [`set_in`](NFCSCacheManager::set_in).
    pub async fn set_bytes_in(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        ttl: Option<Duration>,
        cache_type: CacheType,
    ) -> Result<(), CacheError> {
        check_key(key)?;
        check_ttl(ttl)?;
        let value = value.into();
        let not_running = |tier: &str| CacheError::Unavailable {
            tier: tier.to_owned(),
            reason: "not running in this manager".to_owned(),
        };
        match cache_type {
            CacheType::Auto => self.write_through(key, value, ttl).await,
            CacheType::Memory => match &self.inner.memory {
                Some(memory) => memory.insert(key, value, ttl),
                None => Err(not_running("memory")),
            },
            CacheType::Disk => match self.lower_with(Role::Disk) {
                Some(tier) => tier.set(key, value, ttl.into()).await,
                None => Err(not_running("disk")),
            },
            CacheType::Redis => match self.lower_with(Role::Redis) {
                Some(tier) => tier.set(key, value, ttl.into()).await,
                None => Err(not_running("redis")),
            },
        }
    }

    async fn write_through(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
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
        let writes = lower
            .iter()
            .map(|lower| lower.tier.set(key, value.clone(), ttl.into()));
        let mut failure = None;
        for (lower, result) in lower.iter().zip(join_all(writes).await) {
            match result {
                Ok(()) => stored = true,
                Err(error @ CacheError::ValueTooLarge { .. }) => refusal = Some(error),
                Err(error) if error.is_input_error() => return Err(error),
                Err(error) => {
                    self.tier_failed(lower.tier.name(), "write", &error);
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
        let results = join_all(lower.iter().map(|lower| call(lower.tier.as_ref()))).await;
        let mut values = Vec::with_capacity(results.len());
        let mut failure = None;
        for (lower, result) in lower.iter().zip(results) {
            match result {
                Ok(value) => values.push(value),
                Err(error) => {
                    self.tier_failed(lower.tier.name(), operation, &error);
                    failure = Some(error);
                }
            }
        }
        match failure {
            None => Ok(values),
            Some(error) => Err(error),
        }
    }

    /// A snapshot of every tier's statistics and the manager's counters. Also publishes them
    /// through the `metrics` facade (`nfcs_cache_*{tier=...}`, see
    /// [`TierStats::publish`](nfcs_cache_core::TierStats::publish)), so calling this from a
    /// scrape handler keeps them current.
    pub fn stats(&self) -> ManagerStats {
        let mut tiers = Vec::new();
        if let Some(memory) = &self.inner.memory {
            tiers.push((CacheTier::name(memory).to_owned(), memory.stats()));
        }
        for lower in &self.inner.lower {
            tiers.push((lower.tier.name().to_owned(), lower.tier.stats()));
        }
        for (name, stats) in &tiers {
            stats.publish(name);
        }
        let counters = &self.inner.counters;
        let stats = ManagerStats {
            tiers,
            status: self.tier_status(),
            loads: counters.loads.load(Ordering::Relaxed),
            coalesced: counters.coalesced.load(Ordering::Relaxed),
            tier_errors: counters.tier_errors.load(Ordering::Relaxed),
            promotions: counters.promotions.load(Ordering::Relaxed),
            remote_invalidations: counters.remote_invalidations.load(Ordering::Relaxed),
        };
        metrics::counter!("nfcs_cache_loads_total").absolute(stats.loads);
        metrics::counter!("nfcs_cache_coalesced_loads_total").absolute(stats.coalesced);
        metrics::counter!("nfcs_cache_tier_errors_total").absolute(stats.tier_errors);
        metrics::counter!("nfcs_cache_promotions_total").absolute(stats.promotions);
        metrics::counter!("nfcs_cache_remote_invalidations_total")
            .absolute(stats.remote_invalidations);
        stats
    }
}

#[cfg(any(
    not(feature = "disk"),
    not(feature = "redis"),
    not(feature = "semantic"),
    not(feature = "policy")
))]
fn not_compiled(builder: ManagerBuilder, tier: &str) -> ManagerBuilder {
    let reason =
        format!("configured, but this build lacks the `{tier}` feature of nfcs-performance");
    tracing::warn!(tier, "{reason}; serving without it");
    builder.status(tier, TierState::NotRunning { reason })
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
                    .map(|lower| lower.tier.name())
                    .collect::<Vec<_>>(),
            )
            .field("status", &self.tier_status())
            .finish()
    }
}
