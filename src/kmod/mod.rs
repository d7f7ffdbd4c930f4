//! Kernel modules: parses the module indexes of one kernel
//! (`/lib/modules/KVER/modules.{dep,alias,softdep,builtin}`), selects modules
//! by policy with their dependencies and softdeps, and finds the firmware
//! they name. Hands on a [`Selection`] of host paths.
//!
//! Selection works on names as modprobe(8) does: a softdep or an `extra`
//! entry may be a module name or an alias (`crypto-crc32c`, `fs-ext3`), and
//! a name that `modules.builtin` lists is satisfied without any file. The
//! result is the closure over `modules.dep` (which depmod already writes
//! transitively) and softdeps, so `modprobe X` in the rescue system finds
//! everything X needs.

mod firmware;
mod glob;
mod host;
mod index;
mod modinfo;
mod policy;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rayon::prelude::*;
use serde::Serialize;

use crate::config::ModulePolicy;
use crate::error::{Code, fail};

/// Shell wildcards as fnmatch(3); the rescue plan matches paths and
/// interface names with it too.
pub use glob::fnmatch;
pub use modinfo::firmware_of;

/// What the host's hardware needs, read from /proc and /sys.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostModules {
    /// Names of loaded modules (/proc/modules).
    pub loaded: Vec<String>,
    /// modalias strings of block and network devices and their parents.
    pub modaliases: Vec<String>,
    /// Filesystem types mounted (/proc/self/mounts) or listed in /etc/fstab.
    pub filesystems: Vec<String>,
}

impl HostModules {
    /// Reads `root/proc/modules` and the modalias files under `root/sys`.
    /// Missing files (a kernel without modules, a chroot without /sys) give
    /// empty lists, not errors.
    pub fn detect(root: &Path) -> Result<Self> {
        host::detect(root)
    }
}

/// The modules and firmware chosen for the image.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Selection {
    /// Absolute host paths of the chosen module files (.ko, .ko.xz, .ko.zst).
    pub modules: Vec<PathBuf>,
    /// The kernel's module index files (modules.dep, .bin, ...) to copy so
    /// that modprobe works in the rescue system.
    pub index_files: Vec<PathBuf>,
    /// Absolute host paths of firmware files named by chosen modules.
    pub firmware: Vec<PathBuf>,
    /// Firmware named by a chosen module but not present on the host.
    pub firmware_missing: Vec<String>,
    /// The module and firmware files (of `modules` and `firmware`) that the
    /// policy alone does not choose: there because of this host's devices,
    /// mounts, loaded modules or `modules.extra`. The rest is the same on
    /// every host of this kernel and firmware (the PXE base layer).
    pub host_only: BTreeSet<PathBuf>,
}

/// One loadable module of `modules.dep`.
#[derive(Debug)]
struct Module {
    /// Normalised name (`dm_mod` for `dm-mod.ko`).
    name: String,
    /// Path relative to the modules dir, as modules.dep writes it.
    path: String,
    /// Indexes of the modules it needs (its modules.dep line).
    deps: Vec<usize>,
}

/// Something a name or alias resolves to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Module(usize),
    Builtin(String),
}

/// The module indexes of one kernel.
#[derive(Debug)]
pub struct ModuleIndex {
    dir: PathBuf,
    modules: Vec<Module>,
    by_name: HashMap<String, usize>,
    /// Built-in module name → its path in modules.builtin.
    builtin: BTreeMap<String, String>,
    /// Firmware that built-in modules name (modules.builtin.modinfo).
    builtin_firmware: HashMap<String, Vec<String>>,
    aliases: index::AliasTable,
    /// Module name → names or aliases it wants with it (pre and post).
    softdeps: BTreeMap<String, Vec<String>>,
}

/// modprobe.d(5) directories, highest priority first. A file name seen in an
/// earlier directory hides the same name in later ones.
const MODPROBE_D: [&str; 5] = [
    "etc/modprobe.d",
    "run/modprobe.d",
    "usr/local/lib/modprobe.d",
    "lib/modprobe.d",
    "usr/lib/modprobe.d",
];

