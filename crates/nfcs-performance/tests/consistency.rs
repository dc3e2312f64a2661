//! A read never brings back an older value: a write, deletion, invalidation or clear that
//! completes while a read is promoting what it found below wins, over memory + disk and over
//! memory + disk + a real redis-server. Events are ordered by a tier that blocks its read
//! where the test says (tokio `Notify`), never by sleeps; plus a randomized check of every
//! read against a model of every write.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nfcs_performance::cache_redis::test_server::RedisServer;
use nfcs_performance::prelude::*;
use tokio::sync::Notify;

/// Where a blocked read stands: `read` is notified once the inner tier has answered, and the
/// read returns only after `release`.
#[derive(Default)]
struct Gate {
    read: Notify,
    release: Notify,
}

/// A tier whose next `get` (once armed) reads the inner tier, then waits for the test; and
/// whose next `set` (once armed) waits for the test before writing.
struct Blocking {
    inner: Arc<dyn CacheTier>,
    armed: Mutex<Option<Arc<Gate>>>,
    armed_set: Mutex<Option<Arc<Gate>>>,
}

impl Blocking {
    fn new(inner: Arc<dyn CacheTier>) -> Arc<Blocking> {
        Arc::new(Blocking {
            inner,
            armed: Mutex::new(None),
            armed_set: Mutex::new(None),
        })
    }

    /// Makes the next `get` stop after reading, until the gate's `release`.
    fn arm(&self) -> Arc<Gate> {
        let gate = Arc::new(Gate::default());
        *self.armed.lock().unwrap() = Some(Arc::clone(&gate));
        gate
    }

    /// Makes the next `set` notify `read` when it starts and write only after `release`.
    fn arm_set(&self) -> Arc<Gate> {
        let gate = Arc::new(Gate::default());
        *self.armed_set.lock().unwrap() = Some(Arc::clone(&gate));
        gate
    }
}

impl CacheTier for Blocking {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn get(&self, key: &str) -> TierResult<Option<CacheEntry>> {
        let read = self.inner.get(key);
        let gate = self.armed.lock().unwrap().take();
        Box::pin(async move {
            let found = read.await;
            if let Some(gate) = gate {
                gate.read.notify_one();
                gate.release.notified().await;
            }
            found
        })
    }
    fn set(&self, key: &str, value: Bytes, ttl: Ttl) -> TierResult<()> {
        let Some(gate) = self.armed_set.lock().unwrap().take() else {
            return self.inner.set(key, value, ttl);
        };
        let (inner, key) = (Arc::clone(&self.inner), key.to_owned());
        // Like the disk tier's work on the blocking pool, the write goes on when the caller
        // stops waiting for it.
        let write = tokio::spawn(async move {
            gate.read.notify_one();
            gate.release.notified().await;
            inner.set(&key, value, ttl).await
        });
        Box::pin(async move {
            write
                .await
                .unwrap_or_else(|error| Err(CacheError::backend("blocking", "write", error)))
        })
    }
    fn delete(&self, key: &str) -> TierResult<bool> {
        self.inner.delete(key)
    }
    fn invalidate_pattern(&self, pattern: &Pattern) -> TierResult<u64> {
        self.inner.invalidate_pattern(pattern)
    }
    fn clear(&self) -> TierResult<u64> {
        self.inner.clear()
    }
    fn stats(&self) -> TierStats {
        self.inner.stats()
    }
}

/// A manager whose lowest tier blocks on demand, with `v1` stored only in that tier.
struct Setup {
    cache: NFCSCacheManager,
    blocking: Arc<Blocking>,
    /// The tiers between memory and the blocking one, to check what they hold afterwards.
    middle: Vec<Arc<dyn CacheTier>>,
    _guards: (tempfile::TempDir, Option<RedisServer>),
}

/// Memory, then a real disk tier that blocks.
async fn memory_and_disk() -> Setup {
    let directory = tempfile::tempdir().unwrap();
    let disk = DiskCache::open_async(directory.path(), DiskConfig::new(64 << 20))
        .await
        .unwrap();
    let blocking = Blocking::new(Arc::new(disk));
    let cache = NFCSCacheManager::builder()
        .memory(MemoryCache::new(16 << 20).unwrap())
        .tier(blocking.clone())
        .build();
    let frame = cache.codec().encode(&"v1").unwrap();
    blocking.inner.set("k", frame, Ttl::Never).await.unwrap();
    Setup {
        cache,
        blocking,
        middle: Vec::new(),
        _guards: (directory, None),
    }
}

