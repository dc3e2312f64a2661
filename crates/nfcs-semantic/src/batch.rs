//! Coalescing: concurrent callers' texts embedded in one forward pass.

use std::collections::HashMap;

use parking_lot::{Condvar, Mutex};

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
/// forward pass; without load, nothing changes.
pub(crate) struct Coalescing<E> {
    inner: E,
    max_batch: usize,
    queue: Mutex<Queue>,
    wake: Condvar,
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
    pub(crate) fn new(inner: E, max_batch: usize) -> Coalescing<E> {
        Coalescing {
            inner,
            max_batch: max_batch.max(1),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        }
    }

    pub(crate) fn inner(&self) -> &E {
        &self.inner
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
            if let Ok(vectors) = self.inner.embed(&batch_texts)
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
            self.inner.embed(&retry)?
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
    use std::time::Duration;

    use super::*;

    /// Vectors that encode their text's length; records every batch; fails on "fail".
    #[derive(Default)]
    struct Recording {
        batches: Mutex<Vec<usize>>,
        calls: AtomicUsize,
    }

    impl Embedder for Recording {
        fn dimension(&self) -> usize {
            1
        }
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, SemanticError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.batches.lock().push(texts.len());
            std::thread::sleep(Duration::from_millis(60));
            if texts.contains(&"fail") {
                return Err(SemanticError::Tokenizer("fail".into()));
            }
            Ok(texts.iter().map(|text| vec![text.len() as f32]).collect())
        }
    }

    #[test]
    fn concurrent_callers_share_forward_passes_and_get_their_own_vectors() {
        let coalescing = Arc::new(Coalescing::new(Recording::default(), 64));
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
        for (thread, handle) in handles.into_iter().enumerate() {
            let vectors = handle.join().unwrap().unwrap();
            assert_eq!(vectors, vec![vec![(thread + 1) as f32], vec![2.0]]);
        }
        let calls = coalescing.inner().calls.load(Ordering::SeqCst);
        // The first caller runs alone; the seven that arrive during its 60 ms pass share the
        // next one (a slow scheduler may split them, never into seven).
        assert!(
            calls < threads,
            "{calls} forward passes for {threads} callers"
        );
        assert_eq!(
            coalescing.inner().batches.lock().iter().sum::<usize>(),
            2 * threads
        );
    }

    #[test]
    fn a_failing_text_fails_only_its_own_caller() {
        let coalescing = Arc::new(Coalescing::new(Recording::default(), 64));
        let barrier = Arc::new(Barrier::new(3));
        let spawn = |text: &'static str| {
            let coalescing = Arc::clone(&coalescing);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                coalescing.embed(&[text])
            })
        };
        let good = spawn("good");
        let bad = spawn("fail");
        let other = spawn("other");
        assert_eq!(good.join().unwrap().unwrap(), vec![vec![4.0]]);
        assert_eq!(other.join().unwrap().unwrap(), vec![vec![5.0]]);
        assert!(matches!(
            bad.join().unwrap(),
            Err(SemanticError::Tokenizer(_))
        ));
    }

    #[test]
    fn batches_never_exceed_the_limit() {
        let coalescing = Coalescing::new(Recording::default(), 3);
        let texts = ["a", "bb", "ccc", "dddd", "eeeee", "f", "gg"];
        let vectors = coalescing.embed(&texts).unwrap();
        let lengths: Vec<f32> = vectors.iter().map(|vector| vector[0]).collect();
        assert_eq!(lengths, vec![1.0, 2.0, 3.0, 4.0, 5.0, 1.0, 2.0]);
        assert_eq!(*coalescing.inner().batches.lock(), vec![3, 3, 1]);
    }
}
