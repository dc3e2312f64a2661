//! The nfcs-perf facade: one cache over every tier.
//!
//! `nfcs-performance` is the crate most users depend on. Its [`NFCSCacheManager`] composes the
//! tiers of the nfcs-perf stack (memory; disk, Redis behind features) into one cache with
//! typed values, TTLs, glob invalidation and single-flight loading, and runs the semantic and
//! policy-decision caches beside it, configured from TOML with the NFCS specification's
//! defaults.
//!
//! # What it provides
//!
//! - [`NFCSCacheManager`]: read-through and write-through across tiers, promotion of lower-tier
//!   hits with their remaining TTL, typed [`get`](NFCSCacheManager::get) /
//!   [`set`](NFCSCacheManager::set) and raw-bytes variants,
//!   [`get_or_insert_with`](NFCSCacheManager::get_or_insert_with) (one load for any number of
//!   concurrent callers), [`invalidate_pattern`](NFCSCacheManager::invalidate_pattern), a
//!   consistency guarantee (no read brings back a value older than a completed write), exact
//!   [`stats`](NFCSCacheManager::stats), and metrics through the `metrics` facade
//!   ([`metric_names`], [`cache_core::telemetry`]).
//! - [`CacheConfig`]: the spec's `CACHE_CONFIG` from TOML: sizes such as `"1GB"` or
//!   `"512MiB"` ([`ByteSize`]), TTLs such as `3600`, `"1h"` or `"never"` ([`TtlSetting`]),
//!   and an error naming the field for every invalid value.
//! - [`cache_core`]: the tier crate underneath (keys, patterns, codec, `MemoryCache`).
//! - [`prelude`]: the names most code needs.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use nfcs_performance::prelude::*;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let directory = tempfile::tempdir()?;
//! let config = CacheConfig::from_toml_str(&format!(r#"
//!     [memory]
//!     max_size = "256MiB"
//!     ttl_default = "1h"
//!
//!     [disk]
//!     directory = "{}"
//!     max_size = "1GiB"
//!
//!     [redis]
//!     enabled = false   # a single node needs no shared tier
//! "#, directory.path().display()))?;
//! let cache = NFCSCacheManager::from_config(config).await?;
//!
//! // The spec's solve_cgl_optimized: check, compute once, store.
//! let grid_size = 64;
//! let key = format!("cgl_{grid_size}_a1b2");
//! let field: Vec<f64> = cache
//!     .get_or_insert_with(&key, Some(Duration::from_secs(3600)), || async move {
//!         Ok::<_, std::io::Error>(vec![1.0; grid_size * grid_size]) // solve_cgl(...)
//!     })
//!     .await?;
//! assert_eq!(field.len(), 4096);
//!
//! cache.set("key_1", &"value_1", None).await?; // the tier's default TTL
//! let hit: Option<String> = cache.get("key_1").await?; // Ok(None) on a miss
//! assert_eq!(hit.as_deref(), Some("value_1"));
//! // Counts are summed over tiers: one entry, removed from memory and from disk.
//! assert_eq!(cache.invalidate_pattern("cgl_*").await?, 2);
//!
//! // The spec enables semantic caching and both warming strategies by default too; a build
//! // without the `semantic` feature reports it as not running instead of failing.
//! for status in cache.tier_status() {
//!     println!("{}: {:?}", status.name, status.state);
//! }
//! println!("{:#?}", cache.stats());
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! - `disk` (default): the disk tier, [`cache_disk`], which `from_config` opens under the
//!   memory tier when `[disk] enabled = true`.
//! - `redis`: the Redis tier, `cache_redis`, which `from_config` starts under the disk tier
//!   when `[redis] enabled = true`, and the cross-node coherence that comes with it.
//!   `redis-cluster` adds Redis Cluster, `redis-tls` adds `rediss://`.
//! - `policy`: the policy-decision cache (`policy_cache`, with its Cedar evaluator), which
//!   `from_config` starts when `[policy] enabled = true`: [`NFCSCacheManager::policy`].
//! - `semantic`: the semantic cache (`semantic_cache`, the MiniLM model), which `from_config`
//!   starts when `[semantic] enabled = true` and the model files are present:
//!   [`NFCSCacheManager::semantic`].
//! - `warming` (default): cache warming, `popular_queries` ([`Warming`]): the most read keys
//!   tracked from a sample of reads, saved as the hot set in the disk directory and in Redis,
//!   and loaded back into memory in the background when a manager starts.
//! - `adaptive` (default): adaptive sizing of the memory tier ([`AdaptiveSizing`]), on when
//!   `[memory] adaptive = true`: miss-ratio curves of LRU and S3-FIFO from a 1 % sample of
//!   the keys, and a controller that resizes the budget toward a target hit ratio.
//! - `math`: memoized mathematics (`math`, over `math_kernels`): `NFCSCacheManager::math()`
//!   caches CGL solves and Kuramoto runs through the tiers under `cgl_{grid}_{hash}` and
//!   `kuramoto_{n}_{hash}` keys, one computation for identical concurrent requests.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod error;
mod manager;
#[cfg(feature = "math")]
#[cfg_attr(docsrs, doc(cfg(feature = "math")))]
pub mod math;
#[cfg(feature = "policy")]
mod policy;
pub mod prelude;
#[cfg(feature = "semantic")]
mod semantic;
mod units;

