//! The e2e server's initramfs, built natively on the host instead of under
//! TCG in the provision VM (issue 17: spend TCG time only where the product
//! runs). The rootfs tarball is unpacked into a directory, the server's
//! configuration written into it by the same script provision.sh runs on
//! the real disks (tests/qemu/e2e/server-etc.sh, from the fixed UUIDs of
//! the env file), and `update-initramfs` runs in a chroot of it with a
//! fresh /proc and /sys (no /dev of the host: the tarball has its own
//! nodes). The result, `boot/initrd.img-KVER` in a tar, is cached under
//! target/e2e/ by a hash of the rootfs, the env and the script, and the
//! provision VM copies it in (its INITRD disk) instead of building it.
//!
//! Only as root (chroot, mount); otherwise the VM builds it as before.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::rootfs::{CACHE, Mount, Suite, cached_of, pad_to_mib, rootfs_logged, run_logged, sha16};
use super::state::env_of;

/// The script that writes the server's configuration (also run by
/// provision.sh).
const SERVER_ETC: &str = "tests/qemu/e2e/server-etc.sh";

/// `scenario`'s initramfs tar, built unless cached; None when this process
/// is not root (the provision VM then builds it). Command output goes to
/// `log` when given (CI builds it in the background).
pub fn initrd(scenario: &str, suite: Suite, log: Option<&Path>) -> Result<Option<PathBuf>> {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: the server's initramfs is built in the provision VM");
        return Ok(None);
    }
    if scenario == super::variant::SDBOOT {
        // Its initrd is the one dracut made in the rootfs when the kernel
        // was installed (generic: every storage driver; rootfs.rs), which
        // provision-sdboot.sh hands to kernel-install.
        return Ok(None);
    }
    let tar = rootfs_logged(suite, scenario, log)?;
    let script =
        std::fs::read_to_string(SERVER_ETC).with_context(|| format!("reading {SERVER_ETC}"))?;
    let env_text = env_of("provision", scenario, suite);
    let key = sha16(&format!("{}\n{env_text}\n{script}", tar.display()))?;
    // `initrd-raid1-lvm-KEY.tar`, `initrd-raid1-lvm-trixie-KEY.tar`.
    let name = format!("{scenario}{}", suite.suffix());
    let out = PathBuf::from(CACHE).join(format!("initrd-{name}-{key}.tar"));
    if out.exists() {
        eprintln!("server initramfs cached: {}", out.display());
        return Ok(Some(out));
    }
    let root = PathBuf::from(CACHE).join(format!("initrd-root-{name}"));
    remove_tree(&root)?;
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let r = build(&tar, &root, &env_text, &out, log);
    // The tree goes whether the build worked or not (its mounts are gone:
    // the guards dropped inside build).
    remove_tree(&root)?;
    r?;
    // Initramfs tars of older keys are never used again.
    for e in std::fs::read_dir(CACHE)?.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if cached_of(&n, &format!("initrd-{scenario}"), suite) && e.path() != out {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(Some(out))
}

fn build(tar: &Path, root: &Path, env_text: &str, out: &Path, log: Option<&Path>) -> Result<()> {
    let s = |p: &Path| p.to_str().map(str::to_string).context("non-UTF-8 path");
    let rs = s(root)?;
    run_logged(
        log,
        "tar",
        &[
            "-x",
            "-p",
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
            "--acls",
            "-f",
            &s(tar)?,
            "-C",
            &rs,
        ],
    )?;
    let env_file = root.with_extension("env");
    std::fs::write(&env_file, env_text)?;
    run_logged(log, "sh", &[SERVER_ETC, &rs, &s(&env_file)?])?;
    {
        let _proc = Mount::new("proc", &root.join("proc"))?;
        let _sys = Mount::new("sysfs", &root.join("sys"))?;
        run_logged(log, "chroot", &[&rs, "update-initramfs", "-u", "-k", "all"])?;
    }
    let boot = root.join("boot");
    let mut names: Vec<String> = std::fs::read_dir(&boot)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("initrd.img-"))
        .collect();
    names.sort();
    if names.is_empty() {
        bail!(
            "update-initramfs left no initrd.img-* in {}",
            boot.display()
        );
    }
    let part = out.with_extension("tar.part");
    let mut args = vec!["-cf".to_string(), s(&part)?, "-C".into(), s(&boot)?];
    args.extend(names);
    run_logged(
        log,
        "tar",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    pad_to_mib(&part)?;
    std::fs::rename(&part, out).with_context(|| format!("renaming {}", part.display()))?;
    let _ = std::fs::remove_file(env_file);
    Ok(())
}

/// Removes the unpacked tree `root`, but never while something is mounted
/// below it (its proc or sys: removing through those would reach the
/// host's).
fn remove_tree(root: &Path) -> Result<()> {
    if std::fs::symlink_metadata(root).is_err() {
        return Ok(());
    }
    if let Some(p) = mount_below(root) {
        bail!(
            "{} is still a mount point: unmount it (umount {0}) before {} can go",
            p.display(),
            root.display()
        );
    }
    std::fs::remove_dir_all(root).with_context(|| format!("removing {}", root.display()))
}

/// The first of `root`'s proc, sys, dev that is a mount point (another
/// file system than `root`'s).
fn mount_below(root: &Path) -> Option<PathBuf> {
    let top = std::fs::symlink_metadata(root).ok()?.dev();
    ["proc", "sys", "dev"]
        .iter()
        .map(|d| root.join(d))
        .find(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir() && m.dev() != top))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_with_a_mount_below_is_never_removed() {
        // The host's own root has /proc mounted: seen (and only looked at).
        assert_eq!(mount_below(Path::new("/")), Some(PathBuf::from("/proc")));
        let dir = std::env::temp_dir().join(format!("xtask-initrd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("proc")).unwrap();
        std::fs::write(dir.join("f"), "x").unwrap();
        assert_eq!(mount_below(&dir), None);
        remove_tree(&dir).unwrap();
        assert!(!dir.exists());
        // Nothing there: nothing to do.
        remove_tree(&dir).unwrap();
    }
}
