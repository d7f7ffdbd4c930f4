//! The run's state: its directories and the disks of each phase (the
//! server's old and new disks, the backup disk, IN and OUT), the disk space
//! check, and the report (target/qemu/e2e-report.json).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::drive::{Disk, Vm, VmRun, log_path, run_vm};
use super::rootfs::{Suite, pad_to_mib};
use super::variant::{Firmware, SERVER_MAC, Variant, one_disk};

use crate::util::{self, set_len, tail};

/// Where the disk images, the ISO and the phases' results go.
pub(super) const WORK: &str = "target/qemu/e2e";
/// The report of the last run.
pub(super) const REPORT: &str = "target/qemu/e2e-report.json";
/// The system disks: 6 GiB each; the replacement for DISK2 is twice as big.
pub(super) const DISK_MIB: u64 = 6 << 10;
/// The backup disk: one ext4 file system without a partition table, so
/// the harness reads the ISO out of it with debugfs(8).
pub(super) const BACKUP_MIB: u64 = 4 << 10;
/// Its UUID, fixed so the server's fstab can name it before it exists.
pub(super) const BACKUP_UUID: &str = "6d6b7265-7363-7565-2d65-326562616b75";
/// The server's arrays, LUKS header and file systems get these UUIDs at
/// provisioning (fixed like [`BACKUP_UUID`]), so its fstab, crypttab and
/// mdadm.conf, and the initramfs built from them, can be written before
/// the disks exist: on the host (tests/qemu/e2e/server-etc.sh). The md
/// ones in mdadm's notation, the ESPs' as FAT volume ids (mkfs.fat -i).
/// Recover must keep them all, as it keeps any UUID.
pub(super) const SERVER_UUIDS: &[(&str, &str)] = &[
    ("MD0_UUID", "6d6b7265:73637565:2d6d6430:00000001"),
    ("MD1_UUID", "6d6b7265:73637565:2d6d6431:00000001"),
    ("LUKS_UUID", "6d6b7265-7363-7565-2d6c-756b73000001"),
    ("ROOT_UUID", "6d6b7265-7363-7565-2d72-6f6f74000001"),
    ("HOME_UUID", "6d6b7265-7363-7565-2d68-6f6d65000001"),
    ("SWAP_UUID", "6d6b7265-7363-7565-2d73-776170000001"),
    ("BOOT_UUID", "6d6b7265-7363-7565-2d62-6f6f74000001"),
    ("ESP1_UUID", "E2E1-0E51"),
    ("ESP2_UUID", "E2E2-0E52"),
];
/// The server's static address on its NIC (lan0, pinned to
/// [`SERVER_MAC`] by server-etc.sh) and its gateway: QEMU's user network
/// (10.0.2.0/24, QEMU itself at 10.0.2.2, which answers ICMP echo even
/// with `restrict=on`).
pub(super) const SERVER_ADDR: &str = "10.0.2.15/24";
pub(super) const SERVER_GW: &str = "10.0.2.2";
/// The name server-etc.sh gives the server's NIC by its MAC.
pub(super) const SERVER_NIC: &str = "lan0";
/// What the server's phase runner prints once multi-user is reached.
pub(super) const SERVER_READY: &str = "MKR-E2E-READY";
/// What init prints when `mkrescue recover --unattended` is done.
pub(super) use mkrescue::init::{RECOVER_FAILED, RECOVER_OK};

/// The IN disk: a tar on a raw image padded to whole MiB, of the env file,
/// the LUKS key, tests/qemu/e2e and, for the phases that install
/// mkrescue on the server, its Debian package `deb` (as mkrescue.deb).
pub(super) fn in_disk(path: &Path, env: &str, deb: Option<&Path>) -> Result<()> {
    let stage = path.with_extension("d");
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage)?;
    std::fs::write(stage.join("env"), env)?;
    // The LUKS passphrase as a key file: no newline, as luksFormat
    // --key-file takes the whole file and the boot prompt takes a line.
    std::fs::write(stage.join("luks.key"), luks_passphrase())?;
    if let Some(deb) = deb {
        std::fs::copy(deb, stage.join("mkrescue.deb"))
            .with_context(|| format!("copying {}", deb.display()))?;
    }
    let st = Command::new("cp")
        .args(["-r", "tests/qemu/e2e"])
        .arg(stage.join("e2e"))
        .status()?;
    if !st.success() {
        bail!("copying tests/qemu/e2e");
    }
    let _ = std::fs::remove_file(path);
    let st = Command::new("tar")
        .arg("cf")
        .arg(path)
        .arg("-C")
        .arg(&stage)
        .arg(".")
        .status()
        .context("running tar")?;
    if !st.success() {
        bail!("tar of {} failed", stage.display());
    }
    pad_to_mib(path)
}

