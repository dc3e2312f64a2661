//! The disk cache engine, split by responsibility:
//!
//! - this module: the [`Store`] and its read and write paths (get, set, delete, invalidate,
//!   clear, stats);
//! - `recovery`: opening a directory, rebuilding the index from the segments, the
//!   [`RecoveryReport`];
//! - `index`: the in-memory index of keys and record locations;
//! - `eviction`: segment rotation, and eviction of the oldest segment with reinsertion of the
//!   entries read since they were written;
//! - `files`: file names, the lock, and opening files without following links;
//! - `counters`: stats and metrics, counted together;
//! - `compression`: zstd with reusable per-thread contexts, and LZ4.
//!
//! Time: every expiry decision and every absolute expiry written reads the store's
//! [`Clock`], never the system clock directly, so tests drive it with a `ManualClock`.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use nfcs_cache_core::telemetry::{self, InstanceLabels, Operation};
use nfcs_cache_core::{
    CacheEntry, CacheError, Clock, Expiry, Pattern, TierStats, Ttl, check_key, check_ttl,
};
use parking_lot::{Mutex, RwLock};

use crate::CompressionCodec;
use crate::format::{
    Encoding, NewRecord, RECORD_HEADER_LEN, RecordHeader, RecordKind, SEGMENT_HEADER_LEN,
    SegmentHeader, check_record,
};

mod compression;
mod counters;
mod eviction;
mod files;
mod index;
mod recovery;

use compression::{MAX_RAW_LEN, compress, decompress, lz4_compress, lz4_decompress};
use counters::Counters;
use index::{Index, Location, Spot};
pub use recovery::RecoveryReport;
pub(crate) use recovery::metrics_for;

/// Attempts of a read whose entry moved (reinserted by eviction) while it was being read.
const READ_ATTEMPTS: usize = 4;

/// A segment slot as the writer sees it.
#[derive(Default)]
struct SegmentState {
    /// `None` while the slot is free (its file empty), or unusable (it holds a non-file).
    header: Option<SegmentHeader>,
    /// Where the next record goes.
    end: u64,
    /// Keys of the puts written into it (some since overwritten or deleted).
    keys: Vec<Arc<str>>,
    /// Keys of the deletions written into it: compaction carries those that may still hide
    /// an older put in an older segment.
    tombstones: Vec<Arc<str>>,
    /// Whether it holds a clear record (such a segment is compacted only as the oldest: a
    /// clear cannot be moved after the records written since).
    has_clear: bool,
}

/// What only the writer changes, under its mutex: the segments' state and the log order.
struct Writer {
    segments: Vec<SegmentState>,
    active: Option<u32>,
    /// Sealed segments, oldest (lowest sequence) first.
    sealed: VecDeque<u32>,
    next_sequence: u64,
    /// The encoding buffer, reused between writes.
    buffer: Vec<u8>,
    /// While a batch of deletions is written: each record is not flushed on its own (the
    /// batch is flushed once at its end).
    batching: bool,
}

/// The engine behind [`DiskCache`](crate::DiskCache); every method blocks on I/O.
pub(crate) struct Store {
    directory: PathBuf,
    /// The tier's name (its `tier` metric label).
    pub(crate) name: String,
    compression: bool,
    compression_codec: CompressionCodec,
    compression_level: i32,
    compression_min_bytes: usize,
    default_ttl: Option<Duration>,
    sync_writes: bool,
    /// Sealed segments whose live bytes fall below this fraction of their length are
    /// compacted (0 = never).
    compaction_live_ratio: f64,
    segment_size: u64,
    /// The time every expiry decision reads.
    clock: Clock,
    /// One open file per slot; `None` for a slot skipped at open because it holds a
    /// directory, a link or another non-file (such a slot is never used).
    files: Box<[Option<File>]>,
    /// Per slot, the nonce of its current use (0 while free): what a reader checks a record's
    /// checksum with, without taking the writer's lock.
    nonces: Box<[AtomicU64]>,
    index: RwLock<Index>,
    writer: Mutex<Writer>,
    counters: Counters,
    recovery: RecoveryReport,
    /// Held for the cache's life: the directory's exclusive lock.
    _lock: File,
}

/// Milliseconds since the Unix epoch at `time`; a time before 1970 reads as the epoch (entries
/// then expire late, never early), as in core's `Expiry`.
fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}

/// Why a record read at an index location did not give a value.
enum ReadFailure {
    /// The bytes there are not the expected record (moved, reused, or damaged).
    Invalid,
    /// The file could not be read.
    Io(std::io::Error),
}

