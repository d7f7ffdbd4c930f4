//! The commands: each takes its own args and calls the steps of the data flow.

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::{BuildArgs, DumpArgs, GlobalArgs, Output};
use crate::config;
use crate::host::HostFacts;

/// The report of a build, printed with `--json`.
#[derive(Debug, Serialize)]
struct BuildReport {
    output: crate::output::initramfs::Written,
    plan: crate::rescue::PlanReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    media: Option<crate::output::media::MediaReport>,
    seconds: f64,
}

/// `mkrescue [--output KIND]`: build the rescue system.
pub fn build(global: &GlobalArgs, args: &BuildArgs) -> Result<()> {
    let start = Instant::now();
    let loaded = config::load(global, args)?;
    let cfg = &loaded.config;
    // The medium's own flags are checked before the slow initrd build.
    crate::output::media::check_args(cfg.build.output, cfg, &args.media)?;
    let root = global.root.as_path();
    let host = HostFacts::detect(root, cfg.build.kernel_version.as_deref())?;
    if let Some(kconfig) = &host.kernel.config {
        crate::image::compress::check_kernel_support(kconfig, cfg.build.compress)?;
    } else {
        log::warn!(
            "no /boot/config-{} to check that the kernel can unpack a {:?} initrd",
            host.kernel.version,
            cfg.build.compress
        );
    }
    let show = crate::progress::enabled(global.quiet) && !args.json;
    let self_binary = crate::host::own_binary()?;

    let pb = crate::progress::spinner(show, "collecting tools, libraries and modules");
    let (manifest, plan) = crate::rescue::plan(root, cfg, &host, &self_binary)?;
    pb.finish_and_clear();
    log::info!(
        "{} entries: {} tools, {} modules, {} firmware files",
        manifest.len(),
        plan.tools.len(),
        plan.modules,
        plan.firmware
    );

    let written = crate::output::initramfs::write(
        &manifest,
        &host.kernel,
        cfg.build.compress,
        cfg.build.compress_level,
        &cfg.build.out_dir,
        show,
    )?;
    let media = match cfg.build.output {
        Output::Initramfs => None,
        kind => {
            let pb = crate::progress::spinner(show, "writing the boot medium");
            let m = crate::output::media::write(
                kind,
                cfg,
                &args.media,
                root,
                &host,
                &manifest,
                &cfg.build.out_dir,
            )?;
            pb.finish_and_clear();
            Some(m)
        }
    };
    let report = BuildReport {
        output: written,
        plan,
        media,
        seconds: start.elapsed().as_secs_f64(),
    };
    if args.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else if !global.quiet {
        eprintln!(
            "mkrescue: wrote {}/initrd.img ({:.1} MiB, {} files, kernel {}) in {:.1}s",
            report.output.out_dir.display(),
            report.output.initrd_bytes as f64 / (1024.0 * 1024.0),
            report.output.files,
            report.output.kernel_version,
            report.seconds
        );
        if let Some(m) = &report.media {
            for p in &m.written {
                eprintln!("mkrescue: wrote {}", p.display());
            }
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct Dump<'a> {
    config: &'a config::Config,
    config_files: &'a [config::Source],
    host: &'a HostFacts,
}

/// `mkrescue dump`: the effective configuration and the host facts.
pub fn dump(global: &GlobalArgs, args: &DumpArgs) -> Result<()> {
    let loaded = config::load(global, &BuildArgs::default())?;
    let host = HostFacts::detect(&global.root, loaded.config.build.kernel_version.as_deref())?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let d = Dump {
            config: &loaded.config,
            config_files: &loaded.sources,
            host: &host,
        };
        serde_json::to_writer_pretty(&mut out, &d)?;
        writeln!(out)?;
        return Ok(());
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
    writeln!(out, "{}", config::to_toml(&loaded.config)?)?;
    writeln!(out, "# host facts")?;
    let host_toml = toml::to_string_pretty(&host).context("rendering host facts")?;
    for l in host_toml.lines() {
        writeln!(out, "# {l}")?;
    }
    Ok(())
}
