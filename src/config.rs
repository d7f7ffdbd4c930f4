//! Layered TOML configuration.
//!
//! Built-in defaults < `/etc/mkrescue/site.toml` < `/etc/mkrescue/local.toml`
//! < `--config FILE` < command-line flags. Each file is validated on its own
//! (unknown keys and wrong types are errors naming file, line and key), then
//! the files are merged table by table, so a later file only overrides the
//! keys it sets.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::error::{Code, fail};

/// What a build writes. (The command line's names and help of these enums
/// are in `cli.rs`; they match the serde names.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    /// kernel + initrd (DIR/vmlinuz, DIR/initrd.img)
    Initramfs,
    /// hybrid ISO for BIOS and UEFI
    Iso,
    /// USB disk image or device
    Usb,
    /// PXE tree for a TFTP/HTTP server
    Pxe,
    /// HP One-Button Disaster Recovery tape
    Obdr,
}

/// Which kernel modules go into the rescue system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModulePolicy {
    /// modules loaded on the host plus what its block and network devices need
    Host,
    /// storage, network, filesystem and crypto drivers (works on new hardware)
    StorageNet,
    /// every module of the kernel
    All,
}

/// Compression of the initrd. The kernel must be able to unpack it
/// (`CONFIG_RD_*` in its config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Zstd,
    Xz,
    Gzip,
    None,
}

/// Fixed default for `SOURCE_DATE_EPOCH`: 2024-01-01T00:00:00Z. Every mtime in
/// the image is clamped to it, so two builds of an unchanged host are
/// byte-identical.
pub const DEFAULT_EPOCH: u64 = 1_704_067_200;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub build: Build,
    pub tools: Tools,
    pub modules: Modules,
    pub files: Files,
    pub backup: Backup,
    pub network: Network,
    pub ssh: Ssh,
    pub secrets: Secrets,
    pub output: OutputCfg,
    pub recover: RecoverCfg,
    pub estimate: EstimateCfg,
    pub drill: DrillCfg,
}

/// `mkrescue drill` and its timer (`[drill]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DrillCfg {
    /// Disk images or block devices holding the backup, attached
    /// copy-on-write (`--backup-disk` adds to them).
    pub backup_disks: Vec<PathBuf>,
    /// Where the VMs' disks and serial logs go (`--work`); None:
    /// /var/tmp/mkrescue-drill-HOST.
    pub work: Option<PathBuf>,
    /// Memory of the VMs in MiB (`--memory`).
    pub memory_mib: u32,
    /// Mail the report to backup.mail_to: "failure" (default), "always"
    /// or "never".
    pub mail: DrillMail,
}

impl Default for DrillCfg {
    fn default() -> Self {
        DrillCfg {
            backup_disks: Vec::new(),
            work: None,
            memory_mib: 2048,
            mail: DrillMail::Failure,
        }
    }
}

/// When a drill mails its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DrillMail {
    #[default]
    Failure,
    Always,
    Never,
}

/// `mkrescue estimate`'s assumptions where nothing was measured, and
/// seed 002's site-wide terms (`[estimate]`), in seconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EstimateCfg {
    /// The rescue system's boot, kernel to ready, until it is measured
    /// (in the rescue system it is).
    pub rescue_boot_seconds: f64,
    /// The recovered system's first boot when the host's own boot time is
    /// not known (no systemd).
    pub first_boot_seconds: f64,
    /// b: getting a replacement machine ready, per host (`--hosts`).
    pub provision_seconds: f64,
    /// n: post-work after the first boot (checks, hand-over), per host.
    pub post_work_seconds: f64,
}

impl Default for EstimateCfg {
    fn default() -> Self {
        EstimateCfg {
            rescue_boot_seconds: 60.0,
            first_boot_seconds: 60.0,
            provision_seconds: 0.0,
            post_work_seconds: 0.0,
        }
    }
}

/// How `mkrescue backup` saves the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupMethod {
    /// built-in archive: pax tar, zstd, sha256 manifest
    Archive,
    /// rsync -aHAX over ssh into dated snapshots
    Rsync,
    /// the borg CLI
    Borg,
}

