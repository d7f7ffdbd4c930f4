//! The one VM runner: what a VM is made of ([`VmSpec`]), the one function
//! that turns it into QEMU's command line ([`VmSpec::argv`]), and a running
//! VM ([`Vm`]: serial log, markers, typing on the console, power-off,
//! killed in `Drop`), plus SSH into it and a free host port.
//!
//! `mkrescue drill` (src/drill) and every QEMU scenario of xtask (boot,
//! media, layout, runtime, shares, e2e, bench) start QEMU through here, so
//! `-accel`, firmware, disk and network options change in one place. No
//! network but QEMU's restricted user mode (`restrict=on`: the guest
//! reaches nothing but the host's loopback forwards; or QEMU's default NIC
//! restricted the same way), the serial console to a log file the caller
//! names, so a failure leaves the log behind. The accelerator is TCG unless
//! the spec asks for KVM ([`Accel`]).

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The emulator: the one place its name is written.
pub const QEMU: &str = "qemu-system-x86_64";

/// What the rescue init prints when it is up (src/init).
pub const MARKER: &str = crate::init::READY_MARKER;

/// OVMF of Debian's `ovmf` package: the code (read-only) and the template
/// of the variable store a VM gets a copy of.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// OVMF with Secure Boot support (needs SMM and a secure flash), and a
/// variable store with Microsoft's keys enrolled and Secure Boot on
/// (Debian's ovmf README.Debian).
pub const OVMF_CODE_SB: &str = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
pub const OVMF_VARS_MS: &str = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";

/// The firmware a VM boots with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Firmware {
    /// QEMU's default (no flash).
    SeaBios,
    /// OVMF as two flash chips: the code read-only, the VM's own copy of
    /// the variable store writable (QEMU docs, "pflash"; OVMF README).
    Ovmf { vars: PathBuf },
    /// The Secure Boot build: its variables live in SMM-only flash, so SMM
    /// is on and the flash marked secure (Debian ovmf README.Debian).
    OvmfSecureBoot { vars: PathBuf },
}

/// Where the guest's ttyS0 goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serial {
    /// `-serial file:LOG`; nothing can be typed.
    File(PathBuf),
    /// QEMU's stdio (stdin piped here, to type on the console), logged to
    /// LOG.
    Console(PathBuf),
}

impl Serial {
    pub fn log(&self) -> &Path {
        match self {
            Serial::File(p) | Serial::Console(p) => p,
        }
    }
}

/// One disk (raw image), virtio unless `nvme`; its serial goes on the
/// device (QEMU 7.2 rejects it in `-drive`, QEMU.md).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disk {
    pub path: PathBuf,
    pub serial: Option<String>,
    /// Firmware boot order (`bootindex`), for disks it may boot from.
    pub bootindex: Option<u32>,
    /// `cache=unsafe`: the host need not sync a test disk.
    pub cache_unsafe: bool,
    /// The guest's writes are thrown away (`snapshot=on`).
    pub snapshot: bool,
    /// The guest cannot write it.
    pub readonly: bool,
    /// Zeros stay holes and a host I/O error reaches the guest as one (the
    /// e2e server's big sparse disks): detect-zeroes/discard=unmap,
    /// werror/rerror=report.
    pub sparse_report: bool,
    /// On an NVMe controller instead of virtio (the nvme device needs a
    /// serial; SeaBIOS and OVMF boot from it).
    pub nvme: bool,
}

impl Disk {
    pub fn raw(path: impl Into<PathBuf>, serial: &str) -> Disk {
        Disk {
            path: path.into(),
            serial: Some(serial.to_string()),
            ..Disk::default()
        }
    }
}

/// A CD-ROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cdrom {
    pub iso: PathBuf,
    /// Some: an explicit IDE CD drive first in the firmware's boot order;
    /// None: QEMU's `-cdrom` shorthand.
    pub bootindex: Option<u32>,
}

