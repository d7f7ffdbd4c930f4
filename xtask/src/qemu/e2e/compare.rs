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

/// Where recover keeps the original of a network file it rewrote for
/// other NICs, in the restored system (mkrescue::recover::nic::ORIG_DIR).
pub(super) const NIC_ORIG: &str = "/var/lib/mkrescue/recover-orig";

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
    // The network files recover rewrote for a NIC of another MAC or name
    // keep their original under /var/lib/mkrescue/recover-orig/ (outside
    // the directories the network stacks read; src/recover/nic).
    let nic_orig = |p: &[u8]| {
        let mut o = NIC_ORIG.as_bytes().to_vec();
        o.extend_from_slice(p);
        o
    };
    let rewritten = |p: &[u8], b: &Entry| {
        [orig(p), nic_orig(p)].iter().any(|o| {
            after
                .get(o)
                .is_some_and(|o| o.sha.is_some() && o.sha == b.sha)
        })
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

/// The sizes recover's plan chose for smaller disks (issue 18,
/// recover::plan::fit): its `size KIND DEVICE: OLD -> NEW (...)` lines
/// (`mkrescue: size ...` before the first step, `mkrescue:   size ...` in
/// the summary, `# size ...` in a dry run), device (as the layout named
/// it) -> the new size in bytes, as precise as the line's one decimal.
pub(super) fn fitted_sizes(recover_log: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for l in recover_log.lines() {
        let t = l.trim();
        let t = t.strip_prefix("mkrescue:").unwrap_or(t).trim_start();
        let t = t.strip_prefix('#').unwrap_or(t).trim_start();
        let Some(rest) = t.strip_prefix("size ") else {
            continue;
        };
        let Some(rest) = ["partition ", "md array ", "logical volume "]
            .iter()
            .find_map(|k| rest.strip_prefix(k))
        else {
            continue;
        };
        let Some((dev, sizes)) = rest.split_once(": ") else {
            continue;
        };
        let Some((_, new)) = sizes.split_once(" -> ") else {
            continue;
        };
        // `3.4 GiB (member of /dev/md0)`: the number and its unit.
        let mut w = new.split_whitespace();
        if let (Some(n), Some(u)) = (w.next(), w.next())
            && let Some(b) = human_bytes(n, u)
        {
            out.insert(dev.to_string(), b);
        }
    }
    out
}

/// `3.4` `GiB` (mkrescue::layout::show::human) in bytes.
fn human_bytes(n: &str, unit: &str) -> Option<u64> {
    let n: f64 = n.parse().ok()?;
    let shift = match unit {
        "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        "TiB" => 40,
        _ => return None,
    };
    Some((n * (1u64 << shift) as f64) as u64)
}

/// Whether `got` bytes is the size `said` (from a line that shows one
/// decimal of its unit, [`human_bytes`]): within a tenth of that unit, or
/// 2 % (LVM extents and md's rounding of a member to its chunk).
fn same_size(got: u64, said: u64) -> bool {
    let unit = [40u32, 30, 20, 10]
        .into_iter()
        .map(|s| 1u64 << s)
        .find(|u| said >= *u)
        .unwrap_or(1);
    let tol = (unit / 10).max(said / 50);
    got.abs_diff(said) <= tol
}

/// The layout diff's `~ KEY: OLD -> NEW` lines that are a size recover
/// shrank by design onto smaller disks (`--disks smaller`): KEY ends in
/// `.size`, NEW is below OLD, and the device it names (the last `[...]` of
/// KEY) is one recover's log says it fitted to that size ([`fitted_sizes`],
/// names as `renamed` maps them), or a PV that fills a device so fitted,
/// or holds a file system whose used bytes (`before`'s layout) it still
/// holds. `after` gives partition sizes' sector size.
pub(super) fn shrunk_by_design(
    line: &str,
    fitted: &BTreeMap<String, u64>,
    before: &mkrescue::layout::Layout,
    after: &mkrescue::layout::Layout,
) -> bool {
    let Some(rest) = line.strip_prefix("~ ") else {
        return false;
    };
    let Some((key, vals)) = rest.split_once(": ") else {
        return false;
    };
    let Some((old, new)) = vals.split_once(" -> ") else {
        return false;
    };
    let (Ok(old), Ok(new)) = (old.trim().parse::<u64>(), new.trim().parse::<u64>()) else {
        return false;
    };
    if !key.ends_with(".size") || new >= old {
        return false;
    }
    let Some(dev) = key
        .rfind('[')
        .and_then(|i| key[i + 1..].split(']').next())
        .map(str::to_string)
    else {
        return false;
    };
    // Partitions count sectors, the rest bytes.
    let bytes = if key.contains(".partitions[") {
        let sector = after
            .disks
            .iter()
            .find(|d| d.partitions.iter().any(|p| p.path == dev))
            .map(|d| d.logical_sector_size)
            .unwrap_or(512);
        new * sector
    } else {
        new
    };
    // An LV is `vg/lv` in the key, `/dev/vg/lv` in the log.
    let said = |d: &str| {
        fitted
            .get(d)
            .or_else(|| fitted.get(&format!("/dev/{d}")))
            .copied()
    };
    if let Some(s) = said(&dev) {
        return same_size(bytes, s);
    }
    if key.starts_with("lvm.pvs[") {
        // A PV is as big as its device, which the plan fitted.
        let under = after
            .md
            .iter()
            .find(|m| m.path == dev)
            .map(|m| m.size)
            .or_else(|| {
                after
                    .disks
                    .iter()
                    .flat_map(|d| d.partitions.iter().map(move |p| (p, d.logical_sector_size)))
                    .find(|(p, _)| p.path == dev)
                    .map(|(p, s)| p.size * s)
            });
        return under.is_some_and(|u| bytes <= u) && fitted_under(&dev, fitted, after);
    }
    let lv_path = format!("/dev/{dev}");
    before
        .filesystems
        .iter()
        .find(|f| f.device == dev || f.device == lv_path)
        .and_then(|f| f.used_bytes)
        .is_some_and(|used| bytes >= used)
}

/// Whether the device `dev` is one the plan fitted, or an md array whose
/// members it fitted.
fn fitted_under(
    dev: &str,
    fitted: &BTreeMap<String, u64>,
    after: &mkrescue::layout::Layout,
) -> bool {
    fitted.contains_key(dev)
        || after
            .md
            .iter()
            .find(|m| m.path == dev)
            .is_some_and(|m| m.devices.iter().any(|d| fitted.contains_key(d)))
}

/// `mkrescue layout save` before and after must agree, except for what
/// belongs to the new disks themselves (size, serial, WWN, model, ids), and
/// the new names of disks recover mapped elsewhere (`renamed`, see
/// [`renames`]); then the devices left alone (`excluded`: the backup disk)
/// have new names too, and are not compared. With `fitted` (`--disks
/// smaller`: [`fitted_sizes`] of recover's log, named as `renamed` maps
/// them) the sizes recover shrank by design pass too
/// ([`shrunk_by_design`]); everything else is still compared.
pub(super) fn compare_layouts(
    before: &Path,
    after: &Path,
    renamed: &BTreeMap<String, String>,
    fitted: Option<&BTreeMap<String, u64>>,
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
            let shrunk = fitted.is_some_and(|f| shrunk_by_design(l, f, &b, &a));
            !is_disk_own && !grew && !shrunk
        })
        .map(|l| format!("layout: {l}"))
        .collect())
}

