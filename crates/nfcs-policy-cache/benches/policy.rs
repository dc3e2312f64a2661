//! Full Cedar evaluation against a cached hit, with 10 and 1,000 policies.
//!
//! For each policy-set size the bench measures, one call at a time:
//! - **full**: `PolicyCache::evaluate_compliance` on a miss (each call has a new context, so
//!   each is a full Cedar evaluation plus the cache's bookkeeping: version read, lookup, encode
//!   and store);
//! - **cedar**: `CedarEvaluator::evaluate` alone, the engine without the cache;
//! - **cached**: `PolicyCache::evaluate_compliance` on a hit (same action and context).
//!
//! It prints p50 and p99 latency of each and the speed-up of a hit over a full evaluation, as
//! a table and as JSON (to `<NFCS_BENCH_OUT>/policy.json` when that variable is set). The
//! memory tier answers synchronously, so a current-thread runtime drives the calls.
//! `NFCS_BENCH_QUICK=1` takes fewer samples.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nfcs_cache_core::MemoryCache;
use nfcs_policy_cache::cedar::CedarEvaluator;
use nfcs_policy_cache::{PolicyCache, PolicyCacheConfig, PolicyContext, PolicyEvaluator};
use serde_json::{Value, json};

/// A constitution of `count` policies: the three rules of the spec's example (allow by
/// default, forbid high risk, require approval for some action types) and `count - 3` rules
/// about other action types and agents, as a grown policy set would have.
fn constitution(count: usize) -> String {
    let mut text = String::from(
        r#"@id("allow-by-default")
permit(principal, action, resource);
@id("forbid-high-risk")
forbid(principal, action, resource) when { context.risk > 7 };
@id("require-approval")
forbid(principal, action in [Action::"deploy_model", Action::"modify_constitution"], resource)
unless { context.approved };
"#,
    );
    for index in 3..count {
        text.push_str(&format!(
            "@id(\"rule-{index}\")\nforbid(principal, action == Action::\"action_{}\", resource) \
             when {{ context.agent == \"agent_{index}\" && context.risk > {} }};\n",
            index % 50,
            index % 10
        ));
    }
    text
}

fn context(request: i64) -> PolicyContext {
    PolicyContext::new()
        .with("risk", 3)
        .with("approved", true)
        .with("agent", "planner")
        .with("request", request)
}

fn percentile(samples: &mut [Duration], quantile: f64) -> Duration {
    samples.sort_unstable();
    let index = ((samples.len() as f64 - 1.0) * quantile).round() as usize;
    samples[index.min(samples.len() - 1)]
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn summary(samples: &mut [Duration]) -> (f64, f64) {
    (
        micros(percentile(samples, 0.50)),
        micros(percentile(samples, 0.99)),
    )
}

fn main() {
    let quick = std::env::var_os("NFCS_BENCH_QUICK").is_some();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    let mut results = Vec::new();
    println!(
        "{:>9}  {:>24}  {:>24}  {:>24}  {:>9}",
        "policies", "full p50/p99 (us)", "cedar p50/p99 (us)", "cached p50/p99 (us)", "speed-up"
    );
    for policy_count in [10_usize, 1000] {
        let evaluator = CedarEvaluator::from_policies(&constitution(policy_count))
            .expect("the generated constitution parses");
        assert_eq!(evaluator.policy_count(), policy_count);
        let tier = Arc::new(MemoryCache::new(256 << 20).expect("a memory tier"));
        let cache = PolicyCache::with_tier(
            Arc::new(evaluator.clone()),
            tier,
            PolicyCacheConfig::default(),
        )
        .expect("a policy cache");

        let full_samples = match (quick, policy_count) {
            (true, 10) => 2_000,
            (true, _) => 200,
            (false, 10) => 20_000,
            (false, _) => 2_000,
        };
        let hit_samples = if quick { 20_000 } else { 200_000 };

        // Warm up the allocator, the caches of the CPU and the branch predictors.
        for request in 0..full_samples.min(500) {
            let result = runtime
                .block_on(cache.evaluate_compliance("deploy_model", &context(-1 - request)))
                .expect("a decision");
            assert!(result.is_allowed());
        }

        let mut full = Vec::with_capacity(full_samples as usize);
        for request in 0..full_samples {
            let context = context(request);
            let started = Instant::now();
            let result = runtime
                .block_on(cache.evaluate_compliance("deploy_model", &context))
                .expect("a decision");
            full.push(started.elapsed());
            assert!(!result.cache_hit);
            black_box(result);
        }

        let mut cedar = Vec::with_capacity(full_samples as usize);
        for request in 0..full_samples {
            let context = context(request);
            let started = Instant::now();
            let decision = evaluator
                .evaluate("deploy_model", &context)
                .expect("a decision");
            cedar.push(started.elapsed());
            black_box(decision);
        }

        let hot = context(0);
        let mut cached = Vec::with_capacity(hit_samples);
        for _ in 0..hit_samples {
            let started = Instant::now();
            let result = runtime
                .block_on(cache.evaluate_compliance("deploy_model", &hot))
                .expect("a decision");
            cached.push(started.elapsed());
            assert!(result.cache_hit);
            black_box(result);
        }

        let (full_p50, full_p99) = summary(&mut full);
        let (cedar_p50, cedar_p99) = summary(&mut cedar);
        let (cached_p50, cached_p99) = summary(&mut cached);
        let speed_up = full_p50 / cached_p50;
        println!(
            "{policy_count:>9}  {:>24}  {:>24}  {:>24}  {:>8.1}x",
            format!("{full_p50:.2} / {full_p99:.2}"),
            format!("{cedar_p50:.2} / {cedar_p99:.2}"),
            format!("{cached_p50:.2} / {cached_p99:.2}"),
            speed_up
        );
        results.push(json!({
            "policies": policy_count,
            "samples": { "full": full_samples, "cached": hit_samples },
            "full_us": { "p50": full_p50, "p99": full_p99 },
            "cedar_only_us": { "p50": cedar_p50, "p99": cedar_p99 },
            "cached_us": { "p50": cached_p50, "p99": cached_p99 },
            "speed_up_p50": speed_up,
            "speed_up_p99": full_p99 / cached_p99,
        }));
    }
    let report = json!({ "bench": "policy", "quick": quick, "results": Value::Array(results) });
    println!("{report}");
    if let Some(directory) = std::env::var_os("NFCS_BENCH_OUT") {
        let path = std::path::Path::new(&directory).join("policy.json");
        std::fs::write(&path, format!("{report:#}\n")).expect("the report is written");
        println!("written to {}", path.display());
    }
}
