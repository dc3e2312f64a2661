//! Damaged files: each is a counted miss that is cleaned up; never a panic, never a wrong value.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use nfcs_cache_disk::DiskCache;

use crate::support::{find_in_segments, open, segment_files, small_config};

/// A cache with three entries whose values are easy to find in the files.
fn seeded() -> (tempfile::TempDir, Vec<(&'static str, Vec<u8>)>) {
    let directory = tempfile::tempdir().unwrap();
    let entries = vec![
        ("alpha", b"ALPHA-VALUE-0123456789".to_vec()),
        ("beta", b"BETA-VALUE-0123456789".to_vec()),
        ("gamma", b"GAMMA-VALUE-0123456789".to_vec()),
    ];
    let cache = open(directory.path(), small_config());
    for (key, value) in &entries {
        cache.insert(key, value, None).unwrap();
    }
    drop(cache);
    (directory, entries)
}

fn flip_byte(path: &std::path::Path, offset: usize) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0_u8];
    file.read_exact_at(&mut byte, offset as u64).unwrap();
    byte[0] ^= 0x20;
    file.write_all_at(&byte, offset as u64).unwrap();
}

/// Every key reads as its own value or as a miss, and the cache still takes writes.
fn assert_no_wrong_values(cache: &DiskCache, entries: &[(&str, Vec<u8>)]) {
    for (key, value) in entries {
        if let Some(found) = cache.get(key).unwrap() {
            assert_eq!(&found[..], &value[..], "{key} holds a wrong value");
        }
    }
    cache.insert("after", b"still works", None).unwrap();
    assert_eq!(
        cache.get("after").unwrap().as_deref(),
        Some(&b"still works"[..])
    );
}

#[test]
fn a_flipped_byte_in_a_record_body_is_a_counted_miss_at_recovery() {
    let (directory, entries) = seeded();
    let (path, offset) = find_in_segments(directory.path(), b"BETA-VALUE").unwrap();
    flip_byte(&path, offset + 3);
    let cache = open(directory.path(), small_config());
    assert_eq!(cache.recovery_report().corrupt_records, 1);
    assert_eq!(cache.get("beta").unwrap(), None);
    // Records before and after the damage survive: recovery steps over the damaged record.
    assert!(cache.get("alpha").unwrap().is_some());
    assert!(cache.get("gamma").unwrap().is_some());
    assert_no_wrong_values(&cache, &entries);
    drop(cache);
    let cache = open(directory.path(), small_config());
    assert_eq!(
        cache.recovery_report().corrupt_records,
        0,
        "cleaned up the first time"
    );
}

#[test]
fn a_flipped_byte_in_a_record_header_is_a_counted_miss_at_recovery() {
    let (directory, entries) = seeded();
    let (path, offset) = find_in_segments(directory.path(), b"gammaGAMMA").unwrap();
    // 48-byte record header, then the key: offset - 48 + 13 is inside the stored length.
    flip_byte(&path, offset - 48 + 13);
    let cache = open(directory.path(), small_config());
    assert_eq!(cache.recovery_report().corrupt_records, 1);
    assert_eq!(cache.get("gamma").unwrap(), None);
    assert_no_wrong_values(&cache, &entries);
}

#[test]
fn damage_after_opening_is_a_counted_miss_and_the_entry_is_dropped() {
    let (directory, entries) = seeded();
    let cache = open(directory.path(), small_config());
    let (path, offset) = find_in_segments(directory.path(), b"ALPHA-VALUE").unwrap();
    flip_byte(&path, offset);
    assert_eq!(cache.get("alpha").unwrap(), None);
    assert_eq!(cache.stats().errors, 1);
    assert_eq!(cache.get("alpha").unwrap(), None, "dropped, not read again");
    assert_eq!(cache.stats().errors, 1);
    assert_no_wrong_values(&cache, &entries);
}

#[test]
fn a_truncated_segment_loses_only_the_cut_records() {
    let (directory, entries) = seeded();
    let (path, offset) = find_in_segments(directory.path(), b"GAMMA-VALUE").unwrap();
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(offset as u64 + 4).unwrap();
    let cache = open(directory.path(), small_config());
    assert_eq!(cache.recovery_report().corrupt_records, 1);
    assert_eq!(cache.get("gamma").unwrap(), None);
    assert!(cache.get("alpha").unwrap().is_some() && cache.get("beta").unwrap().is_some());
    assert_no_wrong_values(&cache, &entries);
}

#[test]
fn a_segment_header_with_one_damaged_byte_is_repaired() {
    let (directory, entries) = seeded();
    let (path, _) = find_in_segments(directory.path(), b"ALPHA-VALUE").unwrap();
    flip_byte(&path, 20);
    let cache = open(directory.path(), small_config());
    assert_eq!(cache.recovery_report().repaired_headers, 1);
    assert_eq!(cache.recovery_report().reset_segments, 0);
    assert_eq!(cache.len(), 3);
    assert_no_wrong_values(&cache, &entries);
    drop(cache);
    let cache = open(directory.path(), small_config());
    assert_eq!(cache.recovery_report().repaired_headers, 0, "rewritten");
    assert_eq!(cache.len(), 4);
}

