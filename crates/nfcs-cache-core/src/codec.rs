//! The framed value codec: serde, then postcard, then zstd above a size threshold, in a small
//! checksummed envelope that also records the type the value was written as.
//!
//! Tiers store bytes; the typed API above them (`get::<T>`, `set(&T)`) encodes once with this
//! codec and every tier stores the same frame.
//!
//! # Frame format, version 2
//!
//! | offset | size | field                                                          |
//! |--------|------|----------------------------------------------------------------|
//! | 0      | 1    | format version, `2`                                            |
//! | 1      | 1    | flags: bit 0 set = payload compressed with zstd; others zero   |
//! | 2      | 4    | payload length before compression, `u32` little endian         |
//! | 6      | 8    | checksum, `u64` little endian (see below)                      |
//! | 14     | 8    | type fingerprint, `u64` little endian (see below)              |
//! | 22     | ..   | payload as stored (compressed or not)                          |
//!
//! The checksum is XXH3-64 of everything after it (the type fingerprint and the stored
//! payload), seeded with the version, flags and length, so a flipped bit anywhere in the frame
//! is detected before anything is decompressed or the fingerprint is trusted. The version byte
//! stays first in every version, so a reader can always tell which layout follows.
//!
//! # Frame format, version 1
//!
//! Written by the previous release: the same header without the type fingerprint (the payload
//! starts at offset 14, and the checksum covers the payload alone). Version-1 frames still
//! decode, so nothing cached on disk or in Redis before the upgrade is lost, but **without a
//! type check**: they carry no fingerprint, so reading one as another type can still give a
//! wrong value, as it did before. This codec writes only version 2. A frame of a version it does
//! not know (a newer release, or garbage) is refused with [`DecodeError::UnsupportedVersion`].
//!
//! # Type fingerprints
//!
//! postcard writes no type information: the bytes of `"greeting"` read as a `Vec<u64>` give
//! `[103, 114, ...]`, and a `u32` 7 read as an `i64` gives -4. So a version-2 frame carries a
//! fingerprint of the type it was written as: XXH3-64 of a canonical form of
//! [`std::any::type_name`], seeded with the codec's [schema version](Codec::with_schema_version).
//! [`Codec::decode`] compares it with the requested type's and returns
//! [`DecodeError::WrongType`] when they differ, before deserialising anything.
//!
//! The canonical form erases the differences that serde and postcard do not see, applied
//! inside generic arguments, tuples, slices and arrays too, so these pairs read each other:
//!
//! - `&T` and `&mut T` are `T`;
//! - `String`, `str`, `Box<str>`, `Cow<str>`, `Arc<str>`, `Rc<str>`, `PathBuf` and `Path` are
//!   `str`;
//! - `Vec<T>`, `[T]`, `Box<[T]>`, `VecDeque<T>`, `LinkedList<T>` and `BinaryHeap<T>` are one
//!   sequence form (fixed arrays `[T; N]` are not: postcard writes them without a length);
//! - `Box<T>`, `Arc<T>`, `Rc<T>`, `Cow<T>`, `Cell<T>`, `RefCell<T>`, `Mutex<T>`, `RwLock<T>`,
//!   `Wrapping<T>` and `Reverse<T>` are `T`;
//! - `HashMap<K, V, S>` and `BTreeMap<K, V>` (and hashbrown's and indexmap's maps) are one map
//!   form, whatever the hasher; `HashSet` and `BTreeSet` (and theirs) are one set form;
//! - `usize` is `u64` and `isize` is `i64` (serde writes them as such);
//! - the module path of a standard-library type is dropped (`alloc::vec::Vec` is `Vec`), so the
//!   standard library moving a type (as `Mutex` moved into `std::sync::poison`) changes nothing.
//!
//! So `Vec<&str>` and `Vec<String>` match, as do `Option<&str>` and `Option<String>`, and
//! `&[f64]` and `Vec<f64>`. Other integer widths do not match (`u32` and `u64` are different
//! types even where their varints coincide), nor do a set and a sequence.
//!
//! What the fingerprint cannot know: your own types are named with their full module path, so
//! moving or renaming one changes its fingerprint (old entries then read as `WrongType`, an
//! error, never a wrong value); and a type that keeps its name but changes its serialised shape
//! keeps its fingerprint: bump [`Codec::with_schema_version`] for that. `type_name` is not
//! guaranteed stable across compiler releases; a compiler that printed a type differently
//! would, in the same way, make older entries read as `WrongType`. A type name the canonical
//! form cannot parse (trait objects, function pointers: nothing serde can deserialise) is
//! hashed as printed.
//!
//! The fingerprint is computed once per type and thread and then read from a small
//! thread-local table keyed by the address and length of the `&'static str` that `type_name`
//! returns, so it costs a few nanoseconds per encode or decode.
//!
//! # Bounded decoding
//!
//! A frame claiming more than [`Codec::max_decoded_size`] bytes is refused before any
//! allocation, and zstd decompression writes into a buffer of exactly the claimed size, so a
//! hostile length prefix or a zstd bomb costs at most that limit. Postcard never pre-allocates
//! more than its input can fill.
//!
//! # Why postcard and not bincode
//!
//! The design named bincode 2; its maintainers stopped development in 2025 (RUSTSEC-2025-0141).
//! postcard is maintained, serde-native, has a frozen and documented wire format (1.0), and is
//! compact (varints). See `docs/architecture.md`.

use std::any::type_name;
use std::borrow::Cow;
use std::cell::Cell;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::BoxError;

/// The frame format version this codec writes. It also reads every older version down to 1.
pub const FORMAT_VERSION: u8 = 2;
/// Bytes before the payload in a frame of the current version ([`FORMAT_VERSION`]).
pub const HEADER_LEN: usize = 22;

/// The oldest frame format version this codec reads.
const OLDEST_FORMAT_VERSION: u8 = 1;
/// Bytes before the payload in a version-1 frame (no type fingerprint).
const V1_HEADER_LEN: usize = 14;
/// Where the checksum sits in every version; it covers everything after it.
const CHECKSUM_RANGE: std::ops::Range<usize> = 6..14;
/// Where the type fingerprint sits in a version-2 frame.
const FINGERPRINT_RANGE: std::ops::Range<usize> = 14..22;
/// The fingerprint of a frame whose payload has no Rust type ([`Codec::encode_raw`]). No type's
/// fingerprint is zero (see `fingerprint_of_name`), so a typed read of such a frame is always
/// [`DecodeError::WrongType`].
const UNTYPED: u64 = 0;

const FLAG_ZSTD: u8 = 0b0000_0001;
const KNOWN_FLAGS: u8 = FLAG_ZSTD;

/// Why a value could not be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// serde or postcard refused the value (for example a map with non-string keys that a
    /// custom `Serialize` rejects, or a sequence without a known length).
    #[error("serialisation failed: {source}")]
    Serialize {
        /// The serialiser's error.
        #[source]
        source: BoxError,
    },
    /// The encoded value is larger than the codec would agree to decode.
    #[error("the encoded value is {size} bytes, more than the {limit}-byte decoding limit")]
    TooLarge {
        /// The encoded size in bytes.
        size: u64,
        /// [`Codec::max_decoded_size`].
        limit: u64,
    },
    /// zstd failed to compress.
    #[error("compression failed: {source}")]
    Compress {
        /// zstd's error.
        #[source]
        source: std::io::Error,
    },
}

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than the frame's header.
    #[error("the frame is {len} bytes long, shorter than its {header_len}-byte header")]
    Truncated {
        /// The frame's length.
        len: usize,
        /// The length of the header of the frame's version (of the shortest header when the
        /// frame is too short to hold a version byte).
        header_len: usize,
    },
    /// Written by a format version this codec does not know (a newer release, or garbage).
    #[error(
        "frame format version {found} is not supported (this codec reads versions \
         {OLDEST_FORMAT_VERSION} to {supported})"
    )]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
        /// The newest version this codec reads ([`FORMAT_VERSION`]).
        supported: u8,
    },
    /// Flag bits this codec does not know are set.
    #[error("unknown flag bits {flags:#010b} in the frame header")]
    UnknownFlags {
        /// The flags byte.
        flags: u8,
    },
    /// The checksum does not match the bytes: the frame is corrupt.
    #[error(
        "checksum mismatch (stored {stored:#018x}, computed {computed:#018x}): the frame is corrupt"
    )]
    ChecksumMismatch {
        /// The checksum in the header.
        stored: u64,
        /// The checksum of the bytes as found.
        computed: u64,
    },
    /// The frame claims a payload larger than the decoding limit.
    #[error("the frame claims {claimed} bytes, more than the {limit}-byte decoding limit")]
    TooLarge {
        /// The payload length in the header.
        claimed: u64,
        /// [`Codec::max_decoded_size`].
        limit: u64,
    },
    /// The payload's length differs from the header's.
    #[error("the payload is {actual} bytes but the header says {claimed}")]
    LengthMismatch {
        /// The length in the header.
        claimed: u64,
        /// The length found.
        actual: u64,
    },
    /// zstd could not decompress the payload.
    #[error("decompression failed: {source}")]
    Decompress {
        /// zstd's error.
        #[source]
        source: std::io::Error,
    },
    /// The frame is intact and records the type it was written as, and that is not the
    /// requested type (or it was written under another schema version). Nothing was
    /// deserialised. See the module docs for which types count as the same.
    #[error(
        "the value was stored as another type (type fingerprint {stored:#018x}), not as \
         {requested_type} (fingerprint {requested:#018x} at schema version {schema_version})"
    )]
    WrongType {
        /// The fingerprint in the frame; zero for a raw payload ([`Codec::encode_raw`]).
        stored: u64,
        /// The requested type's fingerprint ([`Codec::type_fingerprint`]).
        requested: u64,
        /// The requested type, as [`std::any::type_name`] prints it.
        requested_type: &'static str,
        /// The reading codec's [`Codec::schema_version`].
        schema_version: u32,
    },
    /// The frame is intact but its payload is not a value of the requested type: it was stored
    /// as another type by a version-1 frame (which records no type), or by a version of the
    /// type with another shape under the same schema version.
    #[error("the stored bytes are not a value of the requested type: {source}")]
    Deserialize {
        /// The deserialiser's error.
        #[source]
        source: BoxError,
    },
}

