//! The rescue image the server built on itself, checked here on the host
//! with the image's own tools (issue 19, for a server on another Debian
//! release than this host): its initrd is taken out of the ISO (xorriso)
//! and unpacked (zstd, GNU cpio); in a chroot of it the image's own
//! dynamic loader must find every library of every ELF program and
//! library (`ld.so --list`, as tests/it/rescue/image.rs does for an image
//! of this host), and the image's own modprobe must resolve every module
//! it carries, in whatever compression the server's kernel installs them
//! (`--show-depends` reads the image's modules.dep.bin). The tree is
//! removed afterwards; the counts go into the report.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::util;

/// The image's dynamic loader (x86-64 psABI's PT_INTERP).
const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";

/// Checks the rescue image in `iso`, unpacking it under `work`; Ok: the
/// report's details (ELF files, modules and their file suffixes).
pub(super) fn check_iso(iso: &Path, work: &Path) -> Result<Value> {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
    let r = check_in(iso, work);
    let _ = std::fs::remove_dir_all(work);
    r
}

fn check_in(iso: &Path, work: &Path) -> Result<Value> {
    let initrd = work.join("initrd.img");
    util::run(
        "xorriso",
        &[
            "-osirrox",
            "on",
            "-indev",
            iso.to_str().context("non-UTF-8 path")?,
            "-extract",
            "/boot/initrd.img",
            initrd.to_str().context("non-UTF-8 path")?,
        ],
    )?;
    let tree = work.join("tree");
    std::fs::create_dir_all(&tree)?;
    let cpio = Command::new("zstd")
        .arg("-dc")
        .arg(&initrd)
        .output()
        .context("running zstd")?;
    if !cpio.status.success() {
        bail!("zstd -dc {} failed", initrd.display());
    }
    let mut child = Command::new("cpio")
        .args(["-idm", "--quiet", "--no-absolute-filenames"])
        .current_dir(&tree)
        .stdin(Stdio::piped())
        .spawn()
        .context("running GNU cpio")?;
    child
        .stdin
        .take()
        .context("cpio stdin")?
        .write_all(&cpio.stdout)?;
    if !child.wait()?.success() {
        bail!("cpio -idm of {} failed", initrd.display());
    }
    let elves = elf_files(&tree)?;
    let mut problems = Vec::new();
    for bin in &elves {
        let out = Command::new("chroot")
            .arg(&tree)
            .args([LOADER, "--list", bin])
            .output()
            .context("running chroot")?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(p) = loader_problem(bin, out.status.success(), &text) {
            problems.push(p);
        }
    }
    let (modules, suffixes) = modules(&tree)?;
    problems.extend(modprobe_problems(&tree, &modules)?);
    if !problems.is_empty() {
        bail!(
            "the rescue image the server built has {} problems:\n{}",
            problems.len(),
            problems.join("\n")
        );
    }
    Ok(json!({
        "elf_files": elves.len(),
        "libraries_missing": 0,
        "modules": modules.1.len(),
        "module_suffixes": suffixes,
        "kernel": modules.0,
    }))
}

/// What `ld.so --list BIN` printed, as one problem line, or None: a
/// library "not found", or a failure other than a static program's "not a
/// dynamic executable".
fn loader_problem(bin: &str, ok: bool, text: &str) -> Option<String> {
    if text.contains("not found") {
        Some(format!("{bin}: {}", text.trim().replace('\n', " | ")))
    } else if !ok && !text.contains("not a dynamic executable") {
        Some(format!("{bin}: {}", text.trim()))
    } else {
        None
    }
}

