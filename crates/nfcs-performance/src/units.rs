//! Sizes ("1GB", "512MiB") and durations ("3600", "90s", "1h", "never") as configuration
//! values.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A size in bytes, written in configuration as an integer (bytes) or as a string with a unit.
///
/// Units are case-insensitive: `B`; decimal `KB`, `MB`, `GB`, `TB` (powers of 1000, as the
/// spec's "1GB" and "10GB" mean); binary `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024). A
/// fraction is allowed (`"1.5GB"`). A bare `K`, `M`, `G` or `T` is refused as ambiguous.
///
/// ```
/// use nfcs_performance::ByteSize;
///
/// assert_eq!("1GB".parse::<ByteSize>()?.bytes(), 1_000_000_000);
/// assert_eq!("512MiB".parse::<ByteSize>()?.bytes(), 512 << 20);
/// assert_eq!("1.5 kb".parse::<ByteSize>()?.bytes(), 1_500);
/// assert!("10 GB of disk".parse::<ByteSize>().is_err());
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(u64);

impl ByteSize {
    /// `bytes` bytes.
    pub const fn new(bytes: u64) -> ByteSize {
        ByteSize(bytes)
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<ByteSize, String> {
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let unit = unit.trim();
        if number.is_empty() {
            return Err(format!(
                "{text:?} is not a size: it must start with a number, as in \"512MiB\""
            ));
        }
        let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            "tib" => 1 << 40,
            "k" | "m" | "g" | "t" => {
                return Err(format!(
                    "the unit {unit:?} in {text:?} is ambiguous: write {unit}B for powers of 1000 or {unit}iB for powers of 1024"
                ));
            }
            _ => {
                return Err(format!(
                    "unknown unit {unit:?} in {text:?} (expected B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)"
                ));
            }
        };
        let bytes = if let Some((whole, fraction)) = number.split_once('.') {
            let value: f64 = format!("{}.{fraction}", if whole.is_empty() { "0" } else { whole })
                .parse()
                .map_err(|_| format!("{text:?} is not a size: {number:?} is not a number"))?;
            let bytes = (value * multiplier as f64).round();
            if !(0.0..=u64::MAX as f64).contains(&bytes) {
                return Err(format!("{text:?} is too large"));
            }
            bytes as u64
        } else {
            let value: u64 = number
                .parse()
                .map_err(|_| format!("{text:?} is not a size: {number:?} is not a number"))?;
            value
                .checked_mul(multiplier)
                .ok_or_else(|| format!("{text:?} is too large"))?
        };
        Ok(ByteSize(bytes))
    }
}

impl fmt::Display for ByteSize {
    /// The largest unit that divides the size exactly (`1GB`, `512MiB`, `1234B`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 8] = [
            (1 << 40, "TiB"),
            (1_000_000_000_000, "TB"),
            (1 << 30, "GiB"),
            (1_000_000_000, "GB"),
            (1 << 20, "MiB"),
            (1_000_000, "MB"),
            (1 << 10, "KiB"),
            (1_000, "KB"),
        ];
        for (size, unit) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ByteSize, D::Error> {
        struct SizeVisitor;

        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size: a number of bytes or a string such as \"1GB\" or \"512MiB\"")
            }

            fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(bytes))
            }

            fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<ByteSize, E> {
                u64::try_from(bytes)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("a size cannot be negative ({bytes})")))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<ByteSize, E> {
                text.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_any(SizeVisitor)
    }
}

/// A default TTL: a duration, or never.
///
/// In configuration: an integer number of seconds (`3600`, as the spec writes it), a string
/// with a unit (`"90s"`, `"30m"`, `"1h"`, `"7d"`, `"500ms"`), or `"never"`. Zero is refused:
/// write `"never"` for entries that do not expire.
///
/// ```
/// use std::time::Duration;
/// use nfcs_performance::TtlSetting;
///
/// assert_eq!("1h".parse::<TtlSetting>()?.as_duration(), Some(Duration::from_secs(3600)));
/// assert_eq!("never".parse::<TtlSetting>()?.as_duration(), None);
/// assert!("0".parse::<TtlSetting>().is_err());
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TtlSetting {
    /// Entries expire this long after they are written.
    After(Duration),
    /// Entries do not expire.
    Never,
}

impl TtlSetting {
    /// The duration, or `None` for never.
    pub fn as_duration(self) -> Option<Duration> {
        match self {
            TtlSetting::After(duration) => Some(duration),
            TtlSetting::Never => None,
        }
    }

