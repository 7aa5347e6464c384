//! `lgbm-train`: combine a library's factors with LightGBM, the way quants run Qlib's
//! Alpha158 + LightGBM baseline, but honestly out of sample: rolling folds (train,
//! early-stop on the next window, predict the one after, step forward; see `folds`),
//! features read from the library snapshot (never re-evaluated), every fold's model,
//! importances and RankICs, the stitched out-of-sample predictions, and the two
//! baselines a model must beat (the best single factor, an equal-weight blend).

mod features;
mod folds;
mod model;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use af_fitness::prep::Winsor;
use af_fitness::processing::{Neutralize, Processing};
use af_fitness::{Context, Workspace};
use af_library::Library;
use af_panel::{Panel, columns};
use af_store::{AtomicDir, OutputLock, sha256_file, write_atomic_bytes};
use af_table::{Table, write_parquet};
use anyhow::{Context as _, Result, anyhow, bail};
use clap::Parser;
use serde::{Deserialize, Serialize};
use serde_json::json;

use af_fitness::stats::mean_rank_ic;
use features::{Norm, normalize};
use folds::Fold;
use model::Params;

const EXAMPLES: &str = "\
Examples:
  lgbm-train --library out/libraries/current.parquet --panel data/panel/csi500.arrow \\
             --horizon 1 --seed 1 --out out/models/csi500/
  lgbm-train --library L --panel P --horizon 5 --train-days 500 --valid-days 100 \\
             --test-days 100 --step 100 --neutralize-features --params params.yaml --out out/models/h5/

Writes predictions.parquet (date, code, prediction, fold), summary.json, and per fold
fold-NN/model.txt (LightGBM text format: lightgbm.Booster(model_file=...) loads it),
fold-NN/importance.csv and fold-NN/fold.json. See docs/model.md.";

#[derive(Parser, Debug)]
#[command(name = "lgbm-train", version, about, after_help = EXAMPLES)]
struct Cli {
    /// Library snapshot (library-merge); its stored values are the features.
    #[arg(long)]
    library: PathBuf,
    #[arg(long)]
    panel: PathBuf,
    /// Label: the cross-sectional rank of fwd_ret_<horizon>. Default: the library's
    /// horizon (another one is refused: the factors were selected for that label).
    #[arg(long)]
    horizon: Option<usize>,
    /// Fold windows in dates. Defaults scale with the panel: train ≤ 750, valid ≤ 125
    /// (a sixth of the dates before the first test date), test ≤ 125 (half the
    /// out-of-selection dates).
    #[arg(long)]
    train_days: Option<usize>,
    #[arg(long)]
    valid_days: Option<usize>,
    #[arg(long)]
    test_days: Option<usize>,
    /// Dates between fold starts (default = --test-days: test windows tile the sample).
    #[arg(long)]
    step: Option<usize>,
    /// Per-date feature normalisation.
    #[arg(long, value_enum, default_value = "rank")]
    normalize: Norm,
    /// Also residualise each normalised feature on industry + log(cap) per date.
    #[arg(long)]
    neutralize_features: bool,
    /// Residualise the stitched prediction on industry + log(cap) per date
    /// (`prediction`; the model's own output stays in `prediction_raw`).
    #[arg(long)]
    neutralize_prediction: bool,
    /// YAML mapping of LightGBM parameters (override the defaults; `num_iterations`
    /// and `early_stopping_round` set the boosting rounds and the patience).
    #[arg(long)]
    params: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write fold K's matrices (train/valid/test Parquet) into fold-K/data/, for
    /// checking against Python LightGBM.
    #[arg(long)]
    dump_fold: Option<usize>,
    #[arg(long)]
    out: PathBuf,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => format!("{f:?}"),
            Scalar::Str(s) => s.clone(),
        }
    }
}

