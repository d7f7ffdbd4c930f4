//! Fitting the layout onto disks of another size (plan::fit), on the
//! layout of the e2e's raid1-lvm server (tests/fixtures/layout/
//! e2e-raid1-lvm.json: two 6 GiB disks, GPT bios_grub + ESP + md RAID1 ->
//! LVM vg0 with root ext4 3 GiB, home xfs 1.5 GiB, swap 256 MiB). That
//! file predates used bytes; the tests give its file systems some.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use mkrescue::config::Resize;
use mkrescue::error::{Code, code_of};
use mkrescue::layout::Layout;
use mkrescue::recover::plan::fit::{self, MIB, SWAP_MIN, disk_min, fs_need};
use mkrescue::recover::plan::{Options, Plan, plan};

const GIB: u64 = 1 << 30;
const E2E: &str = "tests/fixtures/layout/e2e-raid1-lvm.json";
/// The e2e disks: 6 GiB.
const DISK: u64 = 6 * GIB;
/// 60% of them, on a MiB (what `--disks smaller` gives the VM).
const SMALL: u64 = DISK * 6 / 10 / MIB * MIB;

fn e2e() -> Layout {
    Layout::load(Path::new(E2E)).unwrap()
}

/// The e2e layout with `root` and `home` bytes used on those file systems
/// and 5 MiB on each ESP.
fn with_used(root: u64, home: u64) -> Layout {
    let mut l = e2e();
    for f in &mut l.filesystems {
        f.used_bytes = match f.device.as_str() {
            "/dev/vg0/root" => Some(root),
            "/dev/vg0/home" => Some(home),
            "/dev/vda2" | "/dev/vdb2" => Some(5 * MIB),
            _ => None,
        };
    }
    l
}

fn nvme_map() -> BTreeMap<String, String> {
    [
        ("/dev/vda".to_string(), "/dev/nvme0n1".to_string()),
        ("/dev/vdb".to_string(), "/dev/nvme1n1".to_string()),
    ]
    .into()
}

fn opts(size: u64, resize: Resize) -> Options {
    Options {
        udev: false,
        key_file: None,
        work_dir: "/run/mkrescue/recover".into(),
        target_sizes: [
            ("/dev/nvme0n1".to_string(), size),
            ("/dev/nvme1n1".to_string(), size),
        ]
        .into(),
        resize,
    }
}

fn step<'a>(p: &'a Plan, id: &str) -> &'a mkrescue::recover::plan::Step {
    p.steps
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no step {id}"))
}

/// (start, size) in sectors of each partition line of the sfdisk script of
/// target `t`; size None when the line has none (to the end of the disk).
fn table(p: &Plan, t: &str) -> Vec<(u64, Option<u64>)> {
    let field = |l: &str, k: &str| {
        l.split(", ")
            .find_map(|f| {
                f.split_once(" : ")
                    .map(|x| x.1)
                    .unwrap_or(f)
                    .strip_prefix(k)
            })
            .map(|v| v.parse::<u64>().unwrap())
    };
    step(p, &format!("partition {t}"))
        .stdin
        .as_ref()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with(t))
        .map(|l| (field(l, "start=").unwrap(), field(l, "size=")))
        .collect()
}

/// The `--size=` of an lvcreate, in bytes.
fn lv_size(p: &Plan, lv: &str) -> u64 {
    step(p, &format!("lv {lv}"))
        .argv
        .iter()
        .find_map(|a| a.strip_prefix("--size=")?.strip_suffix('b'))
        .unwrap()
        .parse()
        .unwrap()
}

