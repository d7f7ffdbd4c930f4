//! How PID 1 runs programs: output appended to the init log, stdin
//! /dev/null, and a time limit, because nothing may hang the boot. (The
//! build side uses `crate::exec`, which captures output in memory and has
//! no time limit; daemons such as `systemd-udevd --daemon` keep inherited
//! pipes open, so init gives them the log file instead.)

use std::fs::OpenOptions;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{LOG, PATH, log_line};

/// A command for init: environment cleared to a fixed PATH, output to the
/// init log.
pub fn command(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args)
        .env_clear()
        .env("PATH", PATH)
        .env("HOME", "/root")
        .stdin(Stdio::null());
    match OpenOptions::new().create(true).append(true).open(LOG) {
        Ok(f) => {
            let e = f
                .try_clone()
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null());
            c.stdout(Stdio::from(f)).stderr(e);
        }
        Err(_) => {
            c.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    c
}

/// Runs `program args` to its end or until `limit`; logs the command line
/// and any failure. Returns whether it exited 0.
pub fn run(program: &str, args: &[&str], limit: Duration) -> bool {
    let line = format!("{program} {}", args.join(" "));
    append_log(&format!("+ {line}"));
    match command(program, args).spawn() {
        Ok(child) => wait(child, &line, limit),
        Err(e) => {
            log_line(&format!("mkrescue init: cannot start {program}: {e}"));
            false
        }
    }
}

/// Waits for `child` at most `limit`; a child still running then is left
/// alone (init reaps it later) and counts as failed.
pub fn wait(mut child: Child, line: &str, limit: Duration) -> bool {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return true,
            Ok(Some(st)) => {
                log_line(&format!("mkrescue init: `{line}` failed ({st})"));
                return false;
            }
            Ok(None) if start.elapsed() >= limit => {
                log_line(&format!(
                    "mkrescue init: `{line}` still running after {}s, going on",
                    limit.as_secs()
                ));
                return false;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                log_line(&format!("mkrescue init: waiting for `{line}`: {e}"));
                return false;
            }
        }
    }
}

/// Only into the init log (command lines, details).
pub fn append_log(s: &str) {
    use std::io::Write;
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(LOG) {
        let _ = writeln!(f, "{s}");
    }
}
