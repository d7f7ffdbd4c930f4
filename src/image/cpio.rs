//! cpio "newc" writer: the archive format the kernel unpacks into its initial
//! root file system.
//!
//! The format is specified by the kernel's
//! Documentation/driver-api/early-userspace/buffer-format.rst (and newc in
//! cpio(5)); what the kernel really accepts is init/initramfs.c. Per entry:
//!
//! ```text
//! cpio_file    := ALGN(4) + cpio_header + filename + "\0" + ALGN(4) + data
//! cpio_trailer := ALGN(4) + cpio_header + "TRAILER!!!\0" + ALGN(4)
//! ```
//!
//! where ALGN(4) is NUL padding to a 4-byte boundary from the start of the
//! archive. This writer only frames bytes; deciding inode numbers, link
//! counts and which entry of a hard-link group carries the data is the
//! caller's job (see `archive.rs`).

use std::io::{self, Write};

/// c_magic of the "newc" format (buffer-format.rst; "070702" would be the
/// "crc" variant, whose c_chksum we do not compute).
pub const MAGIC: &[u8; 6] = b"070701";

/// 6 bytes of magic + 13 fields of 8 hex digits.
pub const HEADER_LEN: usize = 110;

/// Name of the end-of-archive entry. The kernel resets its hard-link table
/// when it sees it, so independently written archives can be concatenated
/// (buffer-format.rst, "Handling of hard links").
pub const TRAILER: &[u8] = b"TRAILER!!!";

/// Longest name the kernel accepts, including the final NUL: do_header() in
/// init/initramfs.c silently skips an entry whose c_namesize exceeds
/// PATH_MAX.
pub const PATH_MAX: usize = 4096;

/// Longest symlink target: the kernel skips symlinks whose body exceeds
/// PATH_MAX, and symlink(2) takes a NUL-terminated target of at most
/// PATH_MAX bytes, so 4095 bytes of text.
pub const SYMLINK_MAX: usize = PATH_MAX - 1;

/// Largest c_filesize: an 8-hex-digit field. Files of 4 GiB or more cannot be
/// stored.
pub const MAX_FILE_SIZE: u64 = u32::MAX as u64;

/// The per-entry fields we set. c_devmajor/c_devminor (the device holding
/// the file) are always written as 0: the kernel and GNU cpio only use them
/// with c_ino as the hard-link key, and our inode numbers are unique within
/// one archive. c_namesize comes from the name, c_check is 0 for "070701".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Header {
    pub ino: u32,
    /// File type bits (S_IF*) and permission bits, as st_mode.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    /// Seconds since 1970 (a 32-bit field: the format ends in 2106).
    pub mtime: u32,
    /// Length of the data that follows the name: file contents or symlink
    /// target, 0 for everything else.
    pub filesize: u32,
    /// The device a char/block special file refers to (c_rmaj/c_rmin).
    pub rdev_major: u32,
    pub rdev_minor: u32,
}

/// Bytes of NUL padding after `len` bytes to reach a multiple of 4.
pub fn pad4(len: u64) -> usize {
    ((4 - (len % 4)) % 4) as usize
}

/// Writes 8 lowercase hex digits, zero-padded on the left: "all fields
/// contain hexadecimal ASCII numbers fully padded with '0' on the left to the
/// full width of the field" (buffer-format.rst, whose example "000012ac" is
/// lowercase, as GNU cpio writes them; the kernel's simple_strtoul and GNU
/// cpio read either case).
fn put_hex(out: &mut Vec<u8>, v: u32) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..8).rev() {
        out.push(DIGITS[((v >> (shift * 4)) & 0xf) as usize]);
    }
}

