//! What goes into the rescue system: the skeleton, mkrescue itself as /init,
//! the tools recover needs with every library they load, kernel modules and
//! firmware, and the host files they read. Hands on a filled [`Manifest`].
//!
//! Each entry is marked base or host where it is added ([`Layer`]); the PXE
//! output sends the base once per OS and kernel and the host layer per host.
//! What decides base membership is *which rule added the entry*, never its
//! content: an entry is base when one of mkrescue's own compiled-in lists
//! reaches it on the host, resolved against files the OS packages own:
//! - the skeleton, mkrescue itself, the static files of `boot/`;
//! - the built-in tool table ([`tools::TOOLS`]) with the whole packages it
//!   brings, udev's tree and GRUB's platform directory for the boot mode;
//! - support files outside /etc (terminfo, GRUB's data, /lib/modprobe.d);
//! - the kernel modules its policy picks by path and name (`storage-net`,
//!   `all`; none for `host`), their dependencies and firmware, the index;
//! - the libraries those programs load.
//!
//! Everything else is host: every file read from /etc (identity: passwd,
//! group, hostname, hosts, localtime; configuration: default/grub,
//! lvm.conf, udev rules, modprobe.d, ld.so.cache), what is generated from
//! host facts or the configuration (motd, host.json, site.toml, network,
//! SSH keys and sshd_config, the layout, the backup location and rates),
//! and this host's own selections (`tools.required`/`optional`,
//! `files.include`, `modules.extra`, modules for its devices and mounts,
//! the backup method's helper, borg) with the libraries the base lacks.
//!
//! Why that is stable across hosts: the lists are the same in every
//! mkrescue of one version, so on hosts of one OS release, kernel and
//! package set they reach the same paths with the same bytes (mtimes are
//! clamped to the image epoch, package files are root's). Nothing an
//! installer or an administrator writes per host (names, users, addresses,
//! keys, config files) is reached by them. The same entry added by both
//! kinds of rule is base, whichever comes first ([`Manifest::insert`]), so
//! host additions can neither add to nor change the base.

pub mod borg;
pub mod network;
pub mod secrets;
pub mod ssh;
pub mod tools;

use std::collections::BTreeSet;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::config::Config;
use crate::elf::{self, Missing};
use crate::error::{Code, fail};
use crate::host::HostFacts;
use crate::image::{Kind, Layer, Manifest};
use crate::kmod::{self, HostModules};

/// Host files and directories that tools read at run time. Missing ones are
/// skipped. Never secrets: no /etc/shadow, no SSH host keys.
const SUPPORT_FILES: &[&str] = &[
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/hosts",
    "/etc/services",
    "/etc/protocols",
    "/etc/os-release",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/mke2fs.conf",
    "/etc/modprobe.d",
    "/lib/modprobe.d",
    "/etc/udev",
    "/etc/lvm/lvm.conf",
    "/etc/default/grub",
    "/etc/grub.d",
    "/usr/share/grub",
    "/etc/profile",
    "/etc/bash.bashrc",
    "/etc/inputrc",
    "/lib/terminfo",
    "/etc/dhcp/dhclient.conf",
];

/// The rescue system's static files (`boot/`, see its README).
const MOTD: &str = include_str!("../../boot/motd");
const FSTAB: &str = include_str!("../../boot/fstab");

/// Summary of the plan for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PlanReport {
    pub tools: Vec<PathBuf>,
    pub optional_missing: Vec<String>,
    pub libraries_missing: Vec<Missing>,
    pub modules: usize,
    pub firmware: usize,
    pub firmware_missing: Vec<String>,
    /// Interfaces of the captured network configuration.
    pub network_interfaces: usize,
    /// Keys that may log in over SSH; absent when the image has no sshd.
    pub ssh_keys: Option<usize>,
}

