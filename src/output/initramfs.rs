//! `--output initramfs`: the kernel and initrd, ready for `-kernel/-initrd`,
//! a PXE server or a boot loader entry.
//!
//! Every file is written under a temporary name in DIR and renamed at the
//! end, so an interrupted or failed build (full disk) never leaves a file that
//! looks complete.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::Compression;
use crate::host::Kernel;
use crate::image::{self, ArchiveReport, Manifest};

/// What the build wrote, for the summary line and `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    /// None when the files were scratch for a USB, PXE or OBDR medium.
    pub out_dir: Option<PathBuf>,
    pub kernel_version: String,
    pub compression: Compression,
    pub entries: usize,
    pub files: usize,
    pub cpio_bytes: u64,
    pub initrd_bytes: u64,
    /// (file name, sha256) as in SHA256SUMS.
    pub checksums: Vec<(String, String)>,
}

/// One line of manifest.json.
#[derive(Serialize)]
struct ManifestLine<'a> {
    path: &'a Path,
    #[serde(flatten)]
    entry: &'a image::Entry,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<&'a str>,
}

#[derive(Serialize)]
struct ManifestFile<'a> {
    kernel_version: &'a str,
    compression: Compression,
    source_date_epoch: u64,
    entries: Vec<ManifestLine<'a>>,
}

/// Writes DIR/{vmlinuz,initrd.img,manifest.json,SHA256SUMS}.
pub fn write(
    manifest: &Manifest,
    kernel: &Kernel,
    compression: Compression,
    level: Option<u32>,
    out_dir: &Path,
    show_progress: bool,
) -> Result<Written> {
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("creating output directory {}", out_dir.display()))?;

    let total = manifest.payload_bytes();
    let pb = crate::progress::bytes(show_progress, total, "writing initrd");
    let initrd = out_dir.join("initrd.img");
    let report = write_atomic(&initrd, |f| {
        image::write_initrd(manifest, compression, level, f, &pb)
    })?;
    pb.finish_and_clear();

    let vmlinuz = out_dir.join("vmlinuz");
    write_atomic(&vmlinuz, |f| {
        let mut src = File::open(&kernel.image)
            .with_context(|| format!("reading kernel {}", kernel.image.display()))?;
        std::io::copy(&mut src, f)
            .with_context(|| format!("copying kernel {}", kernel.image.display()))?;
        Ok(())
    })?;

    let json = manifest_json(manifest, kernel, compression, &report)?;
    let manifest_path = out_dir.join("manifest.json");
    write_atomic(&manifest_path, |f| Ok(f.write_all(json.as_bytes())?))?;

    let mut checksums = Vec::new();
    for name in ["initrd.img", "manifest.json", "vmlinuz"] {
        checksums.push((name.to_string(), sha256_file(&out_dir.join(name))?));
    }
    let sums: String = checksums
        .iter()
        .map(|(n, h)| format!("{h}  {n}\n"))
        .collect();
    write_atomic(&out_dir.join("SHA256SUMS"), |f| {
        Ok(f.write_all(sums.as_bytes())?)
    })?;

    Ok(Written {
        out_dir: Some(out_dir.to_path_buf()),
        kernel_version: kernel.version.clone(),
        compression,
        entries: manifest.len(),
        files: report.files.len(),
        cpio_bytes: report.cpio_bytes,
        initrd_bytes: report.compressed_bytes,
        checksums,
    })
}

fn manifest_json(
    manifest: &Manifest,
    kernel: &Kernel,
    compression: Compression,
    report: &ArchiveReport,
) -> Result<String> {
    let hashes: std::collections::HashMap<&Path, &str> = report
        .files
        .iter()
        .map(|f| (f.path.as_path(), f.sha256.as_str()))
        .collect();
    let entries = manifest
        .iter()
        .map(|(p, e)| ManifestLine {
            path: p,
            entry: e,
            sha256: hashes.get(p.as_path()).copied(),
        })
        .collect();
    let doc = ManifestFile {
        kernel_version: &kernel.version,
        compression,
        source_date_epoch: manifest.epoch(),
        entries,
    };
    let mut s = serde_json::to_string_pretty(&doc).context("rendering manifest.json")?;
    s.push('\n');
    Ok(s)
}

/// Writes `path` through `path.tmp` + fsync + rename.
fn write_atomic<T>(path: &Path, fill: impl FnOnce(&mut BufWriter<File>) -> Result<T>) -> Result<T> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let v = fill(&mut w)?;
        let f = w
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        Ok(v)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// sha256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}
