//! `mkrescue pxe prune --pxe-root DIR`: on the recovery server, remove the
//! bases and kernels no host menu refers to any more.
//!
//! Bases (`mkrescue/base/<sha256>.img`) and kernels
//! (`mkrescue/kernel/<sha256>.vmlinuz`) are shared by every host of one OS
//! and kernel and never overwritten (`pxe.rs`): a host rebuilt after an
//! upgrade points its menus at a new one and the old one stays. What is
//! still in use is what a menu names: `pxelinux.cfg/*`, `grub/grub.cfg*`
//! and `mkrescue/hosts/*/boot.ipxe`. Everything else in those two
//! directories goes, with its line of the tree's SHA256SUMS, so that
//! `mkrescue verify DIR` still passes.
//!
//! A build writes its base before its menus, and touches a base it reuses
//! (`pxe.rs`): a file modified within [`GRACE`] is kept even when no menu
//! names it yet, so a prune never races a build or an upload in progress.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::error::{Code, fail};

/// The content-addressed directories and the suffix of their files.
const SHARED: &[(&str, &str)] = &[("mkrescue/base", ".img"), ("mkrescue/kernel", ".vmlinuz")];

/// How long a base or kernel no menu names is kept after its last change.
pub const GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

/// What a prune found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    pub pxe_root: PathBuf,
    pub dry_run: bool,
    /// Menus read (relative paths).
    pub menus: Vec<String>,
    /// Shared files a menu refers to (relative paths), kept.
    pub kept: Vec<String>,
    /// Shared files no menu refers to (relative paths): removed, or with
    /// --dry-run what would be.
    pub removed: Vec<String>,
    pub removed_bytes: u64,
    /// Shared files a menu refers to that are not in the tree: that host
    /// cannot boot until it is rebuilt (`mkrescue --output pxe`).
    pub missing: Vec<String>,
    /// Unreferenced but changed within the last hour (a build may be
    /// writing its menus): kept until a later prune.
    pub recent: Vec<String>,
}

/// The relative paths of every file that can name a base or kernel.
fn menus(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let files = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_file())
                    .collect()
            })
            .unwrap_or_default()
    };
    out.extend(files(&root.join("pxelinux.cfg")));
    out.extend(files(&root.join("grub")).into_iter().filter(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("grub.cfg"))
    }));
    if let Ok(rd) = std::fs::read_dir(root.join("mkrescue/hosts")) {
        out.extend(
            rd.flatten()
                .map(|e| e.path().join("boot.ipxe"))
                .filter(|p| p.is_file()),
        );
    }
    let mut rel: Vec<PathBuf> = out
        .into_iter()
        .filter_map(|p| p.strip_prefix(root).ok().map(Path::to_path_buf))
        .collect();
    rel.sort();
    rel
}

/// `mkrescue/base/<hex>.img` and `mkrescue/kernel/<hex>.vmlinuz` named in
/// a menu, whatever precedes them (`/mkrescue/base/` in GRUB's, relative
/// in pxelinux's, `../../base/` in iPXE's).
pub fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (dir, suffix) in SHARED {
        let leaf = dir.rsplit('/').next().unwrap_or(dir);
        let needle = format!("{leaf}/");
        let mut rest = text;
        while let Some(i) = rest.find(&needle) {
            let after = &rest[i + needle.len()..];
            let hex: String = after
                .chars()
                .take_while(|c| c.is_ascii_hexdigit())
                .collect();
            if hex.len() == 64 && after[hex.len()..].starts_with(suffix) {
                out.insert(format!("{dir}/{hex}{suffix}"));
            }
            rest = after;
        }
    }
    out
}

/// Removes (or with `dry_run` lists) the shared files of `root` that no
/// menu refers to.
pub fn prune(root: &Path, dry_run: bool) -> Result<PruneReport> {
    if !root.join("mkrescue/base").is_dir() {
        return Err(fail(
            Code::Usage,
            format!(
                "{} is not a PXE root written by `mkrescue --output pxe` (it has no mkrescue/base/); give the TFTP/HTTP root with --pxe-root",
                root.display()
            ),
        ));
    }
    let mut report = PruneReport {
        pxe_root: root.to_path_buf(),
        dry_run,
        ..PruneReport::default()
    };
    let mut used = BTreeSet::new();
    for m in menus(root) {
        let p = root.join(&m);
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        used.extend(referenced(&text));
        report.menus.push(m.to_string_lossy().into_owned());
    }
    let mut present = BTreeSet::new();
    for (dir, suffix) in SHARED {
        let d = root.join(dir);
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let e = e.with_context(|| format!("reading {}", d.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(suffix) && e.file_type().is_ok_and(|t| t.is_file()) {
                present.insert(format!("{dir}/{name}"));
            }
        }
    }
    report.kept = present.intersection(&used).cloned().collect();
    report.missing = used.difference(&present).cloned().collect();
    let now = std::time::SystemTime::now();
    for rel in present.difference(&used) {
        let p = root.join(rel);
        let changed = std::fs::metadata(&p)
            .and_then(|m| m.modified())
            .with_context(|| format!("reading {}", p.display()))?;
        let age = now.duration_since(changed).unwrap_or_default();
        if age < GRACE {
            report.recent.push(rel.clone());
        } else {
            report.removed.push(rel.clone());
        }
    }
    for rel in &report.removed {
        let p = root.join(rel);
        report.removed_bytes += std::fs::metadata(&p)
            .with_context(|| format!("reading {}", p.display()))?
            .len();
        if !dry_run {
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    if !dry_run && !report.removed.is_empty() {
        super::sums::forget(root, &report.removed)?;
    }
    Ok(report)
}

/// The human report: one line per file, then the totals.
pub fn render(r: &PruneReport) -> String {
    let verb = if r.dry_run { "would remove" } else { "removed" };
    let mut s = String::new();
    for m in &r.missing {
        s.push_str(&format!(
            "warning: {m} is named by a menu but missing: rebuild that host with `mkrescue --output pxe`\n"
        ));
    }
    for f in &r.removed {
        s.push_str(&format!("{verb} {f}\n"));
    }
    for f in &r.recent {
        s.push_str(&format!(
            "kept {f}: unreferenced but changed within the last hour (a build may be writing its menus)\n"
        ));
    }
    s.push_str(&format!(
        "{} {} unreferenced file(s) ({:.1} MiB); {} still in use by {} menu(s)\n",
        verb,
        r.removed.len(),
        r.removed_bytes as f64 / (1024.0 * 1024.0),
        r.kept.len(),
        r.menus.len()
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_every_menu_syntax() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let k = "c".repeat(64);
        let text = format!(
            "KERNEL mkrescue/kernel/{k}.vmlinuz\nINITRD mkrescue/base/{a}.img,mkrescue/hosts/h/host.img\n\
             initrd /mkrescue/base/{b}.img /mkrescue/hosts/h/host.img\n\
             initrd ../../base/{a}.img\nbase/{}.img base/{a}.iso\n",
            "d".repeat(63)
        );
        let got: Vec<String> = referenced(&text).into_iter().collect();
        assert_eq!(
            got,
            [
                format!("mkrescue/base/{a}.img"),
                format!("mkrescue/base/{b}.img"),
                format!("mkrescue/kernel/{k}.vmlinuz"),
            ]
        );
    }
}
