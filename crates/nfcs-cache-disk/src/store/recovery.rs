//! Opening a directory: the lock, the segment files (never through a link), the index rebuilt
//! from the records, and whatever a crash or damage left cleaned away.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nfcs_cache_core::MAX_KEY_LEN;
use nfcs_cache_core::telemetry::{InstanceLabels, TierMetrics};
use parking_lot::{Mutex, RwLock};

use super::counters::Counters;
use super::files::{self, LOCK_FILE};
use super::index::{Index, Spot};
use super::{SegmentState, Store, Writer};
use crate::config::{DiskConfig, DiskError};
use crate::format::{
    Encoding, HeaderProblem, NewRecord, RECORD_HEADER_LEN, RecordHeader, RecordKind,
    SEGMENT_HEADER_LEN, SegmentHeader, check_record, checksum, clear_header, raw_lengths,
    stored_checksum,
};

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
    /// Stretches of damaged or torn bytes among the records (each stretch counts once).
    /// Recovery steps over a damaged record to the next valid one, so a damaged byte costs the
    /// record it is in, not the rest of its segment; a stretch between valid records is
    /// overwritten with a padding record, and one at a segment's end is cut off.
    pub corrupt_records: u64,
    /// Bytes in those stretches.
    pub damaged_bytes: u64,
    /// Keys dropped from the index because a damaged record may have been written for them
    /// (a put or a deletion of the key that can no longer be read): their older values are not
    /// brought back. A damaged clear record clears what was written before it.
    pub suspect_keys_dropped: u64,
    /// Positions after a damaged record where the record magic was found and the record
    /// there checked (each costs one checksum; a candidate is accepted only when its whole
    /// record checks against the segment's nonce and sequence).
    pub resync_candidates: u64,
    /// Segment headers with one damaged byte that were repaired (rewritten) instead of
    /// emptying the segment.
    pub repaired_headers: u64,
    /// Records that had expired (on the cache's clock); not indexed.
    pub expired_records: u64,
    /// Files in the directory that are not the cache's; left alone.
    pub foreign_files: u64,
    /// Segment files beyond the configured size that were removed.
    pub removed_segments: u64,
    /// Segment names (`seg-NNNNN.nfcs`) holding a symbolic link, a directory or another
    /// non-file. Each is logged and left alone: never followed, written, truncated or removed,
    /// and its slot is not used (the cache's capacity shrinks by one segment per skipped slot).
    pub skipped_slots: u64,
    /// How long opening took.
    pub duration: Duration,
}

/// The most segments a directory's life can use: sequences at or past it are damage (at a
/// segment a microsecond it would take 146,000 years), so the next sequence never overflows.
const MAX_SEQUENCE: u64 = 1 << 62;

/// Whether a header that checks could have been written by a cache: a slot in use, a sequence
/// below [`MAX_SEQUENCE`], a segment size a configuration may ask for.
fn plausible(header: &SegmentHeader) -> bool {
    header.sequence != 0
        && header.sequence < MAX_SEQUENCE
        && (DiskConfig::MIN_SEGMENT_BYTES..=DiskConfig::MAX_SEGMENT_BYTES)
            .contains(&header.segment_size)
}

/// Logs and counts a segment name that holds a non-file.
fn skip(report: &mut RecoveryReport, error: &DiskError) {
    tracing::warn!(%error, "disk cache: skipping a segment slot that is not a regular file");
    report.skipped_slots += 1;
}

/// The segment names in `directory` (slot and path); counts the foreign files.
fn list_segments(
    directory: &Path,
    report: &mut RecoveryReport,
) -> Result<Vec<(u32, PathBuf)>, DiskError> {
    let mut existing = Vec::new();
    let listing = std::fs::read_dir(directory)
        .map_err(|error| DiskError::io("list the directory", directory, error))?;
    for entry in listing {
        let entry = entry.map_err(|error| DiskError::io("list the directory", directory, error))?;
        let name = entry.file_name();
        match name.to_str().and_then(files::parse_segment_name) {
            Some(slot) => existing.push((slot, entry.path())),
            None if name == LOCK_FILE => {}
            None => report.foreign_files += 1,
        }
    }
    Ok(existing)
}

