//! The boot media of this machine, checked with independent tools (no VM;
//! `cargo xtask qemu media` boots them): the ISO's El Torito catalogue has a
//! BIOS and a UEFI entry and a hybrid MBR/GPT, the USB image's partitions,
//! boot code and file systems, the PXE tree with its base + host layers, and
//! `mkrescue verify` catching a changed file.
//!
//! Needs a kernel with modules in /boot and /lib/modules and the boot loader
//! packages (`cargo xtask deps`).

use crate::support::media::{mkrescue, ok};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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

fn verify(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .arg("verify")
        .arg(dir)
        .output()
        .expect("running mkrescue verify")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn iso_is_hybrid_bios_and_uefi_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cfg = dir.path().join("site.toml");
    std::fs::write(&cfg, "[output]\nvolume_id = \"RESCUE_TEST\"\n").unwrap();
    ok(mkrescue(&[
        "--config",
        s(&cfg),
        "--output",
        "iso",
        "--out",
        s(&out),
    ]));
    let iso = out.join("mkrescue.iso");
    let report = run_all(Command::new("xorriso").args(["-indev"]).arg(&iso).args([
        "-report_el_torito",
        "plain",
        "-report_system_area",
        "plain",
    ]));
    // El Torito: a BIOS and a UEFI boot image.
    assert!(
        report.contains("El Torito boot img :   1  BIOS"),
        "{report}"
    );
    assert!(
        report.contains("El Torito boot img :   2  UEFI"),
        "{report}"
    );
    // Hybrid: MBR boot code (isohybrid) and a GPT listing the ESP.
    assert!(report.contains("isohybrid"), "{report}");
    assert!(report.contains("GPT"), "{report}");
    assert!(report.contains("Volume id    : 'RESCUE_TEST'"), "{report}");
    // Menus on the ISO: local disk is the default.
    run(Command::new("xorriso")
        .args(["-osirrox", "on", "-indev"])
        .arg(&iso)
        .args(["-extract", "/isolinux/isolinux.cfg"])
        .arg(dir.path().join("isolinux.cfg")));
    let isolinux = std::fs::read_to_string(dir.path().join("isolinux.cfg")).unwrap();
    assert!(isolinux.contains("DEFAULT local\n"), "{isolinux}");
    assert!(isolinux.contains("LOCALBOOT 0x80"), "{isolinux}");

    // SHA256SUMS covers the ISO; verify passes, then catches a change.
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    assert!(sums.contains("  mkrescue.iso\n"), "{sums}");
    assert!(sums.contains("  initrd.img\n"), "{sums}");
    ok(verify(&out));
    std::fs::write(out.join("manifest.json"), b"{}").unwrap();
    let bad = verify(&out);
    assert_eq!(bad.status.code(), Some(5));
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert!(stdout.contains("manifest.json: changed"), "{stdout}");
    assert!(stdout.contains("mkrescue.iso: ok"), "{stdout}");
}

#[test]
fn bad_volume_id_is_refused_before_building() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cfg = dir.path().join("site.toml");
    std::fs::write(&cfg, "[output]\nvolume_id = \"my rescue\"\n").unwrap();
    let o = mkrescue(&["--config", s(&cfg), "--output", "iso", "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("output.volume_id"), "{err}");
    assert!(!out.exists());
}

#[derive(serde::Deserialize)]
struct Sf {
    partitiontable: Table,
}
#[derive(serde::Deserialize)]
struct Table {
    label: String,
    partitions: Vec<Part>,
}
#[derive(serde::Deserialize)]
struct Part {
    start: u64,
    size: u64,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    attrs: Option<String>,
}

#[test]
fn usb_image_has_esp_with_both_loaders_and_ext4_for_backups() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let img = dir.path().join("usb.img");
    ok(mkrescue(&[
        "--output",
        "usb",
        "--image",
        s(&img),
        "--size",
        "700M",
        "--out",
        s(&out),
    ]));
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 700 << 20);
    let j: Sf = serde_json::from_str(&run(Command::new("sfdisk").arg("--json").arg(&img))).unwrap();
    assert_eq!(j.partitiontable.label, "gpt");
    let p = &j.partitiontable.partitions;
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].ty, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    assert!(
        p[0].attrs
            .as_deref()
            .unwrap_or("")
            .contains("LegacyBIOSBootable")
    );
    assert_eq!(p[1].ty, "0FC63DAF-8483-4772-8E79-3D69D8477DE4");
    // BIOS boot code: syslinux's GPT MBR.
    let mbr = std::fs::read("/usr/lib/syslinux/mbr/gptmbr.bin").unwrap();
    let head = std::fs::read(&img).unwrap();
    assert_eq!(&head[..440], &mbr[..440]);
    // The ESP's files, read with mtools at the partition's offset.
    let esp = format!("{}@@{}", img.display(), p[0].start * 512);
    let list = run(Command::new("mdir")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-/", "-a", "-b", "-i", &esp, "::/"]));
    for f in [
        "::/EFI/BOOT/BOOTX64.EFI",
        "::/boot/vmlinuz",
        "::/boot/initrd.img",
        "::/boot/grub/grub.cfg",
        "::/syslinux/syslinux.cfg",
        "::/syslinux/ldlinux.sys",
        "::/syslinux/menu.c32",
    ] {
        assert!(
            list.to_lowercase().contains(&f.to_lowercase()),
            "{f} missing: {list}"
        );
    }
    // The data partition is ext4 with the backup label.
    let probe = run(Command::new("blkid")
        .args(["--probe", "--offset"])
        .arg((p[1].start * 512).to_string())
        .args(["--size"])
        .arg((p[1].size * 512).to_string())
        .arg(&img));
    assert!(probe.contains("LABEL=\"MKRESCUE-DATA\""), "{probe}");
    assert!(probe.contains("TYPE=\"ext4\""), "{probe}");
    // The image's checksum is beside it, by its name (item 4 of the
    // first-hour issue): `verify` of its directory passes, and nothing went
    // into --out.
    let sums = std::fs::read_to_string(dir.path().join("SHA256SUMS")).unwrap();
    assert!(sums.ends_with("  usb.img\n"), "{sums}");
    ok(verify(dir.path()));
    assert!(!out.exists(), "a USB build wrote into --out");
}

