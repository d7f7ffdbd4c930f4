//! The backup location recorded in the rescue image and found again in the
//! rescue system: a backup on an ext4 partition of a loop device (a temp
//! file, never this machine's disks) is recorded by the rescue build with
//! the filesystem's UUID; with that filesystem unmounted, `restore` without
//! `--from` mounts it read-only by UUID, restores an identical tree and
//! unmounts it again; `open_source` names the loop device as the disk that
//! holds the backup; a detached backup disk gets one clear error.
//!
//! Needs root (losetup, mount), like CI.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::backup::*;
use mkrescue::backup::source;

/// A loop device with one GPT partition holding ext4, mounted; undone on
/// drop (also when an assertion fails).
struct LoopFs {
    dev: String,
    part: String,
    mnt: PathBuf,
    attached: bool,
}

impl LoopFs {
    fn new(img: &Path, mnt: &Path) -> LoopFs {
        Command::new("truncate")
            .args(["-s", "64M"])
            .arg(img)
            .status()
            .unwrap();
        let mut sf = Command::new("sfdisk")
            .arg("-q")
            .arg(img)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        sf.stdin
            .take()
            .unwrap()
            .write_all(b"label: gpt\n,\n")
            .unwrap();
        assert!(sf.wait().unwrap().success());
        let out = Command::new("losetup")
            .args(["-f", "--show", "-P"])
            .arg(img)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dev = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let lfs = LoopFs {
            part: format!("{dev}p1"),
            dev,
            mnt: mnt.to_path_buf(),
            attached: true,
        };
        // Without udev (containers, this CI) -P may leave the partition
        // node to be added by hand.
        if !Path::new(&lfs.part).exists() {
            run("partx", &[os("-a"), os(&lfs.dev)]);
        }
        run(
            "mkfs.ext4",
            &[os("-q"), os("-L"), os("MKRBK"), os(&lfs.part)],
        );
        std::fs::create_dir_all(mnt).unwrap();
        run("mount", &[os(&lfs.part), mnt.as_os_str()]);
        lfs
    }

