//! The math-kernel section of `cargo xtask bench`: the criterion medians of the solvers, the
//! NumPy reference's rates for the same algorithms and sizes, and the floors computed from the
//! machine's measured FFT rate and read bandwidth.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use crate::{Error, criterion_median, root, step};

/// The NumPy reference script, relative to the workspace root.
const SCRIPT: &str = "crates/nfcs-math-kernels/reference/numpy_reference.py";

/// Runs the NumPy reference into `out/numpy_math.json`, creating `target/numpy-venv` with
/// NumPy from PyPI on first use. Returns why it was skipped, if it was.
pub(crate) fn run_numpy(target: &Path, out: &Path) -> Option<String> {
    let venv = target.join("numpy-venv");
    let python = venv.join("bin/python");
    if !python.is_file() {
        let created = step(
            "a virtual environment with NumPy for the reference (target/numpy-venv)",
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
        )
        .and_then(|()| {
            step(
                "pip install numpy",
                Command::new(venv.join("bin/pip")).args(["install", "--quiet", "numpy"]),
            )
        });
        if let Err(error) = created {
            return Some(format!("skipped: no NumPy ({error})"));
        }
    }
    let ran = step(
        "the NumPy reference of the same algorithms",
        Command::new(&python)
            .arg(root().join(SCRIPT))
            .args(["--seconds", "1.0", "--out"])
            .arg(out.join("numpy_math.json")),
    );
    ran.err()
        .map(|error| format!("skipped: the NumPy reference failed ({error})"))
}

/// The rows of the table: kernel (criterion group), size, the goal in steps/s if the issue set
/// one, and the NumPy kernel name.
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
    report: &serde_json::Value,
    bandwidth: Option<f64>,
) -> Option<(f64, String)> {
    let n = size as f64;
    match kernel {
        "cgl" => {
            // 8 two-dimensional FFTs a step = 16 passes of n row FFTs of length n.
            let flops = 16.0 * 5.0 * n * n * n.log2();
            let single = report[format!("fft_gflops_1t/{size}")].as_f64()?;
            let all = report[format!("fft_gflops_all/{size}")].as_f64()?;
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

/// The section's table.
pub(crate) fn table(
    criterion_home: &Path,
    out: &Path,
    numpy_skipped: Option<&str>,
) -> Result<String, Error> {
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("math_floor.json"))?)?;
    let numpy: Option<serde_json::Value> = std::fs::read_to_string(out.join("numpy_math.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    let numpy_rate = |kernel: &str, size: usize| {
        numpy.as_ref().and_then(|numpy| {
            numpy["results"].as_array()?.iter().find_map(|row| {
                (row["kernel"].as_str()? == kernel && row["size"].as_u64()? == size as u64)
                    .then(|| row["steps_per_second"].as_f64())
                    .flatten()
            })
        })
    };
    // The better of our streaming probe and BLAS's mat-vec (which prefetches harder).
    let dgemv = numpy
        .as_ref()
        .and_then(|numpy| numpy["dgemv_gb_per_s"].as_f64());
    let probe = report["read_gb_per_s"].as_f64();
    let bandwidth = match (probe, dgemv) {
        (Some(probe), Some(dgemv)) => Some(probe.max(dgemv)),
        (probe, dgemv) => probe.or(dgemv),
    };
    let mut table = String::from(
        "| kernel | size | ours (steps/s) | NumPy (steps/s) | ours / NumPy | floor (steps/s) | of floor | goal | floor from |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for (kernel, size, goal) in ROWS {
        let ours =
            criterion_median(criterion_home, kernel, &size.to_string()).map(|nanos| 1e9 / nanos);
        let theirs = numpy_rate(kernel, size);
        let floor = floor(kernel, size, &report, bandwidth);
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
    let _ = writeln!(
        table,
        "\nMeasured rates: rustfft {} GFlop/s (one thread) and {} GFlop/s (all threads) at n = 64 / 128 / 256 / 512; \
         streaming read {:.1} GB/s on {} threads (our probe) and {} GB/s (OpenBLAS dgemv on a 5000 x 5000 matrix, \
         from the NumPy run); the floors use the better of the two. Rows whose data stay in the cache (under 64 MB \
         per pass) have no memory floor and show n/a.",
        rates(&report, "fft_gflops_1t"),
        rates(&report, "fft_gflops_all"),
        probe.unwrap_or(f64::NAN),
        report["threads"].as_u64().unwrap_or(0),
        dgemv.map_or("n/a".to_owned(), |rate| format!("{rate:.1}")),
    );
    match (numpy_skipped, &numpy) {
        (Some(reason), _) => {
            let _ = writeln!(table, "\nNumPy reference {reason}.");
        }
        (None, Some(numpy)) => {
            let _ = writeln!(
                table,
                "\nNumPy {} (Python {}, BLAS: {}), `{SCRIPT}`, median of batches over 1 s per size.",
                numpy["numpy_version"].as_str().unwrap_or("?"),
                numpy["python_version"].as_str().unwrap_or("?"),
                numpy["blas"]["name"]
                    .as_str()
                    .or(numpy["blas"].as_str())
                    .unwrap_or("?"),
            );
        }
        (None, None) => {}
    }
    Ok(table)
}

fn rates(report: &serde_json::Value, key: &str) -> String {
    [64, 128, 256, 512]
        .iter()
        .map(|n| {
            report[format!("{key}/{n}")]
                .as_f64()
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
