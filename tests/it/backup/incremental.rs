//! Incremental archives (issue 22, item 3): a full backup and the
//! incrementals on it restore into exactly the tree of the newest (or of
//! the one named), with content, owners, modes, times, xattrs, ACLs, hard
//! links, deletions and renames; `backup list` shows the chain, `backup
//! verify` checks all of it; a missing link is named in one line and the
//! rest still restored; age works the same.
//!
//! Needs root (chown, user xattrs) and `setfacl` (Debian: acl).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;

use crate::support::backup::*;

struct Site {
    _tmp: tempfile::TempDir,
    /// The host's root; /data is backed up.
    root: PathBuf,
    bk: PathBuf,
    cfg: PathBuf,
}

impl Site {
    fn new(extra: &str) -> Site {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/hostname"), "web1\n").unwrap();
        let bk = tmp.path().join("bk");
        std::fs::create_dir_all(&bk).unwrap();
        let cfg = tmp.path().join("c.toml");
        std::fs::write(
            &cfg,
            format!("[backup]\nmode = \"incremental\"\npaths = [\"/data\"]\n{extra}"),
        )
        .unwrap();
        Site {
            root,
            bk,
            cfg,
            _tmp: tmp,
        }
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        let mut a: Vec<&std::ffi::OsStr> = args.iter().map(os).collect();
        a.extend([os("--config"), self.cfg.as_os_str()]);
        mkrescue(&a)
    }

    /// Backs up; returns the report.
    fn backup(&self, extra: &[&str]) -> serde_json::Value {
        let root = self.root.display().to_string();
        let target = format!("file://{}", self.bk.display());
        let mut args = vec!["backup", "--root", &root, "--target", &target, "--json"];
        args.extend(extra);
        serde_json::from_str(&ok(&self.run(&args))).unwrap()
    }

    fn restore(&self, to: &Path, extra: &[&str]) -> std::process::Output {
        std::fs::create_dir_all(to).unwrap();
        let target = format!("file://{}", self.bk.display());
        let to = to.display().to_string();
        let mut args = vec!["restore", "--from", &target, "--to", &to, "--json"];
        args.extend(extra);
        self.run(&args)
    }

    fn listed(&self) -> serde_json::Value {
        let target = self.bk.display().to_string();
        serde_json::from_str(&ok(
            &self.run(&["backup", "list", "--target", &target, "--json"])
        ))
        .unwrap()
    }
}

fn write(p: &Path, s: &[u8]) {
    std::fs::write(p, s).unwrap();
}

fn setfacl(p: &Path, spec: &str) {
    run("setfacl", &[os("-m"), os(spec), p.as_os_str()]);
}

/// The first tree: files, a hard-link pair, a symlink, an owner, a mode,
/// an xattr and an ACL.
fn first_tree(d: &Path) {
    std::fs::create_dir_all(d.join("etc/sub")).unwrap();
    std::fs::create_dir_all(d.join("var/olddir")).unwrap();
    write(&d.join("etc/a"), b"version 1 of a");
    write(&d.join("etc/b"), &noise(1, 300_000));
    write(&d.join("etc/sub/c"), b"c");
    write(&d.join("var/olddir/x"), b"x in olddir");
    write(&d.join("var/gone"), b"to be deleted");
    write(&d.join("var/renamed-from"), b"rename me");
    write(&d.join("var/big"), &noise(2, 2 << 20));
    write(&d.join("var/linked"), b"two names");
    std::fs::hard_link(d.join("var/linked"), d.join("etc/linked2")).unwrap();
    write(&d.join("var/pair"), b"pair");
    std::fs::hard_link(d.join("var/pair"), d.join("var/pair2")).unwrap();
    std::os::unix::fs::symlink("../etc/a", d.join("var/sym")).unwrap();
    std::os::unix::fs::chown(d.join("etc/sub/c"), Some(1234), Some(5678)).unwrap();
    std::fs::set_permissions(d.join("etc/a"), std::fs::Permissions::from_mode(0o640)).unwrap();
    mkrescue::sys::fs::set_xattr(&d.join("etc/b"), os("user.tag"), b"one").unwrap();
    setfacl(&d.join("var/big"), "u:4321:r");
}

