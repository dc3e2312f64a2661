//! `CglBatch`: every run computes exactly what a lone `CglSolver` computes, and a run that
//! blows up leaves the others alone.

use nfcs_math_kernels::KernelError;
use nfcs_math_kernels::cgl::{CglBatch, CglParams, CglSolver, InitialCondition};

fn noise(seed: u64) -> InitialCondition {
    InitialCondition::Noise {
        amplitude: 0.1,
        seed,
    }
}

#[test]
fn every_run_of_a_batch_matches_a_lone_solver_bit_for_bit() {
    // 24: serial sweeps; 160: a lone solver splits its sweeps across threads, a batch of
    // several runs does not; the bits must not depend on that.
    for (n, runs) in [(24, 5), (160, 3), (160, 1)] {
        let params = CglParams::new(n, 30.0, 0.05, 1.3, -0.7);
        let mut batch = CglBatch::new(params, (0..runs).map(noise)).unwrap();
        assert_eq!(batch.len(), runs as usize);
        for outcome in batch.advance(15) {
            outcome.unwrap();
        }
        for (seed, run) in batch.solvers_mut().iter_mut().enumerate() {
            let mut lone = CglSolver::new(params, noise(seed as u64)).unwrap();
            lone.advance(15).unwrap();
            assert_eq!(run.steps(), 15);
            assert_eq!(run.result(), lone.result(), "n = {n}, run {seed}");
        }
    }
}

#[test]
fn a_run_that_blows_up_stops_alone() {
    let params = CglParams::new(16, 20.0, 0.05, 0.5, -0.5);
    let initials = [
        noise(1),
        InitialCondition::Uniform { re: 1e4, im: 0.0 },
        noise(2),
    ];
    let mut batch = CglBatch::new(params, initials).unwrap();
    let outcomes = batch.advance(10);
    assert!(outcomes[0].is_ok() && outcomes[2].is_ok());
    assert!(matches!(
        outcomes[1],
        Err(KernelError::BlowUp { step: 1, .. })
    ));
    let steps: Vec<u64> = batch.solvers().iter().map(CglSolver::steps).collect();
    assert_eq!(steps, [10, 0, 10]);
}

#[test]
fn bad_input_is_refused_and_an_empty_batch_is_fine() {
    let params = CglParams::new(16, 20.0, 0.05, 0.5, -0.5);
    let wrong = InitialCondition::Field(vec![Default::default(); 3]);
    assert!(matches!(
        CglBatch::new(params, [noise(1), wrong]),
        Err(KernelError::WrongSize { .. })
    ));
    let bad_params = CglParams::new(2, 20.0, 0.05, 0.5, -0.5);
    assert!(CglBatch::new(bad_params, [noise(1)]).is_err());
    let mut empty = CglBatch::new(params, []).unwrap();
    assert!(empty.is_empty());
    assert!(empty.advance(3).is_empty());
}
