//! Fitting: the sizes partitions, md arrays and LVs get on target disks of
//! another size than the layout's.
//!
//! Recover makes every file system fresh and restores files into it, so a
//! file system may be made at any size that holds its data. The minimum of
//! each device is worked out bottom up, from what it holds: a file system
//! its used bytes plus a margin ([`fs_min`]), swap a small floor, an LV its
//! file system, a PV the minimum LVs of its VG, an md member its share of
//! the array, a partition what is on it; what recover does not know the
//! contents of (bios_grub, an ESP, an unmounted file system, a layout of a
//! mkrescue that did not record used bytes) keeps its recorded size. Then
//! the sizes are handed out top down: a disk's space among its partitions,
//! an array's members' space to the array, a VG's PVs to its LVs. A level
//! that shrinks takes from each piece in proportion to what that piece can
//! give (its size above its minimum); a level that grows does what
//! `[recover] resize` says. File systems take the size of their device
//! (mkfs fills it), so they follow their partition or LV.
//!
//! A target smaller than what the data needs is refused here, before the
//! first step, with the layout disk, the target and both sizes.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use crate::config::Resize;
use crate::error::{Code, fail};
use crate::layout::show::human;
use crate::layout::{Disk, Filesystem, Flag, Layout, Lv, LvKind, MdArray, Table};

pub const MIB: u64 = 1 << 20;

/// Partitions start and end on 1 MiB boundaries, as fdisk and parted put
/// them: aligned for every SSD erase block and RAID stripe in practice.
const PART_ALIGN: u64 = MIB;

/// Room a LUKS header takes in front of the mapping: 16 MiB, the LUKS2
/// default (cryptsetup(8) `--luks2-metadata-size` and keyslots area); a
/// LUKS1 header is 2 MiB, so this is on the safe side for both.
const LUKS_HEADER: u64 = 16 * MIB;

/// What an md member needs besides its share of the data: the superblock
/// and bitmap at the end for metadata 0.90 and 1.0 (a 1.2 superblock sits
/// before the data offset instead), and mdadm rounding the usable size down
/// to its chunk (md(4)). 1 MiB covers both.
const MD_TAIL: u64 = MIB;

/// mdadm's data offset when none was recorded: up to 128 MiB on a large
/// member with metadata 1.1/1.2 (mdadm(8) `--data-offset`).
const MD_DEFAULT_OFFSET: u64 = 128 * MIB;

/// Swap holds nothing that is restored and the recovered system runs
/// without it, so it gives way to data first: it shrinks with the rest,
/// down to 128 MiB (or its recorded size when that is smaller), which still
/// lets the kernel page out what is idle. On a bigger disk it keeps its
/// size: more disk is no reason for more swap.
pub const SWAP_MIN: u64 = 128 * MIB;

/// One size the plan chose that differs from the layout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// The device as the layout names it.
    pub device: String,
    /// `partition`, `md array`, `logical volume`.
    pub kind: &'static str,
    pub old: u64,
    pub new: u64,
    /// What is on it, for the reader: `ext4, 1.2 GiB used`.
    pub holds: String,
}

impl std::fmt::Display for Change {
    /// `partition /dev/vda3: 5.8 GiB -> 3.4 GiB (md /dev/md0)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {} -> {}",
            self.kind,
            self.device,
            human(self.old),
            human(self.new)
        )?;
        if !self.holds.is_empty() {
            write!(f, " ({})", self.holds)?;
        }
        Ok(())
    }
}

/// Where a partition goes on its target disk, when not as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartFit {
    /// First sector.
    pub start: u64,
    /// Length in sectors; None: to the end of the disk (sfdisk without
    /// `size=`).
    pub size: Option<u64>,
}

/// The sizes chosen, keyed by the layout's device paths; a device not
/// named keeps its recorded size.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fit {
    pub partitions: BTreeMap<String, PartFit>,
    /// md array → its size in bytes (`mdadm --size` per member follows).
    pub md: BTreeMap<String, u64>,
    /// LV path → bytes.
    pub lvs: BTreeMap<String, u64>,
    /// Every size that differs, for `--dry-run` and the report.
    pub changes: Vec<Change>,
}

fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a.max(1)) * a.max(1)
}

fn align_down(x: u64, a: u64) -> u64 {
    x / a.max(1) * a.max(1)
}

/// The least size a fresh file system of `fstype` needs to hold `used`
/// bytes of files. The margin over the data is max(10% of it, 256 MiB):
/// restored files are not laid out as on the host (no sparse tail blocks
/// kept by every archiver, fragmentation of a fresh file system, logs and
/// package caches that grow in the first hours after the restore), and a
/// file system filled to the brim is slow and stops the services on it;
/// 256 MiB is the floor for a small file system where 10% is nothing. On
/// top comes what the file system itself takes, a share of its size and a
/// fixed part:
/// - ext2/3/4: 5% reserved for root (mke2fs(8) `-m`, default), about 2%
///   inode tables (256-byte inodes, one per 16 KiB: mke2fs.conf
///   `inode_ratio`) and bitmaps, and the journal (up to 128 MiB for the
///   sizes here, e2fsprogs ext2fs_default_journal_size);
/// - xfs: about 2% of metadata plus its log (the recorded log size is kept,
///   fs.rs), and at least 300 MiB: mkfs.xfs refuses anything smaller since
///   xfsprogs 5.19;
/// - btrfs: metadata is duplicated and allocated in chunks: 10% and
///   256 MiB, and at least 256 MiB (mkfs.btrfs's minimum is near that for
///   a file system with mixed block groups off).
pub fn fs_need(fs: &Filesystem, used: u64) -> u64 {
    let margin = (used / 10).max(256 * MIB);
    let (pct, fixed, floor) = match fs.fstype.as_str() {
        "ext2" | "ext3" | "ext4" => (8, 128 * MIB, 0),
        "xfs" => (
            3,
            fs.xfs
                .as_ref()
                .map(|x| x.log_size_blocks * x.block_size)
                .unwrap_or(64 * MIB),
            300 * MIB,
        ),
        "btrfs" => (10, 256 * MIB, 256 * MIB),
        _ => (5, 64 * MIB, 0),
    };
    let net = used + margin + fixed;
    ((net as u128 * 100).div_ceil(100 - pct as u128) as u64).max(floor)
}

