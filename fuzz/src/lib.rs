//! What the fuzz targets share: the reference glob matchers the `pattern` target compares
//! `Pattern` with, and an independent reading of the disk tier's segment layout that the
//! `disk_segment` target uses as its oracle and to repair checksums.
//!
//! Nothing here reaches into the crates' private code: the segment layout is read from its
//! documentation (`crates/nfcs-cache-disk/src/format.rs`), so that the disk tier's own changes
//! never break this crate's build; a layout change only makes the repair less useful.

pub mod glob;
pub mod segment;
