//! `--output pxe --pxe-upload ssh://...` against a real OpenSSH server the
//! test starts on 127.0.0.1 (free high port, host and client keys made in a
//! temp dir, `sshd -D`), the way tests/it/backup/ssh.rs does for backups: the
//! tree arrives complete (its SHA256SUMS verifies there), a second host's
//! upload keeps the first one's files and does not send a base the server
//! already has (by name), and a server that refuses the key
//! fails with the URL named. And `--iso-backup` with an ssh:// backup
//! target fetches the backup from that server into the ISO.
//!
//! Needs root, /usr/sbin/sshd (openssh-server), ssh, rsync, a kernel with
//! modules in /boot and the PXE boot loader packages (`cargo xtask deps`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::media::ok;
use crate::support::sshd;

fn mkrescue(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .args(["--config-dir", "/nonexistent-mkrescue-test"])
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("running mkrescue")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

use crate::support::sshd::TestSshd as Sshd;

fn start_sshd(dir: &Path) -> Sshd {
    sshd::start(dir)
}

fn config(dir: &Path, name: &str, options: &[String]) -> PathBuf {
    let quoted: Vec<String> = options.iter().map(|o| format!("{o:?}")).collect();
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!("[output]\npxe_ssh_options = [{}]\n", quoted.join(", ")),
    )
    .unwrap();
    p
}

/// Relative paths of the files below `root`, sorted.
fn files(root: &Path) -> Vec<String> {
    fn walk(base: &Path, p: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(p).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut v = Vec::new();
    walk(root, root, &mut v);
    v.sort();
    v
}

#[test]
fn pxe_tree_is_pushed_with_rsync_over_ssh() {
    let tmp = tempfile::tempdir().unwrap();
    let sshd = start_sshd(tmp.path());
    let cfg = config(tmp.path(), "mkrescue.toml", &sshd.options);
    let local = tmp.path().join("tftp");
    // A directory that does not exist yet, with a parent that does not
    // either: --mkpath makes both.
    let server = tmp.path().join("server/srv/tftp");
    let url = format!("ssh://root@127.0.0.1:{}{}", sshd.port, server.display());
    // This host's PXE tree built into `local` and uploaded to `url`.
    let upload = |url: &str, json: bool| {
        let mut args = vec![
            "--config",
            s(&cfg),
            "--modules",
            "host",
            "--output",
            "pxe",
            "--pxe-root",
            s(&local),
            "--pxe-upload",
            url,
            "--out",
        ];
        let out = tmp.path().join("out");
        args.push(s(&out));
        if json {
            args.push("--json");
        }
        ok(mkrescue(&args))
    };
    let o = upload(&url, false);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("PXE tree uploaded to ssh://root@127.0.0.1:"),
        "{err}"
    );
    let here = files(&local);
    assert!(
        here.iter().any(|f| f.starts_with("pxelinux.cfg/01-")),
        "{here:?}"
    );
    assert_eq!(files(&server), here, "the server has what was written here");
    // The copy is whole: its own SHA256SUMS verifies on the server.
    ok(Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .arg("verify")
        .arg(&server)
        .output()
        .unwrap());

    // Another host's file on the server survives the next upload (no
    // --delete: the tree serves a fleet).
    let other = server.join("pxelinux.cfg/01-02-00-00-00-00-99");
    std::fs::write(&other, "other host\n").unwrap();
    // The base is on the server now: the next upload leaves it out by its
    // name (content-addressed). A marker under that name shows whether
    // rsync touched it (it would replace a file of another size).
    let base_rel = here
        .iter()
        .find(|f| f.starts_with("mkrescue/base/"))
        .unwrap()
        .clone();
    std::fs::write(server.join(&base_rel), "marker\n").unwrap();
    let o = upload(&url, true);
    assert_eq!(std::fs::read_to_string(&other).unwrap(), "other host\n");
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let up = &j["media"]["pxe"]["upload"];
    assert_eq!(up["base_on_server"], true, "{j}");
    assert!(
        up["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == base_rel.as_str()),
        "{j}"
    );
    assert_eq!(
        std::fs::read_to_string(server.join(&base_rel)).unwrap(),
        "marker\n",
        "the base the server had was not sent again"
    );
    // The host's own layer did travel (same bytes as here).
    let host_rel = here
        .iter()
        .find(|f| f.ends_with("/host.img"))
        .unwrap()
        .clone();
    assert_eq!(
        std::fs::read(server.join(&host_rel)).unwrap(),
        std::fs::read(local.join(&host_rel)).unwrap()
    );
    // A new server (an empty directory) gets the base: nothing to skip.
    let fresh = tmp.path().join("server2/srv/tftp");
    let url2 = format!("ssh://root@127.0.0.1:{}{}", sshd.port, fresh.display());
    let o = upload(&url2, true);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["media"]["pxe"]["upload"]["base_on_server"], false, "{j}");
    assert_eq!(
        std::fs::read(fresh.join(&base_rel)).unwrap(),
        std::fs::read(local.join(&base_rel)).unwrap()
    );

    // A key the server does not accept: the build fails naming the URL.
    let stranger = tmp.path().join("stranger");
    sshd::keygen(&stranger);
    let mut opts = sshd.options.clone();
    opts[1] = stranger.display().to_string();
    let bad = config(tmp.path(), "bad.toml", &opts);
    let o = mkrescue(&[
        "--config",
        s(&bad),
        "--modules",
        "host",
        "--output",
        "pxe",
        "--pxe-root",
        s(&local),
        "--pxe-upload",
        &url,
        "--out",
        s(&tmp.path().join("out")),
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&url) && err.contains("rsync"), "{err}");
}

