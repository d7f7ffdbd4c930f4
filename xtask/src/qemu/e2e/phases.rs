//! The phases of the cycle, each one VM: provision (the server installed
//! by a rescue system), before (its backup and rescue ISO), recover (new
//! blank disks, the rescue system recovers them), after (the recovered
//! server compared), degraded (one RAID member pulled).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::compare::{
    ALLOWED_NEW, ALLOWED_TO_CHANGE, SDBOOT_ALLOWED_TO_CHANGE, compare_blkid, compare_layouts,
    compare_lists, compare_network, configured, fitted_sizes, links, load_list, nic_lines,
    nic_mapped, only_under, renames,
};
use super::drive::{Disk, Vm, log_path, run_vm};
use super::firmware;
use super::image;
use super::initrd::initrd;
use super::rootfs::{Suite, rootfs};
use super::state::{
    BACKUP_MIB, BACKUP_UUID, DISK_MIB, E2e, RECOVER_FAILED, RECOVER_OK, SERVER_ADDR, SERVER_GW,
    SERVER_NIC, SERVER_READY, blank, read_out, round1,
};
use super::variant::{Boot, Firmware, NEW_MAC, SDBOOT, SERVER_MAC, one_disk, plain};
use mkrescue::drill::serial::mkrescue_lines;

use crate::util::{self, tail};
use mkrescue::drill::serial::{finalize_line, recover_phases, recover_predicted, recover_totals};
use mkrescue::vm::{OVMF_VARS, copy_vars};

/// Where the PXE tree lies on the backup disk (before.sh).
pub(super) const PXE_ON_BACKUP: &str = "/rescue-pxe";

/// rootfs, a rescue initramfs of this host, and the VM that installs the
/// server on DISK1 + DISK2.
pub(super) fn provision(e: &mut E2e) -> Result<()> {
    let t = Instant::now();
    let tar = rootfs(e.suite, &e.scenario)?;
    e.record("rootfs", t.elapsed().as_secs_f64(), json!({"tarball": tar}));
    let t = Instant::now();
    let initrd = initrd(&e.scenario, e.suite, None)?;
    e.record("initrd", t.elapsed().as_secs_f64(), json!({"tar": initrd}));

    let t = Instant::now();
    let img = e.p("rescue-initramfs");
    util::run(
        e.bin.to_str().context("non-UTF-8 binary path")?,
        &[
            "--output",
            "initramfs",
            "--modules",
            "storage-net",
            "-q",
            "--out",
            img.to_str().context("non-UTF-8 path")?,
        ],
    )?;
    let build = t.elapsed().as_secs_f64();

    let t = Instant::now();
    for d in e.old_disks() {
        blank(&d.path, DISK_MIB)?;
    }
    // The backup disk: ext4 over the whole disk, made here (mke2fs(8) on a
    // file needs no root and no loop device).
    let backup = e.p("BACKUP.raw");
    blank(&backup, BACKUP_MIB)?;
    util::run(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-L",
            "backup",
            "-U",
            BACKUP_UUID,
            backup.to_str().context("non-UTF-8 path")?,
        ],
    )?;
    let mut disks = e.old_disks();
    disks.push(Disk {
        serial: "ROOTFS",
        path: tar.clone(),
        boot: None,
        // A mistake in the script must not spoil the cache.
        readonly: true,
        nvme: false,
    });
    // The server's initramfs, built on the host (initrd.rs).
    disks.extend(initrd.map(|path| Disk {
        serial: "INITRD",
        path,
        boot: None,
        readonly: true,
        nvme: false,
    }));
    disks.extend(e.io_disks("provision")?);
    let vm = Vm {
        name: e.vm_name("provision"),
        kernel: Some((
            img.join("vmlinuz"),
            img.join("initrd.img"),
            "console=ttyS0 panic=-1 loglevel=4 mkrescue.after=shell mkrescue.net=off".into(),
        )),
        cdrom: None,
        uefi_vars: None,
        tftp: None,
        mac: None,
        disks,
        ready: mkrescue::init::READY_MARKER,
        type_on_ready: Some(
            "export PATH=/usr/sbin:/usr/bin:/sbin:/bin; modprobe -a virtio_pci virtio_blk; sleep 2; \
             mkdir -p /tmp/in; for d in /sys/block/vd*; do [ \"$(cat $d/serial)\" = MKRIN ] && tar xf /dev/${d##*/} -C /tmp/in; done; \
             sh /tmp/in/e2e/provision.sh 2>&1; printf \"MKR-%s=%s\\n\" SCRIPT-EXIT $?; /usr/sbin/poweroff"
                .into(),
        ),
        answers: vec![],
        timed: vec!["MKR-SCRIPT-EXIT="],
        fail_when: vec![],
        timeout: Duration::from_secs(1800),
    };
    let run = run_vm(&vm)?;
    if !run.text.contains("MKR-SCRIPT-EXIT=0") {
        bail!(
            "provision.sh failed; serial log {}:\n{}",
            run.log.display(),
            tail(&run.text, 60)
        );
    }
    read_out(&e.p("out-provision.img"), &e.p("out-provision"))?;
    let mut d = json!({
        "rescue_build_s": round1(build),
        "boot_to_ready_s": round1(run.seen[mkrescue::init::READY_MARKER]),
    });
    for (k, v) in run.guest_times() {
        d[format!("guest_{k}_s")] = json!(v);
    }
    e.record("provision", t.elapsed().as_secs_f64(), d);
    Ok(())
}

