//! The disk cache engine: segments, the in-memory index, recovery, eviction.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::hash::BuildHasher;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hashbrown::HashMap;
use nfcs_cache_core::{
    CacheEntry, CacheError, Codec, Expiry, MAX_KEY_LEN, Pattern, TierStats, Ttl, check_key,
    check_ttl,
};
use parking_lot::{Mutex, RwLock};

use crate::config::{DiskConfig, DiskError};
use crate::format::{
    HeaderProblem, NewRecord, RECORD_HEADER_LEN, RecordHeader, RecordKind, RecordProblem,
    SEGMENT_HEADER_LEN, SegmentHeader, check_record,
};

const LOCK_FILE: &str = ".nfcs-disk.lock";
const SEGMENT_PREFIX: &str = "seg-";
const SEGMENT_SUFFIX: &str = ".nfcs";
/// Attempts of a read whose entry moved (reinserted by eviction) while it was being read.
const READ_ATTEMPTS: usize = 4;

/// What opening a directory found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Segments that held data.
    pub segments: u64,
    /// Records read and checked.
    pub records: u64,
    /// Live entries indexed.
    pub entries: u64,
    /// Segment files whose header was damaged, foreign, misplaced or of a newer format; each
    /// was emptied.
    pub reset_segments: u64,
    /// Segments whose records ended in damaged or torn bytes; the rest of the segment was cut
    /// off (each such cut counts once).
    pub corrupt_records: u64,
    /// Records that had expired; not indexed.
    pub expired_records: u64,
    /// Files in the directory that are not the cache's; left alone.
    pub foreign_files: u64,
    /// Segment files beyond the configured size that were removed.
    pub removed_segments: u64,
    /// How long opening took.
    pub duration: Duration,
}

/// Where an entry's record is, and what the index keeps of it.
struct Location {
    slot: u32,
    len: u32,
    offset: u64,
    sequence: u64,
    /// Unix milliseconds, 0 = never.
    expiry: u64,
    /// Read since it was written or last reinserted: eviction gives it another round.
    referenced: AtomicBool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Spot {
    slot: u32,
    len: u32,
    offset: u64,
    sequence: u64,
    expiry: u64,
}

impl Location {
    fn spot(&self) -> Spot {
        Spot {
            slot: self.slot,
            len: self.len,
            offset: self.offset,
            sequence: self.sequence,
            expiry: self.expiry,
        }
    }

    fn new(spot: Spot) -> Location {
        Location {
            slot: spot.slot,
            len: spot.len,
            offset: spot.offset,
            sequence: spot.sequence,
            expiry: spot.expiry,
            referenced: AtomicBool::new(false),
        }
    }
}

impl Spot {
    fn expired_at(&self, now_ms: u64) -> bool {
        self.expiry != 0 && self.expiry <= now_ms
    }
}

#[derive(Default)]
struct Index {
    map: HashMap<Arc<str>, Location, foldhash::fast::RandomState>,
    /// Sum of the record lengths of indexed entries.
    live_bytes: u64,
}

impl Index {
    fn insert(&mut self, key: Arc<str>, spot: Spot) {
        self.live_bytes += u64::from(spot.len);
        if let Some(old) = self.map.insert(key, Location::new(spot)) {
            self.live_bytes -= u64::from(old.len);
        }
    }

    /// Removes `key` if it still points at `spot`; whether it did.
    fn remove_if_at(&mut self, key: &str, spot: Spot) -> bool {
        match self.map.get(key) {
            Some(location) if location.spot() == spot => {
                self.live_bytes -= u64::from(spot.len);
                self.map.remove(key);
                true
            }
            _ => false,
        }
    }

    fn remove(&mut self, key: &str) -> Option<Spot> {
        let location = self.map.remove(key)?;
        self.live_bytes -= u64::from(location.len);
        Some(location.spot())
    }

