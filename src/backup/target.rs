//! Where archives go: `file:///dir` (a local directory: a USB data
//! partition, a mounted share) and `ssh://[user@]host[:port]/dir` (streamed
//! through `ssh`, so nothing but a shell and `cat` is needed on the
//! server).
//!
//! Every upload goes to a hidden temporary name (`.NAME.part`) and is
//! renamed only once it is complete and synced: a full disk or a broken
//! connection leaves nothing that looks like a finished backup.
//!
//! An `ssh://` server whose key is restricted to `mkrescue serve` (it
//! answers `ssh HOST -- mkrescue serve ...` with the protocol's greeting,
//! [`super::proto`]) is used through that protocol instead: append-only,
//! the server checks and links each backup. Any other server gets `cat`,
//! `mv` and `rm` as before. Which one it is is asked once per process.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result};

use crate::error::{Code, fail};
use crate::exec::{Cmd, Running};

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Local(PathBuf),
    Ssh {
        /// `user@host` or `host`.
        dest: String,
        port: Option<u16>,
        dir: String,
        /// Extra `ssh` options from the configuration (`-i KEY`, `-o ...`).
        options: Vec<String>,
        /// Whether the server speaks `mkrescue serve` (asked once).
        serve: Probe,
    },
}

/// The answer of the first session: does the server speak `mkrescue
/// serve`? Shared by the clones of a target; not part of its identity.
#[derive(Debug, Clone, Default)]
pub struct Probe(Arc<OnceLock<bool>>);

impl PartialEq for Probe {
    fn eq(&self, _: &Probe) -> bool {
        true
    }
}

