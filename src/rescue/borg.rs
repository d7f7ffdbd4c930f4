//! borg in the rescue system, for hosts whose backup method is borg: the
//! `borg` script is a tool like any other (its `#!` interpreter comes with
//! the ELF closure), and this module adds the Python it runs on: the
//! standard-library modules borg imports, borg's own package with its
//! compiled extensions, and the third-party packages it imports. Hands
//! back the extension modules (`.so`), whose libraries (liblz4, libzstd,
//! libxxhash, libcrypto, libacl...) the ELF resolver must add.
//!
//! Nothing here runs the host's Python: the module lists below were
//! measured once and the test `rescue_borg` proves them by running `borg
//! init`, `create` and `extract` in a chroot of the built image.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::image::Manifest;

/// Top-level standard-library modules borg imports (a package brings its
/// whole directory). Measured with borg 1.2.4 on Debian 12's Python 3.11:
/// `borg --version`, `init --encryption=none`, `create`, `extract`, `list`
/// and `check` run under a wrapper that wrote every `sys.modules` entry's
/// `__file__` at exit (atexit); the names below are those files' modules
/// below /usr/lib/python3.11 (built-in modules have no file and need
/// nothing). Names absent on another Python are skipped.
pub const STDLIB: &[&str] = &[
    "_bz2",
    "_collections_abc",
    "_compat_pickle",
    "_compression",
    "_hashlib",
    "_json",
    "_lzma",
    "_queue",
    "_sitebuiltins",
    "_strptime",
    "_typing",
    "_uuid",
    "_weakrefset",
    "abc",
    "argparse",
    "ast",
    "base64",
    "bisect",
    "bz2",
    "calendar",
    "codecs",
    "collections",
    "configparser",
    "contextlib",
    "copy",
    "copyreg",
    "csv",
    "dataclasses",
    "datetime",
    "difflib",
    "dis",
    "email",
    "encodings",
    "enum",
    "filecmp",
    "fnmatch",
    "functools",
    "genericpath",
    "getpass",
    "gettext",
    "hashlib",
    "heapq",
    "hmac",
    "importlib",
    "inspect",
    "io",
    "ipaddress",
    "json",
    "keyword",
    "linecache",
    "locale",
    "logging",
    "lzma",
    "mmap",
    "ntpath",
    "opcode",
    "operator",
    "os",
    "pathlib",
    "pickle",
    "pkgutil",
    "platform",
    "posixpath",
    "pprint",
    "queue",
    "quopri",
    "random",
    "re",
    "reprlib",
    "runpy",
    "selectors",
    "shlex",
    "shutil",
    "signal",
    "site",
    "sitecustomize",
    "socket",
    "socketserver",
    "stat",
    "string",
    "stringprep",
    "struct",
    "subprocess",
    "sysconfig",
    "tarfile",
    "tempfile",
    "termios",
    "textwrap",
    "threading",
    "token",
    "tokenize",
    "traceback",
    "types",
    "typing",
    "unittest",
    "urllib",
    "uuid",
    "warnings",
    "weakref",
    "zipfile",
    "zipimport",
];

/// Packages outside the standard library that borg imports: itself,
/// msgpack (its serialization) and packaging (borg/__init__.py and
/// borg/xattr.py parse versions with it).
pub const PACKAGES: &[&str] = &["borg", "msgpack", "packaging"];

/// Where Debian and pip put third-party packages (site.py's
/// `getsitepackages` on Debian), relative to the Python version.
fn site_dirs(ver: &str) -> Vec<PathBuf> {
    vec![
        PathBuf::from("/usr/lib/python3/dist-packages"),
        PathBuf::from(format!("/usr/lib/{ver}/site-packages")),
        PathBuf::from(format!("/usr/local/lib/{ver}/dist-packages")),
    ]
}

