//! Redis-compatible glob patterns, compiled once and matched by every tier.
//!
//! The syntax is Redis's (`KEYS`, `SCAN MATCH`), with two deliberate differences, both about
//! what Redis silently accepts:
//!
//! | syntax   | matches                                                             |
//! |----------|---------------------------------------------------------------------|
//! | `*`      | any sequence of characters, including none                          |
//! | `?`      | exactly one character                                               |
//! | `[abc]`  | one of `a`, `b`, `c`                                                |
//! | `[^abc]` | one character that is not `a`, `b` or `c`                           |
//! | `[a-z]`  | one character from `a` to `z` (a reversed range `[z-a]` is the same)|
//! | `\x`     | the character `x` itself, also inside a class (`[\]]`)              |
//!
//! - Matching is over Unicode characters, not bytes: `?` matches `é` in a key. (Redis matches
//!   bytes; [`Pattern::to_redis_superset`] bridges the two for the Redis tier.)
//! - A `-` that is first or last in a class is a literal `-`.
//! - Malformed patterns are errors instead of matching something surprising: an unterminated
//!   class (`[abc`), an empty class (`[]`, which in Redis matches nothing), a trailing `\`, the
//!   empty pattern (it can match no valid key), and patterns longer than [`MAX_PATTERN_LEN`].

use std::fmt;

/// The longest pattern accepted, in bytes. Twice the longest key, so that a fully escaped key
/// is still a valid pattern.
pub const MAX_PATTERN_LEN: usize = 2 * crate::key::MAX_KEY_LEN;

/// A compiled glob pattern.
///
/// Compile once with [`Pattern::new`] (or `str::parse`), then call [`Pattern::matches`] for
/// each key. Matching runs in `O(pattern length x key length)` time in the worst case, never
/// exponentially, and common shapes (`prefix*`, `*suffix`, `*infix*`, exact text) take a
/// single string comparison.
///
/// ```
/// use nfcs_cache_core::Pattern;
///
/// let pattern = Pattern::new("policy_[a-c]?_*")?;
/// assert!(pattern.matches("policy_b7_read"));
/// assert!(!pattern.matches("policy_d7_read"));
/// assert!(Pattern::new("cgl_*")?.matches("cgl_128"));
/// # Ok::<(), nfcs_cache_core::PatternError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    shape: Shape,
}

/// What the compiled pattern looks like, so that common shapes skip the general matcher.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Shape {
    /// No wildcard: the key must equal the text.
    Exact(String),
    /// `*` alone (possibly repeated): every key.
    Everything,
    /// `text*`.
    Prefix(String),
    /// `*text`.
    Suffix(String),
    /// `*text*`.
    Contains(String),
    /// Anything else. `literal_prefix` is the text every match starts with.
    General {
        tokens: Vec<Token>,
        literal_prefix: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// A run of literal characters.
    Literal(String),
    /// `?`
    AnyChar,
    /// `*`
    AnySequence,
    /// `[...]`
    Class(CharClass),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct CharClass {
    negated: bool,
    /// Inclusive ranges; a single character `c` is `(c, c)`.
    ranges: Vec<(char, char)>,
}

impl CharClass {
    fn matches(&self, c: char) -> bool {
        let inside = self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
        inside != self.negated
    }
}

/// Why a pattern was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PatternProblem {
    /// The pattern is empty; it could only match the empty key, which is not a valid key.
    Empty,
    /// The pattern is longer than [`MAX_PATTERN_LEN`] bytes.
    TooLong {
        /// The pattern's length in bytes.
        len: usize,
    },
    /// A `[` without its closing `]`.
    UnterminatedClass,
    /// `[]` or `[^]`: a class with no members.
    EmptyClass,
    /// A `\` at the very end, escaping nothing.
    TrailingEscape,
}

