//! Firmware conversion: the layout as the firmware of this machine needs
//! it, before any size is fitted or any step planned.
//!
//! A layout whose system booted by BIOS has no EFI system partition; one
//! that booted by UEFI from GPT may have no bios_grub partition. Recovered
//! onto a machine that boots the other way, it would come back unbootable
//! (ReaR's rear/rear #1798, #2592). [`convert`] adds what the target
//! firmware needs to the layout itself: a partition (and for an ESP its
//! vfat file system and its mount at /boot/efi), and, where MBR cannot
//! hold it, a GPT table in place of the MBR. Every later layer then treats
//! it as if the host had had it: `fit` makes room for it (shrinking what
//! may shrink, never a file system below its data and margin), `tables`
//! writes it, `fs` makes its file system, `recover::mount` mounts it, and
//! finalize installs GRUB for the target firmware onto it. Each change is
//! one line of [`Conversion::lines`], for the dry run and the report.

use std::collections::BTreeMap;

use anyhow::Result;

use super::fit::{self, MIB};
use crate::error::{Code, fail};
use crate::layout::show::human;
use crate::layout::{Disk, Filesystem, Flag, Layout, Mount, Partition, Table, VfatInfo, part_path};

/// The firmware the recovered system is made to boot with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Bios,
    Uefi,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Target::Bios => "bios",
            Target::Uefi => "uefi",
        })
    }
}

/// GPT type of an EFI system partition (UEFI spec 2.10, 5.3.3 table 5-7).
pub const ESP_GPT: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/// MBR type of an EFI system partition (UEFI spec 2.10, 5.2.2 table 5-2).
pub const ESP_MBR: &str = "ef";
/// GPT type of GRUB's BIOS boot partition (GRUB manual, "BIOS
/// installation"): the bytes "Hah!IdontNeedEFI" read as a mixed-endian
/// GUID, as sfdisk and the e2e fixture's bios_grub partition show it.
pub const BIOS_GRUB_GPT: &str = "21686148-6449-6E6F-744E-656564454649";

/// The size of a new ESP: 512 MiB. FAT32, which the UEFI spec asks of an
/// ESP on a fixed disk (13.3.1.1), needs at least 65525 clusters: 256 MiB
/// with mkfs.vfat's 4 KiB clusters, 260 MiB on a 4Kn disk; 512 MiB is
/// what Debian's and Fedora's installers give, with room for shim, GRUB
/// and firmware update capsules (fwupd) beside each other.
pub const ESP_SIZE: u64 = 512 * MIB;

/// The size of a new bios_grub partition where it cannot go in the gap
/// before the first partition: 1 MiB, what GRUB's manual recommends.
pub const BIOS_GRUB_SIZE: u64 = MIB;

/// The gap before the first partition is used for bios_grub when it holds
/// at least this: grub-install embeds core.img there, which with the
/// modules for LUKS2, LVM and md stays below 300 KiB (a plain core.img is
/// about 30 KiB; grub-install refuses, with its own message, an area too
/// small).
const BIOS_GRUB_GAP_MIN: u64 = 512 * 1024;

/// The first sector a GPT partition may start at: the protective MBR, the
/// GPT header and a 16 KiB entry array take sectors 0..33 (UEFI spec 5.3).
pub const GPT_FIRST_LBA: u64 = 34;

/// The end (exclusive) of what MBR can address: its start and length
/// fields are 32-bit counts of logical sectors (2 TiB with 512-byte
/// sectors).
const MBR_LIMIT_SECTORS: u64 = 1 << 32;

/// Where the new ESP is mounted in the restored system, as Debian's and
/// Fedora's installers mount it.
pub const ESP_MOUNT: &str = "/boot/efi";
/// The mount options of a new ESP: no one but root reads the boot loader
/// (Debian's installer writes the same).
pub const ESP_OPTIONS: &str = "umask=0077";

