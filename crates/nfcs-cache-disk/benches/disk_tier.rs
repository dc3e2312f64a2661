//! The disk tier against cacache and a plain file-per-entry store, in one process and one run.
//!
//! Subjects (all called synchronously from one thread):
//! - `nfcs_disk`: `DiskCache` with checksums, compression and the index on, as shipped.
//! - `nfcs_disk_uncompressed`: the same with compression off, to show what zstd costs reads.
//! - `nfcs_disk_lz4`: the same with `compression_codec = Lz4`: less space saved than zstd,
//!   several times faster decoding.
//! - `cacache`: cacache 13 (`write_sync` / `read_sync`), content-addressed, SHA-256 integrity.
//! - `plain_files`: one file per entry named by a hash of the key, written to a temporary file
//!   and renamed into place, read with `std::fs::read`: no checksum, no index, no compression,
//!   no size bound. The floor a file-per-entry design can reach.
//!
//! Workloads: 4 KiB values, random (incompressible) and text-like (English-like words);
//! writes of new keys, and warm reads (page cache) of 20,000 stored keys.
//!
//! Criterion measures the write and read throughput. After it, a report phase measures on the
//! same subjects: read latency percentiles, the compression ratio, write throughput while
//! every write evicts (64 MiB bound), and the time to reopen a cache of 1,000,000 small
//! entries. With `NFCS_BENCH_OUT=<dir>` the report is written to
//! `<dir>/disk_tier_report.json`, which `cargo xtask bench` turns into the tables of
//! docs/benchmarks.md.

use std::collections::VecDeque;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use nfcs_cache_disk::{CompressionCodec, DiskCache, DiskConfig};
use rand::{RngExt, SeedableRng};

const VALUE_LEN: usize = 4096;
const READ_SET: usize = 20_000;

/// What the workloads need of a store.
trait Subject {
    fn write(&mut self, key: &str, value: &[u8]);
    fn read(&mut self, key: &str) -> Option<Vec<u8>>;
    /// Bytes the store's files take.
    fn bytes_on_disk(&self) -> u64;
}

struct Nfcs(DiskCache);

impl Subject for Nfcs {
    fn write(&mut self, key: &str, value: &[u8]) {
        self.0.insert(key, value, None).expect("disk write");
    }
    fn read(&mut self, key: &str) -> Option<Vec<u8>> {
        self.0
            .get(key)
            .expect("disk read")
            .map(|value| value.to_vec())
    }
    fn bytes_on_disk(&self) -> u64 {
        self.0.disk_usage()
    }
}

struct Cacache(PathBuf);

impl Subject for Cacache {
    fn write(&mut self, key: &str, value: &[u8]) {
        cacache::write_sync(&self.0, key, value).expect("cacache write");
    }
    fn read(&mut self, key: &str) -> Option<Vec<u8>> {
        cacache::read_sync(&self.0, key).ok()
    }
    fn bytes_on_disk(&self) -> u64 {
        directory_bytes(&self.0)
    }
}

/// One file per entry, written atomically (temporary file, then rename); with a byte budget,
/// the oldest files are deleted first (what a simple file-per-entry cache does to stay bounded).
struct PlainFiles {
    directory: PathBuf,
    budget: Option<u64>,
    written: VecDeque<(PathBuf, u64)>,
    held: u64,
}

impl PlainFiles {
    fn new(directory: PathBuf, budget: Option<u64>) -> PlainFiles {
        PlainFiles {
            directory,
            budget,
            written: VecDeque::new(),
            held: 0,
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.directory.join(format!(
            "{:016x}",
            xxhash_rust::xxh3::xxh3_64(key.as_bytes())
        ))
    }
}

impl Subject for PlainFiles {
    fn write(&mut self, key: &str, value: &[u8]) {
        let path = self.path(key);
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, value).expect("plain write");
        std::fs::rename(&temporary, &path).expect("plain rename");
        if let Some(budget) = self.budget {
            self.written.push_back((path, value.len() as u64));
            self.held += value.len() as u64;
            while self.held > budget {
                let Some((oldest, len)) = self.written.pop_front() else {
                    break;
                };
                let _ = std::fs::remove_file(oldest);
                self.held -= len;
            }
        }
    }
    fn read(&mut self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path(key)).ok()
    }
    fn bytes_on_disk(&self) -> u64 {
        directory_bytes(&self.directory)
    }
}

