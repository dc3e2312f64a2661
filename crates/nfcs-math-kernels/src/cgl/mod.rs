//! The complex Ginzburg-Landau equation on a periodic square, by pseudo-spectral ETDRK4.
//!
//! ```text
//! dA/dt = A + (1 + i b) lap(A) - (1 + i c) |A|^2 A
//! ```
//!
//! on `[0, L)^2` with periodic boundaries and `n x n` grid points, as Aranson & Kramer (Rev.
//! Mod. Phys. 74, 2002) write it. Other codes name the coefficients differently: with
//! `A_t = A + (1 + i alpha) lap(A) - (1 + i beta) |A|^2 A` (the same signs), `alpha = b` and
//! `beta = c`; with `A_t = A + (1 + i alpha) lap(A) - (1 - i beta) |A|^2 A` (Chate's
//! convention), `alpha = b` and `beta = -c`.
//!
//! In Fourier space the linear part is diagonal, `L(k) = 1 - (1 + i b) |k|^2`, and is integrated
//! exactly; the nonlinear part `N(A) = -(1 + i c) |A|^2 A` is evaluated on the grid. The time
//! stepping is the fourth-order exponential time differencing Runge-Kutta scheme of Cox &
//! Matthews (J. Comput. Phys. 176, 2002), with its coefficients computed stably by contour
//! integrals (Kassam & Trefethen, SIAM J. Sci. Comput. 26, 2005; see `phi.rs`).

mod phi;
pub mod reference;

use std::f64::consts::PI;
use std::sync::Arc;

use num_complex::Complex64;
use rand::{RngExt, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{KernelError, finite, positive};
use crate::fft2::Fft2;

/// The smallest and largest grid the solver accepts.
pub const GRID_SIZES: std::ops::RangeInclusive<usize> = 4..=8192;
/// `|A|^2` beyond which the solution counts as blown up (the attracting states of the equation
/// have `|A|^2 <= 1`).
const BLOW_UP_INTENSITY: f64 = 1e6;

/// The parameters of a run. Serialisable, with a stable hash for cache keys.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CglParams {
    /// Grid points per side, `n` (4 to 8192; any size, powers of two are fastest).
    pub grid_size: usize,
    /// The side of the periodic square, `L`.
    pub length: f64,
    /// The time step.
    pub dt: f64,
    /// The linear dispersion coefficient `b`.
    pub b: f64,
    /// The nonlinear dispersion coefficient `c`.
    pub c: f64,
}

impl CglParams {
    /// Parameters for an `grid_size` x `grid_size` grid on a square of side `length`.
    pub fn new(grid_size: usize, length: f64, dt: f64, b: f64, c: f64) -> CglParams {
        CglParams {
            grid_size,
            length,
            dt,
            b,
            c,
        }
    }

    /// Checks every parameter.
    ///
    /// # Errors
    /// [`KernelError::InvalidParameter`] naming the first bad one.
    pub fn validate(&self) -> Result<(), KernelError> {
        if !GRID_SIZES.contains(&self.grid_size) {
            return Err(KernelError::invalid(
                "grid_size",
                self.grid_size,
                "must be between 4 and 8192",
            ));
        }
        positive("length", self.length)?;
        positive("dt", self.dt)?;
        finite("b", self.b)?;
        finite("c", self.c)?;
        Ok(())
    }

    /// A hash of the parameters that is the same on every platform, process and version of
    /// Rust (XXH3 of their little-endian bytes), as 16 hex digits: what cache keys are made of.
    ///
    /// ```
    /// use nfcs_math_kernels::cgl::CglParams;
    /// let params = CglParams::new(128, 50.0, 0.05, 1.5, -1.2);
    /// assert_eq!(params.stable_hash(), CglParams::new(128, 50.0, 0.05, 1.5, -1.2).stable_hash());
    /// assert_ne!(params.stable_hash(), CglParams::new(128, 50.0, 0.05, 1.5, -1.1).stable_hash());
    /// ```
    pub fn stable_hash(&self) -> String {
        let mut bytes = Vec::with_capacity(40);
        bytes.extend_from_slice(&(self.grid_size as u64).to_le_bytes());
        for value in [self.length, self.dt, self.b, self.c] {
            bytes.extend_from_slice(&value.to_bits().to_le_bytes());
        }
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes))
    }

    /// The wavenumber of grid index `index` along one axis.
    fn wavenumber(&self, index: usize) -> f64 {
        let n = self.grid_size;
        let signed = if index <= n / 2 {
            index as f64
        } else {
            index as f64 - n as f64
        };
        2.0 * PI * signed / self.length
    }
}

