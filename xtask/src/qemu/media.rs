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
use std::time::Duration;

use anyhow::{Context, Result};

use crate::util::{self, build_release};
use mkrescue::vm::{
    Cdrom, Disk, Firmware, Network, Nic, OVMF_VARS, OVMF_VARS_MS, Serial, UserNet, Vm, VmSpec,
    copy_vars,
};

/// Per boot. A TCG boot takes 20-40 s on an idle 2-core machine (measured:
/// UEFI CD 39 s to the marker, PXE BIOS 33 s) and over 100 s when other
/// builds share the cores.
const TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fw {
    SeaBios,
    Ovmf,
    OvmfSecureBoot,
}

/// What a boot attaches: the medium and, for PXE, the NIC.
enum Medium {
    Cdrom(PathBuf),
    Disk(Disk),
    Pxe(Nic),
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
        let cdrom = || Medium::Cdrom(iso.clone());
        if want("iso-cdrom-bios") {
            times.push(boot(&base, "iso-cdrom-bios", Fw::SeaBios, cdrom())?);
        }
        if want("iso-cdrom-uefi") {
            times.push(boot(&base, "iso-cdrom-uefi", Fw::Ovmf, cdrom())?);
        }
        if want("iso-disk-bios") {
            let disk = disk(&iso, "RESCUEISO");
            times.push(boot(&base, "iso-disk-bios", Fw::SeaBios, disk)?);
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
        times.push(boot(
            &base,
            "iso-cdrom-uefi-secureboot",
            Fw::OvmfSecureBoot,
            Medium::Cdrom(iso),
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
    if want("usb-bios") {
        let usb_disk = disk(&usb, "RESCUEUSB");
        times.push(boot(&base, "usb-bios", Fw::SeaBios, usb_disk)?);
    }
    if want("usb-uefi") {
        let usb_disk = disk(&usb, "RESCUEUSB");
        times.push(boot(&base, "usb-uefi", Fw::Ovmf, usb_disk)?);
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
            Fw::SeaBios,
            pxe(&tftp, "pxelinux.0", &mac)?,
        )?);
    }
    if want("pxe-uefi") {
        times.push(boot(
            &base,
            "pxe-uefi",
            Fw::Ovmf,
            pxe(&tftp, "grubx64.efi", &mac)?,
        )?);
    }
    // QEMU's NIC ROM is iPXE: given the host's script as boot file it runs
    // it, which checks the script's relative paths to the shared layers.
    if want("pxe-ipxe-bios") {
        let script = single_host_script(&tftp)?;
        times.push(boot(
            &base,
            "pxe-ipxe-bios",
            Fw::SeaBios,
            pxe(&tftp, &script, &mac)?,
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
fn disk(image: &Path, serial: &str) -> Medium {
    Medium::Disk(Disk {
        bootindex: Some(1),
        // snapshot: the boot loader may write (syslinux's ADV), the file
        // stays as built.
        snapshot: true,
        ..Disk::raw(image, serial)
    })
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
fn pxe(tftp: &Path, bootfile: &str, mac: &str) -> Result<Medium> {
    let abs = std::path::absolute(tftp).context("resolving the TFTP root")?;
    Ok(Medium::Pxe(Nic {
        net: UserNet {
            tftp: Some(abs),
            bootfile: Some(bootfile.to_string()),
            ..UserNet::default()
        },
        mac: Some(mac.to_string()),
        bootindex: Some(1),
    }))
}

/// The VM of one boot: q35, the firmware (OVMF with its own copy of the
/// variable store, BASE/NAME-OVMF_VARS.fd), the medium; serial console to
/// BASE/NAME.log. A CD or disk boot keeps QEMU's default NIC, as it always
/// had.
fn spec(base: &Path, name: &str, fw: Fw, medium: Medium) -> VmSpec {
    let vars = base.join(format!("{name}-OVMF_VARS.fd"));
    let mut spec = VmSpec {
        q35: true,
        firmware: match fw {
            Fw::SeaBios => Firmware::SeaBios,
            Fw::Ovmf => Firmware::Ovmf { vars },
            Fw::OvmfSecureBoot => Firmware::OvmfSecureBoot { vars },
        },
        network: Network::DefaultNic,
        ..VmSpec::new(Serial::File(base.join(format!("{name}.log"))))
    };
    match medium {
        Medium::Cdrom(iso) => {
            spec.cdrom = Some(Cdrom {
                iso,
                bootindex: None,
            })
        }
        Medium::Disk(d) => spec.disks.push(d),
        Medium::Pxe(nic) => spec.network = Network::Nics(vec![nic]),
    }
    spec
}

/// Boots `medium` until the marker and power-off.
fn boot(base: &Path, name: &str, fw: Fw, medium: Medium) -> Result<(String, f64)> {
    let secs = util::step(&format!("boot {name}"), || {
        let spec = spec(base, name, fw, medium);
        // The variable store is written by the firmware: a copy per boot.
        match &spec.firmware {
            Firmware::Ovmf { vars } => copy_vars(OVMF_VARS, vars)?,
            Firmware::OvmfSecureBoot { vars } => copy_vars(OVMF_VARS_MS, vars)?,
            Firmware::SeaBios => {}
        }
        Vm::start(&spec)?.wait_marker_then_exit(TIMEOUT)
    })?;
    Ok((name.to_string(), secs))
}
