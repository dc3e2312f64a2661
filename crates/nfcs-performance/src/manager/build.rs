//! Building a manager: [`ManagerBuilder`] over tiers you construct, and `from_config`.

use std::sync::Arc;
#[cfg(any(
    feature = "policy",
    feature = "redis",
    feature = "warming",
    feature = "adaptive"
))]
use std::time::Duration;

use nfcs_cache_core::telemetry::InstanceClaim;
use nfcs_cache_core::{CacheTier, Clock, Codec, MemoryCache, MemoryConfig};
use nfcs_single_flight::SingleFlight;

#[cfg(feature = "redis")]
use super::coherence;
use super::consistency::Consistency;
use super::metrics::{self, ManagerMetrics};
use super::status::{TierState, TierStatus};
use super::{Inner, Lower, NFCSCacheManager, Role};
use crate::config::CacheConfig;
use crate::error::BuildError;

/// Builds an [`NFCSCacheManager`] from tiers you construct yourself.
///
/// Name the manager ([`name`](ManagerBuilder::name)) when a process runs more than one: the
/// name is the `cache` label of every metric it reports. Give the tiers you build the same
/// name (`MemoryConfig::instance`, and the other tiers' `instance` settings) so that their
/// series line up with the manager's.
#[must_use]
pub struct ManagerBuilder {
    memory: Option<MemoryCache>,
    lower: Vec<Lower>,
    codec: Codec,
    not_running: Vec<TierStatus>,
    name: String,
    claim: Option<InstanceClaim>,
    #[cfg(feature = "disk")]
    disk: Option<nfcs_cache_disk::DiskCache>,
    #[cfg(feature = "redis")]
    pub(super) redis: Option<nfcs_cache_redis::RedisCache>,
    #[cfg(feature = "semantic")]
    semantic: Option<nfcs_semantic::SemanticCache<bytes::Bytes, nfcs_semantic::MiniLmEmbedder>>,
    #[cfg(feature = "policy")]
    policy: Option<nfcs_policy_cache::PolicyCache>,
    #[cfg(feature = "warming")]
    warming: Option<super::warming::WarmingConfig>,
    #[cfg(feature = "warming")]
    prediction: Option<super::prediction::PredictionConfig>,
    #[cfg(feature = "adaptive")]
    adaptive: Option<super::adaptive::AdaptiveConfig>,
}

impl ManagerBuilder {
    pub(super) fn new() -> ManagerBuilder {
        ManagerBuilder {
            memory: None,
            lower: Vec::new(),
            codec: Codec::default(),
            not_running: Vec::new(),
            name: nfcs_cache_core::telemetry::DEFAULT_INSTANCE.to_owned(),
            claim: None,
            #[cfg(feature = "disk")]
            disk: None,
            #[cfg(feature = "redis")]
            redis: None,
            #[cfg(feature = "semantic")]
            semantic: None,
            #[cfg(feature = "policy")]
            policy: None,
            #[cfg(feature = "warming")]
            warming: None,
            #[cfg(feature = "warming")]
            prediction: None,
            #[cfg(feature = "adaptive")]
            adaptive: None,
        }
    }

    /// Learns which keys follow which and prefetches the likely successors of a read key from
    /// the lower tiers into memory (`predicted_access`, feature `warming`). Needs a memory tier
    /// and a tokio runtime to prefetch in.
    #[cfg(feature = "warming")]
    #[cfg_attr(docsrs, doc(cfg(feature = "warming")))]
    pub fn prediction(mut self, config: super::prediction::PredictionConfig) -> ManagerBuilder {
        self.prediction = Some(config);
        self
    }