impl Store {
    /// Opens (creating if needed) the cache in `directory` and recovers its entries, reporting
    /// through `metrics` (resolved here, with the recorder in effect, when `None`).
    pub(crate) fn open(
        directory: &Path,
        config: &DiskConfig,
        metrics: Option<TierMetrics>,
    ) -> Result<Store, DiskError> {
        // How long opening took is a measurement for the report, not a time decision, so it
        // reads `Instant` rather than the configured clock.
        let started = Instant::now();
        config.validate()?;
        std::fs::create_dir_all(directory)
            .map_err(|error| DiskError::io("create the directory", directory, error))?;
        let lock = files::lock_directory(directory)?;

        // Every segment file found is opened once, without following links; a name holding a
        // non-file is skipped, so one stray directory or link does not take the cache down.
        let mut report = RecoveryReport::default();
        let mut found: BTreeMap<u32, File> = BTreeMap::new();
        let mut skipped: BTreeSet<u32> = BTreeSet::new();
        for (slot, path) in list_segments(directory, &mut report)? {
            match files::open_existing(&path) {
                Ok(Some(file)) => {
                    found.insert(slot, file);
                }
                // Removed since the listing: the slot is created below if it is in range.
                Ok(None) => {}
                Err(error @ DiskError::NotAFile { .. }) => {
                    skip(&mut report, &error);
                    skipped.insert(slot);
                }
                Err(error) => return Err(error),
            }
        }

        // The segment size is fixed when a directory is first used: a valid header tells it
        // (a size no configuration may ask for, or a sequence no cache reaches, is damage).
        let mut segment_size = config.planned_segment_bytes();
        for file in found.values() {
            let mut header = [0_u8; SEGMENT_HEADER_LEN as usize];
            if file.read_exact_at(&mut header, 0).is_ok()
                && let Ok(decoded) = SegmentHeader::decode(&header)
                && plausible(&decoded)
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
        for (slot, file) in found.split_off(&slot_count) {
            drop(file);
            // It was a regular file when opened; should it have been swapped for a link since,
            // removing the name removes the link, never what it points at.
            let path = files::segment_path(directory, slot);
            std::fs::remove_file(&path)
                .map_err(|error| DiskError::io("remove a segment beyond the size", &path, error))?;
            report.removed_segments += 1;
        }

        let mut slots = Vec::with_capacity(slot_count as usize);
        for slot in 0..slot_count {
            let file = match found.remove(&slot) {
                Some(file) => Some(file),
                None if skipped.contains(&slot) => None,
                None => {
                    let path = files::segment_path(directory, slot);
                    match files::open_or_create(&path, "create a segment") {
                        Ok(file) => Some(file),
                        Err(error @ DiskError::NotAFile { .. }) => {
                            skip(&mut report, &error);
                            None
                        }
                        Err(error) => return Err(error),
                    }
                }
            };
            slots.push(file);
        }
        let usable = slots.iter().filter(|file| file.is_some()).count() as u64;
        if usable < DiskConfig::MIN_SEGMENTS {
            return Err(DiskError::TooFewSegments {
                directory: directory.to_owned(),
                usable,
                skipped: u64::from(slot_count) - usable,
                required: DiskConfig::MIN_SEGMENTS,
            });
        }

        // The metric handles are resolved by now (by `open_async` on the caller's thread, where
        // the caller's recorder is in effect), and before recovery, so that an eviction it needs
        // is counted.
        let metrics = metrics.unwrap_or_else(|| metrics_for(config));
        metrics.capacity(segment_size * usable);
        let mut store = Store {
            directory: directory.to_owned(),
            name: config.name.clone(),
            compression: config.compression,
            compression_codec: config.compression_codec,
            compression_level: config.compression_level,
            compression_min_bytes: config.compression_min_bytes,
            default_ttl: config.default_ttl,
            sync_writes: config.sync_writes,
            compaction_live_ratio: config.compaction_live_ratio,
            segment_size,
            clock: config.clock.clone(),
            nonces: (0..slot_count).map(|_| AtomicU64::new(0)).collect(),
            files: slots.into_boxed_slice(),
            index: RwLock::new(Index::default()),
            writer: Mutex::new(Writer {
                segments: (0..slot_count).map(|_| SegmentState::default()).collect(),
                active: None,
                sealed: VecDeque::new(),
                next_sequence: 1,
                buffer: Vec::new(),
                batching: false,
            }),
            counters: Counters::new(metrics),
            recovery: RecoveryReport::default(),
            _lock: lock,
        };
        store.recover(&mut report)?;
        report.entries = store.index.read().len();
        report.duration = started.elapsed();
        store.recovery = report;
        Ok(store)
    }

    /// Rebuilds the index from the segments, oldest first, and cleans what is damaged.
    fn recover(&mut self, report: &mut RecoveryReport) -> Result<(), DiskError> {
        let mut valid: Vec<SegmentHeader> = Vec::new();
        for (slot, file) in self.files.iter().enumerate() {
            let slot = slot as u32;
            let Some(file) = file else {
                continue;
            };
            let length = file
                .metadata()
                .map_err(|error| DiskError::io("inspect a segment", self.path(slot), error))?
                .len();
            if length == 0 {
                continue;
            }
            let mut bytes = [0_u8; SEGMENT_HEADER_LEN as usize];
            let mut header = match file.read_exact_at(&mut bytes, 0) {
                Ok(()) => SegmentHeader::decode(&bytes),
                Err(_) => Err(HeaderProblem::Truncated),
            };
            // One damaged byte in a header is repaired rather than costing the segment.
            if matches!(
                header,
                Err(HeaderProblem::Corrupt | HeaderProblem::NotASegment)
            ) && let Some(repaired) = SegmentHeader::repair(&bytes, |candidate| {
                candidate.slot == slot
                    && candidate.segment_size == self.segment_size
                    && plausible(candidate)
            }) {
                file.write_all_at(&repaired.encode(), 0).map_err(|error| {
                    DiskError::io("repair a segment header", self.path(slot), error)
                })?;
                tracing::warn!(
                    segment = %self.path(slot).display(),
                    "disk cache: repaired a segment header with one damaged byte"
                );
                report.repaired_headers += 1;
                header = Ok(repaired);
            }
            match header {
                Ok(header)
                    if header.slot == slot
                        && header.segment_size == self.segment_size
                        && plausible(&header) =>
                {
                    valid.push(header);
                }
                Ok(header) if header.sequence == 0 => empty_slot(file, &self.path(slot))?,
                other => {
                    tracing::warn!(
                        segment = %self.path(slot).display(),
                        problem = ?other.err(),
                        "disk cache: unusable segment header; emptying the segment"
                    );
                    report.reset_segments += 1;
                    empty_slot(file, &self.path(slot))?;
                }
            }
        }
        valid.sort_by_key(|header| header.sequence);

        let mut index = Index::default();
        let now_ms = self.now_unix_ms();
        let mut padding = Vec::new();
        let mut dropped: Vec<Arc<str>> = Vec::new();
        let writer = self.writer.get_mut();
        for header in &valid {
            let slot = header.slot;
            let path = files::segment_path(&self.directory, slot);
            // Only slots with a file made it into `valid`.
            let Some(file) = &self.files[slot as usize] else {
                continue;
            };
            let state = &mut writer.segments[slot as usize];
            state.header = Some(*header);
            let scan = scan_segment(
                file,
                header,
                self.segment_size,
                &mut index,
                state,
                now_ms,
                report,
            )
            .map_err(|error| DiskError::io("read a segment", &path, error))?;
            state.end = scan.end;
            if !scan.clean {
                tracing::warn!(
                    segment = %path.display(),
                    offset = scan.end,
                    "disk cache: damaged or torn record at the end of a segment; cutting it there"
                );
                file.set_len(scan.end)
                    .map_err(|error| DiskError::io("cut a damaged segment", &path, error))?;
            }
            for &(start, end) in &scan.clears {
                tracing::warn!(
                    segment = %path.display(),
                    offset = start,
                    "disk cache: a damaged record may have been a clear; written again as one"
                );
                write_filler(file, header, RecordKind::Clear, start, end)
                    .map_err(|error| DiskError::io("rewrite a damaged clear", &path, error))?;
                state.end = state.end.max(end);
            }
            for &(start, end) in &scan.padded {
                tracing::warn!(
                    segment = %path.display(),
                    offset = start,
                    len = end - start,
                    "disk cache: damaged record; stepped over it to the next valid record"
                );
                padding.push((slot, *header, start, end));
            }
            dropped.extend(scan.dropped);
            self.nonces[slot as usize].store(header.nonce, Ordering::Relaxed);
            writer.next_sequence = writer.next_sequence.max(header.sequence + 1);
            report.segments += 1;
        }
        if let Some((newest, older)) = valid.split_last() {
            writer.active = Some(newest.slot);
            writer.sealed = older.iter().map(|header| header.slot).collect();
        }
        // From here on the gauges follow every change of the index.
        index.attach_gauges(self.counters.metrics().clone());
        *self.index.get_mut() = index;
        // Rotation needs a free slot in reserve.
        let mut writer = self.writer.lock();
        if self.free_slot(&writer).is_none() {
            self.evict_oldest(&mut writer, 0).map_err(|error| {
                DiskError::io(
                    "evict a segment",
                    &self.directory,
                    std::io::Error::other(error),
                )
            })?;
        }
        // Damaged records are stepped over for good only once what they may have deleted or
        // replaced is deleted by a record that can be read: a deletion, after everything, of
        // each dropped key not written again since.
        let deleting = |error| {
            DiskError::io(
                "write a deletion",
                &self.directory,
                std::io::Error::other(error),
            )
        };
        let mut deleted = false;
        for key in dropped {
            if self.index.read().get(&key).is_none() {
                self.write_tombstone(&mut writer, &key).map_err(deleting)?;
                deleted = true;
            }
        }
        if deleted && let Some(active) = writer.active {
            self.slot_file(active)
                .and_then(|file| {
                    file.sync_data()
                        .map_err(|error| self.io_error("flush the deletions", error))
                })
                .map_err(deleting)?;
        }
        for (slot, header, start, end) in padding {
            // A slot emptied since (by the eviction above) has nothing left to pad.
            if writer.segments[slot as usize].header != Some(header) {
                continue;
            }
            let path = self.path(slot);
            let file = self.slot_file(slot).map_err(deleting)?;
            write_filler(file, &header, RecordKind::Padding, start, end)
                .map_err(|error| DiskError::io("pad over a damaged record", &path, error))?;
        }
        Ok(())
    }
}

/// Empties a slot's file (a free slot is an empty file).
fn empty_slot(file: &File, path: &Path) -> Result<(), DiskError> {
    file.set_len(0)
        .map_err(|error| DiskError::io("empty a segment", path, error))
}

/// Bytes of a segment file, read in chunks of at least [`SegmentBytes::CHUNK`].
struct SegmentBytes<'f> {
    file: &'f File,
    /// Where the data the scan may read ends (the file's length, at most the segment size).
    end: u64,
    /// The file offset of `buffer[0]`.
    start: u64,
    buffer: Vec<u8>,
}

