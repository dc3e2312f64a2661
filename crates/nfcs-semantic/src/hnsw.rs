//! Approximate nearest-neighbour search: a hierarchical navigable small world graph (Malkov &
//! Yashunin, 2018) over unit vectors, by dot product.

use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// Settings of an [`HnswIndex`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HnswConfig {
    /// Links per node on the upper layers (twice as many on layer 0). Default 16.
    pub m: usize,
    /// Candidates kept while inserting. Default 100.
    pub ef_construction: usize,
    /// Candidates kept while searching (at least `k`). Default 64.
    pub ef_search: usize,
    /// Candidates kept while descending the layers above 0 (at most `ef_search`). Default 32:
    /// a single greedy walker (1) settles in the wrong cluster on clustered data (recall 0.88
    /// at 100,000 entries in the benchmark), a full beam of 64 costs twice the time for no
    /// recall gained.
    pub ef_upper: usize,
    /// Seed of the level generator (the same seed and insertions give the same graph).
    pub seed: u64,
}

impl Default for HnswConfig {
    fn default() -> HnswConfig {
        HnswConfig {
            m: 16,
            ef_construction: 100,
            ef_search: 64,
            ef_upper: 32,
            seed: 0x5eed,
        }
    }
}

/// A similarity with a total order, for the heaps.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scored {
    score: f32,
    id: u32,
}

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Scored) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    fn cmp(&self, other: &Scored) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then(self.id.cmp(&other.id))
    }
}

/// The nodes a search has seen: a stamp per node, so that starting a new search is one
/// increment instead of clearing (or hashing into) a set. One per thread, reused.
#[derive(Default)]
struct Visited {
    stamps: Vec<u32>,
    current: u32,
}

impl Visited {
    /// Forgets every node, for an index of `nodes` nodes.
    fn start(&mut self, nodes: usize) {
        if self.stamps.len() < nodes {
            self.stamps.resize(nodes, 0);
        }
        self.current = self.current.wrapping_add(1);
        if self.current == 0 {
            self.stamps.fill(0);
            self.current = 1;
        }
    }

    /// Marks `id` seen; whether it was new.
    fn insert(&mut self, id: u32) -> bool {
        match self.stamps.get_mut(id as usize) {
            Some(stamp) if *stamp != self.current => {
                *stamp = self.current;
                true
            }
            Some(_) => false,
            None => true,
        }
    }
}

thread_local! {
    static VISITED: RefCell<Visited> = RefCell::new(Visited::default());
}

/// An approximate index: inserts and searches in about `log n` steps instead of `n`, at a
/// recall below 1 that `ef_search` trades against speed (the benchmarks measure it). Nodes are
/// numbered in insertion order; [`remove`](HnswIndex::remove) marks a node deleted (it still
/// routes searches but is never returned).
///
/// ```
/// use nfcs_semantic::{HnswConfig, HnswIndex};
///
/// let mut index = HnswIndex::new(2, HnswConfig::default());
/// let a = index.insert(&[1.0, 0.0]);
/// let b = index.insert(&[0.0, 1.0]);
/// assert_eq!(index.search(&[0.6, 0.8], 1, |_| true)[0].0, b);
/// index.remove(b);
/// assert_eq!(index.search(&[0.6, 0.8], 1, |_| true)[0].0, a);
/// ```
#[derive(Debug, Clone)]
pub struct HnswIndex {
    dimension: usize,
    config: HnswConfig,
    vectors: Vec<f32>,
    /// Per node, per layer from 0 to its level: its neighbours.
    links: Vec<Vec<Vec<u32>>>,
    deleted: Vec<bool>,
    live: usize,
    entry: Option<u32>,
    rng: u64,
}

impl HnswIndex {
    /// An empty index of vectors of `dimension` components.
    pub fn new(dimension: usize, config: HnswConfig) -> HnswIndex {
        let config = HnswConfig {
            m: config.m.max(2),
            ef_construction: config.ef_construction.max(1),
            ef_search: config.ef_search.max(1),
            ef_upper: config.ef_upper.max(1),
            ..config
        };
        HnswIndex {
            dimension,
            config,
            vectors: Vec::new(),
            links: Vec::new(),
            deleted: Vec::new(),
            live: 0,
            entry: None,
            rng: config.seed,
        }
    }

