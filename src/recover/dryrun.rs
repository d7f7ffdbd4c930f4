//! What `recover --dry-run` says besides its script: whether this is a
//! rescue system at all, and where the restore would come from; with
//! `--json`, the plan as data.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::RecoverOptions;
use crate::config::Config;

/// The rescue image's own file (rescue::fill writes it): its presence
/// tells a rescue system from the host the image was built on.
pub const RESCUE_MARKER: &str = "etc/mkrescue/host.json";

/// Warnings for the dry run of `args` (each one line).
pub fn notes(cfg: &Config, args: &RecoverOptions) -> Vec<String> {
    let mut n = Vec::new();
    if !args.root.join(RESCUE_MARKER).is_file() {
        n.push(format!(
            "this is not a rescue system (no /{RESCUE_MARKER}): recover erases the disks it maps; boot the rescue medium to run it (this plan is for reading only)"
        ));
    }
    if !args.layout_only && source(cfg, args).is_none() {
        n.push(
            "no backup source: recover would stop before the restore; give --restore-from URL or set backup.target (a rescue image records the location of the host's backup)"
                .into(),
        );
    }
    n
}

/// Where the restore would read: --restore-from, the recorded location,
/// else backup.target.
pub fn source(cfg: &Config, args: &RecoverOptions) -> Option<String> {
    args.restore_from
        .clone()
        .or_else(|| {
            crate::backup::source::read_recorded(&args.root)
                .ok()
                .flatten()
                .and_then(|r| r.url().map(str::to_string))
        })
        .or_else(|| cfg.backup.target.clone())
}

/// The plan of `recover --dry-run --json`.
#[derive(Debug, Serialize)]
pub struct DryRunReport<'a> {
    pub rescue_system: bool,
    pub layout: &'a Path,
    /// Layout disk → disk here.
    pub disks: &'a BTreeMap<String, String>,
    /// Recorded NIC → NIC here, and what could not be mapped.
    pub nics: Vec<String>,
    /// The firmware planned for, why, and each change that made the layout
    /// fit it (`firmware: ...` lines).
    pub firmware: Vec<String>,
    /// Every size chosen that differs from the layout, old -> new.
    pub sizes: &'a [super::plan::fit::Change],
    pub restore_from: Option<String>,
    pub steps: Vec<serde_json::Value>,
    /// The same plan as the shell script the text dry run prints.
    pub script: String,
    pub warnings: Vec<String>,
}

/// The steps as JSON objects (id, what, command).
pub fn steps(p: &super::plan::Plan) -> Vec<serde_json::Value> {
    p.steps
        .iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id,
                "what": s.what,
                "env": s.env,
                "argv": s.argv,
                "stdin": s.stdin,
            })
        })
        .collect()
}
