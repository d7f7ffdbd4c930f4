//! The recovered server against the one backed up: the file-by-file
//! lists (sha256, owner, mode, xattrs), blkid's UUIDs and the saved
//! layouts, with the paths allowed to change by design.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::state::BACKUP_UUID;

/// Paths that change between the backup and the check boot by design:
/// logs and systemd state of later boots, the boot loader files and
/// initramfs that recover reinstalls, LVM's metadata archive, mkrescue's
/// own state, shell history. A prefix ending in `/` means "under".
pub(super) const ALLOWED_TO_CHANGE: &[&str] = &[
    "/var/log/",
    "/var/lib/systemd/",
    "/var/cache/",
    "/var/lib/initramfs-tools/",
    "/boot/grub/",
    "/boot/initrd.img-",
    "/etc/lvm/archive/",
    "/etc/lvm/backup/",
    "/var/lib/mkrescue/",
    "/root/.bash_history",
];

/// What the dracut-sdboot server itself rewrites at every boot, on top of
/// [`ALLOWED_TO_CHANGE`]: systemd-boot's random seed on the ESP (the boot
/// loader refreshes it each boot, bootctl install too; systemd-boot(7),
/// "random-seed"), and /etc/machine-id, written again from the
/// `systemd.machine_id=` that kernel-install put on the entry's command
/// line (same content, new mtime).
pub(super) const SDBOOT_ALLOWED_TO_CHANGE: &[&str] =
    &["/boot/loader/random-seed", "/etc/machine-id"];

/// Paths recover may add but never remove or alter: the UEFI boot loader
/// that finalize installs onto every ESP (grub-install x86_64-efi on the
/// removable path \EFI\BOOT\BOOTX64.EFI and \EFI\debian), so the recovered
/// server also boots on UEFI replacement hardware although the original
/// booted by BIOS with an empty ESP. Files that were on the ESP before
/// must still be there unchanged.
pub(super) const ALLOWED_NEW: &[&str] = &["/boot/efi/EFI/"];

/// One file of a list: what is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) kind: String,
    pub(super) mode: String,
    pub(super) owner: String,
    /// Regular files only (directory sizes depend on the file system's
    /// history).
    pub(super) size: Option<String>,
    /// Whole seconds, regular files only.
    pub(super) mtime: Option<String>,
    pub(super) link: String,
    pub(super) sha: Option<String>,
    pub(super) xattrs: BTreeMap<String, String>,
    /// Hard links: the other paths of the same inode (regular files).
    pub(super) nlink: String,
    pub(super) inode: String,
}

pub(super) type List = BTreeMap<Vec<u8>, Entry>;

/// Reads DIR.meta, DIR.sha and DIR.xattr written by tests/qemu/e2e/list.sh.
pub(super) fn load_list(base: &Path) -> Result<List> {
    let ext = |e: &str| PathBuf::from(format!("{}.{e}", base.display()));
    let meta =
        std::fs::read(ext("meta")).with_context(|| format!("reading {}.meta", base.display()))?;
    let mut list = List::new();
    let mut parts = meta.split(|b| *b == 0);
    while let (Some(path), Some(fields), Some(link)) = (parts.next(), parts.next(), parts.next()) {
        if path.is_empty() {
            break;
        }
        let f: Vec<&str> = std::str::from_utf8(fields)
            .context("list fields")?
            .split(' ')
            .collect();
        anyhow::ensure!(f.len() == 8, "bad list line in {}.meta", base.display());
        let file = f[0] == "f";
        list.insert(
            path.to_vec(),
            Entry {
                kind: f[0].into(),
                mode: f[1].into(),
                owner: format!("{}:{}", f[2], f[3]),
                size: file.then(|| f[4].to_string()),
                mtime: file.then(|| f[5].split('.').next().unwrap_or("").to_string()),
                link: String::from_utf8_lossy(link).into_owned(),
                sha: None,
                xattrs: BTreeMap::new(),
                nlink: if f[0] == "d" {
                    String::new()
                } else {
                    f[6].into()
                },
                inode: f[7].into(),
            },
        );
    }
    let sha =
        std::fs::read(ext("sha")).with_context(|| format!("reading {}.sha", base.display()))?;
    for rec in sha.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        // sha256sum --zero: "HEX  NAME" (binary mode: "HEX *NAME"), no escaping.
        if rec.len() < 66 {
            bail!("bad sha256sum record in {}.sha", base.display());
        }
        let hex = String::from_utf8_lossy(&rec[..64]).into_owned();
        let name = &rec[66..];
        if let Some(e) = list.get_mut(name) {
            e.sha = Some(hex);
        }
    }
    let xattr = std::fs::read(ext("xattr")).unwrap_or_default();
    let mut cur: Option<Vec<u8>> = None;
    for line in xattr.split(|b| *b == b'\n') {
        if let Some(n) = line.strip_prefix(b"# file: ") {
            cur = Some(unescape_octal(n));
        } else if let (Some(c), Some(eq)) = (&cur, line.iter().position(|b| *b == b'=')) {
            let k = String::from_utf8_lossy(&line[..eq]).into_owned();
            let v = String::from_utf8_lossy(&line[eq + 1..]).into_owned();
            if let Some(e) = list.get_mut(c) {
                e.xattrs.insert(k, v);
            }
        }
    }
    // Inode numbers differ after a restore; what must hold is which paths
    // share one. Replace the inode by the group's first path.
    let mut groups: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (p, e) in &list {
        if e.kind == "f" && e.nlink != "1" {
            groups.entry(e.inode.clone()).or_insert_with(|| p.clone());
        }
    }
    for e in list.values_mut() {
        e.inode = match groups.get(&e.inode) {
            Some(first) if e.kind == "f" && e.nlink != "1" => {
                String::from_utf8_lossy(first).into_owned()
            }
            _ => String::new(),
        };
    }
    Ok(list)
}

