//! `--output obdr`: HP One-Button Disaster Recovery tape. An OBDR-capable
//! drive, powered on with its button held, emulates a CD-ROM drive and
//! serves the ISO image from the start of the tape; the backup follows it on
//! the same tape.
//!
//! The record layout is the one ReaR writes (rear/rear,
//! usr/share/rear/prep/OBDR/default/700_write_OBDR_header.sh and
//! output/OBDR/default/500_set_obdr_blocksize.sh, 840_write_image.sh):
//!  1. rewind, drive compression off, fixed 512-byte blocks;
//!  2. the label: `REAR-000` then NULs, 10240 bytes as 20 records of 512
//!     (ReaR's `prep/OBDR/default/500_check_tape_label.sh` reads these 8
//!     bytes back before it agrees to overwrite a tape), no filemark; ReaR
//!     then seeks to block 20 (needed for DAT320);
//!  3. fixed 2048-byte blocks (OBDR_BLOCKSIZE): the ISO image in 2048-byte
//!     records, the CD sector size the drive's CD emulation serves;
//!  4. one filemark (`mt eof`), compression back on; the backup is written
//!     after it.
//!
//! `--tape-file PATH` writes the same records into a SIMH tape image (the
//! `.tap` format of the SIMH simulators, open-simh doc "Magtape
//! Representation and Handling": each record is a 32-bit little-endian
//! length, the data, the length again; a filemark is a zero length; 0xFFFF
//! FFFF marks the end of medium), so a test can check every record and
//! filemark byte by byte. `--tape /dev/nstN` drives the st driver with
//! MTIOCTOP (Documentation/scsi/st.rst, <linux/mtio.h>).

use std::fs::File;
use std::io::{BufWriter, Read, Write};

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::error::{Code, fail};

/// The label ReaR writes and checks (USB_DEVICE_FILESYSTEM_LABEL default).
pub const LABEL: &[u8] = b"REAR-000";
/// Label area: 20 records of 512 bytes.
pub const LABEL_RECORD: usize = 512;
pub const LABEL_RECORDS: usize = 20;
/// Record size of the ISO (a CD sector).
pub const ISO_RECORD: usize = 2048;

/// Where the records go.
pub trait TapeSink {
    fn rewind(&mut self) -> Result<()>;
    /// Fixed block size for the records that follow (0: variable).
    fn set_block_size(&mut self, bytes: usize) -> Result<()>;
    fn compression(&mut self, on: bool) -> Result<()>;
    fn record(&mut self, data: &[u8]) -> Result<()>;
    fn filemark(&mut self) -> Result<()>;
    fn finish(&mut self) -> Result<()>;
}

/// Writes the OBDR layout: label, ISO, filemark. Returns the number of ISO
/// records written.
pub fn write_layout(sink: &mut dyn TapeSink, iso: &Path) -> Result<u64> {
    let mut f = File::open(iso).with_context(|| format!("reading {}", iso.display()))?;
    let len = f
        .metadata()
        .with_context(|| format!("reading {}", iso.display()))?
        .len();
    if len % ISO_RECORD as u64 != 0 {
        bail!(
            "{} is {len} bytes, not a whole number of 2048-byte sectors: not an ISO image",
            iso.display()
        );
    }
    sink.rewind()?;
    sink.compression(false)?;
    sink.set_block_size(LABEL_RECORD)?;
    let mut label = vec![0u8; LABEL_RECORD * LABEL_RECORDS];
    label[..LABEL.len()].copy_from_slice(LABEL);
    for chunk in label.chunks(LABEL_RECORD) {
        sink.record(chunk)?;
    }
    sink.set_block_size(ISO_RECORD)?;
    let mut buf = vec![0u8; ISO_RECORD];
    let mut records = 0u64;
    for _ in 0..len / ISO_RECORD as u64 {
        f.read_exact(&mut buf)
            .with_context(|| format!("reading {}", iso.display()))?;
        sink.record(&buf)?;
        records += 1;
    }
    sink.filemark()?;
    sink.compression(true)?;
    sink.finish()?;
    Ok(records)
}

/// A SIMH `.tap` tape image file.
pub struct SimhFile {
    out: BufWriter<File>,
    path: std::path::PathBuf,
}

impl SimhFile {
    pub fn create(path: &Path) -> Result<Self> {
        let f =
            File::create(path).with_context(|| format!("creating tape file {}", path.display()))?;
        Ok(SimhFile {
            out: BufWriter::with_capacity(1 << 20, f),
            path: path.to_path_buf(),
        })
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .with_context(|| format!("writing tape file {}", self.path.display()))
    }
}

