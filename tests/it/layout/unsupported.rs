//! Storage recover cannot recreate is named, device by device, in the
//! layout (issue 19, build item 3), and recover refuses such a layout before
//! it looks at a disk. The sources are tests/fixtures/layout/unsupported
//! (see the README there): one host with every kind.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use mkrescue::layout::capture::{Sources, assemble};
use mkrescue::layout::{Layout, Unsupported, UnsupportedKind as K};

const DIR: &str = "tests/fixtures/layout/unsupported";

fn read(name: &str) -> String {
    std::fs::read_to_string(Path::new(DIR).join(name))
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The fixtures as `gather` collects them: `blkid.txt` is one
/// `blkid -p -o export` block per device, keyed by its DEVNAME.
fn sources() -> Sources {
    let mut s = Sources {
        lsblk: read("lsblk.json"),
        findmnt: read("findmnt.json"),
        lvm: Some((read("pvs.json"), read("vgs.json"), read("lvs.json"))),
        ..Default::default()
    };
    for block in read("blkid.txt").split("\n\n") {
        let dev = block
            .lines()
            .find_map(|l| l.strip_prefix("DEVNAME="))
            .expect("DEVNAME in every block");
        s.blkid
            .insert(dev.to_string(), format!("{}\n", block.trim()));
    }
    s.sfdisk.insert("/dev/sdp".into(), read("sfdisk-sdp.json"));
    s.mdadm.insert(
        "/dev/md126".into(),
        (read("mdadm-detail-export-md126.txt"), String::new()),
    );
    s
}

fn layout() -> Layout {
    assemble("unsupported", &sources()).expect("fixtures assemble")
}

fn found(l: &Layout) -> BTreeSet<(K, String)> {
    l.unsupported
        .iter()
        .map(|u| (u.kind, u.device.clone()))
        .collect()
}

fn item<'a>(l: &'a Layout, device: &str) -> &'a Unsupported {
    l.unsupported
        .iter()
        .find(|u| u.device == device)
        .unwrap_or_else(|| panic!("{device} not named: {:#?}", l.unsupported))
}

#[test]
fn every_kind_is_named_with_its_device() {
    let l = layout();
    let want: BTreeSet<(K, String)> = [
        (K::Zfs, "/dev/sdd1"),
        (K::Zfs, "/dev/zd0"),
        (K::Zfs, "tank"),
        (K::Bcache, "/dev/sde"),
        (K::Bcache, "/dev/nvme0n1"),
        (K::Bcache, "/dev/bcache0"),
        (K::Multipath, "/dev/mapper/mpatha"),
        (K::LvmSegment, "/dev/vg2/cached"),
        (K::DeviceMapper, "/dev/mapper/plainsecret"),
        (K::DeviceMapper, "/dev/mapper/handmade"),
        (K::MdExternal, "/dev/sdg"),
        (K::MdExternal, "/dev/sdh"),
        (K::MdExternal, "/dev/md126"),
        (K::MdExternal, "/dev/md127"),
        (K::BtrfsMultiDevice, "/dev/sdi1"),
        (K::NetworkDisk, "/dev/sdf"),
        (K::NetworkDisk, "/dev/nbd0"),
        (K::Filesystem, "/dev/sdn1"),
        (K::PartitionTable, "/dev/sdp"),
    ]
    .into_iter()
    .map(|(k, d)| (k, d.to_string()))
    .collect();
    assert_eq!(found(&l), want, "{:#?}", l.unsupported);
}

