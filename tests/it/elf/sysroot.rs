//! The resolver on a temporary sysroot of small ELF files that this test
//! builds with gcc: RUNPATH versus (inherited) RPATH, `$ORIGIN` in
//! DT_NEEDED, DF_1_NODEFLIB, glibc-hwcaps variants, a 32-bit library of
//! the same name, systemd dlopen notes, ld.so.conf include globs, absolute
//! symlinks that must be followed inside the sysroot, `#!/usr/bin/env`
//! scripts, and an ld.so.cache written by the real ldconfig.
//!
//! The objects are linked with `-nostdlib`, so they need nothing from the
//! host but still carry the host's PT_INTERP.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use mkrescue::elf::{Closure, FileKind, Missing, Resolver};

fn gcc_available() {
    let ok = Command::new("gcc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "gcc not found: the ELF resolver tests build small programs and libraries with it; \
         install it (apt-get install gcc)"
    );
}

/// Compiles `src` into `out` (below the sysroot) with extra gcc `args`.
fn cc(build: &Path, out: &Path, src: &str, args: &[&str]) {
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let name = out.file_name().unwrap().to_string_lossy().replace('$', "_");
    let c = build.join(format!("{name}.c"));
    std::fs::write(&c, src).unwrap();
    let o = Command::new("gcc")
        .args(["-nostdlib", "-fPIC", "-o"])
        .arg(out)
        .arg(&c)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "gcc {}: {}",
        out.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn lib(build: &Path, out: &Path, soname: &str, body: &str, args: &[&str]) {
    let so = format!("-Wl,-soname,{soname}");
    let mut all = vec!["-shared", so.as_str()];
    all.extend_from_slice(args);
    cc(build, out, body, &all);
}

fn exe(build: &Path, out: &Path, body: &str, args: &[&str]) {
    let src = format!("{body}\nvoid _start(void) {{ for (;;); }}\n");
    cc(build, out, &src, args);
}

/// A minimal ELF32 i386 ET_DYN header: enough for ld.so (and us) to see a
/// 32-bit library of the wanted name and skip it.
fn fake_elf32(out: &Path) {
    let mut b = vec![0x7f, b'E', b'L', b'F', 1, 1, 1];
    b.resize(16, 0);
    b.extend_from_slice(&3u16.to_le_bytes()); // e_type ET_DYN
    b.extend_from_slice(&3u16.to_le_bytes()); // e_machine EM_386
    b.extend_from_slice(&1u32.to_le_bytes()); // e_version
    b.resize(40, 0); // e_entry, e_phoff, e_shoff, e_flags
    b.extend_from_slice(&52u16.to_le_bytes()); // e_ehsize
    b.extend_from_slice(&32u16.to_le_bytes()); // e_phentsize
    b.extend_from_slice(&0u16.to_le_bytes()); // e_phnum
    b.extend_from_slice(&40u16.to_le_bytes()); // e_shentsize
    b.resize(52, 0);
    std::fs::write(out, b).unwrap();
}

const DLOPEN_NOTE: &str = r#"
#define JSON "[{\"feature\":\"plug\",\"description\":\"a plugin\",\"priority\":\"required\",\"soname\":[\"libplug-new.so.2\",\"libplug.so.1\"]}," \
  "{\"feature\":\"gone\",\"priority\":\"required\",\"soname\":[\"libnotthere.so.9\"]}," \
  "{\"feature\":\"maybe\",\"priority\":\"suggested\",\"soname\":[\"libnope.so.1\"]}]"
__attribute__((used, section(".note.dlopen"), aligned(4))) static const struct {
  unsigned namesz, descsz, type; char name[4]; char desc[(sizeof(JSON) + 3) & ~3];
} dlopen_note = { 4, sizeof(JSON), 0x407c0c0a, "FDO", JSON };
int user(void) { return 1; }
"#;

const MULTIARCH: &str = "/usr/lib/x86_64-linux-gnu";

struct Sysroot {
    root: PathBuf,
}

impl Sysroot {
    fn p(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }
}

/// The sysroot most tests share (read only), built once per test run.
fn shared() -> &'static Sysroot {
    static S: OnceLock<Sysroot> = OnceLock::new();
    S.get_or_init(|| build_sysroot("shared"))
}

