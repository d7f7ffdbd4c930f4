//! Incremental backups (`[backup] mode = "incremental"`): what the host
//! remembers between runs, and when a backup is a full one.
//!
//! An incremental archive holds the members that are new or changed since
//! the previous backup (its parent) and nothing else. Changed means any of
//! size, mtime, ctime, inode, mode (type included), owner, link count or
//! xattrs differs; ctime is what catches a `chmod`, `chown`, `setfacl`,
//! `ln` or `rm` of another name of the same inode (link(2), unlink(2) and
//! rename(2) update it on Linux's file systems), and the link count makes
//! a hard-link group change together even where it does not. So every name
//! of a changed inode goes into the same archive, and a hard link never
//! points into another archive.
//!
//! **The manifest of an incremental is a delta, not the whole tree.** The
//! issue measured a 12.5 MB manifest for 200,000 small files: an
//! incremental repeating it would store that every night whatever
//! changed (hundreds of MB a night with 5 M files), more than the changed
//! data itself. So its manifest has the lines of the members it carries
//! (with their digests, as any manifest) and one `{"removed":"PATH"}` line
//! per member of the parent's tree that is gone ([`super::manifest`]); the
//! tree at its time is the parent's tree minus the removed members, with
//! the carried ones replacing or adding theirs. A rename is a removal and
//! an addition. With 1% changed the manifest is about 1% of a full one.
//!
//! The parent's tree is not read back from the target to decide what
//! changed: an encrypted manifest cannot be read on the host (it has only
//! the age recipient), and an `ssh://` read costs the whole manifest. The
//! host keeps the last backup's member stats in a state file instead
//! ([`STATE_DIR`], one per target and set of paths, like tar's
//! `--listed-incremental` snapshot file). A member changed within a second
//! of the backup's start or during it is recorded so that the next backup
//! stores it again ([`Stat::unsure`]). The state is written only once the
//! backup is committed at the target, and it is a cache: without it, with
//! another age recipient, when the last backup is no longer at the target,
//! or once the chain's full backup is `full_every` days old, the next
//! backup is a full one. A restored system has new inodes and ctimes, so
//! its first backup is a full one as well.
//!
//! A restore reads a chain newest first ([`super::chain`]): each member is
//! written once, from the newest archive that has it, and a member removed
//! by a newer link is not written at all.

use std::collections::HashMap;
use std::fs::Metadata;
use std::io::{BufRead, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::manifest;

/// Where the state files are, below the root. The walk keeps this
/// directory empty in every backup ([`super::create::Source::prune`]):
/// the state is of no use on a restored system.
pub const STATE_DIR: &str = "/var/cache/mkrescue/backup";

/// Version of the state file; another one is ignored (a full backup).
const STATE_VERSION: u32 = 1;

/// What a member looked like when it was backed up: when all of it is the
/// same, the member is not stored again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    pub size: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
    pub ino: u64,
    /// st_mode: the type and the permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u64,
    /// XXH3-128 of the xattr names and values (ACLs, capabilities,
    /// labels), its low 64 bits.
    pub xattrs: u64,
}

impl Stat {
    pub fn of(m: &Metadata, xattrs: &[(Vec<u8>, Vec<u8>)]) -> Stat {
        // Most members have none: no hasher to set up for them.
        let xattrs = if xattrs.is_empty() {
            0
        } else {
            let mut h = twox_hash::xxhash3_128::Hasher::default();
            for (k, v) in xattrs {
                h.write(&(k.len() as u64).to_le_bytes());
                h.write(k);
                h.write(&(v.len() as u64).to_le_bytes());
                h.write(v);
            }
            h.finish_128() as u64
        };
        Stat {
            size: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            ino: m.ino(),
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            nlink: m.nlink(),
            xattrs,
        }
    }
}

impl Stat {
    /// A stat that matches no real one: of a member that changed around
    /// or during the backup that read it, so the next backup stores it
    /// again. A file system's clock is coarse (ctime and mtime come from
    /// the last timer tick, `current_time()` in the kernel's
    /// fs/inode.c), so a write just after the read can leave the same
    /// ctime, mtime and size; a second of margin before the backup's
    /// start covers that (and modest clock steps).
    pub fn unsure(self) -> Stat {
        Stat {
            ctime: (i64::MIN, 0),
            ..self
        }
    }
}

/// The first line of a state file: the chain its members belong to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Head {
    pub version: u32,
    /// The target's URL, as configured or given.
    pub target: String,
    pub paths: Vec<String>,
    /// The age recipient the chain is encrypted to.
    pub recipient: Option<String>,
    /// The chain's backups, its full one first; the last is the parent of
    /// the next incremental.
    pub chain: Vec<String>,
    /// When the full backup started (Unix seconds).
    pub full_created: i64,
}

/// The last backup's members, as the host remembers them.
#[derive(Debug)]
pub struct State {
    pub head: Head,
    pub members: HashMap<Vec<u8>, Stat>,
}

