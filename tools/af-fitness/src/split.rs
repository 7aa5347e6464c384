//! Date splits: `train`, `valid`, `test` as ranges of panel dates, and the dates of
//! each split a metric may use.
//!
//! A label `fwd_ret_h(t)` reads prices up to `t + h`, so the last `h` dates of a split
//! are purged: their labels would reach into the next split (or past the panel). That
//! makes every figure of a split a function of data up to the split's last date only.

use af_panel::dates::{format_date, parse_date};
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// A split as recorded (in a processing record): its name and first and last panel
/// date (inclusive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedSplit {
    pub name: String,
    pub first: String,
    pub last: String,
}

/// A named half-open range of panel date indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub name: String,
    pub start: usize,
    pub end: usize,
}

impl Split {
    /// Dates whose label is fully realised inside the split (the last `h` are purged),
    /// every `step`-th from the split's start.
    pub fn usable(&self, horizon: usize, step: usize) -> Vec<usize> {
        let last = self.end.saturating_sub(horizon);
        (self.start..last).step_by(step.max(1)).collect()
    }
}

/// The default: the panel's dates 60/20/20 in time order.
pub fn default_splits(n_dates: usize) -> Vec<Split> {
    let a = n_dates * 6 / 10;
    let b = n_dates * 8 / 10;
    vec![
        Split {
            name: "train".into(),
            start: 0,
            end: a,
        },
        Split {
            name: "valid".into(),
            start: a,
            end: b,
        },
        Split {
            name: "test".into(),
            start: b,
            end: n_dates,
        },
    ]
}

/// `--split all`: the whole panel as one split.
pub fn all(n_dates: usize) -> Vec<Split> {
    vec![Split {
        name: "all".into(),
        start: 0,
        end: n_dates,
    }]
}

/// Parse `train=2019-01-02..2021-12-31,valid=2022-01-04..,test=2023-01-03..` (dates
/// inclusive; an empty end means the panel's first or last date) against the panel
/// calendar `dates` (days since epoch, ascending).
pub fn parse_splits(spec: &str, dates: &[i32]) -> Result<Vec<Split>> {
    let mut out: Vec<Split> = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, range)) = part.split_once('=') else {
            bail!("split {part:?}: expected NAME=START..END, e.g. train=2019-01-02..2021-12-31");
        };
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("split {part:?}: the name must be letters, digits or _");
        }
        let Some((a, b)) = range.split_once("..") else {
            bail!("split {part:?}: expected START..END (either may be empty)");
        };
        let lo = if a.trim().is_empty() {
            i32::MIN
        } else {
            parse_date(a.trim())?
        };
        let hi = if b.trim().is_empty() {
            i32::MAX
        } else {
            parse_date(b.trim())?
        };
        if lo > hi {
            bail!("split {name}: start {} is after end {}", a.trim(), b.trim());
        }
        let start = dates.partition_point(|d| *d < lo);
        let end = dates.partition_point(|d| *d <= hi);
        if start >= end {
            bail!(
                "split {name} ({}) holds no panel date (the panel runs {}..{})",
                range.trim(),
                dates.first().map(|d| format_date(*d)).unwrap_or_default(),
                dates.last().map(|d| format_date(*d)).unwrap_or_default()
            );
        }
        if out.iter().any(|s| s.name == name) {
            bail!("split {name} given twice");
        }
        if let Some(o) = out.iter().find(|s| s.start < end && start < s.end) {
            bail!(
                "splits {} and {name} overlap: a date may belong to one split only",
                o.name
            );
        }
        out.push(Split {
            name: name.to_string(),
            start,
            end,
        });
    }
    if out.is_empty() {
        bail!("--splits is empty");
    }
    if !out.iter().any(|s| s.name == "train") {
        bail!("--splits needs a split named train (the score is computed on it)");
    }
    Ok(out)
}

/// Recorded splits (dates inclusive) as ranges of `dates` (the panel calendar).
pub fn from_recorded(recorded: &[RecordedSplit], dates: &[i32]) -> Result<Vec<Split>> {
    let mut out = Vec::new();
    for RecordedSplit { name, first, last } in recorded {
        let (a, b) = (parse_date(first)?, parse_date(last)?);
        let start = dates.partition_point(|d| *d < a);
        let end = dates.partition_point(|d| *d <= b);
        if start >= end {
            bail!("recorded split {name} ({first}..{last}) holds no date of this panel");
        }
        out.push(Split {
            name: name.clone(),
            start,
            end,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal() -> Vec<i32> {
        (0..10).map(|i| 19000 + i).collect()
    }

    #[test]
    fn default_is_60_20_20_and_purged() {
        let s = default_splits(10);
        assert_eq!((s[0].start, s[0].end, s[1].end, s[2].end), (0, 6, 8, 10));
        assert_eq!(s[0].usable(2, 1), vec![0, 1, 2, 3]);
        assert_eq!(s[0].usable(1, 2), vec![0, 2, 4]);
    }

    #[test]
    fn parses_ranges_and_rejects_bad_ones() {
        let d = cal();
        let s = parse_splits(
            &format!(
                "train=..{},valid={}..",
                format_date(19005),
                format_date(19006)
            ),
            &d,
        )
        .unwrap();
        assert_eq!((s[0].start, s[0].end, s[1].start, s[1].end), (0, 6, 6, 10));
        assert!(
            parse_splits("valid=..", &d)
                .unwrap_err()
                .to_string()
                .contains("train")
        );
        assert!(
            parse_splits("train=2100-01-01..", &d)
                .unwrap_err()
                .to_string()
                .contains("no panel date")
        );
        let e = parse_splits("train=..,valid=..", &d)
            .unwrap_err()
            .to_string();
        assert!(e.contains("overlap"), "{e}");
        assert!(parse_splits("train", &d).is_err());
    }
}
