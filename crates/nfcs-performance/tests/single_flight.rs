//! `get_or_insert_with`: one load for any number of concurrent callers, ordered by the test
//! (`Notify`, the manager's own count of waiting callers), never by sleeps.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use nfcs_performance::prelude::*;
use tokio::sync::Notify;

fn manager() -> NFCSCacheManager {
    NFCSCacheManager::builder()
        .memory(MemoryCache::new(16 << 20).unwrap())
        .build()
}

#[derive(Debug, PartialEq)]
struct SolverFailed(&'static str);

#[derive(Debug, PartialEq)]
struct OtherFailure;

/// Yields until `condition` holds: the test waits for a state, not for a duration.
async fn until(mut condition: impl FnMut() -> bool) {
    while !condition() {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_callers_on_a_cold_key_run_the_loader_once() {
    let cache = manager();
    let runs = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let mut tasks = Vec::new();
    for _ in 0..10_000 {
        let (cache, runs, release) = (cache.clone(), Arc::clone(&runs), Arc::clone(&release));
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_insert_with("cgl_256_cold", None, || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    release.notified().await;
                    Ok::<_, SolverFailed>(vec![1.5_f64; 256])
                })
                .await
        }));
    }
    until(|| cache.stats().waiting == 9_999).await;
    release.notify_one();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), vec![1.5; 256]);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.coalesced), (1, 9_999), "{stats:?}");
    assert_eq!((stats.waiting, stats.in_flight), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_callers_load_once_more_when_the_first_leader_is_cancelled_mid_load() {
    let cache = manager();
    let started = Arc::new(AtomicUsize::new(0));
    let first_started = Arc::new(Notify::new());
    let load = {
        let (started, first_started) = (Arc::clone(&started), Arc::clone(&first_started));
        move || {
            let (started, first_started) = (Arc::clone(&started), Arc::clone(&first_started));
            async move {
                if started.fetch_add(1, Ordering::SeqCst) == 0 {
                    // The first leader is cancelled here, mid-load.
                    first_started.notify_one();
                    std::future::pending::<()>().await;
                }
                Ok::<_, SolverFailed>(42_u32)
            }
        }
    };
    let leader = {
        let (cache, load) = (cache.clone(), load.clone());
        tokio::spawn(async move { cache.get_or_insert_with("cold", None, load).await })
    };
    first_started.notified().await;
    let mut callers = Vec::new();
    for _ in 0..9_999 {
        let (cache, load) = (cache.clone(), load.clone());
        callers.push(tokio::spawn(async move {
            cache.get_or_insert_with("cold", None, load).await
        }));
    }
    until(|| cache.stats().waiting == 9_999).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap(), 42);
    }
    assert_eq!(
        started.load(Ordering::SeqCst),
        2,
        "the cancelled load, then exactly one replacement"
    );
    // (How many received the replacement's value as waiters and how many found it cached
    // depends on timing; that only one replacement ran does not.)
    assert_eq!(cache.stats().loads, 2);
}

/// A lower tier whose next read (once armed) answers, then waits for the test: how a slow
/// tier makes a caller miss just before another caller stores the value.
struct SlowTier {
    inner: MemoryCache,
    armed: Mutex<Option<Arc<(Notify, Notify)>>>,
}

impl SlowTier {
    /// The next `get` notifies `.0` once read, and returns after `.1`.
    fn arm(&self) -> Arc<(Notify, Notify)> {
        let gate = Arc::new((Notify::new(), Notify::new()));
        *self.armed.lock().unwrap() = Some(Arc::clone(&gate));
        gate
    }
}

impl CacheTier for SlowTier {
    fn name(&self) -> &str {
        "slow"
    }
    fn get(&self, key: &str) -> TierResult<Option<CacheEntry>> {
        let read = CacheTier::get(&self.inner, key);
        let gate = self.armed.lock().unwrap().take();
        Box::pin(async move {
            let found = read.await;
            if let Some(gate) = gate {
                gate.0.notify_one();
                gate.1.notified().await;
            }
            found
        })
    }
    fn set(&self, key: &str, value: Bytes, ttl: Ttl) -> TierResult<()> {
        CacheTier::set(&self.inner, key, value, ttl)
    }
    fn delete(&self, key: &str) -> TierResult<bool> {
        CacheTier::delete(&self.inner, key)
    }
    fn invalidate_pattern(&self, pattern: &Pattern) -> TierResult<u64> {
        CacheTier::invalidate_pattern(&self.inner, pattern)
    }
    fn clear(&self) -> TierResult<u64> {
        CacheTier::clear(&self.inner)
    }
    fn stats(&self) -> TierStats {
        MemoryCache::stats(&self.inner)
    }
}

