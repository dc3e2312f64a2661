//! The system under test: an `NFCSCacheManager` built from the configuration's `[cache]`
//! table, the policy cache with the shipped constitution, and the NFCS operations the
//! coordination loop and the load engine drive.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nfcs_math_kernels::cgl::{CglParams, InitialCondition};
use nfcs_performance::cache_core::Ttl;
use nfcs_performance::math::{CglSolve, MathError};
use nfcs_performance::policy_cache::cedar::CedarEvaluator;
use nfcs_performance::policy_cache::{
    ComplianceResult, PolicyCache, PolicyCacheConfig, PolicyContext,
};
use nfcs_performance::{CacheConfig, NFCSCacheManager, TierState};
use serde::{Deserialize, Serialize};

use crate::error::BenchError;
use crate::recording::PerformanceRecorder;

/// The constitution shipped with the crate (`constitution/constitution.cedar`): the spec's
/// example rules and eight more a grown policy set has.
pub const CONSTITUTION: &str = include_str!("../constitution/constitution.cedar");

/// The actions of the constitution, in the order the workloads cycle through them.
pub const ACTIONS: [&str; 8] = [
    "query",
    "esc_generate",
    "coordinate",
    "simulate_oscillators",
    "solve_field",
    "write_memory",
    "deploy_model",
    "modify_constitution",
];

/// The semantic context (tenant) the benchmarks store and look up in.
pub const ESC_CONTEXT: &str = "nfcs-bench";

/// Stored sentences and paraphrases of them that the ESC benchmarks look up: each pair is
/// (stored, paraphrase).
pub const PARAPHRASES: [(&str, &str); 8] = [
    ("Hello world", "Hi world"),
    (
        "What is the weather like today?",
        "How is the weather today?",
    ),
    (
        "Show me the system status",
        "Display the status of the system",
    ),
    (
        "How many oscillators are synchronised?",
        "How many oscillators are in sync?",
    ),
    (
        "Summarise the last coordination cycle",
        "Give a summary of the last coordination cycle",
    ),
    (
        "Which policy blocked the deployment?",
        "What policy blocked the deployment?",
    ),
    (
        "Restart the field solver",
        "Please restart the field solver",
    ),
    ("List the cached results", "Show the list of cached results"),
];

/// What the system under test has, as the suite found it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemDescription {
    /// Each tier or cache and whether it runs (`memory: running`, `redis: skipped: ...`).
    pub tiers: Vec<String>,
    /// Whether the semantic cache (the MiniLM model) runs.
    pub semantic: bool,
    /// Where the policy cache's constitution came from.
    pub constitution: String,
    /// What the suite changed or left out while building it (a Redis URL that does not
    /// answer, a model that is missing), each with the reason.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// The system under test and the NFCS operations on it.
pub struct System {
    manager: Arc<NFCSCacheManager>,
    policy: PolicyCache,
    constitution: String,
    /// Whether `policy` evaluates the shipped [`CONSTITUTION`] (whose actions are [`ACTIONS`]).
    shipped_constitution: bool,
    semantic_reason: Option<String>,
    notes: Vec<String>,
    recorder: Arc<PerformanceRecorder>,
    requests: AtomicU64,
    /// Nanoseconds of the last CGL step of the coordination loop's solver (0: none yet).
    last_cgl_step: AtomicU64,
}

impl std::fmt::Debug for System {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("System")
            .field("manager", &self.manager.name())
            .field("semantic", &self.semantic_reason.is_none())
            .finish_non_exhaustive()
    }
}

/// The CGL parameters of the memoized solves: a Benjamin-Feir unstable regime (b = 1.5,
/// c = -1.2 on a 50-wide square, dt 0.05), 20 steps from seeded noise.
pub fn cgl_params(grid_size: usize) -> CglParams {
    CglParams::new(grid_size, 50.0, 0.05, 1.5, -1.2)
}

/// Steps of one memoized solve.
pub const SOLVE_STEPS: u64 = 20;

/// What a memoized CGL solve returns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SolveSummary {
    /// The grid.
    pub grid_size: usize,
    /// The mean of `|A|^2` at the end.
    pub mean_intensity: f64,
    /// Whether the result came from the cache.
    pub cache_hit: bool,
}

