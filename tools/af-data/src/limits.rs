//! A-share daily price limits (涨跌停), used to decide whether a bar closed at its
//! up-limit (then it could not be bought, and its label is NaN) and, in the synthetic
//! market, to clip prices.
//!
//! Rules (documented in docs/data_contract.md): ±10% main boards; ±20% ChiNext
//! (`300`/`301`) and STAR (`688`/`689`); ±30% Beijing (`.BJ`); ±5% under ST; on the
//! listing day 44% up / 36% down on main boards and no limit on ChiNext/STAR. Limit
//! prices are `round_half_up(pre_close × (1 ± pct), 2)`. Codes that are not A-share
//! codes (e.g. `AAPL`) have no limits.

/// Round half up to cents, as exchanges compute limit prices. The tiny epsilon absorbs
/// binary representation error (10.05 × 1.1 = 11.055000000000001 or 11.054999…).
#[inline]
pub fn round2(x: f64) -> f64 {
    ((x * 100.0) + 0.5 + 1e-7).floor() / 100.0
}

/// Board of an A-share code, or `None` for codes outside the A-share scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Board {
    Main,
    Growth, // ChiNext 300/301 and STAR 688/689
    Beijing,
}

pub fn board(code: &str) -> Option<Board> {
    let b = code.as_bytes();
    if b.len() != 9 || b[6] != b'.' || !b[..6].iter().all(|c| c.is_ascii_digit()) {
        return None;
    }
    match &code[7..] {
        "SH" | "SZ" => Some(
            if code.starts_with("300")
                || code.starts_with("301")
                || code.starts_with("688")
                || code.starts_with("689")
            {
                Board::Growth
            } else {
                Board::Main
            },
        ),
        "BJ" => Some(Board::Beijing),
        _ => None,
    }
}

/// (up, down) limit fractions for a bar, `None` when the bar has no limit.
pub fn limit_pct(board: Option<Board>, is_st: bool, listing_day: bool) -> Option<(f64, f64)> {
    let b = board?;
    if listing_day {
        return match b {
            Board::Main => Some((0.44, 0.36)),
            _ => None,
        };
    }
    if is_st {
        return Some((0.05, 0.05));
    }
    Some(match b {
        Board::Main => (0.10, 0.10),
        Board::Growth => (0.20, 0.20),
        Board::Beijing => (0.30, 0.30),
    })
}

/// (up, down) limit prices.
pub fn limit_prices(pre_close: f64, pct: (f64, f64)) -> (f64, f64) {
    (
        round2(pre_close * (1.0 + pct.0)),
        round2(pre_close * (1.0 - pct.1)).max(0.01),
    )
}

/// Whether `price` sits at the up-limit (within half a cent).
pub fn at_up_limit(price: f64, pre_close: f64, pct: Option<(f64, f64)>) -> bool {
    match pct {
        Some(p) if pre_close.is_finite() && pre_close > 0.0 && price.is_finite() => {
            price >= limit_prices(pre_close, p).0 - 0.005
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boards_and_prices() {
        assert_eq!(board("600000.SH"), Some(Board::Main));
        assert_eq!(board("300750.SZ"), Some(Board::Growth));
        assert_eq!(board("688981.SH"), Some(Board::Growth));
        assert_eq!(board("830799.BJ"), Some(Board::Beijing));
        assert_eq!(board("AAPL"), None);
        assert_eq!(limit_prices(10.05, (0.1, 0.1)), (11.06, 9.05));
        assert_eq!(limit_prices(9.99, (0.1, 0.1)), (10.99, 8.99));
        assert!(at_up_limit(11.06, 10.05, Some((0.1, 0.1))));
        assert!(!at_up_limit(11.05, 10.05, Some((0.1, 0.1))));
        assert_eq!(limit_pct(Some(Board::Growth), false, true), None);
        assert_eq!(
            limit_pct(Some(Board::Growth), true, false),
            Some((0.05, 0.05))
        );
    }
}
