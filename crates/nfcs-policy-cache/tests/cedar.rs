//! The Cedar evaluator on a small constitution, and its errors.

use std::sync::Arc;

use nfcs_policy_cache::cedar::{CedarEvaluator, CedarLoadError};
use nfcs_policy_cache::{
    EvaluationError, PolicyCache, PolicyCacheConfig, PolicyCacheError, PolicyContext,
    PolicyEvaluator, Verdict,
};

use crate::support::{drain_decisions, memory_tier};

const SCHEMA: &str = r#"
entity Agent;
entity System;
type ActionContext = { risk: Long, approved: Bool, agent: String };
action "read", "write", "deploy_model", "modify_constitution"
    appliesTo { principal: [Agent], resource: [System], context: ActionContext };
"#;

const CONSTITUTION: &str = r#"
@id("allow-by-default")
permit(principal, action, resource);

@id("forbid-high-risk")
forbid(principal, action, resource) when { context.risk > 7 };

@id("require-approval")
forbid(principal, action in [Action::"deploy_model", Action::"modify_constitution"], resource)
unless { context.approved };
"#;

fn constitution() -> CedarEvaluator {
    CedarEvaluator::builder()
        .policies("constitution.cedar", CONSTITUTION)
        .schema("constitution.cedarschema", SCHEMA)
        .build()
        .unwrap()
}

fn context(risk: i64, approved: bool) -> PolicyContext {
    PolicyContext::new()
        .with("risk", risk)
        .with("approved", approved)
        .with("agent", "planner")
}

#[test]
fn the_constitution_allows_and_denies_with_the_determining_policies() {
    let evaluator = constitution();
    assert_eq!(evaluator.policy_count(), 3);
    let cases: [(&str, i64, bool, Verdict, &[&str]); 6] = [
        ("read", 2, false, Verdict::Allow, &["allow-by-default"]),
        ("write", 7, false, Verdict::Allow, &["allow-by-default"]),
        ("read", 8, false, Verdict::Deny, &["forbid-high-risk"]),
        (
            "deploy_model",
            2,
            false,
            Verdict::Deny,
            &["require-approval"],
        ),
        (
            "deploy_model",
            2,
            true,
            Verdict::Allow,
            &["allow-by-default"],
        ),
        (
            "modify_constitution",
            9,
            false,
            Verdict::Deny,
            &["forbid-high-risk", "require-approval"],
        ),
    ];
    for (action, risk, approved, verdict, reasons) in cases {
        let decision = evaluator
            .evaluate(action, &context(risk, approved))
            .unwrap();
        assert_eq!(
            decision.verdict, verdict,
            "{action} risk {risk} approved {approved}"
        );
        assert_eq!(
            decision.reasons, reasons,
            "{action} risk {risk} approved {approved}"
        );
        assert!(decision.errors.is_empty());
        assert_eq!(decision.policies_evaluated, 3);
    }
}

#[tokio::test]
async fn cedar_decisions_are_cached_and_a_new_policy_set_replaces_them() {
    let tier = memory_tier();
    let cache = PolicyCache::with_tier(
        Arc::new(constitution()),
        tier.clone(),
        PolicyCacheConfig::default(),
    )
    .unwrap();
    let first = cache
        .evaluate_compliance("write", &context(5, false))
        .await
        .unwrap();
    assert!(first.is_allowed() && !first.cache_hit);
    // 3 policies + 3 context values.
    assert_eq!(first.complexity, 6);
    let second = cache
        .evaluate_compliance("write", &context(5, false))
        .await
        .unwrap();
    assert!(second.cache_hit);
    assert_eq!(second.decision, first.decision);

    // A stricter constitution: risk above 4 is forbidden.
    let stricter = CedarEvaluator::builder()
        .policies(
            "constitution.cedar",
            CONSTITUTION.replace("risk > 7", "risk > 4"),
        )
        .schema("constitution.cedarschema", SCHEMA)
        .build()
        .unwrap();
    assert_ne!(stricter.policy_set_id(), constitution().policy_set_id());
    cache.publish_policy_set(Arc::new(stricter)).await.unwrap();
    let after = cache
        .evaluate_compliance("write", &context(5, false))
        .await
        .unwrap();
    assert!(!after.cache_hit);
    assert_eq!(after.verdict(), Verdict::Deny);
    assert_eq!(after.reasons(), ["forbid-high-risk"]);
}

