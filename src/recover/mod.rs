//! Recover: rebuild a saved [`Layout`] on the disks of this machine and
//! put the system back. Phases, each timed in the final report:
//!
//! 1. **layout**: map source disks to target disks ([`mapping`]; disks in use
//!    — the backup source, the rescue medium — are never targets), turn the
//!    layout into an ordered [`plan::Plan`] of exact commands and run it with
//!    checkpoints ([`executor`]) so a re-run after a fix resumes;
//! 2. **mount**: the rebuilt file systems under the target directory
//!    ([`mount`]);
//! 3. **restore**: the files, by the backup method (`mkrescue restore`);
//! 4. **finalize**: device names, the network configuration for other
//!    NICs ([`nic`]; mapped before phase 1, so a wrong `--map-nic` stops
//!    recover before it writes anything), initramfs, boot loader
//!    ([`finalize`]);
//! 5. **unmount**, so everything is on disk before a reboot.
//!
//! `--dry-run` prints the plan as a shell script and changes nothing;
//! `--layout-only` stops after phase 1.

pub mod dryrun;
pub mod efiboot;
pub mod executor;
pub mod finalize;
pub mod initrd_patch;
pub mod mapping;
pub mod mount;
pub mod needs;
pub mod nic;
pub mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::backup::RestoreOptions;
use crate::config::{Config, Firmware, Regen};
use crate::exec::Cmd;
use crate::layout::Layout;
use mapping::{Ask, NoAsk, Terminal};

/// Where the scratch files of a recovery go (LVM metadata, mount points).
pub const WORK_DIR: &str = "/run/mkrescue/recover";
/// The report of the last recover in the rescue system.
pub const REPORT: &str = "/run/mkrescue/recover-report.json";
/// Where `mkrescue estimate` leaves its result in the rescue system, for
/// the report to put beside the actual times.
pub const ESTIMATE: &str = "/run/mkrescue/estimate.json";

/// The final report: what was done, each phase with its time.
#[derive(Debug, Serialize)]
pub struct Report {
    pub host: String,
    pub ok: bool,
    pub disks: BTreeMap<String, String>,
    /// Sizes that differ from the layout's (`partition /dev/vda3: 5.8 GiB
    /// -> 3.4 GiB (member of /dev/md0)`): what was fitted to the disks.
    pub sizes: Vec<String>,
    pub phases: Vec<Phase>,
    pub finalize: Vec<String>,
    /// The firmware recovered for, why, and each change that made the
    /// layout fit it ([`plan::firmware`]).
    pub firmware: Vec<String>,
    /// The recorded NICs and where they went, and what could not be
    /// mapped ([`nic::Mapping::lines`]).
    pub nics: Vec<String>,
    pub error: Option<String>,
    pub seconds: f64,
    /// What `mkrescue estimate` predicted for the whole recover, when it
    /// ran in this rescue system before.
    pub predicted_seconds: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Phase {
    pub name: String,
    pub seconds: f64,
    /// The estimate's prediction for this phase.
    pub predicted: Option<f64>,
    pub detail: String,
}

/// The phases' predictions and the recover total of the estimate saved
/// in this rescue system ([`ESTIMATE`]), if any.
fn saved_estimate(root: &Path) -> Option<(BTreeMap<String, f64>, f64)> {
    let p = root.join(ESTIMATE.trim_start_matches('/'));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
    let phases = v["phases"]
        .as_array()?
        .iter()
        .filter_map(|p| Some((p["name"].as_str()?.to_string(), p["seconds"].as_f64()?)))
        .collect();
    Some((phases, v["recover_seconds"].as_f64()?))
}

impl Report {
    fn phase<T>(&mut self, name: &str, f: impl FnOnce() -> Result<(T, String)>) -> Result<T> {
        let t = Instant::now();
        eprintln!("mkrescue: recover: {name}");
        let r = f();
        let seconds = t.elapsed().as_secs_f64();
        let (value, detail) = match r {
            Ok((v, d)) => (Ok(v), d),
            Err(e) => {
                let d = format!("FAILED: {e:#}");
                (Err(e), d)
            }
        };
        self.phases.push(Phase {
            name: name.to_string(),
            seconds,
            predicted: None,
            detail,
        });
        value
    }

