//! PID 1 of the rescue system. The kernel starts `/init`, a symlink to the
//! mkrescue binary; `main` sees PID 1 (or argv[0] `init`) and lands here.
//! `poweroff`, `reboot` and `halt` in the rescue system are symlinks to the
//! same binary too.
//!
//! Owns the whole boot of the rescue system, in this order:
//! 1. kernel file systems (/proc, /sys, devtmpfs /dev, devpts, tmpfs /run
//!    and /tmp), hostname `<host>-rescue`, the log /run/mkrescue/init.log
//!    (every line also goes to the console);
//! 2. hardware (`hardware`): udev or modalias loading, with md/LVM
//!    auto-assembly disabled;
//! 3. network (`net`): the host's configuration by MAC, DHCP, or what
//!    `ip=` / `mkrescue.net=` say;
//! 4. sshd (`sshd`), keys only;
//! 5. the ready marker, once, on every console;
//! 6. `mkrescue.recover=auto`: `mkrescue recover --unattended` (output on
//!    the console, no input); `mkrescue.recover=ask` (the boot menus'
//!    "Recover (interactive)" entries): `mkrescue recover`
//!    on the first console of the command line, as the foreground program
//!    of that terminal so it can ask, and that console's shell starts when
//!    it ends. Then `mkrescue.after=poweroff|reboot|shell` (reboot only
//!    after a successful recover: a failed one stays up for the operator;
//!    without recover= the after action follows the marker);
//! 7. a shell with job control on every console of the command line,
//!    respawned when it exits; sshd respawned too; every orphan reaped.
//!    PID 1 never exits.

mod hardware;
mod net;
mod run;
mod sshd;

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The line every boot test waits for.
pub const READY_MARKER: &str = "mkrescue: rescue system ready";
/// The line after a successful `mkrescue.recover=` run, and the start of
/// the line after a failed one (what `mkrescue drill` and the e2e wait for).
pub const RECOVER_OK: &str = "mkrescue: recover finished";
pub const RECOVER_FAILED: &str = "mkrescue: recover failed";
/// Where init writes its uptime at the ready marker: the rescue system's
/// boot time, kernel to ready, for `mkrescue estimate`.
pub const READY_AT: &str = "/run/mkrescue/ready-at";

pub(crate) const LOG: &str = "/run/mkrescue/init.log";
pub(crate) const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

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
    /// `mkrescue.recover=auto|ask` as given (see [`Cmdline::recover_mode`]).
    pub recover: Option<String>,
    /// `mkrescue.net=off|dhcp|host`.
    pub net: Option<String>,
    /// `ip=` in the kernel's syntax.
    pub ip: Option<String>,
    /// `mkrescue.udev=off`: load drivers by modalias instead of udev (for
    /// hardware where udev's rules misbehave).
    pub no_udev: bool,
}

/// What `mkrescue.recover=` asks for after the ready marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoverMode {
    /// Not given: no recover, a shell on every console.
    None,
    /// `auto`: `mkrescue recover --unattended`, no questions.
    Auto,
    /// `ask`: `mkrescue recover` in the foreground of this console.
    Ask { console: String },
    /// Anything else: logged, nothing recovered.
    Unknown(String),
}

impl Cmdline {
    /// `mkrescue.recover=` with the console an interactive recover runs
    /// on: the first `console=` (the one the boot menu entry names:
    /// `ttyS0` for the serial entries, `tty0` for the screen ones), or
    /// /dev/console when the command line has none.
    pub fn recover_mode(&self) -> RecoverMode {
        match self.recover.as_deref() {
            None => RecoverMode::None,
            Some("auto") => RecoverMode::Auto,
            Some("ask") => RecoverMode::Ask {
                console: self
                    .consoles
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "console".into()),
            },
            Some(other) => RecoverMode::Unknown(other.to_string()),
        }
    }

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
            } else if let Some(v) = word.strip_prefix("mkrescue.recover=") {
                c.recover = Some(v.to_string());
            } else if let Some(v) = word.strip_prefix("mkrescue.net=") {
                c.net = Some(v.to_string());
            } else if let Some(v) = word.strip_prefix("ip=") {
                c.ip = Some(v.to_string());
            } else if word == "mkrescue.udev=off" {
                c.no_udev = true;
            }
        }
        c
    }
}

