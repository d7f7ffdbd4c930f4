//! What the recovery-time estimate needs to know of a backup: the newest
//! (or the named) archive's size from its manifest (of a chain: the
//! members a chain restore writes, each once, and every link's archive), and how fast this
//! machine reads it back: a short timed read that decompresses, parses and
//! hashes (XXH3, as restore does) the head of the archive without writing
//! anything. Also the rates `backup`, `backup verify` and `restore`
//! measured, kept in [`RATES_PATH`] (the rescue image carries the file).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::{
    ARCHIVE_SUFFIX, BackupMethod, MANIFEST_SUFFIX, Use, list, manifest, open_file, pick_name,
    reader, recorded_location, target_of,
};
use crate::config::Config;
use crate::error::{Code, fail};

/// Where measured rates are kept, below the root.
pub const RATES_PATH: &str = "/var/lib/mkrescue/rates.json";

/// A measurement: `bytes` of file data (and `files` files) in `seconds`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Rate {
    pub bytes: u64,
    pub files: u64,
    pub seconds: f64,
    /// When it was measured (Unix seconds).
    pub at: i64,
}

impl Rate {
    /// Bytes per second, when there is anything to divide.
    pub fn per_sec(&self) -> Option<f64> {
        (self.seconds > 0.0 && self.bytes > 0).then(|| self.bytes as f64 / self.seconds)
    }
}

/// The rates of the last `backup`, `verify` and `restore`, by step name.
pub type Rates = BTreeMap<String, Rate>;

/// What [`RATES_PATH`] holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Recorded {
    #[serde(default)]
    pub rates: Rates,
    /// The modules the host's own disks under /, /boot, /usr and swap need
    /// (drivers, md, dm, file systems): what its initramfs holds at least,
    /// since it boots from them. Recorded by `backup` on the host.
    #[serde(default)]
    pub boot_modules: Vec<String>,
}

/// What is recorded below `root` (nothing when there is no file yet).
pub fn read_recorded(root: &Path) -> Recorded {
    let p = root.join(RATES_PATH.trim_start_matches('/'));
    std::fs::read(&p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Best effort: a read-only or full /var must not fail the backup or
/// restore that measured something.
fn write_recorded(root: &Path, r: &Recorded) {
    let p = root.join(RATES_PATH.trim_start_matches('/'));
    let write = || -> Result<()> {
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        let tmp = p.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(r)?)?;
        std::fs::rename(&tmp, &p)?;
        Ok(())
    };
    if let Err(e) = write() {
        log::info!("rates not recorded in {}: {e:#}", p.display());
    }
}

/// Records one measured step, on the running system only: a `--root`
/// tree (a chroot, a test's tree) is read, never given state of ours.
/// Callers record only runs of the host's own backup (its configured
/// target and paths): a run with `--target`, `--from` or PATHs of its own
/// (a test, a bench, an admin trying a directory) would replace the
/// rates of the real backup with a toy tree's, and a test suite would
/// change the host's file under the rescue image it builds.
pub fn record(root: &Path, step: &str, bytes: u64, files: u64, seconds: f64) {
    if root != Path::new("/") {
        return;
    }
    add_rate(root, step, bytes, files, seconds);
}

fn add_rate(root: &Path, step: &str, bytes: u64, files: u64, seconds: f64) {
    let mut r = read_recorded(root);
    r.rates.insert(
        step.to_string(),
        Rate {
            bytes,
            files,
            seconds,
            at: crate::sys::time::now(),
        },
    );
    write_recorded(root, &r);
}

/// Records what only the running host can tell: its last boot time (the
/// estimate's first boot) and the modules its boot disks need. Nothing
/// when `root` is another tree.
pub fn record_host(root: &Path) {
    if root != Path::new("/") {
        return;
    }
    let mut r = read_recorded(root);
    if let Some(b) = crate::sys::host::boot_seconds() {
        r.rates.insert(
            "first_boot".into(),
            Rate {
                seconds: b,
                at: crate::sys::time::now(),
                ..Rate::default()
            },
        );
    }
    match crate::sys::block::needed_modules(Path::new("/sys"), &host_boot_devices()) {
        Ok(m) => r.boot_modules = m.into_iter().collect(),
        Err(e) => log::info!("the drivers of this host's disks are not recorded: {e:#}"),
    }
    write_recorded(root, &r);
}

/// (device, mount point or `swap`, type) of the running host's /, /boot,
/// /usr and swap areas, from /proc/self/mounts and /proc/swaps.
fn host_boot_devices() -> Vec<(String, String, String)> {
    let mut v = Vec::new();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    for l in mounts.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if let [dev, at, fstype, ..] = f.as_slice()
            && matches!(*at, "/" | "/boot" | "/usr")
            && dev.starts_with("/dev/")
        {
            v.push((dev.to_string(), at.to_string(), fstype.to_string()));
        }
    }
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    for l in swaps.lines().skip(1) {
        if let Some(dev) = l.split_whitespace().next()
            && dev.starts_with("/dev/")
        {
            v.push((dev.to_string(), "swap".into(), "swap".into()));
        }
    }
    v
}