impl<'f> SegmentBytes<'f> {
    const CHUNK: u64 = 1 << 20;

    fn new(file: &'f File, end: u64) -> SegmentBytes<'f> {
        SegmentBytes {
            file,
            end,
            start: 0,
            buffer: Vec::new(),
        }
    }

    /// `len` bytes at `offset`, or `None` where they pass the end of the data.
    fn get(&mut self, offset: u64, len: u64) -> std::io::Result<Option<&[u8]>> {
        if offset.saturating_add(len) > self.end {
            return Ok(None);
        }
        let buffered =
            offset >= self.start && offset + len <= self.start + self.buffer.len() as u64;
        if !buffered {
            let want = len.max(Self::CHUNK).min(self.end - offset);
            self.buffer.resize(want as usize, 0);
            self.file.read_exact_at(&mut self.buffer, offset)?;
            self.start = offset;
        }
        let at = (offset - self.start) as usize;
        Ok(Some(&self.buffer[at..at + len as usize]))
    }
}

/// A record that checked: its header, its length and its key.
struct Checked<'b> {
    header: RecordHeader,
    len: u64,
    key: &'b str,
}

/// The record at `offset` if it is whole and checks against `segment`.
fn parse_at<'b>(
    bytes: &'b mut SegmentBytes<'_>,
    offset: u64,
    segment: &SegmentHeader,
) -> std::io::Result<Option<Checked<'b>>> {
    let Some(head) = bytes.get(offset, RECORD_HEADER_LEN as u64)? else {
        return Ok(None);
    };
    let Ok(decoded) = RecordHeader::decode(head) else {
        return Ok(None);
    };
    // Bounds before reading: a damaged length must not make us read gigabytes.
    if decoded.key_len as usize > MAX_KEY_LEN {
        return Ok(None);
    }
    let len = decoded.record_len();
    let Some(record) = bytes.get(offset, len)? else {
        return Ok(None);
    };
    let Ok((header, key, _)) = check_record(record, segment) else {
        return Ok(None);
    };
    let Ok(key) = std::str::from_utf8(key) else {
        return Ok(None);
    };
    Ok(Some(Checked { header, len, key }))
}

