use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nfcs_performance::prelude::*;

fn manager() -> NFCSCacheManager {
    NFCSCacheManager::builder()
        .memory(MemoryCache::new(16 << 20).unwrap())
        .build()
}

#[derive(Debug, PartialEq)]
struct SolverFailed(&'static str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_callers_on_a_cold_key_run_the_loader_once() {
    let cache = manager();
    let runs = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..10_000 {
        let (cache, runs) = (cache.clone(), Arc::clone(&runs));
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_insert_with("cgl_256_cold", None, || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok::<_, SolverFailed>(vec![1.5_f64; 256])
                })
                .await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), vec![1.5; 256]);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let stats = cache.stats();
    assert_eq!(stats.loads, 1);
    assert!(stats.coalesced > 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loader_error_reaches_every_waiter_and_nothing_is_cached() {
    let cache = manager();
    let runs = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (cache, runs) = (cache.clone(), Arc::clone(&runs));
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_insert_with("doomed", None, || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Err::<u32, _>(SolverFailed("diverged"))
                })
                .await
        }));
    }
    let mut errors = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Err(LoadError::Loader(error)) => errors.push(error),
            other => panic!("expected the loader's error, got {other:?}"),
        }
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(
        errors.iter().all(|error| Arc::ptr_eq(error, &errors[0])),
        "one shared error"
    );
    assert_eq!(*errors[0], SolverFailed("diverged"));
    assert_eq!(
        cache.get::<u32>("doomed").await.unwrap(),
        None,
        "nothing cached"
    );
    // The next call loads again.
    let value = cache
        .get_or_insert_with("doomed", None, || async { Ok::<_, SolverFailed>(7_u32) })
        .await
        .unwrap();
    assert_eq!(value, 7);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats().loads, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_times_out_does_not_block_the_waiters() {
    let cache = manager();
    let leader = {
        let cache = cache.clone();
        tokio::spawn(async move {
            tokio::time::timeout(
                Duration::from_millis(150),
                cache.get_or_insert_with("stuck", None, || async {
                    // A loader that never finishes.
                    std::future::pending::<Result<u32, SolverFailed>>().await
                }),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let mut waiters = Vec::new();
    for _ in 0..50 {
        let (cache, runs) = (cache.clone(), Arc::clone(&runs));
        waiters.push(tokio::spawn(async move {
            cache
                .get_or_insert_with("stuck", None, || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, SolverFailed>(42_u32)
                })
                .await
        }));
    }
    assert!(leader.await.unwrap().is_err(), "the leader timed out");
    for waiter in waiters {
        let value = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("a waiter hung after the leader was dropped")
            .unwrap()
            .unwrap();
        assert_eq!(value, 42);
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "one waiter took over the load"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_that_gives_up_does_not_disturb_the_load() {
    let cache = manager();
    let slow_leader = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_insert_with("slow", None, || async {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok::<_, SolverFailed>(String::from("done"))
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let impatient = tokio::time::timeout(
        Duration::from_millis(20),
        cache.get_or_insert_with("slow", None, || async {
            Ok::<_, SolverFailed>(String::from("impatient"))
        }),
    )
    .await;
    assert!(impatient.is_err(), "the waiter timed out");
    assert_eq!(slow_leader.await.unwrap().unwrap(), "done");
    assert_eq!(
        cache.get::<String>("slow").await.unwrap().as_deref(),
        Some("done")
    );
}

#[tokio::test]
async fn cached_values_skip_the_loader_and_keep_their_type() {
    let cache = manager();
    cache.set("answer", &"forty-two", None).await.unwrap();
    let value = cache
        .get_or_insert_with("answer", None, || async {
            panic!("the loader must not run on a hit");
            #[allow(unreachable_code)]
            Ok::<String, SolverFailed>(String::new())
        })
        .await
        .unwrap();
    assert_eq!(value, "forty-two");
    let mismatch = cache
        .get_or_insert_with("answer", None, || async { Ok::<u64, SolverFailed>(1) })
        .await;
    assert!(matches!(
        mismatch,
        Err(LoadError::Cache(CacheError::Decode { .. }))
    ));
    let bad_ttl = cache
        .get_or_insert_with("x", Some(Duration::ZERO), || async {
            Ok::<u8, SolverFailed>(1)
        })
        .await;
    assert!(matches!(
        bad_ttl,
        Err(LoadError::Cache(CacheError::InvalidTtl { .. }))
    ));
}
