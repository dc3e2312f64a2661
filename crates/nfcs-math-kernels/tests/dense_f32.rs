//! A coupling matrix stored in `f32` (`Coupling::DenseF32`): what it computes and how far that
//! is from the `f64` solver and from the analytic results.
//!
//! The weights are rounded to `f32` once; the products and sums stay `f64`. So an `f32` matrix
//! must give exactly the bits of an `f64` matrix holding the rounded weights, follow the
//! two-oscillator closed form for the rounded coupling as closely as the `f64` solver follows
//! it for its own, and differ from the unrounded problem only by what a relative `2^-24`
//! change of the weights does.

#![allow(clippy::unwrap_used)]

use nfcs_math_kernels::kuramoto::{
    Coupling, Kuramoto, gaussian, lorentzian_quantiles, uniform_phases,
};

/// Phase difference wrapped to (-pi, pi].
fn wrapped(angle: f64) -> f64 {
    let wrapped = angle.rem_euclid(std::f64::consts::TAU);
    if wrapped > std::f64::consts::PI {
        wrapped - std::f64::consts::TAU
    } else {
        wrapped
    }
}

fn max_phase_difference(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(a, b)| wrapped(a - b).abs())
        .fold(0.0, f64::max)
}

/// A general matrix of `n` (entries from 2/n to 6/n, no symmetry).
fn general_weights(n: usize) -> Vec<f64> {
    (0..n * n)
        .map(|index| (2.0 + ((index * 7919) % 101) as f64 / 25.0) / n as f64)
        .collect()
}

#[test]
fn an_f32_matrix_computes_exactly_what_an_f64_matrix_of_the_rounded_weights_does() {
    // 301 rows: the parallel path, a short last group of rows and a column tail.
    for n in [7, 301] {
        let weights: Vec<f32> = general_weights(n).iter().map(|&w| w as f32).collect();
        let run = |coupling: Coupling| {
            let mut network = Kuramoto::new(
                gaussian(n, 0.0, 1.0, 8),
                coupling,
                uniform_phases(n, 9),
                0.05,
            )
            .unwrap();
            network.advance(50);
            network.phases()
        };
        let single = run(Coupling::DenseF32 {
            weights: weights.clone(),
        });
        let double = run(Coupling::Dense {
            weights: weights.iter().map(|&w| f64::from(w)).collect(),
        });
        let bits = |phases: &[f64]| phases.iter().map(|p| p.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&single), bits(&double), "N = {n}");
    }
}

#[test]
fn an_f32_matrix_stays_within_the_weight_rounding_of_the_f64_solver() {
    let (n, dt, steps) = (301, 0.02, 500);
    let weights = general_weights(n);
    let run = |coupling: Coupling| {
        let mut network =
            Kuramoto::new(gaussian(n, 0.0, 1.0, 3), coupling, uniform_phases(n, 4), dt).unwrap();
        network.advance(steps);
        (network.phases(), network.order_parameter().r)
    };
    let (double, r_double) = run(Coupling::Dense {
        weights: weights.clone(),
    });
    let (single, r_single) = run(Coupling::DenseF32 {
        weights: weights.iter().map(|&w| w as f32).collect(),
    });
    let error = max_phase_difference(&single, &double);
    println!(
        "N = {n}, t = 10: f32 - f64 phases up to {error:.1e}, r {:.1e}",
        r_single - r_double
    );
    // Weights change by at most 2^-24 relative, about 6e-8; over t = 10 with couplings of
    // order 4 the phases move by a few times that.
    assert!(error < 1e-6, "phase error {error:e}");
    assert!(error > 0.0, "the rounding must show");
    assert!(
        (r_single - r_double).abs() < 1e-6,
        "r {r_single} vs {r_double}"
    );
}

