//! `cargo xtask qemu runtime --only shares`: the `nfs://` and `cifs://`
//! archive targets against real servers. This machine's kernel has neither
//! an NFS nor a CIFS client, so the clients are the rescue system's (the
//! Debian kernel's nfs and cifs modules, mount.nfs, mount.cifs) and the
//! servers run here in user space, bound to 127.0.0.1 only:
//!
//! - NFS: nfs-ganesha (NFSv4 over TCP, VFS backend, a fresh export
//!   directory, no root squash, graceless so the first open is not refused
//!   for 90 s of grace period);
//! - SMB: Samba's smbd (SMB3 only, one share, the user `root` with a
//!   password made up per run in a passdb of its own).
//!
//! The guest reaches them through QEMU's `guestfwd` (10.0.2.100:2049 and
//! :445, each connection handed to `socat` to the server's port on
//! 127.0.0.1): user networking stays `restrict=on`, nothing leaves the
//! machine.
//!
//! In the rescue system (built with the nfs:// target recorded, so it
//! carries mount.nfs and the nfs modules, plus mount.cifs and cifs as
//! configured tools and modules), over SSH: a small tree with a hard link,
//! a symlink, modes and a non-ASCII name is backed up to each share,
//! `backup verify` re-reads it there, and `restore` brings it back, for
//! NFS without `--from` (from the location recorded in the image); then
//! the trees must be equal. On this side, the server's directory must hold
//! the archive and manifest, and zstd must read the archive.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::rescue::{self, build, nic, ssh_net};
use mkrescue::vm::{Ready, Ssh, UserNet, Vm, free_port};

/// Where the guest sees the servers (inside QEMU's 10.0.2.0/24).
const SERVER: &str = "10.0.2.100";