impl fmt::Display for PatternProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternProblem::Empty => f.write_str("the pattern is empty"),
            PatternProblem::TooLong { len } => write!(
                f,
                "the pattern is {len} bytes long, the limit is {MAX_PATTERN_LEN} bytes"
            ),
            PatternProblem::UnterminatedClass => {
                f.write_str("'[' opens a character class that is never closed with ']'")
            }
            PatternProblem::EmptyClass => {
                f.write_str("empty character class (write '\\[' or '\\]' for a literal bracket)")
            }
            PatternProblem::TrailingEscape => f.write_str("'\\' at the end escapes nothing"),
        }
    }
}

/// A pattern that could not be compiled: which pattern, where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid glob pattern {pattern:?} at character {position}: {problem}")]
pub struct PatternError {
    /// The pattern (shortened to its first 64 characters when longer).
    pub pattern: String,
    /// The character index (not byte offset) where the problem starts.
    pub position: usize,
    /// What is wrong.
    pub problem: PatternProblem,
}

impl Pattern {
    /// Compiles `pattern`.
    ///
    /// # Errors
    /// [`PatternError`] naming the position and the problem for a malformed pattern (see the
    /// module documentation for the rules).
    pub fn new(pattern: &str) -> Result<Pattern, PatternError> {
        let fail = |position, problem| PatternError {
            pattern: crate::key::key_preview(pattern),
            position,
            problem,
        };
        if pattern.is_empty() {
            return Err(fail(0, PatternProblem::Empty));
        }
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(fail(0, PatternProblem::TooLong { len: pattern.len() }));
        }
        let tokens = tokenize(pattern).map_err(|(position, problem)| fail(position, problem))?;
        Ok(Pattern {
            source: pattern.to_owned(),
            shape: Shape::from_tokens(tokens),
        })
    }

    /// The text the pattern was compiled from.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `key` matches the whole pattern.
    #[inline]
    pub fn matches(&self, key: &str) -> bool {
        match &self.shape {
            Shape::Exact(text) => key == text,
            Shape::Everything => true,
            Shape::Prefix(prefix) => key.starts_with(prefix.as_str()),
            Shape::Suffix(suffix) => key.ends_with(suffix.as_str()),
            Shape::Contains(infix) => key.contains(infix.as_str()),
            Shape::General {
                tokens,
                literal_prefix,
            } => key.starts_with(literal_prefix.as_str()) && match_tokens(tokens, key),
        }
    }

    /// The literal text every matching key starts with (empty when the pattern starts with a
    /// wildcard). Ordered stores can use it to narrow a scan.
    pub fn literal_prefix(&self) -> &str {
        match &self.shape {
            Shape::Exact(text) | Shape::Prefix(text) => text,
            Shape::General { literal_prefix, .. } => literal_prefix,
            Shape::Everything | Shape::Suffix(_) | Shape::Contains(_) => "",
        }
    }

    /// Whether the pattern has no wildcard at all, so it names exactly one key.
    pub fn is_exact(&self) -> bool {
        matches!(self.shape, Shape::Exact(_))
    }

    /// A Redis glob that matches at least every key this pattern matches.
    ///
    /// Redis matches bytes, this pattern matches characters, so `?` and negated or non-ASCII
    /// classes cannot be handed to Redis as they are: `?` becomes `?*` (one or more bytes) and
    /// such classes the same. Literal text and ASCII classes pass through unchanged. The Redis
    /// tier gives this to `SCAN MATCH` and filters what comes back with [`Pattern::matches`],
    /// so both tiers remove exactly the same keys.
    ///
    /// ```
    /// use nfcs_cache_core::Pattern;
    /// assert_eq!(Pattern::new("user_?_[ab]")?.to_redis_superset(), "user_?*_[ab]");
    /// assert_eq!(Pattern::new("a\\*b*")?.to_redis_superset(), "a\\*b*");
    /// # Ok::<(), nfcs_cache_core::PatternError>(())
    /// ```
    pub fn to_redis_superset(&self) -> String {
        let tokens = match tokenize(&self.source) {
            Ok(tokens) => tokens,
            // The source compiled once already; it cannot fail now. Matching everything is
            // still a correct superset if it ever did.
            Err(_) => return "*".to_owned(),
        };
        let mut out = String::with_capacity(self.source.len() + 4);
        for token in tokens {
            match token {
                Token::Literal(text) => {
                    for c in text.chars() {
                        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                }
                Token::AnySequence => {
                    if !out.ends_with('*') || out.ends_with("\\*") {
                        out.push('*');
                    }
                }
                Token::AnyChar => out.push_str("?*"),
                Token::Class(class) => {
                    // Redis reads a range's endpoints raw, so a range whose endpoint is a
                    // character with a meaning inside a class cannot be written for it.
                    let special = |c: char| matches!(c, '\\' | ']' | '[' | '-' | '^');
                    let expressible = class.ranges.iter().all(|&(lo, hi)| {
                        lo.is_ascii()
                            && hi.is_ascii()
                            && (lo == hi || !(special(lo) || special(hi)))
                    });
                    if class.negated || !expressible {
                        out.push_str("?*");
                    } else {
                        out.push('[');
                        for (lo, hi) in class.ranges {
                            push_class_char(&mut out, lo);
                            if lo != hi {
                                out.push('-');
                                out.push(hi);
                            }
                        }
                        out.push(']');
                    }
                }
            }
        }
        out
    }
}

