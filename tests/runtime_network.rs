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
