//! The cache component.

use crate::components::{Component, RunContext};
use crate::error::BenchError;
use crate::report::ComponentReport;

/// Runs the cache component.
///
/// # Errors
/// [`BenchError`] when the system under test fails.
pub async fn run(context: &RunContext) -> Result<ComponentReport, BenchError> {
    let _ = context;
    Err(BenchError::component(Component::Cache, "not built yet"))
}
