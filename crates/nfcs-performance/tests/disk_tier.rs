//! The manager over the memory tier and the real disk tier.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nfcs_performance::prelude::*;

async fn manager_on(directory: &Path) -> NFCSCacheManager {
    let config = CacheConfig::from_toml_str(&format!(
        "[memory]\nmax_size = \"16MiB\"\n[disk]\ndirectory = \"{}\"\nmax_size = \"64MiB\"\n\
         [redis]\nenabled = false\n[semantic]\nenabled = false\n[cache_warming]\nenabled = false",
        directory.display()
    ))
    .unwrap();
    NFCSCacheManager::from_config(config).await.unwrap()
}

fn state_of(cache: &NFCSCacheManager, name: &str) -> TierState {
    cache
        .tier_status()
        .iter()
        .find(|status| status.name == name)
        .map(|status| status.state.clone())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_persist_across_restarts_and_disk_hits_are_promoted_with_their_ttl() {
    let directory = tempfile::tempdir().unwrap();
    {
        let cache = manager_on(directory.path()).await;
        assert_eq!(state_of(&cache, "disk"), TierState::Running);
        cache
            .set(
                "cgl_256_ab",
                &vec![0.5_f64; 4096],
                Some(Duration::from_secs(600)),
            )
            .await
            .unwrap();
        cache.set("forever", &"kept", None).await.unwrap();
    }
    let cache = manager_on(directory.path()).await;
    let memory = cache.memory().unwrap();
    assert!(
        !memory.contains_key("cgl_256_ab"),
        "a new process starts with cold memory"
    );
    let field: Vec<f64> = cache.get("cgl_256_ab").await.unwrap().unwrap();
    assert_eq!(field.len(), 4096);
    let promoted = memory
        .get_entry("cgl_256_ab")
        .unwrap()
        .expect("promoted into memory");
    let ttl = promoted.ttl.unwrap();
    assert!(
        ttl <= Duration::from_secs(600) && ttl > Duration::from_secs(590),
        "{ttl:?}"
    );
    assert_eq!(
        cache.get::<String>("forever").await.unwrap().as_deref(),
        Some("kept")
    );
    let stats = cache.stats();
    assert_eq!(stats.promotions, 2);
    assert_eq!(stats.tiers[1].0, "disk");
    assert_eq!(stats.tiers[1].1.hits, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_and_invalidations_reach_the_disk_and_stay() {
    let directory = tempfile::tempdir().unwrap();
    {
        let cache = manager_on(directory.path()).await;
        for key in ["policy_a", "policy_b", "cgl_1"] {
            cache.set(key, &key, None).await.unwrap();
        }
        assert_eq!(
            cache.invalidate_pattern("policy_*").await.unwrap(),
            4,
            "two entries in two tiers"
        );
        assert!(cache.delete("cgl_1").await.unwrap());
    }
    let cache = manager_on(directory.path()).await;
    for key in ["policy_a", "policy_b", "cgl_1"] {
        assert_eq!(
            cache.get::<String>(key).await.unwrap(),
            None,
            "{key} came back"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_directory_that_cannot_be_used_is_reported_and_memory_serves() {
    let directory = tempfile::tempdir().unwrap();
    let _holder = manager_on(directory.path()).await; // holds the directory's lock
    let cache = manager_on(directory.path()).await;
    match state_of(&cache, "disk") {
        TierState::NotRunning { reason } => assert!(reason.contains("in use"), "{reason}"),
        other => panic!("{other:?}"),
    }
    cache.set("k", &1_u8, None).await.unwrap();
    assert_eq!(cache.get::<u8>("k").await.unwrap(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_disk_writes_fail_memory_keeps_serving() {
    let directory = tempfile::tempdir().unwrap();
    let cache = manager_on(directory.path()).await;
    cache.set("before", &"stored in both", None).await.unwrap();
    let segments: Vec<_> = std::fs::read_dir(directory.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "nfcs"))
        .collect();
    let immutable = |on: bool| {
        for segment in &segments {
            let _ = Command::new("chattr")
                .arg(if on { "+i" } else { "-i" })
                .arg(segment)
                .status();
        }
    };
    immutable(true);
    if std::fs::OpenOptions::new()
        .append(true)
        .open(&segments[0])
        .is_ok()
    {
        immutable(false);
        eprintln!("notice: cannot make files unwritable here; skipped");
        return;
    }
    let during = cache.set("during", &"memory only", None).await;
    let read = cache.get::<String>("during").await;
    let old = cache.get::<String>("before").await;
    immutable(false);
    during.unwrap();
    assert_eq!(read.unwrap().as_deref(), Some("memory only"));
    assert_eq!(old.unwrap().as_deref(), Some("stored in both"));
    let stats = cache.stats();
    assert_eq!(stats.tier_errors, 1, "{stats:?}");
    assert_eq!(stats.tiers[1].1.errors, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_disk_directory_is_reported_and_memory_serves() {
    let parent = tempfile::tempdir().unwrap();
    let directory = parent.path().join("disk");
    std::fs::create_dir(&directory).unwrap();
    let _ = Command::new("chattr").arg("+i").arg(&directory).status();
    if std::fs::write(directory.join(".probe"), b"x").is_ok() {
        let _ = std::fs::remove_file(directory.join(".probe"));
        let _ = Command::new("chattr").arg("-i").arg(&directory).status();
        eprintln!("notice: cannot make a directory unwritable here; skipped");
        return;
    }
    let cache = manager_on(&directory).await;
    let _ = Command::new("chattr").arg("-i").arg(&directory).status();
    match state_of(&cache, "disk") {
        TierState::NotRunning { reason } => {
            assert!(
                reason.contains(&directory.display().to_string()),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    cache.set("k", &1_u8, None).await.unwrap();
    assert_eq!(cache.get::<u8>("k").await.unwrap(), Some(1));
}
