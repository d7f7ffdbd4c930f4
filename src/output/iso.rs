//! `--output iso`: a hybrid ISO that boots on BIOS and UEFI machines, from a
//! CD/DVD or written as-is to a USB stick.
//!
//! BIOS: ISOLINUX as El Torito no-emulation boot image, with isohdpfx.bin as
//! the MBR so the same file boots as a disk (isohybrid). UEFI: an El Torito
//! EFI entry pointing at a FAT image (the ESP) holding GRUB as
//! EFI/BOOT/BOOTX64.EFI, which `-isohybrid-gpt-basdat` also lists in a GPT so
//! firmware finds it when the file is a disk. No loop mounts: the FAT image
//! is made by mkfs.vfat on a file and filled with mtools.
//!
//! With Secure Boot (src/output/secureboot.rs) the ESP holds Debian's signed
//! shim and GRUB instead, which find the ISO by `/.disk/info`. Backup files
//! (src/output/isobackup.rs) are grafted in from where they are.
//!
//! Takes the staged kernel and initrd; hands on DIR/mkrescue.iso.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::bootcfg::{self, Menu, Paths, Syslinux};
use super::secureboot::{self, EfiLoader};
use super::stamp::Stamp;
use super::tools;
use crate::exec::Cmd;

/// File name of the ISO in the output directory.
pub const ISO_NAME: &str = "mkrescue.iso";

/// Options of the ISO writer.
#[derive(Debug, Clone)]
pub struct IsoOptions {
    /// ISO 9660 volume id (at most 32 of A-Z 0-9 _).
    pub volume_id: String,
    pub dry_run: bool,
    /// What the ESP boots.
    pub efi: EfiLoader,
    /// More files: (file on this machine, path inside the ISO).
    pub extra: Vec<(PathBuf, String)>,
}

/// Checks a volume id: ECMA-119 8.4.6 allows 32 d-characters (A-Z, 0-9, _).
pub fn check_volume_id(v: &str) -> Result<()> {
    if v.is_empty()
        || v.len() > 32
        || !v
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(crate::error::fail(
            crate::error::Code::Config,
            format!(
                "output.volume_id = {v:?}: an ISO volume id is 1 to 32 characters of A-Z, 0-9 and _ (e.g. \"MKRESCUE_DB1\")"
            ),
        ));
    }
    Ok(())
}

