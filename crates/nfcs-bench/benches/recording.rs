//! What a call of the recording API costs, sampled and not, with a real Prometheus recorder
//! (metrics-exporter-prometheus, the spec's CGL buckets) installed for its handles.
//!
//! `cargo bench -p nfcs-bench --bench recording` runs criterion's measurements, then prints a
//! table of nanoseconds per call from a plain timed loop:
//!
//! - `rate 0`: the call returns before touching anything (the sampler's fast path);
//! - `not kept`: the rate is 2^-32, so each call increments the sampler's counter and
//!   returns (what a call left out at 0.1 costs);
//! - `rate 0.1`: the spec's default mix, 9 calls not kept for 1 kept;
//! - `rate 1`: every call records (histogram, gauge or counters).
//!
//! The recorder's histograms are drained (rendered) outside the timed loops, as a scrape
//! would, so their buffers do not grow through the run.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use nfcs_bench::recording::{
    CGL_BUCKETS, CGL_COMPUTATION_TIME, PerformanceRecorder, describe_metrics,
};

/// The rates measured, with their names in the table.
const RATES: [(&str, f64); 4] = [
    ("rate 0", 0.0),
    ("not kept", 1.0 / 4_294_967_296.0),
    ("rate 0.1", 0.1),
    ("rate 1", 1.0),
];

type Call = fn(&PerformanceRecorder, u64);

/// The spec's three functions (with varying arguments, so nothing is hoisted).
const CALLS: [(&str, Call); 3] = [
    ("record_computation", |recorder, i| {
        recorder.record_computation(
            "cgl_step",
            Duration::from_nanos(1_000_000 + (i & 1023)),
            [64, 128, 256][(i % 3) as usize],
        );
    }),
    ("record_esc_performance", |recorder, i| {
        recorder.record_esc_performance(
            32 + (i & 63),
            Duration::from_nanos(2_000_000 + (i & 1023)),
            512,
        );
    }),
    ("record_constitutional_performance", |recorder, i| {
        recorder.record_constitutional_performance(
            Duration::from_nanos(20_000 + (i & 1023)),
            i & 3 != 0,
            (i & 7) as f64,
        );
    }),
];

fn recorders(
    recorder: &metrics_exporter_prometheus::PrometheusRecorder,
) -> Vec<PerformanceRecorder> {
    metrics::with_local_recorder(recorder, || {
        describe_metrics();
        RATES
            .iter()
            .map(|(_, rate)| PerformanceRecorder::new(*rate).expect("a valid rate"))
            .collect()
    })
}

/// Times `iterations` calls, then drains the recorder (untimed).
fn timed(
    recorder: &PerformanceRecorder,
    call: Call,
    iterations: u64,
    handle: &PrometheusHandle,
) -> Duration {
    let started = Instant::now();
    for i in 0..iterations {
        call(black_box(recorder), black_box(i));
    }
    let elapsed = started.elapsed();
    black_box(handle.render());
    elapsed
}

fn main() {
    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(CGL_COMPUTATION_TIME.to_owned()), &CGL_BUCKETS)
        .expect("buckets")
        .build_recorder();
    let handle = prometheus.handle();
    let performance = recorders(&prometheus);

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    for (name, call) in CALLS {
        let mut group = criterion.benchmark_group(name);
        for ((rate_name, _), recorder) in RATES.iter().zip(&performance) {
            group.bench_function(*rate_name, |bencher| {
                bencher.iter_custom(|iterations| timed(recorder, call, iterations, &handle));
            });
        }
        group.finish();
    }
    criterion.final_summary();

    // The table: best of five runs of a million calls each.
    println!();
    println!("ns per call (best of 5 x 1,000,000 calls, Prometheus recorder)");
    print!("{:<36}", "");
    for (rate_name, _) in RATES {
        print!("{rate_name:>10}");
    }
    println!();
    for (name, call) in CALLS {
        print!("{name:<36}");
        for recorder in &performance {
            let best = (0..5)
                .map(|_| timed(recorder, call, 1_000_000, &handle))
                .min()
                .unwrap_or_default();
            print!("{:>10.1}", best.as_nanos() as f64 / 1e6);
        }
        println!();
    }
    // Two threads on one recorder at 0.1: the shared sampler counter's line moves between cores.
    let shared = &performance[2];
    let best = (0..5)
        .map(|_| {
            let started = Instant::now();
            std::thread::scope(|scope| {
                for _ in 0..2 {
                    scope.spawn(|| {
                        for i in 0..1_000_000_u64 {
                            (CALLS[0].1)(black_box(shared), black_box(i));
                        }
                    });
                }
            });
            let elapsed = started.elapsed();
            black_box(handle.render());
            elapsed
        })
        .min()
        .unwrap_or_default();
    println!(
        "{:<36}{:>30.1}  (2 threads, wall time per call per thread)",
        "record_computation, 2 threads",
        best.as_nanos() as f64 / 1e6
    );
    let rendered = handle.render();
    println!(
        "rendered: {} has the spec's buckets: {}",
        CGL_COMPUTATION_TIME,
        rendered.contains("nfcs_cgl_computation_time_seconds_bucket{le=\"0.005\"}")
    );
}
