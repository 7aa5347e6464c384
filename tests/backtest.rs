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

/// A foreign market (flat +50 % / −40 % limits, traded value but no volume) as CSV:
/// `n` codes × `days` days of seeded small moves; `edit(code, day, close)` may change a
/// close before it is written (open = high = low = close).
fn foreign_csv(n: usize, days: usize, edit: impl Fn(usize, usize, f64) -> f64) -> String {
    let mut csv = String::from("trade_date,code,open,high,low,close,amount\n");
    let mut state = 0x9e3779b97f4a7c15u64;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut px: Vec<f64> = (0..n).map(|a| 5.0 + a as f64).collect();
    let start = af_panel::dates::parse_date("2019-01-01").unwrap();
    let mut day = start;
    for t in 0..days {
        // Weekdays only.
        day += 1;
        while (day + 3).rem_euclid(7) >= 5 {
            day += 1;
        }
        let d = af_panel::dates::format_date(day).replace('-', "");
        for (a, p) in px.iter_mut().enumerate() {
            *p *= 1.0 + 0.04 * (rnd() - 0.5);
            let c = edit(a, t, *p);
            let amt = 1e6 * (1.0 + rnd()) * (1 + a) as f64;
            csv += &format!("{d},X{a:03},{c},{c},{c},{c},{amt}\n");
        }
    }
    csv
}

