//! Rotation and eviction: when the active segment is full, a free slot becomes active; one
//! slot is always kept free, so taking the last one evicts the oldest sealed segment.

use std::hash::BuildHasher;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use nfcs_cache_core::CacheError;

use super::index::Spot;
use super::{SegmentState, Store, Writer};
use crate::format::{
    Encoding, NewRecord, RECORD_HEADER_LEN, RecordKind, SEGMENT_HEADER_LEN, SegmentHeader,
};

/// A random nonce for a new use of a slot. std's `RandomState` is seeded from the OS per
/// process and per instance; the sequence and the `Instant` only add entropy (this is no time
/// decision, so it does not read the store's clock). A zero nonce would look like a free slot,
/// so it is avoided.
fn random_nonce(sequence: u64) -> u64 {
    std::collections::hash_map::RandomState::new().hash_one((sequence, Instant::now())) | 1
}

impl Store {
    /// A free slot: empty, and holding a usable file (a slot skipped at open is never free).
    pub(super) fn free_slot(&self, writer: &Writer) -> Option<u32> {
        writer
            .segments
            .iter()
            .zip(self.files.iter())
            .position(|(segment, file)| segment.header.is_none() && file.is_some())
            .map(|slot| slot as u32)
    }

    /// The active slot, with room for `len` more bytes.
    pub(super) fn ensure_space(&self, writer: &mut Writer, len: u64) -> Result<u32, CacheError> {
        if let Some(active) = writer.active
            && writer.segments[active as usize].end + len <= self.segment_size
        {
            return Ok(active);
        }
        if let Some(active) = writer.active.take() {
            // A batch flushes once at its end, where it writes then: what it wrote here first.
            if self.sync_writes && writer.batching {
                self.slot_file(active)?
                    .sync_data()
                    .map_err(|error| self.io_error("flush a batch", error))?;
            }
            writer.sealed.push_back(active);
        }
        let free = match self.free_slot(writer) {
            Some(free) => free,
            None => {
                // Only after a failed rotation: make room without reinsertion.
                self.evict_oldest(writer, 0)?;
                self.free_slot(writer).ok_or_else(|| {
                    CacheError::backend(
                        &self.name,
                        "rotate segments",
                        std::io::Error::other("no segment could be freed"),
                    )
                })?
            }
        };
        self.activate(writer, free)?;
        writer.active = Some(free);
        if self.free_slot(writer).is_none() {
            // Keep a free slot in reserve for the next rotation; entries read since they were
            // written get another round in the new segment, within what leaves room for `len`.
            let room = self.max_record_len() - len;
            let budget = room.min(self.max_record_len() / 2);
            self.evict_oldest(writer, budget)?;
        }
        // Full (no free slot but the reserve): free a mostly dead segment, so that the next
        // rotation need not evict live entries.
        if self.free_slots(writer) <= 1 {
            let room = self.segment_size - writer.segments[free as usize].end - len;
            self.compact_one(writer, free, room)?;
        }
        Ok(free)
    }

    /// How many slots are free.
    fn free_slots(&self, writer: &Writer) -> usize {
        writer
            .segments
            .iter()
            .zip(self.files.iter())
            .filter(|(segment, file)| segment.header.is_none() && file.is_some())
            .count()
    }

