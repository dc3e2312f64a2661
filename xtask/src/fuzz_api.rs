//! Schemathesis (PyPI) for the served node's API fuzz test: installed into
//! `target/schemathesis-venv` on first use, its `st` handed to the test through
//! `NFCS_SCHEMATHESIS`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Error, step};

/// The version the fuzz test was written against (its checks and options are stable within a
/// major version; pinned so that CI does not change under us).
pub(crate) const VERSION: &str = "4.32.5";

/// `st` of `target/schemathesis-venv`, creating the environment when it is missing.
///
/// # Errors
/// When `python3 -m venv` or `pip install` fails (no Python, no PyPI).
pub(crate) fn ensure(target: &Path) -> Result<PathBuf, Error> {
    let venv = target.join("schemathesis-venv");
    let st = venv.join("bin/st");
    let marker = venv.join(format!("schemathesis-{VERSION}"));
    if st.is_file() && marker.is_file() {
        return Ok(st);
    }
    step(
        "a virtual environment for schemathesis (target/schemathesis-venv)",
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
    )?;
    step(
        &format!("pip install schemathesis=={VERSION}"),
        Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("schemathesis=={VERSION}"),
        ]),
    )
    .map_err(|error| format!("{error}: the API fuzz test needs schemathesis from PyPI"))?;
    std::fs::write(&marker, VERSION)?;
    Ok(st)
}
