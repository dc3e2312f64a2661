//! What keeps a read from bringing back an older value.
//!
//! A read that misses memory and finds an entry in a lower tier copies it into the tiers above
//! (promotion). Between the lower-tier read and the copy, a write, a deletion or an
//! invalidation may have completed; copying then would put the older value back over the
//! newer state, to be served until its TTL runs out. Three mechanisms prevent that:
//!
//! - **Stripes.** Every key maps to one of [`STRIPES`] stripes, each an async mutex and a
//!   sequence number. A write or deletion of a key ([`Consistency::write`]) holds its stripe's
//!   mutex for the whole operation (memory and every lower tier) and moves the sequence to odd
//!   at the start and back to even at the end. Writes to one key therefore reach every tier in
//!   the same order, so the tiers never disagree about which write came last.
//! - **Sweeps.** An invalidation of many keys (a pattern, `clear`, a remote resynchronisation;
//!   [`Consistency::sweep`]) waits for promotions in progress to finish, then raises a global
//!   epoch and an active-sweep count, and raises the epoch again when done.
//! - **Marks.** A read takes a [`ReadMark`] (its key's stripe sequence and the epoch) after its
//!   memory miss and before its lower-tier read. It promotes only if, holding the stripe's mutex
//!   and a shared hold on the sweep gate, the sequence and the epoch are what the mark saw, even,
//!   and no sweep is active ([`Consistency::promotion`]). Otherwise something changed the key
//!   (or possibly changed it) since the read began, and the read returns its value without
//!   copying it: a skipped promotion costs a later lower-tier read, never a stale value.
//!
//! Taking the mark *after* the memory miss is enough: a write that completed before the mark
//! was taken completed its lower-tier writes too, so the lower-tier read sees it (the mark's
//! acquire load synchronises with the write's release at its end); a write that had started
//! but not finished leaves the sequence odd; one that starts later changes it.
//!
//! The caller of a write or a multi-tier promotion may be cancelled while tier writes are in
//! flight (a disk write on the blocking pool, a Redis command already sent): the guards are
//! owned, so the manager moves them into a spawned task that finishes the writes and only then
//! releases the stripe. A cancelled write can therefore never be overtaken by a later one.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Mutex, OwnedMutexGuard, OwnedRwLockReadGuard, RwLock};

/// Stripes keys are spread over. Two keys share a stripe with probability 1/1024: a write of
/// one then only makes a concurrent promotion of the other skip (or wait behind it), never a
/// wrong value.
pub(super) const STRIPES: usize = 1024;

struct Stripe {
    lock: Arc<Mutex<()>>,
    /// Odd while a write of a key of this stripe runs; every write adds two.
    sequence: Arc<AtomicU64>,
}

/// The manager's write ordering and promotion checks (see the module documentation).
pub(super) struct Consistency {
    stripes: Box<[Stripe]>,
    hasher: foldhash::fast::FixedState,
    /// Taken exclusively by a sweep as it starts, shared by a promotion while it writes.
    gate: Arc<RwLock<()>>,
    /// Raised at the start and at the end of every sweep.
    epoch: Arc<AtomicU64>,
    /// Sweeps running now.
    active_sweeps: Arc<AtomicU64>,
}

/// What a read saw before its lower-tier read: see [`Consistency::mark`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ReadMark {
    stripe: usize,
    sequence: u64,
    epoch: u64,
    sweeping: bool,
}

impl ReadMark {
    /// Whether nothing was in progress on the key when the mark was taken.
    fn quiet(&self) -> bool {
        self.sequence.is_multiple_of(2) && !self.sweeping
    }
}

/// Held for the whole of a write or deletion of one key; dropping it ends the write.
pub(super) struct WriteGuard {
    _lock: OwnedMutexGuard<()>,
    sequence: Arc<AtomicU64>,
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        // Back to even: the write is over (completed, failed or cancelled).
        self.sequence.fetch_add(1, Ordering::Release);
    }
}

/// Held for the whole of a promotion; while it lives no write of the key and no sweep runs.
pub(super) struct PromotionGuard {
    _lock: OwnedMutexGuard<()>,
    _gate: OwnedRwLockReadGuard<()>,
}

/// Held for the whole of an invalidation of many keys; dropping it ends the sweep.
pub(super) struct SweepGuard {
    epoch: Arc<AtomicU64>,
    active_sweeps: Arc<AtomicU64>,
}

