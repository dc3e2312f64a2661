//! Integration tests of the Redis tier against real `redis-server` processes.

// In tests a panic is the failure report: helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

mod support;

mod bad_input;
#[cfg(feature = "cluster")]
mod cluster;
mod conformance;
mod cross_node;
mod database;
mod driven_clock;
mod outage;
mod patterns;
mod silent_connection;
mod telemetry;
#[cfg(feature = "tls")]
mod tls;
