//! Math kernel tests: every solver against analytic results and its own order of convergence.

#![allow(clippy::unwrap_used)]

mod bad_input;
mod cgl;
mod cgl_batch;
mod kuramoto;
mod simd;
