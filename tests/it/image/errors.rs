//! What write_initrd refuses, and that each refusal names the file at fault.

use std::io::Write;
use std::path::Path;

use crate::support::image::*;
use mkrescue::config::Compression;
use mkrescue::image::{Kind, Manifest, write_initrd};

fn try_write(m: &Manifest, c: Compression) -> (Vec<u8>, anyhow::Result<()>) {
    let mut out = Vec::new();
    let r = write_initrd(m, c, None, &mut out, &indicatif::ProgressBar::hidden()).map(|_| ());
    (out, r)
}

/// (5) A file of 4 GiB or more does not fit c_filesize: the build stops
/// before writing anything and names the file. The file is sparse: no disk
/// is used.
#[test]
fn files_of_4_gib_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let big = d.path().join("usr/share/huge.img");
    std::fs::create_dir_all(big.parent().unwrap()).unwrap();
    std::fs::File::create(&big)
        .unwrap()
        .set_len((4 << 30) + 1)
        .unwrap();
    std::fs::write(d.path().join("usr/share/small"), b"x").unwrap();
    let mut m = Manifest::new(d.path(), EPOCH);
    m.add_host_tree("/usr", "test").unwrap();
    let (out, r) = try_write(&m, Compression::None);
    let e = format!("{:#}", r.unwrap_err());
    assert!(e.contains("/usr/share/huge.img"), "{e}");
    assert!(
        e.contains(&big.display().to_string()),
        "names the host file: {e}"
    );
    assert!(e.contains("4 GiB"), "{e}");
    assert!(out.is_empty(), "nothing written before the check");

    // 4 GiB - 1 is the largest size the header holds; it is accepted by
    // the check (not written here: that would read 4 GiB).
    std::fs::File::options()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    let mut m = Manifest::new(d.path(), EPOCH);
    m.add_host_tree("/usr", "test").unwrap();
    assert!(format!("{:#}", try_write(&m, Compression::None).1.unwrap_err()).contains("4 GiB"));
}

fn one_file_manifest(root: &Path, content: &[u8]) -> Manifest {
    std::fs::create_dir_all(root.join("etc")).unwrap();
    // A large file before it, so the readers are busy when it changes
    // size; and a file after it.
    std::fs::write(root.join("etc/a-big"), pattern(3 << 20, 1)).unwrap();
    std::fs::write(root.join("etc/b-target"), content).unwrap();
    std::fs::write(root.join("etc/c-after"), b"after\n").unwrap();
    let mut m = Manifest::new(root, EPOCH);
    m.add_host_tree("/etc", "test").unwrap();
    m
}

/// (6) A file that shrinks or grows after it was added is an error naming
/// it and telling to run again, for every compressor.
#[test]
fn files_that_change_size_are_an_error() {
    for c in [Compression::None, Compression::Zstd] {
        for (what, new) in [("shrinks", &b"short"[..]), ("grows", &[b'x'; 5000][..])] {
            let d = tempfile::tempdir().unwrap();
            let m = one_file_manifest(d.path(), &[b'a'; 1000]);
            std::fs::write(d.path().join("etc/b-target"), new).unwrap();
            let (_, r) = try_write(&m, c);
            let e = format!("{:#}", r.expect_err(what));
            assert!(e.contains("/etc/b-target"), "{what}: {e}");
            assert!(e.contains("changed while building"), "{what}: {e}");
            assert!(e.contains("run again"), "{what}: {e}");
        }
    }
}

/// (6) Same size but gone: the error names the file.
#[test]
fn vanished_files_are_named() {
    let d = tempfile::tempdir().unwrap();
    let m = one_file_manifest(d.path(), b"content");
    std::fs::remove_file(d.path().join("etc/b-target")).unwrap();
    let e = format!("{:#}", try_write(&m, Compression::Zstd).1.unwrap_err());
    assert!(e.contains("etc/b-target"), "{e}");
}

/// A file whose size stays but whose bytes change is written as read: the
/// report's sha256 is of the bytes in the archive.
#[test]
fn hashes_are_of_the_bytes_written() {
    use sha2::{Digest, Sha256};
    let d = tempfile::tempdir().unwrap();
    let m = one_file_manifest(d.path(), b"before!");
    std::fs::write(d.path().join("etc/b-target"), b"after!!").unwrap();
    let (archive, report) = write(&m, Compression::None);
    let f = report
        .files
        .iter()
        .find(|f| f.path == Path::new("/etc/b-target"))
        .unwrap();
    assert_eq!(f.sha256, hex::encode(Sha256::digest(b"after!!")));
    let raw = parse_newc(&archive);
    let e = raw.iter().find(|e| e.name == b"etc/b-target").unwrap();
    assert_eq!(e.data, b"after!!");
}

/// Entries the kernel would skip or mangle are refused up front, naming
/// the path.
#[test]
fn unrepresentable_entries_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let cases: Vec<(Manifest, &str)> = vec![
        {
            let mut m = Manifest::new(d.path(), EPOCH);
            m.add_symlink("/bin/empty-target", "", "test").unwrap();
            (m, "/bin/empty-target")
        },
        {
            let mut m = Manifest::new(d.path(), EPOCH);
            m.add_symlink("/bin/long-target", "x".repeat(4096), "test")
                .unwrap();
            (m, "/bin/long-target")
        },
        {
            let mut m = Manifest::new(d.path(), EPOCH);
            m.add_device(
                "/dev/too-big",
                Kind::CharDev {
                    major: 4096,
                    minor: 0,
                },
                0o600,
                "test",
            )
            .unwrap();
            (m, "/dev/too-big")
        },
        {
            let mut m = Manifest::new(d.path(), EPOCH);
            // 16 components of 255 bytes and "/f": 4097 bytes without the
            // leading /, 4098 with the NUL.
            let long = format!("/{}/", vec!["d".repeat(255); 16].join("/"));
            m.add_bytes(format!("{long}f"), "x", 0o644, "test").unwrap();
            (m, "is 4097 bytes long")
        },
        {
            let mut m = Manifest::new(d.path(), 1 << 33);
            m.add_bytes("/late", "x", 0o644, "test").unwrap();
            (m, "/late")
        },
    ];
    for (m, needle) in cases {
        let (out, r) = try_write(&m, Compression::None);
        let e = format!("{:#}", r.unwrap_err());
        assert!(e.contains(needle), "{needle}: {e}");
        assert!(out.is_empty(), "{needle}: nothing written");
    }
}

/// A failing output (a full disk) is an error, not a panic, and the reader
/// threads stop.
#[test]
fn output_errors_are_reported() {
    struct Full(usize);
    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let n = buf.len().min(self.0);
            self.0 -= n;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let fx = fixture(false, false);
    for c in [Compression::None, Compression::Gzip] {
        let r = write_initrd(
            &fx.manifest,
            c,
            None,
            Full(10_000),
            &indicatif::ProgressBar::hidden(),
        );
        let e = format!("{:#}", r.unwrap_err());
        assert!(e.contains("No space left on device"), "{e}");
    }
}

/// The progress bar, whose length the caller sets to the sum of the file
/// sizes, ends full, hard links included.
#[test]
fn progress_ends_at_the_total() {
    let fx = fixture(true, true);
    let total: u64 = fx.manifest.payload_bytes();
    let pb = indicatif::ProgressBar::hidden();
    pb.set_length(total);
    write_initrd(&fx.manifest, Compression::None, None, Vec::new(), &pb).unwrap();
    assert_eq!(pb.position(), total);
}
