//! What finalize must regenerate, and why (`initramfs = "auto"`,
//! `boot_menu = "auto"`).
//!
//! Recover recreates every UUID and label, so the restored initramfs and
//! grub.cfg usually fit the new disks as they are, and regenerating them is
//! most of finalize's time (update-initramfs in a chroot is minutes under
//! emulation). Each is regenerated only for a reason this module can name:
//!
//! - **initramfs**: finalize rewrote a file it embeds (fstab, crypttab,
//!   mdadm.conf, the resume config); a kernel of the restored system has no
//!   initramfs, or one this module cannot read; or a driver that the new
//!   disks under `/`, `/boot`, `/usr` and swap need is neither in the
//!   initramfs nor built into that kernel (`modules.builtin`). The drivers
//!   are the modules bound to each device in the rescue system's sysfs, from
//!   the volume down through dm and md to the disk and its controller
//!   ([`crate::sys::block`]).
//! - **grub.cfg**: it is missing; /etc/default/grub was rewritten; or it
//!   refers to a file-system UUID, LVM or md id, device or kernel file that
//!   the recovered machine does not have.

use std::collections::BTreeSet;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Files the initramfs tools copy into the image: a rewrite of any of them
/// makes the restored initramfs stale.
pub const EMBEDDED: &[&str] = &[
    "etc/fstab",
    "etc/crypttab",
    "etc/mdadm/mdadm.conf",
    "etc/mdadm.conf",
    "etc/initramfs-tools/conf.d/resume",
];

/// A decision and its reason, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub run: bool,
    pub why: String,
    /// Drivers the new disks need that the initramfs lacks: the
    /// regenerated one must get them even where its tool would not look
    /// (`MODULES=list`, or `dep` in a chroot).
    pub missing: Vec<String>,
}

impl Decision {
    pub fn yes(why: impl Into<String>) -> Decision {
        Decision {
            run: true,
            why: why.into(),
            missing: Vec::new(),
        }
    }
    pub fn no(why: impl Into<String>) -> Decision {
        Decision {
            run: false,
            why: why.into(),
            missing: Vec::new(),
        }
    }
}

// ---------------------------------------------------------------------------
// The initramfs

/// Module names in an initramfs image: every `*.ko`, `*.ko.{zst,xz,gz}`
/// member's base name, with `-` as `_` (as the kernel names modules).
/// Handles what initramfs-tools, dracut and mkinitcpio write: uncompressed
/// early cpio segments (microcode) followed by a gzip, zstd or xz one.
pub fn initrd_modules(path: &Path) -> Result<BTreeSet<String>> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut names = BTreeSet::new();
    read_initrd(&data, &mut |m| add_module(m.name, &mut names))
        .with_context(|| path.display().to_string())?;
    Ok(names)
}

/// One member of an initramfs's cpio archives.
pub struct Member<'a> {
    /// As stored (`usr/lib/modules/...`, or `./usr/...` from some tools).
    pub name: &'a str,
    /// st_mode: file type and permission bits.
    pub mode: u32,
    /// The file's contents or the symlink's target.
    pub data: &'a [u8],
}

/// How the last segment of an initramfs is stored: another segment
/// appended to it is stored the same way (a compressed one as one more
/// frame or member of that format, which the kernel and [`read_initrd`]
/// read as a segment of their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Plain,
    Gzip,
    Zstd,
    Xz,
}

/// Calls `f` with every member of every archive of the initramfs `data`
/// (later members of a name win when the kernel unpacks it); returns how
/// its last segment is stored.
pub fn read_initrd(data: &[u8], f: &mut dyn FnMut(&Member)) -> Result<Compression> {
    let rest = plain_archives(data, f)?;
    if rest.is_empty() {
        return Ok(Compression::Plain);
    }
    // A compressed segment runs to the end of the file: one stream of one
    // or more frames (gzip members, zstd frames, xz streams).
    let (reader, how): (Box<dyn Read>, _) = if rest.starts_with(&[0x1f, 0x8b]) {
        (
            Box::new(flate2::read::MultiGzDecoder::new(rest)),
            Compression::Gzip,
        )
    } else if rest.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        (
            Box::new(zstd::stream::read::Decoder::new(rest)?),
            Compression::Zstd,
        )
    } else if rest.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        (
            Box::new(liblzma::read::XzDecoder::new_multi_decoder(rest)),
            Compression::Xz,
        )
    } else {
        bail!(
            "a segment in a compression this reader does not know (magic {:02x?})",
            &rest[..rest.len().min(4)]
        );
    };
    let mut all = Vec::new();
    BufReader::new(reader)
        .read_to_end(&mut all)
        .context("decompressing")?;
    // The decompressed stream may itself hold several archives.
    let tail = plain_archives(&all, f)?;
    if !tail.is_empty() {
        bail!("data after the compressed archive");
    }
    Ok(how)
}

