//! `cargo xtask deb`: the Debian package an admin installs,
//! target/deb/mkrescue_VERSION_amd64.deb.
//!
//! The package tree is assembled here and packed by `dpkg-deb --build
//! --root-owner-group`: dpkg-deb is on every Debian machine, while
//! cargo-deb would be one more tool to install in CI, and the tree is a
//! few files. The files an admin reads or edits (units, kernel hook,
//! maintainer scripts, example configuration, copyright) are in
//! packaging/deb/; man pages and completions come from `dist`.
//!
//! After packing it checks the result: the paths `dpkg-deb -c` must list
//! (and their modes), and lintian with no error (when lintian is
//! installed; `cargo xtask deps` does not install it, CI's image has it).

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::{dist, util};

/// Debian revision of the package (the upstream version is Cargo's).
const REVISION: &str = "1";
const MAINTAINER: &str = "mkrescue maintainers <maintainers@users.noreply.h-seed-d1f88a05.example>";
const SRC: &str = "packaging/deb";

/// What each feature runs, as Debian relations (grep src/ for `Cmd::new`
/// and src/rescue/tools.rs for the tools the rescue system carries):
/// - Depends: what every build needs on any host and Debian does not
///   mark essential: kmod (modinfo, the module tree), fdisk (sfdisk, the
///   layout), mount (findmnt, mount), plus the shared libraries
///   (dpkg-shlibdeps). util-linux (lsblk, blkid, wipefs) is essential:
///   lintian refuses an unversioned dependency on it.
/// - Recommends: the boot media (`--output iso|usb|pxe`: xorriso,
///   isolinux, syslinux-common, grub-pc-bin, grub-efi-amd64-bin, mtools,
///   dosfstools), the rescue system's udev, network and SSH, and
///   e2fsprogs (ext4 is the common root).
/// - Suggests: what only some hosts or settings call: md, LVM, LUKS,
///   other file systems, the rsync/borg/ssh/nfs/cifs backup methods and
///   targets, PXE (pxelinux, syslinux), Secure Boot (shim-signed,
///   grub-efi-amd64-signed), efibootmgr for UEFI recover, an MTA for the
///   report mail (backup.mail_to), qemu-system-x86, qemu-utils and
///   ovmf for `mkrescue drill` (and to boot-test the media by hand), and the tools the rescue shell takes when the host has
///   them for an admin whose recover failed (parted, gdisk, smartmontools,
///   nvme-cli, hdparm, pciutils, ethtool; src/rescue/tools.rs).
const DEPENDS: &str = "kmod, fdisk, mount";
const RECOMMENDS: &str = "xorriso, isolinux, syslinux-common, grub-pc-bin, grub-efi-amd64-bin, \
mtools, dosfstools, e2fsprogs, udev, iproute2, isc-dhcp-client, openssh-server";
const SUGGESTS: &str = "mdadm, lvm2, cryptsetup-bin, btrfs-progs, xfsprogs, efibootmgr, \
rsync, openssh-client, borgbackup, nfs-common, cifs-utils, pxelinux, syslinux, shim-signed, \
grub-efi-amd64-signed, default-mta | mail-transport-agent, qemu-system-x86, qemu-utils, ovmf, \
parted, gdisk, smartmontools, nvme-cli, hdparm, pciutils, ethtool";

/// Installed under /etc: every one is a conffile (Debian policy 10.7.2).
const CONFFILES: &[&str] = &[
    "/etc/mkrescue/local.toml",
    "/etc/kernel/postinst.d/zz-mkrescue",
    "/etc/kernel/postrm.d/zz-mkrescue",
];

const UNITS: &[&str] = &[
    "mkrescue-backup.service",
    "mkrescue-backup.timer",
    "mkrescue-check.service",
    "mkrescue-check.timer",
    "mkrescue-drill.service",
    "mkrescue-drill.timer",
];

/// `cargo xtask deb`: the release binary packaged into target/deb,
/// checked by lintian.
pub fn build() -> Result<PathBuf> {
    let bin = util::build_release()?;
    let deb = package(&bin, Path::new("target/deb"), true)?;
    apt_simulate(&deb)?;
    Ok(deb)
}

/// `apt-get install --simulate ./DEB`: what `apt install` of the package
/// would pull from this machine's Debian archive (its Depends and
/// Recommends), resolved without installing anything. Fails when a
/// dependency cannot be met. Skipped (said) without apt-get.
fn apt_simulate(deb: &Path) -> Result<()> {
    let arg = format!("./{}", deb.display());
    eprintln!("$ apt-get install --simulate {arg}");
    let o = match Command::new("apt-get")
        .args(["install", "--simulate", "--yes"])
        .arg(&arg)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("apt-get not found ({e}): what the package pulls is not checked");
            return Ok(());
        }
    };
    let out = String::from_utf8_lossy(&o.stdout);
    // "Inst xorriso (1.5.4-4 Debian:12.8/oldstable [amd64])": what it
    // would install besides mkrescue.
    let pulls: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("Inst "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|p| *p != "mkrescue")
        .collect();
    ensure!(
        o.status.success(),
        "apt-get install --simulate {arg} failed: a dependency cannot be met:\n{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!(
        "apt install {arg} would pull {} packages: {}",
        pulls.len(),
        pulls.join(" ")
    );
    Ok(())
}

