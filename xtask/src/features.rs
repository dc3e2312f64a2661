//! `cargo xtask features`: builds every workspace member that has features with no default
//! features and then with each feature alone, so that `#[cfg(not(feature = "..."))]` branches
//! and code that one feature needs from another compile. The rest of `cargo xtask test` builds
//! with `--all-features`, which never sees those branches (the facade once did not compile with
//! `--features redis` without `semantic`).
//!
//! What `cargo hack --each-feature --no-dev-deps` does, in plain Rust and without installing
//! anything: read `cargo metadata`, then one `cargo check` per combination. To keep the time
//! reasonable on a small machine it checks only the library (or, for a package without one,
//! its binaries), in the workspace's own target directory, where the dependencies are already
//! checked; a feature that is only another name for one other feature (`gpu = ["cuda"]`) is
//! skipped, since checking that one covers it. A combination fails when it does not compile
//! or when it compiles with warnings (an unused import behind a `cfg` is a defect too).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Error, cargo};

/// One `cargo check` to run: a package and the features it gets on top of none.
struct Combination {
    package: String,
    /// `None` for no features at all.
    feature: Option<String>,
    /// `--lib` or `--bins`.
    target: &'static str,
}

impl Combination {
    fn describe(&self) -> String {
        match &self.feature {
            Some(feature) => format!("{} --features {feature}", self.package),
            None => format!("{} (no features)", self.package),
        }
    }
}

/// Checks each combination of every workspace member (or of `only`, a package name), printing
/// one line per combination and a summary.
///
/// # Errors
/// When `cargo metadata` fails, when `only` names no workspace member with features, or when
/// a combination fails to compile or warns (after all have run, naming each).
pub(crate) fn check_each_feature(only: Option<&str>) -> Result<(), Error> {
    let started = Instant::now();
    let mut combinations = combinations()?;
    if let Some(only) = only {
        combinations.retain(|combination| combination.package == only);
        if combinations.is_empty() {
            return Err(format!("{only:?} is not a workspace member with features").into());
        }
    }
    let mut failures = Vec::new();
    let total = combinations.len();
    for (index, combination) in combinations.iter().enumerate() {
        let description = combination.describe();
        eprintln!("[{}/{total}] {description}", index + 1);
        let mut command = cargo();
        command.args([
            "check",
            "--package",
            &combination.package,
            "--no-default-features",
            combination.target,
        ]);
        if let Some(feature) = &combination.feature {
            command.args(["--features", feature]);
        }
        let (outcome, took) = run(&mut command)?;
        let (verdict, text) = match outcome {
            Outcome::Clean => {
                eprintln!("      ok in {}", seconds(took));
                continue;
            }
            Outcome::Warned(text) => ("compiles with warnings", text),
            Outcome::Failed(text) => ("does not compile", text),
        };
        eprintln!("{text}");
        eprintln!("      FAILED: {verdict} ({})", seconds(took));
        failures.push(format!("{description}: {verdict}"));
    }
    eprintln!(
        "feature combinations: {total} checked, {} ok, {} failed, in {}",
        total - failures.len(),
        failures.len(),
        seconds(started.elapsed())
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {total} feature combinations failed:\n  {}",
            failures.len(),
            failures.join("\n  ")
        )
        .into())
    }
}

