//! The on-disk format: segment headers and records.
//!
//! A segment file (`seg-NNNNN.nfcs`) starts with a 64-byte header, followed by records
//! appended one after another:
//!
//! ```text
//! segment header (64 bytes, little endian)
//!   0  magic            8  b"NFCSSEG\0"
//!   8  format version   2  1
//!  10  flags            2  0
//!  12  slot             4  the slot number in the file name
//!  16  sequence         8  0 = free; otherwise unique and increasing across segments
//!  24  segment size     8  the capacity of every segment of the cache, in bytes
//!  32  nonce            8  random, new each time the slot is reused
//!  40  created          8  Unix milliseconds
//!  48  reserved         8  0
//!  56  checksum         8  XXH3-64 of bytes 0..56
//!
//! record header (48 bytes, little endian), then the key, then the stored value
//!   0  magic            4  b"NREC"
//!   4  version          1  1
//!   5  kind             1  1 = put, 2 = tombstone, 3 = clear, 4 = padding
//!   6  flags            1  bit 0 = value compressed with zstd, bit 1 = with LZ4 (a block,
//!                          lz4_flex's); at most one of them
//!   7  reserved         1  0
//!   8  key length       4
//!  12  stored length    4  the value as stored
//!  16  raw length       4  the value before compression
//!  20  reserved         4  0
//!  24  sequence         8  the segment's sequence
//!  32  expiry           8  Unix milliseconds, 0 = never
//!  40  checksum         8  XXH3-64, seeded with the segment's nonce, of bytes 0..40, key, value
//! ```
//!
//! The checksum covers every byte of a record, and its seed (the segment's random nonce) changes
//! whenever a slot is reused, so neither stale bytes from an earlier use of the slot nor bytes
//! that a value happens to contain can ever pass for a record.
//!
//! Bit 1 of the flags was added after the format's first release, without a version change:
//! a cache written with [`CompressionCodec::Zstd`](crate::CompressionCodec) (the default) is
//! byte for byte what earlier builds wrote and read, both ways. A record with bit 1 set is
//! refused by earlier builds as not a record, so an earlier build opening a cache that holds
//! LZ4 records treats them as damaged (recovery steps over them and pads them): those entries
//! read as misses there, never as wrong values.
//!
//! A padding record (empty key, a value of zeros) stands where recovery found damaged bytes
//! between valid records: it keeps the records after it reachable and is skipped on reading.

use xxhash_rust::xxh3::{Xxh3, xxh3_64};

/// The segment header's size.
pub(crate) const SEGMENT_HEADER_LEN: u64 = 64;
/// The record header's size.
pub(crate) const RECORD_HEADER_LEN: usize = 48;
/// The segment format this build writes and reads.
pub(crate) const SEGMENT_FORMAT_VERSION: u16 = 1;
/// The record format this build writes and reads.
pub(crate) const RECORD_VERSION: u8 = 1;

const SEGMENT_MAGIC: &[u8; 8] = b"NFCSSEG\0";
const RECORD_MAGIC: &[u8; 4] = b"NREC";
const FLAG_ZSTD: u8 = 1;
const FLAG_LZ4: u8 = 2;

/// How a record's value is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// As it is.
    Raw,
    /// A zstd frame.
    Zstd,
    /// An LZ4 block (no frame, no size prefix: the raw length is in the header).
    Lz4,
}

impl Encoding {
    fn flags(self) -> u8 {
        match self {
            Encoding::Raw => 0,
            Encoding::Zstd => FLAG_ZSTD,
            Encoding::Lz4 => FLAG_LZ4,
        }
    }

    fn from_flags(flags: u8) -> Option<Encoding> {
        match flags {
            0 => Some(Encoding::Raw),
            FLAG_ZSTD => Some(Encoding::Zstd),
            FLAG_LZ4 => Some(Encoding::Lz4),
            _ => None,
        }
    }
}

/// A segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub(crate) slot: u32,
    /// 0 for a free slot.
    pub(crate) sequence: u64,
    pub(crate) segment_size: u64,
    pub(crate) nonce: u64,
    pub(crate) created_unix_ms: u64,
}

/// Why a segment header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderProblem {
    /// Shorter than a header (an empty file is simply a free slot, see the caller).
    Truncated,
    /// Not our magic: a foreign or garbage file.
    NotASegment,
    /// The checksum does not match.
    Corrupt,
    /// Written by a newer format.
    NewerFormat(u16),
}

