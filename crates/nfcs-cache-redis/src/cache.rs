//! `RedisCache`: the tier, its background tasks, and its `CacheTier` implementation.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use nfcs_cache_core::telemetry::{self, InstanceLabels, Operation, TierMetrics};
use nfcs_cache_core::{
    CacheEntry, CacheError, CacheTier, Clock, Expiry, Pattern, TierHealth, TierResult, TierStats,
    Ttl, check_key, check_ttl, ready,
};
use parking_lot::Mutex;
use redis::RedisResult;
use tokio::sync::{Notify, broadcast, watch};

use crate::breaker::{Admission, Breaker};
use crate::config::{RedisConfig, RedisError, redact};
use crate::connection::{Backend, Conn};
use crate::invalidation::{self, Invalidation};

/// Version tag of the value framing: `[1][expiry: u64 LE Unix ms, 0 = none][value]`. The
/// expiry inside the value gives a read its remaining TTL without a second command, and it is
/// what decides expiry for the tier: it is written and checked on the configured clock.
const FRAME_VERSION: u8 = 1;
const FRAME_HEADER: usize = 9;
/// Keys removed per transaction (their frame headers read, then one `UNLINK`).
const UNLINK_BATCH: usize = 500;
/// Keys announced per invalidation message, at most.
const ANNOUNCE_BATCH: usize = 4096;
/// How long the announcer waits for more keys before publishing.
const ANNOUNCE_LINGER: Duration = Duration::from_millis(1);
/// How often the invalidation subscription's connection is checked with a `PING`. A network
/// partition closes nothing (no FIN, no RST): without the check, a connection that no longer
/// delivers anything would be trusted until TCP gives up on it (minutes), and the messages it
/// missed would arrive, if at all, only when the server's TCP retransmits after the heal.
const SUBSCRIPTION_PING: Duration = Duration::from_secs(1);
/// How long the announcer waits after a failed publication before it tries again; the wait
/// doubles with each failure in a row, up to [`ANNOUNCE_RETRY_MAX`].
const ANNOUNCE_RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest wait between two failed publications.
const ANNOUNCE_RETRY_MAX: Duration = Duration::from_secs(5);

/// Counter (labels `cache`, `tier`): announcements to the other nodes that were dropped,
/// because the queue of announcements was full
/// ([`RedisConfig::announce_capacity`](crate::RedisConfig::announce_capacity)) or the message
/// could not be published: one per key, pattern or clear. Each drop is followed by an
/// announced [`Invalidation::Resync`].
pub const ANNOUNCEMENTS_DROPPED: &str = "nfcs_cache_announcements_dropped_total";

/// The tier's counters, kept twice: exact atomics for [`stats`](RedisCache::stats), and the
/// metric handles (resolved once, at construction) that a scrape reads at any time. Every
/// count goes through these methods, so the two never disagree.
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    inserts: AtomicU64,
    expirations: AtomicU64,
    errors: AtomicU64,
    announcements_dropped: AtomicU64,
    metrics: TierMetrics,
    /// [`ANNOUNCEMENTS_DROPPED`], under the same labels as `metrics`.
    dropped_metric: metrics::Counter,
}

impl Counters {
    fn new(metrics: TierMetrics) -> Counters {
        metrics::describe_counter!(
            ANNOUNCEMENTS_DROPPED,
            metrics::Unit::Count,
            "Announcements to the other nodes dropped (queue full or publication failed); each is followed by a resync."
        );
        let dropped_metric = metrics::counter!(ANNOUNCEMENTS_DROPPED, &metrics.labels().pairs());
        Counters {
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            inserts: AtomicU64::new(0),
            expirations: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            announcements_dropped: AtomicU64::new(0),
            metrics,
            dropped_metric,
        }
    }

    fn hits(&self, count: u64) {
        if count > 0 {
            self.hits.fetch_add(count, Ordering::Relaxed);
            self.metrics.hits(count);
        }
    }

    fn misses(&self, count: u64) {
        if count > 0 {
            self.misses.fetch_add(count, Ordering::Relaxed);
            self.metrics.misses(count);
        }
    }

    fn inserts(&self, count: u64) {
        if count > 0 {
            self.inserts.fetch_add(count, Ordering::Relaxed);
            self.metrics.inserts(count);
        }
    }

    fn expiration(&self) {
        self.expirations.fetch_add(1, Ordering::Relaxed);
        self.metrics.expirations(1);
    }

    fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.metrics.errors(1);
    }

    fn announcements_dropped(&self, count: u64) {
        if count > 0 {
            self.announcements_dropped
                .fetch_add(count, Ordering::Relaxed);
            self.dropped_metric.increment(count);
        }
    }
}

/// What the writers and the announcer share: the queue of announcements, whether a
/// resynchronisation is owed to the other nodes, and the announcer's wake-up (for a queue that
/// was empty, or for a resynchronisation: a writer that found the queue full has nothing to
/// put in it).
struct AnnounceSignals {
    /// This node's id, the first field of every message.
    node_id: u64,
    /// At most this many keys wait in `pending`.
    capacity: usize,
    pending: Mutex<Pending>,
    resync: AtomicBool,
    wake: Notify,
    /// Where a test holds the announcer ([`RedisCache::hold_announcements`]).
    #[cfg(feature = "test-utils")]
    hold: watch::Sender<Hold>,
}

/// The announcer's state as a test sees it.
#[cfg(feature = "test-utils")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Running.
    Off,
    /// A test asked it to stop before it takes the next announcement.
    Requested,
    /// Stopped, holding nothing.
    Parked,
}

/// Keys waiting to be announced, already in the wire form of their messages
/// ([`invalidation::keys_message`] and [`invalidation::push_key`]), at most [`ANNOUNCE_BATCH`]
/// keys a message: a writer appends its key's bytes to the last message, and the announcer
/// publishes each message as it is, without a copy per key or an allocation per write.
struct Pending {
    /// Each message with the number of keys in it.
    messages: VecDeque<(Vec<u8>, usize)>,
    /// Keys in all of `messages`.
    keys: usize,
}

impl AnnounceSignals {
    fn new(node_id: u64, capacity: usize) -> AnnounceSignals {
        AnnounceSignals {
            node_id,
            capacity,
            pending: Mutex::new(Pending {
                messages: VecDeque::new(),
                keys: 0,
            }),
            resync: AtomicBool::new(false),
            wake: Notify::new(),
            #[cfg(feature = "test-utils")]
            hold: watch::channel(Hold::Off).0,
        }
    }

