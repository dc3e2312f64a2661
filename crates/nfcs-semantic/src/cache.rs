//! The semantic cache: values found by the meaning of the text they were stored under.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use nfcs_cache_core::Clock;
use nfcs_cache_core::telemetry::DEFAULT_INSTANCE;
use parking_lot::{Mutex, MutexGuard};

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
    /// the live ones; then the context's graph is rebuilt beside the live one, outside the
    /// cache's lock, by the call whose removal crossed that line (a store that evicted, a
    /// lookup that found an entry expired, a remove), before it returns: lookups and stores
    /// from other threads go on meanwhile, and what they change is carried into the new graph.
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
    /// Entries kept. A store of a new text into a full cache first drops every expired entry,
    /// then the least recently used until there is room. Default 10,000.
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
    /// Unique, so it is the entry's key in [`State::recency`].
    used: u64,
    /// The use counter's value when the entry was last stored: with `expires`, its key in
    /// [`State::expiry`] (unique, unlike `expires` alone).
    stored: u64,
    /// Its node in its context's graph ([`Vectors::Hnsw`] and `semantic` only).
    node: u32,
}

/// A node of a graph that no longer has an entry.
const NO_ROW: u32 = u32::MAX;

/// Nodes a rebuild copies out of the live graph per turn of the lock: 1,024 vectors of 384
/// components are 1.5 MiB, copied in well under a millisecond.
const REBUILD_CHUNK: usize = if cfg!(test) { 64 } else { 1024 };

/// Turns of copying nodes added to the live graph while the new one was being built, after the
/// first pass over its nodes, before the rest is copied under the lock regardless (so that a
/// steady stream of stores cannot keep a rebuild from finishing).
const REBUILD_CATCH_UP_TURNS: usize = 4;

/// Nodes added meanwhile that a rebuild inserts under the lock, while swapping the new graph
/// in, rather than in another turn outside it.
const REBUILD_FINISH_UNDER_LOCK: usize = 16;

/// One context's approximate index.
struct Graph {
    index: HnswIndex,
    /// Node to row of `State::entries` (`NO_ROW` once removed).
    rows: Vec<u32>,
    /// Unique among the graphs of this cache: a rebuild swaps its result in only if the graph
    /// it copied is still the context's (not cleared, or dropped when emptied, meanwhile).
    id: u64,
    /// Whether a rebuild of this graph is under way (there is one at a time).
    rebuilding: bool,
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
    /// Rows by last use (`Entry::used`): the first is the least recently used. Eviction takes
    /// it in `log n` instead of scanning every entry.
    recency: BTreeMap<u64, usize>,
    /// Rows of the entries that expire, by `(Entry::expires, Entry::stored)`: the first
    /// expires first, so reclaiming the expired ones reads only those.
    expiry: BTreeMap<(Duration, u64), usize>,
    /// Counts uses, to order entries by recency: a counter rather than a time, so that two
    /// uses never tie and the order does not depend on how fast the machine is.
    uses: u64,
    /// The next [`Graph::id`].
    graphs_made: u64,
    /// Graphs whose removed nodes came to outnumber the live ones, by context and id: the
    /// caller that made them so rebuilds them once it has let go of the lock
    /// ([`SemanticCache::release`]).
    to_rebuild: Vec<(String, u64)>,
}

impl<V: Clone> State<V> {
    /// Marks `row` used now and returns it as a hit.
    fn hit(&mut self, row: usize, similarity: f32) -> SemanticHit<V> {
        self.uses += 1;
        let used = self.uses;
        self.touch(row, used);
        let entry = &self.entries[row];
        SemanticHit {
            value: entry.value.clone(),
            similarity,
            text: entry.text.clone(),
        }
    }
}

