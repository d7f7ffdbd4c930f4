//! What makes a boot medium reproducible: everything an ISO or USB image
//! would otherwise take from the clock, the process or a random source
//! comes from here instead, derived from the medium's content and the image
//! epoch (`build.source_date_epoch`, which `SOURCE_DATE_EPOCH` overrides;
//! the initrd's mtimes are clamped to the same value). Two builds of an
//! unchanged host therefore give the same bytes; a change of kernel, initrd,
//! menu, medium or epoch gives a new tag and new serials.
//!
//! Hands the media writers the tag (the file GRUB searches for), the epoch
//! and the GUIDs and serials of their partition tables and file systems.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::bootcfg::Menu;
use crate::error::{Code, fail};
use crate::exec::Cmd;

/// FAT dates run from 1980 to 2107 (Microsoft FAT specification,
/// "Date and Time Formats": years 1980 + 0..127), the narrowest of what
/// an ISO or USB image dates with the epoch.
const FAT_DATES: std::ops::RangeInclusive<u64> = 315_532_800..=4_354_819_199;

/// Refuses an epoch the media cannot record, naming both knobs.
pub fn check_epoch(epoch: u64) -> Result<()> {
    if FAT_DATES.contains(&epoch) {
        return Ok(());
    }
    Err(fail(
        Code::Config,
        format!(
            "build.source_date_epoch (or SOURCE_DATE_EPOCH) = {epoch}: boot media date their files within 1980-01-01 and 2107-12-31; give seconds since 1970 from {} to {}",
            FAT_DATES.start(),
            FAT_DATES.end()
        ),
    ))
}

/// The identity of one medium's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// 16 hex digits naming `/mkrescue/<tag>.tag`, the file the embedded
    /// GRUB config searches for to find the medium it was started from.
    pub tag: String,
    /// Seconds since 1970 for every date the medium records.
    pub epoch: u64,
    /// SHA-256 of the content; the GUIDs and serials are taken from it.
    seed: [u8; 32],
}

impl Stamp {
    /// Hashes what the medium boots: its kind (`iso`, `usb`), the epoch,
    /// the menu, and each file of `files` (length and bytes). `listed` are
    /// files counted by name and length only (backup archives grafted onto
    /// an ISO can be many GiB; their names carry their time stamp).
    ///
    /// Nothing relies on two builds having different tags: GRUB finds a
    /// medium by its tag, and two media with the same tag hold the same
    /// kernel, initrd and menu, so either boots the same system. The kind
    /// is hashed so an ISO and a USB stick of the same build still differ.
    pub fn new(
        kind: &str,
        menu: &Menu,
        files: &[&Path],
        listed: &[(u64, &str)],
        epoch: u64,
    ) -> Result<Stamp> {
        let mut h = Sha256::new();
        let field = |h: &mut Sha256, b: &[u8]| {
            // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        };
        field(&mut h, b"mkrescue medium v1");
        field(&mut h, kind.as_bytes());
        field(&mut h, &epoch.to_le_bytes());
        field(&mut h, menu.title.as_bytes());
        for e in &menu.entries {
            field(&mut h, e.id.as_bytes());
            field(&mut h, e.label.as_bytes());
            field(&mut h, e.cmdline.as_bytes());
            field(&mut h, &[e.local as u8]);
        }
        field(&mut h, menu.default.as_bytes());
        field(&mut h, &menu.timeout.to_le_bytes());
        for p in files {
            let mut f =
                std::fs::File::open(p).with_context(|| format!("reading {}", p.display()))?;
            let len = f
                .metadata()
                .with_context(|| format!("reading {}", p.display()))?
                .len();
            h.update(len.to_le_bytes());
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f
                    .read(&mut buf)
                    .with_context(|| format!("reading {}", p.display()))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        }
        for (len, name) in listed {
            field(&mut h, name.as_bytes());
            h.update(len.to_le_bytes());
        }
        let seed: [u8; 32] = h.finalize().into();
        Ok(Stamp {
            tag: hex::encode(&seed[..8]),
            epoch,
            seed,
        })
    }

    /// 16 bytes for `what` (a GUID's or serial's purpose), from the seed.
    fn bytes(&self, what: &str) -> [u8; 16] {
        let mut h = Sha256::new();
        h.update(self.seed);
        h.update(what.as_bytes());
        let d = h.finalize();
        let mut b = [0u8; 16];
        b.copy_from_slice(&d[..16]);
        b
    }

    /// A GUID in the form sfdisk and mke2fs take, shaped as an RFC 9562
    /// version 4 UUID (version nibble 4, variant bits 10) so that tools
    /// that check the form accept it; the "random" bits are from the hash.
    pub fn guid(&self, what: &str) -> String {
        let mut b = self.bytes(what);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = hex::encode_upper(b);
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }

    /// A FAT volume serial (mkfs.fat(8) `-i`: 32 bits in hex).
    pub fn fat_serial(&self, what: &str) -> String {
        hex::encode_upper(&self.bytes(what)[..4])
    }

    /// `SOURCE_DATE_EPOCH` for the tools that honour it (xorriso(1)
    /// "ENVIRONMENT": volume dates, GPT GUIDs, the boot catalogue's "now";
    /// mtools, whose mmd/mcopy (4.0.32 on Debian 12) otherwise date what
    /// they write with the clock, as do syslinux's installer through them)
    /// and `E2FSPROGS_FAKE_TIME`, the clock e2fsprogs' mke2fs uses for
    /// every time stamp it writes (mke2fs 1.47.0 of Debian 12 ignores
    /// SOURCE_DATE_EPOCH). `media::reproducible` tests check all of them.
    pub fn on(&self, cmd: Cmd) -> Cmd {
        let t = self.epoch.to_string();
        cmd.env("SOURCE_DATE_EPOCH", &t)
            .env("E2FSPROGS_FAKE_TIME", &t)
    }
}

#[cfg(test)]
mod tests {
    use super::super::bootcfg::MenuSpec;
    use super::*;

