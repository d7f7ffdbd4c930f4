//! `layout save|check` when blkid cannot probe a device (item 3 of the
//! first-hour issue): on some machines `blkid -p /dev/vda` fails with
//! "Operation not permitted", and the layout used to leave the disk's file
//! systems out without a word. Here a `blkid` first in PATH fails the way
//! blkid fails without access (its message, exit 2) for every device; every
//! other tool is the machine's own. Needs root (lsblk, lvm).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A directory whose `blkid` fails like one without access to the disk.
fn failing_blkid(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let f = bin.join("blkid");
    std::fs::write(
        &f,
        "#!/bin/sh\nfor last; do :; done\necho \"blkid: error: $last: Operation not permitted\" >&2\nexit 2\n",
    )
    .unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn mkrescue(path_first: &Path, args: &[&str]) -> Output {
    let path = format!(
        "{}:{}",
        path_first.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .args(args)
        .args(["--config-dir", "/nonexistent-mkrescue-test"])
        .env("PATH", path)
        .output()
        .unwrap()
}

fn first_line(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

fn first_disk() -> String {
    let out = Command::new("lsblk")
        .args(["-J", "-d", "-o", "PATH,TYPE"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["blockdevices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["type"] == "disk" && !d["path"].as_str().unwrap().contains("zram"))
        .map(|d| d["path"].as_str().unwrap().to_string())
        .expect("a disk")
}

#[test]
fn save_refuses_a_disk_it_cannot_probe() {
    let dir = tempfile::tempdir().unwrap();
    let bin = failing_blkid(dir.path());
    let f = dir.path().join("layout.json");
    let o = mkrescue(&bin, &["layout", "save", "--out", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(8), "{o:?}");
    let line = first_line(&o);
    let disk = first_disk();
    assert!(
        line.starts_with("mkrescue: error: could not probe ") && line.contains(&disk),
        "{line}"
    );
    assert!(line.contains("Operation not permitted"), "{line}");
    assert!(line.contains("--allow-partial"), "{line}");
    assert!(!f.exists(), "a partial layout was written");
}

#[test]
fn save_with_allow_partial_records_the_disk_as_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let bin = failing_blkid(dir.path());
    let f = dir.path().join("layout.json");
    let o = mkrescue(
        &bin,
        &[
            "layout",
            "save",
            "--out",
            f.to_str().unwrap(),
            "--allow-partial",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let disk = first_disk();
    assert_eq!(
        first_line(&o),
        format!(
            "mkrescue: warn: {disk}: could not be probed (blkid: error: {disk}: Operation not permitted); recorded as unknown"
        )
    );
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
    let unknown: Vec<&str> = v["unknown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["device"].as_str().unwrap())
        .collect();
    assert!(unknown.contains(&disk.as_str()), "{v}");
}

/// Item 5: a check that cannot probe the disks exits 8, not 1 ("changed").
#[test]
fn check_that_cannot_probe_exits_8() {
    let dir = tempfile::tempdir().unwrap();
    let bin = failing_blkid(dir.path());
    let o = mkrescue(
        &bin,
        &[
            "layout",
            "check",
            "--file",
            "tests/fixtures/layout/layout2.json",
        ],
    );
    assert_eq!(o.status.code(), Some(8), "{o:?}");
    assert!(
        first_line(&o).starts_with("mkrescue: error: could not probe "),
        "{o:?}"
    );
    assert!(o.stdout.is_empty(), "a diff was printed");
}
