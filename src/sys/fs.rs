//! File-level system calls the backup archive needs that std does not offer: extended
//! attributes (xattr(7)), holes of sparse files (lseek(2) SEEK_DATA /
//! SEEK_HOLE), mknod(2), lchown(2), utimensat(2) with nanoseconds, and
//! writeback control (sync_file_range(2), syncfs(2)).
//!
//! Plain libc calls (libc is already a dependency) rather than the `xattr` or
//! `nix` crates: each is a few lines and every byte of a name stays a byte
//! (names and values are not UTF-8).

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use super::cpath;

/// All extended attributes of `path` (not following a symlink), sorted by
/// name. A filesystem without xattr support yields none.
pub fn xattrs(path: &Path) -> io::Result<Vec<(OsString, Vec<u8>)>> {
    let c = cpath(path)?;
    let mut names = vec![0u8; 1024];
    let len = loop {
        // SAFETY: buffer pointer and length describe `names`.
        let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) => names.resize(names.len() * 4, 0),
            Some(libc::ENOTSUP) => return Ok(Vec::new()),
            _ => return Err(e),
        }
    };
    let mut out = Vec::new();
    for name in names[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).expect("split on NUL");
        let mut val = vec![0u8; 256];
        loop {
            // SAFETY: buffer pointer and length describe `val`.
            let n = unsafe {
                libc::lgetxattr(
                    c.as_ptr(),
                    cname.as_ptr(),
                    val.as_mut_ptr().cast(),
                    val.len(),
                )
            };
            if n >= 0 {
                val.truncate(n as usize);
                out.push((OsString::from_vec(name.to_vec()), val));
                break;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ERANGE) => val.resize(val.len() * 4, 0),
                // Removed between list and get.
                Some(libc::ENODATA) => break,
                _ => return Err(e),
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Sets one extended attribute on `path` (not following a symlink).
pub fn set_xattr(path: &Path, name: &OsStr, value: &[u8]) -> io::Result<()> {
    let c = cpath(path)?;
    let n = CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name with NUL"))?;
    // SAFETY: valid C strings and a buffer of `value.len()` bytes.
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The data regions `(offset, length)` of an open file of `size` bytes, from
/// lseek(2) SEEK_DATA/SEEK_HOLE. A file system that does not report holes
/// gives one region covering the file.
pub fn data_regions(file: &std::fs::File, size: u64) -> io::Result<Vec<(u64, u64)>> {
    let fd = file.as_raw_fd();
    let mut regions = Vec::new();
    let mut pos: u64 = 0;
    while pos < size {
        // SAFETY: plain lseek on an fd we own.
        let data = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
        if data < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                // No data after `pos`: the rest is a hole.
                Some(libc::ENXIO) => break,
                Some(libc::EINVAL) | Some(libc::ENOTSUP) if regions.is_empty() => {
                    return Ok(vec![(0, size)]);
                }
                _ => return Err(e),
            }
        }
        let data = data as u64;
        if data >= size {
            break;
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data as libc::off_t, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(io::Error::last_os_error());
        }
        let end = (hole as u64).min(size);
        regions.push((data, end - data));
        pos = end;
    }
    // SAFETY: rewind for the reader that follows.
    unsafe { libc::lseek(fd, 0, libc::SEEK_SET) };
    Ok(regions)
}

/// The two-element (atime, mtime) array futimens(2) and utimensat(2) take.
fn timespecs(atime: (i64, u32), mtime: (i64, u32)) -> [libc::timespec; 2] {
    let ts = |(sec, nsec): (i64, u32)| libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as libc::c_long,
    };
    [ts(atime), ts(mtime)]
}

