//! The semantic cache: values found by the meaning of the text they were stored under.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::{Embedder, FlatIndex, SemanticError};

/// How a [`SemanticCache`] behaves. The defaults are the NFCS spec's.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct SemanticConfig {
    /// The threshold [`SemanticCache::find`] uses: a cosine similarity from -1 to 1. Default
    /// 0.95.
    pub threshold: f32,
    /// Entries kept; beyond it the least recently used goes. Default 10,000.
    pub max_entries: usize,
    /// How long an entry lives, `None` for ever. Default `None`.
    pub ttl: Option<Duration>,
}

impl Default for SemanticConfig {
    fn default() -> SemanticConfig {
        SemanticConfig {
            threshold: 0.95,
            max_entries: 10_000,
            ttl: None,
        }
    }
}

impl SemanticConfig {
    /// The default configuration with `threshold`.
    pub fn with_threshold(mut self, threshold: f32) -> SemanticConfig {
        self.threshold = threshold;
        self
    }

    /// With `max_entries`.
    pub fn with_max_entries(mut self, max_entries: usize) -> SemanticConfig {
        self.max_entries = max_entries;
        self
    }

    /// With a time to live.
    pub fn with_ttl(mut self, ttl: Duration) -> SemanticConfig {
        self.ttl = Some(ttl);
        self
    }
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq)]
pub struct SemanticHit<V> {
    /// The stored value.
    pub value: V,
    /// The cosine similarity of the query to the stored text (1.0 for the same text).
    pub similarity: f32,
    /// The text the value was stored under.
    pub text: String,
}

struct Entry<V> {
    text: String,
    context: String,
    value: V,
    /// Whether the text has content the model can read (see [`Embedder::has_content`]): only
    /// such entries match by meaning; the others only by exact text.
    semantic: bool,
    expires: Option<Instant>,
    used: u64,
}

struct State<V> {
    index: FlatIndex,
    /// In the index's row order.
    entries: Vec<Entry<V>>,
    /// `(context, text)` to row.
    exact: HashMap<(String, String), usize>,
    clock: u64,
}

impl<V: Clone> State<V> {
    /// Marks `row` used now and returns it as a hit.
    fn hit(&mut self, row: usize, similarity: f32) -> SemanticHit<V> {
        self.clock += 1;
        let entry = &mut self.entries[row];
        entry.used = self.clock;
        SemanticHit {
            value: entry.value.clone(),
            similarity,
            text: entry.text.clone(),
        }
    }
}

impl<V> State<V> {
    fn remove_row(&mut self, row: usize) {
        let entry = self.entries.swap_remove(row);
        self.exact.remove(&(entry.context, entry.text));
        if let Some(moved) = self.index.swap_remove(row) {
            let key = (
                self.entries[row].context.clone(),
                self.entries[row].text.clone(),
            );
            self.exact.insert(key, row);
            debug_assert!(moved == self.entries.len());
        }
    }

    fn expired(&self, row: usize, now: Instant) -> bool {
        self.entries[row]
            .expires
            .is_some_and(|expires| expires <= now)
    }

    /// Makes room for one entry: expired ones first, else the least recently used.
    fn make_room(&mut self, max_entries: usize, now: Instant) {
        if self.entries.len() < max_entries {
            return;
        }
        let mut row = 0;
        while row < self.entries.len() {
            if self.expired(row, now) {
                self.remove_row(row);
            } else {
                row += 1;
            }
        }
        while self.entries.len() >= max_entries {
            let Some(oldest) = (0..self.entries.len()).min_by_key(|&row| self.entries[row].used)
            else {
                return;
            };
            self.remove_row(oldest);
        }
    }
}