/// Which backup, from where (as for restore).
#[derive(Debug, Clone, Default)]
pub struct FactsOptions {
    pub root: PathBuf,
    pub from: Option<String>,
    pub archive: Option<String>,
    pub identity: Option<String>,
    /// How long the read probe runs; 0: no probe.
    pub probe_seconds: f64,
    /// Told when the read probe starts (the estimate's write probe runs
    /// beside it); dropped unsent when it does not.
    pub probe_started: Option<std::sync::mpsc::SyncSender<()>>,
    /// Mount points (`/`, `/home`, ...) to split the data bytes by: each
    /// file counts under the longest one holding it.
    pub mounts: Vec<String>,
}

/// The backup a recover would restore.
#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    pub name: String,
    pub from: String,
    /// Files and their bytes, from the manifest.
    pub files: u64,
    pub bytes: u64,
    pub archive_bytes: Option<u64>,
    /// Data bytes per mount point of [`FactsOptions::mounts`] (those
    /// holding none are left out).
    pub bytes_by_mount: BTreeMap<String, u64>,
    /// What the same members take on a file system of 4 KiB blocks (each
    /// file's data rounded up to a block, a block per directory), per
    /// mount point: the least a file system must hold for recover's fit
    /// ([`crate::recover::plan::fit::with_backup`]).
    pub alloc_by_mount: BTreeMap<String, u64>,
    /// The read probe: file data decompressed, parsed and hashed.
    pub read_probe: Option<Rate>,
}

/// Opens the backup as restore would (in the rescue system: the recorded
/// location, its disk mounted read-only) and measures it.
pub fn facts(cfg: &Config, o: &FactsOptions) -> Result<Facts> {
    let mut cfg = cfg.clone();
    let mut method = None;
    let src = recorded_location(&o.root, &mut cfg, o.from.as_ref(), &mut method)?;
    let from = src.as_ref().map(|s| s.url.clone()).or(o.from.clone());
    let r = facts_at(&cfg, from.as_ref(), method.unwrap_or(cfg.backup.method), o);
    if let Some(mut s) = src
        && let Err(e) = s.close()
    {
        log::warn!("{e:#}");
    }
    r
}