/// The changes before the first incremental.
fn change_1(d: &Path) {
    write(&d.join("etc/a"), b"version 2 of a, longer");
    std::fs::remove_file(d.join("var/gone")).unwrap();
    std::fs::rename(d.join("var/renamed-from"), d.join("etc/renamed-to")).unwrap();
    std::fs::rename(d.join("var/olddir"), d.join("var/newdir")).unwrap();
    write(&d.join("var/new"), b"new in the first incremental");
    std::os::unix::fs::chown(d.join("etc/b"), Some(42), None).unwrap();
    mkrescue::sys::fs::set_xattr(&d.join("etc/b"), os("user.tag"), b"two").unwrap();
    setfacl(&d.join("etc/sub/c"), "u:999:rw");
    // One name of a hard-link pair goes; a new name joins the other pair.
    std::fs::remove_file(d.join("var/pair2")).unwrap();
    std::fs::hard_link(d.join("var/linked"), d.join("var/linked3")).unwrap();
    // A file becomes a directory.
    std::fs::remove_file(d.join("etc/sub/c")).unwrap();
    std::fs::create_dir(d.join("etc/sub/c")).unwrap();
    write(&d.join("etc/sub/c/inside"), b"inside");
}

/// The changes before the second incremental.
fn change_2(d: &Path) {
    std::fs::set_permissions(d.join("etc/a"), std::fs::Permissions::from_mode(0o600)).unwrap();
    write(&d.join("var/new"), b"changed in the second incremental");
    std::fs::remove_dir_all(d.join("var/newdir")).unwrap();
    write(&d.join("var/pair"), b"pair, rewritten in place");
    let t = 1_700_000_000;
    mkrescue::sys::fs::set_times(&d.join("etc/renamed-to"), (t, 5), (t, 5)).unwrap();
}

type Tree = BTreeMap<Vec<u8>, Facts>;

/// A member changed within a second before a backup is stored again by
/// the next one (its clock may be coarse): the changes settle first.
fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

/// Full, two incrementals; the trees at each backup.
fn chain_of_three(site: &Site) -> (Vec<serde_json::Value>, Vec<Tree>) {
    let d = site.data();
    first_tree(&d);
    settle();
    let mut reps = vec![site.backup(&[])];
    let mut trees = vec![facts(&d)];
    change_1(&d);
    settle();
    reps.push(site.backup(&[]));
    trees.push(facts(&d));
    change_2(&d);
    settle();
    reps.push(site.backup(&[]));
    trees.push(facts(&d));
    (reps, trees)
}

