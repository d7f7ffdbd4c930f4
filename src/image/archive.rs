//! Streams a Manifest as cpio newc into a compressor: Manifest → cpio →
//! compressor → `out`, with no staging directory.
//!
//! The whole manifest is checked first (sizes, names, times, device
//! numbers), so a file the format cannot hold fails the build before a byte
//! is written. Then a few reader threads open, read and sha256 the host files
//! in manifest order, each into its own bounded queue, while the calling
//! thread frames the entries and feeds the compressor (whose own workers
//! compress in parallel). Memory in flight is bounded by
//! `readers × (QUEUE_DEPTH + 1) × CHUNK`.
//!
//! The output is a function of the manifest and the host files' contents
//! only: entries in manifest order, inode numbers counted from
//! [`FIRST_INO`], and compressors whose output does not depend on timing or
//! thread count (see `compress.rs`).
//!
//! Hard links: the files of one hard-link group (same host `link_key`) share
//! one inode number and carry c_nlink = the number of them in the image; the
//! data is written once, with the **last** of them in archive order, the
//! others having c_filesize 0. This is the layout GNU cpio and the kernel's
//! usr/gen_init_cpio write ("data goes on last link"), so it is the one both
//! extractors were written for:
//! - the kernel (init/initramfs.c do_name/maybe_link) creates the first name
//!   empty and records (c_maj, c_min, c_ino); each later name is link(2)ed to
//!   it and, when it has data, the file is truncated to c_filesize and
//!   written through the link (buffer-format.rst, "Handling of hard links":
//!   the data-carrying instance may be anywhere);
//! - GNU cpio -i (copyin.c copyin_regular_file) defers a c_nlink > 1 entry
//!   whose c_filesize is 0 and links it when the entry with data arrives.
//!
//! Data on the first name would unpack too (checked with GNU cpio 2.13),
//! but GNU cpio then only links the other names in create_final_defers(),
//! its fallback for groups whose data never came, after the whole archive
//! has been read; data on the last name keeps both extractors on their
//! main path.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::Compression;
use crate::image::compress::Encoder;
use crate::image::cpio;
use crate::image::{Kind, Manifest};

/// Inode number of the first entry; the others follow in manifest order.
/// 0 is left to the trailer, which GNU cpio and gen_init_cpio write with
/// c_ino 0.
pub const FIRST_INO: u32 = 1;

/// Largest buffer a reader sends at once: big enough that per-chunk costs
/// (a channel message, a compressor call) vanish, small enough that a huge
/// file streams instead of being held whole.
const CHUNK: usize = 1 << 20;

/// Messages each reader may have queued ahead of the writer. With
/// [`MAX_READERS`] readers and 1 MiB chunks, at most ~68 MiB of file data is
/// in memory at once.
const QUEUE_DEPTH: usize = 16;

/// Reader threads. Reading from the page cache is fast; they mostly overlap
/// opening, reading and hashing of the next files with compression, and a
/// few requests in flight help on a cold disk.
const MAX_READERS: usize = 4;

/// Highest device major/minor the kernel keeps: do_header() builds the
/// device with MKDEV(c_rmaj, c_rmin), a 12-bit major and a 20-bit minor
/// (include/linux/kdev_t.h, MINORBITS = 20).
const MAX_MAJOR: u32 = (1 << 12) - 1;
const MAX_MINOR: u32 = (1 << 20) - 1;

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
///
/// Every regular file's data moves `progress` forward by its size (a hard
/// link counts its size too, though its data is stored once), so a bar whose
/// length is the sum of the manifest's file sizes ends full.
pub fn write_initrd<W: Write + Send>(
    manifest: &Manifest,
    compression: Compression,
    level: Option<u32>,
    out: W,
    progress: &indicatif::ProgressBar,
) -> Result<ArchiveReport> {
    let Plan {
        entries,
        jobs,
        mut records,
    } = plan(manifest)?;

    let mut counted = Counting {
        inner: out,
        count: 0,
    };
    let encoder = Encoder::new(&mut counted, compression, level)?;
    let mut archive = cpio::Writer::new(encoder);

    let readers = reader_count(jobs.len());
    std::thread::scope(|s| -> Result<()> {
        let mut queues = Vec::with_capacity(readers);
        for first in 0..readers {
            let (tx, rx) = sync_channel(QUEUE_DEPTH);
            let jobs = &jobs;
            std::thread::Builder::new()
                .name(format!("initrd-read-{first}"))
                .spawn_scoped(s, move || read_jobs(jobs, first, readers, tx))
                .context("starting a file reader thread")?;
            queues.push(rx);
        }
        // Returning drops the queues, which stops readers still running
        // (their next send fails) before the scope joins them.
        write_entries(&entries, &mut records, queues, &mut archive, progress)
    })?;

    let (encoder, cpio_bytes) = archive.finish().context("writing the initrd")?;
    let counted = encoder.finish()?;
    counted.flush().context("writing the initrd")?;
    Ok(ArchiveReport {
        files: records,
        cpio_bytes,
        compressed_bytes: counted.count,
    })
}

