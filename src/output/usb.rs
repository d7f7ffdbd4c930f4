//! `--output usb`: a GPT disk image (`--image FILE --size N`) or a whole USB
//! stick (`--device /dev/sdX`) that boots on BIOS and UEFI machines and has
//! room for backups.
//!
//! Layout: partition 1 is the ESP (FAT, legacy-BIOS-bootable attribute)
//! holding the kernel, initrd, GRUB as EFI/BOOT/BOOTX64.EFI and SYSLINUX;
//! partition 2 is ext4 labelled `MKRESCUE-DATA` for backups. BIOS boots
//! syslinux's gptmbr.bin from the MBR, which starts the partition marked
//! legacy BIOS bootable (syslinux doc/gpt.txt, UEFI spec 5.3.3 attribute
//! bit 2).
//!
//! No loop devices, no mounts: sfdisk(8) partitions the image file,
//! mkfs.vfat `-h` + mtools + syslinux(1) (the mtools installer) build the
//! ESP as a file that is then copied in, mkfs.ext4 `-E offset=` makes the
//! data file system in place.
//!
//! A device is refused when it is not a whole block device, is mounted, is
//! used by the kernel (holders: RAID, LVM, crypt; swap), or is not
//! removable; `--force` overrides only "not removable". Before anything is
//! written, the device is described (model, size, partitions, file systems)
//! so the admin sees what is erased; `--dry-run` stops there.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::bootcfg::{self, Menu, Paths, Syslinux};
use super::iso::{mkdir, write_text};
use super::stamp::Stamp;
use super::tools;
use crate::error::{Code, fail};
use crate::exec::Cmd;

/// Label of the backup partition (ext4 labels hold 16 bytes).
pub const DATA_LABEL: &str = "MKRESCUE-DATA";
/// GPT type GUIDs (UEFI spec 5.3.3; Linux filesystem data from the
/// Discoverable Partitions Specification).
const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const LINUX_TYPE: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
const SECTOR: u64 = 512;
const MIB: u64 = 1 << 20;
/// Default image size.
pub const DEFAULT_SIZE: u64 = 2 << 30;

/// Parses `2G`, `1500M`, `4096K` or bytes (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => 0,
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let n: u64 = num.parse().unwrap_or(0);
    match n.checked_mul(mult) {
        Some(b) if mult != 0 && b > 0 => Ok(b),
        _ => Err(fail(
            Code::Usage,
            format!("--size {s:?}: give a size such as 2G, 1500M or 4096K"),
        )),
    }
}

/// The ESP's size: kernel + initrd twice over (room for a second build)
/// plus 64 MiB, at least 256 MiB, whole MiB.
fn esp_size(payload: u64) -> u64 {
    (2 * payload + 64 * MIB).max(256 * MIB).div_ceil(MIB) * MIB
}

