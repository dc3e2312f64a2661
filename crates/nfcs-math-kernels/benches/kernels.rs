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
//! After criterion, a report phase measures what the floors in `docs/benchmarks.md` are computed
//! from: rustfft's rate on the row FFTs the CGL step is made of (one thread and all threads) and
//! the machine's streaming read bandwidth. With `NFCS_BENCH_OUT=<dir>` it is written to
//! `<dir>/math_floor.json`.
//!
//! The NumPy reference (`reference/numpy_reference.py`) runs the same algorithms with the same
//! parameters; `cargo xtask bench --only math` runs both and writes the table.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use nfcs_math_kernels::Complex64;
use nfcs_math_kernels::cgl::{CglParams, CglSolver, InitialCondition};
use nfcs_math_kernels::kuramoto::{Coupling, Kuramoto, lorentzian_quantiles, uniform_phases};
use rayon::prelude::*;

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

/// The best rate (calls per second) of `work` over ten batches of about 50 ms.
fn best_rate(mut work: impl FnMut()) -> f64 {
    let mut batch = 1_u32;
    loop {
        let started = Instant::now();
        for _ in 0..batch {
            work();
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
                work();
            }
            f64::from(batch) / started.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

/// rustfft's rate, in GFlop/s (counting 5 n log2 n per transform of length n), on all `n` rows
/// of an `n x n` field, on one thread and split over all threads as the solver splits them.
fn fft_rates(n: usize) -> (f64, f64) {
    let fft = rustfft::FftPlanner::new().plan_fft_forward(n);
    let mut data = vec![Complex64::new(0.5, 0.25); n * n];
    let mut scratch = vec![Complex64::default(); fft.get_inplace_scratch_len()];
    let flops = 5.0 * n as f64 * (n as f64).log2() * n as f64;
    let single = best_rate(|| fft.process_with_scratch(&mut data, &mut scratch)) * flops / 1e9;
    let threads = rayon::current_num_threads().max(1);
    let rows = n.div_ceil(threads);
    let mut scratches = vec![vec![Complex64::default(); fft.get_inplace_scratch_len()]; threads];
    let all = best_rate(|| {
        data.par_chunks_mut(rows * n)
            .zip(scratches.par_iter_mut())
            .for_each(|(rows, scratch)| fft.process_with_scratch(rows, scratch));
    }) * flops
        / 1e9;
    (single, all)
}

/// Streaming read bandwidth in GB/s over 512 MiB, on all threads.
fn read_bandwidth() -> f64 {
    let bytes = 512 << 20;
    let data = vec![1.0_f64; bytes / 8];
    best_rate(|| {
        let sum: f64 = data
            .par_chunks(1 << 16)
            .map(|chunk| {
                // Eight partial sums, so the adds are not one latency chain.
                let mut lanes = [0.0_f64; 8];
                for block in chunk.chunks_exact(8) {
                    for (lane, value) in lanes.iter_mut().zip(block) {
                        *lane += value;
                    }
                }
                lanes.iter().sum::<f64>()
            })
            .sum();
        black_box(sum);
    }) * bytes as f64
        / 1e9
}

fn floor_report(_: &mut Criterion) {
    let mut report = serde_json::Map::new();
    for n in [64, 128, 256, 512] {
        let (single, all) = fft_rates(n);
        report.insert(format!("fft_gflops_1t/{n}"), single.into());
        report.insert(format!("fft_gflops_all/{n}"), all.into());
    }
    report.insert("read_gb_per_s".into(), read_bandwidth().into());
    report.insert("threads".into(), rayon::current_num_threads().into());
    let report = serde_json::Value::Object(report);
    println!(
        "\nfloor report: {}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    if let Some(directory) = std::env::var_os("NFCS_BENCH_OUT") {
        let path = std::path::Path::new(&directory).join("math_floor.json");
        let written = std::fs::create_dir_all(&directory).and_then(|()| {
            std::fs::write(
                &path,
                serde_json::to_vec_pretty(&report).unwrap_or_default(),
            )
        });
        if let Err(error) = written {
            eprintln!("could not write {}: {error}", path.display());
        }
    }
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
    targets = cgl, kuramoto, floor_report
}
criterion::criterion_main!(benches);