/// Runs as PID 1; never returns.
pub fn run() -> ! {
    crate::sys::process::set_umask(0o022);
    mount_kernel_filesystems();
    let _ = std::fs::create_dir_all("/run/mkrescue");
    let cmdline = Cmdline::parse(&std::fs::read_to_string("/proc/cmdline").unwrap_or_default());
    set_hostname();
    log_line(&format!("mkrescue init: started at {}s", uptime()));

    let how = hardware::start(!cmdline.no_udev);
    log_line(&format!(
        "mkrescue init: hardware ready ({how}) at {}s",
        uptime()
    ));
    mount_efivarfs();
    let net = net::start(cmdline.net.as_deref(), cmdline.ip.as_deref());
    log_line(&format!("mkrescue init: network: {net} at {}s", uptime()));
    let mut sshd_pid = None;
    if sshd::prepare() {
        sshd_pid = sshd::spawn();
        if sshd_pid.is_some() && sshd::wait_listening(Duration::from_secs(10)) {
            log_line(&format!("mkrescue init: sshd listening at {}s", uptime()));
        } else {
            log_line("mkrescue init: sshd did not start; see /run/mkrescue/sshd.log");
        }
    }

    let consoles: Vec<String> = if cmdline.consoles.is_empty() {
        vec!["console".to_string()]
    } else {
        cmdline.consoles.clone()
    };
    print_marker(&consoles);
    // For `mkrescue estimate`: this boot's time, kernel to ready.
    let _ = std::fs::write(READY_AT, uptime());

    let mut tasks: HashMap<i32, Task> = HashMap::new();
    if let Some(pid) = sshd_pid {
        tasks.insert(pid, Task::Sshd);
    }
    match cmdline.recover_mode() {
        RecoverMode::Auto => {
            if let Some(pid) = spawn_recover(&consoles) {
                tasks.insert(pid, Task::Recover(None));
            }
        }
        RecoverMode::Ask { console } => {
            // The console named by the entry; when it cannot be opened
            // (no such port) the kernel's /dev/console still reaches the
            // operator.
            let pid = spawn_recover_on(&console).or_else(|| {
                (console != "console")
                    .then(|| spawn_recover_on("console"))
                    .flatten()
            });
            match pid {
                Some((pid, c)) => {
                    tasks.insert(pid, Task::Recover(Some(c)));
                }
                None => after(cmdline.after.as_deref(), false),
            }
        }
        RecoverMode::Unknown(other) => log_line(&format!(
            "mkrescue init: mkrescue.recover={other}: unknown, want auto or ask; not recovering"
        )),
        RecoverMode::None => after(cmdline.after.as_deref(), true),
    }
    supervise(&consoles, tasks, cmdline.after.as_deref())
}

