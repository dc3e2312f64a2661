//! Single-flight loading: concurrent misses on one key run one load.
//!
//! When many callers miss the same cold key at once (ten thousand requests for the same CGL
//! field), only the first should compute it; the others should wait and share its outcome.
//! This crate is that mechanism, once, for every nfcs-perf cache (the facade's
//! `get_or_insert_with` and the policy cache's evaluations), on `tokio::sync::watch` channels
//! in a `dashmap` table. moka's `value_initializer.rs` is the model.
//!
//! # What it provides
//!
//! - [`SingleFlight::join`]: the first caller for a key becomes the [`Leader`]; callers that
//!   come while it runs get a [`Waiter`].
//! - [`Leader::publish`] hands the outcome to every waiter (and to callers that join before
//!   the leader is dropped); dropping the leader ends the flight. A leader dropped without
//!   publishing (cancelled, timed out, panicked) wakes its waiters at once with `None`, and
//!   they try again: one of them becomes the next leader.
//! - [`SingleFlight::waiting`] and [`SingleFlight::in_flight`]: gauges for metrics and for
//!   tests that must know every caller is waiting before they act.
//!
//! # The loop every user writes
//!
//! A cache hit must be looked for again *after* becoming the leader: a caller that missed just
//! before the previous leader stored its value, and joined just after that leader finished,
//! would otherwise load a second time. The leader keeps the flight until its value is stored,
//! so a caller either finds the flight or finds the value.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use dashmap::DashMap;
//! use nfcs_single_flight::{Joined, SingleFlight};
//!
//! async fn get_or_load(
//!     cache: &DashMap<String, u64>,
//!     flights: &SingleFlight<String, u64>,
//!     key: &str,
//!     load: impl Fn() -> u64,
//! ) -> u64 {
//!     loop {
//!         if let Some(value) = cache.get(key) {
//!             return *value;
//!         }
//!         match flights.join(key.to_owned()) {
//!             Joined::Leader(leader) => {
//!                 // Look again: the previous flight may have stored it since our miss.
//!                 if let Some(value) = cache.get(key) {
//!                     return *value;
//!                 }
//!                 let value = load();
//!                 leader.publish(value);
//!                 cache.insert(key.to_owned(), value);
//!                 return value; // dropping `leader` ends the flight, after the store
//!             }
//!             Joined::Waiter(waiter) => match waiter.outcome().await {
//!                 Some(value) => return value,
//!                 None => continue, // the leader went away without an outcome: try again
//!             },
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let cache = DashMap::new();
//! let flights = SingleFlight::new();
//! let loads = AtomicUsize::new(0);
//! let load = || { loads.fetch_add(1, Ordering::SeqCst); 42 };
//! let (a, b) = tokio::join!(
//!     get_or_load(&cache, &flights, "answer", load),
//!     get_or_load(&cache, &flights, "answer", load),
//! );
//! assert_eq!((a, b), (42, 42));
//! assert_eq!(loads.load(Ordering::SeqCst), 1);
//! # }
//! ```
//!
//! # Keys
//!
//! A flight is found by its key alone, so the key must hold everything that makes two calls
//! interchangeable: the facade keys by the cache key *and* the value type, so that a caller
//! asking for a `Vec<f64>` never waits for, or receives, a load of a `String` under the same
//! cache key.
//!
//! # Feature flags
//!
//! None. Depends on `tokio` (the `sync` feature only: no runtime is needed) and `dashmap`.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use tokio::sync::watch;

/// The flights in progress, by key.
///
/// `V` is the outcome handed to waiters (typically `Result<Value, Arc<Error>>`); it is cloned
/// once per waiter, so make it cheap to clone.
pub struct SingleFlight<K, V> {
    flights: DashMap<K, Flight<V>>,
    next_id: AtomicU64,
    waiting: Arc<AtomicUsize>,
}

struct Flight<V> {
    id: u64,
    outcome: watch::Receiver<Option<V>>,
}

/// What [`SingleFlight::join`] made of a caller.
#[must_use = "a leader that is dropped at once ends its flight without an outcome"]
pub enum Joined<'a, K: Hash + Eq, V> {
    /// No flight was running for the key: this caller runs the load.
    Leader(Leader<'a, K, V>),
    /// A flight was running: wait for its outcome.
    Waiter(Waiter<V>),
}

