//! `mkrescue serve --append-only DIR` behind a real OpenSSH server, in
//! front of the client key as a forced command (`command="...",restrict`),
//! and the `ssh://` archive target speaking its protocol; `mkrescue
//! prune` on the server's directory.
//!
//! Needs root (sshd, and a size-limited tmpfs for the full disk).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::ssh::{Sshd, start_sshd_with, tree};
use crate::support::backup::*;

/// A server whose key runs `mkrescue serve --append-only store`.
fn serve_sshd(tmp: &Path, store: &Path) -> Sshd {
    std::fs::create_dir_all(store).unwrap();
    let forced = format!(
        "{} serve --append-only {}",
        env!("CARGO_BIN_EXE_mkrescue"),
        store.display()
    );
    start_sshd_with(tmp, Some(&forced))
}

/// The client asks for a directory of its own: the forced one wins.
fn url(s: &Sshd) -> String {
    format!("ssh://root@127.0.0.1:{}/client/asks/for/this", s.port)
}

/// An ssh session with the client key asking for `remote`.
fn ssh(s: &Sshd, remote: &str) -> Command {
    let mut c = Command::new("ssh");
    c.args(["-o", "BatchMode=yes", "-p", &s.port.to_string()])
        .args(&s.options)
        .arg("root@127.0.0.1")
        .arg("--")
        .arg(remote);
    c
}

