//! The coupling field `F_i = sum_j K_ij y_j` of a dense matrix, eight rows at a time.
//!
//! The product streams the matrix once per RK4 stage, so at large `N` its speed is the memory
//! bandwidth. The matrix is stored packed in groups of [`ROWS`] rows, column by column: entry
//! `(r, j)` of group `g` (matrix row `ROWS g + r`) lies at `g ROWS N + ROWS j + r`, and the last
//! group is padded with zero rows. One load then gives eight rows' weights of a column, each
//! multiplied by the one broadcast `y_j`: every load of `y` serves eight rows, and the column
//! sums run in [`LANES`] independent lanes so the adds' latency does not limit the loop. The
//! real and imaginary sums are taken in two passes over each chunk of [`CHUNK`] columns, the
//! second finding the chunk in L1 (one pass computing both is paired up by the compiler into
//! shuffled half-width vectors). The matrix may be stored in `f64` or `f32`; the products and
//! sums are `f64` either way (an `f32` weight converts to `f64` exactly).
//!
//! Row `i`'s sum is the same for every instruction set: lane `l` adds the columns `j = l mod
//! LANES` of the whole lane blocks in order, the last `N mod LANES` columns go in order into a
//! sum of their own, and the lanes, then that sum, are added in a fixed order, so the baseline,
//! AVX2 and AVX-512 versions give the same bits.

use num_complex::Complex64;

/// Rows per group.
pub(super) const ROWS: usize = 8;

/// Columns in independent partial sums.
const LANES: usize = 4;

/// Columns per chunk (a multiple of [`LANES`]): eight rows of them, 4 KiB in `f64`, stay in L1
/// between the real and the imaginary pass.
const CHUNK: usize = 64;

/// The packed form of the row-major `n x n` matrix `weights` (see the module notes).
pub(super) fn pack<T: Copy + Default>(weights: &[T], n: usize) -> Vec<T> {
    let groups = n.div_ceil(ROWS);
    let mut packed = vec![T::default(); groups * ROWS * n];
    for (g, group) in packed.chunks_exact_mut(ROWS * n).enumerate() {
        for r in 0..ROWS {
            let i = g * ROWS + r;
            if i < n {
                for (j, &w) in weights[i * n..(i + 1) * n].iter().enumerate() {
                    group[j * ROWS + r] = w;
                }
            }
        }
    }
    packed
}

/// Fields of rows `first..first + fields.len()` (`first` a multiple of [`ROWS`]) of the
/// packed `f64` matrix of `n` rows.
pub(super) fn fields_f64(
    packed: &[f64],
    n: usize,
    first: usize,
    y_re: &[f64],
    y_im: &[f64],
    fields: &mut [Complex64],
) {
    for (g, out) in fields.chunks_mut(ROWS).enumerate() {
        let group = first / ROWS + g;
        let sums = group_f64(
            &packed[group * ROWS * n..(group + 1) * ROWS * n],
            y_re,
            y_im,
        );
        out.copy_from_slice(&sums[..out.len()]);
    }
}

/// [`fields_f64`] for a matrix stored in `f32`.
pub(super) fn fields_f32(
    packed: &[f32],
    n: usize,
    first: usize,
    y_re: &[f64],
    y_im: &[f64],
    fields: &mut [Complex64],
) {
    let mut buffer = [[[0.0; ROWS]; LANES]; CHUNK / LANES];
    for (g, out) in fields.chunks_mut(ROWS).enumerate() {
        let group = first / ROWS + g;
        let sums = group_f32(
            &packed[group * ROWS * n..(group + 1) * ROWS * n],
            y_re,
            y_im,
            &mut buffer,
        );
        out.copy_from_slice(&sums[..out.len()]);
    }
}

crate::simd::dispatch! {
    /// The eight fields of one packed `f64` group.
    fn group_f64(group: &[f64], y_re: &[f64], y_im: &[f64]) -> [Complex64; ROWS] {
        group_fields(group, y_re, y_im, &mut [])
    }
}