/// QEMU's user-mode network, always `restrict=on`: the guest reaches
/// nothing outside QEMU; its DHCP and TFTP still answer (QEMU docs,
/// "-netdev user").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserNet {
    /// `net=`, `host=`: the guest network and QEMU's address in it.
    pub net: Option<String>,
    pub host: Option<String>,
    /// `hostfwd=` rules, e.g. `tcp:127.0.0.1:PORT-:22`.
    pub hostfwd: Vec<String>,
    /// `guestfwd=` rules.
    pub guestfwd: Vec<String>,
    /// `tftp=`: the TFTP root QEMU serves.
    pub tftp: Option<PathBuf>,
    /// `bootfile=`: what QEMU's DHCP names as boot file.
    pub bootfile: Option<String>,
}

/// One virtio NIC on its own user network.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Nic {
    pub net: UserNet,
    pub mac: Option<String>,
    /// Firmware boot order (network boot).
    pub bootindex: Option<u32>,
}

/// The VM's network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// `-nic none`: QEMU's default NIC is unrestricted user networking,
    /// and a rescue system would DHCP on it.
    None,
    /// QEMU's default NIC model (what the media and layout scenarios
    /// always booted with), on a restricted user network: `-nic
    /// user,restrict=on` (nothing leaves the VM but to the host's loopback
    /// forwards; DHCP still answers).
    DefaultNic,
    /// These NICs, each on its own restricted user network.
    Nics(Vec<Nic>),
}

/// Direct kernel boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub append: String,
}

impl Kernel {
    /// DIR/vmlinuz + DIR/initrd.img, as mkrescue writes them.
    pub fn from_dir(dir: &Path, append: impl Into<String>) -> Kernel {
        Kernel {
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.img"),
            append: append.into(),
        }
    }
}

/// The accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accel {
    /// QEMU's emulator: slow, works everywhere (QEMU docs, "TCG").
    #[default]
    Tcg,
    /// The host's KVM (`/dev/kvm`).
    Kvm,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

/// Everything that makes up one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    pub accel: Accel,
    pub memory_mib: u32,
    pub cpus: u32,
    /// `-machine q35` (PCIe, AHCI: what the media and e2e boots use);
    /// false: QEMU's default `pc`.
    pub q35: bool,
    pub firmware: Firmware,
    pub serial: Serial,
    pub kernel: Option<Kernel>,
    pub cdrom: Option<Cdrom>,
    pub disks: Vec<Disk>,
    pub network: Network,
    /// SeaBIOS prints on the serial port too (its `etc/sercon-port`
    /// fw_cfg file, SeaBIOS docs "Runtime config"), so "No bootable
    /// device." reaches the serial log: a file holding the port, 0x3f8 as
    /// two little-endian bytes (SeaBIOS reads the file as an integer of
    /// its own size), written by [`write_sercon_port`].
    pub bios_serial_console: Option<PathBuf>,
}

