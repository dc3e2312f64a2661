//! The math-kernel section of `cargo xtask compare`: the NumPy reference of the same
//! algorithms, run beside the criterion benches (`nfcs-bench peer-table --section math` makes
//! the table of both and of the machine's floors).

use std::path::Path;
use std::process::Command;

use crate::{root, step};

/// The NumPy reference script, relative to the workspace root.
const SCRIPT: &str = "crates/nfcs-math-kernels/reference/numpy_reference.py";

/// Runs the NumPy reference into `out/numpy_math.json`, creating `target/numpy-venv` with
/// NumPy from PyPI on first use. Returns why it was skipped, if it was.
pub(crate) fn run_numpy(target: &Path, out: &Path) -> Option<String> {
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
            return Some(format!("skipped: no NumPy ({error})"));
        }
    }
    let ran = step(
        "the NumPy reference of the same algorithms",
        Command::new(&python)
            .arg(root().join(SCRIPT))
            .args(["--seconds", "1.0", "--out"])
            .arg(out.join("numpy_math.json")),
    );
    ran.err()
        .map(|error| format!("skipped: the NumPy reference failed ({error})"))
}
