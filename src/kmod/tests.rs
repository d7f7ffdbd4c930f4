//! Selection on a fake modules directory written by the tests: policies,
//! closure over modules.dep and softdeps, built-ins, aliases, modprobe.d,
//! firmware lookup, compressed and corrupt modules.

use std::fs;
use std::path::PathBuf;

use super::*;
use crate::error::code_of;
use crate::kmod::modinfo::tests::tiny_module;

const KVER: &str = "6.1.0-test";

/// A fake root with `lib/modules/KVER` and `lib/firmware`.
struct Fake {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    dir: PathBuf,
    fw: PathBuf,
}

/// (path, firmware names, compression) of each fake module.
const MODULES: &[(&str, &[&str])] = &[
    ("kernel/fs/ext4/ext4.ko", &[]),
    ("kernel/fs/jbd2/jbd2.ko", &[]),
    ("kernel/fs/mbcache.ko", &[]),
    ("kernel/lib/crc16.ko", &[]),
    ("kernel/arch/x86/crypto/crc32c-intel.ko", &[]),
    ("kernel/crypto/crc32c_generic.ko", &[]),
    ("kernel/drivers/virtio/virtio.ko", &[]),
    ("kernel/drivers/block/virtio_blk.ko.xz", &[]),
    (
        "kernel/drivers/net/ethernet/acme/acme-nic.ko.zst",
        &["acme/nic.bin", "acme/missing.bin"],
    ),
    ("kernel/drivers/net/mii.ko.gz", &[]),
    ("kernel/sound/core/snd.ko", &[]),
    ("kernel/sound/pci/snd-acme.ko", &["acme/sound.bin"]),
    ("kernel/drivers/gpu/drm/acme/acmegpu.ko", &[]),
    ("kernel/drivers/misc/odd.ko", &[]),
    ("kernel/drivers/misc/odd-helper.ko", &[]),
    ("kernel/drivers/misc/t10helper.ko", &[]),
    ("updates/dkms/zfs.ko", &[]),
];

const DEP: &str = "\
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/fs/jbd2/jbd2.ko:
kernel/fs/mbcache.ko:
kernel/lib/crc16.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/crypto/crc32c_generic.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio.ko
kernel/drivers/net/ethernet/acme/acme-nic.ko.zst: kernel/drivers/net/mii.ko.gz
kernel/drivers/net/mii.ko.gz:
kernel/sound/core/snd.ko:
kernel/sound/pci/snd-acme.ko: kernel/sound/core/snd.ko
kernel/drivers/gpu/drm/acme/acmegpu.ko:
kernel/drivers/misc/odd.ko:
kernel/drivers/misc/odd-helper.ko:
kernel/drivers/misc/t10helper.ko:
updates/dkms/zfs.ko:
";

const ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias crypto-crc32c crc32c-intel
alias crypto-crc32c crc32c_generic
alias fs-ext3 ext4
alias fs-ext4 ext4
alias virtio:d00000002v* virtio_blk
alias pci:v0000ACMEd00000001sv*sd*bc*sc*i* odd
alias pci:v*d*sv*sd*bc04sc03i* snd_acme
";

const SOFTDEP: &str = "\
softdep ext4 pre: crypto-crc32c
softdep odd post: odd-helper
softdep sd_mod pre: t10helper
";

const BUILTIN: &str = "\
kernel/net/packet/af_packet.ko
kernel/drivers/scsi/sd_mod.ko
kernel/crypto/sha256_generic.ko
";

const BUILTIN_MODINFO: &[u8] =
    b"sd_mod.firmware=acme/sd.bin\0sha256_generic.alias=crypto-sha256\0af_packet.license=GPL\0";

fn compress(path: &str, elf: Vec<u8>) -> Vec<u8> {
    use std::io::Write;
    if path.ends_with(".xz") {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
        e.write_all(&elf).unwrap();
        e.finish().unwrap()
    } else if path.ends_with(".zst") {
        zstd::encode_all(elf.as_slice(), 3).unwrap()
    } else if path.ends_with(".gz") {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&elf).unwrap();
        e.finish().unwrap()
    } else {
        elf
    }
}