/// A blank raw disk (sparse).
pub(super) fn blank(path: &Path, mib: u64) -> Result<()> {
    let _ = std::fs::remove_file(path);
    set_len(path, mib << 20)
}

/// Unpacks the OUT disk (a tar written by the guest) into `dir`.
pub(super) fn read_out(img: &Path, dir: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let st = Command::new("tar")
        .arg("xf")
        .arg(img)
        .arg("-C")
        .arg(dir)
        .status()
        .context("running tar")?;
    if !st.success() {
        bail!("no results on the OUT disk {}", img.display());
    }
    Ok(())
}

/// The run's state: paths, options and the report so far.
pub(super) struct E2e {
    /// The scenario's server (`raid1-lvm`): what its scripts read as
    /// SCENARIO.
    pub(super) scenario: String,
    /// The Debian release of the server (`--suite`).
    pub(super) suite: Suite,
    /// The scenario and its suite in directory, log and report names:
    /// `raid1-lvm` (bookworm, as always), `raid1-lvm-trixie`.
    pub(super) name: String,
    pub(super) variant: Variant,
    pub(super) bin: PathBuf,
    /// The scenario's directory: provision's and before's disks and results.
    pub(super) work: PathBuf,
    /// The variant's directory below it: recover's, after's, degraded's.
    pub(super) vwork: PathBuf,
    pub(super) report: Vec<Value>,
    /// Delete DISK1/DISK2 once `before` has backed them up (CI: the
    /// disaster needs only the backup disk, and CI's disk is small).
    pub(super) prune_old: bool,
}

