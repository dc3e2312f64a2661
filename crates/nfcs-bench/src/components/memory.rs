//! The memory component: allocator statistics (jemalloc), per-component footprints, the
//! threshold check, and what plays the part of garbage collection.
//!
//! # What it measures
//!
//! - `memory_{allocated,active,resident,mapped,retained}_bytes`: jemalloc's statistics at
//!   the end of the component's phase ([`crate::alloc`] explains each), with
//!   `memory_efficiency_ratio` (allocated / resident) and `memory_fragmentation_percent`
//!   (100 x (1 - allocated / active), Redis's `allocator_frag_ratio` as a share). On a heap
//!   of a few MiB these ratios say little: read them with the byte counts.
//! - `memory_resident_mb{source}`: resident megabytes (10^6 bytes) now, held to
//!   `targets.memory_mb`; `memory_peak_resident_mb{source}`: the highest resident reading of
//!   every profile sample (the suite's, when it ran a profiler, and the phase's own), held to
//!   `memory_profiling.memory_threshold_mb`. `source` is `jemalloc` (the allocator's
//!   `resident`), or `os` (the process's `VmRSS`) without jemalloc.
//! - `footprint_bytes{component}`: what a component's data costs the allocator
//!   (`allocated` with it alive minus before it was built): `memory_tier` (a memory tier
//!   filled to a budget of `min([cache.memory] max_size, 64 MiB)` with values of
//!   `cache_benchmark.value_size` bytes), `cgl_solver_256` (a 256 x 256 CGL solver after a
//!   step; `footprint_peak_bytes` is its peak while built and stepped), `semantic_cache_10000`
//!   (a semantic cache of 10,000 entries with 384-dimension vectors from a deterministic
//!   embedder: building 10,000 real MiniLM embeddings takes minutes on two cores, and the
//!   model's own weights are not the cache's footprint).
//! - `gc_collection_time_seconds{kind}`: Rust has no garbage collector; what plays its part
//!   is timed: `expiry_reclamation` (a memory tier on a manual clock, filled with short-TTL
//!   entries, the clock moved past them, [`MemoryCache::purge_expired`] timed) and
//!   `allocator_purge` ([`alloc::timed_purge`]: 64 MiB of touched oversize allocations freed
//!   and returned to the OS), with `gc_reclaimed_bytes{kind}` (the tier's accounted bytes; the
//!   resident bytes the OS got back).
//!
//! Without jemalloc (feature off, or not the global allocator) the allocator figures,
//! footprints and the purge are skipped with the reason in the notes; the resident checks use
//! the OS's figure and the expiry reclamation is still measured.

use std::time::{Duration, Instant};

use nfcs_performance::cache_core::{Bytes, ManualClock, MemoryCache, MemoryConfig};
use nfcs_performance::semantic_cache::{Embedder, SemanticCache, SemanticConfig, SemanticError};

use crate::alloc::{self, AllocatorStats, MemoryProfiler, MemorySample, Unavailable};
use crate::components::{Component, RunContext};
use crate::config::BenchmarkConfig;
use crate::error::BenchError;
use crate::recording::{GcKind, PerformanceRecorder};
use crate::report::{Better, ComponentReport, Measurement, Plot, PlotKind, Series, Target};
use crate::system::cgl_params;

/// The most a footprint's memory tier is filled to (its budget is the smaller of this and the
/// configured one).
pub const TIER_FOOTPRINT_BUDGET: u64 = 64 << 20;
/// Entries of the semantic cache whose footprint is measured.
pub const SEMANTIC_ENTRIES: usize = 10_000;
/// The dimension of the semantic footprint's vectors (MiniLM's).
pub const SEMANTIC_DIMENSION: usize = 384;
/// The grid of the solver whose footprint is measured.
pub const SOLVER_GRID: usize = 256;
/// Bytes freed per timed allocator purge.
pub const PURGE_BYTES: usize = 64 << 20;
/// Entries per expiry-reclamation round (fewer when the budget holds fewer).
pub const EXPIRY_ENTRIES: u64 = 20_000;
/// Rounds of each "GC" measurement.
pub const GC_ROUNDS: usize = 5;