impl SegmentHeader {
    pub(crate) fn encode(&self) -> [u8; SEGMENT_HEADER_LEN as usize] {
        let mut bytes = [0_u8; SEGMENT_HEADER_LEN as usize];
        bytes[0..8].copy_from_slice(SEGMENT_MAGIC);
        bytes[8..10].copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
        bytes[12..16].copy_from_slice(&self.slot.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.sequence.to_le_bytes());
        bytes[24..32].copy_from_slice(&self.segment_size.to_le_bytes());
        bytes[32..40].copy_from_slice(&self.nonce.to_le_bytes());
        bytes[40..48].copy_from_slice(&self.created_unix_ms.to_le_bytes());
        let checksum = xxh3_64(&bytes[..56]);
        bytes[56..64].copy_from_slice(&checksum.to_le_bytes());
        bytes
    }

    /// The header `bytes` held before one byte of it was damaged, if changing one byte makes
    /// it a valid header of a segment in use (sequence not 0) that `accept` takes. Tries every
    /// byte value at every position (64 x 255 checksums); the checksum's 64 bits make a wrong
    /// repair about as likely as 2^-50 per damaged header.
    pub(crate) fn repair(
        bytes: &[u8],
        accept: impl Fn(&SegmentHeader) -> bool,
    ) -> Option<SegmentHeader> {
        let mut candidate: [u8; SEGMENT_HEADER_LEN as usize] =
            bytes.get(..SEGMENT_HEADER_LEN as usize)?.try_into().ok()?;
        for position in 0..candidate.len() {
            let original = candidate[position];
            for value in 0..=u8::MAX {
                if value == original {
                    continue;
                }
                candidate[position] = value;
                if let Ok(header) = SegmentHeader::decode(&candidate)
                    && header.sequence != 0
                    && accept(&header)
                {
                    return Some(header);
                }
            }
            candidate[position] = original;
        }
        None
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<SegmentHeader, HeaderProblem> {
        let Some(bytes) = bytes.get(..SEGMENT_HEADER_LEN as usize) else {
            return Err(HeaderProblem::Truncated);
        };
        if &bytes[0..8] != SEGMENT_MAGIC {
            return Err(HeaderProblem::NotASegment);
        }
        if le_u64(&bytes[56..64]) != xxh3_64(&bytes[..56]) {
            return Err(HeaderProblem::Corrupt);
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != SEGMENT_FORMAT_VERSION {
            return Err(HeaderProblem::NewerFormat(version));
        }
        Ok(SegmentHeader {
            slot: le_u32(&bytes[12..16]),
            sequence: le_u64(&bytes[16..24]),
            segment_size: le_u64(&bytes[24..32]),
            nonce: le_u64(&bytes[32..40]),
            created_unix_ms: le_u64(&bytes[40..48]),
        })
    }
}

/// What a record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordKind {
    /// A value for a key.
    Put,
    /// The key was deleted.
    Tombstone,
    /// Everything written before this record is gone.
    Clear,
    /// Nothing: bytes recovery found damaged, overwritten so that the scan steps over them.
    Padding,
}

impl RecordKind {
    fn code(self) -> u8 {
        match self {
            RecordKind::Put => 1,
            RecordKind::Tombstone => 2,
            RecordKind::Clear => 3,
            RecordKind::Padding => 4,
        }
    }

    fn from_code(code: u8) -> Option<RecordKind> {
        match code {
            1 => Some(RecordKind::Put),
            2 => Some(RecordKind::Tombstone),
            3 => Some(RecordKind::Clear),
            4 => Some(RecordKind::Padding),
            _ => None,
        }
    }
}

/// A record header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub(crate) kind: RecordKind,
    pub(crate) encoding: Encoding,
    pub(crate) key_len: u32,
    pub(crate) stored_len: u32,
    pub(crate) raw_len: u32,
    pub(crate) sequence: u64,
    pub(crate) expiry_unix_ms: u64,
    checksum: u64,
}

/// Why a record was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordProblem {
    /// Fewer bytes than the record claims (a torn write, or the end of the data).
    Truncated,
    /// No record starts here (stale or garbage bytes).
    NotARecord,
    /// Written by a newer format.
    NewerVersion,
    /// The checksum does not match: damaged, or from an earlier use of the slot.
    Corrupt,
}

impl RecordHeader {
    /// The whole record's length: header, key and stored value.
    pub(crate) fn record_len(&self) -> u64 {
        RECORD_HEADER_LEN as u64 + u64::from(self.key_len) + u64::from(self.stored_len)
    }