impl System {
    /// Builds the system under test from `cache` (relative disk directories are resolved
    /// against `work_dir`). A Redis tier whose URL does not answer within a second is left
    /// out, and said so in [`describe`](System::describe); a missing model leaves the semantic
    /// cache not running (the ESC benchmarks then skip, with the reason).
    ///
    /// # Errors
    /// [`BenchError::Build`] when the manager cannot be built; [`BenchError::Component`] when
    /// the constitution does not load.
    pub async fn build(cache: &CacheConfig, work_dir: &Path) -> Result<System, BenchError> {
        System::build_with_sample_rate(cache, work_dir, 0.1).await
    }

    /// [`build`](System::build), with the recording API keeping `sample_rate` of the
    /// operations ([`System::recorder`]).
    ///
    /// # Errors
    /// As [`build`](System::build); [`BenchError::Config`] naming `sample_rate` for a rate
    /// outside 0..=1.
    pub async fn build_with_sample_rate(
        cache: &CacheConfig,
        work_dir: &Path,
        sample_rate: f64,
    ) -> Result<System, BenchError> {
        let recorder = Arc::new(
            PerformanceRecorder::new(sample_rate)
                .map_err(|error| BenchError::config("sample_rate", error.to_string()))?,
        );
        let mut cache = cache.clone();
        if cache.disk.directory.is_relative() {
            cache.disk.directory = work_dir.join(&cache.disk.directory);
        }
        let mut notes = Vec::new();
        if cache.redis.enabled && !redis_answers(&cache.redis.url).await {
            notes.push(format!(
                "redis: skipped: {} does not answer (start redis-server or set [cache.redis] enabled = false)",
                cache.redis.url
            ));
            cache.redis.enabled = false;
        }
        let manager = Arc::new(NFCSCacheManager::from_config(cache.clone()).await?);
        let shipped_constitution = manager.policy().cache().is_none();
        let (policy, constitution) = match manager.policy().cache() {
            Some(policy) => (
                policy.clone(),
                format!(
                    "{} (from [cache.policy])",
                    cache.policy.policy_path.display()
                ),
            ),
            None => {
                let evaluator = CedarEvaluator::from_policies(CONSTITUTION)
                    .map_err(|error| BenchError::component("constitution", error))?;
                let policy = PolicyCache::with_config(
                    Arc::new(evaluator),
                    PolicyCacheConfig::default().instance(format!("{}-bench", manager.name())),
                )
                .map_err(|error| BenchError::component("constitution", error))?;
                (
                    policy,
                    "the shipped constitution (11 Cedar policies)".to_owned(),
                )
            }
        };
        let semantic_reason = match manager.semantic().cache() {
            Some(_) => None,
            None => Some(
                manager
                    .tier_status()
                    .into_iter()
                    .find(|status| status.name == "semantic")
                    .map_or(
                        "the semantic cache is not running".to_owned(),
                        |status| match &status.state {
                            TierState::NotRunning { reason }
                            | TierState::Unavailable { reason } => reason.clone(),
                            TierState::Disabled => "disabled in the configuration".to_owned(),
                            other => format!("{other:?}"),
                        },
                    ),
            ),
        };
        if let Some(reason) = &semantic_reason {
            notes.push(format!("semantic: not running: {reason}"));
        }
        for note in &notes {
            tracing::info!("{note}");
        }
        Ok(System {
            manager,
            policy,
            constitution,
            shipped_constitution,
            semantic_reason,
            notes,
            recorder,
            requests: AtomicU64::new(0),
            last_cgl_step: AtomicU64::new(0),
        })
    }

    /// The cache manager.
    pub fn manager(&self) -> &Arc<NFCSCacheManager> {
        &self.manager
    }

    /// The recording API the components and operations publish through (the spec's metric
    /// names; a no-op until the application installs a `metrics` recorder).
    pub fn recorder(&self) -> &Arc<PerformanceRecorder> {
        &self.recorder
    }

    /// The policy cache the constitutional operations use.
    pub fn policy(&self) -> &PolicyCache {
        &self.policy
    }

