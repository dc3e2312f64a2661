//! The error every tier returns.

use std::time::Duration;

use crate::codec::{DecodeError, EncodeError};
use crate::expiry::{Ttl, TtlProblem};
use crate::key::{KeyProblem, key_preview};
use crate::pattern::PatternError;

/// A boxed error from a tier's backend (an I/O error, a Redis error, ...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a cache operation.
///
/// A miss is not an error: reads return `Ok(None)`. Each variant carries what a caller needs to
/// act (which key, which limit, which tier). The enum is `#[non_exhaustive]`: tiers that arrive
/// later may add variants.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The key is empty or too long; see [`validate_key`](crate::validate_key).
    #[error("invalid cache key {key:?}: {problem}")]
    InvalidKey {
        /// The key, shortened to 64 characters.
        key: String,
        /// What is wrong with it.
        problem: KeyProblem,
    },

    /// A glob pattern did not compile.
    #[error(transparent)]
    InvalidPattern(#[from] PatternError),

    /// The TTL is zero or longer than [`MAX_TTL`](crate::MAX_TTL).
    #[error("invalid TTL {ttl:?}: {problem}")]
    InvalidTtl {
        /// The TTL that was passed.
        ttl: Duration,
        /// What is wrong with it.
        problem: TtlProblem,
    },

    /// The entry (key, value and bookkeeping) is larger than the tier can hold. The tier is
    /// unchanged: an earlier value under the key is kept.
    #[error(
        "the entry for key {key:?} needs {size} bytes, more than the {limit} bytes the {tier} tier allows per entry"
    )]
    ValueTooLarge {
        /// The tier that refused it.
        tier: String,
        /// The key, shortened to 64 characters.
        key: String,
        /// The bytes the entry would take.
        size: u64,
        /// The most the tier accepts for one entry.
        limit: u64,
    },

    /// A capacity that cannot work (for example a byte budget of zero).
    #[error("invalid capacity for the {tier} tier: {reason}")]
    InvalidCapacity {
        /// The tier being configured.
        tier: String,
        /// What is wrong.
        reason: String,
    },

    /// A value could not be encoded.
    #[error("could not encode the value for key {key:?}: {source}")]
    Encode {
        /// The key, shortened to 64 characters.
        key: String,
        /// The encoder's error.
        #[source]
        source: EncodeError,
    },

    /// Stored bytes could not be decoded: a corrupt frame, or a type that differs from the one
    /// stored (see [`DecodeError::is_corruption`]).
    #[error("could not decode the value for key {key:?}: {source}")]
    Decode {
        /// The key, shortened to 64 characters.
        key: String,
        /// The decoder's error.
        #[source]
        source: DecodeError,
    },

    /// The tier cannot serve requests right now (a server down, a circuit breaker open).
    #[error("the {tier} tier is unavailable: {reason}")]
    Unavailable {
        /// The tier.
        tier: String,
        /// Why, in words.
        reason: String,
    },

    /// The tier's backend failed (an I/O error, a protocol error, ...).
    #[error("the {tier} tier failed to {operation}: {source}")]
    Backend {
        /// The tier.
        tier: String,
        /// What it was doing, as a verb phrase ("read an entry", "delete a file").
        operation: &'static str,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
}

impl CacheError {
    /// An [`InvalidKey`](CacheError::InvalidKey) error for `key`.
    pub fn invalid_key(key: &str, problem: KeyProblem) -> CacheError {
        CacheError::InvalidKey {
            key: key_preview(key),
            problem,
        }
    }

    /// A [`ValueTooLarge`](CacheError::ValueTooLarge) error.
    pub fn value_too_large(tier: &str, key: &str, size: u64, limit: u64) -> CacheError {
        CacheError::ValueTooLarge {
            tier: tier.to_owned(),
            key: key_preview(key),
            size,
            limit,
        }
    }

    /// A [`Backend`](CacheError::Backend) error.
    pub fn backend(tier: &str, operation: &'static str, source: impl Into<BoxError>) -> CacheError {
        CacheError::Backend {
            tier: tier.to_owned(),
            operation,
            source: source.into(),
        }
    }

    /// Whether the error is about the caller's input (key, pattern, TTL, size) rather than
    /// about the tier's health. Input errors are returned to the caller as they are; health
    /// errors are what a multi-tier cache turns into counted misses.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            CacheError::InvalidKey { .. }
                | CacheError::InvalidPattern(_)
                | CacheError::InvalidTtl { .. }
                | CacheError::ValueTooLarge { .. }
                | CacheError::InvalidCapacity { .. }
                | CacheError::Encode { .. }
        )
    }
}

/// Validates a key, turning the problem into a [`CacheError`].
#[inline]
pub fn check_key(key: &str) -> Result<(), CacheError> {
    crate::key::validate_key(key).map_err(|problem| CacheError::invalid_key(key, problem))
}

/// Validates a TTL ([`Ttl::After`] must be longer than zero and at most
/// [`MAX_TTL`](crate::MAX_TTL)), turning the problem into a [`CacheError`].
#[inline]
pub fn check_ttl(ttl: impl Into<Ttl>) -> Result<Ttl, CacheError> {
    let ttl = ttl.into();
    if let Ttl::After(duration) = ttl {
        crate::expiry::validate_ttl(duration).map_err(|problem| CacheError::InvalidTtl {
            ttl: duration,
            problem,
        })?;
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_problem() {
        let error = check_key("").unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid cache key \"\": keys must not be empty"
        );
        assert!(error.is_input_error());
        let error = check_ttl(Duration::ZERO).unwrap_err();
        assert_eq!(check_ttl(None).unwrap(), Ttl::Default);
        assert_eq!(check_ttl(Ttl::Never).unwrap(), Ttl::Never);
        assert!(error.to_string().contains("longer than zero"), "{error}");
        let error = CacheError::value_too_large("memory", "big", 2_000, 1_000);
        assert!(error.to_string().contains("2000 bytes"), "{error}");
        assert!(error.to_string().contains("memory tier"), "{error}");
        let error =
            CacheError::backend("disk", "write an entry", std::io::Error::other("disk full"));
        assert!(!error.is_input_error());
        assert_eq!(
            error.to_string(),
            "the disk tier failed to write an entry: disk full"
        );
    }
}
