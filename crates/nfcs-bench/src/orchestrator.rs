//! The orchestrator: the NFCS cycle at a fixed frequency over concurrent modules.
//!
//! An [`Orchestrator`] runs a loop of ticks at a configured frequency. Each tick dispatches to
//! every [`Module`] at once (each module's future runs as its own tokio task, so modules run
//! concurrently) and gathers their answers. The run returns a [`CoordinationRun`]: the achieved
//! frequency, the tick jitter, the coordination latency, per-module response times, overruns
//! and missed ticks; an optional observer sees a [`TickRecord`] for every completed tick (a
//! server publishes its metrics from it).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use nfcs_bench::orchestrator::{module_fn, Orchestrator};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), nfcs_bench::orchestrator::OrchestratorError> {
//! let mut orchestrator = Orchestrator::new(50.0)?.module(module_fn("sense", |_tick| async {
//!     tokio::time::sleep(Duration::from_millis(2)).await;
//!     Ok(())
//! }));
//! let run = orchestrator.run_for(Duration::from_millis(200)).await?;
//! assert_eq!(run.modules[0].name, "sense");
//! assert!(run.ticks_completed >= 5);
//! # Ok(())
//! # }
//! ```
//!
//! # The schedule and what is measured
//!
//! Tick `k` is *intended* at `start + k * period`. Every figure is measured against the
//! intended tick, never against the previous tick, so a late tick does not shift the ones
//! after it:
//!
//! - **lateness** (the tick *jitter*) = dispatch - intended, where *dispatch* is the instant
//!   the ticker hands the tick to the modules;
//! - **coordination latency** = last answer - intended (it includes the lateness);
//! - **module response time** = that module's answer - dispatch (the module's own time, without
//!   the ticker's lateness);
//! - a module **misses its deadline** when its answer - intended exceeds its deadline (by
//!   default the period; [`Orchestrator::module_with_deadline`]). A module past its deadline is
//!   not cancelled: the tick waits for it;
//! - an **overrun** is a completed tick whose coordination latency exceeds the period;
//! - a **missed tick** is an intended tick that was not dispatched, because the previous tick
//!   was still running at its intended time (an overrun), or because the ticker itself woke
//!   more than a period late. Ticks are never queued or dispatched late to catch up: the loop
//!   stays on its schedule and the next tick is the next intended one;
//! - the **achieved frequency** = ticks completed / elapsed, where elapsed runs from the start
//!   to the end of the run (the `run_for` duration, or the moment `run_until`'s future
//!   resolved).
//!
//! A run dispatches the ticks intended before its end, then waits for the tick in flight (up to
//! twice the longer of the period and the longest deadline after that tick's intended instant);
//! a tick still unanswered then is *abandoned*: its modules are cancelled and it counts in
//! [`CoordinationRun::ticks_abandoned`], not in the completed ticks or the latencies.
//!
//! A module that returns an error or panics answers at that moment; it is counted in its
//! [`ModuleSummary::errors`] or [`ModuleSummary::panics`] and never stops the loop.
//!
//! # The ticker
//!
//! tokio's timer has a granularity of a millisecond, too coarse for a jitter goal of a
//! millisecond at p99: measured at 10 Hz (release, the `coordination_jitter` example, a 2-core
//! machine), `sleep_until` wakes 0.9 to 1.6 ms late at the median. The ticker is therefore a
//! dedicated thread: it sleeps (a timed wait on a channel, which also delivers the modules'
//! answers and the stop signal) until [`Orchestrator::precise_wait`] before the intended
//! instant, then spins until the instant. The timed wait alone wakes 75 to 170 µs late at the
//! median (the OS's timer slack and wake-up); from 200 µs of spinning on, the median lateness is
//! 3 to 4 µs, so the default is 300 µs, at a cost of 0.3 % of a core at 10 Hz. The spin does
//! not yield: on a loaded machine a yield hands the core to another process for a whole time
//! slice. The tail (p99, max) is set by the scheduler when the machine is busier than its
//! cores: there every setting, the timed wait alone included, shows lateness of milliseconds
//! now and then (a thread of raised priority would avoid it; this crate sets none). The
//! modules run on the caller's tokio runtime.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::stats::{LatencySummary, latency_histogram, record};

/// One tick as a module sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// The tick's number, from 0 at the start of the run (missed ticks keep their numbers).
    pub index: u64,
    /// When the tick was intended: `start + index * period`.
    pub intended: Instant,
    /// The loop's period.
    pub period: Duration,
}

