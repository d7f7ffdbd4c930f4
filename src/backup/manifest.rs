//! The manifest that sits beside every archive: one JSON line of facts
//! about the backup, then one JSON line per member with its type, size and
//! (for regular files) the sha256 of its content; zstd-compressed.
//!
//! `verify` re-reads the archive against it, and `restore` uses it to name
//! the files a damaged archive lost (even when their headers went with the
//! damage). Names are arbitrary bytes; JSON strings are UTF-8, so bytes that
//! are not valid UTF-8 and `%` itself are written as `%XX` ([`escape`]).

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::pax::Kind;

/// The first line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Head {
    /// Format version of archive and manifest.
    pub mkrescue_backup: u32,
    pub host: String,
    /// Seconds since 1970 (UTC) when the backup started.
    pub created: i64,
    /// The directories that were backed up (absolute, on the host).
    pub paths: Vec<String>,
    pub archive: String,
    /// Whether the archive is age-encrypted.
    pub encrypted: bool,
}

/// One member.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Item {
    /// Member name, escaped ([`escape`]).
    pub path: String,
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Member name bytes as a JSON-safe string: valid UTF-8 stays, `%` and
/// every byte of an invalid sequence become `%XX`.
pub fn escape(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '%' {
                out.push_str("%25");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The inverse of [`escape`].
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Writes a manifest as it is built.
pub struct Writer<W: Write> {
    z: zstd::Encoder<'static, W>,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W, head: &Head) -> Result<Self> {
        let mut z = zstd::Encoder::new(out, 3).context("starting the manifest")?;
        serde_json::to_writer(&mut z, head)?;
        z.write_all(b"\n")?;
        Ok(Writer { z })
    }

    pub fn add(&mut self, item: &Item) -> Result<()> {
        serde_json::to_writer(&mut self.z, item)?;
        self.z.write_all(b"\n")?;
        Ok(())
    }

    pub fn finish(self) -> Result<W> {
        Ok(self.z.finish()?)
    }
}

/// A manifest read back.
#[derive(Debug)]
pub struct Manifest {
    pub head: Head,
    pub items: Vec<Item>,
}

pub fn read(r: impl std::io::Read, what: &Path) -> Result<Manifest> {
    let z = zstd::Decoder::new(r).with_context(|| format!("reading {}", what.display()))?;
    let mut lines = std::io::BufReader::new(z).lines();
    let first = lines
        .next()
        .transpose()
        .with_context(|| format!("reading {}", what.display()))?
        .with_context(|| format!("{} is empty", what.display()))?;
    let head: Head = serde_json::from_str(&first)
        .with_context(|| format!("{}: line 1 is not a manifest header", what.display()))?;
    let mut items = Vec::new();
    for (i, l) in lines.enumerate() {
        let l = l.with_context(|| format!("reading {}", what.display()))?;
        let item: Item = serde_json::from_str(&l).with_context(|| {
            format!("{}: line {} is not a manifest entry", what.display(), i + 2)
        })?;
        items.push(item);
    }
    Ok(Manifest { head, items })
}

/// Only the first line (for `backup list`).
pub fn read_head(r: impl std::io::Read, what: &Path) -> Result<Head> {
    let z = zstd::Decoder::new(r).with_context(|| format!("reading {}", what.display()))?;
    let mut line = String::new();
    std::io::BufReader::new(z)
        .read_line(&mut line)
        .with_context(|| format!("reading {}", what.display()))?;
    serde_json::from_str(&line)
        .with_context(|| format!("{}: line 1 is not a manifest header", what.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_round_trips_any_bytes() {
        for name in [
            b"plain/name".to_vec(),
            b"100%/x".to_vec(),
            b"bad\xff\xfe/\xc3(".to_vec(),
            "ümlaut".as_bytes().to_vec(),
            b"%4".to_vec(),
            b"%".to_vec(),
        ] {
            let e = escape(&name);
            assert_eq!(unescape(&e), name, "{e}");
        }
        assert_eq!(escape(b"a\xffb"), "a%FFb");
    }
}