/// Seconds since boot, from /proc/uptime.
fn uptime() -> String {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// The ready line, once on each console.
fn print_marker(consoles: &[String]) {
    let marker = format!("{READY_MARKER} ({}s)", uptime());
    log_line(&marker);
    for c in consoles {
        // The kernel console (stderr) already has it when it is this one.
        if c != "console" && !is_primary_console(c, consoles) {
            if let Ok(mut f) = OpenOptions::new().write(true).open(format!("/dev/{c}")) {
                let _ = writeln!(f, "{marker}\r");
            }
        }
    }
}

/// `mkrescue.after=`: power off or reboot now; `shell` (or none) stays.
/// `success` is false after a failed recover: then only poweroff is done
/// (a reboot would boot the rescue system and fail again).
fn after(what: Option<&str>, success: bool) {
    match what {
        Some("poweroff") => power(PowerAction::PowerOff),
        Some("reboot") if success => power(PowerAction::Reboot),
        Some("reboot") => log_line(
            "mkrescue init: not rebooting after the failed recover; the rescue system stays up",
        ),
        None | Some("shell") => {}
        Some(other) => log_line(&format!(
            "mkrescue init: mkrescue.after={other}: unknown, want poweroff, reboot or shell"
        )),
    }
}

/// `mkrescue recover` in the foreground of `console`, which it asks on.
/// Returns its pid and the console it holds.
fn spawn_recover_on(console: &str) -> Option<(i32, String)> {
    log_line(&format!(
        "mkrescue init: mkrescue.recover=ask: running mkrescue recover on /dev/{console}"
    ));
    let dev = format!("/dev/{console}");
    if let Ok(mut f) = OpenOptions::new().write(true).open(&dev) {
        let _ = f.write_all(
            b"\r\nmkrescue recover: rebuilding this machine from the saved layout, interactively: questions and answers on this console.\r\nA shell starts on this console when it ends (also now on the other consoles and over SSH).\r\n\r\n",
        );
    }
    spawn_on_console(console, "/usr/bin/mkrescue", &["recover"], false)
        .map(|pid| (pid, console.to_string()))
}

/// `mkrescue recover --unattended` with its output on every console (not
/// only /dev/console, the last `console=`: an operator watching the serial
/// port of a `console=ttyS0 console=tty0` entry must see it run) and in
/// /run/mkrescue/recover.log.
fn spawn_recover(consoles: &[String]) -> Option<i32> {
    log_line("mkrescue init: mkrescue.recover=auto: running mkrescue recover --unattended");
    let (reader, out, err) = match std::io::pipe() {
        Ok((r, w)) => match w.try_clone() {
            Ok(w2) => (Some(r), Stdio::from(w), Stdio::from(w2)),
            Err(_) => (None, Stdio::inherit(), Stdio::inherit()),
        },
        Err(_) => (None, Stdio::inherit(), Stdio::inherit()),
    };
    // The Command (and with it this process's write ends) is gone after
    // this statement: the reader sees EOF when recover has exited.
    let spawned = Command::new("/usr/bin/mkrescue")
        .args(["recover", "--unattended"])
        .env_clear()
        .env("PATH", PATH)
        .env("HOME", "/root")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn();
    if let Some(r) = reader {
        let others: Vec<String> = consoles
            .iter()
            .filter(|c| *c != "console" && !is_primary_console(c, consoles))
            .cloned()
            .collect();
        let relay = Relay::start(move || tee_to_consoles(r, &others));
        if let Ok(mut g) = RELAY.lock() {
            *g = Some(relay);
        }
    }
    match spawned {
        Ok(c) => Some(c.id() as i32),
        Err(e) => {
            log_line(&format!("mkrescue init: recover failed: cannot start: {e}"));
            None
        }
    }
}

/// The thread that copies recover's output to the consoles
/// ([`tee_to_consoles`]), and when it is done.
struct Relay(std::sync::mpsc::Receiver<()>);

impl Relay {
    fn start(copy: impl FnOnce() + Send + 'static) -> Relay {
        let (done, rx) = std::sync::mpsc::sync_channel(1);
        std::thread::spawn(move || {
            copy();
            let _ = done.send(());
        });
        Relay(rx)
    }

    /// Waits until the relay has copied everything recover wrote (its
    /// pipe's end), at most `limit`: a process recover left running may
    /// hold the pipe open. Whether it is done.
    fn wait(&self, limit: Duration) -> bool {
        !matches!(
            self.0.recv_timeout(limit),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        )
    }
}

/// The unattended recover's [`Relay`]: recover has exited when init reaps
/// it, but the end of its report may still be in the pipe; init prints
/// its own last line and powers off only once the relay has copied it
/// (the e2e saw the report's finalize lines lost at power-off).
static RELAY: std::sync::Mutex<Option<Relay>> = std::sync::Mutex::new(None);

/// How long init waits for the relay after recover exited.
const RELAY_WAIT: Duration = Duration::from_secs(10);

/// Copies recover's output, line by line, to /dev/console (init's stderr),
/// to each console in `others`, and to /run/mkrescue/recover.log.
fn tee_to_consoles(r: std::io::PipeReader, others: &[String]) {
    use std::io::BufRead;
    let mut outs: Vec<std::fs::File> = others
        .iter()
        .filter_map(|c| {
            OpenOptions::new()
                .write(true)
                .open(format!("/dev/{c}"))
                .ok()
        })
        .collect();
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open("/run/mkrescue/recover.log")
        .ok();
    for line in std::io::BufReader::new(r).split(b'\n') {
        let Ok(line) = line else { break };
        let _ = std::io::stderr().write_all(&[&line[..], b"\n"].concat());
        for o in &mut outs {
            // A serial terminal wants the carriage return, too.
            let _ = o.write_all(&[&line[..], b"\r\n"].concat());
        }
        if let Some(l) = log.as_mut() {
            let _ = l.write_all(&[&line[..], b"\n"].concat());
        }
    }
}

/// The children init watches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Task {
    Shell(String),
    Sshd,
    /// The recover run; with the console it holds (`recover=ask`), whose
    /// shell starts when it ends.
    Recover(Option<String>),
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
        if let Err(e) = crate::sys::mount::mount(src, target, fstype, flags, data) {
            log_line(&format!("mkrescue init: mounting {target} ({fstype}): {e}"));
        }
    }
}