/// The note every report carries.
pub const NO_GC_NOTE: &str = "Rust has no garbage collector: memory is freed when its owner \
    goes out of scope, deterministically. What plays the part of a collection is measured \
    under the spec's `gc` name, labelled by kind: `expiry_reclamation` (a cache reclaiming \
    entries past their TTL, which it otherwise does a few at a time on writes) and \
    `allocator_purge` (the allocator returning freed pages to the OS).";

/// Runs the memory component, sampling the allocator during its own phase only.
///
/// # Errors
/// [`BenchError`] when a cache or the solver refuses its parameters.
pub async fn run(context: &RunContext) -> Result<ComponentReport, BenchError> {
    run_with_profile(context, Vec::new()).await
}

/// Runs the memory component with the samples of the suite's profiler (a [`MemoryProfiler`]
/// the suite started with the run, every `memory_profiling.profile_interval`): they are
/// drawn as "memory over time" and enter the peak-resident threshold check.
///
/// # Errors
/// As [`run`].
pub async fn run_with_profile(
    context: &RunContext,
    samples: Vec<MemorySample>,
) -> Result<ComponentReport, BenchError> {
    let config = context.config.clone();
    let bar = context.progress.steps("memory", 5);
    tokio::task::spawn_blocking(move || measure(&config, &samples, &|| bar.inc(1)))
        .await
        .map_err(|error| BenchError::component(Component::Memory, error))?
}

/// The sampling interval of the component's own phase: a tenth of the profile interval, from
/// 10 ms to 1 s.
pub fn phase_interval(config: &BenchmarkConfig) -> Duration {
    Duration::from_secs_f64((config.memory_profiling.profile_interval / 10.0).clamp(0.01, 1.0))
}

fn measure(
    config: &BenchmarkConfig,
    suite_samples: &[MemorySample],
    step: &dyn Fn(),
) -> Result<ComponentReport, BenchError> {
    let started = Instant::now();
    let mut report = ComponentReport::new(Component::Memory);
    report.note(NO_GC_NOTE);
    let recorder = PerformanceRecorder::new(config.sample_rate)
        .map_err(|error| BenchError::config("sample_rate", error.to_string()))?;
    let availability = alloc::available();
    let profiler = match &availability {
        Ok(()) => MemoryProfiler::start(phase_interval(config)).ok(),
        Err(reason) => {
            report.note(format!(
                "{reason}: allocator statistics, footprints and the allocator purge are \
                 skipped; resident memory is the OS's (VmRSS)"
            ));
            None
        }
    };

    if availability.is_ok() {
        footprints(config, &mut report, profiler.as_ref())?;
    }
    step();
    if config.memory_profiling.gc_analysis {
        expiry_reclamation(config, &recorder, &mut report)?;
        step();
        if availability.is_ok() {
            allocator_purge(&recorder, &mut report);
        }
        step();
    } else {
        report.note("memory_profiling.gc_analysis is off: the reclamation figures are skipped");
        step();
        step();
    }

    let phase_samples = profiler.map(MemoryProfiler::stop).unwrap_or_default();
    let process_resident = alloc::process_resident_bytes();
    if let Some(bytes) = process_resident {
        report.push(
            Measurement::info("process_resident_bytes", bytes as f64, "bytes")
                .better(Better::Lower),
        );
    }
    let threshold_mb = config.memory_profiling.memory_threshold_mb as f64;
    match alloc::read() {
        Ok(stats) => {
            recorder.record_memory(&stats);
            allocator_measurements(&mut report, &stats);
            report.push(
                Measurement::with_target(
                    "memory_resident_mb",
                    megabytes(stats.resident),
                    "MB",
                    Target::at_most(config.targets.memory_mb),
                )
                .label("source", "jemalloc"),
            );
            let peak = suite_samples
                .iter()
                .chain(&phase_samples)
                .map(|sample| sample.stats.resident)
                .chain([stats.resident])
                .max()
                .unwrap_or(stats.resident);
            report.push(
                Measurement::with_target(
                    "memory_peak_resident_mb",
                    megabytes(peak),
                    "MB",
                    Target::at_most(threshold_mb),
                )
                .label("source", "jemalloc"),
            );
        }
        Err(_) => {
            if let Some(bytes) = process_resident {
                report.push(
                    Measurement::with_target(
                        "memory_resident_mb",
                        megabytes(bytes),
                        "MB",
                        Target::at_most(config.targets.memory_mb),
                    )
                    .label("source", "os"),
                );
                report.push(
                    Measurement::with_target(
                        "memory_peak_resident_mb",
                        megabytes(bytes),
                        "MB",
                        Target::at_most(threshold_mb),
                    )
                    .label("source", "os"),
                );
                report.note(
                    "memory_peak_resident_mb{source=os} is the resident set at the end of the \
                     phase (no profile without jemalloc)",
                );
            } else {
                report.note("the resident set could not be read: the threshold check is skipped");
            }
        }
    }
    if !suite_samples.is_empty() {
        report.plots.push(memory_plot(
            "memory_over_time",
            "Memory over time (the run)",
            suite_samples,
        ));
    }
    if !phase_samples.is_empty() {
        report.plots.push(memory_plot(
            "memory_over_time_phase",
            "Memory over time (the memory component's phase)",
            &phase_samples,
        ));
    }
    if suite_samples.is_empty() && availability.is_ok() {
        report.note(
            "no run-wide profile was given (components::memory::run): \"memory over time\" \
             covers this component's phase only",
        );
    }
    step();
    report.duration_s = started.elapsed().as_secs_f64();
    Ok(report)
}

