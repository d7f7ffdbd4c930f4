//! `mkrescue`: parse the command line, dispatch, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;

use mkrescue::cli::{Cli, Command};
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

    let result = match &cli.command {
        None => mkrescue::commands::build(&cli.global, &cli.build),
        Some(Command::Dump(args)) => mkrescue::commands::dump(&cli.global, args),
        Some(Command::Backup(args)) => mkrescue::backup::command(&cli.global, args),
        Some(Command::Restore(args)) => mkrescue::backup::restore_command(&cli.global, args),
        Some(Command::Verify(args)) => mkrescue::output::verify_command(args),
        Some(Command::Init) => mkrescue::init::run(),
        Some(Command::Layout(args)) => mkrescue::layout::command::run(&cli.global, args),
        Some(Command::Recover(args)) => mkrescue::recover::run(&cli.global, args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the whole context chain, outermost first.
            eprintln!("mkrescue: error: {e:#}");
            let code = code_of(&e);
            ExitCode::from(code.exit_code())
        }
    }
}