    /// Sizes the memory tier adaptively (feature `adaptive`): online miss-ratio curves and a
    /// controller that resizes the budget within bounds toward a target hit ratio and switches
    /// the eviction policy when the other one predicts better. Needs a memory tier; settings
    /// that are invalid leave it off (logged, and reported by `tier_status`).
    #[cfg(feature = "adaptive")]
    #[cfg_attr(docsrs, doc(cfg(feature = "adaptive")))]
    pub fn adaptive(mut self, config: super::adaptive::AdaptiveConfig) -> ManagerBuilder {
        self.adaptive = Some(config);
        self
    }

    /// Tracks the most read keys and warms memory from them (feature `warming`): the hot set
    /// is saved in the disk tier's directory and in Redis, and, with `warm_on_startup`, loaded
    /// back in the background when the manager is built (inside a tokio runtime).
    #[cfg(feature = "warming")]
    #[cfg_attr(docsrs, doc(cfg(feature = "warming")))]
    pub fn warming(mut self, config: super::warming::WarmingConfig) -> ManagerBuilder {
        self.warming = Some(config);
        self
    }

    /// Names the manager: the `cache` label of its metrics. A name that another live manager
    /// holds gets `-2`, `-3`, ... appended (and a warning is logged), so two managers never
    /// report into one series. Default `"default"`.
    pub fn name(mut self, name: impl Into<String>) -> ManagerBuilder {
        self.name = name.into();
        self.claim = None;
        self
    }

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
            tier: Arc::new(cache.clone()),
            role: Role::Disk,
        });
        self.disk = Some(cache);
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

    /// The reason recorded for a feature that is not running, for its store's errors.
    #[cfg(any(feature = "semantic", feature = "policy"))]
    fn reason_not_running(&self, name: &str) -> String {
        self.not_running
            .iter()
            .find(|status| status.name == name)
            .map_or(
                format!("no {name} cache was configured"),
                |status| match &status.state {
                    TierState::NotRunning { reason } | TierState::Unavailable { reason } => {
                        reason.clone()
                    }
                    TierState::Disabled => "disabled in the configuration".to_owned(),
                    TierState::Running => "running".to_owned(),
                },
            )
    }

    /// Builds the manager. With a Redis tier, call it inside a tokio runtime: it starts the
    /// task that applies other nodes' invalidations (without a runtime, that task does not
    /// run and a warning is logged).
    pub fn build(self) -> NFCSCacheManager {
        #[cfg(feature = "semantic")]
        let semantic_reason = self.reason_not_running("semantic");
        #[cfg(feature = "policy")]
        let policy_reason = self.reason_not_running("policy");
        #[cfg(feature = "semantic")]
        let semantic = match self.semantic {
            Some(cache) => crate::semantic::SemanticStore::running(cache, self.codec.clone()),
            None => {
                crate::semantic::SemanticStore::not_running(semantic_reason, self.codec.clone())
            }
        };
        #[cfg(feature = "policy")]
        let policy = {
            let reason = policy_reason;
            match self.policy {
                Some(cache) => crate::policy::PolicyStore::running(cache),
                None => crate::policy::PolicyStore::not_running(reason),
            }
        };
        let claim = self.claim.unwrap_or_else(|| metrics::claim(&self.name));
        let lower_names: Vec<&str> = self.lower.iter().map(|lower| lower.tier.name()).collect();
        let metrics = ManagerMetrics::new(claim, &lower_names);
        #[cfg(feature = "warming")]
        let warming = self.warming.map(|config| {
            #[cfg(feature = "disk")]
            let directory = self.disk.as_ref().map(|disk| disk.directory().to_owned());
            #[cfg(not(feature = "disk"))]
            let directory = None;
            super::warming::Warming::new(config, directory)
        });
        #[cfg(feature = "adaptive")]
        let mut not_running = self.not_running;
        #[cfg(not(feature = "adaptive"))]
        let not_running = self.not_running;
        #[cfg(feature = "adaptive")]
        let adaptive = match (self.adaptive, &self.memory) {
            (Some(config), Some(memory)) => {
                match super::adaptive::AdaptiveSizing::new(config, memory.clone()) {
                    Ok(adaptive) => Some(adaptive),
                    Err(error) => {
                        let reason = format!("could not be started: {error}");
                        tracing::warn!(%error, "adaptive sizing could not be started; serving without it");
                        not_running.push(TierStatus::new(
                            "adaptive_memory",
                            TierState::NotRunning { reason },
                        ));
                        None
                    }
                }
            }
            (Some(_), None) => {
                not_running.push(TierStatus::new(
                    "adaptive_memory",
                    TierState::NotRunning {
                        reason: "there is no memory tier to size".to_owned(),
                    },
                ));
                None
            }
            (None, _) => None,
        };
        let manager = NFCSCacheManager {
            inner: Arc::new(Inner {
                memory: self.memory,
                lower: self.lower,
                codec: self.codec,
                flights: SingleFlight::new(),
                not_running,
                consistency: Consistency::new(),
                metrics,
                #[cfg(feature = "disk")]
                disk: self.disk,
                #[cfg(feature = "redis")]
                redis: self.redis.clone(),
                #[cfg(feature = "semantic")]
                semantic,
                #[cfg(feature = "policy")]
                policy,
                #[cfg(feature = "warming")]
                warming,
                #[cfg(feature = "warming")]
                prediction: self.prediction.map(super::prediction::Prediction::new),
                #[cfg(feature = "adaptive")]
                adaptive,
            }),
        };
        #[cfg(feature = "warming")]
        super::warming::start(&manager);
        #[cfg(feature = "redis")]
        if let Some(redis) = self.redis {
            coherence::start(&manager, &redis);
        }
        manager
    }
}

