//! `mkrescue drill` and `mkrescue drill list`: reads the arguments and the
//! configuration, hands [`DrillOptions`] to [`crate::drill`], prints and
//! keeps its report.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::cli::{DrillAccel, DrillAction, DrillArgs, DrillController, DrillFirmware, GlobalArgs};
use crate::config::DrillMail;
use crate::drill::{self, AccelChoice, Boot, Controller, DrillOptions, HISTORY};
use crate::error::{Code, fail};
use crate::layout::model::Layout;
use crate::vm::Accel;

pub fn run(global: &GlobalArgs, args: &DrillArgs) -> Result<()> {
    let history = global.root.join(HISTORY.trim_start_matches('/'));
    if let Some(DrillAction::List) = args.action {
        return list(global, &history);
    }
    let cfg = super::load_config(global)?.config;
    let iso = args
        .iso
        .clone()
        .unwrap_or_else(|| cfg.build.out_dir.join("mkrescue.iso"));
    let layout = Layout::load(&args.layout)?;
    let this_host = crate::sys::host::hostname(&global.root);
    let boot = match args.firmware {
        DrillFirmware::Bios => Boot::Bios,
        DrillFirmware::Uefi => Boot::Uefi,
        DrillFirmware::Auto => {
            drill::host_firmware(&layout, &this_host, &global.root.join("sys/firmware/efi"))
        }
    };
    let work = args
        .work
        .clone()
        .or(cfg.drill.work.clone())
        .unwrap_or_else(|| {
            std::path::PathBuf::from(format!(
                "/var/tmp/mkrescue-drill-{}",
                layout.host.replace('/', "_")
            ))
        });
    let opts = DrillOptions {
        iso,
        layout: args.layout.clone(),
        backup_disks: cfg
            .drill
            .backup_disks
            .iter()
            .chain(&args.backup_disks)
            .cloned()
            .collect(),
        boot,
        accel: match args.accel {
            DrillAccel::Auto => AccelChoice::Auto,
            DrillAccel::Kvm => AccelChoice::Fixed(Accel::Kvm),
            DrillAccel::Tcg => AccelChoice::Fixed(Accel::Tcg),
        },
        work: work.clone(),
        keep: args.keep.clone(),
        keep_raw: args.keep_format == "raw",
        memory_mib: args.memory.unwrap_or(cfg.drill.memory_mib),
        recover_timeout: Duration::from_secs(args.recover_timeout),
        boot_timeout: Duration::from_secs(args.boot_timeout),
        controller: match args.controller {
            DrillController::Auto => Controller::AsRecorded,
            DrillController::Virtio => Controller::Virtio,
            DrillController::Nvme => Controller::Nvme,
        },
        test_hook: args.test_hook.clone(),
    };
    let quiet = global.quiet || global.json;
    let say = |line: &str| {
        if !quiet {
            eprintln!("drill: {line}");
        }
    };
    let result = drill::drill(&opts, &layout, &say);
    // The disks are as big as the host's (sparse, but holding the restored
    // data): they go, passed or failed; the serial logs stay for reading.
    for d in drill::blank_disks(&layout, &work) {
        let _ = std::fs::remove_file(&d.path);
    }
    let report = result?;
    let kept = drill::record(&history, &report)?;
    let mail = match cfg.drill.mail {
        DrillMail::Always => true,
        DrillMail::Failure => !report.passed,
        DrillMail::Never => false,
    };
    if mail && !cfg.backup.mail_to.is_empty() {
        // A mail that cannot go out does not change the drill's verdict.
        if let Err(e) =
            crate::backup::mail::send_message(&cfg.backup, &drill::mail(&cfg.backup, &report))
        {
            log::warn!(
                "cannot mail the drill's report to {}: {e:#}",
                cfg.backup.mail_to.join(", ")
            );
        }
    }
    if global.json {
        super::print_json(&report)?;
    } else if !global.quiet {
        print!("{}", drill::render(&report));
        println!("  report kept in {}", kept.display());
    }
    if report.passed {
        Ok(())
    } else {
        Err(fail(
            Code::Drill,
            format!(
                "drill of {} failed in {}: {}",
                report.host,
                report.failed_phase.as_deref().unwrap_or("?"),
                report.cause.as_deref().unwrap_or("?")
            ),
        ))
    }
}

/// One line per kept drill: when, host, verdict, the failed phase and
/// the times.
fn list(global: &GlobalArgs, history: &std::path::Path) -> Result<()> {
    let reports = drill::history(history)?;
    if global.json {
        return super::print_json(&reports);
    }
    if reports.is_empty() {
        if !global.quiet {
            println!(
                "no drills kept in {} yet: run `mkrescue drill`",
                history.display()
            );
        }
        return Ok(());
    }
    let mut out = String::new();
    for r in &reports {
        let total: f64 = r.phases.iter().map(|p| p.seconds).sum();
        out.push_str(&format!(
            "{}  {:<20} {:<6} {:>7.0}s  {}\n",
            crate::sys::time::datetime(r.started),
            r.host,
            if r.passed { "passed" } else { "FAILED" },
            total,
            match (&r.failed_phase, &r.cause) {
                (Some(p), Some(c)) => format!("{p}: {c}"),
                _ => r
                    .phases
                    .iter()
                    .map(|p| format!("{} {:.0}s", p.name, p.seconds))
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        ));
    }
    print!("{out}");
    std::io::Write::flush(&mut std::io::stdout()).context("writing to stdout")
}