/// Reads the uncompressed cpio archives at the start of `buf` (NUL padding
/// between them), calling `f` with each member; returns what follows them:
/// nothing, or a compressed segment.
fn plain_archives<'a>(mut buf: &'a [u8], f: &mut dyn FnMut(&Member)) -> Result<&'a [u8]> {
    loop {
        let skip = buf.iter().take_while(|b| **b == 0).count();
        buf = &buf[skip..];
        if !(buf.starts_with(b"070701") || buf.starts_with(b"070702")) {
            return Ok(buf);
        }
        let used = cpio_members(buf, f)?;
        buf = &buf[used..];
    }
}

fn add_module(name: &str, out: &mut BTreeSet<String>) {
    if let Some(m) = module_name(name) {
        out.insert(m);
    }
}

/// The kernel's name of the module file `path` (`dm_mod` for
/// `.../dm-mod.ko.xz`), None for anything else.
pub fn module_name(path: &str) -> Option<String> {
    let base = path.rsplit('/').next().unwrap_or(path);
    [".ko", ".ko.zst", ".ko.xz", ".ko.gz"]
        .iter()
        .find_map(|ext| base.strip_suffix(ext))
        .map(|m| m.replace('-', "_"))
}

/// Walks one cpio newc archive, calling `f` with each member; returns the
/// bytes it spans up to and including the trailer.
fn cpio_members(buf: &[u8], f: &mut dyn FnMut(&Member)) -> Result<usize> {
    let mut off = 0usize;
    let field = |h: &[u8], i: usize| -> Result<usize> {
        let s = std::str::from_utf8(&h[6 + i * 8..6 + (i + 1) * 8])?;
        Ok(usize::from_str_radix(s, 16)?)
    };
    loop {
        let h = buf
            .get(off..off + 110)
            .context("the cpio archive ends inside a header")?;
        if !(h.starts_with(b"070701") || h.starts_with(b"070702")) {
            bail!("no cpio header at offset {off}");
        }
        // newc: magic, then 13 8-hex-digit fields; mode is the 2nd (index
        // 1), filesize the 7th (index 6), namesize the 12th (index 11).
        let mode = field(h, 1)? as u32;
        let size = field(h, 6)?;
        let namesize = field(h, 11)?;
        let name = buf
            .get(off + 110..off + 110 + namesize)
            .context("the cpio archive ends inside a name")?;
        let name = String::from_utf8_lossy(name.strip_suffix(&[0]).unwrap_or(name));
        off = align4(off + 110 + namesize);
        if name == "TRAILER!!!" {
            return Ok(off);
        }
        let data = buf
            .get(off..off + size)
            .with_context(|| format!("the cpio archive ends inside {name}"))?;
        f(&Member {
            name: &name,
            mode,
            data,
        });
        off = align4(off + size);
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Module names built into kernel `kver` of the restored system.
pub fn builtin_modules(root: &Path, kver: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for dir in ["lib/modules", "usr/lib/modules"] {
        if let Ok(text) = std::fs::read_to_string(root.join(dir).join(kver).join("modules.builtin"))
        {
            for l in text.lines() {
                add_module(l.trim(), &mut out);
            }
        }
    }
    out
}

/// The restored system's kernels and where each one's initramfs is,
/// whether or not it exists: those with a `/boot/vmlinuz-KVER` (dracut
/// names the initramfs initramfs-KVER.img, initramfs-tools
/// initrd.img-KVER), and the Boot Loader Specification type 1 entries of
/// systemd-boot ([`bls_entries`]), whose initrd is the one that boots. A
/// kernel can come twice: Debian's kernel package puts vmlinuz-KVER in
/// /boot and kernel-install copies it beside its entry's initrd.
pub fn kernels(root: &Path) -> Vec<(String, PathBuf)> {
    let boot = root.join("boot");
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(&boot)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let kver = name.strip_prefix("vmlinuz-")?.to_string();
            let dracut = boot.join(format!("initramfs-{kver}.img"));
            let initrd = if dracut.exists() {
                dracut
            } else {
                boot.join(format!("initrd.img-{kver}"))
            };
            Some((kver, initrd))
        })
        .collect();
    out.extend(bls_entries(root));
    out.sort();
    out.dedup();
    out
}

