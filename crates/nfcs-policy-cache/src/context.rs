//! The context of a compliance check, and its stable canonical hash.
//!
//! # The canonical encoding
//!
//! A [`PolicyContext`] is hashed by feeding its canonical encoding to XXH3-64 (seed 0). The
//! encoding is defined here, byte for byte, so that the hash is the same in every process, on
//! every platform and with every compiler version (it never uses `std`'s `DefaultHasher`, whose
//! output may change between Rust releases and is randomly seeded):
//!
//! | value | encoding |
//! | --- | --- |
//! | null | `0x00` |
//! | `false`, `true` | `0x01`, `0x02` |
//! | integer | `0x03`, then the `i64` as 8 bytes little-endian |
//! | float | `0x04`, then the IEEE-754 bits of the `f64` as 8 bytes little-endian; `-0.0` is encoded as `0.0`; NaN is refused ([`ContextError::NotANumber`]) |
//! | string | `0x05`, the UTF-8 length as `u64` little-endian, the UTF-8 bytes |
//! | list | `0x06`, the item count as `u64` little-endian, each item's encoding in order |
//! | record | `0x07`, the entry count as `u64` little-endian, then for each entry in ascending byte order of its key: the key's UTF-8 length as `u64` little-endian, the key's bytes, the value's encoding |
//!
//! The context itself is encoded as a record. Every value carries a type tag and every
//! variable-length part a length, so two different contexts never share an encoding (the
//! string `"1"` and the integer `1` differ, and so do `["ab"]` and `["a", "b"]`). Integers and
//! floats are distinct types: `1` and `1.0` hash differently, as they do in Cedar, which has no
//! floats at all. Record keys are sorted, so the order in which a context was built (or in which
//! a JSON object listed its keys) never changes the hash.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One value in a [`PolicyContext`]: JSON's data model with integers and floats told apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ContextValue {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float. NaN is refused when the context is hashed.
    Float(f64),
    /// A UTF-8 string.
    String(String),
    /// An ordered list.
    List(Vec<ContextValue>),
    /// A record: keys are kept sorted, so their insertion order never matters.
    Record(BTreeMap<String, ContextValue>),
}

/// Why a context could not be hashed or converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// A float in the context is NaN, which equals nothing (not even itself), so no decision
    /// can be cached for it.
    #[error("the context value at {path} is NaN; NaN has no canonical form and cannot be hashed")]
    NotANumber {
        /// Where the value is, as a path like `$.limits[2]`.
        path: String,
    },
    /// A JSON value that was not an object was given as a context.
    #[error("a policy context must be a JSON object, not {found}")]
    NotAnObject {
        /// The JSON type that was found.
        found: &'static str,
    },
    /// A JSON number does not fit in an `i64` or an `f64`.
    #[error("the JSON number at {path} ({number}) fits neither an i64 nor an f64")]
    UnsupportedNumber {
        /// Where the number is.
        path: String,
        /// The number as written.
        number: String,
    },
}

const TAG_NULL: u8 = 0x00;
const TAG_FALSE: u8 = 0x01;
const TAG_TRUE: u8 = 0x02;
const TAG_INT: u8 = 0x03;
const TAG_FLOAT: u8 = 0x04;
const TAG_STRING: u8 = 0x05;
const TAG_LIST: u8 = 0x06;
const TAG_RECORD: u8 = 0x07;

/// The context of a compliance check: a record of named [`ContextValue`]s.
///
/// ```
/// use nfcs_policy_cache::PolicyContext;
///
/// let one = PolicyContext::new().with("risk", 3).with("agent", "planner");
/// let two = PolicyContext::new().with("agent", "planner").with("risk", 3);
/// assert_eq!(one.stable_hash()?, two.stable_hash()?);
/// # Ok::<(), nfcs_policy_cache::ContextError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyContext {
    fields: BTreeMap<String, ContextValue>,
}

impl PolicyContext {
    /// An empty context.
    pub fn new() -> PolicyContext {
        PolicyContext::default()
    }

