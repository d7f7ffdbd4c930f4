//! `mkrescue prune DIR`: retention on the backup server, for the backups
//! that hosts add through `mkrescue serve` (which can never delete). The
//! rule is the host's own ([`super::retention::keep`], `keep_daily` and
//! `keep_monthly`), applied per host and per set of backed-up paths, so a
//! backup of /etc never displaces the day's backup of /.
//!
//! Retention never breaks a chain: a kept incremental keeps every older
//! backup of its chain (its full backup and the incrementals before it,
//! known from the names alone, [`super::names`]), so what is kept still
//! restores exactly.
//!
//! Only complete backups (archive and manifest, both named by the scheme
//! of [`super::names`]) are pruned; incomplete ones, files of other names
//! and backups whose manifest cannot be read are left alone and reported.
//! Temporary files of uploads cut off over a day ago are deleted.
//! A backup goes manifest first, so it is never listed without its
//! archive.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use super::names::{self, Kind};
use crate::error::{Code, fail};
use crate::sys::dirfd::Dir;

/// What `mkrescue prune` prunes.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    pub dir: PathBuf,
    pub keep_daily: usize,
    pub keep_monthly: usize,
    /// Print what would go; delete nothing.
    pub dry_run: bool,
    pub json: bool,
    pub quiet: bool,
}

/// The report of `mkrescue prune --json`.
#[derive(Debug, Serialize, Default)]
pub struct PruneReport {
    pub dir: PathBuf,
    pub dry_run: bool,
    pub keep_daily: usize,
    pub keep_monthly: usize,
    /// Backups kept (names), oldest first.
    pub kept: Vec<String>,
    /// Of those, the ones kept only because a kept incremental needs them.
    pub kept_for_chains: Vec<String>,
    /// Backups deleted (or, with --dry-run, that would be).
    pub pruned: Vec<String>,
    /// Backups missing their archive or manifest: left alone.
    pub incomplete: Vec<String>,
    /// Backups whose manifest cannot be read: left alone.
    pub unreadable: Vec<String>,
    /// Temporary files of uploads cut off over a day ago (a killed
    /// `mkrescue serve` on a file system without `O_TMPFILE`, or the
    /// `cat` upload of a host without serve), deleted.
    pub stale_parts: Vec<String>,
}

/// How old a temporary upload file must be before prune deletes it: no
/// upload runs for a day.
const STALE_PART_SECS: u64 = 86_400;

/// Whether `name` is the temporary file of an upload of a backup file:
/// `.NAME.part` (the `cat` upload) or `.NAME.PID-N.part` (serve).
fn is_part(name: &str) -> bool {
    let Some(inner) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".part")) else {
        return false;
    };
    names::parse(inner).is_ok()
        || inner
            .rsplit_once('.')
            .is_some_and(|(n, tag)| names::parse(n).is_ok() && tag.contains('-'))
}

#[derive(Default)]
struct Found {
    archive: Option<String>,
    manifest: Option<String>,
    host: String,
    stamp: String,
    /// An incremental's full backup (its stamp).
    full: Option<String>,
    encrypted: bool,
}

/// Backups compared with each other: one host's, of one set of paths
/// (empty when encrypted: the server cannot read them). Each member is a
/// (stamp, name).
type Group = (String, Vec<String>);

