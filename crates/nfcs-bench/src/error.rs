//! `BenchError`: why a run, a configuration or a report could not be used.

use std::path::PathBuf;

/// Why the suite could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A configuration value that cannot work, or an unknown field.
    #[error("invalid benchmark configuration value for `{field}`: {message}")]
    Config {
        /// The dotted path of the field (`load_testing.max_concurrent_users`).
        field: String,
        /// What is wrong, with the value.
        message: String,
    },
    /// The configuration text is not valid TOML.
    #[error("the benchmark configuration is not valid TOML: {message}")]
    Syntax {
        /// The parser's message, with line and column.
        message: String,
    },
    /// An unknown component name.
    #[error("unknown component {name:?} (expected one of: {expected})")]
    UnknownComponent {
        /// What was given.
        name: String,
        /// The names that exist.
        expected: String,
    },
    /// An unknown load scenario name.
    #[error("unknown scenario {name:?} (expected one of: {expected})")]
    UnknownScenario {
        /// What was given.
        name: String,
        /// The names that exist.
        expected: String,
    },
    /// A file could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// `"could not read"`, `"could not write"`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A report (a baseline) could not be used.
    #[error("the report {} cannot be used: {message}", path.display())]
    Report {
        /// The file.
        path: PathBuf,
        /// Why: not JSON, another schema version, another profile.
        message: String,
    },
    /// The system under test could not be built from the cache configuration.
    #[error("the system under test could not be built: {0}")]
    Build(#[from] nfcs_performance::BuildError),
    /// The cache configuration is invalid.
    #[error(transparent)]
    CacheConfig(#[from] nfcs_performance::ConfigError),
    /// A cache operation failed.
    #[error("a cache operation failed: {0}")]
    Cache(#[from] nfcs_performance::cache_core::CacheError),
    /// A kernel refused its parameters.
    #[error("a kernel refused its parameters: {0}")]
    Kernel(#[from] nfcs_math_kernels::KernelError),
    /// The served node could not start or serve (an address that cannot be bound, a missing
    /// token, a recorder already installed).
    #[error("the node cannot serve: {0}")]
    Server(String),
    /// A component failed while running.
    #[error("{component} failed: {message}")]
    Component {
        /// Which component.
        component: String,
        /// What went wrong.
        message: String,
    },
}

impl BenchError {
    /// A configuration error about `field`.
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> BenchError {
        BenchError::Config {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A component's failure.
    pub fn component(component: impl ToString, message: impl ToString) -> BenchError {
        BenchError::Component {
            component: component.to_string(),
            message: message.to_string(),
        }
    }

    /// The dotted path of the offending configuration field, when the error is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            BenchError::Config { field, .. } => Some(field),
            BenchError::CacheConfig(error) => error.field(),
            _ => None,
        }
    }
}