/// The layout with each file system's used bytes raised to what the
/// backup about to be restored puts on it, where that is more, and a line
/// for each raised one. The used bytes were recorded when the rescue image
/// was built, which may be long before the backup: a file system fitted to
/// them would fill up half way through the restore. `alloc_by_mount` is
/// [`crate::backup::facts::Facts::alloc_by_mount`] (mount point → bytes in
/// 4 KiB blocks); a file system's is the sum over its mount points (btrfs
/// subvolumes), each file counted under one. A file system without recorded
/// used bytes, an ESP (vfat) and swap keep their recorded sizes whatever
/// the backup holds, so they are left as they are.
pub fn with_backup(
    l: &Layout,
    alloc_by_mount: &BTreeMap<String, u64>,
    backup: &str,
) -> (Layout, Vec<String>) {
    let mut out = l.clone();
    let mut lines = Vec::new();
    for f in &mut out.filesystems {
        // vfat and swap keep their sizes whatever they hold (fs_min).
        if matches!(f.fstype.as_str(), "vfat" | "swap") {
            continue;
        }
        let Some(used) = f.used_bytes else { continue };
        // Each target once: a layout may list a mount point twice (the
        // e2e server's ESP, mounted at /boot/efi over its automount).
        let mounts: Vec<&str> = l
            .mounts
            .iter()
            .filter(|m| m.source == f.device && m.fstype == f.fstype)
            .map(|m| m.target.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let held: u64 = mounts.iter().filter_map(|m| alloc_by_mount.get(*m)).sum();
        if held <= used {
            continue;
        }
        let raised = crate::layout::capture::round_used(held);
        lines.push(format!(
            "used: {} ({}) holds {} in backup {backup}, more than the {} recorded with the layout: its size is fitted to {}",
            f.device,
            mounts.join(", "),
            human(held),
            human(used),
            human(raised)
        ));
        f.used_bytes = Some(raised);
    }
    (out, lines)
}

/// The least size of the device of file system `fs` recorded at
/// `recorded` bytes: vfat keeps its size (its FAT type was chosen for it,
/// and ESPs are small), swap shrinks to [`SWAP_MIN`], a file system with
/// recorded used bytes to [`fs_need`], any other keeps its size. Never
/// more than recorded: the data was held there before.
pub fn fs_min(fs: &Filesystem, recorded: u64) -> u64 {
    let min = match (fs.fstype.as_str(), fs.used_bytes) {
        ("vfat", _) => recorded,
        ("swap", _) => SWAP_MIN,
        (_, Some(used)) => fs_need(fs, used),
        (_, None) => recorded,
    };
    min.min(recorded)
}

/// Bytes that hold the data per data disk: raid1 mirrors one disk's worth,
/// raid4/5 and 6 spread over all but one or two. None for levels whose size
/// recover does not set (raid0, raid10, linear: their size follows the
/// members, so they keep their recorded members).
fn data_disks(m: &MdArray) -> Option<u64> {
    let n = match m.level.as_str() {
        "raid1" => 1,
        "raid4" | "raid5" => m.raid_devices.checked_sub(1)?,
        "raid6" => m.raid_devices.checked_sub(2)?,
        _ => return None,
    };
    (n > 0).then_some(n as u64)
}

/// What mdadm rounds a member's used size to: its chunk, else 64 KiB.
fn md_unit(m: &MdArray) -> u64 {
    m.chunk_kib.map(|c| c * 1024).unwrap_or(64 * 1024).max(1)
}

fn md_offset(m: &MdArray) -> u64 {
    match m.data_offset_sectors {
        Some(o) => o * 512,
        None if matches!(m.metadata.as_str(), "1.1" | "1.2") => MD_DEFAULT_OFFSET,
        None => 0,
    }
}

/// The bytes an LV takes from its VG for `size` bytes of volume: mirrors
/// take one copy per leg (raid1 with a metadata extent per leg, mirror a
/// log extent), a thin pool its data, metadata and the spare metadata LVM
/// keeps for repair (lvmthin(7)); a thin volume takes its pool's space.
fn consumption(lv: &Lv, size: u64, extent: u64) -> u64 {
    match &lv.kind {
        LvKind::Linear | LvKind::Striped { .. } => size,
        LvKind::Mirror { mirrors } => size * (*mirrors).max(1) as u64 + extent,
        LvKind::Raid1 { mirrors } => (size + extent) * (*mirrors).max(1) as u64,
        LvKind::ThinPool { metadata_size, .. } => size + 2 * metadata_size,
        LvKind::Thin { .. } => 0,
    }
}

/// The allocation unit of an LV: its VG's extent, times the stripes.
fn lv_unit(lv: &Lv, extent: u64) -> u64 {
    match &lv.kind {
        LvKind::Striped { stripes, .. } => extent * (*stripes).max(1) as u64,
        _ => extent,
    }
}

/// Whether recover sets this LV's size to anything but the recorded one.
fn lv_resizable(lv: &Lv) -> bool {
    matches!(lv.kind, LvKind::Linear | LvKind::Striped { .. })
}

struct Sizes<'a> {
    l: &'a Layout,
    /// How deep [`Sizes::min`] has gone: a layout file whose devices stack
    /// in a circle (a PV on an LV of its own VG) would never end.
    depth: std::cell::Cell<u32>,
}

impl<'a> Sizes<'a> {
    fn new(l: &'a Layout) -> Self {
        Sizes {
            l,
            depth: std::cell::Cell::new(0),
        }
    }
}

