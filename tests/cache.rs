//! The sub-expression cache: `cache-plan` and `cache-materialize`, and the evaluator
//! reading entries (`expr eval`, `fitness`). Cached values must equal fresh evaluation
//! bit for bit; the budget holds; the manifest is stable; another panel's entries are
//! never read; truncated or corrupt entries are reported and recomputed.

use std::path::{Path, PathBuf};

use af_e2e::*;

/// Sub-expressions shared across batches (batch 4 below), as in a GP population.
const WORKLOAD: &str = "\
rank(volume) * ts_mean(returns, 5)
rank(volume) - rank(ts_corr(close, volume, 10))
ts_corr(close, volume, 10) * -1
rank(ts_corr(close, volume, 10)) + ts_std(returns, 20)
ts_std(returns, 20) / ts_mean(close, 20)
rank(volume) * ts_std(returns, 20)
ts_rank(ts_mean(close, 20), 10)
rank(ts_corr(close, volume, 10)) * rank(volume)
ts_mean(close, 20) / close
group_neutralize(ts_std(returns, 20), industry)
ts_delta(rank(volume), 3)
ts_max(high, 5) - ts_min(low, 5)
";

fn setup(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let dir = scratch(name);
    let (_, panel) = small_market(&dir, 7);
    let w = dir.join("workload.txt");
    std::fs::write(&w, WORKLOAD).expect("write");
    (dir, panel, w)
}

fn plan(panel: &Path, w: &Path, out: &Path, extra: &[&str]) -> String {
    let o = ok(bin("cache-plan")
        .args([
            "--exprs",
            &s(w),
            "--panel",
            &s(panel),
            "--batch",
            "4",
            "--out",
            &s(out),
        ])
        .args(extra));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn materialize(panel: &Path, manifest: &Path, cache: &Path) -> String {
    let o = ok(bin("cache-materialize").args([
        "--manifest",
        &s(manifest),
        "--panel",
        &s(panel),
        "--out",
        &s(cache),
    ]));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn eval(panel: &Path, w: &Path, out: &Path, cache: Option<&Path>) -> String {
    let mut c = bin("expr");
    c.args([
        "eval",
        "--panel",
        &s(panel),
        "--file",
        &s(w),
        "--out",
        &s(out),
    ]);
    match cache {
        Some(d) => c.args(["--cache", &s(d)]),
        None => c.arg("--no-cache"),
    };
    String::from_utf8_lossy(&ok(&mut c).stderr).into_owned()
}

/// Byte-identical files (without dumping megabytes of bytes on failure).
fn same(a: &Path, b: &Path) -> bool {
    std::fs::read(a).expect("read") == std::fs::read(b).expect("read")
}

fn manifest(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).expect("manifest")).expect("json")
}

fn entries(cache: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(cache)
        .expect("cache dir")
        .flatten()
        .filter(|e| e.path().is_dir())
        .flat_map(|d| std::fs::read_dir(d.path()).expect("panel dir").flatten())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "arrow"))
        .collect();
    v.sort();
    v
}

fn hits(stderr: &str) -> usize {
    let l = stderr
        .lines()
        .find(|l| l.starts_with("cache "))
        .unwrap_or_else(|| panic!("no cache line in:\n{stderr}"));
    let (_, rest) = l.split_once(": ").expect("cache line");
    rest.split(' ')
        .next()
        .expect("hits")
        .parse()
        .expect("number")
}