/// Under UEFI, the firmware variables at /sys/firmware/efi/efivars: without
/// them efibootmgr (libefivar reads and writes only efivarfs since Linux 6.0
/// dropped the sysfs `vars` interface) cannot write the boot entry that
/// recover's finalize (grub-install in the restored system's chroot, which
/// sees this mount through its bind of /sys) makes. systemd mounts it on a
/// normal boot; here nothing else does. Debian builds efivarfs as a module
/// (CONFIG_EFIVAR_FS=m), so load it first. Documentation/filesystems/
/// efivarfs.rst.
fn mount_efivarfs() {
    let dir = "/sys/firmware/efi/efivars";
    if !Path::new("/sys/firmware/efi").is_dir() || !Path::new(dir).is_dir() {
        return;
    }
    if let Ok(c) = run::command("modprobe", &["efivarfs"]).spawn() {
        let _ = run::wait(c, "modprobe efivarfs", Duration::from_secs(10));
    }
    match crate::sys::mount::mount(
        "efivarfs",
        dir,
        "efivarfs",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        "",
    ) {
        Ok(()) => log_line("mkrescue init: UEFI variables mounted at /sys/firmware/efi/efivars"),
        // EBUSY: already mounted.
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
        Err(e) => log_line(&format!("mkrescue init: mounting {dir} (efivarfs): {e}")),
    }
}

/// `<host>-rescue`, from the host facts recorded at build time.
fn set_hostname() {
    let host = std::fs::read("/etc/mkrescue/host.json")
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["hostname"].as_str().map(str::to_string))
        .unwrap_or_else(|| "mkrescue".into());
    sethostname(&format!("{host}-rescue"));
}

/// sethostname(2), logged on failure.
fn sethostname(name: &str) {
    if let Err(e) = crate::sys::host::set_kernel_hostname(name) {
        log_line(&format!("mkrescue init: setting hostname {name}: {e}"));
    }
}

/// One login shell per console and sshd, respawned when they exit; the
/// recover run's end triggers `mkrescue.after`; every other child (orphans
/// re-parented to PID 1) is just reaped.
fn supervise(consoles: &[String], mut tasks: HashMap<i32, Task>, after_action: Option<&str>) -> ! {
    // A console an interactive recover holds gets its shell afterwards.
    let held: Vec<String> = tasks
        .values()
        .filter_map(|t| match t {
            Task::Recover(Some(c)) => Some(c.clone()),
            _ => None,
        })
        .collect();
    for c in consoles.iter().filter(|c| !held.contains(*c)) {
        if let Some(pid) = spawn_shell(c) {
            tasks.insert(pid, Task::Shell(c.clone()));
        }
    }
    loop {
        let (pid, status) = crate::sys::process::wait_any();
        if pid < 0 {
            // No children at all: every console failed; try again later.
            std::thread::sleep(Duration::from_secs(5));
            for c in consoles {
                if !tasks
                    .values()
                    .any(|t| *t == Task::Shell(c.clone()) || *t == Task::Recover(Some(c.clone())))
                    && let Some(pid) = spawn_shell(c)
                {
                    tasks.insert(pid, Task::Shell(c.clone()));
                }
            }
            continue;
        }
        match tasks.remove(&pid) {
            Some(Task::Shell(c)) => {
                std::thread::sleep(Duration::from_millis(500));
                if let Some(pid) = spawn_shell(&c) {
                    tasks.insert(pid, Task::Shell(c));
                }
            }
            Some(Task::Sshd) => {
                log_line("mkrescue init: sshd exited; restarting it");
                std::thread::sleep(Duration::from_secs(2));
                if let Some(pid) = sshd::spawn() {
                    tasks.insert(pid, Task::Sshd);
                }
            }
            Some(Task::Recover(console)) => {
                if let Some(relay) = RELAY.lock().ok().and_then(|mut g| g.take())
                    && !relay.wait(RELAY_WAIT)
                {
                    log_line(&format!(
                        "mkrescue init: recover's output is still open after {}s (a process it left running?); going on",
                        RELAY_WAIT.as_secs()
                    ));
                }
                let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
                let line = if ok {
                    RECOVER_OK.to_string()
                } else if libc::WIFEXITED(status) {
                    format!(
                        "{RECOVER_FAILED} (exit code {}); the rescue system stays up, see the messages above",
                        libc::WEXITSTATUS(status)
                    )
                } else {
                    format!("{RECOVER_FAILED} (killed by a signal)")
                };
                log_line(&line);
                // An interactive run's operator watches its console, which
                // need not be /dev/console (the last console=).
                if let Some(c) = &console
                    && c != "console"
                    && !is_primary_console(c, consoles)
                    && let Ok(mut f) = OpenOptions::new().write(true).open(format!("/dev/{c}"))
                {
                    let _ = writeln!(f, "{line}\r");
                }
                after(after_action, ok);
                // The operator's console: now the shell.
                if let Some(c) = console
                    && consoles.contains(&c)
                    && let Some(pid) = spawn_shell(&c)
                {
                    tasks.insert(pid, Task::Shell(c));
                }
            }
            None => {}
        }
    }
}

