//! Finalize: make the restored system boot on its new disks.
//!
//! 1. Bind the rescue system's /dev, /proc, /sys and /run into the target so
//!    tools in a chroot see the new disks, arrays and volumes.
//! 2. Device names: recover keeps every UUID and label, so `UUID=` / `LABEL=`
//!    references stay valid; only a kernel name of a disk or partition that
//!    the mapping changed (`/dev/sda2` now `/dev/nvme0n1p2`) is rewritten, in
//!    fstab, crypttab, mdadm.conf, /etc/default/grub and the resume config.
//!    The original is kept next to it as `*.mkrescue-orig`.
//!    The network configuration follows the NICs of this machine
//!    ([`super::nic`]): names and MACs rewritten where the mapping changed
//!    them.
//! 3. The initramfs is regenerated in a chroot with the system's own tool
//!    (update-initramfs, dracut or mkinitcpio) when it must be: with
//!    `initramfs = "auto"` only when [`needs::initramfs`] names a reason (a
//!    file it embeds was rewritten, a driver of the new disks is missing).
//!    When a missing driver is the only reason, the driver is appended to
//!    the image instead ([`super::initrd_patch`]), and it is regenerated
//!    only if that fails.
//! 4. The boot loader: GRUB for BIOS on every disk whose source disk had it
//!    (a GPT `bios_grub` partition, or an MBR disk), so either RAID1 member
//!    boots alone (grub-install on the first; on the others, when GRUB's
//!    directory is on md, LVM or LUKS, grub-bios-setup of the same core
//!    image, which is all grub-install would do differently); GRUB for UEFI onto the ESP mounted in the tree (with a
//!    firmware boot entry when the rescue system runs under UEFI, and the
//!    removable-media path `\EFI\BOOT\BOOTX64.EFI` so new firmware finds it
//!    without an entry), its `\EFI` tree copied onto the other disks' ESPs,
//!    each with a boot entry of its own under UEFI. grub-install always
//!    runs: the boot sector and core image are not files the restore put
//!    back. Then `grub-mkconfig`, with `boot_menu = "auto"` only when
//!    [`needs::grub_cfg`] names a reason.
//!
//! Every tool's output goes to its own log under the work directory; a
//! failure names the tool and that log, and leaves the disks as they are, so
//! recover can run again after a fix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::plan::firmware::Target;
use super::{efiboot, needs};
use crate::config::{RecoverCfg, Regen};
use crate::exec::Cmd;
use crate::layout::{Flag, Layout, Table};

/// Files that may name disks or partitions by their kernel names.
const ID_FILES: &[&str] = &[
    "etc/fstab",
    "etc/crypttab",
    "etc/mdadm/mdadm.conf",
    "etc/mdadm.conf",
    "etc/default/grub",
    "etc/initramfs-tools/conf.d/resume",
];

/// What finalize needs to know.
pub struct Ctx<'a> {
    pub root: &'a Path,
    pub layout: &'a Layout,
    /// Source disk → target disk.
    pub disks: &'a BTreeMap<String, String>,
    /// Source device → target device (disks and partitions).
    pub dev: &'a BTreeMap<String, String>,
    pub cfg: &'a RecoverCfg,
    /// The rescue system runs under UEFI (firmware boot entries writable).
    pub efi_booted: bool,
    /// Scratch space for mounting the other ESPs, and the tools' logs.
    pub work_dir: &'a Path,
    /// Kernel modules the new disks under /, /boot, /usr and swap need
    /// (from the rescue system's sysfs), or why they could not be found.
    pub needed: &'a Result<std::collections::BTreeSet<String>, String>,
    /// What the recovered machine has that grub.cfg may refer to.
    pub present: &'a needs::Present,
    /// The recorded NICs mapped to this machine's.
    pub nics: &'a super::nic::Mapping,
    /// The rescue system's `/` (where GRUB's files to lend are).
    pub rescue: &'a Path,
    /// The firmware the system is recovered for: its GRUB must install
    /// ([`super::plan::firmware`]).
    pub firmware: Target,
    /// Lines for /etc/fstab of partitions the firmware conversion added
    /// (a new ESP).
    pub fstab: &'a [String],
    /// The firmware conversion changed the layout (a partition added, a
    /// table made GPT).
    pub converted: bool,
}

/// Runs the finalize steps; returns one line per thing done, for the report.
pub fn run(c: &Ctx) -> Result<Vec<String>> {
    let mut done = Vec::new();
    bind_system(c.root)?;
    let mut rewritten = Vec::new();
    for f in ID_FILES {
        let path = c.root.join(f);
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if let Some(new) = rewrite_devices(&text, c.dev) {
            let orig = path.with_file_name(format!(
                "{}.mkrescue-orig",
                path.file_name().unwrap_or_default().to_string_lossy()
            ));
            std::fs::write(&orig, &text).with_context(|| format!("writing {}", orig.display()))?;
            std::fs::write(&path, new).with_context(|| format!("writing {}", path.display()))?;
            done.push(format!(
                "/{f}: disk names rewritten for the new disks (original in {})",
                orig.display()
            ));
            rewritten.push(f.to_string());
        }
    }
    if let Some(line) = add_fstab(c.root, c.fstab)? {
        done.push(line);
    }
    // Not an input of the initramfs decision: the network configuration
    // is read by the booted system, not by its initramfs (a root on NFS or
    // iSCSI is refused by layout save).
    // A file that cannot be rewritten costs that network, not the boot:
    // said in the report, and recover goes on to the boot loader.
    match super::nic::rewrite_tree(c.root, c.nics) {
        Ok(lines) => done.extend(lines),
        Err(e) => done.push(format!(
            "network configuration not rewritten for the new NICs: {e:#}; fix it in the restored system after boot (the mapping is in this report)"
        )),
    }
    let auto = match c.needed {
        Ok(m) => needs::initramfs(c.root, &rewritten, m),
        Err(e) => needs::Decision::yes(format!("the drivers of the new disks are not known ({e})")),
    };
    let initramfs_needed = match c.cfg.initramfs {
        // The drivers found missing are added all the same.
        Regen::Always => needs::Decision {
            why: "recover.initramfs = always".into(),
            run: true,
            ..auto
        },
        Regen::Never => needs::Decision::no("kept: recover.initramfs = never"),
        Regen::Auto => auto,
    };
    if initramfs_needed.run {
        let quick = matches!(c.cfg.initramfs, Regen::Auto);
        done.extend(initramfs(c, &initramfs_needed, quick)?);
    } else {
        eprintln!("mkrescue: finalize: initramfs {}", initramfs_needed.why);
        done.push(format!("initramfs {}", initramfs_needed.why));
    }
    if c.cfg.bootloader {
        done.extend(bootloader(c, &rewritten)?);
    }
    Ok(done)
}

