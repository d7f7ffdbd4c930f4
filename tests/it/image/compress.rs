//! The compressors: standard streams the reference tools decompress, the
//! header flags the kernel needs, output that is the same on every run and
//! for any thread count, and the kernel config check.

use std::io::{Read, Write};
use std::path::Path;

use crate::support::image::*;
use mkrescue::config::Compression;
use mkrescue::error::{Code, code_of};
use mkrescue::image::compress::{Encoder, check_kernel_support};
use mkrescue::image::write_initrd;

const ALL: [Compression; 4] = [
    Compression::Zstd,
    Compression::Xz,
    Compression::Gzip,
    Compression::None,
];

/// A few generated files: enough for the header checks.
fn tiny_manifest() -> mkrescue::image::Manifest {
    let mut m = mkrescue::image::Manifest::new("/nonexistent", EPOCH);
    m.add_bytes("/etc/a", pattern(10_000, 1), 0o644, "test")
        .unwrap();
    m.add_bytes("/etc/b", "b\n", 0o644, "test").unwrap();
    m
}

fn decompress_with_cli(c: Compression, data: &[u8]) -> Vec<u8> {
    let cmd = match c {
        Compression::Zstd => "zstd",
        Compression::Xz => "xz",
        Compression::Gzip => "gzip",
        Compression::None => return data.to_vec(),
    };
    let mut t = tool(cmd);
    t.args(["-d", "-c"]);
    pipe(t, data)
}

fn decompress_with_crate(c: Compression, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match c {
        Compression::Zstd => out = zstd::stream::decode_all(data).unwrap(),
        Compression::Xz => {
            liblzma::read::XzDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap();
        }
        Compression::Gzip => {
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap();
        }
        Compression::None => out = data.to_vec(),
    }
    out
}

/// (8) Every compressor's output decompresses, with the standard tool and
/// with a library, to exactly the uncompressed archive, and the report
/// counts both sizes.
#[test]
fn every_compressor_round_trips() {
    let fx = fixture(false, true);
    let (plain, plain_report) = write(&fx.manifest, Compression::None);
    for c in ALL {
        let (packed, report) = write(&fx.manifest, c);
        assert_eq!(report.compressed_bytes, packed.len() as u64, "{c:?}");
        assert_eq!(report.cpio_bytes, plain.len() as u64, "{c:?}");
        assert_eq!(report.files.len(), plain_report.files.len());
        assert!(decompress_with_cli(c, &packed) == plain, "{c:?} via CLI");
        assert!(
            decompress_with_crate(c, &packed) == plain,
            "{c:?} via crate"
        );
        if c != Compression::None {
            assert!(packed.len() < plain.len(), "{c:?} compresses");
        }
    }
}

/// (8) The xz stream's check is CRC32, the only one besides "none" the
/// kernel's XZ Embedded decoder verifies (Documentation/staging/xz.rst).
#[test]
fn xz_uses_crc32() {
    let (xz, _) = write(&tiny_manifest(), Compression::Xz);
    // Stream header (xz file format 1.0.4, 2.1.1): magic, two bytes of
    // stream flags whose second byte is the check ID (0x01 = CRC32), and a
    // CRC32 of those two bytes.
    assert_eq!(&xz[..6], b"\xfd7zXZ\0");
    assert_eq!(&xz[6..8], &[0x00, 0x01]);
    let mut crc = flate2::Crc::new();
    crc.update(&xz[6..8]);
    assert_eq!(&xz[8..12], &crc.sum().to_le_bytes());
    // The stream footer repeats the flags before its "YZ" magic.
    let n = xz.len();
    assert_eq!(&xz[n - 4..n - 2], &[0x00, 0x01]);
    assert_eq!(&xz[n - 2..], b"YZ");
    // And xz itself says so (--list needs a file, not stdin).
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("initrd.xz");
    std::fs::write(&file, &xz).unwrap();
    let mut t = tool("xz");
    t.args(["--robot", "--list", "--verbose"]).arg(&file);
    let listing = String::from_utf8(pipe(t, b"")).unwrap();
    let stream = listing
        .lines()
        .find(|l| l.starts_with("stream\t"))
        .expect("a stream line");
    assert!(stream.split('\t').any(|f| f == "CRC32"), "{listing}");
}

