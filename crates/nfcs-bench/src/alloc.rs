//! Allocator statistics (jemalloc, feature `jemalloc`): what the heap holds, what it costs in
//! pages, a profiler sampling it over time, and a scoped peak measurement.
//!
//! # What the figures are
//!
//! jemalloc keeps its statistics per arena and merges them when its *epoch* is advanced;
//! [`read`] advances it, then reads (all in bytes):
//!
//! - `allocated`: bytes the program holds in live allocations (objects sitting in a thread's
//!   cache after `free` count as allocated until the cache is flushed: up to a few hundred
//!   KiB per thread);
//! - `active`: bytes of the pages those allocations occupy (a multiple of the page size,
//!   at least `allocated`);
//! - `resident`: bytes of allocator pages physically resident (active pages, dirty pages not
//!   returned yet, metadata; jemalloc calls it a maximum, not an exact figure);
//! - `mapped`: bytes of the extents the allocator has mapped for active use;
//! - `retained`: virtual memory kept mapped but returned to the OS (not resident);
//! - `metadata`: the allocator's own bookkeeping.
//!
//! [`AllocatorStats::fragmentation`] is `1 - allocated / active`, as Redis's
//! `allocator_frag_ratio` (`active / allocated`) read as the share of active pages not
//! holding data; [`AllocatorStats::efficiency`] is `allocated / resident`. On a small heap a
//! few MiB of thread caches and metadata move both ratios a lot: read them with the byte
//! counts.
//!
//! # Availability
//!
//! The figures describe the process's heap only when jemalloc *is* its global allocator: the
//! binary declares
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
//! ```
//!
//! [`read`] checks this once (a probe allocation must show up in `allocated`) and returns
//! [`Unavailable::NotGlobalAllocator`] otherwise; without the feature it returns
//! [`Unavailable::FeatureDisabled`]. [`process_resident_bytes`] (the OS's `VmRSS`) works
//! either way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::recording::PerformanceRecorder;

/// Why allocator statistics cannot be had here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unavailable {
    /// The crate was built without the `jemalloc` feature.
    #[error(
        "allocator statistics are unavailable: nfcs-bench was built without the `jemalloc` \
         feature (rebuild with default features)"
    )]
    FeatureDisabled,
    /// jemalloc is linked, but the program allocates with another allocator.
    #[error(
        "allocator statistics are unavailable: jemalloc is not this program's global \
         allocator (the binary must declare `#[global_allocator] static GLOBAL: \
         tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;`)"
    )]
    NotGlobalAllocator,
    /// jemalloc refused to give its statistics (or a sampling thread could not start).
    #[error("allocator statistics are unavailable: {0}")]
    Ctl(String),
}

/// A snapshot of jemalloc's statistics, in bytes (see the [module](self) documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AllocatorStats {
    /// Bytes in live allocations.
    pub allocated: u64,
    /// Bytes of the pages live allocations occupy.
    pub active: u64,
    /// Bytes of allocator pages physically resident (an upper bound).
    pub resident: u64,
    /// Bytes of extents mapped for active use.
    pub mapped: u64,
    /// Bytes of virtual memory kept mapped but returned to the OS.
    pub retained: u64,
    /// Bytes of the allocator's own bookkeeping.
    pub metadata: u64,
}

impl AllocatorStats {
    /// `1 - allocated / active`: the share of active pages that holds no live data (0 when
    /// nothing is active). Multiply by 100 for `nfcs_memory_fragmentation_percent`.
    pub fn fragmentation(&self) -> f64 {
        if self.active == 0 {
            return 0.0;
        }
        (1.0 - self.allocated as f64 / self.active as f64).max(0.0)
    }

    /// `allocated / resident`: the share of resident allocator memory that holds live data
    /// (0 when nothing is resident); `nfcs_memory_efficiency_ratio`.
    pub fn efficiency(&self) -> f64 {
        if self.resident == 0 {
            return 0.0;
        }
        self.allocated as f64 / self.resident as f64
    }
}

