//! S3-FIFO order for one shard: a scan-resistant policy built from three FIFO queues.
//!
//! After Yang et al., "FIFO queues are all you need for cache eviction" (SOSP 2023):
//! - new entries enter a *small* queue that holds about 10 % of the bytes;
//! - an entry leaving the small queue moves to the *main* queue if it was read since it arrived,
//!   otherwise it is evicted and its key hash goes into a *ghost* queue;
//! - a new entry whose hash is in the ghost queue (it was evicted young but comes back) enters
//!   the main queue directly;
//! - the main queue is a CLOCK: an entry at its head with a read count above zero is reinserted
//!   at the tail with the count lowered by one, otherwise it is evicted.
//!
//! Reads only bump a two-bit counter and never reorder anything, so one-time scans flow through
//! the small queue without pushing out the frequently used entries in the main queue.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use hashbrown::HashTable;

use super::{S3FIFO_ENTRY_OVERHEAD, Slot, Store, charge};

fn slot_charge(key_len: usize, slot: &Slot) -> u64 {
    charge(
        S3FIFO_ENTRY_OVERHEAD,
        key_len,
        slot.value.len(),
        slot.deadline,
    )
}

/// Reads counted per entry, saturating (two bits, as in the paper).
const MAX_FREQUENCY: u8 = 3;
/// An entry leaving the small queue moves to the main queue when read at least this often.
const PROMOTION_READS: u8 = 1;
/// The small queue's share of the budget, in percent.
const SMALL_QUEUE_PERCENT: u64 = 10;

struct Entry {
    key: Arc<str>,
    slot: Slot,
    hash: u64,
    reads: u8,
    in_main: bool,
}

/// A slot of the entry arena. The generation tells a queue reference to a reused slot from a
/// live one, so arbitrary removals (delete, expiry, invalidation) need no queue surgery.
struct ArenaSlot {
    generation: u32,
    entry: Option<Entry>,
}

/// A queue reference: the arena index in the high 32 bits, its generation in the low 32.
type QueueRef = u64;

fn queue_ref(index: u32, generation: u32) -> QueueRef {
    (u64::from(index) << 32) | u64::from(generation)
}

pub(super) struct S3FifoStore {
    table: HashTable<u32>,
    arena: Vec<ArenaSlot>,
    free: Vec<u32>,
    small: VecDeque<QueueRef>,
    main: VecDeque<QueueRef>,
    small_bytes: u64,
    main_bytes: u64,
    small_len: usize,
    ghost: Ghost,
}

impl S3FifoStore {
    pub(super) fn new() -> S3FifoStore {
        S3FifoStore {
            table: HashTable::new(),
            arena: Vec::new(),
            free: Vec::new(),
            small: VecDeque::new(),
            main: VecDeque::new(),
            small_bytes: 0,
            main_bytes: 0,
            small_len: 0,
            ghost: Ghost::default(),
        }
    }

    #[inline]
    fn find(&self, hash: u64, key: &str) -> Option<u32> {
        let arena = &self.arena;
        self.table
            .find(hash, |&index| {
                arena[index as usize]
                    .entry
                    .as_ref()
                    .is_some_and(|entry| &*entry.key == key)
            })
            .copied()
    }

    /// Takes the entry out of the arena and the table; its queue reference goes stale.
    fn take(&mut self, index: u32) -> Option<Entry> {
        let arena_slot = &mut self.arena[index as usize];
        let entry = arena_slot.entry.take()?;
        arena_slot.generation = arena_slot.generation.wrapping_add(1);
        if let Ok(found) = self
            .table
            .find_entry(entry.hash, |&candidate| candidate == index)
        {
            found.remove();
        }
        self.free.push(index);
        let charge = slot_charge(entry.key.len(), &entry.slot);
        if entry.in_main {
            self.main_bytes -= charge;
        } else {
            self.small_bytes -= charge;
            self.small_len -= 1;
        }
        Some(entry)
    }

