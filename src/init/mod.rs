//! PID 1 of the rescue system. The kernel starts `/init`, a symlink to the
//! mkrescue binary; `main` sees PID 1 (or argv[0] `init`) and lands here.
//! `poweroff`, `reboot` and `halt` in the rescue system are symlinks to the
//! same binary too.
//!
//! Owns: kernel file systems, hostname, the consoles named on the kernel
//! command line (a shell with job control on each, respawned when it exits),
//! reaping orphans, the ready marker, and power-off. Hands on a running
//! system; hardware, network and SSH set-up belong to the rescue runtime.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The line every boot test waits for.
pub const READY_MARKER: &str = "mkrescue: rescue system ready";

const LOG: &str = "/run/mkrescue/init.log";
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What argv[0] asks for when mkrescue runs inside the rescue system.
pub enum Role {
    Init,
    Power(PowerAction),
    Tool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    PowerOff,
    Reboot,
    Halt,
}

/// Whether this process is the rescue system's init or a power command.
pub fn role(argv0: &str) -> Role {
    let name = Path::new(argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    match name {
        "poweroff" => Role::Power(PowerAction::PowerOff),
        "reboot" => Role::Power(PowerAction::Reboot),
        "halt" => Role::Power(PowerAction::Halt),
        "init" => Role::Init,
        _ if std::process::id() == 1 => Role::Init,
        _ => Role::Tool,
    }
}

/// Whether this process was started as the rescue system's init.
pub fn is_init(argv0: &str) -> bool {
    matches!(role(argv0), Role::Init)
}

/// Kernel command line parameters that concern the rescue system.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cmdline {
    /// Console devices from `console=` (`ttyS0`, `tty0`), in order.
    pub consoles: Vec<String>,
    /// `mkrescue.after=poweroff|reboot|shell` (default shell).
    pub after: Option<String>,
}

impl Cmdline {
    pub fn parse(text: &str) -> Self {
        let mut c = Cmdline::default();
        for word in text.split_whitespace() {
            if let Some(v) = word.strip_prefix("console=") {
                // console=ttyS0,115200n8: the device is before the comma
                // (Documentation/admin-guide/serial-console.rst).
                let dev = v.split(',').next().unwrap_or("");
                if !dev.is_empty() && !c.consoles.iter().any(|d| d == dev) {
                    c.consoles.push(dev.to_string());
                }
            } else if let Some(v) = word.strip_prefix("mkrescue.after=") {
                c.after = Some(v.to_string());
            }
        }
        c
    }
}

/// Runs as PID 1; never returns.
pub fn run() -> ! {
    // SAFETY: umask(2) cannot fail.
    unsafe { libc::umask(0o022) };
    mount_kernel_filesystems();
    let _ = std::fs::create_dir_all("/run/mkrescue");
    let cmdline = Cmdline::parse(&std::fs::read_to_string("/proc/cmdline").unwrap_or_default());
    set_hostname();

    let consoles: Vec<String> = if cmdline.consoles.is_empty() {
        vec!["console".to_string()]
    } else {
        cmdline.consoles.clone()
    };
    let uptime = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    let marker = format!("{READY_MARKER} ({uptime}s)");
    log_line(&marker);
    for c in &consoles {
        // The kernel console (stderr) already has it when it is this one.
        if c != "console" && !is_primary_console(c, &consoles) {
            if let Ok(mut f) = OpenOptions::new().write(true).open(format!("/dev/{c}")) {
                let _ = writeln!(f, "{marker}\r");
            }
        }
    }

    match cmdline.after.as_deref() {
        Some("poweroff") => power(PowerAction::PowerOff),
        Some("reboot") => power(PowerAction::Reboot),
        _ => {}
    }
    supervise_shells(&consoles)
}

/// The kernel's /dev/console is the last `console=` given
/// (serial-console.rst), so init's stderr already reaches that one.
fn is_primary_console(c: &str, all: &[String]) -> bool {
    all.last().is_some_and(|l| l == c)
}

fn mount_kernel_filesystems() {
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
        // gid 5 is "tty" in Debian's base-passwd.
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
}

/// `<host>-rescue`, from the host facts recorded at build time.
fn set_hostname() {
    let host = std::fs::read("/etc/mkrescue/host.json")
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["hostname"].as_str().map(str::to_string))
        .unwrap_or_else(|| "mkrescue".into());
    let name = format!("{host}-rescue");
    // SAFETY: pointer and length describe `name`'s bytes.
    if unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) } != 0 {
        log_line(&format!(
            "mkrescue init: setting hostname {name}: {}",
            std::io::Error::last_os_error()
        ));
    }
}

