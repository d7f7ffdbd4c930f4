//! The rewrite of the restored system's network configuration for the
//! NICs [`super::map_nics`] mapped: which name each NIC gets there
//! ([`renames`]), one function per format, and [`rewrite_tree`] over the
//! files the restored system has. The parent module's doc lists what each
//! format has rewritten and why.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{Mapping, NicMap};

/// Where the originals of rewritten files go, in the restored system.
pub const ORIG_DIR: &str = "var/lib/mkrescue/recover-orig";

/// What the rewrite replaces: old name → new name, old MAC → new MAC
/// (lower case), only where they differ.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Renames {
    pub names: BTreeMap<String, String>,
    pub macs: BTreeMap<String, String>,
}

impl Renames {
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.macs.is_empty()
    }

    /// The new name of the whole word `w`; with `suffixes`, also of
    /// `OLD.VLAN` and `OLD:ALIAS` (ifupdown's names for a VLAN and an
    /// alias on OLD).
    fn name(&self, w: &str, suffixes: bool) -> Option<String> {
        if let Some(n) = self.names.get(w) {
            return Some(n.clone());
        }
        if !suffixes {
            return None;
        }
        let i = w.find(['.', ':'])?;
        self.names.get(&w[..i]).map(|n| format!("{n}{}", &w[i..]))
    }

    /// The new MAC for the word `w`, in `w`'s case.
    fn mac(&self, w: &str) -> Option<String> {
        let new = self.macs.get(&w.to_ascii_lowercase())?;
        Some(if w.bytes().any(|b| b.is_ascii_uppercase()) {
            new.to_ascii_uppercase()
        } else {
            new.clone()
        })
    }
}

/// The renames for `m` in the restored system at `root`: a NIC whose old
/// MAC a file there pins to a name keeps that name ([`pinned_names`]).
/// Two NICs that would end up with one name are left out, with a note.
pub fn renames(root: &Path, m: &Mapping) -> (Renames, Vec<String>) {
    let pins = pinned_names(root);
    let kernel = kernel_names(root);
    let mut r = Renames::default();
    let mut notes = Vec::new();
    if let Some(why) = &kernel {
        notes.push(format!(
            "the restored system keeps the kernel's NIC names ({why}): the NICs are named as in this rescue system"
        ));
    }
    let mut target: BTreeMap<String, Vec<&NicMap>> = BTreeMap::new();
    for n in &m.maps {
        let name = pins.get(&n.old_mac).cloned().unwrap_or_else(|| {
            if kernel.is_some() {
                n.here_name.clone()
            } else {
                n.new_name.clone()
            }
        });
        target.entry(name).or_default().push(n);
    }
    for (name, nics) in target {
        if nics.len() > 1 {
            notes.push(format!(
                "{} would all be named {name} in the restored system (a name pinned to an old MAC there, and this machine's name for another NIC): not rewritten; fix the names by hand",
                nics.iter().map(|n| n.old_name.as_str()).collect::<Vec<_>>().join(" and ")
            ));
            continue;
        }
        let n = nics[0];
        if pins.contains_key(&n.old_mac) && name != n.new_name {
            notes.push(format!(
                "{} keeps the name {name} the restored system pins to its MAC (not {})",
                n.old_name, n.new_name
            ));
        }
        if n.old_name != name {
            r.names.insert(n.old_name.clone(), name);
        }
        if n.old_mac != n.new_mac {
            r.macs.insert(n.old_mac.clone(), n.new_mac.clone());
        }
    }
    (r, notes)
}

/// Why the restored system at `root` names NICs as the kernel does
/// (`eth0`), if it does: `net.ifnames=0` on its kernel command line
/// (systemd.net-naming-scheme(7)) in /etc/default/grub or
/// /etc/kernel/cmdline, or the default policy masked by a
/// `/etc/systemd/network/99-default.link` linked to /dev/null.
pub fn kernel_names(root: &Path) -> Option<String> {
    for f in ["etc/default/grub", "etc/kernel/cmdline"] {
        let text = read(&root.join(f));
        if text
            .lines()
            .filter(|l| !is_comment(l, '#'))
            .flat_map(|l| l.split(|c: char| c.is_whitespace() || c == '"' || c == '\''))
            .any(|w| w == "net.ifnames=0")
        {
            return Some(format!("net.ifnames=0 in /{f}"));
        }
    }
    let link = root.join("etc/systemd/network/99-default.link");
    if std::fs::read_link(&link).is_ok_and(|t| t == Path::new("/dev/null")) {
        return Some("/etc/systemd/network/99-default.link masks the naming policy".into());
    }
    None
}