/// Where Boot Loader Specification entries live: the ESP or XBOOTLDR
/// partition mounted on /boot, /efi or /boot/efi, each with
/// `loader/entries/*.conf` whose paths count from that mount point.
const BLS_ROOTS: &[&str] = &["boot", "efi", "boot/efi"];

/// The kernel version and initrd (as a path under `root`) of every type 1
/// entry: its `version` key, or else the directory of its `linux` path
/// (kernel-install writes `/TOKEN/KVER/linux`). Entries without an initrd
/// line (a unified kernel image, or a kernel booting without one) are
/// not listed: there is no initramfs file to check. The BLS keys are
/// `key value` lines (uapi-group.org, Boot Loader Specification).
pub fn bls_entries(root: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for b in BLS_ROOTS {
        let base = root.join(b);
        let Ok(rd) = std::fs::read_dir(base.join("loader/entries")) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "conf") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&p) else {
                continue;
            };
            let key = |k: &str| {
                text.lines().find_map(|l| {
                    let (kk, v) = l.trim().split_once(char::is_whitespace)?;
                    (kk == k).then(|| v.trim().to_string())
                })
            };
            let Some(initrd) = key("initrd") else {
                continue;
            };
            let kver = key("version").or_else(|| {
                let linux = key("linux")?;
                let dir = Path::new(&linux).parent()?.file_name()?;
                Some(dir.to_string_lossy().into_owned())
            });
            if let Some(kver) = kver {
                out.push((kver, base.join(initrd.trim_start_matches('/'))));
            }
        }
    }
    out
}

/// Whether the restored initramfs must be regenerated. `rewritten`: the
/// files finalize rewrote (relative to the root); `needed`: modules the new
/// disks need (from [`crate::sys::block::needed_modules`]).
pub fn initramfs(root: &Path, rewritten: &[String], needed: &BTreeSet<String>) -> Decision {
    if let Some(f) = rewritten.iter().find(|f| EMBEDDED.contains(&f.as_str())) {
        return Decision::yes(format!("/{f} was rewritten and the initramfs embeds it"));
    }
    let kernels = kernels(root);
    if kernels.is_empty() {
        return Decision::no(
            "the restored system has no /boot/vmlinuz-* and no boot loader entry with an initrd: nothing to check",
        );
    }
    let mut ok = Vec::new();
    for (kver, initrd) in &kernels {
        if !initrd.exists() {
            return Decision::yes(format!(
                "kernel {kver} has no initramfs ({} is missing)",
                initrd.display()
            ));
        }
        let have = match initrd_modules(initrd) {
            Ok(m) => m,
            Err(e) => {
                return Decision::yes(format!("the initramfs of {kver} cannot be checked ({e:#})"));
            }
        };
        let builtin = builtin_modules(root, kver);
        let missing: Vec<&str> = needed
            .iter()
            .filter(|m| !have.contains(*m) && !builtin.contains(*m))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            let mut d = Decision::yes(format!(
                "the initramfs of {kver} lacks {} that the new disks need",
                missing.join(", ")
            ));
            d.missing = missing.iter().map(|m| m.to_string()).collect();
            return d;
        }
        ok.push(kver.as_str());
    }
    ok.dedup();
    let need = if needed.is_empty() {
        "no modules".to_string()
    } else {
        needed.iter().cloned().collect::<Vec<_>>().join(", ")
    };
    Decision::no(format!(
        "kept: the initramfs of {} has every driver the new disks need ({need}) and no file it embeds changed",
        ok.join(", ")
    ))
}

