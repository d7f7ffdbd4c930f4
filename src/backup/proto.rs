//! The protocol of `mkrescue serve`, version 1, and its client side (what
//! the `ssh://` target speaks when the server answers with it).
//!
//! The client runs `ssh HOST -- mkrescue serve --append-only DIR`. Behind a
//! forced command (`command="mkrescue serve --append-only /srv/backup/web1",
//! restrict` in `authorized_keys`) the server's own DIR is used and the
//! client's request only decides whether it is let in (see
//! [`super::serve::check_original_command`]). Everything then runs over
//! the session's stdin (client to server) and stdout (server to client);
//! stderr carries only the server's log.
//!
//! Lines are UTF-8 without NUL or CR, end in `\n` and are at most
//! [`MAX_LINE`] bytes; words are separated by one space. Data travels in
//! frames: a line `DATA ... LEN` followed by exactly LEN (1..=[`MAX_DATA`])
//! bytes.
//!
//! ```text
//! S: mkrescue-serve 1 append-only          greeting: the versions spoken
//! C: PUT SLOT NAME                         start a file (SLOT 1..=4); S: OK | ERR
//! C: DATA SLOT LEN \n <LEN bytes>          its bytes; no answer (on a failure the
//!                                          server sends ERR and closes)
//! C: END SLOT SIZE                         it is complete with SIZE bytes; S: OK | ERR
//! C: COMMIT                                check the backup (manifest + archive)
//!                                          and link it into place; S: OK N | ERR
//! C: LIST                                  S: OK N, then N lines `SIZE NAME`
//! C: GET NAME                              S: OK SIZE, DATA LEN frames, END SIZE | ERR
//! C: QUIT (or end of input)                S: OK, and the server exits
//! S: ERR KIND MESSAGE                      KIND: refused, invalid, exists,
//!                                          nospace, notfound, protocol, io
//! ```
//!
//! There is no verb that deletes, renames, truncates or overwrites: an
//! unknown verb is refused (`ERR refused`), a name that exists is refused
//! (`ERR exists`), and a NAME must be a backup file name
//! ([`super::names::parse`]). An upload is invisible until COMMIT has
//! checked it; a session that ends before leaves nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{ChildStdin, ChildStdout};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};

use crate::error::{Code, fail};
use crate::exec::{Cmd, Duplex};

/// The protocol versions this build speaks.
pub const VERSION: u32 = 1;
/// The first word of the greeting.
pub const GREETING: &str = "mkrescue-serve";
/// Longest line, newline included.
pub const MAX_LINE: usize = 4096;
/// Largest data frame.
pub const MAX_DATA: usize = 1 << 20;
/// How many files one session may have open for writing.
pub const MAX_SLOTS: u32 = 4;

/// Reads one line (without its `\n`); `None` at the end of input. A line
/// that is too long, not UTF-8, or holds a NUL or CR is an error.
pub fn read_line(r: &mut impl BufRead) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = r.take(MAX_LINE as u64).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        let why = if n >= MAX_LINE {
            "a line longer than 4096 bytes"
        } else {
            "input ended inside a line"
        };
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, why));
    }
    buf.pop();
    if buf.contains(&b'\r') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "a carriage return in a line",
        ));
    }
    // A NUL is left in: the name check refuses it by name.
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "a line is not UTF-8"))
}

/// One request of a client.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    Put { slot: u32, name: String },
    Data { slot: u32, len: usize },
    End { slot: u32, size: u64 },
    Commit,
    List,
    Get { name: String },
    Quit,
}

/// Why a request line was not taken: `refused` for verbs the protocol
/// does not have (delete, rename...), `protocol` for a malformed line.
#[derive(Debug, PartialEq, Eq)]
pub enum BadRequest {
    Refused(String),
    Protocol(String),
}

