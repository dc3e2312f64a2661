//! `BenchmarkConfig`: the spec's `BENCHMARK_CONFIG`, its targets and the cache configuration
//! of the system under test, read from TOML and checked field by field.
//!
//! # How durations are read
//!
//! Every duration is in seconds (an integer or a decimal).
//!
//! - `mathematical_benchmarks.cgl_solver.test_duration`: how long the solver steps **at each
//!   grid size** (30 s x 3 sizes by default).
//! - `mathematical_benchmarks.kuramoto.test_duration`: how long seeded time-to-synchrony runs
//!   are repeated **at each oscillator count** (30 s x 4 counts by default).
//! - `coordination.test_duration`: how long the orchestrator runs at its configured frequency;
//!   the search for the highest sustainable frequency adds `coordination.search_duration`.
//! - `load_testing.test_duration`: the **whole load phase**, shared by the scenarios:
//!   `normal_load` takes half (users ramped up over `ramp_up_time`, then held), `peak_load` a
//!   quarter (an open model at the arrival rate `normal_load` reached, doubled), `stress_test`
//!   at most a quarter (stages of more users than configured, until the breaking point).
//! - `load_testing.ramp_up_time`: how long the closed model takes to reach its users.
//! - `memory_profiling.profile_interval`: how often the memory profiler samples the allocator
//!   while the suite runs (and, in the memory component's own phase, every tenth of it,
//!   between 10 ms and 1 s).
//!
//! A default run takes about 9 minutes on a two-core machine (549 s measured): 90 s of CGL, 120 s of
//! Kuramoto, 45 s of coordination, 300 s of load and seconds for the rest
//! ([`BenchmarkConfig::estimated_duration`]). [`BenchmarkConfig::quick`] shrinks every
//! duration so the whole suite takes under a minute.

use std::path::Path;
use std::time::Duration;

use nfcs_performance::CacheConfig;
use serde::{Deserialize, Serialize};

use crate::error::BenchError;

/// The benchmark configuration: the spec's `BENCHMARK_CONFIG` with its defaults, the spec's
/// targets, and the [`CacheConfig`] of the system under test (`[cache]`).
///
/// ```
/// use nfcs_bench::BenchmarkConfig;
///
/// let config = BenchmarkConfig::from_toml_str(r#"
///     sample_rate = 0.2
///     [mathematical_benchmarks.cgl_solver]
///     grid_sizes = [64, 128]
///     [targets]
///     cgl_fps = 60
/// "#)?;
/// assert_eq!(config.mathematical_benchmarks.cgl_solver.grid_sizes, [64, 128]);
/// assert_eq!(config.mathematical_benchmarks.kuramoto.oscillator_counts, [5, 10, 20, 50]);
/// assert_eq!(config.targets.cgl_fps, 60.0);
///
/// let error = BenchmarkConfig::from_toml_str("sample_rate = 1.5").unwrap_err();
/// assert_eq!(error.field(), Some("sample_rate"));
/// # Ok::<(), nfcs_bench::BenchError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct BenchmarkConfig {
    /// Whether the suite runs at all (`nfcs-bench run` refuses to run a disabled suite).
    pub enabled: bool,
    /// Whether the recording API publishes continuously (the served node, next issue).
    pub continuous_monitoring: bool,
    /// The fraction of operations the recording API keeps, 0 to 1 (deterministic: every
    /// `1 / sample_rate`-th call).
    pub sample_rate: f64,
    /// CGL and Kuramoto.
    pub mathematical_benchmarks: MathematicalConfig,
    /// The orchestrator's loop.
    pub coordination: CoordinationConfig,
    /// The cache component's workloads.
    pub cache_benchmark: CacheBenchmarkConfig,
    /// Virtual users and scenarios.
    pub load_testing: LoadTestingConfig,
    /// The memory profiler.
    pub memory_profiling: MemoryProfilingConfig,
    /// The budgets every verdict is taken against.
    pub targets: Targets,
    /// The served node (`nfcs-bench serve`).
    pub serve: ServeConfig,
    /// The served node's alert thresholds.
    pub alerts: AlertConfig,
    /// The system under test: the cache configuration `NFCSCacheManager` is built from.
    pub cache: CacheConfig,
}

