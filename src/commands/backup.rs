//! `mkrescue backup [list|verify]`.

use anyhow::Result;

use crate::backup::{CreateOptions, ListOptions, VerifyOptions};
use crate::cli::{BackupAction, BackupArgs, GlobalArgs};

pub fn run(global: &GlobalArgs, args: &BackupArgs) -> Result<()> {
    let cfg = super::load_config(global)?.config;
    match &args.action {
        None => {
            let a = &args.create;
            crate::backup::create_backup(
                &cfg,
                &CreateOptions {
                    root: global.root.clone(),
                    quiet: global.quiet,
                    json: global.json,
                    target: a.target.clone(),
                    method: a.method,
                    dry_run: a.dry_run,
                    paths: a.paths.clone(),
                    full: a.full,
                },
            )
        }
        Some(BackupAction::List(a)) => crate::backup::list_backups(
            &cfg,
            &ListOptions {
                root: global.root.clone(),
                json: global.json,
                target: a.target.clone(),
                method: a.method,
            },
        ),
        Some(BackupAction::Verify(a)) => crate::backup::verify_backup(
            &cfg,
            &VerifyOptions {
                root: global.root.clone(),
                quiet: global.quiet,
                json: global.json,
                target: a.target.clone(),
                archive: a.archive.clone(),
                identity: a.identity.clone(),
                method: a.method,
            },
        ),
    }
}
