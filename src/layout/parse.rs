//! Parsers of the capture sources' machine output. Each takes the tool's
//! output as text (so unit tests run on captured fixtures) and returns plain
//! data; `capture` runs the tools and assembles the [`super::Layout`].

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::Value;

/// A number that lsblk/sfdisk/LVM print either as a JSON number or a string.
fn num(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One block device of `lsblk --json --bytes -O`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlockDev {
    pub name: String,
    pub path: String,
    /// `disk`, `part`, `raid1`, `lvm`, `crypt`, `loop`, `rom`, ...
    pub kind: String,
    pub size: u64,
    pub log_sec: u64,
    pub phy_sec: u64,
    pub wwn: Option<String>,
    pub serial: Option<String>,
    pub model: Option<String>,
    pub fstype: Option<String>,
    pub uuid: Option<String>,
    pub label: Option<String>,
    pub pttype: Option<String>,
    pub ptuuid: Option<String>,
    pub mountpoints: Vec<String>,
    pub removable: bool,
    pub read_only: bool,
    /// Transport of a disk (`sata`, `nvme`, `usb`, `iscsi`, ...).
    pub tran: Option<String>,
    pub children: Vec<BlockDev>,
}

impl BlockDev {
    /// This device and everything below it, depth first.
    pub fn walk(&self) -> Vec<&BlockDev> {
        let mut v = vec![self];
        for c in &self.children {
            v.extend(c.walk());
        }
        v
    }
}

/// `lsblk --json --bytes -O`: the device tree (disks at the top).
pub fn lsblk(text: &str) -> Result<Vec<BlockDev>> {
    let v: Value = serde_json::from_str(text).context("lsblk output is not JSON")?;
    let devs = v
        .get("blockdevices")
        .and_then(|d| d.as_array())
        .context("lsblk output has no `blockdevices` list")?;
    devs.iter().map(lsblk_dev).collect()
}

fn lsblk_dev(v: &Value) -> Result<BlockDev> {
    let name = string(v.get("name")).context("lsblk device without `name`")?;
    let flag = |k: &str| match v.get(k) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "1",
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        _ => false,
    };
    let mut mountpoints: Vec<String> = match v.get("mountpoints") {
        Some(Value::Array(a)) => a.iter().filter_map(|x| string(Some(x))).collect(),
        _ => Vec::new(),
    };
    if mountpoints.is_empty()
        && let Some(m) = string(v.get("mountpoint"))
    {
        mountpoints.push(m);
    }
    Ok(BlockDev {
        path: string(v.get("path")).unwrap_or_else(|| format!("/dev/{name}")),
        kind: string(v.get("type")).unwrap_or_default(),
        size: num(v.get("size")).unwrap_or(0),
        log_sec: num(v.get("log-sec")).unwrap_or(512),
        phy_sec: num(v.get("phy-sec")).unwrap_or(512),
        wwn: string(v.get("wwn")),
        serial: string(v.get("serial")),
        model: string(v.get("model")).map(|s| s.trim().to_string()),
        fstype: string(v.get("fstype")),
        uuid: string(v.get("uuid")),
        label: string(v.get("label")),
        pttype: string(v.get("pttype")),
        ptuuid: string(v.get("ptuuid")),
        mountpoints,
        removable: flag("rm"),
        read_only: flag("ro"),
        tran: string(v.get("tran")),
        children: match v.get("children") {
            Some(Value::Array(a)) => a.iter().map(lsblk_dev).collect::<Result<_>>()?,
            _ => Vec::new(),
        },
        name,
    })
}