/// Appends `lines` (a new ESP's, from the firmware conversion) to the
/// restored /etc/fstab, each unless a line already mounts something at its
/// mount point; the restored file is kept as `fstab.mkrescue-orig` unless
/// the rewrite of disk names kept it already (that copy is the restored
/// one). None when nothing was added.
pub fn add_fstab(root: &Path, lines: &[String]) -> Result<Option<String>> {
    if lines.is_empty() {
        return Ok(None);
    }
    let path = root.join("etc/fstab");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mounted: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    let new: Vec<&String> = lines
        .iter()
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|m| !mounted.contains(&m))
        })
        .collect();
    if new.is_empty() {
        return Ok(None);
    }
    let orig = root.join("etc/fstab.mkrescue-orig");
    if !orig.exists() {
        std::fs::write(&orig, &text).with_context(|| format!("writing {}", orig.display()))?;
    }
    let mut out = text.clone();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("# added by mkrescue recover: the EFI system partition it made for UEFI\n");
    for l in &new {
        out.push_str(l);
        out.push('\n');
    }
    std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
    Ok(Some(format!(
        "/etc/fstab: {} added for the new ESP (original in {})",
        new.iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("; "),
        orig.display()
    )))
}

/// Binds /dev, /proc, /sys and /run into the target (recursive: devpts,
/// efivarfs and the LVM/md run directories come along).
fn bind_system(root: &Path) -> Result<()> {
    for (dir, args) in [
        ("dev", vec!["--rbind", "/dev"]),
        ("proc", vec!["-t", "proc", "proc"]),
        ("sys", vec!["--rbind", "/sys"]),
        ("run", vec!["--bind", "/run"]),
    ] {
        let at = root.join(dir);
        if crate::sys::mount::is_mounted(&at) {
            continue;
        }
        std::fs::create_dir_all(&at).with_context(|| format!("creating {}", at.display()))?;
        Cmd::new("mount")
            .args(&args)
            .arg(&at)
            .output()
            .with_context(|| format!("binding /{dir} into the restored system"))?;
    }
    Ok(())
}

/// Rewrites whole device-name tokens (`/dev/sda2`, also inside
/// `devices=/dev/sda1,/dev/sdb1` and `root=/dev/sda2`) whose device the
/// mapping renamed. Comment lines are kept as they are. `None`: no change.
pub fn rewrite_devices(text: &str, dev: &BTreeMap<String, String>) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut token = String::new();
        let flush = |token: &mut String, out: &mut String, changed: &mut bool| {
            match dev.get(token.as_str()) {
                Some(new) if new != token => {
                    out.push_str(new);
                    *changed = true;
                }
                _ => out.push_str(token),
            }
            token.clear();
        };
        for ch in line.chars() {
            if ch.is_whitespace() || matches!(ch, ',' | '=' | '"' | '\'') {
                flush(&mut token, &mut out, &mut changed);
                out.push(ch);
            } else {
                token.push(ch);
            }
        }
        flush(&mut token, &mut out, &mut changed);
    }
    changed.then_some(out)
}

/// `chroot ROOT PROG ARGS...` with a PATH that finds the system's tools.
fn chroot(root: &Path, argv: &[&str]) -> Cmd {
    Cmd::new("chroot").arg(root).args(argv).env(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    )
}

/// Runs `f` and appends how long it took to the line it returns: the
/// report then shows where finalize spent its time (update-initramfs in a
/// chroot is minutes on a slow machine, and an admin waiting at the console
/// wants to see that it is that, not a hang).
fn timed(f: impl FnOnce() -> Result<String>) -> Result<String> {
    let t = std::time::Instant::now();
    let line = f()?;
    let s = t.elapsed().as_secs_f64();
    eprintln!("mkrescue: finalize: {line} ({s:.1}s)");
    Ok(format!("{line} ({s:.1}s)"))
}

