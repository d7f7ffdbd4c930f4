//! Errors a user must be able to tell apart by exit code.
//!
//! Everything else is an `anyhow::Error` with lowercase contexts; the top
//! level prints the whole chain on one line. A [`Failure`] anywhere in the
//! chain picks the exit code.

use std::fmt;

/// Exit codes of `mkrescue`, documented in the man page and README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    /// Something failed at run time (I/O error, a tool returned non-zero),
    /// or a device was refused for what it is now (mounted, in use, fixed).
    Failed = 1,
    /// The command line was wrong (clap uses 2 as well).
    Usage = 2,
    /// A configuration file is invalid: unknown key, wrong type, bad value.
    Config = 3,
    /// This machine lacks something the command needs: a required tool, a
    /// kernel with modules, a compression its kernel can unpack, a disk
    /// large enough to recover onto.
    Host = 4,
    /// An input file is corrupt or unusable (truncated ELF, broken cache).
    Input = 5,
    /// The requested feature is not available in this version yet.
    NotYet = 6,
    /// There is no saved layout (`layout check|show`, `recover`): run
    /// `mkrescue layout save`.
    NoLayout = 7,
    /// A disk or file system could not be probed (no permission, I/O
    /// error), so its layout is unknown.
    Probe = 8,
    /// `drill` ran and the host was not recovered: recover failed, or the
    /// recovered system did not boot.
    Drill = 9,
}

impl Code {
    pub fn exit_code(self) -> u8 {
        self as u8
    }
}

/// An error whose kind decides the exit code. Its message is the one line the
/// user reads, so it names the thing at fault and what would fix it.
#[derive(Debug)]
pub struct Failure {
    pub code: Code,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Builds an `anyhow::Error` carrying an exit code.
pub fn fail(code: Code, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        code,
        message: message.into(),
    })
}

/// The exit code for an error chain: the first [`Failure`] found, else 1.
pub fn code_of(err: &anyhow::Error) -> Code {
    err.chain()
        .find_map(|e| e.downcast_ref::<Failure>())
        .map(|f| f.code)
        .unwrap_or(Code::Failed)
}