impl Request {
    pub fn parse(line: &str) -> Result<Request, BadRequest> {
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        let p = |w: &str| BadRequest::Protocol(format!("{verb}: {w}"));
        let num = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| p(&format!("{s:?} is not a number")))
        };
        let slot = |s: &str| -> Result<u32, BadRequest> {
            match s.parse::<u32>() {
                Ok(n) if (1..=MAX_SLOTS).contains(&n) => Ok(n),
                _ => Err(p(&format!("slot {s:?} is not 1 to {MAX_SLOTS}"))),
            }
        };
        let two = || rest.split_once(' ').ok_or_else(|| p("needs two arguments"));
        let none = |r: Request| {
            if rest.is_empty() {
                Ok(r)
            } else {
                Err(p("takes no arguments"))
            }
        };
        match verb {
            // The name is the rest of the line: spaces and all reach the
            // name check, which refuses them by name.
            "PUT" => {
                let (s, name) = two()?;
                Ok(Request::Put {
                    slot: slot(s)?,
                    name: name.to_string(),
                })
            }
            "DATA" => {
                let (s, l) = two()?;
                let len = num(l)? as usize;
                if len == 0 || len > MAX_DATA {
                    return Err(p(&format!("a frame of {len} bytes (1 to {MAX_DATA})")));
                }
                Ok(Request::Data {
                    slot: slot(s)?,
                    len,
                })
            }
            "END" => {
                let (s, n) = two()?;
                Ok(Request::End {
                    slot: slot(s)?,
                    size: num(n)?,
                })
            }
            "GET" => Ok(Request::Get {
                name: rest.to_string(),
            }),
            "COMMIT" => none(Request::Commit),
            "LIST" => none(Request::List),
            "QUIT" => none(Request::Quit),
            other => Err(BadRequest::Refused(format!(
                "{:?}: not a request of protocol {VERSION}; this server is append-only: it adds, lists and reads backups and never deletes, renames, truncates or overwrites one (the backup server prunes with `mkrescue prune`)",
                other.chars().take(40).collect::<String>()
            ))),
        }
    }
}

/// Parses the greeting; `None` when the line is no greeting of ours.
pub fn parse_greeting(line: &str) -> Option<Vec<u32>> {
    let mut w = line.split(' ');
    if w.next() != Some(GREETING) {
        return None;
    }
    let v: Vec<u32> = w.filter_map(|x| x.parse().ok()).collect();
    (!v.is_empty()).then_some(v)
}

/// The client's end of one session.
/// Dropped unfinished (an error, a reader that stopped early), its ssh is
/// killed: the server sees the end of its input and removes what was not
/// committed.
pub struct Session {
    run: Duplex,
    to: std::io::BufWriter<ChildStdin>,
    from: BufReader<ChildStdout>,
    /// `ssh://...` for messages.
    what: String,
}

impl Session {
    /// Starts `cmd` (the ssh command line) and reads the greeting. `None`
    /// when the other end does not speak the protocol (a plain shell
    /// account, an older mkrescue): the caller falls back to `cat`.
    pub fn start(cmd: Cmd, what: &str) -> Result<Option<Session>> {
        let mut run = cmd.spawn_duplex()?;
        let to = std::io::BufWriter::with_capacity(
            MAX_DATA + 64,
            run.child.stdin.take().context("ssh stdin")?,
        );
        let mut from = BufReader::new(run.child.stdout.take().context("ssh stdout")?);
        let line = read_line(&mut from).unwrap_or(None);
        let Some(versions) = line.as_deref().and_then(parse_greeting) else {
            drop(to);
            let _ = run.wait();
            return Ok(None);
        };
        if !versions.contains(&VERSION) {
            return Err(fail(
                Code::Failed,
                format!(
                    "backup server {what} speaks mkrescue serve protocol {versions:?}, this mkrescue {VERSION}: install the same mkrescue version on both"
                ),
            ));
        }
        Ok(Some(Session {
            run,
            to,
            from,
            what: what.to_string(),
        }))
    }

    fn send(&mut self, line: &str) -> std::io::Result<()> {
        self.to.write_all(line.as_bytes())?;
        self.to.write_all(b"\n")
    }

    /// Reads an answer: the words after `OK`, or the server's error.
    fn answer(&mut self) -> Result<String> {
        let line = read_line(&mut self.from)
            .with_context(|| format!("reading the answer of {}", self.what))?;
        match line {
            Some(l) if l == "OK" => Ok(String::new()),
            Some(l) if l.starts_with("OK ") => Ok(l[3..].to_string()),
            Some(l) if l.starts_with("ERR ") => Err(self.error(&l)),
            Some(l) => bail!("{}: unexpected answer {l:?}", self.what),
            None => Err(self.ended()),
        }
    }

    /// An `ERR KIND MESSAGE` line as one error naming the server.
    fn error(&self, line: &str) -> anyhow::Error {
        let rest = line.strip_prefix("ERR ").unwrap_or(line);
        let (kind, msg) = rest.split_once(' ').unwrap_or((rest, ""));
        let code = match kind {
            "refused" | "exists" | "notfound" => Code::Usage,
            "invalid" => Code::Input,
            _ => Code::Failed,
        };
        fail(code, format!("backup server {}: {msg}", self.what))
    }

    fn ended(&self) -> anyhow::Error {
        anyhow::anyhow!("backup server {} closed the session", self.what)
    }