impl Default for BenchmarkConfig {
    fn default() -> BenchmarkConfig {
        BenchmarkConfig {
            enabled: true,
            continuous_monitoring: true,
            sample_rate: 0.1,
            mathematical_benchmarks: MathematicalConfig::default(),
            coordination: CoordinationConfig::default(),
            cache_benchmark: CacheBenchmarkConfig::default(),
            load_testing: LoadTestingConfig::default(),
            memory_profiling: MemoryProfilingConfig::default(),
            targets: Targets::default(),
            serve: ServeConfig::default(),
            alerts: AlertConfig::default(),
            cache: default_cache(),
        }
    }
}

/// The system under test by default: the spec's cache configuration, with the disk tier in
/// `nfcs-bench-data/disk` (relative paths are resolved against the run's work directory) and a
/// 256 MiB disk budget, so a benchmark run does not claim the spec's 10 GB.
fn default_cache() -> CacheConfig {
    let mut cache = CacheConfig::default();
    cache.disk.directory = "nfcs-bench-data/disk".into();
    cache.disk.max_size = nfcs_performance::ByteSize::new(256 << 20);
    cache
}

/// `[mathematical_benchmarks]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct MathematicalConfig {
    /// `[mathematical_benchmarks.cgl_solver]`.
    pub cgl_solver: CglBenchConfig,
    /// `[mathematical_benchmarks.kuramoto]`.
    pub kuramoto: KuramotoBenchConfig,
}

/// `[mathematical_benchmarks.cgl_solver]`: grid sizes 64, 128, 256 for 30 s each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct CglBenchConfig {
    /// Grid sizes (points per side).
    pub grid_sizes: Vec<usize>,
    /// Seconds of stepping at each size.
    pub test_duration: f64,
}

impl Default for CglBenchConfig {
    fn default() -> CglBenchConfig {
        CglBenchConfig {
            grid_sizes: vec![64, 128, 256],
            test_duration: 30.0,
        }
    }
}

/// `[mathematical_benchmarks.kuramoto]`: 5, 10, 20 and 50 oscillators for 30 s each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct KuramotoBenchConfig {
    /// Network sizes.
    pub oscillator_counts: Vec<usize>,
    /// Seconds of repeated seeded runs at each size.
    pub test_duration: f64,
    /// The order parameter that counts as synchronised.
    pub sync_threshold: f64,
    /// Simulated time after which a run counts as never synchronised.
    pub max_simulated_time: f64,
}

impl Default for KuramotoBenchConfig {
    fn default() -> KuramotoBenchConfig {
        KuramotoBenchConfig {
            oscillator_counts: vec![5, 10, 20, 50],
            test_duration: 30.0,
            sync_threshold: 0.9,
            max_simulated_time: 100.0,
        }
    }
}

/// `[coordination]`: the NFCS cycle at 10 Hz for 30 s, then a 15 s search for the highest
/// frequency it sustains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct CoordinationConfig {
    /// Ticks per second.
    pub frequency_hz: f64,
    /// Seconds at `frequency_hz`.
    pub test_duration: f64,
    /// Seconds spent searching for the highest sustainable frequency (0: no search).
    pub search_duration: f64,
    /// The grid of the mathematical-core module's CGL step.
    pub grid_size: usize,
}

impl Default for CoordinationConfig {
    fn default() -> CoordinationConfig {
        CoordinationConfig {
            frequency_hz: 10.0,
            test_duration: 30.0,
            search_duration: 15.0,
            grid_size: 64,
        }
    }
}

/// `[cache_benchmark]`: the spec's 100-key hit-ratio test and a Zipf workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct CacheBenchmarkConfig {
    /// Keys of the hit-ratio test.
    pub hit_ratio_keys: u64,
    /// Distinct keys of the Zipf workload.
    pub zipf_keys: u64,
    /// The Zipf exponent.
    pub zipf_exponent: f64,
    /// Operations of the Zipf workload.
    pub zipf_operations: u64,
    /// The fraction of the Zipf operations that are writes.
    pub write_fraction: f64,
    /// Bytes per value.
    pub value_size: usize,
}

