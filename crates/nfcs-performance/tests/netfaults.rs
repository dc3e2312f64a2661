//! Network faults between nodes: NFCS nodes (memory + disk + Redis with cross-node
//! invalidation, configured as a real node is) and a real `redis-server`, each in its own
//! network namespace, joined by veth pairs; then a node is partitioned from Redis under load,
//! and its path to Redis is given latency, loss and connection resets.
//!
//! Topology (one set per test, named after the test process's pid and a counter, so that
//! parallel runs never collide; a set left behind by a killed run is removed by the next):
//!
//! ```text
//!   ns a: node A --veth 10.77.1.2 <-> 10.77.1.1--+
//!   ns b: node B --veth 10.77.2.2 <-> 10.77.2.1--+-- ns r: redis-server :6379, fault proxy :7000
//!   ns c: node C --veth 10.77.3.2 <-> 10.77.3.1--+
//! ```
//!
//! Every node is a separate process: this test binary started again inside its namespace
//! (`ip netns exec <ns> <this binary> netfaults::netfault_process --exact --ignored`, the role
//! chosen by `NFCS_NETFAULTS_ROLE`), taking one command per line on its standard input (`get`,
//! `set`, `del`, `inv`, `local`, `status`, `quit`) and answering one line on its standard output
//! (`@@ <hit|miss|ok|err> <microseconds the call took> <rest>`), so no extra network is needed
//! to drive it. The fault proxy is the same binary in the Redis namespace.
//!
//! **Why not `tc netem`**: the kernels these tests run on (developers' machines and CI alike)
//! have no `sch_netem` (`tc qdisc add ... netem` fails with "Specified qdisc kind is unknown")
//! and no tc classifiers or actions, nor iptables/nft. So a partition is `ip link set <veth>
//! down` on the Redis side of the node's veth pair (silent in both directions: no FIN, no RST,
//! the node's kernel keeps its connections and retransmits into the void, as on a real
//! partition), and latency and loss come from a userspace TCP proxy on the node's path to Redis
//! (`proxy_process`): each chunk is forwarded a configurable delay after it arrived (latency
//! without a bandwidth limit), a chunk is held back by a stall with a given probability (what
//! TCP makes of a lost segment: a retransmission timeout, 200 ms at least on Linux, during which
//! the stream waits), connections are closed with a given probability, and the proxy can
//! blackhole (hold everything without closing anything).
//!
//! Ordering is by observable conditions with deadlines (a node's answers and status), never by
//! sleeps. Staleness is measured on one clock (the driver's `Instant`): a read that started
//! after the write superseding the value it returned had completed is stale by the difference.
//!
//! The tests need root, `ip` and `redis-server`; without them they print a notice and pass,
//! unless `NFCS_REQUIRE_NETNS=1` (set by `cargo xtask test`), where they fail instead.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime};

use nfcs_performance::prelude::*;
use parking_lot::{Mutex, MutexGuard};

/// Set to `1` to make missing namespaces (not root, no `ip`, no `redis-server`) a failure.
const REQUIRE_NETNS: &str = "NFCS_REQUIRE_NETNS";
/// Which process this binary is when started by the tests: `node` or `proxy`.
const ROLE: &str = "NFCS_NETFAULTS_ROLE";
/// Every namespace these tests make starts with it (then the pid of the test process).
const NS_PREFIX: &str = "nfcsnf";

/// The nodes' `redis.command_timeout_ms` (the default).
const COMMAND_TIMEOUT: Duration = Duration::from_millis(250);
/// `RedisConfig::connect_timeout`'s default (not in the node's configuration file).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The cap of the Redis tier's re-subscription back-off.
const RESUBSCRIBE_BACKOFF_CAP: Duration = Duration::from_secs(2);
/// What `docs/architecture.md` promises: after a partition between a node and Redis heals, no
/// read on that node returns a value that another node replaced during the partition later
/// than this (a subscription attempt or a liveness ping in flight at the heal, then at most
/// the back-off's cap before the re-subscription that clears the local tiers).
const HEAL_BOUND: Duration = Duration::from_millis(
    (CONNECT_TIMEOUT.as_millis()
        + COMMAND_TIMEOUT.as_millis()
        + RESUBSCRIBE_BACKOFF_CAP.as_millis()) as u64,
);
/// Allowance on top of the bound: clearing the local tiers, and scheduling on two cores
/// shared by five processes and the rest of the test suite.
const SLACK: Duration = Duration::from_millis(750);
/// Allowance on top of the command timeout for one call (the disk tier's share of a write,
/// scheduling).
const CALL_SLACK: Duration = Duration::from_millis(500);
/// A node that does not answer one command in this long is hung.
const ANSWER_DEADLINE: Duration = Duration::from_secs(20);
/// Keys node A keeps rewriting and the other nodes hold.
const KEYS: usize = 32;

// ------------------------------------------------------------------------------------------
// Whether namespaces can be made here.

fn redis_binary() -> PathBuf {
    std::env::var_os("NFCS_REDIS_SERVER")
        .map_or_else(|| PathBuf::from("redis-server"), PathBuf::from)
}

