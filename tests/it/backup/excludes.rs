//! What the archive leaves out: the contents of /proc-like directories,
//! of mount points (one filesystem per path), of the backup target and of
//! mkrescue's output directory (each kept as an empty directory so the
//! restored system has them), and configured patterns (dropped whole).
//! `--dry-run` writes nothing. Needs root (mounts a tmpfs).

use crate::support::backup::*;

struct Mount(std::path::PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn excluded_and_pruned_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for d in [
        "run/lock",
        "srv/skip",
        "srv/keep",
        "var/lib/mkrescue/output",
        "backups",
        "mnt",
        "home/u/.cache",
    ] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    for f in [
        "run/lock/x",
        "srv/skip/a",
        "srv/keep/a",
        "srv/keep/b.tmp",
        "var/lib/mkrescue/output/initrd.img",
        "home/u/.cache/c",
        "home/u/file",
    ] {
        std::fs::write(src.join(f), f).unwrap();
    }
    run(
        "mount",
        &[
            os("-t"),
            os("tmpfs"),
            os("none"),
            src.join("mnt").as_os_str(),
        ],
    );
    let _m = Mount(src.join("mnt"));
    std::fs::write(src.join("mnt/on-another-fs"), "x").unwrap();
    let cfg = tmp.path().join("x.toml");
    std::fs::write(
        &cfg,
        "[backup]\nexclude = [\"/srv/skip\", \"*.tmp\", \"/home/*/.cache\"]\n",
    )
    .unwrap();
    let bk = src.join("backups");

    let dry = mkrescue(&[
        os("backup"),
        os("--dry-run"),
        os("--root"),
        src.as_os_str(),
        os("--target"),
        bk.as_os_str(),
        os("--config"),
        cfg.as_os_str(),
    ]);
    assert!(ok(&dry).contains("would back up /"));
    assert_eq!(
        std::fs::read_dir(&bk).unwrap().count(),
        0,
        "--dry-run wrote something"
    );

    ok(&mkrescue(&[
        os("backup"),
        os("--root"),
        src.as_os_str(),
        os("--target"),
        bk.as_os_str(),
        os("--config"),
        cfg.as_os_str(),
    ]));
    let dst = tmp.path().join("dst");
    std::fs::create_dir(&dst).unwrap();
    ok(&mkrescue(&[
        os("restore"),
        os("--from"),
        bk.as_os_str(),
        os("--to"),
        dst.as_os_str(),
    ]));
    for kept_empty in ["run", "mnt", "backups", "var/lib/mkrescue/output"] {
        let d = dst.join(kept_empty);
        assert!(d.is_dir(), "{kept_empty} missing");
        assert_eq!(
            std::fs::read_dir(&d).unwrap().count(),
            0,
            "{kept_empty} not empty"
        );
    }
    for gone in ["srv/skip", "srv/keep/b.tmp", "home/u/.cache"] {
        assert!(!dst.join(gone).exists(), "{gone} was backed up");
    }
    for there in ["srv/keep/a", "home/u/file"] {
        assert_eq!(std::fs::read_to_string(dst.join(there)).unwrap(), there);
    }
}
