//! Disk mapping: which disk of this machine receives each disk of the
//! layout. Explicit `--map` first; then the same path and size; then the
//! same WWN or serial; then the only unused disk that is large enough.
//! A disk that holds the layout's disk as recorded is preferred; a smaller
//! one will do when the data fits on it (the plan then shrinks what is on
//! it, `plan::fit`). Ambiguity is a question (interactive) or a refusal
//! (unattended); a disk too small for the data is refused before anything
//! is touched, naming both sizes.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;

use super::plan::fit::{disk_min, too_small};
use crate::error::{Code, fail};
use crate::layout::show::human;
use crate::layout::{Disk, Layout, Table};

/// A disk of the machine recover runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetDisk {
    pub path: String,
    pub size: u64,
    pub logical_sector_size: u64,
    pub wwn: Option<String>,
    pub serial: Option<String>,
}

impl TargetDisk {
    /// The disks lsblk sees (no loop, rom, ram devices).
    pub fn from_lsblk(text: &str) -> Result<Vec<TargetDisk>> {
        let mut out = Vec::new();
        for d in crate::layout::parse::lsblk(text)? {
            // zram and RAM disks are "disk" to lsblk: never targets.
            if d.kind != "disk" || crate::layout::capture::ignored(&d) {
                continue;
            }
            let serial = d.serial.clone().or_else(|| {
                std::fs::read_to_string(format!("/sys/block/{}/serial", d.name))
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
            });
            out.push(TargetDisk {
                path: d.path,
                size: d.size,
                logical_sector_size: d.log_sec,
                wwn: d.wwn,
                serial,
            });
        }
        Ok(out)
    }
}

/// What [`disks_here`]'s line starts with.
pub const DISKS_HERE: &str = "disks here: ";

/// Every disk of this machine with its size and serial, the end of the
/// error when a disk of the layout has no disk to go to: `disks here:
/// /dev/vda (20.0 GiB, serial DISK1), /dev/vdb (...)`, or `disks here:
/// none`. A disk the operator expected and that is not listed (its
/// controller's driver missing from the rescue image) shows at once, and
/// `mkrescue drill` reads the serials back to name that cause
/// (drill::unseen_disks).
pub fn disks_here(targets: &[TargetDisk]) -> String {
    if targets.is_empty() {
        return format!("{DISKS_HERE}none");
    }
    let each: Vec<String> = targets
        .iter()
        .map(|t| match &t.serial {
            Some(s) => format!("{} ({}, serial {s})", t.path, human(t.size)),
            None => format!("{} ({})", t.path, human(t.size)),
        })
        .collect();
    format!("{DISKS_HERE}{}", each.join(", "))
}

/// The serials [`disks_here`] listed, from the last line of `text` (a
/// console log) that has such a list; None when none has.
pub fn serials_here(text: &str) -> Option<Vec<String>> {
    let line = text.lines().rev().find_map(|l| {
        let i = l.find(DISKS_HERE)?;
        Some(&l[i + DISKS_HERE.len()..])
    })?;
    Some(
        line.split("serial ")
            .skip(1)
            .filter_map(|s| s.split(')').next())
            .map(|s| s.trim().to_string())
            .collect(),
    )
}

/// Disks of this machine recover must never write, with the reason: any
/// disk with a mounted file system (the backup source, a medium the rescue
/// system runs from; recover unmounts its own target tree before it looks),
/// and any disk carrying the rescue medium's labels (the ISO's volume id,
/// the USB image's `MKRESCUE` ESP and `MKRESCUE-DATA` backup partition).
pub fn in_use_disks(lsblk_json: &str, volume_id: &str) -> Result<BTreeMap<String, String>> {
    let labels = [volume_id, "MKRESCUE", crate::output::usb::DATA_LABEL];
    let mut out = BTreeMap::new();
    for d in crate::layout::parse::lsblk(lsblk_json)? {
        if d.kind != "disk" {
            continue;
        }
        for n in d.walk() {
            if let Some(m) = n.mountpoints.iter().find(|m| !m.is_empty()) {
                out.insert(d.path.clone(), format!("{} is mounted at {m}", n.path));
                break;
            }
            if let Some(l) = n.label.as_deref().filter(|l| labels.contains(l)) {
                out.insert(
                    d.path.clone(),
                    format!("{} is labelled {l} (a rescue medium)", n.path),
                );
                break;
            }
        }
    }
    Ok(out)
}

/// How a source disk was matched, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Explicit,
    SamePath,
    Identity,
    Size,
    /// As many free disks as disks left to map: each free disk is erased
    /// whichever source it gets, so each got the smallest that holds it.
    AllUsed,
    Asked,
}

/// A question for the operator: which candidate for `source`?
pub trait Ask {
    fn choose(&mut self, source: &Disk, candidates: &[&TargetDisk]) -> Option<usize>;
}

