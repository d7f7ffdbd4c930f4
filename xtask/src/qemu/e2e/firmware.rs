//! Issue 18's firmware conversion pair (`--scenario bios-mbr`, `uefi-gpt`):
//! what recover's serial log says it added and resized for the firmware
//! of the replacement machine, and after's checks of it: the firmware the
//! recovered server booted with, the fstab line of a new ESP, and the
//! layout differences that the conversion explains (and no others).

use std::collections::BTreeSet;

use super::variant::{BIOS_MBR, Firmware, UEFI_GPT};

/// What recover's serial log says about the conversion: the partitions
/// its `firmware:` lines added (`EFI system partition /dev/vda4 (...`,
/// `bios_grub partition /dev/vda5 (...`), the devices its `size` lines
/// resized to make room, and the fstab lines finalize appended.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Converted {
    pub(super) added: Vec<String>,
    pub(super) resized: Vec<String>,
    pub(super) fstab: Vec<String>,
    /// The `firmware:` lines, for the report.
    pub(super) lines: Vec<String>,
}

/// Reads [`Converted`] out of recover's serial log `text`.
pub(super) fn converted(text: &str) -> Converted {
    let mut c = Converted::default();
    for l in text.lines().map(str::trim_end) {
        // The lines come twice: before the run (`mkrescue: firmware: ...`)
        // and in the report at the end (`mkrescue:   firmware: ...`).
        let Some(rest) = l.strip_prefix("mkrescue:") else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(f) = rest.strip_prefix("firmware: ") {
            if !c.lines.iter().any(|x| x == rest) {
                c.lines.push(rest.to_string());
            }
            for what in ["EFI system partition ", "bios_grub partition "] {
                if let Some(p) = f.strip_prefix(what).and_then(|r| r.split(' ').next())
                    && !c.added.iter().any(|x| x == p)
                {
                    c.added.push(p.to_string());
                }
            }
        } else if let Some(s) = rest.strip_prefix("size ") {
            // `size partition /dev/vda3: 2.7 GiB -> 2.2 GiB (ext4, ...)`.
            if let Some(dev) = s.split(' ').nth(1).and_then(|d| d.strip_suffix(':'))
                && !c.resized.iter().any(|x| x == dev)
            {
                c.resized.push(dev.to_string());
            }
        } else if let Some(f) = rest.strip_prefix("- /etc/fstab: ") {
            // `/etc/fstab: LINE; LINE added for the new ESP (original in ...)`.
            if let Some((lines, _)) = f.split_once(" added for the new ESP") {
                for line in lines.split("; ") {
                    if !c.fstab.iter().any(|x| x == line) {
                        c.fstab.push(line.to_string());
                    }
                }
            }
        }
    }
    c
}

/// What `scenario` recovered under `firmware` must have added: an ESP for
/// bios-mbr under UEFI, a bios_grub partition for uefi-gpt under BIOS;
/// nothing when the firmware is the server's own.
pub(super) fn expected(scenario: &str, firmware: Firmware) -> Option<&'static str> {
    match (scenario, firmware) {
        (BIOS_MBR, Firmware::Uefi) => Some("EFI system partition"),
        (UEFI_GPT, Firmware::Bios) => Some("bios_grub partition"),
        _ => None,
    }
}

/// Paths of the file lists that may be new after the recovery: a new
/// ESP's whole tree (bios-mbr had none, so its mount point /boot/efi is
/// new too).
pub(super) fn allowed_new(scenario: &str, firmware: Firmware) -> &'static [&'static str] {
    if expected(scenario, firmware) == Some("EFI system partition") {
        &["/boot/efi/"]
    } else {
        &[]
    }
}

/// Paths that may change: uefi-gpt's GRUB on its ESP, which finalize
/// installs again (as /boot/grub/, [`super::compare::ALLOWED_TO_CHANGE`]).
pub(super) fn allowed_to_change(scenario: &str) -> &'static [&'static str] {
    if scenario == UEFI_GPT {
        &["/boot/efi/EFI/"]
    } else {
        &[]
    }
}

