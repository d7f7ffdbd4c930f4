//! `nfs://HOST[:PORT]/EXPORT/PATH` and `cifs://[USER@]HOST[:PORT]/SHARE[/PATH]`
//! targets of the archive method: mounted with the system's mount helpers
//! (`mount -t nfs|cifs`, i.e. mount.nfs(8) from nfs-common and mount.cifs(8)
//! from cifs-utils) under `/run/mkrescue/target-*` for as long as a
//! [`Mounted`] lives, then unmounted. The archive code sees a local
//! directory.
//!
//! An nfs:// path is mounted whole (like ReaR's BACKUP_URL): the directory
//! must exist on the server. A cifs:// URL mounts the share; the rest of
//! the path is a directory inside it, created when missing. A password is
//! never put on a command line (where `ps` shows it): cifs reads it from
//! `backup.cifs_credentials` (mount.cifs's `credentials=` file).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::Backup;
use crate::error::{Code, fail};
use crate::exec::Cmd;

/// Where shares are mounted.
pub const MOUNT_BASE: &str = "/run/mkrescue";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nfs,
    Cifs,
}

impl Kind {
    /// The `mount -t` type.
    pub fn fstype(self) -> &'static str {
        match self {
            Kind::Nfs => "nfs",
            Kind::Cifs => "cifs",
        }
    }

    /// The mount helper mount(8) runs for this type, and its package.
    pub fn helper(self) -> (&'static str, &'static str) {
        match self {
            Kind::Nfs => ("mount.nfs", "nfs-common"),
            Kind::Cifs => ("mount.cifs", "cifs-utils"),
        }
    }

    /// Kernel modules the mount needs (modprobe names).
    pub fn modules(self) -> &'static [&'static str] {
        match self {
            Kind::Nfs => &["nfs", "nfsv3", "nfsv4"],
            Kind::Cifs => &["cifs"],
        }
    }
}

/// A parsed share URL.
#[derive(Debug, Clone, PartialEq)]
pub struct Share {
    pub kind: Kind,
    /// What mount takes: `host:/export/path` or `//host/share`.
    pub source: String,
    /// A directory inside the mount (cifs: the path after the share).
    pub subdir: String,
    /// Options from the URL: `port=`, `username=`.
    pub url_options: Vec<String>,
    pub url: String,
}

impl Share {
    /// `Some` for nfs://, cifs:// and smb:// URLs.
    pub fn parse(url: &str) -> Option<Result<Share>> {
        let (kind, rest) = if let Some(r) = url.strip_prefix("nfs://") {
            (Kind::Nfs, r)
        } else if let Some(r) = url
            .strip_prefix("cifs://")
            .or_else(|| url.strip_prefix("smb://"))
        {
            (Kind::Cifs, r)
        } else {
            return None;
        };
        Some(Self::parse_rest(url, kind, rest))
    }