    /// Decodes the header at the start of `bytes` (only the header; see [`check_record`]).
    pub(crate) fn decode(bytes: &[u8]) -> Result<RecordHeader, RecordProblem> {
        let Some(bytes) = bytes.get(..RECORD_HEADER_LEN) else {
            return Err(RecordProblem::Truncated);
        };
        if &bytes[0..4] != RECORD_MAGIC {
            return Err(RecordProblem::NotARecord);
        }
        if bytes[4] != RECORD_VERSION {
            return Err(if bytes[4] > RECORD_VERSION {
                RecordProblem::NewerVersion
            } else {
                RecordProblem::NotARecord
            });
        }
        let kind = RecordKind::from_code(bytes[5]).ok_or(RecordProblem::NotARecord)?;
        let encoding = Encoding::from_flags(bytes[6]).ok_or(RecordProblem::NotARecord)?;
        Ok(RecordHeader {
            kind,
            encoding,
            key_len: le_u32(&bytes[8..12]),
            stored_len: le_u32(&bytes[12..16]),
            raw_len: le_u32(&bytes[16..20]),
            sequence: le_u64(&bytes[24..32]),
            expiry_unix_ms: le_u64(&bytes[32..40]),
            checksum: le_u64(&bytes[40..48]),
        })
    }
}

/// Checks a whole record (`bytes` starts at its header and holds at least `record_len`
/// bytes) against the segment it was read from. Returns the header, the key and the value.
pub(crate) fn check_record<'a>(
    bytes: &'a [u8],
    segment: &SegmentHeader,
) -> Result<(RecordHeader, &'a [u8], &'a [u8]), RecordProblem> {
    let header = RecordHeader::decode(bytes)?;
    let len = usize::try_from(header.record_len()).map_err(|_| RecordProblem::Truncated)?;
    let record = bytes.get(..len).ok_or(RecordProblem::Truncated)?;
    if header.sequence != segment.sequence {
        return Err(RecordProblem::Corrupt);
    }
    let key_end = RECORD_HEADER_LEN + header.key_len as usize;
    let (key, value) = (&record[RECORD_HEADER_LEN..key_end], &record[key_end..]);
    if checksum(segment.nonce, &record[..40], key, value) != header.checksum {
        return Err(RecordProblem::Corrupt);
    }
    Ok((header, key, value))
}

/// The raw fields of a record header that may be damaged: the key length and the stored
/// length at their places (`None` when fewer than 48 bytes are there), whatever the rest says.
pub(crate) fn raw_lengths(bytes: &[u8]) -> Option<(u32, u32)> {
    let header = bytes.get(..RECORD_HEADER_LEN)?;
    Some((le_u32(&header[8..12]), le_u32(&header[12..16])))
}

/// The checksum stored in a record header (bytes 40..48).
pub(crate) fn stored_checksum(bytes: &[u8]) -> Option<u64> {
    bytes.get(40..48).map(le_u64)
}

/// The header a clear record has in `segment` (clear records are only a header).
pub(crate) fn clear_header(segment: &SegmentHeader) -> Vec<u8> {
    let mut header = Vec::with_capacity(RECORD_HEADER_LEN);
    NewRecord {
        kind: RecordKind::Clear,
        key: &[],
        value: &[],
        encoding: Encoding::Raw,
        raw_len: 0,
        expiry_unix_ms: 0,
    }
    .encode_into(segment, &mut header);
    header
}

/// What a record to be written holds.
pub(crate) struct NewRecord<'a> {
    pub(crate) kind: RecordKind,
    pub(crate) key: &'a [u8],
    pub(crate) value: &'a [u8],
    pub(crate) encoding: Encoding,
    pub(crate) raw_len: u32,
    pub(crate) expiry_unix_ms: u64,
}

impl NewRecord<'_> {
    pub(crate) fn len(&self) -> u64 {
        (RECORD_HEADER_LEN + self.key.len() + self.value.len()) as u64
    }

    /// Appends the encoded record, for the segment described by `segment`, to `out`.
    pub(crate) fn encode_into(&self, segment: &SegmentHeader, out: &mut Vec<u8>) {
        let start = out.len();
        let mut header = [0_u8; RECORD_HEADER_LEN];
        header[0..4].copy_from_slice(RECORD_MAGIC);
        header[4] = RECORD_VERSION;
        header[5] = self.kind.code();
        header[6] = self.encoding.flags();
        // Keys are at most 4096 bytes and values at most a segment, so these fit.
        header[8..12].copy_from_slice(&(self.key.len() as u32).to_le_bytes());
        header[12..16].copy_from_slice(&(self.value.len() as u32).to_le_bytes());
        header[16..20].copy_from_slice(&self.raw_len.to_le_bytes());
        header[24..32].copy_from_slice(&segment.sequence.to_le_bytes());
        header[32..40].copy_from_slice(&self.expiry_unix_ms.to_le_bytes());
        let sum = checksum(segment.nonce, &header[..40], self.key, self.value);
        header[40..48].copy_from_slice(&sum.to_le_bytes());
        out.reserve(RECORD_HEADER_LEN + self.key.len() + self.value.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(self.key);
        out.extend_from_slice(self.value);
        debug_assert_eq!((out.len() - start) as u64, self.len());
    }
}

