//! The CGL solver against exact solutions, linear theory and its convergence order.

use std::f64::consts::PI;

use nfcs_math_kernels::Complex64;
use nfcs_math_kernels::cgl::reference::ReferenceCgl;
use nfcs_math_kernels::cgl::{CglParams, CglResult, CglSolver, InitialCondition};

/// `k` for mode `m` on a square of side `length`.
fn wavenumber(mode: i64, length: f64) -> f64 {
    2.0 * PI * mode as f64 / length
}

/// A field built point by point from `(x, y)`.
fn field(n: usize, length: f64, value: impl Fn(f64, f64) -> Complex64) -> Vec<Complex64> {
    let dx = length / n as f64;
    (0..n * n)
        .map(|index| value((index % n) as f64 * dx, (index / n) as f64 * dx))
        .collect()
}

/// Phase difference wrapped to (-pi, pi].
fn wrapped(angle: f64) -> f64 {
    let wrapped = angle.rem_euclid(2.0 * PI);
    if wrapped > PI {
        wrapped - 2.0 * PI
    } else {
        wrapped
    }
}

#[test]
fn plane_waves_keep_their_amplitude_and_rotate_at_the_predicted_frequency() {
    // A = sqrt(1 - k^2) exp(i (k.x - omega t)), omega = b k^2 + c (1 - k^2).
    for (b, c, mode_x, mode_y) in [(0.5, 0.3, 2, 1), (-1.2, 0.8, 1, -3), (2.0, -1.5, 0, 4)] {
        let length = 40.0;
        let params = CglParams::new(32, length, 0.02, b, c);
        let mut solver =
            CglSolver::new(params, InitialCondition::PlaneWave { mode_x, mode_y }).unwrap();
        let (kx, ky) = (wavenumber(mode_x, length), wavenumber(mode_y, length));
        let k2 = kx * kx + ky * ky;
        let amplitude = (1.0 - k2).sqrt();
        let omega = b * k2 + c * (1.0 - k2);
        solver.advance(500).unwrap(); // t = 10
        let t = solver.time();
        let values = solver.field();
        let expected = field(32, length, |x, y| {
            Complex64::from_polar(amplitude, kx * x + ky * y - omega * t)
        });
        let error = values
            .iter()
            .zip(&expected)
            .map(|(got, want)| (got - want).norm())
            .fold(0.0, f64::max);
        assert!(error < 1e-8, "b = {b}, c = {c}: max error {error:e}");
        let mode = solver.mode(mode_x, mode_y);
        assert!((mode.norm() - amplitude).abs() < 1e-8, "amplitude");
        assert!(wrapped(mode.arg() + omega * t).abs() < 1e-8, "frequency");
    }
}

#[test]
fn small_fourier_modes_grow_or_decay_at_the_linear_rate() {
    // Linearised: each mode evolves as exp((1 - k^2) t - i b k^2 t).
    let (n, length, b) = (32, 20.0, 0.7);
    let epsilon = 1e-9;
    let modes = [(1_i64, 0_i64), (3, 2), (0, -5), (8, 1)];
    let initial = field(n, length, |x, y| {
        modes
            .iter()
            .map(|&(mx, my)| {
                Complex64::from_polar(
                    epsilon,
                    wavenumber(mx, length) * x + wavenumber(my, length) * y,
                )
            })
            .sum()
    });
    let params = CglParams::new(n, length, 0.05, b, -0.9);
    let mut solver = CglSolver::new(params, InitialCondition::Field(initial)).unwrap();
    solver.advance(100).unwrap(); // t = 5
    let t = solver.time();
    for (mx, my) in modes {
        let k2 = wavenumber(mx, length).powi(2) + wavenumber(my, length).powi(2);
        let expected = Complex64::from_polar(epsilon * ((1.0 - k2) * t).exp(), -b * k2 * t);
        let got = solver.mode(mx, my);
        let relative = (got - expected).norm() / expected.norm();
        assert!(
            relative < 1e-9,
            "mode ({mx}, {my}), k^2 = {k2}: relative error {relative:e}"
        );
    }
    // Modes that were never excited stay empty (to the nonlinear order epsilon^3).
    assert!(solver.mode(2, 2).norm() < 1e-20);
}

/// The spatially uniform solution from `A(0) = a0`: `rho = |A|^2` solves the logistic equation
/// `rho' = 2 rho (1 - rho)` and the phase turns at `-c rho`.
fn uniform_exact(a0: Complex64, c: f64, t: f64) -> Complex64 {
    let rho0 = a0.norm_sqr();
    let growth = 1.0 + rho0 * ((2.0 * t).exp() - 1.0);
    let rho = rho0 * (2.0 * t).exp() / growth;
    Complex64::from_polar(rho.sqrt(), a0.arg() - 0.5 * c * growth.ln())
}