    /// Queues `keys` for announcement, never waiting, in one lock for all of them; returns how
    /// many found the queue full (they are not queued). Wakes the announcer when the queue
    /// was empty (otherwise it has been woken already, and takes everything queued).
    fn push<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> u64 {
        let mut dropped = 0_u64;
        let was_empty = {
            let mut guard = self.pending.lock();
            let pending = &mut *guard;
            let was_empty = pending.keys == 0;
            for key in keys {
                if pending.keys >= self.capacity {
                    dropped += 1;
                    continue;
                }
                if pending
                    .messages
                    .back()
                    .is_none_or(|(_, count)| *count >= ANNOUNCE_BATCH)
                {
                    pending
                        .messages
                        .push_back((invalidation::keys_message(self.node_id), 0));
                }
                if let Some((message, count)) = pending.messages.back_mut() {
                    invalidation::push_key(message, key);
                    *count += 1;
                    pending.keys += 1;
                }
            }
            was_empty && pending.keys > 0
        };
        if was_empty {
            self.wake.notify_one();
        }
        dropped
    }

    fn queue_is_empty(&self) -> bool {
        self.pending.lock().keys == 0
    }

    /// The oldest queued message and the number of keys in it.
    fn take_message(&self) -> Option<(Vec<u8>, usize)> {
        let mut pending = self.pending.lock();
        let (message, count) = pending.messages.pop_front()?;
        pending.keys -= count;
        Some((message, count))
    }

    /// Empties the queue (a resynchronisation about to be published covers every key in it:
    /// each was queued after its write had completed).
    fn discard_queued(&self) {
        let mut pending = self.pending.lock();
        pending.messages.clear();
        pending.keys = 0;
    }

    /// Some announcement was lost: the other nodes must resynchronise.
    fn request_resync(&self) {
        self.resync.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    fn resync_pending(&self) -> bool {
        self.resync.load(Ordering::Acquire)
    }

    /// Whether a resynchronisation was owed; it is not any more.
    fn take_resync(&self) -> bool {
        self.resync.swap(false, Ordering::AcqRel)
    }

    /// Parks the announcer while a test holds it.
    async fn wait_while_held(&self) {
        #[cfg(feature = "test-utils")]
        {
            self.hold.send_if_modified(|hold| {
                let requested = *hold == Hold::Requested;
                if requested {
                    *hold = Hold::Parked;
                }
                requested
            });
            let mut hold = self.hold.subscribe();
            // The sender lives in `self`: this returns only once the hold is released.
            let _ = hold.wait_for(|hold| *hold == Hold::Off).await;
        }
    }

    /// Completes when a test asks the announcer to stop (never without `test-utils`).
    async fn hold_requested(&self) {
        #[cfg(feature = "test-utils")]
        {
            let mut hold = self.hold.subscribe();
            let _ = hold.wait_for(|hold| *hold == Hold::Requested).await;
        }
        #[cfg(not(feature = "test-utils"))]
        std::future::pending::<()>().await;
    }
}

/// The announcer held by a test (see [`RedisCache::hold_announcements`]); it resumes when this
/// is dropped.
#[cfg(feature = "test-utils")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-utils")))]
#[must_use = "the announcer resumes when the hold is dropped"]
pub struct AnnouncementHold {
    signals: Arc<AnnounceSignals>,
}

#[cfg(feature = "test-utils")]
impl Drop for AnnouncementHold {
    fn drop(&mut self) {
        self.signals.hold.send_replace(Hold::Off);
    }
}

#[cfg(feature = "test-utils")]
impl std::fmt::Debug for AnnouncementHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnnouncementHold").finish_non_exhaustive()
    }
}

struct Shared {
    config: RedisConfig,
    /// The key prefix with glob characters escaped, for `SCAN MATCH`.
    scan_prefix: String,
    channel: String,
    node_id: u64,
    /// Set once, when the first connection succeeds (the connections then reconnect by
    /// themselves); read on every command without a lock.
    backend: OnceLock<Arc<Backend>>,
    /// Why connecting has failed so far (while `backend` is unset).
    last_error: Mutex<Option<String>>,
    breaker: Breaker,
    counters: Counters,
    /// Whether the invalidation subscription is established now.
    subscribed: AtomicBool,
    invalidations: broadcast::Sender<Invalidation>,
    signals: Arc<AnnounceSignals>,
    /// Dropped with the last handle: tells the background tasks to stop.
    _shutdown: watch::Sender<()>,
}

/// The Redis tier: a cache shared by every node that points at the same Redis (or Redis
/// Cluster), under a key prefix.
///
/// - **Connections**: `max_connections` multiplexed connections (redis-rs connection managers,
///   which reconnect by themselves), or one cluster connection (feature `cluster`).
/// - **Outages**: every command has a timeout (250 ms by default); after 5 consecutive
///   failures a circuit breaker skips Redis for a second, then lets one command probe it.
///   Errors are `CacheError::Unavailable` or `CacheError::Backend` at once, never a hang.
/// - **Values** are stored as `[1][expiry][bytes]` with `SET ... PX`, so one `GET` returns the
///   value and its remaining TTL. The expiry in the frame is taken on the configured
///   [`Clock`] and checked on it when read, so a test that drives the clock sees entries
///   expire exactly when it says; the server's `PX` runs in real time and may drop an entry
///   earlier (see [`RedisConfig::clock`]).
/// - **Metrics**: hits, misses, inserts, expirations and errors are counted as they happen
///   (batch calls count each key) and every operation is timed, under the labels
///   `cache` = [`RedisConfig::instance`], `tier` = [`RedisConfig::name`]; see
///   [`nfcs_cache_core::telemetry`].
/// - **Invalidation** uses `SCAN MATCH` (every primary of a cluster) and `UNLINK` in batches,
///   touching only keys under the prefix.
/// - **Coherence**: writes, deletions, pattern invalidations and clears are announced on a
///   pub/sub channel; [`invalidations`](RedisCache::invalidations) yields what the other nodes
///   changed, so that a multi-tier cache can drop its local copies. Announcements wait in a
///   queue of [`RedisConfig::announce_capacity`] keys; a write never waits for room in it: a
///   key that finds it full is dropped, counted
///   ([`announcements_dropped`](RedisCache::announcements_dropped)), and followed by an
///   [`Invalidation::Resync`] that tells the other nodes to drop every local copy (so does a
///   publication that fails).
///
/// Cloning is cheap; clones share the connections and the background tasks, which stop when
/// the last clone is dropped.
#[derive(Clone)]
pub struct RedisCache {
    shared: Arc<Shared>,
}