/// Memory, a real disk tier, then a real Redis tier that blocks; `None` without redis-server.
async fn memory_disk_and_redis(test: &str) -> Option<Setup> {
    let server = RedisServer::start_or_skip(test)?;
    let directory = tempfile::tempdir().unwrap();
    let disk: Arc<dyn CacheTier> = Arc::new(
        DiskCache::open_async(directory.path(), DiskConfig::new(64 << 20))
            .await
            .unwrap(),
    );
    let redis = RedisCache::connect(RedisConfig::new(server.url()).max_connections(2))
        .await
        .unwrap();
    let blocking = Blocking::new(Arc::new(redis));
    let cache = NFCSCacheManager::builder()
        .memory(MemoryCache::new(16 << 20).unwrap())
        .tier(Arc::clone(&disk))
        .tier(blocking.clone())
        .build();
    let frame = cache.codec().encode(&"v1").unwrap();
    blocking.inner.set("k", frame, Ttl::Never).await.unwrap();
    Some(Setup {
        cache,
        blocking,
        middle: vec![disk],
        _guards: (directory, Some(server)),
    })
}

/// What each tier holds under "k", decoded.
async fn held(setup: &Setup) -> Vec<Option<String>> {
    let codec = setup.cache.codec();
    let decode = |entry: Option<CacheEntry>| {
        entry.map(|entry| codec.decode::<String>(&entry.value).unwrap())
    };
    let mut held = vec![decode(
        setup.cache.memory().unwrap().peek_entry("k").unwrap(),
    )];
    for tier in &setup.middle {
        held.push(decode(tier.get("k").await.unwrap()));
    }
    held.push(decode(setup.blocking.inner.get("k").await.unwrap()));
    held
}

/// Runs a read of "k" that finds `v1` in the lowest tier and is held there while `change`
/// runs to completion; then checks that the read returned `v1` (it overlapped the change) and
/// that every tier, and every later read, shows the state `change` left (`after`).
async fn change_during_promotion<F, Fut>(setup: Setup, change: F, after: Option<&str>)
where
    F: FnOnce(NFCSCacheManager) -> Fut,
    Fut: Future<Output = ()>,
{
    let gate = setup.blocking.arm();
    let reader = {
        let cache = setup.cache.clone();
        tokio::spawn(async move { cache.get::<String>("k").await })
    };
    gate.read.notified().await;
    change(setup.cache.clone()).await;
    gate.release.notify_one();
    assert_eq!(
        reader.await.unwrap().unwrap().as_deref(),
        Some("v1"),
        "the read found v1 before the change completed"
    );
    let expected = after.map(str::to_owned);
    assert_eq!(
        held(&setup).await,
        vec![expected.clone(); 2 + setup.middle.len()],
        "every tier holds the newer state; nothing promoted v1 over it"
    );
    assert_eq!(setup.cache.get::<String>("k").await.unwrap(), expected);
    let stats = setup.cache.stats();
    assert_eq!(
        (stats.promotions, stats.promotions_skipped),
        (0, 1),
        "the overlapping read did not promote: {stats:?}"
    );
}

async fn set_v2(cache: NFCSCacheManager) {
    cache.set("k", &"v2", None).await.unwrap();
}

async fn delete(cache: NFCSCacheManager) {
    assert!(cache.delete("k").await.unwrap());
}

async fn invalidate(cache: NFCSCacheManager) {
    assert!(cache.invalidate_pattern("k*").await.unwrap() >= 1);
}