#[test]
fn the_particulars_say_what_it_is() {
    let l = layout();
    assert_eq!(
        item(&l, "/dev/sdd1").to_string(),
        "/dev/sdd1: ZFS (member of pool tank)"
    );
    assert_eq!(item(&l, "tank").detail, "datasets mounted at /tank, /home");
    assert_eq!(
        item(&l, "/dev/mapper/mpatha").detail,
        "paths /dev/sdb, /dev/sdc"
    );
    assert_eq!(
        item(&l, "/dev/bcache0").detail,
        "bcache device on /dev/sde, /dev/nvme0n1"
    );
    assert_eq!(item(&l, "/dev/vg2/cached").detail, "segment type cache");
    assert_eq!(
        item(&l, "/dev/md126").detail,
        "volume 0 of container /dev/md/imsm0"
    );
    assert_eq!(
        item(&l, "/dev/sdg").detail,
        "firmware RAID member (isw_raid_member)"
    );
    assert_eq!(
        item(&l, "/dev/mapper/plainsecret").detail,
        "dm-crypt mapping without a LUKS header on /dev/sdk1"
    );
    assert_eq!(
        item(&l, "/dev/sdi1").detail,
        "file system b7c8d9e0-f1a2-4b3c-9d4e-5f6a7b8c9d0e on /dev/sdi1, /dev/sdj1"
    );
    assert_eq!(item(&l, "/dev/sdf").detail, "iSCSI disk");
    assert_eq!(item(&l, "/dev/sdn1").detail, "f2fs mounted at /srv/f2fs");
    assert!(item(&l, "/dev/sdp").detail.starts_with("type sun"));
}

/// What recover does handle stays as it was, and is not named: the root
/// disk, the linear LV beside the cached one, a USB stick mounted now.
#[test]
fn what_recover_handles_is_recorded_as_before() {
    let l = layout();
    let named: BTreeSet<&str> = l.unsupported.iter().map(|u| u.device.as_str()).collect();
    for fine in [
        "/dev/sda",
        "/dev/sda1",
        "/dev/sda2",
        "/dev/vg2/plain",
        "/dev/sdo1",
    ] {
        assert!(!named.contains(fine), "{fine} named: {:#?}", l.unsupported);
    }
    assert!(l.has_root());
    assert!(l.lvm.lvs.iter().any(|v| v.path() == "/dev/vg2/plain"));
    // The cached LV is no LV recover would create, but its file system
    // keeps the LV's name.
    assert!(!l.lvm.lvs.iter().any(|v| v.name == "cached"));
    assert!(
        l.filesystems.iter().any(|f| f.device == "/dev/vg2/cached"),
        "{:?}",
        l.filesystems
    );
}

#[test]
fn a_root_on_nfs_is_named() {
    let mut s = sources();
    s.findmnt = serde_json::json!({"filesystems": [{
        "target": "/", "source": "nfs1:/export/web1", "fstype": "nfs4",
        "options": "rw,relatime,vers=4.2", "fsroot": "/"
    }]})
    .to_string();
    let l = assemble("nfsroot", &s).unwrap();
    let u = item(&l, "nfs1:/export/web1");
    assert_eq!(u.kind, K::NetworkRoot);
    assert_eq!(u.detail, "nfs4 mounted at /");
}

/// The file carries the items (so recover in the rescue system sees
/// them), they compare by device in `layout check`, and a file written
/// before the field existed still loads, with none.
#[test]
fn the_layout_file_carries_them_and_old_files_load() {
    let l = layout();
    let json = l.to_json();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let kinds: BTreeSet<&str> = v["unsupported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains("zfs") && kinds.contains("multipath"),
        "{kinds:?}"
    );
    let back = Layout::from_json(&json).unwrap();
    assert_eq!(back, l);

    let old = Layout::load(Path::new("tests/fixtures/layout/layout2.json")).unwrap();
    assert!(old.unsupported.is_empty());
    assert!(!old.to_json().contains("unsupported"));

    let mut less = l.clone();
    less.unsupported.retain(|u| u.device != "/dev/zd0");
    assert_eq!(
        mkrescue::layout::diff(&less, &l),
        vec!["+ unsupported[/dev/zd0]: added".to_string()]
    );
}

fn mkrescue(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .args(args)
        .args(["--config-dir", "/nonexistent-mkrescue-test"])
        .output()
        .unwrap()
}

fn saved(dir: &tempfile::TempDir) -> String {
    let p = dir.path().join("layout.json");
    std::fs::write(&p, layout().to_json()).unwrap();
    p.display().to_string()
}

