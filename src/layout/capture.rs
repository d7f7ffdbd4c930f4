//! Capture: run the tools (through `exec`), keep their raw output in
//! [`Sources`], and assemble a [`Layout`] from it. Assembling is pure, so
//! tests build whole layouts from captured fixtures.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};

use super::model::*;
use super::parse::{self, BlockDev};
use crate::exec::Cmd;

/// The raw output of every capture source, keyed by the device asked about.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `lsblk --json --bytes -O`
    pub lsblk: String,
    /// disk path → `sfdisk --json DISK`
    pub sfdisk: BTreeMap<String, String>,
    /// device → `blkid -p -o export DEV`
    pub blkid: BTreeMap<String, String>,
    /// md path → (`mdadm --detail --export`, `mdadm --detail`)
    pub mdadm: BTreeMap<String, (String, String)>,
    /// `pvs`, `vgs`, `lvs -a` with `--reportformat json` (None: no LVM tools)
    pub lvm: Option<(String, String, String)>,
    /// LUKS device → `cryptsetup luksDump DEV`
    pub luks: BTreeMap<String, String>,
    /// device → `dumpe2fs -h DEV`
    pub dumpe2fs: BTreeMap<String, String>,
    /// device → `xfs_info DEV`
    pub xfs_info: BTreeMap<String, String>,
    /// device → (`btrfs subvolume list -a -p -u -q MNT`, `btrfs subvolume get-default MNT`)
    pub btrfs: BTreeMap<String, (String, String)>,
    /// `findmnt --json -o TARGET,SOURCE,FSTYPE,OPTIONS,FSROOT`
    pub findmnt: String,
    /// disk path → serial from sysfs, when lsblk had none (no udev).
    pub sysfs_serial: BTreeMap<String, String>,
    /// md path → data offset of its members in sectors, from sysfs
    /// (`/sys/block/mdX/md/dev-*/offset`; md(4)).
    pub md_data_offset: BTreeMap<String, u64>,
    /// device → bytes in use in the file system mounted from it
    /// ([`crate::sys::used_bytes`] of its first mount point).
    pub used: BTreeMap<String, u64>,
    /// device → why blkid could not probe it (its error line). What it
    /// holds is unknown: `layout save` refuses unless `--allow-partial`.
    pub unprobed: BTreeMap<String, String>,
}

/// `blkid -p -o export DEV`: Ok(Some) its output, Ok(None) when it found
/// nothing (exit 2 without a message, blkid(8) "RETURN CODE"), Err(the
/// error line) when it could not probe (no permission, I/O error).
fn blkid(dev: &str) -> Result<Option<String>, String> {
    let r = Cmd::new("blkid")
        .args(["-p", "-o", "export"])
        .arg(dev)
        .run_any()
        .map_err(|e| format!("{e:#}"))?;
    match r.code {
        Some(0) => Ok(Some(r.stdout)),
        Some(2) if r.stderr.is_empty() => Ok(None),
        _ if r.stderr.is_empty() => Err(format!("blkid -p {dev} exited with {:?}", r.code)),
        _ => Err(r.stderr.lines().last().unwrap_or_default().to_string()),
    }
}

const PVS_FIELDS: &str = "pv_name,pv_uuid,vg_name,pv_size,dev_size,pe_start";
const VGS_FIELDS: &str = "vg_name,vg_uuid,vg_extent_size,vg_size,pv_count,lv_count";
const LVS_FIELDS: &str = "lv_name,vg_name,lv_uuid,lv_size,segtype,stripes,stripe_size,pool_lv,data_lv,metadata_lv,lv_metadata_size,lv_attr,chunk_size,devices,lv_role";

/// Device kinds that are never part of the layout.
/// What a file system's used bytes are recorded in: rounded up to 64 MiB.
/// Every log line a host writes moves statvfs's count, and the rescue
/// image carries a layout captured as it is built: to the byte, two builds
/// a minute apart on an idle host differed (the e2e's reproducibility
/// check on the dracut-sdboot server, btrfs, 2026-12-06). Rounded, they
/// differ only when the host wrote across a 64 MiB step in between. Fit
/// never shrinks below used plus a margin of max(10%, 256 MiB)
/// (`recover::plan::fit::fs_need`), which the rounding only adds to
/// (at most 64 MiB), and recover takes the backup's own bytes where they
/// are more (`recover::plan::fit::with_backup`).
pub const USED_UNIT: u64 = 64 << 20;

