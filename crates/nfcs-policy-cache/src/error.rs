//! The error every policy-cache operation returns.

use std::sync::Arc;

use nfcs_cache_core::CacheError;

use crate::context::ContextError;
use crate::evaluator::EvaluationError;

/// What went wrong in a policy-cache operation.
///
/// Cloneable, so that the one evaluation that concurrent callers share can hand each of them
/// the same error. Nothing is cached when an operation fails.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyCacheError {
    /// A configuration value cannot work.
    #[error("invalid policy cache configuration: {field}: {reason}")]
    InvalidConfig {
        /// The configuration field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The action type is empty, too long, or contains a control character.
    #[error("invalid action type {action:?}: {reason}")]
    InvalidAction {
        /// The action type, shortened to 64 characters.
        action: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The context cannot be hashed (a NaN, for example).
    #[error(transparent)]
    Context(#[from] ContextError),
    /// The evaluator could not decide.
    #[error(transparent)]
    Evaluation(#[from] EvaluationError),
    /// The tier failed in an operation whose result the caller asked for (invalidation,
    /// publishing a version). Lookups never return this: a failing tier is a counted miss.
    #[error("the {tier} tier failed: {source}")]
    Tier {
        /// The tier's name.
        tier: String,
        /// The tier's error.
        #[source]
        source: Arc<CacheError>,
    },
    /// A Cedar policy set or schema could not be loaded.
    #[cfg(feature = "cedar")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cedar")))]
    #[error(transparent)]
    Cedar(#[from] crate::cedar::CedarLoadError),
}

impl PolicyCacheError {
    pub(crate) fn tier(tier: &str, source: CacheError) -> PolicyCacheError {
        PolicyCacheError::Tier {
            tier: tier.to_owned(),
            source: Arc::new(source),
        }
    }
}