impl Sizes<'_> {
    /// The recorded size of a layout device in bytes.
    fn recorded(&self, dev: &str) -> u64 {
        let l = self.l;
        for d in &l.disks {
            if d.path == dev {
                return d.size;
            }
            if let Some(p) = d.partitions.iter().find(|p| p.path == dev) {
                return p.size * d.logical_sector_size.max(1);
            }
        }
        if let Some(m) = l.md.iter().find(|m| m.path == dev) {
            return m.size;
        }
        if let Some(lv) = l.lvm.lvs.iter().find(|v| v.path() == dev) {
            return lv.size;
        }
        if let Some(x) = l.luks.iter().find(|x| x.mapper == dev)
            && self.depth.get() <= 16
        {
            self.depth.set(self.depth.get() + 1);
            let r = self.recorded(&x.device).saturating_sub(LUKS_HEADER);
            self.depth.set(self.depth.get() - 1);
            return r;
        }
        0
    }

    /// The least size of layout device `dev` for what it holds; never more
    /// than its recorded size.
    fn min(&self, dev: &str) -> u64 {
        let l = self.l;
        let rec = self.recorded(dev);
        // Real stacks are a few levels deep (partition, md, LUKS, PV, LV,
        // file system); deeper is a circle: keep the recorded size.
        if self.depth.get() > 16 {
            return rec;
        }
        self.depth.set(self.depth.get() + 1);
        let need = if let Some(x) = l.luks.iter().find(|x| x.device == dev) {
            self.min(&x.mapper) + LUKS_HEADER
        } else if let Some(m) = l.md.iter().find(|m| m.devices.contains(&dev.to_string())) {
            self.member_min(m).unwrap_or(rec)
        } else if let Some(pv) = l.lvm.pvs.iter().find(|p| p.device == dev) {
            self.pv_min(&pv.device, pv.vg.as_deref())
        } else if let Some(f) = l.filesystems.iter().find(|f| f.device == dev) {
            fs_min(f, rec)
        } else {
            rec
        };
        self.depth.set(self.depth.get() - 1);
        need.min(rec)
    }

    /// Whether more room on `dev` would be used: a file system (not swap,
    /// not vfat), LVM, an md member, LUKS over one of those.
    fn grows(&self, dev: &str) -> bool {
        if self.depth.get() > 16 {
            return false;
        }
        self.depth.set(self.depth.get() + 1);
        let g = self.grows_here(dev);
        self.depth.set(self.depth.get() - 1);
        g
    }

    fn grows_here(&self, dev: &str) -> bool {
        let l = self.l;
        if let Some(x) = l.luks.iter().find(|x| x.device == dev) {
            return self.grows(&x.mapper);
        }
        if let Some(m) = l.md.iter().find(|m| m.devices.contains(&dev.to_string())) {
            return data_disks(m).is_some() && self.grows(&m.path);
        }
        if l.lvm.pvs.iter().any(|p| p.device == dev) {
            return true;
        }
        l.filesystems
            .iter()
            .any(|f| f.device == dev && !matches!(f.fstype.as_str(), "swap" | "vfat"))
    }

    /// A member's least size: its share of the array's least size, the
    /// data offset and [`MD_TAIL`]. None when the level's size is not set.
    fn member_min(&self, m: &MdArray) -> Option<u64> {
        let n = data_disks(m)?;
        let comp = align_up(self.min(&m.path).div_ceil(n), md_unit(m));
        Some(comp + md_offset(m) + MD_TAIL)
    }

    /// The LVs of VG `vg` at their least sizes, in bytes taken from it.
    fn vg_need(&self, vg: &str, extent: u64) -> u64 {
        self.l
            .lvm
            .lvs
            .iter()
            .filter(|lv| lv.vg == vg)
            .map(|lv| consumption(lv, self.lv_min(lv, extent), extent))
            .sum()
    }

    fn lv_min(&self, lv: &Lv, extent: u64) -> u64 {
        if lv_resizable(lv) {
            align_up(self.min(&lv.path()), lv_unit(lv, extent)).min(lv.size)
        } else {
            lv.size
        }
    }

    /// A PV's least size: the VG's least need (a VG of several PVs shares
    /// it out in proportion to their recorded sizes), its first extent's
    /// offset, and one extent more for the rounding of the PV's size to
    /// whole extents.
    fn pv_min(&self, dev: &str, vg: Option<&str>) -> u64 {
        let l = self.l;
        let Some(vg) = vg.and_then(|n| l.lvm.vgs.iter().find(|v| v.name == n)) else {
            return self.recorded(dev);
        };
        let ext = vg.extent_size.max(1);
        let need = self.vg_need(&vg.name, ext);
        let pvs = pvs_of(l, vg);
        let Some(me) = pvs.iter().find(|p| p.device == dev) else {
            return self.recorded(dev);
        };
        let total: u64 = pvs.iter().map(|p| p.size).sum();
        let share = if pvs.len() <= 1 || total == 0 {
            need
        } else {
            (need as u128 * me.size as u128).div_ceil(total as u128) as u64
        };
        align_up(share, ext) + me.pe_start + ext + MIB
    }

    /// What is on `dev`, for a [`Change`].
    fn holds(&self, dev: &str) -> String {
        let l = self.l;
        if let Some(x) = l.luks.iter().find(|x| x.device == dev) {
            return format!("LUKS {}", x.mapper);
        }
        if let Some(m) = l.md.iter().find(|m| m.devices.contains(&dev.to_string())) {
            return format!("member of {}", m.path);
        }
        if let Some(pv) = l.lvm.pvs.iter().find(|p| p.device == dev) {
            return format!("LVM PV of {}", pv.vg.as_deref().unwrap_or("no VG"));
        }
        if let Some(f) = l.filesystems.iter().find(|f| f.device == dev) {
            return match f.used_bytes {
                Some(u) => format!("{}, {} used", f.fstype, human(u)),
                None => f.fstype.clone(),
            };
        }
        String::new()
    }
}

