//! Capture on real tool output: the fixtures in tests/fixtures/layout were
//! captured in a VM (see their README.md); the layout assembled from them
//! must say what the VM script built.

use std::collections::BTreeMap;
use std::path::Path;

use mkrescue::layout::capture::{Sources, assemble};
use mkrescue::layout::{Flag, Layout, LvKind, Table, diff, parse};

const DIR: &str = "tests/fixtures/layout";

fn read(name: &str) -> String {
    std::fs::read_to_string(Path::new(DIR).join(name))
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The fixtures as `gather` would have collected them in the VM.
pub fn sources() -> Sources {
    let mut s = Sources {
        lsblk: read("lsblk.json"),
        findmnt: read("findmnt.json"),
        lvm: Some((read("pvs.json"), read("vgs.json"), read("lvs.json"))),
        ..Default::default()
    };
    // disks.txt: DISK1=/dev/vdc DISK2=/dev/vdd DISK3=/dev/vde
    for w in read("disks.txt").split_whitespace() {
        let (serial, dev) = w.split_once('=').unwrap();
        s.sfdisk
            .insert(dev.to_string(), read(&format!("sfdisk-{serial}.json")));
        s.sysfs_serial.insert(dev.to_string(), serial.to_string());
    }
    for e in std::fs::read_dir(DIR).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if let Some(dev) = name
            .strip_prefix("blkid-")
            .and_then(|n| n.strip_suffix(".txt"))
        {
            let path = match dev.strip_prefix("mapper_") {
                Some(m) => format!("/dev/mapper/{m}"),
                None => format!("/dev/{dev}"),
            };
            s.blkid.insert(path, read(&name));
        }
    }
    s.mdadm.insert(
        "/dev/md0".into(),
        (
            read("mdadm-detail-export-md0.txt"),
            read("mdadm-detail-md0.txt"),
        ),
    );
    s.luks
        .insert("/dev/vde1".into(), read("luksdump-luks2.txt"));
    s.dumpe2fs
        .insert("/dev/mapper/vg0-root".into(), read("dumpe2fs-ext4.txt"));
    s.dumpe2fs
        .insert("/dev/vde2".into(), read("dumpe2fs-ext3.txt"));
    s.dumpe2fs
        .insert("/dev/mapper/vg0-thin1".into(), read("dumpe2fs-ext2.txt"));
    s.xfs_info
        .insert("/dev/mapper/vg0-home".into(), read("xfs_info.txt"));
    s.btrfs.insert(
        "/dev/mapper/vg1-data".into(),
        (
            read("btrfs-subvolume-list.txt"),
            read("btrfs-get-default.txt"),
        ),
    );
    s
}

fn layout() -> Layout {
    assemble("capture", &sources()).expect("fixtures assemble")
}

#[test]
fn disks_and_partitions_as_built() {
    let l = layout();
    let d1 = l.disks.iter().find(|d| d.path == "/dev/vdc").unwrap();
    assert_eq!(d1.size, 1536 << 20);
    assert_eq!(d1.table, Table::Gpt);
    assert_eq!(d1.serial.as_deref(), Some("DISK1"));
    assert_eq!(
        d1.disk_id.as_deref(),
        Some("4B2DD37D-78B6-5F46-A8A5-8F7F22068445")
    );
    let flags: Vec<Vec<Flag>> = d1.partitions.iter().map(|p| p.flags.clone()).collect();
    assert_eq!(
        flags,
        vec![vec![Flag::BiosGrub], vec![Flag::Esp], vec![Flag::Raid]]
    );
    assert_eq!(d1.partitions[0].start, 2048);
    assert_eq!(d1.partitions[0].size, 2048);
    assert_eq!(d1.partitions[1].name.as_deref(), Some("esp"));
    let d3 = l.disks.iter().find(|d| d.path == "/dev/vde").unwrap();
    assert_eq!(d3.table, Table::Msdos);
    assert_eq!(d3.partitions[0].type_, "83");
    assert!(d3.partitions[1].flags.contains(&Flag::Boot));
    // The VM's script and result disks carry no table: recorded, unused.
    let blank = l.disks.iter().find(|d| d.path == "/dev/vda").unwrap();
    assert_eq!(blank.table, Table::None);
    assert!(blank.partitions.is_empty());
}

#[test]
fn md_array_from_mdadm() {
    let l = layout();
    assert_eq!(
        l.md.len(),
        1,
        "md0 appears under both members but once here"
    );
    let md = &l.md[0];
    assert_eq!(md.path, "/dev/md0");
    assert_eq!(md.level, "raid1");
    assert_eq!(md.metadata, "1.2");
    assert_eq!(md.uuid, "e3757103:16767829:621dd49a:4af92b9c");
    assert_eq!(md.name.as_deref(), Some("capture:0"));
    assert_eq!(md.devices, vec!["/dev/vdc3", "/dev/vdd3"]);
    assert_eq!(md.bitmap.as_deref(), Some("internal"));
    assert_eq!(md.size, 1502208 * 1024);
}