/// Old MAC (lower case) → the name the restored system gives that NIC:
/// `NAME=` of a udev rule matching `ATTR{address}`, `[Link] Name=` of a
/// systemd `.link` file matching `MACAddress=`/`PermanentMACAddress=`,
/// netplan's `set-name:` beside `match: macaddress:`.
pub fn pinned_names(root: &Path) -> BTreeMap<String, String> {
    let mut pins = BTreeMap::new();
    for f in files(root, "etc/udev/rules.d", &[".rules"]) {
        for l in read(&f).lines().filter(|l| !is_comment(l, '#')) {
            if let (Some(mac), Some(name)) = (udev_value(l, "ATTR{address}"), udev_value(l, "NAME"))
            {
                pins.entry(mac.to_ascii_lowercase()).or_insert(name);
            }
        }
    }
    for f in files(root, "etc/systemd/network", &[".link"]) {
        let text = read(&f);
        let name = ini_values(&text, "Link", "Name").into_iter().next_back();
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            for k in ["MACAddress", "PermanentMACAddress"] {
                for v in ini_values(&text, "Match", k) {
                    for mac in v.split_whitespace() {
                        pins.entry(mac.to_ascii_lowercase()).or_insert(name.clone());
                    }
                }
            }
        }
    }
    for f in files(root, "etc/netplan", &[".yaml"]) {
        for (mac, name) in netplan_pins(&read(&f)) {
            pins.entry(mac).or_insert(name);
        }
    }
    pins
}

/// The value of `KEY=="v"` or `KEY="v"` in a udev rule line.
fn udev_value(line: &str, key: &str) -> Option<String> {
    for part in line.split(',') {
        let p = part.trim();
        let Some(rest) = p.strip_prefix(key) else {
            continue;
        };
        let rest = rest.trim_start();
        let v = rest
            .strip_prefix("==")
            .or_else(|| rest.strip_prefix(":="))
            .or_else(|| rest.strip_prefix('='))?;
        return Some(v.trim().trim_matches('"').to_string());
    }
    None
}

/// A line of a netplan file, as far as the rewrite reads YAML.
struct YamlLine<'a> {
    /// Column of the key (after a `- ` list marker).
    indent: usize,
    key: Option<&'a str>,
    /// After `key:` (or the whole item of a `- item` line), untrimmed.
    value: &'a str,
    /// Where `value` starts in the line.
    value_at: usize,
}

fn yaml_line(line: &str) -> Option<YamlLine<'_>> {
    let body = line.trim_end_matches(['\n', '\r']);
    let lead = body.len() - body.trim_start().len();
    let mut at = lead;
    let rest = &body[lead..];
    if rest.is_empty() || rest.starts_with('#') {
        return None;
    }
    let rest = if let Some(r) = rest.strip_prefix("- ") {
        at += 2;
        let r2 = r.trim_start();
        at += r.len() - r2.len();
        r2
    } else {
        rest
    };
    // `key:` then a space or the end of the line; a MAC's colons are
    // followed by hex digits.
    let colon = rest
        .char_indices()
        .find(|&(i, c)| {
            c == ':'
                && rest[i + 1..]
                    .chars()
                    .next()
                    .is_none_or(|n| n == ' ' || n == '\t')
        })
        .map(|(i, _)| i);
    match colon {
        Some(i) if !rest.starts_with(['"', '\'', '[', '{']) || rest[..i].ends_with(['"', '\'']) => {
            Some(YamlLine {
                indent: at,
                key: Some(rest[..i].trim_matches(['"', '\''])),
                value: &rest[i + 1..],
                value_at: at + i + 1,
            })
        }
        _ => Some(YamlLine {
            indent: at,
            key: None,
            value: rest,
            value_at: at,
        }),
    }
}

/// Walks a netplan file: for each line, its parsed form and the keys of
/// its ancestors (with their line numbers).
fn yaml_walk<'a>(
    text: &'a str,
    mut f: impl FnMut(usize, &YamlLine<'a>, &[(usize, &'a str, usize)]),
) {
    let mut stack: Vec<(usize, &str, usize)> = Vec::new();
    for (no, line) in text.split_inclusive('\n').enumerate() {
        let Some(y) = yaml_line(line) else {
            continue;
        };
        while stack.last().is_some_and(|&(ind, _, _)| ind >= y.indent) {
            stack.pop();
        }
        f(no, &y, &stack);
        if let Some(k) = y.key {
            stack.push((y.indent, k, no));
        }
    }
}

