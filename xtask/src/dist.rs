//! Man page (clap_mangen) and shell completions (clap_complete) from the same
//! clap definition the binary uses, so they never drift.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

pub fn generate(dir: &Path) -> Result<()> {
    let man = dir.join("man");
    let comp = dir.join("completions");
    std::fs::create_dir_all(&man).with_context(|| format!("creating {}", man.display()))?;
    std::fs::create_dir_all(&comp).with_context(|| format!("creating {}", comp.display()))?;
    let cmd = mkrescue::cli::Cli::command();
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut buf)
        .context("rendering the man page")?;
    let page = man.join("mkrescue.1");
    std::fs::write(&page, buf).with_context(|| format!("writing {}", page.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = clap_complete::generate_to(shell, &mut cmd.clone(), "mkrescue", &comp)
            .with_context(|| format!("writing {shell} completions"))?;
        eprintln!("wrote {}", path.display());
    }
    eprintln!("wrote {}", page.display());
    Ok(())
}