/// Whether `mkrescue backup` stores everything or what changed
/// (`backup.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackupMode {
    /// every backup holds every member
    #[default]
    Full,
    /// a backup holds what changed since the previous one, and a full one
    /// starts a new chain every `full_every` days
    Incremental,
}

/// The `[backup]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Backup {
    pub method: BackupMethod,
    /// `file:///DIR` or `ssh://[USER@]HOST[:PORT]/DIR` (archive and rsync);
    /// the archive method also takes `nfs://HOST/EXPORT/PATH` (mounted
    /// whole; the directory must exist) and `cifs://[USER@]HOST/SHARE[/PATH]`.
    pub target: Option<String>,
    /// Directories backed up, each on its own filesystem (one-file-system).
    pub paths: Vec<PathBuf>,
    /// Wildcard patterns of paths to leave out: `*` within a component,
    /// `**` across; with a `/` matched against the whole path, else the
    /// last component.
    pub exclude: Vec<String>,
    /// archive: `"full"`, or `"incremental"` (only what changed since the
    /// previous backup; see `full_every`).
    pub mode: BackupMode,
    /// incremental: days after which the next backup is a full one again
    /// (1 or more).
    pub full_every: u32,
    /// zstd level of the archive (1-19).
    pub compress_level: i32,
    /// Compression threads; 0: one per core.
    pub threads: usize,
    /// Extra options for `ssh` (e.g. `["-i", "/root/.ssh/backup_key"]`).
    pub ssh_options: Vec<String>,
    /// rsync (on the host) and `mkrescue prune` (on a backup server): keep
    /// the newest snapshot or backup of each of the last N days...
    pub keep_daily: usize,
    /// ...and of each of the last M months.
    pub keep_monthly: usize,
    /// archive: encrypt to this age public key (`age1...`); the secret key
    /// is given to `restore --identity` and never stored here.
    pub age_recipient: Option<String>,
    /// borg: the repository (a path or borg's `ssh://user@host/path`).
    pub borg_repo: Option<String>,
    /// borg: command printing the passphrase (`BORG_PASSCOMMAND`).
    pub borg_passcommand: Option<String>,
    /// nfs:// and cifs:// targets: more `mount -o` options, comma-separated
    /// (e.g. `"vers=4.2"`). Never a password: see `cifs_credentials`.
    pub mount_options: Option<String>,
    /// cifs:// targets: a file with `username=`, `password=` (and
    /// `domain=`) lines, mount.cifs(8) `credentials=`; keep it mode 0600.
    /// Never put in the rescue image: give it there again before restoring.
    pub cifs_credentials: Option<PathBuf>,
    /// Mail a report of every `mkrescue backup`, successful or failed, to
    /// these addresses (empty: no mail). A success mail is how an admin
    /// knows the job ran at all.
    pub mail_to: Vec<String>,
    /// Sender of the report; default `root@HOSTNAME`.
    pub mail_from: Option<String>,
    /// The sendmail program the report is piped into (`-t -oi`); every MTA
    /// (exim, postfix, msmtp-mta, nullmailer) installs one.
    pub sendmail: PathBuf,
}

impl Default for Backup {
    fn default() -> Self {
        Backup {
            method: BackupMethod::Archive,
            target: None,
            paths: vec![PathBuf::from("/")],
            exclude: Vec::new(),
            mode: BackupMode::Full,
            full_every: 7,
            compress_level: 3,
            threads: 0,
            ssh_options: Vec::new(),
            keep_daily: 7,
            keep_monthly: 12,
            age_recipient: None,
            borg_repo: None,
            borg_passcommand: None,
            mount_options: None,
            cifs_credentials: None,
            mail_to: Vec::new(),
            mail_from: None,
            sendmail: PathBuf::from("/usr/sbin/sendmail"),
        }
    }
}

