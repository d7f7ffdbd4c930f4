//! The e2e server's root file system: Debian by debootstrap, cached as a
//! tarball under target/e2e/ keyed by a hash of its package list; the
//! provision VM unpacks it onto the server's disks.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::util::set_len;

/// Debian packages of the production server, and why:
/// - linux-image-amd64, initramfs-tools, udev, kmod, systemd-sysv: a system
///   that boots by itself
/// - grub-pc-bin, grub-efi-amd64-bin, grub2-common: the boot loader for
///   BIOS and UEFI from one image. Not grub-pc / grub-efi-amd64: those two
///   conflict with each other and their postinst asks debconf for install
///   devices; the -bin packages bring grub-install for both targets and we
///   run it ourselves.
/// - mdadm, lvm2, cryptsetup, cryptsetup-initramfs: the storage stack, with
///   their initramfs hooks
/// - xfsprogs, e2fsprogs, dosfstools: the file systems
/// - fdisk (sfdisk), iproute2 (ip): what `mkrescue layout save` and the
///   rescue build run on the server (minbase has neither)
/// - openssh-server: what a server has (the rescue image takes its sshd)
/// - xorriso, isolinux, syslinux-common, mtools: what `mkrescue --output
///   iso` needs on the server (src/output/iso.rs, src/output/tools.rs);
///   pxelinux: what `--output pxe` needs on top (pxelinux.0, the pxe
///   variant's boot loader)
/// - acl, attr: test data with ACLs and xattrs, and reading them back
/// - efibootmgr: what a Debian server with grub-efi has; grub-install
///   writes the firmware boot entry with it when recover runs under UEFI
///   (the uefi variant), the rescue image takes it along, and check.sh
///   prints the entries with `efibootmgr -v`
/// - rsync, zstd, xz-utils: taken into the rescue image when present
/// - man-db: `man mkrescue-backup` on the server, from the package that
///   provision installs (before.sh reads the page)
pub(super) const PACKAGES: &[&str] = &[
    "linux-image-amd64",
    "initramfs-tools",
    "udev",
    "kmod",
    "systemd-sysv",
    "grub-pc-bin",
    "grub-efi-amd64-bin",
    "grub2-common",
    "mdadm",
    "lvm2",
    "cryptsetup",
    "cryptsetup-initramfs",
    "xfsprogs",
    "e2fsprogs",
    "dosfstools",
    "fdisk",
    "iproute2",
    "openssh-server",
    "xorriso",
    "isolinux",
    "syslinux-common",
    "pxelinux",
    "mtools",
    "acl",
    "attr",
    "efibootmgr",
    "rsync",
    "zstd",
    "xz-utils",
    "man-db",
];

/// The Debian release the server is installed as (`--suite`): Debian 12
/// (the default, every cache and report name as before) or Debian 13
/// (issue 19), whose servers build their rescue image on 13.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Suite {
    #[default]
    Bookworm,
    Trixie,
}

impl Suite {
    /// From `--suite bookworm|trixie`.
    pub fn parse(s: &str) -> Result<Suite> {
        match s {
            "bookworm" => Ok(Suite::Bookworm),
            "trixie" => Ok(Suite::Trixie),
            o => bail!("--suite {o}: one of bookworm, trixie"),
        }
    }

    /// debootstrap's name of the release.
    pub fn codename(self) -> &'static str {
        match self {
            Suite::Bookworm => "bookworm",
            Suite::Trixie => "trixie",
        }
    }

    /// Appended to the scenario in directory, log and report names:
    /// nothing for bookworm (the names it always had), `-trixie`.
    pub fn suffix(self) -> &'static str {
        match self {
            Suite::Bookworm => "",
            Suite::Trixie => "-trixie",
        }
    }

    /// The server's packages on this release: [`PACKAGES`] on both; every
    /// name there exists in trixie too (its debootstrap resolves them).
    /// What trixie split out of them (systemd-cryptsetup from systemd,
    /// sshd-session inside openssh-server) the server does not need
    /// beyond what these pull in.
    pub fn packages(self) -> Vec<&'static str> {
        PACKAGES.to_vec()
    }
}

