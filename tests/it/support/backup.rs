//! Helpers shared by the backup tests: run the binary, build trees, and
//! compare two trees the way a restored system would be judged (type, mode,
//! owner, mtime to the nanosecond, content, xattrs, hard links, devices).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mkrescue::sys::fs as sys;

pub fn mkrescue(args: &[&OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        // Global flags go after the subcommand: clap refuses them before
        // one (the default command takes flags of its own).
        .args(args)
        .args(["--config-dir", "/nonexistent-mkrescue-test"])
        .env_remove("MKRESCUE_ROOT")
        .output()
        .expect("running mkrescue")
}

pub fn os<S: AsRef<OsStr> + ?Sized>(s: &S) -> &OsStr {
    s.as_ref()
}

pub fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mkrescue failed: {err}");
    assert!(!err.contains("panicked"), "{err}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn run(cmd: &str, args: &[&OsStr]) {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deterministic bytes that zstd cannot shrink much.
pub fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// What a restored tree must reproduce for one path.
#[derive(Debug, PartialEq)]
pub struct Facts {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub size: u64,
    pub content: Option<Vec<u8>>,
    pub link: Option<PathBuf>,
    pub rdev: u64,
    pub xattrs: Vec<(std::ffi::OsString, Vec<u8>)>,
    /// Index of the hard-link group (first path of the inode, relative).
    pub inode_group: Option<Vec<u8>>,
}

/// Facts of every path below `root`, keyed by relative path bytes. Files
/// bigger than 64 MiB are compared by their data regions only (they are the
/// sparse giants; reading GiBs of holes proves nothing more).
pub fn facts(root: &Path) -> BTreeMap<Vec<u8>, Facts> {
    let mut out = BTreeMap::new();
    let mut first_of_inode: BTreeMap<(u64, u64), Vec<u8>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let rel = p
            .strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec();
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_file() {
            "file"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else if ft.is_fifo() {
            "fifo"
        } else {
            "socket"
        };
        let content = if ft.is_file() {
            if m.len() > 64 << 20 {
                let f = std::fs::File::open(&p).unwrap();
                let regions = sys::data_regions(&f, m.len()).unwrap();
                let mut v = Vec::new();
                use std::os::unix::fs::FileExt;
                for (off, len) in regions {
                    let mut b = vec![0u8; len as usize];
                    f.read_exact_at(&mut b, off).unwrap();
                    // Strip zeros: a restore may allocate a little more or
                    // less around a region; the bytes must match.
                    v.extend(off.to_le_bytes());
                    v.extend(
                        b.iter()
                            .rposition(|&x| x != 0)
                            .map(|i| &b[..=i])
                            .unwrap_or(&[]),
                    );
                }
                Some(v)
            } else {
                Some(std::fs::read(&p).unwrap())
            }
        } else {
            None
        };
        let inode_group = (!ft.is_dir() && m.nlink() > 1).then(|| {
            first_of_inode
                .entry((m.dev(), m.ino()))
                .or_insert_with(|| rel.clone())
                .clone()
        });
        out.insert(
            rel,
            Facts {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                mtime: (m.mtime(), m.mtime_nsec()),
                size: if ft.is_dir() { 0 } else { m.len() },
                content,
                link: ft.is_symlink().then(|| std::fs::read_link(&p).unwrap()),
                rdev: m.rdev(),
                xattrs: sys::xattrs(&p).unwrap(),
                inode_group,
            },
        );
        if ft.is_dir() {
            let mut kids: Vec<_> = std::fs::read_dir(&p)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            kids.sort();
            stack.extend(kids.into_iter().rev());
        }
    }
    out
}

/// Asserts two trees are identical, naming the first difference.
pub fn assert_same(a: &BTreeMap<Vec<u8>, Facts>, b: &BTreeMap<Vec<u8>, Facts>) {
    let ka: Vec<_> = a.keys().collect();
    let kb: Vec<_> = b.keys().collect();
    let missing: Vec<_> = ka
        .iter()
        .filter(|k| !b.contains_key(**k))
        .map(|k| String::from_utf8_lossy(k))
        .collect();
    let extra: Vec<_> = kb
        .iter()
        .filter(|k| !a.contains_key(**k))
        .map(|k| String::from_utf8_lossy(k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    for (k, fa) in a {
        let fb = &b[k];
        assert_eq!(fa, fb, "{} differs", String::from_utf8_lossy(k));
    }
}

/// The one `mkrescue: error:` line of a run that exited with `code`.
pub fn error_line(out: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("mkrescue: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "expected one error line: {stderr}");
    errors[0].to_string()
}

/// The names in `dir`, sorted.
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
