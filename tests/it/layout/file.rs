//! The layout file as users meet it: `layout show` renders a saved file,
//! and a bad file is one line naming the field, exit code 5.

use std::process::Command;

const LAYOUT2: &str = "tests/fixtures/layout/layout2.json";

fn mkrescue(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .args(args)
        .output()
        .unwrap()
}

fn write_variant(dir: &tempfile::TempDir, f: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(LAYOUT2).unwrap()).unwrap();
    f(&mut v);
    let p = dir.path().join("layout.json");
    std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    p.display().to_string()
}

/// layout2.json was captured in a VM where / was not on these disks: the
/// variant that mounts its root LV at /, as a host's layout would.
fn with_root(v: &mut serde_json::Value) {
    v["mounts"] = serde_json::json!([{
        "target": "/", "source": "/dev/vg0/root", "fstype": "ext4",
        "options": "rw,relatime", "fsroot": "/"
    }]);
}

fn one_error_line(out: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn show_renders_the_tree() {
    let out = mkrescue(&["layout", "show", "--file", LAYOUT2]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "/dev/vdc 1.5 GiB gpt",
        "[bios_grub]",
        "/dev/md0 raid1",
        "VG vg0",
        "LV /dev/vg0/root",
        "ext4 uuid",
        "xfs uuid",
        "swap uuid",
        "member of /dev/md0",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

/// The used bytes `layout save` recorded show beside their file system
/// (what recover may shrink it to depends on them).
#[test]
fn show_gives_used_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_variant(&dir, |v| {
        for f in v["filesystems"].as_array_mut().unwrap() {
            if f["device"] == "/dev/vg0/root" {
                f["used_bytes"] = (300u64 << 20).into();
            }
        }
    });
    let out = mkrescue(&["layout", "show", "--file", &p]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let root = text
        .lines()
        .find(|l| l.trim_start().starts_with("ext4 uuid"))
        .unwrap();
    assert!(root.ends_with("used 300.0 MiB"), "{text}");
    // Nothing recorded, nothing said.
    let home = text.lines().find(|l| l.contains("xfs uuid")).unwrap();
    assert!(!home.contains("used"), "{text}");
}

#[test]
fn unknown_schema_version_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_variant(&dir, |v| v["schema_version"] = 7.into());
    let out = mkrescue(&["layout", "show", "--file", &p]);
    assert_eq!(out.status.code(), Some(5));
    let err = one_error_line(&out);
    assert!(
        err.contains("field `schema_version`: version 7 is not supported"),
        "{err}"
    );
    assert!(err.contains(&p), "{err}");
}

#[test]
fn broken_field_is_named_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_variant(&dir, |v| {
        v["disks"][2]["partitions"][1]["start"] = "soon".into()
    });
    let out = mkrescue(&["layout", "show", "--file", &p]);
    assert_eq!(out.status.code(), Some(5));
    let err = one_error_line(&out);
    assert!(
        err.contains("field `disks[2].partitions[1].start`"),
        "{err}"
    );

    let p = write_variant(&dir, |v| v["md"][0]["chunk"] = 512.into());
    let out = mkrescue(&["layout", "show", "--file", &p]);
    assert_eq!(out.status.code(), Some(5));
    let err = one_error_line(&out);
    assert!(err.contains("unknown field `chunk`"), "{err}");
    assert!(err.contains("md[0]"), "{err}");
}

#[test]
fn missing_file_fails_without_touching_anything() {
    let out = mkrescue(&["layout", "show", "--file", "/nonexistent/layout.json"]);
    assert_eq!(out.status.code(), Some(7));
    let err = one_error_line(&out);
    assert_eq!(
        err.trim_end(),
        "mkrescue: error: no saved layout at /nonexistent/layout.json: run `mkrescue layout save --out /nonexistent/layout.json` first"
    );
}

/// Item 5 of the first-hour issue: "no saved layout" exited 1 like
/// "changed", and its hint ignored --file. A cron job now tells them apart.
#[test]
fn check_without_a_saved_layout_exits_7_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("nowhere.json");
    let out = mkrescue(&["layout", "check", "--file", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(7));
    let err = one_error_line(&out);
    assert!(
        err.starts_with(&format!(
            "mkrescue: error: no saved layout at {}",
            f.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("`mkrescue layout save --out {}`", f.display())),
        "{err}"
    );
    assert!(!f.exists());
}

/// Item 5: "changed" stays exit 1; a removed disk is one line, not one per
/// field; the hint names --file's path. The saved file is this machine's
/// own layout plus a disk it does not have.
#[test]
fn check_of_a_changed_layout_exits_1_with_one_line_per_removed_disk() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("layout.json");
    let fs = f.to_str().unwrap();
    changed_layout(&f);
    let out = mkrescue(&["layout", "check", "--file", fs]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("mkrescue-test-gone"))
        .collect();
    assert_eq!(
        lines,
        ["- disks[/dev/mkrescue-test-gone]: removed"],
        "{stdout}"
    );
    let err = one_error_line(&out);
    assert!(
        err.starts_with("mkrescue: error: layout changed since"),
        "{err}"
    );
    assert!(
        err.contains(&format!("`mkrescue layout save --out {fs}`")),
        "{err}"
    );
}

/// A saved layout with a disk this machine does not have (so `check`
/// sees a change): this machine's own layout plus /dev/mkrescue-test-gone.
/// --allow-partial: a disk this machine cannot probe is recorded as
/// unknown (check then compares it as such), not an error.
fn changed_layout(f: &std::path::Path) {
    let fs = f.to_str().unwrap();
    let out = mkrescue(&["layout", "save", "--out", fs, "--allow-partial", "-q"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = mkrescue(&["layout", "check", "--file", fs]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
    let mut gone = v["disks"][0].clone();
    if gone.is_null() {
        gone = serde_json::json!({"path": "", "size": 1, "logical_sector_size": 512,
            "physical_sector_size": 512, "wwn": null, "serial": null, "model": null,
            "by_path": null, "table": "none", "disk_id": null, "partitions": []});
    }
    gone["path"] = "/dev/mkrescue-test-gone".into();
    v["disks"].as_array_mut().unwrap().push(gone);
    std::fs::write(f, serde_json::to_string(&v).unwrap()).unwrap();
}

/// What mkrescue-check.timer runs: `layout check --rebuild` after a change
/// builds the rescue system into build.out_dir, saves the new layout (the
/// next check is quiet) and mails the difference; a failed build leaves
/// the old layout, so the next check tries again, and mails that too.
/// Needs root and a kernel with modules (a real build), like the image tests.
#[test]
fn check_rebuild_builds_saves_and_mails_the_change() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("layout.json");
    let fs = f.to_str().unwrap();
    let sendmail = dir.path().join("sendmail");
    let mails = dir.path().join("mails");
    std::fs::write(
        &sendmail,
        format!(
            "#!/bin/sh
cat >> {}
",
            mails.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&sendmail, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out_dir = dir.path().join("out");
    let c = dir.path().join("c.toml");
    std::fs::write(
        &c,
        format!(
            "[build]\nout_dir = \"{}\"\n[modules]\npolicy = \"host\"\n[backup]\nmail_to = [\"admin@example.com\"]\nsendmail = \"{}\"\n",
            out_dir.display(),
            sendmail.display()
        ),
    )
    .unwrap();
    let check = || {
        mkrescue(&[
            "layout",
            "check",
            "--rebuild",
            "--file",
            fs,
            "--config",
            c.to_str().unwrap(),
            "--config-dir",
            "/nonexistent-mkrescue-test",
        ])
    };

    // A build that fails: a file where build.out_dir should be.
    changed_layout(&f);
    let saved = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&out_dir, b"not a directory").unwrap();
    let out = check();
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        saved,
        "layout saved after a failed build"
    );
    let mail = std::fs::read_to_string(&mails).unwrap();
    assert!(mail.contains("Subject: mkrescue layout check "), "{mail}");
    assert!(mail.contains(": FAILED\n"), "{mail}");
    assert!(
        mail.contains("- disks[/dev/mkrescue-test-gone]: removed"),
        "{mail}"
    );
    std::fs::remove_file(&mails).unwrap();
    std::fs::remove_file(&out_dir).unwrap();

    let out = check();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("- disks[/dev/mkrescue-test-gone]: removed"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mkrescue: layout changed: rebuilding the rescue system"),
        "{stderr}"
    );
    assert!(out_dir.join("initrd.img").exists(), "{out:?}");
    let mail = std::fs::read_to_string(&mails).unwrap();
    assert!(mail.contains(": CHANGED\n"), "{mail}");
    assert!(mail.contains("To: admin@example.com\n"), "{mail}");
    assert!(
        mail.contains("- disks[/dev/mkrescue-test-gone]: removed"),
        "{mail}"
    );
    assert!(
        mail.contains("The rescue system was rebuilt (initramfs into"),
        "{mail}"
    );
    std::fs::remove_file(&mails).unwrap();

    // Saved: the next check finds nothing, builds nothing, mails nothing.
    let out = check();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(!mails.exists());
}

/// Item 3: `recover` refuses a layout without a root file system (what a
/// save that could not probe the disks produced), before it plans anything.
#[test]
fn recover_refuses_a_layout_without_a_root_file_system() {
    let dir = tempfile::tempdir().unwrap();
    // With its root the same layout gets past this check (to the disk
    // mapping, which this machine cannot satisfy: exit 4).
    let p = write_variant(&dir, with_root);
    let out = mkrescue(&["recover", "--dry-run", "--unattended", "--layout", &p]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("records no file system mounted at /"),
        "{err}"
    );
    let p = write_variant(&dir, |v| {
        with_root(v);
        let m = v["mounts"].as_array_mut().unwrap();
        m.retain(|m| m["target"] != "/");
    });
    let out = mkrescue(&["recover", "--dry-run", "--layout", &p]);
    assert_eq!(out.status.code(), Some(5));
    let err = one_error_line(&out);
    assert!(
        err.starts_with(&format!(
            "mkrescue: error: layout {p} records no file system mounted at /"
        )),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "a plan was printed");
    // --layout-only restores nothing: disks without / are enough for it
    // (the QEMU layout scenarios rebuild data disks this way).
    let out = mkrescue(&[
        "recover",
        "--layout-only",
        "--dry-run",
        "--unattended",
        "--layout",
        &p,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("records no file system mounted at /"),
        "{err}"
    );
}

#[test]
fn recover_dry_run_on_a_missing_layout_names_it() {
    let out = mkrescue(&[
        "recover",
        "--layout-only",
        "--dry-run",
        "--layout",
        "/nonexistent/layout.json",
    ]);
    assert_ne!(out.status.code(), Some(0));
    let err = one_error_line(&out);
    assert!(err.contains("/nonexistent/layout.json"), "{err}");
}

#[test]
fn check_diff_names_what_changed_and_ignores_volatile_fields() {
    use mkrescue::layout::{Layout, diff};
    let a = Layout::load(std::path::Path::new(LAYOUT2)).unwrap();
    let mut b = a.clone();
    b.captured_at += 86400;
    b.mkrescue_version = "9.9.9".into();
    assert!(diff(&a, &b).is_empty(), "{:?}", diff(&a, &b));
    let d = b.disks.iter_mut().find(|d| d.path == "/dev/vdc").unwrap();
    d.partitions[1].size -= 2048;
    b.filesystems.retain(|f| f.fstype != "swap");
    b.lvm.lvs.reverse();
    let lines = diff(&a, &b);
    assert!(
        lines.contains(
            &"~ disks[/dev/vdc].partitions[/dev/vdc2].size: 3139584 -> 3137536".to_string()
        ),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&"- filesystems[/dev/vg0/swap]: removed".to_string()),
        "{lines:#?}"
    );
    // Reordering LVs is no change: entries are keyed by name.
    assert!(!lines.iter().any(|l| l.contains("lvs[")), "{lines:#?}");
}

/// Item 12 of the first-hour issue: "no disk large enough" exited 5
/// ("corrupt input"); the layout is fine, this machine lacks a disk: 4.
#[test]
fn recover_without_a_disk_large_enough_exits_4() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_variant(&dir, |v| {
        with_root(v);
        for d in v["disks"].as_array_mut().unwrap() {
            d["size"] = (1u64 << 60).into();
        }
    });
    // As in a rescue system (no warning about that).
    std::fs::create_dir_all(dir.path().join("etc/mkrescue")).unwrap();
    std::fs::write(dir.path().join("etc/mkrescue/host.json"), "{}").unwrap();
    let root = dir.path().to_str().unwrap();
    let out = mkrescue(&[
        "recover",
        "--dry-run",
        "--unattended",
        "--layout-only",
        "--root",
        root,
        "--layout",
        &p,
    ]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = one_error_line(&out);
    assert!(
        err.starts_with("mkrescue: error: no disk large enough for /dev/vd")
            || err.starts_with("mkrescue: error: no target disk left for /dev/vd"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "a plan was printed");
}

/// Item 11 of the first-hour issue: `recover --dry-run` on a host that is
/// no rescue system said nothing about it, planned a restore without a
/// backup source, and ignored --json. The warnings come first, whatever
/// becomes of the plan (on a machine without a free disk of 1.5 GiB the
/// mapping fails, exit 4; with one, --json prints the plan as JSON).
#[test]
fn recover_dry_run_off_a_rescue_system_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_variant(&dir, with_root);
    let out = Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .args([
            "recover",
            "--dry-run",
            "--unattended",
            "--json",
            "--layout",
            &p,
        ])
        .args(["--config-dir", "/nonexistent-mkrescue-test"])
        .args(["--root", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[0].starts_with(
            "mkrescue: warn: this is not a rescue system (no /etc/mkrescue/host.json)"
        ),
        "{err}"
    );
    assert!(
        lines[1].starts_with("mkrescue: warn: no backup source: recover would stop before the restore; give --restore-from URL"),
        "{err}"
    );
    match out.status.code() {
        Some(0) => {
            let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(j["rescue_system"], false);
            assert!(j["restore_from"].is_null());
            assert!(!j["steps"].as_array().unwrap().is_empty());
            assert_eq!(j["warnings"].as_array().unwrap().len(), 2);
        }
        code => {
            assert_eq!(code, Some(4), "{err}");
            assert!(out.stdout.is_empty());
        }
    }
    // Inside a rescue system with a recorded backup there is nothing to say.
    std::fs::create_dir_all(dir.path().join("etc/mkrescue")).unwrap();
    std::fs::write(dir.path().join("etc/mkrescue/host.json"), "{}").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .args(["recover", "--dry-run", "--unattended", "--layout", &p])
        .args(["--restore-from", "file:///srv/backups"])
        .args(["--config-dir", "/nonexistent-mkrescue-test"])
        .args(["--root", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("warn:"), "{err}");
}

/// Item 17: `layout show` printed raw GPT type GUIDs; now the name, and
/// the GUID too under -v.
#[test]
fn show_names_partition_types_and_gives_guids_with_v() {
    let out = mkrescue(&["layout", "show", "--file", LAYOUT2]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("/dev/vdc2 1.5 GiB at sector 4096 type Linux RAID name \"raid\""),
        "{text}"
    );
    assert!(
        !text.contains("A19D880F-05FC-4D3B-A006-743F0F84911E"),
        "{text}"
    );
    let out = mkrescue(&["-v", "layout", "show", "--file", LAYOUT2]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("type Linux RAID (A19D880F-05FC-4D3B-A006-743F0F84911E)"),
        "{text}"
    );
}
