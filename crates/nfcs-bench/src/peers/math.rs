//! `math`: the criterion medians of the solvers, the NumPy reference's rates for the same
//! algorithms and sizes, and the floors computed from the machine's measured FFT rate and
//! read bandwidth.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

use super::{Criterion, PeerInputs, heading, read_json};
use crate::BenchError;

/// The NumPy reference script, relative to the workspace root.
const SCRIPT: &str = "crates/nfcs-math-kernels/reference/numpy_reference.py";

/// `math_floor.json`: `fft_gflops_1t/<n>` and `fft_gflops_all/<n>` (GFlop/s),
/// `read_gb_per_s` (GB/s) and `threads`.
#[derive(Debug, Deserialize)]
struct Floors {
    read_gb_per_s: Option<f64>,
    threads: Option<u64>,
    /// The FFT rates, by key.
    #[serde(flatten)]
    rates: BTreeMap<String, Option<f64>>,
}

impl Floors {
    fn rate(&self, key: &str, size: usize) -> Option<f64> {
        self.rates.get(&format!("{key}/{size}")).copied().flatten()
    }
}

/// `numpy_math.json`, the part read here.
#[derive(Debug, Deserialize)]
struct Numpy {
    numpy_version: Option<String>,
    python_version: Option<String>,
    blas: Option<Blas>,
    results: Vec<NumpyRow>,
    dgemv_gb_per_s: Option<f64>,
}

/// NumPy's BLAS: `{"name": ..., "version": ...}`, or only its name.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Blas {
    Name(String),
    Info { name: Option<String> },
}

#[derive(Debug, Deserialize)]
struct NumpyRow {
    kernel: String,
    size: u64,
    steps_per_second: Option<f64>,
}

/// The rows of the table: kernel (criterion group), size, and the goal in steps/s if the
/// issue set one.
const ROWS: [(&str, usize, Option<f64>); 11] = [
    ("cgl", 64, Some(8000.0)),
    ("cgl", 128, Some(1600.0)),
    ("cgl", 256, Some(360.0)),
    ("cgl", 512, None),
    ("kuramoto_mean_field", 50, None),
    ("kuramoto_mean_field", 1_000, None),
    ("kuramoto_mean_field", 100_000, None),
    ("kuramoto_mean_field", 1_000_000, Some(100.0)),
    ("kuramoto_dense", 50, None),
    ("kuramoto_dense", 1_000, None),
    ("kuramoto_dense", 5_000, Some(20.0)),
];

/// Data smaller than this stays in the last-level cache between passes (300 MiB of L3 on the
/// machine of record, shared), so streaming from memory is no floor for it: those rows get none.
const CACHE_RESIDENT_BYTES: f64 = 64e6;

/// The floor of one row in steps/s and what it is made of. `bandwidth` is the best streaming
/// read rate measured in the run, in GB/s.
fn floor(
    kernel: &str,
    size: usize,
    floors: &Floors,
    bandwidth: Option<f64>,
) -> Option<(f64, String)> {
    let n = size as f64;
    match kernel {
        "cgl" => {
            // 8 two-dimensional FFTs a step = 16 passes of n row FFTs of length n.
            let flops = 16.0 * 5.0 * n * n * n.log2();
            let single = floors.rate("fft_gflops_1t", size)?;
            let all = floors.rate("fft_gflops_all", size)?;
            let rate = single.max(all);
            Some((
                rate * 1e9 / flops,
                format!("{:.1} MFlop of FFTs at {rate:.1} GFlop/s", flops / 1e6),
            ))
        }
        "kuramoto_mean_field" => {
            // Three passes reading z and E2 (32 bytes), one writing z (16 bytes).
            let bytes = 112.0 * n;
            let bandwidth = bandwidth?;
            if 32.0 * n < CACHE_RESIDENT_BYTES {
                return None;
            }
            Some((
                bandwidth * 1e9 / bytes,
                format!("{:.1} MB at {bandwidth:.1} GB/s", bytes / 1e6),
            ))
        }
        _ => {
            // The matrix streamed once per RK4 stage.
            let bytes = 4.0 * 8.0 * n * n;
            let bandwidth = bandwidth?;
            if 8.0 * n * n < CACHE_RESIDENT_BYTES {
                return None;
            }
            Some((
                bandwidth * 1e9 / bytes,
                format!("{:.1} MB at {bandwidth:.1} GB/s", bytes / 1e6),
            ))
        }
    }
}