/// Why namespaces cannot be used here, or `None` when they can.
fn netns_unavailable() -> Option<String> {
    let redis = Command::new(redis_binary())
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !redis.is_ok_and(|status| status.success()) {
        return Some("no redis-server binary".to_owned());
    }
    let probe = format!("{NS_PREFIX}{}probe{}", std::process::id(), next_run());
    match Command::new("ip").args(["netns", "add", &probe]).output() {
        Err(error) => Some(format!("`ip` cannot be run: {error}")),
        Ok(output) if !output.status.success() => Some(format!(
            "`ip netns add` failed (root is needed): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Ok(_) => {
            remove_namespace(&probe);
            None
        }
    }
}

/// `true` when the test may run; `false` after a notice; panics when namespaces are required.
fn netns_or_skip(test: &str) -> bool {
    let Some(reason) = netns_unavailable() else {
        return true;
    };
    assert!(
        !std::env::var(REQUIRE_NETNS).is_ok_and(|value| value == "1"),
        "{test}: {REQUIRE_NETNS}=1 but network namespaces cannot be made here: {reason}"
    );
    eprintln!(
        "notice: {test} skipped: network namespaces cannot be made here ({reason}; set {REQUIRE_NETNS}=1 to make this an error)"
    );
    false
}

fn next_run() -> u32 {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    RUNS.fetch_add(1, Ordering::Relaxed)
}

// ------------------------------------------------------------------------------------------
// Namespaces, links and processes.

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("`ip` runs");
    assert!(
        output.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

/// Kills what still runs in the namespace (processes these tests started there), then removes
/// it, and with it the veth ends inside.
fn remove_namespace(name: &str) {
    if let Ok(output) = Command::new("ip").args(["netns", "pids", name]).output() {
        for pid in String::from_utf8_lossy(&output.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
    let _ = Command::new("ip")
        .args(["netns", "del", name])
        .stderr(Stdio::null())
        .status();
}

/// Removes the namespaces of test processes that no longer exist (killed before their guards
/// ran).
fn remove_stale_namespaces() {
    let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists() {
            remove_namespace(name);
        }
    }
}

/// Removes its namespaces when dropped, even when the test fails.
struct Namespaces(Vec<String>);

impl Namespaces {
    fn add(&mut self, name: String) -> String {
        ip(&["netns", "add", &name]);
        self.0.push(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        name
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.0 {
            remove_namespace(name);
        }
    }
}

/// What a node (or the proxy) answered, and how long the call took in the node.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Hit(u64),
    Miss,
    Ok(String),
    /// The error's variant (`Unavailable`, `Backend`, ...) and its text.
    Err(String, String),
}

#[derive(Debug, Clone)]
struct Answer {
    outcome: Outcome,
    took: Duration,
}

impl Answer {
    fn parse(line: &str) -> Answer {
        let mut parts = line.splitn(3, ' ');
        let kind = parts.next().unwrap_or_default();
        let micros: u64 = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
        let rest = parts.next().unwrap_or_default().to_owned();
        let outcome = match kind {
            "hit" => Outcome::Hit(rest.parse().expect("a hit carries a number")),
            "miss" => Outcome::Miss,
            "ok" => Outcome::Ok(rest),
            "err" => {
                let (variant, text) = rest.split_once(' ').unwrap_or((&rest, ""));
                Outcome::Err(variant.to_owned(), text.to_owned())
            }
            other => panic!("an answer of unknown kind {other:?}: {line}"),
        };
        Answer {
            outcome,
            took: Duration::from_micros(micros),
        }
    }

    fn ok(&self) -> &str {
        match &self.outcome {
            Outcome::Ok(rest) => rest,
            other => panic!("expected ok, got {other:?}"),
        }
    }
}

/// A process of this binary in a namespace, driven through its standard input and output;
/// killed when dropped.
struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    answers: mpsc::Receiver<String>,
    stderr: PathBuf,
}

impl Proc {
    fn spawn(name: &str, namespace: &str, role: &str, env: &[(&str, String)], dir: &Path) -> Proc {
        let stderr = dir.join(format!("{name}.stderr"));
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", namespace])
            .arg(std::env::current_exe().expect("the test binary"))
            .args([
                "netfaults::netfault_process",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("`ip netns exec` starts");
        let stdout = child.stdout.take().unwrap();
        let (sender, answers) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The test harness prints its own text (the first answer follows its
                // "test ... " on the same line); answers are marked.
                if let Some((_, answer)) = line.split_once("@@ ")
                    && sender.send(answer.to_owned()).is_err()
                {
                    break;
                }
            }
        });
        let mut process = Proc {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            answers,
            stderr,
        };
        let ready = process.answer("start");
        assert_eq!(ready.ok(), "ready", "{name} started");
        process
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn answer(&mut self, command: &str) -> Answer {
        match self.answers.recv_timeout(ANSWER_DEADLINE) {
            Ok(line) => Answer::parse(&line),
            Err(error) => panic!(
                "{} did not answer `{command}` within {ANSWER_DEADLINE:?} ({error}): hung or gone; its stderr:\n{}",
                self.name,
                self.stderr_text()
            ),
        }
    }

    /// Sends one command and waits for its answer (at most [`ANSWER_DEADLINE`]).
    fn call(&mut self, command: &str) -> Answer {
        let stdin = self.stdin.as_mut().expect("not finished");
        if let Err(error) = writeln!(stdin, "{command}").and_then(|()| stdin.flush()) {
            panic!(
                "{} is gone ({error}); its stderr:\n{}",
                self.name,
                self.stderr_text()
            );
        }
        self.answer(command)
    }

    /// Asks the process to exit; returns its exit status and what it wrote to stderr.
    fn finish(&mut self) -> (ExitStatus, String) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "quit");
        }
        let deadline = Instant::now() + ANSWER_DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {ANSWER_DEADLINE:?} of `quit`",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        (status, self.stderr_text())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child killed when dropped (the Redis server).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `name=value` out of a line of counters.
fn stat(counters: &str, name: &str) -> u64 {
    counters
        .split_whitespace()
        .find_map(|part| part.strip_prefix(name)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {counters}"))
}

/// What ends a phase of the latency and loss test.
enum Until {
    Calls,
    TierErrors,
    Proxy(&'static str, u64),
    Unsubscribed,
}

/// A node's status: whether its invalidation subscription is up, its Redis tier's state.
#[derive(Debug)]
struct Status {
    subscribed: bool,
    /// When the subscription last went down or up (Unix ms).
    changed: u64,
    redis_running: bool,
    tier_errors: u64,
}

fn status(node: &Mutex<Proc>) -> Status {
    let answer = call(node, "status");
    let text = answer.ok().to_owned();
    let field = |name: &str| {
        text.split_whitespace()
            .find_map(|part| part.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .to_owned()
    };
    Status {
        subscribed: field("subscribed") == "1",
        changed: field("changed").parse().unwrap(),
        redis_running: field("redis") == "running",
        tier_errors: field("tier_errors").parse().unwrap(),
    }
}

/// Sends `command` to `node`, then hands the node over to a thread waiting for it, if any: the
/// load threads call in a loop, and an unfair lock would starve the status polls that decide
/// when a phase ends (delaying them by seconds).
fn call(node: &Mutex<Proc>, command: &str) -> Answer {
    let mut process = node.lock();
    let answer = process.call(command);
    MutexGuard::unlock_fair(process);
    answer
}

/// Waits until `condition` holds, at most `limit`; returns when it first held, or `None`.
fn wait_for(limit: Duration, mut condition: impl FnMut() -> bool) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return Some(Instant::now());
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_until(what: &str, limit: Duration, condition: impl FnMut() -> bool) -> Instant {
    wait_for(limit, condition)
        .unwrap_or_else(|| panic!("timed out after {limit:?} waiting for {what}"))
}

struct NodeSpec {
    /// One letter: the namespace's and the link's suffix.
    name: char,
    /// Reaches Redis through the fault proxy rather than directly.
    via_proxy: bool,
}

/// The namespaces, links and processes of one test. Fields drop in order: nodes and the proxy
/// are killed, then Redis, then the namespaces are removed.
struct Topology {
    nodes: Vec<Mutex<Proc>>,
    proxy: Option<Mutex<Proc>>,
    _redis: Killed,
    redis_ns: String,
    names: Vec<char>,
    _namespaces: Namespaces,
    _dir: tempfile::TempDir,
}

impl Topology {
    fn start(specs: &[NodeSpec]) -> Topology {
        remove_stale_namespaces();
        let id = format!("{}x{}", std::process::id(), next_run());
        let dir = tempfile::tempdir().unwrap();
        let mut namespaces = Namespaces(Vec::new());
        let redis_ns = namespaces.add(format!("{NS_PREFIX}{id}r"));
        let mut node_namespaces = Vec::new();
        for (index, spec) in specs.iter().enumerate() {
            let namespace = namespaces.add(format!("{NS_PREFIX}{id}{}", spec.name));
            let subnet = index + 1;
            let redis_end = format!("to-{}", spec.name);
            ip(&[
                "link", "add", "name", "to-redis", "netns", &namespace, "type", "veth", "peer",
                "name", &redis_end, "netns", &redis_ns,
            ]);
            ip(&[
                "-n",
                &namespace,
                "addr",
                "add",
                &format!("10.77.{subnet}.2/24"),
                "dev",
                "to-redis",
            ]);
            ip(&[
                "-n",
                &redis_ns,
                "addr",
                "add",
                &format!("10.77.{subnet}.1/24"),
                "dev",
                &redis_end,
            ]);
            ip(&["-n", &namespace, "link", "set", "to-redis", "up"]);
            ip(&["-n", &redis_ns, "link", "set", &redis_end, "up"]);
            node_namespaces.push(namespace);
        }
        let redis_log = std::fs::File::create(dir.path().join("redis.log")).unwrap();
        let redis = Killed(
            Command::new("ip")
                .args(["netns", "exec", &redis_ns])
                .arg(redis_binary())
                .args([
                    "--port",
                    "6379",
                    "--bind",
                    "0.0.0.0",
                    "--protected-mode",
                    "no",
                ])
                .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
                .arg("--dir")
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(redis_log.try_clone().unwrap())
                .stderr(redis_log)
                .spawn()
                .expect("redis-server starts"),
        );
        let proxy = specs.iter().any(|spec| spec.via_proxy).then(|| {
            Mutex::new(Proc::spawn(
                "proxy",
                &redis_ns,
                "proxy",
                &[
                    ("NFCS_NETFAULTS_LISTEN", "0.0.0.0:7000".to_owned()),
                    ("NFCS_NETFAULTS_UPSTREAM", "127.0.0.1:6379".to_owned()),
                ],
                dir.path(),
            ))
        });
        let mut nodes = Vec::new();
        for ((index, spec), namespace) in specs.iter().enumerate().zip(&node_namespaces) {
            let port = if spec.via_proxy { 7000 } else { 6379 };
            let url = format!("redis://10.77.{}.1:{port}", index + 1);
            let disk = dir.path().join(format!("disk-{}", spec.name));
            nodes.push(Mutex::new(Proc::spawn(
                &format!("node {}", spec.name.to_ascii_uppercase()),
                namespace,
                "node",
                &[
                    ("NFCS_NETFAULTS_REDIS", url),
                    ("NFCS_NETFAULTS_DISK", disk.display().to_string()),
                    ("NFCS_NETFAULTS_NAME", format!("node-{}", spec.name)),
                ],
                dir.path(),
            )));
        }
        let topology = Topology {
            nodes,
            proxy,
            _redis: redis,
            redis_ns,
            names: specs.iter().map(|spec| spec.name).collect(),
            _namespaces: namespaces,
            _dir: dir,
        };
        for node in &topology.nodes {
            wait_until(
                "every node to connect and subscribe",
                Duration::from_secs(20),
                || {
                    let status = status(node);
                    status.subscribed && status.redis_running
                },
            );
        }
        topology
    }

    fn link(&self, node: usize, up: bool) {
        let end = format!("to-{}", self.names[node]);
        ip(&[
            "-n",
            &self.redis_ns,
            "link",
            "set",
            &end,
            if up { "up" } else { "down" },
        ]);
    }

    /// Sends a command to the proxy; returns its counters (`connections=.. chunks=..`).
    fn proxy(&self, command: &str) -> String {
        let proxy = self.proxy.as_ref().expect("a proxy");
        call(proxy, command).ok().to_owned()
    }

    /// Every process exits when asked, with success, and none printed a panic.
    fn finish(&self) -> Vec<String> {
        let mut reports = Vec::new();
        for process in self.nodes.iter().chain(&self.proxy) {
            let mut process = process.lock();
            let (status, stderr) = process.finish();
            assert!(
                !stderr.contains("panicked"),
                "{} panicked; its stderr:\n{stderr}",
                process.name
            );
            assert!(
                status.success(),
                "{} exited with {status}; its stderr:\n{stderr}",
                process.name
            );
            reports.push(format!("{}: {status}", process.name));
        }
        reports
    }
}

// ------------------------------------------------------------------------------------------
// The processes: a node and the fault proxy.

/// A process of these tests (a node, the proxy), when started by them with `NFCS_NETFAULTS_ROLE`;
/// run any other way, it does nothing.
#[test]
#[ignore = "a process of the netfaults tests: they start it inside a network namespace"]
fn netfault_process() {
    match std::env::var(ROLE).as_deref() {
        Ok("node") => node_process(),
        Ok("proxy") => proxy_process(),
        _ => {}
    }
}

fn answer_line(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "@@ {line}").unwrap();
    out.flush().unwrap();
}

fn node_process() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // A node as deployed: the defaults, memory, disk and Redis with cross-node invalidation;
    // the semantic cache is off (it needs the model files).
    let config = CacheConfig::from_toml_str(&format!(
        "name = \"{}\"\n[memory]\nmax_size = \"64MiB\"\n[disk]\ndirectory = \"{}\"\nmax_size = \"64MiB\"\n\
         [redis]\nurl = \"{}\"\ncommand_timeout_ms = {}\n[semantic]\nenabled = false\n",
        var("NFCS_NETFAULTS_NAME"),
        var("NFCS_NETFAULTS_DISK"),
        var("NFCS_NETFAULTS_REDIS"),
        COMMAND_TIMEOUT.as_millis()
    ))
    .unwrap();
    let manager = runtime
        .block_on(NFCSCacheManager::from_config(config))
        .unwrap();
    // When the subscription last went down or up, by the wall clock (the driver's too),
    // watched every 2 ms: the driver times B's noticing by it rather than by its own polls.
    let changed = Arc::new(AtomicU64::new(0));
    let (redis, watched) = (
        manager.redis().expect("a Redis tier").clone(),
        Arc::clone(&changed),
    );
    runtime.spawn(async move {
        let mut was = redis.is_subscribed();
        loop {
            tokio::time::sleep(Duration::from_millis(2)).await;
            if redis.is_subscribed() != was {
                was = !was;
                watched.store(unix_ms(), Ordering::Relaxed);
            }
        }
    });
    answer_line("ok 0 ready");
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        if line == "quit" {
            break;
        }
        let started = Instant::now();
        let (kind, rest) = runtime.block_on(execute(&manager, &changed, &line));
        let took = started.elapsed().as_micros();
        answer_line(&format!("{kind} {took} {}", rest.replace('\n', " ")));
    }
    drop(manager);
    runtime.shutdown_timeout(Duration::from_secs(2));
}

fn typed(error: &CacheError) -> (&'static str, String) {
    let debug = format!("{error:?}");
    let variant: String = debug
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    ("err", format!("{variant} {error}"))
}

/// Milliseconds since the Unix epoch.
fn unix_ms() -> u64 {
    let since = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH);
    since.map_or(0, |since| since.as_millis() as u64)
}

async fn execute(
    manager: &NFCSCacheManager,
    changed: &AtomicU64,
    line: &str,
) -> (&'static str, String) {
    let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
    match verb {
        "get" => match manager.get::<u64>(rest).await {
            Ok(Some(value)) => ("hit", value.to_string()),
            Ok(None) => ("miss", String::new()),
            Err(error) => typed(&error),
        },
        "set" => {
            let (key, value) = rest.split_once(' ').expect("set KEY VALUE");
            let value: u64 = value.parse().expect("a number");
            match manager.set(key, &value, None).await {
                Ok(()) => ("ok", String::new()),
                Err(error) => typed(&error),
            }
        }
        "del" => match manager.delete(rest).await {
            Ok(removed) => ("ok", removed.to_string()),
            Err(error) => typed(&error),
        },
        "inv" => match manager.invalidate_pattern(rest).await {
            Ok(removed) => ("ok", removed.to_string()),
            Err(error) => typed(&error),
        },
        "local" => {
            let memory = manager.memory().expect("a memory tier");
            ("ok", u8::from(memory.contains_key(rest)).to_string())
        }
        "status" => {
            let redis = manager.redis().expect("a Redis tier");
            let state = manager
                .tier_status()
                .into_iter()
                .find(|status| status.name == "redis")
                .map(|status| match status.state {
                    TierState::Running => "running",
                    TierState::Unavailable { .. } => "unavailable",
                    _ => "other",
                })
                .unwrap_or("none");
            let stats = manager.stats();
            (
                "ok",
                format!(
                    "subscribed={} changed={} redis={state} remote={} tier_errors={}",
                    u8::from(redis.is_subscribed()),
                    changed.load(Ordering::Relaxed),
                    stats.remote_invalidations,
                    stats.tier_errors
                ),
            )
        }
        other => ("err", format!("Unknown command {other}")),
    }
}

/// The proxy's fault settings, changed by its commands while connections run.
#[derive(Default)]
struct Faults {
    delay_ms: AtomicU64,
    stall_permille: AtomicU64,
    stall_ms: AtomicU64,
    close_permille: AtomicU64,
    blackhole: AtomicBool,
    connections: AtomicU64,
    chunks: AtomicU64,
    stalls: AtomicU64,
    closed: AtomicU64,
}

/// A step of xorshift64: the proxy's faults are drawn from a seeded sequence per connection.
fn chance(state: &mut u64, permille: u64) -> bool {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    permille > 0 && *state % 1000 < permille
}

/// Forwards `from` to `to`, each chunk `delay` after it arrived, stalled, held or cut as the
/// faults say; the reading side runs ahead in its own thread, so a delay is latency, not a
/// bandwidth limit.
fn pump(from: TcpStream, mut to: TcpStream, faults: &Faults, mut seed: u64) {
    let (sender, chunks) = mpsc::channel::<(Instant, Vec<u8>)>();
    let mut reader = from.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buffer = vec![0_u8; 16 * 1024];
        while let Ok(read) = reader.read(&mut buffer) {
            if read == 0
                || sender
                    .send((Instant::now(), buffer[..read].to_vec()))
                    .is_err()
            {
                break;
            }
        }
    });
    while let Ok((arrived, chunk)) = chunks.recv() {
        faults.chunks.fetch_add(1, Ordering::Relaxed);
        let due = arrived + Duration::from_millis(faults.delay_ms.load(Ordering::Relaxed));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if chance(&mut seed, faults.stall_permille.load(Ordering::Relaxed)) {
            faults.stalls.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(
                faults.stall_ms.load(Ordering::Relaxed),
            ));
        }
        while faults.blackhole.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
        if chance(&mut seed, faults.close_permille.load(Ordering::Relaxed)) {
            faults.closed.fetch_add(1, Ordering::Relaxed);
            break;
        }
        if to.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