#[test]
fn a_chain_restores_the_newest_tree_or_the_one_named() {
    let site = Site::new("");
    let (reps, trees) = chain_of_three(&site);
    let names: Vec<&str> = reps.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert!(reps[0]["parent"].is_null(), "{}", reps[0]);
    assert_eq!(reps[1]["parent"], names[0]);
    assert_eq!(reps[2]["parent"], names[1]);
    // The incrementals carry what changed, not the 2 MiB file again.
    for r in &reps[1..] {
        assert!(r["stats"]["data_bytes"].as_u64().unwrap() < 400_000, "{r}");
        assert!(r["stats"]["unchanged"].as_u64().unwrap() >= 3, "{r}");
    }
    assert_eq!(reps[1]["stats"]["removed"], 5, "{}", reps[1]);
    let full_manifest = std::fs::metadata(site.bk.join(format!("{}.manifest.zst", names[0])))
        .unwrap()
        .len();
    let inc_manifest = std::fs::metadata(site.bk.join(format!("{}.manifest.zst", names[2])))
        .unwrap()
        .len();
    assert!(
        inc_manifest < full_manifest,
        "{inc_manifest} >= {full_manifest}"
    );

    let listed = site.listed();
    let l = listed.as_array().unwrap();
    assert_eq!(l.len(), 3);
    assert!(l[0]["full"].is_null());
    assert_eq!(l[2]["parent"], names[1]);
    assert_eq!(l[2]["full"], names[0]);
    assert_eq!(l[2]["missing_links"], serde_json::json!([]));
    let table = ok(&site.run(&["backup", "list", "--target", site.bk.to_str().unwrap()]));
    assert!(
        table.contains("CHAIN") && table.contains("+2 on "),
        "{table}"
    );

    let verified: serde_json::Value = serde_json::from_str(&ok(&site.run(&[
        "backup",
        "verify",
        "--target",
        site.bk.to_str().unwrap(),
        "--json",
    ])))
    .unwrap();
    assert_eq!(verified["chain"], serde_json::json!(names), "{verified}");
    assert_eq!(verified["mismatched"], serde_json::json!([]), "{verified}");
    assert_eq!(verified["missing"], serde_json::json!([]), "{verified}");

    let tmp = tempfile::tempdir().unwrap();
    let newest = tmp.path().join("newest");
    let rep: serde_json::Value = serde_json::from_str(&ok(&site.restore(&newest, &[]))).unwrap();
    assert_eq!(rep["chain"], serde_json::json!(names), "{rep}");
    assert_eq!(rep["damaged"], serde_json::json!([]), "{rep}");
    assert_eq!(rep["errors"], serde_json::json!([]), "{rep}");
    assert_same(&trees[2], &facts(&newest.join("data")));

    // The middle one, by its HOST-STAMP alone.
    let short = names[1].split('_').next().unwrap();
    let middle = tmp.path().join("middle");
    let rep: serde_json::Value =
        serde_json::from_str(&ok(&site.restore(&middle, &["--archive", short]))).unwrap();
    assert_eq!(rep["chain"], serde_json::json!(names[..2]), "{rep}");
    assert_same(&trees[1], &facts(&middle.join("data")));

    // --full starts a new chain.
    let rep = site.backup(&["--full"]);
    assert!(rep["parent"].is_null(), "{rep}");
    let rep = site.backup(&[]);
    assert_eq!(rep["parent"], rep_name(&site.listed(), 3));
}

fn rep_name(listed: &serde_json::Value, i: usize) -> serde_json::Value {
    listed[i]["name"].clone()
}

#[test]
fn a_missing_link_is_named_and_the_rest_restored() {
    let site = Site::new("");
    let (reps, trees) = chain_of_three(&site);
    let names: Vec<&str> = reps.iter().map(|r| r["name"].as_str().unwrap()).collect();
    for f in dir_names(&site.bk) {
        if f.starts_with(names[1]) {
            std::fs::remove_file(site.bk.join(f)).unwrap();
        }
    }
    let short1 = names[1].split('_').next().unwrap().to_string();
    let listed = site.listed();
    assert_eq!(listed[1]["missing_links"], serde_json::json!([short1]));
    let e = error_line(
        &site.run(&["backup", "verify", "--target", site.bk.to_str().unwrap()]),
        5,
    );
    assert!(e.contains(&format!("misses {short1}")), "{e}");

    let tmp = tempfile::tempdir().unwrap();
    let to = tmp.path().join("r");
    let out = site.restore(&to, &[]);
    let e = error_line(&out, 5);
    assert!(e.contains(&format!("misses one backup ({short1})")), "{e}");
    let got = facts(&to.join("data"));
    let content = |t: &Tree, p: &str| t.get(p.as_bytes()).map(|f| f.content.clone());
    // Restorable: every member the full backup and the second incremental
    // hold, each at its newest version there.
    for p in ["var/new", "var/pair", "var/big", "etc/a", "etc/linked2"] {
        assert_eq!(content(&got, p), content(&trees[2], p), "{p}");
    }
    assert_eq!(got[b"etc/a".as_slice()].mode, 0o600);
    // What only the missing link changed is as before it...
    let uid = |t: &Tree| t[b"etc/b".as_slice()].uid;
    assert_eq!((uid(&got), uid(&trees[2])), (uid(&trees[0]), 42));
    assert_eq!(content(&got, "var/gone"), content(&trees[0], "var/gone"));
    // ...and the second incremental's removal holds.
    assert_eq!(
        content(&got, "var/olddir/x"),
        content(&trees[0], "var/olddir/x")
    );
    assert!(got.contains_key(b"etc/renamed-to".as_slice()));
    // ...and the second incremental's removal holds.
    assert!(!got.contains_key(b"var/newdir".as_slice()));
}