#[test]
fn usb_image_too_small_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("usb.img");
    let o = mkrescue(&[
        "--output",
        "usb",
        "--image",
        s(&img),
        "--size",
        "100M",
        "--out",
        s(&dir.path().join("out")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("too small"), "{err}");
    assert!(!img.exists());
}

fn unpack_concatenated(layers: &[PathBuf], into: &Path) {
    // The kernel unpacks concatenated archives in order; zstd -dc handles
    // each compressed layer, cpio reads the cpio of each.
    std::fs::create_dir_all(into).unwrap();
    for l in layers {
        let data = run(Command::new("sh").arg("-c").arg(format!(
            "zstd -dc '{}' | (cd '{}' && cpio -idm --quiet --no-absolute-filenames) && echo done",
            l.display(),
            into.display()
        )));
        assert!(data.contains("done"));
    }
}

#[test]
fn pxe_tree_per_mac_with_shared_base_and_host_layer() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tftp");
    let build = |out: &str| {
        let o = ok(mkrescue(&[
            "--output",
            "pxe",
            "--pxe-root",
            s(&root),
            "--out",
            s(&dir.path().join(out)),
            "--json",
        ]));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let first = build("out1");
    let pxe = &first["media"]["pxe"];
    let macs: Vec<String> = pxe["macs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    assert!(!macs.is_empty(), "this host has a NIC: {first}");
    for m in &macs {
        let n = format!("01-{}", m.replace(':', "-"));
        assert!(root.join("pxelinux.cfg").join(&n).is_file(), "{n}");
        assert!(root.join(format!("grub/grub.cfg-{n}")).is_file(), "{n}");
    }
    assert!(
        !root.join("pxelinux.cfg/default").exists(),
        "default only when asked"
    );
    assert!(!root.join("grub/grub.cfg").exists());
    for f in ["pxelinux.0", "ldlinux.c32", "menu.c32", "grubx64.efi"] {
        assert!(root.join(f).is_file(), "{f}");
    }
    assert_eq!(first["media"]["pxe"]["base_shared"], false);
    // The base is named by its sha256.
    let base = PathBuf::from(pxe["base"].as_str().unwrap());
    let name = base.file_stem().unwrap().to_str().unwrap().to_string();
    let sum = run(Command::new("sha256sum").arg(&base));
    assert!(sum.starts_with(&name), "{sum}");
    // The host layer is small and holds what is this host's own.
    let host = PathBuf::from(pxe["host"].as_str().unwrap());
    assert!(pxe["host_bytes"].as_u64().unwrap() * 20 < pxe["base_bytes"].as_u64().unwrap());
    let only_host = dir.path().join("only-host");
    unpack_concatenated(std::slice::from_ref(&host), &only_host);
    assert!(only_host.join("etc/mkrescue/host.json").is_file());
    assert!(!only_host.join("init").exists());
    // Both layers together are the whole rescue system.
    let both = dir.path().join("both");
    unpack_concatenated(&[base.clone(), host.clone()], &both);
    assert!(both.join("etc/mkrescue/host.json").is_file());
    assert!(both.join("init").exists());
    // The pxelinux menu loads both, base first.
    let cfg = std::fs::read_to_string(
        root.join("pxelinux.cfg")
            .join(format!("01-{}", macs[0].replace(':', "-"))),
    )
    .unwrap();
    let rel_base = base.strip_prefix(&root).unwrap().display().to_string();
    let rel_host = host.strip_prefix(&root).unwrap().display().to_string();
    assert!(
        cfg.contains(&format!("INITRD {rel_base},{rel_host}")),
        "{cfg}"
    );

    // A second build (another host on the same OS and kernel would do the
    // same) finds the identical base already there.
    let second = build("out2");
    assert_eq!(second["media"]["pxe"]["base_shared"], true, "{second}");
    ok(verify(&root));
    // The tree is the product: --out is not written, no scratch is left.
    assert!(!dir.path().join("out1").exists());
    assert!(!dir.path().join("out2").exists());
    assert!(
        !std::fs::read_dir(&root).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.'))
    );

    // --pxe-default adds the catch-all menus.
    build_default(&root, dir.path());
    assert!(root.join("pxelinux.cfg/default").is_file());
    assert!(root.join("grub/grub.cfg").is_file());
}

fn build_default(root: &Path, dir: &Path) {
    ok(mkrescue(&[
        "--output",
        "pxe",
        "--pxe-root",
        s(root),
        "--pxe-default",
        "--out",
        s(&dir.join("out3")),
    ]));
}

#[test]
fn obdr_tape_file_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let tap = dir.path().join("rescue.tap");
    let o = ok(mkrescue(&[
        "--output",
        "obdr",
        "--tape-file",
        s(&tap),
        "--out",
        s(&out),
        "--json",
    ]));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let iso_records = j["media"]["tape_records"].as_u64().unwrap();
    let raw = std::fs::read(&tap).unwrap();
    assert_eq!(&raw[4..12], b"REAR-000");
    let items = mkrescue::output::obdr::read_simh(&raw).unwrap();
    assert_eq!(items.len() as u64, 20 + iso_records + 2);
    // The tape file's checksum is beside it; the ISO on the tape was
    // scratch, and --out is not touched.
    let sums = std::fs::read_to_string(dir.path().join("SHA256SUMS")).unwrap();
    assert!(sums.ends_with("  rescue.tap\n"), "{sums}");
    ok(verify(dir.path()));
    assert!(!out.exists(), "an OBDR build wrote into --out");
}

#[test]
fn iso_dry_run_says_where_and_writes_no_iso() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = ok(mkrescue(&[
        "--output",
        "iso",
        "--out",
        s(&out),
        "--dry-run",
    ]));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains(&format!(
            "  {}: hybrid ISO",
            out.join("mkrescue.iso").display()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("would call: "), "{stdout}");
    assert!(stdout.contains("xorriso"), "{stdout}");
    assert!(!out.exists(), "the dry run created {}", out.display());
}

/// Item 1 of the first-hour issue: `--dry-run` of an initramfs build wrote
/// the whole image. Now it lists the files (the kernel with its size, the
/// initrd's entries and size before compression) and writes nothing: an
/// existing build stays as it was.
#[test]
fn initramfs_dry_run_lists_files_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("initrd.img"), "the admin's image").unwrap();
    let o = ok(mkrescue(&[
        "--output",
        "initramfs",
        "--out",
        s(&out),
        "--dry-run",
    ]));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let first = stdout.lines().next().unwrap_or("");
    assert_eq!(
        first, "dry run of --output initramfs: nothing is written",
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("  {} (", out.join("vmlinuz").display())),
        "the kernel's size: {stdout}"
    );
    assert!(stdout.contains("MiB before zstd compression"), "{stdout}");
    assert!(stdout.contains("would call no external tool"), "{stdout}");
    let left: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["initrd.img"], "the dry run wrote into --out");
    assert_eq!(
        std::fs::read_to_string(out.join("initrd.img")).unwrap(),
        "the admin's image"
    );
}