/// Makes the initramfs tool of the restored system include `modules`
/// whatever its policy: initramfs-tools lists them in
/// /etc/initramfs-tools/modules (read with every MODULES= setting),
/// dracut gets `add_drivers` in /etc/dracut.conf.d/. Returns the file
/// written and what was added, for the report; None when the tool is
/// neither (mkinitcpio's MODULES array is left to the admin, and said so).
pub fn add_drivers(root: &Path, tool: &str, modules: &[String]) -> Result<Option<String>> {
    if modules.is_empty() {
        return Ok(None);
    }
    let list = modules.join(" ");
    match tool {
        "update-initramfs" => {
            let p = root.join("etc/initramfs-tools/modules");
            let mut text = std::fs::read_to_string(&p).unwrap_or_default();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str("# Added by mkrescue recover: the disks of this machine need them.\n");
            for m in modules {
                text.push_str(m);
                text.push('\n');
            }
            write_keeping(&p, &text)?;
            Ok(Some(format!("/etc/initramfs-tools/modules: added {list}")))
        }
        "dracut" => {
            let p = root.join("etc/dracut.conf.d/90-mkrescue-recover.conf");
            let text = format!(
                "# Written by mkrescue recover: the disks of this machine need them.\nadd_drivers+=\" {list} \"\n"
            );
            write_keeping(&p, &text)?;
            Ok(Some(format!(
                "/etc/dracut.conf.d/90-mkrescue-recover.conf: add_drivers {list}"
            )))
        }
        _ => Ok(None),
    }
}

/// Writes `text` to `p`, keeping an existing file as `*.mkrescue-orig`.
fn write_keeping(p: &Path, text: &str) -> Result<()> {
    if p.exists() {
        let orig = p.with_file_name(format!(
            "{}.mkrescue-orig",
            p.file_name().unwrap_or_default().to_string_lossy()
        ));
        std::fs::copy(p, &orig).with_context(|| format!("keeping {}", orig.display()))?;
    } else if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))
}

// ---------------------------------------------------------------------------
// grub.cfg

/// What the recovered machine has, that a grub.cfg may refer to.
#[derive(Debug, Default)]
pub struct Present {
    /// File-system UUIDs and partition UUIDs, lower case.
    pub uuids: BTreeSet<String>,
    /// LVM VG and LV UUIDs, as LVM prints them (with dashes).
    pub lvm_uuids: BTreeSet<String>,
    /// md UUIDs as 32 lower-case hex digits.
    pub md_uuids: BTreeSet<String>,
}

/// References in a grub.cfg that may go stale on a new machine.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GrubRefs {
    pub fs_uuids: BTreeSet<String>,
    pub lvmids: BTreeSet<(String, String)>,
    pub mduuids: BTreeSet<String>,
    /// `root=/dev/...` by path.
    pub root_devs: BTreeSet<String>,
    /// Kernel and initramfs files (`linux`, `initrd` arguments).
    pub files: BTreeSet<String>,
}

/// The references of grub.cfg `text`: `search --fs-uuid X`,
/// `root=UUID=X`, `lvmid/VG/LV`, `mduuid/X`, `root=/dev/X`, and the files
/// of `linux` and `initrd` lines.
pub fn grub_refs(text: &str) -> GrubRefs {
    let mut r = GrubRefs::default();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line
            .split_whitespace()
            .map(|w| w.trim_matches(|c| c == '\'' || c == '"'))
            .collect();
        if words.first() == Some(&"search") && words.contains(&"--fs-uuid") {
            if let Some(u) = words.iter().rev().find(|w| !w.starts_with('-')) {
                r.fs_uuids.insert(u.to_lowercase());
            }
        }
        if matches!(
            words.first(),
            Some(&"linux") | Some(&"linux16") | Some(&"linuxefi")
        ) {
            if let Some(f) = words.get(1) {
                r.files.insert(f.to_string());
            }
        }
        if matches!(
            words.first(),
            Some(&"initrd") | Some(&"initrd16") | Some(&"initrdefi")
        ) {
            for f in &words[1..] {
                r.files.insert(f.to_string());
            }
        }
        for w in &words {
            for part in w.split([',', '(', ')', '=', '\'', '"']) {
                if let Some(rest) = part.strip_prefix("lvmid/") {
                    let mut it = rest.splitn(2, '/');
                    if let (Some(vg), Some(lv)) = (it.next(), it.next()) {
                        r.lvmids.insert((vg.to_string(), lv.to_string()));
                    }
                }
                if let Some(u) = part.strip_prefix("mduuid/") {
                    r.mduuids.insert(u.to_lowercase());
                }
            }
            if let Some(u) = w.strip_prefix("root=UUID=") {
                r.fs_uuids.insert(u.to_lowercase());
            }
            if let Some(d) = w.strip_prefix("root=/dev/") {
                r.root_devs.insert(format!("/dev/{d}"));
            }
        }
    }
    r
}

