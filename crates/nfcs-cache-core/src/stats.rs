//! Tier statistics and their export through the `metrics` facade.

use std::ops::{Add, AddAssign};

/// Counters and gauges of one tier.
///
/// Counters (`hits` .. `errors`) only grow over a tier's life; gauges (`entries`, `bytes`,
/// `capacity_bytes`) are the state now. Tiers keep these internally (the memory tier per
/// shard, under the shard's lock, so counting costs no extra atomic operation on the hot
/// path) and hand out a snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierStats {
    /// Reads that found a live entry.
    pub hits: u64,
    /// Reads that found nothing (or only an expired entry).
    pub misses: u64,
    /// Successful writes (new keys and overwrites).
    pub inserts: u64,
    /// Entries removed to stay within capacity.
    pub evictions: u64,
    /// Entries removed because their TTL passed.
    pub expirations: u64,
    /// Operations that failed inside the tier (I/O, network, corruption).
    pub errors: u64,
    /// Live entries now (entries already expired but not yet reclaimed may be included).
    pub entries: u64,
    /// Bytes the entries take now, as the tier accounts them.
    pub bytes: u64,
    /// The tier's byte budget (0 when it has none).
    pub capacity_bytes: u64,
}

impl TierStats {
    /// `hits / (hits + misses)`, or 0 before the first read.
    pub fn hit_ratio(&self) -> f64 {
        let reads = self.hits + self.misses;
        if reads == 0 {
            0.0
        } else {
            self.hits as f64 / reads as f64
        }
    }

    /// Publishes the snapshot through the `metrics` facade, labelled `tier = <tier>`:
    /// counters `nfcs_cache_hits_total`, `nfcs_cache_misses_total`, `nfcs_cache_inserts_total`,
    /// `nfcs_cache_evictions_total`, `nfcs_cache_expirations_total`, `nfcs_cache_errors_total`,
    /// and gauges `nfcs_cache_entries`, `nfcs_cache_bytes`, `nfcs_cache_capacity_bytes`,
    /// `nfcs_cache_hit_ratio`.
    ///
    /// No crate of ours installs a recorder; without one this does nothing. Call it when
    /// metrics are scraped (the facade's `stats()` does).
    pub fn publish(&self, tier: &str) {
        let label = [("tier", tier.to_owned())];
        metrics::counter!("nfcs_cache_hits_total", &label).absolute(self.hits);
        metrics::counter!("nfcs_cache_misses_total", &label).absolute(self.misses);
        metrics::counter!("nfcs_cache_inserts_total", &label).absolute(self.inserts);
        metrics::counter!("nfcs_cache_evictions_total", &label).absolute(self.evictions);
        metrics::counter!("nfcs_cache_expirations_total", &label).absolute(self.expirations);
        metrics::counter!("nfcs_cache_errors_total", &label).absolute(self.errors);
        metrics::gauge!("nfcs_cache_entries", &label).set(self.entries as f64);
        metrics::gauge!("nfcs_cache_bytes", &label).set(self.bytes as f64);
        metrics::gauge!("nfcs_cache_capacity_bytes", &label).set(self.capacity_bytes as f64);
        metrics::gauge!("nfcs_cache_hit_ratio", &label).set(self.hit_ratio());
    }
}

impl Add for TierStats {
    type Output = TierStats;

    fn add(mut self, other: TierStats) -> TierStats {
        self += other;
        self
    }
}

impl AddAssign for TierStats {
    fn add_assign(&mut self, other: TierStats) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.inserts += other.inserts;
        self.evictions += other.evictions;
        self.expirations += other.expirations;
        self.errors += other.errors;
        self.entries += other.entries;
        self.bytes += other.bytes;
        self.capacity_bytes += other.capacity_bytes;
    }
}

impl std::iter::Sum for TierStats {
    fn sum<I: Iterator<Item = TierStats>>(iter: I) -> TierStats {
        iter.fold(TierStats::default(), Add::add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_and_sum() {
        assert_eq!(TierStats::default().hit_ratio(), 0.0);
        let a = TierStats {
            hits: 3,
            misses: 1,
            bytes: 10,
            ..TierStats::default()
        };
        let total: TierStats = [a, a].into_iter().sum();
        assert_eq!(total.hits, 6);
        assert_eq!(total.bytes, 20);
        assert_eq!(total.hit_ratio(), 0.75);
    }
}
