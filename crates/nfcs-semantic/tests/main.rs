//! Semantic cache tests. The model tests need the files `cargo xtask fetch-model` fetches; they
//! skip with a notice where the files are absent, unless `NFCS_REQUIRE_MODEL=1` (set by
//! `cargo xtask test` and CI), which turns the absence into a failure.

#![allow(clippy::unwrap_used)]

mod cache;
mod model;
mod parity;
mod stats;

use std::sync::OnceLock;

use nfcs_semantic::{MiniLmEmbedder, default_model_dir, model_present};

/// The model, loaded once for all tests, or `None` (with a printed notice) where it is absent.
pub(crate) fn model_or_skip(test: &str) -> Option<&'static MiniLmEmbedder> {
    static MODEL: OnceLock<Option<MiniLmEmbedder>> = OnceLock::new();
    let model = MODEL.get_or_init(|| {
        let directory = default_model_dir();
        if !model_present(&directory) {
            assert!(
                std::env::var_os("NFCS_REQUIRE_MODEL").is_none_or(|value| value != "1"),
                "NFCS_REQUIRE_MODEL=1 but the model is not in {}: run `cargo xtask fetch-model`",
                directory.display()
            );
            return None;
        }
        Some(MiniLmEmbedder::load(&directory).unwrap())
    });
    if model.is_none() {
        eprintln!("notice: {test} skipped: no embedding model (run `cargo xtask fetch-model`)");
    }
    model.as_ref()
}
