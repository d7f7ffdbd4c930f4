//! Network capture from real iproute2 output (tests/fixtures/network, see
//! its README): what the rescue system will configure at boot.

use std::path::Path;

use mkrescue::rescue::network::{DhcpHints, IpOutputs, LinkKind, parse};

fn fixture() -> IpOutputs {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/network");
    IpOutputs::from_files(
        &d.join("host-ip-addr.json"),
        Some(&d.join("host-ip4-route.json")),
        Some(&d.join("host-ip6-route.json")),
    )
    .unwrap()
}

#[test]
fn host_nic_with_static_addresses_and_routes() {
    let c = parse(
        &fixture(),
        &DhcpHints::default(),
        "nameserver 10.255.255.53\n",
    )
    .unwrap();
    // lo and the ifb devices are not NICs: only eth0 is captured.
    assert_eq!(c.interfaces.len(), 1, "{c:#?}");
    let eth0 = &c.interfaces[0];
    assert_eq!(eth0.name, "eth0");
    assert_eq!(eth0.mac, "02:fc:00:00:00:01");
    assert_eq!(eth0.link, LinkKind::Physical);
    assert_eq!(eth0.mtu, Some(1400));
    assert!(!eth0.dhcp);
    // fe80:: link-local is the kernel's, not configuration.
    assert_eq!(eth0.addresses, ["192.0.2.2/24", "fd00::2/64"]);
    // Kernel prefix routes are dropped; the defaults stay.
    let routes: Vec<(String, Option<String>, bool)> = c
        .routes
        .iter()
        .map(|r| (r.dst.clone(), r.gateway.clone(), r.ipv6))
        .collect();
    assert_eq!(
        routes,
        [
            ("default".into(), Some("192.0.2.1".into()), false),
            ("default".into(), Some("fd00::1".into()), true),
        ]
    );
    assert_eq!(c.nameservers, ["10.255.255.53"]);
}

#[test]
fn dhcp_interface_keeps_no_dynamic_address_or_route() {
    // The same NIC as a DHCP client would leave it: the address flagged
    // dynamic (finite lifetime) and the default route from the lease.
    let mut ip = fixture();
    ip.addr = ip.addr.replacen(
        "\"local\":\"192.0.2.2\",\"prefixlen\":24,",
        "\"local\":\"192.0.2.2\",\"prefixlen\":24,\"dynamic\":true,",
        1,
    );
    assert!(ip.addr.contains("\"dynamic\":true"), "fixture changed?");
    let c = parse(&ip, &DhcpHints::default(), "").unwrap();
    let eth0 = &c.interfaces[0];
    assert!(eth0.dhcp);
    assert_eq!(eth0.addresses, ["fd00::2/64"]);
    assert!(c.routes.iter().all(|r| r.ipv6), "{:?}", c.routes);
}

#[test]
fn garbage_is_an_input_error() {
    let ip = IpOutputs {
        addr: "Device \"eth9\" does not exist.".into(),
        route4: String::new(),
        route6: String::new(),
    };
    let e = parse(&ip, &DhcpHints::default(), "").unwrap_err();
    assert!(format!("{e:#}").contains("ip -json addr"), "{e:#}");
    assert_eq!(mkrescue::error::code_of(&e), mkrescue::error::Code::Input);
}

fn bond_bridge_vlan() -> IpOutputs {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/network/bond-bridge-vlan");
    IpOutputs::from_files(
        &d.join("ip-addr.json"),
        Some(&d.join("ip4-route.json")),
        Some(&d.join("ip6-route.json")),
    )
    .unwrap()
}

#[test]
fn bond_under_bridge_under_vlan_is_captured_with_the_nics_own_macs() {
    let c = parse(&bond_bridge_vlan(), &DhcpHints::default(), "").unwrap();
    let by = |n: &str| {
        c.interfaces
            .iter()
            .find(|i| i.name == n)
            .unwrap_or_else(|| panic!("{n} not captured: {c:#?}"))
    };
    let names: Vec<&str> = c.interfaces.iter().map(|i| i.name.as_str()).collect();
    // ip order: the NICs, then what sits on them (init creates in this
    // order too).
    assert_eq!(names, ["eth0", "eth1", "eth2", "bond0", "br0", "br0.42"]);
    // Both slaves are found again by their own MACs, although the second
    // one carries the bond's address while enslaved.
    assert_eq!(by("eth1").mac, "02:fc:00:00:01:01");
    assert_eq!(by("eth2").mac, "02:fc:00:00:01:02");
    for slave in ["eth1", "eth2"] {
        assert_eq!(by(slave).link, LinkKind::Physical);
        assert_eq!(by(slave).master.as_deref(), Some("bond0"));
        assert!(by(slave).addresses.is_empty());
    }
    assert_eq!(
        by("bond0").link,
        LinkKind::Bond {
            mode: Some("active-backup".into()),
            miimon: Some(100),
        }
    );
    assert_eq!(by("bond0").master.as_deref(), Some("br0"));
    assert_eq!(by("br0").link, LinkKind::Bridge);
    // The SLAAC fec0:: address (dynamic) and link-local ones are left to
    // the network to hand out again.
    assert_eq!(by("br0").addresses, ["192.0.2.2/24", "fd00::2/64"]);
    assert_eq!(
        by("br0.42").link,
        LinkKind::Vlan {
            id: 42,
            link: "br0".into()
        }
    );
    assert_eq!(by("br0.42").addresses, ["198.51.100.2/24"]);
    // The DHCP'd management NIC: DHCP again, no static address.
    assert!(by("eth0").dhcp);
    assert!(by("eth0").addresses.is_empty());
    assert!(!by("br0").dhcp);
    // Static routes stay with their devices; kernel and RA routes go.
    let routes: Vec<(String, Option<String>, Option<String>, bool)> = c
        .routes
        .iter()
        .map(|r| (r.dst.clone(), r.gateway.clone(), r.dev.clone(), r.ipv6))
        .collect();
    assert_eq!(
        routes,
        [
            (
                "default".into(),
                Some("192.0.2.1".into()),
                Some("br0".into()),
                false
            ),
            (
                "203.0.113.0/24".into(),
                Some("198.51.100.1".into()),
                Some("br0.42".into()),
                false
            ),
        ]
    );
}

#[test]
fn captured_bond_survives_the_image_round_trip() {
    // What the build writes to /etc/mkrescue/network.json is what init
    // reads back: the bond's mode and miimon included.
    let c = parse(&bond_bridge_vlan(), &DhcpHints::default(), "").unwrap();
    let json = serde_json::to_string(&c).unwrap();
    let back: mkrescue::rescue::network::NetConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, c);
    // A network.json from before miimon was recorded still loads.
    let old = json.replace(",\"miimon\":100", "");
    assert_ne!(old, json);
    let back: mkrescue::rescue::network::NetConfig = serde_json::from_str(&old).unwrap();
    assert!(back.interfaces.iter().any(|i| i.link
        == LinkKind::Bond {
            mode: Some("active-backup".into()),
            miimon: None
        }));
}
