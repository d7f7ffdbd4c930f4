//! Shell-style wildcard matching as `fnmatch(3)` does it with no flags, and
//! the `-`/`_` normalisation of module names and aliases.
//!
//! `modules.alias` patterns are matched by kmod with `fnmatch(pattern, key,
//! 0)`: `*` and `?` also match `/`, a leading `.` is not special, `\` quotes
//! the next character, and `[...]` is a bracket expression (`!` or `^`
//! negates, `a-z` is a range, a `]` right after the opening bracket is
//! literal). A `[` without a closing `]` is an ordinary character.

/// Whether `text` matches the wildcard `pattern` (see the module doc).
pub fn fnmatch(pattern: &str, text: &str) -> bool {
    let (pat, s) = (pattern.as_bytes(), text.as_bytes());
    let (mut p, mut i) = (0usize, 0usize);
    // Where to resume after the last `*`: the pattern index after it and the
    // text index it currently stops at. One star of backtracking is enough:
    // a later star subsumes everything an earlier one could have matched.
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() {
            if pat[p] == b'*' {
                p += 1;
                star = Some((p, i));
                continue;
            }
            if let Some(next) = step(pat, p, s[i]) {
                p = next;
                i += 1;
                continue;
            }
        }
        match star {
            Some((sp, si)) => {
                p = sp;
                i = si + 1;
                star = Some((sp, si + 1));
            }
            None => return false,
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// Matches one text byte `c` against the single (non-`*`) pattern element
/// at `p`; returns the index of the next pattern element on a match.
fn step(pat: &[u8], p: usize, c: u8) -> Option<usize> {
    match pat[p] {
        b'?' => Some(p + 1),
        b'[' => match bracket(pat, p, c) {
            Some((true, next)) => Some(next),
            Some((false, _)) => None,
            // Unterminated: the `[` stands for itself.
            None => (c == b'[').then_some(p + 1),
        },
        // glibc treats a trailing lone `\` as an error: nothing matches.
        b'\\' => (pat.get(p + 1) == Some(&c)).then_some(p + 2),
        lit => (lit == c).then_some(p + 1),
    }
}

/// Evaluates the bracket expression starting at `pat[open] == '['` for the
/// byte `c`: `Some((matched, index after ']'))`, or `None` if it is not
/// terminated.
fn bracket(pat: &[u8], open: usize, c: u8) -> Option<(bool, usize)> {
    let mut j = open + 1;
    let negate = matches!(pat.get(j), Some(b'!' | b'^'));
    if negate {
        j += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let mut lo = *pat.get(j)?;
        if lo == b']' && !first {
            return Some((matched != negate, j + 1));
        }
        first = false;
        if lo == b'\\' {
            j += 1;
            lo = *pat.get(j)?;
        }
        // `a-z` is a range unless the `-` is last (`[a-]` lists `-`).
        if pat.get(j + 1) == Some(&b'-') && pat.get(j + 2).is_some_and(|&h| h != b']') {
            let mut k = j + 2;
            let mut hi = pat[k];
            if hi == b'\\' {
                k += 1;
                hi = *pat.get(k)?;
            }
            matched |= lo <= c && c <= hi;
            j = k + 1;
        } else {
            matched |= lo == c;
            j += 1;
        }
    }
}

/// Whether `s` contains a wildcard character, i.e. needs [`fnmatch`] rather
/// than string equality.
pub fn has_wildcard(s: &str) -> bool {
    s.bytes().any(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
}

/// A module name as the kernel and modprobe(8) see it: `-` and `_` are the
/// same character, the kernel stores `_` (scripts/Makefile.lib's
/// `-DKBUILD_MODNAME` turns `-` into `_`).
pub fn module_name(s: &str) -> String {
    s.replace('-', "_")
}

/// An alias (pattern or query) normalised the way kmod does before it
/// looks it up: `-` becomes `_` except inside `[...]`, where a `-` is a
/// range and must stay.
pub fn alias_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_bracket = false;
    for c in s.chars() {
        match c {
            '[' if !in_bracket => in_bracket = true,
            ']' if in_bracket => in_bracket = false,
            '-' if !in_bracket => {
                out.push('_');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn virtio_blk_pci_alias() {
        // From modules.alias of 6.1: virtio_pci binds every virtio PCI
        // function; virtio_blk then binds the virtio device.
        let dev = "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00";
        assert!(fnmatch("pci:v00001AF4d*sv*sd*bc*sc*i*", dev));
        assert!(!fnmatch("pci:v00008086d*sv*sd*bc*sc*i*", dev));
        assert!(fnmatch("virtio:d00000002v*", "virtio:d00000002v00001AF4"));
        assert!(!fnmatch("virtio:d00000001v*", "virtio:d00000002v00001AF4"));
        // ahci by class: bc01 sc06 i01.
        let sata = "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01";
        assert!(fnmatch("pci:v*d*sv*sd*bc01sc06i01*", sata));
        assert!(!fnmatch("pci:v*d*sv*sd*bc01sc08i02*", sata));
    }

    #[test]
    fn brackets_ranges_and_escapes() {
        assert!(fnmatch("usb:v05ACp12[0-9][0-9]d*", "usb:v05ACp1234d0100"));
        assert!(!fnmatch("usb:v05ACp12[0-9][0-9]d*", "usb:v05ACp12A4d0100"));
        assert!(fnmatch("a[!b]c", "axc"));
        assert!(!fnmatch("a[!b]c", "abc"));
        assert!(fnmatch("a[^b]c", "axc"));
        assert!(fnmatch("[]]", "]"));
        assert!(fnmatch("[a-]", "-"));
        assert!(fnmatch("a\\*", "a*"));
        assert!(!fnmatch("a\\*", "ab"));
        assert!(fnmatch("a[", "a["));
        // Found by the libc comparison: glibc rejects a trailing lone `\`.
        assert!(!fnmatch("\\", "\\"));
        assert!(!fnmatch("a\\", "a"));
        assert!(fnmatch("*/x", "a/b/x"), "no FNM_PATHNAME: * crosses /");
        assert!(fnmatch("", ""));
        assert!(!fnmatch("", "a"));
        assert!(fnmatch("**", ""));
        assert!(fnmatch("a*b*c", "aXbYbZc"));
        assert!(!fnmatch("a*b*c", "aXbYbZ"));
    }

    #[test]
    fn normalisation_keeps_bracket_ranges() {
        assert_eq!(module_name("dm-crypt"), "dm_crypt");
        assert_eq!(alias_name("crypto-crc32c"), "crypto_crc32c");
        assert_eq!(
            alias_name("of:N*T*Cfoo-bar[0-9]x-y"),
            "of:N*T*Cfoo_bar[0-9]x_y"
        );
    }

    proptest! {
        // glibc's fnmatch is what kmod calls; agree with it on patterns
        // built from the characters that matter.
        #[test]
        fn agrees_with_libc(pattern in r"[ab*?\[\]!^\\-]{0,8}", text in r"[ab\[\]!^\\*-]{0,8}") {
            prop_assert_eq!(
                fnmatch(&pattern, &text),
                crate::sys::libc_fnmatch(&pattern, &text),
                "pattern {:?} text {:?}", pattern, text
            );
        }
    }
}