/// Every combination to check, in workspace order: for each member with features, no
/// features, then each feature (by name) that is not only an alias.
fn combinations() -> Result<Vec<Combination>, Error> {
    let output = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .map_err(|error| format!("could not run cargo metadata: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(serde_json::Value::as_str)
        .collect();
    let mut combinations = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let (Some(id), Some(name)) = (package["id"].as_str(), package["name"].as_str()) else {
            continue;
        };
        if !members.contains(&id) {
            continue;
        }
        let Some(features) = package["features"].as_object() else {
            continue;
        };
        // `cargo metadata` lists features in name order (a JSON object from a BTreeMap).
        let own: Vec<&str> = features
            .keys()
            .map(String::as_str)
            .filter(|feature| *feature != "default")
            .collect();
        if own.is_empty() {
            // Nothing is behind a feature, so the builds of the other steps cover it.
            continue;
        }
        let Some(target) = target_flag(package) else {
            continue;
        };
        combinations.push(Combination {
            package: name.to_owned(),
            feature: None,
            target,
        });
        for feature in own.iter().copied() {
            if is_alias(features, feature) {
                eprintln!(
                    "skipping {name} --features {feature}: another name for one other feature"
                );
                continue;
            }
            combinations.push(Combination {
                package: name.to_owned(),
                feature: Some(feature.to_owned()),
                target,
            });
        }
    }
    Ok(combinations)
}

/// Whether `feature` is only another name for one other feature of the same package
/// (`gpu = ["cuda"]`), so that checking that one alone covers it. A feature that enables several
/// (`full = ["a", "b"]`) is a combination of its own and is checked; so is one that names a
/// dependency (`dep:x`, `x/y`) or `default` (which makes it the default build).
fn is_alias(features: &serde_json::Map<String, serde_json::Value>, feature: &str) -> bool {
    match features[feature].as_array().map(Vec::as_slice) {
        Some([only]) => only.as_str().is_some_and(|only| {
            only != feature
                && only != "default"
                && !only.contains([':', '/'])
                && features.contains_key(only)
        }),
        _ => false,
    }
}

/// Whether cargo's output says a workspace crate compiled with warnings. Cargo ends a crate's
/// warnings with "warning: `name` (lib) generated N warnings", and replays them when the crate
/// is already checked, so a warm run still sees them. Dependencies from the registry are built
/// with warnings capped and never say this.
fn reports_warnings(stderr: &str) -> bool {
    stderr
        .lines()
        .any(|line| line.starts_with("warning: `") && line.contains(" generated "))
}

/// `--lib` for a package with a library, `--bins` for one with only binaries, `None` for one
/// with neither (nothing that a feature could change is built without tests or examples).
fn target_flag(package: &serde_json::Value) -> Option<&'static str> {
    let kinds: Vec<&str> = package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|target| target["kind"].as_array().into_iter().flatten())
        .filter_map(serde_json::Value::as_str)
        .collect();
    let library = ["lib", "rlib", "dylib", "cdylib", "staticlib", "proc-macro"];
    if kinds.iter().any(|kind| library.contains(kind)) {
        Some("--lib")
    } else if kinds.contains(&"bin") {
        Some("--bins")
    } else {
        None
    }
}

/// How a check went; the text is what cargo printed.
enum Outcome {
    Clean,
    Warned(String),
    Failed(String),
}

/// Runs one check, capturing its output so that a clean combination takes one line.
fn run(command: &mut Command) -> Result<(Outcome, Duration), Error> {
    let started = Instant::now();
    let output = command
        .output()
        .map_err(|error| format!("could not run cargo check: {error}"))?;
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&output.stderr)
        .trim_end()
        .to_owned();
    let warned = reports_warnings(&text);
    let outcome = if !output.status.success() {
        Outcome::Failed(text)
    } else if warned {
        Outcome::Warned(text)
    } else {
        Outcome::Clean
    };
    Ok((outcome, took))
}

fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_other_names_for_one_feature() {
        let features = serde_json::json!({
            "default": ["disk"],
            "disk": ["dep:disk"],
            "redis": ["dep:redis"],
            "cluster": ["redis", "redis/cluster"],
            "another-name": ["redis"],
            "storage": ["disk", "redis"],
            "empty": [],
            "defaults": ["default"],
            "tls": ["redis/tls"],
        });
        let features = features.as_object().unwrap();
        assert!(is_alias(features, "another-name"));
        for feature in [
            "disk", "redis", "cluster", "storage", "empty", "defaults", "tls",
        ] {
            assert!(!is_alias(features, feature), "{feature}");
        }
    }

    #[test]
    fn warnings_are_recognised_in_cargo_output() {
        assert!(reports_warnings(
            "    Checking nfcs-cache-core v0.1.0\n\
             warning: unused import: `std::fmt`\n\
             warning: `nfcs-cache-core` (lib) generated 1 warning (run `cargo fix --lib -p nfcs-cache-core` to apply 1 suggestion)\n\
             Finished `dev` profile"
        ));
        assert!(!reports_warnings(
            "    Checking nfcs-cache-core v0.1.0\n    Finished `dev` profile [unoptimized + debuginfo] target(s) in 2.71s"
        ));
        // A workspace-level notice is not a crate's warnings.
        assert!(!reports_warnings(
            "warning: unused manifest key: workspace.foo\n    Finished `dev` profile"
        ));
    }
}
