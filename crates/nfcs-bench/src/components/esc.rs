//! The ESC (semantic) component: the semantic cache on the real MiniLM model. Paraphrase
//! pairs ([`crate::system::PARAPHRASES`]) are stored, then their paraphrases looked up at the
//! similarity threshold 0.8 (the spec's "Hi world" finds "Hello world"): `store` and
//! `find_similar` latency, the hit ratio, and tokens embedded per second. Skipped, with the
//! reason, when the model is not present.

use std::time::Instant;

use crate::components::{Component, RunContext};
use crate::error::BenchError;
use crate::report::{Better, ComponentReport, Measurement, Target};
use crate::stats::{LatencySummary, latency_histogram, record};
use crate::system::{ESC_CONTEXT, PARAPHRASES};

/// The similarity threshold of the lookups (the spec's example).
pub const THRESHOLD: f32 = 0.8;

/// Runs the ESC component.
///
/// # Errors
/// [`BenchError::Component`] when the semantic cache fails while running.
pub async fn run(context: &RunContext) -> Result<ComponentReport, BenchError> {
    let system = &context.system;
    if let Some(reason) = system.semantic_unavailable() {
        return Ok(ComponentReport::skipped(
            Component::Esc,
            format!(
                "the semantic cache is not running ({reason}); `cargo xtask fetch-model` fetches the model"
            ),
        ));
    }
    let started = Instant::now();
    let mut report = ComponentReport::new(Component::Esc);
    let rounds: u64 = match context.profile {
        crate::report::Profile::Full => 25,
        crate::report::Profile::Quick => 3,
    };
    let semantic = system.manager().semantic();
    let bar = context.progress.steps(
        "ESC store and lookup",
        rounds * PARAPHRASES.len() as u64 * 2,
    );
    let (mut stores, mut lookups) = (latency_histogram(), latency_histogram());
    let (mut hits, mut total) = (0u64, 0u64);
    let mut tokens = 0u64;
    let mut embedding_time = 0.0;
    let tokenizer = semantic.cache().map(|cache| cache.embedder());
    for round in 0..rounds {
        for (index, (stored, paraphrase)) in PARAPHRASES.iter().enumerate() {
            // A text of its own per round, so each store embeds (no exact-text shortcut).
            let text = format!("{stored} (round {round})");
            let call = Instant::now();
            semantic
                .store(&text, &format!("response_{index}"), ESC_CONTEXT)
                .await
                .map_err(|error| BenchError::component(Component::Esc, error))?;
            let elapsed = call.elapsed();
            record(&mut stores, elapsed);
            embedding_time += elapsed.as_secs_f64();
            if let Some(embedder) = &tokenizer {
                tokens += embedder.token_ids(&text).map_or(0, |ids| ids.len() as u64);
            }
            bar.inc(1);
            let call = Instant::now();
            let hit: Option<nfcs_performance::SemanticMatch<String>> = semantic
                .find_similar(paraphrase, THRESHOLD, ESC_CONTEXT)
                .await
                .map_err(|error| BenchError::component(Component::Esc, error))?;
            let lookup_time = call.elapsed();
            record(&mut lookups, lookup_time);
            if let Some(embedder) = &tokenizer {
                let query_tokens = embedder
                    .token_ids(paraphrase)
                    .map_or(0, |ids| ids.len() as u64);
                system.recorder().record_esc_performance(
                    query_tokens,
                    lookup_time,
                    (round + 1) * PARAPHRASES.len() as u64,
                );
            }
            total += 1;
            hits += u64::from(hit.is_some());
            bar.inc(1);
        }
    }
    bar.finish_and_clear();

    // The spec's test: "Hi world" finds "Hello world" at 0.8 within the budget.
    semantic
        .store("Hello world", &"greeting_response", ESC_CONTEXT)
        .await
        .map_err(|error| BenchError::component(Component::Esc, error))?;
    let call = Instant::now();
    let greeting: Option<nfcs_performance::SemanticMatch<String>> = semantic
        .find_similar("Hi world", THRESHOLD, ESC_CONTEXT)
        .await
        .map_err(|error| BenchError::component(Component::Esc, error))?;
    let greeting_time = call.elapsed().as_secs_f64();
    let target = context.config.targets.semantic_search_s;
    report.push(Measurement::with_target(
        "semantic_hi_world_found",
        if greeting
            .as_ref()
            .is_some_and(|hit| hit.value == "greeting_response")
        {
            1.0
        } else {
            0.0
        },
        "bool",
        Target::at_least(1.0),
    ));
    if let Some(hit) = &greeting {
        report.push(Measurement::info(
            "semantic_hi_world_similarity",
            f64::from(hit.similarity),
            "cosine",
        ));
    }
    report.push(Measurement::with_target(
        "semantic_hi_world_time",
        greeting_time,
        "s",
        Target::at_most(target),
    ));

    let lookup = LatencySummary::of(&lookups);
    let store = LatencySummary::of(&stores);
    report.push(Measurement::with_target(
        "semantic_search_p95",
        lookup.p95,
        "s",
        Target::at_most(target),
    ));
    for (name, value) in [
        ("semantic_search_p50", lookup.p50),
        ("semantic_search_p99", lookup.p99),
        ("semantic_store_p50", store.p50),
        ("semantic_store_p95", store.p95),
        ("semantic_store_p99", store.p99),
    ] {
        report.push(Measurement::info(name, value, "s").better(Better::Lower));
    }
    report.push(
        Measurement::info(
            "semantic_paraphrase_hit_ratio",
            hits as f64 / total.max(1) as f64,
            "ratio",
        )
        .better(Better::Higher),
    );
    if embedding_time > 0.0 && tokens > 0 {
        report.push(
            Measurement::info(
                "semantic_tokens_per_second",
                tokens as f64 / embedding_time,
                "tokens/s",
            )
            .better(Better::Higher),
        );
    }
    report.note(format!(
        "{rounds} rounds over {} paraphrase pairs: each round stores the first sentence of each pair (made unique per \
         round, so every store embeds) and looks up its paraphrase at threshold {THRESHOLD}. Tokens per second: \
         tokens of the stored texts over the time their stores took (embedding and insertion).",
        PARAPHRASES.len()
    ));
    report.duration_s = started.elapsed().as_secs_f64();
    Ok(report)
}