impl Default for CacheBenchmarkConfig {
    fn default() -> CacheBenchmarkConfig {
        CacheBenchmarkConfig {
            hit_ratio_keys: 100,
            zipf_keys: 10_000,
            zipf_exponent: 0.99,
            zipf_operations: 200_000,
            write_fraction: 0.05,
            value_size: 1024,
        }
    }
}

/// A load scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// The configured users, ramped up, with think times (closed model).
    NormalLoad,
    /// A constant arrival rate above what normal load reached (open model).
    PeakLoad,
    /// More users than configured, stage by stage, until the targets break.
    StressTest,
}

impl Scenario {
    /// Every scenario, in the order the suite runs them.
    pub const ALL: [Scenario; 3] = [
        Scenario::NormalLoad,
        Scenario::PeakLoad,
        Scenario::StressTest,
    ];

    /// The configuration name (`normal_load`).
    pub fn name(self) -> &'static str {
        match self {
            Scenario::NormalLoad => "normal_load",
            Scenario::PeakLoad => "peak_load",
            Scenario::StressTest => "stress_test",
        }
    }

    /// This scenario's share of `load_testing.test_duration`.
    pub fn share(self) -> f64 {
        match self {
            Scenario::NormalLoad => 0.5,
            Scenario::PeakLoad | Scenario::StressTest => 0.25,
        }
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

impl std::str::FromStr for Scenario {
    type Err = BenchError;

    fn from_str(name: &str) -> Result<Scenario, BenchError> {
        Scenario::ALL
            .into_iter()
            .find(|scenario| scenario.name() == name)
            .ok_or_else(|| BenchError::UnknownScenario {
                name: name.to_owned(),
                expected: Scenario::ALL.map(Scenario::name).join(", "),
            })
    }
}

/// `[load_testing]`: 100 users ramped up over 60 s, a 300 s load phase, three scenarios.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct LoadTestingConfig {
    /// Users of `normal_load` (and the start of `stress_test`).
    pub max_concurrent_users: u32,
    /// Seconds for the closed model to reach its users.
    pub ramp_up_time: f64,
    /// Seconds of the whole load phase, shared by the scenarios ([`Scenario::share`]).
    pub test_duration: f64,
    /// The scenarios to run, in order.
    pub scenarios: Vec<Scenario>,
    /// A virtual user's mean think time between operations, in milliseconds (exponentially
    /// distributed, seeded).
    pub think_time_ms: f64,
    /// The arrival rate of `peak_load` in requests per second; 0 (the default) means twice
    /// the throughput `normal_load` reached.
    pub peak_rate: f64,
    /// Against several nodes over HTTP (`nfcs-bench load --target A,B`): milliseconds after a
    /// write through one node by which a read through another must answer the new value;
    /// reads after it that do not are counted as stale.
    pub freshness_bound_ms: f64,
}

impl Default for LoadTestingConfig {
    fn default() -> LoadTestingConfig {
        LoadTestingConfig {
            max_concurrent_users: 100,
            ramp_up_time: 60.0,
            test_duration: 300.0,
            scenarios: Scenario::ALL.to_vec(),
            think_time_ms: 100.0,
            peak_rate: 0.0,
            freshness_bound_ms: 100.0,
        }
    }
}

/// `[memory_profiling]`: a sample every 60 s, a 1000 MB threshold, "GC" analysis on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct MemoryProfilingConfig {
    /// Seconds between allocator samples.
    pub profile_interval: f64,
    /// Resident memory above this many megabytes (10^6 bytes) fails the threshold check.
    pub memory_threshold_mb: u64,
    /// Whether to measure what plays the part of garbage collection in Rust (expiry
    /// reclamation in the caches, the allocator's purge).
    pub gc_analysis: bool,
}

impl Default for MemoryProfilingConfig {
    fn default() -> MemoryProfilingConfig {
        MemoryProfilingConfig {
            profile_interval: 60.0,
            memory_threshold_mb: 1000,
            gc_analysis: true,
        }
    }
}

