//! Encrypted archives (age, X25519): the public key in the configuration,
//! the secret key only at restore time. Nothing of the tree is readable in
//! the stored files; no key or a wrong key gets one clear line; the right
//! key restores an identical tree.

mod backup_common;

use age::secrecy::ExposeSecret;
use backup_common::*;

fn error_line(out: &std::process::Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("mkrescue: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    errors[0].to_string()
}

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