impl<V> State<V> {
    fn new(kind: IndexKind, dimension: usize) -> State<V> {
        State {
            vectors: Vectors::new(kind, dimension),
            entries: Vec::new(),
            exact: HashMap::new(),
            recency: BTreeMap::new(),
            expiry: BTreeMap::new(),
            uses: 0,
            graphs_made: 0,
            to_rebuild: Vec::new(),
        }
    }

    /// Sets `row`'s last use to `used`, moving it in the recency order.
    fn touch(&mut self, row: usize, used: u64) {
        let entry = &mut self.entries[row];
        self.recency.remove(&entry.used);
        entry.used = used;
        self.recency.insert(used, row);
    }

    /// Stores `row` again at use `used` (its value already replaced): most recently used, and
    /// expiring at `expires`.
    fn restore(&mut self, row: usize, used: u64, expires: Option<Duration>) {
        self.touch(row, used);
        let entry = &mut self.entries[row];
        if let Some(old) = entry.expires {
            self.expiry.remove(&(old, entry.stored));
        }
        entry.expires = expires;
        entry.stored = used;
        if let Some(expires) = expires {
            self.expiry.insert((expires, used), row);
        }
    }

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
                    let graph = graphs.entry(entry.context.clone()).or_insert_with(|| {
                        self.graphs_made += 1;
                        Graph {
                            index: HnswIndex::new(*dimension, *config),
                            rows: Vec::new(),
                            id: self.graphs_made,
                            rebuilding: false,
                        }
                    });
                    entry.node = graph.index.insert(vector);
                    graph.rows.push(row as u32);
                }
            }
        }
        self.exact
            .insert((entry.context.clone(), entry.text.clone()), row);
        self.recency.insert(entry.used, row);
        if let Some(expires) = entry.expires {
            self.expiry.insert((expires, entry.stored), row);
        }
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
                    } else if !graph.rebuilding && needs_rebuild(&graph.index) {
                        graph.rebuilding = true;
                        self.to_rebuild.push((entry.context.clone(), graph.id));
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
        self.recency.remove(&entry.used);
        if let Some(expires) = entry.expires {
            self.expiry.remove(&(expires, entry.stored));
        }
        self.exact.remove(&(entry.context, entry.text));
        if moved {
            let moved = &self.entries[row];
            let key = (moved.context.clone(), moved.text.clone());
            self.exact.insert(key, row);
            self.recency.insert(moved.used, row);
            if let Some(expires) = moved.expires {
                self.expiry.insert((expires, moved.stored), row);
            }
        }
    }

    /// The graph of `context` if it is still the one numbered `id`.
    fn graph(&self, context: &str, id: u64) -> Option<&Graph> {
        match &self.vectors {
            Vectors::Hnsw { graphs, .. } => graphs.get(context).filter(|graph| graph.id == id),
            Vectors::Flat(_) => None,
        }
    }

    /// Swaps `fresh` in as the graph of `context` numbered `id`, if that is still there.
    /// `origin` gives each of `fresh`'s nodes the node of the live graph it was copied from:
    /// a node whose entry was removed since it was copied is marked removed in `fresh`, and
    /// every other entry moves to its new node. Every node the live graph gained since the
    /// copy began must already be in `fresh` (see [`SemanticCache::rebuild`]).
    fn swap_in(&mut self, context: &str, id: u64, mut fresh: HnswIndex, origin: &[u32]) {
        let Vectors::Hnsw { graphs, .. } = &mut self.vectors else {
            return;
        };
        let Some(graph) = graphs.get_mut(context).filter(|graph| graph.id == id) else {
            return;
        };
        let mut rows = Vec::with_capacity(origin.len());
        for (node, &copied_from) in origin.iter().enumerate() {
            let row = graph.rows[copied_from as usize];
            rows.push(row);
            if row == NO_ROW {
                fresh.remove(node as u32);
            } else {
                self.entries[row as usize].node = node as u32;
            }
        }
        graph.index = fresh;
        graph.rows = rows;
        graph.rebuilding = false;
    }

    fn expired(&self, row: usize, now: Duration) -> bool {
        self.entries[row]
            .expires
            .is_some_and(|expires| expires <= now)
    }

    /// Makes room for one entry: every expired one first, then the least recently used until
    /// there is room. Returns how many entries expired and how many were evicted. Each removal
    /// costs `log n` (the orders are kept in [`State::expiry`] and [`State::recency`]).
    fn make_room(&mut self, max_entries: usize, now: Duration) -> (u64, u64) {
        if self.entries.len() < max_entries {
            return (0, 0);
        }
        let (mut expired, mut evicted) = (0, 0);
        while let Some((&(expires, _), &row)) = self.expiry.first_key_value() {
            if expires > now {
                break;
            }
            self.remove_row(row);
            expired += 1;
        }
        while self.entries.len() >= max_entries {
            let Some((_, &oldest)) = self.recency.first_key_value() else {
                break;
            };
            self.remove_row(oldest);
            evicted += 1;
        }
        (expired, evicted)
    }
}