/// `[targets]`: the spec's budgets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Targets {
    /// CGL steps per second at every grid size, at least (30).
    pub cgl_fps: f64,
    /// Kuramoto compute time to synchrony, p50, at most, in seconds (0.1).
    pub kuramoto_sync_time_s: f64,
    /// Memory used (resident), at most, in megabytes (1000).
    pub memory_mb: f64,
    /// Achieved coordination frequency, at least, in Hz (9).
    pub coordination_hz: f64,
    /// Coordination latency p95, at most, in milliseconds (50).
    pub coordination_p95_ms: f64,
    /// Load success rate, at least (0.99).
    pub load_success_rate: f64,
    /// Load latency p95 (corrected for coordinated omission), at most, in seconds (1).
    pub load_p95_s: f64,
    /// Cache hit ratio of the 100-key test, at least (0.95).
    pub cache_hit_ratio: f64,
    /// Semantic lookup p95, at most, in seconds (0.1).
    pub semantic_search_s: f64,
}

impl Default for Targets {
    fn default() -> Targets {
        Targets {
            cgl_fps: 30.0,
            kuramoto_sync_time_s: 0.1,
            memory_mb: 1000.0,
            coordination_hz: 9.0,
            coordination_p95_ms: 50.0,
            load_success_rate: 0.99,
            load_p95_s: 1.0,
            cache_hit_ratio: 0.95,
            semantic_search_s: 0.1,
        }
    }
}

/// `[serve]`: the served node (`nfcs-bench serve`).
///
/// The bearer token is never part of the file: it comes from the environment variable
/// [`TOKEN_ENV`] or from the file `token_file` names (its first line), so a configuration can
/// be committed. A node listening on anything but a loopback address refuses to start without
/// one.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServeConfig {
    /// The address to listen on (`127.0.0.1:9464`; port 0 picks a free port).
    pub listen: String,
    /// The node's name in the summary and the dashboard.
    pub node_name: String,
    /// A file whose first line is the bearer token (read at start; the environment variable
    /// [`TOKEN_ENV`] wins when set).
    pub token_file: Option<std::path::PathBuf>,
    /// The largest request body accepted (larger ones get 413), e.g. `"1MiB"`.
    pub max_body: nfcs_performance::ByteSize,
    /// Seconds a request may take before it is answered 503 (the CGL solve of a large grid
    /// included).
    pub request_timeout: f64,
    /// Seconds a shutdown (SIGTERM, SIGINT) waits for requests in flight before it closes the
    /// tiers anyway.
    pub shutdown_timeout: f64,
    /// Seconds between the dashboard's samples (and server-sent events).
    pub sample_interval: f64,
    /// Seconds of history the dashboard keeps (its charts' window).
    pub history: f64,
    /// Seconds between the metrics upkeep runs (the exporter's histogram upkeep, the caches'
    /// batched counters flushed, expired memory entries reclaimed).
    pub upkeep_interval: f64,
    /// Seconds between the background Kuramoto runs (one oscillator count of
    /// `mathematical_benchmarks.kuramoto.oscillator_counts` in turn) that keep the Kuramoto
    /// metrics current; 0 turns them off.
    pub kuramoto_interval: f64,
}

/// The environment variable holding the served node's bearer token.
pub const TOKEN_ENV: &str = "NFCS_BENCH_TOKEN";

impl Default for ServeConfig {
    fn default() -> ServeConfig {
        ServeConfig {
            listen: "127.0.0.1:9464".to_owned(),
            node_name: "nfcs-node".to_owned(),
            token_file: None,
            max_body: nfcs_performance::ByteSize::new(1 << 20),
            request_timeout: 10.0,
            shutdown_timeout: 30.0,
            sample_interval: 1.0,
            history: 600.0,
            upkeep_interval: 5.0,
            kuramoto_interval: 10.0,
        }
    }
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ServeConfig")
            .field("listen", &self.listen)
            .field("node_name", &self.node_name)
            .field("token_file", &self.token_file)
            .field("max_body", &self.max_body)
            .field("request_timeout", &self.request_timeout)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("sample_interval", &self.sample_interval)
            .field("history", &self.history)
            .field("upkeep_interval", &self.upkeep_interval)
            .field("kuramoto_interval", &self.kuramoto_interval)
            .finish()
    }
}