/// Unattended: never chooses.
pub struct NoAsk;
impl Ask for NoAsk {
    fn choose(&mut self, _: &Disk, _: &[&TargetDisk]) -> Option<usize> {
        None
    }
}

/// Asks on the terminal.
pub struct Terminal;
impl Ask for Terminal {
    fn choose(&mut self, source: &Disk, candidates: &[&TargetDisk]) -> Option<usize> {
        use std::io::{BufRead, Write};
        eprintln!(
            "Which disk receives {} ({}{})?",
            source.path,
            human(source.size),
            source
                .serial
                .as_deref()
                .map(|s| format!(", serial {s}"))
                .unwrap_or_default()
        );
        for (i, c) in candidates.iter().enumerate() {
            eprintln!(
                "  {}) {} {}{}",
                i + 1,
                c.path,
                human(c.size),
                c.serial
                    .as_deref()
                    .map(|s| format!(" serial {s}"))
                    .unwrap_or_default()
            );
        }
        eprint!("number (empty to stop): ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).ok()?;
        let n: usize = line.trim().parse().ok()?;
        (1..=candidates.len()).contains(&n).then(|| n - 1)
    }
}

/// Bytes a target must have to hold `d` as recorded: the end of its last
/// partition plus the backup GPT (33 sectors: header and a 16 KiB entry
/// array, UEFI spec 5.3), or the whole disk when it has no table.
pub fn needed_bytes(d: &Disk) -> u64 {
    let ss = d.logical_sector_size.max(1);
    match d.table {
        Table::None => d.size,
        Table::Msdos => d
            .partitions
            .iter()
            .map(|p| (p.start + p.size) * ss)
            .max()
            .unwrap_or(ss),
        Table::Gpt => {
            let end = d
                .partitions
                .iter()
                .map(|p| p.start + p.size)
                .max()
                .unwrap_or(34);
            (end + 33) * ss
        }
    }
}

/// Whether recover has to build anything on `d`: a partition table, or
/// the whole disk used by md, LVM, LUKS or a file system.
pub fn is_used(l: &Layout, d: &Disk) -> bool {
    d.table != Table::None
        || l.md.iter().any(|m| m.devices.contains(&d.path))
        || l.lvm.pvs.iter().any(|p| p.device == d.path)
        || l.luks.iter().any(|x| x.device == d.path)
        || l.filesystems.iter().any(|f| f.device == d.path)
}

/// Parses `--map SRC=DST`.
pub fn parse_maps(maps: &[String]) -> Result<Vec<(String, String)>> {
    maps.iter()
        .map(|m| {
            m.split_once('=')
                .filter(|(a, b)| a.starts_with("/dev/") && b.starts_with("/dev/"))
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| {
                    fail(
                        Code::Usage,
                        format!("--map {m}: expected SOURCE=TARGET, e.g. --map /dev/sda=/dev/vdb"),
                    )
                })
        })
        .collect()
}