fn proxy_process() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set"));
    let faults: &'static Faults = Box::leak(Box::default());
    let listener = TcpListener::bind(var("NFCS_NETFAULTS_LISTEN")).unwrap();
    let upstream = var("NFCS_NETFAULTS_UPSTREAM");
    std::thread::spawn(move || {
        for (index, client) in listener.incoming().enumerate() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            faults.connections.fetch_add(1, Ordering::Relaxed);
            let seed = 0x9e37_79b9_7f4a_7c15_u64 ^ (index as u64 + 1).wrapping_mul(0x2545_f491);
            let (client_in, server_out) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || pump(client_in, server_out, faults, seed));
            std::thread::spawn(move || pump(server, client, faults, seed.rotate_left(17)));
        }
    });
    answer_line("ok 0 ready");
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let words: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|word| word.parse().expect("a number"))
            .collect();
        let set = |setting: &AtomicU64, value: u64| setting.store(value, Ordering::Relaxed);
        match line.split_whitespace().next().unwrap_or_default() {
            "quit" => break,
            "delay" => set(&faults.delay_ms, words[0]),
            "stall" => {
                set(&faults.stall_permille, words[0]);
                set(&faults.stall_ms, words[1]);
            }
            "close" => set(&faults.close_permille, words[0]),
            "blackhole" => faults.blackhole.store(words[0] == 1, Ordering::Relaxed),
            "clear" => {
                for setting in [
                    &faults.delay_ms,
                    &faults.stall_permille,
                    &faults.close_permille,
                ] {
                    set(setting, 0);
                }
                faults.blackhole.store(false, Ordering::Relaxed);
            }
            "stats" => {}
            other => panic!("unknown proxy command {other}"),
        }
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        answer_line(&format!(
            "ok 0 connections={} chunks={} stalls={} closed={}",
            load(&faults.connections),
            load(&faults.chunks),
            load(&faults.stalls),
            load(&faults.closed)
        ));
    }
}