/// The tier crate underneath: keys, patterns, the codec, the tier trait and the memory tier.
pub use nfcs_cache_core as cache_core;

/// The disk tier (feature `disk`, on by default).
#[cfg(feature = "disk")]
#[cfg_attr(docsrs, doc(cfg(feature = "disk")))]
pub use nfcs_cache_disk as cache_disk;

/// The Redis tier (feature `redis`).
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use nfcs_cache_redis as cache_redis;

/// The semantic cache crate (feature `semantic`).
#[cfg(feature = "semantic")]
#[cfg_attr(docsrs, doc(cfg(feature = "semantic")))]
pub use nfcs_semantic as semantic_cache;

#[cfg(feature = "semantic")]
#[cfg_attr(docsrs, doc(cfg(feature = "semantic")))]
pub use semantic::{SemanticMatch, SemanticStore, SemanticStoreError, tokens_text};

/// The CGL and Kuramoto kernels (feature `math`), which [`math`] memoizes.
#[cfg(feature = "math")]
#[cfg_attr(docsrs, doc(cfg(feature = "math")))]
pub use nfcs_math_kernels as math_kernels;

/// The policy-decision cache crate (feature `policy`).
#[cfg(feature = "policy")]
#[cfg_attr(docsrs, doc(cfg(feature = "policy")))]
pub use nfcs_policy_cache as policy_cache;

#[cfg(feature = "policy")]
#[cfg_attr(docsrs, doc(cfg(feature = "policy")))]
pub use policy::{PolicyStore, PolicyStoreError};

pub use config::{
    CacheConfig, CacheWarmingConfig, ConfigError, DEFAULT_NAME, DiskTierConfig, EMBEDDING_MODEL,
    MemoryTierConfig, PolicyConfig, PolicyTier, RedisTierConfig, SemanticConfig, SemanticIndex,
    WarmingStrategy,
};
pub use error::{BuildError, LoadError};
pub use manager::{
    CacheType, ManagerBuilder, ManagerStats, NFCSCacheManager, TierState, TierStatus,
};
pub use units::{ByteSize, TtlSetting};

#[cfg(feature = "adaptive")]
#[cfg_attr(docsrs, doc(cfg(feature = "adaptive")))]
pub use manager::{AdaptiveConfig, AdaptiveSizing, ControllerState, SizingAction, decide};

#[cfg(feature = "warming")]
#[cfg_attr(docsrs, doc(cfg(feature = "warming")))]
pub use manager::{
    Prediction, PredictionConfig, PredictionStats, WarmReport, WarmStop, Warming, WarmingConfig,
    WarmingState, hot_set_file_name, hot_set_redis_key,
};

/// The names of the manager's own metrics (the tiers' are in
/// [`cache_core::telemetry`]), for configuring a recorder's
/// histogram buckets or writing alerts. Every series carries the `cache` label.
pub mod metric_names {
    pub use crate::manager::{
        COALESCED, GET_SECONDS, LOAD_WAITERS, LOADS, PROMOTIONS, PROMOTIONS_SKIPPED,
        REMOTE_INVALIDATIONS, SET_SECONDS, TIER_ERRORS,
    };
}
