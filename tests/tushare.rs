//! `ts-fetch --source tushare` against a local stand-in of Tushare Pro
//! (tests/py/fake_tushare.py) serving a synthetic market in Tushare's shapes and units:
//! the official Python client accepts the stand-in; the fetched raw folder equals the
//! synthetic source's; the rate is kept; rate limits, 5xx, dropped connections and slow
//! answers are survived; a killed fetch resumes to the same bytes; `--update` equals a
//! fresh fetch of the longer period; errors are one clear line and never show the token.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use af_e2e::*;

const TOKEN: &str = "tok-5ecret-7f3a9c1d";

/// The fake server, killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(raw: &Path, extra: &[&str]) -> Server {
        let mut child = python()
            .args(["fake_tushare.py", "--raw", &s(raw), "--token", TOKEN])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start fake_tushare.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("fake server said {line:?}"));
        Server { child, port }
    }
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/dataapi", self.port)
    }
    fn stats(&self) -> serde_json::Value {
        let out = ok(python().args([
            "-c",
            &format!(
                "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{}/stats').read().decode())",
                self.port
            ),
        ]));
        serde_json::from_slice(&out.stdout).unwrap()
    }
    fn calls(&self) -> u64 {
        self.stats()["calls"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small synthetic market (40 assets × 60 days): what the server serves and what
/// the fetch must reproduce.
fn market(dir: &Path, days: u32) -> PathBuf {
    let raw = dir.join("synthetic");
    ok(bin("ts-fetch").args([
        "--assets",
        "40",
        "--days",
        &days.to_string(),
        "--seed",
        "5",
        "--out",
        &s(&raw),
    ]));
    raw
}

fn fetch(srv: &Server, out: &Path, extra: &[&str]) -> Command {
    let mut c = bin("ts-fetch");
    c.env("TUSHARE_TOKEN", TOKEN).args([
        "--source",
        "tushare",
        "--api-url",
        &srv.url(),
        "--start",
        "2016-01-01",
        "--end",
        "2016-12-31",
        "--limit-pause",
        "1",
        "--retry-base-ms",
        "20",
        "--out",
        &s(out),
    ]);
    c.args(extra);
    c
}

fn same(a: &Path, b: &Path) {
    let out = py_ok(&["check_tushare.py", "same", &s(a), &s(b)]);
    assert!(out.contains("same:"), "{out}");
}

fn py_ok(args: &[&str]) -> String {
    String::from_utf8_lossy(&ok(python().args(args)).stdout).into_owned()
}

/// Every file under `dir` and every text given: none holds the token.
fn token_nowhere(dirs: &[&Path], texts: &[&str]) {
    for t in texts {
        assert!(!t.contains(TOKEN), "the token is in an output: {t}");
    }
    for d in dirs {
        if !d.exists() {
            continue;
        }
        for (rel, _) in tree_hashes(d) {
            let b = std::fs::read(d.join(&rel)).unwrap();
            assert!(
                !b.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
                "the token is in {}",
                d.join(rel).display()
            );
        }
    }
}

#[test]
fn official_client_and_a_fetch_equal_to_the_synthetic_source_within_the_rate() {
    let dir = scratch("tushare-fetch");
    let raw = market(&dir, 60);
    // The stand-in's rate: 12 calls per api in any 1-second window.
    let srv = Server::start(&raw, &["--rate", "12", "--window", "1"]);
    let out = py_ok(&["check_tushare.py", "client", &srv.url(), TOKEN, &s(&raw)]);
    assert!(out.contains("official client"), "{out}");
    let before = srv.stats();
    // 600 calls/min over all endpoints = 10 per second: never above 12 per api-second.
    let got = dir.join("raw");
    let o = ok(&mut fetch(&srv, &got, &["--rate", "600"]));
    let st = srv.stats();
    let limited: u64 = ["daily", "adj_factor", "daily_basic", "suspend_d"]
        .iter()
        .map(|a| st["attempts"][a].as_u64().unwrap() - st["calls"][a].as_u64().unwrap())
        .sum();
    assert_eq!(
        limited, 0,
        "a rate-limited answer: the client outran its rate {st}"
    );
    for (api, peak) in st["peak"].as_object().unwrap() {
        assert!(
            peak.as_u64().unwrap() <= 12,
            "{api}: {peak} calls in one second"
        );
    }
    let calls = srv.calls()
        - before["calls"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>();
    assert_eq!(
        calls,
        5 + 5 * 60,
        "trade_cal, stock_basic ×3, namechange, 4 per date"
    );
    same(&raw, &got);
    let m = read_json(&got.join("manifest.json"));
    assert_eq!(m["source"], "tushare");
    assert!(
        !dir.join(".raw.tushare-journal").exists(),
        "journal removed after commit"
    );
    token_nowhere(
        &[&got],
        &[
            &String::from_utf8_lossy(&o.stdout),
            &String::from_utf8_lossy(&o.stderr),
        ],
    );

    // A panel from it equals one from the synthetic source, cell for cell.
    let (pa, pb) = (dir.join("a.arrow"), dir.join("b.arrow"));
    ok(bin("panel-build").args(["--raw", &s(&raw), "--out", &s(&pa)]));
    ok(bin("panel-build").args(["--raw", &s(&got), "--out", &s(&pb)]));
    let (a, b) = (
        af_panel::Panel::open(&pa).unwrap(),
        af_panel::Panel::open(&pb).unwrap(),
    );
    for f in ["close", "volume", "returns", "fwd_ret_1", "cap"] {
        let (x, y) = (a.field(f).unwrap().data, b.field(f).unwrap().data);
        for (u, v) in x.iter().zip(y) {
            assert!(
                u == v || (u.is_nan() && v.is_nan()) || (u - v).abs() <= 1e-15 * u.abs(),
                "{f}: {u} vs {v}"
            );
        }
    }
    assert_eq!(
        a.mask("in_universe").unwrap(),
        b.mask("in_universe").unwrap()
    );
}

#[test]
fn rate_limits_faults_kills_and_updates_end_in_the_same_bytes() {
    let dir = scratch("tushare-resume");
    let raw = market(&dir, 60);
    let want = dir.join("want");
    {
        let srv = Server::start(&raw, &[]);
        ok(&mut fetch(&srv, &want, &["--rate", "0"]));
    }
    // Rate limits (4 per api-second, 40203 bodies), 5xx, dropped connections and slow
    // answers: retried, paused, and the same raw folder.
    let srv = Server::start(
        &raw,
        &[
            "--rate",
            "4",
            "--window",
            "1",
            "--fault-5xx",
            "0.05",
            "--fault-drop",
            "0.03",
            "--fault-slow",
            "0.01",
            "--slow-secs",
            "3",
            "--seed",
            "9",
        ],
    );
    let rough = dir.join("rough");
    let o = ok(&mut fetch(&srv, &rough, &["--rate", "0", "--timeout", "1"]));
    let summary = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(summary.contains("rate-limit pauses"), "{summary}");
    assert_eq!(tree_hashes(&want), tree_hashes(&rough), "{summary}");
    drop(srv);

    // SIGKILL at five moments, then a complete run: the same bytes as uninterrupted.
    let srv = Server::start(&raw, &[]);
    let got = dir.join("killed");
    for (k, ms) in [150u64, 600, 1100, 1700, 2300].iter().enumerate() {
        let log = std::fs::File::create(dir.join(format!("kill-{k}.log"))).unwrap();
        let mut child = fetch(&srv, &got, &["--rate", "1500"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(*ms + 80 * k as u64) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    let before = srv.calls();
    let o = ok(&mut fetch(&srv, &got, &["--rate", "0"]));
    let resumed = srv.calls() - before;
    assert!(
        resumed > 0 && resumed < 305,
        "the resumed run asked {resumed} of 305 calls"
    );
    assert_eq!(
        tree_hashes(&want),
        tree_hashes(&got),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    drop(srv);

    // --update after 15 more days equals a fresh fetch of the longer period, asking only
    // for the new dates.
    let longer = market(&dir.join("l"), 75);
    let as_of = {
        let m = read_json(&raw.join("manifest.json"));
        m["last_date"].as_str().unwrap().to_string()
    };
    let part = dir.join("part");
    {
        let srv = Server::start(&longer, &["--as-of", &as_of]);
        ok(&mut fetch(&srv, &part, &["--rate", "0"]));
    }
    let srv = Server::start(&longer, &[]);
    let fresh = dir.join("fresh");
    ok(&mut fetch(&srv, &fresh, &["--rate", "0"]));
    let before = srv.calls();
    let o = ok(&mut fetch(&srv, &part, &["--rate", "0", "--update"]));
    assert_eq!(
        srv.calls() - before,
        5 + 5 * 15,
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let files = |d: &Path| -> Vec<(String, String)> {
        tree_hashes(d)
            .into_iter()
            .filter(|(r, _)| r != "manifest.json")
            .collect()
    };
    assert_eq!(files(&fresh), files(&part));
    same(&fresh, &part);
    let m = read_json(&part.join("manifest.json"));
    assert!(
        m["notes"]
            .to_string()
            .contains("updated: 15 new trading dates"),
        "{m}"
    );
    // One year, the touched one, was written (the unit test in af-data's raw.rs shows
    // earlier years kept as the same files).
    assert!(
        m["notes"]
            .to_string()
            .contains("update rewrote year 2016 and kept year none"),
        "{m}"
    );
    token_nowhere(&[&dir], &[]);
}

#[test]
fn errors_are_one_line_keep_the_previous_folder_and_never_show_the_token() {
    let dir = scratch("tushare-errors");
    let raw = market(&dir, 20);
    let out = dir.join("raw");
    let srv = Server::start(&raw, &[]);
    ok(&mut fetch(&srv, &out, &["--rate", "0"]));
    let kept = tree_hashes(&out);
    let cases: Vec<(Server, Vec<&str>, &str, Option<&str>)> = vec![
        (
            Server::start(&raw, &["--token", "other"]),
            vec![],
            "token was rejected",
            None,
        ),
        (
            Server::start(&raw, &["--deny", "daily_basic"]),
            vec![],
            "no permission",
            None,
        ),
        (
            Server::start(&raw, &["--malformed", "daily"]),
            vec![],
            "malformed JSON",
            None,
        ),
        (
            Server::start(&raw, &["--missing-field", "adj_factor"]),
            vec![],
            "has no field",
            None,
        ),
        (
            Server::start(&raw, &[]),
            vec!["--retries", "2"],
            "unreachable after 3 attempts",
            Some("closed"),
        ),
    ];
    let mut texts = Vec::new();
    for (srv, extra, want, closed) in cases {
        let mut c = fetch(&srv, &out, &[]);
        c.args(&extra);
        if closed.is_some() {
            // Nothing listens there: bounded retries, then one line.
            let port = srv.port;
            drop(srv);
            c = fetch(
                &Server {
                    child: dummy(),
                    port,
                },
                &out,
                &extra,
            );
        }
        let err = fails(&mut c);
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(lines[0].contains(want), "{want}: {err}");
        assert_eq!(
            tree_hashes(&out),
            kept,
            "the previous raw folder changed ({want})"
        );
        texts.push(err);
    }
    let no_token = fails(
        bin("ts-fetch")
            .env_remove("TUSHARE_TOKEN")
            .current_dir(&dir)
            .args(["--source", "tushare", "--out", &s(&out)]),
    );
    assert!(no_token.contains("TUSHARE_TOKEN"), "{no_token}");
    let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
    token_nowhere(&[&dir], &refs);
}

/// A stand-in child for a server that is gone (its Drop kills nothing that matters).
fn dummy() -> Child {
    Command::new("true").spawn().unwrap()
}
