//! Paths "as seen from root": the resolver works on absolute paths of the
//! system below `root` (`/` for the host, a temp sysroot in tests). For the
//! host the kernel follows symlinks for us; below any other root an absolute
//! symlink such as `/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/...`
//! must be followed inside the root, not on the host, so this module walks
//! such paths itself.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// Linux gives up after 40 symlinks in one lookup (path_resolution(7)).
const MAX_SYMLINKS: usize = 40;

#[derive(Debug, Clone)]
pub struct Root {
    dir: PathBuf,
    is_host: bool,
}

impl Root {
    pub fn new(dir: &Path) -> Root {
        let is_host =
            dir == Path::new("/") || std::fs::canonicalize(dir).is_ok_and(|c| c == Path::new("/"));
        Root {
            dir: dir.to_path_buf(),
            is_host,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The host path to open for `p` (absolute, as seen from root), with every
    /// symlink resolved inside root. `None` if some component does not exist.
    pub fn host(&self, p: &Path) -> Option<PathBuf> {
        if self.is_host {
            return Some(p.to_path_buf());
        }
        let real = self.real(p)?;
        Some(self.join(&real))
    }

    /// The host path for `p` without resolving symlinks (for error messages
    /// and for directory listings whose entries are resolved afterwards).
    pub fn join(&self, p: &Path) -> PathBuf {
        match p.strip_prefix("/") {
            Ok(rel) => self.dir.join(rel),
            Err(_) => self.dir.join(p),
        }
    }

    /// `p` with every symlink resolved, as seen from root: what
    /// realpath(3) would say inside the rescue system.
    pub fn canonical(&self, p: &Path) -> Option<PathBuf> {
        if self.is_host {
            return std::fs::canonicalize(p).ok();
        }
        self.real(p)
    }

    /// Resolves `p` component by component, restarting at root for absolute
    /// link targets and never climbing above it (`..` at root stays there,
    /// as the kernel does for a chroot).
    fn real(&self, p: &Path) -> Option<PathBuf> {
        let mut pending: Vec<OsString> = Vec::new();
        push_components(&mut pending, p);
        let mut cur = PathBuf::from("/");
        let mut links = 0;
        while let Some(name) = pending.pop() {
            if name == ".." {
                cur.pop();
                continue;
            }
            let next = cur.join(&name);
            let host = self.join(&next);
            let meta = std::fs::symlink_metadata(&host).ok()?;
            if meta.file_type().is_symlink() {
                links += 1;
                if links > MAX_SYMLINKS {
                    return None;
                }
                let target = std::fs::read_link(&host).ok()?;
                if target.is_absolute() {
                    cur = PathBuf::from("/");
                }
                push_components(&mut pending, &target);
            } else {
                cur = next;
            }
        }
        Some(cur)
    }
}

/// Pushes the components of `p` so that popping yields them in order.
fn push_components(stack: &mut Vec<OsString>, p: &Path) {
    let start = stack.len();
    for c in p.components() {
        match c {
            Component::Normal(n) => stack.push(n.to_os_string()),
            Component::ParentDir => stack.push("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    stack[start..].reverse();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn absolute_symlinks_stay_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("usr/lib/x")).unwrap();
        std::fs::write(r.join("usr/lib/x/ld.so"), b"x").unwrap();
        symlink("usr/lib", r.join("lib")).unwrap();
        std::fs::create_dir_all(r.join("lib64-dir")).unwrap();
        symlink("/lib/x/ld.so", r.join("lib64-dir/ld.so")).unwrap();
        symlink("../../../../x/ld.so", r.join("usr/lib/x/up")).unwrap();
        let root = Root::new(r);
        assert_eq!(
            root.canonical(Path::new("/lib64-dir/ld.so")).unwrap(),
            Path::new("/usr/lib/x/ld.so")
        );
        assert_eq!(
            root.host(Path::new("/lib64-dir/ld.so")).unwrap(),
            r.join("usr/lib/x/ld.so")
        );
        // `..` above root stays at root: /x/ld.so does not exist.
        assert!(root.host(Path::new("/usr/lib/x/up")).is_none());
        assert!(root.host(Path::new("/nonexistent")).is_none());
    }

    #[test]
    fn symlink_loops_end() {
        let t = tempfile::tempdir().unwrap();
        symlink("b", t.path().join("a")).unwrap();
        symlink("a", t.path().join("b")).unwrap();
        assert!(Root::new(t.path()).host(Path::new("/a")).is_none());
    }
}
