//! Waiting for a state instead of sleeping for a guessed time.
//!
//! A test that must see an event happen (a server process start, a reconnection, a message
//! cross a socket) polls the state it waits for, every few milliseconds, and fails with a
//! message naming that state once a deadline passes. The deadline is generous, because a loaded
//! two-core machine can be slow; it only bounds a failure, it never decides a pass.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a test waits for an event that normally takes milliseconds.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// How often the state is looked at.
const POLL: Duration = Duration::from_millis(5);

/// Returns once `condition` holds; panics naming `what` if it does not within [`DEADLINE`].
pub(crate) async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "gave up after {DEADLINE:?} waiting until {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Like [`wait_until`], for a condition that must await (a command that succeeds once a server
/// is back).
pub(crate) async fn wait_until_async<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !condition().await {
        assert!(
            Instant::now() < deadline,
            "gave up after {DEADLINE:?} waiting until {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}