pub(super) fn section(inputs: &PeerInputs) -> Result<String, BenchError> {
    let floors: Floors = read_json(&inputs.bench_out.join("math_floor.json"))?;
    // Skipped: its file is not read (it would be an earlier run's).
    let numpy: Option<Numpy> = match &inputs.skipped {
        Some(_) => None,
        None => Some(read_json(&inputs.bench_out.join("numpy_math.json"))?),
    };
    let numpy_rate = |kernel: &str, size: usize| {
        numpy.as_ref().and_then(|numpy| {
            numpy
                .results
                .iter()
                .find(|row| row.kernel == kernel && row.size == size as u64)
                .and_then(|row| row.steps_per_second)
        })
    };
    // The better of our streaming probe and BLAS's mat-vec (which prefetches harder).
    let dgemv = numpy.as_ref().and_then(|numpy| numpy.dgemv_gb_per_s);
    let probe = floors.read_gb_per_s;
    let bandwidth = match (probe, dgemv) {
        (Some(probe), Some(dgemv)) => Some(probe.max(dgemv)),
        (probe, dgemv) => probe.or(dgemv),
    };
    let criterion = Criterion::new(&inputs.criterion_home);
    let mut table = String::from(
        "| kernel | size | ours (steps/s) | NumPy (steps/s) | ours / NumPy | floor (steps/s) | of floor | goal | floor from |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for (kernel, size, goal) in ROWS {
        let ours = criterion
            .median(kernel, &size.to_string())?
            .map(|nanos| 1e9 / nanos);
        let theirs = numpy_rate(kernel, size);
        let floor = floor(kernel, size, &floors, bandwidth);
        let rate = |value: Option<f64>| value.map_or("n/a".to_owned(), format_rate);
        let ratio = match (ours, theirs) {
            (Some(ours), Some(theirs)) => format!("{:.1}x", ours / theirs),
            _ => "n/a".to_owned(),
        };
        let of_floor = match (ours, &floor) {
            (Some(ours), Some((floor, _))) => format!("{:.0} %", 100.0 * ours / floor),
            _ => "n/a".to_owned(),
        };
        let goal = match (goal, ours) {
            (Some(goal), Some(ours)) => {
                format!(
                    "{} ({})",
                    format_rate(goal),
                    if ours >= goal { "met" } else { "not met" }
                )
            }
            _ => String::new(),
        };
        let size_label = if kernel == "cgl" {
            format!("{size}^2")
        } else {
            format!("N = {size}")
        };
        let _ = writeln!(
            table,
            "| {kernel} | {size_label} | {} | {} | {ratio} | {} | {of_floor} | {goal} | {} |",
            rate(ours),
            rate(theirs),
            rate(floor.as_ref().map(|(floor, _)| *floor)),
            floor.map_or(String::new(), |(_, basis)| basis),
        );
    }
    criterion.require_any()?;
    let _ = writeln!(
        table,
        "\nMeasured rates: rustfft {} GFlop/s (one thread) and {} GFlop/s (all threads) at n = 64 / 128 / 256 / 512; \
         streaming read {:.1} GB/s on {} threads (our probe) and {} GB/s (OpenBLAS dgemv on a 5000 x 5000 matrix, \
         from the NumPy run); the floors use the better of the two. Rows whose data stay in the cache (under 64 MB \
         per pass) have no memory floor and show n/a.",
        rates(&floors, "fft_gflops_1t"),
        rates(&floors, "fft_gflops_all"),
        probe.unwrap_or(f64::NAN),
        floors.threads.unwrap_or(0),
        dgemv.map_or("n/a".to_owned(), |rate| format!("{rate:.1}")),
    );
    match (&inputs.skipped, &numpy) {
        (Some(reason), _) => {
            let _ = writeln!(table, "\nNumPy reference {reason}.");
        }
        (None, Some(numpy)) => {
            let blas = match &numpy.blas {
                Some(Blas::Name(name) | Blas::Info { name: Some(name) }) => name.as_str(),
                _ => "?",
            };
            let _ = writeln!(
                table,
                "\nNumPy {} (Python {}, BLAS: {blas}), `{SCRIPT}`, median of batches over 1 s per size.",
                numpy.numpy_version.as_deref().unwrap_or("?"),
                numpy.python_version.as_deref().unwrap_or("?"),
            );
        }
        (None, None) => {}
    }
    Ok(heading(
        "`cargo xtask compare` (criterion, release; medians of 20 samples over 2 s; the \
         NumPy reference and the floor measurements in the same run)",
        &inputs.machine,
    ) + &table)
}

fn rates(floors: &Floors, key: &str) -> String {
    [64, 128, 256, 512]
        .iter()
        .map(|n| {
            floors
                .rate(key, *n)
                .map_or("n/a".to_owned(), |rate| format!("{rate:.1}"))
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

fn format_rate(rate: f64) -> String {
    if rate >= 10_000.0 {
        format!("{:.1} k", rate / 1e3)
    } else if rate >= 100.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate:.1}")
    }
}