/// Every entry of the manifest, ready to write.
struct Plan<'m> {
    entries: Vec<Planned<'m>>,
    /// Host files to read, in archive order.
    jobs: Vec<Job<'m>>,
    /// One per regular file, in archive order; sha256 filled while writing.
    records: Vec<FileRecord>,
}

struct Planned<'m> {
    path: &'m Path,
    name: &'m [u8],
    header: cpio::Header,
    body: Body<'m>,
}

enum Body<'m> {
    /// Directories and devices: nothing after the name.
    Empty,
    /// A symlink's target.
    Target(&'m [u8]),
    /// Generated content.
    Bytes { data: &'m [u8], record: usize },
    /// A hard link whose data comes with a later name of its inode.
    LinkOnly { size: u64 },
    /// A host file's data, read by `job`; its sha256 belongs to `records`
    /// (the file's own and those of earlier hard links to it).
    Host { job: usize, records: Vec<usize> },
}

struct Job<'m> {
    path: &'m Path,
    source: &'m Path,
    size: u64,
}

/// What the files of one hard-link group share. Files with the same host
/// inode but different metadata (or a size that changed between being
/// added) are not linked: each keeps its own inode and data, so no
/// extractor has to pick whose mode wins.
#[derive(Hash, PartialEq, Eq)]
struct LinkKey {
    host: (u64, u64),
    size: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
}

#[derive(Default)]
struct Group {
    members: u32,
    seen: u32,
    ino: u32,
    records: Vec<usize>,
}