fn facts_at(
    cfg: &Config,
    from: Option<&String>,
    method: BackupMethod,
    o: &FactsOptions,
) -> Result<Facts> {
    if method != BackupMethod::Archive {
        return Err(fail(
            Code::NotYet,
            format!(
                "the estimate reads the size of a backup from the built-in archive's manifest; the {} method has none (set backup.method = \"archive\", or estimate by hand)",
                format!("{method:?}").to_lowercase()
            ),
        ));
    }
    let target = target_of(cfg, &o.root, from, Use::Read)?;
    let l = list(&target)?;
    let name = pick_name(&l, &target, o.archive.as_ref())?;
    // A chain restore reads every link and writes each member once, from
    // the newest link that has it ([`super::chain`]).
    let chain = super::chain::resolve(&l, &name);
    let enc_of = |n: &str| super::suffix_of(&l, n);
    let key = if super::chain_suffix(&l, &chain).is_empty() {
        None
    } else {
        let Some(id) = o.identity.as_deref() else {
            return Err(fail(
                Code::Usage,
                format!(
                    "backup {name} is encrypted: give --identity FILE (its age key) so the estimate can read its size"
                ),
            ));
        };
        Some(super::identity::resolve(
            Some(id),
            &format!("backup {name}"),
            cfg.backup.age_recipient.as_deref(),
        )?)
    };
    let mut mans = Vec::new();
    for link in &chain.links {
        let mname = format!("{link}{MANIFEST_SUFFIX}{}", enc_of(link));
        mans.push(Some(manifest::read(
            open_file(&target, &mname, key.as_ref())?,
            Path::new(&mname),
        )?));
    }
    let restored = super::chain::restored(&mans);
    let files = restored
        .iter()
        .filter(|i| i.kind == super::pax::Kind::File)
        .count() as u64;
    let bytes = restored.iter().map(|i| i.data_bytes()).sum();
    let mut bytes_by_mount = BTreeMap::new();
    let mut alloc_by_mount = BTreeMap::new();
    for i in &restored {
        if let Some(m) = mount_of(&o.mounts, &i.path) {
            *bytes_by_mount.entry(m.to_string()).or_insert(0) += i.data_bytes();
            // The mount point's own directory is the file system's root,
            // which mkfs makes.
            let own_root = member_rel(&i.path) == m.trim_start_matches('/');
            if !own_root {
                *alloc_by_mount.entry(m.to_string()).or_insert(0) += alloc_bytes(i);
            }
        }
    }
    let sizes: Option<Vec<u64>> = chain
        .links
        .iter()
        .map(|n| {
            target
                .local_dir()
                .and_then(|d| {
                    std::fs::metadata(d.join(format!("{n}{ARCHIVE_SUFFIX}{}", enc_of(n)))).ok()
                })
                .map(|m| m.len())
        })
        .collect();
    let archive_bytes = sizes.map(|v| v.iter().sum());
    // The probe reads the chain's full backup: the most of what is read.
    let first = &chain.links[0];
    let aname = format!("{first}{ARCHIVE_SUFFIX}{}", enc_of(first));
    let read_probe = if o.probe_seconds > 0.0 {
        let input = open_file(&target, &aname, key.as_ref())?;
        if let Some(tx) = &o.probe_started {
            let _ = tx.try_send(());
        }
        Some(read_probe(input, o.probe_seconds).with_context(|| format!("reading {aname}"))?)
    } else {
        None
    };
    Ok(Facts {
        name,
        from: target.describe(),
        files,
        bytes,
        archive_bytes,
        bytes_by_mount,
        alloc_by_mount,
        read_probe,
    })
}

/// The block size [`alloc_bytes`] counts in: ext4's, xfs's and btrfs's
/// default (and the page size they cannot exceed on x86-64).
const BLOCK: u64 = 4096;

/// What member `i` takes on a file system of [`BLOCK`]-sized blocks:
/// its data rounded up to a block for a file, a block for a directory,
/// nothing for the rest (a hard link shares its file's blocks, a short
/// symlink and a device node live in the inode). Small files inlined by
/// btrfs or ext4's inline_data take less, never more.
fn alloc_bytes(i: &super::manifest::Item) -> u64 {
    match i.kind {
        super::pax::Kind::File => i.data_bytes().div_ceil(BLOCK) * BLOCK,
        super::pax::Kind::Dir => BLOCK,
        _ => 0,
    }
}

