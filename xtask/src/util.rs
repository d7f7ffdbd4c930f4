//! Small helpers: run a command loudly, time a step.

use std::path::Path;
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