/// First boot of the server: layout save, backup, ISO onto the backup
/// disk; then the ISO is dumped out of the backup disk image.
pub(super) fn before(e: &mut E2e) -> Result<()> {
    let t = Instant::now();
    let (run, out) = e.server_phase("before", e.old_disks())?;
    let mut d = json!({
        "boot_to_ready_s": round1(run.seen[SERVER_READY]),
        "vm_total_s": round1(run.total),
    });
    // `mkrescue estimate` on the healthy server: its recover total.
    if let Ok(b) = std::fs::read(out.join("estimate-host.json"))
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b)
    {
        d["host_estimate_recover_s"] = v["recover_seconds"].clone();
        d["host_estimate_total_s"] = v["total_seconds"].clone();
    }
    for (k, v) in run.guest_times() {
        d[format!("guest_{k}")] = json!(v);
    }
    let iso = e.p("rescue.iso");
    let _ = std::fs::remove_file(&iso);
    // debugfs(8) reads the ext4 image directly: nothing is mounted here.
    util::run(
        "debugfs",
        &[
            "-R",
            &format!("dump /rescue/mkrescue.iso {}", iso.display()),
            e.p("BACKUP.raw").to_str().context("non-UTF-8 path")?,
        ],
    )?;
    let len = std::fs::metadata(&iso).map(|m| m.len()).unwrap_or(0);
    if len == 0 {
        bail!(
            "no /rescue/mkrescue.iso on the backup disk {}",
            e.p("BACKUP.raw").display()
        );
    }
    d["iso_mib"] = json!(round1(len as f64 / 1048576.0));
    if e.suite != Suite::Bookworm {
        // Issue 19: the image built on another release than this host's,
        // by its own loader and modprobe (before.sh built it twice and
        // compared the bytes on the server).
        let ti = Instant::now();
        let mut c = image::check_iso(&iso, &image::work_dir(&iso))?;
        c["seconds"] = json!(round1(ti.elapsed().as_secs_f64()));
        d["image_check"] = c;
    }
    // raid1-lvm's second ISO (before.sh: [modules] policy = "host", no
    // NVMe driver), for the drill that must fail on NVMe disks.
    let host_policy = e.p(HOST_POLICY_ISO);
    let _ = std::fs::remove_file(&host_policy);
    if e.scenario == "raid1-lvm" {
        util::run(
            "debugfs",
            &[
                "-R",
                &format!(
                    "dump /rescue-host-policy/mkrescue.iso {}",
                    host_policy.display()
                ),
                e.p("BACKUP.raw").to_str().context("non-UTF-8 path")?,
            ],
        )?;
        let len = std::fs::metadata(&host_policy)
            .map(|m| m.len())
            .unwrap_or(0);
        if len == 0 {
            bail!(
                "no /rescue-host-policy/mkrescue.iso on the backup disk {}",
                e.p("BACKUP.raw").display()
            );
        }
        d["iso_host_policy_mib"] = json!(round1(len as f64 / 1048576.0));
    }
    e.record("before", t.elapsed().as_secs_f64(), d);
    if e.prune_old {
        // The disaster: from here on only the backup disk and the ISO are
        // read, so the old disks' 3 GiB go before the new disks fill.
        for d in e.old_disks() {
            std::fs::remove_file(&d.path)
                .with_context(|| format!("removing {}", d.path.display()))?;
        }
        eprintln!(
            "CI: removed DISK1.raw and DISK2.raw after the backup (`--from before` needs provision again)"
        );
    }
    Ok(())
}

