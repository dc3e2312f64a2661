//! Evaluators and tiers for the tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use nfcs_cache_core::{
    CacheEntry, CacheError, CacheTier, ManualClock, MemoryCache, MemoryConfig, Pattern, TierResult,
    TierStats,
};
use nfcs_policy_cache::{
    ALL_DECISIONS, ContextValue, EvaluationError, PolicyCache, PolicyCacheConfig, PolicyContext,
    PolicyDecision, PolicyEvaluator,
};
use tokio::sync::Notify;

/// Counts its evaluations; denies when `risk` > 7, allows otherwise; refuses the action
/// "broken".
pub(crate) struct CountingEvaluator {
    pub(crate) evaluations: AtomicU64,
    /// Flips the verdict for every action, as a new policy set would.
    pub(crate) strict: AtomicBool,
    pub(crate) policy_set_id: u64,
}

impl CountingEvaluator {
    pub(crate) fn new() -> Arc<CountingEvaluator> {
        Arc::new(CountingEvaluator {
            evaluations: AtomicU64::new(0),
            strict: AtomicBool::new(false),
            policy_set_id: 0,
        })
    }

    pub(crate) fn count(&self) -> u64 {
        self.evaluations.load(Ordering::SeqCst)
    }
}

impl PolicyEvaluator for CountingEvaluator {
    fn evaluate(
        &self,
        action: &str,
        context: &PolicyContext,
    ) -> Result<PolicyDecision, EvaluationError> {
        self.evaluations.fetch_add(1, Ordering::SeqCst);
        if action == "broken" {
            return Err(EvaluationError::UnknownAction {
                action: action.to_owned(),
                known: vec!["read".to_owned()],
            });
        }
        if self.strict.load(Ordering::SeqCst) {
            return Ok(PolicyDecision::deny(["strict-mode"], 3));
        }
        Ok(match context.get("risk") {
            Some(ContextValue::Int(risk)) if *risk > 7 => PolicyDecision::deny(["high-risk"], 3),
            _ => PolicyDecision::allow(["default-allow"], 3),
        })
    }

    fn policy_set_id(&self) -> u64 {
        self.policy_set_id
    }
}

pub(crate) fn memory_tier() -> Arc<MemoryCache> {
    Arc::new(MemoryCache::new(16 << 20).unwrap())
}

/// A memory tier whose TTLs run on `clock`.
pub(crate) fn memory_tier_on(clock: &ManualClock) -> Arc<MemoryCache> {
    Arc::new(MemoryCache::with_config(MemoryConfig::new(16 << 20).clock(clock.clock())).unwrap())
}

/// Waits, yielding to the other tasks, until `condition` holds: how a test knows that every
/// caller has reached the point it wants before it acts. The timeout only turns a bug (a
/// condition that never comes) into a failure instead of a hang; it orders nothing.
pub(crate) async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let wait = async {
        while !condition() {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(300), wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

/// Decides as [`CountingEvaluator`] does, but its first evaluation blocks until the test
/// calls `release.notify_one()`, and then, when built with `panic_first`, panics: a leader
/// that dies in the middle of its evaluation.
///
/// The evaluator is synchronous (as `PolicyEvaluator` is), so it waits for the `Notify` in
/// `block_in_place`, which hands the worker's other tasks to another thread: the callers
/// that queue behind the blocked leader keep running. Needs the multi-thread runtime.
pub(crate) struct BlockingEvaluator {
    decide: Arc<CountingEvaluator>,
    calls: AtomicU64,
    pub(crate) release: Notify,
    panic_first: bool,
}

impl BlockingEvaluator {
    pub(crate) fn new(panic_first: bool) -> Arc<BlockingEvaluator> {
        Arc::new(BlockingEvaluator {
            decide: CountingEvaluator::new(),
            calls: AtomicU64::new(0),
            release: Notify::new(),
            panic_first,
        })
    }

    /// Evaluations started (the blocked one included).
    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl PolicyEvaluator for BlockingEvaluator {
    fn evaluate(
        &self,
        action: &str,
        context: &PolicyContext,
    ) -> Result<PolicyDecision, EvaluationError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(self.release.notified());
            });
            if self.panic_first {
                panic!("the first evaluation dies half-way (as the test intends)");
            }
        }
        self.decide.evaluate(action, context)
    }

    fn policy_set_id(&self) -> u64 {
        0
    }
}

/// How many cached decisions the tier holds (removes them to count them).
pub(crate) async fn drain_decisions(tier: &dyn CacheTier) -> u64 {
    tier.invalidate_pattern(&Pattern::new(ALL_DECISIONS).unwrap())
        .await
        .unwrap()
}

/// A tier whose every operation fails, as a Redis server that is down.
pub(crate) struct DownTier;

fn down() -> CacheError {
    CacheError::backend("down", "any", "connection refused")
}

