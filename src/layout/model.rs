//! The layout model: what `layout save` writes and `recover` reads.
//!
//! JSON with a `schema_version`; every struct denies unknown fields so a
//! typo or a file from a newer mkrescue is refused with the field's name
//! instead of being half understood. Sizes are bytes, partition positions
//! are sectors of the disk's logical sector size (as sfdisk reports them).
//! Device references are the paths the host used (`/dev/sda2`, `/dev/md0`,
//! `/dev/vg0/root`, `/dev/mapper/cryptdata`); recover maps disks and
//! rewrites partition paths from them.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::error::{Code, fail};

/// The version this mkrescue writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    pub schema_version: u32,
    /// Host name at capture time.
    pub host: String,
    /// Volatile: not compared by `layout check`.
    pub captured_at: u64,
    /// Volatile: not compared by `layout check`.
    pub mkrescue_version: String,
    #[serde(default)]
    pub disks: Vec<Disk>,
    #[serde(default)]
    pub md: Vec<MdArray>,
    #[serde(default)]
    pub lvm: Lvm,
    #[serde(default)]
    pub luks: Vec<Luks>,
    #[serde(default)]
    pub filesystems: Vec<Filesystem>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// Devices recover must leave alone (rescue medium, backup disk,
    /// configured excludes).
    #[serde(default)]
    pub excluded: Vec<Excluded>,
    /// Devices whose contents could not be probed, recorded because
    /// `layout save --allow-partial` was given: what they hold is unknown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<Unknown>,
    /// What the host's storage has that recover cannot recreate (ZFS,
    /// bcache, multipath, ...), named at capture so that recover in the
    /// rescue system refuses the layout instead of rebuilding half of it.
    /// Absent in files of mkrescue versions that did not look.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsupported: Vec<Unsupported>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Table {
    Gpt,
    /// MBR ("dos" in sfdisk).
    Msdos,
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// Kernel path at capture time, e.g. `/dev/sda`.
    pub path: String,
    pub size: u64,
    pub logical_sector_size: u64,
    pub physical_sector_size: u64,
    #[serde(default)]
    pub wwn: Option<String>,
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// `/dev/disk/by-path/...` name when udev knew one.
    #[serde(default)]
    pub by_path: Option<String>,
    pub table: Table,
    /// GPT disk GUID or MBR disk identifier (`0x1234abcd`).
    #[serde(default)]
    pub disk_id: Option<String>,
    #[serde(default)]
    pub partitions: Vec<Partition>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// MBR active flag or GPT legacy BIOS bootable attribute.
    Boot,
    Esp,
    BiosGrub,
    Raid,
    Lvm,
    Swap,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    pub number: u32,
    /// Kernel path at capture time, e.g. `/dev/sda2`.
    pub path: String,
    /// First sector (logical sectors).
    pub start: u64,
    /// Length in logical sectors.
    pub size: u64,
    /// GPT type GUID (upper case) or MBR type as two hex digits.
    #[serde(rename = "type")]
    pub type_: String,
    /// GPT partition GUID.
    #[serde(default)]
    pub uuid: Option<String>,
    /// GPT partition name.
    #[serde(default)]
    pub name: Option<String>,
    /// GPT attribute bits as sfdisk prints them.
    #[serde(default)]
    pub attrs: Option<String>,
    #[serde(default)]
    pub flags: Vec<Flag>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MdArray {
    pub path: String,
    /// `raid0`, `raid1`, `raid5`, ...
    pub level: String,
    /// Superblock format: `1.2`, `1.0`, `0.90`.
    pub metadata: String,
    /// As mdadm prints it (`xxxxxxxx:xxxxxxxx:xxxxxxxx:xxxxxxxx`).
    pub uuid: String,
    #[serde(default)]
    pub name: Option<String>,
    pub raid_devices: u32,
    #[serde(default)]
    pub chunk_kib: Option<u64>,
    #[serde(default)]
    pub layout: Option<String>,
    /// `internal` or none.
    #[serde(default)]
    pub bitmap: Option<String>,
    /// Active members in role order.
    pub devices: Vec<String>,
    #[serde(default)]
    pub spares: Vec<String>,
    pub size: u64,
    /// Where the data starts on each member (sectors; metadata 1.1/1.2),
    /// so the array gets exactly its recorded size on bigger members too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_offset_sectors: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lvm {
    #[serde(default)]
    pub pvs: Vec<Pv>,
    #[serde(default)]
    pub vgs: Vec<Vg>,
    #[serde(default)]
    pub lvs: Vec<Lv>,
}