/// How `mkrescue recover` rebuilds this host (`[recover]`). The rescue
/// image carries the host's effective configuration, so these apply when
/// the rescue system recovers unattended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RecoverCfg {
    /// Key file opening the LUKS containers (instead of asking). A relative
    /// path is looked up on the backup's filesystem (e.g. a key kept on the
    /// backup disk); `--key-file` overrides it.
    pub key_file: Option<PathBuf>,
    /// What recover does with a target disk bigger than the layout's disk:
    /// `last` grows the last partition to the end of the disk (what is
    /// inside it keeps its size), `proportional` grows partitions, md
    /// arrays and LVs that hold a file system in proportion to their
    /// size, `none` keeps the recorded sizes. A smaller disk is fitted
    /// whatever this says (recover::plan::fit).
    pub resize: Resize,
    /// Deprecated: `false` is `resize = "none"` (when `resize` is left at
    /// its default), `true` the default `resize = "last"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grow_last_partition: Option<bool>,
    /// Where the rebuilt file systems are mounted for the restore.
    pub target_dir: PathBuf,
    /// Reinstall the boot loader (GRUB for BIOS and UEFI) after the restore.
    pub bootloader: bool,
    /// Regenerate the restored system's initramfs (update-initramfs, dracut
    /// or mkinitcpio, whichever it has): `auto` only when finalize rewrote
    /// a file it embeds or it lacks a driver of the new disks.
    pub initramfs: Regen,
    /// Regenerate the boot menu (grub-mkconfig): `auto` only when something
    /// the restored grub.cfg refers to changed.
    pub boot_menu: Regen,
    /// The firmware the recovered machine boots with: `auto` (what the
    /// rescue system booted with), `bios` or `uefi`; `--firmware`
    /// overrides it. Recover adds what that firmware needs and the layout
    /// lacks (an ESP, a bios_grub partition) and installs its GRUB
    /// (recover::plan::firmware).
    pub firmware: Firmware,
}

/// `[recover] firmware` and `recover --firmware`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    /// What the rescue system booted with (`/sys/firmware/efi` exists:
    /// UEFI).
    #[default]
    Auto,
    Bios,
    Uefi,
}

/// `[recover] resize`: how recover uses a target disk bigger than the
/// layout's disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resize {
    /// Grow the last partition to the end of the disk.
    #[default]
    Last,
    /// Grow every growable partition, md array and LV in proportion.
    Proportional,
    /// Keep the recorded sizes.
    None,
}

impl RecoverCfg {
    /// `resize`, with the deprecated `grow_last_partition = false` read
    /// as `"none"` when `resize` was not changed from its default.
    pub fn resize(&self) -> Resize {
        match (self.resize, self.grow_last_partition) {
            (Resize::Last, Some(false)) => Resize::None,
            (r, _) => r,
        }
    }
}

/// When recover regenerates a file of the restored system that it can
/// also keep as restored (`[recover] initramfs`, `boot_menu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Regen {
    /// Only when the restored one does not fit the new machine.
    Auto,
    Always,
    Never,
}