/// Builds `out_dir/mkrescue.iso` from `vmlinuz` and `initrd` using `work`
/// as scratch space (emptied first). Every date in it is `stamp.epoch` and
/// every serial comes from `stamp`, so the same input gives the same ISO.
pub fn write(
    vmlinuz: &Path,
    initrd: &Path,
    menu: &Menu,
    stamp: &Stamp,
    work: &Path,
    out_dir: &Path,
    opts: &IsoOptions,
) -> Result<PathBuf> {
    check_volume_id(&opts.volume_id)?;
    let t = tools::Boot::find()?;
    let _ = std::fs::remove_dir_all(work);
    let root = work.join("root");
    for d in ["isolinux", "boot/grub", "EFI/BOOT", "mkrescue"] {
        mkdir(&root.join(d))?;
    }
    copy(vmlinuz, &root.join("boot/vmlinuz"))?;
    copy(initrd, &root.join("boot/initrd.img"))?;
    let tag_path = format!("/mkrescue/{}.tag", stamp.tag);
    write_text(
        &root.join(tag_path.trim_start_matches('/')),
        &format!("{}\n", menu.title),
    )?;

    // BIOS side: ISOLINUX and the library modules menu.c32 loads.
    copy(&t.isolinux_bin, &root.join("isolinux/isolinux.bin"))?;
    for m in tools::SYSLINUX_MODULES {
        copy(&t.syslinux_modules.join(m), &root.join("isolinux").join(m))?;
    }
    let paths = Paths {
        kernel: "/boot/vmlinuz".into(),
        initrds: vec!["/boot/initrd.img".into()],
    };
    write_text(
        &root.join("isolinux/isolinux.cfg"),
        &bootcfg::syslinux(menu, &paths, Syslinux::Isolinux)?,
    )?;

    // UEFI side: GRUB reads boot/grub/grub.cfg from the ISO 9660 tree.
    write_text(
        &root.join("boot/grub/grub.cfg"),
        &bootcfg::grub(menu, &paths, "EFI (ISO)")?,
    )?;
    let esp = root.join("boot/efiboot.img");
    match &opts.efi {
        EfiLoader::Unsigned => {
            let efi = work.join("BOOTX64.EFI");
            tools::grub_efi_image(
                &t,
                Some(&bootcfg::grub_embedded(&tag_path)?),
                work,
                &efi,
                "/boot/grub",
                false,
                opts.dry_run,
            )?;
            copy(&efi, &root.join("EFI/BOOT/BOOTX64.EFI"))?;
            tools::fat_image(&esp, &[(&efi, "EFI/BOOT/BOOTX64.EFI")], stamp, opts.dry_run)?;
        }
        EfiLoader::Signed(chain) => {
            // The signed GRUB cannot have a config built in; its own finds
            // the medium by this file and reads /boot/grub/grub.cfg there.
            mkdir(&root.join(".disk"))?;
            write_text(
                &root.join(secureboot::DISK_INFO),
                &format!("{}\n", menu.title),
            )?;
            let files = chain.esp_files();
            for (from, inside) in &files {
                copy(from, &root.join(inside))?;
            }
            tools::fat_image(&esp, &files, stamp, opts.dry_run)?;
        }
    }

    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("creating output directory {}", out_dir.display()))?;
    let iso = out_dir.join(ISO_NAME);
    let tmp = out_dir.join(format!("{ISO_NAME}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    // xorriso(1) -as mkisofs; flags as in xorrisofs(1) "EXAMPLES: Make an
    // ISO image bootable for BIOS and EFI":
    //  -isohybrid-mbr: MBR code that boots ISOLINUX when the file is a disk
    //  -b/-no-emul-boot/-boot-load-size 4/-boot-info-table: ISOLINUX El Torito
    //  -eltorito-alt-boot -e: a second El Torito entry, platform EFI
    //  -isohybrid-gpt-basdat: list that EFI image as a GPT partition too
    //  -iso-level 3: files over 4 GiB (backup archives) are allowed
    //  -graft-points: `ISO_PATH=FILE` arguments put a file anywhere in the
    //   image without copying it into the staging tree
    // Reproducible (xorrisofs(1) "ENVIRONMENT"): SOURCE_DATE_EPOCH sets the
    // volume dates, the volume "uuid" (--modification-date) the GPT disk
    // GUID is made from, and the "now" of nodes without a file on disk
    // (the boot catalogue, the directories). --set_all_file_dates: the
    // staged files were written just now, so their mtimes (and atimes,
    // ctimes, in Rock Ridge and the directory records) are set to the epoch
    // too; `=N` is xorriso's form for seconds since 1970.
    let mut extra = vec![graft("/", &root)];
    for (from, inside) in &opts.extra {
        extra.push(graft(&format!("/{}", inside.trim_start_matches('/')), from));
    }
    stamp
        .on(Cmd::new("xorriso"))
        .args(["-as", "mkisofs", "-quiet", "-iso-level", "3", "-r", "-J"])
        .args(["-joliet-long", "-V", &opts.volume_id])
        .arg("--set_all_file_dates")
        .arg(format!("={}", stamp.epoch))
        .arg("-o")
        .arg(&tmp)
        .arg("-isohybrid-mbr")
        .arg(&t.isohdpfx)
        .args(["-c", "isolinux/boot.cat", "-b", "isolinux/isolinux.bin"])
        .args(["-no-emul-boot", "-boot-load-size", "4", "-boot-info-table"])
        .args([
            "-eltorito-alt-boot",
            "-e",
            "boot/efiboot.img",
            "-no-emul-boot",
        ])
        .arg("-isohybrid-gpt-basdat")
        .arg("-graft-points")
        // The staging tree is the ISO's root, then the extra files.
        .args(&extra)
        .dry_run(opts.dry_run)
        .output()
        .context("building the ISO with xorriso (apt-get install xorriso)")?;
    if !opts.dry_run {
        std::fs::rename(&tmp, &iso)
            .with_context(|| format!("renaming {} to {}", tmp.display(), iso.display()))?;
    }
    Ok(iso)
}

/// `ISO_PATH=FILE` for `-graft-points`, with `\\` and `=` escaped by a
/// backslash as xorrisofs(1) requires ("-graft-points").
fn graft(inside: &str, from: &Path) -> std::ffi::OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let esc = |b: &[u8]| {
        let mut v = Vec::with_capacity(b.len());
        for &c in b {
            if c == b'\\' || c == b'=' {
                v.push(b'\\');
            }
            v.push(c);
        }
        v
    };
    let mut out = esc(inside.as_bytes());
    out.push(b'=');
    out.extend(esc(from.as_os_str().as_bytes()));
    std::ffi::OsString::from_vec(out)
}

pub(crate) fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))
}

pub(crate) fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

pub(crate) fn write_text(p: &Path, text: &str) -> Result<()> {
    std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graft_points_escape_equals_and_backslash() {
        assert_eq!(
            graft("/backup/a.tar.zst", Path::new("/srv/b=c\\d")),
            std::ffi::OsString::from("/backup/a.tar.zst=/srv/b\\=c\\\\d")
        );
    }
}