impl Lvm {
    pub fn is_empty(&self) -> bool {
        self.pvs.is_empty() && self.vgs.is_empty() && self.lvs.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pv {
    pub device: String,
    pub uuid: String,
    #[serde(default)]
    pub vg: Option<String>,
    pub size: u64,
    /// Offset of the first extent (bytes).
    pub pe_start: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vg {
    pub name: String,
    pub uuid: String,
    pub extent_size: u64,
    pub pvs: Vec<String>,
}

/// Flattened into [`Lv`] as `"type": "linear"` etc. (serde cannot deny
/// unknown fields through a flatten, so `Lv` and this enum do not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum LvKind {
    Linear,
    Striped { stripes: u32, stripe_size: u64 },
    Mirror { mirrors: u32 },
    Raid1 { mirrors: u32 },
    ThinPool { chunk_size: u64, metadata_size: u64 },
    Thin { pool: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lv {
    pub vg: String,
    pub name: String,
    pub uuid: String,
    pub size: u64,
    #[serde(flatten)]
    pub kind: LvKind,
}

impl Lv {
    /// `/dev/VG/LV`, the path LVM creates.
    pub fn path(&self) -> String {
        format!("/dev/{}/{}", self.vg, self.name)
    }

    /// `/dev/mapper/VG-LV`, the device-mapper node of the same volume.
    pub fn mapper_path(&self) -> String {
        format!("/dev/mapper/{}", dm_name(&self.vg, &self.name))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Luks {
    /// The device holding the LUKS header.
    pub device: String,
    /// The opened mapping, `/dev/mapper/NAME`.
    pub mapper: String,
    /// 1 or 2.
    pub version: u32,
    pub uuid: String,
    #[serde(default)]
    pub label: Option<String>,
    pub cipher: String,
    pub key_bits: u32,
    /// PBKDF of the first key slot (`argon2id`, `pbkdf2`).
    pub pbkdf: String,
}

impl Luks {
    /// The mapping's name without `/dev/mapper/`, as `cryptsetup open`
    /// takes it.
    pub fn mapper_name(&self) -> &str {
        self.mapper.trim_start_matches("/dev/mapper/")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filesystem {
    pub device: String,
    /// `ext2`, `ext3`, `ext4`, `xfs`, `btrfs`, `vfat`, `swap`.
    #[serde(rename = "type")]
    pub fstype: String,
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    /// Bytes in use when the layout was saved (statvfs of its mount
    /// point: `(f_blocks - f_bfree) * f_frsize`, reserved blocks not
    /// counted as used); none for swap, a file system that was not mounted,
    /// and files of mkrescue versions that did not record it. Recover may
    /// make the file system smaller, never below this plus a margin
    /// (recover::plan::fit). Volatile: not compared by `layout check`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext: Option<ExtInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xfs: Option<XfsInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub btrfs: Option<BtrfsInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vfat: Option<VfatInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtInfo {
    /// Features as dumpe2fs lists them, without volatile state flags.
    pub features: Vec<String>,
    pub block_size: u64,
    pub inode_size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XfsInfo {
    pub block_size: u64,
    pub inode_size: u64,
    pub crc: bool,
    pub reflink: bool,
    pub finobt: bool,
    pub sparse_inodes: bool,
    pub rmapbt: bool,
    pub bigtime: bool,
    pub inobtcount: bool,
    /// Log stripe unit etc. are left to mkfs defaults.
    pub log_size_blocks: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BtrfsInfo {
    /// Subvolume paths relative to the top level, parents first.
    pub subvolumes: Vec<String>,
    /// Path of the default subvolume; none when it is the top level.
    #[serde(default)]
    pub default_subvolume: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VfatInfo {
    /// FAT12/16/32.
    pub fat_bits: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    pub target: String,
    pub source: String,
    pub fstype: String,
    pub options: String,
    /// The subvolume or directory of the file system mounted (btrfs, binds).
    #[serde(default)]
    pub fsroot: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Excluded {
    pub device: String,
    pub reason: String,
}

/// A device `layout save --allow-partial` could not probe, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unknown {
    pub device: String,
    pub reason: String,
}

/// Something of the host's storage recover cannot recreate: the device
/// (or ZFS pool) it is on, what kind of thing it is and the particulars.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unsupported {
    /// A device path (`/dev/sdb1`, `/dev/mapper/mpatha`, `/dev/vg0/cached`),
    /// or a ZFS pool's name for its mounted datasets.
    pub device: String,
    pub kind: UnsupportedKind,
    /// The particulars: `member of pool tank`, `segment type cache`.
    pub detail: String,
}

/// The kinds of storage capture recognises but recover cannot recreate.
/// README "What the layout cannot record" says what each would take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnsupportedKind {
    /// ZFS pool members, zvols, mounted datasets.
    Zfs,
    /// bcache backing and cache devices and the bcache devices on them.
    Bcache,
    /// A dm-multipath map over several paths to one disk.
    Multipath,
    /// An LVM LV of a segment type recover does not create (cache,
    /// writecache, VDO, raid5/6/10, old-style snapshots, ...).
    LvmSegment,
    /// Device-mapper outside LVM and LUKS: plain dm-crypt, dm-integrity,
    /// VDO, Stratis, a table set up by hand.
    DeviceMapper,
    /// md RAID with external metadata (Intel IMSM, SNIA DDF: firmware RAID).
    MdExternal,
    /// One btrfs file system over several devices.
    BtrfsMultiDevice,
    /// A disk reached over the network (iSCSI, NBD, Ceph RBD) or
    /// replicated by it (DRBD).
    NetworkDisk,
    /// The root file system is on the network (NFS, CIFS).
    NetworkRoot,
    /// A mounted file system of a type recover does not create.
    Filesystem,
    /// A partition table other than GPT and MBR.
    PartitionTable,
}

impl UnsupportedKind {
    /// What the thing is, as a message says it.
    pub fn name(self) -> &'static str {
        match self {
            UnsupportedKind::Zfs => "ZFS",
            UnsupportedKind::Bcache => "bcache",
            UnsupportedKind::Multipath => "dm-multipath",
            UnsupportedKind::LvmSegment => "LVM volume",
            UnsupportedKind::DeviceMapper => "device-mapper",
            UnsupportedKind::MdExternal => "md RAID with external metadata",
            UnsupportedKind::BtrfsMultiDevice => "btrfs on several devices",
            UnsupportedKind::NetworkDisk => "network disk",
            UnsupportedKind::NetworkRoot => "root file system on the network",
            UnsupportedKind::Filesystem => "file system",
            UnsupportedKind::PartitionTable => "partition table",
        }
    }
}

impl Unsupported {
    /// The warning `layout save|check` and the build print, one per item.
    pub fn warning(&self) -> String {
        format!("{self}: recover cannot recreate this and will refuse the layout")
    }
}

impl std::fmt::Display for Unsupported {
    /// `/dev/sdb1: ZFS (member of pool tank)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({})", self.device, self.kind.name(), self.detail)
    }
}

impl Layout {
    /// Whether a file system of the layout is mounted at `/`: without one,
    /// recover has nothing to restore the system onto.
    pub fn has_root(&self) -> bool {
        self.mounts
            .iter()
            .any(|m| m.target == "/" && self.filesystems.iter().any(|f| f.device == m.source))
    }

    /// The mount points that hold files (all but swap): what a backup's
    /// bytes are split by (the estimate, recover's fit).
    pub fn data_mounts(&self) -> Vec<String> {
        self.mounts
            .iter()
            .filter(|m| m.fstype != "swap")
            .map(|m| m.target.clone())
            .collect()
    }

    pub fn new(host: String) -> Self {
        Layout {
            schema_version: SCHEMA_VERSION,
            host,
            captured_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            mkrescue_version: env!("CARGO_PKG_VERSION").to_string(),
            disks: Vec::new(),
            md: Vec::new(),
            lvm: Lvm::default(),
            luks: Vec::new(),
            filesystems: Vec::new(),
            mounts: Vec::new(),
            excluded: Vec::new(),
            unknown: Vec::new(),
            unsupported: Vec::new(),
        }
    }

    /// Reads a layout file. A wrong schema version or a broken field is one
    /// line naming the file and the field (exit code 5).
    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let out = if path == Path::new(super::DEFAULT_PATH) {
                    String::new()
                } else {
                    format!(" --out {}", path.display())
                };
                return Err(fail(
                    Code::NoLayout,
                    format!(
                        "no saved layout at {}: run `mkrescue layout save{out}` first",
                        path.display()
                    ),
                ));
            }
            Err(e) => {
                return Err(e).with_context(|| format!("reading layout {}", path.display()));
            }
        };
        Self::from_json(&text)
            .map_err(|e| fail(Code::Input, format!("layout {}: {e}", path.display())))
    }

    /// Parses layout JSON; the error names the field at fault.
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        // Look at the version first: a newer file may have other fields,
        // and "unknown field" would hide the real reason.
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        match v.get("schema_version") {
            None => return Err("missing field `schema_version`".into()),
            Some(n) if n.as_u64() == Some(SCHEMA_VERSION as u64) => {}
            Some(n) => {
                return Err(format!(
                    "field `schema_version`: version {n} is not supported (this mkrescue reads version {SCHEMA_VERSION}); save the layout again with this mkrescue"
                ));
            }
        }
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            // serde_json appends " at line L column C"; keep it.
            format!("field `{path}`: {inner}")
        })
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("layout serialises");
        s.push('\n');
        s
    }
}

// Device names. The layout records the host's kernel names; capture reads
// them and recover derives this machine's from them by the same rules.

/// The kernel name of partition `n` of `disk`: a `p` between when the disk
/// name ends in a digit (block/partitions/core.c bdevname rules).
pub fn part_path(disk: &str, n: u32) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{n}")
    } else {
        format!("{disk}{n}")
    }
}

