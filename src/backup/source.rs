//! Where the backup is, as the rescue system finds it.
//!
//! At rescue build time [`record`] writes the effective `[backup]` location
//! (method, target, borg repository, ssh options, the age *public* key) into
//! the image as [`RECORD_PATH`]. For a directory on a local filesystem it
//! adds that filesystem's UUID, label and type and the directory's path
//! inside it: in the rescue system nothing is mounted, and device names
//! change with the hardware.
//!
//! In the rescue system [`open_source`] reads the record, finds the
//! filesystem by UUID, mounts it read-only under [`MOUNT_DIR`] and hands
//! back a [`Source`]: the URL `restore --from` takes and the whole disks
//! that hold the backup, which recover must never use as targets.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::{BackupMethod, Config};
use crate::error::{Code, fail};
use crate::exec::Cmd;

use super::activate;
use super::share;
use super::target::Target;

/// Where the record is in the rescue image.
pub const RECORD_PATH: &str = "/etc/mkrescue/backup.json";
/// Where [`open_source`] mounts the backup filesystem (below the root).
pub const MOUNT_DIR: &str = "/run/mkrescue/backup-source";
/// Version of the record's format.
pub const RECORD_FORMAT: u32 = 1;

/// The backup location as recorded in the rescue image. Never a secret:
/// no passphrase command, no private key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    pub mkrescue_backup_location: u32,
    pub method: BackupMethod,
    /// `backup.target` (archive, rsync).
    pub target: Option<String>,
    /// `backup.borg_repo` (borg).
    pub borg_repo: Option<String>,
    #[serde(default)]
    pub ssh_options: Vec<String>,
    /// The age public key the archive is encrypted to: tells the operator
    /// which secret key to bring.
    pub age_recipient: Option<String>,
    /// `backup.mount_options` of an nfs:// or cifs:// target.
    #[serde(default)]
    pub mount_options: Option<String>,
    /// `backup.cifs_credentials`: the path only; the file is not in the
    /// image, the operator writes it there again before restoring.
    #[serde(default)]
    pub cifs_credentials: Option<PathBuf>,
    /// The filesystem holding a local backup directory; absent for remote
    /// targets (and when it could not be determined at build time).
    pub filesystem: Option<Filesystem>,
}

/// A filesystem holding the backup directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Filesystem {
    /// Filesystem UUID (`blkid`); absent for tmpfs, network filesystems.
    pub uuid: Option<String>,
    pub label: Option<String>,
    pub fstype: String,
    /// The backup directory inside the filesystem, from its root, without
    /// a leading `/` (empty: the root itself).
    pub path: String,
    /// Where the host had it mounted and from what (for messages, and the
    /// server of a network filesystem).
    pub host_mountpoint: PathBuf,
    pub host_source: String,
}

impl Filesystem {
    fn describe(&self) -> String {
        let mut s = match &self.uuid {
            Some(u) => format!("UUID={u} ({}", self.fstype),
            None => format!("{} ({}", self.host_source, self.fstype),
        };
        if let Some(l) = &self.label {
            s.push_str(&format!(", label {l}"));
        }
        s.push_str(&format!(
            ", {} mounted at {} on the host)",
            self.host_source,
            self.host_mountpoint.display()
        ));
        s
    }
}

impl Recorded {
    /// The URL of the location for `method`: the target, or the borg
    /// repository.
    pub fn url(&self) -> Option<&str> {
        match self.method {
            BackupMethod::Borg => self.borg_repo.as_deref(),
            _ => self.target.as_deref(),
        }
    }
}

impl Recorded {
    /// The network filesystem the rescue system mounts to reach this
    /// location (an nfs:// or cifs:// target, or a local directory that
    /// was on such a mount): its helper and modules must be in the image.
    pub fn network_fs(&self) -> Option<share::Kind> {
        if let Some(Ok(s)) = self.url().and_then(share::Share::parse) {
            return Some(s.kind);
        }
        match self.filesystem.as_ref().map(|f| f.fstype.as_str()) {
            Some("nfs" | "nfs4") => Some(share::Kind::Nfs),
            Some("cifs" | "smb3") => Some(share::Kind::Cifs),
            _ => None,
        }
    }
}