/// `[alerts]`: when the served node raises an alert (the spec's thresholds by default). Each
/// alert is raised when its condition holds at a dashboard sample and cleared at the first
/// sample where it does not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct AlertConfig {
    /// Seconds of the window the rates, ratios and percentiles are taken over (60).
    pub window: f64,
    /// The cache hit ratio over the window below this (0.8) raises `hit_ratio_low`.
    pub hit_ratio_below: f64,
    /// ... once the window holds at least this many reads (100), so an idle node does not
    /// alert.
    pub hit_ratio_min_reads: u64,
    /// The coordination frequency below this many Hz (9) raises `coordination_frequency_low`.
    pub coordination_hz_below: f64,
    /// The coordination latency p95 over the window above this many milliseconds (50) raises
    /// `coordination_latency_high`.
    pub coordination_p95_ms_above: f64,
    /// Resident memory above this many megabytes raises `memory_high` (by default
    /// `memory_profiling.memory_threshold_mb`).
    pub memory_mb_above: Option<f64>,
    /// Allocator fragmentation above this many percent (30) raises `fragmentation_high`.
    pub fragmentation_percent_above: f64,
    /// Whether a configured tier that is unavailable raises `tier_down` (true).
    pub tier_down: bool,
}

impl Default for AlertConfig {
    fn default() -> AlertConfig {
        AlertConfig {
            window: 60.0,
            hit_ratio_below: 0.8,
            hit_ratio_min_reads: 100,
            coordination_hz_below: 9.0,
            coordination_p95_ms_above: 50.0,
            memory_mb_above: None,
            fragmentation_percent_above: 30.0,
            tier_down: true,
        }
    }
}

