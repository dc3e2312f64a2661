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
//! parameters, and `reference/fftw_numba_reference.py` the same CGL step on FFTW (pyFFTW) with
//! numba loops.
//!
//! With `NFCS_MATH_COMPARE=1` the criterion groups are skipped: after the floor report, an
//! interleaved comparison times our solvers and the Python peers side by side. The reference
//! script runs as a long-lived child (`numpy_reference.py --serve`, interpreter
//! `NFCS_MATH_PYTHON`; without it only our solvers are timed) commanded over stdin/stdout with
//! one JSON line a request. For every kernel and size, each subject (ours, NumPy and, for CGL,
//! FFTW+numba on one thread and on all threads) is set up and warmed up outside the clock, then
//! the subjects take turns for `NFCS_MATH_ROUNDS` rounds (default 5; the order rotates each
//! round), each timed over one stretch of `NFCS_MATH_SECONDS` (default 0.3 s), with the
//! machine's `/proc/loadavg` read and printed at each round. Besides the f64 rows of the
//! criterion groups it times `cgl_batch4` (`CglBatch` of 4 runs, 64^2 and 128^2, in
//! field-steps/s) beside the FFTW+numba peers, and `kuramoto_dense_f32` (`Coupling::DenseF32`,
//! N = 1,000 and 5,000) beside NumPy's f64 dense step. So a load change moves every
//! subject of a round alike, and the ratios are taken within rounds. `cargo xtask compare --only
//! math` runs this and writes `<NFCS_BENCH_OUT>/math_compare.json`, from which
//! `nfcs-bench peer-table --section math` makes the table.

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write as _};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use nfcs_math_kernels::Complex64;
use nfcs_math_kernels::cgl::{CglBatch, CglParams, CglSolver, InitialCondition};
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
    floors();
}

