//! The semantic cache at the sizes HNSW is advertised for, with a synthetic embedder (so the
//! figures are the cache's, not the model's): a measurement to run by hand, not a test.
//!
//! - `store`: a cache of `max_entries` (100,000) entries, full, then timed stores of new texts,
//!   each of which evicts one entry (flat index; the eviction itself does not depend on the
//!   index). Printed: the median and the 99th percentile of one store, with and without a TTL.
//! - `rebuild`: an HNSW cache whose context is rebuilt with `live` (20,000) entries: the call
//!   that triggers the rebuild is timed, while a second thread looks that context's entries up
//!   and a third stores new entries in another context (so that they do not move the rebuild's
//!   threshold). Printed: the rebuild's duration, how many lookups and stores completed during
//!   it and the slowest of each (a call blocked by the rebuild shows as one as slow as the
//!   rebuild), and the recall of the rebuilt graph (random vectors, the hardest case for a
//!   graph index, at the cache's threshold of 0.99). With `alone`, nothing else runs during
//!   the rebuild, so that its own duration can be compared.
//!
//! ```text
//! cargo run -p nfcs-semantic --example index_at_scale -- store [max_entries] [stores]
//! cargo run -p nfcs-semantic --example index_at_scale -- rebuild [live] [alone]
//! ```
//!
//! The dev profile optimises nfcs-semantic (opt-level 3, see the workspace's Cargo.toml), so
//! these figures need no release build; they keep the dev profile's overflow checks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nfcs_semantic::{
    Embedder, HnswConfig, IndexKind, SemanticCache, SemanticConfig, SemanticError,
};

/// The model's dimension.
const DIMENSION: usize = 384;

/// Text `"<n>"` (or `"<n>?"`, which misses the exact-text path) embeds to pseudo-random unit
/// vector `n`; computing it costs a microsecond, not a forward pass.
struct Synthetic;

impl Synthetic {
    fn vector(n: u64) -> Vec<f32> {
        let mut state = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let vector: Vec<f32> = (0..DIMENSION)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 11) as f32 / (1_u64 << 53) as f32 - 0.5
            })
            .collect();
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        vector.into_iter().map(|x| x / norm).collect()
    }
}

