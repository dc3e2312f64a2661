//! The `nfcs-bench` command line (being wired in).

fn main() {}
