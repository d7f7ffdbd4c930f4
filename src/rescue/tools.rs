//! The tools recover needs, where to find them, and which Debian package
//! brings each. What is required follows from the host: an xfs file system
//! makes mkfs.xfs required, md arrays make mdadm required.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::host::{BootMode, HostFacts};

/// When a tool must be present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Need {
    /// Recovery cannot work without it.
    Always,
    /// Required when the host has a mounted file system of this type.
    Fs(&'static str),
    /// Required when md arrays exist.
    Md,
    /// Required when LVM volumes exist.
    Lvm,
    /// Required when LUKS containers are open.
    Luks,
    /// Required when swap is active.
    Swap,
    /// Required when the host booted with UEFI.
    Uefi,
    /// Taken when present.
    Optional,
}

#[derive(Debug, Clone, Copy)]
pub struct ToolSpec {
    /// Name looked up in the tool path, or an absolute path.
    pub name: &'static str,
    /// Debian package that provides it.
    pub package: &'static str,
    pub need: Need,
}

const fn t(name: &'static str, package: &'static str, need: Need) -> ToolSpec {
    ToolSpec {
        name,
        package,
        need,
    }
}

use Need::*;

/// Every tool the rescue system carries.
pub const TOOLS: &[ToolSpec] = &[
    // Shells and the basics every script in the rescue system uses.
    t("sh", "dash", Always),
    t("bash", "bash", Always),
    t("cat", "coreutils", Always),
    t("chmod", "coreutils", Always),
    t("chown", "coreutils", Always),
    t("chroot", "coreutils", Always),
    t("cp", "coreutils", Always),
    t("date", "coreutils", Always),
    t("dd", "coreutils", Always),
    t("df", "coreutils", Always),
    t("du", "coreutils", Always),
    t("echo", "coreutils", Always),
    t("head", "coreutils", Always),
    // /etc/profile and bash completion call `id -u`.
    t("id", "coreutils", Always),
    t("ln", "coreutils", Always),
    t("ls", "coreutils", Always),
    t("mkdir", "coreutils", Always),
    t("mknod", "coreutils", Always),
    t("mv", "coreutils", Always),
    t("readlink", "coreutils", Always),
    t("rm", "coreutils", Always),
    t("sha256sum", "coreutils", Always),
    t("sleep", "coreutils", Always),
    t("sort", "coreutils", Always),
    t("stat", "coreutils", Always),
    t("sync", "coreutils", Always),
    t("tail", "coreutils", Always),
    t("tee", "coreutils", Always),
    t("touch", "coreutils", Always),
    t("tr", "coreutils", Always),
    t("uname", "coreutils", Always),
    t("wc", "coreutils", Always),
    t("grep", "grep", Always),
    t("sed", "sed", Always),
    t("awk", "mawk", Optional),
    t("find", "findutils", Always),
    t("xargs", "findutils", Always),
    t("gzip", "gzip", Always),
    t("less", "less", Optional),
    t("vi", "vim-tiny", Optional),
    t("nano", "nano", Optional),
    t("ps", "procps", Optional),
    t("free", "procps", Optional),
    t("kill", "procps", Optional),
    t("strace", "strace", Optional),
    // What an admin reaches for when recover fails on unknown hardware:
    // look at the disks and their health, partition by hand, see the
    // controllers and the links.
    t("parted", "parted", Optional),
    t("partprobe", "parted", Optional),
    t("sgdisk", "gdisk", Optional),
    t("gdisk", "gdisk", Optional),
    t("smartctl", "smartmontools", Optional),
    t("nvme", "nvme-cli", Optional),
    t("hdparm", "hdparm", Optional),
    t("lspci", "pciutils", Optional),
    // util-linux: partitions, mounts, block devices.
    t("mount", "mount", Always),
    t("umount", "mount", Always),
    t("sfdisk", "fdisk", Always),
    t("fdisk", "fdisk", Optional),
    t("blkid", "util-linux", Always),
    t("lsblk", "util-linux", Always),
    t("wipefs", "util-linux", Always),
    t("findmnt", "util-linux", Always),
    t("blockdev", "util-linux", Always),
    t("partx", "util-linux", Optional),
    t("losetup", "mount", Optional),
    t("dmesg", "util-linux", Optional),
    t("mkswap", "util-linux", Swap),
    t("swapon", "mount", Swap),
    t("swapoff", "mount", Swap),
    t("agetty", "util-linux", Optional),
    t("setsid", "util-linux", Optional),
    // kmod: modprobe must work for every included module.
    t("kmod", "kmod", Always),
    t("modprobe", "kmod", Always),
    t("insmod", "kmod", Always),
    t("rmmod", "kmod", Always),
    t("lsmod", "kmod", Always),
    t("modinfo", "kmod", Always),
    t("depmod", "kmod", Always),
    // The kernel runs /sbin/modprobe to load a file system module on
    // mount (request_module, /proc/sys/kernel/modprobe): on a merged-/usr
    // host this brings the /sbin -> usr/sbin link, without which mounting
    // the backup disk says "unknown filesystem type 'ext4'".
    t("/sbin/modprobe", "kmod", Always),
    // udev: /dev/disk/by-* links.
    t("udevadm", "udev", Optional),
    t("/lib/systemd/systemd-udevd", "udev", Optional),
    // File systems.
    t("mkfs.ext4", "e2fsprogs", Fs("ext4")),
    t("mke2fs", "e2fsprogs", Fs("ext4")),
    t("e2fsck", "e2fsprogs", Fs("ext4")),
    t("tune2fs", "e2fsprogs", Fs("ext4")),
    t("dumpe2fs", "e2fsprogs", Fs("ext4")),
    t("resize2fs", "e2fsprogs", Fs("ext4")),
    t("mkfs.ext2", "e2fsprogs", Fs("ext2")),
    t("mkfs.ext3", "e2fsprogs", Fs("ext3")),
    t("mkfs.xfs", "xfsprogs", Fs("xfs")),
    t("xfs_repair", "xfsprogs", Fs("xfs")),
    t("xfs_admin", "xfsprogs", Fs("xfs")),
    // xfs_info is a script around xfs_db and xfs_spaceman; layout capture
    // runs it inside the rescue system.
    t("xfs_info", "xfsprogs", Fs("xfs")),
    t("xfs_db", "xfsprogs", Fs("xfs")),
    t("xfs_spaceman", "xfsprogs", Fs("xfs")),
    t("mkfs.vfat", "dosfstools", Fs("vfat")),
    t("fsck.vfat", "dosfstools", Fs("vfat")),
    t("mkfs.btrfs", "btrfs-progs", Fs("btrfs")),
    t("btrfs", "btrfs-progs", Fs("btrfs")),
    // RAID, LVM, LUKS.
    t("mdadm", "mdadm", Md),
    t("lvm", "lvm2", Lvm),
    t("dmsetup", "dmsetup", Lvm),
    t("cryptsetup", "cryptsetup-bin", Luks),
    // Boot loader.
    t("grub-install", "grub2-common", Optional),
    t("grub-mkconfig", "grub2-common", Optional),
    t("grub-probe", "grub2-common", Optional),
    t("update-grub", "grub2-common", Optional),
    t("efibootmgr", "efibootmgr", Uefi),
    // Network and remote access.
    t("ip", "iproute2", Optional),
    t("ping", "iputils-ping", Optional),
    t("ss", "iproute2", Optional),
    t("ethtool", "ethtool", Optional),
    t("dhclient", "isc-dhcp-client", Optional),
    t("/sbin/dhclient-script", "isc-dhcp-client", Optional),
    t("sshd", "openssh-server", Optional),
    // OpenSSH 9.8 split sshd: the listener execs sshd-session for each
    // connection and refuses to start without it (release notes of 9.8,
    // "sshd(8): ... split into ... sshd-session"); 10.0 (Debian 13) adds
    // sshd-auth, which sshd-session execs for authentication. Both at
    // their compiled-in paths; absent on Debian 12 (OpenSSH 9.2).
    t("/usr/lib/openssh/sshd-session", "openssh-server", Optional),
    t("/usr/lib/openssh/sshd-auth", "openssh-server", Optional),
    t(
        "/usr/lib/openssh/sftp-server",
        "openssh-sftp-server",
        Optional,
    ),
    // dhclient-script sets the host name from the lease.
    t("hostname", "hostname", Optional),
    t("ssh", "openssh-client", Optional),
    t("scp", "openssh-client", Optional),
    t("ssh-keygen", "openssh-client", Optional),
    // restore --identity https://... (TLS is curl's, see src/backup/identity.rs).
    t("curl", "curl", Optional),
    // Restore.
    t("tar", "tar", Always),
    t("zstd", "zstd", Optional),
    t("xz", "xz-utils", Optional),
    t("rsync", "rsync", Optional),
];