/// Whether grub.cfg must be regenerated. `cfg`: its path in the restored
/// tree; `boot_dir`: the restored /boot (kernel files are looked up by
/// name there); `rewritten`: files finalize rewrote; `renamed`: source
/// device paths the mapping gave another name.
pub fn grub_cfg(
    cfg: &Path,
    boot_dir: &Path,
    rewritten: &[String],
    present: &Present,
    renamed: &BTreeSet<String>,
) -> Decision {
    if let Some(f) = rewritten.iter().find(|f| f.starts_with("etc/default/grub")) {
        return Decision::yes(format!("/{f} was rewritten"));
    }
    let Ok(text) = std::fs::read_to_string(cfg) else {
        return Decision::yes(format!("{} is missing", cfg.display()));
    };
    let r = grub_refs(&text);
    if let Some(u) = r.fs_uuids.iter().find(|u| !present.uuids.contains(*u)) {
        return Decision::yes(format!("it refers to file system UUID {u}, which is gone"));
    }
    if let Some((vg, lv)) = r
        .lvmids
        .iter()
        .find(|(vg, lv)| !present.lvm_uuids.contains(vg) || !present.lvm_uuids.contains(lv))
    {
        return Decision::yes(format!(
            "it refers to LVM volume lvmid/{vg}/{lv}, which is gone"
        ));
    }
    if let Some(u) = r
        .mduuids
        .iter()
        .find(|u| !present.md_uuids.contains(&u.replace([':', '-'], "")))
    {
        return Decision::yes(format!("it refers to md array mduuid/{u}, which is gone"));
    }
    if let Some(d) = r.root_devs.iter().find(|d| renamed.contains(*d)) {
        return Decision::yes(format!("its root={d} has another name on this machine"));
    }
    if let Some(f) = r.files.iter().find(|f| {
        let name = f.rsplit('/').next().unwrap_or(f);
        !boot_dir.join(name).exists()
    }) {
        return Decision::yes(format!("it boots {f}, which the restored /boot lacks"));
    }
    Decision::no(format!(
        "kept: every UUID ({}), volume and kernel file it refers to is there",
        r.fs_uuids.len() + r.lvmids.len() + r.mduuids.len()
    ))
}