impl RedisCache {
    /// Connects now; fails if Redis cannot be reached or refuses us.
    ///
    /// The tier's metric handles are resolved here, with the recorder in effect for this call.
    ///
    /// # Errors
    /// [`RedisError::InvalidConfig`] for settings that cannot work (naming the field, for
    /// example `db` when it disagrees with the URL's database), [`RedisError::NoSuchDatabase`]
    /// when the server has no such database, [`RedisError::Connect`] for a refused or
    /// unreachable server, a wrong password, or a peer that does not speak Redis,
    /// [`RedisError::ConnectTimeout`] when it does not answer in time.
    pub async fn connect(config: RedisConfig) -> Result<RedisCache, RedisError> {
        config.validate()?;
        let backend = Backend::connect(&config).await?;
        let cache = RedisCache::build(config, Some(backend));
        if cache.shared.config.cross_node_invalidation {
            cache.start_subscriber();
        }
        Ok(cache)
    }

    /// Returns at once and connects in the background, retrying with back-off until Redis
    /// answers. Until then (and whenever it is down) every command fails fast with
    /// `CacheError::Unavailable`, and [`health`](CacheTier::health) says why: the last
    /// connection error, for example that the server has no database 7. This is how a service
    /// starts while Redis is still down. The metric handles are resolved in this call, so a
    /// recorder installed around it (or before it) receives the tier's metrics.
    ///
    /// # Errors
    /// [`RedisError::InvalidConfig`] for settings that cannot work, or when called outside a
    /// tokio runtime.
    pub fn connect_lazy(config: RedisConfig) -> Result<RedisCache, RedisError> {
        config.validate()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(RedisError::InvalidConfig {
                field: "runtime",
                reason: "connect_lazy must be called inside a tokio runtime".into(),
            });
        }
        let cache = RedisCache::build(config, None);
        let weak = Arc::downgrade(&cache.shared);
        let shutdown = cache.shared._shutdown.subscribe();
        tokio::spawn(connect_in_background(weak, shutdown));
        Ok(cache)
    }

    fn build(config: RedisConfig, backend: Option<Backend>) -> RedisCache {
        let node_id = random_node_id();
        // Validation keeps the capacity from 1 to MAX_ANNOUNCE_CAPACITY.
        let signals = Arc::new(AnnounceSignals::new(
            node_id,
            config.announce_capacity.max(1),
        ));
        let (shutdown, _) = watch::channel(());
        let scan_prefix = escape_glob(&config.key_prefix);
        let channel = format!("{}invalidations", config.key_prefix);
        let breaker = Breaker::new(
            config.breaker_threshold,
            config.breaker_cooldown,
            config.clock.clone(),
        );
        let metrics = TierMetrics::new(InstanceLabels::new(
            config.instance.clone(),
            config.name.clone(),
        ));
        let connected = OnceLock::new();
        if let Some(backend) = backend {
            let _ = connected.set(Arc::new(backend));
        }
        let shared = Arc::new(Shared {
            scan_prefix,
            channel,
            node_id,
            backend: connected,
            last_error: Mutex::new(None),
            breaker,
            counters: Counters::new(metrics),
            subscribed: AtomicBool::new(false),
            invalidations: broadcast::channel(1024).0,
            signals: Arc::clone(&signals),
            _shutdown: shutdown,
            config,
        });
        if shared.config.cross_node_invalidation {
            tokio::spawn(announce_in_background(
                Arc::downgrade(&shared),
                signals,
                shared._shutdown.subscribe(),
            ));
        }
        RedisCache { shared }
    }

    fn start_subscriber(&self) {
        let weak = Arc::downgrade(&self.shared);
        let shutdown = self.shared._shutdown.subscribe();
        tokio::spawn(subscribe_in_background(weak, shutdown));
    }

    /// This node's id in invalidation messages.
    pub fn node_id(&self) -> u64 {
        self.shared.node_id
    }

    /// Whether a connection is established (it may still be failing; see
    /// [`health`](CacheTier::health)).
    pub fn is_connected(&self) -> bool {
        self.shared.backend.get().is_some()
    }

    /// Whether the subscription to the other nodes' invalidations is established now: once it
    /// is, every change another node announces afterwards reaches
    /// [`invalidations`](RedisCache::invalidations). `false` before the first subscription
    /// (it is made in the background after connecting), while it is being re-made after a lost
    /// connection (closed, or silent: a `PING` each second unanswered within `connect_timeout +
    /// command_timeout`, as on a network partition), and always when `cross_node_invalidation`
    /// is off.
    pub fn is_subscribed(&self) -> bool {
        self.shared.subscribed.load(Ordering::Acquire)
    }

    /// The labels this tier reports its metrics under (`cache`, `tier`; a pair already used by
    /// another live cache gets a suffix, see [`nfcs_cache_core::telemetry`]).
    pub fn labels(&self) -> &InstanceLabels {
        self.shared.counters.metrics.labels()
    }

    /// The clock expiry and the breaker's cool-down are measured on.
    pub fn clock(&self) -> &Clock {
        &self.shared.config.clock
    }

    /// What the other nodes changed, as they announce it. A receiver that falls behind gets
    /// `RecvError::Lagged`, which means the same as [`Invalidation::Resync`].
    pub fn invalidations(&self) -> broadcast::Receiver<Invalidation> {
        self.shared.invalidations.subscribe()
    }

    /// Times the circuit breaker has opened.
    pub fn breaker_openings(&self) -> u64 {
        self.shared.breaker.times_opened()
    }

    /// Announcements to the other nodes dropped so far: keys that found the queue of
    /// announcements full ([`RedisConfig::announce_capacity`]), keys, patterns and clears whose
    /// message could not be published. Each drop is followed by an [`Invalidation::Resync`]
    /// announced as soon as Redis takes it. Also the metric [`ANNOUNCEMENTS_DROPPED`].
    pub fn announcements_dropped(&self) -> u64 {
        self.shared
            .counters
            .announcements_dropped
            .load(Ordering::Relaxed)
    }

    /// Stops this node's announcer before it takes its next announcement, and returns once it
    /// has stopped, holding nothing; it resumes when the hold is dropped. Writes go on
    /// meanwhile, so a test fills the queue deterministically: exactly
    /// [`announce_capacity`](RedisConfig::announce_capacity) announcements wait, and every
    /// further one is dropped. Returns at once when `cross_node_invalidation` is off (there is
    /// no announcer).
    #[cfg(feature = "test-utils")]
    #[cfg_attr(docsrs, doc(cfg(feature = "test-utils")))]
    pub async fn hold_announcements(&self) -> AnnouncementHold {
        let signals = Arc::clone(&self.shared.signals);
        if self.shared.config.cross_node_invalidation {
            signals.hold.send_replace(Hold::Requested);
            let mut hold = signals.hold.subscribe();
            // The sender lives in `signals`, which this function holds.
            let _ = hold.wait_for(|hold| *hold == Hold::Parked).await;
        }
        AnnouncementHold { signals }
    }

    /// Reads `key`: `Ok(None)` on a miss.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`]; [`CacheError::Unavailable`] or [`CacheError::Backend`]
    /// when Redis cannot answer.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        Ok(self.get_entry(key).await?.map(|entry| entry.value))
    }

    /// Reads `key` with its remaining TTL.
    ///
    /// # Errors
    /// As [`get`](RedisCache::get).
    pub async fn get_entry(&self, key: &str) -> Result<Option<CacheEntry>, CacheError> {
        get_entry(Arc::clone(&self.shared), key).await
    }

    /// Writes `value` under `key`, to live as `ttl` says (a [`Duration`], `None` or
    /// [`Ttl::Default`] for the default TTL, [`Ttl::Never`]).
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`], [`CacheError::InvalidTtl`], or the connection's error.
    pub async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: impl Into<Ttl>,
    ) -> Result<(), CacheError> {
        set(Arc::clone(&self.shared), key, value, ttl.into()).await
    }

    /// Removes `key`; `true` when it was there.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`], or the connection's error.
    pub async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        delete(Arc::clone(&self.shared), key).await
    }

    /// Removes every key under the prefix that matches `pattern`; returns how many.
    ///
    /// # Errors
    /// The connection's error (keys removed before it stay removed).
    pub async fn invalidate_pattern(&self, pattern: &Pattern) -> Result<u64, CacheError> {
        invalidate(Arc::clone(&self.shared), Some(pattern.clone())).await
    }

    /// Removes every key under the prefix; returns how many.
    ///
    /// # Errors
    /// The connection's error.
    pub async fn clear(&self) -> Result<u64, CacheError> {
        invalidate(Arc::clone(&self.shared), None).await
    }

    /// Reads many keys in one round trip (`MGET`; split by slot on a cluster). Each key counts
    /// as a hit or a miss; the call is timed as one `get` operation.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`] for any bad key, or the connection's error.
    pub async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        let shared = &self.shared;
        for key in keys {
            check_key(key)?;
        }
        let timer = shared.counters.metrics.start(Operation::Get);
        let result = get_many(shared, keys).await;
        telemetry::finish(timer);
        result
    }

    /// Writes many entries with one TTL in one round trip (a pipeline; concurrent commands on a
    /// cluster). Each entry counts as an insert; the call is timed as one `set` operation.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`], [`CacheError::InvalidTtl`], or the connection's error.
    pub async fn set_many(
        &self,
        entries: &[(&str, &[u8])],
        ttl: impl Into<Ttl>,
    ) -> Result<(), CacheError> {
        let shared = &self.shared;
        let ttl = check_ttl(ttl)?.resolve(shared.config.default_ttl);
        for (key, _) in entries {
            check_key(key)?;
        }
        let timer = shared.counters.metrics.start(Operation::Set);
        let result = set_many(shared, entries, ttl).await;
        telemetry::finish(timer);
        result
    }

    /// Counters (`entries`, `bytes` and `capacity_bytes` are 0: the server holds them).
    pub fn stats(&self) -> TierStats {
        stats(&self.shared)
    }
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field(
                "urls",
                &self
                    .shared
                    .config
                    .urls
                    .iter()
                    .map(|url| redact(url))
                    .collect::<Vec<_>>(),
            )
            .field("key_prefix", &self.shared.config.key_prefix)
            .field("connected", &self.is_connected())
            .finish()
    }
}

