//! What a new admin sees of backup names and targets (issue "the first
//! hour of a new admin"): two backups started in the same second both
//! stay, with the archive and the rsync method.

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