#[test]
fn lvm_with_thin_pool_and_luks() {
    let l = layout();
    let vgs: Vec<&str> = l.lvm.vgs.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(vgs, vec!["vg0", "vg1"]);
    assert_eq!(l.lvm.vgs[0].pvs, vec!["/dev/md0"]);
    assert_eq!(l.lvm.vgs[1].pvs, vec!["/dev/mapper/cryptdata"]);
    let names: Vec<String> = l.lvm.lvs.iter().map(|v| v.path()).collect();
    // Hidden sub-LVs ([pool_tdata], [lvol0_pmspare]) are LVM's business.
    assert!(!names.iter().any(|n| n.contains('[')), "{names:?}");
    let pool = l.lvm.lvs.iter().find(|v| v.name == "pool").unwrap();
    assert_eq!(
        pool.kind,
        LvKind::ThinPool {
            chunk_size: 65536,
            metadata_size: 4194304
        }
    );
    let thin1 = l.lvm.lvs.iter().find(|v| v.name == "thin1").unwrap();
    assert_eq!(
        thin1.kind,
        LvKind::Thin {
            pool: "pool".into()
        }
    );
    assert_eq!(thin1.size, 300 << 20);
    let root = l.lvm.lvs.iter().find(|v| v.name == "root").unwrap();
    assert_eq!(root.uuid, "sA1Cz0-2wNk-szK9-tFQm-Yezm-o912-l348tY");
    assert_eq!(root.kind, LvKind::Linear);

    assert_eq!(l.luks.len(), 1);
    let x = &l.luks[0];
    assert_eq!(x.device, "/dev/vde1");
    assert_eq!(x.mapper, "/dev/mapper/cryptdata");
    assert_eq!(x.version, 2);
    assert_eq!(x.label.as_deref(), Some("cryptdata"));
    assert_eq!(x.cipher, "aes-xts-plain64");
    assert_eq!(x.key_bits, 512);
    assert_eq!(x.pbkdf, "pbkdf2");
}

#[test]
fn filesystems_under_their_lvm_names() {
    let l = layout();
    let by: BTreeMap<&str, &mkrescue::layout::Filesystem> = l
        .filesystems
        .iter()
        .map(|f| (f.device.as_str(), f))
        .collect();
    let root = by["/dev/vg0/root"];
    assert_eq!(root.fstype, "ext4");
    assert_eq!(root.label.as_deref(), Some("root"));
    let ext = root.ext.as_ref().unwrap();
    assert!(ext.features.contains(&"metadata_csum".to_string()));
    // Mounted with a journal: needs_recovery is state, not format.
    assert!(!ext.features.contains(&"needs_recovery".to_string()));
    // mke2fs.conf's "small" type for a 320 MiB file system.
    assert_eq!(ext.block_size, 1024);
    let home = by["/dev/vg0/home"];
    assert_eq!(home.fstype, "xfs");
    let x = home.xfs.as_ref().unwrap();
    assert!(x.crc && x.reflink && x.finobt && x.bigtime && !x.rmapbt);
    assert_eq!(x.inode_size, 512);
    assert_eq!(x.log_size_blocks, 16384);
    assert_eq!(by["/dev/vg0/swap"].fstype, "swap");
    assert_eq!(by["/dev/vg0/thin1"].fstype, "ext2");
    assert_eq!(by["/dev/vde2"].fstype, "ext3");
    let esp = by["/dev/vdc2"];
    assert_eq!(esp.fstype, "vfat");
    assert_eq!(esp.uuid.as_deref(), Some("1234-ABCD"));
    assert_eq!(esp.vfat.as_ref().unwrap().fat_bits, 32);
    let data = by["/dev/vg1/data"];
    let b = data.btrfs.as_ref().unwrap();
    assert_eq!(b.subvolumes, vec!["@", "@home", "@home/snap"]);
    assert_eq!(b.default_subvolume.as_deref(), Some("@"));
    // Not file systems: RAID members, PVs, LUKS, the unformatted thin2.
    assert!(!by.contains_key("/dev/md0"));
    assert!(!by.contains_key("/dev/vde1"));
    assert!(!by.contains_key("/dev/vg0/thin2"));
}

#[test]
fn mount_tree_of_layout_devices_only() {
    let l = layout();
    let m: Vec<(&str, &str)> = l
        .mounts
        .iter()
        .map(|m| (m.target.as_str(), m.source.as_str()))
        .collect();
    assert_eq!(
        m,
        vec![
            ("/mnt/t", "/dev/vg0/root"),
            ("/mnt/t/home", "/dev/vg0/home"),
            ("/mnt/t/boot/efi", "/dev/vdc2"),
            ("/mnt/t/old", "/dev/vde2"),
            ("/mnt/t/data", "/dev/vg1/data"),
        ]
    );
    let old = l.mounts.iter().find(|m| m.target == "/mnt/t/old").unwrap();
    assert!(old.options.contains("noatime"), "{}", old.options);
    let data = l.mounts.iter().find(|m| m.target == "/mnt/t/data").unwrap();
    // Mounted at the top level (subvolid=5): no fsroot recorded.
    assert_eq!(data.fsroot, None);
    assert!(data.options.contains("subvolid=5"));
}