/// The first of `names` the restored system has (in its sbin/bin dirs).
fn has(root: &Path, names: &[&'static str]) -> Option<&'static str> {
    names.iter().copied().find(|n| {
        ["usr/sbin", "usr/bin", "sbin", "bin"]
            .iter()
            .any(|d| root.join(d).join(n).is_file())
    })
}

/// Runs `argv` in a chroot of the restored system with its output (stdout
/// and stderr) in `WORK_DIR/finalize-NAME.log`; a failure is one line naming
/// the tool and that log.
fn logged(c: &Ctx, name: &str, argv: &[&str]) -> Result<()> {
    let log = c.work_dir.join(format!("finalize-{name}.log"));
    let file =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let err = file.try_clone()?;
    let status = std::process::Command::new("chroot")
        .arg(c.root)
        .args(argv)
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdin(std::process::Stdio::null())
        .stdout(file)
        .stderr(err)
        .status()
        .with_context(|| {
            format!(
                "cannot start chroot {} {}",
                c.root.display(),
                argv.join(" ")
            )
        })?;
    if !status.success() {
        bail!(
            "`{}` in the restored system failed ({status}); its output is in {}. The disks stay as they are: fix it (`chroot {}`) and run recover again",
            argv.join(" "),
            log.display(),
            c.root.display()
        );
    }
    Ok(())
}

/// Appends the drivers `missing` to every initramfs of the restored system
/// that lacks them ([`super::initrd_patch`]): seconds, where regenerating is
/// minutes under emulation. An error leaves the images as they were.
fn append_drivers(root: &Path, tool: &str, missing: &[String]) -> Result<String> {
    let mut seen = Vec::new();
    let mut lines = Vec::new();
    for (kver, initrd) in needs::kernels(root) {
        // /boot/initrd.img (a link) and /boot/initrd.img-KVER are one image.
        let real = std::fs::canonicalize(&initrd).unwrap_or_else(|_| initrd.clone());
        if seen.contains(&real) {
            continue;
        }
        seen.push(real.clone());
        if let Some(p) = super::initrd_patch::add_modules(root, &kver, &real, missing, tool)? {
            // Named as the booted system sees it.
            let inside = Path::new("/").join(real.strip_prefix(root).unwrap_or(&real));
            lines.push(p.line(&kver, &inside));
        }
    }
    if lines.is_empty() {
        bail!("no initramfs of the restored system lacks them");
    }
    Ok(lines.join("; "))
}

/// Regenerates the initramfs, or with `quick` (`initramfs = "auto"`) and
/// nothing but drivers missing, appends them to it.
fn initramfs(c: &Ctx, d: &needs::Decision, quick: bool) -> Result<Vec<String>> {
    let why = &d.why;
    let (tool, argv): (&str, &[&str]) = match has(
        c.root,
        &["update-initramfs", "dracut", "mkinitcpio"],
    ) {
        Some("update-initramfs") => ("update-initramfs", &["update-initramfs", "-u", "-k", "all"]),
        Some("dracut") => ("dracut", &["dracut", "--force", "--regenerate-all"]),
        Some("mkinitcpio") => ("mkinitcpio", &["mkinitcpio", "-P"]),
        _ => {
            return Ok(vec![format!(
                "initramfs: the restored system has no update-initramfs, dracut or mkinitcpio; its initramfs was restored as it was, although {why}"
            )]);
        }
    };
    let mut done = Vec::new();
    match needs::add_drivers(c.root, tool, &d.missing)? {
        Some(line) => done.push(line),
        None if !d.missing.is_empty() => done.push(format!(
            "{tool}: add {} to its modules by hand if the regenerated initramfs still lacks them",
            d.missing.join(" ")
        )),
        None => {}
    }
    if quick && !d.missing.is_empty() && matches!(tool, "update-initramfs" | "dracut") {
        match timed(|| append_drivers(c.root, tool, &d.missing)) {
            Ok(line) => {
                done.push(line);
                return Ok(done);
            }
            Err(e) => {
                let line = format!(
                    "initramfs: {} not appended ({e:#}); regenerating it whole with {tool}",
                    d.missing.join(", ")
                );
                eprintln!("mkrescue: finalize: {line}");
                done.push(line);
            }
        }
    }
    eprintln!("mkrescue: finalize: regenerating the initramfs ({tool}): {why}");
    let bls = needs::bls_entries(c.root);
    if tool == "dracut" && !bls.is_empty() {
        // systemd-boot's entries boot the initrd beside their kernel
        // (kernel-install put it there), which `--regenerate-all` (the
        // /boot/initramfs-KVER.img names) does not write: dracut builds
        // each kernel's once, into the first of its files, and the others
        // get a copy.
        done.push(timed(|| {
            let mut built: Vec<(String, PathBuf)> = Vec::new();
            for (kver, initrd) in needs::kernels(c.root) {
                if let Some((_, first)) = built.iter().find(|(k, _)| *k == kver) {
                    std::fs::copy(first, &initrd).with_context(|| {
                        format!("copying {} to {}", first.display(), initrd.display())
                    })?;
                    continue;
                }
                let inside = Path::new("/").join(initrd.strip_prefix(c.root).unwrap_or(&initrd));
                let image = inside.to_string_lossy().into_owned();
                logged(c, tool, &["dracut", "--force", &image, &kver])?;
                built.push((kver, initrd));
            }
            let files: Vec<String> = built.iter().map(|(_, p)| p.display().to_string()).collect();
            Ok(format!(
                "initramfs regenerated with {tool} ({}): {why}",
                files.join(", ")
            ))
        })?);
        return Ok(done);
    }
    done.push(timed(|| {
        logged(c, tool, argv)?;
        Ok(format!("initramfs regenerated with {tool}: {why}"))
    })?);
    Ok(done)
}

/// GRUB's directory as the restored system's grub-install uses it.
fn grub_dir(install: &str) -> &'static str {
    if install == "grub2-install" {
        "/boot/grub2"
    } else {
        "/boot/grub"
    }
}

/// The restored system's grub-bios-setup, named like its grub-install:
/// in the sbin/bin directories (Fedora's grub2-bios-setup), or where
/// Debian keeps it, /usr/lib/grub/i386-pc/grub-bios-setup. The path as
/// the chroot sees it.
fn bios_setup_tool(root: &Path, install: &str) -> Option<&'static str> {
    if install == "grub2-install" {
        return has(root, &["grub2-bios-setup"]);
    }
    const DEBIAN: &str = "/usr/lib/grub/i386-pc/grub-bios-setup";
    has(root, &["grub-bios-setup"]).or_else(|| {
        root.join(DEBIAN.trim_start_matches('/'))
            .is_file()
            .then_some(DEBIAN)
    })
}

/// A disk path as part of a log file's name (`/dev/vda` -> `vda`).
fn log_name(disk: &str) -> String {
    disk.trim_start_matches("/dev/").replace('/', "_")
}

