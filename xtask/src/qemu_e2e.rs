//! `cargo xtask qemu e2e`: the whole disaster cycle in QEMU (issue 7).
//!
//! 1. rootfs: a Debian 12 system made by debootstrap, cached as a tarball
//!    under target/e2e/ keyed by a hash of its package list.
//! 2. provision: mkrescue's own rescue initramfs of this host installs it on
//!    two blank virtio disks (GPT bios_grub + ESP + md RAID1, LVM with an
//!    ext4 root, an xfs /home and swap), GRUB on both disks, mkrescue and
//!    test data; the list of every test file (sha256, owner, mode, xattrs)
//!    comes back here.
//! 3. before: the server boots from its disks, saves its layout, backs up
//!    to the backup disk and writes its rescue ISO there; the ISO is read
//!    out of the backup disk image with debugfs (no mount on this machine).
//! 4. recover: both system disks are replaced by blank ones (one the same
//!    size, one twice as big), the ISO boots as a CD-ROM and recovers
//!    unattended.
//! 5. after: the recovered server boots, every file is compared; then one
//!    RAID member is pulled and it must still boot.
//!
//! Every VM is driven the same way: an IN disk (a tar on a raw image, found
//! by its serial) carries the scripts of tests/qemu/e2e/ and the phase to
//! run, an OUT disk carries results back as a tar. The serial console of
//! every VM is logged to target/qemu/e2e-PHASE.log and left there; the
//! report with each phase's wall time goes to target/qemu/e2e-report.json.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::util;

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
const PACKAGES: &[&str] = &[
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
];

const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";
const CACHE: &str = "target/e2e";

/// The rootfs tarball, built by debootstrap unless cached. Returns its path.
pub fn rootfs() -> Result<PathBuf> {
    rootfs_logged(None)
}

/// [`rootfs`], with the output of debootstrap, chroot and tar appended to
/// `log` instead of this terminal when given: `cargo xtask ci` builds it in
/// a background thread while clippy and the tests run (debootstrap is
/// mostly downloads and dpkg, a few minutes of mostly idle CPU).
pub fn rootfs_logged(log: Option<&Path>) -> Result<PathBuf> {
    let run = |program: &str, args: &[&str]| -> Result<()> {
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
    };
    let key = cache_key()?;
    let tar = PathBuf::from(CACHE).join(format!("rootfs-{key}.tar"));
    if tar.exists() {
        eprintln!("rootfs cached: {}", tar.display());
        return Ok(tar);
    }
    std::fs::create_dir_all(CACHE).with_context(|| format!("creating {CACHE}"))?;
    let dir = PathBuf::from(CACHE).join(format!("rootfs-{key}"));
    if dir.exists() {
        // A half-finished debootstrap: start again.
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let dirs = dir.to_str().context("non-UTF-8 cache path")?;
    let include = format!("--include={}", PACKAGES.join(","));
    run(
        "debootstrap",
        &["--variant=minbase", &include, SUITE, dirs, MIRROR],
    )?;
    // The package cache is 100+ MB the server never needs.
    run("chroot", &[dirs, "apt-get", "clean"])?;
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
    // Tarballs of older package lists are never used again.
    for e in std::fs::read_dir(CACHE)?.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("rootfs-") && n.ends_with(".tar") && e.path() != tar {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(tar)
}

/// sha256 of what makes the rootfs, first 16 hex digits.
fn cache_key() -> Result<String> {
    let text = format!("{SUITE}\n{MIRROR}\nminbase\n{}\n", PACKAGES.join("\n"));
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
fn pad_to_mib(p: &Path) -> Result<()> {
    let len = std::fs::metadata(p)
        .with_context(|| format!("reading {}", p.display()))?
        .len();
    set_len(p, len.div_ceil(1 << 20) * (1 << 20))
}

fn set_len(p: &Path, len: u64) -> Result<()> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(p)
        .with_context(|| format!("creating {}", p.display()))?;
    f.set_len(len)
        .with_context(|| format!("sizing {}", p.display()))
}

/// Where the disk images, the ISO and the phases' results go.
const WORK: &str = "target/qemu/e2e";
/// The report of the last run.
const REPORT: &str = "target/qemu/e2e-report.json";
/// The system disks: 6 GiB each; the replacement for DISK2 is twice as big.
const DISK_MIB: u64 = 6 << 10;
/// The backup disk: one ext4 file system without a partition table, so
/// the harness reads the ISO out of it with debugfs(8).
const BACKUP_MIB: u64 = 4 << 10;
/// Its UUID, fixed so the server's fstab can name it before it exists.
const BACKUP_UUID: &str = "6d6b7265-7363-7565-2d65-326562616b75";
/// What the server's phase runner prints once multi-user is reached.
const SERVER_READY: &str = "MKR-E2E-READY";
/// What init prints when `mkrescue recover --unattended` is done.
const RECOVER_OK: &str = "mkrescue: recover finished";
const RECOVER_FAILED: &str = "mkrescue: recover failed";

/// Serial console lines that mean a boot has gone wrong for good: stop
/// waiting and name it.
const FATAL: &[(&str, &str)] = &[
    (
        "grub rescue>",
        "GRUB found no usable /boot (grub rescue prompt)",
    ),
    ("Entering emergency mode", "systemd entered emergency mode"),
    (
        "Give root password for maintenance",
        "systemd wants a root password for maintenance",
    ),
    ("(initramfs) ", "the initramfs dropped to its shell"),
    ("Kernel panic", "kernel panic"),
    (
        "No bootable device",
        "the firmware found no bootable device",
    ),
];

/// The phases, in order; `--from` names one of them.
pub const PHASES: &[&str] = &["provision", "before", "recover", "after", "degraded"];

/// Scenarios: `raid1-lvm` (the default), `luks-lvm`.
pub const SCENARIOS: &[&str] = &["raid1-lvm", "luks-lvm"];

/// How the recover VM starts the rescue system (`--boot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boot {
    /// The ISO from the backup disk as a CD-ROM.
    Iso,
    /// The PXE tree from the backup disk over QEMU's built-in TFTP.
    Pxe,
}

/// The firmware of the recover, after and degraded VMs (`--firmware`);
/// provision and before are always BIOS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    Bios,
    /// OVMF, with a VARS file of its own per variant that recover's boot
    /// entries live in for the later boots.
    Uefi,
}

/// The disaster half of the cycle (recover, after, degraded); provision
/// and before are shared by all variants of a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    pub boot: Boot,
    pub firmware: Firmware,
}

impl Default for Variant {
    fn default() -> Self {
        Variant {
            boot: Boot::Iso,
            firmware: Firmware::Bios,
        }
    }
}

impl Variant {
    /// From `--boot iso|pxe` and `--firmware bios|uefi`.
    pub fn parse(boot: &str, firmware: &str) -> Result<Variant> {
        let boot = match boot {
            "iso" => Boot::Iso,
            "pxe" => Boot::Pxe,
            o => bail!("--boot {o}: one of iso, pxe"),
        };
        let firmware = match firmware {
            "bios" => Firmware::Bios,
            "uefi" => Firmware::Uefi,
            o => bail!("--firmware {o}: one of bios, uefi"),
        };
        if boot == Boot::Pxe && firmware == Firmware::Uefi {
            // The tree has grubx64.efi for it, but nothing here has booted
            // it under OVMF yet.
            bail!("--boot pxe --firmware uefi is not a variant yet; pxe runs under BIOS");
        }
        Ok(Variant { boot, firmware })
    }

    /// Appended to the scenario in log and phase names: nothing for the
    /// default (names stay as they were), `-uefi`, `-pxe`.
    pub fn suffix(&self) -> &'static str {
        match (self.boot, self.firmware) {
            (Boot::Iso, Firmware::Bios) => "",
            (Boot::Iso, Firmware::Uefi) => "-uefi",
            (Boot::Pxe, Firmware::Bios) => "-pxe",
            (Boot::Pxe, Firmware::Uefi) => "-pxe-uefi",
        }
    }

    /// The variant's own directory under the scenario's: its new disks,
    /// VARS file, PXE tree and check results.
    pub fn dir(&self) -> &'static str {
        match (self.boot, self.firmware) {
            (Boot::Iso, Firmware::Bios) => "iso-bios",
            (Boot::Iso, Firmware::Uefi) => "iso-uefi",
            (Boot::Pxe, Firmware::Bios) => "pxe-bios",
            (Boot::Pxe, Firmware::Uefi) => "pxe-uefi",
        }
    }
}

/// OVMF of Debian's `ovmf` package: the code (read-only) and the template
/// of the variable store each variant copies.
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// Where the PXE tree lies on the backup disk (before.sh) and the file the
/// firmware's PXE ROM asks QEMU's DHCP for.
const PXE_ON_BACKUP: &str = "/rescue-pxe";
const PXE_BOOTFILE: &str = "pxelinux.0";

