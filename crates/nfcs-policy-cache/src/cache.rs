//! [`PolicyCache`]: cached compliance decisions over any [`CacheTier`].

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use nfcs_cache_core::telemetry::DEFAULT_INSTANCE;
use nfcs_cache_core::{
    CacheTier, Clock, Codec, MemoryCache, MemoryConfig, Pattern, Ttl, validate_ttl,
};
use nfcs_single_flight::{Joined, Leader, SingleFlight};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::context::PolicyContext;
use crate::error::PolicyCacheError;
use crate::evaluator::{PolicyDecision, PolicyEvaluator, Verdict};
use crate::telemetry::{Path, PolicyMetrics, WaitingGuard};

/// The TTL of a cached decision unless configured otherwise: 1800 s, as the spec says.
pub const DEFAULT_TTL: Duration = Duration::from_secs(1800);
/// The byte budget of the memory tier that [`PolicyCache::new`] creates: 64 MiB.
pub const DEFAULT_MEMORY_BYTES: u64 = 64 << 20;
/// The `tier` label (and name) of the memory tier that [`PolicyCache::new`] and
/// [`PolicyCache::with_config`] create, so that it never reports under a manager's `memory`.
pub const MEMORY_TIER_NAME: &str = "policy";
/// The tier key under which the current policy version lives. It does not match the
/// `policy_*` pattern, so invalidating every decision leaves the version alone.
pub const VERSION_KEY: &str = "policy:version";
/// The longest action type accepted, in bytes.
pub const MAX_ACTION_LEN: usize = 1024;
/// The longest [`PolicyCacheConfig::version_refresh`] accepted: one hour.
pub const MAX_VERSION_REFRESH: Duration = Duration::from_secs(3600);

/// How a [`PolicyCache`] behaves.
///
/// ```
/// use std::time::Duration;
/// use nfcs_policy_cache::PolicyCacheConfig;
///
/// let config = PolicyCacheConfig::default()
///     .ttl(Duration::from_secs(600))
///     .version_refresh(Duration::from_secs(1))
///     .instance("node-a");
/// assert!(config.validate().is_ok());
/// assert!(PolicyCacheConfig::default().ttl(Duration::ZERO).validate().is_err());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PolicyCacheConfig {
    /// How long a decision stays cached. Default [`DEFAULT_TTL`] (1800 s).
    pub ttl: Duration,
    /// How long a node trusts the policy version it last read before reading it from the
    /// tier again. Zero (the default) reads it on every evaluation: a version published by any
    /// node takes effect at once, at the cost of one extra tier read per evaluation (free for
    /// the memory tier, one round trip for Redis). A positive interval saves that round trip
    /// but lets a node serve the previous version's decisions for up to this long after
    /// another node published. At most [`MAX_VERSION_REFRESH`]. Measured on
    /// [`clock`](PolicyCacheConfig::clock).
    pub version_refresh: Duration,
    /// The cache instance: the `cache` label of every metric this cache publishes, and of
    /// the memory tier that [`PolicyCache::new`] and [`PolicyCache::with_config`] build.
    /// Default [`DEFAULT_INSTANCE`] ("default"); a manager passes its own name.
    pub instance: String,
    /// The clock [`version_refresh`](PolicyCacheConfig::version_refresh) is measured on, and
    /// the TTL clock of the memory tier that [`PolicyCache::with_config`] builds. The system's
    /// by default; a test drives a [`ManualClock`](nfcs_cache_core::ManualClock)'s. (The
    /// evaluation time a result reports is a latency and is always measured on the system's
    /// monotonic clock.)
    pub clock: Clock,
    /// The byte budget of the memory tier that [`PolicyCache::new`] and
    /// [`PolicyCache::with_config`] build; [`PolicyCache::with_tier`] ignores it. Default
    /// [`DEFAULT_MEMORY_BYTES`] (64 MiB).
    pub memory_bytes: u64,
}

impl Default for PolicyCacheConfig {
    fn default() -> PolicyCacheConfig {
        PolicyCacheConfig {
            ttl: DEFAULT_TTL,
            version_refresh: Duration::ZERO,
            instance: DEFAULT_INSTANCE.to_owned(),
            clock: Clock::system(),
            memory_bytes: DEFAULT_MEMORY_BYTES,
        }
    }
}

