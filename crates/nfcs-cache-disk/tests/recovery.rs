use std::time::Duration;

use nfcs_cache_core::{ManualClock, Pattern, Ttl};
use nfcs_cache_disk::{DiskCache, DiskConfig, DiskError};

use crate::support::{noise, open, small_config};

#[test]
fn entries_overwrites_and_deletions_survive_a_restart() {
    let directory = tempfile::tempdir().unwrap();
    {
        let cache = open(directory.path(), small_config());
        for index in 0..50 {
            cache
                .insert(
                    &format!("key:{index}"),
                    format!("v1-{index}").as_bytes(),
                    None,
                )
                .unwrap();
        }
        for index in 0..50 {
            if index % 2 == 0 {
                cache
                    .insert(
                        &format!("key:{index}"),
                        format!("v2-{index}").as_bytes(),
                        None,
                    )
                    .unwrap();
            }
            if index % 5 == 0 {
                assert!(cache.remove(&format!("key:{index}")).unwrap());
            }
        }
        assert_eq!(
            cache
                .remove_matching(&Pattern::new("key:4?").unwrap())
                .unwrap(),
            8
        );
    }
    let cache = open(directory.path(), small_config());
    let report = cache.recovery_report().clone();
    assert_eq!(
        report.corrupt_records + report.reset_segments,
        0,
        "{report:?}"
    );
    for index in 0..50 {
        let key = format!("key:{index}");
        let expected = if index % 5 == 0 || (40..50).contains(&index) {
            None
        } else if index % 2 == 0 {
            Some(format!("v2-{index}"))
        } else {
            Some(format!("v1-{index}"))
        };
        let found = cache
            .get(&key)
            .unwrap()
            .map(|value| String::from_utf8(value.to_vec()).unwrap());
        assert_eq!(found, expected, "{key}");
    }
    assert_eq!(report.entries, cache.len());
}

#[test]
fn a_clear_survives_a_restart_and_frees_the_space() {
    let directory = tempfile::tempdir().unwrap();
    {
        let cache = open(directory.path(), small_config());
        for index in 0..200 {
            cache
                .insert(&format!("k{index}"), &noise(4096, index), None)
                .unwrap();
        }
        assert_eq!(cache.stats().evictions, 0, "all 200 entries fit");
        assert_eq!(cache.clear().unwrap(), 200);
        assert!(
            cache.disk_usage() <= cache.segment_bytes(),
            "only the active segment is left: {} bytes",
            cache.disk_usage()
        );
        cache.insert("after", b"clear", None).unwrap();
    }
    let cache = open(directory.path(), small_config());
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.get("after").unwrap().as_deref(), Some(&b"clear"[..]));
    assert_eq!(cache.get("k1").unwrap(), None);
}

#[test]
fn expiry_is_absolute_and_holds_across_restarts() {
    let directory = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let config = || small_config().clock(clock.clock());
    {
        let cache = open(directory.path(), config());
        cache
            .insert("short", b"x", Some(Duration::from_millis(300)))
            .unwrap();
        cache
            .insert("long", b"y", Some(Duration::from_secs(3600)))
            .unwrap();
        cache.insert("forever", b"z", None).unwrap();
    }
    clock.advance(Duration::from_millis(400));
    let cache = open(directory.path(), config());
    assert_eq!(cache.recovery_report().expired_records, 1);
    assert_eq!(cache.get("short").unwrap(), None);
    // Whole milliseconds passed on a clock that stood still otherwise: the TTL left is exact.
    let ttl = cache.get_entry("long").unwrap().unwrap().ttl.unwrap();
    assert_eq!(ttl, Duration::from_secs(3600) - Duration::from_millis(400));
    assert_eq!(cache.get_entry("forever").unwrap().unwrap().ttl, None);
}

#[test]
fn never_outlives_the_default_ttl_across_a_restart() {
    let directory = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let config = || {
        small_config()
            .default_ttl(Some(Duration::from_secs(3600)))
            .clock(clock.clock())
    };
    {
        let cache = open(directory.path(), config());
        cache.insert("never", b"kept", Ttl::Never).unwrap();
        cache.insert("default", b"gone", Ttl::Default).unwrap();
        let default = cache.get_entry("default").unwrap().unwrap();
        assert_eq!(default.ttl, Some(Duration::from_secs(3600)));
        assert_eq!(cache.get_entry("never").unwrap().unwrap().ttl, None);
    }
    clock.advance(Duration::from_secs(2 * 3600));
    let cache = open(directory.path(), config());
    assert_eq!(
        cache.recovery_report().expired_records,
        1,
        "the default entry"
    );
    let never = cache.get_entry("never").unwrap().unwrap();
    assert_eq!(&never.value[..], b"kept");
    assert_eq!(never.ttl, None);
    assert_eq!(never.remaining_ttl(), Ttl::Never);
    assert_eq!(cache.get("default").unwrap(), None);
}

