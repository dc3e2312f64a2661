//! `NFCSCacheManager`: the tiers composed into one cache.
//!
//! The module is split by responsibility:
//! - `build.rs`: [`ManagerBuilder`] and `from_config` (which tiers run, and how);
//! - `read.rs`: the read path and promotion;
//! - `write.rs`: writes, deletions and invalidations;
//! - `consistency.rs`: what keeps promotion from bringing back an older value;
//! - `flight.rs`: single-flight loading (`get_or_insert_with`);
//! - `coherence.rs`: other nodes' invalidations (feature `redis`);
//! - `metrics.rs`: the manager's own metrics;
//! - `status.rs`: tier states and [`ManagerStats`].

#[cfg(feature = "adaptive")]
pub(crate) mod adaptive;
mod build;
mod coherence;
mod consistency;
mod flight;
mod metrics;
#[cfg(feature = "warming")]
pub(crate) mod prediction;
mod read;
mod status;
#[cfg(feature = "warming")]
pub(crate) mod warming;
mod write;

use std::any::{Any, TypeId};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use nfcs_cache_core::{CacheError, CacheTier, Codec, MemoryCache, TierHealth, key_preview};
use nfcs_single_flight::SingleFlight;
use serde::Serialize;
use serde::de::DeserializeOwned;

#[cfg(feature = "adaptive")]
pub use adaptive::{AdaptiveConfig, AdaptiveSizing, ControllerState, SizingAction, decide};
pub use build::ManagerBuilder;
pub use metrics::{
    COALESCED, GET_SECONDS, LOAD_WAITERS, LOADS, PROMOTIONS, PROMOTIONS_SKIPPED,
    REMOTE_INVALIDATIONS, SET_SECONDS, TIER_ERRORS,
};
#[cfg(feature = "warming")]
pub use prediction::{Prediction, PredictionConfig, PredictionStats};
pub use status::{ManagerStats, TierState, TierStatus};
#[cfg(feature = "warming")]
pub use warming::{
    WarmReport, WarmStop, Warming, WarmingConfig, WarmingState, hot_set_file_name,
    hot_set_redis_key,
};

use consistency::Consistency;
use metrics::ManagerMetrics;

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

/// What a single-flight leader hands its waiters: the loaded value, encoded (each waiter
/// decodes its own copy, so `T` need not be `Clone`), or the loader's error as an `Arc<E>`
/// behind `Any`.
type LoadOutcome = Result<Bytes, Arc<dyn Any + Send + Sync>>;

struct Inner {
    memory: Option<MemoryCache>,
    lower: Vec<Lower>,
    codec: Codec,
    /// Loads in progress, by key and value type.
    flights: SingleFlight<(String, TypeId), LoadOutcome>,
    /// States of configured tiers that are not among the running ones.
    not_running: Vec<TierStatus>,
    consistency: Consistency,
    metrics: ManagerMetrics,
    /// The disk tier (also among `lower`), for direct access.
    #[cfg(feature = "disk")]
    disk: Option<nfcs_cache_disk::DiskCache>,
    /// The Redis tier (also among `lower`), for direct access.
    #[cfg(feature = "redis")]
    redis: Option<nfcs_cache_redis::RedisCache>,
    #[cfg(feature = "semantic")]
    semantic: crate::semantic::SemanticStore,
    #[cfg(feature = "policy")]
    policy: crate::policy::PolicyStore,
    /// Popularity tracking and warming (`[cache_warming]`).
    #[cfg(feature = "warming")]
    warming: Option<warming::Warming>,
    /// `predicted_access` (`[cache_warming]`).
    #[cfg(feature = "warming")]
    prediction: Option<prediction::Prediction>,
    /// Adaptive sizing of the memory tier (`[memory] adaptive`).
    #[cfg(feature = "adaptive")]
    adaptive: Option<adaptive::AdaptiveSizing>,
}

