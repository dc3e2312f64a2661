//! Time to live and expiry.
//!
//! A write says how long its entry lives with a [`Ttl`]: the tier's default
//! ([`Ttl::Default`], which a tier may configure as "never"), [`Ttl::Never`], or
//! [`Ttl::After`] a duration. A read reports the time an entry has *left*
//! ([`CacheEntry::ttl`](crate::CacheEntry::ttl), `None` when it never expires), and
//! [`CacheEntry::remaining_ttl`](crate::CacheEntry::remaining_ttl) turns that back into the
//! `Ttl` a multi-tier cache promotes with, so that an entry that never expires stays so in every
//! tier and promotion never extends a life. The two meanings of "no duration" (default, never)
//! never meet in one `Option`.
//!
//! Tiers keep expiry in the form that suits them:
//! - the memory tier keeps a monotonic deadline (immune to wall-clock jumps, nanosecond exact);
//! - persistent tiers (disk, Redis) store an absolute wall-clock [`Expiry`], so an entry
//!   written before a restart still expires at the right moment after it.
//!
//! Both read a [`Clock`](crate::Clock), which tests drive.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The longest TTL any tier accepts: 100 years. Longer values are almost certainly unit
/// mistakes (nanoseconds passed as seconds), and every tier can represent this one.
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// Why a TTL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TtlProblem {
    /// A TTL of zero would store an entry that is already expired; use `delete` instead.
    Zero,
    /// Longer than [`MAX_TTL`].
    TooLong,
}

impl std::fmt::Display for TtlProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TtlProblem::Zero => {
                f.write_str("a TTL must be longer than zero (delete the key to remove it)")
            }
            TtlProblem::TooLong => write!(f, "a TTL must not exceed {} seconds", MAX_TTL.as_secs()),
        }
    }
}

/// Checks a TTL: longer than zero and at most [`MAX_TTL`].
///
/// ```
/// use std::time::Duration;
/// use nfcs_cache_core::{validate_ttl, TtlProblem};
///
/// assert!(validate_ttl(Duration::from_secs(3600)).is_ok());
/// assert_eq!(validate_ttl(Duration::ZERO), Err(TtlProblem::Zero));
/// ```
pub fn validate_ttl(ttl: Duration) -> Result<Duration, TtlProblem> {
    if ttl.is_zero() {
        Err(TtlProblem::Zero)
    } else if ttl > MAX_TTL {
        Err(TtlProblem::TooLong)
    } else {
        Ok(ttl)
    }
}

/// How long an entry lives, as a write asks for it.
///
/// Writes take `impl Into<Ttl>`, so existing call sites keep reading naturally: a
/// [`Duration`] is [`Ttl::After`], and `None` / `Some(duration)` are [`Ttl::Default`] /
/// [`Ttl::After`].
///
/// ```
/// use std::time::Duration;
/// use nfcs_cache_core::Ttl;
///
/// assert_eq!(Ttl::from(Duration::from_secs(60)), Ttl::After(Duration::from_secs(60)));
/// assert_eq!(Ttl::from(None::<Duration>), Ttl::Default);
/// // What a read reports back (`None`: never expires) promotes as `Never`, not as the default.
/// assert_eq!(Ttl::remaining(None), Ttl::Never);
/// assert_eq!(Ttl::Default.resolve(Some(Duration::from_secs(3600))), Some(Duration::from_secs(3600)));
/// assert_eq!(Ttl::Never.resolve(Some(Duration::from_secs(3600))), None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Ttl {
    /// The tier's default TTL, which the tier's configuration may make "never".
    #[default]
    Default,
    /// Never expires, whatever the tier's default.
    Never,
    /// Expires this long after the write. Must be longer than zero and at most [`MAX_TTL`].
    After(Duration),
}

impl Ttl {
    /// The `Ttl` that keeps an entry's remaining life: `None` (it never expires) is
    /// [`Ttl::Never`], a duration is [`Ttl::After`] it.
    pub const fn remaining(left: Option<Duration>) -> Ttl {
        match left {
            None => Ttl::Never,
            Some(left) => Ttl::After(left),
        }
    }

    /// The duration to apply, given the tier's default: `None` means the entry never expires.
    pub const fn resolve(self, default: Option<Duration>) -> Option<Duration> {
        match self {
            Ttl::Default => default,
            Ttl::Never => None,
            Ttl::After(ttl) => Some(ttl),
        }
    }

    /// The duration of [`Ttl::After`], `None` for the other two.
    pub const fn duration(self) -> Option<Duration> {
        match self {
            Ttl::After(ttl) => Some(ttl),
            Ttl::Default | Ttl::Never => None,
        }
    }
}

impl From<Duration> for Ttl {
    fn from(ttl: Duration) -> Ttl {
        Ttl::After(ttl)
    }
}

impl From<Option<Duration>> for Ttl {
    /// `None` is the tier's default; `Some(duration)` expires after it.
    fn from(ttl: Option<Duration>) -> Ttl {
        match ttl {
            None => Ttl::Default,
            Some(ttl) => Ttl::After(ttl),
        }
    }
}

impl std::fmt::Display for Ttl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ttl::Default => f.write_str("the tier's default TTL"),
            Ttl::Never => f.write_str("no expiry"),
            Ttl::After(ttl) => write!(f, "{ttl:?}"),
        }
    }
}

