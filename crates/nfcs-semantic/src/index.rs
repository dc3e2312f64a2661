//! Exact nearest-neighbour search over unit vectors stored as contiguous `f32` rows.

use rayon::prelude::*;

/// Vectors of one dimension in one contiguous buffer, searched exhaustively by dot product
/// (the cosine, for unit vectors). Rows are dense: removing a row moves the last row into its
/// place ([`swap_remove`](FlatIndex::swap_remove)), so callers keep their side tables in the
/// same order.
///
/// ```
/// use nfcs_semantic::FlatIndex;
///
/// let mut index = FlatIndex::new(2);
/// index.push(&[1.0, 0.0]);
/// index.push(&[0.0, 1.0]);
/// let (row, score) = index.best(&[0.6, 0.8], |_| true).unwrap();
/// assert_eq!(row, 1);
/// assert!((score - 0.8).abs() < 1e-6);
/// ```
#[derive(Debug, Clone)]
pub struct FlatIndex {
    dimension: usize,
    rows: Vec<f32>,
}

impl FlatIndex {
    /// An empty index of vectors of `dimension` components.
    pub fn new(dimension: usize) -> FlatIndex {
        FlatIndex {
            dimension,
            rows: Vec::new(),
        }
    }

    /// The dimension.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Rows stored.
    pub fn len(&self) -> usize {
        self.rows.len().checked_div(self.dimension).unwrap_or(0)
    }

    /// Whether no row is stored.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Appends `vector` (which must have the index's dimension; extra components are ignored,
    /// missing ones are zero) and returns its row.
    pub fn push(&mut self, vector: &[f32]) -> usize {
        let row = self.len();
        let take = vector.len().min(self.dimension);
        self.rows.extend_from_slice(&vector[..take]);
        self.rows.resize((row + 1) * self.dimension, 0.0);
        row
    }

    /// The vector of `row`.
    pub fn row(&self, row: usize) -> Option<&[f32]> {
        self.rows
            .get(row * self.dimension..(row + 1) * self.dimension)
    }

    /// Removes `row`, moving the last row into its place; returns the row that moved (its old
    /// number), if any did.
    pub fn swap_remove(&mut self, row: usize) -> Option<usize> {
        let last = self.len().checked_sub(1)?;
        if row > last {
            return None;
        }
        let d = self.dimension;
        if row != last {
            self.rows.copy_within(last * d..(last + 1) * d, row * d);
        }
        self.rows.truncate(last * d);
        (row != last).then_some(last)
    }

    /// The row with the largest dot product with `query` among those `keep` accepts, and that
    /// product (the lowest row among equal products). Indexes of at least
    /// [`PARALLEL_ROWS`](FlatIndex::PARALLEL_ROWS) rows are scanned on all threads: the scan is
    /// bound by memory bandwidth, which one core does not saturate.
    pub fn best(&self, query: &[f32], keep: impl Fn(usize) -> bool + Sync) -> Option<(usize, f32)> {
        if query.len() != self.dimension || self.dimension == 0 {
            return None;
        }
        let scan = |first: usize, rows: &[f32]| {
            let mut best: Option<(usize, f32)> = None;
            for (offset, vector) in rows.chunks_exact(self.dimension).enumerate() {
                let score = dot(query, vector);
                if best.is_none_or(|(_, top)| score > top) && keep(first + offset) {
                    best = Some((first + offset, score));
                }
            }
            best
        };
        if self.len() < Self::PARALLEL_ROWS {
            return scan(0, &self.rows);
        }
        let block = 1024;
        self.rows
            .par_chunks(block * self.dimension)
            .enumerate()
            .map(|(index, rows)| scan(index * block, rows))
            .reduce(
                || None,
                |a, b| match (a, b) {
                    (Some(a), Some(b)) => Some(if b.1 > a.1 || (b.1 == a.1 && b.0 < a.0) {
                        b
                    } else {
                        a
                    }),
                    (a, b) => a.or(b),
                },
            )
    }

    /// From this many rows on, [`best`](FlatIndex::best) splits the scan across threads.
    pub const PARALLEL_ROWS: usize = 4096;
}

/// The dot product in [`DOT_LANES`] partial sums (a fixed order, the same in every version),
/// in the widest vector version this CPU runs.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_at(crate::bert::kernel_level(), a, b)
}