/// Why a module's answer was not a success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ModuleError {
    message: String,
}

impl ModuleError {
    /// An error with this message.
    pub fn new(message: impl std::fmt::Display) -> ModuleError {
        ModuleError {
            message: message.to_string(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<crate::error::BenchError> for ModuleError {
    fn from(error: crate::error::BenchError) -> ModuleError {
        ModuleError::new(error)
    }
}

impl From<nfcs_math_kernels::KernelError> for ModuleError {
    fn from(error: nfcs_math_kernels::KernelError) -> ModuleError {
        ModuleError::new(error)
    }
}

impl From<String> for ModuleError {
    fn from(message: String) -> ModuleError {
        ModuleError { message }
    }
}

impl From<&str> for ModuleError {
    fn from(message: &str) -> ModuleError {
        ModuleError::new(message)
    }
}

/// A part of the NFCS cycle the orchestrator dispatches to on every tick.
///
/// `run` returns a `'static` future: a module keeps its state behind `Arc`s and clones what the
/// future needs. The future runs as a tokio task of its own; a module that blocks should do its
/// work on a blocking thread (`tokio::task::spawn_blocking`).
pub trait Module: Send + Sync {
    /// The module's name in the results (unique within an orchestrator, by convention
    /// `snake_case`).
    fn name(&self) -> &str;

    /// The module's work for `tick`.
    fn run(&self, tick: Tick) -> BoxFuture<'static, Result<(), ModuleError>>;
}

/// A module made of a name and a closure ([`module_fn`]).
pub struct FnModule<F> {
    name: String,
    function: F,
}

impl<F> std::fmt::Debug for FnModule<F> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FnModule")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<F, Fut> Module for FnModule<F>
where
    F: Fn(Tick) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), ModuleError>> + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn run(&self, tick: Tick) -> BoxFuture<'static, Result<(), ModuleError>> {
        Box::pin((self.function)(tick))
    }
}

/// A module named `name` whose work for a tick is `function(tick)`.
pub fn module_fn<F, Fut>(name: impl Into<String>, function: F) -> Arc<dyn Module>
where
    F: Fn(Tick) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), ModuleError>> + Send + 'static,
{
    Arc::new(FnModule {
        name: name.into(),
        function,
    })
}

/// Why an orchestrator cannot be built or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrchestratorError {
    /// The frequency is not a finite number above zero (or its period rounds to zero).
    #[error("invalid orchestrator frequency {frequency_hz} Hz: it must be finite and above 0")]
    InvalidFrequency {
        /// What was given.
        frequency_hz: f64,
    },
    /// A deadline or wait of zero or one that cannot be used.
    #[error("invalid {what}: {message}")]
    InvalidSetting {
        /// Which setting.
        what: String,
        /// Why.
        message: String,
    },
    /// The run was not started inside a tokio runtime.
    #[error("the orchestrator must run inside a tokio runtime: {0}")]
    NoRuntime(String),
    /// The ticker thread could not be started.
    #[error("the ticker thread could not be started: {0}")]
    Thread(#[source] std::io::Error),
    /// The ticker thread ended without a result (it panicked: an observer panicked).
    #[error("the ticker thread ended without a result (did the observer panic?)")]
    TickerLost,
}

/// The period of `frequency_hz`, or a typed error.
fn period_of(frequency_hz: f64) -> Result<Duration, OrchestratorError> {
    if !frequency_hz.is_finite() || frequency_hz <= 0.0 {
        return Err(OrchestratorError::InvalidFrequency { frequency_hz });
    }
    let period = Duration::try_from_secs_f64(1.0 / frequency_hz)
        .map_err(|_| OrchestratorError::InvalidFrequency { frequency_hz })?;
    if period.is_zero() {
        return Err(OrchestratorError::InvalidFrequency { frequency_hz });
    }
    Ok(period)
}

/// How a module's answer ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "message", rename_all = "snake_case")]
pub enum Outcome {
    /// It returned `Ok`.
    Ok,
    /// It returned an error.
    Error(String),
    /// It panicked (in `run` or in its future).
    Panicked,
}

/// One module's answer in a tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleAnswer {
    /// The module's name.
    pub name: String,
    /// Answer - dispatch.
    pub response: Duration,
    /// Whether answer - intended exceeded the module's deadline.
    pub missed_deadline: bool,
    /// Success, error or panic.
    pub outcome: Outcome,
}