fn random_node_id() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now())
}

/// `text` with Redis glob characters escaped.
fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn current_backend(shared: &Shared) -> Option<Arc<Backend>> {
    shared.backend.get().cloned()
}

fn not_connected(shared: &Shared) -> String {
    match &*shared.last_error.lock() {
        Some(error) => format!("not connected: {error}"),
        None => "not connected yet".to_owned(),
    }
}

async fn get_many(shared: &Shared, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
    let prefix = &shared.config.key_prefix;
    // The command's buffer sized once: "MGET", then each key with the prefix (no string per
    // key, no growth while writing).
    let size = 4 + keys
        .iter()
        .map(|key| prefix.len() + key.len())
        .sum::<usize>();
    let mut command = redis::Cmd::with_capacity(keys.len() + 1, size);
    command.arg("MGET");
    for key in keys {
        command.arg(Prefixed { prefix, key });
    }
    let replies: Vec<Option<Vec<u8>>> =
        run(shared, "read entries", move |mut connection| async move {
            command.query_async(&mut connection).await
        })
        .await?;
    // One reading of the clock for the whole batch: every key is judged at the same instant.
    let now = shared.config.clock.now();
    let values: Vec<Option<Bytes>> = replies
        .into_iter()
        .map(|reply| {
            reply
                .and_then(|stored| unframe(shared, stored, now))
                .map(|entry| entry.value)
        })
        .collect();
    let hits = values.iter().filter(|value| value.is_some()).count() as u64;
    shared.counters.hits(hits);
    shared.counters.misses(values.len() as u64 - hits);
    Ok(values)
}