/// The local directory of a location URL, when it is one.
fn local_dir(method: BackupMethod, url: &str, ssh_options: &[String]) -> Result<Option<PathBuf>> {
    if method == BackupMethod::Borg {
        // borg takes a plain path or file:///path for a local repository
        // (borg help repo-urls).
        let p = url.strip_prefix("file://").unwrap_or(url);
        return Ok(p.starts_with('/').then(|| PathBuf::from(p)));
    }
    if let Some(share) = super::share::Share::parse(url) {
        // Mounted when used (restore --from URL), from the network.
        share?;
        return Ok(None);
    }
    Ok(Target::parse(url, ssh_options)?
        .local_dir()
        .map(Path::to_path_buf))
}

/// What the rescue image records of `config`'s backup location; `None`
/// when no location is configured. The filesystem of a local directory is
/// looked up only when `root` is `/` (building for the running host); a
/// failed lookup is a warning, the image still gets the URL.
pub fn record(root: &Path, config: &Config) -> Result<Option<Recorded>> {
    let b = &config.backup;
    let mut rec = Recorded {
        mkrescue_backup_location: RECORD_FORMAT,
        method: b.method,
        target: b.target.clone(),
        borg_repo: b.borg_repo.clone(),
        ssh_options: b.ssh_options.clone(),
        age_recipient: b.age_recipient.clone(),
        mount_options: b.mount_options.clone(),
        cifs_credentials: b.cifs_credentials.clone(),
        filesystem: None,
    };
    let Some(url) = rec.url().map(str::to_string) else {
        return Ok(None);
    };
    let Some(dir) = local_dir(b.method, &url, &b.ssh_options)? else {
        return Ok(Some(rec));
    };
    if root != Path::new("/") {
        return Ok(Some(rec));
    }
    match lookup(&dir) {
        Ok(fs) => {
            if fs.host_mountpoint == Path::new("/") {
                log::warn!(
                    "backup directory {} is on the root filesystem: a lost disk takes the backup with it; put it on its own disk or a server",
                    dir.display()
                );
            } else if fs.uuid.is_none() && !is_network(&fs.fstype) {
                log::warn!(
                    "backup directory {} is on {} {}, which the rescue system cannot reach; restore there needs --from URL",
                    dir.display(),
                    fs.fstype,
                    fs.host_source
                );
            }
            rec.filesystem = Some(fs);
        }
        Err(e) => log::warn!(
            "the filesystem of backup directory {} is not recorded in the rescue image; restore there needs it mounted at the same path or --from URL: {e:#}",
            dir.display()
        ),
    }
    Ok(Some(rec))
}

/// Network filesystems are found by their server, not a UUID.
fn is_network(fstype: &str) -> bool {
    matches!(fstype, "nfs" | "nfs4" | "cifs" | "smb3")
}

/// The record in the image below `root`, if there is one.
pub fn read_recorded(root: &Path) -> Result<Option<Recorded>> {
    let p = root.join(RECORD_PATH.trim_start_matches('/'));
    let text = match std::fs::read(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", p.display())),
    };
    let rec: Recorded = serde_json::from_slice(&text).map_err(|e| {
        fail(
            Code::Input,
            format!(
                "{}: not a backup location record ({e}); give --from URL",
                p.display()
            ),
        )
    })?;
    if rec.mkrescue_backup_location > RECORD_FORMAT {
        return Err(fail(
            Code::Input,
            format!(
                "{}: format {} is newer than this mkrescue understands ({RECORD_FORMAT}); give --from URL",
                p.display(),
                rec.mkrescue_backup_location
            ),
        ));
    }
    Ok(Some(rec))
}

#[derive(Deserialize)]
struct Findmnt {
    filesystems: Vec<MountEntry>,
}

#[derive(Deserialize)]
struct MountEntry {
    target: PathBuf,
    source: Option<String>,
    fstype: Option<String>,
    fsroot: Option<String>,
    uuid: Option<String>,
    label: Option<String>,
}