/// `sfdisk --json DISK`.
#[derive(Debug, Clone, PartialEq)]
pub struct SfdiskTable {
    /// `gpt` or `dos`.
    pub label: String,
    pub id: Option<String>,
    pub sector_size: u64,
    pub first_lba: Option<u64>,
    pub last_lba: Option<u64>,
    pub partitions: Vec<SfdiskPart>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SfdiskPart {
    pub node: String,
    pub start: u64,
    pub size: u64,
    pub type_: String,
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub attrs: Option<String>,
    pub bootable: bool,
}

pub fn sfdisk(text: &str) -> Result<SfdiskTable> {
    let v: Value = serde_json::from_str(text).context("sfdisk output is not JSON")?;
    let t = v
        .get("partitiontable")
        .context("sfdisk output has no `partitiontable`")?;
    let label = string(t.get("label")).context("sfdisk: partition table without `label`")?;
    let parts = match t.get("partitions") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|p| {
                Ok(SfdiskPart {
                    node: string(p.get("node")).context("sfdisk: partition without `node`")?,
                    start: num(p.get("start")).context("sfdisk: partition without `start`")?,
                    size: num(p.get("size")).context("sfdisk: partition without `size`")?,
                    type_: string(p.get("type"))
                        .context("sfdisk: partition without `type`")?
                        .to_uppercase(),
                    uuid: string(p.get("uuid")).map(|s| s.to_uppercase()),
                    name: string(p.get("name")),
                    attrs: string(p.get("attrs")),
                    bootable: matches!(p.get("bootable"), Some(Value::Bool(true))),
                })
            })
            .collect::<Result<_>>()?,
        _ => Vec::new(),
    };
    Ok(SfdiskTable {
        label,
        id: string(t.get("id")),
        sector_size: num(t.get("sectorsize")).unwrap_or(512),
        first_lba: num(t.get("firstlba")),
        last_lba: num(t.get("lastlba")),
        partitions: parts,
    })
}

/// `KEY=value` lines (`blkid -o export`, `mdadm --detail --export`).
pub fn export(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// `mdadm --detail --export` together with `mdadm --detail` (for chunk,
/// layout, bitmap, which the export leaves out).
#[derive(Debug, Clone, PartialEq)]
pub struct MdDetail {
    pub level: String,
    pub metadata: String,
    pub uuid: String,
    pub name: Option<String>,
    pub raid_devices: u32,
    pub chunk_kib: Option<u64>,
    pub layout: Option<String>,
    pub bitmap: Option<String>,
    /// (role, device) of active members.
    pub devices: Vec<(u32, String)>,
    pub spares: Vec<String>,
    /// Array size in bytes.
    pub size: u64,
}

pub fn mdadm(export_text: &str, detail_text: &str) -> Result<MdDetail> {
    let e = export(export_text);
    let get = |k: &str| {
        e.get(k)
            .cloned()
            .with_context(|| format!("mdadm --detail --export: no {k}"))
    };
    // `Key : Value` lines of the human detail.
    let mut d = BTreeMap::new();
    for l in detail_text.lines() {
        if let Some((k, v)) = l.split_once(" : ") {
            d.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let mut devices = Vec::new();
    let mut spares = Vec::new();
    // MD_DEVICE_<name>_ROLE / MD_DEVICE_<name>_DEV (mdadm Detail.c).
    for (k, role) in &e {
        if let Some(n) = k
            .strip_prefix("MD_DEVICE_")
            .and_then(|r| r.strip_suffix("_ROLE"))
        {
            let dev = e
                .get(&format!("MD_DEVICE_{n}_DEV"))
                .cloned()
                .with_context(|| format!("mdadm --detail --export: MD_DEVICE_{n}_DEV missing"))?;
            match role.parse::<u32>() {
                Ok(r) => devices.push((r, dev)),
                Err(_) if role == "spare" => spares.push(dev),
                Err(_) => {} // faulty, journal: not rebuilt
            }
        }
    }
    devices.sort();
    // "Array Size : 1569792 (1533.00 MiB 1607.47 MB)" in KiB.
    let size = d
        .get("Array Size")
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse::<u64>().ok())
        .map(|k| k * 1024)
        .unwrap_or(0);
    let chunk_kib = d
        .get("Chunk Size")
        .and_then(|s| s.strip_suffix('K'))
        .and_then(|s| s.parse().ok());
    let name = e.get("MD_NAME").cloned().or_else(|| {
        d.get("Name")
            .map(|n| n.split_whitespace().next().unwrap_or(n).to_string())
    });
    Ok(MdDetail {
        level: get("MD_LEVEL")?,
        metadata: get("MD_METADATA")?,
        uuid: get("MD_UUID")?,
        name,
        raid_devices: get("MD_DEVICES")?
            .parse()
            .context("mdadm --detail --export: MD_DEVICES is not a number")?,
        chunk_kib,
        layout: d.get("Layout").cloned(),
        bitmap: d.get("Intent Bitmap").map(|b| b.to_lowercase()),
        devices,
        spares,
        size,
    })
}

/// Rows of an LVM JSON report (`pvs|vgs|lvs --reportformat json`): the
/// first report's list named `kind` (`pv`, `vg`, `lv`), each a string map.
pub fn lvm_report(text: &str, kind: &str) -> Result<Vec<BTreeMap<String, String>>> {
    #[derive(Deserialize)]
    struct Report {
        report: Vec<BTreeMap<String, Vec<BTreeMap<String, String>>>>,
    }
    let r: Report = serde_json::from_str(text)
        .with_context(|| format!("{kind}s --reportformat json: unexpected output"))?;
    Ok(r.report
        .into_iter()
        .next()
        .and_then(|mut m| m.remove(kind))
        .unwrap_or_default())
}

/// What `cryptsetup luksDump` says (LUKS1 or LUKS2 text format).
#[derive(Debug, Clone, PartialEq)]
pub struct LuksDump {
    pub version: u32,
    pub uuid: String,
    pub label: Option<String>,
    pub cipher: String,
    pub key_bits: u32,
    pub pbkdf: String,
}

pub fn luks_dump(text: &str) -> Result<LuksDump> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    };
    let version: u32 = field("Version")
        .context("luksDump: no Version")?
        .parse()
        .context("luksDump: Version is not a number")?;
    let uuid = field("UUID").context("luksDump: no UUID")?;
    if version == 1 {
        // LUKS1: "Cipher name: aes", "Cipher mode: xts-plain64",
        // "MK bits: 512"; the KDF is always PBKDF2.
        let name = field("Cipher name").context("luksDump: no Cipher name")?;
        let mode = field("Cipher mode").context("luksDump: no Cipher mode")?;
        let bits = field("MK bits").context("luksDump: no MK bits")?;
        return Ok(LuksDump {
            version,
            uuid,
            label: None,
            cipher: format!("{name}-{mode}"),
            key_bits: bits.parse().context("luksDump: MK bits is not a number")?,
            pbkdf: "pbkdf2".into(),
        });
    }
    // LUKS2: "Label: (no label)", data segment "cipher: aes-xts-plain64",
    // key slot "Key: 512 bits" and "PBKDF: argon2id".
    let label = field("Label").filter(|l| l != "(no label)");
    let cipher = field("cipher").context("luksDump: no data segment cipher")?;
    let key_bits = field("Key")
        .and_then(|k| k.split_whitespace().next().and_then(|n| n.parse().ok()))
        .context("luksDump: no key slot with a key size")?;
    let pbkdf = field("PBKDF").context("luksDump: no key slot PBKDF")?;
    Ok(LuksDump {
        version,
        uuid,
        label,
        cipher,
        key_bits,
        pbkdf,
    })
}