/// Reads jemalloc's statistics after advancing its epoch.
///
/// # Errors
/// [`Unavailable`] without the `jemalloc` feature, when jemalloc is not the global allocator,
/// or when a `mallctl` fails.
pub fn read() -> Result<AllocatorStats, Unavailable> {
    imp::ensure_global()?;
    imp::read_raw()
}

/// Whether jemalloc's background threads purge unused dirty pages (`background_thread`).
///
/// # Errors
/// As [`read`].
pub fn background_threads() -> Result<bool, Unavailable> {
    imp::ensure_global()?;
    imp::background_threads()
}

/// Turns jemalloc's background purging threads on or off; returns the setting before. The
/// allocator-side counterpart of tuning a garbage collector: with them on, dirty pages go back
/// to the OS on the decay schedule without waiting for an allocation to trigger it.
///
/// # Errors
/// As [`read`].
pub fn set_background_threads(on: bool) -> Result<bool, Unavailable> {
    imp::ensure_global()?;
    imp::set_background_threads(on)
}

/// Whether [`read`] gives figures here (`Ok`), and otherwise why not.
///
/// # Errors
/// As [`read`].
pub fn available() -> Result<(), Unavailable> {
    imp::ensure_global()
}

/// The process's resident set (`VmRSS` of `/proc/self/status`), in bytes; `None` where it
/// cannot be read (not Linux). Independent of the allocator.
pub fn process_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// What an allocator purge (returning freed pages to the OS) did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PurgeOutcome {
    /// How long it took, in seconds.
    pub seconds: f64,
    /// Resident bytes before.
    pub resident_before: u64,
    /// Resident bytes after.
    pub resident_after: u64,
}

impl PurgeOutcome {
    /// Resident bytes given back (0 when resident grew).
    pub fn reclaimed(&self) -> u64 {
        self.resident_before.saturating_sub(self.resident_after)
    }
}

/// Times the allocator's "garbage collection": freeing `bytes` of touched memory held in
/// oversize allocations (16 MiB each, above jemalloc's 8 MiB `oversize_threshold`), which
/// jemalloc serves from a dedicated arena that it purges eagerly (its decay time is 0): the
/// timed `free` includes the `madvise`/`munmap` that returns the pages to the OS. Resident
/// bytes are read once the buffers are touched and again once they are freed, so
/// [`PurgeOutcome::reclaimed`] is what the OS got back.
///
/// jemalloc's explicit `arena.<i>.purge` (for the dirty pages of small allocations) takes a
/// `mallctl` call with null pointers that tikv-jemalloc-ctl 0.7 has no safe wrapper for, and
/// this crate forbids unsafe code; the eager purge of the oversize arena is the same work
/// (returning dirty extents to the OS), measured through the safe API.
///
/// # Errors
/// As [`read`].
pub fn timed_purge(bytes: usize) -> Result<PurgeOutcome, Unavailable> {
    const CHUNK: usize = 16 << 20;
    available()?;
    let chunks = bytes.div_ceil(CHUNK).max(1);
    let mut buffers: Vec<Vec<u8>> = Vec::with_capacity(chunks);
    for index in 0..chunks {
        let mut buffer = vec![0_u8; CHUNK];
        touch(&mut buffer, index as u8 | 1);
        buffers.push(buffer);
    }
    std::hint::black_box(&buffers);
    let before = read()?;
    let started = Instant::now();
    drop(buffers);
    let seconds = started.elapsed().as_secs_f64();
    let after = read()?;
    Ok(PurgeOutcome {
        seconds,
        resident_before: before.resident,
        resident_after: after.resident,
    })
}

/// Writes `value` to one byte of every 4 KiB page of `buffer`, so its pages become resident.
pub fn touch(buffer: &mut [u8], value: u8) {
    for byte in buffer.iter_mut().step_by(4096) {
        *byte = value;
    }
    std::hint::black_box(buffer);
}

