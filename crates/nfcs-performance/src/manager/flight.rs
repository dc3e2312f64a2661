//! Single-flight loading: `get_or_insert_with`, on `nfcs-single-flight`.

use std::any::{Any, TypeId};
use std::future::Future;
use std::sync::Arc;

use nfcs_cache_core::{CacheEntry, CacheError, Ttl, check_key, check_ttl, key_preview};
use nfcs_single_flight::{Joined, Leader};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::consistency::ReadMark;
use super::{LoadOutcome, NFCSCacheManager};
use crate::error::LoadError;

/// A caller counted in the `nfcs_cache_load_waiters` gauge while it waits.
struct Waiting<'a>(&'a metrics::Gauge);

impl<'a> Waiting<'a> {
    fn new(gauge: &'a metrics::Gauge) -> Waiting<'a> {
        gauge.increment(1.0);
        Waiting(gauge)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

impl NFCSCacheManager {
    /// Returns the cached value of `key`, or runs `loader`, caches its value to live as `ttl`
    /// says, and returns it.
    ///
    /// Concurrent calls for one key and one value type `T` run one loader (single flight): the
    /// first caller runs it, the others wait and receive its value, or its error (as the same
    /// `Arc<E>`; nothing is cached then). Before running the loader, the first caller looks in
    /// the cache once more, so a caller that missed just before another finished storing the
    /// value does not load it again. A waiting caller that is dropped or times out affects no
    /// one. If the caller running the loader is dropped or times out, the waiting callers
    /// notice at once and exactly one of them runs its loader in its place.
    ///
    /// A waiter whose loader has another error type than the leader's receives the leader's
    /// value, but not its error (it cannot be given one of another type): after a failed load it
    /// looks again and may run its own loader.
    ///
    /// # Errors
    /// [`LoadError::Loader`] with the loader's error; [`LoadError::Cache`] for an invalid key
    /// or TTL, a value that cannot be encoded, or a cached value that is not a `T`.
    pub async fn get_or_insert_with<T, F, Fut, E>(
        &self,
        key: &str,
        ttl: impl Into<Ttl>,
        loader: F,
    ) -> Result<T, LoadError<E>>
    where
        T: Serialize + DeserializeOwned + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Send + Sync + 'static,
    {
        check_key(key)?;
        let ttl = check_ttl(ttl)?;
        let mut loader = Some(loader);
        loop {
            let (found, mark) = self.read_through(key).await?;
            if let Some(entry) = found {
                return self.decode(key, &entry.value).map_err(LoadError::Cache);
            }
            match self.inner.flights.join((key.to_owned(), TypeId::of::<T>())) {
                Joined::Leader(leader) => {
                    if let Some(entry) = self.second_look(key, mark).await? {
                        return self.decode(key, &entry.value).map_err(LoadError::Cache);
                    }
                    // A leader always has its loader: it is taken only here, and a leader
                    // returns.
                    let Some(loader) = loader.take() else {
                        continue;
                    };
                    return self.lead(key, ttl, loader, leader).await;
                }
                Joined::Waiter(waiter) => {
                    let outcome = {
                        let _waiting = Waiting::new(&self.inner.metrics.waiters);
                        waiter.outcome().await
                    };
                    match outcome {
                        Some(Ok(frame)) => {
                            self.inner.metrics.coalesced.add(1);
                            return self.decode(key, &frame).map_err(LoadError::Cache);
                        }
                        Some(Err(error)) => match error.downcast::<E>() {
                            Ok(error) => {
                                self.inner.metrics.coalesced.add(1);
                                return Err(LoadError::Loader(error));
                            }
                            Err(_) => tracing::debug!(
                                key = %key_preview(key),
                                "the load this caller waited for failed with an error of another type; looking again"
                            ),
                        },
                        // The leader was dropped: look again, perhaps as the leader.
                        None => {}
                    }
                }
            }
        }
    }

    /// The leader's second look, after joining: memory (without counting a read), and the
    /// lower tiers again only if the key was written since the first look's mark.
    async fn second_look(
        &self,
        key: &str,
        mark: Option<ReadMark>,
    ) -> Result<Option<CacheEntry>, CacheError> {
        if let Some(memory) = &self.inner.memory
            && let Some(entry) = memory.peek_entry(key)?
        {
            return Ok(Some(entry));
        }
        match mark {
            Some(mark) if !self.inner.consistency.unchanged_since(mark) => {
                let mark = self.inner.consistency.mark(key);
                self.read_lower(key, mark, std::time::Instant::now()).await
            }
            _ => Ok(None),
        }
    }

    /// Runs the loader as the flight's leader, publishes the outcome to the waiters, stores
    /// the value, and only then ends the flight (dropping `leader`).
    async fn lead<T, F, Fut, E>(
        &self,
        key: &str,
        ttl: Ttl,
        loader: F,
        leader: Leader<'_, (String, TypeId), LoadOutcome>,
    ) -> Result<T, LoadError<E>>
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Send + Sync + 'static,
    {
        self.inner.metrics.loads.add(1);
        match loader().await {
            Ok(value) => {
                let frame = self.encode(key, &value)?;
                leader.publish(Ok(frame.clone()));
                if let Err(error) = self.set_bytes(key, frame, ttl).await {
                    // The value is still good; it is only not cached.
                    tracing::debug!(key = %key_preview(key), %error, "loaded value not cached");
                }
                drop(leader);
                Ok(value)
            }
            Err(error) => {
                let error = Arc::new(error);
                let shared: Arc<dyn Any + Send + Sync> = Arc::clone(&error) as _;
                leader.publish(Err(shared));
                Err(LoadError::Loader(error))
            }
        }
    }
}