fn fake() -> Fake {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let dir = root.join("lib/modules").join(KVER);
    let fw = root.join("lib/firmware");
    for (path, firmware) in MODULES {
        let mut info = format!("license=GPL\0name={}\0", index::name_of_path(path));
        for f in *firmware {
            info.push_str(&format!("firmware={f}\0"));
        }
        let p = dir.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(
            &p,
            compress(path, tiny_module(info.as_bytes(), true, false)),
        )
        .unwrap();
    }
    fs::write(dir.join("modules.dep"), DEP).unwrap();
    fs::write(dir.join("modules.dep.bin"), b"\xb0\x07\xf4\x57").unwrap();
    fs::write(dir.join("modules.alias"), ALIAS).unwrap();
    fs::write(dir.join("modules.softdep"), SOFTDEP).unwrap();
    fs::write(dir.join("modules.builtin"), BUILTIN).unwrap();
    fs::write(dir.join("modules.builtin.modinfo"), BUILTIN_MODINFO).unwrap();
    fs::write(dir.join("System.map"), "not an index").unwrap();
    fs::create_dir_all(dir.join("modules.d")).unwrap();
    fs::create_dir_all(fw.join("acme")).unwrap();
    for f in ["nic.bin", "sound.bin", "sd.bin"] {
        fs::write(fw.join("acme").join(f), f).unwrap();
    }
    Fake {
        _tmp: tmp,
        root,
        dir,
        fw,
    }
}