/// Measures the floors and writes `math_floor.json`.
fn floors() {
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

fn main() {
    if std::env::var_os("NFCS_MATH_COMPARE").is_some() {
        floors();
        compare::run();
    } else {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
}

/// The interleaved comparison with the Python peers (`NFCS_MATH_COMPARE=1`).
mod compare {
    use super::*;
    use serde_json::{Value, json};

    /// The reference script, served.
    const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/reference/numpy_reference.py");

    /// Pause after each timed stretch, so helper threads still spinning after their work
    /// (OpenBLAS's wait about 0.1 s before sleeping) are asleep before the next subject starts.
    const SETTLE: Duration = Duration::from_millis(100);

    /// The rows: kernel, size, and the peers timed beside ours.
    fn rows() -> Vec<(&'static str, usize, &'static [&'static str])> {
        const CGL_PEERS: &[&str] = &["numpy", "fftw_1t", "fftw_all"];
        const NUMPY: &[&str] = &["numpy"];
        const FFTW: &[&str] = &["fftw_1t", "fftw_all"];
        let mut rows = Vec::new();
        for n in [64, 128, 256, 512] {
            rows.push(("cgl", n, CGL_PEERS));
        }
        for n in [50, 1_000, 100_000, 1_000_000] {
            rows.push(("kuramoto_mean_field", n, NUMPY));
        }
        for n in [50, 1_000, 5_000] {
            rows.push(("kuramoto_dense", n, NUMPY));
        }
        // Batched CGL: rows of their own kernel name, listed apart from the f64 rows by the
        // table (nfcs-bench peers/math.rs); ours is counted in field-steps/s, the peers step
        // one field.
        for n in [64, 128] {
            rows.push(("cgl_batch4", n, FFTW));
        }
        // The f32 coupling matrix (`Coupling::DenseF32`), beside NumPy's f64 dense step.
        for n in [1_000, 5_000] {
            rows.push(("kuramoto_dense_f32", n, NUMPY));
        }
        // Hook: an f32 CGL variant goes here the same way (e.g. "cgl_f32", with `ours` below
        // building it).
        rows
    }

    /// Fields a batch steps at once: the runs of `cgl_batch4`.
    const BATCH: u64 = 4;

    /// Our solver for `kernel` at `size`, set up as the criterion groups set it up and warmed
    /// up: a function running that many steps, and how many fields one step advances.
    fn ours(kernel: &str, size: usize) -> (Box<dyn FnMut(u64)>, u64) {
        if kernel == "cgl_batch4" {
            let params = CglParams::new(size, 50.0, 0.05, 0.5, -0.5);
            let initials = (0..BATCH).map(|seed| InitialCondition::Noise {
                amplitude: 0.01,
                seed: seed + 1,
            });
            let mut batch = CglBatch::new(params, initials).expect("valid parameters");
            let stable = |outcomes: Vec<Result<(), nfcs_math_kernels::KernelError>>| {
                outcomes
                    .into_iter()
                    .for_each(|outcome| outcome.expect("stable"));
            };
            stable(batch.advance(20));
            return (Box::new(move |steps| stable(batch.advance(steps))), BATCH);
        }
        let run: Box<dyn FnMut(u64)> = match kernel {
            "cgl" => {
                let params = CglParams::new(size, 50.0, 0.05, 0.5, -0.5);
                let mut solver = CglSolver::new(
                    params,
                    InitialCondition::Noise {
                        amplitude: 0.01,
                        seed: 1,
                    },
                )
                .expect("valid parameters");
                solver.advance(20).expect("stable");
                Box::new(move |steps| {
                    for _ in 0..steps {
                        solver.step().expect("stable");
                    }
                })
            }
            "kuramoto_mean_field" => {
                let mut network = network(size, Coupling::MeanField { strength: 4.0 });
                network.advance(2);
                Box::new(move |steps| {
                    for _ in 0..steps {
                        network.step();
                    }
                })
            }
            "kuramoto_dense_f32" => {
                let weights = vec![4.0 / size as f32; size * size];
                let mut network = network(size, Coupling::DenseF32 { weights });
                network.advance(2);
                Box::new(move |steps| {
                    for _ in 0..steps {
                        network.step();
                    }
                })
            }
            _ => {
                let weights = vec![4.0 / size as f64; size * size];
                let mut network = network(size, Coupling::Dense { weights });
                network.advance(2);
                Box::new(move |steps| {
                    for _ in 0..steps {
                        network.step();
                    }
                })
            }
        };
        (run, 1)
    }

    /// Steps/s of `run` over one stretch of about `seconds`, as `timed_rate` in the reference
    /// script: batches grow (doubling, at most what the remaining time holds at the rate so
    /// far) until the time is up; all the steps over all the time.
    fn timed_rate(run: &mut dyn FnMut(u64), seconds: f64) -> f64 {
        let (mut steps, mut batch) = (0_u64, 1_u64);
        let started = Instant::now();
        loop {
            run(batch);
            steps += batch;
            let elapsed = started.elapsed().as_secs_f64();
            let remaining = seconds - elapsed;
            let per_step = elapsed / steps as f64;
            if remaining < 0.5 * per_step {
                return steps as f64 / elapsed;
            }
            batch = ((remaining / per_step) as u64).clamp(1, 2 * batch);
        }
    }

    /// `/proc/loadavg`: the 1, 5 and 15 minute load averages and the tasks running now.
    fn load() -> Value {
        let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let fields: Vec<&str> = text.split_whitespace().collect();
        let average = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
        let running = fields
            .get(3)
            .and_then(|v| v.split('/').next())
            .and_then(|v| v.parse::<u64>().ok());
        json!({ "load1": average(0), "load5": average(1), "load15": average(2), "running": running })
    }

    /// The served reference script.
    struct Peer {
        child: Child,
        stdin: ChildStdin,
        stdout: BufReader<ChildStdout>,
    }

    impl Peer {
        fn spawn(python: &std::ffi::OsStr) -> Result<Peer, String> {
            let mut child = Command::new(python)
                .arg(SCRIPT)
                .arg("--serve")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|error| format!("could not start {}: {error}", python.display()))?;
            let stdin = child.stdin.take().ok_or("no stdin")?;
            let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
            Ok(Peer {
                child,
                stdin,
                stdout,
            })
        }

        /// One request and its answer; an answer with `error` is an error.
        fn request(&mut self, request: &Value) -> Result<Value, String> {
            writeln!(self.stdin, "{request}")
                .and_then(|()| self.stdin.flush())
                .map_err(|error| format!("the reference script stopped reading: {error}"))?;
            let mut line = String::new();
            let read = self
                .stdout
                .read_line(&mut line)
                .map_err(|error| format!("could not read the reference script: {error}"))?;
            if read == 0 {
                return Err("the reference script exited".to_owned());
            }
            let reply: Value = serde_json::from_str(&line)
                .map_err(|error| format!("the reference script answered {line:?}: {error}"))?;
            match reply.get("error") {
                Some(error) => Err(error.as_str().unwrap_or("?").to_owned()),
                None => Ok(reply),
            }
        }
    }

    impl Drop for Peer {
        fn drop(&mut self) {
            let _ = writeln!(self.stdin, "{}", json!({ "op": "quit" }));
            let _ = self.stdin.flush();
            let _ = self.child.wait();
        }
    }

    fn env_number(name: &str, default: f64) -> f64 {
        std::env::var(name)
            .ok()
            .and_then(|value| value.parse::<f64>().ok())
            .filter(|value| *value > 0.0)
            .unwrap_or(default)
    }

    fn format_rate(rate: f64) -> String {
        if rate >= 100.0 {
            format!("{rate:.0}")
        } else {
            format!("{rate:.1}")
        }
    }

    pub(super) fn run() {
        let rounds = env_number("NFCS_MATH_ROUNDS", 5.0).round() as usize;
        let seconds = env_number("NFCS_MATH_SECONDS", 0.3);
        let mut peer_error = None;
        let mut peer = match std::env::var_os("NFCS_MATH_PYTHON") {
            Some(python) => match Peer::spawn(&python) {
                Ok(peer) => Some(peer),
                Err(error) => {
                    peer_error = Some(error);
                    None
                }
            },
            None => {
                peer_error = Some("NFCS_MATH_PYTHON is not set".to_owned());
                None
            }
        };
        let mut info = Value::Null;
        if let Some(served) = &mut peer {
            match served.request(&json!({ "op": "info" })) {
                Ok(reply) => info = reply,
                Err(error) => {
                    peer_error = Some(error);
                    peer = None;
                }
            }
        }
        if let Some(error) = &peer_error {
            eprintln!("interleaved comparison: ours only ({error})");
        }
        println!(
            "\ninterleaved comparison: {rounds} rounds of {seconds} s per subject; load = \
             /proc/loadavg 1-minute average and tasks running, on {} CPUs",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        let mut results = Vec::new();
        for (kernel, size, peers) in rows() {
            let mut errors = serde_json::Map::new();
            let (mut ours, fields) = ours(kernel, size);
            let mut subjects: Vec<&str> = vec!["ours"];
            if let Some(served) = &mut peer {
                for subject in peers {
                    let request = json!({ "op": "prepare", "subject": subject, "kernel": kernel, "size": size });
                    match served.request(&request) {
                        Ok(_) => subjects.push(subject),
                        Err(error) => {
                            eprintln!("{kernel}/{size}: {subject} left out: {error}");
                            errors.insert((*subject).to_owned(), error.into());
                        }
                    }
                }
            }
            let mut timed = Vec::new();
            for round in 0..rounds {
                let load = load();
                let mut rates = serde_json::Map::new();
                for turn in 0..subjects.len() {
                    let subject = subjects[(round + turn) % subjects.len()];
                    let rate = if subject == "ours" {
                        Some(timed_rate(&mut *ours, seconds) * fields as f64)
                    } else {
                        let request = json!({
                            "op": "time", "subject": subject, "kernel": kernel,
                            "size": size, "seconds": seconds,
                        });
                        match peer.as_mut().map(|served| served.request(&request)) {
                            Some(Ok(reply)) => reply["steps_per_second"].as_f64(),
                            Some(Err(error)) => {
                                errors.insert(subject.to_owned(), error.into());
                                None
                            }
                            None => None,
                        }
                    };
                    if let Some(rate) = rate {
                        rates.insert(subject.to_owned(), rate.into());
                    }
                    std::thread::sleep(SETTLE);
                }
                let shown: Vec<String> = subjects
                    .iter()
                    .filter_map(|subject| {
                        rates
                            .get(*subject)
                            .and_then(Value::as_f64)
                            .map(|rate| format!("{subject} {}", format_rate(rate)))
                    })
                    .collect();
                println!(
                    "{kernel}/{size} round {}/{rounds} (load {} running {}): {}",
                    round + 1,
                    load["load1"],
                    load["running"],
                    shown.join(", ")
                );
                timed.push(json!({ "load": load, "rates": rates }));
            }
            results.push(json!({
                "kernel": kernel, "size": size, "rounds": timed, "errors": errors,
            }));
        }
        let dgemv = peer
            .as_mut()
            .and_then(|served| served.request(&json!({ "op": "dgemv" })).ok())
            .and_then(|reply| reply["gb_per_s"].as_f64());
        drop(peer);
        let report = json!({
            "rounds": rounds,
            "seconds_per_turn": seconds,
            "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "rayon_threads": rayon::current_num_threads(),
            "peer_error": peer_error,
            "fftw_skipped": std::env::var("NFCS_MATH_FFTW_SKIPPED").ok(),
            "python": info,
            "dgemv_gb_per_s": dgemv,
            "rows": results,
        });
        if let Some(directory) = std::env::var_os("NFCS_BENCH_OUT") {
            let path = std::path::Path::new(&directory).join("math_compare.json");
            let written = std::fs::create_dir_all(&directory).and_then(|()| {
                std::fs::write(
                    &path,
                    serde_json::to_vec_pretty(&report).unwrap_or_default(),
                )
            });
            match written {
                Ok(()) => println!("wrote {}", path.display()),
                Err(error) => eprintln!("could not write {}: {error}", path.display()),
            }
        }
    }
}