/// The package of `bin` in `out` (its tree in `out`/root); lintian checks
/// it when `lint` (the e2e, which installs it on its server, leaves that
/// to the CI's deb step).
pub fn package(bin: &Path, out: &Path, lint: bool) -> Result<PathBuf> {
    let version = format!("{}-{REVISION}", env!("CARGO_PKG_VERSION"));
    let root = out.join("root");
    if root.exists() {
        std::fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    let d = dist::generate(&out.join("dist"))?;
    let tree = Tree(root.clone());

    // The binary, stripped (Debian policy 10.1: no debugging symbols).
    let sbin = tree.install(bin, "usr/sbin/mkrescue", 0o755)?;
    util::run(
        "strip",
        &[
            "--remove-section=.comment",
            "--remove-section=.note",
            "--strip-unneeded",
            path_str(&sbin)?,
        ],
    )?;

    for page in &d.man {
        let name = page.file_name().context("man page name")?;
        let to = tree.install(
            page,
            &format!("usr/share/man/man8/{}", name.to_string_lossy()),
            0o644,
        )?;
        gzip(&to)?;
    }
    tree.install(
        &d.bash,
        "usr/share/bash-completion/completions/mkrescue",
        0o644,
    )?;
    tree.install(&d.zsh, "usr/share/zsh/vendor-completions/_mkrescue", 0o644)?;
    tree.install(
        &d.fish,
        "usr/share/fish/vendor_completions.d/mkrescue.fish",
        0o644,
    )?;

    let src = Path::new(SRC);
    tree.install(&src.join("local.toml"), "etc/mkrescue/local.toml", 0o644)?;
    for hook in ["postinst.d", "postrm.d"] {
        tree.install(
            &src.join("kernel-hook"),
            &format!("etc/kernel/{hook}/zz-mkrescue"),
            0o755,
        )?;
    }
    for unit in UNITS {
        tree.install(
            &src.join(unit),
            &format!("usr/lib/systemd/system/{unit}"),
            0o644,
        )?;
    }

    let doc = "usr/share/doc/mkrescue";
    tree.install(&src.join("copyright"), &format!("{doc}/copyright"), 0o644)?;
    for f in ["README.md", "BENCHMARKS.md"] {
        let to = tree.install(Path::new(f), &format!("{doc}/{f}"), 0o644)?;
        gzip(&to)?;
    }
    let changelog = tree.0.join(doc).join("changelog.Debian");
    let epoch = release_epoch()?;
    std::fs::write(&changelog, changelog_text(&version, &epoch)?)
        .with_context(|| format!("writing {}", changelog.display()))?;
    gzip(&changelog)?;

    let debian = tree.dir("DEBIAN")?;
    for script in ["postinst", "prerm", "postrm"] {
        tree.install(&src.join(script), &format!("DEBIAN/{script}"), 0o755)?;
    }
    std::fs::write(debian.join("conffiles"), CONFFILES.join("\n") + "\n")
        .context("writing DEBIAN/conffiles")?;
    md5sums(&root)?;
    let shlibs = shlib_depends(&sbin)?;
    let control = control_text(&version, &shlibs, installed_size(&root)?);
    std::fs::write(debian.join("control"), control).context("writing DEBIAN/control")?;

    let deb = out.join(format!("mkrescue_{version}_amd64.deb"));
    // dpkg-deb clamps the mtimes to SOURCE_DATE_EPOCH and dates the ar
    // container with it (dpkg-deb(1), ENVIRONMENT).
    eprintln!("$ SOURCE_DATE_EPOCH={epoch} dpkg-deb --build --root-owner-group ...");
    let status = Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group"])
        .arg(&root)
        .arg(&deb)
        .env("SOURCE_DATE_EPOCH", &epoch)
        .status()
        .context("running dpkg-deb (package dpkg)")?;
    ensure!(status.success(), "dpkg-deb --build failed ({status})");
    check(&deb)?;
    if lint {
        lintian(&deb)?;
    }
    let size = std::fs::metadata(&deb)?.len();
    eprintln!(
        "wrote {} ({:.1} MiB)",
        deb.display(),
        size as f64 / 1048576.0
    );
    Ok(deb)
}

/// The package tree being assembled.
struct Tree(PathBuf);

impl Tree {
    fn dir(&self, rel: &str) -> Result<PathBuf> {
        let d = self.0.join(rel);
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        // dpkg-deb refuses DEBIAN/ and lintian flags dirs not 0755.
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))?;
        Ok(d)
    }

    /// Copies `from` to `rel` in the tree with `mode`; returns its path.
    fn install(&self, from: &Path, rel: &str, mode: u32) -> Result<PathBuf> {
        let to = self.0.join(rel);
        let parent = to.parent().context("no parent")?;
        let mut dir = parent;
        let mut made = Vec::new();
        while !dir.exists() && dir != self.0 {
            made.push(dir.to_path_buf());
            dir = dir.parent().context("no parent")?;
        }
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        for d in made {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))?;
        }
        std::fs::copy(from, &to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode))?;
        Ok(to)
    }
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not UTF-8", p.display()))
}

