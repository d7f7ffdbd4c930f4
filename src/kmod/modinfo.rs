//! Reads the `.modinfo` section of a module file (`.ko`, or `.ko.xz`,
//! `.ko.zst`, `.ko.gz` as kmod's `KMOD_FILE_COMPRESSION` builds install
//! them) and the `firmware=` entries in it.
//!
//! `.modinfo` is a run of NUL-terminated `key=value` strings that
//! `MODULE_INFO()` and friends (include/linux/moduleparam.h,
//! `MODULE_FIRMWARE` in include/linux/module.h) place in the object. For an
//! uncompressed module only the ELF header, the section header table, the
//! section name table and `.modinfo` itself are read, with positioned reads:
//! a module is mostly code and debug data we never need.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{Context, Result};

use crate::error::{Code, fail};

/// The `firmware=` values of the module at `path`, in file order.
pub fn firmware_of(path: &Path) -> Result<Vec<String>> {
    let section = read_modinfo(path)?;
    Ok(entries(&section)
        .filter(|&(k, v)| k == "firmware" && !v.is_empty())
        .map(|(_, v)| v.to_string())
        .collect())
}

/// The `key=value` strings of a `.modinfo` section.
pub fn entries(section: &[u8]) -> impl Iterator<Item = (&str, &str)> {
    section
        .split(|&b| b == 0)
        .filter_map(|s| std::str::from_utf8(s).ok()?.split_once('='))
}

/// The raw `.modinfo` section of the module at `path`. A file that is not a
/// module (bad magic, truncated, no `.modinfo`) is an input error naming it.
pub fn read_modinfo(path: &Path) -> Result<Vec<u8>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(fail(
                Code::Host,
                format!(
                    "{} is listed in modules.dep but missing; reinstall the kernel's package or run depmod",
                    path.display()
                ),
            ));
        }
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let len = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    let mut magic = [0u8; 6];
    let n = file
        .read_at(&mut magic, 0)
        .with_context(|| format!("reading {}", path.display()))?;
    let corrupt = |why: String| {
        fail(
            Code::Input,
            format!(
                "{} is not a valid kernel module: {why}; reinstall the package that owns it",
                path.display()
            ),
        )
    };
    let magic = &magic[..n];
    let section = if magic.starts_with(b"\x7fELF") {
        find_modinfo(&FileSource { file: &file, len })
    } else {
        // Compressed: the whole module has to be unpacked to reach the
        // section table, which the linker puts at the end.
        let mut raw = Vec::new();
        let unpacked = if magic.starts_with(b"\xfd7zXZ\0") {
            liblzma::read::XzDecoder::new(&mut file).read_to_end(&mut raw)
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            zstd::stream::read::Decoder::new(&mut file).and_then(|mut d| d.read_to_end(&mut raw))
        } else if magic.starts_with(&[0x1f, 0x8b]) {
            flate2::read::GzDecoder::new(&mut file).read_to_end(&mut raw)
        } else {
            return Err(corrupt(
                "neither ELF nor xz, zstd or gzip compressed".to_string(),
            ));
        };
        unpacked.map_err(|e| corrupt(format!("cannot decompress: {e}")))?;
        if !raw.starts_with(b"\x7fELF") {
            return Err(corrupt("decompressed data is not ELF".to_string()));
        }
        find_modinfo(&raw.as_slice())
    };
    section.map_err(|e| match e {
        SectionError::Io(e) => anyhow::Error::new(e).context(format!("reading {}", path.display())),
        SectionError::Corrupt(why) => corrupt(why),
    })
}

enum SectionError {
    Io(std::io::Error),
    Corrupt(String),
}

impl From<std::io::Error> for SectionError {
    fn from(e: std::io::Error) -> Self {
        SectionError::Io(e)
    }
}

fn corrupt<T>(why: impl Into<String>) -> Result<T, SectionError> {
    Err(SectionError::Corrupt(why.into()))
}