impl NFCSCacheManager {
    /// Builds the tiers `config` enables: memory, disk (feature `disk`), Redis (feature
    /// `redis`), the semantic cache (feature `semantic`) and the policy cache (feature
    /// `policy`), named `config.name`.
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
        NFCSCacheManager::from_config_with_clock(config, Clock::system()).await
    }

    /// [`from_config`](NFCSCacheManager::from_config) with every tier measuring TTLs on
    /// `clock` (a [`ManualClock`](nfcs_cache_core::ManualClock)'s in tests, so that time is
    /// advanced instead of slept).
    ///
    /// # Errors
    /// As [`from_config`](NFCSCacheManager::from_config).
    pub async fn from_config_with_clock(
        config: CacheConfig,
        clock: Clock,
    ) -> Result<NFCSCacheManager, BuildError> {
        config.validate()?;
        // The name is claimed first, so that every tier reports under the same (possibly
        // renamed) `cache` label as the manager.
        let claim = metrics::claim(&config.name);
        let instance = claim.labels().cache.clone();
        let mut builder = NFCSCacheManager::builder();
        builder.name.clone_from(&instance);
        builder.claim = Some(claim);
        let context = BuildContext {
            config: &config,
            clock,
            instance,
        };
        if config.memory.enabled {
            let memory = MemoryCache::with_config(
                MemoryConfig::new(config.memory.max_size.bytes())
                    .eviction_policy(config.memory.eviction_policy)
                    .default_ttl(config.memory.ttl_default.as_duration())
                    .hash_seed(config.memory.hash_seed)
                    .instance(context.instance.clone())
                    .clock(context.clock.clone()),
            )?;
            builder = builder.memory(memory);
            if config.memory.adaptive || config.memory.miss_ratio_curves {
                builder = NFCSCacheManager::attach_adaptive(builder, &config);
            }
        } else {
            builder = builder.status("memory", TierState::Disabled);
        }
        builder = NFCSCacheManager::attach_disk(builder, &context).await;
        builder = NFCSCacheManager::attach_redis(builder, &context);
        builder = NFCSCacheManager::attach_semantic(builder, &context).await;
        builder = NFCSCacheManager::attach_policy(builder, &context).await;
        builder = NFCSCacheManager::attach_warming(builder, &config);
        Ok(builder.build())
    }

    /// Configures adaptive sizing as `[memory] adaptive = true` asks, or only its curves
    /// (`miss_ratio_curves = true`).
    fn attach_adaptive(builder: ManagerBuilder, config: &CacheConfig) -> ManagerBuilder {
        #[cfg(feature = "adaptive")]
        {
            let memory = &config.memory;
            let max = memory.max_size.bytes();
            let min = memory.min_size.map_or(max / 16, |size| size.bytes()).max(1);
            // Curves only: from a sixteenth of the budget to sixteen times it, for whoever
            // resizes the tier.
            let (min, max, observe) = if memory.adaptive {
                (min, max, false)
            } else {
                ((max / 16).max(1), max.saturating_mul(16), true)
            };
            // Curves only are not evaluated on a timer (whoever reads them decides when):
            // the same reads then give the same curve.
            let interval = (!observe).then(|| Duration::from_secs(memory.adaptive_interval_secs));
            let settings = super::adaptive::AdaptiveConfig::new(min, max)
                .observe_only(observe)
                .target_hit_ratio(memory.target_hit_ratio)
                .sampling_rate(memory.sampling_rate)
                .interval(interval)
                .switch_policy(memory.adapt_eviction_policy);
            builder.adaptive(settings)
        }
        #[cfg(not(feature = "adaptive"))]
        {
            let _ = config;
            not_compiled(builder, "adaptive")
        }
    }

    /// Configures warming as `[cache_warming]` asks: `popular_queries` runs (feature
    /// `warming`); `predicted_access` is reported as not running in this build.
    fn attach_warming(builder: ManagerBuilder, config: &CacheConfig) -> ManagerBuilder {
        use crate::config::WarmingStrategy;
        let warming = &config.cache_warming;
        if !warming.enabled {
            return builder.status("cache_warming", TierState::Disabled);
        }
        #[cfg(feature = "warming")]
        let builder = if warming
            .strategies
            .contains(&WarmingStrategy::PredictedAccess)
        {
            let settings = super::prediction::PredictionConfig {
                window: warming.predict_window as usize,
                min_confidence: warming.predict_min_confidence,
                max_prefetch: warming.predict_max_prefetch as usize,
                ..super::prediction::PredictionConfig::default()
            };
            builder.prediction(settings)
        } else {
            builder
        };
        if !warming
            .strategies
            .contains(&WarmingStrategy::PopularQueries)
        {
            return builder;
        }
        #[cfg(feature = "warming")]
        {
            let settings = super::warming::WarmingConfig::default()
                .max_keys(usize::try_from(warming.max_keys).unwrap_or(usize::MAX))
                .sample_every(warming.sample_every)
                .persist_interval(Some(Duration::from_secs(warming.persist_interval_secs)))
                .warm_on_startup(warming.warm_on_startup)
                .max_time(Duration::from_secs(warming.warm_max_seconds))
                .max_bytes(warming.warm_max_bytes.map(|bytes| bytes.bytes()))
                .concurrency(warming.warm_concurrency as usize);
            builder.warming(settings)
        }
        #[cfg(not(feature = "warming"))]
        {
            not_compiled(builder, "warming")
        }
    }

    /// Opens the disk tier `config` asks for. A disk tier that cannot be opened (a directory
    /// that cannot be written, one in use by another process) does not stop the manager: it
    /// starts without it, logs why, and reports it in `tier_status`.
    async fn attach_disk(builder: ManagerBuilder, context: &BuildContext<'_>) -> ManagerBuilder {
        let disk = &context.config.disk;
        if !disk.enabled {
            return builder.status("disk", TierState::Disabled);
        }
        #[cfg(feature = "disk")]
        {
            let settings = nfcs_cache_disk::DiskConfig::new(disk.max_size.bytes())
                .compression(disk.compression)
                .instance(context.instance.clone())
                .clock(context.clock.clone());
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
    async fn attach_semantic(
        builder: ManagerBuilder,
        context: &BuildContext<'_>,
    ) -> ManagerBuilder {
        let semantic = &context.config.semantic;
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
                .with_instance(context.instance.clone())
                .with_clock(context.clock.clone())
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
    async fn attach_policy(builder: ManagerBuilder, context: &BuildContext<'_>) -> ManagerBuilder {
        let policy = &context.config.policy;
        if !policy.enabled {
            return builder.status("policy", TierState::Disabled);
        }
        #[cfg(feature = "policy")]
        {
            let not_running = |builder: ManagerBuilder, reason: String| {
                tracing::warn!(tier = "policy", %reason, "the policy cache could not be started; serving without it");
                builder.status("policy", TierState::NotRunning { reason })
            };
            // `None`: the policy cache's own memory tier, named "policy" (so its series do
            // not add into the manager's memory tier's), built by `with_config`.
            let shared: Option<Arc<dyn CacheTier>> = match policy.tier {
                crate::config::PolicyTier::Memory => None,
                crate::config::PolicyTier::Redis => {
                    #[cfg(feature = "redis")]
                    let redis = builder
                        .redis
                        .clone()
                        .map(|redis| Arc::new(redis) as Arc<dyn CacheTier>);
                    #[cfg(not(feature = "redis"))]
                    let redis: Option<Arc<dyn CacheTier>> = None;
                    match redis {
                        Some(redis) => Some(redis),
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
                .version_refresh(Duration::from_millis(policy.version_refresh_ms))
                .instance(context.instance.clone())
                .clock(context.clock.clone())
                .memory_bytes(policy.max_size.bytes());
            let cache = match shared {
                Some(tier) => {
                    nfcs_policy_cache::PolicyCache::with_tier(Arc::new(evaluator), tier, settings)
                }
                None => nfcs_policy_cache::PolicyCache::with_config(Arc::new(evaluator), settings),
            };
            match cache {
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
    fn attach_redis(builder: ManagerBuilder, context: &BuildContext<'_>) -> ManagerBuilder {
        let redis = &context.config.redis;
        if !redis.enabled {
            return builder.status("redis", TierState::Disabled);
        }
        #[cfg(feature = "redis")]
        {
            let settings = if redis.cluster_nodes.is_empty() {
                // The URL's database, unless `db` is set (validation refused the two set and
                // different).
                let settings = nfcs_cache_redis::RedisConfig::new(redis.url.clone());
                match redis.db {
                    Some(db) => settings.db(db),
                    None => settings,
                }
            } else {
                nfcs_cache_redis::RedisConfig::cluster(redis.cluster_nodes.clone())
            }
            .max_connections(redis.max_connections as usize)
            .default_ttl(redis.ttl_default.as_duration())
            .key_prefix(redis.key_prefix.clone())
            .command_timeout(Duration::from_millis(redis.command_timeout_ms))
            // Validation keeps it from 1 to 16,777,216, which fits every usize we build for.
            .announce_capacity(usize::try_from(redis.announce_capacity).unwrap_or(usize::MAX))
            .instance(context.instance.clone())
            .clock(context.clock.clone());
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
}

/// What the `attach_*` steps of `from_config` share.
struct BuildContext<'a> {
    config: &'a CacheConfig,
    clock: Clock,
    /// The manager's (claimed) name, the `cache` label of every tier.
    instance: String,
}

#[cfg(any(
    not(feature = "disk"),
    not(feature = "redis"),
    not(feature = "semantic"),
    not(feature = "policy"),
    not(feature = "warming"),
    not(feature = "adaptive")
))]
fn not_compiled(builder: ManagerBuilder, tier: &str) -> ManagerBuilder {
    let reason =
        format!("configured, but this build lacks the `{tier}` feature of nfcs-performance");
    tracing::warn!(tier, "{reason}; serving without it");
    builder.status(tier, TierState::NotRunning { reason })
}
