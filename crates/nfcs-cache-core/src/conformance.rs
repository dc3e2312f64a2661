//! The conformance suite every [`CacheTier`] runs, so that memory, disk, Redis and your own
//! tiers are held to one contract.
//!
//! Invoke [`cache_tier_conformance!`](crate::cache_tier_conformance) in a test module with an
//! async factory that takes a [`Clock`] and builds the tier on it; it expands to one `#[test]`
//! per check, each with a fresh tier, a fresh [`ManualClock`] and its own tokio runtime (the
//! factory runs inside it, so tiers that hold connections work):
//!
//! ```
//! mod memory_conformance {
//!     use nfcs_cache_core::{Clock, MemoryCache, MemoryConfig};
//!
//!     nfcs_cache_core::cache_tier_conformance!(|clock: Clock| async move {
//!         MemoryCache::with_config(MemoryConfig::new(64 << 20).clock(clock))
//!             .expect("a valid budget")
//!     });
//! }
//! ```
//!
//! Time is driven: the TTL checks advance the manual clock instead of sleeping, so the tier must
//! read its expiry from the clock it was given. A tier that needs something kept alive (a
//! temporary directory, a server process) returns a [`Guarded`] tier. The factory's tier must
//! hold at least 32 MiB and must apply either no default TTL or one longer than a minute.
//!
//! The checks are also public functions of a [`Subject`], for tiers whose tests want to call
//! them directly.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::clock::{Clock, ManualClock};
use crate::error::CacheError;
use crate::expiry::Ttl;
use crate::pattern::Pattern;
use crate::stats::TierStats;
use crate::tier::{CacheEntry, CacheTier, TierResult};

/// A tier together with something that must live as long as it (a temporary directory, a
/// server process guard). Dereferences to the tier and implements [`CacheTier`] by delegation.
pub struct Guarded<T, G> {
    tier: T,
    _guard: G,
}

impl<T, G> Guarded<T, G> {
    /// Keeps `guard` alive as long as `tier`.
    pub fn new(tier: T, guard: G) -> Guarded<T, G> {
        Guarded {
            tier,
            _guard: guard,
        }
    }
}

impl<T, G> std::ops::Deref for Guarded<T, G> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.tier
    }
}

impl<T: CacheTier, G: Send + Sync> CacheTier for Guarded<T, G> {
    fn name(&self) -> &str {
        self.tier.name()
    }
    fn get(&self, key: &str) -> TierResult<Option<CacheEntry>> {
        self.tier.get(key)
    }
    fn set(&self, key: &str, value: Bytes, ttl: Ttl) -> TierResult<()> {
        self.tier.set(key, value, ttl)
    }
    fn delete(&self, key: &str) -> TierResult<bool> {
        self.tier.delete(key)
    }
    fn invalidate_pattern(&self, pattern: &Pattern) -> TierResult<u64> {
        self.tier.invalidate_pattern(pattern)
    }
    fn clear(&self) -> TierResult<u64> {
        self.tier.clear()
    }
    fn stats(&self) -> TierStats {
        self.tier.stats()
    }
    fn health(&self) -> crate::TierHealth {
        self.tier.health()
    }
}

/// A tier under test and the clock it was built on.
pub struct Subject {
    /// The tier.
    pub tier: Arc<dyn CacheTier>,
    /// The clock the tier reads; the checks advance it.
    pub clock: ManualClock,
}

/// Builds a tier with `factory` on a fresh multi-threaded tokio runtime and a fresh manual
/// clock, and runs `check` on it. Used by
/// [`cache_tier_conformance!`](crate::cache_tier_conformance).
///
/// # Panics
/// When the runtime cannot be built, or when the check fails (that is the point).
pub fn run<T, F, Fut, C, CFut>(factory: F, check: C)
where
    T: CacheTier + 'static,
    F: FnOnce(Clock) -> Fut,
    Fut: Future<Output = T>,
    C: FnOnce(Subject) -> CFut,
    CFut: Future<Output = ()>,
{
    run_optional(|clock| async { Some(factory(clock).await) }, check);
}

/// Like [`run`], for a tier that may not be available here (a server binary that is not
/// installed): the factory returns `None` to skip the check (it should say why).
///
/// # Panics
/// As [`run`].
pub fn run_optional<T, F, Fut, C, CFut>(factory: F, check: C)
where
    T: CacheTier + 'static,
    F: FnOnce(Clock) -> Fut,
    Fut: Future<Output = Option<T>>,
    C: FnOnce(Subject) -> CFut,
    CFut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the conformance suite");
    runtime.block_on(async move {
        let clock = ManualClock::new();
        if let Some(tier) = factory(clock.clock()).await {
            let tier: Arc<dyn CacheTier> = Arc::new(tier);
            check(Subject { tier, clock }).await;
        }
    });
}

