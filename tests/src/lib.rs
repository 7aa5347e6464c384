//! Helpers shared by the end-to-end tests: the built binaries, the reference Python
//! venv, scratch folders, and cached fixtures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// Repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A built binary of the workspace (`make test` builds them before testing).
pub fn bin(name: &str) -> Command {
    use assert_cmd::cargo::CommandCargoExt;
    let mut c = Command::cargo_bin(name)
        .unwrap_or_else(|_| Command::new(root().join("target/debug").join(name)));
    // Locks go to a per-test state folder so parallel tests never contend.
    c.env(
        "AF_STATE_DIR",
        std::env::temp_dir().join(format!("af-e2e-state-{}", std::process::id())),
    );
    c
}

/// The reference venv's python: `$AF_PYTHON`, else `.venv/bin/python` (made by `make venv`).
pub fn python() -> Command {
    let py = std::env::var_os("AF_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python"));
    assert!(
        py.exists(),
        "reference Python {} not found: run `make venv` (or set AF_PYTHON)",
        py.display()
    );
    let mut c = Command::new(py);
    c.current_dir(root().join("tests/py"));
    c
}

/// A fresh scratch folder for one test.
pub fn scratch(name: &str) -> PathBuf {
    let d = root().join("target/e2e").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}

/// `expr eval --panel PANEL --file FILE --out OUT` (the file's `# dialect:` line picks
/// the dialect), panicking with both streams unless it succeeded.
pub fn expr_eval(panel: &Path, file: &Path, out: &Path) -> Output {
    ok(bin("expr").args([
        "eval",
        "--panel",
        &s(panel),
        "--file",
        &s(file),
        "--out",
        &s(out),
    ]))
}

/// Run, and panic with both streams unless it succeeded.
pub fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        cmd,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Run, expect failure, return stderr.
pub fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        !out.status.success(),
        "{:?} should have failed; stdout:\n{}",
        cmd,
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The `small` synthetic market (200 assets x 500 days) of `seed` and its default
/// panel, copied into `dir` (`dir/raw`, `dir/small.arrow`). Each seed is fetched and
/// built once per test process (the first test asking for it builds it); a test owns
/// its copy and may change it.
pub fn small_market(dir: &Path, seed: u64) -> (PathBuf, PathBuf) {
    static BUILT: Mutex<BTreeMap<u64, PathBuf>> = Mutex::new(BTreeMap::new());
    let src = {
        let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
        match built.get(&seed) {
            Some(d) => d.clone(),
            None => {
                let d = root()
                    .join("target/e2e/_small")
                    .join(format!("{}-{seed}", std::process::id()));
                let _ = std::fs::remove_dir_all(&d);
                fresh_small_market(&d, seed);
                built.insert(seed, d.clone());
                d
            }
        }
    };
    let (raw, panel) = (dir.join("raw"), dir.join("small.arrow"));
    copy_tree(&src.join("raw"), &raw);
    std::fs::copy(src.join("small.arrow"), &panel).expect("copy the small panel");
    (raw, panel)
}

/// The `small` market of `seed` fetched and built into `dir` now (no sharing): for
/// tests of the build itself, such as two builds giving the same bytes.
pub fn fresh_small_market(dir: &Path, seed: u64) -> (PathBuf, PathBuf) {
    let (raw, panel) = (dir.join("raw"), dir.join("small.arrow"));
    ok(bin("ts-fetch").args([
        "--assets",
        "200",
        "--days",
        "500",
        "--seed",
        &seed.to_string(),
        "--out",
        &s(&raw),
    ]));
    ok(bin("panel-build").args(["--raw", &s(&raw), "--out", &s(&panel)]));
    (raw, panel)
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create folder");
    for e in std::fs::read_dir(from).expect("read folder").flatten() {
        let dst = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).expect("copy file");
        }
    }
}

/// All files under `dir` with their sha256, sorted by relative path.
pub fn tree_hashes(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<(String, String)>) {
        let mut es: Vec<_> = std::fs::read_dir(d)
            .expect("read_dir")
            .flatten()
            .map(|e| e.path())
            .collect();
        es.sort();
        for p in es {
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p
                    .strip_prefix(base)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, af_store::sha256_file(&p).expect("hash")));
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// A panel's content hash (what caches and libraries are keyed by).
pub fn panel_hash(panel: &Path) -> String {
    af_panel::Panel::open(panel)
        .expect("open panel")
        .content_hash()
        .to_string()
}

/// Six ordinary factors (planted-style signals, a group operator) for tests that need a
/// small library.
pub const SIX_FACTORS: &str = "\
rank(ts_mean(returns, 5)) * -1
ts_corr(close, volume, 10)
rank(close / ts_delay(close, 5))
ts_std(returns, 20) * -1
group_neutralize(ts_sum(returns, 10), industry)
ts_rank(volume, 10)
";

/// A JSON file, parsed.
pub fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).expect("read json")).expect("json")
}

/// lgbm-train windows for the 500-date small market: 3 folds.
pub const SMALL_FOLDS: [&str; 8] = [
    "--train-days",
    "200",
    "--valid-days",
    "50",
    "--test-days",
    "50",
    "--step",
    "50",
];
