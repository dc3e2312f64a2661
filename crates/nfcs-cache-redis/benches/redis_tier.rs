//! The Redis tier beside the bare `redis` crate and `redis-benchmark`, against one server.
//!
//! The benchmark starts its own `redis-server` on a free loopback port (skipping, with a
//! notice, where there is none). 1 KiB values, 50 concurrent tasks on a two-worker tokio
//! runtime:
//! - `nfcs_redis`: `RedisCache` as shipped (up to 10 connections, timeouts, breaker, value
//!   framing, cross-node invalidation announcements);
//! - `nfcs_redis_quiet`: the same with `cross_node_invalidation(false)` (a single node, or
//!   nodes without local tiers: no announcements, no subscription);
//! - `redis_crate`: the bare crate, one multiplexed connection shared by the tasks, no cache
//!   layer;
//! - GET, SET, and a 90 % GET / 10 % SET mix; and the batch calls `get_many` / `set_many`
//!   with 16 keys a call (one round trip), against `MGET` / a 16-command pipeline on the bare
//!   crate.
//!
//! After criterion, the subjects are measured again in turn (five rounds, the median of each,
//! so that the machine's drift does not favour one), and `redis-benchmark -t set,get -d 1024
//! -c 50` runs against the same server, without and with `-P 16`.
//!
//! Cross-node propagation: two `RedisCache`s on the server (two nodes), both subscribed; one
//! writes a key, [`PROPAGATION_ROUNDS`] times in a row, and the delay from its `set` returning
//! to the other's `invalidations()` yielding that key is recorded (p50, p99, max). It is the
//! window in which the other node can still serve its local copy of the old value; it includes
//! the announcer's batching linger (about a millisecond).
//!
//! With `NFCS_BENCH_OUT=<dir>` these figures go to `<dir>/redis_tier_report.json` for
//! `cargo xtask bench`.

use std::future::Future;
use std::pin::Pin;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use nfcs_cache_redis::test_server::{RedisServer, server_available};
use nfcs_cache_redis::{Invalidation, RedisCache, RedisConfig};

const TASKS: u64 = 50;
const KEYS: u64 = 10_000;
const VALUE: [u8; 1024] = [0x5a; 1024];
const BATCH: usize = 16;
/// Writes whose propagation to the other node is timed.
const PROPAGATION_ROUNDS: usize = 1000;

type OpFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One operation of a workload, for operation number `n`.
trait Subject: Send + Sync + 'static {
    fn get(&self, n: u64) -> OpFuture;
    fn set(&self, n: u64) -> OpFuture;
    fn get_many(&self, n: u64) -> OpFuture;
    fn set_many(&self, n: u64) -> OpFuture;
}

fn key(n: u64) -> String {
    format!("key:{:06}", n % KEYS)
}

impl Subject for RedisCache {
    fn get(&self, n: u64) -> OpFuture {
        let cache = self.clone();
        Box::pin(async move {
            cache.get(&key(n)).await.expect("get");
        })
    }
    fn set(&self, n: u64) -> OpFuture {
        let cache = self.clone();
        Box::pin(async move {
            cache.set(&key(n), &VALUE, None).await.expect("set");
        })
    }
    fn get_many(&self, n: u64) -> OpFuture {
        let cache = self.clone();
        Box::pin(async move {
            let keys: Vec<String> = (0..BATCH as u64)
                .map(|i| key(n * BATCH as u64 + i))
                .collect();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            cache.get_many(&keys).await.expect("get_many");
        })
    }
    fn set_many(&self, n: u64) -> OpFuture {
        let cache = self.clone();
        Box::pin(async move {
            let keys: Vec<String> = (0..BATCH as u64)
                .map(|i| key(n * BATCH as u64 + i))
                .collect();
            let entries: Vec<(&str, &[u8])> =
                keys.iter().map(|key| (key.as_str(), &VALUE[..])).collect();
            cache.set_many(&entries, None).await.expect("set_many");
        })
    }
}

/// The bare crate: one multiplexed connection, keys under the same prefix, no framing.
#[derive(Clone)]
struct Bare(redis::aio::MultiplexedConnection);