fn push_class_char(out: &mut String, c: char) {
    if matches!(c, ']' | '\\' | '-' | '^' | '[') {
        out.push('\\');
    }
    out.push(c);
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.source).finish()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for Pattern {
    type Err = PatternError;

    fn from_str(pattern: &str) -> Result<Pattern, PatternError> {
        Pattern::new(pattern)
    }
}

impl TryFrom<&str> for Pattern {
    type Error = PatternError;

    fn try_from(pattern: &str) -> Result<Pattern, PatternError> {
        Pattern::new(pattern)
    }
}

impl Shape {
    fn from_tokens(mut tokens: Vec<Token>) -> Shape {
        // Adjacent stars mean the same as one.
        tokens.dedup_by(|a, b| *a == Token::AnySequence && *b == Token::AnySequence);
        match tokens.as_slice() {
            [Token::Literal(text)] => return Shape::Exact(text.clone()),
            [Token::AnySequence] => return Shape::Everything,
            [Token::Literal(text), Token::AnySequence] => return Shape::Prefix(text.clone()),
            [Token::AnySequence, Token::Literal(text)] => return Shape::Suffix(text.clone()),
            [Token::AnySequence, Token::Literal(text), Token::AnySequence] => {
                return Shape::Contains(text.clone());
            }
            _ => {}
        }
        let literal_prefix = match tokens.first() {
            Some(Token::Literal(text)) => text.clone(),
            _ => String::new(),
        };
        Shape::General {
            tokens,
            literal_prefix,
        }
    }
}

/// Splits a pattern into tokens, merging adjacent literal characters.
/// Errors carry the character index where the problem starts.
fn tokenize(pattern: &str) -> Result<Vec<Token>, (usize, PatternProblem)> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut literal = String::new();
    let mut index = 0;
    let flush = |literal: &mut String, tokens: &mut Vec<Token>| {
        if !literal.is_empty() {
            tokens.push(Token::Literal(std::mem::take(literal)));
        }
    };
    while index < chars.len() {
        match chars[index] {
            '*' => {
                flush(&mut literal, &mut tokens);
                tokens.push(Token::AnySequence);
                index += 1;
            }
            '?' => {
                flush(&mut literal, &mut tokens);
                tokens.push(Token::AnyChar);
                index += 1;
            }
            '\\' => {
                let escaped = *chars
                    .get(index + 1)
                    .ok_or((index, PatternProblem::TrailingEscape))?;
                literal.push(escaped);
                index += 2;
            }
            '[' => {
                flush(&mut literal, &mut tokens);
                let (class, next) = parse_class(&chars, index)?;
                tokens.push(Token::Class(class));
                index = next;
            }
            c => {
                literal.push(c);
                index += 1;
            }
        }
    }
    flush(&mut literal, &mut tokens);
    Ok(tokens)
}

