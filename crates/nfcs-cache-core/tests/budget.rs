//! The byte budget against the allocator: a budget of N bytes must mean about N bytes of heap.
//!
//! A counting global allocator records, per thread, the heap this thread holds (each
//! allocation rounded up to the chunk glibc's malloc would use for it), so the test can fill a
//! cache on one thread and compare what the cache charged with what the heap paid.

#![allow(unsafe_code)] // GlobalAlloc is an unsafe trait; see the SAFETY comments.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use nfcs_cache_core::{Bytes, EvictionPolicy, MemoryCache, MemoryConfig};

struct CountingAllocator;

thread_local! {
    static HELD: Cell<i64> = const { Cell::new(0) };
}

/// The chunk glibc's malloc uses for a request: 8 bytes of header, 16-byte alignment, at least 32.
fn chunk(size: usize) -> i64 {
    ((size + 8 + 15) & !15).max(32) as i64
}

fn adjust(delta: i64) {
    // `try_with` fails only while the thread is being torn down; those bytes do not matter.
    let _ = HELD.try_with(|held| held.set(held.get() + delta));
}

// SAFETY: every method forwards to the system allocator with the caller's arguments, so the
// GlobalAlloc contract holds exactly as it does for `System`; the bookkeeping touches only a
// const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        adjust(chunk(layout.size()));
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        adjust(-chunk(layout.size()));
        // SAFETY: forwarded unchanged; `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        adjust(chunk(new_size) - chunk(layout.size()));
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn held() -> i64 {
    HELD.with(Cell::get)
}

/// Fills a cache on this thread and returns (bytes charged, bytes the heap holds for it).
fn fill(
    policy: EvictionPolicy,
    entries: usize,
    value_len: usize,
    ttl: Option<Duration>,
) -> (u64, i64) {
    let before = held();
    let cache = MemoryCache::with_config(MemoryConfig::new(1 << 30).eviction_policy(policy))
        .expect("a valid budget");
    for index in 0..entries {
        let value = Bytes::from(vec![index as u8; value_len]);
        cache
            .insert(&format!("key:{index:07}"), value, ttl)
            .expect("fits");
    }
    // Reads turn each value's first clone into a shared handle, as a warm cache's would be.
    for index in 0..entries {
        let _ = cache.get(&format!("key:{index:07}")).expect("valid key");
    }
    let charged = cache.weighted_size();
    let heap = held() - before;
    drop(cache);
    (charged, heap)
}

#[test]
fn budget_matches_the_allocator() {
    let mut failures = Vec::new();
    for policy in [EvictionPolicy::Lru, EvictionPolicy::S3Fifo] {
        for (value_len, ttl, entries) in [
            // Entry counts on both sides of hash table and arena growth steps.
            (64, None, 60_000),
            (64, None, 150_000),
            (64, None, 230_000),
            (64, Some(Duration::from_secs(3600)), 60_000),
            (64, Some(Duration::from_secs(3600)), 150_000),
            (1024, None, 100_000),
        ] {
            let (charged, heap) = fill(policy, entries, value_len, ttl);
            let ratio = heap as f64 / charged as f64;
            println!(
                "{policy} value {value_len} ttl {ttl:?} entries {entries}: charged {charged}, heap {heap}, heap/charged {ratio:.3}, heap per entry beyond key+value {:.1}",
                (heap as f64 / entries as f64) - (11 + value_len) as f64
            );
            if ratio > 1.15 {
                failures.push(format!(
                    "{policy}, {value_len}-byte values, TTL {ttl:?}: the heap holds {ratio:.2}x what the budget charges"
                ));
            }
            if ratio < 0.8 {
                failures.push(format!(
                    "{policy}, {value_len}-byte values, TTL {ttl:?}: the budget charges far more than the heap holds ({ratio:.2}x)"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
