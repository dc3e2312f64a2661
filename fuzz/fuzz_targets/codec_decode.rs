//! The codec's decoder (`nfcs_cache_core::Codec::decode` and `decode_raw`) on arbitrary bytes.
//!
//! Each input is decoded as it is (almost always refused at the header or the checksum), then,
//! when it looks like a frame of version 1 or 2, repaired: the type fingerprint set to the type
//! about to be read and the checksum recomputed (the layout of the codec's module docs), so
//! that the fuzzer's mutations of the flags, the claimed length, zstd data and postcard payload
//! reach the decompressor and the deserialiser. Checked:
//!
//! - nothing panics;
//! - no allocation made while decoding is larger than the codec's `max_decoded_size` (1 MiB
//!   for repaired frames) plus the input plus serde's fixed pre-allocation cap, and the bytes
//!   live at once stay within a fixed multiple of that bound: a claimed length or a zstd bomb
//!   costs at most the limit;
//! - a value that decodes re-encodes and decodes to itself.

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use nfcs_cache_core::Codec;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Counts the bytes the process has allocated and, while `TRACKING`, the largest single
/// allocation and the most bytes live at once.
struct Counting;

static TRACKING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK_LIVE: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

impl Counting {
    fn grew(size: usize) {
        let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
        if TRACKING.load(Ordering::Relaxed) {
            PEAK_LIVE.fetch_max(live, Ordering::Relaxed);
            LARGEST.fetch_max(size, Ordering::Relaxed);
        }
    }
}

// SAFETY: every call is forwarded to `System` with the same layout and pointer; the counters
// are plain atomics and allocate nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Counting::grew(layout.size());
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Counting::grew(layout.size());
        // SAFETY: forwarded as received.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        Counting::grew(new_size);
        // SAFETY: forwarded as received.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The decoding limit of the repaired frames: small, so that a frame claiming it costs little
/// and the bound is easy to check.
const LIMIT: usize = 1 << 20;

/// A type of our own (the typed API's usual case: a struct with an enum and a map). Not
/// recursive: postcard has no depth limit, so a recursive type read from a hostile frame can
/// exhaust the stack whatever the codec does (see the fuzz crate's README).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Solved {
    grid: u32,
    name: String,
    status: Status,
    energies: Vec<i64>,
    tags: BTreeMap<String, Vec<u8>>,
    parent: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Status {
    Converged { steps: u64 },
    BlewUp(String),
    Pending,
}

/// Decodes `frame` as a `T`, within the allocation bound; re-encodes what decodes.
fn decode_as<T>(codec: &Codec, frame: &[u8])
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    let decoded = bounded(codec, frame, || codec.decode::<T>(frame));
    if let Ok(value) = decoded {
        let again = codec.encode(&value).expect("a decoded value encodes again");
        let back: T = codec.decode(&again).expect("its own frame decodes");
        assert_eq!(back, value, "a decoded value survives re-encoding");
    } else if let Err(error) = decoded {
        // The error is typed and printable.
        let _ = (error.to_string(), error.is_corruption());
    }
}

/// Runs `decode`, checking the largest allocation and the peak of live bytes it causes.
fn bounded<R>(codec: &Codec, frame: &[u8], decode: impl FnOnce() -> R) -> R {
    LARGEST.store(0, Ordering::Relaxed);
    let before = LIVE.load(Ordering::Relaxed);
    PEAK_LIVE.store(before, Ordering::Relaxed);
    TRACKING.store(true, Ordering::Relaxed);
    let result = decode();
    TRACKING.store(false, Ordering::Relaxed);
    let largest = LARGEST.load(Ordering::Relaxed);
    let grown = PEAK_LIVE.load(Ordering::Relaxed).saturating_sub(before);
    // The payload buffer (at most the limit), what the payload decodes into, and slack. serde
    // pre-allocates a collection for at most 1 MiB of elements whatever length the payload
    // claims (`size_hint::cautious`), which hashbrown rounds up to 2 MiB of buckets plus
    // control bytes (2,162,704 bytes for `HashMap<String, u64>`: the first finding of this
    // target, serde's cap rather than a defect); a byte of payload becomes at most a few
    // dozen bytes of `Vec<String>` or map.
    let bound = codec.max_decoded_size().min(LIMIT.max(frame.len())) + frame.len();
    assert!(
        largest <= bound + (3 << 20),
        "one allocation of {largest} bytes decoding a {}-byte frame (limit {})",
        frame.len(),
        codec.max_decoded_size()
    );
    assert!(
        grown <= 64 * bound + (4 << 20),
        "{grown} bytes live at once decoding a {}-byte frame (limit {})",
        frame.len(),
        codec.max_decoded_size()
    );
    result
}

/// Every type the target reads frames as.
fn decode_all(codec: &Codec, frame: &[u8]) {
    let raw = bounded(codec, frame, || {
        codec.decode_raw(frame).map(|raw| raw.len())
    });
    if let Err(error) = raw {
        let _ = error.to_string();
    }
    decode_as::<String>(codec, frame);
    decode_as::<Vec<u8>>(codec, frame);
    decode_as::<Vec<u64>>(codec, frame);
    decode_as::<Vec<String>>(codec, frame);
    decode_as::<HashMap<String, u64>>(codec, frame);
    decode_as::<(u32, String, bool, Option<i16>)>(codec, frame);
    decode_as::<Solved>(codec, frame);
}

/// The checksum of a frame (the codec's module docs: XXH3-64 of everything after it, seeded
/// with the version, flags and claimed length).
fn checksum(frame: &[u8]) -> u64 {
    let claimed = u32::from_le_bytes([frame[2], frame[3], frame[4], frame[5]]);
    let seed = (u64::from(frame[0]) << 40) | (u64::from(frame[1]) << 32) | u64::from(claimed);
    xxhash_rust::xxh3::xxh3_64_with_seed(&frame[14..], seed)
}

fn repair(frame: &mut [u8]) {
    let sum = checksum(frame);
    frame[6..14].copy_from_slice(&sum.to_le_bytes());
}

/// A repaired copy of a version-2 `frame` with `T`'s fingerprint, decoded as a `T`.
fn repaired_as<T>(codec: &Codec, frame: &[u8])
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    let mut frame = frame.to_vec();
    frame[14..22].copy_from_slice(&codec.type_fingerprint::<T>().to_le_bytes());
    repair(&mut frame);
    decode_as::<T>(codec, &frame);
}

fuzz_target!(|data: &[u8]| {
    // As it is, with the default codec (256 MiB limit: nothing unchecked gets that far).
    decode_all(&Codec::new(), data);

    let small = Codec::new().with_max_decoded_size(LIMIT);
    match data.first() {
        Some(1) if data.len() >= 14 => {
            // Version 1: no fingerprint, only the checksum.
            let mut frame = data.to_vec();
            repair(&mut frame);
            decode_all(&small, &frame);
        }
        Some(2) if data.len() >= 22 => {
            let mut frame = data.to_vec();
            repair(&mut frame);
            let raw = bounded(&small, &frame, || {
                small.decode_raw(&frame).map(|raw| raw.len())
            });
            let _ = raw.map_err(|error| error.to_string());
            repaired_as::<String>(&small, data);
            repaired_as::<Vec<u8>>(&small, data);
            repaired_as::<Vec<u64>>(&small, data);
            repaired_as::<Vec<String>>(&small, data);
            repaired_as::<HashMap<String, u64>>(&small, data);
            repaired_as::<(u32, String, bool, Option<i16>)>(&small, data);
            repaired_as::<Solved>(&small, data);
        }
        _ => {}
    }
});