/// The used bytes layout `l` records for file system `dev`.
fn used_of(l: &Layout, dev: &str) -> Option<u64> {
    l.filesystems
        .iter()
        .find(|f| f.device == dev)
        .unwrap()
        .used_bytes
}

/// The used bytes `gather` measured (statvfs of each mount point) go to
/// their file system, never to swap; `layout check` does not count them as
/// a change, and a layout file without them (older mkrescue) still loads.
/// They are rounded up to `USED_UNIT` (64 MiB), so a capture a minute
/// later, after a few log lines, is the same.
#[test]
fn used_bytes_recorded_and_not_a_change() {
    let mut s = sources();
    s.used.insert("/dev/mapper/vg0-root".into(), 123 << 20);
    s.used.insert("/dev/vdc2".into(), 1 << 20);
    s.used.insert("/dev/mapper/vg0-swap".into(), 7);
    let l = assemble("layout2", &s).unwrap();
    let used = |d: &str| used_of(&l, d);
    assert_eq!(used("/dev/vg0/root"), Some(128 << 20));
    assert_eq!(used("/dev/vdc2"), Some(64 << 20));
    assert_eq!(used("/dev/vg0/swap"), None);
    assert_eq!(used("/dev/vg0/home"), None);
    let json = l.to_json();
    assert!(json.contains("\"used_bytes\": 134217728"), "{json}");
    // A few KiB more written, or exactly on a step: the same record.
    let mut s2 = sources();
    s2.used
        .insert("/dev/mapper/vg0-root".into(), (123 << 20) + 12_288);
    s2.used.insert("/dev/vdc2".into(), 64 << 20);
    let l2 = assemble("layout2", &s2).unwrap();
    assert_eq!(used_of(&l2, "/dev/vg0/root"), used("/dev/vg0/root"));
    assert_eq!(used_of(&l2, "/dev/vdc2"), Some(64 << 20));
    let mut later = Layout::from_json(&json).unwrap();
    for f in &mut later.filesystems {
        f.used_bytes = f.used_bytes.map(|u| u * 2);
    }
    assert!(diff(&l, &later).is_empty(), "{:?}", diff(&l, &later));
    // The old file: no used_bytes anywhere, and it loads.
    let old = layout().to_json();
    assert!(!old.contains("used_bytes"));
    assert!(Layout::from_json(&old).is_ok());
}

#[test]
fn json_round_trip_and_no_diff_with_itself() {
    let l = layout();
    let back = Layout::from_json(&l.to_json()).unwrap();
    assert_eq!(back, l);
    assert!(diff(&l, &back).is_empty());
}

#[test]
fn luks1_header() {
    let x = parse::luks_dump(&read("luksdump-luks1.txt")).unwrap();
    assert_eq!(x.version, 1);
    assert_eq!(x.cipher, "aes-xts-plain64");
    assert_eq!(x.key_bits, 512);
    assert_eq!(x.pbkdf, "pbkdf2");
    assert_eq!(x.label, None);
}

/// The fresh-clone CI run of 2026-12-05: QEMU's default PC has an empty
/// floppy drive, `blkid -p /dev/fd0` fails ("No such device or address"),
/// and `layout save` refused the whole layout. Floppy drives and devices
/// without a medium (an empty card reader: size 0) are no part of a layout.
#[test]
fn floppy_drives_and_empty_readers_are_left_out() {
    let mut tree: serde_json::Value = serde_json::from_str(&read("lsblk.json")).unwrap();
    let devs = tree["blockdevices"].as_array_mut().unwrap();
    let mut extra = Vec::new();
    for (name, size) in [("fd0", 4096), ("sdz", 0)] {
        let mut d = devs[0].clone();
        for k in ["name", "kname"] {
            d[k] = name.into();
        }
        d["path"] = format!("/dev/{name}").into();
        d["size"] = size.into();
        d["rm"] = true.into();
        d["children"] = serde_json::Value::Null;
        extra.push(d);
    }
    devs.extend(extra);
    let text = tree.to_string();
    let parsed = parse::lsblk(&text).unwrap();
    for name in ["fd0", "sdz"] {
        let d = parsed.iter().find(|d| d.name == name).unwrap();
        assert!(mkrescue::layout::capture::ignored(d), "{name}");
    }
    let vda = parsed.iter().find(|d| d.name == "vda").unwrap();
    assert!(!mkrescue::layout::capture::ignored(vda));
    let mut s = sources();
    s.lsblk = text;
    let l = assemble("capture", &s).unwrap();
    assert!(
        l.disks
            .iter()
            .all(|d| d.path != "/dev/fd0" && d.path != "/dev/sdz"),
        "{:?}",
        l.disks.iter().map(|d| &d.path).collect::<Vec<_>>()
    );
    assert_eq!(l.disks.len(), layout().disks.len());
}