/// Item 1: `--output usb --image F --dry-run` said "would write" and then
/// wrote build.out_dir's initrd.img anyway.
#[test]
fn usb_dry_run_touches_neither_image_nor_out_dir() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let img = dir.path().join("usb.img");
    let o = ok(mkrescue(&[
        "--output",
        "usb",
        "--image",
        s(&img),
        "--out",
        s(&out),
        "--dry-run",
    ]));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains(&format!(
            "  {} (2048.0 MiB): sparse GPT disk",
            img.display()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("syslinux, sfdisk, mkfs.ext4"), "{stdout}");
    assert!(!img.exists());
    assert!(!out.exists(), "the dry run created {}", out.display());
}

/// `output.test_boot_entry` in the configuration does what
/// `--test-boot-entry` does (for builds no command line reaches: the
/// layout check's rebuild, the kernel hook); an unknown entry is a usage
/// error naming the key, and nothing is written.
#[test]
fn test_boot_entry_from_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tftp");
    let build = |entry: &str| {
        let cfg = dir.path().join(format!("{entry}.toml"));
        std::fs::write(&cfg, format!("[output]\ntest_boot_entry = \"{entry}\"\n")).unwrap();
        mkrescue(&[
            "--config",
            s(&cfg),
            "--output",
            "pxe",
            "--pxe-root",
            s(&root),
            "--pxe-default",
            "--out",
            s(&dir.path().join("out")),
        ])
    };
    let bad = build("no-such-entry");
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("output.test_boot_entry"), "{err}");
    assert!(!root.join("pxelinux.cfg/default").exists());
    ok(build("recover-auto-serial"));
    let menu = std::fs::read_to_string(root.join("pxelinux.cfg/default")).unwrap();
    assert!(menu.contains("DEFAULT recover-auto-serial"), "{menu}");
    // One second, in syslinux's tenths.
    assert!(menu.contains("TIMEOUT 10\n"), "{menu}");
}
