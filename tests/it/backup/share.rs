//! nfs:// and cifs:// archive targets. This machine's kernel has neither
//! NFS nor CIFS (no module, not built in), so no share can be mounted here:
//! these tests check what does not need the kernel — the mount command
//! line (`--dry-run`: options, `nolock`, the credentials file instead of a
//! password), a failed mount leaving nothing behind, and a rescue image
//! that carries mount.nfs / mount.cifs and their kernel modules when such
//! a target is configured.
//!
//! The mounts themselves, against real servers, are tested in QEMU by
//! `cargo xtask qemu runtime --only shares` (xtask/src/qemu_shares.rs): the
//! rescue system's kernel and helpers mount an NFSv4 export of nfs-ganesha
//! and an SMB3 share of smbd run on this side, and back up, verify and
//! restore through them.

use std::path::Path;
use std::process::Command;

use crate::support::backup::*;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn dry_run_shows_the_mount_and_never_a_password() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    let cred = tmp.path().join("smb-cred");
    std::fs::write(&cred, "username=backup\npassword=TopSecret1\n").unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[backup]\nmount_options = \"vers=3.0\"\ncifs_credentials = \"{}\"\n",
            cred.display()
        ),
    )
    .unwrap();
    let dry = |url: &str| {
        mkrescue(&[
            os("backup"),
            os("--root"),
            src.as_os_str(),
            os("--target"),
            os(url),
            os("--config"),
            cfg.as_os_str(),
            os("--dry-run"),
        ])
    };
    let out = ok(&dry("cifs://backup@fs1.example/Backups/hosts/web1"));
    let mount = out
        .lines()
        .find(|l| l.starts_with("would run: mount "))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(
        mount.split_whitespace().collect::<Vec<_>>()[2..6],
        ["mount", "-t", "cifs", "-o",]
    );
    assert!(
        mount.contains(&format!(
            "username=backup,vers=3.0,credentials={}",
            cred.display()
        )) && mount.contains(" //fs1.example/Backups /run/mkrescue/target-cifs-"),
        "{mount}"
    );
    assert!(!out.contains("TopSecret1"), "{out}");
    // The archive goes into the directory below the share.
    assert!(out.contains("/hosts/web1/"), "{out}");

    let out = ok(&dry("nfs://nas.example:2049/export/backups"));
    assert!(
        out.contains("mount -t nfs -o port=2049,nolock,vers=3.0 nas.example:/export/backups /run/mkrescue/target-nfs-"),
        "{out}"
    );

    // A password in the URL or the options is refused before anything runs
    // (in a --target flag: a command-line mistake, 2; in the file: 3).
    let out = dry("cifs://backup:TopSecret1@fs1.example/Backups");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!stderr(&out).contains("TopSecret1"), "{}", stderr(&out));
    std::fs::write(&cfg, "[backup]\nmount_options = \"password=TopSecret1\"\n").unwrap();
    let out = dry("cifs://fs1.example/Backups");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("backup.cifs_credentials"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn failed_mount_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/f"), "x").unwrap();
    let cfg = tmp.path().join("c.toml");
    // Nothing listens on port 1; retry=0: give up at once, not after the
    // two minutes mount.nfs retries by default (nfs(5)).
    std::fs::write(&cfg, "[backup]\nmount_options = \"retry=0,timeo=10\"\n").unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .args(["backup", "--root"])
        .arg(&src)
        .args(["--target", "nfs://127.0.0.1:1/export/none", "--config"])
        .arg(&cfg)
        .args(["--config-dir", "/nonexistent-mkrescue-test"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains("mounting backup target nfs://127.0.0.1:1/export/none")
            || err.contains("needs mount.nfs"),
        "{err}"
    );
    assert!(!Path::new(&format!("/run/mkrescue/target-nfs-{pid}")).exists());
}

/// Builds the rescue initramfs (uncompressed) with `config` and lists it.
fn image_paths(dir: &Path, config: &str) -> Vec<String> {
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, config).unwrap();
    let out_dir = dir.join("out");
    ok(&mkrescue(&[
        os("--config"),
        cfg.as_os_str(),
        os("--output"),
        os("initramfs"),
        os("--compress"),
        os("none"),
        os("--out"),
        out_dir.as_os_str(),
    ]));
    let out = Command::new("cpio")
        .args(["-t", "--quiet"])
        .stdin(std::fs::File::open(out_dir.join("initrd.img")).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| format!("/{}", l.trim_start_matches("./").trim_start_matches('/')))
        .collect()
}

fn has(paths: &[String], suffix: &str) -> bool {
    paths.iter().any(|p| p.ends_with(suffix))
}

#[test]
fn rescue_image_carries_the_share_helper_and_modules() {
    for (url, helper, module, other) in [
        (
            "nfs://nas.example/export/backups",
            "/mount.nfs",
            "/kernel/fs/nfs/nfs.ko",
            "/cifs.ko",
        ),
        (
            "cifs://fs1.example/Backups/web1",
            "/mount.cifs",
            "/cifs.ko",
            "/kernel/fs/nfs/nfs.ko",
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        // The host policy takes only what this host uses: the share's
        // modules come from the backup target alone.
        let paths = image_paths(
            tmp.path(),
            &format!("[modules]\npolicy = \"host\"\n[backup]\ntarget = \"{url}\"\n"),
        );
        assert!(has(&paths, helper), "{url}: no {helper}");
        assert!(
            paths.iter().any(|p| p.contains(module)),
            "{url}: no {module}"
        );
        assert!(!paths.iter().any(|p| p.contains(other)), "{url}: {other}");
        assert!(has(&paths, "/etc/mkrescue/backup.json"));
    }
}