/// Every x86-64 ELF executable or shared object in `tree`, as image paths.
fn elf_files(tree: &Path) -> Result<Vec<String>> {
    use std::io::Read;
    let mut out = Vec::new();
    let mut stack = vec![tree.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let ft = e.file_type()?;
            let p = e.path();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                let mut head = [0u8; 20];
                let n = std::fs::File::open(&p)?.read(&mut head)?;
                // elf(5): EI_CLASS (byte 4) 2 = 64-bit; e_type (16) 2 =
                // ET_EXEC, 3 = ET_DYN; e_machine (18, LE) 62 = x86-64.
                // Modules are ET_REL and GRUB's i386 images 32-bit: the
                // loader runs neither.
                if n == 20
                    && &head[..4] == b"\x7fELF"
                    && head[4] == 2
                    && head[18] == 62
                    && head[19] == 0
                    && (head[16] == 2 || head[16] == 3)
                {
                    out.push(format!("/{}", p.strip_prefix(tree)?.display()));
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The kernel version and module names (as modprobe takes them) under the
/// image's lib/modules, and the file suffixes they come in (`.ko.xz`).
type Modules = (String, Vec<String>);

fn modules(tree: &Path) -> Result<(Modules, Vec<String>)> {
    let root = tree.join("lib/modules");
    let kver = std::fs::read_dir(&root)
        .with_context(|| format!("reading {}", root.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .context("no kernel under lib/modules in the image")?;
    let mut names = Vec::new();
    let mut suffixes = Vec::new();
    let mut stack = vec![root.join(&kver).join("kernel")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type()?.is_dir() {
                stack.push(e.path());
            } else if let Some((stem, ext)) = module_name(&name) {
                names.push(stem);
                if !suffixes.contains(&ext) {
                    suffixes.push(ext);
                }
            }
        }
    }
    names.sort();
    suffixes.sort();
    Ok(((kver, names), suffixes))
}

/// `dm-mod.ko.xz` -> (`dm_mod`, `.ko.xz`): modprobe(8) treats - and _
/// alike.
fn module_name(file: &str) -> Option<(String, String)> {
    let i = file.find(".ko")?;
    let ext = &file[i..];
    matches!(ext, ".ko" | ".ko.xz" | ".ko.zst" | ".ko.gz")
        .then(|| (file[..i].replace('-', "_"), ext.to_string()))
}

/// The image's own modprobe, in a chroot of it, resolving every module
/// (`--show-depends`: one `insmod PATH` line each, from modules.dep.bin).
fn modprobe_problems(tree: &Path, modules: &Modules) -> Result<Vec<String>> {
    let (kver, names) = modules;
    if names.len() < 100 {
        return Ok(vec![format!(
            "only {} modules under lib/modules/{kver}",
            names.len()
        )]);
    }
    let mut problems = Vec::new();
    for must in ["virtio_blk", "ext4", "xfs", "raid1", "dm_mod"] {
        if !names.iter().any(|n| n == must) {
            problems.push(format!("no {must} module in the image"));
        }
    }
    for chunk in names.chunks(200) {
        let out = Command::new("chroot")
            .arg(tree)
            .args(["modprobe", "-S", kver, "-a", "--show-depends"])
            .args(chunk)
            .output()
            .context("running modprobe in the image")?;
        if !out.status.success() {
            problems.push(format!(
                "modprobe --show-depends in the image failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(problems)
}

/// Where the tree goes: beside the scenario's ISO.
pub(super) fn work_dir(iso: &Path) -> PathBuf {
    iso.with_extension("unpacked")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_files_and_loader_output() {
        assert_eq!(
            module_name("dm-mod.ko.xz"),
            Some(("dm_mod".into(), ".ko.xz".into()))
        );
        assert_eq!(
            module_name("ext4.ko.zst"),
            Some(("ext4".into(), ".ko.zst".into()))
        );
        assert_eq!(module_name("ext4.ko"), Some(("ext4".into(), ".ko".into())));
        assert_eq!(module_name("modules.dep"), None);
        assert_eq!(module_name("x.ko.bak"), None);
        // A library the loader cannot find is a problem, a static
        // program is not.
        let nf = "\tlibkmod.so.2 => not found\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6\n";
        assert!(loader_problem("/usr/sbin/modprobe", true, nf).is_some());
        assert!(loader_problem("/init", false, "\tnot a dynamic executable\n").is_none());
        assert!(loader_problem("/bin/x", true, "\tlibc.so.6 => /lib/libc.so.6\n").is_none());
        assert!(loader_problem("/bin/x", false, "Segmentation fault").is_some());
    }
}
