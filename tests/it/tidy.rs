//! Checks over the repository itself rather than over mkrescue's
//! behaviour: things a review would miss and a build would not catch.
//!
//! Each check is a `#[test]` that collects [`Finding`]s (file, line, what is
//! wrong and how to fix it) and hands them to [`assert_none`], which fails
//! with all of them at once. To add a check, write a function over
//! [`tracked_text_files`] (or over the files it needs) returning findings,
//! and a `#[test]` calling `assert_none`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// One problem: where it is and what to do about it.
#[derive(Debug, PartialEq, Eq)]
struct Finding {
    /// Relative to the repository root.
    path: PathBuf,
    /// 1-based; 0 when the finding is about the whole file.
    line: usize,
    message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
        }
    }
}

/// Fails the test with every finding, one per line.
fn assert_none(check: &str, findings: &[Finding]) {
    if findings.is_empty() {
        return;
    }
    let list: Vec<String> = findings.iter().map(|f| format!("  {f}")).collect();
    panic!(
        "tidy: {check}: {} finding(s):\n{}",
        findings.len(),
        list.join("\n")
    );
}

/// The repository root (this package is the workspace root).
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A file tracked by git whose contents are text.
struct TextFile {
    path: PathBuf,
    text: String,
}

/// Every file `git ls-files` names that is a regular file and text: no NUL
/// byte and valid UTF-8 (binary fixtures are skipped). Read once for all
/// checks. Without git the test fails and says so: these checks must not
/// pass by looking at nothing.
fn tracked_text_files() -> &'static [TextFile] {
    static FILES: OnceLock<Vec<TextFile>> = OnceLock::new();
    FILES.get_or_init(|| {
        let out = Command::new("git")
            .args(["ls-files", "-z"])
            .current_dir(root())
            .output()
            .expect("running git ls-files (tidy checks need git and a git checkout)");
        assert!(
            out.status.success(),
            "git ls-files in {} failed: {}",
            root().display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut files = Vec::new();
        for name in out.stdout.split(|&b| b == 0).filter(|n| !n.is_empty()) {
            let path = PathBuf::from(String::from_utf8_lossy(name).into_owned());
            let full = root().join(&path);
            // Deleted but not yet staged, symlinks, submodules: nothing to read.
            match std::fs::symlink_metadata(&full) {
                Ok(m) if m.is_file() => {}
                _ => continue,
            }
            let bytes =
                std::fs::read(&full).unwrap_or_else(|e| panic!("reading {}: {e}", full.display()));
            if bytes.contains(&0) {
                continue;
            }
            if let Ok(text) = String::from_utf8(bytes) {
                files.push(TextFile { path, text });
            }
        }
        assert!(!files.is_empty(), "git ls-files named no text file");
        files
    })
}

/// Lines git leaves in a file when a merge, rebase or cherry-pick stops on
/// a conflict. The opening and closing markers are always findings. The
/// base marker (`|||||||`, diff3 style) and the separator (`=======`) only
/// count between an opening and a closing marker: Markdown underlines a
/// heading with `=======`, and a table row can be all `|`.
fn conflict_markers(path: &Path, text: &str) -> Vec<Finding> {
    let open = format!("{} ", "<".repeat(7));
    let close = format!("{} ", ">".repeat(7));
    let base = "|".repeat(7);
    let separator = "=".repeat(7);
    let fix = "resolve the conflict: keep the right content of both sides, drop the marker lines";
    let mut findings = Vec::new();
    let mut inside = false;
    for (i, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let marker = if line.starts_with(&open) {
            inside = true;
            Some("opening")
        } else if line.starts_with(&close) {
            inside = false;
            Some("closing")
        } else if inside && (line == base || line.starts_with(&format!("{base} "))) {
            Some("base")
        } else if inside && line == separator {
            Some("separator")
        } else {
            None
        };
        if let Some(kind) = marker {
            findings.push(Finding {
                path: path.to_owned(),
                line: i + 1,
                message: format!("merge conflict marker ({kind}) `{line}`; {fix}"),
            });
        }
    }
    findings
}

#[test]
fn no_merge_conflict_markers() {
    let findings: Vec<Finding> = tracked_text_files()
        .iter()
        .flat_map(|f| conflict_markers(&f.path, &f.text))
        .collect();
    assert_none("merge conflict markers", &findings);
}

/// Integration tests are modules of the one binary in tests/it (see its
/// main.rs); a new tests/*.rs file would be a binary of its own that links
/// the whole crate again.
#[test]
fn integration_tests_are_one_binary() {
    let findings: Vec<Finding> = tracked_text_files()
        .iter()
        .filter(|f| {
            f.path.parent() == Some(Path::new("tests"))
                && f.path.extension().is_some_and(|e| e == "rs")
        })
        .map(|f| Finding {
            path: f.path.clone(),
            line: 0,
            message: "an integration test binary of its own; move it into tests/it/ as a module \
                      (`mod` in tests/it/main.rs or in its area's mod.rs)"
                .to_string(),
        })
        .collect();
    assert_none("integration tests", &findings);
}

