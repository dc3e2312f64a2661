//! The manager's own metrics: request latency by outcome, loads, promotions, tier errors.
//!
//! Handles are resolved once, when the manager is built (see
//! [`nfcs_cache_core::telemetry`]), labelled `cache = <the manager's name>`:
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `nfcs_cache_get_seconds` | histogram | `outcome` = `hit` / `miss`, `tier` | a `get` through the manager, by the tier that answered (`none` for a miss); memory hits are sampled |
//! | `nfcs_cache_set_seconds` | histogram | | a write through every tier (sampled when memory is the only tier) |
//! | `nfcs_cache_loads_total` | counter | | loader runs by `get_or_insert_with` |
//! | `nfcs_cache_coalesced_loads_total` | counter | | callers that received another caller's load |
//! | `nfcs_cache_load_waiters` | gauge | | callers waiting for another caller's load now |
//! | `nfcs_cache_promotions_total` | counter | | lower-tier hits copied into the tiers above |
//! | `nfcs_cache_promotions_skipped_total` | counter | | lower-tier hits not copied, because the key changed (or may have) since the read began |
//! | `nfcs_cache_tier_errors_total` | counter | `tier` | lower-tier operations that failed and were served around |
//! | `nfcs_cache_remote_invalidations_total` | counter | | invalidations from other nodes applied locally |

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, Unit};
use nfcs_cache_core::telemetry::{self, InstanceClaim, InstanceLabels};

/// Histogram: a `get` through the manager, labelled `outcome` and `tier`.
pub const GET_SECONDS: &str = "nfcs_cache_get_seconds";
/// Histogram: a write through the manager.
pub const SET_SECONDS: &str = "nfcs_cache_set_seconds";
/// Counter: loader runs by `get_or_insert_with`.
pub const LOADS: &str = "nfcs_cache_loads_total";
/// Counter: callers of `get_or_insert_with` that received another caller's load.
pub const COALESCED: &str = "nfcs_cache_coalesced_loads_total";
/// Gauge: callers waiting for another caller's load now.
pub const LOAD_WAITERS: &str = "nfcs_cache_load_waiters";
/// Counter: lower-tier hits copied into the tiers above.
pub const PROMOTIONS: &str = "nfcs_cache_promotions_total";
/// Counter: lower-tier hits not copied because the key changed since the read began.
pub const PROMOTIONS_SKIPPED: &str = "nfcs_cache_promotions_skipped_total";
/// Counter: lower-tier operations that failed and were served around, labelled `tier`.
pub const TIER_ERRORS: &str = "nfcs_cache_tier_errors_total";
/// Counter: invalidations from other nodes applied to this node's tiers.
pub const REMOTE_INVALIDATIONS: &str = "nfcs_cache_remote_invalidations_total";

/// An exact count and the metric counter it is published to.
pub(super) struct Count {
    value: AtomicU64,
    counter: Counter,
}

impl Count {
    fn new(counter: Counter) -> Count {
        Count {
            value: AtomicU64::new(0),
            counter,
        }
    }

    pub(super) fn add(&self, count: u64) {
        self.value.fetch_add(count, Ordering::Relaxed);
        self.counter.increment(count);
    }

