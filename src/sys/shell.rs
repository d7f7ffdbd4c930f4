//! POSIX shell quoting, for command lines that are logged or printed as a
//! script a human may paste (`recover --dry-run`, `exec`'s logs).

/// `s` as one shell word: unchanged when it holds only characters no shell
/// treats specially, else in single quotes with each `'` as `'\''`
/// (POSIX.1-2017 XCU 2.2.2: nothing is special inside single quotes).
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn words() {
        assert_eq!(quote("/dev/vda1"), "/dev/vda1");
        assert_eq!(quote("a=b,c:d"), "a=b,c:d");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("two words"), "'two words'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
    }
}
