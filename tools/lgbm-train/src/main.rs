//! `lgbm-train`: combine a library's factors with LightGBM, the way quants run Qlib's
//! Alpha158 + LightGBM baseline, but honestly out of sample: rolling folds (train,
//! early-stop on the next window, predict the one after, step forward; see `folds`),
//! features read from the library snapshot (never re-evaluated), every fold's model,
//! importances and RankICs, the stitched out-of-sample predictions, and the two
//! baselines a model must beat (the best single factor, an equal-weight blend).

mod features;
mod folds;
mod model;
mod train;

use std::path::PathBuf;
use std::time::Instant;

use af_fitness::prep::Winsor;
use af_fitness::processing::{Neutralize, Processing};
use af_fitness::{Context, Workspace};
use af_library::Library;
use af_panel::{Panel, columns};
use af_store::{AtomicDir, OutputLock, sha256_file, write_atomic_bytes};
use af_table::{Table, write_parquet};
use anyhow::{Context as _, Result, bail};
use clap::Parser;
use serde_json::json;

use af_fitness::stats::mean_rank_ic;
use features::{Norm, normalize};
use train::{FoldReport, Headline, Inputs, OutOfSelection, Stitched, round6, train_fold};

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
    #[command(flatten)]
    log: af_store::log::LogArgs,
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
    let (params, rounds, patience) = model::params(cli.seed, cli.params.as_deref())?;
    // The first date whose prediction may count: after the dates the library's factors
    // were selected on, plus the longest horizon they were scored on (folds.rs): a
    // factor selected on 5-day returns has seen the labels 5 days past the selection.
    let selection_end = processing
        .selection_end(panel.dates())
        .with_context(|| source.clone())?;
    let seen = processing
        .scored_horizons()
        .into_iter()
        .fold(horizon, usize::max);
    let first_test = selection_end + seen;
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
    }
    .on_panel(&panel)
    .0;
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
        let j = train_fold(
            &inp,
            f,
            &params,
            rounds,
            patience,
            &stage,
            &mut st,
            cli.dump_fold == Some(f.index),
        )?;
        let show = |x: Option<f64>| x.unwrap_or(f64::NAN);
        tracing::info!(
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
    tracing::info!(
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

fn main() {
    af_store::cli::main_with(|| {
        let a = Cli::parse();
        af_store::log::init("lgbm-train", &a.log);
        run(a)
    });
}
