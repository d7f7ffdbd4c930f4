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
    let cli = Cli::try_parse().unwrap_or_else(|e| usage_exit(e));
    // The build's flags belong to the default command only. (clap's
    // args_conflicts_with_subcommands would also refuse the global flags
    // given before a subcommand: `mkrescue --config F dump`.)
    if cli.command.is_some() && cli.build != BuildArgs::default() {
        usage_exit(Cli::command().error(
            clap::error::ErrorKind::ArgumentConflict,
            "the build's options (--output, --out, --kernel-version, --modules, --compress and the medium's) cannot be used with a subcommand",
        ));
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

/// A command-line error as the one line every error is
/// (`mkrescue: error: ...`, exit 2); help and version as clap prints them.
fn usage_exit(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    // clap's text: "error: WHAT", maybe indented detail lines (possible
    // values, a tip), a blank line, the usage. The usage is left out: the
    // line names the flag, and --help has the rest.
    let text = e.render().to_string();
    let mut parts = Vec::new();
    for l in text.lines() {
        let l = l.trim();
        if l.starts_with("Usage:") || l.starts_with("For more information") {
            break;
        }
        if !l.is_empty() {
            parts.push(l.strip_prefix("error: ").unwrap_or(l).to_string());
        }
    }
    eprintln!(
        "mkrescue: error: {} (see `mkrescue --help`)",
        parts.join("; ")
    );
    std::process::exit(2);
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
        // Above the progress bars, never onto a spinner's line.
        .target(env_logger::Target::Pipe(Box::new(
            mkrescue::progress::LogWriter,
        )))
        .init();
}
