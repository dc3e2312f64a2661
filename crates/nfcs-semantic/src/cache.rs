//! The semantic cache: values found by the meaning of the text they were stored under.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nfcs_cache_core::Clock;
use nfcs_cache_core::telemetry::DEFAULT_INSTANCE;
use parking_lot::Mutex;

use crate::batch::Coalescing;
use crate::guard::contradicts;
use crate::telemetry::{CacheMetrics, EmbedMetrics, SemanticStats};
use crate::{Embedder, FlatIndex, HnswConfig, HnswIndex, SemanticError};

/// How a [`SemanticCache`] searches its vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IndexKind {
    /// Exact search over every entry of the cache ([`FlatIndex`]): the most similar entry is
    /// always found. The default; at 10,000 entries a lookup scans them in well under a
    /// millisecond (see `docs/benchmarks.md`).
    #[default]
    Flat,
    /// Approximate search ([`HnswIndex`]), one graph per context: for caches of 100,000
    /// entries and more, at a recall below 1 (0.98 and above on near-duplicates in the
    /// benchmarks). Removed entries stay in the graph as deleted nodes until they outnumber
    /// the live ones; then the context's graph is rebuilt.
    Hnsw(HnswConfig),
}

/// How a [`SemanticCache`] behaves. The defaults are the NFCS spec's.
///
/// ```
/// use std::time::Duration;
/// use nfcs_cache_core::ManualClock;
/// use nfcs_semantic::SemanticConfig;
///
/// let manual = ManualClock::new();
/// let config = SemanticConfig::default()
///     .with_ttl(Duration::from_secs(600))
///     .with_instance("node-a")
///     .with_clock(manual.clock());
/// assert_eq!(config.instance, "node-a");
/// assert!(config.clock.is_manual());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SemanticConfig {
    /// The threshold [`SemanticCache::find`] uses: a cosine similarity from -1 to 1. Default
    /// 0.95.
    pub threshold: f32,
    /// Entries kept; beyond it the least recently used goes. Default 10,000.
    pub max_entries: usize,
    /// How long an entry lives, `None` for ever, measured on
    /// [`clock`](SemanticConfig::clock). Default `None`.
    pub ttl: Option<Duration>,
    /// The vector index. Default [`IndexKind::Flat`].
    pub index: IndexKind,
    /// The most texts one forward pass of the model embeds when concurrent lookups and
    /// stores are merged (see [`SemanticCache`]). Default 32.
    pub max_batch: usize,
    /// Whether a match by meaning is refused when the two texts look like opposites: one
    /// negates and the other does not, they differ by a pair of opposite words (`buy`/`sell`,
    /// `enable`/`disable`, `on`/`off`, ...), or they hold the same words in another order.
    /// Embeddings put such pairs close together (above 0.95 for some), so without the guard
    /// a question receives its opposite's answer. Default `true`.
    pub contradiction_guard: bool,
    /// The clock TTLs are measured on: the system's by default, a
    /// [`ManualClock`](nfcs_cache_core::ManualClock)'s in tests, which advance it instead of
    /// sleeping. (Least-recently-used order needs no clock: it follows a counter of uses.)
    pub clock: Clock,
    /// The cache instance: the `cache` label of every metric this cache publishes. Default
    /// [`DEFAULT_INSTANCE`] ("default"); a manager passes its own name. Give each live cache
    /// its own, or their counts add into one series.
    pub instance: String,
}

