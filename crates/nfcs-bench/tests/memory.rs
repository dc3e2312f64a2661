//! Allocator statistics, the memory profiler, the peak measurement and the memory component,
//! against a known allocation (this test binary allocates with jemalloc).
//!
//! Tolerances: `allocated` is exact for one large allocation (64 MiB is a size class of its
//! own), but process-wide: the tests allow `TOLERANCE` (4 MiB, 6 %) for what the harness
//! and other threads (a finished test's runtime winding down, thread caches) allocate or free
//! meanwhile; the tests take a lock so that they do not run at the same time.

use std::sync::{Arc, Mutex, MutexGuard};

use nfcs_bench::components::memory;
use nfcs_bench::progress::Progress;
use nfcs_bench::report::ComponentReport;
use nfcs_bench::{BenchmarkConfig, Profile, RunContext, System};

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

static SERIAL: Mutex<()> = Mutex::new(());

fn alone() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn context(config: BenchmarkConfig) -> (RunContext, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut config = config;
    config.cache.redis.enabled = false;
    config.cache.semantic.enabled = false;
    config.cache.disk.enabled = false;
    let system = System::build(&config.cache, dir.path())
        .await
        .expect("the system under test");
    (
        RunContext {
            config,
            profile: Profile::Quick,
            progress: Progress::hidden(),
            system: Arc::new(system),
        },
        dir,
    )
}

/// Runs `future` on a two-worker runtime (the tests' lock is held outside it).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

fn value(report: &ComponentReport, name: &str, label: Option<(&str, &str)>) -> f64 {
    let measurement = match label {
        Some((label, value)) => report.measurement_with(name, label, value),
        None => report.measurement(name),
    };
    measurement
        .unwrap_or_else(|| panic!("no {name} {label:?} in {:#?}", report.measurements))
        .value
}

#[cfg(feature = "jemalloc")]
mod with_jemalloc {
    use super::*;
    use nfcs_bench::alloc::{self, MemoryProfiler};
    use std::time::Duration;

    use nfcs_bench::report::{ComponentStatus, Verdict};

    const MIB: u64 = 1 << 20;
    /// The known allocation.
    const KNOWN: usize = 64 << 20;
    /// What other threads may allocate or free while a test measures.
    const TOLERANCE: u64 = 4 * MIB;
    /// The accepted range of a measurement of the known allocation.
    const SEEN: std::ops::RangeInclusive<u64> = KNOWN as u64 - TOLERANCE..=KNOWN as u64 + TOLERANCE;

    fn known_allocation() -> Vec<u8> {
        let mut buffer = vec![0_u8; KNOWN];
        nfcs_bench::alloc::touch(&mut buffer, 1);
        buffer
    }

    #[test]
    fn the_stats_see_a_known_allocation() {
        let _alone = alone();
        let before = alloc::read().expect("jemalloc is the global allocator");
        let buffer = known_allocation();
        let during = alloc::read().expect("stats");
        drop(buffer);
        let after = alloc::read().expect("stats");

        let grown = during.allocated - before.allocated;
        assert!(
            SEEN.contains(&grown),
            "allocated grew by {grown} bytes for a {KNOWN}-byte allocation"
        );
        assert!(during.active >= during.allocated);
        assert!(
            during.resident >= before.resident + KNOWN as u64 - TOLERANCE,
            "resident {} -> {}",
            before.resident,
            during.resident
        );
        assert!(during.mapped >= during.active);
        assert!((0.0..1.0).contains(&during.fragmentation()));
        assert!(during.efficiency() > 0.0 && during.efficiency() <= 1.0);
        assert!(
            after.allocated.abs_diff(before.allocated) < TOLERANCE,
            "allocated {} before, {} after the free",
            before.allocated,
            after.allocated
        );
    }

    #[test]
    fn the_profiler_sees_a_known_allocation() {
        let _alone = alone();
        // Samples taken on demand around the allocation (the periodic ones come on top), so
        // the test does not depend on when the profiler's thread gets to run.
        let profiler = MemoryProfiler::start(Duration::from_millis(5)).expect("a profiler");
        profiler.sample_now();
        let buffer = known_allocation();
        profiler.sample_now();
        drop(buffer);
        profiler.sample_now();
        let samples = profiler.stop();

        assert!(samples.len() >= 3, "{} samples", samples.len());
        assert!(samples.windows(2).all(|pair| pair[0].t_s <= pair[1].t_s));
        let baseline = samples[0].stats.allocated;
        let peak = samples
            .iter()
            .map(|sample| sample.stats.allocated)
            .max()
            .unwrap_or(0);
        let last = samples[samples.len() - 1].stats.allocated;
        let seen = peak - baseline;
        assert!(
            SEEN.contains(&seen),
            "the profile's peak is {seen} bytes above its start"
        );
        assert!(last.abs_diff(baseline) < TOLERANCE, "{baseline} -> {last}");
    }

