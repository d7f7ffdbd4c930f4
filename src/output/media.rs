//! The boot media step of a build: after `initramfs` wrote DIR/vmlinuz and
//! DIR/initrd.img, build the medium `--output` asks for, then SHA256SUMS.
//!
//! Owns the choice of medium, its menu (what the medium says it is) and the
//! scratch directory DIR/.work (removed on success). Hands on the paths
//! written, for the summary line and `--json`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::bootcfg::{Menu, MenuSpec};
use super::stamp::Stamp;
use crate::config::Config;
use crate::config::Output;
use crate::error::{Code, fail};
use crate::host::HostFacts;
use crate::image::Manifest;

/// Where `--output usb|pxe|obdr|iso` write, and how carefully (the
/// command line's media flags, as plain data).
#[derive(Debug, Clone, Default)]
pub struct MediaOptions {
    /// usb: the whole disk to write (everything on it is erased).
    pub device: Option<PathBuf>,
    /// usb: a disk image file instead of a device.
    pub image: Option<PathBuf>,
    /// usb: size of the image file (`2G`, `1500M`).
    pub size: Option<String>,
    /// pxe: the TFTP/HTTP root to write into.
    pub pxe_root: Option<PathBuf>,
    /// pxe: also the catch-all `pxelinux.cfg/default` and `grub/grub.cfg`.
    pub pxe_default: bool,
    /// obdr: the non-rewinding tape drive.
    pub tape: Option<PathBuf>,
    /// obdr: a SIMH `.tap` file instead of a drive.
    pub tape_file: Option<PathBuf>,
    /// usb: write a device even if it is not removable, mounted or in use.
    pub force: bool,
    /// Say what would be written or erased and stop.
    pub dry_run: bool,
    /// Test builds: the menu starts the rescue shell on the serial console.
    pub test_boot_rescue: bool,
    /// iso: this host's newest archive backup onto the ISO.
    pub iso_backup: bool,
    /// pxe: push the tree to this `ssh://` URL afterwards.
    pub pxe_upload: Option<String>,
    /// Test builds: the menu starts this entry.
    pub test_boot_entry: Option<String>,
}

/// What the medium step wrote.
#[derive(Debug, Clone, Serialize)]
pub struct MediaReport {
    pub kind: Output,
    /// The main artifacts (ISO, image, device, PXE files, tape file).
    pub written: Vec<PathBuf>,
    /// (name, sha256) as in SHA256SUMS.
    pub checksums: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pxe: Option<super::pxe::PxeReport>,
    /// ISO records written to the tape (OBDR).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tape_records: Option<u64>,
}

