//! Installs the Debian packages the build, the tests and the QEMU boots need,
//! only when some are missing (apt-get update first, as a fresh machine has
//! no package lists).

use std::process::Command;

use anyhow::Result;

use crate::util;

/// Packages and why:
/// - linux-image-amd64: a kernel with modules in /boot and /lib/modules
///   (the running kernel here has none)
/// - qemu-system-x86, ovmf: boot tests
/// - cpio, zstd, xz-utils: independent readers of our archives in tests
/// - the disk tools: what the rescue system carries (their libraries are
///   resolved and checked by the tests)
/// - gcc: tests compile tiny ELF files
/// - acl, attr: the backup tests set ACLs and read them back with an
///   independent tool (setfacl/getfacl); tar reads our archives (GNU tar is
///   essential in Debian, listed for clarity)
/// - borgbackup: the borg backup method is tested against a real repository
/// - nfs-common, cifs-utils: mount.nfs / mount.cifs, which a rescue image
///   must carry when the backup target is nfs:// or cifs:// (tests build
///   such images and check the mount command lines)
/// - nfs-ganesha, nfs-ganesha-vfs, samba, socat: `qemu runtime --only
///   shares` backs up to and restores from a real NFSv4 and SMB3 server
///   run here in user space (this kernel has no nfsd), reached from the
///   guest through socat
/// - xorriso, isolinux, syslinux, syslinux-common, pxelinux, mtools,
///   dosfstools, grub-efi-amd64-bin, ipxe-qemu: `--output iso|usb|pxe`
///   build with them and `cargo xtask qemu media` boots the results
///   (ipxe-qemu is QEMU's NIC boot ROM for PXE under SeaBIOS)
/// - shim-signed, grub-efi-amd64-signed: the Secure Boot ESP of the ISO
///   (`output.secure_boot`) is built from them and tested
/// - debootstrap: `cargo xtask qemu e2e` makes its Debian server with it
/// - dpkg-dev, lintian: `cargo xtask deb` takes the shared-library
///   dependencies from dpkg-shlibdeps and checks the package with lintian
/// - shellcheck: the package's kernel hook and maintainer scripts are
///   checked with it (tests/it/package.rs)
/// - jq: the one host's extra tool in the fleet tests (tests/it/media/
///   pxe_fleet.rs, `cargo xtask qemu fleet`): a small program with two
///   libraries of its own that the base lacks
const PACKAGES: &[&str] = &[
    "linux-image-amd64",
    "qemu-system-x86",
    "ovmf",
    "cpio",
    "zstd",
    "xz-utils",
    "gzip",
    "kmod",
    "udev",
    "e2fsprogs",
    "xfsprogs",
    "dosfstools",
    "btrfs-progs",
    "mdadm",
    "lvm2",
    "cryptsetup-bin",
    "fdisk",
    "iproute2",
    "isc-dhcp-client",
    "openssh-server",
    "openssh-client",
    "rsync",
    "efibootmgr",
    "grub2-common",
    "grub-pc-bin",
    "grub-efi-amd64-bin",
    "gcc",
    "libc6-dev",
    "acl",
    "attr",
    "tar",
    "borgbackup",
    "nfs-common",
    "cifs-utils",
    "nfs-ganesha",
    "nfs-ganesha-vfs",
    "samba",
    "socat",
    "xorriso",
    "isolinux",
    "syslinux",
    "syslinux-common",
    "pxelinux",
    "mtools",
    "ipxe-qemu",
    "shim-signed",
    "grub-efi-amd64-signed",
    "debootstrap",
    "dpkg-dev",
    "lintian",
    "shellcheck",
    "jq",
];

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

pub fn install() -> Result<()> {
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    util::step(&format!("apt-get install {}", missing.join(" ")), || {
        util::run("apt-get", &["update", "-q"])?;
        let mut args = vec![
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "--allow-downgrades",
        ];
        args.extend(&missing);
        // Some images carry qemu-utils from bookworm-backports, whose
        // Breaks: rejects bookworm's qemu-system-x86; take both from
        // bookworm so they match.
        if missing.contains(&"qemu-system-x86") && installed("qemu-utils") {
            args.push("qemu-utils/bookworm");
        }
        // SAFETY: setenv before any thread is spawned by this process.
        unsafe { std::env::set_var("DEBIAN_FRONTEND", "noninteractive") };
        util::run("apt-get", &args)
    })
}