/// The disaster and the recovery: blank NEW1 (same size) and NEW2 (twice
/// as big), the backup disk attached, the rescue system from the ISO as
/// CD-ROM or (pxe) from the PXE tree over TFTP; under UEFI with a fresh
/// copy of OVMF's variable store.
pub(super) fn recover(e: &mut E2e) -> Result<()> {
    if e.variant.boot == Boot::Drill {
        return recover_by_drill(e);
    }
    let t = Instant::now();
    let [mib1, mib2] = e.new_disk_mib();
    blank(&e.v("NEW1.raw"), mib1)?;
    if e.disk_count() == 2 {
        blank(&e.v("NEW2.raw"), mib2)?;
    }
    let mut disks: Vec<Disk> = e
        .new_disks()
        .into_iter()
        .map(|d| Disk { boot: None, ..d })
        .collect();
    disks.push(e.backup_disk());
    let uefi_vars = e.uefi_vars();
    if let Some(v) = &uefi_vars {
        // No entries of an earlier run: what the later boots find is what
        // this recover wrote.
        copy_vars(OVMF_VARS, v)?;
    }
    let (cdrom, tftp) = match e.variant.boot {
        Boot::Iso | Boot::Drill => (Some(e.p("rescue.iso")), None),
        Boot::Pxe => (
            None,
            Some((pxe_tree(e)?, e.variant.pxe_bootfile().to_string())),
        ),
    };
    // The replacement machine's NIC: PXE boots through it; with `--nic
    // new-mac` the rescue system must map the server's NIC onto it. The
    // other ISO variants have none (the restored configuration stays).
    let mac = (tftp.is_some() || e.variant.moved.new_mac).then(|| e.variant.mac().to_string());
    let vm = Vm {
        name: e.vm_name("recover"),
        kernel: None,
        cdrom,
        uefi_vars,
        tftp,
        mac,
        disks,
        ready: mkrescue::init::READY_MARKER,
        type_on_ready: None,
        answers: vec![],
        timed: vec![RECOVER_OK, RECOVER_FAILED],
        fail_when: vec![RECOVER_FAILED],
        timeout: Duration::from_secs(2400),
    };
    let run = run_vm(&vm)?;
    let Some(done) = run.seen.get(RECOVER_OK) else {
        bail!(
            "the rescue system powered off without `{RECOVER_OK}`; serial log {}:\n{}",
            run.log.display(),
            tail(&mkrescue_lines(&run.text), 60)
        );
    };
    let ready = run.seen[mkrescue::init::READY_MARKER];
    let name = e.phase_name("recover");
    // Issue 16: with `initramfs = auto` recover keeps the server's
    // initramfs on disks like its own, and appends the driver to it on
    // NVMe, whose driver the server's MODULES=list lacks.
    let initramfs = finalize_line(&run.text, "initramfs").unwrap_or_default();
    check_initramfs(e, &initramfs, &run.log)?;
    // Issue 18: the server's NIC mapped onto the replacement machine's
    // (`--nic new-mac`), and the sizes fitted onto smaller disks.
    let nics = nic_lines(&run.text);
    if e.variant.moved.new_mac {
        nic_mapped(&nics, SERVER_NIC, SERVER_MAC, NEW_MAC)
            .map_err(|p| anyhow::anyhow!("{p} (serial log {})", run.log.display()))?;
    }
    let fitted = fitted_sizes(&run.text);
    if e.variant.moved.smaller && fitted.is_empty() {
        bail!(
            "recover onto smaller disks printed no `size ...` line of the sizes it chose (serial log {})",
            run.log.display()
        );
    }
    let (predicted, predicted_total) = recover_predicted(&run.text);
    let (recover_total, estimate_took) = recover_totals(&run.text);
    e.record(
        &name,
        t.elapsed().as_secs_f64(),
        json!({
            "boot_to_ready_s": round1(ready),
            "recover_s": round1(done - ready),
            "recover_total_s": recover_total,
            "estimate_took_s": estimate_took,
            "vm_total_s": round1(run.total),
            "recover_phases_s": recover_phases(&run.text),
            "recover_predicted_s": predicted,
            "recover_predicted_total_s": predicted_total,
            "initramfs": initramfs,
            "boot_menu": finalize_line(&run.text, "/boot/grub/grub.cfg"),
            "nics": nics,
            "fitted_bytes": fitted,
        }),
    );
    Ok(())
}

/// Issue 16: with `initramfs = auto` recover keeps the server's initramfs
/// on disks like its own, and on NVMe, whose driver the server's
/// MODULES=list lacks, appends the driver to it (seconds; regenerating it
/// took 81 s under TCG): the boot in after proves the kernel and the
/// server's initramfs-tools take the appended archive.
fn check_initramfs(e: &E2e, initramfs: &str, log: &Path) -> Result<()> {
    let want = if e.variant.nvme() {
        "initramfs appended"
    } else {
        "initramfs kept"
    };
    if !initramfs.starts_with(want) {
        bail!(
            "recover's finalize says `{initramfs}`; expected `{want} ...` (serial log {})",
            log.display()
        );
    }
    Ok(())
}

