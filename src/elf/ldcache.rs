//! A bounds-checked reader of glibc's `/etc/ld.so.cache`, the index ldconfig(8)
//! writes and ld.so(8) consults before the default directories.
//!
//! Layout facts (glibc `sysdeps/generic/dl-cache.h`, written by
//! `elf/cache.c`, read by `elf/dl-cache.c`); all integers in the byte order
//! the header's `flags` byte states:
//!
//! * New format (default since glibc 2.32): `struct cache_file_new`, 48 bytes:
//!   magic `"glibc-ld.so.cache"` (17) + version `"1.1"` (3), `nlibs` u32 at 20,
//!   `len_strings` u32 at 24, `flags` u8 at 28 (low two bits: 0 unset,
//!   1 invalid, 2 little endian, 3 big endian), 3 padding bytes,
//!   `extension_offset` u32 at 32, 12 unused bytes; then `nlibs` entries of
//!   `struct file_entry_new` (24 bytes: `flags` i32, `key` u32, `value` u32,
//!   `osversion` u32, `hwcap` u64), then the strings. `key` (the soname) and
//!   `value` (the path) are offsets from the start of this header.
//! * Compat format (glibc before 2.32): the old `struct cache_file` (magic
//!   `"ld.so-1.7.0"`, a pad byte, `nlibs` u32 at 12) and its 12-byte
//!   `struct file_entry`s come first; the new header follows, aligned to
//!   `__alignof__ (struct cache_file_new)` (8, or 4 on i386). An old-only
//!   file keeps its strings right after its entries, offsets relative there.
//! * Extensions (glibc 2.33+): at `extension_offset` a `struct
//!   cache_extension` (magic 0xEAA42174 u32, `count` u32) followed by `count`
//!   sections of {tag u32, flags u32, offset u32, size u32}. Tag 0 names the
//!   generator; tag 1 is an array of u32 string offsets naming the
//!   `glibc-hwcaps` subdirectories. An entry whose `hwcap` has bit 62
//!   (`DL_CACHE_HWCAP_EXTENSION`) set, ignoring the low 32 bits and the ISA
//!   level bits 32..41, lives in the subdirectory its low 32 bits index.
//!
//! Nothing here indexes a slice directly: every read goes through
//! [`Reader`], so a corrupt or truncated cache is an error, never a panic.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};

use super::Corrupt;
use crate::error::{Code, fail};

/// `flags` values of cache entries (`FLAG_*` in dl-cache.h). The low byte is
/// the library type, the second byte the ABI it needs.
pub const FLAG_LIBC4: u32 = 0x0000;
pub const FLAG_ELF: u32 = 0x0001;
pub const FLAG_ELF_LIBC5: u32 = 0x0002;
pub const FLAG_ELF_LIBC6: u32 = 0x0003;
pub const FLAG_TYPE_MASK: u32 = 0x00ff;
pub const FLAG_SPARC_LIB64: u32 = 0x0100;
pub const FLAG_IA64_LIB64: u32 = 0x0200;
pub const FLAG_X8664_LIB64: u32 = 0x0300;
pub const FLAG_S390_LIB64: u32 = 0x0400;
pub const FLAG_POWERPC_LIB64: u32 = 0x0500;
pub const FLAG_MIPS64_LIBN32: u32 = 0x0600;
pub const FLAG_MIPS64_LIBN64: u32 = 0x0700;
pub const FLAG_X8664_LIBX32: u32 = 0x0800;
pub const FLAG_ARM_LIBHF: u32 = 0x0900;
pub const FLAG_AARCH64_LIB64: u32 = 0x0a00;
pub const FLAG_ARM_LIBSF: u32 = 0x0b00;
pub const FLAG_RISCV_FLOAT_ABI_SOFT: u32 = 0x0f00;
pub const FLAG_RISCV_FLOAT_ABI_DOUBLE: u32 = 0x1000;

