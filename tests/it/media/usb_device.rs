//! `--output usb --device` refuses a device that is not removable or is
//! mounted, before building anything, and names what it would erase. Uses a
//! loop device of a temporary file (needs root, like CI); never a real disk.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Loop {
    dev: PathBuf,
    mnt: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Drop for Loop {
    fn drop(&mut self) {
        if let Some(m) = &self.mnt {
            let _ = Command::new("umount").arg(m).status();
        }
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

fn loop_device(with_fs: bool) -> Loop {
    assert!(
        mkrescue::sys::host::is_root(),
        "these tests need root (losetup); run them as root like CI does"
    );
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let out = Command::new("losetup")
        .args(["--find", "--show"])
        .arg(&img)
        .output()
        .expect("losetup");
    assert!(
        out.status.success(),
        "losetup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dev = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let mut l = Loop {
        dev,
        mnt: None,
        _dir: dir,
    };
    if with_fs {
        assert!(
            Command::new("mkfs.ext4")
                .args(["-q", "-L", "PRECIOUS"])
                .arg(&l.dev)
                .status()
                .unwrap()
                .success()
        );
        let mnt = l._dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        assert!(
            Command::new("mount")
                .arg(&l.dev)
                .arg(&mnt)
                .status()
                .unwrap()
                .success()
        );
        l.mnt = Some(mnt);
    }
    l
}

fn mkrescue(dev: &Path, out: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .args([
            "--config-dir",
            "/nonexistent-mkrescue-test",
            "--output",
            "usb",
            "--device",
        ])
        .arg(dev)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn first_sector(dev: &Path) -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    use std::io::Read;
    std::fs::File::open(dev)
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    b
}

#[test]
fn non_removable_device_is_refused_without_force() {
    let l = loop_device(false);
    let dir = tempfile::tempdir().unwrap();
    let before = first_sector(&l.dev);
    let out = mkrescue(&l.dev, &dir.path().join("out"), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    // Item 12 of the first-hour issue: a refusal for the device's state
    // is exit 1, not 2 ("wrong command line").
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with(&format!(
            "mkrescue: error: refusing to write {}: it is not a removable disk",
            l.dev.display()
        )),
        "{err}"
    );
    assert!(err.contains("not a removable disk"), "{err}");
    assert!(err.contains("--force"), "{err}");
    // It says what the device is.
    assert!(err.contains(&l.dev.display().to_string()), "{err}");
    assert!(!dir.path().join("out").exists(), "nothing may be built");
    assert_eq!(first_sector(&l.dev), before);
}

#[test]
fn mounted_device_is_refused_even_with_force() {
    let l = loop_device(true);
    let dir = tempfile::tempdir().unwrap();
    let out = mkrescue(&l.dev, &dir.path().join("out"), &["--force"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("mounted"), "{err}");
    assert!(
        err.contains(&l.mnt.as_ref().unwrap().display().to_string()),
        "{err}"
    );
    assert!(!dir.path().join("out").exists());
}

#[test]
fn forced_dry_run_names_what_it_would_erase() {
    let l = loop_device(true);
    let mnt = l.mnt.clone().unwrap();
    // Unmount: a file system that is there but not mounted is what gets erased.
    assert!(Command::new("umount").arg(&mnt).status().unwrap().success());
    let dir = tempfile::tempdir().unwrap();
    let before = first_sector(&l.dev);
    let out = mkrescue(
        &l.dev,
        &dir.path().join("out"),
        &["--force", "--dry-run", "--modules", "host"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("would erase everything on"), "{err}");
    assert!(err.contains("PRECIOUS"), "{err}");
    assert_eq!(first_sector(&l.dev), before, "dry run wrote to the device");
}

#[test]
fn partition_and_regular_file_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("file.img");
    std::fs::write(&f, b"x").unwrap();
    let out = mkrescue(&f, &dir.path().join("out"), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not a block device"), "{err}");
    assert!(err.contains("--image"), "{err}");
}
