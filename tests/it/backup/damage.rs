//! Bad input for the built-in archive (issue "Backup and restore", Bad
//! input / Done when): bytes flipped in the middle of an archive, a
//! truncated archive, a full target disk, a wrong target.
//!
//! A damaged archive must restore everything it still holds, name the
//! first lost file, count the losses and exit 5; a full disk must leave
//! nothing that looks like a backup. Needs root (mounts a small tmpfs).

use std::path::{Path, PathBuf};

use crate::support::backup::*;

const FILES: usize = 40;

/// 40 incompressible files of 256 KiB: 10 MiB of tar, three frames.
fn tree(root: &Path) {
    std::fs::create_dir_all(root.join("data")).unwrap();
    for i in 0..FILES {
        std::fs::write(
            root.join(format!("data/f{i:02}")),
            noise(i as u64 + 10, 256 << 10),
        )
        .unwrap();
    }
}

fn backup(src: &Path, bk: &Path) -> String {
    let out = mkrescue(&[
        os("backup"),
        os("--root"),
        src.as_os_str(),
        os("--target"),
        bk.as_os_str(),
        os("--json"),
    ]);
    let r: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    r["name"].as_str().unwrap().to_string()
}

/// Restores `bk` into a fresh directory; returns the directory, the error
/// line and the JSON report.
fn restore_damaged(tmp: &Path, bk: &Path, what: &str) -> (PathBuf, String, serde_json::Value) {
    let dst = tmp.join(format!("restored-{what}"));
    std::fs::create_dir(&dst).unwrap();
    let out = mkrescue(&[
        os("restore"),
        os("--from"),
        bk.as_os_str(),
        os("--to"),
        dst.as_os_str(),
        os("--json"),
    ]);
    let line = error_line(&out, 5);
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (dst, line, rep)
}

/// Every file that is not reported damaged is back and identical; the
/// damaged ones are not left half-written.
fn check_rest(src: &Path, dst: &Path, damaged: &[String]) -> usize {
    let mut restored = 0;
    for i in 0..FILES {
        let rel = format!("data/f{i:02}");
        let got = std::fs::read(dst.join(&rel));
        if damaged.contains(&rel) {
            assert!(
                got.is_err(),
                "{rel} is reported damaged but was left in place"
            );
        } else {
            assert_eq!(
                got.unwrap(),
                std::fs::read(src.join(&rel)).unwrap(),
                "{rel}"
            );
            restored += 1;
        }
    }
    restored
}

fn damaged_list(rep: &serde_json::Value) -> Vec<String> {
    rep["damaged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn flipped_bytes_cost_one_frame_and_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree(&src);
    let bk = tmp.path().join("bk");
    std::fs::create_dir_all(&bk).unwrap();
    let name = backup(&src, &bk);
    let archive = bk.join(format!("{name}.tar.zst"));
    let mut bytes = std::fs::read(&archive).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 16] {
        *b ^= 0xa5;
    }
    std::fs::write(&archive, &bytes).unwrap();

    let v = mkrescue(&[os("backup"), os("verify"), os("--target"), bk.as_os_str()]);
    let line = error_line(&v, 5);
    assert!(
        line.contains("is damaged") && line.contains("first: data/f"),
        "{line}"
    );

    let (dst, line, rep) = restore_damaged(tmp.path(), &bk, "flipped");
    let damaged = damaged_list(&rep);
    // One 4 MiB frame holds at most 17 of the 256 KiB files.
    assert!(!damaged.is_empty() && damaged.len() <= 17, "{damaged:?}");
    assert!(line.contains(&format!("first: {}", damaged[0])), "{line}");
    assert!(
        line.contains(&format!("{} members damaged", damaged.len())),
        "{line}"
    );
    let restored = check_rest(&src, &dst, &damaged);
    assert_eq!(restored + damaged.len(), FILES, "{damaged:?}");
    // Files after the damage came back too.
    assert!(dst.join("data/f39").exists());
}

#[test]
fn truncated_archive_restores_what_it_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree(&src);
    let bk = tmp.path().join("bk");
    std::fs::create_dir_all(&bk).unwrap();
    let name = backup(&src, &bk);
    let archive = bk.join(format!("{name}.tar.zst"));
    let len = std::fs::metadata(&archive).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&archive)
        .unwrap();
    f.set_len(len * 6 / 10).unwrap();
    drop(f);
    let (dst, line, rep) = restore_damaged(tmp.path(), &bk, "truncated");
    let damaged = damaged_list(&rep);
    assert!(damaged.contains(&"data/f39".to_string()), "{damaged:?}");
    assert!(line.contains("first: data/f"), "{line}");
    let restored = check_rest(&src, &dst, &damaged);
    // The first 4 MiB frame is whole: 15 files of 256 KiB and their headers.
    assert!(restored >= 15, "only {restored} files came back");
}

