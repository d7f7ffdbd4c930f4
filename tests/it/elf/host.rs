//! The resolver on this machine's own programs, with ldd(1) as an
//! independent oracle: every library ldd names must be in our closure
//! (compared after canonicalizing both, since ldd and we may name one file
//! through different symlinks), and a truncated copy of a real program is an
//! error naming it, never a panic.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use mkrescue::elf::{FileKind, Resolver, parse_bytes};
use mkrescue::error::{Code, code_of};

/// Programs a rescue system needs that are on most Debian hosts.
const PROGRAMS: &[&str] = &[
    "/usr/bin/bash",
    "/usr/bin/ls",
    "/usr/bin/tar",
    "/usr/bin/ssh",
    "/usr/sbin/cryptsetup",
    "/usr/sbin/lvm",
    "/usr/sbin/mdadm",
    "/usr/sbin/sfdisk",
    "/usr/sbin/mkfs.ext4",
    "/usr/sbin/mkfs.xfs",
    "/usr/bin/python3",
    "/usr/bin/gpg",
];

/// The `=>` paths and the interpreter line of `ldd path`, or `None` when
/// ldd cannot tell (static programs, ldd missing).
fn ldd(path: &Path) -> Option<(BTreeSet<PathBuf>, Vec<String>)> {
    let o = Command::new("ldd").arg(path).output().ok()?;
    if !o.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&o.stdout);
    let mut paths = BTreeSet::new();
    let mut not_found = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some((name, rest)) = line.split_once(" => ") {
            if rest.starts_with("not found") {
                not_found.push(name.trim().to_string());
            } else if let Some(p) = rest.split_whitespace().next() {
                paths.insert(PathBuf::from(p));
            }
        } else if line.starts_with('/') {
            // The interpreter: "/lib64/ld-linux-x86-64.so.2 (0x...)".
            if let Some(p) = line.split_whitespace().next() {
                paths.insert(PathBuf::from(p));
            }
        }
    }
    Some((paths, not_found))
}

fn canonical(paths: impl IntoIterator<Item = PathBuf>) -> BTreeSet<PathBuf> {
    paths
        .into_iter()
        .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
        .collect()
}

/// [`PROGRAMS`] plus a spread of every ELF file in /usr/bin and /usr/sbin.
fn sample() -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = ["/usr/bin", "/usr/sbin"]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    all.sort();
    let mut out: Vec<PathBuf> = PROGRAMS.iter().map(PathBuf::from).collect();
    out.extend(all.into_iter().step_by(25));
    out
}

#[test]
fn host_programs_match_ldd() {
    let r = Resolver::new(Path::new("/")).unwrap();
    let mut checked = 0;
    for prog in sample() {
        let prog = prog.as_path();
        if !prog.exists() {
            continue;
        }
        let Some((want, not_found)) = ldd(prog) else {
            continue;
        };
        let c = r.resolve(&[prog.to_path_buf()]).unwrap();
        let ours = canonical(c.files.iter().cloned());
        for p in canonical(want) {
            assert!(
                ours.contains(&p),
                "{}: ldd loads {} but the resolver's closure lacks it:\n{:#?}",
                prog.display(),
                p.display(),
                c.files
            );
        }
        // ldd runs ld.so on the path it is given, so for a program reached
        // through a symlink it computes $ORIGIN from the symlink's directory
        // and may report "not found" (e.g. Java's libjli.so); the kernel's
        // exec reports the real path, as the resolver assumes.
        let via_symlink = std::fs::canonicalize(prog).is_ok_and(|c| c != prog);
        for name in not_found.into_iter().filter(|_| !via_symlink) {
            assert!(
                c.missing.iter().any(|m| m.name == name),
                "{}: ldd says {name} is not found, the resolver does not: {:#?}",
                prog.display(),
                c.missing
            );
        }
        // Every path is absolute and, for the host, exists.
        for f in &c.files {
            assert!(f.is_absolute() && f.exists(), "{}", f.display());
        }
        checked += 1;
    }
    assert!(checked > 0, "none of {PROGRAMS:?} exists on this machine");
}

#[test]
fn cryptsetup_gets_libgcc_s_for_pthread_cancel() {
    let prog = Path::new("/usr/sbin/cryptsetup");
    if !prog.exists() {
        return;
    }
    let c = Resolver::new(Path::new("/"))
        .unwrap()
        .resolve(&[prog.to_path_buf()])
        .unwrap();
    assert!(
        c.files
            .iter()
            .any(|p| p.file_name().is_some_and(|n| n == "libgcc_s.so.1")),
        "{:#?}",
        c.files
    );
}

#[test]
fn lvm_gets_its_dmeventd_plugins() {
    let prog = Path::new("/usr/sbin/lvm");
    if !prog.exists() {
        return;
    }
    let c = Resolver::new(Path::new("/"))
        .unwrap()
        .resolve(&[prog.to_path_buf()])
        .unwrap();
    let has_plugin = c.files.iter().any(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("libdevmapper-event-lvm2"))
    });
    let host_has_plugin = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .flatten()
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("libdevmapper-event-lvm2")
        });
    assert_eq!(has_plugin, host_has_plugin, "{:#?}", c.files);
}

