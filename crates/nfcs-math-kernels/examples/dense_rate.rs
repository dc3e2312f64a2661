//! Dense-coupling Kuramoto: steps per second with an `f64` and an `f32` matrix, measured
//! interleaved in one process, beside the machine's streaming read bandwidth and the
//! bandwidth each step rate implies (four passes over the matrix per RK4 step).
//!
//! ```text
//! cargo run --release -p nfcs-math-kernels --example dense_rate -- rate 5000 [ROUNDS]
//! cargo run --release -p nfcs-math-kernels --example dense_rate -- steps 1000 f64 STEPS
//! ```
//!
//! `rate N` prints, per round, the best of several ~0.2 s batches for each storage, then the
//! medians; `steps N f64|f32 STEPS` takes exactly `STEPS` steps (for instruction counts under
//! `valgrind --tool=callgrind`: run two step counts and take the difference).

use std::error::Error;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use nfcs_math_kernels::kuramoto::{Coupling, Kuramoto, lorentzian_quantiles, uniform_phases};

/// A Lorentzian network of `n` with a general (non-constant) coupling matrix, `K_ij` around
/// `4 / n`.
fn network(n: usize, f32_storage: bool) -> Result<Kuramoto, Box<dyn Error>> {
    let weights: Vec<f64> = (0..n * n)
        .map(|index| (2.0 + ((index * 7919) % 101) as f64 / 25.0) / n as f64)
        .collect();
    let coupling = if f32_storage {
        Coupling::DenseF32 {
            weights: weights.iter().map(|&w| w as f32).collect(),
        }
    } else {
        Coupling::Dense { weights }
    };
    Ok(Kuramoto::new(
        lorentzian_quantiles(n, 0.0, 0.5),
        coupling,
        uniform_phases(n, 1),
        0.01,
    )?)
}

/// Steps per second: the best of five batches of about 0.2 s.
fn best_rate(network: &mut Kuramoto) -> f64 {
    let mut batch = 1_u32;
    loop {
        let started = Instant::now();
        network.advance(u64::from(batch));
        if started.elapsed() > Duration::from_millis(200) {
            break;
        }
        batch *= 2;
    }
    (0..5)
        .map(|_| {
            let started = Instant::now();
            network.advance(u64::from(batch));
            f64::from(batch) / started.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

/// Streaming read of 256 MiB across all threads, in GB/s (best of 5).
fn read_bandwidth() -> f64 {
    let data = vec![1.0_f64; 32 << 20];
    let mut best = 0.0_f64;
    for _ in 0..5 {
        let started = Instant::now();
        let sum: f64 = data
            .par_chunks(1 << 18)
            .map(|chunk| {
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
        best = best.max((data.len() * 8) as f64 / started.elapsed().as_secs_f64() / 1e9);
    }
    best
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default()
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("rate", String::as_str);
    let n: usize = args.get(2).map_or(Ok(1000), |text| text.parse())?;
    match mode {
        "steps" => {
            let f32_storage = args.get(3).map(String::as_str) == Some("f32");
            let steps: u64 = args.get(4).map_or(Ok(10), |text| text.parse())?;
            let mut network = network(n, f32_storage)?;
            network.advance(steps);
            println!("r = {}", network.order_parameter().r);
        }
        "rate" => {
            let rounds: usize = args.get(3).map_or(Ok(5), |text| text.parse())?;
            print!("loadavg before: {}", loadavg());
            let bandwidth = read_bandwidth();
            println!("read bandwidth {bandwidth:.1} GB/s");
            let mut f64_net = network(n, false)?;
            let mut f32_net = network(n, true)?;
            let (mut f64_rates, mut f32_rates) = (Vec::new(), Vec::new());
            let bytes = 4.0 * (n * n) as f64;
            for round in 0..rounds {
                let a = best_rate(&mut f64_net);
                let b = best_rate(&mut f32_net);
                println!(
                    "round {round}: f64 {a:.1} steps/s ({:.1} GB/s), f32 {b:.1} steps/s ({:.1} GB/s)",
                    a * bytes * 8.0 / 1e9,
                    b * bytes * 4.0 / 1e9
                );
                f64_rates.push(a);
                f32_rates.push(b);
            }
            let (a, b) = (median(f64_rates), median(f32_rates));
            println!(
                "N = {n}: median f64 {a:.1} steps/s = {:.1} GB/s ({:.0} % of the read bandwidth, floor {:.1} steps/s); \
                 f32 {b:.1} steps/s = {:.1} GB/s ({:.0} %, floor {:.1} steps/s)",
                a * bytes * 8.0 / 1e9,
                100.0 * a * bytes * 8.0 / 1e9 / bandwidth,
                bandwidth * 1e9 / (bytes * 8.0),
                b * bytes * 4.0 / 1e9,
                100.0 * b * bytes * 4.0 / 1e9 / bandwidth,
                bandwidth * 1e9 / (bytes * 4.0),
            );
            print!("loadavg after: {}", loadavg());
        }
        other => return Err(format!("unknown mode {other}: rate or steps").into()),
    }
    Ok(())
}