impl BenchmarkConfig {
    /// Parses and checks a TOML document. Every field may be left out.
    ///
    /// # Errors
    /// [`BenchError::Syntax`] for malformed TOML, [`BenchError::Config`] naming the field for an
    /// unknown field or a value that cannot work (the `[cache]` table's fields are named
    /// `cache.memory.max_size` and so on).
    pub fn from_toml_str(text: &str) -> Result<BenchmarkConfig, BenchError> {
        let deserializer = toml::Deserializer::parse(text).map_err(|error| BenchError::Syntax {
            message: error.to_string().trim_end().to_owned(),
        })?;
        let config: BenchmarkConfig =
            serde_path_to_error::deserialize(deserializer).map_err(|error| {
                let field = field_path(error.path());
                let message = error.into_inner().message().trim_end().to_owned();
                BenchError::config(field, message)
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and checks a TOML file.
    ///
    /// # Errors
    /// [`BenchError::Io`] when it cannot be read, otherwise as
    /// [`from_toml_str`](BenchmarkConfig::from_toml_str).
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<BenchmarkConfig, BenchError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| BenchError::Io {
            action: "could not read",
            path: path.to_owned(),
            source,
        })?;
        BenchmarkConfig::from_toml_str(&text)
    }

    /// The configuration as TOML.
    pub fn to_toml_string(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks every value types alone do not.
    ///
    /// # Errors
    /// [`BenchError::Config`] naming the first bad field.
    pub fn validate(&self) -> Result<(), BenchError> {
        fraction("sample_rate", self.sample_rate)?;
        let cgl = &self.mathematical_benchmarks.cgl_solver;
        non_empty(
            "mathematical_benchmarks.cgl_solver.grid_sizes",
            cgl.grid_sizes.len(),
        )?;
        for (index, size) in cgl.grid_sizes.iter().enumerate() {
            grid_size(
                &format!("mathematical_benchmarks.cgl_solver.grid_sizes[{index}]"),
                *size,
            )?;
        }
        seconds(
            "mathematical_benchmarks.cgl_solver.test_duration",
            cgl.test_duration,
        )?;
        let kuramoto = &self.mathematical_benchmarks.kuramoto;
        non_empty(
            "mathematical_benchmarks.kuramoto.oscillator_counts",
            kuramoto.oscillator_counts.len(),
        )?;
        for (index, count) in kuramoto.oscillator_counts.iter().enumerate() {
            if !(2..=100_000).contains(count) {
                return Err(BenchError::config(
                    format!("mathematical_benchmarks.kuramoto.oscillator_counts[{index}]"),
                    format!("{count}: must be between 2 and 100000"),
                ));
            }
        }
        seconds(
            "mathematical_benchmarks.kuramoto.test_duration",
            kuramoto.test_duration,
        )?;
        if !(kuramoto.sync_threshold > 0.0 && kuramoto.sync_threshold < 1.0) {
            return Err(BenchError::config(
                "mathematical_benchmarks.kuramoto.sync_threshold",
                format!(
                    "{}: must lie strictly between 0 and 1",
                    kuramoto.sync_threshold
                ),
            ));
        }
        seconds(
            "mathematical_benchmarks.kuramoto.max_simulated_time",
            kuramoto.max_simulated_time,
        )?;

        let coordination = &self.coordination;
        if !(coordination.frequency_hz > 0.0 && coordination.frequency_hz <= 10_000.0) {
            return Err(BenchError::config(
                "coordination.frequency_hz",
                format!(
                    "{}: must be above 0 and at most 10000",
                    coordination.frequency_hz
                ),
            ));
        }
        seconds("coordination.test_duration", coordination.test_duration)?;
        seconds_or_zero("coordination.search_duration", coordination.search_duration)?;
        grid_size("coordination.grid_size", coordination.grid_size)?;

        let cache = &self.cache_benchmark;
        positive_count("cache_benchmark.hit_ratio_keys", cache.hit_ratio_keys)?;
        positive_count("cache_benchmark.zipf_keys", cache.zipf_keys)?;
        positive_count("cache_benchmark.zipf_operations", cache.zipf_operations)?;
        if !(cache.zipf_exponent.is_finite() && cache.zipf_exponent > 0.0) {
            return Err(BenchError::config(
                "cache_benchmark.zipf_exponent",
                format!("{}: must be finite and above 0", cache.zipf_exponent),
            ));
        }
        fraction("cache_benchmark.write_fraction", cache.write_fraction)?;
        if !(1..=(64 << 20)).contains(&cache.value_size) {
            return Err(BenchError::config(
                "cache_benchmark.value_size",
                format!("{}: must be between 1 byte and 64 MiB", cache.value_size),
            ));
        }

        let load = &self.load_testing;
        if !(1..=100_000).contains(&load.max_concurrent_users) {
            return Err(BenchError::config(
                "load_testing.max_concurrent_users",
                format!(
                    "{}: must be between 1 and 100000",
                    load.max_concurrent_users
                ),
            ));
        }
        seconds_or_zero("load_testing.ramp_up_time", load.ramp_up_time)?;
        seconds("load_testing.test_duration", load.test_duration)?;
        let normal = load.test_duration * Scenario::NormalLoad.share();
        if load.scenarios.contains(&Scenario::NormalLoad) && load.ramp_up_time >= normal {
            return Err(BenchError::config(
                "load_testing.ramp_up_time",
                format!(
                    "{} s: must be shorter than normal_load's share of test_duration ({normal} s), \
                     or the users never all run",
                    load.ramp_up_time
                ),
            ));
        }
        non_empty("load_testing.scenarios", load.scenarios.len())?;
        for (index, scenario) in load.scenarios.iter().enumerate() {
            if load.scenarios[..index].contains(scenario) {
                return Err(BenchError::config(
                    format!("load_testing.scenarios[{index}]"),
                    format!("{scenario} is listed twice"),
                ));
            }
        }
        if !(load.think_time_ms.is_finite() && (0.0..=60_000.0).contains(&load.think_time_ms)) {
            return Err(BenchError::config(
                "load_testing.think_time_ms",
                format!("{}: must be between 0 and 60000", load.think_time_ms),
            ));
        }
        if !(load.peak_rate.is_finite() && (0.0..=10_000_000.0).contains(&load.peak_rate)) {
            return Err(BenchError::config(
                "load_testing.peak_rate",
                format!(
                    "{}: must be between 0 and 10000000 requests/s",
                    load.peak_rate
                ),
            ));
        }

        if !(load.freshness_bound_ms.is_finite()
            && load.freshness_bound_ms > 0.0
            && load.freshness_bound_ms <= 60_000.0)
        {
            return Err(BenchError::config(
                "load_testing.freshness_bound_ms",
                format!(
                    "{}: must be above 0 and at most 60000",
                    load.freshness_bound_ms
                ),
            ));
        }

        let memory = &self.memory_profiling;
        seconds("memory_profiling.profile_interval", memory.profile_interval)?;
        if memory.memory_threshold_mb == 0 {
            return Err(BenchError::config(
                "memory_profiling.memory_threshold_mb",
                "0: must be at least 1",
            ));
        }

        let targets = &self.targets;
        for (field, value) in [
            ("targets.cgl_fps", targets.cgl_fps),
            ("targets.kuramoto_sync_time_s", targets.kuramoto_sync_time_s),
            ("targets.memory_mb", targets.memory_mb),
            ("targets.coordination_hz", targets.coordination_hz),
            ("targets.coordination_p95_ms", targets.coordination_p95_ms),
            ("targets.load_p95_s", targets.load_p95_s),
            ("targets.semantic_search_s", targets.semantic_search_s),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(BenchError::config(
                    field,
                    format!("{value}: must be finite and above 0"),
                ));
            }
        }
        fraction("targets.load_success_rate", targets.load_success_rate)?;
        fraction("targets.cache_hit_ratio", targets.cache_hit_ratio)?;

        let serve = &self.serve;
        if serve.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(BenchError::config(
                "serve.listen",
                format!(
                    "{:?}: must be an IP address and port, like 127.0.0.1:9464",
                    serve.listen
                ),
            ));
        }
        if serve.node_name.trim().is_empty() || serve.node_name.len() > 128 {
            return Err(BenchError::config(
                "serve.node_name",
                "must be 1 to 128 characters, not blank",
            ));
        }
        if !(1024..=(1 << 30)).contains(&serve.max_body.bytes()) {
            return Err(BenchError::config(
                "serve.max_body",
                format!("{}: must be between 1 KiB and 1 GiB", serve.max_body),
            ));
        }
        seconds("serve.request_timeout", serve.request_timeout)?;
        seconds("serve.shutdown_timeout", serve.shutdown_timeout)?;
        seconds("serve.sample_interval", serve.sample_interval)?;
        seconds("serve.history", serve.history)?;
        if serve.history < serve.sample_interval {
            return Err(BenchError::config(
                "serve.history",
                format!(
                    "{} s: must be at least serve.sample_interval ({} s)",
                    serve.history, serve.sample_interval
                ),
            ));
        }
        seconds("serve.upkeep_interval", serve.upkeep_interval)?;
        seconds_or_zero("serve.kuramoto_interval", serve.kuramoto_interval)?;

        let alerts = &self.alerts;
        seconds("alerts.window", alerts.window)?;
        fraction("alerts.hit_ratio_below", alerts.hit_ratio_below)?;
        for (field, value) in [
            ("alerts.coordination_hz_below", alerts.coordination_hz_below),
            (
                "alerts.coordination_p95_ms_above",
                alerts.coordination_p95_ms_above,
            ),
            (
                "alerts.memory_mb_above",
                alerts.memory_mb_above.unwrap_or(1.0),
            ),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(BenchError::config(
                    field,
                    format!("{value}: must be finite and above 0"),
                ));
            }
        }
        if !(0.0..=100.0).contains(&alerts.fragmentation_percent_above) {
            return Err(BenchError::config(
                "alerts.fragmentation_percent_above",
                format!(
                    "{}: must lie between 0 and 100",
                    alerts.fragmentation_percent_above
                ),
            ));
        }