/// The drill variant (issue 20): `mkrescue drill` on this host, as an
/// admin runs it on a recovery or backup server, with the server's own
/// ISO, saved layout and backup disk (attached copy-on-write). It recovers
/// onto disks shaped from the layout, boots them once to a login prompt
/// (copy-on-write too) and keeps them raw: they become this variant's
/// NEW1/NEW2 (by the serials the layout gave them) for after and
/// degraded. Its report history goes under the variant's directory, not
/// this host's /var/lib/mkrescue.
fn recover_by_drill(e: &mut E2e) -> Result<()> {
    let t = Instant::now();
    let layout_path = e.p("out-before").join("layout-before.json");
    let layout = mkrescue::layout::Layout::load(&layout_path)?;
    let (work, kept, root) = (e.v("drill"), e.v("drill-kept"), e.v("drill-root"));
    for d in [&kept, &root] {
        let _ = std::fs::remove_dir_all(d);
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let firmware = match e.variant.firmware {
        Firmware::Bios => "bios",
        Firmware::Uefi => "uefi",
    };
    let path = |p: &Path| p.display().to_string();
    let args = [
        "--json".to_string(),
        "--root".into(),
        path(&root),
        "drill".into(),
        "--iso".into(),
        path(&e.p("rescue.iso")),
        "--layout".into(),
        path(&layout_path),
        "--backup-disk".into(),
        path(&e.p("BACKUP.raw")),
        "--firmware".into(),
        firmware.into(),
        "--accel".into(),
        "tcg".into(),
        "--work".into(),
        path(&work),
        "--keep".into(),
        path(&kept),
        "--keep-format".into(),
        "raw".into(),
    ];
    let (out, report) = run_drill(e, &args, "mkrescue drill");
    // The serial logs where the e2e keeps its own (after reads recover's
    // disk renames from it).
    for (from, to) in [("recover.log", "recover"), ("first-boot.log", "first-boot")] {
        let _ = std::fs::copy(work.join(from), log_path(&e.vm_name(to)));
    }
    let (out, report) = (out?, report?);
    if !report.passed || !out.status.success() {
        bail!(
            "mkrescue drill failed (exit {}) in {}: {}",
            out.status,
            report.failed_phase.as_deref().unwrap_or("?"),
            report.cause.as_deref().unwrap_or("?")
        );
    }
    let phase = |n: &str| {
        report
            .phases
            .iter()
            .find(|p| p.name == n)
            .map(|p| round1(p.seconds))
    };
    let initramfs = report
        .finalize
        .iter()
        .find(|l| l.starts_with("initramfs"))
        .cloned()
        .unwrap_or_default();
    check_initramfs(e, &initramfs, &work.join("recover.log"))?;
    // The kept disks become NEW1 and NEW2: the server's DISK1 and DISK2.
    let disks = mkrescue::drill::blank_disks(&layout, &kept);
    for (serial, new) in [("DISK1", "NEW1.raw"), ("DISK2", "NEW2.raw")]
        .into_iter()
        .take(e.disk_count())
    {
        let d = disks
            .iter()
            .find(|d| d.serial.as_deref() == Some(serial))
            .with_context(|| {
                format!("no disk with serial {serial} in {}", layout_path.display())
            })?;
        std::fs::rename(&d.path, e.v(new))
            .with_context(|| format!("moving {} to {}", d.path.display(), e.v(new).display()))?;
    }
    if let Some(vars) = e.uefi_vars() {
        std::fs::rename(kept.join("OVMF_VARS.fd"), &vars)
            .with_context(|| format!("moving the drill's UEFI variables to {}", vars.display()))?;
    }
    let name = e.phase_name("recover");
    e.record(
        &name,
        t.elapsed().as_secs_f64(),
        json!({
            "boot_to_ready_s": phase("rescue boot"),
            "recover_s": phase("recover"),
            "recover_total_s": report.recover_total_s,
            "recover_phases_s": report.recover_phases_s,
            "recover_predicted_s": report.estimate_s,
            "recover_predicted_total_s": report.estimate_total_s,
            "initramfs": initramfs,
            "boot_menu": report.finalize.iter().find(|l| l.starts_with("/boot/grub/grub.cfg")),
            "drill_first_boot_s": phase("first boot"),
            "drill_accel": report.accel_note,
        }),
    );
    failing_drills(e, &layout_path)
}

/// Runs `mkrescue ARGS` (a `--json ... drill` command line) from the host
/// and reads its JSON report; `what` names the drill in the error when
/// there is none. The two results are apart so the caller can keep the
/// serial logs before it fails.
fn run_drill(
    e: &E2e,
    args: &[String],
    what: &str,
) -> (
    Result<std::process::Output>,
    Result<mkrescue::drill::Report>,
) {
    eprintln!("$ {} {}", e.bin.display(), args.join(" "));
    let out = std::process::Command::new(&e.bin)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", e.bin.display()));
    let report = match &out {
        Ok(o) => serde_json::from_slice(&o.stdout).with_context(|| {
            format!(
                "{what} exited {} without a JSON report: {}",
                o.status,
                String::from_utf8_lossy(&o.stdout)
            )
        }),
        Err(_) => Err(anyhow::anyhow!("{what} did not run")),
    };
    (out, report)
}

/// raid1-lvm's rescue ISO built with `[modules] policy = "host"` (before.sh),
/// copied out of the backup disk beside rescue.iso.
pub(super) const HOST_POLICY_ISO: &str = "rescue-host-policy.iso";

/// One drill that must fail (issue 20), the failed phase it must report,
/// and words its cause must hold.
struct MustFail {
    name: &'static str,
    phase: &'static str,
    cause: &'static [&'static str],
}

