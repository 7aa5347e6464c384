//! `pipeline`: incremental, resumable, explainable runs of pipelines/mine.yaml on a
//! `small`-sized market, and errors that name what is wrong.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use af_e2e::*;

// lgbm-train's fold windows scale with the 500-date panel by themselves. The model's
// comparison with Alpha158 and the oracle is off (it is tested once, in
// markets_live_side_by_side…, and in tests/lgbm.rs): it would quadruple the model step.
const SMALL: [&str; 10] = [
    "--set",
    "assets=200",
    "--set",
    "days=500",
    "--set",
    "pop=20",
    "--set",
    "seed=7",
    "--set",
    "compare=",
];

/// A workspace folder with the pipeline file, where the runner is started.
fn workspace(name: &str) -> PathBuf {
    let d = scratch(name);
    std::fs::create_dir_all(d.join("pipelines")).unwrap();
    std::fs::copy(
        root().join("pipelines/mine.yaml"),
        d.join("pipelines/mine.yaml"),
    )
    .unwrap();
    d
}

fn pipeline(dir: &Path) -> Command {
    let mut c = bin("pipeline");
    c.current_dir(dir);
    c
}

/// Run with `extra` args; the names of the steps that ran.
fn run(dir: &Path, extra: &[&str]) -> BTreeSet<String> {
    let tools = s(&root().join("target/debug"));
    let out = ok(pipeline(dir)
        .args([
            "run",
            "pipelines/mine.yaml",
            "--json",
            "--quiet",
            "--tools",
            &tools,
        ])
        .args(SMALL)
        .args(extra));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json output");
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["ran"] == true)
        .map(|s| s["step"].as_str().unwrap().to_string())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn library_bytes(dir: &Path, g: u32) -> Vec<u8> {
    let base = dir.join(format!("out/runs/csi500-seed1/libraries/lib-{g:03}"));
    let mut b = std::fs::read(base.with_extension("parquet")).unwrap();
    b.extend(std::fs::read(base.with_extension("values.arrow")).unwrap());
    b
}