const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache";
const NEW_VERSION: &[u8] = b"1.1";
const OLD_HEADER_SIZE: usize = 16;
const OLD_ENTRY_SIZE: usize = 12;
const NEW_HEADER_SIZE: usize = 48;
const NEW_ENTRY_SIZE: usize = 24;
const EXTENSION_MAGIC: u32 = 0xEAA4_2174;
const EXTENSION_TAG_GENERATOR: u32 = 0;
const EXTENSION_TAG_GLIBC_HWCAPS: u32 = 1;
const HWCAP_EXTENSION: u64 = 1 << 62;
const HWCAP_ISA_LEVEL_MASK: u64 = (1 << 10) - 1;

/// One cache entry: a soname and the path ld.so opens for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Library type and ABI (`FLAG_*`).
    pub flags: u32,
    /// The soname ld.so matches DT_NEEDED names against.
    pub key: String,
    /// The absolute path, as the loader names it (not canonicalized).
    pub value: String,
    /// The raw `hwcap` field (0 in the old format).
    pub hwcap: u64,
    /// The `glibc-hwcaps` subdirectory (e.g. `x86-64-v3`) the entry lives in.
    pub hwcaps_subdir: Option<String>,
}

/// A parsed cache: entries in file order plus an index by soname.
#[derive(Debug, Clone, Default)]
pub struct LdCache {
    entries: Vec<Entry>,
    by_key: HashMap<String, Vec<usize>>,
    /// The extension's generator string (e.g. "ldconfig (GNU libc) ...").
    pub generator: Option<String>,
    /// The `glibc-hwcaps` subdirectory names the extension lists.
    pub hwcaps_subdirs: Vec<String>,
}

impl LdCache {
    /// Reads and parses the cache at `host_path`; `shown` is its name as
    /// seen from the resolver's root, for messages. `Ok(None)` when absent:
    /// a system without a cache is searched through directories only.
    pub fn load(host_path: &Path, shown: &Path) -> Result<Option<LdCache>> {
        let bytes = match std::fs::read(host_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("reading {}", shown.display()));
            }
        };
        parse(&bytes).map(Some).map_err(|c| {
            fail(
                Code::Input,
                format!(
                    "{}: corrupt ld.so cache: {c}; regenerate it with ldconfig",
                    shown.display()
                ),
            )
        })
    }

    /// All entries, in file order (ldconfig sorts them for ld.so's binary
    /// search, glibc-hwcaps entries of a soname before the baseline one).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entries for soname `name`, in file order.
    pub fn lookup<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.by_key
            .get(name)
            .map(|v| v.as_slice())
            .unwrap_or(&[])
            .iter()
            .filter_map(|&i| self.entries.get(i))
    }
}

/// Parses the bytes of an ld.so.cache file (any of the three layouts).
pub fn parse(bytes: &[u8]) -> Result<LdCache, Corrupt> {
    if bytes.starts_with(NEW_MAGIC) {
        return parse_new(Reader::new(bytes, false));
    }
    if !bytes.starts_with(OLD_MAGIC) {
        return Err(Corrupt(
            "unknown magic (neither \"glibc-ld.so.cache\" nor \"ld.so-1.7.0\")".into(),
        ));
    }
    // The old header has no byte-order mark; ldconfig writes it in the
    // machine's order, and every architecture this tool runs on is little
    // endian.
    let old = Reader::new(bytes, false);
    let nlibs = old.u32(12, "old header nlibs")? as usize;
    let old_end = nlibs
        .checked_mul(OLD_ENTRY_SIZE)
        .and_then(|n| n.checked_add(OLD_HEADER_SIZE))
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| {
            Corrupt(format!(
                "old header claims {nlibs} entries, more than the {} bytes of the file hold",
                bytes.len()
            ))
        })?;
    for align in [8, 4] {
        let start = old_end.next_multiple_of(align);
        let Some(rest) = bytes.get(start..) else {
            continue;
        };
        if rest.starts_with(NEW_MAGIC) {
            return parse_new(Reader::new(rest, false));
        }
        if !rest.is_empty() && NEW_MAGIC.starts_with(rest) {
            return Err(Corrupt(
                "the new-format header after the old one is truncated".into(),
            ));
        }
    }
    parse_old(&old, nlibs, old_end)
}