    /// Nodes not removed.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no node is live.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Nodes ever inserted (removed ones included): the next node's number.
    pub fn nodes(&self) -> usize {
        self.links.len()
    }

    fn vector(&self, id: u32) -> &[f32] {
        let start = id as usize * self.dimension;
        &self.vectors[start..start + self.dimension]
    }

    /// The vector of node `id` (removed nodes keep theirs), or `None` past the last node.
    pub fn get(&self, id: u32) -> Option<&[f32]> {
        let start = (id as usize).checked_mul(self.dimension)?;
        self.vectors.get(start..start + self.dimension)
    }

    /// The configuration (with `m`, `ef_construction` and `ef_search` raised to their minimums).
    pub fn config(&self) -> &HnswConfig {
        &self.config
    }

    fn similarity(&self, query: &[f32], id: u32) -> f32 {
        crate::index::dot(query, self.vector(id))
    }

    /// A level drawn from the geometric distribution with ratio `1/m` (splitmix64).
    fn random_level(&mut self) -> usize {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let uniform = ((z >> 11) as f64 + 0.5) / (1_u64 << 53) as f64;
        let level = -uniform.ln() / (self.config.m as f64).ln();
        (level as usize).min(16)
    }

    /// Inserts `vector` (of the index's dimension; extra components are ignored, missing ones
    /// are zero) and returns its node number.
    pub fn insert(&mut self, vector: &[f32]) -> u32 {
        let id = u32::try_from(self.links.len()).unwrap_or(u32::MAX);
        let take = vector.len().min(self.dimension);
        self.vectors.extend_from_slice(&vector[..take]);
        self.vectors.resize((id as usize + 1) * self.dimension, 0.0);
        let level = self.random_level();
        self.links.push(vec![Vec::new(); level + 1]);
        self.deleted.push(false);
        self.live += 1;
        let Some(entry) = self.entry else {
            self.entry = Some(id);
            return id;
        };
        let query = self.vector(id).to_vec();
        let top = self.links[entry as usize].len() - 1;
        let mut nearest = Scored {
            score: self.similarity(&query, entry),
            id: entry,
        };
        for layer in (level + 1..=top).rev() {
            nearest = self.greedy(&query, nearest, layer);
        }
        let mut entries = vec![nearest];
        for layer in (0..=level.min(top)).rev() {
            let found = self.search_layer(&query, &entries, self.config.ef_construction, layer);
            let limit = if layer == 0 {
                2 * self.config.m
            } else {
                self.config.m
            };
            let chosen: Vec<u32> = found
                .iter()
                .take(self.config.m)
                .map(|scored| scored.id)
                .collect();
            self.links[id as usize][layer] = chosen.clone();
            for neighbour in chosen {
                self.links[neighbour as usize][layer].push(id);
                if self.links[neighbour as usize][layer].len() > limit {
                    self.shrink(neighbour, layer, limit);
                }
            }
            entries = found;
        }
        if level > top {
            self.entry = Some(id);
        }
        id
    }

    /// Up to `limit` neighbours out of `candidates` (best first), by the paper's heuristic: a
    /// candidate is taken only if it is more similar to the new node than to every neighbour
    /// already taken, so links spread out in all directions instead of piling into the nearest
    /// cluster (which would cut clusters off from one another); the slots left are filled with
    /// the best of the rest.
    fn select(&self, candidates: &[Scored], limit: usize) -> Vec<u32> {
        let mut chosen: Vec<Scored> = Vec::with_capacity(limit);
        let mut skipped = Vec::new();
        for &candidate in candidates {
            if chosen.len() == limit {
                break;
            }
            let vector = self.vector(candidate.id);
            let diverse = chosen
                .iter()
                .all(|taken| crate::index::dot(vector, self.vector(taken.id)) < candidate.score);
            if diverse {
                chosen.push(candidate);
            } else {
                skipped.push(candidate);
            }
        }
        for candidate in skipped {
            if chosen.len() == limit {
                break;
            }
            chosen.push(candidate);
        }
        chosen.into_iter().map(|scored| scored.id).collect()
    }