impl Target {
    pub fn parse(url: &str, ssh_options: &[String]) -> Result<Target> {
        let bad = |why: &str| {
            fail(
                Code::Config,
                format!(
                    "backup target {url:?}: {why}; use file:///DIR, ssh://[USER@]HOST[:PORT]/DIR, nfs://HOST/EXPORT/PATH or cifs://[USER@]HOST/SHARE[/PATH]"
                ),
            )
        };
        if let Some(p) = url.strip_prefix("file://") {
            if !p.starts_with('/') {
                return Err(bad("a file:// URL needs an absolute path (three slashes)"));
            }
            return Ok(Target::Local(PathBuf::from(p)));
        }
        if url.starts_with('/') {
            return Ok(Target::Local(PathBuf::from(url)));
        }
        if let Some(rest) = url.strip_prefix("ssh://") {
            let (authority, dir) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => return Err(bad("no directory after the host")),
            };
            let (dest, port) = match authority.rsplit_once(':') {
                Some((d, p)) => (
                    d,
                    Some(
                        p.parse::<u16>()
                            .map_err(|_| bad("the port is not a number"))?,
                    ),
                ),
                None => (authority, None),
            };
            if dest.is_empty() || dest.ends_with('@') {
                return Err(bad("no host"));
            }
            return Ok(Target::Ssh {
                dest: dest.to_string(),
                port,
                dir: dir.to_string(),
                options: ssh_options.to_vec(),
                serve: Probe::default(),
            });
        }
        if let Some(share) = super::share::Share::parse(url) {
            // Shares are mounted first (super::share), then used as a
            // local directory; only the archive method takes them.
            share?;
            return Err(fail(
                Code::Usage,
                format!(
                    "backup target {url:?}: nfs:// and cifs:// targets are for the archive method; for rsync and borg use ssh:// or mount the share yourself and give file:///MOUNTPOINT/DIR"
                ),
            ));
        }
        Err(bad("unknown scheme"))
    }

    pub fn describe(&self) -> String {
        match self {
            Target::Local(p) => format!("file://{}", p.display()),
            Target::Ssh {
                dest, port, dir, ..
            } => match port {
                Some(p) => format!("ssh://{dest}:{p}{dir}"),
                None => format!("ssh://{dest}{dir}"),
            },
        }
    }

    fn ssh(&self, remote: &str) -> Cmd {
        let Target::Ssh {
            dest,
            port,
            options,
            ..
        } = self
        else {
            unreachable!("ssh on a local target")
        };
        // BatchMode: never ask for a password on a terminal (cron, rescue).
        let mut c = Cmd::new("ssh").args(["-o", "BatchMode=yes"]);
        if let Some(p) = port {
            c = c.args(["-p", &p.to_string()]);
        }
        c.args(options).arg(dest).arg("--").arg(remote)
    }

    /// A `mkrescue serve` session, when the server speaks the protocol
    /// (behind a forced command, or with mkrescue installed); `None` for a
    /// local target or a server without it.
    fn session(&self) -> Result<Option<super::proto::Session>> {
        let Target::Ssh { dir, serve, .. } = self else {
            return Ok(None);
        };
        if serve.0.get() == Some(&false) {
            return Ok(None);
        }
        let cmd = self.ssh(&format!("mkrescue serve --append-only {}", sq(dir)));
        let s = super::proto::Session::start(cmd, &self.describe())?;
        if serve.0.set(s.is_some()).is_ok() && s.is_none() {
            log::debug!(
                "{}: no mkrescue serve there; using cat, mv and rm",
                self.describe()
            );
        }
        Ok(s)
    }

    /// Whether the target turned out to be append-only (`mkrescue serve`):
    /// known after the first use.
    pub fn append_only(&self) -> bool {
        matches!(self, Target::Ssh { serve, .. } if serve.0.get() == Some(&true))
    }

    /// Starts writing the archive and the manifest of one backup: through
    /// one `mkrescue serve` session where the server speaks it, else as
    /// two uploads.
    pub fn upload_backup(&self, archive: &str, manifest: &str) -> Result<(Upload, Upload)> {
        if let Some(s) = self.session()? {
            let mut v = super::proto::put(s, &[archive, manifest])?;
            let m = v.pop().expect("two uploads");
            let a = v.pop().expect("two uploads");
            return Ok((Upload::Serve(a), Upload::Serve(m)));
        }
        let up = self.upload(archive)?;
        match self.upload(manifest) {
            Ok(m) => Ok((up, m)),
            Err(e) => {
                up.abort();
                Err(e)
            }
        }
    }

    fn remote_path(dir: &str, name: &str) -> String {
        format!("{}/{name}", dir.trim_end_matches('/'))
    }

    /// Starts writing `name` (under a temporary name).
    pub fn upload(&self, name: &str) -> Result<Upload> {
        match self {
            Target::Local(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating the backup directory {}", dir.display()))?;
                let part = dir.join(format!(".{name}.part"));
                let file = std::fs::File::create(&part)
                    .with_context(|| format!("creating {}", part.display()))?;
                Ok(Upload::Local {
                    file: std::io::BufWriter::with_capacity(
                        1 << 20,
                        crate::sys::fs::Writeback::new(file),
                    ),
                    part,
                    done: dir.join(name),
                })
            }
            Target::Ssh { dir, .. } => {
                let part = Self::remote_path(dir, &format!(".{name}.part"));
                let cmd = format!("mkdir -p {} && cat > {}", sq(dir), sq(&part));
                let run = self.ssh(&cmd).spawn_stream(true)?;
                Ok(Upload::Ssh {
                    run,
                    part,
                    done: Self::remote_path(dir, name),
                    target: self.clone(),
                })
            }
        }
    }

    /// Reads a finished file.
    pub fn open(&self, name: &str) -> Result<Box<dyn Read + Send>> {
        match self {
            Target::Local(dir) => {
                let p = dir.join(name);
                let f =
                    std::fs::File::open(&p).with_context(|| format!("opening {}", p.display()))?;
                Ok(Box::new(f))
            }
            Target::Ssh { dir, .. } => {
                if let Some(s) = self.session()? {
                    return Ok(Box::new(super::proto::Get::start(s, name)?));
                }
                let p = Self::remote_path(dir, name);
                let mut run = self.ssh(&format!("cat {}", sq(&p))).spawn_stream(false)?;
                let out = run.child.stdout.take().context("ssh stdout")?;
                Ok(Box::new(SshRead {
                    out,
                    run: Some(run),
                }))
            }
        }
    }

    /// Names of the finished files in the target directory.
    pub fn list(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = match self {
            Target::Local(dir) => match std::fs::read_dir(dir) {
                Ok(rd) => rd
                    .filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
            },
            Target::Ssh { dir, .. } => {
                if let Some(mut s) = self.session()? {
                    let l = s.list()?;
                    s.quit()?;
                    return Ok(l.into_iter().map(|(n, _)| n).collect());
                }
                let cmd = format!("ls -1 {} 2>/dev/null || true", sq(dir));
                self.ssh(&cmd).read()?.lines().map(str::to_string).collect()
            }
        };
        names.retain(|n| !n.starts_with('.'));
        names.sort();
        Ok(names)
    }

    /// Runs a shell command on the backup server.
    pub fn run(&self, remote: &str) -> Result<()> {
        self.ssh(remote).output()?;
        Ok(())
    }

    /// Renames an entry of the target directory.
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        match self {
            Target::Local(dir) => std::fs::rename(dir.join(from), dir.join(to))
                .with_context(|| format!("renaming {from} to {to} in {}", dir.display())),
            Target::Ssh { dir, .. } => self.run(&format!(
                "mv -f {} {}",
                sq(&Self::remote_path(dir, from)),
                sq(&Self::remote_path(dir, to))
            )),
        }
    }

    /// Removes a directory of the target directory with its contents.
    pub fn remove_dir(&self, name: &str) -> Result<()> {
        match self {
            Target::Local(dir) => std::fs::remove_dir_all(dir.join(name))
                .with_context(|| format!("removing {}", dir.join(name).display())),
            Target::Ssh { dir, .. } => {
                self.run(&format!("rm -rf {}", sq(&Self::remote_path(dir, name))))
            }
        }
    }

    /// Removes a file of the target directory; a missing one is no error.
    pub fn remove_file(&self, name: &str) -> Result<()> {
        match self {
            Target::Local(dir) => match std::fs::remove_file(dir.join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("removing {}", dir.join(name).display()))
                }
                _ => Ok(()),
            },
            Target::Ssh { dir, .. } => {
                self.run(&format!("rm -f {}", sq(&Self::remote_path(dir, name))))
            }
        }
    }

    /// The local directory, to keep it out of the backup.
    pub fn local_dir(&self) -> Option<&Path> {
        match self {
            Target::Local(p) => Some(p),
            Target::Ssh { .. } => None,
        }
    }
}