    /// Sends one request and waits for its answer.
    pub fn request(&mut self, line: &str) -> Result<String> {
        let sent = self.send(line).and_then(|_| self.to.flush());
        match (sent, self.answer()) {
            (_, Ok(a)) => Ok(a),
            (Err(e), Err(_)) => Err(e).with_context(|| format!("talking to {}", self.what)),
            (Ok(()), Err(e)) => Err(e),
        }
    }

    /// After a failed write: the server's reason (it sends ERR, then
    /// closes), else the write error.
    fn why_write_failed(&mut self, e: std::io::Error) -> std::io::Error {
        match read_line(&mut self.from) {
            Ok(Some(l)) if l.starts_with("ERR ") => {
                std::io::Error::other(format!("{:#}", self.error(&l)))
            }
            _ => e,
        }
    }

    /// Writes one data frame of an upload slot.
    fn data(&mut self, slot: u32, b: &[u8]) -> std::io::Result<()> {
        let r = self
            .send(&format!("DATA {slot} {}", b.len()))
            .and_then(|_| self.to.write_all(b));
        r.map_err(|e| self.why_write_failed(e))
    }

    /// Names and sizes of the backup files.
    pub fn list(&mut self) -> Result<Vec<(String, u64)>> {
        let n: usize = self
            .request("LIST")?
            .parse()
            .with_context(|| format!("{}: a bad LIST answer", self.what))?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let l = read_line(&mut self.from)?.ok_or_else(|| self.ended())?;
            let (size, name) = l
                .split_once(' ')
                .with_context(|| format!("{}: a bad LIST line {l:?}", self.what))?;
            out.push((name.to_string(), size.parse().unwrap_or(0)));
        }
        Ok(out)
    }

    /// Ends the session cleanly (QUIT) and waits for ssh.
    pub fn quit(mut self) -> Result<()> {
        self.request("QUIT")?;
        self.finish()
    }

    fn finish(self) -> Result<()> {
        let Session { run, to, from, .. } = self;
        // The end of its input ends the server.
        drop(to);
        drop(from);
        run.wait()
    }
}

/// A file of a backup read through a session (`GET`).
pub struct Get {
    s: Session,
    name: String,
    size: u64,
    got: u64,
    /// Bytes left in the current frame.
    left: usize,
    done: bool,
}

impl Get {
    pub fn start(mut s: Session, name: &str) -> Result<Get> {
        let size = s.request(&format!("GET {name}"))?;
        let size = size
            .parse()
            .with_context(|| format!("{}: a bad GET answer", s.what))?;
        Ok(Get {
            s,
            name: name.to_string(),
            size,
            got: 0,
            left: 0,
            done: false,
        })
    }
}

impl Read for Get {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        while self.left == 0 {
            let bad = |w: String| std::io::Error::new(std::io::ErrorKind::InvalidData, w);
            let line = read_line(&mut self.s.from)?
                .ok_or_else(|| bad(format!("{}: {} cut off", self.s.what, self.name)))?;
            if let Some(n) = line.strip_prefix("DATA ") {
                self.left = n
                    .parse()
                    .ok()
                    .filter(|&n| n > 0 && n <= MAX_DATA)
                    .ok_or_else(|| bad(format!("{}: a bad frame {line:?}", self.s.what)))?;
            } else if let Some(n) = line.strip_prefix("END ") {
                if n.parse::<u64>().ok() != Some(self.got) || self.got != self.size {
                    return Err(bad(format!(
                        "{}: {} ended after {} of {} bytes",
                        self.s.what, self.name, self.got, self.size
                    )));
                }
                self.done = true;
                return Ok(0);
            } else if line.starts_with("ERR ") {
                return Err(std::io::Error::other(format!("{:#}", self.s.error(&line))));
            } else {
                return Err(bad(format!("{}: unexpected {line:?}", self.s.what)));
            }
        }
        let n = buf.len().min(self.left);
        let n = self.s.from.read(&mut buf[..n])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{}: {} cut off", self.s.what, self.name),
            ));
        }
        self.left -= n;
        self.got += n as u64;
        Ok(n)
    }
}

/// A session shared by the uploads of one backup (archive and manifest
/// are written at the same time, as frames of two slots).
pub type Shared = Arc<Mutex<Session>>;

/// Starts the uploads of one backup on session `s`: one slot per name.
pub fn put(s: Session, names: &[&str]) -> Result<Vec<Put>> {
    let shared: Shared = Arc::new(Mutex::new(s));
    let mut out = Vec::new();
    {
        let mut s = shared.lock().expect("session lock");
        for (i, n) in names.iter().enumerate() {
            let slot = i as u32 + 1;
            s.request(&format!("PUT {slot} {n}"))?;
            out.push(Put {
                s: shared.clone(),
                slot,
                buf: Vec::with_capacity(MAX_DATA),
                size: 0,
            });
        }
    }
    Ok(out)
}

