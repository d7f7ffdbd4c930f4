//! QEMU layout tests: boot the rescue initramfs with blank virtio disks, let a
//! script in the guest (tests/qemu/layout/) build a disk layout, save it,
//! wipe the disks, `mkrescue recover --layout-only --unattended`, save again;
//! then compare the two layouts here on the host.
//!
//! The guest is driven over the serial console: once the ready marker shows,
//! one command line is typed that modprobes virtio_blk, unpacks the scripts
//! from a small "IN" disk (a tar written straight onto a raw image) and runs
//! one. The script writes its results as a tar onto the "OUT" disk, which is
//! read back here. No network, no 9p: only what every rescue image has.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::util::{self, set_len};
use mkrescue::vm::{Disk, Kernel, MARKER, Network, Serial, Vm, VmSpec};

/// One VM run: which script, which blank disks (serial, MiB).
pub struct Scenario {
    pub name: &'static str,
    pub script: &'static str,
    pub disks: &'static [(&'static str, u64)],
}

/// The restore from a backup disk on md RAID1 + LVM (issue 5): its script
/// checks the tree itself, [`check_restore`] reads its report.
pub const RESTORE_MD_LVM: &str = "restore-md-lvm";

/// The layouts of issue 4's "Done when" that run in CI.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "gpt-esp-ext4-swap",
        script: "layout1.sh",
        disks: &[("DISK1", 2048)],
    },
    Scenario {
        name: "raid1-lvm",
        script: "layout2.sh",
        disks: &[("DISK1", 1536), ("DISK2", 1536)],
    },
    Scenario {
        name: "raid1-lvm-mapped",
        script: "layout5.sh",
        disks: &[
            ("DISK1", 1536),
            ("DISK2", 1536),
            ("BIG", 3072),
            ("SAME", 1536),
        ],
    },
    Scenario {
        name: RESTORE_MD_LVM,
        script: "restore-md-lvm.sh",
        disks: &[("DISK1", 256), ("DISK2", 256), ("DISK3", 64), ("DISK4", 64)],
    },
];

/// Layouts that pass but do not run in CI (time budget).
pub const EXTRA: &[Scenario] = &[
    Scenario {
        name: "luks-lvm-btrfs",
        script: "layout3.sh",
        disks: &[("DISK1", 1024)],
    },
    Scenario {
        name: "lvm-thin",
        script: "layout4.sh",
        disks: &[("DISK1", 1024)],
    },
];

/// The fixture capture run (tests/fixtures/layout/README.md).
pub const FIXTURES: Scenario = Scenario {
    name: "capture-fixtures",
    script: "capture.sh",
    disks: &[("DISK1", 1536), ("DISK2", 1536), ("DISK3", 1024)],
};

const WORK: &str = "target/qemu/layout";

/// Builds the release binary and a rescue image with it (storage drivers of
/// every kind, so md, dm, xfs and btrfs modules are in), then runs `which`.
pub fn run(which: &[&Scenario], bin: Option<&Path>) -> Result<()> {
    let bin = match bin {
        Some(b) => b.to_path_buf(),
        None => util::build_release()?,
    };
    let img = PathBuf::from(WORK).join("image");
    util::step("mkrescue --output initramfs (layout tests)", || {
        util::run(
            bin.to_str().context("non-UTF-8 target path")?,
            &[
                "--output",
                "initramfs",
                "--modules",
                "storage-net",
                "-q",
                "--config",
                "tests/qemu/layout/rescue.toml",
                "--out",
                img.to_str().context("non-UTF-8 path")?,
            ],
        )
    })?;
    for s in which {
        util::step(&format!("qemu layout {}", s.name), || {
            let out = run_vm(s, &img, Duration::from_secs(420))?;
            if s.name == RESTORE_MD_LVM {
                return check_restore(&out);
            }
            if s.name == FIXTURES.name {
                let dst = Path::new("tests/fixtures/layout");
                copy_tree(&out.join("fixtures"), dst)?;
                eprintln!("fixtures written to {}", dst.display());
                return Ok(());
            }
            compare(&out)
        })?;
    }
    Ok(())
}