        self.cache.validate().map_err(|error| match error {
            nfcs_performance::ConfigError::Invalid { field, message } => {
                BenchError::config(format!("cache.{field}"), message)
            }
            other => BenchError::CacheConfig(other),
        })
    }

    /// The quick profile: the same configuration with every duration shrunk so the whole
    /// suite runs in under a minute (CGL and Kuramoto 0.5 s per size, coordination 2 s plus a
    /// 1 s search, a 6 s load phase with a 1 s ramp and at most 50 users, the Zipf workload
    /// 20,000 operations, a profile sample every 0.5 s). Targets are unchanged.
    pub fn quick(&self) -> BenchmarkConfig {
        let mut quick = self.clone();
        let math = &mut quick.mathematical_benchmarks;
        math.cgl_solver.test_duration = math.cgl_solver.test_duration.min(0.5);
        math.kuramoto.test_duration = math.kuramoto.test_duration.min(0.5);
        quick.coordination.test_duration = quick.coordination.test_duration.min(2.0);
        quick.coordination.search_duration = quick.coordination.search_duration.min(1.0);
        quick.cache_benchmark.zipf_operations = quick.cache_benchmark.zipf_operations.min(20_000);
        let load = &mut quick.load_testing;
        load.max_concurrent_users = load.max_concurrent_users.min(50);
        load.test_duration = load.test_duration.min(6.0);
        load.ramp_up_time = load.ramp_up_time.min(1.0);
        quick.memory_profiling.profile_interval = quick.memory_profiling.profile_interval.min(0.5);
        quick
    }

    /// How long a run of every component should take with this configuration (the phases'
    /// configured durations plus an allowance for the components without one).
    pub fn estimated_duration(&self) -> Duration {
        let math = &self.mathematical_benchmarks;
        let seconds = math.cgl_solver.test_duration * math.cgl_solver.grid_sizes.len() as f64
            + math.kuramoto.test_duration * math.kuramoto.oscillator_counts.len() as f64
            + self.coordination.test_duration
            + self.coordination.search_duration
            + self.load_testing.test_duration
            + 60.0;
        Duration::from_secs_f64(seconds)
    }
}

