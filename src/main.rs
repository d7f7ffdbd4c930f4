//! `mkrescue`: parse the command line, dispatch, map errors to exit codes.

#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use mkrescue::cli::{BuildArgs, Cli};
use mkrescue::error::code_of;
use mkrescue::init::Role;

fn main() -> ExitCode {
    let argv0 = std::env::args().next().unwrap_or_default();
    match mkrescue::init::role(&argv0) {
        Role::Init => mkrescue::init::run(),
        Role::Power(action) => mkrescue::init::power(action),
        Role::Tool => {}
    }
    let cli = Cli::parse();
    // The build's flags belong to the default command only. (clap's
    // args_conflicts_with_subcommands would also refuse the global flags
    // given before a subcommand: `mkrescue --config F dump`.)
    if cli.command.is_some() && cli.build != BuildArgs::default() {
        Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "the build's options (--output, --out, --kernel-version, --modules, --compress and the medium's) cannot be used with a subcommand",
            )
            .exit();
    }
    init_logging(&cli);
    match mkrescue::commands::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the whole context chain, outermost first.
            eprintln!("mkrescue: error: {e:#}");
            ExitCode::from(code_of(&e).exit_code())
        }
    }
}

/// `mkrescue: LEVEL: message` on stderr; -q errors only, -v info, -vv
/// debug; `MKRESCUE_LOG` overrides.
fn init_logging(cli: &Cli) {
    let level = if cli.global.quiet {
        log::LevelFilter::Error
    } else {
        match cli.global.verbose {
            0 => log::LevelFilter::Warn,
            1 => log::LevelFilter::Info,
            _ => log::LevelFilter::Debug,
        }
    };
    env_logger::Builder::new()
        .filter_level(level)
        .format(|buf, record| {
            use std::io::Write;
            writeln!(
                buf,
                "mkrescue: {}: {}",
                record.level().as_str().to_lowercase(),
                record.args()
            )
        })
        .parse_env("MKRESCUE_LOG")
        .init();
}
