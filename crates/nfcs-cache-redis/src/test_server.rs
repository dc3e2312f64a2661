//! Real `redis-server` processes for tests: started on free loopback ports, killed on drop.
//!
//! After redis-rs's own test harness: each [`RedisServer`] is a child process with its own
//! temporary directory, `--save ""` and `--appendonly no`, so nothing outlives the test. Extra
//! `redis-server` arguments ([`start_with`](RedisServer::start_with),
//! [`start_with_or_skip`](RedisServer::start_with_or_skip)) configure it, for example
//! `--databases 4` or `--requirepass`; they are kept across a restart. Tests can
//! [`kill`](RedisServer::kill) and [`restart`](RedisServer::restart) it on the same port to
//! stage outages. [`RedisCluster`] starts a three-master Redis Cluster the same way.
//!
//! The binary is `redis-server` from `PATH`, or the path in `NFCS_REDIS_SERVER`. Where it does
//! not exist, [`RedisServer::start_or_skip`] prints a notice and returns `None`, unless
//! `NFCS_REQUIRE_REDIS=1` (set by `cargo xtask test` and CI): then it panics, so that a machine
//! without Redis cannot pass the suite by skipping it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable that makes a missing `redis-server` fail the run.
pub const REQUIRE_REDIS: &str = "NFCS_REQUIRE_REDIS";
/// The environment variable naming the `redis-server` binary to use.
pub const SERVER_BINARY: &str = "NFCS_REDIS_SERVER";

fn binary() -> PathBuf {
    std::env::var_os(SERVER_BINARY).map_or_else(|| PathBuf::from("redis-server"), PathBuf::from)
}

/// Whether a `redis-server` binary can be started here.
pub fn server_available() -> bool {
    Command::new(binary())
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// `true` when Redis tests may run; `false` (after a notice) when they must skip; panics when
/// Redis is required but missing.
pub fn redis_or_skip(test: &str) -> bool {
    if server_available() {
        return true;
    }
    if std::env::var(REQUIRE_REDIS).is_ok_and(|value| value == "1") {
        panic!(
            "{test}: {REQUIRE_REDIS}=1 but no redis-server binary was found (install redis-server, or set {SERVER_BINARY})"
        );
    }
    eprintln!(
        "notice: {test} skipped: no redis-server binary (set {REQUIRE_REDIS}=1 to make this an error)"
    );
    false
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("the loopback interface has a free port")
}

/// A free loopback port whose cluster bus port (the port + 10000, where a cluster node also
/// listens) is free too: a node whose bus port is taken aborts at start.
fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port <= u16::MAX - 10_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// A `redis-server` child process on a loopback port, killed when dropped.
pub struct RedisServer {
    port: u16,
    directory: tempfile::TempDir,
    extra_args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port.
    ///
    /// # Panics
    /// When the server does not start or answer `PING` within five seconds.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments (`["--requirepass", "secret"]`).
    ///
    /// # Panics
    /// As [`start`](RedisServer::start).
    pub fn start_with(extra_args: &[&str]) -> RedisServer {
        RedisServer::start_with_on(free_port(), extra_args)
    }

    fn start_with_on(port: u16, extra_args: &[&str]) -> RedisServer {
        let mut server = RedisServer {
            port,
            directory: tempfile::tempdir().expect("a temporary directory"),
            extra_args: extra_args.iter().map(|arg| (*arg).to_owned()).collect(),
            child: None,
        };
        server.spawn();
        server
    }

    /// Starts a server on `port` (for example one a client is already trying to reach).
    ///
    /// # Panics
    /// As [`start`](RedisServer::start).
    pub fn start_on(port: u16) -> RedisServer {
        let mut server = RedisServer {
            port,
            directory: tempfile::tempdir().expect("a temporary directory"),
            extra_args: Vec::new(),
            child: None,
        };
        server.spawn();
        server
    }

    /// [`start`](RedisServer::start) when `redis-server` exists; see [`redis_or_skip`].
    pub fn start_or_skip(test: &str) -> Option<RedisServer> {
        redis_or_skip(test).then(RedisServer::start)
    }

    /// [`start_with`](RedisServer::start_with) when `redis-server` exists; see
    /// [`redis_or_skip`]. For example `start_with_or_skip("databases", &["--databases", "4"])`
    /// starts a server with databases 0 to 3 only.
    pub fn start_with_or_skip(test: &str, extra_args: &[&str]) -> Option<RedisServer> {
        redis_or_skip(test).then(|| RedisServer::start_with(extra_args))
    }

    /// `redis://127.0.0.1:<port>/<db>`: the URL of one of the server's databases.
    pub fn url_with_db(&self, db: u32) -> String {
        format!("{}/{db}", self.url())
    }

    fn spawn(&mut self) {
        let log = self.directory.path().join("redis.log");
        let child = Command::new(binary())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.directory.path())
            .arg("--logfile")
            .arg(&log)
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        wait_for_ping(self.port, &log);
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's working directory.
    pub fn directory(&self) -> &Path {
        self.directory.path()
    }

    /// Kills the server (SIGKILL) and waits for it to exit; an outage starts.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: it keeps nothing).
    ///
    /// # Panics
    /// When it does not come back within five seconds.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `PING` until the server answers `+PONG`.
fn wait_for_ping(port: u16, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let mut reply = [0_u8; 64];
            if stream.write_all(b"PING\r\n").is_ok()
                && let Ok(read) = stream.read(&mut reply)
                && reply[..read].starts_with(b"+PONG")
            {
                return;
            }
            // A password-protected server answers -NOAUTH: it is up.
            if reply.starts_with(b"-NOAUTH") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    panic!("redis-server on port {port} did not answer PING within 5 s; its log:\n{log}");
}

/// A Redis Cluster of three masters (no replicas) on loopback ports, killed when dropped.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three cluster-enabled servers and joins them with `redis-cli --cluster create`.
    ///
    /// # Panics
    /// When the servers do not start or the cluster does not reach `cluster_state:ok` within
    /// ten seconds.
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with_on(
                    free_cluster_port(),
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-node-timeout",
                        "2000",
                        "--cluster-config-file",
                        "nodes.conf",
                    ],
                )
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        let output = Command::new(redis_cli())
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_until_ok();
        cluster
    }

    /// [`start`](RedisCluster::start) when `redis-server` and `redis-cli` exist.
    pub fn start_or_skip(test: &str) -> Option<RedisCluster> {
        if !redis_or_skip(test) {
            return None;
        }
        Some(RedisCluster::start())
    }

    fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for node in &self.nodes {
            loop {
                let info = Command::new(redis_cli())
                    .args(["-p", &node.port().to_string(), "cluster", "info"])
                    .output()
                    .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
                    .unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the cluster did not become ready: {info}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// The nodes' URLs.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}

fn redis_cli() -> PathBuf {
    // redis-cli ships beside redis-server.
    let server = binary();
    match server.parent() {
        Some(directory) if !directory.as_os_str().is_empty() => directory.join("redis-cli"),
        _ => PathBuf::from("redis-cli"),
    }
}