/// The UUIDs the recovered machine has now: file systems' and partitions'
/// (lsblk), LVM volumes' and groups' (lvs), md arrays' (mdadm --detail).
/// A tool that is missing or fails leaves its part empty: grub.cfg's
/// references into it then count as gone, and it is regenerated.
pub fn present(md_paths: &[String]) -> Present {
    use crate::exec::Cmd;
    let mut p = Present::default();
    if let Ok(out) = Cmd::new("lsblk").args(["-rno", "UUID,PARTUUID"]).read() {
        p.uuids = out.split_whitespace().map(str::to_lowercase).collect();
    }
    if let Ok(out) = Cmd::new("lvm")
        .args(["lvs", "--noheadings", "-o", "vg_uuid,lv_uuid"])
        .read()
    {
        p.lvm_uuids = out.split_whitespace().map(str::to_string).collect();
    }
    for md in md_paths {
        if let Ok(out) = Cmd::new("mdadm").args(["--detail", "--export", md]).read()
            && let Some(u) = out.lines().find_map(|l| l.strip_prefix("MD_UUID="))
        {
            p.md_uuids.insert(u.replace(':', "").to_lowercase());
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn newc(out: &mut Vec<u8>, name: &str, data: &[u8]) {
        let namesize = name.len() + 1;
        let hdr = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            1,
            0o100644,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            namesize,
            0
        );
        out.extend_from_slice(hdr.as_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
        out.extend_from_slice(data);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }

    fn archive(names: &[&str]) -> Vec<u8> {
        let mut v = Vec::new();
        for n in names {
            newc(&mut v, n, b"x");
        }
        newc(&mut v, "TRAILER!!!", b"");
        v
    }

    #[test]
    fn modules_of_early_cpio_plus_zstd_segment() {
        let dir = tempfile::tempdir().unwrap();
        // Like initramfs-tools: an uncompressed microcode cpio, padding,
        // then the zstd main archive.
        let mut img = archive(&["kernel/x86/microcode/GenuineIntel.bin"]);
        img.extend_from_slice(&[0u8; 512]);
        let main = archive(&[
            "usr/lib/modules/6.1.0-57-amd64/kernel/drivers/block/virtio_blk.ko",
            "usr/lib/modules/6.1.0-57-amd64/kernel/drivers/md/raid1.ko.zst",
            "usr/lib/modules/6.1.0-57-amd64/kernel/drivers/md/dm-mod.ko.xz",
            "usr/bin/lvm",
        ]);
        img.extend(zstd::encode_all(&main[..], 3).unwrap());
        let p = dir.path().join("initrd.img");
        std::fs::write(&p, &img).unwrap();
        let m = initrd_modules(&p).unwrap();
        assert_eq!(
            m.into_iter().collect::<Vec<_>>(),
            ["dm_mod", "raid1", "virtio_blk"]
        );
    }

    /// A systemd-boot system (the ESP on /boot, kernel-install's type 1
    /// entries): the initrd the entry boots is checked beside Debian's
    /// /boot/initrd.img-KVER, and one missing driver in it is enough.
    #[test]
    fn boot_loader_entries_name_the_initrd_that_boots() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let k = "6.12.117+deb13-amd64";
        let token = "649cdf4adfc44dd8b4be7ec5306a63d8";
        std::fs::create_dir_all(r.join(format!("boot/{token}/{k}"))).unwrap();
        std::fs::create_dir_all(r.join("boot/loader/entries")).unwrap();
        std::fs::write(r.join(format!("boot/vmlinuz-{k}")), b"").unwrap();
        std::fs::write(
            r.join(format!("boot/loader/entries/{token}-{k}.conf")),
            format!(
                "# Boot Loader Specification type#1 entry\ntitle      Debian GNU/Linux 13 (trixie)\nversion    {k}\nmachine-id {token}\nsort-key   debian\noptions    root=UUID=x rootflags=subvol=@ rw\nlinux      /{token}/{k}/linux\ninitrd     /{token}/{k}/initrd\n"
            ),
        )
        .unwrap();
        // An entry without `version`: the kernel version from its path.
        std::fs::write(
            r.join("boot/loader/entries/old.conf"),
            format!("title old\nlinux /{token}/6.1.0-9-amd64/linux\ninitrd /{token}/6.1.0-9-amd64/initrd\n"),
        )
        .unwrap();
        // A UKI entry has no initrd file to check.
        std::fs::write(
            r.join("boot/loader/entries/uki.conf"),
            "title u\nuki /EFI/Linux/x.efi\n",
        )
        .unwrap();
        let ks = kernels(r);
        assert_eq!(
            ks,
            vec![
                (
                    "6.1.0-9-amd64".to_string(),
                    r.join(format!("boot/{token}/6.1.0-9-amd64/initrd"))
                ),
                (k.to_string(), r.join(format!("boot/{token}/{k}/initrd"))),
                (k.to_string(), r.join(format!("boot/initrd.img-{k}"))),
            ]
        );
        std::fs::remove_file(r.join("boot/loader/entries/old.conf")).unwrap();
        let m = |names: &[&str]| -> Vec<u8> {
            let full: Vec<String> = names
                .iter()
                .map(|n| format!("usr/lib/modules/{k}/kernel/drivers/{n}.ko.xz"))
                .collect();
            archive(&full.iter().map(String::as_str).collect::<Vec<_>>())
        };
        // Debian's copy has nvme, the initrd that boots has not.
        std::fs::write(
            r.join(format!("boot/initrd.img-{k}")),
            m(&["nvme/host/nvme", "block/virtio_blk"]),
        )
        .unwrap();
        std::fs::write(
            r.join(format!("boot/{token}/{k}/initrd")),
            m(&["block/virtio_blk"]),
        )
        .unwrap();
        let needed: BTreeSet<String> = ["nvme".to_string()].into();
        let d = initramfs(r, &[], &needed);
        assert!(d.run, "{}", d.why);
        assert_eq!(d.missing, ["nvme"]);
        assert!(d.why.contains(k), "{}", d.why);
        // Both have it: kept, the kernel named once.
        std::fs::write(
            r.join(format!("boot/{token}/{k}/initrd")),
            m(&["nvme/host/nvme"]),
        )
        .unwrap();
        let d = initramfs(r, &[], &needed);
        assert!(!d.run, "{}", d.why);
        assert_eq!(d.why.matches(k).count(), 1, "{}", d.why);
    }

    #[test]
    fn gzip_and_unknown_compression() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&archive(&["lib/modules/k/nvme.ko"])).unwrap();
        let p = dir.path().join("a");
        std::fs::write(&p, gz.finish().unwrap()).unwrap();
        assert!(initrd_modules(&p).unwrap().contains("nvme"));
        std::fs::write(&p, b"\x04\x22\x4d\x18lz4 data").unwrap();
        let e = format!("{:#}", initrd_modules(&p).unwrap_err());
        assert!(e.contains("does not know"), "{e}");
        // Truncated: an error, never a partial list taken as complete.
        let mut a = archive(&["lib/modules/k/nvme.ko"]);
        a.truncate(60);
        std::fs::write(&p, a).unwrap();
        assert!(initrd_modules(&p).is_err());
    }

    fn tree(initrd_mods: &[&str], builtin: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let boot = d.path().join("boot");
        std::fs::create_dir_all(&boot).unwrap();
        std::fs::write(boot.join("vmlinuz-6.1.0-57-amd64"), b"k").unwrap();
        let names: Vec<String> = initrd_mods
            .iter()
            .map(|m| format!("usr/lib/modules/6.1.0-57-amd64/kernel/{m}.ko"))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        std::fs::write(boot.join("initrd.img-6.1.0-57-amd64"), archive(&refs)).unwrap();
        let m = d.path().join("lib/modules/6.1.0-57-amd64");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join("modules.builtin"), builtin).unwrap();
        d
    }

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn initramfs_kept_when_every_driver_is_there() {
        let t = tree(
            &["virtio_blk", "raid1", "dm-mod"],
            "kernel/drivers/scsi/sd_mod.ko\n",
        );
        let d = initramfs(
            t.path(),
            &[],
            &set(&["virtio_blk", "raid1", "dm_mod", "sd_mod"]),
        );
        assert!(!d.run, "{d:?}");
        assert!(d.why.starts_with("kept"), "{}", d.why);
    }

    #[test]
    fn initramfs_regenerated_for_a_missing_driver_or_rewritten_file() {
        let t = tree(&["virtio_blk", "raid1"], "");
        let d = initramfs(t.path(), &[], &set(&["nvme", "nvme_core", "raid1"]));
        assert!(d.run);
        assert_eq!(
            d.why,
            "the initramfs of 6.1.0-57-amd64 lacks nvme, nvme_core that the new disks need"
        );
        assert_eq!(d.missing, ["nvme", "nvme_core"]);
        let d = initramfs(t.path(), &["etc/fstab".into()], &set(&[]));
        assert!(d.run && d.why.contains("/etc/fstab"), "{d:?}");
        // default/grub is not in the initramfs.
        let d = initramfs(t.path(), &["etc/default/grub".into()], &set(&["raid1"]));
        assert!(!d.run, "{d:?}");
        std::fs::remove_file(t.path().join("boot/initrd.img-6.1.0-57-amd64")).unwrap();
        let d = initramfs(t.path(), &[], &set(&[]));
        assert!(d.run && d.why.contains("has no initramfs"), "{d:?}");
    }

    #[test]
    fn missing_drivers_go_into_the_tools_config() {
        let t = tempfile::tempdir().unwrap();
        let m = t.path().join("etc/initramfs-tools/modules");
        std::fs::create_dir_all(m.parent().unwrap()).unwrap();
        std::fs::write(&m, "virtio_blk").unwrap();
        let mods = vec!["nvme".to_string(), "nvme_core".to_string()];
        let line = add_drivers(t.path(), "update-initramfs", &mods)
            .unwrap()
            .unwrap();
        assert_eq!(line, "/etc/initramfs-tools/modules: added nvme nvme_core");
        let text = std::fs::read_to_string(&m).unwrap();
        assert!(
            text.starts_with("virtio_blk\n# Added by mkrescue"),
            "{text}"
        );
        assert!(text.ends_with("nvme\nnvme_core\n"), "{text}");
        assert_eq!(
            std::fs::read_to_string(m.with_file_name("modules.mkrescue-orig")).unwrap(),
            "virtio_blk"
        );
        add_drivers(t.path(), "dracut", &mods).unwrap().unwrap();
        let d =
            std::fs::read_to_string(t.path().join("etc/dracut.conf.d/90-mkrescue-recover.conf"))
                .unwrap();
        assert!(d.contains("add_drivers+=\" nvme nvme_core \""), "{d}");
        assert_eq!(add_drivers(t.path(), "mkinitcpio", &mods).unwrap(), None);
        assert_eq!(add_drivers(t.path(), "dracut", &[]).unwrap(), None);
    }

    const GRUB_CFG: &str = r#"
