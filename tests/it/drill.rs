//! `mkrescue drill` without a VM: what it refuses before starting QEMU,
//! its history and its help. The drill itself (recover in a VM, first
//! boot) runs in the e2e's `raid1-lvm drill bios` variant (xtask).

use std::path::Path;

use crate::support::backup::{error_line, mkrescue, ok, os};

const LAYOUT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/layout/layout2.json"
);

#[test]
fn a_missing_layout_names_the_file_and_the_command_that_makes_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("layout.json");
    let out = mkrescue(&[
        os("drill"),
        os("--iso"),
        os("/nonexistent.iso"),
        os("--layout"),
        missing.as_os_str(),
        os("--work"),
        dir.path().as_os_str(),
    ]);
    let e = error_line(&out, 7);
    assert!(
        e.contains(&missing.display().to_string()) && e.contains("mkrescue layout save"),
        "{e}"
    );
}

#[test]
fn an_iso_that_is_missing_or_not_mkrescues_is_refused_before_any_vm() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let out = mkrescue(&[
        os("drill"),
        os("--iso"),
        os("/nonexistent.iso"),
        os("--layout"),
        os(LAYOUT),
        os("--work"),
        work.as_os_str(),
    ]);
    let e = error_line(&out, 5);
    assert!(
        e.contains("no rescue ISO at /nonexistent.iso") && e.contains("--output iso"),
        "{e}"
    );
    // Not an ISO at all: xorriso cannot read it; nothing else was made.
    let junk = dir.path().join("junk.iso");
    std::fs::write(&junk, vec![0u8; 64 * 1024]).unwrap();
    let out = mkrescue(&[
        os("drill"),
        os("--iso"),
        junk.as_os_str(),
        os("--layout"),
        os(LAYOUT),
        os("--work"),
        work.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("junk.iso"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&work)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter().all(|n| !n.to_string_lossy().ends_with(".raw")),
        "{left:?}"
    );
}

#[test]
fn list_without_drills_says_so_and_json_is_an_empty_list() {
    let root = tempfile::tempdir().unwrap();
    let out = mkrescue(&[
        os("drill"),
        os("list"),
        os("--root"),
        root.path().as_os_str(),
    ]);
    assert!(ok(&out).contains("no drills kept"));
    let out = mkrescue(&[
        os("drill"),
        os("list"),
        os("--json"),
        os("--root"),
        root.path().as_os_str(),
    ]);
    let v: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(v, serde_json::json!([]));
    assert!(!Path::new("/var/lib/mkrescue/drills").join("x").exists());
}

#[test]
fn help_states_the_isolation_and_exit_code_9() {
    let out = mkrescue(&[os("drill"), os("--help")]);
    // clap wraps the text to the terminal's width.
    let help = ok(&out).split_whitespace().collect::<Vec<_>>().join(" ");
    for want in [
        "snapshot=on",
        "no network card",
        "never writes to the backup",
        "--controller <CONTROLLER>",
    ] {
        assert!(help.contains(want), "{want}: {help}");
    }
    // The test hook is for the e2e's drills that must fail, not for users.
    assert!(!help.contains("--test-hook"), "{help}");
    let top = ok(&mkrescue(&[os("--help")]))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(top.contains("9 drill: the host was not recovered"), "{top}");
}
