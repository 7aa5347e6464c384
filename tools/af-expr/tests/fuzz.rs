//! Property / fuzz test: the parser and the evaluator never panic.
//!
//! - Random token soup and mutations (delete, duplicate, swap, insert) of valid
//!   expressions go to the parser of every dialect: each must give `Ok` or a
//!   positioned error, never a panic.
//! - Random *valid* trees, typed by the registry (windows in range, group positions
//!   get `industry`), are evaluated on a small panel full of NaNs, zeros, constant runs
//!   and huge values: no panic, no ±inf, outputs of the right size.
//! - `tests/fixtures/fuzz_corpus.txt` (inputs that once found a bug or hit an unusual
//!   path, plus hand-picked nasty ones) is replayed every run.
//!
//! Deterministic (fixed seed); `AF_FUZZ_ITERS=100000 cargo test -p af-expr --test fuzz`
//! runs longer.

use std::path::PathBuf;

use af_expr::registry::{Arg, MAX_WINDOW, OPS};
use af_expr::{Dialect, Fields, Program, parse, parse_canonical};
use af_panel::{Panel, PanelData, write_panel};
use af_store::Provenance;

/// xorshift64*: tiny, deterministic, good enough to drive a fuzzer.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

fn iters(default: usize) -> usize {
    std::env::var("AF_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const FIELDS: &[&str] = &["open", "high", "low", "close", "volume", "returns", "cap"];

/// A random valid native expression of depth at most `depth`.
fn random_expr(r: &mut Rng, depth: usize) -> String {
    if depth == 0 || r.below(4) == 0 {
        return match r.below(6) {
            0 => format!("{}", (r.below(2001) as f64 - 1000.0) / 100.0),
            1 => "0".into(),
            _ => r.pick(FIELDS).to_string(),
        };
    }
    let op = r.pick(OPS);
    let args: Vec<String> = op
        .args
        .iter()
        .map(|a| match a {
            Arg::Series => random_expr(r, depth - 1),
            Arg::Window => {
                let lo = op.min_window as usize;
                let hi = if r.below(10) == 0 {
                    MAX_WINDOW as usize
                } else {
                    30
                };
                (lo + r.below(hi - lo + 1)).to_string()
            }
            Arg::Scalar => format!("{}", r.below(100) as f64 / 100.0),
            Arg::Group => "industry".into(),
        })
        .collect();
    format!("{}({})", op.name, args.join(", "))
}

const SOUP: &[&str] = &[
    "(",
    ")",
    ",",
    "+",
    "-",
    "*",
    "/",
    "^",
    "?",
    ":",
    "<",
    ">=",
    "==",
    "!=",
    "&&",
    "||",
    "close",
    "$close",
    "volume",
    "industry",
    "IndClass.sector",
    "adv20",
    "ts_mean",
    "rank",
    "Mean",
    "Ref",
    "correlation",
    "1",
    "0",
    "-0",
    "1e308",
    "1e-320",
    "nan",
    "inf",
    "3.7",
    "252",
    "253",
    "99999999999999999999",
    " ",
    "\t",
    "é",
    "\u{0}",
    "#",
    "=",
    "fwd_ret_1",
];

fn mutate(r: &mut Rng, s: &str) -> String {
    let mut c: Vec<char> = s.chars().collect();
    for _ in 0..1 + r.below(3) {
        if c.is_empty() {
            break;
        }
        let i = r.below(c.len());
        match r.below(4) {
            0 => {
                c.remove(i);
            }
            1 => {
                let ch = c[i];
                c.insert(i, ch);
            }
            2 => {
                let j = r.below(c.len());
                c.swap(i, j);
            }
            _ => {
                for ch in r.pick(SOUP).chars().rev() {
                    c.insert(i, ch);
                }
            }
        }
    }
    c.into_iter().collect()
}

fn corpus() -> Vec<String> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/fuzz_corpus.txt");
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .filter(|l| !l.starts_with("##"))
        .map(|l| l.replace("\\n", "\n"))
        .collect()
}

#[test]
fn parser_never_panics() {
    let fields = Fields::default();
    let dialects = [Dialect::Native, Dialect::Qlib, Dialect::Alpha101];
    let mut r = Rng(0x5EED_F00D);
    let mut inputs = corpus();
    for _ in 0..iters(3000) {
        inputs.push(match r.below(3) {
            0 => (0..1 + r.below(12))
                .map(|_| *r.pick(SOUP))
                .collect::<Vec<_>>()
                .join(""),
            _ => {
                let valid = random_expr(&mut r, 4);
                mutate(&mut r, &valid)
            }
        });
    }
    for src in &inputs {
        for d in dialects {
            match parse(src, d, &fields) {
                Ok(e) => {
                    // A parsed tree canonicalises and re-parses to the same id.
                    let c = e.canonical();
                    let again = parse_canonical(&c.canonical_text(), Dialect::Native, &fields);
                    if let Ok(a) = again {
                        assert_eq!(a.id(), c.id(), "{src:?} -> {}", c.canonical_text());
                    }
                }
                Err(err) => {
                    assert!(!err.message.is_empty(), "{src:?}");
                    let _ = err.to_string(); // the caret rendering must not panic either
                }
            }
        }
    }
}

fn fuzz_panel() -> (PathBuf, Panel) {
    fuzz_panel_of(80, 23, "fuzz")
}

/// A `nd` x `na` panel of nasty values (see the module doc), in its own temp folder.
fn fuzz_panel_of(nd: usize, na: usize, tag: &str) -> (PathBuf, Panel) {
    let mut r = Rng(42);
    let mut field = |kind: usize| -> Vec<f64> {
        (0..nd * na)
            .map(|i| {
                let (t, a) = (i / na, i % na);
                if t < a % 9 || (a == 5 && t > 60) {
                    return f64::NAN; // not listed yet / delisted
                }
                match (a + kind) % 7 {
                    0 => 10.0,                          // constant
                    1 => 0.0,                           // zeros
                    2 if t % 17 == 0 => 5e14,           // huge spikes
                    3 if r.below(5) == 0 => f64::NAN,   // holes
                    4 => -(r.below(1000) as f64) / 7.0, // negatives
                    _ => 1.0 + (r.below(100_000) as f64) / 1000.0,
                }
            })
            .collect()
    };
    let fields: Vec<(String, Vec<f64>)> = FIELDS
        .iter()
        .enumerate()
        .map(|(k, f)| (f.to_string(), field(k)))
        .collect();
    let data = PanelData {
        dates: (0..nd as i32).map(|d| 17000 + d).collect(),
        codes: (0..na).map(|a| format!("{a:06}.SZ")).collect(),
        fields,
        groups: vec![(
            "industry".into(),
            (0..nd * na).map(|i| ((i % na) % 4) as i32).collect(),
            vec!["a".into(), "b".into(), "c".into(), "d".into()],
        )],
        masks: vec![(
            "in_universe".into(),
            (0..nd * na).map(|i| i % 11 != 0).collect(),
        )],
        extra: Default::default(),
    };
    let dir = std::env::temp_dir().join(format!("af-expr-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("fuzz.arrow");
    write_panel(&path, data, &Provenance::new("fuzz", "0")).unwrap();
    let p = Panel::open(&path).unwrap();
    (dir, p)
}

#[test]
fn evaluator_never_panics_and_never_returns_inf() {
    let (dir, panel) = fuzz_panel();
    let fields = af_expr::fields_of(&panel);
    let mut r = Rng(0xA1FA);
    let mut srcs: Vec<String> = (0..iters(400)).map(|_| random_expr(&mut r, 5)).collect();
    srcs.extend(corpus());
    let mut evaluated = 0;
    for chunk in srcs.chunks(16) {
        let exprs: Vec<_> = chunk
            .iter()
            .filter_map(|s| parse_canonical(s, Dialect::Native, &fields).ok())
            .collect();
        let prog = Program::compile(&exprs);
        let n = panel.n_dates() * panel.n_assets();
        prog.run(&panel, |i, v| {
            assert_eq!(v.len(), n);
            assert!(
                v.iter().all(|x| !x.is_infinite()),
                "inf from {}",
                exprs[i].canonical_text()
            );
            evaluated += 1;
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e:#}"));
    }
    assert!(
        evaluated >= iters(400) * 9 / 10,
        "only {evaluated} evaluated"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn fused_element_wise_chains_give_the_bits_of_one_matrix_per_node() {
    // 6000 cells: three fusion tiles, the last one partial.
    let (dir, panel) = fuzz_panel_of(120, 50, "fuse");
    let fields = af_expr::fields_of(&panel);
    let mut r = Rng(0xF05E);
    let mut srcs: Vec<String> = (0..iters(300)).map(|_| random_expr(&mut r, 5)).collect();
    // Chains that must fuse: shared parts, scalars on both sides, a three-argument op,
    // a Qlib comparison (never fused), a chain over a time-series result.
    srcs.extend(
        [
            "((high + low) / 2 + high) - (open + high)",
            "-1 * abs(close - open) / (high - low + 0.001)",
            "if_else(close > open, log(volume + 1), -sqrt(abs(returns)))",
            "clip(close * 2 - open, low, high) + (1 - 0.5) * 3",
            "q_gt(close, open) * (close - open)",
            "rank(ts_mean(close, 5) / close - 1) * -1",
            "signed_power(returns * 100, 2) - returns * returns",
        ]
        .map(String::from),
    );
    let mut fused_nodes = 0;
    for chunk in srcs.chunks(16) {
        let exprs: Vec<_> = chunk
            .iter()
            .filter_map(|s| parse_canonical(s, Dialect::Native, &fields).ok())
            .collect();
        let mut results = Vec::new();
        for fuse in [false, true] {
            let mut prog = Program::compile(&exprs);
            prog.fuse = fuse;
            let mut got: Vec<Vec<u64>> = vec![Vec::new(); exprs.len()];
            let stats = prog
                .run(&panel, |i, v| {
                    got[i] = v.iter().map(|x| x.to_bits()).collect();
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("{e:#}"));
            fused_nodes += stats.fused;
            results.push((got, stats.nodes_evaluated));
        }
        let ((plain, n_plain), (fused, n_fused)) = (&results[0], &results[1]);
        assert_eq!(n_plain, n_fused, "every node is still computed once");
        for (i, e) in exprs.iter().enumerate() {
            assert!(
                plain[i] == fused[i],
                "fused value differs: {}",
                e.canonical_text()
            );
        }
    }
    assert!(fused_nodes > 100, "only {fused_nodes} nodes were fused");
    let _ = std::fs::remove_dir_all(dir);
}
