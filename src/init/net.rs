//! Network at boot: the captured host configuration
//! (`/etc/mkrescue/network.json`, see `crate::rescue::network`) on the NICs
//! with the same MACs, else DHCP on every interface with a link.
//!
//! The kernel command line decides first:
//! - `mkrescue.net=off` or `ip=off|none`: no network.
//! - `mkrescue.net=dhcp` or `ip=dhcp|on|any|both`: DHCP only; the host's
//!   static addresses are never configured (a recovery on a network where
//!   the original host still runs must not take its address).
//! - `ip=CLIENT:SERVER:GW:NETMASK:HOSTNAME:DEVICE:AUTOCONF:DNS0:DNS1`
//!   (Documentation/admin-guide/nfs/nfsroot.rst): that static address on
//!   DEVICE (empty: the first interface with a link); AUTOCONF `dhcp` on a
//!   named device runs DHCP there instead.
//!
//! Addresses and routes are set with iproute2 (`ip`), DHCP by ISC dhclient
//! with Debian's dhclient-script (it writes /etc/resolv.conf).
//!
//! A DHCP server may offer only an address: QEMU's user network with
//! `restrict=on` (what the tests use) sends no router (option 3) and no
//! DNS server (option 6), RFC 2132. dhclient-script then adds no default
//! route and writes no resolv.conf, and init says nothing about it: the
//! rescue system works on the local segment (SSH in, a backup server on
//! the same LAN); `cargo xtask qemu runtime` checks that such a boot has
//! no default route, no resolv.conf and no error in the init log.
//!
//! Bonds, bridges and VLANs are created in that order (bonding driver
//! loaded with `max_bonds=0` first), NICs are enslaved, then every link
//! goes up lower ones first with its addresses, then the routes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::NetMode;
use crate::rescue::network::{Interface, LinkKind, NetConfig};

use super::log_line;
use super::run::{command, run, wait};

/// What the kernel command line asks of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetRequest {
    /// The image's configuration (`NetConfig::mode`).
    Default,
    Off,
    Dhcp {
        device: Option<String>,
    },
    Static(StaticIp),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticIp {
    /// `ADDR/PREFIX`.
    pub address: String,
    pub gateway: Option<String>,
    pub hostname: Option<String>,
    pub device: Option<String>,
    pub dns: Vec<String>,
}

/// From `mkrescue.net=` and `ip=` (`ip=` wins over `mkrescue.net=`; an
/// unknown value is an error the caller logs before using the default).
pub fn request(net: Option<&str>, ip: Option<&str>) -> Result<NetRequest, String> {
    if let Some(ip) = ip {
        return parse_ip(ip);
    }
    match net {
        None | Some("host") => Ok(NetRequest::Default),
        Some("off") => Ok(NetRequest::Off),
        Some("dhcp") => Ok(NetRequest::Dhcp { device: None }),
        Some(other) => Err(format!(
            "mkrescue.net={other}: unknown, want off, dhcp or host"
        )),
    }
}

