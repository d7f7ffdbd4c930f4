//! File backup and restore: `mkrescue backup`, `backup list`, `backup
//! verify` and `mkrescue restore` (what `recover` calls once the disks are
//! rebuilt and mounted).
//!
//! The built-in `archive` method writes, per backup `HOST-YYYYMMDDTHHMMSSZ`,
//! two files to the target:
//! - `NAME.tar.zst`: a POSIX pax tar ([`pax`]) of the backed-up trees, cut
//!   into independently compressed zstd frames ([`frames`]) so a damaged
//!   byte costs one frame, not the rest of the backup;
//! - `NAME.manifest.zst`: every member with its sha256 and XXH3-128
//!   ([`manifest`]).
//!
//! With `backup.mode = "incremental"` a backup holds what changed since
//! the previous one, with a delta manifest ([`incremental`]); a full
//! backup and its incrementals form a chain ([`chain`]) that restore,
//! verify, list, the estimate's facts and prune follow.
//!
//! The walk and writer are in [`create`], the reader in [`reader`], the
//! restore in [`restore`], targets (`file://`, `ssh://`) in [`target`].
//! The backup server's side: [`serve`] (append-only, over the protocol of
//! [`proto`], names checked by [`names`]) and [`prune`] (the retention of
//! [`retention`]).
//! This module holds the commands: it reads the configuration, picks the
//! target and hands plain data (a [`create::Source`], a target, a reader)
//! to those steps, then prints the one-line summary or the JSON report.

pub mod activate;
pub mod borg;
pub mod chain;
pub mod create;
pub mod facts;
pub mod frames;
pub mod identity;
pub mod incremental;
pub mod mail;
pub mod manifest;
pub mod names;
pub mod pax;
pub mod proto;
pub mod prune;
pub mod reader;
pub mod restore;
pub mod retention;
pub mod rsync;
pub mod serve;
pub mod share;
pub mod source;
pub mod target;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::config::{BackupMethod, Config};
use crate::error::{Code, fail};
use target::Target;

/// What `mkrescue backup` makes, and how it reports.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// The host's `/` (`--root` in tests and chroots).
    pub root: PathBuf,
    pub quiet: bool,
    pub json: bool,
    /// Where the backup goes (default: `backup.target`).
    pub target: Option<String>,
    /// How (default: `backup.method`).
    pub method: Option<BackupMethod>,
    /// Print what would be done, write nothing.
    pub dry_run: bool,
    /// Directories to back up (default: `backup.paths`).
    pub paths: Vec<PathBuf>,
    /// A full backup even when `backup.mode` is incremental.
    pub full: bool,
}

/// Which backups `mkrescue backup list` lists.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub root: PathBuf,
    pub json: bool,
    pub target: Option<String>,
    pub method: Option<BackupMethod>,
}

/// Which backup `mkrescue backup verify` re-reads.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    pub root: PathBuf,
    pub quiet: bool,
    pub json: bool,
    pub target: Option<String>,
    /// Its name from `backup list` (default: the newest).
    pub archive: Option<String>,
    /// age secret key of an encrypted backup: a file or URL.
    pub identity: Option<String>,
    pub method: Option<BackupMethod>,
}

/// What `mkrescue restore` (and `recover`'s restore phase) restores where.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub root: PathBuf,
    pub quiet: bool,
    pub json: bool,
    /// The directory restored into (the mounted target tree in recover).
    pub to: PathBuf,
    /// Where the backups are (default: the recorded location, else
    /// `backup.target`).
    pub from: Option<String>,
    pub archive: Option<String>,
    pub identity: Option<String>,
    pub method: Option<BackupMethod>,
    /// Progress as JSON events on stderr without the JSON report on stdout
    /// (recover's `--json`: its own report is the one on stdout).
    pub events: bool,
}

/// Format version written into every manifest.
pub const FORMAT: u32 = 1;
const ARCHIVE_SUFFIX: &str = ".tar.zst";
const MANIFEST_SUFFIX: &str = ".manifest.zst";
/// Appended to both file names when the backup is encrypted with age.
const AGE_SUFFIX: &str = ".age";

/// Checks backup.full_every when the configuration is loaded.
pub fn check_full_every(days: u32) -> Result<()> {
    if days == 0 {
        return Err(fail(
            Code::Config,
            "backup.full_every 0: give the days after which a full backup starts a new chain (1 or more)",
        ));
    }
    Ok(())
}

/// Parses `backup.age_recipient`.
/// Checks backup.age_recipient when the configuration is loaded.
pub fn check_recipient(s: &str) -> Result<()> {
    age_recipient(s).map(|_| ())
}

/// Checks a backup target URL (backup.target) when the configuration is
/// loaded, as `--target` would take it.
pub fn check_target_url(url: &str, ssh_options: &[String]) -> Result<()> {
    match share::Share::parse(url) {
        Some(r) => r.map(|_| ()),
        None => Target::parse(url, ssh_options).map(|_| ()),
    }
}

fn age_recipient(s: &str) -> Result<age::x25519::Recipient> {
    s.trim().parse().map_err(|e| {
        fail(
            Code::Config,
            format!("backup.age_recipient {s:?}: not an age public key (age1...): {e}"),
        )
    })
}

/// Where archive bytes go: straight to the target, or through age.
enum Sink {
    Plain(target::Upload),
    Age(age::stream::StreamWriter<target::Upload>),
}

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Plain(u) => u.write(b),
            Sink::Age(w) => w.write(b),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Plain(u) => u.flush(),
            Sink::Age(w) => w.flush(),
        }
    }
}

impl Sink {
    fn new(up: target::Upload, to: Option<&age::x25519::Recipient>) -> Result<Sink> {
        match to {
            None => Ok(Sink::Plain(up)),
            Some(r) => {
                let enc =
                    age::Encryptor::with_recipients(std::iter::once(r as &dyn age::Recipient))
                        .map_err(|e| anyhow::anyhow!("age: {e}"))?;
                Ok(Sink::Age(
                    enc.wrap_output(up).context("age: starting encryption")?,
                ))
            }
        }
    }

    /// Ends the age stream (its last chunk) and hands back the upload.
    fn finish(self) -> Result<target::Upload> {
        match self {
            Sink::Plain(u) => Ok(u),
            Sink::Age(w) => w.finish().context("age: finishing encryption"),
        }
    }
}