/// `dumpe2fs -h`: UUID, label, features, block and inode size.
#[derive(Debug, Clone, PartialEq)]
pub struct Ext {
    pub uuid: Option<String>,
    pub label: Option<String>,
    pub features: Vec<String>,
    pub block_size: u64,
    pub inode_size: u64,
}

/// Feature words that are state, not format (set while mounted or after a
/// crash); recreating a file system must not ask for them.
const EXT_STATE_FEATURES: &[&str] = &["needs_recovery", "orphan_present"];

pub fn dumpe2fs(text: &str) -> Result<Ext> {
    let mut m = BTreeMap::new();
    for l in text.lines() {
        if let Some((k, v)) = l.split_once(':') {
            m.entry(k.trim().to_string())
                .or_insert_with(|| v.trim().to_string());
        }
    }
    let n = |k: &str| -> Result<u64> {
        m.get(k)
            .with_context(|| format!("dumpe2fs -h: no `{k}`"))?
            .parse()
            .with_context(|| format!("dumpe2fs -h: `{k}` is not a number"))
    };
    let features = m
        .get("Filesystem features")
        .context("dumpe2fs -h: no `Filesystem features`")?
        .split_whitespace()
        .filter(|f| !EXT_STATE_FEATURES.contains(f))
        .map(str::to_string)
        .collect();
    Ok(Ext {
        uuid: m.get("Filesystem UUID").cloned(),
        label: m
            .get("Filesystem volume name")
            .filter(|l| l.as_str() != "<none>")
            .cloned(),
        features,
        block_size: n("Block size")?,
        // ext2 rev 0 has no "Inode size" line: 128 bytes (ext2_fs.h).
        inode_size: m
            .get("Inode size")
            .and_then(|s| s.parse().ok())
            .unwrap_or(128),
    })
}