/// Single-quotes for the remote shell.
fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

struct SshRead {
    out: std::process::ChildStdout,
    run: Option<Running>,
}

impl Read for SshRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.out.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if let Some(run) = self.run.take() {
                run.wait()
                    .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
            }
        }
        Ok(n)
    }
}

/// A file being written to a target.
pub enum Upload {
    Local {
        file: std::io::BufWriter<crate::sys::fs::Writeback>,
        part: PathBuf,
        done: PathBuf,
    },
    Ssh {
        run: Running,
        part: String,
        done: String,
        target: Target,
    },
    /// One file of a backup through `mkrescue serve`.
    Serve(super::proto::Put),
}

impl Write for Upload {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self {
            Upload::Local { file, .. } => file.write(b),
            Upload::Ssh { run, .. } => match run.child.stdin.as_mut() {
                Some(s) => s.write(b),
                None => Err(std::io::Error::other("ssh stdin closed")),
            },
            Upload::Serve(p) => p.write(b),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Upload::Local { file, .. } => file.flush(),
            Upload::Ssh { run, .. } => run.child.stdin.as_mut().map_or(Ok(()), |s| s.flush()),
            Upload::Serve(p) => p.flush(),
        }
    }
}

/// A complete upload, not yet under its final name.
pub enum Staged {
    Local {
        part: PathBuf,
        done: PathBuf,
    },
    Ssh {
        part: String,
        done: String,
        target: Target,
    },
    /// Ended on the server, which links it at COMMIT.
    Serve(super::proto::Shared),
}

impl Upload {
    /// Writes out and syncs everything; the data is complete but still
    /// under its temporary name.
    pub fn close(self) -> Result<Staged> {
        match self {
            Upload::Local { file, part, done } => {
                let f = file
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .with_context(|| format!("writing {}", part.display()))?
                    .into_inner();
                f.sync_all()
                    .with_context(|| format!("writing {}", part.display()))?;
                Ok(Staged::Local { part, done })
            }
            Upload::Ssh {
                run,
                part,
                done,
                target,
            } => {
                run.wait()
                    .with_context(|| format!("uploading {}", target.describe()))?;
                Ok(Staged::Ssh { part, done, target })
            }
            Upload::Serve(p) => Ok(Staged::Serve(p.end()?)),
        }
    }