async fn set_many(
    shared: &Shared,
    entries: &[(&str, &[u8])],
    ttl: Option<Duration>,
) -> Result<(), CacheError> {
    let now = shared.config.clock.now();
    let commands = entries
        .iter()
        .map(|(key, value)| set_command(shared, key, value, ttl, now));
    if current_backend(shared).is_some_and(|backend| backend.is_cluster()) {
        // A cluster pipeline cannot span slots: the writes go concurrently instead.
        let commands: Vec<redis::Cmd> = commands.collect();
        run(shared, "write entries", move |connection| async move {
            let writes = commands.iter().map(|command| {
                let mut connection = connection.clone();
                async move { command.query_async::<()>(&mut connection).await }
            });
            futures_util::future::try_join_all(writes).await.map(|_| ())
        })
        .await?;
    } else {
        let mut pipeline = redis::pipe();
        for command in commands {
            pipeline.add_command(command).ignore();
        }
        run(shared, "write entries", move |mut connection| async move {
            pipeline.query_async::<()>(&mut connection).await
        })
        .await?;
    }
    shared.counters.inserts(entries.len() as u64);
    announce(shared, entries.iter().map(|(key, _)| *key));
    Ok(())
}

fn is_connection_problem(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_unrecoverable_error()
}

/// Runs one command (or pipeline) with the timeout and the circuit breaker.
async fn run<T, F, Fut>(
    shared: &Shared,
    operation: &'static str,
    command: F,
) -> Result<T, CacheError>
where
    F: FnOnce(Conn) -> Fut,
    Fut: Future<Output = RedisResult<T>>,
{
    let name = &shared.config.name;
    let Some(backend) = shared.backend.get() else {
        // A refused operation failed as surely as one that reached a dead server: it is
        // counted, so a scrape shows errors rising for as long as the outage lasts.
        shared.counters.error();
        return Err(CacheError::Unavailable {
            tier: name.clone(),
            reason: not_connected(shared),
        });
    };
    let probe = match shared.breaker.admit() {
        Admission::Allowed => false,
        Admission::Probe => true,
        Admission::Refused(left) => {
            shared.counters.error();
            return Err(CacheError::Unavailable {
                tier: name.clone(),
                reason: format!(
                    "circuit breaker open after repeated failures (probing again in {} ms)",
                    left.as_millis()
                ),
            });
        }
    };
    // The connection enforces `command_timeout` on every request (redis-rs's response
    // timeout), so no timer of our own is needed here; a timed-out request comes back as an
    // error that `is_timeout` recognises.
    match command(backend.conn()).await {
        Ok(value) => {
            shared.breaker.success(probe);
            Ok(value)
        }
        Err(error) => {
            if is_connection_problem(&error) {
                shared.breaker.failure();
            } else if probe {
                // The server answered (with an error about the command): it is up.
                shared.breaker.success(true);
            }
            shared.counters.error();
            Err(CacheError::backend(name, operation, error))
        }
    }
}

/// Parses a stored frame as seen at `now` (the configured clock's time); `None` (counted) for
/// an expired or malformed one.
fn unframe(shared: &Shared, stored: Vec<u8>, now: SystemTime) -> Option<CacheEntry> {
    if stored.len() < FRAME_HEADER || stored[0] != FRAME_VERSION {
        shared.counters.error();
        tracing::warn!(
            "redis tier: a value under the prefix is not ours (no frame header); treated as a miss"
        );
        return None;
    }
    let mut expiry = [0_u8; 8];
    expiry.copy_from_slice(&stored[1..FRAME_HEADER]);
    let expiry = u64::from_le_bytes(expiry);
    let ttl = if expiry == 0 {
        None
    } else {
        match Expiry::from_unix_millis(expiry).remaining_at(now) {
            Some(left) => Some(left),
            None => {
                shared.counters.expiration();
                return None;
            }
        }
    };
    // `advance` moves the start past the header in place; `slice` would make the buffer
    // shared (an allocation and a reference count per value).
    let mut value = Bytes::from(stored);
    bytes::Buf::advance(&mut value, FRAME_HEADER);
    Some(CacheEntry::new(value, ttl))
}

/// A stored value: the frame header and the value, written into the command as one argument
/// without an intermediate copy.
struct Framed<'a> {
    expiry: u64,
    value: &'a [u8],
}

impl redis::ToRedisArgs for Framed<'_> {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        use std::io::Write as _;
        let mut writer = out.writer_for_next_arg();
        // Writing into the command's own buffer cannot fail.
        let _ = writer.write_all(&[FRAME_VERSION]);
        let _ = writer.write_all(&self.expiry.to_le_bytes());
        let _ = writer.write_all(self.value);
    }
}

/// A key with the prefix, written into the command without an intermediate string.
struct Prefixed<'a> {
    prefix: &'a str,
    key: &'a str,
}

impl redis::ToRedisArgs for Prefixed<'_> {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        use std::io::Write as _;
        let mut writer = out.writer_for_next_arg();
        let _ = writer.write_all(self.prefix.as_bytes());
        let _ = writer.write_all(self.key.as_bytes());
    }
}

/// Whether a frame header (the first [`FRAME_HEADER`] bytes of a stored value, as `GETRANGE`
/// returns them) is one of ours whose expiry has passed at `now`. A value that is not ours
/// (another program's, or of another type) is never "expired": removing it counts.
fn header_expired(header: &[u8], now: SystemTime) -> bool {
    let Some(expiry) = header
        .get(1..FRAME_HEADER)
        .filter(|_| header.first() == Some(&FRAME_VERSION))
        .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
        .map(u64::from_le_bytes)
    else {
        return false;
    };
    expiry != 0 && Expiry::from_unix_millis(expiry).remaining_at(now).is_none()
}

/// `SET <prefix><key> <frame> [PX ttl]`, the frame's expiry `ttl` after `now` (the configured
/// clock's time). `PX` is the same duration in the server's real time.
fn set_command(
    shared: &Shared,
    key: &str,
    value: &[u8],
    ttl: Option<Duration>,
    now: SystemTime,
) -> redis::Cmd {
    let expiry = ttl.map_or(0, |ttl| Expiry::after_at(ttl, now).as_unix_millis());
    let prefix = &shared.config.key_prefix;
    // The command's buffer sized once for its arguments ("SET", the key, the frame, "PX" and
    // up to 20 digits): growing it while the value is written would copy the value again.
    let size = 3 + prefix.len() + key.len() + FRAME_HEADER + value.len() + 2 + 20;
    let mut command = redis::Cmd::with_capacity(5, size);
    command
        .arg("SET")
        .arg(Prefixed { prefix, key })
        .arg(Framed { expiry, value });
    if let Some(ttl) = ttl {
        let millis = u64::try_from(ttl.as_nanos().div_ceil(1_000_000))
            .unwrap_or(u64::MAX)
            .max(1);
        command.arg("PX").arg(millis);
    }
    command
}

