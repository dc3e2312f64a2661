//! Helpers shared by the disk tier's tests.

use std::path::{Path, PathBuf};

use nfcs_cache_disk::{DiskCache, DiskConfig};

/// A 4 MiB cache: 16 segments of 256 KiB, so a few megabytes of writes exercise eviction.
pub(crate) fn small_config() -> DiskConfig {
    DiskConfig::new(4 << 20)
}

pub(crate) fn open(directory: &Path, config: DiskConfig) -> DiskCache {
    DiskCache::open(directory, config).unwrap()
}

/// Bytes that do not compress.
pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// The segment files of a cache directory, in slot order.
pub(crate) fn segment_files(directory: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "nfcs"))
        .collect();
    files.sort();
    files
}

/// The sum of the segment files' lengths.
pub(crate) fn bytes_on_disk(directory: &Path) -> u64 {
    segment_files(directory)
        .iter()
        .map(|path| std::fs::metadata(path).unwrap().len())
        .sum()
}

/// The segment file holding `needle`, and where in it.
pub(crate) fn find_in_segments(directory: &Path, needle: &[u8]) -> Option<(PathBuf, usize)> {
    segment_files(directory).into_iter().find_map(|path| {
        let bytes = std::fs::read(&path).unwrap();
        bytes
            .windows(needle.len())
            .position(|window| window == needle)
            .map(|offset| (path, offset))
    })
}