/// Member name `path` relative to /, without a leading `./` or `/`.
fn member_rel(path: &str) -> &str {
    path.trim_start_matches("./").trim_start_matches('/')
}

/// The longest of `mounts` holding the member `path` (relative to /, as
/// archive members are named).
fn mount_of<'m>(mounts: &'m [String], path: &str) -> Option<&'m str> {
    let path = member_rel(path);
    mounts
        .iter()
        .map(|m| m.as_str())
        .filter(|m| {
            let rel = m.trim_start_matches('/');
            rel.is_empty()
                || path == rel
                || path.strip_prefix(rel).is_some_and(|r| r.starts_with('/'))
        })
        .max_by_key(|m| m.len())
}

/// Decompresses, parses and hashes the archive's members for `seconds`
/// (or to its end), writing nothing. The clock starts at the first member
/// header: opening the archive (an ssh handshake, a cold disk's first seek,
/// under TCG the first translation of the decoder) is a one-time latency
/// that a 2 s window would otherwise count as a rate, and it made the
/// probe say 32 MiB/s where the restore ran at 38 (BENCHMARKS.md, issue 16).
fn read_probe(input: Box<dyn std::io::Read + Send>, seconds: f64) -> Result<Rate> {
    let mut r = reader::TarReader::ahead(input, None);
    let mut first = Some(r.next_event()?);
    let start = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    let (mut bytes, mut files) = (0u64, 0u64);
    'members: loop {
        let event = match first.take() {
            Some(e) => e,
            None => r.next_event()?,
        };
        match event {
            reader::Event::End => break,
            reader::Event::Damaged { .. } => {}
            reader::Event::Entry(h) => {
                if h.kind != super::pax::Kind::File {
                    continue;
                }
                files += 1;
                let mut x3 = manifest::Hasher::new(manifest::Algo::Xxh3);
                loop {
                    match r.read_data(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            x3.update(&buf[..n]);
                            bytes += n as u64;
                        }
                        Err(reader::DataError::Io(e)) => return Err(e.into()),
                        Err(_) => break,
                    }
                    if start.elapsed().as_secs_f64() >= seconds {
                        break 'members;
                    }
                }
                let _ = x3.finish_hex();
                if start.elapsed().as_secs_f64() >= seconds {
                    break;
                }
            }
        }
    }
    Ok(Rate {
        bytes,
        files,
        seconds: start.elapsed().as_secs_f64(),
        at: crate::sys::time::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_counts_under_its_longest_mount_point() {
        let m: Vec<String> = ["/", "/home", "/boot/efi", "/boot"]
            .map(String::from)
            .into();
        assert_eq!(mount_of(&m, "etc/passwd"), Some("/"));
        assert_eq!(mount_of(&m, "home/a/x"), Some("/home"));
        assert_eq!(mount_of(&m, "homer/x"), Some("/"));
        assert_eq!(mount_of(&m, "boot/efi/EFI/x.efi"), Some("/boot/efi"));
        assert_eq!(mount_of(&m, "boot/vmlinuz"), Some("/boot"));
        assert_eq!(mount_of(&m[1..], "etc/passwd"), None);
    }

    #[test]
    fn rates_kept_beside_each_other_and_only_for_the_running_system() {
        let d = tempfile::tempdir().unwrap();
        add_rate(d.path(), "backup", 100, 2, 4.0);
        add_rate(d.path(), "restore", 50, 1, 1.0);
        let r = read_recorded(d.path());
        assert_eq!(r.rates["backup"].per_sec(), Some(25.0));
        assert_eq!(r.rates["restore"].bytes, 50);
        // Another tree than / is never written.
        let other = tempfile::tempdir().unwrap();
        record(other.path(), "backup", 1, 1, 1.0);
        record_host(other.path());
        assert!(!other.path().join("var").exists());
        assert_eq!(read_recorded(other.path()), Recorded::default());
    }
}