/// `"auto"`, `"always"`, `"never"`; `initramfs = true|false` from before
/// `auto` existed still reads: true is `always`, false `never`.
impl<'de> Deserialize<'de> for Regen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Regen, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Regen;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"auto\", \"always\" or \"never\"")
            }
            fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Regen, E> {
                Ok(if b { Regen::Always } else { Regen::Never })
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Regen, E> {
                match s {
                    "auto" => Ok(Regen::Auto),
                    "always" => Ok(Regen::Always),
                    "never" => Ok(Regen::Never),
                    o => Err(E::invalid_value(serde::de::Unexpected::Str(o), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Default for RecoverCfg {
    fn default() -> Self {
        RecoverCfg {
            key_file: None,
            resize: Resize::Last,
            grow_last_partition: None,
            target_dir: PathBuf::from("/mnt/target"),
            bootloader: true,
            initramfs: Regen::Auto,
            boot_menu: Regen::Auto,
            firmware: Firmware::Auto,
        }
    }
}

/// Boot media settings (`[output]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutputCfg {
    /// ISO 9660 volume id of `--output iso|obdr` (1-32 of A-Z 0-9 _); what
    /// file managers and `blkid` show as the medium's label.
    pub volume_id: String,
    /// Seconds the boot menu waits before booting the local disk.
    pub boot_timeout: u32,
    /// `--output iso`: put the newest archive backup of this host (at
    /// `backup.target`) onto the ISO, as `--iso-backup` does.
    pub iso_backup: bool,
    /// UEFI boot loader of the ISO: `auto` (Debian's signed shim + GRUB
    /// when this host boots with Secure Boot), `on` (always signed), `off`.
    pub secure_boot: SecureBoot,
    /// `--output pxe`: push the tree to this `ssh://[USER@]HOST[:PORT]/DIR`
    /// after writing it, as `--pxe-upload` does.
    pub pxe_upload: Option<String>,
    /// Extra `ssh` options for the PXE upload (e.g. `["-i", "/root/.ssh/pxe"]`).
    pub pxe_ssh_options: Vec<String>,
    /// Test rigs only, as `--test-boot-entry`: this rescue entry boots
    /// after one second and the rescue system powers off when done. For a
    /// build that no command line reaches: `layout check --rebuild` from
    /// its timer, the kernel hook.
    pub test_boot_entry: Option<String>,
}

impl Default for OutputCfg {
    fn default() -> Self {
        OutputCfg {
            volume_id: "MKRESCUE".into(),
            boot_timeout: 30,
            iso_backup: false,
            secure_boot: SecureBoot::Auto,
            pxe_upload: None,
            pxe_ssh_options: Vec::new(),
            test_boot_entry: None,
        }
    }
}

/// `output.secure_boot` (src/output/secureboot.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SecureBoot {
    /// Signed when the host boots with Secure Boot and the packages are there
    #[default]
    Auto,
    /// Always Debian's signed shim + GRUB (shim-signed, grub-efi-amd64-signed)
    On,
    /// Always GRUB built by grub-mkimage (boots with Secure Boot off only)
    Off,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Build {
    /// What `mkrescue` builds without `--output`.
    pub output: Output,
    /// Where the result goes.
    pub out_dir: PathBuf,
    /// Kernel version to use; empty: the newest in /boot with modules.
    pub kernel_version: Option<String>,
    pub compress: Compression,
    /// Compression level (zstd 1-19, xz 0-9, gzip 1-9).
    pub compress_level: Option<u32>,
    /// Clamp of every mtime in the image (seconds since 1970);
    /// `SOURCE_DATE_EPOCH` in the environment overrides it.
    pub source_date_epoch: u64,
    /// Directories searched for tools, in order.
    pub path: Vec<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Tools {
    /// More tools (names looked up in `build.path`, or absolute paths) that
    /// must be in the rescue system; a missing one is an error.
    pub required: Vec<String>,
    /// More tools taken when present.
    pub optional: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Modules {
    pub policy: ModulePolicy,
    /// More modules by name, with their dependencies.
    pub extra: Vec<String>,
    /// Include the firmware files that modules name.
    pub firmware: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Files {
    /// Host files or directories (recursively) copied into the rescue system
    /// at the same path; ELF files among them bring their libraries.
    pub include: Vec<PathBuf>,
}

/// How the rescue system gets on the network (src/rescue/network.rs,
/// src/init/net.rs). `mkrescue.net=` and `ip=` on the kernel command line
/// override `mode` at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NetMode {
    /// The host's configuration on the NIC with the same MAC, else DHCP
    #[default]
    Host,
    /// DHCP on every interface with a link; never the host's static address
    Dhcp,
    /// No network
    Off,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    pub mode: NetMode,
    /// Capture the configuration from this file (output of `ip -details
    /// -json addr show`, e.g. taken on another machine) instead of asking
    /// this host.
    pub ip_addr_json: Option<PathBuf>,
    /// With `ip_addr_json`: output of `ip -4 -json route show table main`.
    pub ip4_route_json: Option<PathBuf>,
    /// With `ip_addr_json`: output of `ip -6 -json route show table main`.
    pub ip6_route_json: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Ssh {
    /// Carry sshd when the host has it (keys only, no passwords).
    pub enabled: bool,
    /// Files whose public keys may log in as root in the rescue system.
    /// Missing files are skipped, except ones given here explicitly.
    pub authorized_keys_files: Vec<PathBuf>,
    /// More public key lines (`ssh-ed25519 AAAA... comment`).
    pub authorized_keys: Vec<String>,
}

impl Default for Ssh {
    fn default() -> Self {
        Ssh {
            enabled: true,
            authorized_keys_files: vec![PathBuf::from("/root/.ssh/authorized_keys")],
            authorized_keys: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Secrets {
    /// More image paths (shell wildcards) that must never go into the image.
    pub deny: Vec<String>,
    /// Image paths (shell wildcards) allowed in the image although the
    /// secret scan flags them (private keys, /etc/shadow, `deny`).
    pub allow: Vec<String>,
}

impl Default for Build {
    fn default() -> Self {
        Build {
            output: Output::Initramfs,
            out_dir: PathBuf::from("/var/lib/mkrescue/output"),
            kernel_version: None,
            compress: Compression::Zstd,
            compress_level: None,
            source_date_epoch: DEFAULT_EPOCH,
            path: [
                "/usr/local/sbin",
                "/usr/local/bin",
                "/usr/sbin",
                "/usr/bin",
                "/sbin",
                "/bin",
            ]
            .iter()
            .map(PathBuf::from)
            .collect(),
        }
    }
}

impl Default for Modules {
    fn default() -> Self {
        Modules {
            policy: ModulePolicy::StorageNet,
            extra: Vec::new(),
            firmware: true,
        }
    }
}

/// One configuration file that was read, for `dump`.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub path: PathBuf,
    pub found: bool,
}

/// The effective configuration and where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct Loaded {
    pub config: Config,
    pub sources: Vec<Source>,
    /// The text of each file read, in order, to name the line of a value
    /// that a later check refuses.
    #[serde(skip)]
    pub texts: Vec<(PathBuf, String)>,
}

impl Loaded {
    /// `FILE:LINE` of the file that sets the dotted `key` last (the one
    /// that wins), if any does.
    pub fn where_set(&self, key: &str) -> Option<String> {
        let (table, name) = key.rsplit_once('.').unwrap_or(("", key));
        self.texts.iter().rev().find_map(|(path, text)| {
            let mut current = String::new();
            for (i, l) in text.lines().enumerate() {
                let t = l.trim();
                if t.starts_with('[') && t.ends_with(']') {
                    current = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
                    continue;
                }
                if current == table && t.split_once('=').map(|(k, _)| k.trim()) == Some(name) {
                    return Some(format!("{}:{}", path.display(), i + 1));
                }
            }
            None
        })
    }
}

/// Where the configuration files are: `DIR/site.toml`, `DIR/local.toml`
/// and the one `--config` names.
#[derive(Debug, Clone)]
pub struct ConfigFiles {
    pub dir: PathBuf,
    pub extra: Option<PathBuf>,
}

/// Reads the configuration layers (command-line flags are applied on top by
/// the command layer).
pub fn load(files: &ConfigFiles) -> Result<Loaded> {
    let mut merged = toml::Table::new();
    let mut sources = Vec::new();
    let mut texts = Vec::new();
    let site = files.dir.join("site.toml");
    let local = files.dir.join("local.toml");
    for path in [site, local] {
        let text = merge_file(&mut merged, &path, false)?;
        sources.push(Source {
            path: path.clone(),
            found: text.is_some(),
        });
        texts.extend(text.map(|t| (path, t)));
    }
    if let Some(path) = &files.extra {
        let text = merge_file(&mut merged, path, true)?;
        sources.push(Source {
            path: path.clone(),
            found: true,
        });
        texts.extend(text.map(|t| (path.clone(), t)));
    }
    let mut config: Config =
        toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| {
                fail(Code::Config, format!("configuration: {}", e.message()))
            })?;
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        config.build.source_date_epoch = epoch.trim().parse().map_err(|_| {
            fail(
                Code::Config,
                format!("SOURCE_DATE_EPOCH={epoch:?} is not a number of seconds since 1970"),
            )
        })?;
    }
    Ok(Loaded {
        config,
        sources,
        texts,
    })
}

/// Validates one file and merges its tables into `merged`. Returns its
/// text, None when it does not exist; a missing `--config` file is an
/// error, a missing site/local file is not.
fn merge_file(merged: &mut toml::Table, path: &Path, must_exist: bool) -> Result<Option<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => return Ok(None),
        Err(e) => {
            return Err(fail(
                Code::Config,
                format!("cannot read configuration file {}: {e}", path.display()),
            ));
        }
    };
    let table = parse_str(&text, path)?;
    deep_merge(merged, table);
    Ok(Some(text))
}

/// Parses and validates one configuration text; errors name `path`, the line
/// and the key.
pub fn parse_str(text: &str, path: &Path) -> Result<toml::Table> {
    let describe = |e: toml::de::Error| {
        let (line, key) = match e.span() {
            Some(span) => locate(text, span.start),
            None => (0, None),
        };
        let key = key.map(|k| format!(" (key `{k}`)")).unwrap_or_default();
        // toml's message can span lines (it quotes the source); keep line one.
        let msg = e.message().lines().next().unwrap_or("invalid").to_string();
        fail(
            Code::Config,
            format!("{}:{line}: {msg}{key}", path.display()),
        )
    };
    let table: toml::Table = toml::from_str(text).map_err(describe)?;
    // Validate this layer alone so the error points into this file.
    toml::from_str::<Config>(text).map_err(describe)?;
    Ok(table)
}

/// Line number (1-based) of a byte offset, and the dotted key on that line.
fn locate(text: &str, offset: usize) -> (usize, Option<String>) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line_no = before.matches('\n').count() + 1;
    let mut table = String::new();
    for l in before.lines() {
        let t = l.trim();
        if t.starts_with('[') && t.ends_with(']') {
            table = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
        }
    }
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    let full = match (key, table.is_empty()) {
        (Some(k), false) => Some(format!("{table}.{k}")),
        (Some(k), true) => Some(k),
        (None, false) => Some(table),
        (None, true) => None,
    };
    (line_no, full)
}

fn deep_merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => deep_merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// The effective configuration as TOML, for `dump`.
pub fn to_toml(config: &Config) -> Result<String> {
    toml::to_string_pretty(config).context("rendering configuration as TOML")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `initramfs = true|false` from before `auto` still reads; the words
    /// are the new form; anything else is refused.
    #[test]
    fn regen_words_and_old_booleans() {
        let read = |t: &str| toml::from_str::<RecoverCfg>(t);
        assert_eq!(read("").unwrap().initramfs, Regen::Auto);
        assert_eq!(read("").unwrap().boot_menu, Regen::Auto);
        assert_eq!(read("initramfs = true").unwrap().initramfs, Regen::Always);
        assert_eq!(read("initramfs = false").unwrap().initramfs, Regen::Never);
        assert_eq!(
            read("boot_menu = \"never\"").unwrap().boot_menu,
            Regen::Never
        );
        assert_eq!(
            read("initramfs = \"always\"").unwrap().initramfs,
            Regen::Always
        );
        let e = read("initramfs = \"sometimes\"").unwrap_err().to_string();
        assert!(
            e.contains("expected \"auto\", \"always\" or \"never\""),
            "{e}"
        );
        // Written back as words.
        let c = RecoverCfg {
            initramfs: Regen::Never,
            ..RecoverCfg::default()
        };
        assert!(
            toml::to_string(&c)
                .unwrap()
                .contains("initramfs = \"never\"")
        );
    }

    /// `resize` words; the old `grow_last_partition` still reads.
    #[test]
    fn resize_words_and_the_old_grow_flag() {
        let read = |t: &str| toml::from_str::<RecoverCfg>(t).map(|c| c.resize());
        assert_eq!(read("").unwrap(), Resize::Last);
        assert_eq!(read("resize = \"none\"").unwrap(), Resize::None);
        assert_eq!(
            read("resize = \"proportional\"").unwrap(),
            Resize::Proportional
        );
        assert_eq!(read("grow_last_partition = false").unwrap(), Resize::None);
        assert_eq!(read("grow_last_partition = true").unwrap(), Resize::Last);
        assert_eq!(
            read("grow_last_partition = false\nresize = \"proportional\"").unwrap(),
            Resize::Proportional
        );
        let e = read("resize = \"all\"").unwrap_err().to_string();
        assert!(e.contains("proportional"), "{e}");
    }

    /// `firmware` words; a wrong one names the right ones.
    #[test]
    fn firmware_words() {
        let read = |t: &str| toml::from_str::<RecoverCfg>(t).map(|c| c.firmware);
        assert_eq!(read("").unwrap(), Firmware::Auto);
        assert_eq!(read("firmware = \"uefi\"").unwrap(), Firmware::Uefi);
        assert_eq!(read("firmware = \"bios\"").unwrap(), Firmware::Bios);
        let e = read("firmware = \"efi\"").unwrap_err().to_string();
        assert!(e.contains("uefi"), "{e}");
    }

    /// The rescue image carries `to_toml` of the host's config as its
    /// site.toml: it must read back as the same configuration.
    #[test]
    fn effective_config_reads_back() {
        let mut c = Config::default();
        c.backup.target = Some("file:///backup/x".into());
        c.recover.key_file = Some(PathBuf::from("keys/luks.key"));
        c.recover.resize = Resize::Proportional;
        let text = to_toml(&c).unwrap();
        let table = parse_str(&text, Path::new("site.toml")).unwrap();
        let back: Config = toml::Value::Table(table).try_into().unwrap();
        assert_eq!(back, c);
    }

    fn err_of(text: &str) -> String {
        format!(
            "{:#}",
            parse_str(text, Path::new("/etc/mkrescue/site.toml")).unwrap_err()
        )
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = err_of("[build]\ncompres = \"xz\"\n");
        assert!(
            e.starts_with("/etc/mkrescue/site.toml:2: unknown field `compres`"),
            "{e}"
        );
        assert!(e.contains("build.compres"), "{e}");
    }

    #[test]
    fn wrong_type_names_key() {
        let e = err_of("[build]\nsource_date_epoch = \"yesterday\"\n");
        assert!(e.starts_with("/etc/mkrescue/site.toml:2:"), "{e}");
        assert!(e.contains("build.source_date_epoch"), "{e}");
    }

    #[test]
    fn bad_enum_value_lists_choices() {
        let e = err_of("[modules]\npolicy = \"some\"\n");
        assert!(e.contains("storage-net"), "{e}");
        assert!(e.contains(":2:"), "{e}");
    }

    #[test]
    fn layers_override_key_by_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("site.toml"),
            "[build]\ncompress = \"xz\"\nout_dir = \"/srv/rescue\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("local.toml"),
            "[build]\ncompress = \"gzip\"\n",
        )
        .unwrap();
        let files = ConfigFiles {
            dir: dir.path().to_path_buf(),
            extra: None,
        };
        let loaded = load(&files).unwrap();
        assert_eq!(loaded.config.build.compress, Compression::Gzip);
        assert_eq!(loaded.config.build.out_dir, PathBuf::from("/srv/rescue"));
    }

    #[test]
    fn missing_explicit_config_is_an_error() {
        let files = ConfigFiles {
            dir: PathBuf::from("/nonexistent"),
            extra: Some(PathBuf::from("/nonexistent/x.toml")),
        };
        let e = load(&files).unwrap_err();
        assert_eq!(crate::error::code_of(&e), Code::Config);
    }
}
