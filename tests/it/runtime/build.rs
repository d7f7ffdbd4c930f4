//! What the build puts into the rescue image for its runtime, and what it
//! refuses: the secret scan (private keys, /etc/shadow), root's SSH keys
//! and sshd_config, the captured network configuration.
//!
//! Builds real images of this host (`--config FILE`, a temp out dir), like
//! tests/it/rescue/image.rs; needs a kernel with modules in /boot (CI has it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn mkrescue(config: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .args(["--config-dir", "/nonexistent-mkrescue-test", "--config"])
        .arg(config)
        .args(["--output", "initramfs", "--compress", "none", "--out"])
        .arg(out)
        .output()
        .unwrap()
}

/// Builds with `toml`; panics unless it succeeds.
fn build(dir: &Path, toml: &str) -> PathBuf {
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, toml).unwrap();
    let out = dir.join("out");
    let o = mkrescue(&cfg, &out);
    assert!(
        o.status.success(),
        "build failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// One file of the (uncompressed) image, read with GNU cpio.
fn image_file(out: &Path, path: &str) -> Option<String> {
    let o = Command::new("cpio")
        .args(["-i", "--quiet", "--to-stdout", path.trim_start_matches('/')])
        .stdin(std::fs::File::open(out.join("initrd.img")).unwrap())
        .output()
        .expect("GNU cpio (apt-get install cpio)");
    (!o.stdout.is_empty()).then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

fn ssh_keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen (apt-get install openssh-client)");
    assert!(st.success());
}

/// mkrescue with `[files] include` of `file`, into `dir`/out.
fn build_including(dir: &Path, file: &Path) -> (Output, PathBuf) {
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!("[files]\ninclude = [{:?}]\n", file.display().to_string()),
    )
    .unwrap();
    let out = dir.join("out");
    (mkrescue(&cfg, &out), out)
}

#[test]
fn secret_scan_refuses_a_private_key_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("backup_key");
    ssh_keygen(&key);
    let (o, out) = build_including(d.path(), &key);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("mkrescue: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains(&format!("{} holds a private key", key.display())),
        "{err}"
    );
    assert!(lines[0].contains("[secrets] allow"), "{err}");
    assert!(!out.join("initrd.img").exists(), "an image was written");
}

/// Issue 21: the age identity `mkrescue backup` encrypts with (a real one,
/// made by the age crate as age-keygen does) is refused by name too.
#[test]
fn secret_scan_refuses_an_age_identity() {
    use age::secrecy::ExposeSecret;
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("backup.agekey");
    let id = age::x25519::Identity::generate();
    std::fs::write(
        &key,
        format!(
            "# public key: {}\n{}\n",
            id.to_public(),
            id.to_string().expose_secret()
        ),
    )
    .unwrap();
    let (o, out) = build_including(d.path(), &key);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(
        err.contains(&format!("{} holds an age identity", key.display())),
        "{err}"
    );
    assert!(!out.join("initrd.img").exists(), "an image was written");
}

#[test]
fn secret_scan_refuses_shadow_and_denied_patterns_unless_allowed() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("c.toml");
    let out = d.path().join("out");
    std::fs::write(&cfg, "[files]\ninclude = [\"/etc/shadow\"]\n").unwrap();
    let o = mkrescue(&cfg, &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(
        err.contains("/etc/shadow is a password or host key file"),
        "{err}"
    );

    std::fs::write(
        &cfg,
        "[files]\ninclude = [\"/etc/hostname\"]\n[secrets]\ndeny = [\"/etc/host*\"]\nallow = [\"/etc/hosts\", \"/etc/host.conf\"]\n",
    )
    .unwrap();
    let o = mkrescue(&cfg, &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(
        err.contains("/etc/hostname matches [secrets] deny"),
        "{err}"
    );

    // Explicitly allowed: the key goes in.
    let key = d.path().join("k");
    ssh_keygen(&key);
    let out = build(
        d.path(),
        &format!(
            "[files]\ninclude = [{k:?}]\n[secrets]\nallow = [{k:?}]\n",
            k = key.display().to_string()
        ),
    );
    assert!(
        image_file(&out, &key.display().to_string())
            .is_some_and(|t| t.contains("OPENSSH PRIVATE KEY"))
    );
}

#[test]
fn ssh_keys_only_and_network_from_captured_output() {
    let d = tempfile::tempdir().unwrap();
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/network");
    let toml = format!(
        "[ssh]\nauthorized_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE admin@test\"]\n\
         [network]\nip_addr_json = {:?}\nip4_route_json = {:?}\n",
        fx.join("host-ip-addr.json"),
        fx.join("host-ip4-route.json"),
    );
    let out = build(d.path(), &toml);
    if Path::new("/usr/sbin/sshd").exists() {
        let keys = image_file(&out, "/root/.ssh/authorized_keys").unwrap();
        assert!(
            keys.lines()
                .any(|l| l == "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE admin@test")
        );
        let conf = image_file(&out, "/etc/ssh/sshd_config").unwrap();
        assert!(conf.lines().any(|l| l == "PasswordAuthentication no"));
        assert!(
            conf.lines()
                .any(|l| l == "PermitRootLogin prohibit-password")
        );
        // Host keys are made at boot, never copied.
        assert!(image_file(&out, "/etc/ssh/ssh_host_ed25519_key").is_none());
        assert!(image_file(&out, "/etc/ssh/ssh_host_ed25519_key.pub").is_none());
    }
    let net: serde_json::Value =
        serde_json::from_str(&image_file(&out, "/etc/mkrescue/network.json").unwrap()).unwrap();
    assert_eq!(net["mode"], "host");
    assert_eq!(net["interfaces"][0]["mac"], "02:fc:00:00:00:01");
    assert_eq!(net["interfaces"][0]["addresses"][0], "192.0.2.2/24");
    assert_eq!(net["routes"][0]["gateway"], "192.0.2.1");
}

#[test]
fn network_mode_dhcp_carries_no_static_address() {
    let d = tempfile::tempdir().unwrap();
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/network");
    let out = build(
        d.path(),
        &format!(
            "[network]\nmode = \"dhcp\"\nip_addr_json = {:?}\n",
            fx.join("host-ip-addr.json")
        ),
    );
    let net = image_file(&out, "/etc/mkrescue/network.json").unwrap();
    assert!(!net.contains("192.0.2.2"), "{net}");
    assert!(net.contains("\"mode\": \"dhcp\""), "{net}");
}
