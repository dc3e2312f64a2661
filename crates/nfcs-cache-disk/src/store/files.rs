//! The files of a cache directory: their names, and opening them without following links.
//!
//! Every path the cache writes is a slot number or the lock file, never a key, and the cache
//! opens each one so that a symbolic link put there (by mistake or by someone who can write
//! the directory) is never followed: the first look is `symlink_metadata`, which does not
//! follow links; a path that is absent is created with `O_CREAT | O_EXCL`, which POSIX says
//! never follows a link; a path that holds a regular file is opened with `O_NOFOLLOW`; and the
//! file that was opened must be a regular file with the device and inode the first look saw.
//! Anything else is [`DiskError::NotAFile`], and nothing was read, written or truncated through
//! the link. (The cache directory's own path may be a link: it is the configuration's choice.)
//! After open, files are used only through the descriptors opened here, never reopened by
//! name, so a link swapped in later is never reached either.

use std::fs::{File, FileType, Metadata};
use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::DiskError;

/// The lock file's name: an exclusive `flock` on it marks the directory as in use.
pub(super) const LOCK_FILE: &str = ".nfcs-disk.lock";
const SEGMENT_PREFIX: &str = "seg-";
const SEGMENT_SUFFIX: &str = ".nfcs";

/// How many times a path that changes between the look and the open is looked at again
/// before the open gives up with an error.
const OPEN_ATTEMPTS: usize = 3;

/// `O_NOFOLLOW`, which std does not name: from the `libc` crate (already in every build of the
/// workspace through tokio), rather than a table of per-architecture values written out here.
pub(super) const O_NOFOLLOW: i32 = libc::O_NOFOLLOW;

/// The path of segment slot `slot`.
pub(super) fn segment_path(directory: &Path, slot: u32) -> PathBuf {
    directory.join(format!("{SEGMENT_PREFIX}{slot:05}{SEGMENT_SUFFIX}"))
}

/// The slot a file name stands for, if it is a segment's name (`seg-` five digits `.nfcs`).
pub(super) fn parse_segment_name(name: &str) -> Option<u32> {
    let digits = name
        .strip_prefix(SEGMENT_PREFIX)?
        .strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() == 5 && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

/// What a non-file is, in the words of [`DiskError::NotAFile`].
fn describe(file_type: FileType) -> &'static str {
    if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a named pipe"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "a device"
    } else {
        "something other than a file"
    }
}

fn not_a_file(path: &Path, file_type: FileType) -> DiskError {
    DiskError::NotAFile {
        path: path.to_owned(),
        found: describe(file_type),
    }
}

/// Opens the regular file at `path` for reading and writing, never through a link. `None`
/// when nothing is there and `create` is off.
///
/// # Errors
/// [`DiskError::NotAFile`] when the path holds a link, a directory or another non-file;
/// [`DiskError::Io`] when the file cannot be opened (`operation` says what for).
fn open_regular(
    path: &Path,
    create: bool,
    operation: &'static str,
) -> Result<Option<File>, DiskError> {
    let mut options = File::options();
    options.read(true).write(true).custom_flags(O_NOFOLLOW);
    for _ in 0..OPEN_ATTEMPTS {
        let before: Option<Metadata> = match std::fs::symlink_metadata(path) {
            Ok(metadata) => Some(metadata),
            Err(error) if error.kind() == ErrorKind::NotFound => None,
            Err(error) => return Err(DiskError::io(operation, path, error)),
        };
        let opened = match &before {
            Some(metadata) if !metadata.file_type().is_file() => {
                return Err(not_a_file(path, metadata.file_type()));
            }
            Some(_) => options.clone().open(path),
            None if !create => return Ok(None),
            // O_EXCL: fails on anything already there, a dangling link included.
            None => options.clone().create_new(true).open(path),
        };
        let file = match opened {
            Ok(file) => file,
            // Created or removed by someone else between the look and the open: look again.
            Err(error)
                if matches!(error.kind(), ErrorKind::NotFound | ErrorKind::AlreadyExists) =>
            {
                continue;
            }
            Err(error) => {
                // O_NOFOLLOW refuses (ELOOP) a link swapped in since the look; say what it is.
                if let Ok(now) = std::fs::symlink_metadata(path)
                    && !now.file_type().is_file()
                {
                    return Err(not_a_file(path, now.file_type()));
                }
                return Err(DiskError::io(operation, path, error));
            }
        };
        let opened = file
            .metadata()
            .map_err(|error| DiskError::io(operation, path, error))?;
        if !opened.file_type().is_file() {
            return Err(not_a_file(path, opened.file_type()));
        }
        if let Some(before) = &before
            && (before.dev(), before.ino()) != (opened.dev(), opened.ino())
        {
            // Not the file the look saw: replaced in between. Nothing was written; look again.
            continue;
        }
        return Ok(Some(file));
    }
    Err(DiskError::io(
        operation,
        path,
        std::io::Error::other("the path kept changing while it was being opened"),
    ))
}

