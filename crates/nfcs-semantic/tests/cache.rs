//! The semantic cache's behaviour on the real model.

use std::time::Duration;

use nfcs_cache_core::ManualClock;
use nfcs_semantic::{HnswConfig, IndexKind, SemanticCache, SemanticConfig, SemanticError};

use crate::model_or_skip;

#[test]
fn hi_world_finds_hello_world_at_0_8_and_not_at_0_95() {
    let Some(model) = model_or_skip("hi_world_finds_hello_world") else {
        return;
    };
    let cache = SemanticCache::new(model, SemanticConfig::default()).unwrap();
    cache.store("Hello world", 1_u32, "default").unwrap();
    let hit = cache
        .find_similar("Hi world", 0.8, "default")
        .unwrap()
        .unwrap();
    assert_eq!(hit.value, 1);
    assert_eq!(hit.text, "Hello world");
    assert!((hit.similarity - 0.839).abs() < 1e-3, "{}", hit.similarity);
    assert!(
        cache
            .find_similar("Hi world", 0.95, "default")
            .unwrap()
            .is_none()
    );
    // The configured default threshold is the spec's 0.95.
    assert!(cache.find("Hi world", "default").unwrap().is_none());
    // The exact text: similarity 1.
    let exact = cache.find("Hello world", "default").unwrap().unwrap();
    assert_eq!(exact.similarity, 1.0);
}

#[test]
fn unrelated_prompts_never_hit() {
    let Some(model) = model_or_skip("unrelated_prompts_never_hit") else {
        return;
    };
    let cache = SemanticCache::new(model, SemanticConfig::default()).unwrap();
    let stored = [
        "How do I reset my password?",
        "What is the capital of France?",
        "Explain the Kuramoto model of synchronisation.",
        "Summarise the quarterly sales report.",
    ];
    let entries: Vec<(&str, usize)> = stored
        .iter()
        .enumerate()
        .map(|(index, text)| (*text, index))
        .collect();
    cache.store_many(&entries, "default").unwrap();
    let unrelated = [
        "Best pizza recipe with mozzarella",
        "How tall is Mount Everest?",
        "The cat is sleeping on the sofa.",
        "Translate good morning into Japanese",
    ];
    for hit in cache.find_similar_many(&unrelated, 0.8, "default").unwrap() {
        assert!(hit.is_none(), "{hit:?}");
    }
    // Related rewordings do hit, each on its own entry.
    let related = [
        "How can I reset my password?",
        "What's the capital city of France?",
    ];
    let hits = cache.find_similar_many(&related, 0.8, "default").unwrap();
    assert_eq!(hits[0].as_ref().map(|hit| hit.value), Some(0));
    assert_eq!(hits[1].as_ref().map(|hit| hit.value), Some(1));
}

#[test]
fn a_context_never_sees_another_contexts_entries() {
    let Some(model) = model_or_skip("a_context_never_sees_another_contexts_entries") else {
        return;
    };
    let cache = SemanticCache::new(model, SemanticConfig::default()).unwrap();
    cache
        .store("What is the capital of France?", "a", "tenant-a")
        .unwrap();
    assert!(
        cache
            .find_similar("What is the capital of France?", -1.0, "tenant-b")
            .unwrap()
            .is_none()
    );
    cache
        .store("What is the capital of France?", "b", "tenant-b")
        .unwrap();
    assert_eq!(
        cache
            .find("What is the capital of France?", "tenant-a")
            .unwrap()
            .unwrap()
            .value,
        "a"
    );
    assert_eq!(
        cache
            .find("What is the capital of France?", "tenant-b")
            .unwrap()
            .unwrap()
            .value,
        "b"
    );
    assert_eq!(cache.len(), 2);
}

#[test]
fn entries_expire_and_the_least_recently_used_is_evicted() {
    let Some(model) = model_or_skip("entries_expire_and_the_least_recently_used_is_evicted") else {
        return;
    };
    let manual = ManualClock::new();
    let short = SemanticCache::new(
        model,
        SemanticConfig::default()
            .with_ttl(Duration::from_millis(100))
            .with_clock(manual.clock()),
    )
    .unwrap();
    short.store("Hello world", 1, "default").unwrap();
    manual.advance(Duration::from_millis(99));
    assert!(
        short
            .find_similar("Hi world", 0.8, "default")
            .unwrap()
            .is_some()
    );
    manual.advance(Duration::from_millis(1));
    assert!(
        short.find("Hello world", "default").unwrap().is_none(),
        "expired by exact text"
    );
    assert!(
        short
            .find_similar("Hi world", 0.8, "default")
            .unwrap()
            .is_none(),
        "expired by meaning"
    );

    let small = SemanticCache::new(model, SemanticConfig::default().with_max_entries(3)).unwrap();
    for (index, text) in ["first question", "second question", "third question"]
        .iter()
        .enumerate()
    {
        small.store(text, index, "default").unwrap();
    }
    // Touch the first, so the second is now the least recently used.
    assert!(small.find("first question", "default").unwrap().is_some());
    small.store("fourth question", 3, "default").unwrap();
    assert_eq!(small.len(), 3);
    assert!(
        small.find("second question", "default").unwrap().is_none(),
        "evicted"
    );
    for text in ["first question", "third question", "fourth question"] {
        assert!(small.find(text, "default").unwrap().is_some(), "{text}");
    }
    // Storing the same text again replaces its value and takes no new place.
    small.store("third question", 30, "default").unwrap();
    assert_eq!(small.len(), 3);
    assert_eq!(
        small
            .find("third question", "default")
            .unwrap()
            .unwrap()
            .value,
        30
    );
    assert!(small.remove("third question", "default"));
    assert!(!small.remove("third question", "default"));
    small.clear();
    assert!(small.is_empty());
}

