//! The facade's errors.

use std::fmt;
use std::sync::Arc;

use nfcs_cache_core::CacheError;

use crate::config::ConfigError;

/// Why a manager could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A tier refused its settings.
    #[error(transparent)]
    Tier(#[from] CacheError),
}

/// Why [`get_or_insert_with`](crate::NFCSCacheManager::get_or_insert_with) failed.
///
/// The loader's error is shared (`Arc<E>`): one failed load is returned to every caller that
/// waited on it, and nothing is cached.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadError<E> {
    /// The loader failed.
    Loader(Arc<E>),
    /// The cache failed (an invalid key or TTL, an encoding error, a stored value of another
    /// type).
    Cache(CacheError),
}

impl<E> LoadError<E> {
    /// The loader's error, if that is what failed.
    pub fn loader_error(&self) -> Option<&E> {
        match self {
            LoadError::Loader(error) => Some(error),
            LoadError::Cache(_) => None,
        }
    }
}

impl<E> From<CacheError> for LoadError<E> {
    fn from(error: CacheError) -> LoadError<E> {
        LoadError::Cache(error)
    }
}

impl<E: fmt::Display> fmt::Display for LoadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Loader(error) => write!(f, "the loader failed: {error}"),
            LoadError::Cache(error) => error.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for LoadError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Loader(error) => Some(&**error),
            LoadError::Cache(error) => Some(error),
        }
    }
}