impl DecodeError {
    /// Whether the frame itself is damaged or unreadable (as opposed to an intact frame holding
    /// another type). A cache treats corruption as a miss and drops the entry; a type mismatch
    /// ([`WrongType`](DecodeError::WrongType), [`Deserialize`](DecodeError::Deserialize)) is
    /// the caller's bug and is reported.
    pub fn is_corruption(&self) -> bool {
        !matches!(
            self,
            DecodeError::Deserialize { .. } | DecodeError::WrongType { .. }
        )
    }
}

/// Encodes values into frames and decodes them back, within limits.
///
/// ```
/// use nfcs_cache_core::{Codec, DecodeError};
///
/// let codec = Codec::default();
/// let frame = codec.encode(&vec![1.5_f64; 1000])?;
/// assert!(frame.len() < 1000 * 8, "repetitive data is compressed");
/// let back: Vec<f64> = codec.decode(&frame)?;
/// assert_eq!(back, vec![1.5; 1000]);
///
/// // A damaged frame is an error, never a wrong value.
/// let mut damaged = frame.to_vec();
/// damaged[30] ^= 0x40;
/// assert!(codec.decode::<Vec<f64>>(&damaged).unwrap_err().is_corruption());
///
/// // So is reading a value as another type; types that encode alike read each other.
/// let frame = codec.encode(&"greeting")?;
/// assert!(matches!(codec.decode::<Vec<u64>>(&frame), Err(DecodeError::WrongType { .. })));
/// assert_eq!(codec.decode::<String>(&frame)?, "greeting");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    compression_threshold: usize,
    compression_level: i32,
    max_decoded_size: usize,
    schema_version: u32,
}

impl Default for Codec {
    fn default() -> Codec {
        Codec {
            compression_threshold: Codec::DEFAULT_COMPRESSION_THRESHOLD,
            compression_level: Codec::DEFAULT_COMPRESSION_LEVEL,
            max_decoded_size: Codec::DEFAULT_MAX_DECODED_SIZE,
            schema_version: 0,
        }
    }
}

impl Codec {
    /// Payloads at least this long (1 KiB) are offered to zstd; smaller ones rarely shrink.
    pub const DEFAULT_COMPRESSION_THRESHOLD: usize = 1024;
    /// zstd's own default level, a good speed/ratio balance.
    pub const DEFAULT_COMPRESSION_LEVEL: i32 = 3;
    /// The largest payload decoded by default: 256 MiB.
    pub const DEFAULT_MAX_DECODED_SIZE: usize = 256 * 1024 * 1024;

    /// A codec with the defaults.
    pub fn new() -> Codec {
        Codec::default()
    }

    /// Sets the payload size from which compression is tried (`usize::MAX` disables it).
    /// Compressed output is kept only when it is smaller than the input.
    #[must_use]
    pub fn with_compression_threshold(mut self, bytes: usize) -> Codec {
        self.compression_threshold = bytes;
        self
    }

    /// Sets the zstd level, clamped to the range zstd supports (1 to 22 and the negative fast
    /// levels).
    #[must_use]
    pub fn with_compression_level(mut self, level: i32) -> Codec {
        let range = zstd::compression_level_range();
        self.compression_level = level.clamp(*range.start(), *range.end());
        self
    }

    /// Sets the largest payload the codec will decode (and so encode), in bytes. The bound
    /// applies before any allocation.
    #[must_use]
    pub fn with_max_decoded_size(mut self, bytes: usize) -> Codec {
        self.max_decoded_size = bytes.min(u32::MAX as usize);
        self
    }

