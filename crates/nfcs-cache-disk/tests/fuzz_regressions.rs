//! Inputs the `disk_segment` fuzz target (`fuzz/`, `cargo xtask fuzz`) found, as tests:
//! segment files whose header is intact (its checksum matches) but whose fields cannot be
//! trusted. Opening such a directory must never panic: it opens (the segment treated as
//! damaged) or refuses with a typed error.

use std::path::Path;

use nfcs_cache_core::{ManualClock, Ttl};
use nfcs_cache_disk::{DiskCache, DiskConfig};

const SEGMENT: u64 = 64 << 10;

/// A segment header as `format.rs` lays it out, with a correct checksum.
fn header(slot: u32, sequence: u64, segment_size: u64, nonce: u64) -> Vec<u8> {
    let mut bytes = vec![0_u8; 64];
    bytes[0..8].copy_from_slice(b"NFCSSEG\0");
    bytes[8..10].copy_from_slice(&1_u16.to_le_bytes());
    bytes[12..16].copy_from_slice(&slot.to_le_bytes());
    bytes[16..24].copy_from_slice(&sequence.to_le_bytes());
    bytes[24..32].copy_from_slice(&segment_size.to_le_bytes());
    bytes[32..40].copy_from_slice(&nonce.to_le_bytes());
    let checksum = xxhash_rust::xxh3::xxh3_64(&bytes[..56]);
    bytes[56..64].copy_from_slice(&checksum.to_le_bytes());
    bytes
}

/// Opens `directory` holding `segment` as slot 0 with the fuzz target's configuration; when
/// it opens, the cache must work.
fn open_with_segment(directory: &Path, segment: &[u8]) {
    std::fs::write(directory.join("seg-00000.nfcs"), segment).unwrap();
    let manual = ManualClock::new();
    let config = DiskConfig::new(4 * SEGMENT)
        .segment_bytes(SEGMENT)
        .clock(manual.clock());
    match DiskCache::open(directory, config) {
        Ok(cache) => {
            cache.insert("after", b"value", Ttl::Never).unwrap();
            assert_eq!(cache.get("after").unwrap().as_deref(), Some(&b"value"[..]));
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }
}

/// Found by `disk_segment` (crash-ad43c1e0d29a578a7d2ffd03e29d6cc2ff97ef93): a header whose
/// segment size is 0 made the open divide by zero (`max_bytes / segment_size`, recovery.rs),
/// before anything was checked. The size of a valid header is trusted as the directory's.
#[test]
fn a_header_claiming_zero_byte_segments_does_not_panic_the_open() {
    let directory = tempfile::tempdir().unwrap();
    open_with_segment(directory.path(), &header(0, 1, 0, 7));
}

/// The same trust, a size below the header's own 64 bytes (a neighbour of the case above,
/// which the fuzzer did not reach; it passes).
#[test]
fn a_header_claiming_segments_smaller_than_a_header_does_not_panic_the_open() {
    let directory = tempfile::tempdir().unwrap();
    let mut segment = header(0, 1, 10, 7);
    segment.extend_from_slice(&[0_u8; 48]);
    open_with_segment(directory.path(), &segment);
}

/// Found while reading the code around the first finding: the largest sequence makes the next
/// segment's (`header.sequence + 1`, recovery.rs) overflow, a panic in debug builds (and in
/// the fuzz build, which checks overflow) and a wrap to 0 in release builds.
#[test]
fn a_header_with_the_largest_sequence_does_not_panic_the_open() {
    let directory = tempfile::tempdir().unwrap();
    open_with_segment(directory.path(), &header(0, u64::MAX, SEGMENT, 7));
}

/// Found by `disk_segment` running at 18 executions a second: its corpus had grown intact
/// headers claiming 1-byte segments, and a claimed size below `DiskConfig::MIN_SEGMENT_BYTES`
/// (which a configuration may not ask for) is trusted, so each such open of a 256 KiB cache
/// created 99,999 segment files (the cap on slots). Here 1,000-byte segments make 262. A cache
/// of `max_bytes` never needs more than `max_bytes / MIN_SEGMENT_BYTES` slots.
#[test]
fn a_header_claiming_tiny_segments_does_not_multiply_the_segment_files() {
    let directory = tempfile::tempdir().unwrap();
    open_with_segment(directory.path(), &header(0, 1, 1_000, 7));
    let segments = std::fs::read_dir(directory.path())
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|ext| ext == "nfcs")
        })
        .count() as u64;
    assert!(
        segments <= 4 * SEGMENT / DiskConfig::MIN_SEGMENT_BYTES,
        "{segments} segment files for a {} KiB cache",
        (4 * SEGMENT) >> 10
    );
}
