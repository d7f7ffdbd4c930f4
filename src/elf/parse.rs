//! Reading one file the way the kernel's exec and glibc's ld.so look at it:
//! an ELF object (its PT_INTERP, DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH,
//! DT_FLAGS_1 and systemd `.note.dlopen` notes), a `#!` script, or anything
//! else. Structures are decoded with goblin; every offset taken from the file
//! is checked against the file size first, so a corrupt or truncated file is
//! a [`Corrupt`] error, never a panic or an out-of-bounds read.
//!
//! Only the bytes that matter are read (ELF header and program headers, the
//! interpreter string, the dynamic segment, the strings it points at, notes
//! and the section header table): a few positioned reads per file instead of
//! reading multi-megabyte libraries whole, and no mmap (which would turn a
//! file truncated under us into SIGBUS).

use std::borrow::Cow;
use std::os::unix::fs::FileExt;

use goblin::container::{Container, Ctx, Endian};
use goblin::elf::dynamic::{
    DF_1_NODEFLIB, DT_FLAGS_1, DT_NEEDED, DT_NULL, DT_RPATH, DT_RUNPATH, DT_SONAME, DT_STRSZ,
    DT_STRTAB, Dyn,
};
use goblin::elf::header::{self, ET_DYN, ET_EXEC};
use goblin::elf::note::NoteDataIterator;
use goblin::elf::program_header::{PT_DYNAMIC, PT_INTERP, PT_LOAD, PT_NOTE};
use goblin::elf::section_header::{SHT_NOBITS, SHT_NOTE};
use goblin::elf::{ProgramHeader, SectionHeader};
use scroll::Pread;
use serde::Serialize;

use super::Corrupt;

/// The note type of systemd's dlopen metadata
/// (<https://systemd.io/ELF_DLOPEN_METADATA/>), owner "FDO".
pub const NT_FDO_DLOPEN_METADATA: u32 = 0x407c_0c0a;
const FDO_OWNER: &str = "FDO";

/// The kernel reads this many bytes of a file to find `#!` and the
/// interpreter line (BINPRM_BUF_SIZE, include/uapi/linux/binfmts.h).
const BINPRM_BUF_SIZE: u64 = 256;

/// `e_phnum` value meaning "the real count is in section 0's sh_info"
/// (gABI, "Program Header": PN_XNUM).
const PN_XNUM: u16 = 0xffff;

/// Dynamic string tables up to this size are read in one go; larger ones
/// (libLLVM has megabytes of symbol names) string by string.
const STRTAB_READ_ALL: u64 = 64 * 1024;

/// What kind of file the kernel would see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum FileKind {
    /// An ELF object.
    Elf(ElfInfo),
    /// A script starting with `#!`.
    Script(Shebang),
    /// Anything else: data, text, an empty file. Included as is, no deps.
    Other,
}

/// The `#!` line: `#!interpreter [optional-arg]` (execve(2)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shebang {
    pub interpreter: String,
    /// The rest of the line, trimmed; the kernel passes it as one argument.
    pub arg: Option<String>,
}

/// What ld.so reads from an ELF object to load it and its dependencies.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ElfInfo {
    /// `e_ident[EI_CLASS]`: 1 for 32-bit, 2 for 64-bit.
    pub class: u8,
    /// `e_ident[EI_DATA]`: 1 little endian, 2 big endian.
    pub data: u8,
    pub machine: u16,
    /// ET_REL, ET_EXEC, ET_DYN, ...
    pub e_type: u16,
    /// PT_INTERP: the program interpreter (dynamic loader).
    pub interpreter: Option<String>,
    /// DT_NEEDED names, in order.
    pub needed: Vec<String>,
    pub soname: Option<String>,
    /// DT_RPATH strings (colon-separated lists), in order.
    pub rpath: Vec<String>,
    /// DT_RUNPATH strings, in order.
    pub runpath: Vec<String>,
    /// DT_FLAGS_1 has DF_1_NODEFLIB: ld.so skips the cache and default dirs.
    pub nodeflib: bool,
    /// systemd `.note.dlopen` dependencies.
    pub dlopen: Vec<DlopenDep>,
    /// Problems that do not stop loading (an unreadable note), for the log.
    pub warnings: Vec<String>,
}

