//! `backtest`: a pandas re-implementation of the documented rules reproduces the daily
//! net returns and every order's status (refused ones included) on the `small` market;
//! bad signals get clear errors.

use af_e2e::*;

#[test]
fn backtest_matches_a_pandas_reimplementation_and_rejects_bad_signals() {
    let dir = scratch("backtest");
    let (_, panel) = small_market(&dir, 1);
    // A 5-day reversal factor as the signal.
    let sig = dir.join("signal.parquet");
    ok(bin("expr").args([
        "eval",
        "--panel",
        &s(&panel),
        "--expr=-ts_sum(returns, 5)",
        "--out",
        &s(&sig),
        "--no-cache",
    ]));
    let t = af_table::read_parquet(&sig).unwrap();
    let col = t
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .find(|c| c != "date" && c != "code")
        .unwrap();
    let out = dir.join("bt");
    // Qlib's flat limit rule at the close (what Qlib's own backtest checks below).
    let args = ["--topk", "20", "--n-drop", "3", "--limit-rule", "flat"];
    let backtest = |out: &std::path::Path, extra: &[&str]| {
        let mut c = bin("backtest");
        c.args([
            "--signal",
            &s(&sig),
            "--column",
            &col,
            "--panel",
            &s(&panel),
        ])
        .args(["--out", &s(out)])
        .args(extra);
        c
    };
    let o = ok(&mut backtest(&out, &args));
    println!("{}", String::from_utf8_lossy(&o.stdout));
    let check = ok(python()
        .args([
            "check_backtest.py",
            &s(&panel),
            &s(&sig),
            &s(&out),
            "--column",
            &col,
        ])
        .args(args));
    let text = String::from_utf8_lossy(&check.stdout).to_string();
    assert!(text.contains("OK"), "{text}");
    // Qlib's own backtest (TopkDropoutStrategy, SimulatorExecutor, Exchange) on the
    // same signal and prices: the same daily returns and costs.
    let q = ok(python().args([
        "check_backtest_qlib.py",
        &s(&panel),
        &s(&sig),
        &col,
        &s(&out),
        "20",
        "3",
    ]));
    let text = String::from_utf8_lossy(&q.stdout).to_string();
    println!("{text}");
    assert!(text.contains("OK"), "{text}");
    // The default board limits, dealing at the open: the pandas rules again.
    let board = dir.join("bt_board");
    let args2 = ["--topk", "20", "--n-drop", "3", "--deal", "open"];
    ok(&mut backtest(&board, &args2));
    let check = ok(python()
        .args([
            "check_backtest.py",
            &s(&panel),
            &s(&sig),
            &s(&board),
            "--column",
            &col,
        ])
        .args(args2));
    let text = String::from_utf8_lossy(&check.stdout).to_string();
    assert!(text.contains("OK"), "{text}");
    let sum = read_json(&out.join("summary.json"));
    let refused: u64 = sum["refused"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(
        refused > 0,
        "the small market has limit days and suspensions: {sum}"
    );
    for k in [
        "benchmark",
        "excess_return_without_cost",
        "excess_return_with_cost",
    ] {
        assert!(
            sum["risk"][k]["information_ratio"]
                .as_f64()
                .unwrap()
                .is_finite(),
            "{k}"
        );
    }
    // Same inputs, same bytes.
    let again = dir.join("bt2");
    ok(&mut backtest(&again, &args));
    assert_eq!(tree_hashes(&out), tree_hashes(&again));

    // Bad signals: duplicate rows, a date off the calendar, topk above the universe.
    let csv = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        let pq = dir.join(format!("{name}.parquet"));
        ok(python().args([
            "-c",
            "import sys, pandas as pd; d = pd.read_csv(sys.argv[1]); d['date'] = pd.to_datetime(d['date']).dt.date; d.to_parquet(sys.argv[2])",
            &s(&p),
            &s(&pq),
        ]));
        pq
    };
    let p = af_panel::Panel::open(&panel).unwrap();
    let (d0, c0) = (
        af_panel::dates::format_date(p.dates()[3]),
        p.codes()[0].clone(),
    );
    let dup = csv(
        "dup.csv",
        &format!("date,code,score\n{d0},{c0},1\n{d0},{c0},2\n"),
    );
    let e = fails(bin("backtest").args([
        "--signal",
        &s(&dup),
        "--panel",
        &s(&panel),
        "--out",
        &s(&dir.join("x")),
    ]));
    assert!(e.contains("two rows for"), "{e}");
    let off = csv("off.csv", &format!("date,code,score\n1990-01-01,{c0},1\n"));
    let e = fails(bin("backtest").args([
        "--signal",
        &s(&off),
        "--panel",
        &s(&panel),
        "--out",
        &s(&dir.join("x")),
    ]));
    assert!(e.contains("not a trading date"), "{e}");
    let e = fails(&mut backtest(&dir.join("x"), &["--topk", "5000"]));
    assert!(e.contains("larger than the universe"), "{e}");
    assert!(!dir.join("x").exists());
}
