//! The online miss-ratio curves against the exact ones (the memory tier run at every size of
//! the grid) on three traces. The accuracy at the 1 % rate the manager uses, on larger traces,
//! is measured by `examples/mrc_accuracy.rs` (docs/benchmarks.md); here the traces are small
//! enough for a test, so the rates are higher.

use nfcs_cache_core::EvictionPolicy;
use nfcs_cache_core::mrc::size_grid;

use crate::support::traces::{self, Trace};

fn errors(trace: &Trace, rate: f64) -> [f64; 2] {
    let footprint = trace.footprint(EvictionPolicy::S3Fifo);
    let sizes = size_grid(footprint / 50, footprint, 8);
    let estimator = traces::estimate(trace, rate, &sizes);
    [EvictionPolicy::Lru, EvictionPolicy::S3Fifo].map(|policy| {
        let exact = traces::exact_curve(trace, policy, &sizes);
        exact.mean_absolute_error(&estimator.curve(policy))
    })
}

#[test]
fn sampling_every_key_reproduces_the_exact_curves() {
    // LRU through reuse distances (the tier's LRU promotes lazily, so not exactly), S3-FIFO
    // through simulations of the tier's own code (exactly).
    for trace in [
        traces::zipf(20_000, 0.8, 200_000, 1),
        traces::scan_mix(20_000, 200_000, 3),
    ] {
        let [lru, s3fifo] = errors(&trace, 1.0);
        assert!(lru < 0.003, "{}: LRU {lru}", trace.name);
        assert!(s3fifo < 1e-9, "{}: S3-FIFO {s3fifo}", trace.name);
    }
}

#[test]
fn a_sample_of_keys_estimates_the_curves() {
    for trace in [
        traces::zipf(50_000, 0.8, 400_000, 1),
        traces::zipf_sized(50_000, 1.0, 400_000, 2),
        traces::scan_mix(50_000, 400_000, 3),
    ] {
        let [lru, s3fifo] = errors(&trace, 0.1);
        assert!(lru < 0.03, "{}: LRU {lru}", trace.name);
        assert!(s3fifo < 0.05, "{}: S3-FIFO {s3fifo}", trace.name);
    }
}
