//! The NFCS benchmark suite: measures an NFCS deployment against the specification's targets.
//!
//! `nfcs-bench` is the spec's `NFCSBenchmarkSuite` as a library and as the `nfcs-bench`
//! binary. It builds the system under test (an `NFCSCacheManager` from the `[cache]` table of
//! its configuration, the policy cache with a constitution shipped with the crate, the
//! semantic cache where the model is present) and drives the real crates: the CGL and
//! Kuramoto kernels, the policy cache with Cedar, the tiers, the MiniLM model, a coordination
//! loop and virtual users. Every measurement carries its target and a verdict.
//!
//! # What it provides
//!
//! - [`BenchmarkConfig`]: the spec's `BENCHMARK_CONFIG` from TOML, with its defaults, the
//!   spec's budgets in `[targets]`, and the system under test in `[cache]`; every invalid value
//!   is an error naming the field ([`config`] says how each duration is read).
//! - [`NFCSBenchmarkSuite`]: its [`run_full_benchmark`](suite::NFCSBenchmarkSuite::run_full_benchmark),
//!   [`run_component_benchmark`](suite::NFCSBenchmarkSuite::run_component_benchmark),
//!   [`run_load_test`](suite::NFCSBenchmarkSuite::run_load_test), returning typed results
//!   ([`report`]).
//! - The components ([`Component`]): mathematical, constitutional, cache, esc (semantic),
//!   coordination, memory, load ([`components`]).
//! - [`optimizer`]: the spec's `AutoPerformanceOptimizer`: the suite's report in, the spec's
//!   rules (grow the memory tier by its miss-ratio curve, tune the allocator, pick the CGL
//!   grid) applied to the running system, kept only where they helped.
//! - [`orchestrator`]: the NFCS cycle at a fixed frequency over concurrent [`orchestrator::Module`]s,
//!   public so users drive their own modules with it.
//! - [`load`]: the load engine: closed and open models, latencies from the intended start
//!   (coordinated omission corrected), HDR histograms, against a [`load::Target`].
//! - [`recording`]: the recording API of continuous monitoring, under the spec's metric names.
//! - [`alloc`]: allocator statistics (jemalloc, feature `jemalloc`).
//! - [`render`] and [`baseline`]: Markdown, HTML (self-contained, with SVG plots) and terminal
//!   renderings of a report, and comparison with an earlier one beyond the measured noise.
//! - `serve` (feature `serve`): the served NFCS node (`nfcs-bench serve`): the service API
//!   over HTTP, `/metrics` for Prometheus, the `PerformanceDashboard` with alerts and a live
//!   page; and `load::http`, the load engine's HTTP target with the cross-node freshness probe.
//! - [`peers`]: the tables of the peer comparisons (`cargo xtask compare`), rendered from what
//!   the criterion benches and reference scripts wrote.
//!
//! # Example
//!
//! ```
//! use nfcs_bench::suite::{NFCSBenchmarkSuite, SuiteOptions};
//! use nfcs_bench::{BenchmarkConfig, Component, Verdict};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let work = tempfile::tempdir()?;
//! let config = BenchmarkConfig::from_toml_str(r#"
//!     [cache_benchmark]
//!     zipf_operations = 2000
//!
//!     [cache.redis]
//!     enabled = false      # memory and disk tiers only
//!     [cache.semantic]
//!     enabled = false
//! "#)?;
//! let suite = NFCSBenchmarkSuite::new(config, SuiteOptions::quick(work.path())).await?;
//!
//! // The spec's hit-ratio test: 100 keys written, then read.
//! let report = suite.run_component_benchmark(Component::Cache).await?;
//! let hit_ratio = report.measurement("cache_hit_ratio").expect("measured");
//! assert_eq!(hit_ratio.verdict, Verdict::Pass); // target: >= 0.95
//! println!("{} = {} (target {})", hit_ratio.name, hit_ratio.value,
//!          hit_ratio.target.expect("the spec's budget").describe());
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! - `jemalloc` (default): jemalloc as the binary's global allocator and its statistics for
//!   the memory component ([`alloc`]). Without it the memory component says that it cannot
//!   read allocator statistics.
//! - `serve` (default): the served node and the HTTP load target (axum, utoipa,
//!   metrics-exporter-prometheus, reqwest, tracing-subscriber).

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod alloc;
pub mod baseline;
pub mod components;
pub mod config;
mod error;
pub mod load;
pub mod optimizer;
pub mod orchestrator;
pub mod peers;
pub mod progress;
pub mod recording;
pub mod render;
pub mod report;
#[cfg(feature = "serve")]
#[cfg_attr(docsrs, doc(cfg(feature = "serve")))]
pub mod serve;
pub mod stats;
pub mod suite;
pub mod system;

pub use components::{Component, RunContext};
pub use config::{BenchmarkConfig, Scenario, Targets};
pub use error::BenchError;
pub use report::{BenchmarkReport, ComponentReport, Measurement, Profile, Target, Verdict};
pub use suite::NFCSBenchmarkSuite;
pub use system::System;
