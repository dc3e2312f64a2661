//! The load engine against targets whose latency is known: injected distributions are
//! recovered, an injected stall shows in the open model's corrected percentiles and not in the
//! raw ones, the spec's 50-user test passes in process, and the stress test finds the breaking
//! point of a target with a known capacity.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use nfcs_bench::components::load::{LoadOptions, run_load_test, run_with_target};
use nfcs_bench::load::{
    ClosedModel, LoadPlan, Mix, Model, NoopTarget, OpenModel, Operation, Stage, Target,
    TargetError, ThinkTime,
};
use nfcs_bench::progress::Progress;
use nfcs_bench::report::Profile;
use nfcs_bench::{BenchmarkConfig, RunContext, Scenario, System};

/// A uniform number in [0, 1) from a request number.
fn unit(index: u64) -> f64 {
    let mut z = index
        .wrapping_add(0x1234_5678)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

/// Sleeps 100 ms plus an exponential of mean 50 ms (capped at 400 ms) per request, and keeps
/// what it injected: the truth the engine must recover.
#[derive(Default)]
struct InjectedLatency {
    injected: Mutex<Vec<Duration>>,
}

impl Target for InjectedLatency {
    fn execute(&self, _: &Operation, request: u64) -> BoxFuture<'static, Result<(), TargetError>> {
        let extra = (-(1.0 - unit(request)).ln() * 0.050).min(0.400);
        let delay = Duration::from_secs_f64(0.100 + extra);
        self.injected
            .lock()
            .expect("no request panicked")
            .push(delay);
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            Ok(())
        })
    }

    fn name(&self) -> &str {
        "injected"
    }
}

/// The exact quantile of the sorted `values`.
fn quantile(sorted: &[Duration], q: f64) -> f64 {
    let index = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64()
}