impl Drop for SweepGuard {
    fn drop(&mut self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.active_sweeps.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Consistency {
    pub(super) fn new() -> Consistency {
        Consistency {
            stripes: (0..STRIPES)
                .map(|_| Stripe {
                    lock: Arc::new(Mutex::new(())),
                    sequence: Arc::new(AtomicU64::new(0)),
                })
                .collect(),
            hasher: foldhash::fast::FixedState::default(),
            gate: Arc::new(RwLock::new(())),
            epoch: Arc::new(AtomicU64::new(0)),
            active_sweeps: Arc::new(AtomicU64::new(0)),
        }
    }

    fn stripe_of(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) % STRIPES as u64) as usize
    }

    /// The mark a read takes after its memory miss, before reading the lower tiers.
    pub(super) fn mark(&self, key: &str) -> ReadMark {
        let stripe = self.stripe_of(key);
        // The sweep count is read before the epoch: a sweep raises the count before the
        // epoch, so a mark that saw no sweep and an epoch that a sweep has since raised is
        // caught by the epoch comparison.
        let sweeping = self.active_sweeps.load(Ordering::Acquire) > 0;
        ReadMark {
            stripe,
            sequence: self.stripes[stripe].sequence.load(Ordering::Acquire),
            epoch: self.epoch.load(Ordering::Acquire),
            sweeping,
        }
    }

    /// Whether nothing has written `mark`'s key, and no sweep has run, since the mark: the
    /// lower-tier read that followed it saw the current state. (Advisory without a guard: the
    /// single-flight re-check uses it to skip a second lower-tier read.)
    pub(super) fn unchanged_since(&self, mark: ReadMark) -> bool {
        mark.quiet()
            && self.active_sweeps.load(Ordering::Acquire) == 0
            && self.stripes[mark.stripe].sequence.load(Ordering::Acquire) == mark.sequence
            && self.epoch.load(Ordering::Acquire) == mark.epoch
    }

    /// Starts a write or deletion of `key`: waits for the key's stripe (writes of one stripe
    /// take turns), then marks the stripe as being written.
    pub(super) async fn write(&self, key: &str) -> WriteGuard {
        let stripe = &self.stripes[self.stripe_of(key)];
        let lock = Arc::clone(&stripe.lock).lock_owned().await;
        stripe.sequence.fetch_add(1, Ordering::AcqRel);
        WriteGuard {
            _lock: lock,
            sequence: Arc::clone(&stripe.sequence),
        }
    }