/// Flushes the dirty pages earlier subjects left, so that the kernel's write-back of their
/// data does not slow the next subject down (writes are otherwise order dependent).
fn settle() {
    let _ = std::process::Command::new("sync").status();
}

fn directory_bytes(directory: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![directory.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(metadata) if metadata.is_dir() => stack.push(entry.path()),
                Ok(metadata) => total += metadata.len(),
                Err(_) => {}
            }
        }
    }
    total
}

fn random_value(rng: &mut rand::rngs::StdRng) -> Vec<u8> {
    (0..VALUE_LEN).map(|_| rng.random::<u8>()).collect()
}

/// English-like text: words drawn from a small vocabulary, as solver logs and JSON results are.
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

/// `template` with `stamp` written over its first 10 bytes, so that every stored value is
/// distinct (cacache deduplicates identical contents, which would flatter it).
fn stamped(template: &[u8], stamp: u64) -> Vec<u8> {
    let mut value = template.to_vec();
    let digits = format!("{stamp:010}");
    value[..10].copy_from_slice(digits.as_bytes());
    value
}

/// A fresh subject of each kind in its own temporary directory.
fn subjects(root: &Path, tag: &str) -> Vec<(&'static str, Box<dyn Subject>)> {
    let directory = |name: &str| {
        let path = root.join(format!("{tag}-{name}"));
        std::fs::create_dir_all(&path).expect("bench directory");
        path
    };
    vec![
        (
            "nfcs_disk",
            Box::new(Nfcs(
                DiskCache::open(directory("nfcs"), DiskConfig::new(4 << 30)).expect("open"),
            )),
        ),
        (
            "nfcs_disk_uncompressed",
            Box::new(Nfcs(
                DiskCache::open(
                    directory("nfcs-raw"),
                    DiskConfig::new(4 << 30).compression(false),
                )
                .expect("open"),
            )),
        ),
        (
            "nfcs_disk_lz4",
            Box::new(Nfcs(
                DiskCache::open(
                    directory("nfcs-lz4"),
                    DiskConfig::new(4 << 30).compression_codec(CompressionCodec::Lz4),
                )
                .expect("open"),
            )),
        ),
        ("cacache", Box::new(Cacache(directory("cacache")))),
        (
            "plain_files",
            Box::new(PlainFiles::new(directory("plain"), None)),
        ),
    ]
}

type ValueMaker = fn(&mut rand::rngs::StdRng) -> Vec<u8>;
const CONTENTS: [(&str, ValueMaker); 2] = [("random", random_value), ("text", text_value)];

fn throughput(criterion: &mut Criterion, root: &Path) {
    for (content, make) in CONTENTS {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let values: Vec<Vec<u8>> = (0..256).map(|_| make(&mut rng)).collect();

        let mut group = criterion.benchmark_group(format!("disk_tier/write_4k_{content}"));
        group
            .throughput(Throughput::Elements(1))
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for (name, mut subject) in subjects(root, &format!("write-{content}")) {
            settle();
            let mut counter = 0_u64;
            group.bench_function(BenchmarkId::from_parameter(name), |bencher| {
                bencher.iter(|| {
                    counter += 1;
                    let value = stamped(&values[counter as usize % values.len()], counter);
                    subject.write(&format!("key:{counter:010}"), &value);
                })
            });
        }
        group.finish();

        let mut group = criterion.benchmark_group(format!("disk_tier/read_4k_{content}"));
        group
            .throughput(Throughput::Elements(1))
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for (name, mut subject) in subjects(root, &format!("read-{content}")) {
            for index in 0..READ_SET {
                let value = stamped(&values[index % values.len()], index as u64);
                subject.write(&format!("key:{index:010}"), &value);
            }
            settle();
            let mut counter = 0_usize;
            group.bench_function(BenchmarkId::from_parameter(name), |bencher| {
                bencher.iter(|| {
                    counter = (counter + 7919) % READ_SET;
                    black_box(subject.read(&format!("key:{counter:010}")).expect("stored"));
                })
            });
        }
        group.finish();
    }
}