/// The drills that must fail, each from the host side like the passing
/// one, onto its own blank disks, each checked for exit code 9 (the host
/// was not recovered), its failed phase and a cause naming what broke:
/// - `damaged`: the backup disk copied with one 4 KiB block in the middle
///   of the full archive overwritten (debugfs bmap finds where): restore
///   goes on past the damage, then recover fails naming the lost members;
/// - `controller`: the server's host-policy ISO (no NVMe driver) onto NVMe
///   disks (`--controller nvme`): recover sees none of them;
/// - `no boot loader`: a test hook zeroes the first sector of each
///   recovered disk (GRUB's boot sector and the protective MBR), so the
///   BIOS finds nothing to boot.
///
/// The fourth drill that must fail, a layout missing a disk, is refused
/// before any VM (tests/it/drill.rs).
fn failing_drills(e: &mut E2e, layout: &Path) -> Result<()> {
    let t = Instant::now();
    let dir = e.v("drill-fail");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let damaged = dir.join("BACKUP-damaged.raw");
    let where_ = damage_archive(&e.p("BACKUP.raw"), &damaged)?;
    let path = |p: &Path| p.display().to_string();
    let iso = path(&e.p("rescue.iso"));
    let backup = path(&e.p("BACKUP.raw"));
    let wipe = "for d; do dd if=/dev/zero of=\"$d\" bs=512 count=1 conv=notrunc status=none; done";
    let cases: [(MustFail, Vec<String>); 3] = [
        (
            MustFail {
                name: "damaged",
                phase: "recover",
                cause: &["damaged or lost in the archive"],
            },
            vec![
                "--iso".into(),
                iso.clone(),
                "--backup-disk".into(),
                path(&damaged),
            ],
        ),
        (
            MustFail {
                name: "controller",
                phase: "recover",
                cause: &["does not see the disk controller", "NVMe", "DISK1", "nvme"],
            },
            vec![
                "--iso".into(),
                path(&e.p(HOST_POLICY_ISO)),
                "--backup-disk".into(),
                backup.clone(),
                "--controller".into(),
                "nvme".into(),
            ],
        ),
        (
            MustFail {
                name: "no-boot-loader",
                phase: "first boot",
                cause: &["did not boot", "No bootable device"],
            },
            vec![
                "--iso".into(),
                iso,
                "--backup-disk".into(),
                backup,
                "--test-hook".into(),
                wipe.into(),
            ],
        ),
    ];
    let mut seconds = serde_json::Map::new();
    let mut causes = serde_json::Map::new();
    for (want, extra) in cases {
        let t = Instant::now();
        let work = dir.join(want.name);
        let mut args = vec![
            "--json".to_string(),
            "--root".into(),
            path(&e.v("drill-root")),
            "drill".into(),
            "--layout".into(),
            path(layout),
            "--firmware".into(),
            "bios".into(),
            "--accel".into(),
            "tcg".into(),
            "--work".into(),
            path(&work),
        ];
        args.extend(extra);
        let (out, report) = run_drill(e, &args, &format!("the {} drill", want.name));
        let (out, report) = (out?, report?);
        let cause = report.cause.clone().unwrap_or_default();
        let missing: Vec<&str> = want
            .cause
            .iter()
            .copied()
            .filter(|w| !cause.contains(w))
            .collect();
        if report.passed
            || out.status.code() != Some(mkrescue::error::Code::Drill as i32)
            || report.failed_phase.as_deref() != Some(want.phase)
            || !missing.is_empty()
        {
            bail!(
                "the {} drill must fail in {} naming {:?} with exit code {}; it {} (exit {}, failed phase {:?}, cause {cause:?})",
                want.name,
                want.phase,
                want.cause,
                mkrescue::error::Code::Drill as i32,
                if report.passed {
                    "passed"
                } else {
                    "failed otherwise"
                },
                out.status,
                report.failed_phase
            );
        }
        eprintln!(
            "e2e: the {} drill failed as it must, in {}: {cause}",
            want.name, want.phase
        );
        seconds.insert(want.name.into(), json!(round1(t.elapsed().as_secs_f64())));
        causes.insert(want.name.into(), json!(cause));
        let _ = std::fs::remove_dir_all(&work);
    }
    let _ = std::fs::remove_file(&damaged);
    e.record(
        "failing drills",
        t.elapsed().as_secs_f64(),
        json!({"seconds": seconds, "causes": causes, "damaged": where_}),
    );
    Ok(())
}

/// Copies the backup disk `from` to `to` (sparse) and overwrites one 4 KiB
/// block of the copy in the middle of its biggest archive (the full
/// backup), found with debugfs(8): `ls -p` for the files, `stats` for the
/// block size, `bmap` for where the archive's middle block lies. Nothing
/// is mounted; `from` is only read. Returns what was damaged, for the
/// report.
fn damage_archive(from: &Path, to: &Path) -> Result<String> {
    util::run(
        "cp",
        &[
            "--sparse=always",
            from.to_str().context("non-UTF-8 path")?,
            to.to_str().context("non-UTF-8 path")?,
        ],
    )?;
    let img = to.to_str().context("non-UTF-8 path")?;
    let debugfs = |req: &str| -> Result<String> {
        let out = std::process::Command::new("debugfs")
            .args(["-R", req, img])
            .output()
            .context("running debugfs")?;
        if !out.status.success() {
            bail!("debugfs -R '{req}' {img} failed ({})", out.status);
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    // `ls -p`: /inode/mode/uid/gid/name/size/ per entry.
    let (name, size) = debugfs("ls -p /archive")?
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('/').collect();
            (f.len() >= 7 && f[5].ends_with(".tar.zst"))
                .then(|| (f[5].to_string(), f[6].parse::<u64>().unwrap_or(0)))
        })
        .max_by_key(|(_, size)| *size)
        .with_context(|| format!("no archive (*.tar.zst) in /archive of {}", from.display()))?;
    let block: u64 = debugfs("stats")?
        .lines()
        .find_map(|l| l.strip_prefix("Block size:"))
        .and_then(|v| v.trim().parse().ok())
        .context("debugfs stats shows no block size")?;
    let logical = size / block / 2;
    let physical: u64 = debugfs(&format!("bmap /archive/{name} {logical}"))?
        .trim()
        .parse()
        .with_context(|| format!("debugfs bmap of /archive/{name} block {logical}"))?;
    if physical == 0 {
        bail!("/archive/{name} has no block {logical} (a hole?)");
    }
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(to)
        .with_context(|| format!("opening {}", to.display()))?;
    f.seek(SeekFrom::Start(physical * block))?;
    f.write_all(&vec![0x55u8; block as usize])?;
    f.sync_all()?;
    Ok(format!(
        "/archive/{name} ({size} bytes): block {logical} of {block} bytes (disk block {physical})"
    ))
}

/// The PXE tree before.sh wrote onto the backup disk, copied out of the
/// image with debugfs(8) into the variant's directory: the TFTP root.
pub(super) fn pxe_tree(e: &E2e) -> Result<PathBuf> {
    let dir = e.v("tftp");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let backup = e.p("BACKUP.raw");
    util::run(
        "debugfs",
        &[
            "-R",
            &format!("rdump {PXE_ON_BACKUP} {}", dir.display()),
            backup.to_str().context("non-UTF-8 path")?,
        ],
    )?;
    let root = dir.join(PXE_ON_BACKUP.trim_start_matches('/'));
    let config = match e.variant.firmware {
        Firmware::Bios => "pxelinux.cfg/default",
        Firmware::Uefi => "grub/grub.cfg",
    };
    for f in [e.variant.pxe_bootfile(), config] {
        anyhow::ensure!(
            root.join(f).is_file(),
            "no {PXE_ON_BACKUP}/{f} on the backup disk {} (its before phase predates the PXE tree: run from before)",
            backup.display()
        );
    }
    // QEMU opens the files relative to its own working directory; an
    // absolute root does not depend on it.
    std::fs::canonicalize(&root).with_context(|| format!("resolving {}", root.display()))
}

