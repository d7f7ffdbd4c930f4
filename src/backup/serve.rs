//! `mkrescue serve --append-only DIR`: the backup server's end of an
//! `ssh://` archive target, put in front of a host's key by a forced
//! command in `authorized_keys`:
//!
//! ```text
//! command="mkrescue serve --append-only /srv/backup/web1",restrict ssh-ed25519 AAAA... root@web1
//! ```
//!
//! Through it the host can add a backup, list and read them, and nothing
//! else (the protocol is in [`super::proto`]): a compromised host cannot
//! delete, truncate or overwrite its own backups, nor write outside DIR.
//! Retention runs on the server ([`super::prune`]).
//!
//! Every name from the client is checked against the backup naming scheme
//! ([`super::names`]) and opened relative to DIR without following
//! symlinks ([`crate::sys::dirfd`]); a stamp more than a day ahead of the
//! server's clock is refused, as it would outlive every real backup under
//! the server's retention. An upload is written unnamed, synced,
//! and linked into place (never replacing a name) only after COMMIT has
//! read its manifest and checked the archive against it, as `backup
//! verify` does; until then nothing is listed, and a session cut off
//! leaves nothing.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Seek, Write};
use std::path::Path;

use anyhow::Result;

use super::names::{self, Kind};
use super::proto::{self, BadRequest, Request};
use crate::error::{Code, fail};
use crate::sys::dirfd::{Dir, TempFile};

/// What `mkrescue serve` serves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The backup directory of this key (from the forced command).
    pub dir: std::path::PathBuf,
    /// `SSH_ORIGINAL_COMMAND`: what the client asked to run, if anything.
    pub original_command: Option<String>,
}

/// Lets in a client that asked for the serve protocol (`mkrescue serve
/// ...`, as the `ssh://` target does) or for no command at all; refuses
/// anything else (a shell command, rsync, scp, sftp) with one line.
pub fn check_original_command(cmd: Option<&str>) -> Result<()> {
    let Some(c) = cmd else {
        return Ok(());
    };
    if let Some(w) = shlex::split(c) {
        let prog = w.first().map(String::as_str).unwrap_or("");
        if (prog == "mkrescue" || prog.ends_with("/mkrescue"))
            && w.get(1).map(String::as_str) == Some("serve")
        {
            return Ok(());
        }
    }
    let shown: String = c.chars().take(80).collect();
    Err(fail(
        Code::Usage,
        format!(
            "this key may only speak the mkrescue serve protocol (append-only backups); refused {shown:?}: shells, rsync, scp and sftp are not allowed. Back up with `mkrescue backup --method archive --target ssh://...`"
        ),
    ))
}

/// `mkrescue serve`: one session on stdin and stdout.
pub fn run(o: &ServeOptions) -> Result<()> {
    check_original_command(o.original_command.as_deref())?;
    let dir = Dir::open(&o.dir).map_err(|e| {
        fail(
            Code::Failed,
            format!(
                "serve: backup directory {}: {e}; create it for this host's backups (`mkdir -p {}`, owned by the user of the key)",
                o.dir.display(),
                o.dir.display()
            ),
        )
    })?;
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    serve(&dir, stdin.lock(), stdout.lock())
}

/// An upload of the session.
struct Slot {
    name: String,
    temp: TempFile,
    written: u64,
    ended: bool,
}

/// Why a request failed: sent as `ERR KIND MESSAGE`. A fatal one ends the
/// session (the stream may be out of step, or the disk is full).
struct Refusal {
    kind: &'static str,
    msg: String,
    fatal: bool,
}

fn soft(kind: &'static str, msg: impl Into<String>) -> Refusal {
    Refusal {
        kind,
        msg: msg.into(),
        fatal: false,
    }
}

fn fatal(kind: &'static str, msg: impl Into<String>) -> Refusal {
    Refusal {
        kind,
        msg: msg.into(),
        fatal: true,
    }
}

/// A write error on the server's disk: a full one named as such.
fn disk_error(dir: &Dir, what: &str, e: &std::io::Error) -> Refusal {
    if matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)) {
        fatal(
            "nospace",
            format!(
                "no space left in {} on the backup server ({what}); nothing was stored: free space there (`mkrescue prune {}`) and back up again",
                dir.path().display(),
                dir.path().display()
            ),
        )
    } else {
        fatal("io", format!("{what} in {}: {e}", dir.path().display()))
    }
}