impl Store {
    /// The wall-clock time on the store's clock, in Unix milliseconds.
    fn now_unix_ms(&self) -> u64 {
        unix_millis(self.clock.now())
    }

    /// Runs `work`, timing it as `operation` on the latency histogram.
    fn timed<T>(&self, operation: Operation, work: impl FnOnce() -> T) -> T {
        let timer = self.counters.metrics().start(operation);
        let result = work();
        telemetry::finish(timer);
        result
    }

    fn path(&self, slot: u32) -> PathBuf {
        files::segment_path(&self.directory, slot)
    }

    /// The open file of `slot`; an error for a slot skipped at open (never reached: such a
    /// slot is never activated, so no index entry or segment state points at it).
    fn slot_file(&self, slot: u32) -> Result<&File, CacheError> {
        self.files
            .get(slot as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| {
                CacheError::backend(
                    &self.name,
                    "use a segment slot",
                    std::io::Error::other(format!(
                        "{} was skipped at open: it is not a regular file",
                        self.path(slot).display()
                    )),
                )
            })
    }

    /// What opening the directory found.
    pub(crate) fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The cache directory.
    pub(crate) fn directory(&self) -> &Path {
        &self.directory
    }

    /// The size of one segment.
    pub(crate) fn segment_size(&self) -> u64 {
        self.segment_size
    }

    /// The most bytes the usable segment slots can hold.
    pub(crate) fn capacity(&self) -> u64 {
        self.segment_size * self.files.iter().filter(|file| file.is_some()).count() as u64
    }

    /// The clock the store reads.
    pub(crate) fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The labels the store's metrics carry.
    pub(crate) fn labels(&self) -> &InstanceLabels {
        self.counters.metrics().labels()
    }

    /// The largest record (header, key and stored value) a segment takes.
    fn max_record_len(&self) -> u64 {
        self.segment_size - SEGMENT_HEADER_LEN
    }

    /// Counts a failed I/O operation and turns it into the tier's error.
    fn io_error(&self, operation: &'static str, error: std::io::Error) -> CacheError {
        self.counters.error();
        CacheError::backend(&self.name, operation, error)
    }

    /// Reads `key`: its value and the TTL it has left, or `None`.
    pub(crate) fn get(&self, key: &str) -> Result<Option<CacheEntry>, CacheError> {
        self.timed(Operation::Get, || self.get_untimed(key))
    }

    fn get_untimed(&self, key: &str) -> Result<Option<CacheEntry>, CacheError> {
        check_key(key)?;
        for _ in 0..READ_ATTEMPTS {
            let found = {
                let index = self.index.read();
                index.get(key).map(|location| {
                    location.referenced.store(true, Ordering::Relaxed);
                    location.spot()
                })
            };
            let Some(spot) = found else {
                self.counters.miss();
                return Ok(None);
            };
            if spot.expired_at(self.now_unix_ms()) {
                if self.index.write().remove_if_at(key, spot) {
                    self.counters.expired(1);
                }
                self.counters.miss();
                return Ok(None);
            }
            match self.read_value(key, spot) {
                Ok(value) => {
                    // The clock is read again: the entry may have expired while being read.
                    let ttl = (spot.expiry != 0)
                        .then(|| {
                            Expiry::from_unix_millis(spot.expiry).remaining_at(self.clock.now())
                        })
                        .flatten();
                    if spot.expiry != 0 && ttl.is_none() {
                        continue;
                    }
                    self.counters.hit();
                    return Ok(Some(CacheEntry::new(value, ttl)));
                }
                Err(ReadFailure::Io(error)) => return Err(self.io_error("read an entry", error)),
                Err(ReadFailure::Invalid) => {
                    // Damaged, unless eviction moved or dropped the entry meanwhile: then the
                    // index no longer points here and the next attempt follows it.
                    if self.index.write().remove_if_at(key, spot) {
                        self.counters.error();
                        tracing::warn!(
                            key = %nfcs_cache_core::key_preview(key),
                            segment = %self.path(spot.slot).display(),
                            offset = spot.offset,
                            "disk cache: damaged record; dropped"
                        );
                        self.counters.miss();
                        return Ok(None);
                    }
                }
            }
        }
        self.counters.miss();
        Ok(None)
    }

