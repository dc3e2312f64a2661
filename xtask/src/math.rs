//! The math-kernel section of `cargo xtask compare`: our solvers and the Python peers of the
//! same algorithms (NumPy, and FFTW + numba for CGL), timed interleaved by the `kernels` bench
//! (`NFCS_MATH_COMPARE=1`), then `nfcs-bench peer-table --section math` makes the table of them
//! and of the machine's floors.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Error, cargo, step};

/// The Python side: the interpreter to serve the reference script with, or why there is none;
/// and why the FFTW + numba peer could not be installed, if it could not.
pub(crate) struct Peers {
    /// `target/numpy-venv/bin/python`, when the venv has NumPy.
    pub(crate) python: Option<PathBuf>,
    /// Why the whole Python side is skipped (`skipped: ...`), for the table.
    pub(crate) skipped: Option<String>,
    /// Why pyFFTW and numba are missing, for the table.
    pub(crate) fftw_skipped: Option<String>,
}

/// Makes sure `target/numpy-venv` exists with NumPy, pyFFTW and numba (from PyPI, on first
/// use). A venv without NumPy skips every peer; one without pyFFTW or numba only the FFTW one.
pub(crate) fn ensure_peers(target: &Path) -> Peers {
    let venv = target.join("numpy-venv");
    let python = venv.join("bin/python");
    if !python.is_file() {
        let created = step(
            "a virtual environment with NumPy for the reference (target/numpy-venv)",
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
        )
        .and_then(|()| {
            step(
                "pip install numpy",
                Command::new(venv.join("bin/pip")).args(["install", "--quiet", "numpy"]),
            )
        });
        if let Err(error) = created {
            return Peers {
                python: None,
                skipped: Some(format!("skipped: no NumPy ({error})")),
                fftw_skipped: None,
            };
        }
    }
    let has = |module: &str| {
        Command::new(&python)
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|status| status.success())
    };
    let fftw_skipped = if has("pyfftw") && has("numba") {
        None
    } else {
        step(
            "pip install pyfftw numba (the FFTW + numba peer)",
            Command::new(venv.join("bin/pip")).args(["install", "--quiet", "pyfftw", "numba"]),
        )
        .err()
        .map(|error| format!("no pyFFTW and numba ({error})"))
    };
    if let Some(reason) = &fftw_skipped {
        eprintln!("notice: the FFTW + numba peer was skipped: {reason}");
    }
    Peers {
        python: Some(python),
        skipped: None,
        fftw_skipped,
    }
}

/// Runs the `kernels` bench in its comparison mode: the floors into `out/math_floor.json`,
/// then ours and the peers interleaved into `out/math_compare.json`.
pub(crate) fn run(out: &Path, peers: &Peers) -> Result<(), Error> {
    let mut command = cargo();
    command
        .args(["bench", "-p", "nfcs-math-kernels", "--bench", "kernels"])
        .env("NFCS_MATH_COMPARE", "1")
        .env("NFCS_BENCH_OUT", out);
    if let Some(python) = &peers.python {
        command.env("NFCS_MATH_PYTHON", python);
    }
    if let Some(reason) = &peers.fftw_skipped {
        command.env("NFCS_MATH_FFTW_SKIPPED", reason);
    }
    step(
        "math kernels: floors, then ours, NumPy and FFTW+numba interleaved (release)",
        &mut command,
    )
}
