//! Hosts of one OS release and kernel share one PXE base (issue 23): this
//! host's build in temporary roots that differ only in configuration, as
//! hosts of a fleet do. Each root is this machine's /usr, /boot, /proc,
//! /sys and dpkg database bind-mounted read-only inside a private mount
//! namespace (`unshare --mount`: gone with the build's process) and its own
//! copy of /etc, edited per host; network addresses come from captured
//! `ip -j` outputs (tests/fixtures/network) with the host's own addresses.
//! Nothing of this machine's is written.
//!
//! Then `mkrescue pxe prune` on the tree the builds share.
//!
//! Needs root (mount namespaces), unshare (util-linux), a kernel with
//! modules in /boot, the boot loader packages (`cargo xtask deps`) and jq
//! (the "extra tool" of one host).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::media::ok;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A root of this machine with its own copy of /etc (`edit` changes it)
/// and a configuration file giving it network addresses 192.0.2.`n` and
/// fd00::`n`, plus `extra_config` lines.
struct FleetHost {
    root: PathBuf,
    config: PathBuf,
}

fn fleet_host(dir: &Path, name: &str, n: u8, extra_config: &str) -> FleetHost {
    let root = dir.join(name);
    for d in [
        "usr",
        "boot",
        "proc",
        "sys",
        "var/lib/dpkg",
        "root",
        "dev",
        "run",
        "tmp",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    // The merged-/usr links as they are.
    for top in ["bin", "sbin", "lib", "lib64"] {
        if let Ok(t) = std::fs::read_link(Path::new("/").join(top)) {
            std::os::unix::fs::symlink(t, root.join(top)).unwrap();
        }
    }
    let cp = Command::new("cp")
        .args(["-a", "/etc/."])
        .arg(root.join("etc"))
        .output()
        .unwrap();
    assert!(cp.status.success(), "{cp:?}");
    let etc = root.join("etc");
    std::fs::write(etc.join("hostname"), format!("{name}\n")).unwrap();
    std::fs::write(
        etc.join("hosts"),
        format!("127.0.0.1 localhost\n192.0.2.{n} {name}.example {name}\n"),
    )
    .unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/network");
    let mut files = Vec::new();
    for f in [
        "host-ip-addr.json",
        "host-ip4-route.json",
        "host-ip6-route.json",
    ] {
        let text = std::fs::read_to_string(fixtures.join(f))
            .unwrap()
            .replace("192.0.2.2\"", &format!("192.0.2.{n}\""))
            .replace("fd00::2\"", &format!("fd00::{n}\""));
        let p = dir.join(format!("{name}-{f}"));
        std::fs::write(&p, text).unwrap();
        files.push(p);
    }
    // The running binary (outside the root) becomes /usr/bin/mkrescue; its
    // libraries are the root's: nothing of it needs to be in the root.
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "{extra_config}\n[network]\nip_addr_json = {:?}\nip4_route_json = {:?}\nip6_route_json = {:?}\n",
            files[0], files[1], files[2]
        ),
    )
    .unwrap();
    FleetHost { root, config }
}

/// `mkrescue --output pxe` of `host` into `pxe_root`, in a mount namespace
/// of its own where the host's system directories are this machine's.
fn build(host: &FleetHost, pxe_root: &Path) -> serde_json::Value {
    let script = r#"set -e
for d in usr boot var/lib/dpkg; do mount --bind -o ro "/$d" "$R/$d"; done
mount --rbind /proc "$R/proc"
mount --rbind /sys "$R/sys"
exec "$@""#;
    let o: Output = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(std::fs::canonicalize(env!("CARGO_BIN_EXE_mkrescue")).unwrap())
        .args(["--config-dir", "/nonexistent-mkrescue-test", "--root"])
        .arg(&host.root)
        .arg("--config")
        .arg(&host.config)
        .args(["--output", "pxe", "--pxe-root"])
        .arg(pxe_root)
        .args(["--out"])
        .arg(host.root.with_extension("out"))
        .arg("--json")
        .env("R", &host.root)
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("MKRESCUE_ROOT")
        .output()
        .expect("unshare (util-linux)");
    let o = ok(o);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    j["media"]["pxe"].clone()
}

