//! Parsers for the text indexes depmod(8) writes into `/lib/modules/KVER`
//! and for the `softdep` lines of modprobe.d(5) files, and the alias table
//! that resolves a name, an alias or a device modalias to modules.
//!
//! The binary `.bin` twins carry the same data for modprobe's speed; we read
//! the text forms, which modules.dep(5) documents, and copy both.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, Result};

use super::glob::{alias_name, fnmatch, module_name};

/// One line of `modules.dep`: `PATH: DEP DEP ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepLine {
    /// Path relative to the modules directory (modules.dep(5)); absolute
    /// paths, which very old depmod wrote, are kept as they are.
    pub path: String,
    pub deps: Vec<String>,
}

/// The module name a file path stands for: the file name up to `.ko`
/// (dropping `.xz`, `.zst`, `.gz`), with `-` as `_`.
pub fn name_of_path(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = match file.find(".ko") {
        Some(i) => &file[..i],
        None => file,
    };
    module_name(stem)
}

/// Parses `modules.dep`. Lines continue with a trailing `\` as in every
/// modprobe.d-style file; blank lines and `#` comments are skipped.
pub fn parse_dep(text: &str, file: &Path) -> Result<Vec<DepLine>> {
    let mut out = Vec::new();
    for (n, line) in logical_lines(text) {
        let (path, deps) = line.split_once(':').with_context(|| {
            format!(
                "{}:{n}: expected `path: dependencies`, found {line:?}",
                file.display()
            )
        })?;
        let path = path.trim();
        if path.is_empty() {
            anyhow::bail!("{}:{n}: empty module path", file.display());
        }
        out.push(DepLine {
            path: path.to_string(),
            deps: deps.split_whitespace().map(str::to_string).collect(),
        });
    }
    Ok(out)
}

/// Parses `modules.alias` (and the `alias` lines of modprobe.d files):
/// `alias PATTERN MODULE`; calls `f(pattern, module)` for each.
pub fn for_each_alias(text: &str, mut f: impl FnMut(&str, &str)) {
    for (_, line) in logical_lines(text) {
        let mut w = line.split_whitespace();
        if let (Some("alias"), Some(pattern), Some(module)) = (w.next(), w.next(), w.next()) {
            f(pattern, module);
        }
    }
}

/// Parses `softdep MODULE pre: A B post: C` lines (`modules.softdep` and
/// modprobe.d(5)). Returns module name → names or aliases it wants loaded
/// with it, `pre:` and `post:` together: for what goes into the image the
/// load order does not matter.
///
/// Words before the first `pre:`/`post:` are kept too. modprobe ignores
/// them for ordering, but kernels ship such lines (6.1's cifs has `softdep
/// cifs gcm`) to say that the module requests those crypto algorithms at
/// run time, which only works if their modules are in the image.
///
/// `keyword` is `softdep`, or `weakdep` for `modules.weakdep` (kernels ≥
/// 6.11: `weakdep MODULE DEP...`, modules it may request at run time),
/// which gets the same treatment.
pub fn parse_softdep(text: &str, keyword: &str, into: &mut BTreeMap<String, Vec<String>>) {
    for (_, line) in logical_lines(text) {
        let mut w = line.split_whitespace();
        if w.next() != Some(keyword) {
            continue;
        }
        let Some(module) = w.next() else { continue };
        let wanted = into.entry(module_name(module)).or_default();
        for word in w {
            if word != "pre:" && word != "post:" && !wanted.iter().any(|x| x == word) {
                wanted.push(word.to_string());
            }
        }
    }
}

/// Parses `modules.builtin`: one path per line of a module compiled into the
/// kernel. Returns the paths.
pub fn parse_builtin(text: &str) -> Vec<String> {
    logical_lines(text).map(|(_, l)| l.into_owned()).collect()
}

/// What `modules.builtin.modinfo` says about built-in modules: their
/// aliases and the firmware they name. The file is the `.modinfo` sections
/// of the built-in modules concatenated, each string prefixed with
/// `MODULE.` (NUL-separated `module.key=value`).
#[derive(Debug, Default)]
pub struct BuiltinInfo {
    pub aliases: Vec<(String, String)>,
    pub firmware: HashMap<String, Vec<String>>,
}

pub fn parse_builtin_modinfo(bytes: &[u8]) -> BuiltinInfo {
    let mut info = BuiltinInfo::default();
    for entry in bytes.split(|&b| b == 0) {
        let Ok(entry) = std::str::from_utf8(entry) else {
            continue;
        };
        let Some((key, value)) = entry.split_once('=') else {
            continue;
        };
        let Some((module, key)) = key.split_once('.') else {
            continue;
        };
        match key {
            "alias" => info.aliases.push((value.to_string(), module_name(module))),
            "firmware" => info
                .firmware
                .entry(module_name(module))
                .or_default()
                .push(value.to_string()),
            _ => {}
        }
    }
    info
}

/// Non-empty, non-comment logical lines with their 1-based line numbers; a
/// trailing `\\` joins the next physical line, as modprobe.d(5) describes.
/// Borrowed unless lines had to be joined.
fn logical_lines(text: &str) -> impl Iterator<Item = (usize, Cow<'_, str>)> {
    let mut lines = text.lines().enumerate();
    std::iter::from_fn(move || {
        loop {
            let (n, first) = lines.next()?;
            let line = if first.ends_with('\\') {
                let mut joined = String::new();
                let mut cur = first;
                while let Some(head) = cur.strip_suffix('\\') {
                    joined.push_str(head);
                    match lines.next() {
                        Some((_, more)) => cur = more,
                        None => {
                            cur = "";
                            break;
                        }
                    }
                }
                joined.push_str(cur);
                Cow::Owned(joined.trim().to_string())
            } else {
                Cow::Borrowed(first.trim())
            };
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            return Some((n + 1, line));
        }
    })
}

