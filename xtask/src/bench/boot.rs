//! Boot to ready under TCG: mkrescue's initramfs and ReaR's rescue initrd
//! (extracted from its ISO) booted the same way through the VM runner,
//! each until the line its system prints when its setup is done.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use super::measure::size_of;
use crate::util;
use mkrescue::vm::{Kernel, Serial, Vm, VmSpec};

/// One system booted to ready.
pub struct Boot {
    name: &'static str,
    /// Wall seconds from QEMU's start to the ready line.
    ready: f64,
    /// The guest's own uptime at ready, when it prints it.
    uptime: Option<f64>,
    /// What "ready" means for this system.
    ready_def: String,
    append: String,
    initrd_mib: f64,
    note: String,
}

/// What ReaR's /etc/scripts/system-setup prints after its last setup script.
const REAR_READY: &str = "Relax-and-Recover rescue system is ready";

/// Boots mkrescue's image in `mk_dir` and ReaR's (extracted from `iso`).
pub fn boot_all(mk_dir: &Path, iso: Option<&Path>, abs: &Path) -> Result<Vec<Boot>> {
    let mut v = Vec::new();
    // The rescue entry of mkrescue's boot menus with the serial console
    // (src/output/bootcfg.rs), as ReaR's entry below has its own.
    let append = mkrescue::output::bootcfg::SERIAL_CONSOLES.to_string();
    let kernel = mk_dir.join("vmlinuz");
    let initrd = mk_dir.join("initrd.img");
    let log = abs.join("boot-mkrescue.log");
    let w = watch(
        boot(&kernel, &initrd, &append, &log)?,
        &log,
        |l| l.contains(mkrescue::init::READY_MARKER),
        None,
    )?;
    v.push(Boot {
        name: "mkrescue",
        ready: w.ready,
        uptime: w.line.rsplit('(').next().and_then(|s| {
            s.trim_end_matches(|c: char| c == ')' || c == 's' || c.is_whitespace())
                .parse()
                .ok()
        }),
        ready_def: format!("`{}` on ttyS0", mkrescue::init::READY_MARKER),
        append,
        initrd_mib: mib(&initrd),
        note: "initramfs of this host (`--output initramfs`), no NIC".into(),
    });

    let Some(iso) = iso else {
        eprintln!(
            "==> no ReaR ISO (run `cargo xtask bench` with ReaR once, or pass --rear-iso): ReaR's boot is not measured"
        );
        return Ok(v);
    };
    let rd = abs.join("rear-boot");
    std::fs::create_dir_all(&rd)?;
    let iso_s = iso.to_str().context("non-UTF-8 ISO path")?;
    let rdk = rd.join("kernel");
    let rdi = rd.join("initrd.cgz");
    let rdc = rd.join("isolinux.cfg");
    for p in [&rdk, &rdi, &rdc] {
        let _ = std::fs::remove_file(p);
    }
    // -osirrox on allows copying out of the ISO (xorriso(1), -extract).
    util::run(
        "xorriso",
        &[
            "-osirrox",
            "on",
            "-indev",
            iso_s,
            "-extract",
            "/isolinux/kernel",
            rdk.to_str().context("non-UTF-8 path")?,
            "-extract",
            "/isolinux/initrd.cgz",
            rdi.to_str().context("non-UTF-8 path")?,
            "-extract",
            "/isolinux/isolinux.cfg",
            rdc.to_str().context("non-UTF-8 path")?,
        ],
    )?;
    let cfg =
        std::fs::read_to_string(&rdc).with_context(|| format!("reading {}", rdc.display()))?;
    let append = rear_append(&cfg).with_context(|| {
        format!(
            "{}: no `label rear` entry with an `append` line",
            rdc.display()
        )
    })?;
    let log = abs.join("boot-rear.log");
    let w = watch(
        boot(&rdk, &rdi, &append, &log)?,
        &log,
        |l| l.contains(REAR_READY),
        // Then wait for a serial login prompt, or systemd giving up on it
        // (ReaR's serial-getty@ttyS0 waits for udev's dev-ttyS0.device).
        Some((
            &|l: &str| l.trim_end().ends_with("login:"),
            &|l: &str| l.contains("Dependency failed") && l.contains("Serial Getty"),
            Duration::from_secs(180),
        )),
    )?;
    let login = match w.after {
        Some((true, t)) => format!("serial login prompt at {t:.1}s"),
        Some((false, t)) => format!(
            "no serial login prompt: at {t:.1}s systemd gave up on dev-ttyS0.device (\"Dependency failed for Serial Getty on ttyS0\" in the serial log)"
        ),
        None => "no serial login prompt within 180s after ready".into(),
    };
    v.push(Boot {
        name: "ReaR",
        ready: w.ready,
        uptime: None,
        ready_def: format!("`{REAR_READY}` on ttyS0 (end of its system-setup)"),
        append,
        initrd_mib: mib(&rdi),
        note: format!("ReaR 2.7 ISO's `isolinux/kernel` + `isolinux/initrd.cgz`; {login}"),
    });
    Ok(v)
}

