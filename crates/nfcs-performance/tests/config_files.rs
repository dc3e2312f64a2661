use nfcs_performance::prelude::*;
use nfcs_performance::{BuildError, ConfigError, TierState};

#[tokio::test]
async fn a_config_file_builds_a_manager_that_reports_tiers_it_does_not_run() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("nfcs.toml");
    std::fs::write(
        &path,
        format!(
            r#"
            [memory]
            max_size = "64MiB"
            eviction_policy = "s3_fifo"

            [disk]
            directory = "{}"
            max_size = "64MiB"

            [redis]
            enabled = false
            "#,
            directory.path().join("disk").display()
        ),
    )
    .unwrap();
    let cache = NFCSCacheManager::from_config(CacheConfig::from_toml_file(&path).unwrap())
        .await
        .unwrap();
    let memory = cache.memory().expect("the memory tier runs");
    assert_eq!(memory.capacity(), 64 << 20);
    assert_eq!(memory.eviction_policy(), EvictionPolicy::S3Fifo);
    assert_eq!(
        memory.default_ttl(),
        Some(std::time::Duration::from_secs(3600))
    );
    let state = |name: &str| {
        cache
            .tier_status()
            .iter()
            .find(|status| status.name == name)
            .map(|status| status.state.clone())
            .unwrap_or_else(|| panic!("no status for {name}"))
    };
    assert_eq!(state("memory"), TierState::Running);
    assert_eq!(state("disk"), TierState::Running);
    assert_eq!(state("redis"), TierState::Disabled);
    // The semantic cache runs where the build has it and the model is present; otherwise the
    // manager serves without it and says why.
    match state("semantic") {
        TierState::Running if cfg!(feature = "semantic") => {}
        TierState::NotRunning { reason } => assert!(
            reason.contains("lacks the `semantic` feature")
                || reason.contains("could not be started"),
            "{reason}"
        ),
        other => panic!("semantic: {other:?}"),
    }
    match state("cache_warming") {
        TierState::Running if cfg!(feature = "warming") => {}
        TierState::NotRunning { reason } => assert!(reason.contains("lacks"), "{reason}"),
        other => panic!("cache_warming: {other:?}"),
    }
    if cfg!(feature = "warming") {
        assert_eq!(state("predicted_access"), TierState::Running);
    }
    // Serving works all the same.
    cache.set("k", &1_u32, None).await.unwrap();
    assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(1));
}

#[tokio::test]
async fn an_invalid_config_does_not_build() {
    let mut config = CacheConfig::default();
    config.semantic.similarity_threshold = 2.0;
    match NFCSCacheManager::from_config(config).await {
        Err(BuildError::Config(ConfigError::Invalid { field, .. })) => {
            assert_eq!(field, "semantic.similarity_threshold");
        }
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[tokio::test]
async fn with_every_tier_disabled_reads_miss_and_writes_say_why() {
    let config = CacheConfig::from_toml_str(
        "[memory]\nenabled = false\n[disk]\nenabled = false\n[redis]\nenabled = false\n\
         [semantic]\nenabled = false\n[cache_warming]\nenabled = false",
    )
    .unwrap();
    let cache = NFCSCacheManager::from_config(config).await.unwrap();
    assert!(
        cache
            .tier_status()
            .iter()
            .all(|status| status.state == TierState::Disabled)
    );
    assert_eq!(cache.get::<u32>("k").await.unwrap(), None);
    let error = cache.set("k", &1_u32, None).await.unwrap_err();
    assert!(error.to_string().contains("no tier is running"), "{error}");
}

/// Found by the `cache_config` fuzz target (`fuzz/`, `cargo xtask fuzz`; input `''=1`): TOML
/// allows an empty key, and the error for it as an unknown field named the field `""` at the
/// top level and `memory.` in a table, a path that names nothing.
#[test]
fn an_unknown_empty_key_is_named_in_the_error() {
    for (text, field) in [
        ("''=1", "\"\""),
        ("[memory]\n\"\" = true", "memory.\"\""),
        (
            "[redis]\ncluster_nodes = [\"redis://h:7000\"]\n[''.x]\ny = 1",
            "\"\"",
        ),
    ] {
        let error = CacheConfig::from_toml_str(text).unwrap_err();
        assert!(
            matches!(&error, ConfigError::Invalid { .. }),
            "{text:?}: {error}"
        );
        assert_eq!(error.field(), Some(field), "{text:?}: {error}");
    }
    // Paths with sequence indexes and ordinary keys read as before.
    let error =
        CacheConfig::from_toml_str("[redis]\ncluster_nodes = [\"redis://h:7000\", 3]").unwrap_err();
    assert_eq!(error.field(), Some("redis.cluster_nodes[1]"), "{error}");
    let error = CacheConfig::from_toml_str("[memory]\nmax_sise = \"1GB\"").unwrap_err();
    assert_eq!(error.field(), Some("memory.max_sise"), "{error}");
}