/// Opens a file of a backup, decrypting it when it is an age file.
fn open_file(
    target: &Target,
    file: &str,
    key: Option<&identity::Key>,
) -> Result<Box<dyn std::io::Read + Send>> {
    let r = target.open(file)?;
    if !file.ends_with(AGE_SUFFIX) {
        return Ok(r);
    }
    let Some(key) = key else {
        return Err(fail(
            Code::Usage,
            format!(
                "{file} is encrypted: give --identity FILE or URL (the age secret key; it is never stored in the rescue image)"
            ),
        ));
    };
    let d = age::Decryptor::new(r)
        .map_err(|e| fail(Code::Input, format!("{file}: not a readable age file: {e}")))?;
    match d.decrypt(key.ids.iter().map(|i| i.as_ref() as &dyn age::Identity)) {
        Ok(r) => Ok(Box::new(r)),
        Err(age::DecryptError::NoMatchingKeys) => Err(fail(
            Code::Input,
            format!("wrong age key: {} does not decrypt {file}", key.origin),
        )),
        Err(e) => Err(fail(Code::Input, format!("{file}: {e}"))),
    }
}

/// The key for backup `name` when it is encrypted (`enc` is its suffix):
/// `--identity`, else asked on the terminal, else a refusal.
fn key_for(
    name: &str,
    enc: &str,
    given: Option<&str>,
    cfg: &Config,
) -> Result<Option<identity::Key>> {
    if enc.is_empty() {
        return Ok(None);
    }
    identity::resolve(
        given,
        &format!("backup {name}"),
        cfg.backup.age_recipient.as_deref(),
    )
    .map(Some)
}

/// `mkrescue backup`: makes a backup, and mails the report when
/// `backup.mail_to` asks for it.
pub fn create_backup(cfg: &Config, a: &CreateOptions) -> Result<()> {
    let mail = !a.dry_run && !cfg.backup.mail_to.is_empty();
    if mail {
        mail::check(&cfg.backup)?;
    }
    let started = crate::sys::time::now();
    let t0 = Instant::now();
    let result = create_command(cfg, a);
    if mail {
        let method = a.method.unwrap_or(cfg.backup.method);
        let location = match method {
            BackupMethod::Borg => a.target.as_ref().or(cfg.backup.borg_repo.as_ref()),
            _ => a.target.as_ref().or(cfg.backup.target.as_ref()),
        };
        let outcome = mail::Outcome {
            host: crate::sys::host::hostname(&a.root),
            method,
            location: location.cloned().unwrap_or_else(|| "(none)".into()),
            started,
            seconds: t0.elapsed().as_secs_f64(),
            result: match &result {
                Ok(summary) => Ok(summary.clone()),
                Err(e) => Err((format!("{e:#}"), crate::error::code_of(e) as i32)),
            },
        };
        // A mail that cannot be sent does not undo the backup; the
        // warning reaches cron's own mail.
        if let Err(e) = mail::send(&cfg.backup, &outcome) {
            log::warn!(
                "backup report mail to {}: {e:#}",
                cfg.backup.mail_to.join(", ")
            );
        }
    }
    result.map(|_| ())
}

/// `mkrescue backup list`.
pub fn list_backups(cfg: &Config, a: &ListOptions) -> Result<()> {
    let (mut cfg, mut a) = (cfg.clone(), a.clone());
    let src = recorded_location(&a.root, &mut cfg, a.target.as_ref(), &mut a.method)?;
    if let Some(s) = &src {
        a.target = Some(s.url.clone());
    }
    let result = list_command(&cfg, &a);
    close_source(src);
    result
}

/// `mkrescue backup verify`.
pub fn verify_backup(cfg: &Config, a: &VerifyOptions) -> Result<()> {
    let (mut cfg, mut a) = (cfg.clone(), a.clone());
    let src = recorded_location(&a.root, &mut cfg, a.target.as_ref(), &mut a.method)?;
    if let Some(s) = &src {
        a.target = Some(s.url.clone());
    }
    let result = verify_command(&cfg, &a);
    close_source(src);
    result
}

/// How a target is about to be used: what a share is mounted for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Write,
    Read,
    DryRun,
    /// rsync: only ssh:// (a share is refused, never mounted).
    Rsync,
}

/// A target ready for use: an nfs:// or cifs:// share stays mounted as
/// long as this lives, and the code in between sees a local directory.
struct Opened {
    target: Target,
    _mount: Option<share::Mounted>,
}

impl std::ops::Deref for Opened {
    type Target = Target;
    fn deref(&self) -> &Target {
        &self.target
    }
}

/// The target named by `flag`, else backup.target; a local one must exist
/// (not below an unmounted mount point of `root`/etc/fstab).
fn target_of(cfg: &Config, root: &Path, flag: Option<&String>, usage: Use) -> Result<Opened> {
    let url = flag.or(cfg.backup.target.as_ref()).ok_or_else(|| {
        fail(
            Code::Usage,
            "no backup target: give --target URL (or --from for restore) or set backup.target in /etc/mkrescue/local.toml",
        )
    })?;
    // A bad URL given as a flag is a command-line mistake (exit 2); the
    // same in backup.target a configuration one (3).
    let url_error = |e: anyhow::Error| {
        if flag.is_some() && crate::error::code_of(&e) == Code::Config {
            fail(Code::Usage, format!("{e:#}"))
        } else {
            e
        }
    };
    if let (Some(s), false) = (share::Share::parse(url), usage == Use::Rsync) {
        let m =
            s.map_err(url_error)?
                .mount(&cfg.backup, usage == Use::Read, usage == Use::DryRun)?;
        return Ok(Opened {
            target: Target::Local(m.path.clone()),
            _mount: Some(m),
        });
    }
    let target = Target::parse(url, &cfg.backup.ssh_options).map_err(url_error)?;
    if let Some(d) = target.local_dir() {
        target::check_local(d, &root.join("etc/fstab"))?;
    }
    Ok(Opened {
        target,
        _mount: None,
    })
}

/// The report of `mkrescue backup --json`.
#[derive(Debug, Serialize)]
pub struct BackupReport {
    pub method: BackupMethod,
    pub target: String,
    pub name: String,
    pub archive: String,
    pub manifest: String,
    /// The target is `mkrescue serve` (append-only): this host prunes
    /// nothing there; the backup server does (`mkrescue prune`).
    pub append_only: bool,
    /// An incremental's parent (`None`: a full backup).
    pub parent: Option<String>,
    pub archive_bytes: u64,
    pub stats: create::Stats,
    pub seconds: f64,
    /// File data read per second (MiB/s).
    pub mib_per_s: f64,
}