/// Two identical oscillators with `K_ij = weight` for all four entries: the difference
/// `phi = theta_2 - theta_1` solves `phi' = -2 weight sin(phi)`.
fn two_oscillator_phi(coupling: Coupling, time: f64, dt: f64) -> (f64, f64) {
    let phi0 = 2.5;
    let mut network = Kuramoto::new(vec![0.7, 0.7], coupling, vec![0.0, phi0], dt).unwrap();
    network.advance((time / dt).round() as u64);
    let phases = network.phases();
    (phases[1] - phases[0], network.time())
}

fn closed_form(k: f64, time: f64) -> f64 {
    2.0 * ((2.5_f64 / 2.0).tan() * (-k * time).exp()).atan()
}

#[test]
fn an_f32_matrix_follows_the_two_oscillator_closed_form_of_its_rounded_coupling() {
    let k = 1.3; // K_ij = 0.65, which f32 rounds (by 1.5e-8)
    let rounded = 2.0 * f64::from((k / 2.0) as f32);
    assert!(rounded != k);
    for time in [0.5, 2.0, 6.0] {
        let (phi, t) = two_oscillator_phi(
            Coupling::DenseF32 {
                weights: vec![(k / 2.0) as f32; 4],
            },
            time,
            0.01,
        );
        // Against its own (rounded) coupling: as close as the f64 solver gets (1e-10).
        let own = wrapped(phi - closed_form(rounded, t)).abs();
        assert!(own < 1e-10, "t = {time}: error {own:e}");
        // Against the exact coupling: the first-order effect of the rounding,
        // |d phi / d k| (k - rounded) with d phi / d k = -t sin(phi).
        let exact = wrapped(phi - closed_form(k, t)).abs();
        let predicted = t * closed_form(k, t).sin().abs() * (k - rounded).abs();
        assert!(
            (exact - predicted).abs() < 1e-10 + 0.01 * predicted,
            "t = {time}: error {exact:e}, rounding predicts {predicted:e}"
        );
        println!(
            "t = {time}: error against the closed form {exact:.2e} (rounding {predicted:.2e}), against the rounded coupling {own:.2e}"
        );
    }
}

/// `r` averaged over `t` in `[settle, settle + window]`.
fn time_averaged_r(network: &mut Kuramoto, settle: f64, window: f64, dt: f64) -> f64 {
    network.advance((settle / dt).round() as u64);
    let samples = (window / dt).round() as u64;
    let mut sum = 0.0;
    for _ in 0..samples {
        network.step();
        sum += network.order_parameter().r;
    }
    sum / samples as f64
}

#[test]
fn an_f32_all_to_all_matrix_gives_kuramotos_self_consistent_order_parameter() {
    // Width gamma: above K_c = 2 gamma, r = sqrt(1 - 2 gamma / K). K / N = 0.004 and 0.002
    // are not f32 numbers, so the rounding is in play.
    let (n, gamma, dt) = (1000, 0.5, 0.05);
    for strength in [2.0, 4.0] {
        let weight = strength / n as f64;
        let run = |coupling: Coupling| {
            let mut network = Kuramoto::new(
                lorentzian_quantiles(n, 0.0, gamma),
                coupling,
                uniform_phases(n, 5),
                dt,
            )
            .unwrap();
            time_averaged_r(&mut network, 40.0, 20.0, dt)
        };
        let single = run(Coupling::DenseF32 {
            weights: vec![weight as f32; n * n],
        });
        let double = run(Coupling::Dense {
            weights: vec![weight; n * n],
        });
        let predicted = (1.0 - 2.0 * gamma / strength).sqrt();
        println!(
            "K = {strength}: r f32 {single:.6}, f64 {double:.6}, predicted {predicted:.6}, f32 - f64 {:.1e}",
            single - double
        );
        assert!(
            (single - predicted).abs() < 0.02,
            "K = {strength}: r = {single}, predicted {predicted}"
        );
        assert!(
            (single - double).abs() < 1e-5,
            "K = {strength}: f32 r = {single}, f64 r = {double}"
        );
    }
}