/// The dracut-sdboot server's packages that debootstrap installs, and why
/// each differs from [`PACKAGES`]:
/// - no initramfs-tools, mdadm, lvm2, cryptsetup, grub-pc-bin,
///   grub2-common: the server has no RAID, LVM or LUKS, and GRUB is not in
///   its boot path
/// - btrfs-progs: its root is btrfs with subvolumes
/// - grub-efi-amd64-bin: not to boot (nothing installs GRUB on the server)
///   but what `mkrescue --output iso` on the server puts on the ISO's EFI
///   boot image, as isolinux is its BIOS one (src/output/tools.rs)
///
/// dracut, systemd-boot and the kernel come after, from apt in the
/// chroot ([`SDBOOT_APT`]).
const SDBOOT_PACKAGES: &[&str] = &[
    "udev",
    "kmod",
    "systemd-sysv",
    "btrfs-progs",
    "e2fsprogs",
    "dosfstools",
    "fdisk",
    "iproute2",
    "openssh-server",
    "xorriso",
    "isolinux",
    "syslinux-common",
    "pxelinux",
    "mtools",
    "grub-efi-amd64-bin",
    "acl",
    "attr",
    "efibootmgr",
    "rsync",
    "zstd",
    "xz-utils",
    "man-db",
];

/// Installed by apt in the chroot after debootstrap: debootstrap resolves
/// linux-image's `initramfs-tools | linux-initramfs-tool` to its first
/// choice, which then conflicts with dracut; apt takes dracut as the
/// provider. systemd-boot brings bootctl, kernel-install's loader-entry
/// plugin and the EFI binary; systemd-ukify is not needed (type 1 BLS
/// entries, no UKI).
const SDBOOT_APT: &[&str] = &["dracut", "systemd-boot", "linux-image-amd64"];

/// The scenario's rootfs when it is not the common one: the dracut-sdboot
/// server has its own packages (and tarball, `rootfs-sdboot-trixie-KEY.tar`).
fn own_rootfs(
    scenario: &str,
) -> Option<(
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
)> {
    (scenario == super::variant::SDBOOT).then_some(("rootfs-sdboot", SDBOOT_PACKAGES, SDBOOT_APT))
}

pub(super) const MIRROR: &str = "http://deb.debian.org/debian";
pub(super) const CACHE: &str = "target/e2e";

/// The rootfs tarball of `scenario` on `suite`, built by debootstrap
/// unless cached. Returns its path.
pub fn rootfs(suite: Suite, scenario: &str) -> Result<PathBuf> {
    rootfs_logged(suite, scenario, None)
}

