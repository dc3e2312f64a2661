//! `DiskCache`: the public handle, its blocking API, and its `CacheTier` implementation.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use nfcs_cache_core::telemetry::InstanceLabels;
use nfcs_cache_core::{
    BoxFuture, CacheEntry, CacheError, CacheTier, Clock, Pattern, TierResult, TierStats, Ttl,
    check_key, ready,
};

use crate::config::{DiskConfig, DiskError};
use crate::store::{RecoveryReport, Store};

/// The disk tier: a crash-safe, checksummed, compressed, size-bounded cache in one directory.
///
/// Entries are appended to segment files; an in-memory index maps keys to records; whole
/// segments are evicted oldest first, and entries read since they were written are carried
/// into the newest segment (approximate LRU). Opening a directory rebuilds the index from the
/// segments and cuts off whatever a crash left half-written. See the crate documentation for
/// the guarantees.
///
/// The inherent methods (`get`, `insert`, ...) block on file I/O: call them from a thread that
/// may block. The [`CacheTier`] methods run the same work on tokio's blocking pool, so they
/// never block a runtime worker (outside a runtime they run on the calling thread).
///
/// Cloning is cheap: clones share the open cache.
#[derive(Clone)]
pub struct DiskCache {
    store: Arc<Store>,
}

impl DiskCache {
    /// Opens (creating if needed) the cache in `directory`, recovering its entries.
    ///
    /// Segment files are opened without following links. A segment name that holds a
    /// symbolic link, a directory or another non-file is logged, counted in
    /// [`RecoveryReport::skipped_slots`] and left alone, and its slot is not used.
    ///
    /// # Errors
    /// [`DiskError::Locked`] when another `DiskCache` has the directory open,
    /// [`DiskError::NotAFile`] when the lock file's path holds a link or another non-file,
    /// [`DiskError::TooFewSegments`] when so many slots are skipped that fewer than
    /// [`DiskConfig::MIN_SEGMENTS`] remain, [`DiskError::Io`] naming the path when the
    /// directory cannot be created, read or written, [`DiskError::InvalidConfig`] for a
    /// configuration that cannot work.
    pub fn open(directory: impl AsRef<Path>, config: DiskConfig) -> Result<DiskCache, DiskError> {
        Ok(DiskCache {
            store: Arc::new(Store::open(directory.as_ref(), &config, None)?),
        })
    }

    /// [`open`](DiskCache::open) on tokio's blocking pool, for async code (recovery reads
    /// every segment).
    ///
    /// # Errors
    /// As [`open`](DiskCache::open).
    pub async fn open_async(
        directory: impl AsRef<Path>,
        config: DiskConfig,
    ) -> Result<DiskCache, DiskError> {
        let directory = directory.as_ref().to_owned();
        // Resolved here rather than on the blocking pool: a recorder installed for this thread
        // only (`metrics::with_local_recorder`) must see the tier too.
        let metrics = crate::store::metrics_for(&config);
        let open = move || {
            Ok(DiskCache {
                store: Arc::new(Store::open(&directory, &config, Some(metrics))?),
            })
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle
                .spawn_blocking(open)
                .await
                .unwrap_or_else(|join_error| {
                    Err(DiskError::Io {
                        operation: "open (the opening task failed)",
                        path: Default::default(),
                        source: std::io::Error::other(join_error),
                    })
                }),
            Err(_) => open(),
        }
    }

