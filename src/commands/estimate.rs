//! `mkrescue estimate`: the recovery time of this host, per phase.

use anyhow::Result;

use crate::cli::{EstimateArgs, GlobalArgs};
use crate::estimate::{EstimateOptions, SAVED, estimate, in_rescue, render};

pub fn run(global: &GlobalArgs, args: &EstimateArgs) -> Result<()> {
    let cfg = super::load_config(global)?.config;
    let e = estimate(
        &cfg,
        &EstimateOptions {
            root: global.root.clone(),
            layout: args.recovery.layout.clone(),
            from: args.recovery.restore_from.clone(),
            archive: args.recovery.archive.clone(),
            identity: args.recovery.identity.clone(),
            hosts: args.hosts,
            no_probe: args.no_probe,
        },
    )?;
    // In the rescue system, recover's report puts it beside the actual
    // times.
    if in_rescue(&global.root) {
        let p = global.root.join(SAVED.trim_start_matches('/'));
        if let Err(err) = std::fs::write(&p, serde_json::to_vec_pretty(&e)?) {
            log::warn!("cannot keep the estimate in {}: {err}", p.display());
        }
    }
    if global.json {
        return super::print_json(&e);
    }
    if !global.quiet {
        print!("{}", render(&e));
    }
    Ok(())
}
