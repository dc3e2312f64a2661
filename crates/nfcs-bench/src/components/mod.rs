//! The suite's components, each driving the real crates, and what they share while running.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::BenchmarkConfig;
use crate::error::BenchError;
use crate::progress::Progress;
use crate::report::Profile;
use crate::system::System;

pub mod cache;
pub mod constitutional;
pub mod coordination;
pub mod esc;
pub mod load;
pub mod mathematical;
pub mod memory;

/// A part of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Component {
    /// CGL steps per second per grid size, Kuramoto time to synchrony, solver memory, the
    /// memoized solve through the cache.
    Mathematical,
    /// The policy cache with the Cedar evaluator on the shipped constitution.
    Constitutional,
    /// The spec's 100-key hit-ratio test and a Zipf workload through the manager.
    Cache,
    /// The semantic cache (MiniLM): lookups, stores, paraphrase hits, tokens per second.
    Esc,
    /// The orchestrator's NFCS cycle at its frequency: frequency, jitter, latency, modules.
    Coordination,
    /// Allocator statistics over time, per-component footprints, the threshold check.
    Memory,
    /// Virtual users running NFCS operations: closed and open models, the breaking point.
    Load,
}

impl Component {
    /// Every component, in the order a full run takes them.
    pub const ALL: [Component; 7] = [
        Component::Mathematical,
        Component::Constitutional,
        Component::Cache,
        Component::Esc,
        Component::Coordination,
        Component::Memory,
        Component::Load,
    ];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Component::Mathematical => "mathematical",
            Component::Constitutional => "constitutional",
            Component::Cache => "cache",
            Component::Esc => "esc",
            Component::Coordination => "coordination",
            Component::Memory => "memory",
            Component::Load => "load",
        }
    }
}

impl std::fmt::Display for Component {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

impl std::str::FromStr for Component {
    type Err = BenchError;

    /// A component by name; `semantic` is accepted for `esc`.
    fn from_str(name: &str) -> Result<Component, BenchError> {
        if name == "semantic" {
            return Ok(Component::Esc);
        }
        Component::ALL
            .into_iter()
            .find(|component| component.name() == name)
            .ok_or_else(|| BenchError::UnknownComponent {
                name: name.to_owned(),
                expected: Component::ALL.map(Component::name).join(", "),
            })
    }
}

/// What a component gets to run with.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The configuration in effect (the quick profile already applied).
    pub config: BenchmarkConfig,
    /// Full or quick.
    pub profile: Profile,
    /// Progress bars.
    pub progress: Progress,
    /// The system under test.
    pub system: Arc<System>,
}