/// Whether the file system holding GRUB's directory sits on an md array,
/// an LVM volume or a LUKS mapping: then grub-install's core image finds
/// it by that volume's name (GRUB's "abstraction"), whichever disk it is
/// written to.
pub fn grub_dir_on_abstraction(layout: &Layout, install: &str) -> bool {
    let dir = grub_dir(install);
    let Some(m) = layout
        .mounts
        .iter()
        .filter(|m| {
            let t = m.target.trim_end_matches('/');
            dir == t || dir.starts_with(&format!("{t}/")) || t.is_empty()
        })
        .max_by_key(|m| m.target.len())
    else {
        return false;
    };
    let src = m.source.as_str();
    layout.md.iter().any(|a| a.path == src)
        || layout
            .lvm
            .lvs
            .iter()
            .any(|lv| lv.path() == src || lv.mapper_path() == src)
        || layout.luks.iter().any(|l| l.mapper == src)
}

/// Target disks that get GRUB's BIOS boot code: those whose source disk had
/// a `bios_grub` partition (GPT) or an MBR with partitions.
pub fn bios_disks(layout: &Layout, disks: &BTreeMap<String, String>) -> Vec<String> {
    layout
        .disks
        .iter()
        .filter(|d| boots_by_bios(d))
        .filter_map(|d| disks.get(&d.path).cloned())
        .collect()
}

/// Whether GRUB can go on disk `d` for BIOS: a GPT disk with a bios_grub
/// partition (its core image's room), an MBR disk with partitions (the
/// gap before the first one).
pub fn boots_by_bios(d: &crate::layout::Disk) -> bool {
    match d.table {
        Table::Gpt => d
            .partitions
            .iter()
            .any(|p| p.flags.contains(&Flag::BiosGrub)),
        Table::Msdos => !d.partitions.is_empty(),
        Table::None => false,
    }
}

/// The mounted ESP: (its mount point in the host's tree, its source
/// partition), and the other ESP partitions of the layout with a vfat file
/// system (copies on the other RAID members).
pub fn esps(layout: &Layout) -> (Option<(String, String)>, Vec<String>) {
    let esp_parts: Vec<&str> = layout
        .disks
        .iter()
        .flat_map(|d| &d.partitions)
        .filter(|p| p.flags.contains(&Flag::Esp))
        .map(|p| p.path.as_str())
        .collect();
    let mounted = layout
        .mounts
        .iter()
        .filter(|m| m.fstype == "vfat" && esp_parts.contains(&m.source.as_str()))
        .min_by_key(|m| m.target.len())
        .map(|m| (m.target.clone(), m.source.clone()));
    let others = esp_parts
        .iter()
        .filter(|p| mounted.as_ref().is_none_or(|(_, src)| src != *p))
        .filter(|p| {
            layout
                .filesystems
                .iter()
                .any(|f| f.device == **p && f.fstype == "vfat")
        })
        .map(|p| p.to_string())
        .collect();
    (mounted, others)
}

/// Whether the restored system boots with systemd-boot: its ESP (mounted
/// on `esp_dir`) has systemd-boot's binary, and there is no GRUB
/// configuration to boot from.
pub fn uses_systemd_boot(root: &Path, esp_dir: &str) -> bool {
    let esp = root.join(esp_dir.trim_start_matches('/'));
    esp.join("EFI/systemd/systemd-bootx64.efi").is_file()
        && !["boot/grub/grub.cfg", "boot/grub2/grub.cfg"]
            .iter()
            .any(|g| root.join(g).is_file())
}

