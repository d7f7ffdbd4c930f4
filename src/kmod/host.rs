//! Reads what the host's own hardware and mounts need from `/proc` and
//! `/sys` (under a root prefix, so tests can point it at a fake tree).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::HostModules;

/// Device classes whose drivers a recovery needs: the disks and the NICs.
const CLASSES: [&str; 2] = ["block", "net"];

pub fn detect(root: &Path) -> Result<HostModules> {
    Ok(HostModules {
        loaded: loaded_modules(&root.join("proc/modules"))?,
        modaliases: modaliases(root)?,
        filesystems: filesystems(root)?,
    })
}

/// Reads a file that may legitimately be absent; `None` if it is.
fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Names in `/proc/modules` (first field of each line, see proc(5)). A
/// kernel without loadable module support has no such file; that is not an
/// error, there is just nothing loaded.
fn loaded_modules(path: &Path) -> Result<Vec<String>> {
    let Some(text) = read_optional(path)? else {
        log::debug!("{} not found: no loaded modules", path.display());
        return Ok(Vec::new());
    };
    let names: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(super::glob::module_name)
        .collect();
    Ok(names.into_iter().collect())
}

/// The `modalias` of every block and network device and of each of its
/// parents up to `/sys/devices`: a disk's own modalias names the disk
/// driver (`virtio:d00000002...` → virtio_blk, `scsi:t-0x00` → sd_mod), its
/// parents name the bus and controller drivers (`pci:...` → ahci, nvme,
/// virtio_pci). Virtual devices (loop, dm-*, lo, bridges) have no `device`
/// link and are skipped.
fn modaliases(root: &Path) -> Result<Vec<String>> {
    let sys_devices = root.join("sys/devices");
    let Ok(sys_devices) = sys_devices.canonicalize() else {
        log::debug!("{} not found: no device modaliases", sys_devices.display());
        return Ok(Vec::new());
    };
    let mut out = BTreeSet::new();
    for class in CLASSES {
        let dir = root.join("sys/class").join(class);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
            // The class entry and its `device` are relative symlinks into
            // /sys/devices, so they resolve inside the root prefix.
            let Ok(mut dev) = entry.path().join("device").canonicalize() else {
                continue;
            };
            while dev.starts_with(&sys_devices) && dev != sys_devices {
                if let Some(alias) = read_optional(&dev.join("modalias"))? {
                    let alias = alias.trim();
                    if !alias.is_empty() {
                        out.insert(alias.to_string());
                    }
                }
                if !dev.pop() {
                    break;
                }
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// Filesystem types mounted now (`/proc/self/mounts`, third field per
/// fstab(5)) and those listed in `/etc/fstab`: recovery recreates and mounts
/// the latter even if they are not mounted right now (`noauto` /boot/efi).
fn filesystems(root: &Path) -> Result<Vec<String>> {
    let mut out = BTreeSet::new();
    for file in [root.join("proc/self/mounts"), root.join("etc/fstab")] {
        let Some(text) = read_optional(&file)? else {
            continue;
        };
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            if let Some(fstype) = line.split_whitespace().nth(2) {
                // fstab may list several types (`ext4,ext3`) or `auto`.
                out.extend(
                    fstype
                        .split(',')
                        .filter(|t| !t.is_empty() && !matches!(*t, "auto" | "swap" | "none"))
                        .map(str::to_string),
                );
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// The module names and aliases that provide filesystem type `fstype`, in
/// the order to try them: the module of that name, then the `fs-TYPE` alias
/// that `MODULE_ALIAS_FS()` declares and the kernel requests when mounting
/// (fs/filesystems.c `get_fs_type()`), which maps e.g. ext3 to ext4.
/// FUSE subtypes (`fuse.sshfs`) are all served by the fuse module.
pub fn filesystem_candidates(fstype: &str) -> Vec<String> {
    let base = match fstype.split_once('.') {
        Some((base, _)) => base,
        None => fstype,
    };
    let mut out = vec![base.to_string(), format!("fs-{base}")];
    if base == "vfat" || base == "msdos" {
        // FAT needs a codepage and a charset at mount time; Debian's
        // defaults are cp437 (FAT_DEFAULT_CODEPAGE) and ascii or utf8
        // (FAT_DEFAULT_IOCHARSET, or `iocharset=` in fstab).
        out.extend(["nls_cp437", "nls_ascii", "nls_utf8"].map(String::from));
    }
    out
}

/// The root under which `modules_dir` (`ROOT/lib/modules/KVER` or
/// `ROOT/usr/lib/modules/KVER`) lives, to find that system's modprobe.d.
pub fn root_of_modules_dir(modules_dir: &Path) -> Option<PathBuf> {
    let lib_modules = modules_dir.parent()?;
    if lib_modules.file_name()? != "modules" {
        return None;
    }
    let lib = lib_modules.parent()?;
    if lib.file_name()? != "lib" {
        return None;
    }
    let above = lib.parent()?;
    Some(if above.file_name().is_some_and(|n| n == "usr") {
        above.parent()?.to_path_buf()
    } else {
        above.to_path_buf()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    /// A fake /sys with one virtio disk, one NVMe disk behind a PCI bridge,
    /// one virtio NIC, a loop device and lo.
    fn fake_root() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let w = |p: &str, s: &str| {
            let p = r.join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, s).unwrap();
        };
        let pci = "sys/devices/pci0000:00";
        w(
            &format!("{pci}/0000:00:02.0/modalias"),
            "pci:v00001AF4d00001042sv00001AF4sd00001042bc01sc80i00\n",
        );
        w(
            &format!("{pci}/0000:00:02.0/virtio1/modalias"),
            "virtio:d00000002v00001AF4\n",
        );
        fs::create_dir_all(r.join(format!("{pci}/0000:00:02.0/virtio1/block/vda"))).unwrap();
        w(
            &format!("{pci}/0000:00:1c.0/modalias"),
            "pci:v00008086d0000A110sv00000000sd00000000bc06sc04i00\n",
        );
        w(
            &format!("{pci}/0000:00:1c.0/0000:01:00.0/modalias"),
            "pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc08i02\n",
        );
        // The nvme class device has no modalias of its own.
        fs::create_dir_all(r.join(format!(
            "{pci}/0000:00:1c.0/0000:01:00.0/nvme/nvme0/nvme0n1"
        )))
        .unwrap();
        w(
            &format!("{pci}/0000:00:03.0/virtio2/modalias"),
            "virtio:d00000001v00001AF4\n",
        );
        fs::create_dir_all(r.join(format!("{pci}/0000:00:03.0/virtio2/net/eth0"))).unwrap();
        fs::create_dir_all(r.join("sys/devices/virtual/block/loop0")).unwrap();
        fs::create_dir_all(r.join("sys/devices/virtual/net/lo")).unwrap();
        fs::create_dir_all(r.join("sys/class/block")).unwrap();
        fs::create_dir_all(r.join("sys/class/net")).unwrap();
        let link = |target: &str, at: &str| symlink(target, r.join(at)).unwrap();
        let up = "../../devices/pci0000:00";
        link(
            &format!("{up}/0000:00:02.0/virtio1/block/vda"),
            "sys/class/block/vda",
        );
        link(
            &format!("{up}/0000:00:1c.0/0000:01:00.0/nvme/nvme0/nvme0n1"),
            "sys/class/block/nvme0n1",
        );
        link("../../devices/virtual/block/loop0", "sys/class/block/loop0");
        link(
            &format!("{up}/0000:00:03.0/virtio2/net/eth0"),
            "sys/class/net/eth0",
        );
        link("../../devices/virtual/net/lo", "sys/class/net/lo");
        link(
            "../../../virtio1",
            &format!("{pci}/0000:00:02.0/virtio1/block/vda/device"),
        );
        link(
            "../../nvme0",
            &format!("{pci}/0000:00:1c.0/0000:01:00.0/nvme/nvme0/nvme0n1/device"),
        );
        link(
            "../../../virtio2",
            &format!("{pci}/0000:00:03.0/virtio2/net/eth0/device"),
        );
        w(
            "proc/modules",
            "virtio_blk 24576 3 - Live 0x0000000000000000\ncrc32c-intel 24576 1 - Live 0x0\n",
        );
        w(
            "proc/self/mounts",
            "/dev/vda1 / ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n\
             /dev/vda15 /boot/efi vfat rw 0 0\nsshfs#x /mnt fuse.sshfs rw 0 0\n",
        );
        w(
            "etc/fstab",
            "# <fs> <mp> <type>\nUUID=1 /srv xfs defaults 0 2\nUUID=2 none swap sw 0 0\n",
        );
        t
    }

    #[test]
    fn detects_loaded_modaliases_and_filesystems() {
        let t = fake_root();
        let h = detect(t.path()).unwrap();
        assert_eq!(h.loaded, ["crc32c_intel", "virtio_blk"]);
        assert_eq!(
            h.modaliases,
            [
                "pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc08i02",
                "pci:v00001AF4d00001042sv00001AF4sd00001042bc01sc80i00",
                "pci:v00008086d0000A110sv00000000sd00000000bc06sc04i00",
                "virtio:d00000001v00001AF4",
                "virtio:d00000002v00001AF4",
            ]
        );
        assert_eq!(h.filesystems, ["ext4", "fuse.sshfs", "proc", "vfat", "xfs"]);
    }

    #[test]
    fn empty_root_is_not_an_error() {
        let t = tempfile::tempdir().unwrap();
        let h = detect(t.path()).unwrap();
        assert!(h.loaded.is_empty() && h.modaliases.is_empty() && h.filesystems.is_empty());
    }

    #[test]
    fn filesystem_candidates_cover_fuse_and_fat() {
        assert_eq!(
            filesystem_candidates("fuse.sshfs")[..2],
            ["fuse", "fs-fuse"]
        );
        assert!(filesystem_candidates("vfat").contains(&"nls_cp437".to_string()));
        assert_eq!(filesystem_candidates("ext3"), ["ext3", "fs-ext3"]);
    }

    #[test]
    fn root_of_modules_dir_handles_usr_and_prefix() {
        let r = |p: &str| root_of_modules_dir(Path::new(p));
        assert_eq!(r("/lib/modules/6.1.0-56-amd64"), Some(PathBuf::from("/")));
        assert_eq!(r("/usr/lib/modules/6.1"), Some(PathBuf::from("/")));
        assert_eq!(r("/mnt/x/lib/modules/6.1"), Some(PathBuf::from("/mnt/x")));
        assert_eq!(r("/tmp/fake/6.1"), None);
    }
}