/// Makes the backup; returns the one-line summary.
fn create_command(cfg: &Config, args: &CreateOptions) -> Result<String> {
    let method = args.method.unwrap_or(cfg.backup.method);
    if method == BackupMethod::Rsync {
        return rsync_command(cfg, args);
    }
    if method == BackupMethod::Borg {
        return borg_command(cfg, args);
    }
    if method != BackupMethod::Archive {
        return Err(fail(
            Code::NotYet,
            format!(
                "backup method {}: not available in this version yet; use --method archive",
                serde_json::to_value(method)?.as_str().unwrap_or("?")
            ),
        ));
    }
    let target = target_of(
        cfg,
        &args.root,
        args.target.as_ref(),
        if args.dry_run {
            Use::DryRun
        } else {
            Use::Write
        },
    )?;
    let mut src = source_of(cfg, args, &target)?;
    let paths = src.paths.clone();
    let clock = std::time::SystemTime::now();
    let started = clock
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let recipient = cfg
        .backup
        .age_recipient
        .as_deref()
        .map(age_recipient)
        .transpose()?;
    let plan = plan_incremental(cfg, args, &target, &mut src, started)?;
    // Unique to the microsecond (README "Backup names"); an incremental's
    // name carries its parent's and full backup's stamps.
    let mut name = format!(
        "{}-{}",
        crate::sys::host::hostname(&args.root),
        crate::sys::time::stamp_micros(clock)
    );
    if let Some(p) = &plan.parent {
        let parent = p.head.chain.last().map(String::as_str).unwrap_or("");
        let full = p.head.chain.first().map(String::as_str).unwrap_or("");
        name = format!(
            "{name}_{}_{}",
            chain::stamps(parent).own,
            chain::stamps(full).own
        );
    }
    let enc = if recipient.is_some() { AGE_SUFFIX } else { "" };
    let archive = format!("{name}{ARCHIVE_SUFFIX}{enc}");
    let manifest_name = format!("{name}{MANIFEST_SUFFIX}{enc}");
    if args.dry_run {
        // Only what is below a path being backed up is left out of it: a
        // tree under /tmp is backed up whole.
        let logical = |p: &Path| {
            p.strip_prefix(&src.root)
                .map(|r| Path::new("/").join(r))
                .unwrap_or_else(|_| p.to_path_buf())
        };
        let left_out: Vec<String> = create::ALWAYS_PRUNED
            .iter()
            .map(|d| Path::new("/").join(d))
            .chain(src.prune.iter().map(|p| logical(p)))
            .filter(|d| paths.iter().any(|p| d.starts_with(p) && d != p))
            .map(|d| d.display().to_string())
            .collect();
        if let Some(why) = &plan.why_full {
            println!("a full backup: {why}");
        }
        if let Some(p) = plan.parent.as_ref().and_then(|p| p.head.chain.last()) {
            println!("an incremental on {p}: only what changed since then");
        }
        println!(
            "would back up {} (one filesystem each; {}{}) to {}/{archive} and {manifest_name}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            if left_out.is_empty() {
                "nothing below them left out".to_string()
            } else {
                format!("contents of {} left out", left_out.join(", "))
            },
            if src.exclude.is_empty() {
                String::new()
            } else {
                format!("; excluded: {}", src.exclude.join(" "))
            },
            target.describe()
        );
        return Ok(String::new());
    }
    let show = crate::progress::enabled(args.quiet) && !args.json;
    let total = if show {
        create::estimate(&src, plan.parent.as_ref().map(|p| &p.members))?
    } else {
        0
    };
    let pb = crate::progress::bytes(show, total, "backup");
    let threads = if cfg.backup.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        cfg.backup.threads
    };
    let start = Instant::now();
    let head = manifest::Head {
        mkrescue_backup: FORMAT,
        host: crate::sys::host::hostname(&args.root),
        created: started,
        paths: paths.iter().map(|p| p.display().to_string()).collect(),
        archive: archive.clone(),
        encrypted: recipient.is_some(),
        parent: plan
            .parent
            .as_ref()
            .and_then(|p| p.head.chain.last().cloned()),
    };
    let (up, mup) = target.upload_backup(&archive, &manifest_name)?;
    let (up, mup) = match (
        Sink::new(up, recipient.as_ref()),
        Sink::new(mup, recipient.as_ref()),
    ) {
        (Ok(a), Ok(m)) => (a, m),
        (a, m) => {
            remove_part(&target, &archive);
            remove_part(&target, &manifest_name);
            return Err(a.err().or(m.err()).expect("one failed"));
        }
    };
    let mut man = manifest::Writer::new(mup, &head)?;
    let mut tracker = create::Tracker {
        parent: plan.parent.as_ref().map(|p| &p.members),
        members: Vec::new(),
        // A second before the start ([`incremental::Stat::unsure`]).
        recent: clock
            .duration_since(std::time::UNIX_EPOCH)
            .map_or((0, 0), |d| {
                (d.as_secs() as i64 - 1, i64::from(d.subsec_nanos()))
            }),
    };
    let result = create::write_archive(
        &src,
        up,
        &mut man,
        cfg.backup.compress_level,
        threads,
        &pb,
        &mut tracker,
    );
    pb.finish_and_clear();
    let (up, stats, compressed) = match result {
        Ok(x) => x,
        Err(e) => {
            // The archive writer is gone with the error; its temporary file
            // is removed by name.
            if let Ok(Ok(m)) = man.finish().map(Sink::finish) {
                m.abort();
            }
            remove_part(&target, &archive);
            return Err(e.context(format!("backup to {}", target.describe())));
        }
    };
    let staged = (|| -> Result<_> {
        let mup = man.finish()?.finish()?;
        let m = mup.close()?;
        let a = match up.finish().and_then(|u| u.close()) {
            Ok(a) => a,
            Err(e) => {
                m.discard();
                return Err(e);
            }
        };
        Ok((m, a))
    })();
    let (m, a) = match staged {
        Ok(x) => x,
        Err(e) => {
            remove_part(&target, &archive);
            remove_part(&target, &manifest_name);
            return Err(e.context(format!("backup to {}", target.describe())));
        }
    };
    target::commit_backup(m, a)?;
    if let Some(state_file) = &plan.state_file {
        // Only now is the backup there to be a parent.
        let (mut chain, full_created) = match &plan.parent {
            Some(p) => (p.head.chain.clone(), p.head.full_created),
            None => (Vec::new(), started),
        };
        chain.push(name.clone());
        let head = incremental::Head {
            version: 0,
            target: plan.url.clone(),
            paths: head.paths.clone(),
            recipient: cfg
                .backup
                .age_recipient
                .as_deref()
                .map(|r| r.trim().to_string()),
            chain,
            full_created,
        };
        if let Err(e) = incremental::save(state_file, &head, &tracker.members) {
            log::warn!("{e:#}; the next backup will be made on the previous one again");
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let report = BackupReport {
        method,
        target: target.describe(),
        name: name.clone(),
        parent: head.parent.clone(),
        archive,
        manifest: manifest_name,
        append_only: target.append_only(),
        archive_bytes: compressed,
        mib_per_s: stats.data_bytes as f64 / (1 << 20) as f64 / seconds.max(1e-6),
        stats,
        seconds,
    };
    // The rates of this host's own backup only (see facts::record): not
    // of a run with --target or PATHs of its own (a test, a bench, an
    // admin trying a directory).
    if args.target.is_none() && args.paths.is_empty() {
        facts::record(
            &args.root,
            "backup",
            report.stats.data_bytes,
            report.stats.files,
            report.seconds,
        );
        facts::record_host(&args.root);
    }
    for w in &report.stats.warnings {
        log::warn!("{w}");
    }
    let s = &report.stats;
    let summary = format!(
        "backup {name}{}: {} files, {} dirs, {} links, {:.1} MiB data -> {:.1} MiB at {} in {:.1}s ({:.0} MiB/s){}",
        match &report.parent {
            Some(p) => format!(
                " (incremental on {p}: {} members unchanged, {} removed)",
                s.unchanged, s.removed
            ),
            None => String::new(),
        },
        s.files,
        s.dirs,
        s.symlinks + s.hardlinks,
        s.data_bytes as f64 / (1 << 20) as f64,
        report.archive_bytes as f64 / (1 << 20) as f64,
        report.target,
        report.seconds,
        report.mib_per_s,
        if s.warnings.is_empty() {
            String::new()
        } else {
            format!(", {} warnings", s.warnings.len())
        }
    );
    if args.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else if !args.quiet {
        eprintln!("mkrescue: {summary}");
        if report.append_only {
            eprintln!(
                "mkrescue: {} is append-only (mkrescue serve): this host deletes nothing there; old backups are pruned on the backup server (`mkrescue prune DIR`)",
                report.target
            );
        }
    }
    Ok(summary)
}

/// Whether a backup is an incremental, and on what.
struct Plan {
    /// The target's URL, as the state records it.
    url: String,
    /// Where the state goes after the backup (incremental mode only).
    state_file: Option<PathBuf>,
    /// The state of the backup this one is an incremental on.
    parent: Option<incremental::State>,
    /// Why it is a full one (incremental mode only).
    why_full: Option<String>,
}

/// Decides between a full backup and an incremental
/// ([`incremental::why_full`]); in incremental mode the state directory is
/// made and kept empty in the backup.
fn plan_incremental(
    cfg: &Config,
    args: &CreateOptions,
    target: &Target,
    src: &mut create::Source,
    now: i64,
) -> Result<Plan> {
    let dir = create::under_root(&args.root, Path::new(incremental::STATE_DIR));
    if cfg.backup.mode != crate::config::BackupMode::Incremental {
        if dir.is_dir() {
            // Left from an earlier incremental mode.
            src.prune.push(dir);
        }
        return Ok(Plan {
            url: String::new(),
            state_file: None,
            parent: None,
            why_full: None,
        });
    }
    let paths: Vec<String> = src.paths.iter().map(|p| p.display().to_string()).collect();
    // The URL as configured, not where it is mounted now: a share is
    // mounted on a directory named after the process.
    let url = args
        .target
        .as_ref()
        .or(cfg.backup.target.as_ref())
        .cloned()
        .unwrap_or_else(|| target.describe());
    let state_file = incremental::state_path(&args.root, &url, &paths);
    if !args.dry_run {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    src.prune.push(dir);
    let state = if args.full {
        None
    } else {
        incremental::load(&state_file)
    };
    let listed = match &state {
        Some(_) => list(target).unwrap_or_else(|e| {
            log::warn!("listing {}: {e:#}", target.describe());
            Vec::new()
        }),
        None => Vec::new(),
    };
    let why = if args.full {
        Some("--full".to_string())
    } else {
        incremental::why_full(
            state.as_ref(),
            cfg.backup.age_recipient.as_deref().map(str::trim),
            cfg.backup.full_every,
            now,
            |n| listed.iter().any(|b| b.name == n && b.complete),
        )
    };
    if let Some(w) = &why {
        log::info!("a full backup: {w}");
    }
    Ok(Plan {
        url,
        state_file: (!args.dry_run).then_some(state_file),
        parent: if why.is_none() { state } else { None },
        why_full: why,
    })
}

fn source_of(cfg: &Config, args: &CreateOptions, target: &Target) -> Result<create::Source> {
    let paths = if args.paths.is_empty() {
        cfg.backup.paths.clone()
    } else {
        args.paths.clone()
    };
    for p in &paths {
        if !p.is_absolute() {
            return Err(fail(
                Code::Usage,
                format!("backup path {}: give an absolute path", p.display()),
            ));
        }
    }
    let mut prune = vec![create::under_root(&args.root, &cfg.build.out_dir)];
    if let Some(d) = target.local_dir() {
        prune.push(d.to_path_buf());
    }
    Ok(create::Source {
        root: args.root.clone(),
        paths,
        exclude: cfg.backup.exclude.clone(),
        prune,
    })
}

fn repo_of(cfg: &Config, flag: Option<&String>) -> Result<borg::Repo> {
    let url = flag.or(cfg.backup.borg_repo.as_ref()).ok_or_else(|| {
        fail(
            Code::Usage,
            "no borg repository: give --target REPO or set backup.borg_repo in /etc/mkrescue/local.toml",
        )
    })?;
    let repo = borg::Repo {
        url: url.clone(),
        passcommand: cfg.backup.borg_passcommand.clone(),
    };
    repo.check_available()?;
    Ok(repo)
}

/// `mkrescue backup --method borg`.
fn borg_command(cfg: &Config, args: &CreateOptions) -> Result<String> {
    let repo = repo_of(cfg, args.target.as_ref())?;
    let src = source_of(cfg, args, &Target::Local(PathBuf::from(&repo.url)))?;
    let start = Instant::now();
    let name = format!(
        "{}-{}",
        crate::sys::host::hostname(&args.root),
        crate::sys::time::stamp_micros(std::time::SystemTime::now())
    );
    let out = repo
        .create(&src, &name, args.dry_run)
        .with_context(|| format!("borg backup to {}", repo.url))?;
    let seconds = start.elapsed().as_secs_f64();
    let summary = format!(
        "borg archive {name} in {}: {} files, {:.1} MiB deduplicated in {:.1}s",
        repo.url,
        out["archive"]["stats"]["nfiles"],
        out["archive"]["stats"]["deduplicated_size"]
            .as_f64()
            .unwrap_or(0.0)
            / (1 << 20) as f64,
        seconds
    );
    if args.json {
        let mut o = std::io::stdout().lock();
        serde_json::to_writer_pretty(
            &mut o,
            &serde_json::json!({
                "method": "borg",
                "target": repo.url,
                "name": name,
                "borg": out,
                "seconds": seconds,
            }),
        )?;
        writeln!(o)?;
    } else if !args.quiet && !args.dry_run {
        eprintln!("mkrescue: {summary}");
    }
    Ok(summary)
}

/// `mkrescue backup --method rsync`.
fn rsync_command(cfg: &Config, args: &CreateOptions) -> Result<String> {
    let target = target_of(cfg, &args.root, args.target.as_ref(), Use::Rsync)?;
    let src = source_of(cfg, args, &target)?;
    let start = Instant::now();
    let stamp = crate::sys::time::stamp_micros(std::time::SystemTime::now());
    let rep = rsync::backup(
        &src,
        &target,
        &stamp,
        cfg.backup.keep_daily,
        cfg.backup.keep_monthly,
        args.dry_run,
    )
    .with_context(|| format!("rsync backup to {}", target.describe()))?;
    let seconds = start.elapsed().as_secs_f64();
    let summary = format!(
        "rsync snapshot {} at {} in {:.1}s ({} kept, {} pruned)",
        rep.snapshot,
        target.describe(),
        seconds,
        rep.kept,
        rep.pruned.len()
    );
    if args.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(
            &mut out,
            &serde_json::json!({
                "method": "rsync",
                "target": target.describe(),
                "snapshot": rep.snapshot,
                "link_dest": rep.link_dest,
                "pruned": rep.pruned,
                "kept": rep.kept,
                "seconds": seconds,
            }),
        )?;
        writeln!(out)?;
    } else if !args.quiet && !args.dry_run {
        eprintln!("mkrescue: {summary}");
    }
    Ok(summary)
}

fn remove_part(target: &Target, name: &str) {
    if let Target::Local(dir) = target {
        let _ = std::fs::remove_file(dir.join(format!(".{name}.part")));
    }
}

/// One backup at a target.
#[derive(Debug, Serialize)]
pub struct Listed {
    pub name: String,
    pub host: String,
    pub created: i64,
    pub paths: Vec<String>,
    pub archive_bytes: Option<u64>,
    pub complete: bool,
    pub encrypted: bool,
    /// An incremental's parent (its name, or `HOST-STAMP` when it is not
    /// at the target)...
    pub parent: Option<String>,
    /// ...and its chain's full backup.
    pub full: Option<String>,
    /// The links of its chain that are not at the target (or incomplete):
    /// a restore of it cannot be the exact tree ([`chain`]).
    pub missing_links: Vec<String>,
}

/// The backups at `target`, oldest first. A backup is complete when both
/// its archive and its manifest are there under their final names.
pub fn list(target: &Target) -> Result<Vec<Listed>> {
    let names = target.list()?;
    let mut out = Vec::new();
    for n in &names {
        let (plain, encrypted) = match n.strip_suffix(AGE_SUFFIX) {
            Some(p) => (p, true),
            None => (n.as_str(), false),
        };
        let Some(base) = plain.strip_suffix(MANIFEST_SUFFIX) else {
            continue;
        };
        let enc = if encrypted { AGE_SUFFIX } else { "" };
        let archive = format!("{base}{ARCHIVE_SUFFIX}{enc}");
        let complete = names.contains(&archive);
        // An encrypted manifest cannot be read without the key: the name
        // (HOST-STAMP) is all there is.
        let head = if encrypted {
            manifest::Head {
                mkrescue_backup: FORMAT,
                host: base
                    .rsplit_once('-')
                    .map(|x| x.0)
                    .unwrap_or(base)
                    .to_string(),
                // The name's stamp: when the backup started.
                created: crate::sys::time::parse_stamp(stamp_of(base)).unwrap_or(0),
                paths: Vec::new(),
                archive: archive.clone(),
                encrypted: true,
                parent: None,
            }
        } else {
            manifest::read_head(target.open(n)?, Path::new(n))?
        };
        let archive_bytes = target
            .local_dir()
            .and_then(|d| std::fs::metadata(d.join(&archive)).ok())
            .map(|m| m.len());
        out.push(Listed {
            name: base.to_string(),
            host: head.host,
            created: head.created,
            paths: head.paths,
            archive_bytes,
            complete,
            encrypted,
            parent: None,
            full: None,
            missing_links: Vec::new(),
        });
    }
    // Names end in the UTC stamp: their order is the time order.
    out.sort_by(|a, b| {
        stamp_of(&a.name)
            .cmp(stamp_of(&b.name))
            .then(a.name.cmp(&b.name))
    });
    // The chains, from the names.
    let name_of = |host: &str, stamp: &str| {
        out.iter()
            .find(|b| {
                let s = chain::stamps(&b.name);
                s.host == host && s.own == stamp
            })
            .map(|b| b.name.clone())
            .unwrap_or_else(|| format!("{host}-{stamp}"))
    };
    let links: Vec<_> = out
        .iter()
        .map(|b| {
            let s = chain::stamps(&b.name);
            let missing = if s.parent.is_some() && b.complete {
                chain::resolve(&out, &b.name).missing
            } else {
                Vec::new()
            };
            (
                s.parent.map(|p| name_of(s.host, p)),
                s.full.map(|f| name_of(s.host, f)),
                missing,
            )
        })
        .collect();
    for (b, (parent, full, missing)) in out.iter_mut().zip(links) {
        b.parent = parent;
        b.full = full;
        b.missing_links = missing;
    }
    Ok(out)
}

fn list_command(cfg: &Config, args: &ListOptions) -> Result<()> {
    let method = args.method.unwrap_or(cfg.backup.method);
    if method != BackupMethod::Archive {
        let names = match method {
            BackupMethod::Borg => repo_of(cfg, args.target.as_ref())?.list()?,
            _ => rsync::snapshots(
                &target_of(cfg, &args.root, args.target.as_ref(), Use::Rsync)?.target,
            )?,
        };
        let mut out = std::io::stdout().lock();
        if args.json {
            serde_json::to_writer_pretty(&mut out, &names)?;
            writeln!(out)?;
        } else {
            for n in names {
                writeln!(out, "{n}")?;
            }
        }
        return Ok(());
    }
    let target = target_of(cfg, &args.root, args.target.as_ref(), Use::Read)?;
    let l = list(&target)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &l)?;
        writeln!(out)?;
        return Ok(());
    }
    // A table: name, start (UTC), archive size, chain, paths.
    let rows: Vec<[String; 5]> = l
        .iter()
        .map(|b| {
            let chain = match (&b.full, b.missing_links.first()) {
                (None, _) => "full".to_string(),
                (Some(_), Some(m)) => format!("broken: {m} missing"),
                (Some(f), None) => format!(
                    "+{} on {}",
                    chain::resolve(&l, &b.name).links.len().saturating_sub(1),
                    chain::stamps(f).own
                ),
            };
            [
                b.name.clone(),
                crate::sys::time::datetime(b.created),
                b.archive_bytes
                    .map(|n| format!("{:.1} MiB", n as f64 / (1 << 20) as f64))
                    .unwrap_or_else(|| "-".into()),
                chain,
                format!(
                    "{}{}",
                    if b.encrypted && b.paths.is_empty() {
                        "(encrypted: the key shows them)".to_string()
                    } else {
                        b.paths.join(",")
                    },
                    if b.complete {
                        ""
                    } else {
                        "  (incomplete: archive missing)"
                    }
                ),
            ]
        })
        .collect();
    if !rows.is_empty() {
        let head = ["NAME", "STARTED (UTC)", "SIZE", "CHAIN", "PATHS"];
        let w: Vec<usize> = (0..4)
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].len())
                    .chain([head[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for r in std::iter::once(&head.map(String::from)).chain(&rows) {
            writeln!(
                out,
                "{:<a$}  {:<b$}  {:>c$}  {:<d$}  {}",
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                a = w[0],
                b = w[1],
                c = w[2],
                d = w[3]
            )?;
        }
    }
    if l.is_empty() {
        eprintln!("mkrescue: no backups at {}", target.describe());
    }
    Ok(())
}

/// The stamp a backup's name starts with (an incremental's own).
fn stamp_of(name: &str) -> &str {
    chain::stamps(name).own
}

/// The suffix the files of backup `name` carry: `.age` when encrypted.
fn suffix_of(l: &[Listed], name: &str) -> &'static str {
    if l.iter().any(|b| b.name == name && b.encrypted) {
        AGE_SUFFIX
    } else {
        ""
    }
}

