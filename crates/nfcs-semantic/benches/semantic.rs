//! The semantic cache's speed: embedding throughput and index lookup latency.
//!
//! - **Embedding** (needs the model; skipped with a notice without it): sentences per second
//!   of `MiniLmEmbedder::embed` at batch 1 and 32, on short (about 10 tokens) and medium
//!   (about 60 tokens) texts, on a rayon pool of 1 and of 2 threads, interleaved with the
//!   Python peers when `NFCS_SEMANTIC_PYTHON` names an interpreter with sentence-transformers
//!   and onnxruntime: `reference/st_reference.py --serve` runs as a child process, and in each
//!   of five rounds every cell is run by ours, sentence-transformers and ONNX Runtime for 0.5 s
//!   each, one after the other (the order alternating), so that a change of load reaches all
//!   three alike; each figure is the median of its five rounds, and `/proc/loadavg` is read
//!   before every cell of every round. The ONNX model is `NFCS_SEMANTIC_ONNX` (default
//!   `<NFCS_BENCH_OUT>/all-MiniLM-L6-v2.onnx`), exported by the script if missing. The texts are
//!   written to `<NFCS_BENCH_OUT>/semantic_texts.json` for the script.
//! - **Lookup** (`NFCS_BENCH_SKIP_INDEX` unset): `FlatIndex::best` and `HnswIndex::search` on
//!   10,000 and 100,000 unit vectors of 384 dimensions (1,000 clusters, like embeddings of
//!   related texts), queried with 1,000 near-duplicates of stored vectors: p50 and p99
//!   latency, and the approximate index's recall@1 against the exact one.
//!
//! With `NFCS_BENCH_OUT=<dir>` the figures go to `<dir>/semantic_1t.json` and
//! `semantic_2t.json` (ours; the lookups in the second), `st_reference.json` (the peers, when
//! they ran) and `semantic_interleaved.json` (every round of every cell, with the load).

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use nfcs_semantic::{
    Embedder, FlatIndex, HnswConfig, HnswIndex, MiniLmEmbedder, default_model_dir, model_present,
};
use serde_json::{Map, Value, json};

/// 32 short texts of about 10 tokens.
fn short_texts() -> Vec<String> {
    let subjects = [
        "my password",
        "the invoice",
        "a refund",
        "the meeting",
        "my account",
        "the order",
        "a new user",
        "the report",
    ];
    let verbs = [
        "How do I reset",
        "Where can I find",
        "Can you explain",
        "Who approved",
    ];
    verbs
        .iter()
        .flat_map(|verb| {
            subjects
                .iter()
                .map(move |subject| format!("{verb} {subject} from last week?"))
        })
        .collect()
}