crate::simd::dispatch! {
    /// The eight fields of one packed `f32` group, in `f64`, converting each chunk into
    /// `buffer` (`CHUNK / LANES` blocks).
    fn group_f32(group: &[f32], y_re: &[f64], y_im: &[f64], buffer: &mut [Block<f64>]) -> [Complex64; ROWS] {
        group_fields(group, y_re, y_im, buffer)
    }
}

/// Partial sums: `[lane][row]`.
type Sums = [[f64; ROWS]; LANES];

/// [`LANES`] columns of a group.
type Block<T> = [[T; ROWS]; LANES];

/// A stored weight type.
trait Weight: Copy + Into<f64> {
    /// `blocks` in `f64`: themselves, or converted into `buffer`.
    fn as_f64<'a>(blocks: &'a [Block<Self>], buffer: &'a mut [Block<f64>]) -> &'a [Block<f64>];
}

impl Weight for f64 {
    #[inline(always)]
    fn as_f64<'a>(blocks: &'a [Block<f64>], _buffer: &'a mut [Block<f64>]) -> &'a [Block<f64>] {
        blocks
    }
}

impl Weight for f32 {
    /// Converted once per chunk, so the two passes read `f64` (converting inside each pass
    /// gets vectorised badly).
    #[inline(always)]
    fn as_f64<'a>(blocks: &'a [Block<f32>], buffer: &'a mut [Block<f64>]) -> &'a [Block<f64>] {
        let buffer = &mut buffer[..blocks.len()];
        for (to, from) in buffer
            .as_flattened_mut()
            .as_flattened_mut()
            .iter_mut()
            .zip(blocks.as_flattened().as_flattened())
        {
            *to = f64::from(*from);
        }
        buffer
    }
}

/// `sums[l][r] += w[l][r] y[l]` over consecutive blocks of [`LANES`] columns.
#[inline(always)]
fn pass(sums: &mut Sums, weights: &[Block<f64>], y: &[[f64; LANES]]) {
    for (w, y) in weights.iter().zip(y) {
        for lane in 0..LANES {
            for row in 0..ROWS {
                sums[lane][row] += w[lane][row] * y[lane];
            }
        }
    }
}

/// The group product, inlined into each instruction-set version.
#[inline(always)]
fn group_fields<T: Weight>(
    group: &[T],
    y_re: &[f64],
    y_im: &[f64],
    buffer: &mut [Block<f64>],
) -> [Complex64; ROWS] {
    let n = y_re.len();
    let group = &group[..ROWS * n];
    let y_im = &y_im[..n];
    let (columns, _) = group.as_chunks::<ROWS>();
    let (blocks, tail) = columns.as_chunks::<LANES>();
    let (re_blocks, re_tail) = y_re.as_chunks::<LANES>();
    let (im_blocks, im_tail) = y_im.as_chunks::<LANES>();
    let (mut re, mut im) = ([[0.0_f64; ROWS]; LANES], [[0.0_f64; ROWS]; LANES]);
    let per_chunk = CHUNK / LANES;
    for ((w, y_re), y_im) in blocks
        .chunks(per_chunk)
        .zip(re_blocks.chunks(per_chunk))
        .zip(im_blocks.chunks(per_chunk))
    {
        let w = T::as_f64(w, buffer);
        pass(&mut re, w, y_re);
        pass(&mut im, w, y_im);
    }
    // The last `n mod LANES` columns, in order, into sums of their own (a lane chosen at run
    // time would keep the lanes out of registers).
    let (mut tail_re, mut tail_im) = ([0.0_f64; ROWS], [0.0_f64; ROWS]);
    for ((w, &y_re), &y_im) in tail.iter().zip(re_tail).zip(im_tail) {
        for row in 0..ROWS {
            let weight: f64 = w[row].into();
            tail_re[row] += weight * y_re;
            tail_im[row] += weight * y_im;
        }
    }
    let mut fields = [Complex64::default(); ROWS];
    for (row, field) in fields.iter_mut().enumerate() {
        let total = |sums: &Sums, tail: f64| {
            sums.iter().fold(0.0, |total, lanes| total + lanes[row]) + tail
        };
        *field = Complex64::new(total(&re, tail_re[row]), total(&im, tail_im[row]));
    }
    fields
}
