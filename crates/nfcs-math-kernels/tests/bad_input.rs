//! Invalid input is a clear error; a blow-up is reported, never returned as NaNs.

use nfcs_math_kernels::cgl::{CglParams, CglSolver, InitialCondition};
use nfcs_math_kernels::kuramoto::{Coupling, Kuramoto};
use nfcs_math_kernels::{Complex64, KernelError};

fn invalid_name(error: KernelError) -> &'static str {
    match error {
        KernelError::InvalidParameter { name, .. } => name,
        other => panic!("expected InvalidParameter, got {other:?}"),
    }
}

#[test]
fn cgl_parameters_out_of_their_domain_are_named() {
    let good = CglParams::new(16, 10.0, 0.05, 1.0, 1.0);
    let noise = || InitialCondition::Noise {
        amplitude: 0.01,
        seed: 1,
    };
    let with = |change: fn(&mut CglParams)| {
        let mut params = good;
        change(&mut params);
        params
    };
    let cases: [(CglParams, &str); 10] = [
        (with(|p| p.grid_size = 0), "grid_size"),
        (with(|p| p.grid_size = 3), "grid_size"),
        (with(|p| p.grid_size = 100_000), "grid_size"),
        (with(|p| p.length = 0.0), "length"),
        (with(|p| p.length = -1.0), "length"),
        (with(|p| p.length = f64::NAN), "length"),
        (with(|p| p.dt = 0.0), "dt"),
        (with(|p| p.dt = f64::INFINITY), "dt"),
        (with(|p| p.b = f64::NAN), "b"),
        (with(|p| p.c = f64::NEG_INFINITY), "c"),
    ];
    for (params, name) in cases {
        let error = CglSolver::new(params, noise()).err().unwrap();
        assert!(error.to_string().contains(name), "{error}");
        assert_eq!(invalid_name(error), name);
    }
}

#[test]
fn cgl_initial_conditions_are_checked() {
    let params = CglParams::new(8, 10.0, 0.05, 1.0, 1.0);
    assert_eq!(
        CglSolver::new(
            params,
            InitialCondition::Field(vec![Complex64::default(); 63])
        )
        .err(),
        Some(KernelError::WrongSize {
            name: "field",
            expected: 64,
            found: 63
        })
    );
    let mut field = vec![Complex64::new(0.1, 0.0); 64];
    field[17] = Complex64::new(0.0, f64::NAN);
    assert_eq!(
        CglSolver::new(params, InitialCondition::Field(field)).err(),
        Some(KernelError::NonFinite {
            name: "field",
            index: 17
        })
    );
    // |k| = 2 pi 2 / 10 > 1: no plane wave of that wavenumber exists.
    let error = CglSolver::new(
        params,
        InitialCondition::PlaneWave {
            mode_x: 2,
            mode_y: 0,
        },
    )
    .err()
    .unwrap();
    assert_eq!(invalid_name(error), "PlaneWave");
    let error = CglSolver::new(
        params,
        InitialCondition::Noise {
            amplitude: f64::NAN,
            seed: 0,
        },
    )
    .err()
    .unwrap();
    assert_eq!(invalid_name(error), "amplitude");
    let error = CglSolver::new(
        params,
        InitialCondition::Uniform {
            re: f64::INFINITY,
            im: 0.0,
        },
    )
    .err()
    .unwrap();
    assert_eq!(invalid_name(error), "re");
}

#[test]
fn a_blow_up_is_reported_and_the_solver_refuses_to_go_on() {
    // |A| = 30 with dt = 0.5: the explicit nonlinear stages overshoot without bound.
    let params = CglParams::new(16, 10.0, 0.5, 1.0, 1.0);
    let mut solver =
        CglSolver::new(params, InitialCondition::Uniform { re: 30.0, im: 0.0 }).unwrap();
    let error = solver.advance(100).err().unwrap();
    let KernelError::BlowUp {
        step,
        max_intensity,
        ..
    } = error.clone()
    else {
        panic!("{error:?}");
    };
    assert!((1..=100).contains(&step));
    assert!(max_intensity.is_nan() || max_intensity > 1e6);
    assert!(error.to_string().contains("smaller time step"), "{error}");
    assert_eq!(solver.step().err(), Some(error));
    assert_eq!(solver.steps(), step - 1);
    // The same start with a small step is fine: |A|^2 = rho follows rho' = 2 rho (1 - rho).
    let params = CglParams::new(16, 10.0, 0.0002, 1.0, 1.0);
    let mut solver =
        CglSolver::new(params, InitialCondition::Uniform { re: 30.0, im: 0.0 }).unwrap();
    solver.advance(5000).unwrap();
    let growth = (2.0 * solver.time()).exp();
    let exact = 900.0 * growth / (1.0 + 900.0 * (growth - 1.0));
    assert!(
        (solver.mean_intensity() - exact).abs() < 1e-6,
        "{} vs {exact}",
        solver.mean_intensity()
    );
}