    fn parse_rest(url: &str, kind: Kind, rest: &str) -> Result<Share> {
        let bad = |why: &str| {
            fail(
                Code::Config,
                format!(
                    "backup target {url:?}: {why}; use nfs://HOST/EXPORT/PATH or cifs://[USER@]HOST/SHARE[/PATH]"
                ),
            )
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => return Err(bad("no path after the host")),
        };
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if user.is_some_and(|u| u.contains(':')) {
            return Err(fail(
                Code::Config,
                format!(
                    "backup target {:?}: a password in the URL would show in `ps` and logs; put it in a file named by backup.cifs_credentials (mount.cifs credentials=)",
                    url.replace(user.unwrap_or(""), "USER:***")
                ),
            ));
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => (
                h,
                Some(
                    p.parse::<u16>()
                        .map_err(|_| bad("the port is not a number"))?,
                ),
            ),
            _ => (hostport, None),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if parts.iter().any(|p| *p == "." || *p == "..") {
            return Err(bad("`.` and `..` are not allowed in the path"));
        }
        let mut url_options = Vec::new();
        if let Some(p) = port {
            url_options.push(format!("port={p}"));
        }
        match kind {
            Kind::Nfs => {
                if user.is_some() {
                    return Err(bad("nfs:// takes no user name"));
                }
                if parts.is_empty() {
                    return Err(bad("no export path"));
                }
                Ok(Share {
                    kind,
                    source: format!("{host}:/{}", parts.join("/")),
                    subdir: String::new(),
                    url_options,
                    url: url.to_string(),
                })
            }
            Kind::Cifs => {
                let Some((share, dir)) = parts.split_first() else {
                    return Err(bad("no share name"));
                };
                if let Some(u) = user {
                    url_options.push(format!("username={u}"));
                }
                Ok(Share {
                    kind,
                    source: format!("//{host}/{share}"),
                    subdir: dir.join("/"),
                    url_options,
                    url: url.to_string(),
                })
            }
        }
    }

    /// The `-o` options: the URL's, `backup.mount_options`, the cifs
    /// credentials file, `nolock` for NFS (no rpc.statd in the rescue
    /// system; one writer needs no remote locks) and `ro` for reading.
    pub fn options(&self, cfg: &Backup, read_only: bool) -> Result<String> {
        let mut opts = Vec::new();
        if read_only {
            opts.push("ro".to_string());
        }
        opts.extend(self.url_options.iter().cloned());
        let user: Vec<String> = cfg
            .mount_options
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_string)
            .collect();
        for o in &user {
            let key = o.split('=').next().unwrap_or("");
            if matches!(key, "password" | "pass" | "password2") {
                return Err(fail(
                    Code::Config,
                    format!(
                        "backup.mount_options: {key}= would put a password on mount's command line; put it in a file named by backup.cifs_credentials"
                    ),
                ));
            }
        }
        if self.kind == Kind::Nfs && !user.iter().any(|o| o == "lock" || o == "nolock") {
            opts.push("nolock".into());
        }
        let guest_or_own = user
            .iter()
            .any(|o| o == "guest" || o.starts_with("credentials="));
        opts.extend(user);
        if self.kind == Kind::Cifs && cfg.cifs_credentials.is_none() && !guest_or_own {
            // mount.cifs would ask for a password on a terminal nobody
            // reads (its stderr is captured) until its timer expires.
            return Err(fail(
                Code::Config,
                format!(
                    "backup target {}: set backup.cifs_credentials to a file with username= and password= lines (mode 0600), or mount_options = \"guest\" for a share without password",
                    self.url
                ),
            ));
        }
        if self.kind == Kind::Cifs {
            if let Some(c) = &cfg.cifs_credentials {
                if !c.is_file() {
                    return Err(fail(
                        Code::Config,
                        format!(
                            "backup.cifs_credentials {}: no such file; write username=, password= (and domain=) lines there, mode 0600",
                            c.display()
                        ),
                    ));
                }
                opts.push(format!("credentials={}", c.display()));
            }
        }
        Ok(opts.join(","))
    }

    /// Mounts the share under a fresh `/run/mkrescue/target-*` directory.
    /// With `dry_run` prints the commands and mounts nothing.
    pub fn mount(&self, cfg: &Backup, read_only: bool, dry_run: bool) -> Result<Mounted> {
        let opts = self.options(cfg, read_only)?;
        let dir = PathBuf::from(format!(
            "{MOUNT_BASE}/target-{}-{}",
            self.kind.fstype(),
            std::process::id()
        ));
        let path = if self.subdir.is_empty() {
            dir.clone()
        } else {
            dir.join(&self.subdir)
        };
        let mut cmd = Cmd::new("mount").args(["-t", self.kind.fstype()]);
        if !opts.is_empty() {
            cmd = cmd.args(["-o", &opts]);
        }
        let cmd = cmd.arg(&self.source).arg(&dir).dry_run(dry_run);
        if dry_run {
            cmd.output()?;
            return Ok(Mounted {
                dir,
                path,
                mounted: false,
            });
        }
        let (helper, package) = self.kind.helper();
        if !helper_present(helper) {
            return Err(fail(
                Code::Host,
                format!(
                    "backup target {}: mounting it needs {helper}, which this system lacks: apt-get install {package} (then rebuild the rescue system so it carries it)",
                    self.url
                ),
            ));
        }
        load_modules(self.kind);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        if let Err(e) = cmd.output() {
            let _ = std::fs::remove_dir(&dir);
            return Err(e.context(format!("mounting backup target {}", self.url)));
        }
        let m = Mounted {
            dir,
            path,
            mounted: true,
        };
        if !read_only && !self.subdir.is_empty() {
            std::fs::create_dir_all(&m.path)
                .with_context(|| format!("creating {} on {}", self.subdir, self.url))?;
        }
        log::info!("mounted {} at {}", self.url, m.dir.display());
        Ok(m)
    }
}

/// mount(8) runs /sbin/mount.TYPE (merged /usr: also /usr/sbin).
fn helper_present(name: &str) -> bool {
    ["/sbin", "/usr/sbin", "/usr/local/sbin"]
        .iter()
        .any(|d| crate::sys::is_executable(&Path::new(d).join(name)))
}

