//! `cargo xtask bench`: mkrescue against the floor (`cpio | zstd` on its own
//! file list), dracut, Debian's mkinitramfs and ReaR, on the same kernel and
//! machine in one run. Prints wall time, peak memory and image size for
//! each, with the ratio to mkrescue; `--write` puts the table into
//! BENCHMARKS.md.
//!
//! Peak memory is `ru_maxrss` from wait4(2): the largest single process of
//! the tool's process tree (getrusage(2)), not the sum.
//!
//! Then boot to ready under TCG: mkrescue's initramfs and ReaR's rescue
//! initrd (`isolinux/kernel` + `isolinux/initrd.cgz` extracted from its ISO
//! with `xorriso -osirrox`) booted with the same QEMU options, each with
//! the kernel command line of its own boot menu's rescue entry. "Ready" is
//! a line each system prints itself when its setup is done: mkrescue's
//! marker, ReaR's `Relax-and-Recover rescue system is ready` (the last
//! line of its /etc/scripts/system-setup, after network and sshd). For
//! ReaR it also records whether a serial login prompt ever came.
//! `--boot-only` measures only this (reusing ReaR's ISO, `--rear-iso`);
//! `--write` then replaces only the boot section of BENCHMARKS.md.
//!
//! Last, backup and restore against tar+zstd and borg
//! ([`crate::bench_backup`]); `--backup-only` runs only that and writes
//! only its section.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::util;

const DIR: &str = "target/bench";

pub(crate) struct Measure {
    pub(crate) name: String,
    pub(crate) command: String,
    pub(crate) wall: f64,
    pub(crate) max_rss_kib: u64,
    pub(crate) size: Option<u64>,
    pub(crate) note: String,
}

/// Runs `cmd` to completion and measures it.
pub(crate) fn measure(name: &str, cmd: &mut Command) -> Result<Measure> {
    let line = format!("{cmd:?}");
    eprintln!("==> {name}: {line}");
    let start = Instant::now();
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    let pid = child.id() as libc::pid_t;
    let stderr = child.stderr;
    // Drain stderr in a thread so a chatty tool cannot block on a full pipe.
    let drain = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            use std::io::Read;
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let mut status = 0;
    // SAFETY: rusage is plain data filled by wait4(2).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers; `pid` is our child, not yet reaped.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = start.elapsed().as_secs_f64();
    let err = drain.join().unwrap_or_default();
    if rc < 0 {
        bail!("wait4 on {name}: {}", std::io::Error::last_os_error());
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        let tail: Vec<&str> = err.lines().rev().take(15).collect();
        bail!(
            "{name} failed (status {status}):\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(Measure {
        name: name.to_string(),
        command: line,
        wall,
        max_rss_kib: ru.ru_maxrss as u64,
        size: None,
        note: String::new(),
    })
}

fn size_of(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len())
}

/// What `cargo xtask bench` measures.
pub struct Opts {
    /// Build ReaR's ISO too (minutes).
    pub with_rear: bool,
    /// Put the results into BENCHMARKS.md.
    pub write: bool,
    /// Skip the build comparison; only boot to ready.
    pub boot_only: bool,
    /// Skip the boot comparison.
    pub no_boot: bool,
    /// ReaR's ISO to boot instead of the one this run builds.
    pub rear_iso: Option<PathBuf>,
    /// Only the backup section (archive vs tar+zstd vs borg).
    pub backup_only: bool,
    /// Size and clean-up of the backup section.
    pub backup: crate::bench_backup::Opts,
}

