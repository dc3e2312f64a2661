//! Tidy checks: the workspace conventions of DESIGN.md, enforced as a test.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests member lives in the workspace root")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn manifest(path: &Path) -> toml::Table {
    read(path)
        .parse()
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn crate_directories() -> Vec<PathBuf> {
    let mut directories: Vec<PathBuf> = std::fs::read_dir(root().join("crates"))
        .expect("crates/ exists")
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.is_dir())
        .collect();
    directories.sort();
    directories
}

#[test]
fn every_crate_is_a_member_named_after_its_folder() {
    let workspace = manifest(&root().join("Cargo.toml"));
    let members: Vec<&str> = workspace["workspace"]["members"]
        .as_array()
        .expect("members is an array")
        .iter()
        .filter_map(|member| member.as_str())
        .collect();
    for directory in crate_directories() {
        let folder = directory
            .file_name()
            .and_then(|name| name.to_str())
            .expect("UTF-8 folder name");
        assert!(
            members.contains(&format!("crates/{folder}").as_str()),
            "crates/{folder} is not a workspace member"
        );
        let package = manifest(&directory.join("Cargo.toml"));
        assert_eq!(
            package["package"]["name"].as_str(),
            Some(folder),
            "folder and package names differ"
        );
    }
}

#[test]
fn members_take_versions_lints_and_metadata_from_the_workspace() {
    let mut manifests: Vec<PathBuf> = crate_directories()
        .iter()
        .map(|d| d.join("Cargo.toml"))
        .collect();
    manifests.push(root().join("tests/Cargo.toml"));
    manifests.push(root().join("xtask/Cargo.toml"));
    for path in manifests {
        let package = manifest(&path);
        let shown = path.display();
        assert_eq!(
            package
                .get("lints")
                .and_then(|lints| lints.get("workspace"))
                .and_then(|w| w.as_bool()),
            Some(true),
            "{shown}: [lints] workspace = true is missing"
        );
        for field in ["version", "edition", "rust-version", "license"] {
            let inherited = package["package"]
                .get(field)
                .and_then(|value| value.get("workspace"))
                .and_then(|w| w.as_bool());
            assert_eq!(
                inherited,
                Some(true),
                "{shown}: package.{field} must come from the workspace"
            );
        }
        for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
            let Some(dependencies) = package.get(section).and_then(|d| d.as_table()) else {
                continue;
            };
            for (name, dependency) in dependencies {
                let from_workspace =
                    dependency.get("workspace").and_then(|w| w.as_bool()) == Some(true);
                assert!(
                    from_workspace,
                    "{shown}: {section}.{name} must be `{{ workspace = true }}`"
                );
            }
        }
    }
}

#[test]
fn every_crate_has_a_readme_and_opens_with_a_runnable_example() {
    for directory in crate_directories() {
        let shown = directory.display();
        assert!(
            directory.join("README.md").is_file(),
            "{shown}: README.md is missing"
        );
        let lib = read(&directory.join("src/lib.rs"));
        assert!(
            lib.starts_with("//!"),
            "{shown}: lib.rs must open with //! documentation"
        );
        let docs: String = lib
            .lines()
            .take_while(|line| line.starts_with("//!") || line.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            docs.contains("//! ```\n") || docs.contains("//! ```rust\n"),
            "{shown}: the crate documentation needs a runnable example (not ignore or no_run)"
        );
        // `forbid`, or `deny` where a measured gain needs `unsafe`: then every `unsafe` block
        // in the crate carries a `// SAFETY:` comment on the line before it.
        if !lib.contains("#![forbid(unsafe_code)]") {
            assert!(
                lib.contains("#![deny(unsafe_code)]"),
                "{shown}: #![forbid(unsafe_code)] is missing"
            );
            for source in rust_sources(&directory.join("src")) {
                let text = read(&source);
                let lines: Vec<&str> = text.lines().collect();
                for (index, line) in lines.iter().enumerate() {
                    if line.contains("unsafe {") {
                        assert!(
                            index > 0 && lines[index - 1].trim_start().starts_with("// SAFETY:"),
                            "{}:{}: an unsafe block without a // SAFETY: comment",
                            source.display(),
                            index + 1
                        );
                    }
                }
            }
        }
        let package = manifest(&directory.join("Cargo.toml"));
        assert!(
            package["package"].get("description").is_some(),
            "{shown}: package.description is missing"
        );
    }
}

/// Every `.rs` file under `directory`.
fn rust_sources(directory: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![directory.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("readable directory") {
                stack.push(entry.expect("readable entry").path());
            }
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
    found
}

#[test]
fn no_unfinished_code_in_library_sources() {
    let mut stack = vec![root().join("crates"), root().join("xtask/src")];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("readable directory") {
                stack.push(entry.expect("readable entry").path());
            }
        } else if path.extension().is_some_and(|ext| ext == "rs")
            && !path.components().any(|part| part.as_os_str() == "tests")
        {
            let text = read(&path);
            for marker in ["todo!(", "unimplemented!(", "dbg!("] {
                assert!(
                    !text.contains(marker),
                    "{}: contains {marker}",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn the_readme_ci_and_docs_agree() {
    let readme = read(&root().join("README.md"));
    for command in ["cargo xtask test", "cargo xtask bench"] {
        assert!(
            readme.contains(command),
            "README.md does not show `{command}`"
        );
    }
    assert!(
        read(&root().join(".ci/run")).contains("cargo xtask test"),
        ".ci/run must run `cargo xtask test`"
    );
    for document in [
        "docs/architecture.md",
        "docs/benchmarks.md",
        "docs/configuration.md",
    ] {
        assert!(root().join(document).is_file(), "{document} is missing");
    }
}
