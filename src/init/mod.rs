//! PID 1 of the rescue system. The kernel starts `/init`, a symlink to the
//! mkrescue binary; `main` sees PID 1 (or argv[0] `init`) and lands here.
//!
//! This is the minimal init: it mounts the kernel file systems, prints the
//! ready marker and gives the console a shell. Hardware, network and SSH set-up
//! belong to the rescue runtime issue.

use std::ffi::CString;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The line every boot test waits for.
pub const READY_MARKER: &str = "mkrescue: rescue system ready";

/// Whether this process was started as the rescue system's init.
pub fn is_init(argv0: &str) -> bool {
    std::process::id() == 1 || Path::new(argv0).file_name().is_some_and(|n| n == "init")
}

/// Runs as PID 1; never returns.
pub fn run() -> ! {
    // SAFETY: umask(2) cannot fail.
    unsafe { libc::umask(0o022) };
    for (src, target, fstype, flags, data) in [
        (
            "proc",
            "/proc",
            "proc",
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            "",
        ),
        (
            "sysfs",
            "/sys",
            "sysfs",
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            "",
        ),
        ("devtmpfs", "/dev", "devtmpfs", libc::MS_NOSUID, "mode=0755"),
        (
            "devpts",
            "/dev/pts",
            "devpts",
            libc::MS_NOSUID | libc::MS_NOEXEC,
            "gid=5,mode=620,ptmxmode=000",
        ),
        (
            "tmpfs",
            "/run",
            "tmpfs",
            libc::MS_NOSUID | libc::MS_NODEV,
            "mode=0755",
        ),
        (
            "tmpfs",
            "/tmp",
            "tmpfs",
            libc::MS_NOSUID | libc::MS_NODEV,
            "mode=1777",
        ),
    ] {
        let _ = std::fs::create_dir_all(target);
        if let Err(e) = mount(src, target, fstype, flags, data) {
            log_line(&format!("mkrescue init: mounting {target} ({fstype}): {e}"));
        }
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let uptime = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    log_line(&format!("{READY_MARKER} ({uptime}s)"));

    let after = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("mkrescue.after="))
        .unwrap_or("shell");
    if after == "poweroff" || after == "reboot" {
        power(after == "reboot");
    }
    loop {
        log_line("mkrescue init: starting a shell on the console (exit it to get a new one)");
        match Command::new("/bin/sh")
            .arg("-l")
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .status()
        {
            Ok(_) => {}
            Err(e) => {
                log_line(&format!("mkrescue init: cannot start /bin/sh: {e}"));
                std::thread::sleep(Duration::from_secs(5));
            }
        }
        reap();
    }
}

fn mount(
    src: &str,
    target: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> std::io::Result<()> {
    let c = |s: &str| {
        CString::new(s).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
    };
    let (src, target, fstype, data) = (c(src)?, c(target)?, c(fstype)?, c(data)?);
    // SAFETY: all pointers are valid NUL-terminated strings for the call.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Reaps every exited child (PID 1 inherits orphans).
fn reap() {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            break;
        }
    }
}

fn power(reboot: bool) -> ! {
    log_line(if reboot {
        "mkrescue init: rebooting"
    } else {
        "mkrescue init: powering off"
    });
    // SAFETY: sync(2) and reboot(2) take no pointers.
    unsafe {
        libc::sync();
        libc::reboot(if reboot {
            libc::RB_AUTOBOOT
        } else {
            libc::RB_POWER_OFF
        });
    }
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

fn log_line(s: &str) {
    let mut err = std::io::stderr();
    let _ = writeln!(err, "{s}");
}
