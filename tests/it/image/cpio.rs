//! The cpio newc archive read back by independent readers: the `cpio` crate,
//! a strict parser written from buffer-format.rst, and GNU cpio (-t and
//! -idm), on a tree with every kind of entry.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Cursor, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::support::image::*;
use mkrescue::config::Compression;
use mkrescue::image::{Entry, Kind};

/// Everything the `cpio` crate reports for one entry.
struct CrateEntry {
    name: String,
    ino: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    mtime: u32,
    rdev: (u32, u32),
    data: Vec<u8>,
}

fn read_with_cpio_crate(archive: &[u8]) -> Vec<CrateEntry> {
    let mut out = Vec::new();
    let mut inner = Cursor::new(archive);
    loop {
        let mut r = cpio::NewcReader::new(inner).expect("cpio crate reads the header");
        let e = r.entry().clone();
        if e.is_trailer() {
            break;
        }
        let mut data = Vec::new();
        r.read_to_end(&mut data).unwrap();
        out.push(CrateEntry {
            name: e.name().to_string(),
            ino: e.ino(),
            mode: e.mode(),
            uid: e.uid(),
            gid: e.gid(),
            nlink: e.nlink(),
            mtime: e.mtime(),
            rdev: (e.rdev_major(), e.rdev_minor()),
            data,
        });
        inner = r.finish().unwrap();
    }
    out
}

/// (1) The `cpio` crate sees every manifest entry in order with its name,
/// mode, owner, time, contents, symlink target and device number; hard
/// links share an inode and carry the data once, on the last name.
#[test]
fn cpio_crate_reads_back_every_entry() {
    let fx = fixture(true, false);
    let (archive, report) = write(&fx.manifest, Compression::None);
    let got = read_with_cpio_crate(&archive);
    let want: Vec<(&std::path::PathBuf, &Entry)> = fx.manifest.iter().collect();
    assert_eq!(got.len(), want.len());

    let groups = link_groups(&fx.manifest);
    let last_of_group: HashSet<&Path> =
        groups.iter().map(|g| g.last().unwrap().as_path()).collect();
    let group_of: HashMap<&Path, usize> = groups
        .iter()
        .enumerate()
        .flat_map(|(i, g)| g.iter().map(move |p| (p.as_path(), i)))
        .collect();

    let mut inos = HashSet::new();
    let mut group_inos: HashMap<usize, u32> = HashMap::new();
    for (g, (path, e)) in got.iter().zip(&want) {
        assert_eq!(g.name.as_bytes(), name_of(path), "order and names");
        assert_eq!(g.mode, e.type_bits() | e.mode, "{}", path.display());
        assert_eq!((g.uid, g.gid), (e.uid, e.gid), "{}", path.display());
        assert_eq!(u64::from(g.mtime), e.mtime, "{}", path.display());
        match &e.kind {
            Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } => {
                assert_eq!(g.rdev, (*major, *minor), "{}", path.display());
                assert!(g.data.is_empty());
            }
            _ => assert_eq!(g.rdev, (0, 0)),
        }
        match group_of.get(path.as_path()) {
            Some(&gi) => {
                assert_eq!(g.nlink as usize, groups[gi].len(), "{}", path.display());
                let ino = *group_inos.entry(gi).or_insert(g.ino);
                assert_eq!(g.ino, ino, "hard links share an inode: {}", path.display());
                if last_of_group.contains(path.as_path()) {
                    assert_eq!(g.data, content_of(&e.kind), "{}", path.display());
                } else {
                    assert!(g.data.is_empty(), "data only on the last link");
                }
            }
            None => {
                assert!(inos.insert(g.ino), "inode {} reused", g.ino);
                let nlink = if e.kind == Kind::Dir { 2 } else { 1 };
                assert_eq!(g.nlink, nlink, "{}", path.display());
                assert_eq!(g.data, content_of(&e.kind), "{}", path.display());
            }
        }
    }
    // Inode numbers: every entry a new one, in order from 1, except later
    // names of a hard-link group.
    let mut expected = 1;
    let mut seen = HashSet::new();
    for g in &got {
        if seen.insert(g.ino) {
            assert_eq!(g.ino, expected);
            expected += 1;
        }
    }
    for (gi, ino) in &group_inos {
        assert!(!inos.contains(ino), "group {gi} shares inode {ino}");
    }
    assert_eq!(report.cpio_bytes, archive.len() as u64);
    assert_eq!(report.compressed_bytes, archive.len() as u64);
}