impl E2e {
    /// A file of the scenario (shared by the variants).
    pub(super) fn p(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    /// A file of this variant.
    pub(super) fn v(&self, name: &str) -> PathBuf {
        self.vwork.join(name)
    }

    /// provision and before belong to the scenario, the rest to the variant.
    pub(super) fn phase_dir(&self, phase: &str) -> &Path {
        match phase {
            "provision" | "before" => &self.work,
            _ => &self.vwork,
        }
    }

    /// Log name of a phase's VM (target/qemu/e2e-NAME.log) and, for the
    /// variant's phases, the phase's name in the report:
    /// `raid1-lvm-uefi-recover`, `recover-uefi`.
    pub(super) fn vm_name(&self, phase: &str) -> String {
        match phase {
            "provision" | "before" => format!("{}-{phase}", self.name),
            _ => format!("{}{}-{phase}", self.name, self.variant.suffix()),
        }
    }

    /// The serial log of `phase`'s VM (after's runs check.sh).
    pub(super) fn log(&self, phase: &str) -> PathBuf {
        log_path(&self.vm_name(if phase == "after" { "check" } else { phase }))
    }

    pub(super) fn phase_name(&self, phase: &str) -> String {
        format!("{phase}{}", self.variant.suffix())
    }

    /// The VARS file of a UEFI variant's VMs; None under BIOS.
    pub(super) fn uefi_vars(&self) -> Option<PathBuf> {
        (self.variant.firmware == Firmware::Uefi).then(|| self.v("OVMF_VARS.fd"))
    }

    pub(super) fn env(&self, phase: &str) -> String {
        env_of(phase, &self.scenario, self.suite)
    }

    /// Records one phase in the report (and prints it).
    pub(super) fn record(&mut self, name: &str, wall: f64, details: Value) {
        eprintln!("e2e phase {name}: {wall:.1}s {details}");
        self.report
            .push(json!({"phase": name, "ok": true, "seconds": round1(wall), "details": details}));
    }

    /// Writes the report to [`REPORT`] and to the run's own file:
    /// `e2e-report-SCENARIO-server.json` for a `server` run (provision,
    /// before), `e2e-report-SCENARIO{suffix}.json` for a variant's.
    pub(super) fn write_report(&self, failed: Option<(&str, String)>, server: bool) -> Result<()> {
        let total: f64 = self
            .report
            .iter()
            .filter_map(|p| p["seconds"].as_f64())
            .sum();
        let doc = json!({
            "scenario": self.name,
            "variant": variant_json(&self.variant),
            "ok": failed.is_none(),
            "failed_phase": failed.as_ref().map(|f| f.0),
            "error": failed.as_ref().map(|f| f.1.clone()),
            "total_seconds": round1(total) + 0.0,
            "phases": self.report,
        });
        let text = serde_json::to_string_pretty(&doc)? + "\n";
        std::fs::write(REPORT, &text).with_context(|| format!("writing {REPORT}"))?;
        // Each variant's last report stays too: one run no longer hides
        // another's times.
        let own = format!(
            "target/qemu/e2e-report-{}{}.json",
            self.name,
            if server {
                "-server".to_string()
            } else {
                self.variant.suffix()
            }
        );
        std::fs::write(&own, &text).with_context(|| format!("writing {own}"))?;
        eprintln!("report: {REPORT} (and {own})");
        for p in &self.report {
            eprintln!(
                "  {:<12} {:>7.1}s  {}",
                p["phase"].as_str().unwrap_or(""),
                p["seconds"].as_f64().unwrap_or(0.0),
                p["details"]
            );
        }
        Ok(())
    }

    /// The server's disks before the disaster, SeaBIOS boots DISK1 first
    /// (a one-disk scenario's: DISK1 only).
    pub(super) fn old_disks(&self) -> Vec<Disk> {
        let mut d = vec![
            Disk {
                serial: "DISK1",
                path: self.p("DISK1.raw"),
                boot: Some(1),
                readonly: false,
                nvme: false,
            },
            Disk {
                serial: "DISK2",
                path: self.p("DISK2.raw"),
                boot: Some(2),
                readonly: false,
                nvme: false,
            },
        ];
        d.truncate(self.disk_count());
        d
    }

    /// Whether the server's layout has an md RAID (checked after recover,
    /// pulled in degraded).
    pub(super) fn has_raid(&self) -> bool {
        !one_disk(&self.scenario)
    }

    /// 1 for a one-disk scenario ([`one_disk`]), else 2.
    pub(super) fn disk_count(&self) -> usize {
        if one_disk(&self.scenario) { 1 } else { 2 }
    }

    /// The blank replacements' sizes in MiB: NEW1 as big as DISK1, NEW2
    /// twice DISK2; with `--disks smaller` both
    /// [`super::variant::SMALLER_PERCENT`] of a server disk.
    pub(super) fn new_disk_mib(&self) -> [u64; 2] {
        if self.variant.moved.smaller {
            [self.variant.new_disk_mib(DISK_MIB); 2]
        } else {
            [DISK_MIB, 2 * DISK_MIB]
        }
    }

    /// The blank replacements: NEW1 as big as DISK1, NEW2 twice DISK2.
    /// SeaBIOS boots NEW1 first. Under UEFI they get no bootindex: OVMF
    /// would rewrite BootOrder from QEMU's bootindex list and delete the
    /// entries that match none of it (OvmfPkg QemuBootOrderLib,
    /// SetBootOrderFromQemu/PruneBootVariables), so the firmware would not
    /// boot through the entries recover wrote; without it the NVRAM's
    /// BootOrder decides, as on a real machine.
    pub(super) fn new_disks(&self) -> Vec<Disk> {
        let uefi = self.variant.firmware == Firmware::Uefi;
        let mut d = vec![
            Disk {
                serial: "NEW1",
                path: self.v("NEW1.raw"),
                boot: (!uefi).then_some(1),
                readonly: false,
                nvme: self.variant.nvme(),
            },
            Disk {
                serial: "NEW2",
                path: self.v("NEW2.raw"),
                boot: (!uefi).then_some(2),
                readonly: false,
                nvme: self.variant.nvme(),
            },
        ];
        d.truncate(self.disk_count());
        d
    }

    pub(super) fn backup_disk(&self) -> Disk {
        Disk {
            serial: "BACKUP",
            path: self.p("BACKUP.raw"),
            boot: None,
            readonly: false,
            nvme: false,
        }
    }

    /// IN (scripts, env, binary) and a blank OUT disk for `phase`.
    pub(super) fn io_disks(&self, phase: &str) -> Result<Vec<Disk>> {
        let dir = self.phase_dir(phase);
        let in_img = dir.join(format!("in-{phase}.tar"));
        // The server gets mkrescue as an admin does, from its package
        // (provision installs it, before installs it again so that a run
        // from before tests the binary of this run).
        let deb = match phase {
            "provision" | "before" => Some(crate::deb::package(
                &self.bin,
                &Path::new(WORK).join("deb"),
                false,
            )?),
            _ => None,
        };
        in_disk(&in_img, &self.env(phase), deb.as_deref())?;
        let out_img = dir.join(format!("out-{phase}.img"));
        blank(&out_img, 64)?;
        Ok(vec![
            Disk {
                serial: "MKRIN",
                path: in_img,
                boot: None,
                readonly: false,
                nvme: false,
            },
            Disk {
                serial: "MKROUT",
                path: out_img,
                boot: None,
                readonly: false,
                nvme: false,
            },
        ])
    }

    /// The MAC of the server's NIC in `phase`: the server's own in before
    /// (its network configuration is pinned to it, and the rescue image
    /// records it), the replacement machine's after the disaster
    /// ([`Variant::mac`]: another one under `--nic new-mac`).
    pub(super) fn server_mac(&self, phase: &str) -> &'static str {
        match phase {
            "provision" | "before" => SERVER_MAC,
            _ => self.variant.mac(),
        }
    }