/// One link of `ip -j addr show`: what the network check reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Link {
    pub(super) name: String,
    /// Lower case.
    pub(super) mac: String,
    /// `UP` and `LOWER_UP` among its flags: up, with carrier.
    pub(super) up: bool,
    /// IPv4 addresses with their prefix (`10.0.2.15/24`).
    pub(super) inet: Vec<String>,
}

/// The links of `ip -j addr show` (ip-address(8) with `-json`).
pub(super) fn links(ip_json: &str) -> Result<Vec<Link>> {
    let v: Vec<serde_json::Value> =
        serde_json::from_str(ip_json).context("parsing `ip -j addr show`")?;
    Ok(v.iter()
        .map(|l| {
            let flags: Vec<&str> = l["flags"]
                .as_array()
                .map(|f| f.iter().filter_map(|x| x.as_str()).collect())
                .unwrap_or_default();
            Link {
                name: l["ifname"].as_str().unwrap_or("").to_string(),
                mac: l["address"].as_str().unwrap_or("").to_ascii_lowercase(),
                up: flags.contains(&"UP") && flags.contains(&"LOWER_UP"),
                inet: l["addr_info"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter(|x| x["family"] == "inet")
                            .filter_map(|x| {
                                Some(format!("{}/{}", x["local"].as_str()?, x["prefixlen"]))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect())
}

/// The server's NIC `nic` with its static address `addr` in `links`.
pub(super) fn configured<'a>(links: &'a [Link], nic: &str, addr: &str) -> Option<&'a Link> {
    links
        .iter()
        .find(|l| l.name == nic && l.inet.iter().any(|a| a == addr))
}

/// The recovered server's network against what the server had: the NIC
/// named `nic` (by its MAC, server-etc.sh) up with the static address
/// `addr`, now with the replacement machine's MAC `mac`, and the gateway
/// answering (net.sh's `ping` file: `echo reply from GW`). One line per
/// problem.
pub(super) fn compare_network(
    after: &[Link],
    ping: &str,
    nic: &str,
    addr: &str,
    gw: &str,
    mac: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    let show = |ls: &[Link]| {
        ls.iter()
            .map(|l| format!("{} {} up={} {:?}", l.name, l.mac, l.up, l.inet))
            .collect::<Vec<_>>()
            .join("; ")
    };
    match after.iter().find(|l| l.name == nic) {
        None => out.push(format!(
            "network: no NIC named {nic} (links: {})",
            show(after)
        )),
        Some(l) => {
            if l.mac != mac.to_ascii_lowercase() {
                out.push(format!(
                    "network: {nic} has MAC {}, not the machine's {mac}",
                    l.mac
                ));
            }
            if !l.up {
                out.push(format!("network: {nic} is not up with carrier"));
            }
            if !l.inet.iter().any(|a| a == addr) {
                out.push(format!(
                    "network: {nic} has {:?}, not the static {addr}",
                    l.inet
                ));
            }
        }
    }
    let reply = format!("echo reply from {gw}");
    if !ping.lines().any(|l| l.trim() == reply) {
        out.push(format!(
            "network: the gateway {gw} did not answer: {}",
            ping.trim()
        ));
    }
    out
}

/// Recover's lines about the NICs (src/recover/nic: `nic OLD MAC -> NEW
/// MAC (why)`, its notes, and the network files finalize rewrote), from
/// its serial log, without the `mkrescue:` prefix; each once.
pub(super) fn nic_lines(recover_log: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in recover_log.lines() {
        let t = l.trim_end();
        let Some(t) = t.strip_prefix("mkrescue:") else {
            continue;
        };
        let t = t.trim_start();
        let t = t.strip_prefix("- ").unwrap_or(t);
        let nic = t.starts_with("nic ") || t.starts_with("nic:");
        let file = t.contains("rewritten for the new NICs");
        if (nic || file) && !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    }
    out
}

/// Whether recover's NIC lines ([`nic_lines`]) map `nic` with MAC
/// `old_mac` onto `new_mac` and rewrite a file for it: what `--nic
/// new-mac` must show.
pub(super) fn nic_mapped(
    lines: &[String],
    nic: &str,
    old_mac: &str,
    new_mac: &str,
) -> Result<(), String> {
    let head = format!("nic {nic} {old_mac} -> ");
    if !lines
        .iter()
        .any(|l| l.starts_with(&head) && l.contains(new_mac))
    {
        return Err(format!(
            "recover's log has no `{head}... {new_mac}` line; its NIC lines: {lines:?}"
        ));
    }
    if !lines
        .iter()
        .any(|l| l.contains("rewritten for the new NICs"))
    {
        return Err(format!(
            "recover's log names no network file rewritten for the new NIC; its NIC lines: {lines:?}"
        ));
    }
    Ok(())
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

    /// A network file recover rewrote for the new NIC, its original kept
    /// under /var/lib/mkrescue/recover-orig/ (issue 18).
    #[test]
    fn a_network_file_rewritten_for_the_new_nic_with_its_original_passes() {
        assert_eq!(NIC_ORIG, format!("/{}", mkrescue::recover::nic::ORIG_DIR));
        let f = "/etc/systemd/network/10-lan0.link";
        let before = list(&[(f, "a")]);
        let kept = format!("{NIC_ORIG}{f}");
        let after = list(&[(f, "b"), (kept.as_str(), "a")]);
        assert!(compare_lists(&before, &after, ALLOWED_TO_CHANGE, &[]).is_empty());
        // Another original: the file counts as changed.
        let after = list(&[(f, "b"), (kept.as_str(), "c")]);
        let p = compare_lists(&before, &after, ALLOWED_TO_CHANGE, &[]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("changed"), "{p:?}");
        // None kept.
        let p = compare_lists(&before, &list(&[(f, "b")]), ALLOWED_TO_CHANGE, &[]);
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

#[cfg(test)]
mod moved_tests {
    //! Issue 18's checks: sizes fitted onto smaller disks, the network on
    //! a NIC of another MAC, recover's NIC lines.
    use super::*;
    use mkrescue::layout::Layout;

    const GIB: f64 = (1u64 << 30) as f64;

    fn fixture() -> Layout {
        Layout::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/layout/e2e-raid1-lvm.json"
        )))
        .unwrap()
    }

    const FIT_LOG: &str = "mkrescue: size partition /dev/vda3: 5.8 GiB -> 3.3 GiB (member of /dev/md0)\n\
mkrescue: size partition /dev/vdb3: 5.8 GiB -> 3.3 GiB (member of /dev/md0)\n\
mkrescue: size md array /dev/md0: 5.8 GiB -> 3.3 GiB (LVM PV of vg0)\n\
mkrescue: size logical volume /dev/vg0/root: 3.0 GiB -> 1.8 GiB (ext4, 1.1 GiB used)\n\
mkrescue:   size logical volume /dev/vg0/home: 1.5 GiB -> 1.2 GiB (xfs, 40.0 MiB used)\n\
mkrescue: disk /dev/vda -> /dev/vda (same path)\n";

    /// The fixture shrunk as FIT_LOG says (partitions in sectors).
    fn shrunk() -> Layout {
        let mut a = fixture();
        let part = (3.3 * GIB) as u64 / 512;
        for d in a.disks.iter_mut() {
            d.size = (3.6 * GIB) as u64;
            d.partitions[2].size = part;
        }
        a.md[0].size = (3.3 * GIB) as u64 - (1 << 20);
        a.lvm.pvs[0].size = a.md[0].size - (4 << 20);
        for lv in a.lvm.lvs.iter_mut() {
            lv.size = match lv.name.as_str() {
                "root" => 1932735283,
                "home" => 1288490188,
                _ => lv.size,
            };
        }
        a
    }

    fn layouts(b: &Layout, a: &Layout, tag: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("xtask-fit-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (pb, pa) = (dir.join("before.json"), dir.join("after.json"));
        std::fs::write(&pb, serde_json::to_string(b).unwrap()).unwrap();
        std::fs::write(&pa, serde_json::to_string(a).unwrap()).unwrap();
        (pb, pa)
    }

    #[test]
    fn recovers_size_lines_are_read() {
        let f = fitted_sizes(FIT_LOG);
        assert_eq!(f.len(), 5, "{f:?}");
        assert_eq!(f["/dev/vg0/root"], (1.8 * GIB) as u64);
        assert_eq!(f["/dev/md0"], (3.3 * GIB) as u64);
        // A dry run's `# size` line too; a disk line is none.
        let d = fitted_sizes("# size logical volume /dev/vg0/home: 1.5 GiB -> 900.0 MiB (xfs)\n");
        assert_eq!(d["/dev/vg0/home"], 900 << 20);
        assert!(fitted_sizes("mkrescue: disk /dev/vda -> /dev/nvme0n1 (size)\n").is_empty());
        assert!(same_size(
            (1.8 * GIB) as u64 + (40 << 20),
            (1.8 * GIB) as u64
        ));
        assert!(!same_size((2.0 * GIB) as u64, (1.8 * GIB) as u64));
    }

    /// Smaller disks: the sizes the plan chose pass, any other difference
    /// (a size it did not choose, a UUID, a label) is still one.
    #[test]
    fn sizes_recover_fitted_pass_and_nothing_else() {
        let before = fixture();
        let after = shrunk();
        let fitted = fitted_sizes(FIT_LOG);
        let none = BTreeMap::new();
        let (pb, pa) = layouts(&before, &after, "ok");
        let p = compare_layouts(&pb, &pa, &none, Some(&fitted)).unwrap();
        assert!(p.is_empty(), "{p:?}");
        // Without `--disks smaller` every shrunk size is a difference.
        let p = compare_layouts(&pb, &pa, &none, None).unwrap();
        assert!(
            p.len() >= 5 && p.iter().all(|l| l.contains(".size")),
            "{p:?}"
        );
        // A size the log does not say.
        let mut wrong = shrunk();
        wrong.lvm.lvs[1].size = (1.0 * GIB) as u64;
        let (pb, pa) = layouts(&before, &wrong, "wrong");
        let p = compare_layouts(&pb, &pa, &none, Some(&fitted)).unwrap();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("lvm.lvs[vg0/root].size"), "{p:?}");
        // The rest is still compared.
        let mut label = shrunk();
        label.filesystems[1].label = Some("other".into());
        let (pb, pa) = layouts(&before, &label, "label");
        let p = compare_layouts(&pb, &pa, &none, Some(&fitted)).unwrap();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("label"), "{p:?}");
        // A bigger size is no fit onto smaller disks.
        let mut grew = fixture();
        grew.lvm.lvs[1].size += 1 << 30;
        let (pb, pa) = layouts(&before, &grew, "grew");
        assert_eq!(
            compare_layouts(&pb, &pa, &none, Some(&fitted))
                .unwrap()
                .len(),
            1
        );
    }

    /// A size no line names passes when it still holds the data.
    #[test]
    fn an_unnamed_size_passes_only_above_the_used_bytes() {
        let mut before = fixture();
        before.filesystems[1].used_bytes = Some(1 << 30);
        let a = fixture();
        let key_line =
            |new: u64| format!("~ lvm.lvs[vg0/root].size: {} -> {new}", a.lvm.lvs[1].size);
        let none = BTreeMap::new();
        assert!(shrunk_by_design(&key_line(3 << 29), &none, &before, &a));
        assert!(!shrunk_by_design(&key_line(1 << 29), &none, &before, &a));
        // Not a size, or not numbers: never.
        assert!(!shrunk_by_design(
            "~ lvm.lvs[vg0/root].uuid: a -> b",
            &none,
            &before,
            &a
        ));
        assert!(!shrunk_by_design(
            "- lvm.lvs[vg0/root].size: 5",
            &none,
            &before,
            &a
        ));
    }

    const IP_AFTER: &str = r#"[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"address":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
{"ifindex":2,"ifname":"lan0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"operstate":"UP","address":"52:54:00:12:34:02","addr_info":[{"family":"inet","local":"10.0.2.15","prefixlen":24},{"family":"inet6","local":"fe80::5054:ff:fe12:3402","prefixlen":64}]}]"#;

    #[test]
    fn the_nic_of_another_mac_has_the_servers_address() {
        let l = links(IP_AFTER).unwrap();
        assert_eq!(l[1].inet, ["10.0.2.15/24"]);
        assert!(configured(&l, "lan0", "10.0.2.15/24").is_some());
        let ping = "echo reply from 10.0.2.2\n";
        let ok = |mac: &str, ping: &str, ip: &str| {
            compare_network(
                &links(ip).unwrap(),
                ping,
                "lan0",
                "10.0.2.15/24",
                "10.0.2.2",
                mac,
            )
        };
        assert!(ok("52:54:00:12:34:02", ping, IP_AFTER).is_empty());
        // The server's MAC still on it: recover's rewrite did not reach it.
        let p = ok("52:54:00:12:34:01", ping, IP_AFTER);
        assert!(p.len() == 1 && p[0].contains("MAC"), "{p:?}");
        let p = ok(
            "52:54:00:12:34:02",
            "no echo reply from 10.0.2.2 within 5 s\n",
            IP_AFTER,
        );
        assert!(p.len() == 1 && p[0].contains("did not answer"), "{p:?}");
        // The NIC under another name (the .link no longer matched), no
        // address, down.
        let renamed = IP_AFTER.replace("lan0", "enp0s2");
        let p = ok("52:54:00:12:34:02", ping, &renamed);
        assert!(p.len() == 1 && p[0].contains("no NIC named lan0"), "{p:?}");
        let bare = IP_AFTER
            .replace(
                r#"{"family":"inet","local":"10.0.2.15","prefixlen":24},"#,
                "",
            )
            .replace(r#""UP","LOWER_UP"],"operstate""#, r#""UP"],"operstate""#);
        let p = ok("52:54:00:12:34:02", ping, &bare);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(links("not json").is_err());
    }

    #[test]
    fn recovers_nic_mapping_lines() {
        let log = "mkrescue: nic lan0 52:54:00:12:34:01 -> enp0s2 52:54:00:12:34:02 (same PCI slot)\n\
mkrescue: disk /dev/vda -> /dev/nvme0n1 (size)\n\
mkrescue:   - /etc/systemd/network/10-lan0.link: 1 line rewritten for the new NICs (original in /var/lib/mkrescue/recover-orig/etc/systemd/network/10-lan0.link)\n\
mkrescue:   - lan0 keeps the name lan0 the restored system pins to its MAC (not enp0s2)\n\
mkrescue:   nic lan0 52:54:00:12:34:01 -> enp0s2 52:54:00:12:34:02 (same PCI slot)\n";
        let l = nic_lines(log);
        assert_eq!(l.len(), 2, "{l:?}");
        assert!(nic_mapped(&l, "lan0", "52:54:00:12:34:01", "52:54:00:12:34:02").is_ok());
        assert!(nic_mapped(&l, "lan0", "52:54:00:12:34:01", "52:54:00:12:34:09").is_err());
        let kept = nic_lines("mkrescue: nic: lan0 52:54:00:12:34:01 has no NIC here to go to\n");
        let e = nic_mapped(&kept, "lan0", "52:54:00:12:34:01", "52:54:00:12:34:02").unwrap_err();
        assert!(e.contains("no `nic lan0"), "{e}");
        // Mapped, but no file rewritten.
        let only: Vec<String> = l.into_iter().take(1).collect();
        assert!(nic_mapped(&only, "lan0", "52:54:00:12:34:01", "52:54:00:12:34:02").is_err());
    }
}