pub fn run(o: &Opts) -> Result<()> {
    let bin = crate::qemu::build_release()?;
    if o.backup_only {
        return backup_section(&bin, o, Vec::new());
    }
    let kernel = mkrescue::host::choose_kernel(Path::new("/"), None)?;
    let kver = kernel.version.clone();
    let dir = PathBuf::from(DIR);
    std::fs::create_dir_all(&dir)?;
    let abs = std::fs::canonicalize(&dir)?;
    let out = abs.join("mkrescue");
    let mk = || {
        let mut c = Command::new(&bin);
        c.args(["--output", "initramfs", "--out"])
            .arg(&out)
            .arg("--quiet");
        c
    };
    let load = loadavg();
    let mut sections = Vec::new();
    if !o.boot_only {
        let results = build_all(&abs, &out, &kernel, o.with_rear, &mk)?;
        let table = render(&results, &kver);
        println!("{table}");
        sections.push((
            "build",
            format!(
                "## Build\n\n{}Load average (1 min) at the start: {load}.\n\n{table}\n\
The floor is GNU cpio + `zstd -T2 -3` over the same host files mkrescue put into its image (from manifest.json): the cost of reading and compressing them, with no dependency resolution. Peak RSS is the largest single process of each tool's process tree (wait4(2) ru_maxrss).\n",
                produced()
            ),
        ));
    } else {
        // The image to boot; its build is not what is measured here.
        measure("mkrescue (image to boot)", &mut mk())?;
    }
    if !o.no_boot {
        let iso = match &o.rear_iso {
            Some(p) => Some(p.clone()),
            None => find_iso(&abs.join("rear-out")),
        };
        let boots = boot_all(&out, iso.as_deref(), &abs)?;
        let text = render_boot(&boots, &kver, &load);
        println!("{text}");
        sections.push(("boot", format!("{}{text}", produced_boot())));
    }
    if o.boot_only {
        if o.write {
            write_benchmarks(&sections)?;
        }
        return Ok(());
    }
    backup_section(&bin, o, sections)
}

/// Measures the backup section (`bench_backup`) and writes it with the
/// sections measured before it.
fn backup_section(bin: &Path, o: &Opts, mut sections: Vec<(&str, String)>) -> Result<()> {
    let text = crate::bench_backup::run(bin, &o.backup)?;
    println!("{text}");
    sections.push(("backup", text));
    if o.write {
        write_benchmarks(&sections)?;
    }
    Ok(())
}

