//! `mkrescue layout save|show|check`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;

use crate::cli::{GlobalArgs, LayoutAction, LayoutArgs};
use crate::error::{Code, fail};
use crate::layout::live::{capture_live, write};
use crate::layout::{DEFAULT_PATH, Layout, diff, show};

pub fn run(global: &GlobalArgs, args: &LayoutArgs) -> Result<()> {
    let default = PathBuf::from(DEFAULT_PATH);
    let cfg = super::load_config(global)?.config;
    if global.json && !matches!(args.action, LayoutAction::Show { .. }) {
        return Err(fail(
            Code::Usage,
            "--json: only `layout show` prints JSON; drop --json (`layout save` writes JSON to its file)",
        ));
    }
    let target = cfg.backup.target.as_deref();
    match &args.action {
        LayoutAction::Save { out, allow_partial } => {
            let path = out.as_ref().unwrap_or(&default);
            let l = capture_live(target)?;
            if !l.unknown.is_empty() {
                if !*allow_partial {
                    return Err(unprobed(
                        &l,
                        "the layout would miss what it holds; run as root where the disk can be read, or add --allow-partial to record it as unknown",
                    ));
                }
                for u in &l.unknown {
                    log::warn!(
                        "{}: could not be probed ({}); recorded as unknown",
                        u.device,
                        u.reason
                    );
                }
            }
            if !l.has_root() {
                log::warn!(
                    "no file system mounted at / is in the layout: `recover` will refuse it"
                );
            }
            write(&l, path)?;
            if !global.quiet {
                eprintln!(
                    "mkrescue: layout saved to {} ({}, {}, {} md, {}, {}{})",
                    path.display(),
                    count(l.disks.len(), "disk"),
                    count(
                        l.disks.iter().map(|d| d.partitions.len()).sum::<usize>(),
                        "partition"
                    ),
                    l.md.len(),
                    count(l.lvm.lvs.len(), "LV"),
                    count(l.filesystems.len(), "file system"),
                    if l.unknown.is_empty() {
                        String::new()
                    } else {
                        format!(", {} unknown", l.unknown.len())
                    }
                );
            }
            Ok(())
        }
        LayoutAction::Show { file, live } => {
            let l = if *live {
                capture_live(target)?
            } else {
                Layout::load(file.as_ref().unwrap_or(&default))?
            };
            let mut out = std::io::stdout().lock();
            if global.json {
                out.write_all(l.to_json().as_bytes())?;
            } else {
                out.write_all(show::render(&l, global.verbose > 0).as_bytes())?;
            }
            Ok(())
        }
        LayoutAction::Check { file } => {
            let path = file.as_ref().unwrap_or(&default);
            let saved = Layout::load(path)?;
            let now = capture_live(target)?;
            // A device that cannot be probed now is no drift, but the
            // check is not sound either (unless the save recorded it so).
            if now
                .unknown
                .iter()
                .any(|u| !saved.unknown.iter().any(|s| s.device == u.device))
            {
                return Err(unprobed(
                    &now,
                    "the layout cannot be compared; run as root where the disk can be read",
                ));
            }
            let d = diff(&saved, &now);
            if d.is_empty() {
                if !global.quiet {
                    eprintln!("mkrescue: layout unchanged since {}", path.display());
                }
                return Ok(());
            }
            let mut out = std::io::stdout().lock();
            for line in &d {
                writeln!(out, "{line}")?;
            }
            Err(fail(
                Code::Failed,
                format!(
                    "layout changed since {} was saved ({} above); run `mkrescue layout save{}` and build a new rescue image",
                    path.display(),
                    count(d.len(), "difference"),
                    if file.is_some() {
                        format!(" --out {}", path.display())
                    } else {
                        String::new()
                    }
                ),
            ))
        }
    }
}

/// "1 disk", "2 disks".
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The error for devices blkid could not probe (exit 8).
fn unprobed(l: &Layout, consequence: &str) -> anyhow::Error {
    let list: Vec<String> = l
        .unknown
        .iter()
        .map(|u| format!("{} ({})", u.device, u.reason))
        .collect();
    fail(
        Code::Probe,
        format!("could not probe {}: {consequence}", list.join(", ")),
    )
}
