//! The kernel modules behind block devices, from sysfs: what a device
//! needs to be found at boot (its driver chain down to the controller, md
//! personalities, device-mapper targets, file systems). Used by recover
//! (does the restored initramfs have them?) and by backup, which records
//! what the host's own boot disks use.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};

/// The modules bound to block device `dev` (a /dev path of the rescue
/// system) and everything under it: dm and md slaves, partitions' disks, and
/// each disk's chain of parent devices (virtio_blk, virtio_pci; sd_mod,
/// ahci; nvme). `sys` is the sysfs root (`/sys`). Built-in drivers have no
/// module and are left out; so is what the kernel does not show.
pub fn block_modules(sys: &Path, dev: &str) -> Result<BTreeSet<String>> {
    let real = std::fs::canonicalize(dev).with_context(|| format!("resolving {dev}"))?;
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .with_context(|| format!("{dev} has no kernel name"))?;
    let mut out = BTreeSet::new();
    let mut seen = BTreeSet::new();
    walk_block(sys, &name, &mut out, &mut seen)?;
    Ok(out)
}

fn walk_block(
    sys: &Path,
    name: &str,
    out: &mut BTreeSet<String>,
    seen: &mut BTreeSet<String>,
) -> Result<()> {
    if !seen.insert(name.to_string()) {
        return Ok(());
    }
    let node = sys.join("class/block").join(name);
    let node = std::fs::canonicalize(&node)
        .with_context(|| format!("{} (is {name} a block device?)", node.display()))?;
    // md: the personality (raid1, raid456, ...).
    if let Ok(level) = std::fs::read_to_string(node.join("md/level")) {
        let m = match level.trim() {
            "raid4" | "raid5" | "raid6" => "raid456".to_string(),
            l => l.to_string(),
        };
        if !m.is_empty() {
            out.insert(m);
        }
    }
    if node.join("dm").is_dir() {
        out.insert("dm_mod".into());
        if let Ok(uuid) = std::fs::read_to_string(node.join("dm/uuid"))
            && uuid.starts_with("CRYPT-")
        {
            out.insert("dm_crypt".into());
        }
    }
    let slaves: Vec<String> = std::fs::read_dir(node.join("slaves"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for s in &slaves {
        walk_block(sys, s, out, seen)?;
    }
    // A partition's disk is its parent directory in sysfs.
    let disk = if node.join("partition").exists() {
        node.parent().map(Path::to_path_buf)
    } else {
        Some(node.clone())
    };
    if let Some(disk) = disk
        && slaves.is_empty()
    {
        let mut at = std::fs::canonicalize(disk.join("device")).ok();
        while let Some(d) = at {
            if let Ok(m) = std::fs::canonicalize(d.join("driver/module"))
                && let Some(m) = m.file_name()
            {
                out.insert(m.to_string_lossy().replace('-', "_"));
            }
            at = d
                .parent()
                .filter(|p| p.starts_with(sys.join("devices")) && *p != sys.join("devices"))
                .map(Path::to_path_buf);
        }
    }
    Ok(())
}

/// The modules every device under `/`, `/boot`, `/usr` and swap of the
/// recovered machine needs: its drivers ([`block_modules`] in `sys`) and the
/// file systems' own (`ext4` also serves ext2 and ext3). `devices`: (the
/// device here, its mount point or `swap`, its file-system type).
pub fn needed_modules(
    sys: &Path,
    devices: &[(String, String, String)],
) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for (dev, at, fstype) in devices {
        if !matches!(at.as_str(), "/" | "/boot" | "/usr" | "swap") {
            continue;
        }
        out.extend(
            block_modules(sys, dev).with_context(|| format!("the drivers of {dev} ({at})"))?,
        );
        match fstype.as_str() {
            "ext2" | "ext3" | "ext4" => {
                out.insert("ext4".into());
            }
            "xfs" | "btrfs" => {
                out.insert(fstype.clone());
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn drivers_from_sysfs_through_dm_and_md() {
        use std::os::unix::fs::symlink;
        let t = tempfile::tempdir().unwrap();
        let sys = t.path();
        let mk = |p: &str| std::fs::create_dir_all(sys.join(p)).unwrap();
        let pci = "devices/pci0000:00/0000:00:04.0";
        mk(&format!("{pci}/virtio1/block/vda/vda2"));
        std::fs::write(
            sys.join(format!("{pci}/virtio1/block/vda/vda2/partition")),
            "2",
        )
        .unwrap();
        for (drv, module) in [
            ("bus/virtio/drivers/virtio_blk", "virtio_blk"),
            ("bus/pci/drivers/virtio-pci", "virtio_pci"),
        ] {
            mk(drv);
            mk(&format!("module/{module}"));
            symlink(
                sys.join(format!("module/{module}")),
                sys.join(drv).join("module"),
            )
            .unwrap();
        }
        symlink(
            sys.join("bus/virtio/drivers/virtio_blk"),
            sys.join(format!("{pci}/virtio1/driver")),
        )
        .unwrap();
        symlink(
            sys.join("bus/pci/drivers/virtio-pci"),
            sys.join(format!("{pci}/driver")),
        )
        .unwrap();
        symlink(
            sys.join(format!("{pci}/virtio1")),
            sys.join(format!("{pci}/virtio1/block/vda/device")),
        )
        .unwrap();
        mk("devices/virtual/block/md127/md");
        std::fs::write(sys.join("devices/virtual/block/md127/md/level"), "raid1\n").unwrap();
        mk("devices/virtual/block/md127/slaves");
        mk("devices/virtual/block/dm-0/dm");
        std::fs::write(sys.join("devices/virtual/block/dm-0/dm/uuid"), "LVM-abc").unwrap();
        mk("devices/virtual/block/dm-0/slaves");
        mk("class/block");
        for (n, at) in [
            ("vda", format!("{pci}/virtio1/block/vda")),
            ("vda2", format!("{pci}/virtio1/block/vda/vda2")),
            ("md127", "devices/virtual/block/md127".into()),
            ("dm-0", "devices/virtual/block/dm-0".into()),
        ] {
            symlink(sys.join(at), sys.join("class/block").join(n)).unwrap();
        }
        symlink(
            sys.join("class/block/vda2"),
            sys.join("devices/virtual/block/md127/slaves/vda2"),
        )
        .unwrap();
        symlink(
            sys.join("class/block/md127"),
            sys.join("devices/virtual/block/dm-0/slaves/md127"),
        )
        .unwrap();
        let mut out = BTreeSet::new();
        walk_block(sys, "dm-0", &mut out, &mut BTreeSet::new()).unwrap();
        assert_eq!(out, set(&["dm_mod", "raid1", "virtio_blk", "virtio_pci"]));
        let e = walk_block(sys, "sdz", &mut out, &mut BTreeSet::new()).unwrap_err();
        assert!(format!("{e:#}").contains("sdz"), "{e:#}");
    }
}