/// Loads the filesystem's modules unless the kernel has it already. The
/// kernel would ask modprobe itself (request_module "fs-nfs"), but only
/// through /proc/sys/kernel/modprobe, which a rescue system may not have
/// at that path; best effort, mount names what is still missing.
fn load_modules(kind: Kind) {
    load_fs(kind.fstype(), kind.modules());
}

/// Loads `modules` unless the kernel knows filesystem `fstype` already.
pub fn load_fs(fstype: &str, modules: &[&str]) {
    let known = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if known
        .lines()
        .any(|l| l.split_whitespace().last() == Some(fstype))
    {
        return;
    }
    for m in modules {
        let _ = Cmd::new("modprobe").args(["-q", m]).output();
    }
}

/// A mounted share; unmounted (and its directory removed) when dropped.
#[derive(Debug)]
pub struct Mounted {
    /// The mount point.
    pub dir: PathBuf,
    /// The backup directory inside it.
    pub path: PathBuf,
    mounted: bool,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if !self.mounted {
            return;
        }
        match Cmd::new("umount").arg(&self.dir).output() {
            Ok(_) => {
                let _ = std::fs::remove_dir(&self.dir);
            }
            Err(e) => log::warn!("{e:#}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(url: &str) -> Share {
        Share::parse(url).unwrap().unwrap()
    }

    #[test]
    fn nfs_urls() {
        let s = share("nfs://nas.example/export/backups/web1");
        assert_eq!(s.kind, Kind::Nfs);
        assert_eq!(s.source, "nas.example:/export/backups/web1");
        assert_eq!(s.subdir, "");
        let s = share("nfs://[fd00::5]:2049/srv");
        assert_eq!(s.source, "[fd00::5]:/srv");
        assert_eq!(s.url_options, ["port=2049"]);
        assert!(Share::parse("file:///x").is_none());
        for bad in [
            "nfs://host",
            "nfs://host/",
            "nfs://u@host/x",
            "nfs://h/a/../b",
        ] {
            let e = Share::parse(bad).unwrap().unwrap_err();
            assert_eq!(crate::error::code_of(&e), Code::Config, "{bad}");
        }
    }

    #[test]
    fn cifs_urls() {
        let s = share("cifs://backup@fs1.example/Backups/hosts/web1");
        assert_eq!(s.source, "//fs1.example/Backups");
        assert_eq!(s.subdir, "hosts/web1");
        assert_eq!(s.url_options, ["username=backup"]);
        assert_eq!(share("smb://fs1:4445/B").url_options, ["port=4445"]);
        let e = Share::parse("cifs://u:secret@h/s").unwrap().unwrap_err();
        let m = format!("{e:#}");
        assert!(!m.contains("secret"), "{m}");
        assert!(m.contains("backup.cifs_credentials"), "{m}");
    }

    #[test]
    fn options_never_carry_a_password() {
        let mut cfg = Backup::default();
        let nfs = share("nfs://h/x");
        assert_eq!(nfs.options(&cfg, false).unwrap(), "nolock");
        assert_eq!(nfs.options(&cfg, true).unwrap(), "ro,nolock");
        cfg.mount_options = Some("vers=3, lock".into());
        assert_eq!(nfs.options(&cfg, false).unwrap(), "vers=3,lock");
        let cifs = share("cifs://u@h/s/d");
        let dir = tempfile::tempdir().unwrap();
        let cred = dir.path().join("cred");
        std::fs::write(&cred, "username=u\npassword=p\n").unwrap();
        cfg.mount_options = Some("vers=3.0".into());
        cfg.cifs_credentials = Some(cred.clone());
        assert_eq!(
            cifs.options(&cfg, false).unwrap(),
            format!("username=u,vers=3.0,credentials={}", cred.display())
        );
        cfg.mount_options = Some("password=p".into());
        let e = cifs.options(&cfg, false).unwrap_err();
        assert_eq!(crate::error::code_of(&e), Code::Config);
        cfg.mount_options = None;
        cfg.cifs_credentials = Some(dir.path().join("missing"));
        assert!(cifs.options(&cfg, false).is_err());
        // No credentials at all: refused, unless the share takes guests.
        cfg.cifs_credentials = None;
        let e = cifs.options(&cfg, false).unwrap_err();
        assert!(format!("{e:#}").contains("cifs_credentials"), "{e:#}");
        cfg.mount_options = Some("guest".into());
        assert_eq!(cifs.options(&cfg, true).unwrap(), "ro,username=u,guest");
    }
}
