//! `--dry-run` of a build: the files it would write (with their sizes where
//! they are known before compressing), what it would erase and the external
//! tools it would call. Computed from the same inputs as the build (the
//! `Manifest`, the kernel, the medium's flags); nothing is written.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use super::media::{MediaOptions, name};
use crate::config::{Config, Output};
use crate::host::HostFacts;
use crate::image::Manifest;

/// One file (or device) the build would write.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    pub path: PathBuf,
    /// Its size when known without building it (the kernel, a disk image).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// What it is.
    pub what: String,
}

/// What a build would do.
#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    pub kind: Output,
    pub files: Vec<Planned>,
    /// Devices whose contents would be erased (a USB disk, a tape).
    pub erases: Vec<PathBuf>,
    /// External programs the build would run, in order.
    pub tools: Vec<&'static str>,
    /// Where the scratch files go (removed afterwards).
    pub scratch: String,
    /// Where the tree would be uploaded (`--pxe-upload`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload: Option<String>,
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

fn planned(path: PathBuf, bytes: Option<u64>, what: impl Into<String>) -> Planned {
    Planned {
        path,
        bytes,
        what: what.into(),
    }
}

/// The plan of a build of `kind` from `manifest`. The caller ran
/// `media::check_args`.
pub fn describe(
    kind: Output,
    cfg: &Config,
    args: &MediaOptions,
    root: &Path,
    host: &HostFacts,
    manifest: &Manifest,
) -> Result<DryRun> {
    let out_dir = &cfg.build.out_dir;
    let kernel_bytes = std::fs::metadata(&host.kernel.image).ok().map(|m| m.len());
    let initrd_what = format!(
        "{} entries, {} before {} compression",
        manifest.len(),
        mib(manifest.payload_bytes()),
        format!("{:?}", cfg.build.compress).to_lowercase()
    );
    let kernel_what = format!("kernel {}", host.kernel.version);
    let mut files = Vec::new();
    let mut erases = Vec::new();
    let mut tools: Vec<&'static str> = Vec::new();
    let mut upload = None;
    // The ISO's tools (also OBDR's, whose tape holds an ISO).
    let iso_tools = |tools: &mut Vec<&'static str>| -> Result<()> {
        let (efi, _) = super::secureboot::choose(
            cfg.output.secure_boot,
            super::secureboot::host_secure_boot(root),
            root,
        )?;
        if matches!(efi, super::secureboot::EfiLoader::Unsigned) {
            tools.push("grub-mkimage");
        }
        tools.extend(["mkfs.vfat", "mmd", "mcopy", "xorriso"]);
        Ok(())
    };
    let scratch = match kind {
        Output::Initramfs | Output::Iso => format!("{}/.work", out_dir.display()),
        _ => format!(
            "a temporary directory in {} ($TMPDIR), removed afterwards; {} is not touched",
            std::env::temp_dir().display(),
            out_dir.display()
        ),
    };
    match kind {
        Output::Initramfs | Output::Iso => {
            files.push(planned(out_dir.join("vmlinuz"), kernel_bytes, kernel_what));
            files.push(planned(out_dir.join("initrd.img"), None, initrd_what));
            files.push(planned(
                out_dir.join("manifest.json"),
                None,
                "every file of the initrd with its sha256",
            ));
            if kind == Output::Iso {
                iso_tools(&mut tools)?;
                files.push(planned(
                    out_dir.join(super::iso::ISO_NAME),
                    None,
                    format!(
                        "hybrid ISO for BIOS and UEFI, volume {}",
                        cfg.output.volume_id
                    ),
                ));
            }
            files.push(planned(
                out_dir.join(super::sums::SUMS),
                None,
                "checksums for `mkrescue verify`",
            ));
        }
        Output::Pxe => {
            let r = args.pxe_root.clone().unwrap_or_default();
            let hostdir = format!("mkrescue/hosts/{}", host.hostname);
            files.push(planned(
                r.join("mkrescue/kernel/SHA256.vmlinuz"),
                kernel_bytes,
                kernel_what,
            ));
            files.push(planned(
                r.join("mkrescue/base/SHA256.img"),
                None,
                format!("{initrd_what}: the layer shared by hosts of the same OS and kernel"),
            ));
            files.push(planned(
                r.join(&hostdir).join("host.img"),
                None,
                "this host's layer",
            ));
            files.push(planned(
                r.join(&hostdir).join("boot.ipxe"),
                None,
                "iPXE script",
            ));
            files.push(planned(r.join("pxelinux.0"), None, "PXELINUX"));
            files.push(planned(r.join("grubx64.efi"), None, "GRUB for UEFI"));
            let mut names: Vec<String> = super::pxe::menu_macs(root, &cfg.network)?
                .iter()
                .map(|m| super::pxe::mac_file_name(m))
                .collect();
            if args.pxe_default {
                names.push("default".into());
            }
            for n in &names {
                files.push(planned(r.join("pxelinux.cfg").join(n), None, "BIOS menu"));
                let g = if n == "default" {
                    r.join("grub/grub.cfg")
                } else {
                    r.join(format!("grub/grub.cfg-{n}"))
                };
                files.push(planned(g, None, "UEFI menu"));
            }
            files.push(planned(
                r.join(super::sums::SUMS),
                None,
                "checksums of the whole tree",
            ));
            tools.push("grub-mkimage");
            if let Some(url) = args
                .pxe_upload
                .as_deref()
                .or(cfg.output.pxe_upload.as_deref())
            {
                tools.extend(["rsync", "ssh"]);
                upload = Some(super::pxeupload::Remote::parse(url)?.describe());
            }
        }
        Output::Usb => {
            let size = match &args.size {
                Some(sz) => super::usb::parse_size(sz)?,
                None => super::usb::DEFAULT_SIZE,
            };
            tools.extend(["grub-mkimage", "mkfs.vfat", "mmd", "mcopy", "syslinux"]);
            tools.extend(["sfdisk", "mkfs.ext4"]);
            let what = format!(
                "GPT disk: ESP (GRUB, SYSLINUX, kernel, initrd) + ext4 {} for backups",
                super::usb::DATA_LABEL
            );
            if let Some(dev) = &args.device {
                let d = super::usb::check_device(dev, args.force)?;
                let bytes = size.min(d.size.unwrap_or(size));
                files.push(planned(dev.clone(), Some(bytes), what));
                erases.push(dev.clone());
            } else if let Some(img) = &args.image {
                files.push(planned(img.clone(), Some(size), format!("sparse {what}")));
                files.push(planned(
                    sums_beside(img),
                    None,
                    "its line is added or replaced",
                ));
            }
        }
        Output::Obdr => {
            iso_tools(&mut tools)?;
            if let Some(dev) = &args.tape {
                files.push(planned(
                    dev.clone(),
                    None,
                    "rewound, then the OBDR label and the ISO",
                ));
                erases.push(dev.clone());
            } else if let Some(f) = &args.tape_file {
                files.push(planned(
                    f.clone(),
                    None,
                    "SIMH tape image: the OBDR label and the ISO",
                ));
                files.push(planned(
                    sums_beside(f),
                    None,
                    "its line is added or replaced",
                ));
            }
        }
    }
    Ok(DryRun {
        kind,
        files,
        erases,
        tools,
        scratch,
        upload,
    })
}

/// `SHA256SUMS` in the directory of `file`.
pub fn sums_beside(file: &Path) -> PathBuf {
    file.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(super::sums::SUMS)
}

/// The text `--dry-run` prints on stdout.
pub fn render(d: &DryRun) -> String {
    let mut s = format!(
        "dry run of --output {}: nothing is written\nwould write:\n",
        name(d.kind)
    );
    for f in &d.files {
        let size = f
            .bytes
            .map(|b| format!(" ({})", mib(b)))
            .unwrap_or_default();
        s.push_str(&format!("  {}{size}: {}\n", f.path.display(), f.what));
    }
    for e in &d.erases {
        s.push_str(&format!("would erase everything on {}\n", e.display()));
    }
    if let Some(u) = &d.upload {
        s.push_str(&format!(
            "would then upload it to {u} with rsync over ssh (adds and updates files, deletes none)\n"
        ));
    }
    s.push_str(&format!("scratch space: {}\n", d.scratch));
    if d.tools.is_empty() {
        s.push_str("would call no external tool\n");
    } else {
        let mut tools = d.tools.clone();
        tools.dedup();
        s.push_str(&format!("would call: {}\n", tools.join(", ")));
    }
    s
}
