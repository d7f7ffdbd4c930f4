//! What the Debian package ships from packaging/deb/ (`cargo xtask deb`
//! packs it and checks the .deb itself): the example configuration reads
//! with the real loader, the kernel hook rebuilds the rescue system and
//! never fails a kernel's installation, and systemd accepts the units.
//! Nothing here writes outside temporary directories: the hook gets a
//! fake `mkrescue` first in PATH and MKRESCUE_ROOT for its mark.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn packaging(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging/deb")
        .join(file)
}

/// A root whose host facts `dump` can read without this machine's /boot.
fn fake_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("boot")).unwrap();
    std::fs::write(root.join("boot/vmlinuz-6.1.0-test"), b"").unwrap();
    std::fs::create_dir_all(root.join("lib/modules/6.1.0-test")).unwrap();
    std::fs::write(root.join("lib/modules/6.1.0-test/modules.dep"), b"").unwrap();
    root
}

fn dump(config_dir: &Path, root: &Path, json: bool) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mkrescue"));
    c.arg("dump")
        .arg("--config-dir")
        .arg(config_dir)
        .arg("--root")
        .arg(root)
        .env_remove("SOURCE_DATE_EPOCH");
    if json {
        c.arg("--json");
    }
    c.output().unwrap()
}

/// /etc/mkrescue/local.toml as shipped (every key commented out) and with
/// every example key set: both read with the loader every command uses
/// (unknown keys, types and values checked), and the set keys arrive.
#[test]
fn example_local_toml_parses_as_shipped_and_with_every_key_set() {
    let dir = tempfile::tempdir().unwrap();
    let root = fake_root(dir.path());
    let text = std::fs::read_to_string(packaging("local.toml")).unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("local.toml"), &text).unwrap();
    let out = dump(&etc, &root, true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An example key is "#name = value" (no space after '#'); prose is "# ...".
    let mut keys = 0;
    let set: String = text
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(k) if k.starts_with(|c: char| c.is_ascii_lowercase()) && k.contains(" = ") => {
                keys += 1;
                format!("{k}\n")
            }
            _ => format!("{l}\n"),
        })
        .collect();
    assert!(keys > 40, "only {keys} example keys found");
    std::fs::write(etc.join("local.toml"), &set).unwrap();
    let out = dump(&etc, &root, true);
    assert!(
        out.status.success(),
        "{}\n{set}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &j["config"];
    assert_eq!(c["backup"]["target"], "file:///srv/backup");
    assert_eq!(c["backup"]["mail_to"][0], "admin@example.com");
    assert_eq!(c["build"]["output"], "iso");
    assert_eq!(c["recover"]["initramfs"], "auto");
}

/// `dir`/bin/mkrescue, a shell script with `body`; returns `dir`/bin.
fn mkrescue_script(dir: &Path, body: &str) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let f = bin.join("mkrescue");
    std::fs::write(&f, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// A directory with a `mkrescue` that logs its arguments and exits `code`.
fn fake_mkrescue(dir: &Path, code: i32) -> PathBuf {
    mkrescue_script(
        dir,
        &format!(
            "echo \"$*\" >> {}\necho 'mkrescue: error: no space left on /var' >&2\nexit {code}\n",
            dir.join("calls").display()
        ),
    )
}

/// The hook installed as /etc/kernel/`event`/zz-mkrescue below `dir` (its
/// name tells it whether a kernel came or went), run as the kernel
/// packages run it.
fn run_hook(dir: &Path, event: &str, path_first: Option<&Path>, root: &Path) -> Output {
    run_hook_for(dir, event, path_first, root, "6.1.0-99-amd64")
}

/// [`run_hook`] for kernel `kver`.
fn run_hook_for(
    dir: &Path,
    event: &str,
    path_first: Option<&Path>,
    root: &Path,
    kver: &str,
) -> Output {
    let hook = dir.join("etc/kernel").join(event).join("zz-mkrescue");
    std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
    std::fs::copy(packaging("kernel-hook"), &hook).unwrap();
    let path = match path_first {
        Some(p) => format!("{}:/usr/bin:/bin", p.display()),
        None => "/usr/bin:/bin".into(),
    };
    Command::new(&hook)
        .args([kver, &format!("/boot/vmlinuz-{kver}")])
        .env("PATH", path)
        .env("MKRESCUE_ROOT", root)
        .output()
        .unwrap()
}

#[test]
fn kernel_hook_rebuilds_for_the_new_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let bin = fake_mkrescue(dir.path(), 0);
    let out = run_hook(dir.path(), "postinst.d", Some(&bin), &root);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
    assert_eq!(calls, "-q --kernel-version 6.1.0-99-amd64\n");
    assert!(!root.join("var/lib/mkrescue/kernel-hook-failed").exists());
    assert!(root.join("var/lib/mkrescue/kernel-hook.log").exists());

    // A removed kernel: rebuilt with the newest one left.
    let out = run_hook(dir.path(), "postrm.d", Some(&bin), &root);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
    assert_eq!(calls.lines().last(), Some("-q"));
}

