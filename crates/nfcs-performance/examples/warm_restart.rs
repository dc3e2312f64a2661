//! Warm restart: a node with 1,000,000 entries on disk restarted with and without
//! `warm_on_startup`, under the same Zipf read load: the memory tier's hit ratio in each of
//! the first 10 seconds, and the time to reach 90 % of the steady-state hit ratio.
//!
//! `cargo run --release -p nfcs-performance --example warm_restart -- [entries] [seconds]`
//!
//! 1. 1,000,000 entries of 100 bytes are written to a disk tier in a temporary directory.
//! 2. A node (memory for about 100,000 entries, the disk tier, warming with `max_keys`
//!    100,000) serves Zipf(0.9) reads for 20 s: the last 5 s give the steady-state hit ratio;
//!    then the keys of Zipf ranks 20,001 to 21,000 are deleted and 1,000 more
//!    overwritten with a 1 ms TTL that then runs out, and it shuts down (`flush`, which saves
//!    the hot set).
//! 3. The node restarts twice on the same directory, without and with `warm_on_startup`, each
//!    serving the same reads for `seconds` (the reader does not wait for warming).
//! 4. After the warmed restart, none of the deleted or expired keys is in memory.

use std::error::Error;
use std::time::{Duration, Instant};

use nfcs_performance::prelude::*;

const VALUE: usize = 100;

fn key(index: u64) -> String {
    format!("item:{index:07}")
}

struct Zipf {
    cumulative: Vec<f64>,
    state: u64,
}

impl Zipf {
    fn new(keys: usize, exponent: f64, seed: u64) -> Zipf {
        let mut cumulative = Vec::with_capacity(keys);
        let total: f64 = (1..=keys).map(|rank| (rank as f64).powf(-exponent)).sum();
        let mut sum = 0.0;
        for rank in 1..=keys {
            sum += (rank as f64).powf(-exponent) / total;
            cumulative.push(sum);
        }
        Zipf {
            cumulative,
            state: seed,
        }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let u = (self.state >> 11) as f64 / (1_u64 << 53) as f64;
        let rank = self
            .cumulative
            .partition_point(|&c| c < u)
            .min(self.cumulative.len() - 1);
        // Ranks scattered over the ids.
        (rank as u64 * 2_654_435_761) % self.cumulative.len() as u64
    }
}

async fn node(directory: &std::path::Path, warm: bool) -> Result<NFCSCacheManager, Box<dyn Error>> {
    let config = CacheConfig::from_toml_str(&format!(
        "name = \"warm-restart\"\n[memory]\nmax_size = \"{memory}\"\nttl_default = \"never\"\n\
         [disk]\ndirectory = \"{}\"\nmax_size = \"2GiB\"\ncompression = false\n\
         [redis]\nenabled = false\n[semantic]\nenabled = false\n\
         [cache_warming]\nstrategies = [\"popular_queries\"]\nmax_keys = 100000\n\
         warm_on_startup = {warm}\nwarm_max_seconds = 60",
        directory.display(),
        memory = 100_000 * EvictionPolicy::Lru.entry_charge(12, VALUE, false),
    ))?;
    Ok(NFCSCacheManager::from_config(config).await?)
}

/// Reads for `seconds`, returning the memory tier's hit ratio in each second.
async fn serve(
    cache: &NFCSCacheManager,
    zipf: &mut Zipf,
    seconds: u64,
) -> Result<Vec<f64>, Box<dyn Error>> {
    let memory = cache.memory().ok_or("no memory tier")?.clone();
    let mut per_second = Vec::new();
    for _ in 0..seconds {
        let before = memory.stats();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(1) {
            for _ in 0..256 {
                let _ = cache.get_bytes(&key(zipf.next())).await?;
            }
        }
        let after = memory.stats();
        let hits = after.hits - before.hits;
        let reads = hits + after.misses - before.misses;
        per_second.push(hits as f64 / reads.max(1) as f64);
    }
    Ok(per_second)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error>> {
    let entries: u64 = std::env::args()
        .nth(1)
        .map_or(Ok(1_000_000), |text| text.parse())?;
    let seconds: u64 = std::env::args()
        .nth(2)
        .map_or(Ok(10), |text| text.parse())?;
    let directory = tempfile::tempdir()?;
    let started = Instant::now();
    {
        let disk = DiskCache::open(
            directory.path(),
            DiskConfig::new(2 << 30).compression(false),
        )?;
        let value = [7_u8; VALUE];
        for index in 0..entries {
            disk.insert(&key(index), &value, Ttl::Never)?;
        }
        disk.flush()?;
    }
    println!(
        "{entries} entries written to disk in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let steady = {
        let cache = node(directory.path(), false).await?;
        let mut zipf = Zipf::new(entries as usize, 0.9, 1);
        let run = serve(&cache, &mut zipf, 20).await?;
        let steady = run[15..].iter().sum::<f64>() / 5.0;
        println!(
            "first run, per second: {:?}",
            run.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>()
        );
        // Delete 1,000 keys of the hot set and let 1,000 more expire (from its lower part, so
        // that the workload's own hit ratio hardly changes: what matters is that they never
        // come back).
        let hot: Vec<String> = (20_000..22_000_u64)
            .map(|rank| key((rank * 2_654_435_761) % entries))
            .collect();
        for key in &hot[..1_000] {
            cache.delete(key).await?;
        }
        for key in &hot[1_000..] {
            cache
                .set_bytes(key, vec![1_u8; VALUE], Some(Duration::from_millis(1)))
                .await?;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        cache.flush().await?;
        std::fs::write(directory.path().join("dead-keys.txt"), hot.join("\n"))?;
        steady
    };
    println!("steady-state hit ratio: {steady:.3}");
    let dead: Vec<String> = std::fs::read_to_string(directory.path().join("dead-keys.txt"))?
        .lines()
        .map(str::to_owned)
        .collect();
    for warm in [false, true] {
        let began = Instant::now();
        let cache = node(directory.path(), warm).await?;
        let start_up = began.elapsed();
        let mut zipf = Zipf::new(entries as usize, 0.9, 2);
        let run = serve(&cache, &mut zipf, seconds).await?;
        let reach = run.iter().position(|&ratio| ratio >= 0.9 * steady);
        println!(
            "restart {} warming: start-up {:.1} ms; hit ratio per second {:?}; 90 % of steady state in second {}",
            if warm { "with" } else { "without" },
            start_up.as_secs_f64() * 1e3,
            run.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>(),
            reach.map_or("never".to_owned(), |second| (second + 1).to_string()),
        );
        if let Some(report) = cache.warming().map(|warming| warming.state()) {
            println!("  warming: {report:?}");
        }
        if warm {
            let back = dead
                .iter()
                .filter(|key| {
                    cache
                        .memory()
                        .is_some_and(|memory| memory.contains_key(key))
                })
                .count();
            let stored = readable_count(&cache, &dead).await?;
            println!("  deleted or expired keys in memory: {back}; readable at all: {stored}");
        }
    }
    Ok(())
}

/// How many of `keys` a read finds at all.
async fn readable_count(
    cache: &NFCSCacheManager,
    keys: &[String],
) -> Result<usize, Box<dyn Error>> {
    let mut found = 0;
    for key in keys {
        if cache.get_bytes(key).await?.is_some() {
            found += 1;
        }
    }
    Ok(found)
}