    pub(super) fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

/// Per lower tier: its latency histogram for hits and its error counter.
pub(super) struct LowerMetrics {
    pub(super) hit: Histogram,
    pub(super) errors: Count,
}

/// The manager's handles (see the module documentation).
pub(super) struct ManagerMetrics {
    /// The manager's name, the `cache` label of everything it reports.
    pub(super) instance: String,
    memory_hit: Histogram,
    miss: Histogram,
    set: Histogram,
    pub(super) lower: Vec<LowerMetrics>,
    pub(super) loads: Count,
    pub(super) coalesced: Count,
    pub(super) waiters: Gauge,
    pub(super) promotions: Count,
    pub(super) promotions_skipped: Count,
    pub(super) remote_invalidations: Count,
    /// Keeps the manager's name claimed, so that two live managers never report under one
    /// name (the second is renamed; see `telemetry`).
    _claim: InstanceClaim,
}

/// Claims `name` for a manager (renamed `name-2`, ... while another live manager holds it).
pub(super) fn claim(name: &str) -> InstanceClaim {
    InstanceClaim::new(InstanceLabels::new(name, "manager"))
}

impl ManagerMetrics {
    /// Handles for the manager `claim` names, over lower tiers named `lower`.
    pub(super) fn new(claim: InstanceClaim, lower: &[&str]) -> ManagerMetrics {
        describe();
        let instance = claim.labels().cache.clone();
        let with = |pairs: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
            std::iter::once(("cache", instance.clone()))
                .chain(pairs.iter().map(|(key, value)| (*key, (*value).to_owned())))
                .collect()
        };
        let histogram = |name: &'static str, pairs: &[(&'static str, &str)]| {
            metrics::histogram!(name, &with(pairs))
        };
        let count = |name: &'static str, pairs: &[(&'static str, &str)]| {
            Count::new(metrics::counter!(name, &with(pairs)))
        };
        ManagerMetrics {
            memory_hit: histogram(GET_SECONDS, &[("outcome", "hit"), ("tier", "memory")]),
            miss: histogram(GET_SECONDS, &[("outcome", "miss"), ("tier", "none")]),
            set: histogram(SET_SECONDS, &[]),
            lower: lower
                .iter()
                .map(|tier| LowerMetrics {
                    hit: histogram(GET_SECONDS, &[("outcome", "hit"), ("tier", tier)]),
                    errors: count(TIER_ERRORS, &[("tier", tier)]),
                })
                .collect(),
            loads: count(LOADS, &[]),
            coalesced: count(COALESCED, &[]),
            waiters: metrics::gauge!(LOAD_WAITERS, &with(&[])),
            promotions: count(PROMOTIONS, &[]),
            promotions_skipped: count(PROMOTIONS_SKIPPED, &[]),
            remote_invalidations: count(REMOTE_INVALIDATIONS, &[]),
            instance,
            _claim: claim,
        }
    }

    /// Starts timing a request whose outcome may be a memory hit: only one in
    /// [`telemetry::MEMORY_SAMPLE_EVERY`] is timed, as the memory tier's own operations are.
    #[inline]
    pub(super) fn start_sampled(&self) -> Option<Instant> {
        telemetry::sample_request(telemetry::MEMORY_SAMPLE_EVERY).then(Instant::now)
    }

    #[inline]
    pub(super) fn memory_hit(&self, started: Option<Instant>) {
        if let Some(started) = started {
            self.memory_hit.record(started.elapsed().as_secs_f64());
        }
    }

    pub(super) fn lower_hit(&self, depth: usize, started: Instant) {
        if let Some(lower) = self.lower.get(depth) {
            lower.hit.record(started.elapsed().as_secs_f64());
        }
    }

    pub(super) fn miss(&self, started: Instant) {
        self.miss.record(started.elapsed().as_secs_f64());
    }

    pub(super) fn set(&self, took: Duration) {
        self.set.record(took.as_secs_f64());
    }

    pub(super) fn tier_error(&self, depth: usize) {
        if let Some(lower) = self.lower.get(depth) {
            lower.errors.add(1);
        }
    }

    /// Tier errors summed over lower tiers.
    pub(super) fn tier_errors(&self) -> u64 {
        self.lower.iter().map(|lower| lower.errors.get()).sum()
    }
}

fn describe() {
    metrics::describe_histogram!(
        GET_SECONDS,
        Unit::Seconds,
        "A get through the manager, by the tier that answered (outcome=hit) or none (outcome=miss); memory hits are sampled."
    );
    metrics::describe_histogram!(
        SET_SECONDS,
        Unit::Seconds,
        "A write through every tier of the manager (sampled when memory is the only tier)."
    );
    metrics::describe_counter!(LOADS, Unit::Count, "Loader runs by get_or_insert_with.");
    metrics::describe_counter!(
        COALESCED,
        Unit::Count,
        "Callers of get_or_insert_with that received another caller's load."
    );
    metrics::describe_gauge!(
        LOAD_WAITERS,
        Unit::Count,
        "Callers waiting for another caller's load now."
    );
    metrics::describe_counter!(
        PROMOTIONS,
        Unit::Count,
        "Lower-tier hits copied into the tiers above."
    );
    metrics::describe_counter!(
        PROMOTIONS_SKIPPED,
        Unit::Count,
        "Lower-tier hits not copied because the key changed (or may have) since the read began."
    );
    metrics::describe_counter!(
        TIER_ERRORS,
        Unit::Count,
        "Lower-tier operations that failed and were served around."
    );
    metrics::describe_counter!(
        REMOTE_INVALIDATIONS,
        Unit::Count,
        "Invalidations from other nodes applied to this node's tiers."
    );
}