impl ElfInfo {
    /// Whether ld.so could load this object as a dependency.
    pub fn is_loadable(&self) -> bool {
        self.e_type == ET_DYN || self.e_type == ET_EXEC
    }
}

/// One entry of a `.note.dlopen` JSON array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DlopenDep {
    pub feature: Option<String>,
    pub description: Option<String>,
    pub priority: Priority,
    /// Alternatives in order of preference: the program loads the first one
    /// it finds.
    pub soname: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Priority {
    Required,
    /// The spec's default when "priority" is absent.
    Recommended,
    Suggested,
}

/// Parses a whole file held in memory: the entry point for fuzzing and for
/// tests. The resolver reads files through [`parse_file`] instead.
pub fn parse_bytes(bytes: &[u8]) -> Result<FileKind, Corrupt> {
    match parse(&SliceSource(bytes)) {
        Ok(k) => Ok(k),
        Err(ReadError::Corrupt(c)) => Err(c),
        // A slice has no I/O; keep the message anyway.
        Err(ReadError::Io(e)) => Err(Corrupt(e.to_string())),
    }
}

/// Parses an open file of `size` bytes, reading only what is needed.
pub(crate) fn parse_file(file: &std::fs::File, size: u64) -> Result<FileKind, ReadError> {
    let prefix_len = size.min(8192) as usize;
    let mut prefix = vec![0; prefix_len];
    read_exact_at(file, &mut prefix, 0)?;
    parse(&FileSource { file, size, prefix })
}

#[derive(Debug)]
pub(crate) enum ReadError {
    Corrupt(Corrupt),
    Io(std::io::Error),
}

impl From<Corrupt> for ReadError {
    fn from(c: Corrupt) -> Self {
        ReadError::Corrupt(c)
    }
}

fn corrupt(msg: impl Into<String>) -> ReadError {
    ReadError::Corrupt(Corrupt(msg.into()))
}

/// Random access to a file's bytes with bounds checks against its size.
trait Source {
    fn size(&self) -> u64;
    /// `len` bytes at `offset`; an error naming `what` if they are not all
    /// inside the file.
    fn read(&self, offset: u64, len: u64, what: &str) -> Result<Cow<'_, [u8]>, ReadError>;

    fn check(&self, offset: u64, len: u64, what: &str) -> Result<(usize, usize), ReadError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size() => Ok((offset as usize, end as usize)),
            _ => Err(corrupt(format!(
                "{what} at offset {offset:#x} with size {len:#x} extends beyond the end of the file ({} bytes)",
                self.size()
            ))),
        }
    }
}

struct SliceSource<'a>(&'a [u8]);

impl Source for SliceSource<'_> {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read(&self, offset: u64, len: u64, what: &str) -> Result<Cow<'_, [u8]>, ReadError> {
        let (start, end) = self.check(offset, len, what)?;
        Ok(Cow::Borrowed(&self.0[start..end]))
    }
}

/// A file plus its first bytes, which hold the headers (and often the
/// interpreter, dynamic strings and notes) of small programs.
struct FileSource<'a> {
    file: &'a std::fs::File,
    size: u64,
    prefix: Vec<u8>,
}

impl Source for FileSource<'_> {
    fn size(&self) -> u64 {
        self.size
    }
    fn read(&self, offset: u64, len: u64, what: &str) -> Result<Cow<'_, [u8]>, ReadError> {
        let (start, end) = self.check(offset, len, what)?;
        if end <= self.prefix.len() {
            return Ok(Cow::Borrowed(&self.prefix[start..end]));
        }
        let mut buf = vec![0; end - start];
        read_exact_at(self.file, &mut buf, offset)?;
        Ok(Cow::Owned(buf))
    }
}

fn read_exact_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> Result<(), ReadError> {
    file.read_exact_at(buf, offset).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            corrupt("the file shrank while it was being read")
        } else {
            ReadError::Io(e)
        }
    })
}

fn parse(src: &dyn Source) -> Result<FileKind, ReadError> {
    let head = src.read(0, src.size().min(BINPRM_BUF_SIZE), "file header")?;
    if head.starts_with(b"\x7fELF") {
        parse_elf(src, &head).map(FileKind::Elf)
    } else if let Some(line) = head.strip_prefix(b"#!") {
        Ok(parse_shebang(line).map_or(FileKind::Other, FileKind::Script))
    } else {
        Ok(FileKind::Other)
    }
}

