//! The report mail of `mkrescue backup`: on success *and* on failure, a
//! short RFC 5322 message piped into `sendmail -t -oi` (the interface every
//! MTA installs: exim, postfix, msmtp-mta, nullmailer). A success mail is
//! how an admin learns that the nightly job ran at all.
//!
//! Gets an [`Outcome`] from the backup command; hands the message to the
//! configured `backup.sendmail`.

use std::io::Write;

use anyhow::{Context, Result};

use crate::config::{Backup, BackupMethod};
use crate::error::{Code, fail};
use crate::exec::Cmd;

/// RFC 5322 2.1.1: lines must not exceed 998 characters; stay well below.
const MAX_LINE: usize = 900;

/// What happened, for the report.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub host: String,
    pub method: BackupMethod,
    /// Target URL or borg repository.
    pub location: String,
    /// Seconds since 1970 (UTC).
    pub started: i64,
    pub seconds: f64,
    /// The one-line summary, or the error with the exit code.
    pub result: std::result::Result<String, (String, i32)>,
}

/// Checks the mail settings before the backup starts, so a typo costs a
/// clear error now rather than a silent night.
pub fn check(cfg: &Backup) -> Result<()> {
    for a in cfg.mail_to.iter().chain(cfg.mail_from.iter()) {
        let bad = a.is_empty()
            || a.chars()
                .any(|c| c.is_control() || c.is_whitespace() || ",;<>\"()".contains(c));
        if bad {
            return Err(fail(
                Code::Config,
                format!(
                    "backup.mail_to/mail_from {a:?}: not a mail address; give one address per entry, e.g. \"admin@example.com\""
                ),
            ));
        }
    }
    let sm = &cfg.sendmail;
    if !crate::sys::is_executable(sm) {
        return Err(fail(
            Code::Host,
            format!(
                "backup.sendmail {}: no such program, so the report mail cannot be sent; install a mail transfer agent (e.g. apt-get install msmtp-mta), set backup.sendmail, or remove backup.mail_to",
                sm.display()
            ),
        ));
    }
    Ok(())
}

fn method_name(m: BackupMethod) -> &'static str {
    match m {
        BackupMethod::Archive => "archive",
        BackupMethod::Rsync => "rsync",
        BackupMethod::Borg => "borg",
    }
}

/// `Sun, 22 Nov 2026 05:44:31 +0000` (RFC 5322 3.3).
pub fn date(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let c = crate::sys::time::civil(secs);
    // 1970-01-01 was a Thursday.
    let wd = DAYS[secs.div_euclid(86400).rem_euclid(7) as usize];
    format!(
        "{wd}, {:02} {} {:04} {:02}:{:02}:{:02} +0000",
        c.day,
        MONTHS[(c.month - 1) as usize],
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}

/// Cuts `text` into lines no longer than [`MAX_LINE`] bytes.
fn fold(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut rest = line;
        while rest.len() > MAX_LINE {
            let mut cut = MAX_LINE;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            out.push_str(&rest[..cut]);
            out.push('\n');
            rest = &rest[cut..];
        }
        out.push_str(rest);
        out.push('\n');
    }
    out
}

/// A report of any mkrescue job (the backup's, the layout check's).
pub struct Report<'a> {
    pub host: &'a str,
    /// What ran, in the subject and the Message-ID: `backup`, `layout check`.
    pub job: &'a str,
    /// `OK`, `FAILED`, `CHANGED`: the end of the subject.
    pub status: &'a str,
    /// Seconds since 1970 (UTC).
    pub started: i64,
    pub body: &'a str,
}

