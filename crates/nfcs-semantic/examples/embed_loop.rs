//! Embeds a batch of texts in a loop for a few seconds and prints sentences per second: a
//! target for a profiler (`perf record`), not a benchmark (see `benches/semantic.rs`).
//!
//! `cargo run --release -p nfcs-semantic --example embed_loop -- [batch] [words] [seconds]`

use std::time::{Duration, Instant};

use nfcs_semantic::{Embedder, MiniLmEmbedder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let batch: usize = args.next().map_or(Ok(32), |arg| arg.parse())?;
    let words: usize = args.next().map_or(Ok(50), |arg| arg.parse())?;
    let seconds: f64 = args.next().map_or(Ok(5.0), |arg| arg.parse())?;
    let model = MiniLmEmbedder::load_default()?;
    let texts: Vec<String> = (0..batch)
        .map(|index| {
            (0..words)
                .map(|word| format!("word{}", (word * 7 + index) % 97))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let borrowed: Vec<&str> = texts.iter().map(String::as_str).collect();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut sentences = 0;
    while started.elapsed() < Duration::from_secs_f64(seconds) {
        model.embed(&borrowed)?;
        sentences += batch;
    }
    let cpu = cpu_seconds() - cpu_before;
    println!(
        "{:.1} sentences/s, {:.1} per CPU second (batch {batch}, {words} words)",
        sentences as f64 / started.elapsed().as_secs_f64(),
        sentences as f64 / cpu,
    );
    Ok(())
}

/// User and system CPU time of this process so far (Linux), so that a busy machine does not
/// distort the figure; 0 elsewhere.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |index: usize| -> f64 {
        fields
            .get(index)
            .and_then(|f| f.parse().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}