#[test]
fn reruns_exactly_what_changed() {
    let d = workspace("pipeline_incremental");
    let g2 = ["--set", "generations=2"];
    let all = run(&d, &g2);
    assert_eq!(all.len(), 2 + 3 * 2 + 3, "{all:?}");
    assert!(
        run(&d, &g2).is_empty(),
        "a second run with nothing changed runs 0 steps"
    );
    // One parameter of one step: that step and everything below it.
    let ran = run(
        &d,
        &[
            "--set",
            "generations=2",
            "--set",
            "gp_seed=1",
            "--set",
            "horizon=5",
        ],
    );
    // The panel re-runs (it must store fwd_ret_5; `--add-horizons=5` on the default
    // 1,5,10 writes the same bytes, so nothing re-runs for the panel's sake).
    assert_eq!(
        ran,
        set(&[
            "panel",
            "fitness-000",
            "library-000",
            "gp-gen-001",
            "fitness-001",
            "library-001",
            "model",
            "backtest",
            "report"
        ]),
    );
    // Raising G runs only the new generation.
    let ran = run(&d, &["--set", "generations=3", "--set", "horizon=5"]);
    assert_eq!(
        ran,
        set(&[
            "gp-gen-002",
            "fitness-002",
            "library-002",
            "model",
            "backtest",
            "report"
        ])
    );
    // --only / --from select steps; --force re-runs them.
    let g3 = |extra: &[&str]| {
        let mut a = vec!["--set", "generations=3", "--set", "horizon=5"];
        a.extend_from_slice(extra);
        run(&d, &a)
    };
    assert_eq!(
        g3(&["--only", "fitness-001", "--force"]),
        set(&["fitness-001"])
    );
    assert_eq!(
        g3(&["--from", "library-001", "--force"]),
        set(&[
            "library-001",
            "gp-gen-002",
            "fitness-002",
            "library-002",
            "model",
            "backtest",
            "report"
        ])
    );
    // Early cutoff: a re-run that writes the same bytes leaves everything below skipped.
    assert_eq!(g3(&["--only", "panel", "--force"]), set(&["panel"]));
    assert!(g3(&[]).is_empty());
    // A temp file a killed writer left beside an up-to-date output is swept by the
    // next run, which skips the step (issue 41); pid 4194304 is never alive.
    let stale = d.join("out/runs/csi500-seed1/libraries/.lib-001.values.arrow.tmp-4194304");
    std::fs::write(&stale, b"partial").unwrap();
    assert!(g3(&[]).is_empty());
    assert!(!stale.exists(), "the stale temp file is still there");
    // A deleted output re-runs its step (and nothing else, the bytes being the same).
    std::fs::remove_file(d.join("out/runs/csi500-seed1/candidates/gen-001.fitness.parquet"))
        .unwrap();
    assert_eq!(g3(&[]), set(&["fitness-001"]));
    let plan = |extra: &[&str]| -> String {
        let o = ok(pipeline(&d)
            .args([
                "plan",
                "pipelines/mine.yaml",
                "--tools",
                &s(&root().join("target/debug")),
            ])
            .args(SMALL)
            .args(["--set", "generations=3"])
            .args(extra));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let text = plan(&["--set", "horizon=1"]);
    // plan takes run's selection flags.
    let sel = plan(&["--set", "horizon=5", "--from", "library-001", "--force"]);
    assert!(
        sel.contains("skip  panel                    not selected")
            && sel.contains("run   library-001              forced")
            && sel.contains("run   report                   forced"),
        "{sel}"
    );
    // --to: the step and what it depends on; with --from, the steps between.
    let between = plan(&["--from", "gp-gen-001", "--to", "library-001", "--force"]);
    let picked: Vec<&str> = between
        .lines()
        .filter(|l| l.starts_with("run "))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(
        picked,
        ["gp-gen-001", "fitness-001", "library-001"],
        "{between}"
    );
    let upto = plan(&["--to", "fitness-000", "--force"]);
    assert!(
        upto.contains("run   fetch")
            && upto.contains("skip  library-000              not selected"),
        "{upto}"
    );
    assert!(
        text.contains("skip  fetch")
            && text.contains("arguments changed (--add-horizons=5 -> --add-horizons=1)"),
        "{text}"
    );
    // `horizons` (fitness' several labels) reaches the panel too (issue 37): a panel
    // without fwd_ret_20 would fail only at fitness-000.
    let many = plan(&["--set", "horizons=1,20"]);
    assert!(many.contains("--add-horizons=1,20"), "{many}");
    // gc: with one generation less, the third generation's files go; files the
    // pipeline never wrote stay, whatever folder they are in.
    let cands = d.join("out/runs/csi500-seed1/candidates");
    std::fs::write(cands.join("mine_by_hand.parquet"), b"x").unwrap();
    let tools = s(&root().join("target/debug"));
    let gc = |dry: bool| {
        let mut c = pipeline(&d);
        c.args(["gc", "pipelines/mine.yaml", "--tools", &tools])
            .args(SMALL)
            .args(["--set", "generations=2"]);
        if dry {
            c.arg("--dry-run");
        }
        String::from_utf8_lossy(&ok(&mut c).stdout).into_owned()
    };
    let listed = gc(true);
    assert!(
        listed.contains("gen-002.parquet")
            && !listed.contains("gen-001.parquet")
            && !listed.contains("mine_by_hand"),
        "{listed}"
    );
    assert!(cands.join("gen-002.parquet").exists());
    gc(false);
    assert!(!cands.join("gen-002.parquet").exists() && cands.join("gen-001.parquet").exists());
    assert!(cands.join("mine_by_hand.parquet").exists());
    // gc --cache: the folder of the pipeline's panel stays, another panel's goes, and a
    // folder that is not a panel hash is not ours to touch.
    let cache = d.join("data/cache");
    let mine = cache.join(panel_hash(&d.join("data/panel/csi500.arrow")));
    let other = cache.join("ab".repeat(32));
    let foreign = cache.join("notes");
    for f in [&mine, &other, &foreign] {
        std::fs::create_dir_all(f).unwrap();
        std::fs::write(f.join("x.arrow"), b"x").unwrap();
    }
    let out = ok(pipeline(&d)
        .args([
            "gc",
            "pipelines/mine.yaml",
            "--tools",
            &tools,
            "--cache",
            &s(&cache),
        ])
        .args(SMALL)
        .args(["--set", "generations=2"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&"ab".repeat(32)), "{text}");
    assert!(mine.exists() && !other.exists() && foreign.exists());
}

#[test]
fn killed_runs_resume_to_the_same_library_and_runs_exclude_each_other() {
    let clean = workspace("pipeline_clean");
    let g3 = ["--set", "generations=3"];
    run(&clean, &g3);
    let want = library_bytes(&clean, 2);

    let d = workspace("pipeline_killed");
    let tools = s(&root().join("target/debug"));
    for ms in [150u64, 900, 400, 1600] {
        let mut child = pipeline(&d)
            .args(["run", "pipelines/mine.yaml", "--quiet", "--tools", &tools])
            .args(SMALL)
            .args(g3)
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    run(&d, &g3);
    assert!(
        library_bytes(&d, 2) == want,
        "a killed and resumed run must end with the same library"
    );

    // A second run while one holds the pipeline is refused, naming the holder.
    let mut first = pipeline(&d)
        .args([
            "run",
            "pipelines/mine.yaml",
            "--quiet",
            "--force",
            "--tools",
            &tools,
        ])
        .args(SMALL)
        .args(g3)
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let e = fails(
        pipeline(&d)
            .args(["run", "pipelines/mine.yaml", "--tools", &tools])
            .args(SMALL)
            .args(g3),
    );
    // Meanwhile the same pipeline file on another market with its own state folder
    // runs (issue 41: the lock is the records', not the file's).
    ok(pipeline(&d)
        .args(["run", "pipelines/mine.yaml", "--quiet", "--tools", &tools])
        .args(["--state", "state-other", "--to", "panel"])
        .args(SMALL)
        .args(["--set", "name=other"]));
    let still = first.try_wait().unwrap().is_none();
    let _ = first.wait();
    assert!(e.contains("pid") || e.contains("locked"), "{e}");
    assert!(
        still,
        "the first run should still have been running (else the test proves nothing)"
    );
    assert!(d.join("data/panel/other.arrow").exists());
}

#[test]
fn bad_pipelines_are_named() {
    let d = scratch("pipeline_errors");
    let tools = s(&root().join("target/debug"));
    let check = |yaml: &str, want: &[&str]| {
        std::fs::write(d.join("p.yaml"), yaml).unwrap();
        let e = fails(pipeline(&d).args(["plan", "p.yaml", "--tools", &tools]));
        for w in want {
            assert!(e.contains(w), "{w:?} not in: {e}");
        }
    };
    check(
        "name: x\nsteps:\n  - name: a\n    tool: expr\n    args: [1, 2\n",
        &["p.yaml:5:11"],
    );
    check(
        "name: x\nsteps:\n  - name: a\n    tool: nosuch\n",
        &["unknown tool", "nosuch"],
    );
    check(
        "name: x\nsteps:\n  - name: a\n    tool: expr\n    inputs: [missing.txt]\n",
        &["missing.txt", "no step writes it"],
    );
    check(
        "name: x\nsteps:\n  - {name: a, tool: expr, inputs: [b.txt], outputs: [a.txt]}\n  - {name: b, tool: expr, inputs: [a.txt], outputs: [b.txt]}\n",
        &["cycle", "a, b"],
    );
    check(
        "name: x\nvars: {n: 1}\nsteps:\n  - {name: \"s${m}\", tool: expr}\n",
        &["unknown variable", "${m}"],
    );
}

#[test]
fn exports_compile_and_parse() {
    let d = workspace("pipeline_export");
    let tools = s(&root().join("target/debug"));
    let export = |target: &str, out: &Path| {
        let o = s(out);
        ok(pipeline(&d).args([
            "export",
            target,
            "pipelines/mine.yaml",
            "--tools",
            &tools,
            "--out",
            &o,
        ]));
    };
    let dag = d.join("mine_dag.py");
    export("airflow", &dag);
    ok(python().args(["-m", "py_compile", &s(&dag)]));
    let text = std::fs::read_to_string(&dag).unwrap();
    assert!(
        text.contains("BashOperator(task_id=\"fitness-009\"") && text.contains(">> t"),
        "{text}"
    );
    let wf = d.join("mine.yml");
    export("github", &wf);
    let v: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&wf).unwrap()).unwrap();
    let steps = v["jobs"]["pipeline"]["steps"].as_array().unwrap();
    assert_eq!(
        steps.len(),
        2 + 2 + 3 * 10 + 3,
        "checkout, build, then every step"
    );
    // Unset variables leave their arguments out; given, they come back (your own data).
    let fetch = |wf: &Path| -> String {
        let v: serde_json::Value =
            serde_saphyr::from_str(&std::fs::read_to_string(wf).unwrap()).unwrap();
        v["jobs"]["pipeline"]["steps"][2]["run"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        fetch(&wf).ends_with("/ts-fetch --out data/raw/csi500"),
        "{}",
        fetch(&wf)
    );
    let own = d.join("own.yml");
    ok(pipeline(&d).args([
        "export",
        "github",
        "pipelines/mine.yaml",
        "--tools",
        &tools,
        "--out",
        &s(&own),
        "--set",
        "source=files",
        "--set",
        "path=exports/*.csv",
        "--set",
        "mapping=tushare",
    ]));
    assert!(
        fetch(&own).contains("--source=files '--path=exports/*.csv' --mapping=tushare --out"),
        "{}",
        fetch(&own)
    );
    let graph = ok(pipeline(&d).args(["graph", "pipelines/mine.yaml", "--tools", &tools]));
    assert!(String::from_utf8_lossy(&graph.stdout).starts_with("flowchart TD"));
}

#[test]
fn sharded_fitness_steps_give_the_same_library() {
    let (a, b) = (
        workspace("pipeline_unsharded"),
        workspace("pipeline_sharded"),
    );
    let g2 = ["--set", "generations=2"];
    run(&a, &g2);
    let ran = run(&b, &["--set", "generations=2", "--set", "shards=3"]);
    for step in [
        "fitness-000-shard-0of3",
        "fitness-000-shard-2of3",
        "fitness-001-shard-1of3",
        "fitness-001",
    ] {
        assert!(ran.contains(step), "{step} did not run: {ran:?}");
    }
    for g in 0..2 {
        assert_eq!(library_bytes(&a, g), library_bytes(&b, g), "library {g}");
    }
    let fit = |d: &Path| {
        std::fs::read(d.join("out/runs/csi500-seed1/candidates/gen-001.fitness.parquet")).unwrap()
    };
    assert_eq!(fit(&a), fit(&b), "merged fitness = unsharded fitness");
    // The Airflow export has one task per shard and the merge.
    let dag = b.join("dag.py");
    ok(pipeline(&b).args([
        "export",
        "airflow",
        "pipelines/mine.yaml",
        "--tools",
        &s(&root().join("target/debug")),
        "--out",
        &s(&dag),
        "--set",
        "generations=2",
        "--set",
        "shards=3",
    ]));
    let text = std::fs::read_to_string(&dag).unwrap();
    assert!(
        text.contains("task_id=\"fitness-001-shard-2of3\"")
            && text.contains("task_id=\"fitness-001\""),
        "{text}"
    );
}

/// The exported DAG under real Apache Airflow 3 (`make test` installs it into
/// .venv-airflow): the library it makes is `pipeline run`'s byte for byte, fitness ran
/// as shard tasks, a second run skips every task, and a failing tool fails the run.
#[test]
fn the_exported_dag_runs_under_real_airflow() {
    let airflow = root().join(".venv-airflow/bin/airflow");
    assert!(
        airflow.exists(),
        "{} not found: run `make venv-airflow` (make test does)",
        airflow.display()
    );
    let sets = ["--set", "generations=2", "--set", "shards=2"];
    let reference = workspace("airflow_reference");
    let t = std::time::Instant::now();
    run(&reference, &sets);
    println!("pipeline run: {:.1} s", t.elapsed().as_secs_f64());
    let d = workspace("airflow");
    let home = d.join("airflow_home");
    std::fs::create_dir_all(home.join("dags")).unwrap();
    let export = |extra: &[&str]| {
        ok(pipeline(&d)
            .args(["export", "airflow", "pipelines/mine.yaml", "--tools"])
            .arg(root().join("target/debug"))
            .args(["--out", &s(&home.join("dags/mine_dag.py"))])
            .args(SMALL)
            .args(sets)
            .args(extra));
    };
    export(&[]);
    let af = |args: &[&str]| {
        let mut c = Command::new(&airflow);
        c.args(args)
            .current_dir(&d)
            .env("AIRFLOW_HOME", &home)
            .env("AIRFLOW__CORE__DAGS_FOLDER", home.join("dags"))
            .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
            .env("AF_REPO", &d)
            .env("AF_STATE_DIR", d.join("locks"));
        c
    };
    ok(&mut af(&["db", "migrate"]));
    let t = std::time::Instant::now();
    let o = ok(&mut af(&["dags", "test", "mine"]));
    let log = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    println!("airflow dags test: {:.1} s", t.elapsed().as_secs_f64());
    assert!(log.contains("fitness-001-shard-1of2"), "{log}");
    for g in 0..2 {
        assert_eq!(
            library_bytes(&reference, g),
            library_bytes(&d, g),
            "library {g}"
        );
    }
    let lib = d.join("out/runs/csi500-seed1/libraries/lib-001.parquet");
    let before = std::fs::metadata(&lib).unwrap().modified().unwrap();
    ok(&mut af(&["dags", "test", "mine"]));
    assert_eq!(
        std::fs::metadata(&lib).unwrap().modified().unwrap(),
        before,
        "re-run skipped"
    );
    let plan = ok(pipeline(&d)
        .args(["plan", "pipelines/mine.yaml", "--tools"])
        .arg(root().join("target/debug"))
        .args(SMALL)
        .args(sets));
    assert!(
        !String::from_utf8_lossy(&plan.stdout).contains("run "),
        "all up to date"
    );
    // A tool that fails fails the DAG run.
    export(&["--set", "pop=0"]);
    let out = af(&["dags", "test", "mine"]).output().unwrap();
    assert!(
        !out.status.success(),
        "a failing task must fail `airflow dags test`"
    );
}

/// Issue 34: each market has its own raw folder (`data/raw/<name>/`), so switching
/// `name` back re-runs nothing; any tool flag reaches its step from `--set` (`bad_rows`,
/// or words through `fetch_args` / `panel_args`), and `make mine VAR=…` quotes them.
#[test]
fn markets_live_side_by_side_and_every_flag_reaches_its_tool() {
    let d = workspace("pipeline_markets");
    let g1 = ["--set", "generations=1"];
    // make mine's default comparison: the library, Alpha158, both, and the oracle.
    let cmp = ["--set", "compare=alpha158,ground-truth"];
    let a = run(&d, &[&g1[..], &["--set", "name=a"], &cmp[..]].concat());
    assert!(a.contains("fetch") && a.contains("report"), "{a:?}");
    let table = std::fs::read_to_string(d.join("out/runs/a-seed1/model/compare.txt")).unwrap();
    for m in ["library + alpha158", "alpha158", "ground-truth", "captured"] {
        assert!(table.contains(m), "{table}");
    }
    let rep = std::fs::read_to_string(d.join("out/runs/a-seed1/report/index.html")).unwrap();
    assert!(rep.contains("Against the field's standard") && rep.contains("captured"));
    // As a reader sees it: headless Chromium lays the four model rows out.
    let o = ok(python().args([
        "check_report_browser.py",
        "--report",
        &s(&d.join("out/runs/a-seed1/report")),
        "--screenshot",
        &s(&d.join("report.png")),
        "--expect-compare",
        "4",
    ]));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("OK") && text.contains("ground-truth"),
        "{text}"
    );
    let again = run(&d, &[&g1[..], &["--set", "name=a"], &cmp[..]].concat());
    assert!(again.is_empty(), "{again:?}");
    let b = run(
        &d,
        &[&g1[..], &["--set", "name=b", "--set", "seed=8"]].concat(),
    );
    assert!(b.contains("fetch"), "{b:?}");
    let again = run(&d, &[&g1[..], &["--set", "name=a"], &cmp[..]].concat());
    assert!(again.is_empty(), "switching back to a re-ran {again:?}");
    for m in ["a", "b"] {
        assert!(d.join(format!("data/raw/{m}/manifest.json")).is_file());
        assert!(d.join(format!("data/panel/{m}.arrow")).is_file());
    }

    // A user's file with a row of negative traded value: stops at fetch unless told.
    let mut csv = String::from("trade_date,code,open,high,low,close,amount\n");
    for t in 0..60u32 {
        for a in 0..12u32 {
            let px = 10.0 + a as f64 + ((t * 7 + a * 3) % 11) as f64 * 0.05;
            let amt = if (t, a) == (30, 4) {
                -5.0
            } else {
                1e6 * (1 + a) as f64
            };
            let day = 20200101 + (t / 28) * 100 + t % 28 + 1;
            csv += &format!("{day},F{a:02},{px},{px},{px},{px},{amt}\n");
        }
    }
    std::fs::write(d.join("bars.csv"), csv).unwrap();
    let tools = s(&root().join("target/debug"));
    let own = |extra: &[&str]| {
        let mut c = pipeline(&d);
        c.args(["run", "pipelines/mine.yaml", "--quiet", "--tools", &tools])
            .args([
                "--set",
                "source=files",
                "--set",
                "path=bars.csv",
                "--set",
                "name=f",
            ])
            .args(["--to", "panel"])
            .args(extra);
        c
    };
    let err = fails(&mut own(&[]));
    assert!(err.contains("--bad-rows drop"), "{err}");
    ok(&mut own(&[
        "--set",
        "bad_rows=drop",
        "--set",
        "panel_args=--min-list-days 0 --horizons 1,2",
    ]));
    let man = read_json(&d.join("data/raw/f/manifest.json"));
    assert_eq!(man["cleaning"]["bad_rows_dropped"], 1, "{man}");
    let p = af_panel::Panel::open(&d.join("data/panel/f.arrow")).unwrap();
    assert_eq!(p.provenance().unwrap().params["min_list_days"], 0);
    // The same flag as words of fetch_args: a different step key, the same raw bytes.
    ok(&mut own(&["--set", "fetch_args=--bad-rows drop"]));
    assert_eq!(
        read_json(&d.join("data/raw/f/manifest.json"))["cleaning"],
        man["cleaning"]
    );

    // make quotes every variable it passes, so words stay one --set.
    let o = ok(Command::new("make").current_dir(root()).args([
        "-n",
        "mine",
        "BAD_ROWS=drop",
        "FETCH_ARGS=--max-move 4 --breaks keep",
    ]));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("--set 'bad_rows=drop'")
            && text.contains("--set 'fetch_args=--max-move 4 --breaks keep'"),
        "{text}"
    );
}
