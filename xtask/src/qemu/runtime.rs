//! `cargo xtask qemu runtime`: the rescue system's runtime in QEMU, checked
//! from outside over SSH like an operator would.
//!
//! 1. DHCP: an image of this host with a test key (generated under
//!    target/qemu/runtime, given through `--config` as `[ssh]
//!    authorized_keys`), booted with a virtio disk (serial MKRT0001) and a
//!    virtio NIC whose MAC the host does not have, so the rescue system
//!    falls back to DHCP. Over `ssh -p PORT root@127.0.0.1` (QEMU user
//!    networking, `restrict=on`, hostfwd): the disk's by-id link, the
//!    DHCP address 10.0.2.15, `modprobe loop`, `mkrescue --version`; then
//!    `poweroff` ends QEMU.
//! 2. Static: the network configuration captured from
//!    tests/fixtures/network (192.0.2.2/24, gateway 192.0.2.1, fd00::2/64
//!    on MAC 02:fc:00:00:00:01), booted with that MAC on a user network
//!    192.0.2.0/24 whose gateway is 192.0.2.1; SSH reaches 192.0.2.2, the
//!    address and default route are checked inside.
//! 3. The same image with `mkrescue.net=dhcp mkrescue.recover=auto
//!    mkrescue.udev=off`: the static address must not come up, DHCP's
//!    192.0.2.15 must; the recover hook ran after the marker and reported
//!    its result on the console; without udev, modalias loading brought
//!    the virtio disk and NIC drivers (modules in Debian's kernel).
//!
//! 4. Bond + bridge + VLAN: the configuration captured from
//!    tests/fixtures/network/bond-bridge-vlan (eth1 + eth2 in an
//!    active-backup bond, the bond a port of br0 with 192.0.2.2/24 and
//!    fd00::2/64, VLAN 42 on br0 with 198.51.100.2/24, two static routes),
//!    booted with two virtio NICs of those MACs, each on its own
//!    `restrict=on` user network; over SSH to br0's address: the bond's
//!    mode, miimon and slaves, the bridge port, the VLAN, the addresses
//!    and routes.
//!
//! 5. `--iso-backup`: a backup of a small tree, an ISO carrying it, booted
//!    from its kernel and initrd with the ISO as CD-ROM; inside, /dev/sr0
//!    mounts, `backup list` sees the backup and `restore` brings the file
//!    back.
//!
//! 6. `nfs://` and `cifs://` targets against nfs-ganesha and smbd running
//!    here, reached through guestfwd ([`super::shares`]).
//!
//! Scenario 1 also checks that QEMU's DHCP under `restrict=on`, which
//! offers no router and no DNS server, leaves no default route, no
//! resolv.conf and no error in the init log; scenario 2 boots with
//! `mkrescue.recover=ask` and checks that recover ran on ttyS0 and the
//! shell followed it there.
//!
//! Reports boot-to-ready seconds (guest uptime in the marker, and wall).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::rescue::{self, SERIAL, build, lan_net, nic, ssh_net};
use super::shares;
use crate::util;
use mkrescue::vm::{Ready, Ssh, Vm, free_port};

const DIR: &str = "target/qemu/runtime";

