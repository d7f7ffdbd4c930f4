//! The `borg` method: the admin's own BorgBackup repository, driven through
//! the `borg` CLI (Debian's borgbackup 1.2): `create`, `list --json`,
//! `check --verify-data`, `extract`.
//!
//! Only ever adds archives: no `prune`, no `compact`, no `delete`, so an
//! append-only repository (`borg init --append-only`, or a server that
//! forces it with `borg serve --append-only`) works; pruning stays with
//! whoever owns the repository. The passphrase comes from a command
//! (`BORG_PASSCOMMAND`, borg(1) "Environment Variables"), never from the
//! configuration file itself.

use std::path::Path;

use anyhow::{Context, Result};

use super::create::{ALWAYS_PRUNED, Source};
use crate::exec::Cmd;

/// A repository and how to open it.
#[derive(Debug, Clone)]
pub struct Repo {
    pub url: String,
    pub passcommand: Option<String>,
}

/// Whether `borg` can be started here (on `PATH`).
fn borg_present() -> bool {
    crate::sys::in_path("borg")
}

impl Repo {
    /// Refuses at once, with the way out, where there is no borg: a rescue
    /// system carries it only when it was built with backup.method = "borg".
    pub fn check_available(&self) -> Result<()> {
        if borg_present() {
            return Ok(());
        }
        Err(crate::error::fail(
            crate::error::Code::Host,
            format!(
                "borg not found on PATH: install borgbackup (apt-get install borgbackup). A rescue system carries borg only when built with backup.method = \"borg\"; in one without it, rebuild the disks with `mkrescue recover --layout-only`, mount them and run `borg extract {}::ARCHIVE` in them from a system that has borg",
                self.url
            ),
        ))
    }

    fn cmd(&self) -> Cmd {
        let mut c = Cmd::new("borg")
            // No questions: cron and the rescue system have nobody to ask.
            .env("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes")
            .env("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes")
            .env("BORG_DISPLAY_PASSPHRASE", "no");
        if let Some(p) = &self.passcommand {
            c = c.env("BORG_PASSCOMMAND", p);
        }
        c
    }

    /// `borg create` of `src` as archive `name`; paths are stored relative
    /// to the root (`etc/...`), so `extract` in the target directory puts
    /// them in place.
    pub fn create(&self, src: &Source, name: &str, dry_run: bool) -> Result<serde_json::Value> {
        let mut c = self
            .cmd()
            .current_dir(&src.root)
            .args(["create", "--json", "--one-file-system", "--numeric-ids"])
            .dry_run(dry_run);
        for d in ALWAYS_PRUNED {
            c = c.args(["--exclude", &format!("sh:{d}/*")]);
        }
        for p in &src.prune {
            if let Ok(rel) = p.strip_prefix(&src.root) {
                if !rel.as_os_str().is_empty() {
                    c = c.args(["--exclude", &format!("sh:{}/*", rel.display())]);
                }
            }
        }
        for x in &src.exclude {
            let x = x.trim_start_matches('/');
            let pat = if x.contains('/') {
                x.to_string()
            } else {
                format!("**/{x}")
            };
            c = c.args(["--exclude", &format!("sh:{pat}")]);
        }
        c = c.arg(format!("{}::{name}", self.url));
        for p in &src.paths {
            let rel = p.strip_prefix("/").unwrap_or(p);
            c = c.arg(if rel.as_os_str().is_empty() {
                Path::new(".")
            } else {
                rel
            });
        }
        let out = c.output().context("borg create")?;
        if dry_run {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&out).context("reading the output of borg create --json")
    }

    /// Archive names, oldest first.
    pub fn list(&self) -> Result<Vec<String>> {
        let out = self
            .cmd()
            .args(["list", "--json", &self.url])
            .output()
            .context("borg list")?;
        let v: serde_json::Value =
            serde_json::from_slice(&out).context("reading borg list --json")?;
        Ok(v["archives"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `borg check --verify-data` of one archive: reads and checks every
    /// chunk.
    pub fn check(&self, name: &str) -> Result<()> {
        self.cmd()
            .args(["check", "--verify-data", &format!("{}::{name}", self.url)])
            .output()
            .context("borg check")?;
        Ok(())
    }

    /// `borg extract` into `to`.
    pub fn extract(&self, name: &str, to: &Path) -> Result<()> {
        self.cmd()
            .current_dir(to)
            .args([
                "extract",
                "--numeric-ids",
                "--sparse",
                &format!("{}::{name}", self.url),
            ])
            .output()
            .context("borg extract")?;
        Ok(())
    }
}
