//! Other NICs: map the NICs the image recorded (`/etc/mkrescue/network.json`,
//! [`crate::rescue::network`]) to the NICs of this machine, and rewrite the
//! restored system's network configuration for them, so the server comes
//! back on its addresses with a NIC of another MAC or name.
//!
//! **Mapping** ([`map_nics`]), each recorded physical NIC in turn:
//! 1. `--map-nic OLD=NEW` (OLD a recorded name or MAC, NEW a name or MAC
//!    here);
//! 2. the same MAC (the permanent one: a bond slave carries its bond's);
//! 3. the same slot: the PCI path udev calls `ID_PATH` (`pci-0000:00:03.0`,
//!    recorded at build time);
//! 4. by order (ifindex order on both sides, the order the kernel found
//!    them in), only when exactly as many NICs are left on each side: the
//!    report says "by order" so the admin can check the cables.
//!
//! Anything else (more NICs left on one side than on the other, a recorded
//! NIC with nothing to go to) is a line in the report naming what to do,
//! never a guess; recover goes on, the server must still boot.
//!
//! **Rewrite** ([`rewrite_tree`], run by finalize after the restore): in the
//! files the restored system has (nothing is created for a network stack
//! it did not use), an old NIC name becomes the new one and an old MAC the
//! new MAC, in the places that name a NIC:
//! - ifupdown (`/etc/network/interfaces`, `interfaces.d/*`, interfaces(5)):
//!   every word of a non-comment line (`auto`, `allow-hotplug`, `iface`,
//!   `bond-slaves`, `bridge_ports`, `vlan-raw-device`, `hwaddress`, the
//!   `up` commands; `eth0.42` and `eth0:1` follow `eth0`);
//! - systemd-networkd (`/etc/systemd/network/*.network|link|netdev`):
//!   `[Match]` `Name=`, `MACAddress=`, `PermanentMACAddress=`
//!   (systemd.network(5); a glob that stops matching is reported);
//! - NetworkManager keyfiles (`/etc/NetworkManager/system-connections/
//!   *.nmconnection`, nm-settings-keyfile(5)): `interface-name=`,
//!   `mac-address=`, a VLAN's `parent=`;
//! - netplan (`/etc/netplan/*.yaml`): interface ids, `interfaces:` and
//!   `link:` references, `match:` `name:` and `macaddress:`;
//! - udev rules (`/etc/udev/rules.d/*.rules`, the old
//!   `70-persistent-net.rules`): `ATTR{address}=="MAC"`.
//!
//! A name the restored system pins to the old MAC (a udev rule's `NAME=`,
//! a `.link` file's `[Link] Name=`, netplan's `set-name:`) is what the NIC
//! will be called there once the MAC is rewritten, so then that name is
//! kept; otherwise the name the NIC has in this rescue system, which runs
//! the host's own udev and naming policy, is the name it gets.
//!
//! Each file keeps its mode and owner (keyfiles are 0600: they may hold
//! secrets) and is replaced by rename; its original goes under
//! `/var/lib/mkrescue/recover-orig/` in the restored system, outside the
//! directories the network stacks read (an `interfaces.d` or
//! `system-connections` file next to it would be loaded as well).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::error::{Code, fail};
use crate::rescue::network::{LinkKind, NetConfig};

/// Where the originals of rewritten files go, in the restored system.
pub const ORIG_DIR: &str = "var/lib/mkrescue/recover-orig";

/// A physical NIC of the host, as the image recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub name: String,
    /// Lower case, the permanent MAC.
    pub mac: String,
    /// udev's `ID_PATH` (`pci-0000:00:03.0`), when recorded.
    pub path: Option<String>,
}

/// A NIC of this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HereNic {
    /// Its name in this rescue system: the kernel's (`eth0`), as the image
    /// carries udev's rules but not systemd's `99-default.link` naming
    /// policy.
    pub name: String,
    /// The predictable name the restored system's udev gives it (Debian's
    /// `NamePolicy=keep kernel database onboard slot path`,
    /// systemd.link(5)): `ID_NET_NAME_FROM_DATABASE`, `_ONBOARD`, `_SLOT`
    /// or `_PATH` of udev's net_id builtin, the first there is.
    pub predictable: Option<String>,
    /// Lower case, the permanent MAC.
    pub mac: String,
    pub path: Option<String>,
    /// The kernel's order of discovery.
    pub ifindex: u32,
}