    /// Starts writes or deletions of all of `keys` at once: the turns of their stripes, taken
    /// in ascending stripe order. Every other writer holds one stripe at a time, so two
    /// batches, or a batch and a one-key write, never wait on each other in a cycle.
    #[cfg(feature = "redis")]
    pub(super) async fn write_many<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k str>,
    ) -> Vec<WriteGuard> {
        let mut stripes: Vec<usize> = keys.into_iter().map(|key| self.stripe_of(key)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for index in stripes {
            let stripe = &self.stripes[index];
            let lock = Arc::clone(&stripe.lock).lock_owned().await;
            stripe.sequence.fetch_add(1, Ordering::AcqRel);
            guards.push(WriteGuard {
                _lock: lock,
                sequence: Arc::clone(&stripe.sequence),
            });
        }
        guards
    }

    /// Permission to promote what a read found after `mark`, or `None` when anything may have
    /// changed the key since (the read then returns its value without promoting it). Never
    /// waits: a busy stripe or a sweep in progress means "do not promote".
    pub(super) fn promotion(&self, mark: ReadMark) -> Option<PromotionGuard> {
        if !mark.quiet() {
            return None;
        }
        let gate = Arc::clone(&self.gate).try_read_owned().ok()?;
        let stripe = &self.stripes[mark.stripe];
        let lock = Arc::clone(&stripe.lock).try_lock_owned().ok()?;
        let unchanged = stripe.sequence.load(Ordering::Acquire) == mark.sequence
            && self.epoch.load(Ordering::Acquire) == mark.epoch
            && self.active_sweeps.load(Ordering::Acquire) == 0;
        unchanged.then_some(PromotionGuard {
            _lock: lock,
            _gate: gate,
        })
    }

    /// Starts an invalidation of many keys: waits for promotions in progress to finish, then
    /// marks a sweep as running, so that no read that overlaps it promotes.
    pub(super) async fn sweep(&self) -> SweepGuard {
        let _drained = self.gate.write().await;
        self.active_sweeps.fetch_add(1, Ordering::AcqRel);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        SweepGuard {
            epoch: Arc::clone(&self.epoch),
            active_sweeps: Arc::clone(&self.active_sweeps),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_write_after_the_mark_forbids_the_promotion() {
        let consistency = Consistency::new();
        let mark = consistency.mark("k");
        assert!(consistency.unchanged_since(mark));
        drop(consistency.write("k").await);
        assert!(!consistency.unchanged_since(mark));
        assert!(consistency.promotion(mark).is_none());
        let fresh = consistency.mark("k");
        assert!(consistency.promotion(fresh).is_some());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_write_in_progress_at_the_mark_forbids_the_promotion() {
        let consistency = Consistency::new();
        let write = consistency.write("k").await;
        let mark = consistency.mark("k");
        drop(write);
        assert!(
            consistency.promotion(mark).is_none(),
            "the mark saw an odd sequence"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_sweep_forbids_promotions_that_overlap_it() {
        let consistency = Consistency::new();
        let before = consistency.mark("k");
        let sweep = consistency.sweep().await;
        let during = consistency.mark("k");
        assert!(consistency.promotion(before).is_none());
        assert!(consistency.promotion(during).is_none());
        drop(sweep);
        assert!(consistency.promotion(before).is_none(), "the epoch moved");
        assert!(
            consistency.promotion(during).is_none(),
            "marked during a sweep"
        );
        assert!(consistency.promotion(consistency.mark("k")).is_some());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_promotion_holds_off_writes_and_sweeps() {
        let consistency = Arc::new(Consistency::new());
        let guard = consistency.promotion(consistency.mark("k")).unwrap();
        assert!(
            consistency.promotion(consistency.mark("k")).is_none(),
            "one promotion of a stripe at a time"
        );
        let writer = {
            let consistency = Arc::clone(&consistency);
            tokio::spawn(async move {
                drop(consistency.write("k").await);
            })
        };
        tokio::task::yield_now().await;
        assert!(!writer.is_finished(), "the write waits for the promotion");
        drop(guard);
        writer.await.unwrap();
    }

    #[cfg(feature = "redis")]
    #[tokio::test(flavor = "current_thread")]
    async fn a_batch_holds_every_key_and_batches_in_any_order_both_finish() {
        let consistency = Arc::new(Consistency::new());
        let keys: Vec<String> = (0..64).map(|index| format!("key:{index}")).collect();
        let marks: Vec<ReadMark> = keys.iter().map(|key| consistency.mark(key)).collect();
        let batch = consistency
            .write_many(keys.iter().map(String::as_str))
            .await;
        for (key, mark) in keys.iter().zip(&marks) {
            assert!(
                !consistency.unchanged_since(*mark),
                "{key} is being written"
            );
        }
        let writer = {
            let consistency = Arc::clone(&consistency);
            tokio::spawn(async move { drop(consistency.write("key:7").await) })
        };
        // Two more batches over the same keys, one in reverse order: taken in stripe order,
        // they cannot wait on each other in a cycle.
        let batches: Vec<_> = [false, true]
            .into_iter()
            .map(|reverse| {
                let consistency = Arc::clone(&consistency);
                let mut keys = keys.clone();
                if reverse {
                    keys.reverse();
                }
                tokio::spawn(async move {
                    drop(
                        consistency
                            .write_many(keys.iter().map(String::as_str))
                            .await,
                    );
                })
            })
            .collect();
        tokio::task::yield_now().await;
        assert!(
            !writer.is_finished(),
            "a write of one of the keys waits for the batch"
        );
        drop(batch);
        writer.await.unwrap();
        for batch in batches {
            batch.await.unwrap();
        }
        for key in &keys {
            assert!(consistency.mark(key).quiet(), "{key}: every turn ended");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_cancelled_write_ends_with_its_guard() {
        let consistency = Consistency::new();
        let mark = consistency.mark("k");
        {
            let _write = consistency.write("k").await;
        }
        let after = consistency.mark("k");
        assert_eq!(after.sequence, mark.sequence + 2);
        assert!(after.quiet());
    }
}
