//! The names of an archive backup's files, `HOST-STAMP.tar.zst[.age]` and
//! `HOST-STAMP.manifest.zst[.age]` (README "Backup names"); an incremental
//! backup's name ends in the stamps of its parent and of its chain's full
//! backup, `HOST-STAMP_PARENTSTAMP_FULLSTAMP`, so a chain can be followed
//! from the names alone (encrypted backups, `mkrescue prune` on a server
//! without the key), even past a missing link. Also the check
//! `mkrescue serve` puts every name a client sends through: only a name of
//! this scheme is ever opened or created, so `..`, `/`, an absolute path, a
//! NUL or a control character cannot reach the file system.

use super::{AGE_SUFFIX, ARCHIVE_SUFFIX, MANIFEST_SUFFIX};

/// Which of the two files of a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Archive,
    Manifest,
}

/// A name of the scheme, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName<'a> {
    /// `HOST-STAMP`: the backup's name.
    pub base: &'a str,
    pub host: &'a str,
    pub stamp: &'a str,
    /// An incremental's parent: the stamp of the backup of the same host
    /// it was made against...
    pub parent: Option<&'a str>,
    /// ...and the stamp of its chain's full backup.
    pub full: Option<&'a str>,
    pub kind: Kind,
    pub encrypted: bool,
}

impl FileName<'_> {
    /// The name of the other file of the same backup.
    pub fn partner(&self) -> String {
        let enc = if self.encrypted { AGE_SUFFIX } else { "" };
        match self.kind {
            Kind::Archive => format!("{}{MANIFEST_SUFFIX}{enc}", self.base),
            Kind::Manifest => format!("{}{ARCHIVE_SUFFIX}{enc}", self.base),
        }
    }
}

/// `YYYYMMDDTHHMMSSZ` (before microseconds) or `YYYYMMDDTHHMMSS.ffffffZ`.
pub fn is_stamp(n: &str) -> bool {
    let b = n.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    match b.len() {
        16 => digits(0..8) && b[8] == b'T' && digits(9..15) && b[15] == b'Z',
        23 => {
            digits(0..8)
                && b[8] == b'T'
                && digits(9..15)
                && b[15] == b'.'
                && digits(16..22)
                && b[22] == b'Z'
        }
        _ => false,
    }
}

