//! The build comparison: mkrescue (median of three) against the floor
//! (`cpio | zstd` over its own file list), dracut, Debian's mkinitramfs
//! and ReaR, and the table of the results.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use super::measure::{Measure, measure, size_of};
use crate::util;

pub fn build_all(
    abs: &Path,
    out: &Path,
    kernel: &mkrescue::host::Kernel,
    with_rear: bool,
    mk: &dyn Fn() -> Command,
) -> Result<Vec<Measure>> {
    let kver = &kernel.version;
    let mut results = Vec::new();
    // mkrescue: one warm-up run (fills the page cache for everyone), then
    // the median of three.
    measure("warm-up", &mut mk())?;
    let mut runs: Vec<Measure> = (0..3)
        .map(|_| measure("mkrescue", &mut mk()))
        .collect::<Result<_>>()?;
    runs.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    let mut m = runs.swap_remove(1);
    m.size = size_of(&out.join("initrd.img"));
    m.note = "median of 3, zstd".into();
    m.command = format!("mkrescue --output initramfs --out {}", out.display());
    results.push(m);

    // The floor: the same files through cpio and zstd -T2 -3.
    results.push(floor(&out.join("manifest.json"), abs)?);

    if let Some(m) = dracut(abs, kver)? {
        results.push(m);
    }
    let mkinit = abs.join("mkinitramfs.img");
    let mut m = measure(
        "mkinitramfs",
        Command::new("mkinitramfs").arg("-o").arg(&mkinit).arg(kver),
    )?;
    m.size = size_of(&mkinit);
    m.command = format!("mkinitramfs -o OUT {kver}");
    m.note = "Debian initramfs-tools, MODULES=most, zstd".into();
    results.push(m);
    if with_rear {
        results.push(rear(abs, kernel)?);
    }
    Ok(results)
}

fn floor(manifest: &Path, dir: &Path) -> Result<Measure> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let doc: serde_json::Value = serde_json::from_str(&text)?;
    let mut list = String::new();
    let mut n = 0;
    for e in doc["entries"]
        .as_array()
        .context("manifest.json has no entries")?
    {
        // Host paths of the same objects: the source of copied files, the
        // path itself for directories and symlinks; generated files and
        // device nodes have no host counterpart and are left out.
        let p = match e["type"].as_str() {
            Some("file") => e["source"].as_str(),
            Some("dir") | Some("symlink") => e["path"].as_str(),
            _ => None,
        };
        if let Some(p) = p {
            list.push_str(p.trim_start_matches('/'));
            list.push('\n');
            n += 1;
        }
    }
    let list_path = dir.join("floor.list");
    std::fs::write(&list_path, list)?;
    let out = dir.join("floor.cpio.zst");
    let script = format!(
        "cd / && cpio --quiet -o -H newc < {} | zstd -q -T2 -3 > {}",
        list_path.display(),
        out.display()
    );
    let mut m = measure("floor", Command::new("sh").args(["-c", &script]))?;
    m.size = size_of(&out);
    m.note = format!("GNU cpio + zstd -T2 -3 on mkrescue's {n} paths");
    m.command = "cpio -o -H newc < list | zstd -T2 -3".into();
    Ok(m)
}

