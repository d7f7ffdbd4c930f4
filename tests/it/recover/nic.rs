//! Other NICs: the recorded NICs mapped to this machine's (MAC, PCI slot,
//! order, `--map-nic`, nothing to map), and the rewrite of a restored
//! system's network configuration on real files in a temporary root
//! (tests/fixtures/nic/: each format's `before/` tree and the `after/`
//! text it must become, with the mapping of its README).

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use mkrescue::error::{Code, code_of};
use mkrescue::recover::nic::{
    HereNic, Mapping, NicMap, ORIG_DIR, Recorded, Why, map_nics, plan, probe, rewrite_tree,
};

const FIXTURES: &str = "tests/fixtures/nic";

fn rec(name: &str, mac: &str, path: Option<&str>) -> Recorded {
    Recorded {
        name: name.into(),
        mac: mac.into(),
        path: path.map(str::to_string),
    }
}

fn here(name: &str, mac: &str, path: Option<&str>, ifindex: u32) -> HereNic {
    HereNic {
        name: name.into(),
        predictable: None,
        mac: mac.into(),
        path: path.map(str::to_string),
        ifindex,
    }
}

/// (old name, new name, why) of a mapping.
fn pairs(m: &Mapping) -> Vec<(&str, &str, Why)> {
    m.maps
        .iter()
        .map(|n| (n.old_name.as_str(), n.new_name.as_str(), n.why))
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn same_macs_map_by_mac_whatever_the_order_and_change_nothing() {
    let r = [
        rec("eth0", "52:54:00:12:34:0a", None),
        rec("eth1", "52:54:00:12:34:0b", None),
    ];
    let h = [
        here("eth1", "52:54:00:12:34:0b", None, 2),
        here("eth0", "52:54:00:12:34:0a", None, 3),
    ];
    let m = map_nics(&r, &h, &[]).unwrap();
    assert_eq!(
        pairs(&m),
        [("eth0", "eth0", Why::Mac), ("eth1", "eth1", Why::Mac)]
    );
    assert!(!m.changes());
    assert!(m.notes.is_empty(), "{:?}", m.notes);
    assert_eq!(
        m.lines()[0],
        "nic eth0 52:54:00:12:34:0a: here as it was",
        "{:?}",
        m.lines()
    );
}

/// A new card in the same slots: the slot decides, not the order the
/// kernel found them in (here the other way round).
#[test]
fn other_macs_in_the_same_slots_map_by_pci_path() {
    let r = [
        rec("enp1s0", "52:54:00:12:34:0a", Some("pci-0000:01:00.0")),
        rec("enp2s0", "52:54:00:12:34:0b", Some("pci-0000:02:00.0")),
    ];
    let h = [
        here("enp2s0", "52:54:00:ab:cd:02", Some("pci-0000:02:00.0"), 2),
        here("enp1s0", "52:54:00:ab:cd:01", Some("pci-0000:01:00.0"), 3),
    ];
    let m = map_nics(&r, &h, &[]).unwrap();
    assert_eq!(
        pairs(&m),
        [
            ("enp1s0", "enp1s0", Why::Path),
            ("enp2s0", "enp2s0", Why::Path)
        ]
    );
    assert_eq!(m.maps[0].new_mac, "52:54:00:ab:cd:01");
    assert!(m.changes(), "the MACs changed");
    assert_eq!(
        m.lines()[0],
        "nic enp1s0 52:54:00:12:34:0a -> enp1s0 52:54:00:ab:cd:01 (same PCI slot)"
    );
}

/// Nothing in common: by the kernel's order (ifindex), not by name.
#[test]
fn nothing_in_common_maps_by_ifindex_order_and_says_so() {
    let r = [
        rec("eth0", "52:54:00:12:34:0a", Some("pci-0000:00:03.0")),
        rec("eth1", "52:54:00:12:34:0b", Some("pci-0000:00:04.0")),
    ];
    let h = [
        here("ens10", "52:54:00:ab:cd:02", Some("pci-0000:00:0a.0"), 3),
        here("ens9", "52:54:00:ab:cd:01", Some("pci-0000:00:09.0"), 2),
    ];
    let mut h = h.to_vec();
    h.sort_by_key(|n| n.ifindex);
    let m = map_nics(&r, &h, &[]).unwrap();
    assert_eq!(
        pairs(&m),
        [("eth0", "ens9", Why::Order), ("eth1", "ens10", Why::Order)]
    );
    assert!(m.lines()[0].ends_with("(by order)"), "{:?}", m.lines());
}

/// The MAC and the slot settle what they can; the order only what is left.
#[test]
fn order_maps_only_what_mac_and_slot_left() {
    let r = [
        rec("eth0", "52:54:00:12:34:0a", None),
        rec("eth1", "52:54:00:12:34:0b", None),
        rec("eth2", "52:54:00:12:34:0c", Some("pci-0000:00:05.0")),
    ];
    let h = [
        here("ens3", "52:54:00:ab:cd:01", None, 2),
        here("ens4", "52:54:00:12:34:0b", None, 3),
        here("ens5", "52:54:00:ab:cd:03", Some("pci-0000:00:05.0"), 4),
    ];
    let m = map_nics(&r, &h, &[]).unwrap();
    assert_eq!(
        pairs(&m),
        [
            ("eth0", "ens3", Why::Order),
            ("eth1", "eth1", Why::Mac),
            ("eth2", "eth2", Why::Path)
        ]
    );
    let here_names: Vec<&str> = m.maps.iter().map(|n| n.here_name.as_str()).collect();
    assert_eq!(here_names, ["ens3", "ens4", "ens5"]);
}

/// Without udev's database the predictable name of a new NIC is not
/// known: the name here is used, and the report says to check it.
#[test]
fn an_unknown_predictable_name_is_said() {
    let r = [rec("enp1s0", "52:54:00:12:34:0a", None)];
    let h = [here("eth0", "52:54:00:ab:cd:01", None, 2)];
    let m = map_nics(&r, &h, &[]).unwrap();
    assert_eq!(pairs(&m), [("enp1s0", "eth0", Why::Order)]);
    assert_eq!(m.notes.len(), 1, "{:?}", m.notes);
    assert!(
        m.notes[0].starts_with(
            "the name the restored system gives eth0 (52:54:00:ab:cd:01) is not known"
        ),
        "{:?}",
        m.notes
    );
    let h = [HereNic {
        predictable: Some("enp7s0".into()),
        ..here("eth0", "52:54:00:ab:cd:01", None, 2)
    }];
    let m = map_nics(&r, &h, &[]).unwrap();
    assert_eq!(pairs(&m), [("enp1s0", "enp7s0", Why::Order)]);
    assert!(m.notes.is_empty(), "{:?}", m.notes);
}

#[test]
fn map_nic_overrides_the_mac_by_name_or_mac() {
    let r = [
        rec("eth0", "52:54:00:12:34:0a", None),
        rec("eth1", "52:54:00:12:34:0b", None),
    ];
    let h = [
        here("eth0", "52:54:00:12:34:0a", None, 2),
        here("eth1", "52:54:00:12:34:0b", None, 3),
    ];
    // Cables swapped on purpose: the operator says so, by name and by MAC.
    let m = map_nics(&r, &h, &strings(&["eth0=eth1", "52:54:00:12:34:0B=eth0"])).unwrap();
    assert_eq!(
        pairs(&m),
        [
            ("eth0", "eth1", Why::Explicit),
            ("eth1", "eth0", Why::Explicit)
        ]
    );
    assert!(m.lines()[0].ends_with("(--map-nic)"), "{:?}", m.lines());
    // One explicit, the other still by MAC.
    let h2 = [
        here("eth0", "52:54:00:12:34:0a", None, 2),
        here("ens8", "52:54:00:ab:cd:08", None, 3),
        here("eth1", "52:54:00:12:34:0b", None, 4),
    ];
    let m = map_nics(&r, &h2, &strings(&["eth0=52:54:00:ab:cd:08"])).unwrap();
    assert_eq!(
        pairs(&m),
        [("eth0", "ens8", Why::Explicit), ("eth1", "eth1", Why::Mac)]
    );
    assert_eq!(m.notes.len(), 1, "eth0 here is left over: {:?}", m.notes);
    assert!(
        m.notes[0].starts_with("here but not recorded, left unconfigured: eth0 "),
        "{:?}",
        m.notes
    );
}

#[test]
fn a_wrong_map_nic_is_a_usage_error_naming_both_sides() {
    let r = [rec("eth0", "52:54:00:12:34:0a", None)];
    let h = [here("ens4", "52:54:00:ab:cd:01", None, 2)];
    for (arg, want) in [
        (
            "eth9=ens4",
            "eth9 is not a NIC the rescue image recorded (eth0 52:54:00:12:34:0a)",
        ),
        (
            "eth0=ens9",
            "ens9 is not a NIC of this machine (ens4 52:54:00:ab:cd:01)",
        ),
        ("eth0", "want OLD=NEW"),
    ] {
        let e = map_nics(&r, &h, &strings(&[arg])).unwrap_err();
        assert_eq!(code_of(&e), Code::Usage, "{arg}");
        let msg = format!("{e:#}");
        assert!(msg.contains(want), "{arg}: {msg}");
    }
    let e = map_nics(&r, &h, &strings(&["eth0=ens4", "52:54:00:12:34:0a=ens4"])).unwrap_err();
    assert!(format!("{e:#}").contains("eth0 is mapped twice"), "{e:#}");
}

/// More NICs left on one side than on the other: no guess, a note that
/// says which and what to do; the NICs that matched are still mapped.
#[test]
fn an_ambiguous_rest_is_not_guessed() {
    let r = [
        rec("eth0", "52:54:00:12:34:0a", None),
        rec("eth1", "52:54:00:12:34:0b", None),
        rec("eth2", "52:54:00:12:34:0c", None),
    ];
    let h = [
        here("ens3", "52:54:00:12:34:0a", None, 2),
        here("ens4", "52:54:00:ab:cd:04", None, 3),
        here("ens5", "52:54:00:ab:cd:05", None, 4),
        here("ens6", "52:54:00:ab:cd:06", None, 5),
    ];
    let m = map_nics(&r, &h, &[]).unwrap();
    // Same MAC, no udev name known: the name it had.
    assert_eq!(pairs(&m), [("eth0", "eth0", Why::Mac)]);
    assert_eq!(m.notes.len(), 1, "{:?}", m.notes);
    let n = &m.notes[0];
    assert!(n.starts_with("not guessed: 2 recorded NIC(s)"), "{n}");
    assert!(
        n.contains("eth1 52:54:00:12:34:0b, eth2 52:54:00:12:34:0c"),
        "{n}"
    );
    assert!(n.contains("for 3 NIC(s) here (ens4"), "{n}");
    assert!(n.contains("give --map-nic OLD=NEW"), "{n}");
}

#[test]
fn a_recorded_nic_with_nowhere_to_go_is_reported() {
    let r = [
        rec("eth0", "52:54:00:12:34:0a", None),
        rec("eth1", "52:54:00:12:34:0b", None),
    ];
    let h = [here("ens3", "52:54:00:12:34:0a", None, 2)];
    let m = map_nics(&r, &h, &[]).unwrap();
    assert_eq!(pairs(&m), [("eth0", "eth0", Why::Mac)]);
    assert_eq!(m.notes.len(), 1, "{:?}", m.notes);
    assert!(
        m.notes[0].starts_with("eth1 52:54:00:12:34:0b has no NIC here to go to"),
        "{:?}",
        m.notes
    );
    assert!(m.lines().iter().any(|l| l.starts_with("nic: eth1 ")));
    // No NIC at all here: every recorded one is reported, none mapped.
    let m = map_nics(&r, &[], &[]).unwrap();
    assert!(m.maps.is_empty());
    assert_eq!(m.notes.len(), 2, "{:?}", m.notes);
}

/// A sysfs tree like the kernel's: /sys/class/net/NAME with `address`,
/// `ifindex` and a `device` link into /sys/devices; `virtual` NICs have no
/// `device`.
fn fake_sys(root: &Path, nics: &[(&str, &str, u32, Option<&str>)]) {
    let net = root.join("sys/class/net");
    for (name, mac, ifindex, pci) in nics {
        let d = net.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("address"), format!("{mac}\n")).unwrap();
        std::fs::write(d.join("ifindex"), format!("{ifindex}\n")).unwrap();
        if let Some(pci) = pci {
            let dev = root.join(format!("sys/devices/pci0000:00/{pci}/virtio{ifindex}"));
            std::fs::create_dir_all(&dev).unwrap();
            std::os::unix::fs::symlink(&dev, d.join("device")).unwrap();
        }
    }
}

