//! `mkrescue drill`: recovers the host into a VM and boots the result, the
//! proof that the rescue medium, the layout and the backup together bring
//! the host back, without waiting for a disaster.
//!
//! Owns the drill's phases, in order (each timed, the first failure ends
//! the drill and names its cause):
//! 1. `medium`: the kernel and initrd are read out of the host's rescue ISO
//!    (xorriso's osirrox) and booted directly with the command line of the
//!    ISO's "Recover automatically" serial entry (`mkrescue.recover=auto`),
//!    plus `mkrescue.after=poweroff`. The ISO's own boot loader is not
//!    started: its menu boots the local disk by default, on purpose
//!    (src/output/bootcfg.rs), and the boot of the medium itself is what
//!    `cargo xtask qemu media` proves for every build;
//! 2. `disks`: blank sparse disks shaped from the layout, one per recorded
//!    disk (the excluded ones, such as the backup disk, are left out) with
//!    its size, serial and controller (NVMe for `/dev/nvme*`, virtio
//!    otherwise, or the one `--controller` names);
//! 3. `rescue boot` and `recover`: one VM, the rescue system up to its
//!    ready marker, then its unattended recover up to `recover finished`
//!    and power-off; recover's own phase table and the estimate it made
//!    beforehand are read from the serial console ([`serial`]); when it
//!    fails and its error's `disks here:` list lacks some of the drill's disks, the
//!    cause is the rescue kernel not seeing their controller
//!    ([`unseen_disks`]);
//! 4. `first boot`: the recovered disks alone (copy-on-write: the disks
//!    stay as recover left them) under the same firmware and, under UEFI,
//!    the boot entries recover wrote, until a login prompt on ttyS0.
//!
//! Isolation, the guarantees `drill --help` states: the backup disks are
//! attached with `snapshot=on` (QEMU opens them read-only and keeps the
//! guest's writes in a temporary overlay, QEMU docs "-drive snapshot"),
//! the VM's disks are new files under the work directory, and the VMs have
//! no network card at all. Hands a [`Report`] to `commands::drill`, which
//! prints it and keeps it in the history.

pub mod serial;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::error::{Code, fail};
use crate::exec::Cmd;
use crate::init::{READY_MARKER, RECOVER_FAILED, RECOVER_OK};
use crate::layout::model::Layout;
use crate::vm::{self, Accel, Disk, Firmware, Kernel, Serial, Vm, VmSpec};

/// Where `drill list` finds the reports, one JSON file per drill.
pub const HISTORY: &str = "/var/lib/mkrescue/drills";

/// The firmware the drill's VMs boot with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Boot {
    Bios,
    Uefi,
}

/// How the accelerator is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelChoice {
    /// KVM when /dev/kvm opens and a guest kernel prints under it within
    /// [`KVM_PROBE`]; TCG otherwise.
    Auto,
    Fixed(Accel),
}

/// How long a kernel started under KVM may stay silent before the drill
/// takes it for a KVM that does not run guests and starts over under TCG.
/// The rescue kernel prints its first line within a second under KVM.
pub const KVM_PROBE: Duration = Duration::from_secs(30);

/// What a drill is run with (plain data from `commands::drill`).
#[derive(Debug, Clone)]
pub struct DrillOptions {
    pub iso: PathBuf,
    pub layout: PathBuf,
    /// Disk images or block devices holding the backup, attached
    /// copy-on-write.
    pub backup_disks: Vec<PathBuf>,
    pub boot: Boot,
    pub accel: AccelChoice,
    /// The VMs' disks, serial logs and extracted kernel go here.
    pub work: PathBuf,
    /// Leave the recovered disks here as qcow2 images (and the UEFI
    /// variables), ready to run as a VM.
    pub keep: Option<PathBuf>,
    /// qcow2 (`qemu-img convert`) or raw (the sparse files moved, ready
    /// for `dd` onto a real disk as well).
    pub keep_raw: bool,
    pub memory_mib: u32,
    pub recover_timeout: Duration,
    pub boot_timeout: Duration,
    /// The controller the blank disks sit on.
    pub controller: Controller,
    /// For tests of the drill itself: a shell command run between recover
    /// and the first boot with the recovered disks' image paths as its
    /// arguments (`sh -c CMD sh DISK...`), such as one that wipes the boot
    /// loader to prove that a system that does not boot fails the drill.
    pub test_hook: Option<String>,
}

/// The controller the drill's blank disks sit on: a replacement machine
/// often has another one than the host (NVMe instead of virtio or SATA),
/// and the rescue image must carry its driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    /// As the layout records them: NVMe for `/dev/nvme*`, virtio otherwise.
    AsRecorded,
    Virtio,
    Nvme,
}

impl Controller {
    fn name(self, nvme: bool) -> &'static str {
        match (self, nvme) {
            (Controller::Nvme, _) | (Controller::AsRecorded, true) => "NVMe",
            _ => "virtio",
        }
    }
}

/// One phase of the drill.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    pub ok: bool,
    pub seconds: f64,
    pub detail: String,
}

/// The result of one drill: what `--json` prints and the history keeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub host: String,
    /// Unix seconds at the start.
    pub started: i64,
    pub iso: PathBuf,
    pub layout: PathBuf,
    pub firmware: Boot,
    pub accel: String,
    /// Why this accelerator (KVM refused, not present, asked for).
    pub accel_note: String,
    pub passed: bool,
    /// The phase that failed and its cause, in one line.
    pub failed_phase: Option<String>,
    pub cause: Option<String>,
    pub phases: Vec<Phase>,
    /// recover's own table, as it printed it (seconds per phase).
    pub recover_phases_s: BTreeMap<String, f64>,
    pub recover_total_s: Option<f64>,
    /// The estimate recover made before it started, per phase and total.
    pub estimate_s: BTreeMap<String, f64>,
    pub estimate_total_s: Option<f64>,
    /// recover's finalize decisions (initramfs, boot menu, GRUB).
    pub finalize: Vec<String>,
    /// Restored files whose data the restore hashed as it wrote them and
    /// found equal to the backup's manifest (None: the log did not say).
    #[serde(default)]
    pub files_checked: Option<u64>,
    pub serial_logs: Vec<PathBuf>,
    pub kept: Option<PathBuf>,
}

