//! Initrd compressors and the check that the target kernel can unpack them.
//!
//! [`Encoder`] wraps the output in the chosen compressor; every choice is
//! made so that the bytes are (a) something the kernel's own decompressor in
//! lib/decompress_*.c accepts and (b) the same on every run and every machine,
//! whatever its core count: the image is checksummed and compared between
//! builds.

use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};

use crate::config::Compression;
use crate::error::{Code, fail};

/// zstd level when none is configured: `zstd`'s own default, fast enough to
/// compress a ~150 MB image in well under a second per core.
pub const ZSTD_DEFAULT_LEVEL: u32 = 3;
/// Highest zstd level we accept. 20-22 ("--ultra") raise the window to
/// 32-128 MiB, which the kernel's decompressor would have to allocate at
/// boot for little gain.
pub const ZSTD_MAX_LEVEL: u32 = 19;

/// xz preset when none is configured: 6 is `xz`'s own default and what
/// Debian's initramfs-tools uses for xz initrds (`xz --check=crc32`), so its
/// 8 MiB dictionary is known to unpack at boot (initramfs is decoded in
/// multi-call mode, which allocates the dictionary it needs; the 1 MiB advice
/// in the kernel's Documentation/staging/xz.rst is about the general case and
/// says "maybe more is OK for initramfs"). Presets 0-3 compress 2-3x faster
/// and ~10% larger on a rescue image (measured on modules + /usr/bin): a user
/// who picked xz picked it for size, and can lower `compress_level`.
pub const XZ_DEFAULT_PRESET: u32 = 6;

/// gzip level when none is configured: gzip's own default.
pub const GZIP_DEFAULT_LEVEL: u32 = 6;

/// Most compression threads we start. zstd cuts a level-3 stream into 8 MiB
/// jobs (4 x its 2 MiB window), so a ~150 MB image has ~19 jobs: more
/// workers than this would mostly sit idle while each holding its own job
/// buffers (tens of MiB at high levels).
pub const MAX_THREADS: u32 = 8;

/// Memory the xz multi-threaded encoder may use; liblzma runs fewer threads
/// when `threads` x (encoder + block buffers, ~140 MiB at preset 6) would
/// exceed it. The output does not depend on the thread count.
const XZ_MEMLIMIT_THREADING: u64 = 1 << 30;

/// The human name of a compression, as on the command line.
pub fn name(c: Compression) -> &'static str {
    match c {
        Compression::Zstd => "zstd",
        Compression::Xz => "xz",
        Compression::Gzip => "gzip",
        Compression::None => "none",
    }
}

/// Threads for the compressor: every core the process may use, up to
/// [`MAX_THREADS`]. Never 0, so zstd and xz always run their multi-threaded
/// encoders, whose output is the same for any number of threads (zstd:
/// facebook/zstd#2238, #2327 for the streaming API we use; xz: the block
/// size, not the thread count, decides where blocks are cut) but differs from
/// their single-threaded encoders. A 1-core machine therefore builds the
/// same bytes as a 64-core one.
pub fn default_threads() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, MAX_THREADS as usize) as u32
}

/// A compressing writer. Call [`Encoder::finish`] at the end: dropping it
/// leaves a truncated stream. Do not `flush()` it in the middle: that ends
/// the current zstd job or xz block early, so the bytes would then depend on
/// when it was called (write_initrd never does).
pub struct Encoder<W: Write> {
    inner: Inner<W>,
}

enum Inner<W: Write> {
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Xz(liblzma::write::XzEncoder<W>),
    Gzip(flate2::write::GzEncoder<W>),
    None(W),
}

impl<W: Write> Encoder<W> {
    /// A compressor for `c` at `level` (its default when None) writing to
    /// `out`, using [`default_threads`].
    pub fn new(out: W, c: Compression, level: Option<u32>) -> Result<Self> {
        Self::with_threads(out, c, level, default_threads())
    }