/// Fills a Manifest for `host` as `config` asks. `root` is where the host's
/// `/` is (a temp dir in tests).
pub fn plan(
    root: &Path,
    config: &Config,
    host: &HostFacts,
    self_binary: &Path,
) -> Result<(Manifest, PlanReport)> {
    let mut m = Manifest::new(root, config.build.source_date_epoch);
    let mut report = PlanReport::default();

    skeleton(&mut m)?;

    // mkrescue itself is /init (see src/init): the same binary recovers.
    m.add_host_file_as(self_binary, "/usr/bin/mkrescue", "mkrescue")?;
    m.add_symlink("/init", "usr/bin/mkrescue", "mkrescue")?;
    // There is no systemd to talk to: power commands are mkrescue too.
    for cmd in ["poweroff", "reboot", "halt"] {
        m.add_symlink(format!("/usr/sbin/{cmd}"), "../bin/mkrescue", "mkrescue")?;
    }
    // The motd names the host.
    m.set_layer(Layer::Host);
    m.add_bytes("/etc/motd", motd(host), 0o644, "skeleton")?;
    m.set_layer(Layer::Base);

    // Where the backup is, so restore in the rescue system asks nothing;
    // a network share brings its mount helper and modules.
    let backup_location = crate::backup::source::record(root, config)?;
    let backup_fs = backup_location.as_ref().and_then(|r| r.network_fs());

    // Tools: required ones must exist; optional ones are taken when present.
    let mut missing_required = Vec::new();
    // ELF inputs and the closure are paths as the host sees them (root `/`),
    // per layer: a host tool's libraries are resolved on their own, and
    // those the base already has stay in the base.
    // mkrescue itself is no file of the root (see the closure below).
    let mut elf_inputs = Inputs {
        base: Vec::new(),
        host: Vec::new(),
    };
    let mut wanted: Vec<Wanted> = tools::TOOLS
        .iter()
        .map(|t| Wanted {
            name: t.name.to_string(),
            package: t.package.to_string(),
            required: t.need.required(host),
            layer: Layer::Base,
        })
        .collect();
    let configured = |names: &[String], required: bool| {
        names
            .iter()
            .map(|n| Wanted {
                name: n.clone(),
                package: "?".into(),
                required,
                layer: Layer::Host,
            })
            .collect::<Vec<_>>()
    };
    wanted.extend(configured(&config.tools.required, true));
    wanted.extend(configured(&config.tools.optional, false));
    if let Some(kind) = backup_fs {
        let (helper, package) = kind.helper();
        wanted.push(Wanted {
            name: helper.to_string(),
            package: package.to_string(),
            required: true,
            layer: Layer::Host,
        });
    }
    // recover restores a borg backup with borg itself: only then does the
    // image carry it and the Python it runs on.
    let with_borg = config.backup.method == crate::config::BackupMethod::Borg;
    if with_borg {
        wanted.push(Wanted {
            name: "borg".into(),
            package: "borgbackup".into(),
            required: true,
            layer: Layer::Host,
        });
    }
    for w in &wanted {
        let (name, package) = (&w.name, &w.package);
        match tools::find(root, name, &config.build.path) {
            Some(p) => {
                m.set_layer(w.layer);
                m.add_host_path(&p, &format!("tool {name}"))?;
                elf_inputs.of(w.layer).push(p.clone());
                if tools::WHOLE_PACKAGES.contains(&package.as_str()) {
                    for c in tools::package_commands(root, package, &p) {
                        if c != p {
                            m.add_host_path(&c, &format!("command of {package}"))?;
                            elf_inputs.of(w.layer).push(c);
                        }
                    }
                }
                m.set_layer(Layer::Base);
                report.tools.push(p);
            }
            None if w.required => missing_required.push((name.clone(), package.clone())),
            None => report.optional_missing.push(name.clone()),
        }
    }
    if with_borg {
        if let Some(p) = tools::find(root, "borg", &config.build.path) {
            m.set_layer(Layer::Host);
            elf_inputs.host.extend(borg::plan(&mut m, &p)?);
            m.set_layer(Layer::Base);
        }
    }
    if !missing_required.is_empty() {
        let list: Vec<String> = missing_required
            .iter()
            .map(|(n, p)| {
                if p == "?" {
                    n.clone()
                } else {
                    format!("{n} (Debian package {p})")
                }
            })
            .collect();
        let pkgs: BTreeSet<&str> = missing_required
            .iter()
            .map(|(_, p)| p.as_str())
            .filter(|p| *p != "?")
            .collect();
        let fix = if pkgs.is_empty() {
            "install them or remove them from [tools] in the configuration".to_string()
        } else {
            format!(
                "install them: apt-get install {}",
                pkgs.into_iter().collect::<Vec<_>>().join(" ")
            )
        };
        return Err(fail(
            Code::Host,
            format!(
                "required tools missing on this host: {}; {fix}",
                list.join(", ")
            ),
        ));
    }
    if !report.optional_missing.is_empty() {
        log::warn!(
            "optional tools not found, the rescue system will lack them: {}",
            report.optional_missing.join(", ")
        );
    }

    // udev's rules and helpers, without the hardware database: it only
    // names vendors and models (hwdb.bin is 13 MB), nothing recovery reads.
    let udev = Path::new("/lib/udev");
    if std::fs::symlink_metadata(m.host_path(udev)).is_ok() {
        let before: BTreeSet<PathBuf> = m.iter().map(|(p, _)| p.clone()).collect();
        m.add_host_tree_except(udev, &["hwdb.d", "hwdb.bin"], "udev")?;
        elf_inputs.base.extend(new_executables(&m, &before));
    }
    // GRUB's modules for each platform the host has them for (each is
    // 3-35 MB): the one it boots with for recover's reinstall, the other
    // for `recover --firmware` onto a machine that boots the other way
    // when the restored system lacks them (recover::finalize lends them
    // with grub-install --directory). `mkrescue dump` says which it has.
    for dir in GRUB_DIRS {
        if std::fs::symlink_metadata(m.host_path(Path::new(dir))).is_ok() {
            m.add_host_tree(dir, "boot loader")?;
        }
    }

    // Support files and configured extra files; executables among them
    // bring their libraries too. What is below /etc is the host's
    // configuration; the rest (terminfo, GRUB's data) is the packages'.
    let extra: Vec<PathBuf> = config.files.include.clone();
    for p in SUPPORT_FILES
        .iter()
        .map(PathBuf::from)
        .chain(extra.iter().cloned())
    {
        let host = root.join(p.strip_prefix("/").unwrap_or(&p));
        if std::fs::symlink_metadata(&host).is_err() {
            if extra.contains(&p) {
                return Err(fail(
                    Code::Config,
                    format!(
                        "files.include: {} does not exist on this host; remove it from the configuration",
                        p.display()
                    ),
                ));
            }
            continue;
        }
        let layer = if extra.contains(&p) || p.starts_with("/etc") {
            Layer::Host
        } else {
            Layer::Base
        };
        let before: BTreeSet<PathBuf> = m.iter().map(|(p, _)| p.clone()).collect();
        m.set_layer(layer);
        m.add_host_tree(&p, &format!("file {}", p.display()))?;
        m.set_layer(Layer::Base);
        elf_inputs.of(layer).extend(new_executables(&m, &before));
    }

    // Libraries and modules are independent: resolve them side by side.
    let resolver = elf::Resolver::new(root)?;
    let modules_dir = &host.kernel.modules_dir;
    let (closure, selection) = std::thread::scope(|s| {
        let mods = s.spawn(|| -> Result<kmod::Selection> {
            let host_mods = HostModules::detect(root)?;
            let index = kmod::ModuleIndex::load(modules_dir)?;
            // The kernel's firmware loader search order
            // (drivers/base/firmware_loader/main.c fw_path[]).
            let kver = &host.kernel.version;
            let fw_dirs = if config.modules.firmware {
                vec![
                    root.join("lib/firmware/updates").join(kver),
                    root.join("lib/firmware/updates"),
                    root.join("lib/firmware").join(kver),
                    root.join("lib/firmware"),
                ]
            } else {
                Vec::new()
            };
            let mut extra = config.modules.extra.clone();
            if let Some(kind) = backup_fs {
                // Built-in or absent ones need nothing from the image.
                extra.extend(
                    kind.modules()
                        .iter()
                        .filter(|m| !index.resolve_names(m).is_empty())
                        .map(|m| m.to_string()),
                );
            }
            index.select(config.modules.policy, &host_mods, &extra, &fw_dirs)
        });
        // The running mkrescue is read where it runs, its libraries below
        // the root (in a `--root` build it is no file of the root).
        let closure = resolver
            .resolve(&elf_inputs.base)
            .and_then(|mut b| {
                let own = resolver.resolve_outside(self_binary)?;
                b.files.extend(own.files);
                b.missing.extend(own.missing);
                b.missing.sort();
                b.missing.dedup();
                Ok(b)
            })
            .and_then(|b| Ok((b, resolver.resolve(&elf_inputs.host)?)));
        let selection = mods
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("module selection panicked")));
        (closure, selection)
    });
    let (base_closure, host_closure) = closure?;
    let selection = selection?;

    for (closure, layer) in [(&base_closure, Layer::Base), (&host_closure, Layer::Host)] {
        m.set_layer(layer);
        for f in &closure.files {
            if f == self_binary {
                continue;
            }
            m.add_host_path(f, "library")?;
        }
    }
    m.set_layer(Layer::Base);
    report.libraries_missing = base_closure.missing;
    for x in host_closure.missing {
        if !report.libraries_missing.contains(&x) {
            report.libraries_missing.push(x);
        }
    }
    if !report.libraries_missing.is_empty() {
        let list: Vec<String> = report
            .libraries_missing
            .iter()
            .map(|x| format!("{} (needed by {})", x.name, x.needed_by.display()))
            .collect();
        log::warn!("libraries not found on this host: {}", list.join(", "));
    }

    // The policy's modules are the kernel's; those of this host's devices,
    // mounts and modules.extra beyond them are the host's.
    let layer_of = |f: &PathBuf| {
        if selection.host_only.contains(f) {
            Layer::Host
        } else {
            Layer::Base
        }
    };
    for f in selection.index_files.iter().chain(&selection.modules) {
        m.set_layer(layer_of(f));
        m.add_host_path(strip_root(root, f)?, "kernel module")?;
    }
    for f in &selection.firmware {
        m.set_layer(layer_of(f));
        m.add_host_path(strip_root(root, f)?, "firmware")?;
    }
    m.set_layer(Layer::Base);
    report.modules = selection.modules.len();
    report.firmware = selection.firmware.len();
    report.firmware_missing = selection.firmware_missing;

    // The kernel runs /sbin/modprobe (CONFIG_MODPROBE_PATH) for every module
    // it loads on demand: a file system at mount(2), an md personality, a
    // device-mapper target, a cipher. On a merged-/usr host /sbin is a
    // symlink that no tool's path may have brought in (seen on a Debian 12
    // debootstrap: `mount -t ext4` failed with "unknown filesystem type").
    // The host's top-level links come along as they are: the OS's, base.
    // What follows them is generated from this host's facts and
    // configuration: host.
    for top in ["bin", "sbin", "lib", "lib64"] {
        let host_path = root.join(top);
        if host_path
            .symlink_metadata()
            .is_ok_and(|md| md.file_type().is_symlink())
        {
            m.add_host_path(strip_root(root, &host_path)?, "merged /usr link")?;
        }
    }
    m.set_layer(Layer::Host);
    // What the rescue system knows about the host it was cloned from.
    let facts = serde_json::to_vec_pretty(host).context("rendering host facts")?;
    m.add_bytes("/etc/mkrescue/host.json", facts, 0o644, "host facts")?;
    // The host's effective configuration (all layers and flags merged), so
    // the rescue system's mkrescue recovers and restores as configured here
    // (backup target, [recover] settings) without questions.
    let effective = format!(
        "# The effective mkrescue configuration of {}, written into its rescue\n\
         # image by mkrescue {}. Edit /etc/mkrescue/local.toml to override.\n{}",
        host.hostname,
        env!("CARGO_PKG_VERSION"),
        crate::config::to_toml(&crate::config::Config {
            // How this image was built (--out, --compress...) means nothing
            // in the rescue system, and would make two builds of an
            // unchanged host differ.
            build: Default::default(),
            ..config.clone()
        })?
    );
    m.add_bytes(
        "/etc/mkrescue/site.toml",
        effective.into_bytes(),
        0o644,
        "host configuration",
    )?;
    if let Some(rec) = &backup_location {
        let json = serde_json::to_vec_pretty(rec).context("rendering the backup location")?;
        m.add_bytes(
            crate::backup::source::RECORD_PATH,
            json,
            0o644,
            "backup location",
        )?;
    }
    if let Some(layout) = layout_for_image(
        root,
        config.build.source_date_epoch,
        config.backup.target.as_deref(),
    ) {
        m.add_bytes(crate::layout::DEFAULT_PATH, layout, 0o644, "disk layout")?;
    }
    // The rates `backup`, `backup verify` and `restore` measured here, and
    // the host's boot time: `mkrescue estimate` in the rescue system.
    let rates = root.join(crate::backup::facts::RATES_PATH.trim_start_matches('/'));
    if let Ok(b) = std::fs::read(&rates) {
        m.add_bytes(
            crate::backup::facts::RATES_PATH,
            b,
            0o644,
            "recovery-time rates",
        )?;
    }

    runtime_files(&mut m, root, config, &mut report)?;
    m.set_layer(Layer::Base);
    secrets::scan(&m, &config.secrets)?;
    Ok((m, report))
}