/// The dotted path of the field a deserialisation error is about (`load_testing.test_duration`,
/// `mathematical_benchmarks.cgl_solver.grid_sizes[1]`, "(top level)" for the document itself),
/// as `nfcs_performance`'s configuration names its fields. An empty key, which TOML allows
/// (`"" = 1`), is written `""` so that the path still names it.
fn field_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut dotted = String::new();
    for segment in path {
        let name = match segment {
            Segment::Seq { index } => {
                dotted.push_str(&format!("[{index}]"));
                continue;
            }
            Segment::Map { key } | Segment::Enum { variant: key } if key.is_empty() => "\"\"",
            Segment::Map { key } | Segment::Enum { variant: key } => key,
            Segment::Unknown => "?",
        };
        if !dotted.is_empty() {
            dotted.push('.');
        }
        dotted.push_str(name);
    }
    if dotted.is_empty() {
        "(top level)".to_owned()
    } else {
        dotted
    }
}

fn fraction(field: &str, value: f64) -> Result<(), BenchError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(BenchError::config(
            field,
            format!("{value}: must lie between 0 and 1"),
        ))
    }
}

fn seconds(field: &str, value: f64) -> Result<(), BenchError> {
    if value.is_finite() && value > 0.0 && value <= 86_400.0 {
        Ok(())
    } else {
        Err(BenchError::config(
            field,
            format!("{value}: must be a number of seconds above 0 and at most 86400"),
        ))
    }
}

fn seconds_or_zero(field: &str, value: f64) -> Result<(), BenchError> {
    if value == 0.0 {
        Ok(())
    } else {
        seconds(field, value)
    }
}

fn non_empty(field: &str, length: usize) -> Result<(), BenchError> {
    if length == 0 {
        Err(BenchError::config(field, "must not be empty"))
    } else {
        Ok(())
    }
}

fn positive_count(field: &str, value: u64) -> Result<(), BenchError> {
    if value == 0 {
        Err(BenchError::config(field, "0: must be at least 1"))
    } else {
        Ok(())
    }
}

fn grid_size(field: &str, size: usize) -> Result<(), BenchError> {
    nfcs_math_kernels::cgl::CglParams::new(size, 50.0, 0.05, 1.5, -1.2)
        .validate()
        .map_err(|error| BenchError::config(field, format!("{size}: {error}")))
}
