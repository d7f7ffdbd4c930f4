//! The disaster matrix that `cargo xtask ci` runs (issue 17): which
//! scenario's server is recovered in which variant, which of them are core
//! (every change) and what each costs, for the plan's budget.

use super::variant::{self, Boot, Firmware, Moved, Variant};

/// One cell of the matrix: `scenario`'s server recovered in `variant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    pub scenario: &'static str,
    pub variant: Variant,
    /// Runs on every change. The others rotate by commit when the matrix
    /// outgrows the budget.
    pub core: bool,
}

impl Case {
    /// `raid1-lvm iso bios`: how plans, tables and errors name it.
    pub fn name(&self) -> String {
        format!("{} {}", self.scenario, self.variant.words())
    }

    /// Planning estimate of the disaster half's wall minutes (recover,
    /// after, degraded) on a quiet 2-core machine: the larger of the two
    /// fresh-clone CI runs of 2026-12-06 (5173314 and 08a4764), plus 15%.
    /// The plan scales it by how fast the run has been so far.
    pub fn minutes(&self) -> f64 {
        if variant::plain(self.scenario) {
            // Issue 18's firmware pair, one disk, no RAID, no degraded
            // phase: recover 137 and 123 s, after 124 and 123 s at load
            // 4-6 beside each other on 2026-12-06 (BENCHMARKS.md), about
            // 3.5 min quiet, plus 15%.
            return 4.0;
        }
        if self.scenario == variant::SDBOOT {
            // One disk, no RAID: no degraded phase. recover 43.7 s and
            // after 80.2 s from scratch in CI mode on 2026-12-06.
            return 2.5;
        }
        let base = match (self.variant.boot, self.variant.firmware) {
            // 6.4 and 5.7 min for luks-lvm's iso bios (with its
            // passphrase) ...
            (Boot::Iso, Firmware::Bios) => 6.4,
            (Boot::Iso, Firmware::Uefi) => 5.3,
            // NVMe disks: recover appends the driver to the initramfs
            // (1.4 s; regenerating it took 81 s of the 5.7-5.9 min). In
            // the matrix it is issue 18's other machine too (60% disks, a
            // NIC of another MAC): shrinking makes smaller file systems,
            // the NIC's rewrite is a few files.
            (Boot::Pxe, Firmware::Bios) => 5.4,
            (Boot::Pxe, Firmware::Uefi) => 4.9,
            // The drill boots the recovered disks once more (copy-on-write)
            // before after boots them, then the three drills that must
            // fail (6.9 and 6.4 min in all).
            (Boot::Drill, Firmware::Bios) => 7.9,
            (Boot::Drill, Firmware::Uefi) => 8.4,
        };
        if self.scenario == "luks-lvm" {
            // ... which asks a passphrase and unlocks at every boot.
            base + 1.0
        } else {
            base
        }
    }
}

/// Planning estimate of a scenario's server (provision + before) in wall
/// minutes, quiet, as [`Case::minutes`]: raid1-lvm 5.3 and 4.5 (its
/// before builds a second, host-policy ISO), luks-lvm 6.5 and 5.4;
/// dracut-sdboot's provision 155.6 s and before 170.4 s from scratch on
/// 2026-12-06, its rootfs built ahead while the tests compile.
///
/// Issue 18's firmware pair: provision 132 and 190 s, before 355 and
/// 334 s at load 4-6 (BENCHMARKS.md), about 6.5 min quiet, plus 15%.
pub fn server_minutes(scenario: &str) -> f64 {
    match scenario {
        "luks-lvm" => 7.5,
        variant::BIOS_MBR | variant::UEFI_GPT => 7.5,
        variant::SDBOOT => 6.2,
        _ => 6.1,
    }
}

const fn case(scenario: &'static str, boot: Boot, firmware: Firmware, core: bool) -> Case {
    Case {
        scenario,
        variant: Variant::new(boot, firmware),
        core,
    }
}

/// Issue 18's other machine: `--disks smaller,nvme --nic new-mac`.
const MOVED: Moved = Moved {
    smaller: true,
    nvme: true,
    new_mac: true,
};

