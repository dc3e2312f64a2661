//! The object-safe tier trait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::error::CacheError;
use crate::expiry::Ttl;
use crate::pattern::Pattern;
use crate::stats::TierStats;

/// A boxed, `Send`, `'static` future: what every [`CacheTier`] method returns, so that tiers
/// can live behind `Arc<dyn CacheTier>` and their futures can be spawned.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The result of a tier operation.
pub type TierResult<T> = BoxFuture<Result<T, CacheError>>;

/// Whether a tier can serve requests now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TierHealth {
    /// Serving requests.
    Healthy,
    /// Serving, with a problem worth knowing (slow, some requests failing).
    Degraded {
        /// What is wrong, in words.
        reason: String,
    },
    /// Not serving (not connected yet, server down, circuit breaker open); requests fail fast
    /// and a multi-tier cache reads around the tier.
    Unavailable {
        /// Why, in words.
        reason: String,
    },
}

/// An entry as read from a tier: the value and the TTL it has left.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheEntry {
    /// The stored bytes.
    pub value: Bytes,
    /// The time left before the entry expires; `None` when it never does. A multi-tier cache
    /// promotes the entry into faster tiers with this TTL, so promotion never extends a life.
    pub ttl: Option<Duration>,
}

impl CacheEntry {
    /// An entry with `value` and `ttl` left (`None`: it never expires).
    pub fn new(value: Bytes, ttl: Option<Duration>) -> CacheEntry {
        CacheEntry { value, ttl }
    }

    /// The [`Ttl`] that writes this entry elsewhere with the life it has left: [`Ttl::Never`]
    /// when it never expires (not the other tier's default), [`Ttl::After`] the time left
    /// otherwise.
    pub fn remaining_ttl(&self) -> Ttl {
        Ttl::remaining(self.ttl)
    }
}

/// One cache tier: memory, disk, Redis, or your own.
///
/// Every method validates its input with the core's rules ([`validate_key`](crate::validate_key),
/// [`validate_ttl`](crate::validate_ttl)) and returns a boxed `'static` future, so the trait is
/// object safe and a composing cache can hold `Arc<dyn CacheTier>` and spawn the futures.
///
/// The contract, which [`conformance`](crate::conformance) checks for every tier:
/// - a miss is `Ok(None)`, never an error;
/// - an expired entry is never returned; [`Ttl::Default`] on `set` means the tier's default
///   TTL, [`Ttl::Never`] no expiry whatever the default;
/// - `invalidate_pattern` removes exactly the keys the [`Pattern`] matches and returns how many;
/// - an error leaves the tier usable, and an input error leaves its contents unchanged.
///
/// New methods only ever arrive with default bodies, so implementations keep compiling.
pub trait CacheTier: Send + Sync {
    /// A short, stable name for logs, errors and the `tier` metric label ("memory", "disk").
    fn name(&self) -> &str;

    /// Reads `key`: the value and its remaining TTL, or `None`.
    fn get(&self, key: &str) -> TierResult<Option<CacheEntry>>;

    /// Writes `value` under `key`, replacing any earlier value, to live as `ttl` says
    /// ([`Ttl::Default`]: the tier's default TTL, which may be "never").
    fn set(&self, key: &str, value: Bytes, ttl: Ttl) -> TierResult<()>;

    /// Removes `key`; `true` when an entry was there.
    fn delete(&self, key: &str) -> TierResult<bool>;

    /// Removes every key that matches `pattern`; returns how many were removed.
    fn invalidate_pattern(&self, pattern: &Pattern) -> TierResult<u64>;

    /// Removes each of `keys`; returns how many entries were there. Every key is checked
    /// first: an invalid one is an error and nothing is removed. The default deletes one key
    /// after another; a tier where a batch is cheaper (the disk tier: one lock, one flush)
    /// overrides it. What was removed before an error stays removed.
    fn delete_many(&self, keys: &[String]) -> TierResult<u64> {
        if let Some(error) = keys.iter().find_map(|key| crate::check_key(key).err()) {
            return ready(Err(error));
        }
        let deletions: Vec<_> = keys.iter().map(|key| self.delete(key)).collect();
        Box::pin(async move {
            let mut removed = 0;
            for deletion in deletions {
                removed += u64::from(deletion.await?);
            }
            Ok(removed)
        })
    }

    /// Removes every entry of this tier; returns how many were removed.
    fn clear(&self) -> TierResult<u64>;

    /// A snapshot of the tier's counters and gauges.
    fn stats(&self) -> TierStats;

    /// Whether the tier can serve requests now. Local tiers are always healthy; networked ones
    /// report their connection and circuit-breaker state.
    fn health(&self) -> TierHealth {
        TierHealth::Healthy
    }
}

macro_rules! forward_cache_tier {
    ($($pointer:ty),*) => {$(
        impl<T: CacheTier + ?Sized> CacheTier for $pointer {
            fn name(&self) -> &str {
                (**self).name()
            }
            fn get(&self, key: &str) -> TierResult<Option<CacheEntry>> {
                (**self).get(key)
            }
            fn set(&self, key: &str, value: Bytes, ttl: Ttl) -> TierResult<()> {
                (**self).set(key, value, ttl)
            }
            fn delete(&self, key: &str) -> TierResult<bool> {
                (**self).delete(key)
            }
            fn invalidate_pattern(&self, pattern: &Pattern) -> TierResult<u64> {
                (**self).invalidate_pattern(pattern)
            }
            fn delete_many(&self, keys: &[String]) -> TierResult<u64> {
                (**self).delete_many(keys)
            }
            fn clear(&self) -> TierResult<u64> {
                (**self).clear()
            }
            fn stats(&self) -> TierStats {
                (**self).stats()
            }
            fn health(&self) -> TierHealth {
                (**self).health()
            }
        }
    )*};
}

forward_cache_tier!(&T, Box<T>, Arc<T>);

/// A future that is already complete, boxed: how synchronous tiers answer.
pub fn ready<T: Send + 'static>(value: T) -> BoxFuture<T> {
    Box::pin(std::future::ready(value))
}
