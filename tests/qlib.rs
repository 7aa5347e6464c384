//! Qlib dialect: Qlib's own operator semantics and all 158 Alpha158 features.

use af_e2e::*;

fn fixture() -> std::path::PathBuf {
    root().join("tests/fixtures/alpha158.txt")
}

#[test]
fn alpha158_fixture_is_what_qlib_itself_configures() {
    // Regenerated from the installed pyqlib wheel (Qlib's own loader code) and compared.
    let out = ok(python().args(["alpha158.py", "--check", &s(&fixture())]));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("158"), "{text}");
}

#[test]
fn all_158_alpha158_features_parse_evaluate_and_match_qlib_semantics() {
    let out = ok(bin("expr").args(["check", "--file", &s(&fixture())]));
    let n = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(n, 158);

    let dir = scratch("qlib_alpha158");
    let (_, panel) = small_market(&dir, 1);
    let eval = dir.join("alpha158.parquet");
    expr_eval(&panel, &fixture(), &eval);
    let res = ok(python().args([
        "check_alpha158.py",
        &s(&panel),
        &s(&eval),
        "--min-match",
        "20",
    ]));
    let text = String::from_utf8_lossy(&res.stdout);
    let matched: usize = text
        .lines()
        .find_map(|l| l.strip_suffix(" features match Qlib semantics"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(matched >= 20, "{text}");
}

#[test]
fn qlib_spellings_and_errors() {
    // Qlib's rolling ops are the q_ family (partial windows); comparisons are numpy's.
    let out = ok(bin("expr").args([
        "check",
        "--dialect",
        "qlib",
        "IdxMax($high, 5) + Mean($close > Ref($close, 1), 20)",
    ]));
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        line.contains("add(q_idxmax(high,5),q_mean(q_gt(close,ts_delay(close,1)),20))"),
        "{line}"
    );
    let err = fails(bin("expr").args(["check", "--dialect", "qlib", "WMA($close, 5)"]));
    assert!(
        err.contains("not supported yet") && err.contains('^'),
        "{err}"
    );
    let err = fails(bin("expr").args(["check", "--dialect", "qlib", "Mean(close, 5)"]));
    assert!(err.contains("`$`"), "{err}");
}

#[test]
fn every_evaluated_qlib_operator_matches_qlib_semantics() {
    // One probe per Qlib operator the dialect evaluates (tests/fixtures/qlib_ops.txt),
    // on fields with NaN, -inf inputs and booleans.
    let fx = root().join("tests/fixtures/qlib_ops.txt");
    let dir = scratch("qlib_ops");
    let (_, panel) = small_market(&dir, 2);
    let eval = dir.join("ops.parquet");
    expr_eval(&panel, &fx, &eval);
    let n = std::fs::read_to_string(&fx)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count();
    // Skew of near-symmetric windows is ~1e-13: compare it with an absolute floor.
    let res = ok(python().args([
        "check_alpha158.py",
        &s(&panel),
        &s(&eval),
        "--fixture",
        &s(&fx),
        "--atol",
        "1e-11",
        "--min-match",
        &n.to_string(),
    ]));
    let text = String::from_utf8_lossy(&res.stdout);
    assert!(
        text.contains(&format!("{n} features match Qlib semantics")),
        "{text}"
    );
}
