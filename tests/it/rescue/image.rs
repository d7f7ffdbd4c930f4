//! The rescue initramfs of this machine, checked with independent tools:
//! GNU cpio lists and extracts it, two builds are byte-identical, the image's
//! own dynamic loader finds every library of every ELF file in a chroot of
//! it, modprobe resolves every included module inside it, and manifest.json's
//! hashes match the extracted files.
//!
//! Needs root (chroot) and a kernel with modules in /boot and /lib/modules
//! (`apt-get install linux-image-amd64`); `cargo xtask ci` provides both.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

struct Built {
    out: PathBuf,
    tree: PathBuf,
}

fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn build(out: &Path) {
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_mkrescue"))
            .args([
                "--config-dir",
                "/nonexistent-mkrescue-test",
                "--output",
                "initramfs",
                "--out",
            ])
            .arg(out)
            .env_remove("SOURCE_DATE_EPOCH"),
    );
}

/// Builds the image once for all tests and extracts it with GNU cpio.
fn built() -> &'static Built {
    static B: OnceLock<Built> = OnceLock::new();
    B.get_or_init(|| {
        assert!(
            mkrescue::sys::host::is_root(),
            "these tests need root (chroot); run them as root like CI does"
        );
        let dir = image_dir();
        let out = dir.join("out");
        build(&out);
        let tree = dir.join("tree");
        std::fs::create_dir(&tree).unwrap();
        let cpio = decompressed(&out.join("initrd.img"));
        let mut child = Command::new("cpio")
            .args(["-idm", "--quiet", "--no-absolute-filenames"])
            .current_dir(&tree)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("GNU cpio (apt-get install cpio)");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&cpio).unwrap();
        assert!(child.wait().unwrap().success(), "cpio -idm failed");
        Built { out, tree }
    })
}

