//! `--iso-backup` (or `output.iso_backup = true`): the newest complete
//! archive backup of this host, as `mkrescue backup list` shows it at
//! `backup.target`, goes onto the ISO as `/backup/NAME.tar.zst` and
//! `/backup/NAME.manifest.zst` (with `.age` when encrypted), so one disc
//! carries both the rescue system and the files. In the rescue system:
//! `mount -o ro /dev/sr0 /mnt && mkrescue restore --from file:///mnt/backup
//! --to TARGET`.
//!
//! Owns finding the files (reading them from an ssh:// target into the
//! scratch directory) and the size checks; hands (host path, ISO path)
//! pairs to the ISO writer, which grafts them in without copying local
//! files. Archives over 4 GiB need ISO 9660 level 3 (multi-extent files,
//! ECMA-119 6.5.1 / xorrisofs(1) `-iso-level`), which the ISO writer
//! always uses; level 3 in xorriso still stops at 100 extents of 4 GiB - 2
//! KiB (xorriso(1) `-file_size_limit`), refused here before anything is
//! written.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::backup::target::Target;
use crate::config::{BackupMethod, Config};
use crate::error::{Code, fail};

/// The largest single file xorriso writes at ISO level 3: 100 extents of
/// 4 GiB - 2 KiB (xorriso(1), -file_size_limit default `400g -200k`).
pub const MAX_FILE: u64 = 100 * ((4 << 30) - 2048);

/// The archive's and manifest's names in the target (the suffixes of
/// `mkrescue backup`, src/backup/mod.rs).
fn file_names(name: &str, encrypted: bool) -> [String; 2] {
    let enc = if encrypted { ".age" } else { "" };
    [
        format!("{name}.tar.zst{enc}"),
        format!("{name}.manifest.zst{enc}"),
    ]
}

/// The backup chosen for the ISO.
#[derive(Debug, Clone)]
pub struct IsoBackup {
    pub name: String,
    /// (file on this machine, path inside the ISO).
    pub files: Vec<(PathBuf, String)>,
    pub bytes: u64,
}

/// The checks that need no build: method, target, and that the target has
/// a complete backup at all (so a mistake costs nothing).
pub fn check_config(cfg: &Config) -> Result<()> {
    let target = target(cfg)?;
    if !crate::backup::list(&target)?.iter().any(|b| b.complete) {
        return Err(fail(
            Code::Input,
            format!(
                "--iso-backup: no complete backup at {}; run `mkrescue backup` first",
                target.describe()
            ),
        ));
    }
    Ok(())
}

fn target(cfg: &Config) -> Result<Target> {
    if cfg.backup.method != BackupMethod::Archive {
        return Err(fail(
            Code::Config,
            format!(
                "--iso-backup puts an archive backup on the ISO, but backup.method is {}; set backup.method = \"archive\" (rsync and borg backups stay on their server)",
                format!("{:?}", cfg.backup.method).to_lowercase()
            ),
        ));
    }
    let url = cfg.backup.target.as_deref().ok_or_else(|| {
        fail(
            Code::Config,
            "--iso-backup needs backup.target (where `mkrescue backup` writes) in /etc/mkrescue/local.toml",
        )
    })?;
    Target::parse(url, &cfg.backup.ssh_options)
}

