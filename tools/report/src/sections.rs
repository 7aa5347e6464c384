//! The report's HTML, one function per section: the model's headline, the overview
//! table, the redundancy heatmap, each factor's chart family, and the figures they
//! are drawn from. `main` computes the figures and assembles the page from these.

use std::fmt::Write as _;

use af_fitness::{DateStat, QUANTILES, Summary};
use af_panel::dates::format_date;
use anyhow::{Result, anyhow};
use serde_json::{Value, json};

use crate::charts;

/// Everything shown for one factor (or the prediction).
pub struct Figures {
    pub name: String,
    pub id: String,
    pub expression: String,
    pub generation: Option<i64>,
    /// The label horizon (days) the figures are on: the factor's own (the library
    /// records it), the primary for the model.
    pub horizon: usize,
    /// Per split, fitness' summary.
    pub splits: Vec<(String, Summary)>,
    /// The report split's per-date figures.
    pub dates: Vec<DateStat>,
    pub decay: Vec<(usize, f64, usize)>,
    pub processed: Vec<f64>,
}

pub fn summary_json(s: &Summary) -> Value {
    json!({
        "ic_mean": s.ic_mean, "ic_std": s.ic_std, "icir": s.icir, "ic_tstat": s.ic_tstat,
        "rank_ic_mean": s.rank_ic_mean, "rank_ic_std": s.rank_ic_std, "rank_icir": s.rank_icir,
        "rank_ic_tstat": s.rank_ic_tstat, "rank_ic_positive": s.rank_ic_positive,
        "rank_autocorr": s.rank_autocorr, "turnover": s.turnover, "top_turnover": s.top_turnover,
        "long_short_mean": s.long_short_mean, "coverage": s.coverage,
        "dates_used": s.dates_used, "dates_dropped": s.dates_dropped,
        "rank_ic_by_year": s.rank_ic_by_year.iter().map(|(y, v)| (y.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
    })
}

/// The model's headline: its out-of-selection dates and its RankIC there beside the
/// best single factor and the equal-weight blend (lgbm-train's summary.json).
pub fn model(m: &Value) -> String {
    let oos = &m["out_of_selection"];
    let ric = &m["test_rank_ic"];
    let f = |v: &Value| v.as_f64().map_or("–".to_string(), |x| format!("{x:.4}"));
    format!(
        "<h2 id=\"model\">Model, out of selection</h2><p class=\"sub\">Only dates after the \
         library's selection splits (train + valid) plus the label horizon count: \
         {} … {} ({} dates; selection ended {}). Each is predicted by a model trained on \
         earlier dates only; the baselines are chosen on the same training windows.</p>\
         <table><thead><tr><th>stitched test RankIC</th><th>value</th></tr></thead><tbody>\
         <tr><td>LightGBM model</td><td>{}</td></tr>\
         <tr><td>best single factor</td><td>{}</td></tr>\
         <tr><td>equal-weight blend</td><td>{}</td></tr></tbody></table>",
        esc(oos["first"].as_str().unwrap_or("?")),
        esc(oos["last"].as_str().unwrap_or("?")),
        oos["dates"],
        esc(oos["selection_last"].as_str().unwrap_or("?")),
        f(&ric["model"]),
        f(&ric["best_single_factor"]),
        f(&ric["equal_weight"]),
    ) + &compare(&m["compare"])
}

/// lgbm-train's comparison (`--compare`): every model on the same folds, side by side,
/// as IC and as a portfolio; `captured` where the market has planted alphas.
pub fn compare(c: &Value) -> String {
    let Some(rows) = c["models"].as_array().filter(|r| !r.is_empty()) else {
        return String::new();
    };
    let f = |v: &Value, d: usize| v.as_f64().map_or("–".to_string(), |x| format!("{x:.d$}"));
    let pct = |v: &Value| {
        v.as_f64()
            .map_or("–".to_string(), |x| format!("{:.2}", 100.0 * x))
    };
    let mut html = String::from(
        "<h3 id=\"compare\">Against the field's standard</h3><p class=\"sub\">The same LightGBM, folds, label and seed on other feature sets: Qlib's Alpha158, the library with it, and — on a synthetic market — the planted expressions themselves (the oracle: the signal there is to find). Portfolios: top-k dropout after cost under the market's limits, excess over the equal-weight universe.</p>\
         <table class=\"kv\"><tr><th>model</th><th>features</th><th>test RankIC</th><th>ICIR</th><th>its equal-weight blend</th><th>mined share of gain %</th><th>excess / yr %</th><th>IR</th><th>max drawdown %</th></tr>",
    );
    for r in rows {
        let p = &r["portfolio"];
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(r["model"].as_str().unwrap_or("?")),
            r["features"],
            f(&r["test_rank_ic"], 4),
            f(&r["test_icir"], 3),
            f(&r["equal_weight_test_rank_ic"], 4),
            pct(&r["mined_importance_share"]),
            pct(&p["annualized_excess_with_cost"]),
            f(&p["information_ratio"], 2),
            pct(&p["max_drawdown"]),
        );
    }
    html += "</table>";
    if let Some(x) = c["captured"].as_f64() {
        let _ = write!(
            html,
            "<p class=\"sub\">captured: the library's test RankIC is <b>{:.1} %</b> of the oracle's.</p>",
            100.0 * x
        );
    }
    for n in c["notes"].as_array().into_iter().flatten() {
        let _ = write!(
            html,
            "<p class=\"sub\">note: {}</p>",
            esc(n.as_str().unwrap_or(""))
        );
    }
    html
}

/// Where the IC lives: RankIC on the report split within the universe's liquidity
/// thirds, for the model and each factor, and the share of a factor portfolio's top
/// picks that could not trade the next day.
pub fn ic_by_liquidity(rows: &[Value], split: &str) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut html = format!(
        "<h2>Where the IC lives</h2><p class=\"sub\">RankIC on the {} split within thirds of each date's universe by trailing 20-day median traded value (least, middle, most liquid). IC that lives in the least liquid third, or in names that cannot trade the next day, does not pay as a portfolio.</p><table class=\"kv\"><tr><th>signal</th><th>RankIC all</th><th>least liquid ⅓</th><th>middle ⅓</th><th>most liquid ⅓</th><th>top picks untradable next day %</th></tr>",
        esc(split)
    );
    for r in rows {
        let f = |k: &str| num(r[k].as_f64().unwrap_or(f64::NAN), 4);
        let _ = write!(
            html,
            "<tr><td>{} <code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(r["name"].as_str().unwrap_or("")),
            esc(r["expression"].as_str().unwrap_or("")),
            f("rank_ic_all"),
            f("rank_ic_low"),
            f("rank_ic_mid"),
            f("rank_ic_high"),
            num(
                r["top_picks_untradable_share"].as_f64().unwrap_or(f64::NAN) * 100.0,
                1
            ),
        );
    }
    html + "</table>"
}

