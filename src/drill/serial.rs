//! What a rescue system's `mkrescue recover` printed on its serial console,
//! read back: the phase table, its totals, the estimate beside each phase
//! and the finalize decisions (src/recover prints them; `mkrescue drill`
//! and xtask's e2e both read them from the serial log).

use std::collections::BTreeMap;

/// The line of recover's finalize report (`mkrescue:   - WHAT ...`) that
/// starts with `what`.
pub fn finalize_line(text: &str, what: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim_end().strip_prefix("mkrescue:   - "))
        .find(|l| l.starts_with(what))
        .map(str::to_string)
}

/// How many restored files the restore checked against the backup's
/// manifest as it wrote them (its `restored ...; N files checked against
/// the manifest` line, [`crate::backup::checked_words`]); None when the
/// log has no such line (an older rescue image, or no restore), Some(0)
/// when the backup had no manifest.
pub fn files_checked(text: &str) -> Option<u64> {
    text.lines().rev().find_map(|l| {
        if l.contains("no file checked (the backup has no manifest)") {
            return Some(0);
        }
        let head = l
            .trim_end()
            .strip_suffix(" files checked against the manifest")?;
        head.rsplit(' ').next()?.parse().ok()
    })
}

/// The estimate beside each phase of recover's table (`NAME  12.3s (est.
/// 11.0s)  DETAIL`) and the estimated total (`(estimated beforehand:
/// 98.0s)`), from the serial log.
pub fn recover_predicted(text: &str) -> (BTreeMap<String, f64>, Option<f64>) {
    let secs = |w: &str| {
        w.trim_end_matches(')')
            .strip_suffix('s')?
            .parse::<f64>()
            .ok()
    };
    let mut phases = BTreeMap::new();
    let mut total = None;
    for l in text.lines() {
        let Some(rest) = l.strip_prefix("mkrescue:   ") else {
            continue;
        };
        if let Some(t) = rest.trim().strip_prefix("(estimated beforehand: ") {
            total = secs(t);
            continue;
        }
        let w: Vec<&str> = rest.split_whitespace().collect();
        if let [name, _, est, value, ..] = w.as_slice()
            && *est == "(est."
            && let Some(v) = secs(value)
        {
            phases.insert(name.to_string(), v);
        }
    }
    (phases, total)
}

/// What mkrescue itself reports as the recover's total (`mkrescue: recover
/// of HOST finished in 48.1s`) and how long the estimate before it took
/// (`mkrescue: (estimated in 4.6s)`), from the serial log. The e2e's own
/// `recover_s` (ready marker to done marker) holds both and the start.
pub fn recover_totals(text: &str) -> (Option<f64>, Option<f64>) {
    let secs = |w: &str| {
        w.trim_end_matches(')')
            .strip_suffix('s')?
            .parse::<f64>()
            .ok()
    };
    let mut total = None;
    let mut estimate = None;
    for l in text.lines() {
        let Some(rest) = l.trim_end().strip_prefix("mkrescue: ") else {
            continue;
        };
        if let Some(t) = rest.strip_prefix("(estimated in ") {
            estimate = secs(t);
        } else if rest.starts_with("recover of ")
            && let Some((_, t)) = rest.rsplit_once(" finished in ")
        {
            total = secs(t);
        }
    }
    (total, estimate)
}

/// The phase table recover prints at its end (src/recover/mod.rs:
/// `mkrescue:   NAME  SECONDSs  DETAIL`): layout, mount, restore,
/// finalize, unmount with their seconds, for the report.
pub fn recover_phases(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for l in text.lines() {
        let Some(rest) = l.strip_prefix("mkrescue:   ") else {
            continue;
        };
        let mut w = rest.split_whitespace();
        if let (Some(name), Some(secs)) = (w.next(), w.next())
            && name != "-"
            && let Some(v) = secs.strip_suffix('s').and_then(|n| n.parse::<f64>().ok())
        {
            out.insert(name.to_string(), v);
        }
    }
    out
}

/// The lines of mkrescue (init, recover) and of the phase scripts, without
/// the kernel's and systemd's chatter in between; all of it when there are
/// none.
pub fn mkrescue_lines(text: &str) -> String {
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| (l.contains("mkrescue") || l.contains("MKR-")) && !l.contains("qqqq"))
        .collect();
    if ours.is_empty() {
        text.to_string()
    } else {
        ours.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicted_times_and_finalize_lines_from_the_serial_log() {
        let log = "mkrescue: recover of e2e-server finished in 61.2s\n\
mkrescue:   (estimated beforehand: 58.0s)\n\
mkrescue:   layout       11.6s (est. 10.0s)  20 steps (0 already done before)\n\
mkrescue:   restore      31.0s (est. 30.5s)  files restored\n\
mkrescue:   - initramfs kept: the initramfs of 6.1.0-57-amd64 has every driver\n\
mkrescue:   - /boot/grub/grub.cfg kept: every UUID (3), volume and kernel file it refers to is there\n";
        let (p, t) = recover_predicted(log);
        assert_eq!(t, Some(58.0));
        assert_eq!(p["layout"], 10.0);
        assert_eq!(p["restore"], 30.5);
        assert!(
            finalize_line(log, "initramfs")
                .unwrap()
                .starts_with("initramfs kept")
        );
        assert!(
            finalize_line(log, "/boot/grub/grub.cfg")
                .unwrap()
                .contains("kept")
        );
        assert_eq!(finalize_line(log, "GRUB"), None);
        // The phase table still reads the actual times.
        assert_eq!(recover_phases(log)["layout"], 11.6);
        let with_estimate =
            format!("mkrescue: (estimated in 4.6s)\n{log}mkrescue: recover finished\n");
        assert_eq!(recover_totals(&with_estimate), (Some(61.2), Some(4.6)));
        assert_eq!(recover_totals("mkrescue: recover finished\n"), (None, None));
    }

    /// The count comes back from the line the restore prints, whatever the
    /// restore's console prefix; no line (an older image) is None.
    #[test]
    fn files_checked_is_read_from_the_restore_line() {
        let line = |n| {
            format!(
                "[   80.2] mkrescue: restored e2e-server-20261206T081500.000000Z (a chain of 2 from e2e-server-20261206T081000.000000Z) into /mnt/target: 24263 members, 20112 files, 1120.4 MiB in 23.1s; {}\r\n",
                crate::backup::checked_words(n)
            )
        };
        assert_eq!(files_checked(&line(20112)), Some(20112));
        assert_eq!(files_checked(&line(0)), Some(0));
        assert_eq!(files_checked("mkrescue: recover finished\n"), None);
    }

    #[test]
    fn recover_phase_times_from_the_serial_log() {
        // The end of target/qemu/e2e-raid1-lvm-uefi-recover.log (2026-11-22).
        let log = "mkrescue: recover of e2e-server finished in 691.2s\n\
mkrescue:   layout       21.6s  20 steps (0 already done before)\n\
mkrescue:   mount         1.3s  3 file systems under /mnt/target\n\
mkrescue:   restore     176.1s  files restored\n\
mkrescue:   finalize    476.3s  7 actions\n\
mkrescue:   unmount       3.9s  /mnt/target unmounted, data synced\n\
mkrescue: recover finished\n\
mkrescue:   - initramfs regenerated with update-initramfs (359.5s)\n\
mkrescue:   - GRUB (BIOS) installed on /dev/vda (13.1s)\n";
        let p = recover_phases(log);
        let want: BTreeMap<String, f64> = [
            ("finalize", 476.3),
            ("layout", 21.6),
            ("mount", 1.3),
            ("restore", 176.1),
            ("unmount", 3.9),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(p, want);
    }
}