/// A tool the rescue system carries, and the layer its files go into.
struct Wanted {
    name: String,
    /// Debian package, `?` for a configured tool.
    package: String,
    required: bool,
    layer: Layer,
}

/// The programs whose libraries are resolved, per layer.
struct Inputs {
    base: Vec<PathBuf>,
    host: Vec<PathBuf>,
}

impl Inputs {
    fn of(&mut self, layer: Layer) -> &mut Vec<PathBuf> {
        match layer {
            Layer::Base => &mut self.base,
            Layer::Host => &mut self.host,
        }
    }
}

/// Executable regular files added since `before` was taken.
fn new_executables(m: &Manifest, before: &BTreeSet<PathBuf>) -> Vec<PathBuf> {
    m.iter()
        .filter(|(path, entry)| {
            !before.contains(*path)
                && matches!(entry.kind, Kind::File { .. })
                && entry.mode & 0o111 != 0
        })
        .map(|(path, _)| path.clone())
        .collect()
}

/// GRUB's platform directories (and shim's, for Secure Boot), each
/// carried when the host has it.
pub const GRUB_DIRS: &[&str] = &[
    "/usr/lib/grub/i386-pc",
    "/usr/lib/grub/x86_64-efi",
    "/usr/lib/grub/x86_64-efi-signed",
    "/usr/lib/shim",
];

