//! Tests that cross crate boundaries, and the workspace's tidy checks.

// In tests a panic is the failure report: helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

mod end_to_end;
mod metrics_export;
mod tidy;