    /// Cuts the links of `node` on `layer` down to `limit`, chosen as [`select`] does.
    fn shrink(&mut self, node: u32, layer: usize, limit: usize) {
        let base = self.vector(node).to_vec();
        let mut scored: Vec<Scored> = self.links[node as usize][layer]
            .iter()
            .map(|&id| Scored {
                score: self.similarity(&base, id),
                id,
            })
            .collect();
        scored.sort_unstable_by(|a, b| b.cmp(a));
        self.links[node as usize][layer] = self.select(&scored, limit);
    }

    /// Walks `layer` from `start` to the neighbour most similar to `query`, until none is.
    fn greedy(&self, query: &[f32], start: Scored, layer: usize) -> Scored {
        let mut best = start;
        loop {
            let mut improved = false;
            for &neighbour in &self.links[best.id as usize][layer] {
                let score = self.similarity(query, neighbour);
                if score > best.score {
                    best = Scored {
                        score,
                        id: neighbour,
                    };
                    improved = true;
                }
            }
            if !improved {
                return best;
            }
        }
    }

    /// The `ef` nodes of `layer` most similar to `query` found from `entries`, best first.
    fn search_layer(
        &self,
        query: &[f32],
        entries: &[Scored],
        ef: usize,
        layer: usize,
    ) -> Vec<Scored> {
        VISITED.with_borrow_mut(|visited| {
            visited.start(self.links.len());
            for scored in entries {
                visited.insert(scored.id);
            }
            self.search_layer_with(query, entries, ef, layer, visited)
        })
    }

    fn search_layer_with(
        &self,
        query: &[f32],
        entries: &[Scored],
        ef: usize,
        layer: usize,
        visited: &mut Visited,
    ) -> Vec<Scored> {
        let mut candidates: BinaryHeap<Scored> = entries.iter().copied().collect();
        let mut found: BinaryHeap<Reverse<Scored>> = entries.iter().copied().map(Reverse).collect();
        while found.len() > ef {
            found.pop();
        }
        while let Some(candidate) = candidates.pop() {
            let worst = found
                .peek()
                .map_or(f32::NEG_INFINITY, |Reverse(worst)| worst.score);
            if candidate.score < worst && found.len() >= ef {
                break;
            }
            let Some(neighbours) = self.links[candidate.id as usize].get(layer) else {
                continue;
            };
            for &neighbour in neighbours {
                if !visited.insert(neighbour) {
                    continue;
                }
                let score = self.similarity(query, neighbour);
                let worst = found
                    .peek()
                    .map_or(f32::NEG_INFINITY, |Reverse(worst)| worst.score);
                if found.len() < ef || score > worst {
                    let scored = Scored {
                        score,
                        id: neighbour,
                    };
                    candidates.push(scored);
                    found.push(Reverse(scored));
                    if found.len() > ef {
                        found.pop();
                    }
                }
            }
        }
        let mut found: Vec<Scored> = found.into_iter().map(|Reverse(scored)| scored).collect();
        found.sort_unstable_by(|a, b| b.cmp(a));
        found
    }

    /// Up to `k` live nodes that `keep` accepts, most similar to `query` first, with their
    /// similarities. Approximate: a node may be missed (see the recall in the benchmarks).
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        mut keep: impl FnMut(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        let Some(entry) = self.entry else {
            return Vec::new();
        };
        if query.len() != self.dimension || k == 0 {
            return Vec::new();
        }
        let top = self.links[entry as usize].len() - 1;
        let ef = self.config.ef_search.max(k);
        // A beam (`ef_upper`), not a single greedy walker, on the upper layers too: on strongly
        // clustered data a greedy walk can settle in the wrong cluster, from which layer 0
        // (whose links are mostly within clusters) does not lead out.
        let mut entries = vec![Scored {
            score: self.similarity(query, entry),
            id: entry,
        }];
        let upper = self.config.ef_upper.min(ef);
        for layer in (1..=top).rev() {
            entries = self.search_layer(query, &entries, upper, layer);
        }
        self.search_layer(query, &entries, ef, 0)
            .into_iter()
            .filter(|scored| !self.deleted[scored.id as usize] && keep(scored.id))
            .take(k)
            .map(|scored| (scored.id, scored.score))
            .collect()
    }