#[test]
fn show_lists_them_and_json_carries_them() {
    let dir = tempfile::tempdir().unwrap();
    let p = saved(&dir);
    let out = mkrescue(&["layout", "show", "--file", &p]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "not recreated by recover (it refuses this layout):\n  /dev/sdd1: ZFS (member of pool tank)\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("  /dev/mapper/mpatha: dm-multipath (paths /dev/sdb, /dev/sdc)\n"),
        "{text}"
    );
    let out = mkrescue(&["--json", "layout", "show", "--file", &p]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let devices: Vec<&str> = v["unsupported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["device"].as_str().unwrap())
        .collect();
    assert_eq!(devices.len(), layout().unsupported.len());
    assert!(devices.contains(&"/dev/bcache0"), "{devices:?}");
}

/// `recover --dry-run` refuses with one line naming each device and what it
/// is, exit 6, before the disks are even listed: no plan, no warning of the
/// dry run (those come after the layout is accepted). The same layout
/// without the items gets past this point.
#[test]
fn recover_refuses_before_any_step() {
    let dir = tempfile::tempdir().unwrap();
    let p = saved(&dir);
    let root = dir.path().to_str().unwrap();
    for extra in [&[][..], &["--layout-only"][..]] {
        let mut args = vec!["recover", "--dry-run", "--unattended", "--layout", &p];
        args.extend(["--root", root]);
        args.extend(extra);
        let out = mkrescue(&args);
        assert_eq!(out.status.code(), Some(6), "{out:?}");
        assert!(out.stdout.is_empty(), "a plan was printed: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(
            err.starts_with(&format!(
                "mkrescue: error: layout {p} holds what recover cannot recreate: "
            )),
            "{err}"
        );
        for u in &layout().unsupported {
            assert!(err.contains(&u.to_string()), "{u} not named: {err}");
        }
        assert!(
            err.contains("mount the system under /mnt/target and run `mkrescue restore --to /mnt/target` (nothing was changed)"),
            "{err}"
        );
    }
    // A ZFS root: the refusal names ZFS, not "no file system at /".
    let mut zfs_root = Layout::load(Path::new("tests/fixtures/layout/layout2.json")).unwrap();
    zfs_root.unsupported = vec![Unsupported {
        device: "rpool".into(),
        kind: K::Zfs,
        detail: "datasets mounted at /".into(),
    }];
    let q = dir.path().join("zfs.json");
    std::fs::write(&q, zfs_root.to_json()).unwrap();
    let out = mkrescue(&[
        "recover",
        "--dry-run",
        "--unattended",
        "--layout",
        q.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rpool: ZFS (datasets mounted at /)"),
        "{out:?}"
    );
    // Without the items the same file is refused for what it lacks (no
    // root), not for them: the check is theirs alone.
    zfs_root.unsupported.clear();
    std::fs::write(&q, zfs_root.to_json()).unwrap();
    let out = mkrescue(&[
        "recover",
        "--dry-run",
        "--unattended",
        "--layout",
        q.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(5), "{out:?}");
}

/// A `bin` directory whose capture tools print the fixtures, as the
/// host's would on that host (probe.rs does the same with blkid alone).
/// A disk with a GPT but no sfdisk fixture gets an empty table.
fn fake_tools(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let fx = std::fs::canonicalize(DIR).unwrap();
    let parent = fx.parent().unwrap().to_path_buf();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!(
        r#"#!/bin/sh
F={fx}
P={parent}
for last; do :; done
case "$(basename "$0")" in
lsblk) cat "$F/lsblk.json" ;;
findmnt) cat "$F/findmnt.json" ;;
blkid) awk -v d="$last" 'BEGIN {{ RS = "" }} $1 == "DEVNAME=" d {{ print; found = 1 }} END {{ exit found ? 0 : 2 }}' "$F/blkid.txt" ;;
sfdisk)
    f="$F/sfdisk-$(basename "$last").json"
    if [ -f "$f" ]; then cat "$f"
    else echo '{{"partitiontable": {{"label": "gpt", "device": "'"$last"'", "unit": "sectors", "partitions": []}}}}'
    fi ;;
lvm) cat "$F/$1.json" ;;
mdadm) [ "$2" = "--export" ] && cat "$F/mdadm-detail-export-$(basename "$last").txt"; true ;;
dumpe2fs) cat "$P/dumpe2fs-ext4.txt" ;;
xfs_info) cat "$P/xfs_info.txt" ;;
btrfs) if [ "$2" = list ]; then cat "$P/btrfs-subvolume-list.txt"; else cat "$P/btrfs-get-default.txt"; fi ;;
*) echo "fake tool $0: unexpected" >&2; exit 1 ;;
esac
"#,
        fx = fx.display(),
        parent = parent.display()
    );
    let fake = bin.join("fake");
    std::fs::write(&fake, script).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    for tool in [
        "lsblk", "findmnt", "blkid", "sfdisk", "lvm", "mdadm", "dumpe2fs", "xfs_info", "btrfs",
    ] {
        std::os::unix::fs::symlink("fake", bin.join(tool)).unwrap();
    }
    bin
}