#[test]
fn a_segment_header_with_two_damaged_bytes_empties_that_segment() {
    let (directory, entries) = seeded();
    let (path, _) = find_in_segments(directory.path(), b"ALPHA-VALUE").unwrap();
    flip_byte(&path, 20);
    flip_byte(&path, 33);
    let cache = open(directory.path(), small_config());
    assert_eq!(cache.recovery_report().reset_segments, 1);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "emptied");
    assert_eq!(cache.len(), 0);
    assert_no_wrong_values(&cache, &entries);
}

#[test]
fn a_segment_of_a_newer_format_is_refused_and_emptied() {
    let (directory, entries) = seeded();
    let (path, _) = find_in_segments(directory.path(), b"ALPHA-VALUE").unwrap();
    // Version 2 with a valid checksum: what a newer release would write.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut header = [0_u8; 64];
    file.read_exact_at(&mut header, 0).unwrap();
    header[8] = 2;
    let checksum = xxhash_rust_checksum(&header[..56]);
    header[56..64].copy_from_slice(&checksum.to_le_bytes());
    file.write_all_at(&header, 0).unwrap();
    let cache = open(directory.path(), small_config());
    assert_eq!(cache.recovery_report().reset_segments, 1);
    assert_no_wrong_values(&cache, &entries);
}

#[test]
fn a_record_of_a_newer_version_is_stepped_over() {
    let (directory, entries) = seeded();
    let (path, offset) = find_in_segments(directory.path(), b"betaBETA").unwrap();
    // The record's version byte sits 4 bytes into its 48-byte header.
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[2], (offset - 48 + 4) as u64).unwrap();
    let cache = open(directory.path(), small_config());
    assert_eq!(cache.recovery_report().corrupt_records, 1);
    assert_eq!(cache.get("beta").unwrap(), None);
    assert!(cache.get("alpha").unwrap().is_some());
    assert!(
        cache.get("gamma").unwrap().is_some(),
        "the record after it is kept"
    );
    assert_no_wrong_values(&cache, &entries);
}

#[test]
fn garbage_files_are_left_alone_and_garbage_segments_emptied() {
    let (directory, entries) = seeded();
    std::fs::write(directory.path().join("notes.txt"), b"not ours").unwrap();
    std::fs::write(
        directory.path().join("seg-00009.nfcs"),
        b"garbage garbage garbage garbage garbage garbage garbage garbage garbage",
    )
    .unwrap();
    let cache = open(directory.path(), small_config());
    let report = cache.recovery_report();
    assert_eq!(report.foreign_files, 1);
    assert_eq!(report.reset_segments, 1);
    assert_eq!(
        std::fs::read(directory.path().join("notes.txt")).unwrap(),
        b"not ours"
    );
    assert_eq!(
        std::fs::metadata(directory.path().join("seg-00009.nfcs"))
            .unwrap()
            .len(),
        0
    );
    assert_eq!(cache.len(), 3);
    assert_no_wrong_values(&cache, &entries);
}

#[test]
fn a_segment_renamed_to_another_slot_is_refused() {
    let (directory, entries) = seeded();
    let (path, _) = find_in_segments(directory.path(), b"ALPHA-VALUE").unwrap();
    let moved = directory.path().join("seg-00007.nfcs");
    std::fs::rename(&path, &moved).unwrap();
    let cache = open(directory.path(), small_config());
    assert_eq!(cache.recovery_report().reset_segments, 1);
    assert_eq!(cache.len(), 0);
    assert_no_wrong_values(&cache, &entries);
    assert_eq!(
        segment_files(directory.path()).len() as u64,
        cache.capacity() / cache.segment_bytes()
    );
}