/// Patterns to module names, organised so that matching one device modalias
/// against tens of thousands of patterns stays cheap.
///
/// Patterns without wildcards (`crypto-crc32c`, `fs-ext4`) are a hash
/// lookup. The others are bucketed by their literal prefix up to the first
/// wildcard (`pci:v00008086d`, `acpi`, `virtio:d00000002v`): a query only
/// needs to try the buckets whose key is a prefix of it, a few dozen hash
/// probes instead of 26k `fnmatch` calls.
#[derive(Debug, Default)]
pub struct AliasTable {
    exact: HashMap<String, Vec<String>>,
    by_prefix: HashMap<String, Vec<(String, String)>>,
}

impl AliasTable {
    /// Adds `pattern` → `module`; both are normalised as kmod does.
    pub fn insert(&mut self, pattern: &str, module: &str) {
        let pattern = alias_name(pattern);
        let module = module_name(module);
        match pattern.find(['*', '?', '[', '\\']) {
            None => self.exact.entry(pattern).or_default().push(module),
            Some(end) => {
                let prefix = &pattern[..end];
                match self.by_prefix.get_mut(prefix) {
                    Some(v) => v.push((pattern, module)),
                    None => {
                        let key = prefix.to_string();
                        self.by_prefix.insert(key, vec![(pattern, module)]);
                    }
                }
            }
        }
    }

    /// The module names whose patterns match `query` (an alias or a device
    /// modalias), sorted and de-duplicated.
    pub fn lookup(&self, query: &str) -> Vec<String> {
        let q = alias_name(query);
        let mut out: Vec<String> = Vec::new();
        if let Some(m) = self.exact.get(&q) {
            out.extend(m.iter().cloned());
        }
        let prefixes = q
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(q.len()));
        for end in prefixes {
            for (pattern, module) in self.by_prefix.get(&q[..end]).into_iter().flatten() {
                if fnmatch(pattern, &q) {
                    out.push(module.clone());
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep_lines_with_names() {
        let text = "# comment\n\
                    kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko\n\
                    \n\
                    kernel/drivers/md/dm-mod.ko.xz:\n";
        let deps = parse_dep(text, Path::new("modules.dep")).unwrap();
        assert_eq!(deps.len(), 2);
        assert_eq!(deps[0].path, "kernel/fs/ext4/ext4.ko");
        assert_eq!(deps[0].deps.len(), 3);
        assert!(deps[1].deps.is_empty());
        assert_eq!(name_of_path(&deps[1].path), "dm_mod");
        assert_eq!(name_of_path("kernel/a/8021q.ko.zst"), "8021q");
        assert_eq!(name_of_path("/abs/x/crc32c-intel.ko.gz"), "crc32c_intel");
    }

    #[test]
    fn dep_line_without_colon_names_file_and_line() {
        let e = parse_dep("a.ko:\nbroken\n", Path::new("/m/modules.dep")).unwrap_err();
        assert!(format!("{e:#}").starts_with("/m/modules.dep:2:"), "{e:#}");
    }

    #[test]
    fn softdeps_merge_pre_post_and_bare_words() {
        let mut sd = BTreeMap::new();
        parse_softdep(
            "softdep ext4 pre: crypto-crc32c\n\
             softdep cifs gcm\n\
             softdep cifs ccm\n\
             softdep dm-crypt pre: a post: b \\\n  c\n\
             options foo bar=1\n",
            "softdep",
            &mut sd,
        );
        assert_eq!(sd["ext4"], ["crypto-crc32c"]);
        assert_eq!(sd["cifs"], ["gcm", "ccm"]);
        assert_eq!(sd["dm_crypt"], ["a", "b", "c"]);
        assert_eq!(sd.len(), 3);
        parse_softdep(
            "weakdep ext4 crc32c\nsoftdep x pre: y\n",
            "weakdep",
            &mut sd,
        );
        assert_eq!(sd["ext4"], ["crypto-crc32c", "crc32c"]);
        assert_eq!(sd.len(), 3);
    }

    #[test]
    fn builtin_modinfo_aliases_and_firmware() {
        let bytes = b"sha256_generic.alias=crypto-sha256\0sha256_generic.license=GPL\0\
                      foo-bar.firmware=foo/fw.bin\0garbage\0";
        let info = parse_builtin_modinfo(bytes);
        assert_eq!(
            info.aliases,
            [("crypto-sha256".to_string(), "sha256_generic".to_string())]
        );
        assert_eq!(info.firmware["foo_bar"], ["foo/fw.bin"]);
    }

    #[test]
    fn alias_table_buckets_and_normalises() {
        let mut t = AliasTable::default();
        for_each_alias(
            "alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\n\
             alias virtio:d00000002v* virtio_blk\n\
             alias crypto-crc32c crc32c-intel\n\
             alias crypto-crc32c crc32c_generic\n\
             alias *:TI1234* wildcard_bus\n\
             alias pci:v*d*sv*sd*bc01sc06i01* ahci\n",
            |p, m| t.insert(p, m),
        );
        assert_eq!(
            t.lookup("pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"),
            ["virtio_pci"]
        );
        assert_eq!(t.lookup("virtio:d00000002v00001AF4"), ["virtio_blk"]);
        assert_eq!(
            t.lookup("crypto_crc32c"),
            ["crc32c_generic", "crc32c_intel"]
        );
        assert_eq!(t.lookup("acpi:TI1234:"), ["wildcard_bus"]);
        assert!(t.lookup("usb:v1234p5678").is_empty());
    }
}
