//! `cargo xtask qemu e2e`: the whole disaster cycle in QEMU (issue 7).
//!
//! 1. rootfs: a Debian 12 system (or 13 with `--suite trixie`) made by
//!    debootstrap, cached as a tarball under target/e2e/ keyed by a hash
//!    of its suite and package list.
//!    The server's initramfs is built from it natively, in a chroot here.
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
//! 5. after: the recovered server boots, every file is compared; then the
//!    first RAID member is pulled and it must still boot (degraded).
//!
//! Provision and before make a scenario's server and belong to it; recover,
//! after and degraded are the disaster half, run once per [`Variant`] from
//! the same `before` ([`server`] and [`disaster`] are the two halves, as
//! `cargo xtask ci` runs its matrix; [`run`] is the command line's).
//!
//! Every VM is driven the same way: an IN disk (a tar on a raw image, found
//! by its serial) carries the scripts of tests/qemu/e2e/ and the phase to
//! run, an OUT disk carries results back as a tar. The serial console of
//! every VM is logged to target/qemu/e2e-NAME.log and left there; the
//! report with each phase's wall time goes to target/qemu/e2e-report.json.
//!
//! Files: [`rootfs`] (the server's Debian), [`initrd`] (its initramfs,
//! built on the host), [`variant`] (`--boot`, `--firmware`), [`matrix`]
//! (the variants CI runs), [`drive`] (one VM, driven through
//! [`mkrescue::vm`]), [`state`] (disks, space, report), [`phases`]
//! (provision to degraded), [`compare`] (the recovered server against the
//! one backed up), [`table`] (the variants' phase table from the
//! reports), [`image`] (a `--suite trixie` server's rescue image checked
//! by its own loader and modprobe). This file only runs the phases in
//! order.

mod compare;
mod drive;
mod firmware;
mod image;
pub mod initrd;
pub mod matrix;
mod phases;
pub mod rootfs;
mod state;
pub mod table;
mod variant;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::util;
use phases::{after, before, degraded, provision, recover};
pub use rootfs::Suite;
use state::{E2e, WORK, check_space};
pub use variant::Variant;
use variant::{PHASES, SCENARIOS};

/// The phases of a scenario's server (provision, before) and of one
/// variant's disaster half (recover, after, degraded), as indices of
/// [`PHASES`].
const SERVER: Range<usize> = 0..2;
const DISASTER: Range<usize> = 2..5;

