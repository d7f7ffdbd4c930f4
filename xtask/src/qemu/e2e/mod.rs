//! `cargo xtask qemu e2e`: the whole disaster cycle in QEMU (issue 7).
//!
//! 1. rootfs: a Debian 12 system made by debootstrap, cached as a tarball
//!    under target/e2e/ keyed by a hash of its package list.
//! 2. provision: mkrescue's own rescue initramfs of this host installs it on
//!    two blank virtio disks (GPT bios_grub + ESP + md RAID1, LVM with an
//!    ext4 root, an xfs /home and swap), GRUB on both disks, mkrescue and
//!    test data; the list of every test file (sha256, owner, mode, xattrs)
//!    comes back here.
//! 3. before: the server boots from its disks, saves its layout, backs up
//!    to the backup disk and writes its rescue ISO there; the ISO is read
//!    out of the backup disk image with debugfs (no mount on this machine).
//! 4. recover: both system disks are replaced by blank ones (one the same
//!    size, one twice as big), the ISO boots as a CD-ROM and recovers
//!    unattended.
//! 5. after: the recovered server boots, every file is compared; then one
//!    RAID member is pulled and it must still boot.
//!
//! Every VM is driven the same way: an IN disk (a tar on a raw image, found
//! by its serial) carries the scripts of tests/qemu/e2e/ and the phase to
//! run, an OUT disk carries results back as a tar. The serial console of
//! every VM is logged to target/qemu/e2e-PHASE.log and left there; the
//! report with each phase's wall time goes to target/qemu/e2e-report.json.
//!
//! Files: [`rootfs`] (the server's Debian), [`variant`] (`--boot`,
//! `--firmware`), [`drive`] (one VM, driven through [`crate::qemu::vm`]),
//! [`state`] (disks, space, report), [`phases`] (provision to degraded),
//! [`compare`] (the recovered server against the one backed up). This
//! file only runs the phases in order.

mod compare;
mod drive;
mod phases;
pub mod rootfs;
mod state;
mod variant;

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::util;
use phases::{after, before, degraded, provision, recover};
use state::{E2e, WORK, check_space};
pub use variant::Variant;
use variant::{PHASES, SCENARIOS};

/// phases' disks and results are reused).
/// The host disk space the phases from `start` on take at their peak,
pub fn run(bin: Option<&Path>, scenario: &str, from: &str, variant: Variant) -> Result<()> {
    anyhow::ensure!(
        SCENARIOS.contains(&scenario),
        "no e2e scenario named {scenario}; one of {}",
        SCENARIOS.join(", ")
    );
    let Some(start) = PHASES.iter().position(|p| *p == from) else {
        bail!("no e2e phase named {from}; one of {}", PHASES.join(", "));
    };
    let bin = match bin {
        Some(b) => b.to_path_buf(),
        None => util::build_release()?,
    };
    let work = PathBuf::from(WORK).join(scenario);
    let mut e = E2e {
        scenario: scenario.to_string(),
        variant,
        bin,
        vwork: work.join(variant.dir()),
        work,
        report: Vec::new(),
        prune_old: util::in_ci(),
    };
    std::fs::create_dir_all(&e.vwork)?;
    check_space(&e, start)?;
    let what = format!("{scenario}{}", variant.suffix());
    let mut current = "rootfs";
    let r = (|| -> Result<()> {
        for (i, phase) in PHASES.iter().enumerate().skip(start) {
            current = phase;
            if let Ok(free) = util::free_bytes(&e.work) {
                eprintln!("e2e: {} free under {}", util::gib(free), e.work.display());
            }
            util::step(&format!("e2e {what}: {phase}"), || match i {
                0 => provision(&mut e),
                1 => before(&mut e),
                2 => recover(&mut e),
                3 => after(&mut e),
                _ => degraded(&mut e),
            })?;
        }
        Ok(())
    })();
    match r {
        Ok(()) => {
            e.write_report(None)?;
            eprintln!("e2e {what}: the server was recovered and boots");
            Ok(())
        }
        Err(err) => {
            // The phase's own error is what counts: a report that cannot be
            // written (a full disk, say) must not hide it.
            if let Err(w) = e.write_report(Some((current, format!("{err:#}")))) {
                eprintln!("warning: {w:#}");
            }
            eprintln!(
                "e2e {what}: FAILED in phase {current}; serial logs in target/qemu/e2e-*.log"
            );
            Err(err.context(format!("e2e phase {current} failed")))
        }
    }
}