/// Runs the six scenarios, or only the one named by `only` (dhcp,
/// static, net=dhcp, bond, iso-backup, shares).
pub fn run(only: Option<&str>) -> Result<()> {
    let want = |n: &str| only.is_none_or(|o| o == n);
    if let Some(o) = only {
        anyhow::ensure!(
            ["dhcp", "static", "net=dhcp", "bond", "iso-backup", "shares"].contains(&o),
            "no runtime scenario named {o} (dhcp, static, net=dhcp, bond, iso-backup, shares)"
        );
    }
    let bin = util::build_release()?;
    let dir = PathBuf::from(DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {DIR}"))?;
    let key = dir.join("id_ed25519");
    for p in [key.clone(), key.with_extension("pub")] {
        let _ = std::fs::remove_file(p);
    }
    util::run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "mkrescue-qemu-test",
            "-f",
            key.to_str().context("non-UTF-8 path")?,
        ],
    )?;
    let public = std::fs::read_to_string(key.with_extension("pub"))
        .context("reading the test key")?
        .trim()
        .to_string();
    let disk = dir.join("disk.img");
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(64 << 20))
        .with_context(|| format!("creating {}", disk.display()))?;
    let ssh_toml = format!("[ssh]\nauthorized_keys = [{public:?}]\n");
    let fixtures = std::fs::canonicalize("tests/fixtures/network")?;

    let mut times = Vec::new();
    // 1. DHCP.
    if want("dhcp") {
        let out = build(&bin, &dir, "dhcp", &ssh_toml)?;
        let t = util::step("qemu runtime: DHCP, disk, modprobe, version", || {
            let port = free_port()?;
            let mut vm = Vm::start(&rescue::spec(
                &out,
                &dir.join("dhcp.log"),
                &disk,
                vec![nic("52:54:00:6d:6b:01", ssh_net(port))],
                "",
                None,
            ))?;
            let ready = vm.wait_ready()?;
            let s = Ssh { port, key: &key };
            s.expect(&format!("ls /dev/disk/by-id/virtio-{SERIAL}"), SERIAL)?;
            s.expect("ip -4 addr show", "inet 10.0.2.15/24")?;
            s.expect(
                "modprobe loop && test -d /sys/module/loop && echo loop-ok",
                "loop-ok",
            )?;
            s.expect("mkrescue --version", "mkrescue ")?;
            // QEMU's DHCP with restrict=on offers no router and no DNS server
            // (its lease has only address, mask and lease time): no default
            // route, no resolv.conf, and no error about either in the log.
            let routes = s.expect("ip -4 route show; echo routes-end", "routes-end")?;
            if routes.contains("default") {
                bail!("a default route from a DHCP offer without a router:\n{routes}");
            }
            s.expect(
                "test ! -e /etc/resolv.conf && echo no-resolv-conf",
                "no-resolv-conf",
            )?;
            let log = s.expect("cat /run/mkrescue/init.log; echo log-end", "log-end")?;
            let noisy: Vec<&str> = log
                .lines()
                .filter(|l| {
                    let l = l.to_ascii_lowercase();
                    l.contains("error") || l.contains("failed") || l.contains("cannot")
                })
                .collect();
            if !noisy.is_empty() {
                bail!(
                    "errors in the init log of a DHCP boot:\n{}",
                    noisy.join("\n")
                );
            }
            vm.poweroff(&s)?;
            Ok(ready)
        })?;
        times.push(("dhcp", t));
    }

    // 2. Static from the fixture, matched by MAC.
    let static_toml = format!(
        "{ssh_toml}[network]\nip_addr_json = {:?}\nip4_route_json = {:?}\nip6_route_json = {:?}\n",
        fixtures.join("host-ip-addr.json"),
        fixtures.join("host-ip4-route.json"),
        fixtures.join("host-ip6-route.json"),
    );
    if want("static") || want("net=dhcp") {
        let out = build(&bin, &dir, "static", &static_toml)?;
        if want("static") {
            let t = util::step("qemu runtime: static address by MAC", || {
                let port = free_port()?;
                let mut vm = Vm::start(&rescue::spec(
                    &out,
                    &dir.join("static.log"),
                    &disk,
                    vec![nic("02:fc:00:00:00:01", lan_net(port, "192.0.2.2"))],
                    // As the boot menus' serial entries: ttyS0 first, tty0 last (the
                    // kernel's /dev/console); recover runs on ttyS0.
                    "console=tty0 mkrescue.recover=ask",
                    None,
                ))?;
                let ready = vm.wait_ready()?;
                let s = Ssh { port, key: &key };
                s.expect("ip -4 addr show", "inet 192.0.2.2/24")?;
                s.expect("ip -4 route show", "default via 192.0.2.1")?;
                s.expect("ip -6 addr show", "inet6 fd00::2/64")?;
                s.expect("ip -6 route show", "default via fd00::1")?;
                // mkrescue.recover=ask: recover ran on ttyS0 (its own messages are
                // on the serial console), init reported its end, and ttyS0 then
                // got its shell.
                s.expect(
            "i=0; while [ $i -lt 60 ] && ! grep -q '^mkrescue: recover ' /run/mkrescue/init.log; do sleep 1; i=$((i+1)); done; cat /run/mkrescue/init.log",
            "mkrescue.recover=ask: running mkrescue recover on /dev/ttyS0",
        )?;
                s.expect(
            "i=0; while [ $i -lt 20 ]; do for p in /proc/[0-9]*; do [ \"$(readlink $p/fd/0)\" = /dev/ttyS0 ] && cat $p/comm; done | grep -qx bash && echo shell-on-ttyS0 && break; sleep 1; i=$((i+1)); done",
            "shell-on-ttyS0",
        )?;
                let serial = vm.serial();
                for want in [
                    "questions and answers on this console",
                    "mkrescue: recover ",
                    "mkrescue rescue system of",
                ] {
                    if !serial.contains(want) {
                        bail!("`{want}` is not on the serial console after mkrescue.recover=ask");
                    }
                }
                // Between init's heading and its report of the end: what recover
                // itself printed, so its output went to this console.
                let after = serial
                    .split("questions and answers on this console")
                    .nth(1)
                    .unwrap_or_default();
                let own = after
                    .split("mkrescue: recover finished")
                    .next()
                    .unwrap_or_default()
                    .split("mkrescue: recover failed")
                    .next()
                    .unwrap_or_default();
                if !own
                    .lines()
                    .any(|l| l.contains("mkrescue") && !l.contains("over SSH"))
                {
                    bail!("nothing of recover's own output on ttyS0:\n{after}");
                }
                vm.poweroff(&s)?;
                Ok(ready)
            })?;
            times.push(("static", t));
        }

        // 3. mkrescue.net=dhcp never brings up the host's address.
        if want("net=dhcp") {
            let t = util::step("qemu runtime: net=dhcp, recover=auto, udev=off", || {
                let port = free_port()?;
                let mut vm = Vm::start(&rescue::spec(
                    &out,
                    &dir.join("netdhcp.log"),
                    &disk,
                    vec![nic("02:fc:00:00:00:01", lan_net(port, "192.0.2.15"))],
                    "mkrescue.net=dhcp mkrescue.recover=auto mkrescue.udev=off",
                    None,
                ))?;
                let ready = vm.wait_ready()?;
                let s = Ssh { port, key: &key };
                let addrs = s.expect("ip -4 addr show", "inet 192.0.2.15/24")?;
                s.expect(
            "grep -q 'hardware ready (modalias)' /run/mkrescue/init.log && test -b /dev/vda && grep -q '^virtio_blk ' /proc/modules && echo modalias-ok",
            "modalias-ok",
        )?;
                if addrs.contains("192.0.2.2/") {
                    bail!("mkrescue.net=dhcp brought up the host's static address:\n{addrs}");
                }
                // recover=auto ran `mkrescue recover --unattended` and said how it
                // ended (finished or failed) on the console and in the init log.
                s.expect(
                    "grep -E '^mkrescue: recover (finished|failed)' /run/mkrescue/init.log",
                    "mkrescue: recover ",
                )?;
                if !vm.serial().contains("mkrescue: recover ") {
                    bail!("the recover result is not on the serial console");
                }
                vm.poweroff(&s)?;
                Ok(ready)
            })?;
            times.push(("net=dhcp", t));
        }
    }

    if want("bond") {
        // 4. Bond, bridge and VLAN from the capture of such a host.
        let bond_dir = fixtures.join("bond-bridge-vlan");
        let bond_toml = format!(
            "{ssh_toml}[network]\nip_addr_json = {:?}\nip4_route_json = {:?}\nip6_route_json = {:?}\n",
            bond_dir.join("ip-addr.json"),
            bond_dir.join("ip4-route.json"),
            bond_dir.join("ip6-route.json"),
        );
        let out = build(&bin, &dir, "bond", &bond_toml)?;
        let t = util::step("qemu runtime: bond + bridge + VLAN by MAC", || {
            let (p1, p2) = (free_port()?, free_port()?);
            // Two user networks, one per slave, both 192.0.2.0/24 like the
            // captured host's LAN; SSH reaches br0's address through either.
            let mut vm = Vm::start(&rescue::spec(
                &out,
                &dir.join("bond.log"),
                &disk,
                vec![
                    nic("02:fc:00:00:01:01", lan_net(p1, "192.0.2.2")),
                    nic("02:fc:00:00:01:02", lan_net(p2, "192.0.2.2")),
                ],
                "",
                None,
            ))?;
            let ready = vm.wait_ready()?;
            // active-backup sends through one slave only, normally the first.
            let s1 = Ssh {
                port: p1,
                key: &key,
            };
            let s2 = Ssh {
                port: p2,
                key: &key,
            };
            let s = if s1.expect("echo via-first", "via-first").is_ok() {
                s1
            } else {
                s2
            };
            let bond = s.expect("cat /proc/net/bonding/bond0", "Bonding Mode")?;
            for want in [
                "fault-tolerance (active-backup)",
                "MII Polling Interval (ms): 100",
                // Both NICs, found by MAC (here they are eth0 and eth1, on
                // the captured host eth1 and eth2).
                "Permanent HW addr: 02:fc:00:00:01:01",
                "Permanent HW addr: 02:fc:00:00:01:02",
            ] {
                if !bond.contains(want) {
                    bail!("bond0 lacks `{want}`:\n{bond}");
                }
            }
            s.expect("ip -d link show bond0", "master br0")?;
            s.expect("ip -d link show br0", "bridge forward_delay")?;
            s.expect("ip -d link show br0.42", "vlan protocol 802.1Q id 42")?;
            s.expect("ip -4 addr show br0", "inet 192.0.2.2/24")?;
            s.expect("ip -6 addr show br0", "inet6 fd00::2/64")?;
            s.expect("ip -4 addr show br0.42", "inet 198.51.100.2/24")?;
            s.expect("ip -4 route show", "default via 192.0.2.1 dev br0")?;
            s.expect(
                "ip -4 route show",
                "203.0.113.0/24 via 198.51.100.1 dev br0.42",
            )?;
            // The slaves carry no address of their own.
            let slaves = s.expect(
                "for d in /sys/class/net/bond0/lower_*; do ip -4 addr show ${d##*lower_}; done; echo end",
                "end",
            )?;
            if slaves.contains("inet ") {
                bail!("a bond slave has an address:\n{slaves}");
            }
            vm.poweroff(&s)?;
            Ok(ready)
        })?;
        times.push(("bond", t));
    }

    // 5. The backup on the ISO, read back in the rescue system.
    if want("iso-backup") {
        let t = util::step(
            "qemu runtime: --iso-backup read and restored in the rescue system",
            || iso_backup(&bin, &dir, &disk, &key, &ssh_toml),
        )?;
        times.push(("iso-backup", t));
    }

    // 6. nfs:// and cifs:// targets against real servers on this side.
    if want("shares") {
        let t = util::step(
            "qemu runtime: backup, verify and restore over nfs:// and cifs://",
            || shares::run(&bin, &dir, &disk, &key, &ssh_toml),
        )?;
        times.push(("shares", t));
    }

    for (name, r) in times {
        eprintln!(
            "boot to ready ({name}): {:.1}s guest uptime, {:.1}s wall",
            r.uptime, r.wall
        );
    }
    Ok(())
}