/// The restore's report: every file back, nothing damaged or failed; the
/// array assembled and the volume group active (restore did both: the
/// script had stopped them).
fn check_restore(out: &Path) -> Result<()> {
    let read = |f: &str| {
        std::fs::read_to_string(out.join(f)).with_context(|| format!("guest wrote no {f}"))
    };
    let rep: serde_json::Value =
        serde_json::from_str(&read("restore.json")?).context("restore.json is not JSON")?;
    let files = rep["files"].as_u64().unwrap_or(0);
    let empty = |k: &str| rep[k].as_array().is_some_and(|a| a.is_empty());
    if files < 50 || !empty("damaged") || !empty("errors") {
        bail!("restore from md RAID1 + LVM incomplete: {rep}");
    }
    let mdstat = read("mdstat")?;
    // "active (auto-read-only) raid1": assembled, not written to yet.
    if !mdstat
        .lines()
        .any(|l| l.contains(" active ") && l.contains("raid1"))
    {
        bail!("the backup array is not assembled after the restore:\n{mdstat}");
    }
    let lvs = read("lvs")?;
    if !lvs.contains("store") || !lvs.contains("active") {
        bail!("the backup LV is not active after the restore: {lvs}");
    }
    // The old system's array was assembled by the scan and stopped again.
    let err = read("restore.err")?;
    if !err.contains("stopped md array") {
        bail!("restore did not stop the array that does not hold the backup:\n{err}");
    }
    eprintln!(
        "restored {files} files from a backup on md RAID1 + LVM (assembled and activated by restore, the other array stopped again); trees equal"
    );
    Ok(())
}

/// Compares before.json and after.json written by the guest.
fn compare(out: &Path) -> Result<()> {
    let mut before = mkrescue::layout::Layout::load(&out.join("before.json"))?;
    let mut after = mkrescue::layout::Layout::load(&out.join("after.json"))?;
    if let Ok(map) = std::fs::read_to_string(out.join("map.txt")) {
        let map: Vec<(String, String)> = map
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        before = mapped(&before, &after, &map)?;
        // The disks left blank on either side are not part of the layout.
        for l in [&mut before, &mut after] {
            l.disks.retain(|d| !d.partitions.is_empty());
        }
    }
    let diff = mkrescue::layout::diff(&before, &after);
    if !diff.is_empty() {
        bail!(
            "recovered layout differs from the saved one:\n{}",
            diff.join("\n")
        );
    }
    eprintln!(
        "layouts equal: {} disks, {} partitions, {} md, {} LVs, {} filesystems",
        before.disks.len(),
        before
            .disks
            .iter()
            .map(|d| d.partitions.len())
            .sum::<usize>(),
        before.md.len(),
        before.lvm.lvs.len(),
        before.filesystems.len()
    );
    Ok(())
}

/// `before` as it should look after a recovery through `map` (source disk
/// -> target disk): device names renamed, the targets' identity (serial,
/// by-path...) taken from `after`, and a bigger target's size and grown
/// last partition accepted when the partition did not shrink. Everything
/// else (UUIDs, labels, types, md, LVM, file systems) must still match.
fn mapped(
    before: &mkrescue::layout::Layout,
    after: &mkrescue::layout::Layout,
    map: &[(String, String)],
) -> Result<mkrescue::layout::Layout> {
    // Two passes through placeholders, so a swap (vdc<->vdd) renames right.
    let mut json = before.to_json();
    for (i, (src, _)) in map.iter().enumerate() {
        json = json.replace(&format!("\"{src}"), &format!("\"@@{i}@@"));
    }
    for (i, (_, dst)) in map.iter().enumerate() {
        json = json.replace(&format!("\"@@{i}@@"), &format!("\"{dst}"));
    }
    let mut l = mkrescue::layout::Layout::from_json(&json).map_err(|e| anyhow::anyhow!(e))?;
    for d in &mut l.disks {
        let Some(a) = after.disks.iter().find(|a| a.path == d.path) else {
            continue;
        };
        d.serial = a.serial.clone();
        d.wwn = a.wwn.clone();
        d.model = a.model.clone();
        d.by_path = a.by_path.clone();
        if a.size > d.size {
            let last = d.partitions.iter_mut().max_by_key(|p| p.start);
            if let Some(p) = last
                && let Some(ap) = a.partitions.iter().find(|x| x.number == p.number)
            {
                if ap.size <= p.size {
                    bail!(
                        "{} is bigger than its source but partition {} did not grow ({} sectors)",
                        d.path,
                        p.number,
                        ap.size
                    );
                }
                eprintln!(
                    "{}: partition {} grew from {} to {} sectors",
                    d.path, p.number, p.size, ap.size
                );
                p.size = ap.size;
            }
            d.size = a.size;
        }
    }
    Ok(l)
}

