//! Measures the coordination loop: tick jitter at 10 Hz with the default modules for each
//! ticker setting (tokio's timer alone, the OS's timed wait alone, the timed wait then spinning
//! for the last 300 us / 1 ms), the CPU each costs, then the coordination component itself (run
//! and max-frequency search).
//!
//! `cargo run --release -p nfcs-bench --example coordination_jitter [seconds per run] [--no-component]`
//! (`--compare-waits`: only the precise waits against each other, interleaved, 3 rounds).

use std::sync::Arc;
use std::time::{Duration, Instant};

use nfcs_bench::components::coordination;
use nfcs_bench::orchestrator::Orchestrator;
use nfcs_bench::progress::Progress;
use nfcs_bench::stats::LatencySummary;
use nfcs_bench::{BenchmarkConfig, Profile, RunContext, System};

/// The process's CPU time (user + system), from `/proc/self/stat`, in seconds.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the command's closing parenthesis: utime is the 12th, stime the 13th.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return f64::NAN;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn ms(seconds: f64) -> String {
    format!("{:.3} ms", seconds * 1e3)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(10.0);
    let duration = Duration::from_secs_f64(seconds);
    let work = tempfile::tempdir()?;
    let config = BenchmarkConfig::default();
    let system = Arc::new(System::build(&config.cache, work.path()).await?);
    let (modules, notes) =
        coordination::default_modules(&system, config.coordination.grid_size).await?;
    for note in &notes {
        println!("note: {note}");
    }
    println!(
        "machine: {} cores; modules: {:?}; {seconds} s per run at 10 Hz",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        modules
            .iter()
            .map(|m| m.name().to_owned())
            .collect::<Vec<_>>()
    );

    // `--compare-waits`: the precise waits against each other, interleaved (the machine's load
    // changes over minutes), 3 rounds of `seconds` each, the rounds' ticks pooled.
    if std::env::args().any(|arg| arg == "--compare-waits") {
        let waits = [
            Duration::ZERO,
            Duration::from_micros(100),
            Duration::from_micros(200),
            Duration::from_micros(300),
            Duration::from_millis(1),
        ];
        let mut pooled: Vec<Vec<Duration>> = vec![Vec::new(); waits.len()];
        let mut cpu_used = vec![0.0; waits.len()];
        for _round in 0..3 {
            for (position, wait) in waits.iter().enumerate() {
                let mut orchestrator = Orchestrator::new(10.0)?.precise_wait(*wait);
                for module in &modules {
                    orchestrator = orchestrator.module(Arc::clone(module));
                }
                let cpu = cpu_seconds();
                let run = orchestrator.run_for(duration).await?;
                cpu_used[position] += cpu_seconds() - cpu;
                pooled[position].extend(
                    run.ticks
                        .iter()
                        .map(|tick| Duration::from_secs_f64(tick.lateness_s)),
                );
            }
        }
        for (position, wait) in waits.iter().enumerate() {
            let summary = LatencySummary::of_durations(&pooled[position]);
            println!(
                "precise wait {:>7.3} ms, default modules, {} ticks: jitter p50 {} p99 {} max {}; \
                 CPU {:.2} % of a core (modules included)",
                wait.as_secs_f64() * 1e3,
                summary.count,
                ms(summary.p50),
                ms(summary.p99),
                ms(summary.max),
                cpu_used[position] / (3.0 * seconds) * 100.0
            );
        }
        return Ok(());
    }

    // tokio's timer alone: sleep_until each intended tick, no modules.
    {
        let period = Duration::from_millis(100);
        let cpu = cpu_seconds();
        let start = tokio::time::Instant::now();
        let mut lateness = Vec::new();
        let mut k = 0u32;
        while period * k < duration {
            let intended = start + period * k;
            tokio::time::sleep_until(intended).await;
            lateness.push(tokio::time::Instant::now() - intended);
            k += 1;
        }
        let summary = LatencySummary::of_durations(&lateness);
        println!(
            "tokio sleep_until (no modules):     jitter p50 {} p99 {} max {}; CPU {:.2} % of a core",
            ms(summary.p50),
            ms(summary.p99),
            ms(summary.max),
            (cpu_seconds() - cpu) / seconds * 100.0
        );
    }

    for (label, wait) in [
        ("timed wait alone", Duration::ZERO),
        ("timed wait + 300 us spinning", Duration::from_micros(300)),
        ("timed wait + 1 ms spinning", Duration::from_millis(1)),
    ] {
        for with_modules in [false, true] {
            let mut orchestrator = Orchestrator::new(10.0)?.precise_wait(wait);
            if with_modules {
                for module in &modules {
                    orchestrator = orchestrator.module(Arc::clone(module));
                }
            }
            let cpu = cpu_seconds();
            let run = orchestrator.run_for(duration).await?;
            let cpu = cpu_seconds() - cpu;
            println!(
                "{label:<30} ({}): jitter p50 {} p99 {} max {}; latency p50 {} p95 {} p99 {}; \
                 {:.2} Hz, {} overruns, {} missed; CPU {:.2} % of a core",
                if with_modules {
                    "default modules"
                } else {
                    "no modules"
                },
                ms(run.jitter.p50),
                ms(run.jitter.p99),
                ms(run.jitter.max),
                ms(run.latency.p50),
                ms(run.latency.p95),
                ms(run.latency.p99),
                run.achieved_hz,
                run.overruns,
                run.missed_ticks,
                cpu / seconds * 100.0
            );
            if with_modules && wait == Duration::from_micros(300) {
                for module in &run.modules {
                    println!(
                        "    {:<18} response p50 {} p95 {} max {}; errors {} panics {}",
                        module.name,
                        ms(module.response.p50),
                        ms(module.response.p95),
                        ms(module.response.max),
                        module.errors,
                        module.panics
                    );
                }
            }
        }
    }

    if std::env::args().any(|arg| arg == "--no-component") {
        return Ok(());
    }
    // The component as the suite runs it (configured durations: 30 s and a 15 s search).
    let context = RunContext {
        config,
        profile: Profile::Full,
        progress: Progress::hidden(),
        system,
    };
    let started = Instant::now();
    let report = coordination::run(&context).await?;
    println!(
        "coordination component ({:.1} s):",
        started.elapsed().as_secs_f64()
    );
    for measurement in &report.measurements {
        println!(
            "    {:<50} {:>14.6} {:<6} {:?}",
            measurement.key(),
            measurement.value,
            measurement.unit,
            measurement.verdict
        );
    }
    for note in &report.notes {
        println!("    note: {note}");
    }
    Ok(())
}