#[test]
fn a_truncated_program_is_an_error_naming_it() {
    let ls = std::fs::read("/usr/bin/ls").expect("this test reads /usr/bin/ls");
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("usr/bin")).unwrap();
    std::fs::write(t.path().join("usr/bin/ls"), &ls[..ls.len() / 2]).unwrap();
    let r = Resolver::new(t.path()).unwrap();
    let err = r.resolve(&[PathBuf::from("/usr/bin/ls")]).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("/usr/bin/ls"), "{msg}");
    assert!(msg.contains("corrupt ELF"), "{msg}");
    assert!(msg.contains("dpkg -S"), "{msg}");
    assert_eq!(code_of(&err), Code::Input);
}

#[test]
fn every_prefix_of_a_real_program_is_rejected_without_panicking() {
    let ls = std::fs::read("/usr/bin/ls").expect("this test reads /usr/bin/ls");
    assert!(matches!(parse_bytes(&ls), Ok(FileKind::Elf(_))));
    // The section header table is at the end of the file, so every proper
    // prefix that still starts with the ELF magic is corrupt.
    let step = (ls.len() / 997).max(1);
    for len in (4..ls.len()).step_by(step).chain(4..200) {
        assert!(parse_bytes(&ls[..len]).is_err(), "{len} bytes accepted");
    }
}

/// Patches `ls` and returns the error parse_bytes gives.
fn corrupt_ls(patch: impl FnOnce(&mut Vec<u8>, &elf::ElfBytes<elf::endian::AnyEndian>)) -> String {
    let ls = std::fs::read("/usr/bin/ls").expect("this test reads /usr/bin/ls");
    let mut b = ls.clone();
    let f = elf::ElfBytes::<elf::endian::AnyEndian>::minimal_parse(&ls).unwrap();
    patch(&mut b, &f);
    parse_bytes(&b).expect_err("corrupt file accepted").0
}

#[test]
fn corrupt_fields_are_named() {
    use elf::abi;
    // The first DT_NEEDED string offset far beyond DT_STRSZ.
    let e = corrupt_ls(|b, f| {
        let dynamic = f
            .segments()
            .unwrap()
            .iter()
            .find(|p| p.p_type == abi::PT_DYNAMIC)
            .unwrap();
        let mut at = dynamic.p_offset as usize;
        loop {
            let tag = i64::from_le_bytes(b[at..at + 8].try_into().unwrap());
            if tag == abi::DT_NEEDED {
                b[at + 8..at + 16].copy_from_slice(&0x00ff_ffffu64.to_le_bytes());
                break;
            }
            at += 16;
        }
    });
    assert!(e.contains("DT_NEEDED string offset 0xffffff"), "{e}");
    // A PT_LOAD segment starting beyond the end of the file.
    let e = corrupt_ls(|b, f| {
        let phoff = f.ehdr.e_phoff as usize;
        let (i, _) = f
            .segments()
            .unwrap()
            .iter()
            .enumerate()
            .find(|(_, p)| p.p_type == abi::PT_LOAD)
            .unwrap();
        // Elf64_Phdr is 56 bytes with p_offset at +8 (elf(5)).
        let p_offset = phoff + i * 56 + 8;
        b[p_offset..p_offset + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    });
    assert!(e.contains("PT_LOAD") && e.contains("beyond the end"), "{e}");
    // A bad program header entry size: e_phentsize is at 54 in Elf64_Ehdr.
    let e = corrupt_ls(|b, _| b[54] = 17);
    assert!(e.contains("program header entry size"), "{e}");
}

/// Not a timed assertion (benchmarks belong in `cargo xtask bench`): prints
/// how long a fresh resolver takes for every ELF program in /usr/bin and
/// /usr/sbin. Run with `cargo test --release --test it -- --nocapture
/// elf::host::resolve_time`.
#[test]
fn resolve_time_of_host_programs() {
    let mut inputs: Vec<PathBuf> = ["/usr/bin", "/usr/sbin"]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    inputs.sort();
    let t = Instant::now();
    let r = Resolver::new(Path::new("/")).unwrap();
    let c = r.resolve(&inputs).unwrap();
    let all = t.elapsed();
    let first200: Vec<PathBuf> = inputs.iter().take(200).cloned().collect();
    let t = Instant::now();
    let c200 = Resolver::new(Path::new("/"))
        .unwrap()
        .resolve(&first200)
        .unwrap();
    let some = t.elapsed();
    eprintln!(
        "resolved {} inputs into {} files ({} missing) in {all:?}; {} inputs into {} files in {some:?}",
        inputs.len(),
        c.files.len(),
        c.missing.len(),
        first200.len(),
        c200.files.len(),
    );
    for m in &c.missing {
        eprintln!("missing: {} (needed by {})", m.name, m.needed_by.display());
    }

    // The rescue system's own tool list, as the build looks it up.
    let path: Vec<PathBuf> = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(PathBuf::from)
        .collect();
    let tools: Vec<PathBuf> = mkrescue::rescue::tools::TOOLS
        .iter()
        .filter_map(|t| mkrescue::rescue::tools::find(Path::new("/"), t.name, &path))
        .collect();
    let t = Instant::now();
    let c = Resolver::new(Path::new("/"))
        .unwrap()
        .resolve(&tools)
        .unwrap();
    eprintln!(
        "rescue tool list: {} of {} tools present, {} files, {} missing, in {:?}",
        tools.len(),
        mkrescue::rescue::tools::TOOLS.len(),
        c.files.len(),
        c.missing.len(),
        t.elapsed()
    );
}
