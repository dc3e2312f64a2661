//! PolicyCache: hits, versions across caches, TTL, single flight, invalidation, bad input,
//! metrics. Time is a `ManualClock` and concurrency is ordered by `Notify` and counters: no
//! test sleeps.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use nfcs_cache_core::{Bytes, CacheTier, ManualClock};
use nfcs_policy_cache::{
    MEMORY_TIER_NAME, PolicyCache, PolicyCacheConfig, PolicyCacheError, PolicyContext, VERSION_KEY,
    Verdict,
};

use crate::support::{
    BlockingEvaluator, CountingEvaluator, DownTier, GatedTier, drain_decisions, memory_tier,
    memory_tier_on, node, until,
};

/// The callers of the single-flight tests.
const CALLERS: u64 = 10_000;

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
    let manual = ManualClock::new();
    // `with_config` builds the memory tier on the configured clock.
    let cache = PolicyCache::with_config(
        evaluator.clone(),
        PolicyCacheConfig::default()
            .ttl(Duration::from_millis(300))
            .clock(manual.clock()),
    )
    .unwrap();
    assert_eq!(cache.tier().name(), MEMORY_TIER_NAME);
    cache
        .evaluate_compliance("deploy", &context(2))
        .await
        .unwrap();
    manual.advance(Duration::from_millis(299));
    assert!(
        cache
            .evaluate_compliance("deploy", &context(2))
            .await
            .unwrap()
            .cache_hit
    );
    manual.advance(Duration::from_millis(1));
    assert!(
        !cache
            .evaluate_compliance("deploy", &context(2))
            .await
            .unwrap()
            .cache_hit,
        "a decision is served after its TTL"
    );
    assert_eq!(evaluator.count(), 2);
}

#[tokio::test]
async fn a_node_with_a_refresh_interval_sees_a_new_version_once_the_interval_has_passed() {
    let evaluator = CountingEvaluator::new();
    let manual = ManualClock::new();
    let tier = memory_tier_on(&manual);
    let publisher = node(&evaluator, &tier);
    let lazy = PolicyCache::with_tier(
        evaluator.clone(),
        tier.clone(),
        PolicyCacheConfig::default()
            .version_refresh(Duration::from_secs(10))
            .clock(manual.clock()),
    )
    .unwrap();
    lazy.evaluate_compliance("deploy", &context(2))
        .await
        .unwrap();
    let old_version = lazy.current_version().await.unwrap();
    let new_version = publisher.publish_version().await.unwrap();
    manual.advance(Duration::from_millis(9_999));
    assert_eq!(
        lazy.current_version().await.unwrap(),
        old_version,
        "within the interval the node trusts its copy"
    );
    assert!(
        lazy.evaluate_compliance("deploy", &context(2))
            .await
            .unwrap()
            .cache_hit
    );
    manual.advance(Duration::from_millis(1));
    assert_eq!(lazy.current_version().await.unwrap(), new_version);
    assert!(
        !lazy
            .evaluate_compliance("deploy", &context(2))
            .await
            .unwrap()
            .cache_hit
    );
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

/// Spawns `count` evaluations of the same cold (action, context).
fn spawn_callers(
    cache: &PolicyCache,
    count: u64,
) -> Vec<tokio::task::JoinHandle<Result<nfcs_policy_cache::ComplianceResult, PolicyCacheError>>> {
    (0..count)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.evaluate_compliance("deploy", &context(9)).await })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_misses_on_one_key_evaluate_once() {
    let evaluator = BlockingEvaluator::new(false);
    let cache = node(&evaluator, &memory_tier());
    let callers = spawn_callers(&cache, CALLERS);
    // The first caller is evaluating (blocked) and every other one waits for its flight.
    until("every caller waits for the one evaluation", || {
        evaluator.calls() == 1 && cache.stats().waiting == CALLERS - 1
    })
    .await;
    assert_eq!(cache.stats().in_flight, 1);
    evaluator.release.notify_one();
    let mut coalesced = 0;
    for caller in callers {
        let result = caller.await.unwrap().unwrap();
        assert_eq!(result.verdict(), Verdict::Deny);
        assert_eq!(result.reasons(), ["high-risk"]);
        coalesced += u64::from(result.coalesced);
    }
    assert_eq!(evaluator.calls(), 1, "the evaluator ran more than once");
    assert_eq!(coalesced, CALLERS - 1);
    let stats = cache.stats();
    assert_eq!(
        (stats.evaluations, stats.coalesced, stats.hits, stats.misses),
        (1, CALLERS - 1, 0, CALLERS)
    );
    assert_eq!((stats.waiting, stats.in_flight), (0, 0));
}

