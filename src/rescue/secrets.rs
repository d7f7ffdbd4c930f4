//! The build-time secret scan: nothing that would let someone who finds a
//! rescue image impersonate or break into the host goes into it by
//! accident. Refused unless `[secrets] allow` names the path:
//!
//! - any file holding a PEM private key (`-----BEGIN ... PRIVATE KEY-----`,
//!   RFC 7468 section 2; OpenSSH's own format uses the same armour with
//!   `OPENSSH PRIVATE KEY`, PROTOCOL.key) or an armoured OpenPGP secret key
//!   (`-----BEGIN PGP PRIVATE KEY BLOCK-----`, RFC 4880 section 6.2),
//! - an age identity (`AGE-SECRET-KEY-1` and its Bech32 payload, the age
//!   format spec), which is what `mkrescue backup` encrypts with,
//! - a GnuPG 2.1+ key file of `private-keys-v1.d` (a canonical
//!   S-expression starting `(11:private-key` or `(21:protected-private-key`,
//!   or the extended format's `Key: (private-key ...` line),
//! - a borg key file (first line `BORG_KEY ` and the repository id),
//! - an AWS-style credentials file (an `aws_secret_access_key = ...` line),
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
    let d = data?;
    if has_private_key(d) {
        Some("holds a private key")
    } else if has_age_identity(d) {
        Some("holds an age identity (AGE-SECRET-KEY-1...)")
    } else if is_gnupg_key_file(d) {
        Some("is a GnuPG private key file")
    } else if d.starts_with(b"BORG_KEY ") {
        Some("is a borg key file")
    } else if has_aws_secret(d) {
        Some("holds an aws_secret_access_key")
    } else {
        None
    }
}

/// Bech32's alphabet (BIP 173), upper case as age writes identities.
const BECH32: &[u8] = b"QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L";

/// Whether `data` holds an age identity: `AGE-SECRET-KEY-1` then at least
/// the 58 Bech32 characters of a 32-byte key and its checksum, so a
/// document mentioning `AGE-SECRET-KEY-1...` is no key.
pub fn has_age_identity(data: &[u8]) -> bool {
    const HRP: &[u8] = b"AGE-SECRET-KEY-1";
    memchr::memmem::find_iter(data, HRP).any(|i| {
        data[i + HRP.len()..]
            .iter()
            .take_while(|b| BECH32.contains(b))
            .count()
            >= 58
    })
}

/// Whether `data` is a key file of gpg-agent's `private-keys-v1.d`: an
/// unprotected or passphrase-protected secret key, never a
/// `shadowed-private-key` (a stub pointing at a smartcard, no secret).
fn is_gnupg_key_file(data: &[u8]) -> bool {
    data.starts_with(b"(11:private-key")
        || data.starts_with(b"(21:protected-private-key")
        || data.split(|&b| b == b'\n').any(|l| {
            l.starts_with(b"Key: (private-key") || l.starts_with(b"Key: (protected-private-key")
        })
}

/// Whether `data` has an `aws_secret_access_key = VALUE` line (the AWS
/// CLI's credentials file, and the many tools that copy its format).
fn has_aws_secret(data: &[u8]) -> bool {
    data.split(|&b| b == b'\n').any(|l| {
        let l = l.trim_ascii();
        let Some(eq) = l.iter().position(|&b| b == b'=') else {
            return false;
        };
        l[..eq]
            .trim_ascii()
            .eq_ignore_ascii_case(b"aws_secret_access_key")
            && !l[eq + 1..].trim_ascii().is_empty()
    })
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
        let label_text = &data[label..end];
        if line_start
            && line_end
            && (label_text.ends_with(ARMOUR_KEY) || label_text == b"PGP PRIVATE KEY BLOCK-----")
        {
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

    fn found(data: &[u8]) -> Option<&'static str> {
        finding(Path::new("/etc/x"), Some(data), &Secrets::default())
    }

    #[test]
    fn openpgp_secret_keys() {
        assert_eq!(
            found(b"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQdGBF...\n"),
            Some("holds a private key")
        );
        assert_eq!(found(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n"), None);
        assert_eq!(
            found(b"(21:protected-private-key(3:rsa(1:n257:..."),
            Some("is a GnuPG private key file")
        );
        assert_eq!(
            found(b"Created: 20260101T000000\nKey: (private-key (ecc (curve Ed25519)\n"),
            Some("is a GnuPG private key file")
        );
        // A smartcard stub holds no secret.
        assert_eq!(found(b"(20:shadowed-private-key(3:rsa..."), None);
    }

    #[test]
    fn age_identities() {
        // age-keygen's output format; a made-up key of the right shape.
        let key = format!(
            "AGE-SECRET-KEY-1{}",
            "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"
                .repeat(2)
                .get(..58)
                .unwrap()
        );
        let file = format!("# created: 2026-12-05T00:00:00Z\n# public key: age1xyz\n{key}\n");
        assert_eq!(
            found(file.as_bytes()),
            Some("holds an age identity (AGE-SECRET-KEY-1...)")
        );
        // Documentation naming the prefix, a truncated key, lower case.
        assert_eq!(found(b"identities look like AGE-SECRET-KEY-1..."), None);
        assert_eq!(found(&key.as_bytes()[..60]), None);
        assert_eq!(found(key.to_ascii_lowercase().as_bytes()), None);
    }

    #[test]
    fn borg_key_files_and_aws_credentials() {
        assert_eq!(
            found(b"BORG_KEY 0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0\nhqlhbGdvcml0aG2m\n"),
            Some("is a borg key file")
        );
        assert_eq!(found(b"# a BORG_KEY file is secret\n"), None);
        assert_eq!(
            found(
                b"[default]\naws_access_key_id = AKIAEXAMPLE\nAWS_Secret_Access_Key=abc/def+ghi\n"
            ),
            Some("holds an aws_secret_access_key")
        );
        assert_eq!(
            found(b"[default]\naws_access_key_id = AKIAEXAMPLE\nregion = eu-west-1\n"),
            None
        );
        assert_eq!(found(b"aws_secret_access_key =\n"), None);
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