/// Whether `d`'s partitions keep their recorded places whatever the disk:
/// an MBR extended partition and its logical ones move only together.
fn fixed_table(d: &Disk) -> bool {
    d.table == Table::Msdos
        && d.partitions
            .iter()
            .any(|p| p.number > 4 || ["05", "0f", "85"].contains(&p.type_.as_str()))
}

/// Sectors after the last partition that a table needs: the backup GPT
/// (33 sectors: header and a 16 KiB entry array, UEFI spec 5.3).
fn tail_sectors(d: &Disk) -> u64 {
    if d.table == Table::Gpt { 33 } else { 0 }
}

/// The least bytes a target disk must have for the data of layout disk
/// `d`: every partition at its least size, each on a 1 MiB boundary, or
/// the whole disk's content at its least. Never more than the recorded
/// table needs (`mapping::needed_bytes`).
pub fn disk_min(l: &Layout, d: &Disk) -> u64 {
    let full = super::super::mapping::needed_bytes(d);
    let sz = Sizes::new(l);
    if d.table == Table::None {
        return sz.min(&d.path).min(full);
    }
    if fixed_table(d) || d.partitions.is_empty() {
        return full;
    }
    let ss = d.logical_sector_size.max(1);
    let align = (PART_ALIGN / ss).max(1);
    let mut parts: Vec<_> = d.partitions.iter().collect();
    parts.sort_by_key(|p| p.start);
    let mins: u64 = parts.iter().map(|p| part_min(&sz, p, ss, align)).sum();
    let sectors = parts[0].start + (parts.len() as u64 - 1) * align + mins + tail_sectors(d);
    (sectors * ss).min(full)
}

/// A partition's least length in sectors: recorded when nothing on it can
/// shrink, else its content's least, rounded up to the alignment.
fn part_min(sz: &Sizes, p: &crate::layout::Partition, ss: u64, align: u64) -> u64 {
    let min = sz.min(&p.path).div_ceil(ss);
    if min >= p.size {
        p.size
    } else {
        align_up(min, align).min(p.size)
    }
}

/// One piece a level hands its space to.
struct Piece {
    recorded: u64,
    min: u64,
    grows: bool,
}

