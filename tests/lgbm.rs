//! `lgbm-train`: the same fold trained by Python LightGBM 4.7.0 on the identical
//! matrices predicts the same values, and loads our model file; no leakage across folds
//! (windows ordered with gaps, and a changed future leaves a fold's model byte-identical);
//! deterministic output; bad input named.

use std::path::{Path, PathBuf};

use af_e2e::*;

/// A library of SIX_FACTORS selected on dates 0..300 (train 0..200, valid 200..300, no
/// test split), so a panel whose future (after date 301) differs selects the same
/// factors, and the model's out-of-selection dates are 301.. (horizon 1).
fn library(dir: &Path, panel: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = af_panel::Panel::open(panel).unwrap();
    let d = |i: usize| af_panel::dates::format_date(p.dates()[i]);
    let splits = format!("train={}..{},valid={}..{}", d(0), d(199), d(200), d(299));
    let c = dir.join("factors.txt");
    std::fs::write(&c, SIX_FACTORS).unwrap();
    let f = dir.join("f.parquet");
    ok(bin("fitness")
        .args([
            "--panel",
            &s(panel),
            "--candidates",
            &s(&c),
            "--horizon",
            "1",
        ])
        .args([
            "--splits",
            &splits,
            "--admit-ratio",
            "0",
            "--no-cache",
            "--out",
            &s(&f),
        ]));
    let lib = dir.join("lib/lib-000.parquet");
    ok(bin("library-merge").args(["--fitness", &s(&f), "--panel", &s(panel), "--out", &s(&lib)]));
    lib
}

/// `lgbm-train --library LIB --panel PANEL --horizon H --out OUT` (no windows).
fn cmd(lib: &Path, panel: &Path, horizon: &str, out: &Path) -> std::process::Command {
    let mut c = bin("lgbm-train");
    c.args([
        "--library",
        &s(lib),
        "--panel",
        &s(panel),
        "--horizon",
        horizon,
        "--out",
        &s(out),
    ]);
    c
}