/// The filesystem holding `dir` on the running host.
fn lookup(dir: &Path) -> Result<Filesystem> {
    // The directory may not exist before the first backup: ask about the
    // nearest existing ancestor, resolved (symlinks, `..`).
    let mut existing = dir.to_path_buf();
    let mut rest = Vec::new();
    while std::fs::symlink_metadata(&existing).is_err() {
        match (existing.file_name(), existing.parent()) {
            (Some(n), Some(p)) => {
                rest.push(n.to_os_string());
                existing = p.to_path_buf();
            }
            _ => break,
        }
    }
    let mut full = std::fs::canonicalize(&existing)
        .with_context(|| format!("resolving {}", existing.display()))?;
    full.extend(rest.iter().rev());
    // -v: SOURCE without the "[/fsroot]" suffix of bind mounts.
    let json = Cmd::new("findmnt")
        .args(["-J", "-v", "-T"])
        .arg(&existing)
        .args(["-o", "TARGET,SOURCE,FSTYPE,FSROOT,UUID,LABEL"])
        .read()?;
    let mut fs = filesystem_of(&full, &json)?;
    if fs.uuid.is_none() && fs.host_source.starts_with("/dev/") {
        // findmnt takes UUIDs from the udev database; without one (a
        // container, a minimal host) probe the device itself.
        if let Ok(out) = Cmd::new("blkid")
            .args(["-p", "-o", "export", &fs.host_source])
            .read()
        {
            apply_blkid(&mut fs, &out);
        }
    }
    Ok(fs)
}

/// The filesystem of the resolved directory `dir` from `findmnt -J -v -T`.
fn filesystem_of(dir: &Path, findmnt_json: &str) -> Result<Filesystem> {
    let f: Findmnt = serde_json::from_str(findmnt_json).context("reading findmnt's JSON")?;
    let m = f
        .filesystems
        .into_iter()
        .next()
        .context("findmnt named no filesystem")?;
    let rel = dir.strip_prefix(&m.target).with_context(|| {
        format!(
            "{} is not below its mount point {}",
            dir.display(),
            m.target.display()
        )
    })?;
    // A bind mount (or btrfs subvolume) shows a subtree: FSROOT is where
    // the mount's root is inside the filesystem.
    let inside = Path::new(m.fsroot.as_deref().unwrap_or("/")).join(rel);
    let path = inside
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/");
    Ok(Filesystem {
        uuid: m.uuid.filter(|s| !s.is_empty()),
        label: m.label.filter(|s| !s.is_empty()),
        fstype: m.fstype.unwrap_or_default(),
        path,
        host_mountpoint: m.target,
        host_source: m.source.unwrap_or_default(),
    })
}

/// Fills UUID and label from `blkid -p -o export` (KEY=value lines).
fn apply_blkid(fs: &mut Filesystem, export: &str) {
    for line in export.lines() {
        match line.split_once('=') {
            Some(("UUID", v)) if !v.is_empty() => fs.uuid = Some(v.to_string()),
            Some(("LABEL", v)) if !v.is_empty() => fs.label = Some(v.to_string()),
            _ => {}
        }
    }
}

/// The backup location, reachable from here.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Source {
    /// What `restore --from` takes: `file:///run/mkrescue/backup-source/DIR`,
    /// `ssh://...`, or the borg repository.
    pub url: String,
    pub method: BackupMethod,
    /// Whole disks holding the backup (e.g. `/dev/vdc`): never recover
    /// targets.
    pub disks: Vec<String>,
    /// `ssh` options recorded with the location.
    pub ssh_options: Vec<String>,
    /// The age public key the backup is encrypted to, when recorded.
    pub age_recipient: Option<String>,
    /// The directory [`open_source`] mounted (and [`Source::close`]
    /// unmounts); `None` when it mounted nothing.
    pub mounted: Option<PathBuf>,
}