/// What the rescue runtime (src/init) reads: the network configuration,
/// sshd's, and what dhclient-script needs.
fn runtime_files(
    m: &mut Manifest,
    root: &Path,
    config: &Config,
    report: &mut PlanReport,
) -> Result<()> {
    let net = network::capture(root, &config.network)?;
    report.network_interfaces = net.interfaces.len();
    let json = serde_json::to_vec_pretty(&net).context("rendering the network configuration")?;
    m.add_bytes(network::IMAGE_PATH, json, 0o644, "network")?;
    // dhclient-script reads /etc/fstab to learn whether / is read-only
    // (its wait_for_rw); a missing file makes dash's `exec <` abort it.
    m.add_bytes("/etc/fstab", FSTAB, 0o644, "network")?;
    m.add_dir("/var/lib/dhcp", 0o755, "network")?;
    report.ssh_keys = ssh::plan(m, root, &config.ssh)?;
    Ok(())
}

/// The disk layout recover will rebuild: captured now when building for
/// the running host (so the image never carries a stale one), else the
/// saved `/var/lib/mkrescue/layout.json` below `root`. A capture failure
/// is a warning: the image still boots, and `layout save` names the cause.
/// Its capture time is clamped to `SOURCE_DATE_EPOCH` like every mtime, so
/// two builds of an unchanged host stay byte-identical.
fn layout_for_image(root: &Path, epoch: u64, backup_target: Option<&str>) -> Option<Vec<u8>> {
    if root == Path::new("/") {
        match crate::layout::live::capture_live(backup_target) {
            Ok(mut l) => {
                // Not silently: recover refuses a layout without /.
                for u in &l.unknown {
                    log::warn!(
                        "disk layout: {} could not be probed ({}); recover cannot rebuild it (see `mkrescue layout save`)",
                        u.device,
                        u.reason
                    );
                }
                for u in &l.unsupported {
                    log::warn!("disk layout: {}", u.warning());
                }
                if !l.has_root() {
                    log::warn!(
                        "disk layout: no file system mounted at / is in it; recover in this rescue system will refuse it"
                    );
                }
                l.captured_at = l.captured_at.min(epoch);
                return Some(l.to_json().into_bytes());
            }
            Err(e) => log::warn!(
                "disk layout not captured, the rescue system cannot recover the disks: {e:#}"
            ),
        }
    }
    let saved = root.join(crate::layout::DEFAULT_PATH.trim_start_matches('/'));
    std::fs::read(&saved).ok()
}

