//! A directory opened once, and files opened *inside* it by one plain name
//! (openat(2) relative to the directory's descriptor, never following a
//! symlink: `O_NOFOLLOW`), for `mkrescue serve`, whose names come from a
//! client that may be hostile.
//!
//! New files are written unnamed (`O_TMPFILE`, open(2)) and linked into
//! place only when complete, with linkat(2), which never replaces an
//! existing name (`EEXIST`). An unnamed file vanishes with its descriptor,
//! so a cut-off upload or a killed server leaves nothing behind. Where the
//! file system has no `O_TMPFILE` (NFS: `EOPNOTSUPP`), a hidden
//! `.NAME.XXXXXX.part` is used, renamed with `RENAME_NOREPLACE`
//! (rename(2)) and removed when dropped.
//!
//! All through rustix: no `unsafe` is needed here.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};

/// A directory every name is resolved in.
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// A file being written in a [`Dir`], not yet visible under a final name.
pub struct TempFile {
    pub file: std::fs::File,
    /// The hidden name of the fallback; `None` for an unnamed file.
    named: Option<String>,
    dir: OwnedFd,
}

impl Dir {
    /// Opens `path` (an administrator's path: symlinks in it are followed).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the regular file `name` for reading; a symlink (`ELOOP`) or
    /// anything but a regular file is refused.
    pub fn open_file(&self, name: &str) -> io::Result<std::fs::File> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        )?;
        let st = rustix::fs::fstat(&fd)?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(std::fs::File::from(fd))
    }

    /// Whether `name` exists (as anything, a dangling symlink included).
    pub fn exists(&self, name: &str) -> io::Result<bool> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The regular files of the directory with their sizes (symlinks and
    /// everything else left out).
    pub fn regular_files(&self) -> io::Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.path)? {
            let e = e?;
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            if let Ok(st) = rustix::fs::statat(&self.fd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                if rustix::fs::FileType::from_raw_mode(st.st_mode)
                    == rustix::fs::FileType::RegularFile
                {
                    out.push((name, st.st_size as u64));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// A new file for `name` that nobody sees yet (mode 0640).
    pub fn create_temp(&self, name: &str) -> io::Result<TempFile> {
        let mode = Mode::from_raw_mode(0o640);
        let dir = self.fd.try_clone()?;
        match rustix::fs::openat(
            &self.fd,
            ".",
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            mode,
        ) {
            Ok(fd) => {
                return Ok(TempFile {
                    file: fd.into(),
                    named: None,
                    dir,
                });
            }
            // No O_TMPFILE on this file system (or kernel): a hidden name.
            Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR) => {}
            Err(e) => return Err(e.into()),
        }
        for n in 0..100u32 {
            let hidden = format!(".{name}.{}-{n}.part", std::process::id());
            match rustix::fs::openat(
                &self.fd,
                hidden.as_str(),
                OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                mode,
            ) {
                Ok(fd) => {
                    return Ok(TempFile {
                        file: fd.into(),
                        named: Some(hidden),
                        dir,
                    });
                }
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(io::Error::other("no free temporary name"))
    }

    /// Syncs the directory itself (a new name in it is durable after this).
    pub fn sync(&self) -> io::Result<()> {
        rustix::fs::fsync(&self.fd).map_err(Into::into)
    }
}

impl TempFile {
    /// Gives the (complete, synced) file its final `name` in the directory;
    /// fails with `AlreadyExists` rather than replace anything.
    pub fn link(mut self, name: &str) -> io::Result<()> {
        match self.named.take() {
            Some(hidden) => {
                let r = rustix::fs::renameat_with(
                    &self.dir,
                    hidden.as_str(),
                    &self.dir,
                    name,
                    RenameFlags::NOREPLACE,
                );
                if r.is_err() {
                    self.named = Some(hidden);
                }
                r.map_err(Into::into)
            }
            None => {
                // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; /proc/self/fd
                // with AT_SYMLINK_FOLLOW is what open(2) documents for
                // everyone else (O_TMPFILE).
                match rustix::fs::linkat(
                    self.file.as_fd(),
                    "",
                    &self.dir,
                    name,
                    AtFlags::EMPTY_PATH,
                ) {
                    Err(rustix::io::Errno::NOENT | rustix::io::Errno::PERM) => {
                        let proc = format!(
                            "/proc/self/fd/{}",
                            std::os::fd::AsRawFd::as_raw_fd(&self.file)
                        );
                        rustix::fs::linkat(
                            rustix::fs::CWD,
                            proc.as_str(),
                            &self.dir,
                            name,
                            AtFlags::SYMLINK_FOLLOW,
                        )
                        .map_err(Into::into)
                    }
                    r => r.map_err(Into::into),
                }
            }
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(h) = self.named.take() {
            let _ = rustix::fs::unlinkat(&self.dir, h.as_str(), AtFlags::empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn temp_files_appear_only_when_linked_and_never_replace() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open(t.path()).unwrap();
        let mut f = d.create_temp("a").unwrap();
        f.file.write_all(b"one").unwrap();
        assert!(d.regular_files().unwrap().is_empty());
        f.link("a").unwrap();
        assert_eq!(d.regular_files().unwrap(), vec![("a".to_string(), 3)]);
        let mut g = d.create_temp("a").unwrap();
        g.file.write_all(b"two!").unwrap();
        let e = g.link("a").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(t.path().join("a")).unwrap(), b"one");
        // A dropped temp file leaves nothing.
        drop(d.create_temp("b").unwrap());
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
    }

    #[test]
    fn symlinks_are_not_followed() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("real"), b"x").unwrap();
        std::os::unix::fs::symlink("real", t.path().join("link")).unwrap();
        let d = Dir::open(t.path()).unwrap();
        assert!(d.open_file("real").is_ok());
        assert!(d.open_file("link").is_err());
        assert_eq!(d.regular_files().unwrap().len(), 1);
        assert!(d.exists("link").unwrap());
    }
}