    /// Reads, checks and decompresses the value of the record at `spot`.
    fn read_value(&self, key: &str, spot: Spot) -> Result<Bytes, ReadFailure> {
        let (header, bytes, value_start) = self.read_record(spot)?;
        let key_range = RECORD_HEADER_LEN..RECORD_HEADER_LEN + header.key_len as usize;
        if header.kind != RecordKind::Put || &bytes[key_range] != key.as_bytes() {
            return Err(ReadFailure::Invalid);
        }
        let raw_len = header.raw_len as usize;
        if header.encoding != Encoding::Raw && raw_len > MAX_RAW_LEN {
            return Err(ReadFailure::Invalid);
        }
        match header.encoding {
            Encoding::Raw => Ok(Bytes::from(bytes).slice(value_start..)),
            Encoding::Zstd => decompress(&bytes[value_start..], raw_len)
                .map(Bytes::from)
                .map_err(|_| ReadFailure::Invalid),
            Encoding::Lz4 => lz4_decompress(&bytes[value_start..], raw_len)
                .map(Bytes::from)
                .ok_or(ReadFailure::Invalid),
        }
    }

    /// Reads and checks the record at `spot`: its header, its bytes, where its value starts.
    fn read_record(&self, spot: Spot) -> Result<(RecordHeader, Vec<u8>, usize), ReadFailure> {
        let file = self
            .files
            .get(spot.slot as usize)
            .and_then(Option::as_ref)
            .ok_or(ReadFailure::Invalid)?;
        let mut bytes = vec![0_u8; spot.len as usize];
        match file.read_exact_at(&mut bytes, spot.offset) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(ReadFailure::Invalid);
            }
            Err(error) => return Err(ReadFailure::Io(error)),
        }
        let segment = SegmentHeader {
            slot: spot.slot,
            sequence: spot.sequence,
            segment_size: self.segment_size,
            nonce: self.nonces[spot.slot as usize].load(Ordering::Relaxed),
            created_unix_ms: 0,
        };
        let (header, key, _) = check_record(&bytes, &segment).map_err(|_| ReadFailure::Invalid)?;
        let value_start = RECORD_HEADER_LEN + key.len();
        if header.record_len() != u64::from(spot.len) {
            return Err(ReadFailure::Invalid);
        }
        Ok((header, bytes, value_start))
    }

    /// Writes `value` under `key` to live as `ttl` says (resolved against the default TTL).
    pub(crate) fn set(&self, key: &str, value: &[u8], ttl: Ttl) -> Result<(), CacheError> {
        self.timed(Operation::Set, || self.set_untimed(key, value, ttl))
    }

    fn set_untimed(&self, key: &str, value: &[u8], ttl: Ttl) -> Result<(), CacheError> {
        check_key(key)?;
        let ttl = check_ttl(ttl)?.resolve(self.default_ttl);
        let expiry = ttl.map_or(0, |ttl| {
            Expiry::after_at(ttl, self.clock.now()).as_unix_millis()
        });
        if value.len() > MAX_RAW_LEN {
            return Err(CacheError::value_too_large(
                &self.name,
                key,
                value.len() as u64,
                MAX_RAW_LEN as u64,
            ));
        }
        let compressed = if self.compression && value.len() >= self.compression_min_bytes {
            let (packed, encoding) = match self.compression_codec {
                CompressionCodec::Zstd => (
                    compress(self.compression_level, value)
                        .map_err(|error| self.io_error("compress a value", error))?,
                    Encoding::Zstd,
                ),
                CompressionCodec::Lz4 => (lz4_compress(value), Encoding::Lz4),
            };
            // Kept only when it saves at least a sixteenth: decompressing costs time too.
            (packed.len() + value.len() / 16 < value.len()).then_some((packed, encoding))
        } else {
            None
        };
        let record = NewRecord {
            kind: RecordKind::Put,
            key: key.as_bytes(),
            value: compressed.as_ref().map_or(value, |(packed, _)| packed),
            encoding: compressed
                .as_ref()
                .map_or(Encoding::Raw, |(_, encoding)| *encoding),
            raw_len: value.len() as u32,
            expiry_unix_ms: expiry,
        };
        if record.len() > self.max_record_len() {
            return Err(CacheError::value_too_large(
                &self.name,
                key,
                record.len(),
                self.max_record_len(),
            ));
        }
        let mut writer = self.writer.lock();
        let shared_key = self.index.read().shared_key(key);
        let spot = self.append(&mut writer, &record, Some(&shared_key))?;
        self.index.write().insert(shared_key, spot);
        self.counters.insert();
        Ok(())
    }

    /// Writes a record into the active segment (rotating first if it does not fit).
    fn append(
        &self,
        writer: &mut Writer,
        record: &NewRecord<'_>,
        key: Option<&Arc<str>>,
    ) -> Result<Spot, CacheError> {
        let slot = self.ensure_space(writer, record.len())?;
        self.append_to_active(writer, slot, record, key)
    }

    /// Writes a record at the end of `slot`, which has room for it.
    fn append_to_active(
        &self,
        writer: &mut Writer,
        slot: u32,
        record: &NewRecord<'_>,
        key: Option<&Arc<str>>,
    ) -> Result<Spot, CacheError> {
        let state = &writer.segments[slot as usize];
        let Some(header) = state.header else {
            return Err(CacheError::backend(
                &self.name,
                "append",
                std::io::Error::other("the active segment is not open"),
            ));
        };
        let offset = state.end;
        writer.buffer.clear();
        record.encode_into(&header, &mut writer.buffer);
        let file = self.slot_file(slot)?;
        file.write_all_at(&writer.buffer, offset)
            .map_err(|error| self.io_error("write a record", error))?;
        if self.sync_writes && !writer.batching {
            file.sync_data()
                .map_err(|error| self.io_error("flush a record", error))?;
        }
        // A huge value's buffer is not kept for the small ones that follow.
        if writer.buffer.capacity() > 4 << 20 {
            writer.buffer = Vec::new();
        }
        let state = &mut writer.segments[slot as usize];
        state.end += record.len();
        if let Some(key) = key {
            match record.kind {
                RecordKind::Put => state.keys.push(Arc::clone(key)),
                RecordKind::Tombstone => state.tombstones.push(Arc::clone(key)),
                RecordKind::Clear | RecordKind::Padding => {}
            }
        }
        if record.kind == RecordKind::Clear {
            state.has_clear = true;
        }
        Ok(Spot {
            slot,
            len: record.len() as u32,
            offset,
            sequence: header.sequence,
            expiry: record.expiry_unix_ms,
        })
    }

    /// Writes a tombstone for `key`; the caller removes it from the index.
    fn write_tombstone(&self, writer: &mut Writer, key: &Arc<str>) -> Result<(), CacheError> {
        let record = NewRecord {
            kind: RecordKind::Tombstone,
            key: key.as_bytes(),
            value: &[],
            encoding: Encoding::Raw,
            raw_len: 0,
            expiry_unix_ms: 0,
        };
        self.append(writer, &record, Some(key)).map(|_| ())
    }

    /// Removes `key`; whether a live entry was there.
    pub(crate) fn delete(&self, key: &str) -> Result<bool, CacheError> {
        self.timed(Operation::Delete, || self.delete_untimed(key))
    }

    fn delete_untimed(&self, key: &str) -> Result<bool, CacheError> {
        check_key(key)?;
        let mut writer = self.writer.lock();
        let Some(spot) = self.index.read().get(key).map(Location::spot) else {
            return Ok(false);
        };
        let shared = self.index.read().shared_key(key);
        self.write_tombstone(&mut writer, &shared)?;
        self.index.write().remove_if_at(key, spot);
        Ok(!spot.expired_at(self.now_unix_ms()))
    }

    /// Removes each of `keys` under one hold of the writer and at most one flush; how many
    /// live entries were removed.
    pub(crate) fn delete_many<K: AsRef<str>>(&self, keys: &[K]) -> Result<u64, CacheError> {
        self.timed(Operation::Delete, || self.delete_many_untimed(keys))
    }

    fn delete_many_untimed<K: AsRef<str>>(&self, keys: &[K]) -> Result<u64, CacheError> {
        for key in keys {
            check_key(key.as_ref())?;
        }
        let mut writer = self.writer.lock();
        let now_ms = self.now_unix_ms();
        writer.batching = true;
        let mut result = Ok(0);
        for key in keys {
            let key = key.as_ref();
            let Some((shared, spot)) = self
                .index
                .read()
                .get_key_value(key)
                .map(|(shared, location)| (Arc::clone(shared), location.spot()))
            else {
                continue;
            };
            if let Err(error) = self.write_tombstone(&mut writer, &shared) {
                result = Err(error);
                break;
            }
            if self.index.write().remove_if_at(key, spot) && !spot.expired_at(now_ms) {
                result = result.map(|removed| removed + 1);
            }
        }
        writer.batching = false;
        if self.sync_writes
            && let Some(active) = writer.active
        {
            self.slot_file(active)?
                .sync_data()
                .map_err(|error| self.io_error("flush deletions", error))?;
        }
        result
    }

    /// Removes every key `pattern` matches; how many live entries were removed.
    pub(crate) fn invalidate(&self, pattern: &Pattern) -> Result<u64, CacheError> {
        self.timed(Operation::Invalidate, || self.invalidate_untimed(pattern))
    }

    fn invalidate_untimed(&self, pattern: &Pattern) -> Result<u64, CacheError> {
        let mut writer = self.writer.lock();
        let now_ms = self.now_unix_ms();
        let doomed: Vec<(Arc<str>, Spot)> = self
            .index
            .read()
            .iter()
            .filter(|(key, _)| pattern.matches(key))
            .map(|(key, location)| (Arc::clone(key), location.spot()))
            .collect();
        let mut removed = 0;
        for (key, spot) in doomed {
            self.write_tombstone(&mut writer, &key)?;
            if self.index.write().remove_if_at(&key, spot) && !spot.expired_at(now_ms) {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes every entry; how many live entries were removed.
    pub(crate) fn clear(&self) -> Result<u64, CacheError> {
        self.timed(Operation::Clear, || self.clear_untimed())
    }

    fn clear_untimed(&self) -> Result<u64, CacheError> {
        let mut writer = self.writer.lock();
        let now_ms = self.now_unix_ms();
        let live = self
            .index
            .read()
            .iter()
            .filter(|(_, location)| !location.spot().expired_at(now_ms))
            .count() as u64;
        if writer.active.is_some() || !writer.sealed.is_empty() {
            // One record makes the clear durable; emptying the older segments then reclaims
            // their space (a crash in between is covered by the record).
            let record = NewRecord {
                kind: RecordKind::Clear,
                key: &[],
                value: &[],
                encoding: Encoding::Raw,
                raw_len: 0,
                expiry_unix_ms: 0,
            };
            self.append(&mut writer, &record, None)?;
            while let Some(slot) = writer.sealed.pop_front() {
                self.nonces[slot as usize].store(0, Ordering::Relaxed);
                writer.segments[slot as usize] = SegmentState::default();
                self.slot_file(slot)?
                    .set_len(0)
                    .map_err(|error| self.io_error("empty a cleared segment", error))?;
            }
            if let Some(active) = writer.active {
                let state = &mut writer.segments[active as usize];
                state.keys.clear();
                state.tombstones.clear();
            }
        }
        self.index.write().clear();
        Ok(live)
    }

    /// Drops expired entries from the index; returns how many. (Their bytes are reclaimed when
    /// their segment is evicted.)
    pub(crate) fn purge_expired(&self) -> u64 {
        let now_ms = self.now_unix_ms();
        let mut index = self.index.write();
        let expired: Vec<(Arc<str>, Spot)> = index
            .iter()
            .filter(|(_, location)| location.spot().expired_at(now_ms))
            .map(|(key, location)| (Arc::clone(key), location.spot()))
            .collect();
        for (key, spot) in &expired {
            index.remove_if_at(key, *spot);
        }
        self.counters.expired(expired.len() as u64);
        expired.len() as u64
    }

    /// Bytes the segment files take now.
    pub(crate) fn disk_usage(&self) -> u64 {
        let writer = self.writer.lock();
        writer
            .segments
            .iter()
            .filter(|segment| segment.header.is_some())
            .map(|segment| segment.end)
            .sum()
    }

    /// Entries indexed now (expired ones not yet dropped included).
    pub(crate) fn len(&self) -> u64 {
        self.index.read().len()
    }

    /// Entries carried forward by eviction so far.
    pub(crate) fn reinserted(&self) -> u64 {
        self.counters.reinserted()
    }

    /// Segments freed by compaction, and the entries it moved, so far.
    pub(crate) fn compacted(&self) -> (u64, u64) {
        self.counters.compacted()
    }

    /// Flushes written data to the device.
    pub(crate) fn flush(&self) -> Result<(), CacheError> {
        let writer = self.writer.lock();
        if let Some(active) = writer.active {
            self.slot_file(active)?
                .sync_data()
                .map_err(|error| self.io_error("flush the active segment", error))?;
        }
        Ok(())
    }

    /// An exact snapshot of the counters and gauges (it publishes nothing: the metric handles
    /// are updated as things happen).
    pub(crate) fn stats(&self) -> TierStats {
        let (entries, live_bytes) = {
            let index = self.index.read();
            (index.len(), index.live_bytes())
        };
        let mut stats = TierStats::default();
        self.counters.fill(&mut stats);
        stats.entries = entries;
        stats.bytes = live_bytes;
        stats.capacity_bytes = self.capacity();
        stats
    }
}
