//! PolicyCache: hits, versions across caches, TTL, single flight, invalidation, bad input.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use nfcs_cache_core::{Bytes, CacheTier};
use nfcs_policy_cache::{
    PolicyCache, PolicyCacheConfig, PolicyCacheError, PolicyContext, VERSION_KEY, Verdict,
};

use crate::support::{CountingEvaluator, DownTier, SlowTier, drain_decisions, memory_tier, node};

fn context(risk: i64) -> PolicyContext {
    PolicyContext::new()
        .with("risk", risk)
        .with("agent", "planner")
}

#[tokio::test]
async fn a_repeated_check_is_a_cache_hit_with_the_same_decision() {
    let evaluator = CountingEvaluator::new();
    let cache = PolicyCache::new(evaluator.clone()).unwrap();
    let first = cache
        .evaluate_compliance("deploy", &context(9))
        .await
        .unwrap();
    assert_eq!(first.verdict(), Verdict::Deny);
    assert_eq!(first.reasons(), ["high-risk"]);
    assert!(!first.cache_hit && !first.coalesced);
    // 3 policies evaluated + 2 context values.
    assert_eq!(first.complexity, 5);

    let second = cache
        .evaluate_compliance("deploy", &context(9))
        .await
        .unwrap();
    assert!(second.cache_hit);
    assert_eq!(second.decision, first.decision);
    assert_eq!(second.complexity, 5);
    assert_eq!(evaluator.count(), 1);

    // Another context or another action is another key.
    assert!(
        cache
            .evaluate_compliance("deploy", &context(2))
            .await
            .unwrap()
            .is_allowed()
    );
    assert!(
        !cache
            .evaluate_compliance("read", &context(9))
            .await
            .unwrap()
            .cache_hit
    );
    assert_eq!(evaluator.count(), 3);
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.evaluations), (1, 3, 3));
    assert!((stats.hit_ratio() - 0.25).abs() < 1e-12);
}

#[tokio::test]
async fn publishing_a_version_invalidates_decisions_on_every_cache_sharing_the_tier() {
    let evaluator = CountingEvaluator::new();
    let tier = memory_tier();
    let node_a = node(&evaluator, &tier);
    let node_b = node(&evaluator, &tier);
    // A third node that trusts its copy of the version for an hour: the documented trade-off.
    let lazy_node = PolicyCache::with_tier(
        evaluator.clone(),
        tier.clone(),
        PolicyCacheConfig::default().version_refresh(Duration::from_secs(3600)),
    )
    .unwrap();

    assert!(
        node_b
            .evaluate_compliance("deploy", &context(2))
            .await
            .unwrap()
            .is_allowed()
    );
    // Node A sees node B's decision: one shared tier, one version.
    assert!(
        node_a
            .evaluate_compliance("deploy", &context(2))
            .await
            .unwrap()
            .cache_hit
    );
    assert!(
        lazy_node
            .evaluate_compliance("deploy", &context(2))
            .await
            .unwrap()
            .cache_hit
    );
    let old_version = node_b.current_version().await.unwrap();

    // A new policy set (strict: deny everything) is published on node A.
    evaluator.strict.store(true, Ordering::SeqCst);
    let new_version = node_a.publish_version().await.unwrap();
    assert_ne!(new_version, old_version);
    assert_eq!(node_b.current_version().await.unwrap(), new_version);

    let after = node_b
        .evaluate_compliance("deploy", &context(2))
        .await
        .unwrap();
    assert!(
        !after.cache_hit,
        "node B served a decision of the old policy version"
    );
    assert_eq!(after.verdict(), Verdict::Deny);
    assert_eq!(after.reasons(), ["strict-mode"]);
    // The lazy node keeps the old version until its refresh interval passes.
    let stale = lazy_node
        .evaluate_compliance("deploy", &context(2))
        .await
        .unwrap();
    assert!(stale.cache_hit && stale.is_allowed());
}

#[tokio::test]
async fn a_lost_version_key_never_brings_old_decisions_back() {
    let evaluator = CountingEvaluator::new();
    let tier = memory_tier();
    let cache = node(&evaluator, &tier);
    cache
        .evaluate_compliance("deploy", &context(2))
        .await
        .unwrap();
    let before = cache.current_version().await.unwrap();
    CacheTier::delete(tier.as_ref(), VERSION_KEY).await.unwrap();
    let result = cache
        .evaluate_compliance("deploy", &context(2))
        .await
        .unwrap();
    assert!(!result.cache_hit);
    assert_ne!(cache.current_version().await.unwrap(), before);
}

#[tokio::test]
async fn a_decision_of_another_policy_set_is_not_served() {
    let tier = memory_tier();
    let old_rules = CountingEvaluator::new();
    let mut new_rules = CountingEvaluator::new();
    Arc::get_mut(&mut new_rules).unwrap().policy_set_id = 2;
    let node_a = node(&old_rules, &tier);
    let node_b = node(&old_rules, &tier);
    node_a.publish_policy_set(new_rules.clone()).await.unwrap();
    node_a
        .evaluate_compliance("deploy", &context(2))
        .await
        .unwrap();
    assert_eq!(new_rules.count(), 1);
    // Node B has not loaded the new policy set yet: it must not serve node A's decision.
    let on_b = node_b
        .evaluate_compliance("deploy", &context(2))
        .await
        .unwrap();
    assert!(!on_b.cache_hit);
    assert_eq!(old_rules.count(), 1);
    assert_eq!(node_b.stats().stale_entries, 1);
}