/// One sample of a [`MemoryProfiler`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MemorySample {
    /// Seconds since the profiler started.
    pub t_s: f64,
    /// The allocator's statistics then.
    pub stats: AllocatorStats,
    /// The process's resident set then ([`process_resident_bytes`]), when known.
    pub process_resident: Option<u64>,
}

/// Samples the allocator's statistics every interval on a background thread until stopped:
/// the suite's "memory over time".
///
/// It takes a sample when it starts and when it stops, so even a run shorter than the interval
/// has two; [`sample_now`](MemoryProfiler::sample_now) adds one at a point of interest (the
/// end of a phase). A sample costs an epoch advance and six reads (a few microseconds).
///
/// ```no_run
/// use std::time::Duration;
/// use nfcs_bench::alloc::MemoryProfiler;
///
/// let profiler = MemoryProfiler::start(Duration::from_secs(60))?;
/// // ... the run ...
/// let samples = profiler.stop();
/// assert!(samples.len() >= 2);
/// # Ok::<(), nfcs_bench::alloc::Unavailable>(())
/// ```
#[derive(Debug)]
pub struct MemoryProfiler {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    started: Instant,
    samples: Mutex<Vec<MemorySample>>,
    stop: Mutex<bool>,
    wake: Condvar,
    recorder: Option<Arc<PerformanceRecorder>>,
    failed: AtomicBool,
}

impl Shared {
    fn samples(&self) -> MutexGuard<'_, Vec<MemorySample>> {
        self.samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn sample(&self) {
        match read() {
            Ok(stats) => {
                if let Some(recorder) = &self.recorder {
                    recorder.record_memory(&stats);
                }
                let sample = MemorySample {
                    t_s: self.started.elapsed().as_secs_f64(),
                    stats,
                    process_resident: process_resident_bytes(),
                };
                self.samples().push(sample);
            }
            Err(_) => self.failed.store(true, Ordering::Relaxed),
        }
    }
}

impl MemoryProfiler {
    /// Starts sampling every `interval` (at least 1 ms).
    ///
    /// # Errors
    /// [`Unavailable`] when allocator statistics cannot be read here.
    pub fn start(interval: Duration) -> Result<MemoryProfiler, Unavailable> {
        MemoryProfiler::spawn(interval, None)
    }

    /// Starts sampling every `interval`, publishing each sample's efficiency and fragmentation
    /// through `recorder` ([`PerformanceRecorder::record_memory`]).
    ///
    /// # Errors
    /// As [`start`](MemoryProfiler::start).
    pub fn start_recording(
        interval: Duration,
        recorder: Arc<PerformanceRecorder>,
    ) -> Result<MemoryProfiler, Unavailable> {
        MemoryProfiler::spawn(interval, Some(recorder))
    }

    fn spawn(
        interval: Duration,
        recorder: Option<Arc<PerformanceRecorder>>,
    ) -> Result<MemoryProfiler, Unavailable> {
        available()?;
        let interval = interval.max(Duration::from_millis(1));
        let shared = Arc::new(Shared {
            started: Instant::now(),
            samples: Mutex::new(Vec::new()),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            recorder,
            failed: AtomicBool::new(false),
        });
        shared.sample();
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("nfcs-memory-profiler".to_owned())
            .spawn(move || {
                let mut next = Instant::now() + interval;
                let mut stop = worker
                    .stop
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                loop {
                    let now = Instant::now();
                    if *stop {
                        break;
                    }
                    if now >= next {
                        drop(stop);
                        worker.sample();
                        // Fixed-rate schedule; a late sample does not shift the later ones,
                        // a stall longer than an interval skips the missed ticks.
                        next += interval;
                        let now = Instant::now();
                        if next <= now {
                            next = now + interval;
                        }
                        stop = worker
                            .stop
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        continue;
                    }
                    stop = worker
                        .wake
                        .wait_timeout(stop, next - now)
                        .map(|(guard, _)| guard)
                        .unwrap_or_else(|poisoned| poisoned.into_inner().0);
                }
            })
            .map_err(|error| Unavailable::Ctl(format!("could not start the profiler: {error}")))?;
        Ok(MemoryProfiler {
            shared,
            thread: Some(thread),
        })
    }