/// `.age` when any link of `chain` is encrypted (its key is asked for
/// once, for all of them).
fn chain_suffix(l: &[Listed], chain: &chain::Chain) -> &'static str {
    chain
        .links
        .iter()
        .map(|n| suffix_of(l, n))
        .find(|e| !e.is_empty())
        .unwrap_or("")
}

/// The named backup, or the newest complete one.
fn pick_name(l: &[Listed], target: &Target, name: Option<&String>) -> Result<String> {
    if let Some(n) = name {
        let n = n
            .trim_end_matches(AGE_SUFFIX)
            .trim_end_matches(ARCHIVE_SUFFIX)
            .trim_end_matches(MANIFEST_SUFFIX);
        if l.iter().any(|b| b.name == n) {
            return Ok(n.to_string());
        }
        // An incremental by its `HOST-STAMP` alone.
        if let Some(b) = l
            .iter()
            .find(|b| b.full.is_some() && b.name.split('_').next() == Some(n))
        {
            return Ok(b.name.clone());
        }
        return Err(fail(
            Code::Usage,
            format!(
                "no backup named {n} at {}; `mkrescue backup list` shows: {}",
                target.describe(),
                l.iter()
                    .map(|b| b.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    l.iter()
        .rev()
        .find(|b| b.complete)
        .map(|b| b.name.clone())
        .ok_or_else(|| {
            fail(
                Code::Input,
                format!("no complete backup at {}", target.describe()),
            )
        })
}

/// The report of `backup verify`.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub name: String,
    pub files_checked: u64,
    pub bytes_checked: u64,
    /// Files whose content does not match the manifest.
    pub mismatched: Vec<String>,
    /// Members in the manifest but not readable from the archive.
    pub missing: Vec<String>,
    pub seconds: f64,
    /// The backups checked, the chain's full one first.
    pub chain: Vec<String>,
    /// Links of the chain that are not at the target.
    pub missing_links: Vec<String>,
}

/// Re-reads the archive `name` and checks every file against the manifest.
pub fn verify(
    target: &Target,
    name: &str,
    enc: &str,
    key: Option<&identity::Key>,
    show: bool,
) -> Result<VerifyReport> {
    let start = Instant::now();
    let mname = format!("{name}{MANIFEST_SUFFIX}{enc}");
    let man = manifest::read(open_file(target, &mname, key)?, Path::new(&mname))?;
    let archive = open_file(target, &format!("{name}{ARCHIVE_SUFFIX}{enc}"), key)?;
    let mut rep = check_archive(&man, archive, name, show)?;
    rep.seconds = start.elapsed().as_secs_f64();
    Ok(rep)
}

/// Reads `archive` through and checks every file against `man` (what
/// `backup verify` and `mkrescue serve` check).
pub fn check_archive(
    man: &manifest::Manifest,
    archive: Box<dyn std::io::Read + Send>,
    name: &str,
    show: bool,
) -> Result<VerifyReport> {
    let start = Instant::now();
    let expected: std::collections::HashMap<Vec<u8>, &manifest::Item> = man
        .items
        .iter()
        .map(|i| (manifest::unescape(&i.path), i))
        .collect();
    let total: u64 = man.items.iter().map(|i| i.data_bytes()).sum();
    let pb = crate::progress::bytes(show, total, "verify");
    let known = expected.keys().cloned().collect();
    let mut r = reader::TarReader::ahead(archive, Some(known));
    let mut seen = std::collections::HashSet::new();
    let mut rep = VerifyReport {
        name: name.to_string(),
        files_checked: 0,
        bytes_checked: 0,
        mismatched: Vec::new(),
        missing: Vec::new(),
        seconds: 0.0,
        chain: vec![name.to_string()],
        missing_links: Vec::new(),
    };
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match r.next_event()? {
            reader::Event::End => break,
            reader::Event::Damaged { .. } => {}
            reader::Event::Entry(h) => {
                if h.kind != pax::Kind::File {
                    seen.insert(h.path);
                    continue;
                }
                let want = expected.get(&h.path);
                // sha256 always (the admin's own tools check it); XXH3
                // too when the manifest has it (it is what restore checks).
                let mut sha = manifest::Hasher::new(manifest::Algo::Sha256);
                let mut x3 = want
                    .and_then(|i| i.xxh3.as_ref())
                    .map(|_| manifest::Hasher::new(manifest::Algo::Xxh3));
                let mut ok = true;
                loop {
                    match r.read_data(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            sha.update(&buf[..n]);
                            if let Some(x) = &mut x3 {
                                x.update(&buf[..n]);
                            }
                            rep.bytes_checked += n as u64;
                            pb.inc(n as u64);
                        }
                        Err(reader::DataError::Io(e)) => return Err(e.into()),
                        Err(_) => {
                            ok = false;
                            break;
                        }
                    }
                }
                if !ok {
                    continue;
                }
                rep.files_checked += 1;
                let same = |got: String, want: Option<&String>| {
                    want.is_some_and(|w| w.eq_ignore_ascii_case(&got))
                };
                let sha_ok = same(sha.finish_hex(), want.and_then(|i| i.sha256.as_ref()));
                let x3_ok =
                    x3.is_none_or(|x| same(x.finish_hex(), want.and_then(|i| i.xxh3.as_ref())));
                if !(sha_ok && x3_ok) {
                    rep.mismatched.push(manifest::escape(&h.path));
                } else {
                    seen.insert(h.path);
                }
            }
        }
    }
    pb.finish_and_clear();
    let mismatched: std::collections::HashSet<&String> = rep.mismatched.iter().collect();
    rep.missing = man
        .items
        .iter()
        .filter(|i| !seen.contains(&manifest::unescape(&i.path)) && !mismatched.contains(&i.path))
        .map(|i| i.path.clone())
        .collect();
    rep.seconds = start.elapsed().as_secs_f64();
    Ok(rep)
}

/// The borg archive asked for, else the newest in the repository.
fn borg_archive(repo: &borg::Repo, asked: Option<&String>) -> Result<String> {
    match asked {
        Some(n) => Ok(n.clone()),
        None => repo.list()?.pop().ok_or_else(|| {
            fail(
                Code::Input,
                format!("no archives in borg repository {}", repo.url),
            )
        }),
    }
}

fn verify_command(cfg: &Config, args: &VerifyOptions) -> Result<()> {
    match args.method.unwrap_or(cfg.backup.method) {
        BackupMethod::Archive => {}
        BackupMethod::Borg => {
            let repo = repo_of(cfg, args.target.as_ref())?;
            let name = borg_archive(&repo, args.archive.as_ref())?;
            repo.check(&name).map_err(|e| {
                fail(
                    Code::Input,
                    format!("borg archive {name} in {} is damaged: {e:#}", repo.url),
                )
            })?;
            if !args.quiet {
                eprintln!("mkrescue: borg archive {name} verified (borg check --verify-data)");
            }
            return Ok(());
        }
        BackupMethod::Rsync => {
            return Err(fail(
                Code::NotYet,
                "backup verify --method rsync: rsync snapshots carry no checksums to verify against",
            ));
        }
    }
    let target = target_of(cfg, &args.root, args.target.as_ref(), Use::Read)?;
    let l = list(&target)?;
    let name = pick_name(&l, &target, args.archive.as_ref())?;
    let chain = chain::resolve(&l, &name);
    let enc_of = |n: &str| suffix_of(&l, n);
    let show = crate::progress::enabled(args.quiet) && !args.json;
    let enc = chain_suffix(&l, &chain);
    let key = key_for(&name, enc, args.identity.as_deref(), cfg)?;
    // Every link of the chain, each against its own manifest; the
    // members of an older link are named with it.
    let mut rep = verify(&target, &name, enc_of(&name), key.as_ref(), show)?;
    for link in chain.links.iter().rev().skip(1) {
        let r = verify(&target, link, enc_of(link), key.as_ref(), show)?;
        rep.files_checked += r.files_checked;
        rep.bytes_checked += r.bytes_checked;
        rep.seconds += r.seconds;
        rep.mismatched
            .extend(r.mismatched.iter().map(|m| format!("{link}: {m}")));
        rep.missing
            .extend(r.missing.iter().map(|m| format!("{link}: {m}")));
    }
    rep.chain = chain.links.clone();
    rep.missing_links = chain.missing.clone();
    if args.target.is_none() {
        facts::record(
            &args.root,
            "verify",
            rep.bytes_checked,
            rep.files_checked,
            rep.seconds,
        );
    }
    if args.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &rep)?;
        writeln!(out)?;
    }
    let bad = rep.mismatched.len() + rep.missing.len();
    if bad > 0 {
        let first = rep
            .mismatched
            .first()
            .or(rep.missing.first())
            .cloned()
            .unwrap_or_default();
        return Err(fail(
            Code::Input,
            format!(
                "backup {name} at {} is damaged: {} files differ from the manifest, {} members are unreadable; first: {first}",
                target.describe(),
                rep.mismatched.len(),
                rep.missing.len()
            ),
        ));
    }
    if let Some(first) = chain.missing.first() {
        return Err(fail(
            Code::Input,
            format!(
                "backup {name} at {}: its chain misses {first}{}; the {} links there verified ({} files), but a restore cannot be the exact tree",
                target.describe(),
                if chain.missing.len() > 1 {
                    format!(" and {} more", chain.missing.len() - 1)
                } else {
                    String::new()
                },
                chain.links.len(),
                rep.files_checked
            ),
        ));
    }
    if !args.json && !args.quiet {
        eprintln!(
            "mkrescue: backup {name}{} verified: {} files, {:.1} MiB, every sha256 and XXH3 of the manifest matches ({:.1}s)",
            if chain.links.len() > 1 {
                format!(" and its chain ({})", chain.links.join(", "))
            } else {
                String::new()
            },
            rep.files_checked,
            rep.bytes_checked as f64 / (1 << 20) as f64,
            rep.seconds
        );
    }
    Ok(())
}

