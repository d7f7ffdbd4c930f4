//! Mounts: what /proc/self/mountinfo says is mounted, and mount(2).

use std::path::Path;

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

/// Every mount point in /proc/self/mountinfo (empty when it cannot be
/// read): what a walk that stays on one file system must not enter.
pub fn mount_points() -> std::collections::HashSet<std::path::PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|info| {
            info.lines()
                .filter_map(|l| l.split(' ').nth(4))
                .map(|m| std::path::PathBuf::from(unescape(m)))
                .collect()
        })
        .unwrap_or_default()
}

/// What a directory on another device than its parent, and not a mount
/// point, is: btrfs gives every subvolume a device number of its own, so
/// a subvolume nested in the mounted one looks like another file system
/// to st_dev although it is part of this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nested {
    /// A writable btrfs subvolume: its files belong to the backup.
    Subvolume,
    /// A read-only btrfs subvolume: a snapshot (snapper, btrbk), a copy
    /// of data that is backed up where it lives.
    Snapshot,
    /// Anything else (another file system).
    No,
}

/// [`Nested`] of the directory `dir`: a btrfs subvolume's root directory
/// is inode 256 (BTRFS_FIRST_FREE_OBJECTID) on a file system whose
/// statfs(2) magic is BTRFS_SUPER_MAGIC; its read-only flag comes from the
/// BTRFS_IOC_SUBVOL_GETFLAGS ioctl (linux/btrfs.h).
pub fn nested_subvolume(dir: &Path, ino: u64) -> Nested {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::AsRawFd;
    const BTRFS_SUPER_MAGIC: i64 = 0x9123_683e;
    const BTRFS_FIRST_FREE_OBJECTID: u64 = 256;
    // _IOR(0x94, 25, __u64): read, 8 bytes, type 0x94, number 25.
    const BTRFS_IOC_SUBVOL_GETFLAGS: u64 = (2 << 30) | (8 << 16) | (0x94 << 8) | 25;
    const BTRFS_SUBVOL_RDONLY: u64 = 1 << 1;
    if ino != BTRFS_FIRST_FREE_OBJECTID {
        return Nested::No;
    }
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return Nested::No;
    };
    // SAFETY: statfs(2) writes into the zeroed struct it is given; c is a
    // valid NUL-terminated path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 || st.f_type as i64 != BTRFS_SUPER_MAGIC {
        return Nested::No;
    }
    let Ok(f) = std::fs::File::open(dir) else {
        return Nested::No;
    };
    let mut flags: u64 = 0;
    // SAFETY: the ioctl writes one u64 into `flags`; f stays open.
    let r = unsafe {
        libc::ioctl(
            f.as_raw_fd(),
            BTRFS_IOC_SUBVOL_GETFLAGS as _,
            &mut flags as *mut u64,
        )
    };
    if r != 0 {
        return Nested::No;
    }
    if flags & BTRFS_SUBVOL_RDONLY != 0 {
        Nested::Snapshot
    } else {
        Nested::Subvolume
    }
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

/// mount(2) with plain strings (no helper program, no /etc/fstab): what
/// PID 1 needs before anything else runs.
pub fn mount(
    src: &str,
    target: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> std::io::Result<()> {
    let c = |s: &str| {
        std::ffi::CString::new(s)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
    };
    let (src, target, fstype, data) = (c(src)?, c(target)?, c(fstype)?, c(data)?);
    // SAFETY: all pointers are valid NUL-terminated strings for the call.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