/// The race found from outside: a caller's lower-tier read misses, another caller loads and
/// stores the value and ends its flight meanwhile, and the first then finds no flight. The
/// second look after becoming leader must find the stored value instead of loading again:
/// with a memory tier (found there) and without one (the key's write is seen, the lower tier
/// read again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_missed_just_before_another_stored_does_not_load_again() {
    for with_memory in [true, false] {
        let slow = Arc::new(SlowTier {
            inner: MemoryCache::new(16 << 20).unwrap(),
            armed: Mutex::new(None),
        });
        let mut builder = NFCSCacheManager::builder().tier(slow.clone());
        if with_memory {
            builder = builder.memory(MemoryCache::new(16 << 20).unwrap());
        }
        let cache = builder.build();
        let loads = Arc::new(AtomicUsize::new(0));
        let load = |value: u32| {
            let loads = Arc::clone(&loads);
            move || async move {
                loads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, SolverFailed>(value)
            }
        };
        let gate = slow.arm();
        let late = {
            let (cache, load) = (cache.clone(), load(2));
            tokio::spawn(async move { cache.get_or_insert_with("key", None, load).await })
        };
        // The late caller has read the slow tier (a miss) and waits there.
        gate.0.notified().await;
        assert_eq!(
            cache
                .get_or_insert_with("key", None, load(1))
                .await
                .unwrap(),
            1
        );
        gate.1.notify_one();
        assert_eq!(
            late.await.unwrap().unwrap(),
            1,
            "with memory: {with_memory}: the late caller found the stored value"
        );
        assert_eq!(
            loads.load(Ordering::SeqCst),
            1,
            "with memory: {with_memory}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loader_error_reaches_every_waiter_and_nothing_is_cached() {
    let cache = manager();
    let runs = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (cache, runs, release) = (cache.clone(), Arc::clone(&runs), Arc::clone(&release));
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_insert_with("doomed", None, || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    release.notified().await;
                    Err::<u32, _>(SolverFailed("diverged"))
                })
                .await
        }));
    }
    until(|| cache.stats().waiting == 99).await;
    release.notify_one();
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

/// Waiters are keyed by key and value type: a caller of another error type shares the
/// leader's value; after a failed load it cannot be handed the leader's error, so it loads
/// itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_with_another_error_type_shares_the_value_and_loads_after_a_failure() {
    for leader_fails in [false, true] {
        let cache = manager();
        let release = Arc::new(Notify::new());
        let waiter_loads = Arc::new(AtomicUsize::new(0));
        let leader = {
            let (cache, release) = (cache.clone(), Arc::clone(&release));
            tokio::spawn(async move {
                cache
                    .get_or_insert_with("k", None, || async move {
                        release.notified().await;
                        if leader_fails {
                            Err(SolverFailed("no"))
                        } else {
                            Ok(5_u64)
                        }
                    })
                    .await
            })
        };
        until(|| cache.stats().in_flight == 1).await;
        let waiter = {
            let (cache, waiter_loads) = (cache.clone(), Arc::clone(&waiter_loads));
            tokio::spawn(async move {
                cache
                    .get_or_insert_with("k", None, || async move {
                        waiter_loads.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, OtherFailure>(6_u64)
                    })
                    .await
            })
        };
        until(|| cache.stats().waiting == 1).await;
        release.notify_one();
        let led = leader.await.unwrap();
        let waited = waiter.await.unwrap().unwrap();
        if leader_fails {
            assert!(matches!(led, Err(LoadError::Loader(_))));
            assert_eq!(waited, 6, "loaded its own after the leader failed");
            assert_eq!(waiter_loads.load(Ordering::SeqCst), 1);
        } else {
            assert_eq!(led.unwrap(), 5);
            assert_eq!(waited, 5, "received the leader's value");
            assert_eq!(waiter_loads.load(Ordering::SeqCst), 0);
        }
    }
}

/// Callers asking for another value type under the same key do not wait for, or receive, a
/// load of the first type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flights_are_keyed_by_value_type() {
    let cache = manager();
    let release = Arc::new(Notify::new());
    let text = {
        let (cache, release) = (cache.clone(), Arc::clone(&release));
        tokio::spawn(async move {
            cache
                .get_or_insert_with("k", None, || async move {
                    release.notified().await;
                    Ok::<_, SolverFailed>(String::from("text"))
                })
                .await
        })
    };
    until(|| cache.stats().in_flight == 1).await;
    // A load of a number under the same key runs at once, beside the text's.
    let number = cache
        .get_or_insert_with("k", None, || async { Ok::<_, SolverFailed>(3_u32) })
        .await
        .unwrap();
    assert_eq!(number, 3);
    release.notify_one();
    assert_eq!(text.await.unwrap().unwrap(), "text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_that_gives_up_does_not_disturb_the_load() {
    let cache = manager();
    let release = Arc::new(Notify::new());
    let slow_leader = {
        let (cache, release) = (cache.clone(), Arc::clone(&release));
        tokio::spawn(async move {
            cache
                .get_or_insert_with("slow", None, || async move {
                    release.notified().await;
                    Ok::<_, SolverFailed>(String::from("done"))
                })
                .await
        })
    };
    until(|| cache.stats().in_flight == 1).await;
    let impatient = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_insert_with("slow", None, || async {
                    Ok::<_, SolverFailed>(String::from("impatient"))
                })
                .await
        })
    };
    until(|| cache.stats().waiting == 1).await;
    impatient.abort();
    assert!(impatient.await.unwrap_err().is_cancelled());
    assert_eq!(cache.stats().waiting, 0, "the waiter left");
    release.notify_one();
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
        .get_or_insert_with("x", std::time::Duration::ZERO, || async {
            Ok::<u8, SolverFailed>(1)
        })
        .await;
    assert!(matches!(
        bad_ttl,
        Err(LoadError::Cache(CacheError::InvalidTtl { .. }))
    ));
}