/// The layout as the target firmware needs it, and what changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversion {
    pub layout: Layout,
    /// One line per change (`EFI system partition /dev/sda3 ...`).
    pub lines: Vec<String>,
    /// Lines for the restored system's /etc/fstab (a new ESP's).
    pub fstab: Vec<String>,
}

/// What the layout's system booted with, as recorded: an ESP mounted
/// (UEFI), a bios_grub partition or an MBR disk (BIOS), both or neither.
pub fn recorded_firmware(l: &Layout) -> &'static str {
    let uefi = super::super::finalize::esps(l).0.is_some();
    let bios = l.disks.iter().any(super::super::finalize::boots_by_bios);
    match (bios, uefi) {
        (true, true) => "BIOS and UEFI",
        (true, false) => "BIOS",
        (false, true) => "UEFI",
        (false, false) => "neither BIOS nor UEFI (no boot loader recorded)",
    }
}

/// The layout `l` with what firmware `target` needs and it lacks, on the
/// mapped disks (layout disk → target) of the sizes `targets` gives.
/// Refused, before any step, when a disk has no room for it.
pub fn convert(
    l: &Layout,
    map: &BTreeMap<String, String>,
    targets: &BTreeMap<String, u64>,
    target: Target,
) -> Result<Conversion> {
    let mut c = Conversion {
        layout: l.clone(),
        lines: Vec::new(),
        fstab: Vec::new(),
    };
    match target {
        Target::Uefi => to_uefi(&mut c, map, targets)?,
        Target::Bios => to_bios(&mut c, map, targets)?,
    }
    Ok(c)
}

/// The disks GRUB boots from by BIOS, in layout order: GPT disks with a
/// bios_grub partition, and MBR disks with an active partition (all MBR
/// disks with partitions when none is active, as the firmware then boots
/// the first disk's MBR code whichever it is).
fn bios_boot_disks(l: &Layout) -> Vec<usize> {
    let mbr: Vec<usize> = (0..l.disks.len())
        .filter(|&i| l.disks[i].table == Table::Msdos && !l.disks[i].partitions.is_empty())
        .collect();
    let active: Vec<usize> = mbr
        .iter()
        .copied()
        .filter(|&i| {
            l.disks[i]
                .partitions
                .iter()
                .any(|p| p.flags.contains(&Flag::Boot))
        })
        .collect();
    let mbr = if active.is_empty() { mbr } else { active };
    (0..l.disks.len())
        .filter(|i| {
            mbr.contains(i)
                || (l.disks[*i].table == Table::Gpt
                    && l.disks[*i]
                        .partitions
                        .iter()
                        .any(|p| p.flags.contains(&Flag::BiosGrub)))
        })
        .collect()
}

fn to_uefi(
    c: &mut Conversion,
    map: &BTreeMap<String, String>,
    targets: &BTreeMap<String, u64>,
) -> Result<()> {
    if super::super::finalize::esps(&c.layout).0.is_some() {
        return Ok(());
    }
    let disks: Vec<usize> = bios_boot_disks(&c.layout)
        .into_iter()
        .filter(|&i| map.contains_key(&c.layout.disks[i].path))
        .collect();
    if disks.is_empty() {
        c.lines.push(
            "firmware: no disk of the layout has a boot loader to replace (no bios_grub partition, no MBR boot disk): no ESP added; install a boot loader by hand after recover".into(),
        );
        return Ok(());
    }
    for (n, &i) in disks.iter().enumerate() {
        let path = c.layout.disks[i].path.clone();
        let t = map.get(&path).cloned().unwrap_or_default();
        let size = targets.get(&t).copied().unwrap_or(c.layout.disks[i].size);
        add_esp(c, i, &t, size, n == 0)?;
    }
    Ok(())
}