/// The multi-tier cache: an in-memory tier in front of slower tiers (disk, Redis, your own),
/// with typed values, TTLs, pattern invalidation and single-flight loading.
///
/// - **Reads** go memory (synchronous, no allocation on a hit) then each lower tier in order;
///   a hit below is promoted into the tiers above it with its remaining TTL (an entry that
///   never expires stays so). A lower tier that fails is counted and skipped: a read never
///   fails because a tier is down.
/// - **Writes** encode once ([`Codec`]: postcard, zstd above 1 KiB, checksummed, typed),
///   store into memory synchronously and into the lower tiers concurrently. A value too large
///   for memory goes only to the tiers that take it.
/// - **Invalidation** (`delete`, `invalidate_pattern`, `clear`) reaches every tier, lower
///   tiers first and memory last, and fails (after trying them all) if a tier could not be
///   reached, since a stale copy could otherwise come back.
/// - **Consistency** on one node: a read never brings back a value older than a write or
///   deletion that completed before the read returned, and promotion never overwrites a newer
///   write (see `docs/architecture.md` for the guarantee, across nodes too).
/// - **Coherence** (feature `redis`): what other nodes write, delete or invalidate through
///   the shared Redis is dropped from this node's memory and disk tiers.
/// - **Single flight**: concurrent [`get_or_insert_with`](NFCSCacheManager::get_or_insert_with)
///   calls on one cold key run the loader once.
/// - **Metrics**: every tier and the manager report through the `metrics` facade under the
///   manager's name (the `cache` label); see [`nfcs_cache_core::telemetry`].
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
///     .get_or_insert_with("cgl_64_ab12", Duration::from_secs(3600), || async {
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

impl NFCSCacheManager {
    /// A builder for a manager over tiers you construct.
    pub fn builder() -> ManagerBuilder {
        ManagerBuilder::new()
    }

    /// The manager's name: the `cache` label of its metrics (after any renaming that keeps it
    /// unique among live managers).
    pub fn name(&self) -> &str {
        &self.inner.metrics.instance
    }

    /// Adaptive sizing of the memory tier (feature `adaptive`, `[memory] adaptive = true`):
    /// its miss-ratio curves, evaluations and history. `None` when not configured.
    #[cfg(feature = "adaptive")]
    #[cfg_attr(docsrs, doc(cfg(feature = "adaptive")))]
    pub fn adaptive(&self) -> Option<&adaptive::AdaptiveSizing> {
        self.inner.adaptive.as_ref()
    }

    /// `predicted_access` (feature `warming`): the successor model, its prefetches and their
    /// precision. `None` when not configured.
    #[cfg(feature = "warming")]
    #[cfg_attr(docsrs, doc(cfg(feature = "warming")))]
    pub fn prediction(&self) -> Option<&prediction::Prediction> {
        self.inner.prediction.as_ref()
    }

    /// The in-memory tier, for synchronous access on the hot path.
    pub fn memory(&self) -> Option<&MemoryCache> {
        self.inner.memory.as_ref()
    }

    /// The disk tier (feature `disk`), when it is part of the manager, for what the manager
    /// does not wrap: [`flush`](nfcs_cache_disk::DiskCache::flush), `purge_expired`, `len`.
    #[cfg(feature = "disk")]
    #[cfg_attr(docsrs, doc(cfg(feature = "disk")))]
    pub fn disk(&self) -> Option<&nfcs_cache_disk::DiskCache> {
        self.inner.disk.as_ref()
    }

    /// Makes every write acknowledged so far durable: the disk tier's data reaches the device
    /// (`fdatasync`, on tokio's blocking pool). The memory tier has nothing to flush and Redis
    /// keeps what it acknowledged by its own persistence settings. A graceful shutdown calls
    /// this after the last request has been answered.
    ///
    /// # Errors
    /// [`CacheError::Backend`] when the device refuses the sync.
    pub async fn flush(&self) -> Result<(), CacheError> {
        #[cfg(feature = "warming")]
        if let Err(error) = self.save_hot_set().await {
            tracing::warn!(%error, "the hot set could not be saved");
        }
        #[cfg(feature = "disk")]
        if let Some(disk) = self.inner.disk.clone() {
            return match tokio::task::spawn_blocking(move || disk.flush()).await {
                Ok(result) => result,
                Err(error) => Err(CacheError::backend("disk", "flush", error)),
            };
        }
        Ok(())
    }

