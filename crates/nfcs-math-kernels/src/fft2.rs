//! Two-dimensional FFTs of an n x n complex field, by rows and a transpose, and the row sweeps
//! the CGL solver fuses its pointwise work into.
//!
//! The physical field is stored row-major, `field[y * n + x]`. A forward transform runs the
//! row FFTs, transposes, and runs the row FFTs again, so the spectrum comes out transposed,
//! `spectrum[kx * n + ky]`; the inverse undoes exactly that. Keeping the spectrum transposed
//! saves a transpose in each direction, and the solver's per-mode coefficients are laid out
//! the same way.
//!
//! Rows are processed in blocks of about 4,096 points (64 KiB), small enough that an FFT and
//! the pointwise work that follows it find the block in cache. On grids of at least
//! [`PARALLEL_POINTS`] points the blocks are split across threads with rayon. Plans, scratch
//! space and blocks are built once.

use std::ops::Range;
use std::sync::Arc;

use num_complex::Complex64;
use rayon::prelude::*;
use rustfft::{Fft, FftPlanner};

/// From this many points per field on, sweeps run their blocks across threads (below it
/// rayon's hand-offs cost more than they save; measured on the 2-core machine, see
/// `docs/benchmarks.md`).
pub(crate) const PARALLEL_POINTS: usize = 128 * 128;
/// Points per block of rows.
const BLOCK_POINTS: usize = 4096;

/// Row FFTs with their own scratch space: one per block, so blocks can run on any thread.
/// Cloning shares the plans (and their twiddles) and copies the scratch space.
#[derive(Clone)]
pub(crate) struct RowFft {
    forward: Arc<dyn Fft<f64>>,
    inverse: Arc<dyn Fft<f64>>,
    scratch: Vec<Complex64>,
}

impl RowFft {
    /// The forward FFT of every row of `rows`, in place.
    pub(crate) fn forward(&mut self, rows: &mut [Complex64]) {
        self.forward.process_with_scratch(rows, &mut self.scratch);
    }

    /// The unnormalised inverse FFT of every row of `rows`, in place.
    pub(crate) fn inverse(&mut self, rows: &mut [Complex64]) {
        self.inverse.process_with_scratch(rows, &mut self.scratch);
    }
}

/// A block of rows of two arrays and the block's FFTs.
type BlockPair<'a> = ((&'a mut [Complex64], &'a mut [Complex64]), &'a mut RowFft);

/// Cloning shares the plans and gives the clone its own scratch space.
#[derive(Clone)]
pub(crate) struct Fft2 {
    n: usize,
    /// Points per block (a whole number of rows).
    block: usize,
    blocks: Vec<RowFft>,
    parallel: bool,
}

impl Fft2 {
    /// Plans for `n x n` fields; sweeps run across threads from [`PARALLEL_POINTS`] on.
    pub(crate) fn new(n: usize) -> Fft2 {
        Fft2::with_threads(n, n * n >= PARALLEL_POINTS)
    }

    /// Plans for `n x n` fields whose sweeps run across threads if `parallel` (and there is
    /// more than one block).
    pub(crate) fn with_threads(n: usize, parallel: bool) -> Fft2 {
        let mut planner = FftPlanner::new();
        let forward = planner.plan_fft_forward(n);
        let inverse = planner.plan_fft_inverse(n);
        let mut rows_per_block = (BLOCK_POINTS / n).clamp(1, n);
        if parallel {
            // At least two blocks per thread, so the threads can balance.
            let threads = rayon::current_num_threads().max(1);
            rows_per_block = rows_per_block.min((n / (2 * threads)).max(1));
        }
        let count = n.div_ceil(rows_per_block);
        let scratch_len = forward
            .get_inplace_scratch_len()
            .max(inverse.get_inplace_scratch_len());
        Fft2 {
            n,
            block: rows_per_block * n,
            blocks: (0..count)
                .map(|_| RowFft {
                    forward: Arc::clone(&forward),
                    inverse: Arc::clone(&inverse),
                    scratch: vec![Complex64::default(); scratch_len],
                })
                .collect(),
            parallel: parallel && count > 1,
        }
    }

