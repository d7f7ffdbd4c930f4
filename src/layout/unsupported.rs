//! What capture recognises but recover cannot recreate: ZFS, bcache,
//! dm-multipath, device-mapper outside LVM and LUKS, firmware RAID,
//! multi-device btrfs, network disks and roots, file systems mkfs is not
//! run for. Each becomes an [`Unsupported`] entry of the layout, naming the
//! device, so `layout save|check` say so and recover refuses the layout
//! instead of rebuilding the part it knows and dropping the rest.
//!
//! Everything here reads what capture collected ([`Probes`]: lsblk's tree,
//! blkid's probes, findmnt), never the host, so fixtures test it.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{Unsupported, UnsupportedKind as K};
use super::parse::{self, BlockDev};

/// File system types recover creates (`filesystem_of` records them).
pub const SUPPORTED_FS: &[&str] = &["ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "swap"];

/// Root file system types that live on a server, not on a disk here.
const NETWORK_FS: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "ceph",
    "glusterfs",
    "fuse.glusterfs",
    "9p",
    "fuse.sshfs",
];

/// md superblock formats recover creates (`mdadm --create --metadata=`);
/// anything else (`imsm`, `ddf`) is external metadata, md(4).
const MD_NATIVE_METADATA: &[&str] = &["0.90", "1.0", "1.1", "1.2"];

/// Why an md array (its `mdadm --detail --export`) is external-metadata
/// RAID, or None for a native one. mdadm's Detail.c prints
/// `MD_LEVEL=container` and `MD_METADATA=imsm|ddf` for a container, and
/// `MD_CONTAINER`/`MD_MEMBER` (no `MD_METADATA`) for a volume inside one.
pub fn md_external(export_text: &str) -> Option<String> {
    let e = parse::export(export_text);
    if let Some(c) = e.get("MD_CONTAINER") {
        let member = e.get("MD_MEMBER").map(String::as_str).unwrap_or("?");
        return Some(format!("volume {member} of container {c}"));
    }
    let metadata = e.get("MD_METADATA").map(String::as_str);
    if e.get("MD_LEVEL").map(String::as_str) == Some("container") {
        return Some(format!("{} container", metadata.unwrap_or("external")));
    }
    match metadata {
        Some(m) if !MD_NATIVE_METADATA.contains(&m) => Some(format!("metadata {m}")),
        _ => None,
    }
}

/// `name` is `prefix` followed by a number (`zd0`, `nbd12`).
fn numbered(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// lsblk TYPEs the layout models. md arrays show their level (`raid1`,
/// `linear`); device-mapper devices the prefix of their DM uuid (`LVM-` →
/// `lvm`, `CRYPT-` → `crypt`, `mpath-` → `mpath`, kpartx's `partN-` →
/// `part`), or `dm` without one (util-linux lsblk.c, get_type).
fn modelled_kind(kind: &str) -> bool {
    matches!(kind, "disk" | "part" | "lvm" | "crypt" | "linear") || kind.starts_with("raid")
}

/// Every device of the tree once, in tree order, with the devices it sits
/// on (several for md, multipath and bcache).
struct Flat<'a> {
    order: Vec<&'a BlockDev>,
    parents: BTreeMap<String, Vec<String>>,
    /// Devices on a removable disk (a USB stick).
    removable: BTreeSet<String>,
}

fn flatten<'a>(d: &'a BlockDev, parent: Option<&str>, removable: bool, f: &mut Flat<'a>) {
    let removable = removable || d.removable;
    if removable {
        f.removable.insert(d.path.clone());
    }
    let parents = &mut f.parents;
    let order = &mut f.order;
    let first = !parents.contains_key(&d.path);
    let ps = parents.entry(d.path.clone()).or_default();
    if let Some(p) = parent
        && !ps.iter().any(|x| x == p)
    {
        ps.push(p.to_string());
    }
    if first {
        order.push(d);
    }
    for c in &d.children {
        flatten(c, Some(&d.path), removable, f);
    }
}