/// The marker check on made-up files, so that it is known to find what it
/// must and nothing else.
#[test]
fn conflict_marker_check_itself() {
    let (o, b, s, c) = ("<".repeat(7), "|".repeat(7), "=".repeat(7), ">".repeat(7));
    let lines = |text: &str| -> Vec<usize> {
        conflict_markers(Path::new("x.md"), text)
            .iter()
            .map(|f| f.line)
            .collect()
    };
    // A Markdown heading, a table row of empty cells, text quoting markers
    // inside a line: none of them is a marker.
    assert_eq!(
        lines(&format!("Title\n{s}\n\n{b}\nsee `{o} HEAD`\n")),
        Vec::<usize>::new()
    );
    // A conflict, with CRLF line ends.
    assert_eq!(
        lines(&format!("a\r\n{o} HEAD\r\nx\r\n{s}\r\ny\r\n{c} topic\r\n")),
        [2, 4, 6]
    );
    // diff3 style.
    assert_eq!(
        lines(&format!(
            "{o} HEAD\nx\n{b} merged common ancestors\nw\n{s}\ny\n{c} topic\n"
        )),
        [1, 3, 5, 7]
    );
    // A marker left alone, as in BENCHMARKS.md before it was fixed.
    assert_eq!(lines(&format!("a\n{c} e2e\n")), [2]);
    let f = &conflict_markers(Path::new("BENCHMARKS.md"), &format!("a\n{o} HEAD\n"))[0];
    let shown = f.to_string();
    assert!(
        shown.starts_with("BENCHMARKS.md:2: merge conflict marker (opening)"),
        "{shown}"
    );
    assert!(shown.contains("drop the marker lines"), "{shown}");
}

/// The modules of one folder (its files and subfolders, `mod.rs` aside) and
/// which of them each names: through `PREFIX` (`crate::` for `src/`,
/// `crate::qemu::` for `xtask/src/qemu/`) anywhere below it, or through
/// `super::` from a file directly in the folder. Comments are left out.
fn module_graph(dir: &Path, prefix: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut files: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let p = e.path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            let below: Vec<PathBuf> = walkdir::WalkDir::new(&p)
                .into_iter()
                .map(Result::unwrap)
                .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
                .map(|e| e.into_path())
                .collect();
            files.entry(name).or_default().extend(below);
        } else if p.extension().is_some_and(|x| x == "rs")
            && !["mod", "lib", "main"].contains(&name.as_str())
        {
            files.entry(name).or_default().push(p);
        }
    }
    let mut graph = BTreeMap::new();
    for (module, paths) in &files {
        let mut uses = BTreeSet::new();
        for p in paths {
            let text: String = std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| l.split("//").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n");
            let direct = p.parent() == Some(dir);
            for pre in [Some(prefix), direct.then_some("super::")]
                .into_iter()
                .flatten()
            {
                for (i, _) in text.match_indices(pre) {
                    // `super::super::` is not this folder's module.
                    if pre == "super::" && text[..i].ends_with("super::") {
                        continue;
                    }
                    let rest = &text[i + pre.len()..];
                    let names: Vec<&str> = match rest.strip_prefix('{') {
                        Some(group) => group
                            .split('}')
                            .next()
                            .unwrap_or("")
                            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                            .collect(),
                        None => vec![
                            rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                                .next()
                                .unwrap_or(""),
                        ],
                    };
                    for n in names {
                        if n != module && files.contains_key(n) {
                            uses.insert(n.to_string());
                        }
                    }
                }
            }
        }
        graph.insert(module.clone(), uses);
    }
    graph
}

/// One module path of each import circle in `graph` (empty: none).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut found = Vec::new();
    for start in graph.keys() {
        // Depth-first from `start`: a path back to `start` is a circle.
        let mut stack = vec![vec![start.clone()]];
        let mut seen = BTreeSet::new();
        while let Some(path) = stack.pop() {
            let last = path.last().unwrap();
            for next in &graph[last] {
                if next == start {
                    let mut c = path.clone();
                    c.push(start.clone());
                    found.push(c.join(" -> "));
                } else if next > start && seen.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push(p);
                }
            }
        }
    }
    found
}

/// Every folder of `src/` and `xtask/src/`, with the path that names its
/// modules from elsewhere in its crate (`crate::recover::plan::`).
fn source_folders() -> Vec<(PathBuf, String)> {
    let mut folders = Vec::new();
    for top in ["src", "xtask/src"] {
        let base = root().join(top);
        for e in walkdir::WalkDir::new(&base).into_iter().map(Result::unwrap) {
            if e.file_type().is_dir() {
                let rel = e.path().strip_prefix(&base).unwrap();
                let mut prefix = String::from("crate::");
                for c in rel.components() {
                    prefix.push_str(&c.as_os_str().to_string_lossy());
                    prefix.push_str("::");
                }
                folders.push((e.into_path(), prefix));
            }
        }
    }
    folders
}

#[test]
fn no_import_circles_between_folders() {
    let folders = source_folders();
    assert!(
        folders.len() > 10,
        "found only {} source folders",
        folders.len()
    );
    let mut findings = Vec::new();
    for (dir, prefix) in &folders {
        for c in circles(&module_graph(dir, prefix)) {
            findings.push(Finding {
                path: dir.strip_prefix(root()).unwrap().to_path_buf(),
                line: 0,
                message: format!(
                    "import circle {c}: move what both sides need into a module of its own (OS helpers into src/sys/)"
                ),
            });
        }
    }
    assert_none("import circles", &findings);
}

#[test]
fn the_circle_check_finds_a_circle() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("a.rs"), "use crate::b::x;\n").unwrap();
    std::fs::create_dir(d.path().join("b")).unwrap();
    std::fs::write(
        d.path().join("b/mod.rs"),
        "// crate::c\nfn f() { crate::a::y(); }\n",
    )
    .unwrap();
    std::fs::write(d.path().join("c.rs"), "use crate::{a, b};\n").unwrap();
    let g = module_graph(d.path(), "crate::");
    assert_eq!(g["a"], BTreeSet::from(["b".to_string()]));
    assert_eq!(g["b"], BTreeSet::from(["a".to_string()]));
    assert_eq!(g["c"], BTreeSet::from(["a".to_string(), "b".to_string()]));
    assert_eq!(circles(&g), vec!["a -> b -> a".to_string()]);
}