/// [`rootfs`], with the output of debootstrap, chroot and tar appended to
/// `log` instead of this terminal when given: `cargo xtask ci` builds it in
/// a background thread while clippy and the tests run (debootstrap is
/// mostly downloads and dpkg, a few minutes of mostly idle CPU).
pub fn rootfs_logged(suite: Suite, scenario: &str, log: Option<&Path>) -> Result<PathBuf> {
    let run = |program: &str, args: &[&str]| run_logged(log, program, args);
    let own = own_rootfs(scenario);
    let prefix = own.map_or("rootfs", |o| o.0);
    let key = cache_key(suite, scenario)?;
    let tar = PathBuf::from(CACHE).join(format!("{prefix}{}-{key}.tar", suite.suffix()));
    if tar.exists() {
        eprintln!("rootfs cached: {}", tar.display());
        return Ok(tar);
    }
    std::fs::create_dir_all(CACHE).with_context(|| format!("creating {CACHE}"))?;
    let dir = PathBuf::from(CACHE).join(format!("{prefix}{}-{key}", suite.suffix()));
    if dir.exists() {
        // A half-finished debootstrap: start again.
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let dirs = dir.to_str().context("non-UTF-8 cache path")?;
    let packages = own.map_or_else(|| suite.packages(), |o| o.1.to_vec());
    let include = format!("--include={}", packages.join(","));
    run(
        "debootstrap",
        &[
            "--variant=minbase",
            &include,
            suite.codename(),
            dirs,
            MIRROR,
        ],
    )?;
    if let Some((_, _, apt)) = own {
        // dracut's and the kernel's postinst build an initramfs: /proc
        // for them (unmounted when the guard drops).
        let _proc = Mount::new("proc", &dir.join("proc"))?;
        let mut args = vec![dirs, "apt-get", "install", "-y", "--no-install-recommends"];
        args.extend(apt.iter().copied());
        run("chroot", &args)?;
    }
    // The package cache is 100+ MB the server never needs.
    run("chroot", &[dirs, "apt-get", "clean"])?;
    // man-db's dpkg trigger re-indexes every man page after each package
    // install, dpkg -i of mkrescue's too (provision, before): slow under
    // TCG, and `man PAGE` finds a page without the index. The trigger
    // runs only while this file exists (man-db's postinst, debconf
    // man-db/auto-update).
    run("rm", &["-f", &format!("{dirs}/var/lib/man-db/auto-update")])?;
    let part = tar.with_extension("tar.part");
    // --xattrs/--acls: file capabilities (ping) and ACLs survive;
    // --numeric-owner: the server's uids, not this machine's names.
    run(
        "tar",
        &[
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
            "--acls",
            "-C",
            dirs,
            "-cf",
            part.to_str().context("non-UTF-8 cache path")?,
            ".",
        ],
    )?;
    pad_to_mib(&part)?;
    std::fs::rename(&part, &tar).with_context(|| format!("renaming {}", part.display()))?;
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    // Tarballs of older package lists of this suite are never used again
    // (the other suite's stay).
    for e in std::fs::read_dir(CACHE)?.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if cached_of(&n, prefix, suite) && e.path() != tar {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(tar)
}

/// Runs `program` with its output appended to `log` when given (else on
/// this terminal, the command line printed first); no debconf questions.
pub(super) fn run_logged(log: Option<&Path>, program: &str, args: &[&str]) -> Result<()> {
    let mut c = Command::new(program);
    // No debconf questions from the packages' maintainer scripts.
    c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    match log {
        Some(l) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(l)
                .with_context(|| format!("opening {}", l.display()))?;
            c.stdout(f.try_clone()?).stderr(f);
        }
        None => eprintln!("$ {program} {}", args.join(" ")),
    }
    let st = c
        .status()
        .with_context(|| format!("cannot start {program}"))?;
    if !st.success() {
        bail!(
            "`{program} {}` failed ({st}){}",
            args.join(" "),
            log.map(|l| format!("; its output is in {}", l.display()))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// sha256 of what makes the rootfs, first 16 hex digits (for bookworm the
/// same text, so the same key, as before there was a `--suite`).
pub(super) fn cache_key(suite: Suite, scenario: &str) -> Result<String> {
    match own_rootfs(scenario) {
        None => sha16(&format!(
            "{}\n{MIRROR}\nminbase\n{}\n",
            suite.codename(),
            suite.packages().join("\n")
        )),
        Some((prefix, packages, apt)) => sha16(&format!(
            "{prefix}\n{}\n{MIRROR}\nminbase\n{}\napt\n{}\n",
            suite.codename(),
            packages.join("\n"),
            apt.join("\n")
        )),
    }
}

/// Whether `file` under [`CACHE`] is a `PREFIX{suffix}-KEY.tar` of `suite`
/// (KEY: 16 hex digits): `rootfs-KEY.tar` is bookworm's and
/// `rootfs-trixie-KEY.tar` trixie's, so pruning one suite's old tarballs
/// never removes the other's.
pub(super) fn cached_of(file: &str, prefix: &str, suite: Suite) -> bool {
    file.strip_prefix(prefix)
        .and_then(|r| r.strip_prefix(suite.suffix()))
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|r| r.strip_suffix(".tar"))
        .is_some_and(|k| k.len() == 16 && k.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// sha256 of `text`, first 16 hex digits: the cache keys under target/e2e.
pub(super) fn sha16(text: &str) -> Result<String> {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running sha256sum")?;
    child
        .stdin
        .take()
        .context("sha256sum stdin")?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    let hex = String::from_utf8_lossy(&out.stdout);
    Ok(hex
        .get(..16)
        .context("sha256sum printed nothing")?
        .to_string())
}

/// A raw disk image is seen by the guest in whole sectors; whole MiB keeps
/// every tool happy. Tar ignores the zeros after its end marker.
pub(super) fn pad_to_mib(p: &Path) -> Result<()> {
    let len = std::fs::metadata(p)
        .with_context(|| format!("reading {}", p.display()))?
        .len();
    set_len(p, len.div_ceil(1 << 20) * (1 << 20))
}

/// A file system of type `fstype` mounted on `at`, unmounted when dropped.
pub(super) struct Mount(PathBuf);

impl Mount {
    pub(super) fn new(fstype: &str, at: &Path) -> Result<Mount> {
        let st = Command::new("mount")
            .args(["-t", fstype, fstype])
            .arg(at)
            .status()
            .context("running mount")?;
        if !st.success() {
            bail!("mount -t {fstype} on {} failed ({st})", at.display());
        }
        Ok(Mount(at.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        match Command::new("umount").arg(&self.0).status() {
            Ok(st) if st.success() => {}
            other => eprintln!("warning: umount {}: {other:?}", self.0.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bookworm's key is the one from before `--suite` (its tarball is
    /// reused as it was); each suite prunes only its own tarballs.
    #[test]
    fn suites_keep_their_own_caches() {
        let old = sha16(&format!(
            "bookworm\n{MIRROR}\nminbase\n{}\n",
            PACKAGES.join("\n")
        ))
        .unwrap();
        assert_eq!(cache_key(Suite::Bookworm, "raid1-lvm").unwrap(), old);
        assert_eq!(cache_key(Suite::Bookworm, "luks-lvm").unwrap(), old);
        assert_ne!(cache_key(Suite::Trixie, "raid1-lvm").unwrap(), old);
        // dracut-sdboot's own packages, its own tarball: the trixie
        // raid1-lvm one and it never prune each other.
        assert_ne!(
            cache_key(Suite::Trixie, "dracut-sdboot").unwrap(),
            cache_key(Suite::Trixie, "raid1-lvm").unwrap()
        );
        let sd = "rootfs-sdboot-trixie-0123456789abcdef.tar";
        assert!(cached_of(sd, "rootfs-sdboot", Suite::Trixie));
        assert!(!cached_of(sd, "rootfs", Suite::Trixie));
        assert!(!cached_of(
            "rootfs-trixie-0123456789abcdef.tar",
            "rootfs-sdboot",
            Suite::Trixie
        ));
        let (b, t) = (Suite::Bookworm, Suite::Trixie);
        let bt = "rootfs-0123456789abcdef.tar";
        let tt = "rootfs-trixie-0123456789abcdef.tar";
        assert!(cached_of(bt, "rootfs", b) && !cached_of(bt, "rootfs", t));
        assert!(cached_of(tt, "rootfs", t) && !cached_of(tt, "rootfs", b));
        assert!(!cached_of("rootfs-0123456789abcdef.tar.part", "rootfs", b));
        assert!(cached_of(
            "initrd-raid1-lvm-trixie-0123456789abcdef.tar",
            "initrd-raid1-lvm",
            t
        ));
        assert!(!cached_of(
            "initrd-raid1-lvm-trixie-0123456789abcdef.tar",
            "initrd-raid1-lvm",
            b
        ));
        assert_eq!(Suite::parse("trixie").unwrap(), t);
        assert_eq!(Suite::default(), b);
        assert!(Suite::parse("sid").is_err());
    }
}
