//! Puts an archive's members back under a directory: content, owners
//! (numeric ids, as the restored system's own passwd is what counts),
//! modes including setuid bits, nanosecond mtimes, xattrs (so ACLs and
//! SELinux labels), hard links, sparse files with their holes, device
//! nodes and FIFOs.
//!
//! Order matters and follows chown(2) and xattr(7): chown clears setuid
//! bits and file capabilities, so the owner is set first, then the mode,
//! then the xattrs, then the times (writing data would change them).
//! Directories get their mode and times last, deepest first, so a
//! read-only directory can still be filled and its mtime stays.
//!
//! Damage does not stop a restore: a member whose data is lost is removed
//! (no half file that looks whole), named, and counted, and the rest goes
//! on. With the manifest the members whose headers were lost are named too.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::Read;
use std::io::{Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use super::manifest::{self, Algo, Check, Hasher, Manifest};
use super::pax::{Header, Kind};
use super::reader::{DataError, Event, TarReader};
use super::sys;
use anyhow::Result;
use indicatif::ProgressBar;
use serde::Serialize;

/// Restored file data between two syncs of the target's file systems
/// ([`Syncer`]).
const SYNC_STEP: u64 = 128 << 20;

/// What a restore did.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub entries: u64,
    pub files: u64,
    pub bytes: u64,
    /// Members lost or damaged in the archive, in archive order.
    pub damaged: Vec<String>,
    /// Members that could not be put back (permissions, disk full, ...).
    pub errors: Vec<String>,
}

impl Report {
    pub fn first_bad(&self) -> Option<&str> {
        self.damaged
            .first()
            .or(self.errors.first())
            .map(|s| s.as_str())
    }
}

/// Checks a member name: relative, no `..`, no empty parts.
fn safe_rel(name: &[u8]) -> Option<PathBuf> {
    if name == b"." {
        return Some(PathBuf::new());
    }
    let p = Path::new(OsStr::from_bytes(name));
    let ok = p
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    ok.then(|| p.to_path_buf())
}

struct Ctx<'a> {
    to: &'a Path,
    root: bool,
    symlinks: HashSet<PathBuf>,
    dirs: Vec<(PathBuf, Header)>,
    /// Directories known to exist: their members need no stat(2).
    known_dirs: HashSet<PathBuf>,
    ok: HashSet<Vec<u8>>,
    /// The manifest's members and the digest each file is checked against.
    known: Option<HashMap<Vec<u8>, Option<Check>>>,
    report: Report,
    /// The digest checks under way on the hashing thread, by file number.
    verifier: Verifier,
    expect: HashMap<u64, Expect>,
    next_id: u64,
    /// Hard links made, by the member they point to: removed with it when
    /// its check fails.
    links: HashMap<Vec<u8>, Vec<(PathBuf, Vec<u8>)>>,
    /// Syncs the target while the restore goes on, and at its end.
    syncer: Syncer,
}

/// Syncs the file systems a restore writes to (syncfs(2)) every
/// [`SYNC_STEP`] bytes of file data, on a thread of its own, so the disks
/// write while the rest is decompressed and the final sync has little
/// left. Without it the kernel keeps up to dirty_background_ratio of RAM
/// (gigabytes in a big server) dirty and writes all of it after the last
/// file. A per-file sync_file_range(2) hint, used before, only reached the
/// data of big files, and not at all the disk under a stacked device such
/// as a loop device, whose backing file has a page cache of its own that
/// only a flush (which syncfs ends with) writes out; syncfs covers small
/// files, inodes and the journal too. Measured on the bench's restore:
/// 3.5 s -> 2.9 s (median of 5, sync included).
///
/// The restoring thread never waits for it: a sync still running when the
/// next one is due is simply not repeated.
struct Syncer {
    tx: Option<mpsc::SyncSender<()>>,
    thread: Option<JoinHandle<Vec<String>>>,
    since: u64,
}