/// One session fed `input`; its whole output.
fn session(s: &Sshd, remote: &str, input: &[u8]) -> Output {
    let mut child = ssh(s, remote)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn backup(s: &Sshd, src: &Path, json: bool) -> Output {
    let mut a = vec![
        os("backup"),
        os("--root"),
        src.as_os_str(),
        os("--config"),
        s.config.as_os_str(),
    ];
    let u = url(s);
    a.extend([os("--target"), os(&u)]);
    if json {
        a.push(os("--json"));
    }
    mkrescue(&a)
}

const SERVE: &str = "mkrescue serve --append-only /x";

#[test]
fn round_trip_through_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let s = serve_sshd(tmp.path(), &store);
    let src = tmp.path().join("src");
    tree(&src);

    let out = backup(&s, &src, true);
    let rep: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(rep["append_only"], true, "{rep}");
    let name = rep["name"].as_str().unwrap().to_string();
    assert_eq!(
        files(&store),
        vec![format!("{name}.manifest.zst"), format!("{name}.tar.zst")],
        "only the two files, under their final names, in the forced DIR"
    );
    assert!(!tmp.path().join("client").exists());

    // The second backup says once that this host prunes nothing there.
    std::thread::sleep(Duration::from_millis(20));
    let out = backup(&s, &src, false);
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("append-only").count(), 1, "{err}");
    assert!(err.contains("mkrescue prune"), "{err}");
    assert_eq!(files(&store).len(), 4);

    let listed = ok(&mkrescue(&[
        os("backup"),
        os("list"),
        os("--target"),
        os(&url(&s)),
        os("--json"),
        os("--config"),
        s.config.as_os_str(),
    ]));
    let l: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(l.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(l[0]["name"], name.as_str());
    assert_eq!(l[0]["complete"], true);
    ok(&mkrescue(&[
        os("backup"),
        os("verify"),
        os("--target"),
        os(&url(&s)),
        os("--archive"),
        os(&name),
        os("--config"),
        s.config.as_os_str(),
    ]));
    let dst = tmp.path().join("restored");
    std::fs::create_dir(&dst).unwrap();
    ok(&mkrescue(&[
        os("restore"),
        os("--from"),
        os(&url(&s)),
        os("--archive"),
        os(&name),
        os("--to"),
        dst.as_os_str(),
        os("--config"),
        s.config.as_os_str(),
    ]));
    assert_same(&facts(&src), &facts(&dst));

    // prune on the server: both are of today, keep_daily 1 keeps the newer.
    let dry = mkrescue(&[
        os("prune"),
        store.as_os_str(),
        os("--keep-daily"),
        os("1"),
        os("--keep-monthly"),
        os("0"),
        os("--dry-run"),
    ]);
    assert_eq!(ok(&dry), format!("would prune {name}\n"));
    assert_eq!(files(&store).len(), 4, "--dry-run deletes nothing");
    let done = mkrescue(&[
        os("prune"),
        store.as_os_str(),
        os("--keep-daily"),
        os("1"),
        os("--keep-monthly"),
        os("0"),
        os("--json"),
    ]);
    let r: serde_json::Value = serde_json::from_str(&ok(&done)).unwrap();
    assert_eq!(r["pruned"], serde_json::json!([name]));
    assert_eq!(r["kept"].as_array().unwrap().len(), 1);
    assert_eq!(files(&store).len(), 2);
    assert!(!files(&store).iter().any(|f| f.starts_with(&name)));

    // prune of something that is no directory: exit 2, one line.
    let bad = mkrescue(&[os("prune"), tmp.path().join("nope").as_os_str()]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn serve_refuses_delete_overwrite_and_hostile_names() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let s = serve_sshd(tmp.path(), &store);
    let src = tmp.path().join("src");
    tree(&src);
    let rep: serde_json::Value = serde_json::from_str(&ok(&backup(&s, &src, true))).unwrap();
    let name = rep["name"].as_str().unwrap().to_string();
    let archive = format!("{name}.tar.zst");
    let before = std::fs::read(store.join(&archive)).unwrap();
    let outside_before = files(tmp.path());

    // Requests that would delete, rename, truncate or overwrite.
    let script = format!(
        "DELETE {archive}\nRENAME {archive} x\nTRUNCATE {archive}\nPUT 1 {archive}\n\
         PUT 1 ../escape-20261205T101112Z.tar.zst\nPUT 1 /tmp/abs-20261205T101112Z.tar.zst\n\
         PUT 1 nul\0-20261205T101112Z.tar.zst\nGET ../../etc/passwd\nGET /etc/passwd\n\
         GET {archive}\0\nLIST\nQUIT\n"
    );
    let out = session(&s, SERVE, script.as_bytes());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "mkrescue-serve 1 append-only", "{text}");
    assert!(lines[1].starts_with("ERR refused \"DELETE\""), "{text}");
    assert!(lines[2].starts_with("ERR refused \"RENAME\""), "{text}");
    assert!(lines[3].starts_with("ERR refused \"TRUNCATE\""), "{text}");
    assert_eq!(
        lines[4],
        format!("ERR exists {archive} exists; backups are never overwritten")
    );
    assert!(
        lines[5].starts_with("ERR refused name") && lines[5].contains("'/'"),
        "{text}"
    );
    assert!(lines[6].contains("an absolute path"), "{text}");
    assert!(lines[7].contains("NUL"), "{text}");
    assert!(lines[8].starts_with("ERR refused"), "{text}");
    assert!(lines[9].contains("an absolute path"), "{text}");
    assert!(lines[10].contains("NUL"), "{text}");
    assert_eq!(lines[11], "OK 2");
    assert_eq!(lines[14], "OK");
    assert!(out.status.success());

    // A new name with content that is no backup: refused at COMMIT.
    let fresh = "remote-test-20261205T101112Z";
    let script = format!(
        "PUT 1 {fresh}.tar.zst\nPUT 2 {fresh}.manifest.zst\nDATA 1 4\njunkDATA 2 4\njunkEND 1 4\nEND 2 4\nCOMMIT\nQUIT\n"
    );
    let out = session(&s, SERVE, script.as_bytes());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("ERR invalid backup {fresh} fails its check")),
        "{text}"
    );

    // Whatever the key asks for besides the protocol: refused.
    for cmd in [
        format!("rm -f {}", store.join(&archive).display()),
        format!("cat /dev/null > {}", store.join(&archive).display()),
        "rsync --server -logDtpre.iLsfxC . /srv".to_string(),
        "internal-sftp".to_string(),
    ] {
        let out = session(&s, &cmd, b"");
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        assert!(out.stdout.is_empty(), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("may only speak the mkrescue serve protocol"),
            "{err}"
        );
    }
    // The old cat/mv/rm ways of an `ssh://` client cannot reach the files.
    let bad = mkrescue(&[
        os("backup"),
        os("--method"),
        os("rsync"),
        os("--root"),
        src.as_os_str(),
        os("--target"),
        os(&url(&s)),
        os("--config"),
        s.config.as_os_str(),
    ]);
    assert!(!bad.status.success());

    assert_eq!(std::fs::read(store.join(&archive)).unwrap(), before);
    assert_eq!(files(&store).len(), 2, "{:?}", files(&store));
    assert_eq!(
        files(tmp.path()),
        outside_before,
        "nothing written outside DIR"
    );
}

