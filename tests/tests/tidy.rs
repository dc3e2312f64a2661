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
                if let Err(line) = every_unsafe_has_a_safety_comment(&text) {
                    panic!(
                        "{}:{line}: `unsafe` without a // SAFETY: comment before it",
                        source.display()
                    );
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

/// The lines (1-based) where Rust code, not a comment or a string, uses the `unsafe` keyword:
/// a block (`unsafe {`, `unsafe{`, `unsafe` then `{` on the next line), an `unsafe fn`,
/// `unsafe impl`, `unsafe extern` or `unsafe trait`, however it is spaced.
fn unsafe_lines(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let (mut index, mut line) = (0, 1);
    let word = |at: usize| {
        bytes
            .get(at)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
    };
    while index < bytes.len() {
        match bytes[index] {
            b'\n' => line += 1,
            b'/' if bytes.get(index + 1) == Some(&b'/') => {
                while index < bytes.len() && bytes[index] != b'\n' {
                    index += 1;
                }
                continue;
            }
            b'/' if bytes.get(index + 1) == Some(&b'*') => {
                index += 2;
                while index < bytes.len()
                    && !(bytes[index] == b'*' && bytes.get(index + 1) == Some(&b'/'))
                {
                    line += usize::from(bytes[index] == b'\n');
                    index += 1;
                }
                index += 2;
                continue;
            }
            b'"' => {
                // A string (raw strings of this code base hold no quotes).
                index += 1;
                while index < bytes.len() && bytes[index] != b'"' {
                    if bytes[index] == b'\\' {
                        index += 1;
                    }
                    line += usize::from(bytes.get(index) == Some(&b'\n'));
                    index += 1;
                }
            }
            b'\'' => {
                // A char literal ('x', '\n'); a lifetime has no closing quote within 3 bytes.
                if let Some(end) = bytes[index + 1..bytes.len().min(index + 5)]
                    .iter()
                    .position(|b| *b == b'\'')
                {
                    index += end + 1;
                }
            }
            b'u' if !word(index.wrapping_sub(1))
                && bytes[index..].starts_with(b"unsafe")
                && !word(index + 6) =>
            {
                found.push(line);
                index += 6;
                continue;
            }
            _ => {}
        }
        index += 1;
    }
    found
}

/// `Err(line)` for the first `unsafe` whose line is not preceded by a `// SAFETY:` comment
/// (directly, or above the attributes and other comments right before it).
fn every_unsafe_has_a_safety_comment(text: &str) -> Result<(), usize> {
    let lines: Vec<&str> = text.lines().collect();
    for line in unsafe_lines(text) {
        let current = lines[line - 1].trim_start();
        let inline = current.contains("// SAFETY:");
        let above = lines[..line - 1]
            .iter()
            .rev()
            .map(|line| line.trim_start())
            .take_while(|line| line.starts_with("//") || line.starts_with("#["))
            .any(|line| line.starts_with("// SAFETY:") || line.starts_with("/// # Safety"));
        if !(inline || above) {
            return Err(line);
        }
    }
    Ok(())
}

#[test]
fn the_unsafe_check_finds_every_form_and_skips_comments_and_strings() {
    for (code, line) in [
        ("fn f() {\n    unsafe { g() }\n}", 2),
        ("fn f() {\n    unsafe{g()}\n}", 2),
        ("fn f() {\n    unsafe\n    {\n        g()\n    }\n}", 2),
        ("let x = 1;\nunsafe fn g() {}", 2),
        ("unsafe impl Send for X {}", 1),
        ("unsafe extern \"C\" {}", 1),
        ("fn f() { let y = unsafe { *p }; }", 1),
    ] {
        assert_eq!(every_unsafe_has_a_safety_comment(code), Err(line), "{code}");
    }
    for code in [
        "// SAFETY: p is valid.\nunsafe { *p }",
        "let v = unsafe { *p }; // SAFETY: p is valid.",
        "// SAFETY: Send is fine.\n#[allow(unused)]\nunsafe impl Send for X {}",
        "/// Does it.\n///\n/// # Safety\n/// The caller checks.\n#[inline]\nunsafe fn g() {}",
        "// unsafe { in a comment }",
        "/* unsafe { in a block comment } */",
        "let s = \"unsafe { in a string }\";",
        "#![forbid(unsafe_code)]",
        "let not_unsafe = 1; let unsafely = 2;",
        "fn f<'a>(x: &'a str) -> char { 'u' }",
    ] {
        assert_eq!(every_unsafe_has_a_safety_comment(code), Ok(()), "{code}");
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