impl Source {
    /// Unmounts what [`open_source`] mounted.
    pub fn close(&mut self) -> Result<()> {
        if let Some(dir) = self.mounted.take() {
            Cmd::new("umount").arg(&dir).output()?;
        }
        Ok(())
    }
}

/// In the rescue system: makes the recorded backup location (or `from`)
/// reachable — a local filesystem is mounted read-only by UUID under
/// [`MOUNT_DIR`], after assembling md arrays and activating LVM when it
/// sits on them — and says which whole disks hold it. On a host without
/// a record the configured location is used as it is.
pub fn open_source(root: &Path, cfg: &Config, from: Option<&str>) -> Result<Source> {
    let rec = read_recorded(root)?;
    let method = rec.as_ref().map_or(cfg.backup.method, |r| r.method);
    let ssh_options = match &rec {
        Some(r) if cfg.backup.ssh_options.is_empty() => r.ssh_options.clone(),
        _ => cfg.backup.ssh_options.clone(),
    };
    let age_recipient = rec
        .as_ref()
        .and_then(|r| r.age_recipient.clone())
        .or(cfg.backup.age_recipient.clone());
    let mut src = Source {
        url: String::new(),
        method,
        disks: Vec::new(),
        ssh_options,
        age_recipient,
        mounted: None,
    };
    if let Some(url) = from {
        src.url = url.to_string();
        if let Some(dir) = local_dir(method, url, &src.ssh_options)? {
            src.disks = disks_of_dir(&dir)?;
        }
        return Ok(src);
    }
    if let Some(r) = rec {
        let url = r.url().ok_or_else(|| {
            fail(
                Code::Input,
                format!(
                    "{RECORD_PATH} names no backup location for method {}: give --from URL",
                    method_name(method)
                ),
            )
        })?;
        let dir = local_dir(method, url, &src.ssh_options)?;
        match (dir, &r.filesystem) {
            (None, _) => src.url = url.to_string(),
            (Some(dir), Some(fs)) => {
                let (at, dev, mounted) = mount_recorded(root, fs)?;
                let inside = at.join(&fs.path);
                src.url = location_url(method, &inside);
                if !dev.is_empty() {
                    src.disks = disks_of(&dev)?;
                }
                src.mounted = mounted;
                log::info!(
                    "backup {} found on {dev}, reachable at {}",
                    dir.display(),
                    inside.display()
                );
            }
            (Some(dir), None) => {
                if !dir.is_dir() {
                    return Err(fail(
                        Code::Host,
                        format!(
                            "backup directory {} does not exist here and the rescue image does not record its filesystem: mount it at {} or give --from URL",
                            dir.display(),
                            dir.display()
                        ),
                    ));
                }
                src.url = url.to_string();
                src.disks = disks_of_dir(&dir)?;
            }
        }
        return Ok(src);
    }
    let url = match method {
        BackupMethod::Borg => cfg.backup.borg_repo.clone(),
        _ => cfg.backup.target.clone(),
    };
    let url = url.ok_or_else(|| {
        fail(
            Code::Usage,
            format!(
                "no backup location: the rescue image records none ({RECORD_PATH}) and the configuration sets no backup.{}; give --from URL",
                if method == BackupMethod::Borg {
                    "borg_repo"
                } else {
                    "target"
                }
            ),
        )
    })?;
    if let Some(dir) = local_dir(method, &url, &src.ssh_options)? {
        if dir.is_dir() {
            src.disks = disks_of_dir(&dir)?;
        }
    }
    src.url = url;
    Ok(src)
}

fn method_name(m: BackupMethod) -> &'static str {
    match m {
        BackupMethod::Archive => "archive",
        BackupMethod::Rsync => "rsync",
        BackupMethod::Borg => "borg",
    }
}

/// What `restore --from` takes for a local directory.
fn location_url(method: BackupMethod, dir: &Path) -> String {
    match method {
        BackupMethod::Borg => dir.display().to_string(),
        _ => format!("file://{}", dir.display()),
    }
}

