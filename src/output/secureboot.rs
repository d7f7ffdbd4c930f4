//! Which UEFI boot loader the ISO's ESP carries: GRUB built here by
//! grub-mkimage (boots only with Secure Boot off), or Debian's signed chain
//! (Microsoft-signed shim, then GRUB signed by Debian) so the medium boots
//! on machines with Secure Boot on, like the host it was made on.
//!
//! Owns the decision (`output.secure_boot`: auto, on, off) and the file
//! list of the signed ESP; hands an [`EfiLoader`] to the ISO writer (the
//! ISO and the OBDR tape's ISO; the USB image keeps its own GRUB for now).
//!
//! The signed chain as Debian's own installer ISO lays it out:
//! `EFI/BOOT/BOOTX64.EFI` = shimx64.efi.signed (the removable-media path,
//! UEFI spec 2.9, 3.5.1.1); shim loads `grubx64.efi` from its own
//! directory, and `mmx64.efi` (MokManager) when a signature check fails.
//! The GRUB is `gcdx64.efi.signed`, Debian's image for CDs: its built-in
//! config finds the medium by the file `/.disk/info` and reads
//! `/boot/grub/grub.cfg` there. `fbx64.efi` (fallback) is left out: it
//! would write boot entries for the medium into the machine's NVRAM.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::config::SecureBoot;
use crate::error::{Code, fail};

/// shim-signed's Microsoft-signed shim.
pub const SHIM: &str = "usr/lib/shim/shimx64.efi.signed";
/// shim-signed's MokManager.
pub const MOK_MANAGER: &str = "usr/lib/shim/mmx64.efi.signed";
/// grub-efi-amd64-signed's image for CD/ISO boot.
pub const GRUB_CD: &str = "usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed";
/// The file the signed GRUB searches for to find its medium.
pub const DISK_INFO: &str = ".disk/info";

/// The UEFI variable holding the Secure Boot state: `SecureBoot` in the
/// EFI global variable GUID (UEFI spec 2.9, 3.3 "Globally Defined
/// Variables"), as the kernel's efivarfs shows it.
const SECURE_BOOT_VAR: &str =
    "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// Whether the machine below `root` booted with Secure Boot on: `None`
/// when it did not boot by UEFI (no efivars).
pub fn host_secure_boot(root: &Path) -> Option<bool> {
    // efivarfs files are 4 bytes of attributes, then the data: one byte,
    // 1 = enabled (Documentation/filesystems/efivarfs.rst).
    let b = std::fs::read(root.join(SECURE_BOOT_VAR)).ok()?;
    b.get(4).map(|&v| v == 1)
}

/// The signed files, on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedChain {
    pub shim: PathBuf,
    pub mok_manager: PathBuf,
    pub grub: PathBuf,
}

impl SignedChain {
    /// The ESP's files: (host path, path inside the FAT image).
    pub fn esp_files(&self) -> Vec<(&Path, &'static str)> {
        vec![
            (self.shim.as_path(), "EFI/BOOT/BOOTX64.EFI"),
            (self.grub.as_path(), "EFI/BOOT/grubx64.efi"),
            (self.mok_manager.as_path(), "EFI/BOOT/mmx64.efi"),
        ]
    }
}

/// What the ESP boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EfiLoader {
    /// GRUB from grub-mkimage with mkrescue's config built in.
    Unsigned,
    /// shim + Debian's signed GRUB.
    Signed(SignedChain),
}

