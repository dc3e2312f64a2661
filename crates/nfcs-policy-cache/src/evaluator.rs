//! The policy engine behind the cache: the [`PolicyEvaluator`] trait and what it returns.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::context::{ContextError, PolicyContext};

/// Whether an action is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Verdict {
    /// The action complies with the policies.
    Allow,
    /// The action does not comply (a policy forbids it, or none permits it).
    Deny,
}

/// A policy engine's decision on one action in one context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDecision {
    /// Allow or deny.
    pub verdict: Verdict,
    /// The determining policies: for an allow, the policies that permitted it; for a deny, the
    /// policies that forbade it (empty when nothing permitted the action).
    pub reasons: Vec<String>,
    /// Policies whose evaluation failed (for example a missing context attribute), with the
    /// engine's message. Such a policy does not apply, as in Cedar; the decision is still
    /// deterministic for this context and policy set, so it is cached like any other.
    pub errors: Vec<String>,
    /// How many policies the engine evaluated to reach the decision.
    pub policies_evaluated: u64,
}

impl PolicyDecision {
    fn new<I, S>(verdict: Verdict, reasons: I, policies_evaluated: u64) -> PolicyDecision
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        PolicyDecision {
            verdict,
            reasons: reasons.into_iter().map(Into::into).collect(),
            errors: Vec::new(),
            policies_evaluated,
        }
    }

    /// An allow decision with `reasons` as the determining policies.
    pub fn allow<I, S>(reasons: I, policies_evaluated: u64) -> PolicyDecision
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        PolicyDecision::new(Verdict::Allow, reasons, policies_evaluated)
    }

    /// A deny decision with `reasons` as the determining policies.
    pub fn deny<I, S>(reasons: I, policies_evaluated: u64) -> PolicyDecision
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        PolicyDecision::new(Verdict::Deny, reasons, policies_evaluated)
    }

    /// Whether the verdict is [`Verdict::Allow`].
    pub fn is_allowed(&self) -> bool {
        self.verdict == Verdict::Allow
    }
}

/// Why an evaluator could not decide. Never cached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvaluationError {
    /// The action type is not one the policy set (or its schema) knows.
    #[error("unknown action type {action:?}{}", known_hint(.known))]
    UnknownAction {
        /// The action type that was asked about.
        action: String,
        /// Some of the action types that are known (at most 20), to help spot a typo.
        known: Vec<String>,
    },
    /// The context does not fit the schema of the action.
    #[error("the context for action {action:?} does not fit the schema: {reason}")]
    ContextSchema {
        /// The action type.
        action: String,
        /// The engine's explanation (which attribute, which type).
        reason: String,
    },
    /// The context holds a value the engine cannot represent (Cedar has no floats and no
    /// null, for instance).
    #[error("the context value at {path} ({found}) is not supported by the {engine} evaluator")]
    UnsupportedValue {
        /// Where the value is, as a path like `$.limits[2]`.
        path: String,
        /// The value's type.
        found: &'static str,
        /// The evaluator's name.
        engine: &'static str,
    },
    /// The context could not be hashed or converted.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// Anything else the evaluator reports.
    #[error("policy evaluation failed: {0}")]
    Other(String),
}

fn known_hint(known: &[String]) -> String {
    if known.is_empty() {
        String::new()
    } else {
        format!(" (known: {})", known.join(", "))
    }
}

/// A policy engine: decides whether an action complies, given its context.
///
/// Implementations are synchronous (Cedar is) and must be deterministic: the same action and
/// context under the same policy set must give the same decision, since the cache serves it
/// again. The trait is object safe; [`PolicyCache`](crate::PolicyCache) holds an
/// `Arc<dyn PolicyEvaluator>`.
pub trait PolicyEvaluator: Send + Sync {
    /// Decides on `action` in `context`.
    ///
    /// # Errors
    /// An [`EvaluationError`] when no decision can be made (unknown action, a context that does
    /// not fit); errors are never cached.
    fn evaluate(
        &self,
        action: &str,
        context: &PolicyContext,
    ) -> Result<PolicyDecision, EvaluationError>;

    /// A fingerprint of the policy set this evaluator runs (for example a hash of its policy
    /// texts). Stored with every cached decision: a cached decision made under another policy
    /// set is not served but evaluated again, so a node never serves a decision of policies it
    /// does not run. The default, 0, means "no fingerprint".
    fn policy_set_id(&self) -> u64 {
        0
    }

    /// The number of policies in the set (for reports); the default says 0 (unknown).
    fn policy_count(&self) -> usize {
        0
    }
}

macro_rules! forward_evaluator {
    ($($pointer:ty),*) => {$(
        impl<T: PolicyEvaluator + ?Sized> PolicyEvaluator for $pointer {
            fn evaluate(
                &self,
                action: &str,
                context: &PolicyContext,
            ) -> Result<PolicyDecision, EvaluationError> {
                (**self).evaluate(action, context)
            }
            fn policy_set_id(&self) -> u64 {
                (**self).policy_set_id()
            }
            fn policy_count(&self) -> usize {
                (**self).policy_count()
            }
        }
    )*};
}

forward_evaluator!(&T, Box<T>, Arc<T>);

/// An evaluator made from a closure: see [`evaluator_fn`].
#[derive(Clone)]
pub struct FnEvaluator<F> {
    function: F,
    policy_set_id: u64,
}

impl<F> std::fmt::Debug for FnEvaluator<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnEvaluator")
            .field("policy_set_id", &self.policy_set_id)
            .finish_non_exhaustive()
    }
}

impl<F> FnEvaluator<F> {
    /// This evaluator with `id` as its [`PolicyEvaluator::policy_set_id`].
    #[must_use]
    pub fn with_policy_set_id(mut self, id: u64) -> FnEvaluator<F> {
        self.policy_set_id = id;
        self
    }
}

/// Wraps a closure as a [`PolicyEvaluator`] (for tests and simple rule sets).
///
/// ```
/// use nfcs_policy_cache::{evaluator_fn, ContextValue, PolicyDecision, PolicyEvaluator, PolicyContext};
///
/// let evaluator = evaluator_fn(|action: &str, context: &PolicyContext| {
///     Ok(match context.get("risk") {
///         Some(ContextValue::Int(risk)) if *risk > 7 => PolicyDecision::deny(["high-risk"], 1),
///         _ => PolicyDecision::allow(["default"], 1),
///     })
/// });
/// let decision = evaluator.evaluate("deploy", &PolicyContext::new().with("risk", 9))?;
/// assert!(!decision.is_allowed());
/// # Ok::<(), nfcs_policy_cache::EvaluationError>(())
/// ```
pub fn evaluator_fn<F>(function: F) -> FnEvaluator<F>
where
    F: Fn(&str, &PolicyContext) -> Result<PolicyDecision, EvaluationError> + Send + Sync,
{
    FnEvaluator {
        function,
        policy_set_id: 0,
    }
}

impl<F> PolicyEvaluator for FnEvaluator<F>
where
    F: Fn(&str, &PolicyContext) -> Result<PolicyDecision, EvaluationError> + Send + Sync,
{
    fn evaluate(
        &self,
        action: &str,
        context: &PolicyContext,
    ) -> Result<PolicyDecision, EvaluationError> {
        (self.function)(action, context)
    }

    fn policy_set_id(&self) -> u64 {
        self.policy_set_id
    }
}
