//! `cargo xtask qemu media`: build each boot medium with the test-only
//! `--test-boot-rescue` (rescue shell on ttyS0 is the default entry after
//! 1 s, `mkrescue.after=poweroff` on its command line) and boot it in QEMU
//! until the rescue system's ready marker, under SeaBIOS and under OVMF.
//!
//! This exercises what an admin relies on: firmware → boot loader → menu →
//! kernel + initrd from the medium → rescue system, for each medium.
//!
//! `iso-cdrom-uefi-secureboot`: an ISO built with `output.secure_boot =
//! "on"` (Debian's signed shim + GRUB) boots under OVMF with Secure Boot
//! enforced (OVMF_CODE_4M.secboot.fd with the Microsoft keys of
//! OVMF_VARS_4M.ms.fd, SMM on as that build requires), and the kernel
//! reports Secure Boot enabled.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::qemu::{build_release, wait_for_marker};
use crate::util;

const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// OVMF with Secure Boot support (needs SMM and a secure flash), and a
/// variable store with Microsoft's keys enrolled and Secure Boot on
/// (Debian's ovmf README.Debian).
const OVMF_CODE_SB: &str = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
const OVMF_VARS_MS: &str = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";
/// Per boot. A TCG boot takes 20-40 s on an idle 2-core machine (measured:
/// UEFI CD 39 s to the marker, PXE BIOS 33 s) and over 100 s when other
/// builds share the cores.
const TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Firmware {
    SeaBios,
    Ovmf,
    OvmfSecureBoot,
}

/// Every boot, by name (for `--only`).
pub const BOOTS: &[&str] = &[
    "iso-cdrom-bios",
    "iso-cdrom-uefi",
    "iso-disk-bios",
    "iso-cdrom-uefi-secureboot",
    "usb-bios",
    "usb-uefi",
    "pxe-bios",
    "pxe-uefi",
    "pxe-ipxe-bios",
];