// ------------------------------------------------------------------------------------------
// The writer's history and the readers' observations.

/// One operation of the writer (node A) on one key: the value written (`None`: deleted) and
/// when its call returned successfully (`None`: it failed, so whether it happened is unknown).
#[derive(Debug, Clone)]
struct WriterOp {
    key: usize,
    value: Option<u64>,
    done: Option<Instant>,
}

/// A read of key `key` by another node: when the driver sent it and what came back.
#[derive(Debug, Clone)]
struct Observation {
    key: usize,
    start: Instant,
    answer: Answer,
}

/// Every call a node made, by kind, for the timeout checks.
#[derive(Debug, Clone)]
struct Call {
    verb: &'static str,
    start: Instant,
    answer: Answer,
}

/// The writer's operations per key, in order.
struct History(Vec<Vec<WriterOp>>);

impl History {
    fn new(writes: &[WriterOp]) -> History {
        let mut per_key = vec![Vec::new(); KEYS];
        for write in writes {
            per_key[write.key].push(write.clone());
        }
        History(per_key)
    }

    /// When the value `read` returned had been replaced (the first later operation on the key
    /// that returned), if that was before the read started.
    fn superseded(&self, read: &Observation) -> Option<Instant> {
        let Outcome::Hit(value) = read.answer.outcome else {
            return None;
        };
        let writes = &self.0[read.key];
        let index = writes
            .iter()
            .position(|write| write.value == Some(value))
            .unwrap_or_else(|| panic!("k{} read as {value}, which nobody wrote", read.key));
        let replaced = writes[index + 1..].iter().find_map(|write| write.done)?;
        (replaced < read.start).then_some(replaced)
    }
}

