//! Coalescing: concurrent callers' texts embedded in one forward pass.

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::telemetry::EmbedMetrics;
use crate::{Embedder, SemanticError};

/// What became of a queued text.
enum Slot {
    Done(Vec<f32>),
    /// The batch it was in failed: its caller embeds it alone, so that it gets its own typed
    /// error (or its vector, when another text broke the batch).
    Retry,
}

#[derive(Default)]
struct Queue {
    /// Texts waiting for a forward pass, with their tickets.
    waiting: Vec<(u64, String)>,
    finished: HashMap<u64, Slot>,
    running: bool,
    next_ticket: u64,
}

/// An [`Embedder`] that merges the texts of callers on different threads into one batch: a
/// caller that finds the model idle runs it at once on everything queued (so a lone caller
/// waits for nothing); callers that arrive while it runs queue their texts, and the next of
/// them to wake runs the model once for all of them. Under load, many lookups share one
/// forward pass; without load, nothing changes. Every pass is timed and counted in `metrics`.
pub(crate) struct Coalescing<E> {
    inner: E,
    max_batch: usize,
    queue: Mutex<Queue>,
    wake: Condvar,
    metrics: EmbedMetrics,
}

/// Marks the forward pass over, whatever happens to the thread running it (a panic included),
/// so that the callers waiting on it are not left waiting for ever.
struct Running<'a, E> {
    owner: &'a Coalescing<E>,
    tickets: Vec<u64>,
}

impl<E> Drop for Running<'_, E> {
    fn drop(&mut self) {
        let mut queue = self.owner.queue.lock();
        for ticket in self.tickets.drain(..) {
            queue.finished.entry(ticket).or_insert(Slot::Retry);
        }
        queue.running = false;
        drop(queue);
        self.owner.wake.notify_all();
    }
}

impl<E: Embedder> Coalescing<E> {
    pub(crate) fn new(inner: E, max_batch: usize, metrics: EmbedMetrics) -> Coalescing<E> {
        Coalescing {
            inner,
            max_batch: max_batch.max(1),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            metrics,
        }
    }

    pub(crate) fn inner(&self) -> &E {
        &self.inner
    }

    pub(crate) fn metrics(&self) -> &EmbedMetrics {
        &self.metrics
    }