    /// Sets the schema version (default 0) that seeds every type fingerprint this codec writes
    /// and expects.
    ///
    /// Bump it when a type keeps its name but changes its serialised shape (a field added,
    /// removed, reordered or retyped, an enum variant inserted before others): the fingerprint
    /// cannot see that, and postcard would read the old bytes as a wrong value or fail
    /// somewhere inside them. After the bump, entries written under the old version read as
    /// [`DecodeError::WrongType`] instead; clear the cache, let those entries expire, or put the
    /// version in the key prefix when old entries must simply stop being found. The number is
    /// one for every type the codec encodes, and version-1 frames (which carry no
    /// fingerprint) are not checked against it.
    ///
    /// ```
    /// use nfcs_cache_core::{Codec, DecodeError};
    ///
    /// let frame = Codec::new().encode(&7_u32)?;
    /// let bumped = Codec::new().with_schema_version(1);
    /// assert!(matches!(bumped.decode::<u32>(&frame), Err(DecodeError::WrongType { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_schema_version(mut self, version: u32) -> Codec {
        self.schema_version = version;
        self
    }

    /// The payload size from which compression is tried.
    pub fn compression_threshold(&self) -> usize {
        self.compression_threshold
    }

    /// The zstd level.
    pub fn compression_level(&self) -> i32 {
        self.compression_level
    }

    /// The largest payload the codec decodes.
    pub fn max_decoded_size(&self) -> usize {
        self.max_decoded_size
    }

    /// The schema version that seeds the type fingerprints (see
    /// [`with_schema_version`](Codec::with_schema_version)).
    pub fn schema_version(&self) -> u32 {
        self.schema_version
    }

    /// The type fingerprint this codec writes into frames of `T` and expects when decoding a
    /// `T`: XXH3-64 of the canonical form of `T`'s name (see the module docs), seeded with the
    /// schema version; never zero.
    ///
    /// ```
    /// use nfcs_cache_core::Codec;
    ///
    /// let codec = Codec::new();
    /// assert_eq!(codec.type_fingerprint::<&str>(), codec.type_fingerprint::<String>());
    /// assert_eq!(codec.type_fingerprint::<Vec<f64>>(), codec.type_fingerprint::<[f64]>());
    /// assert_ne!(codec.type_fingerprint::<Vec<f64>>(), codec.type_fingerprint::<[f64; 4]>());
    /// assert_ne!(codec.type_fingerprint::<u32>(), codec.type_fingerprint::<i64>());
    /// ```
    pub fn type_fingerprint<T: ?Sized>(&self) -> u64 {
        memoised_fingerprint(type_name::<T>(), self.schema_version)
    }

    /// Serialises `value` with postcard and frames it with `T`'s type fingerprint.
    ///
    /// # Errors
    /// [`EncodeError`] when serde refuses the value, when it is larger than
    /// [`max_decoded_size`](Codec::max_decoded_size), or when compression fails.
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Bytes, EncodeError> {
        let mut buffer = Vec::with_capacity(HEADER_LEN + 64);
        buffer.resize(HEADER_LEN, 0);
        let buffer =
            postcard::to_extend(value, buffer).map_err(|error| EncodeError::Serialize {
                source: Box::new(error),
            })?;
        self.finish_frame(buffer, self.type_fingerprint::<T>())
    }

    /// Frames `payload` as it is (compressing it when that pays), for callers that bring their
    /// own serialisation and read it back with [`decode_raw`](Codec::decode_raw). The frame
    /// records no type (its fingerprint is zero), so [`decode`](Codec::decode) refuses it with
    /// [`DecodeError::WrongType`] whatever the type.
    ///
    /// # Errors
    /// As [`encode`](Codec::encode), minus serialisation.
    pub fn encode_raw(&self, payload: &[u8]) -> Result<Bytes, EncodeError> {
        let mut buffer = Vec::with_capacity(HEADER_LEN + payload.len());
        buffer.resize(HEADER_LEN, 0);
        buffer.extend_from_slice(payload);
        self.finish_frame(buffer, UNTYPED)
    }

    /// Takes a buffer of `HEADER_LEN` placeholder bytes followed by the payload, compresses the
    /// payload when that pays, and fills in the header.
    fn finish_frame(&self, mut buffer: Vec<u8>, fingerprint: u64) -> Result<Bytes, EncodeError> {
        let payload_len = buffer.len() - HEADER_LEN;
        if payload_len > self.max_decoded_size {
            return Err(EncodeError::TooLarge {
                size: payload_len as u64,
                limit: self.max_decoded_size as u64,
            });
        }
        let mut flags = 0;
        if payload_len >= self.compression_threshold {
            let compressed = zstd::bulk::compress(&buffer[HEADER_LEN..], self.compression_level)
                .map_err(|source| EncodeError::Compress { source })?;
            if compressed.len() < payload_len {
                buffer.truncate(HEADER_LEN);
                buffer.extend_from_slice(&compressed);
                flags |= FLAG_ZSTD;
            }
        }
        // `max_decoded_size` is at most `u32::MAX`, so the length fits.
        let claimed = payload_len as u32;
        buffer[0] = FORMAT_VERSION;
        buffer[1] = flags;
        buffer[2..6].copy_from_slice(&claimed.to_le_bytes());
        // The fingerprint goes in before the checksum is computed, because the checksum covers
        // it: a damaged fingerprint must read as corruption, not as another type.
        buffer[FINGERPRINT_RANGE].copy_from_slice(&fingerprint.to_le_bytes());
        let checksum = frame_checksum(
            FORMAT_VERSION,
            flags,
            claimed,
            &buffer[CHECKSUM_RANGE.end..],
        );
        buffer[CHECKSUM_RANGE].copy_from_slice(&checksum.to_le_bytes());
        Ok(Bytes::from(buffer))
    }

    /// Checks a frame's header and checksum and the size limit, touching nothing else.
    fn check<'a>(&self, frame: &'a [u8]) -> Result<CheckedFrame<'a>, DecodeError> {
        let Some(&version) = frame.first() else {
            return Err(DecodeError::Truncated {
                len: 0,
                header_len: V1_HEADER_LEN,
            });
        };
        let header_len = match version {
            OLDEST_FORMAT_VERSION => V1_HEADER_LEN,
            FORMAT_VERSION => HEADER_LEN,
            found => {
                return Err(DecodeError::UnsupportedVersion {
                    found,
                    supported: FORMAT_VERSION,
                });
            }
        };
        if frame.len() < header_len {
            return Err(DecodeError::Truncated {
                len: frame.len(),
                header_len,
            });
        }
        let flags = frame[1];
        if flags & !KNOWN_FLAGS != 0 {
            return Err(DecodeError::UnknownFlags { flags });
        }
        let claimed = u32::from_le_bytes([frame[2], frame[3], frame[4], frame[5]]);
        let stored = read_u64(&frame[CHECKSUM_RANGE]);
        // In both versions the checksum covers everything after it.
        let computed = frame_checksum(version, flags, claimed, &frame[CHECKSUM_RANGE.end..]);
        if computed != stored {
            return Err(DecodeError::ChecksumMismatch { stored, computed });
        }
        let fingerprint = (version == FORMAT_VERSION).then(|| read_u64(&frame[FINGERPRINT_RANGE]));
        let claimed = claimed as usize;
        if claimed > self.max_decoded_size {
            return Err(DecodeError::TooLarge {
                claimed: claimed as u64,
                limit: self.max_decoded_size as u64,
            });
        }
        Ok(CheckedFrame {
            fingerprint,
            compressed: flags & FLAG_ZSTD != 0,
            claimed,
            stored: &frame[header_len..],
        })
    }

    /// Checks a frame and returns its payload, decompressed. No type is checked: this is the
    /// counterpart of [`encode_raw`](Codec::encode_raw), and it accepts typed frames too.
    ///
    /// # Errors
    /// [`DecodeError`] for a truncated, corrupt, oversized or unknown-version frame.
    pub fn decode_raw<'a>(&self, frame: &'a [u8]) -> Result<Cow<'a, [u8]>, DecodeError> {
        self.check(frame)?.payload()
    }

    /// Checks a frame, checks that it was written as a `T` (version-2 frames; version-1 frames
    /// record no type), and deserialises its payload as a `T`.
    ///
    /// # Errors
    /// [`DecodeError`]; [`DecodeError::WrongType`] when the frame was written as another type
    /// or under another schema version; [`DecodeError::is_corruption`] tells a damaged frame
    /// from a value of another type.
    pub fn decode<T: DeserializeOwned>(&self, frame: &[u8]) -> Result<T, DecodeError> {
        let checked = self.check(frame)?;
        if let Some(stored) = checked.fingerprint {
            let requested = self.type_fingerprint::<T>();
            if stored != requested {
                return Err(DecodeError::WrongType {
                    stored,
                    requested,
                    requested_type: type_name::<T>(),
                    schema_version: self.schema_version,
                });
            }
        }
        let payload = checked.payload()?;
        let (value, rest) =
            postcard::take_from_bytes::<T>(&payload).map_err(|error| DecodeError::Deserialize {
                source: Box::new(error),
            })?;
        if !rest.is_empty() {
            // Leftover bytes mean the payload was written as a different (longer) type.
            return Err(DecodeError::Deserialize {
                source: format!(
                    "{} bytes left over after the value: the stored value has another type",
                    rest.len()
                )
                .into(),
            });
        }
        Ok(value)
    }
}

/// A frame whose header and checksum have been checked, its payload not yet unpacked.
struct CheckedFrame<'a> {
    /// The type fingerprint, or `None` for a version-1 frame (which has none).
    fingerprint: Option<u64>,
    compressed: bool,
    /// The payload length before compression, within the decoding limit.
    claimed: usize,
    /// The payload as stored.
    stored: &'a [u8],
}

impl<'a> CheckedFrame<'a> {
    /// The payload, decompressed, after checking its length against the header's.
    fn payload(self) -> Result<Cow<'a, [u8]>, DecodeError> {
        let claimed = self.claimed;
        if !self.compressed {
            if self.stored.len() != claimed {
                return Err(DecodeError::LengthMismatch {
                    claimed: claimed as u64,
                    actual: self.stored.len() as u64,
                });
            }
            return Ok(Cow::Borrowed(self.stored));
        }
        // The output buffer is exactly `claimed` bytes; zstd fails rather than grow it.
        let decompressed = zstd::bulk::decompress(self.stored, claimed)
            .map_err(|source| DecodeError::Decompress { source })?;
        if decompressed.len() != claimed {
            return Err(DecodeError::LengthMismatch {
                claimed: claimed as u64,
                actual: decompressed.len() as u64,
            });
        }
        Ok(Cow::Owned(decompressed))
    }
}

/// Reads eight bytes as a little-endian `u64`; callers pass slices of exactly eight bytes.
fn read_u64(bytes: &[u8]) -> u64 {
    let mut word = [0_u8; 8];
    word.copy_from_slice(bytes);
    u64::from_le_bytes(word)
}

fn frame_checksum(version: u8, flags: u8, claimed: u32, covered: &[u8]) -> u64 {
    let seed = (u64::from(version) << 40) | (u64::from(flags) << 32) | u64::from(claimed);
    xxhash_rust::xxh3::xxh3_64_with_seed(covered, seed)
}

/// One remembered fingerprint: the type name's address and length, the schema version, and the
/// fingerprint they give.
#[derive(Clone, Copy)]
struct MemoEntry {
    address: usize,
    len: usize,
    schema_version: u32,
    fingerprint: u64,
}

impl MemoEntry {
    /// No type name lives at address zero, so this entry never matches.
    const EMPTY: MemoEntry = MemoEntry {
        address: 0,
        len: 0,
        schema_version: 0,
        fingerprint: 0,
    };
}

/// Slots in each thread's fingerprint memo (a power of two). A program encodes a handful of
/// types per thread; two that share a slot only cost a recomputation when they alternate.
const MEMO_SLOTS: usize = 64;

thread_local! {
    // A direct-mapped table rather than a map: a lookup is one multiply, one load and three
    // compares, with no hashing of the name and no borrow flag. `const` initialisation means
    // no lazy-initialisation check and no destructor registration on first use.
    static FINGERPRINT_MEMO: [Cell<MemoEntry>; MEMO_SLOTS] =
        const { [const { Cell::new(MemoEntry::EMPTY) }; MEMO_SLOTS] };
}