    #[test]
    fn measure_peak_sees_a_transient_and_a_kept_allocation() {
        let _alone = alone();
        // The allocation is held until the sampler has taken three samples of it.
        let ((), transient) = alloc::measure_peak_with(alloc::PEAK_SAMPLE_INTERVAL, |probe| {
            let buffer = known_allocation();
            probe.wait_for_samples(3);
            drop(buffer);
        })
        .expect("jemalloc");
        assert!(SEEN.contains(&transient.peak_increase()), "{transient:?}");
        assert!(transient.retained() < TOLERANCE, "{transient:?}");
        assert!(transient.samples >= 3, "{transient:?}");

        let (kept, measured) = alloc::measure_peak(|| vec![7_u8; 8 << 20]).expect("jemalloc");
        assert!(
            (8 * MIB - TOLERANCE..=8 * MIB + TOLERANCE).contains(&measured.retained()),
            "{measured:?}"
        );
        drop(kept);
    }

    #[test]
    fn a_purge_returns_freed_pages_to_the_os() {
        let _alone = alone();
        let outcome = alloc::timed_purge(KNOWN).expect("jemalloc");
        assert!(outcome.seconds > 0.0);
        assert!(
            outcome.reclaimed() >= KNOWN as u64 - TOLERANCE,
            "{outcome:?}: {} bytes reclaimed",
            outcome.reclaimed()
        );
    }

    #[test]
    fn the_memory_component_sees_a_known_allocation() {
        let _alone = alone();
        block_on(the_memory_component_sees_a_known_allocation_async());
    }

