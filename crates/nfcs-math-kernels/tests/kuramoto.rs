//! Kuramoto networks against closed forms, Kuramoto's self-consistency and convergence order.

use nfcs_math_kernels::kuramoto::{
    Coupling, Kuramoto, SyncOutcome, gaussian, lorentzian, lorentzian_quantiles, uniform_phases,
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

/// Two identical oscillators under mean-field coupling `k` (`K_ij = k / 2`): the difference
/// `phi = theta_2 - theta_1` solves `phi' = -k sin(phi)`, so `tan(phi/2) = tan(phi0/2) e^(-k t)`.
fn two_oscillator_error(dt: f64, time: f64) -> f64 {
    let (k, phi0) = (1.3, 2.5);
    let mut network = Kuramoto::new(
        vec![0.7, 0.7],
        Coupling::MeanField { strength: k },
        vec![0.0, phi0],
        dt,
    )
    .unwrap();
    network.advance((time / dt).round() as u64);
    let phases = network.phases();
    let exact = 2.0 * ((phi0 / 2.0).tan() * (-k * network.time()).exp()).atan();
    let mut error = wrapped(phases[1] - phases[0] - exact).abs();
    // The common phase turns at omega (the coupling is symmetric): theta_1 + theta_2 = 2 omega t + phi0.
    error = error.max(wrapped(phases[0] + phases[1] - 2.0 * 0.7 * network.time() - phi0).abs());
    error
}

#[test]
fn two_identical_oscillators_follow_the_closed_form_phase_difference() {
    for time in [0.5, 2.0, 6.0] {
        let error = two_oscillator_error(0.01, time);
        assert!(error < 1e-10, "t = {time}: error {error:e}");
    }
}

#[test]
fn rk4_converges_at_fourth_order_to_the_closed_form() {
    let errors: Vec<f64> = [0.2, 0.1, 0.05, 0.025]
        .iter()
        .map(|&dt| two_oscillator_error(dt, 4.0))
        .collect();
    for pair in errors.windows(2) {
        let order = (pair[0] / pair[1]).log2();
        assert!(
            (3.7..4.4).contains(&order),
            "errors {errors:.3?}, order {order}"
        );
    }
}

#[test]
fn rk4_converges_at_fourth_order_on_a_heterogeneous_network() {
    // Richardson on 200 oscillators with Gaussian frequencies, the mean field and a sparse ring.
    let n = 200;
    let ring = || {
        let mut row_offsets = vec![0];
        let (mut columns, mut weights) = (Vec::new(), Vec::new());
        for i in 0..n {
            for j in [(i + n - 1) % n, (i + 1) % n] {
                columns.push(j as u32);
                weights.push(1.5);
            }
            row_offsets.push(columns.len());
        }
        Coupling::Sparse {
            row_offsets,
            columns,
            weights,
        }
    };
    for (name, coupling) in [
        ("mean field", Coupling::MeanField { strength: 2.0 }),
        ("ring", ring()),
    ] {
        let run = |dt: f64| {
            let mut network = Kuramoto::new(
                gaussian(n, 0.0, 1.0, 9),
                coupling.clone(),
                uniform_phases(n, 4),
                dt,
            )
            .unwrap();
            network.advance((3.0 / dt).round() as u64);
            network.phases()
        };
        let runs: Vec<Vec<f64>> = [0.1, 0.05, 0.025, 0.0125]
            .iter()
            .map(|&dt| run(dt))
            .collect();
        let differences: Vec<f64> = runs
            .windows(2)
            .map(|pair| {
                pair[0]
                    .iter()
                    .zip(&pair[1])
                    .map(|(a, b)| wrapped(a - b).abs())
                    .fold(0.0, f64::max)
            })
            .collect();
        for pair in differences.windows(2) {
            let order = (pair[0] / pair[1]).log2();
            assert!(
                (3.7..4.4).contains(&order),
                "{name}: differences {differences:.3?}, order {order}"
            );
        }
    }
}

#[test]
fn identical_oscillators_reach_full_synchrony() {
    let n = 1000;
    let mut network = Kuramoto::new(
        vec![0.3; n],
        Coupling::MeanField { strength: 1.0 },
        uniform_phases(n, 11),
        0.05,
    )
    .unwrap();
    let start = network.order_parameter().r;
    assert!(start < 0.1, "random phases start incoherent: r = {start}");
    network.advance(1000); // t = 50
    let r = network.order_parameter().r;
    assert!(r > 1.0 - 1e-9, "r = {r}");
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
fn lorentzian_frequencies_give_kuramotos_self_consistent_order_parameter() {
    // Width gamma: K_c = 2 gamma and, above it, r = sqrt(1 - 2 gamma / K).
    let (n, gamma, dt) = (50_000, 0.5, 0.05);
    for strength in [1.5, 2.0, 4.0] {
        let mut network = Kuramoto::new(
            lorentzian_quantiles(n, 0.0, gamma),
            Coupling::MeanField { strength },
            uniform_phases(n, 5),
            dt,
        )
        .unwrap();
        let r = time_averaged_r(&mut network, 60.0, 20.0, dt);
        let predicted = (1.0 - 2.0 * gamma / strength).sqrt();
        assert!(
            (r - predicted).abs() < 0.01,
            "K = {strength}: r = {r}, predicted {predicted}"
        );
    }
}

#[test]
fn below_the_critical_coupling_r_stays_at_the_finite_size_noise_level() {
    // K = K_c / 2 with random Lorentzian frequencies: r fluctuates at about 1 / sqrt(N).
    let (n, dt) = (10_000, 0.05);
    let mut network = Kuramoto::new(
        lorentzian(n, 0.0, 0.5, 21),
        Coupling::MeanField { strength: 0.5 },
        uniform_phases(n, 22),
        dt,
    )
    .unwrap();
    let r = time_averaged_r(&mut network, 50.0, 50.0, dt);
    let noise = 1.0 / (n as f64).sqrt();
    assert!(r < 3.0 * noise, "r = {r}, noise level {noise}");
    assert!(
        r > 0.2 * noise,
        "r = {r}: a finite network is never perfectly incoherent"
    );
}

#[test]
fn a_dense_matrix_and_a_sparse_all_to_all_network_reproduce_the_mean_field() {
    let (n, strength, dt) = (64, 1.7, 0.02);
    let frequencies = lorentzian(n, 0.2, 0.3, 8);
    let phases = uniform_phases(n, 3);
    let weight = strength / n as f64;
    let dense = Coupling::Dense {
        weights: vec![weight; n * n],
    };
    let sparse = Coupling::Sparse {
        row_offsets: (0..=n).map(|i| i * n).collect(),
        columns: (0..n * n).map(|index| (index % n) as u32).collect(),
        weights: vec![weight; n * n],
    };
    let run = |coupling: Coupling| {
        let mut network = Kuramoto::new(frequencies.clone(), coupling, phases.clone(), dt).unwrap();
        network.advance(500);
        (network.phases(), network.order_parameter())
    };
    let (mean_phases, mean_order) = run(Coupling::MeanField { strength });
    for coupling in [dense, sparse] {
        let (phases, order) = run(coupling);
        let error = phases
            .iter()
            .zip(&mean_phases)
            .map(|(a, b)| wrapped(a - b).abs())
            .fold(0.0, f64::max);
        assert!(error < 1e-10, "phase error {error:e}");
        assert!((order.r - mean_order.r).abs() < 1e-12);
    }
    // And the dense path in its parallel form (N >= 256) too.
    let n = 300;
    let run = |coupling: Coupling| {
        let mut network =
            Kuramoto::new(gaussian(n, 0.0, 0.5, 1), coupling, uniform_phases(n, 2), dt).unwrap();
        network.advance(200);
        network.phases()
    };
    let mean = run(Coupling::MeanField { strength });
    let dense = run(Coupling::Dense {
        weights: vec![strength / n as f64; n * n],
    });
    let error = dense
        .iter()
        .zip(&mean)
        .map(|(a, b)| wrapped(a - b).abs())
        .fold(0.0, f64::max);
    assert!(error < 1e-10, "N = 300: phase error {error:e}");
}

#[test]
fn large_mean_field_networks_run_in_parallel_chunks_and_match_an_accurate_reference() {
    // 40,000 oscillators take the parallel path. The reference is written from the definition:
    // classic RK4 on the angles with sines and cosines, at a step eight times smaller (so its
    // own error is 4,000 times smaller than ours).
    let n = 40_000;
    let (strength, h, time) = (3.0, 0.025, 4.0);
    let frequencies = gaussian(n, 0.0, 1.0, 17);
    let phases = uniform_phases(n, 13);
    let mut parallel = Kuramoto::new(
        frequencies.clone(),
        Coupling::MeanField { strength },
        phases.clone(),
        h,
    )
    .unwrap();
    parallel.advance((time / h).round() as u64);
    let derivative = |theta: &[f64]| -> Vec<f64> {
        let (sum_sin, sum_cos) = theta
            .iter()
            .fold((0.0, 0.0), |(s, c), t| (s + t.sin(), c + t.cos()));
        let (mean_sin, mean_cos) = (sum_sin / n as f64, sum_cos / n as f64);
        theta
            .iter()
            .zip(&frequencies)
            .map(|(t, omega)| omega + strength * (mean_sin * t.cos() - mean_cos * t.sin()))
            .collect()
    };
    let mut reference = phases.clone();
    let small = h / 8.0;
    for _ in 0..(time / small).round() as u64 {
        let k1 = derivative(&reference);
        let y: Vec<f64> = reference
            .iter()
            .zip(&k1)
            .map(|(t, k)| t + 0.5 * small * k)
            .collect();
        let k2 = derivative(&y);
        let y: Vec<f64> = reference
            .iter()
            .zip(&k2)
            .map(|(t, k)| t + 0.5 * small * k)
            .collect();
        let k3 = derivative(&y);
        let y: Vec<f64> = reference
            .iter()
            .zip(&k3)
            .map(|(t, k)| t + small * k)
            .collect();
        let k4 = derivative(&y);
        for i in 0..n {
            reference[i] += small / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
        }
    }
    let error = parallel
        .phases()
        .iter()
        .zip(&reference)
        .map(|(a, b)| wrapped(a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        error < 1e-6,
        "error against the angle-form reference: {error:e}"
    );
}

#[test]
fn run_until_sync_reports_the_time_or_that_it_never_synchronised() {
    // The spec's networks: 5 to 50 oscillators.
    for n in [5, 10, 20, 50] {
        let mut network = Kuramoto::new(
            gaussian(n, 0.0, 0.2, n as u64),
            Coupling::MeanField { strength: 5.0 },
            uniform_phases(n, 7),
            0.01,
        )
        .unwrap();
        match network.run_until_sync(0.9, 100.0).unwrap() {
            SyncOutcome::Synchronized { time, steps, r, .. } => {
                assert!(r >= 0.9 && time > 0.0 && time < 100.0);
                assert!((time - steps as f64 * 0.01).abs() < 1e-9);
            }
            other => panic!("N = {n}: {other:?}"),
        }
    }
    // Below K_c a large network never gets there.
    let n = 2000;
    let mut network = Kuramoto::new(
        lorentzian_quantiles(n, 0.0, 1.0),
        Coupling::MeanField { strength: 1.0 },
        uniform_phases(n, 1),
        0.05,
    )
    .unwrap();
    match network.run_until_sync(0.5, 20.0).unwrap() {
        SyncOutcome::NotSynchronized { time, r, .. } => {
            assert!(time >= 20.0 && r < 0.5);
        }
        other => panic!("{other:?}"),
    }
}