/// The table of the top library factors as portfolios (see `factor_backtests`).
pub fn factor_backtests(v: &Value) -> String {
    let Some(rows) = v.as_array().filter(|r| !r.is_empty()) else {
        return String::new();
    };
    let mut html = format!(
        "<h2>Top factors as portfolios</h2><p class=\"sub\">Each factor (signed by its train RankIC) as a top-{} dropout-{} portfolio on the report split, with backtest's default costs and the market's limits ({}; docs/backtest.md); excess over the equal-weight universe, after cost. Max drawdown compounded (never beyond −100 %), Qlib's sum-mode drawdown beside it.</p><table class=\"kv\"><tr><th>factor</th><th>annualized %</th><th>information ratio</th><th>max drawdown %</th><th>sum-mode drawdown % (Qlib)</th><th>turnover / day</th><th>top picks untradable next day %</th></tr>",
        rows[0]["topk"],
        rows[0]["n_drop"],
        esc(rows[0]["limits"].as_str().unwrap_or("?"))
    );
    for r in rows {
        let e = &r["excess_with_cost"];
        let f = |k: &str, s: f64, d: usize| num(e[k].as_f64().unwrap_or(f64::NAN) * s, d);
        let _ = write!(
            html,
            "<tr><td>{} <code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(r["rank"].as_str().unwrap_or("")),
            esc(r["expression"].as_str().unwrap_or("")),
            f("annualized_return", 100.0, 2),
            f("information_ratio", 1.0, 2),
            f("max_drawdown", 100.0, 2),
            f("max_drawdown_sum", 100.0, 2),
            num(r["mean_turnover"].as_f64().unwrap_or(f64::NAN), 3),
            num(
                r["untradable_share"].as_f64().unwrap_or(f64::NAN) * 100.0,
                1
            ),
        );
    }
    html + "</table>"
}