fn train(lib: &Path, panel: &Path, out: &Path, extra: &[&str]) -> String {
    let o = ok(bin("lgbm-train")
        .args([
            "--library",
            &s(lib),
            "--panel",
            &s(panel),
            "--horizon",
            "1",
            "--out",
            &s(out),
        ])
        .args(SMALL_FOLDS)
        .args(extra));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn agrees_with_python_lightgbm_and_is_deterministic() {
    let dir = scratch("lgbm_python");
    let (_, panel) = small_market(&dir, 11);
    let lib = library(&dir.join("lib"), &panel);
    let (a, b) = (dir.join("a"), dir.join("b"));
    train(&lib, &panel, &a, &["--dump-fold", "1"]);
    train(&lib, &panel, &b, &["--dump-fold", "1"]);
    assert!(
        tree_hashes(&a) == tree_hashes(&b),
        "same inputs, same bytes"
    );
    let sum = read_json(&a.join("summary.json"));
    // Test windows of 50 tile 301..500.
    assert_eq!(sum["folds"].as_array().unwrap().len(), 4);
    assert!(sum["library"]["factors"].as_u64().unwrap() >= 3, "{sum}");
    let out = ok(python().args(["check_lgbm.py", "--fold-dir", &s(&a.join("fold-01"))]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("OK"), "{text}");
    // Neutralized features and predictions go through the same model path.
    let n = dir.join("n");
    train(
        &lib,
        &panel,
        &n,
        &[
            "--neutralize-features",
            "--neutralize-prediction",
            "--dump-fold",
            "0",
        ],
    );
    ok(python().args(["check_lgbm.py", "--fold-dir", &s(&n.join("fold-00"))]));
    let t = af_table::read_parquet(&n.join("predictions.parquet")).unwrap();
    assert!(t.has_column("prediction_raw"));
}

#[test]
fn no_leakage_across_folds() {
    let dir = scratch("lgbm_leak");
    let (_, panel) = small_market(&dir, 12);
    let lib = library(&dir.join("lib"), &panel);
    let a = dir.join("a");
    train(&lib, &panel, &a, &[]);
    let sum = read_json(&a.join("summary.json"));
    // Every date the model is judged on lies after the library's selection (valid ends
    // at date 299) plus the horizon: 301 on.
    let p = af_panel::Panel::open(&panel).unwrap();
    let first = af_panel::dates::format_date(p.dates()[301]);
    assert_eq!(sum["out_of_selection"]["first"], first.as_str(), "{sum}");
    assert_eq!(
        sum["out_of_selection"]["selection_last"],
        af_panel::dates::format_date(p.dates()[299]).as_str()
    );
    assert!(sum["test_rank_ic"]["model"].is_f64(), "{sum}");
    let preds = af_table::read_parquet(&a.join("predictions.parquet")).unwrap();
    let min_date = preds
        .f64s("date")
        .unwrap()
        .into_iter()
        .fold(f64::INFINITY, f64::min);
    assert_eq!(
        min_date as i32,
        p.dates()[301],
        "a prediction on a selection date"
    );
    for f in sum["folds"].as_array().unwrap() {
        let r = |k: &str, i: usize| f["date_index"][k][i].as_u64().unwrap();
        assert!(
            r("test", 0) >= 301,
            "test window inside the selection dates: {f}"
        );
        assert!(
            r("train", 1) + 1 <= r("valid", 0),
            "train ends a horizon before valid: {f}"
        );
        assert!(
            r("valid", 1) + 1 <= r("test", 0),
            "valid ends a horizon before test: {f}"
        );
    }
    // Fold 0 trains on dates 49..249 and early-stops on 250..300 (labels to 300). A
    // different future from date 302 on must leave its model byte-identical and change
    // its test predictions (301..351).
    let future = dir.join("future.arrow");
    ok(python().args(["tamper_panel.py", &s(&panel), &s(&future), "--after", "301"]));
    let lib2 = library(&dir.join("lib2"), &future);
    let b = dir.join("b");
    train(&lib2, &future, &b, &[]);
    let model = |d: &Path| std::fs::read(d.join("fold-00/model.txt")).unwrap();
    assert!(model(&a) == model(&b), "fold 0's model saw the future");
    let ric = |d: &Path| read_json(&d.join("fold-00/fold.json"))["rank_ic"]["test"].clone();
    assert_ne!(
        ric(&a),
        ric(&b),
        "the tampered test window should change fold 0's test figures"
    );
}

#[test]
fn bad_input_is_named() {
    let dir = scratch("lgbm_bad");
    let (_, panel) = small_market(&dir, 13);
    let lib = library(&dir.join("lib"), &panel);
    let e = fails(cmd(&lib, &panel, "1", &dir.join("x")).args(["--train-days", "450"]));
    assert!(e.contains("shorten --train-days"), "{e}");
    assert!(!dir.join("x").exists(), "no output after an error");
    // The library was selected on horizon 1: another label is refused, not trained on.
    let e = fails(cmd(&lib, &panel, "5", &dir.join("x")).args(SMALL_FOLDS));
    assert!(e.contains("contradicts the horizon 1"), "{e}");
    // So is scoring candidates against it with other processing.
    let c = dir.join("c.txt");
    std::fs::write(&c, "ts_mean(returns, 5)\n").unwrap();
    let e = fails(bin("fitness").args([
        "--panel",
        &s(&panel),
        "--candidates",
        &s(&c),
        "--library",
        &s(&lib),
        "--horizon",
        "5",
        "--no-cache",
        "--out",
        &s(&dir.join("f5.parquet")),
    ]));
    assert!(
        e.contains("other processing settings") && e.contains("horizon 5 vs 1"),
        "{e}"
    );
    let bad = dir.join("params.yaml");
    std::fs::write(&bad, "- not\n- a mapping\n").unwrap();
    let e = fails(
        cmd(&lib, &panel, "1", &dir.join("x"))
            .args(SMALL_FOLDS)
            .args(["--params", &s(&bad)]),
    );
    assert!(e.contains("params.yaml") && e.contains("mapping"), "{e}");

    // A library with no factors, and one whose factor is NaN on fold 0's training dates.
    let l = af_library::Library::open(&lib, &af_panel::Panel::open(&panel).unwrap()).unwrap();
    let p = af_panel::Panel::open(&panel).unwrap();
    let write = |name: &str, factors: Vec<(String, Vec<f64>)>| -> PathBuf {
        let path = dir.join(format!("made/{name}.parquet"));
        let table = af_table::Table::new()
            .str("id", factors.iter().map(|f| f.0.as_str()))
            .str(
                "expression",
                factors.iter().map(|f| format!("made_{}", f.0)),
            );
        let prov = af_store::Provenance::new("test", "0");
        af_library::write(&path, table, factors, &p, l.meta.clone(), &prov).unwrap();
        path
    };
    let empty = write("empty", Vec::new());
    let e = fails(cmd(&empty, &panel, "1", &dir.join("x")).args(SMALL_FOLDS));
    assert!(e.contains("has no factors"), "{e}");
    let na = p.n_assets();
    let v0 = l.values(0).unwrap().to_vec();
    let mut late = l.values(1).unwrap().to_vec();
    late[..260 * na].fill(f64::NAN); // fold 0 trains on 49..249, fold 1 on 99..299
    let partial = write(
        "partial",
        vec![("a".repeat(64), v0), ("b".repeat(64), late)],
    );
    let out = dir.join("partial");
    let log = train(&partial, &panel, &out, &[]);
    assert!(
        log.contains("is NaN on every training date: dropped for this fold"),
        "{log}"
    );
    let f0 = read_json(&out.join("fold-00/fold.json"));
    assert_eq!(f0["dropped_features"].as_array().unwrap().len(), 1, "{f0}");
    assert_eq!(f0["features"].as_array().unwrap().len(), 1);
    let f1 = read_json(&out.join("fold-01/fold.json"));
    assert_eq!(
        f1["features"].as_array().unwrap().len(),
        2,
        "the factor exists by fold 1's training dates"
    );
}

/// Issue 35: the library against the field's standard. One run fits the library plus
/// Alpha158 (the main model), and compares the library, Alpha158 and the oracle (the
/// planted expressions) on the same folds: the Alpha158 features are the engine's own
/// `expr eval` of the shipped file, the combined model predicts what Python LightGBM
/// predicts on the same matrix, the oracle beats the planted alphas' equal-weight
/// blend, and every model's prediction is a costed portfolio. Alpha158 alone trains
/// without a library; a library of Alpha158's features is written despite members
/// without a Python export.
#[test]
fn compares_the_library_with_alpha158_and_the_oracle() {
    let dir = scratch("lgbm_compare");
    let (raw, panel) = small_market(&dir, 11);
    let lib = library(&dir.join("lib"), &panel);
    let out = dir.join("cmp");
    let feats = dir.join("alpha158.parquet");
    let o = ok(bin("lgbm-train")
        .args([
            "--library",
            &s(&lib),
            "--panel",
            &s(&panel),
            "--horizon",
            "1",
        ])
        .args([
            "--features",
            "alpha158",
            "--compare",
            "alpha158,ground-truth",
        ])
        .args(["--ground-truth", &s(&raw.join("ground_truth.json"))])
        .args(["--dump-fold", "1", "--dump-features", &s(&feats)])
        .args(SMALL_FOLDS)
        .args(["--out", &s(&out)]));
    let table = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        table.contains("library + alpha158") && table.contains("ground-truth"),
        "{table}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("compare.txt")).unwrap(),
        table.replace(&format!("wrote {}\n", out.display()), "")
    );

    // The features are the engine's Alpha158, as `expr eval` computes it.
    let eval = dir.join("eval.parquet");
    ok(bin("expr")
        .args([
            "eval",
            "--panel",
            &s(&panel),
            "--no-cache",
            "--out",
            &s(&eval),
        ])
        .args([
            "--file",
            &s(&root().join("tools/af-expr/sets/alpha158.txt")),
        ]));
    let (a, b) = (
        af_table::read_parquet(&feats).unwrap(),
        af_table::read_parquet(&eval).unwrap(),
    );
    let p = af_panel::Panel::open(&panel).unwrap();
    let na = p.n_assets();
    let (bd, bc) = (b.f64s("date").unwrap(), b.strings("code").unwrap());
    let mut compared = 0;
    for name in ["KMID", "ROC5", "CORR20", "RSQR60", "VSUMD30"] {
        let got = a.f64s(&format!("alpha158__{name}")).unwrap();
        let want = b.f64s(name).unwrap();
        for r in 0..want.len() {
            let t = p.dates().binary_search(&(bd[r] as i32)).unwrap();
            let c = p.codes().iter().position(|x| *x == bc[r]).unwrap();
            let g = got[t * na + c];
            assert!(
                g == want[r] || (g.is_nan() && want[r].is_nan()),
                "{name} row {r}: {g} vs {}",
                want[r]
            );
            compared += 1;
        }
    }
    assert!(compared > 1000, "{compared}");

    // The combined model (157 + library features) is Python LightGBM's on its matrix.
    let check = ok(python().args(["check_lgbm.py", "--fold-dir", &s(&out.join("fold-01"))]));
    assert!(String::from_utf8_lossy(&check.stdout).contains("OK"));

    let sum = read_json(&out.join("summary.json"));
    assert_eq!(sum["model"], "library + alpha158");
    let rows = sum["compare"]["models"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["model"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["library + alpha158", "library", "alpha158", "ground-truth"],
        "{sum}"
    );
    let row = |n: &str| rows.iter().find(|r| r["model"] == n).unwrap();
    for r in rows {
        assert!(r["test_rank_ic"].as_f64().unwrap().is_finite(), "{r}");
        assert!(
            r["portfolio"]["information_ratio"].as_f64().is_some(),
            "{r}"
        );
    }
    assert_eq!(row("alpha158")["features"], 158);
    let share = row("library + alpha158")["mined_importance_share"]
        .as_f64()
        .unwrap();
    assert!(share > 0.0 && share < 1.0, "{share}");
    // The oracle: at least the planted alphas' own equal-weight blend on the same dates.
    let oracle = row("ground-truth");
    let (ric, blend) = (
        oracle["test_rank_ic"].as_f64().unwrap(),
        oracle["equal_weight_test_rank_ic"].as_f64().unwrap(),
    );
    assert!(
        ric >= blend - 0.005,
        "oracle {ric} vs its equal-weight blend {blend}"
    );
    let captured = sum["compare"]["captured"].as_f64().unwrap();
    let lib_ric = row("library")["test_rank_ic"].as_f64().unwrap();
    assert!((captured - lib_ric / ric).abs() < 1e-5, "{captured}");
    assert!(
        out.join("compare/ground-truth/predictions.parquet")
            .is_file()
    );

    // Alpha158 alone: folds after a selection date, no library.
    let d299 = af_panel::dates::format_date(p.dates()[299]);
    let alone = dir.join("alone");
    ok(bin("lgbm-train")
        .args([
            "--features",
            "alpha158",
            "--selection-end",
            &d299,
            "--panel",
            &s(&panel),
        ])
        .args(SMALL_FOLDS)
        .args(["--out", &s(&alone)]));
    let a = read_json(&alone.join("summary.json"));
    assert_eq!(a["model"], "alpha158");
    assert_eq!(a["out_of_selection"]["selection_last"], d299);
    // Its stitched prediction is the compared Alpha158 model's: same folds, same seed.
    let (x, y) = (
        af_table::read_parquet(&alone.join("predictions.parquet")).unwrap(),
        af_table::read_parquet(&out.join("compare/alpha158/predictions.parquet")).unwrap(),
    );
    assert_eq!(x.f64s("prediction").unwrap(), y.f64s("prediction").unwrap());
    let e = fails(bin("lgbm-train").args([
        "--features",
        "alpha158",
        "--panel",
        &s(&panel),
        "--out",
        &s(&dir.join("x")),
    ]));
    assert!(e.contains("--selection-end"), "{e}");

    // Alpha158 as a library: library-merge writes it, leaving out of the Python module
    // what has no Python export (and saying so).
    let fit = dir.join("a158.fitness.parquet");
    ok(bin("fitness")
        .args([
            "--panel",
            &s(&panel),
            "--candidates",
            &s(&root().join("tools/af-expr/sets/alpha158.txt")),
        ])
        .args(["--admit-ratio", "0", "--no-cache", "--out", &s(&fit)]));
    let l = dir.join("a158lib/lib-000.parquet");
    let o = ok(bin("library-merge")
        .args([
            "--fitness",
            &s(&fit),
            "--panel",
            &s(&panel),
            "--max-size",
            "158",
            "--max-corr",
            "1.0",
        ])
        .args(["--out", &s(&l)]));
    let py = std::fs::read_to_string(l.with_extension("py")).unwrap();
    if py.contains("without a Python export") {
        assert!(String::from_utf8_lossy(&o.stderr).contains("no Python export"));
    }
    assert!(l.is_file() && l.with_extension("values.arrow").is_file());
}