/// fs/binfmt_script.c: the line ends at a newline (or the end of the
/// buffer); blanks after `#!` are skipped; the interpreter ends at a blank;
/// the rest, trimmed, is one optional argument.
fn parse_shebang(line: &[u8]) -> Option<Shebang> {
    let line = line.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let line = line.trim_matches(|c| c == ' ' || c == '\t' || c == '\r' || c == '\0');
    let (interp, arg) = match line.find([' ', '\t']) {
        Some(i) => (&line[..i], line[i..].trim_matches([' ', '\t'])),
        None => (line, ""),
    };
    if interp.is_empty() {
        return None;
    }
    Some(Shebang {
        interpreter: interp.to_string(),
        arg: (!arg.is_empty()).then(|| arg.to_string()),
    })
}

fn parse_elf(src: &dyn Source, head: &[u8]) -> Result<ElfInfo, ReadError> {
    use header::{EI_CLASS, EI_DATA, ELFCLASS32, ELFCLASS64, ELFDATA2LSB, ELFDATA2MSB};
    let ident = head
        .get(..header::SIZEOF_IDENT)
        .ok_or_else(|| corrupt("truncated ELF identification"))?;
    let (container, ehsize) = match ident[EI_CLASS] {
        ELFCLASS32 => (Container::Little, header::header32::SIZEOF_EHDR),
        ELFCLASS64 => (Container::Big, header::header64::SIZEOF_EHDR),
        c => return Err(corrupt(format!("invalid ELF class byte {c}"))),
    };
    let le = match ident[EI_DATA] {
        ELFDATA2LSB => Endian::Little,
        ELFDATA2MSB => Endian::Big,
        d => return Err(corrupt(format!("invalid ELF byte order {d}"))),
    };
    let ctx = Ctx::new(container, le);
    let ehdr_bytes = head.get(..ehsize).ok_or_else(|| {
        corrupt(format!(
            "truncated ELF header: the file has {} bytes, the header needs {ehsize}",
            src.size()
        ))
    })?;
    let ehdr: header::Header = match container {
        Container::Little => header::header32::Header::parse(ehdr_bytes).map(Into::into),
        Container::Big => header::header64::Header::parse(ehdr_bytes).map(Into::into),
    }
    .map_err(|e| corrupt(format!("bad ELF header: {e}")))?;

    let mut info = ElfInfo {
        class: ident[EI_CLASS],
        data: ident[EI_DATA],
        machine: ehdr.e_machine,
        e_type: ehdr.e_type,
        ..ElfInfo::default()
    };

    let shdrs = section_headers(src, &ehdr, ctx)?;
    let phdrs = program_headers(src, &ehdr, ctx, &shdrs)?;
    for (i, ph) in phdrs.iter().enumerate() {
        if matches!(ph.p_type, PT_LOAD | PT_INTERP | PT_DYNAMIC | PT_NOTE) {
            src.check(
                ph.p_offset,
                ph.p_filesz,
                &format!("segment {i} ({})", segment_name(ph.p_type)),
            )?;
        }
    }
    for (i, sh) in shdrs.iter().enumerate() {
        if sh.sh_type != SHT_NOBITS && sh.sh_size > 0 {
            src.check(sh.sh_offset, sh.sh_size, &format!("section {i}"))?;
        }
    }
    // ld.so only loads ET_DYN and ET_EXEC; relocatable objects (kernel
    // modules) and core files have no dependencies to follow.
    if !info.is_loadable() {
        return Ok(info);
    }

    if let Some(ph) = phdrs.iter().find(|p| p.p_type == PT_INTERP) {
        let bytes = src.read(ph.p_offset, ph.p_filesz, "PT_INTERP")?;
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        if end == 0 {
            return Err(corrupt("empty PT_INTERP (program interpreter)"));
        }
        info.interpreter = Some(String::from_utf8_lossy(&bytes[..end]).into_owned());
    }
    if let Some(ph) = phdrs.iter().find(|p| p.p_type == PT_DYNAMIC) {
        read_dynamic(src, ph, &phdrs, ctx, &mut info)?;
    }
    read_notes(src, &phdrs, &shdrs, ctx, &mut info)?;
    Ok(info)
}