/// The `--size=` of mdadm --create, in bytes per member.
fn md_size(p: &Plan) -> u64 {
    step(p, "md /dev/md0")
        .argv
        .iter()
        .find_map(|a| a.strip_prefix("--size=")?.strip_suffix('K'))
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// The margin arithmetic: max(10%, 256 MiB) over the data, then what the
/// file system takes itself, and the floors.
#[test]
fn file_system_need_is_used_plus_margin_plus_overhead() {
    let l = e2e();
    let fs = |d: &str| l.filesystems.iter().find(|f| f.device == d).unwrap();
    // ext4, 1 GiB used: (1024 + 256 + 128 MiB) / 92%.
    let ext = fs_need(fs("/dev/vg0/root"), GIB);
    assert_eq!(ext, (1408 * MIB * 100).div_ceil(92));
    // 10 GiB used: the margin is 10%, 1 GiB.
    assert_eq!(
        fs_need(fs("/dev/vg0/root"), 10 * GIB),
        ((10 * GIB + GIB + 128 * MIB) * 100).div_ceil(92)
    );
    // xfs with little data and a small log: mkfs.xfs's 300 MiB floor.
    let mut small_log = fs("/dev/vg0/home").clone();
    small_log.xfs.as_mut().unwrap().log_size_blocks = 256;
    assert_eq!(fs_need(&small_log, 10 * MIB), 300 * MIB);
    // More data: its 64 MiB log and 3%.
    assert_eq!(
        fs_need(fs("/dev/vg0/home"), GIB),
        ((GIB + 256 * MIB + 64 * MIB) * 100).div_ceil(97)
    );
    let mut root = fs("/dev/vg0/root").clone();
    root.used_bytes = Some(GIB);
    assert_eq!(fit::fs_min(&root, 3 * GIB), ext);
    // Never more than it had: the data was held there before.
    assert_eq!(fit::fs_min(&root, GIB), GIB);
    // No used bytes recorded (an older layout): not shrunk at all.
    assert_eq!(fit::fs_min(fs("/dev/vg0/root"), 3 * GIB), 3 * GIB);
    // Swap: down to 128 MiB; vfat keeps its size.
    assert_eq!(fit::fs_min(fs("/dev/vg0/swap"), 256 * MIB), SWAP_MIN);
    assert_eq!(fit::fs_min(fs("/dev/vda2"), 200 * MIB), 200 * MIB);
}

/// The case: the raid1-lvm server onto two disks 60% of the
/// original size. Every piece shrinks, none below its data and margin;
/// bios_grub and the ESPs keep their size; both RAID members shrink alike.
#[test]
fn sixty_percent_disks_take_the_raid1_lvm_server() {
    let l = with_used(1200 * MIB, 100 * MIB);
    let p = plan(&l, &nvme_map(), &opts(SMALL, Resize::Last)).unwrap();
    let a = table(&p, "/dev/nvme0n1");
    let b = table(&p, "/dev/nvme1n1");
    assert_eq!(a, b, "md members shrink together");
    // bios_grub and ESP as recorded.
    assert_eq!(a[0], (2048, Some(2048)));
    assert_eq!(a[1], (4096, Some(409600)));
    let (start, size) = (a[2].0, a[2].1.unwrap());
    assert_eq!(start % 2048, 0, "1 MiB aligned");
    assert_eq!(size % 2048, 0, "1 MiB aligned");
    assert!(size < 12167168, "the RAID partition shrank: {size}");
    // It ends before the backup GPT.
    assert!((start + size + 33) * 512 <= SMALL, "{start}+{size}");
    // The array fits its members after their 5 MiB data offset.
    let md = md_size(&p);
    assert!(md + 10240 * 512 <= size * 512, "{md}");
    assert!(md < 6224347136);
    // The LVs fit the PV on it (1 MiB pe_start, 4 MiB extents) ...
    let (root, home, swap) = (
        lv_size(&p, "/dev/vg0/root"),
        lv_size(&p, "/dev/vg0/home"),
        lv_size(&p, "/dev/vg0/swap"),
    );
    for s in [root, home, swap] {
        assert_eq!(s % (4 * MIB), 0, "extent aligned: {s}");
    }
    assert!(
        root + home + swap <= md - MIB,
        "{root} {home} {swap} in {md}"
    );
    // ... and each holds its data with the margin.
    let fs = |d: &str| l.filesystems.iter().find(|f| f.device == d).unwrap();
    assert!(root >= fs_need(fs("/dev/vg0/root"), 1200 * MIB));
    assert!(home >= fs_need(fs("/dev/vg0/home"), 100 * MIB));
    assert!((SWAP_MIN..256 * MIB).contains(&swap), "{swap}");
    assert!(root < 3 * GIB && home < 1536 * MIB);
    // Every size chosen is said, old -> new.
    let said: Vec<String> = p.sizes.iter().map(|c| c.to_string()).collect();
    let has = |prefix: &str| said.iter().any(|s| s.starts_with(prefix));
    assert!(has("partition /dev/vda3: 5.8 GiB -> "), "{said:#?}");
    assert!(has("partition /dev/vdb3: 5.8 GiB -> "), "{said:#?}");
    assert!(has("md array /dev/md0: 5.8 GiB -> "), "{said:#?}");
    assert!(
        said.iter().any(
            |s| s.starts_with("logical volume /dev/vg0/root: 3.0 GiB -> ")
                && s.ends_with("(ext4, 1.2 GiB used)")
        ),
        "{said:#?}"
    );
    assert!(
        has("logical volume /dev/vg0/swap: 256.0 MiB -> "),
        "{said:#?}"
    );
    assert_eq!(said.len(), 6, "{said:#?}");
    let script = p.script("dry run");
    assert!(
        script.contains("\n# size logical volume /dev/vg0/home: 1.5 GiB -> "),
        "{script}"
    );
    assert!(
        step(&p, "partition /dev/nvme0n1")
            .what
            .contains("sizes fitted to the disk")
    );
}

/// Too much data for the disk: refused before any step, naming the layout
/// disk, the target, both sizes and the least that would do (exit 4).
#[test]
fn data_too_big_for_the_disk_is_refused_with_both_sizes() {
    let l = with_used(2900 * MIB, 1200 * MIB);
    let least = disk_min(&l, &l.disks[0]);
    assert!(least > SMALL && least < DISK, "{least}");
    let e = plan(&l, &nvme_map(), &opts(SMALL, Resize::Last)).unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.starts_with(&format!(
            "disk /dev/vda (6.0 GiB, needs at least {} for its data) does not fit on /dev/nvme0n1 (3.6 GiB)",
            mkrescue::layout::show::human(least)
        )),
        "{msg}"
    );
    assert!(msg.contains("nothing was changed"), "{msg}");
    assert_eq!(code_of(&e), Code::Host);
    // With a disk of exactly the least it needs, it fits.
    assert!(plan(&l, &nvme_map(), &opts(least, Resize::Last)).is_ok());
    assert!(plan(&l, &nvme_map(), &opts(least - MIB, Resize::Last)).is_err());
}