impl Subject for Bare {
    fn get(&self, n: u64) -> OpFuture {
        let mut connection = self.0.clone();
        Box::pin(async move {
            let _: Option<Vec<u8>> = redis::cmd("GET")
                .arg(format!("nfcs:{}", key(n)))
                .query_async(&mut connection)
                .await
                .expect("GET");
        })
    }
    fn set(&self, n: u64) -> OpFuture {
        let mut connection = self.0.clone();
        Box::pin(async move {
            redis::cmd("SET")
                .arg(format!("nfcs:{}", key(n)))
                .arg(&VALUE[..])
                .arg("PX")
                .arg(7_200_000)
                .query_async::<()>(&mut connection)
                .await
                .expect("SET");
        })
    }
    fn get_many(&self, n: u64) -> OpFuture {
        let mut connection = self.0.clone();
        Box::pin(async move {
            let keys: Vec<String> = (0..BATCH as u64)
                .map(|i| format!("nfcs:{}", key(n * BATCH as u64 + i)))
                .collect();
            let _: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                .arg(keys)
                .query_async(&mut connection)
                .await
                .expect("MGET");
        })
    }
    fn set_many(&self, n: u64) -> OpFuture {
        let mut connection = self.0.clone();
        Box::pin(async move {
            let mut pipeline = redis::pipe();
            for i in 0..BATCH as u64 {
                pipeline
                    .cmd("SET")
                    .arg(format!("nfcs:{}", key(n * BATCH as u64 + i)))
                    .arg(&VALUE[..])
                    .arg("PX")
                    .arg(7_200_000)
                    .ignore();
            }
            pipeline
                .query_async::<()>(&mut connection)
                .await
                .expect("pipeline");
        })
    }
}

#[derive(Clone, Copy)]
enum Workload {
    Get,
    Set,
    Mix,
    GetMany,
    SetMany,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Get => "get",
            Workload::Set => "set",
            Workload::Mix => "mix_90_10",
            Workload::GetMany => "get_many_16",
            Workload::SetMany => "set_many_16",
        }
    }

    fn operation(self, subject: &dyn Subject, n: u64) -> OpFuture {
        match self {
            Workload::Get => subject.get(n),
            Workload::Set => subject.set(n),
            Workload::Mix if n % 10 == 9 => subject.set(n),
            Workload::Mix => subject.get(n),
            Workload::GetMany => subject.get_many(n),
            Workload::SetMany => subject.set_many(n),
        }
    }
}

/// Runs `operations` operations over `TASKS` tasks; returns the wall time.
fn run(
    runtime: &tokio::runtime::Runtime,
    subject: Arc<dyn Subject>,
    workload: Workload,
    operations: u64,
    cursor: &AtomicU64,
) -> Duration {
    let start = cursor.fetch_add(operations, Ordering::Relaxed);
    runtime.block_on(async move {
        let began = Instant::now();
        let per_task = operations.div_ceil(TASKS);
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let subject = Arc::clone(&subject);
                tokio::spawn(async move {
                    for i in 0..per_task {
                        workload
                            .operation(&*subject, start + task * per_task + i)
                            .await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("a benchmark task panicked");
        }
        began.elapsed()
    })
}

/// `redis-benchmark` against the same server; requests per second by test name.
fn redis_benchmark(port: u16, pipeline: u32) -> Vec<(String, f64)> {
    let output = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "set,get",
            "-d",
            "1024",
            "-c",
            "50",
            "-n",
            "300000",
            "-q",
        ])
        .args(["-P", &pipeline.to_string()])
        .output();
    let Ok(output) = output else {
        eprintln!("notice: redis-benchmark is not installed; its rows are skipped");
        return Vec::new();
    };
    // Lines like "SET: 123456.79 requests per second, p50=0.199 msec"; -q rewrites the line
    // with carriage returns while it runs, so keep what follows the last one.
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let line = line.rsplit('\r').next()?;
            let (test, rest) = line.split_once(": ")?;
            let rate: f64 = rest.split_whitespace().next()?.parse().ok()?;
            Some((test.trim().to_owned(), rate))
        })
        .collect()
}

/// The delay from one node's write returning to the other node hearing of it, over
/// [`PROPAGATION_ROUNDS`] writes: (p50, p99, max).
fn propagation(runtime: &tokio::runtime::Runtime, url: &str) -> (Duration, Duration, Duration) {
    runtime.block_on(async {
        let writer = RedisCache::connect(RedisConfig::new(url))
            .await
            .expect("connect");
        let listener = RedisCache::connect(RedisConfig::new(url))
            .await
            .expect("connect");
        // The subscription is made in the background; a write before it is up is never heard.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !listener.is_subscribed() {
            assert!(Instant::now() < deadline, "the listener never subscribed");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut heard = listener.invalidations();
        let mut delays = Vec::with_capacity(PROPAGATION_ROUNDS);
        for round in 0..PROPAGATION_ROUNDS {
            let key = format!("propagation:{round}");
            writer.set(&key, &VALUE, None).await.expect("set");
            let written = Instant::now();
            loop {
                let message = tokio::time::timeout(Duration::from_secs(30), heard.recv())
                    .await
                    .expect("the invalidation arrives")
                    .expect("the channel is open");
                if let Invalidation::Keys(keys) = message
                    && keys.contains(&key)
                {
                    break;
                }
            }
            delays.push(written.elapsed());
        }
        delays.sort();
        (
            delays[delays.len() / 2],
            delays[delays.len() * 99 / 100],
            delays[delays.len() - 1],
        )
    })
}