/// futimens(2): access and modification times of an open file, to the
/// nanosecond (no path lookup, unlike [`set_times`]).
pub fn set_file_times(
    file: &std::fs::File,
    atime: (i64, u32),
    mtime: (i64, u32),
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let ts = timespecs(atime, mtime);
    // SAFETY: a valid descriptor and a two-element timespec array.
    let rc = unsafe { libc::futimens(file.as_raw_fd(), ts.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// mknod(2) for device nodes and FIFOs; `mode` includes the file type bits.
pub fn mknod(path: &Path, mode: u32, major: u32, minor: u32) -> io::Result<()> {
    let c = cpath(path)?;
    let dev = libc::makedev(major, minor);
    // SAFETY: valid C string.
    let rc = unsafe { libc::mknod(c.as_ptr(), mode as libc::mode_t, dev) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// lchown(2): numeric owner, not following a symlink.
pub fn lchown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
}

/// utimensat(2) with AT_SYMLINK_NOFOLLOW: sets atime and mtime (seconds,
/// nanoseconds) of the path itself.
pub fn set_times(path: &Path, atime: (i64, u32), mtime: (i64, u32)) -> io::Result<()> {
    let c = cpath(path)?;
    let ts = timespecs(atime, mtime);
    // SAFETY: valid C string and a two-element timespec array.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Device major and minor numbers of `rdev`.
pub fn dev_numbers(rdev: u64) -> (u32, u32) {
    (libc::major(rdev), libc::minor(rdev))
}

/// Starts writing `len` bytes of `f` from `off` (0: to the end) to disk
/// without waiting (sync_file_range(2) with SYNC_FILE_RANGE_WRITE). Only a
/// hint: it flushes no metadata and promises nothing, so errors are
/// ignored.
fn start_writeback_range(f: &std::fs::File, off: u64, len: u64) {
    // SAFETY: a valid descriptor and a range of it.
    unsafe {
        libc::sync_file_range(
            f.as_raw_fd(),
            off as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// Writes everything of the file system holding `dir` to disk and waits
/// (syncfs(2)): data, inodes and the journal.
pub fn syncfs(dir: &Path) -> io::Result<()> {
    let d = std::fs::File::open(dir)?;
    // SAFETY: a valid descriptor.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A file written from start to end whose writeback is started every
/// [`Writeback::STEP`] bytes (sync_file_range(2) on the new range, from a
/// thread of its own: the call may wait for room in the device's queue,
/// and the writer must not): the disk writes while the rest is produced,
/// and the final fsync has little left to do. Without it the kernel keeps
/// up to dirty_background_ratio of RAM (gigabytes) dirty, and all of it is
/// written after the last byte.
pub struct Writeback {
    file: std::fs::File,
    written: u64,
    started: u64,
    ranges: Option<std::sync::mpsc::SyncSender<(u64, u64)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writeback {
    pub const STEP: u64 = 8 << 20;

    pub fn new(file: std::fs::File) -> Self {
        let (ranges, thread) = match file.try_clone() {
            Ok(dup) => {
                let (tx, rx) = std::sync::mpsc::sync_channel::<(u64, u64)>(4);
                let t = std::thread::spawn(move || {
                    while let Ok((off, len)) = rx.recv() {
                        start_writeback_range(&dup, off, len);
                    }
                });
                (Some(tx), Some(t))
            }
            // No second descriptor: no hints, the fsync does it all.
            Err(_) => (None, None),
        };
        Writeback {
            file,
            written: 0,
            started: 0,
            ranges,
            thread,
        }
    }

    pub fn into_inner(mut self) -> std::fs::File {
        self.ranges = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.file
    }
}

impl io::Write for Writeback {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.file.write(b)?;
        self.written += n as u64;
        if self.written - self.started >= Self::STEP {
            if let Some(tx) = &self.ranges {
                // Full: the thread is behind, and the range is left to the
                // kernel and the fsync.
                let _ = tx.try_send((self.started, self.written - self.started));
            }
            self.started = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_file_regions_skip_the_hole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        let f = std::fs::File::create(&p).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(b"head", 0).unwrap();
        f.write_all_at(b"tail", 64 << 20).unwrap();
        f.set_len((64 << 20) + 4).unwrap();
        let r = data_regions(&f, (64 << 20) + 4).unwrap();
        assert_eq!(r.first().unwrap().0, 0);
        let covered: u64 = r.iter().map(|x| x.1).sum();
        assert!(covered < 1 << 20, "{r:?}");
        assert_eq!(r.last().map(|x| x.0 + x.1), Some((64 << 20) + 4));
    }

    #[test]
    fn user_xattr_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"").unwrap();
        set_xattr(&p, OsStr::new("user.test"), b"\x00\xffbin").unwrap();
        let x = xattrs(&p).unwrap();
        assert!(x.contains(&(OsString::from("user.test"), b"\x00\xffbin".to_vec())));
    }

    #[test]
    fn writeback_writes_every_byte() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out");
        let data: Vec<u8> = (0..(Writeback::STEP as usize * 2 + 12345))
            .map(|i| (i % 251) as u8)
            .collect();
        let mut w = Writeback::new(std::fs::File::create(&p).unwrap());
        for c in data.chunks(1 << 20) {
            w.write_all(c).unwrap();
        }
        assert_eq!(w.started, 2 * Writeback::STEP);
        w.into_inner().sync_all().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), data);
    }
}