impl PolicyCacheConfig {
    /// This configuration with `ttl` for cached decisions.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> PolicyCacheConfig {
        self.ttl = ttl;
        self
    }

    /// This configuration with `interval` as the version refresh interval.
    #[must_use]
    pub fn version_refresh(mut self, interval: Duration) -> PolicyCacheConfig {
        self.version_refresh = interval;
        self
    }

    /// This configuration with `instance` as the cache instance (the `cache` metric label).
    #[must_use]
    pub fn instance(mut self, instance: impl Into<String>) -> PolicyCacheConfig {
        self.instance = instance.into();
        self
    }

    /// This configuration reading `clock` (a [`ManualClock`](nfcs_cache_core::ManualClock)'s
    /// in tests).
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> PolicyCacheConfig {
        self.clock = clock;
        self
    }

    /// This configuration with a memory tier of `bytes` (for [`PolicyCache::with_config`]).
    #[must_use]
    pub fn memory_bytes(mut self, bytes: u64) -> PolicyCacheConfig {
        self.memory_bytes = bytes;
        self
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`PolicyCacheError::InvalidConfig`] naming the field: a zero or too long TTL, a refresh
    /// interval above [`MAX_VERSION_REFRESH`], an empty instance name.
    pub fn validate(&self) -> Result<(), PolicyCacheError> {
        validate_ttl(self.ttl).map_err(|problem| PolicyCacheError::InvalidConfig {
            field: "ttl",
            reason: format!("{:?}: {problem}", self.ttl),
        })?;
        if self.version_refresh > MAX_VERSION_REFRESH {
            return Err(PolicyCacheError::InvalidConfig {
                field: "version_refresh",
                reason: format!(
                    "{:?} is longer than the {:?} allowed",
                    self.version_refresh, MAX_VERSION_REFRESH
                ),
            });
        }
        if self.instance.is_empty() {
            return Err(PolicyCacheError::InvalidConfig {
                field: "instance",
                reason: "the instance name (the `cache` metric label) is empty".to_owned(),
            });
        }
        Ok(())
    }
}

/// The answer of [`PolicyCache::evaluate_compliance`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ComplianceResult {
    /// The decision: verdict and determining policies.
    pub decision: Arc<PolicyDecision>,
    /// The time this call took: the lookup for a cache hit, lookup and evaluation for a miss.
    pub evaluation_time: Duration,
    /// Whether the decision came from the cache.
    pub cache_hit: bool,
    /// Whether the decision came from a concurrent caller's evaluation of the same action
    /// and context (single flight); `cache_hit` is then false.
    pub coalesced: bool,
    /// The complexity score: the policies the evaluator evaluated plus the values in the
    /// context ([`PolicyContext::value_count`]). It describes the full evaluation, and a cache
    /// hit reports the score of the evaluation it saved.
    pub complexity: u64,
}

impl ComplianceResult {
    /// Whether the action is allowed.
    pub fn is_allowed(&self) -> bool {
        self.decision.is_allowed()
    }

    /// The verdict.
    pub fn verdict(&self) -> Verdict {
        self.decision.verdict
    }

    /// The determining policy ids.
    pub fn reasons(&self) -> &[String] {
        &self.decision.reasons
    }
}

/// Counters of one [`PolicyCache`] since it was built (the same events are also published
/// through the `metrics` facade), and the single-flight gauges now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PolicyCacheStats {
    /// Decisions served from the cache.
    pub hits: u64,
    /// Lookups that found no usable decision.
    pub misses: u64,
    /// Full evaluations run by this cache.
    pub evaluations: u64,
    /// Misses answered by a concurrent caller's evaluation.
    pub coalesced: u64,
    /// Cached entries that were corrupt or did not belong to their key (re-evaluated).
    pub corrupt_entries: u64,
    /// Cached decisions made under another policy set (re-evaluated).
    pub stale_entries: u64,
    /// Tier operations that failed.
    pub tier_errors: u64,
    /// Evaluations that failed (nothing cached).
    pub evaluation_errors: u64,
    /// Policy versions this cache published.
    pub versions_published: u64,
    /// Callers waiting now for a concurrent caller's evaluation of the same key.
    pub waiting: u64,
    /// Evaluations in flight now (keys with a leader evaluating them).
    pub in_flight: u64,
}

impl PolicyCacheStats {
    /// Hits over hits plus misses; 0 before the first lookup.
    pub fn hit_ratio(&self) -> f64 {
        nfcs_cache_core::hit_ratio(self.hits, self.misses)
    }
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    evaluations: AtomicU64,
    coalesced: AtomicU64,
    corrupt_entries: AtomicU64,
    stale_entries: AtomicU64,
    tier_errors: AtomicU64,
    evaluation_errors: AtomicU64,
    versions_published: AtomicU64,
}

