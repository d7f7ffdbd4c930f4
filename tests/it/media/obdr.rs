//! The OBDR tape layout (ReaR's: rewind, `REAR-000` label in 20 records of
//! 512 bytes, the ISO in 2048-byte records, one filemark), checked record by
//! record and byte by byte in the SIMH tape image `--tape-file` writes.

use std::path::Path;
use std::process::Command;

use mkrescue::output::obdr::{self, SimhFile, TapeItem};

/// A real (small) ISO made by xorriso, as the ISO writer would.
fn small_iso(dir: &Path) -> std::path::PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("boot")).unwrap();
    std::fs::write(tree.join("boot/hello.txt"), b"rescue me\n").unwrap();
    let iso = dir.join("small.iso");
    let st = Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-V", "OBDRTEST", "-o"])
        .arg(&iso)
        .arg(&tree)
        .status()
        .expect("xorriso (apt-get install xorriso)");
    assert!(st.success());
    iso
}

#[test]
fn tape_file_records_byte_by_byte() {
    let dir = tempfile::tempdir().unwrap();
    let iso = small_iso(dir.path());
    let iso_bytes = std::fs::read(&iso).unwrap();
    assert_eq!(iso_bytes.len() % 2048, 0);
    let tap = dir.path().join("rescue.tap");
    let mut sink = SimhFile::create(&tap).unwrap();
    let n = obdr::write_layout(&mut sink, &iso).unwrap();
    drop(sink);
    assert_eq!(n as usize, iso_bytes.len() / 2048);

    let raw = std::fs::read(&tap).unwrap();
    // First record, by hand: length 512 little-endian, the label, NULs,
    // length again.
    assert_eq!(&raw[0..4], &[0x00, 0x02, 0x00, 0x00]);
    assert_eq!(&raw[4..12], b"REAR-000");
    assert!(raw[12..516].iter().all(|&b| b == 0));
    assert_eq!(&raw[516..520], &[0x00, 0x02, 0x00, 0x00]);
    // Total: 20 label records, the ISO records, filemark, end of medium.
    let label_len = 20 * (4 + 512 + 4);
    let iso_len = (iso_bytes.len() / 2048) * (4 + 2048 + 4);
    assert_eq!(raw.len(), label_len + iso_len + 4 + 4);
    // First ISO record right after the label area.
    assert_eq!(&raw[label_len..label_len + 4], &[0x00, 0x08, 0x00, 0x00]);
    assert_eq!(
        &raw[label_len + 4..label_len + 4 + 2048],
        &iso_bytes[..2048]
    );
    assert_eq!(&raw[raw.len() - 8..], &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);

    // And item by item.
    let items = obdr::read_simh(&raw).unwrap();
    assert_eq!(items.len(), 20 + iso_bytes.len() / 2048 + 2);
    let mut label = vec![0u8; 512];
    label[..8].copy_from_slice(b"REAR-000");
    assert_eq!(items[0], TapeItem::Record(label));
    for it in &items[1..20] {
        assert_eq!(*it, TapeItem::Record(vec![0u8; 512]));
    }
    for (i, chunk) in iso_bytes.chunks(2048).enumerate() {
        assert_eq!(
            items[20 + i],
            TapeItem::Record(chunk.to_vec()),
            "ISO record {i}"
        );
    }
    assert_eq!(items[items.len() - 2], TapeItem::Filemark);
    assert_eq!(items[items.len() - 1], TapeItem::EndOfMedium);
    // The ISO read back from the tape is the ISO (volume id at sector 16).
    let back: Vec<u8> = items[20..items.len() - 2]
        .iter()
        .flat_map(|i| match i {
            TapeItem::Record(d) => d.clone(),
            _ => panic!("not a record"),
        })
        .collect();
    assert_eq!(back, iso_bytes);
    assert_eq!(&back[16 * 2048 + 40..16 * 2048 + 48], b"OBDRTEST");
}

#[test]
fn not_an_iso_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.iso");
    std::fs::write(&bad, vec![1u8; 3000]).unwrap();
    let mut sink = SimhFile::create(&dir.path().join("x.tap")).unwrap();
    let e = obdr::write_layout(&mut sink, &bad).unwrap_err();
    assert!(format!("{e:#}").contains("2048-byte"), "{e:#}");
}

#[test]
fn truncated_tape_image_is_an_error() {
    let mut raw = vec![0x00, 0x02, 0x00, 0x00];
    raw.extend(vec![0u8; 100]);
    let e = obdr::read_simh(&raw).unwrap_err();
    assert!(format!("{e:#}").contains("truncated"), "{e:#}");
}