    /// This context with `name` set to `value` (replacing an earlier value).
    #[must_use]
    pub fn with(
        mut self,
        name: impl Into<String>,
        value: impl Into<ContextValue>,
    ) -> PolicyContext {
        self.insert(name, value);
        self
    }

    /// Sets `name` to `value`, returning the earlier value.
    pub fn insert(
        &mut self,
        name: impl Into<String>,
        value: impl Into<ContextValue>,
    ) -> Option<ContextValue> {
        self.fields.insert(name.into(), value.into())
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&ContextValue> {
        self.fields.get(name)
    }

    /// The fields, in ascending key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ContextValue)> {
        self.fields
            .iter()
            .map(|(name, value)| (name.as_str(), value))
    }

    /// The number of top-level fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether the context has no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The number of values in the context, counting every scalar, list and record at every
    /// depth (the context itself not included). Part of the complexity score.
    pub fn value_count(&self) -> u64 {
        fn count(value: &ContextValue) -> u64 {
            1 + match value {
                ContextValue::List(items) => items.iter().map(count).sum(),
                ContextValue::Record(fields) => fields.values().map(count).sum(),
                _ => 0,
            }
        }
        self.fields.values().map(count).sum()
    }

    /// The canonical encoding described in the [module docs](self).
    ///
    /// # Errors
    /// [`ContextError::NotANumber`] when a float is NaN.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, ContextError> {
        let mut out = Vec::with_capacity(64);
        let mut path = String::from("$");
        encode_record(&self.fields, &mut out, &mut path)?;
        Ok(out)
    }

    /// XXH3-64 (seed 0) of [`canonical_bytes`](Self::canonical_bytes): stable across processes,
    /// platforms and compiler versions.
    ///
    /// # Errors
    /// [`ContextError::NotANumber`] when a float is NaN.
    pub fn stable_hash(&self) -> Result<u64, ContextError> {
        Ok(xxhash_rust::xxh3::xxh3_64(&self.canonical_bytes()?))
    }

    /// The context as JSON (integers as JSON integers, floats as JSON floats). A NaN or
    /// infinite float becomes `null`, as in `serde_json`; hash the context first to refuse NaN.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.fields
                .iter()
                .map(|(name, value)| (name.clone(), value.to_json()))
                .collect(),
        )
    }
}

impl ContextValue {
    /// The value as JSON; see [`PolicyContext::to_json`].
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            ContextValue::Null => Value::Null,
            ContextValue::Bool(flag) => Value::Bool(*flag),
            ContextValue::Int(number) => Value::from(*number),
            ContextValue::Float(number) => {
                serde_json::Number::from_f64(*number).map_or(Value::Null, Value::Number)
            }
            ContextValue::String(text) => Value::String(text.clone()),
            ContextValue::List(items) => Value::Array(items.iter().map(Self::to_json).collect()),
            ContextValue::Record(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(name, value)| (name.clone(), value.to_json()))
                    .collect(),
            ),
        }
    }

    /// The name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            ContextValue::Null => "null",
            ContextValue::Bool(_) => "bool",
            ContextValue::Int(_) => "integer",
            ContextValue::Float(_) => "float",
            ContextValue::String(_) => "string",
            ContextValue::List(_) => "list",
            ContextValue::Record(_) => "record",
        }
    }

    fn from_json_at(value: serde_json::Value, path: &mut String) -> Result<Self, ContextError> {
        use serde_json::Value;
        Ok(match value {
            Value::Null => ContextValue::Null,
            Value::Bool(flag) => ContextValue::Bool(flag),
            Value::Number(number) => {
                if let Some(integer) = number.as_i64() {
                    ContextValue::Int(integer)
                } else if number.is_f64()
                    && let Some(float) = number.as_f64()
                {
                    ContextValue::Float(float)
                } else {
                    return Err(ContextError::UnsupportedNumber {
                        path: path.clone(),
                        number: number.to_string(),
                    });
                }
            }
            Value::String(text) => ContextValue::String(text),
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (index, item) in items.into_iter().enumerate() {
                    let length = path.len();
                    path.push_str(&format!("[{index}]"));
                    out.push(ContextValue::from_json_at(item, path)?);
                    path.truncate(length);
                }
                ContextValue::List(out)
            }
            Value::Object(fields) => ContextValue::Record(record_from_json(fields, path)?),
        })
    }
}