/// Node A's load: sets of the shared keys (values from one counter), a deletion every eighth
/// operation and a pattern invalidation every 97th, until `stop`.
fn write_load(
    node: &Mutex<Proc>,
    stop: &AtomicBool,
    ops: &AtomicU64,
    counter: &mut u64,
) -> Vec<WriterOp> {
    let mut writes = Vec::new();
    let mut round = 0_u64;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let key = (round as usize) % KEYS;
        if round.is_multiple_of(97) {
            let answer = call(node, "inv k1*");
            let done = matches!(answer.outcome, Outcome::Ok(_)).then(Instant::now);
            for key in (0..KEYS).filter(|key| key.to_string().starts_with('1')) {
                writes.push(WriterOp {
                    key,
                    value: None,
                    done,
                });
            }
        } else if round.is_multiple_of(8) {
            let answer = call(node, &format!("del k{key}"));
            let done = matches!(answer.outcome, Outcome::Ok(_)).then(Instant::now);
            writes.push(WriterOp {
                key,
                value: None,
                done,
            });
        } else {
            *counter += 1;
            let answer = call(node, &format!("set k{key} {counter}"));
            let done = matches!(answer.outcome, Outcome::Ok(_)).then(Instant::now);
            writes.push(WriterOp {
                key,
                value: Some(*counter),
                done,
            });
        }
        ops.fetch_add(1, Ordering::Relaxed);
    }
    writes
}

