//! Which disaster half of the cycle runs: how the recover VM boots the
//! rescue system (`--boot`) and the firmware of the recover, after and
//! degraded VMs (`--firmware`); the phase and scenario names.

use anyhow::{Result, bail};

/// The phases, in order; `--from` names one of them.
pub const PHASES: &[&str] = &["provision", "before", "recover", "after", "degraded"];

/// Scenarios: `raid1-lvm` (the default), `luks-lvm`, `dracut-sdboot`,
/// `bios-mbr`, `uefi-gpt`.
pub const SCENARIOS: &[&str] = &["raid1-lvm", "luks-lvm", SDBOOT, BIOS_MBR, UEFI_GPT];

/// The Debian 13 server that boots by UEFI with systemd-boot and a dracut
/// initramfs, no GRUB in its boot path, on one disk: an ESP mounted on
/// /boot (Boot Loader Specification entries) and a btrfs root with
/// subvolumes (issue 19). It has no RAID, so no degraded phase, and only
/// UEFI variants.
pub const SDBOOT: &str = "dracut-sdboot";

/// Issue 18's BIOS server: one MBR disk (an active ext4 root, swap, an
/// ext4 /home), GRUB i386-pc in the MBR, no ESP, installed and backed up
/// under SeaBIOS; recovered with `--firmware uefi` it must get an ESP
/// (type 0xef, the disk stays MBR) and GRUB x86_64-efi, and boot by UEFI.
pub const BIOS_MBR: &str = "bios-mbr";

/// Its mirror: a UEFI-only server, one GPT disk (ESP, swap, ext4 root,
/// ext4 /home), GRUB x86_64-efi on the ESP's removable path, no bios_grub
/// partition, installed and backed up under OVMF; recovered with
/// `--firmware bios` it must get a bios_grub partition and GRUB i386-pc,
/// and boot by BIOS.
pub const UEFI_GPT: &str = "uefi-gpt";

/// Whether `scenario`'s server lives on one disk (DISK1, recovered onto
/// NEW1) instead of two, without RAID.
pub fn one_disk(scenario: &str) -> bool {
    [SDBOOT, BIOS_MBR, UEFI_GPT].contains(&scenario)
}

/// Whether `scenario`'s server is one of issue 18's firmware conversion
/// pair: plain partitions on one disk (tests/qemu/e2e/provision-plain.sh).
pub fn plain(scenario: &str) -> bool {
    [BIOS_MBR, UEFI_GPT].contains(&scenario)
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
/// before is BIOS but for the UEFI-only servers (dracut-sdboot, uefi-gpt).
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
    /// What the replacement machine differs in (`--disks`, `--nic`, issue
    /// 18); all false for the variants that recover onto a copy of the
    /// server.
    pub moved: Moved,
}

/// Issue 18's other machine: `--disks smaller,nvme` and `--nic new-mac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Moved {
    /// `--disks smaller`: both replacement disks are [`SMALLER_PERCENT`]
    /// of the server's disk size, so recover must shrink the partitions,
    /// the array, the LVs and their file systems (recover::plan::fit).
    pub smaller: bool,
    /// `--disks nvme`: the replacement disks are on NVMe.
    pub nvme: bool,
    /// `--nic new-mac`: the recover VM and the recovered server's boots
    /// have a NIC with [`NEW_MAC`] instead of the server's [`SERVER_MAC`].
    pub new_mac: bool,
}

/// The replacement disks of `--disks smaller`, in percent of the server's.
pub const SMALLER_PERCENT: u64 = 60;

/// The MAC of the server's one NIC (provision, before, and the later boots
/// of the variants whose NIC is the server's); its network configuration
/// is pinned to it (server-etc.sh: lan0 by MAC, 10.0.2.15/24).
pub const SERVER_MAC: &str = "52:54:00:12:34:01";
/// The NIC of the replacement machine under `--nic new-mac`.
pub const NEW_MAC: &str = "52:54:00:12:34:02";

impl Default for Variant {
    fn default() -> Self {
        Variant::new(Boot::Iso, Firmware::Bios)
    }
}

impl Variant {
    /// `boot` and `firmware` on a copy of the server's disks and NIC.
    pub const fn new(boot: Boot, firmware: Firmware) -> Variant {
        Variant {
            boot,
            firmware,
            moved: Moved {
                smaller: false,
                nvme: false,
                new_mac: false,
            },
        }
    }

