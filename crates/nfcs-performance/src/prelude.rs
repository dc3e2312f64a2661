//! The names most code needs: `use nfcs_performance::prelude::*;`.

pub use crate::config::CacheConfig;
pub use crate::error::{BuildError, LoadError};
pub use crate::manager::{CacheType, ManagerStats, NFCSCacheManager, TierState, TierStatus};
pub use nfcs_cache_core::{
    Bytes, CacheEntry, CacheError, CacheTier, Clock, Codec, EvictionPolicy, ManualClock,
    MemoryCache, MemoryConfig, Pattern, TierHealth, TierResult, TierStats, Ttl,
};

#[cfg(feature = "disk")]
pub use nfcs_cache_disk::{DiskCache, DiskConfig};

#[cfg(feature = "redis")]
pub use nfcs_cache_redis::{RedisCache, RedisConfig};

#[cfg(feature = "policy")]
pub use nfcs_policy_cache::{ComplianceResult, PolicyCache, PolicyContext, Verdict};
