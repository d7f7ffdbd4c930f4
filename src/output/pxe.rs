//! `--output pxe --pxe-root DIR`: the tree a DHCP + TFTP/HTTP server serves
//! so this host (and, with `--pxe-default`, any machine) network-boots the
//! rescue system.
//!
//! The initrd is split in two concatenated cpio archives (the kernel unpacks
//! them one after the other, Documentation/driver-api/early-userspace/
//! buffer-format.rst): a *base* with everything that is the same on hosts
//! of one OS release, kernel and package set, stored once under its sha256,
//! and a small *host* layer (identity and configuration files, host facts,
//! network and SSH configuration, layout, this host's own tools). Which
//! entry goes where is marked in the Manifest by the rescue plan (the rule
//! is in `rescue/mod.rs`); this writer only splits by the mark. A recovery
//! server for a fleet keeps one base per OS/kernel; `mkrescue pxe prune`
//! removes the bases no host menu refers to any more.
//!
//! Tree (relative to DIR):
//! ```text
//! pxelinux.0 ldlinux.c32 menu.c32 ...     BIOS PXE (pxelinux)
//! pxelinux.cfg/01-<mac>                    per NIC of this host; `default` only with --pxe-default
//! grubx64.efi                              UEFI PXE (GRUB, prefix (tftp)/grub)
//! grub/grub.cfg-01-<mac>                   per NIC; grub/grub.cfg only with --pxe-default
//! mkrescue/kernel/<sha256>.vmlinuz         content-addressed, shared
//! mkrescue/base/<sha256>.img               content-addressed, shared
//! mkrescue/hosts/<host>/host.img           this host's layer
//! mkrescue/hosts/<host>/boot.ipxe          iPXE script (paths relative to it: TFTP or HTTP)
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::bootcfg::{self, Menu, Paths, Syslinux};
use super::initramfs::sha256_file;
use super::iso::{copy, mkdir, write_text};
use super::tools;
use crate::config::Compression;
use crate::error::{Code, fail};
use crate::image::{self, Layer, Manifest};

/// What went where.
#[derive(Debug, Clone, Serialize)]
pub struct PxeReport {
    pub kernel: PathBuf,
    pub base: PathBuf,
    /// `<sha256>.img`: the base's name on every recovery server.
    pub base_name: String,
    pub base_bytes: u64,
    /// Whether an identical base was already in the tree (another host).
    pub base_shared: bool,
    pub host: PathBuf,
    pub host_bytes: u64,
    pub macs: Vec<String>,
    pub written: Vec<PathBuf>,
    /// What `--pxe-upload` sent (set after the upload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload: Option<super::pxeupload::UploadReport>,
}

impl PxeReport {
    /// The summary lines of a build: the base used (new or already there,
    /// here and on the server) and the host layer's size.
    pub fn summary(&self) -> Vec<String> {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let mut base_state = if self.base_shared {
            "already in the tree".to_string()
        } else {
            "new".to_string()
        };
        if let Some(u) = &self.upload {
            base_state.push_str(if u.base_on_server {
                ", already on the server: not uploaded"
            } else {
                ", uploaded"
            });
        }
        vec![
            format!(
                "PXE base {} ({:.1} MiB, {base_state})",
                self.base_name,
                mib(self.base_bytes)
            ),
            format!(
                "PXE host layer {} ({:.1} KiB)",
                self.host.display(),
                self.host_bytes as f64 / 1024.0
            ),
        ]
    }
}

/// MAC addresses of the host's physical Ethernet NICs (ARPHRD_ETHER = 1 in
/// /sys/class/net/*/type, with a `device` link: not bridges, bonds, ifb),
/// sorted, lowercase `aa:bb:cc:dd:ee:ff`.
pub fn host_macs(root: &Path) -> Vec<String> {
    let dir = root.join("sys/class/net");
    let mut macs = Vec::new();
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return macs;
    };
    for e in rd.flatten() {
        let p = e.path();
        let ty = std::fs::read_to_string(p.join("type")).unwrap_or_default();
        if ty.trim() != "1" || !p.join("device").exists() {
            continue;
        }
        if let Ok(a) = std::fs::read_to_string(p.join("address")) {
            let a = a.trim().to_ascii_lowercase();
            if a.len() == 17 && a != "00:00:00:00:00:00" && !macs.contains(&a) {
                macs.push(a);
            }
        }
    }
    macs.sort();
    macs
}

