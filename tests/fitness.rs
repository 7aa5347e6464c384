//! `fitness`: every output column against pandas/scipy and alphalens-reloaded, bad
//! input recorded or refused, determinism, shards, FAST→FULL, and no look-ahead.

use std::path::{Path, PathBuf};

use af_e2e::*;
use af_table::read_parquet;

const GOOD: &str = "\
# planted-style signals, a neutral one, a group operator
rank(ts_mean(returns, 5)) * -1
ts_corr(close, volume, 10)
close
rank(close / ts_delay(close, 5))
ts_std(returns, 20) * -1
group_neutralize(ts_sum(returns, 10), industry)
";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

fn fitness(panel: &Path, cands: &Path, out: &Path, extra: &[&str]) -> std::process::Command {
    let mut c = bin("fitness");
    c.args([
        "--panel",
        &s(panel),
        "--candidates",
        &s(cands),
        "--out",
        &s(out),
    ])
    .args(extra);
    c
}

fn check_reference(panel: &Path, cands: &Path, dir: &Path, extra: &[&str], alphalens: bool) {
    check_reference_lib(panel, cands, dir, extra, alphalens, None)
}

fn check_reference_lib(
    panel: &Path,
    cands: &Path,
    dir: &Path,
    extra: &[&str],
    alphalens: bool,
    library: Option<&Path>,
) {
    let (out, ics, vals) = (
        dir.join("f.parquet"),
        dir.join("ic.parquet"),
        dir.join("v.parquet"),
    );
    let mut args = extra.to_vec();
    let ic_s = s(&ics);
    args.extend(["--ic-series", &ic_s]);
    ok(&mut fitness(panel, cands, &out, &args));
    expr_eval(panel, cands, &vals);
    let mut py = python();
    py.args([
        "check_fitness.py",
        "--panel",
        &s(panel),
        "--values",
        &s(&vals),
        "--fitness",
        &s(&out),
        "--ic-series",
        &s(&ics),
    ]);
    if alphalens {
        py.arg("--alphalens");
    }
    if let Some(l) = library {
        py.args(["--library", &s(l)]);
    }
    let res = ok(&mut py);
    let text = String::from_utf8_lossy(&res.stdout);
    let n: usize = text
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(n > 5000, "too few figures compared: {text}");
}

#[test]
fn every_column_matches_pandas_scipy_and_alphalens() {
    let dir = scratch("fitness_reference");
    let (_, panel) = small_market(&dir, 3);
    let cands = write(&dir, "good.txt", GOOD);
    // Defaults (60/20/20, quantile winsor, industry+size), with alphalens on top.
    check_reference(&panel, &cands, &dir, &["--horizon", "1"], true);
    // Other settings: MAD winsor, industry only, 5-day label, one split.
    check_reference(
        &panel,
        &cands,
        &dir,
        &[
            "--horizon",
            "5",
            "--winsor",
            "mad:5",
            "--neutralize",
            "industry",
            "--split",
            "all",
        ],
        false,
    );
    // Several horizons: each candidate on its best (the reference picks it itself).
    check_reference(&panel, &cands, &dir, &["--horizons", "5,1,10"], false);
    let mut picked: Vec<u64> = read_parquet(&dir.join("f.parquet"))
        .unwrap()
        .f64s("horizon")
        .unwrap()
        .into_iter()
        .map(|h| h as u64)
        .collect();
    picked.sort_unstable();
    picked.dedup();
    assert!(
        picked.len() >= 2,
        "every candidate kept one horizon: {picked:?}"
    );
    // Raw z-scored `close` has prices equal to within rounding (carried-forward
    // suspensions), whose order a last-bit difference can swap: leave it out here.
    let no_close = write(&dir, "no_close.txt", &GOOD.replace("\nclose\n", "\n"));
    check_reference(
        &panel,
        &no_close,
        &dir,
        &[
            "--horizon",
            "10",
            "--winsor",
            "none",
            "--neutralize",
            "none",
            "--min-assets",
            "100",
        ],
        false,
    );
}