/// What is stored in the tier for one decision: postcard in the core codec's checksummed
/// frame. `action` and `context_hash` are checked against the key on every read.
#[derive(Debug, Serialize, Deserialize)]
struct StoredDecision {
    action: String,
    context_hash: u64,
    policy_set_id: u64,
    complexity: u64,
    decision: Arc<PolicyDecision>,
}

/// What the leader of a flight hands its waiters: the decision, or the error every caller of
/// that key gets.
type Outcome = Result<Arc<StoredDecision>, PolicyCacheError>;

struct Inner {
    tier: Arc<dyn CacheTier>,
    evaluator: RwLock<Arc<dyn PolicyEvaluator>>,
    config: PolicyCacheConfig,
    codec: Codec,
    /// The version last read or published, and when (on `config.clock`'s monotonic reading).
    version: Mutex<Option<(u64, Duration)>>,
    /// Evaluations in progress, by decision key.
    flights: SingleFlight<String, Outcome>,
    /// Taken while writing the first version (see `first_version`).
    first_version: tokio::sync::Mutex<()>,
    counters: Counters,
    metrics: PolicyMetrics,
    /// The `cache` label in use (see [`PolicyCache::instance`]).
    instance: String,
}

/// Cached constitutional decisions.
///
/// A decision is stored in the tier under `policy_{action}_v{version}_{context hash}`:
/// - `{action}` is the action type with every byte outside `[A-Za-z0-9.:-]` written as `%XX`
///   (so it never holds a `_` or a glob character, and `policy_{action}_v*` matches exactly the
///   decisions of one action type);
/// - `{version}` is the current policy version, 16 hex digits, read from the tier under
///   [`VERSION_KEY`]; [`publish_version`](Self::publish_version) writes a new random one, so
///   every node sharing the tier stops finding the old decisions at once (they expire by TTL);
/// - `{context hash}` is [`PolicyContext::stable_hash`], 16 hex digits.
///
/// Cloning is cheap: clones share the evaluator, the tier and the in-flight table.
#[derive(Clone)]
pub struct PolicyCache {
    inner: Arc<Inner>,
}

