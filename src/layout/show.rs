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

/// The name util-linux's sfdisk gives a partition type (a GPT type GUID,
/// or an MBR type byte in hex), for the ones a Linux server has.
pub fn type_name(t: &str) -> Option<&'static str> {
    const TYPES: &[(&str, &str)] = &[
        ("C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "EFI System"),
        ("21686148-6449-6E6F-744E-656564454649", "BIOS boot"),
        ("0FC63DAF-8483-4772-8E79-3D69D8477DE4", "Linux filesystem"),
        ("A19D880F-05FC-4D3B-A006-743F0F84911E", "Linux RAID"),
        ("E6D6D379-F507-44C2-A23C-238F2A3DF928", "Linux LVM"),
        ("0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", "Linux swap"),
        (
            "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
            "Linux root (x86-64)",
        ),
        (
            "BC13C2FF-59E6-4262-A352-B275FD6F7172",
            "Linux extended boot",
        ),
        ("933AC7E1-2EB4-4F13-B844-0E14E2AEF915", "Linux home"),
        ("CA7D7CCB-63ED-4C53-861C-1742536059CC", "Linux LUKS"),
        (
            "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
            "Microsoft basic data",
        ),
        ("E3C9E316-0B5C-4DB8-817D-F92DF00215AE", "Microsoft reserved"),
        (
            "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC",
            "Windows recovery environment",
        ),
        ("83", "Linux"),
        ("82", "Linux swap"),
        ("8E", "Linux LVM"),
        ("FD", "Linux raid autodetect"),
        ("EF", "EFI (FAT-12/16/32)"),
        ("5", "Extended"),
        ("F", "W95 Ext'd (LBA)"),
        ("7", "HPFS/NTFS/exFAT"),
        ("B", "W95 FAT32"),
        ("C", "W95 FAT32 (LBA)"),
        ("EE", "GPT"),
    ];
    let t = t.trim().trim_start_matches("0x");
    // MBR bytes may come as `05`; GUIDs keep their leading zeros.
    let t = if t.len() <= 4 {
        t.trim_start_matches('0')
    } else {
        t
    };
    TYPES
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(t))
        .map(|(_, n)| *n)
}

/// A partition's type as `layout show` prints it: the name, with the GUID
/// (or MBR byte) as well when `verbose`, or when it has no name.
fn type_text(t: &str, verbose: bool) -> String {
    match type_name(t) {
        Some(n) if verbose => format!("{n} ({t})"),
        Some(n) => n.to_string(),
        None => t.to_string(),
    }
}

/// Renders the tree; `verbose` adds partition type GUIDs.
pub fn render(l: &Layout, verbose: bool) -> String {
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
                type_text(&p.type_, verbose),
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
    if !l.unsupported.is_empty() {
        let _ = writeln!(out, "not recreated by recover (it refuses this layout):");
        for u in &l.unsupported {
            let _ = writeln!(out, "  {u}");
        }
    }
    if !l.unknown.is_empty() {
        let _ = writeln!(out, "not probed (saved with --allow-partial):");
        for u in &l.unknown {
            let _ = writeln!(out, "  {} ({})", u.device, u.reason);
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
        // What recover may shrink it to depends on it (recover::plan::fit).
        if let Some(u) = fs.used_bytes {
            extra.push(format!("used {}", human(u)));
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