/// Queues the announcement of `keys` (one lock for all of them), never waiting: waiting for
/// room would hold this write behind the announcer, and behind Redis if that is what stalls
/// it. A key that finds the queue full is counted as dropped, and the other nodes are told to
/// resynchronise instead.
fn announce<'a>(shared: &Shared, keys: impl IntoIterator<Item = &'a str>) {
    if !shared.config.cross_node_invalidation {
        return;
    }
    let dropped = shared.signals.push(keys);
    if dropped > 0 {
        shared.counters.announcements_dropped(dropped);
        shared.signals.request_resync();
    }
}

async fn get_entry(shared: Arc<Shared>, key: &str) -> Result<Option<CacheEntry>, CacheError> {
    check_key(key)?;
    let timer = shared.counters.metrics.start(Operation::Get);
    let result = get_entry_untimed(&shared, key).await;
    telemetry::finish(timer);
    result
}

async fn get_entry_untimed(shared: &Shared, key: &str) -> Result<Option<CacheEntry>, CacheError> {
    let prefix = &shared.config.key_prefix;
    let mut command = redis::Cmd::with_capacity(2, 3 + prefix.len() + key.len());
    command.arg("GET").arg(Prefixed { prefix, key });
    let reply: Option<Vec<u8>> = run(shared, "read an entry", move |mut connection| async move {
        command.query_async(&mut connection).await
    })
    .await?;
    let entry = reply.and_then(|stored| unframe(shared, stored, shared.config.clock.now()));
    if entry.is_some() {
        shared.counters.hits(1);
    } else {
        shared.counters.misses(1);
    }
    Ok(entry)
}

async fn set(shared: Arc<Shared>, key: &str, value: &[u8], ttl: Ttl) -> Result<(), CacheError> {
    check_key(key)?;
    let ttl = check_ttl(ttl)?.resolve(shared.config.default_ttl);
    let timer = shared.counters.metrics.start(Operation::Set);
    let command = set_command(&shared, key, value, ttl, shared.config.clock.now());
    let result = run(
        &shared,
        "write an entry",
        move |mut connection| async move { command.query_async::<()>(&mut connection).await },
    )
    .await;
    telemetry::finish(timer);
    result?;
    shared.counters.inserts(1);
    announce(&shared, [key]);
    Ok(())
}

async fn delete(shared: Arc<Shared>, key: &str) -> Result<bool, CacheError> {
    check_key(key)?;
    let timer = shared.counters.metrics.start(Operation::Delete);
    let full = format!("{}{key}", shared.config.key_prefix).into_bytes();
    let result = unlink_live(&shared, vec![full]).await;
    telemetry::finish(timer);
    let removed = result?;
    announce(&shared, [key]);
    Ok(removed > 0)
}

/// Removes `keys` (full names, prefix included) and returns how many of them held an entry
/// that was live by the configured clock. On a driven clock the server may still hold entries
/// the clock has expired; they are removed too, but not counted, so that counts agree with
/// what reads return. Each key's frame header is read in the same transaction (`MULTI` ...
/// `GETRANGE key 0 8` ... `UNLINK` ... `EXEC`) that removes it, so no other client's write can
/// fall between the look and the removal.
async fn unlink_live(shared: &Shared, keys: Vec<Vec<u8>>) -> Result<u64, CacheError> {
    let now = shared.config.clock.now();
    let header_end = FRAME_HEADER as i64 - 1;
    if current_backend(shared).is_some_and(|backend| backend.is_cluster()) {
        // A transaction cannot span slots: one small transaction per key, all concurrently.
        return run(shared, "unlink keys", move |connection| async move {
            let removals = keys.iter().map(|key| {
                let mut connection = connection.clone();
                let mut transaction = redis::pipe();
                transaction
                    .atomic()
                    .ignore_errors()
                    .cmd("GETRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(header_end)
                    .cmd("UNLINK")
                    .arg(key);
                async move {
                    let replies: Vec<RedisResult<redis::Value>> =
                        transaction.query_async(&mut connection).await?;
                    Ok::<u64, redis::RedisError>(live_removed(&replies, now))
                }
            });
            let counts = futures_util::future::try_join_all(removals).await?;
            Ok(counts.into_iter().sum())
        })
        .await;
    }
    let mut transaction = redis::pipe();
    transaction.atomic().ignore_errors();
    for key in &keys {
        transaction.cmd("GETRANGE").arg(key).arg(0).arg(header_end);
    }
    transaction.cmd("UNLINK").arg(&keys);
    run(shared, "unlink keys", move |mut connection| async move {
        let replies: Vec<RedisResult<redis::Value>> =
            transaction.query_async(&mut connection).await?;
        Ok(live_removed(&replies, now))
    })
    .await
}

/// From a transaction's replies (headers first, the `UNLINK` count last): the number removed,
/// less those whose header says they had expired at `now`. A header that could not be read
/// (a key of another type) belongs to a value that is not ours, which counts as removed.
fn live_removed(replies: &[RedisResult<redis::Value>], now: SystemTime) -> u64 {
    let Some((unlinked, headers)) = replies.split_last() else {
        return 0;
    };
    let unlinked = match unlinked {
        Ok(value) => redis::from_redis_value_ref::<u64>(value).unwrap_or(0),
        Err(_) => 0,
    };
    let expired = headers
        .iter()
        .filter(|reply| match reply {
            Ok(value) => redis::from_redis_value_ref::<Vec<u8>>(value)
                .is_ok_and(|header| header_expired(&header, now)),
            Err(_) => false,
        })
        .count() as u64;
    unlinked.saturating_sub(expired)
}

/// Removes the keys under the prefix that match `pattern` (all of them for `None`), timed as
/// one `invalidate` (or `clear`) operation.
async fn invalidate(shared: Arc<Shared>, pattern: Option<Pattern>) -> Result<u64, CacheError> {
    let operation = if pattern.is_some() {
        Operation::Invalidate
    } else {
        Operation::Clear
    };
    let timer = shared.counters.metrics.start(operation);
    let result = invalidate_untimed(&shared, pattern).await;
    telemetry::finish(timer);
    result
}

async fn invalidate_untimed(shared: &Shared, pattern: Option<Pattern>) -> Result<u64, CacheError> {
    let backend = current_backend(shared);
    let glob = format!(
        "{}{}",
        shared.scan_prefix,
        pattern
            .as_ref()
            .map_or_else(|| "*".to_owned(), Pattern::to_redis_superset)
    );
    // The scan's own time limit grows with the keyspace; each page still has its timeout
    // inside redis-rs, and the breaker still applies.
    let scan_limit = shared.config.command_timeout * 40;
    let keys = match &backend {
        Some(backend) => {
            let scanned = tokio::time::timeout(scan_limit, backend.scan(glob)).await;
            match scanned {
                Ok(Ok(keys)) => keys,
                Ok(Err(error)) => {
                    shared.counters.error();
                    return Err(CacheError::backend(
                        &shared.config.name,
                        "scan for keys",
                        error,
                    ));
                }
                Err(_) => {
                    shared.counters.error();
                    return Err(CacheError::backend(
                        &shared.config.name,
                        "scan for keys",
                        std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the scan did not finish in time",
                        ),
                    ));
                }
            }
        }
        None => {
            shared.counters.error();
            return Err(CacheError::Unavailable {
                tier: shared.config.name.clone(),
                reason: not_connected(shared),
            });
        }
    };
    let prefix = shared.config.key_prefix.as_bytes();
    let doomed: Vec<Vec<u8>> = keys
        .into_iter()
        .filter(|full| {
            let Some(key) = full
                .strip_prefix(prefix)
                .and_then(|key| std::str::from_utf8(key).ok())
            else {
                return false;
            };
            pattern.as_ref().is_none_or(|pattern| pattern.matches(key))
        })
        .collect();
    let mut removed = 0_u64;
    for batch in doomed.chunks(UNLINK_BATCH) {
        removed += unlink_live(shared, batch.to_vec()).await?;
    }
    let message = match pattern {
        Some(pattern) => Invalidation::Pattern(pattern.as_str().to_owned()),
        None => Invalidation::Clear,
    };
    if shared.config.cross_node_invalidation && !publish(shared, &message).await {
        // The other nodes did not hear of it: the announcer tells them to resynchronise.
        shared.counters.announcements_dropped(1);
        shared.signals.request_resync();
    }
    Ok(removed)
}

