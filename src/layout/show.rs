//! `layout show`: the layout as a tree a person reads, each device under
//! what it is built on (disk → partition → md → PV → VG → LV → file system
//! → mount point).

use std::fmt::Write;

use super::model::*;

/// Bytes as a short binary size (`1.5 GiB`).
pub fn human(bytes: u64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// Renders the tree.
pub fn render(l: &Layout) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "layout of {} (schema {}, mkrescue {})",
        l.host, l.schema_version, l.mkrescue_version
    );
    for d in &l.disks {
        let mut ids = Vec::new();
        if let Some(s) = &d.serial {
            ids.push(format!("serial {s}"));
        }
        if let Some(w) = &d.wwn {
            ids.push(format!("wwn {w}"));
        }
        if let Some(m) = &d.model {
            ids.push(m.clone());
        }
        let _ = writeln!(
            out,
            "{} {} {}{}{}",
            d.path,
            human(d.size),
            match d.table {
                Table::Gpt => "gpt",
                Table::Msdos => "msdos",
                Table::None => "no partition table",
            },
            d.disk_id
                .as_deref()
                .map(|i| format!(" {i}"))
                .unwrap_or_default(),
            if ids.is_empty() {
                String::new()
            } else {
                format!(" ({})", ids.join(", "))
            }
        );
        if d.partitions.is_empty() {
            device(l, &d.path, 1, &mut out);
        }
        for p in &d.partitions {
            let flags: Vec<String> = p
                .flags
                .iter()
                .map(|f| {
                    serde_json::to_value(f)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                })
                .collect();
            let _ = writeln!(
                out,
                "  {} {} at sector {} type {}{}{}",
                p.path,
                human(p.size * d.logical_sector_size),
                p.start,
                p.type_,
                p.name
                    .as_deref()
                    .map(|n| format!(" name {n:?}"))
                    .unwrap_or_default(),
                if flags.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", flags.join(","))
                }
            );
            device(l, &p.path, 2, &mut out);
        }
    }
    if !l.excluded.is_empty() {
        let _ = writeln!(out, "left alone:");
        for e in &l.excluded {
            let _ = writeln!(out, "  {} ({})", e.device, e.reason);
        }
    }
    out
}

/// What is built directly on `dev`, recursively.
fn device(l: &Layout, dev: &str, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    for md in l.md.iter().filter(|m| m.devices.iter().any(|d| d == dev)) {
        // Under its first member only; the others point to it.
        if md.devices.first().map(String::as_str) == Some(dev) {
            let _ = writeln!(
                out,
                "{pad}{} {} {} metadata {} uuid {} ({} devices: {})",
                md.path,
                md.level,
                human(md.size),
                md.metadata,
                md.uuid,
                md.raid_devices,
                md.devices.join(" ")
            );
            device(l, &md.path, depth + 1, out);
        } else {
            let _ = writeln!(out, "{pad}member of {}", md.path);
        }
    }
    for x in l.luks.iter().filter(|x| x.device == dev) {
        let _ = writeln!(
            out,
            "{pad}LUKS{} {} uuid {} {} {} bits{}",
            x.version,
            x.mapper,
            x.uuid,
            x.cipher,
            x.key_bits,
            x.label
                .as_deref()
                .map(|s| format!(" label {s:?}"))
                .unwrap_or_default()
        );
        device(l, &x.mapper, depth + 1, out);
    }
    for pv in l.lvm.pvs.iter().filter(|p| p.device == dev) {
        let vg = pv.vg.as_deref().unwrap_or("(no VG)");
        let _ = writeln!(out, "{pad}PV uuid {} of VG {vg}", pv.uuid);
        if let Some(g) = l.lvm.vgs.iter().find(|g| g.name == vg)
            && g.pvs.first().map(String::as_str) == Some(dev)
        {
            let _ = writeln!(
                out,
                "{pad}  VG {} uuid {} extent {}",
                g.name,
                g.uuid,
                human(g.extent_size)
            );
            for lv in l.lvm.lvs.iter().filter(|v| v.vg == g.name) {
                let kind = match &lv.kind {
                    LvKind::Linear => "linear".to_string(),
                    LvKind::Striped { stripes, .. } => format!("striped x{stripes}"),
                    LvKind::Mirror { mirrors } => format!("mirror x{mirrors}"),
                    LvKind::Raid1 { mirrors } => format!("raid1 x{mirrors}"),
                    LvKind::ThinPool { .. } => "thin pool".to_string(),
                    LvKind::Thin { pool } => format!("thin in {pool}"),
                };
                let _ = writeln!(out, "{pad}    LV {} {} {kind}", lv.path(), human(lv.size));
                device(l, &lv.path(), depth + 3, out);
            }
        }
    }
    for fs in l.filesystems.iter().filter(|f| f.device == dev) {
        let mut extra = Vec::new();
        if let Some(u) = &fs.uuid {
            extra.push(format!("uuid {u}"));
        }
        if let Some(lb) = &fs.label {
            extra.push(format!("label {lb:?}"));
        }
        let _ = writeln!(out, "{pad}{} {}", fs.fstype, extra.join(" "));
        if let Some(b) = &fs.btrfs {
            for sv in &b.subvolumes {
                let def = if b.default_subvolume.as_deref() == Some(sv.as_str()) {
                    " (default)"
                } else {
                    ""
                };
                let _ = writeln!(out, "{pad}  subvolume {sv}{def}");
            }
        }
        for m in l.mounts.iter().filter(|m| m.source == dev) {
            let _ = writeln!(
                out,
                "{pad}  mounted on {}{} ({})",
                m.target,
                m.fsroot
                    .as_deref()
                    .map(|r| format!(" from {r}"))
                    .unwrap_or_default(),
                m.options
            );
        }
    }
}
