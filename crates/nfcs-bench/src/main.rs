//! The `nfcs-bench` command line.

fn main() {}