impl Default for SemanticConfig {
    fn default() -> SemanticConfig {
        SemanticConfig {
            threshold: 0.95,
            max_entries: 10_000,
            ttl: None,
            index: IndexKind::Flat,
            max_batch: 32,
            contradiction_guard: true,
            clock: Clock::system(),
            instance: DEFAULT_INSTANCE.to_owned(),
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

    /// With the vector index `index`.
    pub fn with_index(mut self, index: IndexKind) -> SemanticConfig {
        self.index = index;
        self
    }

    /// With the contradiction guard on or off.
    pub fn with_contradiction_guard(mut self, on: bool) -> SemanticConfig {
        self.contradiction_guard = on;
        self
    }

    /// With at most `max_batch` texts per forward pass.
    pub fn with_max_batch(mut self, max_batch: usize) -> SemanticConfig {
        self.max_batch = max_batch;
        self
    }

    /// With TTLs measured on `clock`.
    pub fn with_clock(mut self, clock: Clock) -> SemanticConfig {
        self.clock = clock;
        self
    }

    /// With `instance` as the `cache` metric label.
    pub fn with_instance(mut self, instance: impl Into<String>) -> SemanticConfig {
        self.instance = instance.into();
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
    /// The monotonic reading of the cache's clock at which the entry expires.
    expires: Option<Duration>,
    /// The use counter's value at the last use: the least recently used has the smallest.
    used: u64,
    /// Its node in its context's graph ([`Vectors::Hnsw`] and `semantic` only).
    node: u32,
}

/// A node of a graph that no longer has an entry.
const NO_ROW: u32 = u32::MAX;

/// One context's approximate index.
struct Graph {
    index: HnswIndex,
    /// Node to row of `State::entries` (`NO_ROW` once removed).
    rows: Vec<u32>,
}

enum Vectors {
    /// Every entry's vector, in the entries' row order.
    Flat(FlatIndex),
    /// A graph per context, of its `semantic` entries.
    Hnsw {
        dimension: usize,
        config: HnswConfig,
        graphs: HashMap<String, Graph>,
    },
}

impl Vectors {
    fn new(kind: IndexKind, dimension: usize) -> Vectors {
        match kind {
            IndexKind::Flat => Vectors::Flat(FlatIndex::new(dimension)),
            IndexKind::Hnsw(config) => Vectors::Hnsw {
                dimension,
                config,
                graphs: HashMap::new(),
            },
        }
    }
}

struct State<V> {
    vectors: Vectors,
    /// In the index's row order.
    entries: Vec<Entry<V>>,
    /// `(context, text)` to row.
    exact: HashMap<(String, String), usize>,
    /// Counts uses, to order entries by recency: a counter rather than a time, so that two
    /// uses never tie and the order does not depend on how fast the machine is.
    uses: u64,
}

impl<V: Clone> State<V> {
    /// Marks `row` used now and returns it as a hit.
    fn hit(&mut self, row: usize, similarity: f32) -> SemanticHit<V> {
        self.uses += 1;
        let entry = &mut self.entries[row];
        entry.used = self.uses;
        SemanticHit {
            value: entry.value.clone(),
            similarity,
            text: entry.text.clone(),
        }
    }
}

impl<V> State<V> {
    /// Appends an entry and its vector.
    fn push(&mut self, mut entry: Entry<V>, vector: &[f32]) {
        let row = self.entries.len();
        match &mut self.vectors {
            Vectors::Flat(index) => {
                index.push(vector);
            }
            Vectors::Hnsw {
                dimension,
                config,
                graphs,
            } => {
                if entry.semantic {
                    let graph = graphs
                        .entry(entry.context.clone())
                        .or_insert_with(|| Graph {
                            index: HnswIndex::new(*dimension, *config),
                            rows: Vec::new(),
                        });
                    entry.node = graph.index.insert(vector);
                    graph.rows.push(row as u32);
                }
            }
        }
        self.exact
            .insert((entry.context.clone(), entry.text.clone()), row);
        self.entries.push(entry);
    }

    fn remove_row(&mut self, row: usize) {
        let entry = self.entries.swap_remove(row);
        let moved = row < self.entries.len();
        match &mut self.vectors {
            Vectors::Flat(index) => {
                index.swap_remove(row);
            }
            Vectors::Hnsw { graphs, .. } => {
                if entry.semantic
                    && let Some(graph) = graphs.get_mut(&entry.context)
                {
                    graph.index.remove(entry.node);
                    graph.rows[entry.node as usize] = NO_ROW;
                    if graph.index.is_empty() {
                        graphs.remove(&entry.context);
                    }
                }
                if moved {
                    let moved = &self.entries[row];
                    if moved.semantic
                        && let Some(graph) = graphs.get_mut(&moved.context)
                    {
                        graph.rows[moved.node as usize] = row as u32;
                    }
                }
            }
        }
        self.exact.remove(&(entry.context, entry.text));
        if moved {
            let moved = &self.entries[row];
            let key = (moved.context.clone(), moved.text.clone());
            self.exact.insert(key, row);
        }
    }

    /// Rebuilds the graphs in which removed nodes outnumber the live ones, so that searches do
    /// not wade through the dead.
    fn compact(&mut self) {
        let Vectors::Hnsw {
            dimension,
            config,
            graphs,
        } = &mut self.vectors
        else {
            return;
        };
        for graph in graphs.values_mut() {
            if graph.index.nodes() < 2 * graph.index.len() + 64 {
                continue;
            }
            let mut fresh = Graph {
                index: HnswIndex::new(*dimension, *config),
                rows: Vec::with_capacity(graph.index.len()),
            };
            for (node, &row) in graph.rows.iter().enumerate() {
                if row == NO_ROW {
                    continue;
                }
                let Some(vector) = graph.index.get(node as u32) else {
                    continue;
                };
                self.entries[row as usize].node = fresh.index.insert(vector);
                fresh.rows.push(row);
            }
            *graph = fresh;
        }
    }

    fn expired(&self, row: usize, now: Duration) -> bool {
        self.entries[row]
            .expires
            .is_some_and(|expires| expires <= now)
    }

    /// Makes room for one entry: expired ones first, else the least recently used. Returns
    /// how many entries expired and how many were evicted.
    fn make_room(&mut self, max_entries: usize, now: Duration) -> (u64, u64) {
        if self.entries.len() < max_entries {
            return (0, 0);
        }
        let (mut expired, mut evicted) = (0, 0);
        let mut row = 0;
        while row < self.entries.len() {
            if self.expired(row, now) {
                self.remove_row(row);
                expired += 1;
            } else {
                row += 1;
            }
        }
        while self.entries.len() >= max_entries {
            let Some(oldest) = (0..self.entries.len()).min_by_key(|&row| self.entries[row].used)
            else {
                break;
            };
            self.remove_row(oldest);
            evicted += 1;
        }
        self.compact();
        (expired, evicted)
    }
}

impl<V: Sync> State<V> {
    /// The live, `semantic` entry of `context` most similar to `vector`.
    fn best(&self, vector: &[f32], context: &str, now: Duration) -> Option<(usize, f32)> {
        let usable = |row: usize| {
            let entry = &self.entries[row];
            entry.semantic && entry.expires.is_none_or(|expires| expires > now)
        };
        match &self.vectors {
            Vectors::Flat(index) => index.best(vector, |row| {
                usable(row) && self.entries[row].context == context
            }),
            Vectors::Hnsw { graphs, .. } => {
                let graph = graphs.get(context)?;
                graph
                    .index
                    .search(vector, 1, |node| {
                        let row = graph.rows[node as usize];
                        row != NO_ROW && usable(row as usize)
                    })
                    .first()
                    .map(|&(node, similarity)| (graph.rows[node as usize] as usize, similarity))
            }
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
/// A match by meaning that looks like the opposite of the query ("Turn the lights on" against
/// "Turn the lights off") is refused: see [`SemanticConfig::contradiction_guard`].
///
/// Lookups and stores from several threads at once share forward passes of the model: a
/// caller that finds the model idle runs it at once (a lone caller waits for nothing), and the
/// texts of callers that arrive meanwhile are embedded together in the next pass, up to
/// [`max_batch`](SemanticConfig::max_batch) texts. The index is searched under a short lock,
/// never while the model runs.
///
/// TTLs run on [`SemanticConfig::clock`]. What the cache does is counted in
/// [`stats`](SemanticCache::stats) and published through the `metrics` facade under the
/// `nfcs_semantic_*` names (the `METRIC_*` constants), labelled `cache` with
/// [`SemanticConfig::instance`]; the handles are resolved when the cache is built, so install
/// the recorder first.
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
    embedder: Coalescing<E>,
    config: SemanticConfig,
    state: Mutex<State<V>>,
    metrics: CacheMetrics,
}

impl<V: Clone + Send + Sync, E: Embedder> SemanticCache<V, E> {
    /// An empty cache. Its metric handles are resolved here, with the recorder in effect.
    ///
    /// # Errors
    /// [`SemanticError::InvalidThreshold`] or [`SemanticError::InvalidConfig`] (naming the
    /// field: `max_entries`, `max_batch`, `ttl`, `instance`).
    pub fn new(embedder: E, config: SemanticConfig) -> Result<SemanticCache<V, E>, SemanticError> {
        check_threshold(config.threshold)?;
        if config.max_entries == 0 {
            return Err(SemanticError::InvalidConfig {
                field: "max_entries",
                reason: "must be at least 1",
            });
        }
        if config.max_batch == 0 {
            return Err(SemanticError::InvalidConfig {
                field: "max_batch",
                reason: "must be at least 1",
            });
        }
        if config.ttl == Some(Duration::ZERO) {
            return Err(SemanticError::InvalidConfig {
                field: "ttl",
                reason: "must be longer than zero (None keeps entries for ever)",
            });
        }
        if config.instance.is_empty() {
            return Err(SemanticError::InvalidConfig {
                field: "instance",
                reason: "must not be empty (it is the `cache` metric label)",
            });
        }
        let dimension = embedder.dimension();
        let metrics = CacheMetrics::new(&config.instance);
        metrics.entries(0);
        Ok(SemanticCache {
            embedder: Coalescing::new(
                embedder,
                config.max_batch,
                EmbedMetrics::new(&config.instance),
            ),
            state: Mutex::new(State {
                vectors: Vectors::new(config.index, dimension),
                entries: Vec::new(),
                exact: HashMap::new(),
                uses: 0,
            }),
            config,
            metrics,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SemanticConfig {
        &self.config
    }

    /// The embedder.
    pub fn embedder(&self) -> &E {
        self.embedder.inner()
    }

    /// Entries stored (expired ones included until they are reclaimed).
    pub fn len(&self) -> usize {
        self.state.lock().entries.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `cache` label this cache's metrics carry ([`SemanticConfig::instance`]).
    pub fn instance(&self) -> &str {
        &self.config.instance
    }

    /// What the cache has done since it was built (hits, misses, stores, evictions, forward
    /// passes, ...) and what it holds now.
    pub fn stats(&self) -> SemanticStats {
        let mut stats = self.metrics.stats();
        stats.entries = self.len() as u64;
        stats.max_entries = self.config.max_entries as u64;
        self.embedder.metrics().fill(&mut stats);
        stats
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
            .map(|text| self.embedder.inner().has_content(text))
            .collect();
        let now = self.config.clock.monotonic();
        let expires = self.config.ttl.map(|ttl| now.saturating_add(ttl));
        let (mut expired, mut evicted) = (0, 0);
        let mut state = self.state.lock();
        for (((text, value), vector), semantic) in entries.iter().zip(&vectors).zip(semantic) {
            state.uses += 1;
            let used = state.uses;
            let key = (context.to_owned(), (*text).to_owned());
            if let Some(&row) = state.exact.get(&key) {
                let entry = &mut state.entries[row];
                entry.value = value.clone();
                entry.expires = expires;
                entry.used = used;
                continue;
            }
            let (newly_expired, newly_evicted) = state.make_room(self.config.max_entries, now);
            expired += newly_expired;
            evicted += newly_evicted;
            let (context, text) = key;
            let entry = Entry {
                text,
                context,
                value: value.clone(),
                semantic,
                expires,
                used,
                node: 0,
            };
            state.push(entry, vector);
        }
        self.metrics.entries(state.entries.len());
        drop(state);
        self.metrics.stores(entries.len() as u64);
        self.metrics.expirations(expired);
        self.metrics.evictions(evicted);
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
        // The lookup's latency is a real duration (Instant); the clock is for expiry only.
        let started = Instant::now();
        let results = self.lookup(texts, threshold, context);
        if results.is_ok() {
            self.metrics
                .lookup_seconds
                .record(started.elapsed().as_secs_f64());
        }
        results
    }

    fn lookup(
        &self,
        texts: &[&str],
        threshold: f32,
        context: &str,
    ) -> Result<Vec<Option<SemanticHit<V>>>, SemanticError> {
        let now = self.config.clock.monotonic();
        let mut results: Vec<Option<SemanticHit<V>>> = vec![None; texts.len()];
        // Exact texts first: no model needed.
        let mut pending = Vec::new();
        let mut expired = 0;
        {
            let mut state = self.state.lock();
            for (slot, text) in texts.iter().enumerate() {
                let key = (context.to_owned(), (*text).to_owned());
                match state.exact.get(&key).copied() {
                    Some(row) if state.expired(row, now) => {
                        state.remove_row(row);
                        expired += 1;
                        pending.push(slot);
                    }
                    Some(row) => results[slot] = Some(state.hit(row, 1.0)),
                    None => pending.push(slot),
                }
            }
            if expired > 0 {
                state.compact();
                self.metrics.entries(state.entries.len());
            }
        }
        self.metrics.expirations(expired);
        self.metrics
            .exact_hits((texts.len() - pending.len()) as u64);
        // Then by meaning, for the texts that have some.
        let without_content = pending.len();
        let pending: Vec<usize> = pending
            .into_iter()
            .filter(|&slot| self.embedder.inner().has_content(texts[slot]))
            .collect();
        self.metrics
            .misses((without_content - pending.len()) as u64);
        if pending.is_empty() {
            return Ok(results);
        }
        let queries: Vec<&str> = pending.iter().map(|&slot| texts[slot]).collect();
        let vectors = self.embedder.embed(&queries)?;
        let (mut similar, mut refused) = (0, 0);
        let mut state = self.state.lock();
        for (&slot, vector) in pending.iter().zip(&vectors) {
            let Some((row, similarity)) = state
                .best(vector, context, now)
                .filter(|&(_, similarity)| similarity >= threshold)
            else {
                continue;
            };
            if self.config.contradiction_guard && contradicts(texts[slot], &state.entries[row].text)
            {
                refused += 1;
                continue;
            }
            results[slot] = Some(state.hit(row, similarity));
            similar += 1;
        }
        drop(state);
        self.metrics.similar_hits(similar);
        self.metrics.contradictions(refused);
        self.metrics.misses(pending.len() as u64 - similar);
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
                state.compact();
                self.metrics.entries(state.entries.len());
                true
            }
            None => false,
        }
    }

    /// Removes every entry.
    pub fn clear(&self) {
        let mut state = self.state.lock();
        state.vectors = Vectors::new(self.config.index, self.embedder.inner().dimension());
        state.entries.clear();
        state.exact.clear();
        self.metrics.entries(0);
    }
}

fn check_threshold(threshold: f32) -> Result<(), SemanticError> {
    if (-1.0..=1.0).contains(&threshold) {
        Ok(())
    } else {
        Err(SemanticError::InvalidThreshold(threshold))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Texts `"<n>"` and `"<n>?"` embed to the same pseudo-random unit vector `n` (`"?"`
    /// queries miss the exact-text path and go through the index).
    struct Numbered;

    impl Numbered {
        fn vector(n: u64) -> Vec<f32> {
            let mut state = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let vector: Vec<f32> = (0..16)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 11) as f32 / (1_u64 << 53) as f32 - 0.5
                })
                .collect();
            let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            vector.into_iter().map(|x| x / norm).collect()
        }
    }

    impl Embedder for Numbered {
        fn dimension(&self) -> usize {
            16
        }
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, SemanticError> {
            texts
                .iter()
                .map(|text| {
                    let n = text.trim_end_matches('?').parse().map_err(|_| {
                        SemanticError::Tokenizer(format!("{text:?} is not a number"))
                    })?;
                    Ok(Numbered::vector(n))
                })
                .collect()
        }
    }

    fn hnsw() -> IndexKind {
        IndexKind::Hnsw(HnswConfig::default())
    }

    fn graph_nodes(cache: &SemanticCache<u64, Numbered>, context: &str) -> (usize, usize) {
        let state = cache.state.lock();
        match &state.vectors {
            Vectors::Hnsw { graphs, .. } => graphs
                .get(context)
                .map_or((0, 0), |graph| (graph.index.nodes(), graph.index.len())),
            Vectors::Flat(_) => panic!("not an HNSW cache"),
        }
    }

    #[test]
    fn the_hnsw_cache_finds_what_the_flat_cache_finds() {
        let config = SemanticConfig::default().with_threshold(0.99);
        let flat = SemanticCache::new(Numbered, config.clone()).unwrap();
        let graph = SemanticCache::new(Numbered, config.with_index(hnsw())).unwrap();
        for n in 0..2_000_u64 {
            let context = if n % 2 == 0 { "even" } else { "odd" };
            flat.store(&n.to_string(), n, context).unwrap();
            graph.store(&n.to_string(), n, context).unwrap();
        }
        let mut agree = 0;
        for n in (0..2_000_u64).step_by(7) {
            let context = if n % 2 == 0 { "even" } else { "odd" };
            let query = format!("{n}?");
            let exact = flat.find(&query, context).unwrap().map(|hit| hit.value);
            assert_eq!(exact, Some(n));
            let approximate = graph.find(&query, context).unwrap().map(|hit| hit.value);
            agree += usize::from(approximate == exact);
            // The other context is never searched.
            let other = if context == "even" { "odd" } else { "even" };
            assert!(graph.find(&query, other).unwrap().is_none());
        }
        assert!(agree >= 280, "{agree} of 286 lookups agree");
    }

    #[test]
    fn eviction_keeps_the_graphs_consistent_and_compacts_them() {
        let config = SemanticConfig::default()
            .with_threshold(0.99)
            .with_max_entries(300)
            .with_index(hnsw());
        let cache = SemanticCache::new(Numbered, config).unwrap();
        for n in 0..3_000_u64 {
            cache.store(&n.to_string(), n, "tenant").unwrap();
        }
        assert_eq!(cache.len(), 300);
        let (nodes, live) = graph_nodes(&cache, "tenant");
        assert_eq!(live, 300);
        assert!(nodes < 2 * live + 64 + 1, "{nodes} nodes for {live} live");
        // The survivors are the newest; each is found by meaning with its own value.
        for n in 2_700..3_000_u64 {
            let hit = cache.find(&format!("{n}?"), "tenant").unwrap();
            assert_eq!(hit.map(|hit| hit.value), Some(n), "entry {n}");
        }
        for n in [0_u64, 1_000, 2_600] {
            assert!(cache.find(&format!("{n}?"), "tenant").unwrap().is_none());
        }
        // Removing every entry drops the context's graph.
        for n in 2_700..3_000_u64 {
            assert!(cache.remove(&n.to_string(), "tenant"));
        }
        assert_eq!(graph_nodes(&cache, "tenant"), (0, 0));
        assert!(cache.is_empty());
    }

    #[test]
    fn replacing_and_clearing_work_with_either_index() {
        for index in [IndexKind::Flat, hnsw()] {
            let config = SemanticConfig::default()
                .with_threshold(0.99)
                .with_index(index);
            let cache = SemanticCache::new(Numbered, config).unwrap();
            cache.store("5", 1, "a").unwrap();
            cache.store("5", 2, "a").unwrap();
            assert_eq!(cache.len(), 1);
            assert_eq!(cache.find("5?", "a").unwrap().map(|hit| hit.value), Some(2));
            cache.clear();
            assert!(cache.find("5?", "a").unwrap().is_none());
            cache.store("6", 3, "a").unwrap();
            assert_eq!(cache.find("6?", "a").unwrap().map(|hit| hit.value), Some(3));
        }
    }

    #[test]
    fn a_zero_batch_limit_is_refused() {
        let config = SemanticConfig::default().with_max_batch(0);
        assert!(matches!(
            SemanticCache::<u64, _>::new(Numbered, config),
            Err(SemanticError::InvalidConfig {
                field: "max_batch",
                ..
            })
        ));
    }
}
