//! ELF dependency resolution: which files the dynamic loader opens to run a
//! program (interpreter, DT_NEEDED libraries found through RUNPATH/RPATH,
//! ld.so.cache, ld.so.conf and the default directories), plus libraries that
//! are dlopen'ed and `#!` interpreters of scripts. Hands on a set of host
//! paths; the Manifest turns them into image entries.
//!
//! The search follows glibc's ld.so(8) (`_dl_map_object` in `elf/dl-load.c`):
//! for each DT_NEEDED name of an object, breadth first, a name that is
//! already loaded (by DT_NEEDED name or DT_SONAME) is reused; otherwise
//!
//! 1. a name containing `/` is a path (after `$ORIGIN`/`$LIB`/`$PLATFORM`
//!    expansion) and is not searched;
//! 2. unless the object has DT_RUNPATH: the DT_RPATH of the object, of the
//!    object that loaded it, and so on up to the executable (an object with
//!    both tags ignores its DT_RPATH, `elf/get-dynamic-info.h`);
//! 3. (LD_LIBRARY_PATH is deliberately ignored: the rescue system has none);
//! 4. the object's own DT_RUNPATH (not inherited);
//! 5. unless DF_1_NODEFLIB: ld.so.cache, then the built-in directories;
//! 6. our addition: the ld.so.conf directories, for a stale cache.
//!
//! In each directory the `glibc-hwcaps/*` subdirectories are searched too.
//! ld.so would pick the variant for the CPU it runs on; the rescue system may
//! boot on another CPU, so every variant present is included along with the
//! baseline. A library whose ELF class or machine differs from the object
//! needing it is skipped, as ld.so skips it.
//!
//! Paths are returned as the loader names them (the cache's or the search
//! directory's spelling, e.g. `/lib/x86_64-linux-gnu/libc.so.6`), never
//! canonicalized; the Manifest keeps symlink chains. Each file is parsed once
//! per [`Resolver`], keyed by device and inode, and inputs are resolved in
//! parallel.

mod arch;
pub mod ldcache;
mod ldconf;
mod parse;
mod root;

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use anyhow::{Result, anyhow};
use rayon::prelude::*;
use serde::Serialize;

pub use parse::{
    DlopenDep, ElfInfo, FileKind, NT_FDO_DLOPEN_METADATA, Priority, Shebang, parse_bytes,
    parse_dlopen_json,
};

use crate::error::{Code, fail};
use ldcache::LdCache;
use root::Root;

/// What is wrong with a corrupt file, without the file's name (the caller
/// adds it): returned by the byte-level parsers [`parse_bytes`] and
/// [`ldcache::parse`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Corrupt(pub String);

/// A library that could not be found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Missing {
    /// The DT_NEEDED name (or dlopen name).
    pub name: String,
    /// The file that needs it.
    pub needed_by: PathBuf,
}

/// Everything the inputs need at run time.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Closure {
    /// Absolute paths of the inputs and of every interpreter and library
    /// they load, as the loader names them (may be symlinks: the Manifest
    /// keeps the chain). Paths are as seen from the resolver's root: with
    /// root `/tmp/sysroot`, `/lib/libc.so.6` means `/tmp/sysroot/lib/libc.so.6`.
    pub files: BTreeSet<PathBuf>,
    /// Libraries that were needed but not found anywhere.
    pub missing: Vec<Missing>,
}

/// Libraries glibc programs load with dlopen(3) without a DT_NEEDED entry,
/// added for every dynamically linked program when present: the NSS
/// modules behind getpwnam(3) and getaddrinfo(3) (nsswitch.conf(5)), the
/// resolver they use, and libgcc_s, which glibc dlopens to unwind the stack
/// in pthread_cancel(3) and pthread_exit(3) — without it cryptsetup aborts
/// mid-way and reports a wrong passphrase. Missing ones are not errors.
pub const BUILTIN_DLOPEN: &[&str] = &[
    "libnss_files.so.2",
    "libnss_dns.so.2",
    "libnss_compat.so.2",
    "libresolv.so.2",
    "libgcc_s.so.1",
];

/// Plugins particular tools dlopen by path, as glob patterns relative to
/// each default library directory: dmeventd (which `lvm` starts for
/// monitored mirrors, snapshots, thin pools and RAID) loads its LVM
/// plugins by name. Optional: nothing is missing when absent.
const TOOL_PLUGINS: &[(&str, &[&str])] = &[("lvm", LVM_PLUGINS), ("dmeventd", LVM_PLUGINS)];
const LVM_PLUGINS: &[&str] = &[
    "libdevmapper-event-lvm2*.so*",
    "device-mapper/libdevmapper-event-lvm2*.so",
];

