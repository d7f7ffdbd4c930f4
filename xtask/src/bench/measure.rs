//! Measuring one tool run (wall time and peak memory from wait4(2)) and
//! the facts a benchmark section records with it: when, and how busy the
//! shared machine was.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

pub struct Measure {
    pub name: String,
    pub command: String,
    pub wall: f64,
    pub max_rss_kib: u64,
    pub size: Option<u64>,
    pub note: String,
}

/// Runs `cmd` to completion and measures it.
pub fn measure(name: &str, cmd: &mut Command) -> Result<Measure> {
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

/// A file's size, if it exists.
pub fn size_of(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len())
}

pub fn now_utc() -> String {
    Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The 1-minute load average: how busy the shared machine was.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}
