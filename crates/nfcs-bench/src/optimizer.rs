//! The spec's `AutoPerformanceOptimizer`: runs the suite, identifies optimizations from the
//! report, applies them to the running system, runs again, keeps what helped and reverts what
//! did not.
//!
//! The decisions are a pure function, [`plan`]: figures in ([`OptimizerInput`], read from a
//! report and the running system), proposals out. The spec's rules:
//!
//! | rule | when | what |
//! |---|---|---|
//! | `cache_hit_ratio` | the memory tier's hit ratio is under 0.8 | grow the tier toward a hit ratio of 0.9, to the size the miss-ratio curve gives (plus 0.02 for the curve's error), within the memory limit |
//! | `memory_fragmentation` | allocator fragmentation is over 30 % | turn on jemalloc's background purging threads (the Rust counterpart of the spec's GC tuning) |
//! | `cgl_fps` | the CGL solver misses its FPS target at the coordination loop's grid | the largest grid (a power of two, at least 32) whose FPS, measured or scaled from the nearest measured size as `n^2 log n`, meets the target with 20 % to spare |
//!
//! [`AutoPerformanceOptimizer::optimize_system_performance`] applies the proposals (the memory
//! tier's budget, the allocator's setting, the suite's coordination grid), re-runs the
//! components that measure them, and keeps each change only if its figure improved; a kept
//! growth that still leaves the hit ratio under 0.9 is followed by another, sized by the curve
//! measured meanwhile (three rounds at most). Every rule that proposed nothing says why.

use serde::Serialize;

use nfcs_performance::cache_core::mrc::MissRatioCurve;

use crate::components::Component;
use crate::error::BenchError;
use crate::report::BenchmarkReport;
use crate::suite::NFCSBenchmarkSuite;

/// The hit ratio under which the memory tier is grown.
pub const HIT_RATIO_FLOOR: f64 = 0.8;
/// The hit ratio the memory tier is grown toward.
pub const HIT_RATIO_GOAL: f64 = 0.9;
/// Rounds of growing the memory tier, at most, in one optimization.
pub const MAX_ROUNDS: usize = 3;
/// Allocator fragmentation, in percent, above which the allocator is tuned.
pub const FRAGMENTATION_CEILING: f64 = 30.0;

/// What the rules look at.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct OptimizerInput {
    /// The memory tier's hit ratio in the cache component's Zipf phase.
    pub memory_hit_ratio: Option<f64>,
    /// The memory tier's budget now.
    pub memory_budget: Option<u64>,
    /// The most the memory tier may be given.
    pub memory_limit: u64,
    /// The memory tier's miss-ratio curve (of its current policy), when the manager builds one.
    #[serde(skip)]
    pub curve: Option<MissRatioCurve>,
    /// Allocator fragmentation, percent.
    pub fragmentation_percent: Option<f64>,
    /// Whether jemalloc's background threads are on (`None`: no jemalloc).
    pub background_threads: Option<bool>,
    /// CGL steps per second by grid size.
    pub cgl_fps: Vec<(usize, f64)>,
    /// The CGL FPS target.
    pub cgl_target_fps: f64,
    /// The grid the coordination loop's CGL step runs.
    pub coordination_grid: usize,
}