    fn checked(duration: Duration, written: &str) -> Result<TtlSetting, String> {
        nfcs_cache_core::validate_ttl(duration)
            .map(TtlSetting::After)
            .map_err(|problem| {
                format!("{written:?} is not a usable TTL: {problem}; write \"never\" for no expiry")
            })
    }
}

impl FromStr for TtlSetting {
    type Err = String;

    fn from_str(text: &str) -> Result<TtlSetting, String> {
        let trimmed = text.trim();
        if matches!(trimmed.to_ascii_lowercase().as_str(), "never" | "none") {
            return Ok(TtlSetting::Never);
        }
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let value: u64 = number.parse().map_err(|_| {
            format!(
                "{text:?} is not a duration (examples: 3600, \"90s\", \"30m\", \"1h\", \"never\")"
            )
        })?;
        let unit_seconds: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "ms" => return TtlSetting::checked(Duration::from_millis(value), text),
            "" | "s" => 1,
            "m" | "min" => 60,
            "h" => 3600,
            "d" => 86_400,
            other => {
                return Err(format!(
                    "unknown unit {other:?} in the duration {text:?} (expected ms, s, m, h or d)"
                ));
            }
        };
        let seconds = value
            .checked_mul(unit_seconds)
            .ok_or_else(|| format!("{text:?} is too long"))?;
        TtlSetting::checked(Duration::from_secs(seconds), text)
    }
}

impl fmt::Display for TtlSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TtlSetting::Never => f.write_str("never"),
            TtlSetting::After(duration) if duration.subsec_nanos() == 0 => {
                write!(f, "{}s", duration.as_secs())
            }
            TtlSetting::After(duration) => write!(f, "{}ms", duration.as_millis()),
        }
    }
}

impl Serialize for TtlSetting {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TtlSetting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TtlSetting, D::Error> {
        struct TtlVisitor;

        impl Visitor<'_> for TtlVisitor {
            type Value = TtlSetting;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a TTL: seconds as an integer, or a string such as \"90s\", \"1h\" or \"never\"")
            }

            fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<TtlSetting, E> {
                TtlSetting::checked(Duration::from_secs(seconds), &seconds.to_string())
                    .map_err(E::custom)
            }

            fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<TtlSetting, E> {
                match u64::try_from(seconds) {
                    Ok(seconds) => self.visit_u64(seconds),
                    Err(_) => Err(E::custom(format!("a TTL cannot be negative ({seconds})"))),
                }
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<TtlSetting, E> {
                text.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_any(TtlVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let size = |text: &str| text.parse::<ByteSize>().map(ByteSize::bytes);
        assert_eq!(size("1GB"), Ok(1_000_000_000));
        assert_eq!(size("10GB"), Ok(10_000_000_000));
        assert_eq!(size("1GiB"), Ok(1 << 30));
        assert_eq!(size("1gib"), Ok(1 << 30));
        assert_eq!(size("4096"), Ok(4096));
        assert_eq!(size("4096 B"), Ok(4096));
        assert_eq!(size(".5MB"), Ok(500_000));
        assert!(size("1G").unwrap_err().contains("ambiguous"));
        assert!(size("1XB").unwrap_err().contains("unknown unit"));
        assert!(size("GB").unwrap_err().contains("start with a number"));
        assert!(size("1.2.3GB").is_err());
        assert!(size("99999999999TB").unwrap_err().contains("too large"));
        assert_eq!(ByteSize::new(1 << 30).to_string(), "1GiB");
        assert_eq!(ByteSize::new(10_000_000_000).to_string(), "10GB");
        assert_eq!(ByteSize::new(1234).to_string(), "1234B");
    }

    #[test]
    fn durations() {
        let ttl = |text: &str| text.parse::<TtlSetting>().map(TtlSetting::as_duration);
        assert_eq!(ttl("3600"), Ok(Some(Duration::from_secs(3600))));
        assert_eq!(ttl("90s"), Ok(Some(Duration::from_secs(90))));
        assert_eq!(ttl("30m"), Ok(Some(Duration::from_secs(1800))));
        assert_eq!(ttl("2h"), Ok(Some(Duration::from_secs(7200))));
        assert_eq!(ttl("7d"), Ok(Some(Duration::from_secs(7 * 86_400))));
        assert_eq!(ttl("250ms"), Ok(Some(Duration::from_millis(250))));
        assert_eq!(ttl("Never"), Ok(None));
        assert!(ttl("0").unwrap_err().contains("never"));
        assert!(ttl("1 fortnight").unwrap_err().contains("unknown unit"));
        assert!(ttl("soon").is_err());
        assert!(ttl("99999999999999d").is_err());
        assert_eq!(TtlSetting::After(Duration::from_secs(5)).to_string(), "5s");
    }
}