/// Decides and (without `dry_run`) deletes.
pub fn prune(o: &PruneOptions) -> Result<PruneReport> {
    let not_dir = |why: String| {
        fail(
            Code::Usage,
            format!(
                "prune {}: {why}; give the backup directory of one host (the DIR of its `mkrescue serve`)",
                o.dir.display()
            ),
        )
    };
    match std::fs::metadata(&o.dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(not_dir("not a directory".into())),
        Err(e) => return Err(not_dir(e.to_string())),
    }
    let dir = Dir::open(&o.dir).map_err(|e| not_dir(e.to_string()))?;
    let mut found: BTreeMap<String, Found> = BTreeMap::new();
    let mut parts = Vec::new();
    for (name, _) in dir.regular_files()? {
        let Ok(n) = names::parse(&name) else {
            if is_part(&name) {
                parts.push(name);
            }
            continue;
        };
        let f = found.entry(n.base.to_string()).or_default();
        f.host = n.host.to_string();
        f.stamp = n.stamp.to_string();
        f.full = n.full.map(str::to_string);
        f.encrypted = n.encrypted;
        match n.kind {
            Kind::Archive => f.archive = Some(name.clone()),
            Kind::Manifest => f.manifest = Some(name.clone()),
        }
    }
    let mut rep = PruneReport {
        dir: o.dir.clone(),
        dry_run: o.dry_run,
        keep_daily: o.keep_daily,
        keep_monthly: o.keep_monthly,
        ..Default::default()
    };
    let mut groups: BTreeMap<Group, Vec<(String, String)>> = BTreeMap::new();
    for (base, f) in &found {
        let (Some(_), Some(m)) = (&f.archive, &f.manifest) else {
            rep.incomplete.push(base.clone());
            continue;
        };
        let paths = if f.encrypted {
            // No key on the server: the paths are unknown.
            Vec::new()
        } else {
            match dir
                .open_file(m)
                .map_err(anyhow::Error::from)
                .and_then(|r| super::manifest::read_head(r, Path::new(m)))
            {
                Ok(h) => h.paths,
                Err(e) => {
                    log::warn!("{}: {e:#}; backup {base} left alone", o.dir.display());
                    rep.unreadable.push(base.clone());
                    continue;
                }
            }
        };
        groups
            .entry((f.host.clone(), paths))
            .or_default()
            .push((f.stamp.clone(), base.clone()));
    }
    let mut failed = Vec::new();
    for p in parts {
        let old = std::fs::symlink_metadata(o.dir.join(&p))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > STALE_PART_SECS);
        if !old {
            continue;
        }
        if !o.dry_run {
            if let Err(e) = std::fs::remove_file(o.dir.join(&p)) {
                failed.push(format!("{p}: {e}"));
                continue;
            }
        }
        rep.stale_parts.push(p);
    }
    for members in groups.values_mut() {
        members.sort();
        let stamps: Vec<String> = members.iter().map(|m| m.0.clone()).collect();
        let keep = super::retention::keep(&stamps, o.keep_daily, o.keep_monthly);
        // The chain rule: what a kept incremental is made on stays.
        let found = &found;
        let needed: std::collections::BTreeSet<&String> = members
            .iter()
            .filter(|(stamp, _)| keep.contains(stamp))
            .filter_map(|(stamp, base)| found[base].full.as_ref().map(|f| (stamp, f)))
            .flat_map(|(stamp, full)| {
                members.iter().filter(move |(s, b)| {
                    s < stamp && (s == full || found[b].full.as_ref() == Some(full))
                })
            })
            .map(|(s, _)| s)
            .collect();
        for (stamp, base) in members.iter() {
            if keep.contains(stamp) || needed.contains(stamp) {
                rep.kept.push(base.clone());
                if !keep.contains(stamp) {
                    rep.kept_for_chains.push(base.clone());
                }
                continue;
            }
            rep.pruned.push(base.clone());
            if o.dry_run {
                continue;
            }
            let f = &found[base];
            for name in [&f.manifest, &f.archive].into_iter().flatten() {
                if let Err(e) = std::fs::remove_file(o.dir.join(name)) {
                    failed.push(format!("{name}: {e}"));
                }
            }
        }
    }
    let by_stamp = |v: &mut Vec<String>| {
        v.sort_by(|a, b| {
            let s = |n: &String| found.get(n).map(|f| f.stamp.clone()).unwrap_or_default();
            s(a).cmp(&s(b)).then(a.cmp(b))
        })
    };
    by_stamp(&mut rep.kept);
    by_stamp(&mut rep.kept_for_chains);
    by_stamp(&mut rep.pruned);
    if !failed.is_empty() {
        return Err(fail(
            Code::Failed,
            format!(
                "prune {}: {} files could not be deleted (first: {}); {} backups were pruned",
                o.dir.display(),
                failed.len(),
                failed[0],
                rep.pruned.len()
            ),
        ));
    }
    if !o.dry_run && !rep.pruned.is_empty() {
        let _ = dir.sync();
    }
    Ok(rep)
}