/// Where a run starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum InitialCondition {
    /// Independent complex Gaussian noise of this standard deviation at every point, from a
    /// seeded generator (the same seed gives the same field everywhere).
    Noise {
        /// The standard deviation of the real and imaginary parts.
        amplitude: f64,
        /// The generator's seed.
        seed: u64,
    },
    /// The plane wave `sqrt(1 - |k|^2) exp(i k.x)` with `k = 2 pi (mode_x, mode_y) / L`, an exact
    /// solution when `|k| < 1`.
    PlaneWave {
        /// Wavelengths across the square in x.
        mode_x: i64,
        /// Wavelengths across the square in y.
        mode_y: i64,
    },
    /// The same value everywhere.
    Uniform {
        /// Real part.
        re: f64,
        /// Imaginary part.
        im: f64,
    },
    /// A field given point by point, row-major (`field[y * n + x]`).
    Field(Vec<Complex64>),
}

/// A snapshot of a run: what the spec's `solve_cgl_optimized` returns and caches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CglResult {
    /// The parameters.
    pub params: CglParams,
    /// The simulated time reached.
    pub time: f64,
    /// Steps taken.
    pub steps: u64,
    /// The mean of `|A|^2` over the grid.
    pub mean_intensity: f64,
    /// The field, row-major (`field[y * n + x]`).
    pub field: Vec<Complex64>,
}

/// The ETDRK4 solver. Plans, coefficients and buffers are built once in [`CglSolver::new`];
/// a step allocates nothing.
///
/// ```
/// use nfcs_math_kernels::cgl::{CglParams, CglSolver, InitialCondition};
///
/// let params = CglParams::new(64, 40.0, 0.05, 1.0, -0.5);
/// let mut solver = CglSolver::new(params, InitialCondition::Noise { amplitude: 0.01, seed: 7 })?;
/// solver.advance(200)?; // to t = 10
/// assert!((solver.time() - 10.0).abs() < 1e-9);
/// // The field has grown out of the noise towards |A| ~ 1.
/// assert!(solver.mean_intensity() > 0.5);
/// # Ok::<(), nfcs_math_kernels::KernelError>(())
/// ```
///
/// # How a step runs
///
/// The spectrum is stored transposed, `[kx][ky]`, the field `[y][x]`. Each of the four
/// nonlinear evaluations of an ETDRK4 step is two sweeps over rows, with a transpose after
/// each:
///
/// - a *physical* sweep over the rows `y`: the inverse FFT along `x`, `N(A)` with the
///   blow-up check, and the FFT along `x`;
/// - a *spectral* sweep over the rows `kx`: the FFT along `y`, which completes the 2-D
///   transform of `N`, the ETDRK4 combination that makes the next stage's input (or the new
///   state), and its inverse FFT along `y`.
///
/// Each sweep works through blocks of rows small enough to stay in cache while the FFTs and
/// the pointwise work pass over them, and splits the blocks across threads on large grids.
pub struct CglSolver {
    params: CglParams,
    n: usize,
    fft: Fft2,
    /// Per-mode coefficients, in the transposed spectral layout (shared by a batch).
    coefficients: Arc<Coefficients>,
    /// The state (spectrum, transposed layout).
    v: Vec<Complex64>,
    /// The nonlinear terms of the first three stages (spectra).
    nv: Vec<Complex64>,
    na: Vec<Complex64>,
    nb: Vec<Complex64>,
    /// Rows `kx`, columns `y`: the next stage's input after its inverse FFT along `y`.
    spectral_rows: Vec<Complex64>,
    /// Rows `y`, columns `kx` or `x`: the physical sweep's buffer.
    physical_rows: Vec<Complex64>,
    /// `-(1 + i c) / n^6`: `N` applied to the unnormalised inverse transform.
    nonlinear_factor: Complex64,
    /// The blow-up bound on `|A|^2`, in the units of the unnormalised inverse transform.
    blow_up: f64,
    time: f64,
    steps: u64,
    failure: Option<KernelError>,
}