    fn menu(kernel: &str) -> Menu {
        Menu::new(&MenuSpec {
            hostname: "db1",
            os: "Debian GNU/Linux 12 (bookworm)",
            kernel_version: kernel,
            date: None,
            timeout: 30,
            test_rescue_default: false,
        })
    }

    #[test]
    fn tag_follows_the_content_not_the_build() {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("vmlinuz");
        let i = dir.path().join("initrd.img");
        std::fs::write(&k, b"kernel").unwrap();
        std::fs::write(&i, b"initrd one").unwrap();
        let m = menu("6.1.0-18-amd64");
        let stamp = |kind, m: &Menu, epoch| Stamp::new(kind, m, &[&k, &i], &[], epoch).unwrap();
        let a = stamp("iso", &m, 1);
        // Same content later: the same tag, GUIDs and serials.
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(stamp("iso", &m, 1), a);
        assert_eq!(a.tag.len(), 16);
        // Each change of content is a new tag.
        assert_ne!(stamp("usb", &m, 1).tag, a.tag);
        assert_ne!(stamp("iso", &m, 2).tag, a.tag);
        assert_ne!(stamp("iso", &menu("6.1.0-19-amd64"), 1).tag, a.tag);
        let listed = Stamp::new("iso", &m, &[&k, &i], &[(5, "backup/a.tar.zst")], 1).unwrap();
        assert_ne!(listed.tag, a.tag);
        std::fs::write(&i, b"initrd two").unwrap();
        assert_ne!(stamp("iso", &m, 1).tag, a.tag);
    }

    #[test]
    fn epochs_outside_fat_dates_are_refused() {
        assert!(check_epoch(crate::config::DEFAULT_EPOCH).is_ok());
        for bad in [0, 315_532_799, 4_354_819_200] {
            let e = check_epoch(bad).unwrap_err().to_string();
            assert!(e.contains("SOURCE_DATE_EPOCH"), "{e}");
        }
    }

    #[test]
    fn guids_are_distinct_and_version_4_shaped() {
        let s = Stamp::new("usb", &menu("6.1"), &[], &[], 1).unwrap();
        let disk = s.guid("disk");
        assert_ne!(disk, s.guid("esp"));
        assert_eq!(disk.len(), 36);
        assert_eq!(&disk[14..15], "4");
        assert!(matches!(&disk[19..20], "8" | "9" | "A" | "B"), "{disk}");
        assert_eq!(s.fat_serial("esp").len(), 8);
    }
}
