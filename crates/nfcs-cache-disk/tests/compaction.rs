//! Compaction: overwritten and deleted bytes are reclaimed before live entries are evicted.

use nfcs_cache_disk::DiskConfig;

use crate::support::{noise, open, small_config};

/// 600 cold entries written once, then 20 hot keys overwritten ~10 MB worth: far more than
/// the 4 MiB cache, while the live data (2.5 MB) fits.
fn overwrite_heavily(config: DiskConfig) -> (u64, u64, u64, (u64, u64)) {
    let directory = tempfile::tempdir().unwrap();
    let cache = open(directory.path(), config.clone());
    for index in 0..600 {
        cache
            .insert(&format!("cold:{index}"), &noise(4_000, index), None)
            .unwrap();
    }
    for round in 0..125_u64 {
        for hot in 0..20 {
            cache
                .insert(
                    &format!("hot:{hot}"),
                    &noise(4_000, 1_000_000 + round * 20 + hot),
                    None,
                )
                .unwrap();
        }
    }
    assert!(cache.disk_usage() <= cache.capacity());
    let cold_kept = (0..600)
        .filter(|&index| {
            let found = cache.get(&format!("cold:{index}")).unwrap();
            if let Some(found) = &found {
                assert_eq!(&found[..], &noise(4_000, index)[..], "cold:{index}");
            }
            found.is_some()
        })
        .count() as u64;
    for hot in 0..20 {
        let found = cache.get(&format!("hot:{hot}")).unwrap();
        assert_eq!(
            found.as_deref(),
            Some(&noise(4_000, 1_000_000 + 124 * 20 + hot)[..]),
            "hot:{hot} holds its newest value"
        );
    }
    let evictions = cache.stats().evictions;
    let compacted = cache.compacted();
    let live = cache.stats().bytes;
    drop(cache);
    // And all of it survives a restart.
    let cache = open(directory.path(), config);
    let report = cache.recovery_report();
    assert_eq!(
        report.corrupt_records + report.reset_segments,
        0,
        "{report:?}"
    );
    assert_eq!(cache.len(), cold_kept + 20);
    (cold_kept, evictions, live, compacted)
}

#[test]
fn overwritten_bytes_are_compacted_before_live_entries_are_evicted() {
    let (without_kept, without_evictions, without_live, without) =
        overwrite_heavily(small_config().compaction_live_ratio(0.0));
    assert_eq!(without, (0, 0));
    assert!(
        without_kept < 600 && without_evictions > 0,
        "without compaction the cold entries are evicted ({without_kept} kept)"
    );
    let (kept, evictions, live, (segments, entries)) = overwrite_heavily(small_config());
    assert_eq!(kept, 600, "every cold entry is kept");
    assert_eq!(evictions, 0);
    assert!(
        segments > 0,
        "{segments} segments compacted, {entries} entries moved"
    );
    println!(
        "without compaction: {without_kept}/600 cold entries kept, {without_evictions} evicted, \
         {without_live} live bytes; with: {kept}/600, {evictions} evicted, {live} live bytes, \
         {segments} segments compacted, {entries} entries moved"
    );
}

#[test]
fn deletions_survive_the_compaction_of_their_segment() {
    // The first segment holds 20 puts to delete and 40 to keep (so it stays, mostly live);
    // the deletions land in a later segment that overwrites then empty and compaction frees.
    // Unless compaction carries them forward, the puts come back at the next open.
    let directory = tempfile::tempdir().unwrap();
    let config = small_config();
    let cache = open(directory.path(), config.clone());
    for index in 0..20 {
        cache
            .insert(&format!("old:{index}"), &noise(4_000, index), None)
            .unwrap();
    }
    for index in 0..40 {
        cache
            .insert(&format!("keep:{index}"), &noise(4_000, 100 + index), None)
            .unwrap();
    }
    let hot = |cache: &nfcs_cache_disk::DiskCache, rounds: std::ops::Range<u64>| {
        for round in rounds {
            for hot in 0..20 {
                cache
                    .insert(
                        &format!("hot:{hot}"),
                        &noise(4_000, 1_000 + round * 20 + hot),
                        None,
                    )
                    .unwrap();
            }
        }
    };
    hot(&cache, 0..10);
    for index in 0..20 {
        assert!(cache.remove(&format!("old:{index}")).unwrap());
    }
    hot(&cache, 10..200);
    assert!(cache.compacted().0 > 0);
    assert_eq!(
        cache.stats().evictions,
        0,
        "the first segment was never evicted"
    );
    drop(cache);
    let cache = open(directory.path(), config);
    for index in 0..20 {
        assert_eq!(
            cache.get(&format!("old:{index}")).unwrap(),
            None,
            "old:{index} came back"
        );
    }
    for index in 0..40 {
        assert!(cache.get(&format!("keep:{index}")).unwrap().is_some());
    }
}

#[test]
fn the_ratio_is_validated() {
    let directory = tempfile::tempdir().unwrap();
    for ratio in [-0.1, 0.95, f64::NAN] {
        let error = nfcs_cache_disk::DiskCache::open(
            directory.path(),
            small_config().compaction_live_ratio(ratio),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("compaction_live_ratio"),
            "{error}"
        );
    }
}
