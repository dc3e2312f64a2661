//! Links and other non-files in the cache directory: never followed, written or truncated;
//! a segment slot holding one is skipped and reported, and the cache keeps working.

use std::path::Path;

use nfcs_cache_disk::{DiskCache, DiskConfig, DiskError};

use crate::support::{noise, open, small_config};

/// Writes twice the cache's size (evicting every segment at least once), reads what is left,
/// clears, and writes again.
fn churn(cache: &DiskCache) {
    for index in 0..3000 {
        cache
            .insert(&format!("k{index}"), &noise(3000, index), None)
            .unwrap();
    }
    assert!(cache.stats().evictions > 0);
    assert_eq!(
        cache.get("k2999").unwrap().as_deref(),
        Some(&noise(3000, 2999)[..])
    );
    cache.clear().unwrap();
    cache.insert("after", b"clear", None).unwrap();
    assert_eq!(cache.get("after").unwrap().as_deref(), Some(&b"clear"[..]));
    assert!(cache.disk_usage() <= cache.capacity());
}

fn assert_still_a_link(path: &Path) {
    let metadata = std::fs::symlink_metadata(path).unwrap();
    assert!(
        metadata.file_type().is_symlink(),
        "{} was replaced",
        path.display()
    );
}

#[test]
fn a_link_in_a_slot_is_never_followed_written_or_truncated() {
    let root = tempfile::tempdir().unwrap();
    let directory = root.path().join("cache");
    std::fs::create_dir(&directory).unwrap();
    // Outside the cache: a file a link points at, and a path a dangling link names.
    let outside = root.path().join("precious.bin");
    let precious = noise(300 << 10, 7);
    std::fs::write(&outside, &precious).unwrap();
    let not_created = root.path().join("not-created");
    let in_slot = directory.join("seg-00005.nfcs");
    let dangling = directory.join("seg-00006.nfcs");
    let beyond = directory.join("seg-00020.nfcs");
    std::os::unix::fs::symlink(&outside, &in_slot).unwrap();
    std::os::unix::fs::symlink(&not_created, &dangling).unwrap();
    std::os::unix::fs::symlink(&outside, &beyond).unwrap();

    let cache = open(&directory, small_config());
    assert_eq!(cache.recovery_report().skipped_slots, 3);
    assert_eq!(cache.recovery_report().removed_segments, 0);
    assert_eq!(
        cache.capacity(),
        14 * cache.segment_bytes(),
        "two slots unused"
    );
    churn(&cache);
    drop(cache);
    let cache = open(&directory, small_config());
    assert_eq!(cache.recovery_report().skipped_slots, 3);
    assert_eq!(cache.get("after").unwrap().as_deref(), Some(&b"clear"[..]));
    churn(&cache);
    drop(cache);

    assert_eq!(
        std::fs::read(&outside).unwrap(),
        precious,
        "the outside file changed"
    );
    assert!(
        !not_created.exists(),
        "a file was created through a dangling link"
    );
    for link in [&in_slot, &dangling, &beyond] {
        assert_still_a_link(link);
    }
}

#[test]
fn a_directory_in_a_slot_is_skipped_and_reported() {
    let directory = tempfile::tempdir().unwrap();
    {
        let cache = open(directory.path(), small_config());
        cache
            .insert("alpha", b"kept across the reopen", None)
            .unwrap();
    }
    // Slot 3 is empty (one small write went to slot 0): replace it by a directory with a file.
    let slot = directory.path().join("seg-00003.nfcs");
    assert_eq!(std::fs::metadata(&slot).unwrap().len(), 0);
    std::fs::remove_file(&slot).unwrap();
    std::fs::create_dir(&slot).unwrap();
    std::fs::write(slot.join("inside"), b"untouched").unwrap();
    // And a socket in slot 4: another non-file, made with std alone.
    let socket_path = directory.path().join("seg-00004.nfcs");
    std::fs::remove_file(&socket_path).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(&socket_path).unwrap();

    let cache = open(directory.path(), small_config());
    assert_eq!(cache.recovery_report().skipped_slots, 2);
    assert_eq!(cache.recovery_report().reset_segments, 0);
    assert_eq!(
        cache.get("alpha").unwrap().as_deref(),
        Some(&b"kept across the reopen"[..])
    );
    churn(&cache);
    assert!(slot.is_dir());
    assert_eq!(std::fs::read(slot.join("inside")).unwrap(), b"untouched");
}

#[test]
fn a_link_or_directory_as_the_lock_file_is_refused_naming_it() {
    let root = tempfile::tempdir().unwrap();
    let outside = root.path().join("outside-lock");
    std::fs::write(&outside, b"not a lock").unwrap();
    let directory = root.path().join("cache");
    std::fs::create_dir(&directory).unwrap();
    let lock = directory.join(".nfcs-disk.lock");
    std::os::unix::fs::symlink(&outside, &lock).unwrap();
    match DiskCache::open(&directory, small_config()) {
        Err(error @ DiskError::NotAFile { .. }) => {
            let text = error.to_string();
            assert!(text.contains(&lock.display().to_string()), "{text}");
            assert!(text.contains("symbolic link"), "{text}");
        }
        other => panic!("expected NotAFile, got {other:?}"),
    }
    assert_eq!(std::fs::read(&outside).unwrap(), b"not a lock");
    std::fs::remove_file(&lock).unwrap();
    std::fs::create_dir(&lock).unwrap();
    match DiskCache::open(&directory, small_config()) {
        Err(DiskError::NotAFile { path, found }) => {
            assert_eq!((path, found), (lock, "a directory"));
        }
        other => panic!("expected NotAFile, got {other:?}"),
    }
}

#[test]
fn too_few_usable_slots_is_an_error_naming_the_directory() {
    let directory = tempfile::tempdir().unwrap();
    // Three slots of 64 KiB, the fewest a cache works with; one of them a directory.
    let config = || DiskConfig::new(3 * (64 << 10)).segment_bytes(64 << 10);
    std::fs::create_dir(directory.path().join("seg-00001.nfcs")).unwrap();
    match DiskCache::open(directory.path(), config()) {
        Err(
            error @ DiskError::TooFewSegments {
                usable: 2,
                skipped: 1,
                required: 3,
                ..
            },
        ) => {
            assert!(
                error
                    .to_string()
                    .contains(&directory.path().display().to_string()),
                "{error}"
            );
        }
        other => panic!("expected TooFewSegments, got {other:?}"),
    }
    std::fs::remove_dir(directory.path().join("seg-00001.nfcs")).unwrap();
    open(directory.path(), config());
}
