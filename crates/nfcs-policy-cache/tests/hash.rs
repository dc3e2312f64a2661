//! The context hash: canonical, order-independent, and pinned by golden values.

use std::collections::BTreeMap;

use nfcs_policy_cache::{ContextError, ContextValue, PolicyCache, PolicyCacheError, PolicyContext};

use crate::support::{CountingEvaluator, drain_decisions, memory_tier};

/// The context that `tests/golden_hash.py` hashes (keep the two in step).
fn golden_context() -> PolicyContext {
    let mut scope = BTreeMap::new();
    scope.insert("region".to_owned(), ContextValue::from("eu-west"));
    scope.insert("tags".to_owned(), ContextValue::from(vec!["a", "b"]));
    scope.insert(
        "limits".to_owned(),
        ContextValue::List(vec![ContextValue::Int(1), ContextValue::Float(2.5)]),
    );
    PolicyContext::new()
        .with("agent", "planner")
        .with("risk", 7)
        .with("approved", false)
        .with("score", 0.25)
        .with("offset", -0.0)
        .with("delta", -3)
        .with("note", ContextValue::Null)
        .with("label", "naïve ✓")
        .with("scope", ContextValue::Record(scope))
}

#[test]
fn golden_hashes_match_an_independent_implementation() {
    // These values were computed by tests/golden_hash.py, a separate Python implementation of
    // the documented encoding fed to the `xxhash` package's XXH3-64. If this test fails, the
    // hash changed: every cached decision of every deployed node would be orphaned, so change
    // it only on purpose (and recompute the values with the script).
    assert_eq!(
        PolicyContext::new().stable_hash().unwrap(),
        0x935c_86f6_6598_83f6
    );
    assert_eq!(
        golden_context().stable_hash().unwrap(),
        0x1e55_4a57_4d5a_381a
    );
}

#[test]
fn key_order_does_not_change_the_hash() {
    let forwards = PolicyContext::new()
        .with("a", 1)
        .with("b", "two")
        .with("c", vec![3, 4]);
    let backwards = PolicyContext::new()
        .with("c", vec![3, 4])
        .with("b", "two")
        .with("a", 1);
    assert_eq!(
        forwards.stable_hash().unwrap(),
        backwards.stable_hash().unwrap()
    );

    // JSON objects listing their keys in different orders (also nested ones).
    let one: serde_json::Value =
        serde_json::from_str(r#"{"risk": 3, "scope": {"x": 1, "y": [true, null]}, "agent": "a"}"#)
            .unwrap();
    let two: serde_json::Value =
        serde_json::from_str(r#"{"agent": "a", "scope": {"y": [true, null], "x": 1}, "risk": 3}"#)
            .unwrap();
    let one = PolicyContext::try_from(one).unwrap();
    let two = PolicyContext::try_from(two).unwrap();
    assert_eq!(one.stable_hash().unwrap(), two.stable_hash().unwrap());
    // List order does matter.
    let swapped = PolicyContext::new()
        .with("c", vec![4, 3])
        .with("b", "two")
        .with("a", 1);
    assert_ne!(
        forwards.stable_hash().unwrap(),
        swapped.stable_hash().unwrap()
    );
}

#[tokio::test]
async fn contexts_in_another_order_share_one_cache_key() {
    let cache = PolicyCache::new(CountingEvaluator::new()).unwrap();
    let forwards = PolicyContext::new().with("risk", 2).with("agent", "a");
    let backwards = PolicyContext::new().with("agent", "a").with("risk", 2);
    assert_eq!(
        cache.decision_key("read", &forwards).await.unwrap(),
        cache.decision_key("read", &backwards).await.unwrap()
    );
    assert!(
        !cache
            .evaluate_compliance("read", &forwards)
            .await
            .unwrap()
            .cache_hit
    );
    assert!(
        cache
            .evaluate_compliance("read", &backwards)
            .await
            .unwrap()
            .cache_hit
    );
}

#[test]
fn json_conversion_keeps_integers_and_floats_apart() {
    let context =
        PolicyContext::try_from(serde_json::json!({"int": 1, "float": 1.0, "big": -5})).unwrap();
    assert_eq!(context.get("int"), Some(&ContextValue::Int(1)));
    assert_eq!(context.get("float"), Some(&ContextValue::Float(1.0)));
    assert_ne!(
        PolicyContext::new().with("x", 1).stable_hash().unwrap(),
        PolicyContext::new().with("x", 1.0).stable_hash().unwrap()
    );
    assert!(matches!(
        PolicyContext::try_from(serde_json::json!({"huge": u64::MAX})),
        Err(ContextError::UnsupportedNumber { .. })
    ));
    assert!(matches!(
        PolicyContext::try_from(serde_json::json!([1, 2])),
        Err(ContextError::NotAnObject { .. })
    ));
}

#[tokio::test]
async fn nan_is_a_clear_error_and_nothing_is_cached() {
    let evaluator = CountingEvaluator::new();
    let tier = memory_tier();
    let cache =
        PolicyCache::with_tier(evaluator.clone(), tier.clone(), Default::default()).unwrap();
    let context = PolicyContext::new().with("risk", 2).with(
        "scores",
        ContextValue::List(vec![
            ContextValue::Float(0.5),
            ContextValue::Float(f64::NAN),
        ]),
    );
    let error = cache
        .evaluate_compliance("read", &context)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, PolicyCacheError::Context(ContextError::NotANumber { path }) if path == "$.scores[1]"),
        "{error:?}"
    );
    assert!(error.to_string().contains("$.scores[1]"), "{error}");
    assert_eq!(evaluator.count(), 0);
    assert_eq!(drain_decisions(tier.as_ref()).await, 0);
}