    /// As [`Encoder::new`] with an explicit thread count (≥ 1; tests use it
    /// to prove the output does not depend on it). gzip is single-threaded.
    pub fn with_threads(out: W, c: Compression, level: Option<u32>, threads: u32) -> Result<Self> {
        let level = check_level(c, level)?;
        let threads = threads.max(1);
        let inner = match c {
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(out, level as i32)
                    .context("starting the zstd compressor")?;
                // The content checksum (XXH64 of the whole stream) is what the
                // zstd CLI writes by default; the kernel's zstd library
                // verifies it, so a corrupted initrd fails loudly at boot
                // instead of unpacking garbage.
                e.include_checksum(true)
                    .context("enabling the zstd checksum")?;
                e.multithread(threads)
                    .context("starting the zstd worker threads")?;
                Inner::Zstd(e)
            }
            Compression::Xz => {
                let stream = liblzma::stream::MtStreamBuilder::new()
                    .preset(level)
                    // The kernel's XZ Embedded decoder checks CRC32 or
                    // nothing; a CRC64/SHA-256 stream (the xz default) is
                    // rejected at boot (Documentation/staging/xz.rst, "Notes
                    // on compression options").
                    .check(liblzma::stream::Check::Crc32)
                    .threads(threads)
                    .memlimit_threading(XZ_MEMLIMIT_THREADING)
                    .encoder()
                    .context("starting the xz compressor")?;
                Inner::Xz(liblzma::write::XzEncoder::new_stream(out, stream))
            }
            // GzBuilder's header has mtime 0, no file name and OS 255
            // ("unknown", RFC 1952 section 2.3.1): nothing that varies
            // between builds or hosts.
            Compression::Gzip => {
                Inner::Gzip(flate2::GzBuilder::new().write(out, flate2::Compression::new(level)))
            }
            Compression::None => Inner::None(out),
        };
        Ok(Encoder { inner })
    }

    /// Ends the stream (trailers, checksums) and hands back the writer.
    pub fn finish(self) -> Result<W> {
        let w = match self.inner {
            Inner::Zstd(e) => e.finish().context("finishing the zstd stream")?,
            Inner::Xz(e) => e.finish().context("finishing the xz stream")?,
            Inner::Gzip(e) => e.finish().context("finishing the gzip stream")?,
            Inner::None(w) => w,
        };
        Ok(w)
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Zstd(e) => e.write(buf),
            Inner::Xz(e) => e.write(buf),
            Inner::Gzip(e) => e.write(buf),
            Inner::None(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.inner {
            Inner::Zstd(e) => e.write_all(buf),
            Inner::Xz(e) => e.write_all(buf),
            Inner::Gzip(e) => e.write_all(buf),
            Inner::None(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Zstd(e) => e.flush(),
            Inner::Xz(e) => e.flush(),
            Inner::Gzip(e) => e.flush(),
            Inner::None(w) => w.flush(),
        }
    }
}

/// The level to use for `c`: the configured one if it is in range, else the
/// default. An out-of-range level is a configuration error.
pub fn check_level(c: Compression, level: Option<u32>) -> Result<u32> {
    let (default, range) = match c {
        Compression::Zstd => (ZSTD_DEFAULT_LEVEL, 1..=ZSTD_MAX_LEVEL),
        Compression::Xz => (XZ_DEFAULT_PRESET, 0..=9),
        Compression::Gzip => (GZIP_DEFAULT_LEVEL, 1..=9),
        Compression::None => (0, 0..=u32::MAX),
    };
    match level {
        None => Ok(default),
        Some(l) if range.contains(&l) => Ok(l),
        Some(l) => Err(fail(
            Code::Config,
            format!(
                "build.compress_level {l} is out of range for {} (use {}-{})",
                name(c),
                range.start(),
                range.end()
            ),
        )),
    }
}

/// The kernel option that lets it unpack an initrd compressed with `c`
/// (init/Kconfig; initramfs is unpacked before any module can load, so only
/// built-in `=y` counts). None needs nothing.
fn kernel_option(c: Compression) -> Option<&'static str> {
    match c {
        Compression::Zstd => Some("CONFIG_RD_ZSTD"),
        Compression::Xz => Some("CONFIG_RD_XZ"),
        Compression::Gzip => Some("CONFIG_RD_GZIP"),
        Compression::None => None,
    }
}

/// Errors (exit code 4) when the kernel config at `kernel_config`
/// (`/boot/config-KVER`) lacks the `CONFIG_RD_*` option for `c`.
pub fn check_kernel_support(kernel_config: &Path, c: Compression) -> Result<()> {
    let Some(option) = kernel_option(c) else {
        return Ok(());
    };
    let text = std::fs::read(kernel_config)
        .with_context(|| format!("reading kernel config {}", kernel_config.display()))?;
    let enabled = |opt: &str| {
        let want = format!("{opt}=y");
        text.split(|&b| b == b'\n')
            .any(|line| line.trim_ascii() == want.as_bytes())
    };
    if enabled(option) {
        return Ok(());
    }
    // Suggest the fastest one it has, then list the rest; an uncompressed
    // initrd always works.
    let supported: Vec<&str> = [Compression::Zstd, Compression::Gzip, Compression::Xz]
        .into_iter()
        .filter(|&o| o != c && kernel_option(o).is_some_and(&enabled))
        .chain([Compression::None])
        .map(name)
        .collect();
    let kernel = kernel_config
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("config-"))
        .map(str::to_string)
        .unwrap_or_else(|| format!("of {}", kernel_config.display()));
    let mut msg = format!(
        "kernel {kernel} cannot unpack a {} initrd: {} lacks {option}=y; use --compress {}",
        name(c),
        kernel_config.display(),
        supported[0]
    );
    if supported.len() > 1 {
        msg.push_str(&format!(
            " (or another the kernel supports: {})",
            supported[1..].join(", ")
        ));
    }
    Err(fail(Code::Host, msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_checked() {
        assert_eq!(check_level(Compression::Zstd, None).unwrap(), 3);
        assert_eq!(check_level(Compression::Xz, Some(0)).unwrap(), 0);
        let e = check_level(Compression::Zstd, Some(20)).unwrap_err();
        assert_eq!(crate::error::code_of(&e), Code::Config);
        assert!(e.to_string().contains("zstd (use 1-19)"), "{e}");
        assert!(check_level(Compression::Gzip, Some(0)).is_err());
    }
}
