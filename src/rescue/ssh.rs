//! Remote access to the rescue system: sshd with root's public keys only.
//!
//! At build time this puts `/root/.ssh/authorized_keys` (from the host's
//! file and the configured keys) and a generated `/etc/ssh/sshd_config`
//! into the image: `PasswordAuthentication no`, `PermitRootLogin
//! prohibit-password` (sshd_config(5)), no PAM (no PAM modules in the
//! image). Host keys are never copied: `src/init/sshd.rs` generates them at
//! boot, creates the privilege separation directory `/run/sshd` and starts
//! `sshd -D`. Hands on manifest entries and the number of keys.

use std::path::Path;

use anyhow::Result;

use crate::config::Ssh;
use crate::error::{Code, fail};
use crate::image::Manifest;

/// The sshd_config of the rescue system: `boot/sshd_config`, plus the sftp
/// subsystem when the host has a server for it.
pub fn sshd_config(sftp_server: Option<&str>) -> String {
    let mut s = String::from(include_str!("../../boot/sshd_config"));
    if let Some(p) = sftp_server {
        s.push_str(&format!("Subsystem sftp {p}\n"));
    }
    s
}

/// Whether a line of an authorized_keys file carries a key
/// (sshd(8) AUTHORIZED_KEYS FILE FORMAT: optional options, then the key
/// type, base64 key, comment). Blank lines and comments do not.
fn is_key_line(l: &str) -> bool {
    let t = l.trim();
    !t.is_empty()
        && !t.starts_with('#')
        && t.split_whitespace()
            .any(|w| w.starts_with("ssh-") || w.starts_with("ecdsa-sha2-") || w.starts_with("sk-"))
}

/// The authorized_keys text for root: the configured files (the default
/// `/root/.ssh/authorized_keys` may be missing, a file named in the
/// configuration may not) and the configured key lines.
pub fn authorized_keys(root: &Path, cfg: &Ssh) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    let default = Ssh::default().authorized_keys_files;
    for f in &cfg.authorized_keys_files {
        let host = root.join(f.strip_prefix("/").unwrap_or(f));
        match std::fs::read_to_string(&host) {
            Ok(t) => keys.extend(t.lines().filter(|l| is_key_line(l)).map(str::to_string)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && default.contains(f) => {}
            Err(e) => {
                return Err(fail(
                    Code::Config,
                    format!(
                        "ssh.authorized_keys_files: cannot read {}: {e}; fix the path or remove it",
                        f.display()
                    ),
                ));
            }
        }
    }
    for (i, k) in cfg.authorized_keys.iter().enumerate() {
        if !is_key_line(k) || k.contains('\n') {
            return Err(fail(
                Code::Config,
                format!(
                    "ssh.authorized_keys[{i}]: not a public key line (want `ssh-ed25519 AAAA... comment`): {k:?}"
                ),
            ));
        }
        keys.push(k.trim().to_string());
    }
    keys.dedup();
    Ok(keys)
}

/// Adds root's keys and the sshd configuration when sshd is in the image.
/// Returns how many keys may log in (`None`: no sshd).
pub fn plan(m: &mut Manifest, root: &Path, cfg: &Ssh) -> Result<Option<usize>> {
    if !cfg.enabled || m.get("/usr/sbin/sshd").is_none() {
        return Ok(None);
    }
    let keys = authorized_keys(root, cfg)?;
    if keys.is_empty() {
        log::warn!(
            "sshd goes into the rescue system but no key may log in: add keys to /root/.ssh/authorized_keys or [ssh] authorized_keys"
        );
    }
    const ORIGIN: &str = "ssh";
    m.add_dir("/root/.ssh", 0o700, ORIGIN)?;
    let mut text = keys.join("\n");
    text.push('\n');
    m.add_bytes("/root/.ssh/authorized_keys", text, 0o600, ORIGIN)?;
    let sftp = "/usr/lib/openssh/sftp-server";
    let sftp = m.get(sftp).is_some().then_some(sftp);
    m.add_dir("/etc/ssh", 0o755, ORIGIN)?;
    m.add_bytes("/etc/ssh/sshd_config", sshd_config(sftp), 0o644, ORIGIN)?;
    if root.join("etc/ssh/moduli").is_file() {
        // Diffie-Hellman group exchange primes: public data that
        // openssh-server ships (550 KB), the same on every host of the
        // release, so the PXE base carries it, not each host's layer.
        let was = m.set_layer(crate::image::Layer::Base);
        m.add_host_path("/etc/ssh/moduli", ORIGIN)?;
        m.set_layer(was);
    }
    Ok(Some(keys.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_keys_only() {
        let c = sshd_config(None);
        assert!(c.contains("\nPasswordAuthentication no\n"));
        assert!(c.contains("\nPermitRootLogin prohibit-password\n"));
        assert!(!c.contains("Subsystem"));
    }

    #[test]
    fn keys_from_file_and_config() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("root/.ssh")).unwrap();
        std::fs::write(
            d.path().join("root/.ssh/authorized_keys"),
            "# admin\n\nfrom=\"10.0.0.0/8\" ssh-ed25519 AAAAC3 admin@x\n",
        )
        .unwrap();
        let cfg = Ssh {
            authorized_keys: vec!["ssh-rsa AAAAB3 ops".into()],
            ..Ssh::default()
        };
        let k = authorized_keys(d.path(), &cfg).unwrap();
        assert_eq!(
            k,
            [
                "from=\"10.0.0.0/8\" ssh-ed25519 AAAAC3 admin@x",
                "ssh-rsa AAAAB3 ops"
            ]
        );
        let bad = Ssh {
            authorized_keys: vec!["hello".into()],
            ..Ssh::default()
        };
        let e = format!("{:#}", authorized_keys(d.path(), &bad).unwrap_err());
        assert!(e.contains("ssh.authorized_keys[0]"), "{e}");
    }
}