impl OptimizerInput {
    /// The figures of `report`, with the running system's budget, curve and allocator
    /// setting, and the suite's targets and coordination grid.
    pub fn from_report(
        report: &BenchmarkReport,
        suite: &NFCSBenchmarkSuite,
        memory_limit: u64,
    ) -> OptimizerInput {
        let manager = suite.system().manager();
        let memory = manager.memory();
        let curve = manager.adaptive().and_then(|adaptive| {
            let (lru, s3fifo) = adaptive.curves();
            let policy = memory.map(|memory| memory.eviction_policy())?;
            Some(
                if policy == nfcs_performance::cache_core::EvictionPolicy::S3Fifo {
                    s3fifo
                } else {
                    lru
                },
            )
        });
        let cache = report.component(Component::Cache);
        let memory_hit_ratio = cache
            .and_then(|cache| cache.measurement_with("tier_hit_ratio", "tier", "memory"))
            .map(|measurement| measurement.value);
        let fragmentation_percent = report
            .component(Component::Memory)
            .and_then(|memory| memory.measurement("memory_fragmentation_percent"))
            .map(|measurement| measurement.value);
        let cgl_fps = report
            .component(Component::Mathematical)
            .map(|math| {
                math.measurements
                    .iter()
                    .filter(|measurement| measurement.name == "cgl_fps")
                    .filter_map(|measurement| {
                        let grid = measurement.labels.get("grid_size")?.parse().ok()?;
                        Some((grid, measurement.value))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let config = &suite.context().config;
        OptimizerInput {
            memory_hit_ratio,
            memory_budget: memory.map(|memory| memory.capacity()),
            memory_limit,
            curve,
            fragmentation_percent,
            background_threads: crate::alloc::background_threads().ok(),
            cgl_fps,
            cgl_target_fps: config.targets.cgl_fps,
            coordination_grid: config.coordination.grid_size,
        }
    }
}

/// A change the rules propose.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum Optimization {
    /// Give the memory tier a larger budget.
    GrowMemory {
        /// The budget now.
        from: u64,
        /// The budget proposed.
        to: u64,
        /// The hit ratio the curve predicts at `to` (`None` without a curve).
        predicted_hit_ratio: Option<f64>,
    },
    /// Turn jemalloc's background purging threads on.
    AllocatorBackgroundThreads {
        /// The setting now.
        from: bool,
        /// The setting proposed.
        to: bool,
    },
    /// Run the coordination loop's CGL step on another grid.
    CglGridSize {
        /// The grid now.
        from: usize,
        /// The grid proposed.
        to: usize,
        /// The FPS expected at `to`.
        predicted_fps: f64,
    },
}

/// A proposal: the rule, the change, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Proposal {
    /// The rule (`cache_hit_ratio`, `memory_fragmentation`, `cgl_fps`).
    pub rule: &'static str,
    /// The change.
    pub optimization: Optimization,
    /// Why, in words.
    pub reason: String,
}

/// What the rules propose, and for each rule that proposes nothing, why.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Plan {
    /// The changes to make.
    pub proposals: Vec<Proposal>,
    /// `(rule, why nothing)` for every rule without a proposal.
    pub unchanged: Vec<(&'static str, String)>,
}

/// The rules (see the module documentation): figures in, proposals out.
pub fn plan(input: &OptimizerInput) -> Plan {
    let mut plan = Plan::default();
    memory_rule(input, &mut plan);
    fragmentation_rule(input, &mut plan);
    cgl_rule(input, &mut plan);
    plan
}

fn memory_rule(input: &OptimizerInput, plan: &mut Plan) {
    memory_rule_below(input, plan, HIT_RATIO_FLOOR);
}

/// The memory rule, acting when the hit ratio is under `floor` (the spec's 0.8; the goal
/// itself for a second round).
fn memory_rule_below(input: &OptimizerInput, plan: &mut Plan, floor: f64) {
    const RULE: &str = "cache_hit_ratio";
    let (Some(hit_ratio), Some(budget)) = (input.memory_hit_ratio, input.memory_budget) else {
        plan.unchanged.push((
            RULE,
            "no memory-tier hit ratio (the cache component did not run, or there is no memory tier)"
                .to_owned(),
        ));
        return;
    };
    if hit_ratio >= floor {
        plan.unchanged.push((
            RULE,
            format!("the memory tier's hit ratio {hit_ratio:.3} is at least {floor}"),
        ));
        return;
    }
    if budget >= input.memory_limit {
        plan.unchanged.push((
            RULE,
            format!(
                "the memory tier's hit ratio {hit_ratio:.3} is under {HIT_RATIO_FLOOR}, but its budget of {budget} bytes is already at the limit of {} bytes",
                input.memory_limit
            ),
        ));
        return;
    }
    let (to, predicted, how) = match &input.curve {
        Some(curve) if !curve.points.is_empty() => {
            match curve.smallest_size_reaching(HIT_RATIO_GOAL + 0.02) {
                Some(size) => (
                    size,
                    Some(curve.hit_ratio_at(size)),
                    "the smallest size the miss-ratio curve gives for 0.92".to_owned(),
                ),
                None => {
                    let largest = curve.points.last().map_or(budget, |point| point.bytes);
                    (
                        largest,
                        Some(curve.hit_ratio_at(largest)),
                        format!(
                            "the curve's largest size (it does not reach {HIT_RATIO_GOAL} within it)"
                        ),
                    )
                }
            }
        }
        _ => (
            budget.saturating_mul(2),
            None,
            "twice the budget (no miss-ratio curve: set [memory] miss_ratio_curves = true)"
                .to_owned(),
        ),
    };
    let to = to.min(input.memory_limit).max(budget);
    if to <= budget {
        plan.unchanged.push((
            RULE,
            format!("the curve says {budget} bytes is already enough for {HIT_RATIO_GOAL}; the low hit ratio {hit_ratio:.3} is cold misses"),
        ));
        return;
    }
    plan.proposals.push(Proposal {
        rule: RULE,
        optimization: Optimization::GrowMemory {
            from: budget,
            to,
            predicted_hit_ratio: predicted,
        },
        reason: format!(
            "the memory tier's hit ratio {hit_ratio:.3} is under {floor}: grow it from {budget} to {to} bytes, {how}{}",
            if to == input.memory_limit { ", capped by the memory limit" } else { "" }
        ),
    });
}

fn fragmentation_rule(input: &OptimizerInput, plan: &mut Plan) {
    const RULE: &str = "memory_fragmentation";
    let Some(fragmentation) = input.fragmentation_percent else {
        plan.unchanged.push((
            RULE,
            "no fragmentation figure (the memory component did not run, or jemalloc is not the allocator)"
                .to_owned(),
        ));
        return;
    };
    if fragmentation <= FRAGMENTATION_CEILING {
        plan.unchanged.push((
            RULE,
            format!("fragmentation {fragmentation:.1} % is at most {FRAGMENTATION_CEILING} %"),
        ));
        return;
    }
    match input.background_threads {
        Some(false) => plan.proposals.push(Proposal {
            rule: RULE,
            optimization: Optimization::AllocatorBackgroundThreads {
                from: false,
                to: true,
            },
            reason: format!(
                "fragmentation {fragmentation:.1} % is over {FRAGMENTATION_CEILING} %: let jemalloc's background threads purge dirty pages"
            ),
        }),
        Some(true) => plan.unchanged.push((
            RULE,
            format!("fragmentation {fragmentation:.1} % is over {FRAGMENTATION_CEILING} %, but background purging is already on"),
        )),
        None => plan.unchanged.push((
            RULE,
            format!("fragmentation {fragmentation:.1} % is over {FRAGMENTATION_CEILING} %, but jemalloc is not tunable here"),
        )),
    }
}

/// FPS at `grid`, measured or scaled from the nearest measured size as `n^2 log n`.
fn fps_at(measured: &[(usize, f64)], grid: usize) -> Option<f64> {
    if let Some(&(_, fps)) = measured.iter().find(|(size, _)| *size == grid) {
        return Some(fps);
    }
    let cost = |n: usize| (n * n) as f64 * (n as f64).log2().max(1.0);
    measured
        .iter()
        .min_by_key(|(size, _)| size.abs_diff(grid))
        .map(|&(size, fps)| fps * cost(size) / cost(grid))
}

fn cgl_rule(input: &OptimizerInput, plan: &mut Plan) {
    const RULE: &str = "cgl_fps";
    let grid = input.coordination_grid;
    let Some(now) = fps_at(&input.cgl_fps, grid) else {
        plan.unchanged.push((
            RULE,
            "no CGL figures (the mathematical component did not run)".to_owned(),
        ));
        return;
    };
    if now >= input.cgl_target_fps {
        plan.unchanged.push((
            RULE,
            format!(
                "the CGL step at grid {grid} runs {now:.0} FPS, meeting the target of {:.0}",
                input.cgl_target_fps
            ),
        ));
        return;
    }
    let wanted = input.cgl_target_fps * 1.2;
    let choice = (5..=12)
        .map(|power| 1_usize << power)
        .filter(|&size| size < grid)
        .filter_map(|size| fps_at(&input.cgl_fps, size).map(|fps| (size, fps)))
        .filter(|&(_, fps)| fps >= wanted)
        .max_by_key(|&(size, _)| size);
    match choice {
        Some((to, predicted_fps)) => plan.proposals.push(Proposal {
            rule: RULE,
            optimization: Optimization::CglGridSize {
                from: grid,
                to,
                predicted_fps,
            },
            reason: format!(
                "the CGL step at grid {grid} runs {now:.0} FPS, under the target of {:.0}: grid {to} should run {predicted_fps:.0} (the solver already splits large grids across the cores itself)",
                input.cgl_target_fps
            ),
        }),
        None => plan.unchanged.push((
            RULE,
            format!(
                "the CGL step at grid {grid} runs {now:.0} FPS, under the target of {:.0}, and no grid down to 32 is expected to reach it",
                input.cgl_target_fps
            ),
        )),
    }
}

/// A change made, and whether it stayed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Outcome {
    /// The proposal applied.
    pub proposal: Proposal,
    /// The rule's figure before.
    pub before: Option<f64>,
    /// The rule's figure after.
    pub after: Option<f64>,
    /// Whether it was kept (it improved the figure) or reverted.
    pub kept: bool,
}

/// What [`AutoPerformanceOptimizer::optimize_system_performance`] did.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct OptimizationReport {
    /// Whether this was a dry run (nothing applied).
    pub dry_run: bool,
    /// The figures before.
    pub before: OptimizerInput,
    /// The figures after the re-run (`None` for a dry run or when nothing was applied).
    pub after: Option<OptimizerInput>,
    /// What the rules proposed.
    pub plan: Plan,
    /// What was applied, and whether it was kept.
    pub outcomes: Vec<Outcome>,
    /// The reports of the runs (before, and after when there was one).
    #[serde(skip)]
    pub reports: Vec<BenchmarkReport>,
}

