//! What the suite's integration tests share.

#![allow(dead_code, unreachable_pub)] // each test binary uses a part

use std::path::Path;

use nfcs_bench::BenchmarkConfig;
use nfcs_bench::suite::{NFCSBenchmarkSuite, SuiteOptions};

/// The default configuration on embedded tiers: memory and disk, no Redis, semantic only
/// when asked.
pub fn embedded_config(semantic: bool) -> BenchmarkConfig {
    let mut config = BenchmarkConfig::default();
    config.cache.redis.enabled = false;
    config.cache.semantic.enabled = semantic;
    config
}

/// A quick-profile suite in `directory`.
pub async fn quick_suite(config: BenchmarkConfig, directory: &Path) -> NFCSBenchmarkSuite {
    NFCSBenchmarkSuite::new(config, SuiteOptions::quick(directory))
        .await
        .expect("the suite builds")
}

/// Whether the model is present (or required: then its absence fails the test).
pub fn model_available(suite: &NFCSBenchmarkSuite) -> bool {
    match suite.system().semantic_unavailable() {
        None => true,
        Some(reason) => {
            assert!(
                std::env::var_os("NFCS_REQUIRE_MODEL").is_none(),
                "NFCS_REQUIRE_MODEL is set but the semantic cache is not running: {reason}"
            );
            eprintln!("notice: skipping the semantic test: {reason}");
            false
        }
    }
}
pub mod node;
