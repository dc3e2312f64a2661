//! The online miss-ratio curves ([`nfcs_cache_core::mrc`]) against the exact curves on three
//! traces: the mean absolute error at a sampling rate, for LRU and S3-FIFO.
//!
//! `cargo run --release -p nfcs-cache-core --example mrc_accuracy -- [rate] [reads] [out-dir]`
//!
//! With an output directory, each trace is also written there in libCacheSim's
//! `oracleGeneral` format (`<name>.oracleGeneral`) with the curves (`<name>.json`), for
//! `scripts/mrc_libcachesim.py` to compute its own curves on the same reads.
use std::error::Error;
use std::io::Write;
use std::time::Instant;

use nfcs_cache_core::EvictionPolicy;
use nfcs_cache_core::mrc::size_grid;

#[path = "../tests/support/traces.rs"]
mod traces;

fn argument<T: std::str::FromStr>(index: usize, default: T) -> Result<T, Box<dyn Error>>
where
    T::Err: std::fmt::Display,
{
    match std::env::args().nth(index) {
        Some(text) => Ok(text.parse().map_err(|error| format!("{text:?}: {error}"))?),
        None => Ok(default),
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let rate: f64 = argument(1, 0.01)?;
    let reads: usize = argument(2, 4_000_000)?;
    let out: Option<String> = std::env::args().nth(3);
    let keys = reads / 8;
    let traces = [
        traces::zipf(keys, 0.8, reads, 1),
        traces::zipf_sized(keys, 1.0, reads, 2),
        traces::scan_mix(keys, reads, 3),
    ];
    println!("rate {rate}, {reads} reads over {keys} keys per trace");
    println!("| trace | policy | MAE | max error | estimate (s) | exact (s) |");
    println!("|---|---|---:|---:|---:|---:|");
    for trace in &traces {
        let footprint = trace.footprint(EvictionPolicy::S3Fifo);
        let sizes = size_grid(footprint / 100, footprint, 16);
        let started = Instant::now();
        let estimator = traces::estimate(trace, rate, &sizes);
        let estimate_seconds = started.elapsed().as_secs_f64();
        let mut curves = Vec::new();
        // Exact curves from an earlier run with the same reads and sizes are reused (they take
        // minutes): `<out>/<name>.json`.
        let earlier: Option<serde_json::Value> = out.as_ref().and_then(|out| {
            let text = std::fs::read_to_string(format!("{out}/{}.json", trace.name)).ok()?;
            let json: serde_json::Value = serde_json::from_str(&text).ok()?;
            (json["reads"] == serde_json::json!(reads) && json["sizes"] == serde_json::json!(sizes))
                .then_some(json)
        });
        for policy in [EvictionPolicy::Lru, EvictionPolicy::S3Fifo] {
            let started = Instant::now();
            let reused = earlier.as_ref().and_then(|json| {
                let curve = json["curves"]
                    .as_array()?
                    .iter()
                    .find(|curve| curve["policy"] == serde_json::json!(policy.to_string()))?;
                let points: Vec<nfcs_cache_core::mrc::CurvePoint> =
                    serde_json::from_value(curve["exact"].clone()).ok()?;
                Some(nfcs_cache_core::mrc::MissRatioCurve {
                    policy,
                    points,
                    sampled_reads: reads as f64,
                })
            });
            let exact = reused.unwrap_or_else(|| traces::exact_curve(trace, policy, &sizes));
            let exact_seconds = started.elapsed().as_secs_f64();
            let estimated = estimator.curve(policy);
            let max = exact
                .points
                .iter()
                .zip(&estimated.points)
                .map(|(exact, estimated)| (exact.miss_ratio - estimated.miss_ratio).abs())
                .fold(0.0, f64::max);
            println!(
                "| {} | {policy} | {:.4} | {max:.4} | {estimate_seconds:.1} | {exact_seconds:.1} |",
                trace.name,
                exact.mean_absolute_error(&estimated),
            );
            if std::env::var_os("MRC_POINTS").is_some() {
                for (exact, estimated) in exact.points.iter().zip(&estimated.points) {
                    println!(
                        "    {:>12} {:.4} {:.4}",
                        exact.bytes, exact.miss_ratio, estimated.miss_ratio
                    );
                }
            }
            curves.push(serde_json::json!({
                "policy": policy.to_string(),
                "exact": exact.points,
                "estimated": estimated.points,
            }));
        }
        if let Some(out) = &out {
            std::fs::create_dir_all(out)?;
            let path = format!("{out}/{}.oracleGeneral", trace.name);
            let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
            for (time, &id) in trace.reads.iter().enumerate() {
                // The size libCacheSim charges is the memory tier's charge of the entry.
                let charge = EvictionPolicy::S3Fifo.entry_charge(
                    trace.keys[id as usize].len(),
                    trace.sizes[id as usize] as usize,
                    false,
                );
                file.write_all(&(time as u32).to_le_bytes())?;
                file.write_all(&u64::from(id).to_le_bytes())?;
                file.write_all(&(charge as u32).to_le_bytes())?;
                file.write_all(&(-1_i64).to_le_bytes())?;
            }
            file.flush()?;
            std::fs::write(
                format!("{out}/{}.json", trace.name),
                serde_json::to_vec_pretty(&serde_json::json!({
                    "trace": trace.name,
                    "rate": rate,
                    "reads": reads,
                    "sizes": sizes,
                    "curves": curves,
                }))?,
            )?;
        }
    }
    Ok(())
}