/// The whole message, headers and body, with LF line ends (sendmail's
/// local submission converts them).
pub fn compose(cfg: &Backup, r: &Report) -> String {
    // The host name goes into headers: keep it to plain ASCII.
    let host: String = r
        .host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let from = cfg
        .mail_from
        .clone()
        .unwrap_or_else(|| format!("root@{host}"));
    let mut m = String::new();
    m.push_str(&format!("From: mkrescue <{from}>\n"));
    m.push_str(&format!("To: {}\n", cfg.mail_to.join(", ")));
    m.push_str(&format!(
        "Subject: mkrescue {} {host}: {}\n",
        r.job, r.status
    ));
    m.push_str(&format!("Date: {}\n", date(r.started)));
    m.push_str(&format!(
        "Message-ID: <mkrescue-{}.{}.{}@{host}>\n",
        r.job.replace(' ', "-"),
        r.started,
        std::process::id()
    ));
    // RFC 3834: no vacation replies to a robot.
    m.push_str("Auto-Submitted: auto-generated\n");
    m.push_str("MIME-Version: 1.0\n");
    m.push_str("Content-Type: text/plain; charset=utf-8\n");
    m.push_str("Content-Transfer-Encoding: 8bit\n\n");
    m.push_str(&fold(r.body));
    m
}

/// The backup's report.
pub fn message(cfg: &Backup, o: &Outcome) -> String {
    let status = if o.result.is_ok() { "OK" } else { "FAILED" };
    let mut body = format!(
        "mkrescue backup on {}: {status}\n\nmethod:   {}\nlocation: {}\nstarted:  {}\ntook:     {:.1} s\n\n",
        o.host,
        method_name(o.method),
        o.location,
        crate::sys::time::stamp(o.started),
        o.seconds
    );
    match &o.result {
        Ok(summary) => body.push_str(&format!("{summary}\n")),
        Err((err, code)) => body.push_str(&format!(
            "The backup FAILED (exit code {code}); nothing that looks complete was left at the target.\n\nerror: {err}\n"
        )),
    }
    compose(
        cfg,
        &Report {
            host: &o.host,
            job: "backup",
            status,
            started: o.started,
            body: &body,
        },
    )
}

/// Pipes the report into `sendmail -t -oi`: `-t` takes the recipients
/// from the headers, `-oi` keeps a line of a single dot from ending the
/// message (sendmail(8)).
pub fn send(cfg: &Backup, o: &Outcome) -> Result<()> {
    send_message(cfg, &message(cfg, o))
}

/// Pipes a composed message into `sendmail -t -oi`.
pub fn send_message(cfg: &Backup, msg: &str) -> Result<()> {
    let mut run = Cmd::new(&cfg.sendmail)
        .args(["-t", "-oi"])
        .spawn_stream(true)?;
    run.child
        .stdin
        .as_mut()
        .context("sendmail's stdin")?
        .write_all(msg.as_bytes())
        .with_context(|| format!("writing the report to {}", cfg.sendmail.display()))?;
    run.wait()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(date(1_779_417_045), "Fri, 22 May 2026 02:30:45 +0000");
    }

    #[test]
    fn long_lines_are_folded() {
        let f = fold(&format!("{}\nshort", "é".repeat(1000)));
        assert!(f.lines().all(|l| l.len() <= MAX_LINE), "{f}");
        assert_eq!(f.replace('\n', ""), format!("{}short", "é".repeat(1000)));
    }

    #[test]
    fn addresses_are_checked() {
        let mut cfg = Backup {
            mail_to: vec!["admin@example.com".into(), "root".into()],
            sendmail: "/bin/sh".into(),
            ..Backup::default()
        };
        check(&cfg).unwrap();
        for bad in ["a@b\nBcc: x@y", "", "a@b, c@d", "Admin <a@b>"] {
            cfg.mail_to = vec![bad.into()];
            let e = check(&cfg).unwrap_err();
            assert_eq!(crate::error::code_of(&e), Code::Config, "{bad:?}");
        }
        cfg.mail_to = vec!["a@b".into()];
        cfg.sendmail = "/nonexistent/sendmail".into();
        let e = check(&cfg).unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent/sendmail"), "{e:#}");
    }
}