fn segment_name(p_type: u32) -> &'static str {
    match p_type {
        PT_LOAD => "PT_LOAD",
        PT_INTERP => "PT_INTERP",
        PT_DYNAMIC => "PT_DYNAMIC",
        PT_NOTE => "PT_NOTE",
        _ => "segment",
    }
}

fn section_headers(
    src: &dyn Source,
    ehdr: &header::Header,
    ctx: Ctx,
) -> Result<Vec<SectionHeader>, ReadError> {
    if ehdr.e_shoff == 0 {
        return Ok(Vec::new());
    }
    let entsize = SectionHeader::size(ctx) as u64;
    if u64::from(ehdr.e_shentsize) != entsize {
        return Err(corrupt(format!(
            "section header entry size {} (expected {entsize})",
            ehdr.e_shentsize
        )));
    }
    let mut count = u64::from(ehdr.e_shnum);
    if count == 0 {
        // gABI: with SHN_LORESERVE or more sections e_shnum is 0 and the count
        // is in the sh_size of section 0.
        let first = src.read(ehdr.e_shoff, entsize, "section header 0")?;
        let sh0 = SectionHeader::parse_from(&first, 0, 1, ctx)
            .map_err(|e| corrupt(format!("bad section header 0: {e}")))?;
        count = sh0.first().map_or(0, |s| s.sh_size);
        if count == 0 {
            return Ok(Vec::new());
        }
    }
    let len = count
        .checked_mul(entsize)
        .ok_or_else(|| corrupt(format!("section header count {count} overflows")))?;
    let table = src.read(ehdr.e_shoff, len, "section header table")?;
    SectionHeader::parse_from(&table, 0, count as usize, ctx)
        .map_err(|e| corrupt(format!("bad section header table: {e}")))
}

fn program_headers(
    src: &dyn Source,
    ehdr: &header::Header,
    ctx: Ctx,
    shdrs: &[SectionHeader],
) -> Result<Vec<ProgramHeader>, ReadError> {
    let count = if ehdr.e_phnum == PN_XNUM {
        shdrs.first().map_or(0, |s| u64::from(s.sh_info))
    } else {
        u64::from(ehdr.e_phnum)
    };
    if count == 0 {
        return Ok(Vec::new());
    }
    let entsize = ProgramHeader::size(ctx) as u64;
    if u64::from(ehdr.e_phentsize) != entsize {
        return Err(corrupt(format!(
            "program header entry size {} (expected {entsize})",
            ehdr.e_phentsize
        )));
    }
    let table = src.read(ehdr.e_phoff, count * entsize, "program header table")?;
    ProgramHeader::parse(&table, 0, count as usize, ctx)
        .map_err(|e| corrupt(format!("bad program header table: {e}")))
}

/// The file offset of virtual address `addr`: ld.so reaches DT_STRTAB
/// through the mapped PT_LOAD segments, so must we (elf(5)).
fn vaddr_to_offset(phdrs: &[ProgramHeader], addr: u64) -> Option<(u64, u64)> {
    phdrs.iter().find_map(|ph| {
        let rel = addr.checked_sub(ph.p_vaddr)?;
        (ph.p_type == PT_LOAD && rel < ph.p_filesz).then(|| (ph.p_offset + rel, ph.p_filesz - rel))
    })
}

