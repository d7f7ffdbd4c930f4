//! What a new admin sees of backup names and targets (issue "the first
//! hour of a new admin"): two backups started in the same second both
//! stay, with the archive and the rsync method; a missing or unmounted
//! target is refused, never created; a read-only restore target is one
//! error, not one warning per file. Some tests need root (mounts).

use std::path::Path;

use crate::support::backup::{mkrescue, ok, os};

fn tree(dir: &Path, name: &str) -> std::path::PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("file"), name).unwrap();
    d
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Item 2: `backup /data && backup /etc` within one second gave both the
/// same name, and the second replaced the first.
#[test]
fn two_archive_backups_in_one_second_both_stay() {
    let dir = tempfile::tempdir().unwrap();
    let (data, etc) = (tree(dir.path(), "data"), tree(dir.path(), "etc"));
    let bk = dir.path().join("b");
    std::fs::create_dir(&bk).unwrap();
    let url = format!("file://{}", bk.display());
    for src in [&data, &etc] {
        ok(&mkrescue(&[
            os("backup"),
            os("--target"),
            os(&url),
            os("-q"),
            src.as_os_str(),
        ]));
    }
    let out = mkrescue(&[
        os("backup"),
        os("list"),
        os("--target"),
        os(&url),
        os("--json"),
    ]);
    let l: Vec<serde_json::Value> = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(l.len(), 2, "{l:?}");
    let paths: Vec<&str> = l.iter().map(|b| b["paths"][0].as_str().unwrap()).collect();
    assert_eq!(paths, [data.to_str().unwrap(), etc.to_str().unwrap()]);
    assert_ne!(l[0]["name"], l[1]["name"]);
    // Four files: two archives, two manifests.
    assert_eq!(entries(&bk).len(), 4, "{:?}", entries(&bk));
}

/// Item 2, rsync: the second run failed with "Directory not empty" and
/// left its `.part` behind.
#[test]
fn two_rsync_snapshots_in_one_second_both_stay() {
    if std::process::Command::new("rsync")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no rsync");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (data, etc) = (tree(dir.path(), "data"), tree(dir.path(), "etc"));
    let bk = dir.path().join("b");
    std::fs::create_dir(&bk).unwrap();
    let url = format!("file://{}", bk.display());
    for src in [&data, &etc] {
        ok(&mkrescue(&[
            os("backup"),
            os("--method"),
            os("rsync"),
            os("--target"),
            os(&url),
            os("-q"),
            src.as_os_str(),
        ]));
    }
    let all = entries(&bk);
    assert!(all.iter().all(|s| !s.ends_with(".part")), "{all:?}");
    let snaps: Vec<&String> = all.iter().filter(|n| bk.join(n).is_dir()).collect();
    assert_eq!(snaps.len(), 2, "the day's retention pruned one: {all:?}");
    assert!(
        bk.join(snaps[0])
            .join(data.strip_prefix("/").unwrap())
            .join("file")
            .is_file()
    );
    assert!(
        bk.join(snaps[1])
            .join(etc.strip_prefix("/").unwrap())
            .join("file")
            .is_file()
    );
    let out = mkrescue(&[
        os("backup"),
        os("list"),
        os("--method"),
        os("rsync"),
        os("--target"),
        os(&url),
    ]);
    assert_eq!(ok(&out).lines().count(), 2);
}

