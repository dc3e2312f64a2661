//! The semantic cache behind the manager (feature `semantic`): [`NFCSCacheManager::semantic`].
//!
//! [`NFCSCacheManager::semantic`]: crate::NFCSCacheManager::semantic

use std::sync::Arc;

use bytes::Bytes;
use nfcs_cache_core::Codec;
use nfcs_semantic::{MiniLmEmbedder, SemanticCache, SemanticError};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The semantic cache the manager runs: typed values (encoded with the manager's codec) stored
/// under a text and found by a text of similar meaning. The model runs on tokio's blocking
/// pool, never on a worker thread.
///
/// When the semantic cache is not running (disabled, or its model could not be loaded) every
/// call returns [`SemanticStoreError::NotRunning`] with the reason, which
/// [`tier_status`](crate::NFCSCacheManager::tier_status) also reports.
#[derive(Clone)]
pub struct SemanticStore {
    cache: Result<Arc<SemanticCache<Bytes, MiniLmEmbedder>>, String>,
    codec: Codec,
}

impl std::fmt::Debug for SemanticStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SemanticStore")
            .field("running", &self.cache.is_ok())
            .finish_non_exhaustive()
    }
}

/// What a semantic lookup found.
#[derive(Debug, Clone, PartialEq)]
pub struct SemanticMatch<T> {
    /// The stored value.
    pub value: T,
    /// The cosine similarity of the query to the stored text (1.0 for the same text).
    pub similarity: f32,
    /// The text the value was stored under.
    pub text: String,
}

/// Why a semantic cache call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SemanticStoreError {
    /// The semantic cache is not running.
    #[error("the semantic cache is not running: {reason}")]
    NotRunning {
        /// Why.
        reason: String,
    },
    /// The semantic cache refused the call (a bad threshold, an empty text, a model error).
    #[error(transparent)]
    Semantic(#[from] SemanticError),
    /// The value could not be encoded.
    #[error("the value could not be encoded: {0}")]
    Encode(String),
    /// A stored value could not be decoded as the type asked for.
    #[error("the value stored under {text:?} could not be decoded: {reason}")]
    Decode {
        /// The text it was stored under.
        text: String,
        /// Why.
        reason: String,
    },
    /// The blocking task running the model did not finish (the runtime is shutting down).
    #[error("the model's task was cancelled")]
    Cancelled,
}

impl SemanticStore {
    pub(crate) fn running(
        cache: SemanticCache<Bytes, MiniLmEmbedder>,
        codec: Codec,
    ) -> SemanticStore {
        SemanticStore {
            cache: Ok(Arc::new(cache)),
            codec,
        }
    }

    pub(crate) fn not_running(reason: String, codec: Codec) -> SemanticStore {
        SemanticStore {
            cache: Err(reason),
            codec,
        }
    }

    /// The cache itself, for synchronous use, when it runs.
    pub fn cache(&self) -> Option<&SemanticCache<Bytes, MiniLmEmbedder>> {
        self.cache.as_deref().ok()
    }

    fn require(&self) -> Result<Arc<SemanticCache<Bytes, MiniLmEmbedder>>, SemanticStoreError> {
        self.cache
            .clone()
            .map_err(|reason| SemanticStoreError::NotRunning { reason })
    }

    /// Stores `value` under `text` in `context` (a tenant or namespace).
    ///
    /// # Errors
    /// [`SemanticStoreError`].
    pub async fn store<T: Serialize + ?Sized>(
        &self,
        text: &str,
        value: &T,
        context: &str,
    ) -> Result<(), SemanticStoreError> {
        let cache = self.require()?;
        let value = self
            .codec
            .encode(value)
            .map_err(|error| SemanticStoreError::Encode(error.to_string()))?;
        let (text, context) = (text.to_owned(), context.to_owned());
        tokio::task::spawn_blocking(move || cache.store(&text, value, &context))
            .await
            .map_err(|_| SemanticStoreError::Cancelled)??;
        Ok(())
    }