/// What happened in one completed tick, handed to the observer
/// ([`Orchestrator::observer`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TickRecord {
    /// The tick's number ([`Tick::index`]).
    pub index: u64,
    /// The intended instant, as time since the start of the run (`index * period`).
    pub intended: Duration,
    /// Dispatch - intended.
    pub lateness: Duration,
    /// Last answer - intended (the lateness when there are no modules).
    pub latency: Duration,
    /// Every module's answer, in the order the modules were added.
    pub modules: Vec<ModuleAnswer>,
    /// Whether the latency exceeded the period.
    pub overrun: bool,
    /// The intended ticks skipped between the previous dispatched tick and this one.
    pub skipped_before: u64,
}

/// One module's figures over a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleSummary {
    /// The module's name.
    pub name: String,
    /// The module's deadline, in seconds after the intended tick.
    pub deadline_s: f64,
    /// Response times (answer - dispatch), in seconds, over the completed ticks.
    pub response: LatencySummary,
    /// Answers that were errors.
    pub errors: u64,
    /// Answers that were panics.
    pub panics: u64,
    /// Answers later than the deadline.
    pub deadline_misses: u64,
    /// The last error's message.
    pub last_error: Option<String>,
}

/// A completed tick, for the plots: seconds since the start.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TickPoint {
    /// The tick's number.
    pub index: u64,
    /// The intended instant, seconds since the start.
    pub t_s: f64,
    /// Dispatch - intended, seconds.
    pub lateness_s: f64,
    /// Last answer - intended, seconds.
    pub latency_s: f64,
}

/// The result of a run of the orchestrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoordinationRun {
    /// The requested frequency, in Hz.
    pub frequency_hz: f64,
    /// The period, in seconds.
    pub period_s: f64,
    /// Seconds from the start to the end of the run.
    pub elapsed_s: f64,
    /// Intended ticks before the end of the run (dispatched + missed).
    pub ticks_intended: u64,
    /// Ticks dispatched.
    pub ticks_dispatched: u64,
    /// Ticks whose every module answered.
    pub ticks_completed: u64,
    /// Dispatched ticks still unanswered when the run gave up waiting at its end.
    pub ticks_abandoned: u64,
    /// Ticks completed / elapsed, in Hz.
    pub achieved_hz: f64,
    /// Completed ticks whose latency exceeded the period.
    pub overruns: u64,
    /// Intended ticks not dispatched (the previous one still running, or the ticker late).
    pub missed_ticks: u64,
    /// Lateness (dispatch - intended) of the dispatched ticks, in seconds.
    pub jitter: LatencySummary,
    /// Coordination latency (last answer - intended) of the completed ticks, in seconds.
    pub latency: LatencySummary,
    /// Per module, in the order they were added.
    pub modules: Vec<ModuleSummary>,
    /// The completed ticks, in order (at most [`Orchestrator::keep_ticks`] of them, the first).
    pub ticks: Vec<TickPoint>,
    /// Whether `ticks` was cut at its limit.
    pub ticks_truncated: bool,
}

impl CoordinationRun {
    /// Whether the loop sustained its frequency: the p95 coordination latency under the period
    /// and the achieved frequency at least 90 % of the requested one.
    pub fn sustained(&self) -> bool {
        self.ticks_completed > 0
            && self.latency.p95 < self.period_s
            && self.achieved_hz >= 0.9 * self.frequency_hz
    }

    /// The summary of the module called `name`.
    pub fn module(&self, name: &str) -> Option<&ModuleSummary> {
        self.modules.iter().find(|module| module.name == name)
    }
}

/// The observer of completed ticks.
type Observer = Box<dyn FnMut(&TickRecord) + Send>;

/// The NFCS cycle: a loop of ticks at a fixed frequency over concurrent [`Module`]s (see the
/// [module documentation](self) for what is measured and how).
pub struct Orchestrator {
    frequency_hz: f64,
    period: Duration,
    modules: Vec<(Arc<dyn Module>, Option<Duration>)>,
    observer: Option<Observer>,
    precise_wait: Duration,
    keep_ticks: usize,
}

impl std::fmt::Debug for Orchestrator {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Orchestrator")
            .field("frequency_hz", &self.frequency_hz)
            .field(
                "modules",
                &self
                    .modules
                    .iter()
                    .map(|(module, _)| module.name())
                    .collect::<Vec<_>>(),
            )
            .field("observer", &self.observer.is_some())
            .field("precise_wait", &self.precise_wait)
            .finish_non_exhaustive()
    }
}

