//! The policy-decision cache behind the manager (feature `policy`):
//! [`NFCSCacheManager::policy`].
//!
//! [`NFCSCacheManager::policy`]: crate::NFCSCacheManager::policy

use std::sync::Arc;

use nfcs_policy_cache::{
    ComplianceResult, PolicyCache, PolicyCacheError, PolicyContext, PolicyEvaluator,
};

/// The policy cache the manager runs: cached constitutional decisions
/// ([`PolicyCache`]).
///
/// When the policy cache is not running (disabled, or its policies could not be loaded)
/// every call returns [`PolicyStoreError::NotRunning`] with the reason (a syntax error's file,
/// line and column, for example), which [`tier_status`](crate::NFCSCacheManager::tier_status)
/// also reports: no action is ever allowed by a policy cache that is not running.
#[derive(Clone)]
pub struct PolicyStore {
    cache: Result<PolicyCache, String>,
}

impl std::fmt::Debug for PolicyStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PolicyStore")
            .field("running", &self.cache.is_ok())
            .finish_non_exhaustive()
    }
}

/// Why a policy cache call failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyStoreError {
    /// The policy cache is not running.
    #[error("the policy cache is not running: {reason}")]
    NotRunning {
        /// Why.
        reason: String,
    },
    /// The policy cache refused the call (an unknown action, a context that does not fit the
    /// schema, a NaN in the context, a tier that failed to publish).
    #[error(transparent)]
    Policy(#[from] PolicyCacheError),
}

impl PolicyStore {
    pub(crate) fn running(cache: PolicyCache) -> PolicyStore {
        PolicyStore { cache: Ok(cache) }
    }

    pub(crate) fn not_running(reason: String) -> PolicyStore {
        PolicyStore { cache: Err(reason) }
    }

    /// The policy cache itself, when it runs.
    pub fn cache(&self) -> Option<&PolicyCache> {
        self.cache.as_ref().ok()
    }

    fn require(&self) -> Result<&PolicyCache, PolicyStoreError> {
        self.cache
            .as_ref()
            .map_err(|reason| PolicyStoreError::NotRunning {
                reason: reason.clone(),
            })
    }

    /// Decides whether `action` complies in `context`, from the cache when it can
    /// ([`PolicyCache::evaluate_compliance`]).
    ///
    /// # Errors
    /// [`PolicyStoreError`].
    pub async fn evaluate_compliance(
        &self,
        action: &str,
        context: &PolicyContext,
    ) -> Result<ComplianceResult, PolicyStoreError> {
        Ok(self.require()?.evaluate_compliance(action, context).await?)
    }

    /// Publishes a new policy version: every cached decision, on every node sharing the tier,
    /// stops being served ([`PolicyCache::publish_version`]).
    ///
    /// # Errors
    /// [`PolicyStoreError`].
    pub async fn publish_version(&self) -> Result<u64, PolicyStoreError> {
        Ok(self.require()?.publish_version().await?)
    }

    /// Replaces the policy set and publishes a new version
    /// ([`PolicyCache::publish_policy_set`]).
    ///
    /// # Errors
    /// [`PolicyStoreError`].
    pub async fn publish_policy_set(
        &self,
        evaluator: Arc<dyn PolicyEvaluator>,
    ) -> Result<u64, PolicyStoreError> {
        Ok(self.require()?.publish_policy_set(evaluator).await?)
    }

    /// Drops the cached decisions of one action type ([`PolicyCache::invalidate_action`]).
    ///
    /// # Errors
    /// [`PolicyStoreError`].
    pub async fn invalidate_action(&self, action: &str) -> Result<u64, PolicyStoreError> {
        Ok(self.require()?.invalidate_action(action).await?)
    }
}
