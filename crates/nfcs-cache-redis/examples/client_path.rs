//! A driver for profiling the client path: `N` operations of one kind through the Redis tier
//! or the bare `redis` crate, against a `redis-server` it starts on a free loopback port.
//!
//! ```text
//! client_path <subject> <op> <N> [tasks]
//!   subject: ours | quiet | bare
//!   op:      set | get | get_many16 | set_many16 | get_many100 | set_many100
//! client_path time [rounds]
//! ```
//!
//! The first form runs `N` calls over `tasks` (default 50) concurrent tasks on a
//! current-thread runtime, after a fixed set-up (connecting, writing every key once), so that
//! `valgrind --tool=callgrind` at two values of `N` gives the client's instructions per call
//! as the difference over the difference in `N` (the server is another process, not
//! counted):
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=cg.%p target/release/examples/client_path ours set 2000
//! ```
//!
//! `ours` is `RedisCache` as shipped (cross-node invalidation on), `quiet` the same with it
//! off, `bare` one multiplexed connection of the bare crate issuing the same commands
//! (`SET key value PX ttl`, `GET`, `MGET`, a pipeline of `SET`s) on keys of their own
//! (`bare:key:…`, as long as the tier's prefixed keys). The second form times every subject
//! and operation in turn on a two-worker runtime, `rounds` rounds (default 5), and prints the
//! median rate of each beside `/proc/loadavg`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nfcs_cache_redis::test_server::RedisServer;
use nfcs_cache_redis::{RedisCache, RedisConfig};

const KEYS: usize = 10_000;
const VALUE: [u8; 1024] = [0x5a; 1024];
const TTL: Duration = Duration::from_secs(7200);
const TIMEOUT: Duration = Duration::from_secs(30);

type OpFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Keys without and with the prefix, made once so that the driver's own formatting is not
/// counted.
struct Keys {
    plain: Vec<String>,
    prefixed: Vec<String>,
}

#[derive(Clone)]
enum Subject {
    Ours(RedisCache),
    Bare(redis::aio::MultiplexedConnection),
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Set,
    Get,
    GetMany(usize),
    SetMany(usize),
}

impl Op {
    fn parse(text: &str) -> Option<Op> {
        Some(match text {
            "set" => Op::Set,
            "get" => Op::Get,
            "get_many16" => Op::GetMany(16),
            "set_many16" => Op::SetMany(16),
            "get_many100" => Op::GetMany(100),
            "set_many100" => Op::SetMany(100),
            _ => return None,
        })
    }

    fn keys_per_call(self) -> usize {
        match self {
            Op::Set | Op::Get => 1,
            Op::GetMany(batch) | Op::SetMany(batch) => batch,
        }
    }
}

fn call(subject: &Subject, keys: &Arc<Keys>, op: Op, n: usize) -> OpFuture {
    let keys = Arc::clone(keys);
    match subject.clone() {
        Subject::Ours(cache) => Box::pin(async move {
            match op {
                Op::Set => {
                    let key = &keys.plain[n % KEYS];
                    cache.set(key, &VALUE, TTL).await.expect("set");
                }
                Op::Get => {
                    let key = &keys.plain[n % KEYS];
                    assert!(cache.get(key).await.expect("get").is_some());
                }
                Op::GetMany(batch) => {
                    let names: Vec<&str> = (0..batch)
                        .map(|i| keys.plain[(n * batch + i) % KEYS].as_str())
                        .collect();
                    cache.get_many(&names).await.expect("get_many");
                }
                Op::SetMany(batch) => {
                    let entries: Vec<(&str, &[u8])> = (0..batch)
                        .map(|i| (keys.plain[(n * batch + i) % KEYS].as_str(), &VALUE[..]))
                        .collect();
                    cache.set_many(&entries, TTL).await.expect("set_many");
                }
            }
        }),
        Subject::Bare(mut connection) => Box::pin(async move {
            let millis = TTL.as_millis() as u64;
            match op {
                Op::Set => {
                    redis::cmd("SET")
                        .arg(&keys.prefixed[n % KEYS])
                        .arg(&VALUE[..])
                        .arg("PX")
                        .arg(millis)
                        .query_async::<()>(&mut connection)
                        .await
                        .expect("SET");
                }
                Op::Get => {
                    let value: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(&keys.prefixed[n % KEYS])
                        .query_async(&mut connection)
                        .await
                        .expect("GET");
                    assert!(value.is_some());
                }
                Op::GetMany(batch) => {
                    let mut command = redis::cmd("MGET");
                    for i in 0..batch {
                        command.arg(&keys.prefixed[(n * batch + i) % KEYS]);
                    }
                    let _: Vec<Option<Vec<u8>>> =
                        command.query_async(&mut connection).await.expect("MGET");
                }
                Op::SetMany(batch) => {
                    let mut pipeline = redis::pipe();
                    for i in 0..batch {
                        pipeline
                            .cmd("SET")
                            .arg(&keys.prefixed[(n * batch + i) % KEYS])
                            .arg(&VALUE[..])
                            .arg("PX")
                            .arg(millis)
                            .ignore();
                    }
                    pipeline
                        .query_async::<()>(&mut connection)
                        .await
                        .expect("pipeline");
                }
            }
        }),
    }
}