#[test]
fn a_syntax_error_reports_its_line_and_column() {
    let text = "@id(\"a\")\npermit(principal, action, resource)\nwhen { context.risk < };\n";
    let error = CedarEvaluator::builder()
        .policies("broken.cedar", text)
        .build()
        .unwrap_err();
    match &error {
        CedarLoadError::Syntax {
            source_name,
            line,
            column,
            ..
        } => {
            assert_eq!(source_name, "broken.cedar");
            assert_eq!((*line, *column), (3, 23), "{error}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    assert!(
        error
            .to_string()
            .contains("broken.cedar at line 3, column 23"),
        "{error}"
    );
}

#[test]
fn policies_that_do_not_fit_the_schema_are_refused_at_load() {
    let error = CedarEvaluator::builder()
        .policies(
            "c.cedar",
            "@id(\"typo\")\npermit(principal, action, resource) when { context.rsk > 1 };",
        )
        .schema("s", SCHEMA)
        .build()
        .unwrap_err();
    assert!(
        matches!(&error, CedarLoadError::Validation { policy_id, .. } if policy_id == "typo"),
        "{error:?}"
    );
    let error = CedarEvaluator::builder()
        .policies("c.cedar", CONSTITUTION)
        .schema(
            "bad.cedarschema",
            "entity Agent;\naction \"read\" appliesTo { principal: [Nobody] };",
        )
        .build()
        .unwrap_err();
    assert!(matches!(error, CedarLoadError::Schema { .. }), "{error:?}");
    let error = CedarEvaluator::builder()
        .policies("a", "@id(\"same\") permit(principal, action, resource);")
        .policies("b", "@id(\"same\") forbid(principal, action, resource);")
        .build()
        .unwrap_err();
    assert!(
        matches!(error, CedarLoadError::DuplicatePolicyId { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_context_that_does_not_fit_the_schema_is_an_error_and_nothing_is_cached() {
    let tier = memory_tier();
    let cache =
        PolicyCache::with_tier(Arc::new(constitution()), tier.clone(), Default::default()).unwrap();
    let wrong_type = PolicyContext::new()
        .with("risk", "high")
        .with("approved", false)
        .with("agent", "planner");
    let missing = PolicyContext::new().with("risk", 1);
    for bad in [wrong_type, missing] {
        let error = cache.evaluate_compliance("read", &bad).await.unwrap_err();
        assert!(
            matches!(
                &error,
                PolicyCacheError::Evaluation(EvaluationError::ContextSchema { action, .. }) if action == "read"
            ),
            "{error:?}"
        );
    }
    // Cedar has no floats.
    let float = context(1, true).with("risk", 1.5);
    let error = cache.evaluate_compliance("read", &float).await.unwrap_err();
    assert!(
        matches!(
            &error,
            PolicyCacheError::Evaluation(EvaluationError::UnsupportedValue { path, .. }) if path == "$.risk"
        ),
        "{error:?}"
    );
    assert_eq!(drain_decisions(tier.as_ref()).await, 0);
}

#[tokio::test]
async fn an_unknown_action_type_is_an_error_and_nothing_is_cached() {
    let tier = memory_tier();
    let with_schema =
        PolicyCache::with_tier(Arc::new(constitution()), tier.clone(), Default::default()).unwrap();
    let error = with_schema
        .evaluate_compliance("launch_missiles", &context(1, true))
        .await
        .unwrap_err();
    match &error {
        PolicyCacheError::Evaluation(EvaluationError::UnknownAction { action, known }) => {
            assert_eq!(action, "launch_missiles");
            assert!(known.contains(&"deploy_model".to_owned()), "{known:?}");
        }
        other => panic!("expected an unknown action, got {other:?}"),
    }
    // Without a schema, the known actions are those the policies name.
    let without_schema = CedarEvaluator::from_policies(
        "@id(\"r\") permit(principal, action == Action::\"read\", resource);",
    )
    .unwrap();
    assert_eq!(without_schema.known_actions().collect::<Vec<_>>(), ["read"]);
    assert!(
        without_schema
            .evaluate("read", &PolicyContext::new())
            .unwrap()
            .is_allowed()
    );
    assert!(matches!(
        without_schema.evaluate("write", &PolicyContext::new()),
        Err(EvaluationError::UnknownAction { .. })
    ));
    assert_eq!(drain_decisions(tier.as_ref()).await, 0);
}

#[test]
fn policies_and_schema_load_from_a_directory() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(directory.path().join("10-base.cedar"), CONSTITUTION).unwrap();
    std::fs::write(
        directory.path().join("20-extra.cedar"),
        "forbid(principal, action == Action::\"write\", resource) when { context.agent == \"rogue\" };",
    )
    .unwrap();
    std::fs::write(directory.path().join("constitution.cedarschema"), SCHEMA).unwrap();
    let evaluator = CedarEvaluator::from_path(directory.path()).unwrap();
    assert!(evaluator.has_schema());
    assert_eq!(evaluator.policy_count(), 4);
    let rogue = context(1, true).with("agent", "rogue");
    let decision = evaluator.evaluate("write", &rogue).unwrap();
    assert_eq!(decision.verdict, Verdict::Deny);
    // A policy without @id is named after its file and position.
    let expected = format!(
        "{}:policy0",
        directory.path().join("20-extra.cedar").display()
    );
    assert_eq!(decision.reasons, [expected]);

    let missing = CedarEvaluator::from_path(directory.path().join("nope.cedar")).unwrap_err();
    assert!(matches!(missing, CedarLoadError::Io { .. }), "{missing:?}");
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        CedarEvaluator::from_path(empty.path()),
        Err(CedarLoadError::NoPolicies { .. })
    ));
}
