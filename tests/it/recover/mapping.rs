//! Disk mapping decisions on the layout-2 file saved in the VM
//! (tests/fixtures/layout/layout2.json: two 1.5 GiB disks, serials DISK1 and
//! DISK2, at /dev/vdc and /dev/vdd).

use std::collections::BTreeSet;
use std::path::Path;

use mkrescue::error::{Code, code_of};
use mkrescue::layout::Layout;
use mkrescue::recover::mapping::{
    Ask, NoAsk, TargetDisk, Why, disks_here, map_disks, parse_maps, serials_here,
};

const GIB: u64 = 1 << 30;

fn layout() -> Layout {
    Layout::load(Path::new("tests/fixtures/layout/layout2.json")).unwrap()
}

fn t(path: &str, size: u64, serial: Option<&str>) -> TargetDisk {
    TargetDisk {
        path: path.into(),
        size,
        logical_sector_size: 512,
        wwn: None,
        serial: serial.map(str::to_string),
    }
}

fn map(
    l: &Layout,
    targets: &[TargetDisk],
    maps: &[&str],
    ask: &mut dyn Ask,
) -> anyhow::Result<Vec<(String, String, Why)>> {
    let explicit = parse_maps(&maps.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
    let m = map_disks(l, targets, &explicit, &BTreeSet::new(), ask)?;
    Ok(m.into_iter().map(|(k, (v, w))| (k, v, w)).collect())
}

/// Strips serials: the case where only sizes can decide.
fn anonymous(mut l: Layout) -> Layout {
    for d in &mut l.disks {
        d.serial = None;
        d.wwn = None;
    }
    l
}

const SIZE: u64 = 1536 << 20;

#[test]
fn same_disks_map_to_themselves() {
    let l = layout();
    let got = map(
        &l,
        &[t("/dev/vdc", SIZE, None), t("/dev/vdd", SIZE, None)],
        &[],
        &mut NoAsk,
    )
    .unwrap();
    assert_eq!(
        got,
        vec![
            ("/dev/vdc".into(), "/dev/vdc".into(), Why::SamePath),
            ("/dev/vdd".into(), "/dev/vdd".into(), Why::SamePath),
        ]
    );
}

#[test]
fn renamed_disks_found_by_serial() {
    let l = layout();
    let got = map(
        &l,
        &[
            t("/dev/sda", SIZE, Some("DISK2")),
            t("/dev/sdb", SIZE, Some("DISK1")),
        ],
        &[],
        &mut NoAsk,
    )
    .unwrap();
    assert_eq!(
        got[0],
        ("/dev/vdc".into(), "/dev/sdb".into(), Why::Identity)
    );
    assert_eq!(
        got[1],
        ("/dev/vdd".into(), "/dev/sda".into(), Why::Identity)
    );
}

#[test]
fn as_many_free_disks_as_sources_each_gets_the_smallest_that_holds_it() {
    // A new machine with NVMe disks (other names, no serial in common):
    // every free disk is erased whichever source it receives, so nothing
    // is asked; the smaller disk goes to a source it holds.
    let l = anonymous(layout());
    let got = map(
        &l,
        &[
            t("/dev/nvme1n1", 2 * SIZE, None),
            t("/dev/nvme0n1", SIZE, None),
        ],
        &[],
        &mut NoAsk,
    )
    .unwrap();
    assert_eq!(
        got,
        vec![
            ("/dev/vdc".into(), "/dev/nvme0n1".into(), Why::AllUsed),
            ("/dev/vdd".into(), "/dev/nvme1n1".into(), Why::AllUsed),
        ]
    );
    // One too small: not a way out of the refusal.
    let e = map(
        &l,
        &[
            t("/dev/nvme1n1", SIZE / 2, None),
            t("/dev/nvme0n1", SIZE, None),
        ],
        &[],
        &mut NoAsk,
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains("no disk large enough"), "{e:#}");
}

#[test]
fn same_size_disks_without_identity_are_ambiguous_unattended() {
    // Three free disks for two: which one is left alone matters.
    let l = anonymous(layout());
    let e = map(
        &l,
        &[
            t("/dev/sda", SIZE, None),
            t("/dev/sdb", SIZE, None),
            t("/dev/sdc", SIZE, None),
        ],
        &[],
        &mut NoAsk,
    )
    .unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("could go to any of /dev/sda"), "{msg}");
    assert!(msg.contains("--map /dev/vd"), "{msg}");
    assert!(msg.contains("nothing was changed"), "{msg}");
    assert_eq!(code_of(&e), Code::Input);
}

