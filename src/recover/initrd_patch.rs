//! Drivers added to a restored initramfs without rebuilding it.
//!
//! When the only thing wrong with the restored initramfs is that the new
//! disks' driver is not in it (the server had virtio disks, the replacement
//! has NVMe), finalize appends one more archive to the image instead of
//! running update-initramfs or dracut in a chroot, which takes minutes
//! under emulation (81 s of a 2-minute recover in the e2e's NVMe variant)
//! and seconds on hardware. The archive holds:
//!
//! - the missing modules, their dependencies and softdeps, and the firmware
//!   they name, from the restored system's own `/lib/modules/KVER` and
//!   `/lib/firmware`, at the paths the image already keeps its modules
//!   under;
//! - the module indexes (`modules.dep`, `modules.alias`, their `.bin`
//!   forms, ...) that `depmod -b` writes for exactly the modules the image
//!   then holds, its old ones (read back from the image) and the new ones,
//!   so udev loads the driver by its alias and modprobe finds it by name;
//! - for initramfs-tools, `conf/modules` with the new modules added, so its
//!   init loads them whatever udev does.
//!
//! The kernel unpacks the archives of an initramfs one after the other into
//! one tree, a later file of a name replacing an earlier one
//! (Documentation/driver-api/early-userspace/buffer-format.rst: the buffer
//! is any sequence of cpio archives, compressed or not, and NUL padding).
//! The new archive is compressed as the image's last segment is, one more
//! gzip member, zstd frame or xz stream (CRC32 check: the kernel's xz
//! decoder knows no other), so every tool that reads the image reads it;
//! an image with no compressed segment gets an uncompressed archive that
//! starts on a 4-byte boundary, as the kernel requires of one.
//!
//! The image's first bytes are left as they were: `truncate -s N` with the
//! size the report names gives back the original. The tool's own
//! configuration lists the modules too (`needs::add_drivers`), so the next
//! update-initramfs or dracut, at the next kernel update, builds the image
//! whole with them. Anything this cannot do (no module index in the image,
//! a module the system does not have, firmware it lacks) is an error, and
//! finalize then regenerates the image with the system's tool instead.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::needs::{self, Compression};
use crate::exec::Cmd;
use crate::image::cpio::{self, Header};
use crate::kmod::{HostModules, ModuleIndex};

/// What [`add_modules`] did to one image, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patched {
    pub initrd: PathBuf,
    /// Module names added (the missing ones and what they need).
    pub modules: Vec<String>,
    /// Firmware files added.
    pub firmware: usize,
    /// The image's size before: its first `orig_len` bytes are the original.
    pub orig_len: u64,
    /// Bytes appended.
    pub appended: u64,
    pub compression: Compression,
}

impl Patched {
    /// The report's line, naming the image `shown` (its path in the
    /// restored system, where the admin would cut it back).
    pub fn line(&self, kver: &str, shown: &Path) -> String {
        let fw = if self.firmware > 0 {
            format!(" and {} firmware files", self.firmware)
        } else {
            String::new()
        };
        format!(
            "initramfs appended for {kver}: {}{fw} into {} as one more {} archive ({} bytes; `truncate -s {} {}` gives back the original)",
            self.modules.join(", "),
            shown.display(),
            match self.compression {
                Compression::Plain => "uncompressed",
                Compression::Gzip => "gzip",
                Compression::Zstd => "zstd",
                Compression::Xz => "xz",
            },
            self.appended,
            self.orig_len,
            shown.display()
        )
    }
}

/// The index files depmod writes; the ones the image had or depmod wrote
/// go into the new archive (`modules.order`, `modules.builtin` and
/// `modules.builtin.modinfo` are depmod's input, the kernel package's).
const INDEXES: &[&str] = &[
    "modules.dep",
    "modules.dep.bin",
    "modules.alias",
    "modules.alias.bin",
    "modules.softdep",
    "modules.weakdep",
    "modules.symbols",
    "modules.symbols.bin",
    "modules.builtin.bin",
    "modules.builtin.alias.bin",
    "modules.devname",
];

/// depmod's inputs beside the modules, copied from the kernel's directory.
const INPUTS: &[&str] = &[
    "modules.order",
    "modules.builtin",
    "modules.builtin.modinfo",
];

