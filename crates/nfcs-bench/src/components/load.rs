//! The load component: the configured scenarios (`normal_load`, `peak_load`, `stress_test`)
//! through the load engine ([`crate::load`]) against the system in process.
//!
//! - `normal_load` (half of `load_testing.test_duration`): the closed model,
//!   `max_concurrent_users` ramped up linearly over `ramp_up_time`, then held; exponential
//!   think times of mean `think_time_ms`.
//! - `peak_load` (a quarter): the open model at `peak_rate`, or twice the throughput
//!   `normal_load` held after its ramp (without `normal_load`: twice what the users would
//!   send if the system answered at once, `users / think time`).
//! - `stress_test` (at most a quarter): closed-model steps of 1.5 times more users each,
//!   starting past `max_concurrent_users`, until the corrected p95 exceeds
//!   `targets.load_p95_s` or the success rate falls under `targets.load_success_rate` (the
//!   breaking point), or the time runs out.
//!
//! Every scenario runs the NFCS mix ([`Mix::nfcs`]) with a fixed seed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::components::{Component, RunContext};
use crate::config::Scenario;
use crate::error::BenchError;
use crate::load::{
    ClosedModel, InProcessTarget, LoadPlan, LoadResult, Mix, Model, OpenModel, Target, ThinkTime,
};
use crate::report::{
    Better, ComponentReport, Measurement, Plot, PlotKind, Series, Target as Budget,
};

/// The seed of the component's runs.
pub const SEED: u64 = 0x4e46_4353;

/// How much more users each `stress_test` step has than the one before.
pub const STRESS_FACTOR: f64 = 1.5;

/// Which model a custom run uses (`--model closed|open`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelChoice {
    /// Virtual users with think times.
    Closed,
    /// A constant arrival rate.
    Open,
}

impl std::str::FromStr for ModelChoice {
    type Err = BenchError;

    fn from_str(name: &str) -> Result<ModelChoice, BenchError> {
        match name {
            "closed" => Ok(ModelChoice::Closed),
            "open" => Ok(ModelChoice::Open),
            other => Err(BenchError::config(
                "model",
                format!("{other:?}: expected closed or open"),
            )),
        }
    }
}

/// What `nfcs-bench load` and the suite's `run_load_test` ask for; anything left `None`
/// comes from `[load_testing]`.
///
/// - Without `scenario` and `model`: the configured scenarios with `users` as
///   `max_concurrent_users` and `duration` as the whole load phase (shared as configured).
/// - With `scenario`: that scenario alone, taking the whole `duration`.
/// - With `model`: one run of that model for `duration` (label `scenario` = the scenario's
///   name, or `custom`): closed, `users` ramped over `ramp_up_time` (at most a third of the
///   run); open, `rate` arrivals per second (by default twice `users / think time`) with up
///   to `10 x users` in flight.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadOptions {
    /// Users (`--users`).
    pub users: Option<u32>,
    /// Seconds (`--duration`).
    pub duration: Option<f64>,
    /// One scenario (`--scenario`).
    pub scenario: Option<Scenario>,
    /// One model (`--model`).
    pub model: Option<ModelChoice>,
    /// The open model's arrival rate, per second (`--rate`).
    pub rate: Option<f64>,
    /// One operation alone instead of the NFCS mix (`--operation`), e.g. to compare the
    /// engine with a single-request load generator on the same endpoint.
    pub operation: Option<crate::load::Operation>,
}

impl LoadOptions {
    /// The configured scenarios with `users` users over `duration` seconds.
    pub fn new(users: u32, duration: f64) -> LoadOptions {
        LoadOptions {
            users: Some(users),
            duration: Some(duration),
            ..LoadOptions::default()
        }
    }
}

/// Runs the load component: the configured scenarios against the system in process.
///
/// # Errors
/// [`BenchError`] when the system under test fails or the configuration cannot run.
pub async fn run(context: &RunContext) -> Result<ComponentReport, BenchError> {
    run_load_test(context, LoadOptions::default()).await
}