    /// Compacts the sealed segment with the smallest share of live bytes, if that share is
    /// under `compaction_live_ratio` and what must be rewritten fits in `room` bytes of the
    /// active segment: its live entries and the deletions that may still hide an older put
    /// are rewritten into `active`, which is flushed, and the slot is freed.
    fn compact_one(&self, writer: &mut Writer, active: u32, room: u64) -> Result<(), CacheError> {
        if self.compaction_live_ratio <= 0.0 {
            return Ok(());
        }
        let candidate = {
            let index = self.index.read();
            writer
                .sealed
                .iter()
                .enumerate()
                .filter_map(|(position, &slot)| {
                    let state = &writer.segments[slot as usize];
                    state.header?;
                    let used = state.end.saturating_sub(SEGMENT_HEADER_LEN);
                    // A clear cannot move after what was written since: only as the oldest.
                    if used == 0 || (state.has_clear && position != 0) {
                        return None;
                    }
                    let live = index.slot_live_bytes(slot);
                    // Deletions are carried only when older segments may hold what they hide.
                    let carried: u64 = if position == 0 {
                        0
                    } else {
                        state
                            .tombstones
                            .iter()
                            .filter(|key| index.get(key).is_none())
                            .map(|key| (RECORD_HEADER_LEN + key.len()) as u64)
                            .sum()
                    };
                    let share = live as f64 / used as f64;
                    (share < self.compaction_live_ratio && live + carried <= room)
                        .then_some((share, position, slot))
                })
                .min_by(|a, b| a.0.total_cmp(&b.0))
        };
        let Some((_, position, slot)) = candidate else {
            return Ok(());
        };
        let Some(header) = writer.segments[slot as usize].header else {
            return Ok(());
        };
        let state = std::mem::take(&mut writer.segments[slot as usize]);
        writer.segments[slot as usize].header = Some(header);
        let now_ms = self.now_unix_ms();
        let mut moving = Vec::new();
        let mut expired = 0;
        {
            let mut index = self.index.write();
            for key in state.keys {
                let Some(location) = index.get(&key) else {
                    continue;
                };
                if location.slot != slot || location.sequence != header.sequence {
                    continue;
                }
                let spot = location.spot();
                if spot.expired_at(now_ms) {
                    index.remove_if_at(&key, spot);
                    expired += 1;
                } else {
                    moving.push((key, spot));
                }
            }
        }
        self.counters.expired(expired);
        for (key, spot) in moving {
            if self.carry(writer, active, key, spot)? {
                self.counters.compacted_entry();
            }
        }
        if position != 0 {
            for key in state.tombstones {
                if self.index.read().get(&key).is_some() {
                    continue;
                }
                let record = NewRecord {
                    kind: RecordKind::Tombstone,
                    key: key.as_bytes(),
                    value: &[],
                    encoding: Encoding::Raw,
                    raw_len: 0,
                    expiry_unix_ms: 0,
                };
                self.append_to_active(writer, active, &record, Some(&key))?;
            }
        }
        // What moved is on the device before the only other copy goes.
        if !self.sync_writes {
            self.slot_file(active)?
                .sync_data()
                .map_err(|error| self.io_error("flush compacted entries", error))?;
        }
        writer.sealed.remove(position);
        self.nonces[slot as usize].store(0, Ordering::Relaxed);
        writer.segments[slot as usize] = SegmentState::default();
        self.slot_file(slot)?
            .set_len(0)
            .map_err(|error| self.io_error("empty a compacted segment", error))?;
        self.counters.compacted_segment();
        Ok(())
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
            created_unix_ms: self.now_unix_ms(),
        };
        let file = self.slot_file(slot)?;
        file.set_len(0)
            .and_then(|()| file.write_all_at(&header.encode(), 0))
            .map_err(|error| self.io_error("start a segment", error))?;
        self.nonces[slot as usize].store(header.nonce, Ordering::Relaxed);
        writer.segments[slot as usize] = SegmentState {
            header: Some(header),
            end: SEGMENT_HEADER_LEN,
            ..SegmentState::default()
        };
        Ok(())
    }

    /// Evicts the oldest sealed segment: entries read since they were written (up to
    /// `reinsert_budget` bytes) are rewritten into the active segment, the rest leave the
    /// index, and the slot is emptied.
    pub(super) fn evict_oldest(
        &self,
        writer: &mut Writer,
        reinsert_budget: u64,
    ) -> Result<(), CacheError> {
        let Some(oldest) = writer.sealed.pop_front() else {
            return Ok(());
        };
        let Some(old_header) = writer.segments[oldest as usize].header else {
            return Ok(());
        };
        let keys = std::mem::take(&mut writer.segments[oldest as usize].keys);
        let now_ms = self.now_unix_ms();
        let mut budget = reinsert_budget;
        let mut keep = Vec::new();
        let (mut evicted, mut expired) = (0, 0);
        {
            let mut index = self.index.write();
            for key in keys {
                let Some(location) = index.get(&key) else {
                    continue;
                };
                if location.slot != oldest || location.sequence != old_header.sequence {
                    continue;
                }
                let spot = location.spot();
                let is_expired = spot.expired_at(now_ms);
                if !is_expired
                    && location.referenced.load(Ordering::Relaxed)
                    && u64::from(spot.len) <= budget
                {
                    budget -= u64::from(spot.len);
                    keep.push((key, spot));
                } else {
                    index.remove_if_at(&key, spot);
                    if is_expired {
                        expired += 1;
                    } else {
                        evicted += 1;
                    }
                }
            }
        }
        // Counted before the rewrites, which may fail and return early.
        self.counters.expired(expired);
        self.counters.evicted(evicted);
        if let Some(active) = writer.active.filter(|_| !keep.is_empty()) {
            for (key, spot) in keep {
                self.reinsert(writer, active, key, spot)?;
            }
        } else {
            let mut index = self.index.write();
            let dropped = keep
                .into_iter()
                .filter(|(key, spot)| index.remove_if_at(key, *spot))
                .count();
            self.counters.evicted(dropped as u64);
        }
        self.nonces[oldest as usize].store(0, Ordering::Relaxed);
        writer.segments[oldest as usize] = SegmentState::default();
        self.slot_file(oldest)?
            .set_len(0)
            .map_err(|error| self.io_error("empty an evicted segment", error))?;
        Ok(())
    }

    /// Rewrites the entry `key` at `spot` (in the segment being evicted) into `active`, or
    /// drops it from the index when its record cannot be read.
    fn reinsert(
        &self,
        writer: &mut Writer,
        active: u32,
        key: Arc<str>,
        spot: Spot,
    ) -> Result<(), CacheError> {
        if self.carry(writer, active, key, spot)? {
            self.counters.reinsert();
        }
        Ok(())
    }

    /// Rewrites the entry `key` at `spot` into `active` and points the index at the copy;
    /// drops it from the index (counted as evicted) when its record cannot be read. Whether
    /// it moved.
    fn carry(
        &self,
        writer: &mut Writer,
        active: u32,
        key: Arc<str>,
        spot: Spot,
    ) -> Result<bool, CacheError> {
        let moved = match self.read_record(spot) {
            Ok((header, bytes, value_start)) => {
                let record = NewRecord {
                    kind: RecordKind::Put,
                    key: key.as_bytes(),
                    value: &bytes[value_start..],
                    encoding: header.encoding,
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
                Ok(true)
            }
            _ => {
                if index.remove_if_at(&key, spot) {
                    self.counters.evicted(1);
                }
                Ok(false)
            }
        }
    }
}
