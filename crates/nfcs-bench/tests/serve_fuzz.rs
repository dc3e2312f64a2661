//! The served node's API fuzzed from its own OpenAPI document by schemathesis (PyPI): every
//! check (no 5xx, status codes, content types and bodies that keep to the document, invalid
//! data refused, valid data accepted, the token enforced), and the node still serving
//! afterwards.
//!
//! `cargo xtask test` installs schemathesis into `target/schemathesis-venv` and names its
//! `st` in `NFCS_SCHEMATHESIS` (with `NFCS_REQUIRE_SCHEMATHESIS=1`); elsewhere the test looks
//! for `st` on `PATH` and skips with a notice when there is none.

// The helpers outside `#[test]` functions unwrap too: a failure there is the test's failure.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::node::{NodeProcess, binary_or_skip, node_config};

/// Examples per operation: enough for every operation's coverage and fuzzing phases to reach
/// its edge cases in under a minute or two on two cores.
const EXAMPLES: &str = "60";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_failure_in_the_api_and_the_node_keeps_serving() {
    let Some(st) = binary_or_skip(
        "st",
        "NFCS_SCHEMATHESIS",
        "NFCS_REQUIRE_SCHEMATHESIS",
        "the API fuzz test",
    ) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let token = "fuzzing-token-0123456789abcdef";
    // The semantic cache runs when the model is here, so its routes are fuzzed too.
    let node = NodeProcess::start(
        work.path(),
        &node_config(None, true, "", ""),
        &[("NFCS_BENCH_TOKEN", token)],
    );
    let client = reqwest::Client::new();
    let summary: Value = client
        .get(format!("{}/api/summary", node.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let semantic = summary["component_performance"]["esc_system"]["status"] != "not_running";
    if !semantic {
        assert!(
            std::env::var_os("NFCS_REQUIRE_MODEL").is_none(),
            "NFCS_REQUIRE_MODEL is set but the node's semantic cache is not running: {}",
            summary["component_performance"]["esc_system"]["reason"]
        );
        eprintln!("notice: the semantic routes are not fuzzed: no model here");
    }
    let report = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("schemathesis");
    let mut command = Command::new(st);
    // Its example database and reports stay in the test's own directories.
    command
        .current_dir(work.path())
        .arg("run")
        .arg(format!("{}/openapi.json", node.url))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all", "--max-examples", EXAMPLES, "--seed", "1"])
        .args(["--workers", "2", "--no-color", "--output-truncate", "true"])
        .args(["--generation-database", "none"])
        .args([
            "--request-timeout",
            "30",
            "--report",
            "junit",
            "--report-dir",
        ])
        .arg(&report);
    if !semantic {
        command.args(["--exclude-path-regex", "^/v1/semantic/"]);
    }
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Every operation was tested.
    assert!(
        stdout.contains(if semantic { "Tested: 11" } else { "Tested: 9" }),
        "{stdout}"
    );
    // The node is still serving, and still the same process.
    let health = client
        .get(format!("{}/healthz", node.url))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let mut node = node;
    node.terminate();
    assert!(
        node.wait(Duration::from_secs(60)).success(),
        "{}",
        node.stderr()
    );
    assert!(!node.stderr().contains("panicked"), "{}", node.stderr());
}
