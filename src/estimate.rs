//! `mkrescue estimate`: how long recovering this host takes, per phase,
//! before the disaster (on the healthy host) or before `recover` (in the
//! rescue system).
//!
//! The phases are those of a recovery: **boot** (the rescue system, kernel
//! to ready), **layout** (partitions, md, LUKS, LVM, file systems),
//! **restore**, **finalize** (boot loader, and initramfs or grub.cfg when
//! they must be regenerated), **unmount**, then the recovered system's
//! **first boot**. The whole-site figure follows seed 002's recovery plan,
//! t = a·(w/s + b + n): `--hosts` servers (a) one after another, each with
//! its data over the restore rate (w/s), provisioning (b,
//! `estimate.provision_seconds`) and post-work (n,
//! `estimate.post_work_seconds`).
//!
//! **What it is built from, and how each part is measured:**
//! - the size of the backup (files and bytes) from its manifest;
//! - the restore rate: in the rescue system, a read probe (the head of the
//!   archive decompressed, parsed and hashed as restore does, for a few
//!   seconds, writing nothing) and a write probe of the free disks, all at
//!   once (zeros written over a region read as all zeros first, so
//!   nothing on a disk changes, flushed, again and again), divided by the
//!   copies the layout's md arrays write of each byte. The two run side by
//!   side, as restore reads and writes at once, and their times per byte
//!   add (see `restore_time`): the slower alone promised 68-86 MiB/s where
//!   the e2e's restore made 45 (BENCHMARKS.md, issue 16). Data under LUKS
//!   adds dm-crypt's time, from a probe of dm-crypt with the layout's
//!   cipher over a device that discards (`crypt_probe`). On the healthy host, the rate of the last restore recorded in
//!   [`RATES_PATH`] when there is one;
//! - a per-file cost: files created, chmod'ed and timestamped in a scratch
//!   directory on tmpfs;
//! - command costs: layout and finalize are a sequence of tools (sfdisk,
//!   mdadm, lvm, mkfs, grub-install, ...), and what they cost scales with
//!   how fast this machine starts a program, the exec probe (a tool run ten
//!   times, the median taken). Each step is a number of such starts,
//!   [`Units`], fitted to the e2e's measured phases (see there);
//! - boot times: the rescue system's, measured when running in it; the
//!   host's own last boot (systemd's timestamps) for the first boot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

pub use crate::backup::facts::RATES_PATH;
use crate::backup::facts::{Facts, Rate, Rates};
use crate::config::{Config, Regen};
use crate::exec::Cmd;
use crate::layout::Layout;
use crate::recover::plan::firmware::Target;

pub use crate::init::READY_AT;
pub use crate::recover::ESTIMATE as SAVED;

/// Costs in exec-probe units (one start of a small tool on this machine):
/// fitted on the e2e raid1-lvm server under TCG, each phase's measured
/// seconds divided by the exec probe of that run. From the fresh-clone CI
/// run of 2026-12-05 14:00 UTC on a quiet machine (exec probe 61-68 ms):
/// layout 7.9-9.1 s for 20 steps (6.5-6.7 units a step), grub-install
/// 6.7-9.3 s (106-138 units), the ESP copy with its boot entry 1.4-2.6 s,
/// update-initramfs 159.3 s (MODULES=list, 2443 units); on a loaded
/// machine the same update-initramfs took 204.1 s at a 59.3 ms probe (3442
/// units). The two fresh-clone CI runs after that (2026-12-05 18:00 and
/// 21:42 UTC, quiet) regenerated in 110.0 s at a 47 ms probe and 111.7 s
/// at 57 ms (2340 and 1960 units): the unit is set near those, as CI runs.
/// grub-bios-setup from the run after that change; grub-mkconfig from
/// its ratio to update-initramfs in the earlier runs of BENCHMARKS.md
/// (77 s to 360 s).
pub struct Units {
    /// One layout step (a partition table, an md create, a mkfs...),
    /// including the udev settle around it.
    pub layout_step: f64,
    /// Mounting one file system.
    pub mount: f64,
    /// `grub-install` for one BIOS disk, or onto the ESP.
    pub grub_install: f64,
    /// `grub-bios-setup` of the core image onto a further BIOS disk.
    pub bios_setup: f64,
    /// Copying `\EFI` onto another ESP (mount, cp, umount).
    pub esp_copy: f64,
    /// `grub-mkconfig`.
    pub grub_mkconfig: f64,
    /// Regenerating an initramfs (update-initramfs, dracut).
    pub initramfs: f64,
    /// Appending missing drivers to it (`recover::initrd_patch`): 1.4 s
    /// for nvme in the NVMe variant under TCG on 2026-12-06, where
    /// regenerating took 81 s.
    pub initramfs_append: f64,
    /// Binding /dev, /proc, /sys, /run and unmounting the tree.
    pub fixed: f64,
}

pub const UNITS: Units = Units {
    layout_step: 7.0,
    mount: 3.0,
    grub_install: 125.0,
    bios_setup: 30.0,
    esp_copy: 30.0,
    grub_mkconfig: 600.0,
    initramfs: 2200.0,
    initramfs_append: 30.0,
    fixed: 30.0,
};

/// One predicted phase.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Phase {
    pub name: String,
    pub seconds: f64,
    /// What it is made of, for the reader.
    pub basis: String,
}

/// The measurements the prediction is built from.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Probes {
    /// Median wall time of one start of a small tool (seconds).
    pub exec_seconds: f64,
    /// Per-file cost of creating a file with its metadata (seconds).
    pub file_seconds: f64,
    /// Restore read rate (bytes/s) and where it comes from.
    pub read_rate: Option<f64>,
    pub read_basis: String,
    /// Disk write rate (bytes/s) and where it comes from.
    pub write_rate: Option<f64>,
    pub write_basis: String,
    /// The read and write probes ran side by side in the rescue system:
    /// restore does both for each byte, so their times add (see
    /// [`restore_time`]). Otherwise the write rate is a recorded restore's,
    /// which already holds the reading, and the slower rate sets the pace.
    #[serde(default)]
    pub side_by_side: bool,
    /// dm-crypt's write rate for the layout's LUKS cipher (bytes/s,
    /// [`crypt_probe`]) and where it comes from.
    pub crypt_rate: Option<f64>,
    pub crypt_basis: String,
}

/// The estimate.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    pub host: String,
    /// Where it was made: `host` or `rescue`.
    pub on: String,
    pub backup: Option<Facts>,
    pub probes: Probes,
    pub phases: Vec<Phase>,
    /// `mkrescue recover` alone: layout to unmount.
    pub recover_seconds: f64,
    /// Rescue boot to the recovered system's first boot.
    pub total_seconds: f64,
    /// Seed 002's a·(w/s + b + n) for `hosts` servers.
    pub hosts: u32,
    pub site_seconds: f64,
}