    /// Pops the first live reference of a queue.
    fn pop_live(&mut self, main: bool) -> Option<u32> {
        loop {
            let reference = if main {
                self.main.pop_front()?
            } else {
                self.small.pop_front()?
            };
            let index = (reference >> 32) as u32;
            let generation = reference as u32;
            let arena_slot = &self.arena[index as usize];
            let live = arena_slot.generation == generation
                && arena_slot
                    .entry
                    .as_ref()
                    .is_some_and(|entry| entry.in_main == main);
            if live {
                return Some(index);
            }
        }
    }

    fn reference(&self, index: u32) -> QueueRef {
        queue_ref(index, self.arena[index as usize].generation)
    }

    /// Drops stale references once they outnumber live entries, so queues stay proportional to
    /// the entries even under heavy delete-and-reinsert traffic.
    fn compact_queues_if_needed(&mut self) {
        let live = self.table.len();
        if self.small.len() + self.main.len() <= 2 * live + 64 {
            return;
        }
        let arena = &self.arena;
        let is_live = |reference: &QueueRef, main: bool| {
            let slot = &arena[(reference >> 32) as usize];
            slot.generation == *reference as u32
                && slot
                    .entry
                    .as_ref()
                    .is_some_and(|entry| entry.in_main == main)
        };
        self.small.retain(|reference| is_live(reference, false));
        self.main.retain(|reference| is_live(reference, true));
    }
}

impl Store for S3FifoStore {
    #[inline]
    fn get(&mut self, key: &str, hash: u64) -> Option<&Slot> {
        let index = self.find(hash, key)?;
        let entry = self.arena[index as usize].entry.as_mut()?;
        entry.reads = (entry.reads + 1).min(MAX_FREQUENCY);
        Some(&entry.slot)
    }

    #[inline]
    fn peek(&self, key: &str, hash: u64) -> Option<&Slot> {
        let index = self.find(hash, key)?;
        self.arena[index as usize]
            .entry
            .as_ref()
            .map(|entry| &entry.slot)
    }

    fn insert(
        &mut self,
        key: &str,
        hash: u64,
        value: Bytes,
        deadline: u64,
    ) -> (Option<u64>, Arc<str>) {
        let new_charge = charge(S3FIFO_ENTRY_OVERHEAD, key.len(), value.len(), deadline);
        if let Some(index) = self.find(hash, key)
            && let Some(entry) = self.arena[index as usize].entry.as_mut()
        {
            let old = slot_charge(key.len(), &entry.slot);
            entry.slot = Slot { value, deadline };
            // An overwrite counts as a use, as a read would.
            entry.reads = (entry.reads + 1).min(MAX_FREQUENCY);
            let stored_key = Arc::clone(&entry.key);
            if entry.in_main {
                self.main_bytes = self.main_bytes - old + new_charge;
            } else {
                self.small_bytes = self.small_bytes - old + new_charge;
            }
            return (Some(old), stored_key);
        }
        let in_main = self.ghost.contains(hash);
        let stored_key: Arc<str> = Arc::from(key);
        let entry = Entry {
            key: Arc::clone(&stored_key),
            slot: Slot { value, deadline },
            hash,
            reads: 0,
            in_main,
        };
        let index = match self.free.pop() {
            Some(index) => {
                self.arena[index as usize].entry = Some(entry);
                index
            }
            None => {
                // MemoryCache caps a shard's budget at `MAX_SHARD_BYTES`, which fits fewer than
                // 2^32 entries of at least `S3FIFO_ENTRY_OVERHEAD` bytes each.
                let index = u32::try_from(self.arena.len())
                    .expect("a shard's byte budget bounds its entries below 2^32");
                self.arena.push(ArenaSlot {
                    generation: 0,
                    entry: Some(entry),
                });
                index
            }
        };
        let arena = &self.arena;
        self.table.insert_unique(hash, index, |&i| {
            arena[i as usize]
                .entry
                .as_ref()
                .map_or(0, |entry| entry.hash)
        });
        let reference = self.reference(index);
        if in_main {
            self.main.push_back(reference);
            self.main_bytes += new_charge;
        } else {
            self.small.push_back(reference);
            self.small_bytes += new_charge;
            self.small_len += 1;
        }
        self.compact_queues_if_needed();
        (None, stored_key)
    }