/// Builds the disk image `image` of `size` bytes from `vmlinuz`/`initrd`.
/// Its GUIDs, serials and dates come from `stamp`, so the same input gives
/// the same image (the data file system's free space included).
pub fn write_image(
    vmlinuz: &Path,
    initrd: &Path,
    menu: &Menu,
    stamp: &Stamp,
    work: &Path,
    image: &Path,
    size: u64,
) -> Result<()> {
    let t = tools::Boot::find()?;
    let gptmbr = t.gptmbr()?.to_path_buf();
    let payload = file_len(vmlinuz)? + file_len(initrd)?;
    let esp_bytes = esp_size(payload);
    let first = MIB; // 1 MiB alignment, like every partitioning tool
    // Data partition: what is left, minus the backup GPT (33 sectors).
    let min = first + esp_bytes + 64 * MIB + MIB;
    if size < min {
        return Err(fail(
            Code::Usage,
            format!(
                "--size {} MiB is too small: the kernel and initrd need at least {} MiB (ESP {} MiB + 64 MiB for backups)",
                size / MIB,
                min.div_ceil(MIB),
                esp_bytes / MIB
            ),
        ));
    }
    mkdir(work)?;

    // 1. The ESP as a file.
    let stage = work.join("esp-files");
    mkdir(&stage)?;
    let tag_path = format!("/mkrescue/{}.tag", stamp.tag);
    let paths = Paths {
        kernel: "/boot/vmlinuz".into(),
        initrds: vec!["/boot/initrd.img".into()],
    };
    let efi = work.join("BOOTX64.EFI");
    tools::grub_efi_image(
        &t,
        Some(&bootcfg::grub_embedded(&tag_path)?),
        work,
        &efi,
        "/boot/grub",
        false,
        false,
    )?;
    let grub_cfg = stage.join("grub.cfg");
    write_text(&grub_cfg, &bootcfg::grub(menu, &paths, "EFI (USB)")?)?;
    let sys_cfg = stage.join("syslinux.cfg");
    write_text(
        &sys_cfg,
        &bootcfg::syslinux(menu, &paths, Syslinux::Syslinux)?,
    )?;
    let tag_file = stage.join("tag");
    write_text(&tag_file, &format!("{}\n", menu.title))?;
    let mods: Vec<PathBuf> = tools::SYSLINUX_MODULES
        .iter()
        .filter(|m| **m != "ldlinux.c32")
        .map(|m| t.syslinux_modules.join(m))
        .collect();
    let mut files: Vec<(&Path, String)> = vec![
        (efi.as_path(), "EFI/BOOT/BOOTX64.EFI".into()),
        (grub_cfg.as_path(), "boot/grub/grub.cfg".into()),
        (vmlinuz, "boot/vmlinuz".into()),
        (initrd, "boot/initrd.img".into()),
        (sys_cfg.as_path(), "syslinux/syslinux.cfg".into()),
        (tag_file.as_path(), tag_path.trim_start_matches('/').into()),
    ];
    for m in &mods {
        let name = m.file_name().and_then(|n| n.to_str()).unwrap_or("");
        files.push((m.as_path(), format!("syslinux/{name}")));
    }
    let esp = work.join("esp.img");
    let _ = std::fs::remove_file(&esp);
    // -h: hidden sectors = the partition's start, which the FAT boot
    // sector (SYSLINUX's) adds to find ldlinux.sys (mkfs.fat(8)).
    let hidden = (first / SECTOR).to_string();
    tools::fat_mkfs(
        &esp,
        esp_bytes / 1024,
        &["-F", "32", "-n", "MKRESCUE", "-h", &hidden],
        stamp,
    )
    .output()
    .with_context(|| format!("creating the ESP image {}", esp.display()))?;
    let refs: Vec<(&Path, &str)> = files.iter().map(|(p, n)| (*p, n.as_str())).collect();
    tools::fat_copy(&esp, &refs, stamp)?;
    // syslinux(1) from the syslinux package writes ldlinux.sys and
    // ldlinux.c32 through mtools and its boot sector into the image file;
    // SOURCE_DATE_EPOCH dates them as mtools dates the other files.
    stamp
        .on(Cmd::new("syslinux"))
        .args(["--install", "--directory", "/syslinux"])
        .arg(&esp)
        .output()
        .context("installing SYSLINUX into the ESP (apt-get install syslinux)")?;

    // 2. The disk: sparse file, GPT by sfdisk.
    let tmp = PathBuf::from(format!("{}.tmp", image.display()));
    let _ = std::fs::remove_file(&tmp);
    {
        let f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.set_len(size)
            .with_context(|| format!("sizing {} to {size} bytes", tmp.display()))?;
    }
    // sfdisk(8) "Input format": `label-id` is the GPT disk GUID, `uuid`
    // a partition's unique GUID; sfdisk would otherwise pick random ones.
    let script = format!(
        "label: gpt\n\
         label-id: {}\n\
         start={}, size={}, type={ESP_TYPE}, uuid={}, name=\"MKRESCUE-ESP\", attrs=\"LegacyBIOSBootable\"\n\
         start={}, type={LINUX_TYPE}, uuid={}, name=\"{DATA_LABEL}\"\n",
        stamp.guid("gpt disk"),
        first / SECTOR,
        esp_bytes / SECTOR,
        stamp.guid("gpt esp"),
        (first + esp_bytes) / SECTOR,
        stamp.guid("gpt data"),
    );
    let script_path = work.join("sfdisk.script");
    write_text(&script_path, &script)?;
    // sfdisk reads the script on stdin; exec.rs keeps stdin null, so a
    // shell redirects from the file.
    Cmd::new("sh")
        .arg("-c")
        .arg("exec sfdisk --quiet --no-reread --no-tell-kernel \"$1\" < \"$2\"")
        .arg("sh")
        .arg(&tmp)
        .arg(&script_path)
        .output()
        .with_context(|| format!("partitioning {}", tmp.display()))?;
    let parts = read_partitions(&tmp)?;
    let [p1, p2] = parts.as_slice() else {
        bail!(
            "{}: sfdisk made {} partitions, expected 2",
            tmp.display(),
            parts.len()
        );
    };
    if p1.start * SECTOR != first {
        bail!(
            "{}: ESP starts at sector {}, expected {}",
            tmp.display(),
            p1.start,
            first / SECTOR
        );
    }

    // 3. ESP into partition 1; gptmbr.bin into the MBR's 440 code bytes
    //    (the partition table and GPT stay as sfdisk wrote them).
    copy_into(&esp, &tmp, p1.start * SECTOR)?;
    let mut code = vec![0u8; 440];
    File::open(&gptmbr)
        .and_then(|mut f| f.read_exact(&mut code))
        .with_context(|| format!("reading {}", gptmbr.display()))?;
    write_at(&tmp, 0, &code)?;

    // 4. ext4 for backups, in place (mke2fs(8) `-E offset=`, size in KiB).
    //    Reproducible: `-U` the file system UUID and `-E hash_seed=` the
    //    directory hash seed, both otherwise random (mke2fs(8)); the dates
    //    from `stamp`'s environment (E2FSPROGS_FAKE_TIME).
    stamp
        .on(Cmd::new("mkfs.ext4"))
        .args(["-q", "-F", "-L", DATA_LABEL])
        .arg("-U")
        .arg(stamp.guid("ext4 uuid"))
        .arg("-E")
        .arg(format!(
            "offset={},hash_seed={}",
            p2.start * SECTOR,
            stamp.guid("ext4 hash seed")
        ))
        .arg(&tmp)
        .arg(format!("{}k", p2.size * SECTOR / 1024))
        .output()
        .context("creating the ext4 backup file system (apt-get install e2fsprogs)")?;

    std::fs::rename(&tmp, image)
        .with_context(|| format!("renaming {} to {}", tmp.display(), image.display()))?;
    Ok(())
}