/// Issue 34: one impossible print (×171 on a +50 % market) is a break — no return spans
/// it, the prices before it are re-based — so a market with it and the same market
/// without it give the same panel (but for the break's return and the labels across it)
/// and the same backtest: every daily figure equal to 1e-9, the held name's day
/// included; the one difference is the benchmark of the break day, which leaves the
/// break out. A +45 % day stays a return; the profile's +50 % limit refuses orders.
#[test]
fn an_impossible_print_is_a_break_and_changes_no_figure() {
    let dir = scratch("breaks");
    let (n, days, d, k) = (30usize, 160usize, 90usize, 7usize);
    // X007's true move on the break day is 0 (so the clean run's figure for it is known);
    // X012 makes a +45 % day on day 60 in both markets.
    let base = |a: usize, t: usize, c: f64| if a == 12 && t == 60 { c * 1.45 } else { c };
    let clean = foreign_csv(n, days, |a, t, c| base(a, t, c));
    // Flatten X007's day-d move in both: its close on d equals d−1's.
    let flat = |csv: &str, mult: f64| -> String {
        let mut prev = 0.0;
        let mut out = String::new();
        let mut t = 0usize;
        let mut last_date = String::new();
        for (i, line) in csv.lines().enumerate() {
            if i == 0 {
                out += line;
                out.push('\n');
                continue;
            }
            let f: Vec<&str> = line.split(',').collect();
            if f[0] != last_date {
                if !last_date.is_empty() {
                    t += 1;
                }
                last_date = f[0].to_string();
            }
            if f[1] != format!("X{k:03}") {
                out += line;
                out.push('\n');
                continue;
            }
            let mut c: f64 = f[2].parse().unwrap();
            if t == d {
                c = prev;
            }
            prev = c;
            let c = if t >= d { c * mult } else { c };
            out += &format!("{},{},{c},{c},{c},{c},{}\n", f[0], f[1], f[6]);
        }
        out
    };
    let profile = dir.join("xse.yaml");
    std::fs::write(&profile, "name: xse\nlimit_up: 0.5\nlimit_down: 0.4\n").unwrap();
    let mut panels = Vec::new();
    for (name, mult) in [("clean", 1.0), ("jump", 171.0)] {
        let csv = dir.join(format!("{name}.csv"));
        std::fs::write(&csv, flat(&clean, mult)).unwrap();
        let raw = dir.join(format!("raw-{name}"));
        let o = ok(bin("ts-fetch").args([
            "--source",
            "files",
            "--path",
            &s(&csv),
            "--market",
            &s(&profile),
            "--out",
            &s(&raw),
        ]));
        let err = String::from_utf8_lossy(&o.stderr);
        let man = read_json(&raw.join("manifest.json"));
        let moves = man["moves"].as_array().unwrap();
        if mult == 1.0 {
            assert!(moves.is_empty(), "a +45 % day is a return: {moves:?}");
        } else {
            assert_eq!(moves.len(), 1, "{moves:?}");
            assert_eq!(moves[0]["action"], "break");
            assert_eq!(moves[0]["code"], format!("X{k:03}"));
            assert!(err.contains("1 breaks"), "{err}");
        }
        let panel = dir.join(format!("{name}.arrow"));
        let o = ok(bin("panel-build").args([
            "--raw",
            &s(&raw),
            "--horizons",
            "1,5",
            "--min-list-days",
            "0",
            "--out",
            &s(&panel),
        ]));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.contains("breaks"), mult != 1.0, "{err}");
        panels.push(panel);
    }
    let pc = af_panel::Panel::open(&panels[0]).unwrap();
    let pj = af_panel::Panel::open(&panels[1]).unwrap();
    let na = pc.n_assets();
    let cell = d * na + k;
    // Returns and labels: equal but at the break; X007's prices 171 × the clean ones.
    let (rc, rj) = (
        pc.field("returns").unwrap().data,
        pj.field("returns").unwrap().data,
    );
    for i in 0..rc.len() {
        if i == cell {
            assert!(rj[i].is_nan() && rc[i] == 0.0);
        } else {
            // X007's prices are 171× the clean ones: the same return to rounding.
            let same = (rc[i] - rj[i]).abs() <= 1e-12 || (rc[i].is_nan() && rj[i].is_nan());
            assert!(same, "returns at {i}: {} vs {}", rc[i], rj[i]);
        }
    }
    let r45 = rj[60 * na + 12];
    assert!(r45 > 0.4 && r45 < 0.5, "a +45 % day stays a return: {r45}");
    for h in [1usize, 5] {
        let name = format!("fwd_ret_{h}");
        let (lc, lj) = (pc.field(&name).unwrap().data, pj.field(&name).unwrap().data);
        for i in 0..lc.len() {
            let (t, a) = (i / na, i % na);
            if a == k && t < d && t + h >= d {
                assert!(lj[i].is_nan(), "{name} spans the break at t={t}");
            } else {
                let close = (lc[i] - lj[i]).abs() <= 1e-12 * lc[i].abs().max(1.0);
                assert!(
                    close || (lc[i].is_nan() && lj[i].is_nan()),
                    "{name} at t={t} a={a}"
                );
            }
        }
    }
    let (cc, cj) = (
        pc.field("close").unwrap().data,
        pj.field("close").unwrap().data,
    );
    for t in 0..pc.n_dates() {
        let r = cj[t * na + k] / cc[t * na + k];
        assert!(
            (r / 171.0 - 1.0).abs() < 1e-12,
            "re-based close at t={t}: ×{r}"
        );
    }
    // The break is listed in the panel's provenance.
    assert_eq!(pj.description()["breaks"]["count"], 1);

    // A signal holding X007 all along (the best score every day), the others seeded.
    let sigp = dir.join("signal.parquet");
    let (mut sd, mut sc, mut sv) = (Vec::new(), Vec::new(), Vec::new());
    for (t, day) in pc.dates().iter().enumerate() {
        for a in 0..na {
            sd.push(*day);
            sc.push(format!("X{a:03}"));
            sv.push(if a == k {
                100.0
            } else {
                ((t * 31 + a * 17) % 29) as f64
            });
        }
    }
    af_table::write_parquet(
        &sigp,
        af_table::Table::new()
            .date("date", sd)
            .str("code", sc)
            .f64("score", sv),
        &af_store::Provenance::new("test", "0"),
    )
    .unwrap();
    let mut daily = Vec::new();
    let mut sums = Vec::new();
    for (name, panel) in ["clean", "jump"].iter().zip(&panels) {
        let out = dir.join(format!("bt-{name}"));
        ok(bin("backtest").args([
            "--signal",
            &s(&sigp),
            "--panel",
            &s(panel),
            "--topk",
            "5",
            "--n-drop",
            "1",
            "--out",
            &s(&out),
        ]));
        daily.push(af_table::read_parquet(&out.join("daily.parquet")).unwrap());
        sums.push(read_json(&out.join("summary.json")));
    }
    assert!(
        sums[1]["limits"].as_str().unwrap().contains("xse"),
        "{}",
        sums[1]["limits"]
    );
    let dates = daily[0].f64s("date").unwrap();
    let t_break = dates
        .iter()
        .position(|x| *x as i32 == pc.dates()[d])
        .unwrap();
    for col in [
        "value",
        "gross_return",
        "net_return",
        "cost",
        "turnover",
        "holdings",
        "bench_return",
    ] {
        let (a, b) = (daily[0].f64s(col).unwrap(), daily[1].f64s(col).unwrap());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            if col == "bench_return" && i == t_break {
                // The clean bench averaged X007's 0 over n names; the break leaves it out.
                let n = (0..na)
                    .filter(|&a| pc.mask("in_universe").unwrap()[(d - 1) * na + a])
                    .count() as f64;
                assert!(
                    (y - x * n / (n - 1.0)).abs() < 1e-12,
                    "bench on the break day"
                );
                continue;
            }
            assert!(
                (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                "{col} day {i}: {x} vs {y}"
            );
        }
    }
    // The summaries: the net return's figures equal; the benchmark's and the excess's
    // are the clean run's daily series with that one benchmark day replaced (an
    // independent re-computation of Qlib's sum-mode figures and both drawdowns).
    let rk = |v: &serde_json::Value, k: &str, f: &str| v["risk"][k][f].as_f64().unwrap();
    let reference = |r: &[f64]| -> [f64; 4] {
        let n = r.len() as f64;
        let mean = r.iter().sum::<f64>() / n;
        let sd = (r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let (mut cum, mut peak, mut dd_sum) = (0.0f64, f64::NEG_INFINITY, 0.0f64);
        let (mut w, mut wpeak, mut dd) = (1.0f64, 1.0f64, 0.0f64);
        for x in r {
            cum += x;
            peak = peak.max(cum);
            dd_sum = dd_sum.min(cum - peak);
            w *= 1.0 + x;
            wpeak = wpeak.max(w);
            dd = dd.min(w / wpeak - 1.0);
        }
        [mean * 238.0, mean / sd * 238f64.sqrt(), dd, dd_sum]
    };
    let col = |i: usize, c: &str| daily[i].f64s(c).unwrap();
    let mut bench = col(0, "bench_return");
    bench[t_break] = col(1, "bench_return")[t_break];
    let ex = |r: Vec<f64>| r.iter().zip(&bench).map(|(a, b)| a - b).collect::<Vec<_>>();
    let expect = [
        ("return_with_cost", col(0, "net_return")),
        ("benchmark", bench.clone()),
        ("excess_return_with_cost", ex(col(0, "net_return"))),
        ("excess_return_without_cost", ex(col(0, "gross_return"))),
    ];
    for (key, series) in expect {
        let want = reference(&series);
        let fields = [
            "annualized_return",
            "information_ratio",
            "max_drawdown",
            "max_drawdown_sum",
        ];
        for (f, w) in fields.iter().zip(want) {
            let got = rk(&sums[1], key, f);
            assert!((got - w).abs() < 1e-9, "{key} {f}: {got} vs {w}");
        }
    }
    assert_eq!(sums[0]["top_picks"]["picks"], sums[1]["top_picks"]["picks"]);
    // The held name was held across the break.
    let trades = af_table::read_parquet(&dir.join("bt-jump/trades.parquet")).unwrap();
    assert!(
        trades
            .strings("code")
            .unwrap()
            .iter()
            .any(|c| c == &format!("X{k:03}"))
    );

    // The same print with --breaks keep: the backtest refuses the impossible return,
    // naming the code and the date.
    let raw = dir.join("raw-keep");
    ok(bin("ts-fetch").args([
        "--source",
        "files",
        "--path",
        &s(&dir.join("jump.csv")),
        "--market",
        &s(&profile),
        "--breaks",
        "keep",
        "--out",
        &s(&raw),
    ]));
    let kept = dir.join("keep.arrow");
    ok(bin("panel-build").args([
        "--raw",
        &s(&raw),
        "--min-list-days",
        "0",
        "--out",
        &s(&kept),
    ]));
    let err = fails(bin("backtest").args([
        "--signal",
        &s(&sigp),
        "--panel",
        &s(&kept),
        "--topk",
        "5",
        "--out",
        &s(&dir.join("bt-keep")),
    ]));
    let day = af_panel::dates::format_date(pc.dates()[d]);
    assert!(
        err.contains(&format!("X{k:03}")) && err.contains(&day),
        "{err}"
    );
}
