nfcs_cache_core::cache_tier_conformance!(|_clock: nfcs_cache_core::Clock| async move {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let cache = nfcs_cache_disk::DiskCache::open_async(
        directory.path(),
        nfcs_cache_disk::DiskConfig::new(64 << 20),
    )
    .await
    .expect("the cache opens");
    nfcs_cache_core::conformance::Guarded::new(cache, directory)
});