/// The backtest of the prediction (backtest's daily.parquet and summary.json): equity
/// curves net and gross of cost against the benchmark, the excess drawdown, turnover
/// and cost drag, and a table of Qlib's risk figures and monthly excess returns.
pub fn backtest(
    dates: &[String],
    daily: &[(&str, Vec<f64>)],
    summary: &Value,
) -> Result<(String, usize)> {
    let col = |n: &str| {
        daily
            .iter()
            .find(|c| c.0 == n)
            .map(|c| c.1.clone())
            .unwrap_or_default()
    };
    let (gross, net, bench, cost, turn) = (
        col("gross_return"),
        col("net_return"),
        col("bench_return"),
        col("cost"),
        col("turnover"),
    );
    let curve = |r: &[f64]| compound(r, 1);
    let ex: Vec<f64> = net.iter().zip(&bench).map(|(a, b)| a - b).collect();
    let excess = curve(&ex);
    let (mdd, pk, tr) = max_drawdown(&excess);
    let cum_cost: Vec<f64> = cost
        .iter()
        .scan(0.0, |c, x| {
            *c += x;
            Some(*c)
        })
        .collect();
    let e = |r: Result<String, String>| r.map_err(|e| anyhow!(e));
    let svgs = [
        e(charts::lines(
            "Portfolio vs benchmark (compounded daily returns)",
            "cumulative return",
            dates,
            &[
                ("net of cost", &curve(&net)),
                ("gross", &curve(&gross)),
                ("benchmark", &curve(&bench)),
            ],
            true,
        ))?,
        e(charts::lines(
            &format!("Excess return with cost, max drawdown {:.1}%", 100.0 * mdd),
            "cumulative excess",
            dates,
            &[("excess with cost", &excess)],
            true,
        ))?,
        e(charts::lines(
            "Turnover and cumulative cost drag",
            "share of the account",
            dates,
            &[("daily turnover", &turn), ("cumulative cost", &cum_cost)],
            false,
        ))?,
    ];
    let r = &summary["risk"];
    let row = |name: &str, k: &str| {
        format!(
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            num(
                r[k]["annualized_return"].as_f64().unwrap_or(f64::NAN) * 100.0,
                2
            ),
            num(r[k]["information_ratio"].as_f64().unwrap_or(f64::NAN), 2),
            num(r[k]["max_drawdown"].as_f64().unwrap_or(f64::NAN) * 100.0, 2),
            num(
                r[k]["max_drawdown_sum"].as_f64().unwrap_or(f64::NAN) * 100.0,
                2
            ),
        )
    };
    // Monthly excess with cost (sums of daily excess, as Qlib's "sum" mode).
    let mut months: std::collections::BTreeMap<String, f64> = Default::default();
    for (d, x) in dates.iter().zip(&ex) {
        if x.is_finite() {
            *months.entry(d[..7].to_string()).or_default() += x;
        }
    }
    let mut html = format!(
        "<h2>Backtest of the prediction</h2><p class=\"sub\">Top-{} dropout {} a day, costs {} / {} (min {} yuan), deal at close, no trade at the limit ({}) or when suspended (docs/backtest.md); {} … {}. Drawdown of the excess curve from {} to {}; mean turnover {}, hit rate {}. {}</p>\
         <table class=\"kv\"><tr><th></th><th>annualized %</th><th>information ratio</th><th>max drawdown % (compounded)</th><th>sum-mode drawdown % (Qlib)</th></tr>{}{}{}</table><div class=\"grid\">",
        summary["params"]["topk"],
        summary["params"]["n_drop"],
        summary["params"]["cost_buy"],
        summary["params"]["cost_sell"],
        summary["params"]["min_cost"],
        esc(summary["limits"].as_str().unwrap_or("?")),
        esc(summary["first_date"].as_str().unwrap_or("?")),
        esc(summary["last_date"].as_str().unwrap_or("?")),
        dates.get(pk).cloned().unwrap_or_default(),
        dates.get(tr).cloned().unwrap_or_default(),
        num(summary["mean_turnover"].as_f64().unwrap_or(f64::NAN), 3),
        num(summary["hit_rate"].as_f64().unwrap_or(f64::NAN), 3),
        picks_line(&summary["top_picks"]),
        row("benchmark", "benchmark"),
        row("excess without cost", "excess_return_without_cost"),
        row("excess with cost", "excess_return_with_cost"),
    );
    for s in &svgs {
        let _ = write!(html, "<div class=\"chart\">{s}</div>");
    }
    let _ = write!(
        html,
        "</div><table class=\"kv\"><tr><th>month</th><th>excess with cost % (sum of daily excess)</th></tr>"
    );
    for (m, v) in &months {
        let _ = write!(html, "<tr><td>{m}</td><td>{}</td></tr>", num(100.0 * v, 2));
    }
    html += "</table>";
    Ok((html, svgs.len()))
}