impl Embedder for Synthetic {
    fn dimension(&self) -> usize {
        DIMENSION
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, SemanticError> {
        texts
            .iter()
            .map(|text| {
                let n = text
                    .trim_end_matches('?')
                    .parse()
                    .map_err(|_| SemanticError::Tokenizer(format!("{text:?} is not a number")))?;
                Ok(Synthetic::vector(n))
            })
            .collect()
    }
}

/// One kind of call the other threads make during a rebuild, given the call's number.
type Call = Box<dyn Fn(&SemanticCache<u64, Synthetic>, u64) + Send>;

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Fills `cache` with texts `0..count`, a thousand per call.
fn fill(cache: &SemanticCache<u64, Synthetic>, count: u64) -> Result<(), SemanticError> {
    let mut next = 0;
    while next < count {
        let end = (next + 1_000).min(count);
        let texts: Vec<String> = (next..end).map(|n| n.to_string()).collect();
        let entries: Vec<(&str, u64)> = texts
            .iter()
            .zip(next..end)
            .map(|(text, n)| (text.as_str(), n))
            .collect();
        cache.store_many(&entries, "tenant")?;
        next = end;
    }
    Ok(())
}

fn store_when_full(max_entries: usize, stores: u64) -> Result<(), SemanticError> {
    for ttl in [None, Some(Duration::from_secs(3_600))] {
        let mut config = SemanticConfig::default().with_max_entries(max_entries);
        if let Some(ttl) = ttl {
            config = config.with_ttl(ttl);
        }
        let cache = SemanticCache::new(Synthetic, config)?;
        let started = Instant::now();
        fill(&cache, max_entries as u64)?;
        let filled = started.elapsed();
        let mut times = Vec::new();
        for n in 0..stores {
            let text = (max_entries as u64 + n).to_string();
            let started = Instant::now();
            cache.store(&text, n, "tenant")?;
            times.push(started.elapsed());
        }
        assert_eq!(cache.len(), max_entries);
        assert_eq!(cache.stats().evictions, stores);
        times.sort();
        println!(
            "store into a full cache of {max_entries} (flat, ttl {ttl:?}): median {:?}, p99 {:?} \
             over {stores} stores, each evicting one (filled in {filled:?})",
            percentile(&times, 0.5),
            percentile(&times, 0.99),
        );
    }
    Ok(())
}

fn rebuild(live: u64, alone: bool) -> Result<(), SemanticError> {
    // A graph is rebuilt when its nodes reach twice the live ones plus 64: store that many, then
    // remove from the oldest until the removal that brings the live count to `live`.
    let stored = 2 * live + 64;
    let config = SemanticConfig::default()
        .with_max_entries(stored as usize * 2)
        .with_threshold(0.99)
        .with_index(IndexKind::Hnsw(HnswConfig::default()));
    let cache = Arc::new(SemanticCache::new(Synthetic, config)?);
    let started = Instant::now();
    fill(&cache, stored)?;
    println!(
        "filled an HNSW cache with {stored} entries in {:?}",
        started.elapsed()
    );
    let doomed = stored - live;
    for n in 0..doomed - 1 {
        cache.remove(&n.to_string(), "tenant");
    }
    // The other threads run throughout the rebuild. `phase` is 0 before it, 1 during it, 2
    // after it: a call overlapped the rebuild when it started in phase 0 or 1 and ended in
    // phase 1 or 2 (a call blocked by the rebuild ends after it, so it is judged by both ends).
    let stop = Arc::new(AtomicBool::new(false));
    let phase = Arc::new(AtomicU64::new(0));
    let calls = |context: &'static str, call: Call| {
        let (cache, stop, phase) = (Arc::clone(&cache), Arc::clone(&stop), Arc::clone(&phase));
        std::thread::spawn(move || {
            let (mut completed, mut slowest) = (0_u64, Duration::ZERO);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let before = phase.load(Ordering::SeqCst);
                let started = Instant::now();
                call(&cache, n);
                let took = started.elapsed();
                let after = phase.load(Ordering::SeqCst);
                if before <= 1 && after >= 1 {
                    slowest = slowest.max(took);
                }
                completed += u64::from(after == 1);
                n += 1;
            }
            (context, completed, slowest)
        })
    };
    if alone {
        let started = Instant::now();
        cache.remove(&(doomed - 1).to_string(), "tenant");
        println!(
            "rebuild of {live} live entries, nothing else running: the triggering remove took {:?}",
            started.elapsed()
        );
        return Ok(());
    }
    let reader = calls(
        "lookups",
        Box::new(move |cache, n| {
            let query = format!("{}?", doomed + (n * 7) % live);
            assert!(cache.find(&query, "tenant").is_ok());
        }),
    );
    let writer = calls(
        "stores",
        Box::new(move |cache, n| {
            assert!(cache.store(&(stored + n).to_string(), n, "other").is_ok());
            // A store a millisecond at most.
            std::thread::sleep(Duration::from_millis(1));
        }),
    );
    // Both threads are under way before the rebuild starts.
    std::thread::sleep(Duration::from_millis(50));
    phase.store(1, Ordering::SeqCst);
    let started = Instant::now();
    cache.remove(&(doomed - 1).to_string(), "tenant");
    let took = started.elapsed();
    phase.store(2, Ordering::SeqCst);
    // The calls the rebuild blocked (if any) finish, and are judged, before the threads stop.
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    println!("rebuild of {live} live entries: the triggering remove took {took:?}");
    for thread in [reader, writer] {
        let (what, completed, slowest) = thread.join().expect("no call panicked");
        println!(
            "  meanwhile {completed} {what} completed; the slowest that overlapped it took {slowest:?}"
        );
    }
    let (mut asked, mut found) = (0, 0);
    for n in (doomed..stored).step_by(17) {
        asked += 1;
        found += usize::from(cache.find(&format!("{n}?"), "tenant")?.is_some());
    }
    assert!(
        cache.find(&(doomed - 1).to_string(), "tenant")?.is_none(),
        "the removed entry is gone"
    );
    println!("after the rebuild, {found} of {asked} live entries are found by meaning");
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("store") => {
            let max_entries: usize = args.next().map_or(Ok(100_000), |arg| arg.parse())?;
            let stores: u64 = args.next().map_or(Ok(2_000), |arg| arg.parse())?;
            store_when_full(max_entries, stores)?;
        }
        Some("rebuild") => {
            let live: u64 = args.next().map_or(Ok(20_000), |arg| arg.parse())?;
            rebuild(live, args.next().as_deref() == Some("alone"))?;
        }
        _ => {
            return Err(
                "usage: index_at_scale store [max_entries] [stores] | rebuild [live] [alone]"
                    .into(),
            );
        }
    }
    Ok(())
}