/// The default of [`Orchestrator::precise_wait`] (chosen by measurement, see the
/// [module documentation](self)).
pub const DEFAULT_PRECISE_WAIT: Duration = Duration::from_micros(300);

/// The default of [`Orchestrator::keep_ticks`].
pub const DEFAULT_KEEP_TICKS: usize = 100_000;

impl Orchestrator {
    /// An orchestrator at `frequency_hz` ticks per second, without modules yet.
    ///
    /// # Errors
    /// [`OrchestratorError::InvalidFrequency`] for NaN, infinite, zero or negative frequencies.
    pub fn new(frequency_hz: f64) -> Result<Orchestrator, OrchestratorError> {
        Ok(Orchestrator {
            frequency_hz,
            period: period_of(frequency_hz)?,
            modules: Vec::new(),
            observer: None,
            precise_wait: DEFAULT_PRECISE_WAIT,
            keep_ticks: DEFAULT_KEEP_TICKS,
        })
    }

    /// Adds a module whose deadline is the period.
    pub fn module(mut self, module: Arc<dyn Module>) -> Orchestrator {
        self.modules.push((module, None));
        self
    }

    /// Adds a module with its own deadline, counted from the intended tick.
    ///
    /// # Errors
    /// [`OrchestratorError::InvalidSetting`] for a zero deadline.
    pub fn module_with_deadline(
        mut self,
        module: Arc<dyn Module>,
        deadline: Duration,
    ) -> Result<Orchestrator, OrchestratorError> {
        if deadline.is_zero() {
            return Err(OrchestratorError::InvalidSetting {
                what: format!("deadline of module {:?}", module.name()),
                message: "it must be above zero".to_owned(),
            });
        }
        self.modules.push((module, Some(deadline)));
        Ok(self)
    }

    /// Calls `observer` on the ticker thread with the record of every completed tick, as it
    /// completes (keep it short: the ticker waits for it).
    pub fn observer(mut self, observer: impl FnMut(&TickRecord) + Send + 'static) -> Orchestrator {
        self.observer = Some(Box::new(observer));
        self
    }

    /// How long before an intended tick the ticker stops sleeping and spins until the instant
    /// ([`DEFAULT_PRECISE_WAIT`]); zero relies on the OS's timed wait alone. The spin costs
    /// `wait x frequency` of a core (all of it when the period is shorter than the wait).
    pub fn precise_wait(mut self, wait: Duration) -> Orchestrator {
        self.precise_wait = wait;
        self
    }

    /// How many completed ticks [`CoordinationRun::ticks`] keeps ([`DEFAULT_KEEP_TICKS`]; the
    /// summaries cover every tick regardless).
    pub fn keep_ticks(mut self, ticks: usize) -> Orchestrator {
        self.keep_ticks = ticks;
        self
    }

