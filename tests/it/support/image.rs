//! Shared by the tests in tests/it/image/: a host tree with every kind of
//! entry, the Manifest over it, an independent newc parser, and helpers to
//! run the reference tools (GNU cpio, zstd, xz, gzip).

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

use mkrescue::config::Compression;
use mkrescue::image::{ArchiveReport, Kind, Manifest, write_initrd};

/// Clamp of every mtime (2024-01-01).
pub const EPOCH: u64 = mkrescue::config::DEFAULT_EPOCH;
/// A time before EPOCH, kept as is.
pub const OLD_MTIME: u64 = 1_600_000_000;
/// Bytes that are not UTF-8 (Latin-1 "café" and a lone 0xff).
pub const NON_UTF8: &[u8] = b"caf\xe9-\xff.conf";

pub struct Fixture {
    /// Keeps the host tree alive.
    pub dir: tempfile::TempDir,
    pub manifest: Manifest,
}

impl Fixture {
    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

/// Content that does not compress to nothing and is not all one byte, so
/// misplaced data shows.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            // Half text-like, half noise: compressors have work to do.
            if i % 64 < 32 {
                b'a' + (i % 26) as u8
            } else {
                x as u8
            }
        })
        .collect()
}

fn write_file(path: &Path, data: &[u8], mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A host tree with directories, files of every padding remainder, a large
/// file, setuid, hard links (2 and 3 names), relative and absolute
/// symlinks, a merged-/usr symlink and optionally a non-UTF-8 name; plus
/// generated content, devices (optional: GNU cpio needs root to create
/// them), and a private directory.
pub fn fixture(devices: bool, non_utf8: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    write_file(&r.join("etc/motd"), b"hello\n", 0o644);
    write_file(&r.join("usr/bin/tool"), &pattern(100_003, 1), 0o755);
    write_file(&r.join("usr/bin/suid"), b"#!/bin/sh\n", 0o4755);
    write_file(&r.join("usr/bin/hl-a"), b"two names\n", 0o755);
    std::fs::hard_link(r.join("usr/bin/hl-a"), r.join("usr/bin/hl-b")).unwrap();
    write_file(&r.join("usr/lib/three/1"), &pattern(70_001, 2), 0o644);
    std::fs::hard_link(r.join("usr/lib/three/1"), r.join("usr/lib/three/2")).unwrap();
    std::fs::hard_link(r.join("usr/lib/three/1"), r.join("usr/lib/three/3")).unwrap();
    for n in 0..6 {
        write_file(
            &r.join(format!("usr/lib/sizes/s{n}")),
            &pattern(n, 10 + n as u32),
            0o644,
        );
    }
    write_file(
        &r.join("usr/lib/libc.so.6"),
        &pattern(2 * 1024 * 1024 + 1, 3),
        0o755,
    );
    symlink("libc.so.6", r.join("usr/lib/libc-link.so")).unwrap();
    symlink("usr/lib", r.join("lib")).unwrap();
    write_file(&r.join("srv/private/key"), b"secret\n", 0o600);
    // Directory modes must not depend on the runner's umask.
    for d in [
        "etc",
        "usr",
        "usr/bin",
        "usr/lib",
        "usr/lib/three",
        "usr/lib/sizes",
        "srv",
    ] {
        std::fs::set_permissions(r.join(d), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(
        r.join("srv/private"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let old = std::fs::File::options()
        .write(true)
        .open(r.join("etc/motd"))
        .unwrap();
    old.set_modified(UNIX_EPOCH + Duration::from_secs(OLD_MTIME))
        .unwrap();
    if non_utf8 {
        let name = OsStr::from_bytes(NON_UTF8);
        write_file(&r.join("etc").join(name), b"not utf-8\n", 0o644);
    }

    let mut m = Manifest::new(r, EPOCH);
    m.add_host_tree("/etc", "test").unwrap();
    m.add_host_tree("/usr", "test").unwrap();
    m.add_host_tree("/srv", "test").unwrap();
    m.add_host_path("/lib/libc-link.so", "test").unwrap();
    m.add_bytes("/init.conf", "generated = true\n", 0o600, "test")
        .unwrap();
    m.add_bytes("/empty.conf", "", 0o644, "test").unwrap();
    m.add_symlink("/sbin", "usr/bin", "test").unwrap();
    m.add_symlink("/bin/abs", "/usr/bin/tool", "test").unwrap();
    m.add_dir("/proc", 0o555, "test").unwrap();
    if devices {
        m.add_device(
            "/dev/console",
            Kind::CharDev { major: 5, minor: 1 },
            0o600,
            "test",
        )
        .unwrap();
        m.add_device(
            "/dev/sda",
            Kind::BlockDev { major: 8, minor: 0 },
            0o660,
            "test",
        )
        .unwrap();
        m.add_device(
            "/dev/big",
            Kind::CharDev {
                major: 4095,
                minor: 1_048_575,
            },
            0o600,
            "test",
        )
        .unwrap();
    }
    Fixture { dir, manifest: m }
}

/// Writes `m` with `c` into memory.
pub fn write(m: &Manifest, c: Compression) -> (Vec<u8>, ArchiveReport) {
    let mut out = Vec::new();
    let report = write_initrd(m, c, None, &mut out, &indicatif::ProgressBar::hidden())
        .unwrap_or_else(|e| panic!("write_initrd: {e:#}"));
    (out, report)
}

/// The archive name of an image path.
pub fn name_of(path: &Path) -> Vec<u8> {
    path.as_os_str().as_bytes()[1..].to_vec()
}

/// The bytes an image entry should hold: file contents or symlink target.
pub fn content_of(kind: &Kind) -> Vec<u8> {
    match kind {
        Kind::File { source, .. } => std::fs::read(source).unwrap(),
        Kind::Bytes { data } => data.clone(),
        Kind::Symlink { target } => target.as_os_str().as_bytes().to_vec(),
        _ => Vec::new(),
    }
}

/// One entry as parsed by [`parse_newc`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raw {
    /// Offset of its header in the archive.
    pub offset: usize,
    pub ino: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub filesize: u32,
    pub dev: (u32, u32),
    pub rdev: (u32, u32),
    pub check: u32,
    pub name: Vec<u8>,
    pub data: Vec<u8>,
}

/// A strict newc parser written from buffer-format.rst for the tests,
/// independent of the writer: it checks the magic, that every field is 8
/// hex digits, that every header starts on a 4-byte boundary, that padding
/// is NUL, and that the archive ends right after the trailer's padding.
/// Returns every entry including the trailer.
pub fn parse_newc(a: &[u8]) -> Vec<Raw> {
    let mut out = Vec::new();
    let mut off = 0usize;
    loop {
        assert_eq!(off % 4, 0, "header at {off} is not 4-byte aligned");
        assert!(a.len() >= off + 110, "truncated header at {off}");
        let h = &a[off..off + 110];
        assert_eq!(&h[..6], b"070701", "magic at {off}");
        let field = |i: usize| {
            let s = &h[6 + 8 * i..6 + 8 * (i + 1)];
            assert!(
                s.iter().all(|c| c.is_ascii_hexdigit()),
                "field {i} at {off}: {s:?}"
            );
            u32::from_str_radix(std::str::from_utf8(s).unwrap(), 16).unwrap()
        };
        let namesize = field(11) as usize;
        let name_start = off + 110;
        let name_end = name_start + namesize;
        assert!(namesize >= 2, "name size {namesize} at {off}");
        assert_eq!(a[name_end - 1], 0, "name at {off} not NUL-terminated");
        let name = a[name_start..name_end - 1].to_vec();
        assert!(!name.contains(&0), "NUL inside name at {off}");
        let data_start = name_end.next_multiple_of(4);
        assert!(
            a[name_end..data_start].iter().all(|&b| b == 0),
            "name padding at {off}"
        );
        let filesize = field(6) as usize;
        let data_end = data_start + filesize;
        let next = data_end.next_multiple_of(4);
        assert!(a.len() >= next, "truncated data at {off}");
        assert!(
            a[data_end..next].iter().all(|&b| b == 0),
            "data padding at {off}"
        );
        let raw = Raw {
            offset: off,
            ino: field(0),
            mode: field(1),
            uid: field(2),
            gid: field(3),
            nlink: field(4),
            mtime: field(5),
            filesize: filesize as u32,
            dev: (field(7), field(8)),
            rdev: (field(9), field(10)),
            check: field(12),
            name,
            data: a[data_start..data_end].to_vec(),
        };
        off = next;
        let trailer = raw.name == b"TRAILER!!!";
        out.push(raw);
        if trailer {
            assert_eq!(off, a.len(), "bytes after the trailer");
            return out;
        }
    }
}

/// Runs a reference tool, panicking with a hint when it is missing.
pub fn tool(name: &str) -> Command {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{name} is needed to check the archive with a reference implementation (apt install {name})"
    );
    Command::new(name)
}

/// Feeds `input` to `cmd` and returns its stdout; panics with stderr on
/// failure.
pub fn pipe(mut cmd: Command, input: &[u8]) -> Vec<u8> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Image paths of the entries of each hard-link group of `m` with more than
/// one name, in archive order.
pub fn link_groups(m: &Manifest) -> Vec<Vec<PathBuf>> {
    let mut groups: std::collections::BTreeMap<(u64, u64), Vec<PathBuf>> = Default::default();
    for (p, e) in m.iter() {
        if let Kind::File {
            link_key: Some(k), ..
        } = &e.kind
        {
            groups.entry(*k).or_default().push(p.clone());
        }
    }
    groups.into_values().filter(|g| g.len() > 1).collect()
}