/// The recovered server boots; its files, UUIDs, array and layout are
/// compared with what was recorded before the disaster; under UEFI it must
/// have booted through the firmware entry recover wrote.
pub(super) fn after(e: &mut E2e) -> Result<()> {
    let t = Instant::now();
    let (run, out) = e.server_phase("check", e.new_disks())?;
    let ready = run.seen[SERVER_READY];
    let before = e.p("out-before");
    let prov = e.p("out-provision");
    let mut problems = Vec::new();
    let mut allowed = ALLOWED_TO_CHANGE.to_vec();
    if e.scenario == SDBOOT {
        allowed.extend_from_slice(SDBOOT_ALLOWED_TO_CHANGE);
    }
    allowed.extend_from_slice(firmware::allowed_to_change(&e.scenario));
    let mut allowed_new = ALLOWED_NEW.to_vec();
    allowed_new.extend_from_slice(firmware::allowed_new(&e.scenario, e.variant.firmware));
    let full = compare_lists(
        &load_list(&before.join("list-before"))?,
        &load_list(&out.join("list-after"))?,
        &allowed,
        &allowed_new,
    );
    // The provisioned test data as it was made (change.sh changes only
    // its own files, beside it).
    let test_data_roots = ["/srv/e2e", "/home/alice"];
    let test_data = compare_lists(
        &only_under(&load_list(&prov.join("list-provision"))?, &test_data_roots),
        &only_under(&load_list(&out.join("list-after"))?, &test_data_roots),
        &[],
        &[],
    );
    problems.extend(full.iter().map(|p| format!("files: {p}")));
    problems.extend(test_data.iter().map(|p| format!("test data: {p}")));
    problems.extend(compare_blkid(
        &std::fs::read_to_string(before.join("blkid-before.txt"))?,
        &std::fs::read_to_string(out.join("blkid-after.txt"))?,
    ));
    let mdstat = std::fs::read_to_string(out.join("mdstat.txt"))?;
    if e.has_raid() && !(mdstat.contains("md0 : active raid1") && mdstat.contains("[UU]")) {
        problems.push(format!(
            "md0 is not an active RAID1 with both members:\n{mdstat}"
        ));
    }
    // The disks' names on the recovered machine (NVMe in the pxe variant).
    // Lossy: OVMF's and GRUB's output in the serial log is not always
    // UTF-8 (read_to_string then gave nothing, and no disk rename was
    // seen under UEFI).
    let recover_log = std::fs::read(e.log("recover"))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let renamed = renames(
        &recover_log,
        &mkrescue::layout::Layout::load(&before.join("layout-before.json"))?,
    );
    // `--disks smaller`: the sizes recover's plan chose, named as the
    // recovered server names the devices.
    let fitted = e.variant.moved.smaller.then(|| {
        fitted_sizes(&recover_log)
            .into_iter()
            .map(|(d, b)| (renamed.get(&d).cloned().unwrap_or(d), b))
            .collect::<std::collections::BTreeMap<_, _>>()
    });
    let layout = compare_layouts(
        &before.join("layout-before.json"),
        &out.join("layout-after.json"),
        &renamed,
        fitted.as_ref(),
    )?;
    let mut conversion = None;
    if plain(&e.scenario) {
        // Issue 18's pair: what recover added and resized for the
        // firmware explains those layout lines, and only those; the
        // firmware booted with and the fstab are checked.
        let c = firmware::converted(&recover_log);
        problems.extend(layout.into_iter().filter(|l| !firmware::explained(l, &c)));
        problems.extend(firmware::check(
            &e.scenario,
            e.variant.firmware,
            &c,
            &std::fs::read_to_string(out.join("firmware.txt"))?,
            &std::fs::read_to_string(out.join("fstab-after"))?,
            std::fs::read_to_string(out.join("fstab-orig"))
                .ok()
                .as_deref(),
        ));
        conversion = Some(
            json!({"firmware": c.lines, "added": c.added, "resized": c.resized, "fstab_added": c.fstab}),
        );
    } else {
        problems.extend(layout);
    }
    // The server's NIC (lan0 by its MAC, a static address): on the
    // replacement machine's NIC (another MAC under `--nic new-mac`), up,
    // with that address, the gateway answering.
    let had = links(
        &std::fs::read_to_string(before.join("ip-before.json")).unwrap_or_else(|_| "[]".into()),
    )?;
    let network = if configured(&had, SERVER_NIC, SERVER_ADDR).is_some() {
        let now = links(
            &std::fs::read_to_string(out.join("ip-after.json"))
                .with_context(|| format!("reading {}", out.join("ip-after.json").display()))?,
        )?;
        let ping = std::fs::read_to_string(out.join("ping-after.txt")).unwrap_or_default();
        let p = compare_network(
            &now,
            &ping,
            SERVER_NIC,
            SERVER_ADDR,
            SERVER_GW,
            e.variant.mac(),
        );
        let ok = p.is_empty();
        problems.extend(p);
        ok.then(|| {
            format!(
                "{SERVER_NIC} {} {SERVER_ADDR}, {SERVER_GW} answered",
                e.variant.mac()
            )
        })
    } else {
        if e.variant.moved.new_mac {
            problems.push(format!(
                "network: the server had no {SERVER_NIC} with {SERVER_ADDR} before (out-before/ip-before.json), so --nic new-mac proves nothing: run from provision"
            ));
        }
        None
    };
    let mut booted_via = None;
    if e.variant.firmware == Firmware::Uefi {
        let check = if e.scenario == SDBOOT {
            sdboot_boot(&read_efibootmgr(&out)?)
        } else if one_disk(&e.scenario) {
            uefi_boot_one_disk(&read_efibootmgr(&out)?)
        } else {
            uefi_boot(&read_efibootmgr(&out)?, false)
        };
        match check {
            Ok(via) => booted_via = Some(via),
            Err(p) => problems.push(format!("uefi: {p}")),
        }
    }
    let n = load_list(&out.join("list-after"))?.len();
    if !problems.is_empty() {
        bail!(
            "the recovered server differs ({} problems):\n{}",
            problems.len(),
            problems.join("\n")
        );
    }
    let mut d = json!({"boot_to_ready_s": round1(ready), "vm_total_s": round1(run.total), "files_compared": n, "network": network});
    if let Some(via) = booted_via {
        d["booted_via"] = json!(via);
    }
    if let Some(c) = conversion {
        d["conversion"] = c;
    }
    let name = e.phase_name("after");
    e.record(&name, t.elapsed().as_secs_f64(), d);
    Ok(())
}