/// One virtio disk of a VM.
struct Disk {
    serial: &'static str,
    path: PathBuf,
    /// Firmware boot order (`bootindex`), for the disks it may boot from.
    boot: Option<u32>,
    /// The guest cannot write it (the cached rootfs tarball).
    readonly: bool,
}

/// How to start and drive one VM.
struct Vm {
    /// Log name: target/qemu/e2e-NAME.log.
    name: String,
    /// `-kernel`, `-initrd`, `-append`.
    kernel: Option<(PathBuf, PathBuf, String)>,
    cdrom: Option<PathBuf>,
    /// UEFI: the VM's own OVMF variable store (boot entries survive in it
    /// from one VM to the next); None: SeaBIOS.
    uefi_vars: Option<PathBuf>,
    /// Network boot: (TFTP root, boot file) served by QEMU's user-mode
    /// DHCP/TFTP to a virtio NIC that boots first.
    tftp: Option<(PathBuf, String)>,
    disks: Vec<Disk>,
    /// Waited for; its wall time is "boot to ready".
    ready: &'static str,
    /// Typed on the serial console once `ready` shows.
    type_on_ready: Option<String>,
    /// (prompt, reply): typed once each when the prompt shows.
    answers: Vec<(&'static str, String)>,
    /// Lines whose first appearance is timed too.
    timed: Vec<&'static str>,
    /// A line that ends the run as failed (after a grace period for the
    /// rest of the output), e.g. a non-zero exit marker.
    fail_when: Vec<&'static str>,
    timeout: Duration,
}

/// What a VM run saw.
struct VmRun {
    /// Wall seconds from QEMU's start to each `ready`/`timed` line.
    seen: BTreeMap<&'static str, f64>,
    total: f64,
    log: PathBuf,
    text: String,
}

impl VmRun {
    /// Guest-measured times: `MKR-E2E-TIME NAME VALUE` lines.
    fn guest_times(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for l in self.text.lines() {
            // systemd prefixes the console lines of a service.
            if let Some(at) = l.find("MKR-E2E-TIME ") {
                let rest = &l[at + "MKR-E2E-TIME ".len()..];
                let mut w = rest.split_whitespace();
                if let (Some(k), Some(v)) = (w.next(), w.next()) {
                    out.insert(k.to_string(), v.to_string());
                }
            }
        }
        out
    }
}

/// QEMU's arguments for `vm`, its serial console logged to `log`.
fn qemu_args(vm: &Vm, log: &Path) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut add = |xs: &[&str]| a.extend(xs.iter().map(|x| x.to_string()));
    add(&[
        "-accel", "tcg", "-machine", "q35", "-m", "2048", "-smp", "2",
    ]);
    add(&["-display", "none", "-monitor", "none", "-no-reboot"]);
    add(&[
        "-chardev",
        &format!("stdio,id=s0,signal=off,logfile={}", log.display()),
        "-serial",
        "chardev:s0",
    ]);
    if let Some(vars) = &vm.uefi_vars {
        // OVMF as two flash chips: the code read-only, the variables
        // writable (QEMU docs, "pflash"; OVMF README).
        add(&[
            "-drive",
            &format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"),
            "-drive",
            &format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
        ]);
    }
    match &vm.tftp {
        // restrict=on: the guest reaches nothing outside QEMU; its DHCP and
        // TFTP still answer (QEMU docs, "-netdev user").
        Some((dir, file)) => add(&[
            "-netdev",
            &format!(
                "user,id=n0,restrict=on,tftp={},bootfile={file}",
                dir.display()
            ),
            "-device",
            "virtio-net-pci,netdev=n0,bootindex=0",
        ]),
        // No NIC: QEMU's default one is unrestricted user networking.
        None => add(&["-nic", "none"]),
    }
    if let Some((k, i, append)) = &vm.kernel {
        add(&["-kernel", &k.display().to_string()]);
        add(&["-initrd", &i.display().to_string(), "-append", append]);
    }
    if let Some(iso) = &vm.cdrom {
        add(&[
            "-drive",
            &format!(
                "file={},if=none,id=cd,media=cdrom,readonly=on,format=raw",
                iso.display()
            ),
            "-device",
            "ide-cd,drive=cd,bootindex=0",
        ]);
    }
    for (i, d) in vm.disks.iter().enumerate() {
        let boot = d
            .boot
            .map(|b| format!(",bootindex={b}"))
            .unwrap_or_default();
        add(&[
            "-drive",
            &format!(
                // detect-zeroes/discard=unmap: zeros the guest writes (md's
                // initial resync copies 6 GiB of them) stay holes in the
                // sparse image instead of filling the host's disk.
                // werror/rerror=report: a host I/O error (its disk full)
                // reaches the guest as one, instead of pausing the VM
                // until the phase's timeout.
                "file={},if=none,id=d{i},format=raw,cache=unsafe,detect-zeroes=unmap,discard=unmap,werror=report,rerror=report{}",
                d.path.display(),
                if d.readonly { ",readonly=on" } else { "" }
            ),
            "-device",
            &format!("virtio-blk-pci,drive=d{i},serial={}{boot}", d.serial),
        ]);
    }
    a
}

/// Below this the host's disk counts as full while a VM runs.
const LOW_SPACE: u64 = 64 << 20;

/// Boots `vm`, drives it, waits until QEMU exits (the guest powers off).
fn run_vm(vm: &Vm) -> Result<VmRun> {
    let log = PathBuf::from(format!("target/qemu/e2e-{}.log", vm.name));
    std::fs::create_dir_all("target/qemu")?;
    let _ = std::fs::remove_file(&log);
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(qemu_args(vm, &log));
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    eprintln!("$ {cmd:?}");
    let mut child = cmd
        .spawn()
        .context("cannot start qemu-system-x86_64 (apt-get install qemu-system-x86)")?;
    let start = Instant::now();
    let mut seen: BTreeMap<&'static str, f64> = BTreeMap::new();
    let mut typed = vm.type_on_ready.is_none();
    let mut answered = vec![false; vm.answers.len()];
    let mut failing: Option<(Instant, String)> = None;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        let text = read_log(&log);
        let now = start.elapsed().as_secs_f64();
        for m in std::iter::once(vm.ready).chain(vm.timed.iter().copied()) {
            if !seen.contains_key(m) && text.contains(m) {
                eprintln!("[{}] {now:.0}s: {m}", vm.name);
                seen.insert(m, now);
            }
        }
        if !typed && seen.contains_key(vm.ready) {
            // Give the shell a moment to print its prompt.
            std::thread::sleep(Duration::from_millis(1500));
            type_line(&mut child, vm.type_on_ready.as_deref().unwrap_or(""))?;
            typed = true;
        }
        for (i, (prompt, reply)) in vm.answers.iter().enumerate() {
            if !answered[i] && text.contains(prompt) {
                std::thread::sleep(Duration::from_millis(500));
                type_line(&mut child, reply)?;
                answered[i] = true;
            }
        }
        if failing.is_none() {
            let why = FATAL
                .iter()
                .find(|(pat, _)| text.contains(pat))
                .map(|(_, why)| why.to_string())
                .or_else(|| {
                    vm.fail_when
                        .iter()
                        .find(|p| text.contains(*p))
                        .map(|p| format!("`{p}` on the console"))
                });
            if let Some(why) = why {
                failing = Some((Instant::now(), why));
            }
        }
        if let Some((at, why)) = &failing
            && at.elapsed() > Duration::from_secs(20)
        {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "VM {}: {why}; serial log {}:\n{}",
                vm.name,
                log.display(),
                tail(&mkrescue_lines(&read_log(&log)), 60)
            );
        }
        if let Ok(free) = util::free_bytes(Path::new("target/qemu"))
            && free < LOW_SPACE
        {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "VM {}: the host's disk is full ({} MiB left under target/qemu), so the VM's writes fail; free space there and run again; serial log {}:\n{}",
                vm.name,
                free >> 20,
                log.display(),
                tail(&mkrescue_lines(&read_log(&log)), 30)
            );
        }
        if start.elapsed() > vm.timeout {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "VM {}: {} within {}s; serial log {}:\n{}",
                vm.name,
                if seen.contains_key(vm.ready) {
                    "no power-off".to_string()
                } else {
                    format!("no `{}`", vm.ready)
                },
                vm.timeout.as_secs(),
                log.display(),
                tail(&read_log(&log), 60)
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let text = read_log(&log);
    let total = start.elapsed().as_secs_f64();
    // The guest may print its failure and power off between two polls.
    if failing.is_none() {
        failing = FATAL
            .iter()
            .find(|(pat, _)| text.contains(pat))
            .map(|(_, why)| why.to_string())
            .or_else(|| {
                vm.fail_when
                    .iter()
                    .find(|p| text.contains(*p))
                    .map(|p| format!("`{p}` on the console"))
            })
            .map(|why| (Instant::now(), why));
    }
    eprintln!(
        "[{}] QEMU exited ({status}) after {total:.0}s; serial log {}",
        vm.name,
        log.display()
    );
    if let Some((_, why)) = failing {
        bail!(
            "VM {}: {why}; serial log {}:\n{}",
            vm.name,
            log.display(),
            tail(&mkrescue_lines(&text), 60)
        );
    }
    if !seen.contains_key(vm.ready) {
        bail!(
            "VM {}: powered off without `{}`; serial log {}:\n{}",
            vm.name,
            vm.ready,
            log.display(),
            tail(&text, 60)
        );
    }
    Ok(VmRun {
        seen,
        total,
        log,
        text,
    })
}