/// The state file of `target` and `paths` below `root`.
pub fn state_path(root: &Path, target: &str, paths: &[String]) -> PathBuf {
    let mut h = twox_hash::xxhash3_128::Hasher::default();
    h.write(target.as_bytes());
    for p in paths {
        h.write(b"\0");
        h.write(p.as_bytes());
    }
    let key = hex::encode(h.finish_128().to_be_bytes());
    root.join(STATE_DIR.trim_start_matches('/'))
        .join(format!("{}.zst", &key[..16]))
}

#[derive(Serialize, Deserialize)]
struct Line {
    /// Escaped member name ([`manifest::escape`]).
    p: String,
    s: Stat,
}

/// Reads a state file; `None` (a full backup) when there is none or it
/// cannot be read.
pub fn load(path: &Path) -> Option<State> {
    let read = || -> Result<Option<State>> {
        let f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut lines = std::io::BufReader::new(zstd::Decoder::new(f)?).lines();
        let head: Head = serde_json::from_str(&lines.next().context("empty")??)?;
        if head.version != STATE_VERSION {
            return Ok(None);
        }
        let mut members = HashMap::new();
        for l in lines {
            let l: Line = serde_json::from_str(&l?)?;
            members.insert(manifest::unescape(&l.p), l.s);
        }
        Ok(Some(State { head, members }))
    };
    match read() {
        Ok(s) => s,
        Err(e) => {
            log::warn!("{}: {e:#}; this backup is a full one", path.display());
            None
        }
    }
}

/// Writes the state after a committed backup (through a temporary file
/// and a rename, so a crash leaves the old state or the new one).
pub fn save(path: &Path, head: &Head, members: &[(Vec<u8>, Stat)]) -> Result<()> {
    let write = || -> Result<()> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let tmp = path.with_extension("zst.tmp");
        let f = std::fs::File::create(&tmp)?;
        // Lines gather before the compressor (see manifest::Writer).
        let mut z = std::io::BufWriter::with_capacity(
            64 << 10,
            zstd::Encoder::new(std::io::BufWriter::new(f), 3)?,
        );
        let mut head = head.clone();
        head.version = STATE_VERSION;
        serde_json::to_writer(&mut z, &head)?;
        z.write_all(b"\n")?;
        for (name, s) in members {
            serde_json::to_writer(
                &mut z,
                &Line {
                    p: manifest::escape(name),
                    s: s.clone(),
                },
            )?;
            z.write_all(b"\n")?;
        }
        let z = z.into_inner().map_err(|e| e.into_error())?;
        let f = z.finish()?.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    };
    write().with_context(|| format!("writing the incremental state {}", path.display()))
}

/// Why the next backup is a full one, or `None` when it can be an
/// incremental on `state`'s last backup. `last_at_target`: whether that
/// backup is complete at the target.
pub fn why_full(
    state: Option<&State>,
    recipient: Option<&str>,
    full_every_days: u32,
    now: i64,
    last_at_target: impl Fn(&str) -> bool,
) -> Option<String> {
    let Some(s) = state else {
        return Some("no earlier backup of these paths to this target is known".into());
    };
    let Some(last) = s.head.chain.last() else {
        return Some("the state names no backup".into());
    };
    if s.head.recipient.as_deref() != recipient {
        return Some("the age recipient changed".into());
    }
    if now - s.head.full_created >= i64::from(full_every_days) * 86_400 {
        return Some(format!(
            "the chain's full backup {} is {full_every_days} days old or more (full_every)",
            s.head.chain[0]
        ));
    }
    if !last_at_target(last) {
        return Some(format!("the last backup {last} is no longer at the target"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_decides() {
        let d = tempfile::tempdir().unwrap();
        let p = state_path(d.path(), "file:///b", &["/".into()]);
        assert!(p.starts_with(d.path().join("var/cache/mkrescue/backup")));
        assert_ne!(p, state_path(d.path(), "file:///b", &["/etc".into()]));
        assert!(load(&p).is_none());
        let m = std::fs::symlink_metadata(d.path()).unwrap();
        let st = Stat::of(&m, &[(b"user.a".to_vec(), b"1".to_vec())]);
        assert_ne!(st, Stat::of(&m, &[(b"user.a".to_vec(), b"2".to_vec())]));
        let head = Head {
            version: 0,
            target: "file:///b".into(),
            paths: vec!["/".into()],
            recipient: None,
            chain: vec!["h-20261201T000000.000000Z".into()],
            full_created: 1000,
        };
        save(&p, &head, &[(b"a\xff".to_vec(), st.clone())]).unwrap();
        let s = load(&p).unwrap();
        assert_eq!(s.members[b"a\xff".as_slice()], st);
        assert_eq!(s.head.chain, head.chain);
        let at = |_: &str| true;
        assert_eq!(why_full(Some(&s), None, 7, 1000 + 86_400, at), None);
        assert!(why_full(Some(&s), None, 1, 1000 + 86_400, at).is_some());
        assert!(why_full(Some(&s), Some("age1x"), 7, 1000, at).is_some());
        assert!(why_full(Some(&s), None, 7, 1000, |_| false).is_some());
        assert!(why_full(None, None, 7, 1000, at).is_some());
        std::fs::write(&p, b"junk").unwrap();
        assert!(load(&p).is_none(), "a broken state means a full backup");
    }
}