/// Finds the newest complete archive backup of `host` at the configured
/// target; files of an ssh:// target are fetched into `work`.
pub fn newest(cfg: &Config, host: &str, work: &Path) -> Result<IsoBackup> {
    let target = target(cfg)?;
    let all = crate::backup::list(&target)?;
    let complete: Vec<&crate::backup::Listed> = all.iter().filter(|b| b.complete).collect();
    let b = pick(&complete, host).ok_or_else(|| {
        let others: Vec<String> = complete
            .iter()
            .map(|b| format!("{} ({})", b.name, b.host))
            .collect();
        fail(
            Code::Input,
            format!(
                "--iso-backup: no complete backup of {host} at {}{}; run `mkrescue backup` first",
                target.describe(),
                if others.is_empty() {
                    String::new()
                } else {
                    format!(" (there are: {})", others.join(", "))
                }
            ),
        )
    })?;
    let mut files = Vec::new();
    let mut bytes = 0;
    // An incremental needs its whole chain on the ISO.
    let chain = crate::backup::chain::resolve(&all, &b.name);
    let names = chain.links.iter().flat_map(|l| {
        let enc = all.iter().any(|x| &x.name == l && x.encrypted);
        file_names(l, enc)
    });
    for n in names {
        let path = match target.local_dir() {
            Some(dir) => dir.join(&n),
            None => {
                std::fs::create_dir_all(work)
                    .with_context(|| format!("creating {}", work.display()))?;
                let to = work.join(&n);
                let mut r = target.open(&n)?;
                let mut f = std::fs::File::create(&to)
                    .with_context(|| format!("creating {}", to.display()))?;
                std::io::copy(&mut r, &mut f)
                    .with_context(|| format!("fetching {n} from {}", target.describe()))?;
                to
            }
        };
        let len = std::fs::metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        check_size(&n, len)?;
        bytes += len;
        files.push((path, format!("backup/{n}")));
    }
    Ok(IsoBackup {
        name: b.name.clone(),
        files,
        bytes,
    })
}

/// The newest of `host`'s backups (the list is oldest first).
fn pick<'a>(
    complete: &[&'a crate::backup::Listed],
    host: &str,
) -> Option<&'a crate::backup::Listed> {
    complete.iter().rev().find(|b| b.host == host).copied()
}

/// Refuses a file an ISO 9660 image cannot hold.
pub fn check_size(name: &str, len: u64) -> Result<()> {
    if len > MAX_FILE {
        return Err(fail(
            Code::Input,
            format!(
                "--iso-backup: {name} is {:.1} GiB; an ISO 9660 file holds at most {:.1} GiB (xorriso: 100 extents of 4 GiB); keep this backup on its target or the USB medium's data partition",
                len as f64 / (1u64 << 30) as f64,
                MAX_FILE as f64 / (1u64 << 30) as f64
            ),
        ));
    }
    Ok(())
}

/// Bytes free for an unprivileged writer in the file system of `dir`
/// (statvfs(3): f_bavail blocks of f_frsize bytes).
pub fn free_bytes(dir: &Path) -> Result<u64> {
    crate::sys::free_bytes(dir).with_context(|| format!("statvfs {}", dir.display()))
}

/// Refuses to start an ISO of `need` bytes in `dir` when it will not fit.
pub fn check_space(dir: &Path, need: u64) -> Result<()> {
    let free = free_bytes(dir)?;
    if need > free {
        return Err(fail(
            Code::Host,
            format!(
                "the ISO with its backup needs about {:.1} GiB in {}, which has {:.1} GiB free; free space there or choose another --out",
                need as f64 / (1u64 << 30) as f64,
                dir.display(),
                free as f64 / (1u64 << 30) as f64
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_up_to_xorrisos_limit_pass() {
        assert!(check_size("a.tar.zst", 5 << 30).is_ok());
        assert!(check_size("a.tar.zst", MAX_FILE).is_ok());
        let e = check_size("a.tar.zst", MAX_FILE + 1).unwrap_err();
        assert!(format!("{e}").contains("a.tar.zst is 400.0 GiB"), "{e}");
        assert_eq!(crate::error::code_of(&e), Code::Input);
    }

    #[test]
    fn names_follow_the_backup_suffixes() {
        assert_eq!(
            file_names("db1-20260101T000000Z", true),
            [
                "db1-20260101T000000Z.tar.zst.age",
                "db1-20260101T000000Z.manifest.zst.age"
            ]
        );
    }

    #[test]
    fn too_little_space_is_refused() {
        let d = tempfile::tempdir().unwrap();
        assert!(check_space(d.path(), 1).is_ok());
        let e = check_space(d.path(), u64::MAX).unwrap_err();
        assert!(format!("{e}").contains("GiB free"), "{e}");
    }
}
