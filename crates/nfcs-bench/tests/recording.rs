//! The recording API: the spec's metric names, labels and types, deterministic sampling.

use std::collections::HashMap;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::{CompositeKey, MetricKind};
use nfcs_bench::alloc::AllocatorStats;
use nfcs_bench::recording::*;

/// A metric's kind, name and sorted labels.
type Identity = (MetricKind, String, Vec<(String, String)>);

/// What a recorder got: per (kind, name, labels) the value, unit and description.
#[derive(Debug)]
struct Recorded {
    values: HashMap<Identity, DebugValue>,
    described: HashMap<String, (Option<metrics::Unit>, String)>,
}

impl Recorded {
    fn take(snapshotter: &Snapshotter) -> Recorded {
        let mut values = HashMap::new();
        let mut described = HashMap::new();
        for (key, unit, description, value) in snapshotter.snapshot().into_vec() {
            let (kind, name, labels) = split(&key);
            if let Some(description) = description {
                described.insert(name.clone(), (unit, description.to_string()));
            }
            values.insert((kind, name, labels), value);
        }
        Recorded { values, described }
    }

    fn get(&self, kind: MetricKind, name: &str, labels: &[(&str, &str)]) -> Option<&DebugValue> {
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.values.get(&(kind, name.to_owned(), labels))
    }

    fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        match self.get(MetricKind::Histogram, name, labels) {
            Some(DebugValue::Histogram(values)) => values.iter().map(|v| v.0).collect(),
            other => panic!("no histogram {name}{labels:?}: {other:?}"),
        }
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.get(MetricKind::Gauge, name, labels) {
            Some(DebugValue::Gauge(value)) => value.0,
            other => panic!("no gauge {name}{labels:?}: {other:?}"),
        }
    }

    fn counter(&self, name: &str) -> u64 {
        self.labelled_counter(name, &[])
    }

    fn labelled_counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        match self.get(MetricKind::Counter, name, labels) {
            Some(DebugValue::Counter(value)) => *value,
            other => panic!("no counter {name}{labels:?}: {other:?}"),
        }
    }
}

fn split(key: &CompositeKey) -> Identity {
    let mut labels: Vec<(String, String)> = key
        .key()
        .labels()
        .map(|label| (label.key().to_owned(), label.value().to_owned()))
        .collect();
    labels.sort();
    (key.kind(), key.key().name().to_owned(), labels)
}

/// Runs `work` with a recorder built inside a fresh debugging recorder; returns what it got.
fn recorded(rate: f64, work: impl FnOnce(&PerformanceRecorder)) -> Recorded {
    let debugging = DebuggingRecorder::new();
    let snapshotter = debugging.snapshotter();
    metrics::with_local_recorder(&debugging, || {
        describe_metrics();
        let recorder = PerformanceRecorder::new(rate).expect("a valid rate");
        work(&recorder);
    });
    Recorded::take(&snapshotter)
}

const CALLS: usize = 100_000;

#[test]
fn sampling_at_a_tenth_records_ten_percent_of_each_spec_function() {
    let got = recorded(0.1, |recorder| {
        for call in 0..CALLS {
            let time = Duration::from_micros(100 + (call % 900) as u64);
            recorder.record_computation("cgl_step", time, 64);
            recorder.record_esc_performance(32, time, 512);
            recorder.record_constitutional_performance(time, call % 2 == 0, 3.0);
        }
    });
    let expected = CALLS / 10;
    let tolerance = CALLS / 100; // the brief's +-1 % of the calls
    for (name, labels) in [
        (CGL_COMPUTATION_TIME, vec![]),
        (MODULE_RESPONSE_TIME, vec![(LABEL_MODULE_NAME, MODULE_ESC)]),
        (
            MODULE_RESPONSE_TIME,
            vec![(LABEL_MODULE_NAME, MODULE_CONSTITUTIONAL)],
        ),
    ] {
        let kept = got.histogram(name, &labels).len();
        assert!(
            kept.abs_diff(expected) <= tolerance,
            "{name}{labels:?}: {kept} kept of {CALLS}"
        );
        // Deterministic: exactly one in ten.
        assert_eq!(kept, expected, "{name}{labels:?}");
    }
    assert_eq!(got.counter(CONSTITUTIONAL_EVALUATIONS), expected as u64);
    // Calls 9, 19, 29, ... are kept: all odd, none a cache hit.
    assert_eq!(got.counter(CONSTITUTIONAL_CACHE_HITS), 0);
}