#[tokio::test]
async fn decisions_expire_after_their_ttl() {
    let evaluator = CountingEvaluator::new();
    let cache = PolicyCache::with_tier(
        evaluator.clone(),
        memory_tier(),
        PolicyCacheConfig::default().ttl(Duration::from_millis(300)),
    )
    .unwrap();
    cache
        .evaluate_compliance("deploy", &context(2))
        .await
        .unwrap();
    assert!(
        cache
            .evaluate_compliance("deploy", &context(2))
            .await
            .unwrap()
            .cache_hit
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(
        !cache
            .evaluate_compliance("deploy", &context(2))
            .await
            .unwrap()
            .cache_hit
    );
    assert_eq!(evaluator.count(), 2);
}

#[test]
fn the_default_ttl_is_1800_seconds_and_bad_configurations_are_refused() {
    assert_eq!(PolicyCacheConfig::default().ttl, Duration::from_secs(1800));
    let error = PolicyCache::with_tier(
        CountingEvaluator::new(),
        memory_tier(),
        PolicyCacheConfig::default().ttl(Duration::ZERO),
    )
    .unwrap_err();
    assert!(
        matches!(error, PolicyCacheError::InvalidConfig { field: "ttl", .. }),
        "{error:?}"
    );
    let error = PolicyCacheConfig::default()
        .version_refresh(Duration::from_secs(7200))
        .validate()
        .unwrap_err();
    assert!(
        matches!(
            error,
            PolicyCacheError::InvalidConfig {
                field: "version_refresh",
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_misses_on_one_key_evaluate_once() {
    let evaluator = CountingEvaluator::with_delay(Duration::from_millis(200));
    let cache = PolicyCache::new(evaluator.clone()).unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let cache = cache.clone();
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            cache.evaluate_compliance("deploy", &context(9)).await
        }));
    }
    let mut coalesced_or_hit = 0;
    for task in tasks {
        let result = task.await.unwrap().unwrap();
        assert_eq!(result.verdict(), Verdict::Deny);
        assert_eq!(result.reasons(), ["high-risk"]);
        if result.coalesced || result.cache_hit {
            coalesced_or_hit += 1;
        }
    }
    assert_eq!(evaluator.count(), 1, "the evaluator ran more than once");
    assert_eq!(coalesced_or_hit, 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_leader_does_not_wedge_its_waiters() {
    let evaluator = CountingEvaluator::new();
    let slow_tier = Arc::new(SlowTier {
        inner: memory_tier(),
        delay: Duration::from_millis(300),
        slow: true.into(),
    });
    let cache = node(&evaluator, &slow_tier);
    // The leader: misses (300 ms), registers the flight, then looks once more (300 ms).
    let leader = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.evaluate_compliance("deploy", &context(9)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The waiter: misses at 400 ms and finds the leader's flight.
    let waiter = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.evaluate_compliance("deploy", &context(9)).await })
    };
    tokio::time::sleep(Duration::from_millis(350)).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    let result = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter is wedged")
        .unwrap()
        .unwrap();
    assert_eq!(result.verdict(), Verdict::Deny);
    assert_eq!(evaluator.count(), 1);
}

#[tokio::test]
async fn evaluation_errors_reach_the_caller_and_are_never_cached() {
    let evaluator = CountingEvaluator::new();
    let tier = memory_tier();
    let cache = node(&evaluator, &tier);
    for _ in 0..2 {
        let error = cache
            .evaluate_compliance("broken", &context(1))
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("unknown action type \"broken\""),
            "{error}"
        );
    }
    assert_eq!(evaluator.count(), 2);
    assert_eq!(cache.stats().evaluation_errors, 2);
    assert_eq!(drain_decisions(tier.as_ref()).await, 0);
    // Invalid action types are refused before any evaluation.
    assert!(matches!(
        cache.evaluate_compliance("", &context(1)).await,
        Err(PolicyCacheError::InvalidAction { .. })
    ));
    assert_eq!(evaluator.count(), 2);
}

#[tokio::test]
async fn invalidating_an_action_type_leaves_the_others() {
    let evaluator = CountingEvaluator::new();
    let cache = PolicyCache::new(evaluator.clone()).unwrap();
    for action in ["read", "read_all", "write"] {
        for risk in [1, 2] {
            cache
                .evaluate_compliance(action, &context(risk))
                .await
                .unwrap();
        }
    }
    assert_eq!(cache.invalidate_action("read").await.unwrap(), 2);
    assert!(
        !cache
            .evaluate_compliance("read", &context(1))
            .await
            .unwrap()
            .cache_hit
    );
    assert!(
        cache
            .evaluate_compliance("read_all", &context(1))
            .await
            .unwrap()
            .cache_hit
    );
    assert!(
        cache
            .evaluate_compliance("write", &context(2))
            .await
            .unwrap()
            .cache_hit
    );
    // Everything: "read" once more, "read_all" and "write" twice each (the version stays).
    let version = cache.current_version().await.unwrap();
    assert_eq!(cache.invalidate_all().await.unwrap(), 5);
    assert_eq!(cache.current_version().await.unwrap(), version);
}

