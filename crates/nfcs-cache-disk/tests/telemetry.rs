//! Metrics: the tier's handles, resolved at open with the recorder in effect, show current
//! counters and gauges under `cache=<instance>, tier="disk"` without anyone calling `stats()`.

use std::collections::HashMap;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use nfcs_cache_core::telemetry::{self, InstanceLabels};
use nfcs_cache_core::{ManualClock, Pattern};
use nfcs_cache_disk::{DiskCache, DiskConfig};

use crate::support::{noise, small_config};

/// What a recorder holds for one cache: counters and gauges by name, histogram sample counts
/// by operation.
#[derive(Debug, Default)]
struct Recorded {
    counters: HashMap<String, u64>,
    gauges: HashMap<String, f64>,
    samples: HashMap<String, usize>,
}

impl Recorded {
    fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    fn gauge(&self, name: &str) -> f64 {
        *self
            .gauges
            .get(name)
            .unwrap_or_else(|| panic!("no gauge {name}: {self:?}"))
    }

    fn samples(&self, operation: &str) -> usize {
        self.samples.get(operation).copied().unwrap_or(0)
    }
}

/// Takes the recorder's snapshot (which resets what it read, so each test takes one per
/// recorder), checking that every series carries the labels `cache` and `tier="disk"`.
fn take_snapshot(snapshotter: &Snapshotter, cache: &str) -> Recorded {
    let mut recorded = Recorded::default();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let labels: HashMap<&str, &str> = key
            .labels()
            .map(|label| (label.key(), label.value()))
            .collect();
        assert_eq!(labels.get("cache"), Some(&cache), "{key:?}");
        assert_eq!(labels.get("tier"), Some(&"disk"), "{key:?}");
        let name = key.name().to_owned();
        match value {
            DebugValue::Counter(count) => {
                recorded.counters.insert(name, count);
            }
            DebugValue::Gauge(value) => {
                recorded.gauges.insert(name, value.0);
            }
            DebugValue::Histogram(samples) => {
                assert_eq!(name, telemetry::OPERATION_SECONDS);
                let operation = labels["operation"].to_owned();
                recorded.samples.insert(operation, samples.len());
            }
        }
    }
    recorded
}

/// Opens a cache whose metric handles go to `recorder`.
fn open_recorded(
    recorder: &DebuggingRecorder,
    directory: &std::path::Path,
    config: DiskConfig,
) -> DiskCache {
    metrics::with_local_recorder(recorder, || DiskCache::open(directory, config)).unwrap()
}

#[test]
fn counters_gauges_and_latencies_follow_the_operations() {
    let instance = "disk-metrics-operations";
    let directory = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let cache = open_recorded(
        &recorder,
        directory.path(),
        small_config().instance(instance).clock(clock.clock()),
    );
    assert_eq!(cache.labels(), &InstanceLabels::new(instance, "disk"));

    cache.insert("kept", b"a value that stays", None).unwrap();
    cache
        .insert("short", b"lives ten seconds", Duration::from_secs(10))
        .unwrap();
    cache.insert("doomed", b"deleted", None).unwrap();
    cache.insert("matched", b"invalidated", None).unwrap();
    assert!(cache.get("kept").unwrap().is_some()); // hit
    assert!(cache.get("never-written").unwrap().is_none()); // miss
    assert!(cache.get("short").unwrap().is_some()); // hit
    assert!(cache.remove("doomed").unwrap());
    assert_eq!(
        cache
            .remove_matching(&Pattern::new("match*").unwrap())
            .unwrap(),
        1
    );
    clock.advance(Duration::from_secs(10));
    assert!(cache.get("short").unwrap().is_none()); // miss, and an expiration

    let recorded = take_snapshot(&snapshotter, instance);
    assert_eq!(recorded.counter(telemetry::HITS), 2, "{recorded:?}");
    assert_eq!(recorded.counter(telemetry::MISSES), 2, "{recorded:?}");
    assert_eq!(recorded.counter(telemetry::INSERTS), 4, "{recorded:?}");
    assert_eq!(recorded.counter(telemetry::EXPIRATIONS), 1, "{recorded:?}");
    assert_eq!(recorded.counter(telemetry::EVICTIONS), 0, "{recorded:?}");
    assert_eq!(recorded.counter(telemetry::ERRORS), 0, "{recorded:?}");
    assert_eq!(recorded.samples("get"), 4, "{recorded:?}");
    assert_eq!(recorded.samples("set"), 4, "{recorded:?}");
    assert_eq!(recorded.samples("delete"), 1, "{recorded:?}");
    assert_eq!(recorded.samples("invalidate"), 1, "{recorded:?}");
    // The gauges were current before anyone asked for stats; stats() agrees with them.
    let stats = cache.stats();
    assert_eq!(stats.entries, 1);
    assert_eq!(recorded.gauge(telemetry::ENTRIES), 1.0);
    assert_eq!(recorded.gauge(telemetry::BYTES), stats.bytes as f64);
    assert!(stats.bytes > 0);
    assert_eq!(
        recorded.gauge(telemetry::CAPACITY_BYTES),
        cache.capacity() as f64
    );
}