/// 32 medium texts of about 60 tokens.
fn medium_texts() -> Vec<String> {
    short_texts()
        .iter()
        .enumerate()
        .map(|(index, question)| {
            format!(
                "{question} I have been trying for a while now and the page keeps showing an error \
                 message about an invalid session, even after clearing the browser cache and signing \
                 in again from another device. Request number {index} was opened yesterday but nobody \
                 has answered it yet, so any help would be appreciated."
            )
        })
        .collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Rounds of the interleaved comparison, and each subject's time on a cell per round.
const ROUNDS: usize = 5;
const SECONDS: f64 = 0.5;
/// Each subject's first turn on a cell starts with this much unmeasured warm-up.
const WARMUP: f64 = 0.3;

/// Runs `batch`-sized slices of `texts` through the model for about `seconds` from `*next`
/// on; sentences per second.
fn run_for(
    model: &MiniLmEmbedder,
    texts: &[&str],
    batch: usize,
    seconds: f64,
    next: &mut usize,
) -> f64 {
    let budget = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut sentences = 0;
    loop {
        let slice: Vec<&str> = (0..batch)
            .map(|offset| texts[(*next + offset) % texts.len()])
            .collect();
        *next = (*next + batch) % texts.len();
        black_box(model.embed(&slice).expect("embedding"));
        sentences += batch;
        if started.elapsed() >= budget {
            return sentences as f64 / started.elapsed().as_secs_f64();
        }
    }
}

/// The 1-minute load average and the number of runnable threads, from `/proc/loadavg`.
fn load() -> (Option<f64>, Option<f64>) {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let fields: Vec<&str> = text.split_whitespace().collect();
    let average = fields.first().and_then(|field| field.parse().ok());
    let runnable = fields
        .get(3)
        .and_then(|field| field.split('/').next())
        .and_then(|field| field.parse().ok());
    (average, runnable)
}

/// The Python peers (sentence-transformers and ONNX Runtime), a child process that runs one
/// cell for a given time per command (`reference/st_reference.py --serve`).
struct Peer {
    child: Child,
    /// `None` once closed.
    input: Option<ChildStdin>,
    output: BufReader<ChildStdout>,
    /// What it said when it was ready (versions, the ONNX check).
    ready: Map<String, Value>,
}

impl Peer {
    /// Starts `python reference/st_reference.py --serve` on the texts file, with the ONNX model
    /// at `onnx` (exported there first if missing).
    fn start(python: &Path, texts: &Path, onnx: &Path) -> Result<Peer, String> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/st_reference.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg("--texts")
            .arg(texts)
            .arg("--onnx")
            .arg(onnx)
            .args(["--threads", "1,2", "--serve"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|error| format!("could not start {}: {error}", python.display()))?;
        let input = child.stdin.take();
        let output = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut peer = Peer {
            child,
            input,
            output,
            ready: Map::new(),
        };
        peer.ready = peer.reply()?;
        Ok(peer)
    }

    /// The next JSON object the peer prints (other lines are passed through).
    fn reply(&mut self) -> Result<Map<String, Value>, String> {
        loop {
            let mut line = String::new();
            match self.output.read_line(&mut line) {
                Ok(0) => return Err("the peer exited".to_owned()),
                Ok(_) => {}
                Err(error) => return Err(format!("reading from the peer: {error}")),
            }
            match serde_json::from_str::<Value>(&line) {
                Ok(Value::Object(object)) => return Ok(object),
                _ => eprint!("peer: {line}"),
            }
        }
    }

    /// Sentences per second of `subject` (`st` or `ort`) on one cell.
    fn rate(&mut self, subject: &str, cell: &Cell, warmup: f64) -> Result<Option<f64>, String> {
        let command = json!({
            "subject": subject,
            "texts": cell.texts,
            "batch": cell.batch,
            "threads": cell.threads,
            "seconds": SECONDS,
            "warmup": warmup,
        });
        let input = self.input.as_mut().ok_or("the peer's input is closed")?;
        writeln!(input, "{command}")
            .and_then(|()| input.flush())
            .map_err(|error| format!("writing to the peer: {error}"))?;
        Ok(self.reply()?.get("rate").and_then(Value::as_f64))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Closing its stdin ends its loop.
        drop(self.input.take());
        let _ = self.child.wait();
    }
}

/// One cell of the comparison.
struct Cell {
    texts: &'static str,
    batch: usize,
    threads: usize,
}

/// What one cell measured, round by round.
#[derive(Default)]
struct Rounds {
    ours: Vec<f64>,
    st: Vec<f64>,
    ort: Vec<f64>,
    load: Vec<f64>,
    runnable: Vec<f64>,
}

/// Ours and the peers interleaved: every round visits every cell, and on a cell each subject
/// runs `SECONDS` in turn (the order alternates between rounds), so that a change of the
/// machine's load between them reaches all of them alike. The per-cell medians go to
/// the first two maps (1 and 2 threads: `embed/<texts>/<batch>`), the peers' to the third
/// (`embed/<texts>/<batch>/<threads>t` for sentence-transformers, `onnx/...` for ONNX Runtime,
/// and their versions), every round and its load to the fourth (`cells`).
fn interleaved(
    model: &MiniLmEmbedder,
    texts: &[(&'static str, Vec<&str>)],
    pools: &[(usize, rayon::ThreadPool)],
    mut peer: Option<&mut Peer>,
) -> [Map<String, Value>; 4] {
    let mut cells = Vec::new();
    for (name, _) in texts {
        for batch in [1, 32] {
            for (threads, _) in pools {
                cells.push(Cell {
                    texts: name,
                    batch,
                    threads: *threads,
                });
            }
        }
    }
    let mut results: Vec<Rounds> = cells.iter().map(|_| Rounds::default()).collect();
    let mut positions = vec![0_usize; cells.len()];
    let mut peer_failed = None;
    for round in 0..ROUNDS {
        for (index, cell) in cells.iter().enumerate() {
            let (average, runnable) = load();
            let rounds = &mut results[index];
            rounds.load.extend(average);
            rounds.runnable.extend(runnable);
            let warmup = if round == 0 { WARMUP } else { 0.0 };
            let ours_first = (round + index) % 2 == 0;
            let subjects: [&str; 3] = if ours_first {
                ["ours", "st", "ort"]
            } else {
                ["ort", "st", "ours"]
            };
            for subject in subjects {
                if subject == "ours" {
                    let pool = pools
                        .iter()
                        .find(|(threads, _)| *threads == cell.threads)
                        .map(|(_, pool)| pool)
                        .expect("a pool per thread count");
                    let list = &texts
                        .iter()
                        .find(|(name, _)| *name == cell.texts)
                        .expect("the cell's texts")
                        .1;
                    let next = &mut positions[index];
                    let rate = pool.install(|| {
                        if warmup > 0.0 {
                            run_for(model, list, cell.batch, warmup, next);
                        }
                        run_for(model, list, cell.batch, SECONDS, next)
                    });
                    rounds.ours.push(rate);
                } else if let Some(peer) = peer.as_deref_mut().filter(|_| peer_failed.is_none()) {
                    match peer.rate(subject, cell, warmup) {
                        Ok(Some(rate)) if subject == "st" => rounds.st.push(rate),
                        Ok(Some(rate)) => rounds.ort.push(rate),
                        Ok(None) => {}
                        Err(error) => {
                            eprintln!("notice: the Python peer failed: {error}");
                            peer_failed = Some(error);
                        }
                    }
                }
            }
        }
        eprintln!("round {} of {ROUNDS} done", round + 1);
    }
    let (mut report_1t, mut report_2t, mut theirs) = (Map::new(), Map::new(), Map::new());
    let mut rounds_json = Map::new();
    for (cell, rounds) in cells.iter().zip(&results) {
        let median_of = |values: &[f64]| (!values.is_empty()).then(|| median(values.to_vec()));
        let key = format!("{}/{}", cell.texts, cell.batch);
        let ours = median_of(&rounds.ours);
        let st = median_of(&rounds.st);
        let ort = median_of(&rounds.ort);
        let rate = |value: Option<f64>| value.map_or("n/a".to_owned(), |rate| format!("{rate:.0}"));
        println!(
            "embed {key}, {} threads: ours {} sentences/s, sentence-transformers {}, onnxruntime {} (load {:?})",
            cell.threads,
            rate(ours),
            rate(st),
            rate(ort),
            rounds.load,
        );
        let report = if cell.threads == 1 {
            &mut report_1t
        } else {
            &mut report_2t
        };
        report.insert(format!("embed/{key}"), json!(ours));
        if let Some(st) = st {
            theirs.insert(format!("embed/{key}/{}t", cell.threads), json!(st));
        }
        if let Some(ort) = ort {
            theirs.insert(format!("onnx/{key}/{}t", cell.threads), json!(ort));
        }
        rounds_json.insert(
            format!("{key}/{}t", cell.threads),
            json!({
                "ours": rounds.ours,
                "st": rounds.st,
                "ort": rounds.ort,
                "load": rounds.load,
                "runnable": rounds.runnable,
            }),
        );
    }
    let mut summary = Map::new();
    summary.insert("rounds".into(), json!(ROUNDS));
    summary.insert("seconds".into(), json!(SECONDS));
    summary.insert("cells".into(), Value::Object(rounds_json));
    if let Some(peer) = peer {
        for (key, value) in &peer.ready {
            if key != "ready" {
                summary.insert(key.clone(), value.clone());
                theirs.insert(key.clone(), value.clone());
            }
        }
    }
    if let Some(error) = peer_failed {
        summary.insert("peer_error".into(), json!(error));
    }
    [report_1t, report_2t, theirs, summary]
}

/// Deterministic unit vectors in 1,000 clusters.
fn vectors(count: usize, dimension: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut state = seed.max(1);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f32 / (1_u64 << 53) as f32 - 0.5
    };
    let centres: Vec<Vec<f32>> = (0..1000)
        .map(|_| (0..dimension).map(|_| next()).collect())
        .collect();
    (0..count)
        .map(|index| {
            let centre = &centres[index % centres.len()];
            let vector: Vec<f32> = centre.iter().map(|c| c + 0.6 * next()).collect();
            let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            vector.into_iter().map(|x| x / norm).collect()
        })
        .collect()
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    sorted[((sorted.len() as f64 * fraction) as usize).min(sorted.len() - 1)]
}

fn lookups(report: &mut Map<String, Value>) {
    let dimension = 384;
    for count in [10_000, 100_000] {
        let data = vectors(count, dimension, 7);
        let mut flat = FlatIndex::new(dimension);
        let mut hnsw = HnswIndex::new(dimension, HnswConfig::default());
        let started = Instant::now();
        for vector in &data {
            hnsw.insert(vector);
        }
        let build = started.elapsed().as_secs_f64();
        for vector in &data {
            flat.push(vector);
        }
        let noise = vectors(1000, dimension, 99);
        let queries: Vec<Vec<f32>> = noise
            .iter()
            .enumerate()
            .map(|(index, offset)| {
                let source = &data[(index * 7919) % count];
                let query: Vec<f32> = source
                    .iter()
                    .zip(offset)
                    .map(|(s, o)| s + 0.05 * o)
                    .collect();
                let norm = query.iter().map(|x| x * x).sum::<f32>().sqrt();
                query.into_iter().map(|x| x / norm).collect()
            })
            .collect();
        let (mut exact_times, mut approximate_times, mut agree) = (Vec::new(), Vec::new(), 0);
        for query in &queries {
            let started = Instant::now();
            let exact = flat.best(query, |_| true).map(|(row, _)| row);
            exact_times.push(started.elapsed().as_secs_f64() * 1e6);
            let started = Instant::now();
            let approximate = hnsw
                .search(query, 1, |_| true)
                .first()
                .map(|(id, _)| *id as usize);
            approximate_times.push(started.elapsed().as_secs_f64() * 1e6);
            if exact == approximate {
                agree += 1;
            }
        }
        exact_times.sort_by(f64::total_cmp);
        approximate_times.sort_by(f64::total_cmp);
        let recall = f64::from(agree) / queries.len() as f64;
        println!(
            "lookup, {count} entries: exact p50 {:.1} us p99 {:.1} us; hnsw p50 {:.1} us p99 {:.1} us, recall@1 {recall:.3}, build {build:.1} s",
            percentile(&exact_times, 0.5),
            percentile(&exact_times, 0.99),
            percentile(&approximate_times, 0.5),
            percentile(&approximate_times, 0.99),
        );
        report.insert(
            format!("lookup/{count}"),
            json!({
                "exact_p50_us": percentile(&exact_times, 0.5),
                "exact_p99_us": percentile(&exact_times, 0.99),
                "hnsw_p50_us": percentile(&approximate_times, 0.5),
                "hnsw_p99_us": percentile(&approximate_times, 0.99),
                "hnsw_recall_at_1": recall,
                "hnsw_build_s": build,
            }),
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no options.
    let out = std::env::var_os("NFCS_BENCH_OUT").map(PathBuf::from);
    let short = short_texts();
    let medium = medium_texts();
    let scratch = out.clone().unwrap_or_else(std::env::temp_dir);
    let texts_file = scratch.join("semantic_texts.json");
    let texts = json!({ "short": short, "medium": medium });
    let _ = std::fs::create_dir_all(&scratch);
    if let Err(error) = std::fs::write(&texts_file, texts.to_string()) {
        eprintln!("could not write the texts: {error}");
    }
    let pools: Vec<(usize, rayon::ThreadPool)> = [1, 2]
        .into_iter()
        .map(|threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a thread pool");
            (threads, pool)
        })
        .collect();
    let [report_1t, mut report_2t, theirs, summary] = if std::env::var_os("NFCS_BENCH_SKIP_EMBED")
        .is_some()
    {
        eprintln!("notice: embedding throughput skipped (NFCS_BENCH_SKIP_EMBED)");
        Default::default()
    } else if model_present(&default_model_dir()) {
        let model = MiniLmEmbedder::load(default_model_dir()).expect("the model loads");
        let mut peer = match std::env::var_os("NFCS_SEMANTIC_PYTHON") {
            Some(python) => {
                let onnx = std::env::var_os("NFCS_SEMANTIC_ONNX")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| scratch.join("all-MiniLM-L6-v2.onnx"));
                match Peer::start(Path::new(&python), &texts_file, &onnx) {
                    Ok(peer) => Some(peer),
                    Err(error) => {
                        eprintln!("notice: the Python peers did not start: {error}");
                        None
                    }
                }
            }
            None => {
                eprintln!(
                    "notice: no Python peers (NFCS_SEMANTIC_PYTHON unset): MiniLmEmbedder alone"
                );
                None
            }
        };
        fn borrowed(texts: &[String]) -> Vec<&str> {
            texts.iter().map(String::as_str).collect()
        }
        let lists = [("short", borrowed(&short)), ("medium", borrowed(&medium))];
        let mut maps = interleaved(&model, &lists, &pools, peer.as_mut());
        let tokens = |texts: &[String]| {
            texts
                .iter()
                .map(|text| model.token_ids(text).map_or(0, |ids| ids.len()))
                .sum::<usize>() as f64
                / texts.len() as f64
        };
        for report in &mut maps[..2] {
            report.insert("tokens/short".into(), tokens(&short).into());
            report.insert("tokens/medium".into(), tokens(&medium).into());
        }
        maps
    } else {
        eprintln!(
            "notice: embedding throughput skipped: no model in {} (run `cargo xtask fetch-model`)",
            default_model_dir().display()
        );
        Default::default()
    };
    if std::env::var_os("NFCS_BENCH_SKIP_INDEX").is_none() {
        pools[1].1.install(|| lookups(&mut report_2t));
    }
    if let Some(out) = out {
        let mut files = vec![
            ("semantic_1t.json", report_1t),
            ("semantic_2t.json", report_2t),
        ];
        // The peers' file only when they ran: without it the table says they were skipped.
        if theirs.contains_key("embed/short/1/1t") {
            files.push(("st_reference.json", theirs));
        }
        if !summary.is_empty() {
            files.push(("semantic_interleaved.json", summary));
        }
        for (name, report) in files {
            let path = out.join(name);
            if let Err(error) = std::fs::write(&path, Value::Object(report).to_string()) {
                eprintln!("could not write {}: {error}", path.display());
            }
        }
    }
}