/// Positioned reads from a file or a buffer.
trait Source {
    fn len(&self) -> u64;
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

struct FileSource<'a> {
    file: &'a File,
    len: u64,
}

impl Source for FileSource<'_> {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        FileExt::read_exact_at(self.file, buf, offset)
    }
}

impl Source for &[u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let start = offset as usize;
        buf.copy_from_slice(&self[start..start + buf.len()]);
        Ok(())
    }
}

/// Reads `len` bytes at `offset` after checking they lie inside the source.
fn read_range(
    src: &dyn Source,
    offset: u64,
    len: u64,
    what: &str,
) -> Result<Vec<u8>, SectionError> {
    match offset.checked_add(len) {
        Some(end) if end <= src.len() => {}
        _ => {
            return corrupt(format!(
                "{what} at offset {offset} size {len} lies past the end of the file ({} bytes)",
                src.len()
            ));
        }
    }
    let mut buf = vec![0u8; len as usize];
    src.read_exact_at(offset, &mut buf)?;
    Ok(buf)
}

/// Byte order and word size of an ELF file, from `e_ident` (the System V
/// gABI, "ELF Identification").
#[derive(Clone, Copy)]
struct Layout {
    is64: bool,
    big_endian: bool,
}

impl Layout {
    fn u16(self, b: &[u8], at: usize) -> u16 {
        let v = [b[at], b[at + 1]];
        if self.big_endian {
            u16::from_be_bytes(v)
        } else {
            u16::from_le_bytes(v)
        }
    }
    fn u32(self, b: &[u8], at: usize) -> u32 {
        let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if self.big_endian {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        }
    }
    fn u64(self, b: &[u8], at: usize) -> u64 {
        let mut v = [0u8; 8];
        v.copy_from_slice(&b[at..at + 8]);
        if self.big_endian {
            u64::from_be_bytes(v)
        } else {
            u64::from_le_bytes(v)
        }
    }
    /// A 32- or 64-bit address-sized field.
    fn word(self, b: &[u8], at32: usize, at64: usize) -> u64 {
        if self.is64 {
            self.u64(b, at64)
        } else {
            u64::from(self.u32(b, at32))
        }
    }
}

/// One section header, the fields we use.
struct Shdr {
    name: u32,
    kind: u32,
    offset: u64,
    size: u64,
    link: u32,
}

const SHT_NOBITS: u32 = 8;
/// `e_shstrndx` value meaning "the real index is in section 0's `sh_link`".
const SHN_XINDEX: u16 = 0xffff;

