//! `mkrescue serve --append-only DIR`: the backup server's end of an
//! `ssh://` archive target (a forced command in authorized_keys).

use anyhow::Result;

use crate::backup::serve::ServeOptions;
use crate::cli::{GlobalArgs, ServeArgs};

/// Reads no configuration: the forced command says everything.
pub fn run(_global: &GlobalArgs, args: &ServeArgs) -> Result<()> {
    crate::backup::serve::run(&ServeOptions {
        dir: args.dir.clone(),
        // sshd(8): set to the command the client asked for when a forced
        // command runs instead.
        original_command: std::env::var("SSH_ORIGINAL_COMMAND").ok(),
    })
}