/// A reader's load: reads of the shared keys in turn and, with `own_writes`, every fifth call
/// a write, deletion or pattern invalidation of keys of its own (`bk*`), until `stop`.
fn read_load(
    node: &Mutex<Proc>,
    stop: &AtomicBool,
    calls: &AtomicU64,
    own_writes: bool,
) -> (Vec<Observation>, Vec<Call>) {
    let (mut reads, mut others) = (Vec::new(), Vec::new());
    let mut round = 0_u64;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let start = Instant::now();
        if own_writes && round.is_multiple_of(5) {
            let own = (round / 5) % 20;
            let (verb, command) = match (round / 5) % 3 {
                0 => ("set", format!("set bk{own} {round}")),
                1 => ("del", format!("del bk{own}")),
                _ => ("inv", "inv bk1*".to_owned()),
            };
            let answer = call(node, &command);
            others.push(Call {
                verb,
                start,
                answer,
            });
        } else {
            let key = (round as usize) % KEYS;
            let answer = call(node, &format!("get k{key}"));
            reads.push(Observation { key, start, answer });
        }
        calls.fetch_add(1, Ordering::Relaxed);
    }
    (reads, others)
}

/// Writes every shared key once through node A, then has `readers` read them until each holds
/// all of them in memory.
fn seed_keys(writer: &Mutex<Proc>, readers: &[&Mutex<Proc>], counter: &mut u64) -> Vec<WriterOp> {
    let mut writes = Vec::new();
    for key in 0..KEYS {
        *counter += 1;
        let answer = call(writer, &format!("set k{key} {counter}"));
        assert_eq!(answer.outcome, Outcome::Ok(String::new()), "seeding k{key}");
        writes.push(WriterOp {
            key,
            value: Some(*counter),
            done: Some(Instant::now()),
        });
    }
    for reader in readers {
        wait_until(
            "a reader to hold every key in memory",
            Duration::from_secs(20),
            || {
                let mut reader = reader.lock();
                (0..KEYS).all(|key| {
                    reader.call(&format!("get k{key}"));
                    reader.call(&format!("local k{key}")).ok() == "1"
                })
            },
        );
    }
    writes
}

fn max_took(calls: impl Iterator<Item = Duration>) -> Duration {
    calls.max().unwrap_or_default()
}

/// Checks that every error is one the Redis tier documents for a fault (not a corrupt value,
/// not a decoding error); returns how many there were.
fn typed_errors<'a>(answers: impl Iterator<Item = &'a Answer>) -> u64 {
    let mut errors = 0;
    for answer in answers {
        if let Outcome::Err(variant, text) = &answer.outcome {
            assert!(
                variant == "Unavailable" || variant == "Backend",
                "an error that is not a tier fault: {variant} {text}"
            );
            errors += 1;
        }
    }
    errors
}

// ------------------------------------------------------------------------------------------
// Scenarios.