/// Wall seconds of each phase that ran, in order.
pub type PhaseTimes = Vec<(&'static str, f64)>;

/// Runs the cycle of `scenario` in `variant` from phase `from` (earlier
/// phases' disks and results are reused): `cargo xtask qemu e2e`.
pub fn run(
    bin: Option<&Path>,
    scenario: &str,
    suite: Suite,
    from: &str,
    variant: Variant,
) -> Result<()> {
    let Some(start) = PHASES.iter().position(|p| *p == from) else {
        bail!("no e2e phase named {from}; one of {}", PHASES.join(", "));
    };
    let suite = suite_of(scenario, suite, variant)?;
    let bin = match bin {
        Some(b) => b.to_path_buf(),
        None => util::build_release()?,
    };
    let mut e = state(&bin, scenario, suite, variant)?;
    run_phases(&mut e, start..PHASES.len()).map(|_| ())
}

/// The Debian release `scenario`'s server is installed as: dracut-sdboot
/// is always Debian 13 (and UEFI only: its variants must say `--firmware
/// uefi` and boot the ISO or drill), the others `requested`.
pub fn suite_of(scenario: &str, requested: Suite, variant: Variant) -> Result<Suite> {
    if variant.moved.new_mac
        && (scenario == variant::SDBOOT || variant.boot == variant::Boot::Drill)
    {
        // The drill's VMs have no NIC to map onto, and the dracut-sdboot
        // server no network configuration pinned to its MAC.
        bail!(
            "--nic new-mac: only with --boot iso or pxe, and not for {}",
            variant::SDBOOT
        );
    }
    if scenario != variant::SDBOOT {
        return Ok(requested);
    }
    if variant.firmware != variant::Firmware::Uefi || variant.boot == variant::Boot::Pxe {
        bail!("the {scenario} server boots by UEFI only: --firmware uefi, --boot iso or drill");
    }
    Ok(Suite::Trixie)
}

/// The variant a scenario's server is made with: the default one, but
/// UEFI for dracut-sdboot and uefi-gpt (only the suite and the firmware of
/// `before` follow from it).
pub(super) fn server_variant(scenario: &str) -> Variant {
    if scenario == variant::SDBOOT || scenario == variant::UEFI_GPT {
        Variant {
            firmware: variant::Firmware::Uefi,
            ..Variant::default()
        }
    } else {
        Variant::default()
    }
}

/// The Debian release of `scenario`'s server as CI makes it (the default
/// suite, Debian 13 for dracut-sdboot): which rootfs CI builds ahead.
pub fn server_suite(scenario: &str) -> Result<Suite> {
    suite_of(scenario, Suite::default(), server_variant(scenario))
}

/// The scenario's server: provision and before, whose disks and results
/// every variant of the scenario recovers from. The report and logs name
/// the scenario only.
pub fn server(bin: &Path, scenario: &str) -> Result<PhaseTimes> {
    let v = server_variant(scenario);
    let mut e = state(bin, scenario, server_suite(scenario)?, v)?;
    run_phases(&mut e, SERVER)
}

/// One variant's disaster half from the scenario's `before`: recover,
/// after, degraded. Under CI the variant's new disks are deleted at the
/// end, passed or failed (its serial logs and results stay): the next
/// variant needs the room.
pub fn disaster(bin: &Path, scenario: &str, variant: Variant) -> Result<PhaseTimes> {
    let suite = suite_of(scenario, Suite::default(), variant)?;
    let mut e = state(bin, scenario, suite, variant)?;
    let r = run_phases(&mut e, DISASTER);
    if e.prune_old {
        for f in [e.v("NEW1.raw"), e.v("NEW2.raw")] {
            let _ = std::fs::remove_file(f);
        }
    }
    r
}

/// Under CI, once every variant of `scenario` has run: its disk images go
/// (the backup disk, the ISO), its results and every serial log stay.
pub fn prune_scenario(scenario: &str) -> Result<()> {
    let suite = server_suite(scenario)?;
    let dir = PathBuf::from(WORK).join(format!("{scenario}{}", suite.suffix()));
    for name in [
        "BACKUP.raw",
        "DISK1.raw",
        "DISK2.raw",
        "rescue.iso",
        phases::HOST_POLICY_ISO,
    ] {
        let p = dir.join(name);
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    Ok(())
}

fn state(bin: &Path, scenario: &str, suite: Suite, variant: Variant) -> Result<E2e> {
    anyhow::ensure!(
        SCENARIOS.contains(&scenario),
        "no e2e scenario named {scenario}; one of {}",
        SCENARIOS.join(", ")
    );
    let name = format!("{scenario}{}", suite.suffix());
    let work = PathBuf::from(WORK).join(&name);
    let e = E2e {
        scenario: scenario.to_string(),
        suite,
        name,
        variant,
        bin: bin.to_path_buf(),
        vwork: work.join(variant.dir()),
        work,
        report: Vec::new(),
        prune_old: util::in_ci(),
    };
    std::fs::create_dir_all(&e.vwork)?;
    Ok(e)
}

/// Runs the phases `which` of `e` in order; stops at the first failure,
/// whose error names the phase, the variant and the phase's serial log.
fn run_phases(e: &mut E2e, which: Range<usize>) -> Result<PhaseTimes> {
    check_space(e, which.start)?;
    let what = if which.end > DISASTER.start {
        format!("{} {}", e.name, e.variant.words())
    } else {
        e.name.clone()
    };
    let server = which.end <= DISASTER.start;
    let mut times = PhaseTimes::new();
    let mut current = "rootfs";
    let r = (|| -> Result<()> {
        for i in which {
            let phase = PHASES[i];
            current = phase;
            if let Ok(free) = util::free_bytes(&e.work) {
                eprintln!("e2e: {} free under {}", util::gib(free), e.work.display());
            }
            if PHASES[i] == "degraded" && !e.has_raid() {
                eprintln!("e2e {what}: no degraded phase (the server has no RAID)");
                continue;
            }
            let t = Instant::now();
            util::step(&format!("e2e {what}: {phase}"), || match i {
                0 => provision(e),
                1 => before(e),
                2 => recover(e),
                3 => after(e),
                _ => degraded(e),
            })?;
            times.push((phase, t.elapsed().as_secs_f64()));
        }
        Ok(())
    })();
    match r {
        Ok(()) => {
            e.write_report(None, server)?;
            eprintln!("e2e {what}: ok");
            Ok(times)
        }
        Err(err) => {
            // The phase's own error is what counts: a report that cannot be
            // written (a full disk, say) must not hide it.
            if let Err(w) = e.write_report(Some((current, format!("{err:#}"))), server) {
                eprintln!("warning: {w:#}");
            }
            let log = e.log(current);
            eprintln!(
                "e2e {what}: FAILED in phase {current}; its serial log {} (all of them in target/qemu/e2e-*.log)",
                log.display()
            );
            Err(err.context(format!(
                "e2e {what}: phase {current} failed (serial log {})",
                log.display()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CI entry points (`server`, `disaster`, `prune_scenario`) and
    /// the command line's `run` agree on each scenario's release: the
    /// dracut-sdboot server is Debian 13 and UEFI only, the others take
    /// what is asked for.
    #[test]
    fn each_scenario_gets_its_release() {
        let uefi = Variant::parse("iso", "uefi").unwrap();
        let bios = Variant::default();
        assert_eq!(
            suite_of("raid1-lvm", Suite::Bookworm, bios).unwrap(),
            Suite::Bookworm
        );
        assert_eq!(
            suite_of("raid1-lvm", Suite::Trixie, bios).unwrap(),
            Suite::Trixie
        );
        assert_eq!(
            suite_of(variant::SDBOOT, Suite::Bookworm, uefi).unwrap(),
            Suite::Trixie
        );
        let drill = Variant::parse("drill", "uefi").unwrap();
        assert_eq!(
            suite_of(variant::SDBOOT, Suite::Bookworm, drill).unwrap(),
            Suite::Trixie
        );
        for v in [bios, Variant::parse("pxe", "uefi").unwrap()] {
            let e = suite_of(variant::SDBOOT, Suite::Trixie, v).unwrap_err();
            assert!(e.to_string().contains("UEFI only"), "{e}");
        }
        // `--nic new-mac` needs a rescue system that maps onto the NIC.
        let drill_mac = Variant::parse("drill", "bios")
            .unwrap()
            .moved("", "new-mac")
            .unwrap();
        assert!(suite_of("raid1-lvm", Suite::Bookworm, drill_mac).is_err());
        let iso_mac = bios.moved("smaller,nvme", "new-mac").unwrap();
        assert_eq!(
            suite_of("raid1-lvm", Suite::Bookworm, iso_mac).unwrap(),
            Suite::Bookworm
        );
        // The server of a scenario is made as its variants need it.
        assert_eq!(
            server_variant(variant::SDBOOT).firmware,
            variant::Firmware::Uefi
        );
        assert_eq!(server_variant("luks-lvm"), bios);
        // Issue 18's pair: the BIOS server is made under SeaBIOS whatever
        // it is recovered with, the UEFI-only one under OVMF.
        assert_eq!(server_variant(variant::BIOS_MBR), bios);
        assert_eq!(
            server_variant(variant::UEFI_GPT).firmware,
            variant::Firmware::Uefi
        );
        assert_eq!(
            suite_of(variant::BIOS_MBR, Suite::Bookworm, uefi).unwrap(),
            Suite::Bookworm
        );
        // What CI builds ahead for each server.
        assert_eq!(server_suite(variant::SDBOOT).unwrap(), Suite::Trixie);
        assert_eq!(server_suite("raid1-lvm").unwrap(), Suite::default());
    }
}