impl Fake {
    fn index(&self) -> ModuleIndex {
        ModuleIndex::load(&self.dir).unwrap()
    }
    fn select(
        &self,
        policy: ModulePolicy,
        host: &HostModules,
        extra: &[&str],
    ) -> Result<Selection> {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        self.index()
            .select(policy, host, &extra, std::slice::from_ref(&self.fw))
    }
    /// Module paths of a selection relative to the modules dir.
    fn rel(&self, s: &Selection) -> Vec<String> {
        s.modules
            .iter()
            .map(|p| p.strip_prefix(&self.dir).unwrap().display().to_string())
            .collect()
    }
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn storage_net_takes_subsystems_with_deps_softdeps_and_firmware() {
    let f = fake();
    let s = f
        .select(ModulePolicy::StorageNet, &HostModules::default(), &[])
        .unwrap();
    assert_eq!(
        f.rel(&s),
        sorted(&[
            "kernel/arch/x86/crypto/crc32c-intel.ko",
            "kernel/crypto/crc32c_generic.ko",
            "kernel/drivers/block/virtio_blk.ko.xz",
            // Softdep of the built-in sd_mod, outside the policy's paths.
            "kernel/drivers/misc/t10helper.ko",
            "kernel/drivers/net/ethernet/acme/acme-nic.ko.zst",
            "kernel/drivers/net/mii.ko.gz",
            "kernel/drivers/virtio/virtio.ko",
            "kernel/fs/ext4/ext4.ko",
            "kernel/fs/jbd2/jbd2.ko",
            "kernel/fs/mbcache.ko",
            "kernel/lib/crc16.ko",
        ])
    );
    assert!(s.modules.iter().all(|p| p.is_absolute() && p.exists()));
    // Firmware of a loadable module (compressed) and of a built-in one.
    assert_eq!(
        s.firmware,
        [f.fw.join("acme/nic.bin"), f.fw.join("acme/sd.bin")]
    );
    assert_eq!(s.firmware_missing, ["acme/missing.bin"]);
    assert_eq!(
        s.index_files,
        [
            "modules.alias",
            "modules.builtin",
            "modules.builtin.modinfo",
            "modules.dep",
            "modules.dep.bin",
            "modules.softdep"
        ]
        .map(|n| f.dir.join(n))
    );
}

#[test]
fn storage_net_adds_what_the_hosts_devices_and_mounts_need() {
    let f = fake();
    let host = HostModules {
        loaded: vec!["snd_acme".into()],
        modaliases: vec!["pci:v0000ACMEd00000001sv00000000sd00000000bc01sc00i00".into()],
        filesystems: vec!["zfs".into()],
    };
    let s = f.select(ModulePolicy::StorageNet, &host, &[]).unwrap();
    let rel = f.rel(&s);
    for want in [
        "kernel/drivers/misc/odd.ko",
        "kernel/drivers/misc/odd-helper.ko",
        "updates/dkms/zfs.ko",
    ] {
        assert!(rel.contains(&want.to_string()), "{want} missing: {rel:?}");
    }
    // Loaded modules are the host policy's business, not storage-net's.
    assert!(!rel.iter().any(|p| p.contains("snd")), "{rel:?}");
}

#[test]
fn host_policy_takes_loaded_modalias_and_filesystems_only() {
    let f = fake();
    let host = HostModules {
        // A module of the running kernel that the target kernel lacks is
        // skipped, not an error.
        loaded: vec!["virtio_blk".into(), "gone_in_this_kernel".into()],
        modaliases: vec![
            "pci:v0000ACMEd00000001sv00000000sd00000000bc01sc00i00".into(),
            "virtio:d00000002v00001AF4".into(),
        ],
        // ext3 is served by ext4 through its fs-ext3 alias; proc is built in.
        filesystems: vec!["ext3".into(), "proc".into()],
    };
    let s = f.select(ModulePolicy::Host, &host, &[]).unwrap();
    assert_eq!(
        f.rel(&s),
        sorted(&[
            "kernel/arch/x86/crypto/crc32c-intel.ko",
            "kernel/crypto/crc32c_generic.ko",
            "kernel/drivers/block/virtio_blk.ko.xz",
            "kernel/drivers/misc/odd-helper.ko",
            "kernel/drivers/misc/odd.ko",
            "kernel/drivers/virtio/virtio.ko",
            "kernel/fs/ext4/ext4.ko",
            "kernel/fs/jbd2/jbd2.ko",
            "kernel/fs/mbcache.ko",
            "kernel/lib/crc16.ko",
        ])
    );
    assert!(s.firmware.is_empty() && s.firmware_missing.is_empty());
}

#[test]
fn all_policy_takes_every_module() {
    let f = fake();
    let s = f
        .select(ModulePolicy::All, &HostModules::default(), &[])
        .unwrap();
    assert_eq!(s.modules.len(), MODULES.len());
    assert_eq!(f.index().len(), MODULES.len());
    assert!(s.firmware.contains(&f.fw.join("acme/sound.bin")));
}

#[test]
fn extra_names_aliases_and_builtins() {
    let f = fake();
    let none = HostModules::default();
    // `-` and `_` are the same in a module name; deps come along.
    let s = f.select(ModulePolicy::Host, &none, &["snd-acme"]).unwrap();
    assert_eq!(
        f.rel(&s),
        sorted(&["kernel/sound/core/snd.ko", "kernel/sound/pci/snd-acme.ko"])
    );
    // An alias works as with modprobe, and so does a built-in (no file).
    let s = f
        .select(ModulePolicy::Host, &none, &["crypto-crc32c", "af_packet"])
        .unwrap();
    assert_eq!(
        f.rel(&s),
        sorted(&[
            "kernel/arch/x86/crypto/crc32c-intel.ko",
            "kernel/crypto/crc32c_generic.ko"
        ])
    );
    let e = f
        .select(ModulePolicy::Host, &none, &["ext4", "nosuchmod"])
        .unwrap_err();
    assert_eq!(code_of(&e), Code::Config);
    let msg = format!("{e:#}");
    assert!(
        msg.contains(&format!(
            "module nosuchmod not found in {}",
            f.dir.join("modules.dep").display()
        )),
        "{msg}"
    );
    assert!(msg.contains("`modinfo nosuchmod`"), "{msg}");
}

#[test]
fn resolve_names_follows_modprobe_order() {
    let f = fake();
    let idx = f.index();
    assert_eq!(idx.resolve_names("dm-nothing"), Vec::<String>::new());
    assert_eq!(idx.resolve_names("crc32c-intel"), ["crc32c_intel"]);
    assert_eq!(idx.resolve_names("crypto-sha256"), ["sha256_generic"]);
    assert_eq!(idx.resolve_names("sd-mod"), ["sd_mod"]);
    assert_eq!(
        idx.resolve_names("crypto_crc32c"),
        ["crc32c_generic", "crc32c_intel"]
    );
}

#[test]
fn without_firmware_dirs_modules_are_not_read() {
    let f = fake();
    // Corrupt a selected module: nothing reads it when firmware is off.
    fs::write(f.dir.join("kernel/fs/ext4/ext4.ko"), b"junk").unwrap();
    let s = f
        .index()
        .select(ModulePolicy::StorageNet, &HostModules::default(), &[], &[])
        .unwrap();
    assert!(s.firmware.is_empty() && s.firmware_missing.is_empty());
    assert!(!s.modules.is_empty());
}

#[test]
fn corrupt_module_is_an_input_error_naming_the_file() {
    let f = fake();
    let bad = f.dir.join("kernel/fs/ext4/ext4.ko");
    fs::write(&bad, b"\x7fELF\x02\x01\x01 truncated").unwrap();
    let e = f
        .select(ModulePolicy::StorageNet, &HostModules::default(), &[])
        .unwrap_err();
    assert_eq!(code_of(&e), Code::Input);
    assert!(
        format!("{e:#}").contains(&bad.display().to_string()),
        "{e:#}"
    );
}

#[test]
fn missing_modules_dep_is_a_host_error() {
    let t = tempfile::tempdir().unwrap();
    let e = ModuleIndex::load(&t.path().join("6.1.0-x")).unwrap_err();
    assert_eq!(code_of(&e), Code::Host);
    assert!(format!("{e:#}").contains("depmod 6.1.0-x"), "{e:#}");
}

#[test]
fn modprobe_d_softdeps_are_honoured_by_priority() {
    let f = fake();
    let etc = f.root.join("etc/modprobe.d");
    let lib = f.root.join("lib/modprobe.d");
    fs::create_dir_all(&etc).unwrap();
    fs::create_dir_all(&lib).unwrap();
    fs::write(etc.join("local.conf"), "softdep virtio-blk pre: odd\n").unwrap();
    // Hidden by /etc/modprobe.d/local.conf of the same name.
    fs::write(lib.join("local.conf"), "softdep virtio_blk pre: snd-acme\n").unwrap();
    fs::write(lib.join("ignored.txt"), "softdep virtio_blk pre: acmegpu\n").unwrap();
    let s = f
        .select(ModulePolicy::StorageNet, &HostModules::default(), &[])
        .unwrap();
    let rel = f.rel(&s);
    assert!(rel.contains(&"kernel/drivers/misc/odd.ko".to_string()));
    assert!(rel.contains(&"kernel/drivers/misc/odd-helper.ko".to_string()));
    assert!(!rel.iter().any(|p| p.contains("snd") || p.contains("gpu")));
}

#[test]
fn dependency_on_a_builtin_or_unlisted_path_is_satisfied() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join(KVER);
    fs::create_dir_all(&dir).unwrap();
    // b.ko is only named as a dependency; depmod never writes that, but
    // the path is still what modprobe would load.
    fs::write(dir.join("modules.dep"), "kernel/fs/a.ko: kernel/fs/b.ko\n").unwrap();
    fs::write(dir.join("modules.builtin"), "kernel/fs/c.ko\n").unwrap();
    fs::write(dir.join("modules.softdep"), "softdep a pre: c\n").unwrap();
    let idx = ModuleIndex::load(&dir).unwrap();
    let s = idx
        .select(
            ModulePolicy::Host,
            &HostModules::default(),
            &["a".to_string()],
            &[],
        )
        .unwrap();
    assert_eq!(
        s.modules,
        [dir.join("kernel/fs/a.ko"), dir.join("kernel/fs/b.ko")]
    );
    assert_eq!(s.index_files.len(), 3);
}

#[test]
fn selection_is_deterministic() {
    let f = fake();
    let a = f
        .select(ModulePolicy::All, &HostModules::default(), &[])
        .unwrap();
    let b = f
        .select(ModulePolicy::All, &HostModules::default(), &[])
        .unwrap();
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    for v in [&a.modules, &a.index_files, &a.firmware] {
        assert!(
            v.windows(2).all(|w| w[0] < w[1]),
            "not sorted/unique: {v:?}"
        );
    }
}