    /// Runs `body(range, rows, fft)` on every block of rows of `data` (`range` is the block's
    /// place in `data`) and combines what the blocks return: the maximum of the first values,
    /// the sum of the second. With a `source`, each block is first filled with its rows of the
    /// transpose of `source` (so the transpose happens block by block, in cache).
    pub(crate) fn sweep(
        &mut self,
        source: Option<&[Complex64]>,
        data: &mut [Complex64],
        body: impl Fn(Range<usize>, &mut [Complex64], &mut RowFft) -> [f64; 2] + Sync,
    ) -> [f64; 2] {
        let (n, block) = (self.n, self.block);
        let run = |(index, (rows, fft)): (usize, (&mut [Complex64], &mut RowFft))| {
            let start = index * block;
            if let Some(source) = source {
                transpose_band(source, rows, n, start / n);
            }
            body(start..start + rows.len(), rows, fft)
        };
        let combine = |a: [f64; 2], b: [f64; 2]| [max_keeping_nan(a[0], b[0]), a[1] + b[1]];
        if self.parallel {
            data.par_chunks_mut(block)
                .zip(self.blocks.par_iter_mut())
                .enumerate()
                .map(run)
                .reduce(|| [0.0; 2], combine)
        } else {
            data.chunks_mut(block)
                .zip(self.blocks.iter_mut())
                .enumerate()
                .map(run)
                .fold([0.0; 2], combine)
        }
    }

    /// Runs `body(range, rows, other_rows, fft)` on every block of rows of `data` and the
    /// same rows of `other`, each block of `data` first filled with its rows of the transpose
    /// of `source`.
    pub(crate) fn sweep2(
        &mut self,
        source: &[Complex64],
        data: &mut [Complex64],
        other: &mut [Complex64],
        body: impl Fn(Range<usize>, &mut [Complex64], &mut [Complex64], &mut RowFft) + Sync,
    ) {
        let (n, block) = (self.n, self.block);
        let run = |(index, ((rows, other), fft)): (usize, BlockPair<'_>)| {
            let start = index * block;
            transpose_band(source, rows, n, start / n);
            body(start..start + rows.len(), rows, other, fft);
        };
        if self.parallel {
            data.par_chunks_mut(block)
                .zip(other.par_chunks_mut(block))
                .zip(self.blocks.par_iter_mut())
                .enumerate()
                .for_each(run);
        } else {
            data.chunks_mut(block)
                .zip(other.chunks_mut(block))
                .zip(self.blocks.iter_mut())
                .enumerate()
                .for_each(run);
        }
    }

    /// Physical `input` (clobbered) to the transposed spectrum in `out`.
    pub(crate) fn forward(&mut self, input: &mut [Complex64], out: &mut [Complex64]) {
        self.sweep(None, input, |_, rows, fft| {
            fft.forward(rows);
            [0.0; 2]
        });
        self.sweep(Some(input), out, |_, rows, fft| {
            fft.forward(rows);
            [0.0; 2]
        });
    }

    /// Transposed spectrum `input` (clobbered) to the physical field in `out`, unnormalised
    /// (multiply by 1 / n^2 to invert [`forward`](Fft2::forward)).
    pub(crate) fn inverse(&mut self, input: &mut [Complex64], out: &mut [Complex64]) {
        self.sweep(None, input, |_, rows, fft| {
            fft.inverse(rows);
            [0.0; 2]
        });
        self.sweep(Some(input), out, |_, rows, fft| {
            fft.inverse(rows);
            [0.0; 2]
        });
    }
}

