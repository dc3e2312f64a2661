//! The constitutional component: the policy cache with the Cedar evaluator on the shipped
//! constitution ([`crate::system::CONSTITUTION`]), a stream of actions with repeating
//! contexts (64 distinct situations, [`System::policy_request`]), cached against full
//! evaluations.
//!
//! The stream starts from a newly published policy version, so its first sight of each
//! situation is a full evaluation and every repeat can hit. Beside it the same requests are
//! evaluated by the Cedar evaluator alone (no cache), which is what every check would cost
//! without the cache.
//!
//! [`System::policy_request`]: crate::system::System::policy_request

use std::time::{Duration, Instant};

use crate::components::{Component, RunContext};
use crate::error::BenchError;
use crate::report::{Better, ComponentReport, Measurement};
use crate::stats::{LatencySummary, latency_histogram, record};
use crate::system::System;

/// Requests in the stream (full profile); the quick profile takes a tenth.
pub const REQUESTS: u64 = 20_000;

/// Runs the constitutional component.
///
/// # Errors
/// [`BenchError::Component`] when the policy cache fails.
pub async fn run(context: &RunContext) -> Result<ComponentReport, BenchError> {
    let started = Instant::now();
    let mut report = ComponentReport::new(Component::Constitutional);
    let requests = match context.profile {
        crate::report::Profile::Full => REQUESTS,
        crate::report::Profile::Quick => REQUESTS / 10,
    };
    let system = &context.system;
    let policy = system.policy();
    policy
        .publish_version()
        .await
        .map_err(|error| BenchError::component(Component::Constitutional, error))?;
    let before = policy.stats();

    let bar = context
        .progress
        .steps("constitutional stream", requests * 2);
    let (mut all, mut hits, mut misses) = (
        latency_histogram(),
        latency_histogram(),
        latency_histogram(),
    );
    let mut complexity = 0u64;
    let mut denied = 0u64;
    for request in 0..requests {
        let call_started = Instant::now();
        let result = system.policy_check(request).await?;
        let elapsed = call_started.elapsed();
        record(&mut all, elapsed);
        record(
            if result.cache_hit {
                &mut hits
            } else {
                &mut misses
            },
            elapsed,
        );
        complexity += result.complexity;
        denied += u64::from(!result.is_allowed());
        if request % 256 == 0 {
            bar.set_position(request);
        }
    }

    // The same stream without the cache: the evaluator alone.
    let evaluator = policy.evaluator();
    let mut full = latency_histogram();
    for request in 0..requests {
        let (action, context) = System::policy_request(request);
        let call_started = Instant::now();
        evaluator
            .evaluate(action, &context)
            .map_err(|error| BenchError::component(Component::Constitutional, error))?;
        record(&mut full, call_started.elapsed());
        if request % 256 == 0 {
            bar.set_position(requests + request);
        }
    }
    bar.finish_and_clear();

    let after = policy.stats();
    let lookups = (after.hits - before.hits) + (after.misses - before.misses);
    let hit_ratio = if lookups == 0 {
        0.0
    } else {
        (after.hits - before.hits) as f64 / lookups as f64
    };
    report.push(
        Measurement::info("constitutional_hit_ratio", hit_ratio, "ratio").better(Better::Higher),
    );
    report.push(Measurement::info(
        "constitutional_requests",
        requests as f64,
        "count",
    ));
    report.push(Measurement::info(
        "constitutional_denied",
        denied as f64,
        "count",
    ));
    report.push(Measurement::info(
        "constitutional_complexity_mean",
        complexity as f64 / requests.max(1) as f64,
        "policies + context values",
    ));
    for (path, histogram) in [
        ("all", &all),
        ("cached", &hits),
        ("full", &misses),
        ("evaluator_only", &full),
    ] {
        let summary = LatencySummary::of(histogram);
        for (name, value) in [
            ("constitutional_latency_p50", summary.p50),
            ("constitutional_latency_p95", summary.p95),
            ("constitutional_latency_p99", summary.p99),
        ] {
            report.push(
                Measurement::info(name, value, "s")
                    .label("path", path)
                    .better(Better::Lower),
            );
        }
    }
    let cached = LatencySummary::of(&hits);
    let evaluator_only = LatencySummary::of(&full);
    if cached.p50 > 0.0 {
        report.push(
            Measurement::info(
                "constitutional_speedup_p50",
                evaluator_only.p50 / cached.p50,
                "x",
            )
            .better(Better::Higher),
        );
    }
    report.note(format!(
        "{requests} compliance checks over 64 repeating situations and 8 action types against {}; path = cached \
         (a hit), full (a miss: lookup, Cedar evaluation, store), evaluator_only (Cedar without the cache, the same \
         requests).",
        system.describe().constitution
    ));
    report.duration_s = started.elapsed().as_secs_f64();
    let _ = Duration::ZERO;
    Ok(report)
}
