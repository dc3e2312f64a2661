//! Tier states and the manager's statistics.

use nfcs_cache_core::{CacheTier, TierStats};

use super::NFCSCacheManager;

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
    /// Lower-tier hits not copied into faster tiers because the key was written, deleted or
    /// invalidated (or may have been) while they were being read.
    pub promotions_skipped: u64,
    /// Invalidations from other nodes applied to this node's memory and disk tiers.
    pub remote_invalidations: u64,
    /// Callers of `get_or_insert_with` waiting for another caller's load now.
    pub waiting: u64,
    /// Loads in progress now.
    pub in_flight: u64,
    /// The semantic cache's statistics, when it runs (feature `semantic`).
    #[cfg(feature = "semantic")]
    #[cfg_attr(docsrs, doc(cfg(feature = "semantic")))]
    pub semantic: Option<nfcs_semantic::SemanticStats>,
    /// The policy cache's statistics, when it runs (feature `policy`).
    #[cfg(feature = "policy")]
    #[cfg_attr(docsrs, doc(cfg(feature = "policy")))]
    pub policy: Option<nfcs_policy_cache::PolicyCacheStats>,
}

impl NFCSCacheManager {
    /// A snapshot of every tier's statistics, the manager's counters, and the semantic and
    /// policy caches' statistics. Exact, and free of side effects: metrics are published as
    /// things happen, not by this call.
    pub fn stats(&self) -> ManagerStats {
        let inner = &self.inner;
        let mut tiers = Vec::new();
        if let Some(memory) = &inner.memory {
            tiers.push((CacheTier::name(memory).to_owned(), memory.stats()));
        }
        for lower in &inner.lower {
            tiers.push((lower.tier.name().to_owned(), lower.tier.stats()));
        }
        let metrics = &inner.metrics;
        ManagerStats {
            tiers,
            status: self.tier_status(),
            loads: metrics.loads.get(),
            coalesced: metrics.coalesced.get(),
            tier_errors: metrics.tier_errors(),
            promotions: metrics.promotions.get(),
            promotions_skipped: metrics.promotions_skipped.get(),
            remote_invalidations: metrics.remote_invalidations.get(),
            waiting: inner.flights.waiting() as u64,
            in_flight: inner.flights.in_flight() as u64,
            #[cfg(feature = "semantic")]
            semantic: inner.semantic.cache().map(|cache| cache.stats()),
            #[cfg(feature = "policy")]
            policy: inner.policy.cache().map(|cache| cache.stats()),
        }
    }
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
