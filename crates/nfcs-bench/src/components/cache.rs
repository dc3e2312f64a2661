//! The cache component: the spec's hit-ratio test and a Zipf workload through the whole
//! manager (memory and disk, and Redis where configured).
//!
//! - **Hit ratio** (the spec's test): `hit_ratio_keys` keys written, then each read once; the
//!   ratio of reads that found their value. Target: `targets.cache_hit_ratio`.
//! - **Zipf**: `zipf_operations` operations on `zipf_keys` keys drawn from a Zipf distribution
//!   of exponent `zipf_exponent` (seeded), `write_fraction` of them writes, the rest reads that
//!   write the key on a miss (read-through); latency percentiles of reads and writes, the hit
//!   ratio overall and per tier (from the tiers' own counters over the phase), and the
//!   evictions per second.

use std::time::Instant;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Zipf};

use crate::components::{Component, RunContext};
use crate::error::BenchError;
use crate::report::{Better, ComponentReport, Measurement, Target};
use crate::stats::{LatencySummary, latency_histogram, record};

/// Runs the cache component.
///
/// # Errors
/// [`BenchError::Cache`] when the manager fails.
pub async fn run(context: &RunContext) -> Result<ComponentReport, BenchError> {
    let started = Instant::now();
    let config = &context.config.cache_benchmark;
    let mut report = ComponentReport::new(Component::Cache);
    let system = &context.system;
    let value = vec![0x5a_u8; config.value_size];

    // The spec's hit-ratio test.
    let keys = config.hit_ratio_keys;
    let mut found = 0u64;
    for key in 0..keys {
        system
            .cache_set(&format!("bench_hit_{key}"), &value)
            .await?;
    }
    for key in 0..keys {
        found += u64::from(
            system
                .cache_get(&format!("bench_hit_{key}"))
                .await?
                .is_some(),
        );
    }
    report.push(Measurement::with_target(
        "cache_hit_ratio",
        found as f64 / keys as f64,
        "ratio",
        Target::at_least(context.config.targets.cache_hit_ratio),
    ));

    // Zipf through the manager.
    let manager = system.manager();
    let before = manager.stats();
    let zipf = Zipf::new(config.zipf_keys as f64, config.zipf_exponent)
        .map_err(|error| BenchError::config("cache_benchmark.zipf_exponent", error.to_string()))?;
    let mut random = StdRng::seed_from_u64(0x5eed);
    let (mut reads, mut writes) = (latency_histogram(), latency_histogram());
    let (mut read_hits, mut read_count) = (0u64, 0u64);
    let bar = context
        .progress
        .steps("cache Zipf workload", config.zipf_operations);
    let phase = Instant::now();
    for operation in 0..config.zipf_operations {
        let key = format!("bench_zipf_{}", zipf.sample(&mut random) as u64);
        let write = rand::RngExt::random_bool(&mut random, config.write_fraction);
        let call = Instant::now();
        if write {
            system.cache_set(&key, &value).await?;
            record(&mut writes, call.elapsed());
        } else {
            let hit = system.cache_get(&key).await?.is_some();
            record(&mut reads, call.elapsed());
            read_count += 1;
            if hit {
                read_hits += 1;
            } else {
                system.cache_set(&key, &value).await?;
            }
        }
        if operation % 1024 == 0 {
            bar.set_position(operation);
        }
    }
    let phase_s = phase.elapsed().as_secs_f64();
    bar.finish_and_clear();
    manager.flush_metrics();
    let after = manager.stats();

    report.push(
        Measurement::info(
            "zipf_hit_ratio",
            read_hits as f64 / read_count.max(1) as f64,
            "ratio",
        )
        .better(Better::Higher),
    );
    for (operation, histogram) in [("get", &reads), ("set", &writes)] {
        let summary = LatencySummary::of(histogram);
        for (name, value) in [
            ("zipf_latency_p50", summary.p50),
            ("zipf_latency_p95", summary.p95),
            ("zipf_latency_p99", summary.p99),
        ] {
            report.push(
                Measurement::info(name, value, "s")
                    .label("operation", operation)
                    .better(Better::Lower),
            );
        }
    }
    report.push(
        Measurement::info(
            "zipf_throughput",
            config.zipf_operations as f64 / phase_s,
            "ops/s",
        )
        .better(Better::Higher),
    );
    let mut evictions = 0u64;
    for (name, stats) in &after.tiers {
        let Some((_, earlier)) = before.tiers.iter().find(|(earlier, _)| earlier == name) else {
            continue;
        };
        let hits = stats.hits.saturating_sub(earlier.hits);
        let misses = stats.misses.saturating_sub(earlier.misses);
        evictions += stats.evictions.saturating_sub(earlier.evictions);
        if hits + misses > 0 {
            report.push(
                Measurement::info(
                    "tier_hit_ratio",
                    hits as f64 / (hits + misses) as f64,
                    "ratio",
                )
                .label("tier", name),
            );
        }
        report.push(
            Measurement::info(
                "tier_evictions",
                stats.evictions.saturating_sub(earlier.evictions) as f64,
                "count",
            )
            .label("tier", name),
        );
        report
            .push(Measurement::info("tier_bytes", stats.bytes as f64, "bytes").label("tier", name));
    }
    report.push(
        Measurement::info("eviction_rate", evictions as f64 / phase_s, "evictions/s")
            .better(Better::Lower),
    );
    report.note(format!(
        "Tiers: {}. Hit-ratio test: {keys} keys written then read. Zipf: {} operations on {} keys, exponent {}, {} % \
         writes, {} B values, reads write the key on a miss; per-tier hit ratios from the tiers' own counters (a lower \
         tier only sees the upper tiers' misses).",
        system.describe().tiers.join(", "),
        config.zipf_operations,
        config.zipf_keys,
        config.zipf_exponent,
        config.write_fraction * 100.0,
        config.value_size
    ));
    report.duration_s = started.elapsed().as_secs_f64();
    Ok(report)
}