/// The issue's "done when": `layout save` on a host with unsupported
/// devices says so in one line per device, exits 0 with a warning, and
/// records them; `layout check` of that host names them again and finds no
/// change; `recover --dry-run` on the saved file refuses with the devices
/// named.
#[test]
fn save_warns_per_device_exits_0_and_recover_refuses_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bin = fake_tools(dir.path());
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let f = dir.path().join("layout.json");
    let fs = f.to_str().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mkrescue"))
            .args(args)
            .args(["--config-dir", "/nonexistent-mkrescue-test"])
            .env("PATH", &path)
            .output()
            .unwrap()
    };
    let want: Vec<String> = layout()
        .unsupported
        .iter()
        .map(|u| format!("mkrescue: warn: {}", u.warning()))
        .collect();
    let warned = |o: &Output| -> Vec<String> {
        String::from_utf8_lossy(&o.stderr)
            .lines()
            .filter(|l| l.contains("recover cannot recreate"))
            .map(str::to_string)
            .collect()
    };

    let out = run(&["layout", "save", "--out", fs]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(warned(&out), want);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(", {} unsupported)", want.len())),
        "{out:?}"
    );
    let saved = Layout::load(&f).unwrap();
    assert_eq!(found(&saved), found(&layout()));

    let out = run(&["layout", "check", "--file", fs]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(warned(&out), want);
    assert!(out.stdout.is_empty(), "{out:?}");

    let out = run(&["recover", "--dry-run", "--unattended", "--layout", fs]);
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/dev/mapper/mpatha: dm-multipath (paths /dev/sdb, /dev/sdc)"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "{out:?}");
}

/// A device-mapper device of another uuid prefix (Stratis: lsblk TYPE
/// `stratis`) is named by its TYPE; a whole device of another SCSI type
/// (`rbc`) is no device-mapper thing and is not.
#[test]
fn other_device_mapper_types_are_named_other_scsi_types_are_not() {
    let mut s = sources();
    let mut tree: serde_json::Value = serde_json::from_str(&s.lsblk).unwrap();
    let devs = tree["blockdevices"].as_array_mut().unwrap();
    let sdl = devs.iter_mut().find(|d| d["name"] == "sdl").unwrap();
    sdl["children"][0]["children"][0]["type"] = "stratis".into();
    let mut rbc = sdl.clone();
    rbc["name"] = "sdq".into();
    rbc["path"] = "/dev/sdq".into();
    rbc["type"] = "rbc".into();
    rbc["children"] = serde_json::Value::Null;
    devs.push(rbc);
    s.lsblk = tree.to_string();
    let l = assemble("stratis", &s).unwrap();
    let u = item(&l, "/dev/mapper/handmade");
    assert_eq!(u.kind, K::DeviceMapper);
    assert_eq!(u.detail, "stratis device on /dev/sdl1");
    assert!(
        !l.unsupported.iter().any(|u| u.device == "/dev/sdq"),
        "{:#?}",
        l.unsupported
    );
}
