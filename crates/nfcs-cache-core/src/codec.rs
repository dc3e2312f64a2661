//! The framed value codec: serde, then postcard, then zstd above a size threshold, in a small
//! checksummed envelope.
//!
//! Tiers store bytes; the typed API above them (`get::<T>`, `set(&T)`) encodes once with this
//! codec and every tier stores the same frame.
//!
//! # Frame format, version 1
//!
//! | offset | size | field                                                        |
//! |--------|------|--------------------------------------------------------------|
//! | 0      | 1    | format version, `1`                                          |
//! | 1      | 1    | flags: bit 0 set = payload compressed with zstd; others zero |
//! | 2      | 4    | payload length before compression, `u32` little endian       |
//! | 6      | 8    | checksum, `u64` little endian (see below)                    |
//! | 14     | ..   | payload as stored (compressed or not)                        |
//!
//! The checksum is XXH3-64 of the stored payload, seeded with the version, flags and length,
//! so a flipped bit anywhere in the frame is detected before anything is decompressed.
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

use std::borrow::Cow;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::BoxError;

/// The frame format version this codec writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Bytes in a frame before the payload.
pub const HEADER_LEN: usize = 14;

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
    /// Fewer bytes than a frame header.
    #[error("the frame is {len} bytes long, shorter than the {HEADER_LEN}-byte header")]
    Truncated {
        /// The frame's length.
        len: usize,
    },
    /// Written by a format version this codec does not know (a newer release, or garbage).
    #[error("frame format version {found} is not supported (this codec reads version {supported})")]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
        /// The version this codec reads.
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
    /// The frame is intact but its payload is not a value of the requested type: it was stored
    /// as another type, or by an incompatible version of the type.
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
    /// is the caller's bug and is reported.
    pub fn is_corruption(&self) -> bool {
        !matches!(self, DecodeError::Deserialize { .. })
    }
}

/// Encodes values into frames and decodes them back, within limits.
///
/// ```
/// use nfcs_cache_core::Codec;
///
/// let codec = Codec::default();
/// let frame = codec.encode(&vec![1.5_f64; 1000])?;
/// assert!(frame.len() < 1000 * 8, "repetitive data is compressed");
/// let back: Vec<f64> = codec.decode(&frame)?;
/// assert_eq!(back, vec![1.5; 1000]);
///
/// // A damaged frame is an error, never a wrong value.
/// let mut damaged = frame.to_vec();
/// damaged[20] ^= 0x40;
/// assert!(codec.decode::<Vec<f64>>(&damaged).unwrap_err().is_corruption());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    compression_threshold: usize,
    compression_level: i32,
    max_decoded_size: usize,
}