/// (MAC, name) of every netplan entry with `match: macaddress:` and
/// `set-name:`.
fn netplan_pins(text: &str) -> Vec<(String, String)> {
    let mut mac_of: BTreeMap<usize, String> = BTreeMap::new();
    let mut name_of: BTreeMap<usize, String> = BTreeMap::new();
    yaml_walk(text, |_, y, stack| {
        let v = unquote(y.value);
        match (y.key, stack) {
            (Some("macaddress"), [.., (_, id, id_no), (_, "match", _)]) if !id.is_empty() => {
                mac_of.insert(*id_no, v.to_ascii_lowercase());
            }
            (Some("set-name"), [.., (_, _, id_no)]) => {
                name_of.insert(*id_no, v.to_string());
            }
            _ => {}
        }
    });
    mac_of
        .into_iter()
        .filter_map(|(id, mac)| Some((mac, name_of.get(&id)?.clone())))
        .collect()
}

fn unquote(v: &str) -> &str {
    let v = v.trim();
    let v = v.split(" #").next().unwrap_or(v).trim();
    v.trim_matches(['"', '\''])
}

fn is_comment(line: &str, c: char) -> bool {
    line.trim_start().starts_with(c)
}

/// `line` with each word (a run of characters that are not `delims` or
/// whitespace) replaced by `f`'s answer, when it has one.
fn map_words(line: &str, delims: &[char], f: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(line.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        match f(word) {
            Some(n) => out.push_str(&n),
            None => out.push_str(word),
        }
        word.clear();
    };
    for ch in line.chars() {
        if ch.is_whitespace() || delims.contains(&ch) {
            flush(&mut word, &mut out);
            out.push(ch);
        } else {
            word.push(ch);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// A file's new text and how many lines changed; `None`: no change.
pub type Rewritten = Option<(String, usize)>;

/// Applies `f` to every line (with its newline) and counts the changes.
fn per_line(text: &str, mut f: impl FnMut(usize, &str) -> String) -> Rewritten {
    let mut out = String::with_capacity(text.len());
    let mut n = 0;
    for (no, line) in text.split_inclusive('\n').enumerate() {
        let new = f(no, line);
        if new != line {
            n += 1;
        }
        out.push_str(&new);
    }
    (n > 0).then_some((out, n))
}

/// ifupdown's interfaces(5): every word of a non-comment line.
pub fn rewrite_ifupdown(text: &str, r: &Renames) -> Rewritten {
    per_line(text, |_, l| {
        if is_comment(l, '#') {
            return l.to_string();
        }
        map_words(l, &[], |w| r.name(w, true).or_else(|| r.mac(w)))
    })
}

/// systemd-networkd `.network`, `.link`, `.netdev`: the `[Match]` keys
/// `Name=`, `MACAddress=`, `PermanentMACAddress=`. `Name=` words are
/// renamed when whole; the assigned names (`[Link] Name=`, `[NetDev]
/// `NAME` of an INI section line `[NAME]` (networkd units, keyfiles).
fn section_header(t: &str) -> Option<&str> {
    t.strip_prefix('[')?.strip_suffix(']')
}

/// Name=`) are not matches and stay.
pub fn rewrite_networkd(text: &str, r: &Renames) -> Rewritten {
    let mut section = String::new();
    per_line(text, |_, l| {
        let t = l.trim();
        if let Some(h) = section_header(t) {
            section = h.to_string();
            return l.to_string();
        }
        if section != "Match" || is_comment(l, '#') || is_comment(l, ';') {
            return l.to_string();
        }
        let Some((k, v)) = l.split_once('=') else {
            return l.to_string();
        };
        let new = match k.trim() {
            "Name" => map_words(v, &[], |w| r.name(w, false)),
            "MACAddress" | "PermanentMACAddress" => map_words(v, &[], |w| r.mac(w)),
            _ => return l.to_string(),
        };
        format!("{k}={new}")
    })
}

/// Name globs of `[Match] Name=` lines that matched an old name and do
/// not match its new one: the file no longer applies to the NIC.
pub fn networkd_stale_globs(text: &str, r: &Renames) -> Vec<String> {
    let mut out = Vec::new();
    for v in ini_values(text, "Match", "Name") {
        for g in v.split_whitespace().filter(|g| g.contains(['*', '?', '['])) {
            for (old, new) in &r.names {
                let pat = g.trim_start_matches('!');
                if crate::kmod::fnmatch(pat, old) && !crate::kmod::fnmatch(pat, new) {
                    out.push(format!("Name={g} matched {old} but not {new}"));
                }
            }
        }
    }
    out
}

/// NetworkManager keyfiles: `interface-name=` of `[connection]`,
/// `mac-address=` of `[ethernet]` (`[802-3-ethernet]` in old files), a
/// VLAN's `parent=` when it names an interface.
pub fn rewrite_nmconnection(text: &str, r: &Renames) -> Rewritten {
    let mut section = String::new();
    per_line(text, |_, l| {
        let t = l.trim();
        if let Some(h) = section_header(t) {
            section = h.to_string();
            return l.to_string();
        }
        if is_comment(l, '#') {
            return l.to_string();
        }
        let Some((k, v)) = l.split_once('=') else {
            return l.to_string();
        };
        let new = match (section.as_str(), k.trim()) {
            ("connection", "interface-name") | ("vlan", "parent") => {
                map_words(v, &[], |w| r.name(w, false))
            }
            ("ethernet" | "802-3-ethernet", "mac-address") => map_words(v, &[], |w| r.mac(w)),
            _ => return l.to_string(),
        };
        format!("{k}={new}")
    })
}

/// netplan YAML: interface ids (keys), names in values (`interfaces: [a,
/// b]`, `- a`, `link: a`, `match: name:`), and the MAC of `match:
/// macaddress:`. `set-name:` is an assigned name and stays; a
/// `macaddress:` outside `match:` sets the MAC and stays.
pub fn rewrite_netplan(text: &str, r: &Renames) -> Rewritten {
    let mut parsed: BTreeMap<usize, (usize, Option<String>, usize, bool)> = BTreeMap::new();
    yaml_walk(text, |no, y, stack| {
        let in_match = matches!(stack.last(), Some((_, "match", _)));
        // (key start, key, value start, value is a MAC to rewrite)
        parsed.insert(
            no,
            (
                y.indent,
                y.key.map(str::to_string),
                y.value_at,
                y.key == Some("macaddress") && in_match,
            ),
        );
    });
    per_line(text, |no, l| {
        let Some((key_at, key, value_at, mac)) = parsed.get(&no) else {
            return l.to_string();
        };
        let (head, value) = l.split_at(*value_at);
        // A comment after the value stays as it is.
        let (value, comment) = match value.find(" #") {
            Some(i) => value.split_at(i),
            None => (value, ""),
        };
        let new_value = if *mac {
            map_words(value, &['"', '\''], |w| r.mac(w))
        } else if key.as_deref() == Some("set-name") {
            value.to_string()
        } else {
            // `:` too, for flow mappings (`{eth0: {dhcp4: true}}`).
            map_words(value, &['"', '\'', '[', ']', ',', '{', '}', ':'], |w| {
                r.name(w, false)
            })
        };
        let head = match key {
            Some(k) => match r.name(k, false) {
                Some(n) => {
                    let (pre, keypart) = head.split_at(*key_at);
                    format!("{pre}{}", keypart.replacen(k.as_str(), &n, 1))
                }
                None => head.to_string(),
            },
            None => head.to_string(),
        };
        format!("{head}{new_value}{comment}")
    })
}

/// udev rules: the MAC of `ATTR{address}==` (and any other MAC word of a
/// rule); `NAME=` is the pinned name and stays.
pub fn rewrite_udev_rules(text: &str, r: &Renames) -> Rewritten {
    per_line(text, |_, l| {
        if is_comment(l, '#') {
            return l.to_string();
        }
        map_words(l, &['"', ','], |w| r.mac(w))
    })
}

/// A network configuration format and where it lives.
#[derive(Debug, Clone, Copy)]
struct Format {
    dir: &'static str,
    /// File names (`interfaces`) or suffixes (`.network`); empty: all.
    names: &'static [&'static str],
    rewrite: fn(&str, &Renames) -> Rewritten,
}

const FORMATS: &[Format] = &[
    Format {
        dir: "etc/network",
        names: &["interfaces"],
        rewrite: rewrite_ifupdown,
    },
    Format {
        dir: "etc/network/interfaces.d",
        names: &[],
        rewrite: rewrite_ifupdown,
    },
    Format {
        dir: "etc/systemd/network",
        names: &[".network", ".link", ".netdev"],
        rewrite: rewrite_networkd,
    },
    Format {
        dir: "etc/NetworkManager/system-connections",
        names: &[".nmconnection"],
        rewrite: rewrite_nmconnection,
    },
    Format {
        dir: "etc/netplan",
        names: &[".yaml"],
        rewrite: rewrite_netplan,
    },
    Format {
        dir: "etc/udev/rules.d",
        names: &[".rules"],
        rewrite: rewrite_udev_rules,
    },
];

/// Rewrites the network configuration of the restored system at `root`
/// for mapping `m`; one line per file changed and per thing to check, for
/// the report. Nothing is touched when every NIC kept its name and MAC.
pub fn rewrite_tree(root: &Path, m: &Mapping) -> Result<Vec<String>> {
    if !m.changes() {
        return Ok(Vec::new());
    }
    let (r, mut done) = renames(root, m);
    if r.is_empty() {
        return Ok(done);
    }
    let summary: Vec<String> = r
        .names
        .iter()
        .map(|(o, n)| format!("{o} -> {n}"))
        .chain(r.macs.iter().map(|(o, n)| format!("{o} -> {n}")))
        .collect();
    let mut changed = 0;
    for fmt in FORMATS {
        for f in files(root, fmt.dir, fmt.names) {
            let rel = f.strip_prefix(root).unwrap_or(&f).to_path_buf();
            let Ok(text) = std::fs::read_to_string(&f) else {
                continue;
            };
            if fmt.dir == "etc/systemd/network" {
                for g in networkd_stale_globs(&text, &r) {
                    done.push(format!(
                        "/{}: {g}: check that file, it no longer applies to that NIC",
                        rel.display()
                    ));
                }
            }
            let Some((new, lines)) = (fmt.rewrite)(&text, &r) else {
                continue;
            };
            let orig = root.join(ORIG_DIR).join(&rel);
            // One file that cannot be written does not stop the others.
            if let Err(e) = keep_original(&f, &orig).and_then(|()| replace(&f, &new)) {
                done.push(format!(
                    "/{}: NOT rewritten for the new NICs ({e:#}): edit it after boot ({lines} line{} name an old NIC)",
                    rel.display(),
                    if lines == 1 { "" } else { "s" }
                ));
                continue;
            }
            changed += 1;
            done.push(format!(
                "/{}: {lines} line{} rewritten for the new NICs (original in /{})",
                rel.display(),
                if lines == 1 { "" } else { "s" },
                orig.strip_prefix(root).unwrap_or(&orig).display()
            ));
        }
    }
    if changed == 0 && !done.iter().any(|l| l.contains(": NOT rewritten")) {
        done.push(format!(
            "no network configuration file of the restored system names {}: nothing rewritten (a configuration by DHCP on any NIC needs none)",
            summary.join(", ")
        ));
    }
    Ok(done)
}

/// Regular files of `root/dir` whose name is in `names` or ends with one
/// of its suffixes (`.x`); all regular files when `names` is empty.
/// Symlinks are left alone (a `.network` linked to /dev/null masks one).
fn files(root: &Path, dir: &str, names: &[&str]) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(root.join(dir)) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap_or_default().to_string_lossy();
            // Hidden files and our own temporary ones are nobody's config.
            !n.starts_with('.')
                && (names.is_empty()
                    || names.iter().any(|s| {
                        if s.starts_with('.') {
                            n.ends_with(s)
                        } else {
                            n == *s
                        }
                    }))
        })
        .collect();
    v.sort();
    v
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// Values of `key` in `[section]` of an INI-style file.
fn ini_values(text: &str, section: &str, key: &str) -> Vec<String> {
    let mut cur = "";
    let mut out = Vec::new();
    for l in text.lines() {
        let t = l.trim();
        if t.starts_with('[') && t.ends_with(']') {
            cur = &t[1..t.len() - 1];
        } else if cur == section
            && let Some((k, v)) = t.split_once('=')
            && k.trim() == key
        {
            out.push(v.trim().to_string());
        }
    }
    out
}