fn uniform_error(dt: f64, steps: u64) -> f64 {
    let a0 = Complex64::new(0.05, 0.02);
    let c = 1.7;
    let params = CglParams::new(4, 10.0, dt, 0.4, c);
    let mut solver = CglSolver::new(
        params,
        InitialCondition::Uniform {
            re: a0.re,
            im: a0.im,
        },
    )
    .unwrap();
    solver.advance(steps).unwrap();
    let exact = uniform_exact(a0, c, solver.time());
    solver
        .field()
        .iter()
        .map(|value| (value - exact).norm())
        .fold(0.0, f64::max)
}

#[test]
fn the_uniform_nonlinear_solution_is_followed() {
    let error = uniform_error(0.01, 400); // t = 4, through the whole saturation
    assert!(error < 1e-8, "error {error:e}");
}

#[test]
fn etdrk4_converges_at_fourth_order_to_the_exact_uniform_solution() {
    let errors: Vec<f64> = [0.2, 0.1, 0.05, 0.025]
        .iter()
        .map(|&dt| uniform_error(dt, (4.0 / dt).round() as u64))
        .collect();
    for pair in errors.windows(2) {
        let order = (pair[0] / pair[1]).log2();
        assert!(
            (3.7..4.4).contains(&order),
            "errors {errors:.3?}, order {order}"
        );
    }
}

/// A smooth, spatially varying run at time step `dt` to `t = 2`.
fn smooth_run(dt: f64) -> Vec<Complex64> {
    let (n, length) = (16, 16.0);
    let k = wavenumber(1, length);
    let initial = field(n, length, |x, y| {
        Complex64::new(
            0.4 + 0.2 * (k * x).cos(),
            0.3 * (k * y).sin() + 0.1 * (k * (x + y)).cos(),
        )
    });
    let params = CglParams::new(n, length, dt, 1.5, -1.2);
    let mut solver = CglSolver::new(params, InitialCondition::Field(initial)).unwrap();
    solver.advance((2.0 / dt).round() as u64).unwrap();
    solver.field()
}

#[test]
fn etdrk4_converges_at_fourth_order_on_a_spatially_varying_field() {
    // Richardson: successive differences shrink by 2^4 when dt halves.
    let runs: Vec<Vec<Complex64>> = [0.2, 0.1, 0.05, 0.025]
        .iter()
        .map(|&dt| smooth_run(dt))
        .collect();
    let differences: Vec<f64> = runs
        .windows(2)
        .map(|pair| {
            pair[0]
                .iter()
                .zip(&pair[1])
                .map(|(a, b)| (a - b).norm())
                .fold(0.0, f64::max)
        })
        .collect();
    for pair in differences.windows(2) {
        let order = (pair[0] / pair[1]).log2();
        assert!(
            (3.7..4.4).contains(&order),
            "differences {differences:.3?}, order {order}"
        );
    }
}

/// The growth rate of the mode `(mode, 0)` perturbing the uniform oscillation `exp(-i c t)`,
/// measured between `t = 20` and `t = 40`.
fn measured_growth(b: f64, c: f64, mode: i64) -> f64 {
    let (n, length, epsilon) = (16, 100.0, 1e-7);
    let k = wavenumber(mode, length);
    let initial = field(n, length, |x, _| {
        Complex64::new(1.0 + epsilon * (k * x).cos(), 0.0)
    });
    let params = CglParams::new(n, length, 0.05, b, c);
    let mut solver = CglSolver::new(params, InitialCondition::Field(initial)).unwrap();
    solver.advance(400).unwrap();
    let early = solver.mode(mode, 0).norm();
    solver.advance(400).unwrap();
    let late = solver.mode(mode, 0).norm();
    (late / early).ln() / 20.0
}

#[test]
fn benjamin_feir_newell_uniform_oscillation_is_unstable_exactly_when_1_plus_bc_is_negative() {
    // lambda(k) = -(1 + k^2) + sqrt(1 - 2 b c k^2 - b^2 k^4); for small k, -(1 + b c) k^2.
    for (b, c) in [
        (2.0, -0.6),
        (2.0, -0.4),
        (-1.0, 1.5),
        (1.0, 1.0),
        (3.0, -0.3),
        (0.5, -2.5),
    ] {
        let k = wavenumber(1, 100.0);
        let predicted = -(1.0 + k * k) + (1.0 - 2.0 * b * c * k * k - b * b * k.powi(4)).sqrt();
        let measured = measured_growth(b, c, 1);
        assert!(
            (measured - predicted).abs() < 1e-3 * predicted.abs().max(1e-3),
            "b = {b}, c = {c}: measured {measured:e}, predicted {predicted:e}"
        );
        assert_eq!(measured > 0.0, 1.0 + b * c < 0.0, "b = {b}, c = {c}");
    }
}

