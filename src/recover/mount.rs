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
                // mkfs.ext4 leaves the inode tables for a kernel thread
                // to zero after the first mount (lazy_itable_init): that
                // thread would write the whole table area while the
                // restore runs. noinit_itable holds it off for this mount;
                // the restored system's first boot starts it.
                ("ext4", "/") => "noinit_itable".to_string(),
                (_, "/") => String::new(),
                // A bind mount of a directory in a subvolume (a layout
                // saved before capture dropped them, or edited): not a
                // mount to make.
                ("btrfs", _) if crate::layout::capture::is_bind_mount(m, fs.btrfs.as_ref()) => {
                    return None;
                }
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
    if !crate::sys::mount::is_mounted(root) {
        return Ok(());
    }
    Cmd::new("umount")
        .arg("--recursive")
        .arg(root)
        .output()
        .with_context(|| format!("unmounting the target tree {}", root.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{Filesystem, Mount};

    fn fs(device: &str, fstype: &str) -> Filesystem {
        Filesystem {
            used_bytes: None,
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

    /// As findmnt shows it: a btrfs mount names its subvolume in the
    /// options (`subvol=/@`, also for a bind of a directory in it).
    fn mnt(target: &str, source: &str, fstype: &str, fsroot: Option<&str>) -> Mount {
        let options = match (fstype, fsroot) {
            ("btrfs", Some(r)) => {
                let sub = r.match_indices('/').nth(1).map_or(r, |(i, _)| &r[..i]);
                format!("rw,relatime,subvolid=257,subvol={sub}")
            }
            _ => "rw,relatime".into(),
        };
        Mount {
            target: target.into(),
            source: source.into(),
            fstype: fstype.into(),
            options,
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
            // A bind of a directory in subvolume @ (what systemd's
            // ProtectSystem= shows a service): no mount to make.
            mnt("/usr", "/dev/vg1/data", "btrfs", Some("/@/usr")),
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
                ("/".into(), "/dev/vg0/root".into(), "noinit_itable".into()),
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
    fn btrfs_subvolumes_are_mounts_and_directories_in_them_binds() {
        let b = crate::layout::BtrfsInfo {
            subvolumes: vec!["@".into(), "@/srv/e2e".into()],
            default_subvolume: Some("@".into()),
        };
        let bind = |m: &Mount, b| crate::layout::capture::is_bind_mount(m, b);
        let d = "/dev/vda3";
        assert!(!bind(&mnt("/", d, "btrfs", Some("/@")), Some(&b)));
        assert!(bind(&mnt("/usr", d, "btrfs", Some("/@/usr")), Some(&b)));
        // Not recorded, but what its subvol= option names.
        assert!(!bind(&mnt("/home", d, "btrfs", Some("/@home")), Some(&b)));
        assert!(!bind(&mnt("/home", d, "btrfs", Some("/@home")), None));
        // A nested subvolume mounted by itself: recorded.
        let mut e2e = mnt("/e2e", d, "btrfs", Some("/@/srv/e2e"));
        e2e.options = "rw,subvol=/@/srv/e2e".into();
        assert!(!bind(&e2e, Some(&b)));
        // Top level (no fsroot) and an ext4 file system's own root: mounts.
        assert!(!bind(&mnt("/top", d, "btrfs", None), None));
        assert!(!bind(&mnt("/", "/dev/sda1", "ext4", None), None));
        assert!(bind(
            &mnt("/srv/www", "/dev/sda1", "ext4", Some("/var/www")),
            None
        ));
    }

    #[test]
    fn no_root_mount_is_refused() {
        let e = mount_all(&[]).unwrap_err().to_string();
        assert!(e.contains("no file system mounted at /"), "{e}");
    }
}
