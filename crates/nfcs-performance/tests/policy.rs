//! The policy cache behind the manager (feature `policy`): from the `[policy]` section, and
//! through the builder.

use std::sync::Arc;

use nfcs_performance::policy_cache::cedar::CedarEvaluator;
use nfcs_performance::prelude::*;
use nfcs_performance::{ConfigError, PolicyStoreError, PolicyTier};

const SCHEMA: &str = r#"
entity Agent;
entity System;
type ActionContext = { risk: Long, approved: Bool };
action "read", "deploy_model" appliesTo { principal: [Agent], resource: [System], context: ActionContext };
"#;

const CONSTITUTION: &str = r#"
@id("allow-by-default")
permit(principal, action, resource);
@id("forbid-high-risk")
forbid(principal, action, resource) when { context.risk > 7 };
@id("require-approval")
forbid(principal, action == Action::"deploy_model", resource) unless { context.approved };
"#;

fn config(policy_path: &std::path::Path) -> CacheConfig {
    let mut config = CacheConfig::from_toml_str(&format!(
        r#"
        [disk]
        enabled = false
        [redis]
        enabled = false
        [semantic]
        enabled = false
        [cache_warming]
        enabled = false
        [policy]
        enabled = true
        ttl = "10m"
        tier = "memory"
        max_size = "8MiB"
        policy_path = "{}"
        "#,
        policy_path.display()
    ))
    .unwrap();
    config.policy.version_refresh_ms = 0;
    config
}

fn state(cache: &NFCSCacheManager, name: &str) -> TierState {
    cache
        .tier_status()
        .into_iter()
        .find(|status| status.name == name)
        .map(|status| status.state)
        .unwrap_or_else(|| panic!("no status for {name}"))
}

fn context(risk: i64, approved: bool) -> PolicyContext {
    PolicyContext::new()
        .with("risk", risk)
        .with("approved", approved)
}

#[tokio::test]
async fn the_policy_section_starts_a_cedar_policy_cache() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(directory.path().join("constitution.cedar"), CONSTITUTION).unwrap();
    std::fs::write(directory.path().join("constitution.cedarschema"), SCHEMA).unwrap();
    let cache = NFCSCacheManager::from_config(config(directory.path()))
        .await
        .unwrap();
    assert_eq!(state(&cache, "policy"), TierState::Running);
    let policy = cache.policy().cache().expect("running");
    assert_eq!(policy.config().ttl, std::time::Duration::from_secs(600));
    assert_eq!(
        policy.tier().name(),
        "policy",
        "its own memory tier, named apart from the manager's"
    );

    let denied = cache
        .policy()
        .evaluate_compliance("deploy_model", &context(2, false))
        .await
        .unwrap();
    assert_eq!(denied.verdict(), Verdict::Deny);
    assert_eq!(denied.reasons(), ["require-approval"]);
    let again = cache
        .policy()
        .evaluate_compliance("deploy_model", &context(2, false))
        .await
        .unwrap();
    assert!(again.cache_hit);
    let allowed = cache
        .policy()
        .evaluate_compliance("deploy_model", &context(2, true))
        .await
        .unwrap();
    assert!(allowed.is_allowed());

    // A bad request is an error, through the facade too.
    let error = cache
        .policy()
        .evaluate_compliance("launch", &context(1, true))
        .await
        .unwrap_err();
    assert!(matches!(error, PolicyStoreError::Policy(_)), "{error:?}");

    // Publishing a version drops the cached decisions.
    cache.policy().publish_version().await.unwrap();
    let after = cache
        .policy()
        .evaluate_compliance("deploy_model", &context(2, false))
        .await
        .unwrap();
    assert!(!after.cache_hit);
}

#[tokio::test]
async fn policies_that_do_not_load_leave_the_policy_cache_not_running_with_the_reason() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(
        directory.path().join("broken.cedar"),
        "permit(principal, action, resource)\nwhen { context.risk < };\n",
    )
    .unwrap();
    let cache = NFCSCacheManager::from_config(config(directory.path()))
        .await
        .unwrap();
    match state(&cache, "policy") {
        TierState::NotRunning { reason } => {
            assert!(reason.contains("line 2, column"), "{reason}");
        }
        other => panic!("policy: {other:?}"),
    }
    // The manager serves; every compliance check fails (nothing is allowed by accident).
    cache.set("key_1", &"value_1", None).await.unwrap();
    let error = cache
        .policy()
        .evaluate_compliance("read", &context(1, true))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, PolicyStoreError::NotRunning { reason } if reason.contains("broken.cedar")),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_policy_cache_is_disabled_by_default_and_redis_needs_the_redis_tier() {
    let mut config = CacheConfig::default();
    config.disk.enabled = false;
    config.redis.enabled = false;
    config.semantic.enabled = false;
    config.cache_warming.enabled = false;
    assert!(!config.policy.enabled);
    assert_eq!(
        config.policy.ttl.as_duration(),
        Some(std::time::Duration::from_secs(1800))
    );
    let cache = NFCSCacheManager::from_config(config.clone()).await.unwrap();
    assert_eq!(state(&cache, "policy"), TierState::Disabled);
    assert!(matches!(
        cache
            .policy()
            .evaluate_compliance("read", &context(1, true))
            .await,
        Err(PolicyStoreError::NotRunning { .. })
    ));

    let directory = tempfile::tempdir().unwrap();
    std::fs::write(directory.path().join("c.cedar"), CONSTITUTION).unwrap();
    config.policy.enabled = true;
    config.policy.policy_path = directory.path().to_owned();
    config.policy.tier = PolicyTier::Redis;
    let cache = NFCSCacheManager::from_config(config).await.unwrap();
    match state(&cache, "policy") {
        TierState::NotRunning { reason } => assert!(reason.contains("Redis"), "{reason}"),
        other => panic!("policy: {other:?}"),
    }
}