/// The 110 header bytes, name, NUL and padding of one entry, as one buffer
/// so each entry costs one write into the compressor.
fn encode(out: &mut Vec<u8>, name: &[u8], h: &Header) {
    out.clear();
    out.extend_from_slice(MAGIC);
    // Field order of buffer-format.rst's table / cpio(5) "New ASCII Format".
    put_hex(out, h.ino); // c_ino
    put_hex(out, h.mode); // c_mode
    put_hex(out, h.uid); // c_uid
    put_hex(out, h.gid); // c_gid
    put_hex(out, h.nlink); // c_nlink
    put_hex(out, h.mtime); // c_mtime
    put_hex(out, h.filesize); // c_filesize
    put_hex(out, 0); // c_maj: see Header
    put_hex(out, 0); // c_min
    put_hex(out, h.rdev_major); // c_rmaj
    put_hex(out, h.rdev_minor); // c_rmin
    // c_namesize counts the terminating NUL; callers keep names below
    // PATH_MAX so this cannot overflow.
    put_hex(out, name.len() as u32 + 1);
    put_hex(out, 0); // c_chksum: "otherwise zero" for 070701
    debug_assert_eq!(out.len(), HEADER_LEN);
    out.extend_from_slice(name);
    out.push(0);
    // ALGN(4) after the name: header and name together end on a 4-byte
    // boundary (the kernel skips N_ALIGN(namesize) bytes after the header).
    let pad = pad4(out.len() as u64);
    out.resize(out.len() + pad, 0);
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Streams entries into `inner`. Each entry is [`Writer::start`], then
/// exactly `filesize` bytes of [`Writer::write_data`], then
/// [`Writer::end`]; [`Writer::finish`] writes the trailer.
pub struct Writer<W: Write> {
    inner: W,
    /// Bytes written so far: the archive offset, which padding is relative
    /// to.
    offset: u64,
    /// Data bytes the current entry still owes, None between entries.
    owed: Option<u64>,
    scratch: Vec<u8>,
}

impl<W: Write> Writer<W> {
    pub fn new(inner: W) -> Self {
        Writer {
            inner,
            offset: 0,
            owed: None,
            scratch: Vec::with_capacity(HEADER_LEN + PATH_MAX + 4),
        }
    }

    /// Bytes of archive written so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Writes the header and name of an entry. `name` is the path inside the
    /// archive as bytes, without a leading `/` (`usr/bin/bash`), as GNU cpio
    /// writes it and the kernel (which extracts relative to `/`) expects.
    pub fn start(&mut self, name: &[u8], header: &Header) -> io::Result<()> {
        if self.owed.is_some() {
            return Err(invalid(
                "cpio entry started before the previous one ended".into(),
            ));
        }
        check_name(name)?;
        if name == TRAILER {
            return Err(invalid(
                "TRAILER!!! is reserved for the end of the archive".into(),
            ));
        }
        self.start_unchecked(name, header)
    }

    fn start_unchecked(&mut self, name: &[u8], header: &Header) -> io::Result<()> {
        // Every entry starts aligned because the previous one ended with
        // ALGN(4); this is the invariant the kernel checks ("broken padding").
        debug_assert_eq!(self.offset % 4, 0);
        let mut buf = std::mem::take(&mut self.scratch);
        encode(&mut buf, name, header);
        let r = self.inner.write_all(&buf);
        self.offset += buf.len() as u64;
        self.scratch = buf;
        r?;
        self.owed = Some(header.filesize.into());
        Ok(())
    }

    /// Writes part of the current entry's data.
    pub fn write_data(&mut self, data: &[u8]) -> io::Result<()> {
        let owed = self
            .owed
            .ok_or_else(|| invalid("cpio data written outside an entry".into()))?;
        let len = data.len() as u64;
        if len > owed {
            return Err(invalid(format!(
                "cpio entry got {} bytes more data than its header declares",
                len - owed
            )));
        }
        self.inner.write_all(data)?;
        self.offset += len;
        self.owed = Some(owed - len);
        Ok(())
    }

    /// Ends the current entry: checks all its data was written and pads it
    /// to 4 bytes (the ALGN(4) that starts the next cpio_file).
    pub fn end(&mut self) -> io::Result<()> {
        match self.owed {
            Some(0) => {}
            Some(n) => {
                return Err(invalid(format!(
                    "cpio entry ended {n} bytes short of its header's size"
                )));
            }
            None => return Err(invalid("cpio entry ended twice".into())),
        }
        self.owed = None;
        let pad = pad4(self.offset);
        self.inner.write_all(&[0u8; 3][..pad])?;
        self.offset += pad as u64;
        Ok(())
    }

    /// A whole entry at once.
    pub fn entry(&mut self, name: &[u8], header: &Header, data: &[u8]) -> io::Result<()> {
        self.start(name, header)?;
        self.write_data(data)?;
        self.end()
    }

    /// Writes the `TRAILER!!!` entry and hands back the inner writer and the
    /// archive's length.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        if self.owed.is_some() {
            return Err(invalid("cpio archive finished inside an entry".into()));
        }
        // Every field 0 except c_nlink 1, as GNU cpio and the kernel's
        // usr/gen_init_cpio write it; c_filesize "must be zero" for the
        // trailer (buffer-format.rst).
        let trailer = Header {
            nlink: 1,
            ..Header::default()
        };
        self.start_unchecked(TRAILER, &trailer)?;
        self.end()?;
        Ok((self.inner, self.offset))
    }
}

