//! The semantic cache's speed: embedding throughput and index lookup latency.
//!
//! - **Embedding** (needs the model; skipped with a notice without it): sentences per second
//!   of `MiniLmEmbedder::embed` at batch 1 and 32, on short (about 10 tokens) and medium
//!   (about 60 tokens) texts, on as many threads as `RAYON_NUM_THREADS` allows (candle's CPU
//!   backend follows it; `cargo xtask bench` runs this twice, with 1 and 2). Each figure is the
//!   median of five runs of about half a second. The texts are written to
//!   `<NFCS_BENCH_OUT>/semantic_texts.json` so that the Python reference embeds the same ones.
//! - **Lookup** (`NFCS_BENCH_SKIP_INDEX` unset): `FlatIndex::best` and `HnswIndex::search` on
//!   10,000 and 100,000 unit vectors of 384 dimensions (1,000 clusters, like embeddings of
//!   related texts), queried with 1,000 near-duplicates of stored vectors: p50 and p99
//!   latency, and the approximate index's recall@1 against the exact one.
//!
//! With `NFCS_BENCH_OUT=<dir>` the figures go to `<dir>/semantic_<threads>t.json`.

use std::hint::black_box;
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

/// Sentences per second embedding `texts` in batches of `batch`: the median of five runs.
fn throughput(model: &MiniLmEmbedder, texts: &[String], batch: usize) -> f64 {
    let borrowed: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut next = 0;
    let mut run = |budget: Duration| {
        let started = Instant::now();
        let mut sentences = 0;
        while started.elapsed() < budget {
            let slice: Vec<&str> = (0..batch)
                .map(|offset| borrowed[(next + offset) % borrowed.len()])
                .collect();
            next = (next + batch) % borrowed.len();
            black_box(model.embed(&slice).expect("embedding"));
            sentences += batch;
        }
        sentences as f64 / started.elapsed().as_secs_f64()
    };
    run(Duration::from_millis(300));
    median((0..5).map(|_| run(Duration::from_millis(500))).collect())
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
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".to_owned());
    let out = std::env::var_os("NFCS_BENCH_OUT").map(std::path::PathBuf::from);
    let mut report = Map::new();
    let short = short_texts();
    let medium = medium_texts();
    if let Some(out) = &out {
        let texts = json!({ "short": short, "medium": medium });
        let _ = std::fs::create_dir_all(out);
        if let Err(error) = std::fs::write(out.join("semantic_texts.json"), texts.to_string()) {
            eprintln!("could not write the texts: {error}");
        }
    }
    let directory = default_model_dir();
    if std::env::var_os("NFCS_BENCH_SKIP_EMBED").is_some() {
        eprintln!("notice: embedding throughput skipped (NFCS_BENCH_SKIP_EMBED)");
    } else if model_present(&directory) {
        let model = MiniLmEmbedder::load(&directory).expect("the model loads");
        let tokens = |texts: &[String]| {
            texts
                .iter()
                .map(|text| model.token_ids(text).map_or(0, |ids| ids.len()))
                .sum::<usize>() as f64
                / texts.len() as f64
        };
        report.insert("tokens/short".into(), tokens(&short).into());
        report.insert("tokens/medium".into(), tokens(&medium).into());
        for (name, texts) in [("short", &short), ("medium", &medium)] {
            for batch in [1, 32] {
                let rate = throughput(&model, texts, batch);
                println!("embed {name} batch {batch}, {threads} threads: {rate:.0} sentences/s");
                report.insert(format!("embed/{name}/{batch}"), rate.into());
            }
        }
    } else {
        eprintln!(
            "notice: embedding throughput skipped: no model in {} (run `cargo xtask fetch-model`)",
            directory.display()
        );
    }
    if std::env::var_os("NFCS_BENCH_SKIP_INDEX").is_none() {
        lookups(&mut report);
    }
    if let Some(out) = out {
        let path = out.join(format!("semantic_{threads}t.json"));
        if let Err(error) = std::fs::write(&path, Value::Object(report).to_string()) {
            eprintln!("could not write {}: {error}", path.display());
        }
    }
}