/// The sentence on the top-k picks the next day could not trade (backtest's
/// `top_picks`): where a signal's IC cannot be earned.
pub fn picks_line(p: &Value) -> String {
    let Some(n) = p["picks"].as_u64().filter(|n| *n > 0) else {
        return String::new();
    };
    format!(
        "Of the {n} top-{} picks (each date's best scores), {} % could not be traded the next day: {} suspended or without a bar, {} at the limit up, {} at the limit down.",
        p["topk"],
        num(
            p["untradable_share"].as_f64().unwrap_or(f64::NAN) * 100.0,
            1
        ),
        p["suspended_or_no_bar"],
        p["at_limit_up"],
        p["at_limit_down"]
    )
}

/// Compounded curve of daily-rebalanced positions earning `r / h` a day (an h-day
/// forward return spread over its h days); NaN days add nothing. A book that loses
/// everything stays at zero (wealth never goes negative), so a drawdown is at most 100 %.
fn compound(r: &[f64], h: usize) -> Vec<f64> {
    let mut w = 1.0;
    r.iter()
        .map(|x| {
            if x.is_finite() {
                w = (w * (1.0 + x / h as f64)).max(0.0);
            }
            w - 1.0
        })
        .collect()
}

/// The line under the title saying how returns in the charts were bounded.
pub fn return_bound(b: &Value) -> String {
    let k = b["k"].as_f64().unwrap_or(0.0);
    if k > 0.0 {
        format!(
            "<p class=\"sub\">Returns in the quantile and long-short charts are clipped per date to median ± {k} robust σ of the day's scored assets: {} of {} values clipped (RankIC and IC use the raw label; <code>--return-bound 0</code> for raw returns).</p>",
            b["clipped"], b["values"]
        )
    } else {
        "<p class=\"sub\">Returns in the charts are the raw label (<code>--return-bound 0</code>).</p>".into()
    }
}

/// Maximum drawdown of a cumulative-return curve: (depth, peak index, trough index).
fn max_drawdown(cum: &[f64]) -> (f64, usize, usize) {
    let (mut peak, mut peak_i) = (f64::NEG_INFINITY, 0);
    let mut best = (0.0, 0, 0);
    for (i, c) in cum.iter().enumerate() {
        let w = 1.0 + c;
        if w > peak && w > 0.0 {
            peak = w;
            peak_i = i;
        }
        let dd = 1.0 - w / peak;
        if dd > best.0 {
            best = (dd, peak_i, i);
        }
    }
    best
}

fn moving_average(x: &[f64], n: usize) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            let w: Vec<f64> = x[i.saturating_sub(n - 1)..=i]
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .collect();
            if i + 1 >= n && !w.is_empty() {
                w.iter().sum::<f64>() / w.len() as f64
            } else {
                f64::NAN
            }
        })
        .collect()
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn num(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "–".into()
    }
}

