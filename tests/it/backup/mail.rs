//! The report mail of `mkrescue backup`: a stand-in sendmail (a script
//! that records its arguments and the message it receives on stdin, i.e.
//! a real program getting the real message) is called on success and on
//! failure; the message is RFC 5322 with the host and OK/FAILED in the
//! subject, the summary or the error in the body. A bad address stops the
//! backup before it starts.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::backup::*;

/// Headers (name → values, in order) and body of a message.
fn parse(msg: &str) -> (Vec<(String, String)>, String) {
    let (head, body) = msg
        .split_once("\n\n")
        .expect("a blank line ends the headers");
    let headers = head
        .lines()
        .map(|l| {
            let (k, v) = l
                .split_once(": ")
                .unwrap_or_else(|| panic!("header line {l:?}"));
            (k.to_string(), v.to_string())
        })
        .collect();
    (headers, body.to_string())
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> &'a str {
    let v: Vec<&str> = h
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(v.len(), 1, "{name}: {h:?}");
    v[0]
}

#[test]
fn report_mail_on_success_and_on_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let sm = t.join("sendmail");
    std::fs::write(
        &sm,
        "#!/bin/sh\nd=$(dirname \"$0\")\nprintf '%s\\n' \"$@\" > \"$d/args\"\ncat > \"$d/message\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&sm, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = t.join("mail.toml");
    std::fs::write(
        &cfg,
        format!(
            "[backup]\nmail_to = [\"admin@example.com\", \"ops@example.com\"]\nmail_from = \"backup@example.com\"\nsendmail = \"{}\"\n",
            sm.display()
        ),
    )
    .unwrap();
    let src = t.join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/hostname"), "mailhost\n").unwrap();
    std::fs::write(src.join("etc/data"), noise(3, 100_000)).unwrap();
    let backup = |target: &Path| {
        mkrescue(&[
            os("backup"),
            os("--root"),
            src.as_os_str(),
            os("--target"),
            target.as_os_str(),
            os("--config"),
            cfg.as_os_str(),
        ])
    };

    let bk = t.join("bk");

    std::fs::create_dir_all(&bk).unwrap();
    ok(&backup(&bk));
    assert_eq!(
        std::fs::read_to_string(t.join("args")).unwrap(),
        "-t\n-oi\n"
    );
    let msg = std::fs::read_to_string(t.join("message")).unwrap();
    let (h, body) = parse(&msg);
    assert_eq!(header(&h, "To"), "admin@example.com, ops@example.com");
    assert_eq!(header(&h, "From"), "mkrescue <backup@example.com>");
    assert_eq!(header(&h, "Subject"), "mkrescue backup mailhost: OK");
    assert!(header(&h, "Date").ends_with(" +0000"), "{msg}");
    assert!(header(&h, "Message-ID").ends_with("@mailhost>"), "{msg}");
    assert!(
        body.contains(&format!("location: {}", bk.display())),
        "{body}"
    );
    assert!(
        body.contains("backup mailhost-") && body.contains(" files, "),
        "{body}"
    );
    assert!(msg.lines().all(|l| l.len() <= 998));
    std::fs::remove_file(t.join("message")).unwrap();

    // A target that is a file: the backup fails, the mail says so and why.
    let not_dir = t.join("not-a-dir");
    std::fs::write(&not_dir, "x").unwrap();
    let out = backup(&not_dir);
    let code = out.status.code().unwrap();
    assert_ne!(code, 0);
    let msg = std::fs::read_to_string(t.join("message")).unwrap();
    let (h, body) = parse(&msg);
    assert_eq!(header(&h, "Subject"), "mkrescue backup mailhost: FAILED");
    assert!(
        body.contains(&format!("FAILED (exit code {code})")),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "error: backup target {} is not a directory",
            not_dir.display()
        )),
        "{body}"
    );
    std::fs::remove_file(t.join("message")).unwrap();

    // A header-injecting address: refused before anything is backed up.
    std::fs::write(
        &cfg,
        format!(
            "[backup]\nmail_to = [\"a@example.com\\nBcc: evil@example.com\"]\nsendmail = \"{}\"\n",
            sm.display()
        ),
    )
    .unwrap();
    let before = std::fs::read_dir(&bk).unwrap().count();
    let out = backup(&bk);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a mail address"));
    assert_eq!(std::fs::read_dir(&bk).unwrap().count(), before);
    assert!(!t.join("message").exists());
}