/// The record checksum: XXH3-64 seeded with the segment's nonce over the header's first 40
/// bytes, the key and the stored value.
pub(crate) fn checksum(nonce: u64, header: &[u8], key: &[u8], value: &[u8]) -> u64 {
    let mut hasher = Xxh3::with_seed(nonce);
    hasher.update(header);
    hasher.update(key);
    hasher.update(value);
    hasher.digest()
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut array = [0_u8; 4];
    array.copy_from_slice(bytes);
    u32::from_le_bytes(array)
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut array = [0_u8; 8];
    array.copy_from_slice(bytes);
    u64::from_le_bytes(array)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment() -> SegmentHeader {
        SegmentHeader {
            slot: 3,
            sequence: 42,
            segment_size: 1 << 20,
            nonce: 0xdead_beef,
            created_unix_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn segment_headers_round_trip_and_reject_damage() {
        let header = segment();
        let bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Ok(header));
        assert_eq!(
            SegmentHeader::decode(&bytes[..10]),
            Err(HeaderProblem::Truncated)
        );
        for index in 0..bytes.len() {
            let mut damaged = bytes;
            damaged[index] ^= 0x10;
            assert!(SegmentHeader::decode(&damaged).is_err(), "flip at {index}");
        }
        let mut newer = segment().encode();
        newer[8] = 2;
        let sum = xxh3_64(&newer[..56]);
        newer[56..64].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(
            SegmentHeader::decode(&newer),
            Err(HeaderProblem::NewerFormat(2))
        );
        assert_eq!(
            SegmentHeader::decode(
                b"garbage garbage garbage garbage garbage garbage garbage garbage!"
            ),
            Err(HeaderProblem::NotASegment)
        );
    }

    #[test]
    fn records_round_trip_and_every_flipped_bit_is_caught() {
        let segment = segment();
        let record = NewRecord {
            kind: RecordKind::Put,
            key: b"policy_read",
            value: b"allow, because the actor is trusted",
            encoding: Encoding::Raw,
            raw_len: 35,
            expiry_unix_ms: 1_800_000_000_000,
        };
        let mut bytes = Vec::new();
        record.encode_into(&segment, &mut bytes);
        let (header, key, value) = check_record(&bytes, &segment).unwrap();
        assert_eq!(header.kind, RecordKind::Put);
        assert_eq!(
            (key, value),
            (
                &b"policy_read"[..],
                &b"allow, because the actor is trusted"[..]
            )
        );
        assert_eq!(header.expiry_unix_ms, 1_800_000_000_000);
        assert_eq!(header.record_len(), bytes.len() as u64);
        for index in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[index] ^= 1 << bit;
                assert!(
                    check_record(&damaged, &segment).is_err(),
                    "flip at {index}.{bit}"
                );
            }
        }
        for len in 0..bytes.len() {
            assert!(
                check_record(&bytes[..len], &segment).is_err(),
                "prefix of {len}"
            );
        }
        // The same bytes read against a later use of the slot (another nonce) are refused.
        let reused = SegmentHeader {
            nonce: 7,
            ..segment
        };
        assert_eq!(
            check_record(&bytes, &reused).unwrap_err(),
            RecordProblem::Corrupt
        );
        // An LZ4 record round trips; both codec flags at once are not a record.
        let lz4 = NewRecord {
            encoding: Encoding::Lz4,
            ..record
        };
        let mut lz4_bytes = Vec::new();
        lz4.encode_into(&segment, &mut lz4_bytes);
        assert_eq!(lz4_bytes[6], FLAG_LZ4);
        let (header, _, _) = check_record(&lz4_bytes, &segment).unwrap();
        assert_eq!(header.encoding, Encoding::Lz4);
        let mut both = lz4_bytes.clone();
        both[6] = FLAG_ZSTD | FLAG_LZ4;
        assert_eq!(
            check_record(&both, &segment).unwrap_err(),
            RecordProblem::NotARecord
        );
        let mut newer = bytes.clone();
        newer[4] = 2;
        assert_eq!(
            check_record(&newer, &segment).unwrap_err(),
            RecordProblem::NewerVersion
        );
    }
}