    /// This variant on the other machine of `--disks` (a comma list of
    /// `smaller`, `nvme`; empty: the server's) and `--nic` (`new-mac`;
    /// empty or `same`: the server's).
    pub fn moved(self, disks: &str, nic: &str) -> Result<Variant> {
        let mut m = Moved::default();
        for w in disks.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match w {
                "smaller" if !m.smaller => m.smaller = true,
                "nvme" if !m.nvme => m.nvme = true,
                "smaller" | "nvme" => bail!("--disks {disks}: {w} given twice"),
                o => bail!("--disks {disks}: {o} is not one of smaller, nvme"),
            }
        }
        match nic.trim() {
            "" | "same" => {}
            "new-mac" => m.new_mac = true,
            o => bail!("--nic {o}: one of new-mac, same"),
        }
        Ok(Variant { moved: m, ..self })
    }

    /// The replacement disks' size in MiB for a server disk of `mib`.
    pub fn new_disk_mib(&self, mib: u64) -> u64 {
        if self.moved.smaller {
            mib * SMALLER_PERCENT / 100
        } else {
            mib
        }
    }

    /// The MAC of the replacement machine's NIC: the recover VM's (when it
    /// has one) and the after and degraded boots'.
    pub fn mac(&self) -> &'static str {
        if self.moved.new_mac {
            NEW_MAC
        } else {
            SERVER_MAC
        }
    }

    /// `--disks smaller,nvme --nic new-mac` as given (empty when the
    /// machine is the server's copy): after the words in plans and tables.
    pub fn moved_words(&self) -> String {
        let m = self.moved;
        let disks: Vec<&str> = [(m.smaller, "smaller"), (m.nvme, "nvme")]
            .into_iter()
            .filter_map(|(on, w)| on.then_some(w))
            .collect();
        let mut out = Vec::new();
        if !disks.is_empty() {
            out.push(format!("--disks {}", disks.join(",")));
        }
        if m.new_mac {
            out.push("--nic new-mac".to_string());
        }
        out.join(" ")
    }

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
        Ok(Variant::new(boot, firmware))
    }

    /// `iso bios`, `pxe uefi`: the words of `--boot` and `--firmware`, as
    /// `cargo xtask ci --plan` prints them after the scenario; then
    /// [`Self::moved_words`], if any.
    pub fn words(&self) -> String {
        let moved = self.moved_words();
        if moved.is_empty() {
            self.base_words()
        } else {
            format!("{} {moved}", self.base_words())
        }
    }

    fn base_words(&self) -> String {
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
    /// PXE (BIOS) variant, and any with `--disks nvme`. The server's initramfs lists virtio and AHCI
    /// drivers but not nvme (server-etc.sh, MODULES=list), so recover's
    /// `initramfs = auto` must find the driver missing, add it and
    /// regenerate, and the recovered server must boot from NVMe (issue
    /// 16); the other variants keep virtio and must keep the initramfs.
    pub fn nvme(&self) -> bool {
        self.moved.nvme || (self.boot == Boot::Pxe && self.firmware == Firmware::Bios)
    }

    /// What `--disks` and `--nic` add to [`Self::suffix`] and
    /// [`Self::dir`]: `-smaller-nvme-newmac`, nothing without them.
    fn moved_suffix(&self) -> String {
        let m = self.moved;
        [
            (m.smaller, "-smaller"),
            (m.nvme, "-nvme"),
            (m.new_mac, "-newmac"),
        ]
        .into_iter()
        .filter_map(|(on, w)| on.then_some(w))
        .collect()
    }

    /// Appended to the scenario in log and phase names: nothing for the
    /// default (names stay as they were), `-uefi`, `-pxe`; then what
    /// `--disks` and `--nic` say (`-smaller-nvme-newmac`).
    pub fn suffix(&self) -> String {
        format!("{}{}", self.base_suffix(), self.moved_suffix())
    }

    fn base_suffix(&self) -> &'static str {
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
    /// VARS file, PXE tree and check results (`iso-bios`,
    /// `iso-bios-smaller-nvme-newmac`).
    pub fn dir(&self) -> String {
        format!("{}{}", self.base_dir(), self.moved_suffix())
    }

    fn base_dir(&self) -> &'static str {
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
        assert_eq!(
            (u.suffix().as_str(), u.dir().as_str()),
            ("-uefi", "iso-uefi")
        );
        let p = Variant::parse("pxe", "bios").unwrap();
        assert_eq!(
            (p.suffix().as_str(), p.dir().as_str()),
            ("-pxe", "pxe-bios")
        );
        assert!(Variant::parse("usb", "bios").is_err());
        assert!(Variant::parse("iso", "coreboot").is_err());
        let pu = Variant::parse("pxe", "uefi").unwrap();
        assert_eq!(
            (pu.suffix().as_str(), pu.dir().as_str()),
            ("-pxe-uefi", "pxe-uefi")
        );
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

    /// Issue 18's other machine: `--disks` and `--nic` make a variant of
    /// their own names; without them the variant is the one it was.
    #[test]
    fn disks_and_nic_of_another_machine() {
        let d = Variant::default();
        assert_eq!(d.moved("", "same").unwrap(), d);
        assert_eq!(d.moved(" ", "").unwrap(), d);
        let m = d.moved("smaller,nvme", "new-mac").unwrap();
        assert!(m.moved.smaller && m.moved.nvme && m.moved.new_mac);
        assert_eq!(m.suffix(), "-smaller-nvme-newmac");
        assert_eq!(m.dir(), "iso-bios-smaller-nvme-newmac");
        assert_eq!(m.words(), "iso bios --disks smaller,nvme --nic new-mac");
        assert!(m.nvme());
        assert_eq!(m.mac(), NEW_MAC);
        assert_ne!(NEW_MAC, SERVER_MAC);
        assert_eq!(d.mac(), SERVER_MAC);
        // 60 % of the server's 6 GiB disks.
        assert_eq!(m.new_disk_mib(6144), 3686);
        assert_eq!(d.new_disk_mib(6144), 6144);
        // Either alone, in any order; the names follow one order.
        let s = d.moved("smaller", "").unwrap();
        assert_eq!((s.suffix().as_str(), s.nvme()), ("-smaller", false));
        let n = d.moved("nvme,smaller", "same").unwrap();
        assert_eq!(n.suffix(), "-smaller-nvme");
        let n = d.moved("nvme", "").unwrap();
        assert_eq!((n.dir().as_str(), n.nvme()), ("iso-bios-nvme", true));
        let mac = Variant::parse("pxe", "uefi")
            .unwrap()
            .moved("", "new-mac")
            .unwrap();
        assert_eq!(mac.suffix(), "-pxe-uefi-newmac");
        assert_eq!(mac.words(), "pxe uefi --nic new-mac");
        // Mistakes are named.
        for (disks, nic) in [("smaller,ssd", ""), ("nvme,nvme", ""), ("", "new-ip")] {
            let e = d.moved(disks, nic).unwrap_err().to_string();
            assert!(
                e.starts_with(if nic.is_empty() { "--disks" } else { "--nic" }),
                "{e}"
            );
        }
    }
}
