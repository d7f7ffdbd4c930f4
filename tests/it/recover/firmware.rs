//! Firmware conversion (plan::firmware, issue 18 item 1): a BIOS server's
//! layout recovered under UEFI gets an ESP, a UEFI-only GPT server's
//! under BIOS a bios_grub partition; `--firmware auto` follows the rescue
//! system; no room is one line with the sizes. The partition tables are
//! written with sfdisk onto image files (sfdisk partitions a regular file
//! as it does a disk; no loop device, no disk of this machine).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use mkrescue::config::Resize;
use mkrescue::error::{Code, code_of};
use mkrescue::layout::{Flag, Layout, Table};
use mkrescue::recover::plan::firmware::{self, BIOS_GRUB_GPT, ESP_GPT, ESP_SIZE, Target};
use mkrescue::recover::plan::fit::{MIB, disk_min};
use mkrescue::recover::plan::{Options, Plan, plan};

const GIB: u64 = 1 << 30;

/// The classic BIOS server: one MBR disk of 20 GiB, an active ext4 root
/// partition (5 GiB used) and swap, no ESP (the shape Debian's installer
/// gives under SeaBIOS; the e2e bios-mbr scenario's server).
fn bios_mbr(root_used: u64) -> Layout {
    Layout::from_json(
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
                {"device": "/dev/sda1", "type": "ext4", "used_bytes": root_used,
                 "uuid": "0b8a5d0e-3f4b-4a43-9d35-1b1d1c3f0a11"},
                {"device": "/dev/sda2", "type": "swap"}
            ],
            "mounts": [{"target": "/", "source": "/dev/sda1", "fstype": "ext4",
                        "options": "rw"}]
        })
        .to_string(),
    )
    .unwrap()
}

/// The e2e raid1-lvm server as a UEFI-only one: its bios_grub partitions
/// removed (two GPT disks, ESP at 2 MiB, md RAID1 member after it).
fn uefi_only() -> Layout {
    let mut l = Layout::load(Path::new("tests/fixtures/layout/e2e-raid1-lvm.json")).unwrap();
    for d in &mut l.disks {
        d.partitions.retain(|p| !p.flags.contains(&Flag::BiosGrub));
    }
    l
}

fn sda_to_sdb() -> BTreeMap<String, String> {
    [("/dev/sda".to_string(), "/dev/sdb".to_string())].into()
}

fn opts(sizes: &[(&str, u64)], resize: Resize) -> Options {
    Options {
        udev: false,
        key_file: None,
        work_dir: "/run/mkrescue/recover".into(),
        target_sizes: sizes.iter().map(|(d, s)| (d.to_string(), *s)).collect(),
        resize,
    }
}

/// The conversion for `target`, then the plan of the converted layout, as
/// recover makes them.
fn converted(
    l: &Layout,
    map: &BTreeMap<String, String>,
    o: &Options,
    target: Target,
) -> (firmware::Conversion, Plan) {
    let c = firmware::convert(l, map, &o.target_sizes, target).unwrap();
    let p = plan(&c.layout, map, o).unwrap();
    (c, p)
}

fn sfdisk_script(p: &Plan, disk: &str) -> String {
    p.steps
        .iter()
        .find(|s| s.id == format!("partition {disk}"))
        .and_then(|s| s.stdin.clone())
        .unwrap_or_else(|| panic!("no partition step for {disk}"))
}

