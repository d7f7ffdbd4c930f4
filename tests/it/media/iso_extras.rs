//! What the ISO carries beyond the rescue system, checked with independent
//! tools (xorriso's own reader, mtools): the newest archive backup of this
//! host (`--iso-backup`), also when its archive is over 4 GiB (ISO level
//! 3), and the Secure Boot ESP (`output.secure_boot`: Debian's signed shim
//! as BOOTX64.EFI, signed GRUB as grubx64.efi).
//!
//! Needs root (backups keep owners), a kernel with modules in /boot, the
//! boot loader packages and shim-signed + grub-efi-amd64-signed (`cargo
//! xtask deps`). The > 4 GiB test writes a ~5 GiB ISO into a temp dir.

use crate::support::media::ok;

use std::path::Path;
use std::process::{Command, Output};

fn mkrescue(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .args(args)
        .args(["--config-dir", "/nonexistent-mkrescue-test"])
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("MKRESCUE_ROOT")
        .output()
        .expect("running mkrescue")
}

/// stdout and stderr together (xorriso reports on both).
fn run_all(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `mkrescue backup` of a small tree into `target`; returns the name.
fn backup(src: &Path, target: &Path) -> String {
    let o = ok(mkrescue(&[
        "backup",
        "--root",
        s(src),
        "--target",
        &format!("file://{}", target.display()),
        "--json",
    ]));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    j["name"].as_str().unwrap().to_string()
}

/// Extracts `inside` from the ISO into `to`.
fn extract(iso: &Path, inside: &str, to: &Path) {
    run_all(
        Command::new("xorriso")
            .args(["-osirrox", "on", "-indev"])
            .arg(iso)
            .args(["-extract", inside])
            .arg(to),
    );
}

/// `--iso-backup` looks archives up by the host name `backup` names them
/// by, also when /etc/hostname and the kernel's name differ. (They were two
/// lookups: `backup` read /etc/hostname, the build read
/// /proc/sys/kernel/hostname first, and the ISO silently had no backup.)
#[test]
fn iso_backup_looks_up_the_name_backup_gave() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let name = "isohost-etc-name";
    let kernel = mkrescue::sys::host::kernel_hostname().unwrap_or_else(|| "kernelname".into());
    assert_ne!(kernel, name);
    let write = |p: &str, text: &str| {
        let p = root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("etc/hostname", &format!("{name}\n"));
    // What the build's lookup used to read first under --root.
    write("proc/sys/kernel/hostname", &format!("{kernel}\n"));
    // A kernel with modules: the build's host facts need one.
    write("boot/vmlinuz-6.1.0-test", "");
    write("lib/modules/6.1.0-test/modules.dep", "");
    let target = dir.path().join("backups");
    std::fs::create_dir_all(&target).unwrap();
    let archive = backup(&root, &target);
    assert!(archive.starts_with(&format!("{name}-")), "{archive}");

    // What `--output iso --iso-backup` does with the host facts.
    let host = mkrescue::host::HostFacts::detect(&root, None).unwrap();
    assert_eq!(host.hostname, name);
    let mut cfg = mkrescue::config::Config::default();
    cfg.backup.target = Some(format!("file://{}", target.display()));
    let found = mkrescue::output::isobackup::newest(&cfg, &host.hostname, &dir.path().join("work"))
        .unwrap();
    assert_eq!(found.name, archive);
}

#[test]
fn iso_carries_this_hosts_newest_backup_even_over_4_gib() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("backups");
    std::fs::create_dir_all(&target).unwrap();
    // This host's tree (no etc/hostname: the backup is named after this
    // machine, like the build) and, newer, another host's.
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("srv")).unwrap();
    std::fs::write(src.join("srv/data"), "payload\n").unwrap();
    let older = backup(&src, &target);
    // Names end in a UTC stamp of seconds.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let newest = backup(&src, &target);
    assert_ne!(older, newest);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let other = dir.path().join("other");
    std::fs::create_dir_all(other.join("etc")).unwrap();
    std::fs::write(other.join("etc/hostname"), "otherhost\n").unwrap();
    let foreign = backup(&other, &target);
    assert!(foreign.starts_with("otherhost-"), "{foreign}");

    // The archive grows past 4 GiB (sparse: its tail is a hole).
    let archive = target.join(format!("{newest}.tar.zst"));
    let big: u64 = (5 << 30) + 12345;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&archive)
        .unwrap()
        .set_len(big)
        .unwrap();

    let cfg = dir.path().join("site.toml");
    std::fs::write(
        &cfg,
        format!("[backup]\ntarget = \"file://{}\"\n", target.display()),
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = ok(mkrescue(&[
        "--config",
        s(&cfg),
        "--modules",
        "host",
        "--output",
        "iso",
        "--iso-backup",
        "--out",
        s(&out),
    ]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("backup {newest}")), "{err}");
    let iso = out.join("mkrescue.iso");
    // xorriso's own reader lists the file with its full size: the image
    // records it as a multi-extent file (ISO level 3).
    let listing = run_all(
        Command::new("xorriso")
            .arg("-indev")
            .arg(&iso)
            .args(["-lsl", "/backup"]),
    );
    let line = listing
        .lines()
        .find(|l| l.contains(&format!("{newest}.tar.zst")))
        .unwrap_or_else(|| panic!("no archive in the ISO:\n{listing}"));
    assert!(line.contains(&big.to_string()), "{line}");
    assert!(
        listing.contains(&format!("{newest}.manifest.zst")),
        "{listing}"
    );
    assert!(
        !listing.contains(&older),
        "older backup on the ISO:\n{listing}"
    );
    assert!(
        !listing.contains(&foreign),
        "another host's backup on the ISO:\n{listing}"
    );
    // The manifest comes back byte for byte.
    let back = dir.path().join("manifest-from-iso");
    extract(&iso, &format!("/backup/{newest}.manifest.zst"), &back);
    assert_eq!(
        std::fs::read(&back).unwrap(),
        std::fs::read(target.join(format!("{newest}.manifest.zst"))).unwrap()
    );
    assert!(!out.join(".iso-backup").exists());
}

