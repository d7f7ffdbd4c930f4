//! Which backups a retention rule keeps: the newest overall, the newest of
//! each of the newest `keep_daily` days and of each of the newest
//! `keep_monthly` months. One rule for the host's own pruning (rsync
//! snapshots) and the backup server's (`mkrescue prune`).

use std::collections::BTreeSet;

/// The stamps to keep of `stamps` (`YYYYMMDDTHHMMSS[.ffffff]Z`, sorted
/// oldest first).
pub fn keep(stamps: &[String], daily: usize, monthly: usize) -> BTreeSet<String> {
    let mut keep = BTreeSet::new();
    if let Some(last) = stamps.last() {
        keep.insert(last.clone());
    }
    for (len, n) in [(8, daily), (6, monthly)] {
        let mut periods = BTreeSet::new();
        for name in stamps.iter().rev() {
            let Some(period) = name.get(..len) else {
                continue;
            };
            if periods.contains(period) {
                continue;
            }
            if periods.len() == n {
                break;
            }
            periods.insert(period.to_string());
            keep.insert(name.clone());
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_newest_per_day_and_month() {
        let names: Vec<String> = [
            "20260101T010000Z",
            "20260115T010000Z",
            "20260201T010000Z",
            "20260301T010000Z",
            "20260301T230000Z",
            "20260302T010000Z",
            "20260303T010000Z",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let k = keep(&names, 2, 2);
        let want: BTreeSet<String> = ["20260303T010000Z", "20260302T010000Z", "20260201T010000Z"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(k, want);
        // 0/0 still keeps the newest.
        assert_eq!(keep(&names, 0, 0).len(), 1);
    }
}
