//! The rolling fold scheme.
//!
//! ```text
//!  dates ─────────────────────────────────────────────────────────────────────▶
//!  fold 0: [ train: T ][gap h][ valid: V ][gap h][ test: E ]
//!  fold 1: ·· step ··▶[ train: T ][gap h][ valid: V ][gap h][ test: E ]
//!  fold 2: ········ 2·step ·······▶[ train ][gap][ valid ][gap][ test ]
//! ```
//!
//! The label of date t is the return from t to t + h, so the last h dates before a
//! window would see into it: each gap is h dates, and no label a model learns from or
//! early-stops on overlaps a date it is later scored on. A fold exists only when its
//! whole test window fits; with `step` = E the test windows tile the sample without
//! overlap, so every date is predicted out of sample at most once.

use std::ops::Range;

use anyhow::{Result, bail};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fold {
    pub index: usize,
    pub train: Range<usize>,
    pub valid: Range<usize>,
    pub test: Range<usize>,
}

pub fn folds(
    n_dates: usize,
    train: usize,
    valid: usize,
    test: usize,
    step: usize,
    gap: usize,
) -> Result<Vec<Fold>> {
    if train == 0 || valid == 0 || test == 0 || step == 0 {
        bail!("--train-days, --valid-days, --test-days and --step must all be at least 1");
    }
    let span = train + gap + valid + gap + test;
    if span > n_dates {
        bail!(
            "the panel has {n_dates} dates, fewer than one fold needs: {train} train + {gap} gap + \
             {valid} valid + {gap} gap + {test} test = {span} (the gaps are the label horizon); \
             shorten the windows or use a longer panel"
        );
    }
    let mut out = Vec::new();
    let mut a = 0;
    while a + span <= n_dates {
        let v0 = a + train + gap;
        let t0 = v0 + valid + gap;
        out.push(Fold {
            index: out.len(),
            train: a..a + train,
            valid: v0..v0 + valid,
            test: t0..t0 + test,
        });
        a += step;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_ordered_with_gaps_and_tile() {
        let f = folds(1500, 750, 125, 125, 125, 5).unwrap();
        assert_eq!(f.len(), 4); // 750+5+125+5+125 = 1010; starts 0,125,250,375 (+1010 <= 1500)
        for x in &f {
            assert!(x.train.end + 5 <= x.valid.start && x.valid.end + 5 <= x.test.start);
            assert_eq!(
                (x.train.len(), x.valid.len(), x.test.len()),
                (750, 125, 125)
            );
        }
        for w in f.windows(2) {
            assert_eq!(w[0].test.end, w[1].test.start, "test windows tile");
        }
        assert!(
            folds(1000, 750, 125, 125, 125, 5)
                .unwrap_err()
                .to_string()
                .contains("fewer than one fold")
        );
        assert!(folds(1000, 0, 125, 125, 125, 5).is_err());
    }
}
