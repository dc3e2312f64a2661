//! A served node (`nfcs-bench serve`) as a child process on a free loopback port: started
//! with a configuration, waited for until it prints the address it listens on, stopped with
//! SIGTERM (or killed when dropped).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a node may take to start.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A node process.
pub struct NodeProcess {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// What it wrote to standard error, once it stopped.
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    stdout_rest: std::sync::Arc<std::sync::Mutex<String>>,
}

/// A configuration for a test node: memory and disk tiers in `work` (Redis at `redis` when
/// given), the semantic cache off unless `semantic`, fast sampling, plus `serve` lines in
/// `[serve]` and `extra` TOML after everything.
pub fn node_config(redis: Option<&str>, semantic: bool, serve: &str, extra: &str) -> String {
    let redis = match redis {
        Some(url) => format!("[cache.redis]\nenabled = true\nurl = \"{url}\"\n"),
        None => "[cache.redis]\nenabled = false\n".to_owned(),
    };
    format!(
        "[serve]\nsample_interval = 0.25\nupkeep_interval = 0.25\nkuramoto_interval = 0.25\n{serve}\n\
         [memory_profiling]\nprofile_interval = 0.25\n\
         [alerts]\nwindow = 5\n\
         [cache.disk]\ndirectory = \"disk\"\n\
         [cache.semantic]\nenabled = {semantic}\n\
         {redis}{extra}"
    )
}

impl NodeProcess {
    /// Starts `nfcs-bench serve` with `config` (TOML) in `work`, listening on
    /// `127.0.0.1:0`, with the extra environment `env`.
    pub fn start(work: &Path, config: &str, env: &[(&str, &str)]) -> NodeProcess {
        NodeProcess::start_on(work, config, env, "127.0.0.1:0").expect("the node starts")
    }

    /// [`start`](NodeProcess::start) on `listen`; `Err(stderr)` when it exits before it
    /// listens.
    pub fn start_on(
        work: &Path,
        config: &str,
        env: &[(&str, &str)],
        listen: &str,
    ) -> Result<NodeProcess, (Option<ExitStatus>, String)> {
        let config_path = work.join("node.toml");
        std::fs::write(&config_path, config).expect("the configuration is written");
        let mut command = Command::new(env!("CARGO_BIN_EXE_nfcs-bench"));
        command
            .args(["serve", "--config"])
            .arg(&config_path)
            .args(["--listen", listen, "--work-dir"])
            .arg(work)
            .env_remove("NFCS_BENCH_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("nfcs-bench starts");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stdout_rest = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("piped");
        let sink = std::sync::Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut text = String::new();
            let mut buffer = [0u8; 4096];
            while let Ok(read) = err.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                text.push_str(&String::from_utf8_lossy(&buffer[..read]));
                if let Ok(mut shared) = sink.lock() {
                    shared.clone_from(&text);
                }
            }
        });
        let out = child.stdout.take().expect("piped");
        let (sender, receiver) = mpsc::channel();
        let rest = std::sync::Arc::clone(&stdout_rest);
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if !sent && let Some(url) = line.strip_prefix("nfcs-bench: listening on ") {
                    let _ = sender.send(url.to_owned());
                    sent = true;
                } else if let Ok(mut shared) = rest.lock() {
                    shared.push_str(&line);
                    shared.push('\n');
                }
            }
        });
        match receiver.recv_timeout(START_TIMEOUT) {
            Ok(url) => Ok(NodeProcess {
                child: Some(child),
                url,
                stderr,
                stdout_rest,
            }),
            Err(_) => {
                let status = match child.try_wait() {
                    Ok(Some(status)) => Some(status),
                    _ => {
                        let _ = child.kill();
                        child.wait().ok()
                    }
                };
                // Let the reader thread take the rest.
                let deadline = Instant::now() + Duration::from_secs(2);
                while Instant::now() < deadline && std::sync::Arc::strong_count(&stderr) > 1 {
                    std::thread::yield_now();
                }
                let text = stderr.lock().map(|text| text.clone()).unwrap_or_default();
                Err((status, text))
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit (at most `timeout`; then it is killed and the test
    /// fails).
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id();
        let (sender, receiver) = mpsc::channel();
        // The exit is waited for on a thread of its own; this one waits for its word.
        std::thread::spawn(move || {
            let _ = sender.send(child.wait());
        });
        match receiver.recv_timeout(timeout) {
            Ok(status) => status.expect("wait"),
            Err(_) => {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                panic!(
                    "the node did not exit within {timeout:?}; stderr:\n{}",
                    self.stderr()
                );
            }
        }
    }

    /// What the process wrote to standard error so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .map(|text| text.clone())
            .unwrap_or_default()
    }

    /// What it wrote to standard output besides the listening line.
    pub fn stdout(&self) -> String {
        self.stdout_rest
            .lock()
            .map(|text| text.clone())
            .unwrap_or_default()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Asks `condition` every 50 ms until it returns `Some`, for at most `timeout`: how a test
/// waits for a state of another process (a node, Prometheus, Redis) that it cannot be told
/// about. It orders nothing by time: the condition itself is what the test waits for.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut polls = tokio::time::interval(Duration::from_millis(50));
    loop {
        polls.tick().await;
        if let Some(value) = condition().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
    }
}

/// A binary from `PATH` or a well-known place, or `None`.
pub fn find_binary(name: &str, env: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(PathBuf::from(path));
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// `find_binary`, or a notice and `None` (a failure when `require` names a set variable).
pub fn binary_or_skip(name: &str, env: &str, require: &str, test: &str) -> Option<PathBuf> {
    match find_binary(name, env) {
        Some(path) => Some(path),
        None => {
            assert!(
                std::env::var_os(require).is_none(),
                "{require} is set but {name} was not found (set {env} or install it)"
            );
            eprintln!("notice: skipping {test}: {name} not found");
            None
        }
    }
}
