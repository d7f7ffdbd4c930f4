//! The matrix's phase table from the e2e reports of one run
//! (`target/qemu/e2e-report-*.json`): per variant, recover's phases with
//! the estimate recover printed before it started, the ratio of recover to
//! its restore (issue 16's "recover ≤ 2 × restore") and how far the
//! estimate was off (its ±25%), then the boots after. `cargo xtask qemu
//! e2e-table` prints it as Markdown for BENCHMARKS.md; `cargo xtask ci`
//! prints it after its own table.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

/// recover's phases, in the order recover runs them.
const RECOVER_PHASES: &[&str] = &["layout", "mount", "restore", "finalize", "unmount"];

/// One variant's report, reduced to what the table shows.
#[derive(Debug, Default, PartialEq)]
pub struct Column {
    /// `raid1-lvm iso bios`.
    pub name: String,
    pub ok: bool,
    pub boot_to_ready: Option<f64>,
    /// (phase, actual, estimated) for [`RECOVER_PHASES`].
    pub phases: Vec<(&'static str, Option<f64>, Option<f64>)>,
    /// mkrescue's own total of recover (layout to unmount), else the
    /// e2e's span from the ready marker to recover's end.
    pub recover: Option<f64>,
    pub recover_estimated: Option<f64>,
    /// The estimate recover made before it started (its probes).
    pub estimate_took: Option<f64>,
    pub initramfs: String,
    /// Wall seconds of the after and degraded VMs.
    pub after: Option<f64>,
    pub degraded: Option<f64>,
}

impl Column {
    /// Recover over its restore phase.
    pub fn ratio(&self) -> Option<f64> {
        let restore = self.phases.iter().find(|p| p.0 == "restore")?.1?;
        let recover = self.recover?;
        (restore > 0.0).then(|| recover / restore)
    }

    /// The initramfs regeneration's seconds when finalize regenerated it
    /// (recover's decision line ends in `(110.0s)`).
    pub fn regenerated(&self) -> Option<f64> {
        if !self.initramfs.contains("regenerated") {
            return None;
        }
        let t = self.initramfs.trim_end().strip_suffix("s)")?;
        t.rsplit('(').next()?.parse().ok()
    }

    /// Recover over its restore phase without the initramfs regeneration:
    /// a fixed cost of the driver variant (110-160 s under TCG whatever
    /// the data), where the ratio measures recover's other work.
    pub fn ratio_without_initramfs(&self) -> Option<f64> {
        let restore = self.phases.iter().find(|p| p.0 == "restore")?.1?;
        let rest = self.recover? - self.regenerated()?;
        (restore > 0.0).then(|| rest / restore)
    }

    /// The estimate's error against the actual recover, in percent.
    pub fn off_by(&self) -> Option<f64> {
        let (a, e) = (self.recover?, self.recover_estimated?);
        (a > 0.0).then(|| (e - a) / a * 100.0)
    }
}

/// A variant's column from its report; `None` for a server's report (no
/// recover phase).
pub fn column(report: &Value) -> Option<Column> {
    let phases = report["phases"].as_array()?;
    let phase = |prefix: &str| {
        phases.iter().find(|p| {
            p["phase"]
                .as_str()
                .is_some_and(|n| n == prefix || n.starts_with(&format!("{prefix}-")))
        })
    };
    let rec = phase("recover")?;
    let d = &rec["details"];
    let f = |v: &Value| v.as_f64();
    let mut name = format!(
        "{} {} {}",
        report["scenario"].as_str().unwrap_or("?"),
        report["variant"]["boot"].as_str().unwrap_or("?"),
        report["variant"]["firmware"].as_str().unwrap_or("?")
    );
    // Issue 18's other machine: `--disks smaller,nvme --nic new-mac`.
    if let Some(m) = report["variant"]["moved"].as_str() {
        name = format!("{name} {m}");
    }
    Some(Column {
        name,
        ok: report["ok"].as_bool().unwrap_or(false),
        boot_to_ready: f(&d["boot_to_ready_s"]),
        phases: RECOVER_PHASES
            .iter()
            .map(|p| {
                (
                    *p,
                    f(&d["recover_phases_s"][p]),
                    f(&d["recover_predicted_s"][p]),
                )
            })
            .collect(),
        recover: f(&d["recover_total_s"]).or(f(&d["recover_s"])),
        recover_estimated: f(&d["recover_predicted_total_s"]),
        estimate_took: f(&d["estimate_took_s"]),
        initramfs: d["initramfs"].as_str().unwrap_or("").to_string(),
        after: phase("after").and_then(|p| f(&p["seconds"])),
        degraded: phase("degraded").and_then(|p| f(&p["seconds"])),
    })
}

/// Every variant report under `dir` (`e2e-report-*.json`), in name order.
pub fn columns(dir: &Path) -> Result<Vec<Column>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("e2e-report-") && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for p in files {
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        let v: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))?;
        out.extend(column(&v));
    }
    Ok(out)
}

fn cell(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}")).unwrap_or_default()
}