/// The first position at or after `from` where a whole record checks against `segment`.
/// Only positions holding the record magic are checked.
fn resync(
    bytes: &mut SegmentBytes<'_>,
    from: u64,
    segment: &SegmentHeader,
    report: &mut RecoveryReport,
) -> std::io::Result<Option<u64>> {
    const MAGIC: &[u8; 4] = b"NREC";
    let mut position = from;
    while position + RECORD_HEADER_LEN as u64 <= bytes.end {
        let len = (bytes.end - position).min(SegmentBytes::CHUNK);
        let Some(chunk) = bytes.get(position, len)? else {
            return Ok(None);
        };
        match memchr::memmem::find(chunk, MAGIC) {
            Some(at) => {
                let candidate = position + at as u64;
                report.resync_candidates += 1;
                if parse_at(bytes, candidate, segment)?.is_some() {
                    return Ok(Some(candidate));
                }
                position = candidate + 1;
            }
            // The magic may straddle the chunk's end.
            None if len > 3 => position += len - 3,
            None => return Ok(None),
        }
    }
    Ok(None)
}

/// The most checksum work (bytes hashed) spent finding which key a damaged record had.
const KEY_REPAIR_BUDGET: u64 = 64 << 20;

/// What a damaged stretch may have been written for.
#[derive(Debug, PartialEq, Eq)]
enum Suspects {
    /// A clear record (or one damaged byte away from one).
    Clear,
    /// Records of these keys: `exact` are dropped from the index; so are the indexed keys
    /// one byte away from one of `neighbours_of` (when the damaged byte may be in the key and
    /// finding it by checksum would cost too much).
    Keys {
        exact: Vec<Vec<u8>>,
        neighbours_of: Vec<Vec<u8>>,
    },
}