/// Checks the medium's own flags before the (slow) initrd build, so a
/// mistake costs nothing.
pub fn check_args(kind: Output, cfg: &Config, args: &MediaOptions) -> Result<()> {
    let usage = |m: String| Err(fail(Code::Usage, m));
    // A flag of another medium is a mistake, not something to ignore.
    let flags: [(&str, bool, Output); 8] = [
        ("--device", args.device.is_some(), Output::Usb),
        ("--image", args.image.is_some(), Output::Usb),
        ("--size", args.size.is_some(), Output::Usb),
        ("--force", args.force, Output::Usb),
        ("--pxe-root", args.pxe_root.is_some(), Output::Pxe),
        ("--pxe-default", args.pxe_default, Output::Pxe),
        ("--tape", args.tape.is_some(), Output::Obdr),
        ("--tape-file", args.tape_file.is_some(), Output::Obdr),
    ];
    if let Some((flag, _, owner)) = flags
        .iter()
        .find(|(_, given, owner)| *given && *owner != kind)
    {
        return usage(format!(
            "{flag} is for --output {}; it does not go with --output {} (drop it, or give --output {})",
            name(*owner),
            name(kind),
            name(*owner)
        ));
    }
    if kind == Output::Usb && args.size.is_some() && args.image.is_none() {
        return usage(
            "--size sizes an image file: give --image FILE with it (--device /dev/sdX is written whole)"
                .into(),
        );
    }
    if args.iso_backup && kind != Output::Iso {
        return usage(format!(
            "--iso-backup puts the backup onto an ISO; it does not go with --output {}",
            name(kind)
        ));
    }
    if kind == Output::Iso && (args.iso_backup || cfg.output.iso_backup) {
        super::isobackup::check_config(cfg)?;
    }
    // The flag only makes sense with pxe; the configuration key applies to
    // pxe builds and is ignored by the others.
    if args.pxe_upload.is_some() && kind != Output::Pxe {
        return usage(format!(
            "--pxe-upload pushes a PXE tree; it does not go with --output {}",
            name(kind)
        ));
    }
    if kind == Output::Pxe
        && let Some(url) = pxe_upload(cfg, args)
    {
        super::pxeupload::Remote::parse(url)?;
    }
    if matches!(kind, Output::Iso | Output::Usb | Output::Obdr) {
        super::stamp::check_epoch(cfg.build.source_date_epoch)?;
    }
    match kind {
        Output::Initramfs => Ok(()),
        Output::Iso => super::iso::check_volume_id(&cfg.output.volume_id),
        Output::Pxe if args.pxe_root.is_none() => {
            usage("--output pxe needs --pxe-root DIR (the TFTP/HTTP root to write into)".into())
        }
        Output::Pxe => Ok(()),
        Output::Obdr if args.tape.is_none() && args.tape_file.is_none() => usage(
            "--output obdr needs --tape /dev/nstN (the drive) or --tape-file PATH (a SIMH .tap image)"
                .into(),
        ),
        Output::Obdr => super::iso::check_volume_id(&cfg.output.volume_id),
        Output::Usb => {
            if let Some(sz) = &args.size {
                super::usb::parse_size(sz)?;
            }
            match (&args.device, &args.image) {
                (None, None) => usage(
                    "--output usb needs --device /dev/sdX (a USB stick) or --image FILE [--size 2G]"
                        .into(),
                ),
                (Some(dev), _) => {
                    let d = super::usb::check_device(dev, args.force)?;
                    eprintln!(
                        "mkrescue: {} erase everything on:\n{}",
                        if args.dry_run { "would" } else { "will" },
                        super::usb::describe(&d).trim_end()
                    );
                    Ok(())
                }
                (None, Some(_)) => Ok(()),
            }
        }
    }
}

/// `--pxe-upload`, else `output.pxe_upload`.
fn pxe_upload<'a>(cfg: &'a Config, args: &'a MediaOptions) -> Option<&'a str> {
    args.pxe_upload
        .as_deref()
        .or(cfg.output.pxe_upload.as_deref())
}

pub fn name(kind: Output) -> &'static str {
    match kind {
        Output::Initramfs => "initramfs",
        Output::Iso => "iso",
        Output::Usb => "usb",
        Output::Pxe => "pxe",
        Output::Obdr => "obdr",
    }
}

/// The boot menu of this build.
pub fn menu(cfg: &Config, host: &HostFacts, test_rescue_default: bool) -> Menu {
    let os = host
        .os_release
        .get("PRETTY_NAME")
        .cloned()
        .unwrap_or_else(|| "Linux".into());
    // The date of the image epoch (`SOURCE_DATE_EPOCH` already applied by
    // the config loader), never of the clock: a medium built tomorrow of
    // the same host is the same medium. The built-in epoch is no date of
    // this build, so then the title names none.
    let epoch = cfg.build.source_date_epoch;
    let date = (epoch != crate::config::DEFAULT_EPOCH)
        .then(|| crate::sys::time::date(i64::try_from(epoch).unwrap_or(i64::MAX)));
    Menu::new(&MenuSpec {
        hostname: &host.hostname,
        os: &os,
        kernel_version: &host.kernel.version,
        date: date.as_deref(),
        timeout: cfg.output.boot_timeout,
        test_rescue_default,
    })
}