/// Parses the class that opens at `chars[open]` (a `[`); returns it and the index after `]`.
fn parse_class(chars: &[char], open: usize) -> Result<(CharClass, usize), (usize, PatternProblem)> {
    let mut index = open + 1;
    let negated = chars.get(index) == Some(&'^');
    if negated {
        index += 1;
    }
    // Members as (character, was it escaped): an escaped '-' is never a range operator.
    let mut members: Vec<(char, bool)> = Vec::new();
    loop {
        match chars.get(index) {
            None => return Err((open, PatternProblem::UnterminatedClass)),
            Some(']') => {
                index += 1;
                break;
            }
            Some('\\') => {
                let escaped = *chars
                    .get(index + 1)
                    .ok_or((index, PatternProblem::TrailingEscape))?;
                members.push((escaped, true));
                index += 2;
            }
            Some(&c) => {
                members.push((c, false));
                index += 1;
            }
        }
    }
    if members.is_empty() {
        return Err((open, PatternProblem::EmptyClass));
    }
    let mut ranges = Vec::with_capacity(members.len());
    let mut member = 0;
    while member < members.len() {
        let (lo, _) = members[member];
        // `a-z`: an unescaped '-' with a member on each side. A '-' first or last is literal.
        let is_range = member + 2 < members.len() && members[member + 1] == ('-', false);
        if is_range {
            let (hi, _) = members[member + 2];
            ranges.push(if lo <= hi { (lo, hi) } else { (hi, lo) });
            member += 3;
        } else {
            ranges.push((lo, lo));
            member += 1;
        }
    }
    Ok((CharClass { negated, ranges }, index))
}

/// The general matcher: classic wildcard matching that backtracks only to the most recent
/// `*`, which is enough because every other token consumes a fixed number of characters.
fn match_tokens(tokens: &[Token], key: &str) -> bool {
    let mut token_index = 0;
    let mut position = 0;
    // (token after the last star, key position the star's match currently ends at)
    let mut last_star: Option<(usize, usize)> = None;
    loop {
        if let Some(token) = tokens.get(token_index) {
            if let Token::AnySequence = token {
                last_star = Some((token_index + 1, position));
                token_index += 1;
                continue;
            }
            if let Some(next) = match_one(token, key, position) {
                token_index += 1;
                position = next;
                continue;
            }
        } else if position == key.len() {
            return true;
        }
        // Mismatch: let the last star swallow one more character and retry after it.
        match last_star {
            Some((resume, star_end)) => match key[star_end..].chars().next() {
                Some(c) => {
                    let star_end = star_end + c.len_utf8();
                    last_star = Some((resume, star_end));
                    token_index = resume;
                    position = star_end;
                }
                None => return false,
            },
            None => return false,
        }
    }
}

