//! Models side by side (issue 35): one [`Job`] (the panel, label, folds and LightGBM
//! settings every model shares) fits a feature set over the folds, and each fitted
//! model becomes one row of the comparison — test RankIC and ICIR out of selection,
//! per-fold figures, the importance share of mined features, and its prediction as a
//! costed top-k portfolio under the market's own rules.

use std::time::Instant;

use af_fitness::stats::{mean_rank_ic, mean_std, rank_ic_series};
use af_panel::Panel;
use af_store::AtomicDir;
use af_table::Table;
use anyhow::Result;
use serde_json::{Value, json};

use crate::folds::Fold;
use crate::model::Params;
use crate::sets::Features;
use crate::train::{FoldReport, Inputs, Stitched, round6, train_fold};

/// What every model of a run shares.
pub struct Job<'a> {
    pub panel: &'a Panel,
    pub universe: &'a [bool],
    pub fwd: &'a [f64],
    pub label: &'a [f64],
    pub folds: &'a [Fold],
    pub params: &'a Params,
    pub rounds: usize,
    pub patience: usize,
    pub first_test: usize,
    /// The panel as the backtest reads it (limits, benchmark), made once for every
    /// compared model's portfolio; `None` without `--compare`.
    pub book: Option<&'a af_backtest::OnPanel<'a>>,
}

/// A model fitted over every fold.
pub struct Fitted {
    pub stitched: Stitched,
    pub reports: Vec<FoldReport>,
}