/// Builds the medium from `out_dir/{vmlinuz,initrd.img}` and writes
/// `out_dir/SHA256SUMS` over everything. The caller ran [`check_args`].
pub fn write(
    kind: Output,
    cfg: &Config,
    args: &MediaOptions,
    root: &Path,
    host: &HostFacts,
    manifest: &Manifest,
    out_dir: &Path,
) -> Result<MediaReport> {
    let mut menu = menu(cfg, host, args.test_boot_rescue);
    if let Some(id) = args
        .test_boot_entry
        .as_ref()
        .or(cfg.output.test_boot_entry.as_ref())
    {
        menu.set_test_default(id)?;
    }
    let work = out_dir.join(".work");
    let vmlinuz = out_dir.join("vmlinuz");
    let initrd = out_dir.join("initrd.img");
    let mut written = Vec::new();
    let mut pxe = None;
    let mut tape_records = None;
    // `--dry-run` stops before this step (see `dryrun`).
    debug_assert!(!args.dry_run);
    // The directory of a USB image or tape file, as `--out` for the others.
    for f in [&args.image, &args.tape_file].into_iter().flatten() {
        if let Some(dir) = f.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    let efi = if matches!(kind, Output::Iso | Output::Obdr) {
        let (l, warning) = super::secureboot::choose(
            cfg.output.secure_boot,
            super::secureboot::host_secure_boot(root),
            root,
        )?;
        if let Some(w) = warning {
            eprintln!("mkrescue: warning: {w}");
        }
        l
    } else {
        super::secureboot::EfiLoader::Unsigned
    };
    let mut extra = Vec::new();
    if kind == Output::Iso && (args.iso_backup || cfg.output.iso_backup) {
        // Files of an ssh:// target are fetched here (the ISO writer
        // empties .work first); removed once the ISO is written.
        let b = super::isobackup::newest(cfg, &host.hostname, &out_dir.join(".iso-backup"))?;
        // The ISO is about the backup plus what is staged already.
        let staged = [&vmlinuz, &initrd]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum::<u64>();
        super::isobackup::check_space(out_dir, b.bytes + 2 * staged + (64 << 20))?;
        eprintln!(
            "mkrescue: backup {} ({:.1} MiB) goes onto the ISO as /backup",
            b.name,
            b.bytes as f64 / (1 << 20) as f64
        );
        extra = b.files;
    }
    // The tag, dates and serials of an ISO or USB image: from what it
    // boots and the image epoch, so an unchanged host gives the same bytes.
    // Backup files on an ISO count by name and size (see `Stamp::new`).
    let extra_sizes: Vec<(u64, String)> = extra
        .iter()
        .map(|(p, inside): &(PathBuf, String)| {
            let len = std::fs::metadata(p)
                .with_context(|| format!("reading {}", p.display()))?
                .len();
            Ok((len, inside.clone()))
        })
        .collect::<Result<_>>()?;
    let stamp = |medium: &str| {
        let listed: Vec<(u64, &str)> = extra_sizes
            .iter()
            .map(|(len, inside)| (*len, inside.as_str()))
            .collect();
        Stamp::new(
            medium,
            &menu,
            &[&vmlinuz, &initrd],
            &listed,
            cfg.build.source_date_epoch,
        )
    };
    let iso_opts = super::iso::IsoOptions {
        volume_id: cfg.output.volume_id.clone(),
        dry_run: false,
        efi,
        extra,
    };
    match kind {
        Output::Initramfs => {}
        Output::Iso => {
            written.push(super::iso::write(
                &vmlinuz,
                &initrd,
                &menu,
                &stamp("iso")?,
                &work,
                out_dir,
                &iso_opts,
            )?);
        }
        Output::Obdr => {
            // The ISO is scratch here: `out_dir` is the build's staging
            // directory; only the tape (file) is the product.
            let iso = super::iso::write(
                &vmlinuz,
                &initrd,
                &menu,
                &stamp("iso")?,
                &work,
                out_dir,
                &iso_opts,
            )?;
            if let Some(path) = &args.tape_file {
                let tmp = path.with_extension("tmp");
                let mut sink = super::obdr::SimhFile::create(&tmp)?;
                tape_records = Some(super::obdr::write_layout(&mut sink, &iso)?);
                std::fs::rename(&tmp, path)
                    .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
                written.push(path.clone());
            } else if let Some(dev) = &args.tape {
                let mut sink = super::obdr::StDevice::open(dev)?;
                tape_records = Some(super::obdr::write_layout(&mut sink, &iso)?);
                written.push(dev.clone());
            }
        }
        Output::Pxe => {
            let pxe_root = args.pxe_root.as_deref().context("--pxe-root is required")?;
            let macs = super::pxe::menu_macs(root, &cfg.network)?;
            let r = super::pxe::write(
                &super::pxe::PxeInput {
                    root: pxe_root,
                    vmlinuz: &vmlinuz,
                    manifest,
                    hostname: &host.hostname,
                    compression: cfg.build.compress,
                    level: cfg.build.compress_level,
                    macs: &macs,
                    default: args.pxe_default,
                    dry_run: false,
                },
                &menu,
                &work,
            )?;
            written.extend(r.written.iter().cloned());
            pxe = Some(r);
        }
        Output::Usb => {
            let size = match &args.size {
                Some(sz) => super::usb::parse_size(sz)?,
                None => super::usb::DEFAULT_SIZE,
            };
            let (image, size) = match (&args.device, &args.image) {
                (Some(dev), _) => {
                    let d = super::usb::check_device(dev, args.force)?;
                    let dev_size = d.size.unwrap_or(0);
                    (work.join("usb.img"), size.min(dev_size))
                }
                (None, Some(img)) => (img.clone(), size),
                (None, None) => unreachable!("check_args requires --device or --image"),
            };
            super::usb::write_image(
                &vmlinuz,
                &initrd,
                &menu,
                &stamp("usb")?,
                &work,
                &image,
                size,
            )?;
            if let Some(dev) = &args.device {
                super::usb::write_device(&image, dev)?;
                written.push(dev.clone());
            } else {
                written.push(image);
            }
        }
    }
    let _ = std::fs::remove_dir_all(out_dir.join(".iso-backup"));
    std::fs::remove_dir_all(&work)
        .or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(e)
            }
        })
        .with_context(|| format!("removing scratch directory {}", work.display()))?;
    // Each medium's SHA256SUMS sits beside it with names relative to its
    // directory, so `mkrescue verify` of that directory checks it. The PXE
    // tree's covers every host's files; a USB image's or tape file's
    // directory may hold other files, so only their own line changes.
    let checksums = match kind {
        Output::Initramfs | Output::Iso => super::sums::write(out_dir, &[])?,
        Output::Pxe => {
            let pxe_root = args.pxe_root.as_deref().context("--pxe-root is required")?;
            super::sums::write(pxe_root, &[])?
        }
        Output::Usb | Output::Obdr => {
            let file = match kind {
                Output::Usb => args.image.as_deref(),
                _ => args.tape_file.as_deref(),
            };
            match file {
                // A device is not a file to checksum.
                None => Vec::new(),
                Some(f) => super::sums::update(f)?,
            }
        }
    };
    // The tree is complete with its SHA256SUMS: now it can go to the
    // server.
    if let (Output::Pxe, Some(url), Some(pxe_root)) =
        (kind, pxe_upload(cfg, args), args.pxe_root.as_deref())
    {
        let remote = super::pxeupload::Remote::parse(url)?;
        let mut up =
            super::pxeupload::upload(pxe_root, &remote, &cfg.output.pxe_ssh_options, false)?;
        eprintln!("mkrescue: PXE tree uploaded to {}", remote.describe());
        if let Some(p) = pxe.as_mut() {
            let rel = format!("mkrescue/base/{}", p.base_name);
            up.base_on_server = up.skipped.contains(&rel);
            p.upload = Some(up);
        }
    }
    Ok(MediaReport {
        kind,
        written,
        checksums,
        pxe,
        tape_records,
    })
}