/// The firmware the host boots with, for `--firmware auto`: this machine's
/// own when the layout is of this machine (`/sys/firmware/efi` is there
/// under UEFI, kernel Documentation/ABI/testing/sysfs-firmware-efi), else
/// from the layout: UEFI when a disk has an ESP and none has a BIOS boot
/// partition, BIOS otherwise (a disk with both, like Debian's installer
/// leaves on GPT under BIOS, boots either way).
pub fn host_firmware(layout: &Layout, this_host: &str, efi_dir: &Path) -> Boot {
    use crate::layout::model::Flag;
    if layout.host == this_host {
        return if efi_dir.is_dir() {
            Boot::Uefi
        } else {
            Boot::Bios
        };
    }
    let parts = || layout.disks.iter().flat_map(|d| d.partitions.iter());
    let esp = parts().any(|p| p.flags.contains(&Flag::Esp));
    let bios = parts().any(|p| p.flags.contains(&Flag::BiosGrub));
    if esp && !bios { Boot::Uefi } else { Boot::Bios }
}

/// The VM disks the layout asks for: every recorded disk that is not
/// excluded (the backup disk, the rescue medium), same size and serial, on
/// NVMe when it was an NVMe disk.
pub fn blank_disks(layout: &Layout, dir: &Path) -> Vec<Disk> {
    targets(layout)
        .into_iter()
        .enumerate()
        .map(|(i, d)| {
            let name = d.path.trim_start_matches("/dev/").replace('/', "_");
            Disk {
                path: dir.join(format!("{name}.raw")),
                // NVMe needs a serial; a disk without one gets a made-up one.
                serial: Some(
                    d.serial
                        .clone()
                        .filter(|s| !s.is_empty() && s.len() <= 20)
                        .unwrap_or_else(|| format!("MKRDRILL{i}")),
                ),
                bootindex: None,
                cache_unsafe: true,
                snapshot: false,
                readonly: false,
                sparse_report: true,
                nvme: d.path.starts_with("/dev/nvme"),
            }
        })
        .collect()
}

/// The layout's disks recover writes to: all but the excluded ones.
fn targets(layout: &Layout) -> Vec<&crate::layout::model::Disk> {
    layout
        .disks
        .iter()
        .filter(|d| !layout.excluded.iter().any(|e| e.device == d.path))
        .collect()
}

/// Whether `dev` is the disk `disk` or one of its partitions (`/dev/vda`,
/// `/dev/vda2`, `/dev/nvme0n1p2`; not `/dev/vdaa`).
fn on_disk(dev: &str, disk: &str) -> bool {
    dev.strip_prefix(disk).is_some_and(|rest| {
        let rest = rest.strip_prefix('p').unwrap_or(rest);
        rest.chars().all(|c| c.is_ascii_digit())
    })
}

/// What the layout's arrays, volume groups, LUKS containers and file
/// systems are made of but the layout does not record (as a disk that
/// will be recreated, one of its partitions, an array, a volume or a LUKS
/// mapping), each with what needs it: a layout saved while a disk was
/// missing, or with a disk excluded by mistake. recover could not rebuild
/// them, so the drill names them before it boots anything. File systems
/// on excluded disks (the backup's) are not recreated and not asked for.
pub fn unrecorded_devices(layout: &Layout) -> Vec<String> {
    use std::collections::BTreeSet;
    let mut known: BTreeSet<String> = BTreeSet::new();
    for d in targets(layout) {
        known.insert(d.path.clone());
        known.extend(d.partitions.iter().map(|p| p.path.clone()));
    }
    known.extend(layout.md.iter().map(|m| m.path.clone()));
    for lv in &layout.lvm.lvs {
        known.insert(lv.path());
        known.insert(lv.mapper_path());
    }
    known.extend(
        layout
            .luks
            .iter()
            .map(|l| format!("/dev/mapper/{}", l.mapper)),
    );
    let excluded = |dev: &str| layout.excluded.iter().any(|e| on_disk(dev, &e.device));
    let mut out = Vec::new();
    let mut need = |dev: &str, what: String| {
        if dev.starts_with("/dev/") && !known.contains(dev) {
            out.push(format!("{dev} ({what})"));
        }
    };
    for m in &layout.md {
        for d in m.devices.iter().chain(&m.spares) {
            need(d, format!("a member of {}", m.path));
        }
    }
    for pv in &layout.lvm.pvs {
        let vg = pv.vg.as_deref().unwrap_or("no volume group");
        need(&pv.device, format!("a physical volume of {vg}"));
    }
    for l in &layout.luks {
        need(&l.device, format!("the LUKS container {}", l.mapper));
    }
    for f in layout.filesystems.iter().filter(|f| !excluded(&f.device)) {
        need(&f.device, format!("a {} file system", f.fstype));
    }
    out
}

/// The rescue kernel's command line: the ISO's recover-automatically entry
/// on ttyS0, powering off when done (also after a failed recover, src/init).
pub const RECOVER_APPEND: &str =
    "console=ttyS0,115200 mkrescue.recover=auto mkrescue.after=poweroff";

/// What the serial console of a recovered system shows when it is up, and
/// what it shows when it is not.
const LOGIN: &str = " login:";
/// Not SeaBIOS's "Boot failed: not a bootable disk": it goes on to the
/// next disk in the boot order (the second RAID1 member), and only "No
/// bootable device." means none of them boots. OVMF's equivalent is "No
/// bootable option or device was found".
const BOOT_FAILURES: [&str; 7] = [
    "You are in emergency mode",
    "Give root password for maintenance",
    "Kernel panic",
    "grub rescue>",
    "No bootable device",
    "No bootable option or device was found",
    "ALERT!  ",
];