/// A layout without used bytes (saved by an older mkrescue): its file
/// systems keep their recorded sizes; only the VG's free space and swap
/// can go, which is not enough for 60%.
#[test]
fn old_layout_without_used_bytes_keeps_its_file_systems() {
    let l = e2e();
    let least = disk_min(&l, &l.disks[0]);
    // bios_grub + ESP from sector 2048, the LVs (swap at 128 MiB), the PV's
    // and the array's overhead.
    assert!(least >= (2048 + 2048 + 409600) * 512 + (3072 + 1536 + 128) * MIB);
    assert!(least < mkrescue::recover::mapping::needed_bytes(&l.disks[0]));
    let e = plan(&l, &nvme_map(), &opts(SMALL, Resize::Last)).unwrap_err();
    assert!(format!("{e:#}").contains("does not fit on /dev/nvme0n1"));
    let p = plan(&l, &nvme_map(), &opts(least, Resize::Last)).unwrap();
    assert_eq!(lv_size(&p, "/dev/vg0/root"), 3 * GIB);
    assert_eq!(lv_size(&p, "/dev/vg0/home"), 1536 * MIB);
}

/// Twice the disk, `resize = "proportional"`: the RAID partition, the
/// array and the file systems' LVs grow in proportion; bios_grub, the
/// ESPs and swap keep their size.
#[test]
fn proportional_growth_grows_everything_that_holds_data() {
    let l = with_used(1200 * MIB, 100 * MIB);
    let p = plan(&l, &nvme_map(), &opts(2 * DISK, Resize::Proportional)).unwrap();
    let a = table(&p, "/dev/nvme0n1");
    assert_eq!(a[0], (2048, Some(2048)));
    assert_eq!(a[1], (4096, Some(409600)));
    let size = a[2].1.unwrap();
    // About twice, on a MiB, within the disk.
    assert!(
        size > 2 * 12167168 - 4096 && size <= 2 * 12167168 + 413696,
        "{size}"
    );
    assert!((a[2].0 + size + 33) * 512 <= 2 * DISK);
    let md = md_size(&p);
    assert!(md > 2 * 6224347136 - 16 * MIB, "{md}");
    let root = lv_size(&p, "/dev/vg0/root");
    let home = lv_size(&p, "/dev/vg0/home");
    assert_eq!(lv_size(&p, "/dev/vg0/swap"), 256 * MIB);
    // In proportion: root and home grow by the same factor (to an extent).
    let (fr, fh) = (
        root as f64 / (3 * GIB) as f64,
        home as f64 / (1536 * MIB) as f64,
    );
    assert!((fr - fh).abs() < 0.01, "{fr} {fh}");
    assert!(fr > 1.8, "{fr}");
    assert!(root + home + 256 * MIB <= md - MIB);
}