/// What the damaged bytes `region` (starting where a record should start) may have been.
/// `exact_end`: the stretch ends where a valid record starts, so it held whole records.
///
/// With one damaged byte (the goal: a damaged byte costs only the record it is in), the
/// record's key is always found: a damaged byte in the header leaves the key where the key
/// length, or the stretch's length less the stored length, says; one in the value or the
/// checksum leaves the key as it is; one in the key is found by trying every byte value at
/// every key position against the stored checksum. Damage wider than a byte may hide the key.
fn suspects(region: &[u8], segment: &SegmentHeader, exact_end: bool) -> Suspects {
    let len = region.len();
    let template = clear_header(segment);
    let compared = len.min(40);
    let differing = template[..compared]
        .iter()
        .zip(&region[..compared])
        .filter(|(a, b)| a != b)
        .count();
    // A put or deletion has a key of at least one byte, so 48 bytes between valid records can
    // only have been a clear; otherwise the bytes must match a clear's header but for one.
    let could_be_clear = (exact_end && len == RECORD_HEADER_LEN)
        || (compared >= 6 && differing <= usize::from(len >= RECORD_HEADER_LEN));
    if could_be_clear {
        return Suspects::Clear;
    }
    let mut exact = Vec::new();
    let mut neighbours_of = Vec::new();
    let Some((key_len, stored_len)) = raw_lengths(region) else {
        return Suspects::Keys {
            exact,
            neighbours_of,
        };
    };
    let body = len - RECORD_HEADER_LEN;
    let declared = (1..=MAX_KEY_LEN)
        .contains(&(key_len as usize))
        .then_some(key_len as usize)
        .filter(|&key_len| key_len <= body);
    // At a segment's end the stretch may be a torn record (then this is nonsense, and
    // dropping a key that is not there costs nothing) or a whole one.
    let derived = ((stored_len as usize) < body)
        .then(|| body - stored_len as usize)
        .filter(|key_len| (1..=MAX_KEY_LEN).contains(key_len));
    let header_intact = RecordHeader::decode(region).is_ok_and(|header| {
        let record_len = header.record_len();
        if exact_end {
            record_len == len as u64
        } else {
            record_len <= len as u64
        }
    });
    let key_of = |key_len: usize| region[RECORD_HEADER_LEN..RECORD_HEADER_LEN + key_len].to_vec();
    match declared {
        Some(key_len) if header_intact => {
            // The header is whole: the damage is in the key, the value or the checksum.
            let record_len = RECORD_HEADER_LEN + key_len + stored_len as usize;
            let record = &region[..record_len];
            let work = (key_len as u64) * 255 * record_len as u64;
            match stored_checksum(record) {
                Some(stored) if work <= KEY_REPAIR_BUDGET => {
                    exact.push(
                        repair_key(record, key_len, stored, segment.nonce)
                            .unwrap_or_else(|| key_of(key_len)),
                    );
                }
                _ => {
                    exact.push(key_of(key_len));
                    neighbours_of.push(key_of(key_len));
                }
            }
        }
        _ => {
            exact.extend(declared.map(key_of));
            exact.extend(derived.map(key_of));
            exact.dedup();
        }
    }
    Suspects::Keys {
        exact,
        neighbours_of,
    }
}