fn plan(manifest: &Manifest) -> Result<Plan<'_>> {
    let link_key = |e: &crate::image::Entry| match &e.kind {
        Kind::File {
            link_key: Some(host),
            size,
            ..
        } => Some(LinkKey {
            host: *host,
            size: *size,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            mtime: e.mtime,
        }),
        _ => None,
    };
    let mut groups: HashMap<LinkKey, Group> = HashMap::new();
    for (_, e) in manifest.iter() {
        if let Some(k) = link_key(e) {
            groups.entry(k).or_default().members += 1;
        }
    }

    let mut entries = Vec::with_capacity(manifest.len());
    let mut jobs = Vec::new();
    let mut records = Vec::new();
    let mut next_ino = FIRST_INO;
    let mut new_ino = |path: &Path| -> Result<u32> {
        let ino = next_ino;
        next_ino = next_ino
            .checked_add(1)
            .ok_or_else(|| anyhow!("too many entries for cpio at {}", path.display()))?;
        Ok(ino)
    };

    for (path, e) in manifest.iter() {
        let name = archive_name(path)?;
        let mtime = u32::try_from(e.mtime).map_err(|_| {
            anyhow!(
                "{}: mtime {} is past 2106, which cpio newc's 32-bit c_mtime cannot hold; set SOURCE_DATE_EPOCH",
                path.display(),
                e.mtime
            )
        })?;
        let mut header = cpio::Header {
            ino: 0,
            // c_mode "matches the contents of st_mode" (buffer-format.rst):
            // file type bits plus permissions, setuid/setgid/sticky included.
            mode: e.type_bits() | (e.mode & 0o7777),
            uid: e.uid,
            gid: e.gid,
            nlink: 1,
            mtime,
            filesize: 0,
            rdev_major: 0,
            rdev_minor: 0,
        };
        let mut ino = None;
        let body = match &e.kind {
            Kind::Dir => {
                // Its name and its own "."; the kernel ignores c_nlink for
                // directories, GNU cpio and gen_init_cpio write 2 as well.
                header.nlink = 2;
                Body::Empty
            }
            Kind::Symlink { target } => {
                let target = target.as_os_str().as_bytes();
                // "c_filesize must not be zero for a symlink"
                // (buffer-format.rst); the kernel skips longer bodies.
                if target.is_empty() || target.len() > cpio::SYMLINK_MAX {
                    bail!(
                        "symlink {} has a target of {} bytes; the kernel accepts 1 to {}",
                        path.display(),
                        target.len(),
                        cpio::SYMLINK_MAX
                    );
                }
                header.filesize = target.len() as u32;
                Body::Target(target)
            }
            Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } => {
                if *major > MAX_MAJOR || *minor > MAX_MINOR {
                    bail!(
                        "device {} is {major}:{minor}; the kernel's initramfs unpacker keeps majors up to {MAX_MAJOR} and minors up to {MAX_MINOR}",
                        path.display()
                    );
                }
                header.rdev_major = *major;
                header.rdev_minor = *minor;
                Body::Empty
            }
            Kind::Bytes { data } => {
                header.filesize = file_size(path, None, data.len() as u64)?;
                records.push(FileRecord {
                    path: path.clone(),
                    source: None,
                    size: data.len() as u64,
                    sha256: String::new(),
                });
                Body::Bytes {
                    data,
                    record: records.len() - 1,
                }
            }
            Kind::File { source, size, .. } => {
                let filesize = file_size(path, Some(source), *size)?;
                records.push(FileRecord {
                    path: path.clone(),
                    source: Some(source.clone()),
                    size: *size,
                    sha256: String::new(),
                });
                let record = records.len() - 1;
                let group = link_key(e)
                    .and_then(|k| groups.get_mut(&k))
                    .filter(|g| g.members > 1);
                let mut job = || {
                    jobs.push(Job {
                        path,
                        source,
                        size: *size,
                    });
                    jobs.len() - 1
                };
                match group {
                    None => {
                        header.filesize = filesize;
                        Body::Host {
                            job: job(),
                            records: vec![record],
                        }
                    }
                    Some(g) => {
                        if g.seen == 0 {
                            g.ino = new_ino(path)?;
                        }
                        ino = Some(g.ino);
                        g.seen += 1;
                        g.records.push(record);
                        header.nlink = g.members;
                        if g.seen == g.members {
                            header.filesize = filesize;
                            Body::Host {
                                job: job(),
                                records: std::mem::take(&mut g.records),
                            }
                        } else {
                            Body::LinkOnly { size: *size }
                        }
                    }
                }
            }
        };
        header.ino = match ino {
            Some(i) => i,
            None => new_ino(path)?,
        };
        entries.push(Planned {
            path,
            name,
            header,
            body,
        });
    }
    Ok(Plan {
        entries,
        jobs,
        records,
    })
}

/// The name of an image path inside the archive: its bytes without the
/// leading `/` (`/usr/bin/bash` → `usr/bin/bash`), as GNU cpio writes
/// relative names and the kernel unpacks them relative to `/`. No UTF-8 is
/// assumed.
fn archive_name(path: &Path) -> Result<&[u8]> {
    let bytes = path.as_os_str().as_bytes();
    let name = bytes.strip_prefix(b"/").unwrap_or(bytes);
    if name.is_empty() || name.contains(&0) {
        bail!("image path {} cannot be stored in cpio", path.display());
    }
    if name.len() + 1 > cpio::PATH_MAX {
        bail!(
            "image path {} is {} bytes long; the kernel skips names longer than PATH_MAX ({} bytes with the final NUL)",
            path.display(),
            name.len(),
            cpio::PATH_MAX
        );
    }
    Ok(name)
}

/// c_filesize for a file of `size` bytes: a 32-bit field.
fn file_size(path: &Path, source: Option<&Path>, size: u64) -> Result<u32> {
    u32::try_from(size).map_err(|_| {
        let from = source
            .map(|s| format!(" (from {})", s.display()))
            .unwrap_or_default();
        anyhow!(
            "{}{from} is {size} bytes; cpio newc, the initramfs format, cannot hold files of 4 GiB or more",
            path.display()
        )
    })
}

/// What a reader sends for one file: its data in order, then its sha256.
enum Piece {
    Data(Vec<u8>),
    Done(String),
    Failed(anyhow::Error),
}