async fn clear(cache: NFCSCacheManager) {
    assert!(cache.clear().await.unwrap() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_during_promotion_memory_disk() {
    change_during_promotion(memory_and_disk().await, set_v2, Some("v2")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_during_promotion_memory_disk() {
    change_during_promotion(memory_and_disk().await, delete, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_during_promotion_memory_disk() {
    change_during_promotion(memory_and_disk().await, invalidate, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_during_promotion_memory_disk() {
    change_during_promotion(memory_and_disk().await, clear, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_during_promotion_memory_disk_redis() {
    let Some(setup) = memory_disk_and_redis("set during promotion").await else {
        return;
    };
    change_during_promotion(setup, set_v2, Some("v2")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_during_promotion_memory_disk_redis() {
    let Some(setup) = memory_disk_and_redis("delete during promotion").await else {
        return;
    };
    change_during_promotion(setup, delete, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_during_promotion_memory_disk_redis() {
    let Some(setup) = memory_disk_and_redis("invalidate during promotion").await else {
        return;
    };
    change_during_promotion(setup, invalidate, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_during_promotion_memory_disk_redis() {
    let Some(setup) = memory_disk_and_redis("clear during promotion").await else {
        return;
    };
    change_during_promotion(setup, clear, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undisturbed_read_promotes_into_every_tier_above() {
    let Some(setup) = memory_disk_and_redis("undisturbed promotion").await else {
        return;
    };
    assert_eq!(
        setup.cache.get::<String>("k").await.unwrap().as_deref(),
        Some("v1")
    );
    assert_eq!(held(&setup).await, vec![Some("v1".to_owned()); 3]);
    let stats = setup.cache.stats();
    assert_eq!((stats.promotions, stats.promotions_skipped), (1, 0));
}

/// An entry that never expires, promoted from disk into a memory tier whose default TTL is
/// one second, still never expires there (it used to get memory's default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_never_expiring_entry_stays_so_when_promoted() {
    let clock = ManualClock::new();
    let directory = tempfile::tempdir().unwrap();
    let disk = DiskCache::open_async(directory.path(), DiskConfig::new(64 << 20))
        .await
        .unwrap();
    let memory = MemoryCache::with_config(
        MemoryConfig::new(16 << 20)
            .default_ttl(Some(Duration::from_secs(1)))
            .clock(clock.clock()),
    )
    .unwrap();
    let cache = NFCSCacheManager::builder()
        .memory(memory.clone())
        .disk(disk)
        .build();
    cache.set("forever", &1_u32, Ttl::Never).await.unwrap();
    memory.clear();
    assert_eq!(cache.get::<u32>("forever").await.unwrap(), Some(1));
    let promoted = memory.peek_entry("forever").unwrap().expect("promoted");
    assert_eq!(promoted.ttl, None, "no expiry in memory either");
    // A write with the default TTL takes each tier's own default: one second in memory,
    // none on this disk tier.
    cache.set("default", &2_u32, None).await.unwrap();
    assert_eq!(
        memory
            .peek_entry("default")
            .unwrap()
            .and_then(|entry| entry.ttl),
        Some(Duration::from_secs(1))
    );
    clock.advance(Duration::from_secs(3600));
    assert!(memory.peek_entry("forever").unwrap().is_some());
    assert!(
        memory.peek_entry("default").unwrap().is_none(),
        "memory's one-second default passed"
    );
    assert_eq!(
        cache.get::<u32>("default").await.unwrap(),
        Some(2),
        "still on disk"
    );
}

/// The randomized check: tasks do gets, sets and deletes on a few keys through a tiny memory
/// tier (so entries keep falling to the lower tiers and being promoted back), and every value
/// a read returns must have been current at some instant during the read.
async fn reads_return_only_current_values(cache: NFCSCacheManager, seed: u64) {
    const TASKS: u64 = 8;
    const OPERATIONS: u64 = 400;
    const KEYS: u64 = 3;
    let clock = Arc::new(AtomicU64::new(1));
    let history = Arc::new(Mutex::new(Vec::<Event>::new()));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (cache, clock, history) = (cache.clone(), Arc::clone(&clock), Arc::clone(&history));
        tasks.push(tokio::spawn(async move {
            let mut state = seed ^ (task + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            for operation in 0..OPERATIONS {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let key = format!("key{}", state % KEYS);
                let started = clock.fetch_add(1, Ordering::SeqCst);
                let kind = match (state >> 8) % 10 {
                    0..=5 => {
                        let found = cache.get::<u64>(&key).await.unwrap();
                        Kind::Read(found)
                    }
                    6..=8 => {
                        // Unique values: which write a read saw is never ambiguous.
                        let value = (task << 32) | operation;
                        cache.set(&key, &value, None).await.unwrap();
                        Kind::Write(Some(value))
                    }
                    _ => {
                        cache.delete(&key).await.unwrap();
                        Kind::Write(None)
                    }
                };
                let ended = clock.fetch_add(1, Ordering::SeqCst);
                history.lock().unwrap().push(Event {
                    key,
                    started,
                    ended,
                    kind,
                });
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let history = history.lock().unwrap();
    let mut checked = 0;
    for read in history.iter() {
        let Kind::Read(Some(value)) = read.kind else {
            // A miss is always allowed in a cache (the entry may have been evicted).
            continue;
        };
        let writes: Vec<&Event> = history
            .iter()
            .filter(|event| event.key == read.key && matches!(event.kind, Kind::Write(_)))
            .collect();
        let write = writes
            .iter()
            .find(|event| event.kind == Kind::Write(Some(value)))
            .unwrap_or_else(|| panic!("read {value} under {} that was never written", read.key));
        assert!(
            write.started < read.ended,
            "read {value} before its write began"
        );
        // The value was current at some instant of the read unless another write of the key
        // began after it completed and completed before the read began.
        let overwritten = writes
            .iter()
            .find(|later| later.started > write.ended && later.ended < read.started);
        assert!(
            overwritten.is_none(),
            "read {value} of {} during [{}, {}], but {:?} replaced it during [{}, {}], before the read began",
            read.key,
            read.started,
            read.ended,
            overwritten.map(|event| &event.kind),
            overwritten.map_or(0, |event| event.started),
            overwritten.map_or(0, |event| event.ended),
        );
        checked += 1;
    }
    assert!(checked > 100, "only {checked} reads found a value");
    let stats = cache.stats();
    assert!(
        stats.promotions > 0,
        "the check exercised promotion: {stats:?}"
    );
}

#[derive(Debug, PartialEq)]
enum Kind {
    Read(Option<u64>),
    Write(Option<u64>),
}

struct Event {
    key: String,
    started: u64,
    ended: u64,
    kind: Kind,
}

/// A memory tier that holds about two of the test's entries, so most reads go below.
fn tiny_memory() -> MemoryCache {
    let charge = EvictionPolicy::Lru.entry_charge(4, 16, false);
    MemoryCache::with_config(MemoryConfig::new(2 * charge + 1).shards(1)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_returns_a_value_current_during_it_memory_disk() {
    let directory = tempfile::tempdir().unwrap();
    for seed in [1, 2, 3] {
        let disk = DiskCache::open_async(
            directory.path().join(seed.to_string()),
            DiskConfig::new(64 << 20),
        )
        .await
        .unwrap();
        let cache = NFCSCacheManager::builder()
            .memory(tiny_memory())
            .disk(disk)
            .build();
        reads_return_only_current_values(cache, seed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_returns_a_value_current_during_it_memory_disk_redis() {
    let Some(server) = RedisServer::start_or_skip("randomized consistency") else {
        return;
    };
    let directory = tempfile::tempdir().unwrap();
    for seed in [4, 5] {
        let disk = DiskCache::open_async(
            directory.path().join(seed.to_string()),
            DiskConfig::new(64 << 20),
        )
        .await
        .unwrap();
        let redis = RedisCache::connect(
            RedisConfig::new(server.url())
                .max_connections(2)
                .key_prefix(format!("lin{seed}:")),
        )
        .await
        .unwrap();
        let cache = NFCSCacheManager::builder()
            .memory(tiny_memory())
            .disk(disk)
            .redis(redis)
            .build();
        reads_return_only_current_values(cache, seed).await;
    }
}

/// A write whose caller is cancelled while its lower-tier write is in flight still holds the
/// key until that write lands: a later write of the key waits for it and lands last, so the
/// lower tier does not end with the older value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_write_is_never_overtaken_by_a_later_one() {
    let setup = memory_and_disk().await;
    let gate = setup.blocking.arm_set();
    let first = {
        let cache = setup.cache.clone();
        tokio::spawn(async move { cache.set("k", &"older", None).await })
    };
    // The first write reached the lower tier and waits there; its caller is cancelled.
    gate.read.notified().await;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    let second = {
        let cache = setup.cache.clone();
        tokio::spawn(async move { cache.set("k", &"newer", None).await })
    };
    // The second write waits for the key's turn, which the first still holds. (Had it not
    // waited, its lower-tier write would land first and the released older one after it,
    // which the last assertion catches.)
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(
        !second.is_finished(),
        "the later write waits for the cancelled one's tier write"
    );
    gate.release.notify_one();
    second.await.unwrap().unwrap();
    assert_eq!(held(&setup).await, vec![Some("newer".to_owned()); 2]);
}