fn find_modinfo(src: &dyn Source) -> Result<Vec<u8>, SectionError> {
    if src.len() < 52 {
        return corrupt("shorter than an ELF header");
    }
    let mut ident = [0u8; 64];
    let head = &mut ident[..src.len().min(64) as usize];
    src.read_exact_at(0, head)?;
    let l = Layout {
        is64: match head[4] {
            1 => false,
            2 => true,
            c => return corrupt(format!("unknown ELF class {c}")),
        },
        big_endian: match head[5] {
            1 => false,
            2 => true,
            d => return corrupt(format!("unknown ELF data encoding {d}")),
        },
    };
    if l.is64 && head.len() < 64 {
        return corrupt("shorter than an ELF header");
    }
    // Offsets of e_shoff, e_shentsize, e_shnum, e_shstrndx in Elf32_Ehdr and
    // Elf64_Ehdr.
    let shoff = l.word(head, 0x20, 0x28);
    let (entsize, shnum, shstrndx) = if l.is64 {
        (l.u16(head, 0x3a), l.u16(head, 0x3c), l.u16(head, 0x3e))
    } else {
        (l.u16(head, 0x2e), l.u16(head, 0x30), l.u16(head, 0x32))
    };
    let min_entsize = if l.is64 { 64 } else { 40 };
    if shoff == 0 || u64::from(entsize) < min_entsize {
        return corrupt("no section header table");
    }
    let parse = |b: &[u8]| Shdr {
        name: l.u32(b, 0),
        kind: l.u32(b, 4),
        offset: l.word(b, 0x10, 0x18),
        size: l.word(b, 0x14, 0x20),
        link: l.u32(b, if l.is64 { 0x28 } else { 0x18 }),
    };
    // With 0xff00 sections or more, e_shnum is 0 and e_shstrndx is
    // SHN_XINDEX; the real values sit in section 0 (gABI, "Sections").
    let first = read_range(src, shoff, u64::from(entsize), "section header 0")?;
    let first = parse(&first);
    let count = if shnum == 0 {
        first.size
    } else {
        u64::from(shnum)
    };
    let strndx = if shstrndx == SHN_XINDEX {
        u64::from(first.link)
    } else {
        u64::from(shstrndx)
    };
    if strndx >= count {
        return corrupt(format!(
            "section name table index {strndx} out of {count} sections"
        ));
    }
    let table_len = count
        .checked_mul(u64::from(entsize))
        .filter(|&n| n <= src.len())
        .map_or_else(|| corrupt("section header table larger than the file"), Ok)?;
    let table = read_range(src, shoff, table_len, "section header table")?;
    let headers: Vec<Shdr> = table
        .chunks_exact(usize::from(entsize))
        .map(parse)
        .collect();
    let strtab = &headers[strndx as usize];
    let names = read_range(src, strtab.offset, strtab.size, "section name table")?;
    for h in &headers {
        let name = names
            .get(h.name as usize..)
            .and_then(|s| s.split(|&b| b == 0).next());
        if name == Some(b".modinfo") {
            if h.kind == SHT_NOBITS {
                return corrupt(".modinfo has no contents");
            }
            return read_range(src, h.offset, h.size, ".modinfo");
        }
    }
    corrupt("no .modinfo section")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal ELF relocatable (`ET_REL`) with a `.modinfo` section holding
    /// `modinfo`: null section, `.modinfo`, `.shstrtab`, section table last,
    /// as the linker lays out a module.
    pub(crate) fn tiny_module(modinfo: &[u8], is64: bool, big_endian: bool) -> Vec<u8> {
        let put16 = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let put32 = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let word = |v: u64| -> Vec<u8> {
            if is64 {
                if big_endian {
                    v.to_be_bytes().to_vec()
                } else {
                    v.to_le_bytes().to_vec()
                }
            } else {
                put32(v as u32).to_vec()
            }
        };
        let ehsize: usize = if is64 { 64 } else { 52 };
        let shentsize: usize = if is64 { 64 } else { 40 };
        let shstrtab = b"\0.modinfo\0.shstrtab\0";
        let modinfo_off = ehsize;
        let strtab_off = modinfo_off + modinfo.len();
        let shoff = (strtab_off + shstrtab.len()).next_multiple_of(8);

        let mut f = Vec::new();
        f.extend_from_slice(b"\x7fELF");
        f.push(if is64 { 2 } else { 1 });
        f.push(if big_endian { 2 } else { 1 });
        f.push(1); // EV_CURRENT
        f.resize(16, 0);
        f.extend_from_slice(&put16(1)); // e_type ET_REL
        f.extend_from_slice(&put16(62)); // e_machine EM_X86_64
        f.extend_from_slice(&put32(1)); // e_version
        f.extend(word(0)); // e_entry
        f.extend(word(0)); // e_phoff
        f.extend(word(shoff as u64)); // e_shoff
        f.extend_from_slice(&put32(0)); // e_flags
        f.extend_from_slice(&put16(ehsize as u16));
        f.extend_from_slice(&put16(0)); // e_phentsize
        f.extend_from_slice(&put16(0)); // e_phnum
        f.extend_from_slice(&put16(shentsize as u16));
        f.extend_from_slice(&put16(3)); // e_shnum
        f.extend_from_slice(&put16(2)); // e_shstrndx
        assert_eq!(f.len(), ehsize);
        f.extend_from_slice(modinfo);
        f.extend_from_slice(shstrtab);
        f.resize(shoff, 0);
        let mut section = |name: u32, kind: u32, off: usize, size: usize| {
            let start = f.len();
            f.extend_from_slice(&put32(name));
            f.extend_from_slice(&put32(kind));
            f.extend(word(0)); // sh_flags
            f.extend(word(0)); // sh_addr
            f.extend(word(off as u64));
            f.extend(word(size as u64));
            f.extend_from_slice(&put32(0)); // sh_link
            f.extend_from_slice(&put32(0)); // sh_info
            f.extend(word(1)); // sh_addralign
            f.extend(word(0)); // sh_entsize
            assert_eq!(f.len() - start, shentsize);
        };
        section(0, 0, 0, 0);
        section(1, 1, modinfo_off, modinfo.len()); // SHT_PROGBITS
        section(10, 3, strtab_off, shstrtab.len()); // SHT_STRTAB
        f
    }

    const INFO: &[u8] =
        b"license=GPL\0firmware=acme/a.bin\0alias=pci:v*\0firmware=acme/b.bin\0firmware=\0";

    #[test]
    fn firmware_from_every_elf_flavour() {
        let dir = tempfile::tempdir().unwrap();
        for (is64, be) in [(true, false), (true, true), (false, false), (false, true)] {
            let p = dir.path().join(format!("m{is64}{be}.ko"));
            std::fs::write(&p, tiny_module(INFO, is64, be)).unwrap();
            assert_eq!(
                firmware_of(&p).unwrap(),
                ["acme/a.bin", "acme/b.bin"],
                "64-bit {is64} big-endian {be}"
            );
        }
    }

    #[test]
    fn compressed_modules() {
        let dir = tempfile::tempdir().unwrap();
        let elf = tiny_module(INFO, true, false);
        let xz = dir.path().join("m.ko.xz");
        let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 1);
        std::io::Write::write_all(&mut enc, &elf).unwrap();
        std::fs::write(&xz, enc.finish().unwrap()).unwrap();
        let zst = dir.path().join("m.ko.zst");
        std::fs::write(&zst, zstd::encode_all(elf.as_slice(), 3).unwrap()).unwrap();
        let gz = dir.path().join("m.ko.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &elf).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        for p in [xz, zst, gz] {
            assert_eq!(firmware_of(&p).unwrap(), ["acme/a.bin", "acme/b.bin"]);
        }
    }

    #[test]
    fn corrupt_modules_are_input_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let good = tiny_module(INFO, true, false);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty.ko", Vec::new()),
            (
                "text.ko",
                b"this is not a module at all, just some text".to_vec(),
            ),
            ("truncated.ko", good[..good.len() - 10].to_vec()),
            ("badxz.ko.xz", b"\xfd7zXZ\0garbage".to_vec()),
            ("nomodinfo.ko", {
                let mut m = good.clone();
                // Rename `.modinfo` in the section name table to `.modinfX`.
                let pos = m.windows(9).rposition(|w| w == b".modinfo\0").unwrap();
                m[pos + 7] = b'X';
                m
            }),
            ("hugeoffset.ko", {
                let mut m = good.clone();
                m[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
                m
            }),
        ];
        for (name, bytes) in cases {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            let e = read_modinfo(&p).unwrap_err();
            assert_eq!(crate::error::code_of(&e), Code::Input, "{name}: {e:#}");
            assert!(format!("{e:#}").contains(&p.display().to_string()), "{e:#}");
        }
    }

    #[test]
    fn missing_file_is_a_host_error_naming_it() {
        let e = read_modinfo(Path::new("/nonexistent/x.ko")).unwrap_err();
        assert_eq!(crate::error::code_of(&e), Code::Host);
        assert!(format!("{e:#}").contains("/nonexistent/x.ko"));
    }
}
