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
    t("dhclient", "isc-dhcp-client", Optional),
    t("/sbin/dhclient-script", "isc-dhcp-client", Optional),
    t("sshd", "openssh-server", Optional),
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
