//! `cargo xtask bench`: mkrescue against the floor (`cpio | zstd` on its own
//! file list), dracut, Debian's mkinitramfs and ReaR, on the same kernel and
//! machine in one run. Prints wall time, peak memory and image size for
//! each, with the ratio to mkrescue; `--write` puts the table into
//! BENCHMARKS.md.
//!
//! Peak memory is `ru_maxrss` from wait4(2): the largest single process of
//! the tool's process tree (getrusage(2)), not the sum.
//!
//! Then boot to ready under TCG: mkrescue's initramfs and ReaR's rescue
//! initrd (`isolinux/kernel` + `isolinux/initrd.cgz` extracted from its ISO
//! with `xorriso -osirrox`) booted with the same QEMU options, each with
//! the kernel command line of its own boot menu's rescue entry. "Ready" is
//! a line each system prints itself when its setup is done: mkrescue's
//! marker, ReaR's `Relax-and-Recover rescue system is ready` (the last
//! line of its /etc/scripts/system-setup, after network and sshd). For
//! ReaR it also records whether a serial login prompt ever came.
//! `--boot-only` measures only this (reusing ReaR's ISO, `--rear-iso`);
//! `--write` then replaces only the boot section of BENCHMARKS.md.
//!
//! Last, backup and restore against tar+zstd and borg
//! ([`backup`]); `--backup-only` runs only that and writes
//! only its section.
//!
//! Files: [`build`] (the build comparison), [`boot`] (boot to ready),
//! [`backup`] and [`tree`] (backup and restore, and the tree they work
//! on), [`measure`] (one measured run), [`report`] (BENCHMARKS.md).

pub mod backup;
mod boot;
mod build;
mod measure;
mod report;
mod tree;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use crate::util;
use boot::{boot_all, render_boot};
use build::{build_all, find_iso, render};
use measure::{loadavg, measure};
use report::{produced, produced_boot, write_benchmarks};

const DIR: &str = "target/bench";

/// What `cargo xtask bench` measures.
pub struct Opts {
    /// Build ReaR's ISO too (minutes).
    pub with_rear: bool,
    /// Put the results into BENCHMARKS.md.
    pub write: bool,
    /// Skip the build comparison; only boot to ready.
    pub boot_only: bool,
    /// Skip the boot comparison.
    pub no_boot: bool,
    /// ReaR's ISO to boot instead of the one this run builds.
    pub rear_iso: Option<PathBuf>,
    /// Only the backup section (archive vs tar+zstd vs borg).
    pub backup_only: bool,
    /// Size and clean-up of the backup section.
    pub backup: backup::Opts,
}

pub fn run(o: &Opts) -> Result<()> {
    let bin = util::build_release()?;
    if o.backup_only {
        return backup_section(&bin, o, Vec::new());
    }
    let kernel = mkrescue::host::choose_kernel(Path::new("/"), None)?;
    let kver = kernel.version.clone();
    let dir = PathBuf::from(DIR);
    std::fs::create_dir_all(&dir)?;
    let abs = std::fs::canonicalize(&dir)?;
    let out = abs.join("mkrescue");
    let mk = || {
        let mut c = Command::new(&bin);
        c.args(["--output", "initramfs", "--out"])
            .arg(&out)
            .arg("--quiet");
        c
    };
    let load = loadavg();
    let mut sections = Vec::new();
    if !o.boot_only {
        let results = build_all(&abs, &out, &kernel, o.with_rear, &mk)?;
        let table = render(&results, &kver);
        println!("{table}");
        sections.push((
            "build",
            format!(
                "## Build\n\n{}Load average (1 min) at the start: {load}.\n\n{table}\n\
The floor is GNU cpio + `zstd -T2 -3` over the same host files mkrescue put into its image (from manifest.json): the cost of reading and compressing them, with no dependency resolution. Peak RSS is the largest single process of each tool's process tree (wait4(2) ru_maxrss).\n",
                produced()
            ),
        ));
    } else {
        // The image to boot; its build is not what is measured here.
        measure("mkrescue (image to boot)", &mut mk())?;
    }
    if !o.no_boot {
        let iso = match &o.rear_iso {
            Some(p) => Some(p.clone()),
            None => find_iso(&abs.join("rear-out")),
        };
        let boots = boot_all(&out, iso.as_deref(), &abs)?;
        let text = render_boot(&boots, &kver, &load);
        println!("{text}");
        sections.push(("boot", format!("{}{text}", produced_boot())));
    }
    if o.boot_only {
        if o.write {
            write_benchmarks(&sections)?;
        }
        return Ok(());
    }
    backup_section(&bin, o, sections)
}

/// Measures the backup section ([`backup`]) and writes it with the
/// sections measured before it.
fn backup_section(bin: &Path, o: &Opts, mut sections: Vec<(&str, String)>) -> Result<()> {
    let text = backup::run(bin, &o.backup)?;
    println!("{text}");
    sections.push(("backup", text));
    if o.write {
        write_benchmarks(&sections)?;
    }
    Ok(())
}
