//! `mkrescue [--output KIND]`: build the rescue system.

use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::{BuildArgs, GlobalArgs, MediaArgs};
use crate::config::{Config, Output};
use crate::host::HostFacts;
use crate::output::media::MediaOptions;

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
pub fn run(global: &GlobalArgs, args: &BuildArgs) -> Result<()> {
    let start = Instant::now();
    let mut loaded = super::load_config(global)?;
    apply_flags(&mut loaded.config, args);
    let cfg = &loaded.config;
    let media_opts = media_options(&args.media);
    // The medium's own flags are checked before the slow initrd build.
    crate::output::media::check_args(cfg.build.output, cfg, &media_opts)?;
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
    let show = crate::progress::enabled(global.quiet) && !global.json;
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

    if args.media.dry_run {
        let plan = crate::output::dryrun::describe(
            cfg.build.output,
            cfg,
            &media_opts,
            root,
            &host,
            &manifest,
        )?;
        if global.json {
            super::print_json(&plan)?;
        } else {
            print!("{}", crate::output::dryrun::render(&plan));
        }
        return Ok(());
    }

    // The kernel and initrd of a USB, PXE or OBDR medium are scratch
    // files: they go to a temporary directory (TMPDIR), never over the
    // initramfs build's files in build.out_dir.
    let staging = match cfg.build.output {
        Output::Initramfs | Output::Iso => None,
        _ => Some(
            tempfile::Builder::new()
                .prefix("mkrescue-build.")
                .tempdir()
                .with_context(|| {
                    format!(
                        "creating a scratch directory in {} (set TMPDIR to use another)",
                        std::env::temp_dir().display()
                    )
                })?,
        ),
    };
    let stage_dir = staging
        .as_ref()
        .map_or(cfg.build.out_dir.as_path(), |t| t.path());
    let mut written = crate::output::initramfs::write(
        &manifest,
        &host.kernel,
        cfg.build.compress,
        cfg.build.compress_level,
        stage_dir,
        show,
    )?;
    let media = match cfg.build.output {
        Output::Initramfs => None,
        kind => {
            let pb = crate::progress::spinner(show, "writing the boot medium");
            let m = crate::output::media::write(
                kind,
                cfg,
                &media_opts,
                root,
                &host,
                &manifest,
                stage_dir,
            )?;
            pb.finish_and_clear();
            Some(m)
        }
    };
    if staging.is_some() {
        written.out_dir = None;
    }
    let report = BuildReport {
        output: written,
        plan,
        media,
        seconds: start.elapsed().as_secs_f64(),
    };
    if global.json {
        super::print_json(&report)?;
    } else if !global.quiet {
        let what = format!(
            "({:.1} MiB, {} files, kernel {}) in {:.1}s",
            report.output.initrd_bytes as f64 / (1024.0 * 1024.0),
            report.output.files,
            report.output.kernel_version,
            report.seconds
        );
        match &report.output.out_dir {
            Some(dir) => eprintln!("mkrescue: wrote {}/initrd.img {what}", dir.display()),
            None => eprintln!("mkrescue: built the rescue system {what}"),
        }
        if let Some(m) = &report.media {
            for p in &m.written {
                eprintln!("mkrescue: wrote {}", p.display());
            }
            for line in m.pxe.iter().flat_map(|p| p.summary()) {
                eprintln!("mkrescue: {line}");
            }
        }
    }
    Ok(())
}

/// The build flags on top of the configuration files: a flag given wins.
fn apply_flags(config: &mut Config, build: &BuildArgs) {
    if let Some(o) = build.output {
        config.build.output = o;
    }
    if let Some(d) = &build.out {
        config.build.out_dir = d.clone();
    }
    if let Some(k) = &build.kernel_version {
        config.build.kernel_version = Some(k.clone());
    }
    if let Some(m) = build.modules {
        config.modules.policy = m;
    }
    if let Some(c) = build.compress {
        config.build.compress = c;
    }
}

/// The medium's flags as plain data for `output::media`.
fn media_options(m: &MediaArgs) -> MediaOptions {
    MediaOptions {
        device: m.device.clone(),
        image: m.image.clone(),
        size: m.size.clone(),
        pxe_root: m.pxe_root.clone(),
        pxe_default: m.pxe_default,
        tape: m.tape.clone(),
        tape_file: m.tape_file.clone(),
        force: m.force,
        dry_run: m.dry_run,
        test_boot_rescue: m.test_boot_rescue,
        iso_backup: m.iso_backup,
        pxe_upload: m.pxe_upload.clone(),
        test_boot_entry: m.test_boot_entry.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Compression;

    #[test]
    fn flags_win_over_the_files() {
        // What the files said (config.rs tests the layering itself).
        let mut cfg = Config::default();
        cfg.build.compress = Compression::Gzip;
        cfg.build.out_dir = "/srv/rescue".into();
        apply_flags(&mut cfg, &BuildArgs::default());
        assert_eq!(cfg.build.compress, Compression::Gzip);
        let flags = BuildArgs {
            compress: Some(Compression::None),
            output: Some(Output::Iso),
            ..Default::default()
        };
        apply_flags(&mut cfg, &flags);
        assert_eq!(cfg.build.compress, Compression::None);
        assert_eq!(cfg.build.output, Output::Iso);
        assert_eq!(cfg.build.out_dir, std::path::PathBuf::from("/srv/rescue"));
    }
}
