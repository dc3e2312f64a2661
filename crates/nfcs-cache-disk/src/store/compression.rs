//! zstd with one reusable context per thread (creating one per value costs more than
//! compressing a small value).

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
