//! The age secret key that opens an encrypted backup, given at restore
//! time: a file, a `file://` or `http(s)://` URL, or pasted on the terminal.
//! It is never stored in the rescue image (the image carries only the
//! public key, see [`super::source`]); with no key and no terminal the
//! restore refuses instead of waiting for an answer nobody gives.
//!
//! Hands on a [`Key`] that [`super::open_file`] decrypts with.

use std::io::{BufRead, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::error::{Code, fail};
use crate::exec::Cmd;

/// An identity file holds a line or a few; anything bigger is not one.
const MAX_KEY_BYTES: usize = 64 << 10;

/// Age identities and where they came from (for messages).
pub struct Key {
    pub ids: Vec<Box<dyn age::Identity + Send + Sync>>,
    pub origin: String,
}

/// Names the origin only: a secret key must never reach a log.
impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({} identities from {})", self.ids.len(), self.origin)
    }
}

impl Key {
    /// Parses identity-file text (`AGE-SECRET-KEY-1...` lines, `#`
    /// comments), as `age -i` reads it.
    pub fn parse(text: &[u8], origin: &str) -> Result<Key> {
        let bad = |why: String| {
            fail(
                Code::Usage,
                format!(
                    "{origin}: {why}; an age secret key is one line AGE-SECRET-KEY-1... (age-keygen writes it)"
                ),
            )
        };
        let ids = age::IdentityFile::from_buffer(std::io::BufReader::new(text))
            .map_err(|e| bad(format!("not an age identity ({e})")))?
            .into_identities()
            .map_err(|e| bad(format!("not an age identity ({e})")))?;
        if ids.is_empty() {
            return Err(bad("holds no age secret key".into()));
        }
        Ok(Key {
            ids,
            origin: origin.to_string(),
        })
    }
}

/// Reads the key named by `--identity`: a path, `file:///PATH`,
/// `http://HOST[:PORT]/PATH` or `https://...`.
pub fn load(spec: &str) -> Result<Key> {
    let origin = format!("--identity {spec}");
    let text = if let Some(p) = spec.strip_prefix("file://") {
        read_file(p, &origin)?
    } else if spec.starts_with("http://") {
        http_get(spec).map_err(|e| {
            fail(
                Code::Usage,
                format!("{origin}: {e:#}; check the URL and the network"),
            )
        })?
    } else if spec.starts_with("https://") {
        https_get(spec, &origin)?
    } else if spec.contains("://") {
        return Err(fail(
            Code::Usage,
            format!("{origin}: unknown scheme; give a FILE, file:///PATH, http:// or https:// URL"),
        ));
    } else {
        read_file(spec, &origin)?
    };
    Key::parse(&text, &origin)
}

fn read_file(path: &str, origin: &str) -> Result<Vec<u8>> {
    let f = std::fs::File::open(path)
        .map_err(|e| fail(Code::Usage, format!("{origin}: cannot read {path}: {e}")))?;
    let mut buf = Vec::new();
    f.take(MAX_KEY_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("reading {path}"))?;
    if buf.len() > MAX_KEY_BYTES {
        return Err(fail(
            Code::Usage,
            format!("{origin}: {path} is too big for an age identity file"),
        ));
    }
    Ok(buf)
}

