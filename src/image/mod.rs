//! The rescue image: the [`Manifest`] every part of the plan fills, our own
//! cpio newc writer, and the compressors. Hands on one compressed initrd
//! stream plus the list of what went into it.

pub mod archive;
pub mod compress;
pub mod cpio;
pub mod manifest;

pub use archive::{ArchiveReport, FileRecord, write_initrd};
pub use manifest::{Entry, Kind, Layer, Manifest};