    /// The action types the policy cache's constitution knows, when it is the shipped one
    /// ([`ACTIONS`]); `None` for a policy set from `[cache.policy]`.
    pub fn known_actions(&self) -> Option<&'static [&'static str]> {
        self.shipped_constitution.then_some(&ACTIONS[..])
    }

    /// `None` when the semantic cache runs, otherwise why not.
    pub fn semantic_unavailable(&self) -> Option<&str> {
        self.semantic_reason.as_deref()
    }

    /// Tiers and caches and whether they run.
    pub fn describe(&self) -> SystemDescription {
        SystemDescription {
            tiers: self
                .manager
                .tier_status()
                .into_iter()
                .map(|status| match &status.state {
                    TierState::Running => format!("{}: running", status.name),
                    TierState::Disabled => format!("{}: disabled", status.name),
                    TierState::NotRunning { reason } => {
                        format!("{}: not running: {reason}", status.name)
                    }
                    TierState::Unavailable { reason } => {
                        format!("{}: unavailable: {reason}", status.name)
                    }
                    other => format!("{}: {other:?}", status.name),
                })
                .collect(),
            semantic: self.semantic_reason.is_none(),
            constitution: self.constitution.clone(),
            notes: self.notes.clone(),
        }
    }

    /// A cache read of `key` through every tier.
    ///
    /// # Errors
    /// What the manager returns.
    pub async fn cache_get(
        &self,
        key: &str,
    ) -> Result<Option<nfcs_performance::cache_core::Bytes>, BenchError> {
        Ok(self.manager.get_bytes(key).await?)
    }

    /// A cache write of `value` under `key` with the tiers' default TTL.
    ///
    /// # Errors
    /// What the manager returns.
    pub async fn cache_set(&self, key: &str, value: &[u8]) -> Result<(), BenchError> {
        self.manager
            .set_bytes(
                key,
                nfcs_performance::cache_core::Bytes::copy_from_slice(value),
                None,
            )
            .await?;
        Ok(())
    }

    /// The policy context of request number `request`: 64 distinct contexts, repeating, as
    /// a stream of actions with recurring situations has.
    pub fn policy_request(request: u64) -> (&'static str, PolicyContext) {
        let situation = request % 64;
        let action = ACTIONS[(situation % ACTIONS.len() as u64) as usize];
        let context = PolicyContext::new()
            .with("risk", (situation % 10) as i64)
            .with("approved", !situation.is_multiple_of(3))
            .with(
                "agent",
                if situation % 16 == 5 {
                    "untrusted"
                } else {
                    "planner"
                },
            )
            .with("hour", (situation % 24) as i64)
            .with("tokens", (situation * 97) as i64)
            .with("frequency_hz", 10_i64)
            .with("oscillators", 50_i64)
            .with("grid_size", 64_i64)
            .with("bytes", (situation * 20_000) as i64);
        (action, context)
    }

    /// A constitutional check of request number `request` ([`System::policy_request`]).
    ///
    /// # Errors
    /// What the policy cache returns.
    pub async fn policy_check(&self, request: u64) -> Result<ComplianceResult, BenchError> {
        let (action, context) = System::policy_request(request);
        let result = self
            .policy
            .evaluate_compliance(action, &context)
            .await
            .map_err(|error| BenchError::component("constitutional", error))?;
        self.recorder.record_constitutional_performance(
            result.evaluation_time,
            result.cache_hit,
            result.complexity as f64,
        );
        Ok(result)
    }

    /// Stores the [`PARAPHRASES`]' first sentences in the semantic cache.
    ///
    /// # Errors
    /// [`BenchError::Component`] when the semantic cache is not running or refuses.
    pub async fn esc_seed(&self) -> Result<(), BenchError> {
        for (index, (stored, _)) in PARAPHRASES.iter().enumerate() {
            self.manager
                .semantic()
                .store(stored, &format!("response_{index}"), ESC_CONTEXT)
                .await
                .map_err(|error| BenchError::component("esc", error))?;
        }
        Ok(())
    }

    /// A semantic lookup of paraphrase number `request % 8` at `threshold`: whether it hit.
    ///
    /// # Errors
    /// [`BenchError::Component`] when the semantic cache is not running or refuses.
    pub async fn esc_lookup(&self, request: u64, threshold: f32) -> Result<bool, BenchError> {
        let (_, query) = PARAPHRASES[(request % PARAPHRASES.len() as u64) as usize];
        let started = Instant::now();
        let hit: Option<nfcs_performance::SemanticMatch<String>> = self
            .manager
            .semantic()
            .find_similar(query, threshold, ESC_CONTEXT)
            .await
            .map_err(|error| BenchError::component("esc", error))?;
        // Tokens: words and punctuation, about what the tokenizer makes of these sentences.
        let tokens = query.split_whitespace().count() as u64 + 2;
        self.recorder
            .record_esc_performance(tokens, started.elapsed(), PARAPHRASES.len() as u64);
        Ok(hit.is_some())
    }

    /// The spec's `solve_cgl_optimized`: the solve of `grid_size` from noise seed `seed`
    /// through the facade's memoized mathematics (`NFCSCacheManager::math`, key
    /// `cgl_{grid_size}_{hash}` of every parameter): from the cache, or computed once on a
    /// blocking thread and stored for an hour.
    ///
    /// # Errors
    /// [`BenchError::Kernel`] for parameters the solver refuses, [`BenchError::Component`]
    /// when the cache or the computation fails.
    pub async fn solve_cgl_optimized(
        &self,
        grid_size: usize,
        seed: u64,
    ) -> Result<SolveSummary, BenchError> {
        let solve = cgl_solve(grid_size, seed);
        solve.params.validate()?;
        let solved = self
            .manager
            .math()
            .solve_cgl(&solve, Ttl::After(Duration::from_secs(3600)))
            .await
            .map_err(|error| match error {
                MathError::Kernel(error) => BenchError::Kernel(error),
                other => BenchError::component("mathematical", other),
            })?;
        Ok(SolveSummary {
            grid_size,
            mean_intensity: solved.value.mean_intensity,
            cache_hit: solved.cache_hit,
        })
    }

    /// Notes the duration of a CGL step of the coordination loop's solver (its
    /// `mathematical_core` module calls this).
    pub fn note_cgl_step(&self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        self.last_cgl_step.store(nanos, Ordering::Relaxed);
    }

    /// The duration of the last CGL step of the coordination loop's solver.
    pub fn last_cgl_step(&self) -> Option<Duration> {
        match self.last_cgl_step.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    /// A fresh request number (for workloads that need distinct keys).
    pub fn next_request(&self) -> u64 {
        self.requests.fetch_add(1, Ordering::Relaxed)
    }
}