#[test]
fn iso_backup_without_a_backup_is_refused_before_building() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("empty");
    std::fs::create_dir_all(&target).unwrap();
    let cfg = dir.path().join("site.toml");
    std::fs::write(
        &cfg,
        format!("[backup]\ntarget = \"file://{}\"\n", target.display()),
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = mkrescue(&[
        "--config",
        s(&cfg),
        "--output",
        "iso",
        "--iso-backup",
        "--out",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(5), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no complete backup at file://") && err.contains("run `mkrescue backup`"),
        "{err}"
    );
    assert!(!out.join("initrd.img").exists(), "built before refusing");

    // Without a target at all, and with a method whose backups cannot go
    // onto a disc: configuration errors naming the key.
    let o = mkrescue(&["--output", "iso", "--iso-backup", "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("backup.target"));
    std::fs::write(
        &cfg,
        "[backup]\nmethod = \"borg\"\nborg_repo = \"/srv/borg\"\n",
    )
    .unwrap();
    let o = mkrescue(&[
        "--config",
        s(&cfg),
        "--output",
        "iso",
        "--iso-backup",
        "--out",
        s(&out),
    ]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("backup.method is borg"),
        "{o:?}"
    );
    // Only an ISO carries it.
    let o = mkrescue(&["--output", "usb", "--iso-backup", "--image", "x.img"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}

/// The files in the ISO's ESP image, by `mdir` (mtools).
fn esp_listing(iso: &Path, dir: &Path) -> (String, std::path::PathBuf) {
    let esp = dir.join("efiboot.img");
    extract(iso, "/boot/efiboot.img", &esp);
    let l = run_all(
        Command::new("mdir")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-b", "-i"])
            .arg(&esp)
            .arg("::/EFI/BOOT"),
    );
    (l, esp)
}

fn esp_file(esp: &Path, inside: &str) -> Vec<u8> {
    let o = Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(esp)
        .arg(format!("::{inside}"))
        .arg("-")
        .output()
        .unwrap();
    assert!(o.status.success(), "mcopy {inside}: {o:?}");
    o.stdout
}

#[test]
fn secure_boot_esp_has_signed_shim_and_grub() {
    const SHIM: &str = "/usr/lib/shim/shimx64.efi.signed";
    const GRUB: &str = "/usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed";
    const MM: &str = "/usr/lib/shim/mmx64.efi.signed";
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("site.toml");
    std::fs::write(&cfg, "[output]\nsecure_boot = \"on\"\n").unwrap();
    let out = dir.path().join("out");
    ok(mkrescue(&[
        "--config",
        s(&cfg),
        "--modules",
        "host",
        "--output",
        "iso",
        "--out",
        s(&out),
    ]));
    let iso = out.join("mkrescue.iso");
    let (l, esp) = esp_listing(&iso, dir.path());
    let names: Vec<String> = l
        .lines()
        .map(|p| p.rsplit('/').next().unwrap_or(p).to_ascii_lowercase())
        .collect();
    for want in ["bootx64.efi", "grubx64.efi", "mmx64.efi"] {
        assert!(names.iter().any(|n| n == want), "{want} missing:\n{l}");
    }
    assert!(!names.iter().any(|n| n.starts_with("fbx64")), "{l}");
    assert_eq!(
        esp_file(&esp, "/EFI/BOOT/BOOTX64.EFI"),
        std::fs::read(SHIM).unwrap()
    );
    assert_eq!(
        esp_file(&esp, "/EFI/BOOT/grubx64.efi"),
        std::fs::read(GRUB).unwrap()
    );
    assert_eq!(
        esp_file(&esp, "/EFI/BOOT/mmx64.efi"),
        std::fs::read(MM).unwrap()
    );
    // The signed GRUB finds its medium by /.disk/info and reads
    // /boot/grub/grub.cfg there.
    let listing = run_all(Command::new("xorriso").arg("-indev").arg(&iso).args([
        "-lsl",
        "/.disk/info",
        "/boot/grub/grub.cfg",
    ]));
    assert!(
        listing.contains("/.disk/info") || listing.contains("'info'"),
        "{listing}"
    );

    // `off`: the GRUB built here, alone, not the shim.
    std::fs::write(&cfg, "[output]\nsecure_boot = \"off\"\n").unwrap();
    ok(mkrescue(&[
        "--config",
        s(&cfg),
        "--modules",
        "host",
        "--output",
        "iso",
        "--out",
        s(&out),
    ]));
    let (l, esp) = esp_listing(&iso, dir.path());
    assert_eq!(l.lines().count(), 1, "{l}");
    assert_ne!(
        esp_file(&esp, "/EFI/BOOT/BOOTX64.EFI"),
        std::fs::read(SHIM).unwrap()
    );
}

#[test]
fn secure_boot_value_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("site.toml");
    std::fs::write(&cfg, "[output]\nsecure_boot = \"yes\"\n").unwrap();
    let o = mkrescue(&["dump", "--config", s(&cfg)]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("secure_boot"), "{err}");
}