/// Serves one session: `input` from the client, `out` to it. Returns at
/// QUIT or the end of input; uncommitted uploads are dropped (unnamed
/// files vanish, hidden ones are removed).
pub fn serve(dir: &Dir, mut input: impl BufRead, mut out: impl Write) -> Result<()> {
    writeln!(out, "{} {} append-only", proto::GREETING, proto::VERSION)?;
    out.flush()?;
    let mut slots: BTreeMap<u32, Slot> = BTreeMap::new();
    loop {
        let line = match proto::read_line(&mut input) {
            Ok(Some(l)) => l,
            Ok(None) => {
                if !slots.is_empty() {
                    log::warn!(
                        "serve: the client left before COMMIT; {} dropped",
                        slots
                            .values()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                return Ok(());
            }
            Err(e) => {
                let r = fatal("protocol", format!("{e}"));
                return send_refusal(&mut out, &r);
            }
        };
        let result = match Request::parse(&line) {
            Err(BadRequest::Refused(m)) => Err(soft("refused", m)),
            Err(BadRequest::Protocol(m)) => Err(fatal("protocol", m)),
            Ok(Request::Quit) => {
                writeln!(out, "OK")?;
                out.flush()?;
                return Ok(());
            }
            Ok(req) => handle(dir, &mut slots, req, &mut input, &mut out),
        };
        if let Err(r) = result {
            if r.fatal {
                drop(slots);
                return send_refusal(&mut out, &r);
            }
            log::warn!("serve: refused: {}", r.msg);
            writeln!(out, "ERR {} {}", r.kind, one_line(&r.msg))?;
        }
        out.flush()?;
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// Sends a fatal refusal and fails with it (the exit code and stderr line
/// of `mkrescue serve`).
fn send_refusal(out: &mut impl Write, r: &Refusal) -> Result<()> {
    let _ = writeln!(out, "ERR {} {}", r.kind, one_line(&r.msg));
    let _ = out.flush();
    Err(fail(Code::Failed, format!("serve: {}", r.msg)))
}

fn handle(
    dir: &Dir,
    slots: &mut BTreeMap<u32, Slot>,
    req: Request,
    input: &mut impl BufRead,
    out: &mut impl Write,
) -> Result<(), Refusal> {
    let io = |e: std::io::Error| fatal("io", format!("talking to the client: {e}"));
    match req {
        Request::Put { slot, name } => {
            let n = names::parse(&name).map_err(|w| soft("refused", format!("name {w}")))?;
            check_stamp(n.stamp).map_err(|w| soft("refused", format!("{name}: {w}")))?;
            if slots.contains_key(&slot) {
                return Err(fatal("protocol", format!("slot {slot} is in use")));
            }
            if slots.values().any(|s| s.name == name)
                || dir.exists(&name).map_err(|e| disk_error(dir, &name, &e))?
            {
                return Err(soft(
                    "exists",
                    format!("{name} exists; backups are never overwritten"),
                ));
            }
            let temp = dir
                .create_temp(&name)
                .map_err(|e| disk_error(dir, &format!("creating {name}"), &e))?;
            slots.insert(
                slot,
                Slot {
                    name,
                    temp,
                    written: 0,
                    ended: false,
                },
            );
            writeln!(out, "OK").map_err(io)
        }
        Request::Data { slot, len } => {
            let mut buf = vec![0u8; len];
            input.read_exact(&mut buf).map_err(|e| {
                fatal(
                    "protocol",
                    format!("the upload was cut off inside a frame: {e}"),
                )
            })?;
            let s = match slots.get_mut(&slot) {
                Some(s) if !s.ended => s,
                _ => {
                    return Err(fatal(
                        "protocol",
                        format!("DATA for slot {slot}, which is not open"),
                    ));
                }
            };
            s.temp.file.write_all(&buf).map_err(|e| {
                disk_error(dir, &format!("after {} bytes of {}", s.written, s.name), &e)
            })?;
            s.written += len as u64;
            Ok(())
        }
        Request::End { slot, size } => {
            let s = match slots.get_mut(&slot) {
                Some(s) if !s.ended => s,
                _ => {
                    return Err(fatal(
                        "protocol",
                        format!("END for slot {slot}, which is not open"),
                    ));
                }
            };
            if s.written != size {
                return Err(fatal(
                    "protocol",
                    format!("{}: END says {size} bytes, {} arrived", s.name, s.written),
                ));
            }
            s.temp
                .file
                .sync_all()
                .map_err(|e| disk_error(dir, &format!("syncing {}", s.name), &e))?;
            s.ended = true;
            writeln!(out, "OK").map_err(io)
        }
        Request::Commit => {
            let taken = std::mem::take(slots);
            let n = commit(dir, taken.into_values().collect())?;
            writeln!(out, "OK {n}").map_err(io)
        }
        Request::List => {
            let files: Vec<(String, u64)> = dir
                .regular_files()
                .map_err(|e| fatal("io", format!("listing {}: {e}", dir.path().display())))?
                .into_iter()
                .filter(|(n, _)| names::parse(n).is_ok())
                .collect();
            writeln!(out, "OK {}", files.len()).map_err(io)?;
            for (n, size) in files {
                writeln!(out, "{size} {n}").map_err(io)?;
            }
            Ok(())
        }
        Request::Get { name } => get(dir, &name, out),
        Request::Quit => Ok(()),
    }
}

/// How far ahead of this server's clock a backup's stamp may be (clocks
/// drift; a day is generous).
const MAX_AHEAD: i64 = 86_400;

/// Refuses a stamp from the future: `mkrescue prune` keeps the newest
/// backups per day and month, so a few backups stamped years ahead would
/// push every real one out of retention.
fn check_stamp(stamp: &str) -> Result<(), String> {
    let now = crate::sys::time::now();
    match crate::sys::time::parse_stamp(stamp) {
        Some(t) if t <= now + MAX_AHEAD => Ok(()),
        _ => Err(format!(
            "its time stamp is not a time up to a day ahead of this server's clock ({} UTC); check the host's clock",
            crate::sys::time::datetime(now)
        )),
    }
}

/// Sends one backup file as frames.
fn get(dir: &Dir, name: &str, out: &mut impl Write) -> Result<(), Refusal> {
    names::parse(name).map_err(|w| soft("refused", format!("name {w}")))?;
    let mut f = dir.open_file(name).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            soft("notfound", format!("no {name} in this backup directory"))
        }
        _ => soft("refused", format!("{name}: {e}")),
    })?;
    let io = |e: std::io::Error| fatal("io", format!("sending {name}: {e}"));
    let size = f.metadata().map_err(io)?.len();
    writeln!(out, "OK {size}").map_err(io)?;
    let mut buf = vec![0u8; proto::MAX_DATA];
    let mut sent = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        writeln!(out, "DATA {n}").map_err(io)?;
        out.write_all(&buf[..n]).map_err(io)?;
        sent += n as u64;
    }
    writeln!(out, "END {sent}").map_err(io)
}