    /// The entry of `context` most similar to `text` with a cosine similarity of at least
    /// `threshold` (-1 to 1; 1 means the same embedding). A miss is `Ok(None)`.
    ///
    /// # Errors
    /// [`SemanticStoreError`].
    pub async fn find_similar<T: DeserializeOwned>(
        &self,
        text: &str,
        threshold: f32,
        context: &str,
    ) -> Result<Option<SemanticMatch<T>>, SemanticStoreError> {
        let cache = self.require()?;
        let (query, context) = (text.to_owned(), context.to_owned());
        let hit =
            tokio::task::spawn_blocking(move || cache.find_similar(&query, threshold, &context))
                .await
                .map_err(|_| SemanticStoreError::Cancelled)??;
        let Some(hit) = hit else {
            return Ok(None);
        };
        let value = self
            .codec
            .decode(&hit.value)
            .map_err(|error| SemanticStoreError::Decode {
                text: hit.text.clone(),
                reason: error.to_string(),
            })?;
        Ok(Some(SemanticMatch {
            value,
            similarity: hit.similarity,
            text: hit.text,
        }))
    }

    /// Stores `value` under a token sequence (the spec's ESC `store(tokens, result,
    /// context)`): the tokens are embedded as the text [`tokens_text`] makes of them, and
    /// `context` is the tenant.
    ///
    /// # Errors
    /// [`SemanticStoreError`]; a sequence with no visible token is refused as blank.
    pub async fn store_tokens<S: AsRef<str>, T: Serialize + ?Sized>(
        &self,
        tokens: &[S],
        value: &T,
        context: &str,
    ) -> Result<(), SemanticStoreError> {
        self.store(&tokens_text(tokens), value, context).await
    }

    /// The entry of `context` most similar to a token sequence (the spec's ESC
    /// `find_similar(tokens, threshold)`), by the text [`tokens_text`] makes of them; a
    /// miss is `Ok(None)`. An entry stored as text and one stored as the tokens of that text
    /// find each other.
    ///
    /// # Errors
    /// [`SemanticStoreError`].
    pub async fn find_similar_tokens<S: AsRef<str>, T: DeserializeOwned>(
        &self,
        tokens: &[S],
        threshold: f32,
        context: &str,
    ) -> Result<Option<SemanticMatch<T>>, SemanticStoreError> {
        self.find_similar(&tokens_text(tokens), threshold, context)
            .await
    }

    /// [`find_similar`](SemanticStore::find_similar) at the configured threshold
    /// (`[semantic] similarity_threshold`, 0.95 by default).
    ///
    /// # Errors
    /// [`SemanticStoreError`].
    pub async fn find<T: DeserializeOwned>(
        &self,
        text: &str,
        context: &str,
    ) -> Result<Option<SemanticMatch<T>>, SemanticStoreError> {
        let threshold = self.require()?.config().threshold;
        self.find_similar(text, threshold, context).await
    }
}

/// The text a token sequence is embedded as: the tokens in order, separated by single
/// spaces, except that a WordPiece continuation (`##ing`) is glued to the token before it
/// without its `##`, and empty tokens are skipped. So the tokens MiniLM's own tokenizer makes
/// of a lower-case sentence (`["play", "##ing", "chess"]`) give back the sentence (`playing
/// chess`), and whitespace-split words give back the words.
///
/// ```
/// use nfcs_performance::tokens_text;
/// assert_eq!(tokens_text(&["play", "##ing", "chess"]), "playing chess");
/// assert_eq!(tokens_text(&["Hello", "", "world"]), "Hello world");
/// ```
pub fn tokens_text<S: AsRef<str>>(tokens: &[S]) -> String {
    let mut text = String::new();
    for token in tokens {
        let token = token.as_ref();
        if token.is_empty() {
            continue;
        }
        match token.strip_prefix("##") {
            Some(rest) if !text.is_empty() && !rest.is_empty() => text.push_str(rest),
            _ => {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(token);
            }
        }
    }
    text
}
