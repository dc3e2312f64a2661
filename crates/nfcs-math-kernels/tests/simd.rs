//! The AVX2 / AVX-512 versions of the hot loops compute bit for bit what the baseline does.
//!
//! The widest level is detected once per process, so the test runs itself again as a child
//! with `NFCS_KERNELS_BASELINE=1` (which forces the baseline) and compares the bits of what
//! both processes computed.

use std::process::Command;

use nfcs_math_kernels::cgl::{CglParams, CglSolver, InitialCondition};
use nfcs_math_kernels::kuramoto::{Coupling, Kuramoto, gaussian, uniform_phases};

/// A digest of results that exercise every dispatched loop: the CGL sweeps (serial and
/// parallel grids), the three mean-field passes (serial and parallel), and the dense rows.
fn fingerprint() -> Vec<u64> {
    let mut bits = Vec::new();
    for n in [24, 160] {
        let params = CglParams::new(n, 30.0, 0.05, 1.3, -0.7);
        let mut solver = CglSolver::new(
            params,
            InitialCondition::Noise {
                amplitude: 0.1,
                seed: 3,
            },
        )
        .unwrap();
        solver.advance(20).unwrap();
        bits.extend(
            solver
                .field()
                .iter()
                .flat_map(|value| [value.re.to_bits(), value.im.to_bits()]),
        );
    }
    for n in [1_000, 40_003] {
        let mut network = Kuramoto::new(
            gaussian(n, 0.0, 1.0, 5),
            Coupling::MeanField { strength: 2.0 },
            uniform_phases(n, 6),
            0.05,
        )
        .unwrap();
        network.advance(20);
        bits.extend(network.phases().iter().map(|phase| phase.to_bits()));
    }
    let n = 301;
    let weights: Vec<f64> = (0..n * n)
        .map(|index| ((index * 7919) % 101) as f64 / 1000.0)
        .collect();
    let mut network = Kuramoto::new(
        gaussian(n, 0.0, 1.0, 8),
        Coupling::Dense { weights },
        uniform_phases(n, 9),
        0.05,
    )
    .unwrap();
    network.advance(10);
    bits.extend(network.phases().iter().map(|phase| phase.to_bits()));
    bits
}

#[test]
fn every_instruction_set_gives_the_same_bits() {
    let digest = |bits: &[u64]| {
        bits.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, value| {
            (hash ^ value).wrapping_mul(0x0100_0000_01b3)
        })
    };
    if std::env::var_os("NFCS_SIMD_CHILD").is_some() {
        println!("fingerprint={:016x}", digest(&fingerprint()));
        return;
    }
    let here = format!("{:016x}", digest(&fingerprint()));
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "simd::every_instruction_set_gives_the_same_bits",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("NFCS_SIMD_CHILD", "1")
        .env("NFCS_KERNELS_BASELINE", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let child = stdout
        .split("fingerprint=")
        .nth(1)
        .and_then(|rest| rest.get(..16))
        .unwrap_or_else(|| panic!("no fingerprint in {stdout}"));
    assert_eq!(child, here, "the baseline build computed different bits");
}