/// Checks a name from outside; `Err` says what is wrong with it.
pub fn parse(name: &str) -> Result<FileName<'_>, String> {
    let why = |w: &str| Err(format!("{name:?}: {w}"));
    if name.is_empty() {
        return why("empty name");
    }
    if name.contains('\0') {
        return why("contains a NUL byte");
    }
    if name.chars().any(char::is_control) {
        return why("contains a control character");
    }
    if name.starts_with('/') {
        return why("an absolute path; give a plain file name inside the backup directory");
    }
    if name.contains('/') {
        return why("contains '/'; give a plain file name inside the backup directory");
    }
    if name.contains("..") {
        return why("contains '..'");
    }
    if name.starts_with('.') {
        return why("a hidden name");
    }
    if name.len() > 255 {
        return why("longer than 255 bytes");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-._".contains(*c)))
    {
        return why(&format!(
            "the character {c:?} is not in backup names (letters, digits, '-', '.', '_')"
        ));
    }
    let (plain, encrypted) = match name.strip_suffix(AGE_SUFFIX) {
        Some(p) => (p, true),
        None => (name, false),
    };
    let (base, kind) = if let Some(b) = plain.strip_suffix(ARCHIVE_SUFFIX) {
        (b, Kind::Archive)
    } else if let Some(b) = plain.strip_suffix(MANIFEST_SUFFIX) {
        (b, Kind::Manifest)
    } else {
        return why(
            "not a backup file name (HOST-STAMP.tar.zst or HOST-STAMP.manifest.zst, maybe .age)",
        );
    };
    let Some((host, stamps)) = base.rsplit_once('-') else {
        return why("no HOST-STAMP before the suffix");
    };
    let parts: Vec<&str> = stamps.split('_').collect();
    let (stamp, parent, full) = match parts[..] {
        [s] => (s, None, None),
        [s, p, f] => (s, Some(p), Some(f)),
        _ => return why("not HOST-STAMP or HOST-STAMP_PARENTSTAMP_FULLSTAMP before the suffix"),
    };
    if host.is_empty()
        || ![Some(stamp), parent, full]
            .into_iter()
            .flatten()
            .all(is_stamp)
    {
        return why("not HOST-YYYYMMDDTHHMMSS.ffffffZ[_PARENTSTAMP_FULLSTAMP] before the suffix");
    }
    if let (Some(p), Some(f)) = (parent, full)
        && !(f <= p && p < stamp)
    {
        return why("an incremental's parent and full backup must be older than it");
    }
    Ok(FileName {
        base,
        host,
        stamp,
        parent,
        full,
        kind,
        encrypted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_is_taken_apart() {
        let n = parse("web1-20261205T101112.123456Z.tar.zst").unwrap();
        assert_eq!(n.base, "web1-20261205T101112.123456Z");
        assert_eq!(
            (n.host, n.kind, n.encrypted),
            ("web1", Kind::Archive, false)
        );
        assert_eq!(n.partner(), "web1-20261205T101112.123456Z.manifest.zst");
        let n = parse("a-b.example-20261205T101112Z.manifest.zst.age").unwrap();
        assert_eq!(
            (n.host, n.kind, n.encrypted),
            ("a-b.example", Kind::Manifest, true)
        );
        assert_eq!(n.partner(), "a-b.example-20261205T101112Z.tar.zst.age");
        let inc = "web1-20261206T010000.000001Z_20261205T010000.000001Z_20261201T010000.000001Z";
        let file = format!("{inc}.tar.zst.age");
        let n = parse(&file).unwrap();
        assert_eq!(
            (n.host, n.stamp, n.parent, n.full),
            (
                "web1",
                "20261206T010000.000001Z",
                Some("20261205T010000.000001Z"),
                Some("20261201T010000.000001Z")
            )
        );
        assert_eq!(n.partner(), format!("{inc}.manifest.zst.age"));
        for bad in [
            "web1-20261206T010000.000001Z_.tar.zst",
            "web1-20261206T010000.000001Z_x_y.tar.zst",
            "web1-20261206T010000.000001Z_20261205T010000.000001Z.tar.zst",
            "web1-20261205T010000.000001Z_20261206T010000.000001Z_20261201T010000.000001Z.tar.zst",
            "web1-20261206T010000.000001Z_20261205T010000.000001Z_20261205T010000.000002Z.tar.zst",
        ] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn hostile_names_are_refused() {
        let ok = "web1-20261205T101112.123456Z.tar.zst";
        for bad in [
            "",
            "..",
            "../web1-20261205T101112.123456Z.tar.zst",
            "web1..x-20261205T101112.123456Z.tar.zst",
            "/etc/passwd",
            "/srv/backup/web1-20261205T101112.123456Z.tar.zst",
            "sub/web1-20261205T101112.123456Z.tar.zst",
            "web1-20261205T101112.123456Z.tar.zst\0",
            "web\x001-20261205T101112.123456Z.tar.zst",
            "web1-20261205T101112.123456Z.tar.zst\n",
            "web\x1b1-20261205T101112.123456Z.tar.zst",
            ".web1-20261205T101112.123456Z.tar.zst",
            "web 1-20261205T101112.123456Z.tar.zst",
            "web1-20261205T101112.123456Z.tar.zst.part",
            "web1-20261205T101112.123456Z",
            "web1-2026120T101112.123456Z.tar.zst",
            "-20261205T101112.123456Z.tar.zst",
            "authorized_keys",
            "wéb1-20261205T101112.123456Z.tar.zst",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse(ok).is_ok());
        let long = format!("{}-20261205T101112.123456Z.tar.zst", "h".repeat(250));
        assert!(parse(&long).unwrap_err().contains("255"));
        assert!(parse("/etc/passwd").unwrap_err().contains("absolute"));
        assert!(parse("a\0b").unwrap_err().contains("NUL"));
    }

    proptest::proptest! {
        /// Whatever the client sends, an accepted name is one plain,
        /// visible file name of the scheme.
        #[test]
        fn accepted_names_stay_inside(name in "[a-z0-9./\\-_\\x00\\n ]{0,12}-2026120[0-9]T10111[0-9](\\.[0-9]{6})?Z(\\.tar\\.zst|\\.manifest\\.zst|/x)?(\\.age)?") {
            if let Ok(n) = parse(&name) {
                proptest::prop_assert!(!name.contains('/') && !name.contains("..") && !name.contains('\0'));
                proptest::prop_assert!(!name.starts_with('.') && !name.is_empty());
                proptest::prop_assert!(is_stamp(n.stamp) && !n.host.is_empty());
            }
        }
    }
}
