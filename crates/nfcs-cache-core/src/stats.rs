//! Tier statistics: exact snapshots. (Metrics are published as things happen, by
//! [`telemetry`](crate::telemetry), not from these.)

use std::ops::{Add, AddAssign};

/// `hits / (hits + misses)`, or 0 when there were no reads: the one definition every cache's
/// statistics use.
pub fn hit_ratio(hits: u64, misses: u64) -> f64 {
    let reads = hits.saturating_add(misses);
    if reads == 0 {
        0.0
    } else {
        hits as f64 / reads as f64
    }
}

/// Counters and gauges of one tier.
///
/// Counters (`hits` .. `errors`) only grow over a tier's life; gauges (`entries`, `bytes`,
/// `capacity_bytes`) are the state now. Tiers keep these internally (the memory tier per
/// shard, under the shard's lock, so counting costs no extra atomic operation on the hot
/// path) and hand out a snapshot; taking one has no side effect.
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
        hit_ratio(self.hits, self.misses)
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