/// The zstd frame carries its content checksum (Frame_Header_Descriptor
/// bit 2, RFC 8878 3.1.1.1.1), and the gzip header has nothing that varies
/// (mtime 0, no name, OS 255).
#[test]
fn zstd_and_gzip_headers() {
    let m = tiny_manifest();
    let (zst, _) = write(&m, Compression::Zstd);
    assert_eq!(&zst[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
    assert_ne!(zst[4] & 0b100, 0, "content checksum flag");
    let (gz, _) = write(&m, Compression::Gzip);
    assert_eq!(&gz[..4], &[0x1f, 0x8b, 8, 0], "deflate, no flags");
    assert_eq!(&gz[4..8], &[0, 0, 0, 0], "mtime 0");
    assert_eq!(gz[9], 255, "OS unknown");
}

/// (10) Two writes of the same manifest are byte-identical, whatever the
/// compressor.
#[test]
fn two_writes_are_identical() {
    let fx = fixture(true, true);
    for c in ALL {
        let (a, ra) = write(&fx.manifest, c);
        let (b, rb) = write(&fx.manifest, c);
        assert!(a == b, "{c:?} output differs between runs");
        let hashes = |r: &mkrescue::image::ArchiveReport| {
            r.files.iter().map(|f| f.sha256.clone()).collect::<Vec<_>>()
        };
        assert_eq!(hashes(&ra), hashes(&rb));
    }
}

/// (10) zstd and xz output does not depend on the number of threads nor on
/// how the input is cut into writes, so a build on a 1-core machine equals
/// one on a 64-core machine. The input is large enough for several zstd
/// jobs (2 MiB at level 1) and xz blocks (1 MiB at preset 0).
#[test]
fn output_is_independent_of_threads_and_write_sizes() {
    let data = pattern(7 << 20, 7);
    for (c, level) in [(Compression::Zstd, 1), (Compression::Xz, 0)] {
        let mut outputs = Vec::new();
        for (threads, chunk) in [(1, 1 << 20), (2, 4093), (4, 7 << 20)] {
            let mut e = Encoder::with_threads(Vec::new(), c, Some(level), threads).unwrap();
            for part in data.chunks(chunk) {
                e.write_all(part).unwrap();
            }
            outputs.push(e.finish().unwrap());
        }
        for o in &outputs[1..] {
            assert!(o == &outputs[0], "{c:?} output depends on threads");
        }
        if c == Compression::Xz {
            // Several blocks, so the threads really had work to share.
            let d = tempfile::tempdir().unwrap();
            let file = d.path().join("t.xz");
            std::fs::write(&file, &outputs[0]).unwrap();
            let mut t = tool("xz");
            t.args(["--robot", "--list", "--verbose"]).arg(&file);
            let listing = String::from_utf8(pipe(t, b"")).unwrap();
            let blocks = listing.lines().filter(|l| l.starts_with("block\t")).count();
            assert!(blocks > 3, "{listing}");
        }
        assert_eq!(decompress_with_crate(c, &outputs[0]), data);
    }
}

#[test]
fn compression_levels() {
    let fx = fixture(false, false);
    let pb = indicatif::ProgressBar::hidden();
    let size = |c, level| {
        let mut out = Vec::new();
        write_initrd(&fx.manifest, c, level, &mut out, &pb).map(|r| r.compressed_bytes)
    };
    assert!(size(Compression::Gzip, Some(1)).unwrap() > size(Compression::Gzip, Some(9)).unwrap());
    // The level reaches the compressor.
    assert_ne!(
        size(Compression::Zstd, Some(1)).unwrap(),
        size(Compression::Zstd, Some(9)).unwrap()
    );
    for (c, bad) in [
        (Compression::Zstd, 0),
        (Compression::Zstd, 20),
        (Compression::Xz, 10),
        (Compression::Gzip, 10),
    ] {
        let e = size(c, Some(bad)).unwrap_err();
        assert_eq!(code_of(&e), Code::Config, "{e:#}");
        assert!(e.to_string().contains("compress_level"), "{e:#}");
    }
}

fn kernel_config(dir: &Path, lines: &[&str]) -> std::path::PathBuf {
    let p = dir.join("config-6.1.0-test-amd64");
    let mut text = String::from("#\n# Automatically generated file; DO NOT EDIT.\n#\n");
    text.push_str("CONFIG_BLK_DEV_INITRD=y\nCONFIG_INITRAMFS_SOURCE=\"\"\n");
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(&p, text).unwrap();
    p
}

/// (9) The kernel config decides which compressions are allowed; the error
/// names the kernel, the file, the option, and what would work.
#[test]
fn kernel_support_from_config() {
    let d = tempfile::tempdir().unwrap();
    let all = kernel_config(
        d.path(),
        &[
            "CONFIG_RD_GZIP=y",
            "CONFIG_RD_BZIP2=y",
            "CONFIG_RD_XZ=y",
            "CONFIG_RD_ZSTD=y",
        ],
    );
    for c in ALL {
        check_kernel_support(&all, c).unwrap();
    }

    let no_zstd = kernel_config(
        d.path(),
        &[
            "CONFIG_RD_GZIP=y",
            "CONFIG_RD_XZ=y",
            "# CONFIG_RD_ZSTD is not set",
        ],
    );
    check_kernel_support(&no_zstd, Compression::Gzip).unwrap();
    check_kernel_support(&no_zstd, Compression::Xz).unwrap();
    let e = check_kernel_support(&no_zstd, Compression::Zstd).unwrap_err();
    assert_eq!(code_of(&e), Code::Host);
    assert_eq!(
        e.to_string(),
        format!(
            "kernel 6.1.0-test-amd64 cannot unpack a zstd initrd: {} lacks CONFIG_RD_ZSTD=y; \
             use --compress gzip (or another the kernel supports: xz, none)",
            no_zstd.display()
        )
    );

    // Only zstd: xz is refused and zstd suggested.
    let only_zstd = kernel_config(d.path(), &["CONFIG_RD_ZSTD=y", "CONFIG_RD_GZIP=m"]);
    let e = check_kernel_support(&only_zstd, Compression::Xz).unwrap_err();
    assert!(
        e.to_string().ends_with(
            "lacks CONFIG_RD_XZ=y; use --compress zstd (or another the kernel supports: none)"
        ),
        "{e}"
    );
    // Nothing compressed: only none is left, and always fine.
    let nothing = kernel_config(d.path(), &[]);
    let e = check_kernel_support(&nothing, Compression::Gzip).unwrap_err();
    assert!(e.to_string().ends_with("; use --compress none"), "{e}");
    check_kernel_support(&nothing, Compression::None).unwrap();
}

#[test]
fn unreadable_kernel_config_is_named() {
    let missing = Path::new("/nonexistent/config-6.1.0-x");
    let e = check_kernel_support(missing, Compression::Zstd).unwrap_err();
    assert!(
        format!("{e:#}").contains("/nonexistent/config-6.1.0-x"),
        "{e:#}"
    );
    // An uncompressed initrd needs nothing from the kernel config.
    check_kernel_support(missing, Compression::None).unwrap();
}
