//! The numerical kernels of NFCS: the complex Ginzburg-Landau field and Kuramoto oscillators.
//!
//! `nfcs-math-kernels` depends on no other crate of nfcs-perf. It provides
//!
//! - [`cgl`]: the complex Ginzburg-Landau equation `A_t = A + (1 + i b) lap(A) - (1 + i c)
//!   |A|^2 A` on a periodic square, by pseudo-spectral ETDRK4 (Cox & Matthews) with stably
//!   evaluated coefficients (Kassam & Trefethen), FFTs by `rustfft`, rows across threads by
//!   `rayon`, no allocation per step; and a plain finite-difference RK4 stepper
//!   ([`cgl::reference`]) for cross-checks;
//! - [`kuramoto`]: phase oscillators with mean-field, dense or sparse coupling, RK4 without
//!   trigonometry (the state is `e^(i theta)`), the order parameter, and the time to
//!   synchronise.
//!
//! Both are checked against analytic solutions (plane waves, linear growth rates, the uniform
//! nonlinear solution, the Benjamin-Feir-Newell criterion, the closed-form two-oscillator
//! solution, Kuramoto's self-consistent `r = sqrt(1 - 2 gamma / K)`) and against their fourth
//! order of convergence.
//!
//! # Example
//!
//! ```
//! use nfcs_math_kernels::cgl::{CglParams, CglSolver, InitialCondition};
//! use nfcs_math_kernels::kuramoto::{Coupling, Kuramoto, uniform_phases};
//!
//! // A plane wave is an exact solution: its amplitude stays sqrt(1 - k^2).
//! let params = CglParams::new(32, 32.0, 0.05, 0.5, 0.3);
//! let mut solver = CglSolver::new(params, InitialCondition::PlaneWave { mode_x: 2, mode_y: 1 })?;
//! solver.advance(100)?;
//! let k2 = (2.0 * std::f64::consts::PI / 32.0_f64).powi(2) * 5.0;
//! assert!((solver.mean_intensity() - (1.0 - k2)).abs() < 1e-6); // ETDRK4 error at dt = 0.05: 1e-7
//!
//! // Identical oscillators synchronise.
//! let mut network = Kuramoto::new(vec![1.0; 100], Coupling::MeanField { strength: 2.0 }, uniform_phases(100, 1), 0.01)?;
//! network.advance(2000);
//! assert!(network.order_parameter().r > 0.999);
//! # Ok::<(), nfcs_math_kernels::KernelError>(())
//! ```
//!
//! # Feature flags
//!
//! None. Everything computes in `f64`; a dense coupling matrix may be stored in `f32`
//! ([`kuramoto::Coupling::DenseF32`], half the bytes a step streams), its products and sums
//! still in `f64`.

// The one exception is `simd.rs`: runtime-detected AVX2/AVX-512 versions of the hot loops,
// each call guarded by the CPU check and commented with `// SAFETY:`.
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod cgl;
mod error;
mod fft2;
pub mod kuramoto;
#[macro_use]
mod simd;

pub use error::KernelError;
pub use num_complex::Complex64;