/// The paths in one layer (zstd-compressed newc), as GNU cpio lists them.
fn listing(layer: &Path) -> BTreeSet<String> {
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!("zstd -dc '{}' | cpio -it --quiet", layer.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The content of one file of a layer.
fn extract(layer: &Path, inside: &str) -> String {
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "zstd -dc '{}' | cpio -i --quiet --to-stdout '{inside}'",
            layer.display()
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Makes `p` two hours old: older than the grace of `pxe prune`.
fn age(p: &Path) {
    let then = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(then)
        .unwrap();
}

fn path(v: &serde_json::Value) -> PathBuf {
    PathBuf::from(v.as_str().unwrap())
}

#[test]
fn pxe_hosts_differing_in_configuration_share_one_base() {
    assert!(
        mkrescue::sys::host::is_root(),
        "this test needs root (mount namespaces); run it as root like CI does"
    );
    let jq = Path::new("/usr/bin/jq");
    assert!(
        jq.is_file(),
        "this test needs jq as the extra tool (apt-get install jq)"
    );
    let dir = tempfile::tempdir().unwrap();
    let tftp = dir.path().join("tftp");

    let a = fleet_host(dir.path(), "fleet-a", 11, "");
    // b: another name, one more user, an extra configuration file, other
    // addresses.
    let b = fleet_host(dir.path(), "fleet-b", 12, "");
    let etc = b.root.join("etc");
    for (f, line) in [
        ("passwd", "alice:x:1001:1001:Alice:/home/alice:/bin/bash\n"),
        ("group", "alice:x:1001:\n"),
        ("shadow", "alice:!:20000:0:99999:7:::\n"),
    ] {
        let mut t = std::fs::read_to_string(etc.join(f)).unwrap();
        t.push_str(line);
        std::fs::write(etc.join(f), t).unwrap();
    }
    std::fs::create_dir_all(etc.join("modprobe.d")).unwrap();
    std::fs::write(
        etc.join("modprobe.d/fleet-b.conf"),
        "options loop max_loop=16\n",
    )
    .unwrap();

    let ra = build(&a, &tftp);
    let rb = build(&b, &tftp);
    assert_eq!(ra["base_shared"], false, "{ra}");
    assert_eq!(rb["base_shared"], true, "b found a's base: {rb}");
    assert_eq!(ra["base_name"], rb["base_name"]);
    let base = path(&ra["base"]);
    assert_eq!(
        std::fs::read_dir(tftp.join("mkrescue/base"))
            .unwrap()
            .count(),
        1,
        "one base for both"
    );
    for r in [&ra, &rb] {
        let bytes = r["host_bytes"].as_u64().unwrap();
        assert!(bytes <= 100_000, "host layer of {bytes} bytes: {r}");
        assert_eq!(std::fs::metadata(path(&r["host"])).unwrap().len(), bytes);
    }
    // Each host layer is its own host's.
    let hb = path(&rb["host"]);
    // The name is in the host facts and the motd (no /etc/hostname: the
    // rescue system takes its name from the facts).
    assert!(extract(&hb, "etc/mkrescue/host.json").contains("\"fleet-b\""));
    assert!(extract(&hb, "etc/motd").contains("fleet-b"));
    assert!(extract(&hb, "etc/passwd").contains("\nalice:x:1001:"));
    assert!(extract(&hb, "etc/modprobe.d/fleet-b.conf").contains("max_loop=16"));
    assert!(extract(&hb, "etc/mkrescue/network.json").contains("192.0.2.12"));
    assert!(extract(&path(&ra["host"]), "etc/mkrescue/network.json").contains("192.0.2.11"));
    // The base holds no identity or configuration of either.
    let in_base = listing(&base);
    for f in [
        "etc/motd",
        "etc/mkrescue/host.json",
        "etc/passwd",
        "etc/group",
        "etc/hosts",
        "etc/mkrescue/network.json",
    ] {
        assert!(!in_base.contains(f), "{f} is in the base");
    }
    assert!(in_base.contains("usr/bin/mkrescue") && in_base.contains("init"));

    // c: one extra tool. Its layer has the tool and the libraries the base
    // lacks, and nothing else more than a's.
    let c = fleet_host(dir.path(), "fleet-c", 13, "[tools]\noptional = [\"jq\"]\n");
    // An unreferenced base from an older kernel: the prune below removes it.
    let stale = format!("mkrescue/base/{}.img", "e".repeat(64));
    std::fs::write(tftp.join(&stale), b"an old base\n").unwrap();
    age(&tftp.join(&stale));
    let rc = build(&c, &tftp);
    assert_eq!(rc["base_name"], ra["base_name"], "{rc}");
    assert_eq!(rc["base_shared"], true);
    let host_a = listing(&path(&ra["host"]));
    let host_c = listing(&path(&rc["host"]));
    let more: BTreeSet<&String> = host_c.difference(&host_a).collect();
    assert!(more.contains(&"usr/bin/jq".to_string()), "{more:?}");
    assert!(
        more.iter().any(|p| p.contains("/libjq.so"))
            && more.iter().any(|p| p.contains("/libonig.so")),
        "jq's own libraries come with it: {more:?}"
    );
    for p in &more {
        assert!(!in_base.contains(*p), "{p} is in the base and c's layer");
        assert!(
            p.contains("jq") || p.contains("onig"),
            "c's layer has {p}, which is not jq's"
        );
    }
    assert!(
        host_c.iter().all(|p| !p.ends_with("/libc.so.6")),
        "libc is the base's"
    );
    // The tool costs its own size (and its libraries'), no more: the
    // growth of the compressed layer is at most their uncompressed bytes.
    let c_bytes = rc["host_bytes"].as_u64().unwrap();
    let a_bytes = ra["host_bytes"].as_u64().unwrap();
    let tool_bytes: u64 = more
        .iter()
        .map(|p| {
            std::fs::symlink_metadata(Path::new("/").join(p))
                .unwrap()
                .len()
        })
        .sum();
    assert!(c_bytes > a_bytes, "c's layer grew by jq: {rc}");
    assert!(
        c_bytes - a_bytes <= tool_bytes,
        "c's layer grew by {} bytes for {tool_bytes} bytes of jq: {rc}",
        c_bytes - a_bytes
    );

    // The recovery server's prune: the stale base goes, with its line in
    // SHA256SUMS; the shared one stays.
    let prune = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mkrescue"))
            .args(["pxe", "prune", "--pxe-root", s(&tftp)])
            .args(extra)
            .output()
            .unwrap()
    };
    let sums = std::fs::read_to_string(tftp.join("SHA256SUMS")).unwrap();
    assert!(sums.contains(&stale), "{sums}");
    let dry = ok(prune(&["--dry-run", "--json"]));
    let j: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(j["removed"], serde_json::json!([stale]), "{j}");
    assert!(tftp.join(&stale).exists(), "--dry-run removes nothing");
    let done = ok(prune(&[]));
    let text = String::from_utf8_lossy(&done.stdout);
    assert!(text.contains(&format!("removed {stale}")), "{text}");
    assert!(!tftp.join(&stale).exists());
    assert!(base.exists(), "the base every menu names stays");
    ok(Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .arg("verify")
        .arg(&tftp)
        .output()
        .unwrap());
    // Nothing left to prune: exit 0, nothing removed.
    let again: serde_json::Value = serde_json::from_slice(&ok(prune(&["--json"])).stdout).unwrap();
    assert_eq!(again["removed"], serde_json::json!([]));
}

#[test]
fn pxe_prune_refuses_a_directory_that_is_no_pxe_root() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .args(["pxe", "prune", "--pxe-root", s(dir.path())])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("not a PXE root") && err.contains("--pxe-root"),
        "{err}"
    );
}