fn stderr_first_line(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// Item 9: a target that did not exist was created, path and all (an
/// unmounted backup disk filled the root file system), `backup list` of it
/// said "no backups" with exit 0, and a failed backup left the directory.
#[test]
fn missing_target_is_refused_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let data = tree(dir.path(), "data");
    let missing = dir.path().join("mnt/backup");
    let url = format!("file://{}", missing.display());
    let want = format!(
        "mkrescue: error: backup target {}: no such directory; mount the backup disk there, or create it (`mkdir -p {}`) for backups on this system",
        missing.display(),
        missing.display()
    );
    for method in ["archive", "rsync"] {
        let out = mkrescue(&[
            os("backup"),
            os("--method"),
            os(method),
            os("--target"),
            os(&url),
            data.as_os_str(),
        ]);
        assert_eq!(out.status.code(), Some(1), "{method}: {out:?}");
        assert_eq!(stderr_first_line(&out), want, "{method}");
        assert!(!dir.path().join("mnt").exists(), "{method} created it");
    }
    let out = mkrescue(&[os("backup"), os("list"), os("--target"), os(&url)]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(stderr_first_line(&out), want);
    assert!(!dir.path().join("mnt").exists());
}

/// Item 9: the usual unmounted backup disk: its mount point is there (an
/// empty directory), listed in fstab, with nothing mounted on it.
#[test]
fn target_below_an_unmounted_fstab_mount_point_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    tree(&root, "etc");
    let mnt = dir.path().join("mnt/backup");
    let target = mnt.join("hosts");
    std::fs::create_dir_all(&target).unwrap();
    let fstab = root.join("etc/fstab");
    std::fs::write(
        &fstab,
        format!(
            "# <fs> <mount point> <type> <options>\nUUID=0c0ffee0-0000-4000-8000-000000000000 {} ext4 noauto 0 2\n",
            mnt.display()
        ),
    )
    .unwrap();
    let out = mkrescue(&[
        os("backup"),
        os("--root"),
        root.as_os_str(),
        os("--target"),
        os(&format!("file://{}", target.display())),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stderr_first_line(&out),
        format!(
            "mkrescue: error: backup target {}: {} is a mount point in {} where nothing is mounted; mount it first (`mount {}`)",
            target.display(),
            mnt.display(),
            fstab.display(),
            mnt.display()
        )
    );
    assert_eq!(entries(&target), Vec::<String>::new());
}

struct Unmount(std::path::PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Item 10: a restore into a read-only target printed one warning per
/// file (hundreds of thousands on a server), then "0 restored". Needs root
/// (mounts a read-only tmpfs).
#[test]
fn restore_into_a_read_only_target_is_one_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = tree(dir.path(), "data");
    for i in 0..50 {
        std::fs::write(data.join(format!("f{i}")), "x").unwrap();
    }
    let bk = dir.path().join("b");
    std::fs::create_dir(&bk).unwrap();
    ok(&mkrescue(&[
        os("backup"),
        os("-q"),
        os("--target"),
        bk.as_os_str(),
        data.as_os_str(),
    ]));
    let dst = dir.path().join("dst");
    std::fs::create_dir(&dst).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=1m", "none"])
        .arg(&dst)
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs (needs root)");
    let _u = Unmount(dst.clone());
    let out = mkrescue(&[
        os("restore"),
        os("--from"),
        bk.as_os_str(),
        os("--to"),
        dst.as_os_str(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "mkrescue: error: restore --to {}: cannot write there (Read-only file system",
            dst.display()
        )),
        "{err}"
    );
}

/// Item 15: the dry run of a backup of a tree under /tmp claimed /tmp's
/// contents were left out, though the whole tree is backed up.
#[test]
fn dry_run_names_only_what_is_left_out_below_the_paths() {
    let dir = tempfile::tempdir().unwrap();
    let data = tree(dir.path(), "data");
    let bk = dir.path().join("b");
    std::fs::create_dir(&bk).unwrap();
    let run = |path: &Path| {
        ok(&mkrescue(&[
            os("backup"),
            os("--dry-run"),
            os("--target"),
            bk.as_os_str(),
            path.as_os_str(),
        ]))
    };
    let out = run(&data);
    assert!(
        out.starts_with(&format!(
            "would back up {} (one filesystem each; nothing below them left out)",
            data.display()
        )),
        "{out}"
    );
    // Backing up the tree that holds the target leaves the target out.
    let out = run(dir.path());
    assert!(
        out.contains(&format!("contents of {} left out", bk.display())),
        "{out}"
    );
    assert!(!out.contains("/proc"), "{out}");
    assert_eq!(entries(&bk), Vec::<String>::new());
}

/// Items 14 and 17: an encrypted backup listed with the date
/// 19700101T000000Z and no paths, and `backup list` had no header.
#[test]
fn backup_list_has_a_header_and_dates_encrypted_backups() {
    let dir = tempfile::tempdir().unwrap();
    let data = tree(dir.path(), "data");
    let bk = dir.path().join("b");
    std::fs::create_dir(&bk).unwrap();
    let key = age::x25519::Identity::generate();
    let cfg = dir.path().join("age.toml");
    std::fs::write(
        &cfg,
        format!("[backup]\nage_recipient = \"{}\"\n", key.to_public()),
    )
    .unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    ok(&mkrescue(&[
        os("backup"),
        os("-q"),
        os("--config"),
        cfg.as_os_str(),
        os("--target"),
        bk.as_os_str(),
        data.as_os_str(),
    ]));
    let list = |json: bool| {
        let mut a = vec![os("backup"), os("list"), os("--target"), bk.as_os_str()];
        if json {
            a.push(os("--json"));
        }
        ok(&mkrescue(&a))
    };
    let j: serde_json::Value = serde_json::from_str(&list(true)).unwrap();
    let created = j[0]["created"].as_i64().unwrap();
    assert!((before - 1..=before + 60).contains(&created), "{j}");
    let text = list(false);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let head: Vec<&str> = lines[0]
        .split("  ")
        .filter(|s| !s.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(
        head,
        ["NAME", "STARTED (UTC)", "SIZE", "CHAIN", "PATHS"],
        "{text}"
    );
    assert!(!lines[1].contains("1970"), "{text}");
    assert!(
        lines[1].ends_with("(encrypted: the key shows them)"),
        "{text}"
    );
}