/// This process's directory for the image and its unpacked tree, under
/// cargo's target/tmp. A static is never dropped, so a temporary
/// directory in it would stay behind (half a GiB per test process under
/// nextest, which runs every test in a process of its own): instead each
/// process removes the directories of the test processes that are gone.
fn image_dir() -> PathBuf {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rescue-image");
    if let Ok(rd) = std::fs::read_dir(&base) {
        for e in rd.flatten() {
            let gone = e
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new("/proc").join(pid.to_string()).exists());
            if gone {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = base.join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn decompressed(initrd: &Path) -> Vec<u8> {
    run_ok(Command::new("zstd").args(["-dc"]).arg(initrd))
}

#[test]
fn gnu_cpio_lists_every_manifest_path() {
    let b = built();
    let scratch = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(scratch.path(), decompressed(&b.out.join("initrd.img"))).unwrap();
    let listing = run_ok(
        Command::new("cpio")
            .args(["-t", "--quiet"])
            .stdin(std::fs::File::open(scratch.path()).unwrap()),
    );
    let listed: std::collections::BTreeSet<String> = String::from_utf8_lossy(&listing)
        .lines()
        .map(|l| format!("/{l}"))
        .collect();
    let manifest = manifest(b);
    assert!(manifest.len() > 500, "only {} entries", manifest.len());
    for path in manifest.keys() {
        assert!(listed.contains(path), "{path} missing from cpio -t");
    }
    for must in [
        "/init",
        "/usr/bin/mkrescue",
        "/dev/console",
        "/usr/bin/bash",
        "/usr/sbin/modprobe",
    ] {
        assert!(
            listed.contains(must) || manifest.contains_key(must),
            "{must} not in image"
        );
    }
}

/// path → (type, sha256)
fn manifest(b: &Built) -> BTreeMap<String, serde_json::Value> {
    let text = std::fs::read_to_string(b.out.join("manifest.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

#[test]
fn manifest_hashes_match_extracted_files() {
    let b = built();
    let mut checked = 0;
    for (path, e) in manifest(b) {
        if let Some(want) = e["sha256"].as_str() {
            let data = std::fs::read(b.tree.join(&path[1..])).unwrap();
            use sha2::Digest;
            let got = hex::encode(sha2::Sha256::digest(&data));
            assert_eq!(got, want, "{path}");
            checked += 1;
        }
    }
    assert!(checked > 500, "only {checked} files hashed");
}

#[test]
fn two_builds_are_byte_identical() {
    let b = built();
    let dir = tempfile::tempdir().unwrap();
    let again = dir.path().join("again");
    build(&again);
    for f in ["initrd.img", "manifest.json", "vmlinuz", "SHA256SUMS"] {
        let a = std::fs::read(b.out.join(f)).unwrap();
        let c = std::fs::read(again.join(f)).unwrap();
        assert!(a == c, "{f} differs between two builds");
    }
}

/// The rescue shell has LVM's command names (issue 21): on the host they
/// are links to `lvm` (`cargo xtask deps` installs lvm2, mdadm and
/// cryptsetup-bin), and in the image `pvcreate`, `vgs`, `lvs` and
/// `vgchange` lead to the image's own `lvm`, through whatever links the
/// host has on the way (`/sbin` -> `usr/sbin`). mdadm's and cryptsetup's
/// other commands are there too.
#[test]
fn lvm_mdadm_and_cryptsetup_command_names_are_in_the_image() {
    let b = built();
    // Follows links inside the extracted tree, never the host's.
    let resolve = |name: &str| -> PathBuf {
        let mut p = PathBuf::from(name);
        for _ in 0..16 {
            let mut out = PathBuf::from("/");
            let mut moved = false;
            for c in p.strip_prefix("/").unwrap().components() {
                let next = out.join(c);
                match std::fs::read_link(b.tree.join(next.strip_prefix("/").unwrap())) {
                    Ok(t) => {
                        let rest: PathBuf = p
                            .strip_prefix(&next)
                            .map(Path::to_path_buf)
                            .unwrap_or_default();
                        let base = if t.is_absolute() { t } else { out.join(t) };
                        p = base.join(rest);
                        moved = true;
                        break;
                    }
                    Err(_) => out = next,
                }
            }
            if !moved {
                return out;
            }
        }
        panic!("{name}: too many links");
    };
    let lvm = resolve("/usr/sbin/lvm");
    assert!(
        b.tree.join(lvm.strip_prefix("/").unwrap()).is_file(),
        "no lvm in the image"
    );
    for name in ["pvcreate", "vgs", "lvs", "vgchange"] {
        let got = resolve(&format!("/usr/sbin/{name}"));
        assert_eq!(
            got, lvm,
            "/usr/sbin/{name} in the image does not lead to lvm"
        );
    }
    for name in ["mdmon", "veritysetup", "dmstats"] {
        let p = resolve(&format!("/usr/sbin/{name}"));
        assert!(
            b.tree.join(p.strip_prefix("/").unwrap()).is_file(),
            "{name} is not in the image"
        );
    }
}

/// Every ELF executable or shared object in the image, as image paths.
fn elf_files(tree: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![tree.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            let p = e.path();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                let mut head = [0u8; 20];
                use std::io::Read;
                let n = std::fs::File::open(&p).unwrap().read(&mut head).unwrap();
                // elf(5): magic; EI_CLASS (byte 4) 2 = 64-bit; e_type (16)
                // 2 = ET_EXEC, 3 = ET_DYN; e_machine (18, LE) 62 = x86-64.
                // Kernel modules are ET_REL and GRUB's i386 images are
                // 32-bit: this loader runs neither.
                let x86_64 = head[4] == 2 && head[18] == 62 && head[19] == 0;
                if n == 20 && &head[..4] == b"\x7fELF" && x86_64 && (head[16] == 2 || head[16] == 3)
                {
                    let rel = p.strip_prefix(tree).unwrap();
                    out.push(format!("/{}", rel.display()));
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn image_loader_finds_every_library_in_a_chroot() {
    let b = built();
    let elves = elf_files(&b.tree);
    assert!(elves.len() > 100, "only {} ELF files", elves.len());
    let loader = "/lib64/ld-linux-x86-64.so.2";
    assert!(
        b.tree.join(&loader[1..]).exists(),
        "{loader} not in the image"
    );
    let mut problems = Vec::new();
    for bin in &elves {
        let out = Command::new("chroot")
            .arg(&b.tree)
            .args([loader, "--list", bin])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if text.contains("not found") {
            problems.push(format!("{bin}: {}", text.replace('\n', " | ")));
        } else if !out.status.success() && !text.contains("not a dynamic executable") {
            problems.push(format!("{bin}: exit {} {}", out.status, text.trim()));
        }
    }
    assert!(
        problems.is_empty(),
        "{} ELF files with problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn modprobe_resolves_every_included_module() {
    let b = built();
    let modules_root = b.tree.join("lib/modules");
    let kver = std::fs::read_dir(&modules_root)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();
    let mut names = Vec::new();
    let mut stack = vec![modules_root.join(&kver).join("kernel")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if let Some(stem) = name.split(".ko").next().filter(|_| name.contains(".ko")) {
                // Module names treat - and _ alike (modprobe(8)).
                names.push(stem.replace('-', "_"));
            }
        }
    }
    assert!(names.len() > 300, "only {} modules", names.len());
    for must in ["virtio_blk", "virtio_net", "ext4", "sd_mod", "dm_mod"] {
        assert!(names.iter().any(|n| n == must), "{must} not in the image");
    }
    let mut problems = Vec::new();
    for chunk in names.chunks(200) {
        // --show-depends prints one `insmod PATH` per module in the load
        // order, resolved from the image's own modules.dep.bin (-d: root).
        let mut cmd = Command::new("modprobe");
        cmd.arg("-d")
            .arg(&b.tree)
            .args(["-S", &kver, "-a", "--show-depends"]);
        cmd.args(chunk);
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            problems.push(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        for l in text.lines() {
            if let Some(p) = l.strip_prefix("insmod ") {
                let p = p.split_whitespace().next().unwrap();
                let inside = p.strip_prefix(b.tree.to_str().unwrap()).unwrap_or(p);
                if !b.tree.join(inside.trim_start_matches('/')).exists() {
                    problems.push(format!("{inside} (a dependency) is not in the image"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