/// One coefficient per mode, real and imaginary parts in separate arrays: the stage loops
/// then load them straight into vector registers, where interleaved complex numbers would
/// need shuffling apart first.
struct SplitVec {
    re: Vec<f64>,
    im: Vec<f64>,
}

impl SplitVec {
    fn new(values: impl Iterator<Item = Complex64>) -> SplitVec {
        let (re, im) = values.map(|value| (value.re, value.im)).unzip();
        SplitVec { re, im }
    }

    /// The modes `range`.
    fn at(&self, range: std::ops::Range<usize>) -> Split<'_> {
        Split {
            re: &self.re[range.clone()],
            im: &self.im[range],
        }
    }
}

/// A run of [`SplitVec`].
#[derive(Clone, Copy)]
struct Split<'a> {
    re: &'a [f64],
    im: &'a [f64],
}

impl Split<'_> {
    /// `self[i] * x`, with the same operations as `Complex64`'s product.
    #[inline(always)]
    fn mul(&self, i: usize, x: Complex64) -> Complex64 {
        let (re, im) = (self.re[i], self.im[i]);
        Complex64::new(re * x.re - im * x.im, re * x.im + im * x.re)
    }

    /// The first `len` modes, so that indexing below `len` needs no bounds check.
    #[inline(always)]
    fn first(self, len: usize) -> Self {
        Split {
            re: &self.re[..len],
            im: &self.im[..len],
        }
    }
}

/// The ETDRK4 coefficients of every mode, in the transposed spectral layout.
struct Coefficients {
    e: SplitVec,
    e2: SplitVec,
    q: SplitVec,
    /// `E2 Q - Q`: the third stage's input is `E v + P Nv + 2 Q Nb`, which equals Cox and
    /// Matthews' `E2 a + Q (2 Nb - Nv)` and spares storing `a`.
    p: SplitVec,
    f1: SplitVec,
    f2: SplitVec,
    f3: SplitVec,
}

/// Computes the coefficient arrays. They depend on `|k|^2` only, so each distinct
/// `(|kx|, |ky|)` pair (up to exchange) is evaluated once.
fn build_coefficients(params: &CglParams) -> Coefficients {
    let n = params.grid_size;
    let half = n / 2 + 1;
    let h = params.dt;
    let dispersion = Complex64::new(1.0, params.b);
    let mut table = vec![None; half * half];
    let mut coefficient = |ix: usize, iy: usize| {
        let fold = |index: usize| if index <= n / 2 { index } else { n - index };
        let (a, b) = (fold(ix), fold(iy));
        let (a, b) = (a.min(b), a.max(b));
        *table[a * half + b].get_or_insert_with(|| {
            let (kx, ky) = (params.wavenumber(a), params.wavenumber(b));
            let l = Complex64::new(1.0, 0.0) - dispersion * (kx * kx + ky * ky);
            phi::coefficients(l, h)
        })
    };
    let mut all = Vec::with_capacity(n * n);
    // Transposed layout: row = kx index, column = ky index.
    for ix in 0..n {
        for iy in 0..n {
            all.push(coefficient(ix, iy));
        }
    }
    Coefficients {
        e: SplitVec::new(all.iter().map(|c| c.e)),
        e2: SplitVec::new(all.iter().map(|c| c.e2)),
        q: SplitVec::new(all.iter().map(|c| c.q)),
        p: SplitVec::new(all.iter().map(|c| c.e2 * c.q - c.q)),
        f1: SplitVec::new(all.iter().map(|c| c.f1)),
        f2: SplitVec::new(all.iter().map(|c| c.f2)),
        f3: SplitVec::new(all.iter().map(|c| c.f3)),
    }
}

