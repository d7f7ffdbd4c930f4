//! `mkrescue prune DIR`: retention on the backup server.

use anyhow::Result;

use crate::backup::prune::PruneOptions;
use crate::cli::{GlobalArgs, PruneArgs};

/// The flags win over backup.keep_daily / keep_monthly of the server's own
/// configuration.
pub fn run(global: &GlobalArgs, args: &PruneArgs) -> Result<()> {
    let cfg = super::load_config(global)?.config;
    crate::backup::prune::prune_command(&PruneOptions {
        dir: args.dir.clone(),
        keep_daily: args.keep_daily.unwrap_or(cfg.backup.keep_daily),
        keep_monthly: args.keep_monthly.unwrap_or(cfg.backup.keep_monthly),
        dry_run: args.dry_run,
        json: global.json,
        quiet: global.quiet,
    })
}
