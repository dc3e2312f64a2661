//! Least-recently-used order for one shard, on the `lru` crate.

use std::sync::Arc;

use bytes::Bytes;
use foldhash::fast::RandomState;
use lru::LruCache;

use super::{LRU_ENTRY_OVERHEAD, Slot, Store, charge};

fn slot_charge(key_len: usize, slot: &Slot) -> u64 {
    charge(LRU_ENTRY_OVERHEAD, key_len, slot.value.len(), slot.deadline)
}

pub(super) struct LruStore {
    map: LruCache<Arc<str>, Slot, RandomState>,
}

impl LruStore {
    pub(super) fn new(hasher: RandomState) -> LruStore {
        LruStore {
            map: LruCache::unbounded_with_hasher(hasher),
        }
    }
}

impl Store for LruStore {
    // The `lru` crate hashes keys itself (with the same hasher), so the hash is unused here.
    #[inline]
    fn get(&mut self, key: &str, _hash: u64) -> Option<&Slot> {
        // `get` moves the entry to the most-recently-used end.
        self.map.get(key)
    }

    #[inline]
    fn peek(&self, key: &str, _hash: u64) -> Option<&Slot> {
        self.map.peek(key)
    }

    #[inline]
    fn insert(
        &mut self,
        key: &str,
        _hash: u64,
        value: Bytes,
        deadline: u64,
    ) -> (Option<u64>, Arc<str>) {
        if let Some((stored_key, slot)) = self.map.get_key_value_mut(key) {
            let old = slot_charge(key.len(), slot);
            slot.value = value;
            slot.deadline = deadline;
            return (Some(old), Arc::clone(stored_key));
        }
        let stored_key: Arc<str> = Arc::from(key);
        self.map
            .push(Arc::clone(&stored_key), Slot { value, deadline });
        (None, stored_key)
    }

    #[inline]
    fn remove(&mut self, key: &str, _hash: u64) -> Option<u64> {
        self.map.pop(key).map(|slot| slot_charge(key.len(), &slot))
    }

    #[inline]
    fn evict_one(&mut self, _budget: u64) -> Option<u64> {
        self.map
            .pop_lru()
            .map(|(key, slot)| slot_charge(key.len(), &slot))
    }

    fn retain(&mut self, keep: &mut dyn FnMut(&str, &Slot) -> bool) -> (u64, u64) {
        let mut removed = 0;
        let mut freed = 0;
        self.map.retain(|key, slot| {
            let kept = keep(key, slot);
            if !kept {
                removed += 1;
                freed += slot_charge(key.len(), slot);
            }
            kept
        });
        (removed, freed)
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}