/// Values stored under a text and found again by a text of the same meaning.
///
/// Similarity is the cosine of the two texts' embeddings, from -1 to 1; 1.0 means the same
/// embedding. A lookup returns the most similar entry of the same context whose similarity is
/// at least the threshold; a threshold of 0 or below is honoured as given. The exact text is
/// found without running the model. Every entry belongs to a context (a tenant, a namespace):
/// a lookup never sees another context's entries.
///
/// Texts without content (empty or blank: refused by [`store`](SemanticCache::store); made only
/// of symbols the model does not know, such as emoji: stored) are matched by exact text only,
/// because they all embed to nearly the same vector. Texts past the model's 256 tokens are
/// compared on their first 256 tokens (their exact text still tells them apart).
///
/// ```
/// use nfcs_semantic::{MiniLmEmbedder, SemanticCache, SemanticConfig};
///
/// # let Ok(model) = MiniLmEmbedder::load_default() else { return Ok(()) };
/// let cache = SemanticCache::new(model, SemanticConfig::default())?;
/// cache.store("Hello world", "greeting".to_owned(), "tenant-a")?;
/// let hit = cache.find_similar("Hi world", 0.8, "tenant-a")?.expect("similar enough");
/// assert_eq!(hit.value, "greeting");
/// assert!(cache.find_similar("Hi world", 0.95, "tenant-a")?.is_none());
/// assert!(cache.find_similar("Hi world", 0.8, "tenant-b")?.is_none());
/// # Ok::<(), nfcs_semantic::SemanticError>(())
/// ```
pub struct SemanticCache<V, E> {
    embedder: E,
    config: SemanticConfig,
    state: Mutex<State<V>>,
}