/// GET over HTTP/1.0 (RFC 1945): the answer ends when the server closes
/// the connection, so there is no chunked encoding to undo. Built in: the
/// rescue system may have no curl, and a key server on the LAN is plain
/// HTTP more often than not.
fn http_get(url: &str) -> Result<Vec<u8>> {
    let rest = &url["http://".len()..];
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        anyhow::bail!("no host (user names are not supported)");
    }
    // [v6]:port, host:port, host.
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (
            h,
            p.parse::<u16>()
                .map_err(|_| anyhow::anyhow!("port {p:?} is not a number"))?,
        ),
        _ => (authority, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("resolving {host}"))?
        .collect();
    let mut last = None;
    let mut conn = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, Duration::from_secs(10)) {
            Ok(s) => {
                conn = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let mut s = match (conn, last) {
        (Some(s), _) => s,
        (None, Some(e)) => return Err(e).with_context(|| format!("connecting to {authority}")),
        (None, None) => anyhow::bail!("{host} has no address"),
    };
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: mkrescue\r\nAccept: */*\r\n\r\n"
    )
    .context("sending the request")?;
    let mut buf = Vec::new();
    s.take((MAX_KEY_BYTES + 8192) as u64)
        .read_to_end(&mut buf)
        .context("reading the answer")?;
    let end = memchr::memmem::find(&buf, b"\r\n\r\n").context("the answer has no header end")?;
    let status = buf[..end].lines().next().transpose()?.unwrap_or_default();
    // "HTTP/1.1 200 OK"
    let code = status.split_whitespace().nth(1).unwrap_or("");
    if code != "200" {
        anyhow::bail!("the server answered {status:?}");
    }
    let body = buf[end + 4..].to_vec();
    if body.len() > MAX_KEY_BYTES {
        anyhow::bail!("the answer is too big for an age identity file");
    }
    Ok(body)
}

/// HTTPS through curl: TLS needs a library mkrescue does not carry; the
/// rescue system has curl when the host has it (src/rescue/tools.rs).
fn https_get(url: &str, origin: &str) -> Result<Vec<u8>> {
    let have_curl = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("curl").is_file()));
    if !have_curl {
        return Err(fail(
            Code::Host,
            format!(
                "{origin}: https needs curl, which this system lacks (install curl on the host before building the rescue system), or give a FILE or http:// URL"
            ),
        ));
    }
    // -f: an HTTP error is an error, not a page; --max-filesize: a key is small.
    Cmd::new("curl")
        .args(["-fsSL", "--proto", "=https", "--max-time", "60"])
        .args(["--max-filesize", &MAX_KEY_BYTES.to_string()])
        .arg(url)
        .output()
        .map_err(|e| fail(Code::Usage, format!("{origin}: {e:#}")))
}

/// Whether stdin is a terminal someone can paste into.
pub fn stdin_is_tty() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}

/// The key for an encrypted backup `what`: from `given`, else asked on the
/// terminal, else a refusal naming the way to give it.
pub fn resolve(given: Option<&str>, what: &str, recipient: Option<&str>) -> Result<Key> {
    if let Some(spec) = given {
        return load(spec);
    }
    let to = recipient.map(|r| format!(" (to {r})")).unwrap_or_default();
    if !stdin_is_tty() {
        return Err(fail(
            Code::Usage,
            format!(
                "{what} is encrypted{to}: give --identity FILE or URL (the age secret key; it is never stored in the rescue image)"
            ),
        ));
    }
    prompt(what, &to)
}

/// Asks for the key on the terminal, without echo.
fn prompt(what: &str, to: &str) -> Result<Key> {
    eprint!(
        "mkrescue: {what} is encrypted{to}.\nPaste the age secret key (AGE-SECRET-KEY-1...) and press Enter: "
    );
    let _ = std::io::stderr().flush();
    let echo = crate::sys::term::NoEcho::new();
    let mut line = String::new();
    let n = std::io::stdin().lock().read_line(&mut line);
    drop(echo);
    eprintln!();
    n.context("reading the key from the terminal")?;
    let line = line.trim();
    if line.is_empty() {
        return Err(fail(
            Code::Usage,
            format!(
                "{what} is encrypted and no key was given: paste the key or give --identity FILE or URL"
            ),
        ));
    }
    Key::parse(line.as_bytes(), "the pasted key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_text_is_checked() {
        use age::secrecy::ExposeSecret;
        let k = age::x25519::Identity::generate();
        let text = format!(
            "# created: now\n# public key: {}\n{}\n",
            k.to_public(),
            k.to_string().expose_secret()
        );
        assert_eq!(Key::parse(text.as_bytes(), "f").unwrap().ids.len(), 1);
        for bad in [
            "",
            "# only a comment\n",
            "age1notasecret\n",
            "AGE-SECRET-KEY-1XYZ\n",
        ] {
            let e = Key::parse(bad.as_bytes(), "the pasted key").unwrap_err();
            let m = format!("{e:#}");
            assert!(m.starts_with("the pasted key: "), "{m}");
            assert!(m.contains("AGE-SECRET-KEY-1..."), "{m}");
        }
    }

    #[test]
    fn unknown_scheme_and_missing_file() {
        let e = load("ftp://h/k").unwrap_err();
        assert!(format!("{e:#}").contains("unknown scheme"), "{e:#}");
        let e = load("/nonexistent/key.txt").unwrap_err();
        assert!(
            format!("{e:#}").contains("cannot read /nonexistent/key.txt"),
            "{e:#}"
        );
        assert_eq!(crate::error::code_of(&e), Code::Usage);
    }
}