impl ModuleIndex {
    /// Loads `modules_dir` (`/lib/modules/KVER`): modules.dep is required,
    /// the alias, softdep and builtin indexes are read when present. When
    /// the path has the shape `ROOT/lib/modules/KVER`, the softdep and alias
    /// lines of `ROOT/{etc,lib,...}/modprobe.d/*.conf` are honoured too.
    pub fn load(modules_dir: &Path) -> Result<Self> {
        let dep_file = modules_dir.join("modules.dep");
        let dep_text = match std::fs::read_to_string(&dep_file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let kver = modules_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                return Err(fail(
                    Code::Host,
                    format!(
                        "{} not found; run `depmod {kver}` or reinstall the kernel's package",
                        dep_file.display()
                    ),
                ));
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", dep_file.display())),
        };
        let lines = index::parse_dep(&dep_text, &dep_file)
            .map_err(|e| fail(Code::Input, format!("{e:#}")))?;

        let mut idx = ModuleIndex {
            dir: modules_dir.to_path_buf(),
            modules: Vec::with_capacity(lines.len()),
            by_name: HashMap::with_capacity(lines.len()),
            builtin: BTreeMap::new(),
            builtin_firmware: HashMap::new(),
            aliases: index::AliasTable::default(),
            softdeps: BTreeMap::new(),
        };
        if let Some(text) = idx.read_optional("modules.builtin")? {
            for path in index::parse_builtin(&text) {
                idx.builtin.insert(index::name_of_path(&path), path);
            }
        }

        let mut by_path: HashMap<String, usize> = HashMap::with_capacity(lines.len());
        for line in &lines {
            idx.add_module(&line.path, &mut by_path);
        }
        for (i, line) in lines.iter().enumerate() {
            let mut deps = Vec::with_capacity(line.deps.len());
            for dep in &line.deps {
                // depmod lists every dependency on a line of its own; if a
                // hand-made index does not, the path is still what modprobe
                // would load.
                deps.push(idx.add_module(dep, &mut by_path));
            }
            idx.modules[i].deps = deps;
        }

        if let Some(text) = idx.read_optional("modules.alias")? {
            index::for_each_alias(&text, |p, m| idx.aliases.insert(p, m));
        }
        let builtin_modinfo = idx.dir.join("modules.builtin.modinfo");
        match std::fs::read(&builtin_modinfo) {
            Ok(bytes) => {
                let info = index::parse_builtin_modinfo(&bytes);
                for (pattern, module) in info.aliases {
                    idx.aliases.insert(&pattern, &module);
                }
                idx.builtin_firmware = info.firmware;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("reading {}", builtin_modinfo.display()));
            }
        }
        if let Some(text) = idx.read_optional("modules.softdep")? {
            index::parse_softdep(&text, "softdep", &mut idx.softdeps);
        }
        if let Some(text) = idx.read_optional("modules.weakdep")? {
            index::parse_softdep(&text, "weakdep", &mut idx.softdeps);
        }
        if let Some(root) = host::root_of_modules_dir(modules_dir) {
            idx.load_modprobe_d(&root)?;
        }
        Ok(idx)
    }

    /// Number of loadable modules in modules.dep.
    pub fn len(&self) -> usize {
        self.modules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    /// The modules directory this index was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The names of the modules and built-ins a module name or alias stands
    /// for, as modprobe would resolve it (sorted).
    pub fn resolve_names(&self, query: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .resolve(query)
            .into_iter()
            .map(|t| match t {
                Target::Module(i) => self.modules[i].name.clone(),
                Target::Builtin(n) => n,
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    fn add_module(&mut self, path: &str, by_path: &mut HashMap<String, usize>) -> usize {
        if let Some(&i) = by_path.get(path) {
            return i;
        }
        let i = self.modules.len();
        let name = index::name_of_path(path);
        // Two files with one name: depmod only writes the one its search
        // order picks, so this only happens in hand-made indexes; keep the
        // first, as modprobe would find it first.
        self.by_name.entry(name.clone()).or_insert(i);
        self.modules.push(Module {
            name,
            path: path.to_string(),
            deps: Vec::new(),
        });
        by_path.insert(path.to_string(), i);
        i
    }

    fn read_optional(&self, file: &str) -> Result<Option<String>> {
        let path = self.dir.join(file);
        match std::fs::read_to_string(&path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Reads `softdep` and `alias` lines of modprobe.d(5) files under
    /// `root`. kmod reads `*.conf` (and legacy `*.alias`) files in name
    /// order, and a name in a higher-priority directory hides the same name
    /// below.
    fn load_modprobe_d(&mut self, root: &Path) -> Result<()> {
        let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
        for dir in MODPROBE_D {
            let dir = root.join(dir);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || !(name.ends_with(".conf") || name.ends_with(".alias")) {
                    continue;
                }
                files.entry(name).or_insert_with(|| e.path());
            }
        }
        for path in files.values() {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                // A dangling symlink (`ln -s /dev/null` masks a file).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            };
            index::parse_softdep(&text, "softdep", &mut self.softdeps);
            index::for_each_alias(&text, |p, m| self.aliases.insert(p, m));
        }
        Ok(())
    }

    /// What a module name or alias stands for: the module of that name, a
    /// built-in of that name, or else every module and built-in whose alias
    /// pattern matches (modprobe's order).
    fn resolve(&self, query: &str) -> Vec<Target> {
        let name = glob::module_name(query);
        if let Some(&i) = self.by_name.get(&name) {
            return vec![Target::Module(i)];
        }
        if self.builtin.contains_key(&name) {
            return vec![Target::Builtin(name)];
        }
        self.lookup_alias(query)
    }

    fn lookup_alias(&self, alias: &str) -> Vec<Target> {
        self.aliases
            .lookup(alias)
            .into_iter()
            .filter_map(|m| match self.by_name.get(&m) {
                Some(&i) => Some(Target::Module(i)),
                None => self.builtin.contains_key(&m).then_some(Target::Builtin(m)),
            })
            .collect()
    }

    /// Seeds for what the host's devices and mounts need.
    fn host_seeds(&self, host: &HostModules, seeds: &mut Vec<Target>) {
        for m in &host.modaliases {
            seeds.extend(self.lookup_alias(m));
        }
        for fs in &host.filesystems {
            for candidate in host::filesystem_candidates(fs) {
                seeds.extend(self.resolve(&candidate));
            }
        }
    }

    /// The modules and built-ins reachable from `seeds` through modules.dep
    /// and softdeps.
    fn closure(&self, seeds: Vec<Target>) -> (BTreeSet<usize>, BTreeSet<String>) {
        let mut modules = BTreeSet::new();
        let mut builtins = BTreeSet::new();
        let mut todo = seeds;
        while let Some(t) = todo.pop() {
            let name = match &t {
                Target::Module(i) => {
                    if !modules.insert(*i) {
                        continue;
                    }
                    let m = &self.modules[*i];
                    todo.extend(m.deps.iter().map(|&d| Target::Module(d)));
                    &m.name
                }
                Target::Builtin(n) => {
                    if !builtins.insert(n.clone()) {
                        continue;
                    }
                    n
                }
            };
            for want in self.softdeps.get(name).into_iter().flatten() {
                todo.extend(self.resolve(want));
            }
        }
        (modules, builtins)
    }

    /// Chooses modules by `policy`, plus `extra` by name, each with its
    /// dependencies and softdeps; with `firmware`, looks up the firmware
    /// they name under `firmware_dirs`.
    ///
    /// `storage-net` also takes what the host's own disks, NICs and mounts
    /// need: a controller in a directory the policy does not cover (a
    /// staging driver, an out-of-tree zfs) must still work on the machine
    /// the image was made for.
    pub fn select(
        &self,
        policy: ModulePolicy,
        host: &HostModules,
        extra: &[String],
        firmware_dirs: &[PathBuf],
    ) -> Result<Selection> {
        // The policy's own seeds depend on the kernel alone (module paths
        // and names); `host` policy has none: it is this host's choice.
        let mut seeds: Vec<Target> = Vec::new();
        match policy {
            ModulePolicy::All => seeds.extend((0..self.modules.len()).map(Target::Module)),
            ModulePolicy::StorageNet => {
                for (i, m) in self.modules.iter().enumerate() {
                    if policy::storage_net(&m.path, &m.name) {
                        seeds.push(Target::Module(i));
                    }
                }
                // Built-ins matter for their softdeps and firmware.
                for (name, path) in &self.builtin {
                    if policy::storage_net(path, name) {
                        seeds.push(Target::Builtin(name.clone()));
                    }
                }
            }
            ModulePolicy::Host => {}
        }
        let shared_seeds = seeds.clone();
        match policy {
            ModulePolicy::All => {}
            ModulePolicy::StorageNet => self.host_seeds(host, &mut seeds),
            ModulePolicy::Host => {
                for name in &host.loaded {
                    let found = self.resolve(name);
                    if found.is_empty() {
                        // The running kernel may differ from the one the
                        // image is for; its modules can be renamed or gone.
                        log::debug!("loaded module {name} is not in {}", self.dir.display());
                    }
                    seeds.extend(found);
                }
                self.host_seeds(host, &mut seeds);
            }
        }
        for name in extra {
            let found = self.resolve(name);
            if found.is_empty() {
                return Err(fail(
                    Code::Config,
                    format!(
                        "modules.extra: module {name} not found in {}; check the name with `modinfo {name}`",
                        self.dir.join("modules.dep").display()
                    ),
                ));
            }
            seeds.extend(found);
        }

        let (chosen, builtins) = self.closure(seeds);
        let (shared, shared_builtins) = self.closure(shared_seeds);
        let path_of = |i: usize| self.dir.join(&self.modules[i].path);
        let modules: Vec<PathBuf> = chosen
            .iter()
            .map(|&i| path_of(i))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let shared_paths: BTreeSet<PathBuf> = shared.iter().map(|&i| path_of(i)).collect();

        let mut selection = Selection {
            host_only: modules
                .iter()
                .filter(|p| !shared_paths.contains(*p))
                .cloned()
                .collect(),
            modules,
            index_files: self.index_files()?,
            ..Selection::default()
        };
        if !firmware_dirs.is_empty() {
            let per_module: Vec<Result<Vec<String>>> = selection
                .modules
                .par_iter()
                .map(|p| modinfo::firmware_of(p))
                .collect();
            // Walk in path order so the error reported is deterministic.
            let mut names: BTreeSet<String> = BTreeSet::new();
            let mut shared_names: BTreeSet<String> = BTreeSet::new();
            for (p, r) in selection.modules.iter().zip(per_module) {
                let r = r?;
                if shared_paths.contains(p) {
                    shared_names.extend(r.iter().cloned());
                }
                names.extend(r);
            }
            for b in &builtins {
                let fw = self.builtin_firmware.get(b).into_iter().flatten().cloned();
                if shared_builtins.contains(b) {
                    shared_names.extend(fw.clone());
                }
                names.extend(fw);
            }
            let found = firmware::lookup(names.iter().map(String::as_str), firmware_dirs);
            let shared_found =
                firmware::lookup(shared_names.iter().map(String::as_str), firmware_dirs);
            selection.host_only.extend(
                found
                    .present
                    .iter()
                    .filter(|p| !shared_found.present.contains(*p))
                    .cloned(),
            );
            selection.firmware = found.present.into_iter().collect();
            selection.firmware_missing = found.missing.into_iter().collect();
        }
        Ok(selection)
    }

    /// Every `modules.*` file at the top of the modules dir (dep, alias,
    /// softdep, symbols, builtin, order, devname and their `.bin` forms,
    /// whatever this depmod wrote), sorted.
    fn index_files(&self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.dir)
            .with_context(|| format!("reading {}", self.dir.display()))?;
        for e in entries {
            let e = e.with_context(|| format!("reading {}", self.dir.display()))?;
            let name = e.file_name();
            if name.to_string_lossy().starts_with("modules.") && e.path().is_file() {
                out.push(e.path());
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
