//! `NFCSBenchmarkSuite`: builds the system under test, runs the components, assembles the
//! report and writes it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::components::{self, Component, RunContext};
use crate::config::BenchmarkConfig;
use crate::error::BenchError;
use crate::progress::Progress;
use crate::report::{
    BenchmarkReport, ComponentReport, ComponentStatus, MachineInfo, Profile, SCHEMA_VERSION,
};
use crate::system::System;

/// How a suite runs: where its disk tier lives, the profile, progress bars.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// Relative paths of the cache configuration (the disk tier's directory) are resolved
    /// against this directory.
    pub work_dir: PathBuf,
    /// Full or quick durations.
    pub profile: Profile,
    /// Progress bars ([`Progress::hidden`] by default).
    pub progress: Progress,
}

impl Default for SuiteOptions {
    fn default() -> SuiteOptions {
        SuiteOptions {
            work_dir: PathBuf::from("."),
            profile: Profile::Full,
            progress: Progress::hidden(),
        }
    }
}

impl SuiteOptions {
    /// The quick profile, in `work_dir`.
    pub fn quick(work_dir: impl Into<PathBuf>) -> SuiteOptions {
        SuiteOptions {
            work_dir: work_dir.into(),
            profile: Profile::Quick,
            progress: Progress::hidden(),
        }
    }
}

/// The NFCS benchmark suite: measures the system under test against the spec's targets.
///
/// Built once ([`NFCSBenchmarkSuite::new`] builds the `NFCSCacheManager` of the
/// configuration's `[cache]` table and the policy cache), then run whole
/// ([`run_full_benchmark`](NFCSBenchmarkSuite::run_full_benchmark)), by component
/// ([`run_component_benchmark`](NFCSBenchmarkSuite::run_component_benchmark)) or as a load
/// test ([`run_load_test`](NFCSBenchmarkSuite::run_load_test)).
#[derive(Debug)]
pub struct NFCSBenchmarkSuite {
    config: BenchmarkConfig,
    context: RunContext,
}

impl NFCSBenchmarkSuite {
    /// Builds the suite and its system under test.
    ///
    /// # Errors
    /// [`BenchError::Config`] for an invalid configuration, [`BenchError::Build`] when the
    /// manager cannot be built.
    pub async fn new(
        config: BenchmarkConfig,
        options: SuiteOptions,
    ) -> Result<NFCSBenchmarkSuite, BenchError> {
        config.validate()?;
        let effective = match options.profile {
            Profile::Full => config.clone(),
            Profile::Quick => config.quick(),
        };
        let system = Arc::new(
            System::build_with_sample_rate(
                &effective.cache,
                &options.work_dir,
                effective.sample_rate,
            )
            .await?,
        );
        Ok(NFCSBenchmarkSuite {
            config,
            context: RunContext {
                config: effective,
                profile: options.profile,
                progress: options.progress,
                system,
            },
        })
    }

    /// The suite over a system that already runs (a served node's, for its
    /// `run_performance_check`): the components drive `system` as it is, beside whatever
    /// else it serves. `config.cache` is not used.
    pub fn with_system(
        config: BenchmarkConfig,
        options: SuiteOptions,
        system: Arc<System>,
    ) -> NFCSBenchmarkSuite {
        let effective = match options.profile {
            Profile::Full => config.clone(),
            Profile::Quick => config.quick(),
        };
        NFCSBenchmarkSuite {
            config,
            context: RunContext {
                config: effective,
                profile: options.profile,
                progress: options.progress,
                system,
            },
        }
    }

    /// The configuration as given (before the quick profile shrinks it).
    pub fn config(&self) -> &BenchmarkConfig {
        &self.config
    }

    /// What the components run with.
    pub fn context(&self) -> &RunContext {
        &self.context
    }

    /// What the components run with, to change (the optimizer sets the coordination grid).
    pub fn context_mut(&mut self) -> &mut RunContext {
        &mut self.context
    }

    /// The system under test.
    pub fn system(&self) -> &Arc<System> {
        &self.context.system
    }

    /// Runs every component.
    ///
    /// # Errors
    /// None today beyond what [`run_components`](NFCSBenchmarkSuite::run_components) returns:
    /// a component that fails is reported as failed, and the others still run.
    pub async fn run_full_benchmark(&self) -> Result<BenchmarkReport, BenchError> {
        self.run_components(&Component::ALL).await
    }

    /// Runs one component.
    ///
    /// # Errors
    /// The component's error.
    pub async fn run_component_benchmark(
        &self,
        component: Component,
    ) -> Result<ComponentReport, BenchError> {
        let started = Instant::now();
        let context = &self.context;
        let mut report = match component {
            Component::Mathematical => components::mathematical::run(context).await,
            Component::Constitutional => components::constitutional::run(context).await,
            Component::Cache => components::cache::run(context).await,
            Component::Esc => components::esc::run(context).await,
            Component::Coordination => components::coordination::run(context).await,
            Component::Memory => components::memory::run(context).await,
            Component::Load => components::load::run(context).await,
        }?;
        if report.duration_s == 0.0 {
            report.duration_s = started.elapsed().as_secs_f64();
        }
        Ok(report)
    }