/// Packages whose every command the rescue shell carries once the tool
/// that brings the package in is found: an admin at the rescue shell types
/// `vgs` or `pvcreate`, which on the host are links to `lvm`, and
/// `mdmon`, `integritysetup` or `dmstats` beside the tools recover runs.
pub const WHOLE_PACKAGES: &[&str] = &["lvm2", "mdadm", "cryptsetup-bin", "dmsetup"];

/// The command names (in bin or sbin directories) that `package` provides
/// on the host below `root`, beside `tool` (the path [`find`] returned):
/// the package's file list from dpkg (`/var/lib/dpkg/info/PKG.list` or
/// `PKG:ARCH.list`) when the host has one, otherwise the symlinks in the
/// tool's own directory that point to it (what LVM's names are on every
/// distribution). Only names that exist on the host and run (an
/// executable file, or a link to one) are returned, as host paths, sorted.
pub fn package_commands(root: &Path, package: &str, tool: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let host = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
    // Follows the name's own links below `root` (an absolute link target
    // is inside `root`, as the rescue image will see it).
    let runs = |p: &Path| {
        let mut p = p.to_path_buf();
        for _ in 0..8 {
            match std::fs::read_link(host(&p)) {
                Ok(t) if t.is_absolute() => p = t,
                Ok(t) => p = p.parent().unwrap_or(Path::new("/")).join(t),
                Err(_) => break,
            }
        }
        std::fs::metadata(host(&p))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let info = root.join("var/lib/dpkg/info");
    let list = std::fs::read_dir(&info).ok().and_then(|rd| {
        rd.flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| {
                n.strip_suffix(".list").is_some_and(|stem| {
                    stem == package || stem.split_once(':').is_some_and(|(p, _)| p == package)
                })
            })
            .and_then(|n| std::fs::read_to_string(info.join(n)).ok())
    });
    let mut out: Vec<PathBuf> = match list {
        Some(text) => text
            .lines()
            .map(PathBuf::from)
            .filter(|p| {
                p.parent().is_some_and(|d| {
                    ["/bin", "/sbin", "/usr/bin", "/usr/sbin"]
                        .iter()
                        .any(|b| d == Path::new(b))
                })
            })
            .collect(),
        None => {
            let (Some(dir), Some(name)) = (tool.parent(), tool.file_name()) else {
                return Vec::new();
            };
            std::fs::read_dir(host(dir))
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| {
                    // `vgs -> lvm`, or `vgs -> /usr/sbin/lvm`.
                    std::fs::read_link(e.path()).is_ok_and(|t| {
                        t == tool || (t.file_name() == Some(name) && t.components().count() == 1)
                    })
                })
                .map(|e| dir.join(e.file_name()))
                .collect()
        }
    };
    out.retain(|p| runs(p));
    out.sort();
    out.dedup();
    out
}