/// The problems of the conversion `c` for `scenario` under `firmware`,
/// with `booted` (check.sh's firmware.txt: `uefi` or `bios`), the
/// recovered fstab and the one recover kept (`orig`, when it kept one).
pub(super) fn check(
    scenario: &str,
    firmware: Firmware,
    c: &Converted,
    booted: &str,
    fstab: &str,
    orig: Option<&str>,
) -> Vec<String> {
    let mut out = Vec::new();
    let want = match firmware {
        Firmware::Uefi => "uefi",
        Firmware::Bios => "bios",
    };
    if booted.trim() != want {
        out.push(format!(
            "firmware: the recovered server booted by {:?}, not by {want}",
            booted.trim()
        ));
    }
    let lines = || c.lines.join("\n");
    match expected(scenario, firmware) {
        Some(what) => {
            let n = c
                .lines
                .iter()
                .filter(|l| l.starts_with(&format!("firmware: {what} ")))
                .count();
            if n != 1 || c.added.len() != 1 {
                out.push(format!(
                    "firmware: recover added {n} {what}(s) (partitions {:?}), not one:\n{}",
                    c.added,
                    lines()
                ));
            }
        }
        None if !c.added.is_empty() => out.push(format!(
            "firmware: recover added {:?} under the server's own firmware:\n{}",
            c.added,
            lines()
        )),
        None => {}
    }
    // The fstab: the restored one, plus exactly the lines finalize said
    // it added (a new ESP's), nothing else.
    let entries = |t: &str| -> Vec<String> {
        t.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    let esp_added = expected(scenario, firmware) == Some("EFI system partition");
    match (orig, esp_added) {
        (Some(orig), true) => {
            let mut want = entries(orig);
            want.extend(c.fstab.iter().cloned());
            if entries(fstab) != want {
                out.push(format!(
                    "fstab: not the restored one plus the lines recover said it added ({:?}):\n{fstab}",
                    c.fstab
                ));
            }
            if !c
                .fstab
                .iter()
                .any(|l| l.split_whitespace().nth(1) == Some("/boot/efi"))
            {
                out.push(format!(
                    "fstab: recover added no /boot/efi line for the new ESP ({:?})",
                    c.fstab
                ));
            }
        }
        (None, true) => out.push("fstab: recover kept no /etc/fstab.mkrescue-orig".into()),
        (Some(_), false) => out.push(format!(
            "fstab: rewritten (an /etc/fstab.mkrescue-orig) though no ESP was added:\n{fstab}"
        )),
        (None, false) => {}
    }
    out
}

/// Whether a line of [`super::compare::compare_layouts`] (`layout: ~
/// disks[/dev/vda].partitions[/dev/vda3].size: A -> B`) is what the
/// conversion `c` explains: a partition it added (with its file system
/// and mount), or a size (and so the places after it) of a device it
/// resized to make room.
pub(super) fn explained(line: &str, c: &Converted) -> bool {
    let Some(body) = line.strip_prefix("layout: ") else {
        return false;
    };
    let key = body[2..].split(": ").next().unwrap_or("");
    let added: BTreeSet<&str> = c.added.iter().map(String::as_str).collect();
    let entry = |k: &str, list: &str| -> Option<String> {
        let at = k.find(&format!("{list}["))? + list.len() + 1;
        let end = k[at..].find(']')? + at;
        Some(k[at..end].to_string())
    };
    if let Some(p) = entry(key, "partitions").or_else(|| entry(key, "filesystems")) {
        if added.contains(p.as_str()) {
            return true;
        }
        let field = key.rsplit('.').next().unwrap_or("");
        // A partition after one that gave room moves: its start, on a
        // disk that got a partition.
        let disk = entry(key, "disks");
        if field == "start"
            && key.starts_with("disks[")
            && disk.is_some_and(|d| {
                c.added
                    .iter()
                    .any(|a| a.strip_prefix(d.as_str()).is_some_and(|n| !n.contains('/')))
            })
        {
            return true;
        }
        if c.resized.contains(&p) {
            // Its size, and for a file system what follows from it.
            return ["size", "end", "block_count", "blocks", "inode_count"].contains(&field);
        }
        return false;
    }
    // The new ESP's mount (`mounts[/boot/efi]`), added with it.
    if let Some(m) = entry(key, "mounts") {
        return m == "/boot/efi" && body.starts_with("+ ") && !added.is_empty();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines recover prints for bios-mbr under UEFI (mkrescue's
    /// formats: recover/mod.rs, plan/firmware.rs, finalize.rs add_fstab).
    const LOG: &str = "\
mkrescue: firmware: uefi (the rescue system booted by UEFI; the layout's system booted by BIOS: converting)
mkrescue: firmware: EFI system partition /dev/vda4 (512.0 MiB, MBR type 0xef, the disk stays MBR) added on /dev/vda, room made by shrinking the partitions that can give it (the size lines say how much); vfat UUID=65FA-B754, mounted at /boot/efi and added to /etc/fstab; GRUB for UEFI is installed onto it
mkrescue: size partition /dev/vda3: 2.7 GiB -> 2.2 GiB (ext4, 200 MiB used)
mkrescue: recover of e2e-server finished in 80.0s
mkrescue:   size partition /dev/vda3: 2.7 GiB -> 2.2 GiB (ext4, 200 MiB used)
mkrescue:   firmware: EFI system partition /dev/vda4 (512.0 MiB, MBR type 0xef, the disk stays MBR) added on /dev/vda, room made by shrinking the partitions that can give it (the size lines say how much); vfat UUID=65FA-B754, mounted at /boot/efi and added to /etc/fstab; GRUB for UEFI is installed onto it
mkrescue:   - /etc/fstab: UUID=65FA-B754 /boot/efi vfat umask=0077 0 1 added for the new ESP (original in /mnt/target/etc/fstab.mkrescue-orig)
";

    const ORIG: &str = "# written\nUUID=r / ext4 errors=remount-ro 0 1\nUUID=s none swap sw 0 0\n";

    fn recovered() -> String {
        format!(
            "{ORIG}# added by mkrescue recover: the EFI system partition it made for UEFI\nUUID=65FA-B754 /boot/efi vfat umask=0077 0 1\n"
        )
    }

    #[test]
    fn the_conversion_is_read_from_recovers_log() {
        let c = converted(LOG);
        assert_eq!(c.added, ["/dev/vda4"]);
        assert_eq!(c.resized, ["/dev/vda3"]);
        assert_eq!(c.fstab, ["UUID=65FA-B754 /boot/efi vfat umask=0077 0 1"]);
        assert_eq!(c.lines.len(), 2, "{:?}", c.lines);
        assert_eq!(
            converted("mkrescue: disk /dev/vda -> /dev/vda\n"),
            Converted::default()
        );
        let b = converted(
            "mkrescue: firmware: bios_grub partition /dev/vda5 (1007.0 KiB) added on /dev/vda, in the gap before the first partition (sectors 34..2047); GRUB for BIOS (i386-pc) is installed on /dev/vda\n",
        );
        assert_eq!(b.added, ["/dev/vda5"]);
    }

    #[test]
    fn bios_mbr_under_uefi_passes_only_with_its_esp_and_fstab_line() {
        let c = converted(LOG);
        let ok = check(
            BIOS_MBR,
            Firmware::Uefi,
            &c,
            "uefi\n",
            &recovered(),
            Some(ORIG),
        );
        assert!(ok.is_empty(), "{ok:?}");
        // Booted by BIOS after all (the disk kept its MBR boot code).
        let p = check(
            BIOS_MBR,
            Firmware::Uefi,
            &c,
            "bios\n",
            &recovered(),
            Some(ORIG),
        );
        assert_eq!(p.len(), 1, "{p:?}");
        // No ESP added.
        let none = Converted::default();
        let p = check(
            BIOS_MBR,
            Firmware::Uefi,
            &none,
            "uefi",
            &recovered(),
            Some(ORIG),
        );
        assert!(p.iter().any(|l| l.contains("added 0")), "{p:?}");
        // The fstab line missing, or another line changed.
        let p = check(BIOS_MBR, Firmware::Uefi, &c, "uefi", ORIG, Some(ORIG));
        assert_eq!(p.len(), 1, "{p:?}");
        let other = recovered().replace("errors=remount-ro", "defaults");
        assert_eq!(
            check(BIOS_MBR, Firmware::Uefi, &c, "uefi", &other, Some(ORIG)).len(),
            1
        );
        assert_eq!(
            check(BIOS_MBR, Firmware::Uefi, &c, "uefi", &recovered(), None).len(),
            1
        );
    }

    #[test]
    fn uefi_gpt_under_bios_gets_bios_grub_and_keeps_its_fstab() {
        let c = converted(
            "mkrescue: firmware: bios_grub partition /dev/vda5 (1007.0 KiB) added on /dev/vda, in the gap\n",
        );
        assert!(check(UEFI_GPT, Firmware::Bios, &c, "bios", ORIG, None).is_empty());
        assert_eq!(
            check(UEFI_GPT, Firmware::Bios, &c, "uefi", ORIG, None).len(),
            1
        );
        // An fstab rewritten without a new ESP is a problem.
        assert_eq!(
            check(
                UEFI_GPT,
                Firmware::Bios,
                &c,
                "bios",
                &recovered(),
                Some(ORIG)
            )
            .len(),
            1
        );
        // Under its own firmware nothing may be added.
        let p = check(UEFI_GPT, Firmware::Uefi, &c, "uefi", ORIG, None);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            check(
                UEFI_GPT,
                Firmware::Uefi,
                &Converted::default(),
                "uefi",
                ORIG,
                None
            )
            .is_empty()
        );
        assert_eq!(allowed_to_change(UEFI_GPT), ["/boot/efi/EFI/"]);
        assert!(allowed_new(UEFI_GPT, Firmware::Bios).is_empty());
        assert_eq!(allowed_new(BIOS_MBR, Firmware::Uefi), ["/boot/efi/"]);
        assert!(allowed_new(BIOS_MBR, Firmware::Bios).is_empty());
    }

    #[test]
    fn only_the_layout_changes_the_conversion_made_are_explained() {
        let c = converted(LOG);
        for l in [
            "layout: + disks[/dev/vda].partitions[/dev/vda4]: added",
            "layout: + filesystems[/dev/vda4]: added",
            "layout: + mounts[/boot/efi]: added",
            "layout: ~ disks[/dev/vda].partitions[/dev/vda3].size: 5767168 -> 4718592",
            "layout: ~ disks[/dev/vda].partitions[/dev/vda2].start: 6293504 -> 5871616",
        ] {
            assert!(explained(l, &c), "{l}");
        }
        for l in [
            "layout: ~ disks[/dev/vda].partitions[/dev/vda1].size: 1 -> 2",
            "layout: ~ disks[/dev/vda].partitions[/dev/vda3].type: 83 -> 82",
            "layout: ~ filesystems[/dev/vda1].uuid: a -> b",
            "layout: - mounts[/home]: removed",
            "layout: ~ disks[/dev/vda].table: msdos -> gpt",
            "layout: ~ disks[/dev/vdb].partitions[/dev/vdb2].start: 2048 -> 4096",
        ] {
            assert!(!explained(l, &c), "{l}");
        }
        // Nothing added: not even a /boot/efi mount.
        assert!(!explained(
            "layout: + mounts[/boot/efi]: added",
            &Converted::default()
        ));
    }
}