    /// Marks node `id` deleted; whether it was live.
    pub fn remove(&mut self, id: u32) -> bool {
        match self.deleted.get_mut(id as usize) {
            Some(deleted) if !*deleted => {
                *deleted = true;
                self.live -= 1;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FlatIndex;

    /// Deterministic pseudo-random unit vectors in clusters, like embeddings of related texts.
    fn vectors(count: usize, dimension: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut state = seed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f32 / (1_u64 << 53) as f32 - 0.5
        };
        let centres: Vec<Vec<f32>> = (0..50)
            .map(|_| (0..dimension).map(|_| next()).collect())
            .collect();
        (0..count)
            .map(|index| {
                let centre = &centres[index % centres.len()];
                let vector: Vec<f32> = centre.iter().map(|c| c + 0.6 * next()).collect();
                let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
                vector.into_iter().map(|x| x / norm).collect()
            })
            .collect()
    }

    #[test]
    fn near_duplicate_queries_find_their_source_with_high_recall() {
        let (count, dimension) = (20_000, 64);
        let data = vectors(count, dimension, 7);
        let mut hnsw = HnswIndex::new(dimension, HnswConfig::default());
        let mut flat = FlatIndex::new(dimension);
        for vector in &data {
            hnsw.insert(vector);
            flat.push(vector);
        }
        // Queries: stored vectors with a little noise, renormalised.
        let noise = vectors(500, dimension, 99);
        let mut agree = 0;
        for (index, offset) in noise.iter().enumerate() {
            let source = &data[(index * 37) % count];
            let query: Vec<f32> = source
                .iter()
                .zip(offset)
                .map(|(s, o)| s + 0.05 * o)
                .collect();
            let norm = query.iter().map(|x| x * x).sum::<f32>().sqrt();
            let query: Vec<f32> = query.into_iter().map(|x| x / norm).collect();
            let exact = flat.best(&query, |_| true).unwrap().0;
            let approximate = hnsw.search(&query, 1, |_| true)[0].0 as usize;
            if approximate == exact {
                agree += 1;
            }
        }
        // 50 well-separated clusters of 400: the hard case for a graph index (a greedy walk
        // on the upper layers used to settle in the wrong cluster: 0.958 before the beam).
        let recall = f64::from(agree) / 500.0;
        eprintln!("recall@1 over 500 near-duplicate queries: {recall}");
        assert!(recall >= 0.98, "recall@1 {recall}");
    }

    #[test]
    fn removed_and_filtered_nodes_are_never_returned() {
        let data = vectors(2_000, 16, 3);
        let mut index = HnswIndex::new(16, HnswConfig::default());
        for vector in &data {
            index.insert(vector);
        }
        let query = &data[10];
        assert_eq!(index.search(query, 1, |_| true)[0].0, 10);
        assert!(index.remove(10));
        assert!(!index.remove(10));
        assert_eq!(index.len(), 1_999);
        assert_ne!(index.search(query, 1, |_| true)[0].0, 10);
        let results = index.search(query, 5, |id| id % 2 == 1);
        assert!(!results.is_empty());
        assert!(results.iter().all(|(id, _)| id % 2 == 1));
        assert!(
            results.windows(2).all(|pair| pair[0].1 >= pair[1].1),
            "best first"
        );
    }

    #[test]
    fn the_same_seed_builds_the_same_graph() {
        let data = vectors(500, 8, 1);
        let build = || {
            let mut index = HnswIndex::new(8, HnswConfig::default());
            for vector in &data {
                index.insert(vector);
            }
            index.links
        };
        assert_eq!(build(), build());
    }
}
