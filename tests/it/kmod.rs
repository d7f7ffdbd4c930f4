//! Module selection against a real Debian kernel's modules directory
//! (`/lib/modules/KVER`). These tests need the package `linux-image-amd64`
//! (CI installs it); without a kernel they fail and say so instead of
//! passing silently. `MKRESCUE_TEST_KVER` picks a kernel; otherwise the
//! newest under /lib/modules with a modules.dep is used.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use mkrescue::config::ModulePolicy;
use mkrescue::error::{Code, code_of};
use mkrescue::kmod::{HostModules, ModuleIndex, Selection, firmware_of};

pub(crate) fn modules_dir() -> PathBuf {
    let base = Path::new("/lib/modules");
    if let Ok(kver) = std::env::var("MKRESCUE_TEST_KVER") {
        return base.join(kver);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(base)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("modules.dep").is_file() && p.join("kernel").is_dir())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "no kernel modules under /lib/modules (need modules.dep and kernel/): \
             run `apt-get install linux-image-amd64`"
        )
    })
}

fn firmware_dirs() -> Vec<PathBuf> {
    vec![
        PathBuf::from("/lib/firmware/updates"),
        PathBuf::from("/lib/firmware"),
    ]
}

/// modules.dep as path → dependency paths, parsed independently of the
/// crate so the closure check does not trust the code it checks.
fn modules_dep(dir: &Path) -> BTreeMap<PathBuf, Vec<PathBuf>> {
    let text = std::fs::read_to_string(dir.join("modules.dep")).unwrap();
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(m, deps)| {
            (
                dir.join(m.trim()),
                deps.split_whitespace().map(|d| dir.join(d)).collect(),
            )
        })
        .collect()
}

fn name_of(p: &Path) -> String {
    let f = p.file_name().unwrap().to_string_lossy();
    f[..f.find(".ko").unwrap()].replace('-', "_")
}

fn names(s: &Selection) -> BTreeSet<String> {
    s.modules.iter().map(|p| name_of(p)).collect()
}

fn storage_net(index: &ModuleIndex) -> Selection {
    index
        .select(
            ModulePolicy::StorageNet,
            &HostModules::default(),
            &[],
            &firmware_dirs(),
        )
        .unwrap()
}

#[test]
fn storage_net_has_storage_network_and_filesystems_not_sound_or_wifi() {
    let dir = modules_dir();
    let index = ModuleIndex::load(&dir).unwrap();
    let s = storage_net(&index);
    let got = names(&s);
    for want in [
        "virtio_blk",
        "virtio_net",
        "virtio_scsi",
        "virtio_pci",
        "nvme",
        "ahci",
        "sd_mod",
        "sr_mod",
        "ext4",
        "xfs",
        "btrfs",
        "vfat",
        "nls_cp437",
        "nls_utf8",
        "isofs",
        "dm_mod",
        "dm_crypt",
        "raid1",
        "md_mod",
        "e1000e",
        "igb",
        "ixgbe",
        "bonding",
        "8021q",
        "bridge",
        "usb_storage",
        "uas",
        "xhci_pci",
        "usbhid",
        "hid_generic",
        "loop",
        "efivarfs",
        // ext4's modules.dep line and its softdep on crypto-crc32c.
        "jbd2",
        "mbcache",
        "crc16",
        "crc32c_generic",
    ] {
        assert!(
            got.contains(want),
            "storage-net lacks {want} ({} modules)",
            got.len()
        );
    }
    for unwanted in [
        "snd_hda_intel",
        "iwlwifi",
        "snd",
        "uvcvideo",
        "amdgpu",
        "tcrypt",
    ] {
        assert!(!got.contains(unwanted), "storage-net has {unwanted}");
    }
    // Every module file exists and lives in the modules dir.
    assert!(s.modules.iter().all(|p| p.starts_with(&dir) && p.is_file()));
    for f in ["modules.dep", "modules.dep.bin", "modules.alias.bin"] {
        assert!(s.index_files.contains(&dir.join(f)), "index lacks {f}");
    }
    // Firmware: isci (an Intel SAS HBA under drivers/scsi) names
    // isci/isci_firmware.bin, which Debian's kernel package ships; in any
    // case some chosen module names firmware that is either found or
    // reported missing.
    assert!(
        !s.firmware.is_empty() || !s.firmware_missing.is_empty(),
        "no module named any firmware"
    );
    let isci = Path::new("/lib/firmware/isci/isci_firmware.bin");
    if isci.exists() {
        assert!(s.firmware.contains(&isci.to_path_buf()), "{:?}", s.firmware);
    } else {
        assert!(
            s.firmware_missing
                .contains(&"isci/isci_firmware.bin".to_string())
        );
    }
    assert!(s.firmware.iter().all(|p| p.exists()));
}