/// getfattr(1) escapes unprintable bytes of names as `\ooo`.
pub(super) fn unescape_octal(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\'
            && i + 4 <= s.len()
            && s[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (s[i + 1] - b'0') as u32 * 64
                + (s[i + 2] - b'0') as u32 * 8
                + (s[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

pub(super) fn only_under(list: &List, roots: &[&str]) -> List {
    list.iter()
        .filter(|(p, _)| {
            roots
                .iter()
                .any(|r| p.as_slice() == r.as_bytes() || p.starts_with(format!("{r}/").as_bytes()))
        })
        .map(|(p, e)| (p.clone(), e.clone()))
        .collect()
}

/// Differences between two lists, one line each (at most 40 shown).
pub(super) fn compare_lists(
    before: &List,
    after: &List,
    allowed: &[&str],
    allowed_new: &[&str],
) -> Vec<String> {
    // "X/" covers the directory X itself and everything under it.
    let under = |p: &[u8], list: &[&str]| {
        let s = String::from_utf8_lossy(p);
        list.iter()
            .any(|a| s.starts_with(a) || a.strip_suffix('/') == Some(&*s))
    };
    // `/boot/efi/EFI` itself is new when the ESP was empty before.
    let new_ok = |p: &[u8]| under(p, allowed_new);
    let ok = |p: &[u8]| under(p, allowed);
    // A file recover rewrote, documented by the original kept next to it
    // as F.mkrescue-orig (fstab for new disk names, the initramfs tool's
    // modules list for a new disk driver): both are expected when the
    // original is byte for byte what F was.
    let orig = |p: &[u8]| {
        let mut o = p.to_vec();
        o.extend_from_slice(b".mkrescue-orig");
        o
    };
    let rewritten = |p: &[u8], b: &Entry| {
        after
            .get(&orig(p))
            .is_some_and(|o| o.sha.is_some() && o.sha == b.sha)
    };
    let mut out = Vec::new();
    for (p, b) in before {
        if ok(p) || rewritten(p, b) {
            continue;
        }
        let name = String::from_utf8_lossy(p);
        match after.get(p) {
            None => out.push(format!("missing {name:?}")),
            Some(a) if a != b => out.push(format!("changed {name:?}: {}", entry_diff(b, a))),
            _ => {}
        }
    }
    let kept_orig = |p: &[u8]| {
        p.strip_suffix(b".mkrescue-orig".as_slice())
            .and_then(|f| before.get(f).map(|b| rewritten(f, b)))
            .unwrap_or(false)
    };
    for p in after.keys() {
        if !ok(p) && !new_ok(p) && !before.contains_key(p) && !kept_orig(p) {
            out.push(format!("new {:?}", String::from_utf8_lossy(p)));
        }
    }
    let n = out.len();
    if n > 40 {
        out.truncate(40);
        out.push(format!("... and {} more", n - 40));
    }
    out
}

pub(super) fn entry_diff(b: &Entry, a: &Entry) -> String {
    let mut d = Vec::new();
    macro_rules! cmp {
        ($f:ident) => {
            if b.$f != a.$f {
                d.push(format!("{} {:?} -> {:?}", stringify!($f), b.$f, a.$f));
            }
        };
    }
    cmp!(kind);
    cmp!(mode);
    cmp!(owner);
    cmp!(size);
    cmp!(mtime);
    cmp!(link);
    cmp!(sha);
    cmp!(xattrs);
    cmp!(nlink);
    cmp!(inode);
    d.join(", ")
}

/// blkid -o export blocks: every file system, swap, md member and PV of
/// before must be there after with the same UUID, LABEL and TYPE. Member
/// UUIDs (UUID_SUB) and partition UUIDs belong to the new disks.
pub(super) fn compare_blkid(before: &str, after: &str) -> Vec<String> {
    fn parse(t: &str) -> Vec<BTreeMap<String, String>> {
        t.split("\n\n")
            .map(|b| {
                b.lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>()
            })
            .filter(|m| m.contains_key("TYPE"))
            .collect()
    }
    let a = parse(after);
    let mut out = Vec::new();
    for b in parse(before) {
        if b.get("UUID").map(String::as_str) == Some(BACKUP_UUID) {
            continue;
        }
        let Some(uuid) = b.get("UUID") else { continue };
        let found = a.iter().find(|x| {
            x.get("UUID") == Some(uuid)
                && x.get("TYPE") == b.get("TYPE")
                && x.get("LABEL") == b.get("LABEL")
        });
        if found.is_none() {
            out.push(format!(
                "blkid: no {} with UUID {uuid} and label {:?} after recovery (was {})",
                b["TYPE"],
                b.get("LABEL").map(String::as_str).unwrap_or(""),
                b.get("DEVNAME").map(String::as_str).unwrap_or("?")
            ));
        }
    }
    out
}

/// The disks recover mapped to other names (`mkrescue: disk SRC -> DST
/// (why)` in its serial log), with their partitions: the names the
/// recovered server's layout has for the disks of the old one.
pub(super) fn renames(
    recover_log: &str,
    before: &mkrescue::layout::Layout,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for l in recover_log.lines() {
        let Some(rest) = l.trim_end().strip_prefix("mkrescue: disk ") else {
            continue;
        };
        let w: Vec<&str> = rest.split_whitespace().collect();
        if let [src, "->", dst, ..] = w.as_slice()
            && src != dst
        {
            out.insert(src.to_string(), dst.to_string());
            for d in before.disks.iter().filter(|d| d.path == *src) {
                for p in &d.partitions {
                    out.insert(p.path.clone(), mkrescue::layout::part_path(dst, p.number));
                }
            }
        }
    }
    out
}

/// `mkrescue layout save` before and after must agree, except for what
/// belongs to the new disks themselves (size, serial, WWN, model, ids), and
/// the new names of disks recover mapped elsewhere (`renamed`, see
/// [`renames`]); then the devices left alone (`excluded`: the backup disk)
/// have new names too, and are not compared.
pub(super) fn compare_layouts(
    before: &Path,
    after: &Path,
    renamed: &BTreeMap<String, String>,
) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(before).with_context(|| format!("reading {}", before.display()))?;
    let text = mkrescue::recover::finalize::rewrite_devices(&text, renamed).unwrap_or(text);
    let mut b = mkrescue::layout::Layout::from_json(&text)
        .map_err(|e| anyhow::anyhow!("{} with the disks renamed: {e}", before.display()))?;
    let mut a = mkrescue::layout::Layout::load(after)?;
    if !renamed.is_empty() {
        b.excluded.clear();
        a.excluded.clear();
    }
    let disk_fields = ["size", "serial", "wwn", "model", "by_path", "disk_id"];
    // A disk that got bigger may have its last partition grown onto it
    // (recover.resize = "last", the default).
    let grown: Vec<String> = b
        .disks
        .iter()
        .filter(|d| a.disks.iter().any(|x| x.path == d.path && x.size > d.size))
        .map(|d| format!("disks[{}].partitions[", d.path))
        .collect();
    Ok(mkrescue::layout::diff(&b, &a)
        .into_iter()
        .filter(|l| {
            let key = l[2..].split(':').next().unwrap_or("");
            // Keys look like `disks[/dev/vda].serial`.
            let is_disk_own = key.starts_with("disks[")
                && !key.contains(".partitions")
                && disk_fields.iter().any(|f| key.ends_with(&format!(".{f}")));
            let grew = grown.iter().any(|g| key.starts_with(g.as_str()))
                && (key.ends_with(".size") || key.ends_with(".end"));
            !is_disk_own && !grew
        })
        .map(|l| format!("layout: {l}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sha: &str) -> Entry {
        Entry {
            kind: "f".into(),
            mode: "644".into(),
            owner: "0:0".into(),
            size: Some("1".into()),
            mtime: Some("0".into()),
            link: String::new(),
            sha: Some(sha.into()),
            xattrs: BTreeMap::new(),
            nlink: "1".into(),
            inode: "1".into(),
        }
    }

    fn list(items: &[(&str, &str)]) -> List {
        items
            .iter()
            .map(|(p, s)| (p.as_bytes().to_vec(), entry(s)))
            .collect()
    }

    #[test]
    fn a_rewrite_recover_documents_with_the_original_passes() {
        let before = list(&[("/etc/initramfs-tools/modules", "a")]);
        let after = list(&[
            ("/etc/initramfs-tools/modules", "b"),
            ("/etc/initramfs-tools/modules.mkrescue-orig", "a"),
        ]);
        assert!(compare_lists(&before, &after, &[], &[]).is_empty());
        // The kept original is not what the file was: both reported.
        let wrong = list(&[
            ("/etc/initramfs-tools/modules", "b"),
            ("/etc/initramfs-tools/modules.mkrescue-orig", "c"),
        ]);
        let p = compare_lists(&before, &wrong, &[], &[]);
        assert_eq!(p.len(), 2, "{p:?}");
        // No original kept: a change like any other.
        let p = compare_lists(
            &before,
            &list(&[("/etc/initramfs-tools/modules", "b")]),
            &[],
            &[],
        );
        assert_eq!(p.len(), 1, "{p:?}");
    }

    #[test]
    fn disks_renamed_by_recover_from_its_log() {
        let before = mkrescue::layout::Layout::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/layout/layout2.json"
        )))
        .unwrap();
        let log = "mkrescue: disk /dev/vdc -> /dev/nvme0n1 (every free disk is used; the smallest that holds it)\n\
mkrescue: disk /dev/vdd -> /dev/vdd (same path and size)\n";
        let r = renames(log, &before);
        assert_eq!(r["/dev/vdc"], "/dev/nvme0n1");
        assert_eq!(r["/dev/vdc2"], "/dev/nvme0n1p2");
        assert!(!r.contains_key("/dev/vdd"));
        assert!(renames("", &before).is_empty());
    }

    #[test]
    fn files_recover_adds_to_the_esp_pass_but_esp_files_must_not_change_or_vanish() {
        let before = list(&[("/boot/efi/EFI/old.efi", "a"), ("/etc/x", "b")]);
        let after = list(&[
            ("/boot/efi/EFI", "d"),
            ("/boot/efi/EFI/old.efi", "a"),
            ("/boot/efi/EFI/BOOT/BOOTX64.EFI", "c"),
            ("/etc/x", "b"),
        ]);
        assert!(compare_lists(&before, &after, ALLOWED_TO_CHANGE, ALLOWED_NEW).is_empty());
        // An empty ESP before: \EFI itself is new too.
        let empty = list(&[("/etc/x", "b")]);
        let filled = list(&[
            ("/boot/efi/EFI", "d"),
            ("/boot/efi/EFI/BOOT/BOOTX64.EFI", "c"),
            ("/etc/x", "b"),
        ]);
        assert!(compare_lists(&empty, &filled, ALLOWED_TO_CHANGE, ALLOWED_NEW).is_empty());
        let sibling = list(&[("/boot/efi/EFIX", "d"), ("/etc/x", "b")]);
        let p = compare_lists(&empty, &sibling, ALLOWED_TO_CHANGE, ALLOWED_NEW);
        assert_eq!(p, vec!["new \"/boot/efi/EFIX\"".to_string()]);

        let changed = list(&[("/boot/efi/EFI/old.efi", "z"), ("/etc/x", "b")]);
        let p = compare_lists(&before, &changed, ALLOWED_TO_CHANGE, ALLOWED_NEW);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("changed \"/boot/efi/EFI/old.efi\""),
            "{p:?}"
        );

        let gone = list(&[("/boot/efi/EFI/BOOT/BOOTX64.EFI", "c"), ("/etc/x", "b")]);
        let p = compare_lists(&before, &gone, ALLOWED_TO_CHANGE, ALLOWED_NEW);
        assert_eq!(p, vec!["missing \"/boot/efi/EFI/old.efi\"".to_string()]);

        // A new file anywhere else is still reported.
        let extra = list(&[
            ("/boot/efi/EFI/old.efi", "a"),
            ("/etc/x", "b"),
            ("/etc/y", "d"),
        ]);
        let p = compare_lists(&before, &extra, ALLOWED_TO_CHANGE, ALLOWED_NEW);
        assert_eq!(p, vec!["new \"/etc/y\"".to_string()]);
    }
}
