//! All 101 formulaic alphas (Kakushadze 2016) in the paper's notation: parse, evaluate, match pandas.

use std::fs;

use af_e2e::*;

fn fixture() -> std::path::PathBuf {
    root().join("tests/fixtures/alpha101.txt")
}

#[test]
fn all_101_alphas_parse_in_the_papers_notation() {
    // The fixture holds the 101 formulas as printed in the paper's Appendix A.
    let text = fs::read_to_string(fixture()).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("alpha")).collect();
    assert_eq!(lines.len(), 101);
    for (i, l) in lines.iter().enumerate() {
        assert!(l.starts_with(&format!("alpha{:03} = ", i + 1)), "{l}");
    }
    for notation in [
        "Ts_Rank(",
        "SignedPower(",
        "IndNeutralize(",
        "indneutralize(",
        "IndClass.sector",
        "IndClass.subindustry",
        "adv20",
        " ? ",
        " || ",
        ")^",
        ", 3.92795)",
        "Ts_ArgMax(",
    ] {
        assert!(text.contains(notation), "{notation}");
    }

    let out = ok(bin("expr").args(["check", "--dialect", "alpha101", "--file", &s(&fixture())]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let parsed: Vec<(&str, &str)> = stdout
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some((f.next()?, f.nth(1)?))
        })
        .collect();
    assert_eq!(parsed.len(), 101, "{stdout}");
    for (i, (name, _)) in parsed.iter().enumerate() {
        assert_eq!(*name, format!("alpha{:03}", i + 1));
    }
    // Spot checks of the translation: fractional windows floored, IndClass.* is the
    // panel's industry, adv{d} is ts_mean(amount, d).
    let canon = |n: usize| parsed[n - 1].1;
    assert_eq!(canon(4), "mul(-1,ts_rank(rank(low),9))");
    assert_eq!(
        canon(58),
        "mul(-1,ts_rank(ts_decay_linear(ts_corr(group_neutralize(vwap,industry),volume,3),7),5))"
    );
    assert_eq!(canon(101), "div(sub(close,open),add(0.001,sub(high,low)))");
    assert!(canon(7).contains("ts_mean(amount,20)"), "{}", canon(7));
}

#[test]
fn alphas_evaluate_on_small_and_match_pandas() {
    let dir = scratch("alpha101");
    let (_, panel) = small_market(&dir, 1);
    let out = dir.join("alpha101.parquet");
    expr_eval(&panel, &fixture(), &out);
    // An independent pandas re-implementation, cell by cell to 1e-9 relative.
    let res = ok(python().args(["check_alpha101.py", &s(&panel), &s(&out)]));
    let text = String::from_utf8_lossy(&res.stdout);
    let n: usize = text
        .lines()
        .find_map(|l| l.strip_suffix(" alphas match pandas"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no summary line:\n{text}"));
    assert!(n >= 30, "only {n} alphas match pandas:\n{text}");
}