impl<K: Hash + Eq, V> fmt::Debug for Joined<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Joined::Leader(_) => "Joined::Leader",
            Joined::Waiter(_) => "Joined::Waiter",
        })
    }
}

impl<K: Hash + Eq + Clone, V: Clone> SingleFlight<K, V> {
    /// An empty table.
    pub fn new() -> SingleFlight<K, V> {
        SingleFlight {
            flights: DashMap::new(),
            next_id: AtomicU64::new(0),
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Joins the flight for `key`: starts one (this caller is its [`Leader`]) when none runs,
    /// otherwise returns a [`Waiter`] for the running one.
    pub fn join(&self, key: K) -> Joined<'_, K, V> {
        match self.flights.entry(key) {
            Entry::Occupied(flight) => {
                let outcome = flight.get().outcome.clone();
                self.waiting.fetch_add(1, Ordering::AcqRel);
                Joined::Waiter(Waiter {
                    outcome,
                    waiting: Arc::clone(&self.waiting),
                })
            }
            Entry::Vacant(vacant) => {
                let (sender, receiver) = watch::channel(None);
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                let key = vacant.key().clone();
                vacant.insert(Flight {
                    id,
                    outcome: receiver,
                });
                Joined::Leader(Leader {
                    flights: self,
                    key,
                    id,
                    sender,
                })
            }
        }
    }
}

impl<K: Hash + Eq, V> SingleFlight<K, V> {
    /// Flights running now.
    pub fn in_flight(&self) -> usize {
        self.flights.len()
    }

    /// Callers waiting for another caller's flight now (over every key).
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Default for SingleFlight<K, V> {
    fn default() -> SingleFlight<K, V> {
        SingleFlight::new()
    }
}

impl<K: Hash + Eq, V> fmt::Debug for SingleFlight<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SingleFlight")
            .field("in_flight", &self.in_flight())
            .field("waiting", &self.waiting())
            .finish()
    }
}

/// The caller that runs a flight's load.
///
/// Dropping it ends the flight: after [`publish`](Leader::publish), waiters have the outcome;
/// without it (the leader was cancelled, timed out or panicked) they wake at once with `None`.
/// Keep it until the loaded value is stored where later callers look, so that no caller can
/// miss both the stored value and the flight.
#[must_use = "dropping the leader ends the flight"]
pub struct Leader<'a, K: Hash + Eq, V> {
    flights: &'a SingleFlight<K, V>,
    key: K,
    id: u64,
    sender: watch::Sender<Option<V>>,
}

impl<K: Hash + Eq, V> Leader<'_, K, V> {
    /// The flight's key.
    pub fn key(&self) -> &K {
        &self.key
    }

    /// Hands `outcome` to every waiter, and to every caller that joins before this leader is
    /// dropped. Publishing again replaces the outcome for callers that have not taken it yet.
    pub fn publish(&self, outcome: V) {
        self.sender.send_replace(Some(outcome));
    }

    /// Callers waiting for this flight now.
    pub fn waiters(&self) -> usize {
        // The table's own receiver is not a waiter.
        self.sender.receiver_count().saturating_sub(1)
    }
}

impl<K: Hash + Eq, V> Drop for Leader<'_, K, V> {
    fn drop(&mut self) {
        let id = self.id;
        self.flights
            .flights
            .remove_if(&self.key, |_, flight| flight.id == id);
    }
}

impl<K: Hash + Eq + fmt::Debug, V> fmt::Debug for Leader<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leader")
            .field("key", &self.key)
            .field("waiters", &self.waiters())
            .finish()
    }
}

/// A caller waiting for another caller's flight.
///
/// Dropping a waiter (it timed out, its task was cancelled) affects no one else.
#[must_use = "a waiter does nothing unless its outcome is awaited"]
pub struct Waiter<V> {
    outcome: watch::Receiver<Option<V>>,
    waiting: Arc<AtomicUsize>,
}

impl<V: Clone> Waiter<V> {
    /// The flight's outcome, or `None` when its leader was dropped without publishing one (the
    /// caller should look in the cache again and join again, perhaps as the next leader).
    pub async fn outcome(mut self) -> Option<V> {
        let settled = self.outcome.wait_for(Option::is_some).await;
        settled.ok().and_then(|outcome| outcome.clone())
    }
}

impl<V> Drop for Waiter<V> {
    fn drop(&mut self) {
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<V> fmt::Debug for Waiter<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiter").finish_non_exhaustive()
    }
}
