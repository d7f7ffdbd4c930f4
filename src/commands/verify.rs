//! `mkrescue verify DIR`: check the files listed in DIR/SHA256SUMS.

use std::io::Write;

use anyhow::Result;

use crate::cli::{GlobalArgs, VerifyArgs};
use crate::error::{Code, fail};
use crate::output::sums::{Checked, verify};

/// Prints one line per file; exit code 5 when any file is missing or
/// changed.
pub fn run(global: &GlobalArgs, args: &VerifyArgs) -> Result<()> {
    let checked = verify(&args.dir)?;
    let bad: Vec<&Checked> = checked.iter().filter(|c| c.status != "ok").collect();
    if global.json {
        super::print_json(&checked)?;
    } else {
        // -q: only errors, so only the files that do not match.
        let mut out = std::io::stdout().lock();
        for c in checked.iter().filter(|c| !global.quiet || c.status != "ok") {
            writeln!(out, "{}: {}", c.name, c.status)?;
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(fail(
            Code::Input,
            format!(
                "{} of {} files in {} do not match SHA256SUMS: {}",
                bad.len(),
                checked.len(),
                args.dir.display(),
                bad.iter()
                    .map(|c| format!("{} ({})", c.name, c.status))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }
}