/// The spec's `AutoPerformanceOptimizer` over a suite and its running system.
#[derive(Debug)]
pub struct AutoPerformanceOptimizer {
    suite: NFCSBenchmarkSuite,
    memory_limit: u64,
    components: Vec<Component>,
}

impl AutoPerformanceOptimizer {
    /// An optimizer over `suite`, growing the memory tier to at most `memory_limit` bytes,
    /// running every component.
    pub fn new(suite: NFCSBenchmarkSuite, memory_limit: u64) -> AutoPerformanceOptimizer {
        AutoPerformanceOptimizer {
            suite,
            memory_limit,
            components: Component::ALL.to_vec(),
        }
    }

    /// Runs only `components` (the rules of components that do not run say so).
    #[must_use]
    pub fn components(mut self, components: &[Component]) -> AutoPerformanceOptimizer {
        self.components = components.to_vec();
        self
    }

    /// The suite.
    pub fn suite(&self) -> &NFCSBenchmarkSuite {
        &self.suite
    }

    /// Runs the suite, plans, and (unless `dry_run`) applies the plan, re-runs, and keeps
    /// what improved its figure, reverting the rest.
    ///
    /// # Errors
    /// What the suite's runs return.
    pub async fn optimize_system_performance(
        &mut self,
        dry_run: bool,
    ) -> Result<OptimizationReport, BenchError> {
        let first = self.suite.run_components(&self.components).await?;
        let before = OptimizerInput::from_report(&first, &self.suite, self.memory_limit);
        let plan = plan(&before);
        let mut report = OptimizationReport {
            dry_run,
            before,
            after: None,
            plan,
            outcomes: Vec::new(),
            reports: vec![first],
        };
        if dry_run || report.plan.proposals.is_empty() {
            return Ok(report);
        }
        let mut reruns = Vec::new();
        for proposal in &report.plan.proposals {
            self.apply(&proposal.optimization, true);
            match &proposal.optimization {
                Optimization::GrowMemory { .. } => reruns.push(Component::Cache),
                Optimization::AllocatorBackgroundThreads { .. } => reruns.push(Component::Memory),
                Optimization::CglGridSize { to, .. } => {
                    let grids = &mut self
                        .suite
                        .context_mut()
                        .config
                        .mathematical_benchmarks
                        .cgl_solver
                        .grid_sizes;
                    if !grids.contains(to) {
                        grids.push(*to);
                    }
                    reruns.push(Component::Mathematical);
                }
            }
        }
        reruns.sort_by_key(|component| Component::ALL.iter().position(|c| c == component));
        reruns.dedup();
        let second = self.suite.run_components(&reruns).await?;
        let after = OptimizerInput::from_report(&second, &self.suite, self.memory_limit);
        for proposal in report.plan.proposals.clone() {
            let (before_value, after_value, improved) = match &proposal.optimization {
                Optimization::GrowMemory { .. } => {
                    let (b, a) = (report.before.memory_hit_ratio, after.memory_hit_ratio);
                    (b, a, matches!((b, a), (Some(b), Some(a)) if a > b + 0.005))
                }
                Optimization::AllocatorBackgroundThreads { .. } => {
                    let (b, a) = (
                        report.before.fragmentation_percent,
                        after.fragmentation_percent,
                    );
                    (b, a, matches!((b, a), (Some(b), Some(a)) if a < b))
                }
                Optimization::CglGridSize { to, .. } => {
                    let a = fps_at(&after.cgl_fps, *to);
                    let b = fps_at(&report.before.cgl_fps, report.before.coordination_grid);
                    (b, a, a.is_some_and(|a| a >= report.before.cgl_target_fps))
                }
            };
            if !improved {
                self.apply(&proposal.optimization, false);
            }
            report.outcomes.push(Outcome {
                proposal,
                before: before_value,
                after: after_value,
                kept: improved,
            });
        }
        report.after = Some(after);
        report.reports.push(second);
        self.grow_further(&mut report).await?;
        Ok(report)
    }