#[test]
fn modules_called_in_a_fixed_order_are_each_sampled() {
    // The orchestrator reports its modules in the same order every tick: one counter shared
    // by every module would keep only the calls of one of them.
    let got = recorded(0.1, |recorder| {
        for _ in 0..100 {
            recorder.record_module_response("mathematical_core", Duration::from_millis(1));
            recorder.record_module_response("cache", Duration::from_millis(2));
        }
    });
    for module in ["mathematical_core", "cache"] {
        assert_eq!(
            got.histogram(MODULE_RESPONSE_TIME, &[(LABEL_MODULE_NAME, module)])
                .len(),
            10,
            "{module}"
        );
    }
}

#[test]
fn sampling_is_exact_across_threads() {
    let got = recorded(0.1, |recorder| {
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..25_000 {
                        recorder.record_coordination(Duration::from_millis(3), 10.0);
                    }
                });
            }
        });
    });
    assert_eq!(got.histogram(COORDINATION_LATENCY, &[]).len(), 10_000);
    assert_eq!(got.gauge(COORDINATION_FREQUENCY, &[]), 10.0);
}

#[test]
fn rates_zero_and_one_record_nothing_and_everything() {
    let none = recorded(0.0, |recorder| {
        for _ in 0..1000 {
            recorder.record_computation("cgl_step", Duration::from_millis(1), 64);
        }
    });
    // The handle exists (resolved when the recorder was built) but holds no value.
    assert!(none.histogram(CGL_COMPUTATION_TIME, &[]).is_empty());
    assert!(
        none.get(
            MetricKind::Gauge,
            CGL_PERFORMANCE_FPS,
            &[(LABEL_GRID_SIZE, "64")]
        )
        .is_none()
    );
    let all = recorded(1.0, |recorder| {
        for _ in 0..1000 {
            recorder.record_computation("cgl_step", Duration::from_millis(1), 64);
        }
    });
    assert_eq!(all.histogram(CGL_COMPUTATION_TIME, &[]).len(), 1000);
}