/// The fingerprint of the type named `name` under `schema_version`, computed once per thread.
///
/// Keyed by the address and length of the `&'static str`: the text there never changes, so the
/// key determines the fingerprint. The same type may be named by several copies of its string
/// (one per codegen unit); each copy is simply remembered on its own.
fn memoised_fingerprint(name: &'static str, schema_version: u32) -> u64 {
    let address = name.as_ptr().addr();
    let len = name.len();
    let mixed = (address as u64) ^ (len as u64).rotate_left(32) ^ u64::from(schema_version);
    let slot =
        (mixed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - MEMO_SLOTS.trailing_zeros())) as usize;
    FINGERPRINT_MEMO
        .try_with(|memo| {
            let entry = memo[slot].get();
            if entry.address == address
                && entry.len == len
                && entry.schema_version == schema_version
            {
                return entry.fingerprint;
            }
            let fingerprint = fingerprint_of_name(name, schema_version);
            memo[slot].set(MemoEntry {
                address,
                len,
                schema_version,
                fingerprint,
            });
            fingerprint
        })
        // Only while the thread's locals are being destroyed: compute without remembering.
        .unwrap_or_else(|_| fingerprint_of_name(name, schema_version))
}

/// The fingerprint of a type name, uncached: XXH3-64 of its canonical form, seeded with the
/// schema version, with zero (reserved for untyped frames) moved to one.
fn fingerprint_of_name(name: &str, schema_version: u32) -> u64 {
    let canonical = type_names::canonical(name);
    let hash =
        xxhash_rust::xxh3::xxh3_64_with_seed(canonical.as_bytes(), u64::from(schema_version));
    if hash == UNTYPED { 1 } else { hash }
}

/// The canonical form of a Rust type name: a small tokenizer and recursive-descent parser over
/// what [`std::any::type_name`] prints, rewriting the forms that serde and postcard encode
/// alike into one (see the module docs for the list).
mod type_names {
    /// A token of a type name.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Token<'a> {
        /// An identifier, a primitive, a lifetime (`'_`) or a const argument (`3`, `true`).
        Word(&'a str),
        /// `::`
        PathSeparator,
        /// `<`
        Less,
        /// `>`
        Greater,
        /// `,`
        Comma,
        /// `(`
        OpenParen,
        /// `)`
        CloseParen,
        /// `[`
        OpenBracket,
        /// `]`
        CloseBracket,
        /// `;`
        Semicolon,
        /// `&`
        Ampersand,
    }

    /// A type in canonical form.
    #[derive(Debug, PartialEq, Eq)]
    enum Type<'a> {
        /// A named type: path segments, each with its generic arguments (lifetimes dropped).
        Path(Vec<Segment<'a>>),
        /// A tuple (the unit type is the empty tuple).
        Tuple(Vec<Type<'a>>),
        /// Every variable-length sequence: slices, `Vec`, `VecDeque`, ...
        Sequence(Box<Type<'a>>),
        /// A fixed-length array and its length as printed.
        Array(Box<Type<'a>>, Box<Type<'a>>),
        /// Every map, keys and values.
        Map(Box<Type<'a>>, Box<Type<'a>>),
        /// Every set.
        Set(Box<Type<'a>>),
    }

    /// One segment of a path, `Vec<u8>` in `alloc::vec::Vec<u8>`.
    #[derive(Debug, PartialEq, Eq)]
    struct Segment<'a> {
        name: &'a str,
        arguments: Vec<Type<'a>>,
    }

    /// Deeper nesting than this is not parsed (it falls back to the name as printed), so a
    /// pathological name cannot exhaust the stack.
    const MAX_DEPTH: usize = 128;

    /// The canonical form of `name`, or `name` itself behind a `?` (which no canonical form
    /// starts with) when it holds something this parser does not model, such as a trait object
    /// or a function pointer.
    pub(super) fn canonical(name: &str) -> String {
        let parsed = tokenize(name).and_then(|tokens| {
            let mut parser = Parser {
                tokens,
                position: 0,
            };
            let parsed = parser.parse_type(0)?;
            (parser.position == parser.tokens.len()).then_some(parsed)
        });
        match parsed {
            Some(parsed) => {
                let mut out = String::with_capacity(name.len());
                render(&parsed, &mut out);
                out
            }
            None => format!("?{name}"),
        }
    }

    /// Splits a type name into tokens; `None` for punctuation the parser does not model
    /// (`*` of raw pointers, `+` of trait-object bounds, `->` of function pointers, a lone `:`).
    fn tokenize(name: &str) -> Option<Vec<Token<'_>>> {
        let bytes = name.as_bytes();
        let mut tokens = Vec::new();
        let mut index = 0;
        while let Some(&byte) = bytes.get(index) {
            let token = match byte {
                b' ' | b'\t' | b'\n' | b'\r' => {
                    index += 1;
                    continue;
                }
                b':' if bytes.get(index + 1) == Some(&b':') => {
                    index += 2;
                    tokens.push(Token::PathSeparator);
                    continue;
                }
                b'<' => Token::Less,
                b'>' => Token::Greater,
                b',' => Token::Comma,
                b'(' => Token::OpenParen,
                b')' => Token::CloseParen,
                b'[' => Token::OpenBracket,
                b']' => Token::CloseBracket,
                b';' => Token::Semicolon,
                b'&' => Token::Ampersand,
                b':' | b'*' | b'+' => return None,
                b'-' if bytes.get(index + 1) == Some(&b'>') => return None,
                _ => {
                    // A word runs to the next delimiter. Every delimiter is ASCII, so the word
                    // ends on a character boundary even in a non-ASCII identifier.
                    let start = index;
                    while bytes.get(index).is_some_and(|&byte| !is_delimiter(byte)) {
                        index += 1;
                    }
                    tokens.push(Token::Word(&name[start..index]));
                    continue;
                }
            };
            index += 1;
            tokens.push(token);
        }
        Some(tokens)
    }

    /// The bytes that end a word: exactly those that the tokenizer's other arms take, so that
    /// a word always holds at least one byte and the tokenizer always advances.
    fn is_delimiter(byte: u8) -> bool {
        matches!(
            byte,
            b' ' | b'\t'
                | b'\n'
                | b'\r'
                | b':'
                | b'<'
                | b'>'
                | b','
                | b'('
                | b')'
                | b'['
                | b']'
                | b';'
                | b'&'
                | b'*'
                | b'+'
        )
    }

    /// A lifetime (`'_`, `'static`), as opposed to a char const argument (`'a'`).
    fn is_lifetime(word: &str) -> bool {
        word.starts_with('\'') && !(word.len() >= 3 && word.ends_with('\''))
    }

    struct Parser<'a> {
        tokens: Vec<Token<'a>>,
        position: usize,
    }

    impl<'a> Parser<'a> {
        fn peek(&self) -> Option<Token<'a>> {
            self.tokens.get(self.position).copied()
        }