    /// Takes a sample now (besides the periodic ones).
    pub fn sample_now(&self) {
        self.shared.sample();
    }

    /// The samples so far, in time order.
    pub fn samples(&self) -> Vec<MemorySample> {
        let mut samples = self.shared.samples().clone();
        samples.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
        samples
    }

    /// Seconds since the profiler started.
    pub fn elapsed_s(&self) -> f64 {
        self.shared.started.elapsed().as_secs_f64()
    }

    /// Whether a sample failed to read (the statistics went away: not expected).
    pub fn had_failures(&self) -> bool {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// Stops sampling (after a last sample) and returns every sample, in time order.
    pub fn stop(mut self) -> Vec<MemorySample> {
        self.halt();
        self.shared.sample();
        self.samples()
    }

    fn halt(&mut self) {
        *self
            .shared
            .stop
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for MemoryProfiler {
    fn drop(&mut self) {
        self.halt();
    }
}

/// What [`measure_peak`] saw, in bytes of `allocated` (process-wide).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeakMeasurement {
    /// `allocated` before the closure ran.
    pub before: u64,
    /// `allocated` after it returned (its result still alive).
    pub after: u64,
    /// The highest `allocated` seen while it ran (before and after included).
    pub peak: u64,
    /// Samples taken while it ran.
    pub samples: u64,
}

impl PeakMeasurement {
    /// `after - before`: what the closure left allocated (its result and anything it keeps),
    /// 0 when it freed more than it allocated.
    pub fn retained(&self) -> u64 {
        self.after.saturating_sub(self.before)
    }

    /// `peak - before`: the most the closure had allocated at once, as sampled.
    pub fn peak_increase(&self) -> u64 {
        self.peak.saturating_sub(self.before)
    }
}

/// The default sampling interval of [`measure_peak`].
pub const PEAK_SAMPLE_INTERVAL: Duration = Duration::from_millis(1);

/// Runs `work` and measures the allocator's `allocated` before, after, and at its peak,
/// sampled every [`PEAK_SAMPLE_INTERVAL`] by a thread (for the mathematical component's
/// "peak memory of the solvers").
///
/// # Precision
///
/// - `before`/`after` are exact at their instant, but process-wide: allocations of other
///   threads in the meantime count too (run it with the rest of the process quiet).
/// - The peak is a lower bound: a spike shorter than the interval (1 ms) between two samples
///   is missed, and a sample costs a few microseconds, so sampling adds under 1 % of one
///   core. Work that allocates its working set once and then computes (a solver) is measured
///   to within the thread caches' slack (a few hundred KiB).
///
/// # Errors
/// As [`read`]; `work` does not run then.
pub fn measure_peak<T>(work: impl FnOnce() -> T) -> Result<(T, PeakMeasurement), Unavailable> {
    measure_peak_every(PEAK_SAMPLE_INTERVAL, work)
}

/// [`measure_peak`] with another sampling interval.
///
/// # Errors
/// As [`read`]; `work` does not run then.
pub fn measure_peak_every<T>(
    interval: Duration,
    work: impl FnOnce() -> T,
) -> Result<(T, PeakMeasurement), Unavailable> {
    measure_peak_with(interval, |_| work())
}

/// The sampler of a [`measure_peak_with`] run, as the work sees it: how many samples it has
/// taken, and a way to wait for more (so a test can hold an allocation until the sampler has
/// seen it, instead of sleeping for a guessed time).
#[derive(Debug)]
pub struct PeakProbe {
    shared: Arc<ProbeShared>,
}

#[derive(Debug, Default)]
struct ProbeShared {
    samples: std::sync::Mutex<u64>,
    sampled: std::sync::Condvar,
}

impl PeakProbe {
    /// Samples taken so far.
    pub fn samples(&self) -> u64 {
        self.shared
            .samples
            .lock()
            .map_or_else(|poisoned| *poisoned.into_inner(), |samples| *samples)
    }

    /// Blocks until the sampler has taken `more` samples after this call began.
    pub fn wait_for_samples(&self, more: u64) {
        let Ok(mut samples) = self.shared.samples.lock() else {
            return;
        };
        let target = samples.saturating_add(more);
        while *samples < target {
            samples = match self.shared.sampled.wait(samples) {
                Ok(samples) => samples,
                Err(_) => return,
            };
        }
    }
}

/// [`measure_peak_every`], handing `work` the [`PeakProbe`] of its sampler.
///
/// # Errors
/// As [`read`]; `work` does not run then.
pub fn measure_peak_with<T>(
    interval: Duration,
    work: impl FnOnce(&PeakProbe) -> T,
) -> Result<(T, PeakMeasurement), Unavailable> {
    let before = read()?.allocated;
    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&done);
    let shared = Arc::new(ProbeShared::default());
    let counting = Arc::clone(&shared);
    let interval = interval.max(Duration::from_micros(50));
    let sampler = std::thread::Builder::new()
        .name("nfcs-peak-sampler".to_owned())
        .spawn(move || {
            let (mut peak, mut samples) = (0_u64, 0_u64);
            while !flag.load(Ordering::Acquire) {
                if let Ok(stats) = imp::read_raw() {
                    peak = peak.max(stats.allocated);
                    samples += 1;
                    if let Ok(mut count) = counting.samples.lock() {
                        *count = samples;
                    }
                    counting.sampled.notify_all();
                }
                std::thread::sleep(interval);
            }
            (peak, samples)
        })
        .map_err(|error| Unavailable::Ctl(format!("could not start the sampler: {error}")))?;
    let probe = PeakProbe { shared };
    let result = work(&probe);
    done.store(true, Ordering::Release);
    let (sampled_peak, samples) = sampler.join().unwrap_or((0, 0));
    let after = read()?.allocated;
    Ok((
        result,
        PeakMeasurement {
            before,
            after,
            peak: sampled_peak.max(before).max(after),
            samples,
        },
    ))
}

#[cfg(feature = "jemalloc")]
mod imp {
    use std::sync::OnceLock;

