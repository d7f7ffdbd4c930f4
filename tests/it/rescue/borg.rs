//! A rescue image built for a host whose backup method is borg carries a
//! borg that works: in a chroot of the extracted image, `borg --version`,
//! then a real `borg init --encryption=none`, `borg create` and `borg
//! extract` of a small tree, and `mkrescue restore --method borg` (what
//! recover runs) from the same repository; the restored trees match. An
//! image built for the archive method carries neither borg nor Python.
//!
//! Needs root (chroot, bind mounts) and Debian's borgbackup; without
//! borgbackup the test says so and passes (CI installs it: xtask deps).

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::backup::mkrescue;

fn check(what: &str, out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({}): {err}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds an uncompressed initramfs with `config` and extracts it with
/// GNU cpio into `dir/tree`; returns the tree and the image's size.
fn image(dir: &Path, config: &str) -> (PathBuf, u64) {
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, config).unwrap();
    let out = dir.join("out");
    check(
        "mkrescue --output initramfs",
        &mkrescue(&[
            OsStr::new("--config"),
            cfg.as_os_str(),
            OsStr::new("--output"),
            OsStr::new("initramfs"),
            OsStr::new("--compress"),
            OsStr::new("none"),
            OsStr::new("--out"),
            out.as_os_str(),
        ]),
    );
    let img = out.join("initrd.img");
    let tree = dir.join("tree");
    std::fs::create_dir(&tree).unwrap();
    let st = Command::new("cpio")
        .args(["-idm", "--quiet", "--no-absolute-filenames"])
        .current_dir(&tree)
        .stdin(std::fs::File::open(&img).unwrap())
        .status()
        .expect("GNU cpio (apt-get install cpio)");
    assert!(st.success(), "cpio -idm failed");
    (tree, std::fs::metadata(&img).unwrap().len())
}

/// Bind mounts in the chroot, undone on drop (also when a check fails).
struct Mounts(Vec<PathBuf>);

impl Drop for Mounts {
    fn drop(&mut self) {
        for p in self.0.iter().rev() {
            let st = Command::new("umount").arg(p).status();
            if !st.is_ok_and(|s| s.success()) {
                let _ = Command::new("umount").arg("-l").arg(p).status();
            }
        }
    }
}

fn mount(tree: &Path, mounts: &mut Mounts, args: &[&str], at: &str) {
    let p = tree.join(at);
    std::fs::create_dir_all(&p).unwrap();
    let st = Command::new("mount").args(args).arg(&p).status().unwrap();
    assert!(st.success(), "mount {args:?} {}", p.display());
    mounts.0.push(p);
}

/// Runs `cmd` in the chroot with the rescue system's plain environment
/// (none of this host's, e.g. a PYTHONPATH).
fn chroot(tree: &Path, cmd: &str) -> String {
    let out = Command::new("chroot")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", "/root")
        .env("BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK", "yes")
        .arg(tree)
        .args(["/bin/sh", "-c", cmd])
        .output()
        .expect("chroot");
    check(&format!("in the chroot: {cmd}"), &out)
}

/// Path → (kind, size, mode, content) below `root`, hard links as one
/// inode group.
fn facts(root: &Path) -> Vec<(String, char, u64, u32, Vec<u8>, u64)> {
    let mut v = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let (kind, content) = if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            ('d', Vec::new())
        } else if m.file_type().is_symlink() {
            (
                'l',
                std::fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes(),
            )
        } else {
            ('f', std::fs::read(&p).unwrap())
        };
        let size = if kind == 'f' { m.len() } else { 0 };
        let nlink = if kind == 'f' { m.nlink() } else { 0 };
        v.push((rel, kind, size, m.mode() & 0o7777, content, nlink));
    }
    v.sort();
    v
}

#[test]
fn borg_runs_in_the_rescue_image() {
    if !Path::new("/usr/bin/borg").exists() {
        eprintln!(
            "SKIPPED: borgbackup is not installed (apt-get install borgbackup; `cargo xtask deps` installs it)"
        );
        return;
    }
    assert!(
        mkrescue::sys::host::is_root(),
        "this test needs root (chroot, bind mounts); run it as root like CI does"
    );
    let tmp = tempfile::tempdir().unwrap();
    let (tree, with_borg) = image(
        tmp.path(),
        "[backup]\nmethod = \"borg\"\nborg_repo = \"/srv/repo\"\n",
    );
    assert!(tree.join("usr/bin/borg").is_file());

    let mut mounts = Mounts(Vec::new());
    mount(&tree, &mut mounts, &["--bind", "/dev"], "dev");
    mount(&tree, &mut mounts, &["-t", "proc", "proc"], "proc");
    mount(&tree, &mut mounts, &["-t", "tmpfs", "tmpfs"], "tmp");

    let version = chroot(&tree, "borg --version");
    let host = Command::new("borg").arg("--version").output().unwrap();
    assert_eq!(version, String::from_utf8_lossy(&host.stdout));

    // A small tree with what a restore must keep.
    let src = tree.join("tmp/src");
    std::fs::create_dir_all(src.join("etc/sub")).unwrap();
    std::fs::write(src.join("etc/hostname"), "rescued\n").unwrap();
    std::fs::write(src.join("etc/sub/big"), vec![7u8; 3 << 20]).unwrap();
    std::fs::write(src.join("etc/secret"), "s").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        src.join("etc/secret"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::hard_link(src.join("etc/hostname"), src.join("etc/sub/link")).unwrap();
    std::os::unix::fs::symlink("../hostname", src.join("etc/sub/rel")).unwrap();

    chroot(
        &tree,
        "set -e; borg init --encryption=none /tmp/repo; \
         cd /tmp/src && borg create /tmp/repo::t .; \
         mkdir /tmp/out && cd /tmp/out && borg extract /tmp/repo::t",
    );
    let want = facts(&src);
    assert!(want.len() >= 7, "{want:?}");
    assert_eq!(facts(&tree.join("tmp/out")), want);

    // What recover runs: mkrescue's own restore with the borg method.
    chroot(
        &tree,
        "mkdir /tmp/out2 && mkrescue restore --method borg --from /tmp/repo --to /tmp/out2 --quiet",
    );
    assert_eq!(facts(&tree.join("tmp/out2")), want);
    drop(mounts);

    // Without borg as the method, no borg and no Python.
    let other = tmp.path().join("archive");
    std::fs::create_dir(&other).unwrap();
    let (plain, without) = image(&other, "[backup]\ntarget = \"file:///srv/backup\"\n");
    assert!(!plain.join("usr/bin/borg").exists());
    assert!(!plain.join("usr/lib/python3/dist-packages/borg").exists());
    assert!(
        !std::fs::read_dir(plain.join("usr/lib")).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("python3")),
        "python in an image without borg"
    );
    assert!(without < with_borg, "{without} >= {with_borg}");
}
