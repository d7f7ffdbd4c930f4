//! `--pxe-upload ssh://[USER@]HOST[:PORT]/DIR` (or `output.pxe_upload`):
//! after the PXE tree is written under `--pxe-root`, push it to the
//! recovery server's TFTP/HTTP root with rsync over SSH.
//!
//! The tree is shared by a fleet (base layers stored once by sha256, one
//! `pxelinux.cfg/01-MAC` and host layer per host), so the upload only adds
//! and updates files, never deletes (no `--delete`): other hosts' files on
//! the server stay. SSH runs in batch mode (keys only, never a password
//! prompt) with `output.pxe_ssh_options` (e.g. `["-i", "/root/.ssh/pxe"]`).

use std::path::Path;

use anyhow::{Context, Result};

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

/// rsync(1) of everything below `root` into the server's directory:
/// `-r` recursive, `-l` symlinks as symlinks, `-t` times (so a re-run
/// skips unchanged files), `--mkpath` creates the directory with its
/// parents (rsync >= 3.2.3), `--chmod` makes the files readable by the
/// TFTP/HTTP daemon whatever the local umask.
pub fn upload(root: &Path, remote: &Remote, ssh_options: &[String], dry_run: bool) -> Result<()> {
    let mut src = root.as_os_str().to_owned();
    // A trailing slash: the contents of root, not root itself.
    src.push("/");
    let dst = format!("{}:{}/", remote.dest, remote.dir.trim_end_matches('/'));
    Cmd::new("rsync")
        .args(["-rlt", "--mkpath", "--chmod=D755,F644"])
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
    Ok(())
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
    fn rsh_quotes_what_rsync_would_split() {
        let r = Remote::parse("ssh://u@h:2200/x").unwrap();
        assert_eq!(
            rsh(&r, &["-i".into(), "/root/my keys/pxe".into()]),
            "ssh -o BatchMode=yes -p 2200 -i '/root/my keys/pxe'"
        );
    }
}
