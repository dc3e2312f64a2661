//! Allocator statistics (jemalloc, feature `jemalloc`).