/// Starts `bash -l` (else `sh -l`) as session leader with /dev/<console> as
/// its controlling terminal, so job control works.
fn spawn_shell(console: &str) -> Option<i32> {
    let shell = if Path::new("/bin/bash").exists() {
        "/bin/bash"
    } else {
        "/bin/sh"
    };
    spawn_on_console(console, shell, &["-l"], true)
}

/// Starts `program args` as session leader with /dev/<console> as its
/// controlling terminal and stdin/stdout/stderr (so it can read answers
/// and Ctrl-C reaches it); `motd` prints /etc/motd there first.
fn spawn_on_console(console: &str, program: &str, args: &[&str], motd: bool) -> Option<i32> {
    let dev = format!("/dev/{console}");
    let tty = match OpenOptions::new().read(true).write(true).open(&dev) {
        Ok(f) => f,
        Err(e) => {
            log_line(&format!("mkrescue init: cannot open {dev}: {e}"));
            return None;
        }
    };
    if motd && let Ok(text) = std::fs::read_to_string("/etc/motd") {
        let _ = (&tty).write_all(text.replace('\n', "\r\n").as_bytes());
    }
    let (out, err) = (tty.try_clone().ok()?, tty.try_clone().ok()?);
    let mut cmd = Command::new(program);
    cmd.args(args)
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
    crate::sys::process::own_session_with_stdin_tty(&mut cmd);
    match cmd.spawn() {
        Ok(child) => Some(child.id() as i32),
        Err(e) => {
            log_line(&format!(
                "mkrescue init: cannot start {program} on {dev}: {e}"
            ));
            None
        }
    }
}

/// `poweroff`, `reboot`, `halt`: flush the disks and tell the kernel.
pub fn power(action: PowerAction) -> ! {
    log_line(match action {
        PowerAction::PowerOff => "mkrescue: powering off",
        PowerAction::Reboot => "mkrescue: rebooting",
        PowerAction::Halt => "mkrescue: halting",
    });
    crate::sys::process::sync_and_reboot(match action {
        PowerAction::PowerOff => libc::RB_POWER_OFF,
        PowerAction::Reboot => libc::RB_AUTOBOOT,
        PowerAction::Halt => libc::RB_HALT_SYSTEM,
    });
    eprintln!(
        "mkrescue: reboot(2) failed: {}",
        std::io::Error::last_os_error()
    );
    std::process::exit(1)
}