/// Boots the image with the scenario's disks; returns the directory the OUT
/// disk was unpacked into.
fn run_vm(s: &Scenario, img: &Path, timeout: Duration) -> Result<PathBuf> {
    let dir = PathBuf::from(WORK).join(s.name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // IN: the scripts, as a tar on a raw disk.
    let in_img = dir.join("in.tar");
    let status = Command::new("tar")
        .args(["cf"])
        .arg(&in_img)
        .args(["-C", "tests/qemu", "layout"])
        .status()
        .context("running tar")?;
    if !status.success() {
        bail!("tar of tests/qemu/layout failed");
    }
    // Round the IN disk up to whole MiB so the guest sees all of it.
    let len = std::fs::metadata(&in_img)?.len();
    set_len(&in_img, len.div_ceil(1 << 20) * (1 << 20))?;
    let out_img = dir.join("out.img");
    set_len(&out_img, 64 << 20)?;
    let log = dir.join("serial.log");
    let mut spec = VmSpec {
        kernel: Some(Kernel::from_dir(
            img,
            "console=ttyS0 panic=-1 loglevel=4 mkrescue.after=shell",
        )),
        // As it always booted: QEMU's default NIC (the rescue image's
        // network is not under test here).
        network: Network::DefaultNic,
        ..VmSpec::new(Serial::Console(log.clone()))
    };
    spec.disks.push(Disk::raw(&in_img, "MKRIN"));
    spec.disks.push(Disk::raw(&out_img, "MKROUT"));
    for (serial, mib) in s.disks {
        let p = dir.join(format!("{serial}.raw"));
        set_len(&p, mib << 20)?;
        spec.disks.push(Disk::raw(p, serial));
    }
    let mut vm = Vm::start(&spec)?;
    let mut typed = false;
    let status = loop {
        if let Some(st) = vm.try_wait()? {
            break st;
        }
        if vm.elapsed() > timeout {
            let _ = vm.kill();
            bail!(
                "guest did not power off within {}s; serial log {}:\n{}",
                timeout.as_secs(),
                log.display(),
                util::tail(&vm.serial(), 60)
            );
        }
        if typed {
            // A failed script still powers off; if it hangs, stop early
            // once its exit line is out.
            let text = vm.serial();
            if let Some(at) = text.find("MKR-SCRIPT-EXIT=")
                && !text[at..].starts_with("MKR-SCRIPT-EXIT=0")
                && vm.elapsed() > Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_secs(5));
                break vm.kill()?;
            }
        }
        if !typed && vm.serial().contains(MARKER) {
            // Give the shell a moment to print its prompt.
            std::thread::sleep(Duration::from_millis(1500));
            let line = format!(
                "export PATH=/usr/sbin:/usr/bin:/sbin:/bin; modprobe -a virtio_pci virtio_blk; sleep 2; \
                 for d in /sys/block/vd*; do [ \"$(cat $d/serial)\" = MKRIN ] && tar xf /dev/${{d##*/}} -C /tmp; done; \
                 sh /tmp/layout/{script} > /tmp/script.log 2>&1; printf \"MKR-%s=%s\\n\" SCRIPT-EXIT $?; cat /tmp/script.log; /usr/sbin/poweroff\n",
                script = s.script
            );
            vm.type_text(&line)?;
            typed = true;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let text = vm.serial();
    eprintln!(
        "guest ran {} in {:.0}s (QEMU {status}); serial log {}",
        s.script,
        vm.elapsed().as_secs_f64(),
        log.display()
    );
    if !text.contains("MKR-SCRIPT-EXIT=0") {
        bail!(
            "guest script {} failed; serial log {}:\n{}",
            s.script,
            log.display(),
            util::tail(&text, 80)
        );
    }
    let out = dir.join("out");
    std::fs::create_dir_all(&out)?;
    let st = Command::new("tar")
        .arg("xf")
        .arg(&out_img)
        .arg("-C")
        .arg(&out)
        .status()
        .context("running tar")?;
    if !st.success() {
        bail!("no results on the OUT disk {}", out_img.display());
    }
    Ok(out)
}

fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst)?;
    for e in std::fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
        let e = e?;
        let to = dst.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &to)?;
        } else {
            std::fs::copy(e.path(), &to).with_context(|| format!("copying to {}", to.display()))?;
        }
    }
    Ok(())
}