    async fn the_memory_component_sees_a_known_allocation_async() {
        let mut config = BenchmarkConfig::default().quick();
        config.memory_profiling.memory_threshold_mb = 5_000;
        let (context, _dir) = context(config).await;
        let held = known_allocation();
        let report = memory::run(&context).await.expect("the component runs");
        drop(held);
        for measurement in &report.measurements {
            eprintln!(
                "{} = {} {}",
                measurement.key(),
                measurement.value,
                measurement.unit
            );
        }

        assert_eq!(report.status, ComponentStatus::Ran);
        assert!(value(&report, "memory_allocated_bytes", None) >= KNOWN as f64);
        assert!(value(&report, "memory_resident_bytes", None) >= KNOWN as f64);
        for name in [
            "memory_active_bytes",
            "memory_mapped_bytes",
            "memory_retained_bytes",
            "memory_efficiency_ratio",
            "memory_fragmentation_percent",
            "process_resident_bytes",
        ] {
            assert!(value(&report, name, None).is_finite(), "{name}");
        }
        let resident = report
            .measurement_with("memory_resident_mb", "source", "jemalloc")
            .expect("resident MB");
        assert_eq!(resident.target.map(|t| t.value), Some(1000.0));
        assert!(resident.value >= KNOWN as f64 / 1e6);
        let peak = report
            .measurement_with("memory_peak_resident_mb", "source", "jemalloc")
            .expect("peak resident MB");
        assert_eq!(peak.target.map(|t| t.value), Some(5000.0));
        assert_eq!(peak.verdict, Verdict::Pass);
        assert!(peak.value >= resident.value);

        // The filled tier costs what it charges its budget, within 25 %.
        let tier = value(
            &report,
            "footprint_bytes",
            Some(("component", "memory_tier")),
        );
        let accounted = value(
            &report,
            "footprint_accounted_bytes",
            Some(("component", "memory_tier")),
        );
        assert!(accounted > 60.0 * MIB as f64, "{accounted}");
        assert!(
            (0.8..=1.25).contains(&(tier / accounted)),
            "tier footprint {tier} for {accounted} accounted"
        );
        // The solver holds at least its 256 x 256 complex field.
        let solver = value(
            &report,
            "footprint_bytes",
            Some(("component", "cgl_solver_256")),
        );
        assert!(
            (256.0 * 256.0 * 16.0..=64.0 * MIB as f64).contains(&solver),
            "{solver}"
        );
        assert!(
            value(
                &report,
                "footprint_peak_bytes",
                Some(("component", "cgl_solver_256"))
            ) >= solver
        );
        // The semantic cache holds at least its 10,000 vectors of 384 floats.
        let semantic = value(
            &report,
            "footprint_bytes",
            Some(("component", "semantic_cache_10000")),
        );
        let vectors = 10_000.0 * 384.0 * 4.0;
        assert!(
            (vectors..=3.0 * vectors).contains(&semantic),
            "{semantic} for {vectors} bytes of vectors"
        );

        for kind in ["expiry_reclamation", "allocator_purge"] {
            let time = value(&report, "gc_collection_time_seconds", Some(("kind", kind)));
            assert!(time > 0.0 && time < 5.0, "{kind}: {time}");
        }
        assert!(
            value(
                &report,
                "gc_reclaimed_entries",
                Some(("kind", "expiry_reclamation"))
            ) > 0.0
        );
        assert!(
            value(
                &report,
                "gc_reclaimed_bytes",
                Some(("kind", "allocator_purge"))
            ) >= (KNOWN as u64 - TOLERANCE) as f64
        );
        assert!(
            report
                .notes
                .iter()
                .any(|note| note.starts_with("Rust has no garbage collector"))
        );
        let plot = report
            .plots
            .iter()
            .find(|plot| plot.id == "memory_over_time_phase")
            .expect("memory over time");
        let names: Vec<&str> = plot.series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["allocated", "active", "resident"]);
        assert!(plot.series.iter().all(|series| series.points.len() >= 4));
    }

    #[test]
    fn the_suite_profile_enters_the_threshold_check() {
        let _alone = alone();
        block_on(the_suite_profile_enters_the_threshold_check_async());
    }

    async fn the_suite_profile_enters_the_threshold_check_async() {
        let mut config = BenchmarkConfig::default().quick();
        config.memory_profiling.memory_threshold_mb = 50;
        config.memory_profiling.gc_analysis = false;
        let (context, _dir) = context(config).await;
        // The suite's profiler sees 64 MiB that are gone by the time the component runs.
        let profiler = MemoryProfiler::start(Duration::from_millis(5)).expect("a profiler");
        let held = known_allocation();
        profiler.sample_now();
        drop(held);
        let samples = profiler.stop();
        let report = memory::run_with_profile(&context, samples)
            .await
            .expect("the component runs");

        let peak = report
            .measurement_with("memory_peak_resident_mb", "source", "jemalloc")
            .expect("peak resident MB");
        assert!(peak.value >= KNOWN as f64 / 1e6, "{peak:?}");
        assert_eq!(peak.verdict, Verdict::Fail, "over a 50 MB threshold");
        assert!(!report.passed());
        assert!(
            report
                .plots
                .iter()
                .any(|plot| plot.id == "memory_over_time")
        );
        assert!(
            report
                .measurement_with("gc_collection_time_seconds", "kind", "expiry_reclamation")
                .is_none()
        );
    }
}

#[cfg(not(feature = "jemalloc"))]
mod without_jemalloc {
    use super::*;
    use nfcs_bench::alloc::{self, Unavailable};

    #[test]
    fn the_stats_say_unavailable() {
        assert_eq!(alloc::read(), Err(Unavailable::FeatureDisabled));
        assert_eq!(
            alloc::measure_peak(|| ()).map(|_| ()),
            Err(Unavailable::FeatureDisabled)
        );
    }

    #[test]
    fn the_component_says_so_and_measures_what_it_can() {
        let _alone = alone();
        block_on(the_component_says_so_and_measures_what_it_can_async());
    }

    async fn the_component_says_so_and_measures_what_it_can_async() {
        let (context, _dir) = context(BenchmarkConfig::default().quick()).await;
        let report = memory::run(&context).await.expect("the component runs");
        assert!(
            report
                .notes
                .iter()
                .any(|note| note.contains("without the `jemalloc` feature"))
        );
        assert!(report.measurement("memory_allocated_bytes").is_none());
        assert!(report.measurement("footprint_bytes").is_none());
        assert!(
            report
                .measurement_with("memory_resident_mb", "source", "os")
                .is_some()
        );
        assert!(
            value(
                &report,
                "gc_collection_time_seconds",
                Some(("kind", "expiry_reclamation"))
            ) > 0.0
        );
    }
}
