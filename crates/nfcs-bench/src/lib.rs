//! The NFCS benchmark suite: measures an NFCS deployment against the specification's targets.
//!
//! (Documentation in progress.)

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod alloc;
pub mod baseline;
pub mod components;
pub mod config;
mod error;
pub mod load;
pub mod orchestrator;
pub mod progress;
pub mod recording;
pub mod render;
pub mod report;
pub mod stats;
pub mod suite;
pub mod system;

pub use components::{Component, RunContext};
pub use config::{BenchmarkConfig, Scenario, Targets};
pub use error::BenchError;
pub use report::{BenchmarkReport, ComponentReport, Measurement, Profile, Target, Verdict};
pub use system::System;