/// Mounts the recorded filesystem (unless it is mounted already). Returns
/// where its root is, its device, and what this call mounted.
fn mount_recorded(root: &Path, fs: &Filesystem) -> Result<(PathBuf, String, Option<PathBuf>)> {
    if fs.uuid.is_none() && is_network(&fs.fstype) {
        return mount_network(root, fs);
    }
    let Some(uuid) = &fs.uuid else {
        return Err(fail(
            Code::Host,
            format!(
                "the backup was on {}, which the rescue system cannot mount by itself: mount it and give --from URL",
                fs.describe()
            ),
        ));
    };
    let dev = device_of_uuid(uuid, fs)?;
    if let Some(at) = mounted_root(&dev)? {
        return Ok((at, dev, None));
    }
    let dir = root.join(MOUNT_DIR.trim_start_matches('/'));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Read-only: the backup is evidence, recover never writes to it.
    // btrfs: the top-level subvolume, from which the recorded path counts.
    share::load_fs(&fs.fstype, &[&fs.fstype]);
    let mut opts = String::from("ro,nodev,nosuid");
    if fs.fstype == "btrfs" {
        opts.push_str(",subvolid=5");
    }
    Cmd::new("mount")
        .args(["-t", &fs.fstype, "-o", &opts])
        .arg(&dev)
        .arg(&dir)
        .output()
        .map_err(|e| {
            fail(
                Code::Failed,
                format!(
                    "mounting backup filesystem {dev} ({}) at {}: {e:#}",
                    fs.describe(),
                    dir.display()
                ),
            )
        })?;
    Ok((dir.clone(), dev, Some(dir)))
}