/// Maps every used source disk to a target; `never` are devices that must
/// not be written (the rescue medium, the backup disk).
pub fn map_disks(
    layout: &Layout,
    targets: &[TargetDisk],
    explicit: &[(String, String)],
    never: &BTreeSet<String>,
    ask: &mut dyn Ask,
) -> Result<BTreeMap<String, (String, Why)>> {
    let sources: Vec<&Disk> = layout.disks.iter().filter(|d| is_used(layout, d)).collect();
    let mut out: BTreeMap<String, (String, Why)> = BTreeMap::new();
    let mut taken: BTreeSet<String> = BTreeSet::new();
    // The least a target needs: the data of the source disk, every file
    // system shrunk to what it holds plus its margin.
    let least = |s: &Disk| disk_min(layout, s);
    let too_small = |s: &Disk, t: &TargetDisk| too_small(layout, s, &t.path, t.size);
    for (src, dst) in explicit {
        let Some(s) = layout.disks.iter().find(|d| &d.path == src) else {
            return Err(fail(
                Code::Usage,
                format!(
                    "--map {src}={dst}: {src} is not a disk of the layout (it has: {})",
                    layout
                        .disks
                        .iter()
                        .map(|d| d.path.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        let Some(t) = targets.iter().find(|t| &t.path == dst) else {
            return Err(fail(
                Code::Usage,
                format!("--map {src}={dst}: {dst} is not a disk of this machine"),
            ));
        };
        if never.contains(dst) {
            return Err(fail(
                Code::Usage,
                format!(
                    "--map {src}={dst}: {dst} must not be written ({})",
                    "rescue medium or backup disk"
                ),
            ));
        }
        if !taken.insert(dst.clone()) {
            return Err(fail(
                Code::Usage,
                format!("--map: {dst} is given as target twice"),
            ));
        }
        if t.size < least(s) {
            return Err(too_small(s, t));
        }
        out.insert(src.clone(), (dst.clone(), Why::Explicit));
    }
    let free = |taken: &BTreeSet<String>| -> Vec<&TargetDisk> {
        targets
            .iter()
            .filter(|t| !taken.contains(&t.path) && !never.contains(&t.path))
            .collect()
    };
    // Pass 1: same path and size; same WWN or serial.
    for s in &sources {
        if out.contains_key(&s.path) {
            continue;
        }
        let f = free(&taken);
        let hit = f
            .iter()
            .find(|t| t.path == s.path && t.size == s.size)
            .map(|t| (*t, Why::SamePath))
            .or_else(|| {
                f.iter()
                    .find(|t| {
                        (s.wwn.is_some() && t.wwn == s.wwn)
                            || (s.serial.is_some() && t.serial == s.serial)
                    })
                    .map(|t| (*t, Why::Identity))
            });
        if let Some((t, why)) = hit {
            if t.size < least(s) {
                return Err(too_small(s, t));
            }
            taken.insert(t.path.clone());
            out.insert(s.path.clone(), (t.path.clone(), why));
        }
    }
    // Pass 2: by size, largest sources first so they are not crowded out.
    let mut rest: Vec<&Disk> = sources
        .iter()
        .copied()
        .filter(|s| !out.contains_key(&s.path))
        .collect();
    rest.sort_by_key(|s| std::cmp::Reverse(needed_bytes(s)));
    // Every free disk will be erased: no disk is at risk whichever source
    // it receives, so there is nothing to ask. Best fit, biggest source
    // first (this finds an assignment whenever one exists: a bigger source
    // fits fewer disks). More free disks than sources: which one stays
    // untouched matters, and pass 3 asks or refuses.
    let f = free(&taken);
    if !rest.is_empty() && rest.len() == f.len() {
        // At the recorded size if every disk can have it, else each with
        // its data fitted (the biggest disks to the biggest sources).
        for need in [needed_bytes as fn(&Disk) -> u64, |_: &Disk| 0] {
            let need = |s: &Disk| need(s).max(least(s));
            let mut left: Vec<&TargetDisk> = f.clone();
            left.sort_by_key(|t| (t.size, t.path.clone()));
            let mut fit = Vec::new();
            for s in &rest {
                match left.iter().position(|t| t.size >= need(s)) {
                    Some(i) => fit.push((s.path.clone(), left.remove(i).path.clone())),
                    None => break,
                }
            }
            if fit.len() == rest.len() {
                for (src, dst) in fit {
                    taken.insert(dst.clone());
                    out.insert(src, (dst, Why::AllUsed));
                }
                return Ok(out);
            }
        }
    }
    // Pass 3: one by one.
    for s in rest {
        let f = free(&taken);
        // Those that hold it as recorded; else those its data fits on.
        let mut fits: Vec<&TargetDisk> = f
            .iter()
            .copied()
            .filter(|t| t.size >= needed_bytes(s))
            .collect();
        if fits.is_empty() {
            fits = f.iter().copied().filter(|t| t.size >= least(s)).collect();
        }
        let chosen = match fits.len() {
            0 => {
                let biggest = f.iter().max_by_key(|t| t.size);
                // This machine lacks a disk (exit 4), the layout is fine.
                return Err(fail(
                    Code::Host,
                    match biggest {
                        Some(t) => format!(
                            "no disk large enough for {} ({}, needs at least {} for its data; the largest free one, {}, has {}); attach one or give --map {}=DISK; nothing was changed; {}",
                            s.path,
                            human(s.size),
                            human(least(s)),
                            t.path,
                            human(t.size),
                            s.path,
                            disks_here(targets)
                        ),
                        None => format!(
                            "no target disk left for {} ({}): attach one or give --map {}=DISK; nothing was changed; {}",
                            s.path,
                            human(s.size),
                            s.path,
                            disks_here(targets)
                        ),
                    },
                ));
            }
            1 => (fits[0], Why::Size),
            _ => match ask.choose(s, &fits) {
                Some(i) => (fits[i], Why::Asked),
                None => {
                    return Err(fail(
                        Code::Input,
                        format!(
                            "{} ({}) could go to any of {}; say which with --map {}=DISK; nothing was changed",
                            s.path,
                            human(s.size),
                            fits.iter()
                                .map(|t| format!("{} ({})", t.path, human(t.size)))
                                .collect::<Vec<_>>()
                                .join(", "),
                            s.path
                        ),
                    ));
                }
            },
        };
        taken.insert(chosen.0.path.clone());
        out.insert(s.path.clone(), (chosen.0.path.clone(), chosen.1));
    }
    Ok(out)
}