/// The capture sources detection reads (capture's `Sources`, parsed).
pub struct Probes<'a> {
    /// The disks of lsblk's tree that are part of a layout.
    pub disks: Vec<&'a BlockDev>,
    /// device → `blkid -p -o export DEV`
    pub blkid: &'a BTreeMap<String, String>,
    /// device → why blkid could not probe it
    pub unprobed: &'a BTreeMap<String, String>,
    /// `findmnt --json -o TARGET,SOURCE,FSTYPE,OPTIONS,FSROOT`
    pub findmnt: &'a str,
}

/// What of the captured storage recover cannot recreate, by device
/// (`canon` gives a device its layout name: `/dev/VG/LV` for an LV).
pub fn detect(s: &Probes, canon: &dyn Fn(&str) -> String) -> Vec<Unsupported> {
    let mut flat = Flat {
        order: Vec::new(),
        parents: BTreeMap::new(),
        removable: BTreeSet::new(),
    };
    for disk in &s.disks {
        flatten(disk, None, false, &mut flat);
    }
    let Flat {
        order,
        parents,
        removable,
    } = flat;
    let probes: BTreeMap<&str, BTreeMap<String, String>> = s
        .blkid
        .iter()
        .map(|(k, v)| (k.as_str(), parse::export(v)))
        .collect();
    let probed = |dev: &str, key: &str| probes.get(dev).and_then(|b| b.get(key)).cloned();
    let mounts = parse::findmnt(s.findmnt).unwrap_or_default();
    let mounted_at = |dev: &str| -> Vec<String> {
        mounts
            .iter()
            .filter(|m| m.source.split('[').next() == Some(dev))
            .map(|m| m.target.clone())
            .collect()
    };
    let mut out = Vec::new();
    let mut add = |device: &str, kind, detail: String| {
        out.push(Unsupported {
            device: canon(device),
            kind,
            detail,
        })
    };
    for d in &order {
        let ps = parents.get(&d.path).cloned().unwrap_or_default();
        // blkid probes the device; lsblk's FSTYPE (udev's) when it could not.
        let fstype = probed(&d.path, "TYPE").or_else(|| d.fstype.clone());
        match fstype.as_deref() {
            Some("zfs_member") => add(
                &d.path,
                K::Zfs,
                format!(
                    "member of pool {}",
                    probed(&d.path, "LABEL").unwrap_or_else(|| "(no name)".into())
                ),
            ),
            Some("bcache") => {
                let on: Vec<&str> = d
                    .children
                    .iter()
                    .filter(|c| numbered(&c.name, "bcache"))
                    .map(|c| c.path.as_str())
                    .collect();
                add(
                    &d.path,
                    K::Bcache,
                    if on.is_empty() {
                        "backing or cache device, not attached".into()
                    } else {
                        format!("backing or cache device of {}", on.join(", "))
                    },
                )
            }
            Some(t) if t.ends_with("_raid_member") && t != "linux_raid_member" => add(
                &d.path,
                K::MdExternal,
                format!("firmware RAID member ({t})"),
            ),
            Some("drbd") => add(&d.path, K::NetworkDisk, "DRBD backing device".into()),
            Some("vdo") => add(&d.path, K::DeviceMapper, "VDO backing device".into()),
            Some("stratis") => add(&d.path, K::DeviceMapper, "Stratis pool member".into()),
            Some("DM_integrity") => add(
                &d.path,
                K::DeviceMapper,
                "dm-integrity superblock (integritysetup)".into(),
            ),
            // A USB stick mounted now is no part of the system.
            Some(t) if !SUPPORTED_FS.contains(&t) && !removable.contains(&d.path) => {
                let at = mounted_at(&d.path);
                if !at.is_empty() {
                    add(
                        &d.path,
                        K::Filesystem,
                        format!("{t} mounted at {}", at.join(", ")),
                    );
                }
            }
            _ => {}
        }
        match d.kind.as_str() {
            "disk" => {
                if numbered(&d.name, "zd") {
                    add(&d.path, K::Zfs, "ZFS volume (zvol)".into());
                } else if numbered(&d.name, "nbd") {
                    add(&d.path, K::NetworkDisk, "NBD network block device".into());
                } else if numbered(&d.name, "rbd") {
                    add(&d.path, K::NetworkDisk, "Ceph RBD image".into());
                } else if numbered(&d.name, "drbd") {
                    add(
                        &d.path,
                        K::NetworkDisk,
                        format!("DRBD device on {}", ps.join(", ")),
                    );
                } else if d.tran.as_deref() == Some("iscsi") {
                    add(&d.path, K::NetworkDisk, "iSCSI disk".into());
                } else if numbered(&d.name, "bcache") {
                    add(
                        &d.path,
                        K::Bcache,
                        format!("bcache device on {}", ps.join(", ")),
                    );
                }
            }
            "crypt" => {
                // LUKS is recorded from the header on the device below; a
                // mapping without one is plain dm-crypt, a detached
                // header or integritysetup (their DM uuids start `CRYPT-`).
                let below = ps.first().map(String::as_str).unwrap_or("");
                if !s.unprobed.contains_key(below)
                    && probed(below, "TYPE").as_deref() != Some("crypto_LUKS")
                    && !matches!(probed(below, "TYPE").as_deref(), Some("DM_integrity"))
                {
                    add(
                        &d.path,
                        K::DeviceMapper,
                        format!("dm-crypt mapping without a LUKS header on {below}"),
                    );
                }
            }
            "mpath" => add(&d.path, K::Multipath, format!("paths {}", ps.join(", "))),
            // An md device lsblk finds no RAID level for: a container of
            // external metadata (IMSM, DDF), or an array not running.
            "md" => add(
                &d.path,
                K::MdExternal,
                "md device without a RAID level (a container, or an inactive array)".into(),
            ),
            k if modelled_kind(k) => {}
            "dm" => add(
                &d.path,
                K::DeviceMapper,
                format!("mapping set up outside LVM and LUKS on {}", ps.join(", ")),
            ),
            // Other device-mapper uuid prefixes (`vdo`, `stratis`). Other
            // kinds of whole devices are SCSI types (`rbc`, `mo-disk`),
            // which capture does not record as disks either.
            other if d.path.starts_with("/dev/mapper/") => add(
                &d.path,
                K::DeviceMapper,
                format!("{other} device on {}", ps.join(", ")),
            ),
            _ => {}
        }
    }

    // One btrfs over several devices: the same file system UUID on each.
    let mut btrfs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in &order {
        if probed(&d.path, "TYPE").as_deref() == Some("btrfs")
            && let Some(u) = probed(&d.path, "UUID")
        {
            btrfs.entry(u).or_default().push(canon(&d.path));
        }
    }
    for (uuid, devs) in btrfs.into_iter().filter(|(_, v)| v.len() > 1) {
        out.push(Unsupported {
            device: devs[0].clone(),
            kind: K::BtrfsMultiDevice,
            detail: format!("file system {uuid} on {}", devs.join(", ")),
        });
    }

    // Mounts that are no block device of the tree: ZFS datasets (source
    // `pool/dataset`) and a root on the network.
    let mut datasets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in &mounts {
        if m.fstype == "zfs" {
            let pool = m.source.split('/').next().unwrap_or(&m.source);
            datasets
                .entry(pool.to_string())
                .or_default()
                .push(m.target.clone());
        } else if m.target == "/" && NETWORK_FS.contains(&m.fstype.as_str()) {
            out.push(Unsupported {
                device: m.source.clone(),
                kind: K::NetworkRoot,
                detail: format!("{} mounted at /", m.fstype),
            });
        }
    }
    for (pool, at) in datasets {
        out.push(Unsupported {
            device: pool,
            kind: K::Zfs,
            detail: format!("datasets mounted at {}", at.join(", ")),
        });
    }
    out
}