fn to_bios(
    c: &mut Conversion,
    map: &BTreeMap<String, String>,
    targets: &BTreeMap<String, u64>,
) -> Result<()> {
    for i in 0..c.layout.disks.len() {
        let d = &c.layout.disks[i];
        let Some(t) = map.get(&d.path).cloned() else {
            continue;
        };
        // A GPT disk the system booted from by UEFI (it has an ESP) and
        // that BIOS GRUB cannot embed its core image on: GPT has no gap
        // after the MBR that is sure to be free, so GRUB wants a
        // partition of its own (GRUB manual, "BIOS installation").
        let esp = d.partitions.iter().any(|p| p.flags.contains(&Flag::Esp));
        let has = d
            .partitions
            .iter()
            .any(|p| p.flags.contains(&Flag::BiosGrub));
        if d.table != Table::Gpt || !esp || has {
            continue;
        }
        let size = targets.get(&t).copied().unwrap_or(d.size);
        add_bios_grub(c, i, &t, size)?;
    }
    Ok(())
}

/// The place of a new partition of `len` sectors on layout disk `d` put
/// on a target of `size` bytes: at the end of the target when the space
/// after the last partition holds it (the partitions keep their places),
/// else right after the last partition, for `fit` to make room by
/// shrinking (true).
fn place(d: &Disk, table: Table, size: u64, len: u64) -> (u64, bool) {
    let ss = d.logical_sector_size.max(1);
    let align = (MIB / ss).max(1);
    let end = match table {
        // The backup GPT: 33 sectors (UEFI spec 5.3).
        Table::Gpt => (size / ss).saturating_sub(33),
        _ => size / ss,
    };
    let used_end = d
        .partitions
        .iter()
        .map(|p| p.start + p.size)
        .max()
        .unwrap_or(align);
    let after = used_end.div_ceil(align) * align;
    let at_end = end.saturating_sub(len) / align * align;
    if at_end >= after {
        (at_end, false)
    } else {
        (after, true)
    }
}

/// A number for a new partition: MBR the first free primary slot, GPT the
/// next after the highest.
fn free_number(d: &Disk, table: Table) -> Option<u32> {
    let used = |n: u32| d.partitions.iter().any(|p| p.number == n);
    match table {
        Table::Msdos => (1..=4).find(|n| !used(*n)),
        _ => Some(d.partitions.iter().map(|p| p.number).max().unwrap_or(0) + 1),
    }
}

/// A vfat volume id for the new ESP on `disk`: the same on every run of
/// the same recovery, so that a recover run again after a failure writes
/// the fstab line for the file system the first run made (its mkfs step
/// is checkpointed and not run twice). FNV-1a of the host, the capture
/// time and the disk.
fn volume_id(l: &Layout, disk: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in format!("{}\0{}\0{disk}", l.host, l.captured_at).bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{:04X}-{:04X}", h >> 16, h & 0xffff)
}

