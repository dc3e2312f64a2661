//! Cross-node coherence: other nodes' writes, deletions and invalidations, announced through
//! the shared Redis, are applied to this node's local (memory and disk) tiers.
//!
//! They follow the same rule as this node's own invalidations (`consistency.rs`): a changed
//! key is dropped under its stripe's turn, a pattern or a resynchronisation as a sweep, lower
//! tiers first and memory last, so that no read that overlapped the change promotes what it
//! read (it may predate the other node's write).

#[cfg(feature = "redis")]
use std::sync::Arc;

#[cfg(feature = "redis")]
use nfcs_cache_core::Pattern;
#[cfg(feature = "redis")]
use nfcs_cache_redis::{Invalidation, RedisCache};
#[cfg(feature = "redis")]
use tokio::sync::broadcast::error::RecvError;

#[cfg(feature = "redis")]
use super::{Inner, NFCSCacheManager, Role};

/// Starts the task that applies `redis`'s invalidations to the manager's local tiers. It
/// stops when the manager is dropped.
#[cfg(feature = "redis")]
pub(super) fn start(manager: &NFCSCacheManager, redis: &RedisCache) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(
            "built outside a tokio runtime: other nodes' invalidations will not be applied"
        );
        return;
    };
    let weak = Arc::downgrade(&manager.inner);
    let mut invalidations = redis.invalidations();
    runtime.spawn(async move {
        loop {
            let invalidation = match invalidations.recv().await {
                Ok(invalidation) => invalidation,
                // Messages were lost: nothing local can be trusted.
                Err(RecvError::Lagged(_)) => Invalidation::Resync,
                Err(RecvError::Closed) => return,
            };
            let Some(inner) = weak.upgrade() else {
                return;
            };
            apply(&inner, invalidation).await;
        }
    });
}

/// Drops what another node changed from the local tiers.
#[cfg(feature = "redis")]
async fn apply(inner: &Inner, invalidation: Invalidation) {
    let local: Vec<_> = inner
        .lower
        .iter()
        .filter(|lower| lower.role != Role::Redis)
        .map(|lower| Arc::clone(&lower.tier))
        .collect();
    match invalidation {
        Invalidation::Keys(mut keys) => {
            // A key this node could never have stored (a malformed message) must not make the
            // batch fail for the others.
            keys.retain(|key| nfcs_cache_core::check_key(key).is_ok());
            // One batch per tier (the disk tier writes its deletions under one lock), under
            // the turns of every key at once.
            let _turns = inner
                .consistency
                .write_many(keys.iter().map(String::as_str))
                .await;
            for tier in &local {
                if let Err(error) = tier.delete_many(&keys).await {
                    tracing::debug!(tier = tier.name(), %error, "could not drop keys another node changed");
                }
            }
            if let Some(memory) = &inner.memory {
                for key in &keys {
                    let _ = memory.remove(key);
                }
            }
        }
        Invalidation::Pattern(pattern) => match Pattern::new(&pattern) {
            Ok(pattern) => {
                let _sweep = inner.consistency.sweep().await;
                for tier in &local {
                    let _ = tier.invalidate_pattern(&pattern).await;
                }
                if let Some(memory) = &inner.memory {
                    memory.remove_matching(&pattern);
                }
            }
            Err(error) => tracing::warn!(%error, "another node sent an invalid pattern"),
        },
        _ => {
            tracing::info!(
                "clearing local tiers: another node cleared the cache, or invalidations were missed"
            );
            let _sweep = inner.consistency.sweep().await;
            for tier in &local {
                let _ = tier.clear().await;
            }
            if let Some(memory) = &inner.memory {
                memory.clear();
            }
        }
    }
    inner.metrics.remote_invalidations.add(1);
}