/// `xfs_info DEV|MOUNTPOINT`.
pub fn xfs_info(text: &str) -> Result<crate::layout::XfsInfo> {
    // Lines look like `meta-data=/dev/x isize=512 agcount=4, agsize=...`;
    // the same key appears in several sections (bsize in data, naming and
    // log), so keep the section of each key.
    let mut kv: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut section = String::new();
    for l in text.lines() {
        let mut rest = l.trim();
        if let Some((head, tail)) = rest.split_once('=')
            && ["meta-data", "data", "naming", "log", "realtime"].contains(&head.trim())
        {
            section = head.trim().to_string();
            // The value after `meta-data=` is the device: skip that word.
            rest = tail.split_once(' ').map(|(_, r)| r).unwrap_or("");
        }
        for w in rest.split_whitespace() {
            let w = w.trim_end_matches(',');
            if let Some((k, v)) = w.split_once('=') {
                kv.insert((section.clone(), k.to_string()), v.to_string());
            }
        }
    }
    let get = |s: &str, k: &str| -> Result<u64> {
        kv.get(&(s.to_string(), k.to_string()))
            .with_context(|| format!("xfs_info: no {s} {k}"))?
            .parse()
            .with_context(|| format!("xfs_info: {s} {k} is not a number"))
    };
    let flag = |s: &str, k: &str| {
        kv.get(&(s.to_string(), k.to_string()))
            .is_some_and(|v| v == "1")
    };
    if kv.is_empty() {
        bail!("xfs_info: no key=value fields in the output");
    }
    Ok(crate::layout::XfsInfo {
        block_size: get("data", "bsize")?,
        inode_size: get("meta-data", "isize")?,
        crc: flag("meta-data", "crc"),
        reflink: flag("meta-data", "reflink"),
        finobt: flag("meta-data", "finobt"),
        sparse_inodes: flag("meta-data", "sparse"),
        rmapbt: flag("meta-data", "rmapbt"),
        bigtime: flag("meta-data", "bigtime"),
        inobtcount: flag("meta-data", "inobtcount"),
        log_size_blocks: get("log", "blocks")?,
    })
}

/// `btrfs subvolume list -a -p -u -q MOUNTPOINT`: subvolume paths relative
/// to the top level (the `<FS_TREE>/` prefix of `-a` removed), in id order
/// so parents come first.
pub fn btrfs_subvolumes(text: &str) -> Result<Vec<(u64, String)>> {
    let mut out = Vec::new();
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        let id = l
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("btrfs subvolume list: no ID in `{l}`"))?;
        let path = l
            .split_once(" path ")
            .map(|(_, p)| p.trim())
            .with_context(|| format!("btrfs subvolume list: no path in `{l}`"))?;
        let path = path.strip_prefix("<FS_TREE>/").unwrap_or(path);
        out.push((id, path.to_string()));
    }
    out.sort();
    Ok(out)
}

/// `btrfs subvolume get-default MOUNTPOINT`: the default subvolume's path,
/// none for the top level (`ID 5 (FS_TREE)`).
pub fn btrfs_default(text: &str) -> Result<Option<String>> {
    let l = text.trim();
    if l.starts_with("ID 5 ") || l == "ID 5" {
        return Ok(None);
    }
    let path = l
        .split_once(" path ")
        .map(|(_, p)| p.trim().to_string())
        .with_context(|| format!("btrfs subvolume get-default: unexpected `{l}`"))?;
    Ok(Some(path))
}

/// `findmnt --json -o TARGET,SOURCE,FSTYPE,OPTIONS,FSROOT`: every mount,
/// parents first.
pub fn findmnt(text: &str) -> Result<Vec<crate::layout::Mount>> {
    let v: Value = serde_json::from_str(text).context("findmnt output is not JSON")?;
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<crate::layout::Mount>) {
        if let Some(a) = v.as_array() {
            for m in a {
                out.push(crate::layout::Mount {
                    target: string(m.get("target")).unwrap_or_default(),
                    source: string(m.get("source")).unwrap_or_default(),
                    fstype: string(m.get("fstype")).unwrap_or_default(),
                    options: string(m.get("options")).unwrap_or_default(),
                    fsroot: string(m.get("fsroot")).filter(|r| r != "/"),
                });
                if let Some(c) = m.get("children") {
                    walk(c, out);
                }
            }
        }
    }
    walk(
        v.get("filesystems")
            .context("findmnt output has no `filesystems`")?,
        &mut out,
    );
    Ok(out)
}
