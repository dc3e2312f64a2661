//! Progress bars for the phases of a run (indicatif), hidden when nobody watches.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Hands out one progress bar per phase. [`Progress::hidden`] draws nothing (library use,
/// tests); [`Progress::stderr`] draws bars with an ETA on standard error.
#[derive(Clone)]
pub struct Progress {
    bars: Option<MultiProgress>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Progress")
            .field("visible", &self.bars.is_some())
            .finish()
    }
}

impl Default for Progress {
    fn default() -> Progress {
        Progress::hidden()
    }
}

impl Progress {
    /// Draws nothing.
    pub fn hidden() -> Progress {
        Progress { bars: None }
    }

    /// Draws on standard error (indicatif hides the bars itself when it is not a terminal).
    pub fn stderr() -> Progress {
        Progress {
            bars: Some(MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    /// A bar for a phase of `total` steps (operations, runs, ...).
    pub fn steps(&self, phase: &str, total: u64) -> ProgressBar {
        self.bar(
            phase,
            total,
            "{prefix:>28} [{bar:30}] {pos}/{len} ({eta} left) {msg}",
        )
    }

    /// A bar for a phase that lasts `duration`; set its position in milliseconds
    /// ([`Progress::set_elapsed`]).
    pub fn timed(&self, phase: &str, duration: Duration) -> ProgressBar {
        let total = u64::try_from(duration.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.bar(
            phase,
            total,
            "{prefix:>28} [{bar:30}] {elapsed}/{duration} ({eta} left) {msg}",
        )
    }

    /// Sets a [`timed`](Progress::timed) bar to `elapsed`.
    pub fn set_elapsed(bar: &ProgressBar, elapsed: Duration) {
        bar.set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
    }

    /// Prints a line above the bars (or to standard error when there are none and the
    /// progress is visible).
    pub fn println(&self, line: &str) {
        if let Some(bars) = &self.bars {
            let _ = bars.println(line);
        }
    }

    fn bar(&self, phase: &str, total: u64, template: &str) -> ProgressBar {
        let Some(bars) = &self.bars else {
            return ProgressBar::hidden();
        };
        let bar = bars.add(ProgressBar::new(total));
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(phase.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}