/// Writes `script` with sfdisk onto a sparse image file of `size` bytes
/// and reads the table back (`sfdisk --json`): what the disk would hold.
fn written_table(script: &str, size: u64) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    std::fs::File::create(&img).unwrap().set_len(size).unwrap();
    let mut child = Command::new("sfdisk")
        .args([
            "--quiet",
            "--wipe",
            "always",
            "--no-reread",
            "--no-tell-kernel",
        ])
        .arg(&img)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sfdisk");
    // The script names the target's partition nodes (/dev/sdb1): sfdisk
    // takes the number from the end of the name, whatever the disk.
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sfdisk refused the script:\n{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("sfdisk")
        .arg("--json")
        .arg(&img)
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// (number, start, size, type) of each partition sfdisk read back.
fn parts(t: &serde_json::Value) -> Vec<(u32, u64, u64, String)> {
    t["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let node = p["node"].as_str().unwrap();
            let n: u32 = node
                .rsplit(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap();
            (
                n,
                p["start"].as_u64().unwrap(),
                p["size"].as_u64().unwrap(),
                p["type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A BIOS/MBR server onto a UEFI machine with a disk of its size: the ESP
/// is a new primary partition of type 0xef made room for by shrinking
/// root and swap; the disk stays MBR with its identifier; sfdisk writes
/// it and the other partitions are where the plan put them.
#[test]
fn bios_mbr_for_uefi_gets_a_type_ef_esp_on_the_same_size_disk() {
    let l = bios_mbr(5 * GIB);
    let o = opts(&[("/dev/sdb", 20 * GIB)], Resize::Last);
    let (c, p) = converted(&l, &sda_to_sdb(), &o, Target::Uefi);
    let d = &c.layout.disks[0];
    assert_eq!(d.table, Table::Msdos, "MBR kept");
    let esp = d.partitions.iter().find(|p| p.number == 3).unwrap();
    assert_eq!((esp.type_.as_str(), esp.size * 512), ("ef", ESP_SIZE));
    assert_eq!(esp.flags, [Flag::Esp]);
    assert_eq!(c.lines.len(), 1, "{:?}", c.lines);
    assert!(
        c.lines[0].starts_with("firmware: EFI system partition /dev/sda3 (512.0 MiB, MBR type 0xef, the disk stays MBR) added on /dev/sdb, room made by shrinking"),
        "{}",
        c.lines[0]
    );
    // The file system, its mount and its fstab line.
    let fs = c
        .layout
        .filesystems
        .iter()
        .find(|f| f.device == "/dev/sda3")
        .unwrap();
    let uuid = fs.uuid.clone().unwrap();
    assert_eq!((fs.fstype.as_str(), uuid.len()), ("vfat", 9), "{uuid}");
    assert_eq!(
        c.fstab,
        [format!("UUID={uuid} /boot/efi vfat umask=0077 0 1")]
    );
    assert!(
        c.layout
            .mounts
            .iter()
            .any(|m| m.target == "/boot/efi" && m.source == "/dev/sda3")
    );
    // The same run again (a recover re-run after a failure) names the
    // same file system.
    let again = firmware::convert(&l, &sda_to_sdb(), &o.target_sizes, Target::Uefi).unwrap();
    assert_eq!(again.fstab, c.fstab);
    // The plan: the sizes root and swap gave, the ESP's mkfs.
    let kinds: Vec<&str> = p.sizes.iter().map(|s| s.device.as_str()).collect();
    assert_eq!(kinds, ["/dev/sda1", "/dev/sda2"]);
    let mkfs = p.steps.iter().find(|s| s.id == "mkfs /dev/sdb3").unwrap();
    assert_eq!(
        mkfs.argv,
        [
            "mkfs.vfat".to_string(),
            "-F32".into(),
            format!("-i{}", uuid.replace('-', "")),
            "/dev/sdb3".into()
        ]
    );
    // Onto an image of the target's size: three partitions, the planned
    // ones, the ESP of type ef after the others.
    let script = sfdisk_script(&p, "/dev/sdb");
    let t = written_table(&script, 20 * GIB);
    assert_eq!(t["partitiontable"]["label"], "dos");
    assert_eq!(t["partitiontable"]["id"], "0x1234abcd");
    let got = parts(&t);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        (got[2].0, got[2].2 * 512, got[2].3.as_str()),
        (3, ESP_SIZE, "ef")
    );
    assert_eq!((got[0].0, got[0].1, got[0].3.as_str()), (1, 2048, "83"));
    assert_eq!((got[1].0, got[1].3.as_str()), (2, "82"));
    assert!(got[0].1 + got[0].2 <= got[1].1 && got[1].1 + got[1].2 <= got[2].1);
    assert!((got[2].1 + got[2].2) * 512 <= 20 * GIB);
    let root = got[0].2 * 512;
    assert!(root >= mkrescue::recover::plan::fit::fs_need(&l.filesystems[0], 5 * GIB));
    assert!(t["partitiontable"]["partitions"][0]["bootable"] == true);
}

/// On a bigger disk the ESP takes the end of the disk and nothing
/// shrinks; `resize = "last"` grows the last partition up to the ESP.
#[test]
fn on_a_bigger_disk_the_esp_comes_from_the_free_end() {
    let l = bios_mbr(5 * GIB);
    let o = opts(&[("/dev/sdb", 30 * GIB)], Resize::Last);
    let (c, p) = converted(&l, &sda_to_sdb(), &o, Target::Uefi);
    assert!(
        c.lines[0].contains("from the free space at the end of the disk"),
        "{}",
        c.lines[0]
    );
    let t = parts(&written_table(&sfdisk_script(&p, "/dev/sdb"), 30 * GIB));
    assert_eq!(t[2].1 + t[2].2, 30 * GIB / 512, "ESP ends the disk: {t:?}");
    assert_eq!(t[1].1 + t[1].2, t[2].1, "swap grown up to the ESP: {t:?}");
    assert_eq!(t[0].2, 18 * GIB / 512, "root as recorded");
    let o = opts(&[("/dev/sdb", 30 * GIB)], Resize::None);
    let (_, p) = converted(&l, &sda_to_sdb(), &o, Target::Uefi);
    assert!(p.sizes.is_empty(), "{:?}", p.sizes);
}

/// Four primary partitions leave no MBR slot: the disk becomes GPT with
/// its numbers and places, types mapped, and the ESP is partition 5.
#[test]
fn a_full_mbr_becomes_gpt_with_its_numbers_kept() {
    let mut l = bios_mbr(5 * GIB);
    let d = &mut l.disks[0];
    d.partitions[0].size -= 2 * GIB / 512;
    let s = d.partitions[0].start + d.partitions[0].size;
    for (n, ty) in [(3u32, "fd"), (4, "8e")] {
        d.partitions.push(mkrescue::layout::Partition {
            number: n,
            path: format!("/dev/sda{n}"),
            start: s + (n as u64 - 3) * (GIB / 512),
            size: GIB / 512,
            type_: ty.into(),
            uuid: None,
            name: None,
            attrs: None,
            flags: vec![],
        });
    }
    d.partitions.sort_by_key(|p| p.start);
    let o = opts(&[("/dev/sdb", 20 * GIB)], Resize::Last);
    let (c, p) = converted(&l, &sda_to_sdb(), &o, Target::Uefi);
    assert!(
        c.lines[0].starts_with("firmware: disk /dev/sda (MBR) becomes GPT on /dev/sdb: all four primary MBR slots are taken; partition numbers kept, PARTUUID= names of the old disk identifier 0x1234abcd change"),
        "{}",
        c.lines[0]
    );
    let t = written_table(&sfdisk_script(&p, "/dev/sdb"), 20 * GIB);
    assert_eq!(t["partitiontable"]["label"], "gpt");
    let mut got = parts(&t);
    got.sort_by_key(|p| p.0);
    // Each old partition where the plan put it, the ESP after them.
    let esp = got[4].1;
    assert!(got[..4].iter().all(|p| p.1 + p.2 <= esp), "{got:?}");
    let types: Vec<(u32, &str)> = got.iter().map(|p| (p.0, p.3.as_str())).collect();
    assert_eq!(
        types,
        [
            (1, "0FC63DAF-8483-4772-8E79-3D69D8477DE4"),
            (2, "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"),
            (3, "A19D880F-05FC-4D3B-A006-743F0F84911E"),
            (4, "E6D6D379-F507-44C2-A23C-238F2A3DF928"),
            (5, ESP_GPT),
        ]
    );
}

/// A UEFI-only GPT server onto a BIOS machine: a bios_grub partition in
/// the gap before the ESP (sectors 34..4095), on both RAID1 disks; sfdisk
/// takes it (the table's first-lba is 34) and nothing else moves.
#[test]
fn uefi_only_gpt_for_bios_gets_bios_grub_in_the_gap() {
    let l = uefi_only();
    let map: BTreeMap<String, String> = [
        ("/dev/vda".to_string(), "/dev/sda".to_string()),
        ("/dev/vdb".to_string(), "/dev/sdb".to_string()),
    ]
    .into();
    let six = 6 * GIB;
    let o = opts(&[("/dev/sda", six), ("/dev/sdb", six)], Resize::None);
    let (c, p) = converted(&l, &map, &o, Target::Bios);
    assert_eq!(c.lines.len(), 2, "{:?}", c.lines);
    assert_eq!(
        c.lines[0],
        "firmware: bios_grub partition /dev/vda4 (2.0 MiB) added on /dev/sda, in the gap before the first partition (sectors 34..4095); GRUB for BIOS (i386-pc) is installed on /dev/sda"
    );
    assert!(c.fstab.is_empty());
    let script = sfdisk_script(&p, "/dev/sda");
    assert!(script.contains("first-lba: 34\n"), "{script}");
    let got = parts(&written_table(&script, six));
    let want: Vec<(u32, u64, u64)> = l.disks[0]
        .partitions
        .iter()
        .map(|p| (p.number, p.start, p.size))
        .chain([(4, 34, 4062)])
        .collect();
    let mut have: Vec<(u32, u64, u64)> = got.iter().map(|p| (p.0, p.1, p.2)).collect();
    let mut want = want;
    want.sort_by_key(|x| x.1);
    have.sort_by_key(|x| x.1);
    assert_eq!(have, want);
    let bios_grub = got.iter().find(|p| p.0 == 4).unwrap();
    assert_eq!(bios_grub.3, BIOS_GRUB_GPT);
    // finalize installs GRUB for BIOS on both: they now have bios_grub.
    let bios = mkrescue::recover::finalize::bios_disks(&c.layout, &map);
    assert_eq!(bios, ["/dev/sda", "/dev/sdb"]);
    // The layout as recorded (bios_grub and ESP) needs nothing for either.
    let full = Layout::load(Path::new("tests/fixtures/layout/e2e-raid1-lvm.json")).unwrap();
    for t in [Target::Bios, Target::Uefi] {
        let c = firmware::convert(&full, &map, &o.target_sizes, t).unwrap();
        assert!(c.lines.is_empty() && c.layout == full, "{t}: {:?}", c.lines);
    }
}

/// A disk whose data fits but not with the ESP: refused before any step,
/// one line with the disk, both sizes and the way out (exit 4).
#[test]
fn no_room_for_the_esp_is_one_line_with_the_sizes() {
    let l = bios_mbr(16 * GIB);
    let least = disk_min(&l, &l.disks[0]);
    let size = least.div_ceil(MIB) * MIB + 100 * MIB;
    let e = firmware::convert(
        &l,
        &sda_to_sdb(),
        &[("/dev/sdb".to_string(), size)].into(),
        Target::Uefi,
    )
    .unwrap_err();
    let msg = format!("{e:#}");
    assert_eq!(code_of(&e), Code::Host);
    assert!(!msg.contains('\n'), "{msg}");
    let human = mkrescue::layout::show::human;
    assert!(
        msg.starts_with(&format!(
            "no room for a 512 MiB EFI system partition on /dev/sdb ({}): disk /dev/sda needs at least {} for its data, ",
            human(size),
            human(least)
        )),
        "{msg}"
    );
    assert!(
        msg.ends_with(
            "with it; attach a bigger disk, or recover with --firmware bios; nothing was changed"
        ),
        "{msg}"
    );
    // Under BIOS the same disk is fine.
    firmware::convert(
        &l,
        &sda_to_sdb(),
        &[("/dev/sdb".to_string(), size)].into(),
        Target::Bios,
    )
    .unwrap();
}

/// `recover --dry-run`: `--firmware uefi` (and `auto` in a rescue system
/// booted by UEFI) shows the choice, the ESP's partition, mkfs.vfat,
/// mount, fstab line and GRUB for UEFI; `auto` booted by BIOS adds
/// nothing; `--json` carries the lines.
#[test]
fn dry_run_says_the_firmware_and_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let lsblk = dir.path().join("lsblk.json");
    std::fs::write(
        &lsblk,
        serde_json::json!({"blockdevices": [{
            "name": "sdb", "path": "/dev/sdb", "type": "disk", "size": 20 * GIB,
            "log-sec": 512, "phy-sec": 512, "serial": "NEW1", "rm": false,
            "ro": false, "tran": "sata", "mountpoints": [null]
        }]})
        .to_string(),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("etc/mkrescue")).unwrap();
    std::fs::write(dir.path().join("etc/mkrescue/host.json"), "{}").unwrap();
    let layout = dir.path().join("layout.json");
    std::fs::write(&layout, bios_mbr(5 * GIB).to_json()).unwrap();
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_mkrescue"))
            .args(["recover", "--dry-run", "--unattended"])
            .args(["--restore-from", "file:///backup"])
            .args(extra)
            .arg("--lsblk")
            .arg(&lsblk)
            .arg("--layout")
            .arg(&layout)
            .arg("--root")
            .arg(dir.path())
            .args(["--config-dir", "/nonexistent-mkrescue-test"])
            .env_remove("MKRESCUE_ROOT")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{err}");
        String::from_utf8(out.stdout).unwrap()
    };
    let uefi_lines = |script: &str, why: &str| {
        let want =
            format!("# firmware: uefi ({why}; the layout's system booted by BIOS: converting)");
        assert!(
            script.lines().any(|l| l == want),
            "no {want:?} in:\n{script}"
        );
        for line in [
            "# firmware: EFI system partition /dev/sda3 (512.0 MiB, MBR type 0xef, the disk stays MBR) added on /dev/sdb",
            "# size partition /dev/sda1: 18.0 GiB -> ",
            "/dev/sdb3 : start=",
            "mkfs.vfat -F32 -i",
            "mount -t vfat -o umask=0077 /dev/sdb3 /mnt/target/boot/efi",
            "#   UUID=",
            "chroot /mnt/target grub-install --target=x86_64-efi --efi-directory=/boot/efi",
            // Made again for the other platform (boot_menu = auto).
            "chroot /mnt/target grub-mkconfig -o /boot/grub/grub.cfg",
        ] {
            assert!(
                script.lines().any(|l| l.starts_with(line)),
                "no line {line:?} in:\n{script}"
            );
        }
        assert!(
            script.contains(" /boot/efi vfat umask=0077 0 1\n"),
            "{script}"
        );
    };
    uefi_lines(&run(&["--firmware", "uefi"]), "--firmware uefi");
    // auto, booted by BIOS: the layout as it is.
    let bios = run(&[]);
    assert!(
        bios.lines().any(|l| l
            == "# firmware: bios (the rescue system booted by BIOS; the layout's system booted by BIOS: nothing to add)"),
        "{bios}"
    );
    assert!(!bios.contains("vfat"), "{bios}");
    assert!(
        bios.contains("\n# chroot /mnt/target grub-mkconfig"),
        "grub.cfg kept when nothing was converted: {bios}"
    );
    // auto, booted by UEFI (the kernel's efivars directory).
    std::fs::create_dir_all(dir.path().join("sys/firmware/efi")).unwrap();
    uefi_lines(&run(&[]), "the rescue system booted by UEFI");
    // --firmware bios wins over the booted firmware.
    assert!(!run(&["--firmware", "bios"]).contains("vfat"));
    let j: serde_json::Value = serde_json::from_str(&run(&["--json"])).unwrap();
    let lines: Vec<&str> = j["firmware"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].starts_with("firmware: EFI system partition /dev/sda3"));
    // A layout with no boot loader at all (GPT, no bios_grub, no ESP):
    // nothing to replace, so nothing is added, and the header says so.
    let mut none = bios_mbr(5 * GIB);
    none.disks[0].table = mkrescue::layout::Table::Gpt;
    none.disks[0].disk_id = Some("6d6b7265-7363-7565-0000-000000000001".into());
    for (p, t) in none.disks[0].partitions.iter_mut().zip([
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
        "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F",
    ]) {
        p.type_ = t.into();
        p.flags.clear();
    }
    std::fs::write(&layout, none.to_json()).unwrap();
    let script = run(&["--firmware", "uefi"]);
    assert!(
        script.lines().any(|l| l
            == "# firmware: uefi (--firmware uefi; the layout's system booted by neither BIOS nor UEFI (no boot loader recorded): nothing to add)"),
        "{script}"
    );
    assert!(
        script.lines().any(
            |l| l.starts_with("# firmware: no disk of the layout has a boot loader to replace")
        ),
        "{script}"
    );
    assert!(!script.contains("vfat"), "{script}");
}

/// No usable gap before the first partition (here it starts at sector
/// 64): the bios_grub partition takes 1 MiB at the end of a bigger disk;
/// on a disk of the same size the free space of the VG gives it (the md
/// members shrink); on a disk of just the data's least size it is refused
/// with both sizes and the way out.
#[test]
fn without_a_gap_bios_grub_comes_from_the_end_or_shrinking_or_is_refused() {
    let mut l = uefi_only();
    for d in &mut l.disks {
        d.partitions[0].start = 64;
    }
    let map: BTreeMap<String, String> = [
        ("/dev/vda".to_string(), "/dev/sda".to_string()),
        ("/dev/vdb".to_string(), "/dev/sdb".to_string()),
    ]
    .into();
    let seven = 7 * GIB;
    let o = opts(&[("/dev/sda", seven), ("/dev/sdb", seven)], Resize::None);
    let (c, p) = converted(&l, &map, &o, Target::Bios);
    assert!(
        c.lines[0].starts_with("firmware: bios_grub partition /dev/vda4 (1.0 MiB) added on /dev/sda, from the free space at the end of the disk"),
        "{}",
        c.lines[0]
    );
    let got = parts(&written_table(&sfdisk_script(&p, "/dev/sda"), seven));
    let bios_grub = got.iter().find(|p| p.0 == 4).unwrap();
    assert_eq!(bios_grub.2, 2048);
    assert!((bios_grub.1 + bios_grub.2) * 512 <= seven - 33 * 512);
    // The same size: the md members give 1 MiB and more.
    let six = 6 * GIB;
    let o = opts(&[("/dev/sda", six), ("/dev/sdb", six)], Resize::None);
    let (c, p) = converted(&l, &map, &o, Target::Bios);
    assert!(
        c.lines[0].contains("room made by shrinking"),
        "{}",
        c.lines[0]
    );
    let said: Vec<String> = p.sizes.iter().map(|c| c.to_string()).collect();
    assert!(
        said[0].starts_with("partition /dev/vda3: 5.8 GiB -> "),
        "{said:?}"
    );
    let got = parts(&written_table(&sfdisk_script(&p, "/dev/sda"), six));
    assert_eq!(got.len(), 3, "{got:?}");
    // Just the data's least: no room for 1 MiB more.
    let least = disk_min(&l, &l.disks[0]);
    let e = firmware::convert(
        &l,
        &map,
        &[
            ("/dev/sda".to_string(), least),
            ("/dev/sdb".to_string(), least),
        ]
        .into(),
        Target::Bios,
    )
    .unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.starts_with("no room for a 1 MiB bios_grub partition on /dev/sda ("),
        "{msg}"
    );
    assert!(
        msg.ends_with("recover with --firmware uefi; nothing was changed"),
        "{msg}"
    );
}
