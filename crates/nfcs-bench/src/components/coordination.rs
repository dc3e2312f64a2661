//! The coordination component: the NFCS cycle on the [`Orchestrator`] with the default
//! modules, at the configured frequency, then the search for the highest frequency it
//! sustains.
//!
//! The default modules ([`default_modules`]), dispatched concurrently on every tick:
//!
//! - `mathematical_core`: one step of a CGL solver on a `coordination.grid_size` grid (the
//!   solver behind a mutex, stepped on a blocking thread), recorded through the recording
//!   API (`record_computation("cgl_step", ..)`, sampled);
//! - `constitutional`: a constitutional check of the tick's request
//!   ([`System::policy_check`]);
//! - `esc`: a semantic lookup of a paraphrase at threshold 0.8 ([`System::esc_lookup`]), only
//!   when the semantic cache runs (its sentences are stored first, [`System::esc_seed`]);
//! - `cache`: [`CACHE_WRITES`] writes of the cycle's state through the cache manager
//!   ([`System::cache_set`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nfcs_math_kernels::cgl::{CglSolver, InitialCondition};

use crate::components::{Component, RunContext};
use crate::error::BenchError;
use crate::orchestrator::{
    CoordinationRun, FrequencySearch, Module, ModuleError, Orchestrator, module_fn,
};
use crate::progress::Progress;
use crate::report::{Better, ComponentReport, Measurement, Plot, PlotKind, Series, Target};
use crate::system::{System, cgl_params};

/// The cache writes of the `cache` module per tick.
pub const CACHE_WRITES: usize = 4;

/// The bytes of each of the `cache` module's writes.
pub const CACHE_VALUE_BYTES: usize = 256;

/// The similarity threshold of the `esc` module's lookups.
pub const ESC_THRESHOLD: f32 = 0.8;

/// The default modules on `system`, with a note for each module left out (and why).
///
/// # Errors
/// [`BenchError::Kernel`] when the solver refuses `grid_size`; [`BenchError::Component`] when
/// the semantic cache runs but its sentences cannot be stored.
pub async fn default_modules(
    system: &Arc<System>,
    grid_size: usize,
) -> Result<(Vec<Arc<dyn Module>>, Vec<String>), BenchError> {
    let mut notes = Vec::new();
    let mut modules: Vec<Arc<dyn Module>> = Vec::new();

    let params = cgl_params(grid_size);
    params.validate()?;
    let solver = Arc::new(Mutex::new(CglSolver::new(
        params,
        InitialCondition::Noise {
            amplitude: 0.01,
            seed: 42,
        },
    )?));
    let stepping = Arc::clone(system);
    modules.push(module_fn("mathematical_core", move |_tick| {
        let solver = Arc::clone(&solver);
        let system = Arc::clone(&stepping);
        async move {
            let stepped = tokio::task::spawn_blocking(move || -> Result<(), ModuleError> {
                let mut solver = solver
                    .lock()
                    .map_err(|_| ModuleError::new("the CGL solver's lock is poisoned"))?;
                let started = Instant::now();
                solver.step()?;
                let elapsed = started.elapsed();
                system.note_cgl_step(elapsed);
                system
                    .recorder()
                    .record_computation("cgl_step", elapsed, grid_size);
                Ok(())
            })
            .await;
            match stepped {
                Ok(result) => result,
                // A panic of the step is the module's panic.
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                Err(error) => Err(ModuleError::new(error)),
            }
        }
    }));

    let constitutional = Arc::clone(system);
    modules.push(module_fn("constitutional", move |tick| {
        let system = Arc::clone(&constitutional);
        async move {
            system.policy_check(tick.index).await?;
            Ok(())
        }
    }));

    match system.semantic_unavailable() {
        None => {
            system.esc_seed().await?;
            let esc = Arc::clone(system);
            modules.push(module_fn("esc", move |tick| {
                let system = Arc::clone(&esc);
                async move {
                    system.esc_lookup(tick.index, ESC_THRESHOLD).await?;
                    Ok(())
                }
            }));
        }
        Some(reason) => notes.push(format!(
            "The esc module (a semantic lookup per tick) is left out: the semantic cache does \
             not run here ({reason})."
        )),
    }

    let cache = Arc::clone(system);
    modules.push(module_fn("cache", move |tick| {
        let system = Arc::clone(&cache);
        async move {
            let mut value = vec![0u8; CACHE_VALUE_BYTES];
            value[..8].copy_from_slice(&tick.index.to_le_bytes());
            for write in 0..CACHE_WRITES {
                system
                    .cache_set(&format!("coordination_state_{write}"), &value)
                    .await?;
            }
            Ok(())
        }
    }));
    Ok((modules, notes))
}

