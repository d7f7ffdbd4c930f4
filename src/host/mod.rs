//! Facts about the running host: which kernel goes into the rescue system,
//! os-release, architecture, boot mode, and which storage features are in
//! use (they decide which tools are required). Hands on [`HostFacts`], plain
//! data read once at start-up.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::error::{Code, fail};

/// The kernel the rescue system boots.
#[derive(Debug, Clone, Serialize)]
pub struct Kernel {
    pub version: String,
    /// `/boot/vmlinuz-KVER` (host path).
    pub image: PathBuf,
    /// `/lib/modules/KVER` (host path).
    pub modules_dir: PathBuf,
    /// `/boot/config-KVER` when present.
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BootMode {
    Uefi,
    Bios,
}

/// Storage features in use on the host; each makes some tools required.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Storage {
    /// File system types of mounted block-device file systems (ext4, xfs, ...).
    pub filesystems: BTreeSet<String>,
    /// Linux software RAID arrays exist (/proc/mdstat).
    pub md: bool,
    /// Device-mapper devices owned by LVM exist.
    pub lvm: bool,
    /// Device-mapper devices owned by cryptsetup (LUKS) exist.
    pub luks: bool,
    /// Active swap exists.
    pub swap: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostFacts {
    pub hostname: String,
    pub arch: String,
    /// The kernel running now (often not installed on this host's disks).
    pub running_kernel: String,
    pub kernel: Kernel,
    pub os_release: BTreeMap<String, String>,
    pub boot_mode: BootMode,
    pub storage: Storage,
}

impl HostFacts {
    /// Reads the facts of the system below `root` (`/` for the host).
    /// `kernel_version` picks the kernel instead of the newest one.
    pub fn detect(root: &Path, kernel_version: Option<&str>) -> Result<Self> {
        let uts = crate::sys::host::uname();
        Ok(HostFacts {
            // The one host name of every command (see sys::host::hostname):
            // the ISO's backup lookup must find what `backup` named.
            hostname: crate::sys::host::hostname(root),
            arch: uts.machine,
            running_kernel: uts.release,
            kernel: choose_kernel(root, kernel_version)?,
            os_release: os_release(root),
            boot_mode: if root.join("sys/firmware/efi").is_dir() {
                BootMode::Uefi
            } else {
                BootMode::Bios
            },
            storage: storage(root),
        })
    }
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Picks the kernel: the configured version, else the newest
/// `/boot/vmlinuz-*` that has `/lib/modules/KVER`. The running kernel is not
/// preferred: on many hosts (containers, this build machine) it has no files
/// here at all.
pub fn choose_kernel(root: &Path, wanted: Option<&str>) -> Result<Kernel> {
    let boot = root.join("boot");
    let mut candidates: Vec<String> = match std::fs::read_dir(&boot) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_prefix("vmlinuz-"))
                    .map(str::to_string)
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    candidates.sort_by(|a, b| compare_versions(a, b));
    let modules_dir = |v: &str| root.join("lib/modules").join(v);
    let usable: Vec<&String> = candidates
        .iter()
        .filter(|v| modules_dir(v).join("modules.dep").is_file())
        .collect();
    let make = |v: &str| Kernel {
        version: v.to_string(),
        image: boot.join(format!("vmlinuz-{v}")),
        modules_dir: modules_dir(v),
        config: Some(boot.join(format!("config-{v}"))).filter(|p| p.is_file()),
    };
    if let Some(v) = wanted {
        if !boot.join(format!("vmlinuz-{v}")).is_file() {
            return Err(fail(
                Code::Host,
                format!(
                    "kernel {v}: no {}; install its package (e.g. linux-image-{v}) or choose one of: {}",
                    boot.join(format!("vmlinuz-{v}")).display(),
                    list_or_none(&candidates)
                ),
            ));
        }
        if !modules_dir(v).join("modules.dep").is_file() {
            return Err(fail(
                Code::Host,
                format!(
                    "kernel {v} has no modules in {} (no modules.dep); install its modules package (e.g. linux-image-{v}) or choose one of: {}",
                    modules_dir(v).display(),
                    list_or_none(&usable.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                ),
            ));
        }
        return Ok(make(v));
    }
    match usable.last() {
        Some(v) => Ok(make(v)),
        None => Err(fail(
            Code::Host,
            format!(
                "no kernel with modules found: need {}/vmlinuz-KVER and {}/KVER/modules.dep; install a kernel (Debian: apt-get install linux-image-amd64)",
                boot.display(),
                root.join("lib/modules").display()
            ),
        )),
    }
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "(none installed)".to_string()
    } else {
        v.join(", ")
    }
}

/// Orders kernel versions like `sort -V`: digit runs compare as numbers.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<Result<u64, String>> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut digits = false;
        for c in s.chars() {
            if c.is_ascii_digit() != digits && !cur.is_empty() {
                out.push(if digits {
                    Ok(cur.parse().unwrap_or(u64::MAX))
                } else {
                    Err(std::mem::take(&mut cur))
                });
                cur.clear();
            }
            digits = c.is_ascii_digit();
            cur.push(c);
        }
        if !cur.is_empty() {
            out.push(if digits {
                Ok(cur.parse().unwrap_or(u64::MAX))
            } else {
                Err(cur)
            });
        }
        out
    }
    chunks(a).cmp(&chunks(b))
}