impl Estimate {
    pub fn phase(&self, name: &str) -> Option<&Phase> {
        self.phases.iter().find(|p| p.name == name)
    }
}

/// What the model needs, gathered by [`gather`] (or given by a test).
pub struct Inputs<'a> {
    pub layout: &'a Layout,
    pub cfg: &'a Config,
    pub backup: Option<Facts>,
    pub rates: Rates,
    pub probes: Probes,
    pub in_rescue: bool,
    /// The rescue system's measured boot (kernel to ready).
    pub rescue_boot: Option<f64>,
    /// Layout steps of the plan.
    pub steps: usize,
    /// The finalize steps the plan will take.
    pub finalize: FinalizePlan,
    pub hosts: u32,
}

/// The finalize steps recover will take for this layout.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct FinalizePlan {
    pub grub_bios_disks: usize,
    /// The disks after the first get the first one's core image
    /// (grub-bios-setup) instead of a grub-install of their own.
    pub grub_bios_shared: bool,
    pub grub_efi: bool,
    pub esp_copies: usize,
    /// Predicted: the boot menu is regenerated.
    pub grub_mkconfig: bool,
    /// Predicted: the initramfs is regenerated, and why.
    pub initramfs: bool,
    /// Predicted: drivers are appended to it instead (`auto`, only drivers
    /// missing).
    pub initramfs_append: bool,
    pub initramfs_why: String,
}

/// The prediction from measured inputs.
pub fn model(i: &Inputs) -> Estimate {
    let u = &UNITS;
    let x = i.probes.exec_seconds;
    let mut phases = Vec::new();
    let ec = &i.cfg.estimate;
    let (boot, boot_basis) = match i.rescue_boot {
        Some(b) => (
            b,
            "measured: this rescue system's kernel to ready".to_string(),
        ),
        None => (
            ec.rescue_boot_seconds,
            "assumed: estimate.rescue_boot_seconds (not measured on this host)".to_string(),
        ),
    };
    phases.push(Phase {
        name: "boot".into(),
        seconds: boot,
        basis: boot_basis,
    });
    let luks = i.layout.luks.len();
    let pbkdf = luks as f64 * 2.0 * PBKDF_SECONDS;
    phases.push(Phase {
        name: "layout".into(),
        seconds: i.steps as f64 * u.layout_step * x + pbkdf,
        basis: format!(
            "{} steps × {} tool starts × {:.1} ms{}",
            i.steps,
            u.layout_step,
            x * 1e3,
            if luks > 0 {
                format!(
                    " + {luks} LUKS key slot(s) derived twice (format, open) × {PBKDF_SECONDS} s"
                )
            } else {
                String::new()
            }
        ),
    });
    let mounts = i
        .layout
        .mounts
        .iter()
        .filter(|m| m.fstype != "swap")
        .count();
    phases.push(Phase {
        name: "mount".into(),
        seconds: mounts as f64 * u.mount * x,
        basis: format!("{mounts} file systems"),
    });
    let (restore, restore_basis) = restore_time(i);
    phases.push(Phase {
        name: "restore".into(),
        seconds: restore,
        basis: restore_basis,
    });
    let f = &i.finalize;
    let mut units = 0.0;
    let mut what = Vec::new();
    if f.grub_bios_disks > 0 {
        let more = (f.grub_bios_disks - 1) as f64;
        if f.grub_bios_shared {
            units += u.grub_install + more * u.bios_setup;
        } else {
            units += (1.0 + more) * u.grub_install;
        }
        what.push(match (f.grub_bios_disks, f.grub_bios_shared) {
            (1, _) => "GRUB (BIOS) on 1 disk".to_string(),
            (n, true) => format!("GRUB (BIOS) on {n} disks (one core image)"),
            (n, false) => format!("GRUB (BIOS) on {n} disks"),
        });
    }
    if f.grub_efi {
        units += u.grub_install + f.esp_copies as f64 * u.esp_copy;
        what.push(format!("GRUB (UEFI) + {} ESP copies", f.esp_copies));
    }
    if f.grub_mkconfig {
        units += u.grub_mkconfig;
        what.push("grub-mkconfig".into());
    }
    if f.initramfs {
        units += u.initramfs;
        what.push(format!("initramfs ({})", f.initramfs_why));
    } else if f.initramfs_append {
        units += u.initramfs_append;
        what.push(format!(
            "drivers appended to the initramfs ({})",
            f.initramfs_why
        ));
    } else {
        what.push(format!("initramfs kept ({})", f.initramfs_why));
    }
    phases.push(Phase {
        name: "finalize".into(),
        seconds: units * x,
        basis: what.join(", "),
    });
    phases.push(Phase {
        name: "unmount".into(),
        seconds: u.fixed * x,
        basis: "unmount and sync".into(),
    });
    let (first, first_basis) = match i.rates.get("first_boot").filter(|r| r.seconds > 0.0) {
        Some(r) => (
            r.seconds,
            "measured: the host's last boot (systemd)".to_string(),
        ),
        None => (
            ec.first_boot_seconds,
            "assumed: estimate.first_boot_seconds (the host's boot was not recorded)".to_string(),
        ),
    };
    phases.push(Phase {
        name: "first boot".into(),
        seconds: first,
        basis: first_basis,
    });
    let recover_seconds: f64 = phases
        .iter()
        .filter(|p| {
            matches!(
                p.name.as_str(),
                "layout" | "mount" | "restore" | "finalize" | "unmount"
            )
        })
        .map(|p| p.seconds)
        .sum();
    let total_seconds: f64 = phases.iter().map(|p| p.seconds).sum();
    let hosts = i.hosts.max(1);
    let site_seconds = hosts as f64 * (total_seconds + ec.provision_seconds + ec.post_work_seconds);
    Estimate {
        host: i.layout.host.clone(),
        on: if i.in_rescue { "rescue" } else { "host" }.into(),
        backup: i.backup.clone(),
        probes: i.probes.clone(),
        phases,
        recover_seconds,
        total_seconds,
        hosts,
        site_seconds,
    }
}

/// What cryptsetup spends deriving a new LUKS key slot's key: its default
/// `--iter-time` of 2000 ms, which luksFormat benchmarks the PBKDF to
/// take (recover formats with the recorded PBKDF and cryptsetup's default
/// cost), and the same again to unlock it at `open`. The luks-lvm e2e's
/// layout took 13.7 s where its 20 steps' tool starts predict 8.7.
pub const PBKDF_SECONDS: f64 = 2.0;

