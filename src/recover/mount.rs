//! The target tree: the rebuilt file systems mounted under the target
//! directory (`/mnt/target`) as the host had them, parents first, so the
//! restore writes every file onto the file system it came from.
//!
//! Only the layout's own file systems are mounted (no tmpfs, no binds, no
//! swap). Options are not the recorded ones: the restore needs none of them
//! (and `subvolid=` of a re-created btrfs may differ); only a btrfs
//! subvolume is mounted by its path with `subvol=`, and FAT keeps the
//! options that stand in for owners and modes (uid, gid, umask, masks).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::exec::Cmd;
use crate::layout::Layout;

/// One mount of the target tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetMount {
    /// Device on this machine (partitions renamed by the disk mapping).
    pub device: String,
    pub fstype: String,
    /// `subvol=...` for a btrfs subvolume, else empty.
    pub options: String,
    /// Mount point in the host's tree (`/`, `/home`).
    pub target: String,
    /// Where it is mounted here (`/mnt/target/home`).
    pub dir: PathBuf,
}

impl TargetMount {
    pub fn argv(&self) -> Vec<String> {
        let mut v = vec!["mount".to_string(), "-t".into(), self.fstype.clone()];
        if !self.options.is_empty() {
            v.extend(["-o".into(), self.options.clone()]);
        }
        v.push(self.device.clone());
        v.push(self.dir.display().to_string());
        v
    }
}

/// The mounts of the target tree in mount order. `dev` maps source device
/// paths to this machine's (see [`super::plan::device_map`]).
pub fn plan(layout: &Layout, dev: &BTreeMap<String, String>, root: &Path) -> Vec<TargetMount> {
    let mut out: Vec<TargetMount> = layout
        .mounts
        .iter()
        .filter(|m| m.fstype != "swap")
        .filter_map(|m| {
            let fs = layout
                .filesystems
                .iter()
                .find(|f| f.device == m.source && f.fstype == m.fstype)?;
            let fsroot = m.fsroot.as_deref().unwrap_or("/");
            let options = match (fs.fstype.as_str(), fsroot) {
                // FAT has no owners or modes: they come from these options,
                // and chmod(2) to a mode they do not give fails (EPERM), so
                // the restore needs the host's (an ESP is often umask=0077).
                ("vfat", "/") => m
                    .options
                    .split(',')
                    .filter(|o| {
                        let k = o.split('=').next().unwrap_or("");
                        ["uid", "gid", "umask", "fmask", "dmask", "allow_utime"].contains(&k)
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                (_, "/") => String::new(),
                ("btrfs", sub) => format!("subvol={sub}"),
                // A bind mount of a directory: its files come with the
                // file system it belongs to.
                _ => return None,
            };
            Some(TargetMount {
                device: dev.get(&fs.device).cloned().unwrap_or(fs.device.clone()),
                fstype: fs.fstype.clone(),
                options,
                target: m.target.clone(),
                dir: root.join(m.target.trim_start_matches('/')),
            })
        })
        .collect();
    // Parents before children: `/` before `/boot` before `/boot/efi`. A
    // stable sort keeps the host's order among equals.
    out.sort_by_key(|m| depth(&m.target));
    // The same mount point twice (a file system mounted over another):
    // the last one wins on the host, so keep the last.
    let mut seen = std::collections::BTreeSet::new();
    let mut keep: Vec<TargetMount> = out
        .into_iter()
        .rev()
        .filter(|m| seen.insert(m.target.clone()))
        .collect();
    keep.reverse();
    keep
}

fn depth(target: &str) -> usize {
    target.split('/').filter(|c| !c.is_empty()).count()
}

/// Mounts the tree; a failure names the device and mount point.
pub fn mount_all(mounts: &[TargetMount]) -> Result<()> {
    if !mounts.iter().any(|m| m.target == "/") {
        anyhow::bail!(
            "the layout records no file system mounted at /: nothing to restore onto (was the layout saved on the host itself?)"
        );
    }
    for m in mounts {
        // The mount point lives on the parent file system mounted before.
        std::fs::create_dir_all(&m.dir)
            .with_context(|| format!("creating mount point {}", m.dir.display()))?;
        let argv = m.argv();
        Cmd::new(&argv[0])
            .args(&argv[1..])
            .output()
            .with_context(|| format!("mounting {} ({}) for the restore", m.device, m.target))?;
    }
    Ok(())
}

/// Unmounts everything below `root` (including the finalize binds), deepest
/// first; quiet when nothing is mounted.
pub fn unmount_all(root: &Path) -> Result<()> {
    if !is_mounted(root) {
        return Ok(());
    }
    Cmd::new("umount")
        .arg("--recursive")
        .arg(root)
        .output()
        .with_context(|| format!("unmounting the target tree {}", root.display()))?;
    Ok(())
}

/// Whether `dir` is a mount point (listed in /proc/self/mountinfo).
pub fn is_mounted(dir: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = dir.display().to_string();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| unescape(m) == want)
}

/// The mount points below `dir` of file systems on block devices (from
/// /proc/self/mountinfo): those a restore into `dir` wrote to, without
/// proc, sysfs, bind-mounted /dev or a network share that could hang a
/// sync. `dir` is taken as given (canonical).
pub fn disk_mounts_under(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|info| disk_mounts_in(&info, dir))
        .unwrap_or_default()
}