/// Where `#!/usr/bin/env NAME` finds NAME: the rescue system's PATH.
const PATH_DIRS: &[&str] = &["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// Interpreters of interpreters: the kernel gives up after this many levels
/// (BINPRM_MAX_RECURSION, include/linux/binfmts.h).
const MAX_SCRIPT_DEPTH: usize = 4;

/// Device and inode: one parse per file, whatever it is called.
type FileId = (u64, u64);

#[derive(Debug)]
struct Node {
    id: FileId,
    kind: FileKind,
}

impl Node {
    fn elf(&self) -> &ElfInfo {
        static NOT_ELF: ElfInfo = ElfInfo {
            class: 0,
            data: 0,
            machine: 0,
            e_type: 0,
            interpreter: None,
            needed: Vec::new(),
            soname: None,
            rpath: Vec::new(),
            runpath: Vec::new(),
            nodeflib: false,
            dlopen: Vec::new(),
            warnings: Vec::new(),
        };
        match &self.kind {
            FileKind::Elf(e) => e,
            _ => &NOT_ELF,
        }
    }
}

/// A load failure, kept cloneable for the memo tables.
#[derive(Debug, Clone)]
enum LoadError {
    Corrupt(String),
    Io(String),
}

type Loaded = Result<Option<Arc<Node>>, LoadError>;

/// A concurrent memo table: the first caller of a key computes the value
/// while later callers of the same key wait for it.
struct Memo<K, V> {
    map: Mutex<HashMap<K, Arc<OnceLock<V>>>>,
}

impl<K: Eq + Hash, V: Clone> Memo<K, V> {
    fn new() -> Self {
        Memo {
            map: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: K, compute: impl FnOnce() -> V) -> V {
        let cell = {
            let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
            map.entry(key).or_default().clone()
        };
        cell.get_or_init(compute).clone()
    }

    fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Resolves dependencies the way glibc's ld.so does on the host.
pub struct Resolver {
    root: Root,
    cache: Option<LdCache>,
    conf_dirs: Vec<PathBuf>,
    by_path: Memo<PathBuf, Loaded>,
    by_id: Memo<FileId, Result<Arc<Node>, LoadError>>,
    hwcaps: Memo<PathBuf, Arc<[PathBuf]>>,
    lib_dst: Memo<(u8, u16), Arc<str>>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("root", &self.root.dir())
            .field(
                "cache_entries",
                &self.cache.as_ref().map(|c| c.entries().len()),
            )
            .field("conf_dirs", &self.conf_dirs)
            .field("files_seen", &self.by_path.len())
            .finish()
    }
}

impl Resolver {
    /// A resolver for the system below `root` (`/` for the host): reads
    /// `etc/ld.so.cache` and `etc/ld.so.conf` there. A corrupt cache is an
    /// error naming it (exit code 5); a missing one is not.
    pub fn new(root: &Path) -> Result<Self> {
        let root = Root::new(root);
        let cache_path = Path::new("/etc/ld.so.cache");
        let cache = match root.host(cache_path) {
            Some(host) => LdCache::load(&host, cache_path)?,
            None => None,
        };
        let conf_dirs = ldconf::dirs(&root, Path::new("/etc/ld.so.conf"));
        Ok(Resolver {
            root,
            cache,
            conf_dirs,
            by_path: Memo::new(),
            by_id: Memo::new(),
            hwcaps: Memo::new(),
            lib_dst: Memo::new(),
        })
    }

    /// The parsed ld.so.cache, if the system has one.
    pub fn cache(&self) -> Option<&LdCache> {
        self.cache.as_ref()
    }

    /// The closure of `inputs` (absolute paths as seen from root). A corrupt or
    /// truncated ELF is an error naming the file (exit code 5).
    pub fn resolve(&self, inputs: &[PathBuf]) -> Result<Closure> {
        let results: Vec<Result<Out>> = inputs
            .par_iter()
            .map(|p| {
                let mut out = Out::default();
                self.resolve_input(p, 0, None, &mut out)?;
                Ok(out)
            })
            .collect();
        let mut closure = Closure::default();
        for r in results {
            let out = r?;
            closure.files.extend(out.files);
            closure.missing.extend(out.missing);
        }
        closure.missing.sort();
        closure.missing.dedup();
        Ok(closure)
    }

    /// The closure of `program`, read at its own path on this machine
    /// rather than below root, with everything it loads found below root
    /// as ld.so would find it there. That is mkrescue itself in a `--root`
    /// build: the running binary (/proc/self/exe) becomes the image's
    /// /usr/bin/mkrescue but is no file of the root, while the libraries
    /// it runs on in the rescue system are the root's. With root `/` this
    /// is [`Resolver::resolve`] of `program`. `program` itself is in
    /// [`Closure::files`] as given.
    pub fn resolve_outside(&self, program: &Path) -> Result<Closure> {
        let io = |e: std::io::Error| anyhow!("reading {}: {e}", program.display());
        let file = std::fs::File::open(program).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        let kind = parse::parse_file(&file, meta.len()).map_err(|e| match e {
            parse::ReadError::Corrupt(c) => load_error(program, LoadError::Corrupt(c.0)),
            parse::ReadError::Io(e) => io(e),
        })?;
        let node = Arc::new(Node {
            id: (meta.dev(), meta.ino()),
            kind,
        });
        let mut out = Out::default();
        out.files.insert(program.to_path_buf());
        match &node.kind {
            FileKind::Elf(e)
                if e.is_loadable() && (e.interpreter.is_some() || !e.needed.is_empty()) =>
            {
                Walk::new(self, program, node.clone()).run(&mut out)?
            }
            // A static mkrescue (musl) needs nothing.
            _ => {}
        }
        let mut missing = out.missing;
        missing.sort();
        missing.dedup();
        Ok(Closure {
            files: out.files,
            missing,
        })
    }

    /// What the file at `path` (as seen from root) is, parsed as the
    /// resolver parses it; `None` if it does not exist.
    pub fn inspect(&self, path: &Path) -> Result<Option<FileKind>> {
        let node = self.load(path).map_err(|e| load_error(path, e))?;
        Ok(node.map(|n| n.kind.clone()))
    }

    /// Reads and parses `path` once, memoized by path and by inode.
    fn load(&self, path: &Path) -> Loaded {
        self.by_path.get(path.to_path_buf(), || {
            let Some(host) = self.root.host(path) else {
                return Ok(None);
            };
            let file = match std::fs::File::open(&host) {
                Ok(f) => f,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(LoadError::Io(format!("opening {}: {e}", path.display()))),
            };
            let meta = file
                .metadata()
                .map_err(|e| LoadError::Io(format!("reading {}: {e}", path.display())))?;
            if !meta.is_file() {
                return Ok(None);
            }
            let id = (meta.dev(), meta.ino());
            let node = self.by_id.get(id, || {
                let kind = parse::parse_file(&file, meta.len()).map_err(|e| match e {
                    parse::ReadError::Corrupt(c) => LoadError::Corrupt(c.0),
                    parse::ReadError::Io(e) => {
                        LoadError::Io(format!("reading {}: {e}", path.display()))
                    }
                })?;
                if let FileKind::Elf(e) = &kind {
                    for w in &e.warnings {
                        log::warn!("{}: {w}", path.display());
                    }
                }
                Ok(Arc::new(Node { id, kind }))
            })?;
            Ok(Some(node))
        })
    }

    /// `path` if it is an ELF object ld.so would load for `want`: same class,
    /// byte order and machine (ld.so's `open_verify` skips others and
    /// searches on), and ET_DYN or ET_EXEC. A corrupt file is an error; one
    /// we may not read is skipped, as ld.so skips it.
    fn load_compatible(&self, path: &Path, want: &ElfInfo) -> Result<Option<Arc<Node>>> {
        let node = match self.load(path) {
            Ok(Some(n)) => n,
            Ok(None) => return Ok(None),
            Err(LoadError::Io(msg)) => {
                log::warn!("{msg}; skipped while searching for libraries");
                return Ok(None);
            }
            Err(e) => return Err(load_error(path, e)),
        };
        let ok = match &node.kind {
            FileKind::Elf(e) => {
                e.class == want.class
                    && e.data == want.data
                    && e.machine == want.machine
                    && e.is_loadable()
            }
            _ => false,
        };
        Ok(ok.then_some(node))
    }

    /// `dir/glibc-hwcaps/*` in ld.so's priority order (highest level first).
    fn hwcaps_dirs(&self, dir: &Path) -> Arc<[PathBuf]> {
        self.hwcaps.get(dir.to_path_buf(), || {
            let sub = dir.join("glibc-hwcaps");
            let Some(host) = self.root.host(&sub) else {
                return Arc::from([]);
            };
            let Ok(entries) = std::fs::read_dir(host) else {
                return Arc::from([]);
            };
            let mut names: Vec<String> = entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir() || t.is_symlink()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            // x86-64-v4 before v3 before v2, as `ld.so --help` lists them.
            names.sort_by(|a, b| b.cmp(a));
            names.into_iter().map(|n| sub.join(n)).collect()
        })
    }

    /// What `$LIB` expands to. glibc bakes it in at build time
    /// (DL_DST_LIB): upstream "lib64" or "lib", Debian's multiarch build
    /// "lib/x86_64-linux-gnu" (as `LD_DEBUG=libs` shows). Guessed from the
    /// layout of the root.
    fn lib_dst(&self, e: &ElfInfo) -> Arc<str> {
        self.lib_dst.get((e.class, e.machine), || {
            let a = arch::arch(e.class, e.machine);
            let exists = |p: &str| self.root.host(Path::new(p)).is_some();
            if let Some(t) = a.triplet
                && (exists(&format!("/usr/lib/{t}")) || exists(&format!("/lib/{t}")))
            {
                return Arc::from(format!("lib/{t}"));
            }
            if a.libdir != "lib" && exists(&format!("/usr/{}", a.libdir)) {
                return Arc::from(a.libdir);
            }
            Arc::from("lib")
        })
    }

    /// Expands the dynamic string tokens of one path element (ld.so(8),
    /// "Dynamic string tokens"; glibc `_dl_dst_substitute`): `$ORIGIN`,
    /// `$LIB`, `$PLATFORM`, also as `${...}`. `$PLATFORM` yields one path
    /// per value the rescue CPU may report. An element with a token that
    /// has no value (no origin known) is dropped, as ld.so drops it; an
    /// unknown `$NAME` stays literal, as in ld.so.
    fn expand(&self, element: &str, origin: Option<&Path>, e: &ElfInfo) -> Vec<String> {
        let mut results = vec![String::new()];
        let mut rest = element;
        while let Some(i) = rest.find('$') {
            for r in &mut results {
                r.push_str(&rest[..i]);
            }
            rest = &rest[i + 1..];
            let (token, len) = dst_token(rest);
            let values: Vec<String> = match token {
                Some("ORIGIN") => match origin {
                    Some(o) => vec![o.to_string_lossy().into_owned()],
                    None => return Vec::new(),
                },
                Some("LIB") => vec![self.lib_dst(e).to_string()],
                Some("PLATFORM") => arch::arch(e.class, e.machine)
                    .platforms
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                _ => vec!["$".to_string()],
            };
            if values.is_empty() {
                return Vec::new();
            }
            results = results
                .iter()
                .flat_map(|r| values.iter().map(move |v| format!("{r}{v}")))
                .collect();
            rest = &rest[len..];
        }
        for r in &mut results {
            r.push_str(rest);
        }
        results
    }

    fn resolve_input(
        &self,
        path: &Path,
        depth: usize,
        needed_by: Option<&Path>,
        out: &mut Out,
    ) -> Result<()> {
        let node = match self.load(path).map_err(|e| load_error(path, e))? {
            Some(n) => n,
            None => {
                let Some(by) = needed_by else {
                    return Err(anyhow!(
                        "{}: no such file below {}",
                        path.display(),
                        self.root.dir().display()
                    ));
                };
                out.missing.push(Missing {
                    name: path.to_string_lossy().into_owned(),
                    needed_by: by.to_path_buf(),
                });
                return Ok(());
            }
        };
        if !out.files.insert(path.to_path_buf()) && depth > 0 {
            // An interpreter already handled for this input.
            return Ok(());
        }
        match &node.kind {
            FileKind::Other => Ok(()),
            FileKind::Script(sb) => self.resolve_script(path, sb, depth, out),
            FileKind::Elf(e) => {
                if e.is_loadable() && (e.interpreter.is_some() || !e.needed.is_empty()) {
                    Walk::new(self, path, node.clone()).run(out)
                } else {
                    // Static programs, static-pie, ET_REL objects: no deps.
                    Ok(())
                }
            }
        }
    }

    /// `#!` scripts: the interpreter runs, so it and its closure go in;
    /// `#!/usr/bin/env NAME` also needs NAME from PATH.
    fn resolve_script(&self, path: &Path, sb: &Shebang, depth: usize, out: &mut Out) -> Result<()> {
        let interp = Path::new(&sb.interpreter);
        if depth >= MAX_SCRIPT_DEPTH || !interp.is_absolute() {
            // A relative interpreter is relative to the working directory
            // of whoever runs the script: unknowable here.
            out.missing.push(Missing {
                name: sb.interpreter.clone(),
                needed_by: path.to_path_buf(),
            });
            return Ok(());
        }
        self.resolve_input(interp, depth + 1, Some(path), out)?;
        if interp.file_name().is_some_and(|n| n == "env")
            && let Some(prog) = sb.arg.as_deref().and_then(env_program)
        {
            if prog.starts_with('/') {
                self.resolve_input(Path::new(prog), depth + 1, Some(path), out)?;
            } else if let Some(found) = self.find_in_path(prog) {
                self.resolve_input(&found, depth + 1, Some(path), out)?;
            } else {
                out.missing.push(Missing {
                    name: prog.to_string(),
                    needed_by: path.to_path_buf(),
                });
            }
        }
        Ok(())
    }

    /// The first executable regular file `name` in [`PATH_DIRS`].
    fn find_in_path(&self, name: &str) -> Option<PathBuf> {
        PATH_DIRS.iter().map(|d| Path::new(d).join(name)).find(|p| {
            self.root
                .host(p)
                .and_then(|h| std::fs::metadata(h).ok())
                .is_some_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    }
}

/// `NAME` or `{NAME}` at the start of `s` (after a `$`), with the length to
/// skip. `$ORIGINAL` is not `$ORIGIN` (glibc `is_dst`: the name must end at
/// a character that cannot continue an identifier).
fn dst_token(s: &str) -> (Option<&str>, usize) {
    for name in ["ORIGIN", "PLATFORM", "LIB"] {
        if let Some(r) = s.strip_prefix('{')
            && r.strip_prefix(name).is_some_and(|r| r.starts_with('}'))
        {
            return (Some(name), name.len() + 2);
        }
        if let Some(r) = s.strip_prefix(name)
            && !r.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        {
            return (Some(name), name.len());
        }
    }
    (None, 0)
}

/// The program `env ARG` runs: skips options (`-i`, `-u NAME`, `-C DIR`,
/// `-S`/`--split-string`, which shebang lines use to pass several words) and
/// `NAME=VALUE` assignments (env(1)).
fn env_program(arg: &str) -> Option<&str> {
    let mut words = arg.split_whitespace();
    while let Some(w) = words.next() {
        match w {
            "-u" | "--unset" | "-C" | "--chdir" => {
                words.next();
            }
            "-S" | "--split-string" | "-" | "--" => {}
            _ if w.starts_with("-S") && w.len() > 2 => return Some(&w[2..]),
            _ if w.starts_with('-') => {}
            _ if w.contains('=') => {}
            _ => return Some(w),
        }
    }
    None
}

fn load_error(path: &Path, e: LoadError) -> anyhow::Error {
    match e {
        LoadError::Corrupt(what) => fail(
            Code::Input,
            format!(
                "{p}: corrupt ELF file: {what}; reinstall the package that owns it (dpkg -S {p})",
                p = path.display()
            ),
        ),
        LoadError::Io(msg) => anyhow!(msg),
    }
}

/// What one input contributes.
#[derive(Default)]
struct Out {
    files: BTreeSet<PathBuf>,
    missing: Vec<Missing>,
}

/// One object in a program's link map.
struct Obj {
    /// As the loader names it.
    path: PathBuf,
    node: Arc<Node>,
    /// Directory for `$ORIGIN`.
    origin: Option<PathBuf>,
    /// The object whose DT_NEEDED (or dlopen) loaded this one: the chain
    /// whose DT_RPATHs ld.so searches.
    loader: Option<usize>,
}

/// Libraries found for one name: the one ld.so would load first, then
/// glibc-hwcaps variants (and `$PLATFORM` alternatives).
type Found = Vec<(PathBuf, Arc<Node>)>;

/// ld.so's view of one program: its link map (index 0 is the program) and
/// the names already loaded.
struct Walk<'r> {
    r: &'r Resolver,
    objs: Vec<Obj>,
    names: HashMap<String, usize>,
    ids: HashMap<FileId, usize>,
}

impl<'r> Walk<'r> {
    fn new(r: &'r Resolver, path: &Path, node: Arc<Node>) -> Self {
        // The executable's $ORIGIN comes from /proc/self/exe, which the
        // kernel reports with symlinks resolved (`_dl_get_origin`).
        let origin = r
            .root
            .canonical(path)
            .and_then(|c| c.parent().map(Path::to_path_buf));
        let mut w = Walk {
            r,
            objs: Vec::new(),
            names: HashMap::new(),
            ids: HashMap::new(),
        };
        w.push(path.to_path_buf(), node, origin, None);
        w
    }

    fn push(
        &mut self,
        path: PathBuf,
        node: Arc<Node>,
        origin: Option<PathBuf>,
        loader: Option<usize>,
    ) -> usize {
        let i = self.objs.len();
        self.ids.insert(node.id, i);
        if let Some(so) = &node.elf().soname {
            self.names.entry(so.clone()).or_insert(i);
        }
        self.objs.push(Obj {
            path,
            node,
            origin,
            loader,
        });
        i
    }

    fn run(mut self, out: &mut Out) -> Result<()> {
        let main = self.objs[0].node.clone();
        let main_path = self.objs[0].path.clone();
        if let Some(interp) = &main.elf().interpreter {
            let p = PathBuf::from(interp);
            match self.r.load(&p).map_err(|e| load_error(&p, e))? {
                Some(node) => {
                    out.files.insert(p.clone());
                    // rtld registers the PT_INTERP string and its DT_SONAME
                    // as names of itself (rtld.c), so libc's DT_NEEDED on
                    // ld-linux-x86-64.so.2 finds it loaded.
                    if !self.ids.contains_key(&node.id) {
                        let origin = p.parent().map(Path::to_path_buf);
                        let i = self.push(p.clone(), node, origin, None);
                        self.names.insert(interp.clone(), i);
                    }
                }
                None => out.missing.push(Missing {
                    name: interp.clone(),
                    needed_by: main_path.clone(),
                }),
            }
        }

        // DT_NEEDED breadth first, then what each object dlopens (notes),
        // then the built-in dlopen list and tool plugins; each newly loaded
        // object's DT_NEEDED are followed before the next dlopen.
        let (mut next_needed, mut next_dlopen, mut extras_done) = (0, 0, false);
        loop {
            if next_needed < self.objs.len() {
                self.load_needed(next_needed, out)?;
                next_needed += 1;
            } else if next_dlopen < self.objs.len() {
                self.load_dlopen_notes(next_dlopen, out)?;
                next_dlopen += 1;
            } else if !extras_done {
                extras_done = true;
                if main.elf().interpreter.is_some() {
                    self.load_extras(out)?;
                }
            } else {
                break;
            }
        }
        Ok(())
    }

    fn load_needed(&mut self, i: usize, out: &mut Out) -> Result<()> {
        let node = self.objs[i].node.clone();
        for name in &node.elf().needed {
            if self.names.contains_key(name) {
                continue;
            }
            match self.search(name, i)? {
                Some(found) => self.add_found(name, found, i, out),
                None => out.missing.push(Missing {
                    name: name.clone(),
                    needed_by: self.objs[i].path.clone(),
                }),
            }
        }
        Ok(())
    }

    /// systemd `.note.dlopen`: the first soname of each entry that is
    /// found; a required entry with none found is missing.
    fn load_dlopen_notes(&mut self, i: usize, out: &mut Out) -> Result<()> {
        let node = self.objs[i].node.clone();
        for dep in &node.elf().dlopen {
            let mut found_any = false;
            for name in &dep.soname {
                if self.names.contains_key(name) {
                    found_any = true;
                    break;
                }
                if let Some(found) = self.search(name, i)? {
                    self.add_found(name, found, i, out);
                    found_any = true;
                    break;
                }
            }
            if !found_any && dep.priority == Priority::Required {
                out.missing.push(Missing {
                    name: dep.soname.join(" or "),
                    needed_by: self.objs[i].path.clone(),
                });
            }
        }
        Ok(())
    }

    fn load_extras(&mut self, out: &mut Out) -> Result<()> {
        for name in BUILTIN_DLOPEN {
            if self.names.contains_key(*name) {
                continue;
            }
            if let Some(found) = self.search(name, 0)? {
                self.add_found(name, found, 0, out);
            }
        }
        let main = self.objs[0].node.clone();
        let tool = self.objs[0].path.file_name().map(|n| n.to_string_lossy());
        let Some(&(_, patterns)) = TOOL_PLUGINS
            .iter()
            .find(|(t, _)| tool.as_deref() == Some(*t))
        else {
            return Ok(());
        };
        let a = arch::arch(main.elf().class, main.elf().machine);
        for dir in a.default_dirs() {
            for pattern in patterns {
                let pattern = Path::new(&dir).join(pattern);
                for p in ldconf::glob(&self.r.root, &pattern) {
                    if let Some(node) = self.r.load_compatible(&p, main.elf())?
                        && !self.ids.contains_key(&node.id)
                    {
                        out.files.insert(p.clone());
                        let origin = p.parent().map(Path::to_path_buf);
                        self.push(p, node, origin, Some(0));
                    }
                }
            }
        }
        Ok(())
    }

    fn add_found(&mut self, name: &str, found: Found, loader: usize, out: &mut Out) {
        let mut first = true;
        for (path, node) in found {
            if let Some(&existing) = self.ids.get(&node.id) {
                // The same file under another name: ld.so compares device
                // and inode and reuses the loaded object.
                if first {
                    self.names.insert(name.to_string(), existing);
                }
            } else {
                out.files.insert(path.clone());
                let origin = path.parent().map(Path::to_path_buf);
                let i = self.push(path, node, origin, Some(loader));
                if first {
                    self.names.insert(name.to_string(), i);
                }
            }
            first = false;
        }
    }

    /// Where ld.so finds `name` for object `req` (see the module doc).
    fn search(&self, name: &str, req: usize) -> Result<Option<Found>> {
        let req_obj = &self.objs[req];
        let want = req_obj.node.elf();
        if name.contains('/') {
            for cand in self.r.expand(name, req_obj.origin.as_deref(), want) {
                let Some((dir, file)) = cand.rsplit_once('/') else {
                    continue;
                };
                let Some(dir) = search_dir(&self.r.root, if dir.is_empty() { "/" } else { dir })
                else {
                    continue;
                };
                let cand = dir.join(file);
                if let Some(node) = self.r.load_compatible(&cand, want)? {
                    return Ok(Some(vec![(cand, node)]));
                }
            }
            return Ok(None);
        }
        if want.runpath.is_empty() {
            let mut did_main = false;
            let mut l = Some(req);
            while let Some(i) = l {
                let o = &self.objs[i];
                let e = o.node.elf();
                if e.runpath.is_empty() && !e.rpath.is_empty() {
                    if let Some(f) = self.try_list(&e.rpath, o, name, want)? {
                        return Ok(Some(f));
                    }
                    did_main |= i == 0;
                }
                l = o.loader;
            }
            let main = &self.objs[0];
            let e = main.node.elf();
            if !did_main
                && e.runpath.is_empty()
                && !e.rpath.is_empty()
                && let Some(f) = self.try_list(&e.rpath, main, name, want)?
            {
                return Ok(Some(f));
            }
        } else if let Some(f) = self.try_list(&want.runpath, req_obj, name, want)? {
            return Ok(Some(f));
        }
        if want.nodeflib {
            return Ok(None);
        }
        if let Some(f) = self.try_cache(name, want)? {
            return Ok(Some(f));
        }
        let a = arch::arch(want.class, want.machine);
        for dir in a.default_dirs() {
            if let Some(f) = self.try_dirs(&[PathBuf::from(dir)], name, want)? {
                return Ok(Some(f));
            }
        }
        for dir in &self.r.conf_dirs {
            if let Some(f) = self.try_dirs(std::slice::from_ref(dir), name, want)? {
                log::info!(
                    "{name} found in {} but not in ld.so.cache: run ldconfig",
                    dir.display()
                );
                return Ok(Some(f));
            }
        }
        Ok(None)
    }

    /// Searches the colon-separated lists of `owner`'s DT_RPATH or
    /// DT_RUNPATH. Empty and relative elements mean the working directory
    /// of the process, which is unknowable here: skipped.
    fn try_list(
        &self,
        lists: &[String],
        owner: &Obj,
        name: &str,
        want: &ElfInfo,
    ) -> Result<Option<Found>> {
        for list in lists {
            for element in list.split(':') {
                let dirs: Vec<PathBuf> = self
                    .r
                    .expand(element, owner.origin.as_deref(), owner.node.elf())
                    .iter()
                    .filter_map(|d| search_dir(&self.r.root, d))
                    .collect();
                if let Some(f) = self.try_dirs(&dirs, name, want)? {
                    return Ok(Some(f));
                }
            }
        }
        Ok(None)
    }

    /// `name` in any of `dirs` (alternatives of one search path element) and
    /// their glibc-hwcaps subdirectories.
    fn try_dirs(&self, dirs: &[PathBuf], name: &str, want: &ElfInfo) -> Result<Option<Found>> {
        let mut found = Found::new();
        for dir in dirs {
            let base = dir.join(name);
            if let Some(n) = self.r.load_compatible(&base, want)? {
                found.push((base, n));
            }
            for h in self.r.hwcaps_dirs(dir).iter() {
                let p = h.join(name);
                if let Some(n) = self.r.load_compatible(&p, want)? {
                    found.push((p, n));
                }
            }
        }
        Ok((!found.is_empty()).then_some(found))
    }

    /// ld.so.cache entries for `name` with the flags this ld.so accepts,
    /// baseline first, plus hwcaps variants next to the baseline that the
    /// cache does not list.
    fn try_cache(&self, name: &str, want: &ElfInfo) -> Result<Option<Found>> {
        let Some(cache) = &self.r.cache else {
            return Ok(None);
        };
        let a = arch::arch(want.class, want.machine);
        let mut entries: Vec<_> = cache
            .lookup(name)
            .filter(|e| a.accepts_cache_flags(e.flags))
            .collect();
        entries.sort_by_key(|e| e.hwcaps_subdir.is_some());
        let mut found = Found::new();
        for e in entries {
            let p = PathBuf::from(&e.value);
            if found.iter().any(|(q, _)| *q == p) {
                continue;
            }
            if let Some(n) = self.r.load_compatible(&p, want)? {
                found.push((p, n));
            }
        }
        if let Some(dir) = found.first().and_then(|(p, _)| p.parent()) {
            for h in self.r.hwcaps_dirs(dir).iter() {
                let p = h.join(name);
                if !found.iter().any(|(q, _)| *q == p)
                    && let Some(n) = self.r.load_compatible(&p, want)?
                {
                    found.push((p, n));
                }
            }
        }
        Ok((!found.is_empty()).then_some(found))
    }
}

/// An expanded search path element as a directory to search: relative
/// ones (the process's working directory) are skipped; `.` components are
/// dropped, and one with `..` is resolved physically (the kernel follows
/// `dir/..` after resolving `dir`) so that no path in the closure contains
/// `..`.
fn search_dir(root: &Root, d: &str) -> Option<PathBuf> {
    use std::path::Component;
    let p = Path::new(d);
    if !p.is_absolute() {
        return None;
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return root.canonical(p);
    }
    Some(p.components().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dst_tokens() {
        assert_eq!(dst_token("ORIGIN/../lib"), (Some("ORIGIN"), 6));
        assert_eq!(dst_token("{ORIGIN}/x"), (Some("ORIGIN"), 8));
        assert_eq!(dst_token("ORIGINAL"), (None, 0));
        assert_eq!(dst_token("LIB"), (Some("LIB"), 3));
        assert_eq!(dst_token("{PLATFORM}"), (Some("PLATFORM"), 10));
        assert_eq!(dst_token("HOME"), (None, 0));
    }

    #[test]
    fn expand_tokens() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("usr/lib/x86_64-linux-gnu")).unwrap();
        let r = Resolver::new(t.path()).unwrap();
        let e = ElfInfo {
            class: arch::ELFCLASS64,
            machine: goblin::elf::header::EM_X86_64,
            ..ElfInfo::default()
        };
        let o = Some(Path::new("/opt/app/bin"));
        assert_eq!(
            r.expand("$ORIGIN/../$LIB", o, &e),
            ["/opt/app/bin/../lib/x86_64-linux-gnu"]
        );
        assert_eq!(r.expand("${ORIGIN}", o, &e), ["/opt/app/bin"]);
        assert_eq!(
            r.expand("/p/$PLATFORM", o, &e),
            ["/p/x86_64", "/p/haswell", "/p/xeon_phi"]
        );
        assert_eq!(r.expand("/a/$HOME/b", o, &e), ["/a/$HOME/b"]);
        assert!(r.expand("$ORIGIN/lib", None, &e).is_empty());
        let root = Root::new(t.path());
        assert_eq!(
            search_dir(&root, "/usr/lib/x86_64-linux-gnu/../x86_64-linux-gnu/."),
            Some(PathBuf::from("/usr/lib/x86_64-linux-gnu"))
        );
        assert_eq!(search_dir(&root, "/a/./b"), Some(PathBuf::from("/a/b")));
        assert_eq!(search_dir(&root, "/nonexistent/../x"), None);
        assert_eq!(search_dir(&root, "lib"), None);
    }

    #[test]
    fn env_programs() {
        assert_eq!(env_program("bash"), Some("bash"));
        assert_eq!(env_program("-S bash -e"), Some("bash"));
        assert_eq!(env_program("-Spython3 -u"), Some("python3"));
        assert_eq!(env_program("-i LANG=C -u X perl"), Some("perl"));
        assert_eq!(env_program("-i"), None);
    }
}