/// Twice the disk, `last` (the default) and `none`: `last` gives the RAID
/// partition the rest of the disk and keeps the array's recorded size;
/// `none` keeps every recorded size.
#[test]
fn last_and_none_on_a_bigger_disk() {
    let l = with_used(1200 * MIB, 100 * MIB);
    let p = plan(&l, &nvme_map(), &opts(2 * DISK, Resize::Last)).unwrap();
    assert_eq!(table(&p, "/dev/nvme0n1")[2], (413696, None));
    assert_eq!(md_size(&p), 6224347136 / 1024 * 1024);
    assert_eq!(lv_size(&p, "/dev/vg0/root"), 3 * GIB);
    let said: Vec<String> = p.sizes.iter().map(|c| c.to_string()).collect();
    assert_eq!(
        said,
        [
            "partition /dev/vda3: 5.8 GiB -> 11.8 GiB (grown to the end of /dev/nvme0n1; member of /dev/md0)",
            "partition /dev/vdb3: 5.8 GiB -> 11.8 GiB (grown to the end of /dev/nvme1n1; member of /dev/md0)",
        ]
    );
    let p = plan(&l, &nvme_map(), &opts(2 * DISK, Resize::None)).unwrap();
    assert_eq!(table(&p, "/dev/nvme0n1")[2], (413696, Some(12167168)));
    assert_eq!(lv_size(&p, "/dev/vg0/root"), 3 * GIB);
    assert!(p.sizes.is_empty(), "{:?}", p.sizes);
}

