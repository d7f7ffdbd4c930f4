//! QEMU boot tests: boot what mkrescue built and wait for the rescue
//! system's ready marker on the serial console.
//!
//! Always `-accel tcg` (the /dev/kvm here hangs guest kernels), no network
//! but QEMU's restricted user mode, serial console to a log file under
//! target/qemu so a failure leaves the log behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::util;

/// What the rescue init prints when it is up (src/init).
const MARKER: &str = mkrescue::init::READY_MARKER;

/// Builds mkrescue (release), an initramfs of this machine into `out`, and
/// boots it.
pub fn build_and_boot(out: &Path) -> Result<()> {
    let bin = build_release()?;
    util::step("mkrescue --output initramfs", || {
        util::run(
            bin.to_str().context("non-UTF-8 target path")?,
            &[
                "--output",
                "initramfs",
                "--out",
                out.to_str().context("non-UTF-8 out path")?,
            ],
        )
    })?;
    let log = PathBuf::from("target/qemu/boot-initramfs.log");
    util::step("boot the initramfs in QEMU", || {
        let secs = boot_kernel(out, &log, Duration::from_secs(300))?;
        eprintln!(
            "rescue system ready after {secs:.1}s wall (serial log: {})",
            log.display()
        );
        Ok(())
    })
}

pub fn build_release() -> Result<PathBuf> {
    util::step("cargo build --release", || {
        util::run("cargo", &["build", "--release", "--package", "mkrescue"])
    })?;
    Ok(PathBuf::from("target/release/mkrescue"))
}

/// Boots DIR/vmlinuz + DIR/initrd.img with `mkrescue.after=poweroff`, waits
/// for the marker and for QEMU to exit. Returns the wall time to the marker.
pub fn boot_kernel(dir: &Path, log: &Path, timeout: Duration) -> Result<f64> {
    if let Some(p) = log.parent() {
        std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
    }
    let _ = std::fs::remove_file(log);
    let serial = format!("file:{}", log.display());
    let kernel = dir.join("vmlinuz");
    let initrd = dir.join("initrd.img");
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg", "-m", "2048", "-smp", "2"])
        .args(["-display", "none", "-monitor", "none", "-no-reboot"])
        // No NIC: QEMU's default one is unrestricted user networking, and
        // the rescue system would DHCP on it.
        .args(["-nic", "none"])
        .args(["-serial", &serial])
        .arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(&initrd)
        .args([
            "-append",
            "console=ttyS0 panic=-1 loglevel=4 mkrescue.after=poweroff",
        ])
        .stdin(Stdio::null());
    eprintln!("$ {cmd:?}");
    let child = cmd
        .spawn()
        .context("cannot start qemu-system-x86_64 (apt-get install qemu-system-x86)")?;
    wait_for_marker(child, log, timeout)
}

pub fn wait_for_marker(mut child: Child, log: &Path, timeout: Duration) -> Result<f64> {
    let start = Instant::now();
    let mut seen: Option<f64> = None;
    loop {
        let text = std::fs::read(log).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        if seen.is_none() && text.contains(MARKER) {
            seen = Some(start.elapsed().as_secs_f64());
        }
        if let Some(status) = child.try_wait().context("waiting for qemu")? {
            return match seen {
                Some(t) => Ok(t),
                None => bail!(
                    "QEMU exited ({status}) without printing `{MARKER}`; serial log {}:\n{}",
                    log.display(),
                    tail(&text, 40)
                ),
            };
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "no `{MARKER}`{} within {}s; serial log {}:\n{}",
                if seen.is_some() {
                    " then no power-off"
                } else {
                    ""
                },
                timeout.as_secs(),
                log.display(),
                tail(&text, 40)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
