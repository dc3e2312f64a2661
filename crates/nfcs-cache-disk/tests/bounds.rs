//! Size bound, eviction order, expiry reclamation, containment, oversized values.

use std::time::Duration;

use nfcs_cache_core::{CacheError, ManualClock};
use nfcs_cache_disk::{CompressionCodec, DiskConfig};

use crate::support::{bytes_on_disk, noise, open, segment_files, small_config};

#[test]
fn the_files_never_exceed_the_size_bound() {
    let directory = tempfile::tempdir().unwrap();
    let config = small_config();
    let max = config.max_bytes;
    let cache = open(directory.path(), config);
    for index in 0..3000_u64 {
        let value = noise(500 + (index as usize * 37) % 9000, index);
        cache
            .insert(&format!("key:{}", index % 1200), &value, None)
            .unwrap();
        if index % 100 == 0 {
            assert!(
                bytes_on_disk(directory.path()) <= max,
                "after {index} writes"
            );
        }
    }
    assert!(bytes_on_disk(directory.path()) <= max);
    assert!(cache.stats().evictions > 0);
    assert_eq!(cache.disk_usage(), bytes_on_disk(directory.path()));
}

#[test]
fn entries_read_since_written_outlive_those_never_read() {
    let directory = tempfile::tempdir().unwrap();
    let cache = open(directory.path(), small_config());
    let value = noise(4000, 1);
    for hot in 0..20 {
        cache.insert(&format!("hot:{hot}"), &value, None).unwrap();
    }
    // Write ten times the capacity of cold entries, reading the hot ones as we go.
    for cold in 0..10_000 {
        cache.insert(&format!("cold:{cold}"), &value, None).unwrap();
        if cold % 50 == 0 {
            for hot in 0..20 {
                assert!(
                    cache.get(&format!("hot:{hot}")).unwrap().is_some(),
                    "hot:{hot} was evicted at cold:{cold}"
                );
            }
        }
    }
    assert!(cache.reinserted() > 0);
    assert!(
        cache.get("cold:0").unwrap().is_none(),
        "cold entries are evicted"
    );
}

#[test]
fn expired_entries_are_reclaimed() {
    let directory = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let cache = open(directory.path(), small_config().clock(clock.clock()));
    for index in 0..100 {
        cache
            .insert(&format!("t{index}"), b"v", Some(Duration::from_millis(50)))
            .unwrap();
    }
    clock.advance(Duration::from_millis(49));
    assert_eq!(cache.purge_expired(), 0, "nothing expires before its TTL");
    clock.advance(Duration::from_millis(1));
    assert_eq!(cache.purge_expired(), 100);
    assert_eq!(cache.len(), 0);
    assert_eq!(cache.stats().expirations, 100);
    // Expired entries in evicted segments are counted as expirations, not evictions.
    for index in 0..100 {
        cache
            .insert(
                &format!("u{index}"),
                &noise(3000, index),
                Some(Duration::from_millis(50)),
            )
            .unwrap();
    }
    clock.advance(Duration::from_millis(50));
    for index in 0..3000 {
        cache
            .insert(&format!("w{index}"), &noise(3000, index), None)
            .unwrap();
    }
    assert!(cache.stats().expirations >= 150, "{:?}", cache.stats());
}

