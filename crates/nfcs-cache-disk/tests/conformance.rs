//! The core conformance suite, on a disk cache built on the suite's manual clock (the TTL
//! checks advance it instead of sleeping).

nfcs_cache_core::cache_tier_conformance!(|clock: nfcs_cache_core::Clock| async move {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let cache = nfcs_cache_disk::DiskCache::open_async(
        directory.path(),
        nfcs_cache_disk::DiskConfig::new(64 << 20).clock(clock),
    )
    .await
    .expect("the cache opens");
    nfcs_cache_core::conformance::Guarded::new(cache, directory)
});
