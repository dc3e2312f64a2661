//! The nfcs-perf Redis tier: one cache shared by every node of a deployment.
//!
//! `nfcs-cache-redis` provides [`RedisCache`], a [`CacheTier`](nfcs_cache_core::CacheTier) on
//! the `redis` crate (tokio), for standalone Redis or (feature `cluster`) Redis Cluster. It
//! passes the core conformance suite against a real `redis-server`, and `nfcs-performance`
//! puts it under the memory and disk tiers.
//!
//! # What it provides
//!
//! - A pool of multiplexed connections that reconnect by themselves; URLs with user, password
//!   and database; TLS (`rediss://`) with the `tls` feature.
//! - One rule for the database: the URL's (`redis://host/3`) unless
//!   [`RedisConfig::db`] is set; both set and different is a configuration error naming `db`
//!   ([`RedisConfig::database`]). A database the server does not have is
//!   [`RedisError::NoSuchDatabase`] from [`RedisCache::connect`], and keeps a lazily started
//!   tier unavailable (its health names the database) while it retries.
//! - A key prefix (`nfcs:` by default): `clear` and `invalidate_pattern` touch only our keys,
//!   with `SCAN MATCH` looped to the end of the cursor and `UNLINK` in batches (never `KEYS`).
//! - TTLs with `PX`; the absolute expiry is also stored with the value, so one `GET` gives the
//!   remaining TTL. That expiry is written and checked on the configured
//!   [`Clock`](nfcs_cache_core::Clock) ([`RedisConfig::clock`]), so tests drive time with a
//!   [`ManualClock`](nfcs_cache_core::ManualClock) instead of sleeping; the server's own `PX`
//!   stays real time, and may drop an entry earlier than a driven clock says.
//! - Metrics through the `metrics` facade ([`nfcs_cache_core::telemetry`]): hits, misses,
//!   inserts, expirations and errors counted as they happen (batch calls per key), every
//!   operation timed, labelled `cache` = [`RedisConfig::instance`] and `tier` =
//!   [`RedisConfig::name`]; handles resolved once, at construction.
//! - Outage handling: a timeout on every command, a circuit breaker (its cool-down on the same
//!   clock), fast `Unavailable` errors, automatic recovery; [`RedisCache::connect_lazy`]
//!   starts while Redis is down.
//! - Cross-node coherence: writes and deletions are announced on a pub/sub channel, and
//!   [`RedisCache::invalidations`] yields what the other nodes changed
//!   ([`RedisCache::is_subscribed`] says whether the subscription is up). The queue of
//!   announcements is bounded ([`RedisConfig::announce_capacity`]) and a write never waits
//!   for it: what does not fit is counted ([`RedisCache::announcements_dropped`], the metric
//!   [`ANNOUNCEMENTS_DROPPED`]) and the other nodes are sent [`Invalidation::Resync`].
//! - Batch calls ([`RedisCache::get_many`], [`RedisCache::set_many`]): one round trip.
//! - `test_server` (feature `test-utils`): real `redis-server` processes, with extra arguments
//!   where a test needs them (`--databases 4`), and a three-master cluster, for tests, on free
//!   loopback ports, killed on drop.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use nfcs_cache_core::ManualClock;
//! use nfcs_cache_redis::{RedisCache, RedisConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let Some(server) = nfcs_cache_redis::test_server::RedisServer::start_or_skip("doctest") else { return Ok(()) };
//! # let url = server.url();
//! // url: "redis://127.0.0.1:6379", say.
//! let cache = RedisCache::connect(RedisConfig::new(url.clone()).key_prefix("myapp:")).await?;
//! cache.set("cgl_128_a1", b"solver result", Some(Duration::from_secs(3600))).await?;
//! let entry = cache.get_entry("cgl_128_a1").await?.expect("just written");
//! assert_eq!(&entry.value[..], b"solver result");
//! assert!(entry.ttl.expect("it has a TTL") <= Duration::from_secs(3600));
//!
//! // A test drives time instead of sleeping: the tier reads expiry from the clock it was given.
//! let manual = ManualClock::new();
//! let cache = RedisCache::connect(RedisConfig::new(url).clock(manual.clock())).await?;
//! cache.set("session", b"token", Duration::from_secs(60)).await?;
//! manual.advance(Duration::from_secs(60));
//! assert_eq!(cache.get("session").await?, None, "expired after exactly 60 s");
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! - `tls`: `rediss://` URLs (rustls, with the webpki root certificates).
//! - `cluster`: Redis Cluster ([`RedisConfig::cluster`]).
//! - `test-utils`: the [`test_server`] module, and `RedisCache::hold_announcements`, which
//!   stops a node's announcer so that a test can fill its queue.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod breaker;
mod cache;
mod config;
mod connection;
mod invalidation;

#[cfg(any(test, feature = "test-utils"))]
#[cfg_attr(docsrs, doc(cfg(feature = "test-utils")))]
pub mod test_server;

#[cfg(feature = "test-utils")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-utils")))]
pub use cache::AnnouncementHold;
pub use cache::{ANNOUNCEMENTS_DROPPED, RedisCache};
pub use config::{
    DEFAULT_ANNOUNCE_CAPACITY, MAX_ANNOUNCE_CAPACITY, RedisConfig, RedisError, redact,
};
pub use invalidation::Invalidation;

impl From<RedisError> for nfcs_cache_core::CacheError {
    fn from(error: RedisError) -> nfcs_cache_core::CacheError {
        nfcs_cache_core::CacheError::backend("redis", "connect", error)
    }
}
