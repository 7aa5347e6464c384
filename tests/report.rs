//! `report`: every number in summary.json is fitness' own for the same inputs; IC decay
//! and quintile returns agree with alphalens-reloaded; the page renders in headless
//! Chromium with every chart drawn and no console error (screenshot kept in
//! target/e2e/report/); deterministic; bad input named.

use std::path::Path;

use af_e2e::*;
use af_table::read_parquet;

#[test]
fn report_matches_fitness_alphalens_and_renders() {
    let dir = scratch("report");
    let (_, panel) = small_market(&dir, 21);
    let c = dir.join("factors.txt");
    std::fs::write(&c, SIX_FACTORS).unwrap();
    let (f, ics) = (dir.join("f.parquet"), dir.join("ic.parquet"));
    ok(bin("fitness")
        .args([
            "--panel",
            &s(&panel),
            "--candidates",
            &s(&c),
            "--horizon",
            "1",
            "--no-cache",
        ])
        .args([
            "--admit-ratio",
            "0",
            "--ic-series",
            &s(&ics),
            "--out",
            &s(&f),
        ]));
    let lib = dir.join("lib/lib-000.parquet");
    ok(bin("library-merge").args([
        "--fitness",
        &s(&f),
        "--panel",
        &s(&panel),
        "--out",
        &s(&lib),
    ]));
    let model = dir.join("model");
    ok(bin("lgbm-train")
        .args([
            "--library",
            &s(&lib),
            "--panel",
            &s(&panel),
            "--horizon",
            "1",
            "--out",
            &s(&model),
        ])
        .args(SMALL_FOLDS));
    let bt = dir.join("bt");
    ok(bin("backtest").args([
        "--signal",
        &s(&model.join("predictions.parquet")),
        "--panel",
        &s(&panel),
        "--topk",
        "20",
        "--out",
        &s(&bt),
    ]));
    let out = dir.join("out");
    let report = |o: &Path| {
        ok(bin("report")
            .args([
                "--library",
                &s(&lib),
                "--panel",
                &s(&panel),
                "--predictions",
                &s(&model),
                "--backtest",
                &s(&bt),
            ])
            .args(["--dump-values", "--out", &s(o)]))
    };
    report(&out);
    let again = dir.join("again");
    report(&again);
    assert!(
        tree_hashes(&out) == tree_hashes(&again),
        "same inputs, same bytes"
    );

    // Every figure per factor and split, and the test split's daily RankIC, are fitness'.
    let sum = read_json(&out.join("summary.json"));
    let fit = read_parquet(&f).unwrap();
    let (ids, splits) = (fit.strings("id").unwrap(), fit.strings("split").unwrap());
    let factors = sum["factors"].as_array().unwrap();
    let series = read_json(&out.join("series.json"));
    // The backtest section shows backtest's own figures.
    let bts = read_json(&bt.join("summary.json"));
    assert_eq!(sum["backtest"]["risk"], bts["risk"]);
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("Backtest of the prediction"));
    // The top factors as portfolios: the `backtest` tool on the same processed values
    // (values.parquet) gives the same figures.
    let fb = sum["factor_backtests"].as_array().unwrap();
    assert_eq!(
        fb.len(),
        (sum["library"]["factors"].as_u64().unwrap() as usize).min(3)
    );
    assert!(html.contains("Top factors as portfolios"));
    let positive = fb.iter().find(|f| f["sign"] == 1.0);
    if let Some(f) = positive {
        let bt2 = dir.join("bt_factor");
        ok(bin("backtest").args([
            "--signal",
            &s(&out.join("values.parquet")),
            "--column",
            f["id"].as_str().unwrap(),
            "--panel",
            &s(&panel),
            "--topk",
            &f["topk"].to_string(),
            "--n-drop",
            &f["n_drop"].to_string(),
            "--out",
            &s(&bt2),
        ]));
        let b2 = read_json(&bt2.join("summary.json"));
        assert_eq!(
            b2["risk"]["excess_return_with_cost"], f["excess_with_cost"],
            "{f}"
        );
    }
    assert_eq!(sum["series"], "series.json");
    // The quantile charts' returns are bounded (default 5 robust σ) and say so.
    assert_eq!(sum["return_bound"]["k"], 5.0);
    assert!(sum["return_bound"]["values"].as_u64().unwrap() > 1000);
    let n_lib = sum["library"]["factors"].as_u64().unwrap() as usize;
    assert!(
        n_lib >= 3 && factors.len() == n_lib + 1,
        "factors and the model"
    );
    // The model's headline is lgbm-train's, on the out-of-selection dates, and the page
    // says which dates those are.
    let lgbm = read_json(&model.join("summary.json"));
    assert_eq!(sum["model"]["test_rank_ic"], lgbm["test_rank_ic"]);
    let first = lgbm["out_of_selection"]["first"]
        .as_str()
        .unwrap()
        .to_string();
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        html.contains("Model, out of selection") && html.contains(&first),
        "{first}"
    );
    let mut compared = 0;
    for m in [
        "rank_ic_mean",
        "ic_mean",
        "rank_icir",
        "icir",
        "turnover",
        "top_turnover",
        "coverage",
        "long_short_mean",
        "rank_ic_positive",
    ] {
        let col = fit.f64s(m).unwrap();
        for fj in &factors[..n_lib] {
            for (split, fig) in fj["splits"].as_object().unwrap() {
                let r = (0..ids.len())
                    .find(|&r| ids[r] == fj["id"].as_str().unwrap() && &splits[r] == split)
                    .unwrap();
                let (got, want) = (fig[m].as_f64().unwrap_or(f64::NAN), col[r]);
                assert!(
                    (got - want).abs() <= 1e-12 * want.abs().max(1.0)
                        || (got.is_nan() && want.is_nan()),
                    "{} {split} {m}: report {got}, fitness {want}",
                    fj["expression"]
                );
                compared += 1;
            }
        }
    }
    let ic = read_parquet(&ics).unwrap();
    let (ic_split, ic_used, ic_ric) = (
        ic.strings("split").unwrap(),
        ic.bools("used").unwrap(),
        ic.f64s("rank_ic").unwrap(),
    );
    let ic_cand = ic.f64s("candidate").unwrap();
    let cand_of = |id: &str| -> f64 {
        let r = (0..ids.len()).find(|&r| ids[r] == id).unwrap();
        fit.f64s("candidate").unwrap()[r]
    };
    for fj in &factors[..n_lib] {
        let k = cand_of(fj["id"].as_str().unwrap());
        let want: Vec<f64> = (0..ic_ric.len())
            .filter(|&r| ic_cand[r] == k && ic_split[r] == "test" && ic_used[r])
            .map(|r| ic_ric[r])
            .collect();
        let got: Vec<f64> = series[fj["rank"].as_str().unwrap()]["rank_ic"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_f64())
            .collect();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-12, "daily RankIC {g} vs fitness {w}");
            compared += 1;
        }
    }
    assert!(compared > 100, "{compared}");

    let o = ok(python().args([
        "check_report.py",
        "--panel",
        &s(&panel),
        "--report",
        &s(&out),
    ]));
    assert!(String::from_utf8_lossy(&o.stdout).contains("OK"));
    let shot = root().join("target/e2e/report/screenshot.png");
    let o = ok(python().args([
        "check_report_browser.py",
        "--report",
        &s(&out),
        "--screenshot",
        &s(&shot),
    ]));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("OK") && text.contains("0 console/page errors"),
        "{text}"
    );
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "a real screenshot"
    );
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    // Self-contained: nothing to fetch (the SVG namespace URI is a name, not a request).
    for bad in ["src=", "<link", "<script", "@import", "url("] {
        assert!(!html.contains(bad), "index.html contains {bad}");
    }

    let e = fails(bin("report").args([
        "--library",
        &s(&lib),
        "--panel",
        &s(&panel),
        "--split",
        "nope",
        "--out",
        &s(&dir.join("x")),
    ]));
    assert!(e.contains("--split nope") && e.contains("train"), "{e}");
    assert!(!dir.join("x").exists());
}