#[test]
fn plan_materialize_and_read_bit_for_bit() {
    let (dir, panel, w) = setup("cache-main");
    // Measured costs: the calibration is saved, and with it the plan is stable.
    let measured = dir.join("plan/measured.json");
    let log = plan(&panel, &w, &measured, &[]);
    assert!(log.contains("calibrating"), "{log}");
    assert!(dir.join("plan/calibration.json").exists());
    let again = dir.join("plan/again.json");
    let log = plan(&panel, &w, &again, &[]);
    assert!(!log.contains("calibrating"), "{log}");
    assert!(same(&measured, &again), "files differ");
    // Registry costs (the same on every machine) for what is chosen.
    let m1 = dir.join("plan/manifest.json");
    plan(&panel, &w, &m1, &["--registry-costs"]);
    let m = manifest(&m1);
    let nodes = m["nodes"].as_array().expect("nodes");
    let texts: Vec<&str> = nodes.iter().map(|n| n["text"].as_str().unwrap()).collect();
    // Used by many batches, expensive: chosen. Used by one batch only: never worth it.
    assert!(texts.contains(&"rank(volume)"), "{texts:?}");
    assert!(texts.contains(&"ts_corr(close,volume,10)"), "{texts:?}");
    assert!(
        !texts.iter().any(|t| t.starts_with("ts_max(high")),
        "{texts:?}"
    );
    for n in nodes {
        assert!(n["batches"].as_u64().unwrap() >= 2, "{n}");
        assert!(n["saving_ms"].as_f64().unwrap() > 0.0, "{n}");
        let id = af_store::sha256_bytes(n["text"].as_str().unwrap().as_bytes());
        assert_eq!(n["id"].as_str().unwrap(), id);
    }
    let t = &m["totals"];
    assert!(t["workload_ms_with"].as_f64() < t["workload_ms_without"].as_f64());
    assert!(t["bytes"].as_u64() <= t["budget_bytes"].as_u64());

    let r2 = dir.join("plan/r2.json");
    plan(&panel, &w, &r2, &["--registry-costs"]);
    assert!(same(&m1, &r2), "files differ");

    let cache = dir.join("cache");
    let log = materialize(&panel, &m1, &cache);
    assert!(log.contains(&format!("{} computed", nodes.len())), "{log}");
    assert_eq!(entries(&cache).len(), nodes.len());
    let on_disk: u64 = entries(&cache)
        .iter()
        .map(|p| p.metadata().unwrap().len())
        .sum();
    assert!(
        on_disk <= t["bytes"].as_u64().unwrap(),
        "{on_disk} bytes on disk > planned"
    );
    // A second run finds them intact and computes nothing.
    let log = materialize(&panel, &m1, &cache);
    assert!(
        log.contains("0 computed") && log.contains(&format!("{} already there", nodes.len())),
        "{log}"
    );

    let (fresh, cached) = (dir.join("fresh.parquet"), dir.join("cached.parquet"));
    eval(&panel, &w, &fresh, None);
    let log = eval(&panel, &w, &cached, Some(&cache));
    assert_eq!(hits(&log), nodes.len(), "{log}");
    assert!(same(&fresh, &cached), "cached values differ");

    // fitness: the full pass reads the cache, the output is byte-identical.
    let (f0, f1) = (dir.join("f0.parquet"), dir.join("f1.parquet"));
    let fit = |out: &Path, c: &[&str]| {
        let o = ok(bin("fitness")
            .args([
                "--panel",
                &s(&panel),
                "--candidates",
                &s(&w),
                "--horizon",
                "1",
                "--batch",
                "4",
            ])
            .args(["--out", &s(out)])
            .args(c));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    fit(&f0, &["--no-cache"]);
    let log = fit(&f1, &["--cache", &s(&cache)]);
    assert!(hits(&log) > 0, "{log}");
    assert!(log.contains("compute avoided (calibrated)"), "{log}");
    // Reading the cache changes no output byte.
    assert!(same(&f0, &f1), "fitness differs with the cache");
}

#[test]
fn budget_is_never_exceeded() {
    let (dir, panel, w) = setup("cache-budget");
    let one = {
        let m = dir.join("probe.json");
        plan(&panel, &w, &m, &["--registry-costs"]);
        let m = manifest(&m);
        m["nodes"][0]["bytes"]
            .as_u64()
            .expect("at least one node chosen")
    };
    for k in [0u64, 1, 2] {
        let m = dir.join(format!("b{k}.json"));
        let budget = (one * k + one / 2).to_string();
        plan(&panel, &w, &m, &["--registry-costs", "--budget", &budget]);
        let m = manifest(&m);
        let chosen = m["nodes"].as_array().unwrap().len() as u64;
        assert_eq!(chosen, k, "budget for {k}.5 entries");
        assert!(
            m["totals"]["bytes"].as_u64().unwrap() <= m["totals"]["budget_bytes"].as_u64().unwrap()
        );
    }
    let e = fails(
        bin("cache-plan")
            .args(["--exprs", &s(&w), "--panel", &s(&panel), "--budget", "lots"])
            .args(["--out", &s(&dir.join("x.json"))]),
    );
    assert!(e.contains("--budget") && e.contains("2GiB"), "{e}");
}

#[test]
fn other_panel_and_corrupt_entries_are_never_read() {
    let (dir, panel, w) = setup("cache-safety");
    let m = dir.join("manifest.json");
    plan(&panel, &w, &m, &["--registry-costs"]);
    let cache = dir.join("cache");
    materialize(&panel, &m, &cache);
    let fresh = dir.join("fresh.parquet");
    eval(&panel, &w, &fresh, None);

    // Another panel (another seed): a plan for the first is refused, and nothing of the
    // first panel's cache is read for it, even an entry copied into its folder.
    let other_dir = dir.join("other");
    let (_, other) = small_market(&other_dir, 8);
    let e = fails(bin("cache-materialize").args([
        "--manifest",
        &s(&m),
        "--panel",
        &s(&other),
        "--out",
        &s(&cache),
    ]));
    assert!(e.contains("plan again on this panel"), "{e}");
    let all = entries(&cache);
    let hash = |p: &Path| af_e2e::panel_hash(p);
    let odir = cache.join(hash(&other));
    std::fs::create_dir_all(&odir).unwrap();
    std::fs::copy(&all[0], odir.join(all[0].file_name().unwrap())).unwrap();
    let (ofresh, ocached) = (dir.join("ofresh.parquet"), dir.join("ocached.parquet"));
    eval(&other, &w, &ofresh, None);
    let log = eval(&other, &w, &ocached, Some(&cache));
    assert_eq!(hits(&log), 0, "{log}");
    assert!(log.contains("another panel"), "{log}");
    assert!(same(&ofresh, &ocached), "files differ");

    // Truncate one entry, flip one value byte in another: both reported, both
    // recomputed, the output still equals fresh evaluation.
    let mine = cache.join(hash(&panel));
    let all: Vec<PathBuf> = entries(&cache)
        .into_iter()
        .filter(|p| p.parent() == Some(mine.as_path()))
        .collect();
    assert!(all.len() >= 2, "need two entries, have {}", all.len());
    let bytes = std::fs::read(&all[0]).unwrap();
    std::fs::write(&all[0], &bytes[..bytes.len() / 2]).unwrap();
    let mut bytes = std::fs::read(&all[1]).unwrap();
    let mid = bytes.len() * 3 / 4; // inside the values, the last column
    bytes[mid] ^= 0x40;
    std::fs::write(&all[1], &bytes).unwrap();
    let cached = dir.join("cached.parquet");
    let log = eval(&panel, &w, &cached, Some(&cache));
    assert_eq!(
        log.matches("bad entry, recomputed instead").count(),
        2,
        "{log}"
    );
    assert!(
        log.contains("truncated") && log.contains("corrupt"),
        "{log}"
    );
    assert!(same(&fresh, &cached), "files differ");
    // cache-materialize finds and rewrites them.
    let log = materialize(&panel, &m, &cache);
    assert!(log.contains("2 repaired"), "{log}");
    let log = eval(&panel, &w, &cached, Some(&cache));
    assert!(!log.contains("bad entry"), "{log}");
}
