//! A plain reference stepper: second-order finite differences in space, classic RK4 in time.
//!
//! Written for clarity, not speed, and independent of the spectral solver (no FFT, no
//! exponential integrator), so that the two can check each other. Being explicit, it needs
//! `dt` well below `dx^2 / (4 |1 + i b|)`.

use num_complex::Complex64;

use super::{CglParams, InitialCondition, initial_field};
use crate::error::KernelError;

/// The finite-difference RK4 stepper.
///
/// ```
/// use nfcs_math_kernels::cgl::{CglParams, InitialCondition};
/// use nfcs_math_kernels::cgl::reference::ReferenceCgl;
///
/// let params = CglParams::new(16, 20.0, 0.01, 0.5, 0.5);
/// let mut reference = ReferenceCgl::new(params, InitialCondition::Uniform { re: 0.5, im: 0.0 })?;
/// for _ in 0..100 {
///     reference.step();
/// }
/// assert!((reference.time() - 1.0).abs() < 1e-12);
/// # Ok::<(), nfcs_math_kernels::KernelError>(())
/// ```
pub struct ReferenceCgl {
    params: CglParams,
    field: Vec<Complex64>,
    stage: Vec<Complex64>,
    k: [Vec<Complex64>; 4],
    steps: u64,
}

impl ReferenceCgl {
    /// A stepper at `t = 0`.
    ///
    /// # Errors
    /// As [`CglSolver::new`](super::CglSolver::new).
    pub fn new(params: CglParams, initial: InitialCondition) -> Result<ReferenceCgl, KernelError> {
        params.validate()?;
        let field = initial_field(&params, initial)?;
        let zeros = vec![Complex64::default(); field.len()];
        Ok(ReferenceCgl {
            params,
            stage: zeros.clone(),
            k: [zeros.clone(), zeros.clone(), zeros.clone(), zeros],
            field,
            steps: 0,
        })
    }

    /// The field, row-major.
    pub fn field(&self) -> &[Complex64] {
        &self.field
    }

    /// The simulated time.
    pub fn time(&self) -> f64 {
        self.steps as f64 * self.params.dt
    }

    /// One RK4 step.
    pub fn step(&mut self) {
        let h = self.params.dt;
        let weights = [0.5, 0.5, 1.0];
        rhs(&self.params, &self.field, &mut self.k[0]);
        for (stage, weight) in weights.into_iter().enumerate() {
            for ((s, a), k) in self.stage.iter_mut().zip(&self.field).zip(&self.k[stage]) {
                *s = a + k * (weight * h);
            }
            rhs(&self.params, &self.stage, &mut self.k[stage + 1]);
        }
        for (i, a) in self.field.iter_mut().enumerate() {
            *a +=
                (self.k[0][i] + 2.0 * self.k[1][i] + 2.0 * self.k[2][i] + self.k[3][i]) * (h / 6.0);
        }
        self.steps += 1;
    }
}

/// `out = a + (1 + i b) lap(a) - (1 + i c) |a|^2 a`, with the 5-point Laplacian.
fn rhs(params: &CglParams, a: &[Complex64], out: &mut [Complex64]) {
    let n = params.grid_size;
    let dx = params.length / n as f64;
    let dispersion = Complex64::new(1.0, params.b) / (dx * dx);
    let nonlinear = Complex64::new(1.0, params.c);
    for y in 0..n {
        let (up, down) = ((y + n - 1) % n, (y + 1) % n);
        for x in 0..n {
            let (left, right) = ((x + n - 1) % n, (x + 1) % n);
            let centre = a[y * n + x];
            let laplacian =
                a[y * n + left] + a[y * n + right] + a[up * n + x] + a[down * n + x] - 4.0 * centre;
            out[y * n + x] =
                centre + dispersion * laplacian - nonlinear * centre.norm_sqr() * centre;
        }
    }
}