fn record_from_json(
    fields: serde_json::Map<String, serde_json::Value>,
    path: &mut String,
) -> Result<BTreeMap<String, ContextValue>, ContextError> {
    let mut out = BTreeMap::new();
    for (name, value) in fields {
        let length = path.len();
        push_field(path, &name);
        let value = ContextValue::from_json_at(value, path)?;
        path.truncate(length);
        out.insert(name, value);
    }
    Ok(out)
}

impl TryFrom<serde_json::Value> for PolicyContext {
    type Error = ContextError;

    /// Converts a JSON object. Integers that fit an `i64` become [`ContextValue::Int`], other
    /// numbers [`ContextValue::Float`]; an integer above `i64::MAX` is refused.
    fn try_from(value: serde_json::Value) -> Result<PolicyContext, ContextError> {
        use serde_json::Value;
        let found = match &value {
            Value::Object(_) => "",
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
        };
        match value {
            Value::Object(fields) => Ok(PolicyContext {
                fields: record_from_json(fields, &mut String::from("$"))?,
            }),
            _ => Err(ContextError::NotAnObject { found }),
        }
    }
}

impl TryFrom<serde_json::Value> for ContextValue {
    type Error = ContextError;

    fn try_from(value: serde_json::Value) -> Result<ContextValue, ContextError> {
        ContextValue::from_json_at(value, &mut String::from("$"))
    }
}

impl FromIterator<(String, ContextValue)> for PolicyContext {
    fn from_iter<I: IntoIterator<Item = (String, ContextValue)>>(iter: I) -> PolicyContext {
        PolicyContext {
            fields: iter.into_iter().collect(),
        }
    }
}

macro_rules! from_integer {
    ($($integer:ty),*) => {$(
        impl From<$integer> for ContextValue {
            fn from(value: $integer) -> ContextValue {
                ContextValue::Int(i64::from(value))
            }
        }
    )*};
}

from_integer!(i8, i16, i32, i64, u8, u16, u32);

impl From<bool> for ContextValue {
    fn from(value: bool) -> ContextValue {
        ContextValue::Bool(value)
    }
}

impl From<f64> for ContextValue {
    fn from(value: f64) -> ContextValue {
        ContextValue::Float(value)
    }
}

impl From<f32> for ContextValue {
    fn from(value: f32) -> ContextValue {
        ContextValue::Float(f64::from(value))
    }
}

impl From<&str> for ContextValue {
    fn from(value: &str) -> ContextValue {
        ContextValue::String(value.to_owned())
    }
}

impl From<String> for ContextValue {
    fn from(value: String) -> ContextValue {
        ContextValue::String(value)
    }
}

impl<T: Into<ContextValue>> From<Vec<T>> for ContextValue {
    fn from(value: Vec<T>) -> ContextValue {
        ContextValue::List(value.into_iter().map(Into::into).collect())
    }
}

impl From<BTreeMap<String, ContextValue>> for ContextValue {
    fn from(value: BTreeMap<String, ContextValue>) -> ContextValue {
        ContextValue::Record(value)
    }
}

impl From<PolicyContext> for ContextValue {
    fn from(value: PolicyContext) -> ContextValue {
        ContextValue::Record(value.fields)
    }
}

impl fmt::Display for PolicyContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

fn push_field(path: &mut String, name: &str) {
    path.push('.');
    path.push_str(name);
}

fn put_len(out: &mut Vec<u8>, length: usize) {
    // `usize` is at most 64 bits on every platform Rust supports, so this never saturates.
    out.extend_from_slice(&u64::try_from(length).unwrap_or(u64::MAX).to_le_bytes());
}