    /// The Redis tier (feature `redis`), when it is part of the manager (running or
    /// unavailable), for what the manager does not wrap: batch calls, `is_subscribed`,
    /// `health`.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis(&self) -> Option<&nfcs_cache_redis::RedisCache> {
        self.inner.redis.as_ref()
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
        #[cfg(feature = "warming")]
        if self.inner.warming.is_some() {
            status.push(TierStatus::new("cache_warming", TierState::Running));
        }
        #[cfg(feature = "warming")]
        if self.inner.prediction.is_some() {
            status.push(TierStatus::new("predicted_access", TierState::Running));
        }
        #[cfg(feature = "adaptive")]
        if self.inner.adaptive.is_some() {
            status.push(TierStatus::new("adaptive_memory", TierState::Running));
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

    /// Publishes to the metric counters the memory tier's reads not published yet (it
    /// publishes them in batches; see [`MemoryCache::flush_metrics`]). Call it before a scrape
    /// that must be exact; every other series is always current.
    pub fn flush_metrics(&self) {
        if let Some(memory) = &self.inner.memory {
            memory.flush_metrics();
        }
    }

    /// The lower tier with `role`, if running.
    fn lower_with(&self, role: Role) -> Option<(usize, &Arc<dyn CacheTier>)> {
        self.inner
            .lower
            .iter()
            .enumerate()
            .find(|(_, lower)| lower.role == role)
            .map(|(depth, lower)| (depth, &lower.tier))
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
}

impl Inner {
    /// Teaches `predicted_access` a read that missed memory, and prefetches what it predicts.
    #[cfg(feature = "warming")]
    fn predict_after_miss(self: &Arc<Inner>, key: &str) {
        if let (Some(prediction), Some(memory)) = (&self.prediction, &self.memory) {
            let next = prediction.on_miss(key, memory.key_hash(key));
            if !next.is_empty() {
                prediction::prefetch(self, next);
            }
        }
    }

    /// Feeds a write to adaptive sizing (a write takes its place in the curves' caches).
    #[cfg(feature = "adaptive")]
    fn adaptive_write(&self, key: &str, value_len: usize) {
        if let (Some(adaptive), Some(memory)) = (&self.adaptive, &self.memory)
            && nfcs_cache_core::check_key(key).is_ok()
        {
            adaptive.record_write(memory.key_hash(key), key.len(), value_len);
        }
    }

    /// Feeds a read that missed memory to adaptive sizing (hashing the key as the memory tier
    /// does; a hit passes the hash the tier computed).
    #[cfg(feature = "adaptive")]
    fn adaptive_read(&self, key: &str, value_len: Option<usize>) {
        if let (Some(adaptive), Some(memory)) = (&self.adaptive, &self.memory) {
            adaptive.record_read(memory.key_hash(key), key.len(), value_len);
        }
    }

    /// Counts a failed operation of lower tier `depth`; the caller serves around it.
    fn tier_failed(&self, depth: usize, operation: &str, error: &CacheError) {
        self.metrics.tier_error(depth);
        let tier = self.lower.get(depth).map_or("?", |lower| lower.tier.name());
        tracing::debug!(tier, operation, %error, "tier failed; served around it");
    }
}

/// Runs `work` to completion even if the caller stops waiting for it: polled in the caller's
/// task, and, should the caller drop it before it finishes, handed to the current tokio runtime
/// to finish there (without a runtime nothing runs in the background, so there is nothing left
/// to finish).
///
/// Writes and promotions hold their key's stripe (see `consistency.rs`) until every tier
/// write they started has finished; a cancelled caller must not release it early, or a later
/// write could be overtaken by one still in flight. Running the work in a task of its own
/// always would do too, but cost a write 4 µs more (a spawn and two more wake-ups: 23.5 ->
/// 27.7 µs per write through memory and disk, measured with `examples/hit_loop.rs`).
fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T, CacheError>> + Send + 'static,
) -> Detached<T> {
    Detached {
        work: Some(Box::pin(work)),
    }
}

/// Work that must finish even if its caller stops waiting (see [`detached`]).
type Work<T> = Pin<Box<dyn Future<Output = Result<T, CacheError>> + Send>>;

/// The future [`detached`] returns.
struct Detached<T: Send + 'static> {
    work: Option<Work<T>>,
}

impl<T: Send + 'static> Future for Detached<T> {
    type Output = Result<T, CacheError>;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(work) = self.work.as_mut() else {
            return Poll::Ready(Err(CacheError::Unavailable {
                tier: "manager".to_owned(),
                reason: "a finished operation was polled again".to_owned(),
            }));
        };
        let result = std::task::ready!(work.as_mut().poll(context));
        self.work = None;
        Poll::Ready(result)
    }
}

impl<T: Send + 'static> Drop for Detached<T> {
    fn drop(&mut self) {
        if let Some(work) = self.work.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                // The caller is gone; what matters is that the tier writes finish before the
                // key's stripe is released (the guards inside `work` are dropped at its end).
                let _ = work.await;
            });
        }
    }
}

impl fmt::Debug for NFCSCacheManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NFCSCacheManager")
            .field("name", &self.name())
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
