//! Finds the firmware files that modules name, in the order the kernel's
//! firmware loader searches for them.
//!
//! drivers/base/firmware_loader/main.c tries the plain name in every search
//! directory first, then (with `CONFIG_FW_LOADER_COMPRESS_ZSTD`/`_XZ`,
//! kernels ≥ 5.19 for zstd) `NAME.zst`, then `NAME.xz`, and loads the first
//! file it finds. We take exactly that file, so the rescue kernel loads the
//! same firmware the host's would.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::glob::{fnmatch, has_wildcard};

/// Suffixes in the loader's order (see the module doc).
const SUFFIXES: [&str; 3] = ["", ".zst", ".xz"];

/// Result of looking up a set of firmware names.
#[derive(Debug, Default)]
pub struct Found {
    pub present: BTreeSet<PathBuf>,
    pub missing: BTreeSet<String>,
}

/// Looks up every name under `dirs` (in order). A name that resolves to a
/// symlink yields the symlink's path: the caller copies the chain. A dangling
/// symlink counts as missing, since the kernel could not load it either.
pub fn lookup<'a>(names: impl IntoIterator<Item = &'a str>, dirs: &[PathBuf]) -> Found {
    let mut found = Found::default();
    for name in names {
        let name = name.trim_start_matches('/');
        if name.is_empty() {
            continue;
        }
        let hits = if has_wildcard(name) {
            wildcard(name, dirs)
        } else {
            first_present(name, dirs).into_iter().collect()
        };
        if hits.is_empty() {
            found.missing.insert(name.to_string());
        }
        found.present.extend(hits);
    }
    found
}

fn first_present(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    SUFFIXES.iter().find_map(|suffix| {
        dirs.iter()
            .map(|d| d.join(format!("{name}{suffix}")))
            .find(|p| p.exists())
    })
}

/// A few drivers declare patterns (`MODULE_FIRMWARE("qcom/sm8250/*")`-style)
/// because they pick the file at run time; dracut takes every match. The
/// wildcard may only be in the file name, which is how the kernel uses it.
/// Each match is then resolved like a plain name, so an override under an
/// earlier directory still wins.
fn wildcard(name: &str, dirs: &[PathBuf]) -> Vec<PathBuf> {
    let (sub, pattern) = match name.rsplit_once('/') {
        Some((sub, file)) => (sub, file),
        None => ("", name),
    };
    if has_wildcard(sub) {
        return Vec::new();
    }
    let mut names = BTreeSet::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in entries.flatten() {
            let file = e.file_name();
            let Some(file) = file.to_str() else { continue };
            let plain = SUFFIXES[1..]
                .iter()
                .find_map(|s| file.strip_suffix(s))
                .unwrap_or(file);
            if fnmatch(pattern, plain) {
                names.insert(join(sub, plain));
            }
        }
    }
    names
        .iter()
        .filter_map(|n| first_present(n, dirs))
        .collect()
}

fn join(sub: &str, file: &str) -> String {
    if sub.is_empty() {
        file.to_string()
    } else {
        format!("{sub}/{file}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_order_suffixes_symlinks_and_missing() {
        let t = tempfile::tempdir().unwrap();
        let updates = t.path().join("updates");
        let base = t.path().join("firmware");
        for d in [&updates, &base] {
            std::fs::create_dir_all(d.join("acme")).unwrap();
        }
        std::fs::write(base.join("acme/a.bin"), "base").unwrap();
        std::fs::write(updates.join("acme/a.bin"), "update").unwrap();
        // Plain in a later directory beats compressed in an earlier one.
        std::fs::write(updates.join("acme/b.bin.xz"), "xz").unwrap();
        std::fs::write(base.join("acme/b.bin"), "plain").unwrap();
        std::fs::write(base.join("acme/c.bin.zst"), "zst").unwrap();
        std::fs::write(base.join("acme/c.bin.xz"), "xz").unwrap();
        std::fs::write(base.join("acme/real-d.bin"), "d").unwrap();
        std::os::unix::fs::symlink("real-d.bin", base.join("acme/d.bin")).unwrap();
        std::os::unix::fs::symlink("nowhere.bin", base.join("acme/e.bin")).unwrap();
        std::fs::write(base.join("acme/g1.bin"), "").unwrap();
        std::fs::write(base.join("acme/g2.bin.xz"), "").unwrap();
        std::fs::write(base.join("acme/h.bin"), "").unwrap();

        let dirs = [updates.clone(), base.clone()];
        let names = [
            "acme/a.bin",
            "acme/b.bin",
            "acme/c.bin",
            "acme/d.bin",
            "acme/e.bin",
            "acme/f.bin",
            "acme/g*.bin",
            "acme/none*.bin",
        ];
        let found = lookup(names, &dirs);
        let want: BTreeSet<PathBuf> = [
            updates.join("acme/a.bin"),
            base.join("acme/b.bin"),
            base.join("acme/c.bin.zst"),
            base.join("acme/d.bin"),
            base.join("acme/g1.bin"),
            base.join("acme/g2.bin.xz"),
        ]
        .into();
        assert_eq!(found.present, want);
        assert_eq!(
            found.missing.iter().collect::<Vec<_>>(),
            ["acme/e.bin", "acme/f.bin", "acme/none*.bin"]
        );
    }
}
