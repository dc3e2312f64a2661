//! Integration tests of nfcs-cache-core's public API.

mod budget;