fn column_strings(p: &Path, name: &str) -> Vec<String> {
    read_parquet(p)
        .expect("read")
        .strings(name)
        .expect("column")
}

#[test]
fn bad_candidates_are_recorded_and_the_rest_go_on_deterministically() {
    let dir = scratch("fitness_bad");
    let (_, panel) = small_market(&dir, 4);
    let cands = write(
        &dir,
        "mixed.txt",
        "rank(ts_mean(returns, 5)) * -1\nts_mean(clos, 5)\nlog(close * -1)\nclose / close\nts_mean(close, 3000)\nts_corr(close, volume, 10)\n",
    );
    let (a, b) = (dir.join("a.parquet"), dir.join("b.parquet"));
    ok(&mut fitness(&panel, &cands, &a, &["--horizon", "1"]));
    ok(&mut fitness(&panel, &cands, &b, &["--horizon", "1"]));
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "not deterministic"
    );
    let status = column_strings(&a, "status");
    assert_eq!(status.len(), 18, "one row per (candidate, split)");
    let per: Vec<&String> = status.iter().step_by(3).collect();
    assert_eq!(per[0], "ok");
    assert!(
        per[1].starts_with("invalid: unknown field `clos`") && per[1].contains("column"),
        "{}",
        per[1]
    );
    assert!(
        per[2].starts_with("degenerate: NaN everywhere"),
        "{}",
        per[2]
    );
    assert!(
        per[3].starts_with("degenerate: no usable date"),
        "{}",
        per[3]
    );
    assert!(per[4].contains("out of range"), "{}", per[4]);
    assert_eq!(per[5], "ok");
    let t = read_parquet(&a).unwrap();
    let score = t.f64s("score").unwrap();
    assert!(score[0] > 0.0 && score[3] == 0.0 && score[6] == 0.0);
    assert_eq!(
        column_strings(&a, "split")[..3],
        ["train".to_string(), "valid".into(), "test".into()]
    );

    // Shards by content id: merged, byte-identical to the whole run for n = 1, 2, 3, 7
    // (bad candidates included), and a shard holds the same candidates in any order.
    let whole = std::fs::read(&a).unwrap();
    for n in [1usize, 2, 3, 7] {
        let parts: Vec<PathBuf> = (0..n)
            .map(|i| {
                let o = dir.join(format!("s{i}of{n}.parquet"));
                ok(&mut fitness(
                    &panel,
                    &cands,
                    &o,
                    &["--horizon", "1", "--shard", &format!("{i}/{n}")],
                ));
                o
            })
            .collect();
        let merged = dir.join(format!("merged{n}.parquet"));
        let mut c = bin("fitness");
        c.arg("--merge")
            .args(parts.iter().map(|p| s(p)))
            .args(["--out", &s(&merged)]);
        ok(&mut c);
        assert_eq!(std::fs::read(&merged).unwrap(), whole, "{n} shards merged");
        if n == 3 {
            // A missing shard and a repeated one are refused.
            let e = fails(
                bin("fitness")
                    .arg("--merge")
                    .args([s(&parts[0]), s(&parts[1])])
                    .args(["--out", &s(&dir.join("x.parquet"))]),
            );
            assert!(e.contains("shard 2/3 is missing"), "{e}");
            let e = fails(
                bin("fitness")
                    .arg("--merge")
                    .args([s(&parts[0]), s(&parts[0]), s(&parts[2])])
                    .args(["--out", &s(&dir.join("x.parquet"))]),
            );
            assert!(e.contains("given twice"), "{e}");
        }
    }
    let reversed: String = std::fs::read_to_string(&cands)
        .unwrap()
        .lines()
        .rev()
        .map(|l| format!("{l}\n"))
        .collect();
    let rev = write(&dir, "reversed.txt", &reversed);
    for i in 0..3 {
        let (x, y) = (
            dir.join(format!("f{i}.parquet")),
            dir.join(format!("r{i}.parquet")),
        );
        ok(&mut fitness(
            &panel,
            &cands,
            &x,
            &["--horizon", "1", "--shard", &format!("{i}/3")],
        ));
        ok(&mut fitness(
            &panel,
            &rev,
            &y,
            &["--horizon", "1", "--shard", &format!("{i}/3")],
        ));
        let (mut p, mut q) = (
            column_strings(&x, "expression"),
            column_strings(&y, "expression"),
        );
        p.sort();
        q.sort();
        assert_eq!(p, q, "shard {i}/3 holds the same candidates reordered");
    }
}

