//! A Shanghai/Shenzhen-like trading calendar: weekdays minus the exchange holidays.
//!
//! Spring Festival dates come from a table (2000–2040), the other lunar holidays are
//! placed relative to it; the result has the gaps a real A-share calendar has (a
//! week-long break around Chinese New Year and 1–7 October, single days for New Year,
//! Qingming, Labour Day, Dragon Boat and Mid-Autumn). It is not an official calendar.

use af_panel::dates::{days_to_ymd, weekday, ymd_to_days};

/// Chinese New Year's day, 2000–2040.
const CNY: [(u32, u32); 41] = [
    (2, 5),
    (1, 24),
    (2, 12),
    (2, 1),
    (1, 22),
    (2, 9),
    (1, 29),
    (2, 18),
    (2, 7),
    (1, 26), // 2000-2009
    (2, 14),
    (2, 3),
    (1, 23),
    (2, 10),
    (1, 31),
    (2, 19),
    (2, 8),
    (1, 28),
    (2, 16),
    (2, 5), // 2010-2019
    (1, 25),
    (2, 12),
    (2, 1),
    (1, 22),
    (2, 10),
    (1, 29),
    (2, 17),
    (2, 6),
    (1, 26),
    (2, 13), // 2020-2029
    (2, 3),
    (1, 23),
    (2, 11),
    (1, 31),
    (2, 19),
    (2, 8),
    (1, 28),
    (2, 15),
    (2, 4),
    (1, 24), // 2030-2039
    (2, 12), // 2040
];

fn cny(year: i32) -> i32 {
    let (m, d) = if (2000..=2040).contains(&year) {
        CNY[(year - 2000) as usize]
    } else {
        (2, 5)
    };
    ymd_to_days(year, m, d)
}

/// Whether `day` is an exchange holiday (weekends are handled separately).
pub fn is_holiday(day: i32) -> bool {
    let (y, m, d) = days_to_ymd(day);
    let new_year = cny(y);
    let in_range = |start: i32, len: i32| day >= start && day < start + len;
    (m == 1 && d == 1)
        || in_range(new_year - 1, 7) // Spring Festival: eve + 6 days
        || (m == 4 && (d == 4 || d == 5)) // Qingming
        || (m == 5 && d <= 3) // Labour Day
        || day == new_year + 123 // Dragon Boat (≈ 5th day of 5th lunar month)
        || day == new_year + 236 // Mid-Autumn (≈ 15th day of 8th lunar month)
        || (m == 10 && d <= 7) // National Day
}

/// The first `n` trading days on or after `start`.
pub fn trading_days(start: i32, n: usize) -> Vec<i32> {
    let mut out = Vec::with_capacity(n);
    let mut day = start;
    while out.len() < n {
        if weekday(day) < 5 && !is_holiday(day) {
            out.push(day);
        }
        day += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_242_days_a_year() {
        let start = ymd_to_days(2016, 1, 1);
        let days = trading_days(start, 2000);
        let in_2017 = days.iter().filter(|d| days_to_ymd(**d).0 == 2017).count();
        assert!((235..=250).contains(&in_2017), "{in_2017}");
        assert!(!days.contains(&ymd_to_days(2017, 10, 2)));
        assert!(!days.contains(&ymd_to_days(2017, 1, 30)));
        assert!(days.windows(2).all(|w| w[0] < w[1]));
    }
}
