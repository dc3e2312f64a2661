//! The in-memory index: where each live key's newest record is, and the byte total.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use hashbrown::HashMap;
use nfcs_cache_core::telemetry::TierMetrics;

/// Where an entry's record is, and what the index keeps of it.
pub(super) struct Location {
    /// The segment slot holding the record.
    pub(super) slot: u32,
    /// The record's length: header, key and stored value.
    pub(super) len: u32,
    /// The record's offset in the slot's file.
    pub(super) offset: u64,
    /// The sequence of the segment the record was written in (a slot reused since has another).
    pub(super) sequence: u64,
    /// Unix milliseconds, 0 = never.
    pub(super) expiry: u64,
    /// Read since it was written or last reinserted: eviction gives it another round.
    pub(super) referenced: AtomicBool,
}

/// A copy of a [`Location`] without the reference bit: what a reader takes out of the index
/// to read the record without holding the lock, and compares with the index afterwards.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Spot {
    /// As [`Location::slot`].
    pub(super) slot: u32,
    /// As [`Location::len`].
    pub(super) len: u32,
    /// As [`Location::offset`].
    pub(super) offset: u64,
    /// As [`Location::sequence`].
    pub(super) sequence: u64,
    /// As [`Location::expiry`].
    pub(super) expiry: u64,
}

impl Location {
    /// The location without its reference bit.
    pub(super) fn spot(&self) -> Spot {
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
    /// Whether the entry has expired at `now_ms` (Unix milliseconds, read from the store's
    /// clock by the caller).
    pub(super) fn expired_at(&self, now_ms: u64) -> bool {
        self.expiry != 0 && self.expiry <= now_ms
    }
}

/// Keys and where their records are, with the sum of the record lengths (the `bytes` of the
/// tier's stats). Every change goes through its methods, so that the entry and byte gauges
/// follow the index exactly once they are attached.
#[derive(Default)]
pub(super) struct Index {
    map: HashMap<Arc<str>, Location, foldhash::fast::RandomState>,
    /// Sum of the record lengths of indexed entries.
    live_bytes: u64,
    /// The same sum per segment slot (what compaction compares with a segment's length).
    slot_live: Vec<u64>,
    /// The gauges to move with every change; `None` while recovery builds the index (the
    /// totals are set once at the end instead of a million small moves).
    gauges: Option<TierMetrics>,
}

impl Index {
    /// Starts moving `metrics`' entry and byte gauges with this index, setting them to its
    /// totals now.
    pub(super) fn attach_gauges(&mut self, metrics: TierMetrics) {
        metrics.set_resident(self.len(), self.live_bytes);
        self.gauges = Some(metrics);
    }

    fn moved(&self, entries: i64, bytes: i64) {
        if let Some(gauges) = &self.gauges {
            gauges.resident(entries, bytes);
        }
    }

    /// The location of `key`, if indexed.
    pub(super) fn get(&self, key: &str) -> Option<&Location> {
        self.map.get(key)
    }

    /// The shared key and the location of `key`, if indexed.
    pub(super) fn get_key_value(&self, key: &str) -> Option<(&Arc<str>, &Location)> {
        self.map.get_key_value(key)
    }

    /// Every key and its location.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &Location)> {
        self.map.iter()
    }

    /// Entries indexed.
    pub(super) fn len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Sum of the record lengths of indexed entries.
    pub(super) fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// Bytes of indexed records in `slot`.
    pub(super) fn slot_live_bytes(&self, slot: u32) -> u64 {
        self.slot_live.get(slot as usize).copied().unwrap_or(0)
    }

    fn slot_add(&mut self, slot: u32, len: u32) {
        let slot = slot as usize;
        if slot >= self.slot_live.len() {
            self.slot_live.resize(slot + 1, 0);
        }
        self.slot_live[slot] += u64::from(len);
    }

    fn slot_sub(&mut self, slot: u32, len: u32) {
        if let Some(live) = self.slot_live.get_mut(slot as usize) {
            *live -= u64::from(len);
        }
    }

    /// Points `key` at `spot`, replacing what it pointed at.
    pub(super) fn insert(&mut self, key: Arc<str>, spot: Spot) {
        let added = i64::from(spot.len);
        self.live_bytes += u64::from(spot.len);
        self.slot_add(spot.slot, spot.len);
        match self.map.insert(key, Location::new(spot)) {
            Some(old) => {
                self.slot_sub(old.slot, old.len);
                self.live_bytes -= u64::from(old.len);
                self.moved(0, added - i64::from(old.len));
            }
            None => self.moved(1, added),
        }
    }

    /// Removes `key` if it still points at `spot`; whether it did.
    pub(super) fn remove_if_at(&mut self, key: &str, spot: Spot) -> bool {
        match self.map.get(key) {
            Some(location) if location.spot() == spot => {
                self.map.remove(key);
                self.slot_sub(spot.slot, spot.len);
                self.live_bytes -= u64::from(spot.len);
                self.moved(-1, -i64::from(spot.len));
                true
            }
            _ => false,
        }
    }

    /// Removes `key` wherever it points; where that was.
    pub(super) fn remove(&mut self, key: &str) -> Option<Spot> {
        let location = self.map.remove(key)?;
        self.slot_sub(location.slot, location.len);
        self.live_bytes -= u64::from(location.len);
        self.moved(-1, -i64::from(location.len));
        Some(location.spot())
    }

    /// Removes every key of `key`'s length that differs from it in exactly one byte; how many.
    /// One pass over the index (recovery calls it for a damaged record whose key it could not
    /// tell exactly).
    pub(super) fn remove_one_byte_from(&mut self, key: &[u8]) -> Vec<Arc<str>> {
        let near: Vec<Arc<str>> = self
            .map
            .keys()
            .filter(|indexed| {
                let indexed = indexed.as_bytes();
                indexed.len() == key.len()
                    && indexed.iter().zip(key).filter(|(a, b)| a != b).count() == 1
            })
            .cloned()
            .collect();
        for indexed in &near {
            self.remove(indexed);
        }
        near
    }

    /// Removes every key.
    pub(super) fn clear(&mut self) {
        self.map.clear();
        self.live_bytes = 0;
        self.slot_live.iter_mut().for_each(|live| *live = 0);
        if let Some(gauges) = &self.gauges {
            gauges.set_resident(0, 0);
        }
    }

    /// The key's shared text if indexed (so that a new record reuses it), else a new one.
    pub(super) fn shared_key(&self, key: &str) -> Arc<str> {
        self.map
            .get_key_value(key)
            .map_or_else(|| Arc::from(key), |(shared, _)| Arc::clone(shared))
    }
}
