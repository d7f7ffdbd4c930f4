//! `mkrescue pxe prune --pxe-root DIR`: the recovery server's side of the
//! PXE tree.

use anyhow::Result;

use crate::cli::{GlobalArgs, PxeAction, PxeArgs};
use crate::output::pxeprune;

pub fn run(global: &GlobalArgs, args: &PxeArgs) -> Result<()> {
    match &args.action {
        PxeAction::Prune { pxe_root, dry_run } => {
            let report = pxeprune::prune(pxe_root, *dry_run)?;
            if global.json {
                super::print_json(&report)?;
            } else {
                let text = pxeprune::render(&report);
                for l in text.lines() {
                    if l.starts_with("warning:") {
                        eprintln!("mkrescue: {l}");
                    } else if !global.quiet {
                        println!("{l}");
                    }
                }
            }
            Ok(())
        }
    }
}