/// What the operator reads on each console before the first prompt
/// (`boot/motd`).
fn motd(host: &HostFacts) -> String {
    let os = host
        .os_release
        .get("PRETTY_NAME")
        .map(String::as_str)
        .unwrap_or("Linux");
    fill(
        MOTD,
        &[
            ("hostname", &host.hostname),
            ("os", os),
            ("kernel", &host.kernel.version),
        ],
    )
}

/// `text` with each `{name}` of `fields` replaced by its value, in one pass
/// (a value is never looked at again); any other `{...}` stays as it is.
fn fill(text: &str, fields: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let hit = fields.iter().find_map(|(k, v)| {
            rest.strip_prefix('{')
                .and_then(|r| r.strip_prefix(k))
                .and_then(|r| r.strip_prefix('}'))
                .map(|after| (*v, after))
        });
        match hit {
            Some((v, after)) => {
                out.push_str(v);
                rest = after;
            }
            None => {
                out.push('{');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The directories and device nodes every rescue system has.
fn skeleton(m: &mut Manifest) -> Result<()> {
    const ORIGIN: &str = "skeleton";
    for (dir, mode) in [
        ("/dev", 0o755),
        ("/dev/pts", 0o755),
        ("/proc", 0o555),
        ("/sys", 0o555),
        ("/run", 0o755),
        ("/tmp", 0o1777),
        ("/mnt", 0o755),
        ("/root", 0o700),
        ("/var", 0o755),
        ("/var/tmp", 0o1777),
        ("/var/lib/mkrescue", 0o755),
        ("/etc/mkrescue", 0o755),
    ] {
        m.add_dir(dir, mode, ORIGIN)?;
    }
    // The kernel opens /dev/console for init's stdin/stdout/stderr before
    // init mounts devtmpfs (init/main.c console_on_rootfs), so the node must
    // be in the archive: char 5:1. /dev/null is 1:3 (devices.txt).
    m.add_device(
        "/dev/console",
        Kind::CharDev { major: 5, minor: 1 },
        0o600,
        ORIGIN,
    )?;
    m.add_device(
        "/dev/null",
        Kind::CharDev { major: 1, minor: 3 },
        0o666,
        ORIGIN,
    )?;
    Ok(())
}

fn strip_root(root: &Path, p: &Path) -> Result<PathBuf> {
    let rel = p
        .strip_prefix(root)
        .with_context(|| format!("{} is outside {}", p.display(), root.display()))?;
    Ok(Path::new("/").join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn motd_reads_as_before() {
        // The text the motd had as a string in code, before boot/motd.
        let want = "\nmkrescue rescue system of web1 (Debian GNU/Linux 12 (bookworm), kernel 6.1.0-40-amd64)\n\n\
                    This system runs from RAM; nothing on the disks has been touched.\n\
                    \x20 mkrescue recover --dry-run   show what recovery would do\n\
                    \x20 mkrescue recover             rebuild the disks and restore the files\n\
                    \x20 poweroff | reboot            leave the rescue system\n\n";
        let got = fill(
            MOTD,
            &[
                ("hostname", "web1"),
                ("os", "Debian GNU/Linux 12 (bookworm)"),
                ("kernel", "6.1.0-40-amd64"),
            ],
        );
        assert_eq!(got, want);
    }

    #[test]
    fn fill_is_one_pass() {
        let f = [("a", "{b}"), ("b", "x")];
        assert_eq!(fill("{a} {b} {c} {", &f), "{b} x {c} {");
        assert_eq!(fill("", &f), "");
    }
}