    /// Replies to the prompts of a server boot (the LUKS passphrase).
    pub(super) fn server_answers(&self) -> Vec<(&'static str, String)> {
        if self.scenario == "luks-lvm" {
            vec![("Please unlock disk", luks_passphrase())]
        } else {
            Vec::new()
        }
    }

    /// Boots the server from `disks` with the IN/OUT disks of `phase`,
    /// runs the phase and returns the run and its results directory.
    pub(super) fn server_phase(&self, phase: &str, disks: Vec<Disk>) -> Result<(VmRun, PathBuf)> {
        let mut all = disks;
        all.push(self.backup_disk());
        all.extend(self.io_disks(phase)?);
        let uefi_vars = match phase {
            // systemd-boot needs UEFI from the start, as does the UEFI-only
            // GRUB of uefi-gpt: the server's own variable store, fresh for
            // each before (OVMF boots the ESP's removable path, which
            // bootctl or grub-install --removable installed).
            "before" if super::server_variant(&self.scenario).firmware == Firmware::Uefi => {
                let v = self.p("OVMF_VARS-server.fd");
                mkrescue::vm::copy_vars(mkrescue::vm::OVMF_VARS, &v)?;
                Some(v)
            }
            "before" => None,
            _ => self.uefi_vars(),
        };
        if let Some(v) = &uefi_vars {
            anyhow::ensure!(
                v.exists(),
                "no {} (the firmware variables recover wrote): run from the recover phase first",
                v.display()
            );
        }
        let vm = Vm {
            name: self.vm_name(phase),
            kernel: None,
            cdrom: None,
            uefi_vars,
            tftp: None,
            mac: Some(self.server_mac(phase).to_string()),
            disks: all,
            ready: SERVER_READY,
            type_on_ready: None,
            answers: self.server_answers(),
            timed: vec!["MKR-E2E-EXIT="],
            fail_when: vec![],
            timeout: Duration::from_secs(1500),
        };
        let run = run_vm(&vm)?;
        let dir = self.phase_dir(phase);
        let out = dir.join(format!("out-{phase}"));
        let got = read_out(&dir.join(format!("out-{phase}.img")), &out);
        if !run.text.contains("MKR-E2E-EXIT=0") {
            // The script's own output says more than the shutdown noise at
            // the end of the serial log.
            let script = std::fs::read_to_string(out.join(format!("{phase}.log")))
                .unwrap_or_else(|_| run.text.clone());
            bail!(
                "phase script {phase}.sh failed on the server (serial log {}):\n{}",
                run.log.display(),
                tail(&script, 40)
            );
        }
        got?;
        Ok((run, out))
    }
}

