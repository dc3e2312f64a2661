//! `math`: our solvers and the Python peers of the same algorithms, timed interleaved in one
//! process tree (`math_compare.json`: rounds in which every subject takes a turn, with the
//! machine's load read at each round), beside the floors computed from the machine's measured
//! FFT rate and read bandwidth (`math_floor.json`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

use super::{PeerInputs, heading, read_json};
use crate::BenchError;

/// The reference scripts, relative to the workspace root.
const SCRIPT: &str = "crates/nfcs-math-kernels/reference/numpy_reference.py";
const FFTW_SCRIPT: &str = "crates/nfcs-math-kernels/reference/fftw_numba_reference.py";

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

/// `math_compare.json`, written by the `kernels` bench with `NFCS_MATH_COMPARE=1`.
#[derive(Debug, Deserialize)]
struct Compare {
    rounds: u64,
    seconds_per_turn: f64,
    cpus: Option<u64>,
    /// Why no peer ran (the script could not be started), if none did.
    peer_error: Option<String>,
    /// Why xtask could not install pyFFTW and numba, if it could not.
    fftw_skipped: Option<String>,
    /// What the served script said of itself (`null` when it did not run).
    python: Option<Python>,
    dgemv_gb_per_s: Option<f64>,
    rows: Vec<CompareRow>,
}

/// The served script's `info` answer, the part read here.
#[derive(Debug, Deserialize)]
struct Python {
    numpy_version: Option<String>,
    python_version: Option<String>,
    blas: Option<Blas>,
    fftw: Option<Fftw>,
}

/// NumPy's BLAS: `{"name": ..., "version": ...}`, or only its name.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Blas {
    Name(String),
    Info { name: Option<String> },
}

/// Whether the FFTW + numba peer could be imported, and its versions.
#[derive(Debug, Deserialize)]
struct Fftw {
    available: bool,
    reason: Option<String>,
    pyfftw_version: Option<String>,
    numba_version: Option<String>,
    threads_all: Option<u64>,
}

/// One kernel and size: its rounds, and why a peer was left out.
#[derive(Debug, Deserialize)]
struct CompareRow {
    kernel: String,
    size: u64,
    rounds: Vec<Round>,
    #[serde(default)]
    errors: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Round {
    load: Load,
    /// Steps/s by subject (`ours`, `numpy`, `fftw_1t`, `fftw_all`, ...).
    rates: BTreeMap<String, f64>,
}

/// `/proc/loadavg` at the start of a round.
#[derive(Debug, Deserialize)]
struct Load {
    load1: Option<f64>,
    running: Option<u64>,
}

impl CompareRow {
    /// The median over rounds of `subject`'s rate.
    fn median(&self, subject: &str) -> Option<f64> {
        median(
            self.rounds
                .iter()
                .filter_map(|round| round.rates.get(subject).copied())
                .collect(),
        )
    }

    /// `ours / subject` within each round: median, min and max.
    fn ratio(&self, subject: &str) -> Option<(f64, f64, f64)> {
        let ratios: Vec<f64> = self
            .rounds
            .iter()
            .filter_map(|round| Some(round.rates.get("ours")? / round.rates.get(subject)?))
            .collect();
        let low = ratios.iter().copied().reduce(f64::min)?;
        let high = ratios.iter().copied().reduce(f64::max)?;
        Some((median(ratios)?, low, high))
    }

    /// The load over the row's rounds: the range of the 1-minute average and the most tasks
    /// running at a round's start, `2.1-2.4 (3 run.)`.
    fn load(&self) -> String {
        let loads: Vec<f64> = self.rounds.iter().filter_map(|r| r.load.load1).collect();
        let running = self.rounds.iter().filter_map(|r| r.load.running).max();
        let range = match (
            loads.iter().copied().reduce(f64::min),
            loads.iter().copied().reduce(f64::max),
        ) {
            (Some(low), Some(high)) if (high - low).abs() < 0.05 => format!("{low:.1}"),
            (Some(low), Some(high)) => format!("{low:.1}-{high:.1}"),
            _ => "n/a".to_owned(),
        };
        match running {
            Some(running) => format!("{range} ({running} run.)"),
            None => range,
        }
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[middle]
    } else {
        0.5 * (values[middle - 1] + values[middle])
    })
}

/// `3.1x (2.9-3.3)`: the median of the per-round ratios and their range.
fn ratio_cell(ratio: Option<(f64, f64, f64)>) -> String {
    match ratio {
        Some((mid, low, high)) => format!("{mid:.2}x ({low:.2}-{high:.2})"),
        None => "n/a".to_owned(),
    }
}

/// The f64 rows: kernel, size, and the goal in steps/s if the issue set one.
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
    ("kuramoto_dense", 5_000, None),
];

/// The CGL goal against the stronger FFTW + numba variant, as a ratio.
const CGL_FFTW_GOAL: f64 = 1.2;