/// One login shell per console, respawned when it exits; reaps orphans.
fn supervise_shells(consoles: &[String]) -> ! {
    let mut running: HashMap<i32, String> = HashMap::new();
    for c in consoles {
        if let Some(pid) = spawn_shell(c) {
            running.insert(pid, c.clone());
        }
    }
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer; -1 reaps any child,
        // including orphans re-parented to PID 1.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid < 0 {
            // No children at all: every console failed; try again later.
            std::thread::sleep(Duration::from_secs(5));
            for c in consoles {
                if !running.values().any(|r| r == c)
                    && let Some(pid) = spawn_shell(c)
                {
                    running.insert(pid, c.clone());
                }
            }
            continue;
        }
        if let Some(c) = running.remove(&pid) {
            std::thread::sleep(Duration::from_millis(500));
            if let Some(pid) = spawn_shell(&c) {
                running.insert(pid, c);
            }
        }
    }
}

/// Starts `bash -l` (else `sh -l`) as session leader with /dev/<console> as
/// its controlling terminal, so job control works.
fn spawn_shell(console: &str) -> Option<i32> {
    let dev = format!("/dev/{console}");
    let tty = match OpenOptions::new().read(true).write(true).open(&dev) {
        Ok(f) => f,
        Err(e) => {
            log_line(&format!("mkrescue init: cannot open {dev}: {e}"));
            return None;
        }
    };
    let shell = if Path::new("/bin/bash").exists() {
        "/bin/bash"
    } else {
        "/bin/sh"
    };
    if let Ok(motd) = std::fs::read_to_string("/etc/motd") {
        let _ = (&tty).write_all(motd.replace('\n', "\r\n").as_bytes());
    }
    let (out, err) = (tty.try_clone().ok()?, tty.try_clone().ok()?);
    let mut cmd = Command::new(shell);
    cmd.arg("-l")
        .env_clear()
        .env("PATH", PATH)
        .env("HOME", "/root")
        .env(
            "TERM",
            if console.starts_with("ttyS") {
                "vt102"
            } else {
                "linux"
            },
        )
        .current_dir("/root")
        .stdin(Stdio::from(tty))
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    // SAFETY: only async-signal-safe calls (setsid, ioctl) between fork and
    // exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // TIOCSCTTY: make stdin the controlling terminal (tty_ioctl(4)).
            if libc::ioctl(0, libc::TIOCSCTTY, 1) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    match cmd.spawn() {
        Ok(child) => Some(child.id() as i32),
        Err(e) => {
            log_line(&format!(
                "mkrescue init: cannot start {shell} on {dev}: {e}"
            ));
            None
        }
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

/// `poweroff`, `reboot`, `halt`: flush the disks and tell the kernel.
pub fn power(action: PowerAction) -> ! {
    log_line(match action {
        PowerAction::PowerOff => "mkrescue: powering off",
        PowerAction::Reboot => "mkrescue: rebooting",
        PowerAction::Halt => "mkrescue: halting",
    });
    // SAFETY: sync(2) and reboot(2) take no pointers. reboot(2) needs
    // CAP_SYS_BOOT: the rescue shell runs as root.
    unsafe {
        libc::sync();
        libc::reboot(match action {
            PowerAction::PowerOff => libc::RB_POWER_OFF,
            PowerAction::Reboot => libc::RB_AUTOBOOT,
            PowerAction::Halt => libc::RB_HALT_SYSTEM,
        });
    }
    eprintln!(
        "mkrescue: reboot(2) failed: {}",
        std::io::Error::last_os_error()
    );
    std::process::exit(1)
}

/// To the console (init's stderr) and the init log.
fn log_line(s: &str) {
    let _ = writeln!(std::io::stderr(), "{s}");
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(LOG) {
        let _ = writeln!(f, "{s}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consoles_and_after_from_cmdline() {
        let c = Cmdline::parse(
            "BOOT_IMAGE=/vmlinuz console=tty0 console=ttyS0,115200n8 mkrescue.after=poweroff quiet",
        );
        assert_eq!(c.consoles, ["tty0", "ttyS0"]);
        assert_eq!(c.after.as_deref(), Some("poweroff"));
        assert!(Cmdline::parse("quiet").consoles.is_empty());
    }

    #[test]
    fn argv0_picks_the_role() {
        assert!(matches!(
            role("/usr/sbin/poweroff"),
            Role::Power(PowerAction::PowerOff)
        ));
        assert!(matches!(role("reboot"), Role::Power(PowerAction::Reboot)));
        assert!(matches!(role("/init"), Role::Init));
        assert!(matches!(role("/usr/bin/mkrescue"), Role::Tool));
    }
}
