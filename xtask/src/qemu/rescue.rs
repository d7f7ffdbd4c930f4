//! The rescue image under test in `qemu runtime` and its `shares` case:
//! built from this host with a test config, booted from its kernel and
//! initrd with the test disk (serial MKRT0001) and virtio NICs on
//! restricted user networks, reached over SSH through a `hostfwd`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::util;
use mkrescue::vm::{Cdrom, Disk, Kernel, Network, Nic, Serial, UserNet, VmSpec};

/// The test disk's serial: the guest sees /dev/disk/by-id/virtio-MKRT0001.
pub const SERIAL: &str = "MKRT0001";

/// Builds an initramfs of this host with `toml` as its config into
/// DIR/NAME (the config is written to DIR/NAME.toml).
pub fn build(bin: &Path, dir: &Path, name: &str, toml: &str) -> Result<PathBuf> {
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(&cfg, toml).with_context(|| format!("writing {}", cfg.display()))?;
    let out = dir.join(name);
    util::run(
        bin.to_str().context("non-UTF-8 path")?,
        &[
            "--config",
            cfg.to_str().context("non-UTF-8 path")?,
            "--output",
            "initramfs",
            "--out",
            out.to_str().context("non-UTF-8 path")?,
        ],
    )?;
    Ok(out)
}

/// QEMU's default user network with the guest's sshd forwarded to
/// 127.0.0.1:`port`.
pub fn ssh_net(port: u16) -> UserNet {
    UserNet {
        hostfwd: vec![format!("tcp:127.0.0.1:{port}-:22")],
        ..UserNet::default()
    }
}

/// The captured host's LAN, 192.0.2.0/24 with QEMU as its gateway
/// 192.0.2.1, and the guest's sshd at `guest` forwarded to
/// 127.0.0.1:`port`.
pub fn lan_net(port: u16, guest: &str) -> UserNet {
    UserNet {
        net: Some("192.0.2.0/24".into()),
        host: Some("192.0.2.1".into()),
        hostfwd: vec![format!("tcp:127.0.0.1:{port}-{guest}:22")],
        ..UserNet::default()
    }
}

/// A virtio NIC with MAC `mac` on `net`.
pub fn nic(mac: &str, net: UserNet) -> Nic {
    Nic {
        net,
        mac: Some(mac.to_string()),
        bootindex: None,
    }
}

/// The rescue VM of the runtime and shares scenarios: the image in `out` (`append` after the console
/// options), `disk` as the test disk, `nics`, and optionally a CD-ROM.
pub fn spec(
    out: &Path,
    log: &Path,
    disk: &Path,
    nics: Vec<Nic>,
    append: &str,
    cdrom: Option<&Path>,
) -> VmSpec {
    VmSpec {
        kernel: Some(Kernel::from_dir(
            out,
            format!("console=ttyS0 panic=-1 loglevel=4 {append}"),
        )),
        disks: vec![Disk {
            cache_unsafe: true,
            ..Disk::raw(disk, SERIAL)
        }],
        cdrom: cdrom.map(|iso| Cdrom {
            iso: iso.to_path_buf(),
            bootindex: None,
        }),
        network: Network::Nics(nics),
        ..VmSpec::new(Serial::File(log.to_path_buf()))
    }
}
