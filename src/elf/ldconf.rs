//! `/etc/ld.so.conf` and the files it includes: the directories ldconfig(8)
//! indexes into ld.so.cache. ld.so itself never reads them; the resolver
//! searches them only after a cache miss, for a cache that is older than the
//! libraries (a library installed without running ldconfig).
//!
//! Syntax as ldconfig's `parse_conf` reads it: `#` starts a comment; a line
//! `include PATTERN...` reads every file the glob(3) patterns match (sorted;
//! a relative pattern is relative to the including file's directory); a
//! `hwcap ...` line is obsolete and ignored; any other non-empty line is one
//! directory (an old `DIR=TYPE` suffix is dropped).

use std::path::{Path, PathBuf};

use super::root::Root;

/// Includes nest at most this deep (guards against include cycles).
const MAX_DEPTH: usize = 16;

/// The directories `conf` (absolute, as seen from root) lists, in order,
/// without duplicates. A missing or unreadable file lists nothing.
pub fn dirs(root: &Root, conf: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    read(root, conf, 0, &mut out);
    let mut seen = std::collections::HashSet::new();
    out.retain(|d| seen.insert(d.clone()));
    out
}

fn read(root: &Root, conf: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if depth > MAX_DEPTH {
        log::warn!("{}: includes nest too deep, ignored", conf.display());
        return;
    }
    let Some(text) = root
        .host(conf)
        .and_then(|h| std::fs::read_to_string(h).ok())
    else {
        return;
    };
    let base = conf.parent().unwrap_or(Path::new("/"));
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        match words.next() {
            None => {}
            Some("include") => {
                for pattern in words {
                    for file in glob(root, &base.join(pattern)) {
                        read(root, &file, depth + 1, out);
                    }
                }
            }
            Some(w) if w.eq_ignore_ascii_case("hwcap") => {}
            Some(_) => {
                let dir = line.split('=').next().unwrap_or(line).trim_end();
                // ldconfig accepts relative directories relative to its own
                // working directory; nothing sensible to do with them here.
                if dir.starts_with('/') {
                    // "/usr/lib/" and "/usr/lib" are one directory.
                    let trimmed = dir.trim_end_matches('/');
                    out.push(PathBuf::from(if trimmed.is_empty() {
                        "/"
                    } else {
                        trimmed
                    }));
                }
            }
        }
    }
}

/// glob(3) for an absolute pattern below root: `*`, `?` and `[...]` in any
/// component; names starting with `.` only match a pattern starting with
/// `.`; results sorted.
pub fn glob(root: &Root, pattern: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::from("/")];
    for comp in pattern.components().skip(1) {
        let comp = comp.as_os_str().to_string_lossy();
        let mut next = Vec::new();
        for dir in &found {
            if !has_magic(&comp) {
                let p = dir.join(comp.as_ref());
                if root.host(&p).is_some() {
                    next.push(p);
                }
                continue;
            }
            let Some(host) = root.host(dir) else { continue };
            let Ok(entries) = std::fs::read_dir(host) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') && !comp.starts_with('.') {
                    continue;
                }
                if fnmatch(comp.as_bytes(), name.as_bytes()) {
                    next.push(dir.join(name.as_ref()));
                }
            }
        }
        found = next;
    }
    found.sort();
    found
}

fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// fnmatch(3) without flags, for one path component.
pub fn fnmatch(pat: &[u8], name: &[u8]) -> bool {
    match pat.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| fnmatch(rest, &name[i..])),
        Some((b'?', rest)) => !name.is_empty() && fnmatch(rest, &name[1..]),
        Some((b'[', rest)) => {
            let Some((&c, name_rest)) = name.split_first() else {
                return false;
            };
            match bracket(rest, c) {
                Some((matched, after)) => matched && fnmatch(after, name_rest),
                // No closing `]`: the `[` is an ordinary character.
                None => c == b'[' && fnmatch(rest, name_rest),
            }
        }
        Some((&p, rest)) => name.first() == Some(&p) && fnmatch(rest, &name[1..]),
    }
}

/// Matches `c` against a bracket expression whose body starts at `pat`
/// (after the `[`); returns whether it matched and the pattern after `]`.
fn bracket(pat: &[u8], c: u8) -> Option<(bool, &[u8])> {
    let (negate, mut i) = match pat.first() {
        Some(b'!') | Some(b'^') => (true, 1),
        _ => (false, 0),
    };
    let mut matched = false;
    let mut first = true;
    loop {
        let &p = pat.get(i)?;
        if p == b']' && !first {
            return Some((matched != negate, &pat[i + 1..]));
        }
        first = false;
        if pat.get(i + 1) == Some(&b'-') && pat.get(i + 2).is_some_and(|&e| e != b']') {
            let hi = pat[i + 2];
            matched |= (p..=hi).contains(&c);
            i += 3;
        } else {
            matched |= p == c;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_basics() {
        assert!(fnmatch(b"*.conf", b"libc.conf"));
        assert!(!fnmatch(b"*.conf", b"libc.conf.bak"));
        assert!(fnmatch(b"lib?.so", b"libz.so"));
        assert!(fnmatch(b"x[0-9]y", b"x5y"));
        assert!(!fnmatch(b"x[!0-9]y", b"x5y"));
        assert!(fnmatch(b"a[", b"a["));
        assert!(fnmatch(b"*", b""));
    }

    #[test]
    fn includes_globs_and_comments() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("etc/ld.so.conf.d")).unwrap();
        std::fs::write(
            r.join("etc/ld.so.conf"),
            "# comment\n/opt/first/\ninclude /etc/ld.so.conf.d/*.conf\nhwcap 0 nosegneg\n/usr/local/lib=libc6 # old syntax\nrelative/dir\ninclude ld.so.conf\n",
        )
        .unwrap();
        std::fs::write(r.join("etc/ld.so.conf.d/b.conf"), "/b\n").unwrap();
        std::fs::write(r.join("etc/ld.so.conf.d/a.conf"), "/a\n/opt/first\n").unwrap();
        std::fs::write(r.join("etc/ld.so.conf.d/.hidden.conf"), "/hidden\n").unwrap();
        std::fs::write(r.join("etc/ld.so.conf.d/c.conf.dpkg-old"), "/old\n").unwrap();
        let got = dirs(&Root::new(r), Path::new("/etc/ld.so.conf"));
        let want: Vec<PathBuf> = ["/opt/first", "/a", "/b", "/usr/local/lib"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(got, want);
    }
}
