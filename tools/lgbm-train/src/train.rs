//! One fold: the rows and matrices LightGBM sees, training with early stopping, the
//! test predictions stitched into the run's, the two baselines chosen on the fold's
//! training dates, and the fold's typed results (fold.json).

use std::time::Instant;

use af_fitness::stats::mean_rank_ic;
use af_panel::Panel;
use af_store::{AtomicDir, write_atomic_bytes};
use af_table::{Table, write_parquet};
use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use crate::folds::Fold;
use crate::model::{self, Params};
use crate::sets::Features;

/// Row indices (t·na + a) of `dates` that are in the universe, have a label when
/// `need_label`, and at least one finite feature.
pub fn rows(
    dates: std::ops::Range<usize>,
    na: usize,
    universe: &[bool],
    label: &[f64],
    feats: &[std::sync::Arc<Vec<f64>>],
    need_label: bool,
) -> Vec<usize> {
    let mut out = Vec::new();
    for t in dates {
        for a in 0..na {
            let i = t * na + a;
            if universe[i]
                && (!need_label || label[i].is_finite())
                && feats.iter().any(|f| f[i].is_finite())
            {
                out.push(i);
            }
        }
    }
    out
}

pub fn matrix(rows: &[usize], feats: &[&Vec<f64>]) -> Vec<f64> {
    let mut x = Vec::with_capacity(rows.len() * feats.len());
    for &i in rows {
        x.extend(feats.iter().map(|f| f[i]));
    }
    x
}

/// Six decimals, NaN as null (JSON has no NaN).
pub fn round6(x: f64) -> Option<f64> {
    x.is_finite().then(|| (x * 1e6).round() / 1e6)
}

pub struct Inputs<'a> {
    pub panel: &'a Panel,
    pub universe: &'a [bool],
    pub fwd: &'a [f64],
    pub label: &'a [f64],
    pub f: &'a Features,
    /// Where this model's files go in the output folder ("" or "compare/NAME/").
    pub prefix: String,
}

/// The two baselines' stitched values, filled fold by fold on its test dates.
pub struct Stitched {
    pub model: Vec<f64>,
    pub fold: Vec<i64>,
    pub best_single: Vec<f64>,
    pub equal_weight: Vec<f64>,
}

/// `[first, last]` dates of a window.
pub type Span = [String; 2];

#[derive(Serialize)]
pub struct ByWindow<T> {
    pub train: T,
    pub valid: T,
    pub test: T,
}

#[derive(Serialize)]
pub struct Dropped {
    pub id: String,
    pub expression: String,
    pub why: &'static str,
}

#[derive(Serialize)]
pub struct BestSingle {
    pub id: String,
    pub expression: String,
    pub train_rank_ic: Option<f64>,
    pub test_rank_ic: Option<f64>,
}

#[derive(Serialize)]
pub struct EqualWeight {
    pub test_rank_ic: Option<f64>,
}

#[derive(Serialize)]
pub struct Baselines {
    pub best_single: Option<BestSingle>,
    pub equal_weight: EqualWeight,
}

/// One fold's results (fold-NN/fold.json and an entry of summary.json).
#[derive(Serialize)]
pub struct FoldReport {
    pub fold: usize,
    pub dates: ByWindow<Span>,
    pub date_index: ByWindow<[usize; 2]>,
    pub rows: ByWindow<usize>,
    pub features: Vec<String>,
    pub dropped_features: Vec<Dropped>,
    pub lightgbm_params: Params,
    pub best_iteration: i32,
    pub iterations_run: i32,
    valid_l2: Vec<Option<f64>>,
    pub rank_ic: ByWindow<Option<f64>>,
    pub baselines: Baselines,
    /// Share of the fold model's total gain from mined (library) features; null when
    /// the model has only one kind.
    pub mined_gain_share: Option<f64>,
}

/// The headline: RankIC of the stitched predictions on the out-of-selection dates.
#[derive(Serialize)]
pub struct Headline {
    pub model: Option<f64>,
    pub best_single_factor: Option<f64>,
    pub equal_weight: Option<f64>,
}

#[derive(Serialize)]
pub struct OutOfSelection {
    /// Last date of the library's selection splits (train + valid).
    pub selection_last: String,
    pub first: String,
    pub last: String,
    /// Dates from `first` to `last` (the last `horizon` have no label and no RankIC).
    pub dates: usize,
    /// Dates with a RankIC (a realised label and enough assets).
    pub scored_dates: usize,
}