#[test]
fn kuramoto_input_is_checked() {
    let coupling = || Coupling::MeanField { strength: 1.0 };
    let error = Kuramoto::new(vec![], coupling(), vec![], 0.1)
        .err()
        .unwrap();
    assert_eq!(invalid_name(error), "frequencies");
    let error = Kuramoto::new(vec![1.0], coupling(), vec![0.0], 0.0)
        .err()
        .unwrap();
    assert_eq!(invalid_name(error), "dt");
    let error = Kuramoto::new(vec![1.0], coupling(), vec![0.0], f64::NAN)
        .err()
        .unwrap();
    assert_eq!(invalid_name(error), "dt");
    assert_eq!(
        Kuramoto::new(vec![1.0, f64::NAN], coupling(), vec![0.0, 0.0], 0.1).err(),
        Some(KernelError::NonFinite {
            name: "frequencies",
            index: 1
        })
    );
    assert_eq!(
        Kuramoto::new(vec![1.0, 2.0], coupling(), vec![0.0], 0.1).err(),
        Some(KernelError::WrongSize {
            name: "phases",
            expected: 2,
            found: 1
        })
    );
    assert_eq!(
        Kuramoto::new(vec![1.0], coupling(), vec![f64::INFINITY], 0.1).err(),
        Some(KernelError::NonFinite {
            name: "phases",
            index: 0
        })
    );
    let error = Kuramoto::new(
        vec![1.0],
        Coupling::MeanField { strength: f64::NAN },
        vec![0.0],
        0.1,
    )
    .err()
    .unwrap();
    assert_eq!(invalid_name(error), "strength");
    assert_eq!(
        Kuramoto::new(
            vec![1.0, 1.0],
            Coupling::Dense {
                weights: vec![0.0; 3]
            },
            vec![0.0; 2],
            0.1
        )
        .err(),
        Some(KernelError::WrongSize {
            name: "weights",
            expected: 4,
            found: 3
        })
    );
    let sparse = |row_offsets: Vec<usize>, columns: Vec<u32>, weights: Vec<f64>| {
        Kuramoto::new(
            vec![1.0, 1.0],
            Coupling::Sparse {
                row_offsets,
                columns,
                weights,
            },
            vec![0.0; 2],
            0.1,
        )
        .err()
    };
    assert!(matches!(
        sparse(vec![0, 1], vec![1], vec![1.0]),
        Some(KernelError::WrongSize {
            name: "row_offsets",
            ..
        })
    ));
    assert_eq!(
        invalid_name(sparse(vec![0, 2, 1], vec![1], vec![1.0]).unwrap()),
        "row_offsets"
    );
    assert_eq!(
        invalid_name(sparse(vec![0, 1, 1], vec![2], vec![1.0]).unwrap()),
        "columns"
    );
    assert!(matches!(
        sparse(vec![0, 1, 1], vec![1], vec![]),
        Some(KernelError::WrongSize {
            name: "weights",
            ..
        })
    ));
    let mut network = Kuramoto::new(vec![1.0], coupling(), vec![0.0], 0.1).unwrap();
    assert_eq!(
        invalid_name(network.run_until_sync(0.0, 1.0).err().unwrap()),
        "threshold"
    );
    assert_eq!(
        invalid_name(network.run_until_sync(1.5, 1.0).err().unwrap()),
        "threshold"
    );
    assert_eq!(
        invalid_name(network.run_until_sync(0.5, f64::NAN).err().unwrap()),
        "max_time"
    );
}
