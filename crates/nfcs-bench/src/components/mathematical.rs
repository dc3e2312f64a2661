//! The mathematical component: CGL steps per second (the spec's FPS) per grid size with the
//! step-time histogram, Kuramoto time to synchrony per oscillator count over many seeded
//! runs, the solvers' memory, and the spec's `solve_cgl_optimized` through the cache.
//!
//! - **CGL**: one [`CglSolver`] per grid size, started from seeded noise in the
//!   Benjamin-Feir unstable regime of [`crate::system::cgl_params`], stepped one step at a
//!   time for `cgl_solver.test_duration`; every step is timed. FPS = steps / elapsed; its
//!   noise is the spread of the FPS of ten equal slices of the phase.
//! - **Kuramoto**: networks of `N` oscillators with Gaussian natural frequencies (mean 0,
//!   standard deviation 0.5, so the critical coupling is about 0.8) under mean-field coupling
//!   K = 4 from uniformly random phases (dt 0.01), each with its own seed, run until the order
//!   parameter reaches `sync_threshold` or the simulated time `max_simulated_time`; repeated
//!   for `kuramoto.test_duration`. The spec's sync time is the compute (wall-clock) time; the
//!   simulated time is reported beside it. The target applies to the p50.
//! - **Memory**: the allocator's peak during a solver's construction and first steps (feature
//!   `jemalloc`; [`crate::alloc`]).
//! - **solve_cgl_optimized**: the memoized solve ([`System::solve_cgl_optimized`]) of each
//!   grid size, cold (a parameter seed never used before) against cached hits.
//!
//! [`System::solve_cgl_optimized`]: crate::system::System::solve_cgl_optimized

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nfcs_math_kernels::cgl::{CglSolver, InitialCondition};
use nfcs_math_kernels::kuramoto::{Coupling, Kuramoto, SyncOutcome, gaussian, uniform_phases};

use crate::components::{Component, RunContext};
use crate::error::BenchError;
use crate::progress::Progress;
use crate::recording::PerformanceRecorder;
use crate::report::{Better, ComponentReport, Measurement, Plot, PlotKind, Series, Target};
use crate::stats::{
    LatencySummary, histogram_points, latency_histogram, median_and_spread, record,
};
use crate::system::cgl_params;

/// The mean-field coupling of the Kuramoto runs.
pub const KURAMOTO_COUPLING: f64 = 4.0;
/// The standard deviation of the natural frequencies.
pub const KURAMOTO_FREQUENCY_SPREAD: f64 = 0.5;
/// The time step of the Kuramoto runs.
pub const KURAMOTO_DT: f64 = 0.01;
/// Cached hits timed per grid size in the `solve_cgl_optimized` phase.
const SOLVE_HITS: usize = 200;

/// The CGL figures of one grid size.
#[derive(Debug, Clone)]
pub struct CglFigures {
    /// Points per side.
    pub grid_size: usize,
    /// Steps taken.
    pub steps: u64,
    /// Steps per second.
    pub fps: f64,
    /// Relative spread of the FPS over ten slices of the phase.
    pub noise: f64,
    /// Step times.
    pub step_time: LatencySummary,
    /// Step times in seconds, for the histogram.
    pub samples: Vec<f64>,
}

/// Steps a CGL solver of `grid_size` for `duration`, timing each step.
///
/// # Errors
/// [`BenchError::Kernel`] when the solver refuses the grid size.
pub fn cgl_fps(grid_size: usize, duration: Duration) -> Result<CglFigures, BenchError> {
    cgl_fps_recorded(grid_size, duration, None)
}