/// Expands to one `#[test]` per conformance check, each on a fresh tier from `$factory` (a
/// closure taking a [`Clock`] and returning a future of the tier). With `optional` first, the
/// factory returns a future of `Option<tier>`, and `None` skips the check (for tiers that need
/// a server that may not be installed). See the [module documentation](crate::conformance).
#[macro_export]
macro_rules! cache_tier_conformance {
    (optional $factory:expr) => {
        $crate::cache_tier_conformance!(@all run_optional $factory);
    };
    (@all $runner:ident $factory:expr) => {
        $crate::cache_tier_conformance!(@tests $runner $factory;
            get_of_a_missing_key_is_none,
            set_then_get_returns_the_value,
            overwrite_replaces_the_value,
            delete_removes_and_reports,
            ttl_expires_entries,
            remaining_ttl_is_reported,
            never_outlives_any_default,
            invalidate_pattern_removes_exactly_the_matches,
            clear_removes_everything,
            large_values_roundtrip,
            empty_values_and_unicode_keys_roundtrip,
            invalid_keys_are_rejected_and_the_tier_stays_usable,
            invalid_ttls_are_rejected_and_nothing_changes,
            concurrent_tasks_see_only_written_values,
            stats_count_hits_misses_and_inserts,
        );
    };
    (@tests $runner:ident $factory:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::conformance::$runner($factory, |subject| async move {
                    $crate::conformance::$check(&subject).await
                });
            }
        )*
    };
    ($factory:expr) => {
        $crate::cache_tier_conformance!(@all run $factory);
    };
}