/// `mkrescue prune`: prunes, prints, and fails (exit 5) when a manifest
/// could not be read (its backup is left alone).
pub fn prune_command(o: &PruneOptions) -> Result<()> {
    let rep = prune(o)?;
    if o.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &rep)?;
        writeln!(out)?;
    } else {
        let mut out = std::io::stdout().lock();
        let verb = if o.dry_run { "would prune" } else { "pruned" };
        for n in &rep.pruned {
            writeln!(out, "{verb} {n}")?;
        }
        for n in &rep.kept_for_chains {
            writeln!(out, "kept {n} (a kept incremental is made on it)")?;
        }
        for n in &rep.stale_parts {
            writeln!(out, "{verb} {n} (an upload cut off over a day ago)")?;
        }
        if !o.quiet {
            eprintln!(
                "mkrescue: prune {}: {} backups kept, {} {verb} (keep_daily {}, keep_monthly {}){}",
                o.dir.display(),
                rep.kept.len(),
                rep.pruned.len(),
                o.keep_daily,
                o.keep_monthly,
                if rep.incomplete.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} incomplete left alone ({})",
                        rep.incomplete.len(),
                        rep.incomplete.join(", ")
                    )
                }
            );
        }
    }
    if let Some(first) = rep.unreadable.first() {
        return Err(fail(
            Code::Input,
            format!(
                "prune {}: the manifest of {} backups cannot be read (first: {first}); they were left alone: check them with `mkrescue backup verify --target file://{} --archive {first}`",
                o.dir.display(),
                rep.unreadable.len(),
                o.dir.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn keeps_by_day_and_leaves_what_it_cannot_judge() {
        let t = tempfile::tempdir().unwrap();
        // Encrypted backups: the server never reads their manifests.
        let days = ["20261201T010000Z", "20261202T010000Z", "20261203T010000Z"];
        for d in days {
            for suffix in [".tar.zst.age", ".manifest.zst.age"] {
                std::fs::write(t.path().join(format!("web1-{d}{suffix}")), b"x").unwrap();
            }
        }
        // Incomplete, unreadable, and no backup at all: left alone.
        std::fs::write(t.path().join("web1-20261101T010000Z.tar.zst"), b"x").unwrap();
        std::fs::write(t.path().join("web1-20261102T010000Z.tar.zst"), b"x").unwrap();
        std::fs::write(t.path().join("web1-20261102T010000Z.manifest.zst"), b"junk").unwrap();
        std::fs::write(t.path().join("notes.txt"), b"x").unwrap();
        // Temporary files of cut uploads: only the old one goes.
        let part = ".web1-20261204T010000Z.tar.zst.123-0.part";
        std::fs::write(t.path().join(part), b"x").unwrap();
        let day_ago = (crate::sys::time::now() - 2 * 86_400, 0);
        crate::sys::fs::set_times(&t.path().join(part), day_ago, day_ago).unwrap();
        let fresh = ".web1-20261205T010000Z.manifest.zst.part";
        std::fs::write(t.path().join(fresh), b"x").unwrap();
        let before = names(t.path());
        let mut o = PruneOptions {
            dir: t.path().to_path_buf(),
            keep_daily: 2,
            keep_monthly: 0,
            dry_run: true,
            ..Default::default()
        };
        let r = prune(&o).unwrap();
        assert_eq!(r.pruned, vec!["web1-20261201T010000Z"]);
        assert_eq!(
            r.kept,
            vec!["web1-20261202T010000Z", "web1-20261203T010000Z"]
        );
        assert_eq!(r.incomplete, vec!["web1-20261101T010000Z"]);
        assert_eq!(r.unreadable, vec!["web1-20261102T010000Z"]);
        assert_eq!(r.stale_parts, vec![part]);
        assert_eq!(names(t.path()), before, "--dry-run deletes nothing");
        o.dry_run = false;
        let e = prune_command(&o).unwrap_err();
        assert_eq!(crate::error::code_of(&e), Code::Input);
        let after = names(t.path());
        assert_eq!(after.len(), before.len() - 3);
        assert!(!after.contains(&part.to_string()) && after.contains(&fresh.to_string()));
        assert!(!after.iter().any(|n| n.contains("20261201")));
        // 0 and 0 still keep the newest.
        o.keep_daily = 0;
        let r = prune(&o).unwrap();
        assert_eq!(r.kept, vec!["web1-20261203T010000Z"]);
        assert!(!names(t.path()).iter().any(|n| n.contains("20261202T")));
        assert!(names(t.path()).contains(&"notes.txt".to_string()));
    }

    #[test]
    fn a_kept_incremental_keeps_its_chain() {
        let t = tempfile::tempdir().unwrap();
        let f = "20261201T010000.000000Z";
        let names_ = [
            format!("web1-{f}"),
            format!("web1-20261202T010000.000000Z_{f}_{f}"),
            format!("web1-20261203T010000.000000Z_20261202T010000.000000Z_{f}"),
            // A new chain: its full one, then an incremental on it.
            "web1-20261204T010000.000000Z".to_string(),
            "web1-20261205T010000.000000Z_20261204T010000.000000Z_20261204T010000.000000Z"
                .to_string(),
        ];
        for n in &names_ {
            for suffix in [".tar.zst.age", ".manifest.zst.age"] {
                std::fs::write(t.path().join(format!("{n}{suffix}")), b"x").unwrap();
            }
        }
        let o = PruneOptions {
            dir: t.path().to_path_buf(),
            keep_daily: 3,
            keep_monthly: 0,
            ..Default::default()
        };
        let r = prune(&o).unwrap();
        // Days 3, 4, 5 are kept by the rule; day 3 needs days 1 and 2.
        assert_eq!(r.kept, names_.to_vec());
        assert_eq!(r.kept_for_chains, names_[..2].to_vec());
        assert!(r.pruned.is_empty());
        let r = prune(&PruneOptions {
            keep_daily: 2,
            ..o.clone()
        })
        .unwrap();
        assert_eq!(r.pruned, names_[..3].to_vec());
        assert_eq!(r.kept, names_[3..].to_vec());
        assert_eq!(r.kept_for_chains, Vec::<String>::new());
    }

    #[test]
    fn a_file_is_no_directory() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        std::fs::write(&f, b"").unwrap();
        for dir in [f, t.path().join("missing")] {
            let e = prune(&PruneOptions {
                dir,
                ..Default::default()
            })
            .unwrap_err();
            assert_eq!(crate::error::code_of(&e), Code::Usage);
        }
    }
}