/// The overview table: every factor's RankIC on each split and its report-split
/// figures; also returned as JSON rows.
pub fn overview(
    figs: &[Figures],
    split_names: &[String],
    rep_name: &str,
    corr: &[Vec<f64>],
    n_lib: usize,
) -> (String, Vec<Value>) {
    let mut html = String::new();
    let _ = write!(
        html,
        "<h2 id=\"overview\">Overview</h2><table><thead><tr><th>#</th><th>expression</th><th>gen</th><th>horizon</th>"
    );
    for s in split_names {
        let _ = write!(html, "<th>{s} RankIC</th>");
    }
    let _ = write!(
        html,
        "<th>{} RankICIR</th><th>turnover</th><th>coverage</th><th>max |corr|</th></tr></thead><tbody>",
        esc(rep_name)
    );
    let mut overview = Vec::new();
    for (i, f) in figs.iter().enumerate() {
        let get = |s: &str| f.splits.iter().find(|x| x.0 == s).map(|x| &x.1);
        let r = get(rep_name);
        let maxc = if i < n_lib {
            (0..n_lib)
                .filter(|&j| j != i)
                .map(|j| corr[i][j].abs())
                .fold(f64::NAN, f64::max)
        } else {
            f64::NAN
        };
        let _ = write!(
            html,
            "<tr><td><a href=\"#f{i}\">{}</a></td><td class=\"ex\">{}</td><td>{}</td><td>{}d</td>",
            esc(&f.name),
            esc(&f.expression),
            f.generation.map_or("–".into(), |g| g.to_string()),
            f.horizon
        );
        for s in split_names {
            let v = get(s).map_or(f64::NAN, |x| x.rank_ic_mean);
            let cls = if v > 0.0 {
                "pos"
            } else if v < 0.0 {
                "neg"
            } else {
                ""
            };
            let _ = write!(html, "<td class=\"{cls}\">{}</td>", num(v, 4));
        }
        let _ = write!(
            html,
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            num(r.map_or(f64::NAN, |x| x.rank_icir), 3),
            num(r.map_or(f64::NAN, |x| x.turnover), 3),
            num(r.map_or(f64::NAN, |x| x.coverage), 3),
            num(maxc, 2)
        );
        overview.push(json!({"rank": f.name, "id": f.id, "expression": f.expression, "generation": f.generation,
                             "horizon": f.horizon, "max_abs_corr": maxc}));
    }
    let _ = write!(html, "</tbody></table>");
    (html, overview)
}

/// The redundancy heatmap of the library's factors.
pub fn redundancy(corr: &[Vec<f64>], rep_name: &str) -> Result<String> {
    let svg = charts::heatmap(
        &format!("Mean cross-sectional correlation ({rep_name} split)"),
        corr,
    )
    .map_err(|e| anyhow!(e))?;
    Ok(format!(
        "<h2>Redundancy</h2><div class=\"chart wide\">{svg}</div><p class=\"sub\">Cell (#i, #j): mean over the split's dates of the per-date Pearson correlation of the processed factors; red positive, blue negative.</p>"
    ))
}