    fn remove(&mut self, key: &str, hash: u64) -> Option<u64> {
        let index = self.find(hash, key)?;
        let entry = self.take(index)?;
        self.compact_queues_if_needed();
        Some(slot_charge(entry.key.len(), &entry.slot))
    }

    fn evict_one(&mut self, budget: u64) -> Option<u64> {
        let small_target = budget * SMALL_QUEUE_PERCENT / 100;
        loop {
            if self.small_bytes == 0 && self.main_bytes == 0 {
                return None;
            }
            if self.small_bytes > small_target || self.main_bytes == 0 {
                let index = self.pop_live(false)?;
                let promote = self.arena[index as usize]
                    .entry
                    .as_ref()
                    .is_some_and(|entry| entry.reads >= PROMOTION_READS);
                if promote {
                    let Some(entry) = self.arena[index as usize].entry.as_mut() else {
                        continue;
                    };
                    let charge = slot_charge(entry.key.len(), &entry.slot);
                    entry.in_main = true;
                    entry.reads = 0;
                    self.small_bytes -= charge;
                    self.small_len -= 1;
                    self.main_bytes += charge;
                    let reference = self.reference(index);
                    self.main.push_back(reference);
                } else {
                    let entry = self.take(index)?;
                    let capacity = self.table.len().max(16);
                    self.ghost.insert(entry.hash, capacity);
                    return Some(slot_charge(entry.key.len(), &entry.slot));
                }
            } else {
                let index = self.pop_live(true)?;
                let keep = match self.arena[index as usize].entry.as_mut() {
                    Some(entry) if entry.reads > 0 => {
                        entry.reads -= 1;
                        true
                    }
                    _ => false,
                };
                if keep {
                    let reference = self.reference(index);
                    self.main.push_back(reference);
                } else {
                    let entry = self.take(index)?;
                    return Some(slot_charge(entry.key.len(), &entry.slot));
                }
            }
        }
    }

    fn retain(&mut self, keep: &mut dyn FnMut(&str, &Slot) -> bool) -> (u64, u64) {
        let doomed: Vec<u32> = self
            .arena
            .iter()
            .enumerate()
            .filter_map(|(index, arena_slot)| {
                let entry = arena_slot.entry.as_ref()?;
                (!keep(&entry.key, &entry.slot)).then_some(index as u32)
            })
            .collect();
        let mut freed = 0;
        for &index in &doomed {
            if let Some(entry) = self.take(index) {
                freed += slot_charge(entry.key.len(), &entry.slot);
            }
        }
        self.compact_queues_if_needed();
        (doomed.len() as u64, freed)
    }

    fn len(&self) -> usize {
        self.table.len()
    }
}

/// Hashes of keys recently evicted from the small queue, bounded to about as many as the
/// shard holds entries.
#[derive(Default)]
struct Ghost {
    order: VecDeque<u64>,
    /// hash -> how many times it is in `order`.
    counts: HashTable<(u64, u32)>,
}

impl Ghost {
    fn contains(&self, hash: u64) -> bool {
        self.counts.find(hash, |&(h, _)| h == hash).is_some()
    }

    fn insert(&mut self, hash: u64, capacity: usize) {
        self.order.push_back(hash);
        match self.counts.find_mut(hash, |&(h, _)| h == hash) {
            Some((_, count)) => *count += 1,
            None => {
                self.counts.insert_unique(hash, (hash, 1), |&(h, _)| h);
            }
        }
        while self.order.len() > capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Ok(mut found) = self.counts.find_entry(oldest, |&(h, _)| h == oldest) {
                let count = &mut found.get_mut().1;
                *count -= 1;
                if *count == 0 {
                    found.remove();
                }
            }
        }
    }
}