#[test]
fn keys_never_name_files() {
    let directory = tempfile::tempdir().unwrap();
    let outside = directory.path().join("outside");
    let cache = open(&directory.path().join("cache"), small_config());
    for key in [
        "../outside",
        "/etc/passwd",
        "../../x",
        "a/b/c",
        ".nfcs-disk.lock",
        "seg-00001.nfcs",
    ] {
        cache.insert(key, key.as_bytes(), None).unwrap();
        assert_eq!(cache.get(key).unwrap().as_deref(), Some(key.as_bytes()));
    }
    assert!(!outside.exists());
    let names: Vec<String> = std::fs::read_dir(directory.path().join("cache"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names
            .iter()
            .all(|name| name.starts_with("seg-") || name == ".nfcs-disk.lock"),
        "{names:?}"
    );
    assert_eq!(segment_files(&directory.path().join("cache")).len(), 16);
}

#[test]
fn a_value_larger_than_a_segment_is_refused_and_nothing_changes() {
    let directory = tempfile::tempdir().unwrap();
    let cache = open(directory.path(), small_config());
    cache.insert("big", b"old", None).unwrap();
    let error = cache.insert("big", &noise(300 << 10, 3), None).unwrap_err();
    match &error {
        CacheError::ValueTooLarge { limit, .. } => assert_eq!(*limit, (256 << 10) - 64),
        other => panic!("{other}"),
    }
    assert!(error.to_string().contains("\"big\""), "{error}");
    assert_eq!(cache.get("big").unwrap().as_deref(), Some(&b"old"[..]));
    // A compressible value of the same size fits: the bound applies to what is stored.
    cache.insert("zeros", &vec![0_u8; 300 << 10], None).unwrap();
    assert_eq!(cache.get("zeros").unwrap().unwrap().len(), 300 << 10);
}

#[test]
fn compression_only_when_it_pays() {
    let directory = tempfile::tempdir().unwrap();
    let cache = open(directory.path(), DiskConfig::new(16 << 20));
    let text = "the quick brown fox jumps over the lazy dog ".repeat(100);
    cache.insert("text", text.as_bytes(), None).unwrap();
    cache.insert("noise", &noise(4400, 9), None).unwrap();
    let stats = cache.stats();
    assert!(
        stats.bytes < 4400 + 4400,
        "text was compressed: {} bytes stored",
        stats.bytes
    );
    assert!(stats.bytes > 4400, "noise was not");
    assert_eq!(cache.get("text").unwrap().as_deref(), Some(text.as_bytes()));
    let uncompressed = tempfile::tempdir().unwrap();
    let plain = open(
        uncompressed.path(),
        DiskConfig::new(16 << 20).compression(false),
    );
    plain.insert("text", text.as_bytes(), None).unwrap();
    assert!(plain.stats().bytes > text.len() as u64);
}

#[test]
fn lz4_compresses_and_both_codecs_read_back_in_one_directory() {
    let directory = tempfile::tempdir().unwrap();
    let text = "the field amplitude phase of the oscillator converged ".repeat(80);
    {
        let zstd = open(directory.path(), DiskConfig::new(16 << 20));
        zstd.insert("zstd", text.as_bytes(), None).unwrap();
    }
    let lz4_config = || DiskConfig::new(16 << 20).compression_codec(CompressionCodec::Lz4);
    {
        let lz4 = open(directory.path(), lz4_config());
        lz4.insert("lz4", text.as_bytes(), None).unwrap();
        lz4.insert("noise", &noise(4400, 5), None).unwrap();
        let stored = lz4.stats().bytes;
        assert!(
            stored < text.len() as u64 * 2 + 4400 + 4400,
            "the LZ4 value was compressed: {stored} bytes stored"
        );
        assert_eq!(lz4.get("zstd").unwrap().as_deref(), Some(text.as_bytes()));
        assert_eq!(lz4.get("lz4").unwrap().as_deref(), Some(text.as_bytes()));
    }
    // Recovery rebuilds the index from records of both codecs; either setting reads both.
    for config in [lz4_config(), DiskConfig::new(16 << 20)] {
        let reopened = open(directory.path(), config);
        assert_eq!(reopened.len(), 3);
        assert_eq!(
            reopened.get("zstd").unwrap().as_deref(),
            Some(text.as_bytes())
        );
        assert_eq!(
            reopened.get("lz4").unwrap().as_deref(),
            Some(text.as_bytes())
        );
        assert_eq!(reopened.get("noise").unwrap().unwrap().len(), 4400);
    }
}