#[test]
fn a_second_opener_is_refused_until_the_first_closes() {
    let directory = tempfile::tempdir().unwrap();
    let first = open(directory.path(), small_config());
    match DiskCache::open(directory.path(), small_config()) {
        Err(error @ DiskError::Locked { .. }) => {
            assert!(error.to_string().contains("in use"), "{error}");
            assert!(
                error
                    .to_string()
                    .contains(&directory.path().display().to_string()),
                "{error}"
            );
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(first);
    open(directory.path(), small_config());
}

#[test]
fn reopening_while_another_thread_spawns_processes_is_not_refused() {
    // A child forked while a cache is open shares its flock until the child execs, which ends
    // a little after `spawn` returns: a reopen in that instant found the lock taken (about 3 in
    // 1,000 before `open` learned to wait that out). No sleeps: the loop runs until enough
    // spawns have overlapped the reopens.
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let directory = tempfile::tempdir().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let spawned = Arc::new(AtomicU64::new(0));
    let spawner = {
        let (stop, spawned) = (Arc::clone(&stop), Arc::clone(&spawned));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // Whether `true` exists does not matter: a failed exec forks all the same.
                let _ = std::process::Command::new("true").status();
                spawned.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let mut reopens = 0;
    while reopens < 300 || spawned.load(Ordering::Relaxed) < 30 {
        let cache = DiskCache::open(directory.path(), small_config());
        if cache.is_err() {
            // The spawner is stopped before the failure is reported.
            stop.store(true, Ordering::Relaxed);
        }
        cache.unwrap();
        reopens += 1;
    }
    stop.store(true, Ordering::Relaxed);
    spawner.join().unwrap();
}

#[test]
fn a_missing_directory_is_created() {
    let parent = tempfile::tempdir().unwrap();
    let directory = parent.path().join("a/b/cache");
    let cache = open(&directory, small_config());
    cache.insert("k", b"v", None).unwrap();
    assert!(directory.is_dir());
}

#[test]
fn reopening_with_another_size_keeps_the_segment_size() {
    let directory = tempfile::tempdir().unwrap();
    {
        let cache = open(directory.path(), DiskConfig::new(16 << 20));
        assert_eq!(cache.segment_bytes(), 1 << 20);
        cache.insert("kept", b"v", None).unwrap();
    }
    let cache = open(directory.path(), DiskConfig::new(64 << 20));
    assert_eq!(cache.segment_bytes(), 1 << 20, "fixed by the directory");
    assert_eq!(cache.capacity(), 64 << 20);
    assert_eq!(cache.get("kept").unwrap().as_deref(), Some(&b"v"[..]));
    drop(cache);
    let error = DiskCache::open(
        directory.path(),
        DiskConfig::new(2 << 20).segment_bytes(64 << 10),
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("1048576-byte segments"),
        "{error}"
    );
}

#[test]
fn a_100_000_entry_cache_reopens_whole() {
    // The timing goal (1,000,000 entries in under 2 s) is measured by the benchmark; here:
    // every entry comes back.
    let directory = tempfile::tempdir().unwrap();
    let config = || DiskConfig::new(512 << 20).compression(false);
    {
        let cache = open(directory.path(), config());
        for index in 0..100_000_u32 {
            cache
                .insert(&format!("e{index:07}"), &index.to_le_bytes(), None)
                .unwrap();
        }
    }
    let cache = open(directory.path(), config());
    assert_eq!(cache.recovery_report().entries, 100_000);
    assert_eq!(
        cache.get("e0099999").unwrap().as_deref(),
        Some(&99_999_u32.to_le_bytes()[..])
    );
}

#[test]
fn a_batch_of_deletions_is_checked_first_and_survives_a_restart() {
    let directory = tempfile::tempdir().unwrap();
    let config = || small_config().sync_writes(true);
    let cache = open(directory.path(), config());
    for index in 0..100 {
        cache
            .insert(&format!("k{index}"), &noise(3_000, index), None)
            .unwrap();
    }
    // An invalid key anywhere in the batch: an error, and nothing removed.
    let bad = vec!["k1".to_owned(), String::new(), "k2".to_owned()];
    assert!(cache.remove_many(&bad).is_err());
    assert_eq!(cache.len(), 100);
    // Half the keys, some twice, and some never written: each live one counts once.
    let mut keys: Vec<String> = (0..100)
        .step_by(2)
        .map(|index| format!("k{index}"))
        .collect();
    keys.extend(["k0".to_owned(), "missing".to_owned()]);
    assert_eq!(cache.remove_many(&keys).unwrap(), 50);
    drop(cache);
    let cache = open(directory.path(), config());
    for index in 0..100 {
        let found = cache.get(&format!("k{index}")).unwrap();
        assert_eq!(found.is_some(), index % 2 == 1, "k{index}");
    }
}
