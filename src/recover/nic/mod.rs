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

mod rewrite;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use crate::error::{Code, fail};
use crate::rescue::network::{LinkKind, NetConfig};

pub use rewrite::{
    ORIG_DIR, Renames, Rewritten, kernel_names, networkd_stale_globs, pinned_names, renames,
    replace, rewrite_ifupdown, rewrite_netplan, rewrite_networkd, rewrite_nmconnection,
    rewrite_tree, rewrite_udev_rules,
};

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

    #[test]
    fn permaddr_of_bond_slaves() {
        let j = r#"[{"ifname":"lo"},{"ifname":"ens4","address":"02:fc:00:00:01:01"},{"ifname":"ens5","address":"02:fc:00:00:01:01","permaddr":"02:FC:00:00:01:02"}]"#;
        let m = parse_permaddr(j);
        assert_eq!(m.len(), 1);
        assert_eq!(m["ens5"], "02:fc:00:00:01:02");
    }
}