/// Sizes for `pieces` in `capacity`: as recorded when they fit and the
/// level does not grow; shrunk, each in proportion to what it can give
/// (recorded less least), when they do not fit; grown in proportion to
/// their recorded sizes when `grow_to` (the level's new total) is given.
/// None when even the least sizes do not fit.
fn distribute(capacity: u64, pieces: &[Piece], grow_to: Option<u64>) -> Option<Vec<u64>> {
    let total: u64 = pieces.iter().map(|p| p.recorded).sum();
    if capacity >= total {
        let Some(to) = grow_to.map(|t| t.min(capacity)).filter(|t| *t > total) else {
            return Some(pieces.iter().map(|p| p.recorded).collect());
        };
        let extra = (to - total) as u128;
        let growing: u128 = pieces
            .iter()
            .filter(|p| p.grows)
            .map(|p| p.recorded as u128)
            .sum();
        return Some(
            pieces
                .iter()
                .map(|p| {
                    if p.grows && growing > 0 {
                        p.recorded + (extra * p.recorded as u128 / growing) as u64
                    } else {
                        p.recorded
                    }
                })
                .collect(),
        );
    }
    let short = (total - capacity) as u128;
    let slack: u128 = pieces
        .iter()
        .map(|p| p.recorded.saturating_sub(p.min) as u128)
        .sum();
    if short > slack {
        return None;
    }
    Some(
        pieces
            .iter()
            .map(|p| {
                let s = p.recorded.saturating_sub(p.min) as u128;
                p.recorded - (s * short).div_ceil(slack.max(1)) as u64
            })
            .collect(),
    )
}

/// The refusal of a disk too small for its data: both disks, both sizes
/// and the least that would do (exit 4: this machine lacks a disk).
pub fn too_small(l: &Layout, d: &Disk, target: &str, target_size: u64) -> anyhow::Error {
    fail(
        Code::Host,
        format!(
            "disk {} ({}, needs at least {} for its data) does not fit on {target} ({}); attach a disk of at least that size or give --map {}=DISK; nothing was changed",
            d.path,
            human(d.size),
            human(disk_min(l, d)),
            human(target_size),
            d.path
        ),
    )
}