/// The MACs this host's menus are named after. With `[network]
/// ip_addr_json` the build takes the network configuration from recorded
/// `ip -json addr` output of the host being built (in a `--root` build of a
/// chroot or of another machine's disk that is not the machine running
/// mkrescue, whose NICs ROOT/sys/class/net shows when /sys is bound there,
/// or nothing at all): then its physical NICs (those the rescue system
/// finds again by MAC) are that host's NICs, and its menus go under their
/// MACs. Otherwise, or when the recording has no physical NIC, the NICs
/// below ROOT/sys/class/net ([`host_macs`]).
pub fn menu_macs(root: &Path, net: &crate::config::Network) -> Result<Vec<String>> {
    if net.ip_addr_json.is_some() {
        let recorded = crate::rescue::network::capture(root, net)?;
        let mut macs: Vec<String> = recorded
            .interfaces
            .iter()
            .filter(|i| i.link == crate::rescue::network::LinkKind::Physical)
            .map(|i| i.mac.to_ascii_lowercase())
            .collect();
        macs.sort();
        macs.dedup();
        if !macs.is_empty() {
            return Ok(macs);
        }
    }
    Ok(host_macs(root))
}

/// `01-aa-bb-cc-dd-ee-ff`: ARP type 1 and the MAC, the name PXELINUX
/// (syslinux wiki "PXELINUX", configuration file search) and GRUB's
/// net_search_config_file look for.
pub fn mac_file_name(mac: &str) -> String {
    format!("01-{}", mac.replace(':', "-"))
}

/// Inputs of the PXE writer.
pub struct PxeInput<'a> {
    pub root: &'a Path,
    pub vmlinuz: &'a Path,
    pub manifest: &'a Manifest,
    pub hostname: &'a str,
    pub compression: Compression,
    pub level: Option<u32>,
    pub macs: &'a [String],
    pub default: bool,
    pub dry_run: bool,
}

/// Writes the PXE tree for this host into `input.root`.
pub fn write(input: &PxeInput, menu: &Menu, work: &Path) -> Result<PxeReport> {
    if input.macs.is_empty() && !input.default {
        return Err(fail(
            Code::Host,
            "--output pxe: this host has no Ethernet NIC to write pxelinux.cfg/01-<mac> for; add --pxe-default to serve the menu to every machine",
        ));
    }
    if input.hostname.is_empty() || input.hostname.contains('/') || input.hostname.starts_with('.')
    {
        return Err(fail(
            Code::Host,
            format!(
                "hostname {:?} cannot name a directory of the PXE tree",
                input.hostname
            ),
        ));
    }
    let t = tools::Boot::find()?;
    let root = input.root;
    for d in [
        "pxelinux.cfg",
        "grub",
        "mkrescue/kernel",
        "mkrescue/base",
        "mkrescue/hosts",
    ] {
        mkdir(&root.join(d))?;
    }
    mkdir(work)?;
    let mut written = Vec::new();

    // Layers: compressed separately, each a complete cpio archive.
    let base = input.manifest.layer(Layer::Base);
    let host = input.manifest.layer(Layer::Host);
    let base_tmp = work.join("base.img");
    write_layer(&base, input, &base_tmp)?;
    let base_sha = sha256_file(&base_tmp)?;
    let base_name = format!("{base_sha}.img");
    let base_rel = format!("mkrescue/base/{base_name}");
    let base_path = root.join(&base_rel);
    let base_shared = base_path.exists() && sha256_file(&base_path)? == base_sha;
    if base_shared {
        // Its mtime says "in use": `mkrescue pxe prune` keeps a base
        // changed within the hour even before a menu names it.
        std::fs::File::options()
            .write(true)
            .open(&base_path)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()))
            .with_context(|| format!("touching {}", base_path.display()))?;
    } else {
        std::fs::rename(&base_tmp, &base_path)
            .or_else(|_| std::fs::copy(&base_tmp, &base_path).map(|_| ()))
            .with_context(|| format!("writing {}", base_path.display()))?;
    }
    let base_bytes = std::fs::metadata(&base_path)
        .with_context(|| format!("reading {}", base_path.display()))?
        .len();
    let kernel_sha = sha256_file(input.vmlinuz)?;
    let kernel_rel = format!("mkrescue/kernel/{kernel_sha}.vmlinuz");
    if !root.join(&kernel_rel).exists() {
        copy(input.vmlinuz, &root.join(&kernel_rel))?;
    }
    let host_dir_rel = format!("mkrescue/hosts/{}", input.hostname);
    mkdir(&root.join(&host_dir_rel))?;
    let host_rel = format!("{host_dir_rel}/host.img");
    let host_path = root.join(&host_rel);
    write_layer(&host, input, &host_path)?;
    let host_bytes = std::fs::metadata(&host_path)
        .with_context(|| format!("reading {}", host_path.display()))?
        .len();
    written.extend([root.join(&kernel_rel), base_path.clone(), host_path.clone()]);

    // Boot loaders.
    copy(t.pxelinux()?, &root.join("pxelinux.0"))?;
    for m in tools::SYSLINUX_MODULES {
        copy(&t.syslinux_modules.join(m), &root.join(m))?;
    }
    let efi = root.join("grubx64.efi");
    tools::grub_efi_image(&t, None, work, &efi, "(tftp)/grub", true, input.dry_run)?;

    // PXELINUX paths are relative to the TFTP root (its working directory);
    // GRUB's are below (tftp).
    let rel_paths = Paths {
        kernel: kernel_rel.clone(),
        initrds: vec![base_rel.clone(), host_rel.clone()],
    };
    let grub_paths = Paths {
        kernel: format!("/{kernel_rel}"),
        initrds: vec![format!("/{base_rel}"), format!("/{host_rel}")],
    };
    let pxelinux = bootcfg::syslinux(menu, &rel_paths, Syslinux::Pxelinux)?;
    let grub = bootcfg::grub(menu, &grub_paths, "EFI network boot")?;
    let mut names: Vec<String> = input.macs.iter().map(|m| mac_file_name(m)).collect();
    if input.default {
        names.push("default".into());
    }
    for n in &names {
        let p = root.join("pxelinux.cfg").join(n);
        write_text(&p, &pxelinux)?;
        written.push(p);
        let g = if n == "default" {
            root.join("grub/grub.cfg")
        } else {
            root.join(format!("grub/grub.cfg-{n}"))
        };
        write_text(&g, &grub)?;
        written.push(g);
    }
    // iPXE resolves relative URIs against the script's own URI, so the
    // script next to host.img reaches the shared files with `../../`.
    let ipxe_paths = Paths {
        kernel: format!("../../kernel/{kernel_sha}.vmlinuz"),
        initrds: vec![format!("../../base/{base_sha}.img"), "host.img".into()],
    };
    let ipxe = root.join(format!("{host_dir_rel}/boot.ipxe"));
    write_text(&ipxe, &bootcfg::ipxe(menu, &ipxe_paths)?)?;
    written.push(ipxe);
    written.push(efi);

    Ok(PxeReport {
        kernel: root.join(kernel_rel),
        base: base_path,
        base_name,
        base_bytes,
        base_shared,
        host: host_path,
        host_bytes,
        macs: input.macs.to_vec(),
        written,
        upload: None,
    })
}