/// `bytes` as a layout records used bytes: rounded up to [`USED_UNIT`].
pub fn round_used(bytes: u64) -> u64 {
    bytes.div_ceil(USED_UNIT) * USED_UNIT
}

const IGNORED_KINDS: &[&str] = &["loop", "rom", "ram", "zram"];

/// Loop, optical, RAM and compressed-RAM (zram, which lsblk calls a
/// "disk") devices hold nothing to rebuild, and recover never writes them.
/// Nor do floppy drives (`fd0`, a "disk" to lsblk: QEMU's default PC and
/// many server BMCs' virtual media have one, mostly empty, and blkid then
/// fails with "No such device or address") or devices without a medium
/// (size 0: an empty card reader).
pub fn ignored(d: &BlockDev) -> bool {
    IGNORED_KINDS.contains(&d.kind.as_str())
        || d.name.starts_with("zram")
        || d.name.starts_with("ram")
        || d.name
            .strip_prefix("fd")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        || d.size == 0
}

fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// Runs the capture tools on the live system.
pub fn gather() -> Result<Sources> {
    let mut s = Sources {
        lsblk: Cmd::new("lsblk").args(["--json", "--bytes", "-O"]).read()?,
        findmnt: Cmd::new("findmnt")
            .args(["--json", "-o", "TARGET,SOURCE,FSTYPE,OPTIONS,FSROOT"])
            .read()?,
        ..Default::default()
    };
    let tree = parse::lsblk(&s.lsblk)?;
    let lvm_env = |c: Cmd| c.env("LVM_SUPPRESS_FD_WARNINGS", "1");
    if have("lvm") {
        let run = |what: &str, fields: &str| -> Result<String> {
            let mut c = Cmd::new("lvm").arg(what);
            if what == "lvs" {
                c = c.arg("-a");
            }
            lvm_env(c)
                .args(["--reportformat", "json", "--units", "b", "--nosuffix", "-o"])
                .arg(fields)
                .read()
        };
        s.lvm = Some((
            run("pvs", PVS_FIELDS)?,
            run("vgs", VGS_FIELDS)?,
            run("lvs", LVS_FIELDS)?,
        ));
    }
    let mut seen = BTreeSet::new();
    for disk in tree.iter().filter(|d| !ignored(d)) {
        // Without udev, lsblk may not know the table type: ask blkid too.
        let has_table = disk.pttype.is_some()
            || match blkid(&disk.path) {
                Ok(o) => o.is_some_and(|o| parse::export(&o).contains_key("PTTYPE")),
                Err(e) => {
                    s.unprobed.insert(disk.path.clone(), e);
                    false
                }
            };
        if has_table {
            s.sfdisk.insert(
                disk.path.clone(),
                Cmd::new("sfdisk").arg("--json").arg(&disk.path).read()?,
            );
        }
        if disk.serial.is_none()
            && let Ok(serial) = std::fs::read_to_string(format!("/sys/block/{}/serial", disk.name))
            && !serial.trim().is_empty()
        {
            s.sysfs_serial
                .insert(disk.path.clone(), serial.trim().to_string());
        }
        for d in disk.walk() {
            if !seen.insert(d.path.clone()) {
                continue;
            }
            match blkid(&d.path) {
                Ok(Some(out)) => {
                    s.blkid.insert(d.path.clone(), out);
                }
                Ok(None) => {}
                Err(e) => {
                    s.unprobed.insert(d.path.clone(), e);
                }
            }
            // lsblk takes FSTYPE from the udev database, which the rescue
            // system lacks; blkid probes the device itself.
            let probed = s
                .blkid
                .get(&d.path)
                .and_then(|o| parse::export(o).get("TYPE").cloned());
            let fstype = probed.as_deref().or(d.fstype.as_deref()).unwrap_or("");
            if d.kind.starts_with("raid") && !s.mdadm.contains_key(&d.path) {
                let e = Cmd::new("mdadm")
                    .args(["--detail", "--export"])
                    .arg(&d.path)
                    .read()?;
                let h = Cmd::new("mdadm").arg("--detail").arg(&d.path).read()?;
                s.mdadm.insert(d.path.clone(), (e, h));
                if let Some(o) = md_data_offset(&d.name) {
                    s.md_data_offset.insert(d.path.clone(), o);
                }
            }
            if fstype == "crypto_LUKS" {
                s.luks.insert(
                    d.path.clone(),
                    Cmd::new("cryptsetup").arg("luksDump").arg(&d.path).read()?,
                );
            }
            if fstype != "swap"
                && let Some(m) = d.mountpoints.iter().find(|m| !m.is_empty())
            {
                match crate::sys::used_bytes(Path::new(m)) {
                    Ok(n) => {
                        s.used.insert(d.path.clone(), n);
                    }
                    // Recover then keeps the recorded size: no harm.
                    Err(e) => log::warn!("{}: statvfs {m}: {e}", d.path),
                }
            }
            match fstype {
                "ext2" | "ext3" | "ext4" => {
                    s.dumpe2fs.insert(
                        d.path.clone(),
                        Cmd::new("dumpe2fs").arg("-h").arg(&d.path).read()?,
                    );
                }
                "xfs" => {
                    s.xfs_info
                        .insert(d.path.clone(), Cmd::new("xfs_info").arg(&d.path).read()?);
                }
                "btrfs" => {
                    // Subvolumes can only be listed through a mount.
                    if let Some(m) = d.mountpoints.first() {
                        let list = Cmd::new("btrfs")
                            .args(["subvolume", "list", "-a", "-p", "-u", "-q"])
                            .arg(m)
                            .read()?;
                        let def = Cmd::new("btrfs")
                            .args(["subvolume", "get-default"])
                            .arg(m)
                            .read()?;
                        s.btrfs.insert(d.path.clone(), (list, def));
                    } else {
                        log::warn!(
                            "{}: btrfs not mounted, its subvolumes are not recorded",
                            d.path
                        );
                    }
                }
                _ => {}
            }
        }
    }
    Ok(s)
}

