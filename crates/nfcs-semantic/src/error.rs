//! The crate's error type.

use std::path::PathBuf;

/// The command that puts the model files in place.
pub const FETCH_COMMAND: &str = "cargo xtask fetch-model";

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SemanticError {
    /// A model file is not there.
    #[error("model file {} is missing; run `{FETCH_COMMAND}` (or point NFCS_MODEL_DIR at a directory holding model.safetensors, tokenizer.json and config.json)", path.display())]
    ModelMissing {
        /// The file looked for.
        path: PathBuf,
    },
    /// A model file is there but is not the file we know (truncated, damaged or another model).
    #[error("model file {} is corrupt or not all-MiniLM-L6-v2 (sha256 {found}, expected {expected}); run `{FETCH_COMMAND}` to fetch it again", path.display())]
    ModelCorrupt {
        /// The file.
        path: PathBuf,
        /// The sha256 the file should have.
        expected: &'static str,
        /// The sha256 it has.
        found: String,
    },
    /// A model file could not be read or parsed.
    #[error("model file {} could not be loaded: {reason}", path.display())]
    ModelUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The tokenizer failed on an input.
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    /// The model's forward pass failed.
    #[error("inference error: {0}")]
    Inference(String),
    /// A similarity threshold outside the cosine scale.
    #[error(
        "threshold {0} is not a cosine similarity: it must be a number from -1 to 1 (1 means the same embedding)"
    )]
    InvalidThreshold(f32),
    /// A text the cache cannot store: empty or only whitespace.
    #[error("cannot store an empty or whitespace-only text: it has no meaning to match on")]
    EmptyText,
    /// A configuration value out of its domain.
    #[error("invalid semantic cache configuration: `{field}` {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// What it must be.
        reason: &'static str,
    },
}

impl From<candle_core::Error> for SemanticError {
    fn from(error: candle_core::Error) -> SemanticError {
        SemanticError::Inference(error.to_string())
    }
}
