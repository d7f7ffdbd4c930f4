//! The build-time secret scan: nothing that would let someone who finds a
//! rescue image impersonate or break into the host goes into it by
//! accident. Refused unless `[secrets] allow` names the path:
//!
//! - any file holding a PEM private key (`-----BEGIN ... PRIVATE KEY-----`,
//!   RFC 7468 section 2; OpenSSH's own format uses the same armour with
//!   `OPENSSH PRIVATE KEY`, PROTOCOL.key),
//! - `/etc/shadow`, `/etc/gshadow` and their `-` backups (shadow(5)),
//!   SSH host keys (`/etc/ssh/ssh_host_*_key`),
//! - paths matching `[secrets] deny`.
//!
//! ELF files are not read beyond their magic: libcrypto and ssh-keygen
//! carry the armour strings as constants. Takes the finished Manifest,
//! hands on nothing but an error naming the first offending file.

use std::io::Read;
use std::path::Path;

use anyhow::Result;
use rayon::prelude::*;

use crate::config::Secrets;
use crate::error::{Code, fail};
use crate::image::{Kind, Manifest};
use crate::kmod::fnmatch;

/// Paths that are secrets whatever their content.
const DENIED: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/ssh/ssh_host_*_key",
];

const ARMOUR_BEGIN: &[u8] = b"-----BEGIN ";
const ARMOUR_KEY: &[u8] = b"PRIVATE KEY-----";

/// Why a file was refused.
fn finding(path: &Path, data: Option<&[u8]>, cfg: &Secrets) -> Option<&'static str> {
    let p = path.to_string_lossy();
    if cfg.allow.iter().any(|a| fnmatch(a, &p)) {
        return None;
    }
    if DENIED.iter().any(|d| fnmatch(d, &p)) {
        return Some("is a password or host key file");
    }
    if cfg.deny.iter().any(|d| fnmatch(d, &p)) {
        return Some("matches [secrets] deny");
    }
    data.filter(|d| has_private_key(d))
        .map(|_| "holds a private key")
}

/// Whether `data` holds a `-----BEGIN <label>PRIVATE KEY-----` line: the
/// armour on a line of its own (RFC 7468 section 2), so the magic database
/// of file(1), which stores the string NUL-terminated, is no key.
pub fn has_private_key(data: &[u8]) -> bool {
    let mut from = 0;
    while let Some(i) = memchr::memmem::find(&data[from..], ARMOUR_BEGIN) {
        let begin = from + i;
        let label = begin + ARMOUR_BEGIN.len();
        let line_start = begin == 0 || matches!(data[begin - 1], b'\n' | b'\r');
        // A label is upper-case letters and spaces (RFC 7468 section 3).
        let end = data[label..]
            .iter()
            .position(|&b| !(b.is_ascii_uppercase() || b == b' ' || b == b'-'))
            .map_or(data.len(), |n| label + n);
        let line_end = data.get(end).is_none_or(|b| matches!(b, b'\n' | b'\r'));
        if line_start && line_end && data[label..end].ends_with(ARMOUR_KEY) {
            return true;
        }
        from = label;
    }
    false
}

/// Reads a host file unless it is ELF (see the module doc).
fn contents(source: &Path) -> Option<Vec<u8>> {
    let mut f = std::fs::File::open(source).ok()?;
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic).ok()?;
    if n == 4 && &magic == b"\x7fELF" {
        return None;
    }
    let mut data = magic[..n].to_vec();
    f.read_to_end(&mut data).ok()?;
    Some(data)
}

/// Scans every file of the image; the first finding is a host error naming
/// the file and how to allow it.
pub fn scan(m: &Manifest, cfg: &Secrets) -> Result<()> {
    let entries: Vec<_> = m.iter().collect();
    let found = entries.par_iter().find_map_first(|(path, e)| {
        let why = match &e.kind {
            Kind::File { source, .. } => finding(path, contents(source).as_deref(), cfg),
            Kind::Bytes { data } => finding(path, Some(data), cfg),
            _ => finding(path, None, cfg),
        }?;
        let from = match &e.kind {
            Kind::File { source, .. } if source.as_path() != path.as_path() => {
                format!(" (host file {})", source.display())
            }
            _ => String::new(),
        };
        Some(format!(
            "secret scan: {}{from} {why} and must not go into the rescue image; remove it from the configuration or allow it with [secrets] allow = [\"{}\"]",
            path.display(),
            path.display()
        ))
    });
    match found {
        Some(msg) => Err(fail(Code::Host, msg)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armour_labels() {
        assert!(has_private_key(
            b"x\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n"
        ));
        assert!(has_private_key(b"-----BEGIN RSA PRIVATE KEY-----"));
        assert!(has_private_key(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        assert!(!has_private_key(b"-----BEGIN PUBLIC KEY-----\n"));
        assert!(!has_private_key(
            b"-----BEGIN CERTIFICATE-----\n...PRIVATE KEY-----"
        ));
        // file(1)'s magic.mgc: the armour as a NUL-terminated pattern.
        assert!(!has_private_key(
            b"\0\0\0-----BEGIN OPENSSH PRIVATE KEY-----\0\0\0"
        ));
        assert!(has_private_key(b"-----BEGIN EC PRIVATE KEY-----\r\nMHc"));
    }

    #[test]
    fn allow_beats_deny() {
        let cfg = Secrets {
            deny: vec!["/etc/app/*.token".into()],
            allow: vec!["/etc/shadow".into()],
        };
        assert!(finding(Path::new("/etc/shadow"), None, &cfg).is_none());
        assert!(finding(Path::new("/etc/gshadow"), None, &cfg).is_some());
        assert!(finding(Path::new("/etc/app/a.token"), None, &cfg).is_some());
        assert!(finding(Path::new("/etc/ssh/ssh_host_rsa_key"), None, &cfg).is_some());
        assert!(finding(Path::new("/etc/ssh/ssh_host_rsa_key.pub"), None, &cfg).is_none());
    }
}
