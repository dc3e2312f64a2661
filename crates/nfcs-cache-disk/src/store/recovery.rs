//! Opening a directory: the lock, the segment files (never through a link), the index rebuilt
//! from the records, and whatever a crash or damage left cleaned away.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
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
    HeaderProblem, RECORD_HEADER_LEN, RecordHeader, RecordKind, RecordProblem, SEGMENT_HEADER_LEN,
    SegmentHeader, check_record,
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
    /// Segments whose records ended in damaged or torn bytes; the rest of the segment was cut
    /// off (each such cut counts once).
    pub corrupt_records: u64,
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

        // The segment size is fixed when a directory is first used: a valid header tells it.
        let mut segment_size = config.planned_segment_bytes();
        for file in found.values() {
            let mut header = [0_u8; SEGMENT_HEADER_LEN as usize];
            if file.read_exact_at(&mut header, 0).is_ok()
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
            compression_level: config.compression_level,
            compression_min_bytes: config.compression_min_bytes,
            default_ttl: config.default_ttl,
            sync_writes: config.sync_writes,
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
            let (end, clean) = scan_segment(
                file,
                header,
                self.segment_size,
                &mut index,
                &mut state.keys,
                now_ms,
                report,
            )
            .map_err(|error| DiskError::io("read a segment", &path, error))?;
            state.end = end;
            if !clean {
                report.corrupt_records += 1;
                tracing::warn!(
                    segment = %path.display(),
                    offset = end,
                    "disk cache: damaged or torn record; cutting the segment there"
                );
                file.set_len(end)
                    .map_err(|error| DiskError::io("cut a damaged segment", &path, error))?;
            }
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
        Ok(())
    }
}

/// Empties a slot's file (a free slot is an empty file).
fn empty_slot(file: &File, path: &Path) -> Result<(), DiskError> {
    file.set_len(0)
        .map_err(|error| DiskError::io("empty a segment", path, error))
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
            RecordKind::Clear => index.clear(),
        }
        offset += len as u64;
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