/// Runs every media boot (or only the one named `only`, see [`BOOTS`]);
/// fails on the first that does not reach the marker.
pub fn run(only: Option<&str>) -> Result<()> {
    if let Some(o) = only {
        anyhow::ensure!(
            BOOTS.contains(&o),
            "no media boot named {o} ({})",
            BOOTS.join(", ")
        );
    }
    let want = |n: &str| only.is_none_or(|o| o == n);
    let bin = build_release()?;
    let base = PathBuf::from("target/qemu/media");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let mut times = Vec::new();

    if ["iso-cdrom-bios", "iso-cdrom-uefi", "iso-disk-bios"]
        .iter()
        .any(|n| want(n))
    {
        let iso_dir = base.join("iso");
        build(&bin, &["--output", "iso", "--out", s(&iso_dir)?])?;
        let iso = iso_dir.join("mkrescue.iso");
        let cdrom = vec!["-cdrom".to_string(), s(&iso)?.to_string()];
        if want("iso-cdrom-bios") {
            times.push(boot(&base, "iso-cdrom-bios", Firmware::SeaBios, &cdrom)?);
        }
        if want("iso-cdrom-uefi") {
            times.push(boot(&base, "iso-cdrom-uefi", Firmware::Ovmf, &cdrom)?);
        }
        if want("iso-disk-bios") {
            let disk = disk_args(&iso, "RESCUEISO");
            times.push(boot(&base, "iso-disk-bios", Firmware::SeaBios, &disk)?);
        }
        util::step("verify the ISO output's SHA256SUMS", || {
            util::run(s(&bin)?, &["verify", s(&iso_dir)?])
        })?;
    }

    if want("iso-cdrom-uefi-secureboot") {
        let sb_dir = base.join("iso-sb");
        std::fs::create_dir_all(&sb_dir)?;
        let cfg = base.join("secureboot.toml");
        std::fs::write(&cfg, "[output]\nsecure_boot = \"on\"\n")
            .with_context(|| format!("writing {}", cfg.display()))?;
        build(
            &bin,
            &[
                "--config",
                s(&cfg)?,
                "--output",
                "iso",
                "--out",
                s(&sb_dir)?,
            ],
        )?;
        let iso = sb_dir.join("mkrescue.iso");
        let cdrom = vec!["-cdrom".to_string(), s(&iso)?.to_string()];
        times.push(boot(
            &base,
            "iso-cdrom-uefi-secureboot",
            Firmware::OvmfSecureBoot,
            &cdrom,
        )?);
        // The kernel's own word that the firmware enforced Secure Boot
        // (arch/x86/kernel/setup.c prints it from the boot params).
        let log = std::fs::read(base.join("iso-cdrom-uefi-secureboot.log"))?;
        anyhow::ensure!(
            String::from_utf8_lossy(&log).contains("Secure boot enabled"),
            "the Secure Boot ISO booted, but the kernel does not say \"Secure boot enabled\""
        );
    }
    if ![
        "usb-bios",
        "usb-uefi",
        "pxe-bios",
        "pxe-uefi",
        "pxe-ipxe-bios",
    ]
    .iter()
    .any(|n| want(n))
    {
        for (name, secs) in &times {
            eprintln!("{name}: rescue system ready after {secs:.1}s wall");
        }
        return Ok(());
    }

    let usb_dir = base.join("usb");
    let usb = usb_dir.join("usb.img");
    build(
        &bin,
        &[
            "--output",
            "usb",
            "--image",
            s(&usb)?,
            "--size",
            "1G",
            "--out",
            s(&usb_dir)?,
        ],
    )?;
    let usb_disk = disk_args(&usb, "RESCUEUSB");
    if want("usb-bios") {
        times.push(boot(&base, "usb-bios", Firmware::SeaBios, &usb_disk)?);
    }
    if want("usb-uefi") {
        times.push(boot(&base, "usb-uefi", Firmware::Ovmf, &usb_disk)?);
    }

    let pxe_out = base.join("pxe-out");
    let tftp = base.join("tftp");
    build(
        &bin,
        &[
            "--output",
            "pxe",
            "--pxe-root",
            s(&tftp)?,
            "--out",
            s(&pxe_out)?,
        ],
    )?;
    let mac = first_mac(&tftp.join("pxelinux.cfg"))?;
    if want("pxe-bios") {
        times.push(boot(
            &base,
            "pxe-bios",
            Firmware::SeaBios,
            &pxe_args(&tftp, "pxelinux.0", &mac)?,
        )?);
    }
    if want("pxe-uefi") {
        times.push(boot(
            &base,
            "pxe-uefi",
            Firmware::Ovmf,
            &pxe_args(&tftp, "grubx64.efi", &mac)?,
        )?);
    }
    // QEMU's NIC ROM is iPXE: given the host's script as boot file it runs
    // it, which checks the script's relative paths to the shared layers.
    if want("pxe-ipxe-bios") {
        let script = single_host_script(&tftp)?;
        times.push(boot(
            &base,
            "pxe-ipxe-bios",
            Firmware::SeaBios,
            &pxe_args(&tftp, &script, &mac)?,
        )?);
    }
    for (name, secs) in &times {
        eprintln!("{name}: rescue system ready after {secs:.1}s wall");
    }
    Ok(())
}

fn s(p: &Path) -> Result<&str> {
    p.to_str().context("non-UTF-8 path under target/")
}

fn build(bin: &Path, args: &[&str]) -> Result<()> {
    let mut all = args.to_vec();
    all.push("--test-boot-rescue");
    util::step(&format!("mkrescue {}", args.join(" ")), || {
        util::run(s(bin)?, &all)
    })
}