/// The number of partition `node` of `disk` (`/dev/sda2` → 2,
/// `/dev/nvme0n1p3` → 3).
pub fn part_number(disk: &str, node: &str) -> Result<u32> {
    let rest = node
        .strip_prefix(disk)
        .with_context(|| format!("{node} is not a partition of {disk}"))?;
    let rest = rest.strip_prefix('p').unwrap_or(rest);
    rest.parse()
        .with_context(|| format!("{node}: no partition number"))
}

/// The dm name LVM gives VG/LV: hyphens doubled, joined by one hyphen
/// (lvm2 lib/misc/lvm-string.c build_dm_name).
pub fn dm_name(vg: &str, lv: &str) -> String {
    format!("{}-{}", vg.replace('-', "--"), lv.replace('-', "--"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_follow_the_disk_name() {
        assert_eq!(part_path("/dev/sda", 2), "/dev/sda2");
        assert_eq!(part_path("/dev/nvme0n1", 3), "/dev/nvme0n1p3");
        assert_eq!(part_path("/dev/mmcblk0", 1), "/dev/mmcblk0p1");
        assert_eq!(part_number("/dev/sda", "/dev/sda2").unwrap(), 2);
        assert_eq!(part_number("/dev/nvme0n1", "/dev/nvme0n1p3").unwrap(), 3);
        assert!(part_number("/dev/sda", "/dev/sdb1").is_err());
        assert!(part_number("/dev/sda", "/dev/sda").is_err());
    }

    #[test]
    fn dm_names_double_hyphens() {
        assert_eq!(dm_name("vg0", "root"), "vg0-root");
        assert_eq!(dm_name("my-vg", "a-b"), "my--vg-a--b");
        let lv = Lv {
            vg: "my-vg".into(),
            name: "root".into(),
            uuid: String::new(),
            size: 0,
            kind: LvKind::Linear,
        };
        assert_eq!(lv.mapper_path(), "/dev/mapper/my--vg-root");
    }
}