#[test]
fn texts_without_content_match_only_exactly() {
    let Some(model) = model_or_skip("texts_without_content_match_only_exactly") else {
        return;
    };
    let cache = SemanticCache::new(model, SemanticConfig::default()).unwrap();
    assert!(matches!(
        cache.store("", 0, "default"),
        Err(SemanticError::EmptyText)
    ));
    assert!(matches!(
        cache.store(" \t\n", 0, "default"),
        Err(SemanticError::EmptyText)
    ));
    assert!(cache.find_similar("", -1.0, "default").unwrap().is_none());
    assert!(cache.is_empty());
    // Emoji-only texts are all [UNK] to the model: stored, found by their exact text, and
    // never by meaning (they would all match one another).
    cache.store("🙂🙂🙂", 1, "default").unwrap();
    assert_eq!(cache.find("🙂🙂🙂", "default").unwrap().unwrap().value, 1);
    assert!(
        cache
            .find_similar("😀😀", -1.0, "default")
            .unwrap()
            .is_none()
    );
    // A text with content does not match them either, even at the lowest threshold.
    assert!(
        cache
            .find_similar("Hello world", -1.0, "default")
            .unwrap()
            .is_none()
    );
}

#[test]
fn thresholds_are_cosines_and_zero_is_honoured() {
    let Some(model) = model_or_skip("thresholds_are_cosines_and_zero_is_honoured") else {
        return;
    };
    let cache = SemanticCache::new(model, SemanticConfig::default()).unwrap();
    cache
        .store("What is the capital of France?", 7, "default")
        .unwrap();
    for bad in [1.5, -1.01, f32::NAN, f32::INFINITY] {
        assert!(matches!(
            cache.find_similar("anything", bad, "default"),
            Err(SemanticError::InvalidThreshold(_))
        ));
    }
    assert!(matches!(
        SemanticCache::<u8, _>::new(model, SemanticConfig::default().with_threshold(2.0)),
        Err(SemanticError::InvalidThreshold(_))
    ));
    assert!(matches!(
        SemanticCache::<u8, _>::new(model, SemanticConfig::default().with_max_entries(0)),
        Err(SemanticError::InvalidConfig {
            field: "max_entries",
            ..
        })
    ));
    // Threshold -1 accepts every entry of the context: the best one comes back.
    let hit = cache
        .find_similar("Best pizza recipe", -1.0, "default")
        .unwrap()
        .unwrap();
    assert_eq!(hit.value, 7);
    assert!(hit.similarity < 0.5);
    // Threshold 0 is a real threshold, not "unset" (redis-vl#649): it admits what scores at
    // least 0 and nothing below.
    let zero = cache
        .find_similar("Best pizza recipe", 0.0, "default")
        .unwrap();
    assert_eq!(zero.is_some(), hit.similarity >= 0.0);
}

