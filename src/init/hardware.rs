//! Hardware at boot: device nodes and drivers for what the machine has.
//!
//! With the host's udev in the image: `systemd-udevd --daemon`, then
//! `udevadm trigger --action=add` for subsystems and devices and `udevadm
//! settle` (udevadm(8)), so udev loads drivers by modalias (its `kmod`
//! builtin, 80-drivers.rules) and creates `/dev/disk/by-id`, `by-uuid`,
//! `by-path` (60-persistent-storage.rules). Without udev: every
//! `/sys/devices/**/modalias` goes to `modprobe -a`, which looks it up in
//! modules.alias, repeated while new devices appear (a PCI driver brings
//! virtio devices, their drivers bring disks). `mkrescue.udev=off` on the
//! kernel command line chooses the latter.
//!
//! **No auto-assembly of old RAID/LVM metadata.** The disks of the
//! replacement machine may carry md superblocks or LVM labels (the old
//! disks, a previous attempt). Before udev starts, init masks the udev
//! rules that would assemble or activate them: it makes
//! `/etc/udev/rules.d/NAME` a symlink to `/dev/null`, which udev(7) treats
//! as disabling `/lib/udev/rules.d/NAME`, for `64-md-raid-assembly.rules`
//! (`mdadm --incremental`), RHEL's `65-md-incremental.rules`, and LVM's
//! `69-lvm.rules`, `69-lvm-metad.rules`, `69-dm-lvm-metad.rules`
//! (`pvscan --cache --activate ay`). It also writes `AUTO -all` into
//! `/etc/mdadm/mdadm.conf` when the image has none (mdadm.conf(5): no
//! array is assembled without an ARRAY line) and `/etc/lvm/lvmlocal.conf`
//! with `event_activation = 0` and an empty `auto_activation_volume_list`
//! (lvm.conf(5)), so even a manual `vgchange -aay` or `pvscan` activates
//! nothing. The kernel's own md autodetect only runs for a built-in md
//! driver with 0.90 superblocks at boot; Debian builds md as a module.
//! recover assembles and activates explicitly what it needs.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use super::log_line;
use super::run::{command, run, wait};

const UDEVD: &str = "/lib/systemd/systemd-udevd";

/// udev rules that assemble md arrays or activate LVM volumes by themselves.
pub const MASKED_RULES: &[&str] = &[
    "64-md-raid-assembly.rules",
    "65-md-incremental.rules",
    "69-lvm.rules",
    "69-lvm-metad.rules",
    "69-dm-lvm-metad.rules",
];

/// Brings up the hardware (with udev when `udev` and the image has it);
/// returns how it was done, for the log.
pub fn start(udev: bool) -> &'static str {
    block_autoassembly(Path::new("/"));
    if udev && Path::new(UDEVD).exists() && which("udevadm").is_some() {
        if start_udev() {
            return "udev";
        }
        log_line("mkrescue init: udev failed; loading modules by modalias");
    }
    load_modaliases();
    "modalias"
}

/// The masks and config files described in the module doc, below `root`.
pub fn block_autoassembly(root: &Path) {
    let rules = root.join("etc/udev/rules.d");
    let _ = std::fs::create_dir_all(&rules);
    for r in MASKED_RULES {
        let p = rules.join(r);
        let _ = std::fs::remove_file(&p);
        if let Err(e) = std::os::unix::fs::symlink("/dev/null", &p) {
            log_line(&format!("mkrescue init: masking {}: {e}", p.display()));
        }
    }
    let mdadm = root.join("etc/mdadm/mdadm.conf");
    if !mdadm.exists() {
        let _ = std::fs::create_dir_all(root.join("etc/mdadm"));
        let _ = std::fs::write(
            &mdadm,
            "# mkrescue: recover assembles arrays itself; never automatically.\nAUTO -all\n",
        );
    }
    let lvm = root.join("etc/lvm/lvmlocal.conf");
    if !lvm.exists() {
        let _ = std::fs::create_dir_all(root.join("etc/lvm"));
        let _ = std::fs::write(
            &lvm,
            "# mkrescue: recover activates volumes itself; never automatically.\n\
             global {\n\tevent_activation = 0\n}\n\
             activation {\n\tauto_activation_volume_list = []\n}\n",
        );
    }
}