    /// The requested frequency, in Hz.
    pub fn frequency_hz(&self) -> f64 {
        self.frequency_hz
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The names of the modules, in order.
    pub fn module_names(&self) -> Vec<String> {
        self.modules
            .iter()
            .map(|(module, _)| module.name().to_owned())
            .collect()
    }

    /// The same modules (and settings, without the observer) at another frequency. A module
    /// with the default deadline gets the new period.
    ///
    /// # Errors
    /// [`OrchestratorError::InvalidFrequency`].
    pub fn at_frequency(&self, frequency_hz: f64) -> Result<Orchestrator, OrchestratorError> {
        Ok(Orchestrator {
            frequency_hz,
            period: period_of(frequency_hz)?,
            modules: self.modules.clone(),
            observer: None,
            precise_wait: self.precise_wait,
            keep_ticks: self.keep_ticks,
        })
    }

    /// Runs the loop for `duration`: the ticks intended in `[start, start + duration)` are
    /// dispatched, then the last one is waited for.
    ///
    /// # Errors
    /// [`OrchestratorError::NoRuntime`] outside a tokio runtime,
    /// [`OrchestratorError::Thread`] when the ticker thread cannot start,
    /// [`OrchestratorError::TickerLost`] when the observer panicked.
    pub async fn run_for(
        &mut self,
        duration: Duration,
    ) -> Result<CoordinationRun, OrchestratorError> {
        self.run(Some(duration), std::future::pending::<()>()).await
    }

    /// Runs the loop until `stop` resolves (forever if it never does), then waits for the tick
    /// in flight. Dropping the returned future stops the loop too (and the observer, which
    /// a finished run hands back to the orchestrator, is then lost).
    ///
    /// # Errors
    /// As [`run_for`](Orchestrator::run_for).
    pub async fn run_until(
        &mut self,
        stop: impl Future<Output = ()>,
    ) -> Result<CoordinationRun, OrchestratorError> {
        self.run(None, stop).await
    }

    async fn run(
        &mut self,
        duration: Option<Duration>,
        stop: impl Future<Output = ()>,
    ) -> Result<CoordinationRun, OrchestratorError> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|error| OrchestratorError::NoRuntime(error.to_string()))?;
        let (events, receiver) = mpsc::channel::<Event>();
        let (done_sender, done) = tokio::sync::oneshot::channel();
        let ticker = Ticker {
            period: self.period,
            frequency_hz: self.frequency_hz,
            modules: self
                .modules
                .iter()
                .map(|(module, deadline)| (Arc::clone(module), deadline.unwrap_or(self.period)))
                .collect(),
            observer: self.observer.take(),
            precise_wait: self.precise_wait,
            keep_ticks: self.keep_ticks,
            duration,
            handle,
            events: events.clone(),
            receiver,
        };
        std::thread::Builder::new()
            .name("nfcs-ticker".to_owned())
            .spawn(move || {
                let (run, observer) = ticker.run();
                let _ = done_sender.send((run, observer));
            })
            .map_err(OrchestratorError::Thread)?;
        // Stops the ticker when this future ends or is dropped.
        let stopper = StopOnDrop(events);
        let mut done = done;
        let finished = tokio::select! {
            outcome = &mut done => Some(outcome),
            () = stop => None,
        };
        let outcome = match finished {
            Some(outcome) => outcome,
            None => {
                stopper.stop();
                done.await
            }
        };
        drop(stopper);
        let (run, observer) = outcome.map_err(|_| OrchestratorError::TickerLost)?;
        self.observer = observer;
        Ok(run)
    }
}

/// Sends the stop signal to the ticker, at the latest when dropped.
struct StopOnDrop(mpsc::Sender<Event>);

