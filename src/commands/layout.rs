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
