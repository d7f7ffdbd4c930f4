//! `cargo xtask qemu boot` (and `rescue`): boot what mkrescue built of
//! this host and wait for the rescue system's ready marker on the serial
//! console, then for its power-off.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::util;
use mkrescue::vm::{Kernel, Serial, Vm, VmSpec};

/// Builds mkrescue (release), an initramfs of this machine into `out`, and
/// boots it.
pub fn build_and_boot(out: &Path) -> Result<()> {
    let bin = util::build_release()?;
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

/// The VM of [`boot_kernel`]: DIR/vmlinuz + DIR/initrd.img with
/// `mkrescue.after=poweroff`, no NIC (the rescue system would DHCP on
/// QEMU's default one).
pub fn spec(dir: &Path, log: &Path) -> VmSpec {
    VmSpec {
        kernel: Some(Kernel::from_dir(
            dir,
            "console=ttyS0 panic=-1 loglevel=4 mkrescue.after=poweroff",
        )),
        ..VmSpec::new(Serial::File(log.to_path_buf()))
    }
}

/// Boots DIR/vmlinuz + DIR/initrd.img, waits for the marker and for QEMU
/// to exit. Returns the wall time to the marker.
pub fn boot_kernel(dir: &Path, log: &Path, timeout: Duration) -> Result<f64> {
    Vm::start(&spec(dir, log))?.wait_marker_then_exit(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command line this boot always had.
    #[test]
    fn boot_argv_is_the_one_it_always_was() {
        let a = spec(Path::new("out"), Path::new("target/qemu/b.log")).argv();
        let want = "-accel tcg -m 2048 -smp 2 -display none -monitor none -no-reboot \
                    -serial file:target/qemu/b.log -nic none -kernel out/vmlinuz \
                    -initrd out/initrd.img -append";
        assert_eq!(a[..a.len() - 1].join(" "), want);
        assert_eq!(
            a.last().unwrap(),
            "console=ttyS0 panic=-1 loglevel=4 mkrescue.after=poweroff"
        );
    }
}
