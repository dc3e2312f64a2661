//! `DiskConfig` and the errors of opening a disk cache.

use std::path::PathBuf;
use std::time::Duration;

use nfcs_cache_core::Clock;
use nfcs_cache_core::telemetry::DEFAULT_INSTANCE;

/// How to open a [`DiskCache`](crate::DiskCache).
///
/// ```
/// use std::time::Duration;
/// use nfcs_cache_disk::DiskConfig;
///
/// let config = DiskConfig::new(10_000_000_000) // the spec's 10 GB
///     .compression(true)
///     .default_ttl(Some(Duration::from_secs(24 * 3600)))
///     .instance("solver-cache");
/// assert_eq!(config.max_bytes, 10_000_000_000);
/// assert_eq!((config.instance.as_str(), config.name.as_str()), ("solver-cache", "disk"));
/// ```
// Not `PartialEq`: a `Clock` has no meaningful equality (two manual clocks may read the same
// time and still be different clocks), as with core's `MemoryConfig`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DiskConfig {
    /// The most bytes the cache's files take on disk (segments and their headers).
    pub max_bytes: u64,
    /// Whether values are compressed (with [`DiskConfig::compression_codec`]) when that makes
    /// them at least 1/16 smaller.
    pub compression: bool,
    /// The codec values are compressed with: [`CompressionCodec::Zstd`] (the default) or
    /// [`CompressionCodec::Lz4`], which decodes several times faster and saves less space.
    /// Only new writes follow it: every record says how its value is stored, so a cache
    /// written with one codec reads the same with the other, and values written before a
    /// change stay as they are until rewritten.
    pub compression_codec: CompressionCodec,
    /// The zstd level (1 to 19 are sensible; 3 is zstd's default). Ignored with
    /// [`CompressionCodec::Lz4`], which has no levels.
    pub compression_level: i32,
    /// Values shorter than this are stored as they are. Compression trades read time for
    /// space: decompressing 4 KiB of text takes about 4.7 us with zstd on the machines we
    /// measured, more than a whole uncompressed read (see docs/benchmarks.md); LZ4 takes
    /// about a quarter of that.
    pub compression_min_bytes: usize,
    /// The TTL of entries set without one; `None` means they never expire.
    pub default_ttl: Option<Duration>,
    /// The size of one segment file; `None` picks 1/16 of `max_bytes` within 64 KiB to 64 MiB.
    /// Fixed when the directory is first used: reopening keeps the recorded size.
    pub segment_bytes: Option<u64>,
    /// Whether every write is flushed to the device (`fdatasync`) before it returns. Without it
    /// a process crash loses nothing (the page cache survives it); a power loss may lose the
    /// most recent writes, never consistency.
    pub sync_writes: bool,
    /// Compaction: when the cache is full, a sealed segment whose live records take less than
    /// this fraction of its bytes (the rest overwritten, deleted or expired) has its live
    /// records rewritten into the segment being written and is freed, at most one segment per
    /// rotation, so overwritten bytes do not push live entries out. 0 turns it off; at most
    /// 0.9. Each byte written costs at most `1 / (1 - ratio)` bytes of writes (2 at the default
    /// 0.5).
    pub compaction_live_ratio: f64,
    /// The tier's name in stats and errors, and its `tier` metric label ("disk" unless set).
    pub name: String,
    /// The cache instance this tier belongs to: the `cache` metric label
    /// ([`DEFAULT_INSTANCE`] unless set).
    pub instance: String,
    /// The clock every expiry decision reads, and the wall-clock time the absolute expiries
    /// written to disk are computed from (the system's unless a test drives one with a
    /// [`ManualClock`](nfcs_cache_core::ManualClock)).
    pub clock: Clock,
}

impl DiskConfig {
    /// The smallest segment.
    pub const MIN_SEGMENT_BYTES: u64 = 64 << 10;
    /// The largest segment.
    pub const MAX_SEGMENT_BYTES: u64 = 1 << 30;
    /// The fewest segments a cache is split into: one being written, one kept free for
    /// rotation, at least one holding data.
    pub const MIN_SEGMENTS: u64 = 3;

    /// A configuration with `max_bytes` on disk, compression on, no default TTL.
    pub fn new(max_bytes: u64) -> DiskConfig {
        DiskConfig {
            max_bytes,
            compression: true,
            compression_codec: CompressionCodec::Zstd,
            compression_level: 3,
            compression_min_bytes: 512,
            default_ttl: None,
            segment_bytes: None,
            compaction_live_ratio: 0.5,
            sync_writes: false,
            name: "disk".to_owned(),
            instance: DEFAULT_INSTANCE.to_owned(),
            clock: Clock::system(),
        }
    }