fn start_udev() -> bool {
    // --daemon: the parent returns once the control socket is ready.
    let started = match command(UDEVD, &["--daemon"]).spawn() {
        Ok(child) => wait(child, "systemd-udevd --daemon", Duration::from_secs(10)),
        Err(e) => {
            log_line(&format!("mkrescue init: cannot start {UDEVD}: {e}"));
            false
        }
    };
    if !started {
        return false;
    }
    let t = Duration::from_secs(30);
    run(
        "udevadm",
        &["trigger", "--action=add", "--type=subsystems"],
        t,
    );
    run("udevadm", &["trigger", "--action=add", "--type=devices"], t);
    // Settle's own limit is below ours so it reports what is pending.
    run(
        "udevadm",
        &["settle", "--timeout=60"],
        Duration::from_secs(65),
    );
    true
}

/// Every modalias under /sys/devices (sysfs-bus docs: the file holds the
/// device's alias string, matched against modules.alias).
pub fn modaliases(sys_devices: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    // Symlinks in sysfs point back up the tree (subsystem, driver): not
    // followed (walkdir's default). Unreadable directories are skipped.
    for e in walkdir::WalkDir::new(sys_devices).into_iter().flatten() {
        if e.file_type().is_file()
            && e.file_name() == "modalias"
            && let Ok(s) = std::fs::read_to_string(e.path())
        {
            let s = s.trim();
            if !s.is_empty() {
                out.insert(s.to_string());
            }
        }
    }
    out
}

fn load_modaliases() {
    let mut seen = BTreeSet::new();
    // Each round's drivers may add devices; five rounds cover
    // bus → controller → disk chains with room to spare.
    for _ in 0..5 {
        let new: Vec<String> = modaliases(Path::new("/sys/devices"))
            .into_iter()
            .filter(|a| seen.insert(a.clone()))
            .collect();
        if new.is_empty() {
            break;
        }
        let mut args = vec!["-a", "-q", "-b"];
        args.extend(new.iter().map(String::as_str));
        // Aliases without a module make modprobe exit non-zero; normal.
        let _ = command("modprobe", &args)
            .spawn()
            .map(|c| wait(c, "modprobe -a (modaliases)", Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A program in init's PATH.
pub fn which(name: &str) -> Option<std::path::PathBuf> {
    super::PATH
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_md_and_lvm_rules() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc/udev/rules.d")).unwrap();
        // A host copy of the rule in /etc must not survive.
        std::fs::write(
            d.path().join("etc/udev/rules.d/69-lvm.rules"),
            "RUN+=\"pvscan\"",
        )
        .unwrap();
        block_autoassembly(d.path());
        for r in MASKED_RULES {
            let l = std::fs::read_link(d.path().join("etc/udev/rules.d").join(r)).unwrap();
            assert_eq!(l, Path::new("/dev/null"));
        }
        let md = std::fs::read_to_string(d.path().join("etc/mdadm/mdadm.conf")).unwrap();
        assert!(md.lines().any(|l| l == "AUTO -all"));
        let lvm = std::fs::read_to_string(d.path().join("etc/lvm/lvmlocal.conf")).unwrap();
        assert!(lvm.contains("event_activation = 0"));
    }

    #[test]
    fn modaliases_of_a_sysfs_tree() {
        let d = tempfile::tempdir().unwrap();
        let dev = d.path().join("pci0000:00/0000:00:03.0");
        std::fs::create_dir_all(dev.join("virtio0")).unwrap();
        std::fs::write(dev.join("modalias"), "pci:v00001AF4d00001000sv\n").unwrap();
        std::fs::write(dev.join("virtio0/modalias"), "virtio:d00000001v00001AF4\n").unwrap();
        std::os::unix::fs::symlink(&dev, dev.join("virtio0/loop")).unwrap();
        let a = modaliases(d.path());
        assert_eq!(a.len(), 2);
        assert!(a.contains("virtio:d00000001v00001AF4"));
    }
}