fn read_dynamic(
    src: &dyn Source,
    ph: &ProgramHeader,
    phdrs: &[ProgramHeader],
    ctx: Ctx,
    info: &mut ElfInfo,
) -> Result<(), ReadError> {
    let bytes = src.read(ph.p_offset, ph.p_filesz, "PT_DYNAMIC")?;
    let (mut needed, mut rpath, mut runpath, mut soname) = (vec![], vec![], vec![], None);
    let (mut strtab, mut strsz) = (None, None);
    let mut offset = 0;
    let size = Dyn::size(ctx.container);
    while offset + size <= bytes.len() {
        let d: Dyn = bytes
            .gread_with(&mut offset, ctx)
            .map_err(|e| corrupt(format!("bad dynamic entry: {e}")))?;
        match d.d_tag {
            DT_NULL => break,
            DT_NEEDED => needed.push(d.d_val),
            DT_RPATH => rpath.push(d.d_val),
            DT_RUNPATH => runpath.push(d.d_val),
            DT_SONAME => soname = Some(d.d_val),
            DT_STRTAB => strtab = Some(d.d_val),
            DT_STRSZ => strsz = Some(d.d_val),
            DT_FLAGS_1 => info.nodeflib = d.d_val & DF_1_NODEFLIB != 0,
            _ => {}
        }
    }
    if needed.is_empty() && rpath.is_empty() && runpath.is_empty() && soname.is_none() {
        return Ok(());
    }
    let addr = strtab.ok_or_else(|| corrupt("dynamic section has strings but no DT_STRTAB"))?;
    let (offset, in_segment) = vaddr_to_offset(phdrs, addr).ok_or_else(|| {
        corrupt(format!(
            "DT_STRTAB address {addr:#x} is not inside any PT_LOAD segment"
        ))
    })?;
    let len = strsz.unwrap_or(in_segment);
    let table = StrTab::new(src, offset, len)?;
    let get = |off: u64, tag: &str| table.get(src, off, tag);
    info.needed = needed
        .into_iter()
        .map(|o| get(o, "DT_NEEDED"))
        .collect::<Result<_, _>>()?;
    info.rpath = rpath
        .into_iter()
        .map(|o| get(o, "DT_RPATH"))
        .collect::<Result<_, _>>()?;
    info.runpath = runpath
        .into_iter()
        .map(|o| get(o, "DT_RUNPATH"))
        .collect::<Result<_, _>>()?;
    info.soname = soname.map(|o| get(o, "DT_SONAME")).transpose()?;
    Ok(())
}

/// The dynamic string table (DT_STRTAB/DT_STRSZ), read whole when small.
struct StrTab<'a> {
    offset: u64,
    len: u64,
    all: Option<Cow<'a, [u8]>>,
}

impl<'a> StrTab<'a> {
    fn new(src: &'a dyn Source, offset: u64, len: u64) -> Result<Self, ReadError> {
        src.check(offset, len, "dynamic string table (DT_STRTAB, DT_STRSZ)")?;
        let all = if len <= STRTAB_READ_ALL {
            Some(src.read(offset, len, "dynamic string table")?)
        } else {
            None
        };
        Ok(StrTab { offset, len, all })
    }

    fn get(&self, src: &dyn Source, off: u64, tag: &str) -> Result<String, ReadError> {
        if off >= self.len {
            return Err(corrupt(format!(
                "{tag} string offset {off:#x} is beyond the dynamic string table size {:#x} (DT_STRSZ)",
                self.len
            )));
        }
        let unterminated = || corrupt(format!("{tag} string at {off:#x} is not NUL-terminated"));
        if let Some(all) = &self.all {
            let rest = &all[off as usize..];
            let end = rest.iter().position(|&b| b == 0).ok_or_else(unterminated)?;
            return Ok(String::from_utf8_lossy(&rest[..end]).into_owned());
        }
        // Large table: read growing chunks until the NUL.
        let mut chunk = 256;
        loop {
            let n = chunk.min(self.len - off);
            let bytes = src.read(self.offset + off, n, "dynamic string")?;
            if let Some(end) = bytes.iter().position(|&b| b == 0) {
                return Ok(String::from_utf8_lossy(&bytes[..end]).into_owned());
            }
            if n == self.len - off {
                return Err(unterminated());
            }
            chunk *= 4;
        }
    }
}