/// w/s plus the per-file cost. The rate, from probes made side by side in
/// the rescue system: the time to read a byte plus the time to write it
/// (times the copies md writes), plus its encryption where it goes
/// through dm-crypt. Restore streams (a read-ahead thread decodes while
/// files are written), but what bounds it is what the probes share: the
/// CPUs, where decoding, the file systems, LVM, md and dm-crypt all run
/// (under TCG, and on any small VM), or one bus. Taking the slower probe
/// alone promised 68-86 MiB/s where the e2e restored at 45 (BENCHMARKS.md,
/// issue 16); the sum of the times is the conservative bound, and on a
/// disk-bound machine (decoding at 1 GB/s, a disk at 200 MB/s) it is 17%
/// under the disk's rate. With a recorded restore's rate as the write
/// rate (on the healthy host) the slower of the two sets the pace: that
/// rate already holds the reading.
fn restore_time(i: &Inputs) -> (f64, String) {
    let Some(b) = &i.backup else {
        return (0.0, "no backup found: nothing to restore".into());
    };
    let p = &i.probes;
    let rate = match (p.read_rate, p.write_rate) {
        (Some(r), Some(w)) if p.side_by_side && r > 0.0 && w > 0.0 => {
            Some(1.0 / (1.0 / r + 1.0 / w))
        }
        (Some(r), Some(w)) => Some(r.min(w)),
        (r, w) => r.or(w),
    };
    let Some(rate) = rate.filter(|r| *r > 0.0) else {
        return (
            0.0,
            "no restore rate: no read probe and no recorded restore".into(),
        );
    };
    let data = b.bytes as f64 / rate;
    let files = b.files as f64 * p.file_seconds;
    let luks_bytes = luks_bytes(i.layout, b);
    let (crypt, crypt_what) = match (luks_bytes, p.crypt_rate.filter(|r| *r > 0.0)) {
        (0, _) => (0.0, String::new()),
        (n, Some(r)) => (
            n as f64 / r,
            format!(
                " + {:.1} MiB through dm-crypt at {:.1} MiB/s ({})",
                n as f64 / MIB,
                r / MIB,
                p.crypt_basis
            ),
        ),
        (n, None) => (
            0.0,
            format!(
                " ({:.1} MiB through dm-crypt, not counted: {})",
                n as f64 / MIB,
                p.crypt_basis
            ),
        ),
    };
    (
        data + crypt + files,
        format!(
            "{:.1} MiB at {:.1} MiB/s ({}{}; {}{}){crypt_what} + {} files × {:.2} ms",
            b.bytes as f64 / MIB,
            rate / MIB,
            p.read_basis,
            p.read_rate
                .map(|r| format!(" {:.1} MiB/s", r / MIB))
                .unwrap_or_default(),
            p.write_basis,
            if p.side_by_side {
                "; their times added"
            } else {
                ""
            },
            b.files,
            p.file_seconds * 1e3
        ),
    )
}

const MIB: f64 = (1u64 << 20) as f64;

/// The backup's data bytes that restore writes through dm-crypt: those of
/// the mount points whose file system sits on a LUKS container.
fn luks_bytes(layout: &Layout, b: &Facts) -> u64 {
    layout
        .mounts
        .iter()
        .filter(|m| on_luks(layout, &m.source, 0))
        .filter_map(|m| b.bytes_by_mount.get(&m.target))
        .sum()
}

/// Whether `dev` is a LUKS mapping or stacked on one (LVM, md).
fn on_luks(layout: &Layout, dev: &str, depth: usize) -> bool {
    if depth > 8 {
        return false;
    }
    if layout.luks.iter().any(|x| x.mapper == dev) {
        return true;
    }
    let below: Vec<&String> = if let Some(lv) = layout.lvm.lvs.iter().find(|lv| {
        dev == format!("/dev/{}/{}", lv.vg, lv.name)
            || dev
                == format!(
                    "/dev/mapper/{}-{}",
                    lv.vg.replace('-', "--"),
                    lv.name.replace('-', "--")
                )
    }) {
        layout
            .lvm
            .pvs
            .iter()
            .filter(|pv| pv.vg.as_deref() == Some(lv.vg.as_str()))
            .map(|pv| &pv.device)
            .collect()
    } else if let Some(md) = layout.md.iter().find(|m| m.path == dev) {
        md.devices.iter().collect()
    } else {
        Vec::new()
    };
    below.into_iter().any(|d| on_luks(layout, d, depth + 1))
}

// ---------------------------------------------------------------------------
// Probes

/// Median wall time of starting a small tool that recover runs anyway.
pub fn exec_probe() -> Result<f64> {
    let tool = ["sfdisk", "mdadm", "true"]
        .into_iter()
        .find(|t| crate::sys::in_path(t))
        .context("no sfdisk, mdadm or true in PATH to time")?;
    let mut times = Vec::new();
    for _ in 0..11 {
        let t = Instant::now();
        std::process::Command::new(tool)
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .with_context(|| format!("running {tool} --version"))?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Per-file cost of what restore does for each file (create, write a few
/// bytes, chmod, set times), in a scratch directory under `dir`.
pub fn file_probe(dir: &Path) -> Result<f64> {
    use std::os::unix::fs::PermissionsExt;
    let d = dir.join(format!("mkrescue-estimate-{}", std::process::id()));
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    const N: usize = 200;
    let t = Instant::now();
    let r = (|| -> std::io::Result<()> {
        for n in 0..N {
            let p = d.join(format!("f{n}"));
            std::fs::write(&p, b"probe")?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640))?;
            let f = std::fs::File::options().write(true).open(&p)?;
            f.set_modified(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))?;
        }
        Ok(())
    })();
    let secs = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&d);
    r.with_context(|| format!("creating files in {}", d.display()))?;
    Ok(secs / N as f64)
}

/// How long the read probe and the write probes run.
const PROBE_SECONDS: f64 = 2.0;

/// What [`write_probe`] writes on a disk.
const WRITE_PROBE_LEN: usize = 32 << 20;

/// Write rate of `disk`: `LEN` bytes of zeros written at offset `AT` and
/// flushed, only when that region reads as all zeros first, so the write
/// changes nothing on the disk; repeated until `seconds` have passed (at
/// least once). `Err` with the reason when the region holds data.
pub fn write_probe(disk: &str, seconds: f64) -> Result<std::result::Result<f64, String>> {
    use std::io::{Read, Seek, SeekFrom, Write};
    const AT: u64 = 64 << 20;
    const LEN: usize = WRITE_PROBE_LEN;
    let mut f = std::fs::File::options()
        .read(true)
        .write(true)
        .open(disk)
        .with_context(|| format!("opening {disk}"))?;
    let mut buf = vec![0u8; LEN];
    f.seek(SeekFrom::Start(AT))?;
    f.read_exact(&mut buf)
        .with_context(|| format!("reading {disk}"))?;
    if buf.iter().any(|b| *b != 0) {
        return Ok(Err(format!(
            "{disk} holds data where the probe would write: not probed"
        )));
    }
    let t = Instant::now();
    let mut written = 0usize;
    loop {
        f.seek(SeekFrom::Start(AT))?;
        f.write_all(&buf)
            .with_context(|| format!("writing zeros over zeros on {disk}"))?;
        f.sync_data().with_context(|| format!("flushing {disk}"))?;
        written += LEN;
        if t.elapsed().as_secs_f64() >= seconds {
            break;
        }
    }
    Ok(Ok(written as f64 / t.elapsed().as_secs_f64().max(1e-6)))
}