#[test]
fn age_encrypted_chain_round_trip() {
    let key = age::x25519::Identity::generate();
    let site = Site::new(&format!("age_recipient = \"{}\"\n", key.to_public()));
    let idf = site.bk.parent().unwrap().join("key.txt");
    std::fs::write(&idf, format!("{}\n", key.to_string().expose_secret())).unwrap();
    let (reps, trees) = chain_of_three(&site);
    assert!(reps[2]["parent"].is_string(), "{}", reps[2]);
    for f in dir_names(&site.bk) {
        assert!(f.ends_with(".age"), "{f}");
    }
    // The chain shows without the key.
    let listed = site.listed();
    assert_eq!(listed[2]["full"], reps[0]["name"]);
    let tmp = tempfile::tempdir().unwrap();
    let to = tmp.path().join("r");
    let out = site.restore(&to, &["--identity", idf.to_str().unwrap()]);
    let rep: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(rep["chain"].as_array().unwrap().len(), 3, "{rep}");
    assert_same(&trees[2], &facts(&to.join("data")));
    ok(&site.run(&[
        "backup",
        "verify",
        "--target",
        site.bk.to_str().unwrap(),
        "--identity",
        idf.to_str().unwrap(),
    ]));
}

/// A file changed just before (or during) a backup is stored again by the
/// next one, even when its size and times look the same then.
#[test]
fn a_member_changed_just_before_a_backup_is_stored_again() {
    let site = Site::new("");
    write(&site.data().join("old"), b"old");
    settle();
    write(&site.data().join("fresh"), b"fresh");
    site.backup(&[]);
    let inc = site.backup(&[]);
    // "fresh" (and /data, whose mtime it changed) again; "old" not.
    assert_eq!(inc["stats"]["files"], 1, "{inc}");
    assert_eq!(inc["stats"]["unchanged"], 1, "{inc}");
    // Each backup that sees it that fresh stores it again; once it has
    // settled before a backup, the one after leaves it out.
    settle();
    let settled = site.backup(&[]);
    assert_eq!(settled["stats"]["files"], 1, "{settled}");
    let next = site.backup(&[]);
    assert_eq!(next["stats"]["files"], 0, "{next}");
}