/// The kernel's `ip=` syntax (nfsroot.rst).
pub fn parse_ip(v: &str) -> Result<NetRequest, String> {
    let dhcp_words = ["dhcp", "on", "any", "both", "bootp", "rarp"];
    if dhcp_words.contains(&v) {
        return Ok(NetRequest::Dhcp { device: None });
    }
    if v == "off" || v == "none" {
        return Ok(NetRequest::Off);
    }
    let f: Vec<&str> = v.split(':').collect();
    let field = |i: usize| {
        f.get(i)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let device = field(5);
    let autoconf = field(6).unwrap_or_else(|| "none".into());
    if dhcp_words.contains(&autoconf.as_str()) {
        return Ok(NetRequest::Dhcp { device });
    }
    if autoconf != "none" && autoconf != "off" {
        return Err(format!(
            "ip={v}: autoconf `{autoconf}` not supported (none, off, dhcp)"
        ));
    }
    let Some(client) = field(0) else {
        return Err(format!("ip={v}: no client address"));
    };
    let address = match (client.contains('/'), field(3)) {
        (true, _) => client,
        (false, Some(mask)) => format!(
            "{client}/{}",
            prefix_of(&mask).ok_or(format!(
                "ip={v}: netmask `{mask}` is not a dotted netmask or prefix length"
            ))?
        ),
        // The kernel derives a classful mask; assume /24, the common case.
        (false, None) => format!("{client}/24"),
    };
    Ok(NetRequest::Static(StaticIp {
        address,
        gateway: field(2),
        hostname: field(4),
        device,
        dns: [field(7), field(8)].into_iter().flatten().collect(),
    }))
}

/// `255.255.255.0` → 24; `24` → 24.
fn prefix_of(mask: &str) -> Option<u8> {
    if let Ok(n) = mask.parse::<u8>() {
        return (n <= 32).then_some(n);
    }
    let m: std::net::Ipv4Addr = mask.parse().ok()?;
    let bits = u32::from(m);
    (bits.leading_ones() + bits.trailing_zeros() == 32).then_some(bits.leading_ones() as u8)
}

/// A network interface the kernel has now.
#[derive(Debug, Clone)]
struct Nic {
    name: String,
    mac: String,
}

/// Interfaces backed by a device (no lo, no virtual ones), by name.
fn nics() -> Vec<Nic> {
    let mut v: Vec<Nic> = std::fs::read_dir("/sys/class/net")
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().join("device").exists())
                .map(|e| Nic {
                    name: e.file_name().to_string_lossy().into_owned(),
                    mac: std::fs::read_to_string(e.path().join("address"))
                        .unwrap_or_default()
                        .trim()
                        .to_ascii_lowercase(),
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

fn carrier(name: &str) -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{name}/carrier")).is_ok_and(|s| s.trim() == "1")
}

fn ip(args: &[&str]) -> bool {
    run("ip", args, Duration::from_secs(10))
}

/// Brings the network up as the command line and the image ask; returns a
/// summary for the log.
pub fn start(net: Option<&str>, iparg: Option<&str>) -> String {
    ip(&["link", "set", "lo", "up"]);
    let cfg: NetConfig = std::fs::read(crate::rescue::network::IMAGE_PATH)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let req = match request(net, iparg) {
        Ok(r) => r,
        Err(e) => {
            log_line(&format!("mkrescue init: {e}; using the image's setting"));
            NetRequest::Default
        }
    };
    let req = match (req, cfg.mode) {
        (NetRequest::Default, NetMode::Off) => NetRequest::Off,
        (NetRequest::Default, NetMode::Dhcp) => NetRequest::Dhcp { device: None },
        (r, _) => r,
    };
    match req {
        NetRequest::Off => "off".into(),
        NetRequest::Dhcp { device } => dhcp(device.as_deref()),
        NetRequest::Static(s) => static_ip(&s),
        NetRequest::Default => host_config(&cfg),
    }
}

/// Links up, then the NICs that have carrier within a few seconds.
fn up_with_link(candidates: &[String]) -> Vec<String> {
    for n in candidates {
        ip(&["link", "set", "dev", n, "up"]);
    }
    let start = Instant::now();
    loop {
        let with: Vec<String> = candidates.iter().filter(|n| carrier(n)).cloned().collect();
        if with.len() == candidates.len() || start.elapsed() > Duration::from_secs(5) {
            return with;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn dhcp(device: Option<&str>) -> String {
    let names: Vec<String> = match device {
        Some(d) => vec![d.to_string()],
        None => nics().into_iter().map(|n| n.name).collect(),
    };
    if names.is_empty() {
        return no_link(&names);
    }
    let linked = up_with_link(&names);
    if linked.is_empty() {
        return no_link(&names);
    }
    run_dhclient(&linked);
    format!("dhcp on {}", linked.join(", "))
}

/// The log's line when DHCP has no interface to run on: none at all (no
/// NIC, or no driver for it in the image) or none with carrier.
fn no_link(names: &[String]) -> String {
    if names.is_empty() {
        "dhcp: no network interface besides lo (no NIC, or its driver is not in the image: `lsmod`, `ls /sys/class/net`)".into()
    } else {
        format!(
            "dhcp: no link on {} (cable or switch port?)",
            names.join(", ")
        )
    }
}

/// ISC dhclient: the parent returns once a lease is bound (or after the
/// `timeout` of dhclient.conf, default 60s) and leaves a daemon renewing
/// it; init does not wait longer than 40s.
fn run_dhclient(ifaces: &[String]) {
    let mut args = vec![
        "-4",
        "-v",
        "-pf",
        "/run/dhclient.pid",
        "-lf",
        "/var/lib/dhcp/dhclient.leases",
    ];
    args.extend(ifaces.iter().map(String::as_str));
    super::run::append_log(&format!("+ dhclient {}", args.join(" ")));
    match command("dhclient", &args).spawn() {
        Ok(c) => {
            wait(c, "dhclient", Duration::from_secs(40));
        }
        Err(e) => log_line(&format!("mkrescue init: cannot start dhclient: {e}")),
    }
}

fn static_ip(s: &StaticIp) -> String {
    let dev = match &s.device {
        Some(d) => d.clone(),
        None => {
            let all: Vec<String> = nics().into_iter().map(|n| n.name).collect();
            match up_with_link(&all)
                .into_iter()
                .next()
                .or(all.first().cloned())
            {
                Some(d) => d,
                None => return "ip=: no network interface".into(),
            }
        }
    };
    ip(&["link", "set", "dev", &dev, "up"]);
    ip(&["addr", "replace", &s.address, "dev", &dev]);
    if let Some(gw) = &s.gateway {
        ip(&["route", "replace", "default", "via", gw, "dev", &dev]);
    }
    if let Some(h) = &s.hostname {
        super::sethostname(h);
    }
    write_resolv_conf(&s.dns, &[]);
    format!("{} on {dev} (ip=)", s.address)
}

/// The host's configuration, mapped onto this machine's NICs by MAC.
fn host_config(cfg: &NetConfig) -> String {
    let here = nics();
    let by_mac: BTreeMap<&str, &str> = here
        .iter()
        .map(|n| (n.mac.as_str(), n.name.as_str()))
        .collect();
    // Host interface name → name here; virtual interfaces keep theirs.
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for i in &cfg.interfaces {
        if i.link == LinkKind::Physical
            && let Some(n) = by_mac.get(i.mac.as_str())
        {
            names.insert(i.name.clone(), n.to_string());
        }
    }
    if names.is_empty() {
        log_line("mkrescue init: no NIC has a MAC of the host's; DHCP on every link");
        return dhcp(None);
    }
    let virt = |i: &&Interface| i.link != LinkKind::Physical;
    // Virtual links whose lower interfaces are here.
    for i in cfg.interfaces.iter().filter(virt) {
        let lower_here = match &i.link {
            LinkKind::Vlan { link, .. } => names.contains_key(link),
            _ => cfg
                .interfaces
                .iter()
                .any(|s| s.master.as_deref() == Some(&i.name) && names.contains_key(&s.name)),
        };
        if lower_here {
            names.insert(i.name.clone(), i.name.clone());
        }
    }
    let here_of = |n: &str| names.get(n).cloned();
    // Matching NICs the host left unconfigured (a spare port) give no
    // network; then DHCP is the better guess.
    let configured = cfg
        .interfaces
        .iter()
        .any(|i| names.contains_key(&i.name) && (i.dhcp || !i.addresses.is_empty()));
    if !configured {
        log_line("mkrescue init: the host configured none of the NICs found; DHCP on every link");
        return dhcp(None);
    }
    // Bonds and bridges first, then enslave, then VLANs on top.
    if cfg
        .interfaces
        .iter()
        .any(|i| matches!(i.link, LinkKind::Bond { .. }) && names.contains_key(&i.name))
    {
        // Loaded by default the bonding driver creates a `bond0` of its own
        // (max_bonds=1, bonding.rst "Module options"), and `ip link add
        // bond0 type bond` then fails with "File exists" and no mode.
        run(
            "modprobe",
            &["bonding", "max_bonds=0"],
            Duration::from_secs(10),
        );
    }
    for i in &cfg.interfaces {
        let Some(name) = here_of(&i.name) else {
            continue;
        };
        match &i.link {
            LinkKind::Bond { mode, miimon } => {
                let mut a = vec!["link", "add", name.as_str(), "type", "bond"];
                if let Some(m) = mode {
                    a.extend(["mode", m.as_str()]);
                }
                let mii = miimon.map(|n| n.to_string());
                if let Some(n) = &mii {
                    a.extend(["miimon", n.as_str()]);
                }
                if !ip(&a) {
                    // It exists already (the driver was loaded with its
                    // default before): set the mode on it, which the
                    // driver accepts while the bond is down without
                    // slaves.
                    ip(&["link", "set", "dev", &name, "down"]);
                    a[1] = "set";
                    a.insert(2, "dev");
                    ip(&a);
                }
            }
            LinkKind::Bridge => {
                ip(&["link", "add", &name, "type", "bridge"]);
            }
            _ => {}
        }
    }
    for i in &cfg.interfaces {
        if let (Some(name), Some(master)) =
            (here_of(&i.name), i.master.as_deref().and_then(&here_of))
        {
            // A bond takes only slaves that are down (bonding.rst).
            ip(&["link", "set", "dev", &name, "down"]);
            ip(&["link", "set", "dev", &name, "master", &master]);
        }
    }
    for i in &cfg.interfaces {
        if let (Some(name), LinkKind::Vlan { id, link }) = (here_of(&i.name), &i.link)
            && let Some(lower) = here_of(link)
        {
            ip(&[
                "link",
                "add",
                "link",
                &lower,
                "name",
                &name,
                "type",
                "vlan",
                "id",
                &id.to_string(),
            ]);
        }
    }
    let mut dhcp_ifs = Vec::new();
    let mut summary = Vec::new();
    // Lower interfaces come before the ones on top in `ip addr` order.
    for i in &cfg.interfaces {
        let Some(name) = here_of(&i.name) else {
            continue;
        };
        if let Some(mtu) = i.mtu {
            ip(&["link", "set", "dev", &name, "mtu", &mtu.to_string()]);
        }
        ip(&["link", "set", "dev", &name, "up"]);
        for a in &i.addresses {
            // nodad: the address is the host's own; waiting for duplicate
            // address detection only delays IPv6 by seconds.
            let mut args = vec!["addr", "replace", a.as_str(), "dev", name.as_str()];
            if a.contains(':') {
                args.push("nodad");
            }
            ip(&args);
            summary.push(format!("{a} on {name}"));
        }
        if i.dhcp && i.master.is_none() {
            dhcp_ifs.push(name);
        }
    }
    for r in &cfg.routes {
        let Some(dev) = r.dev.as_deref().and_then(&here_of) else {
            continue;
        };
        let mut a: Vec<String> = Vec::new();
        if r.ipv6 {
            a.push("-6".into());
        }
        a.extend(["route".into(), "replace".into(), r.dst.clone()]);
        if let Some(gw) = &r.gateway {
            a.extend(["via".into(), gw.clone()]);
        }
        a.extend(["dev".into(), dev]);
        if let Some(m) = r.metric {
            a.extend(["metric".into(), m.to_string()]);
        }
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        ip(&a);
    }
    write_resolv_conf(&cfg.nameservers, &cfg.search);
    if !dhcp_ifs.is_empty() {
        run_dhclient(&dhcp_ifs);
        summary.push(format!("dhcp on {}", dhcp_ifs.join(", ")));
    }
    format!("host configuration: {}", summary.join(", "))
}

fn write_resolv_conf(ns: &[String], search: &[String]) {
    if ns.is_empty() {
        return;
    }
    let mut s = String::new();
    if !search.is_empty() {
        s.push_str(&format!("search {}\n", search.join(" ")));
    }
    for n in ns {
        s.push_str(&format!("nameserver {n}\n"));
    }
    let p = Path::new("/etc/resolv.conf");
    let _ = std::fs::remove_file(p);
    if let Err(e) = std::fs::write(p, s) {
        log_line(&format!("mkrescue init: writing /etc/resolv.conf: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_interface_and_no_link_say_which() {
        let none = no_link(&[]);
        assert!(
            none.starts_with("dhcp: no network interface besides lo"),
            "{none}"
        );
        assert!(!none.contains("on  "), "{none}");
        let two = no_link(&["enp1s0".to_string(), "enp2s0".to_string()]);
        assert_eq!(
            two,
            "dhcp: no link on enp1s0, enp2s0 (cable or switch port?)"
        );
    }

    #[test]
    fn kernel_ip_syntax() {
        assert_eq!(parse_ip("dhcp"), Ok(NetRequest::Dhcp { device: None }));
        assert_eq!(parse_ip("off"), Ok(NetRequest::Off));
        assert_eq!(
            parse_ip("10.1.2.3::10.1.2.1:255.255.255.0:web1:eth1:none:10.1.0.53"),
            Ok(NetRequest::Static(StaticIp {
                address: "10.1.2.3/24".into(),
                gateway: Some("10.1.2.1".into()),
                hostname: Some("web1".into()),
                device: Some("eth1".into()),
                dns: vec!["10.1.0.53".into()],
            }))
        );
        assert_eq!(
            parse_ip(":::::eth0:dhcp"),
            Ok(NetRequest::Dhcp {
                device: Some("eth0".into())
            })
        );
        assert!(parse_ip("10.1.2.3::10.1.2.1:255.0.255.0::eth0:none").is_err());
        match parse_ip("10.1.2.3/16:::::").unwrap() {
            NetRequest::Static(s) => assert_eq!(s.address, "10.1.2.3/16"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn net_dhcp_and_off() {
        assert_eq!(
            request(Some("dhcp"), None),
            Ok(NetRequest::Dhcp { device: None })
        );
        assert_eq!(request(Some("off"), None), Ok(NetRequest::Off));
        assert_eq!(request(None, None), Ok(NetRequest::Default));
        assert_eq!(request(Some("dhcp"), Some("off")), Ok(NetRequest::Off));
        assert!(request(Some("maybe"), None).is_err());
    }
}
