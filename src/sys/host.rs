//! Who this host is: its name and its running kernel (uname(2)).

use std::path::Path;

/// The host's name, the one every command uses: archives are named by it
/// (`NAME-YYYYMMDDTHHMMSSZ`), `--iso-backup` looks for archives by it, and
/// the rescue system is called `NAME-rescue`.
///
/// `ROOT/etc/hostname` wins: it is the name the admin gave the system, it
/// is what a restored system boots with, and under `--root` (a chroot or a
/// test tree) it is the only name that belongs to that tree. Only when it
/// is missing, empty or not a plain host name does the kernel's name
/// (gethostname(2)) count, and `host` when that fails too.
pub fn hostname(root: &Path) -> String {
    if let Ok(h) = std::fs::read_to_string(root.join("etc/hostname")) {
        let h = h.trim();
        if is_plain_name(h) {
            return h.to_string();
        }
    }
    kernel_hostname()
        .filter(|h| is_plain_name(h))
        .unwrap_or_else(|| "host".into())
}

/// Letters, digits, `-`, `.` and `_`: safe in a file name and a URL.
fn is_plain_name(h: &str) -> bool {
    !h.is_empty()
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

/// The kernel's host name (gethostname(2)).
pub fn kernel_hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: pointer and length describe `buf`.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    std::str::from_utf8(&buf[..end])
        .ok()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// sethostname(2).
pub fn set_kernel_hostname(name: &str) -> std::io::Result<()> {
    // SAFETY: pointer and length describe `name`'s bytes.
    if unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The running kernel, from uname(2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uname {
    pub release: String,
    pub nodename: String,
    pub machine: String,
}

/// uname(2); `unknown`, `localhost` and the build's architecture when the
/// call fails.
pub fn uname() -> Uname {
    // SAFETY: utsname is plain old data; uname(2) fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return Uname {
            release: "unknown".into(),
            nodename: "localhost".into(),
            machine: std::env::consts::ARCH.into(),
        };
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Uname {
        release: field(&u.release),
        nodename: field(&u.nodename),
        machine: field(&u.machine),
    }
}

/// Whether this process runs as root (geteuid(2)).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The host's last boot, firmware to systemd's "startup finished", from
/// systemd's monotonic timestamps (microseconds): None without systemd.
pub fn boot_seconds() -> Option<f64> {
    let out = std::process::Command::new("systemctl")
        .args([
            "show",
            "--property=FirmwareTimestampMonotonic,LoaderTimestampMonotonic,FinishTimestampMonotonic",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let out = String::from_utf8_lossy(&out.stdout);
    let mut v = std::collections::BTreeMap::new();
    for l in out.lines() {
        if let Some((k, val)) = l.split_once('=') {
            v.insert(k.to_string(), val.trim().parse::<f64>().unwrap_or(0.0));
        }
    }
    let finish = *v.get("FinishTimestampMonotonic")?;
    if finish <= 0.0 {
        return None;
    }
    // Firmware and loader count backwards from the kernel's start.
    let before = v.get("FirmwareTimestampMonotonic").copied().unwrap_or(0.0);
    Some((before + finish) / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etc_hostname_wins_over_the_kernels_name() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(d.path().join("etc/hostname"), "web1-not-the-kernel\n").unwrap();
        assert_eq!(hostname(d.path()), "web1-not-the-kernel");
        assert_ne!(kernel_hostname().as_deref(), Some("web1-not-the-kernel"));
    }

    #[test]
    fn a_bad_etc_hostname_falls_back_to_the_kernel() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(d.path().join("etc/hostname"), "../../evil\n").unwrap();
        let k = kernel_hostname().unwrap_or_else(|| "host".into());
        assert_eq!(hostname(d.path()), k);
        std::fs::remove_file(d.path().join("etc/hostname")).unwrap();
        assert_eq!(hostname(d.path()), k);
    }

    #[test]
    fn uname_names_this_kernel() {
        let u = uname();
        assert_eq!(u.machine, std::env::consts::ARCH);
        assert!(!u.release.is_empty());
    }
}
