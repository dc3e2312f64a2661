//! The instruction-count probe of one embedding, for `cargo xtask perf-check` (which runs this
//! under `valgrind --tool=callgrind`; see `xtask/src/perf.rs`).
//!
//! `cargo run --release -p nfcs-semantic --example perf_probe_semantic -- embed-short
//! <ITERATIONS> [MODEL_DIR]` loads all-MiniLM-L6-v2 (from `MODEL_DIR`, else
//! `default_model_dir()`), embeds the text once as a warm-up, then `ITERATIONS` times inside
//! [`measured_region`], the one function whose instructions callgrind collects. It runs inside
//! a rayon pool of one thread, so the encoder's matrix products run on that thread alone
//! (`bert.rs` picks no parallelism when rayon has one thread) and the counts repeat.

use std::error::Error;

use nfcs_semantic::{Embedder, MiniLmEmbedder};

/// The text: a short query, as a semantic-cache lookup sees.
const TEXT: &str = "how does the cache decide which entries to evict first";

/// Embeds [`TEXT`] `iterations` times: the only instructions callgrind collects.
#[inline(never)]
fn measured_region(model: &MiniLmEmbedder, iterations: usize) -> usize {
    let mut dimensions = 0;
    for _ in 0..iterations {
        dimensions += model
            .embed(&[TEXT])
            .ok()
            .and_then(|vectors| vectors.first().map(Vec::len))
            .unwrap_or(0);
    }
    dimensions
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: perf_probe_semantic embed-short <ITERATIONS> [MODEL_DIR]";
    let probe = args.next().ok_or(usage)?;
    if probe != "embed-short" {
        return Err(format!("unknown probe {probe:?}: embed-short").into());
    }
    let iterations: usize = args.next().ok_or(usage)?.parse()?;
    let directory = args
        .next()
        .map_or_else(nfcs_semantic::default_model_dir, Into::into);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let dimensions = pool.install(|| -> Result<usize, String> {
        let model = MiniLmEmbedder::load(&directory).map_err(|error| error.to_string())?;
        model.embed(&[TEXT]).map_err(|error| error.to_string())?;
        Ok(measured_region(&model, iterations))
    })?;
    if dimensions == 0 && iterations > 0 {
        return Err("every embedding failed".into());
    }
    println!("{probe}: {iterations} iterations, {dimensions} dimensions in all");
    Ok(())
}