/// `calls` calls over `tasks` tasks.
async fn drive(subject: &Subject, keys: &Arc<Keys>, op: Op, calls: usize, tasks: usize) {
    let per_task = calls.div_ceil(tasks);
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let (subject, keys) = (subject.clone(), Arc::clone(keys));
            tokio::spawn(async move {
                for i in 0..per_task {
                    call(&subject, &keys, op, task * per_task + i).await;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("a task panicked");
    }
}

async fn connect(url: &str) -> (Keys, Vec<(&'static str, Subject)>) {
    let keys = Keys {
        plain: (0..KEYS).map(|n| format!("key:{n:06}")).collect(),
        // Keys of their own: the bare crate's values have no frame, which the tier would read
        // as misses.
        prefixed: (0..KEYS).map(|n| format!("bare:key:{n:06}")).collect(),
    };
    // A long timeout on both (the same timer per request, a later deadline): under valgrind a
    // command takes many times longer.
    let config = || RedisConfig::new(url).command_timeout(TIMEOUT);
    let ours = RedisCache::connect(config()).await.expect("connect");
    let quiet = RedisCache::connect(config().cross_node_invalidation(false))
        .await
        .expect("connect");
    let mut bare = redis::Client::open(url)
        .expect("client")
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new().set_response_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("connect");
    // Every key exists (framed) before reads.
    for chunk in keys.plain.chunks(100) {
        let entries: Vec<(&str, &[u8])> = chunk.iter().map(|k| (k.as_str(), &VALUE[..])).collect();
        quiet.set_many(&entries, TTL).await.expect("prefill");
    }
    for chunk in keys.prefixed.chunks(100) {
        let mut pipeline = redis::pipe();
        for key in chunk {
            pipeline.cmd("SET").arg(key).arg(&VALUE[..]).ignore();
        }
        pipeline
            .query_async::<()>(&mut bare)
            .await
            .expect("prefill");
    }
    let subjects = vec![
        ("ours", Subject::Ours(ours)),
        ("quiet", Subject::Ours(quiet)),
        ("bare", Subject::Bare(bare)),
    ];
    (keys, subjects)
}

fn usage() -> ! {
    eprintln!(
        "usage: client_path <ours|quiet|bare> <set|get|get_many16|set_many16|get_many100|set_many100> <N> [tasks]\n       client_path time [rounds]"
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let server = RedisServer::start();
    let url = server.url();
    if args.first().map(String::as_str) == Some("time") {
        let rounds: usize = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(5);
        time(&url, rounds);
        return;
    }
    let (Some(subject), Some(op), Some(calls)) = (
        args.first(),
        args.get(1).and_then(|op| Op::parse(op)),
        args.get(2).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        usage()
    };
    let tasks: usize = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(50);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let (keys, subjects) = connect(&url).await;
        let keys = Arc::new(keys);
        let Some((_, chosen)) = subjects.iter().find(|(name, _)| name == subject) else {
            usage()
        };
        drive(chosen, &keys, op, calls, tasks).await;
    });
}

fn time(url: &str, rounds: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let (keys, subjects) = runtime.block_on(connect(url));
    let keys = Arc::new(keys);
    let ops = [
        ("set", Op::Set),
        ("get", Op::Get),
        ("get_many16", Op::GetMany(16)),
        ("set_many16", Op::SetMany(16)),
    ];
    let loadavg = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("loadavg before: {}", loadavg().trim());
    for (name, op) in ops {
        let mut rates = vec![Vec::new(); subjects.len()];
        for _ in 0..rounds {
            for (index, (_, subject)) in subjects.iter().enumerate() {
                let calls = 20_000 / op.keys_per_call();
                let began = Instant::now();
                runtime.block_on(drive(subject, &keys, op, calls, 50));
                let rate = (calls * op.keys_per_call()) as f64 / began.elapsed().as_secs_f64();
                rates[index].push(rate);
            }
        }
        let medians: Vec<f64> = rates
            .iter_mut()
            .map(|samples| {
                samples.sort_by(f64::total_cmp);
                samples[samples.len() / 2]
            })
            .collect();
        let line: Vec<String> = subjects
            .iter()
            .zip(&medians)
            .map(|((subject, _), rate)| format!("{subject} {:.0} k/s", rate / 1e3))
            .collect();
        println!(
            "{name:>12}: {}  ours/bare {:.2}x quiet/bare {:.2}x",
            line.join(", "),
            medians[0] / medians[2],
            medians[1] / medians[2]
        );
    }
    println!("loadavg after: {}", loadavg().trim());
}
