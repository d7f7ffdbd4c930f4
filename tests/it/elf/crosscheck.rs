//! Our goblin-based reader against an independent parser, the `elf` crate,
//! on this machine's programs and libraries; and proptest mutations of real
//! files (byte flips, truncations) that must never make our parsers panic.
//!
//! The `elf` crate takes another route to the same facts: the dynamic table
//! through the SHT_DYNAMIC section header and its strings through that
//! section's sh_link, where we (like ld.so) use PT_DYNAMIC and DT_STRTAB.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use elf::ElfBytes;
use elf::abi;
use elf::endian::AnyEndian;
use mkrescue::elf::{ElfInfo, FileKind, Resolver, ldcache, parse_bytes};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// What both parsers report for one file.
#[derive(Debug, PartialEq, Eq)]
struct Facts {
    class: u8,
    machine: u16,
    interpreter: Option<String>,
    needed: Vec<String>,
    soname: Option<String>,
    rpath: Vec<String>,
    runpath: Vec<String>,
}

fn ours(e: &ElfInfo) -> Facts {
    Facts {
        class: e.class,
        machine: e.machine,
        interpreter: e.interpreter.clone(),
        needed: e.needed.clone(),
        soname: e.soname.clone(),
        rpath: e.rpath.clone(),
        runpath: e.runpath.clone(),
    }
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// The same facts through the `elf` crate; `None` if it cannot parse the
/// file or it is not a loadable object.
fn theirs(bytes: &[u8]) -> Option<Facts> {
    let f = ElfBytes::<AnyEndian>::minimal_parse(bytes).ok()?;
    if f.ehdr.e_type != abi::ET_DYN && f.ehdr.e_type != abi::ET_EXEC {
        return None;
    }
    let segments = f.segments();
    let interpreter = segments
        .iter()
        .flat_map(|s| s.iter())
        .find(|p| p.p_type == abi::PT_INTERP)
        .and_then(|p| f.segment_data(&p).ok().map(cstr));
    let mut facts = Facts {
        class: match f.ehdr.class {
            elf::file::Class::ELF32 => 1,
            elf::file::Class::ELF64 => 2,
        },
        machine: f.ehdr.e_machine,
        interpreter,
        needed: vec![],
        soname: None,
        rpath: vec![],
        runpath: vec![],
    };
    let Some(dynamic) = f.dynamic().ok()? else {
        return Some(facts);
    };
    // Strings: the SHT_DYNAMIC section's linked string table.
    let (shdrs, _) = f.section_headers_with_strtab().ok()?;
    let shdrs = shdrs?;
    let dynsec = shdrs.iter().find(|s| s.sh_type == abi::SHT_DYNAMIC)?;
    let strsec = shdrs.get(dynsec.sh_link as usize).ok()?;
    let strtab = f.section_data_as_strtab(&strsec).ok()?;
    for d in dynamic.iter() {
        if d.d_tag == abi::DT_NULL {
            break;
        }
        let s = || strtab.get(d.d_val() as usize).map(str::to_string);
        match d.d_tag {
            abi::DT_NEEDED => facts.needed.push(s().ok()?),
            abi::DT_SONAME => facts.soname = Some(s().ok()?),
            abi::DT_RPATH => facts.rpath.push(s().ok()?),
            abi::DT_RUNPATH => facts.runpath.push(s().ok()?),
            _ => {}
        }
    }
    Some(facts)
}

fn host_elf_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["/usr/bin", "/usr/sbin", "/usr/lib/x86_64-linux-gnu"] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let lib_dir = dir.ends_with("linux-gnu");
            if p.is_file() && (!lib_dir || name.contains(".so")) {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn host_files_agree_with_the_elf_crate() {
    let r = Resolver::new(Path::new("/")).unwrap();
    let (mut compared, mut elf_files) = (0, 0);
    for p in host_elf_files() {
        let Ok(bytes) = std::fs::read(&p) else {
            continue;
        };
        if !bytes.starts_with(b"\x7fELF") {
            continue;
        }
        elf_files += 1;
        // The in-memory and the positioned-read paths agree with each other.
        let from_bytes = parse_bytes(&bytes)
            .unwrap_or_else(|e| panic!("{}: rejected a host file: {e}", p.display()));
        let from_file = r.inspect(&p).unwrap().unwrap();
        assert_eq!(from_bytes, from_file, "{}", p.display());
        let FileKind::Elf(info) = from_bytes else {
            panic!("{}: ELF magic but not read as ELF", p.display());
        };
        let Some(want) = theirs(&bytes) else {
            continue;
        };
        assert_eq!(ours(&info), want, "{}", p.display());
        compared += 1;
    }
    assert!(compared > 0, "no ELF file compared");
    eprintln!("{compared} of {elf_files} ELF files compared with the elf crate");
}

/// A real dynamically linked program, and the file range of its dynamic
/// segment (where mutations hurt most).
fn sample() -> &'static (Vec<u8>, std::ops::Range<usize>) {
    static S: OnceLock<(Vec<u8>, std::ops::Range<usize>)> = OnceLock::new();
    S.get_or_init(|| {
        let bytes = std::fs::read("/usr/bin/ls").expect("this test mutates /usr/bin/ls");
        let f = ElfBytes::<AnyEndian>::minimal_parse(&bytes).unwrap();
        let dynamic = f
            .segments()
            .unwrap()
            .iter()
            .find(|p| p.p_type == abi::PT_DYNAMIC)
            .map(|p| p.p_offset as usize..(p.p_offset + p.p_filesz) as usize)
            .unwrap_or(0..64);
        (bytes, dynamic)
    })
}

fn host_cache() -> &'static Vec<u8> {
    static C: OnceLock<Vec<u8>> = OnceLock::new();
    C.get_or_init(|| std::fs::read("/etc/ld.so.cache").unwrap_or_default())
}