/// Appends `missing` (module names of kernel `kver`) with what they need to
/// the initramfs `initrd` of the restored system at `root`. `tool` is the
/// system's initramfs tool (`update-initramfs` also gets `conf/modules`).
/// The image is checked afterwards by reading it back; on any error it is
/// cut back to its original size. None when the image has them all.
pub fn add_modules(
    root: &Path,
    kver: &str,
    initrd: &Path,
    missing: &[String],
    tool: &str,
) -> Result<Option<Patched>> {
    let data = std::fs::read(initrd).with_context(|| format!("reading {}", initrd.display()))?;
    let image = Image::read(&data, kver).with_context(|| initrd.display().to_string())?;
    let kdir = modules_dir(root, kver)?;
    let index = ModuleIndex::load(&kdir)?;
    let fw_dirs = [root.join("lib/firmware"), root.join("usr/lib/firmware")];
    // Host policy with no host: only `missing`, with their dependencies,
    // softdeps and firmware.
    let sel = index.select(
        crate::config::ModulePolicy::Host,
        &HostModules::default(),
        missing,
        &fw_dirs,
    )?;
    if !sel.firmware_missing.is_empty() {
        bail!(
            "firmware {} is not in the restored system",
            sel.firmware_missing.join(", ")
        );
    }
    let mut new: BTreeMap<String, PathBuf> = BTreeMap::new();
    for p in &sel.modules {
        let rel = p
            .strip_prefix(&kdir)
            .with_context(|| format!("{} is not under {}", p.display(), kdir.display()))?
            .to_string_lossy()
            .into_owned();
        if !image.modules.contains_key(&rel) {
            new.insert(rel, p.clone());
        }
    }
    if new.is_empty() {
        // This kernel's image has them (another kernel's lacked them).
        return Ok(None);
    }
    let names: Vec<String> = new
        .keys()
        .filter_map(|rel| needs::module_name(rel))
        .collect();

    // depmod over exactly what the image will hold.
    let stage = tempfile::tempdir().context("creating a directory for depmod")?;
    let sdir = stage.path().join("lib/modules").join(kver);
    for (rel, bytes) in &image.modules {
        put(&sdir.join(rel), bytes)?;
    }
    for (rel, src) in &new {
        let bytes = std::fs::read(src).with_context(|| format!("reading {}", src.display()))?;
        put(&sdir.join(rel), &bytes)?;
    }
    for f in INPUTS {
        match std::fs::read(kdir.join(f)) {
            Ok(b) => put(&sdir.join(f), &b)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", kdir.join(f).display())),
        }
    }
    // depmod looks in BASE/lib/modules or, built for merged /usr, in
    // BASE/usr/lib/modules: both lead to the one staged directory.
    std::fs::create_dir_all(stage.path().join("usr/lib"))?;
    std::os::unix::fs::symlink("../../lib/modules", stage.path().join("usr/lib/modules"))?;
    Cmd::new("depmod")
        .arg("-b")
        .arg(stage.path())
        .arg(kver)
        .output()
        .context("depmod for the added modules")?;

    // The archive: new modules and firmware, the indexes, conf/modules.
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for (rel, src) in &new {
        let bytes = std::fs::read(src).with_context(|| format!("reading {}", src.display()))?;
        files.push((format!("{}/{rel}", image.prefix), bytes));
    }
    let fw_prefix = if image.prefix.trim_start_matches("./").starts_with("usr/") {
        "usr/lib/firmware"
    } else {
        "lib/firmware"
    };
    let dot = if image.prefix.starts_with("./") {
        "./"
    } else {
        ""
    };
    for p in &sel.firmware {
        let rel = fw_dirs
            .iter()
            .find_map(|d| p.strip_prefix(d).ok())
            .with_context(|| format!("{} is not under the firmware directories", p.display()))?;
        let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        files.push((format!("{dot}{fw_prefix}/{}", rel.display()), bytes));
    }
    for f in INDEXES {
        let p = sdir.join(f);
        if p.is_file() {
            let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
            files.push((format!("{}/{f}", image.prefix), bytes));
        }
    }
    if tool == "update-initramfs" {
        let mut text =
            String::from_utf8_lossy(image.conf_modules.as_deref().unwrap_or(&[])).into_owned();
        let listed: BTreeSet<String> = text.lines().map(|l| l.trim().replace('-', "_")).collect();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        for m in missing {
            if !listed.contains(&m.replace('-', "_")) {
                text.push_str(m);
                text.push('\n');
            }
        }
        files.push((format!("{dot}conf/modules"), text.into_bytes()));
    }
    let archive = archive(&files)?;

    let appended = append(initrd, data.len() as u64, image.compression, &archive)?;
    let orig_len = data.len() as u64;
    // Read back: the image must now list every missing module.
    let check = needs::initrd_modules(initrd).and_then(|have| {
        let lacking: Vec<&String> = missing
            .iter()
            .filter(|m| !have.contains(&m.replace('-', "_")))
            .collect();
        if lacking.is_empty() {
            Ok(())
        } else {
            bail!("read back, it still lacks {lacking:?}")
        }
    });
    if let Err(e) = check {
        cut(initrd, orig_len)?;
        return Err(e.context(format!("{} after appending", initrd.display())));
    }
    Ok(Some(Patched {
        initrd: initrd.to_path_buf(),
        modules: names,
        firmware: sel.firmware.len(),
        orig_len,
        appended,
        compression: image.compression,
    }))
}

