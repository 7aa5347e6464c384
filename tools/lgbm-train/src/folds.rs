//! The rolling fold scheme, out of selection.
//!
//! ```text
//!  dates ──────────────────────────────────────────────────────────────────────────▶
//!  library:  [ train ···· factors scored ···· ][ valid ·· admitted ·· ]│ out of selection
//!  fold 0:        [ train: T ][gap h][ valid: V ][gap h]│[ test: E ]
//!  fold 1:        ·· step ··▶[ train: T ][gap h][ valid: V ][gap h][ test: E ]
//!  fold 2:                     ········ ··▶[ train ][gap][ valid ][gap][ test (≤ E) ]
//! ```
//!
//! The library's factors were chosen on its train and valid splits, so a prediction on
//! those dates would be in-sample with respect to selection however the model was fit.
//! Test windows therefore start at the first out-of-selection date (the end of the
//! selection splits plus the horizon gap) and tile to the panel's end, the last one
//! possibly shorter; each fold trains and early-stops on the dates just before its test
//! window (those may be selection dates: they are the model's training data). The label
//! of date t is the return from t to t + h, so each gap is h dates: no label a model
//! learns from or early-stops on overlaps a date it is later scored on.

use std::ops::Range;

use anyhow::{Result, bail};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fold {
    pub index: usize,
    pub train: Range<usize>,
    pub valid: Range<usize>,
    pub test: Range<usize>,
}

/// Fold window lengths in dates; `None` scales with the panel ([`Windows::resolve`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Windows {
    pub train: Option<usize>,
    pub valid: Option<usize>,
    pub test: Option<usize>,
    pub step: Option<usize>,
}

/// Resolved window lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Resolved {
    pub train: usize,
    pub valid: usize,
    pub test: usize,
    pub step: usize,
    pub gap: usize,
}

/// Longest default windows (a quant's usual 3 years train, half a year valid and test).
const TRAIN: usize = 750;
const VALID: usize = 125;
const TEST: usize = 125;

impl Windows {
    /// Defaults for a panel whose first out-of-selection date is `first_test` of
    /// `n_dates`: valid ≤ 125 and a sixth of the dates before the test, train ≤ 750 and
    /// the rest, test ≤ 125 and half the out-of-selection dates (so there are at least two
    /// folds where the panel allows), step = test (windows tile).
    pub fn resolve(self, n_dates: usize, first_test: usize, gap: usize) -> Resolved {
        let before = first_test.saturating_sub(2 * gap);
        let valid = self.valid.unwrap_or_else(|| VALID.min(before / 6).max(1));
        let train = self
            .train
            .unwrap_or_else(|| TRAIN.min(before.saturating_sub(valid)).max(1));
        let oos = n_dates.saturating_sub(first_test);
        let test = self
            .test
            .unwrap_or_else(|| TEST.min(oos.div_ceil(2)).max(1));
        let step = self.step.unwrap_or(test);
        Resolved {
            train,
            valid,
            test,
            step,
            gap,
        }
    }
}

/// Folds whose test windows tile `first_test..n_dates`.
pub fn folds(n_dates: usize, first_test: usize, w: Resolved) -> Result<Vec<Fold>> {
    let (train, valid, test, step, gap) = (w.train, w.valid, w.test, w.step, w.gap);
    if train == 0 || valid == 0 || test == 0 || step == 0 {
        bail!("--train-days, --valid-days, --test-days and --step must all be at least 1");
    }
    if first_test >= n_dates {
        bail!(
            "no out-of-selection dates: the library's factors were selected on dates up to the \
             panel's end (its splits leave no test dates after train + valid + the {gap}-day \
             horizon); score them with a test split (fitness's default 60/20/20) to have dates \
             the model can be judged on"
        );
    }
    let need = train + gap + valid + gap;
    if first_test < need {
        bail!(
            "the first out-of-selection date is {first_test}, but one fold needs {train} train + \
             {gap} gap + {valid} valid + {gap} gap = {need} dates before its test window: \
             shorten --train-days / --valid-days"
        );
    }
    let mut out = Vec::new();
    let mut t0 = first_test;
    while t0 < n_dates {
        let v0 = t0 - gap - valid;
        let a = v0 - gap - train;
        out.push(Fold {
            index: out.len(),
            train: a..a + train,
            valid: v0..v0 + valid,
            test: t0..(t0 + test).min(n_dates),
        });
        t0 += step;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Explicit windows (the panel's size then plays no part).
    fn w(train: usize, valid: usize, test: usize, step: usize, gap: usize) -> Resolved {
        let r = Windows {
            train: Some(train),
            valid: Some(valid),
            test: Some(test),
            step: Some(step),
        }
        .resolve(0, 0, gap);
        assert_eq!(
            (r.train, r.valid, r.test, r.step, r.gap),
            (train, valid, test, step, gap)
        );
        r
    }

    #[test]
    fn test_windows_start_out_of_selection_and_tile() {
        // 1500 dates, selection (train + valid) ends at 1200, horizon 5.
        let f = folds(1500, 1205, w(750, 125, 125, 125, 5)).unwrap();
        assert_eq!(f.len(), 3); // 1205..1330, 1330..1455, 1455..1500
        assert_eq!(f[0].test, 1205..1330);
        assert_eq!(f[2].test, 1455..1500);
        for x in &f {
            assert!(x.test.start >= 1205);
            assert!(x.train.end + 5 <= x.valid.start && x.valid.end + 5 <= x.test.start);
            assert_eq!((x.train.len(), x.valid.len()), (750, 125));
        }
        for p in f.windows(2) {
            assert_eq!(p[0].test.end, p[1].test.start, "test windows tile");
        }
        let e = folds(1500, 800, w(750, 125, 125, 125, 5)).unwrap_err();
        assert!(e.to_string().contains("shorten"), "{e}");
        let e = folds(1500, 1500, w(750, 125, 125, 125, 5)).unwrap_err();
        assert!(e.to_string().contains("no out-of-selection"), "{e}");
        assert!(folds(1500, 1205, w(0, 125, 125, 125, 5)).is_err());
    }

    #[test]
    fn defaults_scale_with_the_panel() {
        // make mine: 1500 dates, selection ends at 1200, h = 1.
        let r = Windows::default().resolve(1500, 1201, 1);
        assert_eq!((r.train, r.valid, r.test, r.step), (750, 125, 125, 125));
        // make mine DAYS=500: selection ends at 400.
        let r = Windows::default().resolve(500, 401, 1);
        assert_eq!((r.valid, r.train, r.test), (66, 333, 50));
        let f = folds(500, 401, r).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].train.start, 0);
        // A user's explicit window wins.
        let r = Windows {
            test: Some(20),
            ..Default::default()
        }
        .resolve(500, 401, 1);
        assert_eq!((r.test, r.step), (20, 20));
    }
}
