//! `--pxe-upload ssh://[USER@]HOST[:PORT]/DIR` (or `output.pxe_upload`):
//! after the PXE tree is written under `--pxe-root`, push it to the
//! recovery server's TFTP/HTTP root with rsync over SSH.
//!
//! The tree is shared by a fleet (base layers stored once by sha256, one
//! `pxelinux.cfg/01-MAC` and host layer per host), so the upload only adds
//! and updates files, never deletes (no `--delete`): other hosts' files on
//! the server stay. Bases and kernels are named by their sha256, so one the
//! server lists under the same name is the same file: it is left out of
//! the transfer (not even compared), and only the host's own files travel. SSH runs in batch mode (keys only, never a password
//! prompt) with `output.pxe_ssh_options` (e.g. `["-i", "/root/.ssh/pxe"]`).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::backup::target::Target;
use crate::error::{Code, fail};
use crate::exec::Cmd;

/// Where the tree goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// `user@host` or `host`.
    pub dest: String,
    pub port: Option<u16>,
    pub dir: String,
}

impl Remote {
    /// `ssh://[USER@]HOST[:PORT]/DIR`, the syntax of backup targets.
    pub fn parse(url: &str) -> Result<Remote> {
        let bad = || {
            fail(
                Code::Usage,
                format!(
                    "--pxe-upload {url:?}: want ssh://[USER@]HOST[:PORT]/DIR (the recovery server's TFTP/HTTP root)"
                ),
            )
        };
        if !url.starts_with("ssh://") {
            return Err(bad());
        }
        match Target::parse(url, &[]).map_err(|_| bad())? {
            Target::Ssh {
                dest, port, dir, ..
            } if !dest.is_empty() && dir.len() > 1 => Ok(Remote { dest, port, dir }),
            _ => Err(bad()),
        }
    }

    pub fn describe(&self) -> String {
        match self.port {
            Some(p) => format!("ssh://{}:{p}{}", self.dest, self.dir),
            None => format!("ssh://{}{}", self.dest, self.dir),
        }
    }
}

/// Quotes one word for rsync's `-e` string, which rsync splits on
/// whitespace honouring single and double quotes (rsync(1), `--rsh`).
fn rsh_word(w: &str) -> String {
    if !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+%".contains(c))
    {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\"'\"'"))
    }
}