/// (4) Every header starts on a 4-byte boundary, padding is NUL, the
/// trailer is all zero but c_nlink 1, and nothing follows its padding.
#[test]
fn headers_and_trailer_are_aligned() {
    let fx = fixture(true, true);
    let (archive, _) = write(&fx.manifest, Compression::None);
    let entries = parse_newc(&archive);
    assert_eq!(entries.len(), fx.manifest.len() + 1);
    for e in &entries {
        assert_eq!(e.offset % 4, 0);
        assert_eq!(e.dev, (0, 0), "c_maj/c_min are always 0");
        assert_eq!(e.check, 0, "c_chksum is 0 for 070701");
    }
    let t = entries.last().unwrap();
    assert_eq!(t.name, b"TRAILER!!!");
    assert_eq!(
        (t.ino, t.mode, t.uid, t.gid, t.nlink, t.mtime, t.filesize),
        (0, 0, 0, 0, 1, 0, 0)
    );
    assert_eq!(t.rdev, (0, 0));
    assert_eq!(archive.len() % 4, 0);
}

/// (7) Names are bytes: a non-UTF-8 name goes in and comes out unchanged.
#[test]
fn non_utf8_names_round_trip() {
    let fx = fixture(false, true);
    let (archive, report) = write(&fx.manifest, Compression::None);
    let mut want = b"etc/".to_vec();
    want.extend_from_slice(NON_UTF8);
    let e = parse_newc(&archive)
        .into_iter()
        .find(|e| e.name == want)
        .expect("the non-UTF-8 name is in the archive");
    assert_eq!(e.data, b"not utf-8\n");
    assert!(
        report
            .files
            .iter()
            .any(|f| f.path.as_os_str().as_bytes().ends_with(NON_UTF8))
    );

    // GNU cpio lists and extracts it under the same bytes.
    let listed = pipe(
        {
            let mut c = tool("cpio");
            c.args(["-t", "--quiet"]);
            c
        },
        &archive,
    );
    assert!(listed.split(|&b| b == b'\n').any(|l| l == want));
    let out = tempfile::tempdir().unwrap();
    extract_with_gnu_cpio(&archive, out.path());
    let extracted = out
        .path()
        .join("etc")
        .join(std::ffi::OsStr::from_bytes(NON_UTF8));
    assert_eq!(std::fs::read(extracted).unwrap(), b"not utf-8\n");
}

/// (3) `cpio -t` lists every path, in manifest order, without a leading /.
#[test]
fn gnu_cpio_lists_every_path() {
    let fx = fixture(true, true);
    let (archive, _) = write(&fx.manifest, Compression::None);
    let listed = pipe(
        {
            let mut c = tool("cpio");
            c.args(["-t", "--quiet"]);
            c
        },
        &archive,
    );
    let mut lines: Vec<&[u8]> = listed.split(|&b| b == b'\n').collect();
    assert_eq!(lines.pop(), Some(&b""[..]), "output ends with a newline");
    let want: Vec<Vec<u8>> = fx.manifest.iter().map(|(p, _)| name_of(p)).collect();
    assert_eq!(lines, want);
}

fn extract_with_gnu_cpio(archive: &[u8], into: &Path) {
    let mut c = tool("cpio");
    c.args(["-idm", "--no-absolute-filenames", "--quiet"])
        .current_dir(into);
    pipe(c, archive);
}

/// (2) GNU cpio -idm extracts the tree we described: types, modes, times,
/// contents, symlink targets, hard links sharing an inode; nothing more.
/// (Devices are left out: creating them needs root.)
#[test]
fn gnu_cpio_extracts_the_same_tree() {
    let fx = fixture(false, true);
    let (archive, _) = write(&fx.manifest, Compression::None);
    let out = tempfile::tempdir().unwrap();
    extract_with_gnu_cpio(&archive, out.path());
    let root = out.path();

    let mut link_inodes: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    for (path, e) in fx.manifest.iter() {
        let p = root.join(path.strip_prefix("/").unwrap());
        let md = std::fs::symlink_metadata(&p)
            .unwrap_or_else(|err| panic!("{} was not extracted: {err}", path.display()));
        let what = path.display();
        assert_eq!(md.mode() & libc::S_IFMT, e.type_bits(), "{what}");
        match &e.kind {
            Kind::Symlink { target } => {
                assert_eq!(&std::fs::read_link(&p).unwrap(), target, "{what}");
            }
            Kind::File { link_key, .. } => {
                assert_eq!(std::fs::read(&p).unwrap(), content_of(&e.kind), "{what}");
                if let Some(k) = link_key {
                    let ino = *link_inodes.entry(*k).or_insert(md.ino());
                    assert_eq!(md.ino(), ino, "{what} is a hard link of its group");
                    assert!(md.nlink() > 1, "{what}");
                }
            }
            Kind::Bytes { .. } => {
                assert_eq!(std::fs::read(&p).unwrap(), content_of(&e.kind), "{what}");
                assert_eq!(md.nlink(), 1);
            }
            _ => {}
        }
        if !matches!(e.kind, Kind::Symlink { .. }) {
            assert_eq!(md.permissions().mode() & 0o7777, e.mode, "{what}");
        }
        // -m restores file times. (GNU cpio 2.13 sets a directory's time
        // when it creates it, so creating its children changes it again.)
        if matches!(e.kind, Kind::File { .. } | Kind::Bytes { .. }) {
            assert_eq!(md.mtime() as u64, e.mtime, "{what} mtime");
        }
    }
    // The old mtime was kept, the new ones clamped.
    let motd = std::fs::metadata(root.join("etc/motd")).unwrap();
    assert_eq!(motd.mtime() as u64, OLD_MTIME);
    // Nothing extracted that the manifest does not have.
    let mut count = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            count += 1;
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    assert_eq!(count, fx.manifest.len());
}