/// Builds the layout from the captured sources.
pub fn assemble(host: &str, s: &Sources) -> Result<Layout> {
    let mut l = Layout::new(host.to_string());
    let tree = parse::lsblk(&s.lsblk)?;

    // LVM first: device names of LVs and PVs depend on it.
    let mut dm_to_lv: BTreeMap<String, String> = BTreeMap::new();
    if let Some((pvs, vgs, lvs)) = &s.lvm {
        let pvs = parse::lvm_report(pvs, "pv")?;
        let vgs = parse::lvm_report(vgs, "vg")?;
        let lvs = parse::lvm_report(lvs, "lv")?;
        let n = |m: &BTreeMap<String, String>, k: &str, what: &str| -> Result<u64> {
            m.get(k)
                .with_context(|| format!("{what}: no `{k}`"))?
                .trim()
                .parse()
                .with_context(|| format!("{what}: `{k}` is not a number"))
        };
        let g = |m: &BTreeMap<String, String>, k: &str| m.get(k).cloned().unwrap_or_default();
        for p in &pvs {
            l.lvm.pvs.push(Pv {
                device: g(p, "pv_name"),
                uuid: g(p, "pv_uuid"),
                vg: Some(g(p, "vg_name")).filter(|v| !v.is_empty()),
                size: n(p, "pv_size", "pvs")?,
                pe_start: n(p, "pe_start", "pvs")?,
            });
        }
        for v in &vgs {
            let name = g(v, "vg_name");
            l.lvm.vgs.push(Vg {
                pvs: l
                    .lvm
                    .pvs
                    .iter()
                    .filter(|p| p.vg.as_deref() == Some(name.as_str()))
                    .map(|p| p.device.clone())
                    .collect(),
                uuid: g(v, "vg_uuid"),
                extent_size: n(v, "vg_extent_size", "vgs")?,
                name,
            });
        }
        for v in &lvs {
            let name = g(v, "lv_name");
            // Hidden sub-LVs ([pool_tdata], [lvol0_pmspare], mirror images)
            // are created by LVM itself along with their visible LV.
            if name.starts_with('[') {
                continue;
            }
            let seg = g(v, "segtype");
            let kind = match seg.as_str() {
                "linear" => LvKind::Linear,
                "striped" => {
                    let stripes = n(v, "stripes", "lvs")? as u32;
                    if stripes <= 1 {
                        LvKind::Linear
                    } else {
                        LvKind::Striped {
                            stripes,
                            stripe_size: n(v, "stripe_size", "lvs")?,
                        }
                    }
                }
                "mirror" => LvKind::Mirror {
                    mirrors: n(v, "stripes", "lvs")? as u32,
                },
                "raid1" => LvKind::Raid1 {
                    mirrors: n(v, "stripes", "lvs")? as u32,
                },
                "thin-pool" => LvKind::ThinPool {
                    chunk_size: n(v, "chunk_size", "lvs")?,
                    metadata_size: n(v, "lv_metadata_size", "lvs")?,
                },
                "thin" => LvKind::Thin {
                    pool: g(v, "pool_lv"),
                },
                // cache, writecache, vdo, raid5/6/10, snapshot, ...:
                // named, not recreated (recover refuses the layout).
                other => {
                    let vg = g(v, "vg_name");
                    l.unsupported.push(Unsupported {
                        device: format!("/dev/{vg}/{name}"),
                        kind: UnsupportedKind::LvmSegment,
                        detail: format!("segment type {other}"),
                    });
                    dm_to_lv.insert(
                        format!("/dev/mapper/{}", dm_name(&vg, &name)),
                        format!("/dev/{vg}/{name}"),
                    );
                    continue;
                }
            };
            let lv = Lv {
                vg: g(v, "vg_name"),
                uuid: g(v, "lv_uuid"),
                size: n(v, "lv_size", "lvs")?,
                kind,
                name,
            };
            dm_to_lv.insert(lv.mapper_path(), lv.path());
            l.lvm.lvs.push(lv);
        }
    }
    // The one name of a device in the layout.
    let canon = |path: &str| -> String { dm_to_lv.get(path).cloned().unwrap_or(path.to_string()) };

    let mut seen = BTreeSet::new();
    for disk in tree.iter().filter(|d| !ignored(d)) {
        if disk.kind != "disk" {
            continue;
        }
        l.disks.push(disk_of(disk, s, &mut l.unsupported)?);
        for d in disk.walk() {
            if !seen.insert(d.path.clone()) {
                continue;
            }
            let path = canon(&d.path);
            if d.kind.starts_with("raid")
                && let Some((e, h)) = s.mdadm.get(&d.path)
            {
                if let Some(why) = super::unsupported::md_external(e) {
                    l.unsupported.push(Unsupported {
                        device: path.clone(),
                        kind: UnsupportedKind::MdExternal,
                        detail: why,
                    });
                    continue;
                }
                let md = parse::mdadm(e, h).with_context(|| format!("md array {}", d.path))?;
                l.md.push(MdArray {
                    path: path.clone(),
                    level: md.level,
                    metadata: md.metadata,
                    uuid: md.uuid,
                    name: md.name,
                    raid_devices: md.raid_devices,
                    chunk_kib: md.chunk_kib,
                    layout: md.layout,
                    bitmap: md.bitmap,
                    devices: md.devices.into_iter().map(|(_, d)| d).collect(),
                    spares: md.spares,
                    size: md.size,
                    data_offset_sectors: s.md_data_offset.get(&d.path).copied(),
                });
            }
            if let Some(dump) = s.luks.get(&d.path) {
                let x = parse::luks_dump(dump).with_context(|| format!("LUKS on {}", d.path))?;
                let mapper = d
                    .children
                    .iter()
                    .find(|c| c.kind == "crypt")
                    .map(|c| c.path.clone())
                    .unwrap_or_else(|| format!("/dev/mapper/luks-{}", x.uuid));
                l.luks.push(Luks {
                    device: path.clone(),
                    mapper,
                    version: x.version,
                    uuid: x.uuid,
                    label: x.label,
                    cipher: x.cipher,
                    key_bits: x.key_bits,
                    pbkdf: x.pbkdf,
                });
            }
            if let Some(fs) = filesystem_of(d, &path, s)? {
                l.filesystems.push(fs);
            }
        }
    }

    l.unknown = s
        .unprobed
        .iter()
        .map(|(device, reason)| Unknown {
            device: canon(device),
            reason: reason.clone(),
        })
        .collect();

    l.unsupported.extend(super::unsupported::detect(
        &super::unsupported::Probes {
            disks: tree.iter().filter(|d| !ignored(d)).collect(),
            blkid: &s.blkid,
            unprobed: &s.unprobed,
            findmnt: &s.findmnt,
        },
        &canon,
    ));
    l.unsupported
        .sort_by(|a, b| (a.kind, &a.device).cmp(&(b.kind, &b.device)));
    l.unsupported
        .dedup_by(|a, b| a.kind == b.kind && a.device == b.device);

    // Mounts of the file systems in the layout, parents first.
    let fs_devs: BTreeSet<&str> = l.filesystems.iter().map(|f| f.device.as_str()).collect();
    for m in parse::findmnt(&s.findmnt)? {
        // btrfs sources carry the subvolume: `/dev/x[/@]`.
        let src = m.source.split('[').next().unwrap_or("").to_string();
        let src = canon(&src);
        if !fs_devs.contains(src.as_str()) {
            continue;
        }
        let btrfs = l
            .filesystems
            .iter()
            .find(|f| f.device == src)
            .and_then(|f| f.btrfs.as_ref());
        if is_bind_mount(&m, btrfs) {
            // A directory of a file system mounted elsewhere: it comes back
            // with that file system (and the restored fstab makes the bind
            // again). systemd's sandboxes (ProtectSystem=, ReadWritePaths=)
            // show /usr, /boot, /etc as such binds to a service saving the
            // layout, which must not make its layout differ from one saved
            // on the command line, nor give recover mounts to make.
            log::debug!("{} on {}: a bind mount, not recorded", m.source, m.target);
            continue;
        }
        l.mounts.push(Mount { source: src, ..m });
    }
    Ok(l)
}