fn bootloader(c: &Ctx, rewritten: &[String]) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let bios = bios_disks(c.layout, c.disks);
    let (esp, other_esps) = esps(c.layout);
    if bios.is_empty() && esp.is_none() {
        done.push("boot loader: the layout has no bios_grub partition, MBR disk or ESP; nothing installed".into());
        return Ok(done);
    }
    // The boot loader the system booted with, not merely one whose tools
    // are installed: systemd-boot on its ESP and no grub.cfg means bootctl
    // even where grub-install is on the disk too.
    let sdboot = esp
        .as_ref()
        .is_some_and(|(dir, _)| uses_systemd_boot(c.root, dir));
    let install = has(c.root, &["grub-install", "grub2-install"]).filter(|_| !sdboot);
    let mkconfig = has(c.root, &["grub-mkconfig", "grub2-mkconfig"]);
    let Some(install) = install else {
        if let (Some((dir, _)), Some(_)) = (&esp, has(c.root, &["bootctl"])) {
            let esp_path = format!("--esp-path={dir}");
            let mut argv = vec!["bootctl", "install", esp_path.as_str()];
            if !c.efi_booted {
                argv.push("--no-variables");
            }
            chroot(c.root, &argv)
                .output()
                .context("installing systemd-boot with bootctl in the restored system")?;
            done.push(format!("systemd-boot installed onto the ESP at {dir}"));
            return Ok(done);
        }
        bail!(
            "the restored system has no grub-install (or grub2-install, or bootctl with an ESP): cannot make it bootable; install its boot loader by hand in `chroot {}`, or set recover.bootloader = false",
            c.root.display()
        );
    };
    let grub_lib = |platform: &str| {
        ["usr/lib/grub", "usr/lib/grub2"]
            .iter()
            .any(|d| c.root.join(d).join(platform).is_dir())
    };
    let bios_dir = if bios.is_empty() {
        Ok(None)
    } else {
        grub_platform(c, grub_lib("i386-pc"), "i386-pc")
    };
    if let (Target::Bios, Err(e)) = (c.firmware, &bios_dir) {
        // The firmware recovered for would find no boot loader.
        bail!(
            "GRUB for BIOS cannot be installed on {}: {e}",
            bios.join(", ")
        );
    }
    if !bios.is_empty() {
        if let Ok(from) = &bios_dir {
            let setup = bios_setup_tool(c.root, install);
            let shared_core = grub_dir_on_abstraction(c.layout, install);
            let platdir = format!("{}/i386-pc", grub_dir(install));
            let core = c
                .root
                .join(platdir.trim_start_matches('/'))
                .join("core.img");
            for (n, d) in bios.iter().enumerate() {
                if n > 0
                    && shared_core
                    && let Some(setup) = setup
                    && core.is_file()
                {
                    // grub-install on the first disk built core.img; with
                    // GRUB's directory on md, LVM or LUKS that image names
                    // the volume, not the disk it boots from, so it is the
                    // same for every disk (grub-install only writes a
                    // disk-specific image for a plain partition). What is
                    // left per disk is grub-install's last step: boot.img
                    // into the MBR and core.img into the bios_grub
                    // partition or the MBR gap, which grub-bios-setup does
                    // (grub-install calls the same code).
                    eprintln!(
                        "mkrescue: finalize: writing GRUB's boot sector and core image onto {d}"
                    );
                    let dir = format!("--directory={platdir}");
                    let name = format!("grub-bios-setup-{}", log_name(d));
                    done.push(timed(|| {
                        logged(c, &name, &[setup, dir.as_str(), d])?;
                        Ok(format!(
                            "GRUB (BIOS) installed on {d} (the core image grub-install built for {}, written by {setup})",
                            bios[0]
                        ))
                    })?);
                    continue;
                }
                eprintln!("mkrescue: finalize: installing GRUB for BIOS on {d}");
                let name = format!("grub-install-bios-{}", log_name(d));
                let mut argv = vec![install, "--target=i386-pc"];
                if let Some(f) = from {
                    argv.push(f.as_str());
                }
                argv.push(d);
                done.push(timed(|| {
                    logged(c, &name, &argv)?;
                    Ok(format!(
                        "GRUB (BIOS) installed on {d}{}",
                        if from.is_some() {
                            " (with the rescue system's i386-pc files)"
                        } else {
                            ""
                        }
                    ))
                })?);
            }
        } else if let Err(e) = &bios_dir {
            done.push(format!(
                "GRUB (BIOS) not installed on {}: {e}",
                bios.join(", ")
            ));
        }
    }
    if let Some((dir, src)) = &esp {
        let efi_from = grub_platform(
            c,
            grub_lib("x86_64-efi") || grub_lib("x86_64-efi-signed"),
            "x86_64-efi",
        );
        if let (Target::Uefi, Err(e)) = (c.firmware, &efi_from) {
            bail!("GRUB for UEFI cannot be installed onto the ESP at {dir}: {e}");
        }
        if let Ok(from) = &efi_from {
            let efi_dir = format!("--efi-directory={dir}");
            let mut argv = vec![install, "--target=x86_64-efi", efi_dir.as_str()];
            if let Some(f) = from {
                argv.push(f.as_str());
            }
            let help = chroot(c.root, &[install, "--help"])
                .read()
                .unwrap_or_default();
            let target_efibootmgr = has(c.root, &["efibootmgr"]).is_some();
            if !c.efi_booted || !target_efibootmgr {
                // No firmware variables to write (BIOS-booted rescue), or no
                // efibootmgr for grub-install to write them with.
                argv.push("--no-nvram");
            }
            // The removable-media path lets firmware without a boot entry
            // (a new machine, a replaced NVRAM) find the loader.
            if help.contains("--force-extra-removable") {
                argv.push("--force-extra-removable");
            } else if !c.efi_booted {
                argv.push("--removable");
            }
            eprintln!("mkrescue: finalize: installing GRUB for UEFI onto the ESP at {dir}");
            done.push(timed(|| {
                logged(c, "grub-install-efi", &argv)?;
                Ok(format!("GRUB (UEFI) installed onto the ESP at {dir}"))
            })?);
            if c.efi_booted && !target_efibootmgr {
                done.push(boot_entry(c, src, dir)?);
            }
            for o in &other_esps {
                done.push(copy_esp(c, dir, o)?);
            }
            if c.efi_booted && !other_esps.is_empty() {
                // The first disk's entry is there: a missing second one
                // costs redundancy, not the boot; report it, go on.
                match extra_entries(c, dir, &other_esps) {
                    Ok(lines) => done.extend(lines),
                    Err(e) => done.push(format!(
                        "no firmware boot entry for the other ESPs ({e:#}): with the first disk gone the firmware must find \\EFI\\BOOT\\BOOTX64.EFI by itself"
                    )),
                }
            }
        } else if let Err(e) = &efi_from {
            done.push(format!("GRUB (UEFI) not installed onto {dir}: {e}"));
        }
    } else if c.firmware == Target::Uefi {
        done.push(
            "GRUB (UEFI) not installed: the layout has no ESP and none was added (see the firmware lines)"
                .into(),
        );
    }
    let Some(m) = mkconfig else {
        done.push(
            "grub-mkconfig missing in the restored system: its grub.cfg was restored as it was"
                .into(),
        );
        return Ok(done);
    };
    let out = if m == "grub2-mkconfig" {
        "/boot/grub2/grub.cfg"
    } else {
        "/boot/grub/grub.cfg"
    };
    let decision = match c.cfg.boot_menu {
        Regen::Always => needs::Decision::yes("recover.boot_menu = always"),
        Regen::Never => needs::Decision::no("kept: recover.boot_menu = never"),
        // A boot loader for other firmware, or a partition table turned
        // GPT: the restored grub.cfg was made for the other platform
        // (its part_msdos, its video modules); made again.
        Regen::Auto if c.converted => {
            needs::Decision::yes("the layout was converted for this machine's firmware")
        }
        Regen::Auto => {
            let renamed = c
                .dev
                .iter()
                .filter(|(k, v)| k != v)
                .map(|(k, _)| k.clone())
                .collect();
            needs::grub_cfg(
                &c.root.join(out.trim_start_matches('/')),
                &c.root.join("boot"),
                rewritten,
                c.present,
                &renamed,
            )
        }
    };
    if !decision.run {
        eprintln!("mkrescue: finalize: {out} {}", decision.why);
        done.push(format!("{out} {}", decision.why));
        return Ok(done);
    }
    eprintln!("mkrescue: finalize: writing {out} ({m}): {}", decision.why);
    done.push(timed(|| {
        logged(c, m, &[m, "-o", out])?;
        Ok(format!("{out} written by {m}: {}", decision.why))
    })?);
    Ok(done)
}

