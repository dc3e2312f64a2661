//! The integration tests of nfcs-policy-cache: one binary, one module per area.

// In tests a panic is the failure report: helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

mod cache;
#[cfg(feature = "cedar")]
mod cedar;
mod hash;
mod support;
