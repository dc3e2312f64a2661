//! The binary: exit codes, bad input, stated skips, the reports it writes.

use std::path::Path;
use std::process::{Command, Output};

fn nfcs_bench(directory: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nfcs-bench"))
        .current_dir(directory)
        .args(args)
        .arg("--no-progress")
        .output()
        .expect("the binary starts")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A small, fast configuration on embedded tiers.
const SMALL: &str = r#"
[mathematical_benchmarks.cgl_solver]
grid_sizes = [64]
[mathematical_benchmarks.kuramoto]
oscillator_counts = [5]
[cache.redis]
enabled = false
[cache.semantic]
enabled = false
"#;

#[test]
fn help_explains_and_exits_zero() {
    let directory = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_nfcs-bench"))
        .current_dir(directory.path())
        .args(["run", "--help"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    for word in [
        "--component",
        "--quick",
        "--baseline",
        "--out",
        "Exit status",
    ] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
}

#[test]
fn usage_errors_exit_one_not_two() {
    let directory = tempfile::tempdir().unwrap();
    let output = nfcs_bench(directory.path(), &["run", "--component", "gpu"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("mathematical, constitutional"),
        "{}",
        stderr(&output)
    );
    let output = nfcs_bench(
        directory.path(),
        &[
            "load",
            "--users",
            "5",
            "--duration",
            "1",
            "--scenario",
            "spike",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("normal_load"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_invalid_configuration_names_the_field() {
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("bench.toml");
    std::fs::write(&config, "[load_testing]\nmax_concurrent_users = 0\n").unwrap();
    let output = nfcs_bench(
        directory.path(),
        &["run", "--quick", "--config", config.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("load_testing.max_concurrent_users"),
        "{}",
        stderr(&output)
    );
    let output = nfcs_bench(
        directory.path(),
        &["run", "--quick", "--config", "/nonexistent.toml"],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("/nonexistent.toml"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_failed_target_exits_two_and_the_reports_are_written() {
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("bench.toml");
    std::fs::write(&config, format!("{SMALL}\n[targets]\ncgl_fps = 1e12\n")).unwrap();
    let output = nfcs_bench(
        directory.path(),
        &[
            "run",
            "--quick",
            "--component",
            "mathematical",
            "--config",
            config.to_str().unwrap(),
            "--out",
            "out",
        ],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("FAIL"), "{table}");
    let out = directory.path().join("out");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["profile"], "quick");
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(
        std::fs::read_to_string(out.join("report.md"))
            .unwrap()
            .contains("cgl_fps")
    );
    assert!(
        std::fs::read_to_string(out.join("report.html"))
            .unwrap()
            .contains("<svg")
    );

    // The same run as a baseline of itself: no regression, but the failed target still fails.
    let output = nfcs_bench(
        directory.path(),
        &[
            "run",
            "--quick",
            "--component",
            "mathematical",
            "--config",
            config.to_str().unwrap(),
            "--out",
            "again",
            "--baseline",
            "out/report.json",
        ],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[test]
fn a_baseline_of_another_schema_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(
        directory.path().join("old.json"),
        r#"{"schema_version": 999}"#,
    )
    .unwrap();
    std::fs::write(directory.path().join("bench.toml"), SMALL).unwrap();
    let output = nfcs_bench(
        directory.path(),
        &[
            "run",
            "--quick",
            "--component",
            "cache",
            "--config",
            "bench.toml",
            "--baseline",
            "old.json",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("999"), "{}", stderr(&output));
    std::fs::write(directory.path().join("garbage.json"), "not json").unwrap();
    let output = nfcs_bench(
        directory.path(),
        &[
            "run",
            "--quick",
            "--component",
            "cache",
            "--config",
            "bench.toml",
            "--baseline",
            "garbage.json",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("garbage.json"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_unreachable_redis_and_a_missing_model_are_stated_skips() {
    let directory = tempfile::tempdir().unwrap();
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        directory.path().join("bench.toml"),
        format!("[cache.redis]\nenabled = true\nurl = \"redis://127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_nfcs-bench"))
        .current_dir(directory.path())
        .env("NFCS_MODEL_DIR", directory.path().join("no-model"))
        .args([
            "run",
            "--quick",
            "--no-progress",
            "--component",
            "esc",
            "--component",
            "cache",
        ])
        .args(["--config", "bench.toml", "--out", "out"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(directory.path().join("out/report.json")).unwrap(),
    )
    .unwrap();
    let notes = report["system"]["notes"].to_string();
    assert!(
        notes.contains("redis: skipped") && notes.contains(&port.to_string()),
        "{notes}"
    );
    assert!(
        stderr(&output).contains("note: redis: skipped"),
        "the skip is said on the terminal too: {}",
        stderr(&output)
    );
    let esc = &report["components"][0];
    assert_eq!(esc["component"], "esc");
    assert_eq!(esc["status"]["state"], "skipped");
    assert!(
        esc["status"]["reason"]
            .as_str()
            .unwrap()
            .contains("fetch-model"),
        "{esc}"
    );
    assert_eq!(report["components"][1]["status"]["state"], "ran");
}