/// The env file of a phase's IN disk (sourced by the scripts).
pub(super) fn env(phase: &str, scenario: &str) -> String {
    let mut s = format!(
        "PHASE={phase}\nSCENARIO={scenario}\nBACKUP_UUID={BACKUP_UUID}\nSERVER_MAC={SERVER_MAC}\nSERVER_ADDR={SERVER_ADDR}\nSERVER_GW={SERVER_GW}\n"
    );
    for (k, v) in SERVER_UUIDS {
        s.push_str(&format!("{k}={v}\n"));
    }
    s
}

/// [`env`] of a server on `suite`: SUITE=trixie added for Debian 13
/// (before.sh then builds the ISO twice); bookworm's is [`env`]'s text
/// as it always was (its initramfs cache key hashes it).
pub(super) fn env_of(phase: &str, scenario: &str, suite: Suite) -> String {
    let mut s = env(phase, scenario);
    if suite != Suite::Bookworm {
        s.push_str(&format!("SUITE={}\n", suite.codename()));
    }
    s
}

/// The report's `variant`: boot and firmware, and for issue 18's other
/// machine `moved` (`--disks smaller,nvme --nic new-mac`).
pub(super) fn variant_json(v: &Variant) -> Value {
    let mut j = json!({
        "boot": format!("{:?}", v.boot).to_lowercase(),
        "firmware": format!("{:?}", v.firmware).to_lowercase(),
    });
    let moved = v.moved_words();
    if !moved.is_empty() {
        j["moved"] = json!(moved);
    }
    j
}

