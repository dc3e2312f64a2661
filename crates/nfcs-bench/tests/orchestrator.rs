//! The orchestrator: a module of known duration is reported at that duration, the schedule
//! holds its frequency, overruns and missed ticks are counted, failing modules never stop the
//! loop, the observer sees every tick, `run_until` stops when told, and the search finds the
//! frequency a module's duration allows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use nfcs_bench::orchestrator::{
    Module, ModuleError, Orchestrator, OrchestratorError, Outcome, Tick, TickRecord, module_fn,
};

/// A module that takes `duration` on a blocking thread (a precise sleep, not tokio's
/// millisecond timer).
fn sleeping(name: &str, duration: Duration) -> Arc<dyn Module> {
    module_fn(name, move |_tick| async move {
        tokio::task::spawn_blocking(move || std::thread::sleep(duration))
            .await
            .map_err(ModuleError::new)
    })
}

/// The timing tests take turns: run together on a small machine, they would measure each other
/// (the search and the component spin the ticker at high frequencies).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn quick(name: &str) -> Arc<dyn Module> {
    module_fn(name, |_tick| async { Ok(()) })
}

fn within(measured: f64, expected: f64, relative: f64) -> bool {
    (measured - expected).abs() <= expected * relative
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_of_known_duration_is_reported_at_that_duration() {
    let _serial = SERIAL.lock().await;
    // The module sleeps 100 ms and times itself (from the first poll of its future to its
    // end): on a machine busier than its cores the sleep itself ends late, and what the module
    // took is the time it must be reported at.
    let known = Duration::from_millis(100);
    let own_times = Arc::new(Mutex::new(Vec::new()));
    let own = Arc::clone(&own_times);
    let module = module_fn("known", move |tick: Tick| {
        let own = Arc::clone(&own);
        async move {
            let started = std::time::Instant::now();
            tokio::task::spawn_blocking(move || std::thread::sleep(known))
                .await
                .map_err(ModuleError::new)?;
            own.lock().unwrap().push((tick.index, started.elapsed()));
            Ok(())
        }
    });
    let reported = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&reported);
    let mut orchestrator = Orchestrator::new(5.0)
        .unwrap()
        .module(module)
        .module(quick("instant"))
        .observer(move |tick: &TickRecord| {
            sink.lock()
                .unwrap()
                .push((tick.index, tick.modules[0].response));
        });
    let run = orchestrator.run_for(Duration::from_secs(3)).await.unwrap();
    assert_eq!(run.ticks_intended, 15);
    let module = run.module("known").unwrap();
    assert_eq!(module.response.count, run.ticks_completed);
    let own_times = own_times.lock().unwrap().clone();
    let reported = reported.lock().unwrap().clone();
    assert_eq!(own_times.len(), reported.len());
    let own_p50 = nfcs_bench::stats::LatencySummary::of_durations(
        &own_times.iter().map(|&(_, own)| own).collect::<Vec<_>>(),
    )
    .p50;
    for ((own_index, own), (index, response)) in own_times.iter().zip(&reported) {
        assert_eq!(own_index, index);
        // The response runs from dispatch (before the first poll) to the answer (after the
        // module's end): never shorter than what the module measured.
        assert!(response >= own, "tick {index}: {response:?} < {own:?}");
        assert!(*own >= known);
    }
    assert!(
        module.response.p50 >= 0.100 && within(module.response.p50, own_p50, 0.05),
        "p50 response {} s, the module's own p50 {own_p50} s (100 ms asked)",
        module.response.p50
    );
    // Sleeps end late only on a loaded machine, and not by half.
    assert!(module.response.p50 < 0.150, "{}", module.response.p50);
    // The latency is the slower module's time plus the ticker's lateness.
    assert!(run.latency.p50 >= module.response.p50 - 1e-3);
    assert!(run.latency.p50 < 0.150, "p50 latency {} s", run.latency.p50);
    assert!(run.module("instant").unwrap().response.p50 < 0.050);
    assert_eq!(run.overruns, 0);
    assert_eq!(module.errors + module.panics + module.deadline_misses, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_achieved_frequency_is_the_requested_one() {
    let _serial = SERIAL.lock().await;
    let mut orchestrator = Orchestrator::new(20.0)
        .unwrap()
        .module(quick("a"))
        .module(quick("b"));
    let run = orchestrator.run_for(Duration::from_secs(1)).await.unwrap();
    // Ticks at 0, 50, ..., 950 ms: exactly 20 intended, by construction.
    assert_eq!(run.ticks_intended, 20);
    assert_eq!(run.ticks_dispatched + run.missed_ticks, 20);
    assert!(
        within(run.achieved_hz, 20.0, 0.10),
        "achieved {} Hz",
        run.achieved_hz
    );
    assert!(
        (run.elapsed_s - 1.0).abs() < 1e-3,
        "elapsed {}",
        run.elapsed_s
    );
    // A late ticker skips ticks rather than dispatching them more than a period late.
    assert!(run.jitter.max < run.period_s);
    // On schedule (the precision itself is measured by the coordination_jitter example: a
    // loaded machine delays the ticker thread by milliseconds).
    assert!(run.jitter.p50 < 0.0125, "jitter p50 {} s", run.jitter.p50);
    assert!(run.sustained());
    // Ticks are on the schedule: tick k at k x 50 ms.
    for tick in &run.ticks {
        assert!((tick.t_s - tick.index as f64 * 0.05).abs() < 1e-6);
        assert!(tick.latency_s >= tick.lateness_s);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_slower_than_the_period_overruns_and_misses_ticks() {
    let _serial = SERIAL.lock().await;
    let skipped = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&skipped);
    let mut orchestrator = Orchestrator::new(10.0)
        .unwrap()
        .module(sleeping("slow", Duration::from_millis(150)))
        .observer(move |tick: &TickRecord| {
            seen.lock()
                .unwrap()
                .push((tick.index, tick.skipped_before, tick.overrun));
        });
    let run = orchestrator.run_for(Duration::from_secs(1)).await.unwrap();
    assert_eq!(run.ticks_intended, 10);
    assert_eq!(run.ticks_dispatched + run.missed_ticks, 10);
    // Every completed tick took 150 ms > 100 ms, so the next intended tick was skipped.
    assert!(run.ticks_completed >= 3, "{run:?}");
    assert_eq!(run.overruns, run.ticks_completed);
    assert!(run.missed_ticks >= run.ticks_completed - 1, "{run:?}");
    assert!(run.achieved_hz < 6.0, "achieved {} Hz", run.achieved_hz);
    assert!(!run.sustained());
    let slow = run.module("slow").unwrap();
    assert_eq!(slow.deadline_misses, run.ticks_completed);
    assert!(within(slow.deadline_s, 0.1, 1e-9));
    let skipped = skipped.lock().unwrap();
    assert_eq!(skipped.len() as u64, run.ticks_completed);
    assert!(skipped.iter().all(|&(_, _, overrun)| overrun));
    // After the first tick, each dispatched tick follows at least one skipped one.
    assert!(skipped.iter().skip(1).all(|&(_, before, _)| before >= 1));
    let total_skipped: u64 = skipped.iter().map(|&(_, before, _)| before).sum();
    assert!(total_skipped <= run.missed_ticks);
}

/// Panics in `run` itself (not in its future) on even ticks.
struct PanicsInRun;

impl Module for PanicsInRun {
    fn name(&self) -> &str {
        "panics_in_run"
    }

    fn run(&self, tick: Tick) -> BoxFuture<'static, Result<(), ModuleError>> {
        assert!(
            tick.index % 2 == 1,
            "injected panic in run on tick {}",
            tick.index
        );
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_and_panicking_modules_are_counted_without_stopping_the_loop() {
    let _serial = SERIAL.lock().await;
    // The first panic of a process with RUST_BACKTRACE set loads the debug information to
    // print its backtrace (hundreds of milliseconds, seen to cost this 20 Hz run six ticks):
    // one panic before the run pays that, so the injected ones cost what a panic costs.
    let _ = std::panic::catch_unwind(|| panic!("warming up the panic machinery"));
    let odd_ticks = Arc::new(AtomicU64::new(0));
    let even_ticks = Arc::new(AtomicU64::new(0));
    let (odd, even) = (Arc::clone(&odd_ticks), Arc::clone(&even_ticks));
    let mut orchestrator = Orchestrator::new(20.0)
        .unwrap()
        .module(quick("fine"))
        .module(module_fn("errors", |tick| async move {
            Err(ModuleError::new(format!(
                "injected error on tick {}",
                tick.index
            )))
        }))
        .module(module_fn("panics", |tick| async move {
            assert!(tick.index % 2 == 0, "injected panic on tick {}", tick.index);
            Ok(())
        }))
        .module(Arc::new(PanicsInRun))
        .observer(move |tick: &TickRecord| {
            let counter = if tick.index % 2 == 1 { &odd } else { &even };
            counter.fetch_add(1, Ordering::Relaxed);
            assert_eq!(tick.modules[0].outcome, Outcome::Ok);
            assert!(matches!(tick.modules[1].outcome, Outcome::Error(_)));
            let expected_panic = tick.index % 2 == 1;
            assert_eq!(tick.modules[2].outcome == Outcome::Panicked, expected_panic);
            assert_eq!(
                tick.modules[3].outcome == Outcome::Panicked,
                !expected_panic
            );
        });
    let run = orchestrator.run_for(Duration::from_secs(1)).await.unwrap();
    assert_eq!(run.ticks_intended, 20);
    assert!(run.ticks_completed >= 15, "{run:?}");
    let (odd, even) = (
        odd_ticks.load(Ordering::Relaxed),
        even_ticks.load(Ordering::Relaxed),
    );
    assert_eq!(odd + even, run.ticks_completed);
    let fine = run.module("fine").unwrap();
    assert_eq!((fine.errors, fine.panics), (0, 0));
    assert_eq!(fine.response.count, run.ticks_completed);
    let errors = run.module("errors").unwrap();
    assert_eq!((errors.errors, errors.panics), (run.ticks_completed, 0));
    assert!(
        errors
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("injected error on tick")
    );
    let panics = run.module("panics").unwrap();
    assert_eq!((panics.errors, panics.panics), (0, odd));
    let panics_in_run = run.module("panics_in_run").unwrap();
    assert_eq!((panics_in_run.errors, panics_in_run.panics), (0, even));
}

#[test]
fn an_invalid_frequency_is_a_typed_error() {
    for frequency in [
        f64::NAN,
        0.0,
        -1.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e-300,
    ] {
        assert!(
            matches!(
                Orchestrator::new(frequency),
                Err(OrchestratorError::InvalidFrequency { .. })
            ),
            "{frequency}"
        );
    }
    assert!(matches!(
        Orchestrator::new(10.0).unwrap().at_frequency(f64::NAN),
        Err(OrchestratorError::InvalidFrequency { .. })
    ));
    assert!(matches!(
        Orchestrator::new(10.0)
            .unwrap()
            .module_with_deadline(quick("m"), Duration::ZERO),
        Err(OrchestratorError::InvalidSetting { .. })
    ));
    assert_eq!(
        Orchestrator::new(4.0).unwrap().period(),
        Duration::from_millis(250)
    );
}

#[test]
fn running_outside_a_runtime_is_a_typed_error() {
    let mut orchestrator = Orchestrator::new(10.0).unwrap();
    let run = futures_util::FutureExt::now_or_never(orchestrator.run_for(Duration::from_secs(1)));
    assert!(matches!(run, Some(Err(OrchestratorError::NoRuntime(_)))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_observer_sees_every_tick() {
    let _serial = SERIAL.lock().await;
    let shared = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&shared);
    let mut orchestrator = Orchestrator::new(25.0)
        .unwrap()
        .module(quick("first"))
        .module(sleeping("second", Duration::from_millis(2)))
        .observer(move |tick: &TickRecord| sink.lock().unwrap().push(tick.clone()));
    let run = orchestrator
        .run_for(Duration::from_millis(800))
        .await
        .unwrap();
    let records: Vec<TickRecord> = shared.lock().unwrap().clone();
    assert_eq!(records.len() as u64, run.ticks_completed);
    assert_eq!(run.ticks.len(), records.len());
    for (record, point) in records.iter().zip(&run.ticks) {
        assert_eq!(record.index, point.index);
        assert_eq!(record.modules.len(), 2);
        assert_eq!(record.modules[0].name, "first");
        assert_eq!(record.modules[1].name, "second");
        assert!(record.latency >= record.lateness);
        assert!(record.modules[1].response >= Duration::from_millis(2));
        assert!(record.latency >= record.lateness + record.modules[1].response);
        assert_eq!(
            record.intended,
            Duration::from_millis(40) * u32::try_from(record.index).unwrap()
        );
    }
    // The indices increase and, with skipped ticks, account for every intended tick.
    assert!(records.windows(2).all(|w| w[0].index < w[1].index));
    let skipped: u64 = records.iter().map(|record| record.skipped_before).sum();
    assert!(skipped <= run.missed_ticks);
    // The observer comes back with the orchestrator: a second run calls it again.
    let again = orchestrator
        .run_for(Duration::from_millis(200))
        .await
        .unwrap();
    assert!(again.ticks_completed > 0);
    let observed = shared.lock().unwrap().len() as u64;
    assert_eq!(observed, run.ticks_completed + again.ticks_completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_until_stops_when_its_future_resolves() {
    let _serial = SERIAL.lock().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let stop = Arc::new(Mutex::new(Some(stop)));
    let mut orchestrator =
        Orchestrator::new(20.0)
            .unwrap()
            .module(module_fn("stopper", move |tick| {
                let stop = Arc::clone(&stop);
                async move {
                    if tick.index == 5
                        && let Some(stop) = stop.lock().unwrap().take()
                    {
                        let _ = stop.send(());
                    }
                    Ok(())
                }
            }));
    let run = tokio::time::timeout(
        Duration::from_secs(20),
        orchestrator.run_until(async {
            let _ = stopped.await;
        }),
    )
    .await
    .expect("run_until did not stop")
    .unwrap();
    // Ticks 0 to 5 ran; the stop came during tick 5, 50 ms before tick 6 was due.
    assert!(run.ticks_completed >= 6, "{run:?}");
    assert!(run.ticks_intended <= 8, "{run:?}");
    assert!(run.elapsed_s < 0.45, "elapsed {}", run.elapsed_s);
    assert_eq!(run.ticks_abandoned, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_finds_the_frequency_a_module_allows() {
    let _serial = SERIAL.lock().await;
    // A module of 20 ms sustains 10 Hz (100 ms periods, with room for a loaded machine) and
    // can never sustain 50 Hz or more (its latency is at least the period): the search doubles
    // from 10 Hz until a trial fails (80 Hz at the latest) and bisects in between.
    let orchestrator = Orchestrator::new(10.0)
        .unwrap()
        .module(sleeping("twenty_ms", Duration::from_millis(20)));
    let search = orchestrator
        .find_max_frequency(Duration::from_secs(4))
        .await
        .unwrap();
    assert!(
        (10.0..50.0).contains(&search.max_sustained_hz),
        "{search:?}"
    );
    let failed = search.lowest_failed_hz.unwrap();
    assert!(failed > search.max_sustained_hz);
    assert!(failed <= 80.0, "{search:?}");
    assert!(search.trials.len() >= 3, "{search:?}");
    assert!(search.trials.iter().any(|trial| trial.sustained));
    assert!(search.trials.iter().any(|trial| !trial.sustained));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordination_component_reports_every_figure() {
    let _serial = SERIAL.lock().await;
    use nfcs_bench::components::coordination;
    use nfcs_bench::progress::Progress;
    use nfcs_bench::report::{ComponentStatus, PlotKind};
    use nfcs_bench::{BenchmarkConfig, Profile, RunContext, System, Verdict};

    let work = tempfile::tempdir().unwrap();
    let mut config = BenchmarkConfig::default();
    config.coordination.test_duration = 1.0;
    config.coordination.search_duration = 1.0;
    config.coordination.grid_size = 32;
    config.cache.redis.enabled = false;
    config.cache.semantic.enabled = false;
    let system = Arc::new(System::build(&config.cache, work.path()).await.unwrap());
    let context = RunContext {
        config,
        profile: Profile::Quick,
        progress: Progress::hidden(),
        system,
    };
    let report = coordination::run(&context).await.unwrap();
    assert_eq!(report.status, ComponentStatus::Ran);
    let frequency = report.measurement("coordination_frequency_hz").unwrap();
    assert_eq!(frequency.unit, "Hz");
    assert!(frequency.value > 0.0 && frequency.target.is_some());
    let p95 = report.measurement("coordination_latency_p95").unwrap();
    assert!(p95.target.is_some() && p95.verdict != Verdict::Info);
    for name in [
        "coordination_latency_p50",
        "coordination_latency_p99",
        "tick_jitter_p50",
        "tick_jitter_p99",
        "tick_jitter_max",
        "overruns",
        "missed_ticks",
        "max_sustained_hz",
    ] {
        assert!(report.measurement(name).is_some(), "{name} missing");
    }
    for module in ["mathematical_core", "constitutional", "cache"] {
        for name in [
            "module_response_time_p50",
            "module_response_time_p95",
            "module_errors",
        ] {
            assert!(
                report.measurement_with(name, "module", module).is_some(),
                "{name}{{module={module}}} missing"
            );
        }
    }
    assert_eq!(
        report
            .measurement_with("module_errors", "module", "mathematical_core")
            .unwrap()
            .value,
        0.0
    );
    // Without the semantic cache the esc module is left out, and the report says why.
    assert!(
        report
            .measurement_with("module_response_time_p50", "module", "esc")
            .is_none()
    );
    assert!(report.notes.iter().any(|note| note.contains("esc module")));
    assert!(report.measurement("max_sustained_hz").unwrap().value > 0.0);
    let plot = report
        .plots
        .iter()
        .find(|plot| plot.id == "coordination_latency_jitter")
        .unwrap();
    assert_eq!(plot.kind, PlotKind::Line);
    assert_eq!(plot.series.len(), 2);
    let ticks = report.measurement("coordination_ticks").unwrap().value;
    assert_eq!(plot.series[0].points.len() as f64, ticks);
}