/// A raw image as a virtio disk (serial on the device, QEMU.md), first in
/// the boot order.
fn disk_args(image: &Path, serial: &str) -> Vec<String> {
    vec![
        "-drive".into(),
        format!(
            // snapshot: the boot loader may write (syslinux's ADV), the
            // file stays as built.
            "file={},format=raw,if=none,id=d0,snapshot=on",
            image.display()
        ),
        "-device".into(),
        format!("virtio-blk-pci,drive=d0,serial={serial},bootindex=1"),
    ]
}

/// The MAC of the first `pxelinux.cfg/01-aa-bb-...` file: the guest NIC
/// gets it, so the per-host config (not a default) is what boots.
fn first_mac(dir: &Path) -> Result<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("01-"))
        .collect();
    names.sort();
    let n = names
        .first()
        .with_context(|| format!("no 01-<mac> file in {}", dir.display()))?;
    Ok(n[3..].replace('-', ":"))
}

/// `mkrescue/hosts/<host>/boot.ipxe` of the one host in the tree.
fn single_host_script(tftp: &Path) -> Result<String> {
    let hosts = tftp.join("mkrescue/hosts");
    let host = std::fs::read_dir(&hosts)
        .with_context(|| format!("reading {}", hosts.display()))?
        .flatten()
        .next()
        .with_context(|| format!("no host in {}", hosts.display()))?;
    Ok(format!(
        "mkrescue/hosts/{}/boot.ipxe",
        host.file_name().to_string_lossy()
    ))
}

/// QEMU's own DHCP + TFTP (user networking, restricted: no way out) serve
/// `tftp`; the NIC boots first.
fn pxe_args(tftp: &Path, bootfile: &str, mac: &str) -> Result<Vec<String>> {
    let abs = std::path::absolute(tftp).context("resolving the TFTP root")?;
    Ok(vec![
        "-netdev".into(),
        format!(
            "user,id=n0,restrict=on,tftp={},bootfile={bootfile}",
            abs.display()
        ),
        "-device".into(),
        format!("virtio-net-pci,netdev=n0,mac={mac},bootindex=1"),
    ])
}

/// Boots QEMU with `extra` arguments until the marker and power-off.
fn boot(base: &Path, name: &str, fw: Firmware, extra: &[String]) -> Result<(String, f64)> {
    let log = base.join(format!("{name}.log"));
    let secs = util::step(&format!("boot {name}"), || {
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args([
            "-accel", "tcg", "-machine", "q35", "-m", "2048", "-smp", "2",
        ])
        .args(["-display", "none", "-monitor", "none", "-no-reboot"])
        .arg("-serial")
        .arg(format!("file:{}", log.display()));
        if fw != Firmware::SeaBios {
            let (code, vars_src) = if fw == Firmware::OvmfSecureBoot {
                // The Secure Boot build keeps its variables in SMM-only
                // flash: SMM on, flash marked secure (Debian ovmf
                // README.Debian).
                cmd.args(["-machine", "q35,smm=on"])
                    .args(["-global", "driver=cfi.pflash01,property=secure,value=on"]);
                (OVMF_CODE_SB, OVMF_VARS_MS)
            } else {
                (OVMF_CODE, OVMF_VARS)
            };
            // The variable store is written by the firmware: a copy per boot.
            let vars = base.join(format!("{name}-OVMF_VARS.fd"));
            std::fs::copy(vars_src, &vars)
                .with_context(|| format!("copying {vars_src} (apt-get install ovmf)"))?;
            cmd.arg("-drive")
                .arg(format!("if=pflash,format=raw,readonly=on,file={code}"))
                .arg("-drive")
                .arg(format!("if=pflash,format=raw,file={}", vars.display()));
        }
        cmd.args(extra).stdin(Stdio::null());
        eprintln!("$ {cmd:?}");
        let child = cmd
            .spawn()
            .context("cannot start qemu-system-x86_64 (apt-get install qemu-system-x86)")?;
        wait_for_marker(child, &log, TIMEOUT)
    })?;
    Ok((name.to_string(), secs))
}