fn mib(p: &Path) -> f64 {
    size_of(p).unwrap_or(0) as f64 / 1048576.0
}

/// The kernel command line of the `rear` entry of ReaR's isolinux.cfg,
/// without `initrd=` (QEMU's -initrd passes it).
fn rear_append(cfg: &str) -> Option<String> {
    let mut in_rear = false;
    for l in cfg.lines() {
        let t = l.trim();
        let lower = t.to_ascii_lowercase();
        if let Some(label) = lower.strip_prefix("label ") {
            in_rear = label.trim() == "rear";
        } else if in_rear && lower.starts_with("append ") {
            let words: Vec<&str> = t["append ".len()..]
                .split_whitespace()
                .filter(|w| !w.starts_with("initrd="))
                .collect();
            return Some(words.join(" "));
        }
    }
    None
}

/// The same QEMU for every system: TCG, 2 GiB, 2 CPUs, no NIC, serial
/// console into `log`, direct kernel boot.
fn spec(kernel: &Path, initrd: &Path, append: &str, log: &Path) -> VmSpec {
    VmSpec {
        kernel: Some(Kernel {
            kernel: kernel.to_path_buf(),
            initrd: initrd.to_path_buf(),
            append: append.to_string(),
        }),
        ..VmSpec::new(Serial::File(log.to_path_buf()))
    }
}

fn boot(kernel: &Path, initrd: &Path, append: &str, log: &Path) -> Result<Vm> {
    Vm::start(&spec(kernel, initrd, append, log))
}

struct Watched {
    /// Wall seconds to the ready line.
    ready: f64,
    line: String,
    /// Which of the follow-up patterns came first (true: the first) and
    /// when.
    after: Option<(bool, f64)>,
}

type Follow<'a> = (&'a dyn Fn(&str) -> bool, &'a dyn Fn(&str) -> bool, Duration);