fn allocator_measurements(report: &mut ComponentReport, stats: &AllocatorStats) {
    for (name, value) in [
        ("memory_allocated_bytes", stats.allocated),
        ("memory_active_bytes", stats.active),
        ("memory_resident_bytes", stats.resident),
        ("memory_mapped_bytes", stats.mapped),
        ("memory_retained_bytes", stats.retained),
        ("memory_metadata_bytes", stats.metadata),
    ] {
        report.push(Measurement::info(name, value as f64, "bytes").better(Better::Lower));
    }
    report.push(
        Measurement::info("memory_efficiency_ratio", stats.efficiency(), "ratio")
            .better(Better::Higher),
    );
    report.push(
        Measurement::info(
            "memory_fragmentation_percent",
            stats.fragmentation() * 100.0,
            "%",
        )
        .better(Better::Lower),
    );
    report.note(format!(
        "memory_efficiency_ratio = allocated / resident = {} / {}; \
         memory_fragmentation_percent = 100 x (1 - allocated / active) = 100 x (1 - {} / {}) \
         (bytes, jemalloc, at the end of the phase)",
        stats.allocated, stats.resident, stats.allocated, stats.active
    ));
}

/// Megabytes (10^6 bytes), as the targets are.
fn megabytes(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn memory_plot(id: &str, title: &str, samples: &[MemorySample]) -> Plot {
    let mib = |bytes: u64| bytes as f64 / f64::from(1_u32 << 20);
    let series = |name: &str, pick: fn(&AllocatorStats) -> u64| {
        Series::new(
            name,
            samples
                .iter()
                .map(|sample| (sample.t_s, mib(pick(&sample.stats))))
                .collect(),
        )
    };
    Plot {
        id: id.to_owned(),
        title: title.to_owned(),
        kind: PlotKind::Line,
        x_label: "time (s)".to_owned(),
        y_label: "MiB".to_owned(),
        secondary_y_label: None,
        series: vec![
            series("allocated", |stats| stats.allocated),
            series("active", |stats| stats.active),
            series("resident", |stats| stats.resident),
        ],
    }
}

fn footprint(component: &str, bytes: u64) -> Measurement {
    Measurement::info("footprint_bytes", bytes as f64, "bytes")
        .label("component", component)
        .better(Better::Lower)
}

fn unavailable(error: Unavailable) -> BenchError {
    BenchError::component(Component::Memory, error)
}

fn footprints(
    config: &BenchmarkConfig,
    report: &mut ComponentReport,
    profiler: Option<&MemoryProfiler>,
) -> Result<(), BenchError> {
    // The memory tier, filled to its budget.
    let budget = config
        .cache
        .memory
        .max_size
        .bytes()
        .min(TIER_FOOTPRINT_BUDGET);
    let value_size = config.cache_benchmark.value_size;
    let (tier, measured) = alloc::measure_peak(|| -> Result<MemoryCache, BenchError> {
        let tier = MemoryCache::with_config(
            MemoryConfig::new(budget)
                .eviction_policy(config.cache.memory.eviction_policy)
                .name("memory_footprint")
                .instance("nfcs-bench-memory"),
        )?;
        fill(&tier, "footprint", value_size, None)?;
        Ok(tier)
    })
    .map_err(unavailable)?;
    let tier = tier?;
    let accounted = tier.weighted_size();
    report.push(footprint("memory_tier", measured.retained()));
    report.push(
        Measurement::info("footprint_accounted_bytes", accounted as f64, "bytes")
            .label("component", "memory_tier"),
    );
    report.push(
        Measurement::info(
            "footprint_accounting_ratio",
            ratio(measured.retained(), accounted),
            "ratio",
        )
        .label("component", "memory_tier"),
    );
    report.note(format!(
        "footprint_bytes{{component=memory_tier}}: a {} tier of a {budget}-byte budget filled \
         with {} entries of {value_size}-byte values; allocated bytes with it alive minus \
         before; footprint_accounting_ratio is that over the bytes the tier charges its budget",
        tier.eviction_policy(),
        tier.len()
    ));
    drop(tier);
    if let Some(profiler) = profiler {
        profiler.sample_now();
    }

    // The solver.
    let (solver, measured) = alloc::measure_peak(|| {
        let mut solver = nfcs_math_kernels::cgl::CglSolver::new(
            cgl_params(SOLVER_GRID),
            nfcs_math_kernels::cgl::InitialCondition::Noise {
                amplitude: 0.01,
                seed: 7,
            },
        )?;
        solver.advance(1)?;
        Ok::<_, BenchError>(solver)
    })
    .map_err(unavailable)?;
    let solver = solver?;
    report.push(footprint("cgl_solver_256", measured.retained()));
    report.push(
        Measurement::info(
            "footprint_peak_bytes",
            measured.peak_increase() as f64,
            "bytes",
        )
        .label("component", "cgl_solver_256")
        .better(Better::Lower),
    );
    drop(solver);
    if let Some(profiler) = profiler {
        profiler.sample_now();
    }

    // The semantic cache.
    let (cache, measured) = alloc::measure_peak(
        || -> Result<SemanticCache<String, HashEmbedder>, BenchError> {
            let cache = SemanticCache::new(
                HashEmbedder::new(SEMANTIC_DIMENSION),
                SemanticConfig::default()
                    .with_max_entries(SEMANTIC_ENTRIES)
                    .with_instance("nfcs-bench-memory"),
            )
            .map_err(semantic)?;
            let texts: Vec<(String, String)> = (0..SEMANTIC_ENTRIES)
                .map(|index| {
                    (
                        format!("what is the state of oscillator network number {index}?"),
                        format!("response_{index}"),
                    )
                })
                .collect();
            for batch in texts.chunks(500) {
                let entries: Vec<(&str, String)> = batch
                    .iter()
                    .map(|(text, value)| (text.as_str(), value.clone()))
                    .collect();
                cache
                    .store_many(&entries, crate::system::ESC_CONTEXT)
                    .map_err(semantic)?;
            }
            drop(texts);
            Ok(cache)
        },
    )
    .map_err(unavailable)?;
    let cache = cache?;
    report.push(footprint("semantic_cache_10000", measured.retained()));
    report.note(format!(
        "footprint_bytes{{component=semantic_cache_10000}}: {} entries with {SEMANTIC_DIMENSION}-\
         dimension vectors from a deterministic hash embedder (10,000 real MiniLM embeddings \
         take minutes on two cores; the cache's structure is the same), texts of about 55 \
         bytes and values of about 12",
        cache.len()
    ));
    drop(cache);
    if let Some(profiler) = profiler {
        profiler.sample_now();
    }
    Ok(())
}

fn semantic(error: SemanticError) -> BenchError {
    BenchError::component(Component::Memory, error)
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

/// Inserts entries of `value_size` bytes until the tier's charged bytes reach 98 % of its
/// budget (or `limit` entries); returns how many.
fn fill(
    tier: &MemoryCache,
    prefix: &str,
    value_size: usize,
    ttl: Option<(Duration, u64)>,
) -> Result<u64, BenchError> {
    let budget = tier.capacity();
    let charge = tier
        .eviction_policy()
        .entry_charge(prefix.len() + 8, value_size, ttl.is_some());
    let fits = (budget as f64 * 0.98 / charge as f64) as u64;
    let count = ttl.map_or(fits, |(_, limit)| fits.min(limit));
    for index in 0..count {
        let value = Bytes::from(vec![(index % 251) as u8; value_size]);
        let key = format!("{prefix}_{index:07}");
        match ttl {
            Some((ttl, _)) => tier.insert(&key, value, ttl)?,
            None => tier.insert(&key, value, None)?,
        }
    }
    Ok(count)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The relative interquartile range (crude for five samples: the spread of the middle three).
fn spread(sorted: &[f64]) -> Option<f64> {
    if sorted.len() < 3 {
        return None;
    }
    let (low, high) = (sorted[sorted.len() / 4], sorted[(3 * sorted.len()) / 4]);
    let mid = sorted[sorted.len() / 2];
    (mid > 0.0).then(|| (high - low) / mid)
}

fn expiry_reclamation(
    config: &BenchmarkConfig,
    recorder: &PerformanceRecorder,
    report: &mut ComponentReport,
) -> Result<(), BenchError> {
    let manual = ManualClock::new();
    let budget = config
        .cache
        .memory
        .max_size
        .bytes()
        .min(TIER_FOOTPRINT_BUDGET);
    let tier = MemoryCache::with_config(
        MemoryConfig::new(budget)
            .eviction_policy(config.cache.memory.eviction_policy)
            .clock(manual.clock())
            .name("memory_expiry")
            .instance("nfcs-bench-memory"),
    )?;
    let value_size = config.cache_benchmark.value_size;
    let ttl = Duration::from_secs(1);
    let (mut seconds, mut entries, mut bytes, mut allocated) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..GC_ROUNDS {
        let inserted = fill(
            &tier,
            &format!("expiry{round}"),
            value_size,
            Some((ttl, EXPIRY_ENTRIES)),
        )?;
        manual.advance(ttl * 2);
        let charged = tier.weighted_size();
        let before = alloc::read().ok();
        let started = Instant::now();
        let reclaimed = tier.purge_expired();
        let elapsed = started.elapsed();
        let after = alloc::read().ok();
        recorder.record_gc(GcKind::ExpiryReclamation, elapsed);
        seconds.push(elapsed.as_secs_f64());
        entries.push(reclaimed as f64);
        bytes.push(charged.saturating_sub(tier.weighted_size()) as f64);
        if let (Some(before), Some(after)) = (before, after) {
            allocated.push(before.allocated.saturating_sub(after.allocated) as f64);
        }
        if reclaimed != inserted {
            report.note(format!(
                "expiry reclamation round {round}: {reclaimed} of {inserted} expired entries \
                 reclaimed"
            ));
        }
    }
    let time = median(&mut seconds);
    let mut time_measurement = Measurement::info("gc_collection_time_seconds", time, "s")
        .label("kind", GcKind::ExpiryReclamation)
        .better(Better::Lower);
    if let Some(noise) = spread(&seconds) {
        time_measurement = time_measurement.noise(noise);
    }
    report.push(time_measurement);
    report.push(
        Measurement::info("gc_reclaimed_entries", median(&mut entries), "count")
            .label("kind", GcKind::ExpiryReclamation),
    );
    report.push(
        Measurement::info("gc_reclaimed_bytes", median(&mut bytes), "bytes")
            .label("kind", GcKind::ExpiryReclamation),
    );
    if !allocated.is_empty() {
        report.push(
            Measurement::info(
                "gc_reclaimed_allocated_bytes",
                median(&mut allocated),
                "bytes",
            )
            .label("kind", GcKind::ExpiryReclamation),
        );
    }
    report.note(format!(
        "gc_collection_time_seconds{{kind=expiry_reclamation}}: median of {GC_ROUNDS} rounds, \
         each a memory tier (manual clock) holding up to {EXPIRY_ENTRIES} entries of \
         {value_size}-byte values with a 1 s TTL, the clock moved 2 s on, \
         MemoryCache::purge_expired timed; gc_reclaimed_bytes is what the tier stopped \
         charging, gc_reclaimed_allocated_bytes what the allocator got back"
    ));
    Ok(())
}

fn allocator_purge(recorder: &PerformanceRecorder, report: &mut ComponentReport) {
    let mut seconds = Vec::new();
    let mut reclaimed = Vec::new();
    for _ in 0..GC_ROUNDS {
        match alloc::timed_purge(PURGE_BYTES) {
            Ok(outcome) => {
                recorder.record_gc(
                    GcKind::AllocatorPurge,
                    Duration::from_secs_f64(outcome.seconds),
                );
                seconds.push(outcome.seconds);
                reclaimed.push(outcome.reclaimed() as f64);
            }
            Err(reason) => {
                report.note(format!("allocator purge skipped: {reason}"));
                return;
            }
        }
    }
    let time = median(&mut seconds);
    let mut time_measurement = Measurement::info("gc_collection_time_seconds", time, "s")
        .label("kind", GcKind::AllocatorPurge)
        .better(Better::Lower);
    if let Some(noise) = spread(&seconds) {
        time_measurement = time_measurement.noise(noise);
    }
    report.push(time_measurement);
    report.push(
        Measurement::info("gc_reclaimed_bytes", median(&mut reclaimed), "bytes")
            .label("kind", GcKind::AllocatorPurge),
    );
    report.note(format!(
        "gc_collection_time_seconds{{kind=allocator_purge}}: median of {GC_ROUNDS} frees of {} \
         MiB of touched 16 MiB allocations, which jemalloc serves from its oversize arena and \
         purges at once (decay 0): the time includes returning the pages to the OS; \
         gc_reclaimed_bytes is the drop of resident bytes. (jemalloc's explicit \
         arena.<i>.purge needs an unsafe mallctl call this crate does not make.)",
        PURGE_BYTES >> 20
    ));
}

/// A deterministic, cheap stand-in for MiniLM: a unit vector of `dimension` drawn from a
/// hash of the text (xorshift), for measuring a semantic cache's structure without the
/// model. Texts that differ get unrelated vectors; the same text always the same one.
#[derive(Debug, Clone, Copy)]
pub struct HashEmbedder {
    dimension: usize,
}

impl HashEmbedder {
    /// An embedder of `dimension`-long vectors.
    pub fn new(dimension: usize) -> HashEmbedder {
        HashEmbedder {
            dimension: dimension.max(1),
        }
    }

    fn vector(&self, text: &str) -> Vec<f32> {
        // FNV-1a of the text seeds a xorshift64* stream.
        let mut state = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        }) | 1;
        let mut vector: Vec<f32> = (0..self.dimension)
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                let bits = state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
                bits as f32 / (1_u32 << 24) as f32 - 0.5
            })
            .collect();
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            vector.iter_mut().for_each(|x| *x /= norm);
        }
        vector
    }
}

impl Embedder for HashEmbedder {
    fn dimension(&self) -> usize {
        self.dimension
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, SemanticError> {
        Ok(texts.iter().map(|text| self.vector(text)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_embedder_is_deterministic_and_unit() {
        let embedder = HashEmbedder::new(384);
        let vectors = embedder.embed(&["a", "b", "a"]).expect("embeds");
        assert_eq!(vectors[0], vectors[2]);
        assert_ne!(vectors[0], vectors[1]);
        let norm: f32 = vectors[0].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
        assert_eq!(vectors[0].len(), 384);
    }

    #[test]
    fn medians_and_spreads() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(spread(&[1.0, 2.0, 3.0, 4.0, 5.0]), Some(2.0 / 3.0));
    }

    #[test]
    fn the_phase_samples_a_tenth_of_the_interval_within_bounds() {
        let mut config = BenchmarkConfig::default();
        assert_eq!(phase_interval(&config), Duration::from_secs(1));
        config = config.quick();
        assert_eq!(phase_interval(&config), Duration::from_millis(50));
    }
}