/// The Markdown table: a row per phase, two columns (actual, estimate) per
/// variant.
pub fn markdown(cols: &[Column]) -> String {
    let mut out = String::from("| phase (s) |");
    let mut rule = String::from("|---|");
    for c in cols {
        let mark = if c.ok { "" } else { " (FAILED)" };
        out.push_str(&format!(" {}{mark} | est. |", c.name));
        rule.push_str("---:|---:|");
    }
    out.push('\n');
    out.push_str(&rule);
    out.push('\n');
    let mut row = |label: &str, cells: &mut dyn FnMut(&Column) -> (String, String)| {
        out.push_str(&format!("| {label} |"));
        for c in cols {
            let (a, e) = cells(c);
            out.push_str(&format!(" {a} | {e} |"));
        }
        out.push('\n');
    };
    row("rescue boot to ready (guest)", &mut |c| {
        (cell(c.boot_to_ready), String::new())
    });
    for (i, p) in RECOVER_PHASES.iter().enumerate() {
        row(p, &mut |c| (cell(c.phases[i].1), cell(c.phases[i].2)));
    }
    row("**recover**", &mut |c| {
        (
            format!("**{}**", cell(c.recover)),
            format!("**{}**", cell(c.recover_estimated)),
        )
    });
    row("the estimate before it (probes)", &mut |c| {
        (cell(c.estimate_took), String::new())
    });
    row("estimate off by", &mut |c| {
        (
            String::new(),
            c.off_by().map(|p| format!("{p:+.0}%")).unwrap_or_default(),
        )
    });
    row("recover / restore", &mut |c| {
        (
            c.ratio().map(|r| format!("{r:.2}")).unwrap_or_default(),
            String::new(),
        )
    });
    if cols.iter().any(|c| c.regenerated().is_some()) {
        row("recover / restore without the initramfs", &mut |c| {
            (
                c.ratio_without_initramfs()
                    .map(|r| format!("{r:.2}"))
                    .unwrap_or_default(),
                String::new(),
            )
        });
    }
    row("after (VM wall)", &mut |c| (cell(c.after), String::new()));
    row("degraded (VM wall)", &mut |c| {
        (cell(c.degraded), String::new())
    });
    for c in cols {
        if !c.initramfs.is_empty() {
            out.push_str(&format!("\n- {}: {}", c.name, c.initramfs));
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(firmware: &str, restore: f64, recover: f64, est: f64) -> Value {
        json!({
            "scenario": "raid1-lvm",
            "variant": {"boot": "iso", "firmware": firmware},
            "ok": true,
            "phases": [
                {"phase": format!("recover-{firmware}"), "seconds": 80.0, "details": {
                    "boot_to_ready_s": 9.7,
                    "recover_s": recover + 4.6,
                    "recover_total_s": recover,
                    "estimate_took_s": 4.6,
                    "recover_phases_s": {"layout": 6.0, "mount": 0.3, "restore": restore, "finalize": 13.3, "unmount": 1.2},
                    "recover_predicted_s": {"layout": 6.2, "restore": 20.3},
                    "recover_predicted_total_s": est,
                    "initramfs": "initramfs kept: nothing it embeds changed",
                }},
                {"phase": format!("after-{firmware}"), "seconds": 109.7, "details": {}},
                {"phase": format!("degraded-{firmware}"), "seconds": 130.8, "details": {}},
            ],
        })
    }

    #[test]
    fn a_variant_column_its_ratio_and_the_estimate_error() {
        let c = column(&report("uefi", 26.5, 50.2, 41.8)).unwrap();
        assert_eq!(c.name, "raid1-lvm iso uefi");
        assert_eq!(c.phases[2], ("restore", Some(26.5), Some(20.3)));
        assert_eq!(c.phases[1], ("mount", Some(0.3), None));
        assert_eq!((c.after, c.degraded), (Some(109.7), Some(130.8)));
        assert!((c.ratio().unwrap() - 1.894).abs() < 0.001);
        assert!((c.off_by().unwrap() + 16.73).abs() < 0.01);
    }

    #[test]
    fn a_server_report_has_no_column() {
        let server = json!({"scenario": "raid1-lvm", "variant": {"boot": "iso", "firmware": "bios"},
            "ok": true, "phases": [{"phase": "provision", "seconds": 150.0, "details": {}}]});
        assert_eq!(column(&server), None);
    }

    #[test]
    fn the_table_has_a_pair_of_columns_per_variant() {
        let cols = [
            column(&report("bios", 26.5, 50.2, 41.8)).unwrap(),
            column(&report("uefi", 38.4, 83.4, 85.4)).unwrap(),
        ];
        let t = markdown(&cols);
        assert!(t.starts_with(
            "| phase (s) | raid1-lvm iso bios | est. | raid1-lvm iso uefi | est. |\n|---|---:|---:|---:|---:|\n"
        ));
        assert!(t.contains("| restore | 26.5 | 20.3 | 38.4 | 20.3 |\n"));
        assert!(t.contains("| **recover** | **50.2** | **41.8** | **83.4** | **85.4** |\n"));
        assert!(t.contains("| estimate off by |  | -17% |  | +2% |\n"));
        assert!(t.contains("| recover / restore | 1.89 |  | 2.17 |  |\n"));
        assert!(t.contains("| the estimate before it (probes) | 4.6 |  | 4.6 |  |\n"));
        // An older report without mkrescue's own total: the e2e's span.
        let mut old = report("bios", 26.5, 50.2, 41.8);
        old["phases"][0]["details"]["recover_total_s"] = serde_json::Value::Null;
        assert!((column(&old).unwrap().recover.unwrap() - 54.8).abs() < 1e-9);
        assert!(t.contains("- raid1-lvm iso uefi: initramfs kept"));
        assert!(!t.contains("without the initramfs"));
        // The driver variant: its regeneration's time taken out.
        let mut nvme = report("bios", 27.6, 160.4, 186.2);
        nvme["phases"][0]["details"]["initramfs"] = "initramfs regenerated with update-initramfs: the initramfs of 6.1.0-50-amd64 lacks nvme that the new disks need (110.0s)".into();
        let c = column(&nvme).unwrap();
        assert_eq!(c.regenerated(), Some(110.0));
        assert!((c.ratio_without_initramfs().unwrap() - 50.4 / 27.6).abs() < 1e-9);
        let t = markdown(&[c]);
        assert!(
            t.contains("| recover / restore without the initramfs | 1.83 |  |\n"),
            "{t}"
        );
    }
}