    /// Turns compression on or off.
    #[must_use]
    pub fn compression(mut self, on: bool) -> DiskConfig {
        self.compression = on;
        self
    }

    /// Sets the codec new values are compressed with.
    ///
    /// ```
    /// use nfcs_cache_disk::{CompressionCodec, DiskConfig};
    ///
    /// let config = DiskConfig::new(1 << 30).compression_codec(CompressionCodec::Lz4);
    /// assert_eq!(config.compression_codec, CompressionCodec::Lz4);
    /// assert_eq!(DiskConfig::new(1 << 30).compression_codec, CompressionCodec::Zstd);
    /// ```
    #[must_use]
    pub fn compression_codec(mut self, codec: CompressionCodec) -> DiskConfig {
        self.compression_codec = codec;
        self
    }

    /// Sets the size from which values are compressed.
    #[must_use]
    pub fn compression_min_bytes(mut self, bytes: usize) -> DiskConfig {
        self.compression_min_bytes = bytes;
        self
    }

    /// Sets the zstd level.
    #[must_use]
    pub fn compression_level(mut self, level: i32) -> DiskConfig {
        self.compression_level = level;
        self
    }

    /// Sets the TTL of entries set without one.
    #[must_use]
    pub fn default_ttl(mut self, ttl: Option<Duration>) -> DiskConfig {
        self.default_ttl = ttl;
        self
    }

    /// Sets [`DiskConfig::compaction_live_ratio`] (0 turns compaction off).
    #[must_use]
    pub fn compaction_live_ratio(mut self, ratio: f64) -> DiskConfig {
        self.compaction_live_ratio = ratio;
        self
    }

    /// Sets the segment size.
    #[must_use]
    pub fn segment_bytes(mut self, bytes: u64) -> DiskConfig {
        self.segment_bytes = Some(bytes);
        self
    }

    /// Flushes every write to the device before returning.
    #[must_use]
    pub fn sync_writes(mut self, on: bool) -> DiskConfig {
        self.sync_writes = on;
        self
    }

    /// Sets the tier's name (the `tier` metric label).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> DiskConfig {
        self.name = name.into();
        self
    }

    /// Sets the cache instance this tier belongs to (the `cache` metric label).
    #[must_use]
    pub fn instance(mut self, instance: impl Into<String>) -> DiskConfig {
        self.instance = instance.into();
        self
    }

    /// Sets the clock TTLs are measured on (a [`ManualClock`](nfcs_cache_core::ManualClock)'s
    /// in tests, so that they advance time instead of sleeping).
    ///
    /// ```
    /// use std::time::Duration;
    /// use nfcs_cache_core::ManualClock;
    /// use nfcs_cache_disk::{DiskCache, DiskConfig};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let directory = tempfile::tempdir()?;
    /// let manual = ManualClock::new();
    /// let config = DiskConfig::new(16 << 20).clock(manual.clock());
    /// let cache = DiskCache::open(directory.path(), config)?;
    /// cache.insert("session", b"token", Duration::from_secs(60))?;
    /// manual.advance(Duration::from_secs(59));
    /// assert!(cache.get("session")?.is_some());
    /// manual.advance(Duration::from_secs(1));
    /// assert_eq!(cache.get("session")?, None, "expired after exactly 60 s");
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> DiskConfig {
        self.clock = clock;
        self
    }

    /// The segment size this configuration asks for a new directory.
    pub(crate) fn planned_segment_bytes(&self) -> u64 {
        self.segment_bytes
            .unwrap_or_else(|| (self.max_bytes / 16).clamp(DiskConfig::MIN_SEGMENT_BYTES, 64 << 20))
    }

    pub(crate) fn validate(&self) -> Result<(), DiskError> {
        let invalid =
            |field: &'static str, reason: String| DiskError::InvalidConfig { field, reason };
        let segment = self.planned_segment_bytes();
        if !(DiskConfig::MIN_SEGMENT_BYTES..=DiskConfig::MAX_SEGMENT_BYTES).contains(&segment) {
            return Err(invalid(
                "segment_bytes",
                format!(
                    "{segment} is outside {} to {} bytes",
                    DiskConfig::MIN_SEGMENT_BYTES,
                    DiskConfig::MAX_SEGMENT_BYTES
                ),
            ));
        }
        if self.max_bytes / segment < DiskConfig::MIN_SEGMENTS {
            return Err(invalid(
                "max_bytes",
                format!(
                    "{} bytes hold fewer than {} segments of {segment} bytes (the least is {} bytes)",
                    self.max_bytes,
                    DiskConfig::MIN_SEGMENTS,
                    DiskConfig::MIN_SEGMENTS * segment
                ),
            ));
        }
        if let Some(ttl) = self.default_ttl {
            nfcs_cache_core::validate_ttl(ttl)
                .map_err(|problem| invalid("default_ttl", problem.to_string()))?;
        }
        if !(0.0..=0.9).contains(&self.compaction_live_ratio) {
            return Err(invalid(
                "compaction_live_ratio",
                format!("{} is outside 0 (off) to 0.9", self.compaction_live_ratio),
            ));
        }
        let levels = zstd::compression_level_range();
        if !levels.contains(&self.compression_level) {
            return Err(invalid(
                "compression_level",
                format!("{} is outside zstd's {levels:?}", self.compression_level),
            ));
        }
        Ok(())
    }
}

