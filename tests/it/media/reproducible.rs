//! Two builds of an unchanged host give the same ISO and the same USB
//! image, byte for byte (issue 21): the media tag, the file dates inside
//! the ISO and the FAT/ext4 file systems, volume serials and GPT GUIDs all
//! come from the content and the image epoch, never from the clock or the
//! process. The builds run at least two seconds apart, so a time stamp of
//! the build would show.

use crate::support::media::{mkrescue, ok};

use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Panics with the first differing byte offset (as `cmp` would report).
fn assert_same(a: &Path, b: &Path) {
    let x = std::fs::read(a).unwrap();
    let y = std::fs::read(b).unwrap();
    if x == y {
        return;
    }
    let at = x
        .iter()
        .zip(&y)
        .position(|(p, q)| p != q)
        .unwrap_or(x.len().min(y.len()));
    panic!(
        "{} and {} differ, first at byte {at} (sizes {} and {})",
        a.display(),
        b.display(),
        x.len(),
        y.len()
    );
}

#[test]
fn two_iso_builds_are_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let isos: Vec<_> = ["a", "b"]
        .iter()
        .map(|n| {
            let out = dir.path().join(n);
            ok(mkrescue(&["--output", "iso", "--out", s(&out)]));
            // The second build's clock is at least two seconds later.
            std::thread::sleep(Duration::from_secs(2));
            out
        })
        .collect();
    for f in ["mkrescue.iso", "initrd.img", "SHA256SUMS"] {
        assert_same(&isos[0].join(f), &isos[1].join(f));
    }
}

#[test]
fn two_usb_builds_are_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let imgs: Vec<_> = ["a", "b"]
        .iter()
        .map(|n| {
            let img = dir.path().join(n).join("usb.img");
            let out = dir.path().join(n).join("out");
            ok(mkrescue(&[
                "--output",
                "usb",
                "--image",
                s(&img),
                "--size",
                "700M",
                "--out",
                s(&out),
            ]));
            std::thread::sleep(Duration::from_secs(2));
            img
        })
        .collect();
    assert_same(&imgs[0], &imgs[1]);
}

/// `SOURCE_DATE_EPOCH` is the one knob: it dates the ISO's volume and the
/// menu title says that date.
#[test]
fn source_date_epoch_dates_the_iso() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // 2026-01-01T00:00:00Z
    ok(Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .args(["--config-dir", "/nonexistent-mkrescue-test"])
        .args(["--modules", "host", "--output", "iso", "--out", s(&out)])
        .env("SOURCE_DATE_EPOCH", "1767225600")
        .output()
        .unwrap());
    let iso = out.join("mkrescue.iso");
    let pvd = Command::new("xorriso")
        .arg("-indev")
        .arg(&iso)
        .arg("-pvd_info")
        .output()
        .unwrap();
    let pvd = String::from_utf8_lossy(&pvd.stdout);
    assert!(pvd.contains("Creation Time: 2026010100000000"), "{pvd}");
    assert!(pvd.contains("Modif. Time  : 2026010100000000"), "{pvd}");
    let cfg = dir.path().join("grub.cfg");
    ok(Command::new("xorriso")
        .args(["-osirrox", "on", "-indev"])
        .arg(&iso)
        .args(["-extract", "/boot/grub/grub.cfg"])
        .arg(&cfg)
        .output()
        .unwrap());
    let cfg = std::fs::read_to_string(cfg).unwrap();
    assert!(cfg.contains("built 2026-01-01)"), "{cfg}");
}

/// An epoch the FAT and ISO dates cannot hold is one line, before any build.
#[test]
fn epoch_before_1980_is_refused_for_media() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .args(["--config-dir", "/nonexistent-mkrescue-test"])
        .args(["--output", "iso", "--out", s(&out)])
        .env("SOURCE_DATE_EPOCH", "0")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("SOURCE_DATE_EPOCH"), "{err}");
    assert!(!out.exists());
}