fn build_all(
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
fn find_iso(dir: &Path) -> Option<PathBuf> {
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

fn render(results: &[Measure], kver: &str) -> String {
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

pub(crate) fn now_utc() -> String {
    Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn produced() -> String {
    format!(
        "Produced by `cargo xtask bench --write` on {} (this section is replaced on each run).\n\n",
        now_utc()
    )
}

fn produced_boot() -> String {
    format!(
        "## Boot to ready under TCG\n\nProduced by `cargo xtask bench --write` (or `--boot-only --write`) on {} (this section is replaced on each run).\n\n",
        now_utc()
    )
}

/// The 1-minute load average: how busy the shared machine was.
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

const FILE: &str = "BENCHMARKS.md";

/// Replaces the sections measured in this run (between `<!-- bench:NAME -->`
/// and `<!-- /bench:NAME -->`), keeping the others as they are.
fn write_benchmarks(sections: &[(&str, String)]) -> Result<()> {
    let old = std::fs::read_to_string(FILE).unwrap_or_default();
    let text = splice(&old, sections);
    std::fs::write(FILE, text).with_context(|| format!("writing {FILE}"))
}

fn splice(old: &str, sections: &[(&str, String)]) -> String {
    let mut text = if old.trim().is_empty() {
        "# Benchmarks\n".to_string()
    } else {
        old.to_string()
    };
    for (name, body) in sections {
        let (open, close) = (
            format!("<!-- bench:{name} -->"),
            format!("<!-- /bench:{name} -->"),
        );
        let block = format!("{open}\n{}\n{close}", body.trim_end());
        match (text.find(&open), text.find(&close)) {
            (Some(a), Some(b)) if b > a => {
                text.replace_range(a..b + close.len(), &block);
            }
            _ => {
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push('\n');
                text.push_str(&block);
                text.push('\n');
            }
        }
    }
    text
}

/// One system booted to ready.
struct Boot {
    name: &'static str,
    /// Wall seconds from QEMU's start to the ready line.
    ready: f64,
    /// The guest's own uptime at ready, when it prints it.
    uptime: Option<f64>,
    /// What "ready" means for this system.
    ready_def: String,
    append: String,
    initrd_mib: f64,
    note: String,
}

/// What ReaR's /etc/scripts/system-setup prints after its last setup script.
const REAR_READY: &str = "Relax-and-Recover rescue system is ready";

/// Boots mkrescue's image in `mk_dir` and ReaR's (extracted from `iso`).
fn boot_all(mk_dir: &Path, iso: Option<&Path>, abs: &Path) -> Result<Vec<Boot>> {
    let mut v = Vec::new();
    // The rescue entry of mkrescue's boot menus with the serial console
    // (src/output/bootcfg.rs), as ReaR's entry below has its own.
    let append = mkrescue::output::bootcfg::SERIAL_CONSOLES.to_string();
    let kernel = mk_dir.join("vmlinuz");
    let initrd = mk_dir.join("initrd.img");
    let log = abs.join("boot-mkrescue.log");
    let w = watch(
        boot(&kernel, &initrd, &append, &log)?,
        &log,
        |l| l.contains(mkrescue::init::READY_MARKER),
        None,
    )?;
    v.push(Boot {
        name: "mkrescue",
        ready: w.ready,
        uptime: w.line.rsplit('(').next().and_then(|s| {
            s.trim_end_matches(|c: char| c == ')' || c == 's' || c.is_whitespace())
                .parse()
                .ok()
        }),
        ready_def: format!("`{}` on ttyS0", mkrescue::init::READY_MARKER),
        append,
        initrd_mib: mib(&initrd),
        note: "initramfs of this host (`--output initramfs`), no NIC".into(),
    });

    let Some(iso) = iso else {
        eprintln!(
            "==> no ReaR ISO (run `cargo xtask bench` with ReaR once, or pass --rear-iso): ReaR's boot is not measured"
        );
        return Ok(v);
    };
    let rd = abs.join("rear-boot");
    std::fs::create_dir_all(&rd)?;
    let iso_s = iso.to_str().context("non-UTF-8 ISO path")?;
    let rdk = rd.join("kernel");
    let rdi = rd.join("initrd.cgz");
    let rdc = rd.join("isolinux.cfg");
    for p in [&rdk, &rdi, &rdc] {
        let _ = std::fs::remove_file(p);
    }
    // -osirrox on allows copying out of the ISO (xorriso(1), -extract).
    util::run(
        "xorriso",
        &[
            "-osirrox",
            "on",
            "-indev",
            iso_s,
            "-extract",
            "/isolinux/kernel",
            rdk.to_str().context("non-UTF-8 path")?,
            "-extract",
            "/isolinux/initrd.cgz",
            rdi.to_str().context("non-UTF-8 path")?,
            "-extract",
            "/isolinux/isolinux.cfg",
            rdc.to_str().context("non-UTF-8 path")?,
        ],
    )?;
    let cfg =
        std::fs::read_to_string(&rdc).with_context(|| format!("reading {}", rdc.display()))?;
    let append = rear_append(&cfg).with_context(|| {
        format!(
            "{}: no `label rear` entry with an `append` line",
            rdc.display()
        )
    })?;
    let log = abs.join("boot-rear.log");
    let w = watch(
        boot(&rdk, &rdi, &append, &log)?,
        &log,
        |l| l.contains(REAR_READY),
        // Then wait for a serial login prompt, or systemd giving up on it
        // (ReaR's serial-getty@ttyS0 waits for udev's dev-ttyS0.device).
        Some((
            &|l: &str| l.trim_end().ends_with("login:"),
            &|l: &str| l.contains("Dependency failed") && l.contains("Serial Getty"),
            Duration::from_secs(180),
        )),
    )?;
    let login = match w.after {
        Some((true, t)) => format!("serial login prompt at {t:.1}s"),
        Some((false, t)) => format!(
            "no serial login prompt: at {t:.1}s systemd gave up on dev-ttyS0.device (\"Dependency failed for Serial Getty on ttyS0\" in the serial log)"
        ),
        None => "no serial login prompt within 180s after ready".into(),
    };
    v.push(Boot {
        name: "ReaR",
        ready: w.ready,
        uptime: None,
        ready_def: format!("`{REAR_READY}` on ttyS0 (end of its system-setup)"),
        append,
        initrd_mib: mib(&rdi),
        note: format!("ReaR 2.7 ISO's `isolinux/kernel` + `isolinux/initrd.cgz`; {login}"),
    });
    Ok(v)
}

fn mib(p: &Path) -> f64 {
    size_of(p).unwrap_or(0) as f64 / 1048576.0
}

/// The kernel command line of the `rear` entry of ReaR's isolinux.cfg,
/// without `initrd=` (QEMU's -initrd passes it).
fn rear_append(cfg: &str) -> Option<String> {
    let mut in_rear = false;
    for l in cfg.lines() {
        let t = l.trim();
        let lower = t.to_ascii_lowercase();
        if let Some(label) = lower.strip_prefix("label ") {
            in_rear = label.trim() == "rear";
        } else if in_rear && lower.starts_with("append ") {
            let words: Vec<&str> = t["append ".len()..]
                .split_whitespace()
                .filter(|w| !w.starts_with("initrd="))
                .collect();
            return Some(words.join(" "));
        }
    }
    None
}

/// The same QEMU for every system: TCG, 2 GiB, 2 CPUs, no NIC, serial
/// console into `log`, direct kernel boot.
fn boot(kernel: &Path, initrd: &Path, append: &str, log: &Path) -> Result<Child> {
    let _ = std::fs::remove_file(log);
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg", "-m", "2048", "-smp", "2"])
        .args(["-display", "none", "-monitor", "none", "-no-reboot"])
        .args(["-nic", "none"])
        .arg("-serial")
        .arg(format!("file:{}", log.display()))
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", append])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    eprintln!("$ {cmd:?}");
    cmd.spawn()
        .context("cannot start qemu-system-x86_64 (apt-get install qemu-system-x86)")
}

struct Watched {
    /// Wall seconds to the ready line.
    ready: f64,
    line: String,
    /// Which of the follow-up patterns came first (true: the first) and
    /// when.
    after: Option<(bool, f64)>,
}

type Follow<'a> = (&'a dyn Fn(&str) -> bool, &'a dyn Fn(&str) -> bool, Duration);

/// Polls the serial log until a line satisfies `ready`; then, with
/// `follow`, until one of its two patterns shows or its time is up. Kills
/// QEMU at the end.
fn watch(
    mut child: Child,
    log: &Path,
    ready: impl Fn(&str) -> bool,
    follow: Option<Follow>,
) -> Result<Watched> {
    let start = Instant::now();
    let timeout = Duration::from_secs(600);
    let mut got: Option<(f64, String)> = None;
    let result = loop {
        let text = plain(&std::fs::read(log).unwrap_or_default());
        let now = start.elapsed();
        if got.is_none()
            && let Some(l) = text.lines().find(|l| ready(l))
        {
            got = Some((now.as_secs_f64(), l.to_string()));
            eprintln!("==> ready after {:.1}s: {l}", now.as_secs_f64());
        }
        if let Some((t, line)) = &got {
            let done = match follow {
                None => Some(None),
                Some((yes, no, limit)) => {
                    if text.lines().any(yes) {
                        Some(Some((true, now.as_secs_f64())))
                    } else if text.lines().any(no) {
                        Some(Some((false, now.as_secs_f64())))
                    } else if now.as_secs_f64() - t > limit.as_secs_f64() {
                        Some(None)
                    } else {
                        None
                    }
                }
            };
            if let Some(after) = done {
                break Ok(Watched {
                    ready: *t,
                    line: line.clone(),
                    after,
                });
            }
        }
        if let Some(st) = child.try_wait()? {
            break Err(anyhow::anyhow!(
                "QEMU exited ({st}) before the system was ready; serial log {}",
                log.display()
            ));
        }
        if now > timeout {
            break Err(anyhow::anyhow!(
                "not ready within {}s; serial log {}",
                timeout.as_secs(),
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// The serial log as text: escape sequences (CSI, ECMA-48 8.3.16) and
/// carriage returns removed, as systemd and boot loaders colour and redraw.
fn plain(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            if it.peek() == Some(&'[') {
                it.next();
                // Parameters and intermediates up to the final byte 0x40-0x7e.
                for d in it.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&d) {
                        break;
                    }
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

fn render_boot(boots: &[Boot], kver: &str, load: &str) -> String {
    let mut s = format!(
        "Kernel {kver}, QEMU `-accel tcg -m 2048 -smp 2 -nic none`, serial console to a file, direct kernel boot (`-kernel`/`-initrd`), one boot each; load average (1 min) at the start: {load}. Wall seconds from QEMU's start to the system's own ready line.\n\n| system | ready (s, wall) | × mkrescue | guest uptime at ready (s) | initrd (MiB) | ready means | notes |\n|---|---:|---:|---:|---:|---|---|\n"
    );
    let base = boots.first().map(|b| b.ready).unwrap_or(1.0);
    for b in boots {
        s.push_str(&format!(
            "| {} | {:.1} | {:.1} | {} | {:.1} | {} | {} |\n",
            b.name,
            b.ready,
            b.ready / base,
            b.uptime
                .map(|u| format!("{u:.1}"))
                .unwrap_or_else(|| "-".into()),
            b.initrd_mib,
            b.ready_def,
            b.note
        ));
    }
    s.push_str("\nKernel command lines (each from its own boot menu's rescue entry with the serial console):\n\n");
    for b in boots {
        s.push_str(&format!("- {}: `{}`\n", b.name, b.append));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rear_entry_command_line() {
        let cfg = "label rear\nMENU label ^Recover vm\nkernel kernel\nappend initrd=initrd.cgz root=/dev/ram0 vga=normal rw  selinux=0  console=ttyS0,9600 \n\nlabel rear-automatic\nappend initrd=initrd.cgz root=/dev/ram0 auto_recover\n";
        assert_eq!(
            rear_append(cfg).as_deref(),
            Some("root=/dev/ram0 vga=normal rw selinux=0 console=ttyS0,9600")
        );
        assert_eq!(rear_append("label local\nlocalboot 0\n"), None);
    }

    #[test]
    fn escape_codes_are_stripped() {
        let raw =
            b"\x1b[0;1;38;5;185mDEPEND\x1b[0m] Dependency failed for \x1b[0;1;39mSerial Getty\r\n";
        assert_eq!(plain(raw), "DEPEND] Dependency failed for Serial Getty\n");
    }

    #[test]
    fn write_replaces_only_the_measured_section() {
        let old = "# Benchmarks\n\n<!-- bench:build -->\nold build\n<!-- /bench:build -->\n";
        let new = splice(old, &[("boot", "boot table\n".into())]);
        assert!(new.contains("old build"));
        assert!(new.contains("<!-- bench:boot -->\nboot table\n<!-- /bench:boot -->"));
        let again = splice(&new, &[("boot", "second\n".into())]);
        assert!(!again.contains("boot table"));
        assert!(again.contains("old build") && again.contains("second"));
        assert_eq!(again.matches("<!-- bench:boot -->").count(), 1);
    }
}