fn type_line(child: &mut std::process::Child, line: &str) -> Result<()> {
    let stdin = child.stdin.as_mut().context("qemu stdin")?;
    stdin.write_all(line.as_bytes())?;
    stdin.write_all(b"\n")?;
    stdin.flush()?;
    Ok(())
}

/// The serial log without terminal escape sequences (firmware and GRUB
/// print them) and carriage returns.
fn read_log(log: &Path) -> String {
    let raw = std::fs::read(log).unwrap_or_default();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            0x1b => {
                // ESC [ params final-byte (ECMA-48 CSI), or ESC + one byte.
                i += 1;
                if raw.get(i) == Some(&b'[') {
                    i += 1;
                    while i < raw.len() && !(0x40..=0x7e).contains(&raw[i]) {
                        i += 1;
                    }
                }
                i += 1;
            }
            // CR, and SO/SI (the boot menus' line-drawing character set).
            b'\r' | 0x0e | 0x0f => i += 1,
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The lines of mkrescue (init, recover) and of the phase scripts, without
/// the kernel's and systemd's chatter in between; all of it when there are
/// none.
fn mkrescue_lines(text: &str) -> String {
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| (l.contains("mkrescue") || l.contains("MKR-")) && !l.contains("qqqq"))
        .collect();
    if ours.is_empty() {
        text.to_string()
    } else {
        ours.join("\n")
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A tar of `files` (path inside, host path) on a raw image padded to
/// whole MiB: the IN disk.
fn in_disk(path: &Path, env: &str, bin: &Path) -> Result<()> {
    let stage = path.with_extension("d");
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage)?;
    std::fs::write(stage.join("env"), env)?;
    // The LUKS passphrase as a key file: no newline, as luksFormat
    // --key-file takes the whole file and the boot prompt takes a line.
    std::fs::write(stage.join("luks.key"), luks_passphrase())?;
    std::fs::copy(bin, stage.join("mkrescue"))
        .with_context(|| format!("copying {}", bin.display()))?;
    let st = Command::new("cp")
        .args(["-r", "tests/qemu/e2e"])
        .arg(stage.join("e2e"))
        .status()?;
    if !st.success() {
        bail!("copying tests/qemu/e2e");
    }
    let _ = std::fs::remove_file(path);
    let st = Command::new("tar")
        .arg("cf")
        .arg(path)
        .arg("-C")
        .arg(&stage)
        .arg(".")
        .status()
        .context("running tar")?;
    if !st.success() {
        bail!("tar of {} failed", stage.display());
    }
    pad_to_mib(path)
}

/// A blank raw disk (sparse).
fn blank(path: &Path, mib: u64) -> Result<()> {
    let _ = std::fs::remove_file(path);
    set_len(path, mib << 20)
}

/// Unpacks the OUT disk (a tar written by the guest) into `dir`.
fn read_out(img: &Path, dir: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let st = Command::new("tar")
        .arg("xf")
        .arg(img)
        .arg("-C")
        .arg(dir)
        .status()
        .context("running tar")?;
    if !st.success() {
        bail!("no results on the OUT disk {}", img.display());
    }
    Ok(())
}

/// The run's state: paths, options and the report so far.
struct E2e {
    scenario: String,
    variant: Variant,
    bin: PathBuf,
    /// The scenario's directory: provision's and before's disks and results.
    work: PathBuf,
    /// The variant's directory below it: recover's, after's, degraded's.
    vwork: PathBuf,
    report: Vec<Value>,
    /// Delete DISK1/DISK2 once `before` has backed them up (CI: the
    /// disaster needs only the backup disk, and CI's disk is small).
    prune_old: bool,
}

impl E2e {
    /// A file of the scenario (shared by the variants).
    fn p(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    /// A file of this variant.
    fn v(&self, name: &str) -> PathBuf {
        self.vwork.join(name)
    }

    /// provision and before belong to the scenario, the rest to the variant.
    fn phase_dir(&self, phase: &str) -> &Path {
        match phase {
            "provision" | "before" => &self.work,
            _ => &self.vwork,
        }
    }

    /// Log name of a phase's VM (target/qemu/e2e-NAME.log) and, for the
    /// variant's phases, the phase's name in the report:
    /// `raid1-lvm-uefi-recover`, `recover-uefi`.
    fn vm_name(&self, phase: &str) -> String {
        match phase {
            "provision" | "before" => format!("{}-{phase}", self.scenario),
            _ => format!("{}{}-{phase}", self.scenario, self.variant.suffix()),
        }
    }

    fn phase_name(&self, phase: &str) -> String {
        format!("{phase}{}", self.variant.suffix())
    }

    /// The VARS file of a UEFI variant's VMs; None under BIOS.
    fn uefi_vars(&self) -> Option<PathBuf> {
        (self.variant.firmware == Firmware::Uefi).then(|| self.v("OVMF_VARS.fd"))
    }

    fn env(&self, phase: &str) -> String {
        format!(
            "PHASE={phase}\nSCENARIO={}\nBACKUP_UUID={BACKUP_UUID}\n",
            self.scenario
        )
    }

    /// Records one phase in the report (and prints it).
    fn record(&mut self, name: &str, wall: f64, details: Value) {
        eprintln!("e2e phase {name}: {wall:.1}s {details}");
        self.report
            .push(json!({"phase": name, "ok": true, "seconds": round1(wall), "details": details}));
    }

    fn write_report(&self, failed: Option<(&str, String)>) -> Result<()> {
        let total: f64 = self
            .report
            .iter()
            .filter_map(|p| p["seconds"].as_f64())
            .sum();
        let doc = json!({
            "scenario": self.scenario,
            "variant": {
                "boot": format!("{:?}", self.variant.boot).to_lowercase(),
                "firmware": format!("{:?}", self.variant.firmware).to_lowercase(),
            },
            "ok": failed.is_none(),
            "failed_phase": failed.as_ref().map(|f| f.0),
            "error": failed.as_ref().map(|f| f.1.clone()),
            "total_seconds": round1(total) + 0.0,
            "phases": self.report,
        });
        let text = serde_json::to_string_pretty(&doc)? + "\n";
        std::fs::write(REPORT, &text).with_context(|| format!("writing {REPORT}"))?;
        // Each variant's last report stays too: one run no longer hides
        // another's times.
        let own = format!(
            "target/qemu/e2e-report-{}{}.json",
            self.scenario,
            self.variant.suffix()
        );
        std::fs::write(&own, &text).with_context(|| format!("writing {own}"))?;
        eprintln!("report: {REPORT} (and {own})");
        for p in &self.report {
            eprintln!(
                "  {:<12} {:>7.1}s  {}",
                p["phase"].as_str().unwrap_or(""),
                p["seconds"].as_f64().unwrap_or(0.0),
                p["details"]
            );
        }
        Ok(())
    }

    /// The server's disks before the disaster, SeaBIOS boots DISK1 first.
    fn old_disks(&self) -> Vec<Disk> {
        vec![
            Disk {
                serial: "DISK1",
                path: self.p("DISK1.raw"),
                boot: Some(1),
                readonly: false,
            },
            Disk {
                serial: "DISK2",
                path: self.p("DISK2.raw"),
                boot: Some(2),
                readonly: false,
            },
        ]
    }

    /// The blank replacements: NEW1 as big as DISK1, NEW2 twice DISK2.
    /// SeaBIOS boots NEW1 first. Under UEFI they get no bootindex: OVMF
    /// would rewrite BootOrder from QEMU's bootindex list and delete the
    /// entries that match none of it (OvmfPkg QemuBootOrderLib,
    /// SetBootOrderFromQemu/PruneBootVariables), so the firmware would not
    /// boot through the entries recover wrote; without it the NVRAM's
    /// BootOrder decides, as on a real machine.
    fn new_disks(&self) -> Vec<Disk> {
        let uefi = self.variant.firmware == Firmware::Uefi;
        vec![
            Disk {
                serial: "NEW1",
                path: self.v("NEW1.raw"),
                boot: (!uefi).then_some(1),
                readonly: false,
            },
            Disk {
                serial: "NEW2",
                path: self.v("NEW2.raw"),
                boot: (!uefi).then_some(2),
                readonly: false,
            },
        ]
    }

    fn backup_disk(&self) -> Disk {
        Disk {
            serial: "BACKUP",
            path: self.p("BACKUP.raw"),
            boot: None,
            readonly: false,
        }
    }

    /// IN (scripts, env, binary) and a blank OUT disk for `phase`.
    fn io_disks(&self, phase: &str) -> Result<Vec<Disk>> {
        let dir = self.phase_dir(phase);
        let in_img = dir.join(format!("in-{phase}.tar"));
        in_disk(&in_img, &self.env(phase), &self.bin)?;
        let out_img = dir.join(format!("out-{phase}.img"));
        blank(&out_img, 64)?;
        Ok(vec![
            Disk {
                serial: "MKRIN",
                path: in_img,
                boot: None,
                readonly: false,
            },
            Disk {
                serial: "MKROUT",
                path: out_img,
                boot: None,
                readonly: false,
            },
        ])
    }

    /// Replies to the prompts of a server boot (the LUKS passphrase).
    fn server_answers(&self) -> Vec<(&'static str, String)> {
        if self.scenario == "luks-lvm" {
            vec![("Please unlock disk", luks_passphrase())]
        } else {
            Vec::new()
        }
    }

    /// Boots the server from `disks` with the IN/OUT disks of `phase`,
    /// runs the phase and returns the run and its results directory.
    fn server_phase(&self, phase: &str, disks: Vec<Disk>) -> Result<(VmRun, PathBuf)> {
        let mut all = disks;
        all.push(self.backup_disk());
        all.extend(self.io_disks(phase)?);
        let uefi_vars = match phase {
            "before" => None,
            _ => self.uefi_vars(),
        };
        if let Some(v) = &uefi_vars {
            anyhow::ensure!(
                v.exists(),
                "no {} (the firmware variables recover wrote): run from the recover phase first",
                v.display()
            );
        }
        let vm = Vm {
            name: self.vm_name(phase),
            kernel: None,
            cdrom: None,
            uefi_vars,
            tftp: None,
            disks: all,
            ready: SERVER_READY,
            type_on_ready: None,
            answers: self.server_answers(),
            timed: vec!["MKR-E2E-EXIT="],
            fail_when: vec![],
            timeout: Duration::from_secs(1500),
        };
        let run = run_vm(&vm)?;
        let dir = self.phase_dir(phase);
        let out = dir.join(format!("out-{phase}"));
        let got = read_out(&dir.join(format!("out-{phase}.img")), &out);
        if !run.text.contains("MKR-E2E-EXIT=0") {
            // The script's own output says more than the shutdown noise at
            // the end of the serial log.
            let script = std::fs::read_to_string(out.join(format!("{phase}.log")))
                .unwrap_or_else(|_| run.text.clone());
            bail!(
                "phase script {phase}.sh failed on the server (serial log {}):\n{}",
                run.log.display(),
                tail(&script, 40)
            );
        }
        got?;
        Ok((run, out))
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The LUKS passphrase of the luks-lvm scenario (also the key file's
/// content, without a newline).
fn luks_passphrase() -> String {
    "e2e-luks-passphrase".to_string()
}

/// Runs the cycle of `scenario` in `variant` from phase `from` (earlier
/// phases' disks and results are reused).
/// The host disk space the phases from `start` on take at their peak,
/// measured on the luks-lvm and raid1-lvm runs (BENCHMARKS.md): each
/// system disk holds about 1.5 GiB when full (its images are sparse, the
/// guest's zeros stay holes), the backup disk about 1.3 GiB.
fn space_needed(start: usize, prune_old: bool) -> u64 {
    const GIB: u64 = 1 << 30;
    let new_disks = 3 * GIB + GIB / 2;
    if start >= 2 {
        new_disks
    } else if prune_old {
        // Old disks + backup, then backup + new disks: never all five.
        5 * GIB
    } else {
        3 * GIB + GIB / 2 + GIB + GIB / 2 + new_disks
    }
}

/// Refuses to start when the host's disk cannot hold the VMs' disks: a
/// full host disk pauses a VM silently (QEMU's werror=enospc) and was seen
/// to eat a CI run's 40 minutes. Files the run recreates count as free.
fn check_space(e: &E2e, start: usize) -> Result<()> {
    let free = util::free_bytes(&e.work)?;
    let mut reusable = 0;
    let mut files = vec![e.v("NEW1.raw"), e.v("NEW2.raw")];
    if start < 2 {
        files.extend(e.old_disks().into_iter().map(|d| d.path));
        files.push(e.p("BACKUP.raw"));
    }
    for f in files {
        if let Ok(m) = std::fs::metadata(&f) {
            reusable += m.blocks() * 512;
        }
    }
    let need = space_needed(start, e.prune_old);
    eprintln!(
        "e2e: {} free under {} (+{} in disk images this run recreates), about {} needed",
        util::gib(free),
        e.work.display(),
        util::gib(reusable),
        util::gib(need)
    );
    if free + reusable < need {
        bail!(
            "{}: only {} free (+{} reusable), the e2e VMs' disks need about {}; free space there (cargo clean, or rm -r {WORK})",
            e.work.display(),
            util::gib(free),
            util::gib(reusable),
            util::gib(need)
        );
    }
    Ok(())
}

pub fn run(bin: Option<&Path>, scenario: &str, from: &str, variant: Variant) -> Result<()> {
    anyhow::ensure!(
        SCENARIOS.contains(&scenario),
        "no e2e scenario named {scenario}; one of {}",
        SCENARIOS.join(", ")
    );
    let Some(start) = PHASES.iter().position(|p| *p == from) else {
        bail!("no e2e phase named {from}; one of {}", PHASES.join(", "));
    };
    let bin = match bin {
        Some(b) => b.to_path_buf(),
        None => crate::qemu::build_release()?,
    };
    let work = PathBuf::from(WORK).join(scenario);
    let mut e = E2e {
        scenario: scenario.to_string(),
        variant,
        bin,
        vwork: work.join(variant.dir()),
        work,
        report: Vec::new(),
        prune_old: util::in_ci(),
    };
    std::fs::create_dir_all(&e.vwork)?;
    check_space(&e, start)?;
    let what = format!("{scenario}{}", variant.suffix());
    let mut current = "rootfs";
    let r = (|| -> Result<()> {
        for (i, phase) in PHASES.iter().enumerate().skip(start) {
            current = phase;
            if let Ok(free) = util::free_bytes(&e.work) {
                eprintln!("e2e: {} free under {}", util::gib(free), e.work.display());
            }
            util::step(&format!("e2e {what}: {phase}"), || match i {
                0 => provision(&mut e),
                1 => before(&mut e),
                2 => recover(&mut e),
                3 => after(&mut e),
                _ => degraded(&mut e),
            })?;
        }
        Ok(())
    })();
    match r {
        Ok(()) => {
            e.write_report(None)?;
            eprintln!("e2e {what}: the server was recovered and boots");
            Ok(())
        }
        Err(err) => {
            // The phase's own error is what counts: a report that cannot be
            // written (a full disk, say) must not hide it.
            if let Err(w) = e.write_report(Some((current, format!("{err:#}")))) {
                eprintln!("warning: {w:#}");
            }
            eprintln!(
                "e2e {what}: FAILED in phase {current}; serial logs in target/qemu/e2e-*.log"
            );
            Err(err.context(format!("e2e phase {current} failed")))
        }
    }
}

/// rootfs, a rescue initramfs of this host, and the VM that installs the
/// server on DISK1 + DISK2.
fn provision(e: &mut E2e) -> Result<()> {
    let t = Instant::now();
    let tar = rootfs()?;
    e.record("rootfs", t.elapsed().as_secs_f64(), json!({"tarball": tar}));

    let t = Instant::now();
    let img = e.p("rescue-initramfs");
    util::run(
        e.bin.to_str().context("non-UTF-8 binary path")?,
        &[
            "--output",
            "initramfs",
            "--modules",
            "storage-net",
            "-q",
            "--out",
            img.to_str().context("non-UTF-8 path")?,
        ],
    )?;
    let build = t.elapsed().as_secs_f64();

    let t = Instant::now();
    for d in e.old_disks() {
        blank(&d.path, DISK_MIB)?;
    }
    // The backup disk: ext4 over the whole disk, made here (mke2fs(8) on a
    // file needs no root and no loop device).
    let backup = e.p("BACKUP.raw");
    blank(&backup, BACKUP_MIB)?;
    util::run(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-L",
            "backup",
            "-U",
            BACKUP_UUID,
            backup.to_str().context("non-UTF-8 path")?,
        ],
    )?;
    let mut disks = e.old_disks();
    disks.push(Disk {
        serial: "ROOTFS",
        path: tar.clone(),
        boot: None,
        // A mistake in the script must not spoil the cache.
        readonly: true,
    });
    disks.extend(e.io_disks("provision")?);
    let vm = Vm {
        name: format!("{}-provision", e.scenario),
        kernel: Some((
            img.join("vmlinuz"),
            img.join("initrd.img"),
            "console=ttyS0 panic=-1 loglevel=4 mkrescue.after=shell mkrescue.net=off".into(),
        )),
        cdrom: None,
        uefi_vars: None,
        tftp: None,
        disks,
        ready: mkrescue::init::READY_MARKER,
        type_on_ready: Some(
            "export PATH=/usr/sbin:/usr/bin:/sbin:/bin; modprobe -a virtio_pci virtio_blk; sleep 2; \
             mkdir -p /tmp/in; for d in /sys/block/vd*; do [ \"$(cat $d/serial)\" = MKRIN ] && tar xf /dev/${d##*/} -C /tmp/in; done; \
             sh /tmp/in/e2e/provision.sh 2>&1; printf \"MKR-%s=%s\\n\" SCRIPT-EXIT $?; /usr/sbin/poweroff"
                .into(),
        ),
        answers: vec![],
        timed: vec!["MKR-SCRIPT-EXIT="],
        fail_when: vec![],
        timeout: Duration::from_secs(1800),
    };
    let run = run_vm(&vm)?;
    if !run.text.contains("MKR-SCRIPT-EXIT=0") {
        bail!(
            "provision.sh failed; serial log {}:\n{}",
            run.log.display(),
            tail(&run.text, 60)
        );
    }
    read_out(&e.p("out-provision.img"), &e.p("out-provision"))?;
    let mut d = json!({
        "rescue_build_s": round1(build),
        "boot_to_ready_s": round1(run.seen[mkrescue::init::READY_MARKER]),
    });
    for (k, v) in run.guest_times() {
        d[format!("guest_{k}_s")] = json!(v);
    }
    e.record("provision", t.elapsed().as_secs_f64(), d);
    Ok(())
}

/// First boot of the server: layout save, backup, ISO onto the backup
/// disk; then the ISO is dumped out of the backup disk image.
fn before(e: &mut E2e) -> Result<()> {
    let t = Instant::now();
    let (run, _out) = e.server_phase("before", e.old_disks())?;
    let mut d = json!({
        "boot_to_ready_s": round1(run.seen[SERVER_READY]),
        "vm_total_s": round1(run.total),
    });
    for (k, v) in run.guest_times() {
        d[format!("guest_{k}")] = json!(v);
    }
    let iso = e.p("rescue.iso");
    let _ = std::fs::remove_file(&iso);
    // debugfs(8) reads the ext4 image directly: nothing is mounted here.
    util::run(
        "debugfs",
        &[
            "-R",
            &format!("dump /rescue/mkrescue.iso {}", iso.display()),
            e.p("BACKUP.raw").to_str().context("non-UTF-8 path")?,
        ],
    )?;
    let len = std::fs::metadata(&iso).map(|m| m.len()).unwrap_or(0);
    if len == 0 {
        bail!(
            "no /rescue/mkrescue.iso on the backup disk {}",
            e.p("BACKUP.raw").display()
        );
    }
    d["iso_mib"] = json!(round1(len as f64 / 1048576.0));
    e.record("before", t.elapsed().as_secs_f64(), d);
    if e.prune_old {
        // The disaster: from here on only the backup disk and the ISO are
        // read, so the old disks' 3 GiB go before the new disks fill.
        for d in e.old_disks() {
            std::fs::remove_file(&d.path)
                .with_context(|| format!("removing {}", d.path.display()))?;
        }
        eprintln!(
            "CI: removed DISK1.raw and DISK2.raw after the backup (`--from before` needs provision again)"
        );
    }
    Ok(())
}

/// The disaster and the recovery: blank NEW1 (same size) and NEW2 (twice
/// as big), the backup disk attached, the rescue system from the ISO as
/// CD-ROM or (pxe) from the PXE tree over TFTP; under UEFI with a fresh
/// copy of OVMF's variable store.
fn recover(e: &mut E2e) -> Result<()> {
    let t = Instant::now();
    blank(&e.v("NEW1.raw"), DISK_MIB)?;
    blank(&e.v("NEW2.raw"), 2 * DISK_MIB)?;
    let mut disks: Vec<Disk> = e
        .new_disks()
        .into_iter()
        .map(|d| Disk { boot: None, ..d })
        .collect();
    disks.push(e.backup_disk());
    let uefi_vars = e.uefi_vars();
    if let Some(v) = &uefi_vars {
        // No entries of an earlier run: what the later boots find is what
        // this recover wrote.
        std::fs::copy(OVMF_VARS, v).with_context(|| {
            format!(
                "copying {OVMF_VARS} to {} (apt-get install ovmf)",
                v.display()
            )
        })?;
    }
    let (cdrom, tftp) = match e.variant.boot {
        Boot::Iso => (Some(e.p("rescue.iso")), None),
        Boot::Pxe => (None, Some((pxe_tree(e)?, PXE_BOOTFILE.to_string()))),
    };
    let vm = Vm {
        name: e.vm_name("recover"),
        kernel: None,
        cdrom,
        uefi_vars,
        tftp,
        disks,
        ready: mkrescue::init::READY_MARKER,
        type_on_ready: None,
        answers: vec![],
        timed: vec![RECOVER_OK, RECOVER_FAILED],
        fail_when: vec![RECOVER_FAILED],
        timeout: Duration::from_secs(2400),
    };
    let run = run_vm(&vm)?;
    let Some(done) = run.seen.get(RECOVER_OK) else {
        bail!(
            "the rescue system powered off without `{RECOVER_OK}`; serial log {}:\n{}",
            run.log.display(),
            tail(&mkrescue_lines(&run.text), 60)
        );
    };
    let ready = run.seen[mkrescue::init::READY_MARKER];
    let name = e.phase_name("recover");
    e.record(
        &name,
        t.elapsed().as_secs_f64(),
        json!({
            "boot_to_ready_s": round1(ready),
            "recover_s": round1(done - ready),
            "vm_total_s": round1(run.total),
            "recover_phases_s": recover_phases(&run.text),
        }),
    );
    Ok(())
}

/// The phase table recover prints at its end (src/recover/mod.rs:
/// `mkrescue:   NAME  SECONDSs  DETAIL`): layout, mount, restore,
/// finalize, unmount with their seconds, for the report.
fn recover_phases(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for l in text.lines() {
        let Some(rest) = l.strip_prefix("mkrescue:   ") else {
            continue;
        };
        let mut w = rest.split_whitespace();
        if let (Some(name), Some(secs)) = (w.next(), w.next())
            && name != "-"
            && let Some(v) = secs.strip_suffix('s').and_then(|n| n.parse::<f64>().ok())
        {
            out.insert(name.to_string(), v);
        }
    }
    out
}

/// The PXE tree before.sh wrote onto the backup disk, copied out of the
/// image with debugfs(8) into the variant's directory: the TFTP root.
fn pxe_tree(e: &E2e) -> Result<PathBuf> {
    let dir = e.v("tftp");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let backup = e.p("BACKUP.raw");
    util::run(
        "debugfs",
        &[
            "-R",
            &format!("rdump {PXE_ON_BACKUP} {}", dir.display()),
            backup.to_str().context("non-UTF-8 path")?,
        ],
    )?;
    let root = dir.join(PXE_ON_BACKUP.trim_start_matches('/'));
    for f in [PXE_BOOTFILE, "pxelinux.cfg/default"] {
        anyhow::ensure!(
            root.join(f).is_file(),
            "no {PXE_ON_BACKUP}/{f} on the backup disk {} (its before phase predates the PXE tree: run from before)",
            backup.display()
        );
    }
    // QEMU opens the files relative to its own working directory; an
    // absolute root does not depend on it.
    std::fs::canonicalize(&root).with_context(|| format!("resolving {}", root.display()))
}

/// The recovered server boots; its files, UUIDs, array and layout are
/// compared with what was recorded before the disaster; under UEFI it must
/// have booted through the firmware entry recover wrote.
fn after(e: &mut E2e) -> Result<()> {
    let t = Instant::now();
    let (run, out) = e.server_phase("check", e.new_disks())?;
    let ready = run.seen[SERVER_READY];
    let before = e.p("out-before");
    let prov = e.p("out-provision");
    let mut problems = Vec::new();
    let full = compare_lists(
        &load_list(&before.join("list-before"))?,
        &load_list(&out.join("list-after"))?,
        ALLOWED_TO_CHANGE,
        ALLOWED_NEW,
    );
    let test_data = compare_lists(
        &load_list(&prov.join("list-provision"))?,
        &only_under(&load_list(&out.join("list-after"))?, &["/srv/e2e", "/home"]),
        &[],
        &[],
    );
    problems.extend(full.iter().map(|p| format!("files: {p}")));
    problems.extend(test_data.iter().map(|p| format!("test data: {p}")));
    problems.extend(compare_blkid(
        &std::fs::read_to_string(before.join("blkid-before.txt"))?,
        &std::fs::read_to_string(out.join("blkid-after.txt"))?,
    ));
    let mdstat = std::fs::read_to_string(out.join("mdstat.txt"))?;
    if !(mdstat.contains("md0 : active raid1") && mdstat.contains("[UU]")) {
        problems.push(format!(
            "md0 is not an active RAID1 with both members:\n{mdstat}"
        ));
    }
    problems.extend(compare_layouts(
        &before.join("layout-before.json"),
        &out.join("layout-after.json"),
    )?);
    let mut booted_via = None;
    if e.variant.firmware == Firmware::Uefi {
        match uefi_boot(&read_efibootmgr(&out)?, false) {
            Ok(via) => booted_via = Some(via),
            Err(p) => problems.push(format!("uefi: {p}")),
        }
    }
    let n = load_list(&out.join("list-after"))?.len();
    if !problems.is_empty() {
        bail!(
            "the recovered server differs ({} problems):\n{}",
            problems.len(),
            problems.join("\n")
        );
    }
    let mut d = json!({"boot_to_ready_s": round1(ready), "vm_total_s": round1(run.total), "files_compared": n});
    if let Some(via) = booted_via {
        d["booted_via"] = json!(via);
    }
    let name = e.phase_name("after");
    e.record(&name, t.elapsed().as_secs_f64(), d);
    Ok(())
}

/// NEW1 pulled: the server must still boot from NEW2 (GRUB on both disks;
/// under UEFI the ESP copy on NEW2 and its own firmware entry) with the
/// array degraded.
fn degraded(e: &mut E2e) -> Result<()> {
    let t = Instant::now();
    let disks: Vec<Disk> = e
        .new_disks()
        .into_iter()
        .filter(|d| d.serial != "NEW1")
        .collect();
    let (run, out) = e.server_phase("degraded", disks)?;
    let mdstat = std::fs::read_to_string(out.join("mdstat.txt"))?;
    if !(mdstat.contains("active") && (mdstat.contains("[_U]") || mdstat.contains("[U_]"))) {
        bail!("md0 is not active and degraded with one member:\n{mdstat}");
    }
    let mut d =
        json!({"boot_to_ready_s": round1(run.seen[SERVER_READY]), "vm_total_s": round1(run.total)});
    if e.variant.firmware == Firmware::Uefi {
        let via = uefi_boot(&read_efibootmgr(&out)?, true)
            .map_err(|p| anyhow::anyhow!("uefi, NEW1 pulled: {p}"))?;
        d["booted_via"] = json!(via);
    }
    let name = e.phase_name("degraded");
    e.record(&name, t.elapsed().as_secs_f64(), d);
    Ok(())
}

fn read_efibootmgr(out: &Path) -> Result<String> {
    let p = out.join("efibootmgr.txt");
    std::fs::read_to_string(&p).with_context(|| {
        format!(
            "reading {} (the server booted without EFI variables?)",
            p.display()
        )
    })
}

/// grub-install's entry (Debian's bootloader id) and the one finalize adds
/// for the ESP copy on the second disk.
const EFI_ENTRY: &str = "debian";
const EFI_ENTRY_2: &str = "debian ESP2";

/// Which firmware entry booted the server (`efibootmgr -v` of check.sh or
/// degraded.sh): with both disks the one recover wrote for the first disk,
/// and the second disk's must exist too; with NEW1 pulled the second
/// disk's entry, or the firmware's own entry for the disk (it then loads
/// the removable path \EFI\BOOT\BOOTX64.EFI). Ok: `LABEL: PATH` of it.
fn uefi_boot(efibootmgr: &str, degraded: bool) -> Result<String, String> {
    let v = mkrescue::recover::efiboot::parse(efibootmgr);
    let Some(cur) = v.current_entry() else {
        return Err(format!(
            "no BootCurrent, or no entry for it, in efibootmgr's output:\n{efibootmgr}"
        ));
    };
    let via = format!("Boot{:04X} {}: {}", cur.num, cur.label, cur.path);
    let loader = cur.path.to_ascii_lowercase();
    let own = |label: &str| cur.label == label && loader.contains("grubx64.efi");
    if !degraded {
        if !own(EFI_ENTRY) {
            return Err(format!(
                "booted through {via}, not the `{EFI_ENTRY}` entry recover wrote"
            ));
        }
        if v.with_label(EFI_ENTRY_2).is_empty() {
            return Err(format!(
                "no `{EFI_ENTRY_2}` entry for the ESP on the second disk:\n{efibootmgr}"
            ));
        }
        return Ok(via);
    }
    // The firmware's own entries for a disk carry no file path: it loads
    // the removable-media path (UEFI spec 2.9, 3.5.1.1).
    let removable = cur.path.starts_with("PciRoot(") && !loader.contains("file(");
    if own(EFI_ENTRY_2) || removable {
        Ok(via)
    } else {
        Err(format!(
            "booted through {via}: neither the second disk's `{EFI_ENTRY_2}` entry nor its removable path"
        ))
    }
}

/// Paths that change between the backup and the check boot by design:
/// logs and systemd state of later boots, the boot loader files and
/// initramfs that recover reinstalls, LVM's metadata archive, mkrescue's
/// own state, shell history. A prefix ending in `/` means "under".
const ALLOWED_TO_CHANGE: &[&str] = &[
    "/var/log/",
    "/var/lib/systemd/",
    "/var/cache/",
    "/var/lib/initramfs-tools/",
    "/boot/grub/",
    "/boot/initrd.img-",
    "/etc/lvm/archive/",
    "/etc/lvm/backup/",
    "/var/lib/mkrescue/",
    "/root/.bash_history",
];

/// Paths recover may add but never remove or alter: the UEFI boot loader
/// that finalize installs onto every ESP (grub-install x86_64-efi on the
/// removable path \EFI\BOOT\BOOTX64.EFI and \EFI\debian), so the recovered
/// server also boots on UEFI replacement hardware although the original
/// booted by BIOS with an empty ESP. Files that were on the ESP before
/// must still be there unchanged.
const ALLOWED_NEW: &[&str] = &["/boot/efi/EFI/"];

/// One file of a list: what is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: String,
    mode: String,
    owner: String,
    /// Regular files only (directory sizes depend on the file system's
    /// history).
    size: Option<String>,
    /// Whole seconds, regular files only.
    mtime: Option<String>,
    link: String,
    sha: Option<String>,
    xattrs: BTreeMap<String, String>,
    /// Hard links: the other paths of the same inode (regular files).
    nlink: String,
    inode: String,
}

type List = BTreeMap<Vec<u8>, Entry>;

/// Reads DIR.meta, DIR.sha and DIR.xattr written by tests/qemu/e2e/list.sh.
fn load_list(base: &Path) -> Result<List> {
    let ext = |e: &str| PathBuf::from(format!("{}.{e}", base.display()));
    let meta =
        std::fs::read(ext("meta")).with_context(|| format!("reading {}.meta", base.display()))?;
    let mut list = List::new();
    let mut parts = meta.split(|b| *b == 0);
    while let (Some(path), Some(fields), Some(link)) = (parts.next(), parts.next(), parts.next()) {
        if path.is_empty() {
            break;
        }
        let f: Vec<&str> = std::str::from_utf8(fields)
            .context("list fields")?
            .split(' ')
            .collect();
        anyhow::ensure!(f.len() == 8, "bad list line in {}.meta", base.display());
        let file = f[0] == "f";
        list.insert(
            path.to_vec(),
            Entry {
                kind: f[0].into(),
                mode: f[1].into(),
                owner: format!("{}:{}", f[2], f[3]),
                size: file.then(|| f[4].to_string()),
                mtime: file.then(|| f[5].split('.').next().unwrap_or("").to_string()),
                link: String::from_utf8_lossy(link).into_owned(),
                sha: None,
                xattrs: BTreeMap::new(),
                nlink: if f[0] == "d" {
                    String::new()
                } else {
                    f[6].into()
                },
                inode: f[7].into(),
            },
        );
    }
    let sha =
        std::fs::read(ext("sha")).with_context(|| format!("reading {}.sha", base.display()))?;
    for rec in sha.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        // sha256sum --zero: "HEX  NAME" (binary mode: "HEX *NAME"), no escaping.
        if rec.len() < 66 {
            bail!("bad sha256sum record in {}.sha", base.display());
        }
        let hex = String::from_utf8_lossy(&rec[..64]).into_owned();
        let name = &rec[66..];
        if let Some(e) = list.get_mut(name) {
            e.sha = Some(hex);
        }
    }
    let xattr = std::fs::read(ext("xattr")).unwrap_or_default();
    let mut cur: Option<Vec<u8>> = None;
    for line in xattr.split(|b| *b == b'\n') {
        if let Some(n) = line.strip_prefix(b"# file: ") {
            cur = Some(unescape_octal(n));
        } else if let (Some(c), Some(eq)) = (&cur, line.iter().position(|b| *b == b'=')) {
            let k = String::from_utf8_lossy(&line[..eq]).into_owned();
            let v = String::from_utf8_lossy(&line[eq + 1..]).into_owned();
            if let Some(e) = list.get_mut(c) {
                e.xattrs.insert(k, v);
            }
        }
    }
    // Inode numbers differ after a restore; what must hold is which paths
    // share one. Replace the inode by the group's first path.
    let mut groups: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (p, e) in &list {
        if e.kind == "f" && e.nlink != "1" {
            groups.entry(e.inode.clone()).or_insert_with(|| p.clone());
        }
    }
    for e in list.values_mut() {
        e.inode = match groups.get(&e.inode) {
            Some(first) if e.kind == "f" && e.nlink != "1" => {
                String::from_utf8_lossy(first).into_owned()
            }
            _ => String::new(),
        };
    }
    Ok(list)
}

/// getfattr(1) escapes unprintable bytes of names as `\ooo`.
fn unescape_octal(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\'
            && i + 4 <= s.len()
            && s[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (s[i + 1] - b'0') as u32 * 64
                + (s[i + 2] - b'0') as u32 * 8
                + (s[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

fn only_under(list: &List, roots: &[&str]) -> List {
    list.iter()
        .filter(|(p, _)| {
            roots
                .iter()
                .any(|r| p.as_slice() == r.as_bytes() || p.starts_with(format!("{r}/").as_bytes()))
        })
        .map(|(p, e)| (p.clone(), e.clone()))
        .collect()
}

/// Differences between two lists, one line each (at most 40 shown).
fn compare_lists(
    before: &List,
    after: &List,
    allowed: &[&str],
    allowed_new: &[&str],
) -> Vec<String> {
    // "X/" covers the directory X itself and everything under it.
    let under = |p: &[u8], list: &[&str]| {
        let s = String::from_utf8_lossy(p);
        list.iter()
            .any(|a| s.starts_with(a) || a.strip_suffix('/') == Some(&*s))
    };
    // `/boot/efi/EFI` itself is new when the ESP was empty before.
    let new_ok = |p: &[u8]| under(p, allowed_new);
    let ok = |p: &[u8]| under(p, allowed);
    let mut out = Vec::new();
    for (p, b) in before {
        if ok(p) {
            continue;
        }
        let name = String::from_utf8_lossy(p);
        match after.get(p) {
            None => out.push(format!("missing {name:?}")),
            Some(a) if a != b => out.push(format!("changed {name:?}: {}", entry_diff(b, a))),
            _ => {}
        }
    }
    for p in after.keys() {
        if !ok(p) && !new_ok(p) && !before.contains_key(p) {
            out.push(format!("new {:?}", String::from_utf8_lossy(p)));
        }
    }
    let n = out.len();
    if n > 40 {
        out.truncate(40);
        out.push(format!("... and {} more", n - 40));
    }
    out
}

fn entry_diff(b: &Entry, a: &Entry) -> String {
    let mut d = Vec::new();
    macro_rules! cmp {
        ($f:ident) => {
            if b.$f != a.$f {
                d.push(format!("{} {:?} -> {:?}", stringify!($f), b.$f, a.$f));
            }
        };
    }
    cmp!(kind);
    cmp!(mode);
    cmp!(owner);
    cmp!(size);
    cmp!(mtime);
    cmp!(link);
    cmp!(sha);
    cmp!(xattrs);
    cmp!(nlink);
    cmp!(inode);
    d.join(", ")
}

/// blkid -o export blocks: every file system, swap, md member and PV of
/// before must be there after with the same UUID, LABEL and TYPE. Member
/// UUIDs (UUID_SUB) and partition UUIDs belong to the new disks.
fn compare_blkid(before: &str, after: &str) -> Vec<String> {
    fn parse(t: &str) -> Vec<BTreeMap<String, String>> {
        t.split("\n\n")
            .map(|b| {
                b.lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>()
            })
            .filter(|m| m.contains_key("TYPE"))
            .collect()
    }
    let a = parse(after);
    let mut out = Vec::new();
    for b in parse(before) {
        if b.get("UUID").map(String::as_str) == Some(BACKUP_UUID) {
            continue;
        }
        let Some(uuid) = b.get("UUID") else { continue };
        let found = a.iter().find(|x| {
            x.get("UUID") == Some(uuid)
                && x.get("TYPE") == b.get("TYPE")
                && x.get("LABEL") == b.get("LABEL")
        });
        if found.is_none() {
            out.push(format!(
                "blkid: no {} with UUID {uuid} and label {:?} after recovery (was {})",
                b["TYPE"],
                b.get("LABEL").map(String::as_str).unwrap_or(""),
                b.get("DEVNAME").map(String::as_str).unwrap_or("?")
            ));
        }
    }
    out
}

/// `mkrescue layout save` before and after must agree, except for what
/// belongs to the new disks themselves (size, serial, WWN, model, ids).
fn compare_layouts(before: &Path, after: &Path) -> Result<Vec<String>> {
    let b = mkrescue::layout::Layout::load(before)?;
    let a = mkrescue::layout::Layout::load(after)?;
    let disk_fields = ["size", "serial", "wwn", "model", "by_path", "disk_id"];
    // A disk that got bigger may have its last partition grown onto it
    // (recover.grow_last_partition, the default).
    let grown: Vec<String> = b
        .disks
        .iter()
        .filter(|d| a.disks.iter().any(|x| x.path == d.path && x.size > d.size))
        .map(|d| format!("disks[{}].partitions[", d.path))
        .collect();
    Ok(mkrescue::layout::diff(&b, &a)
        .into_iter()
        .filter(|l| {
            let key = l[2..].split(':').next().unwrap_or("");
            // Keys look like `disks[/dev/vda].serial`.
            let is_disk_own = key.starts_with("disks[")
                && !key.contains(".partitions")
                && disk_fields.iter().any(|f| key.ends_with(&format!(".{f}")));
            let grew = grown.iter().any(|g| key.starts_with(g.as_str()))
                && (key.ends_with(".size") || key.ends_with(".end"));
            !is_disk_own && !grew
        })
        .map(|l| format!("layout: {l}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sha: &str) -> Entry {
        Entry {
            kind: "f".into(),
            mode: "644".into(),
            owner: "0:0".into(),
            size: Some("1".into()),
            mtime: Some("0".into()),
            link: String::new(),
            sha: Some(sha.into()),
            xattrs: BTreeMap::new(),
            nlink: "1".into(),
            inode: "1".into(),
        }
    }

    fn list(items: &[(&str, &str)]) -> List {
        items
            .iter()
            .map(|(p, s)| (p.as_bytes().to_vec(), entry(s)))
            .collect()
    }

    fn vm(uefi: bool, pxe: bool) -> Vm {
        Vm {
            name: "t".into(),
            kernel: None,
            cdrom: (!pxe).then(|| PathBuf::from("r.iso")),
            uefi_vars: uefi.then(|| PathBuf::from("w/OVMF_VARS.fd")),
            tftp: pxe.then(|| (PathBuf::from("/t/rescue-pxe"), "pxelinux.0".to_string())),
            disks: vec![Disk {
                serial: "NEW1",
                path: PathBuf::from("w/NEW1.raw"),
                boot: None,
                readonly: false,
            }],
            ready: "x",
            type_on_ready: None,
            answers: vec![],
            timed: vec![],
            fail_when: vec![],
            timeout: Duration::from_secs(1),
        }
    }

    fn after_flag<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn uefi_vms_get_ovmf_code_read_only_and_their_own_vars() {
        let a = qemu_args(&vm(true, false), Path::new("l.log"));
        let flash: Vec<&str> = after_flag(&a, "-drive")
            .into_iter()
            .filter(|d| d.starts_with("if=pflash"))
            .collect();
        assert_eq!(flash.len(), 2, "{a:?}");
        assert!(flash[0].contains("readonly=on") && flash[0].ends_with(OVMF_CODE));
        assert!(!flash[1].contains("readonly") && flash[1].ends_with("w/OVMF_VARS.fd"));
        // BIOS: no flash at all (SeaBIOS is QEMU's default).
        let b = qemu_args(&vm(false, false), Path::new("l.log"));
        assert!(!b.iter().any(|x| x.contains("pflash")), "{b:?}");
    }

    #[test]
    fn the_only_network_is_restricted_and_boots_first() {
        let a = qemu_args(&vm(false, true), Path::new("l.log"));
        let nd = after_flag(&a, "-netdev");
        assert_eq!(
            nd,
            ["user,id=n0,restrict=on,tftp=/t/rescue-pxe,bootfile=pxelinux.0"]
        );
        assert!(after_flag(&a, "-device").contains(&"virtio-net-pci,netdev=n0,bootindex=0"));
        assert!(after_flag(&a, "-nic").is_empty());
        // Without TFTP: no NIC at all (QEMU's default one is unrestricted).
        let b = qemu_args(&vm(false, false), Path::new("l.log"));
        assert_eq!(after_flag(&b, "-nic"), ["none"]);
        assert!(after_flag(&b, "-netdev").is_empty());
        assert!(after_flag(&b, "-device").contains(&"ide-cd,drive=cd,bootindex=0"));
    }

    #[test]
    fn variants_from_the_command_line() {
        let d = Variant::parse("iso", "bios").unwrap();
        assert_eq!(d, Variant::default());
        // The default keeps the names it always had.
        assert_eq!(d.suffix(), "");
        let u = Variant::parse("iso", "uefi").unwrap();
        assert_eq!((u.suffix(), u.dir()), ("-uefi", "iso-uefi"));
        let p = Variant::parse("pxe", "bios").unwrap();
        assert_eq!((p.suffix(), p.dir()), ("-pxe", "pxe-bios"));
        assert!(Variant::parse("usb", "bios").is_err());
        assert!(Variant::parse("iso", "coreboot").is_err());
        let e = Variant::parse("pxe", "uefi").unwrap_err().to_string();
        assert!(e.contains("not a variant yet"), "{e}");
    }

    /// Pruning the old disks lowers the peak; resuming at recover needs
    /// only the new disks; the refusal names the directory and the fix.
    #[test]
    fn space_needed_follows_the_phases() {
        let (from_recover, pruned, kept) = (
            space_needed(2, false),
            space_needed(0, true),
            space_needed(0, false),
        );
        assert!(
            from_recover < pruned && pruned < kept,
            "{from_recover} {pruned} {kept}"
        );
        assert_eq!(space_needed(2, true), from_recover);
        let dir = std::env::temp_dir();
        let e = E2e {
            scenario: "raid1-lvm".into(),
            variant: Variant::default(),
            bin: PathBuf::from("m"),
            work: dir.clone(),
            vwork: dir.join("no-such-variant-dir"),
            report: vec![],
            prune_old: true,
        };
        let free = util::free_bytes(&dir).unwrap();
        match check_space(&e, 0) {
            Ok(()) => assert!(free >= space_needed(0, true)),
            Err(err) => {
                let msg = err.to_string();
                assert!(msg.contains("free space there"), "{msg}");
                assert!(free < space_needed(0, true));
            }
        }
    }

    #[test]
    fn uefi_variant_names_and_disks() {
        let e = E2e {
            scenario: "raid1-lvm".into(),
            variant: Variant::parse("iso", "uefi").unwrap(),
            bin: PathBuf::from("m"),
            work: PathBuf::from("w"),
            vwork: PathBuf::from("w/iso-uefi"),
            report: vec![],
            prune_old: false,
        };
        assert_eq!(e.vm_name("recover"), "raid1-lvm-uefi-recover");
        assert_eq!(e.vm_name("before"), "raid1-lvm-before");
        assert_eq!(e.phase_name("after"), "after-uefi");
        assert_eq!(e.phase_dir("check"), Path::new("w/iso-uefi"));
        assert_eq!(e.phase_dir("before"), Path::new("w"));
        assert_eq!(
            e.uefi_vars(),
            Some(PathBuf::from("w/iso-uefi/OVMF_VARS.fd"))
        );
        let d = e.new_disks();
        assert!(
            d.iter()
                .all(|d| d.boot.is_none() && d.path.starts_with("w/iso-uefi"))
        );
        let bios = E2e {
            variant: Variant::default(),
            vwork: PathBuf::from("w/iso-bios"),
            ..e
        };
        assert_eq!(bios.uefi_vars(), None);
        let boots: Vec<_> = bios.new_disks().iter().map(|d| d.boot).collect();
        assert_eq!(boots, [Some(1), Some(2)]);
    }

    const EFI_AFTER: &str = include_str!("../../tests/fixtures/efiboot/ovmf-after-recover.txt");
    const EFI_DEGRADED: &str = include_str!("../../tests/fixtures/efiboot/ovmf-degraded.txt");

    #[test]
    fn uefi_boots_through_recovers_entries() {
        let via = uefi_boot(EFI_AFTER, false).unwrap();
        assert!(
            via.starts_with("Boot0003 debian: HD(2,GPT,61effe1c"),
            "{via}"
        );
        let via = uefi_boot(EFI_DEGRADED, true).unwrap();
        assert!(
            via.starts_with("Boot0004 debian ESP2: HD(2,GPT,2b19608c"),
            "{via}"
        );
        // With both disks the second disk's entry booting means the first
        // one failed.
        let e = uefi_boot(EFI_DEGRADED, false).unwrap_err();
        assert!(e.contains("not the `debian` entry"), "{e}");
        // NEW1 pulled, yet its entry booted: impossible, so a wrong check.
        assert!(uefi_boot(EFI_AFTER, true).is_err());
        // The firmware's own entry for a disk: its removable path.
        let misc = EFI_DEGRADED.replace("BootCurrent: 0004", "BootCurrent: 0006");
        let via = uefi_boot(&misc, true).unwrap();
        assert!(via.starts_with("Boot0006 UEFI Misc Device 2"), "{via}");
        // The EFI shell is neither.
        let shell = EFI_DEGRADED.replace("BootCurrent: 0004", "BootCurrent: 0002");
        assert!(uefi_boot(&shell, true).is_err());
        // No second entry after recover: reported.
        let one: String = EFI_AFTER
            .lines()
            .filter(|l| !l.contains("debian ESP2"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(uefi_boot(&one, false).unwrap_err().contains("ESP2"));
        assert!(uefi_boot("EFI variables are not supported on this system.\n", false).is_err());
    }

    #[test]
    fn recover_phase_times_from_the_serial_log() {
        // The end of target/qemu/e2e-raid1-lvm-uefi-recover.log (2026-11-22).
        let log = "mkrescue: recover of e2e-server finished in 691.2s\n\
mkrescue:   layout       21.6s  20 steps (0 already done before)\n\
mkrescue:   mount         1.3s  3 file systems under /mnt/target\n\
mkrescue:   restore     176.1s  files restored\n\
mkrescue:   finalize    476.3s  7 actions\n\
mkrescue:   unmount       3.9s  /mnt/target unmounted, data synced\n\
mkrescue: recover finished\n\
mkrescue:   - initramfs regenerated with update-initramfs (359.5s)\n\
mkrescue:   - GRUB (BIOS) installed on /dev/vda (13.1s)\n";
        let p = recover_phases(log);
        let want: BTreeMap<String, f64> = [
            ("finalize", 476.3),
            ("layout", 21.6),
            ("mount", 1.3),
            ("restore", 176.1),
            ("unmount", 3.9),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(p, want);
    }

    #[test]
    fn files_recover_adds_to_the_esp_pass_but_esp_files_must_not_change_or_vanish() {
        let before = list(&[("/boot/efi/EFI/old.efi", "a"), ("/etc/x", "b")]);
        let after = list(&[
            ("/boot/efi/EFI", "d"),
            ("/boot/efi/EFI/old.efi", "a"),
            ("/boot/efi/EFI/BOOT/BOOTX64.EFI", "c"),
            ("/etc/x", "b"),
        ]);
        assert!(compare_lists(&before, &after, ALLOWED_TO_CHANGE, ALLOWED_NEW).is_empty());
        // An empty ESP before: \EFI itself is new too.
        let empty = list(&[("/etc/x", "b")]);
        let filled = list(&[
            ("/boot/efi/EFI", "d"),
            ("/boot/efi/EFI/BOOT/BOOTX64.EFI", "c"),
            ("/etc/x", "b"),
        ]);
        assert!(compare_lists(&empty, &filled, ALLOWED_TO_CHANGE, ALLOWED_NEW).is_empty());
        let sibling = list(&[("/boot/efi/EFIX", "d"), ("/etc/x", "b")]);
        let p = compare_lists(&empty, &sibling, ALLOWED_TO_CHANGE, ALLOWED_NEW);
        assert_eq!(p, vec!["new \"/boot/efi/EFIX\"".to_string()]);

        let changed = list(&[("/boot/efi/EFI/old.efi", "z"), ("/etc/x", "b")]);
        let p = compare_lists(&before, &changed, ALLOWED_TO_CHANGE, ALLOWED_NEW);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("changed \"/boot/efi/EFI/old.efi\""),
            "{p:?}"
        );

        let gone = list(&[("/boot/efi/EFI/BOOT/BOOTX64.EFI", "c"), ("/etc/x", "b")]);
        let p = compare_lists(&before, &gone, ALLOWED_TO_CHANGE, ALLOWED_NEW);
        assert_eq!(p, vec!["missing \"/boot/efi/EFI/old.efi\"".to_string()]);

        // A new file anywhere else is still reported.
        let extra = list(&[
            ("/boot/efi/EFI/old.efi", "a"),
            ("/etc/x", "b"),
            ("/etc/y", "d"),
        ]);
        let p = compare_lists(&before, &extra, ALLOWED_TO_CHANGE, ALLOWED_NEW);
        assert_eq!(p, vec!["new \"/etc/y\"".to_string()]);
    }
}