impl fmt::Debug for PolicyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyCache")
            .field("instance", &self.inner.instance)
            .field("tier", &self.inner.tier.name())
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl PolicyCache {
    /// A cache in a new memory tier of [`DEFAULT_MEMORY_BYTES`], with the default
    /// configuration (see [`with_config`](PolicyCache::with_config)).
    ///
    /// # Errors
    /// Only if the memory tier cannot be built.
    pub fn new(evaluator: impl PolicyEvaluator + 'static) -> Result<PolicyCache, PolicyCacheError> {
        PolicyCache::with_config(Arc::new(evaluator), PolicyCacheConfig::default())
    }

    /// A cache in a new memory tier of its own: [`PolicyCacheConfig::memory_bytes`], on
    /// [`PolicyCacheConfig::clock`], named [`MEMORY_TIER_NAME`] in
    /// [`PolicyCacheConfig::instance`] (metric labels `cache="{instance}", tier="policy"`, so it
    /// never reports under a manager's memory tier).
    ///
    /// Metric handles are resolved here, with the recorder in effect: install the recorder
    /// before building the cache.
    ///
    /// If another live tier already reports under `cache="{instance}", tier="policy"`, core
    /// renames this one's `cache` label (`{instance}-2`, ...) to keep the series apart, and
    /// this cache's own metrics follow it ([`instance`](PolicyCache::instance) tells which).
    ///
    /// # Errors
    /// [`PolicyCacheError::InvalidConfig`] when `config` does not validate;
    /// [`PolicyCacheError::Tier`] when the memory tier cannot be built (a budget too small).
    pub fn with_config(
        evaluator: Arc<dyn PolicyEvaluator>,
        config: PolicyCacheConfig,
    ) -> Result<PolicyCache, PolicyCacheError> {
        config.validate()?;
        let memory = MemoryConfig::new(config.memory_bytes)
            .name(MEMORY_TIER_NAME)
            .instance(config.instance.clone())
            .clock(config.clock.clone());
        let tier = MemoryCache::with_config(memory)
            .map_err(|error| PolicyCacheError::tier(MEMORY_TIER_NAME, error))?;
        let instance = tier.labels().cache.clone();
        Ok(PolicyCache::build(
            evaluator,
            Arc::new(tier),
            config,
            instance,
        ))
    }

    /// A cache over `tier` (shared with other nodes when it is Redis, or with other caches in
    /// this process). Its metrics carry `cache="{instance}"` as configured: give each live
    /// policy cache its own instance name, or their counts add into one series.
    ///
    /// Metric handles are resolved here, with the recorder in effect: install the recorder
    /// before building the cache.
    ///
    /// # Errors
    /// [`PolicyCacheError::InvalidConfig`] when `config` does not validate.
    pub fn with_tier(
        evaluator: Arc<dyn PolicyEvaluator>,
        tier: Arc<dyn CacheTier>,
        config: PolicyCacheConfig,
    ) -> Result<PolicyCache, PolicyCacheError> {
        config.validate()?;
        let instance = config.instance.clone();
        Ok(PolicyCache::build(evaluator, tier, config, instance))
    }

    fn build(
        evaluator: Arc<dyn PolicyEvaluator>,
        tier: Arc<dyn CacheTier>,
        config: PolicyCacheConfig,
        instance: String,
    ) -> PolicyCache {
        PolicyCache {
            inner: Arc::new(Inner {
                tier,
                evaluator: RwLock::new(evaluator),
                config,
                codec: Codec::default(),
                version: Mutex::new(None),
                flights: SingleFlight::new(),
                first_version: tokio::sync::Mutex::new(()),
                counters: Counters::default(),
                metrics: PolicyMetrics::new(&instance),
                instance,
            }),
        }
    }

    /// The `cache` label this cache's metrics carry: [`PolicyCacheConfig::instance`], or
    /// the name core gave its own memory tier to keep the series unique (see
    /// [`with_config`](PolicyCache::with_config)).
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// The tier decisions are stored in.
    pub fn tier(&self) -> &Arc<dyn CacheTier> {
        &self.inner.tier
    }

    /// The evaluator in use.
    pub fn evaluator(&self) -> Arc<dyn PolicyEvaluator> {
        Arc::clone(&self.inner.evaluator.read())
    }

    /// The configuration.
    pub fn config(&self) -> &PolicyCacheConfig {
        &self.inner.config
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> PolicyCacheStats {
        let counters = &self.inner.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        PolicyCacheStats {
            hits: load(&counters.hits),
            misses: load(&counters.misses),
            evaluations: load(&counters.evaluations),
            coalesced: load(&counters.coalesced),
            corrupt_entries: load(&counters.corrupt_entries),
            stale_entries: load(&counters.stale_entries),
            tier_errors: load(&counters.tier_errors),
            evaluation_errors: load(&counters.evaluation_errors),
            versions_published: load(&counters.versions_published),
            waiting: self.inner.flights.waiting() as u64,
            in_flight: self.inner.flights.in_flight() as u64,
        }
    }

    /// Decides whether `action` complies in `context`: from the cache when a decision for this
    /// action type, context and policy version is there, by a full evaluation otherwise (and
    /// the decision is cached for [`PolicyCacheConfig::ttl`]).
    ///
    /// Concurrent calls that miss on the same key run the evaluator once (single flight,
    /// `nfcs-single-flight`): the first runs it, the others wait for its decision (or its
    /// error). The evaluating caller looks in the tier once more after it becomes the leader,
    /// hands the decision to the waiters before it writes the tier, and keeps the flight
    /// until the write is done, so a caller finds either the flight or the stored decision.
    /// A waiting caller that is dropped affects no one; if the evaluating caller is dropped
    /// (its task cancelled, or the evaluator panicked), its waiters look again and one of
    /// them evaluates.
    ///
    /// A tier that fails is a counted miss: the decision is evaluated (and not cached when
    /// writing fails), never refused. A cached entry that is corrupt, belongs to another key or
    /// to another policy set ([`PolicyEvaluator::policy_set_id`]) is evaluated again.
    ///
    /// The evaluator runs on the calling task (Cedar decides in microseconds to a millisecond
    /// or so); wrap a slow evaluator's work in `spawn_blocking` yourself.
    ///
    /// # Errors
    /// [`PolicyCacheError::InvalidAction`], [`PolicyCacheError::Context`] (a NaN),
    /// [`PolicyCacheError::Evaluation`] (an unknown action, a context that does not fit the
    /// schema). Nothing is cached on an error.
    pub async fn evaluate_compliance(
        &self,
        action: &str,
        context: &PolicyContext,
    ) -> Result<ComplianceResult, PolicyCacheError> {
        let started = Instant::now();
        let encoded_action = encode_action(action)?;
        let context_hash = context.stable_hash()?;
        let evaluator = self.evaluator();
        let policy_set_id = evaluator.policy_set_id();
        let version = match self.current_version().await {
            Ok(version) => version,
            Err(error) => {
                // No version, no key: decide without the cache.
                tracing::debug!(%error, "policy version unreadable; evaluating uncached");
                self.count_miss();
                let stored = self.run_evaluator(&*evaluator, action, context, context_hash)?;
                return Ok(self.finish(started, &stored, Path::Full));
            }
        };
        let key = decision_key(&encoded_action, version, context_hash);
        loop {
            if let Some(stored) = self
                .lookup(&key, action, context_hash, policy_set_id, true)
                .await
            {
                self.count_hit();
                return Ok(self.finish(started, &stored, Path::Cached));
            }
            match self.inner.flights.join(key.clone()) {
                Joined::Leader(leader) => {
                    return self
                        .lead(
                            leader,
                            &*evaluator,
                            action,
                            context,
                            context_hash,
                            policy_set_id,
                            started,
                        )
                        .await;
                }
                Joined::Waiter(waiter) => {
                    let outcome = {
                        let _waiting = WaitingGuard::new(&self.inner.metrics.waiting);
                        waiter.outcome().await
                    };
                    match outcome {
                        Some(Ok(stored)) => {
                            self.count_miss();
                            self.inner
                                .counters
                                .coalesced
                                .fetch_add(1, Ordering::Relaxed);
                            return Ok(self.finish(started, &stored, Path::Coalesced));
                        }
                        Some(Err(error)) => return Err(error),
                        // The leader went away before it decided (cancelled, or its evaluator
                        // panicked): look again, perhaps as the next leader.
                        None => {}
                    }
                }
            }
        }
    }

    /// Runs the evaluation as the flight's leader, publishes the outcome to the waiters, then
    /// caches the decision.
    #[allow(clippy::too_many_arguments)] // A private step of one method; a struct would only rename them.
    async fn lead(
        &self,
        leader: Leader<'_, String, Outcome>,
        evaluator: &dyn PolicyEvaluator,
        action: &str,
        context: &PolicyContext,
        context_hash: u64,
        policy_set_id: u64,
        started: Instant,
    ) -> Result<ComplianceResult, PolicyCacheError> {
        let key = leader.key().as_str();
        // A caller that missed just before the previous leader wrote its decision and ended
        // its flight would evaluate again; one more look closes that window.
        if let Some(stored) = self
            .lookup(key, action, context_hash, policy_set_id, false)
            .await
        {
            leader.publish(Ok(Arc::clone(&stored)));
            self.count_hit();
            return Ok(self.finish(started, &stored, Path::Cached));
        }
        self.count_miss();
        let stored = match self.run_evaluator(evaluator, action, context, context_hash) {
            Ok(stored) => Arc::new(stored),
            Err(error) => {
                leader.publish(Err(error.clone()));
                return Err(error);
            }
        };
        // The waiters get the decision now; the tier write below is for later callers.
        leader.publish(Ok(Arc::clone(&stored)));
        let result = self.finish(started, &stored, Path::Full);
        match self.inner.codec.encode(&*stored) {
            Ok(frame) => self.store(key, frame).await,
            Err(error) => {
                tracing::warn!(%error, "policy decision could not be encoded; not cached");
            }
        }
        // Only now may the flight end (`leader` is dropped here): a caller that joins before
        // this point gets the published decision, one that comes after finds it in the tier.
        drop(leader);
        Ok(result)
    }

    fn run_evaluator(
        &self,
        evaluator: &dyn PolicyEvaluator,
        action: &str,
        context: &PolicyContext,
        context_hash: u64,
    ) -> Result<StoredDecision, PolicyCacheError> {
        self.inner
            .counters
            .evaluations
            .fetch_add(1, Ordering::Relaxed);
        self.inner.metrics.evaluations.increment(1);
        match evaluator.evaluate(action, context) {
            Ok(decision) => Ok(StoredDecision {
                action: action.to_owned(),
                context_hash,
                policy_set_id: evaluator.policy_set_id(),
                complexity: decision
                    .policies_evaluated
                    .saturating_add(context.value_count()),
                decision: Arc::new(decision),
            }),
            Err(error) => {
                self.inner
                    .counters
                    .evaluation_errors
                    .fetch_add(1, Ordering::Relaxed);
                self.inner.metrics.evaluation_errors.increment(1);
                Err(error.into())
            }
        }
    }

    /// Reads and checks the cached decision under `key`; `None` for a miss of any kind.
    /// `count` is false for the leader's second look, so that one bad entry counts once.
    async fn lookup(
        &self,
        key: &str,
        action: &str,
        context_hash: u64,
        policy_set_id: u64,
        count: bool,
    ) -> Option<Arc<StoredDecision>> {
        let entry = match self.inner.tier.get(key).await {
            Ok(entry) => entry?,
            Err(error) => {
                self.count_tier_error(&error);
                return None;
            }
        };
        let stored = match self.inner.codec.decode::<StoredDecision>(&entry.value) {
            Ok(stored) => stored,
            Err(error) => {
                if count {
                    tracing::warn!(key, %error, "corrupt policy decision in the cache; re-evaluating");
                    self.count_corrupt();
                }
                return None;
            }
        };
        if stored.action != action || stored.context_hash != context_hash {
            if count {
                tracing::warn!(
                    key,
                    "cached policy decision belongs to another key; re-evaluating"
                );
                self.count_corrupt();
            }
            return None;
        }
        if stored.policy_set_id != policy_set_id {
            if count {
                self.inner
                    .counters
                    .stale_entries
                    .fetch_add(1, Ordering::Relaxed);
                self.inner.metrics.stale.increment(1);
            }
            return None;
        }
        Some(Arc::new(stored))
    }

    async fn store(&self, key: &str, frame: Bytes) {
        if let Err(error) = self
            .inner
            .tier
            .set(key, frame, Ttl::After(self.inner.config.ttl))
            .await
        {
            self.count_tier_error(&error);
        }
    }

    fn finish(&self, started: Instant, stored: &StoredDecision, path: Path) -> ComplianceResult {
        let evaluation_time = started.elapsed();
        self.inner
            .metrics
            .evaluation_seconds(path)
            .record(evaluation_time.as_secs_f64());
        ComplianceResult {
            decision: Arc::clone(&stored.decision),
            evaluation_time,
            cache_hit: path == Path::Cached,
            coalesced: path == Path::Coalesced,
            complexity: stored.complexity,
        }
    }

    fn count_hit(&self) {
        self.inner.counters.hits.fetch_add(1, Ordering::Relaxed);
        self.inner.metrics.hits.increment(1);
    }

    fn count_miss(&self) {
        self.inner.counters.misses.fetch_add(1, Ordering::Relaxed);
        self.inner.metrics.misses.increment(1);
    }

    fn count_corrupt(&self) {
        self.inner
            .counters
            .corrupt_entries
            .fetch_add(1, Ordering::Relaxed);
        self.inner.metrics.corrupt.increment(1);
    }

    fn count_tier_error(&self, error: &nfcs_cache_core::CacheError) {
        tracing::debug!(tier = self.inner.tier.name(), %error, "policy cache tier error");
        self.inner
            .counters
            .tier_errors
            .fetch_add(1, Ordering::Relaxed);
        self.inner.metrics.tier_errors.increment(1);
    }

    /// The current policy version: the local copy while it is younger than
    /// [`PolicyCacheConfig::version_refresh`] (on [`PolicyCacheConfig::clock`]), otherwise
    /// read from the tier. A tier without a
    /// version (first use, or the entry was evicted or cleared) gets a new random one, so a
    /// lost version can never bring back the decisions of an earlier one.
    ///
    /// # Errors
    /// [`PolicyCacheError::Tier`] when the tier fails.
    pub async fn current_version(&self) -> Result<u64, PolicyCacheError> {
        let refresh = self.inner.config.version_refresh;
        if !refresh.is_zero()
            && let Some((version, read_at)) = *self.inner.version.lock()
            && self.inner.config.clock.monotonic().saturating_sub(read_at) < refresh
        {
            return Ok(version);
        }
        let tier = &self.inner.tier;
        let stored = match tier.get(VERSION_KEY).await {
            Ok(entry) => entry.and_then(|entry| parse_version(&entry.value)),
            Err(error) => {
                self.count_tier_error(&error);
                return Err(PolicyCacheError::tier(tier.name(), error));
            }
        };
        let version = match stored {
            Some(version) => version,
            None => self.first_version().await?,
        };
        *self.inner.version.lock() = Some((version, self.inner.config.clock.monotonic()));
        Ok(version)
    }

    /// Writes the first version when the tier has none. Callers of this node that find none
    /// at the same moment take turns, and each looks again before writing: otherwise each
    /// would write its own random version, and decisions made under all but the last would
    /// be orphaned (evaluated twice; never wrong). Nodes that start at the same moment can
    /// still race (the tier has no set-if-absent); the cost is the same extra evaluation.
    async fn first_version(&self) -> Result<u64, PolicyCacheError> {
        let _turn = self.inner.first_version.lock().await;
        let tier = &self.inner.tier;
        match tier.get(VERSION_KEY).await {
            Ok(entry) => match entry.and_then(|entry| parse_version(&entry.value)) {
                Some(version) => Ok(version),
                None => self.write_version(None).await,
            },
            Err(error) => {
                self.count_tier_error(&error);
                Err(PolicyCacheError::tier(tier.name(), error))
            }
        }
    }

    /// Publishes a new policy version: every decision cached under the previous one, by any
    /// node sharing the tier, stops being served (O(1): one write; the old entries expire by
    /// TTL). Returns the new version.
    ///
    /// # Errors
    /// [`PolicyCacheError::Tier`] when the tier fails; the old version then stays in force.
    pub async fn publish_version(&self) -> Result<u64, PolicyCacheError> {
        let previous = self.inner.version.lock().map(|(version, _)| version);
        let version = self.write_version(previous).await?;
        *self.inner.version.lock() = Some((version, self.inner.config.clock.monotonic()));
        self.inner
            .counters
            .versions_published
            .fetch_add(1, Ordering::Relaxed);
        self.inner.metrics.versions_published.increment(1);
        Ok(version)
    }

    /// Replaces the evaluator (a new policy set) and publishes a new version, so that no node
    /// sharing the tier serves a decision of the old set. Returns the new version.
    ///
    /// # Errors
    /// [`PolicyCacheError::Tier`] when the version cannot be written. The new evaluator is in
    /// use on this node all the same, and its decisions are told apart from the old set's by
    /// [`PolicyEvaluator::policy_set_id`].
    pub async fn publish_policy_set(
        &self,
        evaluator: Arc<dyn PolicyEvaluator>,
    ) -> Result<u64, PolicyCacheError> {
        *self.inner.evaluator.write() = evaluator;
        self.publish_version().await
    }

    async fn write_version(&self, previous: Option<u64>) -> Result<u64, PolicyCacheError> {
        let version = new_version_id(previous);
        let tier = &self.inner.tier;
        // No TTL of our own: the version lives as long as the tier keeps it, and a lost one is
        // replaced by a fresh random version (see `current_version`).
        tier.set(
            VERSION_KEY,
            Bytes::from(format!("{version:016x}")),
            Ttl::Never,
        )
        .await
        .map_err(|error| {
            self.count_tier_error(&error);
            PolicyCacheError::tier(tier.name(), error)
        })?;
        Ok(version)
    }

    /// The tier key of the decision for `action` in `context` under the current version.
    ///
    /// # Errors
    /// As [`evaluate_compliance`](Self::evaluate_compliance) for the action and context, and
    /// [`PolicyCacheError::Tier`] when the version cannot be read.
    pub async fn decision_key(
        &self,
        action: &str,
        context: &PolicyContext,
    ) -> Result<String, PolicyCacheError> {
        let encoded_action = encode_action(action)?;
        let context_hash = context.stable_hash()?;
        let version = self.current_version().await?;
        Ok(decision_key(&encoded_action, version, context_hash))
    }

    /// Removes every cached decision of `action` (under every version); returns how many.
    ///
    /// # Errors
    /// [`PolicyCacheError::InvalidAction`], or [`PolicyCacheError::Tier`] when the tier fails.
    pub async fn invalidate_action(&self, action: &str) -> Result<u64, PolicyCacheError> {
        let pattern = action_pattern(action)?;
        self.invalidate(&pattern).await
    }

    /// Removes every cached decision (of every action and version; the version stays);
    /// returns how many. Prefer [`publish_version`](Self::publish_version), which is O(1).
    ///
    /// # Errors
    /// [`PolicyCacheError::Tier`] when the tier fails.
    pub async fn invalidate_all(&self) -> Result<u64, PolicyCacheError> {
        self.invalidate(ALL_DECISIONS).await
    }

    async fn invalidate(&self, pattern: &str) -> Result<u64, PolicyCacheError> {
        let tier = &self.inner.tier;
        let pattern = Pattern::new(pattern)
            .map_err(|error| PolicyCacheError::tier(tier.name(), error.into()))?;
        tier.invalidate_pattern(&pattern)
            .await
            .map_err(|error| PolicyCacheError::tier(tier.name(), error))
    }
}

/// The glob pattern that matches every cached decision (and not [`VERSION_KEY`]).
pub const ALL_DECISIONS: &str = "policy_*";

/// The glob pattern that matches every cached decision of `action`, under any version.
///
/// ```
/// assert_eq!(nfcs_policy_cache::action_pattern("deploy_model")?, "policy_deploy%5Fmodel_v*");
/// # Ok::<(), nfcs_policy_cache::PolicyCacheError>(())
/// ```
///
/// # Errors
/// [`PolicyCacheError::InvalidAction`] for an empty or too long action type.
pub fn action_pattern(action: &str) -> Result<String, PolicyCacheError> {
    Ok(format!("policy_{}_v*", encode_action(action)?))
}

fn decision_key(encoded_action: &str, version: u64, context_hash: u64) -> String {
    format!("policy_{encoded_action}_v{version:016x}_{context_hash:016x}")
}

/// The action type as it appears in keys: bytes outside `[A-Za-z0-9.:-]` become `%XX`.
fn encode_action(action: &str) -> Result<String, PolicyCacheError> {
    if action.is_empty() {
        return Err(PolicyCacheError::InvalidAction {
            action: String::new(),
            reason: "the action type is empty",
        });
    }
    if action.len() > MAX_ACTION_LEN {
        return Err(PolicyCacheError::InvalidAction {
            action: action.chars().take(64).collect(),
            reason: "the action type is longer than 1024 bytes",
        });
    }
    let mut encoded = String::with_capacity(action.len());
    for byte in action.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b':' | b'-') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    Ok(encoded)
}