    /// Runs `components` in order into one report; a component that fails is reported as
    /// failed (with its error) and the others still run. The memory component, when asked
    /// for, runs last: the allocator is sampled every `memory_profiling.profile_interval` from
    /// the start of the run, and its "memory over time" covers every other component.
    ///
    /// # Errors
    /// [`BenchError::Config`] when the suite is disabled (`enabled = false`).
    pub async fn run_components(
        &self,
        components: &[Component],
    ) -> Result<BenchmarkReport, BenchError> {
        if !self.config.enabled {
            return Err(BenchError::config(
                "enabled",
                "the benchmark suite is disabled in this configuration",
            ));
        }
        let started = Instant::now();
        let started_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64);
        // The memory component runs last and draws the allocator's samples of the whole run.
        let mut order: Vec<Component> = components
            .iter()
            .copied()
            .filter(|component| *component != Component::Memory)
            .collect();
        let profiler = if components.contains(&Component::Memory) {
            order.push(Component::Memory);
            crate::alloc::MemoryProfiler::start_recording(
                std::time::Duration::from_secs_f64(
                    self.context.config.memory_profiling.profile_interval,
                ),
                Arc::clone(self.context.system.recorder()),
            )
            .ok()
        } else {
            None
        };
        let mut reports = Vec::new();
        for component in order {
            let component_started = Instant::now();
            let result = match (component, &profiler) {
                (Component::Memory, Some(profiler)) => {
                    profiler.sample_now();
                    components::memory::run_with_profile(&self.context, profiler.samples()).await
                }
                _ => self.run_component_benchmark(component).await,
            };
            let report = match result {
                Ok(report) => report,
                Err(error) => {
                    let mut failed = ComponentReport::failed(component, error.to_string());
                    failed.duration_s = component_started.elapsed().as_secs_f64();
                    failed
                }
            };
            let line = match &report.status {
                ComponentStatus::Ran => format!(
                    "{component}: {} in {:.1} s",
                    if report.passed() {
                        "targets met"
                    } else {
                        "TARGETS MISSED"
                    },
                    report.duration_s
                ),
                ComponentStatus::Skipped { reason } => format!("{component}: skipped: {reason}"),
                ComponentStatus::Failed { error } => format!("{component}: FAILED: {error}"),
            };
            self.context.progress.println(&line);
            reports.push(report);
        }
        let mut report = self.assemble(reports, started);
        report.started_unix_ms = started_unix_ms;
        Ok(report)
    }

    /// A report of `components`, as run by this suite since `started`.
    pub fn assemble(&self, components: Vec<ComponentReport>, started: Instant) -> BenchmarkReport {
        let started_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |now| now.as_millis() as u64)
            .saturating_sub(started.elapsed().as_millis() as u64);
        BenchmarkReport {
            schema_version: SCHEMA_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            profile: self.context.profile,
            started_unix_ms,
            duration_s: started.elapsed().as_secs_f64(),
            machine: MachineInfo::current(),
            commit: current_commit(),
            config: self.config.clone(),
            system: Some(self.context.system.describe()),
            components,
        }
    }

    /// The spec's `run_load_test(concurrent_users, duration)`: the configured scenarios with
    /// `users` as their users and `duration_s` seconds as the whole load phase
    /// ([`components::load::LoadOptions::new`]).
    ///
    /// # Errors
    /// [`BenchError::Config`] for users or a duration that cannot run; [`BenchError`] when the
    /// system under test fails.
    pub async fn run_load_test(
        &self,
        users: u32,
        duration_s: f64,
    ) -> Result<ComponentReport, BenchError> {
        self.run_load(components::load::LoadOptions::new(users, duration_s))
            .await
    }

    /// A load test as `options` describe (one scenario, one model, a rate: what
    /// `nfcs-bench load` offers).
    ///
    /// # Errors
    /// As [`run_load_test`](NFCSBenchmarkSuite::run_load_test).
    pub async fn run_load(
        &self,
        options: components::load::LoadOptions,
    ) -> Result<ComponentReport, BenchError> {
        components::load::run_load_test(&self.context, options).await
    }
}

/// The commit of the code under test: `NFCS_BENCH_COMMIT`, or `git rev-parse HEAD` in the
/// working directory, or `None`.
pub fn current_commit() -> Option<String> {
    if let Ok(commit) = std::env::var("NFCS_BENCH_COMMIT") {
        return Some(commit).filter(|commit| !commit.is_empty());
    }
    let output = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .filter(|commit| !commit.is_empty())
}
