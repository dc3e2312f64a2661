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
    // Records before the damage survive; the segment was cut at the damaged record.
    assert!(cache.get("alpha").unwrap().is_some());
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
fn a_damaged_segment_header_empties_that_segment() {
    let (directory, entries) = seeded();
    let (path, _) = find_in_segments(directory.path(), b"ALPHA-VALUE").unwrap();
    flip_byte(&path, 20);
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
fn a_record_of_a_newer_version_ends_the_segment_there() {
    let (directory, entries) = seeded();
    let (path, offset) = find_in_segments(directory.path(), b"betaBETA").unwrap();
    // The record's version byte sits 4 bytes into its 48-byte header.
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[2], (offset - 48 + 4) as u64).unwrap();
    let cache = open(directory.path(), small_config());
    assert_eq!(cache.recovery_report().corrupt_records, 1);
    assert_eq!(cache.get("beta").unwrap(), None);
    assert!(cache.get("alpha").unwrap().is_some());
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