/// The key `record` had if one byte of its key was changed: the variant whose checksum is the
/// stored one.
fn repair_key(record: &[u8], key_len: usize, stored: u64, nonce: u64) -> Option<Vec<u8>> {
    let key_range = RECORD_HEADER_LEN..RECORD_HEADER_LEN + key_len;
    let mut key = record[key_range.clone()].to_vec();
    let value = &record[key_range.end..];
    for position in 0..key_len {
        let original = key[position];
        for candidate in 0..=u8::MAX {
            if candidate == original {
                continue;
            }
            key[position] = candidate;
            if checksum(nonce, &record[..40], &key, value) == stored {
                return Some(key);
            }
        }
        key[position] = original;
    }
    None
}

/// Drops what a damaged stretch may have been written for from the index; the keys dropped
/// (for a clear, none: the clear is written again in place).
fn drop_suspects(
    index: &mut Index,
    suspects: &Suspects,
    report: &mut RecoveryReport,
) -> Vec<Arc<str>> {
    match suspects {
        Suspects::Clear => {
            report.suspect_keys_dropped += index.len();
            index.clear();
            Vec::new()
        }
        Suspects::Keys {
            exact,
            neighbours_of,
        } => {
            let mut dropped = Vec::new();
            for key in exact {
                if let Ok(key) = std::str::from_utf8(key)
                    && index.remove(key).is_some()
                {
                    dropped.push(Arc::from(key));
                }
            }
            for key in neighbours_of {
                dropped.extend(index.remove_one_byte_from(key));
            }
            report.suspect_keys_dropped += dropped.len() as u64;
            dropped
        }
    }
}