    /// While a kept growth of the memory tier still leaves its hit ratio under the goal,
    /// grows it again by the curve measured since, re-running the cache component (at most
    /// [`MAX_ROUNDS`] rounds in all): a curve from a sample is an estimate, and the re-run shows
    /// how far off it was.
    async fn grow_further(&mut self, report: &mut OptimizationReport) -> Result<(), BenchError> {
        for _ in 1..MAX_ROUNDS {
            let grew = report.outcomes.last().is_some_and(|outcome| {
                outcome.kept
                    && matches!(
                        outcome.proposal.optimization,
                        Optimization::GrowMemory { .. }
                    )
            });
            let Some(current) = report.after.clone() else {
                return Ok(());
            };
            if !grew
                || current
                    .memory_hit_ratio
                    .is_none_or(|ratio| ratio >= HIT_RATIO_GOAL)
            {
                return Ok(());
            }
            let mut next = Plan::default();
            memory_rule_below(&current, &mut next, HIT_RATIO_GOAL);
            let Some(proposal) = next.proposals.pop() else {
                return Ok(());
            };
            self.apply(&proposal.optimization, true);
            let run = self.suite.run_components(&[Component::Cache]).await?;
            let after = OptimizerInput::from_report(&run, &self.suite, self.memory_limit);
            let (before_value, after_value) = (current.memory_hit_ratio, after.memory_hit_ratio);
            let kept = matches!((before_value, after_value), (Some(b), Some(a)) if a > b + 0.005);
            if !kept {
                self.apply(&proposal.optimization, false);
            }
            report.outcomes.push(Outcome {
                proposal: proposal.clone(),
                before: before_value,
                after: after_value,
                kept,
            });
            report.plan.proposals.push(proposal);
            report.after = Some(after);
            report.reports.push(run);
        }
        Ok(())
    }

