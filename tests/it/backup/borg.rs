//! The `borg` method against real local repositories made by Debian's
//! borgbackup: an encrypted one (passphrase from `borg_passcommand`) and an
//! append-only one, which mkrescue must work with (it never deletes).
//! Restored trees must be identical to the source.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::support::backup::*;

fn mk(base: &Path, args: &[&OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .args(args)
        .args(["--config-dir", "/nonexistent-mkrescue-test"])
        // borg's cache and key files stay in the test's directory.
        .env("BORG_BASE_DIR", base)
        .output()
        .unwrap()
}

fn borg(base: &Path, pass: Option<&str>, args: &[&OsStr]) -> String {
    let mut c = Command::new("borg");
    c.args(args).env("BORG_BASE_DIR", base);
    if let Some(p) = pass {
        c.env("BORG_PASSPHRASE", p);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "borg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tree(src: &Path) {
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::create_dir_all(src.join("srv")).unwrap();
    std::fs::create_dir_all(src.join("proc/1")).unwrap();
    std::fs::write(src.join("proc/1/status"), "not backed up").unwrap();
    std::fs::write(src.join("etc/hostname"), "borg-test\n").unwrap();
    std::fs::write(src.join("srv/data"), noise(3, 3 << 20)).unwrap();
    std::fs::write(src.join(OsStr::from_bytes(b"srv/n\xe4me")), "latin-1").unwrap();
    std::fs::hard_link(src.join("srv/data"), src.join("srv/hard")).unwrap();
    std::os::unix::fs::symlink("data", src.join("srv/sym")).unwrap();
    std::os::unix::fs::lchown(src.join("srv/data"), Some(3456), Some(3456)).unwrap();
    mkrescue::sys::fs::set_xattr(&src.join("etc/hostname"), os("user.k"), b"v").unwrap();
    for d in ["proc", "srv", "etc", "."] {
        mkrescue::sys::fs::set_times(&src.join(d), (1_650_000_000, 5), (1_650_000_000, 5)).unwrap();
    }
}

#[test]
fn borg_encrypted_and_append_only() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("borg-base");
    let src = tmp.path().join("src");
    tree(&src);

    // Encrypted repository, passphrase from a command.
    let repo = tmp.path().join("repo");
    borg(
        &base,
        Some("s3cret"),
        &[os("init"), os("--encryption=repokey"), repo.as_os_str()],
    );
    let cfg = tmp.path().join("borg.toml");
    std::fs::write(
        &cfg,
        format!(
            "[backup]\nmethod = \"borg\"\nborg_repo = \"{}\"\nborg_passcommand = \"echo s3cret\"\n",
            repo.display()
        ),
    )
    .unwrap();
    let out = mk(
        &base,
        &[
            os("backup"),
            os("--root"),
            src.as_os_str(),
            os("--json"),
            os("--config"),
            cfg.as_os_str(),
        ],
    );
    let rep: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    let name = rep["name"].as_str().unwrap().to_string();
    assert_eq!(rep["borg"]["archive"]["name"], name.as_str());
    let listed = ok(&mk(
        &base,
        &[
            os("backup"),
            os("list"),
            os("--json"),
            os("--config"),
            cfg.as_os_str(),
        ],
    ));
    assert!(listed.contains(&name), "{listed}");
    ok(&mk(
        &base,
        &[os("backup"), os("verify"), os("--config"), cfg.as_os_str()],
    ));
    let dst = tmp.path().join("restored");
    std::fs::create_dir(&dst).unwrap();
    ok(&mk(
        &base,
        &[
            os("restore"),
            os("--to"),
            dst.as_os_str(),
            os("--config"),
            cfg.as_os_str(),
        ],
    ));
    // /proc's contents are left out; the directory is kept.
    std::fs::remove_file(src.join("proc/1/status")).unwrap();
    std::fs::remove_dir(src.join("proc/1")).unwrap();
    let mut want = facts(&src);
    let mut got = facts(&dst);
    let (p_want, p_got) = (
        want.remove(b"proc".as_slice()).unwrap(),
        got.remove(b"proc".as_slice()).unwrap(),
    );
    assert_eq!(p_want.mode, p_got.mode);
    // borg extract leaves the directory it extracts into alone (in recover
    // that is the root of a fresh filesystem, root:root 0755 from mkfs).
    want.remove(b"".as_slice());
    got.remove(b"".as_slice());
    assert_same(&want, &got);

    // A wrong passphrase: one error line, borg's reason in it.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("s3cret", "wrong"),
    )
    .unwrap();
    let out = mk(
        &base,
        &[
            os("backup"),
            os("--root"),
            src.as_os_str(),
            os("--config"),
            bad.as_os_str(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("passphrase"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Append-only repository: two backups, both kept, the newest restored.
    let ao = tmp.path().join("append-only");
    borg(
        &base,
        None,
        &[
            os("init"),
            os("--encryption=none"),
            os("--append-only"),
            ao.as_os_str(),
        ],
    );
    assert_eq!(
        borg(
            &base,
            None,
            &[os("config"), ao.as_os_str(), os("append_only")]
        )
        .trim(),
        "1"
    );
    let target = format!("{}", ao.display());
    for i in 0..2 {
        std::fs::write(src.join("etc/counter"), format!("{i}")).unwrap();
        let out = mk(
            &base,
            &[
                os("backup"),
                os("--method"),
                os("borg"),
                os("--root"),
                src.as_os_str(),
                os("--target"),
                os(&target),
            ],
        );
        ok(&out);
        // Archive names carry seconds: wait for a new one.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let listed: Vec<String> = serde_json::from_str(&ok(&mk(
        &base,
        &[
            os("backup"),
            os("list"),
            os("--method"),
            os("borg"),
            os("--target"),
            os(&target),
            os("--json"),
        ],
    )))
    .unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let dst = tmp.path().join("restored-ao");
    std::fs::create_dir(&dst).unwrap();
    ok(&mk(
        &base,
        &[
            os("restore"),
            os("--method"),
            os("borg"),
            os("--from"),
            os(&target),
            os("--to"),
            dst.as_os_str(),
        ],
    ));
    assert_eq!(
        std::fs::read_to_string(dst.join("etc/counter")).unwrap(),
        "1"
    );
}

/// Where there is no borg (the rescue system): one line saying so and
/// what to do, before anything is touched.
#[test]
fn missing_borg_is_named_with_the_way_out() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .args([
            "restore",
            "--method",
            "borg",
            "--from",
            "/srv/borg-repo",
            "--to",
        ])
        .arg(tmp.path())
        .args(["--config-dir", "/nonexistent-mkrescue-test"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("borg not found on PATH")
            && err.contains("borg extract /srv/borg-repo::ARCHIVE"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
