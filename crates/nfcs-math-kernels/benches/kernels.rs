//! Steps per second of the solvers at the sizes `docs/benchmarks.md` reports.
//!
//! - `cgl/<n>`: one ETDRK4 step of the complex Ginzburg-Landau solver on an `n x n` grid
//!   (`L = 50`, `dt = 0.05`, `b = 0.5`, `c = -0.5`, from small noise after 20 warm-up steps),
//!   n = 64, 128, 256, 512.
//! - `kuramoto_mean_field/<N>`: one RK4 step of N oscillators with all-to-all coupling
//!   (`K = 4`, Lorentzian quantile frequencies of width 0.5, `dt = 0.01`),
//!   N = 50, 1,000, 100,000, 1,000,000.
//! - `kuramoto_dense/<N>`: the same with a dense `N x N` matrix `K/N`, N = 50, 1,000, 5,000.
//!
//! The NumPy reference (`reference/numpy_reference.py`) runs the same algorithms with the same
//! parameters; `cargo xtask bench --only math` runs both and writes the table.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use nfcs_math_kernels::cgl::{CglParams, CglSolver, InitialCondition};
use nfcs_math_kernels::kuramoto::{Coupling, Kuramoto, lorentzian_quantiles, uniform_phases};

fn cgl(c: &mut Criterion) {
    let mut group = c.benchmark_group("cgl");
    group.throughput(Throughput::Elements(1));
    for n in [64, 128, 256, 512] {
        let params = CglParams::new(n, 50.0, 0.05, 0.5, -0.5);
        let mut solver = CglSolver::new(
            params,
            InitialCondition::Noise {
                amplitude: 0.01,
                seed: 1,
            },
        )
        .expect("valid parameters");
        solver.advance(20).expect("stable");
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| solver.step().expect("stable"));
        });
        black_box(solver.mean_intensity());
    }
    group.finish();
}

fn network(n: usize, coupling: Coupling) -> Kuramoto {
    Kuramoto::new(
        lorentzian_quantiles(n, 0.0, 0.5),
        coupling,
        uniform_phases(n, 1),
        0.01,
    )
    .expect("valid network")
}

fn kuramoto(c: &mut Criterion) {
    let mut group = c.benchmark_group("kuramoto_mean_field");
    group.throughput(Throughput::Elements(1));
    for n in [50, 1_000, 100_000, 1_000_000] {
        let mut oscillators = network(n, Coupling::MeanField { strength: 4.0 });
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| oscillators.step())
        });
        black_box(oscillators.order_parameter());
    }
    group.finish();
    let mut group = c.benchmark_group("kuramoto_dense");
    group.throughput(Throughput::Elements(1));
    for n in [50, 1_000, 5_000] {
        let weights = vec![4.0 / n as f64; n * n];
        let mut oscillators = network(n, Coupling::Dense { weights });
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| oscillators.step())
        });
        black_box(oscillators.order_parameter());
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion::criterion_group! {
    name = benches;
    config = config();
    targets = cgl, kuramoto
}
criterion::criterion_main!(benches);