/// Polls the serial log until a line satisfies `ready`; then, with
/// `follow`, until one of its two patterns shows or its time is up. Kills
/// QEMU at the end.
fn watch(
    mut vm: Vm,
    log: &Path,
    ready: impl Fn(&str) -> bool,
    follow: Option<Follow>,
) -> Result<Watched> {
    let timeout = Duration::from_secs(600);
    let mut got: Option<(f64, String)> = None;
    let result = loop {
        let text = plain(&std::fs::read(log).unwrap_or_default());
        let now = vm.elapsed();
        if got.is_none()
            && let Some(l) = text.lines().find(|l| ready(l))
        {
            got = Some((now.as_secs_f64(), l.to_string()));
            eprintln!("==> ready after {:.1}s: {l}", now.as_secs_f64());
        }
        if let Some((t, line)) = &got {
            let done = match follow {
                None => Some(None),
                Some((yes, no, limit)) => {
                    if text.lines().any(yes) {
                        Some(Some((true, now.as_secs_f64())))
                    } else if text.lines().any(no) {
                        Some(Some((false, now.as_secs_f64())))
                    } else if now.as_secs_f64() - t > limit.as_secs_f64() {
                        Some(None)
                    } else {
                        None
                    }
                }
            };
            if let Some(after) = done {
                break Ok(Watched {
                    ready: *t,
                    line: line.clone(),
                    after,
                });
            }
        }
        if let Some(st) = vm.try_wait()? {
            break Err(anyhow::anyhow!(
                "QEMU exited ({st}) before the system was ready; serial log {}",
                log.display()
            ));
        }
        if now > timeout {
            break Err(anyhow::anyhow!(
                "not ready within {}s; serial log {}",
                timeout.as_secs(),
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = vm.kill();
    result
}

/// The serial log as text: escape sequences (CSI, ECMA-48 8.3.16) and
/// carriage returns removed, as systemd and boot loaders colour and redraw.
fn plain(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            if it.peek() == Some(&'[') {
                it.next();
                // Parameters and intermediates up to the final byte 0x40-0x7e.
                for d in it.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&d) {
                        break;
                    }
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

pub fn render_boot(boots: &[Boot], kver: &str, load: &str) -> String {
    let mut s = format!(
        "Kernel {kver}, QEMU `-accel tcg -m 2048 -smp 2 -nic none`, serial console to a file, direct kernel boot (`-kernel`/`-initrd`), one boot each; load average (1 min) at the start: {load}. Wall seconds from QEMU's start to the system's own ready line.\n\n| system | ready (s, wall) | × mkrescue | guest uptime at ready (s) | initrd (MiB) | ready means | notes |\n|---|---:|---:|---:|---:|---|---|\n"
    );
    let base = boots.first().map(|b| b.ready).unwrap_or(1.0);
    for b in boots {
        s.push_str(&format!(
            "| {} | {:.1} | {:.1} | {} | {:.1} | {} | {} |\n",
            b.name,
            b.ready,
            b.ready / base,
            b.uptime
                .map(|u| format!("{u:.1}"))
                .unwrap_or_else(|| "-".into()),
            b.initrd_mib,
            b.ready_def,
            b.note
        ));
    }
    s.push_str("\nKernel command lines (each from its own boot menu's rescue entry with the serial console):\n\n");
    for b in boots {
        s.push_str(&format!("- {}: `{}`\n", b.name, b.append));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rear_entry_command_line() {
        let cfg = "label rear\nMENU label ^Recover vm\nkernel kernel\nappend initrd=initrd.cgz root=/dev/ram0 vga=normal rw  selinux=0  console=ttyS0,9600 \n\nlabel rear-automatic\nappend initrd=initrd.cgz root=/dev/ram0 auto_recover\n";
        assert_eq!(
            rear_append(cfg).as_deref(),
            Some("root=/dev/ram0 vga=normal rw selinux=0 console=ttyS0,9600")
        );
        assert_eq!(rear_append("label local\nlocalboot 0\n"), None);
    }

    #[test]
    fn escape_codes_are_stripped() {
        let raw =
            b"\x1b[0;1;38;5;185mDEPEND\x1b[0m] Dependency failed for \x1b[0;1;39mSerial Getty\r\n";
        assert_eq!(plain(raw), "DEPEND] Dependency failed for Serial Getty\n");
    }

    /// The same QEMU for every system, as it always was: TCG, 2 GiB, 2
    /// CPUs, no NIC, serial console to the log, direct kernel boot.
    #[test]
    fn every_system_boots_with_the_same_qemu_options() {
        let a = spec(
            Path::new("k"),
            Path::new("i"),
            "console=ttyS0",
            Path::new("l"),
        )
        .argv();
        assert_eq!(
            a.join(" "),
            "-accel tcg -m 2048 -smp 2 -display none -monitor none -no-reboot -serial file:l \
             -nic none -kernel k -initrd i -append console=ttyS0"
        );
    }
}
