//! Kuramoto oscillator networks, integrated with classic RK4.
//!
//! ```text
//! dtheta_i/dt = omega_i + sum_j K_ij sin(theta_j - theta_i)
//! ```
//!
//! with all-to-all mean-field coupling `K_ij = K / N` (O(N) per step through the order
//! parameter), a dense matrix (stored in `f64` or `f32`), or a sparse (CSR) network. The order parameter is
//! `r e^(i psi) = (1/N) sum_j e^(i theta_j)`.
//!
//! The state is kept as `z_j = e^(i theta_j)` rather than as angles: with
//! `F_i = sum_j K_ij z_j` the equation becomes
//!
//! ```text
//! dz_i/dt = i omega_i z_i + (|z_i|^2 F_i - z_i^2 conj(F_i)) / 2
//! ```
//!
//! which needs no trigonometric function at all (for the mean field, `F_i = K Z` is one number
//! per stage). The rotation `i omega_i z_i` is integrated exactly: the scheme is classic RK4 in
//! the frame turning with each oscillator's natural frequency (Lawson's integrating-factor
//! RK4), whose factors `exp(i omega_i dt / 2)` are computed once. A plain RK4 on `z` would be
//! unstable for `|omega_i dt| > 2.8`, which the heavy tails of a Lorentzian always reach; this
//! scheme is exact for uncoupled oscillators of any frequency and fourth order for the coupled
//! system (the tests measure it). Each step projects `z_i` back onto the unit circle.

mod dense;
mod frequencies;
mod mean_field;

use std::time::{Duration, Instant};

use num_complex::Complex64;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{KernelError, finite, positive};

pub use frequencies::{gaussian, lorentzian, lorentzian_quantiles, uniform_phases};

/// Networks with a coupling matrix at least this large compute their rows across threads.
const PARALLEL_ROWS: usize = 256;

/// Rows of a dense matrix per parallel task (a multiple of [`dense::ROWS`]).
const ROWS_PER_TASK: usize = 64;

/// How the oscillators are coupled.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Coupling {
    /// All to all, `K_ij = strength / N`.
    MeanField {
        /// `K`.
        strength: f64,
    },
    /// A dense `N x N` matrix, row-major: `weights[i * N + j] = K_ij`.
    Dense {
        /// The matrix.
        weights: Vec<f64>,
    },
    /// A dense `N x N` matrix stored in `f32`, row-major: `weights[i * N + j] = K_ij`. Half
    /// the bytes of [`Coupling::Dense`]: at large `N` a step streams the matrix from memory
    /// four times, and this halves those bytes. The weights are exactly those `f32`
    /// values (converted to `f64` exactly); the products and sums are `f64` as for
    /// [`Coupling::Dense`]. The only error against an `f64` matrix is the rounding of each
    /// weight to `f32` (relative `2^-24`); `tests/dense_f32.rs` measures what it does to
    /// the two-oscillator closed form and to Kuramoto's `r = sqrt(1 - 2 gamma / K)`.
    DenseF32 {
        /// The matrix.
        weights: Vec<f32>,
    },
    /// A sparse matrix in compressed sparse row form: row `i`'s entries are
    /// `columns[row_offsets[i]..row_offsets[i + 1]]` with the same range of `weights`.
    Sparse {
        /// `N + 1` offsets, starting at 0, non-decreasing, ending at the number of entries.
        row_offsets: Vec<usize>,
        /// Column indices, each below `N`.
        columns: Vec<u32>,
        /// `K_ij` for each entry.
        weights: Vec<f64>,
    },
}

/// The order parameter `r e^(i psi)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OrderParameter {
    /// Coherence, from 0 (incoherent) to 1 (in phase).
    pub r: f64,
    /// The mean phase.
    pub psi: f64,
}

/// How [`Kuramoto::run_until_sync`] ended.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum SyncOutcome {
    /// `r` reached the threshold at simulated time `time`.
    Synchronized {
        /// The simulated time when `r` first reached the threshold.
        time: f64,
        /// Steps taken.
        steps: u64,
        /// Wall-clock time the steps took (the spec's "sync time" is this).
        compute: Duration,
        /// `r` then.
        r: f64,
    },
    /// `r` stayed below the threshold until `max_time`.
    NotSynchronized {
        /// The simulated time reached.
        time: f64,
        /// Steps taken.
        steps: u64,
        /// Wall-clock time the steps took.
        compute: Duration,
        /// `r` at the end.
        r: f64,
    },
}

