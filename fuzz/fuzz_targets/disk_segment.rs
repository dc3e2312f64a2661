//! The disk tier's segment and record parser, fed whole segment files through the public API.
//!
//! The input is one or two segment files (a second starts where the segment magic begins a
//! later run: concatenated real files come apart as they were), written as `seg-00000.nfcs`
//! and `seg-00001.nfcs` into an empty directory, which is then opened as a [`DiskCache`] of
//! four 64 KiB segments on a clock that stands still. Each input runs twice: as it is, and with
//! every checksum repaired (see `nfcs_fuzz::segment`), so that mutations of lengths, kinds,
//! flags, sequences and values get past the checksums. Checked:
//!
//! - nothing panics, and opening either succeeds or returns a typed error;
//! - every key any record-shaped run of the files names is read back; a read that returns a
//!   value returns one that a put record of that key holds, decompressed (never another key's
//!   value, never bytes that no record holds);
//! - each entry the cache indexed at open is accounted for by those reads (a hit, a damaged
//!   record dropped, or an error): it has no keys the files do not contain;
//! - a value written afterwards reads back, and reads back again after reopening, where the
//!   other keys still obey the first rule.

#![no_main]

use std::collections::BTreeSet;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nfcs_cache_core::{ManualClock, Ttl};
use nfcs_cache_disk::{DiskCache, DiskConfig};
use nfcs_fuzz::segment::{FoundRecord, KIND_PUT, Value, records, repair_checksums, split_segments};

const SEGMENT: u64 = 64 << 10;
const PROBE_KEY: &str = "nfcs-fuzz/probe";
const PROBE_VALUE: &[u8] = b"written by the disk_segment fuzz target after opening";

fn config(manual: &ManualClock) -> DiskConfig {
    DiskConfig::new(4 * SEGMENT)
        .segment_bytes(SEGMENT)
        .clock(manual.clock())
}

/// Whether `value` is what some put record of `key` holds.
fn held_by(found: &[FoundRecord], key: &[u8], value: &[u8]) -> bool {
    found.iter().any(|record| {
        record.kind == KIND_PUT
            && record.key == key
            && match &record.value {
                Value::Bytes(bytes) => bytes == value,
                Value::Unchecked => true,
                Value::Undecodable => false,
            }
    })
}

/// Reads every candidate key; returns (hits, errors). Panics on a value no record holds.
fn read_all(cache: &DiskCache, found: &[FoundRecord], keys: &BTreeSet<&[u8]>) -> (u64, u64) {
    let (mut hits, mut errors) = (0, 0);
    for key in keys {
        let Ok(text) = std::str::from_utf8(key) else {
            continue;
        };
        match cache.get(text) {
            Ok(Some(value)) => {
                assert!(
                    held_by(found, key, &value),
                    "read {} bytes for key {text:?} that no put record of it holds",
                    value.len()
                );
                hits += 1;
            }
            Ok(None) => {}
            Err(error) => {
                let _ = error.to_string();
                errors += 1;
            }
        }
    }
    (hits, errors)
}

fn check(files: &[Vec<u8>]) {
    let directory = scratch_directory();
    for (slot, bytes) in files.iter().enumerate() {
        std::fs::write(segment_path(directory.path(), slot), bytes).expect("a segment file");
    }
    let found: Vec<FoundRecord> = files.iter().flat_map(|file| records(file)).collect();
    let keys: BTreeSet<&[u8]> = found.iter().map(|record| record.key.as_slice()).collect();
    let manual = ManualClock::new();

    let cache = match DiskCache::open(directory.path(), config(&manual)) {
        Ok(cache) => cache,
        Err(error) => {
            // A typed refusal (a header naming a segment size these 256 KiB cannot hold, for
            // one): allowed, but it must say what.
            assert!(!error.to_string().is_empty());
            return;
        }
    };
    let indexed = cache.len();
    let errors_before = cache.stats().errors;
    let (hits, errors) = read_all(&cache, &found, &keys);
    let dropped = cache.stats().errors - errors_before;
    assert!(
        hits + errors + dropped >= indexed,
        "{indexed} entries indexed at open, but only {hits} read back, {dropped} dropped as \
         damaged and {errors} errors over every key the files contain"
    );

    cache
        .insert(PROBE_KEY, PROBE_VALUE, Ttl::Never)
        .expect("a write after opening succeeds");
    assert_eq!(
        cache.get(PROBE_KEY).expect("the probe reads").as_deref(),
        Some(PROBE_VALUE)
    );
    drop(cache);

    let cache = DiskCache::open(directory.path(), config(&manual))
        .expect("the directory the cache itself left reopens");
    assert_eq!(
        cache.get(PROBE_KEY).expect("the probe reads").as_deref(),
        Some(PROBE_VALUE),
        "the value written before closing survives reopening"
    );
    let mut others = keys;
    others.remove(PROBE_KEY.as_bytes());
    read_all(&cache, &found, &others);
}

/// A fresh directory, on tmpfs where there is one: creating and removing files per input
/// dominates the cost of an execution on a disk file system.
fn scratch_directory() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(directory) = tempfile::Builder::new()
            .prefix("nfcs-fuzz-")
            .tempdir_in(shm)
    {
        return directory;
    }
    tempfile::tempdir().expect("a temporary directory")
}

fn segment_path(directory: &Path, slot: usize) -> std::path::PathBuf {
    directory.join(format!("seg-{slot:05}.nfcs"))
}

fuzz_target!(|input: &[u8]| {
    let files: Vec<Vec<u8>> = split_segments(input, 2)
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect();
    check(&files);
    let mut repaired = files;
    let mut changed = false;
    for file in &mut repaired {
        changed |= repair_checksums(file);
    }
    if changed {
        check(&repaired);
    }
});