/// Overwrites the stretch `start..end` of a segment (at least a header long) with one record
/// of `kind` and no key, zeros filling its value: padding over a damaged stretch, or a damaged
/// clear written again where it was.
fn write_filler(
    file: &File,
    segment: &SegmentHeader,
    kind: RecordKind,
    start: u64,
    end: u64,
) -> std::io::Result<()> {
    let zeros = vec![0_u8; (end - start) as usize - RECORD_HEADER_LEN];
    let record = NewRecord {
        kind,
        key: &[],
        value: &zeros,
        encoding: Encoding::Raw,
        raw_len: zeros.len() as u32,
        expiry_unix_ms: 0,
    };
    let mut encoded = Vec::with_capacity((end - start) as usize);
    record.encode_into(segment, &mut encoded);
    file.write_all_at(&encoded, start)
}

/// What scanning a segment found.
struct Scan {
    /// Where the valid records end (the next record goes there).
    end: u64,
    /// Whether the file ends there too (`false`: damaged or torn bytes follow, to cut off).
    clean: bool,
    /// Damaged stretches between valid records, to overwrite with padding once the
    /// deletions of `dropped` are written.
    padded: Vec<(u64, u64)>,
    /// Damaged stretches that may have been a clear, written again as one (in place; the
    /// last may be at `end`, where the segment is cut).
    clears: Vec<(u64, u64)>,
    /// Keys dropped because a damaged record may have been written for them.
    dropped: Vec<Arc<str>>,
}

/// Reads a segment's records in order into `index`, stepping over damaged stretches.
fn scan_segment(
    file: &File,
    segment: &SegmentHeader,
    segment_size: u64,
    index: &mut Index,
    state: &mut SegmentState,
    now_ms: u64,
    report: &mut RecoveryReport,
) -> std::io::Result<Scan> {
    let file_len = file.metadata()?.len();
    let data_end = file_len.min(segment_size);
    let mut bytes = SegmentBytes::new(file, data_end);
    let mut offset = SEGMENT_HEADER_LEN;
    let mut scan = Scan {
        end: offset,
        clean: true,
        padded: Vec::new(),
        clears: Vec::new(),
        dropped: Vec::new(),
    };
    loop {
        scan.end = offset;
        if offset == file_len {
            return Ok(scan);
        }
        if offset >= data_end {
            // Bytes past the segment size: never written by us.
            scan.clean = false;
            return Ok(scan);
        }
        let Some(checked) = parse_at(&mut bytes, offset, segment)? else {
            // A damaged stretch: up to the next valid record, or to the end of the data. A
            // record is at least a header long, so the next one starts a header later or more.
            let next = resync(
                &mut bytes,
                offset + RECORD_HEADER_LEN as u64,
                segment,
                report,
            )?;
            let end = next.unwrap_or(data_end);
            let region = bytes
                .get(offset, end - offset)?
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
            let suspects = suspects(&region, segment, next.is_some());
            scan.dropped.extend(drop_suspects(index, &suspects, report));
            report.corrupt_records += 1;
            report.damaged_bytes += end - offset;
            let clear = suspects == Suspects::Clear;
            if clear {
                state.has_clear = true;
            }
            match next {
                Some(next) => {
                    if clear {
                        scan.clears.push((offset, next));
                    } else {
                        scan.padded.push((offset, next));
                    }
                    offset = next;
                    continue;
                }
                None => {
                    // A clear is always written whole within the segment.
                    if clear && offset + RECORD_HEADER_LEN as u64 <= segment_size {
                        scan.clears
                            .push((offset, offset + RECORD_HEADER_LEN as u64));
                    }
                    scan.clean = false;
                    return Ok(scan);
                }
            }
        };
        let Checked { header, len, key } = checked;
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
                    state.keys.push(Arc::clone(&shared));
                    index.insert(shared, spot);
                }
            }
            RecordKind::Tombstone => {
                index.remove(key);
                state.tombstones.push(Arc::from(key));
            }
            RecordKind::Clear => {
                index.clear();
                state.has_clear = true;
            }
            RecordKind::Padding => {}
        }
        offset += len;
    }
}