    /// Applies (`forward`) or reverts an optimization on the running system.
    fn apply(&mut self, optimization: &Optimization, forward: bool) {
        match *optimization {
            Optimization::GrowMemory { from, to, .. } => {
                if let Some(memory) = self.suite.system().manager().memory()
                    && let Err(error) = memory.resize(if forward { to } else { from })
                {
                    tracing::warn!(%error, "the memory tier refused the budget");
                }
            }
            Optimization::AllocatorBackgroundThreads { from, to } => {
                if let Err(error) =
                    crate::alloc::set_background_threads(if forward { to } else { from })
                {
                    tracing::warn!(%error, "the allocator setting could not be changed");
                }
            }
            Optimization::CglGridSize { from, to, .. } => {
                self.suite.context_mut().config.coordination.grid_size =
                    if forward { to } else { from };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfcs_performance::cache_core::EvictionPolicy;
    use nfcs_performance::cache_core::mrc::CurvePoint;

    const MIB: u64 = 1 << 20;

    fn input() -> OptimizerInput {
        OptimizerInput {
            memory_limit: 64 * MIB,
            cgl_target_fps: 30.0,
            coordination_grid: 128,
            ..OptimizerInput::default()
        }
    }

    fn curve(points: &[(u64, f64)]) -> MissRatioCurve {
        MissRatioCurve {
            policy: EvictionPolicy::Lru,
            points: points
                .iter()
                .map(|&(bytes, miss_ratio)| CurvePoint { bytes, miss_ratio })
                .collect(),
            sampled_reads: 10_000.0,
        }
    }

    #[test]
    fn a_low_hit_ratio_grows_memory_to_what_the_curve_says() {
        let mut input = input();
        input.memory_hit_ratio = Some(0.6);
        input.memory_budget = Some(MIB);
        input.curve = Some(curve(&[(MIB, 0.4), (4 * MIB, 0.08), (16 * MIB, 0.02)]));
        let plan = plan(&input);
        let [proposal] = plan.proposals.as_slice() else {
            panic!("{plan:?}");
        };
        let Optimization::GrowMemory {
            from,
            to,
            predicted_hit_ratio,
        } = proposal.optimization
        else {
            panic!("{proposal:?}");
        };
        assert_eq!(from, MIB);
        assert!(to > MIB && to <= 4 * MIB + 1, "{to}"); // rounded up
        assert!(predicted_hit_ratio.is_some_and(|ratio| ratio >= 0.92 - 1e-9));
    }

    #[test]
    fn the_limit_caps_growth_and_a_tier_at_the_limit_is_left_alone() {
        let mut input = input();
        input.memory_hit_ratio = Some(0.5);
        input.memory_budget = Some(32 * MIB);
        input.curve = Some(curve(&[(MIB, 0.9), (512 * MIB, 0.05)]));
        let first = plan(&input);
        assert!(matches!(
            first.proposals[0].optimization,
            Optimization::GrowMemory { to, .. } if to == 64 * MIB
        ));
        input.memory_budget = Some(64 * MIB);
        let plan = plan(&input);
        assert!(plan.proposals.is_empty());
        assert!(
            plan.unchanged
                .iter()
                .any(|(rule, why)| *rule == "cache_hit_ratio" && why.contains("limit"))
        );
    }

    #[test]
    fn nothing_to_do_says_why_for_every_rule() {
        let mut input = input();
        input.memory_hit_ratio = Some(0.95);
        input.memory_budget = Some(MIB);
        input.fragmentation_percent = Some(12.0);
        input.background_threads = Some(false);
        input.cgl_fps = vec![(64, 2_000.0), (128, 400.0)];
        let plan = plan(&input);
        assert!(plan.proposals.is_empty(), "{plan:?}");
        let rules: Vec<&str> = plan.unchanged.iter().map(|(rule, _)| *rule).collect();
        assert_eq!(
            rules,
            ["cache_hit_ratio", "memory_fragmentation", "cgl_fps"]
        );
    }

    #[test]
    fn fragmentation_and_slow_cgl_are_acted_on() {
        let mut input = input();
        input.fragmentation_percent = Some(45.0);
        input.background_threads = Some(false);
        input.cgl_fps = vec![(64, 120.0), (128, 20.0)];
        let plan = plan(&input);
        assert!(plan.proposals.iter().any(|p| p.optimization
            == Optimization::AllocatorBackgroundThreads {
                from: false,
                to: true
            }));
        assert!(plan.proposals.iter().any(|p| matches!(
            p.optimization,
            Optimization::CglGridSize {
                from: 128,
                to: 64,
                ..
            }
        )));
    }
}
