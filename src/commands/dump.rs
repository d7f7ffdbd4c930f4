//! `mkrescue dump`: the effective configuration and the detected host facts.

use std::io::Write;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::GlobalArgs;
use crate::config;
use crate::host::HostFacts;

#[derive(Serialize)]
struct Dump<'a> {
    config: &'a config::Config,
    config_files: &'a [config::Source],
    host: &'a HostFacts,
}

pub fn run(global: &GlobalArgs) -> Result<()> {
    let loaded = super::load_config(global)?;
    let host = HostFacts::detect(&global.root, loaded.config.build.kernel_version.as_deref())?;
    if global.json {
        return super::print_json(&Dump {
            config: &loaded.config,
            config_files: &loaded.sources,
            host: &host,
        });
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "# configuration files (later ones win):")?;
    for s in &loaded.sources {
        writeln!(
            out,
            "#   {} {}",
            s.path.display(),
            if s.found { "(read)" } else { "(not present)" }
        )?;
    }
    writeln!(out, "{}", config::to_toml(&loaded.config)?)?;
    writeln!(out, "# host facts")?;
    let host_toml = toml::to_string_pretty(&host).context("rendering host facts")?;
    for l in host_toml.lines() {
        writeln!(out, "# {l}")?;
    }
    Ok(())
}