/// The leader is cancelled (its task aborted) while it holds the flight and has not decided:
/// here in its second look, which a gated tier holds; the evaluator is synchronous, so an
/// await in the flight is the only place a task can be cancelled. Exactly one of the waiters
/// takes over and evaluates; the others get its decision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_callers_evaluate_once_when_the_first_leader_is_cancelled() {
    let evaluator = CountingEvaluator::new();
    let tier = GatedTier::new(memory_tier());
    // Read 1 is the leader's first look (a miss), read 2 its second look, held at the gate.
    tier.hold_read(2);
    let cache = node(&evaluator, &tier);
    let leader = spawn_callers(&cache, 1).remove(0);
    until("the leader holds the flight, in its second look", || {
        tier.arrived() == 1
    })
    .await;
    assert_eq!(cache.stats().in_flight, 1);
    let waiters = spawn_callers(&cache, CALLERS - 1);
    until("every other caller waits for the leader", || {
        cache.stats().waiting == CALLERS - 1
    })
    .await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    for waiter in waiters {
        let result = waiter.await.unwrap().unwrap();
        assert_eq!(result.verdict(), Verdict::Deny);
    }
    assert_eq!(evaluator.count(), 1, "exactly one replacement evaluation");
    let stats = cache.stats();
    assert_eq!(stats.evaluations, 1);
    assert_eq!((stats.waiting, stats.in_flight), (0, 0));
}

/// The leader's evaluator panics half-way (the leader's task dies with it): its waiters are
/// not wedged, and exactly one of them evaluates again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_evaluator_panics_hands_over_to_exactly_one_waiter() {
    let evaluator = BlockingEvaluator::new(true);
    let cache = node(&evaluator, &memory_tier());
    let callers = spawn_callers(&cache, CALLERS);
    until("every caller waits for the one evaluation", || {
        evaluator.calls() == 1 && cache.stats().waiting == CALLERS - 1
    })
    .await;
    evaluator.release.notify_one();
    let mut panicked = 0;
    for caller in callers {
        match caller.await {
            Ok(result) => assert_eq!(result.unwrap().verdict(), Verdict::Deny),
            Err(error) => {
                assert!(error.is_panic());
                panicked += 1;
            }
        }
    }
    assert_eq!(panicked, 1);
    assert_eq!(
        evaluator.calls(),
        2,
        "one panicked evaluation, one replacement"
    );
    assert_eq!(cache.stats().waiting, 0);
}

/// A caller whose tier read missed but came back late (a slow lower tier) joins after the
/// leader has stored its decision and ended its flight: its second look as the new leader
/// finds the decision, so the evaluator does not run twice (the facade's old single flight
/// did, issue 11).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_whose_miss_came_back_late_finds_the_decision_in_its_second_look() {
    let evaluator = CountingEvaluator::new();
    let tier = GatedTier::new(memory_tier());
    tier.hold_read(1);
    let cache = node(&evaluator, &tier);
    let late = spawn_callers(&cache, 1).remove(0);
    until("the late caller's miss is held", || tier.arrived() == 1).await;
    let early = cache
        .evaluate_compliance("deploy", &context(9))
        .await
        .unwrap();
    assert!(!early.cache_hit && !early.coalesced);
    assert_eq!(cache.stats().in_flight, 0, "the early flight is over");
    tier.release();
    let late = late.await.unwrap().unwrap();
    assert!(late.cache_hit, "{late:?}");
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