impl<V: Clone + Send + Sync, E: Embedder> SemanticCache<V, E> {
    /// An empty cache.
    ///
    /// # Errors
    /// [`SemanticError::InvalidThreshold`] or [`SemanticError::InvalidConfig`].
    pub fn new(embedder: E, config: SemanticConfig) -> Result<SemanticCache<V, E>, SemanticError> {
        check_threshold(config.threshold)?;
        if config.max_entries == 0 {
            return Err(SemanticError::InvalidConfig {
                field: "max_entries",
                reason: "must be at least 1",
            });
        }
        if config.ttl == Some(Duration::ZERO) {
            return Err(SemanticError::InvalidConfig {
                field: "ttl",
                reason: "must be longer than zero (None keeps entries for ever)",
            });
        }
        let dimension = embedder.dimension();
        Ok(SemanticCache {
            embedder,
            config,
            state: Mutex::new(State {
                index: FlatIndex::new(dimension),
                entries: Vec::new(),
                exact: HashMap::new(),
                clock: 0,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SemanticConfig {
        &self.config
    }

    /// The embedder.
    pub fn embedder(&self) -> &E {
        &self.embedder
    }

    /// Entries stored (expired ones included until they are reclaimed).
    pub fn len(&self) -> usize {
        self.state.lock().entries.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores `value` under `text` in `context`, replacing what the same text held there.
    ///
    /// # Errors
    /// [`SemanticError::EmptyText`] for an empty or blank text; the embedder's errors.
    pub fn store(&self, text: &str, value: V, context: &str) -> Result<(), SemanticError> {
        self.store_many(&[(text, value)], context)
    }

    /// Stores several entries in `context` with one pass of the model.
    ///
    /// # Errors
    /// As [`store`](SemanticCache::store); nothing is stored when any text is refused.
    pub fn store_many(&self, entries: &[(&str, V)], context: &str) -> Result<(), SemanticError> {
        if entries.iter().any(|(text, _)| text.trim().is_empty()) {
            return Err(SemanticError::EmptyText);
        }
        let texts: Vec<&str> = entries.iter().map(|(text, _)| *text).collect();
        let vectors = self.embedder.embed(&texts)?;
        let semantic: Vec<bool> = texts
            .iter()
            .map(|text| self.embedder.has_content(text))
            .collect();
        let now = Instant::now();
        let expires = self.config.ttl.map(|ttl| now + ttl);
        let mut state = self.state.lock();
        for (((text, value), vector), semantic) in entries.iter().zip(&vectors).zip(semantic) {
            state.clock += 1;
            let used = state.clock;
            let key = (context.to_owned(), (*text).to_owned());
            if let Some(&row) = state.exact.get(&key) {
                let entry = &mut state.entries[row];
                entry.value = value.clone();
                entry.expires = expires;
                entry.used = used;
                continue;
            }
            state.make_room(self.config.max_entries, now);
            let row = state.index.push(vector);
            state.entries.push(Entry {
                text: key.1.clone(),
                context: key.0.clone(),
                value: value.clone(),
                semantic,
                expires,
                used,
            });
            state.exact.insert(key, row);
        }
        Ok(())
    }

    /// The entry of `context` most similar to `text` with a similarity of at least the
    /// configured threshold.
    ///
    /// # Errors
    /// As [`find_similar`](SemanticCache::find_similar).
    pub fn find(&self, text: &str, context: &str) -> Result<Option<SemanticHit<V>>, SemanticError> {
        self.find_similar(text, self.config.threshold, context)
    }

    /// The entry of `context` most similar to `text` with a similarity of at least
    /// `threshold` (a cosine, -1 to 1). A miss is `Ok(None)`.
    ///
    /// # Errors
    /// [`SemanticError::InvalidThreshold`]; the embedder's errors.
    pub fn find_similar(
        &self,
        text: &str,
        threshold: f32,
        context: &str,
    ) -> Result<Option<SemanticHit<V>>, SemanticError> {
        Ok(self
            .find_similar_many(&[text], threshold, context)?
            .pop()
            .flatten())
    }

    /// [`find_similar`](SemanticCache::find_similar) for several texts, with one pass of the
    /// model for those not found by exact text.
    ///
    /// # Errors
    /// As [`find_similar`](SemanticCache::find_similar).
    pub fn find_similar_many(
        &self,
        texts: &[&str],
        threshold: f32,
        context: &str,
    ) -> Result<Vec<Option<SemanticHit<V>>>, SemanticError> {
        check_threshold(threshold)?;
        let now = Instant::now();
        let mut results: Vec<Option<SemanticHit<V>>> = vec![None; texts.len()];
        // Exact texts first: no model needed.
        let mut pending = Vec::new();
        {
            let mut state = self.state.lock();
            for (slot, text) in texts.iter().enumerate() {
                let key = (context.to_owned(), (*text).to_owned());
                match state.exact.get(&key).copied() {
                    Some(row) if state.expired(row, now) => {
                        state.remove_row(row);
                        pending.push(slot);
                    }
                    Some(row) => results[slot] = Some(state.hit(row, 1.0)),
                    None => pending.push(slot),
                }
            }
        }
        // Then by meaning, for the texts that have some.
        let pending: Vec<usize> = pending
            .into_iter()
            .filter(|&slot| self.embedder.has_content(texts[slot]))
            .collect();
        if pending.is_empty() {
            return Ok(results);
        }
        let queries: Vec<&str> = pending.iter().map(|&slot| texts[slot]).collect();
        let vectors = self.embedder.embed(&queries)?;
        let mut state = self.state.lock();
        for (slot, vector) in pending.into_iter().zip(&vectors) {
            let found = {
                let State { index, entries, .. } = &*state;
                index.best(vector, |row| {
                    let entry = &entries[row];
                    entry.semantic
                        && entry.context == context
                        && entry.expires.is_none_or(|expires| expires > now)
                })
            };
            if let Some((row, similarity)) =
                found.filter(|&(_, similarity)| similarity >= threshold)
            {
                results[slot] = Some(state.hit(row, similarity));
            }
        }
        Ok(results)
    }

    /// Removes the entry stored under exactly `text` in `context`; whether there was one.
    pub fn remove(&self, text: &str, context: &str) -> bool {
        let mut state = self.state.lock();
        match state
            .exact
            .get(&(context.to_owned(), text.to_owned()))
            .copied()
        {
            Some(row) => {
                state.remove_row(row);
                true
            }
            None => false,
        }
    }

    /// Removes every entry.
    pub fn clear(&self) {
        let mut state = self.state.lock();
        let dimension = state.index.dimension();
        state.index = FlatIndex::new(dimension);
        state.entries.clear();
        state.exact.clear();
    }
}

fn check_threshold(threshold: f32) -> Result<(), SemanticError> {
    if (-1.0..=1.0).contains(&threshold) {
        Ok(())
    } else {
        Err(SemanticError::InvalidThreshold(threshold))
    }
}
