//! Which modules the `storage-net` policy starts from (before dependencies
//! and softdeps are added): the drivers a rescue system needs to see disks
//! and NICs on hardware it has never met, plus a console keyboard.
//!
//! Rules are `fnmatch` patterns on the path relative to the modules
//! directory, as in modules.dep(5), so they follow the kernel source tree,
//! which groups drivers by subsystem. Whole subsystems are taken rather than
//! hand-picked drivers: a replacement machine often has a different
//! controller, and a missing driver there means no recovery at all, while an
//! extra one costs a few kilobytes.

use super::glob::{fnmatch, has_wildcard};

/// Subsystem directories taken whole. `*` also matches `/`, so a pattern
/// covers the subtree. A compressed suffix (`.ko.xz`) matches as well.
const PATHS: &[&str] = &[
    // Disks and their buses: SCSI core plus every HBA and RAID controller
    // (megaraid, mpt3sas, hpsa, smartpqi, aacraid, qla2xxx, lpfc), libata
    // with AHCI and the PATA drivers, NVMe, virtio-blk, xen-blkfront, rbd,
    // nbd, loop, drbd, zram, Hyper-V storvsc and VMware pvscsi.
    "kernel/drivers/scsi/*",
    "kernel/drivers/ata/*",
    "kernel/drivers/nvme/*",
    "kernel/drivers/block/*",
    "kernel/drivers/cdrom/*",
    // Fusion MPT: older LSI SAS/SPI HBAs and VMware's emulated "LSI Logic"
    // SCSI controller (mptspi), still the default for many VM templates.
    "kernel/drivers/message/fusion/*",
    // SD/eMMC (boot media of small servers), persistent memory (pmem, btt)
    // and UFS.
    "kernel/drivers/mmc/*",
    "kernel/drivers/nvdimm/*",
    "kernel/drivers/ufs/*",
    // PCI controllers: Intel VMD hides NVMe drives behind it (vmd.ko), and
    // PCIe hotplug.
    "kernel/drivers/pci/*",
    // Device mapper (LVM, dm-crypt/LUKS, dm-raid, multipath, thin,
    // integrity, verity, cache) and MD RAID, bcache.
    "kernel/drivers/md/*",
    // Virtio transports and devices (virtio_pci, virtio_mmio, virtio_input
    // for a VM's keyboard); virtio-blk/-net/-scsi sit under their
    // subsystems above and below.
    "kernel/drivers/virtio/*",
    // USB: host controllers, core and storage (UAS and usb-storage), so an
    // image can run from or restore to a USB disk and use a USB keyboard.
    "kernel/drivers/usb/host/*",
    "kernel/drivers/usb/core/*",
    "kernel/drivers/usb/common/*",
    "kernel/drivers/usb/storage/*",
    // Keyboards: HID with the vendor drivers some keyboards need to work at
    // all (Logitech unifying receivers, Apple, Microsoft), USB HID, PS/2
    // (atkbd and i8042 are usually built in) and Hyper-V's keyboard.
    "kernel/drivers/hid/*",
    "kernel/drivers/input/keyboard/*",
    "kernel/drivers/input/serio/*",
    // Network: every wired NIC, their PHY and MDIO drivers (bound by
    // modalias at run time, so no dependency pulls them in), USB network
    // adapters, bonding and team for aggregated links, and the paravirtual
    // NICs of Hyper-V, VMware and Xen.
    "kernel/drivers/net/ethernet/*",
    "kernel/drivers/net/phy/*",
    "kernel/drivers/net/mdio/*",
    "kernel/drivers/net/pcs/*",
    "kernel/drivers/net/usb/*",
    "kernel/drivers/net/bonding/*",
    "kernel/drivers/net/team/*",
    "kernel/drivers/net/hyperv/*",
    "kernel/drivers/net/vmxnet3/*",
    "kernel/drivers/net/virtio_net.ko*",
    "kernel/drivers/net/xen-netfront.ko*",
    "kernel/drivers/net/mii.ko*",
    "kernel/drivers/net/macvlan.ko*",
    // Every filesystem (ext4, xfs, btrfs, vfat, ntfs3, nfs, cifs, iso9660,
    // squashfs, overlayfs, fuse, efivarfs, the nls codepages). A backup
    // may come from or go to any of them.
    "kernel/fs/*",
    // Crypto for LUKS and btrfs/ext4 checksums, including the accelerated
    // x86 (or other arch) implementations, and the library helpers (crc*,
    // raid6, xor, zstd, lz4) that filesystems and md need.
    "kernel/crypto/*",
    "kernel/arch/*/crypto/*",
    "kernel/lib/*",
    // I/O schedulers (bfq, kyber, mq-deadline when modular).
    "kernel/block/*",
];