/// Whether `m` (from findmnt, fsroot "/" already dropped) mounts a
/// directory inside its file system rather than the file system: any
/// fsroot, except on btrfs one that is a subvolume (recorded in `btrfs`,
/// or the one its `subvol=` option names).
pub fn is_bind_mount(m: &Mount, btrfs: Option<&crate::layout::BtrfsInfo>) -> bool {
    let Some(root) = m.fsroot.as_deref().filter(|r| *r != "/") else {
        return false;
    };
    if m.fstype != "btrfs" {
        return true;
    }
    let rel = root.trim_start_matches('/');
    let recorded = btrfs.is_some_and(|b| b.subvolumes.iter().any(|s| s == rel));
    let named = m.options.split(',').any(|o| {
        o.strip_prefix("subvol=")
            .is_some_and(|v| v.trim_start_matches('/') == rel)
    });
    !(recorded || named)
}

fn disk_of(d: &BlockDev, s: &Sources, unsupported: &mut Vec<Unsupported>) -> Result<Disk> {
    let mut disk = Disk {
        path: d.path.clone(),
        size: d.size,
        logical_sector_size: d.log_sec,
        physical_sector_size: d.phy_sec,
        wwn: d.wwn.clone(),
        serial: d
            .serial
            .clone()
            .or_else(|| s.sysfs_serial.get(&d.path).cloned()),
        model: d.model.clone(),
        by_path: by_path(&d.path),
        table: Table::None,
        disk_id: None,
        partitions: Vec::new(),
    };
    if let Some(text) = s.sfdisk.get(&d.path) {
        let t = parse::sfdisk(text).with_context(|| format!("partition table of {}", d.path))?;
        disk.table = match t.label.as_str() {
            "gpt" => Table::Gpt,
            "dos" => Table::Msdos,
            other => {
                unsupported.push(Unsupported {
                    device: d.path.clone(),
                    kind: UnsupportedKind::PartitionTable,
                    detail: format!("type {other} (recover writes gpt and dos)"),
                });
                return Ok(disk);
            }
        };
        disk.disk_id = t.id.map(|i| {
            if disk.table == Table::Gpt {
                i.to_uppercase()
            } else {
                i.to_lowercase()
            }
        });
        for p in t.partitions {
            let number = part_number(&d.path, &p.node)
                .with_context(|| format!("{}: partition {}", d.path, p.node))?;
            let mut flags = flags_of(&p.type_);
            if p.bootable
                || p.attrs
                    .as_deref()
                    .is_some_and(|a| a.contains("LegacyBIOSBootable"))
            {
                flags.push(Flag::Boot);
            }
            flags.sort();
            disk.partitions.push(Partition {
                number,
                path: p.node,
                start: p.start,
                size: p.size,
                type_: p.type_,
                uuid: p.uuid,
                name: p.name,
                attrs: p.attrs,
                flags,
            });
        }
    }
    Ok(disk)
}

