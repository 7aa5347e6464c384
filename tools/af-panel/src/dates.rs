//! Calendar dates as days since 1970-01-01 (Arrow `Date32`), without a date crate.
//!
//! The civil-date conversions are Howard Hinnant's algorithms; parsing accepts the
//! spellings real daily-bar files use (`20240105`, `2024-01-05`, `2024/1/5`, and the same
//! followed by a time of day, which is ignored).

use anyhow::{Result, bail};

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn ymd_to_days(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = (y - era * 400) as i64;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era as i64 * 146097 + doe - 719468) as i32
}

/// (year, month, day) of days since 1970-01-01.
pub fn days_to_ymd(z: i32) -> (i32, u32, u32) {
    let z = z as i64 + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((if m <= 2 { y + 1 } else { y }) as i32, m, d)
}

/// 0 = Monday … 6 = Sunday.
pub fn weekday(days: i32) -> u32 {
    // 1970-01-01 was a Thursday (3).
    ((days as i64 + 3).rem_euclid(7)) as u32
}

pub fn year_of(days: i32) -> i32 {
    days_to_ymd(days).0
}

/// `YYYY-MM-DD`.
pub fn format_date(days: i32) -> String {
    let (y, m, d) = days_to_ymd(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn valid(y: i32, m: u32, d: u32) -> bool {
    if !(1..=12).contains(&m) || d == 0 || !(1800..=2200).contains(&y) {
        return false;
    }
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let dim = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ][(m - 1) as usize];
    d <= dim
}

/// Parse a date as daily-bar files write it; an error says what was seen.
pub fn parse_date(s: &str) -> Result<i32> {
    let t = s.trim();
    // Drop a time-of-day part: "2024-01-05 00:00:00", "2024-01-05T00:00:00Z".
    let day = t.split([' ', 'T']).next().unwrap_or("");
    let parts: Vec<&str> = if day.contains('-') {
        day.split('-').collect()
    } else if day.contains('/') {
        day.split('/').collect()
    } else if day.len() == 8 && day.bytes().all(|b| b.is_ascii_digit()) {
        vec![&day[0..4], &day[4..6], &day[6..8]]
    } else {
        bail!("unparseable date {s:?} (expected YYYYMMDD, YYYY-MM-DD or YYYY/MM/DD)");
    };
    if parts.len() != 3 {
        bail!("unparseable date {s:?} (expected YYYYMMDD, YYYY-MM-DD or YYYY/MM/DD)");
    }
    let (y, m, d) = match (
        parts[0].parse::<i32>(),
        parts[1].parse::<u32>(),
        parts[2].parse::<u32>(),
    ) {
        (Ok(y), Ok(m), Ok(d)) => (y, m, d),
        _ => bail!("unparseable date {s:?} (expected YYYYMMDD, YYYY-MM-DD or YYYY/MM/DD)"),
    };
    if !valid(y, m, d) {
        bail!("invalid date {s:?}");
    }
    Ok(ymd_to_days(y, m, d))
}

/// Parse an integer date such as Tushare's `20240105`.
pub fn date_from_yyyymmdd(v: i64) -> Result<i32> {
    let (y, m, d) = (
        (v / 10000) as i32,
        ((v / 100) % 100) as u32,
        (v % 100) as u32,
    );
    if !valid(y, m, d) {
        bail!("invalid date {v}");
    }
    Ok(ymd_to_days(y, m, d))
}

/// Weekdays in `[from, to)`, as `numpy.busday_count(from, to)` counts them (negative
/// when `to < from`). Used to age listings that predate the panel's calendar.
pub fn busday_count(from: i32, to: i32) -> i64 {
    if to < from {
        // numpy counts (to, from] when the range is reversed.
        return -busday_count(to + 1, from + 1);
    }
    let n = (to - from) as i64;
    let full_weeks = n / 7;
    let mut count = full_weeks * 5;
    let mut d = from + (full_weeks * 7) as i32;
    while d < to {
        if weekday(d) < 5 {
            count += 1;
        }
        d += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for z in -800_000..800_000 {
            let (y, m, d) = days_to_ymd(z);
            assert_eq!(ymd_to_days(y, m, d), z);
        }
        assert_eq!(ymd_to_days(1970, 1, 1), 0);
        assert_eq!(format_date(ymd_to_days(2024, 2, 29)), "2024-02-29");
        assert_eq!(weekday(ymd_to_days(2026, 11, 22)), 6);
    }

    #[test]
    fn parses_spellings() {
        let want = ymd_to_days(2010, 8, 20);
        for s in [
            "20100820",
            "2010-08-20",
            "2010/8/20",
            "2010-08-20 00:00:00",
            "2010-08-20T00:00:00Z",
        ] {
            assert_eq!(parse_date(s).unwrap(), want, "{s}");
        }
        for s in ["", "2010-13-01", "2010-02-30", "abc", "201008", "2010-08"] {
            assert!(parse_date(s).is_err(), "{s}");
        }
    }

    #[test]
    fn busdays() {
        let a = ymd_to_days(2024, 1, 1); // Monday
        assert_eq!(busday_count(a, a + 7), 5);
        assert_eq!(busday_count(a, a + 12), 10); // numpy: 10
        assert_eq!(busday_count(a + 12, a), -9); // numpy: -9
        assert_eq!(busday_count(a + 11, a), -9); // numpy: -9
        for k in 0..30 {
            let brute = (a..a + k).filter(|d| weekday(*d) < 5).count() as i64;
            assert_eq!(busday_count(a, a + k), brute);
        }
    }
}
