//! btrfs subvolumes nested in a backed-up tree (issue 19): a subvolume
//! has a device number of its own, so a walk that stays on one file
//! system by st_dev alone (`tar --one-file-system`, `find -xdev`) would
//! skip it and lose its files without a word. The backup walks a nested
//! writable subvolume (and one nested in that), keeps a read-only one (a
//! snapshot) empty with a warning, and still stops at a real mount point.
//!
//! On a btrfs file system in a file on a loop device (a temp dir, never
//! this machine's disks). Needs root (losetup, mount) and btrfs-progs,
//! like CI.

use std::path::Path;
use std::process::Command;

use crate::support::backup::*;

/// A btrfs file system on a loop device, mounted; undone on drop (also when
/// an assertion fails).
struct LoopBtrfs {
    dev: String,
    mnt: std::path::PathBuf,
}

impl LoopBtrfs {
    fn new(img: &Path, mnt: &Path) -> LoopBtrfs {
        // mkfs.btrfs(8) wants at least 109 MiB for a single device; the
        // file is sparse.
        run("truncate", &[os("-s"), os("160M"), img.as_os_str()]);
        run("mkfs.btrfs", &[os("-q"), os("-f"), img.as_os_str()]);
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(img)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dev = String::from_utf8(out.stdout).unwrap().trim().to_string();
        std::fs::create_dir_all(mnt).unwrap();
        let l = LoopBtrfs {
            dev,
            mnt: mnt.to_path_buf(),
        };
        run(
            "mount",
            &[os("-t"), os("btrfs"), os(&l.dev), mnt.as_os_str()],
        );
        l
    }
}

impl Drop for LoopBtrfs {
    fn drop(&mut self) {
        let quiet = || std::process::Stdio::null();
        let _ = Command::new("umount")
            .arg("-R")
            .arg(&self.mnt)
            .stderr(quiet())
            .status();
        let _ = Command::new("losetup")
            .arg("-d")
            .arg(&self.dev)
            .stderr(quiet())
            .status();
    }
}

fn subvolume(args: &[&std::ffi::OsStr]) {
    let mut all = vec![os("subvolume")];
    all.extend_from_slice(args);
    run("btrfs", &all);
}

#[test]
fn nested_subvolumes_are_backed_up_and_snapshots_are_not() {
    assert!(
        mkrescue::sys::host::is_root(),
        "this test needs root (losetup, mount); run it as root like CI does"
    );
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let fs = LoopBtrfs::new(&t.join("btrfs.img"), &t.join("mnt"));
    let m = &fs.mnt;
    // The tree backed up: a file in the top level, a subvolume `srv` with
    // one nested in it, a read-only snapshot of `srv`, and a tmpfs mount
    // point (another file system, kept empty).
    std::fs::write(m.join("top-file"), "top\n").unwrap();
    subvolume(&[os("create"), m.join("srv").as_os_str()]);
    std::fs::write(m.join("srv/data"), noise(3, 200_000)).unwrap();
    subvolume(&[os("create"), m.join("srv/nested").as_os_str()]);
    std::fs::create_dir(m.join("srv/nested/deeper")).unwrap();
    std::fs::write(m.join("srv/nested/deeper/file"), "in a nested subvolume\n").unwrap();
    subvolume(&[
        os("snapshot"),
        os("-r"),
        m.join("srv").as_os_str(),
        m.join("snap").as_os_str(),
    ]);
    std::fs::create_dir(m.join("elsewhere")).unwrap();
    run(
        "mount",
        &[
            os("-t"),
            os("tmpfs"),
            os("tmpfs"),
            m.join("elsewhere").as_os_str(),
        ],
    );
    std::fs::write(m.join("elsewhere/other-fs"), "not ours\n").unwrap();

    let target = t.join("backups");
    std::fs::create_dir(&target).unwrap();
    let out = mkrescue(&[
        os("--json"),
        os("backup"),
        os("--root"),
        m.as_os_str(),
        os("--target"),
        os(&format!("file://{}", target.display())),
    ]);
    let report = ok(&out);
    assert!(
        report.contains("read-only btrfs subvolume (a snapshot)") && report.contains("snap"),
        "no warning about the snapshot: {report}"
    );

    let restored = t.join("restored");
    std::fs::create_dir(&restored).unwrap();
    ok(&mkrescue(&[
        os("restore"),
        os("--from"),
        os(&format!("file://{}", target.display())),
        os("--to"),
        restored.as_os_str(),
    ]));
    // The nested subvolumes' files came back, byte for byte.
    assert_eq!(
        std::fs::read(restored.join("srv/data")).unwrap(),
        noise(3, 200_000)
    );
    assert_eq!(
        std::fs::read_to_string(restored.join("srv/nested/deeper/file")).unwrap(),
        "in a nested subvolume\n"
    );
    assert_eq!(
        std::fs::read_to_string(restored.join("top-file")).unwrap(),
        "top\n"
    );
    // The snapshot and the mount point: the directories, empty.
    for d in ["snap", "elsewhere"] {
        assert!(restored.join(d).is_dir(), "{d} not restored as a directory");
        assert!(
            dir_names(&restored.join(d)).is_empty(),
            "{d} restored with contents: {:?}",
            dir_names(&restored.join(d))
        );
    }
}