struct Pick(usize, usize);
impl Ask for Pick {
    fn choose(&mut self, _: &mkrescue::layout::Disk, c: &[&TargetDisk]) -> Option<usize> {
        self.1 = c.len();
        Some(self.0)
    }
}

#[test]
fn ambiguous_interactive_takes_the_operators_choice() {
    let l = anonymous(layout());
    let mut ask = Pick(1, 0);
    let got = map(
        &l,
        &[
            t("/dev/sda", SIZE, None),
            t("/dev/sdb", SIZE, None),
            t("/dev/sdc", SIZE / 2, None),
        ],
        &[],
        &mut ask,
    )
    .unwrap();
    assert_eq!(ask.1, 2, "asked with both disks large enough");
    assert_eq!(got[0].1, "/dev/sdb");
    assert_eq!(got[0].2, Why::Asked);
    // The second disk had one candidate left: no question needed.
    assert_eq!(got[1], ("/dev/vdd".into(), "/dev/sda".into(), Why::Size));
}

#[test]
fn missing_disk_is_refused() {
    let l = anonymous(layout());
    let e = map(&l, &[t("/dev/sda", SIZE, None)], &[], &mut NoAsk).unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("no target disk left for /dev/vd"), "{msg}");
    assert!(msg.contains("nothing was changed"), "{msg}");
}

#[test]
fn too_small_disk_is_refused_before_anything() {
    let l = anonymous(layout());
    let e = map(
        &l,
        &[t("/dev/sda", SIZE, None), t("/dev/sdb", GIB / 2, None)],
        &[],
        &mut NoAsk,
    )
    .unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("no disk large enough"), "{msg}");
    assert!(msg.contains("(1.5 GiB, needs at least "), "{msg}");
    assert!(msg.contains("/dev/sdb, has 512.0 MiB"), "{msg}");
    // Same serial, but too small: refused too, with both sizes.
    let l = layout();
    let e = map(
        &l,
        &[
            t("/dev/sda", SIZE, Some("DISK1")),
            t("/dev/sdb", GIB / 2, Some("DISK2")),
        ],
        &[],
        &mut NoAsk,
    )
    .unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.starts_with("disk /dev/vdd (1.5 GiB, needs at least "),
        "{msg}"
    );
    assert!(
        msg.contains("for its data) does not fit on /dev/sdb (512.0 MiB)"),
        "{msg}"
    );
    assert_eq!(code_of(&e), Code::Host);
}

/// A disk smaller than the recorded one takes it when the data fits: the
/// VG of layout 2 holds 784 MiB of LVs in 1.5 GiB, so 1 GiB will do (the
/// plan then fits the sizes, plan::fit).
#[test]
fn smaller_disk_taken_when_the_data_fits() {
    let l = anonymous(layout());
    let got = map(
        &l,
        &[t("/dev/sda", SIZE, None), t("/dev/sdb", GIB, None)],
        &[],
        &mut NoAsk,
    )
    .unwrap();
    assert!(
        got.contains(&("/dev/vdc".into(), "/dev/sdb".into(), Why::AllUsed))
            || got.contains(&("/dev/vdd".into(), "/dev/sdb".into(), Why::AllUsed)),
        "{got:?}"
    );
    let l = layout();
    let got = map(
        &l,
        &[
            t("/dev/sda", SIZE, Some("DISK1")),
            t("/dev/sdb", GIB, Some("DISK2")),
        ],
        &[],
        &mut NoAsk,
    )
    .unwrap();
    assert!(got.contains(&("/dev/vdd".into(), "/dev/sdb".into(), Why::Identity)));
}