/// A server process, killed when dropped.
struct Server {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Waits until something listens on 127.0.0.1:`port`; the server must
    /// not have exited.
    fn wait_listening(&mut self, port: u16) -> Result<()> {
        let start = Instant::now();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(());
            }
            if let Some(st) = self.child.try_wait()? {
                bail!(
                    "{} exited ({st}) before listening on 127.0.0.1:{port}; its log {}:\n{}",
                    self.name,
                    self.log.display(),
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if start.elapsed() > Duration::from_secs(30) {
                bail!(
                    "{} not listening on 127.0.0.1:{port} after 30s; its log {}",
                    self.name,
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf) -> Result<Server> {
    let out = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("cannot start {name} (cargo xtask deps installs it)"))?;
    Ok(Server { name, child, log })
}

/// nfs-ganesha exporting `export` as `/export`, NFSv4 on 127.0.0.1:`port`.
fn ganesha(dir: &Path, export: &Path, port: u16) -> Result<Server> {
    let recovery = dir.join("ganesha-recovery");
    std::fs::create_dir_all(&recovery)?;
    let conf = dir.join("ganesha.conf");
    std::fs::write(
        &conf,
        format!(
            "NFS_CORE_PARAM {{\n  NFS_Port = {port};\n  Bind_addr = 127.0.0.1;\n  Protocols = 4;\n  Enable_NLM = false;\n  Enable_RQUOTA = false;\n}}\n\
             NFSv4 {{\n  Graceless = true;\n  RecoveryBackend = fs;\n  RecoveryRoot = {};\n  Allow_Numeric_Owners = true;\n  Only_Numeric_Owners = true;\n}}\n\
             EXPORT {{\n  Export_Id = 1;\n  Path = {};\n  Pseudo = /export;\n  Access_Type = RW;\n  Squash = No_Root_Squash;\n  SecType = sys;\n  Protocols = 4;\n  Transports = TCP;\n  FSAL {{ Name = VFS; }}\n}}\n",
            recovery.display(),
            export.display()
        ),
    )?;
    let log = dir.join("ganesha.log");
    let mut s = spawn(
        "ganesha.nfsd",
        Command::new("ganesha.nfsd")
            .arg("-F")
            .arg("-f")
            .arg(&conf)
            .arg("-L")
            .arg(&log)
            .arg("-p")
            .arg(dir.join("ganesha.pid")),
        dir.join("ganesha.out"),
    )?;
    s.log = log;
    s.wait_listening(port)?;
    Ok(s)
}

/// smbd serving `share` as `Backups` on 127.0.0.1:`port`, SMB3 only, to
/// the user root with `password`.
fn smbd(dir: &Path, share: &Path, port: u16, password: &str) -> Result<Server> {
    let state = dir.join("samba");
    let _ = std::fs::remove_dir_all(&state);
    for d in ["private", "lock", "state", "cache", "pid", "ncalrpc"] {
        std::fs::create_dir_all(state.join(d))?;
    }
    let s = state.display();
    let conf = dir.join("smb.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\n  smb ports = {port}\n  interfaces = lo\n  bind interfaces only = yes\n  \
             private dir = {s}/private\n  lock directory = {s}/lock\n  state directory = {s}/state\n  \
             cache directory = {s}/cache\n  pid directory = {s}/pid\n  ncalrpc dir = {s}/ncalrpc\n  \
             log file = {s}/smbd.log\n  \
             passdb backend = tdbsam:{s}/private/passdb.tdb\n  server role = standalone server\n  \
             disable netbios = yes\n  load printers = no\n  printing = bsd\n  printcap name = /dev/null\n  \
             server min protocol = SMB3\n\
             [Backups]\n  path = {}\n  read only = no\n  valid users = root\n  force user = root\n",
            share.display()
        ),
    )?;
    // The password goes to smbpasswd on stdin (twice: new and again).
    let mut p = Command::new("smbpasswd")
        .arg("-c")
        .arg(&conf)
        .args(["-s", "-a", "root"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start smbpasswd (cargo xtask deps installs samba)")?;
    {
        use std::io::Write;
        let mut stdin = p.stdin.take().context("smbpasswd stdin")?;
        writeln!(stdin, "{password}\n{password}")?;
    }
    let out = p.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "smbpasswd -a root failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut s = spawn(
        "smbd",
        Command::new("smbd")
            .args(["--foreground", "--no-process-group", "--debug-stdout"])
            .arg(format!("--configfile={}", conf.display())),
        dir.join("smbd.out"),
    )?;
    s.wait_listening(port)?;
    Ok(s)
}

/// The tree backed up in the guest, and the commands that compare two
/// trees there (names, types, modes, link counts, sizes, content).
const MAKE_TREE: &str = "rm -rf /tmp/src && mkdir -p /tmp/src/etc /tmp/src/srv/data && cd /tmp/src \
    && echo share-test > etc/hostname && printf 'caf\\303\\251\\n' > \"srv/$(printf 'caf\\303\\251').txt\" \
    && head -c 3000000 /dev/urandom > srv/data/blob && ln srv/data/blob srv/data/blob-link \
    && ln -s ../etc/hostname srv/host-link && chmod 0640 etc/hostname && chmod 4755 srv/data/blob \
    && echo tree-made";

fn facts_cmd(dir: &str) -> String {
    format!(
        "cd {dir} && find . -mindepth 1 -printf '%p %y %m %n %s %l\\n' | sort && find . -type f -print0 | sort -z | xargs -0 sha256sum"
    )
}

/// Runs the scenario (the image is built here); returns boot-to-ready.
pub fn run(bin: &Path, dir: &Path, disk: &Path, key: &Path, ssh_toml: &str) -> Result<Ready> {
    let abs = std::path::absolute(dir).context("resolving target/qemu/runtime")?;
    let work = abs.join("shares");
    let _ = std::fs::remove_dir_all(&work);
    let export = work.join("nfs-export");
    let share = work.join("smb-share");
    // nfs:// mounts the path whole: the directory must exist on the server.
    std::fs::create_dir_all(export.join("hosts"))?;
    std::fs::create_dir_all(&share)?;
    let nfs_port = free_port()?;
    let mut smb_port = free_port()?;
    // Two servers on one port: the second would fail to listen while the
    // first answers for it.
    while smb_port == nfs_port {
        smb_port = free_port()?;
    }
    // A password made up for this run (the server only listens on
    // 127.0.0.1; still, no fixed secret in the repository).
    let mut seed = [0u8; 8];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut seed)?;
    let password = format!("pw-{:016x}", u64::from_le_bytes(seed));
    let _nfs = ganesha(&work, &export, nfs_port)?;
    let _smb = smbd(&work, &share, smb_port, &password)?;

    let nfs_url = format!("nfs://{SERVER}/export/hosts");
    let cifs_url = format!("cifs://root@{SERVER}/Backups/hosts/web1");
    // The nfs:// target is recorded (restore finds it by itself); cifs
    // needs its helper and module named.
    let out = build(
        bin,
        dir,
        "shares",
        &format!(
            "{ssh_toml}[backup]\ntarget = {nfs_url:?}\n[tools]\noptional = [\"mount.cifs\"]\n[modules]\nextra = [\"cifs\"]\n"
        ),
    )?;
    let port = free_port()?;
    let fwd = |guest: u16, host: u16| {
        format!("tcp:{SERVER}:{guest}-cmd:socat STDIO TCP:127.0.0.1:{host}")
    };
    let net = UserNet {
        guestfwd: vec![fwd(2049, nfs_port), fwd(445, smb_port)],
        ..ssh_net(port)
    };
    let mut vm = Vm::start(&rescue::spec(
        &out,
        &dir.join("shares.log"),
        disk,
        vec![nic("52:54:00:6d:6b:01", net)],
        "",
        None,
    ))?;
    let ready = vm.wait_ready()?;
    let s = Ssh { port, key };
    s.expect(MAKE_TREE, "tree-made")?;
    let want = s.expect(&(facts_cmd("/tmp/src") + "; echo facts-end"), "facts-end")?;

    // NFS: backup, verify, restore from the recorded location.
    s.expect(
        &format!("mkrescue backup --root /tmp/src --target {nfs_url} && echo nfs-backup-ok"),
        "nfs-backup-ok",
    )?;
    s.expect(
        &format!("mkrescue backup verify --target {nfs_url} && echo nfs-verify-ok"),
        "nfs-verify-ok",
    )?;
    s.expect(
        "rm -rf /tmp/r-nfs && mkdir /tmp/r-nfs && mkrescue restore --to /tmp/r-nfs && echo nfs-restore-ok",
        "nfs-restore-ok",
    )?;
    let got = s.expect(&(facts_cmd("/tmp/r-nfs") + "; echo facts-end"), "facts-end")?;
    if got != want {
        bail!("the tree restored from nfs:// differs:\nwant:\n{want}\ngot:\n{got}");
    }

    // CIFS: the password only in a credentials file (mode 0600).
    s.expect(
        &format!(
            "umask 077 && printf 'username=root\\npassword={password}\\n' > /root/smb.cred \
             && printf '[backup]\\ncifs_credentials = \"/root/smb.cred\"\\n' > /root/cifs.toml && echo cred-ok"
        ),
        "cred-ok",
    )?;
    s.expect(
        &format!(
            "mkrescue backup --config /root/cifs.toml --root /tmp/src --target {cifs_url} && echo cifs-backup-ok"
        ),
        "cifs-backup-ok",
    )?;
    s.expect(
        &format!(
            "mkrescue backup verify --config /root/cifs.toml --target {cifs_url} && echo cifs-verify-ok"
        ),
        "cifs-verify-ok",
    )?;
    s.expect(
        &format!(
            "rm -rf /tmp/r-cifs && mkdir /tmp/r-cifs && mkrescue restore --config /root/cifs.toml --from {cifs_url} --to /tmp/r-cifs && echo cifs-restore-ok"
        ),
        "cifs-restore-ok",
    )?;
    let got = s.expect(
        &(facts_cmd("/tmp/r-cifs") + "; echo facts-end"),
        "facts-end",
    )?;
    if got != want {
        bail!("the tree restored from cifs:// differs:\nwant:\n{want}\ngot:\n{got}");
    }
    // Nothing stays mounted.
    s.expect(
        "grep -c -E ' (nfs4?|cifs) ' /proc/mounts; echo mounts-end",
        "0\nmounts-end",
    )?;
    vm.poweroff(&s)?;

    // The bytes are on the servers' disks, in the right places.
    for (what, d) in [
        ("NFS export", export.join("hosts")),
        ("SMB share", share.join("hosts/web1")),
    ] {
        let names: Vec<String> = std::fs::read_dir(&d)
            .with_context(|| format!("{what}: reading {}", d.display()))?
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        let archive = names
            .iter()
            .find(|n| n.ends_with(".tar.zst"))
            .with_context(|| format!("{what}: no archive in {} ({names:?})", d.display()))?;
        if !names.iter().any(|n| n.ends_with(".manifest.zst")) {
            bail!("{what}: no manifest in {} ({names:?})", d.display());
        }
        crate::util::run(
            "zstd",
            &[
                "-t",
                "-q",
                d.join(archive).to_str().context("non-UTF-8 path")?,
            ],
        )?;
        eprintln!("{what}: {} holds {names:?}", d.display());
    }
    Ok(ready)
}
