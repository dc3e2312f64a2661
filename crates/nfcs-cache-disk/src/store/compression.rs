//! zstd with one reusable context per thread (creating one per value costs more than
//! compressing a small value), and LZ4 blocks (no context to keep).

use std::cell::RefCell;

use nfcs_cache_core::Codec;

/// The largest value the tier stores or decompresses.
pub(super) const MAX_RAW_LEN: usize = Codec::DEFAULT_MAX_DECODED_SIZE;

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Compresses with this thread's reusable zstd context.
pub(super) fn compress(level: i32, data: &[u8]) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = match &mut *slot {
            Some((current, compressor)) if *current == level => compressor,
            other => {
                let (_, compressor) = other.insert((level, zstd::bulk::Compressor::new(level)?));
                compressor
            }
        };
        compressor.compress(data)
    })
}

/// Decompresses into a buffer of exactly `raw_len` bytes with this thread's zstd context.
pub(super) fn decompress(data: &[u8], raw_len: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let decompressor = match &mut *slot {
            Some(decompressor) => decompressor,
            other => other.insert(zstd::bulk::Decompressor::new()?),
        };
        let raw = decompressor.decompress(data, raw_len)?;
        if raw.len() == raw_len {
            Ok(raw)
        } else {
            Err(std::io::Error::other(
                "decompressed length differs from the record's",
            ))
        }
    })
}

/// Compresses `data` into one LZ4 block (no size prefix: the record holds the raw length).
pub(super) fn lz4_compress(data: &[u8]) -> Vec<u8> {
    lz4_flex::block::compress(data)
}

/// Decodes an LZ4 block that must give exactly `raw_len` bytes; `None` for anything else
/// (the safe decoder refuses a malformed block with an error, never a panic or an overrun).
pub(super) fn lz4_decompress(data: &[u8], raw_len: usize) -> Option<Vec<u8>> {
    let mut raw = vec![0_u8; raw_len];
    match lz4_flex::block::decompress_into(data, &mut raw) {
        Ok(written) if written == raw_len => Some(raw),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lz4_round_trips_and_refuses_what_does_not_decode_to_the_length() {
        let text = b"converged energy of the grid step ".repeat(120);
        let packed = lz4_compress(&text);
        assert!(packed.len() * 2 < text.len(), "{} bytes", packed.len());
        assert_eq!(
            lz4_decompress(&packed, text.len()).as_deref(),
            Some(&text[..])
        );
        assert_eq!(lz4_decompress(&packed, text.len() - 1), None);
        assert_eq!(lz4_decompress(&packed, text.len() + 1), None);
        assert_eq!(
            lz4_decompress(&packed[..packed.len() / 2], text.len()),
            None
        );
        // Whatever the bytes, the safe decoder answers without panicking.
        for seed in 0..64_u8 {
            let garbage: Vec<u8> = (0..200_u16)
                .map(|index| (index as u8).wrapping_mul(31).wrapping_add(seed))
                .collect();
            let _ = lz4_decompress(&garbage, 4096);
        }
    }
}
