//! The plan for layout 2 (saved in the VM: two disks, BIOS GPT with
//! bios_grub, md RAID1, LVM with ext4 root, xfs home and swap) as the
//! shell script `recover --dry-run` prints: a snapshot, so any change to a
//! command shows as a diff.

use std::collections::BTreeMap;
use std::path::Path;

use mkrescue::config::Resize;
use mkrescue::layout::Layout;
use mkrescue::recover::plan::{Options, plan};

fn layout2() -> Layout {
    Layout::load(Path::new("tests/fixtures/layout/layout2.json")).unwrap()
}

fn opts() -> Options {
    Options {
        udev: false,
        key_file: None,
        work_dir: "/run/mkrescue/recover".into(),
        target_sizes: BTreeMap::new(),
        resize: Resize::Last,
    }
}

#[test]
fn dry_run_script_for_layout2() {
    let l = layout2();
    let map: BTreeMap<String, String> = [
        ("/dev/vdc".to_string(), "/dev/vdc".to_string()),
        ("/dev/vdd".to_string(), "/dev/vdd".to_string()),
    ]
    .into();
    let p = plan(&l, &map, &opts()).unwrap();
    insta::assert_snapshot!(p.script("mkrescue recover --dry-run: layout 2"));
}

#[test]
fn steps_follow_the_dependency_graph() {
    let l = layout2();
    let map: BTreeMap<String, String> = [
        ("/dev/vdc".to_string(), "/dev/sda".to_string()),
        ("/dev/vdd".to_string(), "/dev/nvme0n1".to_string()),
    ]
    .into();
    let p = plan(&l, &map, &opts()).unwrap();
    let pos = |id: &str| {
        p.steps.iter().position(|s| s.id == id).unwrap_or_else(|| {
            panic!(
                "no step {id}: {:?}",
                p.steps.iter().map(|s| &s.id).collect::<Vec<_>>()
            )
        })
    };
    assert!(pos("partition /dev/sda") < pos("md /dev/md0"));
    assert!(pos("partition /dev/nvme0n1") < pos("md /dev/md0"));
    assert!(pos("md /dev/md0") < pos("pv /dev/md0"));
    assert!(pos("pv /dev/md0") < pos("vg vg0"));
    assert!(pos("vg vg0") < pos("lv /dev/vg0/root"));
    assert!(pos("activate vg0") < pos("mkfs /dev/vg0/root"));
    // Partition names follow the target disk's naming (nvme: p2).
    let md = &p.steps[pos("md /dev/md0")];
    assert!(md.argv.contains(&"/dev/sda2".to_string()), "{:?}", md.argv);
    assert!(
        md.argv.contains(&"/dev/nvme0n1p2".to_string()),
        "{:?}",
        md.argv
    );
}

#[test]
fn unmapped_disk_makes_the_plan_invalid_before_step_one() {
    let l = layout2();
    let map: BTreeMap<String, String> = [("/dev/vdc".to_string(), "/dev/vdc".to_string())].into();
    let e = plan(&l, &map, &opts()).unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("cannot be rebuilt"), "{msg}");
    assert!(msg.contains("/dev/vdd2"), "{msg}");
}

/// Layout 5 of the issue: layout 2 onto one disk twice as big and one of
/// the same size. Only the bigger disk's last partition loses its size
/// (sfdisk then fills the disk); everything else is as recorded.
#[test]
fn bigger_target_grows_only_its_last_partition() {
    let l = layout2();
    let src = |p: &str| l.disks.iter().find(|d| d.path == p).unwrap().clone();
    let (c, d) = (src("/dev/vdc"), src("/dev/vdd"));
    let map: BTreeMap<String, String> = [
        ("/dev/vdc".to_string(), "/dev/vdb".to_string()),
        ("/dev/vdd".to_string(), "/dev/vda".to_string()),
    ]
    .into();
    let mut o = opts();
    o.target_sizes = [
        ("/dev/vdb".to_string(), c.size * 2),
        ("/dev/vda".to_string(), d.size),
    ]
    .into();
    let p = plan(&l, &map, &o).unwrap();
    let table = |t: &str| {
        p.steps
            .iter()
            .find(|s| s.id == format!("partition {t}"))
            .unwrap()
            .stdin
            .clone()
            .unwrap()
    };
    let last = c.partitions.iter().max_by_key(|x| x.start).unwrap();
    let big = table("/dev/vdb");
    let line = big
        .lines()
        .find(|x| x.starts_with(&format!("/dev/vdb{} :", last.number)))
        .unwrap();
    assert!(!line.contains("size="), "{line}");
    assert!(line.contains(&format!("start={}", last.start)), "{line}");
    for q in c.partitions.iter().filter(|x| x.number != last.number) {
        assert!(big.contains(&format!("size={}", q.size)), "{big}");
    }
    // The same-size disk keeps every recorded size.
    let same = table("/dev/vda");
    assert_eq!(same.matches("size=").count(), d.partitions.len(), "{same}");
    // grow_last_partition = false: the big disk keeps the recorded sizes.
    o.resize = Resize::None;
    let p = plan(&l, &map, &o).unwrap();
    let kept = p
        .steps
        .iter()
        .find(|s| s.id == "partition /dev/vdb")
        .unwrap()
        .stdin
        .clone()
        .unwrap();
    assert_eq!(kept.matches("size=").count(), c.partitions.len(), "{kept}");
}
