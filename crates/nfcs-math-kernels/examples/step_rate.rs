//! Steps per second of one solver at one size: the best of several short batches, which is
//! steadier than a mean on a shared machine. For quick comparisons while tuning; the figures
//! in `docs/benchmarks.md` come from the criterion benches.
//!
//! ```text
//! cargo run --release -p nfcs-math-kernels --example step_rate -- cgl 256
//! cargo run --release -p nfcs-math-kernels --example step_rate -- mean-field 1000000
//! cargo run --release -p nfcs-math-kernels --example step_rate -- dense 5000
//! ```
//!
//! `cgl-batch SIZE RUNS` steps a [`CglBatch`] of `RUNS` independent runs, ten steps a call, and
//! prints the total steps per second over all runs.
//!
//! `cgl-steps SIZE STEPS` takes exactly `STEPS` steps after the warm-up and prints no rate: run
//! it under `valgrind --tool=callgrind` at two step counts and take the difference of the
//! instruction totals to get instructions per step without the setup.

use std::time::{Duration, Instant};

use nfcs_math_kernels::cgl::{CglBatch, CglParams, CglSolver, InitialCondition};
use nfcs_math_kernels::kuramoto::{Coupling, Kuramoto, lorentzian_quantiles, uniform_phases};

fn best_rate(mut step: impl FnMut()) -> f64 {
    // Calibrate a batch of about 50 ms, then keep the best of 10 batches.
    let mut batch = 1_u32;
    loop {
        let started = Instant::now();
        for _ in 0..batch {
            step();
        }
        if started.elapsed() > Duration::from_millis(50) {
            break;
        }
        batch *= 2;
    }
    (0..10)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..batch {
                step();
            }
            f64::from(batch) / started.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

/// The benchmark's solver: `L = 50`, `dt = 0.05`, `b = 0.5`, `c = -0.5`, from small noise,
/// after 20 warm-up steps.
fn cgl_solver(size: usize) -> Result<CglSolver, Box<dyn std::error::Error>> {
    let params = CglParams::new(size, 50.0, 0.05, 0.5, -0.5);
    let mut solver = CglSolver::new(
        params,
        InitialCondition::Noise {
            amplitude: 0.01,
            seed: 1,
        },
    )?;
    solver.advance(20)?;
    Ok(solver)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let kernel = args.get(1).map_or("cgl", String::as_str);
    let size: usize = args.get(2).map_or(Ok(128), |text| text.parse())?;
    let rate = match kernel {
        "cgl-steps" => {
            let steps: u64 = args.get(3).map_or(Ok(10), |text| text.parse())?;
            let mut solver = cgl_solver(size)?;
            solver.advance(steps)?;
            println!(
                "cgl {size}: {steps} steps, mean |A|^2 {:e}",
                solver.mean_intensity()
            );
            return Ok(());
        }
        "cgl-batch" => {
            let runs: u64 = args.get(3).map_or(Ok(8), |text| text.parse())?;
            let params = CglParams::new(size, 50.0, 0.05, 0.5, -0.5);
            let initials = (0..runs).map(|seed| InitialCondition::Noise {
                amplitude: 0.01,
                seed,
            });
            let mut batch = CglBatch::new(params, initials)?;
            batch.advance(20).into_iter().collect::<Result<(), _>>()?;
            let calls = best_rate(|| {
                batch.advance(10);
            });
            println!(
                "cgl batch {size} x {runs}: {:.1} steps/s in total",
                calls * 10.0 * runs as f64
            );
            return Ok(());
        }
        "cgl" => {
            let mut solver = cgl_solver(size)?;
            best_rate(|| solver.step().unwrap_or_default())
        }
        "mean-field" | "dense" => {
            let coupling = if kernel == "dense" {
                Coupling::Dense {
                    weights: vec![4.0 / size as f64; size * size],
                }
            } else {
                Coupling::MeanField { strength: 4.0 }
            };
            let mut network = Kuramoto::new(
                lorentzian_quantiles(size, 0.0, 0.5),
                coupling,
                uniform_phases(size, 1),
                0.01,
            )?;
            best_rate(|| network.step())
        }
        "bandwidth" => {
            // Streaming read of `size` MiB across all threads: the memory floor of the dense
            // coupling (one pass over the matrix per RK4 stage). Reported in GB/s.
            use rayon::prelude::*;
            let data = vec![1.0_f64; size * 1024 * 1024 / 8];
            let rate = best_rate(|| {
                let sum: f64 = data
                    .par_chunks(1 << 18)
                    .map(|chunk| {
                        // Eight partial sums, so the adds are not a latency chain.
                        let mut lanes = [0.0_f64; 32];
                        for block in chunk.chunks_exact(32) {
                            for (lane, value) in lanes.iter_mut().zip(block) {
                                *lane += value;
                            }
                        }
                        lanes.iter().sum::<f64>()
                    })
                    .sum();
                std::hint::black_box(sum);
            });
            println!(
                "read bandwidth: {:.1} GB/s",
                rate * (size * 1024 * 1024) as f64 / 1e9
            );
            return Ok(());
        }
        other => {
            return Err(
                format!("unknown kernel {other}: cgl, mean-field, dense or bandwidth").into(),
            );
        }
    };
    println!("{kernel} {size}: {rate:.1} steps/s");
    Ok(())
}
