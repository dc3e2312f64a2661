//! Cross-crate integration tests of the nfcs-perf workspace live in `tests/`; this library is
//! empty. Run them with `cargo test -p nfcs-integration-tests` (or `cargo xtask test`).

#![forbid(unsafe_code)]
