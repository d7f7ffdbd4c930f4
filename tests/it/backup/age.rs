//! Encrypted archives (age, X25519): the public key in the configuration,
//! the secret key only at restore time. Nothing of the tree is readable in
//! the stored files; no key or a wrong key gets one clear line; the right
//! key restores an identical tree.

use crate::support::backup::*;
use age::secrecy::ExposeSecret;

#[test]
fn age_encrypted_archive_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("etc/secret-directory-name")).unwrap();
    std::fs::write(
        src.join("etc/secret-directory-name/file"),
        "PLAINTEXT-MARKER ".repeat(1000),
    )
    .unwrap();
    std::fs::write(src.join("etc/big"), noise(5, 5 << 20)).unwrap();
    let key = age::x25519::Identity::generate();
    let idf = tmp.path().join("key.txt");
    std::fs::write(&idf, format!("{}\n", key.to_string().expose_secret())).unwrap();
    let wrong = tmp.path().join("wrong.txt");
    std::fs::write(
        &wrong,
        format!(
            "{}\n",
            age::x25519::Identity::generate()
                .to_string()
                .expose_secret()
        ),
    )
    .unwrap();
    let cfg = tmp.path().join("age.toml");
    std::fs::write(
        &cfg,
        format!("[backup]\nage_recipient = \"{}\"\n", key.to_public()),
    )
    .unwrap();
    let bk = tmp.path().join("bk");
    std::fs::create_dir_all(&bk).unwrap();

    let out = mkrescue(&[
        os("backup"),
        os("--root"),
        src.as_os_str(),
        os("--target"),
        bk.as_os_str(),
        os("--json"),
        os("--config"),
        cfg.as_os_str(),
    ]);
    let rep: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    let name = rep["name"].as_str().unwrap();
    for f in [
        format!("{name}.tar.zst.age"),
        format!("{name}.manifest.zst.age"),
    ] {
        let bytes = std::fs::read(bk.join(&f)).unwrap();
        assert!(bytes.starts_with(b"age-encryption.org/v1\n"), "{f}");
        for needle in [b"secret-directory-name".as_slice(), b"PLAINTEXT-MARKER"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{f} shows {needle:?}"
            );
        }
    }
    let listed: serde_json::Value = serde_json::from_str(&ok(&mkrescue(&[
        os("backup"),
        os("list"),
        os("--target"),
        bk.as_os_str(),
        os("--json"),
    ])))
    .unwrap();
    assert_eq!(listed[0]["encrypted"], true);
    assert_eq!(listed[0]["complete"], true);

    let dst = tmp.path().join("dst");
    std::fs::create_dir(&dst).unwrap();
    let restore = |extra: &[&std::ffi::OsStr]| {
        let mut a = vec![
            os("restore"),
            os("--from"),
            bk.as_os_str(),
            os("--to"),
            dst.as_os_str(),
        ];
        a.extend_from_slice(extra);
        mkrescue(&a)
    };
    assert!(error_line(&restore(&[]), 2).contains("give --identity"));
    let line = error_line(&restore(&[os("--identity"), wrong.as_os_str()]), 5);
    assert!(line.contains("wrong age key"), "{line}");
    assert_eq!(
        std::fs::read_dir(&dst).unwrap().count(),
        0,
        "a failed restore wrote files"
    );
    ok(&mkrescue(&[
        os("backup"),
        os("verify"),
        os("--target"),
        bk.as_os_str(),
        os("--identity"),
        idf.as_os_str(),
    ]));
    ok(&restore(&[os("--identity"), idf.as_os_str()]));
    assert_same(&facts(&src), &facts(&dst));
}

/// An encrypted backup of a small tree: (temp dir, source tree, backup
/// dir, the secret key's text, a wrong key's text).
fn encrypted_backup() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
    String,
    String,
) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/data"), noise(9, 200_000)).unwrap();
    let key = age::x25519::Identity::generate();
    let cfg = tmp.path().join("age.toml");
    std::fs::write(
        &cfg,
        format!("[backup]\nage_recipient = \"{}\"\n", key.to_public()),
    )
    .unwrap();
    let bk = tmp.path().join("bk");
    std::fs::create_dir_all(&bk).unwrap();
    ok(&mkrescue(&[
        os("backup"),
        os("--root"),
        src.as_os_str(),
        os("--target"),
        bk.as_os_str(),
        os("--config"),
        cfg.as_os_str(),
    ]));
    let secret = format!("{}\n", key.to_string().expose_secret());
    let wrong = format!(
        "{}\n",
        age::x25519::Identity::generate()
            .to_string()
            .expose_secret()
    );
    (tmp, src, bk, secret, wrong)
}