/// The old-only format: entries right after the 16-byte header, strings
/// after the entries with offsets relative to their start.
fn parse_old(r: &Reader, nlibs: usize, strings: usize) -> Result<LdCache, Corrupt> {
    let mut cache = LdCache::default();
    for i in 0..nlibs {
        let at = OLD_HEADER_SIZE + i * OLD_ENTRY_SIZE;
        let flags = r.u32(at, "entry flags")?;
        let key = r.u32(at + 4, "entry key")? as usize;
        let value = r.u32(at + 8, "entry value")? as usize;
        let key = r.cstr(strings.checked_add(key), || format!("entry {i} key"))?;
        let value = r.cstr(strings.checked_add(value), || format!("entry {i} value"))?;
        cache.push(Entry {
            flags,
            key,
            value,
            hwcap: 0,
            hwcaps_subdir: None,
        });
    }
    Ok(cache)
}

/// The new format; `r` starts at its header, which string offsets are
/// relative to.
fn parse_new(mut r: Reader) -> Result<LdCache, Corrupt> {
    if r.len() < NEW_HEADER_SIZE {
        return Err(Corrupt(format!(
            "header truncated: {} bytes, need {NEW_HEADER_SIZE}",
            r.len()
        )));
    }
    let version = r.bytes(NEW_MAGIC.len(), NEW_VERSION.len(), "version")?;
    if version != NEW_VERSION {
        return Err(Corrupt(format!(
            "unsupported version {:?} (this reader knows 1.1)",
            String::from_utf8_lossy(version)
        )));
    }
    // cache_file_new_flags_endian_*: 0 is written by glibc before 2.33 and
    // means "this machine's order".
    r.big = match r.u8(28, "flags")? & 3 {
        0 => cfg!(target_endian = "big"),
        1 => return Err(Corrupt("header marks the byte order as invalid".into())),
        2 => false,
        _ => true,
    };
    let nlibs = r.u32(20, "nlibs")? as usize;
    let len_strings = r.u32(24, "len_strings")? as usize;
    let extension_offset = r.u32(32, "extension_offset")? as usize;
    let entries_end = nlibs
        .checked_mul(NEW_ENTRY_SIZE)
        .and_then(|n| n.checked_add(NEW_HEADER_SIZE))
        .filter(|&end| end <= r.len())
        .ok_or_else(|| {
            Corrupt(format!(
                "header claims {nlibs} entries, more than the {} bytes of the file hold",
                r.len()
            ))
        })?;
    if entries_end
        .checked_add(len_strings)
        .is_none_or(|e| e > r.len())
    {
        return Err(Corrupt(format!(
            "string table of {len_strings} bytes after {nlibs} entries runs past the end of the file ({} bytes): truncated",
            r.len()
        )));
    }

    let mut cache = LdCache::default();
    if extension_offset != 0 {
        read_extensions(&r, extension_offset, &mut cache)?;
    }
    for i in 0..nlibs {
        let at = NEW_HEADER_SIZE + i * NEW_ENTRY_SIZE;
        let flags = r.u32(at, "entry flags")?;
        let key = r.u32(at + 4, "entry key")? as usize;
        let value = r.u32(at + 8, "entry value")? as usize;
        let hwcap = r.u64(at + 16, "entry hwcap")?;
        let key = r.cstr(Some(key), || format!("entry {i} key"))?;
        let value = r.cstr(Some(value), || format!("entry {i} value"))?;
        // dl_cache_hwcap_extension(): only bit 62 set above the low word,
        // apart from the ISA level bits.
        let hwcaps_subdir = if (hwcap >> 32) & !HWCAP_ISA_LEVEL_MASK == HWCAP_EXTENSION >> 32 {
            let index = hwcap as u32 as usize;
            let name = cache.hwcaps_subdirs.get(index).ok_or_else(|| {
                Corrupt(format!(
                    "entry {i} ({key}) names glibc-hwcaps subdirectory #{index}, but the cache lists {}",
                    cache.hwcaps_subdirs.len()
                ))
            })?;
            Some(name.clone())
        } else {
            None
        };
        cache.push(Entry {
            flags,
            key,
            value,
            hwcap,
            hwcaps_subdir,
        });
    }
    Ok(cache)
}