/// `recover --dry-run --lsblk F` plans for the disks F lists: the e2e
/// layout onto two NVMe disks of 60% shows every size it chose; too much
/// data is one error line with both sizes, exit 4, and no plan.
#[test]
fn dry_run_onto_smaller_nvme_disks_says_every_size() {
    let dir = tempfile::tempdir().unwrap();
    let lsblk = dir.path().join("lsblk.json");
    // What `lsblk --json --bytes -O` prints for two blank NVMe disks
    // (only the columns mkrescue reads).
    let disk = |name: &str, serial: &str| {
        serde_json::json!({
            "name": name, "path": format!("/dev/{name}"), "type": "disk",
            "size": SMALL, "log-sec": 512, "phy-sec": 512, "serial": serial,
            "rm": false, "ro": false, "tran": "nvme", "mountpoints": [null]
        })
    };
    std::fs::write(
        &lsblk,
        serde_json::json!({"blockdevices": [disk("nvme0n1", "NEW1"), disk("nvme1n1", "NEW2")]})
            .to_string(),
    )
    .unwrap();
    // As in a rescue system (no warning about that).
    std::fs::create_dir_all(dir.path().join("etc/mkrescue")).unwrap();
    std::fs::write(dir.path().join("etc/mkrescue/host.json"), "{}").unwrap();
    let run_with = |l: &Layout, extra: &[&str]| {
        let f = dir.path().join("layout.json");
        std::fs::write(&f, l.to_json()).unwrap();
        Command::new(env!("CARGO_BIN_EXE_mkrescue"))
            .args(["recover", "--dry-run", "--unattended", "--layout-only"])
            .args(extra)
            .arg("--lsblk")
            .arg(&lsblk)
            .arg("--layout")
            .arg(&f)
            .arg("--root")
            .arg(dir.path())
            .args(["--config-dir", "/nonexistent-mkrescue-test"])
            .env_remove("MKRESCUE_ROOT")
            .output()
            .unwrap()
    };
    let run = |l: &Layout| run_with(l, &[]);
    let out = run(&with_used(1200 * MIB, 100 * MIB));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let script = String::from_utf8_lossy(&out.stdout);
    for line in [
        "# disk /dev/vda -> /dev/nvme0n1 (",
        "# size partition /dev/vda3: 5.8 GiB -> ",
        "# size partition /dev/vdb3: 5.8 GiB -> ",
        "# size md array /dev/md0: 5.8 GiB -> ",
        "# size logical volume /dev/vg0/root: 3.0 GiB -> ",
        "# size logical volume /dev/vg0/home: 1.5 GiB -> ",
        "# size logical volume /dev/vg0/swap: 256.0 MiB -> ",
    ] {
        assert!(
            script.lines().any(|l| l.starts_with(line)),
            "no line {line:?} in:\n{script}"
        );
    }
    assert!(
        script.contains("/dev/nvme0n1p3 : start=413696, size="),
        "{script}"
    );
    // --json: the same sizes as data.
    let out = run_with(&with_used(1200 * MIB, 100 * MIB), &["--json"]);
    assert_eq!(out.status.code(), Some(0));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sizes = j["sizes"].as_array().unwrap();
    assert_eq!(sizes.len(), 6, "{sizes:?}");
    let root = sizes
        .iter()
        .find(|c| c["device"] == "/dev/vg0/root")
        .unwrap();
    assert_eq!(root["kind"], "logical volume");
    assert_eq!(root["old"], 3 * GIB);
    assert!(root["new"].as_u64().unwrap() < 3 * GIB);
    // Too much data: refused at the mapping, before any plan.
    let out = run(&with_used(2900 * MIB, 1200 * MIB));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("mkrescue: error: no disk large enough for /dev/vd"),
        "{err}"
    );
    assert!(err.contains("(6.0 GiB, needs at least "), "{err}");
    assert!(err.contains("has 3.6 GiB"), "{err}");
    assert!(out.stdout.is_empty(), "a plan was printed");
    // --lsblk is for planning only.
    let out = Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .args(["recover", "--unattended", "--lsblk"])
        .arg(&lsblk)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Layout 2 (two 1.5 GiB disks, 784 MiB of LVs in a 1.5 GiB VG, no used
/// bytes recorded) onto 1 GiB disks: the VG's free space goes, every LV
/// keeps its size.
#[test]
fn free_space_in_a_vg_is_not_data() {
    let l = Layout::load(Path::new("tests/fixtures/layout/layout2.json")).unwrap();
    let map: BTreeMap<String, String> = [
        ("/dev/vdc".to_string(), "/dev/sda".to_string()),
        ("/dev/vdd".to_string(), "/dev/sdb".to_string()),
    ]
    .into();
    let mut o = opts(GIB, Resize::None);
    o.target_sizes = [("/dev/sda".to_string(), GIB), ("/dev/sdb".to_string(), GIB)].into();
    let p = plan(&l, &map, &o).unwrap();
    for lv in &l.lvm.lvs {
        assert_eq!(lv_size(&p, &lv.path()), lv.size, "{}", lv.path());
    }
    let kinds: Vec<&str> = p.sizes.iter().map(|c| c.kind).collect();
    assert_eq!(
        kinds,
        ["partition", "partition", "md array"],
        "{:?}",
        p.sizes
    );
    assert!(md_size(&p) < l.md[0].size);
}

/// The plan for the 60% disks as the dry run prints it: a snapshot, so a
/// change of any size or command shows as a diff.
#[test]
fn dry_run_script_for_sixty_percent_disks() {
    let l = with_used(1200 * MIB, 100 * MIB);
    // `resize` is about bigger disks: a smaller one is fitted whatever it says.
    let none = plan(&l, &nvme_map(), &opts(SMALL, Resize::None)).unwrap();
    let p = plan(&l, &nvme_map(), &opts(SMALL, Resize::Proportional)).unwrap();
    assert_eq!(none, p);
    insta::assert_snapshot!(p.script("mkrescue recover --dry-run: e2e raid1-lvm on 60% disks"));
}

/// A layout file whose devices stack in a circle (a PV on an LV of its own
/// VG: no real host has it) gets an answer, not a stack overflow.
#[test]
fn a_circle_in_the_layout_ends() {
    let mut l = with_used(1200 * MIB, 100 * MIB);
    let mut pv = l.lvm.pvs[0].clone();
    pv.device = "/dev/vg0/root".into();
    l.lvm.pvs.push(pv);
    l.lvm.vgs[0].pvs.push("/dev/vg0/root".into());
    let least = disk_min(&l, &l.disks[0]);
    assert!(least > 0 && least <= DISK, "{least}");
    let _ = plan(&l, &nvme_map(), &opts(SMALL, Resize::Proportional));
}

/// The classic single disk: MBR, ext4 root (5 GiB used) and swap
/// partitions on 20 GiB, onto 8 GiB: both shrink on 1 MiB boundaries;
/// onto 4 GiB it is refused with the line.
#[test]
fn mbr_root_and_swap_partitions_onto_a_smaller_disk() {
    let l = Layout::from_json(
        &serde_json::json!({
            "schema_version": 1, "host": "classic", "captured_at": 0,
            "mkrescue_version": "0", "disks": [{
                "path": "/dev/sda", "size": 20 * GIB, "logical_sector_size": 512,
                "physical_sector_size": 512, "table": "msdos", "disk_id": "0x1234abcd",
                "partitions": [
                    {"number": 1, "path": "/dev/sda1", "start": 2048,
                     "size": 18 * GIB / 512, "type": "83", "flags": ["boot"]},
                    {"number": 2, "path": "/dev/sda2", "start": 2048 + 18 * GIB / 512,
                     "size": 2 * GIB / 512 - 4096, "type": "82", "flags": ["swap"]}
                ]}],
            "filesystems": [
                {"device": "/dev/sda1", "type": "ext4", "used_bytes": 5 * GIB},
                {"device": "/dev/sda2", "type": "swap"}
            ],
            "mounts": [{"target": "/", "source": "/dev/sda1", "fstype": "ext4",
                        "options": "rw"}]
        })
        .to_string(),
    )
    .unwrap();
    let map: BTreeMap<String, String> = [("/dev/sda".to_string(), "/dev/sdb".to_string())].into();
    let mut o = opts(0, Resize::Last);
    o.target_sizes = [("/dev/sdb".to_string(), 8 * GIB)].into();
    let p = plan(&l, &map, &o).unwrap();
    let t = table(&p, "/dev/sdb");
    let (root, swap) = (t[0].1.unwrap(), t[1].1.unwrap());
    assert_eq!(t[0].0, 2048);
    assert_eq!(t[1].0, 2048 + root, "swap follows root");
    assert_eq!((root % 2048, swap % 2048), (0, 0));
    assert!((t[1].0 + swap) * 512 <= 8 * GIB);
    let fs = &l.filesystems[0];
    assert!(root * 512 >= fs_need(fs, 5 * GIB), "{root}");
    assert!(swap * 512 >= SWAP_MIN && swap * 512 < 2 * GIB, "{swap}");
    // The boot flag and types stay.
    let script = step(&p, "partition /dev/sdb").stdin.clone().unwrap();
    assert!(script.contains("type=83, bootable"), "{script}");
    // 4 GiB: less than 5 GiB of data.
    o.target_sizes = [("/dev/sdb".to_string(), 4 * GIB)].into();
    let e = plan(&l, &map, &o).unwrap_err();
    let need = mkrescue::layout::show::human(disk_min(&l, &l.disks[0]));
    assert_eq!(
        format!("{e:#}"),
        format!(
            "disk /dev/sda (20.0 GiB, needs at least {need} for its data) does not fit on /dev/sdb (4.0 GiB); attach a disk of at least that size or give --map /dev/sda=DISK; nothing was changed"
        )
    );
}

/// The used bytes are those of the rescue image's build, which may be
/// months before the backup: where the backup puts more on a file system
/// (its bytes in 4 KiB blocks per mount point), the fit takes that, says
/// so, and refuses a disk too small for it; where it puts less, the
/// recorded bytes stay.
#[test]
fn a_backup_bigger_than_the_recorded_used_bytes_sets_the_size() {
    let l = with_used(1200 * MIB, 100 * MIB);
    let by_mount: BTreeMap<String, u64> = [
        ("/".to_string(), 2 * GIB + 5 * MIB),
        ("/home".to_string(), 50 * MIB),
    ]
    .into();
    let (raised, lines) = fit::with_backup(&l, &by_mount, "web1-20261206T0100Z");
    let used = |l: &Layout, d: &str| {
        l.filesystems
            .iter()
            .find(|f| f.device == d)
            .unwrap()
            .used_bytes
    };
    // Raised to the backup's, rounded up to the layout's 64 MiB unit.
    assert_eq!(used(&raised, "/dev/vg0/root"), Some(2 * GIB + 64 * MIB));
    assert_eq!(used(&raised, "/dev/vg0/home"), Some(100 * MIB));
    assert_eq!(used(&raised, "/dev/vda2"), Some(5 * MIB));
    assert_eq!(
        lines,
        [
            "used: /dev/vg0/root (/) holds 2.0 GiB in backup web1-20261206T0100Z, more than the 1.2 GiB recorded with the layout: its size is fitted to 2.1 GiB"
        ]
    );
    // The root LV the 60% disks get holds the backup's data and margin.
    let before = plan(&l, &nvme_map(), &opts(SMALL, Resize::Last)).unwrap();
    let after = plan(&raised, &nvme_map(), &opts(SMALL, Resize::Last)).unwrap();
    let root_fs = raised
        .filesystems
        .iter()
        .find(|f| f.device == "/dev/vg0/root")
        .unwrap();
    assert!(lv_size(&after, "/dev/vg0/root") >= fs_need(root_fs, 2 * GIB + 64 * MIB));
    assert!(lv_size(&after, "/dev/vg0/root") > lv_size(&before, "/dev/vg0/root"));
    // More than the small disks hold: refused before anything, as for
    // recorded bytes.
    let huge: BTreeMap<String, u64> = [("/".to_string(), 3 * GIB)].into();
    let (too_big, _) = fit::with_backup(&l, &huge, "b");
    let e = plan(&too_big, &nvme_map(), &opts(SMALL, Resize::Last)).unwrap_err();
    assert_eq!(code_of(&e), Code::Host, "{e:#}");
    // A backup with less than recorded, or a file system without used
    // bytes (an older layout): unchanged, nothing said.
    let (same, lines) = fit::with_backup(&l, &[("/".to_string(), GIB)].into(), "b");
    assert_eq!((same, lines.len()), (l.clone(), 0));
    let old = e2e();
    let (same, lines) = fit::with_backup(&old, &by_mount, "b");
    assert_eq!((same, lines.len()), (old, 0));
    // A mount point listed twice counts once.
    let mut twice = l.clone();
    let root_mount = twice
        .mounts
        .iter()
        .find(|m| m.target == "/")
        .unwrap()
        .clone();
    twice.mounts.push(root_mount);
    let (raised2, lines2) = fit::with_backup(&twice, &by_mount, "web1-20261206T0100Z");
    assert_eq!(used(&raised2, "/dev/vg0/root"), Some(2 * GIB + 64 * MIB));
    assert_eq!(lines2.len(), 1, "{lines2:?}");
    // An ESP keeps its size whatever it holds: not raised, nothing said
    // (the e2e's ESP, empty at save time, recorded 0 B).
    let esp: BTreeMap<String, u64> = [("/boot/efi".to_string(), 100 * MIB)].into();
    let (same, lines) = fit::with_backup(&l, &esp, "b");
    assert_eq!((same, lines.len()), (l.clone(), 0));
}
