//! Writes, deletions and invalidations, through every tier.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::future::join_all;
use nfcs_cache_core::{CacheError, CacheTier, Pattern, TierResult, Ttl, check_key, check_ttl};
use serde::Serialize;

use super::consistency::WriteGuard;
use super::{CacheType, Inner, NFCSCacheManager, Role, detached};

impl NFCSCacheManager {
    /// Encodes `value` and stores it under `key` in every tier, to live as `ttl` says: `None`
    /// or [`Ttl::Default`] gives each tier its default TTL, a [`Duration`](std::time::Duration)
    /// or [`Ttl::After`] expires after it everywhere, [`Ttl::Never`] never expires.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`], [`CacheError::InvalidTtl`], [`CacheError::Encode`], or the
    /// last tier's error when no tier stored the value (for example
    /// [`CacheError::ValueTooLarge`] everywhere).
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: impl Into<Ttl>,
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
        ttl: impl Into<Ttl>,
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
        ttl: impl Into<Ttl>,
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
        ttl: impl Into<Ttl>,
        cache_type: CacheType,
    ) -> Result<(), CacheError> {
        check_key(key)?;
        let ttl = check_ttl(ttl)?;
        let value = value.into();
        let inner = &self.inner;
        let not_running = |tier: &str| CacheError::Unavailable {
            tier: tier.to_owned(),
            reason: "not running in this manager".to_owned(),
        };
        let role = match cache_type {
            CacheType::Memory => {
                let Some(memory) = &inner.memory else {
                    return Err(not_running("memory"));
                };
                // Even a write of memory alone takes its key's turn: a promotion must not put
                // an older lower-tier value over it.
                let _turn = self.write_turn(key).await;
                return memory.insert(key, value, ttl);
            }
            CacheType::Disk => Role::Disk,
            CacheType::Redis => Role::Redis,
            _ => return self.write_through(key, value, ttl).await,
        };
        let Some((_, tier)) = self.lower_with(role) else {
            return Err(not_running(if role == Role::Disk {
                "disk"
            } else {
                "redis"
            }));
        };
        let tier = Arc::clone(tier);
        let turn = self.write_turn(key).await;
        let key = key.to_owned();
        detached(async move {
            let result = tier.set(&key, value, ttl).await;
            drop(turn);
            result
        })
        .await
    }

    /// Waits for `key`'s turn to be written, when there are lower tiers (a manager with memory
    /// alone never promotes, so it needs no turns).
    async fn write_turn(&self, key: &str) -> Option<WriteGuard> {
        if self.inner.lower.is_empty() {
            None
        } else {
            Some(self.inner.consistency.write(key).await)
        }
    }

    async fn write_through(&self, key: &str, value: Bytes, ttl: Ttl) -> Result<(), CacheError> {
        let inner = &self.inner;
        #[cfg(feature = "adaptive")]
        inner.adaptive_write(key, value.len());
        if inner.lower.is_empty() {
            let Some(memory) = &inner.memory else {
                return Err(CacheError::Unavailable {
                    tier: "manager".to_owned(),
                    reason: "no tier is running".to_owned(),
                });
            };
            let started = inner.metrics.start_sampled();
            let result = memory.insert(key, value, ttl);
            if let Some(started) = started {
                inner.metrics.set(started.elapsed());
            }
            return result;
        }
        let started = Instant::now();
        let turn = inner.consistency.write(key).await;
        let mut stored = false;
        let mut refusal = None;
        let mut memory_refused = false;
        if let Some(memory) = &inner.memory {
            match memory.insert(key, value.clone(), ttl) {
                Ok(()) => stored = true,
                Err(error @ CacheError::ValueTooLarge { .. }) => {
                    memory_refused = true;
                    refusal = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        let (inner, owned_key) = (Arc::clone(inner), key.to_owned());
        let result = detached(async move {
            let writes = inner
                .lower
                .iter()
                .map(|lower| lower.tier.set(&owned_key, value.clone(), ttl));
            let mut failure = None;
            for (depth, result) in join_all(writes).await.into_iter().enumerate() {
                match result {
                    Ok(()) => stored = true,
                    Err(error @ CacheError::ValueTooLarge { .. }) => refusal = Some(error),
                    Err(error) if error.is_input_error() => return Err(error),
                    Err(error) => {
                        inner.tier_failed(depth, "write", &error);
                        failure = Some(error);
                    }
                }
            }
            if stored
                && memory_refused
                && let Some(memory) = &inner.memory
            {
                // A lower tier took a value too large for memory: an older value in memory
                // must not shadow it. (When no tier took it, the older value stays, as the
                // error says.)
                memory.remove(&owned_key)?;
            }
            drop(turn);
            match (stored, refusal.or(failure)) {
                (true, _) => Ok(()),
                (false, Some(error)) => Err(error),
                (false, None) => Err(CacheError::Unavailable {
                    tier: "manager".to_owned(),
                    reason: "no tier is running".to_owned(),
                }),
            }
        })
        .await;
        self.inner.metrics.set(started.elapsed());
        result
    }

    /// Removes `key` from every tier (lower tiers first, memory last); `true` when any tier
    /// held it.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`], or a tier's error when a tier could not be reached (the
    /// other tiers have still been cleaned).
    pub async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        check_key(key)?;
        let inner = &self.inner;
        if inner.lower.is_empty() {
            return inner
                .memory
                .as_ref()
                .map_or(Ok(false), |memory| memory.remove(key));
        }
        let turn = inner.consistency.write(key).await;
        let (inner, key) = (Arc::clone(inner), key.to_owned());
        detached(async move {
            let below = on_lower_tiers(&inner, "delete from", |tier| tier.delete(&key)).await;
            let removed = match &inner.memory {
                Some(memory) => memory.remove(&key)?,
                None => false,
            };
            drop(turn);
            Ok(below?.into_iter().fold(removed, |any, found| any | found))
        })
        .await
    }

    /// Removes every key matching the glob `pattern` (Redis syntax, see [`Pattern`]) from every
    /// tier (lower tiers first, memory last); returns how many entries were removed, summed
    /// over tiers.
    ///
    /// # Errors
    /// [`CacheError::InvalidPattern`] for a malformed pattern, or a tier's error when a tier
    /// could not be reached (the other tiers have still been cleaned).
    pub async fn invalidate_pattern(&self, pattern: &str) -> Result<u64, CacheError> {
        let pattern = Pattern::new(pattern)?;
        let in_memory = pattern.clone();
        self.sweep(
            move |tier| tier.invalidate_pattern(&pattern),
            "invalidate in",
            move |memory| memory.remove_matching(&in_memory),
        )
        .await
    }

    /// Removes every entry from every tier (lower tiers first, memory last); returns how
    /// many, summed over tiers.
    ///
    /// # Errors
    /// A tier's error when a tier could not be reached (the others have still been cleared).
    pub async fn clear(&self) -> Result<u64, CacheError> {
        self.sweep(
            |tier| tier.clear(),
            "clear",
            nfcs_cache_core::MemoryCache::clear,
        )
        .await
    }

    /// An invalidation of many keys: `lower` on every lower tier, then `memory`, as one sweep
    /// (no read that overlaps it promotes; see `consistency.rs`).
    async fn sweep(
        &self,
        lower: impl Fn(&dyn CacheTier) -> TierResult<u64> + Send + 'static,
        operation: &'static str,
        memory: impl FnOnce(&nfcs_cache_core::MemoryCache) -> u64 + Send + 'static,
    ) -> Result<u64, CacheError> {
        let inner = &self.inner;
        if inner.lower.is_empty() {
            return Ok(inner.memory.as_ref().map_or(0, memory));
        }
        let sweep = inner.consistency.sweep().await;
        let inner = Arc::clone(inner);
        detached(async move {
            let below = on_lower_tiers(&inner, operation, lower).await;
            let removed = inner.memory.as_ref().map_or(0, memory);
            drop(sweep);
            Ok(removed + below?.into_iter().sum::<u64>())
        })
        .await
    }
}

/// Runs `call` on every lower tier concurrently. Returns the results, or, once every tier has
/// answered, the error of one that failed (each failure is counted).
pub(super) async fn on_lower_tiers<T>(
    inner: &Inner,
    operation: &str,
    call: impl Fn(&dyn CacheTier) -> TierResult<T>,
) -> Result<Vec<T>, CacheError> {
    let lower = &inner.lower;
    let results = join_all(lower.iter().map(|lower| call(lower.tier.as_ref()))).await;
    let mut values = Vec::with_capacity(results.len());
    let mut failure = None;
    for (depth, result) in results.into_iter().enumerate() {
        match result {
            Ok(value) => values.push(value),
            Err(error) => {
                inner.tier_failed(depth, operation, &error);
                failure = Some(error);
            }
        }
    }
    match failure {
        None => Ok(values),
        Some(error) => Err(error),
    }
}
