//! Integration tests of the facade: the manager over real tiers, configuration, single flight.

// In tests a panic is the failure report: helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

#[cfg(feature = "adaptive")]
mod adaptive;
mod config_files;
#[cfg(all(feature = "disk", feature = "redis"))]
mod consistency;
mod disk_tier;
mod manager;
#[cfg(all(feature = "math", feature = "disk"))]
mod math;
#[cfg(all(feature = "redis", feature = "disk", target_os = "linux"))]
mod netfaults;
#[cfg(feature = "policy")]
mod policy;
#[cfg(feature = "warming")]
mod prediction;
#[cfg(feature = "redis")]
mod redis_tier;
#[cfg(feature = "semantic")]
mod semantic;
mod single_flight;
#[cfg(all(feature = "warming", feature = "disk"))]
mod warming;