    /// The key's shared text if indexed (so that a new record reuses it), else a new one.
    fn shared_key(&self, key: &str) -> Arc<str> {
        self.map
            .get_key_value(key)
            .map_or_else(|| Arc::from(key), |(shared, _)| Arc::clone(shared))
    }
}

/// A segment slot as the writer sees it.
#[derive(Default)]
struct SegmentState {
    /// `None` while the slot is free (its file empty).
    header: Option<SegmentHeader>,
    /// Where the next record goes.
    end: u64,
    /// Keys of the puts written into it (some since overwritten or deleted).
    keys: Vec<Arc<str>>,
}

struct Writer {
    segments: Vec<SegmentState>,
    active: Option<u32>,
    /// Sealed segments, oldest (lowest sequence) first.
    sealed: VecDeque<u32>,
    next_sequence: u64,
    buffer: Vec<u8>,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    inserts: AtomicU64,
    evictions: AtomicU64,
    expirations: AtomicU64,
    errors: AtomicU64,
    reinserted: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The engine behind [`DiskCache`](crate::DiskCache); every method blocks on I/O.
pub(crate) struct Store {
    directory: PathBuf,
    pub(crate) name: String,
    compression: bool,
    compression_level: i32,
    compression_min_bytes: usize,
    default_ttl: Option<Duration>,
    sync_writes: bool,
    segment_size: u64,
    files: Box<[File]>,
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

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

fn segment_path(directory: &Path, slot: u32) -> PathBuf {
    directory.join(format!("{SEGMENT_PREFIX}{slot:05}{SEGMENT_SUFFIX}"))
}

fn parse_segment_name(name: &str) -> Option<u32> {
    let digits = name
        .strip_prefix(SEGMENT_PREFIX)?
        .strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() == 5 && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    }
}

fn random_nonce(sequence: u64) -> u64 {
    // std's RandomState is seeded from the OS per process and per instance; a zero nonce
    // would look like a free slot, so it is avoided.
    std::collections::hash_map::RandomState::new().hash_one((sequence, Instant::now())) | 1
}

/// The largest value the tier decompresses.
const MAX_RAW_LEN: usize = Codec::DEFAULT_MAX_DECODED_SIZE;

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Compresses with this thread's reusable zstd context.
fn compress(level: i32, data: &[u8]) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = match &mut *slot {
            Some((current, compressor)) if *current == level => compressor,
            other => {
                let (_, compressor) = other.insert((level, zstd::bulk::Compressor::new(level)?));
                compressor
            }
        };
        compressor.compress(data)
    })
}

