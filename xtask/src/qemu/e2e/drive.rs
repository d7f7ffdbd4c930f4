//! How one e2e VM is described ([`Vm`]: its disks, boot, and what to
//! wait for, type and answer on its console) and driven to its power-off
//! through the VM runner; the serial log read back without escape codes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::util::{self, tail};
use mkrescue::drill::serial::mkrescue_lines;
use mkrescue::vm::{
    self, Cdrom, Firmware, Kernel, Network, Nic, Serial, UserNet, VmSpec, read_log,
};

/// Serial console lines that mean a boot has gone wrong for good: stop
/// waiting and name it.
pub(super) const FATAL: &[(&str, &str)] = &[
    (
        "grub rescue>",
        "GRUB found no usable /boot (grub rescue prompt)",
    ),
    ("Entering emergency mode", "systemd entered emergency mode"),
    // The real root's emergency.service when root has no password (the
    // e2e server): no password prompt follows, so without this line the
    // harness waited for its whole timeout.
    (
        "You are in emergency mode",
        "systemd entered emergency mode",
    ),
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

/// Why the console `text` says the VM failed: a [`FATAL`] line, or one of
/// the VM's own `fail_when` lines.
fn fatal(text: &str, fail_when: &[&str]) -> Option<String> {
    FATAL
        .iter()
        .find(|(pat, _)| text.contains(pat))
        .map(|(_, why)| why.to_string())
        .or_else(|| {
            fail_when
                .iter()
                .find(|p| text.contains(*p))
                .map(|p| format!("`{p}` on the console"))
        })
}

/// One virtio disk of a VM.
pub(super) struct Disk {
    pub(super) serial: &'static str,
    pub(super) path: PathBuf,
    /// Firmware boot order (`bootindex`), for the disks it may boot from.
    pub(super) boot: Option<u32>,
    /// The guest cannot write it (the cached rootfs tarball).
    pub(super) readonly: bool,
    /// On NVMe instead of virtio (see [`super::variant::Variant::nvme`]).
    pub(super) nvme: bool,
}

/// How to start and drive one VM.
pub(super) struct Vm {
    /// Log name: target/qemu/e2e-NAME.log.
    pub(super) name: String,
    /// `-kernel`, `-initrd`, `-append`.
    pub(super) kernel: Option<(PathBuf, PathBuf, String)>,
    pub(super) cdrom: Option<PathBuf>,
    /// UEFI: the VM's own OVMF variable store (boot entries survive in it
    /// from one VM to the next); None: SeaBIOS.
    pub(super) uefi_vars: Option<PathBuf>,
    /// Network boot: (TFTP root, boot file) served by QEMU's user-mode
    /// DHCP/TFTP to a virtio NIC that boots first.
    pub(super) tftp: Option<(PathBuf, String)>,
    /// The MAC of the VM's one NIC (with `tftp`, of the boot NIC; without,
    /// a NIC that boots nothing); None with no `tftp`: no NIC at all.
    pub(super) mac: Option<String>,
    pub(super) disks: Vec<Disk>,
    /// Waited for; its wall time is "boot to ready".
    pub(super) ready: &'static str,
    /// Typed on the serial console once `ready` shows.
    pub(super) type_on_ready: Option<String>,
    /// (prompt, reply): typed once each when the prompt shows.
    pub(super) answers: Vec<(&'static str, String)>,
    /// Lines whose first appearance is timed too.
    pub(super) timed: Vec<&'static str>,
    /// A line that ends the run as failed (after a grace period for the
    /// rest of the output), e.g. a non-zero exit marker.
    pub(super) fail_when: Vec<&'static str>,
    pub(super) timeout: Duration,
}

/// What a VM run saw.
pub(super) struct VmRun {
    /// Wall seconds from QEMU's start to each `ready`/`timed` line.
    pub(super) seen: BTreeMap<&'static str, f64>,
    pub(super) total: f64,
    pub(super) log: PathBuf,
    pub(super) text: String,
}

impl VmRun {
    /// Guest-measured times: `MKR-E2E-TIME NAME VALUE` lines.
    pub(super) fn guest_times(&self) -> BTreeMap<String, String> {
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

/// The runner's description of `vm`: q35, its serial console logged to
/// `log` (typed on through stdin), OVMF with the VM's own variables or
/// SeaBIOS, at most one NIC on a restricted user network (network boot
/// from QEMU's TFTP, first in the boot order; or one with the VM's MAC
/// that boots nothing, the server's; otherwise none, QEMU's default one
/// being unrestricted), the ISO as a CD-ROM that boots first, and the
/// disks.
pub(super) fn spec(vm: &Vm, log: &Path) -> VmSpec {
    VmSpec {
        q35: true,
        firmware: match &vm.uefi_vars {
            Some(vars) => Firmware::Ovmf { vars: vars.clone() },
            None => Firmware::SeaBios,
        },
        network: match (&vm.tftp, &vm.mac) {
            (Some((dir, file)), mac) => Network::Nics(vec![Nic {
                net: UserNet {
                    tftp: Some(dir.clone()),
                    bootfile: Some(file.clone()),
                    ..UserNet::default()
                },
                mac: mac.clone(),
                bootindex: Some(0),
            }]),
            (None, Some(mac)) => Network::Nics(vec![Nic {
                net: UserNet::default(),
                mac: Some(mac.clone()),
                bootindex: None,
            }]),
            (None, None) => Network::None,
        },
        kernel: vm.kernel.as_ref().map(|(k, i, append)| Kernel {
            kernel: k.clone(),
            initrd: i.clone(),
            append: append.clone(),
        }),
        cdrom: vm.cdrom.as_ref().map(|iso| Cdrom {
            iso: iso.clone(),
            bootindex: Some(0),
        }),
        disks: vm
            .disks
            .iter()
            .map(|d| vm::Disk {
                path: d.path.clone(),
                serial: Some(d.serial.to_string()),
                bootindex: d.boot,
                cache_unsafe: true,
                // detect-zeroes/discard=unmap: zeros the guest writes (md's
                // initial resync copies 6 GiB of them) stay holes in the
                // sparse image instead of filling the host's disk.
                // werror/rerror=report: a host I/O error (its disk full)
                // reaches the guest as one, instead of pausing the VM
                // until the phase's timeout.
                sparse_report: true,
                snapshot: false,
                readonly: d.readonly,
                nvme: d.nvme,
            })
            .collect(),
        ..VmSpec::new(Serial::Console(log.to_path_buf()))
    }
}

/// Below this the host's disk counts as full while a VM runs.
pub(super) const LOW_SPACE: u64 = 64 << 20;

/// The serial log of the VM named `name`: target/qemu/e2e-NAME.log.
pub(super) fn log_path(name: &str) -> PathBuf {
    PathBuf::from(format!("target/qemu/e2e-{name}.log"))
}

/// GRUB's last line before it jumps into the kernel it loaded.
const GRUB_JUMPS: &str = "Loading initial ramdisk ...";
/// How long a kernel GRUB started may print nothing (under TCG the
/// initramfs's first line comes 5-30 s after [`GRUB_JUMPS`]).
const KERNEL_SILENT: Duration = Duration::from_secs(180);

/// Boots `vm`, drives it, waits until QEMU exits (the guest powers off).
///
/// A kernel that prints nothing at all for [`KERNEL_SILENT`] after GRUB
/// jumped into it is stopped and the VM booted once more: seen once in
/// the fresh-clone matrix run of 2026-12-05 (pxe uefi, degraded: 13 min of
/// silence after GRUB, at full CPU), while the same disks booted in every
/// other run. Nothing has run in the guest by then that writes a disk (the
/// initramfs prints first), so the second boot starts from the same disks.
/// Its log is kept as target/qemu/e2e-NAME.stalled.log; a second stall
/// fails the phase.
pub(super) fn run_vm(vm: &Vm) -> Result<VmRun> {
    match run_vm_once(vm)? {
        Some(run) => Ok(run),
        None => {
            let log = log_path(&vm.name);
            let kept = log.with_extension("stalled.log");
            std::fs::rename(&log, &kept)
                .with_context(|| format!("keeping {} as {}", log.display(), kept.display()))?;
            eprintln!(
                "[{}] the kernel printed nothing for {}s after GRUB started it: stopped, booting once more (log of the first boot: {})",
                vm.name,
                KERNEL_SILENT.as_secs(),
                kept.display()
            );
            run_vm_once(vm)?.with_context(|| {
                format!(
                    "VM {}: the kernel printed nothing for {}s after GRUB started it, twice; serial logs {} and {}",
                    vm.name,
                    KERNEL_SILENT.as_secs(),
                    kept.display(),
                    log.display()
                )
            })
        }
    }
}

/// [`run_vm`]'s one boot: `None` when the kernel stalled silently.
fn run_vm_once(vm: &Vm) -> Result<Option<VmRun>> {
    let log = log_path(&vm.name);
    let mut child = vm::Vm::start(&spec(vm, &log))?;
    let mut last_len = 0;
    let mut last_change = Instant::now();
    let mut seen: BTreeMap<&'static str, f64> = BTreeMap::new();
    let mut typed = vm.type_on_ready.is_none();
    let mut answered = vec![false; vm.answers.len()];
    let mut failing: Option<(Instant, String)> = None;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        let text = read_log(&log);
        let now = child.elapsed().as_secs_f64();
        if text.len() != last_len {
            last_len = text.len();
            last_change = Instant::now();
        } else if last_change.elapsed() > KERNEL_SILENT && stalled_in_kernel(&text) {
            let _ = child.kill();
            return Ok(None);
        }
        note_markers(vm, &text, now, &mut seen);
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
        if failing.is_none()
            && let Some(why) = fatal(&text, &vm.fail_when)
        {
            failing = Some((Instant::now(), why));
        }
        if let Some((at, why)) = &failing
            && at.elapsed() > Duration::from_secs(20)
        {
            let _ = child.kill();
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
            bail!(
                "VM {}: the host's disk is full ({} MiB left under target/qemu), so the VM's writes fail; free space there and run again; serial log {}:\n{}",
                vm.name,
                free >> 20,
                log.display(),
                tail(&mkrescue_lines(&read_log(&log)), 30)
            );
        }
        if child.elapsed() > vm.timeout {
            let _ = child.kill();
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
    let total = child.elapsed().as_secs_f64();
    // The guest may print a marker and power off between two polls (a
    // quick recover: `recover finished`, then poweroff within 300 ms).
    note_markers(vm, &text, total, &mut seen);
    // The guest may print its failure and power off between two polls.
    if failing.is_none() {
        failing = fatal(&text, &vm.fail_when).map(|why| (Instant::now(), why));
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
    Ok(Some(VmRun {
        seen,
        total,
        log,
        text,
    }))
}

/// Records in `seen`, at `now`, the ready marker and the timed ones that
/// `text` shows for the first time.
fn note_markers(vm: &Vm, text: &str, now: f64, seen: &mut BTreeMap<&'static str, f64>) {
    for m in std::iter::once(vm.ready).chain(vm.timed.iter().copied()) {
        if !seen.contains_key(m) && text.contains(m) {
            eprintln!("[{}] {now:.0}s: {m}", vm.name);
            seen.insert(m, now);
        }
    }
}

/// Whether the serial log ends where GRUB hands over to the kernel.
fn stalled_in_kernel(text: &str) -> bool {
    text.trim_end().ends_with(GRUB_JUMPS)
}

pub(super) fn type_line(child: &mut vm::Vm, line: &str) -> Result<()> {
    child.type_text(&format!("{line}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A marker printed just before the guest powered off is still seen
    /// when the log is read after QEMU exited; one seen earlier keeps its
    /// time.
    #[test]
    fn markers_in_the_last_lines_are_seen() {
        let vm = Vm {
            name: "t".into(),
            kernel: None,
            cdrom: None,
            uefi_vars: None,
            tftp: None,
            mac: None,
            disks: vec![],
            ready: "READY",
            type_on_ready: None,
            answers: vec![],
            timed: vec!["recover finished", "recover failed"],
            fail_when: vec![],
            timeout: Duration::from_secs(1),
        };
        let mut seen = BTreeMap::new();
        note_markers(&vm, "boot\nREADY\n", 8.0, &mut seen);
        note_markers(
            &vm,
            "boot\nREADY\nmkrescue: recover finished\npower off\n",
            30.5,
            &mut seen,
        );
        assert_eq!(seen.get("READY"), Some(&8.0));
        assert_eq!(seen.get("recover finished"), Some(&30.5));
        assert!(!seen.contains_key("recover failed"));
    }

    /// The end of the stalled log of 2026-12-05 (read_log's text), and a
    /// kernel that went on.
    #[test]
    fn a_kernel_silent_after_grub_is_a_stall_and_one_that_printed_is_not() {
        let stalled = "  Booting `Debian GNU/Linux'\n\nLoading Linux 6.1.0-50-amd64 ...\nLoading initial ramdisk ...\n";
        assert!(stalled_in_kernel(stalled));
        assert!(!stalled_in_kernel(&format!(
            "{stalled}Loading, please wait...\n"
        )));
        assert!(!stalled_in_kernel(
            "Begin: Waiting for root file system ... "
        ));
    }

    fn vm(uefi: bool, pxe: bool) -> Vm {
        Vm {
            name: "t".into(),
            kernel: None,
            cdrom: (!pxe).then(|| PathBuf::from("r.iso")),
            uefi_vars: uefi.then(|| PathBuf::from("w/OVMF_VARS.fd")),
            tftp: pxe.then(|| (PathBuf::from("/t/rescue-pxe"), "pxelinux.0".to_string())),
            mac: None,
            disks: vec![Disk {
                serial: "NEW1",
                path: PathBuf::from("w/NEW1.raw"),
                boot: None,
                readonly: false,
                nvme: false,
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
        let a = spec(&vm(true, false), Path::new("l.log")).argv();
        let flash: Vec<&str> = after_flag(&a, "-drive")
            .into_iter()
            .filter(|d| d.starts_with("if=pflash"))
            .collect();
        assert_eq!(flash.len(), 2, "{a:?}");
        assert!(flash[0].contains("readonly=on") && flash[0].ends_with(vm::OVMF_CODE));
        assert!(!flash[1].contains("readonly") && flash[1].ends_with("w/OVMF_VARS.fd"));
        // BIOS: no flash at all (SeaBIOS is QEMU's default).
        let b = spec(&vm(false, false), Path::new("l.log")).argv();
        assert!(!b.iter().any(|x| x.contains("pflash")), "{b:?}");
    }

    #[test]
    fn the_only_network_is_restricted_and_boots_first() {
        let a = spec(&vm(false, true), Path::new("l.log")).argv();
        let nd = after_flag(&a, "-netdev");
        assert_eq!(
            nd,
            ["user,id=n0,restrict=on,tftp=/t/rescue-pxe,bootfile=pxelinux.0"]
        );
        assert!(after_flag(&a, "-device").contains(&"virtio-net-pci,netdev=n0,bootindex=0"));
        assert!(after_flag(&a, "-nic").is_empty());
        // Without TFTP: no NIC at all (QEMU's default one is unrestricted).
        let b = spec(&vm(false, false), Path::new("l.log")).argv();
        assert_eq!(after_flag(&b, "-nic"), ["none"]);
        assert!(after_flag(&b, "-netdev").is_empty());
        assert!(after_flag(&b, "-device").contains(&"ide-cd,drive=cd,bootindex=0"));
    }

    /// The server's NIC: its MAC, on a restricted user network, booting
    /// nothing; a PXE NIC keeps its MAC too.
    #[test]
    fn a_nic_with_a_mac_is_restricted_and_boots_nothing() {
        let mut v = vm(false, false);
        v.mac = Some("52:54:00:12:34:01".into());
        let a = spec(&v, Path::new("l.log")).argv();
        assert_eq!(after_flag(&a, "-netdev"), ["user,id=n0,restrict=on"]);
        assert!(
            after_flag(&a, "-device").contains(&"virtio-net-pci,netdev=n0,mac=52:54:00:12:34:01"),
            "{a:?}"
        );
        assert!(after_flag(&a, "-nic").is_empty());
        let mut p = vm(false, true);
        p.mac = Some("52:54:00:12:34:02".into());
        let a = spec(&p, Path::new("l.log")).argv();
        assert!(
            after_flag(&a, "-device")
                .contains(&"virtio-net-pci,netdev=n0,mac=52:54:00:12:34:02,bootindex=0"),
            "{a:?}"
        );
    }

    /// bios/uefi × iso/pxe: q35, the console on stdio, the firmware, the
    /// one boot device first in the order, the disks as they always were.
    #[test]
    fn every_variant_boots_its_device_first_under_its_firmware() {
        for uefi in [false, true] {
            for pxe in [false, true] {
                let a = spec(&vm(uefi, pxe), Path::new("l.log")).argv();
                let line = a.join(" ");
                assert!(
                    line.starts_with("-accel tcg -machine q35 -m 2048 -smp 2"),
                    "{line}"
                );
                assert!(
                    line.contains(
                        "-chardev stdio,id=s0,signal=off,logfile=l.log -serial chardev:s0"
                    )
                );
                assert_eq!(line.contains("pflash"), uefi, "{line}");
                let boot_first: Vec<&str> = after_flag(&a, "-device")
                    .into_iter()
                    .filter(|d| d.ends_with("bootindex=0"))
                    .collect();
                assert_eq!(
                    boot_first,
                    [if pxe {
                        "virtio-net-pci,netdev=n0,bootindex=0"
                    } else {
                        "ide-cd,drive=cd,bootindex=0"
                    }],
                    "{line}"
                );
                assert!(line.contains(
                    "-drive file=w/NEW1.raw,if=none,id=d0,format=raw,cache=unsafe,detect-zeroes=unmap,discard=unmap,werror=report,rerror=report -device virtio-blk-pci,drive=d0,serial=NEW1"
                ), "{line}");
            }
        }
    }
}