/// Checks the uploads of one backup and links them into place: the
/// archive first, so a listed manifest always has its archive.
fn commit(dir: &Dir, mut up: Vec<Slot>) -> Result<usize, Refusal> {
    if up.len() != 2 || up.iter().any(|s| !s.ended) {
        return Err(soft(
            "invalid",
            "COMMIT needs exactly one archive and its manifest, both ended; nothing was stored",
        ));
    }
    up.sort_by_key(|s| names::parse(&s.name).map(|n| n.kind == Kind::Manifest).ok());
    let (a, m) = (&up[0], &up[1]);
    let an = names::parse(&a.name).map_err(|w| soft("refused", w))?;
    let mn = names::parse(&m.name).map_err(|w| soft("refused", w))?;
    if an.kind != Kind::Archive || mn.kind != Kind::Manifest || an.partner() != m.name {
        return Err(soft(
            "invalid",
            format!(
                "{} and {} are not the archive and manifest of one backup; nothing was stored",
                a.name, m.name
            ),
        ));
    }
    check(a, m, an.encrypted).map_err(|e| {
        soft(
            "invalid",
            format!(
                "backup {} fails its check, nothing was stored: {e:#}",
                an.base
            ),
        )
    })?;
    let base = an.base.to_string();
    let mut up = up.into_iter();
    let (a, m) = (up.next().expect("two"), up.next().expect("two"));
    for s in [a, m] {
        let name = s.name.clone();
        s.temp.link(&name).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => soft(
                "exists",
                format!("{name} exists; backups are never overwritten"),
            ),
            _ => disk_error(dir, &format!("storing {name}"), &e),
        })?;
    }
    dir.sync()
        .map_err(|e| disk_error(dir, "syncing the directory", &e))?;
    log::info!("serve: stored backup {base} in {}", dir.path().display());
    Ok(2)
}

