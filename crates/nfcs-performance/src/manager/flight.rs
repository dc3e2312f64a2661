//! Single-flight loading: `get_or_insert_with`.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use dashmap::mapref::entry::Entry as MapEntry;
use nfcs_cache_core::{CacheError, check_ttl, key_preview};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::{Inner, NFCSCacheManager};
use crate::error::LoadError;

/// A load in progress, as the other callers see it.
pub(super) struct Flight {
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

impl NFCSCacheManager {
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