/// dracut from Debian's packages unpacked into target/bench (it conflicts
/// with initramfs-tools, so it is not installed).
fn dracut(dir: &Path, kver: &str) -> Result<Option<Measure>> {
    let root = dir.join("dracut-root");
    if !root.join("usr/bin/dracut").exists() {
        let dl = dir.join("dracut-debs");
        std::fs::create_dir_all(&dl)?;
        util::run(
            "sh",
            &[
                "-c",
                &format!(
                    "cd {} && apt-get download dracut dracut-core && for f in *.deb; do dpkg -x \"$f\" {}; done",
                    dl.display(),
                    root.display()
                ),
            ],
        )?;
    }
    let confdir = dir.join("dracut-conf.d");
    std::fs::create_dir_all(&confdir)?;
    let out = dir.join("dracut.img");
    let mut m = measure(
        "dracut",
        Command::new("bash")
            .arg(root.join("usr/bin/dracut"))
            .args([
                "--no-hostonly",
                "--force",
                "--conf",
                "/dev/null",
                "--confdir",
            ])
            .arg(&confdir)
            .arg(&out)
            .arg(kver)
            .env("dracutbasedir", root.join("usr/lib/dracut")),
    )?;
    m.size = size_of(&out);
    m.note = "dracut 059 --no-hostonly, default (gzip)".into();
    m.command = format!("dracut --no-hostonly --force OUT {kver}");
    Ok(Some(m))
}

fn rear(dir: &Path, kernel: &mkrescue::host::Kernel) -> Result<Measure> {
    if !Path::new("/usr/sbin/rear").exists() {
        util::run(
            "sh",
            &[
                "-c",
                "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rear",
            ],
        )?;
    }
    let conf = dir.join("rear-etc");
    std::fs::create_dir_all(&conf)?;
    let iso_dir = dir.join("rear-out");
    std::fs::create_dir_all(&iso_dir)?;
    // What ReaR 2.7 needs on a machine whose running kernel is not in /boot
    // (its own error messages ask for KERNEL_FILE, KERNEL_VERSION and a boot
    // loader it cannot detect).
    std::fs::write(
        conf.join("local.conf"),
        format!(
            "OUTPUT=ISO\nOUTPUT_URL=file://{}\nBACKUP=REQUESTRESTORE\nKERNEL_FILE={}\nKERNEL_VERSION={}\nBOOTLOADER=GRUB2\n",
            iso_dir.display(),
            kernel.image.display(),
            kernel.version
        ),
    )?;
    for f in ["os.conf", "site.conf"] {
        let _ = std::fs::write(conf.join(f), "");
    }
    let mut m = measure(
        "rear",
        Command::new("rear").arg("-c").arg(&conf).arg("mkrescue"),
    )?;
    // ReaR keeps the initrd in its work dir only while running; the ISO
    // carries it, so report the ISO and the initrd inside it.
    m.size = find_iso(&iso_dir).as_deref().and_then(size_of);
    m.note = "ReaR 2.7, OUTPUT=ISO (size: the ISO)".into();
    m.command = "rear mkrescue".into();
    Ok(m)
}

/// The ISO ReaR wrote below `dir` (OUTPUT_URL puts it in a per-host
/// subdirectory).
pub fn find_iso(dir: &Path) -> Option<PathBuf> {
    walk(dir)
        .into_iter()
        .find(|p| p.extension().is_some_and(|x| x == "iso"))
}

fn walk(p: &Path) -> Vec<PathBuf> {
    if p.is_dir() {
        std::fs::read_dir(p)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .flat_map(|e| walk(&e.path()))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        vec![p.to_path_buf()]
    }
}

pub fn render(results: &[Measure], kver: &str) -> String {
    let base = results[0].wall;
    let mut s = format!(
        "Kernel {kver}, {} cores, `cargo xtask bench`.\n\n| tool | wall (s) | × mkrescue | peak RSS (MiB) | output (MiB) | notes |\n|---|---:|---:|---:|---:|---|\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    for m in results {
        s.push_str(&format!(
            "| {} | {:.2} | {:.1} | {:.0} | {} | {} |\n",
            m.name,
            m.wall,
            m.wall / base,
            m.max_rss_kib as f64 / 1024.0,
            m.size
                .map(|b| format!("{:.1}", b as f64 / 1048576.0))
                .unwrap_or_else(|| "-".into()),
            m.note
        ));
    }
    s.push_str("\nCommands:\n\n");
    for m in results {
        s.push_str(&format!("- {}: `{}`\n", m.name, m.command));
    }
    s
}
