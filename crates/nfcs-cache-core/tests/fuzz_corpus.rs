//! Seeds for the `codec_decode` fuzz target (`fuzz/`, `cargo xtask fuzz`): frames written by
//! the codec (small and zstd-compressed, typed and raw) and the previous release's version-1
//! frames of the codec's unit tests, into `fuzz/corpus/codec_decode/`. Not a test of its own;
//! run it when the frame format changes:
//!
//! ```text
//! cargo test -p nfcs-cache-core --test integration -- --ignored write_the_codec_fuzz_corpus
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use nfcs_cache_core::Codec;
use serde::Serialize;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/codec_decode")
}

fn seed(name: &str, frame: &[u8]) {
    std::fs::write(corpus().join(name), frame).unwrap();
}

fn typed<T: Serialize + ?Sized>(name: &str, value: &T) {
    seed(name, &Codec::new().encode(value).unwrap());
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(&text[index..index + 2], 16).unwrap())
        .collect()
}

/// The shape of the fuzz target's own struct (the target rewrites the fingerprint to its
/// type's, so the name does not matter, only the payload).
#[derive(Serialize)]
struct Solved {
    grid: u32,
    name: String,
    status: Status,
    energies: Vec<i64>,
    tags: BTreeMap<String, Vec<u8>>,
    parent: Option<u64>,
}

#[derive(Serialize)]
#[allow(dead_code)]
enum Status {
    Converged { steps: u64 },
    BlewUp(String),
    Pending,
}

#[test]
#[ignore = "writes fuzz/corpus/codec_decode; run by hand when the frame format changes"]
fn write_the_codec_fuzz_corpus() {
    std::fs::create_dir_all(corpus()).unwrap();
    typed("string", "greeting");
    typed("bytes", &b"\x00\x01\x02 raw bytes".to_vec());
    typed("u64s", &vec![0_u64, 1, 127, 128, 16_383, 16_384, u64::MAX]);
    typed("strings", &vec!["policy_read", "", "k\u{e9}y"]);
    typed(
        "map",
        &HashMap::from([("hits".to_owned(), 10_u64), ("misses".to_owned(), 2)]),
    );
    typed("tuple", &(7_u32, "cgl".to_owned(), true, Some(-3_i16)));
    typed(
        "struct",
        &Solved {
            grid: 128,
            name: "cgl_128".to_owned(),
            status: Status::Converged { steps: 4000 },
            energies: vec![-1, 0, 1 << 40],
            tags: BTreeMap::from([("seed".to_owned(), vec![1, 2, 3])]),
            parent: Some(9),
        },
    );
    // Above the 1 KiB threshold and compressible: zstd frames.
    typed(
        "compressed-string",
        &"the coherence of the field stays above the threshold; ".repeat(40),
    );
    typed("compressed-u64s", &vec![3_u64; 2_000]);
    typed(
        "compressed-strings",
        &(0..300)
            .map(|index| format!("key_{}", index % 10))
            .collect::<Vec<_>>(),
    );
    seed(
        "raw",
        &Codec::new()
            .encode_raw(b"bring your own serialisation")
            .unwrap(),
    );
    seed(
        "raw-compressed",
        &Codec::new().encode_raw(&[b'z'; 4096]).unwrap(),
    );
    // The previous release's frames, byte for byte (the codec's unit tests).
    seed(
        "v1-greeting",
        &hex("0100090000006b50fdd277bcff7c086772656574696e67"),
    );
    seed("v1-u32-seven", &hex("01000100000048f56d1bf371804307"));
    seed(
        "v1-compressed-f64s",
        &hex("0101420600000d0b573a6a9c62db28b52ffd6042051d010060c80100\
             f03f004000081014180900f76df5013c00ee8063c0c98abb4060308c030c01"),
    );
}