/// Menus that name a base that is gone: a warning naming the fix, the
/// rest pruned.
#[test]
fn pxe_prune_keeps_what_any_menu_names_and_warns_about_missing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let (a, b, gone, k) = (
        "a".repeat(64),
        "b".repeat(64),
        "f".repeat(64),
        "c".repeat(64),
    );
    let write = |p: &str, t: &str| {
        std::fs::create_dir_all(r.join(p).parent().unwrap()).unwrap();
        std::fs::write(r.join(p), t).unwrap();
    };
    let old = |p: &str, t: &str| {
        write(p, t);
        age(&r.join(p));
    };
    old(&format!("mkrescue/base/{a}.img"), "a");
    old(&format!("mkrescue/base/{b}.img"), "b");
    old(&format!("mkrescue/kernel/{k}.vmlinuz"), "k");
    old(
        &format!("mkrescue/kernel/{}.vmlinuz", "d".repeat(64)),
        "old kernel",
    );
    // Unreferenced but just written: a build that has not written its
    // menus yet. Kept.
    let fresh = format!("mkrescue/base/{}.img", "9".repeat(64));
    write(&fresh, "fresh");
    // a is only named by an iPXE script, the kernel only by GRUB.
    write(
        "mkrescue/hosts/h1/boot.ipxe",
        &format!("initrd ../../base/{a}.img\ninitrd host.img\n"),
    );
    write(
        "grub/grub.cfg-01-02-00-00-00-00-01",
        &format!("linux /mkrescue/kernel/{k}.vmlinuz\ninitrd /mkrescue/base/{gone}.img\n"),
    );
    let o = Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .args(["pxe", "prune", "--json", "--pxe-root", s(r)])
        .output()
        .unwrap();
    let o = ok(o);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        j["removed"],
        serde_json::json!([
            format!("mkrescue/base/{b}.img"),
            format!("mkrescue/kernel/{}.vmlinuz", "d".repeat(64))
        ])
    );
    assert_eq!(
        j["kept"],
        serde_json::json!([
            format!("mkrescue/base/{a}.img"),
            format!("mkrescue/kernel/{k}.vmlinuz")
        ])
    );
    assert_eq!(
        j["missing"],
        serde_json::json!([format!("mkrescue/base/{gone}.img")])
    );
    assert_eq!(j["recent"], serde_json::json!([fresh]));
    assert!(r.join(&fresh).exists());
    assert!(r.join(format!("mkrescue/base/{a}.img")).exists());
    assert!(!r.join(format!("mkrescue/base/{b}.img")).exists());
    // Human output: the warning on stderr names the fix.
    let o = Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .args(["pxe", "prune", "--pxe-root", s(r)])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&ok(o).stderr).into_owned();
    assert!(
        err.contains(&gone) && err.contains("mkrescue --output pxe"),
        "{err}"
    );
}