fn add_esp(c: &mut Conversion, i: usize, t: &str, size: u64, mounted: bool) -> Result<()> {
    let d = c.layout.disks[i].clone();
    let before = fit::disk_min(&c.layout, &d);
    let ss = d.logical_sector_size.max(1);
    let len = ESP_SIZE / ss;
    // MBR stays MBR when it can: UEFI boots from an MBR disk's type 0xef
    // partition (UEFI spec 5.2.2), the partition numbers and the disk
    // identifier (and so PARTUUID=) stay, and the disk still boots by
    // BIOS too. GPT only when MBR cannot hold the ESP: no free primary
    // slot, or no room below the 2 TiB MBR addresses.
    let mut table = d.table;
    let mut why_gpt = None;
    if table == Table::Msdos {
        let (start, _) = place(&d, Table::Msdos, size, len);
        if free_number(&d, Table::Msdos).is_none() {
            why_gpt = Some("all four primary MBR slots are taken");
        } else if start + len > MBR_LIMIT_SECTORS {
            why_gpt = Some("the ESP would lie beyond the 2 TiB MBR can address");
        }
        if why_gpt.is_some() {
            table = Table::Gpt;
        }
    }
    if let Some(why) = why_gpt {
        let old_id = d.disk_id.clone().unwrap_or_default();
        to_gpt(&mut c.layout.disks[i])?;
        c.lines.push(format!(
            "firmware: disk {} (MBR) becomes GPT on {t}: {why}; partition numbers kept, PARTUUID= names of the old disk identifier {old_id} change (UUID= and LABEL= names stay)",
            d.path
        ));
    }
    let d = c.layout.disks[i].clone();
    let (start, shrink) = place(&d, table, size, len);
    let Some(number) = free_number(&d, table) else {
        return Err(fail(
            Code::Input,
            format!(
                "disk {} has no free partition number for an ESP; recover with --firmware bios",
                d.path
            ),
        ));
    };
    let path = part_path(&d.path, number);
    let gpt = table == Table::Gpt;
    c.layout.disks[i].partitions.push(Partition {
        number,
        path: path.clone(),
        start,
        size: len,
        type_: if gpt { ESP_GPT } else { ESP_MBR }.into(),
        uuid: None,
        name: gpt.then(|| "EFI System Partition".to_string()),
        attrs: None,
        flags: vec![Flag::Esp],
    });
    let uuid = volume_id(&c.layout, &d.path);
    c.layout.filesystems.push(Filesystem {
        device: path.clone(),
        fstype: "vfat".into(),
        uuid: Some(uuid.clone()),
        label: None,
        used_bytes: None,
        ext: None,
        xfs: None,
        btrfs: None,
        vfat: Some(VfatInfo { fat_bits: 32 }),
    });
    refuse_no_room(
        &c.layout,
        i,
        before,
        t,
        size,
        "a 512 MiB EFI system partition",
        Target::Bios,
    )?;
    let whence = if shrink {
        "room made by shrinking the partitions that can give it (the size lines say how much)"
    } else {
        "from the free space at the end of the disk"
    };
    let kind = if gpt {
        "GPT type EFI System"
    } else {
        "MBR type 0xef, the disk stays MBR"
    };
    if mounted {
        c.layout.mounts.push(Mount {
            target: ESP_MOUNT.into(),
            source: path.clone(),
            fstype: "vfat".into(),
            options: ESP_OPTIONS.into(),
            fsroot: None,
        });
        c.fstab
            .push(format!("UUID={uuid} {ESP_MOUNT} vfat {ESP_OPTIONS} 0 1"));
        c.lines.push(format!(
            "firmware: EFI system partition {path} ({}, {kind}) added on {t}, {whence}; vfat UUID={uuid}, mounted at {ESP_MOUNT} and added to /etc/fstab; GRUB for UEFI is installed onto it",
            human(ESP_SIZE)
        ));
    } else {
        c.lines.push(format!(
            "firmware: EFI system partition {path} ({}, {kind}) added on {t}, {whence}; vfat UUID={uuid}, a copy of the first ESP's \\EFI so this disk boots alone",
            human(ESP_SIZE)
        ));
    }
    Ok(())
}

/// Refuses a disk whose data and the new partition (`what`) do not fit on
/// its target: both sizes, and the way out (`other`: the firmware whose
/// boot loader needs no new partition).
fn refuse_no_room(
    l: &Layout,
    i: usize,
    before: u64,
    t: &str,
    size: u64,
    what: &str,
    other: Target,
) -> Result<()> {
    let d = &l.disks[i];
    let need = fit::disk_min(l, d);
    if size >= super::super::mapping::needed_bytes(d) || size >= need {
        return Ok(());
    }
    Err(fail(
        Code::Host,
        format!(
            "no room for {what} on {t} ({}): disk {} needs at least {} for its data, {} with it; attach a bigger disk, or recover with --firmware {other}; nothing was changed",
            human(size),
            d.path,
            human(before),
            human(need)
        ),
    ))
}

/// The GPT type of an MBR partition type recover converts, None for one
/// it does not know (it is not guessed).
fn gpt_type(mbr: &str) -> Option<&'static str> {
    Some(match mbr.to_ascii_lowercase().as_str() {
        // Linux filesystem data (util-linux libfdisk's type tables).
        "83" => "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
        "82" => "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F",
        "8e" => "E6D6D379-F507-44C2-A23C-238F2A3DF928",
        "fd" => "A19D880F-05FC-4D3B-A006-743F0F84911E",
        "ef" => ESP_GPT,
        // FAT and NTFS: Microsoft basic data.
        "01" | "04" | "06" | "07" | "0b" | "0c" | "0e" => "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
        _ => return None,
    })
}