/// Two policy caches built with different instance names report separate series, through
/// handles resolved when they were built (the recorder is only in effect during
/// construction), and their memory tiers report as `tier="policy"`.
#[tokio::test]
async fn each_policy_cache_reports_under_its_own_instance() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use nfcs_policy_cache::{
        METRIC_EVALUATION_SECONDS, METRIC_EVALUATIONS, METRIC_HITS, METRIC_MISSES, METRIC_WAITING,
    };
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let evaluator = CountingEvaluator::new();
    let (first, second) = metrics::with_local_recorder(&recorder, || {
        let build = |instance: &str| {
            PolicyCache::with_config(
                evaluator.clone(),
                PolicyCacheConfig::default().instance(instance),
            )
            .unwrap()
        };
        (build("policy-metrics-a"), build("policy-metrics-b"))
    });
    assert_eq!(first.instance(), "policy-metrics-a");
    assert_eq!(second.instance(), "policy-metrics-b");
    for _ in 0..2 {
        first
            .evaluate_compliance("deploy", &context(3))
            .await
            .unwrap();
    }
    second
        .evaluate_compliance("deploy", &context(3))
        .await
        .unwrap();

    let mut counters = std::collections::BTreeMap::new();
    let mut histograms = std::collections::BTreeMap::new();
    let mut described = std::collections::BTreeSet::new();
    let mut policy_tiers = std::collections::BTreeSet::new();
    for (key, unit, description, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let label = |name: &str| {
            key.labels()
                .find(|label| label.key() == name)
                .map(|label| label.value().to_owned())
                .unwrap_or_default()
        };
        if unit.is_some() && description.is_some() {
            described.insert(key.name().to_owned());
        }
        if label("tier") == MEMORY_TIER_NAME {
            policy_tiers.insert(label("cache"));
        }
        match value {
            DebugValue::Counter(count) => {
                counters.insert((key.name().to_owned(), label("cache")), count);
            }
            DebugValue::Histogram(samples) => {
                histograms.insert((label("cache"), label("path")), samples.len());
            }
            DebugValue::Gauge(_) => {}
        }
    }
    let counter = |name: &str, cache: &str| counters[&(name.to_owned(), cache.to_owned())];
    assert_eq!(counter(METRIC_HITS, "policy-metrics-a"), 1);
    assert_eq!(counter(METRIC_HITS, "policy-metrics-b"), 0);
    assert_eq!(counter(METRIC_MISSES, "policy-metrics-a"), 1);
    assert_eq!(counter(METRIC_MISSES, "policy-metrics-b"), 1);
    assert_eq!(counter(METRIC_EVALUATIONS, "policy-metrics-a"), 1);
    assert_eq!(counter(METRIC_EVALUATIONS, "policy-metrics-b"), 1);
    let histogram = |cache: &str, path: &str| histograms[&(cache.to_owned(), path.to_owned())];
    assert_eq!(histogram("policy-metrics-a", "cached"), 1);
    assert_eq!(histogram("policy-metrics-a", "full"), 1);
    assert_eq!(histogram("policy-metrics-a", "coalesced"), 0);
    assert_eq!(histogram("policy-metrics-b", "cached"), 0);
    assert_eq!(histogram("policy-metrics-b", "full"), 1);
    for name in [
        METRIC_EVALUATION_SECONDS,
        METRIC_HITS,
        METRIC_MISSES,
        METRIC_EVALUATIONS,
        METRIC_WAITING,
    ] {
        assert!(described.contains(name), "{name} has no help text or unit");
    }
    assert_eq!(
        policy_tiers.into_iter().collect::<Vec<_>>(),
        ["policy-metrics-a", "policy-metrics-b"],
        "each cache's own memory tier reports as tier=\"policy\""
    );
}