/// os-release(5): /etc/os-release, else /usr/lib/os-release.
fn os_release(root: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(root.join("etc/os-release"))
        .or_else(|_| std::fs::read_to_string(root.join("usr/lib/os-release")))
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_string(),
                v.trim().trim_matches(|c| c == '"' || c == '\'').to_string(),
            )
        })
        .collect()
}

fn storage(root: &Path) -> Storage {
    let mut s = Storage::default();
    // /proc/self/mounts: device, mount point, type, ...; keep file systems on
    // block devices (the source starts with /dev/).
    if let Ok(mounts) = std::fs::read_to_string(root.join("proc/self/mounts")) {
        for l in mounts.lines() {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() >= 3 && f[0].starts_with("/dev/") {
                s.filesystems.insert(f[2].to_string());
            }
        }
    }
    if let Ok(mdstat) = std::fs::read_to_string(root.join("proc/mdstat")) {
        s.md = mdstat.lines().any(|l| l.starts_with("md"));
    }
    // dm/uuid of each device-mapper device names its owner: "LVM-..." or
    // "CRYPT-LUKS2-..." (see lvm2 and cryptsetup sources).
    if let Ok(rd) = std::fs::read_dir(root.join("sys/block")) {
        for e in rd.filter_map(|e| e.ok()) {
            if let Some(uuid) = read_trim(&e.path().join("dm/uuid")) {
                s.lvm |= uuid.starts_with("LVM-");
                s.luks |= uuid.starts_with("CRYPT-LUKS");
            }
        }
    }
    if let Ok(swaps) = std::fs::read_to_string(root.join("proc/swaps")) {
        s.swap = swaps.lines().count() > 1;
    }
    s
}

/// The mkrescue binary that is running, for /init of the image.
pub fn own_binary() -> Result<PathBuf> {
    std::env::current_exe().context("finding the mkrescue binary (/proc/self/exe)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    fn fake_root(kernels: &[(&str, bool)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("boot")).unwrap();
        for (v, modules) in kernels {
            std::fs::write(d.path().join(format!("boot/vmlinuz-{v}")), b"k").unwrap();
            if *modules {
                let m = d.path().join("lib/modules").join(v);
                std::fs::create_dir_all(&m).unwrap();
                std::fs::write(m.join("modules.dep"), b"").unwrap();
            }
        }
        d
    }

    #[test]
    fn versions_sort_numerically() {
        assert_eq!(
            compare_versions("6.10.0-1-amd64", "6.9.0-3-amd64"),
            Ordering::Greater
        );
        assert_eq!(
            compare_versions("6.1.0-56-amd64", "6.1.0-9-amd64"),
            Ordering::Greater
        );
    }

    #[test]
    fn newest_kernel_with_modules_wins() {
        let r = fake_root(&[
            ("6.1.0-9-amd64", true),
            ("6.1.0-56-amd64", true),
            ("6.5.0-1-amd64", false),
        ]);
        let k = choose_kernel(r.path(), None).unwrap();
        assert_eq!(k.version, "6.1.0-56-amd64");
    }

    #[test]
    fn kernel_without_modules_is_a_clear_error() {
        let r = fake_root(&[("6.1.0-56-amd64", true), ("6.5.0-1-amd64", false)]);
        let e = choose_kernel(r.path(), Some("6.5.0-1-amd64")).unwrap_err();
        let s = format!("{e:#}");
        assert!(s.contains("kernel 6.5.0-1-amd64 has no modules"), "{s}");
        assert!(s.contains("6.1.0-56-amd64"), "{s}");
        assert_eq!(crate::error::code_of(&e), Code::Host);
    }

    #[test]
    fn no_kernel_at_all_says_how_to_install_one() {
        let r = fake_root(&[]);
        let e = choose_kernel(r.path(), None).unwrap_err();
        assert!(format!("{e:#}").contains("apt-get install linux-image-amd64"));
    }
}