fn write_layer(m: &Manifest, input: &PxeInput, path: &Path) -> Result<()> {
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    image::write_initrd(
        m,
        input.compression,
        input.level,
        &mut w,
        &indicatif::ProgressBar::hidden(),
    )
    .with_context(|| format!("writing {}", path.display()))?;
    use std::io::Write;
    w.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `--root` build with recorded network output: the menus go under
    /// the recorded host's NIC (the fixture's eth0), not under whatever
    /// ROOT/sys/class/net shows; its ifb devices and loopback are no NICs.
    /// Without a recording, the NICs below the root (none in an empty one).
    #[test]
    fn menus_go_under_the_recorded_hosts_nics() {
        let root = tempfile::tempdir().unwrap();
        let fix = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/network");
        let recorded = crate::config::Network {
            ip_addr_json: Some(fix.join("host-ip-addr.json")),
            ip4_route_json: Some(fix.join("host-ip4-route.json")),
            ip6_route_json: Some(fix.join("host-ip6-route.json")),
            ..Default::default()
        };
        assert_eq!(
            menu_macs(root.path(), &recorded).unwrap(),
            ["02:fc:00:00:00:01"]
        );
        // The bond fixture: three NICs, the capture VM's eth0 and the
        // bond's two slaves by their own (permanent) MACs, not the bond's
        // address they carry while enslaved; no menu for the bond, the
        // bridge or the VLAN.
        let bond = fix.join("bond-bridge-vlan");
        let bonded = crate::config::Network {
            ip_addr_json: Some(bond.join("ip-addr.json")),
            ip4_route_json: Some(bond.join("ip4-route.json")),
            ip6_route_json: Some(bond.join("ip6-route.json")),
            ..Default::default()
        };
        assert_eq!(
            menu_macs(root.path(), &bonded).unwrap(),
            [
                "02:fc:00:00:01:01",
                "02:fc:00:00:01:02",
                "52:54:00:6d:6b:01"
            ]
        );
        let live = crate::config::Network::default();
        assert!(menu_macs(root.path(), &live).unwrap().is_empty());
    }
}