/// [`disk_mounts_under`] of a mountinfo text: field 5 is the mount point;
/// after the ` - ` separator come the type and the source (proc(5)).
fn disk_mounts_in(info: &str, dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<std::path::PathBuf> = info
        .lines()
        .filter_map(|l| {
            let point = l.split(' ').nth(4)?;
            let (_, tail) = l.split_once(" - ")?;
            let source = tail.split(' ').nth(1)?;
            source
                .starts_with("/dev/")
                .then(|| std::path::PathBuf::from(unescape(point)))
        })
        .filter(|m| m.starts_with(dir) && m != dir)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{Filesystem, Mount};

    fn fs(device: &str, fstype: &str) -> Filesystem {
        Filesystem {
            device: device.into(),
            fstype: fstype.into(),
            uuid: None,
            label: None,
            ext: None,
            xfs: None,
            btrfs: None,
            vfat: None,
        }
    }

    fn mnt(target: &str, source: &str, fstype: &str, fsroot: Option<&str>) -> Mount {
        Mount {
            target: target.into(),
            source: source.into(),
            fstype: fstype.into(),
            options: "rw,relatime,subvolid=257".into(),
            fsroot: fsroot.map(str::to_string),
        }
    }

    #[test]
    fn parents_first_partitions_renamed_binds_and_tmpfs_skipped() {
        let mut l = Layout::new("h".into());
        l.filesystems = vec![
            fs("/dev/sda2", "vfat"),
            fs("/dev/vg0/root", "ext4"),
            fs("/dev/vg1/data", "btrfs"),
            fs("/dev/vg0/swap", "swap"),
        ];
        l.mounts = vec![
            Mount {
                options: "rw,relatime,fmask=0077,dmask=0077,codepage=437,iocharset=ascii,errors=remount-ro".into(),
                ..mnt("/boot/efi", "/dev/sda2", "vfat", Some("/"))
            },
            mnt("/data/home", "/dev/vg1/data", "btrfs", Some("/@home")),
            mnt("/", "/dev/vg0/root", "ext4", Some("/")),
            mnt("/tmp", "tmpfs", "tmpfs", Some("/")),
            mnt("/srv/www", "/dev/vg0/root", "ext4", Some("/var/www")),
            mnt("/data", "/dev/vg1/data", "btrfs", Some("/@")),
        ];
        let dev: BTreeMap<String, String> = [("/dev/sda2".into(), "/dev/nvme0n1p2".into())].into();
        let p = plan(&l, &dev, Path::new("/mnt/target"));
        let got: Vec<(String, String, String)> = p
            .iter()
            .map(|m| (m.target.clone(), m.device.clone(), m.options.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/".into(), "/dev/vg0/root".into(), "".into()),
                ("/data".into(), "/dev/vg1/data".into(), "subvol=/@".into()),
                (
                    "/boot/efi".into(),
                    "/dev/nvme0n1p2".into(),
                    "fmask=0077,dmask=0077".into()
                ),
                (
                    "/data/home".into(),
                    "/dev/vg1/data".into(),
                    "subvol=/@home".into()
                ),
            ]
        );
        assert_eq!(p[2].dir, Path::new("/mnt/target/boot/efi"));
        assert_eq!(
            p[1].argv(),
            [
                "mount",
                "-t",
                "btrfs",
                "-o",
                "subvol=/@",
                "/dev/vg1/data",
                "/mnt/target/data"
            ]
        );
    }

    #[test]
    fn no_root_mount_is_refused() {
        let e = mount_all(&[]).unwrap_err().to_string();
        assert!(e.contains("no file system mounted at /"), "{e}");
    }

    #[test]
    fn disk_mounts_below_a_target() {
        let info = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
40 27 253:1 / /mnt/target rw - ext4 /dev/mapper/vg0-root rw
41 40 253:2 / /mnt/target/home rw - xfs /dev/mapper/vg0-home rw
42 40 0:6 / /mnt/target/dev rw - devtmpfs devtmpfs rw
43 40 0:21 / /mnt/target/proc rw - proc proc rw
44 40 0:50 / /mnt/target/srv/share rw - nfs4 server:/export rw
45 40 8:1 / /mnt/target/boot\\040efi rw - vfat /dev/vda1 rw
46 27 8:2 / /mnt/targetX rw - ext4 /dev/vda2 rw
";
        assert_eq!(
            disk_mounts_in(info, Path::new("/mnt/target")),
            vec![
                std::path::PathBuf::from("/mnt/target/boot efi"),
                std::path::PathBuf::from("/mnt/target/home"),
            ]
        );
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert!(is_mounted(Path::new("/proc")));
        assert!(!is_mounted(Path::new("/proc/self")));
    }
}
