//! The live layout of this host, and writing a layout file.

use std::path::Path;

use anyhow::{Context, Result};

use super::{Layout, capture};

/// Captures the live layout.
pub fn capture_live(backup_target: Option<&str>) -> Result<Layout> {
    let sources = capture::gather().context("capturing the disk layout")?;
    let mut l = capture::assemble(&crate::sys::host::hostname(Path::new("/")), &sources)
        .context("reading the captured disk layout")?;
    super::exclude::exclude_backup_disks(&mut l, backup_target);
    Ok(l)
}

/// Writes `layout` to `path` atomically (temp file, then rename).
pub fn write(layout: &Layout, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, layout.to_json()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