/// XXH3-64 as the segment header uses it (the test writes a header a newer release could).
fn xxhash_rust_checksum(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

#[test]
fn one_flipped_byte_early_in_a_segment_costs_only_its_record() {
    // Before recovery stepped over damaged records, this left 63 of 3,000 keys readable.
    let directory = tempfile::tempdir().unwrap();
    let cache = open(directory.path(), small_config());
    let value = |index: u32| format!("value-{index:05}-").repeat(4).into_bytes();
    for index in 0..3_000 {
        cache
            .insert(&format!("k:{index}"), &value(index), None)
            .unwrap();
    }
    drop(cache);
    let (path, offset) = find_in_segments(directory.path(), b"value-00010-").unwrap();
    flip_byte(&path, offset + 30);
    let cache = open(directory.path(), small_config());
    let report = cache.recovery_report().clone();
    assert_eq!(report.corrupt_records, 1, "{report:?}");
    assert_eq!(cache.len(), 2_999, "{report:?}");
    for index in 0..3_000 {
        let found = cache.get(&format!("k:{index}")).unwrap();
        if index == 10 {
            assert_eq!(found, None);
        } else {
            assert_eq!(found.as_deref(), Some(&value(index)[..]), "k:{index}");
        }
    }
    drop(cache);
    let cache = open(directory.path(), small_config());
    let report = cache.recovery_report();
    assert_eq!(
        report.corrupt_records, 0,
        "padded over the first time: {report:?}"
    );
    assert_eq!(cache.len(), 2_999);
}

/// A record's place in a segment file: where it starts and ends, and its key.
struct RecordSpan {
    start: usize,
    end: usize,
    key: String,
}

/// The records of an undamaged segment file, in order (the test reads the format itself:
/// 64-byte segment header, 48-byte record headers with the key and stored lengths at 8 and 12).
fn record_spans(segment: &[u8]) -> Vec<RecordSpan> {
    let mut spans = Vec::new();
    let mut offset = 64;
    while offset + 48 <= segment.len() {
        let word = |at: usize| u32::from_le_bytes(segment[at..at + 4].try_into().unwrap()) as usize;
        let (key_len, stored_len) = (word(offset + 8), word(offset + 12));
        let end = offset + 48 + key_len + stored_len;
        let key = String::from_utf8(segment[offset + 48..offset + 48 + key_len].to_vec()).unwrap();
        spans.push(RecordSpan {
            start: offset,
            end,
            key,
        });
        offset = end;
    }
    assert_eq!(offset, segment.len(), "the test's parse of the segment");
    spans
}

#[test]
fn every_single_flipped_byte_costs_at_most_the_record_it_is_in() {
    // One segment holding puts, overwrites, a deletion, a clear, and the same after it.
    let pristine = tempfile::tempdir().unwrap();
    let config = || small_config().compression(false);
    let cache = open(pristine.path(), config());
    let value = |key: &str, version: u32| format!("{key}-value-{version}").into_bytes();
    for key in ["k0", "k1", "k2", "k3"] {
        cache.insert(key, &value(key, 1), None).unwrap();
    }
    cache.insert("k1", &value("k1", 2), None).unwrap();
    cache.remove("k2").unwrap();
    cache.clear().unwrap();
    for key in ["k4", "k5", "k6", "k7"] {
        cache.insert(key, &value(key, 1), None).unwrap();
    }
    cache.insert("k5", &value("k5", 2), None).unwrap();
    cache.remove("k6").unwrap();
    drop(cache);
    let expected: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("k0", None),
        ("k1", None),
        ("k2", None),
        ("k3", None),
        ("k4", Some(value("k4", 1))),
        ("k5", Some(value("k5", 2))),
        ("k6", None),
        ("k7", Some(value("k7", 1))),
    ];
    let (path, _) = find_in_segments(pristine.path(), b"k4-value-1").unwrap();
    let segment = std::fs::read(&path).unwrap();
    let spans = record_spans(&segment);
    assert_eq!(
        spans.len(),
        13,
        "9 puts, 2 deletions, 1 clear... and the k4 put"
    );

    let mut lost_records = 0;
    for offset in 0..segment.len() {
        let directory = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(pristine.path()).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), directory.path().join(entry.file_name())).unwrap();
        }
        let copy = directory.path().join(path.file_name().unwrap());
        flip_byte(&copy, offset);
        let touched = spans
            .iter()
            .find(|span| (span.start..span.end).contains(&offset));
        // Opened twice: what the first recovery wrote must keep the second one right too.
        for reopening in [false, true] {
            let cache = open(directory.path(), config());
            if reopening {
                assert_eq!(
                    cache.recovery_report().corrupt_records,
                    0,
                    "flip at {offset}"
                );
            }
            for (key, value) in &expected {
                let found = cache.get(key).unwrap();
                match (&found, value) {
                    (Some(found), Some(value)) => {
                        assert_eq!(&found[..], &value[..], "{key} at {offset}")
                    }
                    (Some(_), None) => panic!("flip at {offset}: {key} came back"),
                    (None, Some(_)) => {
                        // Lost: only the key of the record the flip is in may be.
                        assert_eq!(
                            touched.map(|span| span.key.as_str()),
                            Some(*key),
                            "flip at {offset} lost {key}: {:?}",
                            cache.recovery_report()
                        );
                        lost_records += usize::from(!reopening);
                    }
                    (None, None) => {}
                }
            }
            if offset < 64 && !reopening {
                assert_eq!(
                    cache.recovery_report().repaired_headers,
                    1,
                    "flip at {offset}"
                );
            }
        }
    }
    println!("{} flips, {lost_records} entries lost", segment.len());
}