#[test]
fn mode_and_full_every_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    for (text, want) in [
        (
            "[backup]\nmode = \"differential\"\n",
            "unknown variant `differential`, expected `full` or `incremental`",
        ),
        (
            "[backup]\nmode = \"incremental\"\nfull_every = 0\n",
            ":3: backup.full_every 0: give the days",
        ),
        ("[backup]\nfull_every = -1\n", "full_every"),
    ] {
        let cfg = dir.path().join("bad.toml");
        std::fs::write(&cfg, text).unwrap();
        let e = error_line(&mkrescue(&[os("dump"), os("--config"), cfg.as_os_str()]), 3);
        assert!(e.contains(want), "{e}\nwant: {want}");
    }
    let cfg = dir.path().join("good.toml");
    std::fs::write(&cfg, "[backup]\nmode = \"incremental\"\nfull_every = 3\n").unwrap();
    let out = ok(&mkrescue(&[
        os("dump"),
        os("--config"),
        cfg.as_os_str(),
        os("--json"),
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["config"]["backup"]["mode"], "incremental", "{v}");
    assert_eq!(v["config"]["backup"]["full_every"], 3, "{v}");
}

#[test]
fn the_chain_s_full_backup_ages_out() {
    let site = Site::new("full_every = 1\n");
    write(&site.data().join("f"), b"f");
    let first = site.backup(&[]);
    let second = site.backup(&[]);
    assert_eq!(second["parent"], first["name"]);
    // Make the state's full backup two days old.
    let state_dir = site.root.join("var/cache/mkrescue/backup");
    let state = &dir_names(&state_dir)[0];
    let p = state_dir.join(state);
    let text =
        String::from_utf8(zstd::decode_all(std::fs::File::open(&p).unwrap()).unwrap()).unwrap();
    let (head, rest) = text.split_once('\n').unwrap();
    let mut head: serde_json::Value = serde_json::from_str(head).unwrap();
    head["full_created"] = (head["full_created"].as_i64().unwrap() - 2 * 86_400).into();
    let text = format!("{head}\n{rest}");
    std::fs::write(&p, zstd::encode_all(text.as_bytes(), 3).unwrap()).unwrap();
    let third = site.backup(&[]);
    assert!(third["parent"].is_null(), "{third}");
    // A backup at the target that is gone: a full one too.
    let fourth = site.backup(&[]);
    assert_eq!(fourth["parent"], third["name"]);
    for f in dir_names(&site.bk) {
        if f.starts_with(fourth["name"].as_str().unwrap()) {
            std::fs::remove_file(site.bk.join(f)).unwrap();
        }
    }
    assert!(site.backup(&[])["parent"].is_null());
}

/// The estimate's size of a chain is what its restore writes: each
/// member of the newest tree once (a hard-linked file once), not the sum
/// of the links.
#[test]
fn the_estimate_counts_what_a_chain_restore_writes() {
    let site = Site::new("");
    let (_, trees) = chain_of_three(&site);
    let files: Vec<(&Vec<u8>, &Facts)> = trees[2]
        .iter()
        .filter(|(p, f)| f.kind == "file" && f.inode_group.as_ref().is_none_or(|g| g == *p))
        .collect();
    let layout = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/layout/layout2.json"
    );
    let target = format!("file://{}", site.bk.display());
    let root = site.root.display().to_string();
    let e: serde_json::Value = serde_json::from_str(&ok(&site.run(&[
        "estimate", "--layout", layout, "--from", &target, "--root", &root, "--json",
    ])))
    .unwrap();
    assert_eq!(e["backup"]["files"], files.len(), "{e}");
    assert_eq!(
        e["backup"]["bytes"],
        files.iter().map(|(_, f)| f.size).sum::<u64>(),
        "{e}"
    );
}

/// `--iso-backup` of an incremental puts its whole chain on the ISO
/// (encrypted here: the chain is known from the names alone).
#[test]
fn the_iso_carries_the_whole_chain() {
    let dir = tempfile::tempdir().unwrap();
    let f = "20261201T010000.000000Z";
    let i1 = "20261202T010000.000000Z";
    let names = [
        format!("web1-{f}"),
        format!("web1-{i1}_{f}_{f}"),
        format!("web1-20261203T010000.000000Z_{i1}_{f}"),
    ];
    for n in &names {
        for suffix in [".tar.zst.age", ".manifest.zst.age"] {
            std::fs::write(dir.path().join(format!("{n}{suffix}")), b"x").unwrap();
        }
    }
    let mut cfg = mkrescue::config::Config::default();
    cfg.backup.target = Some(format!("file://{}", dir.path().display()));
    let found =
        mkrescue::output::isobackup::newest(&cfg, "web1", &dir.path().join("work")).unwrap();
    assert_eq!(found.name, names[2]);
    let inside: Vec<&str> = found.files.iter().map(|f| f.1.as_str()).collect();
    let want: Vec<String> = names
        .iter()
        .flat_map(|n| {
            [
                format!("backup/{n}.tar.zst.age"),
                format!("backup/{n}.manifest.zst.age"),
            ]
        })
        .collect();
    assert_eq!(inside, want);
}
