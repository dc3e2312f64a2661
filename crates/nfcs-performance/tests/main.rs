//! Integration tests of the facade: the manager over real tiers, configuration, single flight.

mod config_files;
mod manager;
mod single_flight;