fn bytes(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

async fn read(tier: &Arc<dyn CacheTier>, key: &str) -> Option<Bytes> {
    tier.get(key)
        .await
        .unwrap_or_else(|error| panic!("{}: get({key:?}) failed: {error}", tier.name()))
        .map(|entry| entry.value)
}

async fn write(tier: &Arc<dyn CacheTier>, key: &str, value: Bytes, ttl: impl Into<Ttl>) {
    tier.set(key, value, ttl.into())
        .await
        .unwrap_or_else(|error| panic!("{}: set({key:?}) failed: {error}", tier.name()));
}

/// A key that was never written reads as `Ok(None)`.
pub async fn get_of_a_missing_key_is_none(subject: &Subject) {
    let tier = &subject.tier;
    assert_eq!(read(tier, "conformance:never-written").await, None);
}

/// A written value reads back byte for byte.
pub async fn set_then_get_returns_the_value(subject: &Subject) {
    let tier = &subject.tier;
    write(tier, "conformance:key_1", bytes("value_1"), None).await;
    assert_eq!(
        read(tier, "conformance:key_1").await,
        Some(bytes("value_1"))
    );
}

/// A second write replaces the first.
pub async fn overwrite_replaces_the_value(subject: &Subject) {
    let tier = &subject.tier;
    write(tier, "conformance:key", bytes("first"), None).await;
    write(tier, "conformance:key", bytes("second, longer"), None).await;
    assert_eq!(
        read(tier, "conformance:key").await,
        Some(bytes("second, longer"))
    );
    write(tier, "conformance:key", bytes("3"), None).await;
    assert_eq!(read(tier, "conformance:key").await, Some(bytes("3")));
}

/// `delete` removes the entry and says whether one was there.
pub async fn delete_removes_and_reports(subject: &Subject) {
    let tier = &subject.tier;
    write(tier, "conformance:doomed", bytes("x"), None).await;
    assert!(tier.delete("conformance:doomed").await.expect("delete"));
    assert_eq!(read(tier, "conformance:doomed").await, None);
    assert!(
        !tier
            .delete("conformance:doomed")
            .await
            .expect("second delete")
    );
}

/// An entry is never returned after its TTL, while an entry without one stays.
pub async fn ttl_expires_entries(subject: &Subject) {
    let tier = &subject.tier;
    // Long in real time (a networked tier's server may enforce it too), instant on the clock.
    let ttl = Duration::from_secs(90);
    write(tier, "conformance:short", bytes("short-lived"), ttl).await;
    write(tier, "conformance:default", bytes("default ttl"), None).await;
    subject.clock.advance(ttl - Duration::from_millis(10));
    assert_eq!(
        read(tier, "conformance:short").await,
        Some(bytes("short-lived")),
        "expired before its TTL"
    );
    subject.clock.advance(Duration::from_millis(10));
    assert_eq!(
        read(tier, "conformance:short").await,
        None,
        "expired entry returned"
    );
    assert_eq!(
        read(tier, "conformance:default").await,
        Some(bytes("default ttl"))
    );
    // Expired entries do not come back through invalidation counts either.
    let pattern = Pattern::new("conformance:short").expect("valid pattern");
    assert_eq!(
        tier.invalidate_pattern(&pattern).await.expect("invalidate"),
        0
    );
}

/// Reads report the TTL left, never more than was set, and it follows the clock.
pub async fn remaining_ttl_is_reported(subject: &Subject) {
    let tier = &subject.tier;
    let ttl = Duration::from_secs(60);
    write(tier, "conformance:ttl", bytes("v"), ttl).await;
    let left = |entry: Option<CacheEntry>| {
        entry
            .expect("entry present")
            .ttl
            .expect("an entry set with a TTL reports one")
    };
    let first = left(tier.get("conformance:ttl").await.expect("get"));
    assert!(first <= ttl, "{first:?} left of a {ttl:?} TTL");
    assert!(
        first >= ttl - Duration::from_millis(2),
        "{first:?} left of a {ttl:?} TTL with the clock standing still"
    );
    subject.clock.advance(Duration::from_secs(45));
    let later = left(tier.get("conformance:ttl").await.expect("get"));
    assert!(
        later <= ttl - Duration::from_secs(45) && later >= ttl - Duration::from_millis(45_002),
        "{later:?} left after 45 s of a {ttl:?} TTL"
    );
}

/// [`Ttl::Never`] never expires, whatever the tier's default; the entry reports no TTL.
pub async fn never_outlives_any_default(subject: &Subject) {
    let tier = &subject.tier;
    write(tier, "conformance:forever", bytes("kept"), Ttl::Never).await;
    subject.clock.advance(Duration::from_secs(400 * 24 * 3600));
    let entry = tier
        .get("conformance:forever")
        .await
        .expect("get")
        .expect("an entry written with Ttl::Never is still there after 400 days");
    assert_eq!(entry.value, bytes("kept"));
    assert_eq!(
        entry.ttl, None,
        "an entry that never expires reports no TTL"
    );
    assert_eq!(entry.remaining_ttl(), Ttl::Never);
}

/// `invalidate_pattern` removes exactly the matching keys and counts them.
pub async fn invalidate_pattern_removes_exactly_the_matches(subject: &Subject) {
    let tier = &subject.tier;
    let keys = [
        "policy_read",
        "policy_write",
        "policy_",
        "policy-x",
        "xpolicy_a",
        "poli",
        "p\u{e9}licy_1",
        "cgl_64",
        "cgl_128",
        "star*key",
    ];
    for key in keys {
        write(tier, key, bytes(key), None).await;
    }
    let invalidate = |pattern: &'static str| {
        let tier = Arc::clone(tier);
        async move {
            let pattern = Pattern::new(pattern).expect("valid pattern");
            tier.invalidate_pattern(&pattern).await.expect("invalidate")
        }
    };
    assert_eq!(invalidate("policy_*").await, 3);
    assert_eq!(invalidate("cgl_[0-9]?").await, 1, "cgl_64 only");
    assert_eq!(
        invalidate("p?licy_*").await,
        1,
        "'?' matches the one character '\u{e9}'"
    );
    assert_eq!(invalidate("star\\*key").await, 1);
    assert_eq!(invalidate("nothing*matches").await, 0);
    let survivors = ["policy-x", "xpolicy_a", "poli", "cgl_128"];
    for key in keys {
        let expected = survivors.contains(&key).then(|| bytes(key));
        assert_eq!(read(tier, key).await, expected, "key {key:?}");
    }
}

/// `clear` removes every entry and counts them.
pub async fn clear_removes_everything(subject: &Subject) {
    let tier = &subject.tier;
    for index in 0..20 {
        write(
            tier,
            &format!("conformance:clear:{index}"),
            bytes("v"),
            None,
        )
        .await;
    }
    assert_eq!(tier.clear().await.expect("clear"), 20);
    for index in 0..20 {
        assert_eq!(
            read(tier, &format!("conformance:clear:{index}")).await,
            None
        );
    }
    write(tier, "conformance:after-clear", bytes("usable"), None).await;
    assert_eq!(
        read(tier, "conformance:after-clear").await,
        Some(bytes("usable"))
    );
}