/// Where to flip: the headers, the dynamic segment, or anywhere.
fn offset() -> impl Strategy<Value = (u8, usize)> {
    (0u8..3, any::<usize>())
}

fn place(bytes_len: usize, dynamic: &std::ops::Range<usize>, (kind, x): (u8, usize)) -> usize {
    match kind {
        0 => x % 1024.min(bytes_len),
        1 if !dynamic.is_empty() => dynamic.start + x % dynamic.len(),
        _ => x % bytes_len,
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/it/elf/crosscheck.proptest-regressions",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_programs_never_panic(
        flips in prop::collection::vec((offset(), any::<u8>()), 1..12),
        cut in prop::option::of(any::<usize>()),
    ) {
        let (orig, dynamic) = sample();
        let mut b = orig.clone();
        for (at, x) in flips {
            let i = place(b.len(), dynamic, at);
            b[i] ^= x | 1;
        }
        if let Some(cut) = cut {
            b.truncate(cut % (b.len() + 1));
        }
        // Either answer is fine; a panic fails the test.
        let _ = parse_bytes(&b);
    }

    #[test]
    fn arbitrary_bytes_after_an_elf_ident_never_panic(
        class in 0u8..4, data in 0u8..4,
        rest in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut b = vec![0x7f, b'E', b'L', b'F', class, data];
        b.extend(rest);
        let _ = parse_bytes(&b);
    }

    #[test]
    fn mutated_caches_never_panic(
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in prop::option::of(any::<usize>()),
    ) {
        let orig = host_cache();
        prop_assume!(!orig.is_empty());
        let mut b = orig.clone();
        for (at, x) in flips {
            // Mostly the header and entries, where offsets live.
            let i = if at % 2 == 0 { at % 4096.min(b.len()) } else { at % b.len() };
            b[i] ^= x | 1;
        }
        if let Some(cut) = cut {
            b.truncate(cut % (b.len() + 1));
        }
        let _ = ldcache::parse(&b);
    }
}
