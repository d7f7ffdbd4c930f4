//! Chains: a full backup and the incrementals made on it
//! ([`super::incremental`]), followed from the names alone
//! (`HOST-STAMP_PARENTSTAMP_FULLSTAMP`, [`super::names`]), so encrypted
//! backups chain as well as plain ones.
//!
//! A missing link (deleted by hand, an upload that never arrived, pruned
//! by an older mkrescue) is named, and the rest of the chain still
//! restores. What is restorable then: every member the remaining links
//! hold, each from the newest of them that has it, less what a remaining
//! link newer than it removed. So the members the missing link alone
//! changed come back as they were before it, the ones it alone added are
//! absent, and the ones it alone removed come back; everything else is
//! exactly the newest tree. Without the full backup, only what the
//! incrementals hold comes back.

use std::collections::HashSet;

use super::Listed;
use super::manifest::{self, Item, Manifest};

/// The stamps in a backup's name: its own, and an incremental's parent's
/// and full backup's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamps<'a> {
    pub host: &'a str,
    pub own: &'a str,
    pub parent: Option<&'a str>,
    pub full: Option<&'a str>,
}

/// Takes `HOST-STAMP[_PARENT_FULL]` apart.
pub fn stamps(name: &str) -> Stamps<'_> {
    let (host, rest) = name.rsplit_once('-').unwrap_or(("", name));
    let mut p = rest.split('_');
    let own = p.next().unwrap_or(rest);
    match (p.next(), p.next()) {
        (Some(parent), Some(full)) => Stamps {
            host,
            own,
            parent: Some(parent),
            full: Some(full),
        },
        _ => Stamps {
            host,
            own,
            parent: None,
            full: None,
        },
    }
}

/// What a restore of one backup needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The links at the target, oldest (the full backup) first; the last
    /// is the backup asked for.
    pub links: Vec<String>,
    /// The links that are not there (or not complete), oldest first, as
    /// `HOST-STAMP`.
    pub missing: Vec<String>,
}

/// The chain that ends in `name` (which must be in `list`).
pub fn resolve(list: &[Listed], name: &str) -> Chain {
    let find = |host: &str, stamp: &str| {
        list.iter().find(|b| {
            let s = stamps(&b.name);
            b.complete && s.host == host && s.own == stamp
        })
    };
    let mut links = vec![name.to_string()];
    let mut missing = Vec::new();
    let mut cur = name.to_string();
    loop {
        let s = stamps(&cur);
        let (Some(parent), Some(full)) = (s.parent, s.full) else {
            break;
        };
        if let Some(p) = find(s.host, parent) {
            cur = p.name.clone();
            links.push(cur.clone());
            continue;
        }
        missing.push(format!("{}-{parent}", s.host));
        // Past the gap: the newest link of the same chain older than the
        // missing one.
        let next = list.iter().rev().find(|b| {
            let t = stamps(&b.name);
            b.complete
                && t.host == s.host
                && t.own < parent
                && (t.own == full || t.full == Some(full))
        });
        match next {
            Some(b) => {
                cur = b.name.clone();
                links.push(cur.clone());
            }
            None => {
                if parent != full {
                    missing.push(format!("{}-{full}", s.host));
                }
                break;
            }
        }
    }
    links.reverse();
    missing.reverse();
    Chain { links, missing }
}

/// What a chain restore writes: each link's members that no newer link
/// holds or removed (`mans` oldest first, as [`Chain::links`]; a link
/// whose manifest could not be read is `None` and claims nothing).
pub fn restored(mans: &[Option<Manifest>]) -> Vec<&Item> {
    let mut taken: HashSet<Vec<u8>> = HashSet::new();
    let mut out = Vec::new();
    for m in mans.iter().rev().flatten() {
        for i in &m.items {
            let n = manifest::unescape(&i.path);
            if !taken.contains(&n) {
                out.push(i);
            }
        }
        taken.extend(m.items.iter().map(|i| manifest::unescape(&i.path)));
        taken.extend(m.removed.iter().map(|r| manifest::unescape(r)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(name: &str, complete: bool) -> Listed {
        Listed {
            name: name.into(),
            host: "web1".into(),
            created: 0,
            paths: Vec::new(),
            archive_bytes: None,
            complete,
            encrypted: false,
            parent: None,
            full: None,
            missing_links: Vec::new(),
        }
    }

    const F: &str = "20261201T010000.000000Z";
    const I1: &str = "20261202T010000.000000Z";
    const I2: &str = "20261203T010000.000000Z";
    const I3: &str = "20261204T010000.000000Z";

    #[test]
    fn chains_follow_names_and_jump_gaps() {
        let f = format!("web1-{F}");
        let i1 = format!("web1-{I1}_{F}_{F}");
        let i2 = format!("web1-{I2}_{I1}_{F}");
        let i3 = format!("web1-{I3}_{I2}_{F}");
        assert_eq!(
            stamps(&i2),
            Stamps {
                host: "web1",
                own: I2,
                parent: Some(I1),
                full: Some(F)
            }
        );
        let all: Vec<Listed> = [&f, &i1, &i2, &i3]
            .iter()
            .map(|n| listed(n, true))
            .collect();
        let c = resolve(&all, &i3);
        assert_eq!(c.links, vec![f.clone(), i1.clone(), i2.clone(), i3.clone()]);
        assert!(c.missing.is_empty());
        assert_eq!(resolve(&all, &f).links, vec![f.clone()]);
        // I1 gone: named, and the full still found past it.
        let gap: Vec<Listed> = [&f, &i2, &i3].iter().map(|n| listed(n, true)).collect();
        let c = resolve(&gap, &i3);
        assert_eq!(c.links, vec![f.clone(), i2.clone(), i3.clone()]);
        assert_eq!(c.missing, vec![format!("web1-{I1}")]);
        // The full backup gone, and I2's archive missing.
        let mut nofull: Vec<Listed> = [&i1, &i3].iter().map(|n| listed(n, true)).collect();
        nofull.push(listed(&i2, false));
        let c = resolve(&nofull, &i3);
        assert_eq!(c.links, vec![i1.clone(), i3.clone()]);
        assert_eq!(c.missing, vec![format!("web1-{F}"), format!("web1-{I2}")]);
    }

    #[test]
    fn the_newest_version_of_each_member_is_restored_and_removals_hold() {
        let m = |items: &[(&str, u64)], removed: &[&str]| {
            Some(Manifest {
                head: serde_json::from_str(
                    r#"{"mkrescue_backup":1,"host":"h","created":0,"paths":[],"archive":"a","encrypted":false}"#,
                )
                .unwrap(),
                items: items
                    .iter()
                    .map(|(p, size)| Item {
                        path: p.to_string(),
                        kind: super::super::pax::Kind::File,
                        size: *size,
                        stored: None,
                        sha256: None,
                        xxh3: None,
                    })
                    .collect(),
                removed: removed.iter().map(|r| r.to_string()).collect(),
            })
        };
        let mans = vec![
            m(&[("a", 1), ("b", 2), ("c", 4)], &[]),
            m(&[("b", 20), ("d", 8)], &["c"]),
            None,
            m(&[("e", 100)], &["d"]),
        ];
        let got: Vec<(&str, u64)> = restored(&mans)
            .iter()
            .map(|i| (i.path.as_str(), i.size))
            .collect();
        assert_eq!(got, vec![("e", 100), ("b", 20), ("a", 1)]);
    }
}