impl Syncer {
    /// `fss`: the target and the disk-backed file systems mounted below it.
    fn new(fss: Vec<PathBuf>) -> Self {
        let (tx, rx) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::spawn(move || {
            while rx.recv().is_ok() {
                for fs in &fss {
                    // Errors are reported by the final sync.
                    let _ = sys::syncfs(fs);
                }
            }
            // The final sync, after the last file: done means on disk.
            let mut errors = Vec::new();
            for fs in &fss {
                if let Err(e) = sys::syncfs(fs) {
                    errors.push(format!("syncing {}: {e}", fs.display()));
                }
            }
            errors
        });
        Syncer {
            tx: Some(tx),
            thread: Some(thread),
            since: 0,
        }
    }

    /// Counts `n` more bytes written; starts a sync every [`SYNC_STEP`].
    fn wrote(&mut self, n: u64) {
        self.since += n;
        if self.since >= SYNC_STEP {
            self.since = 0;
            if let Some(tx) = &self.tx {
                let _ = tx.try_send(());
            }
        }
    }

    /// The final sync; returns its errors.
    fn finish(&mut self) -> Vec<String> {
        self.tx = None;
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(errors)) => errors,
            Some(Err(_)) => vec!["the sync thread failed".into()],
            None => Vec::new(),
        }
    }
}

/// A restored file whose digest is being checked.
struct Expect {
    want: Check,
    dest: PathBuf,
    name: Vec<u8>,
    len: u64,
}

/// What the hashing thread is sent: the start of file `id` and the
/// digest to compute, its data, or its end.
enum Piece {
    Begin(u64, Algo),
    Data(u64, Arc<Vec<u8>>, Range<usize>),
    End(u64),
}

/// The digest of every restored file (see [`manifest`] for which), on a
/// thread of its own: it runs beside decompressing and writing instead of
/// after them, and reads the very frame buffers the file was written from
/// (no copy).
struct Verifier {
    tx: Option<mpsc::SyncSender<Piece>>,
    /// File number and lowercase hex digest.
    rx: mpsc::Receiver<(u64, String)>,
    thread: Option<JoinHandle<()>>,
}

