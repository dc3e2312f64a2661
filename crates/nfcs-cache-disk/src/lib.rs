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
//!   miss, counted in `errors` (or in the [`RecoveryReport`]) and cleaned away. A damaged
//!   byte at rest costs only the record it is in: opening steps over the damaged record to the
//!   next one that checks, and deletes what the damaged record may have been for, so no older
//!   value or deleted key comes back.
//! - **Bounded size.** The segment files never take more than `max_bytes`; whole segments are
//!   evicted oldest first, and entries read since they were written are carried forward, an
//!   approximation of LRU. When the cache is full, a segment whose live records take less than
//!   [`DiskConfig::compaction_live_ratio`] of it is compacted (its live records rewritten,
//!   the segment freed) before live entries are evicted.
//! - **TTL.** Expiry is stored as absolute wall-clock time and holds across restarts. Every
//!   expiry decision, and every expiry written, reads the [`Clock`](nfcs_cache_core::Clock) of
//!   [`DiskConfig::clock`] (the system's by default), so tests make hours pass with a
//!   [`ManualClock`](nfcs_cache_core::ManualClock) instead of sleeping. A write with
//!   [`Ttl::Never`](nfcs_cache_core::Ttl::Never) never expires, whatever
//!   [`DiskConfig::default_ttl`] says; [`Ttl::Default`](nfcs_cache_core::Ttl::Default) (or
//!   `None`) takes the default.
//! - **Containment.** File names are slot numbers, never derived from keys: no key can make the
//!   tier touch a path outside its directory. Nor can a link in the directory: files are opened
//!   without following links (`O_NOFOLLOW`, `O_CREAT | O_EXCL` for new files, and a check that
//!   the file opened is the regular file that was looked at). A segment slot holding a link, a
//!   directory or another non-file is skipped at open (logged, counted in
//!   [`RecoveryReport::skipped_slots`], left alone); a lock file that is not a regular file is
//!   refused with [`DiskError::NotAFile`].
//! - **One owner.** A lock file (an exclusive `flock`) refuses a second opener of the same
//!   directory with [`DiskError::Locked`], after waiting up to 100 ms for it: a child process
//!   that another thread forked while the cache was open shares the lock until its `exec`, so
//!   a cache dropped and reopened at that instant would otherwise find its own lock taken.
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
//! # Metrics
//!
//! The tier resolves its [`metrics`](https://docs.rs/metrics) handles once, when it is opened,
//! with the recorder in effect then (see `nfcs_cache_core::telemetry`), and updates them as
//! things happen: `nfcs_cache_{hits,misses,inserts,evictions,expirations,errors}_total`, the
//! gauges `nfcs_cache_entries`, `nfcs_cache_bytes` (the record bytes of live entries, as in
//! `stats().bytes`) and `nfcs_cache_capacity_bytes`, and `nfcs_cache_operation_seconds` for
//! every get, set, delete, invalidate and clear. The labels are `cache` =
//! [`DiskConfig::instance`] ("default" unless set) and `tier` = [`DiskConfig::name`] ("disk");
//! [`DiskCache::labels`] says what they are (a pair already in use by another live cache gets a
//! numbered `cache` label). `stats()` is an exact snapshot and publishes nothing. The crate
//! installs no recorder.
//!
//! # Layout
//!
//! The directory holds `seg-00000.nfcs` ... (a fixed number of segment slots, each at most one
//! segment long) and a lock file. The engine is in the `store` module: `recovery` (open and
//! scan), `index` (the in-memory index), `eviction` (rotation and eviction), `files` (names,
//! the lock, opening without following links). Records are appended to the active segment; see the
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

pub use config::{CompressionCodec, DiskConfig, DiskError};
pub use store::RecoveryReport;
pub use tier::DiskCache;

impl From<DiskError> for nfcs_cache_core::CacheError {
    fn from(error: DiskError) -> nfcs_cache_core::CacheError {
        nfcs_cache_core::CacheError::backend("disk", "open", error)
    }
}