/// Measurements criterion does not make.
fn report(root: &Path) -> serde_json::Value {
    let mut rows = serde_json::Map::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);

    // Read latency percentiles and compression ratio, per content kind.
    for (content, make) in CONTENTS {
        let values: Vec<Vec<u8>> = (0..256).map(|_| make(&mut rng)).collect();
        for (name, mut subject) in subjects(root, &format!("latency-{content}")) {
            for index in 0..READ_SET {
                let value = stamped(&values[index % values.len()], index as u64);
                subject.write(&format!("key:{index:010}"), &value);
            }
            let stored = (READ_SET * VALUE_LEN) as f64;
            let ratio = stored / subject.bytes_on_disk() as f64;
            let mut samples = Vec::with_capacity(READ_SET);
            for round in 0..2 {
                for index in 0..READ_SET {
                    let key = format!("key:{:010}", (index * 7919) % READ_SET);
                    let started = Instant::now();
                    black_box(subject.read(&key).expect("stored"));
                    // The first round warms the page cache; the second is measured.
                    if round == 1 {
                        samples.push(started.elapsed());
                    }
                }
            }
            samples.sort();
            let percentile =
                |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
            rows.insert(
                format!("{name}/{content}"),
                serde_json::json!({
                    "get_p50_us": percentile(0.50).as_secs_f64() * 1e6,
                    "get_p99_us": percentile(0.99).as_secs_f64() * 1e6,
                    "compression_ratio": ratio,
                }),
            );
        }
    }

    // Writes while every write evicts: a 64 MiB bound, 6x that written.
    let budget = 64 << 20;
    let values: Vec<Vec<u8>> = (0..256).map(|_| random_value(&mut rng)).collect();
    let writes = 6 * budget as usize / VALUE_LEN;
    let evicting: Vec<(&str, Box<dyn Subject>)> = vec![
        (
            "nfcs_disk",
            Box::new(Nfcs(
                DiskCache::open(root.join("evict-nfcs"), DiskConfig::new(budget)).expect("open"),
            )),
        ),
        ("plain_files", {
            let directory = root.join("evict-plain");
            std::fs::create_dir_all(&directory).expect("bench directory");
            Box::new(PlainFiles::new(directory, Some(budget)))
        }),
    ];
    for (name, mut subject) in evicting {
        // Fill to the bound first, then measure.
        for index in 0..budget as usize / VALUE_LEN {
            subject.write(
                &format!("fill:{index:010}"),
                &stamped(&values[index % values.len()], index as u64),
            );
        }
        settle();
        let started = Instant::now();
        for index in 0..writes {
            subject.write(
                &format!("evict:{index:010}"),
                &stamped(&values[index % values.len()], index as u64),
            );
        }
        let per_second = writes as f64 / started.elapsed().as_secs_f64();
        assert!(
            subject.bytes_on_disk() <= budget + (budget / 16),
            "{name} exceeded its bound"
        );
        rows.insert(
            format!("{name}/evicting_writes_per_s"),
            serde_json::json!(per_second),
        );
    }

    // Reopening a cache of 1,000,000 small entries.
    let directory = root.join("reopen");
    {
        let cache = DiskCache::open(&directory, DiskConfig::new(1 << 30)).expect("open");
        for index in 0..1_000_000_u32 {
            cache
                .insert(
                    &format!("entry:{index:07}"),
                    &index.to_le_bytes().repeat(8),
                    None,
                )
                .expect("write");
        }
    }
    let mut times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let cache = DiskCache::open(&directory, DiskConfig::new(1 << 30)).expect("reopen");
        times.push(started.elapsed());
        assert_eq!(cache.len(), 1_000_000);
    }
    times.sort();
    rows.insert(
        "nfcs_disk/reopen_1m_s".into(),
        serde_json::json!(times[1].as_secs_f64()),
    );
    serde_json::Value::Object(rows)
}

fn benchmarks(criterion: &mut Criterion) {
    let root = tempfile::tempdir().expect("a temporary directory");
    throughput(criterion, root.path());
    let report = report(root.path());
    println!(
        "\ndisk tier report: {}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    if let Some(directory) = std::env::var_os("NFCS_BENCH_OUT") {
        let path = Path::new(&directory).join("disk_tier_report.json");
        let written = std::fs::create_dir_all(&directory).and_then(|()| {
            std::fs::write(
                &path,
                serde_json::to_vec_pretty(&report).unwrap_or_default(),
            )
        });
        if let Err(error) = written {
            eprintln!("could not write {}: {error}", path.display());
        }
    }
}

criterion::criterion_group!(disk_tier, benchmarks);
criterion::criterion_main!(disk_tier);