/// Why a recorded NIC went to a NIC here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Explicit,
    Mac,
    Path,
    Order,
}

impl Why {
    fn text(self) -> &'static str {
        match self {
            Why::Explicit => "--map-nic",
            Why::Mac => "same MAC",
            Why::Path => "same PCI slot",
            Why::Order => "by order",
        }
    }
}

/// One recorded NIC and where it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicMap {
    pub old_name: String,
    pub old_mac: String,
    /// The name the NIC gets in the restored system: its predictable
    /// name, else its name here.
    pub new_name: String,
    /// Its name in this rescue system.
    pub here_name: String,
    pub new_mac: String,
    pub why: Why,
}

/// The mapping, and what could not be mapped (each a line for the report).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapping {
    pub maps: Vec<NicMap>,
    pub notes: Vec<String>,
}

impl Mapping {
    /// Whether the restored configuration needs a change at all.
    pub fn changes(&self) -> bool {
        self.maps
            .iter()
            .any(|m| m.old_name != m.new_name || m.old_mac != m.new_mac)
    }

    /// One line per mapped NIC, then the notes: for the header, the dry
    /// run and the report.
    pub fn lines(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .maps
            .iter()
            .map(|m| {
                if m.old_name == m.new_name && m.old_mac == m.new_mac {
                    format!("nic {} {}: here as it was", m.old_name, m.old_mac)
                } else {
                    let here = if m.here_name == m.new_name {
                        String::new()
                    } else {
                        format!("; {} in this rescue system", m.here_name)
                    };
                    format!(
                        "nic {} {} -> {} {} ({}{here})",
                        m.old_name,
                        m.old_mac,
                        m.new_name,
                        m.new_mac,
                        m.why.text()
                    )
                }
            })
            .collect();
        v.extend(self.notes.iter().map(|n| format!("nic: {n}")));
        v
    }
}

/// The physical NICs of a captured configuration, in its order (ifindex).
pub fn recorded(cfg: &NetConfig) -> Vec<Recorded> {
    cfg.interfaces
        .iter()
        .filter(|i| i.link == LinkKind::Physical)
        .map(|i| Recorded {
            name: i.name.clone(),
            mac: i.mac.to_ascii_lowercase(),
            path: i.path.clone(),
        })
        .collect()
}

/// The NICs below `sys_class_net` (`/sys/class/net`): interfaces with a
/// `device` (virtual ones have none), in ifindex order. `permanent`
/// (name → MAC, from `ip -json link`'s `permaddr`) replaces the current
/// address of a bond slave, which carries its bond's. Predictable names
/// come from udev's database in `udev_data` (`/run/udev/data`, file
/// `n<ifindex>`, lines `E:KEY=VALUE`: what `udevadm info` reads; the
/// image's `75-net-description.rules` imports net_id into it).
pub fn probe(
    sys_class_net: &Path,
    permanent: &BTreeMap<String, String>,
    udev_data: &Path,
) -> Vec<HereNic> {
    let Ok(rd) = std::fs::read_dir(sys_class_net) else {
        return Vec::new();
    };
    let mut v: Vec<HereNic> = rd
        .flatten()
        .filter(|e| e.path().join("device").exists())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let read = |f: &str| {
                std::fs::read_to_string(e.path().join(f))
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            };
            let ifindex: u32 = read("ifindex").parse().unwrap_or(u32::MAX);
            let db =
                std::fs::read_to_string(udev_data.join(format!("n{ifindex}"))).unwrap_or_default();
            HereNic {
                predictable: predictable_name(db.lines().filter_map(|l| l.strip_prefix("E:"))),
                mac: permanent
                    .get(&name)
                    .cloned()
                    .unwrap_or_else(|| read("address"))
                    .to_ascii_lowercase(),
                path: crate::rescue::network::bus_path(sys_class_net, &name),
                ifindex,
                name,
            }
        })
        .collect();
    v.sort_by(|a, b| (a.ifindex, &a.name).cmp(&(b.ifindex, &b.name)));
    v
}

