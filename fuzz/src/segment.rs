//! The disk tier's segment layout as its documentation states it (the module docs of
//! `crates/nfcs-cache-disk/src/format.rs`), read independently of the crate:
//!
//! - [`records`]: every record-shaped run of bytes in a file, wherever it starts, with its key
//!   and value. Whatever the cache reads back must be one of them: it has no other source of
//!   keys and values.
//! - [`repair_checksums`]: recomputes the segment header's checksum and every record's (seeded
//!   with the header's nonce), so that the fuzzer's mutations of lengths, kinds, flags, expiry
//!   and values reach the code behind the checksums instead of stopping at them.
//! - [`split_segments`]: a fuzz input holding several segment files, one after the other.

use xxhash_rust::xxh3::{Xxh3, xxh3_64};

/// The segment header's length.
pub const SEGMENT_HEADER_LEN: usize = 64;
/// The record header's length.
pub const RECORD_HEADER_LEN: usize = 48;
/// The first bytes of a segment file.
pub const SEGMENT_MAGIC: &[u8; 8] = b"NFCSSEG\0";
/// The first bytes of a record.
pub const RECORD_MAGIC: &[u8; 4] = b"NREC";
/// Record kind: a value for a key.
pub const KIND_PUT: u8 = 1;
/// Record flag: the value is zstd-compressed.
pub const FLAG_ZSTD: u8 = 1;

/// The largest value the oracle decompresses to compare with; a record claiming more is
/// accepted as "any value" (the cache's own limit is 256 MiB).
const ORACLE_MAX_RAW: usize = 16 << 20;

/// A record-shaped run of bytes found in a segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundRecord {
    /// Where its header starts in the file.
    pub offset: usize,
    /// The kind byte (1 put, 2 tombstone, 3 clear; anything else is no record).
    pub kind: u8,
    /// The key's bytes.
    pub key: Vec<u8>,
    /// The value as the cache would return it: decompressed when the zstd flag is set;
    /// `Value::Undecodable` when zstd refuses it, `Value::Unchecked` when it claims more than
    /// the oracle decompresses.
    pub value: Value,
}

/// A record's value, as far as the oracle can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// The bytes a read must return.
    Bytes(Vec<u8>),
    /// zstd could not produce the claimed length from the stored bytes: no read may succeed.
    Undecodable,
    /// Too large to check here; any bytes are accepted.
    Unchecked,
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// The total length (header, key, value) of the record whose header starts at `offset`, when
/// its header is there; it may run past the end of the file.
fn record_len(file: &[u8], offset: usize) -> Option<usize> {
    let key_len = le_u32(file, offset + 8)? as usize;
    let stored_len = le_u32(file, offset + 12)? as usize;
    RECORD_HEADER_LEN
        .checked_add(key_len)?
        .checked_add(stored_len)
}

/// Every record-shaped run in `file`: each place `NREC` occurs after the segment header whose
/// claimed key and value fit in the file. Overlapping candidates are all listed.
pub fn records(file: &[u8]) -> Vec<FoundRecord> {
    let mut found = Vec::new();
    let mut from = SEGMENT_HEADER_LEN.min(file.len());
    while let Some(position) = find(&file[from..], RECORD_MAGIC) {
        let offset = from + position;
        from = offset + 1;
        let Some(len) = record_len(file, offset) else {
            continue;
        };
        let Some(record) = offset
            .checked_add(len)
            .and_then(|end| file.get(offset..end))
        else {
            continue;
        };
        let key_len = le_u32(record, 8).unwrap_or(0) as usize;
        let raw_len = le_u32(record, 16).unwrap_or(0) as usize;
        let key = record[RECORD_HEADER_LEN..RECORD_HEADER_LEN + key_len].to_vec();
        let stored = &record[RECORD_HEADER_LEN + key_len..];
        let value = if record[6] & FLAG_ZSTD == 0 {
            Value::Bytes(stored.to_vec())
        } else if raw_len > ORACLE_MAX_RAW {
            Value::Unchecked
        } else {
            match zstd::bulk::decompress(stored, raw_len) {
                Ok(raw) if raw.len() == raw_len => Value::Bytes(raw),
                _ => Value::Undecodable,
            }
        };
        found.push(FoundRecord {
            offset,
            kind: record[5],
            key,
            value,
        });
    }
    found
}

/// Where `needle` first occurs in `haystack`. Compares the first byte before the rest: a
/// slice comparison per position goes through the sanitizer's `memcmp` hook, which made this
/// search the target's largest cost.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let last_start = haystack.len().checked_sub(needle.len())?;
    (0..=last_start).find(|&at| {
        haystack[at] == first
            && haystack[at + 1..at + needle.len()]
                .iter()
                .zip(rest)
                .all(|(a, b)| a == b)
    })
}

/// Recomputes the checksums of a segment file in place: the header's (XXH3-64 of bytes 0..56)
/// and, walking the records from offset 64, each record's (XXH3-64 seeded with the header's
/// nonce, of header bytes 0..40, key and value). After bytes that are no record, the walk
/// resumes at the next `NREC`. Returns whether anything changed; a file without the segment
/// magic is left alone.
pub fn repair_checksums(file: &mut [u8]) -> bool {
    if file.len() < SEGMENT_HEADER_LEN || &file[..8] != SEGMENT_MAGIC {
        return false;
    }
    let mut changed = false;
    let header_sum = xxh3_64(&file[..56]).to_le_bytes();
    if file[56..64] != header_sum {
        file[56..64].copy_from_slice(&header_sum);
        changed = true;
    }
    let nonce = le_u64(file, 32).unwrap_or(0);
    let mut offset = SEGMENT_HEADER_LEN;
    while offset + RECORD_HEADER_LEN <= file.len() {
        if &file[offset..offset + 4] != RECORD_MAGIC {
            match find(&file[offset + 1..], RECORD_MAGIC) {
                Some(next) => {
                    offset += 1 + next;
                    continue;
                }
                None => break,
            }
        }
        let Some(len) = record_len(file, offset) else {
            break;
        };
        let Some(end) = offset.checked_add(len).filter(|&end| end <= file.len()) else {
            // A record running past the end: try the next one inside it.
            offset += 1;
            continue;
        };
        let key_len = le_u32(file, offset + 8).unwrap_or(0) as usize;
        let mut hasher = Xxh3::with_seed(nonce);
        hasher.update(&file[offset..offset + 40]);
        hasher.update(&file[offset + RECORD_HEADER_LEN..offset + RECORD_HEADER_LEN + key_len]);
        hasher.update(&file[offset + RECORD_HEADER_LEN + key_len..end]);
        let sum = hasher.digest().to_le_bytes();
        if file[offset + 40..offset + 48] != sum {
            file[offset + 40..offset + 48].copy_from_slice(&sum);
            changed = true;
        }
        offset = end;
    }
    changed
}

/// Splits a fuzz input into segment files: a new file starts wherever the segment magic
/// begins a later run (so concatenated real segment files come apart as they were), at most
/// `max_files` of them; the last one keeps the rest.
pub fn split_segments(input: &[u8], max_files: usize) -> Vec<&[u8]> {
    let mut files = Vec::new();
    let mut start = 0;
    let mut search = 1;
    while files.len() + 1 < max_files {
        let Some(next) = input
            .get(search..)
            .and_then(|rest| find(rest, SEGMENT_MAGIC))
        else {
            break;
        };
        let at = search + next;
        files.push(&input[start..at]);
        start = at;
        search = at + 1;
    }
    files.push(&input[start..]);
    files
}
