//! The load engine: virtual users (closed model) and arrivals (open model) against a `Target`.