/// NEW1 pulled: the server must still boot from NEW2 (GRUB on both disks;
/// under UEFI the ESP copy on NEW2 and its own firmware entry) with the
/// array degraded.
pub(super) fn degraded(e: &mut E2e) -> Result<()> {
    let t = Instant::now();
    let disks: Vec<Disk> = e
        .new_disks()
        .into_iter()
        .filter(|d| d.serial != "NEW1")
        .collect();
    let (run, out) = e.server_phase("degraded", disks)?;
    let mdstat = std::fs::read_to_string(out.join("mdstat.txt"))?;
    if !(mdstat.contains("active") && (mdstat.contains("[_U]") || mdstat.contains("[U_]"))) {
        bail!("md0 is not active and degraded with one member:\n{mdstat}");
    }
    let mut d =
        json!({"boot_to_ready_s": round1(run.seen[SERVER_READY]), "vm_total_s": round1(run.total)});
    if e.variant.firmware == Firmware::Uefi {
        let via = uefi_boot(&read_efibootmgr(&out)?, true)
            .map_err(|p| anyhow::anyhow!("uefi, NEW1 pulled: {p}"))?;
        d["booted_via"] = json!(via);
    }
    let name = e.phase_name("degraded");
    e.record(&name, t.elapsed().as_secs_f64(), d);
    Ok(())
}

pub(super) fn read_efibootmgr(out: &Path) -> Result<String> {
    let p = out.join("efibootmgr.txt");
    std::fs::read_to_string(&p).with_context(|| {
        format!(
            "reading {} (the server booted without EFI variables?)",
            p.display()
        )
    })
}

/// The entry `bootctl install` writes (systemd-boot's own label).
pub(super) const SDBOOT_ENTRY: &str = "Linux Boot Manager";

/// The entry that booted (BootCurrent in `efibootmgr -v`): its label, its
/// device path, and `BootNNNN LABEL: PATH` for messages.
fn booted_entry(efibootmgr: &str) -> Result<(String, String, String), String> {
    let v = mkrescue::recover::efiboot::parse(efibootmgr);
    let Some(cur) = v.current_entry() else {
        return Err(format!(
            "no BootCurrent, or no entry for it, in efibootmgr's output:\n{efibootmgr}"
        ));
    };
    let via = format!("Boot{:04X} {}: {}", cur.num, cur.label, cur.path);
    Ok((cur.label.clone(), cur.path.clone(), via))
}

/// The dracut-sdboot server booted through the firmware entry recover's
/// `bootctl install` wrote, which loads systemd-boot from the ESP (no
/// GRUB). Ok: `LABEL: PATH` of it.
pub(super) fn sdboot_boot(efibootmgr: &str) -> Result<String, String> {
    let (label, path, via) = booted_entry(efibootmgr)?;
    let loader = path.to_ascii_lowercase();
    if label == SDBOOT_ENTRY && loader.contains("systemd-bootx64.efi") {
        Ok(via)
    } else {
        Err(format!(
            "booted through {via}, not the `{SDBOOT_ENTRY}` entry (systemd-bootx64.efi) recover wrote"
        ))
    }
}

/// grub-install's entry (Debian's bootloader id) and the one finalize adds
/// for the ESP copy on the second disk.
pub(super) const EFI_ENTRY: &str = "debian";
pub(super) const EFI_ENTRY_2: &str = "debian ESP2";

/// A one-disk server with GRUB (bios-mbr recovered under UEFI) booted
/// through the entry recover's grub-install wrote (there is no second
/// disk, so no `debian ESP2`). Ok: `LABEL: PATH` of it.
pub(super) fn uefi_boot_one_disk(efibootmgr: &str) -> Result<String, String> {
    let (label, path, via) = booted_entry(efibootmgr)?;
    if label == EFI_ENTRY && path.to_ascii_lowercase().contains("grubx64.efi") {
        Ok(via)
    } else {
        Err(format!(
            "booted through {via}, not the `{EFI_ENTRY}` entry (grubx64.efi) recover wrote"
        ))
    }
}