/// The report of `mkrescue restore --json`.
#[derive(Debug, Serialize)]
pub struct RestoreReport {
    pub name: String,
    pub from: String,
    pub to: PathBuf,
    /// The backups restored, the full one first (one for a full backup).
    pub chain: Vec<String>,
    /// Links of the chain not at the target: the tree is not exactly the
    /// backup's ([`chain`] says what it is).
    pub missing_links: Vec<String>,
    #[serde(flatten)]
    pub result: restore::Report,
    pub seconds: f64,
}

/// `mkrescue restore --to DIR [--from URL] [--archive NAME]`. Without
/// `--from`, in the rescue system, the location recorded in the image
/// ([`source::RECORD_PATH`]) is opened (its filesystem mounted by UUID for
/// the time of the restore); elsewhere the configured one is used.
pub fn restore_backup(cfg: &Config, args: &RestoreOptions) -> Result<()> {
    let mut cfg = cfg.clone();
    if !args.to.is_dir() {
        return Err(fail(
            Code::Usage,
            format!(
                "restore --to {}: not a directory; mount the target system there first",
                args.to.display()
            ),
        ));
    }
    // A target that cannot be written (read-only mount, no permission)
    // would fail file by file: say it once, before anything is read.
    if let Err(e) = tempfile::tempfile_in(&args.to) {
        return Err(fail(
            Code::Failed,
            format!(
                "restore --to {}: cannot write there ({e}); mount it read-write (`mount -o remount,rw {}`) and run the restore again",
                args.to.display(),
                args.to.display()
            ),
        ));
    }
    let mut args = args.clone();
    let src = recorded_location(&args.root, &mut cfg, args.from.as_ref(), &mut args.method)?;
    if let Some(s) = &src {
        args.from = Some(s.url.clone());
    }
    let result = restore_from(&cfg, &args);
    close_source(src);
    result
}