#[test]
fn pxe_upload_url_and_output_are_checked_first() {
    let tmp = tempfile::tempdir().unwrap();
    let o = mkrescue(&[
        "--output",
        "pxe",
        "--pxe-root",
        s(&tmp.path().join("t")),
        "--pxe-upload",
        "ftp://server/tftp",
        "--out",
        s(&tmp.path().join("out")),
    ]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("ssh://[USER@]HOST"));
    assert!(!tmp.path().join("out/initrd.img").exists());
    // Dry run: says where it would go, writes nothing.
    let o = ok(mkrescue(&[
        "--output",
        "pxe",
        "--pxe-root",
        s(&tmp.path().join("t")),
        "--pxe-upload",
        "ssh://root@pxe.example/srv/tftp",
        "--dry-run",
        "--out",
        s(&tmp.path().join("out")),
    ]));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("would then upload it to ssh://root@pxe.example/srv/tftp"),
        "{stdout}"
    );
    assert!(!tmp.path().join("t").exists());
    assert!(!tmp.path().join("out").exists());

    // The flag with another output is a mistake; the configuration key is
    // for pxe builds and does not stop the others.
    let o = mkrescue(&[
        "--output",
        "iso",
        "--pxe-upload",
        "ssh://root@pxe.example/srv/tftp",
        "--out",
        s(&tmp.path().join("out")),
    ]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let cfg = tmp.path().join("site.toml");
    std::fs::write(
        &cfg,
        "[output]\npxe_upload = \"ssh://root@pxe.example/srv/tftp\"\n",
    )
    .unwrap();
    let o = ok(mkrescue(&[
        "--config",
        s(&cfg),
        "--output",
        "iso",
        "--dry-run",
        "--out",
        s(&tmp.path().join("out")),
    ]));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("dry run of --output iso"), "{stdout}");
    assert!(!stdout.contains("upload"), "{stdout}");
}

#[test]
fn iso_backup_is_fetched_from_an_ssh_target() {
    let tmp = tempfile::tempdir().unwrap();
    let sshd = start_sshd(tmp.path());
    let remote = tmp.path().join("server/backups");
    let url = format!("ssh://root@127.0.0.1:{}{}", sshd.port, remote.display());
    let quoted: Vec<String> = sshd.options.iter().map(|o| format!("{o:?}")).collect();
    let cfg = tmp.path().join("backup.toml");
    std::fs::write(
        &cfg,
        format!(
            "[backup]\ntarget = {url:?}\nssh_options = [{}]\n",
            quoted.join(", ")
        ),
    )
    .unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("srv")).unwrap();
    std::fs::write(src.join("srv/data"), "over ssh\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .args(["backup", "--root"])
        .arg(&src)
        .args(["--json", "--config"])
        .arg(&cfg)
        .args(["--config-dir", "/nonexistent-mkrescue-test"])
        .output()
        .unwrap();
    let o = ok(o);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let name = j["name"].as_str().unwrap().to_string();

    let out = tmp.path().join("out");
    ok(mkrescue(&[
        "--config",
        s(&cfg),
        "--modules",
        "host",
        "--output",
        "iso",
        "--iso-backup",
        "--out",
        s(&out),
    ]));
    let listing = Command::new("xorriso")
        .arg("-indev")
        .arg(out.join("mkrescue.iso"))
        .args(["-lsl", "/backup"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&listing.stdout),
        String::from_utf8_lossy(&listing.stderr)
    );
    let archive_len = std::fs::metadata(remote.join(format!("{name}.tar.zst")))
        .unwrap()
        .len();
    let line = text
        .lines()
        .find(|l| l.contains(&format!("{name}.tar.zst")))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains(&archive_len.to_string()), "{line}");
    assert!(text.contains(&format!("{name}.manifest.zst")), "{text}");
    // The fetched copies are gone once the ISO is written.
    assert!(!out.join(".iso-backup").exists());
}
