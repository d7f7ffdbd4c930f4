//! Recover: rebuild a saved [`Layout`] on the disks of this machine. Maps
//! source disks to target disks ([`mapping`]), turns the layout into an
//! ordered [`plan::Plan`] of exact commands, and runs it with checkpoints
//! ([`executor`]) so a re-run after a fix resumes where it stopped.
//! `--dry-run` prints the plan as a shell script and changes nothing.

pub mod executor;
pub mod mapping;
pub mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Instant;

use anyhow::Result;

use crate::cli::{GlobalArgs, RecoverArgs};
use crate::error::{Code, fail};
use crate::exec::Cmd;
use crate::layout::Layout;
use mapping::{Ask, NoAsk, Terminal};

/// Where the scratch files of a recovery go (LVM metadata, mount points).
pub const WORK_DIR: &str = "/run/mkrescue/recover";

/// `mkrescue recover`.
pub fn run(_global: &GlobalArgs, args: &RecoverArgs) -> Result<()> {
    let start = Instant::now();
    if !args.layout_only {
        return Err(fail(
            Code::NotYet,
            "recover: restoring files and the boot loader is not available in this version yet; use --layout-only (or --dry-run --layout-only to see the plan)",
        ));
    }
    let layout = Layout::load(&args.layout)?;
    let explicit = mapping::parse_maps(&args.map)?;
    let targets = mapping::TargetDisk::from_lsblk(
        &Cmd::new("lsblk").args(["--json", "--bytes", "-O"]).read()?,
    )?;
    let never: BTreeSet<String> = layout.excluded.iter().map(|e| e.device.clone()).collect();
    let mut ask: Box<dyn Ask> = if args.unattended || args.dry_run {
        Box::new(NoAsk)
    } else {
        Box::new(Terminal)
    };
    let map = mapping::map_disks(&layout, &targets, &explicit, &never, ask.as_mut())?;
    let simple: BTreeMap<String, String> = map
        .iter()
        .map(|(k, (v, _))| (k.clone(), v.clone()))
        .collect();
    let opt = plan::Options {
        udev: std::path::Path::new("/run/udev/control").exists(),
        key_file: args.key_file.as_ref().map(|p| p.display().to_string()),
        work_dir: WORK_DIR.to_string(),
    };
    let p = plan::plan(&layout, &simple, &opt)?;
    let header = header(&layout, &map);
    if args.dry_run {
        let mut out = std::io::stdout().lock();
        out.write_all(p.script(&header).as_bytes())?;
        return Ok(());
    }
    for l in header.lines() {
        eprintln!("mkrescue: {l}");
    }
    executor::check_tools(&p)?;
    std::fs::create_dir_all(WORK_DIR).map_err(|e| anyhow::anyhow!("creating {WORK_DIR}: {e}"))?;
    let done = executor::run(&p, &args.state)?;
    eprintln!(
        "mkrescue: layout rebuilt: {} steps ({} already done before) in {:.1}s",
        p.steps.len(),
        done.skipped,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn header(l: &Layout, map: &BTreeMap<String, (String, mapping::Why)>) -> String {
    let mut h = format!(
        "mkrescue recover: layout of {} (schema {})\n",
        l.host, l.schema_version
    );
    for (src, (dst, why)) in map {
        let why = match why {
            mapping::Why::Explicit => "--map",
            mapping::Why::SamePath => "same path and size",
            mapping::Why::Identity => "same WWN/serial",
            mapping::Why::Size => "only disk large enough",
            mapping::Why::Asked => "chosen by the operator",
        };
        h.push_str(&format!("disk {src} -> {dst} ({why})\n"));
    }
    h
}
