//! The host's network configuration, captured at build time for the rescue
//! system: interfaces by MAC with their static addresses and MTU, bonds,
//! VLANs and bridges over them, routes, DNS, and whether an interface got
//! its address by DHCP. Hands on a [`NetConfig`], stored in the image as
//! `/etc/mkrescue/network.json`; `src/init/net.rs` applies it at boot.
//!
//! Sources: `ip -details -json addr show` and `ip -json route show table
//! main` (iproute2; the JSON keys are those of ip-address(8) and
//! ip-route(8) with `-json`), `/etc/resolv.conf` (resolv.conf(5)), and for
//! the DHCP flag the address's `dynamic` flag (a finite lifetime: DHCP
//! clients set it) or the network configuration files: ifupdown's
//! `/etc/network/interfaces` (`iface NAME inet dhcp`, interfaces(5)),
//! systemd-networkd's `*.network` (`DHCP=yes|ipv4`, systemd.network(5)),
//! NetworkManager's `*.nmconnection` (`[ipv4] method=auto`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::NetMode;
use crate::error::{Code, fail};
use crate::exec::Cmd;

/// Where the captured configuration lives in the image.
pub const IMAGE_PATH: &str = "/etc/mkrescue/network.json";

/// The network configuration the rescue system applies at boot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetConfig {
    /// What the rescue system does by default (the kernel command line can
    /// override it at boot).
    #[serde(default)]
    pub mode: NetMode,
    pub interfaces: Vec<Interface>,
    pub routes: Vec<Route>,
    pub nameservers: Vec<String>,
    pub search: Vec<String>,
}

/// What kind of link an interface is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum LinkKind {
    /// A NIC, found again at boot by its MAC.
    Physical,
    Bond {
        /// Bonding mode name (`active-backup`, `802.3ad`, ...).
        mode: Option<String>,
        /// Link monitoring interval in ms; without it (0, the driver's
        /// default) active-backup never fails over (bonding.rst, miimon).
        #[serde(default)]
        miimon: Option<u32>,
    },
    Bridge,
    Vlan {
        id: u16,
        /// The interface the VLAN sits on (host name).
        link: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Name on the host.
    pub name: String,
    /// Lower-case MAC address: the NIC's own (permanent) one, also for
    /// bond slaves, which carry the bond's address while enslaved.
    pub mac: String,
    #[serde(flatten)]
    pub link: LinkKind,
    /// Bond or bridge this interface is enslaved to (host name).
    pub master: Option<String>,
    pub mtu: Option<u32>,
    /// IPv4 by DHCP on the host.
    pub dhcp: bool,
    /// Static addresses with prefix length (`192.0.2.2/24`, `fd00::2/64`).
    pub addresses: Vec<String>,
    /// A NIC's place on the bus as udev's `ID_PATH` names it
    /// (`pci-0000:00:03.0`): recover maps the NIC to the one in the same
    /// slot when no MAC matches. Captured from sysfs; absent in images
    /// built before it was recorded, and for NICs not on PCI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// `default` or a prefix (`10.1.0.0/16`).
    pub dst: String,
    pub gateway: Option<String>,
    /// Host interface name.
    pub dev: Option<String>,
    pub metric: Option<u32>,
    pub ipv6: bool,
}

/// Outputs of iproute2 to capture from: the host's (run now) or files
/// captured elsewhere (configuration keys `network.ip_*_json`).
pub struct IpOutputs {
    pub addr: String,
    pub route4: String,
    pub route6: String,
}

impl IpOutputs {
    /// Runs `ip` on this host.
    pub fn from_host() -> Result<Self> {
        let ip = |args: &[&str]| Cmd::new("ip").args(args).read();
        Ok(IpOutputs {
            addr: ip(&["-details", "-json", "addr", "show"])?,
            route4: ip(&["-4", "-json", "route", "show", "table", "main"])?,
            route6: ip(&["-6", "-json", "route", "show", "table", "main"]).unwrap_or_default(),
        })
    }

    /// Reads captured outputs; a missing route file means no routes.
    pub fn from_files(addr: &Path, route4: Option<&Path>, route6: Option<&Path>) -> Result<Self> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| {
                fail(
                    Code::Config,
                    format!(
                        "network: cannot read {}: {e}; fix the path in [network]",
                        p.display()
                    ),
                )
            })
        };
        Ok(IpOutputs {
            addr: read(addr)?,
            route4: route4.map(read).transpose()?.unwrap_or_default(),
            route6: route6.map(read).transpose()?.unwrap_or_default(),
        })
    }
}

