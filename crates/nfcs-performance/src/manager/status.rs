//! Tier states and the manager's statistics.

use nfcs_cache_core::TierStats;

/// Whether a configured tier (or feature) is running.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TierState {
    /// Serving requests.
    Running,
    /// Turned off in the configuration.
    Disabled,
    /// Configured (and its configuration valid) but not running; the manager serves without it.
    NotRunning {
        /// Why, in words.
        reason: String,
    },
    /// Part of the manager but unable to serve right now (a server down, not connected yet, a
    /// circuit breaker open); reads go around it and it comes back by itself.
    Unavailable {
        /// Why, in words.
        reason: String,
    },
}

/// A configured tier or feature and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierStatus {
    /// "memory", "disk", "redis", "semantic", "cache_warming", or a custom tier's name.
    pub name: String,
    /// Its state.
    pub state: TierState,
}

impl TierStatus {
    pub(crate) fn new(name: &str, state: TierState) -> TierStatus {
        TierStatus {
            name: name.to_owned(),
            state,
        }
    }
}

/// A snapshot of the manager: per-tier statistics, tier states, and the manager's own counters.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ManagerStats {
    /// Each running tier's name and statistics, fastest tier first.
    pub tiers: Vec<(String, TierStats)>,
    /// Each configured tier's state.
    pub status: Vec<TierStatus>,
    /// Loader runs by `get_or_insert_with`.
    pub loads: u64,
    /// Callers of `get_or_insert_with` that waited for another caller's load instead of
    /// running their own.
    pub coalesced: u64,
    /// Lower-tier operations that failed and were served around (a read became a miss).
    pub tier_errors: u64,
    /// Entries copied from a lower tier into faster ones.
    pub promotions: u64,
    /// Invalidations from other nodes applied to this node's memory and disk tiers.
    pub remote_invalidations: u64,
}

impl ManagerStats {
    /// Hits over reads across the whole cache: a read counts as a hit when any tier had it.
    pub fn hit_ratio(&self) -> f64 {
        let hits: u64 = self.tiers.iter().map(|(_, stats)| stats.hits).sum();
        // Every read ends in the first tier's hit, or in a miss of the last tier it reached.
        let first_tier_reads = self
            .tiers
            .first()
            .map_or(0, |(_, stats)| stats.hits + stats.misses);
        if first_tier_reads == 0 {
            0.0
        } else {
            hits as f64 / first_tier_reads as f64
        }
    }
}
