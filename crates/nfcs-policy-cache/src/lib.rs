//! Cached constitutional decisions: a repeated compliance check costs a lookup, not a policy
//! evaluation.
//!
//! NFCS's constitutional framework checks every action for compliance. `nfcs-policy-cache`
//! caches those decisions in any nfcs-perf cache tier (memory by default, Redis when nodes
//! share decisions), keyed by the action type and a stable hash of the context, and invalidates
//! them all at once, on every node, when a new policy set is published.
//!
//! # What it provides
//!
//! - [`PolicyCache`]: [`evaluate_compliance`](PolicyCache::evaluate_compliance) serves a cached
//!   decision or runs a full evaluation, and returns a [`ComplianceResult`] with the decision,
//!   the evaluation time, whether it was a cache hit and a complexity score. Concurrent misses
//!   on one key evaluate once (the `nfcs-single-flight` crate, shared with the facade): the
//!   leader looks in the tier again after it becomes the leader, hands its decision to the
//!   waiters before it writes the tier and keeps the flight until the write is done; when a
//!   leader is cancelled or its evaluator panics, one waiter takes over. Keys are
//!   `policy_{action}_v{version}_{context hash}`; [`publish_version`](PolicyCache::publish_version)
//!   writes a new random policy version to the tier, which invalidates every cached decision in
//!   O(1) for every node sharing the tier; [`invalidate_action`](PolicyCache::invalidate_action)
//!   drops one action type's decisions. TTL 1800 s by default ([`PolicyCacheConfig`]).
//! - Time from a [`Clock`](nfcs_cache_core::Clock) ([`PolicyCacheConfig::clock`]): the
//!   version refresh interval is measured on it, and the memory tier that
//!   [`PolicyCache::with_config`] builds expires decisions on it, so tests advance a
//!   [`ManualClock`](nfcs_cache_core::ManualClock) instead of sleeping.
//! - [`PolicyContext`]: the context of a check, with a canonical encoding and a stable XXH3
//!   hash (independent of key order, identical across processes, platforms and compilers;
//!   NaN refused). The encoding is specified in the [`context`] module.
//! - [`PolicyEvaluator`]: the policy engine trait, with [`evaluator_fn`] for closures.
//! - [`cedar::CedarEvaluator`] (feature `cedar`): policies written in Cedar, loaded from files
//!   or strings, optionally validated against a schema; syntax errors carry line and column.
//! - Metrics through the `metrics` facade, every series labelled `cache` with
//!   [`PolicyCacheConfig::instance`]: `nfcs_policy_evaluation_seconds{path="cached"|"full"|"coalesced"}`
//!   histograms; hit, miss, evaluation, corrupt-entry, stale-entry, tier-error,
//!   evaluation-error and published-version counters; a gauge of callers waiting for a
//!   concurrent evaluation (see the `METRIC_*` constants). Handles are resolved once, when the
//!   cache is built, so the recorder must be installed before; help texts and units are
//!   described then too. The memory tier [`PolicyCache::new`] builds reports as
//!   `tier="policy"`, apart from a manager's `tier="memory"`. No recorder is installed.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use nfcs_policy_cache::{evaluator_fn, ContextValue, PolicyCache, PolicyContext, PolicyDecision};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let evaluations = Arc::new(AtomicU32::new(0));
//! let counter = Arc::clone(&evaluations);
//! let cache = PolicyCache::new(evaluator_fn(move |_action: &str, context: &PolicyContext| {
//!     counter.fetch_add(1, Ordering::Relaxed);
//!     Ok(match context.get("risk") {
//!         Some(ContextValue::Int(risk)) if *risk > 7 => PolicyDecision::deny(["high-risk"], 2),
//!         _ => PolicyDecision::allow(["default-allow"], 2),
//!     })
//! }))?;
//!
//! let context = PolicyContext::new().with("risk", 9).with("agent", "planner");
//! let first = cache.evaluate_compliance("deploy", &context).await?;
//! assert!(!first.is_allowed() && !first.cache_hit);
//! assert_eq!(first.reasons(), ["high-risk"]);
//!
//! let second = cache.evaluate_compliance("deploy", &context).await?;
//! assert!(second.cache_hit);
//! assert_eq!(evaluations.load(Ordering::Relaxed), 1);
//!
//! // A new policy version: every cached decision is gone, on every node sharing the tier.
//! cache.publish_version().await?;
//! assert!(!cache.evaluate_compliance("deploy", &context).await?.cache_hit);
//! # Ok(())
//! # }
//! ```
//!
//! With the `cedar` feature, the evaluator is a Cedar policy set:
//!
#![cfg_attr(feature = "cedar", doc = "```")]
#![cfg_attr(not(feature = "cedar"), doc = "```ignore")]
//! use std::sync::Arc;
//! use nfcs_policy_cache::cedar::CedarEvaluator;
//! use nfcs_policy_cache::{PolicyCache, PolicyContext};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let constitution = CedarEvaluator::from_policies(r#"
//!     @id("allow-by-default")
//!     permit(principal, action, resource);
//!     @id("forbid-high-risk")
//!     forbid(principal, action == Action::"deploy", resource) when { context.risk > 7 };
//! "#)?;
//! let cache = PolicyCache::new(constitution)?;
//! let result = cache
//!     .evaluate_compliance("deploy", &PolicyContext::new().with("risk", 9))
//!     .await?;
//! assert!(!result.is_allowed());
//! assert_eq!(result.reasons(), ["forbid-high-risk"]);
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! - `cedar`: the [`cedar`] module and its [`CedarEvaluator`](cedar::CedarEvaluator)
//!   (the `cedar-policy` crate, core language without extensions).

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cache;
pub mod context;
mod error;
mod evaluator;
mod telemetry;

#[cfg(feature = "cedar")]
#[cfg_attr(docsrs, doc(cfg(feature = "cedar")))]
pub mod cedar;

pub use cache::{
    ALL_DECISIONS, ComplianceResult, DEFAULT_MEMORY_BYTES, DEFAULT_TTL, MAX_ACTION_LEN,
    MAX_VERSION_REFRESH, MEMORY_TIER_NAME, PolicyCache, PolicyCacheConfig, PolicyCacheStats,
    VERSION_KEY, action_pattern,
};
pub use context::{ContextError, ContextValue, PolicyContext};
pub use error::PolicyCacheError;
pub use evaluator::{
    EvaluationError, FnEvaluator, PolicyDecision, PolicyEvaluator, Verdict, evaluator_fn,
};
pub use telemetry::{
    METRIC_CORRUPT, METRIC_EVALUATION_ERRORS, METRIC_EVALUATION_SECONDS, METRIC_EVALUATIONS,
    METRIC_HITS, METRIC_MISSES, METRIC_STALE, METRIC_TIER_ERRORS, METRIC_VERSIONS_PUBLISHED,
    METRIC_WAITING,
};
