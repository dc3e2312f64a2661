//! The read path: memory, then each lower tier; promotion of what a lower tier had.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::future::join_all;
use nfcs_cache_core::{CacheEntry, CacheError, check_key, key_preview};
use serde::de::DeserializeOwned;

use super::consistency::ReadMark;
use super::{CacheType, Inner, NFCSCacheManager, Role, detached};

/// What the synchronous, memory part of a multi-tier read found.
enum MemoryRead {
    /// A live entry in memory.
    Hit(CacheEntry),
    /// Not in memory: the lower tiers must be read; the request's start if it is timed.
    Miss(Option<Instant>),
}

impl NFCSCacheManager {
    /// Reads and decodes `key`; `Ok(None)` on a miss.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`]; [`CacheError::Decode`] when the stored bytes are not a `T`
    /// (stored as another type, or with [`set_bytes`](NFCSCacheManager::set_bytes)). A tier
    /// that is down is never an error here: it is counted and read around.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, CacheError> {
        // Each public read does its memory step itself rather than awaiting a shared async
        // helper: a memory hit then runs one small state machine, not a nest of them.
        let entry = match self.read_memory(key)? {
            MemoryRead::Hit(entry) => entry,
            MemoryRead::Miss(started) => match self.read_below(key, started).await?.0 {
                Some(entry) => entry,
                None => return Ok(None),
            },
        };
        self.decode(key, &entry.value).map(Some)
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
        match self.read_memory(key)? {
            MemoryRead::Hit(entry) => Ok(Some(entry.value)),
            MemoryRead::Miss(started) => Ok(self
                .read_below(key, started)
                .await?
                .0
                .map(|entry| entry.value)),
        }
    }

    /// Reads `key` with its remaining TTL.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`].
    pub async fn get_entry(&self, key: &str) -> Result<Option<CacheEntry>, CacheError> {
        match self.read_memory(key)? {
            MemoryRead::Hit(entry) => Ok(Some(entry)),
            MemoryRead::Miss(started) => Ok(self.read_below(key, started).await?.0),
        }
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
        let role = match cache_type {
            CacheType::Memory => {
                check_key(key)?;
                return match &self.inner.memory {
                    Some(memory) => memory.get_entry(key),
                    None => Ok(None),
                };
            }
            CacheType::Disk => Role::Disk,
            CacheType::Redis => Role::Redis,
            // `CacheType` is non-exhaustive only for users; every other value reads through.
            _ => return self.get_entry(key).await,
        };
        check_key(key)?;
        let Some((depth, tier)) = self.lower_with(role) else {
            return Ok(None);
        };
        match tier.get(key).await {
            Ok(found) => Ok(found),
            Err(error) if error.is_input_error() => Err(error),
            Err(error) => {
                self.inner.tier_failed(depth, "read", &error);
                Ok(None)
            }
        }
    }

    /// The multi-tier read: memory, then each lower tier, promoting a lower-tier hit. On a
    /// miss of every tier, also returns the mark taken before the lower tiers were read (for
    /// single flight's second look), `None` when there are no lower tiers.
    pub(super) async fn read_through(
        &self,
        key: &str,
    ) -> Result<(Option<CacheEntry>, Option<ReadMark>), CacheError> {
        match self.read_memory(key)? {
            MemoryRead::Hit(entry) => Ok((Some(entry), None)),
            MemoryRead::Miss(started) => self.read_below(key, started).await,
        }
    }

    /// The memory step of a multi-tier read (synchronous; a hit is timed one time in 128).
    #[inline]
    fn read_memory(&self, key: &str) -> Result<MemoryRead, CacheError> {
        let inner = &self.inner;
        let started = inner.metrics.start_sampled();
        match &inner.memory {
            Some(memory) => {
                let (found, _hash) = memory.get_entry_hashed(key)?;
                if let Some(entry) = found {
                    inner.metrics.memory_hit(started);
                    #[cfg(feature = "adaptive")]
                    if let Some(adaptive) = &inner.adaptive {
                        adaptive.record_read(_hash, key.len(), Some(entry.value.len()));
                    }
                    #[cfg(feature = "warming")]
                    if let Some(warming) = &inner.warming {
                        warming.record_read(key);
                    }
                    #[cfg(feature = "warming")]
                    if let Some(prediction) = &inner.prediction {
                        let next = prediction.on_hit(key, _hash);
                        if !next.is_empty() {
                            super::prediction::prefetch(inner, next);
                        }
                    }
                    return Ok(MemoryRead::Hit(entry));
                }
            }
            None => check_key(key)?,
        }
        Ok(MemoryRead::Miss(started))
    }

    /// The lower tiers' part of a multi-tier read, after a memory miss, with the mark that
    /// guards promotion (see [`read_through`](Self::read_through)).
    async fn read_below(
        &self,
        key: &str,
        started: Option<Instant>,
    ) -> Result<(Option<CacheEntry>, Option<ReadMark>), CacheError> {
        let inner = &self.inner;
        if inner.lower.is_empty() {
            if let Some(started) = started {
                inner.metrics.miss(started);
            }
            #[cfg(feature = "adaptive")]
            inner.adaptive_read(key, None);
            #[cfg(feature = "warming")]
            if let Some(warming) = &inner.warming {
                warming.record_read(key);
            }
            return Ok((None, None));
        }
        // Lower-tier reads are timed every time: they cost microseconds or more.
        let started = started.unwrap_or_else(Instant::now);
        let mark = inner.consistency.mark(key);
        // Boxed, so that the future of a memory hit stays small: the lower tiers' futures are
        // only allocated when they are needed.
        let found = Box::pin(self.read_lower(key, mark, started)).await?;
        Ok((found, Some(mark)))
    }

    /// Reads the lower tiers in order after `mark`; promotes a hit.
    pub(super) async fn read_lower(
        &self,
        key: &str,
        mark: ReadMark,
        started: Instant,
    ) -> Result<Option<CacheEntry>, CacheError> {
        let inner = &self.inner;
        for (depth, lower) in inner.lower.iter().enumerate() {
            match lower.tier.get(key).await {
                Ok(Some(entry)) => {
                    promote(inner, key, &entry, depth, mark).await;
                    #[cfg(feature = "adaptive")]
                    inner.adaptive_read(key, Some(entry.value.len()));
                    #[cfg(feature = "warming")]
                    if let Some(warming) = &inner.warming {
                        warming.record_read(key);
                    }
                    #[cfg(feature = "warming")]
                    inner.predict_after_miss(key);
                    inner.metrics.lower_hit(depth, started);
                    return Ok(Some(entry));
                }
                Ok(None) => {}
                Err(error) if error.is_input_error() => return Err(error),
                Err(error) => inner.tier_failed(depth, "read", &error),
            }
        }
        inner.metrics.miss(started);
        #[cfg(feature = "adaptive")]
        inner.adaptive_read(key, None);
        #[cfg(feature = "warming")]
        if let Some(warming) = &inner.warming {
            warming.record_read(key);
        }
        #[cfg(feature = "warming")]
        inner.predict_after_miss(key);
        Ok(None)
    }
}

