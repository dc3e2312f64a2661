//! The contradiction guard: a cheap lexical check that keeps opposite questions apart.
//!
//! Sentence embeddings place a question and its opposite close together: under
//! all-MiniLM-L6-v2, "Is coffee good for your health?" and "Is coffee bad for your health?" sit
//! at cosine 0.954, "Allow the user to delete the file" and "Forbid the user to delete the file"
//! at 0.962, "Convert Celsius to Fahrenheit" and "Convert Fahrenheit to Celsius" at 0.994: above
//! the default threshold of 0.95, so a semantic cache on embeddings alone answers one with the
//! other's answer (GPTCache#694). The guard compares the words of the two texts and rejects the
//! match when they differ in a way that usually reverses a meaning.

/// Words that negate what follows.
const NEGATIONS: &[&str] = &[
    "not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "without", "cannot",
];

/// Pairs of words of opposite meaning (either order).
const OPPOSITES: &[(&str, &str)] = &[
    ("above", "below"),
    ("accept", "reject"),
    ("add", "remove"),
    ("after", "before"),
    ("all", "none"),
    ("allow", "deny"),
    ("allow", "forbid"),
    ("allow", "block"),
    ("always", "never"),
    ("approve", "deny"),
    ("approve", "reject"),
    ("ascending", "descending"),
    ("best", "worst"),
    ("better", "worse"),
    ("big", "small"),
    ("bigger", "smaller"),
    ("buy", "sell"),
    ("cheap", "expensive"),
    ("close", "open"),
    ("cold", "hot"),
    ("create", "delete"),
    ("create", "destroy"),
    ("down", "up"),
    ("early", "late"),
    ("east", "west"),
    ("enter", "exit"),
    ("everything", "nothing"),
    ("external", "internal"),
    ("fail", "pass"),
    ("failure", "success"),
    ("false", "true"),
    ("fast", "slow"),
    ("faster", "slower"),
    ("first", "last"),
    ("gain", "lose"),
    ("good", "bad"),
    ("hate", "love"),
    ("heavy", "light"),
    ("high", "low"),
    ("higher", "lower"),
    ("import", "export"),
    ("in", "out"),
    ("include", "exclude"),
    ("increase", "decrease"),
    ("increase", "reduce"),
    ("inside", "outside"),
    ("join", "leave"),
    ("large", "small"),
    ("larger", "smaller"),
    ("left", "right"),
    ("less", "more"),
    ("least", "most"),
    ("long", "short"),
    ("lose", "win"),
    ("max", "min"),
    ("maximum", "minimum"),
    ("negative", "positive"),
    ("new", "old"),
    ("north", "south"),
    ("off", "on"),
    ("over", "under"),
    ("permit", "forbid"),
    ("pull", "push"),
    ("raise", "lower"),
    ("receive", "send"),
    ("safe", "dangerous"),
    ("start", "stop"),
    ("start", "end"),
    ("upload", "download"),
    ("yes", "no"),
];

/// Prefixes that turn a word into its opposite (`enable`/`disable`, `lock`/`unlock`,
/// `valid`/`invalid`, `encrypt`/`decrypt`, `compliant`/`noncompliant`).
const NEGATING_PREFIXES: &[&str] = &["un", "dis", "in", "im", "il", "ir", "non", "non-", "de"];

/// The lower-case words of `text` (letters, digits and apostrophes).
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’'))
        .filter(|word| !word.is_empty())
        .map(|word| word.to_lowercase().replace('’', "'"))
        .collect()
}

fn is_negation(word: &str) -> bool {
    NEGATIONS.contains(&word) || word.ends_with("n't")
}

/// Whether `a` and `b` are opposites, by the table or by a negating prefix.
fn opposite(a: &str, b: &str) -> bool {
    if OPPOSITES
        .iter()
        .any(|&(x, y)| (a == x && b == y) || (a == y && b == x))
    {
        return true;
    }
    let prefixed = |word: &str, stem: &str| {
        NEGATING_PREFIXES.iter().any(|prefix| {
            word.strip_prefix(prefix)
                .is_some_and(|rest| stem.len() >= 3 && rest.starts_with(stem))
        })
    };
    // `enable`/`disable` share the stem `able`: strip the common ending too.
    let stem_of = |word: &str| word.strip_prefix("en").unwrap_or(word).to_owned();
    prefixed(a, b) || prefixed(b, a) || prefixed(a, &stem_of(b)) || prefixed(b, &stem_of(a))
}

/// Whether two texts that embed close together probably mean opposite things: one negates
/// where the other does not, they differ by a pair of opposite words (`buy`/`sell`,
/// `enable`/`disable`, `on`/`off`, ...), or they hold the same words in another order
/// ("Celsius to Fahrenheit" against "Fahrenheit to Celsius"). A lexical heuristic: it catches
/// the common cases, not every contradiction a language allows.
pub(crate) fn contradicts(a: &str, b: &str) -> bool {
    let a = words(a);
    let b = words(b);
    let negations = |words: &[String]| words.iter().filter(|word| is_negation(word)).count();
    if negations(&a) % 2 != negations(&b) % 2 {
        return true;
    }
    let only_a: Vec<&String> = a.iter().filter(|word| !b.contains(word)).collect();
    let only_b: Vec<&String> = b.iter().filter(|word| !a.contains(word)).collect();
    if only_a.iter().any(|x| only_b.iter().any(|y| opposite(x, y))) {
        return true;
    }
    // The same words in another order.
    if a != b && a.len() > 1 {
        let mut sorted_a = a.clone();
        let mut sorted_b = b.clone();
        sorted_a.sort_unstable();
        sorted_b.sort_unstable();
        if sorted_a == sorted_b {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::contradicts;

    #[test]
    fn opposites_are_caught() {
        for (a, b) in [
            (
                "How do I enable two-factor authentication?",
                "How do I disable two-factor authentication?",
            ),
            ("Should I buy Tesla stock?", "Should I sell Tesla stock?"),
            ("Turn the lights on", "Turn the lights off"),
            (
                "Is coffee good for your health?",
                "Is coffee bad for your health?",
            ),
            (
                "Allow the user to delete the file",
                "Forbid the user to delete the file",
            ),
            (
                "What is the capital of France?",
                "What is not the capital of France?",
            ),
            ("Is the request valid?", "Is the request invalid?"),
            ("Lock the door", "Unlock the door"),
            ("Does it work?", "Doesn't it work?"),
            (
                "Convert Celsius to Fahrenheit",
                "Convert Fahrenheit to Celsius",
            ),
            ("Encrypt the backup", "Decrypt the backup"),
        ] {
            assert!(contradicts(a, b), "{a} | {b}");
            assert!(contradicts(b, a), "{b} | {a}");
        }
    }

    #[test]
    fn rewordings_pass() {
        for (a, b) in [
            ("Hello world", "Hi world"),
            (
                "How do I reset my password?",
                "How can I reset my password?",
            ),
            (
                "What is the capital of France?",
                "What's the capital city of France?",
            ),
            ("Is it not raining?", "Isn't it raining?"),
            ("Hello world", "hello, world!"),
            ("Start the engine", "Please start the engine now"),
            (
                "Convert Celsius into Fahrenheit",
                "Convert Celsius to Fahrenheit",
            ),
        ] {
            assert!(!contradicts(a, b), "{a} | {b}");
        }
    }
}
