//! `disk-tier`: throughput from criterion, the percentiles, compression ratios, eviction and
//! reopen rows from the bench's report phase.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

use super::{Criterion, PeerInputs, heading, or_na, read_json};
use crate::BenchError;

/// `disk_tier_report.json`: `<subject>/<content>` → latencies and ratio;
/// `<subject>/evicting_writes_per_s` and `nfcs_disk/reopen_1m_s` → a number.
type Report = BTreeMap<String, Entry>;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Entry {
    /// A single figure (`null` when it was not a number).
    Figure(Option<f64>),
    /// Warm-read percentiles and stored / on-disk bytes of one subject and content.
    Reads(Reads),
}

#[derive(Debug, Deserialize)]
struct Reads {
    get_p50_us: Option<f64>,
    get_p99_us: Option<f64>,
    compression_ratio: Option<f64>,
}

fn figure(report: &Report, key: &str) -> Option<f64> {
    match report.get(key) {
        Some(Entry::Figure(value)) => *value,
        _ => None,
    }
}

fn reads<'a>(report: &'a Report, key: &str) -> Option<&'a Reads> {
    match report.get(key) {
        Some(Entry::Reads(reads)) => Some(reads),
        _ => None,
    }
}

const SUBJECTS: [&str; 4] = [
    "nfcs_disk",
    "nfcs_disk_uncompressed",
    "cacache",
    "plain_files",
];

pub(super) fn section(inputs: &PeerInputs) -> Result<String, BenchError> {
    if let Some(reason) = &inputs.skipped {
        return Ok(reason.clone());
    }
    let report: Report = read_json(&inputs.bench_out.join("disk_tier_report.json"))?;
    let criterion = Criterion::new(&inputs.criterion_home);
    let mut table = String::from(
        "| 4 KiB values | nfcs_disk | nfcs_disk_uncompressed | cacache | plain_files | nfcs_disk vs plain |\n\
         |---|---|---|---|---|---|\n",
    );
    for (operation, group) in [
        ("write, random (ops/s, MB/s)", "disk_tier/write_4k_random"),
        ("write, text (ops/s, MB/s)", "disk_tier/write_4k_text"),
        (
            "warm read, random (ops/s, MB/s)",
            "disk_tier/read_4k_random",
        ),
        ("warm read, text (ops/s, MB/s)", "disk_tier/read_4k_text"),
    ] {
        let mut rates = BTreeMap::new();
        for subject in SUBJECTS {
            let rate = criterion.median(group, subject)?.map(|nanos| 1e9 / nanos);
            rates.insert(subject, rate);
        }
        let rate = |subject: &str| rates.get(subject).copied().flatten();
        let cells: Vec<String> = SUBJECTS
            .iter()
            .map(|subject| {
                or_na(
                    rate(subject)
                        .map(|ops| format!("{:.1} k, {:.0} MB/s", ops / 1e3, ops * 4096.0 / 1e6)),
                )
            })
            .collect();
        let ratio = match (rate("nfcs_disk"), rate("plain_files")) {
            (Some(ours), Some(plain)) => format!("{:.2}x", ours / plain),
            _ => "n/a".to_owned(),
        };
        let _ = writeln!(table, "| {operation} | {} | {ratio} |", cells.join(" | "));
    }
    criterion.require_any()?;
    for content in ["random", "text"] {
        let cell = |subject: &str, field: fn(&Reads) -> Option<f64>, format: fn(f64) -> String| {
            or_na(
                reads(&report, &format!("{subject}/{content}"))
                    .and_then(field)
                    .map(format),
            )
        };
        let micros = |us: f64| format!("{us:.1} us");
        let cells: Vec<String> = SUBJECTS
            .iter()
            .map(|subject| {
                format!(
                    "{} / {}",
                    cell(subject, |reads| reads.get_p50_us, micros),
                    cell(subject, |reads| reads.get_p99_us, micros)
                )
            })
            .collect();
        let _ = writeln!(
            table,
            "| get p50 / p99, {content} (warm) | {} | |",
            cells.join(" | ")
        );
        let cells: Vec<String> = SUBJECTS
            .iter()
            .map(|subject| {
                cell(
                    subject,
                    |reads| reads.compression_ratio,
                    |ratio| format!("{ratio:.2}"),
                )
            })
            .collect();
        let _ = writeln!(
            table,
            "| stored / on disk, {content} | {} | |",
            cells.join(" | ")
        );
    }
    let evicting = |subject: &str| {
        or_na(
            figure(&report, &format!("{subject}/evicting_writes_per_s"))
                .map(|ops| format!("{:.1} k", ops / 1e3)),
        )
    };
    let ratio = match (
        figure(&report, "nfcs_disk/evicting_writes_per_s"),
        figure(&report, "plain_files/evicting_writes_per_s"),
    ) {
        (Some(ours), Some(plain)) => format!("{:.2}x", ours / plain),
        _ => "n/a".to_owned(),
    };
    let _ = writeln!(
        table,
        "| writes/s while every write evicts (64 MiB bound) | {} | | n/a (unbounded) | {} (FIFO unlink) | {ratio} |",
        evicting("nfcs_disk"),
        evicting("plain_files")
    );
    let reopen =
        or_na(figure(&report, "nfcs_disk/reopen_1m_s").map(|seconds| format!("{seconds:.2} s")));
    let _ = writeln!(
        table,
        "| reopen with 1,000,000 small entries | {reopen} | | | | |"
    );
    // `nfcs_disk_lz4` (`compression_codec = Lz4`): its own rows, in the nfcs_disk column, so
    // that the table keeps its columns.
    for (operation, group) in [
        ("warm read, text", "disk_tier/read_4k_text"),
        ("warm read, random", "disk_tier/read_4k_random"),
        ("write, text", "disk_tier/write_4k_text"),
    ] {
        let lz4 = criterion
            .median(group, "nfcs_disk_lz4")?
            .map(|nanos| 1e9 / nanos);
        let plain = criterion
            .median(group, "plain_files")?
            .map(|nanos| 1e9 / nanos);
        let cell = |rate: Option<f64>| {
            or_na(rate.map(|ops| format!("{:.1} k, {:.0} MB/s", ops / 1e3, ops * 4096.0 / 1e6)))
        };
        let ratio = match (lz4, plain) {
            (Some(ours), Some(plain)) => format!("{:.2}x", ours / plain),
            _ => "n/a".to_owned(),
        };
        let _ = writeln!(
            table,
            "| {operation}, nfcs_disk_lz4 (ops/s, MB/s) | {} | | | {} | {ratio} |",
            cell(lz4),
            cell(plain)
        );
    }
    let lz4_text = reads(&report, "nfcs_disk_lz4/text");
    let micros = |value: Option<f64>| or_na(value.map(|us| format!("{us:.1} us")));
    let _ = writeln!(
        table,
        "| nfcs_disk_lz4 text: get p50 / p99 (warm), stored / on disk | {} / {}, {} | | | | |",
        micros(lz4_text.and_then(|reads| reads.get_p50_us)),
        micros(lz4_text.and_then(|reads| reads.get_p99_us)),
        or_na(
            lz4_text
                .and_then(|reads| reads.compression_ratio)
                .map(|ratio| format!("{ratio:.2}"))
        )
    );
    Ok(heading(
        "`cargo xtask compare` (criterion, release; medians of 10 samples of 2 s; the \
         percentiles, ratios, eviction and reopen rows from the same run's report phase)",
        &inputs.machine,
    ) + &table)
}