/// One factor's (or the model's) section: its chart family, collapsed after the
/// fifth; returns the HTML, the JSON of its figures and the number of charts.
pub fn factor(
    i: usize,
    f: &Figures,
    rep_name: &str,
    h: usize,
    dates: &[i32],
    n_lib: usize,
) -> Result<(String, Value, usize)> {
    let mut html = String::new();
    let day = |t: usize| format_date(dates[t]);
    let ds = &f.dates;
    let dl: Vec<String> = ds.iter().map(|d| day(d.t)).collect();
    let ric: Vec<f64> = ds.iter().map(|d| d.rank_ic).collect();
    let ma = moving_average(&ric, 20);
    let q: Vec<Vec<f64>> = (0..QUANTILES)
        .map(|k| ds.iter().map(|d| d.q_mean[k]).collect())
        .collect();
    let qmean: Vec<f64> = q
        .iter()
        .map(|s| af_fitness::stats::mean_std(s.iter().copied()).0)
        .collect();
    let qcum: Vec<Vec<f64>> = q.iter().map(|s| compound(s, h)).collect();
    let ls: Vec<f64> = ds.iter().map(|d| d.long_short).collect();
    let lscum = compound(&ls, h);
    let (mdd, pk, tr) = max_drawdown(&lscum);
    let cov: Vec<f64> = ds
        .iter()
        .map(|d| {
            if d.n_univ > 0 {
                d.n_cov as f64 / d.n_univ as f64
            } else {
                f64::NAN
            }
        })
        .collect();
    let tt: Vec<f64> = ds.iter().map(|d| d.top_turnover).collect();
    let summ = f
        .splits
        .iter()
        .find(|x| x.0 == rep_name)
        .map(|x| x.1.clone())
        .unwrap_or_default();
    let years: Vec<String> = summ.rank_ic_by_year.keys().map(|y| y.to_string()).collect();
    let yv: Vec<f64> = summ.rank_ic_by_year.values().copied().collect();
    let qlab: Vec<String> = (1..=QUANTILES).map(|k| format!("Q{k}")).collect();
    let dlab: Vec<String> = f.decay.iter().map(|d| d.0.to_string()).collect();
    let dv: Vec<f64> = f.decay.iter().map(|d| d.1).collect();
    let e = |r: Result<String, String>| r.map_err(|e| anyhow!(e));
    let qnames: Vec<String> = (1..=QUANTILES).map(|k| format!("Q{k}")).collect();
    let qseries: Vec<(&str, &[f64])> = qnames
        .iter()
        .map(|s| s.as_str())
        .zip(qcum.iter().map(|v| v.as_slice()))
        .collect();
    let svgs = [
        e(charts::lines(
            "Daily RankIC and its 20-day mean",
            "RankIC",
            &dl,
            &[("daily", &ric), ("20-day mean", &ma)],
            true,
        ))?,
        e(charts::bars("RankIC by year", "mean RankIC", &years, &yv))?,
        e(charts::bars(
            "IC decay: mean RankIC with the h-day forward return",
            "mean RankIC",
            &dlab,
            &dv,
        ))?,
        e(charts::bars(
            &format!("Mean {h}-day forward return by quintile"),
            "mean return",
            &qlab,
            &qmean,
        ))?,
        e(charts::lines(
            "Cumulative return by quintile (daily rebalanced)",
            "cumulative return",
            &dl,
            &qseries,
            true,
        ))?,
        e(charts::lines(
            &format!("Long-short (Q5 − Q1), max drawdown {:.1}%", 100.0 * mdd),
            "cumulative return",
            &dl,
            &[("long-short", &lscum)],
            true,
        ))?,
        e(charts::lines(
            "Top-quintile turnover and coverage",
            "share",
            &dl,
            &[("top-quintile turnover", &tt), ("coverage", &cov)],
            false,
        ))?,
    ];
    let open = if i < 5 || i >= n_lib { " open" } else { "" };
    let _ = write!(
        html,
        "<details id=\"f{i}\"{open}><summary><b>{}</b> <code>{}</code> — {} RankIC {} · ICIR {} · turnover {} · long-short {}</summary>\
         <p class=\"sub\">id <code>{}</code>{}; figures on {}-day returns. Max drawdown of the long-short curve {:.2}% from {} to {}.</p><div class=\"grid\">",
        esc(&f.name),
        esc(&f.expression),
        esc(&rep_name),
        num(summ.rank_ic_mean, 4),
        num(summ.rank_icir, 3),
        num(summ.turnover, 3),
        num(summ.long_short_mean, 5),
        esc(&f.id),
        f.generation
            .map_or(String::new(), |g| format!(", found in generation {g}")),
        f.horizon,
        100.0 * mdd,
        dl.get(pk).cloned().unwrap_or_default(),
        dl.get(tr).cloned().unwrap_or_default(),
    );
    for s in &svgs {
        let _ = write!(html, "<div class=\"chart\">{s}</div>");
    }
    let _ = write!(html, "</div></details>");
    let j = json!({
        "rank": f.name, "id": f.id, "expression": f.expression, "generation": f.generation,
        "horizon": f.horizon,
        "splits": f.splits.iter().map(|(n, s)| (n.clone(), summary_json(s))).collect::<serde_json::Map<_, _>>(),
        "series": {
            "date": dl, "rank_ic": ric, "ic": ds.iter().map(|d| d.ic).collect::<Vec<_>>(),
            "rank_ic_ma20": ma, "long_short": ls, "long_short_cumulative": lscum,
            "quantile_mean_return": q, "top_turnover": tt, "coverage": cov,
            "rank_autocorr": ds.iter().map(|d| d.rank_autocorr).collect::<Vec<_>>(),
        },
        "decay": f.decay.iter().map(|(k, v, n)| json!({"horizon": k, "rank_ic_mean": v, "dates": n})).collect::<Vec<_>>(),
        "quantile_mean_return": qmean,
        "max_drawdown": {"depth": mdd, "peak": dl.get(pk), "trough": dl.get(tr)},
    });
    Ok((html, j, svgs.len()))
}