impl Need {
    /// Whether this host requires the tool.
    pub fn required(self, host: &HostFacts) -> bool {
        match self {
            Always => true,
            Fs(fs) => host.storage.filesystems.contains(fs),
            Md => host.storage.md,
            Lvm => host.storage.lvm,
            Luks => host.storage.luks,
            Swap => host.storage.swap,
            Uefi => host.boot_mode == BootMode::Uefi,
            Optional => false,
        }
    }
}

/// Finds `name` in `path` (or checks an absolute name), below `root`.
/// Returns the path as the host sees it (without `root`).
pub fn find(root: &Path, name: &str, path: &[PathBuf]) -> Option<PathBuf> {
    let is_exec = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(root.join(p.strip_prefix("/").unwrap_or(p)))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.starts_with('/') {
        let p = PathBuf::from(name);
        return is_exec(&p).then_some(p);
    }
    path.iter().map(|d| d.join(name)).find(|p| is_exec(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn exe(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"\x7fELF").unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// The README's table of what the rescue system carries names every
    /// tool of [`TOOLS`] (by its file name), so the two cannot drift.
    #[test]
    fn the_readme_lists_every_tool() {
        let readme = include_str!("../../README.md");
        let table = readme
            .split("<!-- tools -->")
            .nth(1)
            .and_then(|t| t.split("<!-- /tools -->").next())
            .expect("README.md has the <!-- tools --> table");
        let missing: Vec<&str> = TOOLS
            .iter()
            .map(|t| t.name.rsplit('/').next().unwrap())
            .filter(|n| !table.contains(&format!("`{n}`")))
            .collect();
        assert!(
            missing.is_empty(),
            "README.md's tools table lacks {missing:?}"
        );
    }

    /// Debian 13's sshd (OpenSSH 10.0) execs sshd-session and sshd-auth
    /// at their compiled-in paths: where the host has them they are found
    /// there and go into the image with sshd; a Debian 12 host (OpenSSH
    /// 9.2) has neither, and nothing is required.
    #[test]
    fn sshd_helpers_of_openssh_10_are_taken_when_present() {
        let helpers: Vec<&ToolSpec> = TOOLS
            .iter()
            .filter(|t| t.name.starts_with("/usr/lib/openssh/sshd-"))
            .collect();
        let names: Vec<&str> = helpers.iter().map(|t| t.name).collect();
        assert_eq!(
            names,
            [
                "/usr/lib/openssh/sshd-session",
                "/usr/lib/openssh/sshd-auth"
            ]
        );
        assert!(
            helpers
                .iter()
                .all(|t| t.need == Optional && t.package == "openssh-server")
        );
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for h in &names {
            assert_eq!(find(r, h, &[]), None, "a Debian 12 host lacks {h}");
        }
        exe(&r.join("usr/lib/openssh/sshd-session"));
        exe(&r.join("usr/lib/openssh/sshd-auth"));
        for h in &names {
            assert_eq!(find(r, h, &[]), Some(PathBuf::from(h)));
        }
    }

    #[test]
    fn lvm_names_from_dpkg_only_what_exists_and_runs() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        exe(&r.join("usr/sbin/lvm"));
        symlink("lvm", r.join("usr/sbin/vgs")).unwrap();
        symlink("lvm", r.join("usr/sbin/pvcreate")).unwrap();
        symlink("usr/sbin", r.join("sbin")).unwrap();
        // A config file and a man page are no commands; a listed name the
        // host lacks is left out; a non-executable file is left out.
        std::fs::write(r.join("usr/sbin/lvmdump"), b"#!/bin/sh\n").unwrap();
        std::fs::create_dir_all(r.join("var/lib/dpkg/info")).unwrap();
        std::fs::write(
            r.join("var/lib/dpkg/info/lvm2.list"),
            "/.\n/etc/lvm/lvm.conf\n/sbin\n/sbin/lvm\n/sbin/vgs\n/sbin/pvcreate\n/sbin/lvmdump\n/sbin/vgchange\n/usr/share/man/man8/vgs.8.gz\n",
        )
        .unwrap();
        let got = package_commands(r, "lvm2", Path::new("/usr/sbin/lvm"));
        assert_eq!(
            got,
            ["/sbin/lvm", "/sbin/pvcreate", "/sbin/vgs"].map(PathBuf::from)
        );
    }

    #[test]
    fn a_multiarch_list_name_counts() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        exe(&r.join("usr/sbin/cryptsetup"));
        exe(&r.join("usr/sbin/veritysetup"));
        std::fs::create_dir_all(r.join("var/lib/dpkg/info")).unwrap();
        std::fs::write(
            r.join("var/lib/dpkg/info/cryptsetup-bin:amd64.list"),
            "/usr/sbin/cryptsetup\n/usr/sbin/veritysetup\n",
        )
        .unwrap();
        // Another package with a prefix of the name is not it.
        std::fs::write(
            r.join("var/lib/dpkg/info/cryptsetup-bin-extra.list"),
            "/usr/sbin/x\n",
        )
        .unwrap();
        let got = package_commands(r, "cryptsetup-bin", Path::new("/usr/sbin/cryptsetup"));
        assert_eq!(
            got,
            ["/usr/sbin/cryptsetup", "/usr/sbin/veritysetup"].map(PathBuf::from)
        );
    }

    #[test]
    fn without_dpkg_the_links_beside_the_tool() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        exe(&r.join("usr/sbin/lvm"));
        exe(&r.join("usr/sbin/other"));
        // Resolved inside the root, not on the machine running the test.
        symlink("/usr/sbin/nothere", r.join("usr/sbin/dangling")).unwrap();
        symlink("lvm", r.join("usr/sbin/lvs")).unwrap();
        symlink("/usr/sbin/lvm", r.join("usr/sbin/vgchange")).unwrap();
        symlink("other", r.join("usr/sbin/notlvm")).unwrap();
        symlink("../lib/lvm", r.join("usr/sbin/elsewhere")).unwrap();
        let got = package_commands(r, "lvm2", Path::new("/usr/sbin/lvm"));
        assert_eq!(
            got,
            ["/usr/sbin/lvs", "/usr/sbin/vgchange"].map(PathBuf::from)
        );
    }
}