// The subset of `ip -details -json addr` we read.
#[derive(Deserialize)]
struct IpLink {
    ifname: String,
    #[serde(default)]
    address: String,
    /// The NIC's burned-in address, printed when it differs from
    /// `address`: a bond sets every slave's address to its own
    /// (bonding.rst, fail_over_mac), so this is what finds the NIC again.
    permaddr: Option<String>,
    #[serde(default)]
    link_type: String,
    mtu: Option<u32>,
    master: Option<String>,
    /// Set for interfaces on a bus (PCI, virtio, USB): real NICs.
    parentbus: Option<String>,
    /// VLAN: the lower interface.
    link: Option<String>,
    linkinfo: Option<LinkInfo>,
    #[serde(default)]
    addr_info: Vec<IpAddr>,
}

#[derive(Deserialize)]
struct LinkInfo {
    info_kind: Option<String>,
    info_data: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct IpAddr {
    family: String,
    local: Option<String>,
    prefixlen: Option<u8>,
    scope: Option<String>,
    #[serde(default)]
    dynamic: bool,
}

#[derive(Deserialize)]
struct IpRoute {
    dst: String,
    gateway: Option<String>,
    dev: Option<String>,
    protocol: Option<String>,
    metric: Option<u32>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Interfaces configured for DHCP in the host's network configuration
/// files, by name or by MAC.
#[derive(Debug, Default)]
pub struct DhcpHints {
    pub names: BTreeSet<String>,
    pub macs: BTreeSet<String>,
    /// systemd-networkd `Name=` globs.
    pub name_globs: Vec<String>,
}

impl DhcpHints {
    fn matches(&self, name: &str, mac: &str) -> bool {
        self.names.contains(name)
            || self.macs.contains(mac)
            || self
                .name_globs
                .iter()
                .any(|g| crate::kmod::fnmatch(g, name))
    }
}

/// Builds the configuration from iproute2 outputs, DHCP hints and the text
/// of resolv.conf.
pub fn parse(ip: &IpOutputs, hints: &DhcpHints, resolv_conf: &str) -> Result<NetConfig> {
    let links: Vec<IpLink> = serde_json::from_str(&ip.addr)
        .map_err(|e| fail(Code::Input, format!("network: `ip -json addr` output: {e}")))?;
    let mut interfaces = Vec::new();
    for l in &links {
        let kind = l.linkinfo.as_ref().and_then(|i| i.info_kind.as_deref());
        let link = match kind {
            None if l.parentbus.is_some() && l.link_type == "ether" => LinkKind::Physical,
            Some("bond") => {
                let data = l.linkinfo.as_ref().and_then(|i| i.info_data.as_ref());
                LinkKind::Bond {
                    mode: data.and_then(|d| d["mode"].as_str()).map(str::to_string),
                    miimon: data
                        .and_then(|d| d["miimon"].as_u64())
                        .and_then(|n| u32::try_from(n).ok())
                        .filter(|&n| n > 0),
                }
            }
            Some("bridge") => LinkKind::Bridge,
            Some("vlan") => {
                let id = l
                    .linkinfo
                    .as_ref()
                    .and_then(|i| i.info_data.as_ref())
                    .and_then(|d| d["id"].as_u64())
                    .and_then(|n| u16::try_from(n).ok());
                match (id, &l.link) {
                    (Some(id), Some(link)) => LinkKind::Vlan {
                        id,
                        link: link.clone(),
                    },
                    _ => continue,
                }
            }
            // Loopback, tunnels, veth, dummy, ifb, containers' bridges
            // without a NIC: nothing a rescue system recreates.
            _ => continue,
        };
        let mac = l
            .permaddr
            .as_deref()
            .unwrap_or(&l.address)
            .to_ascii_lowercase();
        let dynamic4 = l.addr_info.iter().any(|a| a.family == "inet" && a.dynamic);
        let addresses = l
            .addr_info
            .iter()
            // Global scope only (no link-local, no loopback); dynamic ones
            // came from DHCP or SLAAC and come back the same way.
            .filter(|a| a.scope.as_deref() == Some("global") && !a.dynamic)
            .filter(|a| a.family == "inet" || a.family == "inet6")
            .filter_map(|a| Some(format!("{}/{}", a.local.as_ref()?, a.prefixlen?)))
            .collect();
        interfaces.push(Interface {
            name: l.ifname.clone(),
            dhcp: dynamic4 || hints.matches(&l.ifname, &mac),
            mac,
            link,
            master: l.master.clone(),
            mtu: l.mtu,
            addresses,
            path: None,
        });
    }
    let known: BTreeSet<&str> = interfaces.iter().map(|i| i.name.as_str()).collect();
    let dhcp_ifs: BTreeSet<&str> = interfaces
        .iter()
        .filter(|i| i.dhcp)
        .map(|i| i.name.as_str())
        .collect();
    let mut routes = Vec::new();
    for (text, ipv6) in [(&ip.route4, false), (&ip.route6, true)] {
        if text.trim().is_empty() {
            continue;
        }
        let list: Vec<IpRoute> = serde_json::from_str(text).map_err(|e| {
            fail(
                Code::Input,
                format!("network: `ip -json route` output: {e}"),
            )
        })?;
        for r in list {
            let dev_ok = r.dev.as_deref().is_some_and(|d| known.contains(d));
            // The kernel adds prefix routes for each address itself, RAs
            // and DHCP bring theirs again; only static unicast routes stay.
            let skip = matches!(r.protocol.as_deref(), Some("kernel" | "ra" | "dhcp"))
                || r.kind.as_deref().is_some_and(|k| k != "unicast")
                || r.dst.starts_with("fe80:")
                || r.dst.starts_with("ff00:")
                || (!ipv6 && r.dev.as_deref().is_some_and(|d| dhcp_ifs.contains(d)));
            if !dev_ok || skip {
                continue;
            }
            routes.push(Route {
                dst: r.dst,
                gateway: r.gateway,
                dev: r.dev,
                metric: r.metric,
                ipv6,
            });
        }
    }
    let (nameservers, search) = parse_resolv_conf(resolv_conf);
    Ok(NetConfig {
        mode: NetMode::Host,
        interfaces,
        routes,
        nameservers,
        search,
    })
}

/// `nameserver` and `search`/`domain` lines (resolv.conf(5)). Loopback
/// name servers (systemd-resolved's stub 127.0.0.53) are useless in the
/// rescue system and dropped.
pub fn parse_resolv_conf(text: &str) -> (Vec<String>, Vec<String>) {
    let mut ns = Vec::new();
    let mut search = Vec::new();
    for l in text.lines() {
        let mut w = l.split_whitespace();
        match w.next() {
            Some("nameserver") => {
                if let Some(a) = w.next()
                    && !a.starts_with("127.")
                    && a != "::1"
                {
                    ns.push(a.to_string());
                }
            }
            Some("search") | Some("domain") => {
                search = w.map(str::to_string).collect();
            }
            _ => {}
        }
    }
    (ns, search)
}

/// Reads the DHCP settings of ifupdown, systemd-networkd and
/// NetworkManager below `root`.
pub fn dhcp_hints(root: &Path) -> DhcpHints {
    let mut h = DhcpHints::default();
    let mut ifupdown = vec![root.join("etc/network/interfaces")];
    ifupdown.extend(list_dir(&root.join("etc/network/interfaces.d"), ""));
    for f in ifupdown {
        for l in read(&f).lines() {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() >= 4 && w[0] == "iface" && w[2] == "inet" && w[3] == "dhcp" {
                h.names.insert(w[1].to_string());
            }
        }
    }
    for dir in ["etc/systemd/network", "run/systemd/network"] {
        for f in list_dir(&root.join(dir), ".network") {
            let ini = read(&f);
            let dhcp = ini_values(&ini, "Network", "DHCP")
                .iter()
                .any(|v| matches!(v.as_str(), "yes" | "true" | "ipv4" | "1"));
            if !dhcp {
                continue;
            }
            for n in ini_values(&ini, "Match", "Name")
                .iter()
                .flat_map(|v| v.split_whitespace())
            {
                h.name_globs.push(n.to_string());
            }
            for m in ini_values(&ini, "Match", "MACAddress")
                .iter()
                .flat_map(|v| v.split_whitespace())
            {
                h.macs.insert(m.to_ascii_lowercase());
            }
        }
    }
    for dir in [
        "etc/NetworkManager/system-connections",
        "run/NetworkManager/system-connections",
    ] {
        for f in list_dir(&root.join(dir), ".nmconnection") {
            let ini = read(&f);
            if !ini_values(&ini, "ipv4", "method")
                .iter()
                .any(|v| v == "auto")
            {
                continue;
            }
            h.names
                .extend(ini_values(&ini, "connection", "interface-name"));
            h.macs.extend(
                ini_values(&ini, "ethernet", "mac-address")
                    .iter()
                    .map(|m| m.to_ascii_lowercase()),
            );
        }
    }
    h
}

/// Captures the network configuration as `cfg` asks. With `mode` dhcp or
/// off nothing of the host's is captured, so its static addresses cannot
/// come up by mistake.
pub fn capture(root: &Path, cfg: &crate::config::Network) -> Result<NetConfig> {
    if cfg.mode != NetMode::Host {
        return Ok(NetConfig {
            mode: cfg.mode,
            ..NetConfig::default()
        });
    }
    let ip = match &cfg.ip_addr_json {
        Some(addr) => IpOutputs::from_files(
            addr,
            cfg.ip4_route_json.as_deref(),
            cfg.ip6_route_json.as_deref(),
        )?,
        None => IpOutputs::from_host().context("capturing the host's network configuration")?,
    };
    // systemd-resolved's stub lists 127.0.0.53; the real servers are in
    // its own file.
    let mut resolv = read(&root.join("etc/resolv.conf"));
    if parse_resolv_conf(&resolv).0.is_empty() {
        resolv = read(&root.join("run/systemd/resolve/resolv.conf"));
    }
    let mut net = parse(&ip, &dhcp_hints(root), &resolv)?;
    // The captured `ip` outputs of a test rig name NICs of another machine:
    // their slots are not this host's.
    if cfg.ip_addr_json.is_none() {
        let sys = root.join("sys/class/net");
        for i in net.interfaces.iter_mut() {
            if i.link == LinkKind::Physical {
                i.path = bus_path(&sys, &i.name);
            }
        }
    }
    Ok(net)
}

/// The `ID_PATH` of udev's path_id builtin for a NIC on PCI: `pci-` and the
/// address of the PCI function nearest the interface in its sysfs device
/// path (`/sys/devices/pci0000:00/0000:00:03.0/virtio0` ->
/// `pci-0000:00:03.0`; a NIC behind a bridge has the bridge's address in
/// its path before its own). `None` off PCI (USB, platform devices) and
/// for virtual interfaces. `sys_class_net` is `/sys/class/net`.
pub fn bus_path(sys_class_net: &Path, name: &str) -> Option<String> {
    let dev = std::fs::canonicalize(sys_class_net.join(name).join("device")).ok()?;
    dev.components()
        .filter_map(|c| c.as_os_str().to_str())
        .rfind(|c| is_pci_address(c))
        .map(|a| format!("pci-{a}"))
}

/// `DDDD:BB:SS.F` (domain, bus, slot, function in hex), the name of a PCI
/// function in sysfs.
fn is_pci_address(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && b.iter()
            .enumerate()
            .all(|(i, c)| matches!(i, 4 | 7 | 10) || c.is_ascii_hexdigit())
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn list_dir(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(suffix) && p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Values of `key` in `[section]` of an INI-style file.
fn ini_values(text: &str, section: &str, key: &str) -> Vec<String> {
    let mut cur = String::new();
    let mut out = Vec::new();
    for l in text.lines() {
        let t = l.trim();
        if t.starts_with('[') && t.ends_with(']') {
            cur = t[1..t.len() - 1].to_string();
        } else if cur == section
            && let Some((k, v)) = t.split_once('=')
            && k.trim() == key
        {
            out.push(v.trim().to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_drops_the_stub() {
        let (ns, s) = parse_resolv_conf(
            "# x\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch example.com corp\n",
        );
        assert_eq!(ns, ["10.0.0.2"]);
        assert_eq!(s, ["example.com", "corp"]);
    }

    #[test]
    fn bus_path_is_the_nearest_pci_function() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let dev = r.join("devices/pci0000:00/0000:00:1c.0/0000:02:00.0/virtio3");
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::create_dir_all(r.join("class/net/ens4")).unwrap();
        std::os::unix::fs::symlink(&dev, r.join("class/net/ens4/device")).unwrap();
        std::fs::create_dir_all(r.join("class/net/bond0")).unwrap();
        let usb = r.join("devices/platform/usb1/1-1/1-1:1.0");
        std::fs::create_dir_all(&usb).unwrap();
        std::fs::create_dir_all(r.join("class/net/usb0")).unwrap();
        std::os::unix::fs::symlink(&usb, r.join("class/net/usb0/device")).unwrap();
        let net = r.join("class/net");
        assert_eq!(bus_path(&net, "ens4").as_deref(), Some("pci-0000:02:00.0"));
        assert_eq!(bus_path(&net, "bond0"), None, "virtual: no device");
        assert_eq!(bus_path(&net, "usb0"), None, "not on PCI");
        assert!(!is_pci_address("pci0000:00"));
    }

    #[test]
    fn networkd_and_ifupdown_dhcp() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("etc/network")).unwrap();
        std::fs::create_dir_all(r.join("etc/systemd/network")).unwrap();
        std::fs::write(
            r.join("etc/network/interfaces"),
            "auto lo\niface lo inet loopback\niface ens3 inet dhcp\niface ens4 inet static\n",
        )
        .unwrap();
        std::fs::write(
            r.join("etc/systemd/network/10-en.network"),
            "[Match]\nName=enp*\n\n[Network]\nDHCP=ipv4\n",
        )
        .unwrap();
        let h = dhcp_hints(r);
        assert!(h.matches("ens3", ""));
        assert!(!h.matches("ens4", ""));
        assert!(h.matches("enp1s0", ""));
    }
}