fn parse_version(bytes: &[u8]) -> Option<u64> {
    if bytes.len() != 16 {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    u64::from_str_radix(text, 16).ok()
}

/// A fresh random version id, different from `previous`: XXH3 of the wall clock, the process
/// id, a process-wide counter and a randomly seeded std hasher's output. Random rather than a
/// counter so that a version lost from the tier (evicted, cleared) is replaced by one that no
/// earlier decision was stored under.
fn new_version_id(previous: Option<u64>) -> u64 {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    loop {
        let mut seed = Vec::with_capacity(40);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        seed.extend_from_slice(&nanos.to_le_bytes());
        seed.extend_from_slice(&std::process::id().to_le_bytes());
        seed.extend_from_slice(&SEQUENCE.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        let random = std::collections::hash_map::RandomState::new().hash_one(nanos);
        seed.extend_from_slice(&random.to_le_bytes());
        let version = xxhash_rust::xxh3::xxh3_64(&seed);
        if Some(version) != previous {
            return version;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_encoded_without_separators_or_glob_characters() {
        assert_eq!(encode_action("read").unwrap(), "read");
        assert_eq!(encode_action("a_b*c").unwrap(), "a%5Fb%2Ac");
        assert_eq!(encode_action("Action::x").unwrap(), "Action::x");
        assert!(encode_action("").is_err());
        assert!(encode_action(&"x".repeat(MAX_ACTION_LEN + 1)).is_err());
    }

    #[test]
    fn an_action_pattern_does_not_match_a_longer_action() {
        let pattern = Pattern::new(&action_pattern("b").unwrap()).unwrap();
        let other = decision_key(&encode_action("a_b").unwrap(), 3, 9);
        let own = decision_key(&encode_action("b").unwrap(), 3, 9);
        assert!(!pattern.matches(&other));
        assert!(pattern.matches(&own));
        assert!(!Pattern::new(ALL_DECISIONS).unwrap().matches(VERSION_KEY));
    }

    #[test]
    fn versions_round_trip_and_differ() {
        let version = new_version_id(None);
        assert_eq!(
            parse_version(format!("{version:016x}").as_bytes()),
            Some(version)
        );
        assert_ne!(new_version_id(Some(version)), version);
        assert_eq!(parse_version(b"not a version!!!"), None);
    }
}