/// A 1 MiB incompressible value and a 1 MiB compressible one read back intact.
pub async fn large_values_roundtrip(subject: &Subject) {
    let tier = &subject.tier;
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let noise: Vec<u8> = (0..1 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let noise = Bytes::from(noise);
    let zeros = Bytes::from(vec![0_u8; 1 << 20]);
    write(tier, "conformance:noise", noise.clone(), None).await;
    write(tier, "conformance:zeros", zeros.clone(), None).await;
    assert_eq!(read(tier, "conformance:noise").await, Some(noise));
    assert_eq!(read(tier, "conformance:zeros").await, Some(zeros));
}

/// Empty values are values, not misses; keys may be any UTF-8, up to 4096 bytes.
pub async fn empty_values_and_unicode_keys_roundtrip(subject: &Subject) {
    let tier = &subject.tier;
    write(tier, "conformance:empty", Bytes::new(), None).await;
    assert_eq!(read(tier, "conformance:empty").await, Some(Bytes::new()));
    for key in [
        "\u{1f600}",
        "cl\u{e9} \u{4e2d}\u{6587}",
        "with space",
        "a/../../etc/passwd",
        "nul\0byte",
    ] {
        write(tier, key, bytes(key), None).await;
        assert_eq!(read(tier, key).await, Some(bytes(key)), "key {key:?}");
    }
    let longest = "k".repeat(crate::MAX_KEY_LEN);
    write(tier, &longest, bytes("long key"), None).await;
    assert_eq!(read(tier, &longest).await, Some(bytes("long key")));
}

/// Empty and oversized keys are typed errors on every operation, and the tier keeps working.
pub async fn invalid_keys_are_rejected_and_the_tier_stays_usable(subject: &Subject) {
    let tier = &subject.tier;
    let too_long = "k".repeat(crate::MAX_KEY_LEN + 1);
    for key in ["", too_long.as_str()] {
        let is_invalid_key = |error: CacheError| matches!(error, CacheError::InvalidKey { .. });
        assert!(is_invalid_key(
            tier.get(key).await.expect_err("get with a bad key")
        ));
        assert!(is_invalid_key(
            tier.set(key, bytes("v"), Ttl::Default)
                .await
                .expect_err("set with a bad key")
        ));
        assert!(is_invalid_key(
            tier.delete(key).await.expect_err("delete with a bad key")
        ));
    }
    write(tier, "conformance:still-works", bytes("yes"), None).await;
    assert_eq!(
        read(tier, "conformance:still-works").await,
        Some(bytes("yes"))
    );
}

/// A zero TTL is an error, and the earlier value stays.
pub async fn invalid_ttls_are_rejected_and_nothing_changes(subject: &Subject) {
    let tier = &subject.tier;
    write(tier, "conformance:ttl-key", bytes("original"), None).await;
    for ttl in [Duration::ZERO, crate::MAX_TTL + Duration::from_secs(1)] {
        let error = tier
            .set("conformance:ttl-key", bytes("replacement"), Ttl::After(ttl))
            .await
            .expect_err("an invalid TTL is refused");
        assert!(matches!(error, CacheError::InvalidTtl { .. }), "{error}");
    }
    assert_eq!(
        read(tier, "conformance:ttl-key").await,
        Some(bytes("original"))
    );
}

/// 32 tasks write and read 16 shared keys concurrently; every read sees a value that some task
/// wrote for that very key, and each key ends with one of its values.
pub async fn concurrent_tasks_see_only_written_values(subject: &Subject) {
    let tier = &subject.tier;
    const TASKS: usize = 32;
    const OPERATIONS: usize = 200;
    const KEYS: usize = 16;
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let tier = Arc::clone(&subject.tier);
        handles.push(tokio::spawn(async move {
            for operation in 0..OPERATIONS {
                let key = format!("conformance:shared:{}", (task * 7 + operation) % KEYS);
                if operation % 3 == 0 {
                    let value = format!("{key}={task}:{operation}");
                    write(&tier, &key, bytes(&value), None).await;
                } else if operation % 17 == 0 {
                    tier.delete(&key).await.expect("delete");
                } else if let Some(value) = read(&tier, &key).await {
                    let text = std::str::from_utf8(&value).expect("values are UTF-8");
                    assert!(
                        text.starts_with(&format!("{key}=")),
                        "read {text:?} under {key:?}"
                    );
                }
            }
        }));
    }
    for handle in handles {
        handle.await.expect("a task panicked");
    }
    for key in 0..KEYS {
        let key = format!("conformance:shared:{key}");
        write(tier, &key, bytes(&format!("{key}=final")), None).await;
        assert_eq!(read(tier, &key).await, Some(bytes(&format!("{key}=final"))));
    }
}

/// Stats count reads and writes. (Gauges such as `entries` are not checked: a networked tier
/// may not know them.)
pub async fn stats_count_hits_misses_and_inserts(subject: &Subject) {
    let tier = &subject.tier;
    let before = tier.stats();
    assert_eq!(read(tier, "conformance:stats").await, None);
    write(tier, "conformance:stats", bytes("v"), None).await;
    assert_eq!(read(tier, "conformance:stats").await, Some(bytes("v")));
    let after = tier.stats();
    assert_eq!(after.misses - before.misses, 1, "{after:?}");
    assert_eq!(after.hits - before.hits, 1, "{after:?}");
    assert_eq!(after.inserts - before.inserts, 1, "{after:?}");
}