fn encode_record(
    fields: &BTreeMap<String, ContextValue>,
    out: &mut Vec<u8>,
    path: &mut String,
) -> Result<(), ContextError> {
    out.push(TAG_RECORD);
    put_len(out, fields.len());
    // A `BTreeMap<String, _>` iterates in ascending byte order of its keys (`str`'s `Ord` is
    // byte-wise), which is the order the encoding prescribes.
    for (name, value) in fields {
        put_len(out, name.len());
        out.extend_from_slice(name.as_bytes());
        let length = path.len();
        push_field(path, name);
        encode_value(value, out, path)?;
        path.truncate(length);
    }
    Ok(())
}

fn encode_value(
    value: &ContextValue,
    out: &mut Vec<u8>,
    path: &mut String,
) -> Result<(), ContextError> {
    match value {
        ContextValue::Null => out.push(TAG_NULL),
        ContextValue::Bool(false) => out.push(TAG_FALSE),
        ContextValue::Bool(true) => out.push(TAG_TRUE),
        ContextValue::Int(number) => {
            out.push(TAG_INT);
            out.extend_from_slice(&number.to_le_bytes());
        }
        ContextValue::Float(number) => {
            if number.is_nan() {
                return Err(ContextError::NotANumber { path: path.clone() });
            }
            // -0.0 == 0.0, so they must hash alike.
            let canonical = if *number == 0.0 { 0.0_f64 } else { *number };
            out.push(TAG_FLOAT);
            out.extend_from_slice(&canonical.to_bits().to_le_bytes());
        }
        ContextValue::String(text) => {
            out.push(TAG_STRING);
            put_len(out, text.len());
            out.extend_from_slice(text.as_bytes());
        }
        ContextValue::List(items) => {
            out.push(TAG_LIST);
            put_len(out, items.len());
            for (index, item) in items.iter().enumerate() {
                let length = path.len();
                path.push_str(&format!("[{index}]"));
                encode_value(item, out, path)?;
                path.truncate(length);
            }
        }
        ContextValue::Record(fields) => encode_record(fields, out, path)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_zero_hashes_like_zero() {
        let negative = PolicyContext::new().with("x", -0.0_f64);
        let positive = PolicyContext::new().with("x", 0.0_f64);
        assert_eq!(
            negative.stable_hash().unwrap(),
            positive.stable_hash().unwrap()
        );
    }

    #[test]
    fn nan_is_refused_with_its_path() {
        let context = PolicyContext::new().with(
            "limits",
            ContextValue::List(vec![ContextValue::Int(1), ContextValue::Float(f64::NAN)]),
        );
        assert_eq!(
            context.stable_hash(),
            Err(ContextError::NotANumber {
                path: "$.limits[1]".to_owned()
            })
        );
    }

    #[test]
    fn types_and_lengths_separate_encodings() {
        let string = PolicyContext::new().with("x", "1");
        let integer = PolicyContext::new().with("x", 1);
        let float = PolicyContext::new().with("x", 1.0);
        let joined = PolicyContext::new().with("x", vec!["ab"]);
        let split = PolicyContext::new().with("x", vec!["a", "b"]);
        let hashes = [&string, &integer, &float, &joined, &split].map(|c| c.stable_hash().unwrap());
        for (index, hash) in hashes.iter().enumerate() {
            assert!(!hashes[index + 1..].contains(hash), "collision at {index}");
        }
    }

    #[test]
    fn encoding_of_a_small_context_is_as_documented() {
        let context = PolicyContext::new().with("a", true);
        let mut expected = vec![TAG_RECORD];
        expected.extend_from_slice(&1_u64.to_le_bytes());
        expected.extend_from_slice(&1_u64.to_le_bytes());
        expected.push(b'a');
        expected.push(TAG_TRUE);
        assert_eq!(context.canonical_bytes().unwrap(), expected);
    }
}
