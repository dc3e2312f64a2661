//! The contract every nfcs-perf cache tier keeps, and the fastest tier.
//!
//! `nfcs-cache-core` is the bottom of the nfcs-perf cache stack. It defines what a key, a
//! pattern, a TTL and an error are, how typed values become bytes, and the object-safe
//! [`CacheTier`] trait that the memory, disk and Redis tiers implement, so that a multi-tier
//! cache (the `nfcs-performance` crate's `NFCSCacheManager`) can compose them and every tier
//! means the same thing by `invalidate_pattern("policy_*")`.
//!
//! # What it provides
//!
//! - [`validate_key`]: keys are UTF-8 strings of 1 to [`MAX_KEY_LEN`] bytes, in every tier.
//! - [`Pattern`]: Redis-compatible glob patterns (`*`, `?`, `[abc]`, `[^a]`, `[a-z]`, `\`),
//!   compiled once and matched in linear-ish time.
//! - [`Expiry`], [`validate_ttl`]: TTL rules and the absolute expiry persistent tiers store.
//! - [`Codec`]: serde, then postcard, then zstd above a threshold, in a versioned, checksummed
//!   frame that records the value's type (reading it as another type is an error, never a
//!   wrong value), whose decoding is bounded against hostile input.
//! - [`CacheTier`]: the tier trait, returning boxed `'static` futures ([`BoxFuture`]).
//! - [`MemoryCache`]: the in-memory tier. Byte budget, sharded LRU or S3-FIFO eviction, TTLs,
//!   pattern invalidation, run-time resizing, a synchronous hot path.
//! - [`Ttl`]: how long a write lives (the tier's default, never, or a duration).
//! - [`Clock`], [`ManualClock`]: the time every TTL reads; tests advance a manual clock
//!   instead of sleeping.
//! - [`TierStats`]: an exact snapshot of a tier's counters and gauges.
//! - [`telemetry`]: metric handles resolved once per tier (`cache` and `tier` labels) and
//!   updated as things happen, so a scrape reads current values.
//! - `conformance` (feature `test-utils`): the test suite every tier must pass.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use nfcs_cache_core::{CacheTier, Codec, MemoryCache, Pattern};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The typed layer encodes once; every tier stores the same bytes.
//! let codec = Codec::default();
//! let cache = MemoryCache::new(64 << 20)?; // a 64 MiB budget
//!
//! cache.insert("cgl_128_a1", codec.encode(&vec![0.5_f64; 128])?, Some(Duration::from_secs(3600)))?;
//! cache.insert("policy_read", codec.encode(&"allow")?, None)?;
//!
//! let field: Vec<f64> = codec.decode(&cache.get("cgl_128_a1")?.expect("just stored"))?;
//! assert_eq!(field.len(), 128);
//! assert_eq!(cache.get("cgl_256_ff")?, None); // a miss is Ok(None)
//!
//! // The same cache through the object-safe tier trait, as a multi-tier cache sees it.
//! let tier: &dyn CacheTier = &cache;
//! let removed = futures_lite_block_on(tier.invalidate_pattern(&Pattern::new("policy_*")?))?;
//! assert_eq!(removed, 1);
//! # Ok(())
//! # }
//! # // A tiny executor, so that the example needs no runtime: the memory tier's futures are
//! # // always ready.
//! # fn futures_lite_block_on<F: std::future::Future>(future: F) -> F::Output {
//! #     use std::task::{Context, Poll, Waker};
//! #     let mut future = std::pin::pin!(future);
//! #     match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
//! #         Poll::Ready(output) => output,
//! #         Poll::Pending => unreachable!("the memory tier answers synchronously"),
//! #     }
//! # }
//! ```
//!
//! # Feature flags
//!
//! - `test-utils`: the [`conformance`] suite (a macro that expands to one test per check) for
//!   the test suites of tier crates, and of your own tiers. Pulls in `tokio`.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod clock;
pub mod codec;
mod error;
mod expiry;
mod key;
mod memory;
pub mod mrc;
pub mod pattern;
mod stats;
pub mod telemetry;
mod tier;

#[cfg(any(test, feature = "test-utils"))]
#[cfg_attr(docsrs, doc(cfg(feature = "test-utils")))]
pub mod conformance;

pub use bytes::Bytes;
pub use clock::{Clock, ManualClock};
pub use codec::{Codec, DecodeError, EncodeError};
pub use error::{BoxError, CacheError, check_key, check_ttl};
pub use expiry::{Expiry, MAX_TTL, Ttl, TtlProblem, validate_ttl};
pub use key::{KeyProblem, MAX_KEY_LEN, key_preview, validate_key};
pub use memory::{
    EvictionPolicy, LRU_ENTRY_OVERHEAD, MemoryCache, MemoryConfig, S3FIFO_ENTRY_OVERHEAD,
    TTL_ENTRY_OVERHEAD,
};
pub use pattern::{Pattern, PatternError, PatternProblem};
pub use stats::{TierStats, hit_ratio};
pub use tier::{BoxFuture, CacheEntry, CacheTier, TierHealth, TierResult, ready};