/// Adds the Python that the borg script at `borg` (a host path) runs
/// on. Returns the extension modules added, for the ELF resolver.
pub fn plan(m: &mut Manifest, borg: &Path) -> Result<Vec<PathBuf>> {
    let script = m.host_path(borg);
    let interp = shebang(&script)?.with_context(|| {
        format!(
            "{}: not a #! script; mkrescue knows borg as the Python program Debian's borgbackup installs",
            script.display()
        )
    })?;
    let ver = python_version(m, &interp)?;
    let stdlib = PathBuf::from(format!("/usr/lib/{ver}"));
    if !m.host_path(&stdlib.join("os.py")).is_file() {
        anyhow::bail!(
            "{}: no Python standard library at {} for {} (borg's interpreter)",
            borg.display(),
            stdlib.display(),
            interp.display()
        );
    }
    let dynload = stdlib.join("lib-dynload");
    let mut ext = Vec::new();
    for name in STDLIB {
        let found = [stdlib.join(name), stdlib.join(format!("{name}.py"))]
            .into_iter()
            .find(|p| std::fs::symlink_metadata(m.host_path(p)).is_ok())
            .or_else(|| extension(m, &dynload, name));
        match found {
            Some(p) => add(m, &p, &mut ext)?,
            None => log::debug!("borg: no module {name} in {}", stdlib.display()),
        }
    }
    let site = site_dirs(&ver);
    for pkg in PACKAGES {
        let dir = site
            .iter()
            .map(|d| d.join(pkg))
            .find(|p| m.host_path(&p.join("__init__.py")).is_file())
            .with_context(|| {
                format!(
                    "borg needs the Python package {pkg}, found in none of {}; apt-get install borgbackup",
                    site.iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
        add(m, &dir, &mut ext)?;
        if *pkg == "borg" {
            // The borg script finds its entry point through
            // importlib.metadata: the package's egg-info or dist-info.
            let parent = dir.parent().unwrap_or(Path::new("/"));
            for e in read_dir_sorted(&m.host_path(parent))? {
                let n = e.to_string_lossy();
                if n.starts_with("borgbackup-")
                    && (n.ends_with(".egg-info") || n.ends_with(".dist-info"))
                {
                    add(m, &parent.join(&e), &mut ext)?;
                }
            }
        }
    }
    Ok(ext)
}

/// The `#!` interpreter of a script (first word after `#!`).
fn shebang(p: &Path) -> Result<Option<PathBuf>> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(p)
        .and_then(|mut f| f.read(&mut head))
        .with_context(|| format!("reading {}", p.display()))?;
    let head = &head[..n];
    let Some(rest) = head.strip_prefix(b"#!") else {
        return Ok(None);
    };
    let line = rest.split(|&b| b == b'\n').next().unwrap_or(rest);
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let first = words.next().map(PathBuf::from);
    // `#!/usr/bin/env python3`: the interpreter is the next word, found
    // where Debian puts it.
    if first.as_deref() == Some(Path::new("/usr/bin/env")) {
        return Ok(words
            .find(|w| !w.starts_with('-'))
            .map(|w| Path::new("/usr/bin").join(w)));
    }
    Ok(first)
}

/// `python3.11` for `/usr/bin/python3` (a link to `python3.11`).
fn python_version(m: &Manifest, interp: &Path) -> Result<String> {
    let mut p = interp.to_path_buf();
    for _ in 0..8 {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let versioned = name
            .strip_prefix("python3.")
            .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
        if versioned {
            return Ok(name);
        }
        match std::fs::read_link(m.host_path(&p)) {
            Ok(t) => p = p.parent().unwrap_or(Path::new("/")).join(t),
            Err(_) => break,
        }
    }
    anyhow::bail!(
        "borg's interpreter {}: not a link to a versioned python3.N, so its standard library is unknown",
        interp.display()
    )
}

/// `NAME.cpython-*.so` (or `NAME.abi3.so`, `NAME.so`) in lib-dynload.
fn extension(m: &Manifest, dynload: &Path, name: &str) -> Option<PathBuf> {
    read_dir_sorted(&m.host_path(dynload))
        .ok()?
        .into_iter()
        .find(|e| {
            let e = e.to_string_lossy();
            e.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('.') && rest.ends_with(".so"))
        })
        .map(|e| dynload.join(e))
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<std::ffi::OsString>> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("listing {}", dir.display()))?;
    v.sort();
    Ok(v)
}

/// Adds a file or a directory tree without its `__pycache__` (compiled
/// byte code the image does not need: Python compiles in memory, and the
/// image's clamped times would make it stale anyway); `.so` files go to
/// `ext`.
fn add(m: &mut Manifest, p: &Path, ext: &mut Vec<PathBuf>) -> Result<()> {
    let host = m.host_path(p);
    let md =
        std::fs::symlink_metadata(&host).with_context(|| format!("reading {}", host.display()))?;
    if md.is_dir() {
        m.add_host_path(p, "borg")?;
        for name in read_dir_sorted(&host)? {
            if name == "__pycache__" {
                continue;
            }
            add(m, &p.join(name), ext)?;
        }
    } else {
        m.add_host_path(p, "borg")?;
        if p.extension().is_some_and(|e| e == "so") {
            ext.push(p.to_path_buf());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreter_from_the_shebang() {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("borg");
        std::fs::write(&s, "#!/usr/bin/python3\nimport re\n").unwrap();
        assert_eq!(
            shebang(&s).unwrap(),
            Some(PathBuf::from("/usr/bin/python3"))
        );
        std::fs::write(&s, "#!/usr/bin/env -S python3 -E\n").unwrap();
        assert_eq!(
            shebang(&s).unwrap(),
            Some(PathBuf::from("/usr/bin/python3"))
        );
        std::fs::write(&s, "\x7fELF").unwrap();
        assert_eq!(shebang(&s).unwrap(), None);
    }

    #[test]
    fn version_follows_the_links() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("usr/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("python3.13"), "").unwrap();
        std::os::unix::fs::symlink("python3.13", bin.join("python3")).unwrap();
        let m = Manifest::new(d.path(), 0);
        assert_eq!(
            python_version(&m, Path::new("/usr/bin/python3")).unwrap(),
            "python3.13"
        );
        std::fs::write(bin.join("python"), "").unwrap();
        assert!(python_version(&m, Path::new("/usr/bin/python")).is_err());
    }
}