fn read_extensions(r: &Reader, at: usize, cache: &mut LdCache) -> Result<(), Corrupt> {
    if at > r.len() {
        return Err(Corrupt(format!(
            "extension offset {at:#x} is beyond the end of the file ({} bytes)",
            r.len()
        )));
    }
    // ld.so ignores an extension area without its magic (cache_extension
    // handling in dl-cache.c), so do we.
    if r.u32(at, "extension magic").ok() != Some(EXTENSION_MAGIC) {
        return Ok(());
    }
    let count = r.u32(at + 4, "extension count")? as usize;
    for i in 0..count {
        let sect = (i.checked_mul(16))
            .and_then(|o| o.checked_add(at + 8))
            .ok_or_else(|| Corrupt("extension section count overflows".into()))?;
        let tag = r.u32(sect, "extension section tag")?;
        let offset = r.u32(sect + 8, "extension section offset")? as usize;
        let size = r.u32(sect + 12, "extension section size")? as usize;
        let what = || format!("extension section {i} (tag {tag})");
        match tag {
            EXTENSION_TAG_GENERATOR => {
                let text = r.bytes(offset, size, &what())?;
                let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
                cache.generator = Some(String::from_utf8_lossy(&text[..end]).into_owned());
            }
            EXTENSION_TAG_GLIBC_HWCAPS => {
                // Touch the whole array first so a bad size is one error.
                r.bytes(offset, size, &what())?;
                for j in 0..size / 4 {
                    let s = r.u32(offset + 4 * j, "glibc-hwcaps string offset")? as usize;
                    let name = r.cstr(Some(s), || format!("glibc-hwcaps name #{j}"))?;
                    cache.hwcaps_subdirs.push(name);
                }
            }
            // Unknown tags are for newer readers.
            _ => {}
        }
    }
    Ok(())
}

impl LdCache {
    fn push(&mut self, e: Entry) {
        self.by_key
            .entry(e.key.clone())
            .or_default()
            .push(self.entries.len());
        self.entries.push(e);
    }
}