/// Opens the segment file at `path` if one is there (`None` when the path is empty).
///
/// # Errors
/// As [`open_regular`].
pub(super) fn open_existing(path: &Path) -> Result<Option<File>, DiskError> {
    open_regular(path, false, "open a segment")
}

/// Opens the file at `path`, creating it when absent.
///
/// # Errors
/// As [`open_regular`].
pub(super) fn open_or_create(path: &Path, operation: &'static str) -> Result<File, DiskError> {
    open_regular(path, true, operation)?.ok_or_else(|| {
        DiskError::io(
            operation,
            path,
            std::io::Error::other("the file vanished while it was being created"),
        )
    })
}

/// How long a taken lock is waited for before the open is refused with `Locked`.
///
/// The lock is an `flock`, which belongs to the open file description, and `fork` duplicates
/// descriptors: a child process forked by any thread while a cache of this process had the
/// directory open shares that lock until the child's `exec` closes its copy, which the kernel
/// does shortly after `Command::spawn` has already returned in the parent. So a cache that is
/// dropped and reopened while another thread spawns a process can find its own old lock still
/// taken, for about 0.15 to 0.35 ms on the machines we measured (6 reopens in 2,000 were
/// refused without this wait). Waiting a little absorbs that; a real second opener is refused
/// this much later, which is of no consequence for an error that ends the open.
const LOCK_PATIENCE: Duration = Duration::from_millis(100);

/// The pause between two attempts at a taken lock.
const LOCK_RETRY_PAUSE: Duration = Duration::from_millis(1);

/// Takes the directory's exclusive lock; the returned file holds it until dropped.
///
/// # Errors
/// [`DiskError::Locked`] when another opener holds it (for longer than [`LOCK_PATIENCE`]);
/// [`DiskError::NotAFile`] when the lock file's path holds a link or another non-file;
/// [`DiskError::Io`].
pub(super) fn lock_directory(directory: &Path) -> Result<File, DiskError> {
    let lock_path = directory.join(LOCK_FILE);
    let lock = open_or_create(&lock_path, "create the lock file")?;
    // Real time, not the cache's clock: this waits for the kernel, and a manual clock would
    // never let the wait end.
    let deadline = Instant::now() + LOCK_PATIENCE;
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(lock),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(LOCK_RETRY_PAUSE);
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(DiskError::Locked {
                    directory: directory.to_owned(),
                    lock_file: lock_path,
                });
            }
            Err(std::fs::TryLockError::Error(error)) => {
                return Err(DiskError::io("lock", lock_path, error));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip() {
        let path = segment_path(Path::new("/cache"), 42);
        assert_eq!(path, Path::new("/cache/seg-00042.nfcs"));
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(parse_segment_name(name), Some(42));
        for other in [
            "seg-42.nfcs",
            "seg-00042.nfc",
            "seg-0004x.nfcs",
            "notes.txt",
        ] {
            assert_eq!(parse_segment_name(other), None, "{other}");
        }
    }

    #[test]
    fn o_nofollow_refuses_a_link() {
        // Where a wrong flag would show: opening a link with it must fail.
        let directory = tempfile::tempdir().unwrap();
        let target = directory.path().join("target");
        std::fs::write(&target, b"outside").unwrap();
        let link = directory.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let opened = File::options()
            .read(true)
            .custom_flags(O_NOFOLLOW)
            .open(&link);
        assert!(
            opened.is_err(),
            "O_NOFOLLOW = {O_NOFOLLOW:#o} followed a link"
        );
        File::options()
            .read(true)
            .custom_flags(O_NOFOLLOW)
            .open(&target)
            .unwrap();
        match open_regular(&link, true, "open") {
            Err(DiskError::NotAFile { path, found }) => {
                assert_eq!((path, found), (link, "a symbolic link"));
            }
            other => panic!("expected NotAFile, got {other:?}"),
        }
        assert_eq!(std::fs::read(&target).unwrap(), b"outside");
    }

    #[test]
    fn a_dangling_link_is_not_created_through() {
        let directory = tempfile::tempdir().unwrap();
        let target = directory.path().join("would-be-created");
        let link = directory.path().join("seg-00001.nfcs");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(
            open_or_create(&link, "open"),
            Err(DiskError::NotAFile { .. })
        ));
        assert!(
            open_existing(&link).is_err(),
            "a dangling link is not absent"
        );
        assert!(!target.exists());
    }

    #[test]
    fn files_are_opened_and_created() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("seg-00000.nfcs");
        assert!(open_existing(&path).unwrap().is_none());
        open_or_create(&path, "create").unwrap();
        assert!(open_existing(&path).unwrap().is_some());
        let sub = directory.path().join("seg-00001.nfcs");
        std::fs::create_dir(&sub).unwrap();
        match open_existing(&sub) {
            Err(DiskError::NotAFile { found, .. }) => assert_eq!(found, "a directory"),
            other => panic!("expected NotAFile, got {other:?}"),
        }
    }
}