fn assert_recovered(name: &str, truth: &[Duration], histogram: &hdrhistogram::Histogram<u64>) {
    let mut sorted = truth.to_vec();
    sorted.sort();
    for q in [0.50, 0.95, 0.99] {
        let expected = quantile(&sorted, q);
        let measured = histogram.value_at_quantile(q) as f64 / 1e9;
        let error = (measured - expected).abs() / expected;
        assert!(
            error < 0.05,
            "{name} p{}: measured {measured:.4} s, injected {expected:.4} s ({:.1} % off)",
            q * 100.0,
            error * 100.0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_model_recovers_injected_percentiles() {
    let target = Arc::new(InjectedLatency::default());
    let model = ClosedModel {
        stages: vec![
            Stage {
                duration: Duration::from_millis(200),
                users: 40,
            },
            Stage {
                duration: Duration::from_secs(4),
                users: 40,
            },
        ],
        think: ThinkTime::None,
    };
    let plan = LoadPlan::new(Model::Closed(model), Mix::single(Operation::NoOp)).workers(2);
    let result = nfcs_bench::load::run(target.clone(), &plan, &indicatif::ProgressBar::hidden())
        .await
        .unwrap();
    let truth = target.injected.lock().unwrap().clone();
    assert_eq!(result.requests, truth.len() as u64);
    assert!(result.requests > 800, "{} requests", result.requests);
    assert_eq!(result.errors, 0);
    assert_eq!(result.success_rate(), 1.0);
    assert_recovered("closed corrected", &truth, &result.corrected);
    assert_recovered("closed raw", &truth, &result.raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_recovers_injected_percentiles() {
    let target = Arc::new(InjectedLatency::default());
    let mut model = OpenModel::constant(250.0, Duration::from_secs(4));
    model.max_in_flight = 400;
    let plan = LoadPlan::new(Model::Open(model), Mix::single(Operation::NoOp)).workers(2);
    let result = nfcs_bench::load::run(target.clone(), &plan, &indicatif::ProgressBar::hidden())
        .await
        .unwrap();
    let truth = target.injected.lock().unwrap().clone();
    assert_eq!(result.requests, 1000);
    assert_eq!(truth.len(), 1000);
    assert_eq!(result.dropped, 0);
    assert_eq!(result.success_rate(), 1.0);
    assert_recovered("open corrected", &truth, &result.corrected);
    assert_recovered("open raw", &truth, &result.raw);
    assert!(
        (result.throughput() - 250.0).abs() < 2.0,
        "{}",
        result.throughput()
    );
}

/// Answers at once, except that a request that starts during the stall (a second, starting
/// at `stall_at`) answers when the stall ends.
struct Stall {
    stall_at: Instant,
}

impl Target for Stall {
    fn execute(&self, _: &Operation, _: u64) -> BoxFuture<'static, Result<(), TargetError>> {
        let now = Instant::now();
        let end = self.stall_at + Duration::from_secs(1);
        if now >= self.stall_at && now < end {
            Box::pin(async move {
                tokio::time::sleep_until(end.into()).await;
                Ok(())
            })
        } else {
            Box::pin(std::future::ready(Ok(())))
        }
    }

    fn name(&self) -> &str {
        "stall"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_shows_in_the_corrected_p99_of_the_open_model() {
    // 1000 arrivals per second for 5 s, 10 in flight at most: the stall holds the 10, the
    // arrivals of that second start when it ends (late, not dropped).
    let mut model = OpenModel::constant(1000.0, Duration::from_secs(5));
    model.max_in_flight = 10;
    model.drop_after = Duration::from_secs(5);
    let plan = LoadPlan::new(Model::Open(model), Mix::single(Operation::NoOp)).workers(2);
    let target = Arc::new(Stall {
        stall_at: Instant::now() + Duration::from_secs(2),
    });
    let result = nfcs_bench::load::run(target, &plan, &indicatif::ProgressBar::hidden())
        .await
        .unwrap();
    let corrected = result.corrected_summary();
    let raw = result.raw_summary();
    assert_eq!(result.requests, 5000);
    assert_eq!(result.dropped, 0);
    assert!(corrected.p99 > 0.8, "corrected p99 {} s", corrected.p99);
    assert!(corrected.max > 0.95, "corrected max {} s", corrected.max);
    assert!(raw.p99 < 0.1, "raw p99 {} s", raw.p99);
    assert!(
        raw.max > 0.9,
        "the stalled requests themselves: raw max {} s",
        raw.max
    );
    // About the stall's thousand arrivals started more than 10 ms late.
    assert!(
        (800..=1100).contains(&result.late),
        "{} late arrivals",
        result.late
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_makes_the_same_choices() {
    let mix = Mix::new(vec![
        (Operation::CacheGet, 3.0),
        (Operation::CacheSet, 1.0),
        (Operation::NoOp, 1.0),
    ])
    .unwrap();
    let plan = LoadPlan::new(
        Model::Open(OpenModel::constant(4000.0, Duration::from_millis(500))),
        mix,
    )
    .seed(42);
    let mut counts = Vec::new();
    for _ in 0..2 {
        let result = nfcs_bench::load::run(
            Arc::new(NoopTarget),
            &plan,
            &indicatif::ProgressBar::hidden(),
        )
        .await
        .unwrap();
        assert_eq!(result.requests, 2000);
        counts.push(
            result
                .operations
                .iter()
                .map(|operation| operation.ok)
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(counts[0], counts[1]);
    // Three fifths of the requests are reads, within sampling noise.
    assert!((1100..1300).contains(&counts[0][0]), "{:?}", counts[0]);
}

#[test]
fn closed_model_users_start_on_the_ramp_and_stop_on_the_way_down() {
    let model = ClosedModel {
        stages: vec![
            Stage {
                duration: Duration::from_secs(10),
                users: 10,
            },
            Stage {
                duration: Duration::from_secs(10),
                users: 10,
            },
            Stage {
                duration: Duration::from_secs(10),
                users: 0,
            },
        ],
        think: ThinkTime::None,
    };
    assert_eq!(
        model.user_interval(0),
        Some((Duration::ZERO, Duration::from_secs(30)))
    );
    assert_eq!(
        model.user_interval(5),
        Some((Duration::from_secs(5), Duration::from_secs(25)))
    );
    assert_eq!(model.user_interval(10), None);
    assert_eq!(model.users_at(Duration::from_millis(2500)), 2.5);
    assert_eq!(model.users_at(Duration::from_secs(15)), 10.0);
}

async fn context(users: u32) -> (RunContext, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut config = BenchmarkConfig::default().quick();
    config.load_testing.max_concurrent_users = users;
    config.cache.redis.enabled = false;
    config.cache.semantic.enabled = false;
    config.cache.disk.directory = dir.path().join("disk");
    let system = System::build(&config.cache, dir.path())
        .await
        .expect("the system under test builds");
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

/// The spec's test: 50 users, success at least 0.99, p95 at most a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_users_in_process_meet_the_targets() {
    let (context, _dir) = context(50).await;
    let options = LoadOptions {
        scenario: Some(Scenario::NormalLoad),
        ..LoadOptions::new(50, 3.0)
    };
    let report = run_load_test(&context, options).await.unwrap();
    let get = |name: &str| {
        report
            .measurement_with(name, "scenario", "normal_load")
            .unwrap_or_else(|| panic!("{name} missing"))
            .value
    };
    assert!(
        get("load_success_rate") >= 0.99,
        "{} {:#?} {:#?}",
        get("load_success_rate"),
        report.notes,
        report
            .measurements
            .iter()
            .filter(|m| m.name.starts_with("load_operation"))
            .map(|m| (m.key(), m.value))
            .collect::<Vec<_>>()
    );
    assert!(
        get("load_latency_p95") <= 1.0,
        "{}",
        get("load_latency_p95")
    );
    assert!(get("load_requests") > 500.0, "{}", get("load_requests"));
    assert_eq!(get("load_errors"), 0.0);
    assert!(report.passed(), "{:#?}", report.measurements);
    assert!(
        report
            .plots
            .iter()
            .any(|plot| plot.series.iter().any(|series| series.secondary_axis))
    );
}

/// One request at a time, 5 ms each: 200 requests/s at most.
struct Capacity {
    permit: Arc<tokio::sync::Semaphore>,
}

impl Target for Capacity {
    fn execute(&self, _: &Operation, _: u64) -> BoxFuture<'static, Result<(), TargetError>> {
        let permit = Arc::clone(&self.permit);
        Box::pin(async move {
            let _held = permit.acquire().await.map_err(TargetError::new)?;
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok(())
        })
    }

    fn name(&self) -> &str {
        "capacity"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stress_test_finds_the_breaking_point() {
    let (mut context, _dir) = context(8).await;
    context.config.targets.load_p95_s = 0.1;
    let target = Arc::new(Capacity {
        permit: Arc::new(tokio::sync::Semaphore::new(1)),
    });
    let options = LoadOptions {
        scenario: Some(Scenario::StressTest),
        ..LoadOptions::new(8, 4.0)
    };
    let report = run_with_target(&context, target, Mix::single(Operation::NoOp), options)
        .await
        .unwrap();
    let value = |name: &str| report.measurement(name).unwrap().value;
    assert_eq!(
        value("stress_breaking_point_reached"),
        1.0,
        "{:#?}",
        report.notes
    );
    // 18 users cannot wait more than 18 x 5 ms = 90 ms; 41 users with 100 ms think times
    // offer twice the capacity.
    let breaking = value("stress_breaking_point_users");
    assert!((27.0..=41.0).contains(&breaking), "{breaking}");
    assert!(value("stress_max_users_sustained") >= 18.0);
}

/// The component's default run: the three configured scenarios of the quick profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_scenarios_all_report() {
    let (context, _dir) = context(20).await;
    let report = nfcs_bench::components::load::run(&context).await.unwrap();
    for scenario in ["normal_load", "peak_load", "stress_test"] {
        for name in [
            "load_success_rate",
            "load_latency_p95",
            "load_latency_raw_p99",
            "load_throughput",
            "load_dropped",
            "load_late",
        ] {
            assert!(
                report
                    .measurement_with(name, "scenario", scenario)
                    .is_some(),
                "{name} of {scenario} missing"
            );
        }
    }
    // peak_load ran at twice what normal_load held.
    let normal = report
        .measurement_with("load_throughput", "scenario", "normal_load")
        .unwrap()
        .value;
    let rate = report
        .measurement_with("load_arrival_rate", "scenario", "peak_load")
        .unwrap()
        .value;
    assert!(rate > normal * 1.5, "peak {rate}/s, normal {normal}/s");
    assert!(report.measurement("stress_breaking_point_users").is_some());
    assert!(report.measurement("stress_max_users_sustained").is_some());
    assert!(
        report
            .plots
            .iter()
            .any(|plot| plot.id == "load_stress_steps")
    );
}
