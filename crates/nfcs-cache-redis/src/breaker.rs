//! A circuit breaker: after repeated failures, skip Redis for a cool-down, then probe it.
//!
//! The cool-down is measured on the tier's [`Clock`], so a test drives it with a
//! [`ManualClock`](nfcs_cache_core::ManualClock) instead of sleeping through it.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use nfcs_cache_core::Clock;

/// Closed (commands flow), open (commands are refused at once until `open_until`), or half
/// open (one probe is let through; its result closes or reopens the breaker).
pub(crate) struct Breaker {
    clock: Clock,
    threshold: u32,
    cooldown_ms: u64,
    consecutive_failures: AtomicU32,
    /// The clock's monotonic milliseconds until which the breaker is open; 0 when closed.
    open_until: AtomicU64,
    probing: AtomicBool,
    opened: AtomicU64,
}

/// What the breaker says about the next command.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Run it.
    Allowed,
    /// Run it as the probe; report its result.
    Probe,
    /// Do not run it; the breaker is open for this much longer.
    Refused(Duration),
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration, clock: Clock) -> Breaker {
        Breaker {
            clock,
            threshold,
            cooldown_ms: u64::try_from(cooldown.as_millis()).unwrap_or(u64::MAX),
            consecutive_failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            opened: AtomicU64::new(0),
        }
    }

    pub(crate) fn admit(&self) -> Admission {
        let open_until = self.open_until.load(Ordering::Acquire);
        if open_until == 0 {
            return Admission::Allowed;
        }
        let now = self.now_ms();
        if now < open_until {
            return Admission::Refused(Duration::from_millis(open_until - now));
        }
        // Cool-down over: exactly one caller probes.
        if self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            Admission::Probe
        } else {
            Admission::Refused(Duration::ZERO)
        }
    }

    /// A call answered. `probe` says whether it was admitted as the probe: while the breaker
    /// is open only the probe's answer closes it. Any other call answering then was admitted
    /// before the breaker opened (an open breaker admits no one else), so its answer is older
    /// than the failures that opened it and says nothing about the server now.
    pub(crate) fn success(&self, probe: bool) {
        if !probe && self.open_until.load(Ordering::Acquire) != 0 {
            return;
        }
        // Loads before stores: on the hot path nothing changes, and a store would take the
        // cache line away from the other cores on every command.
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Release);
        }
        if self.open_until.load(Ordering::Acquire) != 0 {
            self.open_until.store(0, Ordering::Release);
            tracing::info!("redis tier: circuit breaker closed, Redis answers again");
        }
        if self.probing.load(Ordering::Relaxed) {
            self.probing.store(false, Ordering::Release);
        }
    }

    pub(crate) fn failure(&self) {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
        let probing = self.probing.swap(false, Ordering::AcqRel);
        if failures >= self.threshold || probing {
            // At least 1, since 0 means closed (a manual clock made at start-up can read 0).
            let until = self.now_ms().saturating_add(self.cooldown_ms.max(1)).max(1);
            if self.open_until.swap(until, Ordering::AcqRel) == 0 {
                self.opened.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    failures,
                    "redis tier: circuit breaker open; skipping Redis for {} ms",
                    self.cooldown_ms
                );
            }
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.monotonic().as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Acquire) != 0
    }

    /// How many times the breaker has opened.
    pub(crate) fn times_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfcs_cache_core::ManualClock;

    #[test]
    fn opens_after_the_threshold_and_probes_after_the_cooldown() {
        let manual = ManualClock::new();
        let cooldown = Duration::from_millis(50);
        let breaker = Breaker::new(3, cooldown, manual.clock());
        for _ in 0..2 {
            breaker.failure();
            assert_eq!(breaker.admit(), Admission::Allowed);
        }
        breaker.failure();
        assert_eq!(breaker.admit(), Admission::Refused(cooldown));
        manual.advance(cooldown - Duration::from_millis(1));
        assert_eq!(
            breaker.admit(),
            Admission::Refused(Duration::from_millis(1)),
            "still open 1 ms before the cool-down ends"
        );
        manual.advance(Duration::from_millis(1));
        assert_eq!(breaker.admit(), Admission::Probe);
        assert!(
            matches!(breaker.admit(), Admission::Refused(_)),
            "one probe at a time"
        );
        breaker.failure();
        assert_eq!(
            breaker.admit(),
            Admission::Refused(cooldown),
            "a failed probe reopens for a whole cool-down"
        );
        manual.advance(cooldown);
        assert_eq!(breaker.admit(), Admission::Probe);
        breaker.success(false);
        assert!(
            breaker.is_open(),
            "the answer of a call admitted before the breaker opened does not close it"
        );
        breaker.success(true);
        assert_eq!(breaker.admit(), Admission::Allowed);
        assert!(!breaker.is_open());
        assert_eq!(
            breaker.times_opened(),
            1,
            "a reopening is not a new opening"
        );
    }

    #[test]
    fn a_success_resets_the_count() {
        let breaker = Breaker::new(2, Duration::from_secs(1), ManualClock::new().clock());
        breaker.failure();
        breaker.success(false);
        breaker.failure();
        assert_eq!(breaker.admit(), Admission::Allowed);
    }
}
