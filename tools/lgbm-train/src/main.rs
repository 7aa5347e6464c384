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
use af_fitness::{Config, Context, Workspace};
use af_library::Library;
use af_panel::Panel;
use af_store::{AtomicDir, OutputLock, sha256_file, write_atomic_bytes};
use af_table::{Table, write_parquet};
use anyhow::{Context as _, Result, anyhow, bail};
use clap::Parser;
use serde::Deserialize;
use serde_json::{Value, json};

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
    /// Label: the cross-sectional rank of fwd_ret_<horizon>.
    #[arg(long)]
    horizon: usize,
    #[arg(long, default_value_t = 750)]
    train_days: usize,
    #[arg(long, default_value_t = 125)]
    valid_days: usize,
    #[arg(long, default_value_t = 125)]
    test_days: usize,
    /// Dates between fold starts (= --test-days: test windows tile the sample).
    #[arg(long, default_value_t = 125)]
    step: usize,
    /// Per-date feature normalisation: rank (percentile − 0.5) or zscore.
    #[arg(long, default_value = "rank", value_parser = ["rank", "zscore"])]
    normalize: String,
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

fn round6(x: f64) -> Value {
    if x.is_finite() {
        json!((x * 1e6).round() / 1e6)
    } else {
        Value::Null
    }
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
    let (nd, na) = (panel.n_dates(), panel.n_assets());
    let lname = format!("fwd_ret_{}", cli.horizon);
    if !panel.has_field(&lname) {
        bail!(
            "panel {} has no label {lname}: rebuild it with panel-build --horizons including {}",
            cli.panel.display(),
            cli.horizon
        );
    }
    let fwd = panel.field(&lname)?.data;
    let universe = panel
        .mask("in_universe")
        .unwrap_or_else(|_| vec![true; nd * na]);
    let label = normalize(fwd, &universe, na, Norm::Rank);
    let norm = if cli.normalize == "zscore" {
        Norm::ZScore
    } else {
        Norm::Rank
    };
    let (params, rounds, patience) = lgbm_params(&cli)?;
    let fold_list = folds::folds(
        nd,
        cli.train_days,
        cli.valid_days,
        cli.test_days,
        cli.step,
        cli.horizon,
    )?;
    if let Some(k) = cli.dump_fold {
        if k >= fold_list.len() {
            bail!("--dump-fold {k}: there are {} folds", fold_list.len());
        }
    }
    let all: Vec<usize> = (0..nd).collect();
    let neutral_ctx = || -> Result<Context> {
        Context::new(
            &panel,
            Config {
                horizon: cli.horizon,
                winsor: Winsor::parse("none")?,
                industry: true,
                size: true,
                min_assets: 30,
                ridge: 1e-6,
                turnover: false,
            },
            &all,
        )
    };
    let ctx = if cli.neutralize_features || cli.neutralize_prediction {
        Some(neutral_ctx()?)
    } else {
        None
    };
    let mut ws = Workspace::default();
    let mut feats = Vec::with_capacity(lib.len());
    for i in 0..lib.len() {
        let mut f = normalize(lib.values(i)?, &universe, na, norm);
        if cli.neutralize_features {
            f = ctx.as_ref().expect("made above").processed(&f, &mut ws);
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
    let mut pred = vec![f64::NAN; nd * na];
    let mut pred_fold = vec![-1i64; nd * na];
    let mut fold_json = Vec::new();
    for f in &fold_list {
        let tf = Instant::now();
        let j = train_fold(
            &cli,
            &inp,
            f,
            &params,
            rounds,
            patience,
            &stage,
            &mut pred,
            &mut pred_fold,
        )?;
        eprintln!(
            "fold {}: test {}..{}: best iteration {}, RankIC train {:.4} valid {:.4} test {:.4} (best single factor {:.4}, equal weight {:.4}) in {:.1} s",
            f.index,
            j["dates"]["test"][0].as_str().unwrap_or(""),
            j["dates"]["test"][1].as_str().unwrap_or(""),
            j["best_iteration"],
            j["rank_ic"]["train"].as_f64().unwrap_or(f64::NAN),
            j["rank_ic"]["valid"].as_f64().unwrap_or(f64::NAN),
            j["rank_ic"]["test"].as_f64().unwrap_or(f64::NAN),
            j["baselines"]["best_single"]["test_rank_ic"]
                .as_f64()
                .unwrap_or(f64::NAN),
            j["baselines"]["equal_weight"]["test_rank_ic"]
                .as_f64()
                .unwrap_or(f64::NAN),
            tf.elapsed().as_secs_f64()
        );
        fold_json.push(j);
    }

    let raw = pred.clone();
    if cli.neutralize_prediction {
        pred = ctx.as_ref().expect("made above").processed(&pred, &mut ws);
    }
    let first = fold_list[0].test.start;
    let last = fold_list[fold_list.len() - 1].test.end;
    let (stitched, used) = mean_rank_ic(&pred, fwd, &universe, na, first..last);
    let keep: Vec<usize> = (0..nd * na).filter(|&i| pred[i].is_finite()).collect();
    let mut t = Table::new()
        .date(
            "date",
            keep.iter().map(|&i| panel.dates()[i / na]).collect(),
        )
        .str("code", keep.iter().map(|&i| panel.codes()[i % na].as_str()))
        .f64("prediction", keep.iter().map(|&i| pred[i]).collect())
        .i64("fold", keep.iter().map(|&i| pred_fold[i]).collect());
    if cli.neutralize_prediction {
        t = t.f64("prediction_raw", keep.iter().map(|&i| raw[i]).collect());
    }
    let prov = af_store::Provenance::new("lgbm-train", env!("CARGO_PKG_VERSION"))
        .input_hash("panel", panel.content_hash())
        .input_file("library", &cli.library)?
        .param("horizon", cli.horizon)
        .param("seed", cli.seed)
        .param("normalize", cli.normalize.clone())
        .param("neutralize_features", cli.neutralize_features)
        .param("neutralize_prediction", cli.neutralize_prediction)
        .param("lightgbm", json!(params))
        .param("rounds", rounds)
        .param("early_stopping_round", patience);
    write_parquet(&stage.path("predictions.parquet"), t, &prov)?;
    let mean = |k: &[&str]| -> f64 {
        let v: Vec<f64> = fold_json
            .iter()
            .filter_map(|j| {
                k.iter()
                    .fold(Some(j), |j, k| j.and_then(|j| j.get(*k)))
                    .and_then(Value::as_f64)
            })
            .collect();
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let summary = json!({
        "tool": {"name": "lgbm-train", "version": env!("CARGO_PKG_VERSION")},
        "panel": {"path": cli.panel, "hash": panel.content_hash()},
        "library": {"path": cli.library, "sha256": sha256_file(&cli.library)?, "factors": lib.len()},
        "horizon": cli.horizon,
        "windows": {"train": cli.train_days, "valid": cli.valid_days, "test": cli.test_days,
                    "step": cli.step, "gap": cli.horizon},
        "features": {"normalize": cli.normalize, "neutralized": cli.neutralize_features},
        "label": format!("cross-sectional rank of {lname} (percentile - 0.5)"),
        "prediction_neutralized": cli.neutralize_prediction,
        "lightgbm": {"version": "4.7.0", "params": params, "rounds": rounds, "early_stopping_round": patience},
        "seed": cli.seed,
        "folds": fold_json,
        "mean_test_rank_ic": {
            "model": round6(mean(&["rank_ic", "test"])),
            "best_single_factor": round6(mean(&["baselines", "best_single", "test_rank_ic"])),
            "equal_weight": round6(mean(&["baselines", "equal_weight", "test_rank_ic"])),
        },
        "stitched_test_rank_ic": round6(stitched),
        "stitched_test_dates": used,
        "predictions": keep.len(),
    });
    let mut s = serde_json::to_string_pretty(&summary)?;
    s.push('\n');
    write_atomic_bytes(&stage.path("summary.json"), s.as_bytes())?;
    stage.commit()?;
    eprintln!(
        "{} folds: mean test RankIC {:.4} (best single factor {:.4}, equal weight {:.4}); stitched {:.4} over {used} dates; {:.1} s",
        fold_list.len(),
        mean(&["rank_ic", "test"]),
        mean(&["baselines", "best_single", "test_rank_ic"]),
        mean(&["baselines", "equal_weight", "test_rank_ic"]),
        stitched,
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
    pred: &mut [f64],
    pred_fold: &mut [i64],
) -> Result<Value> {
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
        pred[i] = x;
        pred_fold[i] = f.index as i64;
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
    let mut blend = vec![f64::NAN; nd * na];
    for t in f.test.clone() {
        for a in 0..na {
            let i = t * na + a;
            let (mut s, mut c) = (0.0, 0usize);
            for (fv, sg) in fs.iter().zip(&signs) {
                if fv[i].is_finite() && *sg != 0.0 {
                    s += sg * fv[i];
                    c += 1;
                }
            }
            if c > 0 {
                blend[i] = s / c as f64;
            }
        }
    }
    let best_json = match best {
        Some((k, r)) => json!({
            "id": inp.lib.ids[k], "expression": inp.lib.expressions[k],
            "train_rank_ic": round6(r),
            "test_rank_ic": round6(r.signum() * ric(&inp.feats[k], f.test.clone())),
        }),
        None => Value::Null,
    };
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
    let j = json!({
        "fold": f.index,
        "dates": {
            "train": [day(f.train.start), day(f.train.end - 1)],
            "valid": [day(f.valid.start), day(f.valid.end - 1)],
            "test": [day(f.test.start), day(f.test.end - 1)],
        },
        "date_index": {"train": [f.train.start, f.train.end], "valid": [f.valid.start, f.valid.end],
                       "test": [f.test.start, f.test.end]},
        "rows": {"train": tr.len(), "valid": va.len(), "test": te.len()},
        "features": names,
        "dropped_features": dropped.iter().map(|&k| json!({"id": inp.lib.ids[k], "expression": inp.lib.expressions[k],
                                                          "why": "NaN on every training date"})).collect::<Vec<_>>(),
        "lightgbm_params": params,
        "best_iteration": m.best_iteration,
        "iterations_run": m.iterations_run,
        "valid_l2": m.valid_curve.iter().map(|x| round6(*x)).collect::<Vec<_>>(),
        "rank_ic": {"train": round6(ric(&p, f.train.clone())), "valid": round6(ric(&p, f.valid.clone())),
                    "test": round6(ric(&p, f.test.clone()))},
        "baselines": {"best_single": best_json,
                      "equal_weight": {"test_rank_ic": round6(ric(&blend, f.test.clone()))}},
    });
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