#[test]
fn a_cut_upload_leaves_no_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let s = serve_sshd(tmp.path(), &store);
    let mut child = ssh(&s, SERVE)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut to = child.stdin.take().unwrap();
    let mut from = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    from.read_line(&mut line).unwrap();
    assert_eq!(line, "mkrescue-serve 1 append-only\n");
    let name = "cut-20261205T101112.000001Z";
    write!(to, "PUT 1 {name}.tar.zst\nPUT 2 {name}.manifest.zst\n").unwrap();
    to.flush().unwrap();
    for _ in 0..2 {
        line.clear();
        from.read_line(&mut line).unwrap();
        assert_eq!(line, "OK\n");
    }
    // Half a frame of 1 MiB, after a whole one.
    let data = noise(3, 1 << 20);
    writeln!(to, "DATA 1 {}", data.len()).unwrap();
    to.write_all(&data).unwrap();
    writeln!(to, "DATA 1 {}", data.len()).unwrap();
    to.write_all(&data[..data.len() / 2]).unwrap();
    to.flush().unwrap();
    // While the upload runs, nothing is listed.
    let l = session(&s, SERVE, b"LIST\n");
    assert_eq!(
        String::from_utf8_lossy(&l.stdout),
        "mkrescue-serve 1 append-only\nOK 0\n"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    drop(to);
    // The server notices the end of its input and drops the upload.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let gone = files(&store).is_empty();
        let procs = Command::new("pgrep")
            .args(["-f", &format!("serve --append-only {}", store.display())])
            .output()
            .unwrap();
        if gone && procs.stdout.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: {:?}",
            files(&store)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let l = session(&s, SERVE, b"LIST\nQUIT\n");
    assert_eq!(
        String::from_utf8_lossy(&l.stdout),
        "mkrescue-serve 1 append-only\nOK 0\nOK\n"
    );
}

/// A size-limited tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_on_the_server_is_one_error_and_no_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    std::fs::create_dir(&store).unwrap();
    run(
        "mount",
        &[
            os("-t"),
            os("tmpfs"),
            os("-o"),
            os("size=2m"),
            os("tmpfs"),
            store.as_os_str(),
        ],
    );
    let _mounted = Tmpfs(store.clone());
    let s = serve_sshd(tmp.path(), &store);
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/hostname"), "full-test\n").unwrap();
    // Incompressible: 6 MiB do not fit into 2.
    std::fs::write(src.join("big"), noise(11, 6 << 20)).unwrap();
    let out = backup(&s, &src, false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("no space left in"), "{err}");
    assert!(errors[0].contains("mkrescue prune"), "{err}");
    assert!(files(&store).is_empty(), "{:?}", files(&store));
    // The space is free again: a small backup fits.
    std::fs::remove_file(src.join("big")).unwrap();
    let out = backup(&s, &src, false);
    ok(&out);
    assert_eq!(files(&store).len(), 2);
    let mut buf = Vec::new();
    std::fs::File::open(store.join(&files(&store)[0]))
        .unwrap()
        .read_to_end(&mut buf)
        .unwrap();
    assert!(!buf.is_empty());
}