impl TapeSink for SimhFile {
    fn rewind(&mut self) -> Result<()> {
        // A new file starts at its beginning: nothing to rewind.
        Ok(())
    }
    fn set_block_size(&mut self, _bytes: usize) -> Result<()> {
        // Each record carries its own length in the image.
        Ok(())
    }
    fn compression(&mut self, _on: bool) -> Result<()> {
        Ok(())
    }
    fn record(&mut self, data: &[u8]) -> Result<()> {
        let n = u32::try_from(data.len()).context("tape record over 4 GiB")?;
        self.put(&n.to_le_bytes())?;
        self.put(data)?;
        if data.len() % 2 == 1 {
            // SIMH pads odd records to an even length.
            self.put(&[0])?;
        }
        self.put(&n.to_le_bytes())
    }
    fn filemark(&mut self) -> Result<()> {
        self.put(&0u32.to_le_bytes())
    }
    fn finish(&mut self) -> Result<()> {
        self.put(&0xFFFF_FFFFu32.to_le_bytes())?;
        self.out
            .flush()
            .with_context(|| format!("writing tape file {}", self.path.display()))?;
        self.out
            .get_ref()
            .sync_all()
            .with_context(|| format!("writing tape file {}", self.path.display()))
    }
}

/// A tape drive through the st driver.
pub struct StDevice {
    dev: File,
    path: std::path::PathBuf,
}

use crate::sys::tape::{MTCOMPRESSION, MTREW, MTSETBLK, MTWEOF};

impl StDevice {
    /// Opens a non-rewinding st device (`/dev/nstN`); the rewinding
    /// `/dev/stN` would rewind on close and invite overwriting the ISO with
    /// the backup.
    pub fn open(path: &Path) -> Result<Self> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.starts_with("nst") {
            return Err(fail(
                Code::Usage,
                format!(
                    "--tape {}: use the non-rewinding device (/dev/nstN), so the backup lands after the ISO",
                    path.display()
                ),
            ));
        }
        let dev = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("opening tape drive {}", path.display()))?;
        Ok(StDevice {
            dev,
            path: path.to_path_buf(),
        })
    }

    fn op(&mut self, op: libc::c_short, count: libc::c_int, what: &str) -> Result<()> {
        crate::sys::tape::mtioctop(&self.dev, op, count)
            .with_context(|| format!("{what} on tape drive {}", self.path.display()))
    }
}

impl TapeSink for StDevice {
    fn rewind(&mut self) -> Result<()> {
        self.op(MTREW, 1, "rewinding")
    }
    fn set_block_size(&mut self, bytes: usize) -> Result<()> {
        self.op(MTSETBLK, bytes as libc::c_int, "setting the block size")
    }
    fn compression(&mut self, on: bool) -> Result<()> {
        // Not every drive supports it (ReaR only logs this failure).
        if let Err(e) = self.op(MTCOMPRESSION, i32::from(on), "setting compression") {
            log::warn!("{e:#}");
        }
        Ok(())
    }
    fn record(&mut self, data: &[u8]) -> Result<()> {
        // One write(2) is one record on an st device (st.rst).
        let n = (&self.dev)
            .write(data)
            .with_context(|| format!("writing to tape drive {}", self.path.display()))?;
        if n != data.len() {
            bail!(
                "tape drive {} took {n} of {} bytes of a record (end of tape?)",
                self.path.display(),
                data.len()
            );
        }
        Ok(())
    }
    fn filemark(&mut self) -> Result<()> {
        self.op(MTWEOF, 1, "writing a filemark")
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// One item read back from a SIMH tape image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapeItem {
    Record(Vec<u8>),
    Filemark,
    EndOfMedium,
}

/// Reads a SIMH tape image back (tests, `verify`). Errors name the offset.
pub fn read_simh(bytes: &[u8]) -> Result<Vec<TapeItem>> {
    let mut items = Vec::new();
    let mut at = 0usize;
    let word = |at: usize| -> Result<u32> {
        let b = bytes
            .get(at..at + 4)
            .with_context(|| format!("tape image truncated at byte {at}"))?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    while at < bytes.len() {
        let n = word(at)?;
        at += 4;
        match n {
            0 => items.push(TapeItem::Filemark),
            0xFFFF_FFFF => {
                items.push(TapeItem::EndOfMedium);
                break;
            }
            n => {
                let n = n as usize;
                let data = bytes
                    .get(at..at + n)
                    .with_context(|| format!("tape record at byte {at} truncated"))?;
                at += n + n % 2;
                let trailer = word(at)?;
                if trailer as usize != n {
                    bail!("tape record at byte {at}: trailing length {trailer} != {n}");
                }
                at += 4;
                items.push(TapeItem::Record(data.to_vec()));
            }
        }
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_rewinding_device() {
        let e = StDevice::open(Path::new("/dev/st0")).err().unwrap();
        assert!(format!("{e:#}").contains("/dev/nstN"));
    }
}
