//! SIGKILL at random moments, compaction included: every key holds one of its own values (at
//! least the newest acknowledged one) or nothing, and no acknowledged deletion is undone.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nfcs_cache_disk::{DiskCache, DiskConfig};
use rand::{RngExt, SeedableRng};

const KEYS: u64 = 200;
const ROUNDS: u64 = 60;

fn config() -> DiskConfig {
    // 16 segments of 256 KiB against ~2 MB of live values: eviction and reinsertion happen.
    DiskConfig::new(4 << 20)
}

/// The value version `version` of key `key` holds: its own name and version, then bytes that
/// follow from both, between 16 bytes and 20 KB.
fn value_of(key: u64, version: u64) -> Vec<u8> {
    let mut state = (key << 32 ^ version).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let len = 16 + (next() % 20_000) as usize;
    let mut value = format!("{key}:{version}:").into_bytes();
    // Half the values compress (runs), half do not.
    let runs = version.is_multiple_of(2);
    while value.len() < len {
        let word = next();
        if runs {
            value.extend(std::iter::repeat_n(b'a' + (word % 26) as u8, 8));
        } else {
            value.extend_from_slice(&word.to_le_bytes());
        }
    }
    value.truncate(len);
    value
}

/// Parses a value and checks it is exactly what `value_of` gives for its key and version.
fn version_in(key: u64, value: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(&value[..value.len().min(40)]);
    let mut parts = text.splitn(3, ':');
    let (Some(found_key), Some(version)) = (parts.next(), parts.next()) else {
        panic!("key {key}: unparsable value");
    };
    assert_eq!(
        found_key,
        key.to_string(),
        "key {key} holds another key's value"
    );
    let version: u64 = version.parse().unwrap();
    assert!(
        value == value_of(key, version),
        "key {key}: damaged value of version {version}"
    );
    version
}

/// The child: writes, overwrites and deletes until killed, printing each acknowledged
/// operation. Runs only when the crash test starts it (with `NFCS_DISK_CRASH_DIR` set); on its
/// own it returns at once.
#[test]
fn crash_writer_child() {
    let Ok(directory) = std::env::var("NFCS_DISK_CRASH_DIR") else {
        return;
    };
    let round: u64 = std::env::var("NFCS_DISK_CRASH_ROUND")
        .unwrap()
        .parse()
        .unwrap();
    let cache = DiskCache::open(&directory, config()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(round);
    let started = Instant::now();
    let mut counter = 0_u64;
    let mut out = std::io::stdout().lock();
    use std::io::Write as _;
    // Guard against a parent that failed to kill us (a safety net, not a measurement).
    while started.elapsed() < Duration::from_secs(30) {
        counter += 1;
        if counter.is_multiple_of(10) {
            let key = format!("deleted:{round}:{counter}");
            cache.insert(&key, b"doomed", None).unwrap();
            cache.remove(&key).unwrap();
            writeln!(out, "D {key}").unwrap();
        } else {
            let key = rng.random_range(0..KEYS);
            let version = round * 1_000_000 + counter;
            cache
                .insert(&format!("key:{key}"), &value_of(key, version), None)
                .unwrap();
            // With the segments compacted so far: the test checks that it crashed mid-compaction
            // too.
            writeln!(out, "W {key} {version} {}", cache.compacted().0).unwrap();
        }
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_at_random_moments_never_corrupts_or_resurrects() {
    let directory = tempfile::tempdir().unwrap();
    let executable = std::env::current_exe().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xc4a5);
    let mut acknowledged: HashMap<u64, u64> = HashMap::new();
    let mut deleted: HashSet<String> = HashSet::new();
    let mut torn_tails = 0;
    let mut compactions = 0;
    // The first ROUNDS rounds kill at random instants; when none of them lived long enough to
    // compact (a slow, loaded machine), further rounds each wait twice as long, up to
    // EXTRA_ROUNDS of them, so the test reaches a crash around compaction on any machine
    // instead of depending on its speed.
    const EXTRA_ROUNDS: u64 = 6;
    let mut round = 0;
    while round < ROUNDS || (compactions == 0 && round < ROUNDS + EXTRA_ROUNDS) {
        round += 1;
        let mut child = Command::new(&executable)
            .args([
                "crash::crash_writer_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("NFCS_DISK_CRASH_DIR", directory.path())
            .env("NFCS_DISK_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        // This sleep orders nothing and lets no TTL pass: it picks the instant of the SIGKILL,
        // and the point of the test is that any instant is safe, so wall-clock time (and how a
        // busy machine stretches it) cannot make it pass or fail.
        let wait = if round <= ROUNDS {
            rng.random_range(20..250)
        } else {
            500 << (round - ROUNDS)
        };
        std::thread::sleep(Duration::from_millis(wait));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let mut compacted_this_round = 0;
        for line in reader.join().unwrap() {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("W"), Some(key), Some(version)) => {
                    let (key, version) = (key.parse().unwrap(), version.parse().unwrap());
                    let newest = acknowledged.entry(key).or_insert(0);
                    *newest = (*newest).max(version);
                    if let Some(count) = words.next().and_then(|count| count.parse().ok()) {
                        compacted_this_round = count;
                    }
                }
                (Some("D"), Some(key), None) => {
                    deleted.insert(key.to_owned());
                }
                _ => {}
            }
        }

        compactions += compacted_this_round;
        let cache = DiskCache::open(directory.path(), config()).unwrap();
        torn_tails += cache.recovery_report().corrupt_records;
        for key in 0..KEYS {
            if let Some(value) = cache.get(&format!("key:{key}")).unwrap() {
                let version = version_in(key, &value);
                if let Some(&newest) = acknowledged.get(&key) {
                    assert!(
                        version >= newest,
                        "round {round}: key {key} went back from {newest} to {version}"
                    );
                }
            }
        }
        for key in &deleted {
            assert_eq!(
                cache.get(key).unwrap(),
                None,
                "round {round}: deleted {key} came back"
            );
        }
        assert_eq!(
            cache.stats().errors,
            0,
            "round {round}: damaged records were served from the index"
        );
    }
    assert!(!acknowledged.is_empty() && !deleted.is_empty());
    assert!(
        compactions > 0,
        "the writers compacted segments before they were killed"
    );
    println!(
        "{round} rounds, {} keys written, {} deletions, {compactions} segments compacted, \
         {torn_tails} torn tails cut",
        acknowledged.len(),
        deleted.len()
    );
}
