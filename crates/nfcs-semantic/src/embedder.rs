//! Sentence embeddings: the [`Embedder`] trait and all-MiniLM-L6-v2 on candle.

use std::path::Path;

use candle_core::Device;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::SemanticError;
use crate::bert::{Bert, BertConfig};
use crate::model::{MODEL_FILES, default_model_dir, read_verified};

/// Turns texts into L2-normalised vectors of a fixed dimension, so that the dot product of two
/// embeddings is their cosine similarity.
pub trait Embedder: Send + Sync {
    /// The length of every vector.
    fn dimension(&self) -> usize;

    /// One unit vector per text, in order. An empty batch gives an empty result.
    ///
    /// # Errors
    /// [`SemanticError`] when the tokenizer or the model fails.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, SemanticError>;

    /// Whether `text` carries anything the model can read. Texts without (empty, blank, or made
    /// only of symbols the vocabulary lacks) all embed to nearly the same vector, so the cache
    /// matches them by exact text only. The default says whether any non-whitespace remains.
    fn has_content(&self, text: &str) -> bool {
        !text.trim().is_empty()
    }
}

impl<E: Embedder + ?Sized> Embedder for &E {
    fn dimension(&self) -> usize {
        (**self).dimension()
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, SemanticError> {
        (**self).embed(texts)
    }
    fn has_content(&self, text: &str) -> bool {
        (**self).has_content(text)
    }
}

impl<E: Embedder + ?Sized> Embedder for std::sync::Arc<E> {
    fn dimension(&self) -> usize {
        (**self).dimension()
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, SemanticError> {
        (**self).embed(texts)
    }
    fn has_content(&self, text: &str) -> bool {
        (**self).has_content(text)
    }
}

/// all-MiniLM-L6-v2 (BERT, 6 layers, 384 dimensions) on the CPU with candle, as
/// sentence-transformers runs it: WordPiece tokens truncated to 256 (the shipped
/// `tokenizer.json` says 128; sentence-transformers uses the model's 256), mean pooling over
/// each text's tokens (`[CLS]` and `[SEP]` included), L2 normalisation. A batch is not padded:
/// its tokens are packed, and only attention sees the texts side by side (with padding keys
/// masked), so a batch gives the same vectors as the texts one by one.
pub struct MiniLmEmbedder {
    model: Bert,
    tokenizer: Tokenizer,
}

impl std::fmt::Debug for MiniLmEmbedder {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("MiniLmEmbedder")
            .field("dimension", &Self::DIMENSION)
            .field("max_tokens", &Self::MAX_TOKENS)
            .finish_non_exhaustive()
    }
}

impl MiniLmEmbedder {
    /// The embedding dimension.
    pub const DIMENSION: usize = 384;
    /// Tokens per text, `[CLS]` and `[SEP]` included; longer texts are truncated.
    pub const MAX_TOKENS: usize = 256;

    /// Loads the model from [`default_model_dir`].
    ///
    /// # Errors
    /// As [`load`](MiniLmEmbedder::load).
    pub fn load_default() -> Result<MiniLmEmbedder, SemanticError> {
        MiniLmEmbedder::load(default_model_dir())
    }

    /// Loads the model from `directory`, which holds `model.safetensors`, `tokenizer.json` and
    /// `config.json`; each file's sha256 is checked first.
    ///
    /// # Errors
    /// [`SemanticError::ModelMissing`], [`SemanticError::ModelCorrupt`] or
    /// [`SemanticError::ModelUnreadable`], naming the file and the command that fixes it.
    pub fn load(directory: impl AsRef<Path>) -> Result<MiniLmEmbedder, SemanticError> {
        let directory = directory.as_ref();
        let [weights_file, tokenizer_file, config_file] = MODEL_FILES;
        let unreadable = |name: &str, reason: String| SemanticError::ModelUnreadable {
            path: directory.join(name),
            reason,
        };
        let config: BertConfig = serde_json::from_slice(&read_verified(directory, config_file)?)
            .map_err(|error| unreadable(config_file.name, error.to_string()))?;
        let mut tokenizer = Tokenizer::from_bytes(read_verified(directory, tokenizer_file)?)
            .map_err(|error| unreadable(tokenizer_file.name, error.to_string()))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: Self::MAX_TOKENS,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|error| unreadable(tokenizer_file.name, error.to_string()))?;
        // No padding: the encoder packs the tokens of a batch (see `bert.rs`).
        tokenizer.with_padding(None);
        let device = Device::Cpu;
        let weights = read_verified(directory, weights_file)?;
        let model = candle_core::safetensors::load_buffer(&weights, &device)
            .and_then(|tensors| Bert::load(tensors, &config))
            .map_err(|error| unreadable(weights_file.name, error.to_string()))?;
        Ok(MiniLmEmbedder { model, tokenizer })
    }

    /// The token ids the model sees for `text` (`[CLS]` ... `[SEP]`, at most
    /// [`MAX_TOKENS`](MiniLmEmbedder::MAX_TOKENS)).
    ///
    /// # Errors
    /// [`SemanticError::Tokenizer`].
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, SemanticError> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|error| SemanticError::Tokenizer(error.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }
}

impl Embedder for MiniLmEmbedder {
    fn dimension(&self) -> usize {
        Self::DIMENSION
    }

    /// Whether any token other than `[CLS]`, `[SEP]` and `[UNK]` is left (an emoji-only text
    /// is all `[UNK]`).
    fn has_content(&self, text: &str) -> bool {
        const SPECIAL: [u32; 3] = [100, 101, 102];
        self.token_ids(text)
            .is_ok_and(|ids| ids.iter().any(|id| !SPECIAL.contains(id)))
    }

    // The whole pass runs as one job of rayon's pool (the caller's, or the global one when
    // called from outside any): its few dozen parallel steps then start from a pool thread
    // instead of each handing work over from the caller's thread and sleeping until it is
    // done, which cost 12 to 21 % of the time at batch 1 (`examples/embed_loop.rs`, measured
    // alternately on 1 and 2 threads). Two passes at once do not wait for each other's
    // buffers (see `Bert::scratch`), so a pass never blocks a pool thread.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, SemanticError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        rayon::scope(|_| self.embed_in_pool(texts))
    }
}

impl MiniLmEmbedder {
    /// [`Embedder::embed`] of a non-empty batch.
    fn embed_in_pool(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, SemanticError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|error| SemanticError::Tokenizer(error.to_string()))?;
        let ids: Vec<&[u32]> = encodings
            .iter()
            .map(|encoding| encoding.get_ids())
            .collect();
        let states = self.model.forward(&ids).map_err(SemanticError::Inference)?;
        // Mean over each text's tokens (`[CLS]` and `[SEP]` included), then unit length.
        let mut rows = states.chunks_exact(Self::DIMENSION);
        Ok(ids
            .iter()
            .map(|tokens| {
                let mut mean = vec![0.0_f32; Self::DIMENSION];
                for row in rows.by_ref().take(tokens.len()) {
                    for (sum, value) in mean.iter_mut().zip(row) {
                        *sum += value;
                    }
                }
                let count = tokens.len().max(1) as f32;
                mean.iter_mut().for_each(|value| *value /= count);
                let norm = mean.iter().map(|value| value * value).sum::<f32>().sqrt();
                if norm > 0.0 {
                    mean.iter_mut().for_each(|value| *value /= norm);
                }
                mean
            })
            .collect())
    }
}