/// [`cgl_fps`], publishing every step through the recording API (sampled).
///
/// # Errors
/// As [`cgl_fps`].
pub fn cgl_fps_recorded(
    grid_size: usize,
    duration: Duration,
    recorder: Option<&PerformanceRecorder>,
) -> Result<CglFigures, BenchError> {
    let mut solver = CglSolver::new(
        cgl_params(grid_size),
        InitialCondition::Noise {
            amplitude: 0.01,
            seed: 7,
        },
    )?;
    // One warm-up step: the first touches every buffer.
    solver.step()?;
    let mut histogram = latency_histogram();
    let mut samples = Vec::new();
    let mut slice_steps = [0u64; 10];
    let started = Instant::now();
    loop {
        let step_started = Instant::now();
        solver.step()?;
        let step_time = step_started.elapsed();
        record(&mut histogram, step_time);
        if let Some(recorder) = recorder {
            recorder.record_computation("cgl_step", step_time, grid_size);
        }
        if samples.len() < 100_000 {
            samples.push(step_time.as_secs_f64());
        }
        let elapsed = started.elapsed();
        let slice = ((elapsed.as_secs_f64() / duration.as_secs_f64()) * 10.0) as usize;
        slice_steps[slice.min(9)] += 1;
        if elapsed >= duration {
            break;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let steps = histogram.len();
    let slice_length = duration.as_secs_f64() / 10.0;
    let slice_fps: Vec<f64> = slice_steps
        .iter()
        .map(|steps| *steps as f64 / slice_length)
        .collect();
    Ok(CglFigures {
        grid_size,
        steps,
        fps: steps as f64 / elapsed,
        noise: median_and_spread(&slice_fps).map_or(0.0, |(_, spread)| spread),
        step_time: LatencySummary::of(&histogram),
        samples,
    })
}

/// The Kuramoto figures of one network size.
#[derive(Debug, Clone, Default)]
pub struct KuramotoFigures {
    /// Oscillators.
    pub oscillators: usize,
    /// Runs made.
    pub runs: u64,
    /// Runs that never reached the threshold.
    pub never_synced: u64,
    /// Compute time to synchrony of the runs that synchronised, seconds.
    pub compute_s: Vec<f64>,
    /// Simulated time to synchrony of the runs that synchronised.
    pub simulated: Vec<f64>,
}

impl KuramotoFigures {
    fn quantile(values: &[f64], quantile: f64) -> f64 {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        if sorted.is_empty() {
            return f64::NAN;
        }
        let index = ((sorted.len() - 1) as f64 * quantile).round() as usize;
        sorted[index.min(sorted.len() - 1)]
    }
}

/// Seeded time-to-synchrony runs of `oscillators` oscillators, repeated for `duration` (at
/// least three runs).
///
/// # Errors
/// [`BenchError::Kernel`] for parameters the network refuses.
pub fn kuramoto_sync(
    oscillators: usize,
    duration: Duration,
    threshold: f64,
    max_time: f64,
) -> Result<KuramotoFigures, BenchError> {
    kuramoto_sync_recorded(oscillators, duration, threshold, max_time, None)
}

/// [`kuramoto_sync`], publishing every synchronised run through the recording API (sampled).
///
/// # Errors
/// As [`kuramoto_sync`].
pub fn kuramoto_sync_recorded(
    oscillators: usize,
    duration: Duration,
    threshold: f64,
    max_time: f64,
    recorder: Option<&PerformanceRecorder>,
) -> Result<KuramotoFigures, BenchError> {
    let mut figures = KuramotoFigures {
        oscillators,
        ..KuramotoFigures::default()
    };
    let started = Instant::now();
    let mut seed = 1u64;
    while figures.runs < 3 || started.elapsed() < duration {
        let mut network = Kuramoto::new(
            gaussian(oscillators, 0.0, KURAMOTO_FREQUENCY_SPREAD, seed),
            Coupling::MeanField {
                strength: KURAMOTO_COUPLING,
            },
            uniform_phases(oscillators, seed.wrapping_mul(0x9e37_79b9)),
            KURAMOTO_DT,
        )?;
        match network.run_until_sync(threshold, max_time)? {
            SyncOutcome::Synchronized { time, compute, .. } => {
                if let Some(recorder) = recorder {
                    recorder.record_kuramoto(oscillators, compute);
                }
                figures.compute_s.push(compute.as_secs_f64());
                figures.simulated.push(time);
            }
            _ => figures.never_synced += 1,
        }
        figures.runs += 1;
        seed += 1;
        if figures.runs >= 1_000_000 {
            break;
        }
    }
    Ok(figures)
}

/// Runs the mathematical component.
///
/// # Errors
/// [`BenchError`] when a kernel or the cache fails.
pub async fn run(context: &RunContext) -> Result<ComponentReport, BenchError> {
    let started = Instant::now();
    let config = &context.config.mathematical_benchmarks;
    let targets = &context.config.targets;
    let mut report = ComponentReport::new(Component::Mathematical);

    // CGL, one grid at a time on a blocking thread.
    let cgl_duration = Duration::from_secs_f64(config.cgl_solver.test_duration);
    let mut fps_points = Vec::new();
    let mut step_series = Vec::new();
    for &grid_size in &config.cgl_solver.grid_sizes {
        let bar = context
            .progress
            .timed(&format!("CGL {grid_size}x{grid_size}"), cgl_duration);
        let ticker = tick_progress(bar.clone(), cgl_duration);
        let recorder = Arc::clone(context.system.recorder());
        let figures = tokio::task::spawn_blocking(move || {
            cgl_fps_recorded(grid_size, cgl_duration, Some(&recorder))
        })
        .await
        .map_err(|error| BenchError::component(Component::Mathematical, error))??;
        ticker.abort();
        bar.finish_and_clear();
        report.push(
            Measurement::with_target(
                "cgl_fps",
                figures.fps,
                "steps/s",
                Target::at_least(targets.cgl_fps),
            )
            .label("grid_size", grid_size)
            .noise(figures.noise),
        );
        for (name, value) in [
            ("cgl_step_time_p50", figures.step_time.p50),
            ("cgl_step_time_p99", figures.step_time.p99),
            ("cgl_step_time_max", figures.step_time.max),
        ] {
            report.push(
                Measurement::info(name, value, "s")
                    .label("grid_size", grid_size)
                    .better(Better::Lower),
            );
        }
        report.push(
            Measurement::info("cgl_steps", figures.steps as f64, "count")
                .label("grid_size", grid_size),
        );
        fps_points.push((grid_size as f64, figures.fps));
        let millis: Vec<f64> = figures.samples.iter().map(|s| s * 1e3).collect();
        step_series.push(Series::new(
            format!("{grid_size}x{grid_size}"),
            histogram_points(&millis, 30),
        ));
    }
    report.plots.push(Plot {
        id: "cgl_fps_by_grid".to_owned(),
        title: "CGL steps per second (FPS) by grid size".to_owned(),
        kind: PlotKind::Bar,
        x_label: "grid size (points per side)".to_owned(),
        y_label: "steps/s".to_owned(),
        secondary_y_label: None,
        series: vec![Series::new("FPS", fps_points)],
    });
    report.plots.push(Plot {
        id: "cgl_step_time_histogram".to_owned(),
        title: "CGL computation time per step".to_owned(),
        kind: PlotKind::Histogram,
        x_label: "step time (ms)".to_owned(),
        y_label: "steps".to_owned(),
        secondary_y_label: None,
        series: step_series,
    });

    // Kuramoto.
    let kuramoto = config.kuramoto.clone();
    let kuramoto_duration = Duration::from_secs_f64(kuramoto.test_duration);
    let mut sync_series = Vec::new();
    for &oscillators in &kuramoto.oscillator_counts {
        let bar = context
            .progress
            .timed(&format!("Kuramoto N = {oscillators}"), kuramoto_duration);
        let ticker = tick_progress(bar.clone(), kuramoto_duration);
        let (threshold, max_time) = (kuramoto.sync_threshold, kuramoto.max_simulated_time);
        let recorder = Arc::clone(context.system.recorder());
        let figures = tokio::task::spawn_blocking(move || {
            kuramoto_sync_recorded(
                oscillators,
                kuramoto_duration,
                threshold,
                max_time,
                Some(&recorder),
            )
        })
        .await
        .map_err(|error| BenchError::component(Component::Mathematical, error))??;
        ticker.abort();
        bar.finish_and_clear();
        let p50 = KuramotoFigures::quantile(&figures.compute_s, 0.5);
        let measurement = Measurement::with_target(
            "kuramoto_sync_time_p50",
            p50,
            "s",
            Target::at_most(targets.kuramoto_sync_time_s),
        )
        .label("oscillators", oscillators);
        let spread = median_and_spread(&figures.compute_s).map_or(0.0, |(_, spread)| spread);
        report.push(measurement.noise(spread));
        report.push(
            Measurement::info(
                "kuramoto_sync_time_p99",
                KuramotoFigures::quantile(&figures.compute_s, 0.99),
                "s",
            )
            .label("oscillators", oscillators)
            .better(Better::Lower),
        );
        for (name, quantile) in [
            ("kuramoto_simulated_sync_time_p50", 0.5),
            ("kuramoto_simulated_sync_time_p99", 0.99),
        ] {
            report.push(
                Measurement::info(
                    name,
                    KuramotoFigures::quantile(&figures.simulated, quantile),
                    "simulated time",
                )
                .label("oscillators", oscillators),
            );
        }
        report.push(
            Measurement::info("kuramoto_runs", figures.runs as f64, "count")
                .label("oscillators", oscillators),
        );
        report.push(
            Measurement::info(
                "kuramoto_never_synced",
                figures.never_synced as f64,
                "count",
            )
            .label("oscillators", oscillators),
        );
        let micros: Vec<f64> = figures.compute_s.iter().map(|s| s * 1e6).collect();
        sync_series.push(Series::new(
            format!("N = {oscillators}"),
            histogram_points(&micros, 30),
        ));
    }
    report.plots.push(Plot {
        id: "kuramoto_sync_time_distribution".to_owned(),
        title: "Kuramoto compute time to synchrony".to_owned(),
        kind: PlotKind::Histogram,
        x_label: "compute time to synchrony (us)".to_owned(),
        y_label: "runs".to_owned(),
        secondary_y_label: None,
        series: sync_series,
    });

    solver_memory(
        &mut report,
        config.cgl_solver.grid_sizes.iter().copied().max(),
    )
    .await?;
    solve_optimized(context, &mut report).await?;

    report.note(format!(
        "CGL: ETDRK4 on a periodic square of side 50 (b = 1.5, c = -1.2, dt = 0.05) from seeded noise, one step at a \
         time for {} s per grid size; FPS = steps / elapsed, noise = relative IQR of the FPS of ten slices.",
        config.cgl_solver.test_duration
    ));
    report.note(format!(
        "Kuramoto: Gaussian frequencies (sd {KURAMOTO_FREQUENCY_SPREAD}), mean-field K = {KURAMOTO_COUPLING}, dt = \
         {KURAMOTO_DT}, seeded random phases, until r >= {} or simulated time {}; runs repeated for {} s per size. The \
         sync time is compute (wall-clock) time; the target applies to its p50.",
        kuramoto.sync_threshold, kuramoto.max_simulated_time, kuramoto.test_duration
    ));
    report.duration_s = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The allocator-measured peak of a solver of the largest grid: construction and ten steps.
async fn solver_memory(
    report: &mut ComponentReport,
    grid_size: Option<usize>,
) -> Result<(), BenchError> {
    let Some(grid_size) = grid_size else {
        return Ok(());
    };
    let measured = tokio::task::spawn_blocking(move || {
        crate::alloc::measure_peak(|| -> Result<(), BenchError> {
            let mut solver = CglSolver::new(
                cgl_params(grid_size),
                InitialCondition::Noise {
                    amplitude: 0.01,
                    seed: 3,
                },
            )?;
            solver.advance(10)?;
            Ok(())
        })
    })
    .await
    .map_err(|error| BenchError::component(Component::Mathematical, error))?;
    match measured {
        Ok((result, peak)) => {
            result?;
            report.push(
                Measurement::info(
                    "cgl_solver_peak_bytes",
                    peak.peak_increase() as f64,
                    "bytes",
                )
                .label("grid_size", grid_size)
                .better(Better::Lower),
            );
        }
        Err(reason) => report.note(format!("solver memory not measured: {reason}")),
    }
    Ok(())
}

/// The spec's `solve_cgl_optimized`: a cold solve against cached hits, per grid size.
async fn solve_optimized(
    context: &RunContext,
    report: &mut ComponentReport,
) -> Result<(), BenchError> {
    // A seed no earlier run used, so the first call is a cold compute even with a disk tier
    // kept from an earlier run.
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    let grid_sizes = context
        .config
        .mathematical_benchmarks
        .cgl_solver
        .grid_sizes
        .clone();
    let bar = context
        .progress
        .steps("solve_cgl_optimized", grid_sizes.len() as u64);
    for grid_size in grid_sizes {
        let cold_started = Instant::now();
        let cold = context.system.solve_cgl_optimized(grid_size, seed).await?;
        let cold_time = cold_started.elapsed();
        let mut hits = Vec::with_capacity(SOLVE_HITS);
        let mut all_hits = true;
        for _ in 0..SOLVE_HITS {
            let hit_started = Instant::now();
            let hit = context.system.solve_cgl_optimized(grid_size, seed).await?;
            hits.push(hit_started.elapsed());
            all_hits &=
                hit.cache_hit && hit.mean_intensity.to_bits() == cold.mean_intensity.to_bits();
        }
        let hit = LatencySummary::of_durations(&hits);
        report.push(
            Measurement::info("solve_cgl_optimized_cold", cold_time.as_secs_f64(), "s")
                .label("grid_size", grid_size)
                .better(Better::Lower),
        );
        report.push(
            Measurement::info("solve_cgl_optimized_hit_p50", hit.p50, "s")
                .label("grid_size", grid_size)
                .better(Better::Lower),
        );
        report.push(
            Measurement::info("solve_cgl_optimized_hit_p99", hit.p99, "s")
                .label("grid_size", grid_size)
                .better(Better::Lower),
        );
        report.push(
            Measurement::info(
                "solve_cgl_optimized_speedup",
                cold_time.as_secs_f64() / hit.p50.max(1e-9),
                "x",
            )
            .label("grid_size", grid_size)
            .better(Better::Higher),
        );
        if cold.cache_hit || !all_hits {
            report.note(format!(
                "solve_cgl_optimized {grid_size}: expected one cold compute then identical cached hits, got cold hit = {}, \
                 all later calls identical hits = {all_hits}",
                cold.cache_hit
            ));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    report.note(format!(
        "solve_cgl_optimized: {} steps from seeded noise through NFCSCacheManager::math (key \
         cgl_{{grid}}_{{hash}} of every parameter, single flight, TTL 1 h); one cold compute, then \
         {SOLVE_HITS} cached hits.",
        crate::system::SOLVE_STEPS
    ));
    Ok(())
}

/// Moves a timed progress bar along while a blocking phase runs.
fn tick_progress(bar: indicatif::ProgressBar, duration: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = Instant::now();
        loop {
            Progress::set_elapsed(&bar, started.elapsed().min(duration));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}