/// The data offset (sectors) of an md array's members, the smallest if
/// they differ: where the data starts after the superblock and bitmap.
fn md_data_offset(md_name: &str) -> Option<u64> {
    let dir = format!("/sys/block/{md_name}/md");
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("dev-"))
        .filter_map(|e| std::fs::read_to_string(e.path().join("offset")).ok())
        .filter_map(|s| s.trim().parse::<u64>().ok())
        .min()
}

/// Well-known partition types (UEFI spec appendix, sfdisk's type list).
fn flags_of(t: &str) -> Vec<Flag> {
    match t {
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" | "EF" => vec![Flag::Esp],
        "21686148-6449-6E6F-744E-656564454649" => vec![Flag::BiosGrub],
        "A19D880F-05FC-4D3B-A006-743F0F84911E" | "FD" => vec![Flag::Raid],
        "E6D6D379-F507-44C2-A23C-238F2A3DF928" | "8E" => vec![Flag::Lvm],
        "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F" | "82" => vec![Flag::Swap],
        _ => Vec::new(),
    }
}

fn by_path(dev: &str) -> Option<String> {
    let dir = Path::new("/dev/disk/by-path");
    let target = std::fs::canonicalize(dev).ok()?;
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| std::fs::canonicalize(e.path()).ok().as_ref() == Some(&target))
        .map(|e| e.path().display().to_string())
        .collect();
    names.sort();
    names.into_iter().next()
}

