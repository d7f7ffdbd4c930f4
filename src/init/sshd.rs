//! sshd at boot (the image side is `crate::rescue::ssh`): an ed25519 host
//! key generated now (never the host's; RSA generation takes seconds under
//! emulation and no current client needs it), the privilege separation
//! directory /run/sshd and the `sshd` user it drops to (sshd(8)), then
//! `sshd -D -e` as a child init supervises, its log in
//! /run/mkrescue/sshd.log.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::log_line;
use super::run::run;

const SSHD: &str = "/usr/sbin/sshd";
const KEY: &str = "/etc/ssh/ssh_host_ed25519_key";

/// One-time set-up; false when the image has no sshd.
pub fn prepare() -> bool {
    if !Path::new(SSHD).exists() || !Path::new("/etc/ssh/sshd_config").exists() {
        return false;
    }
    let _ = std::fs::create_dir_all("/run/sshd");
    ensure_sshd_user(Path::new("/etc/passwd"));
    if !Path::new(KEY).exists()
        && !run(
            "ssh-keygen",
            &["-q", "-t", "ed25519", "-N", "", "-C", "rescue", "-f", KEY],
            Duration::from_secs(30),
        )
    {
        return false;
    }
    true
}

/// Adds the `sshd` privilege separation user when the host's passwd has
/// none (Debian's openssh-server creates it; a copied passwd may lack it).
pub fn ensure_sshd_user(passwd: &Path) {
    let text = std::fs::read_to_string(passwd).unwrap_or_default();
    if text.lines().any(|l| l.starts_with("sshd:")) {
        return;
    }
    if let Ok(mut f) = OpenOptions::new().append(true).create(true).open(passwd) {
        // 65534 is nogroup in Debian's base-passwd.
        let _ = writeln!(f, "sshd:x:101:65534::/run/sshd:/usr/sbin/nologin");
    }
}

/// Starts `sshd -D -e`; returns its pid.
pub fn spawn() -> Option<i32> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open("/run/mkrescue/sshd.log")
        .ok()?;
    match Command::new(SSHD)
        .args(["-D", "-e"])
        .env_clear()
        .env("PATH", super::PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
    {
        Ok(c) => Some(c.id() as i32),
        Err(e) => {
            log_line(&format!("mkrescue init: cannot start {SSHD}: {e}"));
            None
        }
    }
}

/// Whether something listens on TCP port 22 (/proc/net/tcp{,6}: local
/// address `IP:0016`, state `0A` = LISTEN, proc(5)).
pub fn listening() -> bool {
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|t| {
            t.lines().skip(1).any(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.len() > 3 && w[1].ends_with(":0016") && w[3] == "0A"
            })
        })
    })
}

/// Waits up to `limit` for sshd to listen.
pub fn wait_listening(limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if listening() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sshd_user_added_once() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("passwd");
        std::fs::write(&p, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
        ensure_sshd_user(&p);
        ensure_sshd_user(&p);
        let t = std::fs::read_to_string(&p).unwrap();
        assert_eq!(t.lines().filter(|l| l.starts_with("sshd:")).count(), 1);
        assert!(t.starts_with("root:x:0:0:"));
    }
}
