//! Faults: a directory that cannot be written, a disk that is full.

use std::path::Path;
use std::process::Command;

use nfcs_cache_core::CacheError;
use nfcs_cache_disk::{DiskCache, DiskConfig, DiskError};

use crate::support::{noise, open, segment_files, small_config};

/// Makes `path` immutable (root ignores permission bits, not the immutable attribute); `false`
/// when this machine cannot, in which case the caller skips with a notice.
fn make_immutable(path: &Path) -> bool {
    let _ = std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o555));
    let _ = Command::new("chattr").arg("+i").arg(path).status();
    // Probe: can we still create a file?
    let probe = path.join(".probe");
    match std::fs::write(&probe, b"x") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            false
        }
        Err(_) => true,
    }
}

fn make_mutable(path: &Path) {
    let _ = Command::new("chattr").arg("-i").arg(path).status();
    let _ = std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755));
}

#[test]
fn an_unwritable_directory_is_an_error_naming_it() {
    let directory = tempfile::tempdir().unwrap();
    let locked = directory.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    if !make_immutable(&locked) {
        eprintln!(
            "notice: cannot make a directory unwritable here (not root and no chattr); skipped"
        );
        return;
    }
    let result = DiskCache::open(&locked, small_config());
    make_mutable(&locked);
    match result {
        Err(error @ DiskError::Io { .. }) => {
            assert!(
                error.to_string().contains(&locked.display().to_string()),
                "{error}"
            );
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
    // A path through a file is refused too, naming the path.
    let file = directory.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let error = DiskCache::open(file.join("cache"), small_config()).unwrap_err();
    assert!(error.to_string().contains("plain-file"), "{error}");
}

#[test]
fn writes_to_unwritable_segments_fail_while_reads_go_on() {
    let directory = tempfile::tempdir().unwrap();
    let cache = open(directory.path(), small_config());
    cache.insert("kept", b"readable", None).unwrap();
    let segments = segment_files(directory.path());
    let mut immutable = Vec::new();
    for segment in &segments {
        if Command::new("chattr")
            .arg("+i")
            .arg(segment)
            .status()
            .is_ok_and(|status| status.success())
        {
            immutable.push(segment.clone());
        }
    }
    let probe = std::fs::OpenOptions::new().append(true).open(&segments[0]);
    if probe.is_ok() {
        for segment in &immutable {
            make_mutable(segment);
        }
        eprintln!("notice: cannot make files unwritable here; skipped");
        return;
    }
    let error = cache.insert("new", b"value", None).unwrap_err();
    for segment in &immutable {
        make_mutable(segment);
    }
    assert!(matches!(error, CacheError::Backend { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("disk tier failed to write a record"),
        "{error}"
    );
    assert_eq!(
        cache.get("kept").unwrap().as_deref(),
        Some(&b"readable"[..])
    );
    assert_eq!(cache.stats().errors, 1);
    // Once the files are writable again, so is the cache.
    cache.insert("new", b"value", None).unwrap();
    assert_eq!(cache.get("new").unwrap().as_deref(), Some(&b"value"[..]));
}

/// The child of the disk-full test: runs under a file-size limit of 512 KiB, writes until the
/// disk tier reports the failure, and checks that it still serves what it holds.
#[test]
fn disk_full_child() {
    let Ok(directory) = std::env::var("NFCS_DISK_FULL_DIR") else {
        return;
    };
    // 1 MiB segments, so the 512 KiB file-size limit hits inside a segment.
    let cache = DiskCache::open(&directory, DiskConfig::new(16 << 20)).unwrap();
    cache
        .insert("early", b"written before the disk filled", None)
        .unwrap();
    let mut failure = None;
    for index in 0..2000 {
        match cache.insert(&format!("k{index}"), &noise(8000, index), None) {
            Ok(()) => {}
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    let error = failure.expect("the file-size limit was never hit");
    assert!(matches!(error, CacheError::Backend { .. }), "{error}");
    assert_eq!(
        cache.get("early").unwrap().as_deref(),
        Some(&b"written before the disk filled"[..])
    );
    assert!(cache.get("k0").unwrap().is_some());
    assert!(cache.stats().errors >= 1);
    println!("disk full observed: {error}");
}

#[test]
fn a_full_disk_is_an_error_from_the_tier_and_reads_go_on() {
    let directory = tempfile::tempdir().unwrap();
    let executable = std::env::current_exe().unwrap();
    // bash's `ulimit -f` counts 1024-byte blocks; SIGXFSZ is ignored so writes fail with EFBIG
    // instead of killing the process, and the limit is inherited by the exec'd test binary.
    let output = Command::new("bash")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 512; exec \"$0\" faults::disk_full_child --exact --nocapture --test-threads=1")
        .arg(&executable)
        .env("NFCS_DISK_FULL_DIR", directory.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("disk full observed"), "{stdout}");
    assert!(
        stdout.contains("File too large") || stdout.contains("os error 27"),
        "{stdout}"
    );
}