impl CglSolver {
    /// Builds a solver at `t = 0`.
    ///
    /// # Errors
    /// [`KernelError`] for invalid parameters, a plane wave with `|k| >= 1`, a field of the
    /// wrong size or with non-finite values.
    pub fn new(params: CglParams, initial: InitialCondition) -> Result<CglSolver, KernelError> {
        params.validate()?;
        let n = params.grid_size;
        let coefficients = Arc::new(build_coefficients(&params));
        CglSolver::with_parts(params, initial, Fft2::new(n), coefficients)
    }

    /// Builds a solver from validated `params`, its plans and its coefficients.
    fn with_parts(
        params: CglParams,
        initial: InitialCondition,
        fft: Fft2,
        coefficients: Arc<Coefficients>,
    ) -> Result<CglSolver, KernelError> {
        let n = params.grid_size;
        let mut field = initial_field(&params, initial)?;
        let zeros = || vec![Complex64::default(); n * n];
        let scale = 1.0 / (n * n) as f64;
        let mut solver = CglSolver {
            params,
            n,
            fft,
            coefficients,
            v: zeros(),
            nv: zeros(),
            na: zeros(),
            nb: zeros(),
            spectral_rows: zeros(),
            physical_rows: zeros(),
            nonlinear_factor: -Complex64::new(1.0, params.c) * (scale * scale * scale),
            blow_up: BLOW_UP_INTENSITY / (scale * scale),
            time: 0.0,
            steps: 0,
            failure: None,
        };
        solver.fft.forward(&mut field, &mut solver.v);
        solver.spectral_rows.copy_from_slice(&solver.v);
        solver
            .fft
            .sweep(None, &mut solver.spectral_rows, |_, rows, fft| {
                fft.inverse(rows);
                [0.0; 2]
            });
        Ok(solver)
    }

    /// The parameters.
    pub fn params(&self) -> &CglParams {
        &self.params
    }

    /// The simulated time.
    pub fn time(&self) -> f64 {
        self.time
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Takes one step of `dt`.
    ///
    /// # Errors
    /// [`KernelError::BlowUp`] when the solution leaves every sensible bound; the solver then
    /// refuses further steps and keeps the state of the last good step.
    pub fn step(&mut self) -> Result<(), KernelError> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        match self.try_step() {
            Ok(()) => {
                self.steps += 1;
                self.time = self.steps as f64 * self.params.dt;
                Ok(())
            }
            Err(max_intensity) => {
                let failure = KernelError::BlowUp {
                    time: self.time,
                    step: self.steps + 1,
                    max_intensity,
                };
                self.failure = Some(failure.clone());
                Err(failure)
            }
        }
    }

    /// Takes `steps` steps.
    ///
    /// # Errors
    /// As [`step`](CglSolver::step).
    pub fn advance(&mut self, steps: u64) -> Result<(), KernelError> {
        for _ in 0..steps {
            self.step()?;
        }
        Ok(())
    }