/// Scenarios 1, 2 and 4: node B is cut off from Redis (its veth taken down on the Redis side)
/// while node A keeps rewriting, deleting and invalidating the keys B holds in memory and node
/// C reads them; then the link comes back. B serves its local copies during the partition (a
/// node cannot tell which are stale; reads never fail because a tier is down), but within
/// `HEAL_BOUND` of the heal none survives; C, never cut off, is never staler than that either.
/// Every call B makes during the partition returns within the command timeout (plus
/// `CALL_SLACK`), as a value, a miss or a typed error; no node panics.
#[test]
fn a_partitioned_node_serves_no_stale_read_past_the_bound_after_the_heal() {
    if !netns_or_skip("netfaults partition") {
        return;
    }
    let topology = Topology::start(&[
        NodeSpec {
            name: 'a',
            via_proxy: false,
        },
        NodeSpec {
            name: 'b',
            via_proxy: false,
        },
        NodeSpec {
            name: 'c',
            via_proxy: false,
        },
    ]);
    let [a, b, c] = &topology.nodes[..] else {
        unreachable!()
    };
    let mut counter = 0_u64;
    let mut writes = seed_keys(a, &[b, c], &mut counter);
    let stop = AtomicBool::new(false);
    let (a_ops, b_calls, c_calls) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let (partitioned, noticed, healed, resubscribed, (b_reads, b_others), (c_reads, _)) =
        std::thread::scope(|scope| {
            let writer = scope.spawn(|| write_load(a, &stop, &a_ops, &mut counter));
            let reader_b = scope.spawn(|| read_load(b, &stop, &b_calls, true));
            let reader_c = scope.spawn(|| read_load(c, &stop, &c_calls, false));
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let progress = || {
                    (
                        a_ops.load(Ordering::Relaxed),
                        b_calls.load(Ordering::Relaxed),
                        c_calls.load(Ordering::Relaxed),
                    )
                };
                let (a0, b0, c0) = progress();
                wait_until("load before the partition", Duration::from_secs(30), || {
                    let (a1, b1, c1) = progress();
                    a1 >= a0 + 300 && b1 >= b0 + 300 && c1 >= c0 + 300
                });
                let (partitioned, partitioned_ms) = (Instant::now(), unix_ms());
                topology.link(1, false);
                let (a0, b0, _) = progress();
                // B notices the lost subscription by itself (nothing closes its connection).
                let noticed =
                    wait_for(Duration::from_secs(10), || !status(b).subscribed).map(|_| {
                        Duration::from_millis(status(b).changed.saturating_sub(partitioned_ms))
                    });
                wait_until("load during the partition", Duration::from_secs(30), || {
                    let (a1, b1, _) = progress();
                    a1 >= a0 + 4 * KEYS as u64 && b1 >= b0 + 200
                });
                let (healed, healed_ms) = (Instant::now(), unix_ms());
                topology.link(1, true);
                wait_until("B to subscribe again", Duration::from_secs(20), || {
                    status(b).subscribed
                });
                let resubscribed =
                    Duration::from_millis(status(b).changed.saturating_sub(healed_ms));
                // Watch well past the bound, and until B has read every key twice since.
                let (_, b0, _) = progress();
                wait_until("the watch past the bound", Duration::from_secs(30), || {
                    healed.elapsed() > HEAL_BOUND + SLACK + Duration::from_secs(1)
                        && progress().1 >= b0 + 2 * KEYS as u64
                });
                (partitioned, noticed, healed, resubscribed)
            }));
            stop.store(true, Ordering::Relaxed);
            let (writer, reader_b, reader_c) = (writer.join(), reader_b.join(), reader_c.join());
            let (partitioned, noticed, healed, resubscribed) =
                result.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            writes.extend(writer.unwrap());
            (
                partitioned,
                noticed,
                healed,
                resubscribed,
                reader_b.unwrap(),
                reader_c.unwrap(),
            )
        });
    let reports = topology.finish();
    let history = History::new(&writes);

    // Staleness, per read: B's past the heal (for values replaced before the heal, measured
    // from the heal), outside the partition from the replacement; C's from the replacement.
    let mut during_partition = (0_u64, Duration::ZERO);
    // A value replaced during the partition, read after the heal, survived it by `start -
    // healed`; a value replaced after the heal is stale by `start - replaced`, as anywhere.
    let mut survived = Duration::ZERO;
    let (mut b_before, mut b_after) = (Duration::ZERO, Duration::ZERO);
    for read in &b_reads {
        let Some(replaced) = history.superseded(read) else {
            continue;
        };
        let stale = read.start - replaced;
        if read.start < partitioned {
            b_before = b_before.max(stale);
        } else if read.start < healed {
            during_partition.0 += 1;
            during_partition.1 = during_partition.1.max(stale);
        } else if replaced < healed {
            survived = survived.max(read.start - healed);
        } else {
            // Replaced after the heal, before B had re-subscribed (or, later, raced with the
            // announcement): still part of the recovery.
            b_after = b_after.max(stale);
        }
    }
    let c_stale = c_reads
        .iter()
        .filter_map(|read| {
            history
                .superseded(read)
                .map(|replaced| read.start - replaced)
        })
        .max()
        .unwrap_or_default();
    let in_partition = |start: Instant| start >= partitioned && start < healed;
    let b_partition_calls: Vec<(&str, &Answer)> = b_reads
        .iter()
        .filter(|read| in_partition(read.start))
        .map(|read| ("get", &read.answer))
        .chain(
            b_others
                .iter()
                .filter(|call| in_partition(call.start))
                .map(|call| (call.verb, &call.answer)),
        )
        .collect();
    let mut summary = String::new();
    for verb in ["get", "set", "del", "inv"] {
        let calls: Vec<&Answer> = b_partition_calls
            .iter()
            .filter(|(kind, _)| *kind == verb)
            .map(|(_, answer)| *answer)
            .collect();
        let errors = typed_errors(calls.iter().copied());
        let slowest = max_took(calls.iter().map(|answer| answer.took));
        let _ = write!(
            summary,
            " {verb}: {} calls, {errors} errors, slowest {slowest:?};",
            calls.len()
        );
        assert!(
            slowest <= COMMAND_TIMEOUT + CALL_SLACK,
            "B's {verb} took {slowest:?} during the partition, over the {COMMAND_TIMEOUT:?} command timeout"
        );
    }
    let slowest_b = max_took(
        b_reads
            .iter()
            .map(|read| read.answer.took)
            .chain(b_others.iter().map(|call| call.answer.took)),
    );
    let b_errors = typed_errors(b_others.iter().map(|call| &call.answer));
    println!(
        "netfaults partition: {} writes by A, {} reads and {} other calls by B ({b_errors} typed errors), {} reads by C; \
         partition {:?}, B noticed after {:?}, re-subscribed {:?} after the heal; \
         stale reads on B during the partition: {} (the stalest {:?}); a value replaced during the partition read on B \
         {survived:?} after the heal at the latest; a value replaced after the heal read on B {b_after:?} after it; \
         staleness on B before the partition {b_before:?}, on C {c_stale:?}; bound {HEAL_BOUND:?} \
         (+{SLACK:?}); B's calls during the partition:{summary} slowest B call overall {slowest_b:?}; {}",
        writes.len(),
        b_reads.len(),
        b_others.len(),
        c_reads.len(),
        healed - partitioned,
        noticed,
        resubscribed,
        during_partition.0,
        during_partition.1,
        reports.join(", "),
    );
    assert!(
        noticed.is_some(),
        "B did not notice within 10 s that its invalidation subscription was cut off, so nothing will make it drop what it missed"
    );
    assert!(
        survived <= HEAL_BOUND + SLACK,
        "B served a value replaced during the partition {survived:?} after the heal (bound {HEAL_BOUND:?})"
    );
    assert!(
        b_after <= HEAL_BOUND + SLACK,
        "B read a value {b_after:?} after another node had replaced it after the heal"
    );
    assert!(
        b_before <= HEAL_BOUND + SLACK,
        "B was {b_before:?} stale before the partition"
    );
    assert!(
        c_stale <= HEAL_BOUND + SLACK,
        "C, never cut off, was {c_stale:?} stale"
    );
    assert!(
        slowest_b <= COMMAND_TIMEOUT + CALL_SLACK,
        "a call on B took {slowest_b:?}"
    );
}

