//! The memory component.

use crate::components::{Component, RunContext};
use crate::error::BenchError;
use crate::report::ComponentReport;

/// Runs the memory component.
///
/// # Errors
/// [`BenchError`] when the system under test fails.
pub async fn run(context: &RunContext) -> Result<ComponentReport, BenchError> {
    let _ = context;
    Err(BenchError::component(Component::Memory, "not built yet"))
}
