//! `mkrescue recover`: inside the rescue system.

use anyhow::Result;

use crate::cli::{GlobalArgs, RecoverArgs};
use crate::recover::RecoverOptions;

pub fn run(global: &GlobalArgs, args: &RecoverArgs) -> Result<()> {
    let cfg = super::load_config(global)?.config;
    crate::recover::run(
        &cfg,
        &RecoverOptions {
            root: global.root.clone(),
            quiet: global.quiet,
            json: global.json,
            layout: args.layout.clone(),
            dry_run: args.dry_run,
            map: args.map.clone(),
            unattended: args.unattended,
            layout_only: args.layout_only,
            key_file: args.key_file.clone(),
            restore_from: args.restore_from.clone(),
            archive: args.archive.clone(),
            identity: args.identity.clone(),
            state: args.state.clone(),
        },
    )
}