#[test]
fn evictions_are_counted_and_recovery_sets_the_gauges() {
    let instance = "disk-metrics-evictions";
    let directory = tempfile::tempdir().unwrap();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let cache = open_recorded(
        &recorder,
        directory.path(),
        small_config().instance(instance),
    );
    // 3000 values of 3000 incompressible bytes: about twice the 4 MiB the cache holds.
    for index in 0..3000 {
        cache
            .insert(&format!("k{index}"), &noise(3000, index), None)
            .unwrap();
    }
    let recorded = take_snapshot(&snapshotter, instance);
    let stats = cache.stats();
    assert!(stats.evictions > 0, "{stats:?}");
    assert_eq!(recorded.counter(telemetry::EVICTIONS), stats.evictions);
    assert_eq!(recorded.counter(telemetry::INSERTS), 3000);
    assert_eq!(recorded.gauge(telemetry::ENTRIES), stats.entries as f64);
    assert_eq!(recorded.gauge(telemetry::BYTES), stats.bytes as f64);
    drop(cache);

    // Reopened: the gauges start from what recovery found.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let cache = open_recorded(
        &recorder,
        directory.path(),
        small_config().instance(instance),
    );
    let recorded = take_snapshot(&snapshotter, instance);
    let stats = cache.stats();
    assert!(stats.entries > 0);
    assert_eq!(stats.entries, cache.recovery_report().entries);
    assert_eq!(recorded.gauge(telemetry::ENTRIES), stats.entries as f64);
    assert_eq!(recorded.gauge(telemetry::BYTES), stats.bytes as f64);
    assert_eq!(
        recorded.gauge(telemetry::CAPACITY_BYTES),
        cache.capacity() as f64
    );
    assert_eq!(recorded.counter(telemetry::HITS), 0);
}

#[test]
fn clear_empties_the_gauges() {
    let instance = "disk-metrics-clear";
    let directory = tempfile::tempdir().unwrap();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let cache = open_recorded(
        &recorder,
        directory.path(),
        small_config().instance(instance),
    );
    for index in 0..5 {
        cache
            .insert(&format!("k{index}"), &noise(100, index), None)
            .unwrap();
    }
    assert_eq!(cache.clear().unwrap(), 5);
    cache.insert("after", b"clear", None).unwrap();
    let recorded = take_snapshot(&snapshotter, instance);
    let stats = cache.stats();
    assert_eq!(recorded.gauge(telemetry::ENTRIES), 1.0);
    assert_eq!(recorded.gauge(telemetry::BYTES), stats.bytes as f64);
    assert_eq!(recorded.samples("clear"), 1);
}
