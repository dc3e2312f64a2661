//! Evaluators and tiers for the tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use nfcs_cache_core::{
    CacheEntry, CacheError, CacheTier, MemoryCache, Pattern, TierResult, TierStats,
};
use nfcs_policy_cache::{
    ALL_DECISIONS, ContextValue, EvaluationError, PolicyCache, PolicyCacheConfig, PolicyContext,
    PolicyDecision, PolicyEvaluator,
};

/// Counts its evaluations; denies when `risk` > 7, allows otherwise; refuses the action
/// "broken"; sleeps `delay` in each evaluation (to make concurrent misses overlap).
pub(crate) struct CountingEvaluator {
    pub(crate) evaluations: AtomicU64,
    pub(crate) delay: Duration,
    /// Flips the verdict for every action, as a new policy set would.
    pub(crate) strict: AtomicBool,
    pub(crate) policy_set_id: u64,
}

impl CountingEvaluator {
    pub(crate) fn new() -> Arc<CountingEvaluator> {
        CountingEvaluator::with_delay(Duration::ZERO)
    }

    pub(crate) fn with_delay(delay: Duration) -> Arc<CountingEvaluator> {
        Arc::new(CountingEvaluator {
            evaluations: AtomicU64::new(0),
            delay,
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
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
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

/// A memory tier whose reads of decision keys take `delay` while `slow` is set.
pub(crate) struct SlowTier {
    pub(crate) inner: Arc<MemoryCache>,
    pub(crate) delay: Duration,
    pub(crate) slow: AtomicBool,
}

impl CacheTier for SlowTier {
    fn name(&self) -> &str {
        "slow"
    }
    fn get(&self, key: &str) -> TierResult<Option<CacheEntry>> {
        let read = self.inner.as_ref().get_entry_future(key);
        let delay = if self.slow.load(Ordering::SeqCst) && key.starts_with("policy_") {
            self.delay
        } else {
            Duration::ZERO
        };
        Box::pin(async move {
            tokio::time::sleep(delay).await;
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
