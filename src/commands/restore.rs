//! `mkrescue restore --to DIR`: what recover's restore phase runs too.

use anyhow::Result;

use crate::backup::RestoreOptions;
use crate::cli::{GlobalArgs, RestoreArgs};

pub fn run(global: &GlobalArgs, args: &RestoreArgs) -> Result<()> {
    let cfg = super::load_config(global)?.config;
    crate::backup::restore_backup(
        &cfg,
        &RestoreOptions {
            root: global.root.clone(),
            quiet: global.quiet,
            json: global.json,
            to: args.to.clone(),
            from: args.from.clone(),
            archive: args.archive.clone(),
            identity: args.identity.clone(),
            method: args.method,
            events: false,
        },
    )
}