/// One file being uploaded through a shared session.
pub struct Put {
    s: Shared,
    slot: u32,
    buf: Vec<u8>,
    size: u64,
}

impl Put {
    fn flush_frame(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut s = self
            .s
            .lock()
            .map_err(|_| std::io::Error::other("session lock"))?;
        s.data(self.slot, &self.buf)?;
        self.size += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Sends the rest and `END`: the server has the whole file, synced,
    /// still invisible.
    pub fn end(mut self) -> Result<Shared> {
        self.flush_frame()?;
        let mut s = self.s.lock().expect("session lock");
        s.request(&format!("END {} {}", self.slot, self.size))?;
        drop(s);
        Ok(self.s.clone())
    }
}

impl Write for Put {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = b.len().min(MAX_DATA - self.buf.len());
        self.buf.extend_from_slice(&b[..n]);
        if self.buf.len() == MAX_DATA {
            self.flush_frame()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Checks and links every ended upload of the session; then ends it.
pub fn commit(s: Shared) -> Result<()> {
    let mut g = s.lock().expect("session lock");
    g.request("COMMIT")?;
    g.request("QUIT")?;
    drop(g);
    let s = Arc::try_unwrap(s)
        .map_err(|_| anyhow::anyhow!("an upload of the session is still open"))?
        .into_inner()
        .expect("session lock");
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_refuse() {
        assert_eq!(
            Request::parse("PUT 1 a b"),
            Ok(Request::Put {
                slot: 1,
                name: "a b".into()
            })
        );
        assert_eq!(
            Request::parse("DATA 2 1048576"),
            Ok(Request::Data {
                slot: 2,
                len: 1 << 20
            })
        );
        assert_eq!(
            Request::parse("END 1 0"),
            Ok(Request::End { slot: 1, size: 0 })
        );
        assert_eq!(Request::parse("LIST"), Ok(Request::List));
        assert_eq!(
            Request::parse("GET ../x"),
            Ok(Request::Get {
                name: "../x".into()
            })
        );
        for bad in [
            "DATA 1 0",
            "DATA 1 1048577",
            "DATA 1 -1",
            "PUT 0 x",
            "PUT 5 x",
            "PUT 1",
            "END 1 x",
            "LIST x",
            "QUIT now",
        ] {
            assert!(
                matches!(Request::parse(bad), Err(BadRequest::Protocol(_))),
                "{bad}"
            );
        }
        for verb in [
            "DELETE x",
            "RM x",
            "RENAME a b",
            "TRUNCATE x",
            "put 1 x",
            "",
        ] {
            assert!(
                matches!(Request::parse(verb), Err(BadRequest::Refused(_))),
                "{verb}"
            );
        }
    }

    #[test]
    fn lines_are_bounded_and_clean() {
        let mut r = std::io::Cursor::new(b"LIST\nQUIT\n".to_vec());
        assert_eq!(read_line(&mut r).unwrap().as_deref(), Some("LIST"));
        assert_eq!(read_line(&mut r).unwrap().as_deref(), Some("QUIT"));
        assert_eq!(read_line(&mut r).unwrap(), None);
        let long = vec![b'a'; MAX_LINE + 10];
        assert!(read_line(&mut std::io::Cursor::new(long)).is_err());
        assert!(read_line(&mut std::io::Cursor::new(b"LI\r\n".to_vec())).is_err());
        assert!(read_line(&mut std::io::Cursor::new(b"cut".to_vec())).is_err());
        assert!(read_line(&mut std::io::Cursor::new(b"\xff\n".to_vec())).is_err());
        // A NUL stays in, for the name check to refuse by name.
        assert_eq!(
            read_line(&mut std::io::Cursor::new(b"GET a\0b\n".to_vec()))
                .unwrap()
                .as_deref(),
            Some("GET a\0b")
        );
    }

    #[test]
    fn greetings() {
        assert_eq!(
            parse_greeting("mkrescue-serve 1 append-only"),
            Some(vec![1])
        );
        assert_eq!(parse_greeting("mkrescue-serve 1 2"), Some(vec![1, 2]));
        assert_eq!(parse_greeting("bash: mkrescue: command not found"), None);
        assert_eq!(parse_greeting("mkrescue-serve"), None);
    }

    proptest::proptest! {
        /// Arbitrary input never panics the line reader or the parser.
        #[test]
        fn any_bytes_are_a_line_or_an_error(b in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let mut r = std::io::Cursor::new(b);
            while let Ok(Some(l)) = read_line(&mut r) {
                let _ = Request::parse(&l);
            }
        }
    }
}