#[test]
fn bigger_unique_disk_found_by_size() {
    let l = anonymous(layout());
    let got = map(
        &l,
        &[
            t("/dev/sda", 2 * SIZE, None),
            t("/dev/sdb", GIB, None),
            t("/dev/sdc", SIZE, None),
        ],
        &[],
        &mut NoAsk,
    );
    // Two disks need 1.5 GiB, two targets have it, but each source has
    // both as candidates in turn: the first choice is ambiguous.
    assert!(got.is_err());
    let got = map(
        &l,
        &[
            t("/dev/sda", 2 * SIZE, None),
            t("/dev/sdb", GIB, None),
            t("/dev/sdc", SIZE, None),
        ],
        &["/dev/vdc=/dev/sda"],
        &mut NoAsk,
    )
    .unwrap();
    assert_eq!(
        got[0],
        ("/dev/vdc".into(), "/dev/sda".into(), Why::Explicit)
    );
    assert_eq!(got[1], ("/dev/vdd".into(), "/dev/sdc".into(), Why::Size));
}

#[test]
fn explicit_map_wins_and_is_checked() {
    let l = layout();
    let targets = [t("/dev/vdc", SIZE, None), t("/dev/vdd", SIZE, None)];
    let got = map(
        &l,
        &targets,
        &["/dev/vdc=/dev/vdd", "/dev/vdd=/dev/vdc"],
        &mut NoAsk,
    )
    .unwrap();
    assert_eq!(
        got[0],
        ("/dev/vdc".into(), "/dev/vdd".into(), Why::Explicit)
    );
    assert_eq!(
        got[1],
        ("/dev/vdd".into(), "/dev/vdc".into(), Why::Explicit)
    );

    let e = map(&l, &targets, &["/dev/vdc=/dev/sdz"], &mut NoAsk).unwrap_err();
    assert!(format!("{e:#}").contains("/dev/sdz is not a disk of this machine"));
    assert_eq!(code_of(&e), Code::Usage);
    let e = map(&l, &targets, &["/dev/sdq=/dev/vdc"], &mut NoAsk).unwrap_err();
    assert!(format!("{e:#}").contains("/dev/sdq is not a disk of the layout"));
    let e = map(&l, &targets, &["vdc:vdd"], &mut NoAsk).unwrap_err();
    assert!(format!("{e:#}").contains("expected SOURCE=TARGET"));
    let e = map(
        &l,
        &targets,
        &["/dev/vdc=/dev/vdd", "/dev/vdd=/dev/vdd"],
        &mut NoAsk,
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains("given as target twice"));
}

#[test]
fn never_targets_are_skipped() {
    let l = anonymous(layout());
    let never: BTreeSet<String> = ["/dev/sdb".to_string()].into();
    let targets = [
        t("/dev/sda", SIZE, None),
        t("/dev/sdb", SIZE, None),
        t("/dev/sdc", SIZE, None),
    ];
    // sda and sdc remain for the two disks: each gets one, never sdb.
    let m = map_disks(&l, &targets, &[], &never, &mut NoAsk).unwrap();
    let got: Vec<&str> = m.values().map(|(t, _)| t.as_str()).collect();
    assert_eq!(got, ["/dev/sda", "/dev/sdc"]);
    // With a fourth disk free the choice matters again: refused, and the
    // message never offers sdb.
    let mut more = targets.to_vec();
    more.push(t("/dev/sdd", SIZE, None));
    let e = map_disks(&l, &more, &[], &never, &mut NoAsk).unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("could go to any of"), "{msg}");
    assert!(!msg.contains("/dev/sdb"), "{msg}");
}

