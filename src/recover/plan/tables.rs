//! Partition tables: each mapped disk has its old signatures erased, then
//! gets its table back from an sfdisk(8) script with the recorded starts,
//! sizes, types, GUIDs, names and attributes. This layer puts the mapped
//! disks and their partitions into the device map, under this machine's
//! names.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::fit::{Fit, PartFit};
use super::{DeviceMap, Step, s};
use crate::layout::{Disk, Flag, Layout, Partition, Table, part_path};

/// The wipe and partition steps of every mapped disk, in layout order.
pub(super) fn steps(
    layout: &Layout,
    map: &BTreeMap<String, String>,
    fit: &Fit,
    dev: &mut DeviceMap,
) -> Vec<Step> {
    let mut steps = Vec::new();
    for d in &layout.disks {
        let Some(t) = map.get(&d.path) else { continue };
        dev.add_disk(d, t);
        let mut wipe = Step::new(
            format!("wipe {t}"),
            format!("erase signatures on {t} (was {})", d.path),
            vec![s("wipefs"), s("--all"), s("--force"), t.clone()],
        );
        wipe.makes = vec![format!("blank:{t}")];
        if d.table == Table::None {
            // A file system or PV on the whole disk: it is there once blank.
            wipe.makes.push(t.clone());
            steps.push(wipe);
            continue;
        }
        steps.push(wipe);
        steps.push(partition(d, t, fit));
    }
    steps
}

/// `sfdisk` writing the table of `d` onto the target disk `t`, with the
/// places and sizes `fit` chose where they differ from the recorded ones.
fn partition(d: &Disk, t: &str, fit: &Fit) -> Step {
    // sfdisk(8) script: exact starts and sizes in sectors, the table's
    // and each partition's GUID, names and attributes.
    let mut script = String::new();
    let _ = writeln!(
        script,
        "label: {}",
        if d.table == Table::Gpt { "gpt" } else { "dos" }
    );
    if let Some(id) = &d.disk_id {
        let _ = writeln!(script, "label-id: {id}");
    }
    let _ = writeln!(script, "unit: sectors");
    if d.logical_sector_size != 512 {
        let _ = writeln!(script, "sector-size: {}", d.logical_sector_size);
    }
    if d.table == Table::Gpt
        && let Some(first) = d.partitions.iter().map(|p| p.start).min()
        && first < 2048
    {
        // sfdisk starts a new GPT's usable area at 1 MiB (sector 2048 of
        // 512) and refuses a partition before it: a bios_grub partition in
        // the gap before the first partition (recover::plan::firmware)
        // needs the area from the first sector GPT leaves free, or the
        // layout's own first-lba where the host had one that low.
        let _ = writeln!(
            script,
            "first-lba: {}",
            first.max(super::firmware::GPT_FIRST_LBA)
        );
    }
    let mut makes = vec![t.to_string()];
    let mut grown = None;
    let mut fitted = false;
    for p in &d.partitions {
        let node = part_path(t, p.number);
        let place = fit.partitions.get(&p.path).copied();
        match place {
            Some(PartFit { size: None, .. }) => grown = Some(p.number),
            Some(_) => fitted = true,
            None => {}
        }
        let fields = sfdisk_fields(d.table, p, place);
        let _ = writeln!(script, "{node} : {}", fields.join(", "));
        makes.push(node);
    }
    let what = match (grown, fitted) {
        (Some(n), _) => format!(
            "partition table of {} on {t} (partition {n} grown to the end of the bigger disk)",
            d.path
        ),
        (None, true) => format!(
            "partition table of {} on {t} (sizes fitted to the disk)",
            d.path
        ),
        (None, false) => format!("partition table of {} on {t}", d.path),
    };
    let mut step = Step::new(
        format!("partition {t}"),
        what,
        vec![
            s("sfdisk"),
            s("--quiet"),
            s("--wipe"),
            s("always"),
            t.to_string(),
        ],
    );
    step.stdin = Some(script);
    step.needs = vec![format!("blank:{t}")];
    step.makes = makes;
    step
}

/// The fields of one partition's line in the sfdisk script: the recorded
/// start and size, or those of `place`.
fn sfdisk_fields(table: Table, p: &Partition, place: Option<PartFit>) -> Vec<String> {
    let (start, size) = match place {
        Some(f) => (f.start, f.size),
        None => (p.start, Some(p.size)),
    };
    let mut fields = vec![format!("start={start}")];
    if let Some(size) = size {
        fields.push(format!("size={size}"));
    }
    // Without size= sfdisk(8) gives the partition all the space up to
    // the next one or the end of the disk (before the backup GPT).
    fields.push(format!("type={}", p.type_));
    if let Some(u) = &p.uuid {
        fields.push(format!("uuid={u}"));
    }
    if let Some(n) = &p.name {
        fields.push(format!("name=\"{}\"", n.replace('"', "")));
    }
    if let Some(a) = &p.attrs {
        fields.push(format!("attrs=\"{a}\""));
    }
    if table == Table::Msdos && p.flags.contains(&Flag::Boot) {
        fields.push(s("bootable"));
    }
    fields
}
