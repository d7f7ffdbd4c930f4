//! What the recovery-time estimate needs to know of a backup: the newest
//! (or the named) archive's size from its manifest, and how fast this
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
    ARCHIVE_SUFFIX, BackupMethod, MANIFEST_SUFFIX, Use, manifest, open_file, pick, reader,
    recorded_location, target_of,
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

/// The recorded rates below `root` (none when there is no file yet).
pub fn read_rates(root: &Path) -> Rates {
    let p = root.join(RATES_PATH.trim_start_matches('/'));
    std::fs::read(&p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Records one measured step. Best effort: a read-only or full /var must
/// not fail the backup or restore that measured it.
pub fn record(root: &Path, step: &str, bytes: u64, files: u64, seconds: f64) {
    let p = root.join(RATES_PATH.trim_start_matches('/'));
    let mut rates = read_rates(root);
    rates.insert(
        step.to_string(),
        Rate {
            bytes,
            files,
            seconds,
            at: crate::sys::time::now(),
        },
    );
    let write = || -> Result<()> {
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        let tmp = p.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&rates)?)?;
        std::fs::rename(&tmp, &p)?;
        Ok(())
    };
    if let Err(e) = write() {
        log::info!("rates not recorded in {}: {e:#}", p.display());
    }
}

/// Records the host's last boot time (for the estimate's first boot),
/// only when `root` is the running host's own.
pub fn record_boot(root: &Path) {
    if root != Path::new("/") {
        return;
    }
    if let Some(b) = crate::estimate::host_boot_seconds() {
        record(root, "first_boot", 0, 0, b);
    }
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
    let (name, enc) = pick(&target, o.archive.as_ref())?;
    let key = if enc.is_empty() {
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
    let mname = format!("{name}{MANIFEST_SUFFIX}{enc}");
    let man = manifest::read(open_file(&target, &mname, key.as_ref())?, Path::new(&mname))?;
    let files = man
        .items
        .iter()
        .filter(|i| i.kind == super::pax::Kind::File)
        .count() as u64;
    let bytes = man.items.iter().map(|i| i.size).sum();
    let aname = format!("{name}{ARCHIVE_SUFFIX}{enc}");
    let archive_bytes = target
        .local_dir()
        .and_then(|d| std::fs::metadata(d.join(&aname)).ok())
        .map(|m| m.len());
    let read_probe = if o.probe_seconds > 0.0 {
        let input = open_file(&target, &aname, key.as_ref())?;
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
        read_probe,
    })
}

/// Decompresses, parses and hashes the archive's members for `seconds`
/// (or to its end), writing nothing.
fn read_probe(input: Box<dyn std::io::Read + Send>, seconds: f64) -> Result<Rate> {
    let start = Instant::now();
    let mut r = reader::TarReader::ahead(input, None);
    let mut buf = vec![0u8; 1 << 20];
    let (mut bytes, mut files) = (0u64, 0u64);
    'members: loop {
        match r.next_event()? {
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
