//! `cargo xtask bench`: placeholder replaced by the bench implementation.

use anyhow::{Result, bail};

pub fn run(_rear: bool, _write: bool) -> Result<()> {
    bail!("bench is not written yet")
}