#[test]
fn probe_reads_sysfs_skips_virtual_links_and_uses_permanent_macs() {
    let dir = tempfile::tempdir().unwrap();
    fake_sys(
        dir.path(),
        &[
            ("lo", "00:00:00:00:00:00", 1, None),
            ("ens5", "02:FC:00:00:01:01", 3, Some("0000:00:05.0")),
            ("ens4", "02:fc:00:00:01:01", 2, Some("0000:00:04.0")),
            ("bond0", "02:fc:00:00:01:01", 4, None),
        ],
    );
    // udev's database entry of ens5 (the format of /run/udev/data/n<ifindex>
    // that `udevadm info` reads), written by its net_id builtin.
    std::fs::create_dir_all(dir.path().join("run/udev/data")).unwrap();
    std::fs::write(
        dir.path().join("run/udev/data/n3"),
        "I:4242\nE:ID_NET_NAMING_SCHEME=v252\nE:ID_NET_NAME_MAC=enx02fc00000102\nE:ID_NET_NAME_PATH=enp0s5\nE:ID_NET_NAME_SLOT=ens5\nE:ID_PATH=pci-0000:00:05.0\nG:systemd\nV:1\n",
    )
    .unwrap();
    let perm: BTreeMap<String, String> =
        [("ens5".to_string(), "02:fc:00:00:01:02".to_string())].into();
    let got = probe(
        &dir.path().join("sys/class/net"),
        &perm,
        &dir.path().join("run/udev/data"),
    );
    assert_eq!(
        got,
        [
            here("ens4", "02:fc:00:00:01:01", Some("pci-0000:00:04.0"), 2),
            HereNic {
                predictable: Some("ens5".into()),
                ..here("ens5", "02:fc:00:00:01:02", Some("pci-0000:00:05.0"), 3)
            },
        ]
    );
}

