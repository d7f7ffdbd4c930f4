//! `mkrescue dump`: the effective configuration and the detected host facts.

use std::io::Write;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::GlobalArgs;
use crate::config;
use crate::host::HostFacts;

/// Left by the package's kernel hook (packaging/deb/kernel-hook) when it
/// could not rebuild the rescue system for a new kernel: `key=value` lines
/// (kernel, event, command, exit, log, date). The hook removes it after its
/// next successful run.
pub const KERNEL_HOOK_MARK: &str = "var/lib/mkrescue/kernel-hook-failed";

#[derive(Serialize)]
struct Dump<'a> {
    config: &'a config::Config,
    config_files: &'a [config::Source],
    host: &'a HostFacts,
    /// The kernel hook's mark, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_hook_failed: Option<std::collections::BTreeMap<String, String>>,
    /// Which GRUB platforms the rescue image carries ([`grub_platforms`]).
    grub_platforms: Vec<String>,
}

/// The mark below `root`, as its key/value pairs; None when there is none.
fn kernel_hook_mark(root: &std::path::Path) -> Option<std::collections::BTreeMap<String, String>> {
    let text = std::fs::read_to_string(root.join(KERNEL_HOOK_MARK)).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect(),
    )
}

pub fn run(global: &GlobalArgs) -> Result<()> {
    let loaded = super::load_config(global)?;
    let host = HostFacts::detect(&global.root, loaded.config.build.kernel_version.as_deref())?;
    let mark = kernel_hook_mark(&global.root);
    if global.json {
        return super::print_json(&Dump {
            config: &loaded.config,
            config_files: &loaded.sources,
            host: &host,
            kernel_hook_failed: mark,
            grub_platforms: grub_platforms(&global.root),
        });
    }
    let mut out = std::io::stdout().lock();
    if let Some(m) = &mark {
        let get = |k: &str| m.get(k).map_or("?", String::as_str);
        let warning = format!(
            "the kernel hook could not rebuild the rescue system for kernel {} ({}, exit {}, {}): it is out of date; see {} and run `mkrescue`",
            get("kernel"),
            get("event"),
            get("exit"),
            get("date"),
            get("log")
        );
        log::warn!("{warning}");
        writeln!(out, "# WARNING: {warning}")?;
    }
    writeln!(out, "# configuration files (later ones win):")?;
    for s in &loaded.sources {
        writeln!(
            out,
            "#   {} {}",
            s.path.display(),
            if s.found { "(read)" } else { "(not present)" }
        )?;
    }
    writeln!(out, "{}", with_unset(&loaded.config)?)?;
    for l in grub_platforms(&global.root) {
        writeln!(out, "# {l}")?;
    }
    writeln!(out, "# host facts")?;
    let host_toml = toml::to_string_pretty(&host).context("rendering host facts")?;
    for l in host_toml.lines() {
        writeln!(out, "# {l}")?;
    }
    Ok(())
}

/// Which of GRUB's platforms the rescue image carries (it takes each the
/// host has, rescue::GRUB_DIRS): what `recover --firmware` can install
/// onto a restored system that lacks them, one line each.
pub fn grub_platforms(root: &std::path::Path) -> Vec<String> {
    [
        ("i386-pc", "BIOS", "grub-pc-bin"),
        ("x86_64-efi", "UEFI", "grub-efi-amd64-bin"),
    ]
    .iter()
    .map(|(p, fw, pkg)| {
        if root.join("usr/lib/grub").join(p).is_dir() {
            format!("GRUB {p} files: carried by the rescue image (recover can install GRUB for {fw})")
        } else {
            format!(
                "GRUB {p} files: not on this host, so not in the rescue image: recover onto a machine that boots by {fw} stops at the boot loader unless the restored system has them; install {pkg} here (it installs beside the other platform's)"
            )
        }
    })
    .collect()
}

/// The configuration as TOML with every unset key (TOML has no null) as a
/// comment under its table: `# kernel_version = (unset)`.
fn with_unset(c: &config::Config) -> Result<String> {
    let text = config::to_toml(c)?;
    let v = serde_json::to_value(c)?;
    let mut unset: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    fn walk(
        prefix: &str,
        v: &serde_json::Value,
        out: &mut std::collections::BTreeMap<String, Vec<String>>,
    ) {
        if let Some(o) = v.as_object() {
            for (k, x) in o {
                if x.is_null() {
                    out.entry(prefix.to_string()).or_default().push(k.clone());
                } else if x.is_object() {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&p, x, out);
                }
            }
        }
    }
    walk("", &v, &mut unset);
    let mut s = String::new();
    let comment = |s: &mut String, table: &str| {
        for k in unset.get(table).into_iter().flatten() {
            s.push_str(&format!("# {k} = (unset)\n"));
        }
    };
    comment(&mut s, "");
    for line in text.lines() {
        s.push_str(line);
        s.push('\n');
        let t = line.trim();
        if t.starts_with('[') && t.ends_with(']') && !t.starts_with("[[") {
            comment(&mut s, t.trim_matches(|c| c == '[' || c == ']'));
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    /// A BIOS host without grub-efi-amd64-bin: dump says the image cannot
    /// make a UEFI boot loader and names the package.
    #[test]
    fn grub_platforms_name_the_missing_package() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("usr/lib/grub/i386-pc")).unwrap();
        let l = super::grub_platforms(t.path());
        assert_eq!(
            l[0],
            "GRUB i386-pc files: carried by the rescue image (recover can install GRUB for BIOS)"
        );
        assert!(
            l[1].starts_with("GRUB x86_64-efi files: not on this host"),
            "{}",
            l[1]
        );
        assert!(l[1].contains("install grub-efi-amd64-bin here"), "{}", l[1]);
    }
}