/// The checks of an upload before it becomes visible: a plain backup's
/// manifest is read and the archive checked against it file by file (as
/// `backup verify`); an encrypted one (the server has no key) must be two
/// readable age files.
fn check(a: &Slot, m: &Slot, encrypted: bool) -> Result<()> {
    let reopen = |s: &Slot| -> Result<std::fs::File> {
        let mut f = s.temp.file.try_clone()?;
        f.rewind()?;
        Ok(f)
    };
    if encrypted {
        for s in [a, m] {
            age::Decryptor::new(reopen(s)?)
                .map_err(|e| anyhow::anyhow!("{} is no age file: {e}", s.name))?;
        }
        return Ok(());
    }
    let man = super::manifest::read(reopen(m)?, Path::new(&m.name))?;
    if man.head.archive != a.name {
        anyhow::bail!(
            "{} names the archive {:?}, not {}",
            m.name,
            man.head.archive,
            a.name
        );
    }
    let rep = super::check_archive(&man, Box::new(reopen(a)?), &a.name, false)?;
    if !rep.mismatched.is_empty() || !rep.missing.is_empty() {
        anyhow::bail!(
            "{} files differ from the manifest, {} members are unreadable (first: {})",
            rep.mismatched.len(),
            rep.missing.len(),
            rep.mismatched
                .first()
                .or(rep.missing.first())
                .cloned()
                .unwrap_or_default()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(dir: &Dir, input: &[u8]) -> (String, Result<()>) {
        let mut out = Vec::new();
        let r = serve(dir, std::io::Cursor::new(input.to_vec()), &mut out);
        (String::from_utf8_lossy(&out).into_owned(), r)
    }

    const A: &str = "web1-20261205T101112.123456Z.tar.zst";
    const M: &str = "web1-20261205T101112.123456Z.manifest.zst";

    #[test]
    fn original_commands() {
        assert!(check_original_command(None).is_ok());
        assert!(check_original_command(Some("mkrescue serve --append-only '/x'")).is_ok());
        assert!(check_original_command(Some("/usr/bin/mkrescue serve")).is_ok());
        for bad in [
            "rm -rf /srv/backup/web1",
            "rsync --server -logDtpre.iLsfxC . /srv",
            "internal-sftp",
            "mkrescue prune /srv/backup/web1",
            "notmkrescue serve",
            "mkrescue 'serve",
            "",
        ] {
            let e = check_original_command(Some(bad)).unwrap_err();
            assert_eq!(crate::error::code_of(&e), Code::Usage, "{bad}");
        }
    }

    #[test]
    fn refuses_what_is_not_append() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join(A), b"old").unwrap();
        let d = Dir::open(t.path()).unwrap();
        let (out, r) = session(
            &d,
            format!("DELETE {A}\nRENAME {A} x\nPUT 1 {A}\nPUT 1 ../{A}\nPUT 1 /etc/passwd\nPUT 1 a\0b\nGET ../../etc/passwd\nPUT 1 web1-29991231T000000Z.tar.zst\nLIST\nQUIT\n").as_bytes(),
        );
        r.unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "mkrescue-serve 1 append-only");
        assert!(lines[1].starts_with("ERR refused \"DELETE\""), "{out}");
        assert!(lines[2].starts_with("ERR refused \"RENAME\""), "{out}");
        assert!(lines[3].starts_with("ERR exists"), "{out}");
        assert!(lines[4].contains("'/'"), "{out}");
        assert!(lines[5].contains("absolute"), "{out}");
        assert!(lines[6].contains("NUL"), "{out}");
        assert!(lines[7].starts_with("ERR refused"), "{out}");
        assert!(lines[8].contains("ahead of this server's clock"), "{out}");
        assert_eq!(lines[9], "OK 1");
        assert_eq!(lines[10], format!("3 {A}"));
        assert_eq!(lines[11], "OK");
        assert_eq!(std::fs::read(t.path().join(A)).unwrap(), b"old");
    }

    #[test]
    fn a_cut_upload_and_a_bad_backup_leave_nothing() {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open(t.path()).unwrap();
        // Cut inside a frame.
        let (out, r) = session(&d, format!("PUT 1 {A}\nDATA 1 10\nabc").as_bytes());
        assert!(r.is_err());
        assert!(out.contains("ERR protocol"), "{out}");
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
        // Complete, but no backup: refused at COMMIT.
        let (out, r) = session(
            &d,
            format!(
                "PUT 1 {A}\nPUT 2 {M}\nDATA 1 3\nabcDATA 2 3\ndefEND 1 3\nEND 2 3\nCOMMIT\nLIST\n"
            )
            .as_bytes(),
        );
        r.unwrap();
        assert!(
            out.contains("ERR invalid backup web1-20261205T101112.123456Z fails its check"),
            "{out}"
        );
        assert!(out.ends_with("OK 0\n"), "{out}");
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
        // A size that does not match.
        let (out, _) = session(&d, format!("PUT 1 {A}\nDATA 1 3\nabcEND 1 4\n").as_bytes());
        assert!(out.contains("END says 4 bytes, 3 arrived"), "{out}");
    }

    #[test]
    fn get_sends_frames() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join(M), b"hello").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", t.path().join(A)).unwrap();
        let d = Dir::open(t.path()).unwrap();
        let (out, r) = session(&d, format!("GET {M}\nGET {A}\nLIST\n").as_bytes());
        r.unwrap();
        assert!(out.contains("OK 5\nDATA 5\nhelloEND 5\n"), "{out}");
        assert!(out.contains("ERR refused"), "{out}");
        // The symlink is not listed.
        assert!(
            out.ends_with("OK 1\n5 web1-20261205T101112.123456Z.manifest.zst\n"),
            "{out}"
        );
    }
}