/// Opposite questions sit close under the model (three of these above the default 0.95): the
/// contradiction guard keeps them from receiving each other's answers (GPTCache#694).
#[test]
fn opposite_questions_never_receive_each_others_answers() {
    let Some(model) = model_or_skip("opposite_questions_never_receive_each_others_answers") else {
        return;
    };
    let pairs = [
        (
            "How do I enable two-factor authentication?",
            "How do I disable two-factor authentication?",
        ),
        ("Should I buy Tesla stock?", "Should I sell Tesla stock?"),
        ("Turn the lights on", "Turn the lights off"),
        (
            "How do I increase the cache size?",
            "How do I decrease the cache size?",
        ),
        (
            "Is coffee good for your health?",
            "Is coffee bad for your health?",
        ),
        (
            "Allow the user to delete the file",
            "Forbid the user to delete the file",
        ),
        (
            "What is the capital of France?",
            "What is not the capital of France?",
        ),
        (
            "Convert Celsius to Fahrenheit",
            "Convert Fahrenheit to Celsius",
        ),
    ];
    let guarded = SemanticCache::new(model, SemanticConfig::default()).unwrap();
    let unguarded = SemanticCache::new(
        model,
        SemanticConfig::default().with_contradiction_guard(false),
    )
    .unwrap();
    let mut close = 0;
    for (index, (stored, opposite)) in pairs.iter().enumerate() {
        let context = format!("pair-{index}");
        guarded.store(stored, index, &context).unwrap();
        unguarded.store(stored, index, &context).unwrap();
        assert!(
            guarded
                .find_similar(opposite, 0.8, &context)
                .unwrap()
                .is_none(),
            "{opposite:?} received the answer to {stored:?}"
        );
        // Without the guard, the embeddings alone would answer it.
        let unguarded_hit = unguarded.find_similar(opposite, 0.8, &context).unwrap();
        let similarity = unguarded_hit.map(|hit| hit.similarity).unwrap_or(0.0);
        assert!(similarity >= 0.8, "{stored:?} / {opposite:?}: {similarity}");
        close += usize::from(similarity >= 0.95);
        // A rewording of the stored text still hits.
        let again = format!("{stored} ");
        assert!(
            guarded
                .find_similar(&again, 0.8, &context)
                .unwrap()
                .is_some()
        );
    }
    assert!(close >= 3, "{close} opposite pairs above 0.95");
}

#[test]
fn the_approximate_index_behaves_like_the_exact_one_on_the_model() {
    let Some(model) = model_or_skip("the_approximate_index_behaves_like_the_exact_one") else {
        return;
    };
    let config = SemanticConfig::default().with_index(IndexKind::Hnsw(HnswConfig::default()));
    let cache = SemanticCache::new(model, config).unwrap();
    cache.store("Hello world", 1_u32, "a").unwrap();
    cache
        .store_many(
            &[
                ("How do I reset my password?", 2),
                ("What is the capital of France?", 3),
            ],
            "a",
        )
        .unwrap();
    let hit = cache.find_similar("Hi world", 0.8, "a").unwrap().unwrap();
    assert_eq!((hit.value, hit.text.as_str()), (1, "Hello world"));
    assert!((hit.similarity - 0.839).abs() < 1e-3);
    assert!(cache.find_similar("Hi world", 0.95, "a").unwrap().is_none());
    assert!(cache.find_similar("Hi world", 0.8, "b").unwrap().is_none());
    let hit = cache
        .find_similar("How can I reset my password?", 0.8, "a")
        .unwrap();
    assert_eq!(hit.map(|hit| hit.value), Some(2));
}

/// Threads looking up at once share forward passes; each still gets its own answer, the same
/// as a lookup alone would give (the batch pads to its longest text and masks the padding).
#[test]
fn concurrent_lookups_get_their_own_answers() {
    let Some(model) = model_or_skip("concurrent_lookups_get_their_own_answers") else {
        return;
    };
    let cache = SemanticCache::new(model, SemanticConfig::default()).unwrap();
    let stored = [
        "How do I reset my password?",
        "What is the capital of France?",
        "Explain the Kuramoto model of synchronisation in a few sentences for a student.",
        "Hello world",
    ];
    for (index, text) in stored.iter().enumerate() {
        cache.store(text, index, "default").unwrap();
    }
    let queries = [
        ("How can I reset my password?", Some(0)),
        ("What's the capital city of France?", Some(1)),
        (
            "Explain the Kuramoto model of synchronisation in a few sentences for students.",
            Some(2),
        ),
        ("Hi world", Some(3)),
        ("Best pizza recipe with mozzarella", None),
    ];
    let alone: Vec<Option<f32>> = queries
        .iter()
        .map(|(query, _)| {
            cache
                .find_similar(query, 0.8, "default")
                .unwrap()
                .map(|hit| hit.similarity)
        })
        .collect();
    let barrier = std::sync::Barrier::new(queries.len() * 2);
    std::thread::scope(|scope| {
        let handles: Vec<_> = queries
            .iter()
            .chain(queries.iter())
            .map(|(query, _)| {
                let cache = &cache;
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    cache.find_similar(query, 0.8, "default").unwrap()
                })
            })
            .collect();
        for (index, handle) in handles.into_iter().enumerate() {
            let hit = handle.join().unwrap();
            let (query, expected) = queries[index % queries.len()];
            assert_eq!(hit.as_ref().map(|hit| hit.value), expected, "{query}");
            if let (Some(hit), Some(similarity)) = (hit, alone[index % queries.len()]) {
                assert!((hit.similarity - similarity).abs() < 1e-4, "{query}");
            }
        }
    });
}