#[test]
fn selection_is_closed_under_modules_dep() {
    let dir = modules_dir();
    let deps = modules_dep(&dir);
    let index = ModuleIndex::load(&dir).unwrap();
    let host = HostModules::detect(Path::new("/")).unwrap();
    for (policy, host) in [
        (ModulePolicy::StorageNet, HostModules::default()),
        (ModulePolicy::Host, host),
    ] {
        let s = index
            .select(policy, &host, &["ext4".to_string()], &[])
            .unwrap();
        let chosen: BTreeSet<&PathBuf> = s.modules.iter().collect();
        for m in &s.modules {
            let line = deps
                .get(m)
                .unwrap_or_else(|| panic!("{} is not in modules.dep", m.display()));
            for d in line {
                assert!(
                    chosen.contains(d),
                    "{policy:?}: {} needs {} which is not selected",
                    m.display(),
                    d.display()
                );
            }
        }
    }
}

#[test]
fn softdeps_of_selected_modules_are_selected() {
    let dir = modules_dir();
    let loadable: BTreeSet<String> = modules_dep(&dir).keys().map(|p| name_of(p)).collect();
    let index = ModuleIndex::load(&dir).unwrap();
    let got = names(&storage_net(&index));
    let text = std::fs::read_to_string(dir.join("modules.softdep")).unwrap();
    let mut checked = 0;
    for line in text.lines().filter(|l| l.starts_with("softdep ")) {
        let mut w = line.split_whitespace().skip(1);
        let module = w.next().unwrap().replace('-', "_");
        if !got.contains(&module) {
            continue;
        }
        // Each softdep is a name or an alias (`crypto-crc32c`); every
        // loadable module it stands for must be selected, built-ins need
        // nothing.
        for want in w.filter(|w| *w != "pre:" && *w != "post:") {
            for n in index.resolve_names(want) {
                if loadable.contains(&n) {
                    assert!(
                        got.contains(&n),
                        "{module} softdep {want} = {n} not selected"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 0, "no softdep of a selected module was checked");
}

#[test]
fn all_policy_takes_every_module_of_modules_dep() {
    let dir = modules_dir();
    let index = ModuleIndex::load(&dir).unwrap();
    let s = index
        .select(ModulePolicy::All, &HostModules::default(), &[], &[])
        .unwrap();
    let deps = modules_dep(&dir);
    assert_eq!(s.modules.len(), deps.len());
    assert_eq!(index.len(), deps.len());
    if dir.ends_with("6.1.0-56-amd64") {
        assert_eq!(s.modules.len(), 4023);
    }
}

#[test]
fn real_modaliases_resolve_like_modprobe() {
    let index = ModuleIndex::load(&modules_dir()).unwrap();
    assert_eq!(
        index.resolve_names("virtio:d00000002v00001AF4"),
        ["virtio_blk"]
    );
    assert_eq!(
        index.resolve_names("virtio:d00000001v00001AF4"),
        ["virtio_net"]
    );
    assert_eq!(
        index.resolve_names("pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"),
        ["virtio_pci"]
    );
    // An AHCI controller matches by PCI class 01.06.01.
    assert!(
        index
            .resolve_names("pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01")
            .contains(&"ahci".to_string())
    );
    assert!(index.resolve_names("fs-ext3").contains(&"ext4".to_string()));
}

#[test]
fn host_policy_follows_this_machines_devices() {
    let dir = modules_dir();
    let index = ModuleIndex::load(&dir).unwrap();
    let host = HostModules::detect(Path::new("/")).unwrap();
    let s = index
        .select(ModulePolicy::Host, &host, &[], &firmware_dirs())
        .unwrap();
    let got = names(&s);
    if Path::new("/sys/class/block/vda/device").exists() {
        assert!(got.contains("virtio_blk"), "{got:?}");
    }
    if host.filesystems.iter().any(|f| f == "ext4") {
        assert!(got.contains("ext4"), "{got:?}");
    }
    // Whatever the host has, the host policy is far smaller than
    // storage-net, which in turn is smaller than all.
    let sn = storage_net(&index);
    assert!(s.modules.len() < sn.modules.len());
    assert!(sn.modules.len() < index.len());
}

#[test]
fn unknown_extra_module_is_a_config_error() {
    let dir = modules_dir();
    let index = ModuleIndex::load(&dir).unwrap();
    let e = index
        .select(
            ModulePolicy::Host,
            &HostModules::default(),
            &["no-such-driver".to_string()],
            &[],
        )
        .unwrap_err();
    assert_eq!(code_of(&e), Code::Config);
    let msg = format!("{e:#}");
    assert!(msg.contains("module no-such-driver not found in"), "{msg}");
    assert!(msg.contains(&dir.join("modules.dep").display().to_string()));
}

/// Our section walk agrees with the `elf` crate on every storage-net module.
#[test]
fn firmware_names_match_the_elf_crate() {
    let index = ModuleIndex::load(&modules_dir()).unwrap();
    let s = index
        .select(ModulePolicy::StorageNet, &HostModules::default(), &[], &[])
        .unwrap();
    for p in s
        .modules
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "ko"))
    {
        let data = std::fs::read(p).unwrap();
        let elf = elf::ElfBytes::<elf::endian::AnyEndian>::minimal_parse(&data).unwrap();
        let shdr = elf.section_header_by_name(".modinfo").unwrap().unwrap();
        let (section, _) = elf.section_data(&shdr).unwrap();
        let want: Vec<String> = section
            .split(|&b| b == 0)
            .filter_map(|e| std::str::from_utf8(e).ok()?.strip_prefix("firmware="))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect();
        assert_eq!(firmware_of(p).unwrap(), want, "{}", p.display());
    }
}

/// A real module compressed each way kmod supports gives the same
/// firmware names; a truncated copy is an error naming the file.
#[test]
fn compressed_and_corrupt_copies_of_a_real_module() {
    let dir = modules_dir();
    let deps = modules_dep(&dir);
    // A small NIC driver that names firmware (tehuti: tehuti/bdx.bin).
    let original = deps
        .keys()
        .find(|p| name_of(p) == "tehuti")
        .cloned()
        .unwrap_or_else(|| panic!("tehuti.ko not in {}", dir.display()));
    let plain = firmware_of(&original).unwrap();
    assert_eq!(plain, ["tehuti/bdx.bin"]);
    let bytes = std::fs::read(&original).unwrap();

    let t = tempfile::tempdir().unwrap();
    let kdir = t.path().join("6.1.0-copy");
    let sub = kdir.join("kernel/drivers/net/ethernet/tehuti");
    std::fs::create_dir_all(&sub).unwrap();
    let xz = {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
        std::io::Write::write_all(&mut e, &bytes).unwrap();
        e.finish().unwrap()
    };
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, &bytes).unwrap();
        e.finish().unwrap()
    };
    let zst = zstd::encode_all(bytes.as_slice(), 3).unwrap();
    for (suffix, data) in [("ko.xz", xz), ("ko.zst", zst), ("ko.gz", gz)] {
        let p = sub.join(format!("tehuti.{suffix}"));
        std::fs::write(&p, data).unwrap();
        assert_eq!(firmware_of(&p).unwrap(), plain, "{suffix}");
    }

    // Through select: a modules dir whose one module is truncated.
    let bad = sub.join("tehuti.ko");
    std::fs::write(&bad, &bytes[..bytes.len() / 3]).unwrap();
    std::fs::write(
        kdir.join("modules.dep"),
        "kernel/drivers/net/ethernet/tehuti/tehuti.ko:\n",
    )
    .unwrap();
    let index = ModuleIndex::load(&kdir).unwrap();
    let e = index
        .select(
            ModulePolicy::All,
            &HostModules::default(),
            &[],
            &[t.path().join("firmware")],
        )
        .unwrap_err();
    assert_eq!(code_of(&e), Code::Input);
    assert!(
        format!("{e:#}").contains(&bad.display().to_string()),
        "{e:#}"
    );
}