impl Job<'_> {
    /// Fit `f` over the folds, each fold's files under `prefix` in `stage`.
    pub fn fit(
        &self,
        name: &str,
        f: &Features,
        stage: &AtomicDir,
        prefix: &str,
        dump_fold: Option<usize>,
    ) -> Result<Fitted> {
        let n = self.panel.n_dates() * self.panel.n_assets();
        let inp = Inputs {
            panel: self.panel,
            universe: self.universe,
            fwd: self.fwd,
            label: self.label,
            f,
            prefix: prefix.to_string(),
        };
        let mut st = Stitched {
            model: vec![f64::NAN; n],
            fold: vec![-1i64; n],
            best_single: vec![f64::NAN; n],
            equal_weight: vec![f64::NAN; n],
        };
        let mut reports = Vec::new();
        for fold in self.folds {
            let tf = Instant::now();
            let j = train_fold(
                &inp,
                fold,
                self.params,
                self.rounds,
                self.patience,
                stage,
                &mut st,
                dump_fold == Some(fold.index),
            )?;
            let show = |x: Option<f64>| x.unwrap_or(f64::NAN);
            tracing::info!(
                "{name}: fold {}: test {}..{}: best iteration {}, RankIC train {:.4} valid {:.4} test {:.4} (best single factor {:.4}, equal weight {:.4}) in {:.1} s",
                fold.index,
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
        Ok(Fitted {
            stitched: st,
            reports,
        })
    }

    /// The prediction as a Parquet table: date, code, prediction, fold (finite cells).
    pub fn predictions_table(&self, pred: &[f64], fold: &[i64]) -> Table {
        let keep: Vec<usize> = (0..pred.len()).filter(|&i| pred[i].is_finite()).collect();
        Table::cells(self.panel.dates(), self.panel.codes(), &keep)
            .f64("prediction", keep.iter().map(|&i| pred[i]).collect())
            .i64("fold", keep.iter().map(|&i| fold[i]).collect())
    }

    /// One row of the comparison for a fitted model whose prediction is `pred`.
    pub fn row(&self, name: &str, f: &Features, m: &Fitted, pred: &[f64]) -> Result<Value> {
        let na = self.panel.n_assets();
        let nd = self.panel.n_dates();
        let oos = self.first_test..nd;
        // One pass of per-date RankICs: its mean is mean_rank_ic's, the same sum.
        let daily = rank_ic_series(pred, self.fwd, self.universe, na, oos.clone());
        let (ric, sd, dates) = mean_std(daily.iter().copied());
        let shares: Vec<f64> = m
            .reports
            .iter()
            .filter_map(|r| r.mined_gain_share)
            .collect();
        let mined = f.mined.iter().filter(|x| **x).count();
        let (blend, _) = mean_rank_ic(
            &m.stitched.equal_weight,
            self.fwd,
            self.universe,
            na,
            oos.clone(),
        );
        Ok(json!({
            "model": name,
            "features": f.len(),
            "mined_features": mined,
            "test_rank_ic": round6(ric),
            "test_icir": round6(if sd > 0.0 { ric / sd } else { f64::NAN }),
            // This model's features, each signed by its train RankIC, averaged: the
            // linear baseline it has to beat (for the oracle, the planted blend).
            "equal_weight_test_rank_ic": round6(blend),
            "scored_dates": dates,
            "fold_test_rank_ic": m.reports.iter().map(|r| r.rank_ic.test).collect::<Vec<_>>(),
            "mined_importance_share": round6(if shares.is_empty() { f64::NAN } else { shares.iter().sum::<f64>() / shares.len() as f64 }),
            "portfolio": self.portfolio(pred)?,
        }))
    }

    /// The prediction as backtest's default costed TopkDropout portfolio (top-k 50, or
    /// a fifth of the universe) under the market's own limits, excess over the
    /// equal-weight universe after cost.
    fn portfolio(&self, pred: &[f64]) -> Result<Value> {
        let book = self
            .book
            .ok_or_else(|| anyhow::anyhow!("a portfolio needs the backtest's view of the panel"))?;
        let (m, p) = (book.market()?, &book.params);
        let topk = p.topk;
        let o = match af_backtest::run(&m, pred, p) {
            Ok(o) => o,
            Err(e) if af_backtest::is_impossible(&e) => return Err(e),
            Err(e) => return Ok(json!({"error": e.to_string()})),
        };
        let ex: Vec<f64> = o.days.iter().map(|d| d.net - d.bench).collect();
        let r = af_backtest::risk(&ex);
        Ok(json!({
            "topk": topk,
            "days": o.days.len(),
            "annualized_excess_with_cost": round6(r.annualized_return),
            "information_ratio": round6(r.information_ratio),
            "max_drawdown": round6(r.max_drawdown),
            "max_drawdown_sum": round6(r.max_drawdown_sum),
        }))
    }
}

/// A model name as a folder name.
pub fn slug(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// The comparison as a fixed-width text table (compare.txt, and `make mine` prints it).
pub fn table(c: &Value) -> String {
    let f = |v: &Value, d: usize| v.as_f64().map_or("—".into(), |x| format!("{x:.d$}"));
    let mut s = String::from(
        "model                     features  test RankIC  ICIR    mined gain  top-k excess/yr  IR\n",
    );
    for r in c["models"].as_array().into_iter().flatten() {
        let p = &r["portfolio"];
        s += &format!(
            "{:<25} {:>8}  {:>11}  {:>6}  {:>10}  {:>15}  {:>5}\n",
            r["model"].as_str().unwrap_or("?"),
            r["features"].to_string(),
            f(&r["test_rank_ic"], 4),
            f(&r["test_icir"], 3),
            r["mined_importance_share"]
                .as_f64()
                .map_or("—".into(), |x| format!("{:.0} %", 100.0 * x)),
            p["annualized_excess_with_cost"]
                .as_f64()
                .map_or("—".into(), |x| format!("{:+.2} %", 100.0 * x)),
            f(&p["information_ratio"], 2),
        );
    }
    s += &format!(
        "best single factor {:>28}\nequal-weight blend {:>28}\n",
        f(&c["best_single_factor"], 4),
        f(&c["equal_weight"], 4)
    );
    if let Some(x) = c["captured"].as_f64() {
        s += &format!(
            "captured: the library's test RankIC is {:.1} % of the oracle's (the planted expressions)\n",
            100.0 * x
        );
    }
    for n in c["notes"].as_array().into_iter().flatten() {
        s += &format!("note: {}\n", n.as_str().unwrap_or(""));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_table() {
        assert_eq!(slug("library + alpha158"), "library-alpha158");
        assert_eq!(slug("ground-truth"), "ground-truth");
        let c = json!({"models": [{"model": "library", "features": 3, "test_rank_ic": 0.05,
                       "test_icir": 0.4, "mined_importance_share": null,
                       "portfolio": {"annualized_excess_with_cost": 0.12, "information_ratio": 1.5}}],
                       "best_single_factor": 0.03, "equal_weight": 0.04, "captured": 0.9, "notes": []});
        let t = table(&c);
        assert!(
            t.contains("library") && t.contains("0.0500") && t.contains("+12.00 %"),
            "{t}"
        );
        assert!(t.contains("90.0 %"), "{t}");
    }
}