#[test]
fn bad_input_gets_a_clear_error() {
    let dir = scratch("fitness_errors");
    let (_, panel) = small_market(&dir, 5);
    let cands = write(&dir, "c.txt", "close\n");
    let out = dir.join("o.parquet");
    let e = fails(&mut fitness(&panel, &cands, &out, &["--horizon", "7"]));
    assert!(
        e.contains("no label for horizon 7") && e.contains("fwd_ret_5"),
        "{e}"
    );
    let e = fails(&mut fitness(&panel, &cands, &out, &["--horizons", "1,7"]));
    assert!(e.contains("no label for horizon 7"), "{e}");
    let e = fails(&mut fitness(&panel, &cands, &out, &["--horizons", "1,5,1"]));
    assert!(e.contains("twice"), "{e}");
    let e = fails(&mut fitness(
        &panel,
        &cands,
        &out,
        &["--horizon", "1", "--splits", "train=2100-01-01.."],
    ));
    assert!(e.contains("holds no panel date"), "{e}");
    let e = fails(&mut fitness(
        &panel,
        &cands,
        &out,
        &["--horizon", "1", "--splits", "valid=.."],
    ));
    assert!(e.contains("named train"), "{e}");
    let e = fails(&mut fitness(
        &panel,
        &cands,
        &out,
        &["--horizon", "1", "--winsor", "clip:3"],
    ));
    assert!(e.contains("--winsor"), "{e}");
    let broken = write(&dir, "broken.parquet", "PAR1 this is not really parquet");
    let e = fails(&mut fitness(&panel, &broken, &out, &["--horizon", "1"]));
    assert!(e.contains("broken.parquet"), "{e}");
    assert!(!out.exists(), "no output after an error");
}

#[test]
fn no_look_ahead_and_a_peeking_factor_is_flagged() {
    let dir = scratch("fitness_lookahead");
    let (_, panel) = small_market(&dir, 6);
    // Train is the first 300 of 500 dates (60%); change everything after it.
    let future = dir.join("other_future.arrow");
    ok(python().args([
        "tamper_panel.py",
        &s(&panel),
        &s(&future),
        "--after",
        "299",
        "--add-tomorrow",
    ]));
    let cands = write(
        &dir,
        "c.txt",
        "close\nrank(ts_mean(returns, 5)) * -1\nts_corr(close, volume, 10)\n",
    );
    for h in ["1", "5"] {
        let (a, b) = (dir.join("a.parquet"), dir.join("b.parquet"));
        ok(&mut fitness(&panel, &cands, &a, &["--horizon", h]));
        ok(&mut fitness(&future, &cands, &b, &["--horizon", h]));
        let (ta, tb) = (read_parquet(&a).unwrap(), read_parquet(&b).unwrap());
        let split = column_strings(&a, "split");
        let mut valid_differs = false;
        for col in [
            "ic_mean",
            "rank_ic_mean",
            "rank_ic_std",
            "turnover",
            "top_turnover",
            "long_short_mean",
            "coverage",
            "score",
        ] {
            let (x, y) = (ta.f64s(col).unwrap(), tb.f64s(col).unwrap());
            for i in 0..x.len() {
                if split[i] == "train" || col == "score" {
                    assert!(
                        x[i].to_bits() == y[i].to_bits(),
                        "h={h} {col} row {i}: train figure changed with the future ({} vs {})",
                        x[i],
                        y[i]
                    );
                } else if split[i] == "valid" && x[i] != y[i] {
                    valid_differs = true;
                }
            }
        }
        assert!(
            valid_differs,
            "the tampered future should change the valid split"
        );
    }
    // A factor that reads tomorrow's close: implausible IC, not admitted, score 0.
    let peek = write(&dir, "peek.txt", "tomorrow / close\nclose\n");
    let o = dir.join("peek.parquet");
    ok(&mut fitness(&future, &peek, &o, &["--horizon", "1"]));
    let t = read_parquet(&o).unwrap();
    let status = column_strings(&o, "status");
    assert!(
        status[0].starts_with("suspect:") && status[0].contains("look-ahead"),
        "{}",
        status[0]
    );
    assert_eq!(t.f64s("score").unwrap()[0], 0.0);
    assert!(
        !t.bools("admit").unwrap()[1],
        "a look-ahead factor is never admitted"
    );
    assert!(status[3] == "ok", "{}", status[3]);
}

