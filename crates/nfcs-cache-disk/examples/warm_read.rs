//! Warm reads of 4 KiB text values, the disk tier's codecs against one file per entry, in one
//! process: `cargo run --release -p nfcs-cache-disk --example warm_read -- [SUBJECT] [READS]`.
//!
//! With a subject (`zstd`, `lz4`, `raw`, `plain`) it only reads that one, `READS` times, inside
//! `read_loop`: run it under `valgrind --tool=callgrind --toggle-collect='warm_read::read_loop*'`
//! at two read counts and divide the difference by the difference of the counts to get
//! instructions per read. Without one it times the four interleaved (rounds of 20,000 reads
//! each, medians of 9 rounds) and prints their ratio to the plain files and the space saved.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use nfcs_cache_disk::{CompressionCodec, DiskCache, DiskConfig};
use rand::{RngExt, SeedableRng};

const VALUE_LEN: usize = 4096;
const KEYS: usize = 20_000;

/// English-like text from a small vocabulary, as in benches/disk_tier.rs.
fn text_value(rng: &mut rand::rngs::StdRng) -> Vec<u8> {
    const WORDS: [&str; 24] = [
        "the",
        "field",
        "amplitude",
        "phase",
        "oscillator",
        "coupling",
        "order",
        "parameter",
        "grid",
        "step",
        "energy",
        "of",
        "and",
        "to",
        "in",
        "converged",
        "0.9731",
        "-1.25",
        "policy",
        "allow",
        "deny",
        "risk",
        "{\"value\":",
        "},",
    ];
    let mut text = Vec::with_capacity(VALUE_LEN + 16);
    while text.len() < VALUE_LEN {
        text.extend_from_slice(WORDS[rng.random_range(0..WORDS.len())].as_bytes());
        text.push(b' ');
    }
    text.truncate(VALUE_LEN);
    text
}

enum Subject {
    Disk(DiskCache),
    Plain(PathBuf),
}

impl Subject {
    fn plain_path(directory: &Path, key: &str) -> PathBuf {
        directory.join(format!(
            "{:016x}",
            xxhash_rust::xxh3::xxh3_64(key.as_bytes())
        ))
    }

    fn write(&self, key: &str, value: &[u8]) {
        match self {
            Subject::Disk(cache) => cache.insert(key, value, None).expect("write"),
            Subject::Plain(directory) => {
                std::fs::write(Subject::plain_path(directory, key), value).expect("write")
            }
        }
    }

    fn read(&self, key: &str) -> Vec<u8> {
        match self {
            Subject::Disk(cache) => cache.get(key).expect("read").expect("stored").to_vec(),
            Subject::Plain(directory) => {
                std::fs::read(Subject::plain_path(directory, key)).expect("read")
            }
        }
    }

    fn saving(&self) -> f64 {
        match self {
            Subject::Disk(cache) => (KEYS * VALUE_LEN) as f64 / cache.disk_usage() as f64,
            Subject::Plain(_) => 1.0,
        }
    }
}

#[inline(never)]
fn read_loop(subject: &Subject, keys: &[String], reads: usize, start: usize) {
    for index in 0..reads {
        black_box(subject.read(&keys[(start + index * 7919) % KEYS]));
    }
}

fn open(root: &Path, name: &str) -> Subject {
    let directory = root.join(name);
    std::fs::create_dir_all(&directory).expect("directory");
    let config = DiskConfig::new(4 << 30);
    match name {
        "zstd" => Subject::Disk(DiskCache::open(&directory, config).expect("open")),
        "lz4" => Subject::Disk(
            DiskCache::open(&directory, config.compression_codec(CompressionCodec::Lz4))
                .expect("open"),
        ),
        "raw" => {
            Subject::Disk(DiskCache::open(&directory, config.compression(false)).expect("open"))
        }
        _ => Subject::Plain(directory),
    }
}

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let only = arguments.first().cloned();
    let reads: usize = arguments
        .get(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(KEYS);
    let root = tempfile::tempdir().expect("temporary directory");
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let templates: Vec<Vec<u8>> = (0..256).map(|_| text_value(&mut rng)).collect();
    let keys: Vec<String> = (0..KEYS).map(|index| format!("key:{index:010}")).collect();
    let names: Vec<&str> = match &only {
        Some(name) => vec![name.as_str()],
        None => vec!["zstd", "lz4", "raw", "plain"],
    };
    let subjects: Vec<(&str, Subject)> = names
        .iter()
        .map(|name| (*name, open(root.path(), name)))
        .collect();
    for (_, subject) in &subjects {
        for (index, key) in keys.iter().enumerate() {
            let mut value = templates[index % templates.len()].clone();
            value[..10].copy_from_slice(format!("{index:010}").as_bytes());
            subject.write(key, &value);
        }
        read_loop(subject, &keys, KEYS, 0); // warms the page cache
    }
    if only.is_some() {
        read_loop(&subjects[0].1, &keys, reads, 1);
        return;
    }
    println!(
        "loadavg before: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); subjects.len()];
    for round in 0..9 {
        for (slot, (_, subject)) in subjects.iter().enumerate() {
            let started = Instant::now();
            read_loop(subject, &keys, reads, round);
            times[slot].push(started.elapsed().as_secs_f64() * 1e9 / reads as f64);
        }
    }
    println!(
        "loadavg after: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let medians: Vec<f64> = times
        .iter_mut()
        .map(|samples| {
            samples.sort_by(f64::total_cmp);
            samples[samples.len() / 2]
        })
        .collect();
    let plain = medians[subjects.len() - 1];
    for ((name, subject), median) in subjects.iter().zip(&medians) {
        println!(
            "{name:6} {median:8.0} ns/read  {:.2}x plain files' throughput  stored/on disk {:.2}",
            plain / median,
            subject.saving()
        );
    }
}
