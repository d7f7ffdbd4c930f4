//! Small helpers every task shares: run a command loudly, time a step,
//! build the release binary, free disk space, the tail of a log, a sparse
//! file's length.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Runs from the workspace root whatever the caller's directory.
pub fn cd_workspace_root() -> Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent directory")?;
    std::env::set_current_dir(dir).with_context(|| format!("entering {}", dir.display()))
}

/// Runs a command with inherited stdio; non-zero exit is an error.
pub fn run(program: &str, args: &[&str]) -> Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("cannot start {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Runs `f` under a heading and reports its wall time.
pub fn step<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    eprintln!("==> {name}");
    let t = Instant::now();
    let r = f().with_context(|| format!("step `{name}` failed"));
    eprintln!(
        "==> {name}: {} in {:.1}s",
        if r.is_ok() { "ok" } else { "FAILED" },
        t.elapsed().as_secs_f64()
    );
    r
}

/// True under CI (`CI=true`, as `.ci/run` is started): steps that would
/// cost a developer their build cache or their VM disks only run there.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Bytes an unprivileged writer may still use on the file system holding
/// `dir` (statvfs f_bavail: root's reserved blocks not counted, so a
/// near-zero value means the disk is about to be full for everyone).
pub fn free_bytes(dir: &Path) -> Result<u64> {
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())?;
    // SAFETY: statvfs is plain data filled by statvfs(3).
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        bail!(
            "statvfs {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(s.f_bavail as u64 * s.f_frsize as u64)
}

/// `bytes` as GiB with one decimal, for messages.
pub fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Builds mkrescue (release); the scenarios boot what it builds.
pub fn build_release() -> Result<PathBuf> {
    step("cargo build --release", || {
        run("cargo", &["build", "--release", "--package", "mkrescue"])
    })?;
    Ok(PathBuf::from("target/release/mkrescue"))
}

/// The last `lines` lines of `text`, for error messages.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Creates `p` if needed and sets its length (sparse).
pub fn set_len(p: &Path, len: u64) -> Result<()> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(p)
        .with_context(|| format!("creating {}", p.display()))?;
    f.set_len(len)
        .with_context(|| format!("sizing {}", p.display()))
}
