//! The nfcs-perf disk tier: results that survive restarts and outgrow memory.
//!
//! `nfcs-cache-disk` provides [`DiskCache`], a cache in one directory that is crash safe,
//! checksummed, zstd-compressed, bounded in size, and honours TTLs. It implements
//! [`CacheTier`](nfcs_cache_core::CacheTier) and passes the core conformance suite;
//! `nfcs-performance` puts it under the memory tier.
//!
//! # What it guarantees
//!
//! - **Crash safety.** A process crash (even `SIGKILL` in the middle of a write) leaves every
//!   key with its old value, its new value, or no value; never damaged bytes and never another
//!   key's value. A deletion, once it returned, survives restarts. (Against power loss, set
//!   [`DiskConfig::sync_writes`].)
//! - **Integrity.** Every record carries its full key and an XXH3 checksum over everything,
//!   seeded per segment use; a flipped bit, a torn write, stale bytes or a foreign file is a
//!   miss, counted in `errors` (or in the [`RecoveryReport`]) and cleaned away.
//! - **Bounded size.** The segment files never take more than `max_bytes`; whole segments are
//!   evicted oldest first, and entries read since they were written are carried forward, an
//!   approximation of LRU.
//! - **TTL.** Expiry is stored as absolute wall-clock time and holds across restarts.
//! - **Containment.** File names are slot numbers, never derived from keys: no key can make the
//!   tier touch a path outside its directory.
//! - **One owner.** A lock file refuses a second opener of the same directory.
//! - **No blocking in async code.** The `CacheTier` methods run on tokio's blocking pool.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use nfcs_cache_disk::{DiskCache, DiskConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let directory = tempfile::tempdir()?;
//! let cache = DiskCache::open(directory.path(), DiskConfig::new(16 << 20))?;
//! cache.insert("cgl_128_a1", b"a large solver result", Some(Duration::from_secs(3600)))?;
//! assert_eq!(cache.get("cgl_128_a1")?.as_deref(), Some(&b"a large solver result"[..]));
//! drop(cache);
//!
//! // Everything is still there after reopening.
//! let cache = DiskCache::open(directory.path(), DiskConfig::new(16 << 20))?;
//! assert_eq!(cache.recovery_report().entries, 1);
//! assert!(cache.get("cgl_128_a1")?.is_some());
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! The directory holds `seg-00000.nfcs` ... (a fixed number of segment slots, each at most one
//! segment long) and a lock file. Records are appended to the active segment; see the
//! `format` module's source for the byte layout, and `docs/architecture.md` in the repository
//! for why the cache is log structured rather than a file per entry.
//!
//! # Feature flags
//!
//! None. Unix only (positional reads and writes).

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod format;
mod store;
mod tier;

pub use config::{DiskConfig, DiskError};
pub use store::RecoveryReport;
pub use tier::DiskCache;

impl From<DiskError> for nfcs_cache_core::CacheError {
    fn from(error: DiskError) -> nfcs_cache_core::CacheError {
        nfcs_cache_core::CacheError::backend("disk", "open", error)
    }
}