/// The hook with the real mkrescue, for a kernel installed on this host
/// (the newest /boot/vmlinuz-KVER with /lib/modules/KVER, as the image
/// tests use): the configured medium is rebuilt with that kernel. The
/// `mkrescue` the hook finds first in PATH only adds the test's
/// configuration directory (build.output = "initramfs", the quickest
/// medium, into a temporary out_dir) and builds for this host, while the
/// hook keeps its log and mark under a temporary MKRESCUE_ROOT: nothing
/// of the host's is written.
#[test]
fn kernel_hook_rebuilds_the_medium_with_the_real_mkrescue() {
    let Some(kver) = std::fs::read_dir("/boot")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_prefix("vmlinuz-").map(str::to_string)
        })
        .filter(|v| Path::new("/lib/modules").join(v).is_dir())
        .max()
    else {
        panic!(
            "no /boot/vmlinuz-KVER with /lib/modules/KVER on this host (`cargo xtask deps` installs linux-image-amd64)"
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(
        etc.join("local.toml"),
        format!(
            "[build]\noutput = \"initramfs\"\nout_dir = \"{}\"\n\n[modules]\npolicy = \"host\"\n",
            out.display()
        ),
    )
    .unwrap();
    let bin = mkrescue_script(
        dir.path(),
        &format!(
            "unset MKRESCUE_ROOT\nexport PATH=/usr/sbin:/usr/bin:/sbin:/bin\nexec {} --config-dir {} \"$@\"\n",
            env!("CARGO_BIN_EXE_mkrescue"),
            etc.display()
        ),
    );
    let state = dir.path().join("state-root");
    let o = run_hook_for(dir.path(), "postinst.d", Some(&bin), &state, &kver);
    let log =
        std::fs::read_to_string(state.join("var/lib/mkrescue/kernel-hook.log")).unwrap_or_default();
    assert_eq!(o.status.code(), Some(0), "{o:?}\n{log}");
    assert!(
        !state.join("var/lib/mkrescue/kernel-hook-failed").exists(),
        "the rebuild failed:\n{log}"
    );
    // The medium is there, with the kernel the hook was given.
    assert!(out.join("initrd.img").is_file(), "no initrd.img:\n{log}");
    assert_eq!(
        std::fs::read(out.join("vmlinuz")).unwrap(),
        std::fs::read(format!("/boot/vmlinuz-{kver}")).unwrap(),
        "the rescue kernel is not /boot/vmlinuz-{kver}"
    );
}

/// A failed rebuild never fails the kernel's installation: the hook warns,
/// exits 0 and leaves a mark that `mkrescue dump` reports; the next
/// successful run removes it.
#[test]
fn kernel_hook_failure_warns_marks_and_dump_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = fake_root(dir.path());
    let failing = fake_mkrescue(&dir.path().join("failing"), 4);
    let out = run_hook(dir.path(), "postinst.d", Some(&failing), &root);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mkrescue: warning: kernel 6.1.0-99-amd64 installed, but rebuilding the rescue system failed (exit 4)"), "{err}");
    assert!(err.contains("no space left on /var"), "{err}");
    let mark = root.join("var/lib/mkrescue/kernel-hook-failed");
    let text = std::fs::read_to_string(&mark).unwrap();
    assert!(text.contains("kernel=6.1.0-99-amd64\n"), "{text}");
    assert!(text.contains("exit=4\n"), "{text}");
    assert!(text.contains("event=postinst.d/zz-mkrescue\n"), "{text}");

    let etc = dir.path().join("etc/mkrescue");
    let out = dump(&etc, &root, false);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let warning = "# WARNING: the kernel hook could not rebuild the rescue system for kernel 6.1.0-99-amd64 (postinst.d/zz-mkrescue, exit 4";
    assert!(stdout.starts_with(warning), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("kernel-hook.log"),
        "{out:?}"
    );
    let out = dump(&etc, &root, true);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["kernel_hook_failed"]["kernel"], "6.1.0-99-amd64");
    assert_eq!(j["kernel_hook_failed"]["exit"], "4");

    let ok = fake_mkrescue(&dir.path().join("ok"), 0);
    let out = run_hook(dir.path(), "postinst.d", Some(&ok), &root);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!mark.exists());
    let out = dump(&etc, &root, true);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(j.get("kernel_hook_failed").is_none(), "{j}");
}

/// Removed but not purged: the hook (a conffile) stays while the program
/// is gone; a kernel update then goes on without a word.
#[test]
fn kernel_hook_without_mkrescue_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let out = run_hook(dir.path(), "postinst.d", None, &root);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    assert!(!root.exists());
}

/// `systemd-analyze verify` accepts the units (skipped where systemd is
/// not installed). ExecStart must name an existing program, so the copies
/// verified name the test's binary.
#[test]
fn systemd_units_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("no systemd-analyze: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for unit in [
        "mkrescue-backup.service",
        "mkrescue-backup.timer",
        "mkrescue-check.service",
        "mkrescue-check.timer",
        "mkrescue-drill.service",
        "mkrescue-drill.timer",
    ] {
        let text = std::fs::read_to_string(packaging(unit)).unwrap();
        if unit.ends_with(".service") {
            assert!(text.contains("ExecStart=/usr/sbin/mkrescue "), "{unit}");
        }
        let to = dir.path().join(unit);
        std::fs::write(
            &to,
            text.replace("/usr/sbin/mkrescue", env!("CARGO_BIN_EXE_mkrescue")),
        )
        .unwrap();
        files.push(to);
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&files)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Lines about other units of this machine are not ours to judge.
    let ours: Vec<&str> = err.lines().filter(|l| l.contains("mkrescue")).collect();
    assert!(out.status.success() && ours.is_empty(), "{err}");
}

/// The hook and the maintainer scripts are POSIX sh (dash runs them):
/// `sh -n` always, shellcheck where it is installed.
#[test]
fn scripts_are_posix_sh() {
    let scripts = ["kernel-hook", "postinst", "prerm", "postrm"].map(packaging);
    for s in &scripts {
        let out = Command::new("sh").arg("-n").arg(s).output().unwrap();
        assert!(out.status.success(), "{}: {out:?}", s.display());
        let text = std::fs::read_to_string(s).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"), "{}", s.display());
    }
    match Command::new("shellcheck")
        .args(["-s", "sh"])
        .args(&scripts)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        ),
        Err(_) => eprintln!("no shellcheck: only `sh -n` checked"),
    }
}