/// `gzip -9n`: no name or time stamp in the header, so the package is
/// reproducible (lintian: package-contains-timestamped-gzip).
fn gzip(p: &Path) -> Result<()> {
    util::run("gzip", &["-9nf", path_str(p)?])
}

/// Seconds since 1970 of the last commit (SOURCE_DATE_EPOCH wins): the
/// changelog's date and the clamp of every mtime in the package, so two
/// builds of one commit are the same .deb.
fn release_epoch() -> Result<String> {
    if let Ok(e) = std::env::var("SOURCE_DATE_EPOCH") {
        return Ok(e);
    }
    let o = Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .output()
        .context("running git log")?;
    let e = String::from_utf8_lossy(&o.stdout).trim().to_string();
    ensure!(
        o.status.success() && !e.is_empty(),
        "git log: no commit date"
    );
    Ok(e)
}

/// RFC 2822 date of `epoch`, as debian/changelog wants it.
fn release_date(epoch: &str) -> Result<String> {
    let o = Command::new("date")
        .args(["-u", "-R", "-d"])
        .arg(format!("@{epoch}"))
        .output()
        .context("running date")?;
    ensure!(o.status.success(), "date -R -d @{epoch} failed");
    Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn changelog_text(version: &str, epoch: &str) -> Result<String> {
    Ok(format!(
        "mkrescue ({version}) unstable; urgency=medium\n\n  * Package built by `cargo xtask deb` from the mkrescue source tree.\n\n -- {MAINTAINER}  {}\n",
        release_date(epoch)?
    ))
}

/// `shlibs:Depends` of the binary from dpkg-shlibdeps, which wants to run
/// next to a debian/control: give it a minimal one in a scratch directory.
fn shlib_depends(bin: &Path) -> Result<String> {
    let tmp = std::env::temp_dir().join(format!("mkrescue-shlibdeps-{}", std::process::id()));
    std::fs::create_dir_all(tmp.join("debian"))?;
    std::fs::write(
        tmp.join("debian/control"),
        "Source: mkrescue\n\nPackage: mkrescue\nArchitecture: amd64\n",
    )?;
    let bin = std::fs::canonicalize(bin)?;
    let o = Command::new("dpkg-shlibdeps")
        .arg("-O")
        .arg(format!("-e{}", bin.display()))
        .current_dir(&tmp)
        .output()
        .context("running dpkg-shlibdeps (package dpkg-dev)")?;
    let _ = std::fs::remove_dir_all(&tmp);
    ensure!(
        o.status.success(),
        "dpkg-shlibdeps failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    Ok(out
        .lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .unwrap_or_default()
        .to_string())
}

/// DEBIAN/md5sums: what `dpkg --verify` and debsums check; conffiles
/// are left out (dpkg records their sums itself), as dh_md5sums does.
fn md5sums(root: &Path) -> Result<()> {
    let o = Command::new("sh")
        .arg("-c")
        .arg("find usr -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum")
        .current_dir(root)
        .output()
        .context("running md5sum")?;
    ensure!(o.status.success(), "md5sum failed");
    std::fs::write(root.join("DEBIAN/md5sums"), o.stdout).context("writing DEBIAN/md5sums")
}

/// Installed-Size: KiB of the tree without DEBIAN/ (deb-control(5)).
fn installed_size(root: &Path) -> Result<u64> {
    fn walk(d: &Path, skip: &Path) -> Result<u64> {
        let mut n = 0;
        for e in std::fs::read_dir(d)? {
            let e = e?;
            let p = e.path();
            if p == skip {
                continue;
            }
            let m = e.metadata()?;
            n += if m.is_dir() {
                1 + walk(&p, skip)?
            } else {
                m.len().div_ceil(1024)
            };
        }
        Ok(n)
    }
    walk(root, &root.join("DEBIAN"))
}

fn control_text(version: &str, shlibs: &str, size_kib: u64) -> String {
    let depends = if shlibs.is_empty() {
        DEPENDS.to_string()
    } else {
        format!("{shlibs}, {DEPENDS}")
    };
    let mut c = String::new();
    for (k, v) in [
        ("Package", "mkrescue"),
        ("Version", version),
        ("Architecture", "amd64"),
        ("Maintainer", MAINTAINER),
        ("Installed-Size", &size_kib.to_string()),
        ("Depends", &depends),
        ("Recommends", RECOMMENDS),
        ("Suggests", SUGGESTS),
        ("Section", "admin"),
        ("Priority", "optional"),
    ] {
        let _ = writeln!(c, "{k}: {v}");
    }
    c.push_str(
        "Description: bare-metal disaster recovery for Linux servers\n \
mkrescue records a server's disk layout (partitions, md RAID, LVM, LUKS,\n \
file systems), backs up its files and builds a bootable rescue system\n \
cloned from the host: its kernel, modules and tools with their libraries,\n \
as an initramfs, a hybrid ISO, a USB image, a PXE tree or an OBDR tape.\n \
Booted on the same or new hardware, `mkrescue recover` rebuilds the disks\n \
and restores the backup.\n \
.\n \
The package runs a daily backup and a daily layout check (systemd timers)\n \
and rebuilds the rescue system when a kernel is installed or removed.\n",
    );
    c
}

/// What must be in the package, with its mode and owner.
fn check(deb: &Path) -> Result<()> {
    let o = Command::new("dpkg-deb")
        .arg("-c")
        .arg(deb)
        .output()
        .context("running dpkg-deb -c")?;
    ensure!(o.status.success(), "dpkg-deb -c failed");
    let list = String::from_utf8_lossy(&o.stdout);
    // "-rwxr-xr-x root/root 123 2026-12-05 20:00 ./usr/sbin/mkrescue"
    let entry = |path: &str| {
        list.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 6 && f[5] == format!(".{path}")).then(|| (f[0].to_string(), f[1]))
        })
    };
    let mut want: Vec<(String, &str)> = vec![
        ("/usr/sbin/mkrescue".into(), "-rwxr-xr-x"),
        ("/usr/share/man/man8/mkrescue.8.gz".into(), "-rw-r--r--"),
        (
            "/usr/share/man/man8/mkrescue-backup.8.gz".into(),
            "-rw-r--r--",
        ),
        (
            "/usr/share/man/man8/mkrescue-layout-check.8.gz".into(),
            "-rw-r--r--",
        ),
        (
            "/usr/share/bash-completion/completions/mkrescue".into(),
            "-rw-r--r--",
        ),
        (
            "/usr/share/zsh/vendor-completions/_mkrescue".into(),
            "-rw-r--r--",
        ),
        (
            "/usr/share/fish/vendor_completions.d/mkrescue.fish".into(),
            "-rw-r--r--",
        ),
        ("/usr/share/doc/mkrescue/copyright".into(), "-rw-r--r--"),
        (
            "/usr/share/doc/mkrescue/changelog.Debian.gz".into(),
            "-rw-r--r--",
        ),
        ("/usr/share/doc/mkrescue/README.md.gz".into(), "-rw-r--r--"),
        ("/etc/mkrescue/local.toml".into(), "-rw-r--r--"),
        ("/etc/kernel/postinst.d/zz-mkrescue".into(), "-rwxr-xr-x"),
        ("/etc/kernel/postrm.d/zz-mkrescue".into(), "-rwxr-xr-x"),
    ];
    want.extend(
        UNITS
            .iter()
            .map(|u| (format!("/usr/lib/systemd/system/{u}"), "-rw-r--r--")),
    );
    let mut bad = Vec::new();
    for (path, mode) in &want {
        match entry(path) {
            Some((m, owner)) if m == *mode && owner == "root/root" => {}
            Some((m, owner)) => bad.push(format!("{path}: {m} {owner}, want {mode} root/root")),
            None => bad.push(format!("{path}: missing")),
        }
    }
    if !bad.is_empty() {
        bail!(
            "{} is wrong:\n  {}\n{list}",
            deb.display(),
            bad.join("\n  ")
        );
    }
    Ok(())
}

/// lintian's verdict on `deb`: no error tags.
fn lintian(deb: &Path) -> Result<()> {
    if Command::new("lintian").arg("--version").output().is_err() {
        eprintln!("lintian is not installed (apt-get install lintian): not checked");
        return Ok(());
    }
    // lintian exits 1 on an error tag (and, by default, not on warnings).
    let o = Command::new("lintian")
        .args(["--fail-on", "error", "--no-tag-display-limit"])
        .arg(deb)
        .output()
        .context("running lintian")?;
    let text = String::from_utf8_lossy(&o.stdout);
    eprint!("{text}");
    ensure!(
        o.status.success() && !text.lines().any(|l| l.starts_with("E: ")),
        "lintian found errors in {} (above)",
        deb.display()
    );
    Ok(())
}