/// dm-crypt's write rate (bytes/s) for `cipher` with a `key_bits` key,
/// measured on dm-crypt itself: a crypt mapping with a throwaway random
/// key over a device-mapper `zero` target (which discards what is written
/// to it), written and flushed again and again for `seconds`. No disk and
/// no file is touched, and both mappings are removed afterwards. It runs
/// the kernel's cipher as the restore will, sector by sector on dm-crypt's
/// own threads. (`cryptsetup benchmark` cannot stand in: it encrypts
/// through AF_ALG one sector per system call, and under TCG said 2 MiB/s
/// where dm-crypt wrote about 40.) `Err` with the reason when it cannot
/// say (no dmsetup, no dm-crypt).
pub fn crypt_probe(cipher: &str, key_bits: u32, seconds: f64) -> std::result::Result<f64, String> {
    use std::io::{Read, Write};
    if !crate::sys::in_path("dmsetup") {
        return Err("no dmsetup here to probe dm-crypt".into());
    }
    const SECTORS: u64 = 2 << 20; // 1 GiB, never written: `zero` keeps nothing
    let base = format!("mkrescue-probe-{}", std::process::id());
    let mut key = vec![0u8; (key_bits as usize).div_ceil(8)];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .map_err(|e| format!("reading /dev/urandom: {e}"))?;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let tables = [
        (format!("{base}-zero"), format!("0 {SECTORS} zero\n")),
        (
            format!("{base}-crypt"),
            format!("0 {SECTORS} crypt {cipher} {hex} 0 /dev/mapper/{base}-zero 0\n"),
        ),
    ];
    let guard = DmProbe {
        names: tables.iter().map(|t| t.0.clone()).collect(),
    };
    for (name, table) in &tables {
        // The table (with the key) on stdin, not on a command line.
        let mut c = dmsetup();
        c.args(["create", name])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = c
            .spawn()
            .map_err(|e| format!("dmsetup create {name}: {e}"))?;
        if let Some(mut i) = child.stdin.take() {
            let _ = i.write_all(table.as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("dmsetup create {name}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "dmsetup create {name} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    let dev = format!("/dev/mapper/{base}-crypt");
    let rate = (|| -> std::io::Result<f64> {
        let mut f = std::fs::File::options().write(true).open(&dev)?;
        let buf = vec![0u8; WRITE_PROBE_LEN];
        let t = Instant::now();
        let (mut written, mut at) = (0u64, 0u64);
        loop {
            if at + buf.len() as u64 > SECTORS * 512 {
                std::io::Seek::rewind(&mut f)?;
                at = 0;
            }
            f.write_all(&buf)?;
            f.sync_data()?;
            written += buf.len() as u64;
            at += buf.len() as u64;
            if t.elapsed().as_secs_f64() >= seconds {
                break;
            }
        }
        Ok(written as f64 / t.elapsed().as_secs_f64().max(1e-6))
    })()
    .map_err(|e| format!("writing {dev}: {e}"));
    drop(guard);
    rate
}

/// `dmsetup`, told to make its device nodes itself where no udevd runs
/// (the rescue system), as recover's steps are.
fn dmsetup() -> std::process::Command {
    let mut c = std::process::Command::new("dmsetup");
    if !Path::new("/run/udev/control").exists() {
        c.env("DM_DISABLE_UDEV", "1");
    }
    c
}

/// The probe's device-mapper devices, removed (top first) when dropped.
struct DmProbe {
    names: Vec<String>,
}

impl Drop for DmProbe {
    fn drop(&mut self) {
        for name in self.names.iter().rev() {
            let _ = dmsetup()
                .args(["remove", "--retry", name])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// The rescue system's boot, kernel start to the ready marker, as its
/// init wrote it.
pub fn rescue_boot_seconds(root: &Path) -> Option<f64> {
    std::fs::read_to_string(root.join(READY_AT.trim_start_matches('/')))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether this is a rescue system made by mkrescue.
pub fn in_rescue(root: &Path) -> bool {
    root.join(READY_AT.trim_start_matches('/')).exists()
        || root.join("etc/mkrescue-rescue").exists()
}

/// Options of `mkrescue estimate`.
#[derive(Debug, Clone, Default)]
pub struct EstimateOptions {
    pub root: PathBuf,
    pub layout: PathBuf,
    pub from: Option<String>,
    pub archive: Option<String>,
    pub identity: Option<String>,
    pub hosts: u32,
    /// Skip the probes that read the backup and write a disk.
    pub no_probe: bool,
}

/// Gathers the inputs on this machine and makes the estimate.
pub fn estimate(cfg: &Config, o: &EstimateOptions) -> Result<Estimate> {
    let layout = load_layout(&o.layout)?;
    let rescue = in_rescue(&o.root);
    // In the rescue system the write probe of the target disks runs beside
    // the read probe of the backup (see the module doc): it starts when
    // the read probe does, and not at all if the backup cannot be read.
    let side_by_side = rescue && !o.no_probe;
    let (backup, writes) = std::thread::scope(|sc| {
        let (started, start) = std::sync::mpsc::sync_channel::<()>(1);
        let writer = side_by_side.then(|| {
            sc.spawn(move || {
                start.recv().ok()?;
                Some(probe_target_disks(cfg, PROBE_SECONDS))
            })
        });
        let opts = crate::backup::facts::FactsOptions {
            root: o.root.clone(),
            from: o.from.clone(),
            archive: o.archive.clone(),
            identity: o.identity.clone(),
            probe_seconds: if o.no_probe { 0.0 } else { PROBE_SECONDS },
            probe_started: side_by_side.then_some(started),
            mounts: layout.data_mounts(),
        };
        let backup = crate::backup::facts::facts(cfg, &opts);
        // Unblocks the writer when the read probe never started.
        drop(opts);
        let writes = writer.and_then(|h| h.join().ok().flatten());
        (backup, writes)
    });
    let backup = backup.map_err(|e| {
        crate::error::fail(
            crate::error::code_of(&e),
            format!(
                "{e:#}; the estimate needs the backup recover would restore: make one with `mkrescue backup`, or give --from URL"
            ),
        )
    })?;
    let recorded = crate::backup::facts::read_recorded(&o.root);
    let mut rates = recorded.rates.clone();
    if !rescue && let Some(b) = crate::sys::host::boot_seconds() {
        rates.insert(
            "first_boot".into(),
            Rate {
                seconds: b,
                ..Rate::default()
            },
        );
    }
    let mut probes = Probes {
        exec_seconds: exec_probe()?,
        file_seconds: file_probe(Path::new(if rescue { "/run" } else { "/tmp" }))?,
        ..Probes::default()
    };
    match backup.read_probe.as_ref().and_then(Rate::per_sec) {
        Some(r) => {
            probes.read_rate = Some(r);
            probes.read_basis = "read probe".into();
        }
        None => {
            let rec = rates
                .get("restore")
                .or(rates.get("verify"))
                .and_then(Rate::per_sec);
            probes.read_rate = rec;
            probes.read_basis = if rec.is_some() {
                "rate of the last restore or verify".into()
            } else {
                "no read rate".into()
            };
        }
    }
    if side_by_side {
        match writes {
            Some(Ok(Ok((disks, w)))) => {
                let amp = write_amplification(&layout);
                probes.write_rate = Some(w / amp);
                probes.side_by_side = true;
                probes.write_basis = format!(
                    "write probe of {disks} beside the read probe: {:.1} MiB/s, {amp:.1} bytes written per byte of data",
                    w / MIB
                );
            }
            Some(Ok(Err(why))) => probes.write_basis = why,
            Some(Err(e)) => probes.write_basis = format!("no write probe: {e:#}"),
            None => probes.write_basis = "no write probe: the read probe did not run".into(),
        }
    } else if let Some(r) = rates.get("restore").and_then(Rate::per_sec) {
        probes.write_rate = Some(r);
        probes.write_basis = "rate of the last restore".into();
    } else {
        probes.write_basis = "disk write rate not probed (only in the rescue system)".into();
    }
    // After the read and write probes, not beside them: it would take
    // their CPU. Only for layouts with LUKS, one cipher (the first), and
    // only in the rescue system: on the healthy host it would make
    // device-mapper devices that LVM and udev there would see.
    match layout.luks.first() {
        Some(x) if side_by_side => match crypt_probe(&x.cipher, x.key_bits, PROBE_SECONDS) {
            Ok(r) => {
                probes.crypt_rate = Some(r);
                probes.crypt_basis = format!("dm-crypt probe of {}", x.cipher);
            }
            Err(why) => probes.crypt_basis = why,
        },
        Some(_) => probes.crypt_basis = "dm-crypt probed only in the rescue system".into(),
        None => {}
    }
    let target_modules = if rescue { free_disk_modules(cfg) } else { None };
    // In the rescue system recover converts the layout for the firmware
    // it runs under (an ESP, or a bios_grub partition): its finalize does
    // what that layout needs. On the host: recovered onto its like.
    let (fw_layout, converted) = if rescue {
        for_firmware(&layout, rescue_firmware(cfg, &o.root))
    } else {
        (layout.clone(), false)
    };
    let finalize = finalize_for(
        &fw_layout,
        converted,
        cfg,
        &recorded.boot_modules,
        target_modules.as_ref(),
    );
    let steps = plan_steps(&fw_layout).or_else(|_| plan_steps(&layout))?;
    Ok(model(&Inputs {
        layout: &layout,
        cfg,
        backup: Some(backup),
        rates,
        probes,
        in_rescue: rescue,
        rescue_boot: if rescue {
            rescue_boot_seconds(&o.root)
        } else {
            None
        },
        steps,
        finalize,
        hosts: o.hosts,
    }))
}

fn load_layout(path: &Path) -> Result<Layout> {
    if !path.exists() {
        return Err(crate::error::fail(
            crate::error::Code::NoLayout,
            format!(
                "no saved layout at {}: run `mkrescue layout save` (or give --layout FILE)",
                path.display()
            ),
        ));
    }
    Layout::load(path)
}

/// The number of layout steps recover's plan has for this layout on disks
/// like the host's.
/// The firmware recover converts for in this rescue system:
/// `[recover] firmware`, `auto` being what it booted with (as
/// `recover::firmware_target` without `--firmware`).
fn rescue_firmware(cfg: &Config, root: &Path) -> Target {
    match cfg.recover.firmware {
        crate::config::Firmware::Bios => Target::Bios,
        crate::config::Firmware::Uefi => Target::Uefi,
        crate::config::Firmware::Auto if root.join("sys/firmware/efi").is_dir() => Target::Uefi,
        crate::config::Firmware::Auto => Target::Bios,
    }
}

/// `layout` as recover makes it for `target` on disks of its recorded
/// sizes (plan::firmware::convert), and whether recover converts (then
/// finalize makes grub.cfg again); the layout as it is when the
/// conversion is refused (recover says why, before any estimate counts).
pub fn for_firmware(layout: &Layout, target: Target) -> (Layout, bool) {
    let map = layout
        .disks
        .iter()
        .map(|d| (d.path.clone(), d.path.clone()))
        .collect();
    let sizes = layout
        .disks
        .iter()
        .map(|d| (d.path.clone(), d.size))
        .collect();
    match crate::recover::plan::firmware::convert(layout, &map, &sizes, target) {
        Ok(c) => {
            let converted = !c.lines.is_empty();
            (c.layout, converted)
        }
        Err(_) => (layout.clone(), false),
    }
}

/// [`finalize_plan`] of a layout recover `converted` for the machine's
/// firmware: grub.cfg is made again then (finalize, `boot_menu = auto`:
/// it was made for the other platform).
pub fn finalize_for(
    layout: &Layout,
    converted: bool,
    cfg: &Config,
    host_modules: &[String],
    target_modules: Option<&std::collections::BTreeSet<String>>,
) -> FinalizePlan {
    let mut f = finalize_plan(layout, cfg, host_modules, target_modules);
    if converted && cfg.recover.bootloader && cfg.recover.boot_menu == Regen::Auto {
        f.grub_mkconfig = true;
    }
    f
}

fn plan_steps(layout: &Layout) -> Result<usize> {
    let disks: BTreeMap<String, String> = layout
        .disks
        .iter()
        .map(|d| (d.path.clone(), d.path.clone()))
        .collect();
    let opt = crate::recover::plan::Options {
        udev: true,
        key_file: Some("/dev/null".into()),
        work_dir: crate::recover::WORK_DIR.into(),
        target_sizes: layout
            .disks
            .iter()
            .map(|d| (d.path.clone(), d.size))
            .collect(),
        resize: crate::config::Resize::None,
    };
    Ok(crate::recover::plan::plan(layout, &disks, &opt)?
        .steps
        .len())
}

/// The finalize steps: boot loaders from the layout; the boot menu and the
/// initramfs by the configuration. With `auto`, the boot menu is kept
/// (recover recreates every UUID), and the initramfs too unless the disks
/// here need a module the host's own boot disks did not use
/// (`host_modules`, recorded by `backup`; `target_modules`: the drivers of
/// the free disks here, in the rescue system): recover checks the restored
/// initramfs itself once it is there.
pub fn finalize_plan(
    layout: &Layout,
    cfg: &Config,
    host_modules: &[String],
    target_modules: Option<&std::collections::BTreeSet<String>>,
) -> FinalizePlan {
    let disks: BTreeMap<String, String> = layout
        .disks
        .iter()
        .map(|d| (d.path.clone(), d.path.clone()))
        .collect();
    let r = &cfg.recover;
    let (esp, others) = crate::recover::finalize::esps(layout);
    // With `auto` and nothing but a driver missing, recover appends it to
    // the image rather than regenerating it.
    let mut initramfs_append = false;
    let (initramfs, why) = match r.initramfs {
        Regen::Always => (true, "recover.initramfs = always".to_string()),
        Regen::Never => (false, "recover.initramfs = never".to_string()),
        Regen::Auto => {
            let new: Vec<&str> = target_modules
                .into_iter()
                .flatten()
                .filter(|m| !host_modules.contains(m))
                .map(String::as_str)
                .collect();
            if host_modules.is_empty() {
                (
                    false,
                    "auto: the host's disk drivers are not recorded (run `mkrescue backup` on it)"
                        .to_string(),
                )
            } else if !new.is_empty() {
                initramfs_append = true;
                (
                    false,
                    format!(
                        "auto: the disks here need {}, which the host's did not use",
                        new.join(", ")
                    ),
                )
            } else if target_modules.is_some() {
                (
                    false,
                    "auto: the disks here use the host's drivers".to_string(),
                )
            } else {
                (false, "auto: kept on disks like the host's".to_string())
            }
        }
    };
    FinalizePlan {
        grub_bios_disks: if r.bootloader {
            crate::recover::finalize::bios_disks(layout, &disks).len()
        } else {
            0
        },
        grub_bios_shared: crate::recover::finalize::grub_dir_on_abstraction(layout, "grub-install"),
        grub_efi: r.bootloader && esp.is_some(),
        esp_copies: if r.bootloader && esp.is_some() {
            others.len()
        } else {
            0
        },
        grub_mkconfig: r.bootloader && r.boot_menu == Regen::Always,
        initramfs,
        initramfs_append,
        initramfs_why: why,
    }
}

/// The modules bound to the disks here that recover may write (not in use).
fn free_disk_modules(cfg: &Config) -> Option<std::collections::BTreeSet<String>> {
    let lsblk = Cmd::new("lsblk")
        .args(["--json", "--bytes", "-O"])
        .read()
        .ok()?;
    let targets = crate::recover::mapping::TargetDisk::from_lsblk(&lsblk).ok()?;
    let in_use = crate::recover::mapping::in_use_disks(&lsblk, &cfg.output.volume_id).ok()?;
    let mut out = std::collections::BTreeSet::new();
    for t in targets.iter().filter(|t| !in_use.contains_key(&t.path)) {
        out.extend(crate::sys::block::block_modules(Path::new("/sys"), &t.path).ok()?);
    }
    Some(out)
}

/// The write probe on every disk here that is not in use (disks recover
/// may erase anyway), all at once: their aggregate rate, which is what
/// separate disks give together and what disks sharing one backend (VM
/// images on one host disk) share. Disks holding data where the probe
/// writes are left out, and said.
/// Write probes of every free target disk at once for `seconds`; the sum
/// of their rates and the disks probed, or why none was.
fn probe_target_disks(
    cfg: &Config,
    seconds: f64,
) -> Result<std::result::Result<(String, f64), String>> {
    let lsblk = Cmd::new("lsblk").args(["--json", "--bytes", "-O"]).read()?;
    let targets = crate::recover::mapping::TargetDisk::from_lsblk(&lsblk)?;
    let in_use = crate::recover::mapping::in_use_disks(&lsblk, &cfg.output.volume_id)?;
    let free: Vec<String> = targets
        .iter()
        .filter(|t| !in_use.contains_key(&t.path) && t.size >= 256 << 20)
        .map(|t| t.path.clone())
        .collect();
    if free.is_empty() {
        return Ok(Err("no disk free for a write probe".into()));
    }
    let results: Vec<(String, Result<std::result::Result<f64, String>>)> =
        std::thread::scope(|sc| {
            let handles: Vec<_> = free
                .iter()
                .map(|d| (d.clone(), sc.spawn(move || write_probe(d, seconds))))
                .collect();
            handles
                .into_iter()
                .map(|(d, h)| {
                    let r = h
                        .join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("the probe of {d} panicked")));
                    (d, r)
                })
                .collect()
        });
    let mut probed = Vec::new();
    let mut skipped = Vec::new();
    let mut rate = 0.0;
    for (d, r) in results {
        match r? {
            Ok(w) => {
                probed.push(d);
                rate += w;
            }
            Err(why) => skipped.push(why),
        }
    }
    if probed.is_empty() {
        return Ok(Err(skipped.join("; ")));
    }
    Ok(Ok((probed.join(" + "), rate)))
}

/// Bytes written to the disks per byte of file data: the most copies any
/// md array of the layout keeps (raid1: one per member; raid10: two;
/// raid4/5/6: the stripe plus its parity).
fn write_amplification(layout: &Layout) -> f64 {
    layout
        .md
        .iter()
        .map(|m| {
            let n = m.raid_devices.max(1) as f64;
            match m.level.as_str() {
                "raid1" => n,
                "raid10" => 2.0,
                "raid4" | "raid5" if n > 1.0 => n / (n - 1.0),
                "raid6" if n > 2.0 => n / (n - 2.0),
                _ => 1.0,
            }
        })
        .fold(1.0, f64::max)
}

/// The human-readable table.
pub fn render(e: &Estimate) -> String {
    let mut s = format!(
        "Recovery time of {} (estimated on the {}):\n",
        e.host,
        if e.on == "rescue" {
            "rescue system"
        } else {
            "healthy host"
        }
    );
    for p in &e.phases {
        s.push_str(&format!(
            "  {:<10} {:>9}  {}\n",
            p.name,
            human(p.seconds),
            p.basis
        ));
    }
    s.push_str(&format!(
        "  {:<10} {:>9}  mkrescue recover (layout to unmount)\n",
        "recover",
        human(e.recover_seconds)
    ));
    s.push_str(&format!(
        "  {:<10} {:>9}  rescue boot to the first boot\n",
        "total",
        human(e.total_seconds)
    ));
    if e.hosts > 1 {
        s.push_str(&format!(
            "  {:<10} {:>9}  {} hosts one after another, each with provisioning and post-work (estimate.*)\n",
            "site",
            human(e.site_seconds),
            e.hosts
        ));
    }
    s
}

/// `42s`, `3m 05s`, `2h 01m`.
pub fn human(s: f64) -> String {
    let s = s.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout2() -> Layout {
        Layout::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/layout/layout2.json"
        )))
        .unwrap()
    }

    fn inputs<'a>(l: &'a Layout, cfg: &'a Config) -> Inputs<'a> {
        Inputs {
            layout: l,
            cfg,
            backup: Some(Facts {
                name: "h-1".into(),
                from: "file:///b".into(),
                files: 1000,
                bytes: 1 << 30,
                archive_bytes: None,
                bytes_by_mount: BTreeMap::new(),
                alloc_by_mount: BTreeMap::new(),
                read_probe: None,
            }),
            rates: Rates::new(),
            probes: Probes {
                exec_seconds: 0.01,
                file_seconds: 0.001,
                read_rate: Some(100.0 * MIB),
                read_basis: "read probe".into(),
                write_rate: Some(50.0 * MIB),
                write_basis: "write probe".into(),
                side_by_side: false,
                crypt_rate: Some(200.0 * MIB),
                crypt_basis: "dm-crypt probe".into(),
            },
            in_rescue: true,
            rescue_boot: Some(20.0),
            steps: 20,
            finalize: finalize_plan(l, cfg, &[], None),
            hosts: 1,
        }
    }

    /// layout2 with its md0 under LUKS (vg0 on the mapping), / on vg0 and
    /// /boot on a plain partition.
    fn layout2_luks() -> Layout {
        let mut l = layout2();
        l.luks.push(crate::layout::Luks {
            device: "/dev/md0".into(),
            mapper: "/dev/mapper/md0_crypt".into(),
            version: 2,
            uuid: "0c5f1c1e-3c36-4f0b-9d6e-2f1a2c3d4e5f".into(),
            label: None,
            cipher: "aes-xts-plain64".into(),
            key_bits: 512,
            pbkdf: "argon2id".into(),
        });
        l.lvm.pvs[0].device = "/dev/mapper/md0_crypt".into();
        for (target, source) in [("/", "/dev/mapper/vg0-root"), ("/boot", "/dev/vdc1")] {
            l.mounts.push(crate::layout::Mount {
                target: target.into(),
                source: source.into(),
                fstype: "ext4".into(),
                options: "rw".into(),
                fsroot: None,
            });
        }
        l
    }

    #[test]
    fn data_through_dm_crypt_costs_its_encryption_and_each_container_its_pbkdf() {
        let plain = layout2();
        let luks = layout2_luks();
        let cfg = Config::default();
        let with_mounts = |l: &'static str| {
            let mut b = inputs(&plain, &cfg).backup.unwrap();
            b.bytes_by_mount = [("/".to_string(), 768u64 << 20), (l.to_string(), 256 << 20)].into();
            b
        };
        let mut i = inputs(&luks, &cfg);
        i.backup = Some(with_mounts("/boot"));
        let e = model(&i);
        // 1 GiB at 50 MiB/s, the 768 MiB of / through dm-crypt at 200
        // MiB/s, 1000 files at 1 ms; /boot is not on LUKS.
        let r = e.phase("restore").unwrap();
        assert!(
            (r.seconds - (1024.0 / 50.0 + 768.0 / 200.0 + 1.0)).abs() < 1e-9,
            "{r:?}"
        );
        assert!(
            r.basis.contains("768.0 MiB through dm-crypt"),
            "{}",
            r.basis
        );
        let base = model(&inputs(&plain, &cfg));
        let dl = e.phase("layout").unwrap().seconds - base.phase("layout").unwrap().seconds;
        assert!((dl - 2.0 * PBKDF_SECONDS).abs() < 1e-9, "{dl}");
        // Without a measured cipher rate the basis says so, nothing added.
        i.probes.crypt_rate = None;
        i.probes.crypt_basis = "no cryptsetup here".into();
        let r = model(&i).phase("restore").unwrap().clone();
        assert!((r.seconds - (1024.0 / 50.0 + 1.0)).abs() < 1e-9);
        assert!(
            r.basis.contains("not counted: no cryptsetup here"),
            "{}",
            r.basis
        );
        // Nothing of the plain layout goes through dm-crypt.
        assert_eq!(luks_bytes(&plain, &with_mounts("/boot")), 0);
    }

    #[test]
    fn phases_add_up_and_the_slower_rate_sets_the_restore() {
        let l = layout2();
        let cfg = Config::default();
        let e = model(&inputs(&l, &cfg));
        let names: Vec<&str> = e.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "boot",
                "layout",
                "mount",
                "restore",
                "finalize",
                "unmount",
                "first boot"
            ]
        );
        // 1 GiB at the 50 MiB/s of the write probe, 1000 files at 1 ms.
        let r = e.phase("restore").unwrap().seconds;
        assert!((r - (1024.0 / 50.0 + 1.0)).abs() < 1e-9, "{r}");
        // Probed side by side in the rescue system, reading and writing
        // share what bounds them: the times add.
        let mut i = inputs(&l, &cfg);
        i.probes.side_by_side = true;
        let r = model(&i).phase("restore").unwrap().clone();
        assert!(
            (r.seconds - (1024.0 / 100.0 + 1024.0 / 50.0 + 1.0)).abs() < 1e-9,
            "{r:?}"
        );
        assert!(
            r.basis
                .contains("read probe 100.0 MiB/s; write probe; their times added"),
            "{}",
            r.basis
        );
        assert_eq!(e.phase("boot").unwrap().seconds, 20.0);
        let sum: f64 = e.phases.iter().map(|p| p.seconds).sum();
        assert!((e.total_seconds - sum).abs() < 1e-9);
        assert!(e.recover_seconds < e.total_seconds);
        // Assumed where not measured, and said so.
        assert!(e.phase("first boot").unwrap().basis.starts_with("assumed"));
    }

    #[test]
    fn site_is_a_times_w_over_s_plus_b_plus_n() {
        let l = layout2();
        let mut cfg = Config::default();
        cfg.estimate.provision_seconds = 600.0;
        cfg.estimate.post_work_seconds = 300.0;
        let mut i = inputs(&l, &cfg);
        i.hosts = 10;
        let e = model(&i);
        assert!((e.site_seconds - 10.0 * (e.total_seconds + 900.0)).abs() < 1e-6);
        assert!(render(&e).contains("10 hosts"));
    }

    #[test]
    fn finalize_follows_the_configuration() {
        let l = layout2();
        let mut cfg = Config::default();
        let auto = model(&inputs(&l, &cfg)).phase("finalize").unwrap().seconds;
        cfg.recover.initramfs = Regen::Always;
        cfg.recover.boot_menu = Regen::Always;
        let e = model(&inputs(&l, &cfg));
        let always = e.phase("finalize").unwrap().seconds;
        assert!(
            (always - auto - (UNITS.initramfs + UNITS.grub_mkconfig) * 0.01).abs() < 1e-9,
            "{auto} {always}"
        );
        assert!(e.phase("finalize").unwrap().basis.contains("grub-mkconfig"));
    }

    /// Issue 18: the e2e bios-mbr server (one MBR disk, active root,
    /// swap, /home; no ESP) estimated in a rescue system booted by UEFI:
    /// recover adds an ESP, installs GRUB for UEFI too and makes grub.cfg
    /// again. The estimate counted only GRUB (BIOS) on 1 disk (6.4 s
    /// predicted, 52.4 s taken: grub-mkconfig 37.9 s, GRUB UEFI 6.9 s).
    #[test]
    fn finalize_counts_what_the_firmware_conversion_adds() {
        let gib = 1u64 << 30;
        let l = Layout::from_json(
            &serde_json::json!({
                "schema_version": 1, "host": "e2e-server", "captured_at": 0,
                "mkrescue_version": "0", "disks": [{
                    "path": "/dev/vda", "size": 6 * gib, "logical_sector_size": 512,
                    "physical_sector_size": 512, "table": "msdos", "disk_id": "0x1234abcd",
                    "partitions": [
                        {"number": 1, "path": "/dev/vda1", "start": 2048,
                         "size": 6291456, "type": "83", "flags": ["boot"]},
                        {"number": 2, "path": "/dev/vda2", "start": 6293504,
                         "size": 524288, "type": "82", "flags": ["swap"]},
                        {"number": 3, "path": "/dev/vda3", "start": 6817792,
                         "size": 5765120, "type": "83"}
                    ]}],
                "filesystems": [
                    {"device": "/dev/vda1", "type": "ext4", "used_bytes": gib},
                    {"device": "/dev/vda2", "type": "swap"},
                    {"device": "/dev/vda3", "type": "ext4", "used_bytes": gib / 4}
                ],
                "mounts": [
                    {"target": "/", "source": "/dev/vda1", "fstype": "ext4", "options": "rw"},
                    {"target": "/home", "source": "/dev/vda3", "fstype": "ext4", "options": "rw"}
                ]
            })
            .to_string(),
        )
        .unwrap();
        let cfg = Config::default();
        let (uefi, converted) = for_firmware(&l, Target::Uefi);
        assert!(converted);
        let f = finalize_for(&uefi, converted, &cfg, &[], None);
        assert!(
            f.grub_efi && f.grub_mkconfig && f.grub_bios_disks == 1,
            "{f:?}"
        );
        assert!(plan_steps(&uefi).unwrap() > plan_steps(&l).unwrap());
        // Recovered for BIOS, as it was: nothing more.
        let (bios, converted) = for_firmware(&l, Target::Bios);
        assert!(!converted && bios == l);
        let f = finalize_for(&bios, converted, &cfg, &[], None);
        assert!(!f.grub_efi && !f.grub_mkconfig, "{f:?}");
        // boot_menu = never keeps grub.cfg even then.
        let mut never = Config::default();
        never.recover.boot_menu = Regen::Never;
        assert!(!finalize_for(&uefi, true, &never, &[], None).grub_mkconfig);
    }

    #[test]
    fn initramfs_predicted_from_the_drivers_here_and_the_hosts() {
        let l = layout2();
        let cfg = Config::default();
        let host: Vec<String> = ["dm_mod", "ext4", "raid1", "virtio_blk", "virtio_pci"]
            .map(String::from)
            .to_vec();
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        let same = finalize_plan(&l, &cfg, &host, Some(&set(&["virtio_blk", "virtio_pci"])));
        assert!(!same.initramfs, "{same:?}");
        let nvme = finalize_plan(&l, &cfg, &host, Some(&set(&["nvme", "virtio_pci"])));
        // Appended to, not regenerated (recover::initrd_patch).
        assert!(!nvme.initramfs && nvme.initramfs_append);
        let mut i = inputs(&l, &cfg);
        i.finalize = nvme.clone();
        let f = model(&i).phase("finalize").unwrap().clone();
        assert!(f.basis.contains("drivers appended"), "{}", f.basis);
        i.finalize.initramfs_append = false;
        let kept = model(&i).phase("finalize").unwrap().seconds;
        assert!((f.seconds - kept - UNITS.initramfs_append * 0.01).abs() < 1e-9);
        assert_eq!(
            nvme.initramfs_why,
            "auto: the disks here need nvme, which the host's did not use"
        );
        let unknown = finalize_plan(&l, &cfg, &[], Some(&set(&["nvme"])));
        assert!(!unknown.initramfs && unknown.initramfs_why.contains("not recorded"));
        let mut always = Config::default();
        always.recover.initramfs = Regen::Always;
        assert!(finalize_plan(&l, &always, &host, None).initramfs);
    }

    #[test]
    fn no_rate_is_said_not_guessed() {
        let l = layout2();
        let cfg = Config::default();
        let mut i = inputs(&l, &cfg);
        i.probes.read_rate = None;
        i.probes.write_rate = None;
        let e = model(&i);
        let r = e.phase("restore").unwrap();
        assert_eq!(r.seconds, 0.0);
        assert!(r.basis.starts_with("no restore rate"), "{}", r.basis);
    }

    #[test]
    fn write_probe_changes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("disk.img");
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(256 << 20).unwrap();
        drop(f);
        let r = write_probe(p.to_str().unwrap(), 0.0).unwrap();
        assert!(r.unwrap() > 0.0);
        // Data where the probe writes: refused, and the data stays.
        let mut data = vec![0u8; 256 << 20];
        data[(64 << 20) + 5] = 7;
        std::fs::write(&p, &data).unwrap();
        let why = write_probe(p.to_str().unwrap(), 0.0).unwrap().unwrap_err();
        assert!(why.contains("holds data"), "{why}");
        assert_eq!(std::fs::read(&p).unwrap()[(64 << 20) + 5], 7);
    }

    #[test]
    fn raid_levels_write_more_than_the_data() {
        let mut l = layout2();
        // layout2: one RAID1 of two members.
        assert_eq!(write_amplification(&l), 2.0);
        l.md[0].level = "raid5".into();
        l.md[0].raid_devices = 4;
        assert!((write_amplification(&l) - 4.0 / 3.0).abs() < 1e-9);
        l.md.clear();
        assert_eq!(write_amplification(&l), 1.0);
    }

    #[test]
    fn durations() {
        assert_eq!(human(42.4), "42s");
        assert_eq!(human(185.0), "3m 05s");
        assert_eq!(human(7260.0), "2h 01m");
    }
}