/// The codec a [`DiskCache`](crate::DiskCache) compresses values with
/// ([`DiskConfig::compression_codec`]). Each record names the codec of its value, so both are
/// always readable whatever the setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CompressionCodec {
    /// zstd at [`DiskConfig::compression_level`]: the smaller output (English-like text about
    /// 4x smaller at level 3), the slower decoding (about 80,000 instructions per 4 KiB of such
    /// text).
    #[default]
    Zstd,
    /// LZ4 blocks (the pure-Rust `lz4_flex`, safe decoder): that text about 2.2x smaller,
    /// decoded in about 31,000 instructions per 4 KiB, several times faster than zstd.
    Lz4,
}

/// Why a disk cache could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiskError {
    /// Another `DiskCache` (in this or another process) has the directory open.
    #[error("the disk cache directory {} is in use by another DiskCache (it holds {})", directory.display(), lock_file.display())]
    Locked {
        /// The cache directory.
        directory: PathBuf,
        /// The lock file held by the other opener.
        lock_file: PathBuf,
    },
    /// A file-system operation failed.
    #[error("could not {operation} {}: {source}", path.display())]
    Io {
        /// What was being done ("create the directory", "write a segment header").
        operation: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A path the cache must own as a regular file (a segment slot, the lock file) holds a
    /// symbolic link, a directory or another non-file. The cache never follows, writes or
    /// truncates such a path; at open a segment slot like this is skipped (see
    /// [`RecoveryReport::skipped_slots`](crate::RecoveryReport::skipped_slots)), the lock file
    /// is refused with this error.
    #[error("{} is {found}, not a regular file; the disk cache does not follow, write or truncate it", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What is there ("a symbolic link", "a directory", ...).
        found: &'static str,
    },
    /// Too few segment slots hold regular files (the others are skipped non-files) for the
    /// cache to rotate segments.
    #[error("only {usable} segment slots in {} can be used ({skipped} hold non-files); the cache needs at least {required}", directory.display())]
    TooFewSegments {
        /// The cache directory.
        directory: PathBuf,
        /// Slots that hold (or could be created as) regular files.
        usable: u64,
        /// Slots skipped because they hold a non-file.
        skipped: u64,
        /// The fewest slots the cache works with ([`DiskConfig::MIN_SEGMENTS`]).
        required: u64,
    },
    /// The configuration cannot work.
    #[error("invalid disk cache configuration: {field}: {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl DiskError {
    pub(crate) fn io(
        operation: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> DiskError {
        DiskError::Io {
            operation,
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_sizes_and_limits() {
        assert_eq!(
            DiskConfig::new(10_000_000_000).planned_segment_bytes(),
            64 << 20
        );
        assert_eq!(DiskConfig::new(16 << 20).planned_segment_bytes(), 1 << 20);
        assert_eq!(DiskConfig::new(1 << 20).planned_segment_bytes(), 64 << 10);
        DiskConfig::new(1 << 20).validate().unwrap();
        let error = DiskConfig::new(100 << 10).validate().unwrap_err();
        assert!(error.to_string().contains("max_bytes"), "{error}");
        let error = DiskConfig::new(1 << 30)
            .segment_bytes(1000)
            .validate()
            .unwrap_err();
        assert!(error.to_string().contains("segment_bytes"), "{error}");
        let error = DiskConfig::new(1 << 30)
            .default_ttl(Some(Duration::ZERO))
            .validate()
            .unwrap_err();
        assert!(error.to_string().contains("default_ttl"), "{error}");
        let error = DiskConfig::new(1 << 30)
            .compression_level(99)
            .validate()
            .unwrap_err();
        assert!(error.to_string().contains("compression_level"), "{error}");
    }
}