/// Mounts the network filesystem the backup directory was on (read-only,
/// from the server the host had it from). No disks hold it.
fn mount_network(root: &Path, fs: &Filesystem) -> Result<(PathBuf, String, Option<PathBuf>)> {
    let dir = root.join(MOUNT_DIR.trim_start_matches('/'));
    if let Some(at) = mounted_root(&fs.host_source)? {
        return Ok((at, String::new(), None));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let kind = if fs.fstype.starts_with("nfs") {
        share::Kind::Nfs
    } else {
        share::Kind::Cifs
    };
    share::load_fs(&fs.fstype, kind.modules());
    let mut opts = String::from("ro");
    if fs.fstype.starts_with("nfs") {
        // No rpc.statd in the rescue system; a reader needs no locks.
        opts.push_str(",nolock");
    }
    Cmd::new("mount")
        .args(["-t", &fs.fstype, "-o", &opts, &fs.host_source])
        .arg(&dir)
        .output()
        .map_err(|e| {
            fail(
                Code::Failed,
                format!(
                    "mounting the backup's network filesystem {}: {e:#}; check the network (ip addr) or give --from URL",
                    fs.describe()
                ),
            )
        })?;
    Ok((dir.clone(), String::new(), Some(dir)))
}

/// The one block device with filesystem UUID `uuid`. When it is not
/// visible, md arrays are assembled and LVM volume groups activated as
/// the devices present call for ([`activate::next`]), and it is looked
/// for again; behind LUKS it needs its key, which is said.
fn device_of_uuid(uuid: &str, fs: &Filesystem) -> Result<String> {
    let mut tried = activate::Tried::default();
    let md_before = md_arrays();
    let devs = loop {
        // -c /dev/null: no cache; probe every block device as it is now
        // (the cache of a rescue system knows nothing, a stale one would
        // mislead). blkid exits 2 when it finds nothing.
        let export = Cmd::new("blkid")
            .args(["-c", "/dev/null", "-o", "export"])
            .read()
            .unwrap_or_default();
        let probed = activate::probed(&export);
        match activate::next(&probed, uuid, &fs.host_source, tried) {
            activate::Next::Found(devs) => break devs,
            activate::Next::AssembleMd => {
                tried.md = true;
                log::info!("backup filesystem UUID={uuid} not visible: assembling md arrays");
                // --config=partitions: every device in /proc/partitions,
                // as if mdadm.conf said only `DEVICE partitions` (mdadm(8),
                // --config): the rescue system's own mdadm.conf has
                // `AUTO -all` so that nothing assembles behind recover's
                // back (src/init/hardware.rs). Exits non-zero when some
                // array is incomplete or already running; what it did
                // assemble is probed next, and what does not hold the
                // backup is stopped again below.
                if let Err(e) = Cmd::new("mdadm")
                    .args(["--assemble", "--scan", "--config=partitions"])
                    .output()
                {
                    log::warn!("{e:#}");
                }
            }
            activate::Next::ActivateLvm(vg) => {
                tried.lvm = true;
                log::info!(
                    "backup filesystem UUID={uuid} not visible: activating LVM volume group {}",
                    vg.as_deref().unwrap_or("(all)")
                );
                let mut c = Cmd::new("lvm").args(["vgchange", "--activate", "y"]);
                if let Some(vg) = &vg {
                    c = c.arg(vg);
                }
                if let Err(e) = c.output() {
                    log::warn!("{e:#}");
                }
            }
            activate::Next::Luks(devs) => {
                return Err(fail(
                    Code::Host,
                    format!(
                        "backup filesystem {} not found; it may be inside the LUKS container{} {}, which needs its key: open it (cryptsetup open {} backup), then run again, or give --from URL (recover: --restore-from URL)",
                        fs.describe(),
                        if devs.len() == 1 { "" } else { "s" },
                        devs.join(", "),
                        devs[0]
                    ),
                ));
            }
            activate::Next::Missing => break Vec::new(),
        }
    };
    if tried.md {
        stop_other_arrays(&md_before, devs.first().map(|d| d.as_str()));
    }
    match devs.as_slice() {
        [] => Err(fail(
            Code::Host,
            format!(
                "backup filesystem {} not found: attach the backup disk or give --from URL",
                fs.describe()
            ),
        )),
        [one] => Ok(one.clone()),
        many => Err(fail(
            Code::Host,
            format!(
                "backup filesystem UUID={uuid} found on {} devices ({}): detach the copies or give --from URL",
                many.len(),
                many.join(", ")
            ),
        )),
    }
}

/// Where `dev`'s filesystem root is mounted already, if anywhere.
fn mounted_root(dev: &str) -> Result<Option<PathBuf>> {
    // findmnt exits 1 when nothing matches.
    let Ok(json) = Cmd::new("findmnt")
        .args(["-J", "-v", "-S", dev, "-o", "TARGET,FSROOT"])
        .read()
    else {
        return Ok(None);
    };
    let f: Findmnt = serde_json::from_str(&json).context("reading findmnt's JSON")?;
    Ok(f.filesystems
        .into_iter()
        .find(|m| m.fsroot.as_deref().unwrap_or("/") == "/")
        .map(|m| m.target))
}

#[derive(Deserialize)]
struct Lsblk {
    blockdevices: Vec<BlockDev>,
}

#[derive(Deserialize)]
struct BlockDev {
    path: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    children: Vec<BlockDev>,
}

/// Whole disks under `dev` (through partitions, RAID, LVM, LUKS).
fn disks_of(dev: &str) -> Result<Vec<String>> {
    // -s: the device and everything it is built on.
    let json = Cmd::new("lsblk")
        .args(["-J", "-s", "-o", "PATH,TYPE", dev])
        .read()?;
    whole_disks(&json)
}

/// The whole disks (`disk`, and `loop` devices) in `lsblk -J -s` output.
fn whole_disks(json: &str) -> Result<Vec<String>> {
    fn walk(d: &BlockDev, out: &mut Vec<String>) {
        if matches!(d.kind.as_str(), "disk" | "loop") && !out.contains(&d.path) {
            out.push(d.path.clone());
        }
        for c in &d.children {
            walk(c, out);
        }
    }
    let l: Lsblk = serde_json::from_str(json).context("reading lsblk's JSON")?;
    let mut out = Vec::new();
    for d in &l.blockdevices {
        walk(d, &mut out);
    }
    out.sort();
    Ok(out)
}

/// The md arrays the kernel has now (`/sys/block/md*`).
fn md_arrays() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir("/sys/block")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("md"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Stops the arrays assembled while looking for the backup (those not in
/// `before`) that do not hold `dev`: an array of the old system disks left
/// running would keep recover from partitioning them.
fn stop_other_arrays(before: &[String], dev: Option<&str>) {
    let keep: Vec<String> = dev
        .and_then(|d| {
            Cmd::new("lsblk")
                .args(["-J", "-s", "-o", "PATH,TYPE", d])
                .read()
                .ok()
        })
        .map(|json| md_in_chain(&json))
        .unwrap_or_default();
    for md in md_arrays() {
        let path = format!("/dev/{md}");
        if before.contains(&md) || keep.contains(&path) {
            continue;
        }
        match Cmd::new("mdadm").args(["--stop", &path]).output() {
            Ok(_) => log::info!("stopped md array {path}: it does not hold the backup"),
            Err(e) => log::warn!("{path} does not hold the backup and stays assembled: {e:#}"),
        }
    }
}

/// The md devices (`/dev/md*`) in `lsblk -J -s` output: what a device is
/// built on.
fn md_in_chain(json: &str) -> Vec<String> {
    fn walk(d: &BlockDev, out: &mut Vec<String>) {
        if d.path.starts_with("/dev/md") && !out.contains(&d.path) {
            out.push(d.path.clone());
        }
        for c in &d.children {
            walk(c, out);
        }
    }
    let mut out = Vec::new();
    if let Ok(l) = serde_json::from_str::<Lsblk>(json) {
        for d in &l.blockdevices {
            walk(d, &mut out);
        }
    }
    out
}

/// Whole disks under the filesystem holding the existing directory `dir`;
/// none when it is not on a block device.
fn disks_of_dir(dir: &Path) -> Result<Vec<String>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let json = Cmd::new("findmnt")
        .args(["-J", "-v", "-T"])
        .arg(dir)
        .args(["-o", "TARGET,SOURCE,FSTYPE,FSROOT,UUID,LABEL"])
        .read()?;
    let f: Findmnt = serde_json::from_str(&json).context("reading findmnt's JSON")?;
    match f.filesystems.first().and_then(|m| m.source.as_deref()) {
        Some(s) if s.starts_with("/dev/") => disks_of(s),
        _ => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PART: &str = include_str!("../../tests/fixtures/backup/findmnt-T-partition.json");
    const BIND: &str = include_str!("../../tests/fixtures/backup/findmnt-T-bind.json");
    const ROOT: &str = include_str!("../../tests/fixtures/backup/findmnt-T-root.json");
    const BLKID: &str = include_str!("../../tests/fixtures/backup/blkid-p-partition.txt");
    const LSBLK: &str = include_str!("../../tests/fixtures/backup/lsblk-s-partition.json");
    const UUID: &str = "0e7b2a6c-5d3f-4c1e-9a8b-2f6d4e1c3b5a";

    #[test]
    fn directory_on_a_partition_is_recorded_by_uuid_and_relative_path() {
        let fs = filesystem_of(Path::new("/tmp/ltm/srv/backups"), PART).unwrap();
        assert_eq!(fs.uuid.as_deref(), Some(UUID));
        assert_eq!(fs.label.as_deref(), Some("BKTEST"));
        assert_eq!(fs.fstype, "ext4");
        assert_eq!(fs.path, "srv/backups");
        assert_eq!(fs.host_source, "/dev/loop0p1");
        // Not yet created directories below count too.
        let fs = filesystem_of(Path::new("/tmp/ltm/srv/backups/new/x"), PART).unwrap();
        assert_eq!(fs.path, "srv/backups/new/x");
        let fs = filesystem_of(Path::new("/tmp/ltm"), PART).unwrap();
        assert_eq!(fs.path, "");
    }

    #[test]
    fn bind_mount_counts_from_the_filesystem_root() {
        // /tmp/ltb is /srv of the filesystem: the rescue system mounts the
        // whole filesystem, so the path must start at its root.
        let fs = filesystem_of(Path::new("/tmp/ltb/backups"), BIND).unwrap();
        assert_eq!(fs.path, "srv/backups");
        assert_eq!(fs.uuid.as_deref(), Some(UUID));
    }

    #[test]
    fn missing_uuid_comes_from_blkid() {
        let mut fs = filesystem_of(Path::new("/tmp/x"), ROOT).unwrap();
        assert_eq!(fs.uuid, None);
        assert_eq!(fs.path, "tmp/x");
        assert_eq!(fs.host_mountpoint, Path::new("/"));
        apply_blkid(&mut fs, BLKID);
        assert_eq!(fs.uuid.as_deref(), Some(UUID));
        assert_eq!(fs.label.as_deref(), Some("BKTEST"));
    }

    #[test]
    fn whole_disk_of_a_partition() {
        assert_eq!(whole_disks(LSBLK).unwrap(), vec!["/dev/loop0"]);
        // The tree shape lsblk -s prints with a udev database: the device
        // first, what it is built on as children (md on two partitions).
        let tree = r#"{"blockdevices":[{"path":"/dev/md0","type":"raid1","children":[
            {"path":"/dev/vdb1","type":"part","children":[{"path":"/dev/vdb","type":"disk"}]},
            {"path":"/dev/vdc1","type":"part","children":[{"path":"/dev/vdc","type":"disk"}]}]}]}"#;
        assert_eq!(whole_disks(tree).unwrap(), vec!["/dev/vdb", "/dev/vdc"]);
    }

    #[test]
    fn arrays_under_an_lv_on_md() {
        // An LV on md127 on two whole disks: md127 is kept, nothing else.
        let tree = r#"{"blockdevices":[{"path":"/dev/mapper/bk-store","type":"lvm","children":[
            {"path":"/dev/md127","type":"raid1","children":[
                {"path":"/dev/vdb","type":"disk"},{"path":"/dev/vdc","type":"disk"}]}]}]}"#;
        assert_eq!(md_in_chain(tree), vec!["/dev/md127"]);
        assert!(md_in_chain(LSBLK).is_empty());
        assert!(md_in_chain("not json").is_empty());
    }

    fn config(text: &str) -> Config {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn record_keeps_the_location_and_no_secret() {
        let cfg = config(
            "[backup]\nmethod = \"borg\"\nborg_repo = \"ssh://b@srv/./repo\"\n\
             borg_passcommand = \"cat /root/.borg-pass\"\n\
             ssh_options = [\"-i\", \"/root/.ssh/backup\"]\n",
        );
        let rec = record(Path::new("/nonexistent"), &cfg).unwrap().unwrap();
        assert_eq!(rec.method, BackupMethod::Borg);
        assert_eq!(rec.url(), Some("ssh://b@srv/./repo"));
        assert_eq!(rec.ssh_options, ["-i", "/root/.ssh/backup"]);
        assert_eq!(rec.filesystem, None);
        let json = serde_json::to_string(&rec).unwrap();
        assert!(!json.contains("borg-pass"), "{json}");
        let back: Recorded = serde_json::from_str(&json).unwrap();
        assert_eq!(back, rec);
    }

    #[test]
    fn record_of_nothing_configured_is_none() {
        assert_eq!(record(Path::new("/x"), &config("")).unwrap(), None);
        // A bad target fails the build like it fails the backup.
        let e = record(
            Path::new("/x"),
            &config("[backup]\ntarget = \"ftp://x/y\"\n"),
        )
        .unwrap_err();
        assert_eq!(crate::error::code_of(&e), Code::Config);
    }

    #[test]
    fn newer_record_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(RECORD_PATH.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(
            &p,
            r#"{"mkrescue_backup_location":99,"method":"archive","target":"file:///b","borg_repo":null,"age_recipient":null,"filesystem":null}"#,
        )
        .unwrap();
        let e = read_recorded(dir.path()).unwrap_err();
        assert!(format!("{e:#}").contains("give --from URL"), "{e:#}");
        assert_eq!(read_recorded(Path::new("/nonexistent")).unwrap(), None);
    }
}