/// The memoized solve of [`System::solve_cgl_optimized`]: [`SOLVE_STEPS`] steps of
/// [`cgl_params`] from seeded noise of amplitude 0.01.
pub fn cgl_solve(grid_size: usize, seed: u64) -> CglSolve {
    CglSolve {
        params: cgl_params(grid_size),
        initial: InitialCondition::Noise {
            amplitude: 0.01,
            seed,
        },
        steps: SOLVE_STEPS,
    }
}

/// Whether a TCP connection to the host and port of `url` opens within a second.
async fn redis_answers(url: &str) -> bool {
    let Some(address) = redis_address(url) else {
        return false;
    };
    matches!(
        tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect(address)
        )
        .await,
        Ok(Ok(_))
    )
}

/// `host:port` of a `redis://` or `rediss://` URL (port 6379 when absent).
fn redis_address(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host_port.is_empty() {
        return None;
    }
    Some(
        if host_port
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
        {
            host_port.to_owned()
        } else {
            format!("{host_port}:6379")
        },
    )
}

/// The work directory a run keeps its disk tier in: `dir` or `./nfcs-bench-data`.
pub fn work_dir(dir: Option<&Path>) -> PathBuf {
    dir.map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Seconds since `started`, as f64.
pub fn elapsed_s(started: Instant) -> f64 {
    started.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_addresses() {
        assert_eq!(
            redis_address("redis://localhost:6380/0").as_deref(),
            Some("localhost:6380")
        );
        assert_eq!(
            redis_address("redis://localhost").as_deref(),
            Some("localhost:6379")
        );
        assert_eq!(
            redis_address("redis://:pw@h:7000").as_deref(),
            Some("h:7000")
        );
        assert_eq!(redis_address("nonsense"), None);
    }
}
