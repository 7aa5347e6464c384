//! Genetic programming over formulaic factors.
//!
//! The search space is the operator registry itself ([`Space`]): every operator whose
//! arguments are series, windows or a group field (the Qlib-compatibility family,
//! comparisons/logic and overflow-prone ops are left out), the panel's numeric fields
//! as terminals, windows from a grid, `industry` for group positions. Trees are built
//! and changed only at positions of the right kind, so every child is valid by
//! construction (and re-checked through the parser).
//!
//! Randomness is a ChaCha8 stream seeded from (seed, generation): generation N is the
//! same whether a run went straight through or was stopped and resumed after N − 1,
//! on every platform.

pub mod selection;

use std::collections::BTreeSet;

use af_expr::registry::{Arg, MAX_WINDOW, OPS, OpDef};
use af_expr::{Dialect, Expr, Fields, parse_canonical};
use rand::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Operators GP never draws: Qlib-compatibility twins, 0/1 logic (a factor of
/// comparisons is a step function), and ops that overflow on raw prices.
const EXCLUDED: &[&str] = &[
    "lt",
    "le",
    "gt",
    "ge",
    "eq",
    "ne",
    "and",
    "or",
    "if_else",
    "exp",
    "ts_product",
];

/// Default window grid.
pub const WINDOWS: &[u32] = &[3, 5, 10, 20, 40, 60];

/// Seeded, portable random numbers.
pub struct Rng(ChaCha8Rng);

impl Rng {
    /// The stream of generation `generation` of a run seeded `seed`.
    pub fn for_generation(seed: u64, generation: u64) -> Self {
        // SplitMix-style mixing so nearby (seed, generation) pairs give unrelated streams.
        let mut z = seed ^ generation.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng(ChaCha8Rng::seed_from_u64(z ^ (z >> 31)))
    }
    pub fn u(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    pub fn below(&mut self, n: usize) -> usize {
        ((self.u() * n as f64) as usize).min(n.saturating_sub(1))
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.u() < p
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// The terminal set: the fields the user `requested` (all when empty), each needing
/// `min_coverage` of the universe's cells finite — a field the source did not have
/// (all NaN) would only waste candidates (issue 20: 29 of 33 degenerate generation-0
/// candidates read all-NaN fields). `coverage` is (field, share), in panel order.
/// Errors name the field and list the choices.
pub fn choose_terminals(
    coverage: &[(String, f64)],
    requested: &[String],
    min_coverage: f64,
) -> Result<Vec<String>, String> {
    for r in requested {
        if !coverage.iter().any(|(f, _)| f == r) {
            return Err(format!(
                "--fields: the panel has no field {r:?} (fields: {})",
                coverage
                    .iter()
                    .map(|(f, _)| f.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let mut chosen = Vec::new();
    for (f, c) in coverage {
        if !requested.is_empty() && !requested.contains(f) {
            continue;
        }
        if *c >= min_coverage {
            chosen.push(f.clone());
        } else if requested.contains(f) {
            return Err(format!(
                "--fields: {f} is finite on only {:.1} % of the universe's cells (< {:.0} %, \
                 --min-field-coverage)",
                100.0 * c,
                100.0 * min_coverage
            ));
        }
    }
    if chosen.is_empty() {
        return Err("no field of the panel has enough coverage to search over".into());
    }
    Ok(chosen)
}

/// What trees are made of.
#[derive(Debug, Clone)]
pub struct Space {
    pub ops: Vec<&'static OpDef>,
    pub fields: Vec<String>,
    pub groups: Vec<String>,
    pub windows: Vec<u32>,
    parse_fields: Fields,
}

impl Space {
    pub fn new(fields: &Fields, windows: &[u32]) -> Space {
        let groups = fields.groups.clone();
        let ops = OPS
            .iter()
            .filter(|o| !o.name.starts_with("q_") && !EXCLUDED.contains(&o.name))
            .filter(|o| {
                o.args.iter().all(|a| match a {
                    Arg::Series | Arg::Window => true,
                    Arg::Group => !groups.is_empty(),
                    Arg::Scalar => false,
                })
            })
            .collect();
        Space {
            ops,
            fields: fields.numeric.clone(),
            groups,
            windows: windows.to_vec(),
            parse_fields: fields.clone(),
        }
    }

    /// Restrict the terminals to `chosen` (see [`choose_terminals`]); expressions that
    /// read other fields still parse (earlier generations, libraries).
    pub fn with_terminals(mut self, chosen: Vec<String>) -> Space {
        self.fields = chosen;
        self
    }

    /// The window grid values `op` accepts.
    fn grid(&self, op: &OpDef) -> Vec<u32> {
        self.windows
            .iter()
            .copied()
            .filter(|w| *w >= op.min_window && *w <= MAX_WINDOW)
            .collect()
    }

    fn window(&self, op: &OpDef, rng: &mut Rng) -> f64 {
        let ok = self.grid(op);
        if ok.is_empty() {
            op.min_window as f64
        } else {
            *rng.pick(&ok) as f64
        }
    }

    fn terminal(&self, rng: &mut Rng) -> Expr {
        Expr::Field(rng.pick(&self.fields).clone())
    }

    /// A random tree of depth at most `depth`: `full` puts operators on every level
    /// above the last (Koza's "full"), otherwise each node is a terminal with
    /// probability 0.3 ("grow").
    pub fn random_tree(&self, rng: &mut Rng, depth: usize, full: bool) -> Expr {
        if depth <= 1 || (!full && rng.chance(0.3)) {
            return self.terminal(rng);
        }
        let op = *rng.pick(&self.ops);
        self.call(op, rng, depth, full)
    }

    fn call(&self, op: &'static OpDef, rng: &mut Rng, depth: usize, full: bool) -> Expr {
        let args = op
            .args
            .iter()
            .map(|a| match a {
                Arg::Series => self.random_tree(rng, depth - 1, full),
                Arg::Window => Expr::Num(self.window(op, rng)),
                Arg::Group => Expr::Field(self.groups[0].clone()),
                Arg::Scalar => Expr::Num(1.0),
            })
            .collect();
        Expr::Call(op, args)
    }

    /// Canonical form if the tree is one a user could have typed (re-parsed), within
    /// `max_depth`, and not a bare field or constant.
    pub fn accept(&self, e: &Expr, max_depth: usize) -> Option<Expr> {
        let c = e.canonical();
        if !matches!(c, Expr::Call(..)) || c.depth() > max_depth {
            return None;
        }
        let back =
            parse_canonical(&c.canonical_text(), Dialect::Native, &self.parse_fields).ok()?;
        (back.id() == c.id()).then_some(c)
    }
}

/// Paths (argument indices from the root) of every node at a series position.
pub fn series_paths(e: &Expr) -> Vec<Vec<usize>> {
    fn walk(e: &Expr, path: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        out.push(path.clone());
        if let Expr::Call(op, args) = e {
            for (i, a) in args.iter().enumerate() {
                if op.args.get(i) == Some(&Arg::Series) {
                    path.push(i);
                    walk(a, path, out);
                    path.pop();
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(e, &mut Vec::new(), &mut out);
    out
}

/// Paths of every window constant.
fn window_paths(e: &Expr) -> Vec<(Vec<usize>, &'static OpDef)> {
    fn walk(e: &Expr, path: &mut Vec<usize>, out: &mut Vec<(Vec<usize>, &'static OpDef)>) {
        if let Expr::Call(op, args) = e {
            for (i, a) in args.iter().enumerate() {
                path.push(i);
                if op.args.get(i) == Some(&Arg::Window) {
                    out.push((path.clone(), *op));
                } else {
                    walk(a, path, out);
                }
                path.pop();
            }
        }
    }
    let mut out = Vec::new();
    walk(e, &mut Vec::new(), &mut out);
    out
}

pub fn at<'a>(e: &'a Expr, path: &[usize]) -> &'a Expr {
    path.iter().fold(e, |n, &i| &n.children()[i])
}

fn replace(e: &Expr, path: &[usize], with: Expr) -> Expr {
    match path.split_first() {
        None => with,
        Some((&i, rest)) => match e {
            Expr::Call(op, args) => {
                let mut a = args.clone();
                a[i] = replace(&args[i], rest, with);
                Expr::Call(op, a)
            }
            other => other.clone(),
        },
    }
}

/// GP parameters (docs/mining.md).
#[derive(Debug, Clone)]
pub struct Params {
    pub pop: usize,
    pub max_depth: usize,
    pub p_cross: f64,
    pub p_mut: f64,
    pub tournament: usize,
    /// The memetic step: how many of the pool's best are tuned each generation
    /// ([`tune`]); 0 turns it off. Its children count in `pop`, at most a fifth of it.
    pub memetic: usize,
}

/// A parent with its fitness (train score).
#[derive(Debug, Clone)]
pub struct Scored {
    pub expr: Expr,
    pub id: String,
    pub score: f64,
}

/// A new candidate and where it came from.
#[derive(Debug, Clone)]
pub struct Child {
    pub expr: Expr,
    pub id: String,
    pub op: &'static str,
    pub parents: Vec<String>,
}

/// Generation 0: ramped half-and-half over depths 2..=max_depth, no duplicates (by
/// canonical id) among themselves or in `memo`; new ids are added to `memo`.
pub fn initial(
    space: &Space,
    p: &Params,
    rng: &mut Rng,
    memo: &mut BTreeSet<String>,
) -> Vec<Child> {
    let depths: Vec<usize> = (2..=p.max_depth.max(2)).collect();
    fill(space, p, rng, memo, |rng, i| {
        let d = depths[i % depths.len()];
        let full = (i / depths.len()) % 2 == 0;
        let op = if full { "init-full" } else { "init-grow" };
        (space.random_tree(rng, d, full), op, Vec::new())
    })
}

/// Draw trees with `make(rng, accepted so far)` until `out` holds `p.pop` accepted and
/// new to `memo` (which learns their ids), or the draws run out (an exhausted space).
fn fill(
    space: &Space,
    p: &Params,
    rng: &mut Rng,
    memo: &mut BTreeSet<String>,
    make: impl FnMut(&mut Rng, usize) -> (Expr, &'static str, Vec<String>),
) -> Vec<Child> {
    fill_into(space, p, rng, memo, Vec::with_capacity(p.pop), make)
}

fn fill_into(
    space: &Space,
    p: &Params,
    rng: &mut Rng,
    memo: &mut BTreeSet<String>,
    mut out: Vec<Child>,
    mut make: impl FnMut(&mut Rng, usize) -> (Expr, &'static str, Vec<String>),
) -> Vec<Child> {
    let mut tries = 0;
    while out.len() < p.pop && tries < p.pop * 200 {
        tries += 1;
        let (t, op, parents) = make(rng, out.len());
        offer(space, p, memo, &mut out, &t, op, parents);
    }
    out
}

/// Add `t` to `out` when it is a valid tree (within `p.max_depth`) new to `memo`.
fn offer(
    space: &Space,
    p: &Params,
    memo: &mut BTreeSet<String>,
    out: &mut Vec<Child>,
    t: &Expr,
    op: &'static str,
    parents: Vec<String>,
) {
    if let Some(c) = space.accept(t, p.max_depth) {
        let id = c.id();
        if memo.insert(id.clone()) {
            out.push(Child {
                expr: c,
                id,
                op,
                parents,
            });
        }
    }
}

fn tournament<'a>(pool: &'a [Scored], k: usize, rng: &mut Rng) -> &'a Scored {
    let mut best = rng.below(pool.len());
    for _ in 1..k.max(1) {
        let c = rng.below(pool.len());
        let (a, b) = (&pool[c], &pool[best]);
        if a.score > b.score || (a.score == b.score && a.id < b.id) {
            best = c;
        }
    }
    &pool[best]
}

/// One child by the operator the dice pick.
fn offspring(
    space: &Space,
    p: &Params,
    pool: &[Scored],
    rng: &mut Rng,
) -> (Expr, &'static str, Vec<String>) {
    let r = rng.u();
    if r < p.p_cross {
        let a = tournament(pool, p.tournament, rng);
        let b = tournament(pool, p.tournament, rng);
        let pa = series_paths(&a.expr);
        let pb = series_paths(&b.expr);
        let at_a = rng.pick(&pa).clone();
        let donor = at(&b.expr, &pb[rng.below(pb.len())]).clone();
        return (
            replace(&a.expr, &at_a, donor),
            "crossover",
            vec![a.id.clone(), b.id.clone()],
        );
    }
    if r < p.p_cross + p.p_mut {
        let a = tournament(pool, p.tournament, rng);
        let parents = vec![a.id.clone()];
        let m = rng.u();
        if m < 0.35 {
            // Subtree: a fresh grown tree in place of a random one.
            let paths = series_paths(&a.expr);
            let path = rng.pick(&paths).clone();
            let room = p.max_depth.saturating_sub(path.len()).max(1);
            let d = 1 + rng.below(room.min(4));
            let t = space.random_tree(rng, d, false);
            return (replace(&a.expr, &path, t), "mutate-subtree", parents);
        }
        if m < 0.6 {
            // Point: another operator of the same signature, or another field.
            let paths = series_paths(&a.expr);
            let path = rng.pick(&paths).clone();
            let node = at(&a.expr, &path);
            let new = match node {
                Expr::Call(op, args) => {
                    let same: Vec<&&'static OpDef> = space
                        .ops
                        .iter()
                        .filter(|o| o.args == op.args && o.name != op.name)
                        .collect();
                    if same.is_empty() {
                        node.clone()
                    } else {
                        Expr::Call(*same[rng.below(same.len())], args.clone())
                    }
                }
                _ => space.terminal(rng),
            };
            return (replace(&a.expr, &path, new), "mutate-point", parents);
        }
        if m < 0.75 {
            // Hoist: a sub-tree becomes the whole (shrinks bloated trees).
            let paths = series_paths(&a.expr);
            let path = rng.pick(&paths).clone();
            return (at(&a.expr, &path).clone(), "mutate-hoist", parents);
        }
        // Window: one window constant moves on the grid.
        let wp = window_paths(&a.expr);
        if wp.is_empty() {
            return (
                space.random_tree(rng, p.max_depth, false),
                "immigrant",
                Vec::new(),
            );
        }
        let (path, op) = rng.pick(&wp).clone();
        let w = Expr::Num(space.window(op, rng));
        return (replace(&a.expr, &path, w), "mutate-window", parents);
    }
    let d = 2 + rng.below(p.max_depth.saturating_sub(1).max(1));
    let full = rng.chance(0.5);
    (space.random_tree(rng, d, full), "immigrant", Vec::new())
}

/// A new generation bred from `pool` (the previous generation and the elites, with
/// their scores). Children already in `memo` are replaced by new draws; new ids join
/// `memo`.
pub fn breed(
    space: &Space,
    p: &Params,
    pool: &[Scored],
    rng: &mut Rng,
    memo: &mut BTreeSet<String>,
) -> Vec<Child> {
    if pool.is_empty() {
        return initial(space, p, rng, memo);
    }
    let tuned = tune(space, p, pool, memo);
    fill_into(space, p, rng, memo, tuned, |rng, _| {
        offspring(space, p, pool, rng)
    })
}

/// The memetic step: a deterministic local search around the pool's `p.memetic` best
/// (positive fitness; by fitness, then id). For each window constant of each, the
/// neighbouring grid values; where both were already proposed, the midpoints between
/// them and the current value (finer, so a family found at 20 days gets tried at 15 and
/// 30 next); and the tree with its redundant operators simplified away. At most a
/// fifth of `p.pop`; each child is new to `memo` like any other and scored like any
/// other, so it counts in the evaluation budget.
pub fn tune(space: &Space, p: &Params, pool: &[Scored], memo: &mut BTreeSet<String>) -> Vec<Child> {
    let budget = p.pop / 5;
    let mut best: Vec<&Scored> = pool.iter().filter(|s| s.score > 0.0).collect();
    best.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
    best.truncate(p.memetic);
    let mut out = Vec::new();
    let tuned = |e: Expr,
                 op: &'static str,
                 parent: &str,
                 out: &mut Vec<Child>,
                 memo: &mut BTreeSet<String>| {
        if out.len() < budget {
            offer(space, p, memo, out, &e, op, vec![parent.to_string()]);
        }
    };
    for s in best {
        let simple = simplify(&s.expr);
        if simple != s.expr {
            tuned(simple, "tune-simplify", &s.id, &mut out, memo);
        }
        for (path, op) in window_paths(&s.expr) {
            let Expr::Num(w) = at(&s.expr, &path) else {
                continue;
            };
            let w = *w as u32;
            let grid = space.grid(op);
            let lo = grid.iter().copied().filter(|g| *g < w).max();
            let hi = grid.iter().copied().filter(|g| *g > w).min();
            let with = |v: u32| replace(&s.expr, &path, Expr::Num(v as f64));
            let mut seen_both = true;
            for n in [lo, hi].into_iter().flatten() {
                let e = with(n);
                seen_both &= space
                    .accept(&e, p.max_depth)
                    .is_some_and(|c| memo.contains(&c.id()));
                tuned(e, "tune-window", &s.id, &mut out, memo);
            }
            if seen_both {
                for n in [lo, hi].into_iter().flatten() {
                    let mid = (w + n) / 2;
                    if mid != w && mid != n && mid >= op.min_window {
                        tuned(with(mid), "tune-window", &s.id, &mut out, memo);
                    }
                }
            }
        }
    }
    out
}

/// `e` without operators that change nothing: a double negation, an idempotent
/// operator applied twice (`rank(rank(x))`, `abs(abs(x))`, `sign(sign(x))`), `abs` of
/// a rank (ranks are positive). Bottom-up, so nested redundancies all go.
pub fn simplify(e: &Expr) -> Expr {
    let Expr::Call(op, args) = e else {
        return e.clone();
    };
    let args: Vec<Expr> = args.iter().map(simplify).collect();
    if args.len() == 1 {
        if let Expr::Call(inner, inner_args) = &args[0] {
            let idempotent = ["rank", "abs", "sign", "cs_zscore"];
            if op.name == "neg" && inner.name == "neg" {
                return inner_args[0].clone();
            }
            if op.name == inner.name && idempotent.contains(&op.name) {
                return args[0].clone();
            }
            if op.name == "abs" && inner.name == "rank" {
                return args[0].clone();
            }
        }
    }
    Expr::Call(op, args)
}

/// Build from found parts (issue 36): `n` children `op(t(a), t(b))` of two distinct
/// `parts` (library members and elites, with their fitness), `op` one of add, sub, mul
/// and `t` one of rank, cs_zscore (the same for both, so the sum is of comparable
/// scales). Parents are drawn by tournament on their fitness; a combination may be two
/// levels deeper than `p.max_depth` (its parts were within it). New ids join `memo`.
pub fn combine(
    space: &Space,
    p: &Params,
    parts: &[Scored],
    n: usize,
    rng: &mut Rng,
    memo: &mut BTreeSet<String>,
) -> Vec<Child> {
    let mut out = Vec::new();
    if parts.len() < 2 || n == 0 {
        return out;
    }
    let ops: Vec<&'static OpDef> = ["add", "sub", "mul"]
        .iter()
        .filter_map(|o| af_expr::registry::get(o))
        .collect();
    let wraps: Vec<&'static OpDef> = ["rank", "cs_zscore"]
        .iter()
        .filter_map(|o| af_expr::registry::get(o))
        .collect();
    if ops.is_empty() || wraps.is_empty() {
        return out;
    }
    let deeper = Params {
        max_depth: p.max_depth + 2,
        ..p.clone()
    };
    let mut tries = 0;
    while out.len() < n && tries < n * 50 {
        tries += 1;
        let a = tournament(parts, p.tournament, rng);
        let b = tournament(parts, p.tournament, rng);
        if a.id == b.id {
            continue;
        }
        let op = *rng.pick(&ops);
        let w = *rng.pick(&wraps);
        let t = Expr::Call(
            op,
            vec![
                Expr::Call(w, vec![a.expr.clone()]),
                Expr::Call(w, vec![b.expr.clone()]),
            ],
        );
        offer(
            space,
            &deeper,
            memo,
            &mut out,
            &t,
            "combine",
            vec![a.id.clone(), b.id.clone()],
        );
    }
    out
}

#[cfg(test)]
mod terminal_tests {
    use super::choose_terminals;

    #[test]
    fn absent_fields_are_not_terminals() {
        let cov: Vec<(String, f64)> = [("close", 1.0), ("volume", 0.0), ("cap", 0.3)]
            .iter()
            .map(|(f, c)| (f.to_string(), *c))
            .collect();
        assert_eq!(choose_terminals(&cov, &[], 0.5).unwrap(), vec!["close"]);
        assert_eq!(
            choose_terminals(&cov, &[], 0.2).unwrap(),
            vec!["close", "cap"]
        );
        let err = choose_terminals(&cov, &["volume".into()], 0.5).unwrap_err();
        assert!(err.contains("volume is finite on only 0.0 %"), "{err}");
        let err = choose_terminals(&cov, &["vol".into()], 0.5).unwrap_err();
        assert!(err.contains("no field \"vol\"") && err.contains("close, volume, cap"));
        assert_eq!(
            choose_terminals(&cov, &["cap".into(), "close".into()], 0.2).unwrap(),
            vec!["close", "cap"]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use af_expr::registry::Kind;

    fn space() -> Space {
        let f = Fields {
            numeric: ["open", "high", "low", "close", "vwap", "volume", "returns"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            groups: vec!["industry".into()],
        };
        Space::new(&f, WINDOWS)
    }

    fn params() -> Params {
        Params {
            pop: 100,
            max_depth: 6,
            p_cross: 0.6,
            p_mut: 0.3,
            tournament: 3,
            memetic: 5,
        }
    }

    #[test]
    fn combinations_join_two_parts_as_ranks_or_zscores() {
        let s = space();
        let p = params();
        let f = s.parse_fields.clone();
        let parts: Vec<Scored> = [
            "ts_mean(close, 5)",
            "ts_std(volume, 10)",
            "ts_max(high, 20)",
        ]
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let e = parse_canonical(x, Dialect::Native, &f).unwrap();
            Scored {
                id: e.id(),
                expr: e,
                score: 1.0 + i as f64,
            }
        })
        .collect();
        let run = || {
            let mut memo = BTreeSet::new();
            let out = combine(&s, &p, &parts, 6, &mut Rng::for_generation(3, 2), &mut memo);
            (out, memo)
        };
        let (out, memo) = run();
        assert_eq!(out.len(), 6);
        assert_eq!(memo.len(), 6);
        let ids: BTreeSet<&str> = parts.iter().map(|p| p.id.as_str()).collect();
        for c in &out {
            assert_eq!(c.op, "combine");
            assert_eq!(c.parents.len(), 2);
            assert!(c.parents.iter().all(|p| ids.contains(p.as_str())));
            assert_ne!(c.parents[0], c.parents[1]);
            let Expr::Call(op, args) = &c.expr else {
                panic!("{}", c.expr.canonical_text())
            };
            assert!(["add", "sub", "mul"].contains(&op.name), "{}", op.name);
            let wraps: Vec<&str> = args
                .iter()
                .map(|a| match a {
                    Expr::Call(w, _) => w.name,
                    _ => "",
                })
                .collect();
            assert!(wraps[0] == wraps[1] && ["rank", "cs_zscore"].contains(&wraps[0]));
        }
        // Reproducible, and nothing proposed twice.
        let again: Vec<String> = run().0.into_iter().map(|c| c.id).collect();
        assert_eq!(again, out.iter().map(|c| c.id.clone()).collect::<Vec<_>>());
        let mut memo = memo;
        let more = combine(&s, &p, &parts, 6, &mut Rng::for_generation(3, 2), &mut memo);
        assert!(more.iter().all(|c| !out.iter().any(|o| o.id == c.id)));
        // One part: nothing to combine.
        assert!(
            combine(
                &s,
                &p,
                &parts[..1],
                6,
                &mut Rng::for_generation(3, 2),
                &mut BTreeSet::new()
            )
            .is_empty()
        );
    }

    #[test]
    fn the_space_is_the_registry_minus_exclusions() {
        let s = space();
        assert!(s.ops.iter().any(|o| o.name == "ts_corr"));
        assert!(s.ops.iter().any(|o| o.name == "group_neutralize"));
        assert!(
            s.ops
                .iter()
                .all(|o| !o.name.starts_with("q_") && o.name != "gt")
        );
        assert!(s.ops.iter().any(|o| o.kind == Kind::CrossSection));
    }

    #[test]
    fn generations_are_valid_unique_and_reproducible() {
        let s = space();
        let p = params();
        let run = || {
            let mut memo = BTreeSet::new();
            let g0 = initial(&s, &p, &mut Rng::for_generation(7, 0), &mut memo);
            let pool: Vec<Scored> = g0
                .iter()
                .enumerate()
                .map(|(i, c)| Scored {
                    expr: c.expr.clone(),
                    id: c.id.clone(),
                    score: (i % 7) as f64,
                })
                .collect();
            let g1 = breed(&s, &p, &pool, &mut Rng::for_generation(7, 1), &mut memo);
            (g0, g1, memo)
        };
        let (g0, g1, memo) = run();
        assert_eq!(g0.len(), 100);
        assert_eq!(g1.len(), 100);
        assert_eq!(memo.len(), 200, "no id twice across generations");
        for c in g0.iter().chain(&g1) {
            assert!(c.expr.depth() <= 6);
            assert!(s.accept(&c.expr, 6).is_some());
        }
        let ops: BTreeSet<&str> = g1.iter().map(|c| c.op).collect();
        for o in [
            "crossover",
            "mutate-subtree",
            "mutate-point",
            "mutate-window",
        ] {
            assert!(ops.contains(o), "{o} never used: {ops:?}");
        }
        let (h0, h1, _) = run();
        let ids = |v: &[Child]| v.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&g0), ids(&h0));
        assert_eq!(ids(&g1), ids(&h1));
    }

    #[test]
    fn the_memetic_step_tunes_windows_and_simplifies_deterministically() {
        let (sp, mut p) = (space(), params());
        p.pop = 50;
        let fields = sp.parse_fields.clone();
        let parse =
            |t: &str| af_expr::parse_canonical(t, af_expr::Dialect::Native, &fields).unwrap();
        let scored = |t: &str, score: f64| {
            let e = parse(t);
            Scored {
                id: e.id(),
                expr: e,
                score,
            }
        };
        let pool = vec![
            scored("-ts_std(returns, 20)", 0.05),
            scored("neg(neg(rank(rank(ts_mean(close, 5)))))", 0.04),
            scored("ts_mean(volume, 10)", 0.0),
        ];
        let mut memo = BTreeSet::new();
        let kids = tune(&sp, &p, &pool, &mut memo);
        let texts: Vec<String> = kids.iter().map(|c| c.expr.canonical_text()).collect();
        let has = |t: &str| texts.contains(&parse(t).canonical_text());
        assert!(
            has("-ts_std(returns, 10)") && has("-ts_std(returns, 40)"),
            "{texts:?}"
        );
        assert!(has("rank(ts_mean(close, 5))"), "simplified: {texts:?}");
        assert!(has("neg(neg(rank(rank(ts_mean(close, 3)))))"), "{texts:?}");
        assert!(
            !texts.iter().any(|t| t.contains("volume")),
            "score 0 is not tuned"
        );
        assert!(kids.iter().all(|c| c.op.starts_with("tune-")));
        // Both neighbours tried already: next time the midpoints.
        let again = tune(&sp, &p, &pool, &mut memo);
        let texts: Vec<String> = again.iter().map(|c| c.expr.canonical_text()).collect();
        assert!(
            texts.contains(&parse("-ts_std(returns, 15)").canonical_text()),
            "{texts:?}"
        );
        assert!(
            texts.contains(&parse("-ts_std(returns, 30)").canonical_text()),
            "{texts:?}"
        );
        // Deterministic, and never more than a fifth of the population.
        let mut m2 = BTreeSet::new();
        let k2 = tune(&sp, &p, &pool, &mut m2);
        assert_eq!(
            kids.iter().map(|c| &c.id).collect::<Vec<_>>(),
            k2.iter().map(|c| &c.id).collect::<Vec<_>>()
        );
        assert!(kids.len() <= p.pop / 5);
    }
}