impl StopOnDrop {
    fn stop(&self) {
        let _ = self.0.send(Event::Stop);
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the ticker thread hears.
enum Event {
    /// The run is over.
    Stop,
    /// A module answered.
    Answer {
        tick: u64,
        module: usize,
        at: Instant,
        outcome: Outcome,
    },
}

/// Sends a module's answer; when dropped without having answered (the module panicked, or the
/// task was cancelled), sends a panic.
struct AnswerGuard {
    events: mpsc::Sender<Event>,
    tick: u64,
    module: usize,
    answered: bool,
}

impl AnswerGuard {
    fn answer(mut self, outcome: Outcome) {
        self.answered = true;
        let _ = self.events.send(Event::Answer {
            tick: self.tick,
            module: self.module,
            at: Instant::now(),
            outcome,
        });
    }
}

impl Drop for AnswerGuard {
    fn drop(&mut self) {
        if !self.answered {
            let _ = self.events.send(Event::Answer {
                tick: self.tick,
                module: self.module,
                at: Instant::now(),
                outcome: Outcome::Panicked,
            });
        }
    }
}

/// The tick being answered.
struct InFlight {
    index: u64,
    intended: Instant,
    dispatched: Instant,
    skipped_before: u64,
    answers: Vec<Option<(Instant, Outcome)>>,
    remaining: usize,
    tasks: Vec<tokio::task::AbortHandle>,
}

/// Per-module accumulators.
struct ModuleStats {
    response: Histogram<u64>,
    errors: u64,
    panics: u64,
    deadline_misses: u64,
    last_error: Option<String>,
}

/// The ticker thread's state.
struct Ticker {
    period: Duration,
    frequency_hz: f64,
    modules: Vec<(Arc<dyn Module>, Duration)>,
    observer: Option<Observer>,
    precise_wait: Duration,
    keep_ticks: usize,
    duration: Option<Duration>,
    handle: tokio::runtime::Handle,
    events: mpsc::Sender<Event>,
    receiver: mpsc::Receiver<Event>,
}

/// What the ticker accumulates.
struct Totals {
    lateness: Histogram<u64>,
    latency: Histogram<u64>,
    modules: Vec<ModuleStats>,
    ticks: Vec<TickPoint>,
    truncated: bool,
    dispatched: u64,
    completed: u64,
    overruns: u64,
    missed: u64,
    start: Instant,
}

impl Ticker {
    fn run(mut self) -> (CoordinationRun, Option<Observer>) {
        let mut totals = Totals {
            lateness: latency_histogram(),
            latency: latency_histogram(),
            modules: self
                .modules
                .iter()
                .map(|_| ModuleStats {
                    response: latency_histogram(),
                    errors: 0,
                    panics: 0,
                    deadline_misses: 0,
                    last_error: None,
                })
                .collect(),
            ticks: Vec::new(),
            truncated: false,
            dispatched: 0,
            completed: 0,
            overruns: 0,
            missed: 0,
            start: Instant::now(),
        };
        let start = totals.start;
        let end = self.duration.map(|duration| start + duration);
        let mut in_flight: Option<InFlight> = None;
        let mut next: u64 = 0;
        let mut skipped_since_dispatch: u64 = 0;
        let mut stopped_at: Option<Instant> = None;
        'ticks: loop {
            let intended = start + self.period_times(next);
            if end.is_some_and(|end| intended >= end) {
                break;
            }
            // Sleep until shortly before the tick, handling answers and the stop signal.
            let wake = intended.checked_sub(self.precise_wait).unwrap_or(intended);
            loop {
                let now = Instant::now();
                if now >= wake {
                    break;
                }
                match self.receiver.recv_timeout(wake - now) {
                    Ok(event) => {
                        if self.handle_event(event, &mut in_flight, &mut totals) {
                            stopped_at = Some(Instant::now());
                            break 'ticks;
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => break,
                    // The ticker holds a sender itself, so this cannot happen.
                    Err(mpsc::RecvTimeoutError::Disconnected) => break 'ticks,
                }
            }
            // The precise part: spin until the instant (yielding here would hand the core to
            // any runnable process for a whole time slice on a loaded machine).
            while Instant::now() < intended {
                std::hint::spin_loop();
            }
            // Answers that arrived meanwhile decide whether the previous tick is over.
            while let Ok(event) = self.receiver.try_recv() {
                if self.handle_event(event, &mut in_flight, &mut totals) {
                    stopped_at = Some(Instant::now());
                    break 'ticks;
                }
            }
            let now = Instant::now();
            // A ticker more than a period late skips to the latest due tick.
            let due = self.tick_at(now - start).max(next);
            if due > next {
                let late = due - next;
                totals.missed += late;
                skipped_since_dispatch += late;
                next = due;
                if end.is_some_and(|end| start + self.period_times(next) >= end) {
                    break;
                }
            }
            if in_flight.is_some() {
                totals.missed += 1;
                skipped_since_dispatch += 1;
            } else {
                let intended = start + self.period_times(next);
                in_flight = self.dispatch(next, intended, skipped_since_dispatch);
                totals.dispatched += 1;
                skipped_since_dispatch = 0;
                if let Some(tick) = in_flight.take_if(|tick| tick.remaining == 0) {
                    self.complete(tick, &mut totals);
                }
            }
            next += 1;
        }
        let end_instant = stopped_at.or(end).unwrap_or_else(Instant::now);
        // Drain the tick in flight.
        let mut abandoned = 0;
        if let Some(tick) = &in_flight {
            let longest = self
                .modules
                .iter()
                .map(|(_, deadline)| *deadline)
                .max()
                .unwrap_or(self.period)
                .max(self.period);
            let give_up = tick.intended + longest * 2;
            while in_flight.is_some() {
                let now = Instant::now();
                if now >= give_up {
                    break;
                }
                match self.receiver.recv_timeout(give_up - now) {
                    Ok(event) => {
                        self.handle_event(event, &mut in_flight, &mut totals);
                    }
                    Err(_) => break,
                }
            }
            if let Some(tick) = in_flight.take() {
                abandoned = 1;
                for task in &tick.tasks {
                    task.abort();
                }
            }
        }
        let elapsed = end_instant.saturating_duration_since(start).as_secs_f64();
        let run = CoordinationRun {
            frequency_hz: self.frequency_hz,
            period_s: self.period.as_secs_f64(),
            elapsed_s: elapsed,
            ticks_intended: totals.dispatched + totals.missed,
            ticks_dispatched: totals.dispatched,
            ticks_completed: totals.completed,
            ticks_abandoned: abandoned,
            achieved_hz: if elapsed > 0.0 {
                totals.completed as f64 / elapsed
            } else {
                0.0
            },
            overruns: totals.overruns,
            missed_ticks: totals.missed,
            jitter: LatencySummary::of(&totals.lateness),
            latency: LatencySummary::of(&totals.latency),
            modules: self
                .modules
                .iter()
                .zip(totals.modules)
                .map(|((module, deadline), stats)| ModuleSummary {
                    name: module.name().to_owned(),
                    deadline_s: deadline.as_secs_f64(),
                    response: LatencySummary::of(&stats.response),
                    errors: stats.errors,
                    panics: stats.panics,
                    deadline_misses: stats.deadline_misses,
                    last_error: stats.last_error,
                })
                .collect(),
            ticks: totals.ticks,
            ticks_truncated: totals.truncated,
        };
        (run, self.observer.take())
    }

    /// `index * period`, saturating.
    fn period_times(&self, index: u64) -> Duration {
        let nanos = self.period.as_nanos().saturating_mul(u128::from(index));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The number of the latest tick intended at or before `since_start`.
    fn tick_at(&self, since_start: Duration) -> u64 {
        u64::try_from(since_start.as_nanos() / self.period.as_nanos().max(1)).unwrap_or(u64::MAX)
    }

    /// Hands tick `index` to every module.
    fn dispatch(&self, index: u64, intended: Instant, skipped_before: u64) -> Option<InFlight> {
        let tick = Tick {
            index,
            intended,
            period: self.period,
        };
        let dispatched = Instant::now();
        let mut answers = Vec::with_capacity(self.modules.len());
        let mut tasks = Vec::with_capacity(self.modules.len());
        let mut remaining = 0;
        for (position, (module, _)) in self.modules.iter().enumerate() {
            let future = std::panic::catch_unwind(AssertUnwindSafe(|| module.run(tick)));
            match future {
                Ok(future) => {
                    let guard = AnswerGuard {
                        events: self.events.clone(),
                        tick: index,
                        module: position,
                        answered: false,
                    };
                    let task = self.handle.spawn(async move {
                        let outcome = match future.await {
                            Ok(()) => Outcome::Ok,
                            Err(error) => Outcome::Error(error.message),
                        };
                        guard.answer(outcome);
                    });
                    tasks.push(task.abort_handle());
                    answers.push(None);
                    remaining += 1;
                }
                Err(_) => answers.push(Some((Instant::now(), Outcome::Panicked))),
            }
        }
        Some(InFlight {
            index,
            intended,
            dispatched,
            skipped_before,
            answers,
            remaining,
            tasks,
        })
    }

    /// Applies an event; `true` for the stop signal.
    fn handle_event(
        &mut self,
        event: Event,
        in_flight: &mut Option<InFlight>,
        totals: &mut Totals,
    ) -> bool {
        match event {
            Event::Stop => true,
            Event::Answer {
                tick,
                module,
                at,
                outcome,
            } => {
                if let Some(current) = in_flight.as_mut()
                    && current.index == tick
                    && let Some(slot @ None) = current.answers.get_mut(module)
                {
                    *slot = Some((at, outcome));
                    current.remaining -= 1;
                    if current.remaining == 0
                        && let Some(done) = in_flight.take()
                    {
                        self.complete(done, totals);
                    }
                }
                false
            }
        }
    }

    /// Records a tick whose every module answered, and shows it to the observer.
    fn complete(&mut self, tick: InFlight, totals: &mut Totals) {
        let lateness = tick.dispatched.saturating_duration_since(tick.intended);
        let mut last = tick.dispatched;
        let mut modules = Vec::with_capacity(tick.answers.len());
        for (position, answer) in tick.answers.into_iter().enumerate() {
            let (module, deadline) = &self.modules[position];
            let stats = &mut totals.modules[position];
            let (at, outcome) = answer.unwrap_or((tick.dispatched, Outcome::Panicked));
            last = last.max(at);
            let response = at.saturating_duration_since(tick.dispatched);
            let missed_deadline = at.saturating_duration_since(tick.intended) > *deadline;
            record(&mut stats.response, response);
            stats.deadline_misses += u64::from(missed_deadline);
            match &outcome {
                Outcome::Ok => {}
                Outcome::Error(message) => {
                    stats.errors += 1;
                    stats.last_error = Some(message.clone());
                }
                Outcome::Panicked => stats.panics += 1,
            }
            modules.push(ModuleAnswer {
                name: module.name().to_owned(),
                response,
                missed_deadline,
                outcome,
            });
        }
        let latency = last.saturating_duration_since(tick.intended);
        let overrun = latency > self.period;
        record(&mut totals.lateness, lateness);
        record(&mut totals.latency, latency);
        totals.completed += 1;
        totals.overruns += u64::from(overrun);
        let intended = tick.intended.saturating_duration_since(totals.start);
        if totals.ticks.len() < self.keep_ticks {
            totals.ticks.push(TickPoint {
                index: tick.index,
                t_s: intended.as_secs_f64(),
                lateness_s: lateness.as_secs_f64(),
                latency_s: latency.as_secs_f64(),
            });
        } else {
            totals.truncated = true;
        }
        if let Some(observer) = self.observer.as_mut() {
            observer(&TickRecord {
                index: tick.index,
                intended,
                lateness,
                latency,
                modules,
                overrun,
                skipped_before: tick.skipped_before,
            });
        }
    }
}

/// One trial of [`Orchestrator::find_max_frequency`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrequencyTrial {
    /// The requested frequency, in Hz.
    pub frequency_hz: f64,
    /// The trial's duration, in seconds.
    pub duration_s: f64,
    /// Ticks completed / elapsed, in Hz.
    pub achieved_hz: f64,
    /// The p95 coordination latency, in seconds.
    pub latency_p95_s: f64,
    /// The p99 lateness, in seconds.
    pub jitter_p99_s: f64,
    /// Whether it sustained the frequency ([`CoordinationRun::sustained`]).
    pub sustained: bool,
}

/// The result of [`Orchestrator::find_max_frequency`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrequencySearch {
    /// The highest frequency a trial sustained, in Hz (0 when none did).
    pub max_sustained_hz: f64,
    /// The lowest frequency a trial did not sustain, when one did not.
    pub lowest_failed_hz: Option<f64>,
    /// Every trial, in order.
    pub trials: Vec<FrequencyTrial>,
}

/// The highest frequency the search tries (a period of 10 µs).
pub const SEARCH_CEILING_HZ: f64 = 100_000.0;

impl Orchestrator {
    /// Finds the highest frequency the loop sustains with these modules, within about
    /// `budget`: short runs ([`CoordinationRun::sustained`]: p95 latency under the period and
    /// achieved frequency at least 90 % of the requested) starting at the configured
    /// frequency, doubling while they sustain (halving while they do not), then bisecting
    /// between the highest sustained and the lowest failed frequency until they are within
    /// 5 % or the budget is spent. Each trial lasts a tenth of the budget (at least 100 ms and
    /// 10 periods, at most what is left of the budget). The observer is not called.
    ///
    /// # Errors
    /// As [`run_for`](Orchestrator::run_for).
    pub async fn find_max_frequency(
        &self,
        budget: Duration,
    ) -> Result<FrequencySearch, OrchestratorError> {
        let started = Instant::now();
        let base_trial = (budget / 10).max(Duration::from_millis(100));
        let mut trials = Vec::new();
        let mut best: Option<f64> = None;
        let mut failed: Option<f64> = None;
        let mut frequency = self.frequency_hz.min(SEARCH_CEILING_HZ);
        loop {
            let spent = started.elapsed();
            if spent >= budget && !trials.is_empty() {
                break;
            }
            let mut orchestrator = self.at_frequency(frequency)?;
            let trial_duration = base_trial
                .max(orchestrator.period().saturating_mul(10))
                .min(budget.saturating_sub(spent).max(base_trial));
            let run = orchestrator.run_for(trial_duration).await?;
            let sustained = run.sustained();
            trials.push(FrequencyTrial {
                frequency_hz: frequency,
                duration_s: run.elapsed_s,
                achieved_hz: run.achieved_hz,
                latency_p95_s: run.latency.p95,
                jitter_p99_s: run.jitter.p99,
                sustained,
            });
            if sustained {
                best = Some(best.map_or(frequency, |best: f64| best.max(frequency)));
            } else {
                failed = Some(failed.map_or(frequency, |failed: f64| failed.min(frequency)));
            }
            frequency = match (best, failed) {
                (Some(low), Some(high)) => {
                    if high / low <= 1.05 {
                        break;
                    }
                    (low * high).sqrt()
                }
                (Some(low), None) => {
                    if low >= SEARCH_CEILING_HZ {
                        break;
                    }
                    (low * 2.0).min(SEARCH_CEILING_HZ)
                }
                (None, Some(high)) => {
                    if high < 0.01 {
                        break;
                    }
                    high / 2.0
                }
                (None, None) => break,
            };
        }
        Ok(FrequencySearch {
            max_sustained_hz: best.unwrap_or(0.0),
            lowest_failed_hz: failed,
            trials,
        })
    }
}
