//! Integration tests of the disk tier: the conformance suite, recovery, corruption, bounds,
//! crashes, faults, metrics and links in the directory.

// In tests a panic is the failure report: helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

mod bounds;
mod compaction;
mod conformance;
mod corruption;
mod crash;
mod faults;
mod fuzz_corpus;
mod fuzz_regressions;
mod recovery;
mod support;
mod symlinks;
mod telemetry;