/// Serves `body` over HTTP on 127.0.0.1 to `n` requests, answering 200 for
/// `/key.txt` and 404 for anything else. Returns the port.
fn serve_key(body: String, n: usize) -> u16 {
    use std::io::{BufRead, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().take(n) {
            let mut s = s.unwrap();
            let mut r = std::io::BufReader::new(s.try_clone().unwrap());
            let mut first = String::new();
            r.read_line(&mut first).unwrap();
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                    break;
                }
            }
            let resp = if first.starts_with("GET /key.txt ") {
                format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.0 404 Not Found\r\n\r\nnot here\n".to_string()
            };
            s.write_all(resp.as_bytes()).unwrap();
        }
    });
    port
}

#[test]
fn identity_from_a_file_url_or_http() {
    let (tmp, src, bk, secret, _) = encrypted_backup();
    let restore = |identity: &str| {
        let dst = tmp.path().join(format!("dst{}", identity.len()));
        std::fs::create_dir_all(&dst).unwrap();
        let out = mkrescue(&[
            os("restore"),
            os("--from"),
            bk.as_os_str(),
            os("--to"),
            dst.as_os_str(),
            os("--identity"),
            os(identity),
        ]);
        (out, dst)
    };
    let keyf = tmp.path().join("key.txt");
    std::fs::write(&keyf, &secret).unwrap();
    let (out, dst) = restore(&format!("file://{}", keyf.display()));
    ok(&out);
    assert_same(&facts(&src), &facts(&dst));

    let port = serve_key(secret, 2);
    let (out, dst) = restore(&format!("http://127.0.0.1:{port}/key.txt"));
    ok(&out);
    assert_same(&facts(&src), &facts(&dst));
    let (out, _) = restore(&format!("http://127.0.0.1:{port}/nokey"));
    let line = error_line(&out, 2);
    assert!(
        line.contains(&format!("--identity http://127.0.0.1:{port}/nokey"))
            && line.contains("404 Not Found"),
        "{line}"
    );
}

/// Runs mkrescue with a pseudo-terminal as stdin and `typed` written to it,
/// the way an operator at the console pastes the key.
fn mkrescue_on_tty(args: &[&std::ffi::OsStr], typed: &str) -> std::process::Output {
    use std::io::Write;
    let (mut master, slave) = mkrescue::sys::term::openpty().unwrap();

    let child = std::process::Command::new(env!("CARGO_BIN_EXE_mkrescue"))
        .args(args)
        .args(["--config-dir", "/nonexistent-mkrescue-test"])
        .stdin(std::process::Stdio::from(slave))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    master.write_all(typed.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    drop(master);
    out
}

#[test]
fn identity_pasted_on_the_terminal() {
    let (tmp, src, bk, secret, wrong) = encrypted_backup();
    let dst = tmp.path().join("dst");
    std::fs::create_dir(&dst).unwrap();
    let args = [
        os("restore"),
        os("--from"),
        bk.as_os_str(),
        os("--to"),
        dst.as_os_str(),
    ];
    let out = mkrescue_on_tty(&args, &wrong);
    let line = error_line(&out, 5);
    assert!(
        line.contains("wrong age key: the pasted key does not decrypt"),
        "{line}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Paste the age secret key"));
    let out = mkrescue_on_tty(&args, "not a key\n");
    let line = error_line(&out, 2);
    assert!(
        line.contains("the pasted key: not an age identity"),
        "{line}"
    );
    assert_eq!(std::fs::read_dir(&dst).unwrap().count(), 0);
    ok(&mkrescue_on_tty(&args, &secret));
    assert_same(&facts(&src), &facts(&dst));
}