    /// One ETDRK4 step; `Err` carries the offending `|A|^2`. On entry and on success,
    /// `spectral_rows` holds `v` after the inverse FFT along `y`. `v` changes only in the last
    /// sweep, after every blow-up check of the step has passed.
    fn try_step(&mut self) -> Result<(), f64> {
        for stage in 0..4 {
            let (factor, bound) = (self.nonlinear_factor, self.blow_up);
            let source = Some(self.spectral_rows.as_slice());
            let [largest, total] =
                self.fft
                    .sweep(source, &mut self.physical_rows, |_, rows, fft| {
                        fft.inverse(rows);
                        let found = nonlinear(rows, factor);
                        fft.forward(rows);
                        found
                    });
            // A NaN or an infinity anywhere makes the total non-finite.
            if !(largest <= bound && total.is_finite()) {
                let found = if total.is_finite() { largest } else { total };
                return Err(found / bound * BLOW_UP_INTENSITY);
            }
            let c = &self.coefficients;
            let (v, nv, na, nb) = (&mut self.v, &mut self.nv, &mut self.na, &mut self.nb);
            let (source, rows) = (&self.physical_rows, &mut self.spectral_rows);
            let fft = &mut self.fft;
            match stage {
                0 => fft.sweep2(source, rows, nv, |r, rows, nv, fft| {
                    fft.forward(rows);
                    stage_a(rows, nv, c.e2.at(r.clone()), c.q.at(r.clone()), &v[r]);
                    fft.inverse(rows);
                }),
                1 => fft.sweep2(source, rows, na, |r, rows, na, fft| {
                    fft.forward(rows);
                    stage_a(rows, na, c.e2.at(r.clone()), c.q.at(r.clone()), &v[r]);
                    fft.inverse(rows);
                }),
                2 => fft.sweep2(source, rows, nb, |r, rows, nb, fft| {
                    fft.forward(rows);
                    stage_c(
                        rows,
                        nb,
                        [c.e.at(r.clone()), c.p.at(r.clone()), c.q.at(r.clone())],
                        &v[r.clone()],
                        &nv[r],
                    );
                    fft.inverse(rows);
                }),
                _ => fft.sweep2(source, rows, v, |r, rows, v, fft| {
                    fft.forward(rows);
                    let coefficients = [
                        c.e.at(r.clone()),
                        c.f1.at(r.clone()),
                        c.f2.at(r.clone()),
                        c.f3.at(r.clone()),
                    ];
                    stage_final(
                        rows,
                        v,
                        coefficients,
                        [&nv[r.clone()], &na[r.clone()], &nb[r]],
                    );
                    fft.inverse(rows);
                }),
            }
        }
        Ok(())
    }

    /// The mean of `|A|^2` over the grid (from the spectrum, by Parseval).
    pub fn mean_intensity(&self) -> f64 {
        let n2 = (self.n * self.n) as f64;
        self.v.iter().map(|value| value.norm_sqr()).sum::<f64>() / (n2 * n2)
    }

    /// The field on the grid, row-major (`field[y * n + x]`).
    pub fn field(&mut self) -> Vec<Complex64> {
        let mut spectrum = self.v.clone();
        let mut field = vec![Complex64::default(); self.n * self.n];
        self.fft.inverse(&mut spectrum, &mut field);
        let scale = 1.0 / (self.n * self.n) as f64;
        field.iter_mut().for_each(|value| *value *= scale);
        field
    }

    /// The spectral coefficient of the mode `(mode_x, mode_y)` (wavelengths across the square),
    /// normalised so that the field `c exp(i k.x)` has coefficient `c`.
    pub fn mode(&self, mode_x: i64, mode_y: i64) -> Complex64 {
        let n = self.n as i64;
        let (ix, iy) = (mode_x.rem_euclid(n) as usize, mode_y.rem_euclid(n) as usize);
        self.v[ix * self.n + iy] / (self.n * self.n) as f64
    }

    /// A snapshot of the run.
    pub fn result(&mut self) -> CglResult {
        CglResult {
            params: self.params,
            time: self.time,
            steps: self.steps,
            mean_intensity: self.mean_intensity(),
            field: self.field(),
        }
    }
}

/// Independent runs with the same parameters, stepped together: what a service that solves
/// many small grids wants. The runs share the FFT plans (and their twiddles) and the ETDRK4
/// coefficients, and [`advance`](CglBatch::advance) spreads whole runs across threads (each
/// run takes all its steps on one thread, so no thread waits for another within a step).
/// Every run computes bit for bit what a [`CglSolver`] with the same initial condition
/// computes.
///
/// ```
/// use nfcs_math_kernels::cgl::{CglBatch, CglParams, InitialCondition};
///
/// let params = CglParams::new(32, 30.0, 0.05, 1.0, -0.5);
/// let initials = (0..4).map(|seed| InitialCondition::Noise { amplitude: 0.01, seed });
/// let mut batch = CglBatch::new(params, initials)?;
/// for outcome in batch.advance(100) {
///     outcome?;
/// }
/// assert!(batch.solvers().iter().all(|solver| solver.steps() == 100));
/// # Ok::<(), nfcs_math_kernels::KernelError>(())
/// ```
pub struct CglBatch {
    solvers: Vec<CglSolver>,
}

