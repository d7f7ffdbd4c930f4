//! Checks over the repository itself rather than over mkrescue's
//! behaviour: things a review would miss and a build would not catch.
//!
//! Each check is a `#[test]` that collects [`Finding`]s (file, line, what is
//! wrong and how to fix it) and hands them to [`assert_none`], which fails
//! with all of them at once. To add a check, write a function over
//! [`tracked_text_files`] (or over the files it needs) returning findings,
//! and a `#[test]` calling `assert_none`.

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