/// Writes the two bytes of [`VmSpec::bios_serial_console`]: COM1's port
/// 0x3f8, little-endian.
pub fn write_sercon_port(path: &Path) -> Result<()> {
    std::fs::write(path, 0x3f8u16.to_le_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

impl VmSpec {
    /// TCG, 2 GiB, 2 CPUs, `pc`, SeaBIOS, no NIC, nothing attached.
    pub fn new(serial: Serial) -> VmSpec {
        VmSpec {
            accel: Accel::Tcg,
            memory_mib: 2048,
            cpus: 2,
            q35: false,
            firmware: Firmware::SeaBios,
            serial,
            kernel: None,
            cdrom: None,
            disks: Vec::new(),
            network: Network::None,
            bios_serial_console: None,
        }
    }

    /// QEMU's arguments (without the program name).
    pub fn argv(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut add = |xs: &[&str]| a.extend(xs.iter().map(|x| x.to_string()));
        add(&["-accel", self.accel.name()]);
        if self.accel == Accel::Kvm {
            // The guest sees the host's CPU model (QEMU docs, "-cpu host").
            add(&["-cpu", "host"]);
        }
        let secure = matches!(self.firmware, Firmware::OvmfSecureBoot { .. });
        match (self.q35, secure) {
            (true, false) => add(&["-machine", "q35"]),
            (true, true) => add(&["-machine", "q35,smm=on"]),
            (false, true) => add(&["-machine", "smm=on"]),
            (false, false) => {}
        }
        add(&[
            "-m",
            &self.memory_mib.to_string(),
            "-smp",
            &self.cpus.to_string(),
        ]);
        add(&["-display", "none", "-monitor", "none", "-no-reboot"]);
        if let (Some(port), Firmware::SeaBios) = (&self.bios_serial_console, &self.firmware) {
            add(&[
                "-fw_cfg",
                &format!("name=etc/sercon-port,file={}", port.display()),
            ]);
        }
        match &self.serial {
            Serial::File(log) => add(&["-serial", &format!("file:{}", log.display())]),
            Serial::Console(log) => add(&[
                "-chardev",
                &format!("stdio,id=s0,signal=off,logfile={}", log.display()),
                "-serial",
                "chardev:s0",
            ]),
        }
        let code = match &self.firmware {
            Firmware::SeaBios => None,
            Firmware::Ovmf { vars } => Some((OVMF_CODE, vars)),
            Firmware::OvmfSecureBoot { vars } => {
                add(&["-global", "driver=cfi.pflash01,property=secure,value=on"]);
                Some((OVMF_CODE_SB, vars))
            }
        };
        if let Some((code, vars)) = code {
            add(&[
                "-drive",
                &format!("if=pflash,format=raw,unit=0,readonly=on,file={code}"),
                "-drive",
                &format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
            ]);
        }
        match &self.network {
            Network::None => add(&["-nic", "none"]),
            Network::DefaultNic => add(&["-nic", "user,restrict=on"]),
            Network::Nics(nics) => {
                for (i, n) in nics.iter().enumerate() {
                    let u = &n.net;
                    let mut nd = format!("user,id=n{i},restrict=on");
                    let mut opt = |k: &str, v: &str| nd.push_str(&format!(",{k}={v}"));
                    if let Some(v) = &u.net {
                        opt("net", v);
                    }
                    if let Some(v) = &u.host {
                        opt("host", v);
                    }
                    for f in &u.hostfwd {
                        opt("hostfwd", f);
                    }
                    for f in &u.guestfwd {
                        opt("guestfwd", f);
                    }
                    if let Some(v) = &u.tftp {
                        opt("tftp", &v.display().to_string());
                    }
                    if let Some(v) = &u.bootfile {
                        opt("bootfile", v);
                    }
                    let mut dev = format!("virtio-net-pci,netdev=n{i}");
                    if let Some(m) = &n.mac {
                        dev.push_str(&format!(",mac={m}"));
                    }
                    if let Some(b) = n.bootindex {
                        dev.push_str(&format!(",bootindex={b}"));
                    }
                    add(&["-netdev", &nd, "-device", &dev]);
                }
            }
        }
        if let Some(k) = &self.kernel {
            add(&["-kernel", &k.kernel.display().to_string()]);
            add(&["-initrd", &k.initrd.display().to_string()]);
            add(&["-append", &k.append]);
        }
        if let Some(cd) = &self.cdrom {
            match cd.bootindex {
                None => add(&["-cdrom", &cd.iso.display().to_string()]),
                Some(b) => add(&[
                    "-drive",
                    &format!(
                        "file={},if=none,id=cd,media=cdrom,readonly=on,format=raw",
                        cd.iso.display()
                    ),
                    "-device",
                    &format!("ide-cd,drive=cd,bootindex={b}"),
                ]),
            }
        }
        for (i, d) in self.disks.iter().enumerate() {
            let mut drive = format!("file={},if=none,id=d{i},format=raw", d.path.display());
            if d.cache_unsafe {
                drive.push_str(",cache=unsafe");
            }
            if d.sparse_report {
                drive.push_str(",detect-zeroes=unmap,discard=unmap,werror=report,rerror=report");
            }
            if d.snapshot {
                drive.push_str(",snapshot=on");
            }
            if d.readonly {
                drive.push_str(",readonly=on");
            }
            let mut dev = if d.nvme {
                format!("nvme,drive=d{i}")
            } else {
                format!("virtio-blk-pci,drive=d{i}")
            };
            if let Some(s) = &d.serial {
                dev.push_str(&format!(",serial={s}"));
            }
            if let Some(b) = d.bootindex {
                dev.push_str(&format!(",bootindex={b}"));
            }
            add(&["-drive", &drive, "-device", &dev]);
        }
        a
    }
}

/// Makes `vars` a fresh copy of the variable store template `template`
/// (the firmware writes it).
pub fn copy_vars(template: &str, vars: &Path) -> Result<()> {
    std::fs::copy(template, vars).map(|_| ()).with_context(|| {
        format!(
            "copying {template} to {} (apt-get install ovmf)",
            vars.display()
        )
    })
}

/// Boot-to-ready of a rescue system: the guest's uptime in the marker,
/// and wall seconds from QEMU's start.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    pub uptime: f64,
    pub wall: f64,
}

/// A running QEMU; killed when dropped.
pub struct Vm {
    child: Child,
    log: PathBuf,
    stderr: Option<PathBuf>,
    start: Instant,
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Vm {
    /// Starts QEMU for `spec` (an old serial log removed first) and logs
    /// its command line.
    pub fn start(spec: &VmSpec) -> Result<Vm> {
        Vm::spawn(spec, None)
    }

    /// [`Vm::start`] with QEMU's own messages (its errors: a disk image
    /// locked by another process, a missing firmware file) in `stderr`
    /// instead of this process's stderr; [`Vm::qemu_error`] reads them.
    pub fn start_logging(spec: &VmSpec, stderr: &Path) -> Result<Vm> {
        Vm::spawn(spec, Some(stderr))
    }

    /// QEMU's last message in the file [`Vm::start_logging`] named.
    pub fn qemu_error(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.stderr.as_ref()?).ok()?;
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        (!lines.is_empty()).then(|| lines.join(" "))
    }

    fn spawn(spec: &VmSpec, stderr: Option<&Path>) -> Result<Vm> {
        let log = spec.serial.log().to_path_buf();
        if let Some(p) = log.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
        }
        let _ = std::fs::remove_file(&log);
        let mut cmd = Command::new(QEMU);
        cmd.args(spec.argv()).stdout(Stdio::null());
        match spec.serial {
            Serial::File(_) => cmd.stdin(Stdio::null()),
            Serial::Console(_) => cmd.stdin(Stdio::piped()),
        };
        if let Some(p) = stderr {
            let f =
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?;
            cmd.stderr(f);
        }
        eprintln!("$ {cmd:?}");
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {QEMU} (apt-get install qemu-system-x86)"))?;
        Ok(Vm {
            child,
            log,
            stderr: stderr.map(Path::to_path_buf),
            start: Instant::now(),
        })
    }

    /// Time since QEMU started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The serial log so far, as it is (escape codes and all).
    pub fn serial(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// QEMU's exit status once it has exited.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        self.child.try_wait().context("waiting for qemu")
    }

    /// Stops QEMU now; returns its status.
    pub fn kill(&mut self) -> Result<ExitStatus> {
        let _ = self.child.kill();
        self.child.wait().context("waiting for qemu")
    }

    /// Types `line` on the serial console (a [`Serial::Console`] VM).
    pub fn type_text(&mut self, text: &str) -> Result<()> {
        let stdin = self.child.stdin.as_mut().context("qemu stdin")?;
        stdin.write_all(text.as_bytes())?;
        stdin.flush()?;
        Ok(())
    }

    /// Waits for the ready marker and then for QEMU to exit (the guest
    /// powers off); returns the wall time to the marker.
    pub fn wait_marker_then_exit(&mut self, timeout: Duration) -> Result<f64> {
        let mut seen: Option<f64> = None;
        loop {
            let text = self.serial();
            if seen.is_none() && text.contains(MARKER) {
                seen = Some(self.elapsed().as_secs_f64());
            }
            if let Some(status) = self.try_wait()? {
                return match seen {
                    Some(t) => Ok(t),
                    None => bail!(
                        "QEMU exited ({status}) without printing `{MARKER}`; serial log {}:\n{}",
                        self.log.display(),
                        tail(&text, 40)
                    ),
                };
            }
            if self.elapsed() > timeout {
                let _ = self.kill();
                bail!(
                    "no `{MARKER}`{} within {}s; serial log {}:\n{}",
                    if seen.is_some() {
                        " then no power-off"
                    } else {
                        ""
                    },
                    timeout.as_secs(),
                    self.log.display(),
                    tail(&text, 40)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits (up to 240 s) for the marker; checks it is printed once.
    pub fn wait_ready(&mut self) -> Result<Ready> {
        loop {
            let text = self.serial();
            if let Some(line) = text.lines().find(|l| l.contains(MARKER)) {
                let wall = self.elapsed().as_secs_f64();
                let uptime = line
                    .rsplit('(')
                    .next()
                    .and_then(|s| s.trim_end_matches([')', 's', '\r']).parse().ok())
                    .unwrap_or(f64::NAN);
                std::thread::sleep(Duration::from_millis(300));
                let n = self.serial().matches(MARKER).count();
                if n != 1 {
                    bail!("the ready marker appeared {n} times on ttyS0, want once");
                }
                return Ok(Ready { uptime, wall });
            }
            if let Some(st) = self.try_wait()? {
                bail!(
                    "QEMU exited ({st}) before `{MARKER}`; serial log {}:\n{}",
                    self.log.display(),
                    tail(&text, 40)
                );
            }
            if self.elapsed() > Duration::from_secs(240) {
                bail!(
                    "no `{MARKER}` within 240s; serial log {}:\n{}",
                    self.log.display(),
                    tail(&text, 40)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `poweroff` over SSH; QEMU must exit within a minute.
    pub fn poweroff(&mut self, s: &Ssh) -> Result<()> {
        // The connection drops as the guest goes down: ignore ssh's status.
        let _ = s.command("poweroff").output();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if let Some(st) = self.try_wait()? {
                if !st.success() {
                    bail!("QEMU exited with {st} after poweroff");
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!(
            "QEMU still running 60s after poweroff; serial log {}:\n{}",
            self.log.display(),
            tail(&self.serial(), 20)
        )
    }
}

/// The last `lines` lines of `text` (a serial log in an error).
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The serial log without terminal escape sequences (firmware and GRUB
/// print them) and carriage returns.
pub fn read_log(log: &Path) -> String {
    let raw = std::fs::read(log).unwrap_or_default();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            0x1b => {
                // ESC [ params final-byte (ECMA-48 CSI), or ESC + one byte.
                i += 1;
                if raw.get(i) == Some(&b'[') {
                    i += 1;
                    while i < raw.len() && !(0x40..=0x7e).contains(&raw[i]) {
                        i += 1;
                    }
                }
                i += 1;
            }
            // CR, and SO/SI (the boot menus' line-drawing character set).
            b'\r' | 0x0e | 0x0f => i += 1,
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A port on 127.0.0.1 nobody listens on now.
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// The guest's sshd behind a `hostfwd` to 127.0.0.1:`port`, as root with
/// the test key.
pub struct Ssh<'a> {
    pub port: u16,
    pub key: &'a Path,
}

impl Ssh<'_> {
    fn command(&self, remote: &str) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-i")
            .arg(self.key)
            .args(["-p", &self.port.to_string()])
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "ConnectTimeout=20",
                "root@127.0.0.1",
                remote,
            ])
            .stdin(Stdio::null());
        c
    }

    /// Runs `remote`; its stdout must contain `want`. Returns stdout.
    pub fn expect(&self, remote: &str, want: &str) -> Result<String> {
        let mut last = String::new();
        // The first connection may race sshd's start-up behind hostfwd.
        for _ in 0..3 {
            eprintln!("$ ssh root@rescue {remote}");
            let out = self.command(remote).output().context("cannot start ssh")?;
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success() && stdout.contains(want) {
                eprint!("{stdout}");
                return Ok(stdout);
            }
            last = format!(
                "status {}, stdout:\n{stdout}\nstderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            if out.status.code() != Some(255) {
                break;
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        bail!("`{remote}` in the rescue system: want `{want}`; {last}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(spec: &VmSpec) -> String {
        spec.argv().join(" ")
    }

    /// SeaBIOS's serial console: COM1's port as two little-endian bytes,
    /// passed only under SeaBIOS (OVMF has no such file).
    #[test]
    fn bios_serial_console_is_a_fw_cfg_file_under_seabios_only() {
        let dir = tempfile::tempdir().unwrap();
        let port = dir.path().join("sercon");
        write_sercon_port(&port).unwrap();
        assert_eq!(std::fs::read(&port).unwrap(), [0xf8, 0x03]);
        let s = VmSpec {
            bios_serial_console: Some(port.clone()),
            ..VmSpec::new(Serial::File("l".into()))
        };
        assert!(
            line(&s).contains(&format!(
                "-fw_cfg name=etc/sercon-port,file={}",
                port.display()
            )),
            "{}",
            line(&s)
        );
        let uefi = VmSpec {
            firmware: Firmware::Ovmf {
                vars: "/v.fd".into(),
            },
            ..s
        };
        assert!(!line(&uefi).contains("sercon"), "{}", line(&uefi));
    }

    #[test]
    fn secure_boot_turns_smm_on_and_the_flash_secure() {
        let s = VmSpec {
            q35: true,
            firmware: Firmware::OvmfSecureBoot {
                vars: "v.fd".into(),
            },
            ..VmSpec::new(Serial::File("l".into()))
        };
        let l = line(&s);
        assert!(l.contains("-machine q35,smm=on "), "{l}");
        assert!(!l.contains("-machine q35 "), "{l}");
        assert!(l.contains("-global driver=cfi.pflash01,property=secure,value=on"));
        assert!(l.contains(&format!(
            "-drive if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE_SB} -drive if=pflash,format=raw,unit=1,file=v.fd"
        )));
    }

    #[test]
    fn nics_are_restricted_user_networks_with_their_options() {
        let s = VmSpec {
            network: Network::Nics(vec![Nic {
                net: UserNet {
                    net: Some("192.0.2.0/24".into()),
                    host: Some("192.0.2.1".into()),
                    hostfwd: vec!["tcp:127.0.0.1:2222-:22".into()],
                    guestfwd: vec!["tcp:10.0.2.100:445-cmd:socat STDIO TCP:127.0.0.1:1".into()],
                    ..UserNet::default()
                },
                mac: Some("02:fc:00:00:00:01".into()),
                bootindex: None,
            }]),
            ..VmSpec::new(Serial::File("l".into()))
        };
        let a = s.argv();
        let i = a.iter().position(|x| x == "-netdev").unwrap();
        assert_eq!(
            a[i + 1],
            "user,id=n0,restrict=on,net=192.0.2.0/24,host=192.0.2.1,hostfwd=tcp:127.0.0.1:2222-:22,guestfwd=tcp:10.0.2.100:445-cmd:socat STDIO TCP:127.0.0.1:1"
        );
        assert_eq!(
            a[i + 2..i + 4],
            ["-device", "virtio-net-pci,netdev=n0,mac=02:fc:00:00:00:01"]
        );
        assert!(!a.contains(&"-nic".to_string()));
        // DefaultNic: the default model, restricted; None: `-nic none`.
        let d = VmSpec {
            network: Network::DefaultNic,
            ..VmSpec::new(Serial::File("l".into()))
        };
        assert!(line(&d).contains("-nic user,restrict=on") && !line(&d).contains("-netdev"));
        assert!(line(&VmSpec::new(Serial::File("l".into()))).contains("-nic none"));
    }

    #[test]
    fn disks_carry_their_options_and_serials_on_the_device() {
        let s = VmSpec {
            disks: vec![
                Disk {
                    bootindex: Some(1),
                    snapshot: true,
                    ..Disk::raw("usb.img", "RESCUEUSB")
                },
                Disk {
                    cache_unsafe: true,
                    readonly: true,
                    ..Disk::raw("d.img", "MKRT0001")
                },
            ],
            cdrom: Some(Cdrom {
                iso: "x.iso".into(),
                bootindex: None,
            }),
            ..VmSpec::new(Serial::File("l".into()))
        };
        let l = line(&s);
        assert!(l.contains("-cdrom x.iso"), "{l}");
        assert!(l.contains("-drive file=usb.img,if=none,id=d0,format=raw,snapshot=on -device virtio-blk-pci,drive=d0,serial=RESCUEUSB,bootindex=1"), "{l}");
        assert!(l.contains("-drive file=d.img,if=none,id=d1,format=raw,cache=unsafe,readonly=on -device virtio-blk-pci,drive=d1,serial=MKRT0001"), "{l}");
    }
}