/// The lsblk captured in the VM while the layout was mounted under /mnt/t:
/// the disks holding mounted file systems (or active swap) are in use and
/// never targets; the blank disks are free.
#[test]
fn disks_with_mounted_file_systems_are_never_targets() {
    let text = std::fs::read_to_string("tests/fixtures/layout/lsblk.json").unwrap();
    let used = mkrescue::recover::mapping::in_use_disks(&text, "MKRESCUE").unwrap();
    assert!(used.contains_key("/dev/vdc"), "{used:?}");
    assert!(used.contains_key("/dev/vdd"), "{used:?}");
    assert!(!used.contains_key("/dev/vda"), "{used:?}");
    assert!(!used.contains_key("/dev/vdb"), "{used:?}");
    assert!(used["/dev/vdc"].contains("mounted at"), "{used:?}");
}

/// zram (compressed swap in RAM) is a "disk" to lsblk: never a target, so
/// never erased and never counted among the free disks.
#[test]
fn zram_is_never_a_target() {
    let text = std::fs::read_to_string("tests/fixtures/layout/lsblk.json").unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut z = v["blockdevices"][0].clone();
    for (k, val) in [
        ("name", "zram0"),
        ("kname", "zram0"),
        ("path", "/dev/zram0"),
    ] {
        z[k] = serde_json::json!(val);
    }
    v["blockdevices"].as_array_mut().unwrap().push(z);
    let targets = TargetDisk::from_lsblk(&v.to_string()).unwrap();
    let names: Vec<&str> = targets.iter().map(|t| t.path.as_str()).collect();
    assert!(names.contains(&"/dev/vda"), "{names:?}");
    assert!(!names.contains(&"/dev/zram0"), "{names:?}");
}

/// A disk carrying the rescue ISO's volume id (a hybrid ISO written to a
/// USB stick) is the medium, not a target.
#[test]
fn the_rescue_medium_is_never_a_target() {
    let text = r#"{"blockdevices":[
      {"name":"sda","path":"/dev/sda","type":"disk","size":8589934592,"fstype":"iso9660","label":"MKRESCUE_DB1","mountpoints":[null]},
      {"name":"sdb","path":"/dev/sdb","type":"disk","size":8589934592,"mountpoints":[null]}]}"#;
    let used = mkrescue::recover::mapping::in_use_disks(text, "MKRESCUE_DB1").unwrap();
    assert_eq!(used.keys().collect::<Vec<_>>(), ["/dev/sda"]);
    assert!(used["/dev/sda"].contains("rescue medium"), "{used:?}");
}

/// The list recover's mapping errors end with, and what `mkrescue drill`
/// reads back from a console log to see which disks the rescue kernel
/// found.
#[test]
fn disks_here_line_names_each_disk_and_reads_back_its_serials() {
    let line = disks_here(&[
        t("/dev/vda", 20 * GIB, Some("DISK1")),
        t("/dev/sdb", 2 * GIB, None),
        t("/dev/nvme0n1", 20 * GIB, Some("S4EVNX0M")),
    ]);
    assert_eq!(
        line,
        "disks here: /dev/vda (20.0 GiB, serial DISK1), /dev/sdb (2.0 GiB), /dev/nvme0n1 (20.0 GiB, serial S4EVNX0M)"
    );
    let log = format!(
        "[   12.1] mkrescue: earlier\nmkrescue: disks here: none\nmkrescue: error: no target disk left for /dev/vdc (1.5 GiB): attach one or give --map /dev/vdc=DISK; nothing was changed; {line}\r\nmkrescue: next\n"
    );
    assert_eq!(serials_here(&log).unwrap(), ["DISK1", "S4EVNX0M"]);
    assert_eq!(
        serials_here("mkrescue: disks here: none\n").unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(disks_here(&[]), "disks here: none");
    assert!(serials_here("mkrescue: rescue system ready (3.1s)\n").is_none());
}