    /// Reads `key`: `Ok(None)` on a miss, an expired entry, or a damaged record (which is
    /// counted in `errors` and dropped). Blocks on file I/O.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`]; [`CacheError::Backend`] when the file cannot be read.
    pub fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        Ok(self.store.get(key)?.map(|entry| entry.value))
    }

    /// Reads `key` with its remaining TTL. Blocks on file I/O.
    ///
    /// # Errors
    /// As [`get`](DiskCache::get).
    pub fn get_entry(&self, key: &str) -> Result<Option<CacheEntry>, CacheError> {
        self.store.get(key)
    }

    /// Writes `value` under `key`, to live as `ttl` says (a [`Duration`](std::time::Duration),
    /// `None` or [`Ttl::Default`] for the default TTL, [`Ttl::Never`]). Blocks on file I/O.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`], [`CacheError::InvalidTtl`], [`CacheError::ValueTooLarge`]
    /// for an entry larger than a segment, [`CacheError::Backend`] when the write fails (the
    /// earlier value, if any, is still served).
    pub fn insert(&self, key: &str, value: &[u8], ttl: impl Into<Ttl>) -> Result<(), CacheError> {
        self.store.set(key, value, ttl.into())
    }

    /// Removes `key`; `true` when a live entry was there. The removal survives restarts.
    ///
    /// # Errors
    /// [`CacheError::InvalidKey`], [`CacheError::Backend`].
    pub fn remove(&self, key: &str) -> Result<bool, CacheError> {
        self.store.delete(key)
    }

    /// Removes each of `keys` under one hold of the writer and, with
    /// [`DiskConfig::sync_writes`](crate::DiskConfig::sync_writes), one flush; returns how many
    /// live entries were removed. Every key is checked first: an invalid one is an error and
    /// nothing is removed.
    ///
    /// # Errors
    /// An invalid key, or a failed write (the deletions written before it stay).
    pub fn remove_many<K: AsRef<str>>(&self, keys: &[K]) -> Result<u64, CacheError> {
        self.store.delete_many(keys)
    }

    /// Removes every key matching `pattern`; returns how many live entries were removed.
    ///
    /// # Errors
    /// [`CacheError::Backend`].
    pub fn remove_matching(&self, pattern: &Pattern) -> Result<u64, CacheError> {
        self.store.invalidate(pattern)
    }

    /// Removes every entry; returns how many live entries were removed.
    ///
    /// # Errors
    /// [`CacheError::Backend`].
    pub fn clear(&self) -> Result<u64, CacheError> {
        self.store.clear()
    }

    /// Drops expired entries from the index now; returns how many.
    pub fn purge_expired(&self) -> u64 {
        self.store.purge_expired()
    }

    /// Flushes written data to the device (`fdatasync`).
    ///
    /// # Errors
    /// [`CacheError::Backend`].
    pub fn flush(&self) -> Result<(), CacheError> {
        self.store.flush()
    }

    /// An exact snapshot of the counters and gauges. (The same figures reach the `metrics`
    /// recorder as they change; calling this publishes nothing.)
    pub fn stats(&self) -> TierStats {
        self.store.stats()
    }

    /// Entries indexed now.
    pub fn len(&self) -> u64 {
        self.store.len()
    }

    /// Whether no entry is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most bytes the segment files may take: the usable slots times the segment size (at
    /// most `max_bytes`; less by one segment per slot skipped at open because it holds a
    /// non-file).
    pub fn capacity(&self) -> u64 {
        self.store.capacity()
    }

    /// The size of one segment file.
    pub fn segment_bytes(&self) -> u64 {
        self.store.segment_size()
    }

    /// Bytes the segment files take now.
    pub fn disk_usage(&self) -> u64 {
        self.store.disk_usage()
    }

    /// Entries carried into a newer segment by eviction because they had been read.
    pub fn reinserted(&self) -> u64 {
        self.store.reinserted()
    }

    /// The cache directory.
    pub fn directory(&self) -> &Path {
        self.store.directory()
    }

    /// Compaction so far: segments freed, and entries moved to free them (see
    /// [`DiskConfig::compaction_live_ratio`](crate::DiskConfig::compaction_live_ratio)).
    pub fn compacted(&self) -> (u64, u64) {
        self.store.compacted()
    }

    /// What opening the directory found and cleaned.
    pub fn recovery_report(&self) -> &RecoveryReport {
        self.store.recovery_report()
    }

    /// The clock TTLs are measured on ([`DiskConfig::clock`]).
    pub fn clock(&self) -> &Clock {
        self.store.clock()
    }

    /// The labels this tier reports its metrics under: `cache` ([`DiskConfig::instance`]) and
    /// `tier` ([`DiskConfig::name`]). The `cache` label carries a `-2`, `-3`, ... suffix when
    /// another live cache already reported under the same pair when this one was opened.
    pub fn labels(&self) -> &InstanceLabels {
        self.store.labels()
    }

    /// Runs `work` on tokio's blocking pool when there is a runtime, else right here.
    fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Store) -> Result<T, CacheError> + Send + 'static,
    ) -> BoxFuture<Result<T, CacheError>> {
        let store = Arc::clone(&self.store);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => Box::pin(async move {
                let name = store.name.clone();
                handle
                    .spawn_blocking(move || work(&store))
                    .await
                    .unwrap_or_else(|join_error| {
                        Err(CacheError::backend(
                            &name,
                            "run a blocking task",
                            join_error,
                        ))
                    })
            }),
            Err(_) => ready(work(&store)),
        }
    }
}

impl std::fmt::Debug for DiskCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskCache")
            .field("directory", &self.directory())
            .field("labels", self.labels())
            .field("capacity", &self.capacity())
            .field("segment_bytes", &self.segment_bytes())
            .field("len", &self.len())
            .finish()
    }
}

impl CacheTier for DiskCache {
    fn name(&self) -> &str {
        &self.store.name
    }

    fn get(&self, key: &str) -> TierResult<Option<CacheEntry>> {
        if let Err(error) = check_key(key) {
            return ready(Err(error));
        }
        let key = key.to_owned();
        self.blocking(move |store| store.get(&key))
    }

    fn set(&self, key: &str, value: Bytes, ttl: Ttl) -> TierResult<()> {
        if let Err(error) = check_key(key) {
            return ready(Err(error));
        }
        let key = key.to_owned();
        self.blocking(move |store| store.set(&key, &value, ttl))
    }

    fn delete(&self, key: &str) -> TierResult<bool> {
        if let Err(error) = check_key(key) {
            return ready(Err(error));
        }
        let key = key.to_owned();
        self.blocking(move |store| store.delete(&key))
    }

    fn delete_many(&self, keys: &[String]) -> TierResult<u64> {
        if let Some(error) = keys.iter().find_map(|key| check_key(key).err()) {
            return ready(Err(error));
        }
        let keys = keys.to_vec();
        self.blocking(move |store| store.delete_many(&keys))
    }

    fn invalidate_pattern(&self, pattern: &Pattern) -> TierResult<u64> {
        let pattern = pattern.clone();
        self.blocking(move |store| store.invalidate(&pattern))
    }

    fn clear(&self) -> TierResult<u64> {
        self.blocking(Store::clear)
    }

    fn stats(&self) -> TierStats {
        self.store.stats()
    }
}
