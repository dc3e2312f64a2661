//! The semantic cache through the manager (feature `semantic`), on the real model where it is
//! present (`cargo xtask fetch-model`; required when `NFCS_REQUIRE_MODEL=1`).

use nfcs_performance::prelude::*;
use nfcs_performance::semantic_cache::{default_model_dir, model_present};
use nfcs_performance::{CacheConfig, SemanticStoreError, TierState};

fn model_or_skip(test: &str) -> bool {
    if model_present(&default_model_dir()) {
        return true;
    }
    assert!(
        std::env::var_os("NFCS_REQUIRE_MODEL").is_none_or(|value| value != "1"),
        "NFCS_REQUIRE_MODEL=1 but the model is not in {}: run `cargo xtask fetch-model`",
        default_model_dir().display()
    );
    eprintln!("notice: {test} skipped: no embedding model (run `cargo xtask fetch-model`)");
    false
}

/// A manager of the memory tier and the semantic cache (the spec's defaults otherwise).
async fn memory_and_semantic() -> NFCSCacheManager {
    let mut config = CacheConfig::default();
    config.disk.enabled = false;
    config.redis.enabled = false;
    config.cache_warming.enabled = false;
    NFCSCacheManager::from_config(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_config_runs_the_semantic_cache_with_typed_values() {
    if !model_or_skip("from_config_runs_the_semantic_cache_with_typed_values") {
        return;
    }
    let cache = memory_and_semantic().await;
    let semantic = cache
        .tier_status()
        .into_iter()
        .find(|status| status.name == "semantic")
        .unwrap();
    assert_eq!(semantic.state, TierState::Running);
    cache
        .semantic()
        .store("Hello world", &"greeting_response", "tenant-a")
        .await
        .unwrap();
    let hit = cache
        .semantic()
        .find_similar::<String>("Hi world", 0.8, "tenant-a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hit.value, "greeting_response");
    assert!((hit.similarity - 0.839).abs() < 1e-3);
    // The configured threshold (0.95) keeps "Hi world" out; another tenant sees nothing.
    assert!(
        cache
            .semantic()
            .find::<String>("Hi world", "tenant-a")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        cache
            .semantic()
            .find_similar::<String>("Hello world", 0.8, "tenant-b")
            .await
            .unwrap()
            .is_none()
    );
    // A value that cannot be read as the type asked for is a typed error, not a panic. (The
    // codec is not self-describing: a type whose encoding happens to fit would decode.)
    let wrong = cache
        .semantic()
        .find_similar::<Vec<String>>("Hello world", 0.8, "tenant-a")
        .await;
    assert!(
        matches!(wrong, Err(SemanticStoreError::Decode { .. })),
        "{wrong:?}"
    );
}

#[tokio::test]
async fn without_a_semantic_cache_every_call_says_why() {
    let cache = NFCSCacheManager::builder()
        .memory(MemoryCache::new(1 << 20).unwrap())
        .build();
    let error = cache
        .semantic()
        .store("Hello world", &1_u8, "default")
        .await
        .unwrap_err();
    assert!(
        matches!(error, SemanticStoreError::NotRunning { .. }),
        "{error}"
    );
    assert!(cache.semantic().cache().is_none());
    assert!(
        cache
            .tier_status()
            .iter()
            .all(|status| status.name != "semantic")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_sequences_are_stored_and_found_as_the_text_they_make() {
    if !model_or_skip("token_sequences_are_stored_and_found_as_the_text_they_make") {
        return;
    }
    let cache = memory_and_semantic().await;
    let semantic = cache.semantic();
    // The ESC's store(tokens, result, context): WordPiece pieces glued back together.
    semantic
        .store_tokens(
            &["play", "##ing", "chess", "tonight"],
            &"board_response",
            "esc",
        )
        .await
        .unwrap();
    // Found by the text itself, exactly (similarity 1: the same embedded text) ...
    let hit = semantic
        .find_similar::<String>("playing chess tonight", 0.99, "esc")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hit.value, "board_response");
    assert_eq!(hit.text, "playing chess tonight");
    // ... by other tokens of a similar sentence, and only in its context (the tenant).
    let near = semantic
        .find_similar_tokens::<_, String>(
            &["play", "##ing", "chess", "this", "evening"],
            0.6,
            "esc",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(near.value, "board_response");
    assert!(near.similarity < 1.0);
    assert!(
        semantic
            .find_similar_tokens::<_, String>(&["playing", "chess", "tonight"], 0.6, "other")
            .await
            .unwrap()
            .is_none()
    );
    // A sequence with nothing visible is refused as blank.
    assert!(
        semantic
            .store_tokens(&["", ""], &"nothing", "esc")
            .await
            .is_err()
    );
}
