//! A real OpenSSH server for tests: `sshd -D` on 127.0.0.1 at a free high
//! port, with a host key and a client key made in a temp dir, root's key
//! authorized (or restricted to a forced command), no passwords. Killed
//! when dropped.
//!
//! Needs root and /usr/sbin/sshd (openssh-server).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestSshd {
    child: Child,
    pub port: u16,
    /// ssh options that reach it with the client key and check its host key.
    pub options: Vec<String>,
}

impl Drop for TestSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("running ssh-keygen");
    assert!(st.success(), "ssh-keygen {} failed", path.display());
}

/// Starts the server with its files in `dir`; returns once it listens.
pub fn start(dir: &Path) -> TestSshd {
    start_with(dir, None)
}

/// As [`start`], with the client key restricted to a forced command
/// (`command="...",restrict` in authorized_keys, sshd(8)), as a backup
/// server puts `mkrescue serve` in front of a host's key.
pub fn start_with(dir: &Path, forced: Option<&str>) -> TestSshd {
    std::fs::create_dir_all("/run/sshd").unwrap();
    let host_key = dir.join("host_key");
    let client_key = dir.join("client_key");
    keygen(&host_key);
    keygen(&client_key);
    let key = std::fs::read_to_string(dir.join("client_key.pub")).unwrap();
    let line = match forced {
        Some(c) => format!("command=\"{}\",restrict {key}", c.replace('"', "\\\"")),
        None => key,
    };
    std::fs::write(dir.join("authorized_keys"), line).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.join("sshd_config");
    std::fs::write(
        &cfg,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
             PidFile {}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             UsePAM no\nPermitRootLogin prohibit-password\nStrictModes no\nLogLevel ERROR\n",
            host_key.display(),
            dir.join("authorized_keys").display(),
            dir.join("sshd.pid").display()
        ),
    )
    .unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .spawn()
        .expect("starting /usr/sbin/sshd");
    let host_pub = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
    let known = dir.join("known_hosts");
    std::fs::write(&known, format!("[127.0.0.1]:{port} {host_pub}")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "sshd did not listen on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    TestSshd {
        child,
        port,
        options: vec![
            "-i".into(),
            client_key.display().to_string(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", known.display()),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
        ],
    }
}