/// A network of phase oscillators.
///
/// ```
/// use nfcs_math_kernels::kuramoto::{Coupling, Kuramoto, SyncOutcome, lorentzian_quantiles, uniform_phases};
///
/// // 1,000 oscillators with Lorentzian frequencies of width 0.5: K_c = 1.
/// let frequencies = lorentzian_quantiles(1000, 0.0, 0.5);
/// let mut network = Kuramoto::new(
///     frequencies,
///     Coupling::MeanField { strength: 4.0 },
///     uniform_phases(1000, 42),
///     0.01,
/// )?;
/// match network.run_until_sync(0.8, 50.0)? {
///     SyncOutcome::Synchronized { time, .. } => assert!(time < 50.0),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), nfcs_math_kernels::KernelError>(())
/// ```
pub struct Kuramoto {
    /// The coupling; for a dense matrix, with its weights moved into `packed`.
    coupling: Coupling,
    /// A dense matrix in the packed layout of [`dense`].
    packed: Packed,
    /// The state `z = e^(i theta)`, split into real and imaginary parts.
    z_re: Vec<f64>,
    z_im: Vec<f64>,
    /// `E_2 = exp(i omega dt / 2)` per oscillator, split likewise.
    rot_re: Vec<f64>,
    rot_im: Vec<f64>,
    /// Matrix couplings only: the stage slope, the weighted sum of slopes, and the stage input.
    k: Vec<Complex64>,
    acc: Vec<Complex64>,
    y_re: Vec<f64>,
    y_im: Vec<f64>,
    dt: f64,
    steps: u64,
    /// `mean(z)`, kept current by every step.
    mean: Complex64,
}

impl Kuramoto {
    /// A network with natural frequencies `frequencies`, starting at `phases`, stepped by `dt`.
    ///
    /// A dense matrix is copied once into the layout the steps read (groups of eight rows,
    /// interleaved column by column), so for that moment it is held twice.
    ///
    /// # Errors
    /// [`KernelError`] for an empty network, lengths that differ, non-finite values, a time
    /// step that is not positive, or a malformed coupling matrix.
    pub fn new(
        frequencies: Vec<f64>,
        coupling: Coupling,
        phases: Vec<f64>,
        dt: f64,
    ) -> Result<Kuramoto, KernelError> {
        let n = frequencies.len();
        if n == 0 {
            return Err(KernelError::invalid(
                "frequencies",
                "[]",
                "at least one oscillator is needed",
            ));
        }
        positive("dt", dt)?;
        check_finite("frequencies", &frequencies)?;
        if phases.len() != n {
            return Err(KernelError::WrongSize {
                name: "phases",
                expected: n,
                found: phases.len(),
            });
        }
        check_finite("phases", &phases)?;
        validate_coupling(&coupling, n)?;
        let (coupling, packed) = match coupling {
            Coupling::Dense { weights } => (
                Coupling::Dense {
                    weights: Vec::new(),
                },
                Packed::F64(dense::pack(&weights, n)),
            ),
            Coupling::DenseF32 { weights } => (
                Coupling::DenseF32 {
                    weights: Vec::new(),
                },
                Packed::F32(dense::pack(&weights, n)),
            ),
            other => (other, Packed::None),
        };
        let matrix = !matches!(coupling, Coupling::MeanField { .. });
        let buffer = |len: usize| if matrix { vec![0.0; len] } else { Vec::new() };
        let complex = |len: usize| {
            if matrix {
                vec![Complex64::default(); len]
            } else {
                Vec::new()
            }
        };
        let (rot_re, rot_im) = frequencies
            .iter()
            .map(|omega| {
                let rotation = Complex64::from_polar(1.0, omega * dt / 2.0);
                (rotation.re, rotation.im)
            })
            .unzip();
        let mut network = Kuramoto {
            coupling,
            packed,
            z_re: phases.iter().map(|theta| theta.cos()).collect(),
            z_im: phases.iter().map(|theta| theta.sin()).collect(),
            rot_re,
            rot_im,
            k: complex(n),
            acc: complex(n),
            y_re: buffer(n),
            y_im: buffer(n),
            dt,
            steps: 0,
            mean: Complex64::default(),
        };
        network.mean = network.compute_mean();
        Ok(network)
    }

    /// Oscillators.
    pub fn len(&self) -> usize {
        self.z_re.len()
    }

    /// Whether the network is empty (never: `new` refuses that).
    pub fn is_empty(&self) -> bool {
        self.z_re.is_empty()
    }

    /// The simulated time.
    pub fn time(&self) -> f64 {
        self.steps as f64 * self.dt
    }

