//! Bad input gets one clear error line and a meaningful exit code, and
//! writes nothing: corrupt ELF in the tool list, missing required tool,
//! kernel without modules, compression the kernel lacks, config typo.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::backup::error_line;

fn mkrescue(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .args(args)
        // No site/local config of the machine running the tests.
        .args(["--config-dir", "/nonexistent-mkrescue-test"])
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("running mkrescue")
}

fn assert_nothing_written(out: &Path) {
    let entries: Vec<_> = std::fs::read_dir(out)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(entries.is_empty(), "output dir has {entries:?}");
}

#[test]
fn config_typo_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("typo.toml");
    std::fs::write(&cfg, "[build]\n\ncompres = \"xz\"\n").unwrap();
    let out_dir = dir.path().join("out");
    let out = mkrescue(&[
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let line = error_line(&out, 3);
    assert!(line.contains(&format!("{}:3:", cfg.display())), "{line}");
    assert!(line.contains("build.compres"), "{line}");
    assert_nothing_written(&out_dir);
}

#[test]
fn kernel_without_modules_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = mkrescue(&[
        "--kernel-version",
        "0.0.1-no-such-kernel",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let line = error_line(&out, 4);
    assert!(line.contains("0.0.1-no-such-kernel"), "{line}");
    assert_nothing_written(&out_dir);
}

/// A sysroot whose only kernel was built without zstd initrd support.
fn root_without_zstd() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    std::fs::create_dir_all(r.join("boot")).unwrap();
    std::fs::create_dir_all(r.join("lib/modules/6.1.0-test")).unwrap();
    std::fs::write(r.join("lib/modules/6.1.0-test/modules.dep"), "").unwrap();
    std::fs::write(r.join("boot/vmlinuz-6.1.0-test"), "kernel").unwrap();
    std::fs::write(
        r.join("boot/config-6.1.0-test"),
        "CONFIG_BLK_DEV_INITRD=y\nCONFIG_RD_GZIP=y\n# CONFIG_RD_ZSTD is not set\n",
    )
    .unwrap();
    d
}

#[test]
fn compression_the_kernel_lacks_is_refused() {
    let root = root_without_zstd();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = mkrescue(&[
        "--root",
        root.path().to_str().unwrap(),
        "--compress",
        "zstd",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let line = error_line(&out, 4);
    assert!(line.contains("CONFIG_RD_ZSTD"), "{line}");
    assert!(line.contains("gzip"), "{line}");
    assert_nothing_written(&out_dir);
}

#[test]
fn missing_required_tool_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tools.toml");
    std::fs::write(
        &cfg,
        "[tools]\nrequired = [\"mkrescue-test-no-such-tool\"]\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = mkrescue(&[
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let line = error_line(&out, 4);
    assert!(line.contains("mkrescue-test-no-such-tool"), "{line}");
    assert_nothing_written(&out_dir);
}

#[test]
fn corrupt_elf_in_tool_list_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // The first 200 bytes of a real program: a valid ELF header whose
    // program and section headers point past the end of the file.
    let ls = std::fs::read("/usr/bin/ls").unwrap();
    let bad = dir.path().join("truncated-ls");
    std::fs::write(&bad, &ls[..200]).unwrap();
    std::fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let cfg = dir.path().join("tools.toml");
    std::fs::write(
        &cfg,
        format!("[tools]\nrequired = [\"{}\"]\n", bad.display()),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = mkrescue(&[
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let line = error_line(&out, 5);
    assert!(line.contains(&bad.display().to_string()), "{line}");
    assert_nothing_written(&out_dir);
}

#[test]
fn media_without_their_target_say_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    for (kind, needs) in [
        ("usb", "--device"),
        ("pxe", "--pxe-root"),
        ("obdr", "--tape-file"),
    ] {
        let out = mkrescue(&["--output", kind, "--out", out_dir.to_str().unwrap()]);
        let line = error_line(&out, 2);
        assert!(line.contains(&format!("--output {kind}")), "{line}");
        assert!(line.contains(needs), "{line}");
        assert_nothing_written(&out_dir);
    }
}

#[test]
fn help_lists_exit_codes() {
    let out = mkrescue(&["--help"]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("Exit codes:"), "{s}");
}

/// `--config`, `-q` and `--json` are global: before the subcommand as well
/// as after it (`mkrescue --config F dump` was refused by the parser). The
/// build's own flags are still refused with a subcommand (exit 2).
#[test]
fn global_flags_before_or_after_the_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("extra.toml");
    std::fs::write(&cfg, "[build]\ncompress = \"xz\"\n").unwrap();
    // A root with a kernel, so the host facts of `dump` need nothing of
    // this machine's /boot.
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("boot")).unwrap();
    std::fs::write(root.join("boot/vmlinuz-6.1.0-test"), b"").unwrap();
    std::fs::create_dir_all(root.join("lib/modules/6.1.0-test")).unwrap();
    std::fs::write(root.join("lib/modules/6.1.0-test/modules.dep"), b"").unwrap();
    let (c, r) = (cfg.to_str().unwrap(), root.to_str().unwrap());
    for args in [
        &["--config", c, "--json", "dump", "--root", r][..],
        &["dump", "--config", c, "--json", "--root", r][..],
        &["-q", "--root", r, "--json", "dump", "--config", c][..],
    ] {
        let out = mkrescue(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(j["config"]["build"]["compress"], "xz", "{args:?}");
        assert_eq!(j["host"]["kernel"]["version"], "6.1.0-test", "{args:?}");
        assert!(
            j["config_files"].to_string().contains("extra.toml"),
            "{args:?}"
        );
    }
    let out = mkrescue(&["--output", "iso", "dump", "--root", r]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be used with a subcommand"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Item 6 of the first-hour issue: `-q` ("only errors") still printed the
/// success lines of `layout save`, `layout check` and `verify`.
#[test]
fn quiet_prints_no_success_lines() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("layout.json");
    let fs = f.to_str().unwrap();
    let silent = |args: &[&str]| {
        let out = mkrescue(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "", "{args:?}");
    };
    silent(&["-q", "layout", "save", "--out", fs, "--allow-partial"]);
    assert!(f.is_file());
    silent(&["layout", "check", "-q", "--file", fs]);
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::write(out_dir.join("a"), "a").unwrap();
    std::fs::write(
        out_dir.join("SHA256SUMS"),
        "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb  a\n",
    )
    .unwrap();
    silent(&["-q", "verify", out_dir.to_str().unwrap()]);
    // A mismatch is still reported, with its line.
    std::fs::write(out_dir.join("a"), "b").unwrap();
    let out = mkrescue(&["-q", "verify", out_dir.to_str().unwrap()]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a: changed\n");
    error_line(&out, 5);
}

/// Item 12: a bad `--target` URL is a command-line mistake (2); the same
/// URL in backup.target is a configuration one (3). Nothing is created.
#[test]
fn bad_target_url_is_2_as_a_flag_and_3_in_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let out = mkrescue(&["backup", "--target", "ftp://host/b", src.to_str().unwrap()]);
    let line = error_line(&out, 2);
    assert!(line.contains("backup target \"ftp://host/b\""), "{line}");
    assert!(line.contains("file:///DIR"), "{line}");
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[backup]\ntarget = \"ftp://host/b\"\n").unwrap();
    let out = mkrescue(&[
        "backup",
        "--config",
        cfg.to_str().unwrap(),
        src.to_str().unwrap(),
    ]);
    error_line(&out, 3);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

/// Item 16: flags of another output kind were silently ignored
/// (`--output iso --image x.img`), and `--output usb --size` without
/// `--image` got clap's "required: --image" that never named --device.
#[test]
fn flags_of_another_output_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let img = dir.path().join("x.img");
    let o = out_dir.to_str().unwrap();
    let i = img.to_str().unwrap();
    let out = mkrescue(&["--output", "iso", "--image", i, "--out", o]);
    assert_eq!(
        error_line(&out, 2),
        "mkrescue: error: --image is for --output usb; it does not go with --output iso (drop it, or give --output usb)"
    );
    let out = mkrescue(&[
        "--output",
        "pxe",
        "--pxe-root",
        o,
        "--tape-file",
        i,
        "--out",
        o,
    ]);
    assert!(error_line(&out, 2).starts_with("mkrescue: error: --tape-file is for --output obdr"));
    let out = mkrescue(&["--output", "usb", "--size", "1G", "--out", o]);
    let line = error_line(&out, 2);
    assert!(
        line.contains("--image FILE") && line.contains("--device"),
        "{line}"
    );
    assert_nothing_written(&out_dir);
    assert!(!img.exists());
}

/// Item 7: argument errors lacked the `mkrescue: error:` prefix (clap's
/// own text and usage block); global flags work before a subcommand.
#[test]
fn argument_errors_are_one_prefixed_line() {
    for (args, what) in [
        (&["--bogus"][..], "unexpected argument '--bogus' found"),
        (
            &["backup", "--method", "foo"][..],
            "invalid value 'foo' for '--method <METHOD>'",
        ),
        (
            &["-q", "layout", "save", "--out"][..],
            "a value is required for '--out <FILE>'",
        ),
        (&["--output", "iso", "dump"][..], "the build's options"),
    ] {
        let out = mkrescue(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!("mkrescue: error: {what}")),
            "{args:?}: {stderr}"
        );
    }
    // -v and -q before the subcommand are taken.
    let out = mkrescue(&[
        "-v",
        "layout",
        "show",
        "--file",
        "tests/fixtures/layout/layout2.json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = mkrescue(&[
        "-q",
        "layout",
        "show",
        "--file",
        "tests/fixtures/layout/layout2.json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// Item 8: `dump` accepted values that every command then refused, and the
/// later refusal named no file and line; the text dump left unset keys out.
#[test]
fn dump_refuses_bad_values_with_file_and_line_and_shows_unset_keys() {
    let dir = tempfile::tempdir().unwrap();
    for (text, line, what) in [
        (
            "[build]\ncompress_level = 99\n",
            2,
            "build.compress_level 99 is out of range",
        ),
        (
            "# the ISO\n[output]\nvolume_id = \"ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQ\"\n",
            3,
            "output.volume_id = \"ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQ\": an ISO volume id is 1 to 32 characters",
        ),
        (
            "[backup]\nage_recipient = \"notakey\"\n",
            2,
            "backup.age_recipient \"notakey\": not an age public key",
        ),
        (
            "[backup]\nmethod = \"archive\"\ntarget = \"ftp://host/b\"\n",
            3,
            "backup target \"ftp://host/b\"",
        ),
    ] {
        let cfg = dir.path().join("bad.toml");
        std::fs::write(&cfg, text).unwrap();
        let out = mkrescue(&["dump", "--config", cfg.to_str().unwrap()]);
        let got = error_line(&out, 3);
        let want = format!("mkrescue: error: {}:{line}: {what}", cfg.display());
        assert!(got.starts_with(&want), "{got}\nwant: {want}");
        assert!(out.stdout.is_empty(), "dump printed a configuration");
    }
    let out = mkrescue(&["dump"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    for k in [
        "# kernel_version = (unset)",
        "# compress_level = (unset)",
        "# target = (unset)",
    ] {
        assert!(text.contains(k), "{k} missing from:\n{text}");
    }
}

/// Item 13: a warning during a step was printed onto the spinner's line
/// (`⠁ collecting tools... (0s)mkrescue: warn: ...`). On a terminal (a
/// pty from script(1)) each warning now starts a line of its own: the bar
/// is cleared (`ESC[2K`) before it, or it follows a newline.
#[test]
fn warnings_do_not_land_on_the_spinner_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[tools]\noptional = [\"mkrescue-test-no-such-tool\"]\n",
    )
    .unwrap();
    let cmd = format!(
        "{} --config-dir /nonexistent-mkrescue-test --config {} --modules host --out {}",
        env!("CARGO_BIN_EXE_mkrescue"),
        cfg.display(),
        dir.path().join("out").display()
    );
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .output()
        .expect("script(1) from util-linux");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let warns: Vec<usize> = text
        .match_indices("mkrescue: warn:")
        .map(|(i, _)| i)
        .collect();
    assert!(!warns.is_empty(), "no warning seen: {text:?}");
    for i in warns {
        let before = &text[..i];
        assert!(
            before.is_empty() || before.ends_with('\n') || before.ends_with("\x1b[2K"),
            "a warning on another line: {:?}",
            before.chars().rev().take(60).collect::<String>()
        );
    }
}

/// The first line of each command's help is its man page's NAME line
/// (`cargo xtask dist`), which man prints as plain text: no markdown.
#[test]
fn summaries_are_plain_text_for_the_man_pages_name_lines() {
    use clap::CommandFactory;
    fn walk(c: &clap::Command, path: &str, bad: &mut Vec<String>) {
        if let Some(about) = c.get_about() {
            let first = about.to_string();
            if first.contains('`') {
                bad.push(format!("{path}: {first}"));
            }
        }
        for s in c.get_subcommands() {
            walk(s, &format!("{path} {}", s.get_name()), bad);
        }
    }
    let mut bad = Vec::new();
    walk(&mkrescue::cli::Cli::command(), "mkrescue", &mut bad);
    assert!(bad.is_empty(), "markdown in a NAME line: {bad:#?}");
}