#[test]
fn gauges_and_histograms_carry_the_spec_labels() {
    let got = recorded(1.0, |recorder| {
        for (grid, millis) in [(64, 2), (128, 8), (256, 25)] {
            recorder.record_computation("cgl_step", Duration::from_millis(millis), grid);
        }
        recorder.record_kuramoto(20, Duration::from_millis(40));
        recorder.record_kuramoto(50, Duration::from_millis(80));
        recorder.record_coordination(Duration::from_millis(5), 9.5);
        recorder.record_module_response("orchestrator", Duration::from_millis(7));
        recorder.record_module_response(MODULE_ESC, Duration::from_millis(11));
        recorder.record_esc_performance(100, Duration::from_millis(50), 2048);
        recorder.record_constitutional_performance(Duration::from_micros(30), true, 4.5);
        recorder.record_memory(&AllocatorStats {
            allocated: 60,
            active: 80,
            resident: 120,
            ..AllocatorStats::default()
        });
        recorder.record_gc(GcKind::ExpiryReclamation, Duration::from_millis(3));
        recorder.record_gc(GcKind::AllocatorPurge, Duration::from_millis(4));
    });

    assert_eq!(got.histogram(CGL_COMPUTATION_TIME, &[]).len(), 3);
    for (grid, fps) in [("64", 500.0), ("128", 125.0), ("256", 40.0)] {
        let value = got.gauge(CGL_PERFORMANCE_FPS, &[(LABEL_GRID_SIZE, grid)]);
        assert!((value - fps).abs() < 1e-9, "grid {grid}: {value}");
    }
    assert_eq!(got.histogram(KURAMOTO_SYNC_TIME, &[]), [0.04, 0.08]);
    assert!(
        (got.gauge(
            KURAMOTO_OSCILLATOR_PERFORMANCE,
            &[(LABEL_OSCILLATOR_COUNT, "50")]
        ) - 12.5)
            .abs()
            < 1e-9
    );
    assert_eq!(got.histogram(COORDINATION_LATENCY, &[]), [0.005]);
    assert_eq!(got.gauge(COORDINATION_FREQUENCY, &[]), 9.5);
    assert_eq!(
        got.histogram(MODULE_RESPONSE_TIME, &[(LABEL_MODULE_NAME, "orchestrator")]),
        [0.007]
    );
    assert_eq!(
        got.histogram(MODULE_RESPONSE_TIME, &[(LABEL_MODULE_NAME, MODULE_ESC)]),
        [0.011, 0.05]
    );
    assert_eq!(
        got.histogram(
            MODULE_RESPONSE_TIME,
            &[(LABEL_MODULE_NAME, MODULE_CONSTITUTIONAL)]
        ),
        [0.00003]
    );
    assert!((got.gauge(ESC_TOKENS_PER_SECOND, &[]) - 2000.0).abs() < 1e-6);
    assert_eq!(got.gauge(ESC_CONTEXT_SIZE, &[]), 2048.0);
    assert_eq!(got.counter(CONSTITUTIONAL_EVALUATIONS), 1);
    assert_eq!(got.counter(CONSTITUTIONAL_CACHE_HITS), 1);
    assert_eq!(got.gauge(CONSTITUTIONAL_COMPLEXITY, &[]), 4.5);
    assert_eq!(got.gauge(MEMORY_EFFICIENCY, &[]), 0.5);
    assert!((got.gauge(MEMORY_FRAGMENTATION, &[]) - 25.0).abs() < 1e-9);
    assert_eq!(got.histogram(GC_COLLECTION_TIME, &[]), [0.003, 0.004]);
    for kind in ["expiry_reclamation", "allocator_purge"] {
        assert_eq!(
            got.labelled_counter(GC_COLLECTIONS, &[(LABEL_KIND, kind)]),
            1
        );
    }

    // Every spec metric exists with its type, and every metric is described.
    let kinds = [
        (CGL_COMPUTATION_TIME, MetricKind::Histogram),
        (CGL_PERFORMANCE_FPS, MetricKind::Gauge),
        (KURAMOTO_SYNC_TIME, MetricKind::Histogram),
        (KURAMOTO_OSCILLATOR_PERFORMANCE, MetricKind::Gauge),
        (COORDINATION_FREQUENCY, MetricKind::Gauge),
        (COORDINATION_LATENCY, MetricKind::Histogram),
        (MODULE_RESPONSE_TIME, MetricKind::Histogram),
        (MEMORY_EFFICIENCY, MetricKind::Gauge),
        (MEMORY_FRAGMENTATION, MetricKind::Gauge),
        (GC_COLLECTION_TIME, MetricKind::Histogram),
    ];
    assert_eq!(kinds.map(|(name, _)| name), SPEC_METRICS);
    for (name, kind) in kinds {
        assert!(
            got.values.keys().any(|(k, n, _)| *k == kind && n == name),
            "{name} is not a {kind:?}"
        );
    }
    for name in SPEC_METRICS.iter().chain(&EXTRA_METRICS) {
        let (_, description) = got
            .described
            .get(*name)
            .unwrap_or_else(|| panic!("{name} is not described"));
        assert!(!description.is_empty());
    }
    assert_eq!(
        got.described[CGL_COMPUTATION_TIME].0,
        Some(metrics::Unit::Seconds)
    );
    assert_eq!(
        got.described[MEMORY_FRAGMENTATION].0,
        Some(metrics::Unit::Percent)
    );
    assert_eq!(CGL_BUCKETS, [0.001, 0.005, 0.01, 0.05, 0.1, 0.5]);
}

#[test]
fn label_values_beyond_the_table_are_still_recorded() {
    let sizes: Vec<usize> = (1..=LABEL_SLOTS + 8).map(|n| n * 16).collect();
    let got = recorded(1.0, |recorder| {
        for _ in 0..3 {
            for &size in &sizes {
                recorder.record_computation("cgl_step", Duration::from_millis(1), size);
            }
        }
    });
    for size in sizes {
        let label = size.to_string();
        assert_eq!(
            got.gauge(CGL_PERFORMANCE_FPS, &[(LABEL_GRID_SIZE, &label)]),
            1000.0
        );
    }
}

#[test]
fn sample_rates_outside_zero_to_one_are_refused() {
    for rate in [f64::NAN, -0.1, 1.5] {
        let error = PerformanceRecorder::new(rate).expect_err("refused");
        assert!(error.to_string().contains("from 0 to 1"), "{error}");
    }
    let recorder = PerformanceRecorder::new(0.25).expect("valid");
    assert_eq!(recorder.sample_rate(), 0.25);
}