/// An absolute wall-clock expiry time, in milliseconds since the Unix epoch: the form
/// persistent tiers store, because it means the same thing after a restart.
///
/// ```
/// use std::time::Duration;
/// use nfcs_cache_core::Expiry;
///
/// let expiry = Expiry::after(Duration::from_secs(60));
/// assert!(!expiry.is_expired());
/// let left = expiry.remaining().expect("not expired yet");
/// assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(59));
/// assert_eq!(Expiry::from_unix_millis(expiry.as_unix_millis()), expiry);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Expiry {
    unix_millis: u64,
}

impl Expiry {
    /// The expiry `ttl` from now. Saturates at the far future rather than overflowing.
    pub fn after(ttl: Duration) -> Expiry {
        Expiry::after_at(ttl, SystemTime::now())
    }

    /// The expiry `ttl` after `now` (for tests and for callers that already read the clock).
    pub fn after_at(ttl: Duration, now: SystemTime) -> Expiry {
        let now_millis = unix_millis(now);
        // Round up, so that an entry never lives shorter than its TTL.
        let ttl_millis = u64::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
        Expiry {
            unix_millis: now_millis.saturating_add(ttl_millis),
        }
    }

    /// The expiry at `unix_millis` milliseconds after the Unix epoch, as stored on disk.
    pub const fn from_unix_millis(unix_millis: u64) -> Expiry {
        Expiry { unix_millis }
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_unix_millis(self) -> u64 {
        self.unix_millis
    }

    /// Whether this time has passed.
    pub fn is_expired(self) -> bool {
        self.remaining().is_none()
    }

    /// The time left, or `None` when it has passed.
    pub fn remaining(self) -> Option<Duration> {
        self.remaining_at(SystemTime::now())
    }

    /// The time left as seen at `now`, or `None` when it has passed.
    pub fn remaining_at(self, now: SystemTime) -> Option<Duration> {
        let now_millis = unix_millis(now);
        (self.unix_millis > now_millis)
            .then(|| Duration::from_millis(self.unix_millis - now_millis))
    }
}

fn unix_millis(time: SystemTime) -> u64 {
    // A clock set before 1970 reads as the epoch itself; entries then expire late, never early.
    time.duration_since(UNIX_EPOCH)
        .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The process-wide monotonic clock of the memory tier: nanoseconds since the first call.
/// `u64` nanoseconds last 584 years, and a deadline of [`NEVER`] means no expiry.
pub(crate) mod monotonic {
    use super::*;

    /// The deadline of an entry without a TTL.
    pub(crate) const NEVER: u64 = u64::MAX;

    fn base() -> Instant {
        static BASE: OnceLock<Instant> = OnceLock::new();
        *BASE.get_or_init(Instant::now)
    }

    /// Nanoseconds since the clock's base.
    #[inline]
    pub(crate) fn now() -> u64 {
        u64::try_from(base().elapsed().as_nanos()).unwrap_or(NEVER - 1)
    }

    /// The deadline `ttl` from `now`; a TTL beyond the representable range means never.
    #[inline]
    pub(crate) fn deadline(now: u64, ttl: Duration) -> u64 {
        u64::try_from(ttl.as_nanos())
            .ok()
            .and_then(|ttl| now.checked_add(ttl))
            .filter(|&deadline| deadline < NEVER)
            .unwrap_or(NEVER)
    }

    /// The time left before `deadline` as seen at `now`; `None` for no expiry.
    #[inline]
    pub(crate) fn remaining(deadline: u64, now: u64) -> Option<Duration> {
        (deadline != NEVER).then(|| Duration::from_nanos(deadline.saturating_sub(now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rules() {
        assert_eq!(
            validate_ttl(Duration::from_nanos(1)),
            Ok(Duration::from_nanos(1))
        );
        assert_eq!(validate_ttl(MAX_TTL), Ok(MAX_TTL));
        assert_eq!(
            validate_ttl(MAX_TTL + Duration::from_secs(1)),
            Err(TtlProblem::TooLong)
        );
        assert_eq!(validate_ttl(Duration::ZERO), Err(TtlProblem::Zero));
    }

    #[test]
    fn expiry_rounds_up_and_counts_down() {
        let now = UNIX_EPOCH + Duration::from_millis(1_000);
        let expiry = Expiry::after_at(Duration::from_micros(1), now);
        assert_eq!(
            expiry.as_unix_millis(),
            1_001,
            "sub-millisecond TTLs round up"
        );
        assert_eq!(expiry.remaining_at(now), Some(Duration::from_millis(1)));
        assert_eq!(expiry.remaining_at(now + Duration::from_millis(1)), None);
        let far = Expiry::after_at(Duration::MAX, now);
        assert_eq!(
            far.as_unix_millis(),
            u64::MAX,
            "saturates instead of wrapping"
        );
    }

    #[test]
    fn monotonic_deadlines() {
        use monotonic::*;
        assert_eq!(deadline(10, Duration::from_nanos(5)), 15);
        assert_eq!(deadline(10, Duration::MAX), NEVER);
        assert_eq!(remaining(15, 10), Some(Duration::from_nanos(5)));
        assert_eq!(remaining(15, 20), Some(Duration::ZERO));
        assert_eq!(remaining(NEVER, 20), None);
        let first = now();
        assert!(now() >= first);
    }
}