/// Timing and size of the default policy on this machine. Not an
/// assertion (timings belong in `cargo xtask bench`); run with
/// `cargo test --release --test it kmod::measure_storage_net -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_storage_net() {
    let dir = modules_dir();
    let mut load = std::time::Duration::MAX;
    let mut index = None;
    for _ in 0..5 {
        let t = Instant::now();
        index = Some(ModuleIndex::load(&dir).unwrap());
        load = load.min(t.elapsed());
    }
    let index = index.unwrap();
    let mut best = None;
    let mut s = Selection::default();
    for _ in 0..5 {
        let t = Instant::now();
        s = storage_net(&index);
        let e = t.elapsed();
        best = Some(best.map_or(e, |b: std::time::Duration| b.min(e)));
    }
    let bytes: u64 = s
        .modules
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    let fw: u64 = s
        .firmware
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    eprintln!(
        "{}: load best of 5 {load:?}, storage-net select best of 5 {:?}: {} modules, {:.1} MB; \
         {} firmware files ({} KB), {} missing; {} index files",
        dir.display(),
        best.unwrap(),
        s.modules.len(),
        bytes as f64 / 1e6,
        s.firmware.len(),
        fw / 1024,
        s.firmware_missing.len(),
        s.index_files.len()
    );
    // Where the modules come from, to review the policy's reach.
    let mut by_dir: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for p in &s.modules {
        let rel = p.strip_prefix(&dir).unwrap();
        let key: Vec<String> = rel
            .parent()
            .unwrap()
            .components()
            .take(3)
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let e = by_dir.entry(key.join("/")).or_default();
        e.0 += 1;
        e.1 += std::fs::metadata(p).unwrap().len();
    }
    for (d, (n, b)) in by_dir {
        eprintln!("{n:5} {:8} KB  {d}", b / 1024);
    }
}