#[derive(Debug, Deserialize)]
struct SfdiskJson {
    partitiontable: SfdiskTable,
}
#[derive(Debug, Deserialize)]
struct SfdiskTable {
    #[serde(default)]
    partitions: Vec<Part>,
}
/// One partition from `sfdisk --json` (sectors).
#[derive(Debug, Deserialize, Clone)]
pub struct Part {
    pub start: u64,
    pub size: u64,
}

/// Partitions of a disk image, from `sfdisk --json`.
pub fn read_partitions(image: &Path) -> Result<Vec<Part>> {
    let out = Cmd::new("sfdisk")
        .arg("--json")
        .arg(image)
        .output()
        .with_context(|| format!("reading the partition table of {}", image.display()))?;
    let j: SfdiskJson = serde_json::from_slice(&out)
        .with_context(|| format!("parsing `sfdisk --json {}`", image.display()))?;
    Ok(j.partitiontable.partitions)
}

fn file_len(p: &Path) -> Result<u64> {
    Ok(std::fs::metadata(p)
        .with_context(|| format!("reading {}", p.display()))?
        .len())
}

fn write_at(path: &Path, offset: u64, data: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    f.seek(SeekFrom::Start(offset))
        .and_then(|_| f.write_all(data))
        .with_context(|| format!("writing {} at byte {offset}", path.display()))
}