#[test]
fn fast_screens_then_full_pass_for_the_best() {
    let dir = scratch("fitness_fast");
    let (_, panel) = small_market(&dir, 7);
    let cands = write(&dir, "c.txt", GOOD);
    let o = dir.join("f.parquet");
    ok(&mut fitness(
        &panel,
        &cands,
        &o,
        &["--horizon", "1", "--fast", "--fast-threshold", "0.02"],
    ));
    let t = read_parquet(&o).unwrap();
    let pass = column_strings(&o, "pass");
    let fast = t.f64s("fast_rank_ic").unwrap();
    let valid_ric = t.f64s("rank_ic_mean").unwrap();
    let split = column_strings(&o, "split");
    let mut n_full = 0;
    for i in 0..pass.len() {
        assert!(fast[i].is_finite(), "every candidate has its FAST figure");
        if pass[i] == "full" {
            assert!(fast[i].abs() >= 0.02);
            n_full += 1;
        } else {
            assert_eq!(pass[i], "fast");
            assert!(fast[i].abs() < 0.02);
            if split[i] != "train" {
                assert!(
                    valid_ric[i].is_nan(),
                    "no full figures without the full pass"
                );
            }
        }
    }
    assert!(n_full >= 3 && n_full < pass.len(), "{pass:?} {fast:?}");
}

#[test]
fn library_correlation_uses_the_librarys_stored_values() {
    let dir = scratch("fitness_library");
    let (_, panel) = small_market(&dir, 8);
    let cands = write(&dir, "good.txt", GOOD);
    let first = dir.join("gen-000.fitness.parquet");
    ok(&mut fitness(&panel, &cands, &first, &["--horizon", "1"]));
    let lib = dir.join("lib-001.parquet");
    ok(bin("library-merge").args([
        "--fitness",
        &s(&first),
        "--panel",
        &s(&panel),
        "--out",
        &s(&lib),
    ]));
    let current = dir.join("current.parquet");
    assert!(current.exists());
    // Candidates overlap the library: their max |corr| and the zeroed scores must be
    // what pandas computes from the stored values.
    let l = s(&current);
    check_reference_lib(
        &panel,
        &cands,
        &dir,
        &["--horizon", "1", "--library", &l],
        false,
        Some(&current),
    );
    let out = dir.join("f.parquet");
    let t = read_parquet(&out).unwrap();
    let pc = t.f64s("penalty_corr").unwrap();
    assert!(
        pc.iter().any(|p| *p == 1.0),
        "members of the library must hit the bound"
    );

    // Another panel: refused, naming both hashes.
    let (_, other) = small_market(&dir.join("other"), 9);
    let e = fails(&mut fitness(
        &other,
        &cands,
        &dir.join("x.parquet"),
        &["--horizon", "1", "--library", &l],
    ));
    assert!(
        e.contains("built on panel") && e.contains("current.parquet"),
        "{e}"
    );
    // A truncated values file: refused, never read as numbers.
    let values = dir.join("lib-001.values.arrow");
    let bytes = std::fs::read(&values).unwrap();
    std::fs::write(&values, &bytes[..bytes.len() / 2]).unwrap();
    let e = fails(&mut fitness(
        &panel,
        &cands,
        &dir.join("x.parquet"),
        &["--horizon", "1", "--library", &l],
    ));
    assert!(e.contains("values file") && e.contains("truncated"), "{e}");
}