/// The Debian package of GRUB's `platform` files.
fn grub_package(platform: &str) -> &'static str {
    if platform == "i386-pc" {
        "grub-pc-bin"
    } else {
        "grub-efi-amd64-bin"
    }
}

/// Where grub-install finds GRUB's `platform` files: the restored system's
/// own (`have`: Ok(None)), else a copy of this rescue system's (the image
/// carries them when the host has them) under the work directory, which
/// the chroot sees through the bind of /run, as `--directory=DIR`. Without
/// either: why, naming the package (the caller stops recover when that
/// is the firmware recovered for, else says it in the report).
fn grub_platform(c: &Ctx, have: bool, platform: &str) -> Result<Option<String>, String> {
    lend_grub(c.rescue, c.work_dir, c.root, have, platform)
}

/// [`grub_platform`] with the rescue system's root, the work directory
/// and the restored system's root given.
fn lend_grub(
    rescue_root: &Path,
    work_dir: &Path,
    root: &Path,
    have: bool,
    platform: &str,
) -> Result<Option<String>, String> {
    if have {
        return Ok(None);
    }
    let rescue = rescue_root.join("usr/lib/grub").join(platform);
    let copy = work_dir.join(format!("grub-{platform}"));
    if rescue.join("modinfo.sh").is_file() || rescue.join("kernel.img").is_file() {
        let _ = std::fs::remove_dir_all(&copy);
        match Cmd::new("cp").arg("-a").arg(&rescue).arg(&copy).output() {
            Ok(_) => return Ok(Some(format!("--directory={}", copy.display()))),
            Err(e) => log::warn!("copying {}: {e:#}", rescue.display()),
        }
    }
    let package = grub_package(platform);
    let why = format!(
        "the restored system lacks GRUB's {platform} files and this rescue system has none to lend: install {package} in it (`chroot {} apt-get install {package}`, or on the host, then build a new rescue image) and run recover again",
        root.display()
    );
    Err(why)
}

/// The target disk and partition number of the ESP `esp_src` of the
/// layout, and the partition's new device.
fn esp_target(c: &Ctx, esp_src: &str) -> Result<(String, u32, String)> {
    let part = c.dev.get(esp_src).cloned().unwrap_or(esp_src.to_string());
    let (disk, num) = c
        .layout
        .disks
        .iter()
        .find_map(|d| {
            d.partitions.iter().find(|p| p.path == esp_src).map(|p| {
                (
                    c.disks.get(&d.path).cloned().unwrap_or(d.path.clone()),
                    p.number,
                )
            })
        })
        .with_context(|| format!("ESP {esp_src} is not a partition of the layout"))?;
    Ok((disk, num, part))
}

/// The loader grub-install wrote onto the ESP mounted at `esp_dir`: (the
/// name of its directory under `\EFI`, which is also its entry's label;
/// its path as the firmware sees it). Shim first when present: Secure Boot.
fn esp_loader(c: &Ctx, esp_dir: &str) -> Result<Option<(String, String)>> {
    let efi = c.root.join(esp_dir.trim_start_matches('/')).join("EFI");
    let mut loader = None;
    for entry in std::fs::read_dir(&efi).with_context(|| format!("reading {}", efi.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.eq_ignore_ascii_case("BOOT") {
            continue;
        }
        for f in ["shimx64.efi", "grubx64.efi"] {
            if entry.path().join(f).is_file() && loader.is_none() {
                loader = Some((name.clone(), format!("\\EFI\\{name}\\{f}")));
            }
        }
    }
    Ok(loader)
}

/// A firmware boot entry made with the rescue system's efibootmgr, for a
/// restored system without one. The loader is the one grub-install wrote.
fn boot_entry(c: &Ctx, esp_src: &str, esp_dir: &str) -> Result<String> {
    let (disk, num, part) = esp_target(c, esp_src)?;
    let Some((label, path)) = esp_loader(c, esp_dir)? else {
        bail!("no \\EFI\\*\\grubx64.efi on the ESP {part} after grub-install");
    };
    Cmd::new("efibootmgr")
        .args([
            "--create",
            "--disk",
            &disk,
            "--part",
            &num.to_string(),
            "--label",
            &label,
            "--loader",
            &path,
        ])
        .output()
        .context("creating the firmware boot entry with efibootmgr")?;
    Ok(format!("firmware boot entry {label} -> {path} on {part}"))
}

/// efibootmgr: the restored system's (in its chroot, which sees efivarfs
/// through the bind of /sys), else the rescue system's.
fn efibootmgr(c: &Ctx, args: &[&str]) -> Cmd {
    if has(c.root, &["efibootmgr"]).is_some() {
        let mut argv = vec!["efibootmgr"];
        argv.extend_from_slice(args);
        chroot(c.root, &argv)
    } else {
        Cmd::new("efibootmgr").args(args)
    }
}

/// One more firmware boot entry per copy of the ESP (the other RAID1
/// members'), right after the first disk's in BootOrder: grub-install's entry
/// names only the ESP it installed onto, so with that disk gone the
/// firmware would fall to whatever comes next (on OVMF the EFI shell)
/// instead of the identical loader on the surviving disk. Entries of an
/// earlier recover with the same label are replaced. Labels: `LABEL ESP2`,
/// `LABEL ESP3`, ...
fn extra_entries(c: &Ctx, esp_dir: &str, other_esps: &[String]) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let Some((label, path)) = esp_loader(c, esp_dir)? else {
        return Ok(done);
    };
    let before = efiboot::parse(
        &efibootmgr(c, &[])
            .read()
            .context("reading the firmware boot entries with efibootmgr")?,
    );
    let mut labels = Vec::new();
    for (i, o) in other_esps.iter().enumerate() {
        let (disk, num, part) = esp_target(c, o)?;
        let l = format!("{label} ESP{}", i + 2);
        for old in before.with_label(&l) {
            efibootmgr(c, &["--bootnum", &format!("{old:04X}"), "--delete-bootnum"])
                .output()
                .with_context(|| format!("deleting the old firmware boot entry {old:04X} ({l})"))?;
        }
        // --create-only: not to the front of BootOrder, where --create puts
        // it; the first disk's entry stays first.
        efibootmgr(
            c,
            &[
                "--create-only",
                "--disk",
                &disk,
                "--part",
                &num.to_string(),
                "--label",
                &l,
                "--loader",
                &path,
            ],
        )
        .output()
        .with_context(|| format!("creating the firmware boot entry {l} for the ESP {part}"))?;
        done.push(format!("firmware boot entry {l} -> {path} on {part}"));
        labels.push(l);
    }
    let after = efiboot::parse(
        &efibootmgr(c, &[])
            .read()
            .context("reading the firmware boot entries with efibootmgr")?,
    );
    let new: Vec<u16> = labels.iter().flat_map(|l| after.with_label(l)).collect();
    let order: Vec<u16> = after
        .order
        .iter()
        .copied()
        .filter(|n| after.entry(*n).is_some())
        .collect();
    // The first disk's entry (grub-install's, same label), first in order.
    let first = order
        .iter()
        .copied()
        .find(|n| after.entry(*n).is_some_and(|e| e.label == label));
    efibootmgr(
        c,
        &["--bootorder", &efiboot::order_arg(&order, first, &new)],
    )
    .output()
    .context("appending the new firmware boot entries to BootOrder with efibootmgr")?;
    Ok(done)
}

