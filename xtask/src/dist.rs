//! Man pages (clap_mangen) and shell completions (clap_complete) from the
//! same clap definition the binary uses, so they never drift. `deb` packs
//! what this writes.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

/// Section 8: mkrescue is a system administration command (man-pages(7)).
pub const MAN_SECTION: &str = "8";

/// What `generate` wrote.
pub struct Dist {
    /// One page per command: mkrescue.8, mkrescue-backup.8,
    /// mkrescue-backup-list.8, ...
    pub man: Vec<PathBuf>,
    pub bash: PathBuf,
    pub zsh: PathBuf,
    pub fish: PathBuf,
}

pub fn generate(dir: &Path) -> Result<Dist> {
    let man = dir.join("man");
    let comp = dir.join("completions");
    for d in [&man, &comp] {
        // A page of a command that no longer exists must not linger.
        if d.exists() {
            std::fs::remove_dir_all(d).with_context(|| format!("removing {}", d.display()))?;
        }
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    // build() gives each subcommand its display name (mkrescue-backup) and
    // its bin name (mkrescue backup), which the pages' titles and synopses use.
    let mut cmd = mkrescue::cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    man_pages(&cmd, &man, &mut pages)?;
    let mut comps = Vec::new();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = clap_complete::generate_to(
            shell,
            &mut mkrescue::cli::Cli::command(),
            "mkrescue",
            &comp,
        )
        .with_context(|| format!("writing {shell} completions"))?;
        eprintln!("wrote {}", path.display());
        comps.push(path);
    }
    eprintln!("wrote {} man pages into {}", pages.len(), man.display());
    let [bash, zsh, fish] = <[PathBuf; 3]>::try_from(comps).expect("three shells");
    Ok(Dist {
        man: pages,
        bash,
        zsh,
        fish,
    })
}

/// The page of `cmd` and of each of its visible subcommands, recursively.
fn man_pages(cmd: &clap::Command, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let page = clap_mangen::Man::new(cmd.clone()).section(MAN_SECTION);
    let path = dir.join(page.get_filename());
    let mut buf = Vec::new();
    page.render(&mut buf)
        .with_context(|| format!("rendering {}", path.display()))?;
    std::fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
    out.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub, dir, out)?;
    }
    Ok(())
}