    fn uuid(&self) -> String {
        let out = Command::new("blkid")
            .args(["-p", "-s", "UUID", "-o", "value", &self.part])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn umount(&self) {
        run("umount", &[self.mnt.as_os_str()]);
    }

    fn detach(&mut self) {
        run("losetup", &[os("-d"), os(&self.dev)]);
        self.attached = false;
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let quiet = || std::process::Stdio::null();
        let _ = Command::new("umount")
            .arg(&self.mnt)
            .stderr(quiet())
            .status();
        if self.attached {
            let _ = Command::new("losetup")
                .arg("-d")
                .arg(&self.dev)
                .stderr(quiet())
                .status();
        }
    }
}

/// Whether `dir` is a mount point now.
fn is_mountpoint(dir: &Path) -> bool {
    Command::new("findmnt")
        .arg("-M")
        .arg(dir)
        .output()
        .unwrap()
        .status
        .success()
}

fn mount_options(dir: &Path) -> String {
    let out = Command::new("findmnt")
        .args(["-n", "-o", "OPTIONS", "-M"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

fn error_line(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("mkrescue: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    errors[0].to_string()
}

#[test]
fn recorded_backup_disk_is_found_by_uuid_in_the_rescue_system() {
    assert!(
        mkrescue::sys::host::is_root(),
        "this test needs root (losetup, mount); run it as root like CI does"
    );
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mnt = t.join("mnt");
    let mut disk = LoopFs::new(&t.join("disk.img"), &mnt);
    let uuid = disk.uuid();
    assert!(!uuid.is_empty());

    // The host: a small tree backed up to the loop filesystem.
    let src = t.join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/hostname"), "srchost\n").unwrap();
    std::fs::write(src.join("etc/data"), noise(7, 300_000)).unwrap();
    std::fs::create_dir_all(src.join("home/u")).unwrap();
    std::fs::write(src.join("home/u/notes"), "kept\n").unwrap();
    let target = format!("file://{}/backups", mnt.display());
    std::fs::create_dir(mnt.join("backups")).unwrap();
    ok(&mkrescue(&[
        os("backup"),
        os("--root"),
        src.as_os_str(),
        os("--target"),
        os(&target),
    ]));

    // The rescue build records the location with the filesystem's UUID.
    let cfg = t.join("cfg.toml");
    std::fs::write(&cfg, format!("[backup]\ntarget = \"{target}\"\n")).unwrap();
    let out_dir = t.join("out");
    ok(&mkrescue(&[
        os("--config"),
        cfg.as_os_str(),
        os("--output"),
        os("initramfs"),
        os("--compress"),
        os("none"),
        os("--out"),
        out_dir.as_os_str(),
    ]));
    let cpio = std::fs::File::open(out_dir.join("initrd.img")).unwrap();
    let out = Command::new("cpio")
        .args(["-i", "--quiet", "--to-stdout", "*etc/mkrescue/backup.json"])
        .stdin(cpio)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rec["method"], "archive");
    assert_eq!(rec["target"], target.as_str());
    assert_eq!(rec["filesystem"]["uuid"], uuid.as_str());
    assert_eq!(rec["filesystem"]["label"], "MKRBK");
    assert_eq!(rec["filesystem"]["fstype"], "ext4");
    assert_eq!(rec["filesystem"]["path"], "backups");

    // The rescue system: nothing mounted, the record in its /etc.
    disk.umount();
    let rescue = t.join("rescue");
    let rec_path = rescue.join(source::RECORD_PATH.trim_start_matches('/'));
    std::fs::create_dir_all(rec_path.parent().unwrap()).unwrap();
    std::fs::write(&rec_path, &out.stdout).unwrap();
    let mount_dir = rescue.join(source::MOUNT_DIR.trim_start_matches('/'));

    let restored = t.join("restored");
    std::fs::create_dir(&restored).unwrap();
    ok(&mkrescue(&[
        os("restore"),
        os("--root"),
        rescue.as_os_str(),
        os("--to"),
        restored.as_os_str(),
    ]));
    assert_same(&facts(&src), &facts(&restored));
    assert!(
        !is_mountpoint(&mount_dir),
        "restore left {} mounted",
        mount_dir.display()
    );

    // list and verify there find it the same way.
    let listed: serde_json::Value = serde_json::from_str(&ok(&mkrescue(&[
        os("backup"),
        os("list"),
        os("--root"),
        rescue.as_os_str(),
        os("--json"),
    ])))
    .unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["host"], "srchost");
    ok(&mkrescue(&[
        os("backup"),
        os("verify"),
        os("--root"),
        rescue.as_os_str(),
    ]));
    assert!(!is_mountpoint(&mount_dir));

    // What recover calls: the URL restore takes and the disk to spare.
    // (config files: none, as on a rescue system without local.toml)
    let cfg = mkrescue::config::Config::default();
    let mut opened = source::open_source(&rescue, &cfg, None).unwrap();
    assert_eq!(
        opened.url,
        format!("file://{}/backups", mount_dir.display())
    );
    assert_eq!(opened.disks, vec![disk.dev.clone()]);
    assert_eq!(opened.mounted.as_deref(), Some(mount_dir.as_path()));
    let opts = mount_options(&mount_dir);
    assert!(opts.split(',').any(|o| o == "ro"), "mounted {opts}");
    // Opened again while mounted: the same place, nothing mounted twice.
    let again = source::open_source(&rescue, &cfg, None).unwrap();
    assert_eq!(again.url, opened.url);
    assert_eq!(again.mounted, None);
    assert_eq!(again.disks, opened.disks);
    // A --from URL wins; its disks are named too.
    let given = source::open_source(
        &rescue,
        &cfg,
        Some(&format!("file://{}", mount_dir.display())),
    )
    .unwrap();
    assert_eq!(given.disks, vec![disk.dev.clone()]);
    assert_eq!(given.mounted, None);
    opened.close().unwrap();
    assert!(!is_mountpoint(&mount_dir));

    // The backup disk is gone: one line naming the filesystem and the fix.
    disk.detach();
    let out = mkrescue(&[
        os("restore"),
        os("--root"),
        rescue.as_os_str(),
        os("--to"),
        restored.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(4));
    let e = error_line(&out);
    assert!(
        e.contains(&format!("backup filesystem UUID={uuid}"))
            && e.contains("not found: attach the backup disk or give --from URL"),
        "{e}"
    );
}