fn reader_count(jobs: usize) -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    cores.clamp(2, MAX_READERS).min(jobs)
}

/// Reader `first` of `step`: reads jobs first, first + step, ... in order.
/// Each reader handles its files in archive order and the writer consumes
/// them in archive order, so the writer only ever waits on the queue of the
/// file it needs next, and that reader is working on that very file: no
/// deadlock, whatever the queue depth.
fn read_jobs(jobs: &[Job], first: usize, step: usize, tx: SyncSender<Piece>) {
    for job in jobs.iter().skip(first).step_by(step) {
        let sent = match read_file(job, &tx) {
            Ok(Some(hash)) => tx.send(Piece::Done(hash)),
            Ok(None) => return,
            Err(e) => tx.send(Piece::Failed(e)),
        };
        if sent.is_err() {
            // The writer stopped (an error elsewhere): nobody reads on.
            return;
        }
    }
}

/// Reads and hashes one host file, sending its data in chunks. Ok(None) if
/// the writer stopped listening.
fn read_file(job: &Job, tx: &SyncSender<Piece>) -> Result<Option<String>> {
    let src = job.source;
    let reading = || format!("reading {} for {}", src.display(), job.path.display());
    let mut f = File::open(src).with_context(reading)?;
    let now = f.metadata().with_context(reading)?.len();
    if now != job.size {
        return Err(changed(job, &format!("now {now}")));
    }
    let mut hasher = Sha256::new();
    let mut left = job.size;
    while left > 0 {
        let want = left.min(CHUNK as u64);
        let mut buf = Vec::with_capacity(want as usize);
        (&mut f)
            .take(want)
            .read_to_end(&mut buf)
            .with_context(reading)?;
        if (buf.len() as u64) < want {
            let got = job.size - left + buf.len() as u64;
            return Err(changed(job, &format!("but reading it ended after {got}")));
        }
        hasher.update(&buf);
        left -= want;
        if tx.send(Piece::Data(buf)).is_err() {
            return Ok(None);
        }
    }
    // One more byte means it grew after the size check.
    let mut probe = [0u8; 1];
    let extra = loop {
        match f.read(&mut probe) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(reading),
        }
    };
    if extra != 0 {
        return Err(changed(job, "now more"));
    }
    Ok(Some(hex::encode(hasher.finalize())))
}

fn changed(job: &Job, now: &str) -> anyhow::Error {
    anyhow!(
        "{} (for {}) changed while building the image: it had {} bytes when it was added, {now}; run again",
        job.source.display(),
        job.path.display(),
        job.size
    )
}

/// Writes every entry in order, taking host file data from the readers'
/// queues (job `j` is on queue `j % queues.len()`).
fn write_entries<W: Write>(
    entries: &[Planned],
    records: &mut [FileRecord],
    queues: Vec<Receiver<Piece>>,
    archive: &mut cpio::Writer<W>,
    progress: &indicatif::ProgressBar,
) -> Result<()> {
    for p in entries {
        let writing = || format!("writing {} to the initrd", p.path.display());
        archive.start(p.name, &p.header).with_context(writing)?;
        match &p.body {
            Body::Empty => {}
            Body::Target(target) => archive.write_data(target).with_context(writing)?,
            Body::Bytes { data, record } => {
                archive.write_data(data).with_context(writing)?;
                records[*record].sha256 = hex::encode(Sha256::digest(data));
                progress.inc(data.len() as u64);
            }
            Body::LinkOnly { size } => progress.inc(*size),
            Body::Host { job, records: recs } => {
                let queue = &queues[job % queues.len()];
                let hash = loop {
                    match queue.recv() {
                        Ok(Piece::Data(buf)) => {
                            archive.write_data(&buf).with_context(writing)?;
                            progress.inc(buf.len() as u64);
                        }
                        Ok(Piece::Done(hash)) => break hash,
                        Ok(Piece::Failed(e)) => return Err(e),
                        Err(_) => bail!("reading {}: the reader thread stopped", p.path.display()),
                    }
                };
                for &r in recs {
                    records[r].sha256.clone_from(&hash);
                }
            }
        }
        archive.end().with_context(writing)?;
    }
    Ok(())
}

/// Counts the bytes that reach the output.
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
