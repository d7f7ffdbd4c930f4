//! Boot loader files taken from the host (Debian's syslinux, isolinux,
//! pxelinux and GRUB packages) and the small image-building steps the media
//! writers share: a GRUB EFI image, a FAT file system image filled without
//! mounting it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::stamp::Stamp;
use crate::error::{Code, fail};
use crate::exec::Cmd;

/// The syslinux library modules `UI menu.c32` needs, plus chain.c32 for
/// the USB stick's "boot from local disk" (syslinux wiki "Library modules":
/// menu.c32 needs libutil.c32; chain.c32 needs libcom32.c32 and libutil.c32).
pub const SYSLINUX_MODULES: &[&str] = &[
    "ldlinux.c32",
    "menu.c32",
    "libutil.c32",
    "libcom32.c32",
    "chain.c32",
];

/// GRUB modules built into the EFI image. `normal` brings menuentry;
/// `iso9660`/`fat`/`ext2` read the media; `search_fs_file` finds the tag.
const GRUB_EFI_MODULES: &[&str] = &[
    "normal",
    "configfile",
    "search",
    "search_fs_file",
    "search_label",
    "part_gpt",
    "part_msdos",
    "iso9660",
    "fat",
    "ext2",
    "linux",
    "echo",
    "test",
    "serial",
    "terminal",
    "efi_gop",
    "all_video",
    "gzio",
];

/// GRUB modules for booting over the network under UEFI.
const GRUB_NET_MODULES: &[&str] = &["efinet", "net", "tftp", "http"];

/// Where Debian installs the boot loader files, with the package that has
/// each (so a missing one is a one-line fix).
#[derive(Debug, Clone)]
pub struct Boot {
    pub isolinux_bin: PathBuf,
    pub isohdpfx: PathBuf,
    pub syslinux_modules: PathBuf,
    pub pxelinux_0: PathBuf,
    pub gptmbr: PathBuf,
    pub grub_efi_dir: PathBuf,
}

fn need(path: &str, package: &str) -> Result<PathBuf> {
    let p = PathBuf::from(path);
    if p.exists() {
        Ok(p)
    } else {
        Err(fail(
            Code::Host,
            format!("{path} is missing: install it with `apt-get install {package}`"),
        ))
    }
}

impl Boot {
    /// Finds the files the ISO needs (BIOS and EFI).
    pub fn find() -> Result<Boot> {
        Ok(Boot {
            isolinux_bin: need("/usr/lib/ISOLINUX/isolinux.bin", "isolinux")?,
            isohdpfx: need("/usr/lib/ISOLINUX/isohdpfx.bin", "isolinux")?,
            syslinux_modules: need("/usr/lib/syslinux/modules/bios", "syslinux-common")?,
            pxelinux_0: PathBuf::from("/usr/lib/PXELINUX/pxelinux.0"),
            gptmbr: PathBuf::from("/usr/lib/syslinux/mbr/gptmbr.bin"),
            grub_efi_dir: need("/usr/lib/grub/x86_64-efi", "grub-efi-amd64-bin")?,
        })
    }

    /// pxelinux.0, checked.
    pub fn pxelinux(&self) -> Result<&Path> {
        need(&self.pxelinux_0.to_string_lossy(), "pxelinux")?;
        Ok(&self.pxelinux_0)
    }

    /// gptmbr.bin, checked.
    pub fn gptmbr(&self) -> Result<&Path> {
        need(&self.gptmbr.to_string_lossy(), "syslinux")?;
        Ok(&self.gptmbr)
    }
}

/// Builds a GRUB EFI executable, with `embedded_cfg` built in if given, by
/// grub-mkimage(1): `-c` embeds the config, `-p` sets the prefix used when
/// the config does not set one. `net` adds the network modules.
pub fn grub_efi_image(
    t: &Boot,
    embedded_cfg: Option<&str>,
    work: &Path,
    out: &Path,
    prefix: &str,
    net: bool,
    dry_run: bool,
) -> Result<()> {
    std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
    let mut modules: Vec<&str> = GRUB_EFI_MODULES.to_vec();
    if net {
        modules.extend(GRUB_NET_MODULES);
    }
    let mut cmd = Cmd::new("grub-mkimage")
        .args(["-O", "x86_64-efi", "-p", prefix])
        .arg("-d")
        .arg(&t.grub_efi_dir);
    if let Some(text) = embedded_cfg {
        let cfg = work.join("grub-embedded.cfg");
        std::fs::write(&cfg, text).with_context(|| format!("writing {}", cfg.display()))?;
        cmd = cmd.arg("-c").arg(cfg);
    }
    cmd.arg("-o")
        .arg(out)
        .args(&modules)
        .dry_run(dry_run)
        .output()
        .context("building the GRUB EFI image (apt-get install grub-efi-amd64-bin grub2-common)")?;
    Ok(())
}