/// Builds a sysroot in cargo's scratch directory for integration tests.
/// The directory carries the process id: `cargo test` runs every test in one
/// process, but cargo-nextest runs each in its own, and two processes must
/// never build into one tree. Trees of processes that are gone are removed.
fn build_sysroot(name: &str) -> Sysroot {
    gcc_available();
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let prefix = format!("elf_sysroot_{name}_");
    for e in std::fs::read_dir(tmp).into_iter().flatten().flatten() {
        let file = e.file_name();
        let Some(pid) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let dir = tmp.join(format!("{prefix}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("root");
    let build = dir.join("build");
    std::fs::create_dir_all(&build).unwrap();
    let s = Sysroot { root };
    let b = build.as_path();
    let ml = |n: &str| s.p(&format!("{MULTIARCH}/{n}"));

    // Merged /usr: /lib relative, /lib64 absolute (must stay in the root:
    // the host has its own /usr/lib64/ld-linux-x86-64.so.2).
    std::fs::create_dir_all(s.p("/usr/lib64")).unwrap();
    symlink("usr/lib", s.p("/lib")).unwrap();
    symlink("/usr/lib64", s.p("/lib64")).unwrap();
    lib(
        b,
        &s.p("/usr/lib64/ld-linux-x86-64.so.2"),
        "ld-mkrescue-fake.so.2",
        "int rtld(void) { return 0; }",
        &[],
    );

    // Default-directory libraries, one with a glibc-hwcaps variant.
    lib(
        b,
        &ml("libh.so.1"),
        "libh.so.1",
        "int h(void){return 1;}",
        &[],
    );
    lib(
        b,
        &ml("glibc-hwcaps/x86-64-v3/libh.so.1"),
        "libh.so.1",
        "int h(void){return 3;}",
        &[],
    );
    lib(
        b,
        &ml("libz32.so"),
        "libz32.so",
        "int z(void){return 0;}",
        &[],
    );
    lib(
        b,
        &ml("libplug.so.1"),
        "libplug.so.1",
        "int p(void){return 0;}",
        &[],
    );
    lib(
        b,
        &ml("libgcc_s.so.1"),
        "libgcc_s.so.1",
        "int u(void){return 0;}",
        &[],
    );
    lib(b, &ml("libuser.so.1"), "libuser.so.1", DLOPEN_NOTE, &[]);

    // RUNPATH applies to the program's own needs only.
    lib(
        b,
        &s.p("/opt/new/lib/libb.so"),
        "libb.so",
        "int bb(void){return 0;}",
        &[],
    );
    let new_lib = s.p("/opt/new/lib");
    let l_new = format!("-L{}", new_lib.display());
    let l_ml = format!("-L{}", ml("").display());
    lib(
        b,
        &s.p("/opt/new/lib/liba.so"),
        "liba.so",
        "int bb(void); int a(void){return bb();}",
        &[&l_new, "-lb"],
    );
    fake_elf32(&s.p("/opt/new/lib/libz32.so"));
    exe(
        b,
        &s.p("/opt/new/bin/prog"),
        "int a(void); int h(void); int z(void); int user(void); int m(void){return a()+h()+z()+user();}",
        &[
            &l_new,
            &l_ml,
            "-la",
            "-l:libh.so.1",
            "-lz32",
            "-l:libuser.so.1",
            "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib",
        ],
    );

    // RPATH is inherited down the chain.
    let old_lib = s.p("/opt/old/lib");
    let l_old = format!("-L{}", old_lib.display());
    lib(
        b,
        &s.p("/opt/old/lib/libd.so"),
        "libd.so",
        "int d(void){return 0;}",
        &[],
    );
    lib(
        b,
        &s.p("/opt/old/lib/libc1.so"),
        "libc1.so",
        "int d(void); int c1(void){return d();}",
        &[&l_old, "-ld"],
    );
    exe(
        b,
        &s.p("/opt/old/bin/prog2"),
        "int c1(void); int m(void){return c1();}",
        &[
            &l_old,
            "-lc1",
            "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../lib",
        ],
    );
    std::fs::create_dir_all(s.p("/usr/bin")).unwrap();
    symlink("/opt/old/bin/prog2", s.p("/usr/bin/prog2")).unwrap();

    // DT_NEEDED with $ORIGIN (the soname of the linked library), and a
    // DF_1_NODEFLIB program that may not use the default directories.
    lib(
        b,
        &s.p("/opt/orig/lib/libx.so"),
        "$ORIGIN/../lib/libx.so",
        "int x(void){return 0;}",
        &[],
    );
    exe(
        b,
        &s.p("/opt/orig/bin/prog3"),
        "int x(void); int h(void); int m(void){return x()+h();}",
        &[
            &format!("-L{}", s.p("/opt/orig/lib").display()),
            &l_ml,
            "-lx",
            "-l:libh.so.1",
            "-Wl,-z,nodefaultlib",
        ],
    );

    // ld.so.conf directories.
    std::fs::create_dir_all(s.p("/etc/ld.so.conf.d")).unwrap();
    std::fs::write(s.p("/etc/ld.so.conf"), "include /etc/ld.so.conf.d/*.conf\n").unwrap();
    std::fs::write(
        s.p("/etc/ld.so.conf.d/opt.conf"),
        "# third party\n/opt/conf/lib\n",
    )
    .unwrap();
    lib(
        b,
        &s.p("/opt/conf/lib/libconf.so.1"),
        "libconf.so.1",
        "int cf(void){return 0;}",
        &[],
    );
    exe(
        b,
        &s.p("/usr/bin/prog4"),
        "int cf(void); int m(void){return cf();}",
        &[
            &format!("-L{}", s.p("/opt/conf/lib").display()),
            "-l:libconf.so.1",
        ],
    );

    // Scripts.
    exe(b, &s.p("/usr/bin/env"), "", &[]);
    exe(
        b,
        &s.p("/usr/sbin/tool"),
        "int h(void); int m(void){return h();}",
        &[&l_ml, "-l:libh.so.1"],
    );
    std::fs::write(s.p("/usr/bin/script"), "#!/usr/bin/env -S tool --flag\n").unwrap();
    std::fs::write(s.p("/usr/bin/script2"), "#! /usr/bin/script\n").unwrap();
    std::fs::write(s.p("/usr/bin/script3"), "#!/usr/bin/env nosuchtool\n").unwrap();
    std::fs::set_permissions(
        s.p("/usr/sbin/tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    // No dependencies: a static program and a relocatable object.
    cc(
        b,
        &s.p("/usr/bin/static"),
        "void _start(void) { for (;;); }",
        &["-static"],
    );
    cc(
        b,
        &s.p("/usr/lib/modules/x.ko"),
        "int init(void){return 0;}",
        &["-c"],
    );
    std::fs::create_dir_all(s.p("/usr/share")).unwrap();
    std::fs::write(s.p("/usr/share/data.txt"), "not a program\n").unwrap();
    s
}

fn resolve(s: &Sysroot, inputs: &[&str]) -> Closure {
    let r = Resolver::new(&s.root).unwrap();
    let inputs: Vec<PathBuf> = inputs.iter().map(PathBuf::from).collect();
    r.resolve(&inputs).unwrap()
}

fn has(c: &Closure, p: &str) -> bool {
    c.files.contains(Path::new(p))
}

fn missing(c: &Closure, name: &str, by: &str) -> bool {
    c.missing.contains(&Missing {
        name: name.into(),
        needed_by: by.into(),
    })
}

#[test]
fn runpath_is_not_inherited_and_wrong_class_is_skipped() {
    let s = shared();
    let c = resolve(s, &["/opt/new/bin/prog"]);
    assert!(has(&c, "/opt/new/bin/prog"));
    assert!(has(&c, "/opt/new/lib/liba.so"), "{c:#?}");
    // liba.so has no RUNPATH of its own and the program's is not inherited.
    assert!(missing(&c, "libb.so", "/opt/new/lib/liba.so"), "{c:#?}");
    assert!(!has(&c, "/opt/new/lib/libb.so"));
    // The 32-bit libz32.so in the RUNPATH dir is skipped for the 64-bit one.
    assert!(!has(&c, "/opt/new/lib/libz32.so"));
    assert!(has(&c, "/lib/x86_64-linux-gnu/libz32.so"), "{c:#?}");
    // The interpreter, as PT_INTERP names it, read inside the sysroot.
    assert!(has(&c, "/lib64/ld-linux-x86-64.so.2"));
    let r = Resolver::new(&s.root).unwrap();
    match r.inspect(Path::new("/lib64/ld-linux-x86-64.so.2")).unwrap() {
        Some(FileKind::Elf(e)) => {
            assert_eq!(e.soname.as_deref(), Some("ld-mkrescue-fake.so.2"))
        }
        other => panic!("interpreter not read inside the sysroot: {other:?}"),
    }
}

#[test]
fn hwcaps_variants_and_builtin_dlopen_libraries_are_included() {
    let s = shared();
    let c = resolve(s, &["/opt/new/bin/prog"]);
    // No cache in this sysroot: found in the default directory
    // /lib/x86_64-linux-gnu (through the /lib -> usr/lib symlink), with its
    // glibc-hwcaps variant.
    assert!(has(&c, "/lib/x86_64-linux-gnu/libh.so.1"), "{c:#?}");
    assert!(has(
        &c,
        "/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libh.so.1"
    ));
    // Built-in dlopen list: libgcc_s present, NSS modules absent and not
    // missing.
    assert!(has(&c, "/lib/x86_64-linux-gnu/libgcc_s.so.1"));
    assert!(!c.missing.iter().any(|m| m.name.starts_with("libnss_")));
}

#[test]
fn dlopen_notes_bring_their_libraries() {
    let s = shared();
    let c = resolve(s, &["/opt/new/bin/prog"]);
    let user = "/lib/x86_64-linux-gnu/libuser.so.1";
    assert!(has(&c, user), "{c:#?}");
    // First alternative absent, second present.
    assert!(has(&c, "/lib/x86_64-linux-gnu/libplug.so.1"), "{c:#?}");
    assert!(!missing(&c, "libplug-new.so.2 or libplug.so.1", user));
    // Required and absent: missing. Suggested and absent: not.
    assert!(missing(&c, "libnotthere.so.9", user), "{c:#?}");
    assert!(!c.missing.iter().any(|m| m.name.contains("libnope")));
}

#[test]
fn rpath_is_inherited_down_the_chain() {
    let s = shared();
    // Through an absolute symlink: $ORIGIN is the program's real directory.
    let c = resolve(s, &["/usr/bin/prog2"]);
    assert!(has(&c, "/usr/bin/prog2"));
    assert!(has(&c, "/opt/old/lib/libc1.so"), "{c:#?}");
    assert!(has(&c, "/opt/old/lib/libd.so"), "{c:#?}");
    assert!(c.missing.is_empty(), "{c:#?}");
}

#[test]
fn origin_in_dt_needed_and_nodeflib() {
    let s = shared();
    let c = resolve(s, &["/opt/orig/bin/prog3"]);
    assert!(has(&c, "/opt/orig/lib/libx.so"), "{c:#?}");
    assert!(missing(&c, "libh.so.1", "/opt/orig/bin/prog3"), "{c:#?}");
}

#[test]
fn ld_so_conf_directories_back_up_a_missing_cache() {
    let s = shared();
    let c = resolve(s, &["/usr/bin/prog4"]);
    assert!(has(&c, "/opt/conf/lib/libconf.so.1"), "{c:#?}");
}

#[test]
fn scripts_bring_their_interpreters() {
    let s = shared();
    let c = resolve(s, &["/usr/bin/script2", "/usr/share/data.txt"]);
    for p in [
        "/usr/bin/script2",
        "/usr/bin/script",
        "/usr/bin/env",
        "/usr/sbin/tool",
        "/lib/x86_64-linux-gnu/libh.so.1",
        "/usr/share/data.txt",
    ] {
        assert!(has(&c, p), "{p} not in {c:#?}");
    }
    let c = resolve(s, &["/usr/bin/script3"]);
    assert!(missing(&c, "nosuchtool", "/usr/bin/script3"), "{c:#?}");
}

#[test]
fn static_programs_and_relocatable_objects_have_no_dependencies() {
    let s = shared();
    let c = resolve(s, &["/usr/bin/static", "/usr/lib/modules/x.ko"]);
    let want: Vec<PathBuf> = ["/usr/bin/static", "/usr/lib/modules/x.ko"]
        .iter()
        .map(PathBuf::from)
        .collect();
    assert_eq!(c.files.iter().cloned().collect::<Vec<_>>(), want);
    assert!(c.missing.is_empty());
}

#[test]
fn a_cache_written_by_ldconfig_is_read_and_used() {
    // Its own sysroot: ldconfig writes a cache and soname links into it.
    let s = build_sysroot("ldconfig");
    let o = Command::new("ldconfig")
        .arg("-r")
        .arg(&s.root)
        .output()
        .or_else(|_| {
            Command::new("/sbin/ldconfig")
                .arg("-r")
                .arg(&s.root)
                .output()
        });
    let o = match o {
        Ok(o) if o.status.success() => o,
        // ldconfig -r needs chroot(2), i.e. root; the generated-cache unit
        // tests in src/elf/ldcache.rs cover the format without it.
        Ok(o) => {
            eprintln!(
                "skipping: ldconfig -r failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            return;
        }
        Err(e) => {
            eprintln!("skipping: no ldconfig: {e}");
            return;
        }
    };
    let _ = o;
    let r = Resolver::new(&s.root).unwrap();
    let cache = r.cache().expect("ldconfig wrote no cache");
    let h: Vec<_> = cache.lookup("libh.so.1").collect();
    assert!(
        h.iter()
            .any(|e| e.hwcaps_subdir.as_deref() == Some("x86-64-v3")),
        "{h:#?}"
    );
    assert!(h.iter().any(|e| e.hwcaps_subdir.is_none()), "{h:#?}");
    let conf: Vec<_> = cache.lookup("libconf.so.1").collect();
    assert_eq!(conf.len(), 1, "{:#?}", cache.entries());
    assert_eq!(conf[0].value, "/opt/conf/lib/libconf.so.1");

    let c = r
        .resolve(&[
            PathBuf::from("/usr/bin/prog4"),
            PathBuf::from("/usr/sbin/tool"),
        ])
        .unwrap();
    assert!(has(&c, "/opt/conf/lib/libconf.so.1"), "{c:#?}");
    // Both variants, named as the cache names them.
    let named: Vec<&PathBuf> = c
        .files
        .iter()
        .filter(|p| p.ends_with("libh.so.1"))
        .collect();
    assert!(named.len() >= 2, "{named:#?}");
    assert!(
        named
            .iter()
            .any(|p| p.to_string_lossy().contains("glibc-hwcaps/x86-64-v3"))
    );
}

/// mkrescue in a `--root` build: the program is read where it is on this
/// machine (outside the sysroot), everything it loads is the sysroot's.
#[test]
fn a_program_outside_the_root_gets_the_roots_libraries() {
    let s = shared();
    let out = tempfile::tempdir().unwrap();
    let prog = out.path().join("bin/mkrescue-like");
    let ml = s.p(MULTIARCH);
    exe(
        out.path(),
        &prog,
        "int h(void); int main(void) { return h(); }",
        &[&format!("-L{}", ml.display()), "-l:libh.so.1"],
    );
    let r = Resolver::new(&s.root).unwrap();
    // Below the root there is no such file: resolve() refuses it.
    assert!(r.resolve(std::slice::from_ref(&prog)).is_err());
    let c = r.resolve_outside(&prog).unwrap();
    assert!(has(&c, prog.to_str().unwrap()), "{c:#?}");
    // Its interpreter and library as the sysroot has them (the fake
    // ld.so of the sysroot, the default-directory libh and its hwcaps
    // variant), nothing missing.
    assert!(has(&c, "/lib64/ld-linux-x86-64.so.2"), "{c:#?}");
    assert!(has(&c, "/lib/x86_64-linux-gnu/libh.so.1"), "{c:#?}");
    assert!(c.missing.is_empty(), "{c:#?}");
}