/// The first of `ID_NET_NAME_FROM_DATABASE`, `_ONBOARD`, `_SLOT`,
/// `_PATH` among `KEY=VALUE` lines: the name Debian's default
/// `NamePolicy=keep kernel database onboard slot path` picks.
pub fn predictable_name<'a>(props: impl Iterator<Item = &'a str>) -> Option<String> {
    let props: BTreeMap<&str, &str> = props.filter_map(|l| l.split_once('=')).collect();
    ["FROM_DATABASE", "ONBOARD", "SLOT", "PATH"]
        .iter()
        .find_map(|k| props.get(format!("ID_NET_NAME_{k}").as_str()))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The predictable name of NIC `name` by the rescue system's
/// `udevadm test-builtin net_id` (no change to anything: it prints the
/// properties), for when udev's database lacks them.
fn net_id(name: &str) -> Option<String> {
    let out = crate::exec::Cmd::new("udevadm")
        .args(["test-builtin", "net_id"])
        .arg(format!("/sys/class/net/{name}"))
        .read()
        .ok()?;
    predictable_name(out.lines())
}

/// Name → permanent MAC of the interfaces whose current MAC is another
/// (`permaddr` in `ip -json link show`, iproute2 ≥ 5.10). Best effort: an
/// empty map when `ip` fails.
pub fn permanent_macs() -> BTreeMap<String, String> {
    let Ok(out) = crate::exec::Cmd::new("ip")
        .args(["-json", "link", "show"])
        .read()
    else {
        return BTreeMap::new();
    };
    parse_permaddr(&out)
}

fn parse_permaddr(json: &str) -> BTreeMap<String, String> {
    let v: Vec<serde_json::Value> = serde_json::from_str(json).unwrap_or_default();
    v.iter()
        .filter_map(|l| {
            Some((
                l["ifname"].as_str()?.to_string(),
                l["permaddr"].as_str()?.to_ascii_lowercase(),
            ))
        })
        .collect()
}

/// `--map-nic OLD=NEW` values, checked against both sides: a name or MAC
/// that is not there is the user's mistake, said before anything is
/// written (exit 2).
pub fn parse_map_nic(
    args: &[String],
    rec: &[Recorded],
    here: &[HereNic],
) -> Result<Vec<(usize, usize)>> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for a in args {
        let Some((old, new)) = a.split_once('=') else {
            return Err(fail(
                Code::Usage,
                format!(
                    "--map-nic {a}: want OLD=NEW (a recorded NIC's name or MAC = a NIC here by name, predictable name or MAC)"
                ),
            ));
        };
        let (old, new) = (old.trim(), new.trim());
        let Some(o) = rec
            .iter()
            .position(|r| r.name == old || r.mac.eq_ignore_ascii_case(old))
        else {
            let list: Vec<String> = rec
                .iter()
                .map(|r| format!("{} {}", r.name, r.mac))
                .collect();
            return Err(fail(
                Code::Usage,
                format!(
                    "--map-nic {a}: {old} is not a NIC the rescue image recorded ({}); nothing was changed",
                    if list.is_empty() {
                        "it recorded none".to_string()
                    } else {
                        list.join(", ")
                    }
                ),
            ));
        };
        let Some(n) = here.iter().position(|h| {
            h.name == new
                || h.predictable.as_deref() == Some(new)
                || h.mac.eq_ignore_ascii_case(new)
        }) else {
            let list: Vec<String> = here
                .iter()
                .map(|h| format!("{} {}", h.name, h.mac))
                .collect();
            return Err(fail(
                Code::Usage,
                format!(
                    "--map-nic {a}: {new} is not a NIC of this machine ({}); nothing was changed",
                    if list.is_empty() {
                        "it has none".to_string()
                    } else {
                        list.join(", ")
                    }
                ),
            ));
        };
        if out.iter().any(|&(po, _)| po == o) {
            return Err(fail(
                Code::Usage,
                format!(
                    "--map-nic: {} is mapped twice; nothing was changed",
                    rec[o].name
                ),
            ));
        }
        if out.iter().any(|&(_, pn)| pn == n) {
            return Err(fail(
                Code::Usage,
                format!(
                    "--map-nic: {} receives two recorded NICs; nothing was changed",
                    here[n].name
                ),
            ));
        }
        out.push((o, n));
    }
    Ok(out)
}

