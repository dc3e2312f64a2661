//! Reference matchers for the `pattern` target, copied from the unit tests of
//! `crates/nfcs-cache-core/src/pattern.rs` (`reference_match`, written straight from the
//! syntax table, and `redis_byte_match`, Redis's `stringmatchlen`), with one change: both are
//! memoised on (pattern offset, key offset), so that they stay polynomial on the inputs a
//! fuzzer writes (`*a*a*a*...` is exponential in the originals). The logic of each case is the
//! original's, line for line.

use std::collections::HashMap;

/// Whether `key` matches `pattern` by the syntax table; `None` when the pattern is malformed
/// (an unterminated or empty class, a trailing `\`). The empty pattern matches only the empty
/// key here (`Pattern::new` refuses it: no valid key is empty).
pub fn reference_match(pattern: &[char], key: &[char]) -> Option<bool> {
    Reference {
        pattern,
        key,
        memo: HashMap::new(),
    }
    .at(0, 0)
}

struct Reference<'a> {
    pattern: &'a [char],
    key: &'a [char],
    memo: HashMap<(usize, usize), Option<bool>>,
}

impl Reference<'_> {
    fn at(&mut self, p: usize, k: usize) -> Option<bool> {
        if let Some(&known) = self.memo.get(&(p, k)) {
            return known;
        }
        let result = self.compute(p, k);
        self.memo.insert((p, k), result);
        result
    }

    fn compute(&mut self, p: usize, k: usize) -> Option<bool> {
        let pattern = &self.pattern[p..];
        let key = &self.key[k..];
        // `key.get(1..).unwrap_or(&[])` of the original, as an offset.
        let key_rest = (k + 1).min(self.key.len());
        let Some(&first) = pattern.first() else {
            return Some(key.is_empty());
        };
        match first {
            '*' => {
                // Validate the rest even when the key is exhausted.
                let mut any = false;
                for skip in 0..=key.len() {
                    if self.at(p + 1, k + skip)? {
                        any = true;
                    }
                }
                Some(any)
            }
            '?' => {
                let rest = self.at(p + 1, key_rest)?;
                Some(!key.is_empty() && rest)
            }
            '\\' => {
                let escaped = *pattern.get(1)?;
                let rest = self.at(p + 2, key_rest)?;
                Some(key.first() == Some(&escaped) && rest)
            }
            '[' => {
                let mut index = 1;
                let negated = pattern.get(1) == Some(&'^');
                if negated {
                    index += 1;
                }
                let mut members = Vec::new();
                loop {
                    match pattern.get(index)? {
                        ']' => break,
                        '\\' => {
                            members.push((*pattern.get(index + 1)?, true));
                            index += 2;
                        }
                        &c => {
                            members.push((c, false));
                            index += 1;
                        }
                    }
                }
                if members.is_empty() {
                    return None;
                }
                let rest = self.at(p + index + 1, key_rest)?;
                let Some(&c) = key.first() else {
                    return Some(false);
                };
                let mut inside = false;
                let mut m = 0;
                while m < members.len() {
                    if m + 2 < members.len() && members[m + 1] == ('-', false) {
                        let (a, b) = (members[m].0, members[m + 2].0);
                        inside |= a.min(b) <= c && c <= a.max(b);
                        m += 3;
                    } else {
                        inside |= members[m].0 == c;
                        m += 1;
                    }
                }
                Some(rest && inside != negated)
            }
            literal => {
                let rest = self.at(p + 1, key_rest)?;
                Some(key.first() == Some(&literal) && rest)
            }
        }
    }
}

/// Redis's own byte-wise matcher (util.c `stringmatchlen`), for checking that
/// `Pattern::to_redis_superset` never loses a match.
pub fn redis_byte_match(pattern: &[u8], key: &[u8]) -> bool {
    RedisMatch {
        pattern,
        key,
        memo: HashMap::new(),
    }
    .at(0, 0)
}

struct RedisMatch<'a> {
    pattern: &'a [u8],
    key: &'a [u8],
    memo: HashMap<(usize, usize), bool>,
}

impl RedisMatch<'_> {
    fn at(&mut self, p: usize, k: usize) -> bool {
        if let Some(&known) = self.memo.get(&(p, k)) {
            return known;
        }
        let result = self.compute(p, k);
        self.memo.insert((p, k), result);
        result
    }

    fn compute(&mut self, p: usize, k: usize) -> bool {
        let pattern = &self.pattern[p..];
        let key = &self.key[k..];
        match pattern.first() {
            None => key.is_empty(),
            Some(b'*') => (0..=key.len()).any(|skip| self.at(p + 1, k + skip)),
            Some(b'?') => !key.is_empty() && self.at(p + 1, k + 1),
            Some(b'\\') if pattern.len() >= 2 => {
                key.first() == Some(&pattern[1]) && self.at(p + 2, k + 1)
            }
            Some(b'[') => {
                let Some(&c) = key.first() else { return false };
                let mut index = 1;
                let negated = pattern.get(1) == Some(&b'^');
                if negated {
                    index += 1;
                }
                let mut matched = false;
                loop {
                    match pattern.get(index) {
                        None => break,
                        Some(b']') => break,
                        Some(b'\\') if index + 1 < pattern.len() => {
                            matched |= pattern[index + 1] == c;
                            index += 2;
                        }
                        Some(&a)
                            if pattern.get(index + 1) == Some(&b'-')
                                && index + 2 < pattern.len() =>
                        {
                            let b = pattern[index + 2];
                            matched |= a.min(b) <= c && c <= a.max(b);
                            index += 3;
                        }
                        Some(&a) => {
                            matched |= a == c;
                            index += 1;
                        }
                    }
                }
                // `pattern.get(index + 1..).unwrap_or(&[])` of the original, as an offset.
                let rest = (p + index + 1).min(self.pattern.len());
                (matched != negated) && self.at(rest, k + 1)
            }
            Some(&literal) => key.first() == Some(&literal) && self.at(p + 1, k + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(text: &str) -> Vec<char> {
        text.chars().collect()
    }

    #[test]
    fn the_memoised_reference_keeps_the_originals_answers() {
        let cases = [
            ("policy_*", "policy_read", Some(true)),
            ("h[^e]llo", "hello", Some(false)),
            ("h[b-a]llo", "hallo", Some(true)),
            ("a[\\-z]", "ab", Some(false)),
            ("*?x", "x", Some(false)),
            ("a*b*c", "abbbcbc", Some(true)),
            ("abc[de", "abcd", None),
            ("a[]", "a", None),
            ("*abc\\", "", None),
        ];
        for (pattern, key, expected) in cases {
            assert_eq!(
                reference_match(&chars(pattern), &chars(key)),
                expected,
                "{pattern:?} {key:?}"
            );
        }
        let long = "*a".repeat(40);
        assert_eq!(
            reference_match(&chars(&long), &chars(&"b".repeat(60))),
            Some(false)
        );
        assert!(redis_byte_match(b"user_?*_[ab]", b"user_xy_b"));
        assert!(!redis_byte_match(b"a[b-d]", b"ae"));
    }
}
