//! `nfcs_cache_core::Pattern`: compilation and matching of (pattern, key) pairs from
//! `arbitrary`, against the reference matcher of the core crate's unit tests (copied, memoised,
//! into `nfcs_fuzz::glob`). Checked:
//!
//! - nothing panics, whatever the pattern (up to the 8,192-byte limit and past it);
//! - a pattern compiles exactly when the reference finds it well formed (the empty pattern and
//!   patterns over the length limit are refused with their own problems);
//! - for patterns and keys of up to 64 characters, `matches` agrees with the reference;
//! - every match starts with `literal_prefix()`; an exact pattern matches only its text;
//! - `to_redis_superset()` compiles as a Redis glob that matches (byte-wise, as Redis does)
//!   every key the pattern matches;
//! - `as_str`, `Display` and `FromStr` round-trip.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use nfcs_cache_core::pattern::MAX_PATTERN_LEN;
use nfcs_cache_core::{Pattern, PatternProblem};
use nfcs_fuzz::glob::{redis_byte_match, reference_match};

/// Longest pattern and key (in characters) compared with the reference.
const COMPARED: usize = 64;

#[derive(Debug, Arbitrary)]
struct Case {
    pattern: String,
    key: String,
    /// More keys for the same pattern (compiled once, as the tiers use it).
    more: Vec<String>,
}

fn check_key(compiled: &Pattern, pattern: &[char], key: &str) {
    let matched = compiled.matches(key);
    let key_chars: Vec<char> = key.chars().collect();
    if pattern.len() <= COMPARED && key_chars.len() <= COMPARED {
        let expected = reference_match(pattern, &key_chars);
        assert_eq!(
            Some(matched),
            expected,
            "pattern {:?} on key {key:?}",
            compiled.as_str()
        );
    }
    if matched {
        assert!(
            key.starts_with(compiled.literal_prefix()),
            "{key:?} matches {:?} but does not start with its literal prefix {:?}",
            compiled.as_str(),
            compiled.literal_prefix()
        );
        let superset = compiled.to_redis_superset();
        if superset.len() <= 4 * COMPARED && key.len() <= 4 * COMPARED {
            assert!(
                redis_byte_match(superset.as_bytes(), key.as_bytes()),
                "the Redis superset {superset:?} of {:?} misses {key:?}",
                compiled.as_str()
            );
        }
    }
}

fuzz_target!(|case: Case| {
    let chars: Vec<char> = case.pattern.chars().collect();
    match Pattern::new(&case.pattern) {
        Ok(compiled) => {
            assert!(!case.pattern.is_empty() && case.pattern.len() <= MAX_PATTERN_LEN);
            if chars.len() <= COMPARED {
                assert!(
                    reference_match(&chars, &[]).is_some(),
                    "{:?} compiles but the reference finds it malformed",
                    case.pattern
                );
            }
            assert_eq!(compiled.as_str(), case.pattern);
            assert_eq!(compiled.to_string(), case.pattern);
            let reparsed: Pattern = case.pattern.parse().expect("it compiled once");
            assert_eq!(reparsed, compiled);
            if compiled.is_exact() {
                // The literal prefix of an exact pattern is its whole (unescaped) text.
                let text = compiled.literal_prefix().to_owned();
                assert!(compiled.matches(&text));
                if !case.key.is_empty() && case.key != text {
                    assert!(!compiled.matches(&case.key));
                }
            }
            for key in std::iter::once(&case.key).chain(case.more.iter().take(8)) {
                check_key(&compiled, &chars, key);
            }
            // The literal prefix with the key's text after it is a near miss worth trying.
            let near = format!("{}{}", compiled.literal_prefix(), case.key);
            check_key(&compiled, &chars, &near);
        }
        Err(error) => {
            let _ = error.to_string();
            match error.problem {
                PatternProblem::Empty => assert!(case.pattern.is_empty()),
                PatternProblem::TooLong { len } => {
                    assert_eq!(len, case.pattern.len());
                    assert!(len > MAX_PATTERN_LEN);
                }
                _ => {
                    assert!(error.position <= chars.len());
                    if chars.len() <= COMPARED {
                        assert_eq!(
                            reference_match(&chars, &[]),
                            None,
                            "{:?} is refused ({error}) but the reference finds it well formed",
                            case.pattern
                        );
                    }
                }
            }
        }
    }
});
