//! Civil (calendar) time of a Unix time, UTC: archive names, mail dates,
//! boot menu dates. No time-zone database: every date we print is UTC.

/// A UTC calendar date and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
}

/// The calendar date and time of a Unix time (days-from-civil inverse,
/// H. Hinnant's "chrono-Compatible Low-Level Date Algorithms").
pub fn civil(secs: i64) -> Civil {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    Civil {
        year: yoe + era * 400 + i64::from(m <= 2),
        month: m,
        day: d,
        hour: rem / 3600,
        minute: rem % 3600 / 60,
        second: rem % 60,
    }
}

/// `YYYYMMDDTHHMMSSZ` (ISO 8601 basic format, UTC).
pub fn stamp(secs: i64) -> String {
    let c = civil(secs);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// `YYYYMMDDTHHMMSS.ffffffZ`: [`stamp`] with microseconds, the name of a
/// backup. Two backups of one host started in the same second (of /data,
/// then of /etc) get different names and both stay; the names still sort
/// in time order.
pub fn stamp_micros(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let s = stamp(d.as_secs() as i64);
    format!("{}.{:06}Z", s.trim_end_matches('Z'), d.subsec_micros())
}

/// The Unix time of a [`stamp`] or [`stamp_micros`] (whole seconds), e.g.
/// the end of a backup's name; None if it is not one.
pub fn parse_stamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 16 || b[8] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // days_from_civil, the inverse of `civil` (same source).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86400 + hh * 3600 + mm * 60 + ss)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC), for people.
pub fn datetime(secs: i64) -> String {
    let c = civil(secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// `YYYY-MM-DD` (UTC).
pub fn date(secs: i64) -> String {
    let c = civil(secs);
    format!("{:04}-{:02}-{:02}", c.year, c.month, c.day)
}

/// Seconds since the epoch now (0 if the clock is before 1970).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_704_067_200), "2024-01-01");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(stamp(1_795_412_671), "20261123T054431Z");
        assert_eq!(stamp(-1), "19691231T235959Z");
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_795_412_671_000_042);
        assert_eq!(stamp_micros(t), "20261123T054431.000042Z");
        assert_eq!(parse_stamp("20261123T054431Z"), Some(1_795_412_671));
        assert_eq!(parse_stamp("20261123T054431.000042Z"), Some(1_795_412_671));
        assert_eq!(parse_stamp("20000229T000000Z"), Some(951_782_400));
        assert_eq!(parse_stamp("19700101T000000Z"), Some(0));
        assert_eq!(parse_stamp("2026112XT054431Z"), None);
        let c = civil(1_795_412_671);
        assert_eq!((c.hour, c.minute, c.second), (5, 44, 31));
    }
}