/// The metric handles of a disk tier configured by `config`, resolved with the recorder in
/// effect on this thread.
pub(crate) fn metrics_for(config: &DiskConfig) -> TierMetrics {
    TierMetrics::new(InstanceLabels::new(
        config.instance.clone(),
        config.name.clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment() -> SegmentHeader {
        SegmentHeader {
            slot: 0,
            sequence: 7,
            segment_size: 4 << 20,
            nonce: 0x5eed_1234_abcd_0001,
            created_unix_ms: 0,
        }
    }

    /// Bytes that look like record headers of this very segment (magic, version, kind, the
    /// segment's sequence, plausible lengths) everywhere, with the checksum wrong: the worst
    /// a value can hold without knowing the segment's random nonce.
    fn decoys(count: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for index in 0..count {
            let mut header = [0_u8; RECORD_HEADER_LEN];
            header[0..4].copy_from_slice(b"NREC");
            header[4] = 1;
            header[5] = 1 + (index % 3) as u8;
            header[8..12].copy_from_slice(&4_u32.to_le_bytes());
            header[12..16].copy_from_slice(&0_u32.to_le_bytes());
            header[24..32].copy_from_slice(&segment().sequence.to_le_bytes());
            header[40..48].copy_from_slice(&(index as u64).to_le_bytes());
            bytes.extend_from_slice(&header);
            bytes.extend_from_slice(b"keyX");
        }
        bytes
    }

    #[test]
    fn resynchronisation_accepts_no_decoy_and_finds_the_next_real_record() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("seg-00000.nfcs");
        let segment = segment();
        let mut file_bytes = segment.encode().to_vec();
        let decoy_count = 40_000;
        file_bytes.extend_from_slice(&decoys(decoy_count));
        let real_at = file_bytes.len() as u64;
        NewRecord {
            kind: RecordKind::Put,
            key: b"real",
            value: b"value",
            encoding: Encoding::Raw,
            raw_len: 5,
            expiry_unix_ms: 0,
        }
        .encode_into(&segment, &mut file_bytes);
        std::fs::write(&path, &file_bytes).unwrap();
        let file = File::open(&path).unwrap();
        let mut index = Index::default();
        let mut report = RecoveryReport::default();
        let scan = scan_segment(
            &file,
            &segment,
            segment.segment_size,
            &mut index,
            &mut SegmentState::default(),
            0,
            &mut report,
        )
        .unwrap();
        assert!(scan.clean);
        assert_eq!(scan.padded, vec![(SEGMENT_HEADER_LEN, real_at)]);
        assert_eq!(report.records, 1, "only the real record");
        assert_eq!(index.len(), 1);
        assert!(index.get("real").is_some());
        // Every decoy but the first (where the scan stood) was a candidate, and none passed.
        assert_eq!(report.resync_candidates, decoy_count as u64);
    }

    #[test]
    fn suspects_name_the_key_whatever_single_byte_is_damaged() {
        let segment = segment();
        let mut record = Vec::new();
        NewRecord {
            kind: RecordKind::Put,
            key: b"policy:7",
            value: b"allow",
            encoding: Encoding::Raw,
            raw_len: 5,
            expiry_unix_ms: 0,
        }
        .encode_into(&segment, &mut record);
        for position in 0..record.len() {
            let mut damaged = record.clone();
            damaged[position] ^= 0x41;
            let Suspects::Keys { exact, .. } = suspects(&damaged, &segment, true) else {
                panic!("at {position}: taken for a clear");
            };
            assert!(
                exact.iter().any(|key| key == b"policy:7"),
                "at {position}: {exact:?}"
            );
        }
        let clear = clear_header(&segment);
        for position in 0..clear.len() {
            let mut damaged = clear.clone();
            damaged[position] ^= 0x41;
            assert_eq!(suspects(&damaged, &segment, true), Suspects::Clear);
            assert_eq!(suspects(&damaged, &segment, false), Suspects::Clear);
        }
        // Zeros (a file extended without data) are not a clear.
        assert!(matches!(
            suspects(&[0; 300], &segment, false),
            Suspects::Keys { .. }
        ));
    }
}