/// The kernel's module directory in the restored system.
fn modules_dir(root: &Path, kver: &str) -> Result<PathBuf> {
    ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| root.join(d).join(kver))
        .find(|p| p.join("modules.dep").is_file())
        .with_context(|| format!("the restored system has no /lib/modules/{kver}/modules.dep"))
}

/// What the image holds that matters here.
struct Image {
    /// Where its modules are (`usr/lib/modules/KVER`, as stored).
    prefix: String,
    /// Module path below `prefix` -> contents.
    modules: BTreeMap<String, Vec<u8>>,
    /// initramfs-tools' list of modules its init loads.
    conf_modules: Option<Vec<u8>>,
    compression: Compression,
}

impl Image {
    fn read(data: &[u8], kver: &str) -> Result<Image> {
        let mut prefix = None;
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut conf_modules = None;
        let compression = needs::read_initrd(data, &mut |m| {
            // Regular files only (S_IFREG); later members of a name win,
            // as when the kernel unpacks them.
            if m.mode & 0o170000 != 0o100000 {
                return;
            }
            let plain = m.name.trim_start_matches("./");
            if plain == "conf/modules" {
                conf_modules = Some(m.data.to_vec());
            }
            if let Some(dir) = m.name.strip_suffix("/modules.dep")
                && dir.ends_with(&format!("modules/{kver}"))
            {
                prefix = Some(dir.to_string());
            }
            if needs::module_name(m.name).is_some() {
                files.insert(m.name.to_string(), m.data.to_vec());
            }
        })?;
        let prefix = prefix
            .with_context(|| format!("no modules/{kver}/modules.dep in the image to add to"))?;
        let below = format!("{prefix}/");
        let modules = files
            .into_iter()
            .filter_map(|(n, d)| n.strip_prefix(&below).map(|r| (r.to_string(), d)))
            .collect();
        Ok(Image {
            prefix,
            modules,
            conf_modules,
            compression,
        })
    }
}

fn put(p: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    std::fs::write(p, bytes).with_context(|| format!("writing {}", p.display()))
}

/// A newc archive of `files` (root-owned, mode 0644) with every directory
/// above them first (0755; the kernel does not make a file's parents, and
/// one that exists already is left as it is).
fn archive(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let mut dirs: BTreeSet<String> = BTreeSet::new();
    for (name, _) in files {
        let mut d = Path::new(name).parent();
        while let Some(p) = d {
            let s = p.to_string_lossy();
            if s.is_empty() || s == "." {
                break;
            }
            dirs.insert(s.into_owned());
            d = p.parent();
        }
    }
    let mut w = cpio::Writer::new(Vec::new());
    let mut ino = 1u32;
    // BTreeSet order puts a directory before everything below it.
    for d in &dirs {
        let h = Header {
            ino,
            mode: 0o040755,
            nlink: 2,
            ..Header::default()
        };
        w.entry(d.as_bytes(), &h, &[])?;
        ino += 1;
    }
    for (name, bytes) in files {
        let h = Header {
            ino,
            mode: 0o100644,
            nlink: 1,
            filesize: u32::try_from(bytes.len()).context("a file of 4 GiB or more")?,
            ..Header::default()
        };
        w.entry(name.as_bytes(), &h, bytes)?;
        ino += 1;
    }
    Ok(w.finish()?.0)
}

/// Appends `archive` to the image of `len` bytes, stored as `how`; returns
/// the bytes written.
fn append(initrd: &Path, len: u64, how: Compression, archive: &[u8]) -> Result<u64> {
    let bytes = match how {
        Compression::Plain => {
            // The kernel takes an uncompressed archive only at a 4-byte
            // boundary of the image; NULs in between are skipped.
            let mut v = vec![0u8; cpio::pad4(len)];
            v.extend_from_slice(archive);
            v
        }
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(archive)?;
            e.finish()?
        }
        Compression::Zstd => zstd::encode_all(archive, 3)?,
        Compression::Xz => {
            let stream =
                liblzma::stream::Stream::new_easy_encoder(6, liblzma::stream::Check::Crc32)?;
            let mut e = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
            e.write_all(archive)?;
            e.finish()?
        }
    };
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(initrd)
        .with_context(|| format!("opening {}", initrd.display()))?;
    let r = f.write_all(&bytes).and_then(|()| f.sync_all());
    if let Err(e) = r {
        drop(f);
        cut(initrd, len)?;
        return Err(e).with_context(|| format!("appending to {}", initrd.display()));
    }
    Ok(bytes.len() as u64)
}

/// Cuts `initrd` back to its original `len` bytes.
fn cut(initrd: &Path, len: u64) -> Result<()> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(initrd)
        .with_context(|| format!("opening {}", initrd.display()))?;
    f.set_len(len)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cutting {} back to its {len} bytes", initrd.display()))
}
