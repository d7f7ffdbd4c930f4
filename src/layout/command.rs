//! `mkrescue layout save|show|check`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{DEFAULT_PATH, Layout, capture, diff, show};
use crate::cli::{GlobalArgs, LayoutAction, LayoutArgs};
use crate::error::{Code, fail};

/// Captures the live layout.
pub fn capture_live(backup_target: Option<&str>) -> Result<Layout> {
    let sources = capture::gather().context("capturing the disk layout")?;
    let mut l = capture::assemble(&crate::sys::host::hostname(Path::new("/")), &sources)
        .context("reading the captured disk layout")?;
    super::exclude::exclude_backup_disks(&mut l, backup_target);
    Ok(l)
}

/// Writes `layout` to `path` atomically (temp file, then rename).
pub fn write(layout: &Layout, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, layout.to_json()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

pub fn run(global: &GlobalArgs, args: &LayoutArgs) -> Result<()> {
    let default = PathBuf::from(DEFAULT_PATH);
    let cfg = crate::config::load(global, &crate::cli::BuildArgs::default())?.config;
    let target = cfg.backup.target.as_deref();
    match &args.action {
        LayoutAction::Save { out } => {
            let path = out.as_ref().unwrap_or(&default);
            let l = capture_live(target)?;
            write(&l, path)?;
            eprintln!(
                "mkrescue: layout saved to {} ({} disks, {} partitions, {} md, {} LVs, {} file systems)",
                path.display(),
                l.disks.len(),
                l.disks.iter().map(|d| d.partitions.len()).sum::<usize>(),
                l.md.len(),
                l.lvm.lvs.len(),
                l.filesystems.len()
            );
            Ok(())
        }
        LayoutAction::Show { file, live, json } => {
            let l = if *live {
                capture_live(target)?
            } else {
                Layout::load(file.as_ref().unwrap_or(&default))?
            };
            let mut out = std::io::stdout().lock();
            if *json {
                out.write_all(l.to_json().as_bytes())?;
            } else {
                out.write_all(show::render(&l).as_bytes())?;
            }
            Ok(())
        }
        LayoutAction::Check { file } => {
            let path = file.as_ref().unwrap_or(&default);
            let saved = Layout::load(path)?;
            let now = capture_live(target)?;
            let d = diff(&saved, &now);
            if d.is_empty() {
                eprintln!("mkrescue: layout unchanged since {}", path.display());
                return Ok(());
            }
            let mut out = std::io::stdout().lock();
            for line in &d {
                writeln!(out, "{line}")?;
            }
            Err(fail(
                Code::Failed,
                format!(
                    "layout changed since {} was saved ({} differences above); run `mkrescue layout save` and build a new rescue image",
                    path.display(),
                    d.len()
                ),
            ))
        }
    }
}
