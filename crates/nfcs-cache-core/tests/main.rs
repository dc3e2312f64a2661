//! Integration tests of nfcs-cache-core's public API.

// In tests a panic is the failure report: helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

mod budget;
mod fuzz_corpus;
mod mrc;
mod support {
    pub(crate) mod traces;
}