/// Maps `rec` onto `here` by the rules of the module doc; `map_nic` are
/// the `--map-nic` values ([`parse_map_nic`] checks them).
pub fn map_nics(rec: &[Recorded], here: &[HereNic], map_nic: &[String]) -> Result<Mapping> {
    let explicit = parse_map_nic(map_nic, rec, here)?;
    let mut to: Vec<Option<(usize, Why)>> = vec![None; rec.len()];
    let mut taken = vec![false; here.len()];
    for (o, n) in explicit {
        to[o] = Some((n, Why::Explicit));
        taken[n] = true;
    }
    // Same MAC, then same slot: each a fact, not a guess.
    for o in 0..rec.len() {
        if to[o].is_some() {
            continue;
        }
        if let Some(n) = (0..here.len()).find(|&n| !taken[n] && here[n].mac == rec[o].mac) {
            to[o] = Some((n, Why::Mac));
            taken[n] = true;
        }
    }
    for o in 0..rec.len() {
        let Some(path) = rec[o].path.as_deref() else {
            continue;
        };
        if to[o].is_some() {
            continue;
        }
        let same: Vec<usize> = (0..here.len())
            .filter(|&n| !taken[n] && here[n].path.as_deref() == Some(path))
            .collect();
        if let [n] = same[..] {
            to[o] = Some((n, Why::Path));
            taken[n] = true;
        }
    }
    let left: Vec<usize> = (0..rec.len()).filter(|&o| to[o].is_none()).collect();
    let free: Vec<usize> = (0..here.len()).filter(|&n| !taken[n]).collect();
    let mut notes = Vec::new();
    let describe = |v: &[usize], f: &dyn Fn(usize) -> String| {
        v.iter().map(|&i| f(i)).collect::<Vec<_>>().join(", ")
    };
    let rec_s = |o: usize| format!("{} {}", rec[o].name, rec[o].mac);
    let here_s = |n: usize| format!("{} {}", here[n].name, here[n].mac);
    if !left.is_empty() && left.len() == free.len() {
        for (&o, &n) in left.iter().zip(&free) {
            to[o] = Some((n, Why::Order));
        }
    } else if !left.is_empty() && free.is_empty() {
        for &o in &left {
            notes.push(format!(
                "{} has no NIC here to go to: the restored system's configuration of it is left as it was (the server boots without that network); add a NIC and run recover again, or give --map-nic {}=NAME to move its configuration to a NIC already mapped",
                rec_s(o),
                rec[o].name
            ));
        }
    } else if !left.is_empty() {
        notes.push(format!(
            "not guessed: {} recorded NIC(s) without a MAC or PCI slot in common ({}) for {} NIC(s) here ({}); their configuration is left as it was: give --map-nic OLD=NEW for each and run recover again (or `recover --dry-run --map-nic ...` to check first)",
            left.len(),
            describe(&left, &rec_s),
            free.len(),
            describe(&free, &here_s)
        ));
    } else if !free.is_empty() && !rec.is_empty() {
        notes.push(format!(
            "here but not recorded, left unconfigured: {}",
            describe(&free, &here_s)
        ));
    }
    let mut maps = Vec::new();
    for (o, t) in to.iter().enumerate() {
        let Some((n, why)) = *t else {
            continue;
        };
        let new_name = match (&here[n].predictable, why) {
            (Some(p), _) => p.clone(),
            // The same NIC, or one in its slot: its predictable name is
            // the one it had (net_id derives it from the slot).
            (None, Why::Mac | Why::Path) => rec[o].name.clone(),
            (None, Why::Order | Why::Explicit) => {
                if !is_kernel_name(&rec[o].name) {
                    notes.push(format!(
                        "the name the restored system gives {} ({}) is not known (no udev database in this rescue system): its configuration is rewritten for {}, its name here; if it comes up under another name, rename it in the files the report lists",
                        here[n].name, here[n].mac, here[n].name
                    ));
                }
                here[n].name.clone()
            }
        };
        maps.push(NicMap {
            old_name: rec[o].name.clone(),
            old_mac: rec[o].mac.clone(),
            new_name,
            here_name: here[n].name.clone(),
            new_mac: here[n].mac.clone(),
            why,
        });
    }
    Ok(Mapping { maps, notes })
}