fn filesystem_of(d: &BlockDev, path: &str, s: &Sources) -> Result<Option<Filesystem>> {
    let b = s
        .blkid
        .get(&d.path)
        .map(|t| parse::export(t))
        .unwrap_or_default();
    let Some(fstype) = b.get("TYPE").cloned().or_else(|| d.fstype.clone()) else {
        return Ok(None);
    };
    if !matches!(
        fstype.as_str(),
        "ext2" | "ext3" | "ext4" | "xfs" | "btrfs" | "vfat" | "swap"
    ) {
        return Ok(None);
    }
    let mut fs = Filesystem {
        device: path.to_string(),
        uuid: b.get("UUID").cloned().or_else(|| d.uuid.clone()),
        label: b.get("LABEL").cloned().or_else(|| d.label.clone()),
        fstype: fstype.clone(),
        used_bytes: s
            .used
            .get(&d.path)
            .map(|&u| round_used(u))
            .filter(|_| fstype != "swap"),
        ext: None,
        xfs: None,
        btrfs: None,
        vfat: None,
    };
    match fstype.as_str() {
        "ext2" | "ext3" | "ext4" => {
            if let Some(t) = s.dumpe2fs.get(&d.path) {
                let e = parse::dumpe2fs(t).with_context(|| format!("{path}: dumpe2fs"))?;
                fs.ext = Some(ExtInfo {
                    features: e.features,
                    block_size: e.block_size,
                    inode_size: e.inode_size,
                });
            }
        }
        "xfs" => {
            if let Some(t) = s.xfs_info.get(&d.path) {
                fs.xfs = Some(parse::xfs_info(t).with_context(|| format!("{path}: xfs_info"))?);
            }
        }
        "btrfs" => {
            if let Some((list, def)) = s.btrfs.get(&d.path) {
                fs.btrfs = Some(BtrfsInfo {
                    subvolumes: parse::btrfs_subvolumes(list)?
                        .into_iter()
                        .map(|(_, p)| p)
                        .collect(),
                    default_subvolume: parse::btrfs_default(def)?,
                });
            }
        }
        "vfat" => {
            // blkid VERSION=FAT32 / FAT16 / FAT12.
            let bits = b
                .get("VERSION")
                .and_then(|v| v.strip_prefix("FAT"))
                .and_then(|n| n.parse().ok())
                .unwrap_or(32);
            fs.vfat = Some(VfatInfo { fat_bits: bits });
        }
        _ => {}
    }
    Ok(Some(fs))
}