/// Layout disk `d` as a GPT disk: each partition with its number, place
/// and size, its type mapped to GPT; the extended partition (a container
/// MBR needs for its logical partitions) dropped, the logical ones kept
/// with their numbers (GPT has no limit of four). The disk identifier and
/// the active flag have no GPT meaning: sfdisk makes a new disk GUID and
/// partition GUIDs.
fn to_gpt(d: &mut Disk) -> Result<()> {
    d.partitions
        .retain(|p| !["05", "0f", "85"].contains(&p.type_.to_ascii_lowercase().as_str()));
    for p in &mut d.partitions {
        let Some(g) = gpt_type(&p.type_) else {
            return Err(fail(
                Code::Input,
                format!(
                    "partition {} has MBR type 0x{}, which recover has no GPT type for, and disk {} must become GPT for an ESP; recover with --firmware bios (the disk stays MBR) or make room for the ESP on the host; nothing was changed",
                    p.path, p.type_, d.path
                ),
            ));
        };
        if p.start < GPT_FIRST_LBA {
            return Err(fail(
                Code::Input,
                format!(
                    "partition {} starts at sector {}, where GPT keeps its header; recover with --firmware bios (the disk stays MBR); nothing was changed",
                    p.path, p.start
                ),
            ));
        }
        p.type_ = g.to_string();
        p.flags.retain(|f| *f != Flag::Boot);
        p.uuid = None;
    }
    d.table = Table::Gpt;
    d.disk_id = None;
    Ok(())
}

/// A bios_grub partition on GPT layout disk `i`: in the gap before the
/// first partition when it holds [`BIOS_GRUB_GAP_MIN`] (sectors 34..2047
/// on a disk partitioned at 1 MiB: free, and lost otherwise), else 1 MiB
/// at the end of the disk or made room for by shrinking, like an ESP.
fn add_bios_grub(c: &mut Conversion, i: usize, t: &str, size: u64) -> Result<()> {
    let d = c.layout.disks[i].clone();
    let before = fit::disk_min(&c.layout, &d);
    let ss = d.logical_sector_size.max(1);
    let first = d.partitions.iter().map(|p| p.start).min().unwrap_or(0);
    let gap = first.saturating_sub(GPT_FIRST_LBA);
    let (start, len, whence) = if gap * ss >= BIOS_GRUB_GAP_MIN {
        (
            GPT_FIRST_LBA,
            gap,
            format!(
                "in the gap before the first partition (sectors {GPT_FIRST_LBA}..{})",
                first - 1
            ),
        )
    } else {
        let len = BIOS_GRUB_SIZE / ss;
        let (start, shrink) = place(&d, Table::Gpt, size, len);
        let whence = if shrink {
            "room made by shrinking the partitions that can give it (the size lines say how much)"
        } else {
            "from the free space at the end of the disk"
        };
        (start, len, whence.to_string())
    };
    let number = free_number(&d, Table::Gpt).unwrap_or(1);
    let path = part_path(&d.path, number);
    c.layout.disks[i].partitions.push(Partition {
        number,
        path: path.clone(),
        start,
        size: len,
        type_: BIOS_GRUB_GPT.into(),
        uuid: None,
        name: Some("BIOS boot partition".into()),
        attrs: None,
        flags: vec![Flag::BiosGrub],
    });
    refuse_no_room(
        &c.layout,
        i,
        before,
        t,
        size,
        "a 1 MiB bios_grub partition",
        Target::Uefi,
    )?;
    c.lines.push(format!(
        "firmware: bios_grub partition {path} ({}) added on {t}, {whence}; GRUB for BIOS (i386-pc) is installed on {t}",
        human(len * ss)
    ));
    Ok(())
}