/// The whole path recover takes: the image's network.json (captured from
/// the real bond-bridge-vlan outputs: eth0, and eth1 + eth2 bonded, eth2
/// recorded by its permanent MAC) against a sysfs where eth1 and eth2 are
/// back and eth0's NIC was replaced.
#[test]
fn plan_maps_the_recorded_network_json() {
    use mkrescue::rescue::network::{DhcpHints, IpOutputs, parse};
    let fx = Path::new("tests/fixtures/network/bond-bridge-vlan");
    let ip = IpOutputs::from_files(&fx.join("ip-addr.json"), None, None).unwrap();
    let cfg = parse(&ip, &DhcpHints::default(), "").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("etc/mkrescue")).unwrap();
    std::fs::write(
        root.join("etc/mkrescue/network.json"),
        serde_json::to_string(&cfg).unwrap(),
    )
    .unwrap();
    // The rescue system has the kernel's names; udev's database the
    // predictable ones the restored system will use.
    fake_sys(
        root,
        &[
            ("eth0", "52:54:00:99:99:99", 2, Some("0000:00:03.0")),
            ("eth1", "02:fc:00:00:01:01", 3, Some("0000:00:04.0")),
            ("eth2", "02:fc:00:00:01:02", 4, Some("0000:00:05.0")),
        ],
    );
    std::fs::create_dir_all(root.join("run/udev/data")).unwrap();
    for (i, slot) in [(2, 3), (3, 4), (4, 5)] {
        std::fs::write(
            root.join(format!("run/udev/data/n{i}")),
            format!("E:ID_NET_NAME_MAC=enx0000\nE:ID_NET_NAME_PATH=enp0s{slot}\n"),
        )
        .unwrap();
    }
    let m = plan(root, &[]).unwrap();
    assert_eq!(
        pairs(&m),
        [
            ("eth0", "enp0s3", Why::Order),
            ("eth1", "enp0s4", Why::Mac),
            ("eth2", "enp0s5", Why::Mac)
        ]
    );
    assert_eq!(
        m.lines()[0],
        "nic eth0 52:54:00:6d:6b:01 -> enp0s3 52:54:00:99:99:99 (by order; eth0 in this rescue system)"
    );
    assert!(m.notes.is_empty(), "{:?}", m.notes);
    // --map-nic may name the NIC by its predictable name.
    let m = plan(root, &strings(&["eth1=enp0s5", "eth2=enp0s4"])).unwrap();
    assert_eq!(
        pairs(&m),
        [
            ("eth0", "enp0s3", Why::Order),
            ("eth1", "enp0s5", Why::Explicit),
            ("eth2", "enp0s4", Why::Explicit)
        ]
    );
    let e = plan(root, &strings(&["eth7=enp0s3"])).unwrap_err();
    assert_eq!(code_of(&e), Code::Usage);
    // No network.json (an image built with network.mode = off, or older):
    // a note, and nothing to rewrite.
    std::fs::remove_file(root.join("etc/mkrescue/network.json")).unwrap();
    let m = plan(root, &[]).unwrap();
    assert!(m.maps.is_empty() && !m.changes());
    assert_eq!(m.notes.len(), 1, "{:?}", m.notes);
}