insmod lvm
set root='lvmid/Yb2yD3-aaaa-bbbb/Zc3zE4-cccc-dddd'
if [ x$feature_platform_search_hint = xy ]; then
  search --no-floppy --fs-uuid --set=root --hint='lvmid/Yb2yD3-aaaa-bbbb/Zc3zE4-cccc-dddd'  0f3c9d1e-1111-2222-3333-444455556666
fi
menuentry 'Debian GNU/Linux' {
	insmod mdraid1x
	set root='mduuid/5ad8b7e1c2d3e4f5a6b7c8d9e0f1a2b3'
	linux	/boot/vmlinuz-6.1.0-57-amd64 root=/dev/mapper/vg-root ro  quiet
	initrd	/boot/initrd.img-6.1.0-57-amd64
}
"#;

    #[test]
    fn grub_cfg_references() {
        let r = grub_refs(GRUB_CFG);
        assert_eq!(r.fs_uuids, set(&["0f3c9d1e-1111-2222-3333-444455556666"]));
        assert_eq!(
            r.lvmids.iter().next().unwrap(),
            &(
                "Yb2yD3-aaaa-bbbb".to_string(),
                "Zc3zE4-cccc-dddd".to_string()
            )
        );
        assert_eq!(r.mduuids, set(&["5ad8b7e1c2d3e4f5a6b7c8d9e0f1a2b3"]));
        assert_eq!(r.root_devs, set(&["/dev/mapper/vg-root"]));
        assert_eq!(
            r.files,
            set(&[
                "/boot/vmlinuz-6.1.0-57-amd64",
                "/boot/initrd.img-6.1.0-57-amd64"
            ])
        );
    }

    #[test]
    fn grub_cfg_kept_only_when_all_it_names_is_there() {
        let t = tree(&[], "");
        let cfg = t.path().join("boot/grub/grub.cfg");
        std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
        std::fs::write(&cfg, GRUB_CFG).unwrap();
        let boot = t.path().join("boot");
        let mut p = Present {
            uuids: set(&["0f3c9d1e-1111-2222-3333-444455556666"]),
            lvm_uuids: set(&["Yb2yD3-aaaa-bbbb", "Zc3zE4-cccc-dddd"]),
            md_uuids: set(&["5ad8b7e1c2d3e4f5a6b7c8d9e0f1a2b3"]),
        };
        let none = BTreeSet::new();
        let d = grub_cfg(&cfg, &boot, &[], &p, &none);
        assert!(!d.run, "{d:?}");
        assert!(grub_cfg(&cfg, &boot, &["etc/default/grub".into()], &p, &none).run);
        let d = grub_cfg(&cfg, &boot, &[], &p, &set(&["/dev/mapper/vg-root"]));
        assert!(d.run && d.why.contains("root=/dev/mapper/vg-root"), "{d:?}");
        p.md_uuids.clear();
        let d = grub_cfg(&cfg, &boot, &[], &p, &none);
        assert!(d.run && d.why.contains("mduuid"), "{d:?}");
        std::fs::remove_file(&cfg).unwrap();
        assert!(
            grub_cfg(&cfg, &boot, &[], &p, &none)
                .why
                .contains("missing")
        );
    }

    #[test]
    fn grub_cfg_regenerated_for_a_missing_kernel() {
        let t = tree(&[], "");
        let cfg = t.path().join("grub.cfg");
        std::fs::write(&cfg, GRUB_CFG).unwrap();
        std::fs::remove_file(t.path().join("boot/initrd.img-6.1.0-57-amd64")).unwrap();
        let p = Present {
            uuids: set(&["0f3c9d1e-1111-2222-3333-444455556666"]),
            lvm_uuids: set(&["Yb2yD3-aaaa-bbbb", "Zc3zE4-cccc-dddd"]),
            md_uuids: set(&["5ad8b7e1c2d3e4f5a6b7c8d9e0f1a2b3"]),
        };
        let d = grub_cfg(&cfg, &t.path().join("boot"), &[], &p, &BTreeSet::new());
        assert!(d.run && d.why.contains("initrd.img"), "{d:?}");
    }
}