/// Creates a FAT image file holding `files` (host path, path inside), sized
/// to fit them, without mounting: mkfs.vfat(8) `-C` creates the file,
/// mtools(1) `mmd`/`mcopy -i IMAGE` write into it. Its serial and dates
/// come from `stamp`.
pub fn fat_image(
    image: &Path,
    files: &[(&Path, &str)],
    stamp: &Stamp,
    dry_run: bool,
) -> Result<()> {
    let mut bytes = 0u64;
    for (p, _) in files {
        bytes += std::fs::metadata(p)
            .with_context(|| format!("reading {}", p.display()))?
            .len();
    }
    // Clusters, FATs and directories: 10% plus 1 MiB is plenty for a few
    // files; mkfs.vfat takes the size in KiB.
    let kib = (bytes + bytes / 10) / 1024 + 1024;
    let _ = std::fs::remove_file(image);
    fat_mkfs(image, kib, &["-n", "ESP"], stamp)
        .dry_run(dry_run)
        .output()
        .with_context(|| {
            format!(
                "creating FAT image {} (apt-get install dosfstools)",
                image.display()
            )
        })?;
    fat_copy_dry(image, files, stamp, dry_run)
}

/// mkfs.vfat(8) `-C IMAGE KIB` with `flags`, reproducible: `--invariant`
/// puts constants where mkfs.fat would take the clock (the volume label's
/// and boot sector's dates) or a random number, and `-i` sets the volume
/// serial from `stamp` so two different media still differ.
pub fn fat_mkfs(image: &Path, kib: u64, flags: &[&str], stamp: &Stamp) -> Cmd {
    stamp
        .on(Cmd::new("mkfs.vfat"))
        .args(["-C", "--invariant", "-i"])
        .arg(stamp.fat_serial("fat"))
        .args(flags)
        .arg(image)
        .arg(kib.to_string())
}

/// Copies `files` (host path, path inside) into an existing FAT image,
/// creating directories, with mtools(1), dated `stamp.epoch`.
pub fn fat_copy(image: &Path, files: &[(&Path, &str)], stamp: &Stamp) -> Result<()> {
    fat_copy_dry(image, files, stamp, false)
}

fn fat_copy_dry(image: &Path, files: &[(&Path, &str)], stamp: &Stamp, dry_run: bool) -> Result<()> {
    let mut dirs: Vec<String> = Vec::new();
    for (_, inside) in files {
        let mut acc = String::new();
        let parts: Vec<&str> = inside.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            acc.push('/');
            acc.push_str(part);
            if !dirs.contains(&acc) {
                dirs.push(acc.clone());
            }
        }
    }
    for d in &dirs {
        mtools("mmd", image, stamp, dry_run)
            .arg(format!("::{d}"))
            .output()
            .with_context(|| format!("creating {d} in {}", image.display()))?;
    }
    for (src, inside) in files {
        mtools("mcopy", image, stamp, dry_run)
            .arg(src)
            .arg(format!("::/{inside}"))
            .output()
            .with_context(|| format!("copying {} into {}", src.display(), image.display()))?;
    }
    Ok(())
}

fn mtools(tool: &str, image: &Path, stamp: &Stamp, dry_run: bool) -> Cmd {
    // MTOOLS_SKIP_CHECK: the image has no partition table and a geometry
    // mtools would otherwise warn about (mtools(1) "Environment").
    // SOURCE_DATE_EPOCH (from `stamp`): the date of the entries mmd and
    // mcopy write, which is otherwise the clock's.
    stamp
        .on(Cmd::new(tool))
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(image)
        .dry_run(dry_run)
}