impl Verifier {
    fn new() -> Self {
        // Pieces waiting: each holds its frame (4 MiB at most) alive.
        let (tx, prx) = mpsc::sync_channel::<Piece>(16);
        let (dtx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut open: HashMap<u64, Hasher> = HashMap::new();
            while let Ok(p) = prx.recv() {
                match p {
                    Piece::Begin(id, algo) => {
                        open.insert(id, Hasher::new(algo));
                    }
                    Piece::Data(id, frame, r) => {
                        if let Some(h) = open.get_mut(&id) {
                            h.update(&frame[r]);
                        }
                    }
                    Piece::End(id) => {
                        let Some(h) = open.remove(&id) else { continue };
                        if dtx.send((id, h.finish_hex())).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Verifier {
            tx: Some(tx),
            rx,
            thread: Some(thread),
        }
    }

    fn send(&self, p: Piece) -> Result<()> {
        self.tx
            .as_ref()
            .and_then(|t| t.send(p).ok())
            .ok_or_else(|| anyhow::anyhow!("the hashing thread stopped"))
    }

    /// The digests computed so far; with `all`, waits for every one.
    fn digests(&mut self, all: bool) -> Vec<(u64, String)> {
        if all {
            self.tx = None;
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
        self.rx.try_iter().collect()
    }
}

/// Restores the archive read from `input` under `to`. `man` (when the
/// manifest could be read) names lost members and checks every file's
/// digest (BLAKE3, or sha256 in older manifests).
pub fn restore(
    input: impl Read + Send + 'static,
    to: &Path,
    man: Option<&Manifest>,
    pb: &ProgressBar,
) -> Result<Report> {
    let known_names: Option<HashSet<Vec<u8>>> = man.map(|m| {
        m.items
            .iter()
            .map(|i| manifest::unescape(&i.path))
            .collect()
    });
    let mut reader = TarReader::ahead(input, known_names);
    // The file systems written to: the target's, and each one on a disk
    // mounted below it (recover mounts /home, /var, /boot/efi there).
    let canon = std::fs::canonicalize(to).unwrap_or_else(|_| to.to_path_buf());
    let mut fss = crate::recover::mount::disk_mounts_under(&canon);
    fss.insert(0, canon);
    let mut cx = Ctx {
        to,
        // SAFETY: geteuid has no preconditions.
        root: unsafe { libc::geteuid() } == 0,
        symlinks: HashSet::new(),
        dirs: Vec::new(),
        known_dirs: HashSet::new(),
        ok: HashSet::new(),
        known: man.map(|m| {
            m.items
                .iter()
                .map(|i| (manifest::unescape(&i.path), i.check()))
                .collect()
        }),
        report: Report::default(),
        verifier: Verifier::new(),
        expect: HashMap::new(),
        next_id: 0,
        links: HashMap::new(),
        syncer: Syncer::new(fss),
    };
    loop {
        match reader.next_event()? {
            Event::End => break,
            Event::Damaged { path, why } => {
                let name = path
                    .map(|p| manifest::escape(&p))
                    .unwrap_or_else(|| "(unknown member)".into());
                log::warn!("{name}: {why}");
                if man.is_none() || name != "(unknown member)" {
                    cx.report.damaged.push(name);
                }
            }
            Event::Entry(h) => {
                let name = h.path.clone();
                match put(&mut cx, &mut reader, h, pb) {
                    Ok(true) => {
                        cx.report.entries += 1;
                        cx.ok.insert(name);
                    }
                    Ok(false) => {}
                    Err(e) => {
                        log::warn!("{}: {e:#}", manifest::escape(&name));
                        cx.report
                            .errors
                            .push(format!("{}: {e:#}", manifest::escape(&name)));
                    }
                }
            }
        }
        check_digests(&mut cx, false);
    }
    // Every check done before the directories get their times: a file
    // that fails is removed.
    check_digests(&mut cx, true);
    // Directories last, deepest first.
    let dirs = std::mem::take(&mut cx.dirs);
    for (path, h) in dirs.iter().rev() {
        if let Err(e) = attrs(&cx, path, h) {
            cx.report
                .errors
                .push(format!("{}: {e:#}", manifest::escape(&h.path)));
        }
    }
    // Done means on disk: a power cut after the summary must not lose the
    // restored system. syncfs(2) writes data, inodes and journal of each
    // file system written to.
    let sync_errors = cx.syncer.finish();
    cx.report.errors.extend(sync_errors);
    if let Some(m) = man {
        // Name everything the manifest has that did not come back, in
        // archive order; the reader's own notes are then redundant.
        let mut lost = Vec::new();
        for i in &m.items {
            let n = manifest::unescape(&i.path);
            if !cx.ok.contains(&n) {
                lost.push(i.path.clone());
            }
        }
        let errs: HashSet<&str> = cx
            .report
            .errors
            .iter()
            .filter_map(|e| e.split(": ").next())
            .collect();
        let lost: Vec<String> = lost
            .into_iter()
            .filter(|p| !errs.contains(p.as_str()))
            .collect();
        if !lost.is_empty() || !cx.report.damaged.is_empty() {
            cx.report.damaged = lost;
            if cx.report.damaged.is_empty() {
                cx.report.damaged.push("(unknown member)".into());
            }
        }
    }
    Ok(cx.report)
}

/// Restores one member. `Ok(false)`: damaged (recorded already).
fn put<R: Read>(
    cx: &mut Ctx,
    reader: &mut TarReader<R>,
    h: Header,
    pb: &ProgressBar,
) -> Result<bool> {
    let rel = safe_rel(&h.path)
        .ok_or_else(|| anyhow::anyhow!("unsafe member name (absolute or with ..), skipped"))?;
    // Never write through a symlink this restore created (a member below a
    // symlink would land outside its directory).
    for a in rel.ancestors().skip(1) {
        if !a.as_os_str().is_empty() && cx.symlinks.contains(a) {
            anyhow::bail!("member below the symlink {}, skipped", a.display());
        }
    }
    let dest = if rel.as_os_str().is_empty() {
        cx.to.to_path_buf()
    } else {
        cx.to.join(&rel)
    };
    if let Some(parent) = dest.parent() {
        if dest != cx.to && !cx.known_dirs.contains(parent) {
            if !parent.exists() {
                std::fs::create_dir_all(parent)?;
            }
            cx.known_dirs.insert(parent.to_path_buf());
        }
    }
    // Replace what is in the way, except a directory by a directory.
    if h.kind != Kind::Dir || !dest.is_dir() {
        if let Ok(m) = std::fs::symlink_metadata(&dest) {
            if m.is_dir() {
                std::fs::remove_dir_all(&dest)?;
                cx.known_dirs.retain(|d| !d.starts_with(&dest));
            } else {
                std::fs::remove_file(&dest)?;
            }
        }
    }
    match h.kind {
        Kind::Dir => {
            if !dest.is_dir() {
                std::fs::DirBuilder::new().mode(0o700).create(&dest)?;
            }
            cx.known_dirs.insert(dest.clone());
            cx.dirs.push((dest, h));
            return Ok(true);
        }
        Kind::File => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&dest)?;
            let want = cx
                .known
                .as_ref()
                .and_then(|k| k.get(&h.path).cloned().flatten());
            let id = cx.next_id;
            cx.next_id += 1;
            if let Some(w) = &want {
                cx.verifier.send(Piece::Begin(id, w.algo))?;
            }
            let written = write_data(cx, reader, &mut f, &h, id, want.is_some(), pb);
            if want.is_some() {
                // Ends the file's hash even when its data stopped early.
                cx.verifier.send(Piece::End(id))?;
            }
            match written {
                Ok(None) => {}
                Ok(Some(e)) => {
                    drop(f);
                    let _ = std::fs::remove_file(&dest);
                    let name = manifest::escape(&h.path);
                    log::warn!("{name}: {e}");
                    cx.report.damaged.push(name);
                    return Ok(false);
                }
                Err(e) => {
                    // Disk full, say: no half file that looks whole.
                    drop(f);
                    let _ = std::fs::remove_file(&dest);
                    return Err(e);
                }
            }
            cx.syncer.wrote(h.data_len());
            file_attrs(cx, &f, &dest, &h)?;
            if let Some(want) = want {
                cx.expect.insert(
                    id,
                    Expect {
                        want,
                        dest,
                        name: h.path.clone(),
                        len: h.data_len(),
                    },
                );
            }
            cx.report.files += 1;
            cx.report.bytes += h.data_len();
            return Ok(true);
        }
        Kind::Symlink => {
            std::os::unix::fs::symlink(OsStr::from_bytes(&h.link), &dest)?;
            cx.symlinks.insert(rel.clone());
        }
        Kind::HardLink => {
            let target = safe_rel(&h.link)
                .filter(|p| !p.as_os_str().is_empty())
                .ok_or_else(|| anyhow::anyhow!("unsafe hard link target, skipped"))?;
            std::fs::hard_link(cx.to.join(&target), &dest)
                .map_err(|e| anyhow::anyhow!("hard link to {}: {e}", manifest::escape(&h.link)))?;
            cx.links
                .entry(h.link.clone())
                .or_default()
                .push((dest, h.path.clone()));
            return Ok(true);
        }
        Kind::Char | Kind::Block | Kind::Fifo => {
            let t = match h.kind {
                Kind::Char => libc::S_IFCHR,
                Kind::Block => libc::S_IFBLK,
                _ => libc::S_IFIFO,
            };
            sys::mknod(&dest, t | 0o600, h.dev.0, h.dev.1)?;
        }
    }
    attrs(cx, &dest, &h)?;
    Ok(true)
}

/// Writes a regular file's data (its data regions, for a sparse file)
/// straight from the archive's frames, and hands the same bytes to the
/// hashing thread when `hash`. `Ok(Some(why))`: the archive's data is
/// damaged or ends early here.
fn write_data<R: Read>(
    cx: &Ctx,
    reader: &mut TarReader<R>,
    f: &mut std::fs::File,
    h: &Header,
    id: u64,
    hash: bool,
    pb: &ProgressBar,
) -> Result<Option<DataError>> {
    let regions = h.sparse.clone().unwrap_or_else(|| vec![(0, h.size)]);
    let sparse = h.sparse.is_some();
    for (off, len) in regions {
        if sparse {
            f.seek(SeekFrom::Start(off))?;
        }
        let mut left = len;
        while left > 0 {
            let (frame, r) = match reader.data_piece(left.min(usize::MAX as u64) as usize) {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(Some(DataError::Truncated)),
                Err(DataError::Io(e)) => return Err(e.into()),
                Err(e) => return Ok(Some(e)),
            };
            let n = r.len();
            f.write_all(&frame[r.clone()])?;
            if hash {
                cx.verifier.send(Piece::Data(id, frame, r))?;
            }
            left -= n as u64;
            pb.inc(n as u64);
        }
    }
    if sparse {
        // Sets the length past a trailing hole.
        f.set_len(h.size)?;
    }
    Ok(None)
}

/// Compares the digests the hashing thread has computed (with `all`, every
/// one) with the manifest's; a file that differs is removed with the hard
/// links made to it, and named as damaged.
fn check_digests(cx: &mut Ctx, all: bool) {
    for (id, got) in cx.verifier.digests(all) {
        let Some(e) = cx.expect.remove(&id) else {
            continue;
        };
        if got.eq_ignore_ascii_case(&e.want.hex) {
            continue;
        }
        let _ = std::fs::remove_file(&e.dest);
        let name = manifest::escape(&e.name);
        log::warn!(
            "{name}: its data differs from the manifest's {}; removed",
            e.want.algo.name()
        );
        cx.report.damaged.push(name.clone());
        cx.ok.remove(&e.name);
        cx.report.entries = cx.report.entries.saturating_sub(1);
        cx.report.files = cx.report.files.saturating_sub(1);
        cx.report.bytes = cx.report.bytes.saturating_sub(e.len);
        for (link, link_name) in cx.links.remove(&e.name).unwrap_or_default() {
            let _ = std::fs::remove_file(&link);
            cx.ok.remove(&link_name);
            cx.report.entries = cx.report.entries.saturating_sub(1);
            cx.report.errors.push(format!(
                "{}: hard link to {name}, whose data is damaged: removed",
                manifest::escape(&link_name)
            ));
        }
    }
}

/// [`attrs`] of a regular file through its open descriptor (fchown,
/// fchmod, futimens): three path lookups fewer per file.
fn file_attrs(cx: &Ctx, f: &std::fs::File, dest: &Path, h: &Header) -> Result<()> {
    if cx.root {
        std::os::unix::fs::fchown(f, Some(h.uid), Some(h.gid))
            .map_err(|e| anyhow::anyhow!("chown: {e}"))?;
    }
    f.set_permissions(std::fs::Permissions::from_mode(h.mode))
        .map_err(|e| anyhow::anyhow!("chmod: {e}"))?;
    for (k, v) in &h.xattrs {
        sys::set_xattr(dest, OsStr::from_bytes(k), v)
            .map_err(|e| anyhow::anyhow!("xattr {}: {e}", String::from_utf8_lossy(k)))?;
    }
    sys::set_file_times(f, h.mtime, h.mtime).map_err(|e| anyhow::anyhow!("times: {e}"))?;
    Ok(())
}

/// Owner, mode, xattrs, times, in that order (see the module doc).
fn attrs(cx: &Ctx, dest: &Path, h: &Header) -> Result<()> {
    if cx.root {
        sys::lchown(dest, h.uid, h.gid).map_err(|e| anyhow::anyhow!("chown: {e}"))?;
    }
    if h.kind != Kind::Symlink {
        std::fs::set_permissions(dest, std::fs::Permissions::from_mode(h.mode))
            .map_err(|e| anyhow::anyhow!("chmod: {e}"))?;
    }
    for (k, v) in &h.xattrs {
        sys::set_xattr(dest, OsStr::from_bytes(k), v)
            .map_err(|e| anyhow::anyhow!("xattr {}: {e}", String::from_utf8_lossy(k)))?;
    }
    sys::set_times(dest, h.mtime, h.mtime).map_err(|e| anyhow::anyhow!("times: {e}"))?;
    Ok(())
}