/// Copies `f` to `orig` (parents made 0700: a keyfile may hold a Wi-Fi
/// key); the copy keeps `f`'s mode. An original from an earlier run of
/// recover is the true one and is kept.
fn keep_original(f: &Path, orig: &Path) -> Result<()> {
    if orig.exists() {
        return Ok(());
    }
    if let Some(dir) = orig.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut base = orig.to_path_buf();
    while let Some(p) = base.parent() {
        if p.ends_with("mkrescue") {
            break;
        }
        let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700));
        base = p.to_path_buf();
    }
    std::fs::copy(f, orig)
        .with_context(|| format!("keeping {} as {}", f.display(), orig.display()))?;
    Ok(())
}

/// Replaces `f`'s content by `text` through a temporary file in the same
/// directory and a rename, with `f`'s mode, owner and group: a crash
/// leaves the old file or the new one, never half of one.
pub fn replace(f: &Path, text: &str) -> Result<()> {
    let meta = std::fs::metadata(f).with_context(|| format!("reading {}", f.display()))?;
    let dir = f.parent().unwrap_or(Path::new("."));
    let name = f.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.mkrescue-tmp"));
    let write = || -> std::io::Result<()> {
        let mut o = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            // 0600 until the final mode is set: it may be a secret.
            .mode(0o600)
            .open(&tmp)?;
        o.write_all(text.as_bytes())?;
        std::os::unix::fs::fchown(&o, Some(meta.uid()), Some(meta.gid()))?;
        o.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        o.sync_all()?;
        std::fs::rename(&tmp, f)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!("rewriting {}: {e}", f.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rn(names: &[(&str, &str)], macs: &[(&str, &str)]) -> Renames {
        Renames {
            names: names
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            macs: macs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    #[test]
    fn words_follow_vlan_and_alias_names_only_in_ifupdown() {
        let r = rn(&[("eth0", "ens4")], &[]);
        assert_eq!(r.name("eth0.42", true).as_deref(), Some("ens4.42"));
        assert_eq!(r.name("eth0:1", true).as_deref(), Some("ens4:1"));
        assert_eq!(r.name("eth0.42", false), None);
        assert_eq!(r.name("eth00", true), None);
        assert_eq!(r.name("veth0", true), None);
    }

    #[test]
    fn mac_keeps_its_case() {
        let r = rn(&[], &[("52:54:00:ab:cd:01", "52:54:00:ab:cd:ef")]);
        assert_eq!(
            r.mac("52:54:00:ab:cd:01").as_deref(),
            Some("52:54:00:ab:cd:ef")
        );
        assert_eq!(
            r.mac("52:54:00:AB:CD:01").as_deref(),
            Some("52:54:00:AB:CD:EF")
        );
        assert_eq!(r.mac("52:54:00:ab:cd:02"), None);
    }

    #[test]
    fn yaml_lines() {
        let y = yaml_line("      macaddress: 52:54:00:00:00:01\n").unwrap();
        assert_eq!(
            (y.indent, y.key, y.value.trim()),
            (6, Some("macaddress"), "52:54:00:00:00:01")
        );
        let y = yaml_line("    - eth0\n").unwrap();
        assert_eq!((y.indent, y.key, y.value), (6, None, "eth0"));
        let y = yaml_line("    eth0:\n").unwrap();
        assert_eq!(y.key, Some("eth0"));
        assert!(yaml_line("  # c\n").is_none());
    }

    #[test]
    fn netplan_flow_style_names_follow() {
        let r = rn(&[("eth1", "ens5")], &[]);
        let (text, n) = rewrite_netplan(
            "network:\n  ethernets: {eth1: {dhcp4: true}}\n  bonds:\n    bond0: {interfaces: [eth1]}\n",
            &r,
        )
        .unwrap();
        assert_eq!(
            text,
            "network:\n  ethernets: {ens5: {dhcp4: true}}\n  bonds:\n    bond0: {interfaces: [ens5]}\n"
        );
        assert_eq!(n, 2);
    }

    #[test]
    fn udev_values() {
        let l = r#"SUBSYSTEM=="net", ACTION=="add", DRIVERS=="?*", ATTR{address}=="52:54:00:00:00:01", ATTR{type}=="1", KERNEL=="eth*", NAME="eth0""#;
        assert_eq!(
            udev_value(l, "ATTR{address}").as_deref(),
            Some("52:54:00:00:00:01")
        );
        assert_eq!(udev_value(l, "NAME").as_deref(), Some("eth0"));
    }
}