    /// Texts queued for the next forward pass now (tests use it to know that every caller
    /// has arrived before they let the running pass finish).
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.queue.lock().waiting.len()
    }

    /// One forward pass of the model, timed and counted.
    fn pass(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, SemanticError> {
        let started = Instant::now();
        let vectors = self.inner.embed(texts);
        let failed = !matches!(&vectors, Ok(vectors) if vectors.len() == texts.len());
        self.metrics
            .pass(texts.len(), started.elapsed().as_secs_f64(), failed);
        vectors
    }

    /// The vectors of `texts`, computed in one batch with whatever other threads are asking for
    /// at the same time.
    pub(crate) fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, SemanticError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mut queue = self.queue.lock();
        let first = queue.next_ticket;
        queue.next_ticket += texts.len() as u64;
        let mine = first..first + texts.len() as u64;
        queue.waiting.extend(
            mine.clone()
                .zip(texts)
                .map(|(ticket, text)| (ticket, (*text).to_owned())),
        );
        loop {
            if mine
                .clone()
                .all(|ticket| queue.finished.contains_key(&ticket))
            {
                let slots: Vec<Slot> = mine
                    .clone()
                    .filter_map(|ticket| queue.finished.remove(&ticket))
                    .collect();
                drop(queue);
                return self.collect(texts, slots);
            }
            if queue.running {
                self.wake.wait(&mut queue);
                continue;
            }
            // Run the model for everyone queued (the oldest first, up to the batch limit).
            queue.running = true;
            let take = queue.waiting.len().min(self.max_batch);
            let batch: Vec<(u64, String)> = queue.waiting.drain(..take).collect();
            drop(queue);
            let running = Running {
                owner: self,
                tickets: batch.iter().map(|(ticket, _)| *ticket).collect(),
            };
            let batch_texts: Vec<&str> = batch.iter().map(|(_, text)| text.as_str()).collect();
            if let Ok(vectors) = self.pass(&batch_texts)
                && vectors.len() == batch.len()
            {
                let mut queue = self.queue.lock();
                for ((ticket, _), vector) in batch.iter().zip(vectors) {
                    queue.finished.insert(*ticket, Slot::Done(vector));
                }
            }
            // Whatever was not filled in is retried alone by its caller.
            drop(running);
            queue = self.queue.lock();
        }
    }

    /// The vectors in order; texts whose batch failed are embedded again on their own.
    fn collect(&self, texts: &[&str], slots: Vec<Slot>) -> Result<Vec<Vec<f32>>, SemanticError> {
        let retry: Vec<&str> = texts
            .iter()
            .zip(&slots)
            .filter(|(_, slot)| matches!(slot, Slot::Retry))
            .map(|(text, _)| *text)
            .collect();
        let mut again = if retry.is_empty() {
            Vec::new()
        } else {
            self.pass(&retry)?
        }
        .into_iter();
        slots
            .into_iter()
            .map(|slot| match slot {
                Slot::Done(vector) => Ok(vector),
                Slot::Retry => again.next().ok_or_else(|| {
                    SemanticError::Inference(
                        "the embedder returned fewer vectors than texts".into(),
                    )
                }),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};

    use super::*;

    /// Vectors that encode their text's length; records every batch; fails on "fail". Its
    /// first call blocks until the test [`open`](Recording::open)s the gate, so that the test
    /// decides which callers queue behind it, instead of hoping a sleep is long enough.
    #[derive(Default)]
    struct Recording {
        batches: Mutex<Vec<usize>>,
        calls: AtomicUsize,
        open: Mutex<bool>,
        opened: Condvar,
    }

    impl Recording {
        fn open(&self) {
            *self.open.lock() = true;
            self.opened.notify_all();
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl Embedder for Recording {
        fn dimension(&self) -> usize {
            1
        }
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, SemanticError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.batches.lock().push(texts.len());
            let mut open = self.open.lock();
            while !*open {
                self.opened.wait(&mut open);
            }
            drop(open);
            if texts.contains(&"fail") {
                return Err(SemanticError::Tokenizer("fail".into()));
            }
            Ok(texts.iter().map(|text| vec![text.len() as f32]).collect())
        }
    }

    fn coalescing(max_batch: usize) -> Arc<Coalescing<Recording>> {
        Arc::new(Coalescing::new(
            Recording::default(),
            max_batch,
            EmbedMetrics::new("batch-test"),
        ))
    }

    /// Spins (yielding the processor) until `condition` holds: the test waits for a state it
    /// can observe, never for a length of time.
    fn until(condition: impl Fn() -> bool) {
        while !condition() {
            std::thread::yield_now();
        }
    }

    #[test]
    fn concurrent_callers_share_forward_passes_and_get_their_own_vectors() {
        let coalescing = coalescing(64);
        let threads = 8;
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|thread| {
                let coalescing = Arc::clone(&coalescing);
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    let text = "x".repeat(thread + 1);
                    barrier.wait();
                    coalescing.embed(&[&text, "ab"])
                })
            })
            .collect();
        // The first caller runs the model at once, alone (its two texts), and blocks in it;
        // the seven others queue their fourteen texts behind it.
        until(|| coalescing.inner().calls() == 1 && coalescing.queued() == 2 * (threads - 1));
        coalescing.inner().open();
        for (thread, handle) in handles.into_iter().enumerate() {
            let vectors = handle.join().unwrap().unwrap();
            assert_eq!(vectors, vec![vec![(thread + 1) as f32], vec![2.0]]);
        }
        // Then the next of them to wake runs one pass for all seven.
        assert_eq!(
            *coalescing.inner().batches.lock(),
            vec![2, 2 * (threads - 1)]
        );
        let mut stats = crate::SemanticStats::default();
        coalescing.metrics().fill(&mut stats);
        assert_eq!(
            (
                stats.forward_passes,
                stats.embedded_texts,
                stats.embed_errors
            ),
            (2, 2 * threads as u64, 0)
        );
    }

    #[test]
    fn a_failing_text_fails_only_its_own_caller() {
        let coalescing = coalescing(64);
        let spawn = |text: &'static str| {
            let coalescing = Arc::clone(&coalescing);
            std::thread::spawn(move || coalescing.embed(&[text]))
        };
        // "good" runs alone and blocks; "fail" and "other" queue behind it and share the next
        // pass, which fails: each is then retried alone, so only "fail" gets the error.
        let good = spawn("good");
        until(|| coalescing.inner().calls() == 1);
        let bad = spawn("fail");
        let other = spawn("other");
        until(|| coalescing.queued() == 2);
        coalescing.inner().open();
        assert_eq!(good.join().unwrap().unwrap(), vec![vec![4.0]]);
        assert_eq!(other.join().unwrap().unwrap(), vec![vec![5.0]]);
        assert!(matches!(
            bad.join().unwrap(),
            Err(SemanticError::Tokenizer(_))
        ));
        let mut batches = coalescing.inner().batches.lock().clone();
        assert_eq!(batches.remove(0), 1, "good, alone");
        assert_eq!(batches.remove(0), 2, "fail and other, together");
        assert_eq!(batches, vec![1, 1], "each retried alone");
        let mut stats = crate::SemanticStats::default();
        coalescing.metrics().fill(&mut stats);
        assert_eq!((stats.forward_passes, stats.embed_errors), (4, 2));
    }

    #[test]
    fn batches_never_exceed_the_limit() {
        let coalescing = coalescing(3);
        coalescing.inner().open();
        let texts = ["a", "bb", "ccc", "dddd", "eeeee", "f", "gg"];
        let vectors = coalescing.embed(&texts).unwrap();
        let lengths: Vec<f32> = vectors.iter().map(|vector| vector[0]).collect();
        assert_eq!(lengths, vec![1.0, 2.0, 3.0, 4.0, 5.0, 1.0, 2.0]);
        assert_eq!(*coalescing.inner().batches.lock(), vec![3, 3, 1]);
    }
}
