//! The policy cache's metric handles: resolved once, when a [`PolicyCache`] is built, and
//! updated as decisions are served, so that a scrape reads current values at any time.
//!
//! Every series carries the `cache` label ([`PolicyCacheConfig::instance`]); the evaluation
//! histogram carries `path` too. The names are the `METRIC_*` constants of the crate root.
//!
//! [`PolicyCache`]: crate::PolicyCache
//! [`PolicyCacheConfig::instance`]: crate::PolicyCacheConfig::instance

use metrics::{Counter, Gauge, Histogram, Unit};

/// The histogram of evaluation times, labelled `path="cached"|"full"|"coalesced"`.
pub const METRIC_EVALUATION_SECONDS: &str = "nfcs_policy_evaluation_seconds";
/// Counter: lookups served from the cache.
pub const METRIC_HITS: &str = "nfcs_policy_cache_hits_total";
/// Counter: lookups that missed (including those that then waited for a concurrent evaluation).
pub const METRIC_MISSES: &str = "nfcs_policy_cache_misses_total";
/// Counter: full evaluations run.
pub const METRIC_EVALUATIONS: &str = "nfcs_policy_evaluations_total";
/// Counter: cached entries that could not be decoded or did not belong to their key.
pub const METRIC_CORRUPT: &str = "nfcs_policy_cache_corrupt_entries_total";
/// Counter: cached decisions of another policy set, evaluated again.
pub const METRIC_STALE: &str = "nfcs_policy_cache_stale_entries_total";
/// Counter: tier operations that failed (the lookup was then a miss).
pub const METRIC_TIER_ERRORS: &str = "nfcs_policy_cache_tier_errors_total";
/// Counter: evaluations that failed with an error.
pub const METRIC_EVALUATION_ERRORS: &str = "nfcs_policy_evaluation_errors_total";
/// Counter: policy versions this cache published.
pub const METRIC_VERSIONS_PUBLISHED: &str = "nfcs_policy_versions_published_total";
/// Gauge: callers waiting now for a concurrent evaluation of the same action and context.
pub const METRIC_WAITING: &str = "nfcs_policy_waiting_callers";

/// How a decision reached its caller: the `path` label of [`METRIC_EVALUATION_SECONDS`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// Found in the tier.
    Cached,
    /// Evaluated by this caller.
    Full,
    /// Evaluated by a concurrent caller this one waited for.
    Coalesced,
}

impl Path {
    fn label(self) -> &'static str {
        match self {
            Path::Cached => "cached",
            Path::Full => "full",
            Path::Coalesced => "coalesced",
        }
    }
}

/// Describes every policy metric to the recorder in effect (help texts and units). Called at
/// construction, inside whatever recorder scope the caller built the cache in.
fn describe() {
    metrics::describe_histogram!(
        METRIC_EVALUATION_SECONDS,
        Unit::Seconds,
        "Time to answer one compliance check, by path: cached (a tier hit), full (evaluated by \
         this caller) or coalesced (evaluated by a concurrent caller)."
    );
    metrics::describe_counter!(
        METRIC_HITS,
        Unit::Count,
        "Compliance checks answered from the cache."
    );
    metrics::describe_counter!(
        METRIC_MISSES,
        Unit::Count,
        "Compliance checks that found no usable cached decision (including those answered by a \
         concurrent caller's evaluation)."
    );
    metrics::describe_counter!(
        METRIC_EVALUATIONS,
        Unit::Count,
        "Full policy evaluations run."
    );
    metrics::describe_counter!(
        METRIC_CORRUPT,
        Unit::Count,
        "Cached decisions that could not be decoded or did not belong to their key (evaluated \
         again)."
    );
    metrics::describe_counter!(
        METRIC_STALE,
        Unit::Count,
        "Cached decisions made under another policy set (evaluated again)."
    );
    metrics::describe_counter!(
        METRIC_TIER_ERRORS,
        Unit::Count,
        "Tier operations of the policy cache that failed (a failed lookup is a miss)."
    );
    metrics::describe_counter!(
        METRIC_EVALUATION_ERRORS,
        Unit::Count,
        "Policy evaluations that failed (nothing cached)."
    );
    metrics::describe_counter!(
        METRIC_VERSIONS_PUBLISHED,
        Unit::Count,
        "Policy versions published by this cache."
    );
    metrics::describe_gauge!(
        METRIC_WAITING,
        Unit::Count,
        "Callers waiting now for a concurrent evaluation of the same action and context."
    );
}

/// One policy cache's handles.
pub(crate) struct PolicyMetrics {
    pub(crate) hits: Counter,
    pub(crate) misses: Counter,
    pub(crate) evaluations: Counter,
    pub(crate) corrupt: Counter,
    pub(crate) stale: Counter,
    pub(crate) tier_errors: Counter,
    pub(crate) evaluation_errors: Counter,
    pub(crate) versions_published: Counter,
    pub(crate) waiting: Gauge,
    /// Indexed by [`Path`]: cached, full, coalesced.
    evaluation_seconds: [Histogram; 3],
}

impl PolicyMetrics {
    /// Resolves every handle for the cache instance `instance`, with the recorder in effect.
    pub(crate) fn new(instance: &str) -> PolicyMetrics {
        describe();
        let labels = [("cache", instance.to_owned())];
        let histogram = |path: Path| {
            let labels = [
                ("cache", instance.to_owned()),
                ("path", path.label().to_owned()),
            ];
            metrics::histogram!(METRIC_EVALUATION_SECONDS, &labels)
        };
        PolicyMetrics {
            hits: metrics::counter!(METRIC_HITS, &labels),
            misses: metrics::counter!(METRIC_MISSES, &labels),
            evaluations: metrics::counter!(METRIC_EVALUATIONS, &labels),
            corrupt: metrics::counter!(METRIC_CORRUPT, &labels),
            stale: metrics::counter!(METRIC_STALE, &labels),
            tier_errors: metrics::counter!(METRIC_TIER_ERRORS, &labels),
            evaluation_errors: metrics::counter!(METRIC_EVALUATION_ERRORS, &labels),
            versions_published: metrics::counter!(METRIC_VERSIONS_PUBLISHED, &labels),
            waiting: metrics::gauge!(METRIC_WAITING, &labels),
            evaluation_seconds: [
                histogram(Path::Cached),
                histogram(Path::Full),
                histogram(Path::Coalesced),
            ],
        }
    }

    /// The evaluation-time histogram of `path`.
    pub(crate) fn evaluation_seconds(&self, path: Path) -> &Histogram {
        let index = match path {
            Path::Cached => 0,
            Path::Full => 1,
            Path::Coalesced => 2,
        };
        &self.evaluation_seconds[index]
    }
}

/// Counts a caller in the waiting gauge for as long as it lives, so that a waiter whose task
/// is cancelled mid-wait leaves the gauge as it found it.
pub(crate) struct WaitingGuard<'a> {
    gauge: &'a Gauge,
}

impl<'a> WaitingGuard<'a> {
    pub(crate) fn new(gauge: &'a Gauge) -> WaitingGuard<'a> {
        gauge.increment(1.0);
        WaitingGuard { gauge }
    }
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.gauge.decrement(1.0);
    }
}