/// Copies `src` into `dst` at `offset`, skipping all-zero 1 MiB chunks so a
/// sparse target stays sparse (the target is a fresh sparse file: its holes
/// read as zero).
fn copy_into(src: &Path, dst: &Path, offset: u64) -> Result<()> {
    let mut r = File::open(src).with_context(|| format!("reading {}", src.display()))?;
    let mut w = OpenOptions::new()
        .write(true)
        .open(dst)
        .with_context(|| format!("opening {}", dst.display()))?;
    let mut buf = vec![0u8; MIB as usize];
    let mut at = offset;
    loop {
        let n =
            read_full(&mut r, &mut buf).with_context(|| format!("reading {}", src.display()))?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|&b| b != 0) {
            w.seek(SeekFrom::Start(at))
                .and_then(|_| w.write_all(&buf[..n]))
                .with_context(|| format!("writing {} at byte {at}", dst.display()))?;
        }
        at += n as u64;
    }
    w.sync_all()
        .with_context(|| format!("writing {}", dst.display()))
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// What `--device` would erase, from lsblk(8) `--json`.
#[derive(Debug, Clone, Deserialize)]
pub struct BlockDev {
    pub name: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub fstype: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub mountpoint: Option<String>,
    #[serde(default)]
    pub children: Vec<BlockDev>,
}

#[derive(Deserialize)]
struct Lsblk {
    blockdevices: Vec<BlockDev>,
}

/// One line per device and partition, for "will erase".
pub fn describe(d: &BlockDev) -> String {
    fn line(d: &BlockDev, indent: &str, out: &mut String) {
        let bytes = d.size.unwrap_or(0);
        let size = if bytes >= 1 << 30 {
            format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
        } else {
            format!("{} MiB", bytes >> 20)
        };
        out.push_str(&format!("{indent}/dev/{} {size}", d.name));
        for (k, v) in [
            ("model", &d.model),
            ("serial", &d.serial),
            ("fs", &d.fstype),
            ("label", &d.label),
            ("mounted on", &d.mountpoint),
        ] {
            if let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                out.push_str(&format!(", {k} {v}"));
            }
        }
        out.push('\n');
        for c in &d.children {
            line(c, &format!("{indent}  "), out);
        }
    }
    let mut s = String::new();
    line(d, "", &mut s);
    s
}

/// lsblk takes FSTYPE and LABEL from the udev database; where there is
/// none (no udev, as in containers and the rescue system) ask blkid(8) to
/// probe the device itself, so the admin still sees what is on it.
fn probe_filesystems(d: &mut BlockDev) {
    if d.fstype.as_deref().unwrap_or("").is_empty() {
        let dev = format!("/dev/{}", d.name);
        // Exit code 2: nothing found; that is an answer, not an error.
        if let Ok(text) = Cmd::new("blkid")
            .args(["--probe", "-o", "export", &dev])
            .read()
        {
            for l in text.lines() {
                if let Some(v) = l.strip_prefix("TYPE=") {
                    d.fstype = Some(v.to_string());
                } else if let Some(v) = l.strip_prefix("LABEL=") {
                    d.label = Some(v.to_string());
                }
            }
        }
    }
    for c in &mut d.children {
        probe_filesystems(c);
    }
}