/// Copies the `\EFI` tree of the mounted ESP onto another ESP (the other
/// RAID1 member's), so the firmware boots from either disk.
fn copy_esp(c: &Ctx, esp_dir: &str, other_src: &str) -> Result<String> {
    let part = c
        .dev
        .get(other_src)
        .cloned()
        .unwrap_or(other_src.to_string());
    let at: PathBuf = c.work_dir.join("esp-copy");
    std::fs::create_dir_all(&at).with_context(|| format!("creating {}", at.display()))?;
    Cmd::new("mount")
        .args(["-t", "vfat", &part])
        .arg(&at)
        .output()
        .with_context(|| format!("mounting the second ESP {part}"))?;
    let src = c.root.join(esp_dir.trim_start_matches('/')).join("EFI");
    let copied = Cmd::new("cp")
        .args(["-r", "--no-preserve=all"])
        .arg(&src)
        .arg(&at)
        .output()
        .with_context(|| format!("copying {} onto the ESP {part}", src.display()));
    let unmounted = Cmd::new("umount").arg(&at).output();
    copied?;
    unmounted.with_context(|| format!("unmounting {part}"))?;
    Ok(format!("\\EFI copied onto the ESP {part}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// systemd-boot on the ESP and no grub.cfg: bootctl, even with GRUB's
    /// tools installed; a grub.cfg makes it GRUB's system again.
    #[test]
    fn systemd_boot_is_what_the_esp_boots_without_a_grub_cfg() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("boot/EFI/systemd")).unwrap();
        assert!(!uses_systemd_boot(r, "/boot"));
        std::fs::write(r.join("boot/EFI/systemd/systemd-bootx64.efi"), b"MZ").unwrap();
        assert!(uses_systemd_boot(r, "/boot"));
        assert!(!uses_systemd_boot(r, "/boot/efi"));
        std::fs::create_dir_all(r.join("boot/grub")).unwrap();
        std::fs::write(r.join("boot/grub/grub.cfg"), b"menuentry").unwrap();
        assert!(!uses_systemd_boot(r, "/boot"));
    }

    /// A new ESP's line goes at the end of the restored fstab, the
    /// restored file kept; a second run (or an fstab that mounts
    /// /boot/efi already) adds nothing; a copy the device rewrite kept
    /// first is the restored one and stays.
    #[test]
    fn a_new_esp_is_added_to_fstab_once_and_the_original_kept() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        let restored = "UUID=abc / ext4 errors=remount-ro 0 1\n# /boot/efi was never here\n";
        std::fs::write(r.join("etc/fstab"), restored).unwrap();
        let line = "UUID=65FA-B754 /boot/efi vfat umask=0077 0 1".to_string();
        let said = add_fstab(r, std::slice::from_ref(&line)).unwrap().unwrap();
        assert!(said.starts_with("/etc/fstab: UUID=65FA-B754 /boot/efi vfat umask=0077 0 1 added for the new ESP (original in "), "{said}");
        let now = std::fs::read_to_string(r.join("etc/fstab")).unwrap();
        assert_eq!(
            now,
            format!(
                "{restored}# added by mkrescue recover: the EFI system partition it made for UEFI\n{line}\n"
            )
        );
        assert_eq!(
            std::fs::read_to_string(r.join("etc/fstab.mkrescue-orig")).unwrap(),
            restored
        );
        assert_eq!(add_fstab(r, std::slice::from_ref(&line)).unwrap(), None);
        assert_eq!(
            std::fs::read_to_string(r.join("etc/fstab.mkrescue-orig")).unwrap(),
            restored
        );
        assert_eq!(add_fstab(r, &[]).unwrap(), None);
    }

    /// GRUB's files the restored system lacks come from the rescue
    /// system (a copy under the work directory, which the chroot sees);
    /// without them the error names the package.
    #[test]
    fn grub_files_are_lent_from_the_rescue_system_or_the_package_named() {
        let t = tempfile::tempdir().unwrap();
        let (rescue, work, root) = (t.path().join("r"), t.path().join("w"), t.path().join("t"));
        std::fs::create_dir_all(&work).unwrap();
        assert_eq!(
            lend_grub(&rescue, &work, &root, true, "x86_64-efi"),
            Ok(None)
        );
        let e = lend_grub(&rescue, &work, &root, false, "x86_64-efi").unwrap_err();
        assert!(
            e.contains("install grub-efi-amd64-bin in it (`chroot "),
            "{e}"
        );
        let e = lend_grub(&rescue, &work, &root, false, "i386-pc").unwrap_err();
        assert!(e.contains("install grub-pc-bin"), "{e}");
        let lib = rescue.join("usr/lib/grub/x86_64-efi");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(lib.join("kernel.img"), b"grub").unwrap();
        let dir = lend_grub(&rescue, &work, &root, false, "x86_64-efi").unwrap();
        assert_eq!(
            dir,
            Some(format!(
                "--directory={}",
                work.join("grub-x86_64-efi").display()
            ))
        );
        assert!(work.join("grub-x86_64-efi/kernel.img").is_file());
    }

    #[test]
    fn only_renamed_whole_tokens_change() {
        let dev: BTreeMap<String, String> = [
            ("/dev/sda".into(), "/dev/nvme0n1".into()),
            ("/dev/sda1".into(), "/dev/nvme0n1p1".into()),
            ("/dev/sdb1".into(), "/dev/sdb1".into()),
        ]
        .into();
        let fstab = "# /dev/sda1 was the old root\n/dev/sda1 / ext4 defaults 0 1\nUUID=abc /home xfs defaults 0 2\n/dev/sda10 /srv ext4 defaults 0 2\n";
        let new = rewrite_devices(fstab, &dev).unwrap();
        assert_eq!(
            new,
            "# /dev/sda1 was the old root\n/dev/nvme0n1p1 / ext4 defaults 0 1\nUUID=abc /home xfs defaults 0 2\n/dev/sda10 /srv ext4 defaults 0 2\n"
        );
        let mdadm = "ARRAY /dev/md0 metadata=1.2 devices=/dev/sda1,/dev/sdb1\n";
        assert_eq!(
            rewrite_devices(mdadm, &dev).unwrap(),
            "ARRAY /dev/md0 metadata=1.2 devices=/dev/nvme0n1p1,/dev/sdb1\n"
        );
        let grub = "GRUB_CMDLINE_LINUX=\"root=/dev/sda1 quiet\"\n";
        assert_eq!(
            rewrite_devices(grub, &dev).unwrap(),
            "GRUB_CMDLINE_LINUX=\"root=/dev/nvme0n1p1 quiet\"\n"
        );
        // Nothing renamed (UUIDs, same names): the file is left alone.
        assert_eq!(
            rewrite_devices(
                "UUID=abc / ext4 defaults 0 1\n/dev/sdb1 /x ext4 defaults 0 2",
                &dev
            ),
            None
        );
    }

    fn layout2() -> Layout {
        Layout::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/layout/layout2.json"
        )))
        .unwrap()
    }

    /// The BIOS core image is shared between disks only when GRUB's
    /// directory sits on md, LVM or LUKS; a plain /boot partition makes
    /// grub-install write a disk-specific image.
    #[test]
    fn core_image_is_shared_only_on_an_abstraction() {
        let mount = |target: &str, source: &str| crate::layout::Mount {
            target: target.into(),
            source: source.into(),
            fstype: "ext4".into(),
            options: "rw".into(),
            fsroot: None,
        };
        let mut l = layout2();
        assert!(!grub_dir_on_abstraction(&l, "grub-install"), "no mounts");
        l.mounts = vec![mount("/", "/dev/mapper/vg0-root")];
        assert!(grub_dir_on_abstraction(&l, "grub-install"));
        assert!(grub_dir_on_abstraction(&l, "grub2-install"));
        l.mounts.push(mount("/boot", "/dev/sda1"));
        assert!(!grub_dir_on_abstraction(&l, "grub-install"), "plain /boot");
        l.mounts[1] = mount("/boot", "/dev/md0");
        assert!(grub_dir_on_abstraction(&l, "grub-install"), "/boot on md");
        // /boot/efi does not hold /boot/grub; /bootx is not /boot.
        l.mounts = vec![
            mount("/", "/dev/sda2"),
            mount("/boot/efi", "/dev/md0"),
            mount("/bootx", "/dev/vg0/root"),
        ];
        assert!(!grub_dir_on_abstraction(&l, "grub-install"));
    }

    /// Debian keeps grub-bios-setup out of PATH (the e2e server's first
    /// run with the shared core image fell back to grub-install for it).
    #[test]
    fn grub_bios_setup_is_found_where_debian_and_fedora_keep_it() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        assert_eq!(bios_setup_tool(r, "grub-install"), None);
        std::fs::create_dir_all(r.join("usr/lib/grub/i386-pc")).unwrap();
        std::fs::write(r.join("usr/lib/grub/i386-pc/grub-bios-setup"), "").unwrap();
        assert_eq!(
            bios_setup_tool(r, "grub-install"),
            Some("/usr/lib/grub/i386-pc/grub-bios-setup")
        );
        assert_eq!(bios_setup_tool(r, "grub2-install"), None);
        std::fs::create_dir_all(r.join("usr/sbin")).unwrap();
        std::fs::write(r.join("usr/sbin/grub2-bios-setup"), "").unwrap();
        assert_eq!(
            bios_setup_tool(r, "grub2-install"),
            Some("grub2-bios-setup")
        );
    }

    #[test]
    fn grub_goes_on_every_disk_with_bios_grub() {
        let l = layout2();
        let disks: BTreeMap<String, String> = [
            ("/dev/vdc".into(), "/dev/sda".into()),
            ("/dev/vdd".into(), "/dev/sdb".into()),
        ]
        .into();
        let mut got = bios_disks(&l, &disks);
        got.sort();
        assert_eq!(got, ["/dev/sda", "/dev/sdb"]);
        let (esp, others) = esps(&l);
        assert_eq!(esp, None);
        assert!(others.is_empty());
    }
}