/// Runs the load test `options` describe against the system in process.
///
/// # Errors
/// [`BenchError::Config`] for users, durations or rates that cannot run; [`BenchError`] when
/// the system under test fails.
pub async fn run_load_test(
    context: &RunContext,
    options: LoadOptions,
) -> Result<ComponentReport, BenchError> {
    let target = InProcessTarget::new(Arc::clone(&context.system));
    target
        .prepare()
        .await
        .map_err(|error| BenchError::component(Component::Load, error))?;
    let semantic = target.supports(&crate::load::Operation::SemanticLookup);
    let mix = options
        .operation
        .clone()
        .map_or_else(|| Mix::nfcs(semantic), Mix::single);
    let mut report = run_with_target(context, Arc::new(target), mix, options).await?;
    if let Some(reason) = context.system.semantic_unavailable() {
        report.note(format!(
            "semantic lookups are left out of the mix: the semantic cache is not running ({reason})"
        ));
    }
    Ok(report)
}

/// Runs the load test `options` describe against served nodes over HTTP (`urls`, each
/// `http://host:port`; `token` sent as the bearer token), with the in-process mix (semantic
/// lookups when every node runs its semantic cache). With two or more nodes the
/// [`FreshnessProbe`](crate::load::http::FreshnessProbe) runs beside the load and the report
/// carries `cross_node_stale_reads` (target 0, against `load_testing.freshness_bound_ms`) and
/// the propagation delays.
///
/// # Errors
/// [`BenchError::Config`] naming `target` for a URL that is not `http://host:port`;
/// [`BenchError::Component`] when a node does not answer before the run; otherwise as
/// [`run_load_test`].
#[cfg(feature = "serve")]
#[cfg_attr(docsrs, doc(cfg(feature = "serve")))]
pub async fn run_over_http(
    context: &RunContext,
    urls: &[String],
    token: Option<String>,
    options: LoadOptions,
) -> Result<ComponentReport, BenchError> {
    use crate::load::http::{FreshnessProbe, HttpTarget};
    let target = HttpTarget::new(urls, token)
        .map_err(|error| BenchError::config("target", error.to_string()))?;
    let semantic = target
        .semantic_everywhere()
        .await
        .map_err(|error| BenchError::component(Component::Load, error))?;
    target
        .prepare(semantic)
        .await
        .map_err(|error| BenchError::component(Component::Load, error))?;
    let bound = Duration::from_secs_f64(context.config.load_testing.freshness_bound_ms / 1e3);
    let probe = (urls.len() >= 2)
        .then(|| FreshnessProbe::start(target.clone(), bound, Duration::from_millis(20)));
    let mix = options
        .operation
        .clone()
        .map_or_else(|| Mix::nfcs(semantic), Mix::single);
    let outcome = run_with_target(context, Arc::new(target.clone()), mix, options).await;
    let freshness = match probe {
        Some(probe) => Some(probe.finish().await),
        None => None,
    };
    let mut report = outcome?;
    if !semantic {
        report.note(
            "semantic lookups are left out of the mix: a target node does not run its semantic cache",
        );
    }
    for line in target.describe().await {
        report.note(format!("target {line}"));
    }
    if let Some(freshness) = freshness {
        let bound_ms = freshness.bound_s * 1e3;
        report.push(Measurement::with_target(
            "cross_node_stale_reads",
            (freshness.stale_reads + freshness.never_fresh) as f64,
            "reads",
            Budget::at_most(0.0),
        ));
        report.push(Measurement::info(
            "cross_node_probes",
            freshness.probes as f64,
            "probes",
        ));
        report.push(Measurement::info(
            "cross_node_probe_errors",
            freshness.errors as f64,
            "probes",
        ));
        let mut delays = freshness.delays_s.clone();
        delays.sort_by(f64::total_cmp);
        for (name, quantile) in [("p50", 0.5), ("p99", 0.99), ("max", 1.0)] {
            if let Some(delay) = nearest_rank(&delays, quantile) {
                report.push(Measurement::info(
                    format!("cross_node_propagation_{name}"),
                    delay * 1e3,
                    "ms",
                ));
            }
        }
        report.note(format!(
            "cross-node freshness: {} probes (write old through one node, read it through the              next, write new, read until new); a read issued more than {bound_ms} ms after the              new write's acknowledgement that still answered old is a stale read              (load_testing.freshness_bound_ms); {} never answered new within {} s",
            freshness.probes,
            freshness.never_fresh,
            crate::load::http::PROBE_TIMEOUT.as_secs()
        ));
    }
    Ok(report)
}