    /// The phases, in `(-pi, pi]`.
    pub fn phases(&self) -> Vec<f64> {
        self.z_re
            .iter()
            .zip(&self.z_im)
            .map(|(re, im)| im.atan2(*re))
            .collect()
    }

    /// The order parameter now.
    pub fn order_parameter(&self) -> OrderParameter {
        OrderParameter {
            r: self.mean.norm(),
            psi: self.mean.arg(),
        }
    }

    /// Takes `steps` RK4 steps.
    pub fn advance(&mut self, steps: u64) {
        for _ in 0..steps {
            self.step();
        }
    }

    /// Takes one RK4 step.
    pub fn step(&mut self) {
        match &self.coupling {
            Coupling::MeanField { strength } => {
                let network = mean_field::MeanField {
                    z_re: &mut self.z_re,
                    z_im: &mut self.z_im,
                    rot_re: &self.rot_re,
                    rot_im: &self.rot_im,
                };
                self.mean = network.step(*strength, self.dt, self.mean);
            }
            _ => self.matrix_step(),
        }
        self.steps += 1;
    }

    /// Steps until `r >= threshold` or the simulated time reaches `max_time`.
    ///
    /// # Errors
    /// [`KernelError::InvalidParameter`] for a threshold outside `(0, 1]` or a `max_time`
    /// that is not finite and positive.
    pub fn run_until_sync(
        &mut self,
        threshold: f64,
        max_time: f64,
    ) -> Result<SyncOutcome, KernelError> {
        if !(threshold > 0.0 && threshold <= 1.0) {
            return Err(KernelError::invalid(
                "threshold",
                threshold,
                "must lie in (0, 1]",
            ));
        }
        positive("max_time", max_time)?;
        let started = Instant::now();
        let first_step = self.steps;
        loop {
            let r = self.order_parameter().r;
            let steps = self.steps - first_step;
            if r >= threshold {
                return Ok(SyncOutcome::Synchronized {
                    time: self.time(),
                    steps,
                    compute: started.elapsed(),
                    r,
                });
            }
            if self.time() >= max_time {
                return Ok(SyncOutcome::NotSynchronized {
                    time: self.time(),
                    steps,
                    compute: started.elapsed(),
                    r,
                });
            }
            self.step();
        }
    }

    /// `mean(z)` from the state.
    fn compute_mean(&self) -> Complex64 {
        let re: f64 = self.z_re.iter().sum();
        let im: f64 = self.z_im.iter().sum();
        Complex64::new(re, im) / self.z_re.len() as f64
    }

    /// The integrating-factor RK4 step for a dense or sparse coupling matrix:
    ///
    /// ```text
    /// k1 = N(z)                     acc  = E k1
    /// k2 = N(E2 (z + h/2 k1))       acc += 2 E2 k2
    /// k3 = N(E2 z + h/2 k2)         acc += 2 E2 k3
    /// k4 = N(E z + h E2 k3)         z    = E z + h/6 (acc + k4)
    /// ```
    ///
    /// with `N_i(u) = (F_i |u_i|^2 - u_i^2 conj(F_i)) / 2`, `F_i = sum_j K_ij u_j` and
    /// `E = E2^2` per oscillator.
    fn matrix_step(&mut self) {
        let n = self.len();
        let h = self.dt;
        let parallel = n >= PARALLEL_ROWS;
        for stage in 0..4 {
            for i in 0..n {
                let z = Complex64::new(self.z_re[i], self.z_im[i]);
                let e2 = Complex64::new(self.rot_re[i], self.rot_im[i]);
                let k = self.k[i];
                let y = match stage {
                    0 => z,
                    1 => e2 * (z + k * (0.5 * h)),
                    2 => e2 * z + k * (0.5 * h),
                    _ => e2 * (e2 * z + k * h),
                };
                self.y_re[i] = y.re;
                self.y_im[i] = y.im;
            }
            let (y_re, y_im, coupling, packed) =
                (&self.y_re, &self.y_im, &self.coupling, &self.packed);
            // Rows `first..first + k.len()`: the fields, then `k = N(y)` in place.
            let block = |first: usize, k: &mut [Complex64]| {
                match packed {
                    Packed::F64(weights) => dense::fields_f64(weights, n, first, y_re, y_im, k),
                    Packed::F32(weights) => dense::fields_f32(weights, n, first, y_re, y_im, k),
                    Packed::None => unreachable!("only dense matrices are computed in blocks"),
                }
                for (i, k) in (first..).zip(k.iter_mut()) {
                    *k = nonlinear(Complex64::new(y_re[i], y_im[i]), *k);
                }
            };
            let row = |i: usize| -> Complex64 {
                let field = match coupling {
                    Coupling::Sparse {
                        row_offsets,
                        columns,
                        weights,
                    } => {
                        let entries = row_offsets[i]..row_offsets[i + 1];
                        let mut field = Complex64::default();
                        for (&column, &weight) in
                            columns[entries.clone()].iter().zip(&weights[entries])
                        {
                            field += Complex64::new(y_re[column as usize], y_im[column as usize])
                                * weight;
                        }
                        field
                    }
                    _ => Complex64::default(),
                };
                nonlinear(Complex64::new(y_re[i], y_im[i]), field)
            };
            let dense = !matches!(packed, Packed::None);
            if dense && parallel {
                self.k
                    .par_chunks_mut(ROWS_PER_TASK)
                    .enumerate()
                    .for_each(|(task, k)| block(task * ROWS_PER_TASK, k));
            } else if dense {
                block(0, &mut self.k);
            } else if parallel {
                self.k
                    .par_iter_mut()
                    .enumerate()
                    .for_each(|(i, k)| *k = row(i));
            } else {
                self.k.iter_mut().enumerate().for_each(|(i, k)| *k = row(i));
            }
            for i in 0..n {
                let e2 = Complex64::new(self.rot_re[i], self.rot_im[i]);
                let k = self.k[i];
                match stage {
                    0 => self.acc[i] = e2 * e2 * k,
                    1 | 2 => self.acc[i] += 2.0 * e2 * k,
                    _ => {
                        let z = Complex64::new(self.z_re[i], self.z_im[i]);
                        let next = e2 * e2 * z + (self.acc[i] + k) * (h / 6.0);
                        let next = next * (1.0 / next.norm_sqr().sqrt());
                        self.z_re[i] = next.re;
                        self.z_im[i] = next.im;
                    }
                }
            }
        }
        self.mean = self.compute_mean();
    }
}

