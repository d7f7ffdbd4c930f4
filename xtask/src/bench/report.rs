//! BENCHMARKS.md: each section between its `<!-- bench:NAME -->` markers
//! replaced by this run's, the others kept; the sections' headings.

use anyhow::{Context, Result};

use super::measure::now_utc;

pub fn produced() -> String {
    format!(
        "Produced by `cargo xtask bench --write` on {} (this section is replaced on each run).\n\n",
        now_utc()
    )
}

pub fn produced_boot() -> String {
    format!(
        "## Boot to ready under TCG\n\nProduced by `cargo xtask bench --write` (or `--boot-only --write`) on {} (this section is replaced on each run).\n\n",
        now_utc()
    )
}

const FILE: &str = "BENCHMARKS.md";

/// Replaces the sections measured in this run (between `<!-- bench:NAME -->`
/// and `<!-- /bench:NAME -->`), keeping the others as they are.
pub fn write_benchmarks(sections: &[(&str, String)]) -> Result<()> {
    let old = std::fs::read_to_string(FILE).unwrap_or_default();
    let text = splice(&old, sections);
    std::fs::write(FILE, text).with_context(|| format!("writing {FILE}"))
}

fn splice(old: &str, sections: &[(&str, String)]) -> String {
    let mut text = if old.trim().is_empty() {
        "# Benchmarks\n".to_string()
    } else {
        old.to_string()
    };
    for (name, body) in sections {
        let (open, close) = (
            format!("<!-- bench:{name} -->"),
            format!("<!-- /bench:{name} -->"),
        );
        let block = format!("{open}\n{}\n{close}", body.trim_end());
        match (text.find(&open), text.find(&close)) {
            (Some(a), Some(b)) if b > a => {
                text.replace_range(a..b + close.len(), &block);
            }
            _ => {
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push('\n');
                text.push_str(&block);
                text.push('\n');
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_replaces_only_the_measured_section() {
        let old = "# Benchmarks\n\n<!-- bench:build -->\nold build\n<!-- /bench:build -->\n";
        let new = splice(old, &[("boot", "boot table\n".into())]);
        assert!(new.contains("old build"));
        assert!(new.contains("<!-- bench:boot -->\nboot table\n<!-- /bench:boot -->"));
        let again = splice(&new, &[("boot", "second\n".into())]);
        assert!(!again.contains("boot table"));
        assert!(again.contains("old build") && again.contains("second"));
        assert_eq!(again.matches("<!-- bench:boot -->").count(), 1);
    }
}