    fn print(&self) {
        eprintln!(
            "mkrescue: recover of {} {} in {:.1}s",
            self.host,
            if self.ok { "finished" } else { "FAILED" },
            self.seconds
        );
        if let Some(t) = self.predicted_seconds {
            eprintln!("mkrescue:   (estimated beforehand: {t:.1}s)");
        }
        for p in &self.phases {
            let predicted = p
                .predicted
                .map(|s| format!(" (est. {s:.1}s)"))
                .unwrap_or_default();
            eprintln!(
                "mkrescue:   {:<9} {:>7.1}s{predicted}  {}",
                p.name, p.seconds, p.detail
            );
        }
        for s in &self.sizes {
            eprintln!("mkrescue:   size {s}");
        }
        for f in &self.firmware {
            eprintln!("mkrescue:   {f}");
        }
        for f in &self.finalize {
            eprintln!("mkrescue:   - {f}");
        }
        for n in &self.nics {
            eprintln!("mkrescue:   {n}");
        }
    }
}

/// What `mkrescue recover` rebuilds from where, and how it asks.
#[derive(Debug, Clone, Default)]
pub struct RecoverOptions {
    /// The rescue system's `/` (`--root` in tests).
    pub root: PathBuf,
    pub quiet: bool,
    /// Print the final report as JSON on stdout.
    pub json: bool,
    /// The layout file to rebuild.
    pub layout: PathBuf,
    /// Print the plan as a shell script and change nothing.
    pub dry_run: bool,
    /// `SRC=DST` disk mappings given by the operator.
    pub map: Vec<String>,
    /// `OLD=NEW` NIC mappings given by the operator (recorded name or MAC
    /// = name or MAC here).
    pub map_nic: Vec<String>,
    /// Never ask: refuse when a decision is ambiguous.
    pub unattended: bool,
    /// Stop after partitions, RAID, LVM, LUKS, file systems and swap.
    pub layout_only: bool,
    /// Key file for the LUKS containers.
    pub key_file: Option<PathBuf>,
    /// `lsblk --json --bytes -O` of another machine to plan for (dry run
    /// only): its disks are the targets, none of them in use.
    pub lsblk: Option<PathBuf>,
    /// Where the backup is (default: the recorded location).
    pub restore_from: Option<String>,
    /// Which backup (default: the newest).
    pub archive: Option<String>,
    /// age secret key of an encrypted backup.
    pub identity: Option<String>,
    /// Where the checkpoints of finished steps are kept.
    pub state: PathBuf,
    /// The firmware to recover for (`--firmware`, else recover.firmware).
    pub firmware: Firmware,
    /// `firmware` came from `--firmware` (for saying why).
    pub firmware_from_cli: bool,
}

/// The firmware the recovered system is made for, and why that one:
/// `auto` is what the rescue system booted with (`/sys/firmware/efi`, the
/// efivars interface the kernel makes only when booted by UEFI).
pub fn firmware_target(args: &RecoverOptions) -> (plan::firmware::Target, String) {
    use plan::firmware::Target;
    let name = |t: Target| match t {
        Target::Bios => "BIOS",
        Target::Uefi => "UEFI",
    };
    match args.firmware {
        Firmware::Auto => {
            let t = if args.root.join("sys/firmware/efi").is_dir() {
                Target::Uefi
            } else {
                Target::Bios
            };
            (t, format!("the rescue system booted by {}", name(t)))
        }
        f => {
            let t = if f == Firmware::Uefi {
                Target::Uefi
            } else {
                Target::Bios
            };
            let from = if args.firmware_from_cli {
                format!("--firmware {t}")
            } else {
                format!("recover.firmware = \"{t}\"")
            };
            (t, from)
        }
    }
}

/// The one-line refusal of a layout with [`crate::layout::Unsupported`]
/// items (exit 6: this version cannot do it), with the way to recover by
/// hand.
fn refuse_unsupported(layout: &Layout, file: &Path, target_dir: &Path) -> anyhow::Error {
    let items: Vec<String> = layout.unsupported.iter().map(|u| u.to_string()).collect();
    let t = target_dir.display();
    crate::error::fail(
        crate::error::Code::NotYet,
        format!(
            "layout {} holds what recover cannot recreate: {}; rebuild that storage by hand in this shell, mount the system under {t} and run `mkrescue restore --to {t}` (nothing was changed)",
            file.display(),
            items.join("; ")
        ),
    )
}

/// `mkrescue recover`.
pub fn run(cfg: &Config, args: &RecoverOptions) -> Result<()> {
    let start = Instant::now();
    let layout = Layout::load(&args.layout)?;
    // Before anything looks at a disk: a layout with storage recover cannot
    // recreate would come back half built (what is on it left out).
    if !layout.unsupported.is_empty() {
        return Err(refuse_unsupported(
            &layout,
            &args.layout,
            &cfg.recover.target_dir,
        ));
    }
    // Files are restored onto the root file system; `--layout-only` builds
    // the disks alone, which a layout of data disks (no /) is enough for.
    if !args.layout_only && !layout.has_root() {
        return Err(crate::error::fail(
            crate::error::Code::Input,
            format!(
                "layout {} records no file system mounted at /{}: nothing to restore the system onto; save the layout on the host where blkid can read every disk (`mkrescue layout save`) and build a new rescue image (nothing was changed)",
                args.layout.display(),
                if layout.unknown.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (saved with --allow-partial; unknown: {})",
                        layout
                            .unknown
                            .iter()
                            .map(|u| u.device.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ),
        ));
    }
    // Said first: a dry run on the wrong machine is worth knowing about
    // even when the plan fails.
    let warnings = if args.dry_run {
        dryrun::notes(cfg, args)
    } else {
        Vec::new()
    };
    for w in &warnings {
        log::warn!("{w}");
    }
    let root = cfg.recover.target_dir.clone();
    if !args.dry_run {
        // A re-run after a failure: the last attempt's tree holds the disks.
        mount::unmount_all(&root)?;
    }
    let explicit = mapping::parse_maps(&args.map)?;
    let nics = nic::plan(&args.root, &args.map_nic)?;
    // The backup first: its disk is mounted (read-only) before the disks are
    // listed, so it is in use and never a target.
    let mut source = if args.layout_only || args.dry_run {
        None
    } else {
        Some(crate::backup::source::open_source(
            &args.root,
            cfg,
            args.restore_from.as_deref(),
        )?)
    };
    // The used bytes that sizes are fitted to: the layout's, raised to the
    // backup's where it holds more (the layout may be months older).
    let (layout, used_lines) = match &source {
        Some(s) => backup_used(cfg, args, layout, s),
        None => (layout, Vec::new()),
    };
    let lsblk = match &args.lsblk {
        // Checked here too: only a plan for reading may use another
        // machine's disks (clap requires --dry-run as well).
        Some(f) if args.dry_run => std::fs::read_to_string(f).map_err(|e| {
            crate::error::fail(
                crate::error::Code::Usage,
                format!("--lsblk {}: {e}", f.display()),
            )
        })?,
        Some(_) => {
            return Err(crate::error::fail(
                crate::error::Code::Usage,
                "--lsblk plans for another machine's disks and needs --dry-run",
            ));
        }
        None => Cmd::new("lsblk").args(["--json", "--bytes", "-O"]).read()?,
    };
    let targets = mapping::TargetDisk::from_lsblk(&lsblk)?;
    let in_use = mapping::in_use_disks(&lsblk, &cfg.output.volume_id)?;
    for (d, why) in &in_use {
        log::info!("{d} is never a target: {why}");
    }
    // The layout's `excluded` names are the host's (its backup disk is not
    // in the layout at all); here, what is in use now is never a target.
    let never: BTreeSet<String> = in_use
        .keys()
        .cloned()
        .chain(source.iter().flat_map(|s| s.disks.iter().cloned()))
        .collect();
    let mut ask: Box<dyn Ask> = if args.unattended || args.dry_run {
        Box::new(NoAsk)
    } else {
        Box::new(Terminal)
    };
    let map = mapping::map_disks(&layout, &targets, &explicit, &never, ask.as_mut())?;
    let disks: BTreeMap<String, String> = map
        .iter()
        .map(|(k, (v, _))| (k.clone(), v.clone()))
        .collect();
    let key_file = args
        .key_file
        .clone()
        .or_else(|| {
            // A relative recover.key_file lives on the backup's file system.
            let k = cfg.recover.key_file.clone()?;
            if k.is_absolute() {
                return Some(k);
            }
            let base = source
                .as_ref()
                .and_then(|s| s.mounted.clone())
                .unwrap_or_else(|| crate::backup::source::MOUNT_DIR.into());
            Some(base.join(k))
        })
        .map(|p| p.display().to_string());
    if key_file.is_none() && !layout.luks.is_empty() && args.unattended && !args.dry_run {
        return Err(crate::error::fail(
            crate::error::Code::Usage,
            format!(
                "the layout has LUKS containers ({}) and nobody is there to type a passphrase: give --key-file FILE or set recover.key_file (nothing was changed)",
                layout
                    .luks
                    .iter()
                    .map(|l| l.device.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if let Some(k) = &key_file
        && !layout.luks.is_empty()
        && !args.dry_run
        && !Path::new(k).is_file()
    {
        return Err(crate::error::fail(
            crate::error::Code::Input,
            format!("LUKS key file {k} not found; give --key-file FILE (nothing was changed)"),
        ));
    }
    if cfg.recover.grow_last_partition.is_some() {
        log::warn!(
            "recover.grow_last_partition is deprecated: it reads as resize = \"{}\"; set [recover] resize instead",
            format!("{:?}", cfg.recover.resize()).to_lowercase()
        );
    }
    let opt = plan::Options {
        udev: std::path::Path::new("/run/udev/control").exists(),
        key_file,
        work_dir: WORK_DIR.to_string(),
        target_sizes: targets.iter().map(|t| (t.path.clone(), t.size)).collect(),
        resize: cfg.recover.resize(),
    };
    // The layout as the firmware of this machine needs it: from here on
    // everything (plan, mounts, finalize) works on that one.
    let (target, why) = firmware_target(args);
    let conv = plan::firmware::convert(&layout, &disks, &opt.target_sizes, target)?;
    let mut firmware = vec![format!(
        "firmware: {target} ({why}; the layout's system booted by {}: {})",
        plan::firmware::recorded_firmware(&layout),
        // A line alone (no boot loader to replace) changes nothing.
        if conv.layout == layout {
            "nothing to add"
        } else {
            "converting"
        }
    )];
    firmware.extend(conv.lines.iter().cloned());
    let layout = conv.layout.clone();
    let p = plan::plan(&layout, &disks, &opt)?;
    let dev = plan::device_map(&layout, &disks);
    let mounts = mount::plan(&layout, &dev, &root);
    let mut header = header(&layout, &map);
    for l in &firmware {
        header.push_str(l);
        header.push('\n');
    }
    for l in nics.lines() {
        header.push_str(&l);
        header.push('\n');
    }
    for l in &used_lines {
        header.push_str(l);
        header.push('\n');
    }
    if args.dry_run && !args.layout_only && !p.sizes.is_empty() {
        header.push_str("used: the sizes follow the used bytes recorded with the layout; recover raises them to the backup's where it holds more\n");
    }
    if args.dry_run {
        let mut script = p.script(&header);
        if !args.layout_only {
            script.push_str(&rest_script(
                &layout, &disks, &mounts, &root, cfg, args, &nics, &conv, target,
            ));
        }
        let mut out = std::io::stdout().lock();
        if args.json {
            let r = dryrun::DryRunReport {
                rescue_system: args.root.join(dryrun::RESCUE_MARKER).is_file(),
                layout: &args.layout,
                disks: &disks,
                nics: nics.lines(),
                firmware: firmware.clone(),
                sizes: &p.sizes,
                restore_from: dryrun::source(cfg, args).filter(|_| !args.layout_only),
                steps: dryrun::steps(&p),
                script,
                warnings,
            };
            serde_json::to_writer_pretty(&mut out, &r)?;
            writeln!(out)?;
        } else {
            out.write_all(script.as_bytes())?;
        }
        return Ok(());
    }
    for l in header.lines() {
        eprintln!("mkrescue: {l}");
    }
    for c in &p.sizes {
        eprintln!("mkrescue: size {c}");
    }
    executor::check_tools(&p)?;
    if !args.unattended {
        confirm_erase(&disks, &targets)?;
    }
    load_modules(&layout);
    std::fs::create_dir_all(WORK_DIR).map_err(|e| anyhow::anyhow!("creating {WORK_DIR}: {e}"))?;

    let mut report = Report {
        host: layout.host.clone(),
        ok: false,
        disks: disks.clone(),
        sizes: p.sizes.iter().map(|c| c.to_string()).collect(),
        phases: Vec::new(),
        finalize: Vec::new(),
        firmware: firmware.clone(),
        nics: nics.lines(),
        error: None,
        seconds: 0.0,
        predicted_seconds: None,
    };
    let from = source.as_ref().map(|s| s.url.clone());
    let r = phases(
        args,
        from,
        cfg,
        &layout,
        &p,
        &disks,
        &dev,
        &mounts,
        &root,
        &nics,
        Converted {
            target,
            fstab: &conv.fstab,
            changed: !conv.lines.is_empty(),
        },
        &mut report,
    );
    if let Some(s) = source.as_mut()
        && let Err(e) = s.close()
    {
        log::warn!("unmounting the backup source: {e:#}");
    }
    report.seconds = start.elapsed().as_secs_f64();
    if let Some((phases, total)) = saved_estimate(&args.root) {
        for p in &mut report.phases {
            p.predicted = phases.get(&p.name).copied();
        }
        report.predicted_seconds = Some(total);
    }
    report.ok = r.is_ok();
    report.error = r.as_ref().err().map(|e| format!("{e:#}"));
    let json = serde_json::to_string_pretty(&report).context("rendering the recover report")?;
    if let Err(e) = std::fs::write(REPORT, &json) {
        log::warn!("cannot write {REPORT}: {e}");
    }
    report.print();
    if args.json {
        println!("{json}");
    }
    r
}

/// What finalize needs of the firmware conversion.
struct Converted<'a> {
    target: plan::firmware::Target,
    /// fstab lines of a new ESP.
    fstab: &'a [String],
    /// The conversion changed the layout.
    changed: bool,
}

/// Runs the phases after planning; stops at the first failure (the report
/// shows which).
#[allow(clippy::too_many_arguments)]
fn phases(
    args: &RecoverOptions,
    from: Option<String>,
    cfg: &Config,
    layout: &Layout,
    p: &plan::Plan,
    disks: &BTreeMap<String, String>,
    dev: &BTreeMap<String, String>,
    mounts: &[mount::TargetMount],
    root: &Path,
    nics: &nic::Mapping,
    conv: Converted,
    report: &mut Report,
) -> Result<()> {
    report.phase("layout", || {
        let done = executor::run(p, &args.state)?;
        Ok((
            (),
            format!(
                "{} steps ({} already done before)",
                p.steps.len(),
                done.skipped
            ),
        ))
    })?;
    if args.layout_only {
        return Ok(());
    }
    report.phase("mount", || {
        mount::mount_all(mounts)?;
        Ok((
            (),
            format!("{} file systems under {}", mounts.len(), root.display()),
        ))
    })?;
    let restored = report.phase("restore", || {
        let r = crate::backup::restore_backup(cfg, &restore_options(args, from, root));
        Ok((r, String::new()))
    })?;
    if let Err(e) = restored {
        if let Some(last) = report.phases.last_mut() {
            last.detail = format!("FAILED: {e:#}");
        }
        // Leave the tree mounted: the operator may look or restore by hand.
        return Err(e.context(format!(
            "restoring the files into {} failed; the file systems stay mounted there",
            root.display()
        )));
    }
    if let Some(last) = report.phases.last_mut() {
        last.detail = "files restored".into();
    }
    let needed =
        crate::sys::block::needed_modules(Path::new("/sys"), &boot_devices(layout, dev, mounts))
            .map_err(|e| format!("{e:#}"));
    let md: Vec<String> = layout.md.iter().map(|m| m.path.clone()).collect();
    let present = needs::present(&md);
    let ctx = finalize::Ctx {
        root,
        layout,
        disks,
        dev,
        cfg: &cfg.recover,
        efi_booted: Path::new("/sys/firmware/efi").is_dir(),
        work_dir: Path::new(WORK_DIR),
        needed: &needed,
        present: &present,
        nics,
        rescue: &args.root,
        firmware: conv.target,
        fstab: conv.fstab,
        converted: conv.changed,
    };
    let done = report.phase("finalize", || {
        let done = finalize::run(&ctx)?;
        let n = done.len();
        Ok((done, format!("{n} actions")))
    })?;
    report.finalize = done;
    // A copy of the report in the restored system, for its admin.
    let logdir = root.join("var/log/mkrescue");
    if std::fs::create_dir_all(&logdir).is_ok() {
        let _ = std::fs::write(
            logdir.join("recover-report.json"),
            serde_json::to_string_pretty(&*report).unwrap_or_default(),
        );
    }
    report.phase("unmount", || {
        mount::unmount_all(root)?;
        Cmd::new("sync").output()?;
        Ok(((), format!("{} unmounted, data synced", root.display())))
    })?;
    Ok(())
}

/// The new devices the restored system boots from: (device here, mount
/// point or `swap`, file-system type) of every mount and swap area.
fn boot_devices(
    layout: &Layout,
    dev: &BTreeMap<String, String>,
    mounts: &[mount::TargetMount],
) -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = mounts
        .iter()
        .map(|m| (m.device.clone(), m.target.clone(), m.fstype.clone()))
        .collect();
    for f in layout.filesystems.iter().filter(|f| f.fstype == "swap") {
        let d = dev.get(&f.device).cloned().unwrap_or(f.device.clone());
        v.push((d, "swap".into(), "swap".into()));
    }
    v
}

/// Kernel modules the layout needs, loaded up front: the kernel would
/// load them on demand through /proc/sys/kernel/modprobe, but a rescue
/// system whose modprobe is elsewhere gets "unknown filesystem type" or an
/// md create that fails for want of its personality instead. Best effort:
/// a module built into the kernel is not found, and that is fine.
pub fn modules_for(layout: &Layout) -> Vec<&'static str> {
    let mut m: BTreeSet<&'static str> = BTreeSet::new();
    for a in &layout.md {
        m.insert(match a.level.as_str() {
            "raid0" => "raid0",
            "raid1" => "raid1",
            "raid4" | "raid5" | "raid6" => "raid456",
            "raid10" => "raid10",
            "linear" => "linear",
            _ => continue,
        });
    }
    if !layout.lvm.is_empty() || !layout.luks.is_empty() {
        m.insert("dm_mod");
    }
    for lv in &layout.lvm.lvs {
        match lv.kind {
            crate::layout::LvKind::ThinPool { .. } | crate::layout::LvKind::Thin { .. } => {
                m.insert("dm_thin_pool");
            }
            crate::layout::LvKind::Mirror { .. } => {
                m.insert("dm_mirror");
            }
            crate::layout::LvKind::Raid1 { .. } => {
                m.insert("dm_raid");
            }
            _ => {}
        }
    }
    if !layout.luks.is_empty() {
        m.insert("dm_crypt");
    }
    for f in &layout.filesystems {
        match f.fstype.as_str() {
            "ext2" | "ext3" | "ext4" => {
                m.insert("ext4");
            }
            "xfs" => {
                m.insert("xfs");
            }
            "btrfs" => {
                m.insert("btrfs");
            }
            "vfat" => {
                // FAT's default code page and character set (Debian's
                // CONFIG_FAT_DEFAULT_*), and the UTF-8 one many mount with.
                m.extend([
                    "vfat",
                    "nls_cp437",
                    "nls_ascii",
                    "nls_iso8859_1",
                    "nls_utf8",
                ]);
            }
            _ => {}
        }
    }
    m.into_iter().collect()
}

fn load_modules(layout: &Layout) {
    for name in modules_for(layout) {
        if let Err(e) = Cmd::new("modprobe").args(["-q", name]).output() {
            log::info!("modprobe {name}: {e:#} (built in, or not in this rescue system)");
        }
    }
}

/// Interactive recover: the disks it will erase, and a typed `YES` before
/// anything is written. Without a terminal to ask on: refused.
fn confirm_erase(disks: &BTreeMap<String, String>, targets: &[mapping::TargetDisk]) -> Result<()> {
    use std::io::{BufRead, IsTerminal};
    let list: Vec<String> = disks
        .iter()
        .map(|(src, dst)| {
            let size = targets
                .iter()
                .find(|t| &t.path == dst)
                .map(|t| crate::layout::show::human(t.size))
                .unwrap_or_default();
            format!("{dst} ({size}, receives {src})")
        })
        .collect();
    if !std::io::stdin().is_terminal() {
        return Err(crate::error::fail(
            crate::error::Code::Usage,
            format!(
                "recover would erase {} and there is no terminal to confirm it: run it on a console, or add --unattended; nothing was changed",
                list.join(", ")
            ),
        ));
    }
    eprintln!("mkrescue: recover will ERASE everything on:");
    for l in &list {
        eprintln!("mkrescue:   {l}");
    }
    eprint!("Type YES to go on (anything else stops): ");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != "YES" {
        return Err(crate::error::fail(
            crate::error::Code::Usage,
            "recover stopped at the question; nothing was changed",
        ));
    }
    Ok(())
}

/// The layout with its used bytes raised to what the backup at `source`
/// holds ([`plan::fit::with_backup`]), and the lines saying so. A backup
/// whose size cannot be read here (borg, rsync, an encrypted one without
/// `--identity`) leaves the recorded used bytes, with a warning: the
/// restore finds out for itself.
fn backup_used(
    cfg: &Config,
    args: &RecoverOptions,
    layout: Layout,
    source: &crate::backup::source::Source,
) -> (Layout, Vec<String>) {
    let opts = crate::backup::facts::FactsOptions {
        root: args.root.clone(),
        from: Some(source.url.clone()),
        archive: args.archive.clone(),
        identity: args.identity.clone(),
        mounts: layout.data_mounts(),
        ..Default::default()
    };
    match crate::backup::facts::facts(cfg, &opts) {
        Ok(f) => {
            let (l, mut lines) = plan::fit::with_backup(&layout, &f.alloc_by_mount, &f.name);
            if lines.is_empty() {
                lines.push(format!(
                    "used: backup {} holds no more on any file system than the layout recorded",
                    f.name
                ));
            }
            (l, lines)
        }
        Err(e) => {
            log::warn!(
                "the backup's size per file system could not be read ({e:#}): sizes follow the used bytes recorded with the layout"
            );
            (layout, Vec::new())
        }
    }
}

/// The restore phase is `mkrescue restore --to ROOT` with recover's own
/// `--restore-from`, `--archive` and `--identity`.
fn restore_options(args: &RecoverOptions, from: Option<String>, root: &Path) -> RestoreOptions {
    RestoreOptions {
        root: args.root.clone(),
        quiet: args.quiet,
        to: root.to_path_buf(),
        from,
        archive: args.archive.clone(),
        json: false,
        identity: args.identity.clone(),
        method: None,
        events: args.json,
    }
}

/// The phases after the layout, for `--dry-run`: the mounts as commands,
/// the restore and finalize as what they will do.
#[allow(clippy::too_many_arguments)]
fn rest_script(
    layout: &Layout,
    disks: &BTreeMap<String, String>,
    mounts: &[mount::TargetMount],
    root: &Path,
    cfg: &Config,
    args: &RecoverOptions,
    nics: &nic::Mapping,
    conv: &plan::firmware::Conversion,
    target: plan::firmware::Target,
) -> String {
    let mut s = String::from("\n# Mount the target tree\n");
    for m in mounts {
        s.push_str(&format!(
            "mkdir -p {}\n",
            plan::quote(&m.dir.display().to_string())
        ));
        s.push_str(&format!(
            "{}\n",
            m.argv()
                .iter()
                .map(|a| plan::quote(a))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    s.push_str("\n# Restore the files\n");
    let mut restore = format!(
        "mkrescue restore --to {}",
        plan::quote(&root.display().to_string())
    );
    if let Some(f) = &args.restore_from {
        restore.push_str(&format!(" --from {}", plan::quote(f)));
    }
    if let Some(a) = &args.archive {
        restore.push_str(&format!(" --archive {}", plan::quote(a)));
    }
    s.push_str(&restore);
    s.push('\n');
    s.push_str(
        "\n# Finalize (in a chroot of the restored system; each only when it has the tool)\n",
    );
    let r = plan::quote(&root.display().to_string());
    for d in ["dev", "sys"] {
        s.push_str(&format!("mount --rbind /{d} {r}/{d}\n"));
    }
    s.push_str(&format!(
        "mount -t proc proc {r}/proc\nmount --bind /run {r}/run\n"
    ));
    s.push_str("# /etc/fstab, crypttab, mdadm.conf, default/grub: renamed disks rewritten\n");
    for l in &conv.fstab {
        s.push_str(&format!(
            "# /etc/fstab: the new ESP added, original kept as /etc/fstab.mkrescue-orig:\n#   {l}\n"
        ));
    }
    for l in nic::dry_run_lines(nics) {
        s.push_str(&l);
        s.push('\n');
    }
    let initramfs = format!(
        "chroot {r} update-initramfs -u -k all   # or dracut --force --regenerate-all, mkinitcpio -P\n"
    );
    match cfg.recover.initramfs {
        Regen::Always => s.push_str(&initramfs),
        Regen::Never => s.push_str("# initramfs kept as restored (recover.initramfs = never)\n"),
        Regen::Auto => {
            s.push_str("# initramfs = auto: only when a file it embeds was rewritten or it lacks a driver of the new disks\n");
            s.push_str(&format!("# {initramfs}"));
        }
    }
    if cfg.recover.bootloader {
        s.push_str(&format!(
            "# firmware = {target}: GRUB for {} must install (recover stops naming the package when its files are missing); the other one only where the layout has its partition and the files are there\n",
            match target {
                plan::firmware::Target::Bios => "BIOS (i386-pc)",
                plan::firmware::Target::Uefi => "UEFI (x86_64-efi)",
            }
        ));
        for d in finalize::bios_disks(layout, disks) {
            s.push_str(&format!("chroot {r} grub-install --target=i386-pc {d}\n"));
        }
        if let (Some((dir, _)), others) = finalize::esps(layout) {
            s.push_str(&format!(
                "chroot {r} grub-install --target=x86_64-efi --efi-directory={dir}\n"
            ));
            for o in others {
                s.push_str(&format!("# copy {dir}/EFI onto the ESP {o}\n"));
            }
        }
        let mkconfig = format!("chroot {r} grub-mkconfig -o /boot/grub/grub.cfg\n");
        match cfg.recover.boot_menu {
            Regen::Always => s.push_str(&mkconfig),
            Regen::Never => s.push_str("# grub.cfg kept as restored (recover.boot_menu = never)\n"),
            Regen::Auto if !conv.lines.is_empty() => {
                s.push_str(
                    "# boot_menu = auto: the layout was converted for this machine's firmware\n",
                );
                s.push_str(&mkconfig);
            }
            Regen::Auto => {
                s.push_str("# boot_menu = auto: only when a UUID, volume or kernel grub.cfg names is gone, or default/grub was rewritten\n");
                s.push_str(&format!("# {mkconfig}"));
            }
        }
    }
    s.push_str(&format!("umount --recursive {r}\n"));
    s
}

fn header(l: &Layout, map: &BTreeMap<String, (String, mapping::Why)>) -> String {
    let mut h = format!(
        "mkrescue recover: layout of {} (schema {})\n",
        l.host, l.schema_version
    );
    for (src, (dst, why)) in map {
        let why = match why {
            mapping::Why::Explicit => "--map",
            mapping::Why::SamePath => "same path and size",
            mapping::Why::Identity => "same WWN/serial",
            mapping::Why::Size => "only disk large enough",
            mapping::Why::AllUsed => "every free disk is used; the smallest that holds it",
            mapping::Why::Asked => "chosen by the operator",
        };
        h.push_str(&format!("disk {src} -> {dst} ({why})\n"));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_for_layout2() {
        let l = Layout::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/layout/layout2.json"
        )))
        .unwrap();
        assert_eq!(modules_for(&l), ["dm_mod", "ext4", "raid1", "xfs"]);
    }
}