/// Which firmware entry booted the server (`efibootmgr -v` of check.sh or
/// degraded.sh): with both disks the one recover wrote for the first disk,
/// and the second disk's must exist too; with NEW1 pulled the second
/// disk's entry, or the firmware's own entry for the disk (it then loads
/// the removable path \EFI\BOOT\BOOTX64.EFI). Ok: `LABEL: PATH` of it.
pub(super) fn uefi_boot(efibootmgr: &str, degraded: bool) -> Result<String, String> {
    let v = mkrescue::recover::efiboot::parse(efibootmgr);
    let (booted, path, via) = booted_entry(efibootmgr)?;
    let loader = path.to_ascii_lowercase();
    let own = |label: &str| booted == label && loader.contains("grubx64.efi");
    if !degraded {
        if !own(EFI_ENTRY) {
            return Err(format!(
                "booted through {via}, not the `{EFI_ENTRY}` entry recover wrote"
            ));
        }
        if v.with_label(EFI_ENTRY_2).is_empty() {
            return Err(format!(
                "no `{EFI_ENTRY_2}` entry for the ESP on the second disk:\n{efibootmgr}"
            ));
        }
        return Ok(via);
    }
    // The firmware's own entries for a disk carry no file path: it loads
    // the removable-media path (UEFI spec 2.9, 3.5.1.1).
    let removable = path.starts_with("PciRoot(") && !loader.contains("file(");
    if own(EFI_ENTRY_2) || removable {
        Ok(via)
    } else {
        Err(format!(
            "booted through {via}: neither the second disk's `{EFI_ENTRY_2}` entry nor its removable path"
        ))
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    const EFI_AFTER: &str =
        include_str!("../../../../tests/fixtures/efiboot/ovmf-after-recover.txt");
    const EFI_DEGRADED: &str = include_str!("../../../../tests/fixtures/efiboot/ovmf-degraded.txt");

    /// dracut-sdboot: booted through bootctl's entry, not GRUB's.
    #[test]
    fn sdboot_boots_through_bootctls_entry() {
        let sd = EFI_AFTER.replace(
            "Boot0003* debian\tHD(2,GPT,61effe1c-8fa3-494d-9693-bcad49c581b0,0x1000,0x64000)/File(\\EFI\\debian\\grubx64.efi)",
            "Boot0003* Linux Boot Manager\tHD(1,GPT,f7c430c5-abb2-1643-b631-3d92b95ff382,0x800,0x100000)/File(\\EFI\\systemd\\systemd-bootx64.efi)",
        );
        assert_ne!(sd, EFI_AFTER);
        let via = sdboot_boot(&sd).unwrap();
        assert!(
            via.starts_with("Boot0003 Linux Boot Manager: HD(1,GPT"),
            "{via}"
        );
        let e = sdboot_boot(EFI_AFTER).unwrap_err();
        assert!(e.contains("not the `Linux Boot Manager` entry"), "{e}");
        // And GRUB's check does not take systemd-boot's entry.
        assert!(uefi_boot(&sd, false).is_err());
    }

    /// bios-mbr under UEFI: one disk, `debian` without `debian ESP2`.
    #[test]
    fn one_disk_boots_through_grub_installs_entry() {
        let one: String = EFI_AFTER
            .lines()
            .filter(|l| !l.contains("debian ESP2"))
            .map(|l| format!("{l}\n"))
            .collect();
        let via = uefi_boot_one_disk(&one).unwrap();
        assert!(via.starts_with("Boot0003 debian: HD(2,GPT"), "{via}");
        let shell = one.replace("BootCurrent: 0003", "BootCurrent: 0002");
        assert!(uefi_boot_one_disk(&shell).is_err());
        assert!(uefi_boot_one_disk("EFI variables are not supported on this system.\n").is_err());
    }

    #[test]
    fn uefi_boots_through_recovers_entries() {
        let via = uefi_boot(EFI_AFTER, false).unwrap();
        assert!(
            via.starts_with("Boot0003 debian: HD(2,GPT,61effe1c"),
            "{via}"
        );
        let via = uefi_boot(EFI_DEGRADED, true).unwrap();
        assert!(
            via.starts_with("Boot0004 debian ESP2: HD(2,GPT,2b19608c"),
            "{via}"
        );
        // With both disks the second disk's entry booting means the first
        // one failed.
        let e = uefi_boot(EFI_DEGRADED, false).unwrap_err();
        assert!(e.contains("not the `debian` entry"), "{e}");
        // NEW1 pulled, yet its entry booted: impossible, so a wrong check.
        assert!(uefi_boot(EFI_AFTER, true).is_err());
        // The firmware's own entry for a disk: its removable path.
        let misc = EFI_DEGRADED.replace("BootCurrent: 0004", "BootCurrent: 0006");
        let via = uefi_boot(&misc, true).unwrap();
        assert!(via.starts_with("Boot0006 UEFI Misc Device 2"), "{via}");
        // The EFI shell is neither.
        let shell = EFI_DEGRADED.replace("BootCurrent: 0004", "BootCurrent: 0002");
        assert!(uefi_boot(&shell, true).is_err());
        // No second entry after recover: reported.
        let one: String = EFI_AFTER
            .lines()
            .filter(|l| !l.contains("debian ESP2"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(uefi_boot(&one, false).unwrap_err().contains("ESP2"));
        assert!(uefi_boot("EFI variables are not supported on this system.\n", false).is_err());
    }
}