/// To the console (init's stderr) and the init log.
pub(crate) fn log_line(s: &str) {
    let _ = writeln!(std::io::stderr(), "{s}");
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(LOG) {
        let _ = writeln!(f, "{s}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The relay is waited for until it has copied the last line (what
    /// init then prints comes after recover's report), or until the limit
    /// when something holds recover's pipe open.
    #[test]
    fn init_waits_for_the_relay_of_recovers_last_lines() {
        use std::sync::{Arc, Mutex};
        let (w, r) = {
            let (r, w) = std::io::pipe().unwrap();
            (w, r)
        };
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        let relay = Relay::start(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(r).lines() {
                // A slow console.
                std::thread::sleep(Duration::from_millis(20));
                sink.lock().unwrap().push(line.unwrap());
            }
        });
        {
            let mut w = w;
            for i in 0..20 {
                writeln!(w, "report line {i}").unwrap();
            }
        }
        // The writer (recover) is gone; its lines are not all copied yet.
        assert!(relay.wait(Duration::from_secs(10)));
        assert_eq!(got.lock().unwrap().len(), 20);
        assert_eq!(got.lock().unwrap()[19], "report line 19");
        // A pipe held open: the wait ends at its limit.
        let (_w2, r2) = {
            let (r, w) = std::io::pipe().unwrap();
            (w, r)
        };
        let held = Relay::start(move || {
            let mut b = Vec::new();
            let _ = std::io::Read::read_to_end(&mut { r2 }, &mut b);
        });
        let t = std::time::Instant::now();
        assert!(!held.wait(Duration::from_millis(200)));
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn consoles_and_after_from_cmdline() {
        let c = Cmdline::parse(
            "BOOT_IMAGE=/vmlinuz console=tty0 console=ttyS0,115200n8 mkrescue.after=poweroff quiet",
        );
        assert_eq!(c.consoles, ["tty0", "ttyS0"]);
        assert_eq!(c.after.as_deref(), Some("poweroff"));
        assert!(Cmdline::parse("quiet").consoles.is_empty());
        let c = Cmdline::parse(
            "mkrescue.recover=auto mkrescue.udev=off mkrescue.net=dhcp ip=10.0.0.5::10.0.0.1:255.255.255.0::eth0:none",
        );
        assert_eq!(c.recover.as_deref(), Some("auto"));
        assert!(c.no_udev);
        assert_eq!(c.net.as_deref(), Some("dhcp"));
        assert_eq!(
            c.ip.as_deref(),
            Some("10.0.0.5::10.0.0.1:255.255.255.0::eth0:none")
        );
    }

    #[test]
    fn recover_ask_runs_on_the_first_console() {
        // What the boot menus pass (src/output/bootcfg.rs): the serial
        // entry lists ttyS0 first, the screen entry tty0 only.
        let serial = Cmdline::parse(&format!(
            "{} mkrescue.recover=ask",
            crate::output::bootcfg::SERIAL_CONSOLES
        ));
        assert_eq!(
            serial.recover_mode(),
            RecoverMode::Ask {
                console: "ttyS0".into()
            }
        );
        let screen = Cmdline::parse("console=tty0 mkrescue.recover=ask");
        assert_eq!(
            screen.recover_mode(),
            RecoverMode::Ask {
                console: "tty0".into()
            }
        );
        // No console= at all: the kernel's /dev/console.
        assert_eq!(
            Cmdline::parse("mkrescue.recover=ask").recover_mode(),
            RecoverMode::Ask {
                console: "console".into()
            }
        );
        assert_eq!(
            Cmdline::parse("console=ttyS0 mkrescue.recover=auto").recover_mode(),
            RecoverMode::Auto
        );
        assert_eq!(Cmdline::parse("quiet").recover_mode(), RecoverMode::None);
        assert_eq!(
            Cmdline::parse("mkrescue.recover=yes").recover_mode(),
            RecoverMode::Unknown("yes".into())
        );
    }

    #[test]
    fn boot_menu_entries_pass_modes_init_knows() {
        // Every recover mode a boot menu entry passes must be one init
        // acts on: a typo in bootcfg.rs would otherwise boot into a shell
        // that silently does not recover.
        let menu = crate::output::bootcfg::Menu::new(&crate::output::bootcfg::MenuSpec {
            hostname: "h",
            os: "Debian",
            kernel_version: "6.1",
            date: Some("2024-01-01"),
            timeout: 30,
            test_rescue_default: false,
        });
        let mut seen = Vec::new();
        for e in menu.entries.iter().filter(|e| !e.local) {
            let c = Cmdline::parse(&e.cmdline);
            match c.recover_mode() {
                RecoverMode::Unknown(v) => panic!("entry {} passes recover={v}", e.id),
                RecoverMode::Ask { console } => {
                    assert_eq!(Some(&console), c.consoles.first(), "{}", e.id);
                    seen.push("ask");
                }
                RecoverMode::Auto => seen.push("auto"),
                RecoverMode::None => seen.push("none"),
            }
        }
        for want in ["ask", "auto", "none"] {
            assert!(
                seen.contains(&want),
                "no entry with recover {want}: {seen:?}"
            );
        }
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
