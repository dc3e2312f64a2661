//! Loading the model: missing and corrupt files are clear errors; odd inputs are embedded.

use nfcs_semantic::{
    Embedder, MODEL_FILES, MiniLmEmbedder, SemanticError, default_model_dir, model_present,
};

use crate::model_or_skip;

#[test]
fn a_missing_model_names_the_file_and_the_command() {
    let empty = tempfile::tempdir().unwrap();
    let error = MiniLmEmbedder::load(empty.path()).unwrap_err();
    let SemanticError::ModelMissing { path } = &error else {
        panic!("{error:?}");
    };
    assert!(path.starts_with(empty.path()));
    let message = error.to_string();
    assert!(message.contains("cargo xtask fetch-model"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(!model_present(empty.path()));
}

/// A copy of the model directory with `file` replaced by `contents(original)`.
fn damaged_copy(file: &str, contents: impl Fn(Vec<u8>) -> Vec<u8>) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for model_file in MODEL_FILES {
        let bytes = std::fs::read(default_model_dir().join(model_file.name)).unwrap();
        let bytes = if model_file.name == file {
            contents(bytes)
        } else {
            bytes
        };
        std::fs::write(copy.path().join(model_file.name), bytes).unwrap();
    }
    copy
}

#[test]
fn corrupt_or_truncated_files_are_refused_by_checksum() {
    if model_or_skip("corrupt_or_truncated_files_are_refused_by_checksum").is_none() {
        return;
    }
    let flipped = damaged_copy("model.safetensors", |mut bytes| {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x10;
        bytes
    });
    let truncated = damaged_copy("tokenizer.json", |bytes| bytes[..bytes.len() / 3].to_vec());
    for (directory, name) in [
        (&flipped, "model.safetensors"),
        (&truncated, "tokenizer.json"),
    ] {
        let error = MiniLmEmbedder::load(directory.path()).unwrap_err();
        let SemanticError::ModelCorrupt { path, .. } = &error else {
            panic!("{error:?}");
        };
        assert!(path.ends_with(name), "{error}");
        assert!(
            error.to_string().contains("cargo xtask fetch-model"),
            "{error}"
        );
    }
}

#[test]
fn odd_texts_are_embedded_and_long_ones_truncated_at_256_tokens() {
    let Some(model) = model_or_skip("odd_texts_are_embedded_and_long_ones_truncated_at_256_tokens")
    else {
        return;
    };
    assert!(model.embed(&[]).unwrap().is_empty());
    // Empty, blank and emoji-only texts tokenize to (almost) nothing but [CLS] and [SEP]: they
    // embed, to unit vectors that are near one another.
    let odd = model.embed(&["", "   \t\n", "🙂🙂🙂"]).unwrap();
    for vector in &odd {
        let norm: f32 = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
    assert_eq!(model.token_ids("").unwrap().len(), 2);
    assert_eq!(model.token_ids("   \t\n").unwrap().len(), 2);
    let long = "the quick brown fox jumps over the lazy dog ".repeat(60);
    let ids = model.token_ids(&long).unwrap();
    assert_eq!(ids.len(), MiniLmEmbedder::MAX_TOKENS);
    assert_eq!(ids.last(), Some(&102), "truncation keeps the closing [SEP]");
    // Past the limit, more text changes nothing.
    let longer = format!("{long} and then something entirely different about databases");
    let vectors = model.embed(&[&long, &longer]).unwrap();
    assert_eq!(vectors[0], vectors[1]);
}
