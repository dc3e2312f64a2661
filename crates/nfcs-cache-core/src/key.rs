//! Cache keys: the one validation every tier applies.

use std::fmt;

/// The longest key any tier accepts, in bytes of UTF-8.
///
/// Redis would take longer keys, but a key this long is almost always a bug (a whole document
/// used as a key), and a bound keeps per-entry overhead and error messages predictable.
pub const MAX_KEY_LEN: usize = 4096;

/// How many characters of an offending key an error message repeats.
const KEY_PREVIEW_CHARS: usize = 64;

/// Why a key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyProblem {
    /// The key is the empty string.
    Empty,
    /// The key is longer than [`MAX_KEY_LEN`] bytes.
    TooLong {
        /// The key's length in bytes.
        len: usize,
        /// The limit, [`MAX_KEY_LEN`].
        max: usize,
    },
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyProblem::Empty => f.write_str("keys must not be empty"),
            KeyProblem::TooLong { len, max } => {
                write!(f, "key is {len} bytes long, the limit is {max} bytes")
            }
        }
    }
}

/// Checks that `key` is a valid cache key: 1 to [`MAX_KEY_LEN`] bytes of UTF-8.
///
/// Every tier calls this before it touches its storage, so a key is valid in one tier exactly
/// when it is valid in all of them. Keys are `&str`, so they are UTF-8 by construction; a tier
/// that reads keys back from bytes (disk, Redis) checks UTF-8 itself.
///
/// ```
/// use nfcs_cache_core::{validate_key, KeyProblem, MAX_KEY_LEN};
///
/// assert!(validate_key("cgl_128_9f2c").is_ok());
/// assert_eq!(validate_key(""), Err(KeyProblem::Empty));
/// let long = "k".repeat(MAX_KEY_LEN + 1);
/// assert!(matches!(validate_key(&long), Err(KeyProblem::TooLong { len: 4097, .. })));
/// ```
#[inline]
pub fn validate_key(key: &str) -> Result<(), KeyProblem> {
    if key.is_empty() {
        Err(KeyProblem::Empty)
    } else if key.len() > MAX_KEY_LEN {
        Err(KeyProblem::TooLong {
            len: key.len(),
            max: MAX_KEY_LEN,
        })
    } else {
        Ok(())
    }
}

/// A short, printable excerpt of a key for error messages: at most 64 characters, with an
/// ellipsis when something was cut.
pub fn key_preview(key: &str) -> String {
    let mut chars = key.char_indices();
    match chars.nth(KEY_PREVIEW_CHARS) {
        None => key.to_owned(),
        Some((cut, _)) => format!("{}...", &key[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_of_the_length_rule() {
        assert_eq!(validate_key("a"), Ok(()));
        assert_eq!(validate_key(&"a".repeat(MAX_KEY_LEN)), Ok(()));
        assert_eq!(
            validate_key(&"a".repeat(MAX_KEY_LEN + 1)),
            Err(KeyProblem::TooLong {
                len: MAX_KEY_LEN + 1,
                max: MAX_KEY_LEN
            })
        );
        // The limit counts bytes, not characters: 1366 three-byte characters are 4098 bytes.
        let wide = "\u{20ac}".repeat(1366);
        assert!(matches!(
            validate_key(&wide),
            Err(KeyProblem::TooLong { len: 4098, .. })
        ));
    }

    #[test]
    fn preview_cuts_on_character_boundaries() {
        assert_eq!(key_preview("short"), "short");
        let long = "\u{e9}".repeat(100);
        let preview = key_preview(&long);
        assert_eq!(preview.chars().count(), 64 + 3);
        assert!(preview.ends_with("..."));
        assert_eq!(key_preview(&"x".repeat(64)), "x".repeat(64));
    }
}