#[test]
fn the_finite_difference_reference_converges_to_the_spectral_solution_at_second_order() {
    // The spectral solver is exact in space for this band-limited start; the 5-point
    // Laplacian is second order, so the difference shrinks fourfold when dx halves.
    let length = 12.0;
    let k = wavenumber(1, length);
    let difference = |n: usize| {
        let start = |x: f64, y: f64| Complex64::new(0.5 + 0.2 * (k * x).cos(), 0.2 * (k * y).sin());
        let params = CglParams::new(n, length, 0.005, 0.8, -0.6);
        let mut spectral =
            CglSolver::new(params, InitialCondition::Field(field(n, length, start))).unwrap();
        let mut reference =
            ReferenceCgl::new(params, InitialCondition::Field(field(n, length, start))).unwrap();
        spectral.advance(200).unwrap();
        for _ in 0..200 {
            reference.step();
        }
        spectral
            .field()
            .iter()
            .zip(reference.field())
            .map(|(a, b)| (a - b).norm())
            .fold(0.0, f64::max)
    };
    let (coarse, fine) = (difference(16), difference(32));
    let order = (coarse / fine).log2();
    assert!(coarse < 1e-2, "coarse difference {coarse:e}");
    assert!(
        (1.8..2.2).contains(&order),
        "differences {coarse:e} {fine:e}, order {order}"
    );
}

#[test]
fn noise_grows_into_the_saturated_state_identically_for_the_same_seed() {
    let params = CglParams::new(64, 50.0, 0.05, 1.0, -0.5);
    let run = |seed| {
        let mut solver = CglSolver::new(
            params,
            InitialCondition::Noise {
                amplitude: 0.01,
                seed,
            },
        )
        .unwrap();
        solver.advance(300).unwrap();
        solver.result()
    };
    let (first, again, other) = (run(3), run(3), run(4));
    assert_eq!(first, again);
    assert_ne!(first.field, other.field);
    // 1 + b c > 0: the state saturates near |A| = 1 (up to defects and waves).
    assert!(
        (0.6..1.0).contains(&first.mean_intensity),
        "{}",
        first.mean_intensity
    );
    let mean_from_field = first
        .field
        .iter()
        .map(|value| value.norm_sqr())
        .sum::<f64>()
        / first.field.len() as f64;
    assert!((mean_from_field - first.mean_intensity).abs() < 1e-12);
}

#[test]
fn large_grids_split_across_threads_agree_with_the_definition() {
    // 128^2 runs its rows on rayon; the plane wave checks it end to end.
    let length = 128.0;
    let params = CglParams::new(128, length, 0.05, 0.9, 0.4);
    let mut solver = CglSolver::new(
        params,
        InitialCondition::PlaneWave {
            mode_x: 5,
            mode_y: -7,
        },
    )
    .unwrap();
    solver.advance(40).unwrap();
    let (kx, ky) = (wavenumber(5, length), wavenumber(-7, length));
    let k2 = kx * kx + ky * ky;
    let omega = 0.9 * k2 + 0.4 * (1.0 - k2);
    let t = solver.time();
    let expected = field(128, length, |x, y| {
        Complex64::from_polar((1.0 - k2).sqrt(), kx * x + ky * y - omega * t)
    });
    let error = solver
        .field()
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).norm())
        .fold(0.0, f64::max);
    // ETDRK4's own error at dt = 0.05 is about 1e-7 here; a broken parallel path is O(1).
    assert!(error < 1e-6, "{error:e}");
}

#[test]
fn parameters_and_results_round_trip_through_serde_and_hash_stably() {
    let params = CglParams::new(16, 20.0, 0.05, 1.5, -1.2);
    // Golden value: a change of the hash (which would orphan every cached result) fails here.
    assert_eq!(params.stable_hash(), GOLDEN_HASH);
    let mut solver = CglSolver::new(
        params,
        InitialCondition::Noise {
            amplitude: 0.1,
            seed: 1,
        },
    )
    .unwrap();
    solver.advance(10).unwrap();
    let result = solver.result();
    let json = serde_json::to_string(&result).unwrap();
    let back: CglResult = serde_json::from_str(&json).unwrap();
    assert_eq!(back, result);
    let params_back: CglParams =
        serde_json::from_str(&serde_json::to_string(&params).unwrap()).unwrap();
    assert_eq!(params_back.stable_hash(), params.stable_hash());
}

/// XXH3-64 of the parameters' little-endian bytes (`u64` grid size, then `length`, `dt`, `b`,
/// `c` as `f64`), computed independently with Python's `xxhash` package:
/// `xxhash.xxh3_64_intdigest(struct.pack("<Qdddd", 16, 20.0, 0.05, 1.5, -1.2))`.
const GOLDEN_HASH: &str = "869e6bb4a42f905a";
