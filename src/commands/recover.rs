//! `mkrescue recover`: inside the rescue system.

use std::time::Instant;

use anyhow::Result;

use crate::cli::{GlobalArgs, RecoverArgs, RecoverFirmware};
use crate::config::{Config, Firmware};
use crate::estimate::{EstimateOptions, SAVED, estimate, in_rescue, render};
use crate::recover::RecoverOptions;

pub fn run(global: &GlobalArgs, args: &RecoverArgs) -> Result<()> {
    let cfg = super::load_config(global)?.config;
    let opts = RecoverOptions {
        root: global.root.clone(),
        quiet: global.quiet,
        json: global.json,
        layout: args.recovery.layout.clone(),
        dry_run: args.dry_run,
        map: args.map.clone(),
        map_nic: args.map_nic.clone(),
        unattended: args.unattended,
        layout_only: args.layout_only,
        key_file: args.key_file.clone(),
        lsblk: args.lsblk.clone(),
        restore_from: args.recovery.restore_from.clone(),
        archive: args.recovery.archive.clone(),
        identity: args.recovery.identity.clone(),
        state: args.state.clone(),
        firmware: match args.firmware {
            None => cfg.recover.firmware,
            Some(RecoverFirmware::Auto) => Firmware::Auto,
            Some(RecoverFirmware::Bios) => Firmware::Bios,
            Some(RecoverFirmware::Uefi) => Firmware::Uefi,
        },
        firmware_from_cli: args.firmware.is_some(),
    };
    if !opts.dry_run && !opts.layout_only && in_rescue(&opts.root) {
        announce_estimate(&cfg, &opts);
    }
    crate::recover::run(&cfg, &opts)
}

/// The estimate of this recovery, printed before it starts (the admin's
/// "when is it back?", before any question) and kept for the report: the
/// one `mkrescue estimate` saved in this rescue system, else made now (a few
/// seconds of probes). Never stops the recovery: a failure is a warning.
fn announce_estimate(cfg: &Config, args: &RecoverOptions) {
    let saved = args.root.join(SAVED.trim_start_matches('/'));
    if saved.exists() {
        return;
    }
    let t = Instant::now();
    let opts = EstimateOptions {
        root: args.root.clone(),
        layout: args.layout.clone(),
        from: args.restore_from.clone(),
        archive: args.archive.clone(),
        identity: args.identity.clone(),
        hosts: 1,
        no_probe: false,
    };
    match estimate(cfg, &opts) {
        Ok(e) => {
            if !args.quiet {
                for l in render(&e).lines() {
                    eprintln!("mkrescue: estimate: {l}");
                }
                eprintln!("mkrescue: (estimated in {:.1}s)", t.elapsed().as_secs_f64());
            }
            if let Ok(j) = serde_json::to_vec_pretty(&e)
                && let Err(err) = std::fs::write(&saved, j)
            {
                log::warn!("cannot keep the estimate in {}: {err}", saved.display());
            }
        }
        Err(e) => log::warn!("no recovery-time estimate: {e:#}"),
    }
}
