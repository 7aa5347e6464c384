//! Issue 3 (partial): the expression engine through the `expr` tool.

use std::fs;

use af_e2e::*;

#[test]
fn every_native_operator_matches_pandas() {
    let dir = scratch("expr_ops");
    let (_, panel) = small_market(&dir, 1);
    let out = dir.join("ops.parquet");
    let ops = root().join("tests/fixtures/ops_native.txt");
    expr_eval(&panel, &ops, &out);
    let res = ok(python().args(["check_ops.py", &s(&panel), &s(&out)]));
    let text = String::from_utf8_lossy(&res.stdout);
    assert!(text.contains("all operators match pandas"), "{text}");
    // Every registered operator is covered by the fixture.
    let fixture = fs::read_to_string(&ops).unwrap();
    for name in ["add", "ts_corr", "group_rank", "ts_ema", "cs_winsorize"] {
        assert!(fixture.contains(&format!("\n{name} = ")), "{name}");
    }
    // Same inputs, same bytes.
    let out2 = dir.join("ops2.parquet");
    expr_eval(&panel, &ops, &out2);
    assert_eq!(
        af_store::sha256_file(&out).unwrap(),
        af_store::sha256_file(&out2).unwrap()
    );
}

/// `expr python`: one module for the fixture's expression per native operator, run
/// with Polars + polars_ta in the reference venv, equals `expr eval` on every cell
/// (tests/py/check_python_export.py; no explained differences allowed here).
#[test]
fn the_python_export_computes_every_operator_like_the_engine() {
    let dir = scratch("expr_python");
    let (_, panel) = small_market(&dir, 1);
    let ops = root().join("tests/fixtures/ops_native.txt");
    let (vals, module) = (dir.join("ops.parquet"), dir.join("ops.py"));
    expr_eval(&panel, &ops, &vals);
    ok(bin("expr").args(["python", "--file", &s(&ops), "--out", &s(&module)]));
    let res = ok(python().args(["check_python_export.py", &s(&module), &s(&panel), &s(&vals)]));
    let text = String::from_utf8_lossy(&res.stdout);
    assert!(text.contains("57 of 57 factors match the engine"), "{text}");
    // Same expressions, same module bytes; and what the module cannot do is refused.
    let again = dir.join("again.py");
    ok(bin("expr").args(["python", "--file", &s(&ops), "--out", &s(&again)]));
    assert_eq!(fs::read(&module).unwrap(), fs::read(&again).unwrap());
    let e = fails(bin("expr").args([
        "python",
        "--dialect",
        "qlib",
        "--out",
        &s(&again),
        "Mean($close, 5)",
    ]));
    assert!(
        e.contains("q_mean: the qlib dialect's partial-window operators"),
        "{e}"
    );
}

#[test]
fn check_reports_position_and_suggestions() {
    let out = ok(bin("expr").args(["check", "rank(ts_mean(close, 20) / close) * -1"]));
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        line.contains("mul(-1,rank(div(ts_mean(close,20),close)))"),
        "{line}"
    );
    // The same factor in Qlib and alpha101 spelling has the same id.
    let native = ok(bin("expr").args(["check", "ts_delay(close, 5) / close"]));
    let qlib = ok(bin("expr").args(["check", "--dialect", "qlib", "Ref($close, 5) / $close"]));
    let a101 = ok(bin("expr").args(["check", "--dialect", "alpha101", "delay(close, 5) / close"]));
    let id = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stdout)
            .split('\t')
            .nth(1)
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(id(&native), id(&qlib));
    assert_eq!(id(&native), id(&a101));
    let err = fails(bin("expr").args(["check", "ts_mean(close, volume)"]));
    assert!(
        err.contains("window of `ts_mean` must be an integer constant") && err.contains("^^^^^^"),
        "{err}"
    );
    let err = fails(bin("expr").args(["check", "ts_maen(close, 5)"]));
    assert!(
        err.contains("did you mean") && err.contains("ts_mean"),
        "{err}"
    );
    let err = fails(bin("expr").args(["check", "close + fwd_ret_1"]));
    assert!(err.contains("label"), "{err}");
}

#[test]
fn shared_subexpressions_are_merged() {
    let out = ok(bin("expr").args([
        "explain",
        "rank(ts_mean(close, 20))",
        "ts_mean(close, 20) / close",
        "close / ts_mean(close, 20)",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("shared sub-expressions:\n  close\n  ts_mean(close,20)")
            || text.contains("  ts_mean(close,20)"),
        "{text}"
    );
    assert!(text.contains("after merging"), "{text}");
}

#[test]
fn operator_table_in_the_docs_is_the_registry() {
    let out = ok(bin("expr").args(["ops", "--markdown"]));
    let table = String::from_utf8_lossy(&out.stdout);
    let doc = fs::read_to_string(root().join("docs/expression_language.md")).unwrap();
    assert!(
        doc.contains(table.as_ref()),
        "docs/expression_language.md is stale: regenerate its table with `expr ops --markdown`"
    );
}

/// `make bench-ops` times every registry operator alone: its expression file must name
/// each operator once, and `expr bench --floor` must time them all beside the floor.
#[test]
fn every_operator_has_a_bench_expression_that_runs() {
    let dir = scratch("bench_ops");
    let (_, panel) = small_market(&dir, 5);
    let out = ok(bin("expr").args(["ops", "--bench"]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let listed = ok(bin("expr").args(["ops"]));
    let n_ops = String::from_utf8_lossy(&listed.stdout).lines().count();
    assert_eq!(text.lines().filter(|l| l.starts_with("op_")).count(), n_ops);
    let file = dir.join("ops.txt");
    fs::write(&file, &text).unwrap();
    let json = dir.join("ops.json");
    ok(bin("expr")
        .args(["bench", "--panel", &s(&panel), "--file", &s(&file)])
        .args(["--repeat", "1", "--floor", "--json", &s(&json)]));
    let j: serde_json::Value = serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
    let rows = j["exprs"].as_array().unwrap();
    assert_eq!(rows.len(), n_ops + 1);
    assert_eq!(rows[0]["name"], "floor");
    assert!(
        rows.iter()
            .all(|r| r["ms_median"].as_f64().is_some_and(|m| m >= 0.0))
    );
}
