//! Times `write_initrd` against the shell pipeline it replaces,
//! `cpio -H newc -o | zstd -T<cores> -3`, on the same file list.
//!
//! ```text
//! cargo run --release --example image_bench -- [--compress zstd|xz|gzip|none]
//!     [--runs N] [--no-shell] [DIR...]
//! ```
//!
//! DIR defaults to /usr/lib/modules/$(uname -r) and /usr/bin. The first run
//! of each warms the page cache and is not counted. Output goes to files in
//! $TMPDIR, like a real build. Not a test: timings are printed, never
//! asserted (CONVENTIONS.md).

use std::io::{BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mkrescue::config::Compression;
use mkrescue::image::{Manifest, write_initrd};

fn main() -> Result<()> {
    let mut compression = Compression::Zstd;
    let mut runs = 3;
    let mut shell = true;
    let mut dirs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--compress" => {
                compression = match args.next().as_deref() {
                    Some("zstd") => Compression::Zstd,
                    Some("xz") => Compression::Xz,
                    Some("gzip") => Compression::Gzip,
                    Some("none") => Compression::None,
                    other => bail!("--compress {other:?}: use zstd, xz, gzip or none"),
                }
            }
            "--runs" => runs = args.next().context("--runs N")?.parse()?,
            "--no-shell" => shell = false,
            d => dirs.push(PathBuf::from(d)),
        }
    }
    if dirs.is_empty() {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
        dirs.push(PathBuf::from(format!(
            "/usr/lib/modules/{}",
            release.trim()
        )));
        dirs.push(PathBuf::from("/usr/bin"));
    }

    let t = Instant::now();
    let mut m = Manifest::new("/", mkrescue::config::DEFAULT_EPOCH);
    for d in &dirs {
        m.add_host_tree(d, "bench")?;
    }
    let bytes = m.payload_bytes();
    println!(
        "manifest: {} entries, {:.1} MB of files ({:.2}s to build)",
        m.len(),
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    let tmp = std::env::temp_dir();
    let out_path = tmp.join("image_bench.initrd");
    let pb = indicatif::ProgressBar::hidden();
    let mut ours = Vec::new();
    let mut cpu_ours = 0.0;
    for i in 0..=runs {
        let cpu0 = cpu_seconds(libc::RUSAGE_SELF);
        let t = Instant::now();
        let f = std::fs::File::create(&out_path)?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let report = write_initrd(&m, compression, None, &mut w, &pb)?;
        w.flush()?;
        let d = t.elapsed();
        if i == 0 {
            println!(
                "write_initrd: cpio {:.1} MB -> {:.1} MB",
                report.cpio_bytes as f64 / 1e6,
                report.compressed_bytes as f64 / 1e6
            );
        } else {
            ours.push(d);
            cpu_ours += cpu_seconds(libc::RUSAGE_SELF) - cpu0;
        }
    }
    report("write_initrd", &ours, cpu_ours);

    if shell {
        // The same names, NUL-separated for cpio -0, relative to / as we
        // store them.
        let list = tmp.join("image_bench.list");
        let mut l = Vec::new();
        for (p, _) in m.iter() {
            l.extend_from_slice(&p.as_os_str().as_bytes()[1..]);
            l.push(0);
        }
        std::fs::write(&list, l)?;
        let threads = mkrescue::image::compress::default_threads();
        let compressor = match compression {
            Compression::Zstd => format!("zstd -q -T{threads} -3"),
            Compression::Xz => format!("xz -T{threads} -6 --check=crc32"),
            Compression::Gzip => "gzip -6".into(),
            Compression::None => "cat".into(),
        };
        let cmd = format!(
            "cd / && cpio --quiet -0 -H newc -o < {} | {compressor} > {}.shell",
            list.display(),
            out_path.display()
        );
        println!("shell: {cmd}");
        let mut theirs = Vec::new();
        let mut cpu_theirs = 0.0;
        for i in 0..=runs {
            let cpu0 = cpu_seconds(libc::RUSAGE_CHILDREN);
            let t = Instant::now();
            let st = Command::new("sh")
                .arg("-c")
                .arg(&cmd)
                .stdin(Stdio::null())
                .status()?;
            if !st.success() {
                bail!("shell pipeline failed: {st}");
            }
            if i > 0 {
                theirs.push(t.elapsed());
                cpu_theirs += cpu_seconds(libc::RUSAGE_CHILDREN) - cpu0;
            }
        }
        report("shell pipeline", &theirs, cpu_theirs);
        let size = std::fs::metadata(format!("{}.shell", out_path.display()))?.len();
        println!("shell output: {:.1} MB", size as f64 / 1e6);
    }
    Ok(())
}

/// User + system CPU seconds of this process (all threads) or of its
/// waited-for children.
fn cpu_seconds(who: i32) -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn report(what: &str, times: &[Duration], cpu: f64) {
    let mut s: Vec<f64> = times.iter().map(|d| d.as_secs_f64()).collect();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return;
    }
    println!(
        "{what}: wall min {:.2}s median {:.2}s max {:.2}s, cpu {:.2}s/run, over {} runs",
        s[0],
        s[s.len() / 2],
        s[s.len() - 1],
        cpu / s.len() as f64,
        s.len()
    );
}
