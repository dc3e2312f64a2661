//! Instruction-count probes of the solvers, for `cargo xtask perf-check` (which runs this under
//! `valgrind --tool=callgrind`; see `xtask/src/perf.rs`).
//!
//! `cargo run --release -p nfcs-math-kernels --example perf_probe_math -- <PROBE> <ITERATIONS>`
//! builds the probe's fixed, seeded state, takes a few warm-up steps, then `ITERATIONS` steps
//! inside [`measured_region`], the one function whose instructions callgrind collects. The
//! whole probe runs inside a rayon pool of one thread, so the parallel loops run inline on that
//! thread: no work is handed between threads and the counts repeat.
//!
//! Probes: `cgl-64` (one `CglSolver::step` at 64x64), `kuramoto-mean-field-1000` and
//! `kuramoto-dense-200` (one `Kuramoto::step`: mean-field coupling of 1,000 oscillators, a dense
//! coupling matrix of 200).

use std::error::Error;
use std::hint::black_box;

use nfcs_math_kernels::cgl::{CglParams, CglSolver, InitialCondition};
use nfcs_math_kernels::kuramoto::{Coupling, Kuramoto, lorentzian_quantiles, uniform_phases};

/// Runs `step` `iterations` times: the only instructions callgrind collects.
#[inline(never)]
fn measured_region(iterations: usize, mut step: impl FnMut()) {
    for _ in 0..iterations {
        step();
    }
}

fn kuramoto(size: usize, dense: bool) -> Result<Kuramoto, Box<dyn Error>> {
    let coupling = if dense {
        Coupling::Dense {
            weights: vec![4.0 / size as f64; size * size],
        }
    } else {
        Coupling::MeanField { strength: 4.0 }
    };
    Ok(Kuramoto::new(
        lorentzian_quantiles(size, 0.0, 0.5),
        coupling,
        uniform_phases(size, 1),
        0.01,
    )?)
}

fn run(probe: &str, iterations: usize) -> Result<String, Box<dyn Error>> {
    match probe {
        "cgl-64" => {
            let params = CglParams::new(64, 50.0, 0.05, 0.5, -0.5);
            let mut solver = CglSolver::new(
                params,
                InitialCondition::Noise {
                    amplitude: 0.01,
                    seed: 1,
                },
            )?;
            solver.advance(3)?;
            let mut failed = false;
            measured_region(iterations, || failed |= solver.step().is_err());
            if failed {
                return Err("a CGL step failed".into());
            }
            Ok(format!("{} steps", solver.steps()))
        }
        "kuramoto-mean-field-1000" | "kuramoto-dense-200" => {
            let mut network = if probe == "kuramoto-dense-200" {
                kuramoto(200, true)?
            } else {
                kuramoto(1000, false)?
            };
            network.advance(3);
            measured_region(iterations, || network.step());
            Ok(format!(
                "order parameter {:.6}",
                black_box(&network).order_parameter().r
            ))
        }
        other => Err(format!(
            "unknown probe {other:?}: cgl-64, kuramoto-mean-field-1000 or kuramoto-dense-200"
        )
        .into()),
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: perf_probe_math <PROBE> <ITERATIONS>";
    let probe = args.next().ok_or(usage)?;
    let iterations: usize = args.next().ok_or(usage)?.parse()?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let summary = pool.install(|| run(&probe, iterations).map_err(|error| error.to_string()))?;
    println!("{probe}: {iterations} iterations, {summary}");
    Ok(())
}