    use tikv_jemalloc_ctl::{epoch, stats};

    use super::{AllocatorStats, Unavailable};

    struct Mibs {
        epoch: epoch_mib,
        allocated: stats::allocated_mib,
        active: stats::active_mib,
        resident: stats::resident_mib,
        mapped: stats::mapped_mib,
        retained: stats::retained_mib,
        metadata: stats::metadata_mib,
    }

    use tikv_jemalloc_ctl::epoch_mib;

    fn ctl(error: tikv_jemalloc_ctl::Error) -> Unavailable {
        Unavailable::Ctl(format!("jemalloc's mallctl failed: {error}"))
    }

    fn mibs() -> Result<&'static Mibs, Unavailable> {
        static MIBS: OnceLock<Result<Mibs, Unavailable>> = OnceLock::new();
        MIBS.get_or_init(|| {
            Ok(Mibs {
                epoch: epoch::mib().map_err(ctl)?,
                allocated: stats::allocated::mib().map_err(ctl)?,
                active: stats::active::mib().map_err(ctl)?,
                resident: stats::resident::mib().map_err(ctl)?,
                mapped: stats::mapped::mib().map_err(ctl)?,
                retained: stats::retained::mib().map_err(ctl)?,
                metadata: stats::metadata::mib().map_err(ctl)?,
            })
        })
        .as_ref()
        .map_err(Clone::clone)
    }

