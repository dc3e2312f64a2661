//! Seeds for the `disk_segment` fuzz target (`fuzz/`, `cargo xtask fuzz`): real segment files
//! written through the cache, in the configuration the target opens (four 64 KiB segments),
//! into `fuzz/corpus/disk_segment/`. Not a test of its own; run it when the format changes:
//!
//! ```text
//! cargo test -p nfcs-cache-disk --test integration -- --ignored write_the_disk_segment_fuzz_corpus
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use nfcs_cache_core::{ManualClock, Pattern, Ttl};
use nfcs_cache_disk::{DiskCache, DiskConfig};

use crate::support::{noise, segment_files};

const SEGMENT: u64 = 64 << 10;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/disk_segment")
}

/// Writes what `fill` puts into a fresh cache, closed, as one seed: its non-empty segment
/// files, concatenated in slot order (the target splits them again at each segment magic).
fn seed(name: &str, compression: bool, fill: impl FnOnce(&DiskCache, &ManualClock)) {
    let directory = tempfile::tempdir().unwrap();
    let manual = ManualClock::new();
    let config = DiskConfig::new(4 * SEGMENT)
        .segment_bytes(SEGMENT)
        .compression(compression)
        .clock(manual.clock());
    let cache = DiskCache::open(directory.path(), config).unwrap();
    fill(&cache, &manual);
    cache.flush().unwrap();
    drop(cache);
    let mut bytes = Vec::new();
    for file in segment_files(directory.path()) {
        bytes.extend(std::fs::read(file).unwrap());
    }
    std::fs::write(corpus().join(name), bytes).unwrap();
}

const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);

#[test]
#[ignore = "writes fuzz/corpus/disk_segment; run by hand when the format changes"]
fn write_the_disk_segment_fuzz_corpus() {
    std::fs::create_dir_all(corpus()).unwrap();
    seed("small-entries", true, |cache, _| {
        cache
            .insert("policy_read", b"allow", Ttl::After(10 * YEAR))
            .unwrap();
        cache
            .insert("cgl_128_a1", b"{\"steps\": 4000}", Ttl::Never)
            .unwrap();
        cache
            .insert("k\u{e9}y with spaces", &noise(40, 1), None)
            .unwrap();
    });
    seed("compressed-value", true, |cache, _| {
        let text = "the coherence of the field stays above the threshold; ".repeat(60);
        cache
            .insert("report/compressible", text.as_bytes(), Ttl::Never)
            .unwrap();
        cache.insert("report/small", b"tiny", Ttl::Never).unwrap();
    });
    seed("overwrite-and-delete", false, |cache, _| {
        cache.insert("a", b"first", Ttl::Never).unwrap();
        cache.insert("a", b"second", Ttl::Never).unwrap();
        cache.insert("b", b"gone soon", Ttl::Never).unwrap();
        cache.remove("b").unwrap();
        cache.insert("c", b"kept", Ttl::After(10 * YEAR)).unwrap();
    });
    seed("clear-then-write", false, |cache, _| {
        cache.insert("before_clear", b"old", Ttl::Never).unwrap();
        cache.clear().unwrap();
        cache.insert("after_clear", b"new", Ttl::Never).unwrap();
        cache.insert("policy_a", b"1", Ttl::Never).unwrap();
        cache.insert("policy_b", b"2", Ttl::Never).unwrap();
        cache
            .remove_matching(&Pattern::new("policy_*").unwrap())
            .unwrap();
    });
    // Written with a one-second TTL: expired by the time the target opens it.
    seed("expired-entry", false, |cache, _| {
        cache
            .insert("short_lived", b"expires", Duration::from_secs(1))
            .unwrap();
        cache.insert("long_lived", b"stays", Ttl::Never).unwrap();
    });
    seed("longest-key", false, |cache, _| {
        cache.insert(&"k".repeat(4096), b"v", Ttl::Never).unwrap();
    });
    seed("empty-value", false, |cache, _| {
        cache.insert("empty", b"", Ttl::Never).unwrap();
    });
    // Enough to fill the first segment: two files, the second active.
    seed("two-segments", false, |cache, _| {
        for index in 0..10 {
            cache
                .insert(&format!("noise_{index}"), &noise(7_000, index), Ttl::Never)
                .unwrap();
        }
    });
    // A value read before the rotation is carried forward into the next segment.
    seed("carried-forward", true, |cache, _| {
        cache.insert("hot", b"read often", Ttl::Never).unwrap();
        assert!(cache.get("hot").unwrap().is_some());
        for index in 0..10 {
            cache
                .insert(
                    &format!("cold_{index}"),
                    &noise(7_000, 100 + index),
                    Ttl::Never,
                )
                .unwrap();
        }
    });
    // A fresh cache's files: headers of free slots only.
    seed("no-entries", false, |_, _| {});
}
