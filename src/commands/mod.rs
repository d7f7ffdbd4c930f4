//! The command layer: one file per command. With `cli.rs` it is the only
//! code that sees clap types. Each command loads the configuration once
//! (`load_config`), applies its flags on top, turns its arguments into the
//! plain option struct of the step it runs (`MediaOptions`,
//! `backup::CreateOptions`, `RestoreOptions`, `RecoverOptions`, ...) and
//! prints the result; below this layer nothing reads the command line or
//! the configuration files.

pub mod backup;
pub mod build;
pub mod drill;
pub mod dump;
pub mod estimate;
pub mod layout;
pub mod prune;
pub mod pxe;
pub mod recover;
pub mod restore;
pub mod serve;
pub mod verify;

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

use crate::cli::{Cli, Command, GlobalArgs};
use crate::config::{self, ConfigFiles, Loaded};

/// Runs the parsed command line.
pub fn run(cli: &Cli) -> Result<()> {
    let g = &cli.global;
    match &cli.command {
        None => build::run(g, &cli.build),
        Some(Command::Dump(_)) => dump::run(g),
        Some(Command::Backup(args)) => backup::run(g, args),
        Some(Command::Restore(args)) => restore::run(g, args),
        Some(Command::Verify(args)) => verify::run(g, args),
        Some(Command::Init) => crate::init::run(),
        Some(Command::Layout(args)) => layout::run(g, args),
        Some(Command::Recover(args)) => recover::run(g, args),
        Some(Command::Estimate(args)) => estimate::run(g, args),
        Some(Command::Drill(args)) => drill::run(g, args),
        Some(Command::Serve(args)) => serve::run(g, args),
        Some(Command::Prune(args)) => prune::run(g, args),
        Some(Command::Pxe(args)) => pxe::run(g, args),
    }
}

/// The configuration layers named by `--config` and the hidden
/// `--config-dir`: read once per command.
pub fn load_config(global: &GlobalArgs) -> Result<Loaded> {
    let loaded = config::load(&ConfigFiles {
        dir: global.config_dir.clone(),
        extra: global.config.clone(),
    })?;
    check_values(&loaded)?;
    Ok(loaded)
}

/// Values the files' types allow but every command would refuse later
/// (a compression level out of range, a volume id an ISO cannot carry, a
/// key that is no age key, a target URL of no known kind): refused when
/// the configuration is read, `dump` included, with the file and line that
/// set them.
fn check_values(loaded: &Loaded) -> Result<()> {
    let c = &loaded.config;
    let checks: [(&str, Result<()>); 5] = [
        (
            "build.compress_level",
            crate::image::compress::check_level(c.build.compress, c.build.compress_level)
                .map(|_| ()),
        ),
        (
            "output.volume_id",
            crate::output::iso::check_volume_id(&c.output.volume_id),
        ),
        (
            "backup.age_recipient",
            c.backup
                .age_recipient
                .as_deref()
                .map_or(Ok(()), crate::backup::check_recipient),
        ),
        (
            "backup.full_every",
            crate::backup::check_full_every(c.backup.full_every),
        ),
        (
            "backup.target",
            c.backup.target.as_deref().map_or(Ok(()), |t| {
                crate::backup::check_target_url(t, &c.backup.ssh_options)
            }),
        ),
    ];
    for (key, r) in checks {
        if let Err(e) = r {
            let at = loaded
                .where_set(key)
                .map(|w| format!("{w}: "))
                .unwrap_or_default();
            return Err(crate::error::fail(
                crate::error::Code::Config,
                format!("{at}{e:#}"),
            ));
        }
    }
    Ok(())
}

/// Pretty JSON and a newline on stdout.
fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}