/// `eth0`, `eth12`: a name the kernel gives.
fn is_kernel_name(n: &str) -> bool {
    n.strip_prefix("eth")
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The mapping for `recover` in the rescue system whose `/` is `root`: the
/// image's network.json against `root/sys/class/net`. Fails only on a
/// wrong `--map-nic`; anything else missing is a note.
pub fn plan(root: &Path, map_nic: &[String]) -> Result<Mapping> {
    let file = root.join(crate::rescue::network::IMAGE_PATH.trim_start_matches('/'));
    let cfg: Option<NetConfig> = std::fs::read(&file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let Some(cfg) = cfg else {
        if !map_nic.is_empty() {
            return Err(fail(
                Code::Usage,
                format!(
                    "--map-nic: the rescue image has no readable {} to map from; nothing was changed",
                    crate::rescue::network::IMAGE_PATH
                ),
            ));
        }
        return Ok(Mapping {
            maps: Vec::new(),
            notes: vec![format!(
                "no {} in this rescue system: the restored system's network configuration is left as it was",
                crate::rescue::network::IMAGE_PATH
            )],
        });
    };
    let rec = recorded(&cfg);
    if rec.is_empty() && map_nic.is_empty() {
        return Ok(Mapping {
            maps: Vec::new(),
            notes: vec![
                "the image recorded no NICs (built with network.mode = dhcp or off): the restored system's network configuration is left as it was".into(),
            ],
        });
    }
    let perm = if root == Path::new("/") {
        permanent_macs()
    } else {
        BTreeMap::new()
    };
    let mut here = probe(
        &root.join("sys/class/net"),
        &perm,
        &root.join("run/udev/data"),
    );
    if root == Path::new("/") {
        for h in here.iter_mut().filter(|h| h.predictable.is_none()) {
            h.predictable = net_id(&h.name);
        }
    }
    map_nics(&rec, &here, map_nic)
}

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
/// Name=`) are not matches and stay.
pub fn rewrite_networkd(text: &str, r: &Renames) -> Rewritten {
    let mut section = String::new();
    per_line(text, |_, l| {
        let t = l.trim();
        if t.starts_with('[') && t.ends_with(']') {
            section = t[1..t.len() - 1].to_string();
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
        if t.starts_with('[') && t.ends_with(']') {
            section = t[1..t.len() - 1].to_string();
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

/// The lines of `recover --dry-run` after the mapping: the files are those
/// of the restored system, known only after the restore.
pub fn dry_run_lines(m: &Mapping) -> Vec<String> {
    if !m.changes() {
        return vec!["# network configuration: every recorded NIC is here with its name and MAC; nothing to rewrite".into()];
    }
    let mut v = vec![
        "# network configuration of the restored system, after the restore: ifupdown, systemd-networkd, NetworkManager keyfiles, netplan and udev rules that name these NICs are rewritten (each file and its changed lines in the report; originals in /var/lib/mkrescue/recover-orig/)".to_string(),
    ];
    for l in m.lines() {
        v.push(format!("#   {l}"));
    }
    v
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

    #[test]
    fn permaddr_of_bond_slaves() {
        let j = r#"[{"ifname":"lo"},{"ifname":"ens4","address":"02:fc:00:00:01:01"},{"ifname":"ens5","address":"02:fc:00:00:01:01","permaddr":"02:FC:00:00:01:02"}]"#;
        let m = parse_permaddr(j);
        assert_eq!(m.len(), 1);
        assert_eq!(m["ens5"], "02:fc:00:00:01:02");
    }
}