/// The `quantile` of sorted `values` by nearest rank.
#[cfg(feature = "serve")]
fn nearest_rank(values: &[f64], quantile: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let rank = ((quantile * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

/// Runs the load test `options` describe against any `target` with the operation `mix`
/// (the in-process target, the HTTP target of [`run_over_http`], your own).
///
/// # Errors
/// As [`run_load_test`].
pub async fn run_with_target(
    context: &RunContext,
    target: Arc<dyn Target>,
    mix: Mix,
    options: LoadOptions,
) -> Result<ComponentReport, BenchError> {
    let started = Instant::now();
    let settings = Settings::new(context, &options)?;
    let mut report = ComponentReport::new(Component::Load);
    report.note(
        "load latencies are measured from each request's intended start (corrected for \
         coordinated omission) and from its actual start (raw, `load_latency_raw_*`): closed \
         model, request n+1 of a user is intended at intended(n) + service(n) + think(n); open \
         model, arrivals are intended on a fixed schedule, so a stall shows in the corrected \
         latencies of the arrivals behind it",
    );
    report.note(format!(
        "operation mix: {}; target {}; seed {SEED:#x}",
        mix.operations()
            .iter()
            .map(|(operation, weight)| format!("{operation} {weight}"))
            .collect::<Vec<_>>()
            .join(", "),
        target.name()
    ));
    let runner = Runner {
        context,
        target,
        mix,
        settings,
    };
    match (options.model, options.scenario) {
        (Some(model), scenario) => {
            let label = scenario.map_or("custom", Scenario::name);
            runner.custom(&mut report, label, model, &options).await?;
        }
        (None, Some(scenario)) => {
            runner
                .scenario(&mut report, scenario, runner.settings.duration, &mut None)
                .await?;
        }
        (None, None) => {
            let mut normal_throughput = None;
            for &scenario in &context.config.load_testing.scenarios {
                let share = runner.settings.duration * scenario.share();
                runner
                    .scenario(&mut report, scenario, share, &mut normal_throughput)
                    .await?;
            }
        }
    }
    report.duration_s = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The configuration as this run reads it.
struct Settings {
    users: u32,
    duration: f64,
    ramp: f64,
    think: ThinkTime,
    think_ms: f64,
    peak_rate: f64,
    success_target: f64,
    p95_target: f64,
}

impl Settings {
    fn new(context: &RunContext, options: &LoadOptions) -> Result<Settings, BenchError> {
        let load = &context.config.load_testing;
        let users = options.users.unwrap_or(load.max_concurrent_users);
        if !(1..=100_000).contains(&users) {
            return Err(BenchError::config(
                "users",
                format!("{users}: must be between 1 and 100000"),
            ));
        }
        let duration = options.duration.unwrap_or(load.test_duration);
        if !(duration.is_finite() && duration > 0.0 && duration <= 86_400.0) {
            return Err(BenchError::config(
                "duration",
                format!("{duration}: must be a number of seconds above 0 and at most 86400"),
            ));
        }
        if let Some(rate) = options.rate
            && !(rate.is_finite() && rate > 0.0 && rate <= 10_000_000.0)
        {
            return Err(BenchError::config(
                "rate",
                format!("{rate}: must be above 0 and at most 10000000 requests/s"),
            ));
        }
        Ok(Settings {
            users,
            duration,
            ramp: load.ramp_up_time,
            think: ThinkTime::exponential_ms(load.think_time_ms),
            think_ms: load.think_time_ms,
            peak_rate: options.rate.unwrap_or(load.peak_rate),
            success_target: context.config.targets.load_success_rate,
            p95_target: context.config.targets.load_p95_s,
        })
    }

    /// What `users` users send per second if every response came at once (think time 0:
    /// 1000 per user, a nominal figure).
    fn unloaded_rate(&self, users: u32) -> f64 {
        f64::from(users) * 1000.0 / self.think_ms.max(1.0)
    }

    /// A closed run of `users` for `seconds`, ramped over `ramp` seconds.
    fn closed(&self, users: u32, seconds: f64, ramp: f64) -> ClosedModel {
        let duration = Duration::from_secs_f64(seconds);
        let ramp = Duration::from_secs_f64(ramp.clamp(0.0, seconds));
        ClosedModel::ramp_and_hold(users, ramp, duration, self.think)
    }

    /// An open run at `rate` for `seconds`.
    fn open(&self, rate: f64, seconds: f64) -> OpenModel {
        let mut model = OpenModel::constant(rate, Duration::from_secs_f64(seconds));
        model.max_in_flight = usize::try_from(self.users.saturating_mul(10))
            .unwrap_or(usize::MAX)
            .max(64);
        model.drop_after = Duration::from_secs_f64((self.p95_target * 5.0).max(1.0));
        model
    }
}

struct Runner<'a> {
    context: &'a RunContext,
    target: Arc<dyn Target>,
    mix: Mix,
    settings: Settings,
}

impl Runner<'_> {
    async fn execute(&self, model: Model, phase: &str) -> Result<LoadResult, BenchError> {
        let plan = LoadPlan::new(model, self.mix.clone()).seed(SEED);
        let bar = self
            .context
            .progress
            .timed(&format!("load {phase}"), plan.model.duration());
        let result = crate::load::run(Arc::clone(&self.target), &plan, &bar)
            .await
            .map_err(|error| BenchError::component(Component::Load, error));
        bar.finish_and_clear();
        result
    }

    async fn scenario(
        &self,
        report: &mut ComponentReport,
        scenario: Scenario,
        seconds: f64,
        normal_throughput: &mut Option<f64>,
    ) -> Result<(), BenchError> {
        let settings = &self.settings;
        match scenario {
            Scenario::NormalLoad => {
                // The configuration keeps the ramp under this share; a shorter `--duration`
                // may not, and then the ramp takes half the run.
                let model =
                    settings.closed(settings.users, seconds, settings.ramp.min(seconds / 2.0));
                let ramp = model
                    .stages
                    .first()
                    .filter(|_| model.stages.len() > 1)
                    .map_or(Duration::ZERO, |stage| stage.duration);
                let result = self.execute(Model::Closed(model), scenario.name()).await?;
                *normal_throughput = Some(result.throughput_from(ramp));
                self.record(report, scenario.name(), &result, true);
                report.push(
                    Measurement::info("load_users", f64::from(settings.users), "users")
                        .label("scenario", scenario),
                );
            }
            Scenario::PeakLoad => {
                let rate = if settings.peak_rate > 0.0 {
                    settings.peak_rate
                } else {
                    2.0 * normal_throughput
                        .filter(|throughput| *throughput > 0.0)
                        .unwrap_or_else(|| settings.unloaded_rate(settings.users))
                };
                let result = self
                    .execute(Model::Open(settings.open(rate, seconds)), scenario.name())
                    .await?;
                self.record(report, scenario.name(), &result, true);
                report.push(
                    Measurement::info("load_arrival_rate", rate, "req/s")
                        .label("scenario", scenario),
                );
            }
            Scenario::StressTest => self.stress(report, seconds).await?,
        }
        Ok(())
    }

    async fn custom(
        &self,
        report: &mut ComponentReport,
        label: &str,
        model: ModelChoice,
        options: &LoadOptions,
    ) -> Result<(), BenchError> {
        let settings = &self.settings;
        let model = match model {
            ModelChoice::Closed => {
                let ramp = settings.ramp.min(settings.duration / 3.0);
                Model::Closed(settings.closed(settings.users, settings.duration, ramp))
            }
            ModelChoice::Open => {
                let rate = options
                    .rate
                    .unwrap_or_else(|| 2.0 * settings.unloaded_rate(settings.users));
                report.push(
                    Measurement::info("load_arrival_rate", rate, "req/s").label("scenario", label),
                );
                Model::Open(settings.open(rate, settings.duration))
            }
        };
        let result = self.execute(model, label).await?;
        self.record(report, label, &result, true);
        Ok(())
    }

    async fn stress(&self, report: &mut ComponentReport, seconds: f64) -> Result<(), BenchError> {
        let settings = &self.settings;
        let step = (seconds / 8.0).clamp(0.25_f64.min(seconds), 15.0);
        let steps = ((seconds / step).floor() as u32).max(1);
        let mut users = f64::from(settings.users);
        let mut points = Vec::new();
        let mut breaking = None;
        let mut last = None;
        for index in 0..steps {
            users = (users * STRESS_FACTOR).ceil().min(100_000.0);
            let step_users = users as u32;
            let model = settings.closed(step_users, step, step / 5.0);
            let result = self
                .execute(
                    Model::Closed(model),
                    &format!("stress_test {}/{steps} ({step_users} users)", index + 1),
                )
                .await?;
            let summary = result.corrected_summary();
            let success = result.success_rate();
            points.push((f64::from(step_users), summary.p95, success));
            let broken = summary.p95 > settings.p95_target || success < settings.success_target;
            last = Some((step_users, result));
            if broken {
                breaking = Some(step_users);
                break;
            }
            if step_users >= 100_000 {
                break;
            }
        }
        let Some((last_users, result)) = last else {
            return Ok(());
        };
        self.record(report, Scenario::StressTest.name(), &result, false);
        let sustained = points
            .iter()
            .filter(|(_, p95, success)| {
                *p95 <= settings.p95_target && *success >= settings.success_target
            })
            .map(|(users, _, _)| *users)
            .fold(0.0, f64::max);
        report.push(
            Measurement::info("stress_max_users_sustained", sustained, "users")
                .better(Better::Higher),
        );
        match breaking {
            Some(users) => {
                report.push(
                    Measurement::info("stress_breaking_point_users", f64::from(users), "users")
                        .better(Better::Higher),
                );
                report.push(Measurement::info(
                    "stress_breaking_point_reached",
                    1.0,
                    "bool",
                ));
                report.note(format!(
                    "stress_test: the breaking point is {users} users (corrected p95 {:.3} s, \
                     success {:.4}; targets p95 <= {} s, success >= {}); steps of x{STRESS_FACTOR} \
                     users, {step:.2} s each",
                    points.last().map_or(f64::NAN, |point| point.1),
                    points.last().map_or(f64::NAN, |point| point.2),
                    settings.p95_target,
                    settings.success_target
                ));
            }
            None => {
                report.push(
                    Measurement::info(
                        "stress_breaking_point_users",
                        f64::from(last_users),
                        "users",
                    )
                    .better(Better::Higher),
                );
                report.push(Measurement::info(
                    "stress_breaking_point_reached",
                    0.0,
                    "bool",
                ));
                report.note(format!(
                    "stress_test: breaking point not reached up to {last_users} users \
                     (`stress_breaking_point_users` is the last step's users); steps of \
                     x{STRESS_FACTOR} users, {step:.2} s each, figures labelled \
                     scenario=stress_test are the last step's"
                ));
            }
        }
        report.plots.push(Plot {
            id: "load_stress_steps".to_owned(),
            title: "stress_test: corrected p95 and success rate by users".to_owned(),
            kind: PlotKind::Line,
            x_label: "users".to_owned(),
            y_label: "p95 latency (s)".to_owned(),
            secondary_y_label: Some("success rate".to_owned()),
            series: vec![
                Series::new(
                    "p95 (corrected)",
                    points
                        .iter()
                        .map(|(users, p95, _)| (*users, *p95))
                        .collect(),
                ),
                Series::new(
                    "success rate",
                    points
                        .iter()
                        .map(|(users, _, success)| (*users, *success))
                        .collect(),
                )
                .on_secondary_axis(),
            ],
        });
        Ok(())
    }

    /// The measurements and plots of one run, labelled `scenario = label`; held to the targets
    /// when `targeted`.
    fn record(
        &self,
        report: &mut ComponentReport,
        label: &str,
        result: &LoadResult,
        targeted: bool,
    ) {
        let settings = &self.settings;
        let corrected = result.corrected_summary();
        let raw = result.raw_summary();
        let success = result.success_rate();
        let with = |measurement: Measurement| measurement.label("scenario", label);
        report.push(with(if targeted {
            Measurement::with_target(
                "load_success_rate",
                success,
                "ratio",
                Budget::at_least(settings.success_target),
            )
        } else {
            Measurement::info("load_success_rate", success, "ratio").better(Better::Higher)
        }));
        report.push(with(if targeted {
            Measurement::with_target(
                "load_latency_p95",
                corrected.p95,
                "s",
                Budget::at_most(settings.p95_target),
            )
        } else {
            Measurement::info("load_latency_p95", corrected.p95, "s").better(Better::Lower)
        }));
        for (name, value) in [
            ("load_latency_p50", corrected.p50),
            ("load_latency_p99", corrected.p99),
            ("load_latency_max", corrected.max),
            ("load_latency_raw_p50", raw.p50),
            ("load_latency_raw_p95", raw.p95),
            ("load_latency_raw_p99", raw.p99),
            ("load_lateness_p99", result.lateness_summary().p99),
        ] {
            report.push(with(
                Measurement::info(name, value, "s").better(Better::Lower),
            ));
        }
        report.push(with(
            Measurement::info("load_throughput", result.throughput(), "req/s")
                .better(Better::Higher),
        ));
        for (name, value, better) in [
            ("load_requests", result.requests, Better::Neither),
            ("load_errors", result.errors, Better::Lower),
            ("load_dropped", result.dropped, Better::Lower),
            ("load_late", result.late, Better::Lower),
        ] {
            report.push(with(
                Measurement::info(name, value as f64, "count").better(better),
            ));
        }
        for operation in &result.operations {
            report.push(with(
                Measurement::info("load_operation_errors", operation.errors as f64, "count")
                    .label("operation", &operation.name)
                    .better(Better::Lower),
            ));
            report.push(with(
                Measurement::info(
                    "load_operation_requests",
                    (operation.ok + operation.errors) as f64,
                    "count",
                )
                .label("operation", &operation.name),
            ));
        }
        if let Some(error) = &result.first_error {
            report.note(format!("{label}: first error: {error}"));
        }
        if result.unfinished > 0 {
            report.note(format!(
                "{label}: {} requests did not finish within the drain (counted as errors)",
                result.unfinished
            ));
        }
        let (users_name, users_label) = if result.model == "closed" {
            ("active users", "users")
        } else {
            ("requests in flight (mean)", "in flight")
        };
        let users: Vec<(f64, f64)> = result
            .timeline
            .iter()
            .map(|point| (point.t_s, point.users))
            .collect();
        let p95: Vec<(f64, f64)> = result
            .timeline
            .iter()
            .filter(|point| point.p95_s.is_finite())
            .map(|point| (point.t_s, point.p95_s))
            .collect();
        let throughput: Vec<(f64, f64)> = result
            .timeline
            .iter()
            .map(|point| (point.t_s, point.throughput))
            .collect();
        let id = label.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
        report.plots.push(Plot {
            id: format!("load_latency_{id}"),
            title: format!("{label}: load latency (corrected p95) over time against the user ramp"),
            kind: PlotKind::Line,
            x_label: "time (s)".to_owned(),
            y_label: "p95 latency (s)".to_owned(),
            secondary_y_label: Some(users_label.to_owned()),
            series: vec![
                Series::new("p95 (corrected)", p95),
                Series::new(users_name, users.clone()).on_secondary_axis(),
            ],
        });
        let mut series = vec![
            Series::new("throughput", throughput),
            Series::new(users_name, users).on_secondary_axis(),
        ];
        if result.model == "open" {
            series.push(Series::new(
                "arrival rate (scheduled)",
                result
                    .timeline
                    .iter()
                    .map(|point| (point.t_s, point.rate))
                    .collect(),
            ));
        }
        report.plots.push(Plot {
            id: format!("load_throughput_{id}"),
            title: format!("{label}: load throughput over time against the user ramp"),
            kind: PlotKind::Line,
            x_label: "time (s)".to_owned(),
            y_label: "throughput (req/s)".to_owned(),
            secondary_y_label: Some(users_label.to_owned()),
            series,
        });
    }
}
