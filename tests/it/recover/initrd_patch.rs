//! A missing driver appended to an initramfs (`recover::initrd_patch`),
//! against the real Debian kernel CI installs (linux-image-amd64, as
//! tests/it/kmod.rs): the server's image holds virtio_blk, the new disks
//! are NVMe.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mkrescue::image::cpio::{Header, Writer};
use mkrescue::recover::initrd_patch::add_modules;
use mkrescue::recover::needs::{Compression, initrd_modules, read_initrd};

/// The kernel kmod.rs tests against (the newest under /lib/modules with
/// modules, or MKRESCUE_TEST_KVER): its version and directory.
fn kernel() -> (String, PathBuf) {
    let dir = crate::kmod::modules_dir();
    let kver = dir.file_name().unwrap().to_string_lossy().into_owned();
    (kver, dir)
}

fn newc(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = Writer::new(Vec::new());
    for (i, (name, data)) in files.iter().enumerate() {
        let h = Header {
            ino: i as u32 + 1,
            mode: 0o100644,
            nlink: 1,
            filesize: data.len() as u32,
            ..Header::default()
        };
        w.entry(name.as_bytes(), &h, data).unwrap();
    }
    w.finish().unwrap().0
}

fn compress(how: Compression, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    match how {
        Compression::Plain => data.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Compression::Zstd => zstd::encode_all(data, 1).unwrap(),
        Compression::Xz => {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
    }
}

/// A root whose /lib/modules/KVER is the real kernel's, and the server's
/// initramfs: a microcode archive, then (stored `how`) virtio_blk with
/// what it needs, the modules.dep for them and initramfs-tools'
/// conf/modules.
fn server(how: Compression) -> (tempfile::TempDir, String, PathBuf, Vec<u8>) {
    let (kver, kdir) = kernel();
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("lib/modules")).unwrap();
    std::os::unix::fs::symlink(&kdir, t.path().join("lib/modules").join(&kver)).unwrap();
    let prefix = format!("usr/lib/modules/{kver}");
    let dep = std::fs::read_to_string(kdir.join("modules.dep")).unwrap();
    let line = dep
        .lines()
        .find(|l| l.contains("/virtio_blk.ko"))
        .expect("virtio_blk in modules.dep")
        .to_string();
    let (module, needs) = line.split_once(':').unwrap();
    let mut files = Vec::new();
    for rel in std::iter::once(module).chain(needs.split_whitespace()) {
        files.push((
            format!("{prefix}/{rel}"),
            std::fs::read(kdir.join(rel)).unwrap(),
        ));
    }
    files.push((
        format!("{prefix}/modules.dep"),
        format!("{line}\n").into_bytes(),
    ));
    files.push(("conf/modules".into(), b"virtio_blk\n".to_vec()));
    files.push(("usr/bin/init".into(), b"#!/bin/sh\n".to_vec()));
    let mut img = newc(&[(
        "kernel/x86/microcode/AuthenticAMD.bin".into(),
        b"ucode".to_vec(),
    )]);
    let main = newc(&files);
    if how == Compression::Plain {
        img.extend_from_slice(&main);
        // An odd length: the appended archive must start on 4 bytes.
        img.extend_from_slice(&[0, 0, 0, 0, 0]);
    } else {
        img.extend(compress(how, &main));
    }
    let p = t.path().join("boot/initrd.img");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, &img).unwrap();
    (t, kver, p, img)
}

/// Every member by name, the last of a name winning (as the kernel unpacks).
fn members(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let data = std::fs::read(p).unwrap();
    let mut out = BTreeMap::new();
    read_initrd(&data, &mut |m| {
        out.insert(m.name.to_string(), m.data.to_vec());
    })
    .unwrap();
    out
}

