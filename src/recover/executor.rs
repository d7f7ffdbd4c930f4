//! Runs a plan's steps through `exec`, one checkpoint line per finished
//! step in the state file, so a re-run skips what is done. The first
//! failure stops with the command, its stderr tail and how to go on.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::plan::{Plan, Step};
use crate::error::{Code, fail};
use crate::exec::Cmd;

pub struct Done {
    pub skipped: usize,
}

/// The checkpoint key of a step: its id and a hash of the exact command, so
/// a changed plan (another layout, another mapping) runs again.
fn key(s: &Step) -> String {
    let h = Sha256::digest(s.shell().as_bytes());
    format!("{}\t{}", hex::encode(&h[..8]), s.id)
}

/// Every tool the plan calls must be in the rescue system: checked before
/// step one so nothing is half done for want of a program.
pub fn check_tools(p: &Plan) -> Result<()> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    let mut missing: Vec<&str> = p
        .steps
        .iter()
        .map(|s| s.argv[0].as_str())
        .filter(|t| !std::env::split_paths(&path).any(|d| d.join(t).is_file()))
        .collect();
    missing.sort();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    Err(fail(
        Code::Host,
        format!(
            "recover needs {} but this system lacks it; nothing was changed (build the rescue image on a host that has it installed)",
            missing.join(", ")
        ),
    ))
}

/// Waits briefly for device nodes a step needs (devtmpfs creates them
/// asynchronously after a partition table re-read or an md create).
fn wait_for(devs: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for d in devs.iter().filter(|d| d.starts_with("/dev/")) {
        while !Path::new(d).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub fn run(p: &Plan, state: &Path) -> Result<Done> {
    let done_before: Vec<String> = std::fs::read_to_string(state)
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default();
    if let Some(dir) = state.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state)
        .with_context(|| format!("opening {}", state.display()))?;
    let mut skipped = 0;
    let total = p.steps.len();
    for (i, s) in p.steps.iter().enumerate() {
        let k = key(s);
        if done_before.contains(&k) {
            skipped += 1;
            log::info!("step {}/{total} done before: {}", i + 1, s.what);
            continue;
        }
        eprintln!("mkrescue: step {}/{total}: {}", i + 1, s.what);
        wait_for(&s.needs);
        let t = Instant::now();
        let mut cmd = match &s.stdin {
            None => Cmd::new(&s.argv[0]).args(&s.argv[1..]),
            Some(input) => {
                // exec.rs keeps stdin null; the shell redirects a file in.
                let f = Path::new(super::WORK_DIR).join(format!("step-{}.in", i + 1));
                std::fs::write(&f, input).with_context(|| format!("writing {}", f.display()))?;
                Cmd::new("sh")
                    .args(["-c", "f=$1; shift; exec \"$@\" < \"$f\"", "sh"])
                    .arg(&f)
                    .args(&s.argv)
            }
        };
        for (k, v) in &s.env {
            cmd = cmd.env(k, v);
        }
        if let Err(e) = cmd.output() {
            return Err(e.context(format!(
                "step {}/{total} ({}) failed; fix the cause and run the same `mkrescue recover` again: the {} finished steps are skipped (checkpoints in {})",
                i + 1,
                s.what,
                i,
                state.display()
            )));
        }
        writeln!(log, "{k}").with_context(|| format!("writing {}", state.display()))?;
        log.flush()?;
        log::info!("step {} took {:.1}s", i + 1, t.elapsed().as_secs_f64());
    }
    Ok(Done { skipped })
}