#[test]
fn bad_policy_settings_are_refused_with_the_field() {
    for (text, field) in [
        ("[policy]\nttl = \"never\"", "policy.ttl"),
        ("[policy]\nmax_size = 0", "policy.max_size"),
        (
            "[policy]\nversion_refresh_ms = 7200000",
            "policy.version_refresh_ms",
        ),
    ] {
        match CacheConfig::from_toml_str(text) {
            Err(ConfigError::Invalid { field: found, .. }) => assert_eq!(found, field, "{text}"),
            other => panic!("{text}: expected an invalid field, got {other:?}"),
        }
    }
    assert!(CacheConfig::from_toml_str("[policy]\ntier = \"disk\"").is_err());
}

#[tokio::test]
async fn a_policy_cache_can_be_given_to_the_builder() {
    let evaluator = CedarEvaluator::from_policies(CONSTITUTION).unwrap();
    let cache = NFCSCacheManager::builder()
        .memory(MemoryCache::new(8 << 20).unwrap())
        .policy(PolicyCache::new(Arc::new(evaluator)).unwrap())
        .build();
    assert_eq!(state(&cache, "policy"), TierState::Running);
    let result = cache
        .policy()
        .evaluate_compliance("deploy_model", &context(9, true))
        .await
        .unwrap();
    assert_eq!(result.reasons(), ["forbid-high-risk"]);
}

/// Two managers on one real redis-server with `tier = "redis"`: a decision made by one node is
/// served to the other from Redis, a version published by one node reaches the other at once,
/// and with the server killed both keep deciding (uncached), never refusing or guessing.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_sharing_redis_share_decisions_and_policy_versions() {
    use nfcs_performance::cache_redis::test_server::RedisServer;

    let Some(mut server) = RedisServer::start_or_skip("policy cache over redis") else {
        return;
    };
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(directory.path().join("constitution.cedar"), CONSTITUTION).unwrap();
    std::fs::write(directory.path().join("constitution.cedarschema"), SCHEMA).unwrap();
    let node = || {
        let mut config = config(directory.path());
        config.policy.tier = PolicyTier::Redis;
        config.redis.enabled = true;
        config.redis.url = server.url();
        config.redis.command_timeout_ms = 200;
        NFCSCacheManager::from_config(config)
    };
    let node_a = node().await.unwrap();
    let node_b = node().await.unwrap();
    assert_eq!(state(&node_a, "policy"), TierState::Running);

    let decided = node_a
        .policy()
        .evaluate_compliance("deploy_model", &context(3, false))
        .await
        .unwrap();
    assert!(!decided.cache_hit && !decided.is_allowed());
    assert_eq!(decided.reasons(), ["require-approval"]);
    // Node B never evaluated this context: it gets node A's decision from Redis.
    let shared = node_b
        .policy()
        .evaluate_compliance("deploy_model", &context(3, false))
        .await
        .unwrap();
    assert!(shared.cache_hit && !shared.is_allowed());
    assert_eq!(shared.reasons(), ["require-approval"]);

    // A new version published by node A: node B stops serving the old decision at once.
    node_a.policy().publish_version().await.unwrap();
    let after = node_b
        .policy()
        .evaluate_compliance("deploy_model", &context(3, false))
        .await
        .unwrap();
    assert!(!after.cache_hit && !after.is_allowed());

    // Redis gone: decisions are still made (and right), just not cached.
    server.kill();
    for node in [&node_a, &node_b] {
        let denied = node
            .policy()
            .evaluate_compliance("read", &context(9, true))
            .await
            .unwrap();
        assert!(!denied.cache_hit && !denied.is_allowed());
        assert_eq!(denied.reasons(), ["forbid-high-risk"]);
        let allowed = node
            .policy()
            .evaluate_compliance("read", &context(1, true))
            .await
            .unwrap();
        assert!(!allowed.cache_hit && allowed.is_allowed());
    }
}