/// The dense Kuramoto goal at N = 5000, as a share of the bandwidth floor.
const DENSE_FLOOR_GOAL: f64 = 0.8;

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

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "not met" }
}

pub(super) fn section(inputs: &PeerInputs) -> Result<String, BenchError> {
    let floors: Floors = read_json(&inputs.bench_out.join("math_floor.json"))?;
    let compare: Compare = read_json(&inputs.bench_out.join("math_compare.json"))?;
    let row = |kernel: &str, size: usize| {
        compare
            .rows
            .iter()
            .find(|row| row.kernel == kernel && row.size == size as u64)
    };
    // The better of our streaming probe and BLAS's mat-vec (which prefetches harder).
    let dgemv = compare.dgemv_gb_per_s;
    let probe = floors.read_gb_per_s;
    let bandwidth = match (probe, dgemv) {
        (Some(probe), Some(dgemv)) => Some(probe.max(dgemv)),
        (probe, dgemv) => probe.or(dgemv),
    };
    let rate = |value: Option<f64>| value.map_or("n/a".to_owned(), format_rate);
    let of_floor = |ours: Option<f64>, floor: &Option<(f64, String)>| match (ours, floor) {
        (Some(ours), Some((floor, _))) => format!("{:.0} %", 100.0 * ours / floor),
        _ => "n/a".to_owned(),
    };
    let threads_all = compare
        .python
        .as_ref()
        .and_then(|python| python.fftw.as_ref())
        .and_then(|fftw| fftw.threads_all)
        .or(compare.cpus);
    let all_label = threads_all.map_or("all threads".to_owned(), |n| format!("{n} threads"));

    let mut table = format!(
        "| cgl | ours (steps/s) | NumPy | ours / NumPy | FFTW+numba 1 thread | ours / it | \
         FFTW+numba {all_label} | ours / it | floor (steps/s) | of floor | goal | load | floor from |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    for (kernel, size, goal) in ROWS.iter().filter(|(kernel, ..)| *kernel == "cgl") {
        let found = row(kernel, *size);
        let ours = found.and_then(|row| row.median("ours"));
        let floor = floor(kernel, *size, &floors, bandwidth);
        let ratio = |subject: &str| found.and_then(|row| row.ratio(subject));
        // The goal is against the stronger of the two FFTW variants in each round's terms.
        let against_fftw = [ratio("fftw_1t"), ratio("fftw_all")]
            .into_iter()
            .flatten()
            .map(|(mid, ..)| mid)
            .reduce(f64::min);
        let mut goals = Vec::new();
        if let (Some(goal), Some(ours)) = (goal, ours) {
            goals.push(format!("{} ({})", format_rate(*goal), met(ours >= *goal)));
        }
        if let Some(against) = against_fftw {
            goals.push(format!(
                "{CGL_FFTW_GOAL}x FFTW ({})",
                met(against >= CGL_FFTW_GOAL)
            ));
        }
        let _ = writeln!(
            table,
            "| {size}^2 | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            rate(ours),
            rate(found.and_then(|row| row.median("numpy"))),
            ratio_cell(ratio("numpy")),
            rate(found.and_then(|row| row.median("fftw_1t"))),
            ratio_cell(ratio("fftw_1t")),
            rate(found.and_then(|row| row.median("fftw_all"))),
            ratio_cell(ratio("fftw_all")),
            rate(floor.as_ref().map(|(floor, _)| *floor)),
            of_floor(ours, &floor),
            goals.join(", "),
            found.map_or("n/a".to_owned(), CompareRow::load),
            floor.as_ref().map_or("", |(_, basis)| basis.as_str()),
        );
    }

    table.push_str(
        "\n| kernel | size | ours (steps/s) | NumPy (steps/s) | ours / NumPy | floor (steps/s) | \
         of floor | goal | load | floor from |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (kernel, size, goal) in ROWS.iter().filter(|(kernel, ..)| *kernel != "cgl") {
        let found = row(kernel, *size);
        let ours = found.and_then(|row| row.median("ours"));
        let numpy = found.and_then(|row| row.ratio("numpy"));
        let floor = floor(kernel, *size, &floors, bandwidth);
        let mut goals = Vec::new();
        if let (Some(goal), Some(ours)) = (goal, ours) {
            goals.push(format!("{} ({})", format_rate(*goal), met(ours >= *goal)));
        }
        if *kernel == "kuramoto_dense" {
            if let Some((mid, ..)) = numpy {
                goals.push(format!("> NumPy ({})", met(mid > 1.0)));
            }
            if let (Some(ours), Some((floor, _)), true) = (ours, &floor, *size == 5_000) {
                goals.push(format!(
                    "{:.0} % of floor ({})",
                    100.0 * DENSE_FLOOR_GOAL,
                    met(ours >= DENSE_FLOOR_GOAL * floor)
                ));
            }
        }
        let size_label = format!("N = {size}");
        let _ = writeln!(
            table,
            "| {kernel} | {size_label} | {} | {} | {} | {} | {} | {} | {} | {} |",
            rate(ours),
            rate(found.and_then(|row| row.median("numpy"))),
            ratio_cell(numpy),
            rate(floor.as_ref().map(|(floor, _)| *floor)),
            of_floor(ours, &floor),
            goals.join(", "),
            found.map_or("n/a".to_owned(), CompareRow::load),
            floor.as_ref().map_or("", |(_, basis)| basis.as_str()),
        );
    }

    // Rows of other kernels (f32 or batched variants of our solvers): listed apart from the
    // f64 rows above, with whichever peers ran beside them.
    let variants: Vec<&CompareRow> = compare
        .rows
        .iter()
        .filter(|row| !ROWS.iter().any(|(kernel, ..)| *kernel == row.kernel))
        .collect();
    if !variants.is_empty() {
        table.push_str(
            "\nOther variants of our solvers, in the same rounds (`cgl_batch<k>`: k runs stepped \
             together by `CglBatch`, ours counted in field-steps/s, the peers stepping one field; \
             `kuramoto_dense_f32`: our f32 coupling matrix against NumPy's f64 one):\n\n\
             | kernel | size | ours (steps/s) | NumPy | ours / NumPy | FFTW+numba 1 thread | \
             ours / it | FFTW+numba all | ours / it | load |\n\
             |---|---|---|---|---|---|---|---|---|---|\n",
        );
        for row in variants {
            let _ = writeln!(
                table,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                row.kernel,
                row.size,
                rate(row.median("ours")),
                rate(row.median("numpy")),
                ratio_cell(row.ratio("numpy")),
                rate(row.median("fftw_1t")),
                ratio_cell(row.ratio("fftw_1t")),
                rate(row.median("fftw_all")),
                ratio_cell(row.ratio("fftw_all")),
                row.load(),
            );
        }
    }

    let _ = writeln!(
        table,
        "\nInterleaved: for each row every subject is set up and warmed up outside the clock, then \
         the subjects take turns for {} rounds (the order rotating each round), each timed over \
         {} s; rates are medians over rounds, ratios `ours / peer` are the median of the \
         per-round ratios with their range in brackets. The CGL goal of {CGL_FFTW_GOAL}x is \
         against the faster FFTW+numba variant. Load: `/proc/loadavg` 1-minute average at the \
         rounds' starts (range) and the most tasks running then, on {} CPUs: a load above the \
         CPU count means other work shared the machine during the row.",
        compare.rounds,
        compare.seconds_per_turn,
        compare.cpus.map_or("?".to_owned(), |cpus| cpus.to_string()),
    );
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
    let python = compare.python.as_ref();
    match (&inputs.skipped, &compare.peer_error, python) {
        (Some(reason), ..) => {
            let _ = writeln!(table, "\nNumPy reference {reason}.");
        }
        (None, Some(error), _) => {
            let _ = writeln!(table, "\nNumPy reference skipped: {error}.");
        }
        (None, None, Some(python)) => {
            let blas = match &python.blas {
                Some(Blas::Name(name) | Blas::Info { name: Some(name) }) => name.as_str(),
                _ => "?",
            };
            let _ = writeln!(
                table,
                "\nNumPy {} (Python {}, BLAS: {blas}), `{SCRIPT}`.",
                python.numpy_version.as_deref().unwrap_or("?"),
                python.python_version.as_deref().unwrap_or("?"),
            );
        }
        (None, None, None) => {}
    }
    let fftw = python.and_then(|python| python.fftw.as_ref());
    if inputs.skipped.is_none() && compare.peer_error.is_none() {
        match (&compare.fftw_skipped, fftw) {
            (Some(reason), _) => {
                let _ = writeln!(table, "\nFFTW+numba peer skipped: {reason}.");
            }
            (None, Some(fftw)) if fftw.available => {
                let _ = writeln!(
                    table,
                    "\nFFTW+numba: `{FFTW_SCRIPT}`, pyFFTW {} (FFTW objects planned once with \
                     FFTW_MEASURE on aligned arrays) and numba {} (`@njit(fastmath=False)` \
                     pointwise loops; `parallel=True` on all threads), the same ETDRK4 \
                     coefficients and 8 FFTs a step as NumPy.",
                    fftw.pyfftw_version.as_deref().unwrap_or("?"),
                    fftw.numba_version.as_deref().unwrap_or("?"),
                );
            }
            (None, Some(fftw)) => {
                let _ = writeln!(
                    table,
                    "\nFFTW+numba peer skipped: {}.",
                    fftw.reason.as_deref().unwrap_or("not importable")
                );
            }
            (None, None) => {}
        }
    }
    for row in &compare.rows {
        for (subject, error) in &row.errors {
            let _ = writeln!(
                table,
                "\n{} {}: {subject} left out: {error}.",
                row.kernel, row.size
            );
        }
    }
    Ok(heading(
        "`cargo xtask compare --only math` (release; ours and the Python peers interleaved in \
         rounds in one run, with the floor measurements)",
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