/// A name the kernel and GNU cpio will extract where we mean: not empty, no
/// NUL (the name is NUL-terminated), no leading `/` (GNU cpio would refuse or
/// strip it), short enough for the kernel.
fn check_name(name: &[u8]) -> io::Result<()> {
    if name.is_empty() {
        return Err(invalid("empty name in cpio archive".into()));
    }
    if name.contains(&0) {
        return Err(invalid(format!(
            "name {} contains a NUL byte",
            String::from_utf8_lossy(name)
        )));
    }
    if name[0] == b'/' {
        return Err(invalid(format!(
            "name {} must not start with /",
            String::from_utf8_lossy(name)
        )));
    }
    if name.len() + 1 > PATH_MAX {
        return Err(invalid(format!(
            "name {}... is {} bytes, longer than the kernel's PATH_MAX ({PATH_MAX} with its NUL)",
            String::from_utf8_lossy(&name[..64]),
            name.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(f: impl FnOnce(&mut Writer<Vec<u8>>)) -> Vec<u8> {
        let mut w = Writer::new(Vec::new());
        f(&mut w);
        w.finish().unwrap().0
    }

    #[test]
    fn hex_fields_are_8_lowercase_digits() {
        let mut v = Vec::new();
        put_hex(&mut v, 4780);
        assert_eq!(v, b"000012ac"); // the example in buffer-format.rst
        v.clear();
        put_hex(&mut v, u32::MAX);
        assert_eq!(v, b"ffffffff");
    }

    #[test]
    fn padding() {
        assert_eq!(pad4(0), 0);
        assert_eq!(pad4(1), 3);
        assert_eq!(pad4(2), 2);
        assert_eq!(pad4(3), 1);
        assert_eq!(pad4(4), 0);
    }

    /// Every byte of a one-file archive, field by field.
    #[test]
    fn one_file_layout() {
        let h = Header {
            ino: 1,
            mode: 0o100644,
            uid: 0,
            gid: 0,
            nlink: 1,
            mtime: 0x6592_0000,
            filesize: 5,
            rdev_major: 0,
            rdev_minor: 0,
        };
        let a = archive(|w| w.entry(b"a/b", &h, b"hello").unwrap());
        let expected: Vec<u8> = [
            &b"070701"[..],
            b"00000001",     // ino
            b"000081a4",     // S_IFREG | 0644
            b"00000000",     // uid
            b"00000000",     // gid
            b"00000001",     // nlink
            b"65920000",     // mtime
            b"00000005",     // filesize
            b"00000000",     // devmajor
            b"00000000",     // devminor
            b"00000000",     // rdevmajor
            b"00000000",     // rdevminor
            b"00000004",     // namesize: "a/b\0"
            b"00000000",     // check
            b"a/b\0",        // 110 + 4 = 114
            b"\0\0",         // -> 116
            b"hello",        // 121
            b"\0\0\0",       // -> 124
            b"070701",       // trailer
            b"00000000",     // ino
            b"00000000",     // mode
            b"00000000",     // uid
            b"00000000",     // gid
            b"00000001",     // nlink
            b"00000000",     // mtime
            b"00000000",     // filesize
            b"00000000",     // devmajor
            b"00000000",     // devminor
            b"00000000",     // rdevmajor
            b"00000000",     // rdevminor
            b"0000000b",     // namesize: "TRAILER!!!\0"
            b"00000000",     // check
            b"TRAILER!!!\0", // 124 + 121 = 245
            b"\0\0\0",       // -> 248
        ]
        .concat();
        assert_eq!(a, expected);
        assert_eq!(a.len() % 4, 0);
    }

    #[test]
    fn misuse_is_an_error() {
        let mut w = Writer::new(Vec::new());
        let h = Header {
            filesize: 2,
            ..Header::default()
        };
        w.start(b"x", &h).unwrap();
        assert!(w.write_data(b"abc").is_err());
        w.write_data(b"a").unwrap();
        assert!(w.end().is_err());
        let mut w = Writer::new(Vec::new());
        assert!(w.start(b"/abs", &Header::default()).is_err());
        assert!(w.start(b"", &Header::default()).is_err());
        assert!(w.start(b"a\0b", &Header::default()).is_err());
        assert!(w.start(TRAILER, &Header::default()).is_err());
        assert!(w.start(&[b'a'; PATH_MAX], &Header::default()).is_err());
        w.start(&[b'a'; PATH_MAX - 1], &Header::default()).unwrap();
    }
}
