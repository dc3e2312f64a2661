//! The single-flight table under the interleavings that matter, ordered by the test (Notify,
//! counters it waits for), never by sleeps.

#![allow(clippy::unwrap_used)] // In tests a panic is the failure report.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;
use nfcs_single_flight::{Joined, SingleFlight};
use tokio::sync::Notify;

/// A cache and its flights, with the loop the crate documents.
#[derive(Default)]
struct Cache {
    values: DashMap<String, u64>,
    flights: SingleFlight<String, u64>,
    /// Loads started (whether or not they finished).
    started: AtomicUsize,
}

impl Cache {
    async fn get_or_load<F, Fut>(&self, key: &str, load: F) -> u64
    where
        F: Fn() -> Fut,
        Fut: Future<Output = u64>,
    {
        loop {
            if let Some(value) = self.values.get(key) {
                return *value;
            }
            match self.flights.join(key.to_owned()) {
                Joined::Leader(leader) => {
                    if let Some(value) = self.values.get(key) {
                        return *value;
                    }
                    self.started.fetch_add(1, Ordering::SeqCst);
                    let value = load().await;
                    leader.publish(value);
                    self.values.insert(key.to_owned(), value);
                    return value;
                }
                Joined::Waiter(waiter) => match waiter.outcome().await {
                    Some(value) => return value,
                    None => continue,
                },
            }
        }
    }
}

/// Yields until `condition` holds: the test waits for a state, not for a duration.
async fn until(mut condition: impl FnMut() -> bool) {
    while !condition() {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_callers_share_one_load() {
    let cache = Arc::new(Cache::default());
    let release = Arc::new(Notify::new());
    let mut callers = Vec::new();
    for _ in 0..10_000 {
        let (cache, release) = (Arc::clone(&cache), Arc::clone(&release));
        callers.push(tokio::spawn(async move {
            let release = &release;
            cache
                .get_or_load("cold", || async move {
                    release.notified().await;
                    7
                })
                .await
        }));
    }
    until(|| cache.flights.waiting() == 9_999).await;
    assert_eq!(cache.flights.in_flight(), 1);
    release.notify_one();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), 7);
    }
    assert_eq!(cache.started.load(Ordering::SeqCst), 1);
    assert_eq!((cache.flights.in_flight(), cache.flights.waiting()), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_leader_hands_over_to_exactly_one_waiter() {
    let cache = Arc::new(Cache::default());
    let first_started = Arc::new(Notify::new());
    // The first load never finishes; the ones after it return at once.
    let load = {
        let first_started = Arc::clone(&first_started);
        let calls = Arc::new(AtomicUsize::new(0));
        move || {
            let (first_started, calls) = (Arc::clone(&first_started), Arc::clone(&calls));
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    first_started.notify_one();
                    std::future::pending::<()>().await;
                }
                11
            }
        }
    };
    let leader = {
        let (cache, load) = (Arc::clone(&cache), load.clone());
        tokio::spawn(async move { cache.get_or_load("cold", load).await })
    };
    first_started.notified().await;
    let mut callers = Vec::new();
    for _ in 0..9_999 {
        let (cache, load) = (Arc::clone(&cache), load.clone());
        callers.push(tokio::spawn(async move {
            cache.get_or_load("cold", load).await
        }));
    }
    until(|| cache.flights.waiting() == 9_999).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    for caller in callers {
        assert_eq!(caller.await.unwrap(), 11);
    }
    assert_eq!(
        cache.started.load(Ordering::SeqCst),
        2,
        "the cancelled load and exactly one replacement"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_caller_that_missed_just_before_a_store_does_not_load_again() {
    let cache = Cache::default();
    // The late caller's miss: it looked before the value was there.
    assert!(cache.values.get("key").is_none());
    // Meanwhile another caller leads, loads, stores and finishes its flight.
    assert_eq!(cache.get_or_load("key", || async { 5 }).await, 5);
    // The late caller now joins: it becomes a leader (no flight runs), and its second look
    // finds the value.
    let Joined::Leader(leader) = cache.flights.join("key".to_owned()) else {
        panic!("no flight runs, so the late caller leads");
    };
    assert_eq!(cache.values.get("key").map(|value| *value), Some(5));
    drop(leader);
    assert_eq!(cache.started.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_published_outcome_reaches_callers_that_join_before_the_leader_finishes() {
    let flights = SingleFlight::<&str, u32>::new();
    let Joined::Leader(leader) = flights.join("k") else {
        panic!("first caller leads");
    };
    leader.publish(3);
    let Joined::Waiter(late) = flights.join("k") else {
        panic!("the flight still runs");
    };
    assert_eq!(leader.waiters(), 1);
    drop(leader);
    assert_eq!(late.outcome().await, Some(3));
    assert_eq!(flights.in_flight(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_dropped_waiter_disturbs_no_one() {
    let flights = SingleFlight::<&str, u32>::new();
    let Joined::Leader(leader) = flights.join("k") else {
        panic!("first caller leads");
    };
    let Joined::Waiter(impatient) = flights.join("k") else {
        panic!("waiter");
    };
    let Joined::Waiter(patient) = flights.join("k") else {
        panic!("waiter");
    };
    assert_eq!(flights.waiting(), 2);
    drop(impatient);
    assert_eq!(flights.waiting(), 1);
    leader.publish(9);
    drop(leader);
    assert_eq!(patient.outcome().await, Some(9));
    assert_eq!(flights.waiting(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_leader_dropped_without_an_outcome_wakes_its_waiters_with_none() {
    let flights = SingleFlight::<String, u32>::new();
    let Joined::Leader(leader) = flights.join("k".to_owned()) else {
        panic!("first caller leads");
    };
    let Joined::Waiter(waiter) = flights.join("k".to_owned()) else {
        panic!("waiter");
    };
    drop(leader);
    assert_eq!(waiter.outcome().await, None);
    assert!(matches!(flights.join("k".to_owned()), Joined::Leader(_)));
}

#[tokio::test(flavor = "current_thread")]
async fn keys_are_independent() {
    let flights = SingleFlight::<(&str, u8), u32>::new();
    let a = flights.join(("k", 1));
    let b = flights.join(("k", 2));
    assert!(matches!((&a, &b), (Joined::Leader(_), Joined::Leader(_))));
    assert_eq!(flights.in_flight(), 2);
}