#[allow(clippy::too_many_arguments)]
pub fn train_fold(
    inp: &Inputs,
    f: &Fold,
    params: &Params,
    rounds: usize,
    patience: usize,
    stage: &AtomicDir,
    st: &mut Stitched,
    dump: bool,
) -> Result<FoldReport> {
    let na = inp.panel.n_assets();
    let dates = inp.panel.dates();
    let day = |t: usize| af_panel::dates::format_date(dates[t]);
    let rows_of = |d: &std::ops::Range<usize>, need_label: bool| {
        rows(
            d.clone(),
            na,
            inp.universe,
            inp.label,
            &inp.f.values,
            need_label,
        )
    };
    let tr = rows_of(&f.train, true);
    // A feature with no value on the training dates cannot be learned from: dropped for
    // this fold (and said so), not fed as a column of NaN.
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for (k, fv) in inp.f.values.iter().enumerate() {
        if tr.iter().any(|&i| fv[i].is_finite()) {
            kept.push(k);
        } else {
            dropped.push(k);
            tracing::info!(
                "fold {}: factor {} ({}) is NaN on every training date: dropped for this fold",
                f.index,
                inp.f.ids[k],
                inp.f.expressions[k]
            );
        }
    }
    if kept.is_empty() {
        bail!(
            "fold {}: every factor is NaN on the training dates {}..{}",
            f.index,
            day(f.train.start),
            day(f.train.end - 1)
        );
    }
    let fs: Vec<&Vec<f64>> = kept.iter().map(|&k| &*inp.f.values[k]).collect();
    let names: Vec<String> = kept.iter().map(|&k| inp.f.names[k].clone()).collect();
    let (va, te) = (rows_of(&f.valid, true), rows_of(&f.test, false));
    if tr.is_empty() || va.is_empty() || te.is_empty() {
        bail!(
            "fold {}: no usable rows (train {}, valid {}, test {}): the universe is empty or the label missing there",
            f.index,
            tr.len(),
            va.len(),
            te.len()
        );
    }
    let y = |r: &[usize]| -> Vec<f32> { r.iter().map(|&i| inp.label[i] as f32).collect() };
    let (xt, xv, xe) = (matrix(&tr, &fs), matrix(&va, &fs), matrix(&te, &fs));
    let (yt, yv) = (y(&tr), y(&va));
    let t = Instant::now();
    let m = model::train(params, &names, &xt, &yt, &xv, &yv, rounds, patience)
        .with_context(|| format!("fold {}", f.index))?;
    // Timings go to stderr only: artifacts are byte-identical for the same inputs.
    tracing::info!(
        "fold {}: LightGBM trained in {:.1} s",
        f.index,
        t.elapsed().as_secs_f64()
    );
    let (pt, pv, pe) = (m.predict(&xt)?, m.predict(&xv)?, m.predict(&xe)?);
    let nd = inp.panel.n_dates();
    let mut p = vec![f64::NAN; nd * na];
    for (r, v) in [(&tr, &pt), (&va, &pv), (&te, &pe)] {
        for (&i, &x) in r.iter().zip(v.iter()) {
            p[i] = x;
        }
    }
    for (&i, &x) in te.iter().zip(&pe) {
        st.model[i] = x;
        st.fold[i] = f.index as i64;
    }
    let ric =
        |x: &[f64], d: std::ops::Range<usize>| mean_rank_ic(x, inp.fwd, inp.universe, na, d).0;
    // Baselines, chosen on the training dates only: the single factor with the best
    // |RankIC| (used with its train sign) and the equal-weight blend of all factors,
    // each signed by its train RankIC.
    let mut best: Option<(usize, f64)> = None;
    let mut signs = Vec::new();
    for (&k, fv) in kept.iter().zip(&fs) {
        let r = ric(fv, f.train.clone());
        signs.push(if r.is_finite() { r.signum() } else { 0.0 });
        if r.is_finite() && best.is_none_or(|(_, b)| r.abs() > b.abs()) {
            best = Some((k, r));
        }
    }
    let test_cells = f.test.start * na..f.test.end * na;
    for i in test_cells.clone() {
        let (mut s, mut c) = (0.0, 0usize);
        for (fv, sg) in fs.iter().zip(&signs) {
            if fv[i].is_finite() && *sg != 0.0 {
                s += sg * fv[i];
                c += 1;
            }
        }
        if c > 0 {
            st.equal_weight[i] = s / c as f64;
        }
    }
    if let Some((k, r)) = best {
        for i in test_cells {
            st.best_single[i] = r.signum() * inp.f.values[k][i];
        }
    }
    let best_single = best.map(|(k, r)| BestSingle {
        id: inp.f.ids[k].clone(),
        expression: inp.f.expressions[k].clone(),
        train_rank_ic: round6(r),
        test_rank_ic: round6(ric(&st.best_single, f.test.clone())),
    });
    let dir = format!("{}fold-{:02}", inp.prefix, f.index);
    let text = m.to_text()?;
    write_atomic_bytes(&stage.path(format!("{dir}/model.txt")), text.as_bytes())?;
    let (gain, split) = m.importance()?;
    let mut csv = String::from("feature,id,expression,gain,split\n");
    let mut order: Vec<usize> = (0..kept.len()).collect();
    order.sort_by(|&a, &b| gain[b].total_cmp(&gain[a]).then(a.cmp(&b)));
    for i in order {
        let k = kept[i];
        csv += &format!(
            "{},{},\"{}\",{},{}\n",
            names[i],
            inp.f.ids[k],
            inp.f.expressions[k].replace('"', "\"\""),
            gain[i],
            split[i]
        );
    }
    write_atomic_bytes(&stage.path(format!("{dir}/importance.csv")), csv.as_bytes())?;
    let total: f64 = gain.iter().sum();
    let mined: f64 = kept
        .iter()
        .zip(&gain)
        .filter(|(k, _)| inp.f.mined[**k])
        .map(|(_, g)| g)
        .sum();
    let both = kept.iter().any(|&k| inp.f.mined[k]) && kept.iter().any(|&k| !inp.f.mined[k]);
    let mined_gain_share = (both && total > 0.0).then(|| mined / total);
    let span = |r: &std::ops::Range<usize>| [day(r.start), day(r.end - 1)];
    let j = FoldReport {
        fold: f.index,
        dates: ByWindow {
            train: span(&f.train),
            valid: span(&f.valid),
            test: span(&f.test),
        },
        date_index: ByWindow {
            train: [f.train.start, f.train.end],
            valid: [f.valid.start, f.valid.end],
            test: [f.test.start, f.test.end],
        },
        rows: ByWindow {
            train: tr.len(),
            valid: va.len(),
            test: te.len(),
        },
        features: names.clone(),
        dropped_features: dropped
            .iter()
            .map(|&k| Dropped {
                id: inp.f.ids[k].clone(),
                expression: inp.f.expressions[k].clone(),
                why: "NaN on every training date",
            })
            .collect(),
        lightgbm_params: params.clone(),
        best_iteration: m.best_iteration,
        iterations_run: m.iterations_run,
        valid_l2: m.valid_curve.iter().map(|x| round6(*x)).collect(),
        rank_ic: ByWindow {
            train: round6(ric(&p, f.train.clone())),
            valid: round6(ric(&p, f.valid.clone())),
            test: round6(ric(&p, f.test.clone())),
        },
        baselines: Baselines {
            best_single,
            equal_weight: EqualWeight {
                test_rank_ic: round6(ric(&st.equal_weight, f.test.clone())),
            },
        },
        mined_gain_share: mined_gain_share.and_then(round6),
    };
    let mut s = serde_json::to_string_pretty(&j)?;
    s.push('\n');
    write_atomic_bytes(&stage.path(format!("{dir}/fold.json")), s.as_bytes())?;
    if dump {
        for (name, r, x, pr) in [
            ("train", &tr, &xt, &pt),
            ("valid", &va, &xv, &pv),
            ("test", &te, &xe, &pe),
        ] {
            let mut t = Table::cells(dates, inp.panel.codes(), r);
            for (c, n) in names.iter().enumerate() {
                t = t.f64(n, x.iter().skip(c).step_by(names.len()).copied().collect());
            }
            t = t
                .f64(
                    "label",
                    r.iter().map(|&i| inp.label[i] as f32 as f64).collect(),
                )
                .f64("prediction", pr.clone());
            write_parquet(
                &stage.path(format!("{dir}/data/{name}.parquet")),
                t,
                &af_store::Provenance::new("lgbm-train", env!("CARGO_PKG_VERSION")),
            )?;
        }
    }
    Ok(j)
}