#[tokio::test]
async fn a_corrupt_cached_entry_is_a_counted_miss_never_a_wrong_decision() {
    let evaluator = CountingEvaluator::new();
    let tier = memory_tier();
    let cache = node(&evaluator, &tier);
    let high = context(9);
    let low = context(1);
    cache.evaluate_compliance("deploy", &high).await.unwrap();
    cache.evaluate_compliance("deploy", &low).await.unwrap();
    let high_key = cache.decision_key("deploy", &high).await.unwrap();
    let low_key = cache.decision_key("deploy", &low).await.unwrap();

    // Garbage bytes.
    CacheTier::set(
        tier.as_ref(),
        &high_key,
        Bytes::from_static(b"garbage"),
        nfcs_cache_core::Ttl::Default,
    )
    .await
    .unwrap();
    let result = cache.evaluate_compliance("deploy", &high).await.unwrap();
    assert!(!result.cache_hit);
    assert_eq!(result.verdict(), Verdict::Deny);
    // Flipped bits in a real frame.
    let mut frame = CacheTier::get(tier.as_ref(), &high_key)
        .await
        .unwrap()
        .unwrap()
        .value
        .to_vec();
    let last = frame.len() - 1;
    frame[last] ^= 0x01;
    CacheTier::set(
        tier.as_ref(),
        &high_key,
        Bytes::from(frame),
        nfcs_cache_core::Ttl::Default,
    )
    .await
    .unwrap();
    assert_eq!(
        cache
            .evaluate_compliance("deploy", &high)
            .await
            .unwrap()
            .verdict(),
        Verdict::Deny
    );
    // A valid frame stored under the wrong key (the low-risk allow under the high-risk key).
    let allow = CacheTier::get(tier.as_ref(), &low_key)
        .await
        .unwrap()
        .unwrap()
        .value;
    CacheTier::set(
        tier.as_ref(),
        &high_key,
        allow,
        nfcs_cache_core::Ttl::Default,
    )
    .await
    .unwrap();
    let result = cache.evaluate_compliance("deploy", &high).await.unwrap();
    assert!(!result.cache_hit);
    assert_eq!(result.verdict(), Verdict::Deny);

    assert_eq!(cache.stats().corrupt_entries, 3);
    assert_eq!(evaluator.count(), 5);
    // And the re-evaluated decision is cached again.
    assert!(
        cache
            .evaluate_compliance("deploy", &high)
            .await
            .unwrap()
            .cache_hit
    );
}

#[tokio::test]
async fn a_tier_that_is_down_is_a_counted_miss() {
    let evaluator = CountingEvaluator::new();
    let cache = PolicyCache::with_tier(
        evaluator.clone(),
        Arc::new(DownTier),
        PolicyCacheConfig::default(),
    )
    .unwrap();
    for _ in 0..2 {
        let result = cache
            .evaluate_compliance("deploy", &context(9))
            .await
            .unwrap();
        assert!(!result.cache_hit);
        assert_eq!(result.verdict(), Verdict::Deny);
    }
    assert_eq!(evaluator.count(), 2);
    assert!(cache.stats().tier_errors >= 2);
    assert!(matches!(
        cache.publish_version().await,
        Err(PolicyCacheError::Tier { .. })
    ));
}

#[tokio::test]
async fn metrics_are_recorded_through_the_metrics_facade() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let evaluator = CountingEvaluator::new();
    let cache = PolicyCache::new(evaluator).unwrap();
    metrics::with_local_recorder(&recorder, || {
        // The futures of the memory tier complete at once, so a no-op waker drives them.
        let mut future = std::pin::pin!(async {
            cache
                .evaluate_compliance("deploy", &context(3))
                .await
                .unwrap();
            cache
                .evaluate_compliance("deploy", &context(3))
                .await
                .unwrap();
        });
        let mut task = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(future.as_mut().poll(&mut task).is_ready());
    });
    let mut histograms = Vec::new();
    let mut hits = 0;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        match (key.name(), value) {
            ("nfcs_policy_evaluation_seconds", DebugValue::Histogram(samples)) => {
                let label = key.labels().next().unwrap().value().to_owned();
                histograms.push((label, samples.len()));
            }
            ("nfcs_policy_cache_hits_total", DebugValue::Counter(count)) => hits = count,
            _ => {}
        }
    }
    histograms.sort();
    assert_eq!(
        histograms,
        [("cached".to_owned(), 1), ("full".to_owned(), 1)]
    );
    assert_eq!(hits, 1);
}