/// Runs the drill; `say` gets one line per step for the operator. The
/// report is returned whether the drill passed or not; an `Err` means the
/// drill itself could not run (no QEMU, no ISO, no room).
pub fn drill(opts: &DrillOptions, layout: &Layout, say: &dyn Fn(&str)) -> Result<Report> {
    let mut r = Report {
        host: layout.host.clone(),
        started: crate::sys::time::now(),
        iso: opts.iso.clone(),
        layout: opts.layout.clone(),
        firmware: opts.boot,
        accel: String::new(),
        accel_note: String::new(),
        passed: false,
        failed_phase: None,
        cause: None,
        phases: Vec::new(),
        recover_phases_s: BTreeMap::new(),
        recover_total_s: None,
        estimate_s: BTreeMap::new(),
        estimate_total_s: None,
        finalize: Vec::new(),
        files_checked: None,
        serial_logs: Vec::new(),
        kept: None,
    };
    let missing = missing_tools(opts, &std::env::var("PATH").unwrap_or_default());
    if !missing.is_empty() {
        return Err(fail(
            Code::Host,
            format!(
                "mkrescue drill needs {}: apt-get install {}",
                missing
                    .iter()
                    .map(|(what, _)| *what)
                    .collect::<Vec<_>>()
                    .join(", "),
                missing
                    .iter()
                    .map(|(_, pkg)| *pkg)
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ));
    }
    let unrecorded = unrecorded_devices(layout);
    if !unrecorded.is_empty() {
        return Err(fail(
            Code::Input,
            format!(
                "the layout {} cannot be recovered: it does not record {}; save it again on the host with every disk attached (`mkrescue layout save`)",
                opts.layout.display(),
                unrecorded.join(", ")
            ),
        ));
    }
    std::fs::create_dir_all(&opts.work).with_context(|| {
        format!(
            "creating the drill's work directory {}",
            opts.work.display()
        )
    })?;

    // 1. The medium.
    let t = Instant::now();
    say(&format!(
        "reading the rescue kernel and initrd out of {}",
        opts.iso.display()
    ));
    let (kernel, initrd) = extract_boot_files(&opts.iso, &opts.work)?;
    r.phases.push(Phase {
        name: "medium".into(),
        ok: true,
        seconds: t.elapsed().as_secs_f64(),
        detail: format!("{} and {}", kernel.display(), initrd.display()),
    });

    // 2. The disks.
    let t = Instant::now();
    let disks = blank_disks(layout, &opts.work);
    if disks.is_empty() {
        return Err(fail(
            Code::Input,
            format!(
                "the layout {} records no disk to recover onto: save it again on the host with `mkrescue layout save`",
                opts.layout.display()
            ),
        ));
    }
    let disks: Vec<Disk> = disks
        .into_iter()
        .map(|d| Disk {
            nvme: match opts.controller {
                Controller::AsRecorded => d.nvme,
                Controller::Virtio => false,
                Controller::Nvme => true,
            },
            ..d
        })
        .collect();
    for (d, src) in disks.iter().zip(targets(layout)) {
        blank(&d.path, src.size)?;
    }
    let vars = opts.work.join("OVMF_VARS.fd");
    let firmware = match opts.boot {
        Boot::Bios => Firmware::SeaBios,
        Boot::Uefi => {
            vm::copy_vars(vm::OVMF_VARS, &vars)?;
            Firmware::Ovmf { vars: vars.clone() }
        }
    };
    r.phases.push(Phase {
        name: "disks".into(),
        ok: true,
        seconds: t.elapsed().as_secs_f64(),
        detail: disks
            .iter()
            .zip(targets(layout))
            .map(|(d, s)| {
                format!(
                    "{} {} ({})",
                    if d.nvme { "nvme" } else { "virtio" },
                    crate::layout::show::human(s.size),
                    s.path
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
    });
    let backups: Vec<Disk> = opts
        .backup_disks
        .iter()
        .enumerate()
        .map(|(i, p)| Disk {
            snapshot: true,
            ..Disk::raw(p, &format!("MKRBACKUP{i}"))
        })
        .collect();

    // 3. Rescue boot and recover, in one VM.
    let log = opts.work.join("recover.log");
    r.serial_logs.push(log.clone());
    let mut spec = VmSpec {
        q35: true,
        memory_mib: opts.memory_mib,
        firmware: firmware.clone(),
        kernel: Some(Kernel {
            kernel: kernel.clone(),
            initrd: initrd.clone(),
            append: RECOVER_APPEND.into(),
        }),
        disks: disks
            .iter()
            .cloned()
            .chain(backups.iter().cloned())
            .collect(),
        ..VmSpec::new(Serial::File(log.clone()))
    };
    let (accel, note) = choose_accel(opts, &mut spec, say)?;
    r.accel = accel.name().into();
    r.accel_note = note;
    say(&format!(
        "booting the rescue system ({}, {}) to recover onto blank disks; serial log {}",
        r.accel,
        match opts.boot {
            Boot::Bios => "BIOS",
            Boot::Uefi => "UEFI",
        },
        log.display()
    ));
    let t = Instant::now();
    let w = watch(
        &spec,
        &[READY_MARKER, RECOVER_OK, RECOVER_FAILED],
        &[],
        opts.recover_timeout,
    )?;
    let text = vm::read_log(&log);
    let ready = w.seen.get(READY_MARKER).copied();
    r.phases.push(Phase {
        name: "rescue boot".into(),
        ok: ready.is_some(),
        seconds: ready.unwrap_or(t.elapsed().as_secs_f64()),
        detail: match ready {
            Some(_) => "the rescue system reached its ready marker".into(),
            None => "no ready marker".into(),
        },
    });
    if ready.is_none() {
        return Ok(failed(
            r,
            "rescue boot",
            format!(
                "the rescue system never became ready ({}); the end of {}: {}",
                w.why,
                log.display(),
                last_line(&serial::mkrescue_lines(&text))
            ),
        ));
    }
    let ready = ready.unwrap_or_default();
    r.recover_phases_s = serial::recover_phases(&text);
    (r.recover_total_s, _) = serial::recover_totals(&text);
    (r.estimate_s, r.estimate_total_s) = serial::recover_predicted(&text);
    r.finalize = text
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix("mkrescue:   - "))
        .map(str::to_string)
        .collect();
    r.files_checked = serial::files_checked(&text);
    let done = w.seen.get(RECOVER_OK).copied();
    let recover_s = done
        .or(w.seen.get(RECOVER_FAILED).copied())
        .unwrap_or(w.total)
        - ready;
    r.phases.push(Phase {
        name: "recover".into(),
        ok: done.is_some(),
        seconds: recover_s,
        detail: match (done, r.recover_total_s) {
            (Some(_), Some(t)) => {
                format!("recover reports {t:.1}s{}", checked_note(r.files_checked))
            }
            (Some(_), None) => format!("recover finished{}", checked_note(r.files_checked)),
            (None, _) => "recover did not finish".into(),
        },
    });
    if done.is_none() {
        let why = recover_failure(&text).unwrap_or(&w.why).to_string();
        let unseen = unseen_disks(&text, &disks);
        let cause = if unseen.is_empty() {
            format!("{why} (serial log {})", log.display())
        } else {
            format!(
                "the rescue kernel does not see the disk controller: {} of the {} disks on {} ({}) are missing from the disks recover found, so the rescue image lacks that controller's driver; build it with the driver (`[modules] extra = [\"{}\"]`, or policy = \"storage-net\") and drill again (recover: {why}; serial log {})",
                unseen.len(),
                disks.len(),
                opts.controller.name(unseen[0].nvme),
                unseen
                    .iter()
                    .map(|d| d.serial.as_deref().unwrap_or("?"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if unseen[0].nvme { "nvme" } else { "virtio_blk" },
                log.display()
            )
        };
        return Ok(failed(r, "recover", cause));
    }

    if let Some(cmd) = &opts.test_hook {
        say(&format!("test hook: {cmd}"));
        let st = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .arg("sh")
            .args(disks.iter().map(|d| &d.path))
            .status()
            .with_context(|| format!("running the drill's test hook `{cmd}`"))?;
        if !st.success() {
            bail!("the drill's test hook `{cmd}` failed ({st})");
        }
    }

    // 4. The recovered system's first boot, copy-on-write.
    let log = opts.work.join("first-boot.log");
    r.serial_logs.push(log.clone());
    let boot_vars = opts.work.join("OVMF_VARS.first-boot.fd");
    // SeaBIOS's own messages ("No bootable device.") on ttyS0 too: a disk
    // without a boot loader must fail the drill at once, by name, and not
    // at the boot timeout. OVMF prints on the serial port by itself.
    let sercon = opts.work.join("sercon-port.bin");
    vm::write_sercon_port(&sercon)?;
    let spec = VmSpec {
        bios_serial_console: Some(sercon),
        accel,
        q35: true,
        memory_mib: opts.memory_mib,
        firmware: match &firmware {
            Firmware::Ovmf { vars } => {
                std::fs::copy(vars, &boot_vars)
                    .with_context(|| format!("copying {}", vars.display()))?;
                Firmware::Ovmf { vars: boot_vars }
            }
            f => f.clone(),
        },
        disks: disks
            .iter()
            .enumerate()
            .map(|(i, d)| Disk {
                snapshot: true,
                // BIOS boots the first disk, as a machine's boot order
                // would; under UEFI the entries recover wrote decide.
                bootindex: (opts.boot == Boot::Bios).then_some(i as u32),
                ..d.clone()
            })
            .chain(backups.iter().cloned())
            .collect(),
        ..VmSpec::new(Serial::File(log.clone()))
    };
    say(&format!(
        "booting the recovered disks until a login prompt on ttyS0; serial log {}",
        log.display()
    ));
    let w = watch(&spec, &[LOGIN], &BOOT_FAILURES, opts.boot_timeout)?;
    let login = w.seen.get(LOGIN).copied();
    r.phases.push(Phase {
        name: "first boot".into(),
        ok: login.is_some(),
        seconds: login.unwrap_or(w.total),
        detail: match login {
            Some(_) => "login prompt on ttyS0".into(),
            None => w.why.clone(),
        },
    });
    if login.is_none() {
        let cause = format!(
            "the recovered system did not boot: {} (serial log {})",
            w.why,
            log.display()
        );
        return Ok(failed(r, "first boot", cause));
    }

    if let Some(dir) = &opts.keep {
        say(&format!("keeping the recovered disks in {}", dir.display()));
        keep(dir, &disks, &firmware, opts.keep_raw)?;
        r.kept = Some(dir.clone());
    }
    r.passed = true;
    Ok(r)
}

/// The line that says why recover failed: its own error line (`mkrescue:
/// error: ...`, the one line every mkrescue error is, src/main.rs), else
/// init's `recover failed` line; None when recover printed neither (the
/// VM stopped or timed out: the caller says that).
pub fn recover_failure(serial: &str) -> Option<&str> {
    let last = |want: &dyn Fn(&str) -> bool| serial.lines().rev().find(|l| want(l)).map(str::trim);
    last(&|l| l.contains("mkrescue: error:")).or_else(|| last(&|l| l.contains(RECOVER_FAILED)))
}

/// `; N restored files equal to the manifest` for the recover phase.
fn checked_note(checked: Option<u64>) -> String {
    match checked {
        Some(0) => "; the backup has no manifest: no file's data was checked".into(),
        Some(n) => format!("; {n} restored files equal to the backup's manifest"),
        None => String::new(),
    }
}

/// The drill's disks that the `disks here:` list of recover's error (when
/// a disk of the layout had no disk to go to) does not name by serial:
/// the rescue kernel did not see them, as when the image lacks the driver
/// of the controller they sit on. Empty when recover printed no such list
/// (it failed otherwise) or saw them all.
pub fn unseen_disks<'a>(serial_log: &str, disks: &'a [Disk]) -> Vec<&'a Disk> {
    let Some(seen) = crate::recover::mapping::serials_here(serial_log) else {
        return Vec::new();
    };
    disks
        .iter()
        .filter(|d| d.serial.as_ref().is_some_and(|s| !seen.contains(s)))
        .collect()
}

/// What the drill would call and this machine lacks, with the Debian
/// package that has it: QEMU, xorriso (the ISO), qemu-img (`--keep` as
/// qcow2), OVMF (UEFI); `path` is the PATH to look in.
fn missing_tools(opts: &DrillOptions, path: &str) -> Vec<(&'static str, &'static str)> {
    let on_path = |name: &str| {
        path.split(':')
            .filter(|d| !d.is_empty())
            .any(|d| Path::new(d).join(name).is_file())
    };
    let mut out = Vec::new();
    if !on_path(vm::QEMU) {
        out.push((vm::QEMU, "qemu-system-x86"));
    }
    if !on_path("xorriso") {
        out.push(("xorriso", "xorriso"));
    }
    if opts.keep.is_some() && !opts.keep_raw && !on_path("qemu-img") {
        out.push(("qemu-img", "qemu-utils"));
    }
    if opts.boot == Boot::Uefi && !Path::new(vm::OVMF_CODE).is_file() {
        out.push((vm::OVMF_CODE, "ovmf"));
    }
    out
}

fn failed(mut r: Report, phase: &str, cause: String) -> Report {
    r.failed_phase = Some(phase.to_string());
    r.cause = Some(cause);
    r
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(nothing)")
        .trim()
}

/// A new sparse file of `size` bytes (an old one from an earlier drill is
/// replaced: the drill starts from blank disks).
fn blank(path: &Path, size: u64) -> Result<()> {
    let _ = std::fs::remove_file(path);
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.set_len(size)
        .with_context(|| format!("sizing {} to {size} bytes", path.display()))
}

/// `/boot/vmlinuz` and `/boot/initrd.img` of an mkrescue ISO (src/output/iso.rs)
/// into `work`.
fn extract_boot_files(iso: &Path, work: &Path) -> Result<(PathBuf, PathBuf)> {
    if !iso.is_file() {
        return Err(fail(
            Code::Input,
            format!(
                "no rescue ISO at {}: build one with `mkrescue --output iso` or name it with --iso",
                iso.display()
            ),
        ));
    }
    let kernel = work.join("vmlinuz");
    let initrd = work.join("initrd.img");
    for p in [&kernel, &initrd] {
        let _ = std::fs::remove_file(p);
    }
    Cmd::new("xorriso")
        .args(["-osirrox", "on", "-indev"])
        .arg(iso)
        .args(["-extract", "/boot/vmlinuz"])
        .arg(&kernel)
        .args(["-extract", "/boot/initrd.img"])
        .arg(&initrd)
        .output()
        .with_context(|| {
            format!(
                "reading /boot/vmlinuz and /boot/initrd.img out of {} (is it an mkrescue ISO? apt-get install xorriso)",
                iso.display()
            )
        })?;
    for p in [&kernel, &initrd] {
        if !p.is_file() {
            return Err(fail(
                Code::Input,
                format!(
                    "{} has no {}: not an mkrescue rescue ISO; build one with `mkrescue --output iso`",
                    iso.display(),
                    p.file_name().unwrap_or_default().to_string_lossy()
                ),
            ));
        }
    }
    Ok((kernel, initrd))
}

/// KVM or TCG for `spec`, and why. Under `auto` a KVM that opens is tried
/// with the recover VM itself: a kernel that prints nothing within
/// [`KVM_PROBE`] has not run (it wrote nothing to the disks), and the VM
/// starts over under TCG.
fn choose_accel(
    opts: &DrillOptions,
    spec: &mut VmSpec,
    say: &dyn Fn(&str),
) -> Result<(Accel, String)> {
    match opts.accel {
        AccelChoice::Fixed(a) => {
            spec.accel = a;
            Ok((a, format!("{} as asked (--accel)", a.name())))
        }
        AccelChoice::Auto => {
            let kvm = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/kvm");
            if let Err(e) = kvm {
                spec.accel = Accel::Tcg;
                return Ok((Accel::Tcg, format!("tcg: /dev/kvm cannot be opened ({e})")));
            }
            spec.accel = Accel::Kvm;
            let probe_log = opts.work.join("kvm-probe.log");
            let mut probe = spec.clone();
            probe.serial = Serial::File(probe_log.clone());
            say("trying KVM (/dev/kvm opens)");
            let mut v = Vm::start_logging(&probe, &opts.work.join("kvm-probe.qemu.txt"))?;
            let start = Instant::now();
            while start.elapsed() < KVM_PROBE {
                if let Some(st) = v.try_wait()? {
                    if vm::read_log(&probe_log).trim().is_empty() {
                        // QEMU itself refused (a locked disk image, a bad
                        // option): not KVM's fault, and TCG would fail alike.
                        bail!(
                            "QEMU stopped at once ({st}): {}",
                            v.qemu_error().unwrap_or_else(|| "no message".into())
                        );
                    }
                    break;
                }
                if !vm::read_log(&probe_log).trim().is_empty() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let printed = !vm::read_log(&probe_log).trim().is_empty();
            let _ = v.kill();
            if printed {
                // Stopped at the kernel's first lines, long before the
                // rescue system could touch a disk: the real run starts
                // from the same blank disks.
                Ok((Accel::Kvm, "kvm: /dev/kvm runs guests".into()))
            } else {
                spec.accel = Accel::Tcg;
                say("KVM ran no guest kernel; using TCG");
                Ok((
                    Accel::Tcg,
                    format!(
                        "tcg: /dev/kvm opens but a guest kernel printed nothing within {}s under it",
                        KVM_PROBE.as_secs()
                    ),
                ))
            }
        }
    }
}

/// What [`watch`] saw: each wanted line's time (wall seconds since QEMU's
/// start), QEMU's total, and why it ended when it ended badly.
struct Watched {
    seen: BTreeMap<&'static str, f64>,
    total: f64,
    why: String,
}

/// Starts `spec` and watches its serial log until the last of `wanted`
/// shows (then QEMU may run on and is stopped), one of `fatal` shows,
/// QEMU exits or `timeout` passes.
fn watch(
    spec: &VmSpec,
    wanted: &[&'static str],
    fatal: &[&'static str],
    timeout: Duration,
) -> Result<Watched> {
    let log = spec.serial.log().to_path_buf();
    let mut v = Vm::start_logging(spec, &log.with_extension("qemu.txt"))?;
    let mut w = Watched {
        seen: BTreeMap::new(),
        total: 0.0,
        why: String::new(),
    };
    loop {
        let text = vm::read_log(&log);
        let now = v.elapsed().as_secs_f64();
        for m in wanted {
            if !w.seen.contains_key(m) && text.contains(m) {
                w.seen.insert(m, now);
            }
        }
        if let Some(f) = fatal.iter().find(|f| text.contains(*f)) {
            w.why = format!("`{}` on the console", f.trim());
            let _ = v.kill();
            break;
        }
        let last_wanted = wanted.last().is_some_and(|m| w.seen.contains_key(m));
        if let Some(st) = v.try_wait()? {
            if w.why.is_empty() && !last_wanted {
                w.why = match v.qemu_error().filter(|_| !st.success()) {
                    Some(e) => format!("QEMU stopped ({st}): {e}"),
                    None => format!("the VM stopped ({st})"),
                };
            }
            // A recover VM powers off after its last line: read it all.
            let text = vm::read_log(&log);
            for m in wanted {
                if !w.seen.contains_key(m) && text.contains(m) {
                    w.seen.insert(m, now);
                }
            }
            break;
        }
        // A booted system stays up: its login prompt is the end.
        if last_wanted && wanted.len() == 1 {
            let _ = v.kill();
            break;
        }
        if v.elapsed() > timeout {
            let _ = v.kill();
            w.why = format!("nothing more within {}s", timeout.as_secs());
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    w.total = v.elapsed().as_secs_f64();
    Ok(w)
}

/// The recovered disks as qcow2 images (`qemu-img convert`, holes stay
/// holes) or, `raw`, the sparse files themselves (moved; converted when
/// `dir` is on another file system), and the UEFI variables beside them.
fn keep(dir: &Path, disks: &[Disk], firmware: &Firmware, raw: bool) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for d in disks {
        let name = d
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "disk".into());
        let ext = if raw { "raw" } else { "qcow2" };
        let out = dir.join(format!("{name}.{ext}"));
        if raw && std::fs::rename(&d.path, &out).is_ok() {
            continue;
        }
        Cmd::new("qemu-img")
            .args(["convert", "-O", ext])
            .arg(&d.path)
            .arg(&out)
            .output()
            .with_context(|| {
                format!(
                    "converting {} to {} (apt-get install qemu-utils)",
                    d.path.display(),
                    out.display()
                )
            })?;
    }
    if let Firmware::Ovmf { vars } = firmware {
        std::fs::copy(vars, dir.join("OVMF_VARS.fd"))
            .with_context(|| format!("copying {} to {}", vars.display(), dir.display()))?;
    }
    Ok(())
}

/// Keeps `r` as HISTORY/HOST-STAMP.json.
pub fn record(history: &Path, r: &Report) -> Result<PathBuf> {
    std::fs::create_dir_all(history).with_context(|| format!("creating {}", history.display()))?;
    let p = history.join(format!(
        "{}-{}.json",
        r.host.replace('/', "_"),
        crate::sys::time::stamp(r.started)
    ));
    std::fs::write(&p, serde_json::to_vec_pretty(r)?)
        .with_context(|| format!("writing {}", p.display()))?;
    Ok(p)
}

/// Every report in `history`, oldest first; unreadable files are named in
/// the error.
pub fn history(history: &Path) -> Result<Vec<Report>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(history) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => bail!("reading {}: {e}", history.display()),
    };
    let mut paths: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    for p in paths {
        let text = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        let r: Report = serde_json::from_slice(&text).with_context(|| {
            format!(
                "{} is not a drill report; move it out of {}",
                p.display(),
                history.display()
            )
        })?;
        out.push(r);
    }
    out.sort_by_key(|r| r.started);
    Ok(out)
}

/// The human report: one line per phase, then the verdict.
pub fn render(r: &Report) -> String {
    let mut s = format!(
        "drill of {} ({}, {}): {}\n",
        r.host,
        match r.firmware {
            Boot::Bios => "BIOS",
            Boot::Uefi => "UEFI",
        },
        r.accel_note,
        if r.passed { "PASSED" } else { "FAILED" }
    );
    for p in &r.phases {
        s.push_str(&format!(
            "  {:<12} {:>7.1}s  {}  {}\n",
            p.name,
            p.seconds,
            if p.ok { "ok  " } else { "FAIL" },
            p.detail
        ));
    }
    if !r.recover_phases_s.is_empty() {
        s.push_str("  recover's phases (actual / its estimate beforehand):\n");
        // recover's order (src/recover), then any phase a newer recover adds.
        let order = ["layout", "mount", "restore", "finalize", "unmount"];
        let mut names: Vec<&String> = r.recover_phases_s.keys().collect();
        names.sort_by_key(|k| order.iter().position(|o| o == k).unwrap_or(order.len()));
        for k in names {
            let v = &r.recover_phases_s[k];
            match r.estimate_s.get(k) {
                Some(e) => s.push_str(&format!("    {k:<10} {v:>7.1}s / {e:.1}s\n")),
                None => s.push_str(&format!("    {k:<10} {v:>7.1}s\n")),
            }
        }
        if let (Some(t), Some(e)) = (r.recover_total_s, r.estimate_total_s) {
            s.push_str(&format!(
                "    {:<10} {t:>7.1}s / {e:.1}s (estimate {:+.0}%)\n",
                "total",
                (e - t) / t * 100.0
            ));
        }
    }
    for f in &r.finalize {
        s.push_str(&format!("  - {f}\n"));
    }
    if let Some(c) = &r.cause {
        s.push_str(&format!("  cause: {c}\n"));
    }
    if let Some(k) = &r.kept {
        s.push_str(&format!("  recovered disks kept in {}\n", k.display()));
    }
    s
}

/// The report as a mail to backup.mail_to (the backup's mail format).
pub fn mail(cfg: &crate::config::Backup, r: &Report) -> String {
    crate::backup::mail::compose(
        cfg,
        &crate::backup::mail::Report {
            host: &r.host,
            job: "drill",
            status: if r.passed { "OK" } else { "FAILED" },
            started: r.started,
            body: &render(r),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::model::Flag;

    /// The layout VM's layout (vda, vdb: its IN/OUT disks; vdc, vdd: GPT
    /// with a BIOS boot partition and RAID), the IN/OUT disks excluded as
    /// a backup disk would be.
    fn layout() -> Layout {
        let text = include_str!("../../tests/fixtures/layout/layout2.json");
        let mut l: Layout = serde_json::from_str(text).unwrap();
        for dev in ["/dev/vda", "/dev/vdb"] {
            l.excluded.push(crate::layout::model::Excluded {
                device: dev.into(),
                reason: "backup disk".into(),
            });
        }
        l
    }

    #[test]
    fn disks_are_shaped_from_the_layout_without_the_excluded_ones() {
        let l = layout();
        let d = blank_disks(&l, Path::new("/w"));
        let kept: Vec<&str> = l
            .disks
            .iter()
            .filter(|d| !l.excluded.iter().any(|e| e.device == d.path))
            .map(|d| d.path.as_str())
            .collect();
        assert_eq!(d.len(), kept.len());
        assert!(
            d.len() < l.disks.len(),
            "the fixture excludes its backup disk"
        );
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].path, Path::new("/w/vdc.raw"));
        assert_eq!(d[1].serial.as_deref(), Some("DISK2"));
        assert!(d.iter().all(|d| !d.nvme && !d.snapshot && d.sparse_report));
    }

    #[test]
    fn nvme_disks_stay_nvme_and_get_a_serial() {
        let mut l = layout();
        l.excluded.clear();
        l.disks[0].path = "/dev/nvme0n1".into();
        l.disks[0].serial = None;
        let d = blank_disks(&l, Path::new("/w"));
        assert!(d[0].nvme);
        assert_eq!(d[0].path, Path::new("/w/nvme0n1.raw"));
        assert_eq!(d[0].serial.as_deref(), Some("MKRDRILL0"));
    }

    #[test]
    fn firmware_of_another_host_follows_its_boot_partitions() {
        let mut l = layout();
        let efi = Path::new("/nonexistent/efi");
        // A BIOS boot partition: BIOS.
        assert_eq!(host_firmware(&l, "elsewhere", efi), Boot::Bios);
        for d in &mut l.disks {
            for p in &mut d.partitions {
                if p.flags.contains(&Flag::BiosGrub) {
                    p.flags = vec![Flag::Esp];
                }
            }
        }
        assert_eq!(host_firmware(&l, "elsewhere", efi), Boot::Uefi);
        // This host: what it booted with (no efi dir: BIOS).
        let me = l.host.clone();
        assert_eq!(host_firmware(&l, &me, efi), Boot::Bios);
    }

    #[test]
    fn a_layout_missing_a_disk_is_named_before_any_vm() {
        // The e2e server's own layout (raid1-lvm, saved by its `before`):
        // everything it needs is recorded; the backup disk is excluded.
        let text = include_str!("../../tests/fixtures/layout/e2e-raid1-lvm.json");
        let l: Layout = serde_json::from_str(text).unwrap();
        assert_eq!(unrecorded_devices(&l), Vec::<String>::new());
        // Without its second disk: md0's member on it is named.
        let mut gone = l.clone();
        gone.disks.retain(|d| d.path != "/dev/vdb");
        let u = unrecorded_devices(&gone);
        assert!(
            !u.is_empty() && u.iter().all(|x| x.starts_with("/dev/vdb")),
            "{u:?}"
        );
        assert!(
            u.iter().any(|x| x.contains("a member of /dev/md0")),
            "{u:?}"
        );
        // Excluded by mistake: the member is named (a file system on an
        // excluded disk, like the backup's, is not asked for).
        let mut excl = l.clone();
        excl.excluded.push(crate::layout::model::Excluded {
            device: "/dev/vdb".into(),
            reason: "by mistake".into(),
        });
        assert_eq!(
            unrecorded_devices(&excl),
            ["/dev/vdb3 (a member of /dev/md0)"]
        );
        assert!(on_disk("/dev/nvme0n1p2", "/dev/nvme0n1") && !on_disk("/dev/vdaa", "/dev/vda"));
    }

    #[test]
    fn missing_tools_are_named_with_their_packages() {
        let opts = DrillOptions {
            iso: "/x.iso".into(),
            layout: "/l.json".into(),
            backup_disks: vec![],
            boot: Boot::Bios,
            accel: AccelChoice::Fixed(Accel::Tcg),
            work: "/w".into(),
            keep: Some("/k".into()),
            keep_raw: false,
            memory_mib: 2048,
            recover_timeout: Duration::from_secs(1),
            boot_timeout: Duration::from_secs(1),
            controller: Controller::AsRecorded,
            test_hook: None,
        };
        let none = missing_tools(&opts, "/nonexistent-bin");
        assert_eq!(
            none,
            [
                (vm::QEMU, "qemu-system-x86"),
                ("xorriso", "xorriso"),
                ("qemu-img", "qemu-utils")
            ]
        );
        // A PATH with all three: nothing missing.
        let dir = tempfile::tempdir().unwrap();
        for t in [vm::QEMU, "xorriso", "qemu-img"] {
            std::fs::write(dir.path().join(t), "").unwrap();
        }
        assert!(missing_tools(&opts, dir.path().to_str().unwrap()).is_empty());
        // Raw keeps need no qemu-img.
        let raw = DrillOptions {
            keep_raw: true,
            ..opts
        };
        assert_eq!(missing_tools(&raw, "/nonexistent-bin").len(), 2);
    }

    /// The disks recover's `disks here:` line leaves out are the ones the
    /// rescue kernel did not see; no such line (recover failed before it
    /// listed the disks) names none.
    #[test]
    fn disks_missing_from_recovers_list_are_the_unseen_ones() {
        let disks: Vec<Disk> = ["DISK1", "DISK2"]
            .iter()
            .map(|s| Disk {
                nvme: true,
                ..Disk::raw(format!("/w/{s}.raw"), s)
            })
            .collect();
        let none_seen = "mkrescue: error: no target disk left for /dev/vda (20.0 GiB): attach one or give --map /dev/vda=DISK; nothing was changed; disks here: /dev/vda (4.0 GiB, serial MKRBACKUP0)\n";
        let unseen = unseen_disks(none_seen, &disks);
        assert_eq!(
            unseen
                .iter()
                .map(|d| d.serial.as_deref())
                .collect::<Vec<_>>(),
            [Some("DISK1"), Some("DISK2")]
        );
        let one_seen = "mkrescue: disks here: /dev/nvme0n1 (20.0 GiB, serial DISK2), /dev/vda (4.0 GiB, serial MKRBACKUP0)\n";
        assert_eq!(unseen_disks(one_seen, &disks).len(), 1);
        let all = "mkrescue: disks here: /dev/nvme0n1 (20.0 GiB, serial DISK1), /dev/nvme1n1 (20.0 GiB, serial DISK2)\n";
        assert!(unseen_disks(all, &disks).is_empty());
        assert!(unseen_disks("mkrescue: error: no backup found\n", &disks).is_empty());
        assert_eq!(Controller::AsRecorded.name(true), "NVMe");
        assert_eq!(Controller::Virtio.name(true), "virtio");
    }

    #[test]
    fn recovers_own_error_line_is_the_cause() {
        let log = "mkrescue: rescue system ready (11.2s)\n\
mkrescue init: mkrescue.recover=auto: running mkrescue recover --unattended\n\
mkrescue: restoring e2e-server-20261206T050000.000000Z\n\
mkrescue: error: restore: frame 12 of /backup/archive/e2e-server-20261206T050000.000000Z.mkra is damaged (checksum mismatch): restore from another backup with --archive\n\
mkrescue: recover failed (exit code 5); the rescue system stays up, see the messages above\n\
mkrescue: powering off\n";
        assert_eq!(
            recover_failure(log),
            Some(
                "mkrescue: error: restore: frame 12 of /backup/archive/e2e-server-20261206T050000.000000Z.mkra is damaged (checksum mismatch): restore from another backup with --archive"
            )
        );
        // Killed before it could say why: init's line.
        let killed = "mkrescue: rescue system ready (11.2s)\nmkrescue: recover failed (killed by a signal)\n";
        assert_eq!(
            recover_failure(killed),
            Some("mkrescue: recover failed (killed by a signal)")
        );
        assert_eq!(
            recover_failure("mkrescue: rescue system ready (11.2s)\n"),
            None
        );
    }

    #[test]
    fn reports_round_trip_through_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let r = failed(
            Report {
                host: "web1".into(),
                started: 1_800_000_000,
                iso: "/x.iso".into(),
                layout: "/l.json".into(),
                firmware: Boot::Uefi,
                accel: "tcg".into(),
                accel_note: "tcg as asked (--accel)".into(),
                passed: false,
                failed_phase: None,
                cause: None,
                phases: vec![Phase {
                    name: "recover".into(),
                    ok: false,
                    seconds: 12.0,
                    detail: "recover did not finish".into(),
                }],
                recover_phases_s: BTreeMap::new(),
                recover_total_s: None,
                estimate_s: BTreeMap::new(),
                estimate_total_s: None,
                finalize: vec![],
                files_checked: None,
                serial_logs: vec![],
                kept: None,
            },
            "recover",
            "mkrescue: error: no backup found".into(),
        );
        let p = record(dir.path(), &r).unwrap();
        assert!(p.ends_with("web1-20270115T080000Z.json"), "{}", p.display());
        let h = history(dir.path()).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].failed_phase.as_deref(), Some("recover"));
        let text = render(&h[0]);
        assert!(
            text.contains("FAILED") && text.contains("no backup found"),
            "{text}"
        );
        std::fs::write(dir.path().join("junk.json"), "{").unwrap();
        let e = format!("{:#}", history(dir.path()).unwrap_err());
        assert!(e.contains("junk.json is not a drill report"), "{e}");
    }
}