/// Matches one fixed-width token at `position`; returns the position after it.
#[inline]
fn match_one(token: &Token, key: &str, position: usize) -> Option<usize> {
    let rest = &key[position..];
    match token {
        Token::Literal(text) => rest
            .starts_with(text.as_str())
            .then(|| position + text.len()),
        Token::AnyChar => rest.chars().next().map(|c| position + c.len_utf8()),
        Token::Class(class) => rest
            .chars()
            .next()
            .filter(|&c| class.matches(c))
            .map(|c| position + c.len_utf8()),
        Token::AnySequence => Some(position),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn matches(pattern: &str, key: &str) -> bool {
        Pattern::new(pattern).unwrap().matches(key)
    }

    #[test]
    fn each_construct_of_the_syntax() {
        assert!(matches("policy_*", "policy_"));
        assert!(matches("policy_*", "policy_read"));
        assert!(!matches("policy_*", "policies"));
        assert!(matches("*_read", "policy_read"));
        assert!(matches("*cgl*", "x_cgl_y"));
        assert!(matches("h?llo", "hello"));
        assert!(matches("h?llo", "h\u{e9}llo"));
        assert!(!matches("h?llo", "hllo"));
        assert!(matches("h[ae]llo", "hallo"));
        assert!(!matches("h[ae]llo", "hillo"));
        assert!(matches("h[^e]llo", "hallo"));
        assert!(!matches("h[^e]llo", "hello"));
        assert!(matches("h[a-b]llo", "hbllo"));
        assert!(
            matches("h[b-a]llo", "hallo"),
            "reversed ranges work as in Redis"
        );
        assert!(matches("a[-x]", "a-"));
        assert!(matches("a[x-]", "a-"));
        assert!(!matches("a[x-]", "aw"));
        assert!(matches("a\\*b", "a*b"));
        assert!(!matches("a\\*b", "axb"));
        assert!(matches("a[\\]]", "a]"));
        assert!(
            matches("a[\\-z]", "a-"),
            "an escaped '-' is a member, not a range"
        );
        assert!(!matches("a[\\-z]", "ab"));
        assert!(matches("*", ""));
        assert!(matches("**a**", "a"));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exact!"));
    }

    #[test]
    fn backtracking_cases() {
        assert!(matches("*a*b", "xaaab"));
        assert!(matches("a*b*c", "abbbcbc"));
        assert!(!matches("a*b*c", "abbbcb"));
        assert!(matches("*?x", "yx"));
        assert!(!matches("*?x", "x"));
        assert!(matches("[ab]*[ab]", "a--b"));
    }

    #[test]
    fn malformed_patterns_are_typed_errors_naming_the_position() {
        let problem = |p: &str| Pattern::new(p).map(|_| ()).unwrap_err();
        assert_eq!(problem("").problem, PatternProblem::Empty);
        let unterminated = problem("abc[de");
        assert_eq!(unterminated.problem, PatternProblem::UnterminatedClass);
        assert_eq!(unterminated.position, 3);
        assert!(unterminated.to_string().contains("never closed"));
        assert_eq!(problem("a[]").problem, PatternProblem::EmptyClass);
        assert_eq!(problem("a[^]").problem, PatternProblem::EmptyClass);
        assert_eq!(problem("abc\\").problem, PatternProblem::TrailingEscape);
        assert_eq!(problem("[a\\").problem, PatternProblem::TrailingEscape);
        assert!(matches!(
            problem(&"a".repeat(MAX_PATTERN_LEN + 1)).problem,
            PatternProblem::TooLong { .. }
        ));
    }

    #[test]
    fn shapes_are_recognised() {
        assert!(Pattern::new("abc").unwrap().is_exact());
        assert!(Pattern::new("a\\*").unwrap().is_exact());
        assert_eq!(
            Pattern::new("policy_*").unwrap().literal_prefix(),
            "policy_"
        );
        assert_eq!(Pattern::new("cgl_?_x").unwrap().literal_prefix(), "cgl_");
        assert_eq!(Pattern::new("*x").unwrap().literal_prefix(), "");
    }

    #[test]
    fn redis_superset_escapes_and_widens() {
        let superset = |p: &str| Pattern::new(p).unwrap().to_redis_superset();
        assert_eq!(superset("policy_*"), "policy_*");
        assert_eq!(superset("a?b"), "a?*b");
        assert_eq!(superset("a[^b]c"), "a?*c");
        assert_eq!(superset("a[\u{e9}]c"), "a?*c");
        assert_eq!(superset("a[b-d]"), "a[b-d]");
        assert_eq!(superset("a[\\]x]"), "a[\\]x]");
        assert_eq!(superset("a**"), "a*");
        assert_eq!(superset("a\\**"), "a\\**");
        assert_eq!(superset("x\\?"), "x\\?");
    }

    /// An independent matcher, written straight from the syntax table: recursive, exponential,
    /// obviously right for short inputs. `None` means the pattern is malformed.
    fn reference_match(pattern: &[char], key: &[char]) -> Option<bool> {
        let Some(&first) = pattern.first() else {
            return Some(key.is_empty());
        };
        match first {
            '*' => {
                let rest = &pattern[1..];
                // Validate the rest even when the key is exhausted.
                let mut any = false;
                for skip in 0..=key.len() {
                    if reference_match(rest, &key[skip..])? {
                        any = true;
                    }
                }
                Some(any)
            }
            '?' => {
                let rest = reference_match(&pattern[1..], key.get(1..).unwrap_or(&[]))?;
                Some(!key.is_empty() && rest)
            }
            '\\' => {
                let escaped = *pattern.get(1)?;
                let rest = reference_match(&pattern[2..], key.get(1..).unwrap_or(&[]))?;
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
                let rest = reference_match(&pattern[index + 1..], key.get(1..).unwrap_or(&[]))?;
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
                let rest = reference_match(&pattern[1..], key.get(1..).unwrap_or(&[]))?;
                Some(key.first() == Some(&literal) && rest)
            }
        }
    }

    fn pattern_strategy() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            4 => prop::sample::select(vec!["a", "b", "c", "\u{e9}", "_"]),
            2 => Just("*"),
            2 => Just("?"),
            1 => prop::sample::select(vec!["[ab]", "[^a]", "[a-c]", "[c-a]", "[-a]", "[a-]",
                "[\\]]", "[--a]", "[a-\\]]", "[\u{e9}b]", "\\*", "\\?", "\\[", "\\\\", "[", "]", "\\", "[]", "-", "^"]),
        ];
        prop::collection::vec(piece, 1..7).prop_map(|pieces| pieces.concat())
    }

    fn key_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![
                'a', 'b', 'c', '\u{e9}', '_', '*', '?', '[', ']', '\\', '-',
            ]),
            0..9,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn compiled_matcher_agrees_with_the_reference(pattern in pattern_strategy(), key in key_strategy()) {
            let pattern_chars: Vec<char> = pattern.chars().collect();
            let key_chars: Vec<char> = key.chars().collect();
            let expected = reference_match(&pattern_chars, &key_chars);
            match (Pattern::new(&pattern), expected) {
                (Ok(compiled), Some(expected)) => prop_assert_eq!(compiled.matches(&key), expected,
                    "pattern {:?} key {:?}", pattern, key),
                (Err(_), None) => {}
                (compiled, expected) => prop_assert!(false,
                    "validity differs for {:?}: compiled {:?}, reference {:?}", pattern, compiled, expected),
            }
        }

        #[test]
        fn redis_superset_never_loses_a_match(pattern in pattern_strategy(), key in key_strategy()) {
            if let Ok(compiled) = Pattern::new(&pattern)
                && compiled.matches(&key)
            {
                let superset = compiled.to_redis_superset();
                prop_assert!(redis_byte_match(superset.as_bytes(), key.as_bytes()),
                    "superset {:?} of {:?} misses {:?}", superset, pattern, key);
            }
        }
    }

    /// Redis's own byte-wise matcher (util.c `stringmatchlen`), transcribed for the superset test.
    fn redis_byte_match(pattern: &[u8], key: &[u8]) -> bool {
        match pattern.first() {
            None => key.is_empty(),
            Some(b'*') => (0..=key.len()).any(|skip| redis_byte_match(&pattern[1..], &key[skip..])),
            Some(b'?') => !key.is_empty() && redis_byte_match(&pattern[1..], &key[1..]),
            Some(b'\\') if pattern.len() >= 2 => {
                key.first() == Some(&pattern[1]) && redis_byte_match(&pattern[2..], &key[1..])
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
                (matched != negated)
                    && redis_byte_match(pattern.get(index + 1..).unwrap_or(&[]), &key[1..])
            }
            Some(&literal) => {
                key.first() == Some(&literal) && redis_byte_match(&pattern[1..], &key[1..])
            }
        }
    }
}