/// Checked little/big endian reads from one slice.
struct Reader<'a> {
    data: &'a [u8],
    big: bool,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8], big: bool) -> Self {
        Reader { data, big }
    }

    fn len(&self) -> usize {
        self.data.len()
    }

    fn bytes(&self, at: usize, len: usize, what: &str) -> Result<&'a [u8], Corrupt> {
        at.checked_add(len)
            .and_then(|end| self.data.get(at..end))
            .ok_or_else(|| {
                Corrupt(format!(
                    "{what} at offset {at:#x} (+{len}) is beyond the end of the file ({} bytes)",
                    self.data.len()
                ))
            })
    }

    fn array<const N: usize>(&self, at: usize, what: &str) -> Result<[u8; N], Corrupt> {
        let b = self.bytes(at, N, what)?;
        let mut a = [0; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    fn u8(&self, at: usize, what: &str) -> Result<u8, Corrupt> {
        Ok(self.array::<1>(at, what)?[0])
    }

    fn u32(&self, at: usize, what: &str) -> Result<u32, Corrupt> {
        let a = self.array(at, what)?;
        Ok(if self.big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        })
    }

    fn u64(&self, at: usize, what: &str) -> Result<u64, Corrupt> {
        let a = self.array(at, what)?;
        Ok(if self.big {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        })
    }

    /// The NUL-terminated string at `at` (`None`: the offset overflowed).
    fn cstr(&self, at: Option<usize>, what: impl Fn() -> String) -> Result<String, Corrupt> {
        let rest = at.and_then(|a| self.data.get(a..)).ok_or_else(|| {
            Corrupt(format!(
                "{} string offset {} is beyond the end of the file ({} bytes)",
                what(),
                at.map_or("(overflow)".to_string(), |a| format!("{a:#x}")),
                self.data.len()
            ))
        })?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| Corrupt(format!("{} string is not NUL-terminated", what())))?;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One entry for [`build`]: (flags, soname, path, hwcaps index).
    type Spec<'a> = (u32, &'a str, &'a str, Option<u32>);

    /// Writes a cache the way ldconfig lays it out (header, entries,
    /// strings, extension), optionally after an old-format header.
    fn build(specs: &[Spec], hwcaps: &[&str], compat: bool, big: bool) -> Vec<u8> {
        let u32b = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let u64b = |v: u64| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut strings = Vec::new();
        let entries_end = NEW_HEADER_SIZE + specs.len() * NEW_ENTRY_SIZE;
        let mut add = |s: &str| {
            let off = entries_end + strings.len();
            strings.extend_from_slice(s.as_bytes());
            strings.push(0);
            off as u32
        };
        let mut entries = Vec::new();
        for (flags, key, value, hw) in specs {
            let k = add(key);
            let v = add(value);
            entries.extend_from_slice(&u32b(*flags));
            entries.extend_from_slice(&u32b(k));
            entries.extend_from_slice(&u32b(v));
            entries.extend_from_slice(&u32b(0));
            let hwcap = hw.map_or(0, |i| HWCAP_EXTENSION | u64::from(i));
            entries.extend_from_slice(&u64b(hwcap));
        }
        let hw_offsets: Vec<u32> = hwcaps.iter().map(|h| add(h)).collect();
        let generator = add("mkrescue test");
        let len_strings = strings.len() as u32;
        let mut ext_off = entries_end + strings.len();
        ext_off = ext_off.next_multiple_of(4);
        let mut out = Vec::new();
        out.extend_from_slice(NEW_MAGIC);
        out.extend_from_slice(NEW_VERSION);
        out.extend_from_slice(&u32b(specs.len() as u32));
        out.extend_from_slice(&u32b(len_strings));
        out.push(if big { 3 } else { 2 });
        out.extend_from_slice(&[0; 3]);
        out.extend_from_slice(&u32b(ext_off as u32));
        out.extend_from_slice(&[0; 12]);
        out.extend_from_slice(&entries);
        out.extend_from_slice(&strings);
        out.resize(ext_off, 0);
        // Extension: magic, count 2, generator section, hwcaps section.
        let sections_end = ext_off + 8 + 2 * 16;
        out.extend_from_slice(&u32b(EXTENSION_MAGIC));
        out.extend_from_slice(&u32b(2));
        out.extend_from_slice(&u32b(EXTENSION_TAG_GENERATOR));
        out.extend_from_slice(&u32b(0));
        out.extend_from_slice(&u32b(generator));
        out.extend_from_slice(&u32b("mkrescue test".len() as u32));
        out.extend_from_slice(&u32b(EXTENSION_TAG_GLIBC_HWCAPS));
        out.extend_from_slice(&u32b(0));
        out.extend_from_slice(&u32b(sections_end as u32));
        out.extend_from_slice(&u32b(4 * hw_offsets.len() as u32));
        for o in hw_offsets {
            out.extend_from_slice(&u32b(o));
        }
        if compat {
            // Old header with no entries; new header at the next multiple of 8.
            let mut old = Vec::new();
            old.extend_from_slice(OLD_MAGIC);
            old.push(0);
            old.extend_from_slice(&0u32.to_le_bytes());
            old.extend_from_slice(&out);
            return old;
        }
        out
    }

    const X86_64: u32 = FLAG_X8664_LIB64 | FLAG_ELF_LIBC6;

    fn sample(compat: bool, big: bool) -> Vec<u8> {
        build(
            &[
                (
                    X86_64,
                    "libz.so.1",
                    "/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libz.so.1",
                    Some(1),
                ),
                (X86_64, "libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1", None),
                (
                    FLAG_ELF_LIBC6,
                    "libz.so.1",
                    "/lib/i386-linux-gnu/libz.so.1",
                    None,
                ),
                (X86_64, "libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6", None),
            ],
            &["x86-64-v2", "x86-64-v3"],
            compat,
            big,
        )
    }

    #[test]
    fn reads_a_generated_cache() {
        for (compat, big) in [(false, false), (true, false), (false, true)] {
            let c = parse(&sample(compat, big)).unwrap();
            assert_eq!(c.entries().len(), 4);
            assert_eq!(c.hwcaps_subdirs, ["x86-64-v2", "x86-64-v3"]);
            assert_eq!(c.generator.as_deref(), Some("mkrescue test"));
            let z: Vec<_> = c.lookup("libz.so.1").collect();
            assert_eq!(z.len(), 3);
            assert_eq!(z[0].hwcaps_subdir.as_deref(), Some("x86-64-v3"));
            assert_eq!(z[1].value, "/lib/x86_64-linux-gnu/libz.so.1");
            assert_eq!(z[2].flags, FLAG_ELF_LIBC6);
            assert_eq!(c.lookup("libnope.so").count(), 0);
        }
    }

    #[test]
    fn reads_an_old_only_cache() {
        let mut b = Vec::new();
        b.extend_from_slice(OLD_MAGIC);
        b.push(0);
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&FLAG_ELF_LIBC6.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&8u32.to_le_bytes());
        b.extend_from_slice(b"libm.so\0/lib/m\0");
        let c = parse(&b).unwrap();
        assert_eq!(c.entries()[0].key, "libm.so");
        assert_eq!(c.entries()[0].value, "/lib/m");
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        for compat in [false, true] {
            let b = sample(compat, false);
            for len in 0..b.len() {
                // 16 bytes of the compat layout is a complete, empty old cache.
                if compat && len == OLD_HEADER_SIZE {
                    continue;
                }
                assert!(parse(&b[..len]).is_err(), "prefix of {len} bytes parsed");
            }
        }
    }

    #[test]
    fn corrupt_fields_are_errors_naming_the_problem() {
        let good = sample(false, false);
        let set = |at: usize, v: u32| {
            let mut b = good.clone();
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
            b
        };
        let e = parse(&set(20, u32::MAX)).unwrap_err().0;
        assert!(e.contains("entries"), "{e}");
        let e = parse(&set(NEW_HEADER_SIZE + 4, 0x00ff_ffff)).unwrap_err().0;
        assert!(e.contains("entry 0 key"), "{e}");
        let e = parse(&set(32, u32::MAX)).unwrap_err().0;
        assert!(e.contains("extension offset"), "{e}");
        // hwcaps index 7 of 2.
        let mut b = good.clone();
        b[NEW_HEADER_SIZE + 16..NEW_HEADER_SIZE + 20].copy_from_slice(&7u32.to_le_bytes());
        let e = parse(&b).unwrap_err().0;
        assert!(e.contains("glibc-hwcaps subdirectory #7"), "{e}");
        let mut b = good.clone();
        b[28] = 1;
        assert!(parse(&b).is_err());
        let mut b = good.clone();
        b[17..20].copy_from_slice(b"2.0");
        assert!(parse(&b).unwrap_err().0.contains("version"));
        assert!(parse(b"hello world").is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        // A cheap deterministic walk over byte flips; proptest and the fuzz
        // target cover this more thoroughly.
        let good = sample(true, false);
        let mut x: u32 = 0x1234_5678;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let mut b = good.clone();
            let i = x as usize % b.len();
            b[i] ^= (x >> 24) as u8 | 1;
            let _ = parse(&b);
        }
    }

    #[test]
    fn load_names_the_file() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("ld.so.cache");
        std::fs::write(&p, &sample(false, false)[..100]).unwrap();
        let e = LdCache::load(&p, Path::new("/etc/ld.so.cache")).unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.starts_with("/etc/ld.so.cache: corrupt ld.so cache"),
            "{msg}"
        );
        assert_eq!(crate::error::code_of(&e), Code::Input);
        assert!(
            LdCache::load(&t.path().join("none"), Path::new("/none"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn reads_the_host_cache_if_any() {
        let Some(c) =
            LdCache::load(Path::new("/etc/ld.so.cache"), Path::new("/etc/ld.so.cache")).unwrap()
        else {
            return;
        };
        assert!(!c.entries().is_empty());
        if cfg!(all(target_arch = "x86_64", target_os = "linux")) {
            assert!(
                c.lookup("libc.so.6").any(|e| e.flags == X86_64),
                "no x86-64 libc.so.6 in the host cache"
            );
        }
    }
}
