//! The disk layout: how the host's disks are built (partitions, md RAID,
//! LVM, LUKS, file systems, mounts), captured from the tools' machine
//! output, saved as versioned JSON, shown as a tree and compared. Hands a
//! [`Layout`] to `recover`, which rebuilds it on blank disks.

pub mod capture;
pub mod exclude;
pub mod live;
pub mod model;
pub mod parse;
pub mod show;
pub mod unsupported;

use std::collections::{BTreeMap, BTreeSet};

pub use model::*;

/// Where `layout save` writes and `layout check` and the rescue image read.
pub const DEFAULT_PATH: &str = "/var/lib/mkrescue/layout.json";

/// Fields that change without the layout changing; `check` ignores them.
const VOLATILE: &[&str] = &["captured_at", "mkrescue_version"];

/// The differences between two layouts, one readable line each
/// (`- path: old`, `+ path: new`, `~ path: old -> new`); empty when equal.
/// Volatile fields are ignored. List entries are keyed by what names them
/// (a device path, a VG/LV name, a mount target), not by position, so a
/// reordering is no change and a change names the thing.
pub fn diff(old: &Layout, new: &Layout) -> Vec<String> {
    let a = flatten_layout(old);
    let b = flatten_layout(new);
    // A disk, partition, array... that is gone (or new) is one line, not
    // one per field.
    let gone = whole_entries(&a, &b);
    let came = whole_entries(&b, &a);
    let under =
        |set: &BTreeSet<String>, k: &str| set.iter().find(|e| k.starts_with(e.as_str())).cloned();
    let mut out = Vec::new();
    let mut said = BTreeSet::new();
    for (k, va) in &a {
        if let Some(e) = under(&gone, k) {
            if said.insert(e.clone()) {
                out.push(format!("- {e}: removed"));
            }
            continue;
        }
        match b.get(k) {
            None => out.push(format!("- {k}: {va}")),
            Some(vb) if vb != va => out.push(format!("~ {k}: {va} -> {vb}")),
            _ => {}
        }
    }
    for (k, vb) in &b {
        if let Some(e) = under(&came, k) {
            if said.insert(e.clone()) {
                out.push(format!("+ {e}: added"));
            }
            continue;
        }
        if !a.contains_key(k) {
            out.push(format!("+ {k}: {vb}"));
        }
    }
    out
}

/// The list entries (`disks[/dev/vdb]`, ...) of `a` of which `b` has no
/// field at all, outermost only.
fn whole_entries(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> BTreeSet<String> {
    let entries = |m: &BTreeMap<String, String>| -> BTreeSet<String> {
        m.keys()
            .flat_map(|k| k.match_indices(']').map(move |(i, _)| k[..=i].to_string()))
            .collect()
    };
    let eb = entries(b);
    let mut gone: Vec<String> = entries(a).difference(&eb).cloned().collect();
    gone.sort_by_key(|e| e.len());
    let mut outer = BTreeSet::new();
    for e in gone {
        if !outer.iter().any(|o: &String| e.starts_with(o.as_str())) {
            outer.insert(e);
        }
    }
    outer
}

fn flatten_layout(l: &Layout) -> BTreeMap<String, String> {
    let mut v = serde_json::to_value(l).expect("layout serialises");
    if let Some(o) = v.as_object_mut() {
        for k in VOLATILE {
            o.remove(*k);
        }
        // Every write changes it; the layout is the same.
        if let Some(fs) = o.get_mut("filesystems").and_then(|f| f.as_array_mut()) {
            for f in fs.iter_mut().filter_map(|f| f.as_object_mut()) {
                f.remove("used_bytes");
            }
        }
    }
    let mut out = BTreeMap::new();
    flatten("", &v, &mut out);
    out
}

/// The name of a list entry: the first identifying field it has.
fn key_of(v: &serde_json::Value) -> Option<String> {
    let o = v.as_object()?;
    if let (Some(vg), Some(name)) = (o.get("vg"), o.get("name"))
        && o.contains_key("uuid")
        && o.contains_key("size")
        && !o.contains_key("pe_start")
    {
        return Some(format!("{}/{}", vg.as_str()?, name.as_str()?));
    }
    for k in ["path", "device", "target", "name"] {
        if let Some(s) = o.get(k).and_then(|x| x.as_str()) {
            return Some(s.to_string());
        }
    }
    None
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    use serde_json::Value;
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, x, out);
            }
        }
        Value::Array(a) if a.iter().all(|x| x.is_object()) && !a.is_empty() => {
            for (i, x) in a.iter().enumerate() {
                let k = key_of(x).unwrap_or_else(|| i.to_string());
                flatten(&format!("{prefix}[{k}]"), x, out);
            }
        }
        Value::Null => {}
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}