/// A backup of a small tree made here, an ISO built with `--iso-backup`,
/// the rescue system booted from the ISO's kernel and initrd with the ISO
/// as its CD-ROM: it mounts /dev/sr0, lists the backup and restores it.
fn iso_backup(bin: &Path, dir: &Path, disk: &Path, key: &Path, ssh_toml: &str) -> Result<Ready> {
    let bin_s = bin.to_str().context("non-UTF-8 path")?;
    let abs = std::path::absolute(dir).context("resolving target/qemu/runtime")?;
    let src = abs.join("iso-backup-src");
    let target = abs.join("iso-backup-target");
    for d in [&src, &target] {
        let _ = std::fs::remove_dir_all(d);
    }
    std::fs::create_dir_all(src.join("srv"))?;
    // mkrescue never creates a backup target.
    std::fs::create_dir_all(&target)?;
    // No etc/hostname in the tree: the backup is named after this host,
    // like the ISO.
    std::fs::write(src.join("srv/payload.txt"), "carried on the ISO\n")?;
    let url = format!("file://{}", target.display());
    util::run(
        bin_s,
        &[
            "backup",
            "--root",
            src.to_str().context("non-UTF-8 path")?,
            "--target",
            &url,
        ],
    )?;
    let name = std::fs::read_dir(&target)?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .find_map(|n| n.strip_suffix(".manifest.zst").map(str::to_string))
        .with_context(|| format!("no backup manifest in {}", target.display()))?;
    let cfg = abs.join("iso-backup.toml");
    std::fs::write(&cfg, format!("{ssh_toml}[backup]\ntarget = {url:?}\n"))?;
    let out = abs.join("iso-backup");
    util::run(
        bin_s,
        &[
            "--config",
            cfg.to_str().context("non-UTF-8 path")?,
            "--output",
            "iso",
            "--iso-backup",
            "--out",
            out.to_str().context("non-UTF-8 path")?,
        ],
    )?;
    let port = free_port()?;
    let iso = out.join("mkrescue.iso");
    let mut vm = Vm::start(&rescue::spec(
        &out,
        &dir.join("iso-backup.log"),
        disk,
        vec![nic("52:54:00:6d:6b:01", ssh_net(port))],
        "",
        Some(&iso),
    ))?;
    let ready = vm.wait_ready()?;
    let s = Ssh { port, key };
    s.expect(
        "mkdir -p /mnt/cd && mount -o ro /dev/sr0 /mnt/cd && ls /mnt/cd/backup",
        ".tar.zst",
    )?;
    s.expect("mkrescue backup list --target file:///mnt/cd/backup", &name)?;
    s.expect(
        "mkdir -p /tmp/r && mkrescue restore --from file:///mnt/cd/backup --to /tmp/r >/dev/null && cat /tmp/r/srv/payload.txt",
        "carried on the ISO",
    )?;
    vm.poweroff(&s)?;
    Ok(ready)
}