/// Whether the removed nodes of `index` outnumber its live ones (plus 64): then searches wade
/// through the dead, and the graph is rebuilt.
fn needs_rebuild(index: &HnswIndex) -> bool {
    index.nodes() >= 2 * index.len() + 64
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
/// never while the model runs, and an HNSW graph is rebuilt outside it (see
/// [`IndexKind::Hnsw`]). A store into a full cache evicts in `log n` steps: the expired entries
/// first (all of them), then the least recently used until there is room.
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
    /// Called by a rebuild, outside the lock, after each chunk of nodes it copied and inserted
    /// (with the chunk's number, from 1), so that a test can hold it there.
    #[cfg(test)]
    rebuild_pause: Mutex<Option<RebuildPause>>,
}

/// What a test runs between two chunks of a rebuild (see `SemanticCache::rebuild_pause`).
#[cfg(test)]
type RebuildPause = std::sync::Arc<dyn Fn(usize) + Send + Sync>;

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
            state: Mutex::new(State::new(config.index, dimension)),
            config,
            metrics,
            #[cfg(test)]
            rebuild_pause: Mutex::new(None),
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
                state.entries[row].value = value.clone();
                state.restore(row, used, expires);
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
                stored: used,
                node: 0,
            };
            state.push(entry, vector);
        }
        self.metrics.entries(state.entries.len());
        self.release(state);
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
                self.metrics.entries(state.entries.len());
            }
            self.release(state);
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
                self.metrics.entries(state.entries.len());
                self.release(state);
                true
            }
            None => false,
        }
    }

    /// Removes every entry.
    pub fn clear(&self) {
        let mut state = self.state.lock();
        // A rebuild under way finds its graph gone and drops what it built.
        let graphs_made = state.graphs_made;
        *state = State::new(self.config.index, self.embedder.inner().dimension());
        state.graphs_made = graphs_made;
        self.metrics.entries(0);
    }

    /// Lets go of the lock, then rebuilds the graphs that the locked work left with more
    /// removed nodes than live ones.
    fn release(&self, mut state: MutexGuard<'_, State<V>>) {
        let to_rebuild = std::mem::take(&mut state.to_rebuild);
        drop(state);
        for (context, id) in to_rebuild {
            self.rebuild(&context, id);
        }
    }

    /// Rebuilds the graph of `context` numbered `id` beside the live one, which searches and
    /// stores keep using meanwhile, and swaps it in.
    ///
    /// The live graph only grows (a removal marks a node; vectors never change), so its nodes
    /// are copied out in chunks of [`REBUILD_CHUNK`], each under a short turn of the lock, and
    /// inserted into the new graph outside it. The nodes added meanwhile are copied the same
    /// way, for up to [`REBUILD_CATCH_UP_TURNS`] more turns, until at most
    /// [`REBUILD_FINISH_UNDER_LOCK`] are left (or the turns run out); those are inserted under
    /// the lock, and the swap (one pass over the nodes) marks removed in the new graph every
    /// node whose entry was removed after it was copied. If the graph was cleared or dropped
    /// meanwhile, the new one is dropped.
    fn rebuild(&self, context: &str, id: u64) {
        let Some((dimension, config)) = (match &self.state.lock().vectors {
            Vectors::Hnsw {
                dimension, config, ..
            } => Some((*dimension, *config)),
            Vectors::Flat(_) => None,
        }) else {
            return;
        };
        // Clears `rebuilding` if the build panics, so that a later removal can try again.
        struct Unfinished<'a, V> {
            state: &'a Mutex<State<V>>,
            context: &'a str,
            id: u64,
            finished: bool,
        }
        impl<V> Drop for Unfinished<'_, V> {
            fn drop(&mut self) {
                if !self.finished
                    && let Vectors::Hnsw { graphs, .. } = &mut self.state.lock().vectors
                    && let Some(graph) = graphs.get_mut(self.context)
                    && graph.id == self.id
                {
                    graph.rebuilding = false;
                }
            }
        }
        // Declared before the guards of the lock, so dropped after them.
        let mut unfinished = Unfinished {
            state: &self.state,
            context,
            id,
            finished: false,
        };
        let mut fresh = HnswIndex::new(dimension, config);
        // Per node of `fresh`, the node of the live graph it was copied from.
        let mut origin: Vec<u32> = Vec::new();
        let mut copied = 0_usize;
        let mut turns_left = None;
        let mut chunk: Vec<f32> = Vec::with_capacity(REBUILD_CHUNK * dimension);
        let mut chunk_nodes: Vec<u32> = Vec::with_capacity(REBUILD_CHUNK);
        for chunk_number in 1.. {
            {
                let mut state = self.state.lock();
                let Some(graph) = state.graph(context, id) else {
                    return;
                };
                let nodes = graph.index.nodes();
                let turns = *turns_left
                    .get_or_insert(nodes.div_ceil(REBUILD_CHUNK) + REBUILD_CATCH_UP_TURNS);
                if nodes - copied <= REBUILD_FINISH_UNDER_LOCK || chunk_number > turns {
                    for node in copied..nodes {
                        if graph.rows[node] != NO_ROW
                            && let Some(vector) = graph.index.get(node as u32)
                        {
                            fresh.insert(vector);
                            origin.push(node as u32);
                        }
                    }
                    state.swap_in(context, id, fresh, &origin);
                    unfinished.finished = true;
                    return;
                }
                let end = nodes.min(copied + REBUILD_CHUNK);
                for node in copied..end {
                    if graph.rows[node] != NO_ROW
                        && let Some(vector) = graph.index.get(node as u32)
                    {
                        chunk.extend_from_slice(vector);
                        chunk_nodes.push(node as u32);
                    }
                }
                copied = end;
            }
            for (vector, &node) in chunk.chunks_exact(dimension).zip(&chunk_nodes) {
                fresh.insert(vector);
                origin.push(node);
            }
            chunk.clear();
            chunk_nodes.clear();
            #[cfg(test)]
            {
                let pause = self.rebuild_pause.lock().clone();
                if let Some(pause) = pause {
                    pause(chunk_number);
                }
            }
        }
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
    use std::sync::{Arc, Barrier};

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

    /// The texts held now, sorted.
    fn held(cache: &SemanticCache<u64, Numbered>) -> Vec<String> {
        let state = cache.state.lock();
        let mut texts: Vec<String> = state
            .entries
            .iter()
            .map(|entry| format!("{}/{}", entry.context, entry.text))
            .collect();
        texts.sort();
        texts
    }

    #[test]
    fn eviction_takes_every_expired_entry_then_the_least_recently_used() {
        for index in [IndexKind::Flat, hnsw()] {
            let manual = nfcs_cache_core::ManualClock::new();
            let config = SemanticConfig::default()
                .with_threshold(0.99)
                .with_max_entries(4)
                .with_ttl(Duration::from_secs(10))
                .with_clock(manual.clock())
                .with_index(index);
            let cache = SemanticCache::new(Numbered, config).unwrap();
            cache.store("1", 1, "a").unwrap();
            cache.store("2", 2, "b").unwrap();
            manual.advance(Duration::from_secs(5));
            cache.store("3", 3, "a").unwrap();
            cache.store("4", 4, "a").unwrap();
            // A hit by meaning and a hit by exact text make "1" and "2" the most recent.
            assert_eq!(cache.find("1?", "a").unwrap().map(|hit| hit.value), Some(1));
            assert_eq!(cache.find("2", "b").unwrap().map(|hit| hit.value), Some(2));
            // Full: the least recently used, "3", goes.
            cache.store("5", 5, "a").unwrap();
            assert_eq!(held(&cache), ["a/1", "a/4", "a/5", "b/2"]);
            assert_eq!((cache.stats().evictions, cache.stats().expirations), (1, 0));
            // Storing a held text again takes no room and makes it the most recent, with a
            // fresh TTL: now "4" is the least recently used.
            cache.store("1", 10, "a").unwrap();
            cache.store("6", 6, "a").unwrap();
            assert_eq!(held(&cache), ["a/1", "a/5", "a/6", "b/2"]);
            // At 10 s "2" (stored at 0 s) has expired; "1" was stored again at 5 s. The next
            // store takes the expired entry only, although a hit renewed its recency.
            manual.advance(Duration::from_secs(5));
            cache.store("7", 7, "a").unwrap();
            assert_eq!(held(&cache), ["a/1", "a/5", "a/6", "a/7"]);
            assert_eq!((cache.stats().evictions, cache.stats().expirations), (2, 1));
            // At 15 s "1", "5" and "6" have expired: all three go, though one would make room.
            manual.advance(Duration::from_secs(5));
            cache.store("8", 8, "a").unwrap();
            assert_eq!(held(&cache), ["a/7", "a/8"]);
            assert_eq!((cache.stats().evictions, cache.stats().expirations), (2, 4));
            // Below the limit nothing is reclaimed, even expired.
            manual.advance(Duration::from_secs(20));
            cache.store("9", 9, "a").unwrap();
            assert_eq!(held(&cache), ["a/7", "a/8", "a/9"]);
        }
    }

    /// The eviction rule as a plain list: the order the cache keeps (and has kept since its
    /// first version), against which it is compared on a long pseudo-random run.
    #[derive(Default)]
    struct Reference {
        /// `(context/text, last use, expiry)`.
        entries: Vec<(String, u64, Option<Duration>)>,
        uses: u64,
    }

    impl Reference {
        fn store(&mut self, key: String, now: Duration, ttl: Duration, max_entries: usize) {
            self.uses += 1;
            let expires = Some(now + ttl);
            if let Some(entry) = self.entries.iter_mut().find(|entry| entry.0 == key) {
                entry.1 = self.uses;
                entry.2 = expires;
                return;
            }
            if self.entries.len() >= max_entries {
                self.entries
                    .retain(|entry| entry.2.is_none_or(|expires| expires > now));
                while self.entries.len() >= max_entries {
                    let oldest = (0..self.entries.len())
                        .min_by_key(|&index| self.entries[index].1)
                        .unwrap();
                    self.entries.remove(oldest);
                }
            }
            self.entries.push((key, self.uses, expires));
        }

        /// An exact-text lookup: a hit renews the entry's recency; an expired entry goes.
        fn find(&mut self, key: &str, now: Duration) -> bool {
            let Some(index) = self.entries.iter().position(|entry| entry.0 == key) else {
                return false;
            };
            if self.entries[index].2.is_some_and(|expires| expires <= now) {
                self.entries.remove(index);
                return false;
            }
            self.uses += 1;
            self.entries[index].1 = self.uses;
            true
        }

        fn held(&self) -> Vec<String> {
            let mut keys: Vec<String> = self.entries.iter().map(|entry| entry.0.clone()).collect();
            keys.sort();
            keys
        }
    }

    #[test]
    fn eviction_follows_the_reference_order_over_a_long_run() {
        let (max_entries, ttl) = (40, Duration::from_secs(50));
        for index in [IndexKind::Flat, hnsw()] {
            let manual = nfcs_cache_core::ManualClock::new();
            let config = SemanticConfig::default()
                .with_max_entries(max_entries)
                .with_ttl(ttl)
                .with_clock(manual.clock())
                .with_index(index);
            let cache = SemanticCache::new(Numbered, config).unwrap();
            let mut reference = Reference::default();
            let mut random = 0x2545_f491_4f6c_dd1d_u64;
            let mut next = move |below: u64| {
                random ^= random << 13;
                random ^= random >> 7;
                random ^= random << 17;
                random % below
            };
            for step in 0..6_000 {
                let n = next(120);
                let context = if n % 3 == 0 { "b" } else { "a" };
                let key = format!("{context}/{n}");
                match next(10) {
                    0..=4 => {
                        cache.store(&n.to_string(), n, context).unwrap();
                        reference.store(key, manual.clock().monotonic(), ttl, max_entries);
                    }
                    5..=7 => {
                        let hit = cache.find(&n.to_string(), context).unwrap().is_some();
                        assert_eq!(
                            hit,
                            reference.find(&key, manual.clock().monotonic()),
                            "step {step}"
                        );
                    }
                    8 => {
                        let removed = cache.remove(&n.to_string(), context);
                        let position = reference.entries.iter().position(|entry| entry.0 == key);
                        assert_eq!(removed, position.is_some(), "step {step}");
                        if let Some(position) = position {
                            reference.entries.remove(position);
                        }
                    }
                    _ => manual.advance(Duration::from_secs(next(4))),
                }
                assert_eq!(held(&cache), reference.held(), "step {step}");
            }
        }
    }

    /// An HNSW cache of entries `0..300` in context "tenant", with removals up to the one that
    /// makes the graph's removed nodes outnumber its live ones: the removal of "227" will start
    /// a rebuild of 118 live entries (the multiples of 5, and the others from 228 to 299).
    fn cache_one_removal_before_a_rebuild() -> SemanticCache<u64, Numbered> {
        let config = SemanticConfig::default()
            .with_threshold(0.99)
            .with_index(hnsw());
        let cache = SemanticCache::new(Numbered, config).unwrap();
        for n in 0..300_u64 {
            cache.store(&n.to_string(), n, "tenant").unwrap();
        }
        for n in (0..227_u64).filter(|n| n % 5 != 0) {
            assert!(cache.remove(&n.to_string(), "tenant"));
        }
        assert_eq!(
            graph_nodes(&cache, "tenant"),
            (300, 119),
            "one removal short"
        );
        cache
    }

    /// Holds a rebuild after each of `chunks` until the test lets it go: the test's first wait
    /// on the barrier returns once the rebuild is held, its second lets it go on.
    fn pause_after_chunks(
        cache: &SemanticCache<u64, Numbered>,
        chunks: &'static [usize],
    ) -> Arc<Barrier> {
        let barrier = Arc::new(Barrier::new(2));
        let held = Arc::clone(&barrier);
        *cache.rebuild_pause.lock() = Some(Arc::new(move |chunk| {
            if chunks.contains(&chunk) {
                held.wait(); // paused
                held.wait(); // resumed
            }
        }));
        barrier
    }

    #[test]
    fn lookups_stores_and_removals_go_on_while_a_graph_is_rebuilt() {
        let cache = cache_one_removal_before_a_rebuild();
        // Chunks of 64 nodes: the fifth is the last of the nodes there are by then.
        let barrier = pause_after_chunks(&cache, &[1, 5]);
        std::thread::scope(|scope| {
            let rebuilding = scope.spawn(|| assert!(cache.remove("227", "tenant")));
            barrier.wait();
            // The rebuild has copied nodes 0 to 63 (13 live: "0", "5", ... "60") and stands
            // between two chunks, without the lock.
            assert!(
                !cache
                    .state
                    .lock()
                    .to_rebuild
                    .iter()
                    .any(|(context, _)| context == "tenant")
            );
            assert!(
                !cache.state.is_locked(),
                "the rebuild does not hold the lock"
            );
            assert_eq!(
                cache.find("250?", "tenant").unwrap().map(|hit| hit.value),
                Some(250)
            );
            cache.store("1000", 1000, "tenant").unwrap();
            assert_eq!(
                cache.find("1000?", "tenant").unwrap().map(|hit| hit.value),
                Some(1000)
            );
            assert!(
                cache.remove("5", "tenant"),
                "copied already, removed meanwhile"
            );
            assert!(
                cache.remove("295", "tenant"),
                "not copied yet, removed meanwhile"
            );
            assert_eq!(
                graph_nodes(&cache, "tenant"),
                (301, 117),
                "still the old graph"
            );
            barrier.wait();
            // Every node there is has been copied ("1000" too); what comes now is inserted
            // under the lock when the new graph is swapped in.
            barrier.wait();
            assert!(!cache.state.is_locked());
            cache.store("1001", 1001, "tenant").unwrap();
            assert!(
                cache.remove("250", "tenant"),
                "copied already, removed meanwhile"
            );
            barrier.wait();
            rebuilding.join().unwrap();
        });
        // The new graph holds the 118 entries live when the rebuild started, less "295" (gone
        // before it was copied), plus "1000" and "1001", with "5" and "250" marked removed.
        assert_eq!(graph_nodes(&cache, "tenant"), (119, 117));
        let live: Vec<u64> = (0..300_u64)
            .filter(|&n| (n % 5 == 0 || n > 227) && ![5, 250, 295].contains(&n))
            .chain([1000, 1001])
            .collect();
        assert_eq!(live.len(), 117);
        for n in live {
            let hit = cache.find(&format!("{n}?"), "tenant").unwrap();
            assert_eq!(hit.map(|hit| hit.value), Some(n), "entry {n}");
        }
        for n in [5_u64, 227, 250, 295, 1, 226] {
            assert!(
                cache.find(&format!("{n}?"), "tenant").unwrap().is_none(),
                "entry {n}"
            );
        }
        // Every entry points at its node of the new graph.
        let state = cache.state.lock();
        let Vectors::Hnsw { graphs, .. } = &state.vectors else {
            unreachable!()
        };
        let graph = &graphs["tenant"];
        assert!(!graph.rebuilding);
        for (row, entry) in state.entries.iter().enumerate() {
            assert_eq!(
                graph.rows[entry.node as usize] as usize, row,
                "{}",
                entry.text
            );
            assert_eq!(
                graph.index.get(entry.node),
                Some(&Numbered::vector(entry.text.parse().unwrap())[..])
            );
        }
    }

    #[test]
    fn a_rebuild_whose_graph_was_cleared_meanwhile_is_dropped() {
        let cache = cache_one_removal_before_a_rebuild();
        let barrier = pause_after_chunks(&cache, &[1]);
        std::thread::scope(|scope| {
            let rebuilding = scope.spawn(|| assert!(cache.remove("227", "tenant")));
            barrier.wait();
            cache.clear();
            cache.store("7", 7, "tenant").unwrap();
            barrier.wait();
            rebuilding.join().unwrap();
        });
        assert_eq!(
            graph_nodes(&cache, "tenant"),
            (1, 1),
            "the new graph, not the rebuilt one"
        );
        assert_eq!(
            cache.find("7?", "tenant").unwrap().map(|hit| hit.value),
            Some(7)
        );
        assert!(cache.find("250?", "tenant").unwrap().is_none());
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
