//! Least-recently-used order for one shard: an intrusive doubly linked list through the arena.
//!
//! Promotion is lazy: a hit moves its entry to the front only when the entry is no longer
//! among the most recent quarter of the list. Entries in that quarter are in no danger of
//! eviction, and skipping their moves saves writing two neighbouring entries on most hits of a
//! skewed workload (the idea of memcached's bump interval and of "lazy promotion" in the cache
//! literature). The eviction order is otherwise exact LRU, and the benchmark shows the same
//! hit ratio as a plain `lru::LruCache`.

use bytes::Bytes;

use super::arena::{Arena, NIL};
use super::{LRU_ENTRY_OVERHEAD, Lookup, Slot, Store, charge};

/// An entry's place in the list, and the promotion clock when it last moved to the front.
struct Links {
    prev: u32,
    next: u32,
    stamp: u64,
}

pub(super) struct LruStore {
    arena: Arena<Links>,
    /// The most recently used entry.
    head: u32,
    /// The least recently used entry, evicted first.
    tail: u32,
    /// Counts moves to the front. An entry whose stamp is within `len / 4` of it has at most
    /// `len / 4` entries in front of it.
    clock: u64,
}

fn slot_charge(key_len: usize, slot: &Slot) -> u64 {
    charge(LRU_ENTRY_OVERHEAD, key_len, slot.value.len(), slot.deadline)
}

impl LruStore {
    pub(super) fn new() -> LruStore {
        LruStore {
            arena: Arena::new(),
            head: NIL,
            tail: NIL,
            clock: 0,
        }
    }

    fn links(&mut self, index: u32) -> Option<&mut Links> {
        self.arena.get_mut(index).map(|entry| &mut entry.meta)
    }

    fn unlink(&mut self, index: u32) {
        let Some(&mut Links { prev, next, .. }) = self.links(index) else {
            return;
        };
        match self.links(prev) {
            Some(links) => links.next = next,
            None => self.head = next,
        }
        match self.links(next) {
            Some(links) => links.prev = prev,
            None => self.tail = prev,
        }
    }

    fn push_front(&mut self, index: u32) {
        self.clock += 1;
        let (head, clock) = (self.head, self.clock);
        if let Some(links) = self.links(index) {
            *links = Links {
                prev: NIL,
                next: head,
                stamp: clock,
            };
        }
        match self.links(head) {
            Some(links) => links.prev = index,
            None => self.tail = index,
        }
        self.head = index;
    }

    fn move_to_front(&mut self, index: u32) {
        if index == self.head {
            self.clock += 1;
            let clock = self.clock;
            if let Some(links) = self.links(index) {
                links.stamp = clock;
            }
        } else {
            self.unlink(index);
            self.push_front(index);
        }
    }

    fn remove_at(&mut self, index: u32) -> Option<u64> {
        self.unlink(index);
        self.arena
            .remove(index)
            .map(|entry| slot_charge(entry.key.len(), &entry.slot))
    }
}

impl Store for LruStore {
    #[inline]
    fn lookup(&self, key: &str, hash: u64) -> Lookup {
        let Some((index, entry)) = self
            .arena
            .find(hash, key)
            .and_then(|index| Some((index, self.arena.get(index)?)))
        else {
            return Lookup::Miss;
        };
        let window = self.arena.len() as u64 / 4;
        Lookup::Hit {
            value: entry.slot.value.clone(),
            deadline: entry.slot.deadline,
            promote: (self.clock - entry.meta.stamp >= window).then_some(index),
        }
    }

    fn promote(&mut self, index: u32, hash: u64) {
        // Between the read lock and this write lock the slot may have been reused; an entry
        // with the same 64-bit hash in the same shard is the same key for ordering purposes.
        if self
            .arena
            .get(index)
            .is_some_and(|entry| entry.hash == hash)
        {
            self.move_to_front(index);
        }
    }

    #[inline]
    fn peek(&self, key: &str, hash: u64) -> Option<&Slot> {
        let index = self.arena.find(hash, key)?;
        self.arena.get(index).map(|entry| &entry.slot)
    }

    #[inline]
    fn insert(&mut self, key: &str, hash: u64, value: Bytes, deadline: u64) -> Option<u64> {
        if let Some(index) = self.arena.find(hash, key) {
            let entry = self.arena.get_mut(index)?;
            let old = slot_charge(key.len(), &entry.slot);
            entry.slot = Slot { value, deadline };
            self.move_to_front(index);
            return Some(old);
        }
        let links = Links {
            prev: NIL,
            next: NIL,
            stamp: 0,
        };
        let index = self
            .arena
            .insert(hash, key, Slot { value, deadline }, links);
        self.push_front(index);
        None
    }

    #[inline]
    fn remove(&mut self, key: &str, hash: u64) -> Option<u64> {
        let index = self.arena.find(hash, key)?;
        self.remove_at(index)
    }

    fn remove_expired(&mut self, hash: u64, deadline: u64) -> Option<u64> {
        let index = self.arena.find_by_deadline(hash, deadline)?;
        self.remove_at(index)
    }

    fn holds_deadline(&self, hash: u64, deadline: u64) -> bool {
        self.arena.find_by_deadline(hash, deadline).is_some()
    }

    #[inline]
    fn evict_one(&mut self, _budget: u64) -> Option<u64> {
        let tail = self.tail;
        if tail == NIL {
            return None;
        }
        self.remove_at(tail)
    }

    fn retain(&mut self, keep: &mut dyn FnMut(&str, &Slot) -> bool) -> (u64, u64) {
        let doomed = self.arena.indices_where(&mut |key, slot| !keep(key, slot));
        let freed = doomed
            .iter()
            .filter_map(|&index| self.remove_at(index))
            .sum();
        (doomed.len() as u64, freed)
    }

    fn len(&self) -> usize {
        self.arena.len()
    }
}