#[test]
fn an_encrypted_backup_through_serve() {
    use age::secrecy::ExposeSecret;
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let s = serve_sshd(tmp.path(), &store);
    let src = tmp.path().join("src");
    tree(&src);
    let key = age::x25519::Identity::generate();
    let idf = tmp.path().join("key.txt");
    std::fs::write(&idf, format!("{}\n", key.to_string().expose_secret())).unwrap();
    // The server has no key: it checks that both files are age files.
    let mut cfg = std::fs::OpenOptions::new()
        .append(true)
        .open(&s.config)
        .unwrap();
    writeln!(cfg, "age_recipient = \"{}\"", key.to_public()).unwrap();
    drop(cfg);
    let rep: serde_json::Value = serde_json::from_str(&ok(&backup(&s, &src, true))).unwrap();
    let name = rep["name"].as_str().unwrap().to_string();
    assert_eq!(
        files(&store),
        vec![
            format!("{name}.manifest.zst.age"),
            format!("{name}.tar.zst.age")
        ]
    );
    let dst = tmp.path().join("restored");
    std::fs::create_dir(&dst).unwrap();
    ok(&mkrescue(&[
        os("restore"),
        os("--from"),
        os(&url(&s)),
        os("--identity"),
        idf.as_os_str(),
        os("--to"),
        dst.as_os_str(),
        os("--config"),
        s.config.as_os_str(),
    ]));
    assert_same(&facts(&src), &facts(&dst));
    // Plain bytes under an .age name are refused at COMMIT.
    let fresh = "remote-test-20261205T101112Z";
    let script = format!(
        "PUT 1 {fresh}.tar.zst.age\nPUT 2 {fresh}.manifest.zst.age\nDATA 1 4\njunkDATA 2 4\njunkEND 1 4\nEND 2 4\nCOMMIT\nQUIT\n"
    );
    let out = session(&s, SERVE, script.as_bytes());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("is no age file"), "{text}");
    assert_eq!(files(&store).len(), 2);
}

/// Item 3 through serve: an incremental is one more backup the host adds;
/// prune on the server keeps the full backup that a kept incremental
/// needs, and the chain restores through serve.
#[test]
fn an_incremental_chain_through_serve_and_prune() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let s = serve_sshd(tmp.path(), &store);
    let src = tmp.path().join("src");
    tree(&src);
    let cfg = tmp.path().join("inc.toml");
    std::fs::write(
        &cfg,
        format!(
            "{}mode = \"incremental\"\npaths = [\"/srv\"]\n",
            std::fs::read_to_string(&s.config).unwrap()
        ),
    )
    .unwrap();
    let u = url(&s);
    let backup = || -> serde_json::Value {
        serde_json::from_str(&ok(&mkrescue(&[
            os("backup"),
            os("--root"),
            src.as_os_str(),
            os("--config"),
            cfg.as_os_str(),
            os("--target"),
            os(&u),
            os("--json"),
        ])))
        .unwrap()
    };
    // Not changed within the second before the full backup (that would
    // store it again, `Stat::unsure`).
    std::thread::sleep(Duration::from_millis(1100));
    let full = backup();
    std::fs::write(src.join("srv/new"), b"new").unwrap();
    let inc = backup();
    assert_eq!(inc["parent"], full["name"], "{inc}");
    assert!(
        inc["stats"]["data_bytes"].as_u64().unwrap() < 1 << 20,
        "{inc}"
    );
    let r: serde_json::Value = serde_json::from_str(&ok(&mkrescue(&[
        os("prune"),
        store.as_os_str(),
        os("--keep-daily"),
        os("1"),
        os("--keep-monthly"),
        os("0"),
        os("--json"),
    ])))
    .unwrap();
    assert_eq!(
        r["kept"],
        serde_json::json!([full["name"], inc["name"]]),
        "{r}"
    );
    assert_eq!(
        r["kept_for_chains"],
        serde_json::json!([full["name"]]),
        "{r}"
    );
    assert_eq!(r["pruned"], serde_json::json!([]), "{r}");
    let dst = tmp.path().join("restored");
    std::fs::create_dir(&dst).unwrap();
    ok(&mkrescue(&[
        os("restore"),
        os("--from"),
        os(&u),
        os("--to"),
        dst.as_os_str(),
        os("--config"),
        cfg.as_os_str(),
    ]));
    assert_same(&facts(&src.join("srv")), &facts(&dst.join("srv")));
}