/// The report lists every regular file with its size and the sha256 of its
/// bytes, hard links included.
#[test]
fn report_hashes_every_regular_file() {
    use sha2::{Digest, Sha256};
    let fx = fixture(false, true);
    let (_, report) = write(&fx.manifest, Compression::None);
    let regular: Vec<_> = fx
        .manifest
        .iter()
        .filter(|(_, e)| matches!(e.kind, Kind::File { .. } | Kind::Bytes { .. }))
        .collect();
    assert_eq!(report.files.len(), regular.len());
    for (f, (path, e)) in report.files.iter().zip(regular) {
        assert_eq!(&f.path, path);
        let content = content_of(&e.kind);
        assert_eq!(f.size, content.len() as u64);
        assert_eq!(
            f.sha256,
            hex::encode(Sha256::digest(&content)),
            "{}",
            path.display()
        );
        match &e.kind {
            Kind::File { source, .. } => assert_eq!(f.source.as_ref(), Some(source)),
            _ => assert_eq!(f.source, None),
        }
    }
}

/// The archive's layout at a glance: a change to order, modes, link counts
/// or sizes shows as a diff. (uid/gid are the test runner's, left out.)
#[test]
fn listing_snapshot() {
    let fx = fixture(true, false);
    let (archive, _) = write(&fx.manifest, Compression::None);
    let listing: String = parse_newc(&archive)
        .iter()
        .map(|e| {
            format!(
                "{:>4} {:06o} {} {:>8} {:>10} {:>4}:{:<7} {}\n",
                e.ino,
                e.mode,
                e.nlink,
                e.filesize,
                e.mtime,
                e.rdev.0,
                e.rdev.1,
                String::from_utf8_lossy(&e.name)
            )
        })
        .collect();
    insta::assert_snapshot!(listing);
}

/// Hard links are only kept between names that agree on everything the
/// inode holds: a name whose manifest entry has another mode gets its own
/// inode and data, and a host file with several links of which the image
/// has one is a plain file (c_nlink 1, data present).
#[test]
fn hard_links_only_where_the_entries_agree() {
    use mkrescue::image::Manifest;
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    std::fs::write(r.join("a"), b"shared\n").unwrap();
    std::fs::hard_link(r.join("a"), r.join("b")).unwrap();
    std::fs::hard_link(r.join("a"), r.join("c")).unwrap();
    std::fs::hard_link(r.join("a"), r.join("lonely")).unwrap();
    let mut m = Manifest::new(r, EPOCH);
    m.add_host_file_as(&r.join("a"), "/x/a", "test").unwrap();
    m.add_host_file_as(&r.join("b"), "/x/b", "test").unwrap();
    m.add_host_file_as(&r.join("c"), "/x/c", "test").unwrap();
    // Same host inode, but the plan wants it executable here.
    let mut e = m.get("/x/c").unwrap().clone();
    e.mode = 0o755;
    m.insert("/y/c-exec", e).unwrap();
    let (archive, report) = write(&m, Compression::None);
    let raw = parse_newc(&archive);
    let get = |n: &[u8]| raw.iter().find(|e| e.name == n).unwrap();
    let (a, b, c, exec) = (get(b"x/a"), get(b"x/b"), get(b"x/c"), get(b"y/c-exec"));
    assert_eq!((a.ino, a.nlink, a.filesize), (b.ino, 3, 0));
    assert_eq!((b.ino, b.nlink, b.filesize), (c.ino, 3, 0));
    assert_eq!((c.nlink, c.data.as_slice()), (3, &b"shared\n"[..]));
    assert_ne!(exec.ino, a.ino);
    assert_eq!((exec.nlink, exec.data.as_slice()), (1, &b"shared\n"[..]));
    assert_eq!(exec.mode, 0o100755);
    assert!(
        report
            .files
            .iter()
            .all(|f| f.size == 7 && !f.sha256.is_empty())
    );

    // One name of a 5-link host file.
    let mut m = Manifest::new(r, EPOCH);
    m.add_host_file_as(&r.join("lonely"), "/lonely", "test")
        .unwrap();
    let (archive, _) = write(&m, Compression::None);
    let e = parse_newc(&archive)
        .into_iter()
        .find(|e| e.name == b"lonely")
        .unwrap();
    assert_eq!((e.nlink, e.data.as_slice()), (1, &b"shared\n"[..]));
}