/// Publishes `message` on the invalidation channel; whether Redis took it.
async fn publish(shared: &Shared, message: &Invalidation) -> bool {
    publish_message(shared, invalidation::encode(shared.node_id, message)).await
}

/// Publishes an encoded message on the invalidation channel; whether Redis took it.
async fn publish_message(shared: &Shared, payload: Vec<u8>) -> bool {
    let channel = shared.channel.clone();
    let published = run(
        shared,
        "publish an invalidation",
        move |mut connection| async move {
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(payload)
                .query_async::<u64>(&mut connection)
                .await
        },
    )
    .await;
    match published {
        Ok(_) => true,
        Err(error) => {
            tracing::debug!(%error, "redis tier: an invalidation could not be published");
            false
        }
    }
}

fn stats(shared: &Shared) -> TierStats {
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let mut stats = TierStats::default();
    stats.hits = load(&shared.counters.hits);
    stats.misses = load(&shared.counters.misses);
    stats.inserts = load(&shared.counters.inserts);
    stats.expirations = load(&shared.counters.expirations);
    stats.errors = load(&shared.counters.errors);
    stats
}

/// Connects with back-off until it succeeds or the cache is dropped.
async fn connect_in_background(weak: Weak<Shared>, mut shutdown: watch::Receiver<()>) {
    let mut delay = Duration::from_millis(100);
    loop {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let config = shared.config.clone();
        drop(shared);
        let attempt = Backend::connect(&config).await;
        let Some(shared) = weak.upgrade() else {
            return;
        };
        match attempt {
            Ok(backend) => {
                let _ = shared.backend.set(Arc::new(backend));
                tracing::info!(url = %redact(&config.urls[0]), "redis tier: connected");
                let cache = RedisCache { shared };
                if cache.shared.config.cross_node_invalidation {
                    cache.start_subscriber();
                }
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "redis tier: could not connect; retrying in {} ms", delay.as_millis());
                *shared.last_error.lock() = Some(error.to_string());
            }
        }
        drop(shared);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Listens for the other nodes' invalidations; re-subscribes (and announces a resync) after a
/// lost connection.
async fn subscribe_in_background(weak: Weak<Shared>, mut shutdown: watch::Receiver<()>) {
    let mut delay = Duration::from_millis(100);
    let mut subscribed_before = false;
    loop {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let (client, channel) = match current_backend(&shared) {
            Some(backend) => (backend.client.clone(), shared.channel.clone()),
            None => return,
        };
        let limit = shared.config.connect_timeout + shared.config.command_timeout;
        drop(shared);
        let subscription = tokio::time::timeout(limit, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        match subscription {
            Ok(Ok(pubsub)) => {
                delay = Duration::from_millis(100);
                let Some(shared) = weak.upgrade() else {
                    return;
                };
                // SUBSCRIBE has been confirmed: every message published from now on reaches us.
                shared.subscribed.store(true, Ordering::Release);
                if subscribed_before {
                    let _ = shared.invalidations.send(Invalidation::Resync);
                }
                drop(shared);
                subscribed_before = true;
                let (mut sink, mut messages) = pubsub.split();
                // A `PING` unanswered within `limit` means the connection is lost, as a closed
                // one does: re-subscribe, then `Resync`, since messages may have been missed.
                let mut alive = std::pin::pin!(async move {
                    loop {
                        tokio::time::sleep(SUBSCRIPTION_PING).await;
                        let pong = tokio::time::timeout(limit, sink.ping::<redis::Value>()).await;
                        if !matches!(pong, Ok(Ok(_))) {
                            return;
                        }
                    }
                });
                loop {
                    tokio::select! {
                        () = &mut alive => break,
                        message = messages.next() => {
                            let Some(message) = message else { break };
                            let Some(shared) = weak.upgrade() else { return };
                            let payload = message.get_payload_bytes();
                            // Our own messages come back too; they are skipped before decoding.
                            if invalidation::sender(payload) == Some(shared.node_id) {
                                continue;
                            }
                            match invalidation::decode(payload) {
                                Some((_, invalidation)) => {
                                    let _ = shared.invalidations.send(invalidation);
                                }
                                None => tracing::warn!("redis tier: malformed invalidation message ignored"),
                            }
                        }
                        _ = shutdown.changed() => return,
                    }
                }
                if let Some(shared) = weak.upgrade() {
                    shared.subscribed.store(false, Ordering::Release);
                }
                tracing::warn!("redis tier: invalidation subscription lost; re-subscribing");
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, "redis tier: could not subscribe to invalidations")
            }
            Err(_) => tracing::debug!("redis tier: subscribing to invalidations timed out"),
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Publishes announced keys, batching those written while the previous message was in flight,
/// and the resynchronisations owed since announcements were lost.
///
/// A resynchronisation is published after the writes whose announcements were lost (their
/// writers asked for it once their command had completed), so a node that applies it drops
/// any copy older than those writes. It also covers the keys of the batch it replaces, which
/// were written before it too. A failed publication is retried as a resynchronisation, after
/// a back-off (100 ms doubling to 5 s) so that a Redis that refuses it is not hammered.
async fn announce_in_background(
    weak: Weak<Shared>,
    signals: Arc<AnnounceSignals>,
    mut shutdown: watch::Receiver<()>,
) {
    let mut retry = ANNOUNCE_RETRY_FIRST;
    loop {
        signals.wait_while_held().await;
        if !signals.resync_pending() {
            if signals.queue_is_empty() {
                // A writer that finds the queue empty wakes us (a wake-up that comes before
                // this wait is kept by `Notify`, so none is lost).
                tokio::select! {
                    biased;
                    () = signals.wake.notified() => {}
                    () = signals.hold_requested() => continue,
                    // The cache is gone.
                    _ = shutdown.changed() => return,
                }
                if signals.queue_is_empty() && !signals.resync_pending() {
                    // A wake-up for keys an earlier round already took.
                    continue;
                }
            }
            // Let the writes of the next moment join: under load this turns hundreds of writes
            // into one message (each message costs the server and every subscriber a wake-up),
            // at the cost of about a millisecond of delay for the other nodes.
            tokio::time::sleep(ANNOUNCE_LINGER).await;
        }
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let published = if signals.take_resync() {
            // Every queued key was written before this resynchronisation, which covers it.
            signals.discard_queued();
            publish(&shared, &Invalidation::Resync).await
        } else if let Some((message, count)) = signals.take_message() {
            let published = publish_message(&shared, message).await;
            if !published {
                shared.counters.announcements_dropped(count as u64);
            }
            published
        } else {
            // Woken for a resynchronisation that an earlier round already published.
            true
        };
        drop(shared);
        if published {
            retry = ANNOUNCE_RETRY_FIRST;
        } else {
            signals.request_resync();
            tokio::select! {
                () = tokio::time::sleep(retry) => {}
                _ = shutdown.changed() => return,
            }
            retry = (retry * 2).min(ANNOUNCE_RETRY_MAX);
        }
    }
}

impl CacheTier for RedisCache {
    fn name(&self) -> &str {
        &self.shared.config.name
    }

    fn get(&self, key: &str) -> TierResult<Option<CacheEntry>> {
        if let Err(error) = check_key(key) {
            return ready(Err(error));
        }
        let (shared, key) = (Arc::clone(&self.shared), key.to_owned());
        Box::pin(async move { get_entry(shared, &key).await })
    }

    fn set(&self, key: &str, value: Bytes, ttl: Ttl) -> TierResult<()> {
        if let Err(error) = check_key(key) {
            return ready(Err(error));
        }
        let (shared, key) = (Arc::clone(&self.shared), key.to_owned());
        Box::pin(async move { set(shared, &key, &value, ttl).await })
    }

    fn delete(&self, key: &str) -> TierResult<bool> {
        if let Err(error) = check_key(key) {
            return ready(Err(error));
        }
        let (shared, key) = (Arc::clone(&self.shared), key.to_owned());
        Box::pin(async move { delete(shared, &key).await })
    }

    fn invalidate_pattern(&self, pattern: &Pattern) -> TierResult<u64> {
        let (shared, pattern) = (Arc::clone(&self.shared), pattern.clone());
        Box::pin(invalidate(shared, Some(pattern)))
    }

    fn clear(&self) -> TierResult<u64> {
        Box::pin(invalidate(Arc::clone(&self.shared), None))
    }

    fn stats(&self) -> TierStats {
        stats(&self.shared)
    }

    fn health(&self) -> TierHealth {
        if self.shared.backend.get().is_none() {
            let reason = not_connected(&self.shared);
            TierHealth::Unavailable { reason }
        } else if self.shared.breaker.is_open() {
            TierHealth::Unavailable {
                reason: "circuit breaker open after repeated failures".to_owned(),
            }
        } else {
            TierHealth::Healthy
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(expiry: u64) -> Vec<u8> {
        let mut header = vec![FRAME_VERSION];
        header.extend_from_slice(&expiry.to_le_bytes());
        header
    }

    #[test]
    fn a_header_is_expired_only_when_it_is_ours_and_its_time_has_passed() {
        let now = SystemTime::now();
        let past = Expiry::after_at(Duration::from_secs(1), now - Duration::from_secs(10));
        let future = Expiry::after_at(Duration::from_secs(10), now);
        assert!(header_expired(&header(past.as_unix_millis()), now));
        assert!(!header_expired(&header(future.as_unix_millis()), now));
        assert!(!header_expired(&header(0), now), "0 means no expiry");
        assert!(!header_expired(b"", now), "nothing read");
        assert!(!header_expired(b"short", now), "not a frame");
        let mut other_version = header(past.as_unix_millis());
        other_version[0] = 9;
        assert!(!header_expired(&other_version, now), "not our frame");
    }

    #[test]
    fn removals_count_what_was_unlinked_less_the_expired() {
        let now = SystemTime::now();
        let expired = header(
            Expiry::after_at(Duration::from_secs(1), now - Duration::from_secs(5)).as_unix_millis(),
        );
        let live = header(0);
        let bulk = |bytes: &[u8]| Ok(redis::Value::BulkString(bytes.to_vec()));
        let wrong_type = Err(redis::RedisError::from((
            redis::ErrorKind::Parse,
            "WRONGTYPE",
        )));
        // Four keys asked for: one expired, one live, one of another type, one missing.
        let replies = vec![
            bulk(&expired),
            bulk(&live),
            wrong_type,
            bulk(b""),
            Ok(redis::Value::Int(3)),
        ];
        assert_eq!(live_removed(&replies, now), 2);
        assert_eq!(live_removed(&[], now), 0);
    }
}