/// Picks the loader for `mode` on the host below `root` whose Secure Boot
/// state is `host_sb`. Returns it and, when the choice leaves a Secure
/// Boot machine without a bootable medium, a warning for the operator.
pub fn choose(
    mode: SecureBoot,
    host_sb: Option<bool>,
    root: &Path,
) -> Result<(EfiLoader, Option<String>)> {
    let files = [
        (SHIM, "shim-signed"),
        (MOK_MANAGER, "shim-signed"),
        (GRUB_CD, "grub-efi-amd64-signed"),
    ];
    let missing: Vec<String> = files
        .iter()
        .filter(|(p, _)| !root.join(p).is_file())
        .map(|(p, pkg)| format!("/{p} ({pkg})"))
        .collect();
    let chain = || {
        EfiLoader::Signed(SignedChain {
            shim: root.join(SHIM),
            mok_manager: root.join(MOK_MANAGER),
            grub: root.join(GRUB_CD),
        })
    };
    let fix = "apt-get install shim-signed grub-efi-amd64-signed";
    match mode {
        SecureBoot::Off => Ok((EfiLoader::Unsigned, None)),
        SecureBoot::On if missing.is_empty() => Ok((chain(), None)),
        SecureBoot::On => Err(fail(
            Code::Host,
            format!(
                "output.secure_boot = \"on\" needs the signed boot loaders; missing {}: {fix}",
                missing.join(", ")
            ),
        )),
        SecureBoot::Auto => match host_sb {
            Some(true) if missing.is_empty() => Ok((chain(), None)),
            Some(true) => Ok((
                EfiLoader::Unsigned,
                Some(format!(
                    "this host boots with Secure Boot, but {} missing: the ISO boots by UEFI only with Secure Boot off ({fix})",
                    if missing.len() == 1 {
                        format!("{} is", missing[0])
                    } else {
                        format!("{} are", missing.join(", "))
                    }
                )),
            )),
            _ => Ok((EfiLoader::Unsigned, None)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A root with efivars saying `sb` and the signed files if `signed`.
    fn host(sb: Option<u8>, signed: bool) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        if let Some(v) = sb {
            let p = d.path().join(SECURE_BOOT_VAR);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            // Attributes NV|BS|RT (0x6), then the value.
            std::fs::write(&p, [6, 0, 0, 0, v]).unwrap();
        }
        if signed {
            for f in [SHIM, MOK_MANAGER, GRUB_CD] {
                let p = d.path().join(f);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, f).unwrap();
            }
        }
        d
    }

    #[test]
    fn secure_boot_state_from_efivars() {
        assert_eq!(host_secure_boot(host(Some(1), false).path()), Some(true));
        assert_eq!(host_secure_boot(host(Some(0), false).path()), Some(false));
        // BIOS boot: no efivars at all.
        assert_eq!(host_secure_boot(host(None, false).path()), None);
    }

    #[test]
    fn auto_follows_the_host() {
        let h = host(Some(1), true);
        let (l, w) = choose(SecureBoot::Auto, host_secure_boot(h.path()), h.path()).unwrap();
        match l {
            EfiLoader::Signed(c) => {
                assert_eq!(c.shim, h.path().join(SHIM));
                let inside: Vec<&str> = c.esp_files().iter().map(|f| f.1).collect();
                assert_eq!(
                    inside,
                    [
                        "EFI/BOOT/BOOTX64.EFI",
                        "EFI/BOOT/grubx64.efi",
                        "EFI/BOOT/mmx64.efi"
                    ]
                );
                assert_eq!(c.esp_files()[0].0, h.path().join(SHIM));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(w, None);
        // Secure Boot off or BIOS: the unsigned GRUB, even with the
        // packages installed.
        for sb in [Some(0), None] {
            let h = host(sb, true);
            let (l, w) = choose(SecureBoot::Auto, host_secure_boot(h.path()), h.path()).unwrap();
            assert_eq!((l, w), (EfiLoader::Unsigned, None));
        }
    }

    #[test]
    fn secure_boot_host_without_packages_is_warned() {
        let h = host(Some(1), false);
        let (l, w) = choose(SecureBoot::Auto, Some(true), h.path()).unwrap();
        assert_eq!(l, EfiLoader::Unsigned);
        let w = w.expect("a warning");
        assert!(
            w.contains("shim-signed") && w.contains("grub-efi-amd64-signed"),
            "{w}"
        );
        assert!(w.contains("Secure Boot off"), "{w}");
    }

    #[test]
    fn on_and_off_override_the_host() {
        let h = host(None, true);
        assert!(matches!(
            choose(SecureBoot::On, None, h.path()).unwrap().0,
            EfiLoader::Signed(_)
        ));
        let h = host(Some(1), true);
        assert_eq!(
            choose(SecureBoot::Off, Some(true), h.path()).unwrap(),
            (EfiLoader::Unsigned, None)
        );
        let h = host(Some(1), false);
        let e = choose(SecureBoot::On, Some(true), h.path()).unwrap_err();
        assert_eq!(crate::error::code_of(&e), Code::Host);
        assert!(
            format!("{e}").contains("apt-get install shim-signed"),
            "{e}"
        );
    }
}