struct Mount(PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_target_disk_leaves_nothing_that_looks_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree(&src);
    let full = tmp.path().join("full");
    std::fs::create_dir(&full).unwrap();
    run(
        "mount",
        &[
            os("-t"),
            os("tmpfs"),
            os("-o"),
            os("size=2m"),
            os("none"),
            full.as_os_str(),
        ],
    );
    let _m = Mount(full.clone());
    std::fs::create_dir(full.join("backups")).unwrap();
    let out = mkrescue(&[
        os("backup"),
        os("--root"),
        src.as_os_str(),
        os("--target"),
        os(&format!("file://{}/backups", full.display())),
    ]);
    let line = error_line(&out, 1);
    assert!(line.contains("No space left on device"), "{line}");
    let left: Vec<_> = std::fs::read_dir(full.join("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let l = mkrescue(&[
        os("backup"),
        os("list"),
        os("--target"),
        full.join("backups").as_os_str(),
        os("--json"),
    ]);
    assert_eq!(ok(&l).trim(), "[]");
}

#[test]
fn wrong_targets_get_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = mkrescue(&[
        os("backup"),
        os("--root"),
        tmp.path().as_os_str(),
        os("--target"),
        os("ftp://x/y"),
    ]);
    assert!(error_line(&out, 2).contains("use file:///DIR, ssh://"));
    let out = mkrescue(&[os("backup"), os("--root"), tmp.path().as_os_str()]);
    assert!(error_line(&out, 2).contains("--target"));
    let out = mkrescue(&[
        os("backup"),
        os("--root"),
        tmp.path().as_os_str(),
        os("--target"),
        os("nfs://srv/export"),
        os("--method"),
        os("rsync"),
    ]);
    assert!(error_line(&out, 2).contains("for the archive method"));
    let out = mkrescue(&[
        os("restore"),
        os("--from"),
        tmp.path().as_os_str(),
        os("--to"),
        tmp.path().as_os_str(),
    ]);
    assert!(error_line(&out, 5).contains("no complete backup"));
}

/// Data that the frames' checksums pass but the manifest's digest does not
/// (here: the manifest is changed): the file is checked as it is written,
/// then removed and named, and the hard link to it that follows in the
/// archive is not made; everything else stays. Restore checks
/// XXH3-128 when the manifest has it, and sha256 in a manifest of an older
/// mkrescue (no `xxh3`): both are changed in turn.
#[test]
fn digest_mismatch_removes_the_file_and_its_hard_links() {
    for (field, drop_xxh3) in [("xxh3", false), ("sha256", true)] {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        tree(&src);
        std::fs::hard_link(src.join("data/f03"), src.join("data/zz-link")).unwrap();
        let bk = tmp.path().join("bk");
        std::fs::create_dir_all(&bk).unwrap();
        let name = backup(&src, &bk);
        let man_path = bk.join(format!("{name}.manifest.zst"));
        let man =
            String::from_utf8(zstd::decode_all(&std::fs::read(&man_path).unwrap()[..]).unwrap())
                .unwrap();
        let key = format!("\"{field}\":\"");
        let mut changed = 0;
        let lines: Vec<String> = man
            .lines()
            .map(|l| {
                let mut l: serde_json::Value = serde_json::from_str(l).unwrap();
                if l["path"] == "data/f03" && l.get(field).is_some() {
                    changed += 1;
                    l[field] = "0".repeat(l[field].as_str().unwrap().len()).into();
                }
                if drop_xxh3 {
                    if let Some(o) = l.as_object_mut() {
                        o.remove("xxh3");
                    }
                }
                l.to_string()
            })
            .collect();
        assert_eq!(changed, 1, "{man}");
        let edited = lines.join("\n") + "\n";
        assert!(edited.contains(&key));
        assert_eq!(edited.contains("\"xxh3\""), !drop_xxh3);
        std::fs::write(&man_path, zstd::encode_all(edited.as_bytes(), 3).unwrap()).unwrap();

        // verify checks both digests: either one changed names the file.
        let v = mkrescue(&[os("backup"), os("verify"), os("--target"), bk.as_os_str()]);
        let vline = error_line(&v, 5);
        assert!(vline.contains("first: data/f03"), "{field}: {vline}");

        let (dst, line, rep) = restore_damaged(tmp.path(), &bk, field);
        let damaged = damaged_list(&rep);
        assert_eq!(damaged, ["data/f03"], "{field}: {rep}");
        assert!(line.contains("first: data/f03"), "{field}: {line}");
        assert!(!dst.join("data/f03").exists(), "{field}");
        assert!(
            !dst.join("data/zz-link").exists(),
            "{field}: the hard link stayed"
        );
        assert_eq!(check_rest(&src, &dst, &damaged), FILES - 1, "{field}");
    }
}