/// The mapping of tests/fixtures/nic/README.md.
fn fixture_mapping() -> Mapping {
    let n = |o: &str, om: &str, n: &str, nm: &str| NicMap {
        old_name: o.into(),
        old_mac: om.into(),
        new_name: n.into(),
        here_name: n.into(),
        new_mac: nm.into(),
        why: Why::Order,
    };
    Mapping {
        maps: vec![
            n("eth0", "52:54:00:12:34:0a", "ens4", "52:54:00:ab:cd:01"),
            n("eth1", "52:54:00:12:34:0b", "ens5", "52:54:00:ab:cd:02"),
            n("lan0", "52:54:00:12:34:0c", "ens6", "52:54:00:ab:cd:03"),
        ],
        notes: vec![],
    }
}

/// Copies `from` into `to` with `cp -a` (modes and all).
fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Every regular file below `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(dir).unwrap().to_path_buf())
        .collect();
    v.sort();
    v
}

/// Runs the rewrite on a copy of FORMAT/before and compares every file
/// with FORMAT/after; returns the report lines and the temporary root.
fn rewrite_fixture(format: &str) -> (Vec<String>, tempfile::TempDir) {
    let fx = Path::new(FIXTURES).join(format);
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fx.join("before"), dir.path());
    let lines = rewrite_tree(dir.path(), &fixture_mapping()).unwrap();
    let after = fx.join("after");
    for rel in tree(&after) {
        let want = std::fs::read_to_string(after.join(&rel)).unwrap();
        let got = std::fs::read_to_string(dir.path().join(&rel)).unwrap();
        assert_eq!(got, want, "{format}: /{}", rel.display());
    }
    // Nothing else appeared in the config directories (no temporary file,
    // no original next to the file: a stack would load it too).
    let got: Vec<PathBuf> = tree(dir.path())
        .into_iter()
        .filter(|p| !p.starts_with(ORIG_DIR))
        .collect();
    assert_eq!(got, tree(&after), "{format}");
    (lines, dir)
}

/// The report line of `file` ("/etc/...: N lines rewritten ...").
fn line_of<'a>(lines: &'a [String], file: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.starts_with(&format!("{file}: ")))
        .unwrap_or_else(|| panic!("no line for {file}: {lines:#?}"))
}

#[test]
fn ifupdown_names_vlans_bridges_bonds_and_hwaddress_follow() {
    let (lines, dir) = rewrite_fixture("ifupdown");
    assert_eq!(
        line_of(&lines, "/etc/network/interfaces"),
        "/etc/network/interfaces: 7 lines rewritten for the new NICs (original in /var/lib/mkrescue/recover-orig/etc/network/interfaces)"
    );
    assert!(line_of(&lines, "/etc/network/interfaces.d/br0").contains(": 5 lines "));
    assert_eq!(lines.len(), 2, "{lines:#?}");
    // The original is kept outside interfaces.d, byte for byte.
    let orig = dir
        .path()
        .join(ORIG_DIR)
        .join("etc/network/interfaces.d/br0");
    assert_eq!(
        std::fs::read_to_string(orig).unwrap(),
        std::fs::read_to_string(
            Path::new(FIXTURES).join("ifupdown/before/etc/network/interfaces.d/br0")
        )
        .unwrap()
    );
}

#[test]
fn networkd_matches_follow_and_a_pinned_link_name_stays() {
    let (lines, _dir) = rewrite_fixture("networkd");
    for f in ["10-eth0.network", "20-eth1.network", "70-lan0.link"] {
        assert!(
            line_of(&lines, &format!("/etc/systemd/network/{f}")).contains(": 1 line rewritten"),
            "{lines:#?}"
        );
    }
    assert!(
        lines.contains(
            &"lan0 keeps the name lan0 the restored system pins to its MAC (not ens6)".to_string()
        ),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&"/etc/systemd/network/99-dhcp.network: Name=eth* matched eth0 but not ens4: check that file, it no longer applies to that NIC".to_string()),
        "{lines:#?}"
    );
}

#[test]
fn nmconnection_keyfiles_follow_and_stay_0600() {
    let fx = Path::new(FIXTURES).join("nm");
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fx.join("before"), dir.path());
    let conns = dir.path().join("etc/NetworkManager/system-connections");
    let wired = conns.join("Wired connection 1.nmconnection");
    for f in std::fs::read_dir(&conns).unwrap() {
        std::fs::set_permissions(f.unwrap().path(), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    // Another owner, when the test may give one (root): kept as well.
    let root = rustix_is_root();
    if root {
        std::os::unix::fs::chown(&wired, Some(1234), Some(4321)).unwrap();
    }
    let lines = rewrite_tree(dir.path(), &fixture_mapping()).unwrap();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    for f in tree(&fx.join("after")) {
        assert_eq!(
            std::fs::read_to_string(dir.path().join(&f)).unwrap(),
            std::fs::read_to_string(fx.join("after").join(&f)).unwrap(),
            "{}",
            f.display()
        );
    }
    let m = std::fs::metadata(&wired).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o600);
    if root {
        assert_eq!((m.uid(), m.gid()), (1234, 4321));
    }
    // The original keeps its secrets to root, too.
    let orig_dir = dir.path().join(ORIG_DIR);
    let orig =
        orig_dir.join("etc/NetworkManager/system-connections/Wired connection 1.nmconnection");
    assert_eq!(std::fs::metadata(&orig).unwrap().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&orig_dir).unwrap().mode() & 0o777, 0o700);
    let names: Vec<String> = std::fs::read_dir(&conns)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "no temporary or original file left: {names:?}"
    );
}

fn rustix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

#[test]
fn netplan_ids_references_and_match_macs_follow_set_name_stays() {
    let (lines, _dir) = rewrite_fixture("netplan");
    assert!(
        line_of(&lines, "/etc/netplan/50-cloud-init.yaml").contains(": 5 lines "),
        "{lines:#?}"
    );
    assert!(
        line_of(&lines, "/etc/netplan/60-vlan.yaml").contains(": 1 line "),
        "{lines:#?}"
    );
}

#[test]
fn persistent_net_rules_keep_their_names_with_the_new_macs() {
    let (lines, _dir) = rewrite_fixture("udev");
    assert!(line_of(&lines, "/etc/udev/rules.d/70-persistent-net.rules").contains(": 2 lines "));
    assert!(
        line_of(&lines, "/etc/network/interfaces").contains(": 2 lines "),
        "only lan0, which no rule pins, is renamed: {lines:#?}"
    );
    assert!(lines.iter().any(|l| l == "eth0 keeps the name eth0 the restored system pins to its MAC (not ens4)"), "{lines:#?}");
}

/// Every NIC here with its MAC and name: not a byte changes, no original
/// is kept, no line in the report.
#[test]
fn same_nics_touch_nothing() {
    for format in ["ifupdown", "networkd", "nm", "netplan", "udev"] {
        let fx = Path::new(FIXTURES).join(format).join("before");
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&fx, dir.path());
        let mut same = fixture_mapping();
        for n in &mut same.maps {
            n.new_name = n.old_name.clone();
            n.here_name = n.old_name.clone();
            n.new_mac = n.old_mac.clone();
            n.why = Why::Mac;
        }
        let before: Vec<(PathBuf, std::fs::Metadata)> = tree(dir.path())
            .into_iter()
            .map(|p| {
                let m = std::fs::metadata(dir.path().join(&p)).unwrap();
                (p, m)
            })
            .collect();
        let lines = rewrite_tree(dir.path(), &same).unwrap();
        assert!(lines.is_empty(), "{format}: {lines:#?}");
        assert!(!dir.path().join(ORIG_DIR).exists(), "{format}");
        for (p, m) in before {
            let now = std::fs::metadata(dir.path().join(&p)).unwrap();
            assert_eq!(now.ino(), m.ino(), "{format}: /{} replaced", p.display());
            assert_eq!(
                now.mtime_nsec(),
                m.mtime_nsec(),
                "{format}: /{}",
                p.display()
            );
        }
    }
}

/// A restored system that names NICs as the kernel does (net.ifnames=0)
/// gets the rescue system's names, otherwise the predictable ones.
#[test]
fn kernel_names_on_the_restored_system_take_the_rescue_names() {
    let m = Mapping {
        maps: vec![NicMap {
            old_name: "enp1s0".into(),
            old_mac: "52:54:00:12:34:0a".into(),
            new_name: "ens4".into(),
            here_name: "eth0".into(),
            new_mac: "52:54:00:ab:cd:01".into(),
            why: Why::Order,
        }],
        notes: vec![],
    };
    let run = |grub: Option<&str>| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc/network")).unwrap();
        std::fs::write(
            dir.path().join("etc/network/interfaces"),
            "auto enp1s0\niface enp1s0 inet dhcp\n",
        )
        .unwrap();
        if let Some(g) = grub {
            std::fs::create_dir_all(dir.path().join("etc/default")).unwrap();
            std::fs::write(dir.path().join("etc/default/grub"), g).unwrap();
        }
        let lines = rewrite_tree(dir.path(), &m).unwrap();
        let text = std::fs::read_to_string(dir.path().join("etc/network/interfaces")).unwrap();
        (text, lines)
    };
    let (text, _) = run(None);
    assert_eq!(text, "auto ens4\niface ens4 inet dhcp\n");
    let (text, _) = run(Some(
        "# GRUB_CMDLINE_LINUX=\"net.ifnames=0\"\nGRUB_CMDLINE_LINUX=\"\"\n",
    ));
    assert_eq!(
        text, "auto ens4\niface ens4 inet dhcp\n",
        "a comment is no setting"
    );
    let (text, lines) = run(Some("GRUB_CMDLINE_LINUX=\"net.ifnames=0 biosdevname=0\"\n"));
    assert_eq!(text, "auto eth0\niface eth0 inet dhcp\n");
    assert!(
        lines[0].starts_with(
            "the restored system keeps the kernel's NIC names (net.ifnames=0 in /etc/default/grub)"
        ),
        "{lines:#?}"
    );
}

/// A restored system without any network configuration file that names
/// the NICs (DHCP on whatever comes up): the report says nothing was
/// needed rather than nothing.
#[test]
fn no_file_naming_the_nics_is_said() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("etc/network")).unwrap();
    std::fs::write(
        dir.path().join("etc/network/interfaces"),
        "auto lo\niface lo inet loopback\n",
    )
    .unwrap();
    let lines = rewrite_tree(dir.path(), &fixture_mapping()).unwrap();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].starts_with("no network configuration file of the restored system names eth0 -> ens4, eth1 -> ens5, lan0 -> ens6, 52:54:00:12:34:0a -> 52:54:00:ab:cd:01"),
        "{lines:#?}"
    );
}

/// `recover --map-nic` with a NIC the image did not record stops before
/// the disks are even looked at: one line, exit 2.
#[test]
fn recover_with_a_wrong_map_nic_stops_first() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("tests/fixtures/layout/layout2.json").unwrap(),
    )
    .unwrap();
    v["mounts"] = serde_json::json!([{
        "target": "/", "source": "/dev/vg0/root", "fstype": "ext4",
        "options": "rw,relatime", "fsroot": "/"
    }]);
    let layout = root.join("layout.json");
    std::fs::write(&layout, v.to_string()).unwrap();
    std::fs::create_dir_all(root.join("etc/mkrescue")).unwrap();
    std::fs::write(root.join("etc/mkrescue/host.json"), "{}").unwrap();
    std::fs::write(
        root.join("etc/mkrescue/network.json"),
        r#"{"mode":"host","interfaces":[{"name":"eth0","mac":"52:54:00:12:34:0a","kind":"physical","master":null,"mtu":1500,"dhcp":true,"addresses":[]}],"routes":[],"nameservers":[],"search":[]}"#,
    )
    .unwrap();
    fake_sys(
        root,
        &[("ens4", "52:54:00:ab:cd:01", 2, Some("0000:00:04.0"))],
    );
    let out = Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .args(["recover", "--dry-run", "--unattended", "--layout"])
        .arg(&layout)
        .args(["--map-nic", "eth1=ens4"])
        .args(["--config-dir", "/nonexistent-mkrescue-test"])
        .arg("--root")
        .arg(root)
        .output()
        .unwrap();
    let line = crate::support::backup::error_line(&out, 2);
    assert!(
        line.contains("--map-nic eth1=ens4: eth1 is not a NIC the rescue image recorded (eth0 52:54:00:12:34:0a); nothing was changed"),
        "{line}"
    );
    assert!(out.stdout.is_empty());
}

/// A file that cannot be replaced (its directory read-only: here a
/// directory where the temporary file would go) is a report line; the
/// other files are still rewritten.
#[test]
fn a_file_that_cannot_be_written_is_said_and_the_others_done() {
    let fx = Path::new(FIXTURES).join("ifupdown/before");
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fx, dir.path());
    // The temporary file's name taken by a directory: the write fails
    // whatever the test's privileges.
    std::fs::create_dir(
        dir.path()
            .join("etc/network/interfaces.d/.br0.mkrescue-tmp"),
    )
    .unwrap();
    let lines = rewrite_tree(dir.path(), &fixture_mapping()).unwrap();
    assert!(
        line_of(&lines, "/etc/network/interfaces").contains(": 7 lines rewritten"),
        "{lines:#?}"
    );
    let br0 = line_of(&lines, "/etc/network/interfaces.d/br0");
    assert!(br0.contains(": NOT rewritten for the new NICs ("), "{br0}");
    assert!(
        br0.ends_with("edit it after boot (5 lines name an old NIC)"),
        "{br0}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("etc/network/interfaces.d/br0")).unwrap(),
        std::fs::read_to_string(fx.join("etc/network/interfaces.d/br0")).unwrap()
    );
}

/// What `recover --dry-run` adds to its script: the mapping, and that the
/// files are rewritten after the restore (they are not there before it).
#[test]
fn dry_run_names_the_mapping() {
    let lines = mkrescue::recover::nic::dry_run_lines(&fixture_mapping());
    assert!(
        lines[0].starts_with("# network configuration of the restored system, after the restore: "),
        "{lines:#?}"
    );
    assert_eq!(
        lines[1],
        "#   nic eth0 52:54:00:12:34:0a -> ens4 52:54:00:ab:cd:01 (by order)"
    );
    assert_eq!(lines.len(), 4, "{lines:#?}");
    let mut same = fixture_mapping();
    for n in &mut same.maps {
        n.new_name = n.old_name.clone();
        n.new_mac = n.old_mac.clone();
    }
    assert_eq!(
        mkrescue::recover::nic::dry_run_lines(&same),
        [
            "# network configuration: every recorded NIC is here with its name and MAC; nothing to rewrite"
        ]
    );
}

/// Two NICs that would get one name in the restored system (a rule pins
/// an old MAC to the name another NIC gets) are not rewritten: said, not
/// guessed.
#[test]
fn two_nics_for_one_name_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("etc/udev/rules.d")).unwrap();
    std::fs::write(
        root.join("etc/udev/rules.d/70-persistent-net.rules"),
        "SUBSYSTEM==\"net\", ACTION==\"add\", ATTR{address}==\"52:54:00:12:34:0b\", NAME=\"ens4\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("etc/network")).unwrap();
    let interfaces = "auto eth0\niface eth0 inet dhcp\nauto eth1\niface eth1 inet dhcp\nauto lan0\niface lan0 inet dhcp\n";
    std::fs::write(root.join("etc/network/interfaces"), interfaces).unwrap();
    let lines = rewrite_tree(root, &fixture_mapping()).unwrap();
    assert!(
        lines.contains(&"eth0 and eth1 would all be named ens4 in the restored system (a name pinned to an old MAC there, and this machine's name for another NIC): not rewritten; fix the names by hand".to_string()),
        "{lines:#?}"
    );
    // lan0 is still done; eth0 and eth1 keep their names.
    assert_eq!(
        std::fs::read_to_string(root.join("etc/network/interfaces")).unwrap(),
        interfaces.replace("lan0", "ens6")
    );
}
