//! The time every cache reads: the system's, or one a test drives.
//!
//! TTLs and refresh intervals read a [`Clock`] instead of `Instant::now()` and
//! `SystemTime::now()` directly, so a test can make an hour pass in a microsecond
//! ([`ManualClock::advance`]) instead of sleeping, and a test on a busy machine never depends on
//! how long a sleep really took. moka's mock clock is the model.
//!
//! A clock gives two readings that advance together:
//! - [`Clock::monotonic`]: time since a process-wide base, immune to wall-clock jumps; the memory
//!   tier's deadlines and every interval use it.
//! - [`Clock::now`]: the wall clock, for the absolute expiry times persistent tiers store.
//!
//! ```
//! use std::time::Duration;
//! use nfcs_cache_core::{Clock, ManualClock};
//!
//! let manual = ManualClock::new();
//! let clock: Clock = manual.clock();
//! let (start, wall) = (clock.monotonic(), clock.now());
//! manual.advance(Duration::from_secs(3600));
//! assert_eq!(clock.monotonic() - start, Duration::from_secs(3600));
//! assert_eq!(clock.now().duration_since(wall).unwrap(), Duration::from_secs(3600));
//! assert!(Clock::system().monotonic() < Duration::from_secs(365 * 24 * 3600));
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::expiry::monotonic;

/// The time a cache reads: the system clock (the default), or a [`ManualClock`]'s.
///
/// Cloning is cheap; clones of a manual clock follow the same [`ManualClock`].
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<Arc<ManualState>>,
}

struct ManualState {
    /// The monotonic reading (nanoseconds since the process base) when the clock was made.
    monotonic_base: u64,
    /// The wall-clock reading when the clock was made.
    wall_base: SystemTime,
    /// Nanoseconds advanced since then.
    advanced: AtomicU64,
}

impl Clock {
    /// The system's clocks (`Instant` and `SystemTime`).
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// Whether this clock is driven by a [`ManualClock`].
    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// Monotonic time since a process-wide base (the first reading of any clock). A manual
    /// clock starts at the system's reading when it was made and moves only when advanced.
    #[inline]
    pub fn monotonic(&self) -> Duration {
        Duration::from_nanos(self.monotonic_nanos())
    }

    /// [`monotonic`](Clock::monotonic) in nanoseconds, the memory tier's deadline unit.
    #[inline]
    pub(crate) fn monotonic_nanos(&self) -> u64 {
        match &self.manual {
            None => monotonic::now(),
            Some(state) => state
                .monotonic_base
                .saturating_add(state.advanced.load(Ordering::Acquire))
                .min(monotonic::NEVER - 1),
        }
    }

    /// The wall-clock time. A manual clock starts at the system's time when it was made and
    /// moves only when advanced.
    pub fn now(&self) -> SystemTime {
        match &self.manual {
            None => SystemTime::now(),
            Some(state) => {
                let advanced = Duration::from_nanos(state.advanced.load(Ordering::Acquire));
                state
                    .wall_base
                    .checked_add(advanced)
                    .unwrap_or(state.wall_base)
            }
        }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.manual {
            None => f.write_str("Clock::System"),
            Some(state) => f
                .debug_struct("Clock::Manual")
                .field(
                    "advanced",
                    &Duration::from_nanos(state.advanced.load(Ordering::Relaxed)),
                )
                .finish(),
        }
    }
}

/// A clock that moves only when told to: give [`clock`](ManualClock::clock) to the caches under
/// test, then [`advance`](ManualClock::advance) it instead of sleeping.
///
/// ```
/// use std::time::Duration;
/// use nfcs_cache_core::{ManualClock, MemoryCache, MemoryConfig};
///
/// let manual = ManualClock::new();
/// let cache = MemoryCache::with_config(MemoryConfig::new(1 << 20).clock(manual.clock()))?;
/// cache.insert("session", "token", Duration::from_secs(60))?;
/// manual.advance(Duration::from_secs(59));
/// assert!(cache.get("session")?.is_some());
/// manual.advance(Duration::from_secs(1));
/// assert_eq!(cache.get("session")?, None, "expired after exactly 60 s");
/// # Ok::<(), nfcs_cache_core::CacheError>(())
/// ```
#[derive(Clone)]
pub struct ManualClock {
    state: Arc<ManualState>,
}

impl ManualClock {
    /// A clock reading the system's time now, standing still until advanced.
    pub fn new() -> ManualClock {
        ManualClock {
            state: Arc::new(ManualState {
                monotonic_base: monotonic::now(),
                wall_base: SystemTime::now(),
                advanced: AtomicU64::new(0),
            }),
        }
    }

    /// The [`Clock`] to hand to caches; it follows this manual clock.
    pub fn clock(&self) -> Clock {
        Clock {
            manual: Some(Arc::clone(&self.state)),
        }
    }

    /// Moves both readings forward by `by` (saturating after about 584 years).
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .state
            .advanced
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |advanced| {
                Some(advanced.saturating_add(nanos))
            });
    }

    /// How far the clock has been advanced in all.
    pub fn advanced(&self) -> Duration {
        Duration::from_nanos(self.state.advanced.load(Ordering::Acquire))
    }
}

impl Default for ManualClock {
    fn default() -> ManualClock {
        ManualClock::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("advanced", &self.advanced())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_stands_still_until_advanced() {
        let manual = ManualClock::new();
        let clock = manual.clock();
        let (monotonic, wall) = (clock.monotonic(), clock.now());
        std::hint::black_box((0..1000).sum::<u64>());
        assert_eq!(clock.monotonic(), monotonic);
        assert_eq!(clock.now(), wall);
        manual.advance(Duration::from_millis(1500));
        assert_eq!(clock.monotonic(), monotonic + Duration::from_millis(1500));
        assert_eq!(clock.now(), wall + Duration::from_millis(1500));
        assert_eq!(manual.advanced(), Duration::from_millis(1500));
        assert!(clock.is_manual() && !Clock::system().is_manual());
    }

    #[test]
    fn advancing_saturates() {
        let manual = ManualClock::new();
        manual.advance(Duration::MAX);
        manual.advance(Duration::MAX);
        assert!(manual.clock().monotonic_nanos() < monotonic::NEVER);
    }

    #[test]
    fn the_system_clock_moves_forward() {
        let clock = Clock::system();
        let first = clock.monotonic();
        assert!(clock.monotonic() >= first);
    }
}