pub(super) fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The LUKS passphrase of the luks-lvm scenario (also the key file's
/// content, without a newline).
pub(super) fn luks_passphrase() -> String {
    "e2e-luks-passphrase".to_string()
}

/// The host disk space the phases from `start` on take at their peak,
/// measured on the luks-lvm and raid1-lvm runs (BENCHMARKS.md): each
/// system disk holds about 1.5 GiB when full (its images are sparse, the
/// guest's zeros stay holes), the backup disk about 1.3 GiB.
pub(super) fn space_needed(start: usize, prune_old: bool) -> u64 {
    const GIB: u64 = 1 << 30;
    let new_disks = 3 * GIB + GIB / 2;
    if start >= 2 {
        new_disks
    } else if prune_old {
        // Old disks + backup, then backup + new disks: never all five.
        5 * GIB
    } else {
        3 * GIB + GIB / 2 + GIB + GIB / 2 + new_disks
    }
}

/// Refuses to start when the host's disk cannot hold the VMs' disks: a
/// full host disk pauses a VM silently (QEMU's werror=enospc) and was seen
/// to eat a CI run's 40 minutes. Files the run recreates count as free.
pub(super) fn check_space(e: &E2e, start: usize) -> Result<()> {
    let free = util::free_bytes(&e.work)?;
    let mut reusable = 0;
    let mut files = vec![e.v("NEW1.raw"), e.v("NEW2.raw")];
    if start < 2 {
        files.extend(e.old_disks().into_iter().map(|d| d.path));
        files.push(e.p("BACKUP.raw"));
    }
    for f in files {
        if let Ok(m) = std::fs::metadata(&f) {
            reusable += m.blocks() * 512;
        }
    }
    let need = space_needed(start, e.prune_old);
    eprintln!(
        "e2e: {} free under {} (+{} in disk images this run recreates), about {} needed",
        util::gib(free),
        e.work.display(),
        util::gib(reusable),
        util::gib(need)
    );
    if free + reusable < need {
        bail!(
            "{}: only {} free (+{} reusable), the e2e VMs' disks need about {}; free space there (cargo clean, or rm -r {WORK})",
            e.work.display(),
            util::gib(free),
            util::gib(reusable),
            util::gib(need)
        );
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;

    /// Pruning the old disks lowers the peak; resuming at recover needs
    /// only the new disks; the refusal names the directory and the fix.
    #[test]
    fn space_needed_follows_the_phases() {
        let (from_recover, pruned, kept) = (
            space_needed(2, false),
            space_needed(0, true),
            space_needed(0, false),
        );
        assert!(
            from_recover < pruned && pruned < kept,
            "{from_recover} {pruned} {kept}"
        );
        assert_eq!(space_needed(2, true), from_recover);
        let dir = std::env::temp_dir();
        let e = E2e {
            scenario: "raid1-lvm".into(),
            suite: Suite::Bookworm,
            name: "raid1-lvm".into(),
            variant: Variant::default(),
            bin: PathBuf::from("m"),
            work: dir.clone(),
            vwork: dir.join("no-such-variant-dir"),
            report: vec![],
            prune_old: true,
        };
        let free = util::free_bytes(&dir).unwrap();
        match check_space(&e, 0) {
            Ok(()) => assert!(free >= space_needed(0, true)),
            Err(err) => {
                let msg = err.to_string();
                assert!(msg.contains("free space there"), "{msg}");
                assert!(free < space_needed(0, true));
            }
        }
    }

    /// Every fixed UUID the scripts read comes from the env file, and every
    /// one in it is used: server-etc.sh writes them, provision.sh creates
    /// the devices with them.
    #[test]
    fn the_scripts_and_the_env_agree_on_the_server_uuids() {
        let e = env("provision", "luks-lvm");
        let used = |file: &str| -> Vec<String> {
            let text = std::fs::read_to_string(format!("../tests/qemu/e2e/{file}")).unwrap();
            let mut names: Vec<String> = text
                .split('$')
                .skip(1)
                .filter_map(|t| {
                    let t = t.trim_start_matches('{').trim_start_matches('"');
                    let n: String = t
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    n.ends_with("_UUID").then_some(n)
                })
                .collect();
            names.sort();
            names.dedup();
            names
        };
        let etc = used("server-etc.sh");
        let prov = used("provision.sh");
        for (k, v) in SERVER_UUIDS {
            assert!(
                e.contains(&format!("\n{k}={v}\n")),
                "{k} not in the env:\n{e}"
            );
            assert!(
                prov.contains(&k.to_string()),
                "provision.sh does not create a device with {k}"
            );
        }
        for n in etc.iter().chain(&prov) {
            assert!(
                n == "BACKUP_UUID" || SERVER_UUIDS.iter().any(|(k, _)| k == n),
                "${n} is not in the env file"
            );
        }
        assert!(etc.contains(&"MD0_UUID".to_string()) && etc.contains(&"LUKS_UUID".to_string()));
    }

    #[test]
    fn uefi_variant_names_and_disks() {
        let e = E2e {
            scenario: "raid1-lvm".into(),
            suite: Suite::Bookworm,
            name: "raid1-lvm".into(),
            variant: Variant::parse("iso", "uefi").unwrap(),
            bin: PathBuf::from("m"),
            work: PathBuf::from("w"),
            vwork: PathBuf::from("w/iso-uefi"),
            report: vec![],
            prune_old: false,
        };
        assert_eq!(e.vm_name("recover"), "raid1-lvm-uefi-recover");
        assert_eq!(e.vm_name("before"), "raid1-lvm-before");
        assert_eq!(
            e.log("after"),
            Path::new("target/qemu/e2e-raid1-lvm-uefi-check.log")
        );
        assert_eq!(
            e.log("provision"),
            Path::new("target/qemu/e2e-raid1-lvm-provision.log")
        );
        assert_eq!(e.phase_name("after"), "after-uefi");
        assert_eq!(e.phase_dir("check"), Path::new("w/iso-uefi"));
        assert_eq!(e.phase_dir("before"), Path::new("w"));
        assert_eq!(
            e.uefi_vars(),
            Some(PathBuf::from("w/iso-uefi/OVMF_VARS.fd"))
        );
        let d = e.new_disks();
        assert!(
            d.iter()
                .all(|d| d.boot.is_none() && d.path.starts_with("w/iso-uefi"))
        );
        let bios = E2e {
            variant: Variant::default(),
            vwork: PathBuf::from("w/iso-bios"),
            ..e
        };
        assert_eq!(bios.uefi_vars(), None);
        let boots: Vec<_> = bios.new_disks().iter().map(|d| d.boot).collect();
        assert_eq!(boots, [Some(1), Some(2)]);
    }
}