/// [`case`] on issue 18's other machine ([`MOVED`]).
const fn moved(scenario: &'static str, boot: Boot, firmware: Firmware, core: bool) -> Case {
    let mut c = case(scenario, boot, firmware, core);
    c.variant.moved = MOVED;
    c
}

/// The matrix, in the order CI runs it (raid1-lvm under BIOS from the host
/// side's `mkrescue drill`, issue 20: the ISO's boot through SeaBIOS is
/// `qemu media`'s, and iso uefi and luks boot their ISO too): a scenario's variants one after
/// the other from its one `before`, core ones first within the scenario.
/// A variant that breaks is fixed, never dropped from this list.
pub const MATRIX: &[Case] = &[
    case("raid1-lvm", Boot::Drill, Firmware::Bios, true),
    case("raid1-lvm", Boot::Iso, Firmware::Uefi, true),
    // Issue 18's other machine: two NVMe disks at 60% and a NIC of
    // another MAC, from the PXE tree (the variant that recovered onto NVMe
    // before): `cargo xtask qemu e2e --boot pxe --disks smaller,nvme --nic
    // new-mac`. It costs what pxe bios did, so it is that case.
    moved("raid1-lvm", Boot::Pxe, Firmware::Bios, true),
    case("raid1-lvm", Boot::Pxe, Firmware::Uefi, false),
    case("luks-lvm", Boot::Iso, Firmware::Bios, true),
    // Debian 13, dracut, systemd-boot on the ESP, btrfs subvolumes (issue
    // 19): the one server with no GRUB and no initramfs-tools.
    case(variant::SDBOOT, Boot::Iso, Firmware::Uefi, true),
    // Issue 18's firmware pair: a BIOS/MBR server recovered under OVMF and
    // a UEFI-only GPT one under SeaBIOS. Each brings a server of its own
    // (about 11.5 min with its case): over the budget beside the core
    // cases, so `select` leaves them to `cargo xtask ci --all`.
    case(variant::BIOS_MBR, Boot::Iso, Firmware::Uefi, false),
    case(variant::UEFI_GPT, Boot::Iso, Firmware::Bios, false),
];

#[cfg(test)]
mod tests {
    use super::super::variant::SCENARIOS;
    use super::*;

    /// Issue 17's matrix: raid1-lvm in all four variants (iso bios as the
    /// drill of issue 20), luks-lvm from the ISO under BIOS, dracut-sdboot
    /// from the ISO under UEFI (issue 19); core are all but raid1-lvm's
    /// PXE UEFI; every case once, every scenario a known one, a
    /// scenario's cases next to each other (they share its server).
    #[test]
    fn the_matrix_of_issue_17() {
        let names: Vec<String> = MATRIX.iter().map(Case::name).collect();
        assert_eq!(
            names,
            [
                "raid1-lvm drill bios",
                "raid1-lvm iso uefi",
                "raid1-lvm pxe bios --disks smaller,nvme --nic new-mac",
                "raid1-lvm pxe uefi",
                "luks-lvm iso bios",
                "dracut-sdboot iso uefi",
                "bios-mbr iso uefi",
                "uefi-gpt iso bios",
            ]
        );
        let core: Vec<String> = MATRIX.iter().filter(|c| c.core).map(Case::name).collect();
        assert_eq!(
            core,
            [
                "raid1-lvm drill bios",
                "raid1-lvm iso uefi",
                "raid1-lvm pxe bios --disks smaller,nvme --nic new-mac",
                "luks-lvm iso bios",
                "dracut-sdboot iso uefi",
            ]
        );
        for (i, c) in MATRIX.iter().enumerate() {
            assert!(SCENARIOS.contains(&c.scenario), "{}", c.name());
            let later = &MATRIX[i + 1..];
            if let Some(j) = later.iter().position(|d| d.scenario != c.scenario) {
                assert!(
                    later[j..].iter().all(|d| d.scenario != c.scenario),
                    "{}: its scenario's cases are split",
                    c.name()
                );
            }
        }
        assert!(MATRIX.iter().all(|c| c.minutes() > 0.0));
        assert!(server_minutes("luks-lvm") > server_minutes("raid1-lvm"));
    }
}
