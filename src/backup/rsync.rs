//! The `rsync` method: a dated snapshot directory per run on the backup
//! server (or a local directory), filled by `rsync -aHAX --numeric-ids`
//! with `--link-dest` to the previous snapshot, so unchanged files are
//! hard links and each snapshot costs only what changed (rsync(1),
//! "--link-dest"). Old snapshots are pruned by a retention rule: the
//! newest snapshot of each of the last N days and of each of the last M
//! months are kept.
//!
//! A snapshot is written as `STAMP.part` and renamed to `STAMP` once rsync
//! finished, so an interrupted run never looks complete (and the next run
//! starts from the last complete one).

use std::path::Path;

use anyhow::{Context, Result};

use super::create::{ALWAYS_PRUNED, Source};
use super::target::Target;
use crate::exec::Cmd;

/// The complete snapshots at the target, oldest first.
pub fn snapshots(target: &Target) -> Result<Vec<String>> {
    let mut v: Vec<String> = target
        .list()?
        .into_iter()
        .filter(|n| super::names::is_stamp(n))
        .collect();
    v.sort();
    Ok(v)
}

/// The `-e` argument: our ssh command line, as rsync splits it (rsync(1),
/// "--rsh": words separated by spaces, single quotes group).
fn rsh(target: &Target) -> Option<(String, String)> {
    let Target::Ssh {
        dest,
        port,
        dir,
        options,
        ..
    } = target
    else {
        return None;
    };
    let mut e = vec!["ssh".to_string(), "-o".into(), "BatchMode=yes".into()];
    if let Some(p) = port {
        e.push("-p".into());
        e.push(p.to_string());
    }
    e.extend(options.iter().cloned());
    let quoted: Vec<String> = e
        .iter()
        .map(|w| {
            if w.contains([' ', '\'', '"']) {
                format!("'{}'", w.replace('\'', ""))
            } else {
                w.clone()
            }
        })
        .collect();
    Some((
        quoted.join(" "),
        format!("{dest}:{}", dir.trim_end_matches('/')),
    ))
}

/// What one rsync backup did.
#[derive(Debug, serde::Serialize)]
pub struct RsyncReport {
    pub snapshot: String,
    pub link_dest: Option<String>,
    pub pruned: Vec<String>,
    pub kept: usize,
}

/// Runs one snapshot backup of `src` to `target`.
pub fn backup(
    src: &Source,
    target: &Target,
    stamp: &str,
    daily: usize,
    monthly: usize,
    dry_run: bool,
) -> Result<RsyncReport> {
    let before = snapshots(target)?;
    let prev = before.last().cloned();
    let part = format!("{stamp}.part");
    let (rsh, base) = match rsh(target) {
        Some((e, b)) => (Some(e), b),
        None => {
            let d = target.local_dir().expect("local target");
            if !dry_run {
                std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            }
            (None, d.display().to_string())
        }
    };
    if let (Target::Ssh { dir, .. }, false) = (target, dry_run) {
        target.run(&format!("mkdir -p '{}'", dir.replace('\'', "")))?;
    }
    // -a: perms, times, owners, groups, devices, links; -H hard links;
    // -A ACLs; -X xattrs; --numeric-ids: no name mapping (the restored
    // system's passwd is the one that counts); -x: one filesystem per
    // source path; -R with "/./": the path below the marker is kept.
    let mut cmd = Cmd::new("rsync")
        .args([
            "-aHAXx",
            "--numeric-ids",
            "--delete",
            "--relative",
            "--sparse",
        ])
        .dry_run(dry_run);
    if let Some(e) = &rsh {
        cmd = cmd.args(["-e", e]);
    }
    if let Some(p) = &prev {
        // Relative to the destination directory (rsync(1), "--link-dest").
        cmd = cmd.arg(format!("--link-dest=../{p}"));
    }
    for d in ALWAYS_PRUNED {
        cmd = cmd.arg(format!("--exclude=/{d}/*"));
    }
    for p in &src.prune {
        if let Ok(rel) = p.strip_prefix(&src.root) {
            cmd = cmd.arg(format!("--exclude=/{}/*", rel.display()));
        }
    }
    for x in &src.exclude {
        cmd = cmd.arg(format!("--exclude={x}"));
    }
    for p in &src.paths {
        let rel = p.strip_prefix("/").unwrap_or(p);
        let root = src.root.display().to_string();
        cmd = cmd.arg(format!(
            "{}/./{}",
            root.trim_end_matches('/'),
            rel.display()
        ));
    }
    cmd = cmd.arg(format!("{base}/{part}/"));
    // A failed run leaves no .part behind (the next run would not use it).
    let done = cmd.output().context("rsync backup").and_then(|_| {
        if dry_run {
            Ok(())
        } else {
            target.rename(&part, stamp)
        }
    });
    if let Err(e) = done {
        if !dry_run {
            let _ = target.remove_dir(&part);
        }
        return Err(e);
    }
    if dry_run {
        return Ok(RsyncReport {
            snapshot: stamp.to_string(),
            link_dest: prev,
            pruned: Vec::new(),
            kept: before.len() + 1,
        });
    }
    // STAMP.paths names what the snapshot holds: retention compares
    // snapshots of the same paths only, so a snapshot of /etc never
    // replaces the day's snapshot of /data.
    let paths = paths_text(src);
    let mut up = target.upload(&paths_file(stamp))?;
    std::io::Write::write_all(&mut up, paths.as_bytes())
        .with_context(|| format!("writing {}", paths_file(stamp)))?;
    up.close()?.commit()?;
    let mut all = before;
    all.push(stamp.to_string());
    let mut groups: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for s in &all {
        // Snapshots from before the .paths files form one group.
        let mut text = String::new();
        if let Ok(mut r) = target.open(&paths_file(s)) {
            let _ = std::io::Read::read_to_string(&mut r, &mut text);
        }
        groups.entry(text).or_default().push(s.clone());
    }
    let mut pruned = Vec::new();
    let mut kept = 0;
    for names in groups.values() {
        let k = super::retention::keep(names, daily, monthly);
        kept += k.len();
        for s in names {
            if !k.contains(s) {
                target.remove_dir(s)?;
                target.remove_file(&paths_file(s))?;
                pruned.push(s.clone());
            }
        }
    }
    pruned.sort();
    Ok(RsyncReport {
        snapshot: stamp.to_string(),
        link_dest: prev,
        pruned,
        kept,
    })
}

/// The file beside snapshot `stamp` naming its source paths.
fn paths_file(stamp: &str) -> String {
    format!("{stamp}.paths")
}

/// One source path a line, as given.
fn paths_text(src: &Source) -> String {
    src.paths
        .iter()
        .map(|p| format!("{}\n", p.display()))
        .collect()
}

/// Copies snapshot `name` back into `to`.
pub fn restore(target: &Target, name: &str, to: &Path) -> Result<()> {
    let (rsh, base) = match rsh(target) {
        Some((e, b)) => (Some(e), b),
        None => (
            None,
            target
                .local_dir()
                .expect("local target")
                .display()
                .to_string(),
        ),
    };
    let mut cmd = Cmd::new("rsync").args(["-aHAX", "--numeric-ids", "--sparse"]);
    if let Some(e) = &rsh {
        cmd = cmd.args(["-e", e]);
    }
    cmd.arg(format!("{base}/{name}/"))
        .arg(format!("{}/", to.display()))
        .output()
        .context("rsync restore")?;
    Ok(())
}