#[test]
fn nvme_is_appended_in_the_images_own_compression() {
    for how in [
        Compression::Zstd,
        Compression::Gzip,
        Compression::Xz,
        Compression::Plain,
    ] {
        let (t, kver, initrd, orig) = server(how);
        let before = initrd_modules(&initrd).unwrap();
        assert!(before.contains("virtio_blk") && !before.contains("nvme"));
        let p = add_modules(
            t.path(),
            &kver,
            &initrd,
            &["nvme".to_string()],
            "update-initramfs",
        )
        .unwrap()
        .expect("nvme was missing");
        assert_eq!(p.compression, how, "{how:?}");
        assert!(
            p.modules.contains(&"nvme".to_string()) && p.modules.contains(&"nvme_core".into()),
            "{how:?}: {:?}",
            p.modules
        );
        // The original is the image's first bytes, untouched.
        let now = std::fs::read(&initrd).unwrap();
        assert_eq!(p.orig_len, orig.len() as u64);
        assert_eq!(now.len() as u64, p.orig_len + p.appended);
        assert_eq!(&now[..orig.len()], &orig[..], "{how:?}");
        let tail = &now[orig.len()..];
        match how {
            Compression::Plain => {
                let start = tail.iter().position(|b| *b != 0).unwrap() + orig.len();
                assert_eq!(start % 4, 0, "an archive the kernel would skip");
                assert!(now[start..].starts_with(b"070701"));
            }
            Compression::Zstd => assert!(tail.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])),
            Compression::Gzip => assert!(tail.starts_with(&[0x1f, 0x8b])),
            // The xz stream flags: check type 1 (CRC32), the only one the
            // kernel's decoder takes.
            Compression::Xz => assert_eq!(&tail[..8], b"\xfd7zXZ\0\0\x01"),
        }
        // Read back: both archives, the later one's files winning.
        let after = initrd_modules(&initrd).unwrap();
        assert!(after.contains("nvme") && after.contains("nvme_core"));
        assert!(after.contains("virtio_blk"));
        let m = members(&initrd);
        let prefix = format!("usr/lib/modules/{kver}");
        let dep = String::from_utf8(m[&format!("{prefix}/modules.dep")].clone()).unwrap();
        assert!(
            dep.lines()
                .any(|l| l.starts_with("kernel/drivers/nvme/host/nvme.ko")),
            "{dep}"
        );
        assert!(
            dep.contains("/virtio_blk.ko"),
            "the old modules stay: {dep}"
        );
        let alias = String::from_utf8(m[&format!("{prefix}/modules.alias")].clone()).unwrap();
        assert!(
            alias
                .lines()
                .any(|l| l.starts_with("alias pci:") && l.ends_with(" nvme")),
            "udev finds nvme by its PCI class"
        );
        assert!(m.contains_key(&format!("{prefix}/modules.alias.bin")));
        assert_eq!(m["conf/modules"], b"virtio_blk\nnvme\n");
        // Done once: a second run has nothing to add.
        assert_eq!(
            add_modules(
                t.path(),
                &kver,
                &initrd,
                &["nvme".to_string()],
                "update-initramfs"
            )
            .unwrap(),
            None
        );
        let line = p.line(&kver, Path::new("/boot/initrd.img"));
        assert!(
            line.contains(&format!("truncate -s {} /boot/initrd.img`", orig.len())),
            "{line}"
        );
    }
}

/// dracut's images have no conf/modules; none is added.
#[test]
fn dracut_gets_no_conf_modules() {
    let (t, kver, initrd, _) = server(Compression::Zstd);
    add_modules(t.path(), &kver, &initrd, &["nvme".to_string()], "dracut")
        .unwrap()
        .unwrap();
    let m = members(&initrd);
    assert_eq!(
        m["conf/modules"], b"virtio_blk\n",
        "the server's own, as it was"
    );
}

/// Refusals leave the image byte for byte as it was: no module index in
/// it, a module the kernel does not have.
#[test]
fn what_cannot_be_appended_leaves_the_image_alone() {
    let (t, kver, initrd, orig) = server(Compression::Zstd);
    let e = add_modules(
        t.path(),
        &kver,
        &initrd,
        &["no_such_driver".to_string()],
        "update-initramfs",
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains("no_such_driver"), "{e:#}");
    assert_eq!(std::fs::read(&initrd).unwrap(), orig);

    let bare = t.path().join("boot/initrd-bare.img");
    let img = zstd::encode_all(
        &newc(&[("usr/bin/init".into(), b"#!/bin/sh\n".to_vec())])[..],
        1,
    )
    .unwrap();
    std::fs::write(&bare, &img).unwrap();
    let e = add_modules(
        t.path(),
        &kver,
        &bare,
        &["nvme".to_string()],
        "update-initramfs",
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains("modules.dep"), "{e:#}");
    assert_eq!(std::fs::read(&bare).unwrap(), img);
}