impl CacheTier for DownTier {
    fn name(&self) -> &str {
        "down"
    }
    fn get(&self, _key: &str) -> TierResult<Option<CacheEntry>> {
        nfcs_cache_core::ready(Err(down()))
    }
    fn set(
        &self,
        _key: &str,
        _value: nfcs_cache_core::Bytes,
        _ttl: nfcs_cache_core::Ttl,
    ) -> TierResult<()> {
        nfcs_cache_core::ready(Err(down()))
    }
    fn delete(&self, _key: &str) -> TierResult<bool> {
        nfcs_cache_core::ready(Err(down()))
    }
    fn invalidate_pattern(&self, _pattern: &Pattern) -> TierResult<u64> {
        nfcs_cache_core::ready(Err(down()))
    }
    fn clear(&self) -> TierResult<u64> {
        nfcs_cache_core::ready(Err(down()))
    }
    fn stats(&self) -> TierStats {
        TierStats::default()
    }
}

/// A memory tier that can hold one read of a decision key at its gate: the read is made at
/// once (so it sees the tier as it is when the caller asks) and its answer is handed back
/// only when the test calls [`release`](GatedTier::release), or never, when the caller's task
/// is aborted first. That is a slow lower tier (a Redis round trip) without any sleep.
pub(crate) struct GatedTier {
    pub(crate) inner: Arc<MemoryCache>,
    /// Reads of decision keys so far.
    reads: AtomicU64,
    /// The number (from 1) of the decision-key read to hold; 0 holds none.
    hold: AtomicU64,
    /// Reads that reached the gate.
    arrived: Arc<AtomicUsize>,
    open: Arc<Notify>,
}

impl GatedTier {
    pub(crate) fn new(inner: Arc<MemoryCache>) -> Arc<GatedTier> {
        Arc::new(GatedTier {
            inner,
            reads: AtomicU64::new(0),
            hold: AtomicU64::new(0),
            arrived: Arc::new(AtomicUsize::new(0)),
            open: Arc::new(Notify::new()),
        })
    }

    /// Holds the `number`th read of a decision key (counting from 1).
    pub(crate) fn hold_read(&self, number: u64) {
        self.hold.store(number, Ordering::SeqCst);
    }

    /// Reads that reached the gate.
    pub(crate) fn arrived(&self) -> usize {
        self.arrived.load(Ordering::SeqCst)
    }

    /// Lets the held read return (now, or as soon as it reaches the gate).
    pub(crate) fn release(&self) {
        self.open.notify_one();
    }
}

impl CacheTier for GatedTier {
    fn name(&self) -> &str {
        "gated"
    }
    fn get(&self, key: &str) -> TierResult<Option<CacheEntry>> {
        let read = self.inner.as_ref().get_entry_future(key);
        let held = key.starts_with("policy_") && {
            let number = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
            number == self.hold.load(Ordering::SeqCst)
        };
        let arrived = Arc::clone(&self.arrived);
        let open = Arc::clone(&self.open);
        Box::pin(async move {
            if held {
                arrived.fetch_add(1, Ordering::SeqCst);
                open.notified().await;
            }
            read.await
        })
    }
    fn set(
        &self,
        key: &str,
        value: nfcs_cache_core::Bytes,
        ttl: nfcs_cache_core::Ttl,
    ) -> TierResult<()> {
        CacheTier::set(self.inner.as_ref(), key, value, ttl)
    }
    fn delete(&self, key: &str) -> TierResult<bool> {
        CacheTier::delete(self.inner.as_ref(), key)
    }
    fn invalidate_pattern(&self, pattern: &Pattern) -> TierResult<u64> {
        CacheTier::invalidate_pattern(self.inner.as_ref(), pattern)
    }
    fn clear(&self) -> TierResult<u64> {
        CacheTier::clear(self.inner.as_ref())
    }
    fn stats(&self) -> TierStats {
        CacheTier::stats(self.inner.as_ref())
    }
}

/// `CacheTier::get` under a name that does not clash with `MemoryCache::get`.
pub(crate) trait GetEntry {
    fn get_entry_future(&self, key: &str) -> TierResult<Option<CacheEntry>>;
}

impl GetEntry for MemoryCache {
    fn get_entry_future(&self, key: &str) -> TierResult<Option<CacheEntry>> {
        CacheTier::get(self, key)
    }
}

/// A policy cache with the default configuration over `tier`: one node of a deployment that
/// shares the tier.
pub(crate) fn node<E, T>(evaluator: &Arc<E>, tier: &Arc<T>) -> PolicyCache
where
    E: PolicyEvaluator + 'static,
    T: CacheTier + 'static,
{
    PolicyCache::with_tier(
        Arc::clone(evaluator) as Arc<dyn PolicyEvaluator>,
        Arc::clone(tier) as Arc<dyn CacheTier>,
        PolicyCacheConfig::default(),
    )
    .unwrap()
}
