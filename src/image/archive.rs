//! Streams a Manifest as cpio newc into a compressor.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::config::Compression;
use crate::image::Manifest;

/// One regular file as written into the archive.
#[derive(Debug, Clone, Serialize)]
pub struct FileRecord {
    /// Image path (absolute).
    pub path: PathBuf,
    /// Host file it was read from; None for generated content.
    pub source: Option<PathBuf>,
    pub size: u64,
    /// sha256 of the bytes written, lowercase hex.
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArchiveReport {
    /// Every regular file, in archive order.
    pub files: Vec<FileRecord>,
    /// Size of the cpio stream before compression.
    pub cpio_bytes: u64,
    /// Size after compression.
    pub compressed_bytes: u64,
}

/// Writes `manifest` as a cpio newc archive compressed with `compression`
/// into `out`. Files are read in parallel, hashed while they stream, and a
/// file whose size changed since it was added is an error naming it.
pub fn write_initrd<W: Write + Send>(
    manifest: &Manifest,
    compression: Compression,
    level: Option<u32>,
    out: W,
    progress: &indicatif::ProgressBar,
) -> Result<ArchiveReport> {
    let _ = (manifest, compression, level, out, progress);
    todo!("image::archive::write_initrd")
}