        fn next(&mut self) -> Option<Token<'a>> {
            let token = self.peek()?;
            self.position += 1;
            Some(token)
        }

        /// Consumes the next token when it is `token`.
        fn eat(&mut self, token: Token<'a>) -> bool {
            let found = self.peek() == Some(token);
            if found {
                self.position += 1;
            }
            found
        }

        fn parse_type(&mut self, depth: usize) -> Option<Type<'a>> {
            if depth > MAX_DEPTH {
                return None;
            }
            match self.next()? {
                Token::Ampersand => {
                    // `&'a mut T` encodes as `T`: drop the lifetime, the `mut` and the reference.
                    if let Some(Token::Word(word)) = self.peek()
                        && is_lifetime(word)
                    {
                        self.position += 1;
                    }
                    self.eat(Token::Word("mut"));
                    self.parse_type(depth + 1)
                }
                Token::OpenParen => {
                    let mut elements = Vec::new();
                    while !self.eat(Token::CloseParen) {
                        elements.push(self.parse_type(depth + 1)?);
                        if !self.eat(Token::Comma) {
                            if !self.eat(Token::CloseParen) {
                                return None;
                            }
                            // `(T)` without a comma is a parenthesised type, not a tuple.
                            if elements.len() == 1 {
                                return elements.pop();
                            }
                            break;
                        }
                    }
                    Some(Type::Tuple(elements))
                }
                Token::OpenBracket => {
                    let element = Box::new(self.parse_type(depth + 1)?);
                    if self.eat(Token::CloseBracket) {
                        return Some(Type::Sequence(element));
                    }
                    if !self.eat(Token::Semicolon) {
                        return None;
                    }
                    let length = Box::new(self.parse_type(depth + 1)?);
                    self.eat(Token::CloseBracket)
                        .then_some(Type::Array(element, length))
                }
                Token::Word(word)
                    if is_lifetime(word)
                        || matches!(word, "dyn" | "impl" | "fn" | "unsafe" | "extern") =>
                {
                    None
                }
                Token::Word(word) => self.parse_path(word, depth),
                _ => None,
            }
        }

        /// A path whose first segment's name `first` has just been read.
        fn parse_path(&mut self, first: &'a str, depth: usize) -> Option<Type<'a>> {
            let mut segments = Vec::new();
            let mut name = first;
            loop {
                let mut arguments = Vec::new();
                if self.eat(Token::Less) {
                    while !self.eat(Token::Greater) {
                        match self.peek()? {
                            // Lifetimes do not reach the encoding.
                            Token::Word(word) if is_lifetime(word) => self.position += 1,
                            _ => arguments.push(self.parse_type(depth + 1)?),
                        }
                        if !self.eat(Token::Comma) {
                            if !self.eat(Token::Greater) {
                                return None;
                            }
                            break;
                        }
                    }
                }
                segments.push(Segment { name, arguments });
                if !self.eat(Token::PathSeparator) {
                    break;
                }
                match self.next()? {
                    Token::Word(word) if !is_lifetime(word) => name = word,
                    _ => return None,
                }
            }
            Some(normalise_path(segments))
        }
    }

    /// Rewrites a parsed path into its canonical form.
    fn normalise_path(mut segments: Vec<Segment<'_>>) -> Type<'_> {
        let first = segments.first().map_or("", |segment| segment.name);
        let only_last_has_arguments = segments
            .iter()
            .rev()
            .skip(1)
            .all(|segment| segment.arguments.is_empty());
        let standard = segments.len() > 1
            && matches!(first, "std" | "core" | "alloc")
            && only_last_has_arguments;
        let known_collection = segments.len() > 1
            && matches!(first, "hashbrown" | "indexmap")
            && only_last_has_arguments;
        if !(standard || known_collection) {
            if let [single] = segments.as_mut_slice()
                && single.arguments.is_empty()
            {
                // serde writes `usize` and `isize` as `u64` and `i64` on every platform.
                match single.name {
                    "usize" => single.name = "u64",
                    "isize" => single.name = "i64",
                    _ => {}
                }
            }
            return Type::Path(segments);
        }
        let Some(last) = segments.pop() else {
            return Type::Path(segments);
        };
        let mut arguments = last.arguments.into_iter();
        let (first_argument, second_argument) = (arguments.next(), arguments.next());
        match (standard, last.name, first_argument, second_argument) {
            (true, "String" | "PathBuf" | "Path", None, _) => Type::Path(vec![Segment {
                name: "str",
                arguments: Vec::new(),
            }]),
            // Further arguments of these are allocators or hashers, which do not reach the
            // encoding.
            (
                true,
                "Box" | "Arc" | "Rc" | "Cow" | "Cell" | "RefCell" | "Mutex" | "RwLock" | "Wrapping"
                | "Reverse",
                Some(inner),
                _,
            ) => inner,
            (true, "Vec" | "VecDeque" | "LinkedList" | "BinaryHeap", Some(element), _) => {
                Type::Sequence(Box::new(element))
            }
            (true, "HashMap" | "BTreeMap", Some(key), Some(value))
            | (false, "HashMap" | "IndexMap", Some(key), Some(value)) => {
                Type::Map(Box::new(key), Box::new(value))
            }
            (true, "HashSet" | "BTreeSet", Some(element), _)
            | (false, "HashSet" | "IndexSet", Some(element), _) => Type::Set(Box::new(element)),
            (true, name, first_argument, second_argument) => {
                // Any other standard type keeps only its own name (see the module docs).
                let arguments = first_argument
                    .into_iter()
                    .chain(second_argument)
                    .chain(arguments)
                    .collect();
                Type::Path(vec![Segment { name, arguments }])
            }
            (false, name, first_argument, second_argument) => {
                segments.push(Segment {
                    name,
                    arguments: first_argument
                        .into_iter()
                        .chain(second_argument)
                        .chain(arguments)
                        .collect(),
                });
                Type::Path(segments)
            }
        }
    }

    fn render(ty: &Type<'_>, out: &mut String) {
        match ty {
            Type::Path(segments) => {
                for (index, segment) in segments.iter().enumerate() {
                    if index > 0 {
                        out.push_str("::");
                    }
                    out.push_str(segment.name);
                    render_arguments(&segment.arguments, out);
                }
            }
            Type::Tuple(elements) => {
                out.push('(');
                for (index, element) in elements.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    render(element, out);
                }
                // A one-tuple keeps its comma, as Rust writes it.
                if elements.len() == 1 {
                    out.push(',');
                }
                out.push(')');
            }
            Type::Sequence(element) => {
                out.push('[');
                render(element, out);
                out.push(']');
            }
            Type::Array(element, length) => {
                out.push('[');
                render(element, out);
                out.push(';');
                render(length, out);
                out.push(']');
            }
            // Braces cannot start a Rust path, so these names cannot be a user's type.
            Type::Map(key, value) => {
                out.push_str("{map}");
                render_arguments([key.as_ref(), value.as_ref()], out);
            }
            Type::Set(element) => {
                out.push_str("{set}");
                render_arguments([element.as_ref()], out);
            }
        }
    }

    fn render_arguments<'t>(arguments: impl IntoIterator<Item = &'t Type<'t>>, out: &mut String) {
        let mut arguments = arguments.into_iter().peekable();
        if arguments.peek().is_none() {
            return;
        }
        out.push('<');
        for (index, argument) in arguments.enumerate() {
            if index > 0 {
                out.push(',');
            }
            render(argument, out);
        }
        out.push('>');
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::cell::RefCell;
    use std::collections::{
        BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, LinkedList, VecDeque,
    };
    use std::path::PathBuf;
    use std::rc::Rc;
    use std::sync::{Arc, Mutex};

    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Field {
        grid_size: u32,
        label: String,
        values: Vec<f64>,
    }

    fn sample() -> Field {
        Field {
            grid_size: 128,
            label: "cgl".into(),
            values: (0..2000).map(|i| (i % 7) as f64).collect(),
        }
    }

    /// A generic type of ours, to check that its arguments are canonicalised too.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Wrapper<T>(T);

    mod first {
        #[derive(serde::Serialize, serde::Deserialize)]
        pub(super) struct Config(pub(super) u32);
    }

    mod second {
        #[derive(serde::Serialize, serde::Deserialize)]
        pub(super) struct Config(pub(super) u32);
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|index| u8::from_str_radix(&text[index..index + 2], 16).unwrap())
            .collect()
    }

    /// Frames written by the previous release's codec (format version 1), byte for byte.
    const V1_GREETING: &str = "0100090000006b50fdd277bcff7c086772656574696e67";
    const V1_U32_SEVEN: &str = "01000100000048f56d1bf371804307";
    /// `(0..200).map(|i| (i % 7) as f64).collect::<Vec<f64>>()`, zstd-compressed.
    const V1_COMPRESSED_SEQUENCE: &str = "0101420600000d0b573a6a9c62db28b52ffd6042051d010060c80100\
        f03f004000081014180900f76df5013c00ee8063c0c98abb4060308c030c01";

    /// A frame of any version, assembled by hand with a correct checksum.
    fn frame_by_hand(
        version: u8,
        flags: u8,
        claimed: u32,
        fingerprint: u64,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut covered = Vec::new();
        if version == FORMAT_VERSION {
            covered.extend_from_slice(&fingerprint.to_le_bytes());
        }
        covered.extend_from_slice(payload);
        let mut frame = vec![version, flags];
        frame.extend_from_slice(&claimed.to_le_bytes());
        frame.extend_from_slice(&frame_checksum(version, flags, claimed, &covered).to_le_bytes());
        frame.extend_from_slice(&covered);
        frame
    }

    #[test]
    fn roundtrip_small_and_compressed() {
        let codec = Codec::default();
        let small = codec.encode(&("key", 7_u8)).unwrap();
        assert_eq!(small[0], FORMAT_VERSION);
        assert_eq!(small[1] & FLAG_ZSTD, 0, "small payloads are not compressed");
        assert_eq!(
            codec.decode::<(String, u8)>(&small).unwrap(),
            ("key".into(), 7)
        );

        let frame = codec.encode(&sample()).unwrap();
        assert_eq!(frame[1] & FLAG_ZSTD, FLAG_ZSTD);
        assert!(frame.len() < 2000);
        assert_eq!(codec.decode::<Field>(&frame).unwrap(), sample());
    }

    #[test]
    fn the_header_holds_the_fingerprint_after_the_checksum() {
        let codec = Codec::default();
        let frame = codec.encode(&7_u32).unwrap();
        assert_eq!(frame.len(), HEADER_LEN + 1);
        assert_eq!(
            read_u64(&frame[FINGERPRINT_RANGE]),
            codec.type_fingerprint::<u32>()
        );
        assert_eq!(&frame[HEADER_LEN..], &[7]);
    }

    #[test]
    fn incompressible_payloads_are_stored_raw() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let codec = Codec::default();
        let frame = codec.encode_raw(&noise).unwrap();
        assert_eq!(frame[1] & FLAG_ZSTD, 0);
        assert_eq!(frame.len(), HEADER_LEN + noise.len());
        assert_eq!(codec.decode_raw(&frame).unwrap().as_ref(), noise.as_slice());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let codec = Codec::default();
        for frame in [
            codec.encode(&sample()).unwrap().to_vec(),
            codec.encode(&"short").unwrap().to_vec(),
            hex(V1_GREETING),
            hex(V1_COMPRESSED_SEQUENCE),
        ] {
            for len in 0..frame.len() {
                let error = codec.decode::<Field>(&frame[..len]).unwrap_err();
                assert!(error.is_corruption(), "prefix of {len} bytes gave {error}");
            }
        }
        let error = codec
            .decode::<u32>(&hex(V1_U32_SEVEN)[..V1_HEADER_LEN - 1])
            .unwrap_err();
        assert!(matches!(
            error,
            DecodeError::Truncated {
                len: 13,
                header_len: V1_HEADER_LEN
            }
        ));
        let frame = codec.encode(&7_u32).unwrap();
        let error = codec.decode::<u32>(&frame[..HEADER_LEN - 1]).unwrap_err();
        assert!(matches!(
            error,
            DecodeError::Truncated {
                len: 21,
                header_len: HEADER_LEN
            }
        ));
        assert!(error.to_string().contains("22-byte header"), "{error}");
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let codec = Codec::default();
        for frame in [
            codec.encode(&sample()).unwrap().to_vec(),
            codec.encode(&(1_u64, "x")).unwrap().to_vec(),
            codec.encode_raw(b"raw").unwrap().to_vec(),
            hex(V1_GREETING),
            hex(V1_COMPRESSED_SEQUENCE),
        ] {
            for byte in 0..frame.len() {
                for bit in 0..8 {
                    let mut damaged = frame.clone();
                    damaged[byte] ^= 1 << bit;
                    let error = codec.decode_raw(&damaged).unwrap_err();
                    assert!(error.is_corruption(), "flip at {byte}.{bit}: {error}");
                    // A flip in the fingerprint is corruption too, never a type mismatch.
                    let error = codec.decode::<Field>(&damaged).unwrap_err();
                    assert!(error.is_corruption(), "flip at {byte}.{bit}: {error}");
                }
            }
        }
    }

    #[test]
    fn a_newer_format_version_is_refused_by_name() {
        let codec = Codec::default();
        for found in [0, 3, 255] {
            let mut frame = codec.encode(&1_u32).unwrap().to_vec();
            frame[0] = found;
            let error = codec.decode::<u32>(&frame).unwrap_err();
            assert!(
                matches!(
                    error,
                    DecodeError::UnsupportedVersion { found: f, supported: 2 } if f == found
                ),
                "{error}"
            );
            assert!(error.is_corruption());
            assert!(
                error
                    .to_string()
                    .contains(&format!("version {found} is not supported")),
                "{error}"
            );
        }
        // Unknown versions are refused by the version byte alone, even in a one-byte frame.
        assert!(matches!(
            codec.decode_raw(&[3]).unwrap_err(),
            DecodeError::UnsupportedVersion { found: 3, .. }
        ));
    }

    /// The previous release's frames still decode, compressed or not, without a type check.
    #[test]
    fn version_1_frames_still_decode() {
        let codec = Codec::default();
        assert_eq!(
            codec.decode::<String>(&hex(V1_GREETING)).unwrap(),
            "greeting"
        );
        assert_eq!(codec.decode::<u32>(&hex(V1_U32_SEVEN)).unwrap(), 7);
        let expected: Vec<f64> = (0..200).map(|i| (i % 7) as f64).collect();
        let compressed = hex(V1_COMPRESSED_SEQUENCE);
        assert_eq!(compressed[1], FLAG_ZSTD);
        assert_eq!(codec.decode::<Vec<f64>>(&compressed).unwrap(), expected);
        // A frame built here by the layout in the module docs decodes the same way.
        let payload = postcard::to_allocvec(&sample()).unwrap();
        let frame = frame_by_hand(1, 0, payload.len() as u32, 0, &payload);
        assert_eq!(codec.decode::<Field>(&frame).unwrap(), sample());
        assert_eq!(
            codec.decode_raw(&frame).unwrap().as_ref(),
            payload.as_slice()
        );
        // Version 1 records no type, so the schema version is not checked against it either.
        let bumped = Codec::default().with_schema_version(9);
        assert_eq!(bumped.decode::<u32>(&hex(V1_U32_SEVEN)).unwrap(), 7);
    }

    /// The two examples of the bug: postcard alone read these as wrong values.
    #[test]
    fn reading_as_another_type_is_wrong_type_never_a_wrong_value() {
        let codec = Codec::default();
        let frame = codec.encode(&"greeting").unwrap();
        let error = codec.decode::<Vec<u64>>(&frame).unwrap_err();
        let DecodeError::WrongType {
            stored,
            requested,
            requested_type,
            schema_version: 0,
        } = error
        else {
            panic!("expected WrongType, got {error}");
        };
        assert_eq!(stored, codec.type_fingerprint::<&str>());
        assert_eq!(requested, codec.type_fingerprint::<Vec<u64>>());
        assert_eq!(requested_type, "alloc::vec::Vec<u64>");
        assert!(!error.is_corruption());
        let message = error.to_string();
        assert!(
            message.contains("stored as another type") && message.contains("alloc::vec::Vec<u64>"),
            "{message}"
        );

        let frame = codec.encode(&7_u32).unwrap();
        let error = codec.decode::<i64>(&frame).unwrap_err();
        assert!(
            matches!(
                error,
                DecodeError::WrongType {
                    requested_type: "i64",
                    ..
                }
            ),
            "{error}"
        );
        assert!(!error.is_corruption());
    }

    #[test]
    fn a_type_mismatch_is_not_corruption() {
        let codec = Codec::default();
        let frame = codec.encode(&sample()).unwrap();
        let error = codec.decode::<u8>(&frame).unwrap_err();
        assert!(!error.is_corruption(), "{error}");
        let frame = codec.encode(&"text").unwrap();
        assert!(!codec.decode::<Field>(&frame).unwrap_err().is_corruption());
        // Types that share a name (in different modules) do not share a fingerprint.
        let frame = codec.encode(&first::Config(3)).unwrap();
        assert!(matches!(
            codec.decode::<second::Config>(&frame),
            Err(DecodeError::WrongType { .. })
        ));
        assert_eq!(codec.decode::<first::Config>(&frame).unwrap().0, 3);
    }

    /// Types that serde and postcard encode alike read each other's frames.
    #[test]
    fn compatible_types_decode() {
        let codec = Codec::default();
        let text = codec.encode(&"greeting").unwrap();
        assert_eq!(codec.decode::<String>(&text).unwrap(), "greeting");
        assert_eq!(&*codec.decode::<Box<str>>(&text).unwrap(), "greeting");
        assert_eq!(codec.decode::<Cow<'_, str>>(&text).unwrap(), "greeting");
        assert_eq!(
            codec.decode::<PathBuf>(&text).unwrap(),
            PathBuf::from("greeting")
        );
        let owned = codec.encode(&String::from("greeting")).unwrap();
        assert_eq!(owned, text, "&str and String write the same frame");

        let values = vec![1.5_f64, -2.0, 3.25];
        let slice = codec.encode(values.as_slice()).unwrap();
        let vector = codec.encode(&values).unwrap();
        assert_eq!(slice, vector);
        assert_eq!(codec.decode::<Vec<f64>>(&slice).unwrap(), values);
        assert_eq!(&*codec.decode::<Box<[f64]>>(&vector).unwrap(), &values[..]);
        assert_eq!(
            codec.decode::<VecDeque<f64>>(&vector).unwrap(),
            VecDeque::from(values.clone())
        );

        let words = codec.encode(&vec!["a", "b"]).unwrap();
        assert_eq!(codec.decode::<Vec<String>>(&words).unwrap(), ["a", "b"]);
        let maybe = codec.encode(&Some("a")).unwrap();
        assert_eq!(
            codec.decode::<Option<String>>(&maybe).unwrap().as_deref(),
            Some("a")
        );
        let map: HashMap<String, Vec<u32>> = HashMap::from([("k".to_owned(), vec![1, 2])]);
        let frame = codec.encode(&map).unwrap();
        assert_eq!(
            codec.decode::<BTreeMap<String, Vec<u32>>>(&frame).unwrap(),
            BTreeMap::from([("k".to_owned(), vec![1, 2])])
        );
        let frame = codec.encode(&Wrapper(("x", Box::new(5_u8)))).unwrap();
        assert_eq!(
            codec.decode::<Wrapper<(String, u8)>>(&frame).unwrap(),
            Wrapper(("x".to_owned(), 5))
        );
        let frame = codec.encode(&42_usize).unwrap();
        assert_eq!(codec.decode::<u64>(&frame).unwrap(), 42);
    }

    #[test]
    fn a_schema_version_mismatch_is_wrong_type() {
        let old = Codec::default();
        let new = Codec::default().with_schema_version(1);
        assert_eq!(new.schema_version(), 1);
        assert_ne!(
            old.type_fingerprint::<Field>(),
            new.type_fingerprint::<Field>()
        );
        let frame = old.encode(&sample()).unwrap();
        let error = new.decode::<Field>(&frame).unwrap_err();
        assert!(
            matches!(
                error,
                DecodeError::WrongType {
                    schema_version: 1,
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("schema version 1"), "{error}");
        assert!(!error.is_corruption());
        let frame = new.encode(&sample()).unwrap();
        assert_eq!(new.decode::<Field>(&frame).unwrap(), sample());
        assert!(old.decode::<Field>(&frame).is_err());
    }

    #[test]
    fn raw_frames_record_no_type() {
        let codec = Codec::default();
        let payload = postcard::to_allocvec(&7_u32).unwrap();
        let frame = codec.encode_raw(&payload).unwrap();
        assert_eq!(read_u64(&frame[FINGERPRINT_RANGE]), UNTYPED);
        assert_eq!(
            codec.decode_raw(&frame).unwrap().as_ref(),
            payload.as_slice()
        );
        assert!(matches!(
            codec.decode::<u32>(&frame),
            Err(DecodeError::WrongType { stored: 0, .. })
        ));
        // Typed frames can be read raw.
        let typed = codec.encode(&7_u32).unwrap();
        assert_eq!(
            codec.decode_raw(&typed).unwrap().as_ref(),
            payload.as_slice()
        );
    }

    /// A frame built by an attacker, checksum included, claiming 4 GiB.
    #[test]
    fn a_hostile_length_prefix_is_refused_before_allocation() {
        for version in [1, FORMAT_VERSION] {
            let frame = frame_by_hand(version, 0, u32::MAX, 1, b"tiny");
            let error = Codec::default().decode_raw(&frame).unwrap_err();
            assert!(
                matches!(
                    error,
                    DecodeError::TooLarge {
                        claimed: 4_294_967_295,
                        ..
                    }
                ),
                "{error}"
            );
        }
    }

    /// 64 MiB of zeros compress to a few kilobytes: a zstd bomb against a 1 MiB limit.
    #[test]
    fn a_zstd_bomb_is_bounded() {
        let zeros = vec![0_u8; 64 << 20];
        let bomb = zstd::bulk::compress(&zeros, 3).unwrap();
        assert!(bomb.len() < 64 << 10);
        let limit = 1 << 20;
        let codec = Codec::default().with_max_decoded_size(limit);
        // An honest header is refused by the size check.
        let honest = Codec::default().encode_raw(&zeros).unwrap();
        assert!(matches!(
            codec.decode_raw(&honest).unwrap_err(),
            DecodeError::TooLarge { .. }
        ));
        // A lying header (claims 1 MiB, holds 64 MiB) fails inside the bounded decompressor.
        for version in [1, FORMAT_VERSION] {
            let liar = frame_by_hand(version, FLAG_ZSTD, limit as u32, 0, &bomb);
            assert!(matches!(
                codec.decode_raw(&liar).unwrap_err(),
                DecodeError::Decompress { .. }
            ));
        }
    }

    #[test]
    fn encoding_refuses_what_it_would_not_decode() {
        let codec = Codec::default().with_max_decoded_size(100);
        let error = codec.encode(&vec![7_u8; 200]).unwrap_err();
        assert!(matches!(error, EncodeError::TooLarge { limit: 100, .. }));
    }

    #[test]
    fn compression_level_is_clamped() {
        assert_eq!(
            Codec::new()
                .with_compression_level(1000)
                .compression_level(),
            22
        );
    }

    /// Pairs of types whose fingerprints must be equal: they encode alike.
    #[test]
    fn types_that_encode_alike_share_a_fingerprint() {
        fn same<A: ?Sized, B: ?Sized>() {
            let codec = Codec::default();
            assert_eq!(
                codec.type_fingerprint::<A>(),
                codec.type_fingerprint::<B>(),
                "{} and {} should match",
                type_name::<A>(),
                type_name::<B>()
            );
        }
        same::<&str, String>();
        same::<&mut str, str>();
        same::<str, Box<str>>();
        same::<String, Cow<'static, str>>();
        same::<String, Arc<str>>();
        same::<String, Rc<str>>();
        same::<String, PathBuf>();
        same::<Vec<u8>, [u8]>();
        same::<Vec<f64>, &[f64]>();
        same::<Vec<u8>, Box<[u8]>>();
        same::<Vec<u8>, VecDeque<u8>>();
        same::<Vec<u8>, LinkedList<u8>>();
        same::<Vec<u8>, BinaryHeap<u8>>();
        same::<Vec<u8>, Cow<'static, [u8]>>();
        same::<Vec<u8>, Arc<[u8]>>();
        same::<u32, Box<u32>>();
        same::<u32, Arc<u32>>();
        same::<u32, Rc<u32>>();
        same::<u32, &&u32>();
        same::<u32, RefCell<u32>>();
        same::<u32, Mutex<u32>>();
        same::<u32, std::num::Wrapping<u32>>();
        same::<[u8; 4], Box<[u8; 4]>>();
        same::<HashMap<String, u32>, BTreeMap<&str, u32>>();
        same::<
            HashMap<String, u32>,
            HashMap<Box<str>, u32, std::hash::BuildHasherDefault<std::hash::DefaultHasher>>,
        >();
        same::<HashMap<String, u32>, hashbrown::HashMap<String, u32>>();
        same::<HashSet<u8>, BTreeSet<u8>>();
        same::<HashSet<String>, hashbrown::HashSet<&str>>();
        same::<Vec<&str>, Vec<String>>();
        same::<Option<&str>, Option<String>>();
        same::<(u8, &str), (u8, String)>();
        same::<Result<&str, u8>, Result<String, u8>>();
        same::<Vec<Vec<(i32, Option<Box<str>>)>>, &[Vec<(i32, Option<String>)>]>();
        same::<HashMap<String, Vec<String>>, BTreeMap<Arc<str>, Box<[&str]>>>();
        same::<[&str; 3], [String; 3]>();
        same::<Wrapper<&str>, Wrapper<String>>();
        same::<Wrapper<Vec<&str>>, &Wrapper<Box<[String]>>>();
        same::<usize, u64>();
        same::<isize, i64>();
        same::<Field, &Field>();
    }

    /// Pairs whose fingerprints must differ: reading one as the other would be a wrong value
    /// or a decoding accident.
    #[test]
    fn different_types_do_not_share_a_fingerprint() {
        fn different<A: ?Sized, B: ?Sized>() {
            let codec = Codec::default();
            assert_ne!(
                codec.type_fingerprint::<A>(),
                codec.type_fingerprint::<B>(),
                "{} and {} should differ",
                type_name::<A>(),
                type_name::<B>()
            );
        }
        different::<u32, i64>();
        different::<u32, u64>();
        different::<u8, bool>();
        different::<f32, f64>();
        different::<char, &str>();
        different::<&str, Vec<u64>>();
        different::<String, Vec<u8>>();
        different::<Vec<u8>, [u8; 4]>();
        different::<[u8; 3], [u8; 4]>();
        different::<Vec<u8>, HashSet<u8>>();
        different::<HashMap<u8, u8>, HashSet<(u8, u8)>>();
        different::<HashMap<u8, u8>, Vec<(u8, u8)>>();
        different::<Option<u8>, u8>();
        different::<Option<u8>, Result<u8, ()>>();
        different::<(u8,), u8>();
        different::<(), (u8,)>();
        different::<(u8, u16), (u16, u8)>();
        different::<Vec<String>, Vec<Vec<u8>>>();
        different::<Wrapper<u8>, Wrapper<u16>>();
        different::<Wrapper<u8>, u8>();
        different::<first::Config, second::Config>();
        different::<Field, Wrapper<Field>>();
        different::<std::time::Duration, std::time::SystemTime>();
    }

    /// What `type_name` prints on this toolchain, and the canonical form of each (shown with
    /// `--nocapture`; the assertions pin the forms the fingerprints are made of).
    #[test]
    fn canonical_forms_of_what_type_name_prints() {
        fn form<T: ?Sized>(expected: &str) {
            let printed = type_name::<T>();
            let canonical = type_names::canonical(printed);
            println!("{printed:<90} -> {canonical}");
            assert_eq!(canonical, expected, "canonical form of {printed}");
        }
        form::<&str>("str");
        form::<String>("str");
        form::<Cow<'static, str>>("str");
        form::<Box<str>>("str");
        form::<Vec<u8>>("[u8]");
        form::<&[f64]>("[f64]");
        form::<VecDeque<u8>>("[u8]");
        form::<[u8; 4]>("[u8;4]");
        form::<[[u8; 2]; 3]>("[[u8;2];3]");
        form::<HashMap<String, u32>>("{map}<str,u32>");
        form::<HashMap<String, u32, std::hash::BuildHasherDefault<std::hash::DefaultHasher>>>(
            "{map}<str,u32>",
        );
        form::<hashbrown::HashMap<String, u32>>("{map}<str,u32>");
        form::<BTreeMap<String, u32>>("{map}<str,u32>");
        form::<HashSet<u8>>("{set}<u8>");
        form::<BTreeSet<u8>>("{set}<u8>");
        form::<Option<&str>>("Option<str>");
        form::<Result<u8, String>>("Result<u8,str>");
        form::<(u8, &str)>("(u8,str)");
        form::<(u8,)>("(u8,)");
        form::<()>("()");
        form::<Mutex<u8>>("u8");
        form::<std::time::Duration>("Duration");
        form::<std::num::NonZeroU32>("NonZero<u32>");
        form::<Vec<Vec<(i32, Option<Box<str>>)>>>("[[(i32,Option<str>)]]");
        form::<Wrapper<&str>>("nfcs_cache_core::codec::tests::Wrapper<str>");
        form::<first::Config>("nfcs_cache_core::codec::tests::first::Config");
        form::<dyn std::fmt::Debug + Send>("?dyn core::fmt::Debug + core::marker::Send");
        form::<fn(u8) -> u16>("?fn(u8) -> u16");
    }

    /// The parser on names `type_name` may print but that are awkward to produce as types here.
    #[test]
    fn canonical_forms_of_awkward_names() {
        for (name, expected) in [
            ("&'_ str", "str"),
            ("&'a mut alloc::string::String", "str"),
            ("alloc::borrow::Cow<'_, [u8]>", "[u8]"),
            ("core::option::Option<&mut [u8]>", "Option<[u8]>"),
            ("main::E<'_>", "main::E"),
            ("main::S<u8, 3>", "main::S<u8,3>"),
            ("main::S<u8, usize::MAX>", "main::S<u8,usize::MAX>"),
            ("main::S<-1, true>", "main::S<-1,true>"),
            ("main::C<'x'>", "main::C<'x'>"),
            ("main::f::{{closure}}", "main::f::{{closure}}"),
            ("crate_à::Größe<u8>", "crate_à::Größe<u8>"),
            ("(u8, (u16, &str),)", "(u8,(u16,str))"),
            ("(u8)", "u8"),
            ("alloc::vec::Vec<u8, alloc::alloc::Global>", "[u8]"),
            ("alloc::boxed::Box<[u8; 4]>", "[u8;4]"),
            (
                "indexmap::map::IndexMap<u8, u8, std::hash::random::RandomState>",
                "{map}<u8,u8>",
            ),
            ("indexmap::set::IndexSet<u8>", "{set}<u8>"),
            ("other::HashMap<u8, u8>", "other::HashMap<u8,u8>"),
            ("other::Vec<u8>", "other::Vec<u8>"),
            ("std::collections::hash::map::HashMap<u8>", "HashMap<u8>"),
            ("std::collections::hash::map::HashMap", "HashMap"),
            ("alloc::boxed::Box", "Box"),
        ] {
            assert_eq!(
                type_names::canonical(name),
                expected,
                "canonical form of {name:?}"
            );
        }
        // What the parser does not model is hashed as printed, behind a `?`.
        for name in [
            "*const u8",
            "alloc::vec::Vec<fn()>",
            "alloc::vec::Vec<u8",
            "alloc::vec::Vec<u8>>",
            "a::b<c d>",
            "a:b",
            "[u8; 4",
            "(u8",
            "&",
            "",
            "<T as Trait>::Assoc",
            "'_",
            "alloc::vec::Vec<'_>::",
        ] {
            assert_eq!(
                type_names::canonical(name),
                format!("?{name}"),
                "fallback of {name:?}"
            );
        }
        // Deep nesting falls back rather than recursing without bound.
        let deep = format!(
            "{}u8{}",
            "core::option::Option<".repeat(10_000),
            ">".repeat(10_000)
        );
        assert!(type_names::canonical(&deep).starts_with('?'));
    }

    #[test]
    fn the_memo_gives_what_the_computation_gives() {
        // More type names than memo slots, in several schema versions, interleaved, so that
        // slots are shared and overwritten.
        let names: Vec<&'static str> = vec![
            type_name::<u8>(),
            type_name::<u16>(),
            type_name::<u32>(),
            type_name::<u64>(),
            type_name::<i8>(),
            type_name::<i16>(),
            type_name::<i32>(),
            type_name::<i64>(),
            type_name::<String>(),
            type_name::<Vec<u8>>(),
            type_name::<Field>(),
            type_name::<Option<&str>>(),
            type_name::<HashMap<String, u32>>(),
            type_name::<(u8, u16, u32)>(),
        ];
        for round in 0..3 {
            for schema_version in 0..8 {
                for name in &names {
                    assert_eq!(
                        memoised_fingerprint(name, schema_version),
                        fingerprint_of_name(name, schema_version),
                        "{name} at schema version {schema_version}, round {round}"
                    );
                }
            }
        }
        // Another thread has its own memo and computes the same fingerprints.
        let here = Codec::default().type_fingerprint::<Field>();
        let there = std::thread::spawn(|| Codec::default().type_fingerprint::<Field>())
            .join()
            .unwrap();
        assert_eq!(here, there);
        assert_ne!(here, UNTYPED);
    }

    /// The fingerprints are part of the stored format: a change to the canonical form or the
    /// hash changes what every stored frame says, and needs a new format version.
    #[test]
    fn fingerprints_are_stable() {
        let codec = Codec::default();
        let frame = codec.encode(&"greeting").unwrap();
        assert_eq!(
            frame.as_ref(),
            hex(V2_GREETING).as_slice(),
            "the version-2 frame of \"greeting\" changed: {frame:02x?}"
        );
        assert_eq!(
            codec.decode::<String>(&hex(V2_GREETING)).unwrap(),
            "greeting"
        );
    }

    /// `codec.encode(&"greeting")` at format version 2, schema version 0.
    const V2_GREETING: &str = "020009000000661ce6f674df48cdf83a24dda4f89c3e086772656574696e67";

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            version in 0_u8..4,
            bytes in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            let codec = Codec::default();
            let mut frame = bytes;
            if let Some(first) = frame.first_mut() {
                *first = version;
            }
            let _ = codec.decode::<Field>(&frame);
            let _ = codec.decode_raw(&frame);
        }

        #[test]
        fn raw_roundtrip(payload in prop::collection::vec(any::<u8>(), 0..3000), threshold in 0_usize..2000) {
            let codec = Codec::default().with_compression_threshold(threshold);
            let frame = codec.encode_raw(&payload).unwrap();
            let decoded = codec.decode_raw(&frame).unwrap();
            prop_assert_eq!(decoded.as_ref(), payload.as_slice());
        }

        /// Any string made of type-name pieces gives a canonical form without panicking, and
        /// parsing is deterministic.
        #[test]
        fn canonical_never_panics(
            pieces in prop::collection::vec(
                prop::sample::select(vec![
                    "a", "std", "alloc", "Vec", "Box", "HashMap", "str", "::", "<", ">", ",",
                    "(", ")", "[", "]", ";", "&", "'_", "mut", " ", "3", "*", "+", "->", ":",
                    "é", "{{closure}}",
                ]),
                0..40,
            ),
        ) {
            let name: String = pieces.concat();
            prop_assert_eq!(type_names::canonical(&name), type_names::canonical(&name));
        }
    }
}
