//! Qlib dialect: Qlib's own operator semantics and all 158 Alpha158 features.

use af_e2e::*;

fn fixture() -> std::path::PathBuf {
    root().join("tools/af-expr/sets/alpha158.txt")
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

/// Panels `a` and `b` agree on `fields` to `rtol`. With `trailing_ok`, `b` may end a
/// stock earlier (a source without rows for its last, suspended days).
fn same_fields(
    a: &std::path::Path,
    b: &std::path::Path,
    fields: &[&str],
    rtol: f64,
    trailing_ok: bool,
) {
    let (pa, pb) = (
        af_panel::Panel::open(a).unwrap(),
        af_panel::Panel::open(b).unwrap(),
    );
    assert_eq!(pa.codes(), pb.codes());
    assert_eq!(pa.dates(), pb.dates());
    let na = pa.n_assets();
    let close = pb.field("close").unwrap().data;
    let last: Vec<usize> = (0..na)
        .map(|a| {
            (0..pa.n_dates())
                .rev()
                .find(|t| close[t * na + a].is_finite())
                .unwrap_or(0)
        })
        .collect();
    for f in fields {
        // A return of float32-rounded prices is off by up to ~2 float32 ulps of 1.
        let atol = if *f == "returns" { 3e-7 } else { 0.0 };
        let (x, y) = (pa.field(f).unwrap().data, pb.field(f).unwrap().data);
        for (i, (u, v)) in x.iter().zip(y).enumerate() {
            let trailing = trailing_ok && v.is_nan() && i / na > last[i % na];
            assert!(
                trailing
                    || (u.is_nan() && v.is_nan())
                    || (u - v).abs() <= rtol * u.abs().max(1e-12) + atol,
                "{f} cell {i}: {u} vs {v}"
            );
        }
    }
}

/// `qlib-export`: real Qlib reads the folder (fields to float32, Alpha158 computed by
/// Qlib itself to 1e-5), and `ts-fetch --source qlib` reads it back into the same panel.
#[test]
fn qlib_export_is_read_by_qlib_and_round_trips() {
    let dir = scratch("qlib_export");
    let (raw, _) = small_market(&dir, 1);
    let q = dir.join("qlib");
    ok(bin("qlib-export").args(["--raw", &s(&raw), "--out", &s(&q)]));
    let panel = dir.join("backward.arrow");
    ok(bin("panel-build").args([
        "--raw",
        &s(&raw),
        "--out",
        &s(&panel),
        "--adjust",
        "backward",
    ]));
    let out = ok(python().args(["check_qlib_export.py", "fields", &s(&q), &s(&panel)]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("equal the panel's"));
    let eval = dir.join("alpha158.parquet");
    expr_eval(&panel, &fixture(), &eval);
    let out = ok(python().args(["check_qlib_export.py", "alpha158", &s(&q), &s(&eval)]));
    println!("{}", String::from_utf8_lossy(&out.stdout));

    // Round trip: export → import → panel equals the original on Qlib's fields.
    let back = dir.join("back");
    ok(bin("ts-fetch").args(["--source", "qlib", "--path", &s(&q), "--out", &s(&back)]));
    let p2 = dir.join("back.arrow");
    ok(bin("panel-build").args(["--raw", &s(&back), "--out", &s(&p2), "--adjust", "backward"]));
    same_fields(
        &panel,
        &p2,
        &[
            "open", "high", "low", "close", "volume", "vwap", "amount", "returns",
        ],
        2e-6,
        false,
    );
}

/// An update appends: byte-identical to a fresh export of the longer market, and a stock
/// that missed the first export's last day stays aligned (Qlib reads the carried close
/// on that day). A folder made by Qlib's own scripts/dump_bin.py imports correctly.
#[test]
fn qlib_update_equals_fresh_and_dump_bin_folders_import() {
    let dir = scratch("qlib_update");
    let (raw, _) = small_market(&dir, 2);
    let (short, long) = (dir.join("short.csv"), dir.join("long.csv"));
    let out = ok(python().args([
        "qlib_fixtures.py",
        "prefix",
        &s(&raw),
        &s(&short),
        &s(&long),
    ]));
    let gap = String::from_utf8_lossy(&out.stdout).to_string();
    let g: Vec<&str> = gap.split_whitespace().collect();
    let (code, day) = (g[1], g[2]);
    let fetch = |csv: &std::path::Path, out: &str| {
        ok(bin("ts-fetch").args([
            "--source",
            "files",
            "--path",
            &s(csv),
            "--out",
            &s(&dir.join(out)),
        ]));
        dir.join(out)
    };
    let (rs, rl) = (fetch(&short, "raw_short"), fetch(&long, "raw_long"));
    let (inc, fresh) = (dir.join("inc"), dir.join("fresh"));
    ok(bin("qlib-export").args(["--raw", &s(&rs), "--out", &s(&inc)]));
    let o = ok(bin("qlib-export").args(["--raw", &s(&rl), "--out", &s(&inc), "--update"]));
    assert!(String::from_utf8_lossy(&o.stdout).contains("appended"));
    ok(bin("qlib-export").args(["--raw", &s(&rl), "--out", &s(&fresh)]));
    assert_eq!(tree_hashes(&inc), tree_hashes(&fresh));
    let sym = {
        let (n, ex) = code.split_once('.').unwrap();
        format!("{ex}{n}")
    };
    let panel = dir.join("long.arrow");
    ok(bin("panel-build").args([
        "--raw",
        &s(&rl),
        "--out",
        &s(&panel),
        "--adjust",
        "backward",
    ]));
    let p = af_panel::Panel::open(&panel).unwrap();
    let a = p.codes().iter().position(|c| c == code).unwrap();
    let t = p
        .dates()
        .iter()
        .position(|d| af_panel::dates::format_date(*d) == day)
        .unwrap();
    let want = p.field("close").unwrap().get(t, a);
    assert_eq!(
        want,
        p.field("close").unwrap().get(t - 1, a),
        "the gap day carries the close"
    );
    let q = ok(python().args(["check_qlib_export.py", "at", &s(&inc), &sym, day, "close"]));
    let got: f64 = String::from_utf8_lossy(&q.stdout)
        .trim()
        .lines()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(got, want as f32 as f64, "{sym} on {day}");
    // An update onto other data is refused.
    let e = fails(bin("qlib-export").args(["--raw", &s(&raw), "--out", &s(&inc), "--update"]));
    assert!(e.contains("export to a new folder"), "{e}");

    // Qlib's own dumper: per-symbol CSVs → dump_bin.py dump_all → our import.
    let csvs = dir.join("csv");
    ok(python().args(["qlib_fixtures.py", "dumpcsv", &s(&raw), &s(&csvs)]));
    let qd = dir.join("dumped");
    ok(python().args([
        "qlib_dump_bin.py",
        "dump_all",
        "--data_path",
        &s(&csvs),
        "--qlib_dir",
        &s(&qd),
        "--include_fields",
        "open,high,low,close,volume,factor",
        "--date_field_name",
        "date",
        "--symbol_field_name",
        "symbol",
        "--max_workers",
        "1",
    ]));
    let back = dir.join("dumped_raw");
    ok(bin("ts-fetch").args(["--source", "qlib", "--path", &s(&qd), "--out", &s(&back)]));
    let (p1, p2) = (dir.join("orig.arrow"), dir.join("dumped.arrow"));
    ok(bin("panel-build").args(["--raw", &s(&raw), "--out", &s(&p1), "--adjust", "backward"]));
    ok(bin("panel-build").args(["--raw", &s(&back), "--out", &s(&p2), "--adjust", "backward"]));
    // Qlib data has no row on a suspended day, so a stock suspended until the end of
    // the market ends at its last trade there.
    same_fields(
        &p1,
        &p2,
        &["open", "high", "low", "close", "volume", "returns"],
        2e-6,
        true,
    );
}