/// Partial sums of [`dot`]: four AVX-512 registers (eight of AVX2), so that four chains of
/// adds are in flight instead of one.
const DOT_LANES: usize = 64;

crate::bert::at_level! {
    /// [`dot_body`] in the version `level`.
    fn dot_at(a: &[f32], b: &[f32]) -> f32 => dot_body
}

/// The dot product in [`DOT_LANES`] partial sums, so that the compiler vectorises it.
#[inline(always)]
fn dot_body(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = DOT_LANES;
    let mut partial = [0.0_f32; LANES];
    let (a_blocks, a_tail) = a.as_chunks::<LANES>();
    let (b_blocks, b_tail) = b.as_chunks::<LANES>();
    for (x, y) in a_blocks.iter().zip(b_blocks) {
        for lane in 0..LANES {
            partial[lane] += x[lane] * y[lane];
        }
    }
    let mut sum: f32 = partial.iter().sum();
    for (x, y) in a_tail.iter().zip(b_tail) {
        sum += x * y;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_finds_the_largest_dot_product_among_the_kept_rows() {
        let mut index = FlatIndex::new(3);
        for vector in [
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 1.0],
            [0.6, 0.8, 0.0],
        ] {
            index.push(&vector);
        }
        assert_eq!(index.len(), 4);
        let query = [0.8, 0.6, 0.0];
        assert_eq!(index.best(&query, |_| true).map(|(row, _)| row), Some(3));
        assert_eq!(
            index.best(&query, |row| row != 3).map(|(row, _)| row),
            Some(0)
        );
        assert_eq!(index.best(&query, |_| false), None);
        assert_eq!(index.best(&[1.0, 0.0], |_| true), None, "wrong dimension");
    }

    #[test]
    fn swap_remove_moves_the_last_row_into_the_hole() {
        let mut index = FlatIndex::new(2);
        for row in 0..4 {
            index.push(&[row as f32, 0.0]);
        }
        assert_eq!(index.swap_remove(1), Some(3));
        assert_eq!(index.row(1), Some(&[3.0, 0.0][..]));
        assert_eq!(
            index.swap_remove(2),
            None,
            "removing the last row moves nothing"
        );
        assert_eq!(index.len(), 2);
        assert_eq!(index.swap_remove(5), None);
    }

    #[test]
    fn the_parallel_scan_finds_what_a_plain_scan_finds() {
        let dimension = 24;
        let rows = FlatIndex::PARALLEL_ROWS + 1500;
        let mut index = FlatIndex::new(dimension);
        let vector = |row: usize| -> Vec<f32> {
            (0..dimension)
                .map(|i| ((row * 31 + i * 7) as f32 * 0.013).sin())
                .collect()
        };
        for row in 0..rows {
            index.push(&vector(row));
        }
        for probe in [3, 2_000, rows - 1] {
            let query = vector(probe);
            let plain = (0..rows)
                .filter(|row| row % 3 != 0)
                .map(|row| (row, dot(&query, index.row(row).unwrap())))
                .fold(
                    None,
                    |best: Option<(usize, f32)>, (row, score)| match best {
                        Some((_, top)) if top >= score => best,
                        _ => Some((row, score)),
                    },
                );
            assert_eq!(
                index.best(&query, |row| row % 3 != 0),
                plain,
                "probe {probe}"
            );
        }
    }

    #[test]
    fn the_dot_product_matches_the_plain_sum() {
        let a: Vec<f32> = (0..19).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..19).map(|i| (i as f32 * 0.11).cos()).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-5);
    }

    #[test]
    fn every_version_of_the_dot_product_gives_the_same_bits() {
        use crate::bert::KernelLevel;
        // 384 values (six blocks of 64) and 403 (a tail of 19 after them).
        for len in [384, 403] {
            let a: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..len).map(|i| (i as f32 * 0.11).cos()).collect();
            let baseline = dot_at(KernelLevel::Baseline, &a, &b);
            let exact: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            assert!(
                (f64::from(baseline) - exact).abs() < 1e-4,
                "{baseline} against {exact}"
            );
            for level in [KernelLevel::Avx2Fma, KernelLevel::Avx512Fma] {
                if level.supported() {
                    assert_eq!(
                        dot_at(level, &a, &b).to_bits(),
                        baseline.to_bits(),
                        "{level:?}"
                    );
                }
            }
        }
    }
}