/// What only this host's seeds chose is marked for its PXE host layer:
/// nothing for storage-net alone (the same on every host of the kernel),
/// an extra module outside the policy with what it pulls in, and every
/// module of the host policy.
#[test]
fn host_only_is_what_the_policy_alone_does_not_choose() {
    let dir = modules_dir();
    let index = ModuleIndex::load(&dir).unwrap();
    let sn = storage_net(&index);
    assert!(sn.host_only.is_empty(), "{:?}", sn.host_only);
    // A sound driver is outside storage-net (see the test above).
    let extra = index
        .select(
            ModulePolicy::StorageNet,
            &HostModules::default(),
            &["snd-hda-intel".to_string()],
            &firmware_dirs(),
        )
        .unwrap();
    let only: BTreeSet<String> = extra
        .host_only
        .iter()
        .filter(|p| p.to_string_lossy().contains(".ko"))
        .map(|p| name_of(p))
        .collect();
    assert!(only.contains("snd_hda_intel"), "{only:?}");
    let added: BTreeSet<String> = names(&extra).difference(&names(&sn)).cloned().collect();
    assert_eq!(only, added, "exactly the modules storage-net lacks");
    let host = HostModules::detect(Path::new("/")).unwrap();
    let h = index
        .select(ModulePolicy::Host, &host, &[], &firmware_dirs())
        .unwrap();
    assert!(h.modules.iter().all(|m| h.host_only.contains(m)));
}