/// Decompresses into a buffer of exactly `raw_len` bytes with this thread's zstd context.
fn decompress(data: &[u8], raw_len: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let decompressor = match &mut *slot {
            Some(decompressor) => decompressor,
            other => other.insert(zstd::bulk::Decompressor::new()?),
        };
        let raw = decompressor.decompress(data, raw_len)?;
        if raw.len() == raw_len {
            Ok(raw)
        } else {
            Err(std::io::Error::other(
                "decompressed length differs from the record's",
            ))
        }
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
    pub(crate) fn open(directory: &Path, config: &DiskConfig) -> Result<Store, DiskError> {
        let started = Instant::now();
        config.validate()?;
        std::fs::create_dir_all(directory)
            .map_err(|error| DiskError::io("create the directory", directory, error))?;
        let lock_path = directory.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|error| DiskError::io("create the lock file", &lock_path, error))?;
        match lock.try_lock() {
            Ok(()) => {}
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

        let mut report = RecoveryReport::default();
        let mut existing: Vec<(u32, PathBuf)> = Vec::new();
        let listing = std::fs::read_dir(directory)
            .map_err(|error| DiskError::io("list the directory", directory, error))?;
        for entry in listing {
            let entry =
                entry.map_err(|error| DiskError::io("list the directory", directory, error))?;
            let name = entry.file_name();
            match name.to_str().and_then(parse_segment_name) {
                Some(slot) => existing.push((slot, entry.path())),
                None if name == LOCK_FILE => {}
                None => report.foreign_files += 1,
            }
        }

        // The segment size is fixed when a directory is first used: a valid header tells it.
        let mut segment_size = config.planned_segment_bytes();
        for (_, path) in &existing {
            let mut header = [0_u8; SEGMENT_HEADER_LEN as usize];
            let read = File::open(path).and_then(|file| file.read_exact_at(&mut header, 0));
            if read.is_ok()
                && let Ok(decoded) = SegmentHeader::decode(&header)
                && decoded.sequence != 0
            {
                segment_size = decoded.segment_size;
                break;
            }
        }
        let slot_count = config.max_bytes / segment_size;
        if slot_count < DiskConfig::MIN_SEGMENTS {
            return Err(DiskError::InvalidConfig {
                field: "max_bytes",
                reason: format!(
                    "the directory was created with {segment_size}-byte segments; {} bytes hold fewer than {} of them",
                    config.max_bytes,
                    DiskConfig::MIN_SEGMENTS
                ),
            });
        }
        let slot_count = u32::try_from(slot_count).unwrap_or(u32::MAX).min(99_999);
        for (slot, path) in &existing {
            if *slot >= slot_count {
                std::fs::remove_file(path).map_err(|error| {
                    DiskError::io("remove a segment beyond the size", path, error)
                })?;
                report.removed_segments += 1;
            }
        }

        let mut files = Vec::with_capacity(slot_count as usize);
        for slot in 0..slot_count {
            let path = segment_path(directory, slot);
            let file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|error| DiskError::io("open a segment", &path, error))?;
            files.push(file);
        }

        let mut store = Store {
            directory: directory.to_owned(),
            name: config.name.clone(),
            compression: config.compression,
            compression_level: config.compression_level,
            compression_min_bytes: config.compression_min_bytes,
            default_ttl: config.default_ttl,
            sync_writes: config.sync_writes,
            segment_size,
            nonces: (0..slot_count).map(|_| AtomicU64::new(0)).collect(),
            files: files.into_boxed_slice(),
            index: RwLock::new(Index::default()),
            writer: Mutex::new(Writer {
                segments: (0..slot_count).map(|_| SegmentState::default()).collect(),
                active: None,
                sealed: VecDeque::new(),
                next_sequence: 1,
                buffer: Vec::new(),
            }),
            counters: Counters::default(),
            recovery: RecoveryReport::default(),
            _lock: lock,
        };
        store.recover(&mut report)?;
        report.entries = store.index.read().map.len() as u64;
        report.duration = started.elapsed();
        store.recovery = report;
        Ok(store)
    }

    fn path(&self, slot: u32) -> PathBuf {
        segment_path(&self.directory, slot)
    }

    /// Rebuilds the index from the segments, oldest first, and cleans what is damaged.
    fn recover(&mut self, report: &mut RecoveryReport) -> Result<(), DiskError> {
        let mut valid: Vec<SegmentHeader> = Vec::new();
        for (slot, file) in self.files.iter().enumerate() {
            let slot = slot as u32;
            let length = file
                .metadata()
                .map_err(|error| DiskError::io("inspect a segment", self.path(slot), error))?
                .len();
            if length == 0 {
                continue;
            }
            let mut bytes = [0_u8; SEGMENT_HEADER_LEN as usize];
            let header = match file.read_exact_at(&mut bytes, 0) {
                Ok(()) => SegmentHeader::decode(&bytes),
                Err(_) => Err(HeaderProblem::Truncated),
            };
            match header {
                Ok(header)
                    if header.slot == slot
                        && header.segment_size == self.segment_size
                        && header.sequence != 0 =>
                {
                    valid.push(header);
                }
                Ok(header) if header.sequence == 0 => self.empty_slot(slot)?,
                other => {
                    tracing::warn!(
                        segment = %self.path(slot).display(),
                        problem = ?other.err(),
                        "disk cache: unusable segment header; emptying the segment"
                    );
                    report.reset_segments += 1;
                    self.empty_slot(slot)?;
                }
            }
        }
        valid.sort_by_key(|header| header.sequence);

        let mut index = Index::default();
        let writer = self.writer.get_mut();
        let now_ms = now_unix_ms();
        for header in &valid {
            let slot = header.slot;
            let file = &self.files[slot as usize];
            let state = &mut writer.segments[slot as usize];
            state.header = Some(*header);
            let (end, clean) = scan_segment(
                file,
                header,
                self.segment_size,
                &mut index,
                &mut state.keys,
                now_ms,
                report,
            )
            .map_err(|error| {
                DiskError::io("read a segment", segment_path(&self.directory, slot), error)
            })?;
            state.end = end;
            if !clean {
                report.corrupt_records += 1;
                tracing::warn!(
                    segment = %segment_path(&self.directory, slot).display(),
                    offset = end,
                    "disk cache: damaged or torn record; cutting the segment there"
                );
                file.set_len(end).map_err(|error| {
                    DiskError::io(
                        "cut a damaged segment",
                        segment_path(&self.directory, slot),
                        error,
                    )
                })?;
            }
            self.nonces[slot as usize].store(header.nonce, Ordering::Relaxed);
            writer.next_sequence = writer.next_sequence.max(header.sequence + 1);
            report.segments += 1;
        }
        if let Some((newest, older)) = valid.split_last() {
            writer.active = Some(newest.slot);
            writer.sealed = older.iter().map(|header| header.slot).collect();
        }
        *self.index.get_mut() = index;
        // Rotation needs a free slot in reserve.
        let has_free = writer
            .segments
            .iter()
            .any(|segment| segment.header.is_none());
        if !has_free {
            let mut writer = self.writer.lock();
            self.evict_oldest(&mut writer, 0).map_err(|error| {
                DiskError::io(
                    "evict a segment",
                    &self.directory,
                    std::io::Error::other(error),
                )
            })?;
        }
        Ok(())
    }

    /// Empties a slot's file (a free slot is an empty file).
    fn empty_slot(&self, slot: u32) -> Result<(), DiskError> {
        self.files[slot as usize]
            .set_len(0)
            .map_err(|error| DiskError::io("empty a segment", self.path(slot), error))
    }

    pub(crate) fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    pub(crate) fn directory(&self) -> &Path {
        &self.directory
    }

    pub(crate) fn segment_size(&self) -> u64 {
        self.segment_size
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.segment_size * self.files.len() as u64
    }

    /// The largest record (header, key and stored value) a segment takes.
    fn max_record_len(&self) -> u64 {
        self.segment_size - SEGMENT_HEADER_LEN
    }

    fn io_error(&self, operation: &'static str, error: std::io::Error) -> CacheError {
        bump(&self.counters.errors);
        CacheError::backend(&self.name, operation, error)
    }

    pub(crate) fn get(&self, key: &str) -> Result<Option<CacheEntry>, CacheError> {
        check_key(key)?;
        for _ in 0..READ_ATTEMPTS {
            let found = {
                let index = self.index.read();
                index.map.get(key).map(|location| {
                    location.referenced.store(true, Ordering::Relaxed);
                    location.spot()
                })
            };
            let Some(spot) = found else {
                bump(&self.counters.misses);
                return Ok(None);
            };
            let now_ms = now_unix_ms();
            if spot.expired_at(now_ms) {
                if self.index.write().remove_if_at(key, spot) {
                    bump(&self.counters.expirations);
                }
                bump(&self.counters.misses);
                return Ok(None);
            }
            match self.read_value(key, spot) {
                Ok(value) => {
                    bump(&self.counters.hits);
                    let ttl = (spot.expiry != 0)
                        .then(|| Expiry::from_unix_millis(spot.expiry).remaining())
                        .flatten();
                    if spot.expiry != 0 && ttl.is_none() {
                        // It expired while being read.
                        continue;
                    }
                    return Ok(Some(CacheEntry::new(value, ttl)));
                }
                Err(ReadFailure::Io(error)) => return Err(self.io_error("read an entry", error)),
                Err(ReadFailure::Invalid) => {
                    // Damaged, unless eviction moved or dropped the entry meanwhile: then the
                    // index no longer points here and the next attempt follows it.
                    if self.index.write().remove_if_at(key, spot) {
                        bump(&self.counters.errors);
                        tracing::warn!(
                            key = %nfcs_cache_core::key_preview(key),
                            segment = %self.path(spot.slot).display(),
                            offset = spot.offset,
                            "disk cache: damaged record; dropped"
                        );
                        bump(&self.counters.misses);
                        return Ok(None);
                    }
                }
            }
        }
        bump(&self.counters.misses);
        Ok(None)
    }

    /// Reads, checks and decompresses the value of the record at `spot`.
    fn read_value(&self, key: &str, spot: Spot) -> Result<Bytes, ReadFailure> {
        let (header, bytes, value_start) = self.read_record(spot)?;
        let key_range = RECORD_HEADER_LEN..RECORD_HEADER_LEN + header.key_len as usize;
        if header.kind != RecordKind::Put || &bytes[key_range] != key.as_bytes() {
            return Err(ReadFailure::Invalid);
        }
        if header.compressed {
            let raw_len = header.raw_len as usize;
            if raw_len > MAX_RAW_LEN {
                return Err(ReadFailure::Invalid);
            }
            decompress(&bytes[value_start..], raw_len)
                .map(Bytes::from)
                .map_err(|_| ReadFailure::Invalid)
        } else {
            Ok(Bytes::from(bytes).slice(value_start..))
        }
    }

    /// Reads and checks the record at `spot`: its header, its bytes, where its value starts.
    fn read_record(&self, spot: Spot) -> Result<(RecordHeader, Vec<u8>, usize), ReadFailure> {
        let file = self
            .files
            .get(spot.slot as usize)
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

    pub(crate) fn set(&self, key: &str, value: &[u8], ttl: Ttl) -> Result<(), CacheError> {
        check_key(key)?;
        let ttl = check_ttl(ttl)?.resolve(self.default_ttl);
        let expiry = ttl.map_or(0, |ttl| Expiry::after(ttl).as_unix_millis());
        if value.len() > MAX_RAW_LEN {
            return Err(CacheError::value_too_large(
                &self.name,
                key,
                value.len() as u64,
                MAX_RAW_LEN as u64,
            ));
        }
        let compressed = if self.compression && value.len() >= self.compression_min_bytes {
            let packed = compress(self.compression_level, value)
                .map_err(|error| self.io_error("compress a value", error))?;
            // Kept only when it saves at least a sixteenth: decompressing costs time too.
            (packed.len() + value.len() / 16 < value.len()).then_some(packed)
        } else {
            None
        };
        let record = NewRecord {
            kind: RecordKind::Put,
            key: key.as_bytes(),
            value: compressed.as_deref().unwrap_or(value),
            compressed: compressed.is_some(),
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
        bump(&self.counters.inserts);
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
        let file = &self.files[slot as usize];
        file.write_all_at(&writer.buffer, offset)
            .map_err(|error| self.io_error("write a record", error))?;
        if self.sync_writes {
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
            state.keys.push(Arc::clone(key));
        }
        Ok(Spot {
            slot,
            len: record.len() as u32,
            offset,
            sequence: header.sequence,
            expiry: record.expiry_unix_ms,
        })
    }

    /// The active slot, with room for `len` more bytes.
    fn ensure_space(&self, writer: &mut Writer, len: u64) -> Result<u32, CacheError> {
        if let Some(active) = writer.active
            && writer.segments[active as usize].end + len <= self.segment_size
        {
            return Ok(active);
        }
        if let Some(active) = writer.active.take() {
            writer.sealed.push_back(active);
        }
        let free = match writer
            .segments
            .iter()
            .position(|segment| segment.header.is_none())
        {
            Some(free) => free as u32,
            None => {
                // Only after a failed rotation: make room without reinsertion.
                self.evict_oldest(writer, 0)?;
                writer
                    .segments
                    .iter()
                    .position(|segment| segment.header.is_none())
                    .ok_or_else(|| {
                        CacheError::backend(
                            &self.name,
                            "rotate segments",
                            std::io::Error::other("no segment could be freed"),
                        )
                    })? as u32
            }
        };
        self.activate(writer, free)?;
        writer.active = Some(free);
        if !writer
            .segments
            .iter()
            .any(|segment| segment.header.is_none())
        {
            // Keep a free slot in reserve for the next rotation; entries read since they were
            // written get another round in the new segment, within what leaves room for `len`.
            let room = self.max_record_len() - len;
            let budget = room.min(self.max_record_len() / 2);
            self.evict_oldest(writer, budget)?;
        }
        Ok(free)
    }

    /// Starts a new use of a free slot.
    fn activate(&self, writer: &mut Writer, slot: u32) -> Result<(), CacheError> {
        let sequence = writer.next_sequence;
        writer.next_sequence += 1;
        let header = SegmentHeader {
            slot,
            sequence,
            segment_size: self.segment_size,
            nonce: random_nonce(sequence),
            created_unix_ms: now_unix_ms(),
        };
        let file = &self.files[slot as usize];
        file.set_len(0)
            .and_then(|()| file.write_all_at(&header.encode(), 0))
            .map_err(|error| self.io_error("start a segment", error))?;
        self.nonces[slot as usize].store(header.nonce, Ordering::Relaxed);
        let state = &mut writer.segments[slot as usize];
        *state = SegmentState {
            header: Some(header),
            end: SEGMENT_HEADER_LEN,
            keys: Vec::new(),
        };
        Ok(())
    }

    /// Evicts the oldest sealed segment: entries read since they were written (up to
    /// `reinsert_budget` bytes) are rewritten into the active segment, the rest leave the
    /// index, and the slot is emptied.
    fn evict_oldest(&self, writer: &mut Writer, reinsert_budget: u64) -> Result<(), CacheError> {
        let Some(oldest) = writer.sealed.pop_front() else {
            return Ok(());
        };
        let Some(old_header) = writer.segments[oldest as usize].header else {
            return Ok(());
        };
        let keys = std::mem::take(&mut writer.segments[oldest as usize].keys);
        let now_ms = now_unix_ms();
        let mut budget = reinsert_budget;
        let mut keep = Vec::new();
        {
            let mut index = self.index.write();
            for key in keys {
                let Some(location) = index.map.get(&key) else {
                    continue;
                };
                if location.slot != oldest || location.sequence != old_header.sequence {
                    continue;
                }
                let spot = location.spot();
                let expired = spot.expired_at(now_ms);
                if !expired
                    && location.referenced.load(Ordering::Relaxed)
                    && u64::from(spot.len) <= budget
                {
                    budget -= u64::from(spot.len);
                    keep.push((key, spot));
                } else {
                    index.remove_if_at(&key, spot);
                    bump(if expired {
                        &self.counters.expirations
                    } else {
                        &self.counters.evictions
                    });
                }
            }
        }
        if let Some(active) = writer.active.filter(|_| !keep.is_empty()) {
            for (key, spot) in keep {
                let moved = match self.read_record(spot) {
                    Ok((header, bytes, value_start)) => {
                        let record = NewRecord {
                            kind: RecordKind::Put,
                            key: key.as_bytes(),
                            value: &bytes[value_start..],
                            compressed: header.compressed,
                            raw_len: header.raw_len,
                            expiry_unix_ms: header.expiry_unix_ms,
                        };
                        Some(self.append_to_active(writer, active, &record, Some(&key))?)
                    }
                    Err(_) => None,
                };
                let mut index = self.index.write();
                match moved {
                    Some(new_spot) if index.remove_if_at(&key, spot) => {
                        index.insert(key, new_spot);
                        bump(&self.counters.reinserted);
                    }
                    _ => {
                        if index.remove_if_at(&key, spot) {
                            bump(&self.counters.evictions);
                        }
                    }
                }
            }
        } else {
            let mut index = self.index.write();
            for (key, spot) in keep {
                if index.remove_if_at(&key, spot) {
                    bump(&self.counters.evictions);
                }
            }
        }
        self.nonces[oldest as usize].store(0, Ordering::Relaxed);
        writer.segments[oldest as usize] = SegmentState::default();
        self.files[oldest as usize]
            .set_len(0)
            .map_err(|error| self.io_error("empty an evicted segment", error))?;
        Ok(())
    }

    /// Writes a tombstone for `key`; the caller removes it from the index.
    fn write_tombstone(&self, writer: &mut Writer, key: &str) -> Result<(), CacheError> {
        let record = NewRecord {
            kind: RecordKind::Tombstone,
            key: key.as_bytes(),
            value: &[],
            compressed: false,
            raw_len: 0,
            expiry_unix_ms: 0,
        };
        self.append(writer, &record, None).map(|_| ())
    }

    pub(crate) fn delete(&self, key: &str) -> Result<bool, CacheError> {
        check_key(key)?;
        let mut writer = self.writer.lock();
        let Some(spot) = self.index.read().map.get(key).map(Location::spot) else {
            return Ok(false);
        };
        self.write_tombstone(&mut writer, key)?;
        self.index.write().remove_if_at(key, spot);
        Ok(!spot.expired_at(now_unix_ms()))
    }

    pub(crate) fn invalidate(&self, pattern: &Pattern) -> Result<u64, CacheError> {
        let mut writer = self.writer.lock();
        let now_ms = now_unix_ms();
        let doomed: Vec<(Arc<str>, Spot)> = self
            .index
            .read()
            .map
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

    pub(crate) fn clear(&self) -> Result<u64, CacheError> {
        let mut writer = self.writer.lock();
        let now_ms = now_unix_ms();
        let live = self
            .index
            .read()
            .map
            .values()
            .filter(|location| !location.spot().expired_at(now_ms))
            .count() as u64;
        if writer.active.is_some() || !writer.sealed.is_empty() {
            // One record makes the clear durable; emptying the older segments then reclaims
            // their space (a crash in between is covered by the record).
            let record = NewRecord {
                kind: RecordKind::Clear,
                key: &[],
                value: &[],
                compressed: false,
                raw_len: 0,
                expiry_unix_ms: 0,
            };
            self.append(&mut writer, &record, None)?;
            while let Some(slot) = writer.sealed.pop_front() {
                self.nonces[slot as usize].store(0, Ordering::Relaxed);
                writer.segments[slot as usize] = SegmentState::default();
                self.files[slot as usize]
                    .set_len(0)
                    .map_err(|error| self.io_error("empty a cleared segment", error))?;
            }
            if let Some(active) = writer.active {
                writer.segments[active as usize].keys.clear();
            }
        }
        let mut index = self.index.write();
        index.map.clear();
        index.live_bytes = 0;
        Ok(live)
    }

    /// Drops expired entries from the index; returns how many. (Their bytes are reclaimed when
    /// their segment is evicted.)
    pub(crate) fn purge_expired(&self) -> u64 {
        let now_ms = now_unix_ms();
        let mut index = self.index.write();
        let expired: Vec<(Arc<str>, Spot)> = index
            .map
            .iter()
            .filter(|(_, location)| location.spot().expired_at(now_ms))
            .map(|(key, location)| (Arc::clone(key), location.spot()))
            .collect();
        for (key, spot) in &expired {
            index.remove_if_at(key, *spot);
        }
        self.counters
            .expirations
            .fetch_add(expired.len() as u64, Ordering::Relaxed);
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

    pub(crate) fn len(&self) -> u64 {
        self.index.read().map.len() as u64
    }

    pub(crate) fn reinserted(&self) -> u64 {
        self.counters.reinserted.load(Ordering::Relaxed)
    }

    /// Flushes written data to the device.
    pub(crate) fn flush(&self) -> Result<(), CacheError> {
        let writer = self.writer.lock();
        if let Some(active) = writer.active {
            self.files[active as usize]
                .sync_data()
                .map_err(|error| self.io_error("flush the active segment", error))?;
        }
        Ok(())
    }

    pub(crate) fn stats(&self) -> TierStats {
        let (entries, live_bytes) = {
            let index = self.index.read();
            (index.map.len() as u64, index.live_bytes)
        };
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut stats = TierStats::default();
        stats.hits = load(&self.counters.hits);
        stats.misses = load(&self.counters.misses);
        stats.inserts = load(&self.counters.inserts);
        stats.evictions = load(&self.counters.evictions);
        stats.expirations = load(&self.counters.expirations);
        stats.errors = load(&self.counters.errors);
        stats.entries = entries;
        stats.bytes = live_bytes;
        stats.capacity_bytes = self.capacity();
        stats
    }
}

/// Reads a segment's records in order into `index`; returns where the valid records end and
/// whether the file ends there too (`false`: damaged or torn bytes follow).
fn scan_segment(
    file: &File,
    segment: &SegmentHeader,
    segment_size: u64,
    index: &mut Index,
    keys: &mut Vec<Arc<str>>,
    now_ms: u64,
    report: &mut RecoveryReport,
) -> std::io::Result<(u64, bool)> {
    let file_len = file.metadata()?.len();
    let data_end = file_len.min(segment_size);
    let mut reader = BufReader::with_capacity(1 << 20, file);
    reader.seek(SeekFrom::Start(SEGMENT_HEADER_LEN))?;
    let mut offset = SEGMENT_HEADER_LEN;
    let mut record = Vec::new();
    loop {
        if offset == file_len {
            return Ok((offset, true));
        }
        if data_end - offset < RECORD_HEADER_LEN as u64 {
            return Ok((offset, false));
        }
        record.resize(RECORD_HEADER_LEN, 0);
        reader.read_exact(&mut record)?;
        let decoded = match RecordHeader::decode(&record) {
            Ok(decoded) => decoded,
            Err(_) => return Ok((offset, false)),
        };
        // Bounds before allocating: a damaged length must not make us read gigabytes.
        if decoded.key_len as usize > MAX_KEY_LEN || offset + decoded.record_len() > data_end {
            return Ok((offset, false));
        }
        let len = decoded.record_len() as usize;
        record.resize(len, 0);
        reader.read_exact(&mut record[RECORD_HEADER_LEN..])?;
        let (header, key, _) = match check_record(&record, segment) {
            Ok(checked) => checked,
            Err(
                RecordProblem::Truncated
                | RecordProblem::NotARecord
                | RecordProblem::NewerVersion
                | RecordProblem::Corrupt,
            ) => {
                return Ok((offset, false));
            }
        };
        let Ok(key) = std::str::from_utf8(key) else {
            return Ok((offset, false));
        };
        report.records += 1;
        match header.kind {
            RecordKind::Put => {
                let spot = Spot {
                    slot: segment.slot,
                    len: len as u32,
                    offset,
                    sequence: segment.sequence,
                    expiry: header.expiry_unix_ms,
                };
                if spot.expired_at(now_ms) {
                    // Expired, and whatever older version it replaced is gone with it.
                    index.remove(key);
                    report.expired_records += 1;
                } else {
                    let shared = index.shared_key(key);
                    keys.push(Arc::clone(&shared));
                    index.insert(shared, spot);
                }
            }
            RecordKind::Tombstone => {
                index.remove(key);
            }
            RecordKind::Clear => {
                index.map.clear();
                index.live_bytes = 0;
            }
        }
        offset += len as u64;
    }
}