/// Scenarios 3 and 4: node B reaches Redis through the fault proxy, which adds latency below
/// and above the command timeout, loses chunks (stalls of a retransmission timeout), closes
/// connections and blackholes, while node A writes the keys B reads. Every call on B returns
/// within the command timeout (plus `CALL_SLACK`) with a value, a miss or a typed tier error
/// (`Unavailable`, `Backend`: never a wrong value or a decoding error); once the faults are
/// cleared B is coherent again; no process panics.
#[test]
fn latency_and_loss_through_a_fault_proxy_give_answers_or_typed_errors_in_time() {
    if !netns_or_skip("netfaults latency and loss") {
        return;
    }
    let topology = Topology::start(&[
        NodeSpec {
            name: 'a',
            via_proxy: false,
        },
        NodeSpec {
            name: 'b',
            via_proxy: true,
        },
    ]);
    let [a, b] = &topology.nodes[..] else {
        unreachable!()
    };
    let mut counter = 0_u64;
    let mut writes = seed_keys(a, &[b], &mut counter);
    let stop = AtomicBool::new(false);
    let (a_ops, b_calls) = (AtomicU64::new(0), AtomicU64::new(0));
    // Each phase: its proxy settings, and what must have happened before it ends (besides 150
    // calls by B): a Redis error on B, stalls or closings by the proxy, B noticing that its
    // subscription went silent.
    let phases = [
        ("latency 20 ms each way", vec!["delay 20"], Until::Calls),
        (
            "latency 150 ms each way (over the timeout)",
            vec!["delay 150"],
            Until::TierErrors,
        ),
        (
            "loss: 5 % of chunks stalled 300 ms",
            vec!["delay 2", "stall 50 300"],
            Until::Proxy("stalls", 10),
        ),
        (
            "connections closed at 1 % of chunks",
            vec!["stall 0 0", "close 10"],
            Until::Proxy("closed", 3),
        ),
        (
            "blackhole",
            vec!["close 0", "blackhole 1"],
            Until::Unsubscribed,
        ),
    ];
    let (marks, cleared, coherent, (b_reads, b_others)) = std::thread::scope(|scope| {
        let writer = scope.spawn(|| write_load(a, &stop, &a_ops, &mut counter));
        let reader_b = scope.spawn(|| read_load(b, &stop, &b_calls, true));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut marks = Vec::new();
            for (name, commands, until) in &phases {
                let b0 = b_calls.load(Ordering::Relaxed);
                let errors0 = status(b).tier_errors;
                let proxy0 = topology.proxy("stats");
                for command in commands {
                    topology.proxy(command);
                }
                marks.push((*name, Instant::now()));
                wait_until(name, Duration::from_secs(30), || {
                    b_calls.load(Ordering::Relaxed) >= b0 + 150
                        && match until {
                            Until::Calls => true,
                            Until::TierErrors => status(b).tier_errors > errors0,
                            Until::Proxy(counter, more) => {
                                stat(&topology.proxy("stats"), counter)
                                    >= stat(&proxy0, counter) + more
                            }
                            Until::Unsubscribed => !status(b).subscribed,
                        }
                });
            }
            topology.proxy("clear");
            let cleared = Instant::now();
            // Healthy again: subscribed and Redis running; then watched past the bound, under
            // load, as after a partition.
            let coherent = wait_until("B to be healthy again", Duration::from_secs(30), || {
                let status = status(b);
                status.subscribed && status.redis_running
            });
            let b0 = b_calls.load(Ordering::Relaxed);
            wait_until("the watch past the bound", Duration::from_secs(30), || {
                cleared.elapsed() > HEAL_BOUND + SLACK
                    && b_calls.load(Ordering::Relaxed) >= b0 + 2 * KEYS as u64
            });
            (marks, cleared, coherent)
        }));
        stop.store(true, Ordering::Relaxed);
        let (writer, reader_b) = (writer.join(), reader_b.join());
        let (marks, cleared, coherent) =
            result.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        writes.extend(writer.unwrap());
        (marks, cleared, coherent, reader_b.unwrap())
    });
    let history = History::new(&writes);
    // A value replaced before the faults were cleared, read after: it survived them by this.
    let survived = b_reads
        .iter()
        .filter(|read| read.start >= cleared)
        .filter_map(|read| {
            let replaced = history.superseded(read)?;
            Some(read.start - replaced.max(cleared))
        })
        .max()
        .unwrap_or_default();
    // After the faults, with A stopped: A's last values are what B reads.
    let mut final_reads = 0;
    for key in 0..KEYS {
        let last = history.0[key].last().unwrap();
        wait_until("B to read A's last value", Duration::from_secs(10), || {
            final_reads += 1;
            let answer = call(b, &format!("get k{key}"));
            match (answer.outcome, last.value) {
                (Outcome::Hit(value), Some(expected)) => value == expected,
                (Outcome::Miss, None) => true,
                _ => false,
            }
        });
    }
    let proxy_stats = topology.proxy("stats");
    let reports = topology.finish();
    let mut summary = String::new();
    for (index, (name, start)) in marks.iter().enumerate() {
        let end = marks.get(index + 1).map_or(cleared, |(_, next)| *next);
        let within = |at: Instant| at >= *start && at < end;
        let answers: Vec<&Answer> = b_reads
            .iter()
            .filter(|read| within(read.start))
            .map(|read| &read.answer)
            .chain(
                b_others
                    .iter()
                    .filter(|call| within(call.start))
                    .map(|call| &call.answer),
            )
            .collect();
        let errors = typed_errors(answers.iter().copied());
        let misses = answers
            .iter()
            .filter(|answer| answer.outcome == Outcome::Miss)
            .count();
        let slowest = max_took(answers.iter().map(|answer| answer.took));
        let stale = b_reads
            .iter()
            .filter(|read| within(read.start))
            .filter_map(|read| {
                history
                    .superseded(read)
                    .map(|replaced| read.start - replaced)
            })
            .max()
            .unwrap_or_default();
        let _ = write!(
            summary,
            "\n  {name}: {:?}, {} calls, {misses} misses, {errors} typed errors, slowest {slowest:?}, stalest read {stale:?}",
            end - *start,
            answers.len()
        );
        // Through latency, loss and closed connections coherence holds within the bound (a
        // closed subscription is re-made, then `Resync`); the blackhole is a partition, during
        // which local copies are served (checked after it, below).
        if *name != "blackhole" {
            assert!(
                stale <= HEAL_BOUND + SLACK,
                "{name}: B read a value {stale:?} after it had been replaced"
            );
        }
        assert!(
            slowest <= COMMAND_TIMEOUT + CALL_SLACK,
            "{name}: a call on B took {slowest:?}, over the {COMMAND_TIMEOUT:?} command timeout"
        );
    }
    println!(
        "netfaults latency and loss: {} writes by A, {} reads and {} other calls by B;{summary}\n  \
         healthy {:?} after the faults were cleared, no stale read past {survived:?} after it ({final_reads} reads \
         to see A's last values); proxy {proxy_stats}; {}",
        writes.len(),
        b_reads.len(),
        b_others.len(),
        coherent - cleared,
        reports.join(", ")
    );
    assert!(
        survived <= HEAL_BOUND + SLACK,
        "B served a value replaced during the faults {survived:?} after they were cleared (bound {HEAL_BOUND:?})"
    );
}