/// Copies an entry that lower tier `depth` returned into the memory tier and the lower tiers
/// above it, with its remaining life (an entry that never expires stays so), unless the key
/// may have changed since `mark` (see `consistency.rs`). Failures are counted, never returned:
/// the read already succeeded. `false` when it was not promoted (expired meanwhile, or the key
/// changed).
pub(super) async fn promote(
    inner: &Arc<Inner>,
    key: &str,
    entry: &CacheEntry,
    depth: usize,
    mark: ReadMark,
) -> bool {
    // A TTL that ran out between the read and now is not worth promoting.
    if entry.ttl.is_some_and(|ttl| ttl.is_zero()) {
        return false;
    }
    let Some(permit) = inner.consistency.promotion(mark) else {
        inner.metrics.promotions_skipped.add(1);
        tracing::trace!(key = %key_preview(key), "not promoted: the key changed since the read began");
        return false;
    };
    inner.metrics.promotions.add(1);
    let ttl = entry.remaining_ttl();
    if let Some(memory) = &inner.memory
        && let Err(error) = memory.insert(key, entry.value.clone(), ttl)
    {
        tracing::debug!(key = %key_preview(key), %error, "not promoted into memory");
    }
    if depth == 0 {
        return true;
    }
    // Tiers between memory and the one that answered: written while the permit holds the key,
    // to the end even if this read is cancelled.
    let (inner, key, value) = (Arc::clone(inner), key.to_owned(), entry.value.clone());
    let writes = detached(async move {
        let upper = &inner.lower[..depth];
        let writes = upper
            .iter()
            .map(|lower| lower.tier.set(&key, value.clone(), ttl));
        for (upper_depth, result) in join_all(writes).await.into_iter().enumerate() {
            if let Err(error) = result {
                inner.tier_failed(upper_depth, "promote into", &error);
            }
        }
        drop(permit);
        Ok(())
    });
    let _ = writes.await;
    true
}