/// Runs the coordination component.
///
/// # Errors
/// [`BenchError::Config`] for an invalid `coordination.frequency_hz`; [`BenchError`] when the
/// system under test fails to build a module; [`BenchError::Component`] when the orchestrator
/// cannot run.
pub async fn run(context: &RunContext) -> Result<ComponentReport, BenchError> {
    let started = Instant::now();
    let config = &context.config.coordination;
    let targets = &context.config.targets;
    let mut report = ComponentReport::new(Component::Coordination);

    let mut orchestrator = Orchestrator::new(config.frequency_hz)
        .map_err(|error| BenchError::config("coordination.frequency_hz", error.to_string()))?;
    let test_duration = duration_of("coordination.test_duration", config.test_duration)?;
    let search_duration = duration_of("coordination.search_duration", config.search_duration)?;
    let (modules, notes) = default_modules(&context.system, config.grid_size).await?;
    for module in modules {
        orchestrator = orchestrator.module(module);
    }
    for note in notes {
        report.note(note);
    }

    let bar = context.progress.timed(
        &format!("coordination @ {} Hz", config.frequency_hz),
        test_duration,
    );
    let observed_bar = bar.clone();
    let recorder = Arc::clone(context.system.recorder());
    let mut completed = 0u64;
    let mut orchestrator = orchestrator.observer(move |tick| {
        Progress::set_elapsed(&observed_bar, tick.intended);
        // The spec's coordination metrics: this tick's latency, and the frequency achieved
        // so far (completed ticks over the time since the start).
        completed += 1;
        let elapsed = (tick.intended + tick.latency).as_secs_f64();
        let frequency = if elapsed > 0.0 {
            completed as f64 / elapsed
        } else {
            0.0
        };
        recorder.record_coordination(tick.latency, frequency);
        for answer in &tick.modules {
            recorder.record_module_response(&answer.name, answer.response);
        }
    });
    let run = orchestrator
        .run_for(test_duration)
        .await
        .map_err(|error| BenchError::component(Component::Coordination, error))?;
    bar.finish_and_clear();

    let search = if search_duration.is_zero() {
        report.note("The search for the highest sustained frequency is off (search_duration = 0).");
        None
    } else {
        let bar = context
            .progress
            .timed("coordination: max frequency", search_duration);
        let ticking = bar.clone();
        let progress = tokio::spawn(async move {
            let start = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Progress::set_elapsed(&ticking, start.elapsed());
            }
        });
        let search = orchestrator.find_max_frequency(search_duration).await;
        progress.abort();
        bar.finish_and_clear();
        Some(search.map_err(|error| BenchError::component(Component::Coordination, error))?)
    };

    push_measurements(
        &mut report,
        &run,
        search.as_ref(),
        targets.coordination_hz,
        targets.coordination_p95_ms / 1000.0,
    );
    report.plots.push(timeline_plot(&run));
    if let Some(search) = &search {
        report.plots.push(search_plot(search));
    }
    push_notes(&mut report, &run, search.as_ref());
    report.duration_s = started.elapsed().as_secs_f64();
    Ok(report)
}

/// A configured number of seconds as a duration.
fn duration_of(field: &str, seconds: f64) -> Result<Duration, BenchError> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        BenchError::config(
            field,
            format!("{seconds} is not a number of seconds of at least 0"),
        )
    })
}

/// The figures of the run and the search.
fn push_measurements(
    report: &mut ComponentReport,
    run: &CoordinationRun,
    search: Option<&FrequencySearch>,
    target_hz: f64,
    target_p95_s: f64,
) {
    report.push(Measurement::with_target(
        "coordination_frequency_hz",
        run.achieved_hz,
        "Hz",
        Target::at_least(target_hz),
    ));
    report.push(
        Measurement::info("coordination_latency_p50", run.latency.p50, "s").better(Better::Lower),
    );
    report.push(Measurement::with_target(
        "coordination_latency_p95",
        run.latency.p95,
        "s",
        Target::at_most(target_p95_s),
    ));
    report.push(
        Measurement::info("coordination_latency_p99", run.latency.p99, "s").better(Better::Lower),
    );
    report.push(Measurement::info("tick_jitter_p50", run.jitter.p50, "s").better(Better::Lower));
    report.push(Measurement::info("tick_jitter_p99", run.jitter.p99, "s").better(Better::Lower));
    report.push(Measurement::info("tick_jitter_max", run.jitter.max, "s").better(Better::Lower));
    for module in &run.modules {
        report.push(
            Measurement::info("module_response_time_p50", module.response.p50, "s")
                .label("module", &module.name)
                .better(Better::Lower),
        );
        report.push(
            Measurement::info("module_response_time_p95", module.response.p95, "s")
                .label("module", &module.name)
                .better(Better::Lower),
        );
    }
    report.push(Measurement::info(
        "coordination_ticks",
        run.ticks_completed as f64,
        "count",
    ));
    report.push(Measurement::info("overruns", run.overruns as f64, "count").better(Better::Lower));
    report.push(
        Measurement::info("missed_ticks", run.missed_ticks as f64, "count").better(Better::Lower),
    );
    for module in &run.modules {
        report.push(
            Measurement::info(
                "module_errors",
                (module.errors + module.panics) as f64,
                "count",
            )
            .label("module", &module.name)
            .better(Better::Lower),
        );
    }
    if let Some(search) = search {
        report.push(
            Measurement::info("max_sustained_hz", search.max_sustained_hz, "Hz")
                .better(Better::Higher),
        );
    }
}

