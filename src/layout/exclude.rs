//! Devices the layout leaves out: the disk holding the backup target. It is
//! not the host's system — recover must neither rebuild it (that would
//! destroy the backup) nor ask for a disk to put it on — so `layout save`
//! records it under `excluded` with the reason and drops it, and everything
//! that lives only on it (partitions, md, LUKS, VGs, LVs, file systems,
//! mounts), from the layout.

use std::collections::BTreeSet;

use super::Layout;
use super::model::Excluded;
use crate::exec::Cmd;

/// Removes `disk` and everything built only on it; records why.
pub fn drop_disk(l: &mut Layout, disk: &str, reason: &str) {
    let Some(i) = l.disks.iter().position(|d| d.path == disk) else {
        return;
    };
    let d = l.disks.remove(i);
    let mut gone: BTreeSet<String> = d.partitions.iter().map(|p| p.path.clone()).collect();
    gone.insert(d.path.clone());
    // Partitions of disks dropped before count as gone, too.
    let dropped_before = |x: &str| {
        l.excluded.iter().any(|e| {
            x.strip_prefix(e.device.as_str())
                .map(|n| n.strip_prefix('p').unwrap_or(n))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
    };
    for m in &l.md {
        for x in m.devices.iter().chain(&m.spares) {
            if dropped_before(x) {
                gone.insert(x.clone());
            }
        }
    }
    // Follow the stack upwards until nothing more depends only on what is gone.
    loop {
        let before = gone.len();
        for m in &l.md {
            if m.devices.iter().chain(&m.spares).all(|x| gone.contains(x)) {
                gone.insert(m.path.clone());
            }
        }
        for x in &l.luks {
            if gone.contains(&x.device) {
                gone.insert(x.mapper.clone());
            }
        }
        for vg in &l.lvm.vgs {
            if vg.pvs.iter().all(|p| gone.contains(p)) {
                gone.insert(format!("vg:{}", vg.name));
                for lv in l.lvm.lvs.iter().filter(|lv| lv.vg == vg.name) {
                    gone.insert(lv.path());
                }
            }
        }
        if gone.len() == before {
            break;
        }
    }
    l.md.retain(|m| !gone.contains(&m.path));
    l.luks.retain(|x| !gone.contains(&x.device));
    l.lvm.pvs.retain(|p| !gone.contains(&p.device));
    l.lvm
        .vgs
        .retain(|v| !gone.contains(&format!("vg:{}", v.name)));
    l.lvm
        .lvs
        .retain(|lv| !gone.contains(&format!("vg:{}", lv.vg)));
    l.filesystems.retain(|f| !gone.contains(&f.device));
    l.mounts.retain(|m| !gone.contains(&m.source));
    l.excluded.push(Excluded {
        device: disk.to_string(),
        reason: reason.to_string(),
    });
}

/// Whole disks below a block device (`lsblk --inverse`: through partitions,
/// md, LVM and LUKS down to the disks).
fn disks_under(dev: &str) -> Vec<String> {
    Cmd::new("lsblk")
        .args([
            "--inverse",
            "--noheadings",
            "--paths",
            "--list",
            "-o",
            "NAME,TYPE",
            dev,
        ])
        .read()
        .map(|o| {
            o.lines()
                .filter_map(|l| l.split_once(' '))
                .filter(|(_, t)| t.trim() == "disk")
                .map(|(n, _)| n.to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The device of the file system holding `dir` (`findmnt --target`).
fn source_of(dir: &str) -> Option<String> {
    Cmd::new("findmnt")
        .args(["--noheadings", "--output", "SOURCE", "--target", dir])
        .read()
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| s.starts_with("/dev/"))
}

/// `dir` or its nearest ancestor that is a directory.
fn nearest_existing_dir(dir: &std::path::Path) -> Option<&std::path::Path> {
    let mut at = dir;
    while !at.is_dir() {
        at = at.parent()?;
    }
    Some(at)
}

/// Leaves out the disks of a local `file://` backup target, unless they
/// also hold the root file system (then the backup is on the system disk;
/// the rescue build warns about that).
pub fn exclude_backup_disks(l: &mut Layout, target: Option<&str>) {
    let Some(dir) = target.and_then(|t| t.strip_prefix("file://")) else {
        return;
    };
    // Before the first backup the target directory does not exist yet; the
    // file system that will hold it is its nearest existing ancestor's
    // (the backup disk mounted at /backup for /backup/archive). Without
    // this the first `layout save` kept the backup disk and a later one
    // dropped it.
    let Some(at) = nearest_existing_dir(std::path::Path::new(dir)) else {
        return;
    };
    let Some(src) = source_of(&at.to_string_lossy()) else {
        return;
    };
    let root_disks = source_of("/").map(|r| disks_under(&r)).unwrap_or_default();
    for d in disks_under(&src) {
        if !root_disks.contains(&d) {
            drop_disk(l, &d, &format!("holds the backup target file://{dir}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_target_not_created_yet_belongs_to_its_nearest_existing_dir() {
        let t = std::env::temp_dir().join(format!("mkr-exclude-{}", std::process::id()));
        std::fs::create_dir_all(&t).unwrap();
        assert_eq!(nearest_existing_dir(&t), Some(t.as_path()));
        let later = t.join("archive/host");
        assert_eq!(nearest_existing_dir(&later), Some(t.as_path()));
        // A file is not a directory: its parent holds it.
        std::fs::write(t.join("f"), "").unwrap();
        assert_eq!(nearest_existing_dir(&t.join("f/x")), Some(t.as_path()));
        assert_eq!(
            nearest_existing_dir(Path::new("/no/such/dir")),
            Some(Path::new("/"))
        );
        std::fs::remove_dir_all(&t).unwrap();
    }

    /// The capture fixture's layout 2 (md RAID1 + LVM over vdc and vdd):
    /// dropping one RAID member keeps the array (the other member still
    /// holds it); dropping both takes md, the VG, its LVs, their file
    /// systems and mounts.
    #[test]
    fn dropping_a_disk_takes_what_lives_only_on_it() {
        let l = Layout::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/layout/layout2.json"
        )))
        .unwrap();
        let mut one = l.clone();
        drop_disk(&mut one, "/dev/vdc", "test");
        assert_eq!(one.disks.len(), l.disks.len() - 1);
        assert_eq!(one.md.len(), 1);
        assert_eq!(one.filesystems.len(), l.filesystems.len());
        assert_eq!(one.excluded.len(), 1);
        assert_eq!(one.excluded[0].device, "/dev/vdc");
        drop_disk(&mut one, "/dev/vdd", "test");
        assert!(one.md.is_empty(), "{:?}", one.md);
        assert!(one.lvm.is_empty(), "{:?}", one.lvm);
        assert!(one.filesystems.is_empty(), "{:?}", one.filesystems);
        assert!(one.mounts.iter().all(|m| !m.source.starts_with("/dev/vg0")));
        // Unknown disk: nothing changes.
        let mut same = l.clone();
        drop_disk(&mut same, "/dev/nope", "test");
        assert_eq!(same, l);
    }
}
