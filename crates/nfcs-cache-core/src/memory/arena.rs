//! The storage both eviction policies share: entries in one contiguous arena, found through a
//! hash table of arena indices.
//!
//! Compared with a node-per-entry map (the `lru` crate), the arena
//! - reuses the slot of an evicted entry instead of freeing and allocating a node,
//! - keeps each entry's hash, so removing an entry from the table never rehashes its key,
//! - keeps keys of up to [`INLINE_KEY_LEN`] bytes inside the entry, so a lookup compares them
//!   without following a pointer to another cache line.

use hashbrown::HashTable;

use super::Slot;

/// Keys up to this many bytes live inside the entry.
pub(super) const INLINE_KEY_LEN: usize = 22;

/// The "no entry" index of intrusive links.
pub(super) const NIL: u32 = u32::MAX;

/// A key, inline when short.
pub(super) enum Key {
    Inline {
        len: u8,
        bytes: [u8; INLINE_KEY_LEN],
    },
    Heap(Box<str>),
}

impl Key {
    fn new(key: &str) -> Key {
        if key.len() <= INLINE_KEY_LEN {
            let mut bytes = [0; INLINE_KEY_LEN];
            bytes[..key.len()].copy_from_slice(key.as_bytes());
            Key::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            Key::Heap(key.into())
        }
    }

    #[inline]
    pub(super) fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Heap(text) => text.as_bytes(),
        }
    }

    /// The key as text. Inline bytes were copied from a `&str`, so they are UTF-8; the check
    /// cannot fail, and an empty string would only ever be a (harmless) non-match.
    pub(super) fn as_str(&self) -> &str {
        match self {
            Key::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or("")
            }
            Key::Heap(text) => text,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.as_bytes().len()
    }
}

/// An entry: key, value, hash, and whatever the policy keeps per entry.
pub(super) struct Entry<M> {
    pub(super) key: Key,
    pub(super) slot: Slot,
    pub(super) hash: u64,
    pub(super) meta: M,
}

pub(super) struct Arena<M> {
    table: HashTable<u32>,
    entries: Vec<Option<Entry<M>>>,
    vacant: Vec<u32>,
}

impl<M> Arena<M> {
    pub(super) fn new() -> Arena<M> {
        Arena {
            table: HashTable::new(),
            entries: Vec::new(),
            vacant: Vec::new(),
        }
    }

    /// The index of `key`'s entry.
    #[inline]
    pub(super) fn find(&self, hash: u64, key: &str) -> Option<u32> {
        let entries = &self.entries;
        self.table
            .find(hash, |&index| {
                entries[index as usize].as_ref().is_some_and(|entry| {
                    entry.hash == hash && entry.key.as_bytes() == key.as_bytes()
                })
            })
            .copied()
    }

    /// The index of the entry with this hash and deadline. Used to reclaim expired entries
    /// without keeping a copy of their keys: should two keys share both (about 2^-64 likely),
    /// the entry found is expired all the same.
    pub(super) fn find_by_deadline(&self, hash: u64, deadline: u64) -> Option<u32> {
        let entries = &self.entries;
        self.table
            .find(hash, |&index| {
                entries[index as usize]
                    .as_ref()
                    .is_some_and(|entry| entry.hash == hash && entry.slot.deadline == deadline)
            })
            .copied()
    }

    #[inline]
    pub(super) fn get(&self, index: u32) -> Option<&Entry<M>> {
        self.entries.get(index as usize)?.as_ref()
    }

    #[inline]
    pub(super) fn get_mut(&mut self, index: u32) -> Option<&mut Entry<M>> {
        self.entries.get_mut(index as usize)?.as_mut()
    }

    /// Adds an entry for a key that is not present; returns its index.
    pub(super) fn insert(&mut self, hash: u64, key: &str, slot: Slot, meta: M) -> u32 {
        let entry = Entry {
            key: Key::new(key),
            slot,
            hash,
            meta,
        };
        let index = match self.vacant.pop() {
            Some(index) => {
                self.entries[index as usize] = Some(entry);
                index
            }
            None => {
                // A shard's budget (at most `MAX_SHARD_BYTES`) and the per-entry overhead keep
                // the entry count below `NIL`.
                let index = u32::try_from(self.entries.len())
                    .ok()
                    .filter(|&index| index != NIL)
                    .expect("a shard's byte budget bounds its entries below 2^32 - 1");
                self.entries.push(Some(entry));
                index
            }
        };
        let entries = &self.entries;
        self.table.insert_unique(hash, index, |&index| {
            entries[index as usize]
                .as_ref()
                .map_or(0, |entry| entry.hash)
        });
        index
    }

    /// Removes the entry at `index`.
    pub(super) fn remove(&mut self, index: u32) -> Option<Entry<M>> {
        let entry = self.entries.get_mut(index as usize)?.take()?;
        if let Ok(found) = self
            .table
            .find_entry(entry.hash, |&candidate| candidate == index)
        {
            found.remove();
        }
        self.vacant.push(index);
        Some(entry)
    }

    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    /// The indices of the entries for which `select(key, slot)` is true.
    pub(super) fn indices_where(&self, select: &mut dyn FnMut(&str, &Slot) -> bool) -> Vec<u32> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(index, entry)| {
                let entry = entry.as_ref()?;
                select(entry.key.as_str(), &entry.slot).then_some(index as u32)
            })
            .collect()
    }

    /// The number of slots, occupied or not (indices are below it).
    pub(super) fn slots(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_inline_and_on_the_heap() {
        for text in [
            "",
            "k",
            "exactly-22-bytes-long!",
            "twenty-three bytes long",
            "\u{e9}t\u{e9}",
        ] {
            let key = Key::new(text);
            assert_eq!(key.as_str(), text);
            assert_eq!(key.as_bytes(), text.as_bytes());
            assert_eq!(key.len(), text.len());
            assert_eq!(
                matches!(key, Key::Inline { .. }),
                text.len() <= INLINE_KEY_LEN
            );
        }
    }

    #[test]
    fn slots_are_reused_and_found_by_key_or_deadline() {
        let mut arena: Arena<()> = Arena::new();
        let slot = |deadline| Slot {
            value: bytes::Bytes::new(),
            deadline,
        };
        let a = arena.insert(1, "a", slot(10), ());
        let b = arena.insert(1, "b", slot(20), ());
        assert_eq!(arena.find(1, "a"), Some(a));
        assert_eq!(arena.find(1, "b"), Some(b));
        assert_eq!(arena.find(2, "a"), None);
        assert_eq!(arena.find_by_deadline(1, 20), Some(b));
        assert!(arena.remove(a).is_some());
        assert!(arena.remove(a).is_none());
        assert_eq!(arena.find(1, "a"), None);
        let c = arena.insert(3, "c", slot(30), ());
        assert_eq!(c, a, "the vacant slot is reused");
        assert_eq!(arena.len(), 2);
        assert_eq!(arena.indices_where(&mut |key, _| key != "b"), [c]);
    }
}
