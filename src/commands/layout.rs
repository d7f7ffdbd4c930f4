//! `mkrescue layout save|show|check`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::backup::mail;
use crate::cli::{BuildArgs, GlobalArgs, LayoutAction, LayoutArgs};
use crate::config::Config;
use crate::error::{Code, fail};
use crate::layout::live::{capture_live, write};
use crate::layout::{DEFAULT_PATH, Layout, diff, show};

pub fn run(global: &GlobalArgs, args: &LayoutArgs) -> Result<()> {
    let default = PathBuf::from(DEFAULT_PATH);
    let cfg = super::load_config(global)?.config;
    if global.json && !matches!(args.action, LayoutAction::Show { .. }) {
        return Err(fail(
            Code::Usage,
            "--json: only `layout show` prints JSON; drop --json (`layout save` writes JSON to its file)",
        ));
    }
    let target = cfg.backup.target.as_deref();
    match &args.action {
        LayoutAction::Save { out, allow_partial } => {
            let path = out.as_ref().unwrap_or(&default);
            let l = capture_live(target)?;
            if !l.unknown.is_empty() {
                if !*allow_partial {
                    return Err(unprobed(
                        &l,
                        "the layout would miss what it holds; run as root where the disk can be read, or add --allow-partial to record it as unknown",
                    ));
                }
                for u in &l.unknown {
                    log::warn!(
                        "{}: could not be probed ({}); recorded as unknown",
                        u.device,
                        u.reason
                    );
                }
            }
            for u in &l.unsupported {
                log::warn!("{}", u.warning());
            }
            if !l.has_root() {
                log::warn!(
                    "no file system mounted at / is in the layout: `recover` will refuse it"
                );
            }
            write(&l, path)?;
            if !global.quiet {
                eprintln!(
                    "mkrescue: layout saved to {} ({}, {}, {} md, {}, {}{}{})",
                    path.display(),
                    count(l.disks.len(), "disk"),
                    count(
                        l.disks.iter().map(|d| d.partitions.len()).sum::<usize>(),
                        "partition"
                    ),
                    l.md.len(),
                    count(l.lvm.lvs.len(), "LV"),
                    count(l.filesystems.len(), "file system"),
                    if l.unknown.is_empty() {
                        String::new()
                    } else {
                        format!(", {} unknown", l.unknown.len())
                    },
                    if l.unsupported.is_empty() {
                        String::new()
                    } else {
                        format!(", {} unsupported", l.unsupported.len())
                    }
                );
            }
            Ok(())
        }
        LayoutAction::Show { file, live } => {
            let l = if *live {
                capture_live(target)?
            } else {
                Layout::load(file.as_ref().unwrap_or(&default))?
            };
            let mut out = std::io::stdout().lock();
            if global.json {
                out.write_all(l.to_json().as_bytes())?;
            } else {
                out.write_all(show::render(&l, global.verbose > 0).as_bytes())?;
            }
            Ok(())
        }
        LayoutAction::Check { file, rebuild } => {
            let path = file.as_ref().unwrap_or(&default);
            let saved = match Layout::load(path) {
                Ok(l) => Some(l),
                Err(e) if *rebuild && crate::error::code_of(&e) == Code::NoLayout => None,
                Err(e) => return Err(e),
            };
            let now = capture_live(target)?;
            // A device that cannot be probed now is no drift, but the
            // check is not sound either (unless the save recorded it so).
            let known = |dev: &str| {
                saved
                    .iter()
                    .flat_map(|s| &s.unknown)
                    .any(|s| s.device == dev)
            };
            if now.unknown.iter().any(|u| !known(&u.device)) {
                return Err(unprobed(
                    &now,
                    "the layout cannot be compared; run as root where the disk can be read",
                ));
            }
            for u in &now.unsupported {
                log::warn!("{}", u.warning());
            }
            let d = match &saved {
                Some(saved) => diff(saved, &now),
                None => vec![format!("(no layout saved at {})", path.display())],
            };
            if d.is_empty() {
                if !global.quiet {
                    eprintln!("mkrescue: layout unchanged since {}", path.display());
                }
                return Ok(());
            }
            let mut out = std::io::stdout().lock();
            for line in &d {
                writeln!(out, "{line}")?;
            }
            drop(out);
            if *rebuild {
                return rebuild_and_save(global, &cfg, &now, path, &d, saved.is_some());
            }
            Err(fail(
                Code::Failed,
                format!(
                    "layout changed since {} was saved ({} above); run `mkrescue layout save{}` and build a new rescue image",
                    path.display(),
                    count(d.len(), "difference"),
                    if file.is_some() {
                        format!(" --out {}", path.display())
                    } else {
                        String::new()
                    }
                ),
            ))
        }
    }
}

/// `layout check --rebuild` after a change: builds the rescue system as a
/// plain `mkrescue` does (which captures the layout itself), saves the
/// current layout once the build succeeded (so a failed build is tried
/// again by the next check), and mails the differences and the build's
/// result to backup.mail_to. A mail that cannot be sent is a warning; a
/// failed build is the command's error.
fn rebuild_and_save(
    global: &GlobalArgs,
    cfg: &Config,
    now: &Layout,
    path: &Path,
    differences: &[String],
    had_layout: bool,
) -> Result<()> {
    let started = crate::sys::time::now();
    if had_layout {
        eprintln!("mkrescue: layout changed: rebuilding the rescue system");
    } else {
        eprintln!(
            "mkrescue: no layout saved at {} yet: building the rescue system and saving the layout",
            path.display()
        );
    }
    let built = super::build::run(global, &BuildArgs::default()).and_then(|()| write(now, path));
    if !cfg.backup.mail_to.is_empty() {
        let status = if built.is_ok() { "CHANGED" } else { "FAILED" };
        let result = match &built {
            Ok(()) => format!(
                "The rescue system was rebuilt ({} into {}) and the new layout saved.",
                format!("{:?}", cfg.build.output).to_lowercase(),
                cfg.build.out_dir.display()
            ),
            Err(e) => format!(
                "Rebuilding the rescue system FAILED (exit code {}): it is out of date.\n\nerror: {e:#}",
                crate::error::code_of(e) as i32
            ),
        };
        let host = crate::sys::host::hostname(&global.root);
        let body = format!(
            "The disk layout of {host} changed since it was saved in {}:\n\n{}\n\n{result}\n",
            path.display(),
            differences.join("\n")
        );
        let msg = mail::compose(
            &cfg.backup,
            &mail::Report {
                host: &host,
                job: "layout check",
                status,
                started,
                body: &body,
            },
        );
        if let Err(e) =
            mail::check(&cfg.backup).and_then(|()| mail::send_message(&cfg.backup, &msg))
        {
            log::warn!(
                "layout change mail to {}: {e:#}",
                cfg.backup.mail_to.join(", ")
            );
        }
    }
    built
}

/// "1 disk", "2 disks".
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The error for devices blkid could not probe (exit 8).
fn unprobed(l: &Layout, consequence: &str) -> anyhow::Error {
    let list: Vec<String> = l
        .unknown
        .iter()
        .map(|u| format!("{} ({})", u.device, u.reason))
        .collect();
    fail(
        Code::Probe,
        format!("could not probe {}: {consequence}", list.join(", ")),
    )
}