/// The `-e` command rsync runs to reach the server.
pub fn rsh(remote: &Remote, ssh_options: &[String]) -> String {
    let mut words = vec!["ssh".to_string(), "-o".into(), "BatchMode=yes".into()];
    if let Some(p) = remote.port {
        words.extend(["-p".to_string(), p.to_string()]);
    }
    words.extend(ssh_options.iter().cloned());
    words
        .iter()
        .map(|w| rsh_word(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The content-addressed directories of the tree (`pxe.rs`).
const CONTENT_ADDRESSED: &[&str] = &["mkrescue/base", "mkrescue/kernel"];

/// What an upload sent and left out.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UploadReport {
    pub url: String,
    /// Bases and kernels (`mkrescue/base/<sha256>.img`) the server already
    /// had under the same name: not sent.
    pub skipped: Vec<String>,
    /// Whether the base of this build was among them.
    pub base_on_server: bool,
}

/// The names in the server's `DIR/<sub>/` (empty when it does not exist
/// yet), from `rsync --list-only`: the same transport and login as the
/// upload, so a server that only allows rsync answers it too.
fn remote_names(remote: &Remote, ssh_options: &[String], sub: &str) -> Result<BTreeSet<String>> {
    let src = format!(
        "{}:{}/{sub}/",
        remote.dest,
        remote.dir.trim_end_matches('/')
    );
    let done = Cmd::new("rsync")
        .arg("--list-only")
        .arg("-e")
        .arg(rsh(remote, ssh_options))
        .arg(&src)
        .run_any()?;
    match done.code {
        Some(0) => Ok(parse_list(&done.stdout)),
        // 23: "partial transfer due to error" (rsync(1) EXIT VALUES), what
        // a missing directory gives; a new server has none yet.
        Some(23) if done.stderr.contains("No such file or directory") => Ok(BTreeSet::new()),
        _ => Err(fail(
            Code::Failed,
            format!(
                "listing {sub}/ on {} (rsync --list-only over ssh) failed: {}; check that the server is reachable with the key and has rsync",
                remote.describe(),
                done.stderr.replace('\n', " | ")
            ),
        )),
    }
}

/// Regular files' names of an `rsync --list-only` listing: lines of
/// `-rw-r--r--  1,234 2026/12/05 10:00:00 NAME` (directories start with
/// `d`, links with `l`). Our names have no blanks.
fn parse_list(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(str::to_string)
        .collect()
}

/// Relative paths of the content-addressed files below `root` whose names
/// `has` says the server holds.
fn already_there(
    root: &Path,
    mut has: impl FnMut(&str) -> Result<BTreeSet<String>>,
) -> Result<Vec<String>> {
    let mut skip = Vec::new();
    for sub in CONTENT_ADDRESSED {
        let dir = root.join(sub);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut local: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if local.is_empty() {
            continue;
        }
        local.sort();
        let there = has(sub)?;
        skip.extend(
            local
                .into_iter()
                .filter(|n| there.contains(n))
                .map(|n| format!("{sub}/{n}")),
        );
    }
    Ok(skip)
}

/// rsync(1) of everything below `root` into the server's directory:
/// `-r` recursive, `-l` symlinks as symlinks, `-t` times (so a re-run
/// skips unchanged files), `--mkpath` creates the directory with its
/// parents (rsync >= 3.2.3), `--chmod` makes the files readable by the
/// TFTP/HTTP daemon whatever the local umask. Each base or kernel the
/// server already lists by name is excluded (`--exclude=/PATH`, anchored
/// at the transfer's root).
pub fn upload(
    root: &Path,
    remote: &Remote,
    ssh_options: &[String],
    dry_run: bool,
) -> Result<UploadReport> {
    let mut src = root.as_os_str().to_owned();
    // A trailing slash: the contents of root, not root itself.
    src.push("/");
    let dst = format!("{}:{}/", remote.dest, remote.dir.trim_end_matches('/'));
    let skipped = if dry_run {
        Vec::new()
    } else {
        already_there(root, |sub| remote_names(remote, ssh_options, sub))?
    };
    for s in &skipped {
        log::info!("{s} is already on {}: not uploaded", remote.describe());
    }
    Cmd::new("rsync")
        .args(["-rlt", "--mkpath", "--chmod=D755,F644"])
        .args(skipped.iter().map(|s| format!("--exclude=/{s}")))
        .arg("-e")
        .arg(rsh(remote, ssh_options))
        .arg(src)
        .arg(&dst)
        .dry_run(dry_run)
        .output()
        .with_context(|| {
            format!(
                "uploading the PXE tree {} to {} (rsync over ssh; the server needs rsync too)",
                root.display(),
                remote.describe()
            )
        })?;
    Ok(UploadReport {
        url: remote.describe(),
        skipped,
        base_on_server: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            Remote::parse("ssh://root@pxe.example:2222/srv/tftp").unwrap(),
            Remote {
                dest: "root@pxe.example".into(),
                port: Some(2222),
                dir: "/srv/tftp".into()
            }
        );
        assert_eq!(Remote::parse("ssh://pxe/srv/tftp").unwrap().port, None);
        for bad in [
            "file:///srv/tftp",
            "/srv/tftp",
            "ssh://pxe",
            "ssh://pxe/",
            "rsync://pxe/srv",
        ] {
            let e = Remote::parse(bad).unwrap_err();
            assert!(format!("{e}").contains("ssh://[USER@]HOST"), "{bad}: {e}");
            assert_eq!(crate::error::code_of(&e), Code::Usage);
        }
    }

    #[test]
    fn listing_names_only_regular_files() {
        let text = "drwxr-xr-x          4,096 2026/12/06 04:00:00 .\n\
                    -rw-r--r--    103,913,913 2026/12/06 04:00:01 ab12.img\n\
                    lrwxrwxrwx              5 2026/12/06 04:00:02 cur -> ab12.img\n\
                    -rw-r--r--             77 2026/12/06 04:00:03 cd34.img\n";
        assert_eq!(
            parse_list(text).into_iter().collect::<Vec<_>>(),
            ["ab12.img", "cd34.img"]
        );
    }

    #[test]
    fn only_names_the_server_lists_are_skipped() {
        let d = tempfile::tempdir().unwrap();
        for f in [
            "mkrescue/base/aa.img",
            "mkrescue/base/bb.img",
            "mkrescue/kernel/kk.vmlinuz",
        ] {
            std::fs::create_dir_all(d.path().join(f).parent().unwrap()).unwrap();
            std::fs::write(d.path().join(f), f).unwrap();
        }
        let mut asked = Vec::new();
        let skip = already_there(d.path(), |sub| {
            asked.push(sub.to_string());
            Ok(match sub {
                "mkrescue/base" => ["bb.img".to_string(), "zz.img".into()].into(),
                _ => BTreeSet::new(),
            })
        })
        .unwrap();
        assert_eq!(skip, ["mkrescue/base/bb.img"]);
        assert_eq!(asked, ["mkrescue/base", "mkrescue/kernel"]);
    }

    #[test]
    fn rsh_quotes_what_rsync_would_split() {
        let r = Remote::parse("ssh://u@h:2200/x").unwrap();
        assert_eq!(
            rsh(&r, &["-i".into(), "/root/my keys/pxe".into()]),
            "ssh -o BatchMode=yes -p 2200 -i '/root/my keys/pxe'"
        );
    }
}
