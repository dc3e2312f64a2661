//! A fixed number of embeddings, for instruction counts and A/B timings: not a benchmark (see
//! `benches/semantic.rs`).
//!
//! `cargo run --release -p nfcs-semantic --example embed_count -- TEXTS BATCH COUNT [CALLER]`
//!
//! - `TEXTS`: `short` (about 12 tokens) or `medium` (about 67), the benchmark's texts;
//! - `BATCH` texts per call, `COUNT` calls (after one unmeasured call);
//! - `CALLER`: `main` (default) calls `embed` from the main thread, `pool` from inside a rayon
//!   pool of `RAYON_NUM_THREADS` threads (as the benchmark does), `both` alternates the two
//!   for `COUNT` rounds of one second each and prints each one's median rate beside
//!   `/proc/loadavg`.
//!
//! Under `valgrind --tool=callgrind`, two counts' difference is the instructions of
//! `COUNT₂ − COUNT₁` calls without the loading.

use std::time::Instant;

use nfcs_semantic::{Embedder, MiniLmEmbedder};

fn texts(name: &str) -> Vec<String> {
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
    let short: Vec<String> = verbs
        .iter()
        .flat_map(|verb| {
            subjects
                .iter()
                .map(move |subject| format!("{verb} {subject} from last week?"))
        })
        .collect();
    if name == "short" {
        return short;
    }
    short
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "medium".to_owned());
    let batch: usize = args.next().map_or(Ok(1), |arg| arg.parse())?;
    let count: usize = args.next().map_or(Ok(10), |arg| arg.parse())?;
    let caller = args.next().unwrap_or_else(|| "main".to_owned());
    let model = MiniLmEmbedder::load_default()?;
    let texts = texts(&name);
    let borrowed: Vec<&str> = texts.iter().map(String::as_str).collect();
    let slice = |call: usize| -> Vec<&str> {
        (0..batch)
            .map(|offset| borrowed[(call * batch + offset) % borrowed.len()])
            .collect()
    };
    let pool = rayon::ThreadPoolBuilder::new().build()?;
    model.embed(&slice(0))?;
    match caller.as_str() {
        "main" => {
            for call in 0..count {
                model.embed(&slice(call))?;
            }
        }
        "pool" => {
            pool.install(|| (0..count).try_for_each(|call| model.embed(&slice(call)).map(|_| ())))?
        }
        _ => {
            // Alternating rounds of one second, each subject's median.
            let mut rates = [Vec::new(), Vec::new()];
            for round in 0..count {
                for (subject, rates) in rates.iter_mut().enumerate() {
                    let started = Instant::now();
                    let mut sentences = 0;
                    let mut call = round;
                    let mut run = || -> Result<(), nfcs_semantic::SemanticError> {
                        while started.elapsed().as_secs_f64() < 1.0 {
                            model.embed(&slice(call))?;
                            call += 1;
                            sentences += batch;
                        }
                        Ok(())
                    };
                    if subject == 0 {
                        run()?;
                    } else {
                        pool.install(run)?;
                    }
                    rates.push(sentences as f64 / started.elapsed().as_secs_f64());
                }
            }
            let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
            for (label, mut rates) in ["main", "pool"].into_iter().zip(rates) {
                rates.sort_by(f64::total_cmp);
                println!(
                    "{label}: median {:.1} sentences/s ({name}, batch {batch}, {} threads), rounds {:?}",
                    rates[rates.len() / 2],
                    pool.current_num_threads(),
                    rates.iter().map(|rate| rate.round()).collect::<Vec<_>>(),
                );
            }
            println!("load: {}", load.trim());
        }
    }
    Ok(())
}