/// Latency and jitter of every tick over the run.
fn timeline_plot(run: &CoordinationRun) -> Plot {
    Plot {
        id: "coordination_latency_jitter".to_owned(),
        title: "coordination latency and jitter over time".to_owned(),
        kind: PlotKind::Line,
        x_label: "time since start (s)".to_owned(),
        y_label: "seconds after the intended tick (s)".to_owned(),
        secondary_y_label: None,
        series: vec![
            Series::new(
                "coordination latency (last answer - intended)",
                run.ticks
                    .iter()
                    .map(|tick| (tick.t_s, tick.latency_s))
                    .collect(),
            ),
            Series::new(
                "tick jitter (dispatch - intended)",
                run.ticks
                    .iter()
                    .map(|tick| (tick.t_s, tick.lateness_s))
                    .collect(),
            ),
        ],
    }
}

/// Achieved frequency and p95 latency per trial of the search.
fn search_plot(search: &FrequencySearch) -> Plot {
    let mut trials = search.trials.clone();
    trials.sort_by(|a, b| a.frequency_hz.total_cmp(&b.frequency_hz));
    Plot {
        id: "coordination_frequency_search".to_owned(),
        title: "coordination: the search for the highest sustained frequency".to_owned(),
        kind: PlotKind::Line,
        x_label: "requested frequency (Hz)".to_owned(),
        y_label: "achieved frequency (Hz)".to_owned(),
        secondary_y_label: Some("p95 coordination latency (s)".to_owned()),
        series: vec![
            Series::new(
                "achieved frequency",
                trials
                    .iter()
                    .map(|trial| (trial.frequency_hz, trial.achieved_hz))
                    .collect(),
            ),
            Series::new(
                "p95 coordination latency",
                trials
                    .iter()
                    .map(|trial| (trial.frequency_hz, trial.latency_p95_s))
                    .collect(),
            )
            .on_secondary_axis(),
        ],
    }
}

/// How each figure is measured.
fn push_notes(
    report: &mut ComponentReport,
    run: &CoordinationRun,
    search: Option<&FrequencySearch>,
) {
    let modules: Vec<&str> = run.modules.iter().map(|m| m.name.as_str()).collect();
    report.note(format!(
        "The orchestrator ran the NFCS cycle at {} Hz for {:.1} s over the modules {} \
         (dispatched concurrently, each tick's modules as tokio tasks); tick k is intended at \
         start + k x period and every figure is measured from the intended tick.",
        run.frequency_hz,
        run.elapsed_s,
        modules.join(", ")
    ));
    report.note(
        "tick_jitter = dispatch - intended tick (the ticker is a dedicated thread: a timed wait \
         until 300 us before the tick, then spinning until it; goal p99 under 1 ms); \
         coordination_latency = last module's answer - intended tick; \
         module_response_time = the module's answer - dispatch.",
    );
    report.note(format!(
        "coordination_frequency_hz = ticks completed ({}) / elapsed ({:.2} s). overruns = \
         completed ticks whose latency exceeded the period ({:.1} ms); missed_ticks = intended \
         ticks not dispatched because the previous tick was still running (or the ticker woke \
         more than a period late): the loop never queues ticks to catch up. module_errors \
         counts errors and panics; neither stops the loop.",
        run.ticks_completed,
        run.elapsed_s,
        run.period_s * 1e3
    ));
    if run.ticks_abandoned > 0 {
        report.note(format!(
            "{} tick(s) still unanswered at the end of the run were abandoned (not in the \
             latencies).",
            run.ticks_abandoned
        ));
    }
    for module in &run.modules {
        if let Some(error) = &module.last_error {
            report.note(format!(
                "The {} module failed {} time(s); its last error: {error}",
                module.name, module.errors
            ));
        }
    }
    if let Some(search) = search {
        let tried: Vec<String> = search
            .trials
            .iter()
            .map(|trial| {
                format!(
                    "{:.0} Hz {}",
                    trial.frequency_hz,
                    if trial.sustained { "yes" } else { "no" }
                )
            })
            .collect();
        report.note(format!(
            "max_sustained_hz: the highest frequency a short run sustained (p95 coordination \
             latency under the period and achieved frequency at least 90 % of the requested), \
             found by doubling from the configured frequency then bisecting; trials: {}.",
            tried.join(", ")
        ));
    }
}