impl Default for Codec {
    fn default() -> Codec {
        Codec {
            compression_threshold: Codec::DEFAULT_COMPRESSION_THRESHOLD,
            compression_level: Codec::DEFAULT_COMPRESSION_LEVEL,
            max_decoded_size: Codec::DEFAULT_MAX_DECODED_SIZE,
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

    /// Serialises `value` with postcard and frames it.
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
        self.finish_frame(buffer)
    }

    /// Frames `payload` as it is (compressing it when that pays), for callers that bring their
    /// own serialisation.
    ///
    /// # Errors
    /// As [`encode`](Codec::encode), minus serialisation.
    pub fn encode_raw(&self, payload: &[u8]) -> Result<Bytes, EncodeError> {
        let mut buffer = Vec::with_capacity(HEADER_LEN + payload.len());
        buffer.resize(HEADER_LEN, 0);
        buffer.extend_from_slice(payload);
        self.finish_frame(buffer)
    }

    /// Takes a buffer of `HEADER_LEN` placeholder bytes followed by the payload, compresses the
    /// payload when that pays, and fills in the header.
    fn finish_frame(&self, mut buffer: Vec<u8>) -> Result<Bytes, EncodeError> {
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
        let checksum = frame_checksum(FORMAT_VERSION, flags, claimed, &buffer[HEADER_LEN..]);
        buffer[0] = FORMAT_VERSION;
        buffer[1] = flags;
        buffer[2..6].copy_from_slice(&claimed.to_le_bytes());
        buffer[6..14].copy_from_slice(&checksum.to_le_bytes());
        Ok(Bytes::from(buffer))
    }

    /// Checks a frame and returns its payload, decompressed.
    ///
    /// # Errors
    /// [`DecodeError`] for a truncated, corrupt, oversized or unknown-version frame.
    pub fn decode_raw<'a>(&self, frame: &'a [u8]) -> Result<Cow<'a, [u8]>, DecodeError> {
        if frame.len() < HEADER_LEN {
            return Err(DecodeError::Truncated { len: frame.len() });
        }
        let version = frame[0];
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let flags = frame[1];
        if flags & !KNOWN_FLAGS != 0 {
            return Err(DecodeError::UnknownFlags { flags });
        }
        let claimed = u32::from_le_bytes([frame[2], frame[3], frame[4], frame[5]]);
        let stored = u64::from_le_bytes([
            frame[6], frame[7], frame[8], frame[9], frame[10], frame[11], frame[12], frame[13],
        ]);
        let payload = &frame[HEADER_LEN..];
        let computed = frame_checksum(version, flags, claimed, payload);
        if computed != stored {
            return Err(DecodeError::ChecksumMismatch { stored, computed });
        }
        let claimed = claimed as usize;
        if claimed > self.max_decoded_size {
            return Err(DecodeError::TooLarge {
                claimed: claimed as u64,
                limit: self.max_decoded_size as u64,
            });
        }
        if flags & FLAG_ZSTD == 0 {
            if payload.len() != claimed {
                return Err(DecodeError::LengthMismatch {
                    claimed: claimed as u64,
                    actual: payload.len() as u64,
                });
            }
            return Ok(Cow::Borrowed(payload));
        }
        // The output buffer is exactly `claimed` bytes; zstd fails rather than grow it.
        let decompressed = zstd::bulk::decompress(payload, claimed)
            .map_err(|source| DecodeError::Decompress { source })?;
        if decompressed.len() != claimed {
            return Err(DecodeError::LengthMismatch {
                claimed: claimed as u64,
                actual: decompressed.len() as u64,
            });
        }
        Ok(Cow::Owned(decompressed))
    }

    /// Checks a frame and deserialises its payload as a `T`.
    ///
    /// # Errors
    /// [`DecodeError`]; [`DecodeError::is_corruption`] tells a damaged frame from a payload of
    /// another type.
    pub fn decode<T: DeserializeOwned>(&self, frame: &[u8]) -> Result<T, DecodeError> {
        let payload = self.decode_raw(frame)?;
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

fn frame_checksum(version: u8, flags: u8, claimed: u32, payload: &[u8]) -> u64 {
    let seed = (u64::from(version) << 40) | (u64::from(flags) << 32) | u64::from(claimed);
    xxhash_rust::xxh3::xxh3_64_with_seed(payload, seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

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

    #[test]
    fn roundtrip_small_and_compressed() {
        let codec = Codec::default();
        let small = codec.encode(&("key", 7_u8)).unwrap();
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
            codec.encode(&sample()).unwrap(),
            codec.encode(&"short").unwrap(),
        ] {
            for len in 0..frame.len() {
                let error = codec.decode::<Field>(&frame[..len]).unwrap_err();
                assert!(error.is_corruption(), "prefix of {len} bytes gave {error}");
            }
        }
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let codec = Codec::default();
        for frame in [
            codec.encode(&sample()).unwrap(),
            codec.encode(&(1_u64, "x")).unwrap(),
        ] {
            for byte in 0..frame.len() {
                for bit in 0..8 {
                    let mut damaged = frame.to_vec();
                    damaged[byte] ^= 1 << bit;
                    let error = codec.decode_raw(&damaged).unwrap_err();
                    assert!(error.is_corruption(), "flip at {byte}.{bit}: {error}");
                }
            }
        }
    }

    #[test]
    fn a_newer_format_version_is_refused_by_name() {
        let codec = Codec::default();
        let mut frame = codec.encode(&1_u32).unwrap().to_vec();
        frame[0] = 2;
        let error = codec.decode::<u32>(&frame).unwrap_err();
        assert!(matches!(
            error,
            DecodeError::UnsupportedVersion {
                found: 2,
                supported: 1
            }
        ));
        assert!(error.to_string().contains("version 2"));
    }

    /// A frame built by an attacker, checksum included, claiming 4 GiB.
    #[test]
    fn a_hostile_length_prefix_is_refused_before_allocation() {
        let payload = b"tiny";
        let claimed = u32::MAX;
        let mut frame = vec![FORMAT_VERSION, 0];
        frame.extend_from_slice(&claimed.to_le_bytes());
        frame.extend_from_slice(&frame_checksum(FORMAT_VERSION, 0, claimed, payload).to_le_bytes());
        frame.extend_from_slice(payload);
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
        let claimed = limit as u32;
        let mut liar = vec![FORMAT_VERSION, FLAG_ZSTD];
        liar.extend_from_slice(&claimed.to_le_bytes());
        liar.extend_from_slice(
            &frame_checksum(FORMAT_VERSION, FLAG_ZSTD, claimed, &bomb).to_le_bytes(),
        );
        liar.extend_from_slice(&bomb);
        assert!(matches!(
            codec.decode_raw(&liar).unwrap_err(),
            DecodeError::Decompress { .. }
        ));
    }

    #[test]
    fn a_type_mismatch_is_not_corruption() {
        let codec = Codec::default();
        let frame = codec.encode(&sample()).unwrap();
        let error = codec.decode::<u8>(&frame).unwrap_err();
        assert!(!error.is_corruption(), "{error}");
        let frame = codec.encode(&"text").unwrap();
        assert!(!codec.decode::<Field>(&frame).unwrap_err().is_corruption());
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

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let codec = Codec::default();
            let _ = codec.decode::<Field>(&bytes);
            let _ = codec.decode_raw(&bytes);
        }

        #[test]
        fn raw_roundtrip(payload in prop::collection::vec(any::<u8>(), 0..3000), threshold in 0_usize..2000) {
            let codec = Codec::default().with_compression_threshold(threshold);
            let frame = codec.encode_raw(&payload).unwrap();
            let decoded = codec.decode_raw(&frame).unwrap();
            prop_assert_eq!(decoded.as_ref(), payload.as_slice());
        }
    }
}