/// systemd dlopen notes in PT_NOTE segments and in SHT_NOTE sections outside
/// them (the spec asks readers to find the note by type and owner, not by
/// section name). A malformed note does not stop ld.so, so it is only a
/// warning here.
fn read_notes(
    src: &dyn Source,
    phdrs: &[ProgramHeader],
    shdrs: &[SectionHeader],
    ctx: Ctx,
    info: &mut ElfInfo,
) -> Result<(), ReadError> {
    let segments: Vec<(u64, u64, u64)> = phdrs
        .iter()
        .filter(|p| p.p_type == PT_NOTE)
        .map(|p| (p.p_offset, p.p_filesz, p.p_align))
        .collect();
    let covered = |off: u64, size: u64| {
        segments
            .iter()
            .any(|&(o, s, _)| off >= o && off.saturating_add(size) <= o.saturating_add(s))
    };
    let sections: Vec<(u64, u64, u64)> = shdrs
        .iter()
        .filter(|s| s.sh_type == SHT_NOTE && !covered(s.sh_offset, s.sh_size))
        .map(|s| (s.sh_offset, s.sh_size, s.sh_addralign))
        .collect();
    for (offset, size, align) in segments.into_iter().chain(sections) {
        if size == 0 {
            continue;
        }
        let bytes = src.read(offset, size, "note")?;
        let notes = NoteDataIterator {
            data: &bytes,
            size: bytes.len(),
            offset: 0,
            ctx: (align as usize, ctx),
        };
        for note in notes {
            match note {
                Ok(n) if n.n_type == NT_FDO_DLOPEN_METADATA && n.name == FDO_OWNER => {
                    match parse_dlopen_json(n.desc) {
                        Ok(deps) => info.dlopen.extend(deps),
                        Err(e) => info
                            .warnings
                            .push(format!("unreadable .note.dlopen metadata: {e}")),
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    info.warnings
                        .push(format!("unreadable note at offset {offset:#x}: {e}"));
                    break;
                }
            }
        }
    }
    Ok(())
}

/// The note's payload: a NUL-terminated (and NUL-padded) UTF-8 JSON array of
/// objects with "soname" (array of strings), "feature", "description",
/// "priority" ("required", "recommended" (default), "suggested").
pub fn parse_dlopen_json(desc: &[u8]) -> Result<Vec<DlopenDep>, String> {
    let end = desc.iter().position(|&b| b == 0).unwrap_or(desc.len());
    let value: serde_json::Value =
        serde_json::from_slice(&desc[..end]).map_err(|e| e.to_string())?;
    let items = value
        .as_array()
        .ok_or_else(|| "the payload is not a JSON array".to_string())?;
    let mut deps = Vec::new();
    for item in items {
        let text = |k: &str| item.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let soname: Vec<String> = match item.get("soname") {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            _ => return Err(format!("entry without a \"soname\" array: {item}")),
        };
        let priority = match text("priority").as_deref() {
            Some("required") => Priority::Required,
            Some("suggested") => Priority::Suggested,
            _ => Priority::Recommended,
        };
        deps.push(DlopenDep {
            feature: text("feature"),
            description: text("description"),
            priority,
            soname,
        });
    }
    Ok(deps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_lines() {
        let s = |b: &[u8]| match parse_bytes(b).unwrap() {
            FileKind::Script(s) => Some((s.interpreter, s.arg)),
            _ => None,
        };
        assert_eq!(s(b"#!/bin/sh\necho"), Some(("/bin/sh".into(), None)));
        assert_eq!(
            s(b"#! /usr/bin/env  bash -e \n"),
            Some(("/usr/bin/env".into(), Some("bash -e".into())))
        );
        assert_eq!(s(b"#!/bin/bash\r\n"), Some(("/bin/bash".into(), None)));
        assert_eq!(s(b"#!\n"), None);
        assert_eq!(parse_bytes(b"").unwrap(), FileKind::Other);
        assert_eq!(parse_bytes(b"hello").unwrap(), FileKind::Other);
    }

    #[test]
    fn truncated_elf_headers_are_corrupt() {
        let e = parse_bytes(b"\x7fELF\x02\x01\x01").unwrap_err();
        assert!(e.0.contains("identification"), "{e}");
        let mut b = vec![0x7f, b'E', b'L', b'F', 2, 1, 1];
        b.resize(40, 0);
        assert!(
            parse_bytes(&b)
                .unwrap_err()
                .0
                .contains("truncated ELF header")
        );
        b[4] = 9;
        assert!(parse_bytes(&b).unwrap_err().0.contains("class"));
    }

    #[test]
    fn dlopen_json() {
        let deps = parse_dlopen_json(
            br#"[{"feature":"pcre2","description":"regex","priority":"suggested","soname":["libpcre2-8.so.0"]},{"soname":["a.so.1","a.so.2"]}]"#,
        )
        .unwrap();
        assert_eq!(deps.len(), 2);
        assert_eq!(deps[0].priority, Priority::Suggested);
        assert_eq!(deps[0].feature.as_deref(), Some("pcre2"));
        assert_eq!(deps[1].priority, Priority::Recommended);
        assert_eq!(deps[1].soname, ["a.so.1", "a.so.2"]);
        assert!(parse_dlopen_json(b"{}").is_err());
        assert!(parse_dlopen_json(b"[{\"feature\":1}]").is_err());
        assert!(parse_dlopen_json(b"[]\0\0\0").unwrap().is_empty());
    }
}
