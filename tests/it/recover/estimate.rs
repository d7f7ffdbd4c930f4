//! `mkrescue estimate` on this machine: a saved layout (the layout2
//! fixture: GPT + RAID1 + LVM on two disks) and a real backup of a small
//! tree, as an admin runs it on the healthy host.

use std::path::Path;

use crate::support::backup::{mkrescue, ok, os};

fn layout2() -> &'static str {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/layout/layout2.json"
    )
}

/// A backup of a tree with a few files into `dir`/b.
fn backup(dir: &Path) -> String {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("etc")).unwrap();
    for i in 0..50 {
        std::fs::write(tree.join(format!("etc/f{i}")), vec![i as u8; 40_000]).unwrap();
    }
    let b = dir.join("b");
    std::fs::create_dir_all(&b).unwrap();
    let url = format!("file://{}", b.display());
    ok(&mkrescue(&[
        os("backup"),
        os("--target"),
        os(&url),
        os("--root"),
        dir.as_os_str(),
        // Below --root.
        os("/tree"),
    ]));
    url
}

/// `mkrescue estimate` of layout2 and the backup at `url`, below `root`.
fn estimate(root: &Path, url: &str, extra: &[&str]) -> String {
    let mut args = vec![
        os("estimate"),
        os("--layout"),
        os(layout2()),
        os("--from"),
        os(url),
        os("--root"),
        root.as_os_str(),
    ];
    args.extend(extra.iter().map(os));
    ok(&mkrescue(&args))
}

#[test]
fn estimate_of_a_saved_layout_and_backup() {
    let d = tempfile::tempdir().unwrap();
    let url = backup(d.path());
    let out = estimate(d.path(), &url, &["--json"]);
    let e: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(e["on"], "host");
    assert_eq!(e["host"], "vm-rescue");
    assert_eq!(e["backup"]["files"], 50);
    assert_eq!(e["backup"]["bytes"], 50 * 40_000);
    let names: Vec<&str> = e["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "boot",
            "layout",
            "mount",
            "restore",
            "finalize",
            "unmount",
            "first boot"
        ]
    );
    let phase = |n: &str| {
        e["phases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .unwrap()
            .clone()
    };
    // The read probe read the whole (small) archive back.
    assert_eq!(e["backup"]["read_probe"]["bytes"], 50 * 40_000);
    assert!(phase("restore")["seconds"].as_f64().unwrap() > 0.0);
    assert!(
        phase("restore")["basis"]
            .as_str()
            .unwrap()
            .contains("read probe")
    );
    // layout2 has GRUB on both disks (bios_grub partitions) and an ESP.
    assert!(
        phase("finalize")["basis"]
            .as_str()
            .unwrap()
            .contains("GRUB (BIOS) on 2 disks")
    );
    // The healthy host: the rescue boot is an assumption, and says so.
    assert!(
        phase("boot")["basis"]
            .as_str()
            .unwrap()
            .starts_with("assumed")
    );
    let total = e["total_seconds"].as_f64().unwrap();
    let sum: f64 = e["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["seconds"].as_f64().unwrap())
        .sum();
    assert!((total - sum).abs() < 1e-6, "{total} {sum}");
    // A --root tree is only read: no rates written into it.
    assert!(!d.path().join("var/lib/mkrescue").exists());

    // The text form, for a whole site of 20 such hosts.
    let text = estimate(d.path(), &url, &["--hosts", "20"]);
    assert!(
        text.starts_with("Recovery time of vm-rescue (estimated on the healthy host):"),
        "{text}"
    );
    assert!(text.contains("20 hosts one after another"), "{text}");
}

/// The backup's bytes per mount point of the layout, and what they take
/// in 4 KiB blocks (recover fits file systems to the larger of that and
/// the recorded used bytes): the e2e server's layout (`/`, `/boot/efi`,
/// `/home`), a backup of /tree and /home.
#[test]
fn backup_bytes_split_by_mount_point() {
    let d = tempfile::tempdir().unwrap();
    let url = backup(d.path());
    std::fs::create_dir_all(d.path().join("home/u")).unwrap();
    std::fs::write(d.path().join("home/u/a"), vec![1u8; 4096]).unwrap();
    std::fs::write(d.path().join("home/u/b"), vec![2u8; 4097]).unwrap();
    std::fs::write(d.path().join("home/u/empty"), b"").unwrap();
    let b = url.trim_start_matches("file://");
    std::fs::remove_dir_all(b).unwrap();
    std::fs::create_dir_all(b).unwrap();
    ok(&mkrescue(&[
        os("backup"),
        os("--target"),
        os(&url),
        os("--root"),
        d.path().as_os_str(),
        os("/tree"),
        os("/home"),
    ]));
    let layout = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/layout/e2e-raid1-lvm.json"
    );
    let out = ok(&mkrescue(&[
        os("estimate"),
        os("--layout"),
        os(layout),
        os("--from"),
        os(&url),
        os("--root"),
        d.path().as_os_str(),
        os("--json"),
    ]));
    let e: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        e["backup"]["bytes_by_mount"],
        serde_json::json!({"/": 50 * 40_000, "/home": 8193})
    );
    // Each 40,000-byte file is 10 blocks, and the directories tree and
    // tree/etc a block each; under /home: home/u, then 1 + 2 + 0 blocks
    // (home itself is the file system's root, which mkfs makes).
    assert_eq!(
        e["backup"]["alloc_by_mount"],
        serde_json::json!({"/": 50 * 40_960 + 2 * 4096, "/home": 4 * 4096})
    );
}

#[test]
fn missing_layout_or_backup_names_the_file_and_the_command() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("layout.json");
    let out = mkrescue(&[
        os("estimate"),
        os("--layout"),
        missing.as_os_str(),
        os("--from"),
        os("file:///nonexistent"),
    ]);
    assert_eq!(out.status.code(), Some(7));
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        format!(
            "mkrescue: error: no saved layout at {}: run `mkrescue layout save` (or give --layout FILE)",
            missing.display()
        )
    );

    let empty = d.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let url = format!("file://{}", empty.display());
    let out = mkrescue(&[
        os("estimate"),
        os("--layout"),
        os(layout2()),
        os("--from"),
        os(&url),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err.lines().next().unwrap_or_default();
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(first.starts_with("mkrescue: error: "), "{first}");
    assert!(first.contains(&url), "{first}");
    assert!(first.contains("make one with `mkrescue backup`"), "{first}");
}