/// Single modules taken by name (after `-`/`_` normalisation) wherever they
/// live; most are built in on distribution kernels and then simply absent
/// from modules.dep, which is fine.
const NAMES: &[&str] = &[
    // A packet socket is what DHCP clients (dhclient, udhcpc, systemd-
    // networkd) use before the interface has an address.
    "af_packet",
    "unix",
    "ipv6",
    // VLANs and bridges, for hosts whose network config uses them.
    "8021q",
    "bridge",
    // Keyboard basics and the serial console of a VM (hvc0).
    "hid_generic",
    "usbhid",
    "atkbd",
    "i8042",
    "virtio_console",
    "virtio_rng",
    // iSCSI boot firmware table (iBFT) for hosts that boot from iSCSI, and
    // EDD for BIOS disk ordering.
    "iscsi_ibft",
    "edd",
    // Paravirtual devices that live outside the directories above.
    "virtio_*",
    "vsock",
    "vmw_vsock_virtio_transport",
];

/// Never seeds, even where a rule above would take them: test and fault
/// injection modules (tcrypt fails its init on purpose), storage *target*
/// drivers (they export disks to other hosts; recovery only uses disks),
/// HID drivers of devices that are not keyboards and pull in whole other
/// subsystems (prodikeys: ALSA for its MIDI port; picolcd: media rc-core),
/// and graphics, sound, media and wireless (a rescue console is text, and
/// recovery networks are wired). Dependencies may still pull one in.
const EXCLUDE: &[&str] = &[
    "kernel/crypto/tcrypt.ko*",
    "kernel/drivers/nvme/target/*",
    "kernel/drivers/scsi/qla2xxx/tcm_qla2xxx.ko*",
    "kernel/drivers/hid/hid-prodikeys.ko*",
    "kernel/drivers/hid/hid-picolcd.ko*",
    "kernel/lib/test_*",
    "kernel/lib/*error-inject*",
    "kernel/drivers/scsi/scsi_debug.ko*",
    "kernel/drivers/block/null_blk/*",
    "kernel/drivers/md/faulty.ko*",
    // File system *servers* and cluster file systems: a rescue system
    // mounts file systems, it does not export them (nfsd, ksmbd), and
    // cluster file systems need their whole cluster stack (ocfs2, gfs2 with
    // dlm), as do raw-flash ones with MTD (ubifs, jffs2).
    "kernel/fs/nfsd/*",
    "kernel/fs/ksmbd/*",
    "kernel/fs/smb/server/*",
    "kernel/fs/ocfs2/*",
    "kernel/fs/gfs2/*",
    "kernel/fs/dlm/*",
    "kernel/fs/ubifs/*",
    "kernel/fs/jffs2/*",
    "kernel/fs/coda/*",
    "kernel/fs/orangefs/*",
    "kernel/drivers/gpu/*",
    "kernel/sound/*",
    "kernel/drivers/media/*",
    "kernel/drivers/net/wireless/*",
    "kernel/net/wireless/*",
    "kernel/net/mac80211/*",
];

/// Whether the module at `rel_path` (relative to the modules dir) with
/// normalised `name` seeds the storage-net selection.
pub fn storage_net(rel_path: &str, name: &str) -> bool {
    let wanted =
        PATHS.iter().any(|p| matches(p, rel_path)) || NAMES.iter().any(|p| matches(p, name));
    wanted && !EXCLUDE.iter().any(|p| matches(p, rel_path))
}

/// `fnmatch`, with the common `literal*` rule as a plain prefix test: the
/// rules are checked against every module of the kernel.
fn matches(pattern: &str, s: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) if !has_wildcard(prefix) => s.starts_with(prefix),
        _ => fnmatch(pattern, s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_and_network_in_sound_gpu_wireless_out() {
        for (path, name) in [
            ("kernel/drivers/block/virtio_blk.ko", "virtio_blk"),
            ("kernel/drivers/scsi/sd_mod.ko.xz", "sd_mod"),
            (
                "kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko",
                "e1000e",
            ),
            ("kernel/fs/ext4/ext4.ko.zst", "ext4"),
            ("kernel/arch/x86/crypto/aesni-intel.ko", "aesni_intel"),
            ("kernel/net/packet/af_packet.ko", "af_packet"),
            ("kernel/net/vmw_vsock/vsock.ko", "vsock"),
        ] {
            assert!(storage_net(path, name), "{path}");
        }
        for (path, name) in [
            ("kernel/sound/pci/hda/snd-hda-intel.ko", "snd_hda_intel"),
            (
                "kernel/drivers/net/wireless/intel/iwlwifi/iwlwifi.ko",
                "iwlwifi",
            ),
            ("kernel/drivers/gpu/drm/virtio/virtio-gpu.ko", "virtio_gpu"),
            ("kernel/sound/virtio/virtio_snd.ko", "virtio_snd"),
            ("kernel/crypto/tcrypt.ko", "tcrypt"),
            ("kernel/drivers/media/usb/uvc/uvcvideo.ko", "uvcvideo"),
        ] {
            assert!(!storage_net(path, name), "{path}");
        }
    }
}