/// The sizes for `layout` on the mapped disks (layout disk → target),
/// whose sizes `targets` gives (a disk without one keeps its sizes).
pub fn fit(
    l: &Layout,
    map: &BTreeMap<String, String>,
    targets: &BTreeMap<String, u64>,
    resize: Resize,
) -> Result<Fit> {
    let sz = Sizes::new(l);
    let mut fit = Fit::default();
    // Layout device → its new size in bytes, where it changed.
    let mut new: BTreeMap<String, u64> = BTreeMap::new();
    let proportional = resize == Resize::Proportional;
    for d in &l.disks {
        let Some(t) = map.get(&d.path) else { continue };
        let Some(&size) = targets.get(t) else {
            continue;
        };
        let ss = d.logical_sector_size.max(1);
        let full = super::super::mapping::needed_bytes(d);
        if size < full && size < disk_min(l, d) {
            return Err(too_small(l, d, t, size));
        }
        if d.table == Table::None {
            if size < d.size || (proportional && size > d.size && sz.grows(&d.path)) {
                new.insert(d.path.clone(), size);
            }
            continue;
        }
        if d.partitions.is_empty() || (size >= full && !proportional) || fixed_table(d) {
            if resize == Resize::Last
                && size > d.size
                && let Some(p) = last_growable(d)
            {
                // Up to the partition after it (an ESP or bios_grub that
                // firmware conversion put at the end of the disk), else to
                // the end of the disk.
                let next = d
                    .partitions
                    .iter()
                    .map(|q| q.start)
                    .filter(|s| *s > p.start)
                    .min();
                let end = next.unwrap_or(size / ss - tail_sectors(d));
                if end <= p.start + p.size {
                    continue;
                }
                fit.partitions.insert(
                    p.path.clone(),
                    PartFit {
                        start: p.start,
                        size: next.map(|n| n - p.start),
                    },
                );
                let grown = (end - p.start) * ss;
                fit.changes.push(Change {
                    device: p.path.clone(),
                    kind: "partition",
                    old: p.size * ss,
                    new: grown,
                    holds: format!(
                        "grown to {} {t}; {}",
                        if next.is_some() {
                            "the partition after it on"
                        } else {
                            "the end of"
                        },
                        sz.holds(&p.path)
                    )
                    .trim_end_matches("; ")
                    .to_string(),
                });
                new.insert(p.path.clone(), grown);
            }
            continue;
        }
        let align = (PART_ALIGN / ss).max(1);
        let mut parts: Vec<_> = d.partitions.iter().collect();
        parts.sort_by_key(|p| p.start);
        let first = parts[0].start;
        let end = size / ss - tail_sectors(d);
        let reserve = (parts.len() as u64 - 1) * align;
        let capacity = end.saturating_sub(first + reserve);
        let pieces: Vec<Piece> = parts
            .iter()
            .map(|p| Piece {
                recorded: p.size,
                min: part_min(&sz, p, ss, align),
                grows: sz.grows(&p.path),
            })
            .collect();
        let grow_to = proportional.then(|| {
            let total: u64 = parts.iter().map(|p| p.size).sum();
            (total as u128 * size as u128 / d.size.max(1) as u128) as u64
        });
        let total: u64 = pieces.iter().map(|p| p.recorded).sum();
        if size >= full && capacity < total {
            // Growing, but the 1 MiB boundaries would cost more than the
            // disk adds: keep the recorded places.
            continue;
        }
        let Some(alloc) = distribute(capacity, &pieces, grow_to) else {
            return Err(too_small(l, d, t, size));
        };
        if alloc.iter().zip(&parts).all(|(a, p)| *a == p.size) {
            // Nothing to grow: every partition where it was.
            continue;
        }
        let mut cursor = first;
        for (p, (a, piece)) in parts.iter().zip(alloc.iter().zip(&pieces)) {
            // The first keeps its place; the others follow on the next
            // boundary (gaps between partitions are not kept).
            let start = if cursor == first {
                p.start
            } else {
                align_up(cursor, align)
            };
            let len = if *a == p.size {
                p.size
            } else {
                align_down(*a, align).max(piece.min)
            };
            cursor = start + len;
            if start != p.start || len != p.size {
                fit.partitions.insert(
                    p.path.clone(),
                    PartFit {
                        start,
                        size: Some(len),
                    },
                );
            }
            if len != p.size {
                new.insert(p.path.clone(), len * ss);
                fit.changes.push(Change {
                    device: p.path.clone(),
                    kind: "partition",
                    old: p.size * ss,
                    new: len * ss,
                    holds: sz.holds(&p.path),
                });
            }
        }
        if cursor > end {
            return Err(too_small(l, d, t, size));
        }
    }
    // md arrays: the smallest member decides; on members no smaller than
    // recorded an array keeps its size unless it grows in proportion.
    for m in &l.md {
        let Some(n) = data_disks(m) else { continue };
        let sizes: Vec<(u64, u64)> = m
            .devices
            .iter()
            .map(|d| {
                (
                    new.get(d).copied().unwrap_or(sz.recorded(d)),
                    sz.recorded(d),
                )
            })
            .collect();
        let shrank = sizes.iter().any(|(now, was)| now < was);
        let grew = sizes.iter().all(|(now, was)| now > was);
        let grows = proportional && grew;
        if !shrank && !grows {
            continue;
        }
        let least_member = sizes.iter().map(|(now, _)| *now).min().unwrap_or(0);
        let comp = align_down(
            least_member.saturating_sub(md_offset(m) + MD_TAIL),
            md_unit(m),
        );
        let mut size = comp * n;
        if !proportional {
            size = size.min(m.size);
        }
        if size < sz.min(&m.path) {
            return Err(fail(
                Code::Host,
                format!(
                    "md array {} ({}, needs at least {} for its data) does not fit on its members here ({} each); nothing was changed",
                    m.path,
                    human(m.size),
                    human(sz.min(&m.path)),
                    human(least_member)
                ),
            ));
        }
        if size != m.size {
            fit.md.insert(m.path.clone(), size);
            new.insert(m.path.clone(), size);
            fit.changes.push(Change {
                device: m.path.clone(),
                kind: "md array",
                old: m.size,
                new: size,
                holds: sz.holds(&m.path),
            });
        }
    }
    // LUKS mappings follow their containers.
    for x in &l.luks {
        if let Some(s) = new.get(&x.device).copied() {
            new.insert(x.mapper.clone(), s.saturating_sub(LUKS_HEADER));
        }
    }
    // LVs: a VG whose PVs shrank hands out what it has now.
    for vg in &l.lvm.vgs {
        let ext = vg.extent_size.max(1);
        let pvs = pvs_of(l, vg);
        let now = |p: &crate::layout::Pv| new.get(&p.device).copied();
        if pvs.iter().all(|p| now(p).is_none()) {
            continue;
        }
        let was: u64 = pvs.iter().map(|p| sz.recorded(&p.device)).sum();
        let is: u64 = pvs
            .iter()
            .map(|p| now(p).unwrap_or(sz.recorded(&p.device)))
            .sum();
        if is == was || (is > was && !proportional) {
            continue;
        }
        let capacity: u64 = pvs
            .iter()
            .map(|p| {
                let s = now(p).unwrap_or(sz.recorded(&p.device));
                (s.saturating_sub(p.pe_start) / ext).saturating_sub(1) * ext
            })
            .sum();
        let lvs: Vec<&Lv> = l.lvm.lvs.iter().filter(|v| v.vg == vg.name).collect();
        let pieces: Vec<Piece> = lvs
            .iter()
            .map(|lv| Piece {
                recorded: consumption(lv, lv.size, ext),
                min: consumption(lv, sz.lv_min(lv, ext), ext),
                grows: lv_resizable(lv) && sz.grows(&lv.path()),
            })
            .collect();
        let recorded_total: u64 = pieces.iter().map(|p| p.recorded).sum();
        let grow_to = (proportional && is > was)
            .then(|| (recorded_total as u128 * is as u128 / was.max(1) as u128) as u64);
        let Some(alloc) = distribute(capacity, &pieces, grow_to) else {
            let need: u64 = pieces.iter().map(|p| p.min).sum();
            return Err(fail(
                Code::Host,
                format!(
                    "volume group {} ({} of volumes, needs at least {} for their data) does not fit in the {} its physical volumes have here; nothing was changed",
                    vg.name,
                    human(recorded_total),
                    human(need),
                    human(capacity)
                ),
            ));
        };
        for ((lv, a), piece) in lvs.iter().zip(alloc).zip(&pieces) {
            if !lv_resizable(lv) || a == piece.recorded {
                continue;
            }
            let size = align_down(a, lv_unit(lv, ext)).max(sz.lv_min(lv, ext));
            if size == lv.size {
                continue;
            }
            fit.lvs.insert(lv.path(), size);
            new.insert(lv.path(), size);
            fit.changes.push(Change {
                device: lv.path(),
                kind: "logical volume",
                old: lv.size,
                new: size,
                holds: sz.holds(&lv.path()),
            });
        }
    }
    Ok(fit)
}

/// The partition to grow onto a bigger target under `resize = "last"`: the
/// one that ends last. A logical partition of an MBR extended partition is
/// never grown (its container would have to grow first).
/// An ESP or bios_grub partition is never it: what is on them does not
/// grow (firmware conversion puts a new one at the end of the disk).
fn last_growable(d: &Disk) -> Option<&crate::layout::Partition> {
    let last = d
        .partitions
        .iter()
        .filter(|p| {
            !p.flags
                .iter()
                .any(|f| matches!(f, Flag::Esp | Flag::BiosGrub))
        })
        .max_by_key(|p| p.start + p.size)?;
    let extended = ["05", "0f", "85"];
    if d.table == Table::Msdos && (last.number > 4 || extended.contains(&last.type_.as_str())) {
        return None;
    }
    Some(last)
}
/// The PVs of `vg`, as the layout lists them.
fn pvs_of<'a>(l: &'a Layout, vg: &crate::layout::Vg) -> Vec<&'a crate::layout::Pv> {
    l.lvm
        .pvs
        .iter()
        .filter(|p| vg.pvs.contains(&p.device))
        .collect()
}