/// In the rescue system, where the image records the backup location
/// ([`source::RECORD_PATH`]): the recorded settings stand in where the
/// configuration has none, the recorded method where none is given, and
/// without a location given (`--from`, `--target`) the recorded one is
/// opened (its filesystem mounted by UUID) until [`close_source`].
fn recorded_location(
    root: &Path,
    cfg: &mut Config,
    given: Option<&String>,
    method: &mut Option<BackupMethod>,
) -> Result<Option<source::Source>> {
    let Some(rec) = source::read_recorded(root)? else {
        return Ok(None);
    };
    let b = &mut cfg.backup;
    if b.ssh_options.is_empty() {
        b.ssh_options = rec.ssh_options.clone();
    }
    if b.age_recipient.is_none() {
        b.age_recipient = rec.age_recipient.clone();
    }
    if b.mount_options.is_none() {
        b.mount_options = rec.mount_options.clone();
    }
    if b.cifs_credentials.is_none() {
        b.cifs_credentials = rec.cifs_credentials.clone();
    }
    *method = method.or(Some(rec.method));
    if given.is_some() {
        return Ok(None);
    }
    source::open_source(root, cfg, None).map(Some)
}

/// Unmounts what [`recorded_location`] mounted.
fn close_source(src: Option<source::Source>) {
    if let Some(mut s) = src {
        if let Err(e) = s.close() {
            log::warn!("{e:#}");
        }
    }
}

