//! SHA256SUMS: written last by every output, checked by `mkrescue verify`.
//!
//! The format is sha256sum(1)'s (`HASH  NAME`, two spaces), so
//! `sha256sum -c SHA256SUMS` in the directory checks the same thing. Names
//! are relative to the directory; a file written outside it (a USB image or
//! tape file elsewhere) is listed by its absolute path.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::initramfs::sha256_file;
use crate::error::{Code, fail};

pub const SUMS: &str = "SHA256SUMS";

/// Every regular file below `dir` (relative, sorted), except SHA256SUMS,
/// `*.tmp` and dot-directories (scratch space).
pub fn files_below(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let walk = walkdir::WalkDir::new(dir).min_depth(1).into_iter();
    // Not followed: symlinks (walkdir's default), dot-names, *.tmp, and
    // the top-level SHA256SUMS itself.
    let kept = walk.filter_entry(|e| {
        let n = e.file_name().to_string_lossy();
        !(n.starts_with('.') || n.ends_with(".tmp") || (e.depth() == 1 && n == SUMS))
    });
    for e in kept {
        let e = e.with_context(|| format!("reading {}", dir.display()))?;
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(dir).unwrap_or(e.path());
            out.push(rel.to_path_buf());
        }
    }
    out.sort();
    Ok(out)
}

/// Writes DIR/SHA256SUMS for every file below DIR plus `extra` (absolute
/// paths of outputs written elsewhere). Returns (name, hash) pairs.
pub fn write(dir: &Path, extra: &[PathBuf]) -> Result<Vec<(String, String)>> {
    let mut lines = Vec::new();
    for rel in files_below(dir)? {
        let h = sha256_file(&dir.join(&rel))?;
        lines.push((rel.to_string_lossy().into_owned(), h));
    }
    for p in extra {
        let abs = std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))?;
        if abs.starts_with(std::path::absolute(dir)?) {
            continue;
        }
        lines.push((abs.to_string_lossy().into_owned(), sha256_file(&abs)?));
    }
    store(dir, &lines)?;
    Ok(lines)
}

/// Adds or replaces the line of `file` in the SHA256SUMS of its directory,
/// keeping the other lines (a directory of USB images or tape files may
/// hold several media, and other files that are none of ours). Returns
/// the file's (name, hash).
pub fn update(file: &Path) -> Result<Vec<(String, String)>> {
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = file
        .file_name()
        .with_context(|| format!("{} names no file", file.display()))?
        .to_string_lossy()
        .into_owned();
    let hash = sha256_file(file)?;
    let mut lines: Vec<(String, String)> = match std::fs::read_to_string(dir.join(SUMS)) {
        Ok(text) => text
            .lines()
            .filter_map(|l| l.split_once("  "))
            .filter(|(_, n)| *n != name)
            .map(|(h, n)| (n.to_string(), h.to_string()))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(e).with_context(|| format!("reading {}", dir.join(SUMS).display()));
        }
    };
    lines.push((name.clone(), hash.clone()));
    lines.sort();
    store(dir, &lines)?;
    Ok(vec![(name, hash)])
}

/// Drops the lines of `names` (relative to DIR) from DIR/SHA256SUMS, for
/// files removed on purpose; the other lines stay as they are. No
/// SHA256SUMS: nothing to do.
pub fn forget(dir: &Path, names: &[String]) -> Result<()> {
    let lines: Vec<(String, String)> = match std::fs::read_to_string(dir.join(SUMS)) {
        Ok(text) => text
            .lines()
            .filter_map(|l| l.split_once("  "))
            .filter(|(_, n)| !names.iter().any(|x| x == n))
            .map(|(h, n)| (n.to_string(), h.to_string()))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(e).with_context(|| format!("reading {}", dir.join(SUMS).display()));
        }
    };
    store(dir, &lines)
}

/// DIR/SHA256SUMS with these (name, hash) lines, replaced atomically.
fn store(dir: &Path, lines: &[(String, String)]) -> Result<()> {
    let text: String = lines.iter().map(|(n, h)| format!("{h}  {n}\n")).collect();
    let path = dir.join(SUMS);
    let tmp = dir.join(format!("{SUMS}.tmp"));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The outcome for one listed file.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Checked {
    pub name: String,
    /// `ok`, `changed` or `missing`.
    pub status: &'static str,
}

/// Checks every line of DIR/SHA256SUMS.
pub fn verify(dir: &Path) -> Result<Vec<Checked>> {
    let path = dir.join(SUMS);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        fail(
            Code::Input,
            format!(
                "cannot read {}: {e} (is {} a mkrescue output directory?)",
                path.display(),
                dir.display()
            ),
        )
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((hash, name)) = line.split_once("  ") else {
            return Err(fail(
                Code::Input,
                format!("{}:{}: not a `SHA256  NAME` line", path.display(), i + 1),
            ));
        };
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(fail(
                Code::Input,
                format!("{}:{}: {hash:?} is not a sha256", path.display(), i + 1),
            ));
        }
        let file = dir.join(name);
        let status = if !file.exists() {
            "missing"
        } else if sha256_file(&file)?.eq_ignore_ascii_case(hash) {
            "ok"
        } else {
            "changed"
        };
        out.push(Checked {
            name: name.to_string(),
            status,
        });
    }
    Ok(out)
}