/// Checks that `dev` may be erased. Returns its description.
pub fn check_device(dev: &Path, force: bool) -> Result<BlockDev> {
    // What the device is now (mounted, in use, fixed) is no mistake of
    // the command line: a refusal at run time, exit 1. Naming something
    // that is no disk at all is one: exit 2.
    let refuse = |why: String| {
        Err(fail(
            Code::Failed,
            format!("refusing to write {}: {why}", dev.display()),
        ))
    };
    let meta = std::fs::metadata(dev)
        .map_err(|e| fail(Code::Usage, format!("--device {}: {e}", dev.display())))?;
    if !meta.file_type().is_block_device() {
        return Err(fail(
            Code::Usage,
            format!(
                "refusing to write {}: not a block device (use --image FILE for an image file)",
                dev.display()
            ),
        ));
    }
    let canon =
        std::fs::canonicalize(dev).with_context(|| format!("resolving {}", dev.display()))?;
    let name = canon
        .file_name()
        .and_then(|n| n.to_str())
        .context("device without a name")?
        .to_string();
    let sys = Path::new("/sys/class/block").join(&name);
    if sys.join("partition").exists() {
        return Err(fail(
            Code::Usage,
            format!(
                "refusing to write {}: {name} is a partition; give the whole disk",
                dev.display()
            ),
        ));
    }
    let out = Cmd::new("lsblk")
        .args([
            "--json",
            "--bytes",
            "-o",
            "NAME,SIZE,MODEL,SERIAL,FSTYPE,LABEL,MOUNTPOINT",
        ])
        .arg(&canon)
        .output()
        .with_context(|| format!("describing {}", canon.display()))?;
    let l: Lsblk = serde_json::from_slice(&out).context("parsing lsblk --json")?;
    let mut d = l
        .blockdevices
        .into_iter()
        .next()
        .with_context(|| format!("lsblk knows nothing about {}", canon.display()))?;
    probe_filesystems(&mut d);
    // Mounted (this device or a partition): never, not even with --force.
    fn mounted(d: &BlockDev, out: &mut Vec<String>) {
        if let Some(m) = d.mountpoint.as_deref().filter(|m| !m.is_empty()) {
            out.push(format!("/dev/{} on {m}", d.name));
        }
        for c in &d.children {
            mounted(c, out);
        }
    }
    let mut m = Vec::new();
    mounted(&d, &mut m);
    if !m.is_empty() {
        return refuse(format!("mounted ({}); unmount it first", m.join(", ")));
    }
    // In use by the kernel: holders (md, dm/LVM, crypt) of the disk or a
    // partition, or swap (Documentation/ABI: /sys/class/block/*/holders).
    let mut users = Vec::new();
    let mut dirs = vec![sys.clone()];
    if let Ok(rd) = std::fs::read_dir(&sys) {
        for e in rd.flatten() {
            if e.path().join("partition").exists() {
                dirs.push(e.path());
            }
        }
    }
    for dir in &dirs {
        if let Ok(rd) = std::fs::read_dir(dir.join("holders")) {
            for h in rd.flatten() {
                users.push(h.file_name().to_string_lossy().into_owned());
            }
        }
    }
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    for l in swaps.lines().skip(1) {
        if let Some(s) = l.split_whitespace().next()
            && s.trim_start_matches("/dev/").starts_with(&name)
        {
            users.push(format!("swap {s}"));
        }
    }
    if !users.is_empty() {
        return refuse(format!("in use by {}; stop those first", users.join(", ")));
    }
    // O_EXCL on a block device fails with EBUSY while anything in the
    // kernel holds it (open(2), "O_EXCL ... block devices").
    if let Err(e) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(&canon)
    {
        return refuse(format!("busy ({e})"));
    }
    let removable = std::fs::read_to_string(sys.join("removable")).unwrap_or_default();
    if removable.trim() != "1" && !force {
        return refuse(format!(
            "it is not a removable disk, so it may hold a system:\n{}add --force if you are sure",
            describe(&d)
        ));
    }
    Ok(d)
}

/// Writes the image to `dev`: the first `image` bytes, then sfdisk moves
/// the backup GPT to the device's end.
pub fn write_device(image: &Path, dev: &Path) -> Result<()> {
    let mut r = File::open(image).with_context(|| format!("reading {}", image.display()))?;
    let mut w = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_EXCL)
        .open(dev)
        .with_context(|| format!("opening {} for writing", dev.display()))?;
    let mut buf = vec![0u8; 4 * MIB as usize];
    loop {
        let n =
            read_full(&mut r, &mut buf).with_context(|| format!("reading {}", image.display()))?;
        if n == 0 {
            break;
        }
        w.write_all(&buf[..n])
            .with_context(|| format!("writing {}", dev.display()))?;
    }
    w.sync_all()
        .with_context(|| format!("flushing {}", dev.display()))?;
    drop(w);
    // The image's backup GPT sits at the image's end; sfdisk(8)
    // `--relocate gpt-bak-std` moves it to the end of the device.
    Cmd::new("sfdisk")
        .args(["--relocate", "gpt-bak-std"])
        .arg(dev)
        .output()
        .with_context(|| format!("moving the backup GPT to the end of {}", dev.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("1500M").unwrap(), 1500 << 20);
        assert_eq!(parse_size("4096k").unwrap(), 4 << 20);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        for bad in ["", "0", "2X", "G", "-1G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn esp_fits_two_builds() {
        assert_eq!(esp_size(10 * MIB), 256 * MIB);
        assert_eq!(esp_size(200 * MIB), 464 * MIB);
    }
}