fn restore_from(cfg: &Config, args: &RestoreOptions) -> Result<()> {
    if args.method.unwrap_or(cfg.backup.method) == BackupMethod::Borg {
        let repo = repo_of(cfg, args.from.as_ref())?;
        let name = borg_archive(&repo, args.archive.as_ref())?;
        let start = Instant::now();
        repo.extract(&name, &args.to)?;
        if !args.quiet {
            eprintln!(
                "mkrescue: restored borg archive {name} into {} in {:.1}s",
                args.to.display(),
                start.elapsed().as_secs_f64()
            );
        }
        return Ok(());
    }
    let usage = if args.method.unwrap_or(cfg.backup.method) == BackupMethod::Rsync {
        Use::Rsync
    } else {
        Use::Read
    };
    let target = target_of(cfg, &args.root, args.from.as_ref(), usage)?;
    if args.method.unwrap_or(cfg.backup.method) == BackupMethod::Rsync {
        let snaps = rsync::snapshots(&target)?;
        let name = match &args.archive {
            Some(n) if snaps.contains(n) => n.clone(),
            Some(n) => {
                return Err(fail(
                    Code::Usage,
                    format!(
                        "no snapshot {n} at {}; there are: {}",
                        target.describe(),
                        snaps.join(", ")
                    ),
                ));
            }
            None => snaps.last().cloned().ok_or_else(|| {
                fail(
                    Code::Input,
                    format!("no complete snapshot at {}", target.describe()),
                )
            })?,
        };
        let start = Instant::now();
        rsync::restore(&target, &name, &args.to)?;
        if !args.quiet {
            eprintln!(
                "mkrescue: restored rsync snapshot {name} into {} in {:.1}s",
                args.to.display(),
                start.elapsed().as_secs_f64()
            );
        }
        return Ok(());
    }
    let l = list(&target)?;
    let name = pick_name(&l, &target, args.archive.as_ref())?;
    let chain = chain::resolve(&l, &name);
    let enc_of = |n: &str| suffix_of(&l, n);
    let enc = chain_suffix(&l, &chain);
    let key = key_for(&name, enc, args.identity.as_deref(), cfg)?;
    let start = Instant::now();
    let mut mans = Vec::new();
    for link in &chain.links {
        let mname = format!("{link}{MANIFEST_SUFFIX}{}", enc_of(link));
        match open_file(&target, &mname, key.as_ref())
            .and_then(|r| manifest::read(r, Path::new(&mname)))
        {
            Ok(m) => mans.push(Some(m)),
            // No key or the wrong one: the archive will not open either.
            Err(e) if !enc.is_empty() && e.downcast_ref::<crate::error::Failure>().is_some() => {
                return Err(e);
            }
            Err(e) => {
                log::warn!("{e:#}; restoring without it (lost files cannot all be named)");
                mans.push(None);
            }
        }
    }
    let show = crate::progress::enabled(args.quiet) && !args.json;
    // What the chain restore writes: each member once.
    let total = chain::restored(&mans).iter().map(|i| i.data_bytes()).sum();
    let pb = crate::progress::bytes(show, total, "restore");
    let _report = crate::progress::report(&pb, "restore", args.quiet, args.json || args.events);
    let mut session = restore::Session::new(&args.to);
    // Newest first: each member comes from the newest link that has it.
    for (i, (link, man)) in chain.links.iter().zip(&mans).rev().enumerate() {
        if i + 1 == chain.links.len() {
            session.last_archive();
        }
        let input = open_file(
            &target,
            &format!("{link}{ARCHIVE_SUFFIX}{}", enc_of(link)),
            key.as_ref(),
        )?;
        session
            .archive(input, man.as_ref(), &pb)
            .with_context(|| format!("restoring {link} into {}", args.to.display()))?;
    }
    let result = session.finish();
    pb.finish_and_clear();
    if args.from.is_none() {
        facts::record(
            &args.root,
            "restore",
            result.bytes,
            result.files,
            start.elapsed().as_secs_f64(),
        );
    }
    let report = RestoreReport {
        name: name.clone(),
        from: target.describe(),
        to: args.to.clone(),
        chain: chain.links.clone(),
        missing_links: chain.missing.clone(),
        result,
        seconds: start.elapsed().as_secs_f64(),
    };
    if args.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    }
    let r = &report.result;
    if let Some(first) = chain.missing.first() {
        return Err(fail(
            Code::Input,
            format!(
                "restore of {name}: its chain misses {} ({}) at {}; restored what the {} backups of the chain there hold ({} members) into {}, but what only the missing backups changed, added or removed is as it was before them",
                if chain.missing.len() == 1 {
                    "one backup".to_string()
                } else {
                    format!("{} backups", chain.missing.len())
                },
                if chain.missing.len() == 1 {
                    first.clone()
                } else {
                    chain.missing.join(", ")
                },
                report.from,
                chain.links.len(),
                r.entries,
                args.to.display()
            ),
        ));
    }
    if !r.damaged.is_empty() {
        return Err(fail(
            Code::Input,
            format!(
                "restore of {name}: {} members damaged or lost in the archive (first: {}), {} not restorable; everything else ({} members) restored into {}",
                r.damaged.len(),
                r.first_bad().unwrap_or("?"),
                r.errors.len(),
                r.entries,
                args.to.display()
            ),
        ));
    }
    if !r.errors.is_empty() {
        return Err(fail(
            Code::Failed,
            format!(
                "restore of {name}: {} members could not be restored (first: {}); {} restored into {}",
                r.errors.len(),
                r.errors[0],
                r.entries,
                args.to.display()
            ),
        ));
    }
    if !args.json && !args.quiet {
        eprintln!(
            "mkrescue: restored {name}{} into {}: {} members, {} files, {:.1} MiB in {:.1}s; {}",
            if chain.links.len() > 1 {
                format!(
                    " (a chain of {} from {})",
                    chain.links.len(),
                    chain.links[0]
                )
            } else {
                String::new()
            },
            args.to.display(),
            r.entries,
            r.files,
            r.bytes as f64 / (1 << 20) as f64,
            report.seconds,
            checked_words(r.checked)
        );
    }
    Ok(())
}

/// What the restore line says of the digests: `mkrescue drill` reads the
/// count back from recover's console ([`crate::drill::serial`]).
pub fn checked_words(checked: u64) -> String {
    if checked == 0 {
        "no file checked (the backup has no manifest)".into()
    } else {
        format!("{checked} files checked against the manifest")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stamps() {
        assert_eq!(crate::sys::time::stamp(0), "19700101T000000Z");
        assert_eq!(crate::sys::time::stamp(1_779_417_045), "20260522T023045Z");
        assert_eq!(crate::sys::time::stamp(951_782_400), "20000229T000000Z");
    }
}