    /// Removes the temporary file after a failure (best effort).
    pub fn abort(self) {
        match self {
            Upload::Local { file, part, .. } => {
                drop(file.into_parts());
                let _ = std::fs::remove_file(part);
            }
            Upload::Ssh {
                run, part, target, ..
            } => {
                let _ = run.wait();
                let _ = target.ssh(&format!("rm -f {}", sq(&part))).output();
            }
            // The session is cut: the server drops what it had.
            Upload::Serve(p) => drop(p),
        }
    }
}

/// Gives a backup's manifest and archive their final names: two renames,
/// or one COMMIT of the `mkrescue serve` session, which checks the backup
/// first.
pub fn commit_backup(manifest: Staged, archive: Staged) -> Result<()> {
    match (manifest, archive) {
        (Staged::Serve(s), Staged::Serve(other)) => {
            drop(other);
            super::proto::commit(s)
        }
        (m, a) => {
            m.commit()?;
            a.commit()
        }
    }
}

impl Staged {
    /// Gives the file its final name.
    pub fn commit(self) -> Result<()> {
        match self {
            Staged::Local { part, done } => {
                std::fs::rename(&part, &done).with_context(|| {
                    format!("renaming {} to {}", part.display(), done.display())
                })?;
                if let Some(dir) = done.parent() {
                    // The rename is durable once the directory is synced.
                    if let Ok(d) = std::fs::File::open(dir) {
                        let _ = d.sync_all();
                    }
                }
                Ok(())
            }
            Staged::Ssh { part, done, target } => {
                target
                    .ssh(&format!("mv -f {} {}", sq(&part), sq(&done)))
                    .output()?;
                Ok(())
            }
            Staged::Serve(s) => super::proto::commit(s),
        }
    }

    pub fn discard(self) {
        match self {
            Staged::Local { part, .. } => {
                let _ = std::fs::remove_file(part);
            }
            Staged::Ssh { part, target, .. } => {
                let _ = target.ssh(&format!("rm -f {}", sq(&part))).output();
            }
            Staged::Serve(s) => drop(s),
        }
    }
}

/// Refuses a local target that is not there: mkrescue never creates it.
/// A missing directory, or one below a mount point of `fstab` where
/// nothing is mounted (the backup disk), would put the backup onto the
/// file system below, most often the root file system it is meant to
/// survive.
pub fn check_local(dir: &Path, fstab: &Path) -> Result<()> {
    let gone = |why: String| {
        Err(fail(
            Code::Failed,
            format!("backup target {}: {why}", dir.display()),
        ))
    };
    if let Ok(text) = std::fs::read_to_string(fstab) {
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 3 || f[0].starts_with('#') || f[2] == "swap" {
                continue;
            }
            let mnt = Path::new(f[1]);
            if mnt != Path::new("/")
                && mnt.is_absolute()
                && dir.starts_with(mnt)
                && !crate::sys::mount::is_mounted(mnt)
            {
                return gone(format!(
                    "{} is a mount point in {} where nothing is mounted; mount it first (`mount {}`)",
                    mnt.display(),
                    fstab.display(),
                    mnt.display()
                ));
            }
        }
    }
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(fail(
            Code::Usage,
            format!("backup target {} is not a directory", dir.display()),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => gone(format!(
            "no such directory; mount the backup disk there, or create it (`mkdir -p {}`) for backups on this system",
            dir.display()
        )),
        Err(e) => Err(e).with_context(|| format!("backup target {}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            Target::parse("file:///srv/b", &[]).unwrap(),
            Target::Local("/srv/b".into())
        );
        let t = Target::parse("ssh://backup@h.example:2222/srv/b", &[]).unwrap();
        assert_eq!(t.describe(), "ssh://backup@h.example:2222/srv/b");
        for bad in ["file://rel", "ftp://x/y", "ssh://host", "ssh://h:port/x"] {
            let e = Target::parse(bad, &[]).unwrap_err();
            assert_eq!(crate::error::code_of(&e), Code::Config, "{bad}");
        }
        let e = Target::parse("nfs://srv/export", &[]).unwrap_err();
        assert_eq!(crate::error::code_of(&e), Code::Usage);
    }
}
