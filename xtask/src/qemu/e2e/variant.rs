//! Which disaster half of the cycle runs: how the recover VM boots the
//! rescue system (`--boot`) and the firmware of the recover, after and
//! degraded VMs (`--firmware`); the phase and scenario names.

use anyhow::{Result, bail};

/// The phases, in order; `--from` names one of them.
pub const PHASES: &[&str] = &["provision", "before", "recover", "after", "degraded"];

/// Scenarios: `raid1-lvm` (the default), `luks-lvm`, `dracut-sdboot`.
pub const SCENARIOS: &[&str] = &["raid1-lvm", "luks-lvm", SDBOOT];

/// The Debian 13 server that boots by UEFI with systemd-boot and a dracut
/// initramfs, no GRUB in its boot path, on one disk: an ESP mounted on
/// /boot (Boot Loader Specification entries) and a btrfs root with
/// subvolumes (issue 19). It has no RAID, so no degraded phase, and only
/// UEFI variants.
pub const SDBOOT: &str = "dracut-sdboot";

/// Whether `scenario`'s server lives on one disk (DISK1, recovered onto
/// NEW1) instead of two.
pub fn one_disk(scenario: &str) -> bool {
    scenario == SDBOOT
}

/// How the recover VM starts the rescue system (`--boot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boot {
    /// The ISO from the backup disk as a CD-ROM.
    Iso,
    /// The PXE tree from the backup disk over QEMU's built-in TFTP.
    Pxe,
    /// `mkrescue drill` from the host side (issue 20): the ISO's kernel and
    /// initrd booted directly on disks shaped from the server's saved
    /// layout, the recovered disks booted once, then kept (raw) for after
    /// and degraded.
    Drill,
}

/// The firmware of the recover, after and degraded VMs (`--firmware`);
/// provision and before are always BIOS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    Bios,
    /// OVMF, with a VARS file of its own per variant that recover's boot
    /// entries live in for the later boots.
    Uefi,
}

/// The disaster half of the cycle (recover, after, degraded); provision
/// and before are shared by all variants of a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    pub boot: Boot,
    pub firmware: Firmware,
}

impl Default for Variant {
    fn default() -> Self {
        Variant {
            boot: Boot::Iso,
            firmware: Firmware::Bios,
        }
    }
}

impl Variant {
    /// From `--boot iso|pxe` and `--firmware bios|uefi`.
    pub fn parse(boot: &str, firmware: &str) -> Result<Variant> {
        let boot = match boot {
            "iso" => Boot::Iso,
            "pxe" => Boot::Pxe,
            "drill" => Boot::Drill,
            o => bail!("--boot {o}: one of iso, pxe, drill"),
        };
        let firmware = match firmware {
            "bios" => Firmware::Bios,
            "uefi" => Firmware::Uefi,
            o => bail!("--firmware {o}: one of bios, uefi"),
        };
        Ok(Variant { boot, firmware })
    }

    /// `iso bios`, `pxe uefi`: the words of `--boot` and `--firmware`, as
    /// `cargo xtask ci --plan` prints them after the scenario.
    pub fn words(&self) -> String {
        let boot = match self.boot {
            Boot::Iso => "iso",
            Boot::Pxe => "pxe",
            Boot::Drill => "drill",
        };
        let fw = match self.firmware {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        };
        format!("{boot} {fw}")
    }

    /// The file QEMU's DHCP names as boot file for a PXE boot, from the
    /// tree `mkrescue --output pxe` wrote: pxelinux for SeaBIOS's iPXE
    /// ROM, the tree's GRUB EFI image (it reads (tftp)/grub/grub.cfg,
    /// written by `--pxe-default`) for OVMF's PXE.
    pub fn pxe_bootfile(&self) -> &'static str {
        match self.firmware {
            Firmware::Bios => "pxelinux.0",
            Firmware::Uefi => "grubx64.efi",
        }
    }

    /// The replacement disks are NVMe instead of the server's virtio: the
    /// PXE (BIOS) variant. The server's initramfs lists virtio and AHCI
    /// drivers but not nvme (server-etc.sh, MODULES=list), so recover's
    /// `initramfs = auto` must find the driver missing, add it and
    /// regenerate, and the recovered server must boot from NVMe (issue
    /// 16); the other variants keep virtio and must keep the initramfs.
    pub fn nvme(&self) -> bool {
        self.boot == Boot::Pxe && self.firmware == Firmware::Bios
    }

    /// Appended to the scenario in log and phase names: nothing for the
    /// default (names stay as they were), `-uefi`, `-pxe`.
    pub fn suffix(&self) -> &'static str {
        match (self.boot, self.firmware) {
            (Boot::Iso, Firmware::Bios) => "",
            (Boot::Iso, Firmware::Uefi) => "-uefi",
            (Boot::Pxe, Firmware::Bios) => "-pxe",
            (Boot::Pxe, Firmware::Uefi) => "-pxe-uefi",
            (Boot::Drill, Firmware::Bios) => "-drill",
            (Boot::Drill, Firmware::Uefi) => "-drill-uefi",
        }
    }

    /// The variant's own directory under the scenario's: its new disks,
    /// VARS file, PXE tree and check results.
    pub fn dir(&self) -> &'static str {
        match (self.boot, self.firmware) {
            (Boot::Iso, Firmware::Bios) => "iso-bios",
            (Boot::Iso, Firmware::Uefi) => "iso-uefi",
            (Boot::Pxe, Firmware::Bios) => "pxe-bios",
            (Boot::Pxe, Firmware::Uefi) => "pxe-uefi",
            (Boot::Drill, Firmware::Bios) => "drill-bios",
            (Boot::Drill, Firmware::Uefi) => "drill-uefi",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_from_the_command_line() {
        let d = Variant::parse("iso", "bios").unwrap();
        assert_eq!(d, Variant::default());
        // The default keeps the names it always had.
        assert_eq!(d.suffix(), "");
        let u = Variant::parse("iso", "uefi").unwrap();
        assert_eq!((u.suffix(), u.dir()), ("-uefi", "iso-uefi"));
        let p = Variant::parse("pxe", "bios").unwrap();
        assert_eq!((p.suffix(), p.dir()), ("-pxe", "pxe-bios"));
        assert!(Variant::parse("usb", "bios").is_err());
        assert!(Variant::parse("iso", "coreboot").is_err());
        let pu = Variant::parse("pxe", "uefi").unwrap();
        assert_eq!((pu.suffix(), pu.dir()), ("-pxe-uefi", "pxe-uefi"));
        assert_eq!(
            (p.pxe_bootfile(), pu.pxe_bootfile()),
            ("pxelinux.0", "grubx64.efi")
        );
        // The words read back as the same variant.
        for v in [d, u, p, pu] {
            let w = v.words();
            let (b, f) = w.split_once(' ').unwrap();
            assert_eq!(Variant::parse(b, f).unwrap(), v, "{w}");
        }
    }
}