impl CglBatch {
    /// One run per initial condition, all at `t = 0`. The sweeps of one run are split across
    /// threads (as in [`CglSolver`]) only when the batch has fewer runs than rayon has
    /// threads; otherwise each run is serial and the runs are what is spread.
    ///
    /// # Errors
    /// As [`CglSolver::new`], for the parameters or the first bad initial condition.
    pub fn new(
        params: CglParams,
        initials: impl IntoIterator<Item = InitialCondition>,
    ) -> Result<CglBatch, KernelError> {
        params.validate()?;
        let initials: Vec<InitialCondition> = initials.into_iter().collect();
        let n = params.grid_size;
        let threads = rayon::current_num_threads().max(1);
        let parallel = initials.len() < threads && n * n >= crate::fft2::PARALLEL_POINTS;
        let fft = Fft2::with_threads(n, parallel);
        let coefficients = Arc::new(build_coefficients(&params));
        let solvers = initials
            .into_iter()
            .map(|initial| {
                CglSolver::with_parts(params, initial, fft.clone(), Arc::clone(&coefficients))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CglBatch { solvers })
    }

    /// The number of runs.
    pub fn len(&self) -> usize {
        self.solvers.len()
    }

    /// Whether the batch has no runs.
    pub fn is_empty(&self) -> bool {
        self.solvers.is_empty()
    }

    /// The runs, in the order of their initial conditions.
    pub fn solvers(&self) -> &[CglSolver] {
        &self.solvers
    }

    /// The runs, mutable (for [`CglSolver::field`] and [`CglSolver::result`], or to step one).
    pub fn solvers_mut(&mut self) -> &mut [CglSolver] {
        &mut self.solvers
    }

    /// The runs, taken out of the batch.
    pub fn into_solvers(self) -> Vec<CglSolver> {
        self.solvers
    }

    /// Takes `steps` steps of every run, runs spread across rayon's threads, and returns each
    /// run's outcome in order: a run that blows up stops there (as
    /// [`CglSolver::advance`] does) without affecting the others.
    pub fn advance(&mut self, steps: u64) -> Vec<Result<(), KernelError>> {
        self.solvers
            .par_iter_mut()
            .with_max_len(1)
            .map(|solver| solver.advance(steps))
            .collect()
    }
}

crate::simd::dispatch! {
    /// `N` on unnormalised grid values, in place: `value = factor |value|^2 value`. Returns the
    /// largest `|value|^2` and the sum of all (which is not finite when any value is not).
    fn nonlinear(values: &mut [Complex64], factor: Complex64) -> [f64; 2] {
        const LANES: usize = 4;
        let (mut largest, mut total) = ([0.0_f64; LANES], [0.0_f64; LANES]);
        let mut blocks = values.chunks_exact_mut(LANES);
        for block in &mut blocks {
            for lane in 0..LANES {
                let intensity = block[lane].norm_sqr();
                // A plain comparison (one `max` instruction) rather than `f64::max`, whose
                // NaN rule costs two more per value: a NaN is caught by the sum instead.
                if intensity > largest[lane] {
                    largest[lane] = intensity;
                }
                total[lane] += intensity;
                block[lane] = factor * (block[lane] * intensity);
            }
        }
        for value in blocks.into_remainder() {
            let intensity = value.norm_sqr();
            if intensity > largest[0] {
                largest[0] = intensity;
            }
            total[0] += intensity;
            *value = factor * (*value * intensity);
        }
        [largest.iter().fold(0.0, |a, &b| a.max(b)), total.iter().sum()]
    }
}

crate::simd::dispatch! {
    /// The first and second stages: `n_out = N`, `rows = E2 v + Q N` (`rows` holds `N`).
    fn stage_a(rows: &mut [Complex64], n_out: &mut [Complex64], e2: Split<'_>, q: Split<'_>, v: &[Complex64]) -> () {
        let len = rows.len();
        let (e2, q, v, n_out) = (e2.first(len), q.first(len), &v[..len], &mut n_out[..len]);
        for (i, (row, n_out)) in rows.iter_mut().zip(n_out.iter_mut()).enumerate() {
            let n = *row;
            *n_out = n;
            *row = e2.mul(i, v[i]) + q.mul(i, n);
        }
    }
}

crate::simd::dispatch! {
    /// The third stage: `nb = N`, `rows = E v + P Nv + 2 Q Nb` (`rows` holds `N`).
    fn stage_c(rows: &mut [Complex64], nb: &mut [Complex64], epq: [Split<'_>; 3], v: &[Complex64], nv: &[Complex64]) -> () {
        let len = rows.len();
        let [e, p, q] = epq.map(|array| array.first(len));
        let (v, nv, nb) = (&v[..len], &nv[..len], &mut nb[..len]);
        for (i, (row, nb)) in rows.iter_mut().zip(nb.iter_mut()).enumerate() {
            let n = *row;
            *nb = n;
            *row = e.mul(i, v[i]) + p.mul(i, nv[i]) + 2.0 * q.mul(i, n);
        }
    }
}

crate::simd::dispatch! {
    /// The update: `v = E v + f1 Nv + 2 f2 (Na + Nb) + f3 Nc`, and `rows = v` (`rows` holds
    /// `Nc`).
    fn stage_final(rows: &mut [Complex64], v: &mut [Complex64], coefficients: [Split<'_>; 4], terms: [&[Complex64]; 3]) -> () {
        let len = rows.len();
        let [e, f1, f2, f3] = coefficients.map(|array| array.first(len));
        let [nv, na, nb] = terms.map(|array| &array[..len]);
        let v = &mut v[..len];
        for (i, (row, v)) in rows.iter_mut().zip(v.iter_mut()).enumerate() {
            let next = e.mul(i, *v) + f1.mul(i, nv[i]) + 2.0 * f2.mul(i, na[i] + nb[i]) + f3.mul(i, *row);
            *v = next;
            *row = next;
        }
    }
}

fn initial_field(
    params: &CglParams,
    initial: InitialCondition,
) -> Result<Vec<Complex64>, KernelError> {
    let n = params.grid_size;
    let dx = params.length / n as f64;
    match initial {
        InitialCondition::Noise { amplitude, seed } => {
            finite("amplitude", amplitude)?;
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let normal = rand_distr::StandardNormal;
            Ok((0..n * n)
                .map(|_| {
                    let (re, im): (f64, f64) = (rng.sample(normal), rng.sample(normal));
                    Complex64::new(re, im) * amplitude
                })
                .collect())
        }
        InitialCondition::PlaneWave { mode_x, mode_y } => {
            let (kx, ky) = (
                2.0 * PI * mode_x as f64 / params.length,
                2.0 * PI * mode_y as f64 / params.length,
            );
            let k2 = kx * kx + ky * ky;
            if k2 >= 1.0 {
                return Err(KernelError::invalid(
                    "PlaneWave",
                    format!("|k|^2 = {k2}"),
                    "a plane wave needs |k| < 1",
                ));
            }
            let amplitude = (1.0 - k2).sqrt();
            Ok((0..n * n)
                .map(|index| {
                    let (x, y) = ((index % n) as f64 * dx, (index / n) as f64 * dx);
                    Complex64::from_polar(amplitude, kx * x + ky * y)
                })
                .collect())
        }
        InitialCondition::Uniform { re, im } => {
            finite("re", re)?;
            finite("im", im)?;
            Ok(vec![Complex64::new(re, im); n * n])
        }
        InitialCondition::Field(field) => {
            if field.len() != n * n {
                return Err(KernelError::WrongSize {
                    name: "field",
                    expected: n * n,
                    found: field.len(),
                });
            }
            if let Some(index) = field
                .iter()
                .position(|value| !value.re.is_finite() || !value.im.is_finite())
            {
                return Err(KernelError::NonFinite {
                    name: "field",
                    index,
                });
            }
            Ok(field)
        }
    }
}