fn benchmarks(criterion: &mut Criterion) {
    if !server_available() {
        eprintln!("notice: no redis-server binary: the Redis tier benchmark is skipped");
        return;
    }
    let server = RedisServer::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let (shipped, quiet, bare) = runtime.block_on(async {
        let shipped = RedisCache::connect(RedisConfig::new(server.url()))
            .await
            .expect("connect");
        let quiet =
            RedisCache::connect(RedisConfig::new(server.url()).cross_node_invalidation(false))
                .await
                .expect("connect");
        let client = redis::Client::open(server.url()).expect("client");
        let bare = Bare(
            client
                .get_multiplexed_async_connection()
                .await
                .expect("connect"),
        );
        // Every key exists before reads are measured.
        for chunk in 0..KEYS / BATCH as u64 {
            Subject::set_many(&shipped, chunk).await;
        }
        (shipped, quiet, bare)
    });
    let subjects: Vec<(&str, Arc<dyn Subject>)> = vec![
        ("nfcs_redis", Arc::new(shipped)),
        ("nfcs_redis_quiet", Arc::new(quiet)),
        ("redis_crate", Arc::new(bare)),
    ];
    for workload in [
        Workload::Get,
        Workload::Set,
        Workload::Mix,
        Workload::GetMany,
        Workload::SetMany,
    ] {
        let mut group = criterion.benchmark_group(format!("redis_tier/{}", workload.name()));
        let per_call = if matches!(workload, Workload::GetMany | Workload::SetMany) {
            BATCH as u64
        } else {
            1
        };
        group
            .throughput(Throughput::Elements(per_call))
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for (name, subject) in &subjects {
            let cursor = AtomicU64::new(0);
            group.bench_function(BenchmarkId::from_parameter(name), |bencher| {
                bencher.iter_custom(|operations| {
                    run(&runtime, Arc::clone(subject), workload, operations, &cursor)
                })
            });
        }
        group.finish();
    }
    let mut report = serde_json::Map::new();
    // The table's figures: subjects measured in turn, five rounds, the median of each. On a
    // shared two-core machine the speed drifts over minutes; interleaving keeps the drift
    // from favouring whichever subject criterion measured at a quiet moment.
    for workload in [
        Workload::Get,
        Workload::Set,
        Workload::Mix,
        Workload::GetMany,
        Workload::SetMany,
    ] {
        let per_call = if matches!(workload, Workload::GetMany | Workload::SetMany) {
            BATCH as f64
        } else {
            1.0
        };
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); subjects.len()];
        for _round in 0..5 {
            for (index, (_, subject)) in subjects.iter().enumerate() {
                let cursor = AtomicU64::new(0);
                let (mut operations, mut elapsed) = (0_u64, Duration::ZERO);
                while elapsed < Duration::from_millis(500) {
                    let chunk = (20_000.0 / per_call) as u64;
                    elapsed += run(&runtime, Arc::clone(subject), workload, chunk, &cursor);
                    operations += chunk;
                }
                rates[index].push(operations as f64 * per_call / elapsed.as_secs_f64());
            }
        }
        for ((name, _), mut samples) in subjects.iter().zip(rates) {
            samples.sort_by(f64::total_cmp);
            report.insert(
                format!("{}/{name}", workload.name()),
                serde_json::json!(samples[samples.len() / 2]),
            );
        }
    }
    drop(subjects);

    let (p50, p99, max) = propagation(&runtime, &server.url());
    println!(
        "cross-node propagation over {PROPAGATION_ROUNDS} writes (write returned -> other node heard): p50 {p50:?}, p99 {p99:?}, max {max:?}"
    );
    for (name, delay) in [("p50", p50), ("p99", p99), ("max", max)] {
        report.insert(
            format!("propagation/{name}_us"),
            serde_json::json!(delay.as_secs_f64() * 1e6),
        );
    }

    for pipeline in [1, 16] {
        for (test, rate) in redis_benchmark(server.port(), pipeline) {
            report.insert(
                format!("redis_benchmark/{}/P{pipeline}", test.to_lowercase()),
                serde_json::json!(rate),
            );
        }
    }
    let report = serde_json::Value::Object(report);
    println!("\nredis-benchmark against the same server: {report}");
    if let Some(directory) = std::env::var_os("NFCS_BENCH_OUT") {
        let path = std::path::Path::new(&directory).join("redis_tier_report.json");
        let written = std::fs::create_dir_all(&directory).and_then(|()| {
            std::fs::write(
                &path,
                serde_json::to_vec_pretty(&report).unwrap_or_default(),
            )
        });
        if let Err(error) = written {
            eprintln!("could not write {}: {error}", path.display());
        }
    }
}

criterion::criterion_group!(redis_tier, benchmarks);
criterion::criterion_main!(redis_tier);