/// The larger of two values, or NaN if either is NaN (`f64::max` would drop it).
fn max_keeping_nan(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

crate::simd::dispatch! {
    /// Rows `first_row..` of the transpose of `input` into `rows` (whole rows). Eight rows of
    /// `input` at a time are read in step, each from column `first_row` on, and each output
    /// row receives their eight values as one contiguous run: the reads are eight sequential
    /// streams and every write is two whole 64-byte lines (then four rows at a time, then
    /// one, for the last rows). Eight instead of four: 1.19x CGL steps/s at 64^2 and 128^2,
    /// 1.07x at 256^2 (`examples/step_rate.rs`, alternated). The loops run over zipped
    /// slices, so they carry no bounds checks.
    fn transpose_band(input: &[Complex64], rows: &mut [Complex64], n: usize, first_row: usize) -> () {
        let height = rows.len() / n;
        let run = |i: usize| &input[i * n + first_row..i * n + first_row + height];
        let mut i = 0;
        while i + 8 <= n {
            let sources = run(i)
                .iter()
                .zip(run(i + 1))
                .zip(run(i + 2))
                .zip(run(i + 3))
                .zip(run(i + 4).iter().zip(run(i + 5)).zip(run(i + 6)).zip(run(i + 7)));
            for (out_row, ((((a, b), c), d), (((e, f), g), h))) in rows.chunks_exact_mut(n).zip(sources) {
                if let Some(out) = out_row.get_mut(i..i + 8) {
                    out.copy_from_slice(&[*a, *b, *c, *d, *e, *f, *g, *h]);
                }
            }
            i += 8;
        }
        while i + 4 <= n {
            let sources = run(i).iter().zip(run(i + 1)).zip(run(i + 2)).zip(run(i + 3));
            for (out_row, (((a, b), c), d)) in rows.chunks_exact_mut(n).zip(sources) {
                if let Some(out) = out_row.get_mut(i..i + 4) {
                    out.copy_from_slice(&[*a, *b, *c, *d]);
                }
            }
            i += 4;
        }
        for i in i..n {
            for (out_row, value) in rows.chunks_exact_mut(n).zip(run(i)) {
                out_row[i] = *value;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 2-D DFT by its definition, for checking.
    fn naive(field: &[Complex64], n: usize) -> Vec<Complex64> {
        let mut out = vec![Complex64::default(); n * n];
        for kx in 0..n {
            for ky in 0..n {
                let mut sum = Complex64::default();
                for y in 0..n {
                    for x in 0..n {
                        let angle =
                            -2.0 * std::f64::consts::PI * ((kx * x + ky * y) as f64) / n as f64;
                        sum += field[y * n + x] * Complex64::from_polar(1.0, angle);
                    }
                }
                out[kx * n + ky] = sum;
            }
        }
        out
    }

    #[test]
    fn forward_matches_the_definition_and_inverse_undoes_it() {
        // 6 and 16: one block; 70: several blocks, serial; 160: several blocks, parallel.
        for n in [6, 16, 70, 160] {
            let field: Vec<Complex64> = (0..n * n)
                .map(|i| Complex64::new((i as f64 * 0.37).sin(), (i as f64 * 0.11).cos()))
                .collect();
            let mut fft = Fft2::new(n);
            assert_eq!(fft.parallel, n >= 128);
            let mut input = field.clone();
            let mut spectrum = vec![Complex64::default(); n * n];
            fft.forward(&mut input, &mut spectrum);
            if n <= 16 {
                let expected = naive(&field, n);
                for (got, want) in spectrum.iter().zip(&expected) {
                    assert!((got - want).norm() < 1e-9 * (n * n) as f64, "n = {n}");
                }
            }
            let mut back = vec![Complex64::default(); n * n];
            fft.inverse(&mut spectrum, &mut back);
            for (got, want) in back.iter().zip(&field) {
                assert!((got / (n * n) as f64 - want).norm() < 1e-12, "n = {n}");
            }
        }
    }

    #[test]
    fn sweeps_find_the_largest_value_and_keep_a_nan() {
        let mut fft = Fft2::new(160);
        let mut data = vec![Complex64::new(1.0, 0.0); 160 * 160];
        data[12_345] = Complex64::new(7.0, 0.0);
        let found = fft.sweep(None, &mut data, |_, rows, _| {
            let largest = rows.iter().map(|v| v.re).fold(0.0, f64::max);
            [largest, rows.len() as f64]
        });
        assert_eq!(found, [7.0, (160 * 160) as f64]);
        data[99] = Complex64::new(f64::NAN, 0.0);
        // The block holding the NaN reports it; the combination across blocks must keep it.
        let found = fft.sweep(None, &mut data, |_, rows, _| {
            [rows.iter().map(|v| v.re).fold(0.0, max_keeping_nan), 0.0]
        });
        assert!(found[0].is_nan());
    }
}