/// LightGBM parameters, the boosting rounds and the early-stopping patience.
fn lgbm_params(cli: &Cli) -> Result<(Params, usize, usize)> {
    let mut p: Params = [
        ("objective", "regression"),
        ("metric", "l2"),
        ("learning_rate", "0.05"),
        ("num_leaves", "31"),
        ("min_data_in_leaf", "200"),
        ("feature_fraction", "0.8"),
        ("bagging_fraction", "0.8"),
        ("bagging_freq", "1"),
        ("lambda_l2", "1.0"),
        ("deterministic", "true"),
        ("force_row_wise", "true"),
        ("num_threads", "1"),
        ("verbosity", "-1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    p.insert("seed".into(), cli.seed.to_string());
    let (mut rounds, mut patience) = (500usize, 50usize);
    if let Some(f) = &cli.params {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read --params {}", f.display()))?;
        let m: BTreeMap<String, Scalar> = serde_saphyr::from_str(&text).map_err(|e| {
            anyhow!(
                "--params {}: expected a mapping of LightGBM parameters: {e}",
                f.display()
            )
        })?;
        for (k, v) in m {
            let as_count = |what: &str| -> Result<usize> {
                v.text()
                    .parse()
                    .map_err(|_| anyhow!("--params {}: {what} must be a whole number", f.display()))
            };
            match k.as_str() {
                "num_iterations" | "num_boost_round" | "n_estimators" => rounds = as_count(&k)?,
                "early_stopping_round" | "early_stopping_rounds" => patience = as_count(&k)?,
                "metric" if v.text().contains(',') => {
                    bail!(
                        "--params {}: one metric only (early stopping reads the first)",
                        f.display()
                    )
                }
                _ => {
                    p.insert(k, v.text());
                }
            }
        }
    }
    if rounds == 0 || patience == 0 {
        bail!("num_iterations and early_stopping_round must be at least 1");
    }
    Ok((p, rounds, patience))
}

/// Row indices (t·na + a) of `dates` that are in the universe, have a label when
/// `need_label`, and at least one finite feature.
fn rows(
    dates: std::ops::Range<usize>,
    na: usize,
    universe: &[bool],
    label: &[f64],
    feats: &[Vec<f64>],
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

fn matrix(rows: &[usize], feats: &[&Vec<f64>]) -> Vec<f64> {
    let mut x = Vec::with_capacity(rows.len() * feats.len());
    for &i in rows {
        x.extend(feats.iter().map(|f| f[i]));
    }
    x
}

/// Six decimals, NaN as null (JSON has no NaN).
fn round6(x: f64) -> Option<f64> {
    x.is_finite().then(|| (x * 1e6).round() / 1e6)
}

struct Inputs<'a> {
    panel: &'a Panel,
    lib: &'a Library,
    universe: &'a [bool],
    fwd: &'a [f64],
    label: &'a [f64],
    feats: Vec<Vec<f64>>,
    names: Vec<String>,
}

/// The two baselines' stitched values, filled fold by fold on its test dates.
struct Stitched {
    model: Vec<f64>,
    fold: Vec<i64>,
    best_single: Vec<f64>,
    equal_weight: Vec<f64>,
}

/// `[first, last]` dates of a window.
type Span = [String; 2];

#[derive(Serialize)]
struct ByWindow<T> {
    train: T,
    valid: T,
    test: T,
}

#[derive(Serialize)]
struct Dropped {
    id: String,
    expression: String,
    why: &'static str,
}

#[derive(Serialize)]
struct BestSingle {
    id: String,
    expression: String,
    train_rank_ic: Option<f64>,
    test_rank_ic: Option<f64>,
}

#[derive(Serialize)]
struct EqualWeight {
    test_rank_ic: Option<f64>,
}

#[derive(Serialize)]
struct Baselines {
    best_single: Option<BestSingle>,
    equal_weight: EqualWeight,
}

/// One fold's results (fold-NN/fold.json and an entry of summary.json).
#[derive(Serialize)]
struct FoldReport {
    fold: usize,
    dates: ByWindow<Span>,
    date_index: ByWindow<[usize; 2]>,
    rows: ByWindow<usize>,
    features: Vec<String>,
    dropped_features: Vec<Dropped>,
    lightgbm_params: Params,
    best_iteration: i32,
    iterations_run: i32,
    valid_l2: Vec<Option<f64>>,
    rank_ic: ByWindow<Option<f64>>,
    baselines: Baselines,
}

/// The headline: RankIC of the stitched predictions on the out-of-selection dates.
#[derive(Serialize)]
struct Headline {
    model: Option<f64>,
    best_single_factor: Option<f64>,
    equal_weight: Option<f64>,
}

#[derive(Serialize)]
struct OutOfSelection {
    /// Last date of the library's selection splits (train + valid).
    selection_last: String,
    first: String,
    last: String,
    /// Dates from `first` to `last` (the last `horizon` have no label and no RankIC).
    dates: usize,
    /// Dates with a RankIC (a realised label and enough assets).
    scored_dates: usize,
}

fn run(cli: Cli) -> Result<()> {
    let t0 = Instant::now();
    let panel = Panel::open(&cli.panel)?;
    let lib = Library::open(&cli.library, &panel)?;
    if lib.is_empty() {
        bail!(
            "library {} has no factors: nothing to train on (mine more, or lower the admission bar)",
            cli.library.display()
        );
    }
    let processing = &lib.meta.processing;
    let source = format!("library {}", cli.library.display());
    let horizon = Processing::agree("horizon", cli.horizon, processing.horizon, &source)?;
    let (nd, na) = (panel.n_dates(), panel.n_assets());
    let lname = columns::label(horizon);
    if !panel.has_field(&lname) {
        bail!(
            "panel {} has no label {lname}: rebuild it with panel-build --horizons including {horizon}",
            cli.panel.display(),
        );
    }
    let fwd = panel.field(&lname)?.data;
    let universe = panel
        .mask(columns::UNIVERSE)
        .unwrap_or_else(|_| vec![true; nd * na]);
    let label = normalize(fwd, &universe, na, Norm::Rank);
    let (params, rounds, patience) = lgbm_params(&cli)?;
    // The first date whose prediction may count: after the dates the library's factors
    // were selected on, plus the horizon (folds.rs).
    let selection_end = processing
        .selection_end(panel.dates())
        .with_context(|| source.clone())?;
    let first_test = selection_end + horizon;
    let windows = folds::Windows {
        train: cli.train_days,
        valid: cli.valid_days,
        test: cli.test_days,
        step: cli.step,
    }
    .resolve(nd, first_test, horizon);
    let fold_list = folds::folds(nd, first_test, windows).with_context(|| source.clone())?;
    if let Some(k) = cli.dump_fold {
        if k >= fold_list.len() {
            bail!("--dump-fold {k}: there are {} folds", fold_list.len());
        }
    }
    let all: Vec<usize> = (0..nd).collect();
    // Neutralization only (no winsor): the library's own min_assets and ridge.
    let neutral = Processing {
        horizon,
        winsor: Winsor::None,
        neutralize: Neutralize::IndustrySize,
        ..processing.clone()
    };
    let ctx = if cli.neutralize_features || cli.neutralize_prediction {
        Some(Context::new(&panel, neutral.config(false), &all)?)
    } else {
        None
    };
    let mut ws = Workspace::default();
    let mut feats = Vec::with_capacity(lib.len());
    for i in 0..lib.len() {
        let mut f = normalize(lib.values(i)?, &universe, na, cli.normalize);
        if let (true, Some(c)) = (cli.neutralize_features, &ctx) {
            f = c.processed(&f, &mut ws);
        }
        feats.push(f);
    }
    let names: Vec<String> = lib
        .ids
        .iter()
        .enumerate()
        .map(|(k, id)| format!("f{k:02}_{}", &id[..12.min(id.len())]))
        .collect();
    let inp = Inputs {
        panel: &panel,
        lib: &lib,
        universe: &universe,
        fwd,
        label: &label,
        feats,
        names,
    };

    let _lock = OutputLock::acquire(&cli.out)?;
    let stage = AtomicDir::new(&cli.out)?;
    let mut st = Stitched {
        model: vec![f64::NAN; nd * na],
        fold: vec![-1i64; nd * na],
        best_single: vec![f64::NAN; nd * na],
        equal_weight: vec![f64::NAN; nd * na],
    };
    let mut reports = Vec::new();
    for f in &fold_list {
        let tf = Instant::now();
        let j = train_fold(&cli, &inp, f, &params, rounds, patience, &stage, &mut st)?;
        let show = |x: Option<f64>| x.unwrap_or(f64::NAN);
        eprintln!(
            "fold {}: test {}..{}: best iteration {}, RankIC train {:.4} valid {:.4} test {:.4} (best single factor {:.4}, equal weight {:.4}) in {:.1} s",
            f.index,
            j.dates.test[0],
            j.dates.test[1],
            j.best_iteration,
            show(j.rank_ic.train),
            show(j.rank_ic.valid),
            show(j.rank_ic.test),
            show(
                j.baselines
                    .best_single
                    .as_ref()
                    .and_then(|b| b.test_rank_ic)
            ),
            show(j.baselines.equal_weight.test_rank_ic),
            tf.elapsed().as_secs_f64()
        );
        reports.push(j);
    }

    let raw = st.model.clone();
    let mut pred = st.model;
    if let (true, Some(c)) = (cli.neutralize_prediction, &ctx) {
        pred = c.processed(&pred, &mut ws);
    }
    let oos = first_test..nd;
    let stitched = |x: &[f64]| mean_rank_ic(x, fwd, &universe, na, oos.clone());
    let (model_ric, used) = stitched(&pred);
    let headline = Headline {
        model: round6(model_ric),
        best_single_factor: round6(stitched(&st.best_single).0),
        equal_weight: round6(stitched(&st.equal_weight).0),
    };
    let day = |t: usize| af_panel::dates::format_date(panel.dates()[t]);
    let out_of_selection = OutOfSelection {
        selection_last: day(selection_end - 1),
        first: day(first_test),
        last: day(nd - 1),
        dates: nd - first_test,
        scored_dates: used,
    };
    let keep: Vec<usize> = (0..nd * na).filter(|&i| pred[i].is_finite()).collect();
    let mut t = Table::new()
        .date(
            "date",
            keep.iter().map(|&i| panel.dates()[i / na]).collect(),
        )
        .str("code", keep.iter().map(|&i| panel.codes()[i % na].as_str()))
        .f64("prediction", keep.iter().map(|&i| pred[i]).collect())
        .i64("fold", keep.iter().map(|&i| st.fold[i]).collect());
    if cli.neutralize_prediction {
        t = t.f64("prediction_raw", keep.iter().map(|&i| raw[i]).collect());
    }
    let norm_name = format!("{:?}", cli.normalize).to_lowercase();
    let prov = af_store::Provenance::new("lgbm-train", env!("CARGO_PKG_VERSION"))
        .input_hash("panel", panel.content_hash())
        .input_file("library", &cli.library)?
        .param("horizon", horizon)
        .param("seed", cli.seed)
        .param("windows", json!(windows))
        .param("normalize", norm_name.clone())
        .param("neutralize_features", cli.neutralize_features)
        .param("neutralize_prediction", cli.neutralize_prediction)
        .param("lightgbm", json!(params))
        .param("rounds", rounds)
        .param("early_stopping_round", patience);
    write_parquet(&stage.path("predictions.parquet"), t, &prov)?;
    let mean = |get: &dyn Fn(&FoldReport) -> Option<f64>| -> f64 {
        let v: Vec<f64> = reports.iter().filter_map(get).collect();
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let fold_means = Headline {
        model: round6(mean(&|j| j.rank_ic.test)),
        best_single_factor: round6(mean(&|j| {
            j.baselines
                .best_single
                .as_ref()
                .and_then(|b| b.test_rank_ic)
        })),
        equal_weight: round6(mean(&|j| j.baselines.equal_weight.test_rank_ic)),
    };
    let summary = json!({
        "tool": {"name": "lgbm-train", "version": env!("CARGO_PKG_VERSION")},
        "panel": {"path": cli.panel, "hash": panel.content_hash()},
        "library": {"path": cli.library, "sha256": sha256_file(&cli.library)?, "factors": lib.len()},
        "horizon": horizon,
        "windows": windows,
        "features": {"normalize": norm_name, "neutralized": cli.neutralize_features},
        "label": format!("cross-sectional rank of {lname} (percentile - 0.5)"),
        "prediction_neutralized": cli.neutralize_prediction,
        "lightgbm": {"version": "4.7.0", "params": params, "rounds": rounds, "early_stopping_round": patience},
        "seed": cli.seed,
        "out_of_selection": out_of_selection,
        "test_rank_ic": headline,
        "mean_fold_test_rank_ic": fold_means,
        "folds": reports,
        "predictions": keep.len(),
    });
    let mut s = serde_json::to_string_pretty(&summary)?;
    s.push('\n');
    write_atomic_bytes(&stage.path("summary.json"), s.as_bytes())?;
    stage.commit()?;
    let show = |x: Option<f64>| x.unwrap_or(f64::NAN);
    eprintln!(
        "{} folds; out of selection ({} .. {}, {used} dates): test RankIC {:.4} (best single factor {:.4}, equal weight {:.4}); {:.1} s",
        fold_list.len(),
        out_of_selection.first,
        out_of_selection.last,
        show(headline.model),
        show(headline.best_single_factor),
        show(headline.equal_weight),
        t0.elapsed().as_secs_f64()
    );
    println!("wrote {}", cli.out.display());
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn train_fold(
    cli: &Cli,
    inp: &Inputs,
    f: &Fold,
    params: &Params,
    rounds: usize,
    patience: usize,
    stage: &AtomicDir,
    st: &mut Stitched,
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
            &inp.feats,
            need_label,
        )
    };
    let tr = rows_of(&f.train, true);
    // A feature with no value on the training dates cannot be learned from: dropped for
    // this fold (and said so), not fed as a column of NaN.
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for (k, fv) in inp.feats.iter().enumerate() {
        if tr.iter().any(|&i| fv[i].is_finite()) {
            kept.push(k);
        } else {
            dropped.push(k);
            eprintln!(
                "fold {}: factor {} ({}) is NaN on every training date: dropped for this fold",
                f.index, inp.lib.ids[k], inp.lib.expressions[k]
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
    let fs: Vec<&Vec<f64>> = kept.iter().map(|&k| &inp.feats[k]).collect();
    let names: Vec<String> = kept.iter().map(|&k| inp.names[k].clone()).collect();
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
    eprintln!(
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
            st.best_single[i] = r.signum() * inp.feats[k][i];
        }
    }
    let best_single = best.map(|(k, r)| BestSingle {
        id: inp.lib.ids[k].clone(),
        expression: inp.lib.expressions[k].clone(),
        train_rank_ic: round6(r),
        test_rank_ic: round6(ric(&st.best_single, f.test.clone())),
    });
    let dir = format!("fold-{:02}", f.index);
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
            inp.lib.ids[k],
            inp.lib.expressions[k].replace('"', "\"\""),
            gain[i],
            split[i]
        );
    }
    write_atomic_bytes(&stage.path(format!("{dir}/importance.csv")), csv.as_bytes())?;
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
                id: inp.lib.ids[k].clone(),
                expression: inp.lib.expressions[k].clone(),
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
    };
    let mut s = serde_json::to_string_pretty(&j)?;
    s.push('\n');
    write_atomic_bytes(&stage.path(format!("{dir}/fold.json")), s.as_bytes())?;
    if cli.dump_fold == Some(f.index) {
        for (name, r, x, pr) in [
            ("train", &tr, &xt, &pt),
            ("valid", &va, &xv, &pv),
            ("test", &te, &xe, &pe),
        ] {
            let mut t = Table::new()
                .date("date", r.iter().map(|&i| dates[i / na]).collect())
                .str(
                    "code",
                    r.iter().map(|&i| inp.panel.codes()[i % na].as_str()),
                );
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

fn main() {
    af_store::cli::main_with(|| run(Cli::parse()));
}