    pub(super) fn background_threads() -> Result<bool, Unavailable> {
        tikv_jemalloc_ctl::background_thread::read().map_err(ctl)
    }

    pub(super) fn set_background_threads(on: bool) -> Result<bool, Unavailable> {
        let before = background_threads()?;
        tikv_jemalloc_ctl::background_thread::write(on).map_err(ctl)?;
        Ok(before)
    }

    pub(super) fn read_raw() -> Result<AllocatorStats, Unavailable> {
        let mibs = mibs()?;
        mibs.epoch.advance().map_err(ctl)?;
        Ok(AllocatorStats {
            allocated: mibs.allocated.read().map_err(ctl)? as u64,
            active: mibs.active.read().map_err(ctl)? as u64,
            resident: mibs.resident.read().map_err(ctl)? as u64,
            mapped: mibs.mapped.read().map_err(ctl)? as u64,
            retained: mibs.retained.read().map_err(ctl)? as u64,
            metadata: mibs.metadata.read().map_err(ctl)? as u64,
        })
    }

    /// Whether a 4 MiB probe allocation shows in `allocated` (three tries, so that another
    /// thread freeing at the same moment cannot hide it).
    pub(super) fn ensure_global() -> Result<(), Unavailable> {
        static GLOBAL: OnceLock<Result<(), Unavailable>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                const PROBE: usize = 4 << 20;
                for _ in 0..3 {
                    let before = read_raw()?.allocated;
                    let probe = std::hint::black_box(Vec::<u8>::with_capacity(PROBE));
                    let during = read_raw()?.allocated;
                    drop(probe);
                    if during >= before + (PROBE as u64) / 2 {
                        return Ok(());
                    }
                }
                Err(Unavailable::NotGlobalAllocator)
            })
            .clone()
    }
}

#[cfg(not(feature = "jemalloc"))]
mod imp {
    use super::{AllocatorStats, Unavailable};

    pub(super) fn background_threads() -> Result<bool, Unavailable> {
        Err(Unavailable::FeatureDisabled)
    }

    pub(super) fn set_background_threads(_on: bool) -> Result<bool, Unavailable> {
        Err(Unavailable::FeatureDisabled)
    }

    pub(super) fn read_raw() -> Result<AllocatorStats, Unavailable> {
        Err(Unavailable::FeatureDisabled)
    }

    pub(super) fn ensure_global() -> Result<(), Unavailable> {
        Err(Unavailable::FeatureDisabled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios() {
        let stats = AllocatorStats {
            allocated: 75,
            active: 100,
            resident: 150,
            ..AllocatorStats::default()
        };
        assert!((stats.fragmentation() - 0.25).abs() < 1e-12);
        assert!((stats.efficiency() - 0.5).abs() < 1e-12);
        assert_eq!(AllocatorStats::default().fragmentation(), 0.0);
        assert_eq!(AllocatorStats::default().efficiency(), 0.0);
    }

    #[test]
    #[cfg(not(feature = "jemalloc"))]
    fn without_jemalloc_the_stats_say_unavailable() {
        assert_eq!(read(), Err(Unavailable::FeatureDisabled));
        assert!(MemoryProfiler::start(Duration::from_millis(10)).is_err());
        assert!(
            read()
                .unwrap_err()
                .to_string()
                .contains("without the `jemalloc` feature")
        );
    }

    #[test]
    #[cfg(feature = "jemalloc")]
    fn the_unit_test_binary_does_not_allocate_with_jemalloc() {
        // The library's own test binary has the system allocator: the probe notices.
        assert_eq!(read(), Err(Unavailable::NotGlobalAllocator));
    }

    #[test]
    fn process_resident_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(process_resident_bytes().is_some_and(|bytes| bytes > 0));
        }
    }
}