/// A dense coupling matrix in the packed layout of [`dense`], or none.
enum Packed {
    None,
    F64(Vec<f64>),
    F32(Vec<f32>),
}

/// The coupling part of `dz/dt` for one oscillator with coupling field
/// `field = sum_j K_ij z_j`: `(field |z|^2 - z^2 conj(field)) / 2`.
#[inline(always)]
fn nonlinear(z: Complex64, field: Complex64) -> Complex64 {
    (field * z.norm_sqr() - z * z * field.conj()) * 0.5
}

fn check_finite<T: Copy + Into<f64>>(name: &'static str, values: &[T]) -> Result<(), KernelError> {
    match values.iter().position(|&value| !value.into().is_finite()) {
        Some(index) => Err(KernelError::NonFinite { name, index }),
        None => Ok(()),
    }
}

/// A dense matrix of `len` weights for `n` oscillators must be `n x n`.
fn square_weights(len: usize, n: usize) -> Result<(), KernelError> {
    if len == n * n {
        Ok(())
    } else {
        Err(KernelError::WrongSize {
            name: "weights",
            expected: n * n,
            found: len,
        })
    }
}

fn validate_coupling(coupling: &Coupling, n: usize) -> Result<(), KernelError> {
    match coupling {
        Coupling::MeanField { strength } => {
            finite("strength", *strength)?;
        }
        Coupling::Dense { weights } => {
            square_weights(weights.len(), n)?;
            check_finite("weights", weights)?;
        }
        Coupling::DenseF32 { weights } => {
            square_weights(weights.len(), n)?;
            check_finite("weights", weights)?;
        }
        Coupling::Sparse {
            row_offsets,
            columns,
            weights,
        } => {
            if row_offsets.len() != n + 1 {
                return Err(KernelError::WrongSize {
                    name: "row_offsets",
                    expected: n + 1,
                    found: row_offsets.len(),
                });
            }
            if columns.len() != weights.len() {
                return Err(KernelError::WrongSize {
                    name: "weights",
                    expected: columns.len(),
                    found: weights.len(),
                });
            }
            if row_offsets[0] != 0
                || row_offsets.windows(2).any(|pair| pair[0] > pair[1])
                || row_offsets[n] != columns.len()
            {
                return Err(KernelError::invalid(
                    "row_offsets",
                    "(see the matrix)",
                    "must start at 0, never decrease, and end at the number of entries",
                ));
            }
            if let Some(&column) = columns.iter().find(|&&column| column as usize >= n) {
                return Err(KernelError::invalid(
                    "columns",
                    column,
                    "every column must be below N",
                ));
            }
            check_finite("weights", weights)?;
        }
    }
    Ok(())
}
