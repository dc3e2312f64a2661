//! The AutoPerformanceOptimizer on a real suite: a deliberately undersized memory tier is
//! grown by its miss-ratio curve to a hit ratio of at least 0.9 within the limit; a system
//! where nothing can help is left as it is, and the optimizer says why.

// In tests a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod support;

use nfcs_bench::components::Component;
use nfcs_bench::optimizer::{AutoPerformanceOptimizer, Optimization};
use nfcs_bench::report::Profile;
use nfcs_bench::suite::{NFCSBenchmarkSuite, SuiteOptions};
use nfcs_performance::ByteSize;

const MIB: u64 = 1 << 20;

async fn optimizer(
    memory: u64,
    directory: &std::path::Path,
    limit: u64,
) -> AutoPerformanceOptimizer {
    let mut config = support::embedded_config(false);
    config.cache.memory.max_size = ByteSize::new(memory);
    config.cache.memory.miss_ratio_curves = true;
    config.cache.memory.sampling_rate = 0.1;
    config.cache.memory.hash_seed = Some(7); // the same sample of keys in every run
    config.cache.cache_warming.enabled = false;
    config.cache_benchmark.zipf_operations = 100_000;
    let suite = NFCSBenchmarkSuite::new(
        config,
        SuiteOptions {
            work_dir: directory.to_owned(),
            profile: Profile::Full,
            ..SuiteOptions::default()
        },
    )
    .await
    .unwrap();
    AutoPerformanceOptimizer::new(suite, limit).components(&[Component::Cache])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undersized_memory_tier_is_grown_to_the_target_within_the_limit() {
    let directory = tempfile::tempdir().unwrap();
    let mut optimizer = optimizer(MIB, directory.path(), 64 * MIB).await;
    let report = optimizer.optimize_system_performance(false).await.unwrap();
    let before = report.before.memory_hit_ratio.unwrap();
    assert!(before < 0.8, "undersized: {before}");
    let Some(outcome) = report.outcomes.last() else {
        panic!("{:#?}", report.plan);
    };
    let Optimization::GrowMemory {
        from,
        to,
        predicted_hit_ratio,
    } = outcome.proposal.optimization
    else {
        panic!("{outcome:?}");
    };
    for round in &report.outcomes {
        println!(
            "round: {:?}: hit ratio {:?} -> {:?}, kept: {}",
            round.proposal.optimization, round.before, round.after, round.kept
        );
    }
    let _ = (from, predicted_hit_ratio);
    assert_eq!(
        report.outcomes[0].proposal.optimization,
        report.plan.proposals[0].optimization
    );
    assert!(
        matches!(report.outcomes[0].proposal.optimization, Optimization::GrowMemory { from, .. } if from == MIB)
    );
    assert!(report.outcomes.len() <= 3, "{:#?}", report.outcomes);
    assert!(from >= MIB && to > from && to <= 64 * MIB, "{to}");
    assert!(outcome.kept);
    let after = report.after.as_ref().unwrap().memory_hit_ratio.unwrap();
    assert!(after >= 0.9, "after: {after}");
    let memory = optimizer.suite().system().manager().memory().unwrap();
    assert_eq!(
        memory.capacity(),
        to,
        "the running system keeps the new budget"
    );
    // The other rules had nothing to look at, and say so.
    assert!(
        report
            .plan
            .unchanged
            .iter()
            .any(|(rule, why)| *rule == "cgl_fps" && why.contains("did not run"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_nothing_can_help_nothing_changes_and_the_optimizer_says_why() {
    let directory = tempfile::tempdir().unwrap();
    // Undersized, but already at the limit: nothing to grow into.
    let mut optimizer = optimizer(MIB, directory.path(), MIB).await;
    let report = optimizer.optimize_system_performance(false).await.unwrap();
    assert!(report.plan.proposals.is_empty(), "{:#?}", report.plan);
    assert!(report.outcomes.is_empty() && report.after.is_none());
    let (_, why) = report
        .plan
        .unchanged
        .iter()
        .find(|(rule, _)| *rule == "cache_hit_ratio")
        .unwrap();
    assert!(why.contains("already at the limit"), "{why}");
    assert_eq!(
        optimizer
            .suite()
            .system()
            .manager()
            .memory()
            .unwrap()
            .capacity(),
        MIB
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_plans_and_applies_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let mut optimizer = optimizer(MIB, directory.path(), 64 * MIB).await;
    let report = optimizer.optimize_system_performance(true).await.unwrap();
    assert!(report.dry_run);
    assert_eq!(report.plan.proposals.len(), 1, "{:#?}", report.plan);
    assert!(report.outcomes.is_empty());
    assert_eq!(
        optimizer
            .suite()
            .system()
            .manager()
            .memory()
            .unwrap()
            .capacity(),
        MIB
    );
}
